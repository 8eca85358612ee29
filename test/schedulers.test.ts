import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  createScheduler,
  DDIMInverseScheduler,
  DDIMScheduler,
  DDPMScheduler,
  DPMSolverMultistepScheduler,
  EulerDiscreteScheduler,
  parseSchedulerConfig,
  SchedulerConfigError,
  SD15_SCHEDULER_CONFIG,
  type Scheduler,
  type SchedulerConfigInput,
} from '../src/schedulers/index.js';
import { Generator, liveTensors, randn, type Tensor, tensor, tidy, torchInfo } from '../src/tensor/index.js';
import { close, f64, rnd, vals } from './helpers.js';

// ---- helpers ----

const SD15 = SD15_SCHEDULER_CONFIG;
const N = 1000;
const SHAPE = [2, 3, 2, 2];
const COUNT = SHAPE.reduce((a, b) => a * b, 1);
const x0Values = rnd(COUNT, 1);
const noiseValues = rnd(COUNT, 2, -2, 2);
const x0 = () => f64(x0Values, SHAPE);
const noise = () => f64(noiseValues, SHAPE);
const withConfig = (changes: SchedulerConfigInput) => ({ ...SD15, ...changes });

/** Closed-form SD1.5 ᾱ, independent of the implementation: betas = linspace(√b0, √b1, N)². */
function sd15AlphasCumprod(): number[] {
  const [r0, r1] = [Math.sqrt(0.00085), Math.sqrt(0.012)];
  const out: number[] = [];
  let logProduct = 0;
  for (let i = 0; i < N; i++) {
    const beta = (r0 + ((r1 - r0) * i) / (N - 1)) ** 2;
    logProduct += Math.log1p(-beta);
    out.push(Math.exp(logProduct));
  }
  return out;
}
const AC = sd15AlphasCumprod();

/** α·x + β·y element-wise on plain arrays. */
const lin = (a: number, x: readonly number[], b: number, y: readonly number[]) => x.map((v, i) => a * v + b * y[i]!);
const maxAbsDiff = (a: ArrayLike<number>, b: ArrayLike<number>) => Array.from(a).reduce((m, v, i) => Math.max(m, Math.abs(v - b[i]!)), 0);

/** Runs a whole sampling loop; `model(x, t)` returns a new tensor. Returns the final sample (float64 values). */
function sample(scheduler: Scheduler, start: Tensor, model: (x: Tensor, t: number) => Tensor): { final: number[]; originals: number[][] } {
  let x = start.clone();
  const originals: number[][] = [];
  for (const t of scheduler.timesteps) {
    const next = tidy(() => {
      const { prevSample, predOriginalSample } = scheduler.step(model(scheduler.scaleModelInput(x, t), t), t, x);
      originals.push(vals(predOriginalSample));
      return prevSample;
    });
    x.dispose();
    x = next;
  }
  const final = vals(x);
  x.dispose();
  return { final, originals };
}

/** A fixed smooth "model" for inversion: ε(x, t) = 0.1·tanh(x)·t/1000. */
const smoothModel = (x: Tensor, t: number) => x.tanh().mul((0.1 * t) / 1000);

function throwsWith(fn: () => unknown, type: new (...args: never[]) => Error, ...patterns: RegExp[]): void {
  assert.throws(fn, (error: unknown) => {
    assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
    for (const p of patterns) assert.match((error as Error).message, p);
    return true;
  });
}

// ---- config ----

