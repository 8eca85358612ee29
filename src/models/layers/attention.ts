// Multi-head attention as diffusers' `Attention` (to_q, to_k, to_v, to_out.0), the call
// contract every UNet attention layer follows, and the VAE's spatial self-attention.
import { Dropout } from '../../nn/dropout.js';
import { type InitOptions } from '../../nn/init.js';
import { Linear } from '../../nn/linear.js';
import { ModuleList } from '../../nn/containers.js';
import { Module } from '../../nn/module.js';
import { GroupNorm } from '../../nn/norm.js';
import { isGradEnabled } from '../../tensor/autograd.js';
import { type DType } from '../../tensor/dtype.js';
import { cat, cpuAttention, hasCpuAttention, hasFusedAttention, scaledDotProductAttention } from '../../tensor/functional.js';
import { tidy } from '../../tensor/scope.js';
import { type Tensor } from '../../tensor/tensor.js';
import { groupNormOf } from './norm.js';
import { fromTokens, toTokens } from './tokens.js';

/**
 * What the caller of the UNet's forward hands to every attention layer: the UNet never reads
 * it, only passes the same object on. Layers that replace attn1/attn2 (MoA) read their own
 * fields from it; they may declare them by augmenting this interface:
 * `declare module '.../attention.js' { interface AttentionExtras { moa?: MoaState } }`.
 */
export interface AttentionExtras {
  [key: string]: unknown;
}

/** Passed to each attention call: the caller's extras, unchanged, plus facts about the layer. */
export interface AttentionCallContext {
  /** The object given to the UNet's forward (the same reference for every layer; {} when none was given). */
  readonly extras: AttentionExtras;
  /** The layer's dotted name in the model, e.g. `down_blocks.0.attentions.0.transformer_blocks.0.attn1`. */
  readonly name: string;
  /** 'self' for attn1 (keys from the image tokens), 'cross' for attn2 (keys from the context). */
  readonly kind: 'self' | 'cross';
  /** [h, w] of the token grid: the tokens are the h·w positions in row-major order. */
  readonly size: readonly [number, number];
}

/**
 * The contract of attn1 and attn2 in a BasicTransformerBlock: hidden [B, h·w, dim] (already
 * normalised) and context [B, L, contextDim] (null for self-attention) → [B, h·w, dim], before
 * the block's residual. Any Module with this forward can be registered in their place.
 */
export type AttentionLayer = Module & {
  forward(hidden: Tensor, context: Tensor | null, extras: AttentionCallContext): Tensor;
};

// Elements of one block of attention scores in the chunked path: 2M (4 MB in bfloat16) stays
// in cache through matmul, softmax and matmul. At 4096 tokens this ran the SD1.5 self-attention
// core (bfloat16, batch 2) 15-20% faster than one [16, 4096, 4096] score tensor, and needs 4 MB
// instead of 512 MB. In float32 the blocks' small matmuls (OpenBLAS) made it 2-3× slower.
const SCORE_BLOCK = 1 << 21;
const BLOCK_ROWS = 256;

// The widest head moa's bf16 CPU kernel takes (native/src/cpu_attention.cpp); wider ones (the VAE's 512) take the composed form.
const CPU_KERNEL_MAX_HEAD = 256;

/** Whether one of moa's CPU kernels runs attention in `dtype` with heads `d` wide on this CPU. */
function kernelTakes(dtype: DType, d: number): boolean {
  if (dtype === 'bfloat16') return d <= CPU_KERNEL_MAX_HEAD && hasCpuAttention('bfloat16');
  return dtype === 'float32' && hasCpuAttention('float32');
}
let cpuKernel = true;
/**
 * Whether inference attention on the CPU uses moa's own kernels (the default: bf16 on AVX512-BF16
 * CPUs, fp32 on AVX-512 ones) or the composed form: benchmarks compare the two in one run, tests check
 * one against the other.
 */
export function useCpuAttentionKernel(on: boolean): void {
  cpuKernel = on;
}

