// The measures `moa eval` reports, as plain functions of images, judgements and the truth: how
// well a generated subject shows its reference's identity, whether the scene is the one asked
// for, how much a subject swap changes outside the subjects, how far MoA without subjects is
// from the base model, and where the personal routing goes.
import { resizeMap } from '../io/heatmap.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Identity } from '../world/identity.js';
import { classAttributes } from './labels.js';

export interface SubjectScore {
  found: boolean;
  /** The attributes read (null when not found). */
  read: Record<string, string> | null;
  /** Share of the class's attributes read as the reference's (0 when not found). */
  attributeAccuracy: number;
  /** Every reliable attribute of the class read as the reference's. */
  identityMatch: boolean;
}

/**
 * A subject read from a generation against the identity of its reference. An identity matches
 * when every attribute the judges read reliably (JudgesConfig.reliableAttributes) agrees; a
 * class with none of those needs all its attributes to agree.
 */
export function scoreSubject(read: { attributes: Record<string, string> } | null, identity: Identity, reliable: readonly string[]): SubjectScore {
  if (!read) return { found: false, read: null, attributeAccuracy: 0, identityMatch: false };
  const names = classAttributes(identity.class);
  const same = (n: string) => read.attributes[n] === identity.attributes[n];
  const decisive = names.filter((n) => reliable.includes(n));
  return {
    found: true,
    read: read.attributes,
    attributeAccuracy: names.filter(same).length / names.length,
    identityMatch: (decisive.length ? decisive : names).every(same),
  };
}

/** Pixels where two images [3, S, S] differ by more than `threshold` in some channel (values in [0, 1]). */
export function changedPixels(a: Tensor, b: Tensor, threshold: number): Uint8Array {
  if (a.ndim !== 3 || a.shape.some((d, i) => d !== b.shape[i])) throw new RangeError(`changedPixels: images [3, S, S] of one shape, not [${a.shape.join(', ')}] and [${b.shape.join(', ')}]`);
  return tidy(() => a.float().sub(b.float()).abs().max(0).values.gt(threshold).to('uint8').contiguous().data() as Uint8Array);
}

export interface SwapChange {
  /** Share of the pixels inside the subjects' regions that changed. */
  inside: number;
  /** Share of the pixels outside them that changed. */
  outside: number;
  /** inside / outside, with outside counted as at least one pixel (so it stays finite). */
  ratio: number;
  insidePixels: number;
  outsidePixels: number;
}

/** How a swap's change splits between the subjects' region (1 = inside) and the rest. */
export function swapChange(changed: Uint8Array, region: Uint8Array): SwapChange {
  if (changed.length !== region.length) throw new RangeError(`swapChange: ${changed.length} pixels against a region of ${region.length}`);
  let [inPixels, inChanged, outChanged] = [0, 0, 0];
  for (let i = 0; i < changed.length; i++) {
    if (region[i]) {
      inPixels++;
      inChanged += changed[i]!;
    } else outChanged += changed[i]!;
  }
  const outPixels = changed.length - inPixels;
  const inside = inPixels ? inChanged / inPixels : 0;
  const outside = outPixels ? outChanged / outPixels : 0;
  return { inside, outside, ratio: inside / Math.max(outside, 1 / Math.max(1, outPixels)), insidePixels: inPixels, outsidePixels: outPixels };
}

/** Mean absolute difference of two images in [0, 1] (same shape). */
export function meanAbsDiff(a: Tensor, b: Tensor): number {
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) throw new RangeError(`meanAbsDiff: shapes [${a.shape.join(', ')}] and [${b.shape.join(', ')}] differ`);
  return tidy(() => a.float().sub(b.float()).abs().mean().item());
}

export interface RoutingOverlap {
  /** Mean personal routing r1 on the subjects' pixels and elsewhere. */
  inside: number;
  outside: number;
  /** inside / outside (outside at least 1e-6). */
  ratio: number;
  /**
   * IoU of the subjects' pixels with the same number of pixels of highest r1 (a threshold
   * chosen by the subjects' area, so no fixed cut-off is assumed).
   */
  iou: number;
}

/** The mean routing map [h, w] (r1 in [0, 1]) against the subjects' pixels at side `size`; null when there are none. */
export function routingOverlap(map: Tensor, subjects: Uint8Array, size: number): RoutingOverlap | null {
  if (subjects.length !== size * size) throw new RangeError(`routingOverlap: a mask of ${subjects.length} pixels is not ${size} × ${size}`);
  const area = subjects.reduce((a, b) => a + b, 0);
  if (area === 0 || area === subjects.length) return null;
  const r1 = tidy(() => resizeMap(map, [size, size]).contiguous().toFloat32Array());
  let [inSum, outSum] = [0, 0];
  for (let i = 0; i < r1.length; i++) {
    if (subjects[i]) inSum += r1[i]!;
    else outSum += r1[i]!;
  }
  const inside = inSum / area;
  const outside = outSum / (subjects.length - area);
  const top = Array.from(r1.keys())
    .sort((a, b) => r1[b]! - r1[a]! || a - b)
    .slice(0, area);
  const hits = top.reduce((n, i) => n + (subjects[i] ? 1 : 0), 0);
  return { inside, outside, ratio: inside / Math.max(outside, 1e-6), iou: hits / (2 * area - hits) };
}

export const mean = (xs: readonly number[]): number | null => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : null);

/**
 * The Wilson score interval (95 %) of a rate of `successes` in `n` trials: with the few dozen
 * subjects an eval scores, a rate alone hides how far it could be from the truth.
 */
export function wilsonInterval(successes: number, n: number, z = 1.96): [number, number] | null {
  if (!Number.isInteger(n) || n < 0 || !Number.isInteger(successes) || successes < 0 || successes > n) throw new RangeError(`wilsonInterval: need 0 ≤ successes ≤ n (integers), not ${successes} of ${n}`);
  if (n === 0) return null;
  const p = successes / n;
  const z2 = z * z;
  const centre = (p + z2 / (2 * n)) / (1 + z2 / n);
  const half = (z / (1 + z2 / n)) * Math.sqrt((p * (1 - p)) / n + z2 / (4 * n * n));
  return [Math.max(0, centre - half), Math.min(1, centre + half)];
}

/** Rounded to 4 decimals for the report (null stays null). */
export const r4 = (x: number | null): number | null => (x === null || !Number.isFinite(x) ? x : Math.round(x * 10000) / 10000);
