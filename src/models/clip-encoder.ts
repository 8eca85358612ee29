// The transformer encoder CLIP's text and vision towers share, as transformers' CLIPEncoder:
// pre-LayerNorm residual blocks of multi-head self-attention and a two-layer MLP, under the
// key names `layers.N.self_attn.{q,k,v,out}_proj`, `layers.N.layer_norm{1,2}`, `layers.N.mlp.fc{1,2}`.
import { ModuleList } from '../nn/containers.js';
import { type InitOptions } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { LayerNorm } from '../nn/norm.js';
import { ones } from '../tensor/create.js';
import { type DType } from '../tensor/dtype.js';
import { scaledDotProductAttention } from '../tensor/functional.js';
import { tidy } from '../tensor/scope.js';
import { type Tensor } from '../tensor/tensor.js';
import { type ClipActivation, type ClipEncoderConfig } from './clip-config.js';

/** x·sigmoid(1.702x): the GELU approximation OpenAI's CLIP was trained with. */
export function quickGelu(x: Tensor): Tensor {
  return tidy(() => x.mul(x.mul(1.702).sigmoid()));
}

export function activate(x: Tensor, act: ClipActivation): Tensor {
  switch (act) {
    case 'quick_gelu':
      return quickGelu(x);
    case 'gelu':
      return x.gelu('none');
    case 'gelu_new':
    case 'gelu_pytorch_tanh':
      return x.gelu('tanh');
  }
}

/** Where a layer's initial values come from and where its tensors live (nn's layer options). */
export type ClipInitOptions = InitOptions;

const placement = ({ dtype, device }: ClipInitOptions) => ({ ...(dtype && { dtype }), ...(device && { device }) });

export interface AttentionMasking {
  /** Each position attends only to itself and earlier ones (the text tower). */
  causal?: boolean;
  /** Bool, true = may attend, broadcastable to [B, heads, L, L] (e.g. [B, 1, 1, L] for padding). */
  mask?: Tensor | null;
}

// The most negative finite value per dtype: a masked score gets this rather than -inf, so a
// row with every key masked gives a uniform softmax instead of NaN (as transformers does).
const LOWEST: Partial<Record<DType, number>> = { float16: -65504, bfloat16: -3.3895313892515355e38, float32: -3.4028234663852886e38, float64: -Number.MAX_VALUE };

/** A bool mask (true = attend) as an additive one in the scores' dtype. */
function additiveMask(mask: Tensor, dtype: DType): Tensor {
  const lowest = LOWEST[dtype];
  if (lowest === undefined) throw new TypeError(`attention in ${dtype} is not supported`);
  return tidy(() => mask.logicalNot().to(dtype).mul(lowest));
}

/** Causal and padding masks folded into one bool mask, once per forward rather than per layer. */
export function combineMasks(length: number, { causal = false, mask = null }: AttentionMasking): AttentionMasking {
  if (!mask) return { causal };
  if (mask.dtype !== 'bool') throw new TypeError(`attention masks are bool (true = attend), not ${mask.dtype}`);
  if (!causal) return { mask };
  return { mask: tidy(() => mask.logicalAnd(ones([length, length], { dtype: 'bool', device: mask.device }).tril())) };
}

export class CLIPAttention extends Module {
  readonly numHeads: number;
  readonly headDim: number;
  readonly kProj: Linear;
  readonly vProj: Linear;
  readonly qProj: Linear;
  readonly outProj: Linear;

  constructor(hiddenSize: number, numHeads: number, init: ClipInitOptions = {}) {
    super();
    this.numHeads = numHeads;
    this.headDim = hiddenSize / numHeads;
    // Registered in transformers' order, so the state dict lists keys as a checkpoint does.
    this.kProj = this.registerModule('k_proj', new Linear(hiddenSize, hiddenSize, init));
    this.vProj = this.registerModule('v_proj', new Linear(hiddenSize, hiddenSize, init));
    this.qProj = this.registerModule('q_proj', new Linear(hiddenSize, hiddenSize, init));
    this.outProj = this.registerModule('out_proj', new Linear(hiddenSize, hiddenSize, init));
  }

  /** [B, L, D] → [B, L, D]; softmax(q kᵀ / sqrt(head dim) + mask) v per head. */
  forward(x: Tensor, { causal = false, mask = null }: AttentionMasking = {}): Tensor {
    return tidy(() => {
      const [b, l, d] = x.shape as [number, number, number];
      const heads = (t: Tensor) => t.view(b, l, this.numHeads, this.headDim).transpose(1, 2);
      const q = heads(this.qProj.forward(x));
      const k = heads(this.kProj.forward(x));
      const v = heads(this.vProj.forward(x));
      if (causal && mask) throw new TypeError('CLIPAttention takes causal or a mask; fold them together with combineMasks');
      const y = scaledDotProductAttention(q, k, v, { causal, mask: mask && additiveMask(mask, q.dtype) });
      return this.outProj.forward(y.transpose(1, 2).reshape(b, l, d));
    });
  }
}

