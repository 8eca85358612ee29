// Transformer2DModel (diffusers, continuous input): GroupNorm → proj_in → BasicTransformerBlocks
// over the h·w tokens → proj_out, plus the input.
import { Dropout } from '../../nn/dropout.js';
import { type InitOptions } from '../../nn/init.js';
import { Linear } from '../../nn/linear.js';
import { Conv2d } from '../../nn/conv.js';
import { ModuleList } from '../../nn/containers.js';
import { Module } from '../../nn/module.js';
import { GroupNorm, LayerNorm } from '../../nn/norm.js';
import { isGradEnabled } from '../../tensor/autograd.js';
import { cpuGeglu, hasCpuGeglu } from '../../tensor/functional.js';
import { tidy } from '../../tensor/scope.js';
import { type Tensor } from '../../tensor/tensor.js';
import { Attention, type AttentionCallContext, type AttentionExtras, type AttentionLayer } from '../layers/attention.js';
import { groupNormOf, layerNormOf } from '../layers/norm.js';
import { fromTokens, toTokens } from '../layers/tokens.js';

/** GEGLU (`ff.net.0`): proj to 2·inner, split into value and gate, value · gelu(gate). */
export class GEGLU extends Module {
  readonly proj: Linear;

  constructor(dimIn: number, dimOut: number, init: InitOptions = {}) {
    super();
    this.proj = this.registerModule('proj', new Linear(dimIn, dimOut * 2, init));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const h = this.proj.forward(x);
      // bf16 inference on AVX-512 CPUs: one pass (native/src/cpu_geglu.cpp) instead of libtorch's three.
      if (h.dtype === 'bfloat16' && h.device === 'cpu' && !(isGradEnabled() && h.requiresGrad) && hasCpuGeglu()) return cpuGeglu(h);
      const [value, gate] = h.chunk(2, -1) as [Tensor, Tensor];
      // libtorch 1.13's gelu on the strided half is ~4× slower than a copy plus gelu on a
      // contiguous one (SD1.5 bf16 step: 0.35 s of GEGLU before).
      return value.mul(gate.contiguous().gelu());
    });
  }
}

/** diffusers' FeedForward with GEGLU: `net.0` GEGLU(dim → 4·dim), `net.1` Dropout, `net.2` Linear(4·dim → dim). */
export class FeedForward extends Module {
  readonly net: ModuleList;

  constructor(dim: number, { mult = 4, dropout = 0, init = {} }: { mult?: number; dropout?: number; init?: InitOptions } = {}) {
    super();
    const inner = dim * mult;
    this.net = this.registerModule('net', new ModuleList<Module>([new GEGLU(dim, inner, init), new Dropout(dropout), new Linear(inner, dim, init)]));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      let h = (this.net.at(0) as GEGLU).forward(x);
      const drop = this.net.at(1) as Dropout;
      if (drop.p > 0) h = drop.forward(h);
      return (this.net.at(2) as Linear).forward(h);
    });
  }
}

export interface BasicTransformerBlockOptions {
  dim: number;
  heads: number;
  dimHead: number;
  /** Width of the context tokens attn2 attends to. */
  crossAttentionDim: number;
  dropout?: number;
  normEps?: number;
  init?: InitOptions;
}

/**
 * x + attn1(norm1 x) [self], then + attn2(norm2 x, context) [cross], then + ff(norm3 x).
 * attn1 and attn2 are looked up by name at every call, so `block.registerModule('attn1', layer)`
 * swaps in any AttentionLayer (this is how MoA wraps them).
 */
export class BasicTransformerBlock extends Module {
  /**
   * Dotted path of this block in its model (set by the model that owns it, e.g. the UNet);
   * attention names are `${path}.attn1` and `${path}.attn2`. Empty for a free-standing block.
   */
  path = '';
  readonly norm1: LayerNorm;
  readonly norm2: LayerNorm;
  readonly norm3: LayerNorm;
  readonly ff: FeedForward;

