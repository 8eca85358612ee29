// Text to image with classifier-free guidance: encode the prompt, denoise seeded latents step by
// step, decode with the VAE. Image i of a batch is the image seed + i gives alone.
import type { AttentionExtras } from '../models/layers/attention.js';
import { createScheduler, SCHEDULER_NAMES, type Scheduler, type SchedulerName } from '../schedulers/index.js';
import { noGrad } from '../tensor/autograd.js';
import { randn, tensor } from '../tensor/create.js';
import { cat } from '../tensor/functional.js';
import { Generator } from '../tensor/generator.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { combineGuidance, type GuidanceBranch, guidanceBranches } from './guidance.js';
import type { StableDiffusion } from './stable-diffusion.js';

export interface GenerateOptions {
  prompt: string;
  /** What to steer away from; the unconditional branch of guidance. Default: empty. */
  negativePrompt?: string;
  steps?: number;
  /** Classifier-free guidance scale; 1 turns guidance off (one UNet pass per step). Default: the model's (`sd.defaultGuidance`). */
  guidance?: number;
  seed?: number;
  width?: number;
  height?: number;
  batch?: number;
  scheduler?: SchedulerName;
  /** Called after each denoising step. */
  onProgress?: (progress: Progress) => void;
  /** Aborting stops between steps with an AbortError. */
  signal?: AbortSignal;
}

export interface Progress {
  step: number;
  steps: number;
  timestep: number;
  elapsedMs: number;
}

/** The settings of a generation, complete, so it can be reproduced. */
export interface GenerationParameters {
  prompt: string;
  negativePrompt: string;
  steps: number;
  guidance: number;
  seed: number;
  width: number;
  height: number;
  batch: number;
  scheduler: SchedulerName;
  model: string;
}

export interface GenerateResult {
  /** One [3, H, W] float32 tensor in [0, 1] per image; the caller owns them. */
  images: Tensor[];
  parameters: GenerationParameters;
}

const LIMITS = { steps: [1, 1000], batch: [1, 64], side: [8, 4096] } as const;

function checkInt(name: string, value: number, [lo, hi]: readonly [number, number]): number {
  if (!Number.isInteger(value) || value < lo || value > hi) throw new RangeError(`${name} must be an integer from ${lo} to ${hi}, not ${value}`);
  return value;
}

export function resolveParameters(sd: StableDiffusion, options: GenerateOptions): GenerationParameters {
  if (typeof options.prompt !== 'string') throw new TypeError('prompt must be a string');
  const factor = sd.vae.scaleFactor;
  const p: GenerationParameters = {
    prompt: options.prompt,
    negativePrompt: options.negativePrompt ?? '',
    steps: checkInt('steps', options.steps ?? 30, LIMITS.steps),
    guidance: options.guidance ?? sd.defaultGuidance,
    seed: options.seed ?? Math.floor(Math.random() * 2 ** 31),
    width: checkInt('width', options.width ?? factor * (sd.unet.config.sampleSize ?? 64), LIMITS.side),
    height: checkInt('height', options.height ?? factor * (sd.unet.config.sampleSize ?? 64), LIMITS.side),
    batch: checkInt('batch', options.batch ?? 1, LIMITS.batch),
    scheduler: options.scheduler ?? 'dpmpp-2m',
    model: sd.source,
  };
  if (!SCHEDULER_NAMES.includes(p.scheduler)) throw new TypeError(`unknown scheduler '${p.scheduler}'; expected one of ${SCHEDULER_NAMES.join(', ')}`);
  if (!(p.guidance >= 0 && p.guidance <= 100)) throw new RangeError(`guidance must be from 0 to 100, not ${p.guidance}`);
  if (!Number.isSafeInteger(p.seed) || p.seed < 0) throw new RangeError(`seed must be a non-negative integer, not ${p.seed}`);
  if (p.width % factor || p.height % factor) throw new RangeError(`width and height must be multiples of ${factor} (the VAE's scale), not ${p.width}×${p.height}`);
  return p;
}

/** Text embeddings [n, 77, D] for each prompt, as the text encoder gives them. */
export function encodePrompts(sd: StableDiffusion, prompts: readonly string[]): Tensor {
  return tidy(() => {
    const ids = prompts.map((p) => sd.tokenizer.encode(p).ids);
    const t = tensor(ids.flat(), { dtype: 'int64', shape: [ids.length, ids[0]!.length], device: sd.device });
    return sd.textEncoder.forward(t).lastHiddenState;
  });
}

/** Seeded initial latents: image i drawn from seed + i, on the CPU, so every device agrees. */
export function initialLatents(sd: StableDiffusion, p: GenerationParameters, sigma: number): Tensor {
  const factor = sd.vae.scaleFactor;
  const shape = [1, sd.unet.config.inChannels, p.height / factor, p.width / factor];
  return tidy(() => {
    const each = Array.from({ length: p.batch }, (_, i) => randn(shape, { generator: new Generator(p.seed + i), device: sd.device }));
    const latents = each.length === 1 ? each[0]! : cat(each, 0);
    return sigma === 1 ? latents : latents.mul(sigma);
  });
}

/** Latents → images [B, 3, H, W] in [0, 1], float32. */
export function decodeLatents(sd: StableDiffusion, latents: Tensor): Tensor {
  return tidy(() => {
    const x = sd.vae.decode(latents.div(sd.vae.scalingFactor));
    return x.float().add(1).div(2).clamp(0, 1);
  });
}

