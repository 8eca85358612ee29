// The Tensor: a JavaScript handle on a libtorch tensor. Every method is one call into the
// binding; the result is a new Tensor (views share memory, as in PyTorch).
import { checkDevice, type Device } from './device.js';
import { type AnyTypedArray, type DType, DTYPES, dtypeCode, dtypeFromCode, isDType, typedArrayOf } from './dtype.js';
import { type BinaryOp, type ComparisonScalarOp, type Handle, native, type UnaryOp } from './native.js';
import type { Generator } from './generator.js';
import { keep, track } from './scope.js';

export type MemoryFormat = 'contiguous' | 'channels_last' | 'preserve';
const MEMORY_FORMATS: Record<MemoryFormat, number> = { contiguous: 0, channels_last: 1, preserve: 2 };

export function memoryFormatCode(format: MemoryFormat): number {
  const code = MEMORY_FORMATS[format];
  if (code === undefined) throw new TypeError(`unknown memory format '${String(format)}'; expected contiguous, channels_last or preserve`);
  return code;
}

/** One index of `Tensor.index`: a number selects, null keeps the dimension, [start, end, step] slices. */
export type IndexSpec = number | null | readonly [start?: number | null, end?: number | null, step?: number];

export interface ToOptions {
  dtype?: DType;
  device?: Device;
  memoryFormat?: MemoryFormat;
}

type Dims = number | readonly number[];
const dimList = (dims: Dims): readonly number[] => (typeof dims === 'number' ? [dims] : dims);
// libtorch 1.13 reads an empty dim list as "all dims" going forward but "none" in some backward
// formulas (var, std), so "all" is always spelled out.
const allDims = (t: Tensor): number[] => Array.from({ length: t.ndim }, (_, i) => i);

function targetOf(target: string): ToOptions {
  if (isDType(target)) return { dtype: target };
  if (/^(cpu|cuda(:\d+)?)$/.test(target)) return { device: target as Device };
  throw new TypeError(`to('${target}'): not a dtype (${DTYPES.join(', ')}) nor a device ('cpu', 'cuda', 'cuda:N')`);
}

function checkOperand(op: string, value: unknown): void {
  if (!(value instanceof Tensor) && typeof value !== 'number') {
    throw new TypeError(`${op}: expected a Tensor or a number, got ${value === null ? 'null' : typeof value}`);
  }
}

export class Tensor {
  readonly #handle: Handle;
  #shape: readonly number[] | undefined;
  #dtype: DType | undefined;

  /** Wraps a native handle. Use the creation functions (zeros, tensor, ...) rather than this. */
  constructor(handle: Handle) {
    this.#handle = handle;
    track(this);
  }

  /** The native handle, for the binding. */
  get handle(): Handle {
    return this.#handle;
  }

  // ---- facts ----

