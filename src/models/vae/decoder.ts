// The VAE decoder: latents [B, latent, h, w] → image [B, 3, 8h, 8w] (for four blocks).
import { Conv2d } from '../../nn/conv.js';
import { ModuleList } from '../../nn/containers.js';
import { type InitOptions } from '../../nn/init.js';
import { Module } from '../../nn/module.js';
import { GroupNorm } from '../../nn/norm.js';
import { tidy } from '../../tensor/scope.js';
import { type Tensor } from '../../tensor/tensor.js';
import { groupNormOf } from '../layers/norm.js';
import { UNetMidBlock2D, UpDecoderBlock2D } from './blocks.js';
import { type VaeConfig } from './config.js';

export class Decoder extends Module {
  readonly conv_in: Conv2d;
  readonly up_blocks: ModuleList<UpDecoderBlock2D>;
  readonly mid_block: UNetMidBlock2D;
  readonly conv_norm_out: GroupNorm;
  readonly conv_out: Conv2d;

  constructor(c: VaeConfig, init: InitOptions = {}) {
    super();
    const rev = [...c.blockOutChannels].reverse();
    const groups = c.normNumGroups;
    this.conv_in = this.registerModule('conv_in', new Conv2d(c.latentChannels, rev[0]!, 3, { padding: 1, ...init }));
    // diffusers creates up_blocks before mid_block: that is the key order.
    this.up_blocks = this.registerModule('up_blocks', new ModuleList<UpDecoderBlock2D>());
    this.mid_block = this.registerModule('mid_block', new UNetMidBlock2D(rev[0]!, { groups, addAttention: c.midBlockAddAttention, init }));
    rev.forEach((out, i) => {
      const prev = i === 0 ? rev[0]! : rev[i - 1]!;
      this.up_blocks.append(new UpDecoderBlock2D(prev, out, { numLayers: c.layersPerBlock + 1, groups, addUpsample: i < rev.length - 1, init }));
    });
    const first = c.blockOutChannels[0]!;
    this.conv_norm_out = this.registerModule('conv_norm_out', new GroupNorm(groups, first, { eps: 1e-6, dtype: init.dtype, device: init.device }));
    this.conv_out = this.registerModule('conv_out', new Conv2d(first, c.outChannels, 3, { padding: 1, ...init }));
  }

  forward(z: Tensor): Tensor {
    return tidy(() => {
      let h = this.conv_in.forward(z);
      h = this.mid_block.forward(h);
      for (const block of this.up_blocks) h = block.forward(h);
      return this.conv_out.forward(groupNormOf(this.conv_norm_out, h).silu());
    });
  }
}
