// CLIP image preprocessing as transformers' CLIPImageProcessor does it: resize the short side to
// 224 (bicubic), centre-crop 224 × 224, normalise with CLIP's mean and std. The resize runs in
// libtorch on the float image; bicubic with antialias is PIL's filter (a = -0.5, widened when
// shrinking), which is what the processor resamples with. MoA's reference images may first have
// their background replaced (grey or noise) through a subject mask, and be cut to the subject.
import { rand, tensor } from '../tensor/create.js';
import { cat, interpolate, pad } from '../tensor/functional.js';
import { type Generator } from '../tensor/generator.js';
import { tidy } from '../tensor/scope.js';
import { type Tensor } from '../tensor/tensor.js';

export const CLIP_IMAGE_MEAN = Object.freeze([0.48145466, 0.4578275, 0.40821073] as const);
export const CLIP_IMAGE_STD = Object.freeze([0.26862954, 0.26130258, 0.27577711] as const);
export const CLIP_IMAGE_SIZE = 224;

/** What replaces the background: 'grey' (0.5), 'noise' (uniform per pixel, needs a generator) or a grey level in [0, 1]. */
export type Background = 'grey' | 'noise' | number;

export interface BackgroundOptions {
  background?: Background;
  /** Required for 'noise': every random draw in moa is seeded. */
  generator?: Generator;
}

export interface ClipPreprocessOptions extends BackgroundOptions {
  /** The short side after resizing. Default 224. */
  size?: number;
  /** The centre crop's side. Default 224. */
  cropSize?: number;
  /** Subject mask (1 = keep, 0 = background) at the image's resolution: [H, W], [1, H, W] or [N or 1, 1, H, W]. */
  mask?: Tensor | null;
  /** With a mask: first cut each image to the square around its subject (`squareAround`), so the subject fills the frame. */
  cropToMask?: boolean;
}

/** [N, C, H, W] or [C, H, W] floating point → float32 [N, C, H, W]. */
function asBatch(image: Tensor, what: string): Tensor {
  if (!['float32', 'float64', 'float16', 'bfloat16'].includes(image.dtype)) throw new TypeError(`${what} takes a floating-point image in [0, 1], not ${image.dtype}`);
  if (image.ndim === 3) return image.unsqueeze(0).float();
  if (image.ndim === 4) return image.float();
  throw new RangeError(`${what} takes an image [N, C, H, W] or [C, H, W], not [${image.shape.join(', ')}]`);
}

/** A mask as float32 [N or 1, 1, H, W] matching the image's height and width. */
function asMask(mask: Tensor, image: Tensor): Tensor {
  const [n, , h, w] = image.shape as [number, number, number, number];
  const [mh, mw] = mask.shape.slice(-2);
  const lead = mask.shape.slice(0, -2);
  const leadOk = lead.length === 0 || (lead.length === 1 && lead[0] === 1) || (lead.length === 2 && lead[1] === 1 && (lead[0] === 1 || lead[0] === n));
  if (!leadOk || mh !== h || mw !== w) {
    throw new RangeError(`a mask for an image [${image.shape.join(', ')}] is [${h}, ${w}], [1, ${h}, ${w}] or [${n} or 1, 1, ${h}, ${w}], not [${mask.shape.join(', ')}]`);
  }
  return (mask.ndim === 4 ? mask : mask.reshape(1, 1, h, w)).float();
}

/** image·mask + background·(1 − mask): keeps the subject, replaces the rest. */
export function replaceBackground(image: Tensor, mask: Tensor, { background = 'grey', generator }: BackgroundOptions = {}): Tensor {
  return tidy(() => {
    const x = asBatch(image, 'replaceBackground');
    const m = asMask(mask, x);
    if (background === 'noise') {
      if (!generator) throw new TypeError("background 'noise' needs a generator: pass { generator: new Generator(seed) }");
      const noise = rand(x.shape, { generator, device: x.device });
      return noise.add(x.sub(noise).mul(m));
    }
    const level = background === 'grey' ? 0.5 : background;
    if (typeof level !== 'number' || !(level >= 0 && level <= 1)) throw new RangeError(`background must be 'grey', 'noise' or a level in [0, 1], not ${String(background)}`);
    return x.sub(level).mul(m).add(level);
  });
}

/** The box [top, left, bottom, right) (bottom and right exclusive) of the pixels where a mask [H, W] (or [1, H, W], [1, 1, H, W]) is above 0.5; null when none is. */
export function maskBox(mask: Tensor): [number, number, number, number] | null {
  const [h, w] = mask.shape.slice(-2) as [number, number];
  if (mask.ndim < 2 || mask.numel !== h * w) throw new RangeError(`maskBox takes one mask [H, W], [1, H, W] or [1, 1, H, W], not [${mask.shape.join(', ')}]`);
  const data = mask.toFloat32Array();
  let [top, left, bottom, right] = [h, w, 0, 0];
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      if (!(data[y * w + x]! > 0.5)) continue;
      [top, left, bottom, right] = [Math.min(top, y), Math.min(left, x), Math.max(bottom, y + 1), Math.max(right, x + 1)];
    }
  }
  return bottom > top ? [top, left, bottom, right] : null;
}

