// Swap and morph, starting from the job on show: same prompt, seed and settings, another photo
// for one of its subjects (swap), or frames blending one subject into another photo (morph).
import { withToken } from './api.js';
import { $, el } from './dom.js';
import { photoNumber, state, visiblePhotos } from './store.js';

// The fields swap and morph share with the job they start from (docs/api.md).
const SHARED = ['prompt', 'negativePrompt', 'seed', 'steps', 'guidance', 'subjectGuidance', 'subjectGuidanceArea', 'strength', 'subjectStart', 'maps', 'width', 'height', 'scheduler'];

/** The job's subjects, the morphing one included (as its 'from' photo). */
function subjectsOf(job) {
  const p = job.parameters;
  const subjects = [...(p.subjects ?? [])];
  if (job.kind === 'morph') subjects.push({ word: p.word, upload: p.from });
  return subjects;
}

let busy = false;
/** While a job runs the tools wait (the studio follows one job at a time). */
export const setToolsBusy = (value) => (busy = value);

const ids = (upload) => (Array.isArray(upload) ? upload : [upload]);

function baseRequest(job) {
  return Object.fromEntries(SHARED.filter((f) => job.parameters[f] !== undefined).map((f) => [f, job.parameters[f]]));
}

/** A radio per photo not already used for `word` in the job, labelled by the photo's number. */
function renderPicker(fieldset, name, job, word) {
  const used = new Set(ids(subjectsOf(job).find((s) => s.word === word)?.upload ?? []));
  const choices = visiblePhotos().filter((p) => !used.has(p.id));
  const previous = fieldset.querySelector('input:checked')?.value;
  const legend = fieldset.querySelector('legend');
  const options = choices.map((photo) =>
    el('label', { class: 'pick' }, el('input', { type: 'radio', name, value: photo.id, checked: photo.id === previous }), el('img', { src: withToken(photo.url), alt: `Photo ${photoNumber(photo.id)}`, width: 48, height: 48 })),
  );
  fieldset.replaceChildren(legend, ...(options.length ? options : [el('p', { class: 'hint', text: 'Upload another photo to choose from.' })]));
  if (options.length && !fieldset.querySelector('input:checked')) options[0].querySelector('input').checked = true;
  return options.length > 0;
}

function fillWords(select, words) {
  const previous = select.value;
  select.replaceChildren(...words.map((w) => el('option', { value: w, text: w })));
  if (words.includes(previous)) select.value = previous;
}

/** Shows the tools for the job on show (a finished generate, swap or morph with subjects). */
export function renderTools(job) {
  const usable = job && job.status === 'succeeded' && ['generate', 'swap', 'morph'].includes(job.kind) && subjectsOf(job).length > 0 && state.health?.kinds.includes('swap');
  $('#tools').hidden = !usable;
  if (!usable) return;
  const words = subjectsOf(job).map((s) => s.word);
  fillWords($('#swap-word'), words);
  fillWords($('#morph-word'), words);
  const canSwap = renderPicker($('#swap-photos'), 'swap-photo', job, $('#swap-word').value);
  const canMorph = renderPicker($('#morph-photos'), 'morph-photo', job, $('#morph-word').value);
  $('#swap-form button[type=submit]').disabled = busy || !canSwap;
  $('#morph-form button[type=submit]').disabled = busy || !canMorph;
}

/** The swap request for the form's choices. */
export function swapRequest(job) {
  const word = $('#swap-word').value;
  const photo = $('#swap-photos input:checked')?.value;
  if (!photo) throw Object.assign(new Error('choose the replacement photo'), { field: 'alternatives' });
  return { ...baseRequest(job), kind: 'swap', subjects: subjectsOf(job), alternatives: [[{ word, upload: photo }]] };
}

/** The morph request: the chosen subject from its photo in the job to the chosen photo. */
export function morphRequest(job) {
  const word = $('#morph-word').value;
  const photo = $('#morph-photos input:checked')?.value;
  if (!photo) throw Object.assign(new Error('choose the photo to morph to'), { field: 'to' });
  const subjects = subjectsOf(job);
  const from = subjects.find((s) => s.word === word).upload;
  return {
    ...baseRequest(job),
    kind: 'morph',
    subjects: subjects.filter((s) => s.word !== word),
    word,
    from,
    to: photo,
    frames: Number($('#morph-frames').value),
  };
}

export function initTools(getJob) {
  $('#swap-word').addEventListener('change', () => renderTools(getJob()));
  $('#morph-word').addEventListener('change', () => renderTools(getJob()));
}
