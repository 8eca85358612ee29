// The VAE encoder: image [B, 3, H, W] → moments [B, 2·latent, H/8, W/8] (mean and log-variance).
import { Conv2d } from '../../nn/conv.js';
import { ModuleList } from '../../nn/containers.js';
import { type InitOptions } from '../../nn/init.js';
import { Module } from '../../nn/module.js';
import { GroupNorm } from '../../nn/norm.js';
import { tidy } from '../../tensor/scope.js';
import { type Tensor } from '../../tensor/tensor.js';
import { groupNormOf } from '../layers/norm.js';
import { DownEncoderBlock2D, UNetMidBlock2D } from './blocks.js';
import { type VaeConfig } from './config.js';

export class Encoder extends Module {
  readonly conv_in: Conv2d;
  readonly down_blocks: ModuleList<DownEncoderBlock2D>;
  readonly mid_block: UNetMidBlock2D;
  readonly conv_norm_out: GroupNorm;
  readonly conv_out: Conv2d;

  constructor(c: VaeConfig, init: InitOptions = {}) {
    super();
    const ch = c.blockOutChannels;
    const groups = c.normNumGroups;
    this.conv_in = this.registerModule('conv_in', new Conv2d(c.inChannels, ch[0]!, 3, { padding: 1, ...init }));
    const blocks = ch.map(
      (out, i) => new DownEncoderBlock2D(i === 0 ? ch[0]! : ch[i - 1]!, out, { numLayers: c.layersPerBlock, groups, addDownsample: i < ch.length - 1, init }),
    );
    this.down_blocks = this.registerModule('down_blocks', new ModuleList(blocks));
    const last = ch[ch.length - 1]!;
    this.mid_block = this.registerModule('mid_block', new UNetMidBlock2D(last, { groups, addAttention: c.midBlockAddAttention, init }));
    this.conv_norm_out = this.registerModule('conv_norm_out', new GroupNorm(groups, last, { eps: 1e-6, dtype: init.dtype, device: init.device }));
    this.conv_out = this.registerModule('conv_out', new Conv2d(last, 2 * c.latentChannels, 3, { padding: 1, ...init }));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = this.conv_in.forward(x);
      for (const block of this.down_blocks) h = block.forward(h);
      h = this.mid_block.forward(h);
      return this.conv_out.forward(groupNormOf(this.conv_norm_out, h).silu());
    });
  }
}