/**
 * The square around a box [top, left, bottom, right) of an image [N, C, H, W] and its mask
 * [N or 1, 1, H, W]: the box clipped to the image, then its short side padded equally on both
 * sides with zeros, mask 0 (so a background replacement covers the padding too). Null when the
 * clipped box is empty.
 */
export function squareAround(image: Tensor, mask: Tensor, [top, left, bottom, right]: readonly number[]): { image: Tensor; mask: Tensor } | null {
  const [h, w] = [image.size(2), image.size(3)];
  const [y0, x0, y1, x1] = [Math.max(0, top!), Math.max(0, left!), Math.min(h, bottom!), Math.min(w, right!)];
  if (y1 <= y0 || x1 <= x0) return null;
  const [bh, bw] = [y1 - y0, x1 - x0];
  const side = Math.max(bh, bw);
  const padding = [Math.floor((side - bw) / 2), Math.ceil((side - bw) / 2), Math.floor((side - bh) / 2), Math.ceil((side - bh) / 2)];
  const cut = (t: Tensor) => pad(t.narrow(2, y0, bh).narrow(3, x0, bw), padding);
  return tidy(() => ({ image: cut(image), mask: cut(mask) }));
}

/** The [height, width] whose short side is `size`, the long side scaled and truncated (as transformers). */
export function shortSideSize(height: number, width: number, size: number): [number, number] {
  const long = Math.floor((size * Math.max(height, width)) / Math.min(height, width));
  return height <= width ? [size, long] : [long, size];
}

/** Resizes so the short side is `size`: bicubic with antialias (PIL's filter), clamped to [0, 1] as 8-bit pixels would be. */
export function resizeShortSide(image: Tensor, size: number): Tensor {
  return tidy(() => {
    const x = asBatch(image, 'resizeShortSide');
    const [h, w] = [x.size(2), x.size(3)];
    const [nh, nw] = shortSideSize(h, w, size);
    if (nh === h && nw === w) return x.clone();
    return interpolate(x, { size: [nh, nw], mode: 'bicubic', antialias: true }).clamp(0, 1);
  });
}

/** The central size × size window (top and left rounded down); a smaller image is first padded with zeros, as transformers. */
export function centerCrop(image: Tensor, size: number): Tensor {
  return tidy(() => {
    let x = asBatch(image, 'centerCrop');
    const [h, w] = [x.size(2), x.size(3)];
    if (h < size || w < size) {
      const [ph, pw] = [Math.max(size - h, 0), Math.max(size - w, 0)];
      x = pad(x, [Math.ceil(pw / 2), Math.floor(pw / 2), Math.ceil(ph / 2), Math.floor(ph / 2)]);
    }
    const top = Math.floor((x.size(2) - size) / 2);
    const left = Math.floor((x.size(3) - size) / 2);
    return x.narrow(2, top, size).narrow(3, left, size).contiguous();
  });
}

/** (x − mean) / std per channel. */
export function normalize(image: Tensor, mean: readonly number[] = CLIP_IMAGE_MEAN, std: readonly number[] = CLIP_IMAGE_STD): Tensor {
  return tidy(() => {
    const x = asBatch(image, 'normalize');
    const c = x.size(1);
    if (mean.length !== c || std.length !== c) throw new RangeError(`normalize: ${c} channels but ${mean.length} means and ${std.length} stds`);
    const column = (v: readonly number[]) => tensor([...v], { shape: [1, c, 1, 1], device: x.device });
    return x.sub(column(mean)).div(column(std));
  });
}

/** An RGB image in [0, 1] ([N, 3, H, W] or [3, H, W]) → CLIP pixel values float32 [N, 3, 224, 224]. */
export function clipPreprocess(image: Tensor, options: ClipPreprocessOptions = {}): Tensor {
  const { size = CLIP_IMAGE_SIZE, cropSize = CLIP_IMAGE_SIZE, mask = null, cropToMask = false, ...background } = options;
  for (const [name, v] of [['size', size], ['cropSize', cropSize]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`clipPreprocess: ${name} must be a positive integer, not ${v}`);
  }
  return tidy(() => {
    let x = asBatch(image, 'clipPreprocess');
    if (x.size(1) !== 3) throw new RangeError(`clipPreprocess takes RGB images (3 channels), not [${image.shape.join(', ')}]`);
    if (mask && cropToMask) return normalize(centerCrop(cat(subjectSquares(x, asMask(mask, x), background, size)), cropSize));
    if (mask) x = replaceBackground(x, mask, background);
    return normalize(centerCrop(resizeShortSide(x, size), cropSize));
  });
}

/** Each image cut to the square around its mask's subject, background replaced, resized to side `size`. */
function subjectSquares(x: Tensor, mask: Tensor, background: BackgroundOptions, size: number): Tensor[] {
  return Array.from({ length: x.size(0) }, (_, i) => {
    const m = mask.narrow(0, mask.size(0) === 1 ? 0 : i, 1);
    const box = maskBox(m);
    if (!box) throw new RangeError(`clipPreprocess: the mask of image ${i} is empty (no pixel above 0.5), so it shows no subject; give the subject's mask, or none`);
    const square = squareAround(x.narrow(0, i, 1), m, box)!;
    return resizeShortSide(replaceBackground(square.image, square.mask, background), size);
  });
}
