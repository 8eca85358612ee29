// The training noise schedule, in float64 JavaScript arrays: betas, alphas, their cumulative product
// ᾱ_t, and the sigma of the equivalent variance-exploding form, σ_t = sqrt((1 - ᾱ_t) / ᾱ_t).
import type { SchedulerConfig } from './config.js';

export interface NoiseSchedule {
  readonly betas: Float64Array;
  readonly alphasCumprod: Float64Array;
}

/** n evenly spaced values from start to end inclusive (the last is end exactly, as numpy). */
export function linspace(start: number, end: number, n: number): Float64Array {
  const out = new Float64Array(n);
  const step = n > 1 ? (end - start) / (n - 1) : 0;
  for (let i = 0; i < n; i++) out[i] = start + i * step;
  if (n > 1) out[n - 1] = end;
  return out;
}

// Nichol & Dhariwal's cosine schedule: betas from ᾱ(t) = cos²((t + 0.008) / 1.008 · π/2), capped.
function cosineBetas(n: number, maxBeta = 0.999): Float64Array {
  const alphaBar = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
  return Float64Array.from({ length: n }, (_, i) => Math.min(1 - alphaBar((i + 1) / n) / alphaBar(i / n), maxBeta));
}

export function computeBetas(config: SchedulerConfig): Float64Array {
  const n = config.num_train_timesteps;
  if (config.trained_betas) return Float64Array.from(config.trained_betas);
  switch (config.beta_schedule) {
    case 'linear':
      return linspace(config.beta_start, config.beta_end, n);
    case 'scaled_linear':
      // Linear in sqrt(beta): Stable Diffusion's schedule.
      return linspace(Math.sqrt(config.beta_start), Math.sqrt(config.beta_end), n).map((b) => b * b);
    case 'squaredcos_cap_v2':
      return cosineBetas(n);
  }
}

export function computeSchedule(config: SchedulerConfig): NoiseSchedule {
  const betas = computeBetas(config);
  const alphasCumprod = new Float64Array(betas.length);
  let product = 1;
  for (let i = 0; i < betas.length; i++) alphasCumprod[i] = product *= 1 - betas[i]!;
  return { betas, alphasCumprod };
}

/** σ_t = sqrt((1 - ᾱ_t) / ᾱ_t): the noise level of x_t / sqrt(ᾱ_t) = x₀ + σ_t·ε. */
export function sigmasFromAlphasCumprod(alphasCumprod: Float64Array): Float64Array {
  return alphasCumprod.map((a) => Math.sqrt((1 - a) / a));
}
