// Scheduler configuration, read from a diffusers `scheduler_config.json` object. Field names stay
// in the file's snake_case so a parsed config can be written back or compared with the file.

export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';
export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';
export type VarianceType = 'fixed_small' | 'fixed_small_log' | 'fixed_large';
export type SolverType = 'midpoint' | 'heun';
export type FinalSigmasType = 'zero' | 'sigma_min';

/** A validated configuration with every default filled in. */
export interface SchedulerConfig {
  num_train_timesteps: number;
  beta_start: number;
  beta_end: number;
  beta_schedule: BetaSchedule;
  /** When set, these betas are used and beta_schedule/start/end are ignored (as diffusers). */
  trained_betas: readonly number[] | null;
  prediction_type: PredictionType;
  steps_offset: number;
  /** DDIM: the alpha product after the last step is 1 (true) or ᾱ₀ (false). */
  set_alpha_to_one: boolean;
  clip_sample: boolean;
  clip_sample_range: number;
  timestep_spacing: TimestepSpacing;
  /** DDPM only. */
  variance_type: VarianceType;
  /** DPM-Solver++ only. */
  solver_order: 1 | 2;
  solver_type: SolverType;
  lower_order_final: boolean;
  euler_at_final: boolean;
  final_sigmas_type: FinalSigmasType;
}

/** What a caller or a JSON file may give: any subset, plus keys this module ignores. */
export type SchedulerConfigInput = { [K in keyof SchedulerConfig]?: SchedulerConfig[K] | null } & Record<string, unknown>;

export class SchedulerConfigError extends Error {
  override name = 'SchedulerConfigError';
}

// diffusers' defaults for DDIMScheduler / DPMSolverMultistepScheduler, except timestep_spacing:
// "leading" everywhere, as in the SD1.5 pipelines (DPM-Solver's own default is "linspace").
export const DEFAULT_SCHEDULER_CONFIG: Readonly<SchedulerConfig> = Object.freeze({
  num_train_timesteps: 1000,
  beta_start: 0.0001,
  beta_end: 0.02,
  beta_schedule: 'linear',
  trained_betas: null,
  prediction_type: 'epsilon',
  steps_offset: 0,
  set_alpha_to_one: true,
  clip_sample: true,
  clip_sample_range: 1,
  timestep_spacing: 'leading',
  variance_type: 'fixed_small',
  solver_order: 2,
  solver_type: 'midpoint',
  lower_order_final: true,
  euler_at_final: false,
  final_sigmas_type: 'zero',
});

/** Stable Diffusion 1.5's scheduler (PNDM in the release; its betas and offsets suit every scheduler here). */
export const SD15_SCHEDULER_CONFIG: Readonly<SchedulerConfig> = Object.freeze({
  ...DEFAULT_SCHEDULER_CONFIG,
  beta_start: 0.00085,
  beta_end: 0.012,
  beta_schedule: 'scaled_linear',
  steps_offset: 1,
  set_alpha_to_one: false,
  clip_sample: false,
});

// Keys that name features moa does not implement: accepted only when they ask for nothing.
const UNSUPPORTED_WHEN_TRUE = ['thresholding', 'rescale_betas_zero_snr', 'use_karras_sigmas', 'use_exponential_sigmas', 'use_beta_sigmas', 'use_lu_lambdas'];
const UNSUPPORTED_VALUES: Record<string, readonly unknown[]> = {
  algorithm_type: ['dpmsolver++'],
  interpolation_type: ['linear'],
  timestep_type: ['discrete'],
};

const fail = (message: string): never => {
  throw new SchedulerConfigError(`scheduler config: ${message}`);
};

