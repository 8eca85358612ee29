// The UNet's down, mid and up blocks (diffusers' unet_2d_blocks), with diffusers' attribute
// order (attentions, resnets, down/upsamplers) so state-dict keys and their order match.
import { ModuleList } from '../../nn/containers.js';
import { type InitOptions } from '../../nn/init.js';
import { Module } from '../../nn/module.js';
import { cat } from '../../tensor/functional.js';
import { tidy } from '../../tensor/scope.js';
import { type Tensor } from '../../tensor/tensor.js';
import { type AttentionExtras } from '../layers/attention.js';
import { Downsample2D } from '../layers/downsample.js';
import { ResnetBlock2D } from '../layers/resnet.js';
import { Upsample2D } from '../layers/upsample.js';
import { Transformer2DModel } from './transformer.js';

/** What every block of one UNet shares. */
export interface BlockCommon {
  tembChannels: number;
  groups: number;
  eps: number;
  dropout: number;
  /** Resnet output_scale_factor. */
  outputScaleFactor: number;
  init: InitOptions;
}

/** What blocks with attention add. */
export interface CrossAttnCommon {
  heads: number;
  crossAttentionDim: number;
  transformerLayers: number;
  useLinearProjection: boolean;
}

export interface DownBlockOptions extends BlockCommon {
  inChannels: number;
  outChannels: number;
  numLayers: number;
  addDownsample: boolean;
  downsamplePadding: number;
}

export interface UpBlockOptions extends BlockCommon {
  /** Channels of the deepest skip this block takes (the down block's input). */
  inChannels: number;
  outChannels: number;
  /** Channels coming from the block below. */
  prevOutputChannels: number;
  numLayers: number;
  addUpsample: boolean;
}

/** A down block's result: the hidden state and the skips it hands to the up path, in order. */
export interface DownResult {
  hidden: Tensor;
  skips: Tensor[];
}

function resnet(o: BlockCommon, inChannels: number, outChannels: number): ResnetBlock2D {
  const { tembChannels, groups, eps, dropout, outputScaleFactor, init } = o;
  return new ResnetBlock2D({ inChannels, outChannels, tembChannels, groups, eps, dropout, outputScaleFactor, init });
}

function transformer(o: BlockCommon & CrossAttnCommon, channels: number): Transformer2DModel {
  return new Transformer2DModel({
    heads: o.heads,
    dimHead: Math.floor(channels / o.heads),
    inChannels: channels,
    numLayers: o.transformerLayers,
    crossAttentionDim: o.crossAttentionDim,
    normGroups: o.groups,
    useLinearProjection: o.useLinearProjection,
    dropout: o.dropout,
    init: o.init,
  });
}

/** Resnets and (for the cross-attention kinds) one Transformer2DModel after each resnet. */
abstract class DownBlockBase extends Module {
  readonly attentions: ModuleList<Transformer2DModel> | null;
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly downsamplers: ModuleList<Downsample2D> | null;

  constructor(o: DownBlockOptions, attn: (CrossAttnCommon & BlockCommon) | null) {
    super();
    const ins = Array.from({ length: o.numLayers }, (_, i) => (i === 0 ? o.inChannels : o.outChannels));
    this.attentions = attn ? this.registerModule('attentions', new ModuleList(ins.map(() => transformer(attn, o.outChannels)))) : null;
    this.resnets = this.registerModule('resnets', new ModuleList(ins.map((c) => resnet(o, c, o.outChannels))));
    this.downsamplers = o.addDownsample
      ? this.registerModule('downsamplers', new ModuleList([new Downsample2D(o.outChannels, { padding: o.downsamplePadding, init: o.init })]))
      : null;
  }

  forward(x: Tensor, temb: Tensor, context: Tensor, extras: AttentionExtras): DownResult {
    const skips: Tensor[] = [];
    let h = x;
    for (let i = 0; i < this.resnets.length; i++) {
      h = this.resnets.at(i).forward(h, temb);
      if (this.attentions) h = this.attentions.at(i).forward(h, context, extras);
      skips.push(h);
    }
    if (this.downsamplers) {
      h = this.downsamplers.at(0).forward(h);
      skips.push(h);
    }
    return { hidden: h, skips };
  }
}