describe('config', () => {
  test('a diffusers scheduler_config.json object parses, ignoring unknown keys', () => {
    const json = {
      _class_name: 'PNDMScheduler',
      _diffusers_version: '0.6.0',
      beta_end: 0.012,
      beta_schedule: 'scaled_linear',
      beta_start: 0.00085,
      num_train_timesteps: 1000,
      set_alpha_to_one: false,
      skip_prk_steps: true,
      steps_offset: 1,
      trained_betas: null,
      clip_sample: false,
    };
    assert.deepEqual(parseSchedulerConfig(json), SD15);
    assert.equal(parseSchedulerConfig(SD15).prediction_type, 'epsilon');
    assert.equal(parseSchedulerConfig({}).beta_schedule, 'linear', 'missing keys take diffusers defaults');
  });

  test('invalid values fail with errors that name the key', () => {
    const bad: [SchedulerConfigInput, RegExp][] = [
      [{ beta_schedule: 'cosine' as never }, /beta_schedule must be one of "linear", "scaled_linear", "squaredcos_cap_v2", got "cosine"/],
      [{ prediction_type: 'noise' as never }, /prediction_type must be one of/],
      [{ timestep_spacing: 'even' as never }, /timestep_spacing/],
      [{ num_train_timesteps: 0 }, /num_train_timesteps must be an integer/],
      [{ num_train_timesteps: 10.5 }, /num_train_timesteps/],
      [{ steps_offset: -1 }, /steps_offset/],
      [{ beta_start: 0 }, /beta_start must be a number in \(0, 1\)/],
      [{ beta_end: '0.012' as never }, /beta_end/],
      [{ set_alpha_to_one: 'no' as never }, /set_alpha_to_one must be true or false/],
      [{ trained_betas: [0.1, 0.2] }, /trained_betas has 2 values but num_train_timesteps is 1000/],
      [{ clip_sample_range: -1 }, /clip_sample_range/],
      [{ solver_order: 3 as never }, /solver_order/],
      [{ thresholding: true }, /thresholding=true is not supported/],
      [{ use_karras_sigmas: true }, /use_karras_sigmas/],
      [{ algorithm_type: 'dpmsolver' }, /algorithm_type="dpmsolver" is not supported/],
    ];
    for (const [change, pattern] of bad) throwsWith(() => parseSchedulerConfig(withConfig(change)), SchedulerConfigError, /^scheduler config: /, pattern);
    throwsWith(() => parseSchedulerConfig(null), SchedulerConfigError, /expected an object, got null/);
    throwsWith(() => parseSchedulerConfig([1]), SchedulerConfigError, /expected an object/);
    throwsWith(() => new DDIMScheduler({ beta_schedule: 'cosine' }), SchedulerConfigError, /beta_schedule/);
    // Off switches for unsupported features are fine.
    assert.doesNotThrow(() => parseSchedulerConfig(withConfig({ thresholding: false, use_karras_sigmas: false, algorithm_type: 'dpmsolver++' })));
  });

  test('createScheduler builds each sampler and rejects unknown names', () => {
    assert.ok(createScheduler('ddim') instanceof DDIMScheduler);
    assert.ok(createScheduler('ddpm') instanceof DDPMScheduler);
    assert.ok(createScheduler('euler') instanceof EulerDiscreteScheduler);
    assert.ok(createScheduler('dpmpp-2m', { ...SD15, _class_name: 'DPMSolverMultistepScheduler' }) instanceof DPMSolverMultistepScheduler);
    throwsWith(() => createScheduler('pndm' as never), TypeError, /unknown scheduler 'pndm'; expected one of ddim, ddpm, euler, dpmpp-2m/);
  });
});

// ---- the training schedule ----

describe('schedule', () => {
  test('scaled_linear betas are linspace(√b0, √b1, N)², and ᾱ their running product', () => {
    const s = new DDPMScheduler(SD15);
    const [r0, r1] = [Math.sqrt(0.00085), Math.sqrt(0.012)];
    close(s.betas, Array.from({ length: N }, (_, i) => (r0 + ((r1 - r0) * i) / (N - 1)) ** 2), 1e-14, 'betas');
    close(s.alphasCumprod, AC, 1e-12, 'alphas_cumprod');
    assert.equal(s.alphasCumprod[0], 1 - 0.00085);
    // Published figure: SD's terminal sqrt(ᾱ) is 0.068265 (Lin et al. 2023, zero terminal SNR).
    close([Math.sqrt(s.alphasCumprod[N - 1]!)], [0.068265], 1e-5, 'sqrt(ᾱ_999)');
  });

  test('linear, cosine and trained betas', () => {
    const linear = new DDPMScheduler({ beta_schedule: 'linear', beta_start: 0.0001, beta_end: 0.02, num_train_timesteps: 5 });
    close(linear.betas, [0.0001, 0.0001 + 0.0199 / 4, 0.0001 + 0.0199 / 2, 0.0001 + (0.0199 * 3) / 4, 0.02], 1e-15, 'linear');
    const cosine = new DDPMScheduler({ beta_schedule: 'squaredcos_cap_v2' });
    const f = (t: number) => Math.cos(((t + 0.008) / 1.008) * (Math.PI / 2)) ** 2;
    close([cosine.betas[0]!, cosine.betas[500]!], [1 - f(1 / N) / f(0), 1 - f(501 / N) / f(500 / N)], 1e-12, 'cosine');
    assert.equal(cosine.betas[N - 1], 0.999, 'capped');
    const trained = new DDPMScheduler({ num_train_timesteps: 3, trained_betas: [0.1, 0.2, 0.5] });
    close(trained.alphasCumprod, [0.9, 0.72, 0.36], 1e-15, 'trained');
  });
});

