// Shared by the tests: deterministic data and tolerant comparison.
import assert from 'node:assert/strict';
import { liveTensors, type Tensor, tensor } from '../src/tensor/index.js';

/** Deterministic values in [lo, hi) (mulberry32), so a test knows its inputs exactly. */
export function rnd(n: number, seed = 1, lo = -1, hi = 1): number[] {
  let s = seed >>> 0;
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    out.push(lo + (hi - lo) * (((t ^ (t >>> 14)) >>> 0) / 4294967296));
  }
  return out;
}

export const f64 = (values: readonly number[], shape: readonly number[] = [values.length]) => tensor(values, { shape, dtype: 'float64' });
export const vals = (t: Tensor) => Array.from(t.toFloat64Array());

/** Element-wise |actual - expected| ≤ tol·(1 + |expected|); equal values (NaN with NaN, ±Infinity) pass. */
export function close(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what = 'value'): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} elements, expected ${expected.length}`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    if (a === e || (Number.isNaN(e) && Number.isNaN(a))) continue;
    if (!(Math.abs(a - e) <= tol * (1 + Math.abs(e)))) assert.fail(`${what} element ${i}: got ${a}, expected ${e} (tolerance ${tol})`);
  }
}

/**
 * Live tensor count after a full GC (the test command runs node with --expose-gc), so tensors
 * dropped earlier and freed by the GC later cannot change the counts a test compares.
 */
export function settledLiveTensors(): { count: number; bytes: number } {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run the tests with node --expose-gc (npm test does)');
  gc();
  return liveTensors();
}
