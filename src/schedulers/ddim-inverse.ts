// DDIM inversion: the eta = 0 DDIM update run backwards, x_{t-Δ} → x_t, with the model's ε taken
// at the current (less noisy) sample. Its timesteps are DDIM's reversed, so inverting with n steps
// and then sampling with DDIM's n steps visits the same noise levels both ways.
import { type Tensor, tidy } from '../tensor/index.js';
import { clipOriginal, combine, likeSample, toEpsilon, toOriginal } from './math.js';
import { BaseScheduler, type StepResult } from './scheduler.js';
import { checkTrainTimestep, spacedTimesteps } from './timesteps.js';

export class DDIMInverseScheduler extends BaseScheduler {
  constructor(config?: unknown) {
    super(config);
    this.currentTimesteps.reverse();
  }

  /** ᾱ of the starting (clean) sample: the alpha DDIM's last step lands on. */
  get initialAlphaCumprod(): number {
    return this.config.set_alpha_to_one ? 1 : this.alphasCumprod[0]!;
  }

  /** Ascending: for SD1.5 and 50 steps, 1, 21, ..., 981. */
  setTimesteps(numInferenceSteps: number): void {
    this.currentTimesteps = spacedTimesteps(this.config, numInferenceSteps).reverse();
    this.stepCount = numInferenceSteps;
  }

  /**
   * From the sample one stride below t to the sample at t. `t` is the target timestep (the
   * model is called at t); `prevSample` in the result is the noisier sample.
   */
  step(modelOutput: Tensor, t: number, sample: Tensor): StepResult {
    const N = this.config.num_train_timesteps;
    checkTrainTimestep(t, N, 'DDIM inverse step');
    const from = Math.min(t - Math.floor(N / this.requireSteps('DDIM inverse step')), N - 1);
    const alphaProd = this.alphaAt(from, this.initialAlphaCumprod);
    const alphaProdNext = this.alphasCumprod[t]!;

    return tidy(() => {
      const output = likeSample(modelOutput, sample, 'DDIM inverse step');
      const [alpha, sigma] = [Math.sqrt(alphaProd), Math.sqrt(1 - alphaProd)];
      const original = clipOriginal(toOriginal(output, sample, alpha, sigma, this.config.prediction_type), this.config);
      const epsilon = toEpsilon(output, sample, alpha, sigma, this.config.prediction_type);
      const next = combine(Math.sqrt(alphaProdNext), original, Math.sqrt(1 - alphaProdNext), epsilon);
      return { prevSample: next, predOriginalSample: original };
    });
  }
}