export class CLIPMLP extends Module {
  readonly act: ClipActivation;
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(hiddenSize: number, intermediateSize: number, act: ClipActivation, init: ClipInitOptions = {}) {
    super();
    this.act = act;
    this.fc1 = this.registerModule('fc1', new Linear(hiddenSize, intermediateSize, init));
    this.fc2 = this.registerModule('fc2', new Linear(intermediateSize, hiddenSize, init));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => this.fc2.forward(activate(this.fc1.forward(x), this.act)));
  }
}

export class CLIPEncoderLayer extends Module {
  readonly selfAttn: CLIPAttention;
  readonly layerNorm1: LayerNorm;
  readonly mlp: CLIPMLP;
  readonly layerNorm2: LayerNorm;

  constructor(config: ClipEncoderConfig, init: ClipInitOptions = {}) {
    super();
    const norm = { eps: config.layer_norm_eps, ...placement(init) };
    this.selfAttn = this.registerModule('self_attn', new CLIPAttention(config.hidden_size, config.num_attention_heads, init));
    this.layerNorm1 = this.registerModule('layer_norm1', new LayerNorm(config.hidden_size, norm));
    this.mlp = this.registerModule('mlp', new CLIPMLP(config.hidden_size, config.intermediate_size, config.hidden_act, init));
    this.layerNorm2 = this.registerModule('layer_norm2', new LayerNorm(config.hidden_size, norm));
  }

  /** Pre-LN residual block: h + attn(ln1(h)), then h + mlp(ln2(h)). */
  forward(h: Tensor, masking: AttentionMasking = {}): Tensor {
    return tidy(() => {
      const a = h.add(this.selfAttn.forward(this.layerNorm1.forward(h), masking));
      return a.add(this.mlp.forward(this.layerNorm2.forward(a)));
    });
  }
}

export interface EncoderOutput {
  lastHiddenState: Tensor;
  /** The encoder's input and every layer's output (num_hidden_layers + 1), when asked for. */
  hiddenStates: Tensor[] | null;
}

export class CLIPEncoder extends Module {
  readonly layers: ModuleList<CLIPEncoderLayer>;

  constructor(config: ClipEncoderConfig, init: ClipInitOptions = {}) {
    super();
    this.layers = this.registerModule('layers', new ModuleList<CLIPEncoderLayer>());
    for (let i = 0; i < config.num_hidden_layers; i++) this.layers.append(new CLIPEncoderLayer(config, init));
  }

  forward(h: Tensor, masking: AttentionMasking = {}, outputHiddenStates = false): EncoderOutput {
    const hiddenStates: Tensor[] | null = outputHiddenStates ? [h] : null;
    const combined = combineMasks(h.size(1), masking);
    let x = h;
    for (const layer of this.layers) {
      const next = layer.forward(x, combined);
      // Intermediate layer outputs are freed as soon as the next layer has used them, unless kept.
      if (x !== h && !hiddenStates) x.dispose();
      x = next;
      hiddenStates?.push(x);
    }
    if (combined.mask && combined.mask !== masking.mask) combined.mask.dispose();
    return { lastHiddenState: x === h ? h.add(0) : x, hiddenStates };
  }
}

/**
 * Checkpoint keys a CLIP model accepts and ignores: `*.embeddings.position_ids`, the arange
 * buffer that transformers before 4.31 saved in state dicts (now non-persistent). Some old
 * checkpoints even hold it as float or with drifted values, so it is never read, only skipped:
 * a loader passes this as its ignore predicate (e.g. loadWeights' `ignore`, or safetensors'
 * `only: (k) => !isIgnoredClipKey(k)`), and the models' own loadStateDict drops such keys.
 */
export function isIgnoredClipKey(key: string): boolean {
  return key === 'position_ids' || /(^|\.)embeddings\.position_ids$/.test(key);
}

/** The state dict without the keys CLIP models ignore (the tensors are the caller's, untouched). */
export function withoutIgnoredClipKeys(state: Readonly<Record<string, Tensor>>): Record<string, Tensor> {
  return Object.fromEntries(Object.entries(state).filter(([key]) => !isIgnoredClipKey(key)));
}
