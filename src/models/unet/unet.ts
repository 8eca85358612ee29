// UNet2DConditionModel (diffusers), as Stable Diffusion 1.5 uses it: config-driven, with
// diffusers' state-dict keys, and one call contract for every attention layer (see
// ../layers/attention.ts) so MoA can replace them.
import { Conv2d } from '../../nn/conv.js';
import { ModuleList } from '../../nn/containers.js';
import { type InitOptions } from '../../nn/init.js';
import { Module } from '../../nn/module.js';
import { GroupNorm } from '../../nn/norm.js';
import { tidy } from '../../tensor/scope.js';
import { type Tensor } from '../../tensor/tensor.js';
import { type AttentionExtras, type AttentionLayer } from '../layers/attention.js';
import { groupNormOf } from '../layers/norm.js';
import { type BlockCommon, CrossAttnDownBlock2D, CrossAttnUpBlock2D, DownBlock2D, UNetMidBlock2DCrossAttn, UpBlock2D } from './blocks.js';
import { parseUNetConfig, type UNetConfig } from './config.js';
import { sinusoidalTimestepEmbedding, TimestepEmbedding, timestepsForBatch } from './embeddings.js';
import { BasicTransformerBlock } from './transformer.js';

/** One attention layer of a transformer block, as attentionLayers() lists them. */
export interface AttentionSite {
  /** Dotted name, e.g. `down_blocks.0.attentions.0.transformer_blocks.0.attn1`. */
  name: string;
  kind: 'self' | 'cross';
  /** The block that owns it, and its slot there: `site.block.registerModule(site.slot, layer)` replaces it. */
  block: BasicTransformerBlock;
  slot: 'attn1' | 'attn2';
  /** The layer registered now. */
  layer: AttentionLayer;
}

// The UNet registers up_blocks before mid_block (diffusers' order, which fixes the key order),
// but runs down → mid → up: sites are ranked by the first of these names in their path.
const FORWARD_RANK = new Map([
  ['down_blocks', 0],
  ['mid_block', 1],
  ['up_blocks', 2],
]);
const forwardRank = (path: string) => FORWARD_RANK.get(path.split('.').find((part) => FORWARD_RANK.has(part)) ?? '') ?? 3;

/**
 * Every transformer-block attention layer under `model` (a UNet, or any module holding one), in
 * forward order: down blocks, mid block, up blocks; attn1 before attn2 in each transformer block.
 * Names are the layers' state-dict prefixes under `model` (the names attention calls carry are
 * relative to the UNet, so the same when `model` is the UNet).
 */
export function attentionLayers(model: Module): AttentionSite[] {
  const sites: AttentionSite[] = [];
  for (const [path, module] of model.namedModules()) {
    if (!(module instanceof BasicTransformerBlock)) continue;
    const prefix = path ? `${path}.` : '';
    sites.push({ name: `${prefix}attn1`, kind: 'self', block: module, slot: 'attn1', layer: module.attn1 });
    sites.push({ name: `${prefix}attn2`, kind: 'cross', block: module, slot: 'attn2', layer: module.attn2 });
  }
  return sites.sort((a, b) => forwardRank(a.name) - forwardRank(b.name)); // stable: keeps order within a group
}

export class UNet2DConditionModel extends Module {
  readonly config: Readonly<UNetConfig>;
  readonly conv_in: Conv2d;
  readonly time_embedding: TimestepEmbedding;
  readonly down_blocks: ModuleList<CrossAttnDownBlock2D | DownBlock2D>;
  readonly up_blocks: ModuleList<CrossAttnUpBlock2D | UpBlock2D>;
  readonly mid_block: UNetMidBlock2DCrossAttn;
  readonly conv_norm_out: GroupNorm;
  readonly conv_out: Conv2d;

