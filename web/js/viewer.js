// The result area: a job's images (a strip for batches and swaps, a slider for morph frames),
// the live preview while a job runs, and its routing maps laid over the image.
import { withToken } from './api.js';
import { $, el } from './dom.js';

let job = null;
let shown = 0;

const canvas = () => $('#canvas');

/** Tiny images are drawn with hard pixel edges instead of a blur. */
function fitCanvas(width, height) {
  canvas().style.aspectRatio = `${width} / ${height}`;
  canvas().classList.toggle('pixelated', Math.max(width, height) < 256);
}

/** The live preview of a running job (a small decode of the current latents). */
export function showPreview(image, step, total) {
  const preview = $('#preview-image');
  preview.src = image;
  preview.alt = `Preview at step ${step} of ${total}`;
  preview.hidden = false;
  canvas().classList.add('has-image', 'previewing');
  $('#result-caption').textContent = `Preview, step ${step} of ${total}`;
}

/** Ends the preview, leaving the result that was on show. */
export function hidePreview() {
  $('#preview-image').hidden = true;
  canvas().classList.remove('previewing');
}

/** Shows a job: its first result (or its error), the strip or morph slider, maps and parameters. */
export function showJob(next) {
  job = next;
  hidePreview();
  $('#job-parameters').textContent = JSON.stringify(job.parameters, null, 2);
  const results = job.results ?? [];
  const morph = job.kind === 'morph' && results.length > 1;
  $('#morph-scrub').hidden = !morph;
  if (morph) {
    const slider = $('#morph-frame');
    slider.max = String(results.length - 1);
    slider.value = '0';
  }
  $('#result-strip').hidden = morph || results.length < 2;
  $('#result-strip').replaceChildren(
    ...results.map((r, i) =>
      el('button', { type: 'button', class: 'thumb', 'aria-label': `Show ${r.label}`, 'aria-pressed': 'false', onclick: () => showResult(i) }, el('img', { src: withToken(r.url), alt: '' }), el('span', { text: r.label })),
    ),
  );
  if (results.length === 0) {
    $('#result-image').hidden = true;
    $('#map-overlay').hidden = true;
    $('#map-controls').hidden = true;
    canvas().classList.remove('has-image');
    $('#result-caption').textContent = job.error ? `${job.status}: ${job.error.message}` : job.status;
    return;
  }
  showResult(0);
}

/** Shows result `index` of the job on show, with its maps. */
export function showResult(index) {
  shown = index;
  const result = job.results[index];
  const image = $('#result-image');
  image.src = withToken(result.url);
  image.alt = `${job.kind === 'generate' ? 'Generated image' : `${job.kind} result`}: ${result.label}`;
  image.hidden = false;
  fitCanvas(result.width, result.height);
  canvas().classList.add('has-image');
  const p = job.parameters;
  const morph = job.kind === 'morph';
  const label = morph ? `frame ${index + 1} of ${job.results.length}` : result.label;
  const alpha = result.alpha !== undefined ? ` · α ${result.alpha.toFixed(2)}` : '';
  $('#result-caption').textContent = `${label} · seed ${result.seed} · ${p.steps} steps · ${result.width}×${result.height}${alpha}`;
  $('#result-strip').querySelectorAll('.thumb').forEach((b, i) => b.setAttribute('aria-pressed', String(i === index)));
  if (!$('#morph-scrub').hidden) {
    $('#morph-frame').value = String(index);
    $('#morph-alpha').value = `${label}${alpha}`;
  }
  showMapChoices();
}

/** 'down_blocks.1.attentions.0.transformer_blocks.0.attn2' → 'down 1.0'; other names stay as they are. */
function shortLayer(layer) {
  const m = /^(down|up)_blocks\.(\d+)\.attentions\.(\d+)\.transformer_blocks\.(\d+)\.attn\d$/.exec(layer) ?? /^(mid)_block\.attentions\.(\d+)\.transformer_blocks\.(\d+)\.attn\d$/.exec(layer);
  if (!m) return layer;
  const [, block, ...indices] = m;
  // The transformer block index is almost always 0 in SD; shown only when it is not.
  if (indices.at(-1) === '0') indices.pop();
  return `${block} ${indices.join('.')}`;
}

function mapName(m) {
  if (m.kind === 'routing-mean') return 'Routing: mean of all layers';
  if (m.kind === 'subject') return `Attention of “${m.word}”`;
  return `Routing: ${shortLayer(m.layer)}, ${m.layerKind === 'cross' ? 'cross-attention' : 'self-attention'}`;
}

/** Fills the layer select with the maps of the result on show, keeping the chosen kind of map. */
function showMapChoices() {
  const maps = (job.maps ?? []).filter((m) => m.result === shown);
  const select = $('#map-layer');
  const before = select.selectedOptions[0]?.textContent;
  $('#map-controls').hidden = maps.length === 0;
  select.replaceChildren(el('option', { value: '', text: 'No map' }), ...maps.map((m) => el('option', { value: m.url, text: mapName(m), title: m.layer })));
  const keep = [...select.options].find((o) => o.textContent === before);
  select.value = keep ? keep.value : (maps.find((m) => m.kind === 'routing-mean')?.url ?? '');
  showMap();
}

function showMap() {
  const overlay = $('#map-overlay');
  const url = $('#map-layer').value;
  overlay.hidden = !url;
  if (!url) return;
  overlay.src = withToken(url);
  overlay.alt = `Map: ${$('#map-layer').selectedOptions[0].textContent}`;
  overlay.style.opacity = $('#map-opacity').value;
}

export const currentJob = () => job;

export function initViewer() {
  $('#map-layer').addEventListener('change', showMap);
  $('#map-opacity').addEventListener('input', () => ($('#map-overlay').style.opacity = $('#map-opacity').value));
  $('#morph-frame').addEventListener('input', () => showResult(Number($('#morph-frame').value)));
}
