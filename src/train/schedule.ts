// Learning-rate schedules: linear warmup from 0, then constant or cosine decay to 0 at the last step.
import type { LrSchedule } from './config.js';

/** The learning rate for optimizer step `step` (0-based) of `total`. */
export function learningRate(step: number, { lr, warmupSteps, schedule, steps }: { lr: number; warmupSteps: number; schedule: LrSchedule; steps: number }): number {
  if (step < warmupSteps) return (lr * (step + 1)) / warmupSteps; // step 0 already moves: never an lr of 0
  if (schedule === 'constant') return lr;
  const span = Math.max(1, steps - warmupSteps);
  const progress = Math.min(1, (step - warmupSteps) / span);
  return 0.5 * lr * (1 + Math.cos(Math.PI * progress));
}

/**
 * The EMA decay after optimizer step `step` (0-based): `decay`, warmed up as (1 + step) / (10 + step)
 * while that is smaller. A constant decay from step 0 keeps decay^steps of the initial weights in
 * the average (5% of a random initialisation after 3,000 steps at 0.999); the warm-up forgets them.
 */
export function emaDecayAt(decay: number, step: number): number {
  return Math.min(decay, (1 + step) / (10 + step));
}
