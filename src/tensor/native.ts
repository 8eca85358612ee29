// Loads the native binding and describes what it exports. Handles are opaque: only the binding
// reads them, and it checks each one's type before use.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

declare const handleBrand: unique symbol;
declare const generatorBrand: unique symbol;
declare const optimizerBrand: unique symbol;
export type Handle = { readonly [handleBrand]: true };
export type GeneratorHandle = { readonly [generatorBrand]: true };
export type OptimizerHandle = { readonly [optimizerBrand]: true };

type H = Handle;
type Num = number;
type Ints = readonly number[];
type Opt<X> = X | null;
type Scalar = number | boolean;

export interface Native {
  // facts about a tensor
  shape(t: H): number[];
  strides(t: H): number[];
  dtype(t: H): number;
  device(t: H): string;
  isContiguous(t: H, memoryFormat: Num): boolean;
  requiresGrad(t: H): boolean;
  isLeaf(t: H): boolean;
  item(t: H): number;
  // creation
  empty(shape: Ints, dtype: Num, device: string): H;
  zeros(shape: Ints, dtype: Num, device: string): H;
  ones(shape: Ints, dtype: Num, device: string): H;
  full(shape: Ints, value: Scalar, dtype: Num, device: string): H;
  arange(start: Num, end: Num, step: Num, dtype: Num, device: string): H;
  linspace(start: Num, end: Num, steps: Num, dtype: Num, device: string): H;
  eye(n: Num, dtype: Num, device: string): H;
  rand(shape: Ints, g: GeneratorHandle, dtype: Num): H;
  randn(shape: Ints, g: GeneratorHandle, dtype: Num): H;
  randint(low: Num, high: Num, shape: Ints, g: GeneratorHandle, dtype: Num): H;
  randperm(n: Num, g: GeneratorHandle): H;
  normal_(t: H, mean: Num, std: Num, g: GeneratorHandle): void;
  uniform_(t: H, low: Num, high: Num, g: GeneratorHandle): void;
  fromBuffer(data: ArrayBufferView | ArrayBuffer, dtype: Num, shape: Ints): H;
  toBuffer(t: H): ArrayBuffer;
  readFile(path: string, offset: Num, dtype: Num, shape: Ints): H;
  writeFd(fd: Num, t: H, offset: Num): number;
  // conversion and copies
  to(t: H, dtype: Num): H;
  toDevice(t: H, device: string, nonBlocking: boolean): H;
  contiguous(t: H, memoryFormat: Num): H;
  clone(t: H): H;
  alias(t: H): H;
  detach(t: H): H;
  copy_(dst: H, src: H): void;
  fill_(t: H, v: Scalar): void;
  zero_(t: H): void;
  // element-wise
  add(a: H, b: H, alpha: Scalar): H;
  addScalar(a: H, b: Scalar): H;
  sub(a: H, b: H, alpha: Scalar): H;
  rsubScalar(a: H, b: Scalar): H;
  mul(a: H, b: H): H;
  mulScalar(a: H, b: Scalar): H;
  div(a: H, b: H): H;
  divScalar(a: H, b: Scalar): H;
  pow(a: H, b: H): H;
  powScalar(a: H, b: Scalar): H;
  remainder(a: H, b: Scalar): H;
  maximum(a: H, b: H): H;
  minimum(a: H, b: H): H;
  lerp(a: H, b: H, w: Scalar): H;
  lerpTensor(a: H, b: H, w: H): H;
  addcmul(t: H, a: H, b: H, v: Scalar): H;
  clamp(a: H, lo: Opt<Scalar>, hi: Opt<Scalar>): H;
  where(c: H, a: H, b: H): H;
  gelu(a: H, approximate: string): H;
  // comparisons
  allclose(a: H, b: H, rtol: Num, atol: Num): boolean;
  equal(a: H, b: H): boolean;
  // reductions
  sum(a: H, dims: Ints, keepdim: boolean, dtype: Opt<Num>): H;
  sumAll(a: H): H;
  mean(a: H, dims: Ints, keepdim: boolean): H;
  meanAll(a: H): H;
  maxDim(a: H, dim: Num, keepdim: boolean): [H, H];
  maxAll(a: H): H;
  minDim(a: H, dim: Num, keepdim: boolean): [H, H];
  minAll(a: H): H;
  var(a: H, dims: Ints, unbiased: boolean, keepdim: boolean): H;
  std(a: H, dims: Ints, unbiased: boolean, keepdim: boolean): H;
  argmax(a: H, dim: Opt<Num>, keepdim: boolean): H;
  argmin(a: H, dim: Opt<Num>, keepdim: boolean): H;
  logsumexp(a: H, dims: Ints, keepdim: boolean): H;
  norm(a: H, p: Num, dims: Ints, keepdim: boolean): H;
  cumsum(a: H, dim: Num): H;
  all(a: H): H;
  any(a: H): H;
  // networks
  matmul(a: H, b: H): H;
  bmm(a: H, b: H): H;
  baddbmm(c: H, a: H, b: H, beta: Scalar, alpha: Scalar): H;
  linear(x: H, w: H, b: Opt<H>): H;
  conv2d(x: H, w: H, b: Opt<H>, stride: Ints, padding: Ints, dilation: Ints, groups: Num): H;
  convTranspose2d(x: H, w: H, b: Opt<H>, stride: Ints, padding: Ints, outPadding: Ints, groups: Num, dilation: Ints): H;
  groupNorm(x: H, groups: Num, w: Opt<H>, b: Opt<H>, eps: Num): H;
  layerNorm(x: H, shape: Ints, w: Opt<H>, b: Opt<H>, eps: Num): H;
  embedding(w: H, idx: H): H;
  softmax(a: H, dim: Num, dtype: Opt<Num>): H;
  logSoftmax(a: H, dim: Num, dtype: Opt<Num>): H;
  dropout(a: H, p: Num, train: boolean): H;
  attention(q: H, k: H, v: H, mask: Opt<H>, dropout: Num, causal: boolean, scale: Opt<Num>): H;
  attentionMath(q: H, k: H, v: H, mask: Opt<H>, dropout: Num, causal: boolean, scale: Opt<Num>): H;
  fusedAttention(): boolean;
  cpuAttention(q: H, k: H, v: H, scale: Num): H;
  cpuAttentionAvailable(): boolean;
  cpuAttentionUsesAmx(): boolean;
  allowCpuAttentionAmx(on: boolean): void;
  cpuAttentionF32Available(): boolean;
  cpuGeglu(h: H): H;
  cpuGegluAvailable(): boolean;
  mseLoss(a: H, b: H): H;
  crossEntropy(logits: H, target: H): H;
  upsampleNearest2d(x: H, size: Ints, scaleH: Opt<Num>, scaleW: Opt<Num>): H;
  upsampleBilinear2d(x: H, size: Ints, alignCorners: boolean, antialias: boolean, scaleH: Opt<Num>, scaleW: Opt<Num>): H;
  upsampleBicubic2d(x: H, size: Ints, alignCorners: boolean, antialias: boolean, scaleH: Opt<Num>, scaleW: Opt<Num>): H;
  pad(x: H, pad: Ints, mode: string, value: Num): H;
  clipGradNorm(params: readonly H[], maxNorm: Num, normType: Num): number;
  // shapes and views
  reshape(a: H, s: Ints): H;
  view(a: H, s: Ints): H;
  permute(a: H, dims: Ints): H;
  transpose(a: H, d0: Num, d1: Num): H;
  flatten(a: H, start: Num, end: Num): H;
  squeeze(a: H, dim: Num): H;
  squeezeAll(a: H): H;
  unsqueeze(a: H, dim: Num): H;
  expand(a: H, s: Ints): H;
  repeat(a: H, r: Ints): H;
  flip(a: H, dims: Ints): H;
  roll(a: H, shifts: Ints, dims: Ints): H;
  tril(a: H, k: Num): H;
  triu(a: H, k: Num): H;
  cat(ts: readonly H[], dim: Num): H;
  stack(ts: readonly H[], dim: Num): H;
  split(a: H, size: Num, dim: Num): H[];
  splitWithSizes(a: H, sizes: Ints, dim: Num): H[];
  chunk(a: H, chunks: Num, dim: Num): H[];
  // slicing and indexing
  slice(a: H, dim: Num, start: Opt<Num>, end: Opt<Num>, step: Num): H;
  select(a: H, dim: Num, i: Num): H;
  narrow(a: H, dim: Num, start: Num, length: Num): H;
  indexSelect(a: H, dim: Num, idx: H): H;
  gather(a: H, dim: Num, idx: H): H;
  scatter(a: H, dim: Num, idx: H, src: H): H;
  index(a: H, indices: readonly Opt<H>[]): H;
  indexPut_(a: H, indices: readonly Opt<H>[], values: H, accumulate: boolean): void;
  maskedFill(a: H, mask: H, v: Scalar): H;
  maskedFill_(a: H, mask: H, v: Scalar): void;
  maskedSelect(a: H, mask: H): H;
  nonzero(a: H): H;
  oneHot(idx: H, n: Num): H;
  // in place
  add_(a: H, b: H, alpha: Scalar): void;
  mul_(a: H, b: H): void;
  mulScalar_(a: H, b: Scalar): void;
  lerp_(a: H, b: H, w: Scalar): void;
  // autograd
  setRequiresGrad(t: H, on: boolean): void;
  backward(t: H, grad: Opt<H>, retainGraph: boolean): void;
  grad(t: H): H | null;
  clearGrad(t: H): void;
  setGradEnabled(on: boolean): void;
  isGradEnabled(): boolean;
  // memory
  dispose(...ts: H[]): void;
  isDisposed(t: H): boolean;
  liveTensors(): { count: number; bytes: number };
  // generators
  newGenerator(seed: Num | bigint): GeneratorHandle;
  generatorState(g: GeneratorHandle): H;
  setGeneratorState(g: GeneratorHandle, state: H): void;
  generatorSeed(g: GeneratorHandle): number;
  manualSeed(seed: Num): void;
  // optimizers
  adamw(groups: readonly (readonly H[])[], lrs: Ints, decays: Ints, beta1: Num, beta2: Num, eps: Num, amsgrad: boolean): OptimizerHandle;
  sgd(groups: readonly (readonly H[])[], lrs: Ints, decays: Ints, momentum: Num, dampening: Num, nesterov: boolean): OptimizerHandle;
  optimizerStep(o: OptimizerHandle): void;
  optimizerSetLr(o: OptimizerHandle, group: Num, lr: Num): void;
  optimizerDispose(o: OptimizerHandle): void;
  optimizerGetState(o: OptimizerHandle): (unknown[] | null)[];
  optimizerSetState(o: OptimizerHandle, state: readonly (readonly unknown[] | null)[]): void;
  // system
  setNumThreads(n: Num): void;
  getNumThreads(): number;
  autocastEnter(device: string, enabled: boolean, dtype: Num): [boolean, number];
  autocastExit(device: string, wasEnabled: boolean, dtype: Num): void;
  version(): string;
  showConfig(): string;
  parallelInfo(): string;
  libraryPath(): string;
  cudaAvailable(): boolean;
  cudaDeviceCount(): number;
  cudaDeviceName(index: Num): string;
  cudaSynchronize(index: Num): void;
  nativeLoop(kind: string, inputs: readonly H[], iterations: Num): number;
  noop(): void;
  allocatorStats(): number[];
  emptyCache(): void;
  setCacheLimit(bytes: Num): void;
}

