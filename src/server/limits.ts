// The limits a server enforces on requests (from `moa serve`'s options) and the fixed ones.
export interface Limits {
  maxSteps: number;
  maxBatch: number;
  maxSide: number;
  maxUploadBytes: number;
}

/** Frames of one morph job. */
export const MAX_FRAMES = 24;
/** Variants of one swap job. */
export const MAX_ALTERNATIVES = 8;
/** Reference images of one subject. */
export const MAX_REFERENCES = 8;
export const MAX_PROMPT = 2000;
/** Largest seed (seeds of a batch count up from it). */
export const MAX_SEED = 2 ** 31 - 1;
