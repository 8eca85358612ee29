// ResnetBlock2D (diffusers): norm1 → SiLU → conv1 (+ projected time embedding) → norm2 → SiLU
// → dropout → conv2, plus the input (through a 1×1 `conv_shortcut` when channels change).
import { Conv2d } from '../../nn/conv.js';
import { Dropout } from '../../nn/dropout.js';
import { type InitOptions } from '../../nn/init.js';
import { Linear } from '../../nn/linear.js';
import { Module } from '../../nn/module.js';
import { GroupNorm } from '../../nn/norm.js';
import { tidy } from '../../tensor/scope.js';
import { type Tensor } from '../../tensor/tensor.js';
import { groupNormOf } from './norm.js';

export interface ResnetBlock2DOptions {
  inChannels: number;
  /** Defaults to inChannels. */
  outChannels?: number;
  /** Width of the time embedding; null for blocks without one (the VAE's). */
  tembChannels: number | null;
  groups: number;
  /** Groups of norm2; defaults to groups. */
  groupsOut?: number;
  eps: number;
  dropout?: number;
  /** The sum is divided by this (diffusers' output_scale_factor). */
  outputScaleFactor?: number;
  init?: InitOptions;
}

export class ResnetBlock2D extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly outputScaleFactor: number;
  readonly norm1: GroupNorm;
  readonly conv1: Conv2d;
  readonly time_emb_proj: Linear | null;
  readonly norm2: GroupNorm;
  readonly dropout: Dropout;
  readonly conv2: Conv2d;
  readonly conv_shortcut: Conv2d | null;

  constructor(options: ResnetBlock2DOptions) {
    super();
    const { inChannels, tembChannels, groups, eps, dropout = 0, outputScaleFactor = 1, init = {} } = options;
    const outChannels = options.outChannels ?? inChannels;
    const place = { dtype: init.dtype, device: init.device };
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.outputScaleFactor = outputScaleFactor;
    // Registration order is diffusers' attribute order, so stateDict() lists keys as PyTorch does.
    this.norm1 = this.registerModule('norm1', new GroupNorm(groups, inChannels, { eps, ...place }));
    this.conv1 = this.registerModule('conv1', new Conv2d(inChannels, outChannels, 3, { padding: 1, ...init }));
    this.time_emb_proj = tembChannels === null ? null : this.registerModule('time_emb_proj', new Linear(tembChannels, outChannels, init));
    this.norm2 = this.registerModule('norm2', new GroupNorm(options.groupsOut ?? groups, outChannels, { eps, ...place }));
    this.dropout = this.registerModule('dropout', new Dropout(dropout));
    this.conv2 = this.registerModule('conv2', new Conv2d(outChannels, outChannels, 3, { padding: 1, ...init }));
    this.conv_shortcut = inChannels === outChannels ? null : this.registerModule('conv_shortcut', new Conv2d(inChannels, outChannels, 1, init));
  }

  /** x [B, in, H, W], temb [B, tembChannels] (or null) → [B, out, H, W]. */
  forward(x: Tensor, temb: Tensor | null = null): Tensor {
    return tidy(() => {
      let h = this.conv1.forward(groupNormOf(this.norm1, x).silu());
      if (this.time_emb_proj !== null && temb !== null) {
        const t = this.time_emb_proj.forward(temb.silu());
        h = h.add(t.view(t.size(0), t.size(1), 1, 1));
      }
      h = groupNormOf(this.norm2, h).silu();
      if (this.dropout.p > 0) h = this.dropout.forward(h); // p = 0 (every SD model): skip the no-op copy
      h = this.conv2.forward(h);
      const shortcut = this.conv_shortcut === null ? x : this.conv_shortcut.forward(x);
      const out = shortcut.add(h);
      return this.outputScaleFactor === 1 ? out : out.div(this.outputScaleFactor);
    });
  }
}
