// DDIM (Song et al. 2021): x_prev = sqrt(ᾱ_prev)·x₀ + sqrt(1 - ᾱ_prev - σ²)·ε + σ·z, with
// σ = eta·sqrt((1 - ᾱ_prev)/(1 - ᾱ_t)·(1 - ᾱ_t/ᾱ_prev)); eta = 0 is the deterministic sampler.
import { type Tensor, tidy } from '../tensor/index.js';
import { clipOriginal, combine, epsilonFromOriginal, likeSample, stepNoise, toEpsilon, toOriginal } from './math.js';
import { BaseScheduler, type StepOptions, type StepResult } from './scheduler.js';
import { checkTrainTimestep, spacedTimesteps } from './timesteps.js';

export class DDIMScheduler extends BaseScheduler {
  /** ᾱ after the last step: 1 with set_alpha_to_one, else ᾱ₀ (SD1.5). */
  get finalAlphaCumprod(): number {
    return this.config.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
  }

  setTimesteps(numInferenceSteps: number): void {
    this.currentTimesteps = spacedTimesteps(this.config, numInferenceSteps);
    this.stepCount = numInferenceSteps;
  }

  /** t - floor(N / n), as diffusers (exact for "leading" spacing); negative past the end. */
  previousTimestep(t: number): number {
    return t - Math.floor(this.config.num_train_timesteps / this.requireSteps('DDIM'));
  }

  step(modelOutput: Tensor, t: number, sample: Tensor, options: StepOptions = {}): StepResult {
    const { eta = 0, useClippedModelOutput = false } = options;
    if (typeof eta !== 'number' || !Number.isFinite(eta) || eta < 0) throw new RangeError(`DDIM step: eta must be a number ≥ 0, got ${eta}`);
    checkTrainTimestep(t, this.config.num_train_timesteps, 'DDIM step');
    const alphaProd = this.alphasCumprod[t]!;
    const alphaProdPrev = this.alphaAt(this.previousTimestep(t), this.finalAlphaCumprod);
    const variance = ((1 - alphaProdPrev) / (1 - alphaProd)) * (1 - alphaProd / alphaProdPrev);
    const std = eta * Math.sqrt(variance);
    // eta > 1 would ask for more noise than the step has; clamp rather than return NaN.
    const directionCoef = Math.sqrt(Math.max(1 - alphaProdPrev - std * std, 0));

    return tidy(() => {
      const output = likeSample(modelOutput, sample, 'DDIM step');
      const [alpha, sigma] = [Math.sqrt(alphaProd), Math.sqrt(1 - alphaProd)];
      const original = clipOriginal(toOriginal(output, sample, alpha, sigma, this.config.prediction_type), this.config);
      const epsilon =
        this.config.clip_sample && useClippedModelOutput
          ? epsilonFromOriginal(original, sample, alpha, sigma)
          : toEpsilon(output, sample, alpha, sigma, this.config.prediction_type);
      let prev = combine(Math.sqrt(alphaProdPrev), original, directionCoef, epsilon);
      if (eta > 0) prev = prev.add(stepNoise(sample, options, 'DDIM step with eta > 0'), std);
      return { prevSample: prev, predOriginalSample: original };
    });
  }
}
