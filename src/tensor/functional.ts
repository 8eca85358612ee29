// Operations on several tensors, and the network building blocks (as torch.nn.functional).
import { native } from './native.js';
import { tidy } from './scope.js';
import { Tensor } from './tensor.js';

type Pair = number | readonly [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);
const handles = (ts: readonly Tensor[]) => ts.map((t) => t.handle);

function nonEmpty(op: string, ts: readonly Tensor[]): readonly Tensor[] {
  if (!Array.isArray(ts) || ts.length === 0) throw new TypeError(`${op}: expected a non-empty array of tensors`);
  return ts;
}

export function cat(tensors: readonly Tensor[], dim = 0): Tensor {
  return new Tensor(native.cat(handles(nonEmpty('cat', tensors)), dim));
}
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  return new Tensor(native.stack(handles(nonEmpty('stack', tensors)), dim));
}
/** Elements of a where condition is true, else of b. */
export function where(condition: Tensor, a: Tensor, b: Tensor): Tensor {
  return new Tensor(native.where(condition.handle, a.handle, b.handle));
}

export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return new Tensor(native.linear(x.handle, weight.handle, bias?.handle ?? null));
}

export interface Conv2dOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
}
export function conv2d(x: Tensor, weight: Tensor, bias?: Tensor | null, { stride = 1, padding = 0, dilation = 1, groups = 1 }: Conv2dOptions = {}): Tensor {
  return new Tensor(native.conv2d(x.handle, weight.handle, bias?.handle ?? null, pair(stride), pair(padding), pair(dilation), groups));
}

export interface ConvTranspose2dOptions extends Conv2dOptions {
  outputPadding?: Pair;
}
export function convTranspose2d(
  x: Tensor,
  weight: Tensor,
  bias?: Tensor | null,
  { stride = 1, padding = 0, outputPadding = 0, dilation = 1, groups = 1 }: ConvTranspose2dOptions = {},
): Tensor {
  return new Tensor(
    native.convTranspose2d(x.handle, weight.handle, bias?.handle ?? null, pair(stride), pair(padding), pair(outputPadding), groups, pair(dilation)),
  );
}

/**
 * Group normalisation. A 16-bit input on the CPU is normalised in float32 and cast back:
 * libtorch 1.13's CPU group_norm sums a channels-last bfloat16 input in bfloat16, and on a
 * 64 × 64 map its output is off by 15–70 % of its scale (more with one thread than with two).
 */
export function groupNorm(x: Tensor, groups: number, weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  const low = (t: Tensor | null | undefined) => t?.dtype === 'bfloat16' || t?.dtype === 'float16';
  if (x.device === 'cpu' && (low(x) || low(weight))) {
    const f32 = (t: Tensor | null | undefined) => (t === null || t === undefined ? null : t.float());
    return tidy(() => groupNorm(x.float(), groups, f32(weight), f32(bias), eps).to(x.dtype));
  }
  return new Tensor(native.groupNorm(x.handle, groups, weight?.handle ?? null, bias?.handle ?? null, eps));
}
export function layerNorm(x: Tensor, normalizedShape: readonly number[], weight?: Tensor | null, bias?: Tensor | null, eps = 1e-5): Tensor {
  return new Tensor(native.layerNorm(x.handle, normalizedShape, weight?.handle ?? null, bias?.handle ?? null, eps));
}
export function embedding(weight: Tensor, indices: Tensor): Tensor {
  return new Tensor(native.embedding(weight.handle, indices.handle));
}
export function dropout(x: Tensor, p: number, training: boolean): Tensor {
  if (!(p >= 0 && p < 1)) throw new RangeError(`dropout probability must be in [0, 1), not ${p}`);
  return new Tensor(native.dropout(x.handle, p, training));
}
export function mseLoss(prediction: Tensor, target: Tensor): Tensor {
  return new Tensor(native.mseLoss(prediction.handle, target.handle));
}
export function crossEntropy(logits: Tensor, target: Tensor): Tensor {
  return new Tensor(native.crossEntropy(logits.handle, target.handle));
}
export function oneHot(indices: Tensor, classes: number): Tensor {
  return new Tensor(native.oneHot(indices.handle, classes));
}

export interface AttentionOptions {
  /** Bool (true = attend) or additive float mask, broadcastable to [..., Lq, Lk]. */
  mask?: Tensor | null;
  dropout?: number;
  causal?: boolean;
  /** Defaults to 1/sqrt(head dim). */
  scale?: number;
}
/**
 * softmax(q kᵀ · scale + mask) v over the last two dimensions. Uses libtorch's fused kernel
 * where it has one (libtorch ≥ 2.1), otherwise the exact composed form.
 */
