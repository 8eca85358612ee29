// DPM-Solver++ (Lu et al. 2022), multistep, with data (x₀) prediction: "2M" by default. In
// log-SNR λ = log(α/σ), one step of size h = λ_t - λ_s is the exact exponential integrator
//   x_t = (σ_t/σ_s)·x_s + α_t·(1 - e^{-h})·D,
// with D = x₀ (first order, the same update as DDIM with eta 0) or, second order, x₀ corrected by
// the slope between this step's and the previous step's x₀ (midpoint or Heun form).
import { keep, type Tensor, tidy } from '../tensor/index.js';
import { sigmasFromAlphasCumprod } from './betas.js';
import { likeSample, toOriginal } from './math.js';
import { BaseScheduler, type StepResult } from './scheduler.js';
import { dpmSolverTimesteps, indexOfTimestep, interpolate } from './timesteps.js';

/** α, σ and λ of the VP form for a variance-exploding σ (σ = 0: α = 1, λ = +∞). */
function levels(veSigma: number): { alpha: number; sigma: number; lambda: number } {
  const alpha = 1 / Math.sqrt(veSigma * veSigma + 1);
  return { alpha, sigma: veSigma * alpha, lambda: -Math.log(veSigma) };
}

export class DPMSolverMultistepScheduler extends BaseScheduler {
  readonly trainSigmas: Float64Array;
  #sigmas: number[] = [];
  /** The x₀ predictions of the last steps, oldest first (at most solver_order); kept out of tidy() until reset. */
  #originals: Tensor[] = [];
  #lowerOrderSteps = 0;
  #lastIndex = -1;

  constructor(config?: unknown) {
    super(config);
    this.trainSigmas = sigmasFromAlphasCumprod(this.alphasCumprod);
  }

  /** σ (variance-exploding) at each timestep, then the final σ (0, or σ_min). */
  get sigmas(): readonly number[] {
    return this.#sigmas;
  }

  setTimesteps(numInferenceSteps: number): void {
    this.currentTimesteps = dpmSolverTimesteps(this.config, numInferenceSteps);
    const final = this.config.final_sigmas_type === 'zero' ? 0 : this.trainSigmas[0]!;
    this.#sigmas = [...this.currentTimesteps.map((t) => interpolate(this.trainSigmas, t)), final];
    this.stepCount = numInferenceSteps;
    this.reset();
  }

  override reset(): void {
    for (const t of this.#originals) t.dispose();
    this.#originals = [];
    this.#lowerOrderSteps = 0;
    this.#lastIndex = -1;
  }

  step(modelOutput: Tensor, t: number, sample: Tensor): StepResult {
    this.requireSteps('DPM-Solver step');
    const i = indexOfTimestep(this.currentTimesteps, t, 'DPM-Solver step');
    if (i === 0) this.reset(); // the first timestep starts a new run: nothing before it applies
    if (this.#originals.length > 0 && i !== this.#lastIndex + 1) {
      throw new Error(`DPM-Solver step: timestep ${t} does not follow the previous step's; steps go in schedule order (call reset() to start over)`);
    }
    const n = this.currentTimesteps.length;
    // The last step is first order: always when it ends at σ = 0, or for short schedules (< 15
    // steps), where the extrapolation is least stable.
    const lastFirstOrder =
      i === n - 1 && (this.config.euler_at_final || (this.config.lower_order_final && n < 15) || this.config.final_sigmas_type === 'zero');

    const s0 = levels(this.#sigmas[i]!);
    const original = tidy(() => toOriginal(likeSample(modelOutput, sample, 'DPM-Solver step'), sample, s0.alpha, s0.sigma, this.config.prediction_type));
    this.#originals.push(keep(original));
    if (this.#originals.length > this.config.solver_order) this.#originals.shift()!.dispose();

    const firstOrder = this.config.solver_order === 1 || this.#lowerOrderSteps < 1 || lastFirstOrder;
    const prevSample = firstOrder ? this.#firstOrderUpdate(i, sample) : this.#secondOrderUpdate(i, sample);
    if (this.#lowerOrderSteps < this.config.solver_order) this.#lowerOrderSteps++;
    this.#lastIndex = i;
    return { prevSample, predOriginalSample: original.to({}) };
  }

  #firstOrderUpdate(i: number, sample: Tensor): Tensor {
    const s = levels(this.#sigmas[i]!);
    const target = levels(this.#sigmas[i + 1]!);
    const h = target.lambda - s.lambda;
    const original = this.#originals[this.#originals.length - 1]!;
    // -expm1(-h) = 1 - e^{-h}, accurate for small h; at σ_t = 0, h = ∞ and x_t = x₀.
    return tidy(() => sample.mul(target.sigma / s.sigma).add(original, -target.alpha * Math.expm1(-h)));
  }

  #secondOrderUpdate(i: number, sample: Tensor): Tensor {
    const target = levels(this.#sigmas[i + 1]!);
    const s0 = levels(this.#sigmas[i]!);
    const s1 = levels(this.#sigmas[i - 1]!);
    const h = target.lambda - s0.lambda;
    const r0 = (s0.lambda - s1.lambda) / h;
    const [previous, current] = this.#originals as [Tensor, Tensor];
    const phi = Math.expm1(-h); // e^{-h} - 1
    const d0Coef = -target.alpha * phi;
    // D1 = (x₀ now - x₀ before) / r0; the midpoint form weighs it by half of D0's coefficient.
    const d1Coef = this.config.solver_type === 'midpoint' ? -0.5 * target.alpha * phi : target.alpha * (phi / h + 1);
    return tidy(() =>
      sample
        .mul(target.sigma / s0.sigma)
        .add(current, d0Coef + d1Coef / r0)
        .sub(previous, d1Coef / r0),
    );
  }
}
