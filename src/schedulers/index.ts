// Noise schedulers for Stable Diffusion: DDPM (training and ancestral sampling), DDIM and its
// inversion, Euler discrete and DPM-Solver++ 2M, configured from diffusers' scheduler_config.json.
import { SD15_SCHEDULER_CONFIG } from './config.js';
import { DDIMScheduler } from './ddim.js';
import { DDPMScheduler } from './ddpm.js';
import { DPMSolverMultistepScheduler } from './dpm-solver.js';
import { EulerDiscreteScheduler } from './euler.js';
import type { Scheduler } from './scheduler.js';

export * from './betas.js';
export * from './config.js';
export * from './ddim-inverse.js';
export * from './ddim.js';
export * from './ddpm.js';
export * from './dpm-solver.js';
export * from './euler.js';
export type { BatchTimesteps, Scheduler, StepOptions, StepResult } from './scheduler.js';
export { BaseScheduler } from './scheduler.js';
export { roundHalfEven, spacedTimesteps, dpmSolverTimesteps } from './timesteps.js';

export const SCHEDULER_NAMES = ['ddim', 'ddpm', 'euler', 'dpmpp-2m'] as const;
export type SchedulerName = (typeof SCHEDULER_NAMES)[number];

/** A sampler by name, from a diffusers scheduler config (SD1.5's when omitted). */
export function createScheduler(name: SchedulerName, config: unknown = SD15_SCHEDULER_CONFIG): Scheduler {
  switch (name) {
    case 'ddim':
      return new DDIMScheduler(config);
    case 'ddpm':
      return new DDPMScheduler(config);
    case 'euler':
      return new EulerDiscreteScheduler(config);
    case 'dpmpp-2m':
      return new DPMSolverMultistepScheduler(config);
    default:
      throw new TypeError(`unknown scheduler '${String(name)}'; expected one of ${SCHEDULER_NAMES.join(', ')}`);
  }
}
