// The reference photos: dropped or picked files are uploaded, and each photo in the tray is bound
// to a word of the prompt with its select. Several photos bound to one word are several
// references of one subject.
import { api, withToken } from './api.js';
import { $, el } from './dom.js';
import { clearErrors, showError } from './errors.js';
import { promptWords } from './prompt.js';
import { colourIndex, photoNumber, state, visiblePhotos } from './store.js';

let drawn = '';

/** Redraws the tray: one card per photo with its word select (words of the current prompt). */
export function renderPhotos(onChange) {
  const prompt = $('#prompt').value;
  const words = promptWords(prompt);
  const colourOf = colourIndex(prompt);
  // Typing in the prompt redraws the tray only when its words (or the photos, or the bindings) change.
  const key = JSON.stringify([words, visiblePhotos().map((p) => [p.id, state.bindings.get(p.id), colourOf(state.bindings.get(p.id))])]);
  if (key === drawn) return;
  drawn = key;
  const cards = visiblePhotos().map((photo) => {
    const n = photoNumber(photo.id);
    const bound = state.bindings.get(photo.id) ?? '';
    const missing = bound !== '' && !words.includes(bound);
    const select = el('select', { id: `bind-${photo.id}`, 'aria-label': `Word for photo ${n}` }, el('option', { value: '', text: 'not bound' }), ...words.map((w) => el('option', { value: w, text: w })), missing ? el('option', { value: bound, text: `${bound} (not in the prompt)` }) : null);
    select.value = bound;
    select.addEventListener('change', () => {
      if (select.value) state.bindings.set(photo.id, select.value);
      else state.bindings.delete(photo.id);
      onChange();
    });
    const colour = bound ? colourOf(bound) : -1;
    return el(
      'li',
      { class: `photo${colour >= 0 ? ` subject-${colour}` : ''}${missing ? ' missing' : ''}`, 'data-upload': photo.id, 'data-word': bound || null },
      el('img', { src: withToken(photo.url), alt: `Photo ${n}`, width: 72, height: 72, loading: 'lazy' }),
      el('div', { class: 'photo-bind' }, el('span', { class: 'photo-name', text: `Photo ${n}` }), select),
      el('button', {
        type: 'button',
        class: 'icon remove',
        'aria-label': `Remove photo ${n}`,
        title: 'Remove from the tray',
        text: '×',
        onclick: () => {
          state.hidden.add(photo.id);
          state.bindings.delete(photo.id);
          onChange();
        },
      }),
    );
  });
  $('#photos').replaceChildren(...cards);
}

/** Uploads files one by one; returns the records of those the server took. */
async function uploadFiles(files, onChange) {
  const section = $('#subjects');
  const status = $('#upload-status');
  clearErrors(section);
  const taken = [];
  for (const file of files) {
    status.textContent = `Uploading ${file.name}…`;
    try {
      const record = await api.upload(file);
      state.photos.push(record);
      taken.push(record);
      onChange();
    } catch (error) {
      showError(section, Object.assign(new Error(`${file.name}: ${error.message}`), { field: 'subjects' }));
    }
  }
  status.textContent = taken.length ? `Uploaded ${taken.length} photo${taken.length > 1 ? 's' : ''}. Choose the word each one stands for.` : '';
  return taken;
}

export function initPhotos(onChange) {
  const zone = $('#dropzone');
  const input = $('#file-input');
  input.addEventListener('change', async () => {
    const files = [...input.files];
    input.value = '';
    await uploadFiles(files, onChange);
  });
  for (const type of ['dragenter', 'dragover']) {
    zone.addEventListener(type, (event) => {
      event.preventDefault();
      zone.classList.add('dragging');
    });
  }
  zone.addEventListener('dragleave', () => zone.classList.remove('dragging'));
  zone.addEventListener('drop', async (event) => {
    event.preventDefault();
    zone.classList.remove('dragging');
    const files = [...(event.dataTransfer?.files ?? [])];
    if (files.length) await uploadFiles(files, onChange);
  });
}

/** The server's uploads, oldest first (so photo numbers stay put as photos are added). */
export async function loadPhotos() {
  const { uploads } = await api.uploads();
  state.photos = uploads.slice().reverse();
  // Bindings of photos the server no longer has are dropped.
  for (const id of state.bindings.keys()) if (!state.photos.some((p) => p.id === id)) state.bindings.delete(id);
}