  get shape(): readonly number[] {
    return (this.#shape ??= Object.freeze(native.shape(this.#handle)));
  }
  get ndim(): number {
    return this.shape.length;
  }
  get numel(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }
  get dtype(): DType {
    return (this.#dtype ??= dtypeFromCode(native.dtype(this.#handle)));
  }
  get device(): Device {
    return native.device(this.#handle) as Device;
  }
  get strides(): number[] {
    return native.strides(this.#handle);
  }
  /** Size of one dimension; negative counts from the end. */
  size(dim: number): number {
    const d = dim < 0 ? dim + this.ndim : dim;
    const n = this.shape[d];
    if (n === undefined) throw new RangeError(`dimension ${dim} is out of range for a tensor of shape [${this.shape.join(', ')}]`);
    return n;
  }
  isContiguous(format: MemoryFormat = 'contiguous'): boolean {
    return native.isContiguous(this.#handle, memoryFormatCode(format));
  }
  get isDisposed(): boolean {
    return native.isDisposed(this.#handle);
  }

  // ---- memory ----

  /** Releases this handle's reference to the tensor's memory now (views and graphs may hold it). */
  dispose(): void {
    native.dispose(this.#handle);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
  /** Exempts this tensor from the enclosing tidy() scopes. */
  keep(): this {
    return keep(this);
  }

  // ---- conversion and readback ----

  to(target: DType | Device | ToOptions): Tensor {
    const options: ToOptions = typeof target === 'string' ? targetOf(target) : target;
    let h = this.#handle;
    const made: Handle[] = [];
    const step = (next: Handle) => {
      made.push(next);
      h = next;
    };
    if (options.device !== undefined && options.device !== this.device) step(native.toDevice(h, checkDevice(options.device), false));
    if (options.dtype !== undefined && options.dtype !== this.dtype) step(native.to(h, dtypeCode(options.dtype)));
    if (options.memoryFormat !== undefined && options.memoryFormat !== 'preserve') step(native.contiguous(h, memoryFormatCode(options.memoryFormat)));
    // Nothing to change: a new handle on the same tensor (PyTorch returns self), autograd intact.
    if (made.length === 0) return new Tensor(native.alias(h));
    native.dispose(...made.slice(0, -1));
    return new Tensor(h);
  }
  float(): Tensor {
    return this.to('float32');
  }
  half(): Tensor {
    return this.to('float16');
  }
  bfloat16(): Tensor {
    return this.to('bfloat16');
  }
  long(): Tensor {
    return this.to('int64');
  }
  int(): Tensor {
    return this.to('int32');
  }
  bool(): Tensor {
    return this.to('bool');
  }
  cpu(): Tensor {
    return this.to({ device: 'cpu' });
  }
  cuda(index = 0): Tensor {
    return this.to({ device: `cuda:${index}` });
  }
  contiguous(format: MemoryFormat = 'contiguous'): Tensor {
    return new Tensor(native.contiguous(this.#handle, memoryFormatCode(format)));
  }
  clone(): Tensor {
    return new Tensor(native.clone(this.#handle));
  }
  detach(): Tensor {
    return new Tensor(native.detach(this.#handle));
  }
  /** The value of a one-element tensor. */
  item(): number {
    return native.item(this.#handle);
  }
  /** A copy of the elements in row-major order, in the dtype's typed array (16-bit floats as raw bits). */
  data(): AnyTypedArray {
    return typedArrayOf(this.dtype, native.toBuffer(this.#handle));
  }
  toFloat32Array(): Float32Array {
    if (this.dtype === 'float32') return this.data() as Float32Array;
    const f = new Tensor(native.to(this.#handle, dtypeCode('float32')));
    try {
      return f.data() as Float32Array;
    } finally {
      f.dispose();
    }
  }
  toFloat64Array(): Float64Array {
    if (this.dtype === 'float64') return this.data() as Float64Array;
    const f = new Tensor(native.to(this.#handle, dtypeCode('float64')));
    try {
      return f.data() as Float64Array;
    } finally {
      f.dispose();
    }
  }
  /** The elements as plain numbers (int64 values beyond 2^53 lose precision). */
  toNumbers(): number[] {
    if (this.dtype === 'float16' || this.dtype === 'bfloat16') return Array.from(this.toFloat32Array());
    const data = this.data();
    return data instanceof BigInt64Array ? Array.from(data, Number) : Array.from(data as ArrayLike<number>);
  }
  toString(): string {
    return `Tensor[${this.shape.join(', ')}] ${this.dtype}${this.device === 'cpu' ? '' : ' on ' + this.device}`;
  }

  // ---- element-wise ----

  add(other: Tensor | number, alpha = 1): Tensor {
    checkOperand('add', other);
    if (typeof alpha !== 'number') throw new TypeError(`add: alpha must be a number, got ${typeof alpha}`);
    if (typeof other === 'number') return new Tensor(native.addScalar(this.#handle, other * alpha));
    return new Tensor(native.add(this.#handle, other.#handle, alpha));
  }
  sub(other: Tensor | number, alpha = 1): Tensor {
    checkOperand('sub', other);
    if (typeof alpha !== 'number') throw new TypeError(`sub: alpha must be a number, got ${typeof alpha}`);
    if (typeof other === 'number') return new Tensor(native.addScalar(this.#handle, -other * alpha));
    return new Tensor(native.sub(this.#handle, other.#handle, alpha));
  }
  /** other - this. */
  rsub(other: number): Tensor {
    return new Tensor(native.rsubScalar(this.#handle, other));
  }
  mul(other: Tensor | number): Tensor {
    checkOperand('mul', other);
    return new Tensor(typeof other === 'number' ? native.mulScalar(this.#handle, other) : native.mul(this.#handle, other.#handle));
  }
  div(other: Tensor | number): Tensor {
    checkOperand('div', other);
    return new Tensor(typeof other === 'number' ? native.divScalar(this.#handle, other) : native.div(this.#handle, other.#handle));
  }
  pow(other: Tensor | number): Tensor {
    checkOperand('pow', other);
    return new Tensor(typeof other === 'number' ? native.powScalar(this.#handle, other) : native.pow(this.#handle, other.#handle));
  }
  remainder(other: number): Tensor {
    return new Tensor(native.remainder(this.#handle, other));
  }
  maximum(other: Tensor): Tensor {
    return new Tensor(native.maximum(this.#handle, other.#handle));
  }
  minimum(other: Tensor): Tensor {
    return new Tensor(native.minimum(this.#handle, other.#handle));
  }
  /** this + weight * (end - this), in one pass; a tensor weight broadcasts and must have this dtype. */
  lerp(end: Tensor, weight: number | Tensor): Tensor {
    return new Tensor(typeof weight === 'number' ? native.lerp(this.#handle, end.#handle, weight) : native.lerpTensor(this.#handle, end.#handle, weight.#handle));
  }
  addcmul(a: Tensor, b: Tensor, value = 1): Tensor {
    return new Tensor(native.addcmul(this.#handle, a.#handle, b.#handle, value));
  }
  clamp(min: number | null, max: number | null = null): Tensor {
    return new Tensor(native.clamp(this.#handle, min, max));
  }
  #unary(op: UnaryOp): Tensor {
    return new Tensor(native[op](this.#handle));
  }
  neg(): Tensor { return this.#unary('neg'); }
  abs(): Tensor { return this.#unary('abs'); }
  exp(): Tensor { return this.#unary('exp'); }
  log(): Tensor { return this.#unary('log'); }
  log1p(): Tensor { return this.#unary('log1p'); }
  sqrt(): Tensor { return this.#unary('sqrt'); }
  rsqrt(): Tensor { return this.#unary('rsqrt'); }
  square(): Tensor { return this.#unary('square'); }
  reciprocal(): Tensor { return this.#unary('reciprocal'); }
  sin(): Tensor { return this.#unary('sin'); }
  cos(): Tensor { return this.#unary('cos'); }
  tanh(): Tensor { return this.#unary('tanh'); }
  erf(): Tensor { return this.#unary('erf'); }
  sign(): Tensor { return this.#unary('sign'); }
  floor(): Tensor { return this.#unary('floor'); }
  ceil(): Tensor { return this.#unary('ceil'); }
  round(): Tensor { return this.#unary('round'); }
  sigmoid(): Tensor { return this.#unary('sigmoid'); }
  relu(): Tensor { return this.#unary('relu'); }
  silu(): Tensor { return this.#unary('silu'); }
  isnan(): Tensor { return this.#unary('isnan'); }
  isfinite(): Tensor { return this.#unary('isfinite'); }
  logicalNot(): Tensor { return this.#unary('logicalNot'); }
  /** GELU: 'none' is the exact erf form, 'tanh' the approximation. */
  gelu(approximate: 'none' | 'tanh' = 'none'): Tensor {
    return new Tensor(native.gelu(this.#handle, approximate));
  }
  softmax(dim: number, dtype?: DType): Tensor {
    return new Tensor(native.softmax(this.#handle, dim, dtype ? dtypeCode(dtype) : null));
  }
  logSoftmax(dim: number, dtype?: DType): Tensor {
    return new Tensor(native.logSoftmax(this.#handle, dim, dtype ? dtypeCode(dtype) : null));
  }

  // ---- comparisons ----

  #compare(op: BinaryOp, scalarOp: ComparisonScalarOp | null, other: Tensor | number): Tensor {
    checkOperand(op, other);
    if (typeof other === 'number') {
      if (!scalarOp) throw new TypeError(`${op} needs a tensor`);
      return new Tensor(native[scalarOp](this.#handle, other));
    }
    return new Tensor(native[op](this.#handle, other.#handle));
  }
  eq(other: Tensor | number): Tensor { return this.#compare('eq', 'eqScalar', other); }
  ne(other: Tensor | number): Tensor { return this.#compare('ne', 'neScalar', other); }
  lt(other: Tensor | number): Tensor { return this.#compare('lt', 'ltScalar', other); }
  le(other: Tensor | number): Tensor { return this.#compare('le', 'leScalar', other); }
  gt(other: Tensor | number): Tensor { return this.#compare('gt', 'gtScalar', other); }
  ge(other: Tensor | number): Tensor { return this.#compare('ge', 'geScalar', other); }
  logicalAnd(other: Tensor): Tensor { return this.#compare('logicalAnd', null, other); }
  logicalOr(other: Tensor): Tensor { return this.#compare('logicalOr', null, other); }
  /** True when shapes match and every element is within atol + rtol·|other|. */
  allclose(other: Tensor, { rtol = 1e-5, atol = 1e-8 } = {}): boolean {
    return native.allclose(this.#handle, other.#handle, rtol, atol);
  }
  /** True when shapes and every element are identical. */
  equal(other: Tensor): boolean {
    return native.equal(this.#handle, other.#handle);
  }

  // ---- reductions ----

  sum(dims?: Dims, keepdim = false, dtype?: DType): Tensor {
    if (dims === undefined && dtype === undefined) return new Tensor(native.sumAll(this.#handle));
    return new Tensor(native.sum(this.#handle, dims === undefined ? allDims(this) : dimList(dims), keepdim, dtype ? dtypeCode(dtype) : null));
  }
  mean(dims?: Dims, keepdim = false): Tensor {
    if (dims === undefined) return new Tensor(native.meanAll(this.#handle));
    return new Tensor(native.mean(this.#handle, dimList(dims), keepdim));
  }
  /** The largest element, or along `dim` the largest values and their indices. */
  max(): Tensor;
  max(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  max(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return new Tensor(native.maxAll(this.#handle));
    const [values, indices] = native.maxDim(this.#handle, dim, keepdim);
    return { values: new Tensor(values), indices: new Tensor(indices) };
  }
  min(): Tensor;
  min(dim: number, keepdim?: boolean): { values: Tensor; indices: Tensor };
  min(dim?: number, keepdim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return new Tensor(native.minAll(this.#handle));
    const [values, indices] = native.minDim(this.#handle, dim, keepdim);
    return { values: new Tensor(values), indices: new Tensor(indices) };
  }
  /** Variance over dims (all when omitted); unbiased (n - 1) by default, as PyTorch. */
  var(dims?: Dims, { unbiased = true, keepdim = false } = {}): Tensor {
    return new Tensor(native.var(this.#handle, dims === undefined ? allDims(this) : dimList(dims), unbiased, keepdim));
  }
  std(dims?: Dims, { unbiased = true, keepdim = false } = {}): Tensor {
    return new Tensor(native.std(this.#handle, dims === undefined ? allDims(this) : dimList(dims), unbiased, keepdim));
  }
  argmax(dim?: number, keepdim = false): Tensor {
    return new Tensor(native.argmax(this.#handle, dim ?? null, keepdim));
  }
  argmin(dim?: number, keepdim = false): Tensor {
    return new Tensor(native.argmin(this.#handle, dim ?? null, keepdim));
  }
  logsumexp(dims: Dims, keepdim = false): Tensor {
    return new Tensor(native.logsumexp(this.#handle, dimList(dims), keepdim));
  }
  /** Vector p-norm over dims (all when omitted). */
  norm(p = 2, dims?: Dims, keepdim = false): Tensor {
    return new Tensor(native.norm(this.#handle, p, dims === undefined ? allDims(this) : dimList(dims), keepdim));
  }
  cumsum(dim: number): Tensor {
    return new Tensor(native.cumsum(this.#handle, dim));
  }
  all(): Tensor {
    return new Tensor(native.all(this.#handle));
  }
  any(): Tensor {
    return new Tensor(native.any(this.#handle));
  }

  // ---- linear algebra ----

  matmul(other: Tensor): Tensor {
    return new Tensor(native.matmul(this.#handle, other.#handle));
  }
  bmm(other: Tensor): Tensor {
    return new Tensor(native.bmm(this.#handle, other.#handle));
  }

  // ---- shapes and views ----

  reshape(...shape: number[]): Tensor {
    return new Tensor(native.reshape(this.#handle, shape));
  }
  view(...shape: number[]): Tensor {
    return new Tensor(native.view(this.#handle, shape));
  }
  permute(...dims: number[]): Tensor {
    return new Tensor(native.permute(this.#handle, dims));
  }
  transpose(dim0: number, dim1: number): Tensor {
    return new Tensor(native.transpose(this.#handle, dim0, dim1));
  }
  /** The last two dimensions swapped. */
  get mT(): Tensor {
    return this.transpose(-2, -1);
  }
  flatten(start = 0, end = -1): Tensor {
    return new Tensor(native.flatten(this.#handle, start, end));
  }
  squeeze(dim?: number): Tensor {
    return new Tensor(dim === undefined ? native.squeezeAll(this.#handle) : native.squeeze(this.#handle, dim));
  }
  unsqueeze(dim: number): Tensor {
    return new Tensor(native.unsqueeze(this.#handle, dim));
  }
  expand(...shape: number[]): Tensor {
    return new Tensor(native.expand(this.#handle, shape));
  }
  repeat(...repeats: number[]): Tensor {
    return new Tensor(native.repeat(this.#handle, repeats));
  }
  flip(...dims: number[]): Tensor {
    return new Tensor(native.flip(this.#handle, dims));
  }
  roll(shifts: Dims, dims: Dims): Tensor {
    return new Tensor(native.roll(this.#handle, dimList(shifts), dimList(dims)));
  }
  tril(diagonal = 0): Tensor {
    return new Tensor(native.tril(this.#handle, diagonal));
  }
  triu(diagonal = 0): Tensor {
    return new Tensor(native.triu(this.#handle, diagonal));
  }
  /** Pieces of `size` along dim (the last may be smaller), or pieces of the given sizes. */
  split(size: number | readonly number[], dim = 0): Tensor[] {
    const parts = typeof size === 'number' ? native.split(this.#handle, size, dim) : native.splitWithSizes(this.#handle, size, dim);
    return parts.map((h) => new Tensor(h));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return native.chunk(this.#handle, chunks, dim).map((h) => new Tensor(h));
  }

  // ---- slicing and indexing ----

  slice(dim: number, start: number | null = null, end: number | null = null, step = 1): Tensor {
    return new Tensor(native.slice(this.#handle, dim, start, end, step));
  }
  select(dim: number, index: number): Tensor {
    return new Tensor(native.select(this.#handle, dim, index));
  }
  narrow(dim: number, start: number, length: number): Tensor {
    return new Tensor(native.narrow(this.#handle, dim, start, length));
  }
  /** Basic indexing, one spec per leading dimension: t.index(0, null, [1, 5, 2]) is t[0, :, 1:5:2]. */
  index(...specs: IndexSpec[]): Tensor {
    let h = this.#handle;
    let dim = 0;
    const made: Handle[] = [];
    for (const spec of specs) {
      if (spec === null) {
        dim++;
        continue;
      }
      h = typeof spec === 'number' ? native.select(h, dim, spec) : native.slice(h, dim++, spec[0] ?? null, spec[1] ?? null, spec[2] ?? 1);
      made.push(h);
    }
    if (made.length === 0) return new Tensor(native.alias(h));
    native.dispose(...made.slice(0, -1));
    return new Tensor(h);
  }
  /** Advanced indexing: index tensors (int64 or bool) per leading dimension, null keeps one whole. */
  take(...indices: (Tensor | null)[]): Tensor {
    return new Tensor(native.index(this.#handle, indices.map((t) => (t ? t.#handle : null))));
  }
  /** this[indices] = values, in place (a bool mask or int64 indices per leading dimension). */
  put_(indices: (Tensor | null)[], values: Tensor, accumulate = false): this {
    native.indexPut_(this.#handle, indices.map((t) => (t ? t.#handle : null)), values.#handle, accumulate);
    return this;
  }
  indexSelect(dim: number, index: Tensor): Tensor {
    return new Tensor(native.indexSelect(this.#handle, dim, index.#handle));
  }
  gather(dim: number, index: Tensor): Tensor {
    return new Tensor(native.gather(this.#handle, dim, index.#handle));
  }
  scatter(dim: number, index: Tensor, src: Tensor): Tensor {
    return new Tensor(native.scatter(this.#handle, dim, index.#handle, src.#handle));
  }
  maskedFill(mask: Tensor, value: number | boolean): Tensor {
    return new Tensor(native.maskedFill(this.#handle, mask.#handle, value));
  }
  maskedFill_(mask: Tensor, value: number | boolean): this {
    native.maskedFill_(this.#handle, mask.#handle, value);
    return this;
  }
  maskedSelect(mask: Tensor): Tensor {
    return new Tensor(native.maskedSelect(this.#handle, mask.#handle));
  }
  nonzero(): Tensor {
    return new Tensor(native.nonzero(this.#handle));
  }

  // ---- in place ----

  copy_(src: Tensor): this {
    native.copy_(this.#handle, src.#handle);
    return this;
  }
  fill_(value: number | boolean): this {
    native.fill_(this.#handle, value);
    return this;
  }
  zero_(): this {
    native.zero_(this.#handle);
    return this;
  }
  add_(other: Tensor, alpha = 1): this {
    native.add_(this.#handle, other.#handle, alpha);
    return this;
  }
  mul_(other: Tensor | number): this {
    if (typeof other === 'number') native.mulScalar_(this.#handle, other);
    else native.mul_(this.#handle, other.#handle);
    return this;
  }
  /** Fills with draws from N(mean, std²), in place. */
  normal_(mean: number, std: number, generator: Generator): this {
    native.normal_(this.#handle, mean, std, generator.handle);
    return this;
  }
  /** Fills with draws from U[low, high), in place. */
  uniform_(low: number, high: number, generator: Generator): this {
    native.uniform_(this.#handle, low, high, generator.handle);
    return this;
  }
  lerp_(end: Tensor, weight: number): this {
    native.lerp_(this.#handle, end.#handle, weight);
    return this;
  }

  // ---- autograd ----

  get requiresGrad(): boolean {
    return native.requiresGrad(this.#handle);
  }
  requiresGrad_(on = true): this {
    native.setRequiresGrad(this.#handle, on);
    return this;
  }
  get isLeaf(): boolean {
    return native.isLeaf(this.#handle);
  }
  /** The accumulated gradient (a new handle on it each time), or null. */
  get grad(): Tensor | null {
    const g = native.grad(this.#handle);
    return g ? new Tensor(g) : null;
  }
  /** Drops the accumulated gradient (as PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    native.clearGrad(this.#handle);
  }
  backward(gradient?: Tensor, { retainGraph = false } = {}): void {
    native.backward(this.#handle, gradient ? gradient.#handle : null, retainGraph);
  }
}
