// Euler discrete (Karras et al. 2022's sampler on the SD schedule, as k-diffusion's "euler"):
// samples live in the variance-exploding form x = x₀ + σ·ε with σ_t = sqrt((1 - ᾱ_t)/ᾱ_t), and
// each step follows dx/dσ = (x - x₀)/σ from σ_i to σ_{i+1}. No churn, no Karras sigmas.
import { type Tensor, tidy } from '../tensor/index.js';
import { sigmasFromAlphasCumprod } from './betas.js';
import { batchTimesteps, checkSameShape, combine, likeSample, perBatch, toOriginal } from './math.js';
import { BaseScheduler, type BatchTimesteps, type StepResult } from './scheduler.js';
import { indexOfTimestep, interpolate, spacedTimesteps } from './timesteps.js';

export class EulerDiscreteScheduler extends BaseScheduler {
  /** σ at each training timestep. */
  readonly trainSigmas: Float64Array;
  #sigmas: number[];

  constructor(config?: unknown) {
    super(config);
    this.trainSigmas = sigmasFromAlphasCumprod(this.alphasCumprod);
    this.#sigmas = [...Array.from(this.trainSigmas).reverse(), 0];
  }

  /** σ for each timestep, then 0 (where sampling ends). */
  get sigmas(): readonly number[] {
    return this.#sigmas;
  }

  /** "linspace" timesteps stay fractional (the UNet takes them as floats), as diffusers. */
  setTimesteps(numInferenceSteps: number): void {
    this.currentTimesteps = spacedTimesteps(this.config, numInferenceSteps, false);
    this.#sigmas = [...this.currentTimesteps.map((t) => interpolate(this.trainSigmas, t)), 0];
    this.stepCount = numInferenceSteps;
  }

  /** The initial latents' std: σ_max with "linspace"/"trailing", else sqrt(σ_max² + 1), as diffusers. */
  override get initNoiseSigma(): number {
    const max = Math.max(...this.#sigmas);
    return this.config.timestep_spacing === 'leading' ? Math.sqrt(max * max + 1) : max;
  }

  /** x / sqrt(σ² + 1): the variance-preserving sample the model was trained on. */
  override scaleModelInput(sample: Tensor, t: number): Tensor {
    const sigma = this.#sigmas[indexOfTimestep(this.currentTimesteps, t, 'Euler scaleModelInput')]!;
    return sample.div(Math.sqrt(sigma * sigma + 1));
  }

  step(modelOutput: Tensor, t: number, sample: Tensor): StepResult {
    const i = indexOfTimestep(this.currentTimesteps, t, 'Euler step');
    const sigma = this.#sigmas[i]!;
    const sigmaNext = this.#sigmas[i + 1]!;
    // The model's VP view of x: α = 1/sqrt(σ² + 1), and x_vp = α·x = α·x₀ + (σα)·ε.
    const alpha = 1 / Math.sqrt(sigma * sigma + 1);
    const ratio = sigmaNext / sigma;
    return tidy(() => {
      const output = likeSample(modelOutput, sample, 'Euler step');
      const original = toOriginal(output, sample.mul(alpha), alpha, sigma * alpha, this.config.prediction_type);
      // x + (σ' - σ)·(x - x₀)/σ, rearranged: a blend of x and x₀.
      const prev = combine(ratio, sample, 1 - ratio, original);
      return { prevSample: prev, predOriginalSample: original };
    });
  }

  /** x₀ + σ_t·ε: Euler's samples are in the σ form (t may be fractional, σ interpolated). */
  override addNoise(original: Tensor, noise: Tensor, timesteps: BatchTimesteps): Tensor {
    checkSameShape(original, noise, 'addNoise', ['original', 'noise']);
    if (original.ndim === 0) throw new RangeError('addNoise: expected a batch [B, ...], got a scalar');
    const ts = batchTimesteps(timesteps, original.shape[0]!, this.config.num_train_timesteps, 'addNoise', false);
    const sigmas = ts.map((t) => interpolate(this.trainSigmas, t));
    return tidy(() => original.add(noise.mul(perBatch(sigmas, original))));
  }
}
