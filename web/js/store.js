// What the studio knows: the server's health, the reference photos and the words they are bound
// to, and the job on show. The composer's settings and bindings are kept in browser storage so a
// reload keeps the work.
import { promptWords } from './prompt.js';

const SAVED_KEY = 'moa-studio:composer';
export const SUBJECT_COLOURS = 6;

export const state = {
  /** GET /api/health. */
  health: null,
  /** Upload records, oldest first; photo n (1-based) is photos[n - 1]. */
  photos: [],
  /** Upload ids removed from the tray (uploads cannot be deleted on the server). */
  hidden: new Set(),
  /** Upload id → the prompt word it is bound to. */
  bindings: new Map(),
  /** The job on show in the result area. */
  current: null,
};

export const photoNumber = (id) => state.photos.findIndex((p) => p.id === id) + 1;
export const visiblePhotos = () => state.photos.filter((p) => !state.hidden.has(p.id));

/** The bound words, in the order they appear in the prompt (then the ones no longer in it). */
export function boundWords(prompt) {
  const bound = new Set([...state.bindings.entries()].filter(([id]) => !state.hidden.has(id)).map(([, word]) => word));
  const inPrompt = promptWords(prompt).filter((w) => bound.has(w));
  return [...inPrompt, ...[...bound].filter((w) => !inPrompt.includes(w))];
}

/** A colour index per bound word (-1 for a word no photo is bound to). */
export function colourIndex(prompt) {
  const words = boundWords(prompt);
  return (word) => {
    const i = words.indexOf(word);
    return i < 0 ? -1 : i % SUBJECT_COLOURS;
  };
}

/** The request's `subjects`: one per bound word, with its photo or photos. */
export function subjectsFor(prompt) {
  return boundWords(prompt).map((word) => {
    const ids = visiblePhotos().filter((p) => state.bindings.get(p.id) === word).map((p) => p.id);
    return { word, upload: ids.length === 1 ? ids[0] : ids };
  });
}

export function saveComposer(settings) {
  const saved = { settings, bindings: [...state.bindings], hidden: [...state.hidden] };
  try {
    localStorage.setItem(SAVED_KEY, JSON.stringify(saved));
  } catch {
    // storage full or disabled: the studio still works, it just forgets on reload
  }
}

/** The saved settings (or null); restores bindings and hidden photos into the state. */
export function loadComposer() {
  try {
    const saved = JSON.parse(localStorage.getItem(SAVED_KEY) ?? 'null');
    if (!saved) return null;
    state.bindings = new Map(saved.bindings ?? []);
    state.hidden = new Set(saved.hidden ?? []);
    return saved.settings ?? null;
  } catch {
    return null;
  }
}
