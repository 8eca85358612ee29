// `--subject word=path[,path2...]` on the command line: a word of the prompt and its reference
// images, each optionally with a mask (`path:mask.png`). An RGBA image without a mask uses its
// alpha as the mask.
import { InvalidArgumentError } from 'commander';
import { readImageWithAlpha, readMask } from '../io/image.js';
import { centerCrop, CLIP_IMAGE_SIZE, resizeShortSide } from '../models/clip-preprocess.js';
import type { SubjectImages } from '../pipelines/subjects.js';
import { ones } from '../tensor/create.js';
import { cat } from '../tensor/functional.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

export interface ReferenceSpec {
  image: string;
  mask?: string;
}

export interface SubjectSpec {
  word: string;
  references: ReferenceSpec[];
}

/** `path` or `path:mask` (the last colon splits, so a path may hold colons before it). */
export function parseReferences(text: string, what = 'reference'): ReferenceSpec[] {
  const items = text.split(',').map((s) => s.trim());
  if (items.some((s) => !s)) throw new InvalidArgumentError(`${what}: an empty image path in '${text}'`);
  return items.map((item) => {
    const colon = item.lastIndexOf(':');
    if (colon < 0) return { image: item };
    const [image, mask] = [item.slice(0, colon), item.slice(colon + 1)];
    if (!image || !mask) throw new InvalidArgumentError(`${what}: '${item}' should be image.png or image.png:mask.png`);
    return { image, mask };
  });
}

/** `word=path[,path2...]`, each path optionally `path:mask.png`. */
export function parseSubjectSpec(text: string): SubjectSpec {
  const eq = text.indexOf('=');
  if (eq < 0) throw new InvalidArgumentError(`'${text}' should be word=image.png (a word of the prompt, then its reference images)`);
  const word = text.slice(0, eq).trim();
  if (!word) throw new InvalidArgumentError(`'${text}': the word before '=' is empty`);
  return { word, references: parseReferences(text.slice(eq + 1), `subject '${word}'`) };
}

/** Commander's collector for a repeated option. */
export const collectSubjects = (value: string, previous: SubjectSpec[] = []): SubjectSpec[] => [...previous, parseSubjectSpec(value)];

/** Several `word=...` specs joined by ';' (one variant of `moa swap`). */
export function parseSubjectList(text: string): SubjectSpec[] {
  return text.split(';').map((s) => s.trim()).filter(Boolean).map(parseSubjectSpec);
}

/**
 * Reads a subject's reference images (RGB in [0, 1]) and masks into batches [N, 3, H, W] and
 * [N, 1, H, W]. Images of different sizes are first brought to CLIP's 224 × 224 crop, which the
 * encoder's preprocessing then leaves as is.
 */
export async function loadReferences(references: readonly ReferenceSpec[]): Promise<SubjectImages> {
  const images: Tensor[] = [];
  const masks: (Tensor | null)[] = [];
  try {
    for (const ref of references) {
      const { rgb, alpha } = await readImageWithAlpha(ref.image);
      images.push(rgb);
      if (ref.mask) {
        alpha?.dispose();
        const mask = await readMask(ref.mask);
        masks.push(mask);
        if (mask.size(2) !== rgb.size(2) || mask.size(3) !== rgb.size(3)) {
          throw new Error(`mask '${ref.mask}' is ${mask.size(3)}×${mask.size(2)} but image '${ref.image}' is ${rgb.size(3)}×${rgb.size(2)}`);
        }
      } else masks.push(alpha);
    }
    return tidy(() => {
      const sameSize = images.every((t) => t.size(2) === images[0]!.size(2) && t.size(3) === images[0]!.size(3));
      const fit = (t: Tensor) => (sameSize ? t : centerCrop(resizeShortSide(t, CLIP_IMAGE_SIZE), CLIP_IMAGE_SIZE));
      const batch = cat(images.map(fit), 0);
      if (masks.every((m) => m === null)) return { images: batch, masks: null };
      const full = masks.map((m, i) => fit(m ?? ones([1, 1, images[i]!.size(2), images[i]!.size(3)])));
      return { images: batch, masks: cat(full, 0) };
    });
  } finally {
    for (const t of [...images, ...masks]) t?.dispose();
  }
}