function oneOf<T extends string>(key: string, value: unknown, options: readonly T[]): T {
  if (!options.includes(value as T)) fail(`${key} must be one of ${options.map((o) => `"${o}"`).join(', ')}, got ${JSON.stringify(value)}`);
  return value as T;
}
function boolean(key: string, value: unknown): boolean {
  if (typeof value !== 'boolean') fail(`${key} must be true or false, got ${JSON.stringify(value)}`);
  return value as boolean;
}
function integer(key: string, value: unknown, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(value) || (value as number) < min || (value as number) > max) {
    fail(`${key} must be an integer in [${min}, ${max}], got ${JSON.stringify(value)}`);
  }
  return value as number;
}
function beta(key: string, value: unknown): number {
  if (typeof value !== 'number' || !(value > 0 && value < 1)) fail(`${key} must be a number in (0, 1), got ${JSON.stringify(value)}`);
  return value as number;
}

/** Validates a diffusers scheduler config (or a parsed one), filling defaults; unknown keys are ignored. */
export function parseSchedulerConfig(input: unknown = {}): SchedulerConfig {
  if (input === null || typeof input !== 'object' || Array.isArray(input)) fail(`expected an object, got ${input === null ? 'null' : typeof input}`);
  const raw = input as Record<string, unknown>;
  // JSON null means "not set", as diffusers reads it.
  const get = <K extends keyof SchedulerConfig>(key: K): unknown => raw[key] ?? DEFAULT_SCHEDULER_CONFIG[key];

  for (const key of UNSUPPORTED_WHEN_TRUE) {
    if (raw[key] != null && raw[key] !== false) fail(`${key}=${JSON.stringify(raw[key])} is not supported`);
  }
  for (const [key, allowed] of Object.entries(UNSUPPORTED_VALUES)) {
    if (raw[key] != null && !allowed.includes(raw[key])) fail(`${key}=${JSON.stringify(raw[key])} is not supported (only ${allowed.map((a) => JSON.stringify(a)).join(', ')})`);
  }

  const num_train_timesteps = integer('num_train_timesteps', get('num_train_timesteps'), 1);
  const trainedBetas = get('trained_betas');
  let trained_betas: number[] | null = null;
  if (trainedBetas !== null) {
    if (!Array.isArray(trainedBetas)) fail(`trained_betas must be an array of numbers or null`);
    trained_betas = (trainedBetas as unknown[]).map((b, i) => beta(`trained_betas[${i}]`, b));
    if (trained_betas.length !== num_train_timesteps) fail(`trained_betas has ${trained_betas.length} values but num_train_timesteps is ${num_train_timesteps}`);
  }
  const clip_sample_range = get('clip_sample_range');
  if (typeof clip_sample_range !== 'number' || !(clip_sample_range > 0)) fail(`clip_sample_range must be a positive number, got ${JSON.stringify(clip_sample_range)}`);

  return {
    num_train_timesteps,
    beta_start: beta('beta_start', get('beta_start')),
    beta_end: beta('beta_end', get('beta_end')),
    beta_schedule: oneOf('beta_schedule', get('beta_schedule'), ['linear', 'scaled_linear', 'squaredcos_cap_v2']),
    trained_betas,
    prediction_type: oneOf('prediction_type', get('prediction_type'), ['epsilon', 'v_prediction', 'sample']),
    steps_offset: integer('steps_offset', get('steps_offset'), 0, num_train_timesteps - 1),
    set_alpha_to_one: boolean('set_alpha_to_one', get('set_alpha_to_one')),
    clip_sample: boolean('clip_sample', get('clip_sample')),
    clip_sample_range: clip_sample_range as number,
    timestep_spacing: oneOf('timestep_spacing', get('timestep_spacing'), ['leading', 'trailing', 'linspace']),
    variance_type: oneOf('variance_type', get('variance_type'), ['fixed_small', 'fixed_small_log', 'fixed_large']),
    solver_order: integer('solver_order', get('solver_order'), 1, 2) as 1 | 2,
    solver_type: oneOf('solver_type', get('solver_type'), ['midpoint', 'heun']),
    lower_order_final: boolean('lower_order_final', get('lower_order_final')),
    euler_at_final: boolean('euler_at_final', get('euler_at_final')),
    final_sigmas_type: oneOf('final_sigmas_type', get('final_sigmas_type'), ['zero', 'sigma_min']),
  };
}
