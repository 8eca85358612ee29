// The gallery of past jobs (GET /api/jobs, newest first): each card shows the job's parameters
// and can open it, run it again with the same parameters, load them into the composer, copy
// them or download them as JSON.
import { api, withToken } from './api.js';
import { $, copyText, downloadJson, el } from './dom.js';
import { clearErrors, showError } from './errors.js';

const PAGE = 24;
let shown = PAGE;

const when = (iso) => (iso ? new Date(iso).toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'short' }) : '');

function subjectWords(p) {
  const words = (p.subjects ?? []).map((s) => s.word);
  if (p.kind === 'morph') words.push(`${p.word} (morph)`);
  return words;
}

/** The parameters worth a glance, as a definition list. */
function facts(p) {
  const rows = [
    ['seed', p.seed],
    ['steps', p.steps],
    ['guidance', p.guidance],
    p.subjectGuidance !== undefined ? ['subject guidance', `${p.subjectGuidance}${p.subjectGuidanceArea === 'routing' ? ' (where routed)' : ''}`] : null,
    p.width ? ['size', `${p.width}×${p.height}`] : null,
    ['strength', p.strength],
    p.subjectStart ? ['subject start', p.subjectStart] : null,
    subjectWords(p).length ? ['subjects', subjectWords(p).join(', ')] : null,
    p.kind === 'swap' ? ['swaps', p.alternatives.length] : null,
    p.kind === 'morph' ? ['frames', p.frames] : null,
    p.batch > 1 ? ['images', p.batch] : null,
  ].filter(Boolean);
  return el('dl', { class: 'facts' }, ...rows.map(([k, v]) => el('div', {}, el('dt', { text: k }), el('dd', { text: String(v) }))));
}

function thumbnail(job) {
  const first = job.results?.[0];
  if (first) return el('img', { src: withToken(first.url), alt: `${job.kind} result` });
  return el('span', { class: 'thumb-status', text: job.status });
}

function card(job, actions) {
  const p = job.parameters;
  const count = job.results?.length ?? 0;
  return el(
    'li',
    {},
    el(
      'article',
      { class: `job-card status-${job.status}`, 'aria-label': `Job ${job.id}`, 'data-job-id': job.id },
      el('button', { type: 'button', class: 'job-thumb', 'aria-label': 'Open', title: 'Show in the result area', onclick: () => actions.open(job), disabled: count === 0 }, thumbnail(job)),
      el(
        'div',
        { class: 'job-meta' },
        el('p', { class: 'job-head' }, el('span', { class: `badge kind-${job.kind}`, text: job.kind }), el('span', { class: `badge status-${job.status}`, text: job.status }), el('time', { datetime: job.createdAt, text: when(job.createdAt) })),
        el('p', { class: 'job-prompt', text: p.prompt, title: p.prompt }),
        facts(p),
        job.error ? el('p', { class: 'job-error', text: job.error.message }) : null,
      ),
      el(
        'div',
        { class: 'job-actions' },
        el('button', { type: 'button', text: 'Reproduce', title: 'Run again with the same parameters', onclick: () => actions.reproduce(job) }),
        el('button', { type: 'button', text: 'Use settings', title: 'Load these parameters into the composer', onclick: () => actions.useSettings(job) }),
        el('button', { type: 'button', text: 'Copy parameters', onclick: (e) => copyParameters(e.currentTarget, job) }),
        el('button', { type: 'button', text: 'Download JSON', onclick: () => downloadJson(`moa-${job.kind}-${job.id}.json`, job.parameters) }),
      ),
    ),
  );
}

async function copyParameters(button, job) {
  try {
    await copyText(JSON.stringify(job.parameters, null, 2));
    button.textContent = 'Copied';
  } catch (error) {
    button.textContent = 'Copy failed';
    button.title = error.message;
  }
  setTimeout(() => (button.textContent = 'Copy parameters'), 1500);
}

/** Reloads the gallery; `actions`: open(job), reproduce(job), useSettings(job). */
export async function refreshGallery(actions) {
  const section = $('.gallery');
  clearErrors(section);
  try {
    const { jobs, total } = await api.jobs({ limit: shown, offset: 0 });
    const list = $('#gallery-list');
    list.replaceChildren(...jobs.map((job) => card(job, actions)));
    if (jobs.length === 0) list.append(el('li', { class: 'empty', text: 'No jobs yet: what you generate is kept here.' }));
    $('#gallery-more').hidden = total <= jobs.length;
  } catch (error) {
    showError(section, error);
  }
}

export function initGallery(actions) {
  $('#gallery-refresh').addEventListener('click', () => refreshGallery(actions));
  $('#gallery-more').addEventListener('click', () => {
    shown += PAGE;
    refreshGallery(actions);
  });
}