// ---- timesteps ----

describe('timesteps', () => {
  test('SD1.5 DDIM with 50 steps visits 981, 961, ..., 1 (leading spacing, steps_offset 1)', () => {
    const s = new DDIMScheduler(SD15);
    s.setTimesteps(50);
    assert.deepEqual(s.timesteps, Array.from({ length: 50 }, (_, i) => 981 - 20 * i));
    assert.equal(s.numInferenceSteps, 50);
    assert.equal(s.initNoiseSigma, 1);
    const inverse = new DDIMInverseScheduler(SD15);
    inverse.setTimesteps(50);
    assert.deepEqual(inverse.timesteps, [...s.timesteps].reverse());
  });

  test('trailing and linspace spacings', () => {
    const trailing = new DDIMScheduler(withConfig({ timestep_spacing: 'trailing' }));
    trailing.setTimesteps(3);
    assert.deepEqual(trailing.timesteps, [999, 666, 332]);
    const linspace = new DDIMScheduler(withConfig({ timestep_spacing: 'linspace' }));
    linspace.setTimesteps(50);
    assert.deepEqual(linspace.timesteps.slice(0, 6), [999, 979, 958, 938, 917, 897]);
    assert.deepEqual(linspace.timesteps.slice(-3), [41, 20, 0]);
    linspace.setTimesteps(7); // 832.5, 499.5 and 166.5 round half to even, as numpy
    assert.deepEqual(linspace.timesteps, [999, 832, 666, 500, 333, 166, 0]);
    const dpm = new DPMSolverMultistepScheduler(SD15);
    dpm.setTimesteps(25); // n + 1 points with ratio floor(1000/26) = 38, the last (0) dropped
    assert.deepEqual(dpm.timesteps, Array.from({ length: 25 }, (_, i) => 38 * (25 - i) + 1));
  });

  test('step counts are checked', () => {
    const s = new DDIMScheduler(SD15);
    throwsWith(() => s.setTimesteps(0), RangeError, /integer in \[1, 1000\], got 0/);
    throwsWith(() => s.setTimesteps(2.5), RangeError, /got 2.5/);
    throwsWith(() => s.setTimesteps(1000), RangeError, /reach timestep 1000, past 999/);
    throwsWith(() => s.step(noise(), 981, x0()), Error, /call setTimesteps/);
    const ddpm = new DDPMScheduler(SD15);
    assert.equal(ddpm.timesteps.length, N, 'every training timestep before setTimesteps');
    assert.equal(ddpm.timesteps[0], 999);
  });
});

// ---- DDPM: training ----

