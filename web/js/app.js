// The studio's entry point: loads the server's health, the photos and the gallery, and wires the
// composer, the result area, swap/morph and the gallery together.
import { adoptUrlToken, api, setToken } from './api.js';
import { $, el } from './dom.js';
import { clearErrors, markInvalid, showError } from './errors.js';
import { initGallery, refreshGallery } from './gallery.js';
import { initPhotos, loadPhotos, renderPhotos } from './photos.js';
import { promptWords, renderMirror } from './prompt.js';
import { Runner } from './runner.js';
import { applyHealth, initSettings, readSettings, writeSettings } from './settings.js';
import { boundWords, colourIndex, loadComposer, photoNumber, saveComposer, state, subjectsFor, visiblePhotos } from './store.js';
import { initTools, morphRequest, renderTools, setToolsBusy, swapRequest } from './tools.js';
import { hidePreview, initViewer, showJob, showPreview } from './viewer.js';

/** The bound words under the prompt, each with its colour and photos; words missing from the prompt are flagged. */
function renderBoundWords(prompt) {
  const colourOf = colourIndex(prompt);
  const inPrompt = promptWords(prompt);
  const items = boundWords(prompt).map((word) => {
    const numbers = visiblePhotos().filter((p) => state.bindings.get(p.id) === word).map((p) => photoNumber(p.id));
    const missing = !inPrompt.includes(word);
    return el('span', { class: `chip subject-${colourOf(word)}${missing ? ' missing' : ''}` }, el('strong', { text: word }), ` ← photo${numbers.length > 1 ? 's' : ''} ${numbers.join(', ')}`, missing ? ' (not in the prompt)' : '');
  });
  $('#bound-words').replaceChildren(...(items.length ? items : [el('span', { class: 'hint', text: state.health?.moa ? 'No subject yet: bind a reference photo to a word of the prompt.' : '' })]));
}

/** The prompt box grows with its text, so the highlight mirror behind it never has to scroll. */
function fitPromptHeight() {
  const box = $('#prompt');
  box.style.height = 'auto';
  box.style.height = `${box.scrollHeight + 2}px`;
}

/** Redraws what depends on the composer (prompt marks, photo tray, bound words, tools) and saves it. */
function composerChanged() {
  const prompt = $('#prompt').value;
  fitPromptHeight();
  renderMirror($('#prompt-mirror'), prompt, colourIndex(prompt));
  const focused = document.activeElement?.closest('#photos') ? document.activeElement.id : null;
  renderPhotos(composerChanged);
  if (focused) document.getElementById(focused)?.focus();
  renderBoundWords(prompt);
  renderTools(state.current);
  saveComposer(readSettings());
}

function show(job) {
  state.current = job;
  showJob(job);
  renderTools(job);
}

const runner = new Runner({
  onPreview: showPreview,
  onFinished(job) {
    if (job.results.length) show(job);
    else hidePreview();
    refreshGallery(galleryActions);
  },
  onBusy(busy) {
    $('#generate').disabled = busy;
    setToolsBusy(busy);
    renderTools(state.current);
  },
});

/** Submits a request from `form`; a refused request's message is shown beside its field. */
async function submit(form, makeRequest) {
  clearErrors(form);
  document.querySelectorAll('.photo.invalid').forEach((card) => card.classList.remove('invalid'));
  let request;
  try {
    request = makeRequest();
    await runner.run(request);
    document.querySelector('.stage').scrollIntoView({ block: 'nearest', behavior: 'smooth' });
    refreshGallery(galleryActions);
  } catch (error) {
    const note = showError(form, error);
    // A subject's error also marks its photos in the tray.
    const n = /^subjects\/(\d+)/.exec(error.field ?? '')?.[1];
    const word = n !== undefined ? request?.subjects?.[Number(n)]?.word : undefined;
    if (!word) return;
    for (const card of document.querySelectorAll(`.photo[data-word="${CSS.escape(word)}"]`)) {
      card.classList.add('invalid');
      markInvalid(card.querySelector('select'), note);
    }
  }
}

