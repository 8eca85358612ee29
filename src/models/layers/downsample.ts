// Downsample2D (diffusers): a 3×3 conv with stride 2, named `conv` (`downsamplers.0.conv`).
// The UNet pads 1 on every side; the VAE encoder uses padding 0 and pads only right and
// bottom by 1 first, as diffusers does for padding 0.
import { Conv2d } from '../../nn/conv.js';
import { type InitOptions } from '../../nn/init.js';
import { Module } from '../../nn/module.js';
import { pad } from '../../tensor/functional.js';
import { tidy } from '../../tensor/scope.js';
import { type Tensor } from '../../tensor/tensor.js';

export interface Downsample2DOptions {
  outChannels?: number;
  /** 1 for the UNet, 0 for the VAE encoder (then the input is padded (0, 1, 0, 1)). */
  padding?: number;
  init?: InitOptions;
}

export class Downsample2D extends Module {
  readonly padding: number;
  readonly conv: Conv2d;

  constructor(channels: number, { outChannels = channels, padding = 1, init = {} }: Downsample2DOptions = {}) {
    super();
    this.padding = padding;
    // diffusers also exposes this conv as `Conv2d_0`; checkpoints store it once, under `conv`.
    this.conv = this.registerModule('conv', new Conv2d(channels, outChannels, 3, { stride: 2, padding, ...init }));
  }

  forward(x: Tensor): Tensor {
    if (this.padding !== 0) return this.conv.forward(x);
    return tidy(() => this.conv.forward(pad(x, [0, 1, 0, 1])));
  }
}