describe('DDPM training', () => {
  const ts = [0, 500, 999];
  const x = f64(rnd(12, 3), [3, 2, 2]);
  const e = f64(rnd(12, 4), [3, 2, 2]);
  const expect = (f: (a: number, s: number, xv: number, ev: number) => number) =>
    vals(x).map((xv, i) => {
      const t = ts[Math.floor(i / 4)]!;
      return f(Math.sqrt(AC[t]!), Math.sqrt(1 - AC[t]!), xv, vals(e)[i]!);
    });

  test('addNoise and velocity match sqrt(ᾱ)·x₀ + sqrt(1-ᾱ)·ε and sqrt(ᾱ)·ε - sqrt(1-ᾱ)·x₀ per batch element', () => {
    const s = new DDPMScheduler(SD15);
    const timesteps = tensor(ts, { dtype: 'int64' });
    close(vals(s.addNoise(x, e, timesteps)), expect((a, sg, xv, ev) => a * xv + sg * ev), 1e-12, 'addNoise');
    close(vals(s.velocity(x, e, timesteps)), expect((a, sg, xv, ev) => a * ev - sg * xv), 1e-12, 'velocity');
    close(vals(s.addNoise(x, e, ts)), expect((a, sg, xv, ev) => a * xv + sg * ev), 1e-12, 'a list of timesteps');
    const one = s.addNoise(x, e, 500); // one timestep for the whole batch
    close(vals(one), vals(x).map((xv, i) => Math.sqrt(AC[500]!) * xv + Math.sqrt(1 - AC[500]!) * vals(e)[i]!), 1e-12, 'broadcast timestep');
    const f32 = s.addNoise(x.float(), e.float(), timesteps);
    assert.equal(f32.dtype, 'float32', 'the sample dtype is kept');
  });

  test('trainingTarget follows prediction_type', () => {
    const timesteps = tensor(ts, { dtype: 'int64' });
    assert.deepEqual(vals(new DDPMScheduler(SD15).trainingTarget(x, e, timesteps)), vals(e));
    assert.deepEqual(vals(new DDPMScheduler(withConfig({ prediction_type: 'sample' })).trainingTarget(x, e, timesteps)), vals(x));
    const v = new DDPMScheduler(withConfig({ prediction_type: 'v_prediction' })).trainingTarget(x, e, timesteps);
    close(vals(v), expect((a, sg, xv, ev) => a * ev - sg * xv), 1e-12, 'v target');
  });

  test('bad timesteps and shapes are clear errors', () => {
    const s = new DDPMScheduler(SD15);
    throwsWith(() => s.addNoise(x, e, [0, 1]), RangeError, /2 timesteps for a batch of 3/);
    throwsWith(() => s.addNoise(x, e, [0, 1, 1000]), RangeError, /integers in \[0, 999\], got 1000/);
    throwsWith(() => s.addNoise(x, e, [0, 1.5, 2]), RangeError, /got 1.5/);
    throwsWith(() => s.velocity(x, x0(), 0), RangeError, /differ in shape/);
  });
});

// ---- DDPM: sampling ----

describe('DDPM step', () => {
  test('posterior mean plus posterior std times the noise', () => {
    for (const varianceType of ['fixed_small', 'fixed_large'] as const) {
      const s = new DDPMScheduler(withConfig({ variance_type: varianceType }));
      s.setTimesteps(50);
      const [t, prev] = [981, 961];
      const model = rnd(COUNT, 5);
      const z = rnd(COUNT, 6);
      const { prevSample, predOriginalSample } = s.step(f64(model, SHAPE), t, x0(), { noise: f64(z, SHAPE) });
      const [a, ap] = [AC[t]!, AC[prev]!];
      const original = lin(1 / Math.sqrt(a), x0Values, -Math.sqrt(1 - a) / Math.sqrt(a), model);
      const betaStep = 1 - a / ap;
      const mean = lin((Math.sqrt(ap) * betaStep) / (1 - a), original, (Math.sqrt(a / ap) * (1 - ap)) / (1 - a), x0Values);
      const variance = varianceType === 'fixed_small' ? ((1 - ap) / (1 - a)) * betaStep : betaStep;
      close(vals(predOriginalSample), original, 1e-12, 'x₀');
      close(vals(prevSample), lin(1, mean, Math.sqrt(variance), z), 1e-12, `x_prev (${varianceType})`);
    }
  });

  test('a generator is needed for t > 0 but not at t = 0', () => {
    const s = new DDPMScheduler(SD15);
    throwsWith(() => s.step(noise(), 500, x0()), TypeError, /needs an explicit generator/);
    const last = s.step(noise(), 0, x0()).prevSample; // t = 0: the mean, no noise
    const a = AC[0]!;
    close(vals(last), lin(1 / Math.sqrt(a), x0Values, -Math.sqrt(1 - a) / Math.sqrt(a), noiseValues), 1e-12, 'x₀ at t = 0');
    const draw = (seed: number) => vals(s.step(noise(), 500, x0(), { generator: new Generator(seed) }).prevSample);
    assert.deepEqual(draw(7), draw(7));
    assert.notDeepEqual(draw(7), draw(8));
  });
});

// ---- DDIM ----

