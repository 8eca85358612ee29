// Seeded initial values for layer weights, drawn as PyTorch's default initialisation does.
import { empty, rand, randn } from '../tensor/create.js';
import { type Device } from '../tensor/device.js';
import { type DType } from '../tensor/dtype.js';
import { Generator } from '../tensor/generator.js';
import { tidy } from '../tensor/scope.js';
import { type Tensor } from '../tensor/tensor.js';

/** What every layer constructor accepts: where its initial values come from and where they live. */
export interface InitOptions {
  /**
   * The generator initial values are drawn from. When none is given, layers share one default
   * generator seeded 0 (see defaultInitGenerator), so building the same model in the same
   * order gives the same weights in every run.
   */
  generator?: Generator;
  /** dtype of the layer's tensors (float32 by default). Values are drawn in float32 and converted. */
  dtype?: DType;
  device?: Device;
  /**
   * Leave weights uninitialised (allocated, not drawn): for a model whose weights are loaded
   * right after. Drawing SD1.5's 860M UNet weights costs seconds for nothing.
   */
  empty?: boolean;
}

let shared: Generator | undefined;

/** The generator layers draw from when given none: created on first use, seeded 0. */
export function defaultInitGenerator(): Generator {
  return (shared ??= new Generator(0));
}

/** Restarts the default initialisation generator from a seed. */
export function seedDefaultInit(seed: number): void {
  shared = new Generator(seed);
}

function placed(t: Tensor, { dtype = 'float32', device = 'cpu' }: InitOptions): Tensor {
  return dtype === 'float32' && device === 'cpu' ? t : t.to({ dtype, device });
}

/** Uniform on [-bound, bound). */
export function uniformInit(shape: readonly number[], bound: number, options: InitOptions = {}): Tensor {
  if (options.empty) return empty(shape, { dtype: options.dtype ?? 'float32', device: options.device ?? 'cpu' });
  const generator = options.generator ?? defaultInitGenerator();
  return tidy(() => placed(rand(shape, { generator }).mul(2 * bound).sub(bound), options));
}

/** Normal with mean 0 and the given standard deviation. */
export function normalInit(shape: readonly number[], std = 1, options: InitOptions = {}): Tensor {
  if (options.empty) return empty(shape, { dtype: options.dtype ?? 'float32', device: options.device ?? 'cpu' });
  const generator = options.generator ?? defaultInitGenerator();
  return tidy(() => {
    const t = randn(shape, { generator });
    return placed(std === 1 ? t : t.mul(std), options);
  });
}

/** PyTorch's bound for Linear and Conv weights and biases (kaiming-uniform with a = sqrt(5)): 1/sqrt(fan_in). */
export function fanInBound(fanIn: number): number {
  return fanIn > 0 ? 1 / Math.sqrt(fanIn) : 0;
}