export function scaledDotProductAttention(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  const { mask = null, dropout: p = 0, causal = false, scale = null } = options;
  return new Tensor(native.attention(q.handle, k.handle, v.handle, mask?.handle ?? null, p, causal, scale));
}
/** The composed (unfused) attention, always available: the reference for the fused kernel. */
export function attentionReference(q: Tensor, k: Tensor, v: Tensor, options: AttentionOptions = {}): Tensor {
  const { mask = null, dropout: p = 0, causal = false, scale = null } = options;
  return new Tensor(native.attentionMath(q.handle, k.handle, v.handle, mask?.handle ?? null, p, causal, scale));
}
export function hasFusedAttention(): boolean {
  return native.fusedAttention();
}
/**
 * softmax(q kᵀ · scale) v per head, for bfloat16 or float32 on the CPU without gradients: moa's own
 * kernels (bfloat16: AMX or AVX512-BF16 matmuls, AVX-512 exp, heads up to 256 wide; float32: AVX-512 FMA), for
 * libtorch without a fused one. Only where hasCpuAttention(q.dtype). Token-major q [B, Lq, heads, d],
 * k [B, Lk, heads, d], v [B, Lk, heads, dv] (views of the projections, read in place)
 * → [B, Lq, heads, dv]; or head-major [BH, L, d] each → [BH, Lq, dv].
 */
export function cpuAttention(q: Tensor, k: Tensor, v: Tensor, scale: number): Tensor {
  if (q.ndim === 3 && k.ndim === 3 && v.ndim === 3) {
    return tidy(() => new Tensor(native.cpuAttention(q.unsqueeze(2).handle, k.unsqueeze(2).handle, v.unsqueeze(2).handle, scale)).squeeze(2));
  }
  return new Tensor(native.cpuAttention(q.handle, k.handle, v.handle, scale));
}
/**
 * Whether cpuAttention runs here in `dtype`: bfloat16 needs a CPU with AVX-512 and AVX512-BF16,
 * float32 one with AVX-512.
 */
export function hasCpuAttention(dtype: 'bfloat16' | 'float32' = 'bfloat16'): boolean {
  return dtype === 'float32' ? native.cpuAttentionF32Available() : native.cpuAttentionAvailable();
}
/**
 * Whether bfloat16 cpuAttention runs its matmuls on AMX tiles (a CPU with AMX that Linux lets this
 * process use) rather than on AVX512-BF16 dot products; allowCpuAttentionAmx(false) turns AMX off,
 * so tests and benchmarks reach the other path on AMX CPUs.
 */
export function cpuAttentionUsesAmx(): boolean {
  return native.cpuAttentionUsesAmx();
}
export function allowCpuAttentionAmx(on: boolean): void {
  native.allowCpuAttentionAmx(on);
}
/**
 * GEGLU's activation in one pass: for bfloat16 h [..., 2n] on the CPU, h[..., :n] · gelu(h[..., n:])
 * (erf gelu) → [..., n], without gradients. Only where hasCpuGeglu() (AVX-512 with AVX512-BF16).
 */
export function cpuGeglu(h: Tensor): Tensor {
  return new Tensor(native.cpuGeglu(h.handle));
}
/** Whether cpuGeglu runs here. */
export function hasCpuGeglu(): boolean {
  return native.cpuGegluAvailable();
}

export interface InterpolateOptions {
  /** Output [height, width]; or give scaleFactor. */
  size?: readonly [number, number];
  scaleFactor?: number | readonly [number, number];
  mode?: 'nearest' | 'bilinear' | 'bicubic';
  alignCorners?: boolean;
  antialias?: boolean;
}
/** Resizes [N, C, H, W] images. */
export function interpolate(x: Tensor, options: InterpolateOptions): Tensor {
  const { mode = 'nearest', alignCorners = false, antialias = false } = options;
  if (x.ndim !== 4) throw new RangeError(`interpolate takes [N, C, H, W], not a tensor of shape [${x.shape.join(', ')}]`);
  let size: readonly number[];
  let scales: [number | null, number | null] = [null, null];
  if (options.size) size = options.size;
  else if (options.scaleFactor !== undefined) {
    scales = pair(options.scaleFactor);
    if (!(scales[0]! > 0 && scales[1]! > 0)) throw new RangeError(`interpolate: scaleFactor must be positive, not ${String(options.scaleFactor)}`);
    size = [Math.floor(x.size(2) * scales[0]!), Math.floor(x.size(3) * scales[1]!)];
  } else throw new TypeError('interpolate needs size or scaleFactor');
  const [sh, sw] = scales;
  if (mode === 'nearest') return new Tensor(native.upsampleNearest2d(x.handle, size, sh, sw));
  if (mode === 'bilinear') return new Tensor(native.upsampleBilinear2d(x.handle, size, alignCorners, antialias, sh, sw));
  if (mode === 'bicubic') return new Tensor(native.upsampleBicubic2d(x.handle, size, alignCorners, antialias, sh, sw));
  throw new TypeError(`interpolate: unknown mode '${String(mode)}'; expected nearest, bilinear or bicubic`);
}

/** Pads the last dimensions: [left, right, top, bottom, ...] as PyTorch's F.pad. */
export function pad(x: Tensor, padding: readonly number[], mode: 'constant' | 'reflect' | 'replicate' = 'constant', value = 0): Tensor {
  return new Tensor(native.pad(x.handle, padding, mode, value));
}