export class CrossAttnDownBlock2D extends DownBlockBase {
  readonly hasCrossAttention = true;
  constructor(o: DownBlockOptions & CrossAttnCommon) {
    super(o, o);
  }
}

export class DownBlock2D extends DownBlockBase {
  readonly hasCrossAttention = false;
  constructor(o: DownBlockOptions) {
    super(o, null);
  }
}

/** Each resnet takes the hidden state concatenated (channels) with the next skip, deepest first. */
abstract class UpBlockBase extends Module {
  readonly attentions: ModuleList<Transformer2DModel> | null;
  readonly resnets: ModuleList<ResnetBlock2D>;
  readonly upsamplers: ModuleList<Upsample2D> | null;

  constructor(o: UpBlockOptions, attn: (CrossAttnCommon & BlockCommon) | null) {
    super();
    const layers = Array.from({ length: o.numLayers }, (_, i) => {
      const skip = i === o.numLayers - 1 ? o.inChannels : o.outChannels;
      const from = i === 0 ? o.prevOutputChannels : o.outChannels;
      return from + skip;
    });
    this.attentions = attn ? this.registerModule('attentions', new ModuleList(layers.map(() => transformer(attn, o.outChannels)))) : null;
    this.resnets = this.registerModule('resnets', new ModuleList(layers.map((c) => resnet(o, c, o.outChannels))));
    this.upsamplers = o.addUpsample ? this.registerModule('upsamplers', new ModuleList([new Upsample2D(o.outChannels, { init: o.init })])) : null;
  }

  /**
   * skips: this block's skips in down-path order (it consumes them from the last). upsampleSize:
   * the size to upsample to when it is not simply ×2 (odd latent sizes).
   */
  forward(x: Tensor, skips: readonly Tensor[], temb: Tensor, context: Tensor, extras: AttentionExtras, upsampleSize: readonly [number, number] | null = null): Tensor {
    if (skips.length !== this.resnets.length) throw new RangeError(`${this.constructor.name} takes ${this.resnets.length} skips, got ${skips.length}`);
    return tidy(() => {
      let h = x;
      for (let i = 0; i < this.resnets.length; i++) {
        h = this.resnets.at(i).forward(cat([h, skips[skips.length - 1 - i]!], 1), temb);
        if (this.attentions) h = this.attentions.at(i).forward(h, context, extras);
      }
      return this.upsamplers ? this.upsamplers.at(0).forward(h, upsampleSize) : h;
    });
  }
}

export class CrossAttnUpBlock2D extends UpBlockBase {
  readonly hasCrossAttention = true;
  constructor(o: UpBlockOptions & CrossAttnCommon) {
    super(o, o);
  }
}

export class UpBlock2D extends UpBlockBase {
  readonly hasCrossAttention = false;
  constructor(o: UpBlockOptions) {
    super(o, null);
  }
}

export interface MidBlockOptions extends BlockCommon, CrossAttnCommon {
  channels: number;
  /** Transformer + resnet pairs after the first resnet (1 in every SD model). */
  numLayers?: number;
}

/** UNetMidBlock2DCrossAttn: resnet, then (transformer, resnet) pairs. */
export class UNetMidBlock2DCrossAttn extends Module {
  readonly attentions: ModuleList<Transformer2DModel>;
  readonly resnets: ModuleList<ResnetBlock2D>;

  constructor(o: MidBlockOptions) {
    super();
    const n = o.numLayers ?? 1;
    this.attentions = this.registerModule('attentions', new ModuleList(Array.from({ length: n }, () => transformer(o, o.channels))));
    this.resnets = this.registerModule('resnets', new ModuleList(Array.from({ length: n + 1 }, () => resnet(o, o.channels, o.channels))));
  }

  forward(x: Tensor, temb: Tensor, context: Tensor, extras: AttentionExtras): Tensor {
    return tidy(() => {
      let h = this.resnets.at(0).forward(x, temb);
      for (let i = 0; i < this.attentions.length; i++) {
        h = this.attentions.at(i).forward(h, context, extras);
        h = this.resnets.at(i + 1).forward(h, temb);
      }
      return h;
    });
  }
}
