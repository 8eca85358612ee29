// Upsample2D (diffusers): nearest-neighbour ×2 (or to a given size), then a 3×3 conv named
// `conv` (`upsamplers.0.conv`).
import { Conv2d } from '../../nn/conv.js';
import { type InitOptions } from '../../nn/init.js';
import { Module } from '../../nn/module.js';
import { interpolate } from '../../tensor/functional.js';
import { tidy } from '../../tensor/scope.js';
import { type Tensor } from '../../tensor/tensor.js';

export class Upsample2D extends Module {
  readonly conv: Conv2d;

  constructor(channels: number, { outChannels = channels, init = {} }: { outChannels?: number; init?: InitOptions } = {}) {
    super();
    this.conv = this.registerModule('conv', new Conv2d(channels, outChannels, 3, { padding: 1, ...init }));
  }

  /**
   * x [B, C, H, W] → [B, out, 2H, 2W], or [B, out, size[0], size[1]] when size is given (the
   * UNet passes its skip's size when the latent is not divisible by its total downscale).
   */
  forward(x: Tensor, size: readonly [number, number] | null = null): Tensor {
    return tidy(() => {
      const up = size === null ? interpolate(x, { scaleFactor: 2, mode: 'nearest' }) : interpolate(x, { size, mode: 'nearest' });
      return this.conv.forward(up);
    });
  }
}
