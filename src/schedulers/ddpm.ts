// DDPM (Ho et al. 2020): the training-side scheduler (noising, velocity, the loss target) and its
// ancestral sampler, which draws from the posterior q(x_{t-1} | x_t, x₀) with x₀ predicted.
import { type Tensor, tidy } from '../tensor/index.js';
import { clipOriginal, combine, likeSample, perBatch, stepNoise, toOriginal } from './math.js';
import { BaseScheduler, type BatchTimesteps, type StepOptions, type StepResult } from './scheduler.js';
import { checkTrainTimestep, spacedTimesteps } from './timesteps.js';

export class DDPMScheduler extends BaseScheduler {
  setTimesteps(numInferenceSteps: number): void {
    this.currentTimesteps = spacedTimesteps(this.config, numInferenceSteps);
    this.stepCount = numInferenceSteps;
  }

  /** The timestep a step from t lands on (negative past the end); every training step before setTimesteps. */
  previousTimestep(t: number): number {
    return t - Math.floor(this.config.num_train_timesteps / (this.stepCount ?? this.config.num_train_timesteps));
  }

  /** v = sqrt(ᾱ_t)·ε - sqrt(1 - ᾱ_t)·x₀ (Salimans & Ho), with t per batch element. */
  velocity(original: Tensor, noise: Tensor, timesteps: BatchTimesteps): Tensor {
    const [a, s] = this.vpCoefficients(original, noise, timesteps, 'velocity');
    return tidy(() => noise.mul(perBatch(a, original)).sub(original.mul(perBatch(s, original))));
  }

  /** What the model learns to predict, by prediction_type: ε, v, or x₀ (a new tensor). */
  trainingTarget(original: Tensor, noise: Tensor, timesteps: BatchTimesteps): Tensor {
    switch (this.config.prediction_type) {
      case 'epsilon':
        this.vpCoefficients(original, noise, timesteps, 'trainingTarget'); // the same checks as the other targets
        return noise.clone();
      case 'sample':
        this.vpCoefficients(original, noise, timesteps, 'trainingTarget');
        return original.clone();
      case 'v_prediction':
        return this.velocity(original, noise, timesteps);
    }
  }

  /** x_t → x_{t'}: the posterior mean plus, for t > 0, noise of the posterior variance. */
  step(modelOutput: Tensor, t: number, sample: Tensor, options: StepOptions = {}): StepResult {
    const N = this.config.num_train_timesteps;
    checkTrainTimestep(t, N, 'DDPM step');
    const prevT = this.previousTimestep(t);
    const alphaProd = this.alphasCumprod[t]!;
    const alphaProdPrev = this.alphaAt(prevT, 1);
    const betaProd = 1 - alphaProd;
    const betaProdPrev = 1 - alphaProdPrev;
    const alphaStep = alphaProd / alphaProdPrev; // the alpha of the whole (possibly strided) step
    const betaStep = 1 - alphaStep;

    // Posterior mean: a blend of the predicted x₀ and the current sample (DDPM eq. 7).
    const originalCoef = (Math.sqrt(alphaProdPrev) * betaStep) / betaProd;
    const sampleCoef = (Math.sqrt(alphaStep) * betaProdPrev) / betaProd;
    const variance =
      this.config.variance_type === 'fixed_large' ? betaStep : Math.max((betaProdPrev / betaProd) * betaStep, 1e-20);

    return tidy(() => {
      const output = likeSample(modelOutput, sample, 'DDPM step');
      const original = clipOriginal(toOriginal(output, sample, Math.sqrt(alphaProd), Math.sqrt(betaProd), this.config.prediction_type), this.config);
      let prev = combine(originalCoef, original, sampleCoef, sample);
      if (t > 0) prev = prev.add(stepNoise(sample, options, 'DDPM step'), Math.sqrt(variance));
      return { prevSample: prev, predOriginalSample: original };
    });
  }
}
