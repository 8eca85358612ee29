// Seeded draws for the world: every choice comes from mulberry32 streams whose seeds mix the
// world seed with what is being drawn (an identity's number, an image's number), so any part can
// be drawn alone, in any order, and come out the same.
import { mixSeed, mulberry32 } from '../train/data/rng.js';

export class Random {
  private readonly next: () => number;

  constructor(...seedParts: number[]) {
    this.next = mulberry32(mixSeed(...seedParts));
  }

  /** Uniform in [0, 1). */
  float(): number {
    return this.next();
  }

  /** Uniform in [lo, hi). */
  range(lo: number, hi: number): number {
    return lo + (hi - lo) * this.next();
  }

  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }

  chance(p: number): boolean {
    return this.next() < p;
  }

  pick<T>(items: readonly T[]): T {
    if (items.length === 0) throw new RangeError('pick: nothing to pick from');
    return items[Math.floor(this.next() * items.length)]!;
  }

  /** An index drawn with the given non-negative weights. */
  weighted(weights: readonly number[]): number {
    const total = weights.reduce((a, b) => a + b, 0);
    let r = this.next() * total;
    for (let i = 0; i < weights.length; i++) {
      r -= weights[i]!;
      if (r < 0) return i;
    }
    return weights.length - 1;
  }
}

/** Stream tags, so streams drawn from one world seed never coincide. */
export const STREAM = { identity: 1, split: 2, image: 3, props: 4, layout: 5 } as const;
