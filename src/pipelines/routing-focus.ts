// Where the subjects are at this step, as MoA's routers see it: a recorder that adds up one UNet
// pass's personal routing r1 over the layers (at the latent grid) for the conditional rows, so
// subject guidance can act where the routers send pixels to the personal branch and leave the
// rest of the image to plain guidance. It can pass every map on to a MapRecorder too.
import { resizeMap } from '../io/heatmap.js';
import type { MoARecorder } from '../moa/types.js';
import { keep, tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { MapRecorder } from './maps.js';

export class RoutingFocus implements MoARecorder {
  #sum: Tensor | null = null;
  /** Present only when passing maps on: without it MoA skips the costlier recording attention. */
  readonly subjectAttention?: (layer: string, size: readonly [number, number], maps: Tensor) => void;

  constructor(
    /** [h, w] of the latents. */
    readonly latentSize: readonly [number, number],
    readonly batch: number,
    /** The first conditional row of the UNet's batch. */
    readonly offset: number,
    readonly maps: MapRecorder | null = null,
  ) {
    if (maps) this.subjectAttention = (layer, size, m) => maps.subjectAttention(layer, size, m);
  }

  routing(layer: string, kind: 'self' | 'cross', size: readonly [number, number], r1: Tensor): void {
    try {
      const map = tidy(() => resizeMap(r1.detach().narrow(0, this.offset, this.batch), this.latentSize));
      if (this.#sum) {
        this.#sum.add_(map);
        map.dispose();
      } else this.#sum = keep(map);
    } finally {
      if (this.maps) this.maps.routing(layer, kind, size, r1);
      else r1.dispose();
    }
  }

  /**
   * This pass's r1, summed over the layers and scaled so each image's peak is 1: [batch, 1, h, w]
   * (null when no layer routed). The caller owns it; the next pass starts afresh.
   */
  take(): Tensor | null {
    const sum = this.#sum;
    this.#sum = null;
    if (!sum) return null;
    try {
      return tidy(() => {
        const [b, h, w] = sum.shape as [number, number, number];
        const peak = sum.reshape(b, h * w).max(1, true).values.clamp(1e-6);
        return sum.reshape(b, h * w).div(peak).reshape(b, 1, h, w);
      });
    } finally {
      sum.dispose();
    }
  }

  dispose(): void {
    this.#sum?.dispose();
    this.#sum = null;
  }
}