describe('DDIM', () => {
  test('an eta = 0 step matches the closed form, including the last step to ᾱ_final', () => {
    const s = new DDIMScheduler(SD15);
    s.setTimesteps(50);
    const model = rnd(COUNT, 7);
    for (const [t, alphaPrev] of [
      [981, AC[961]!],
      [1, AC[0]!], // set_alpha_to_one false: the last step lands on ᾱ₀
    ] as const) {
      const a = AC[t]!;
      const original = lin(1 / Math.sqrt(a), x0Values, -Math.sqrt(1 - a) / Math.sqrt(a), model);
      const expected = lin(Math.sqrt(alphaPrev), original, Math.sqrt(1 - alphaPrev), model);
      const { prevSample, predOriginalSample } = s.step(f64(model, SHAPE), t, x0());
      close(vals(predOriginalSample), original, 1e-12, `x₀ at ${t}`);
      close(vals(prevSample), expected, 1e-12, `x_prev at ${t}`);
    }
  });

  test('eta > 0 adds σ·z with σ = eta·sqrt((1-ᾱ_prev)/(1-ᾱ_t)·(1-ᾱ_t/ᾱ_prev)), and needs a generator', () => {
    const s = new DDIMScheduler(SD15);
    s.setTimesteps(50);
    const [t, eta] = [501, 0.7];
    const [a, ap] = [AC[t]!, AC[481]!];
    const std = eta * Math.sqrt(((1 - ap) / (1 - a)) * (1 - a / ap));
    const model = rnd(COUNT, 8);
    const z = rnd(COUNT, 9);
    const original = lin(1 / Math.sqrt(a), x0Values, -Math.sqrt(1 - a) / Math.sqrt(a), model);
    const expected = lin(1, lin(Math.sqrt(ap), original, Math.sqrt(1 - ap - std * std), model), std, z);
    close(vals(s.step(f64(model, SHAPE), t, x0(), { eta, noise: f64(z, SHAPE) }).prevSample), expected, 1e-12, 'eta step');
    throwsWith(() => s.step(f64(model, SHAPE), t, x0(), { eta }), TypeError, /DDIM step with eta > 0: .*explicit generator/);
    throwsWith(() => s.step(f64(model, SHAPE), t, x0(), { eta: -1 }), RangeError, /eta must be a number ≥ 0/);
    const draw = () => vals(s.step(f64(model, SHAPE), t, x0(), { eta, generator: new Generator(3) }).prevSample);
    assert.deepEqual(draw(), draw());
  });

  test('with a perfect ε-oracle every step recovers x₀, and sampling lands on x₀', () => {
    for (const setAlphaToOne of [true, false]) {
      const s = new DDIMScheduler(withConfig({ set_alpha_to_one: setAlphaToOne }));
      s.setTimesteps(20);
      const start = s.addNoise(x0(), noise(), s.timesteps[0]!);
      const { final, originals } = sample(s, start, () => noise());
      for (const o of originals) close(o, x0Values, 1e-12, 'pred_original_sample');
      // With ᾱ_final = ᾱ₀ < 1 the last sample keeps ᾱ₀'s sliver of noise, exactly.
      const a = setAlphaToOne ? 1 : AC[0]!;
      close(final, lin(Math.sqrt(a), x0Values, Math.sqrt(1 - a), noiseValues), 1e-12, `final (set_alpha_to_one ${setAlphaToOne})`);
    }
  });

  test('v_prediction and sample prediction convert back to x₀ (oracle)', () => {
    const v = new DDIMScheduler(withConfig({ prediction_type: 'v_prediction', set_alpha_to_one: true }));
    v.setTimesteps(10);
    const training = new DDPMScheduler(SD15);
    const start = v.addNoise(x0(), noise(), v.timesteps[0]!);
    const vRun = sample(v, start, (_x, t) => training.velocity(x0(), noise(), t));
    for (const o of vRun.originals) close(o, x0Values, 1e-12, 'x₀ from v');
    close(vRun.final, x0Values, 1e-12, 'v sampling lands on x₀');
    const direct = new DDIMScheduler(withConfig({ prediction_type: 'sample', set_alpha_to_one: true }));
    direct.setTimesteps(10);
    close(sample(direct, start, () => x0()).final, x0Values, 1e-12, 'sample prediction lands on x₀');
  });

  test('clip_sample clamps x₀ to ±clip_sample_range', () => {
    const s = new DDIMScheduler(withConfig({ clip_sample: true, clip_sample_range: 0.5 }));
    s.setTimesteps(50);
    const o = vals(s.step(noise(), 981, x0()).predOriginalSample);
    assert.ok(o.every((v) => Math.abs(v) <= 0.5) && o.some((v) => Math.abs(v) === 0.5));
  });
});