/**
 * softmax(q kᵀ / sqrt(d)) v per head; q [B, Lq, heads·d], k and v [B, Lk, heads·d] → [B, Lq, heads·d].
 * libtorch's fused kernel where it has one (≥ 2.1). Else, without gradients, moa's kernels: bf16
 * on an AVX512-BF16 CPU, with AMX where present (native/src/cpu_attention.cpp), fp32 on an AVX-512 one
 * (native/src/cpu_attention_f32.cpp). Otherwise the composed form with q
 * scaled first (cheaper than scaling the scores); in 16-bit precision and without gradients, over
 * cache-sized blocks of heads × query rows (with gradients, in one piece, so autograd sees the
 * plain composition).
 */
export function attend(q: Tensor, k: Tensor, v: Tensor, heads: number): Tensor {
  return tidy(() => {
    const [b, lq, inner] = q.shape as [number, number, number];
    const lk = k.size(1);
    const d = inner / heads;
    const bh = b * heads;
    const split = (t: Tensor) => t.reshape(b, t.size(1), heads, d).transpose(1, 2); // [B, heads, L, d]
    let out: Tensor; // [B·heads, Lq, d]
    const grad = isGradEnabled() && (q.requiresGrad || k.requiresGrad || v.requiresGrad);
    if (hasFusedAttention()) {
      out = scaledDotProductAttention(split(q), split(k), split(v)).reshape(bh, lq, d);
    } else if (cpuKernel && !grad && q.device === 'cpu' && kernelTakes(q.dtype, d)) {
      // Token-major in and out: the kernel reads the projections in place and writes [B, Lq, heads, d].
      const tokens = (t: Tensor) => t.view(b, t.size(1), heads, d);
      return cpuAttention(tokens(q), tokens(k), tokens(v), 1 / Math.sqrt(d)).view(b, lq, inner);
    } else {
      const qs = split(q.mul(1 / Math.sqrt(d))).reshape(bh, lq, d);
      const kt = split(k).reshape(bh, lk, d).mT; // [B·heads, d, Lk]: bmm reads it transposed, no copy
      const vs = split(v).reshape(bh, lk, d);
      const half = q.dtype === 'bfloat16' || q.dtype === 'float16';
      out = half && !grad && bh * lq * lk > 2 * SCORE_BLOCK ? blockwise(qs, kt, vs) : qs.bmm(kt).softmax(-1).bmm(vs);
    }
    return out.view(b, heads, lq, d).transpose(1, 2).reshape(b, lq, inner);
  });
}

/** The composed attention over blocks of heads × BLOCK_ROWS query rows, joined into one result. */
function blockwise(q: Tensor, kt: Tensor, v: Tensor): Tensor {
  const [bh, lq] = q.shape as [number, number, number];
  const lk = kt.size(2);
  const rows = Math.min(lq, BLOCK_ROWS);
  const group = Math.max(1, Math.floor(SCORE_BLOCK / (rows * lk)));
  const groups: Tensor[] = [];
  for (let h = 0; h < bh; h += group) {
    const n = Math.min(group, bh - h);
    const [qh, kh, vh] = [q.narrow(0, h, n), kt.narrow(0, h, n), v.narrow(0, h, n)];
    const parts: Tensor[] = [];
    // Each block's scores are freed before the next block is computed; only its [n, rows, d] result stays.
    for (let r = 0; r < lq; r += rows) parts.push(tidy(() => qh.narrow(1, r, Math.min(rows, lq - r)).bmm(kh).softmax(-1).bmm(vh)));
    groups.push(parts.length === 1 ? parts[0]! : cat(parts, 1));
  }
  return groups.length === 1 ? groups[0]! : cat(groups, 0);
}

export interface AttentionOptions {
  queryDim: number;
  /** Width of the context tokens (cross-attention); null or omitted for self-attention. */
  crossAttentionDim?: number | null;
  heads: number;
  dimHead: number;
  /** Bias on to_q, to_k, to_v (false in the UNet). */
  bias?: boolean;
  /** Bias on to_out.0. */
  outBias?: boolean;
  dropout?: number;
  init?: InitOptions;
}

