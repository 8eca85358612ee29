// What every scheduler offers, and the base the samplers share: the parsed config, the training
// schedule, the current timesteps, and noising in the variance-preserving form.
import { type Tensor, tidy } from '../tensor/index.js';
import { computeSchedule } from './betas.js';
import { parseSchedulerConfig, SD15_SCHEDULER_CONFIG, type SchedulerConfig } from './config.js';
import { batchTimesteps, checkSameShape, type NoiseOptions, perBatch } from './math.js';

export interface StepOptions extends NoiseOptions {
  /** DDIM only: 0 is deterministic DDIM, 1 is DDPM-like ancestral sampling. */
  eta?: number;
  /** DDIM only: with clip_sample, recompute ε from the clipped x₀ (diffusers' use_clipped_model_output). */
  useClippedModelOutput?: boolean;
}

export interface StepResult {
  /** The sample at the next timestep of the schedule (noisier for the inverse scheduler). */
  prevSample: Tensor;
  /** The model's estimate of the clean sample x₀ at this step. */
  predOriginalSample: Tensor;
}

/** Training timesteps for a batch: an int64 tensor [B], a list, or one number for every element. */
export type BatchTimesteps = Tensor | readonly number[] | number;

export interface Scheduler {
  readonly config: SchedulerConfig;
  readonly betas: Float64Array;
  readonly alphasCumprod: Float64Array;
  /** The timesteps to visit, in order (the model is called at each). */
  readonly timesteps: readonly number[];
  /** Set by setTimesteps(n); null before. */
  readonly numInferenceSteps: number | null;
  /** The standard deviation of the initial noise: latents = randn · initNoiseSigma. */
  readonly initNoiseSigma: number;
  setTimesteps(numInferenceSteps: number): void;
  /** The model's input at timestep t (a new tensor; the caller disposes it). */
  scaleModelInput(sample: Tensor, t: number): Tensor;
  /** One step from timestep t to the next in `timesteps`; new tensors, the caller disposes them. */
  step(modelOutput: Tensor, t: number, sample: Tensor, options?: StepOptions): StepResult;
  /** x₀ noised to timesteps (as this scheduler's samples are at those timesteps), e.g. for img2img. */
  addNoise(original: Tensor, noise: Tensor, timesteps: BatchTimesteps): Tensor;
  /** Forgets multistep history (a no-op for one-step schedulers). */
  reset(): void;
}

export abstract class BaseScheduler implements Scheduler {
  readonly config: SchedulerConfig;
  readonly betas: Float64Array;
  readonly alphasCumprod: Float64Array;
  protected currentTimesteps: number[];
  protected stepCount: number | null = null;

  /** From a diffusers scheduler_config.json object; with none, Stable Diffusion 1.5's. */
  constructor(config: unknown = SD15_SCHEDULER_CONFIG) {
    this.config = parseSchedulerConfig(config);
    ({ betas: this.betas, alphasCumprod: this.alphasCumprod } = computeSchedule(this.config));
    // Before setTimesteps: every training timestep, as diffusers starts.
    this.currentTimesteps = Array.from({ length: this.config.num_train_timesteps }, (_, i) => this.config.num_train_timesteps - 1 - i);
  }

  get timesteps(): readonly number[] {
    return this.currentTimesteps;
  }
  get numInferenceSteps(): number | null {
    return this.stepCount;
  }
  get initNoiseSigma(): number {
    return 1;
  }

  abstract setTimesteps(numInferenceSteps: number): void;
  abstract step(modelOutput: Tensor, t: number, sample: Tensor, options?: StepOptions): StepResult;

  /** The model sees the sample as is (a new handle on it). */
  scaleModelInput(sample: Tensor, _t: number): Tensor {
    return sample.to({});
  }

  /** sqrt(ᾱ_t)·x₀ + sqrt(1 - ᾱ_t)·ε, with t per batch element. */
  addNoise(original: Tensor, noise: Tensor, timesteps: BatchTimesteps): Tensor {
    const [a, s] = this.vpCoefficients(original, noise, timesteps, 'addNoise');
    return tidy(() => original.mul(perBatch(a, original)).add(noise.mul(perBatch(s, original))));
  }

  reset(): void {}

  /** Per batch element: sqrt(ᾱ_t) and sqrt(1 - ᾱ_t). */
  protected vpCoefficients(original: Tensor, noise: Tensor, timesteps: BatchTimesteps, who: string): [number[], number[]] {
    checkSameShape(original, noise, who, ['original', 'noise']);
    if (original.ndim === 0) throw new RangeError(`${who}: expected a batch [B, ...], got a scalar`);
    const ts = batchTimesteps(timesteps, original.shape[0]!, this.config.num_train_timesteps, who);
    return [ts.map((t) => Math.sqrt(this.alphasCumprod[t]!)), ts.map((t) => Math.sqrt(1 - this.alphasCumprod[t]!))];
  }

  protected requireSteps(who: string): number {
    if (this.stepCount === null) throw new Error(`${who}: call setTimesteps(numInferenceSteps) before stepping`);
    return this.stepCount;
  }

  /** ᾱ at a training timestep, or `before` for the negative timestep past the end. */
  protected alphaAt(t: number, before: number): number {
    return t >= 0 ? this.alphasCumprod[t]! : before;
  }
}