// ---- DDIM inversion ----

describe('DDIM inversion', () => {
  test('an inverse step undoes a DDIM step exactly when ε does not depend on x', () => {
    const forward = new DDIMScheduler(SD15);
    const inverse = new DDIMInverseScheduler(SD15);
    forward.setTimesteps(50);
    inverse.setTimesteps(50);
    for (const t of [981, 501, 1]) {
      const back = forward.step(noise(), t, x0()).prevSample;
      close(vals(inverse.step(noise(), t, back).prevSample), x0Values, 1e-12, `round trip at ${t}`);
    }
  });

  // DDIM inversion is approximate: step t uses ε at the less noisy sample x_{t-Δ}, where sampling
  // uses ε(x_t). The mismatch is first order in the step, so the error halves as steps double.
  test('invert then sample (eta 0) with a smooth model reconstructs the latent, error O(1/steps)', () => {
    const roundTrip = (steps: number, dtype: 'float64' | 'float32') => {
      const forward = new DDIMScheduler(SD15);
      const inverse = new DDIMInverseScheduler(SD15);
      forward.setTimesteps(steps);
      inverse.setTimesteps(steps);
      const latent = randn([1, 4, 8, 8], { generator: new Generator(11), dtype: 'float64' }).to(dtype); // the same draw in both dtypes
      const { final: inverted } = sample(inverse, latent, smoothModel);
      const { final: reconstructed } = sample(forward, tensor(Float64Array.from(inverted), { shape: latent.shape, dtype }), smoothModel);
      const error = maxAbsDiff(reconstructed, vals(latent));
      assert.ok(maxAbsDiff(inverted, vals(latent)) > 0.5, 'the inversion did real work');
      console.log(`DDIM inversion round trip, ${steps} steps, ${dtype}: max |error| = ${error.toExponential(3)}`);
      return error;
    };
    const [e50, e100, e200] = [roundTrip(50, 'float64'), roundTrip(100, 'float64'), roundTrip(200, 'float64')];
    assert.ok(e50 < 0.05, `50 steps: max error ${e50}`);
    assert.ok(e200 < 0.01, `200 steps: max error ${e200}`);
    assert.ok(e50 / e100 > 1.7 && e50 / e100 < 2.3, `first-order convergence: ${e50} at 50 steps, ${e100} at 100`);
    const e50f32 = roundTrip(50, 'float32');
    assert.ok(Math.abs(e50f32 - e50) < 1e-3, `float32 adds little: ${e50f32} vs ${e50}`);
  });
});

// ---- Euler ----

