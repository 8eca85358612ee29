// Tensor math the schedulers share. Coefficients are JavaScript numbers (float64); tensors keep
// the sample's dtype and device. Call these inside tidy(): intermediates are left to it.
import { Generator, randnLike, type Tensor, tensor } from '../tensor/index.js';
import type { PredictionType, SchedulerConfig } from './config.js';

/** a·x + b·y. */
export function combine(a: number, x: Tensor, b: number, y: Tensor): Tensor {
  return x.mul(a).add(y, b);
}

/** The model's output in the sample's dtype and on its device (an fp16 UNet may feed fp32 latents). */
export function likeSample(modelOutput: Tensor, sample: Tensor, who: string): Tensor {
  if (modelOutput.shape.join() !== sample.shape.join()) {
    throw new RangeError(`${who}: model output [${modelOutput.shape.join(', ')}] and sample [${sample.shape.join(', ')}] differ in shape`);
  }
  return modelOutput.to({ dtype: sample.dtype, device: sample.device });
}

// With x = α·x₀ + σ·ε (α = sqrt(ᾱ), σ = sqrt(1 - ᾱ) for the VP form) and v = α·ε - σ·x₀, each
// prediction type gives the other two quantities in closed form (α² + σ² = 1 is used for v).

/** The predicted clean sample x₀. */
export function toOriginal(modelOutput: Tensor, sample: Tensor, alpha: number, sigma: number, type: PredictionType): Tensor {
  switch (type) {
    case 'epsilon':
      return combine(1 / alpha, sample, -sigma / alpha, modelOutput);
    case 'sample':
      return modelOutput.to({});
    case 'v_prediction':
      return combine(alpha, sample, -sigma, modelOutput);
  }
}

/** The predicted noise ε. */
export function toEpsilon(modelOutput: Tensor, sample: Tensor, alpha: number, sigma: number, type: PredictionType): Tensor {
  switch (type) {
    case 'epsilon':
      return modelOutput.to({});
    case 'sample':
      return epsilonFromOriginal(modelOutput, sample, alpha, sigma);
    case 'v_prediction':
      return combine(alpha, modelOutput, sigma, sample);
  }
}

/** ε = (x - α·x₀) / σ. */
export function epsilonFromOriginal(original: Tensor, sample: Tensor, alpha: number, sigma: number): Tensor {
  return combine(1 / sigma, sample, -alpha / sigma, original);
}

export function clipOriginal(original: Tensor, config: SchedulerConfig): Tensor {
  return config.clip_sample ? original.clamp(-config.clip_sample_range, config.clip_sample_range) : original;
}

/** Per-batch-element values as a [B, 1, ..., 1] tensor that broadcasts against `like`. */
export function perBatch(values: readonly number[], like: Tensor): Tensor {
  const shape = [values.length, ...Array<number>(like.ndim - 1).fill(1)];
  return tensor(values, { shape, dtype: like.dtype, device: like.device });
}

/** Training timesteps for a batch of B: an int tensor [B] (or [1], or a scalar), a list or a number. */
export function batchTimesteps(timesteps: Tensor | readonly number[] | number, batch: number, N: number, who: string, integral = true): number[] {
  let list: number[];
  if (typeof timesteps === 'number') list = [timesteps];
  else if (Array.isArray(timesteps)) list = [...(timesteps as readonly number[])];
  else {
    const t = timesteps as Tensor;
    if (t.ndim > 1) throw new RangeError(`${who}: timesteps must be a 1-D tensor [B], got shape [${t.shape.join(', ')}]`);
    list = t.toNumbers();
  }
  if (list.length === 1 && batch !== 1) list = Array<number>(batch).fill(list[0]!);
  if (list.length !== batch) throw new RangeError(`${who}: ${list.length} timesteps for a batch of ${batch}`);
  for (const t of list) {
    const ok = integral ? Number.isSafeInteger(t) : Number.isFinite(t);
    if (!ok || t < 0 || t > N - 1) throw new RangeError(`${who}: timesteps must be ${integral ? 'integers' : 'numbers'} in [0, ${N - 1}], got ${t}`);
  }
  return list;
}

export function checkSameShape(a: Tensor, b: Tensor, who: string, names = ['sample', 'noise']): void {
  if (a.shape.join() !== b.shape.join()) {
    throw new RangeError(`${who}: ${names[0]} [${a.shape.join(', ')}] and ${names[1]} [${b.shape.join(', ')}] differ in shape`);
  }
}

export interface NoiseOptions {
  /** Draws the step's noise. */
  generator?: Generator;
  /** The step's noise itself (standard normal, the sample's shape), instead of a draw. */
  noise?: Tensor;
}

/** The noise a stochastic step adds: given, or drawn from the generator (required then). */
export function stepNoise(sample: Tensor, options: NoiseOptions, who: string): Tensor {
  if (options.noise) {
    checkSameShape(sample, options.noise, who);
    return options.noise.to({ dtype: sample.dtype, device: sample.device });
  }
  if (!(options.generator instanceof Generator)) {
    throw new TypeError(`${who}: this step adds noise and needs an explicit generator: pass { generator: new Generator(seed) } (or { noise })`);
  }
  return randnLike(sample, options.generator);
}