function generateRequest() {
  const settings = readSettings();
  if (!state.health.moa) return { kind: 'generate', ...settings, maps: false };
  return { kind: 'generate', ...settings, subjects: subjectsFor(settings.prompt) };
}

const galleryActions = {
  open(job) {
    show(job);
    document.querySelector('.stage').scrollIntoView({ behavior: 'smooth' });
  },
  async reproduce(job) {
    const section = $('.gallery');
    clearErrors(section);
    try {
      await runner.run(job.parameters);
      document.querySelector('.stage').scrollIntoView({ behavior: 'smooth' });
      refreshGallery(galleryActions);
    } catch (error) {
      showError(section, error);
    }
  },
  useSettings(job) {
    const p = job.parameters;
    writeSettings(p);
    const subjects = [...(p.subjects ?? []), ...(p.kind === 'morph' ? [{ word: p.word, upload: p.from }] : [])];
    state.bindings.clear();
    for (const { word, upload } of subjects) {
      for (const id of Array.isArray(upload) ? upload : [upload]) {
        state.bindings.set(id, word);
        state.hidden.delete(id);
      }
    }
    composerChanged();
    $('#compose').scrollIntoView({ behavior: 'smooth' });
  },
};

function describeServer(health) {
  const name = health.model.split(/[\\/]/).filter(Boolean).pop();
  const moa = health.moa ? 'MoA' : 'no MoA weights: text-to-image only';
  $('#server-info').textContent = `${name} · ${moa} · ${health.precision} on ${health.device}`;
  $('#server-info').title = `${health.model}${health.moa ? `\n${health.moa}` : ''}`;
  const personal = Boolean(health.moa);
  for (const selector of ['#subjects', '#bound-words', '[data-field="subjectGuidance"]', '[data-field="subjectGuidanceArea"]', '[data-field="strength"]', '[data-field="subjectStart"]', '[data-field="maps"]']) $(selector).hidden = !personal;
  $('#canvas .placeholder').textContent = personal ? 'Bind a photo to a word of the prompt, then generate.' : 'Write a prompt, then generate.';
}

function showBanner(text) {
  $('#banner').textContent = text;
  $('#banner').hidden = !text;
}

async function start() {
  showBanner('');
  let health;
  try {
    health = await api.health();
  } catch (error) {
    if (error.status === 401) {
      $('#token-form').hidden = false;
      $('#server-info').textContent = 'Access token needed';
      showBanner(error.message);
    } else {
      showBanner(`The studio cannot reach the server: ${error.message}`);
    }
    return;
  }
  $('#token-form').hidden = true;
  state.health = health;
  describeServer(health);
  const saved = loadComposer();
  applyHealth(health, saved !== null);
  if (saved) writeSettings(saved);
  try {
    await loadPhotos();
  } catch (error) {
    showError($('#subjects'), error);
  }
  composerChanged();
  await refreshGallery(galleryActions);
  // A job still running (the page was reloaded while it ran) is followed again.
  const { jobs: running } = await api.jobs({ limit: 1, offset: 0, status: 'running' }).catch(() => ({ jobs: [] }));
  if (running.length && !runner.busy) runner.follow(running[0].id);
}

adoptUrlToken();
initSettings(composerChanged);
initPhotos(composerChanged);
initViewer();
initTools(() => state.current);
initGallery(galleryActions);
$('#compose').addEventListener('submit', (event) => {
  event.preventDefault();
  submit($('#compose'), generateRequest);
});
$('#swap-form').addEventListener('submit', (event) => {
  event.preventDefault();
  submit($('#swap-form'), () => swapRequest(state.current));
});
$('#morph-form').addEventListener('submit', (event) => {
  event.preventDefault();
  submit($('#morph-form'), () => morphRequest(state.current));
});
window.addEventListener('resize', fitPromptHeight);
$('#token-form').addEventListener('submit', (event) => {
  event.preventDefault();
  setToken($('#token-input').value.trim());
  $('#token-input').value = '';
  start();
});
start();
