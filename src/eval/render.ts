// World scenes and references at the judges' resolution, as the model sees them: drawn at twice
// the side and shrunk (bilinear, antialiased, as the trainer resizes the world's images), with
// the segment map shrunk by a vote over each 2 × 2 block, so labels match the pixels.
import { interpolate } from '../tensor/functional.js';
import { tensor } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { type Identity } from '../world/identity.js';
import { renderReference, renderScene, type SceneSpec, type Segment } from '../world/render.js';
import { classIndex } from './labels.js';

export interface JudgeScene {
  /** [3, S, S] float32 in [0, 1]; the caller owns it. */
  image: Tensor;
  /** Per pixel, row-major S × S: 0 background, k = segments[k − 1]. */
  segMap: Int32Array;
  /** Per pixel: 0 background, else the pixel class (labels.ts) of its subject. */
  classMap: Uint8Array;
  segments: Segment[];
  caption: string;
  scene: { kind: string; time: string };
  size: number;
}

/** Interleaved 8-bit RGB [S·S·3] → float32 [1, 3, S, S] in [0, 1]. */
export function rgbTensor(rgb: Uint8Array, size: number): Tensor {
  return tidy(() => tensor(rgb, { shape: [size, size, 3] }).permute(2, 0, 1).unsqueeze(0).float().div(255).contiguous());
}

/** Images [N, 3, 2S, 2S] → [N, 3, S, S], as the trainer resizes (bilinear, antialiased). */
export function shrink(images: Tensor, size: number): Tensor {
  return tidy(() => interpolate(images, { size: [size, size], mode: 'bilinear', antialias: true }).clamp(0, 1));
}

/**
 * A label map of side 2S → side S: each output pixel takes the label most of its 2 × 2 block
 * has; a tie goes to a subject over the background, then to the nearer-drawn (higher) label.
 */
export function shrinkLabels(labels: Int32Array, size: number): Int32Array {
  const big = size * 2;
  if (labels.length !== big * big) throw new RangeError(`shrinkLabels: ${labels.length} labels are not a ${big} × ${big} map`);
  const out = new Int32Array(size * size);
  const block = [0, 0, 0, 0];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = 2 * y * big + 2 * x;
      block[0] = labels[i]!;
      block[1] = labels[i + 1]!;
      block[2] = labels[i + big]!;
      block[3] = labels[i + big + 1]!;
      let best = block[0]!;
      let bestCount = 0;
      for (const l of block) {
        let count = 0;
        for (const m of block) if (m === l) count++;
        const better = count > bestCount || (count === bestCount && (best === 0 || (l !== 0 && l > best)));
        if (better) {
          best = l;
          bestCount = count;
        }
      }
      out[y * size + x] = best;
    }
  }
  return out;
}

function classMapOf(segMap: Int32Array, segments: readonly Segment[]): Uint8Array {
  const classes = segments.map((s) => classIndex(s.class));
  return Uint8Array.from(segMap, (l) => (l === 0 ? 0 : classes[l - 1]!));
}

/** The [h1, w1, h2, w2] extent of label `label` in a map of side `size` ([0, 0, 0, 0] when absent). */
export function labelBox(map: ArrayLike<number>, size: number, label: number): [number, number, number, number] {
  let [h1, w1, h2, w2] = [Infinity, Infinity, -Infinity, -Infinity];
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (map[y * size + x] !== label) continue;
      h1 = Math.min(h1, y);
      w1 = Math.min(w1, x);
      h2 = Math.max(h2, y + 1);
      w2 = Math.max(w2, x + 1);
    }
  }
  return h1 === Infinity ? [0, 0, 0, 0] : [h1, w1, h2, w2];
}

/** A scene at side `size` (drawn at 2·size and shrunk), with its maps and segments at that size. */
export function renderJudgeScene(spec: SceneSpec, size: number): JudgeScene {
  const r = renderScene(spec, { size: 2 * size });
  const segMap = shrinkLabels(r.segMap, size);
  const segments = r.segments.map((s) => ({ ...s, bbox: labelBox(segMap, size, s.id) }));
  const image = tidy(() => {
    const big = rgbTensor(r.rgb, 2 * size);
    return shrink(big, size).squeeze(0);
  });
  return { image, segMap, classMap: classMapOf(segMap, segments), segments, caption: r.caption, scene: r.scene, size };
}

export interface JudgeReference {
  /** [3, S, S] float32 in [0, 1]; the caller owns it. */
  image: Tensor;
  /** 1 where the subject is, row-major S × S. */
  mask: Uint8Array;
  bbox: [number, number, number, number];
  size: number;
}

/** An identity's reference at side `size` (drawn at 2·size and shrunk). */
export function renderJudgeReference(identity: Identity, size: number): JudgeReference {
  const r = renderReference(identity, { size: 2 * size });
  const labels = shrinkLabels(Int32Array.from(r.mask), size);
  const mask = Uint8Array.from(labels);
  const image = tidy(() => shrink(rgbTensor(r.rgb, 2 * size), size).squeeze(0));
  return { image, mask, bbox: labelBox(mask, size, 1), size };
}