  constructor({ dim, heads, dimHead, crossAttentionDim, dropout = 0, normEps = 1e-5, init = {} }: BasicTransformerBlockOptions) {
    super();
    const place = { eps: normEps, dtype: init.dtype, device: init.device };
    this.norm1 = this.registerModule('norm1', new LayerNorm(dim, place));
    this.registerModule('attn1', new Attention({ queryDim: dim, heads, dimHead, dropout, init }));
    this.norm2 = this.registerModule('norm2', new LayerNorm(dim, place));
    this.registerModule('attn2', new Attention({ queryDim: dim, crossAttentionDim, heads, dimHead, dropout, init }));
    this.norm3 = this.registerModule('norm3', new LayerNorm(dim, place));
    this.ff = this.registerModule('ff', new FeedForward(dim, { dropout, init }));
  }

  /** The self-attention layer registered now. */
  get attn1(): AttentionLayer {
    return this.getSubmodule('attn1') as AttentionLayer;
  }
  /** The cross-attention layer registered now. */
  get attn2(): AttentionLayer {
    return this.getSubmodule('attn2') as AttentionLayer;
  }

  /** x [B, h·w, dim] → same; context [B, L, crossAttentionDim]; size = [h, w]. */
  forward(x: Tensor, context: Tensor, extras: AttentionExtras, size: readonly [number, number]): Tensor {
    const name = (slot: string) => (this.path ? `${this.path}.${slot}` : slot);
    const self: AttentionCallContext = { extras, name: name('attn1'), kind: 'self', size };
    const cross: AttentionCallContext = { extras, name: name('attn2'), kind: 'cross', size };
    return tidy(() => {
      let h = this.attn1.forward(layerNormOf(this.norm1, x), null, self).add(x);
      h = this.attn2.forward(layerNormOf(this.norm2, h), context, cross).add(h);
      return this.ff.forward(layerNormOf(this.norm3, h)).add(h);
    });
  }
}

export interface Transformer2DOptions {
  heads: number;
  dimHead: number;
  inChannels: number;
  numLayers?: number;
  crossAttentionDim: number;
  normGroups: number;
  /** Linear proj_in/proj_out on tokens instead of 1×1 convs on the map (false for SD1.5). */
  useLinearProjection?: boolean;
  dropout?: number;
  init?: InitOptions;
}

export class Transformer2DModel extends Module {
  readonly useLinearProjection: boolean;
  readonly norm: GroupNorm;
  readonly proj_in: Conv2d | Linear;
  readonly transformer_blocks: ModuleList<BasicTransformerBlock>;
  readonly proj_out: Conv2d | Linear;

  constructor(options: Transformer2DOptions) {
    super();
    const { heads, dimHead, inChannels, numLayers = 1, crossAttentionDim, normGroups, useLinearProjection = false, dropout = 0, init = {} } = options;
    const inner = heads * dimHead;
    this.useLinearProjection = useLinearProjection;
    this.norm = this.registerModule('norm', new GroupNorm(normGroups, inChannels, { eps: 1e-6, dtype: init.dtype, device: init.device }));
    const proj = (from: number, to: number) => (useLinearProjection ? new Linear(from, to, init) : new Conv2d(from, to, 1, init));
    this.proj_in = this.registerModule('proj_in', proj(inChannels, inner));
    const blocks = Array.from({ length: numLayers }, () => new BasicTransformerBlock({ dim: inner, heads, dimHead, crossAttentionDim, dropout, init }));
    this.transformer_blocks = this.registerModule('transformer_blocks', new ModuleList(blocks));
    this.proj_out = this.registerModule('proj_out', proj(inner, inChannels));
  }

  /** x [B, C, h, w], context [B, L, crossAttentionDim] → x + transformer(x), in x's memory format. */
  forward(x: Tensor, context: Tensor, extras: AttentionExtras): Tensor {
    const [, , h, w] = x.shape as [number, number, number, number];
    return tidy(() => {
      const normed = groupNormOf(this.norm, x);
      let t = this.useLinearProjection ? this.proj_in.forward(toTokens(normed)) : toTokens(this.proj_in.forward(normed));
      for (const block of this.transformer_blocks) t = block.forward(t, context, extras, [h, w]);
      const out = this.useLinearProjection ? fromTokens(this.proj_out.forward(t), h, w, x) : this.proj_out.forward(fromTokens(t, h, w, x));
      return x.add(out); // x first: the sum keeps x's memory format
    });
  }
}
