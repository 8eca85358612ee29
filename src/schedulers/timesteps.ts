// Which training timesteps an n-step sampler visits, spaced as diffusers spaces them.
import { linspace } from './betas.js';
import type { SchedulerConfig } from './config.js';

/** Rounds half to even, as numpy's round does (so linspace spacings match diffusers exactly). */
export function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function checkStepCount(n: number, max: number): number {
  if (!Number.isSafeInteger(n) || n < 1 || n > max) {
    throw new RangeError(`setTimesteps: the number of inference steps must be an integer in [1, ${max}], got ${n}`);
  }
  return n;
}

// steps_offset can push "leading" past the last training timestep (n = N with offset 1).
function checkTop(timesteps: number[], N: number): number[] {
  if (timesteps[0]! > N - 1) throw new RangeError(`setTimesteps: ${timesteps.length} "leading" steps with this steps_offset reach timestep ${timesteps[0]}, past ${N - 1}`);
  return timesteps;
}

/**
 * Descending timesteps for n steps. "leading": multiples of floor(N/n) plus steps_offset (SD1.5,
 * 50 steps: 981, 961, ..., 1); "trailing": from N-1 down in steps of N/n; "linspace": n points
 * over [0, N-1], rounded unless `round` is false (Euler keeps them fractional).
 */
export function spacedTimesteps(config: SchedulerConfig, n: number, round = true): number[] {
  const N = config.num_train_timesteps;
  checkStepCount(n, N);
  switch (config.timestep_spacing) {
    case 'leading': {
      const ratio = Math.floor(N / n);
      return checkTop(Array.from({ length: n }, (_, i) => (n - 1 - i) * ratio + config.steps_offset), N);
    }
    case 'trailing': {
      const ratio = N / n;
      return Array.from({ length: n }, (_, i) => roundHalfEven(N - i * ratio) - 1);
    }
    case 'linspace': {
      const points = Array.from(linspace(0, N - 1, n)).reverse();
      return round ? points.map(roundHalfEven) : points;
    }
  }
}

/**
 * DPM-Solver's spacing: "leading" and "linspace" lay out n + 1 points and drop the last (t = 0
 * or its offset), so the solver never evaluates the model at the very end; "trailing" as above.
 */
export function dpmSolverTimesteps(config: SchedulerConfig, n: number): number[] {
  const N = config.num_train_timesteps;
  checkStepCount(n, N - 1);
  switch (config.timestep_spacing) {
    case 'leading': {
      const ratio = Math.floor(N / (n + 1));
      return checkTop(Array.from({ length: n }, (_, i) => (n - i) * ratio + config.steps_offset), N);
    }
    case 'linspace':
      return Array.from(linspace(0, N - 1, n + 1)).reverse().slice(0, n).map(roundHalfEven);
    case 'trailing':
      return spacedTimesteps(config, n);
  }
}

/** Piecewise-linear value of a per-timestep table at a (possibly fractional) timestep, as np.interp. */
export function interpolate(table: Float64Array, t: number): number {
  if (t <= 0) return table[0]!;
  if (t >= table.length - 1) return table[table.length - 1]!;
  const i = Math.floor(t);
  const frac = t - i;
  return frac === 0 ? table[i]! : table[i]! + frac * (table[i + 1]! - table[i]!);
}

/** The index of t in a schedule, with a clear error for a timestep the schedule does not hold. */
export function indexOfTimestep(timesteps: readonly number[], t: number, who: string): number {
  const i = timesteps.indexOf(t);
  if (i < 0) {
    const shown = timesteps.length > 6 ? `${timesteps.slice(0, 3).join(', ')}, ..., ${timesteps.slice(-2).join(', ')}` : timesteps.join(', ');
    throw new RangeError(`${who}: timestep ${t} is not in the schedule [${shown}]; call setTimesteps(n) and pass its timesteps`);
  }
  return i;
}

export function checkTrainTimestep(t: number, N: number, who: string): number {
  if (!Number.isSafeInteger(t) || t < 0 || t >= N) throw new RangeError(`${who}: timestep must be an integer in [0, ${N - 1}], got ${t}`);
  return t;
}