// Unary element-wise ops and comparisons share one shape; listed once here and in the table.
export const UNARY_OPS = [
  'neg', 'abs', 'exp', 'log', 'log1p', 'sqrt', 'rsqrt', 'square', 'reciprocal', 'sin', 'cos', 'tanh',
  'erf', 'sign', 'floor', 'ceil', 'round', 'sigmoid', 'relu', 'silu', 'isnan', 'isfinite', 'logicalNot',
] as const;
export const BINARY_OPS = ['eq', 'ne', 'lt', 'le', 'gt', 'ge', 'logicalAnd', 'logicalOr'] as const;
export type UnaryOp = (typeof UNARY_OPS)[number];
export type BinaryOp = (typeof BINARY_OPS)[number];
export type ComparisonScalarOp = 'eqScalar' | 'neScalar' | 'ltScalar' | 'leScalar' | 'gtScalar' | 'geScalar';

type Bound = Native & Record<UnaryOp, (a: H) => H> & Record<BinaryOp, (a: H, b: H) => H> & Record<ComparisonScalarOp, (a: H, b: Scalar) => H>;

function addonPath(): string {
  if (process.env.MOA_NATIVE) return process.env.MOA_NATIVE;
  // dist/src/tensor/native.js or src/tensor/native.ts -> <root>/native/build/Release
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5 && !existsSync(join(dir, 'native', 'binding.gyp')); i++) dir = dirname(dir);
  return join(dir, 'native', 'build', 'Release', 'moa_native.node');
}

function load(): Bound {
  const path = addonPath();
  if (!existsSync(path)) {
    throw new Error(
      `moa's native binding is not built (looked for ${path}).\n` +
        'Build it with `npm run build:native` (needs libtorch: sudo apt-get install -y libtorch-dev libopenblas0-pthread).',
    );
  }
  return createRequire(import.meta.url)(path) as Bound;
}

export const native: Bound = load();