  /**
   * config: a parsed UNetConfig or a diffusers config.json object. init: where the initial
   * (random) weights come from and their dtype/device; load real weights with loadStateDict.
   */
  constructor(config: UNetConfig | Record<string, unknown>, init: InitOptions = {}) {
    super();
    const c = (this.config = 'blockOutChannels' in config ? (config as UNetConfig) : parseUNetConfig(config));
    const ch = c.blockOutChannels;
    const n = ch.length;
    const common = (outputScaleFactor: number): BlockCommon => ({
      tembChannels: c.timeEmbedDim,
      groups: c.normNumGroups,
      eps: c.normEps,
      dropout: c.dropout,
      outputScaleFactor,
      init,
    });

    // Registered in diffusers' attribute order: conv_in, time_embedding, down_blocks, up_blocks, mid_block, conv_norm_out, conv_out.
    this.conv_in = this.registerModule('conv_in', new Conv2d(c.inChannels, ch[0]!, c.convInKernel, { padding: (c.convInKernel - 1) / 2, ...init }));
    this.time_embedding = this.registerModule('time_embedding', new TimestepEmbedding(ch[0]!, c.timeEmbedDim, init));
    this.down_blocks = this.registerModule('down_blocks', new ModuleList<CrossAttnDownBlock2D | DownBlock2D>());
    this.up_blocks = this.registerModule('up_blocks', new ModuleList<CrossAttnUpBlock2D | UpBlock2D>());

    for (let i = 0; i < n; i++) {
      const o = {
        ...common(c.resnetOutScaleFactor),
        inChannels: i === 0 ? ch[0]! : ch[i - 1]!,
        outChannels: ch[i]!,
        numLayers: c.layersPerBlock[i]!,
        addDownsample: i < n - 1,
        downsamplePadding: c.downsamplePadding,
      };
      const attn = { heads: c.attentionHeads[i]!, crossAttentionDim: c.crossAttentionDim[i]!, transformerLayers: c.transformerLayersPerBlock[i]!, useLinearProjection: c.useLinearProjection };
      this.down_blocks.append(c.downBlockTypes[i] === 'CrossAttnDownBlock2D' ? new CrossAttnDownBlock2D({ ...o, ...attn }) : new DownBlock2D(o));
    }

    this.mid_block = this.registerModule(
      'mid_block',
      new UNetMidBlock2DCrossAttn({
        ...common(c.midBlockScaleFactor),
        channels: ch[n - 1]!,
        heads: c.attentionHeads[n - 1]!,
        crossAttentionDim: c.crossAttentionDim[n - 1]!,
        transformerLayers: c.transformerLayersPerBlock[n - 1]!,
        useLinearProjection: c.useLinearProjection,
      }),
    );

    const rev = <T>(xs: readonly T[]) => [...xs].reverse();
    const [rch, rheads, rlayers, rcross, rtl] = [rev(ch), rev(c.attentionHeads), rev(c.layersPerBlock), rev(c.crossAttentionDim), rev(c.transformerLayersPerBlock)];
    for (let i = 0; i < n; i++) {
      const o = {
        ...common(c.resnetOutScaleFactor),
        inChannels: rch[Math.min(i + 1, n - 1)]!,
        outChannels: rch[i]!,
        prevOutputChannels: i === 0 ? rch[0]! : rch[i - 1]!,
        numLayers: rlayers[i]! + 1,
        addUpsample: i < n - 1,
      };
      const attn = { heads: rheads[i]!, crossAttentionDim: rcross[i]!, transformerLayers: rtl[i]!, useLinearProjection: c.useLinearProjection };
      this.up_blocks.append(c.upBlockTypes[i] === 'CrossAttnUpBlock2D' ? new CrossAttnUpBlock2D({ ...o, ...attn }) : new UpBlock2D(o));
    }

    this.conv_norm_out = this.registerModule('conv_norm_out', new GroupNorm(c.normNumGroups, ch[0]!, { eps: c.normEps, dtype: init.dtype, device: init.device }));
    this.conv_out = this.registerModule('conv_out', new Conv2d(ch[0]!, c.outChannels, c.convOutKernel, { padding: (c.convOutKernel - 1) / 2, ...init }));

    // Each transformer block learns its path, so its attention calls carry their dotted names.
    for (const [path, module] of this.namedModules()) if (module instanceof BasicTransformerBlock) module.path = path;
  }

  /** How much the down path shrinks the latent: 2^(number of downsamplers). */
  get downscaleFactor(): number {
    return 2 ** (this.config.blockOutChannels.length - 1);
  }

  /**
   * sample [B, in, h, w] (any h, w ≥ 1: when they are not multiples of downscaleFactor the up
   * path upsamples to each skip's size, as diffusers does), timestep (a number, or a tensor of
   * 1 or B int64/float timesteps), encoderHiddenStates [B, L, crossAttentionDim] → [B, out, h, w].
   * extras reaches every attention layer unchanged (see AttentionCallContext). Inputs are cast
   * to the model's dtype; the result is contiguous, in that dtype (bfloat16 under autocast).
   */
  forward(sample: Tensor, timestep: number | Tensor, encoderHiddenStates: Tensor, extras: AttentionExtras = {}): Tensor {
    const c = this.config;
    if (sample.ndim !== 4 || sample.size(1) !== c.inChannels) {
      throw new RangeError(`UNet: sample must be [B, ${c.inChannels}, h, w], not [${sample.shape.join(', ')}]`);
    }
    const batch = sample.size(0);
    const contextDims = new Set(c.crossAttentionDim);
    if (encoderHiddenStates.ndim !== 3 || encoderHiddenStates.size(0) !== batch || !contextDims.has(encoderHiddenStates.size(2))) {
      throw new RangeError(`UNet: encoderHiddenStates must be [${batch}, L, ${[...contextDims].join('|')}], not [${encoderHiddenStates.shape.join(', ')}]`);
    }
    return tidy(() => {
      const dtype = this.conv_in.weight.dtype;
      let x = sample.dtype === dtype ? sample : sample.to(dtype);
      const context = encoderHiddenStates.dtype === dtype ? encoderHiddenStates : encoderHiddenStates.to(dtype);
      if (c.centerInputSample) x = x.mul(2).sub(1);

      const t = timestepsForBatch(timestep, batch, sample.device);
      const tEmb = sinusoidalTimestepEmbedding(t, c.blockOutChannels[0]!, { flipSinToCos: c.flipSinToCos, downscaleFreqShift: c.freqShift });
      const emb = this.time_embedding.forward(tEmb.to(dtype));

      let h = this.conv_in.forward(x);
      const skips: Tensor[] = [h];
      for (const block of this.down_blocks) {
        const { hidden, skips: more } = block.forward(h, emb, context, extras);
        h = hidden;
        skips.push(...more);
      }
      h = this.mid_block.forward(h, emb, context, extras);

      // Odd sizes: each upsampler then targets its skip's size instead of ×2 (diffusers' forward_upsample_size).
      const f = this.downscaleFactor;
      const odd = sample.size(2) % f !== 0 || sample.size(3) % f !== 0;
      for (let i = 0; i < this.up_blocks.length; i++) {
        const block = this.up_blocks.at(i);
        const taken = skips.splice(skips.length - block.resnets.length);
        const next = skips[skips.length - 1];
        const size = odd && i < this.up_blocks.length - 1 && next ? ([next.size(2), next.size(3)] as const) : null;
        h = block.forward(h, taken, emb, context, extras, size);
      }
      const out = this.conv_out.forward(groupNormOf(this.conv_norm_out, h).silu());
      return out.isContiguous() ? out : out.contiguous();
    });
  }
}
