// Subjects found in a class map: the connected regions of each subject class, and matching the
// subjects a caption names (left to right) to them by class and position.
import type { Box } from './crops.js';

export interface Region {
  /** Pixel class (1..CLASSES; labels.ts). */
  classIndex: number;
  pixels: number;
  bbox: Box;
  /** Centre of mass, in pixels. */
  cx: number;
  cy: number;
  /** 1 on the region's pixels, row-major size × size. */
  mask: Uint8Array;
}

/**
 * The 4-connected regions of each subject class in `classMap` (side `size`) with at least
 * `minPixels` pixels, largest first.
 */
export function findRegions(classMap: Uint8Array, size: number, minPixels: number): Region[] {
  if (classMap.length !== size * size) throw new RangeError(`findRegions: ${classMap.length} labels are not a ${size} × ${size} map`);
  const seen = new Uint8Array(classMap.length);
  const stack: number[] = [];
  const regions: Region[] = [];
  for (let start = 0; start < classMap.length; start++) {
    const cls = classMap[start]!;
    if (cls === 0 || seen[start]) continue;
    const members: number[] = [];
    seen[start] = 1;
    stack.push(start);
    while (stack.length) {
      const p = stack.pop()!;
      members.push(p);
      const y = Math.floor(p / size);
      const x = p - y * size;
      const visit = (q: number) => {
        if (!seen[q] && classMap[q] === cls) {
          seen[q] = 1;
          stack.push(q);
        }
      };
      if (x > 0) visit(p - 1);
      if (x < size - 1) visit(p + 1);
      if (y > 0) visit(p - size);
      if (y < size - 1) visit(p + size);
    }
    if (members.length < minPixels) continue;
    const mask = new Uint8Array(classMap.length);
    let [h1, w1, h2, w2, sx, sy] = [size, size, 0, 0, 0, 0];
    for (const p of members) {
      mask[p] = 1;
      const y = Math.floor(p / size);
      const x = p - y * size;
      h1 = Math.min(h1, y);
      w1 = Math.min(w1, x);
      h2 = Math.max(h2, y + 1);
      w2 = Math.max(w2, x + 1);
      sx += x;
      sy += y;
    }
    regions.push({ classIndex: cls, pixels: members.length, bbox: [h1, w1, h2, w2], cx: sx / members.length, cy: sy / members.length, mask });
  }
  return regions.sort((a, b) => b.pixels - a.pixels);
}

/**
 * For each expected subject (its pixel class, in caption order = left to right), the region it
 * is: per class, the k largest regions of that class (k = how many subjects of the class are
 * expected), taken left to right in caption order. A subject with no region left gets null.
 */
export function matchSubjects<R extends Region>(expected: readonly number[], regions: readonly R[]): (R | null)[] {
  const out: (R | null)[] = expected.map(() => null);
  for (const cls of new Set(expected)) {
    const slots = expected.flatMap((c, i) => (c === cls ? [i] : []));
    const candidates = regions
      .filter((r) => r.classIndex === cls)
      .sort((a, b) => b.pixels - a.pixels)
      .slice(0, slots.length)
      .sort((a, b) => a.cx - b.cx);
    candidates.forEach((r, j) => (out[slots[j]!] = r));
  }
  return out;
}

/** The union of masks, row-major (1 where any is 1). */
export function unionMask(masks: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (const m of masks) for (let i = 0; i < length; i++) if (m[i]) out[i] = 1;
  return out;
}

/** A mask grown by `radius` pixels (square neighbourhood), for a margin around subjects. */
export function dilate(mask: Uint8Array, size: number, radius: number): Uint8Array {
  if (radius <= 0) return mask.slice();
  const out = new Uint8Array(mask.length);
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      if (!mask[y * size + x]) continue;
      for (let yy = Math.max(0, y - radius); yy <= Math.min(size - 1, y + radius); yy++) {
        for (let xx = Math.max(0, x - radius); xx <= Math.min(size - 1, x + radius); xx++) out[yy * size + xx] = 1;
      }
    }
  }
  return out;
}