/** diffusers' Attention as the UNet's transformer blocks use it (processor AttnProcessor2_0). */
export class Attention extends Module implements AttentionLayer {
  readonly heads: number;
  readonly innerDim: number;
  readonly to_q: Linear;
  readonly to_k: Linear;
  readonly to_v: Linear;
  readonly to_out: ModuleList;

  constructor({ queryDim, crossAttentionDim = null, heads, dimHead, bias = false, outBias = true, dropout = 0, init = {} }: AttentionOptions) {
    super();
    this.heads = heads;
    this.innerDim = heads * dimHead;
    const contextDim = crossAttentionDim ?? queryDim;
    this.to_q = this.registerModule('to_q', new Linear(queryDim, this.innerDim, { bias, ...init }));
    this.to_k = this.registerModule('to_k', new Linear(contextDim, this.innerDim, { bias, ...init }));
    this.to_v = this.registerModule('to_v', new Linear(contextDim, this.innerDim, { bias, ...init }));
    this.to_out = this.registerModule('to_out', new ModuleList([new Linear(this.innerDim, queryDim, { bias: outBias, ...init }), new Dropout(dropout)]));
  }

  forward(hidden: Tensor, context: Tensor | null, _extras?: AttentionCallContext): Tensor {
    return tidy(() => {
      const kv = context ?? hidden;
      const out = attend(this.to_q.forward(hidden), this.to_k.forward(kv), this.to_v.forward(kv), this.heads);
      const projected = (this.to_out.at(0) as Linear).forward(out);
      const drop = this.to_out.at(1) as Dropout;
      return drop.p > 0 ? drop.forward(projected) : projected;
    });
  }
}

export interface SpatialSelfAttentionOptions {
  /** Channels per head (diffusers' attention_head_dim; the VAE uses all channels: one head). */
  dimHead?: number;
  groups: number;
  eps: number;
  /** The result (with the residual) is divided by this (diffusers' rescale_output_factor). */
  rescaleOutputFactor?: number;
  init?: InitOptions;
}

/**
 * The VAE mid-block's attention (diffusers' Attention with group_norm, biases and a residual):
 * x [B, C, H, W] → x + attention over the H·W positions. Keys group_norm, to_q, to_k, to_v, to_out.0.
 */
export class SpatialSelfAttention extends Module {
  readonly heads: number;
  readonly rescaleOutputFactor: number;
  readonly group_norm: GroupNorm;
  readonly to_q: Linear;
  readonly to_k: Linear;
  readonly to_v: Linear;
  readonly to_out: ModuleList;

  constructor(channels: number, { dimHead = channels, groups, eps, rescaleOutputFactor = 1, init = {} }: SpatialSelfAttentionOptions) {
    super();
    this.heads = Math.floor(channels / dimHead);
    this.rescaleOutputFactor = rescaleOutputFactor;
    const inner = this.heads * dimHead;
    this.group_norm = this.registerModule('group_norm', new GroupNorm(groups, channels, { eps, dtype: init.dtype, device: init.device }));
    this.to_q = this.registerModule('to_q', new Linear(channels, inner, init));
    this.to_k = this.registerModule('to_k', new Linear(channels, inner, init));
    this.to_v = this.registerModule('to_v', new Linear(channels, inner, init));
    this.to_out = this.registerModule('to_out', new ModuleList([new Linear(inner, channels, init), new Dropout(0)]));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [, , h, w] = x.shape as [number, number, number, number];
      const tokens = toTokens(groupNormOf(this.group_norm, x)); // [B, H·W, C]
      const out = attend(this.to_q.forward(tokens), this.to_k.forward(tokens), this.to_v.forward(tokens), this.heads);
      const projected = (this.to_out.at(0) as Linear).forward(out);
      const sum = x.add(fromTokens(projected, h, w, x)); // x first: the sum keeps x's memory format
      return this.rescaleOutputFactor === 1 ? sum : sum.div(this.rescaleOutputFactor);
    });
  }
}
