// The VAE's blocks (diffusers' DownEncoderBlock2D, UpDecoderBlock2D, UNetMidBlock2D): resnets
// without a time embedding, eps 1e-6, and one spatial self-attention in the mid block.
import { ModuleList } from '../../nn/containers.js';
import { type InitOptions } from '../../nn/init.js';
import { Module } from '../../nn/module.js';
import { tidy } from '../../tensor/scope.js';
import { type Tensor } from '../../tensor/tensor.js';
import { SpatialSelfAttention } from '../layers/attention.js';
import { Downsample2D } from '../layers/downsample.js';
import { ResnetBlock2D } from '../layers/resnet.js';
import { Upsample2D } from '../layers/upsample.js';

const EPS = 1e-6;

function resnets(channels: readonly number[], out: number, groups: number, init: InitOptions): ModuleList<ResnetBlock2D> {
  return new ModuleList(channels.map((inChannels) => new ResnetBlock2D({ inChannels, outChannels: out, tembChannels: null, groups, eps: EPS, init })));
}

export class DownEncoderBlock2D extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly downsamplers: ModuleList<Downsample2D> | null;

  constructor(inChannels: number, outChannels: number, { numLayers, groups, addDownsample, init = {} }: { numLayers: number; groups: number; addDownsample: boolean; init?: InitOptions }) {
    super();
    const ins = Array.from({ length: numLayers }, (_, i) => (i === 0 ? inChannels : outChannels));
    this.resnets = this.registerModule('resnets', resnets(ins, outChannels, groups, init));
    // The encoder downsamples with padding 0 after a (0, 1, 0, 1) pad.
    this.downsamplers = addDownsample ? this.registerModule('downsamplers', new ModuleList([new Downsample2D(outChannels, { padding: 0, init })])) : null;
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = x;
      for (const r of this.resnets) h = r.forward(h);
      return this.downsamplers ? this.downsamplers.at(0).forward(h) : h;
    });
  }
}

export class UpDecoderBlock2D extends Module {
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly upsamplers: ModuleList<Upsample2D> | null;

  constructor(inChannels: number, outChannels: number, { numLayers, groups, addUpsample, init = {} }: { numLayers: number; groups: number; addUpsample: boolean; init?: InitOptions }) {
    super();
    const ins = Array.from({ length: numLayers }, (_, i) => (i === 0 ? inChannels : outChannels));
    this.resnets = this.registerModule('resnets', resnets(ins, outChannels, groups, init));
    this.upsamplers = addUpsample ? this.registerModule('upsamplers', new ModuleList([new Upsample2D(outChannels, { init })])) : null;
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = x;
      for (const r of this.resnets) h = r.forward(h);
      return this.upsamplers ? this.upsamplers.at(0).forward(h) : h;
    });
  }
}

/** resnet, then (attention, resnet): one head over all channels. */
export class UNetMidBlock2D extends Module {
  readonly attentions: ModuleList<SpatialSelfAttention>;
  readonly resnets: ModuleList<ResnetBlock2D>;

  constructor(channels: number, { groups, addAttention = true, init = {} }: { groups: number; addAttention?: boolean; init?: InitOptions }) {
    super();
    const attentions = addAttention ? [new SpatialSelfAttention(channels, { dimHead: channels, groups, eps: EPS, init })] : [];
    this.attentions = this.registerModule('attentions', new ModuleList(attentions));
    this.resnets = this.registerModule('resnets', resnets([channels, channels], channels, groups, init));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = this.resnets.at(0).forward(x);
      if (this.attentions.length > 0) h = this.attentions.at(0).forward(h);
      return this.resnets.at(1).forward(h);
    });
  }
}
