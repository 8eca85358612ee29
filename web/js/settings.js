// The composer's settings: read into a job request, filled from a job's parameters, and fitted
// to the server's defaults and limits.
import { $, randomSeed } from './dom.js';

const NUMBERS = { seed: '#seed', steps: '#steps', guidance: '#guidance', batch: '#batch', width: '#width', height: '#height', subjectGuidance: '#subject-guidance', strength: '#strength', subjectStart: '#subject-start' };

/**
 * The settings as request fields; an empty number box, or one hidden (MoA's settings on a server
 * without MoA), leaves its field to the server's default.
 */
export function readSettings() {
  const settings = { prompt: $('#prompt').value, negativePrompt: $('#negative').value };
  for (const [field, selector] of Object.entries(NUMBERS)) {
    if ($(selector).closest('[data-field]')?.hidden) continue;
    const text = $(selector).value.trim();
    if (text !== '') settings[field] = Number(text);
  }
  settings.scheduler = $('#scheduler').value;
  settings.maps = $('#maps').checked;
  // Only with a subject scale of its own, and only where MoA's settings show.
  if (settings.subjectGuidance !== undefined && $('#subject-guidance-routed').checked) settings.subjectGuidanceArea = 'routing';
  return settings;
}

/** Fills the composer from saved settings or a job's parameters (fields it lacks stay as they are). */
export function writeSettings(parameters) {
  if (typeof parameters.prompt === 'string') $('#prompt').value = parameters.prompt;
  if (typeof parameters.negativePrompt === 'string') $('#negative').value = parameters.negativePrompt;
  for (const [field, selector] of Object.entries(NUMBERS)) {
    if (typeof parameters[field] !== 'number') continue;
    // A slider widens to take a value past its usual range (the API allows strength up to 10).
    if ($(selector).type === 'range' && Number($(selector).max) < parameters[field]) $(selector).max = String(parameters[field]);
    $(selector).value = String(parameters[field]);
  }
  // Absent, the subjects' guidance is the guidance's: an empty box.
  if (parameters.subjectGuidance === undefined) $('#subject-guidance').value = '';
  if (typeof parameters.scheduler === 'string') $('#scheduler').value = parameters.scheduler;
  if (typeof parameters.maps === 'boolean') $('#maps').checked = parameters.maps;
  $('#subject-guidance-routed').checked = parameters.subjectGuidanceArea === 'routing';
  showRangeValues();
}

export function showRangeValues() {
  $('#strength-value').value = Number($('#strength').value).toFixed(2);
  $('#subject-start-value').value = `${Math.round(Number($('#subject-start').value) * 100)}%`;
}

/** Bounds and defaults from GET /api/health. */
export function applyHealth(health, hasSaved) {
  const { defaults, limits } = health;
  $('#steps').max = String(limits.maxSteps);
  $('#batch').max = String(limits.maxBatch);
  for (const side of ['#width', '#height']) {
    $(side).step = String(defaults.sizeMultiple);
    $(side).min = String(defaults.sizeMultiple);
    $(side).max = String(limits.maxSide);
  }
  $('#morph-frames').max = String(limits.maxFrames);
  if (!hasSaved) {
    $('#width').value = String(defaults.width);
    $('#height').value = String(defaults.height);
    $('#guidance').value = String(defaults.guidance);
    $('#seed').value = String(randomSeed());
  }
}

export function initSettings(onChange) {
  $('#dice').addEventListener('click', () => {
    $('#seed').value = String(randomSeed());
    onChange();
  });
  for (const id of ['#strength', '#subject-start']) $(id).addEventListener('input', showRangeValues);
  $('#compose').addEventListener('input', onChange);
  $('#compose').addEventListener('change', onChange);
  showRangeValues();
}
