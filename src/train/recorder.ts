// A MoARecorder for training: keeps, for one forward pass, every MoA layer's routing map r1 and
// every personal cross-attention layer's subject attention WITH their autograd graphs, so the
// router and object losses can backpropagate into MoA.
import type { MoARecorder } from '../moa/types.js';
import type { Tensor } from '../tensor/tensor.js';

export interface RecordedRouting {
  layer: string;
  kind: 'self' | 'cross';
  size: readonly [number, number];
  /** [B, h, w] float32, with its graph. */
  r1: Tensor;
}

export interface RecordedAttention {
  layer: string;
  size: readonly [number, number];
  /** [B, S, h, w] float32, averaged over heads, with its graph. */
  maps: Tensor;
}

/**
 * Which personal cross-attention layers count as "the middle UNet blocks" for the object loss.
 * - `{ resolutions: n }`: the layers at the n coarsest token grids recorded (default n = 2: for
 *   SD1.5 at a 64×64 latent, the 8×8 mid block and the 16×16 lowest down/up attention blocks
 *   down_blocks.2 and up_blocks.1).
 * - `{ match }`: the layers whose name it accepts (e.g. `(n) => n.startsWith('mid_block')`).
 */
export type MiddleLayers = { resolutions: number } | { match: (layer: string) => boolean };

export const DEFAULT_MIDDLE_LAYERS: MiddleLayers = { resolutions: 2 };

export class TrainingRecorder implements MoARecorder {
  readonly withGrad = true;
  readonly #routing: RecordedRouting[] = [];
  readonly #attention: RecordedAttention[] = [];

  constructor(readonly middle: MiddleLayers = DEFAULT_MIDDLE_LAYERS) {
    if ('resolutions' in middle && !(Number.isInteger(middle.resolutions) && middle.resolutions >= 1)) {
      throw new RangeError(`middle.resolutions must be a positive integer, not ${middle.resolutions}`);
    }
  }

  // MoA hands over tensors outside tidy() scopes: they are this recorder's until reset/dispose.
  routing(layer: string, kind: 'self' | 'cross', size: readonly [number, number], r1: Tensor): void {
    this.#routing.push({ layer, kind, size, r1 });
  }

  subjectAttention(layer: string, size: readonly [number, number], maps: Tensor): void {
    this.#attention.push({ layer, size, maps });
  }

  /** Every MoA layer's report, in forward order. */
  get routings(): readonly RecordedRouting[] {
    return this.#routing;
  }
  /** Every personal cross-attention layer's subject attention, in forward order. */
  get attentions(): readonly RecordedAttention[] {
    return this.#attention;
  }
  /** The r1 maps of every layer, for routerLoss. */
  r1Maps(): Tensor[] {
    return this.#routing.map((r) => r.r1);
  }
  /** The subject attention of the middle layers, for objectLoss. */
  middleAttention(): RecordedAttention[] {
    const middle = this.middle;
    if ('match' in middle) return this.#attention.filter((a) => middle.match(a.layer));
    const areas = [...new Set(this.#attention.map((a) => a.size[0] * a.size[1]))].sort((x, y) => x - y);
    const kept = new Set(areas.slice(0, middle.resolutions));
    return this.#attention.filter((a) => kept.has(a.size[0] * a.size[1]));
  }
  middleMaps(): Tensor[] {
    return this.middleAttention().map((a) => a.maps);
  }

  /** Disposes what was recorded, ready for the next forward pass. */
  reset(): void {
    for (const r of this.#routing) r.r1.dispose();
    for (const a of this.#attention) a.maps.dispose();
    this.#routing.length = 0;
    this.#attention.length = 0;
  }
  dispose(): void {
    this.reset();
  }
  [Symbol.dispose](): void {
    this.reset();
  }
}