/** Where a denoising step is, for callers that vary the UNet's extras over the steps. */
export interface DenoiseStep {
  /** 0-based. */
  index: number;
  steps: number;
  timestep: number;
  /** Images per branch: the UNet's batch holds `batch` rows for each branch, in order. */
  batch: number;
  branches: readonly GuidanceBranch[];
}

export interface DenoiseOptions {
  /** A sampler whose timesteps are set. */
  scheduler: Scheduler;
  /** Classifier-free guidance scale; above 1 the context holds the unconditional rows first. */
  guidance: number;
  /** A scale of its own for the subjects (src/pipelines/guidance.ts); default: guidance's. */
  subjectGuidance?: number;
  /** Called after each UNet pass: where the subject scale applies, [B, 1, h, w] in [0, 1] (null: everywhere). */
  subjectArea?: () => Tensor | null;
  /** Seeds the step noise of ancestral samplers (ddpm). */
  seed: number;
  /** The UNet's extras at a step (e.g. MoA conditioning), for the whole guided batch. */
  extras?: (step: DenoiseStep) => AttentionExtras;
  /** Progress times count from here (performance.now()); default: the call. */
  startedAt?: number;
  onProgress?: (progress: Progress) => void;
  signal?: AbortSignal;
}

/**
 * The sampling loop shared by every pipeline: from `latents` (left to the caller) through all of
 * the scheduler's timesteps, with guidance over `context` (B rows per guidance branch, in
 * guidanceBranches' order). Returns the final latents, which the caller owns.
 */
export async function denoise(sd: StableDiffusion, latents: Tensor, context: Tensor, options: DenoiseOptions): Promise<Tensor> {
  const { scheduler, guidance, signal } = options;
  const branches = guidanceBranches(guidance, options.subjectGuidance);
  const batch = latents.size(0);
  if (context.size(0) !== branches.length * batch) {
    throw new RangeError(`denoise: ${batch} latents need a context of ${branches.length * batch} rows (branches: ${branches.join(', ')}), not ${context.size(0)}`);
  }
  const start = options.startedAt ?? performance.now();
  const steps = scheduler.timesteps.length;
  // Ancestral samplers (ddpm) add noise at each step; it comes from the seed too.
  const stepNoise = new Generator(options.seed);
  let current = latents;
  try {
    for (const [i, t] of scheduler.timesteps.entries()) {
      signal?.throwIfAborted();
      const extras = options.extras?.({ index: i, steps, timestep: t, batch, branches }) ?? {};
      const next = noGrad(() =>
        tidy(() => {
          const input = scheduler.scaleModelInput(branches.length > 1 ? cat(Array(branches.length).fill(current), 0) : current, t);
          const out = sd.unet.forward(input, t, context, extras).float();
          const eps = combineGuidance(out.chunk(branches.length, 0), branches, guidance, options.subjectGuidance, options.subjectArea?.());
          return scheduler.step(eps, t, current, { generator: stepNoise }).prevSample;
        }),
      );
      if (current !== latents) current.dispose();
      current = next;
      options.onProgress?.({ step: i + 1, steps, timestep: t, elapsedMs: performance.now() - start });
      // Let the event loop breathe between steps (progress output, cancellation, servers).
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    signal?.throwIfAborted();
  } catch (error) {
    if (current !== latents) current.dispose();
    throw error;
  }
  return current === latents ? latents.clone() : current;
}

/** Text embeddings for guidance: `batch` rows per branch (the negative prompt for the unconditional one, else the prompt). */
export function encodeGuidedContext(sd: StableDiffusion, p: GenerationParameters, branches = guidanceBranches(p.guidance)): Tensor {
  return noGrad(() =>
    tidy(() => {
      const prompt = encodePrompts(sd, Array(p.batch).fill(p.prompt));
      const rows = branches.map((b) => (b === 'unconditional' ? encodePrompts(sd, Array(p.batch).fill(p.negativePrompt)) : prompt));
      return rows.length === 1 ? rows[0]! : cat(rows, 0);
    }),
  );
}

/** Final latents [B, ...] → one [3, H, W] image in [0, 1] per element (the caller owns them). */
export function decodeImages(sd: StableDiffusion, latents: Tensor): Tensor[] {
  const images = noGrad(() => decodeLatents(sd, latents));
  try {
    return images.chunk(images.size(0), 0).map((x) => x.squeeze(0));
  } finally {
    images.dispose();
  }
}

export async function generate(sd: StableDiffusion, options: GenerateOptions): Promise<GenerateResult> {
  const p = resolveParameters(sd, options);
  const scheduler = createScheduler(p.scheduler, sd.schedulerConfig);
  scheduler.setTimesteps(p.steps);
  const startedAt = performance.now();
  const context = encodeGuidedContext(sd, p);
  const latents = initialLatents(sd, p, scheduler.initNoiseSigma);
  try {
    const final = await denoise(sd, latents, context, { scheduler, guidance: p.guidance, seed: p.seed, startedAt, onProgress: options.onProgress, signal: options.signal });
    try {
      return { images: decodeImages(sd, final), parameters: p };
    } finally {
      final.dispose();
    }
  } finally {
    latents.dispose();
    context.dispose();
  }
}
