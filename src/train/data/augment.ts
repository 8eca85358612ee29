// FastComposer's augmentation (spec 3.2): sometimes train unconditionally (no caption, no
// subjects) so classifier-free guidance works; randomly drop subjects so the model does not
// rely on every person being bound; never more subjects than the model has slots for.
import { shuffledIndices } from './rng.js';

export interface AugmentOptions {
  /** Probability of dropping the caption and all subjects. Default 0.1. */
  dropCaption?: number;
  /** Probability each subject is kept. Default 0.9. */
  keepSubject?: number;
  /** At most this many subjects; a random subset is kept beyond it. Default 4. */
  maxSubjects?: number;
}

export interface Augmented<T> {
  caption: string;
  /** The kept subjects, in their original order. */
  subjects: T[];
  /** True when the caption and subjects were dropped. */
  unconditional: boolean;
}

export function checkAugmentOptions({ dropCaption = 0.1, keepSubject = 0.9, maxSubjects = 4 }: AugmentOptions = {}): Required<AugmentOptions> {
  for (const [name, p] of [['dropCaption', dropCaption], ['keepSubject', keepSubject]] as const) {
    if (!(p >= 0 && p <= 1)) throw new RangeError(`augment: ${name} must be a probability in [0, 1], not ${p}`);
  }
  if (!Number.isInteger(maxSubjects) || maxSubjects < 0) throw new RangeError(`augment: maxSubjects must be an integer ≥ 0, not ${maxSubjects}`);
  return { dropCaption, keepSubject, maxSubjects };
}

/** Applies the augmentation with `random` (uniform in [0, 1)); the same draws give the same result. */
export function augmentSubjects<T>(caption: string, subjects: readonly T[], random: () => number, options: AugmentOptions = {}): Augmented<T> {
  const { dropCaption, keepSubject, maxSubjects } = checkAugmentOptions(options);
  if (random() < dropCaption) return { caption: '', subjects: [], unconditional: true };
  let kept = subjects.filter(() => random() < keepSubject);
  if (kept.length > maxSubjects) {
    const chosen = new Set(shuffledIndices(kept.length, random).slice(0, maxSubjects));
    kept = kept.filter((_, i) => chosen.has(i));
  }
  return { caption, subjects: kept, unconditional: false };
}