describe('Euler discrete', () => {
  test('sigmas are sqrt((1-ᾱ)/ᾱ) at the timesteps, then 0; input scale and initial sigma', () => {
    const s = new EulerDiscreteScheduler(SD15);
    close([s.trainSigmas[N - 1]!, s.trainSigmas[0]!], [14.614641, 0.029167], 1e-6, 'SD1.5 σ_max and σ_min');
    s.setTimesteps(50);
    assert.deepEqual(s.timesteps, Array.from({ length: 50 }, (_, i) => 981 - 20 * i));
    close(s.sigmas, [...s.timesteps.map((t) => Math.sqrt((1 - AC[t]!) / AC[t]!)), 0], 1e-12, 'sigmas');
    const sigma0 = s.sigmas[0]!;
    close([s.initNoiseSigma], [Math.sqrt(sigma0 * sigma0 + 1)], 1e-15, 'leading: sqrt(σ_max² + 1)');
    const scaled = s.scaleModelInput(x0(), 961);
    close(vals(scaled), x0Values.map((v) => v / Math.sqrt(s.sigmas[1]! ** 2 + 1)), 1e-14, 'scaleModelInput');
    throwsWith(() => s.scaleModelInput(x0(), 960), RangeError, /timestep 960 is not in the schedule \[981, 961, 941, ..., 21, 1\]/);

    const trailing = new EulerDiscreteScheduler(withConfig({ timestep_spacing: 'trailing' }));
    trailing.setTimesteps(10);
    close([trailing.initNoiseSigma], [trailing.trainSigmas[999]!], 1e-15, 'trailing: σ_max');
    const linspace = new EulerDiscreteScheduler(withConfig({ timestep_spacing: 'linspace' }));
    linspace.setTimesteps(7); // fractional timesteps stay, their σ interpolated
    const t = linspace.timesteps[1]!; // 999·5/6 = 832.5
    assert.equal(t, 832.5);
    const [lo, hi] = [linspace.trainSigmas[832]!, linspace.trainSigmas[833]!];
    close([linspace.sigmas[1]!], [(lo + hi) / 2], 1e-14, 'interpolated σ');
  });

  test('with a perfect oracle (ε or v) Euler recovers x₀ at every step and lands on it', () => {
    for (const prediction of ['epsilon', 'v_prediction'] as const) {
      const s = new EulerDiscreteScheduler(withConfig({ prediction_type: prediction }));
      s.setTimesteps(25);
      const start = s.addNoise(x0(), noise(), s.timesteps[0]!); // x₀ + σ·ε
      close(vals(start), lin(1, x0Values, s.sigmas[0]!, noiseValues), 1e-12, 'σ-form noising');
      const model = (_x: Tensor, t: number) => {
        if (prediction === 'epsilon') return noise();
        const sigma = s.sigmas[s.timesteps.indexOf(t)]!;
        const [alpha, sg] = [1 / Math.sqrt(sigma * sigma + 1), sigma / Math.sqrt(sigma * sigma + 1)];
        return f64(lin(alpha, noiseValues, -sg, x0Values), SHAPE); // v at the model's (VP) input
      };
      const { final, originals } = sample(s, start, model);
      for (const o of originals) close(o, x0Values, 1e-12, `x₀ (${prediction})`);
      close(final, x0Values, 1e-12, `final (${prediction})`);
    }
  });
});

// ---- DPM-Solver++ ----

describe('DPM-Solver++ 2M', () => {
  const trailing = withConfig({ timestep_spacing: 'trailing', set_alpha_to_one: true });

  test('its first-order step is the DDIM eta = 0 step; solver_order 1 is DDIM throughout', () => {
    const ddim = new DDIMScheduler(trailing);
    ddim.setTimesteps(10);
    const dpm = new DPMSolverMultistepScheduler(trailing);
    dpm.setTimesteps(10);
    assert.deepEqual(dpm.timesteps, ddim.timesteps);
    const start = randn(SHAPE, { generator: new Generator(5), dtype: 'float64' });
    close(vals(dpm.step(smoothModel(start, 999), 999, start).prevSample), vals(ddim.step(smoothModel(start, 999), 999, start).prevSample), 1e-12, 'first step');

    const first = new DPMSolverMultistepScheduler({ ...trailing, solver_order: 1 });
    first.setTimesteps(10);
    close(sample(first, start, smoothModel).final, sample(ddim, start, smoothModel).final, 1e-11, 'DPM-Solver++ 1 = DDIM');
  });

  test('the second-order step matches the midpoint formula', () => {
    const s = new DPMSolverMultistepScheduler(SD15);
    s.setTimesteps(20);
    const [t0, t1] = s.timesteps as [number, number];
    const m0 = rnd(COUNT, 20);
    const m1 = rnd(COUNT, 21);
    const x1 = s.step(f64(m0, SHAPE), t0, x0()).prevSample;
    const x2 = vals(s.step(f64(m1, SHAPE), t1, x1).prevSample);
    const level = (sigma: number) => ({ alpha: 1 / Math.sqrt(sigma * sigma + 1), sigma: sigma / Math.sqrt(sigma * sigma + 1), lambda: -Math.log(sigma) });
    const [l0, l1, l2] = s.sigmas.slice(0, 3).map(level) as [ReturnType<typeof level>, ReturnType<typeof level>, ReturnType<typeof level>];
    const d0 = lin(1 / l0.alpha, x0Values, -l0.sigma / l0.alpha, m0); // x₀ prediction at step 0
    const d1 = lin(1 / l1.alpha, vals(x1), -l1.sigma / l1.alpha, m1); // and at step 1
    const h = l2.lambda - l1.lambda;
    const r0 = (l1.lambda - l0.lambda) / h;
    const D1 = lin(1 / r0, d1, -1 / r0, d0);
    const phi = Math.exp(-h) - 1;
    const expected = lin(1, lin(l2.sigma / l1.sigma, vals(x1), -l2.alpha * phi, d1), -0.5 * l2.alpha * phi, D1);
    close(x2, expected, 1e-12, 'second-order update');
  });

  test('with a perfect oracle (ε or v) it lands on x₀', () => {
    for (const prediction of ['epsilon', 'v_prediction'] as const) {
      const s = new DPMSolverMultistepScheduler(withConfig({ prediction_type: prediction }));
      s.setTimesteps(20);
      const training = new DDPMScheduler(SD15);
      const start = s.addNoise(x0(), noise(), s.timesteps[0]!);
      const model = (_x: Tensor, t: number) => (prediction === 'epsilon' ? noise() : training.velocity(x0(), noise(), t));
      const { final, originals } = sample(s, start, model);
      for (const o of originals) close(o, x0Values, 1e-12, `x₀ (${prediction})`);
      close(final, x0Values, 1e-12, `final (${prediction})`);
    }
  });

  test('steps go in order; reset() and setTimesteps start over and free the history', () => {
    const s = new DPMSolverMultistepScheduler(SD15);
    s.setTimesteps(10);
    const [t0, t1, t2] = s.timesteps as [number, number, number];
    tidy(() => s.step(noise(), t0, x0()));
    throwsWith(() => s.step(noise(), t2, x0()), Error, /does not follow the previous step's/);
    assert.doesNotThrow(() => tidy(() => s.step(noise(), t1, x0())));
    s.reset();
    assert.doesNotThrow(() => tidy(() => s.step(noise(), t2, x0())), 'a fresh run may start mid-schedule (img2img)');
    assert.doesNotThrow(() => tidy(() => s.step(noise(), t0, x0())), 'the first timestep always starts a new run');
    const before = liveTensors().count;
    s.reset();
    assert.ok(liveTensors().count < before, 'reset disposes the stored x₀');
  });
});

// ---- dtypes, devices, memory ----

describe('tensors', () => {
  test('results keep the sample dtype; the model output is cast to it', () => {
    const s = new DDIMScheduler(SD15);
    s.setTimesteps(50);
    const latents = x0().float();
    const { prevSample, predOriginalSample } = s.step(noise().half(), 981, latents);
    assert.equal(prevSample.dtype, 'float32');
    assert.equal(predOriginalSample.dtype, 'float32');
    throwsWith(() => s.step(f64([1, 2]), 981, latents), RangeError, /model output \[2\] and sample \[2, 3, 2, 2\] differ in shape/);
  });

  test('sampling loops leave no tensors behind', () => {
    const start = x0();
    const before = liveTensors().count;
    for (const name of ['ddim', 'ddpm', 'euler', 'dpmpp-2m'] as const) {
      const s = createScheduler(name, SD15);
      s.setTimesteps(10);
      const generator = new Generator(1);
      let x = start.clone();
      for (const t of s.timesteps) {
        const next = tidy(() => s.step(smoothModel(s.scaleModelInput(x, t), t), t, x, { generator }).prevSample);
        x.dispose();
        x = next;
      }
      x.dispose();
      s.reset();
    }
    assert.ok(liveTensors().count <= before, `${liveTensors().count - before} tensors leaked`);
  });

  test('on a GPU, steps stay on the device', { skip: !torchInfo().cuda.available && 'no CUDA device' }, () => {
    for (const name of ['ddim', 'ddpm', 'euler', 'dpmpp-2m'] as const) {
      tidy(() => {
        const s = createScheduler(name, SD15);
        s.setTimesteps(10);
        const latents = randn([1, 4, 8, 8], { generator: new Generator(1), device: 'cuda' });
        const t = s.timesteps[0]!;
        const { prevSample, predOriginalSample } = s.step(smoothModel(latents, t), t, latents, { generator: new Generator(2) });
        assert.equal(prevSample.device, 'cuda:0');
        assert.equal(predOriginalSample.device, 'cuda:0');
        const cpu = createScheduler(name, SD15);
        cpu.setTimesteps(10);
        const onCpu = cpu.step(smoothModel(latents.cpu(), t), t, latents.cpu(), { generator: new Generator(2) }).prevSample;
        close(vals(prevSample.cpu()), vals(onCpu), 1e-5, `${name} cuda vs cpu`);
      });
    }
  });
});
