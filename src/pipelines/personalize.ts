// Personalized generation with MoA: subjects bound to words of the prompt, guidance whose
// unconditional half has no subjects, a strength on the personal routing and a start step for
// the subjects. Subject swap and morphing are generations with the seed and prompt held.
import type { CLIPVisionModelWithProjection } from '../models/clip-vision.js';
import type { MoAConfig } from '../moa/config.js';
import { interpolateSubjects } from '../moa/subject-encoder.js';
import type { MoAConditioning, SubjectBinding } from '../moa/types.js';
import { createScheduler } from '../schedulers/index.js';
import { full } from '../tensor/create.js';
import type { Tensor } from '../tensor/tensor.js';
import { disposeMaps, MapRecorder, type GenerationMaps } from './maps.js';
import { guidanceBranches, SUBJECT_GUIDANCE_AREAS, type SubjectGuidanceArea, textScale } from './guidance.js';
import { RoutingFocus } from './routing-focus.js';
import type { StableDiffusion } from './stable-diffusion.js';
import { bindSubjects, clipSubjectEncoder, resolveEmbedding, type SubjectEncoder, type SubjectInput, type SubjectSource } from './subjects.js';
import {
  decodeImages,
  denoise,
  encodeGuidedContext,
  type GenerateOptions,
  type GenerationParameters,
  initialLatents,
  type Progress,
  resolveParameters,
} from './text-to-image.js';

/** What the pipelines need of the MoA installed in `sd.unet` (src/moa's MoA). */
export interface MoAModel {
  readonly config: Pick<MoAConfig, 'maxSubjects' | 'imageEmbedDim'>;
  /** Encodes subjects given as images when no encoder is passed. */
  readonly imageEncoder?: CLIPVisionModelWithProjection | null;
  readonly unet?: unknown;
  readonly installed?: boolean;
}

/** MoA must sit in this model's UNet: otherwise its conditioning would be silently ignored. */
export function checkInstalled(sd: StableDiffusion, moa: MoAModel): void {
  if (moa.unet !== undefined && moa.unet !== sd.unet) throw new Error("this MoA is installed on another UNet than the model's: build it with new MoA(sd.unet, ...)");
  if (moa.installed === false) throw new Error('this MoA is not installed in its UNet: call moa.install()');
}

/** The subject encoder to use: the one given, else MoA's image encoder. */
export function encoderFor(moa: MoAModel, given: SubjectEncoder | undefined): SubjectEncoder | undefined {
  return given ?? (moa.imageEncoder ? clipSubjectEncoder(moa.imageEncoder) : undefined);
}

export interface PersonalizeOptions extends GenerateOptions {
  /** Subjects, each bound to its own word of the prompt (at most maxSubjects). */
  subjects?: readonly SubjectInput[];
  /** Turns reference images into embeddings (default: MoA's image encoder, when it has one). */
  encoder?: SubjectEncoder;
  /**
   * Guidance scale of the subjects apart from the text's: the step's noise is
   * u + guidance·(t − u) + subjectGuidance·(c − t), with t the prompt without subjects (a third
   * UNet row per image). Default: guidance's (plain guidance, two rows).
   */
  subjectGuidance?: number;
  /**
   * Where subjectGuidance applies: 'image' (default) everywhere; 'routing' in proportion to where
   * the routers send pixels to the personal branch at each step (r1 scaled to its peak), plain
   * guidance elsewhere, so the scene moves less when a subject changes.
   */
  subjectGuidanceArea?: SubjectGuidanceArea;
  /** Scale on the personal routing (odds of r1; renormalised): 0 = the prior alone, 1 = as learned. */
  strength?: number;
  /** Fraction of the steps run with the prior alone before the subjects apply (delayed conditioning). */
  subjectStart?: number;
  /** Record routing and subject-attention maps. */
  recordMaps?: boolean;
  /** 'learned' (default) uses the routers; 'personal' sends every pixel to the personal expert (the "no router" ablation). */
  routing?: Routing;
}

export type Routing = 'learned' | 'personal';

export interface PersonalizedParameters extends GenerationParameters {
  subjects: { word: string; tokenIndex: number }[];
  subjectGuidance: number;
  subjectGuidanceArea: SubjectGuidanceArea;
  strength: number;
  subjectStart: number;
  /** The first step (0-based) that runs with the subjects; `steps` when none does. */
  subjectStartStep: number;
  routing: Routing;
}

export interface PersonalizedResult {
  /** One [3, H, W] float32 image in [0, 1] per batch element; the caller owns them. */
  images: Tensor[];
  parameters: PersonalizedParameters;
  /** When recordMaps was set; the caller owns them (disposeMaps). */
  maps?: GenerationMaps;
}

/** Frees what a personalized generation returned: its images and, when recorded, its maps. */
export function disposeResult(result: { images: readonly Tensor[]; maps?: GenerationMaps }): void {
  result.images.forEach((t) => t.dispose());
  if (result.maps) disposeMaps(result.maps);
}

function checkRange(name: string, value: number, lo: number, hi: number): number {
  if (typeof value !== 'number' || !(value >= lo && value <= hi)) throw new RangeError(`${name} must be a number from ${lo} to ${hi}, not ${String(value)}`);
  return value;
}

/** Settings of a personalized generation, checked (the subjects' words are bound later). */
export function resolvePersonalized(sd: StableDiffusion, options: PersonalizeOptions): Omit<PersonalizedParameters, 'subjects'> {
  const p = resolveParameters(sd, options);
  const subjectGuidance = options.subjectGuidance === undefined ? textScale(p.guidance) : checkRange('subjectGuidance', options.subjectGuidance, 0, 100);
  const subjectGuidanceArea = options.subjectGuidanceArea ?? 'image';
  if (!SUBJECT_GUIDANCE_AREAS.includes(subjectGuidanceArea)) throw new RangeError(`subjectGuidanceArea must be ${SUBJECT_GUIDANCE_AREAS.map((a) => `'${a}'`).join(' or ')}, not ${String(subjectGuidanceArea)}`);
  const strength = checkRange('strength', options.strength ?? 1, 0, 100);
  const subjectStart = checkRange('subjectStart', options.subjectStart ?? 0, 0, 1);
  const routing = options.routing ?? 'learned';
  if (routing !== 'learned' && routing !== 'personal') throw new RangeError(`routing must be 'learned' or 'personal', not ${String(routing)}`);
  return { ...p, subjectGuidance, subjectGuidanceArea, strength, subjectStart, subjectStartStep: Math.floor(subjectStart * p.steps), routing };
}

/** One generation's run from given initial latents (generatePersonalized and editRealImage share it). */
export interface PersonalizedRun {
  parameters: Omit<PersonalizedParameters, 'subjects'>;
  words: readonly string[];
  bindings: readonly SubjectBinding[];
  /** Initial latents [batch, ...], not consumed. */
  latents: Tensor;
  /** A sampler whose timesteps are set (its name is in parameters for the record). */
  scheduler: ReturnType<typeof createScheduler>;
  recordMaps?: boolean;
  onProgress?: (progress: Progress) => void;
  signal?: AbortSignal;
  /** Progress steps before this run's (a caller running several phases). */
  stepOffset?: number;
  totalSteps?: number;
}

/**
 * Denoises with MoA: before subjectStartStep (or at strength 0) every layer routes to the prior;
 * after it, the conditional branch binds the subjects and the other guidance branches have none.
 * Returns the final latents (the caller owns them) and the maps when recorded.
 */
export async function runPersonalized(sd: StableDiffusion, run: PersonalizedRun): Promise<{ latents: Tensor; maps?: GenerationMaps }> {
  const p = run.parameters;
  // Without subjects the text branch would equal the conditional one: it is left out.
  const subjectGuidance = run.bindings.length ? p.subjectGuidance : undefined;
  const branches = guidanceBranches(p.guidance, subjectGuidance);
  const context = encodeGuidedContext(sd, p, branches);
  const withSubjects = (index: number) => p.strength > 0 && index >= p.subjectStartStep;
  if (run.recordMaps && !withSubjects(p.steps - 1)) {
    throw new Error('maps need steps that run MoA: strength is 0 or subjectStart is 1, so every step runs the prior alone');
  }
  const factor = sd.vae.scaleFactor;
  const latentSize = [p.height / factor, p.width / factor] as const;
  const conditionalRow = (branches.length - 1) * p.batch;
  const maps = run.recordMaps ? new MapRecorder(run.words, latentSize, p.batch, conditionalRow) : null;
  const focus = branches.includes('text') && p.subjectGuidanceArea === 'routing' ? new RoutingFocus(latentSize, p.batch, conditionalRow, maps) : null;
  const recorder = focus ?? maps;
  const none: SubjectBinding[] = [];
  const rows = branches.length * p.batch;
  const subjects = branches.flatMap((b) => Array<readonly SubjectBinding[]>(p.batch).fill(b === 'conditional' ? run.bindings : none));
  let timestep: Tensor | null = null;
  try {
    const latents = await denoise(sd, run.latents, context, {
      scheduler: run.scheduler,
      guidance: p.guidance,
      subjectGuidance,
      ...(focus ? { subjectArea: () => focus.take() } : {}),
      seed: p.seed,
      signal: run.signal,
      onProgress: run.onProgress && ((q) => run.onProgress!({ ...q, step: q.step + (run.stepOffset ?? 0), steps: run.totalSteps ?? q.steps })),
      extras: ({ index, timestep: t }) => {
        timestep?.dispose();
        timestep = full([rows], t, { dtype: 'int64', device: sd.device });
        const moa: MoAConditioning = withSubjects(index)
          ? { subjects, strength: p.strength, timestep, ...(p.routing === 'personal' ? { forcePersonal: true } : {}), ...(recorder ? { recorder } : {}) }
          : { subjects: Array<SubjectBinding[]>(rows).fill(none), forcePrior: true, timestep };
        return { moa };
      },
    });
    if (!maps) return { latents };
    try {
      return { latents, maps: maps.maps() };
    } catch (error) {
      latents.dispose();
      throw error;
    }
  } finally {
    (timestep as Tensor | null)?.dispose();
    focus?.dispose();
    maps?.dispose();
    context.dispose();
  }
}

/** Text to image with subjects bound to words of the prompt (none: MoA's own text-to-image). */
export async function generatePersonalized(sd: StableDiffusion, moa: MoAModel, options: PersonalizeOptions): Promise<PersonalizedResult> {
  checkInstalled(sd, moa);
  const parameters = resolvePersonalized(sd, options);
  const bound = bindSubjects(sd.tokenizer, parameters.prompt, options.subjects ?? [], {
    maxSubjects: moa.config.maxSubjects,
    encoder: encoderFor(moa, options.encoder),
    embedDim: moa.config.imageEmbedDim,
  });
  try {
    const scheduler = createScheduler(parameters.scheduler, sd.schedulerConfig);
    scheduler.setTimesteps(parameters.steps);
    const latents = initialLatents(sd, parameters, scheduler.initNoiseSigma);
    try {
      const out = await runPersonalized(sd, {
        parameters,
        words: bound.words,
        bindings: bound.bindings,
        latents,
        scheduler,
        recordMaps: options.recordMaps,
        onProgress: options.onProgress,
        signal: options.signal,
      });
      try {
        const images = decodeImages(sd, out.latents);
        const subjects = bound.words.map((word, i) => ({ word, tokenIndex: bound.bindings[i]!.tokenIndex }));
        return { images, parameters: { ...parameters, subjects }, ...(out.maps ? { maps: out.maps } : {}) };
      } finally {
        out.latents.dispose();
      }
    } finally {
      latents.dispose();
    }
  } finally {
    bound.dispose();
  }
}

/** The seed a group of generations shares: the given one, or one drawn once for all. */
function sharedSeed(seed: number | undefined): number {
  return seed ?? Math.floor(Math.random() * 2 ** 31);
}

export interface SwapOptions extends PersonalizeOptions {
  /** Each variant replaces the subjects bound to its words (the others stay). */
  swaps: readonly (readonly SubjectInput[])[];
}

/**
 * Subject swap with the context held: the base subjects, then each variant, all from the same
 * seed, prompt and settings, so only the swapped subjects change. results[0] is the base.
 */
export async function swapSubjects(sd: StableDiffusion, moa: MoAModel, options: SwapOptions): Promise<PersonalizedResult[]> {
  const { swaps, ...base } = options;
  const subjects = base.subjects ?? [];
  const words = new Set(subjects.map((s) => s.word));
  for (const variant of swaps) {
    for (const s of variant) {
      if (!words.has(s.word)) throw new Error(`swap: ${JSON.stringify(s.word)} is not a subject of the base generation (its subjects: ${[...words].join(', ') || 'none'})`);
    }
  }
  const seed = sharedSeed(base.seed);
  const results: PersonalizedResult[] = [];
  try {
    for (const variant of [[], ...swaps]) {
      const replaced = subjects.map((s) => variant.find((v) => v.word === s.word) ?? s);
      results.push(await generatePersonalized(sd, moa, { ...base, seed, subjects: replaced }));
    }
    return results;
  } catch (error) {
    results.forEach(disposeResult);
    throw error;
  }
}

/** Interpolates two subjects' embeddings; src/moa's interpolateSubjects fits. */
export type SubjectInterpolation = (a: Tensor, b: Tensor, alpha: number) => Tensor;

export interface MorphOptions extends Omit<PersonalizeOptions, 'batch'> {
  /** The word the morphing subject is bound to. */
  word: string;
  from: SubjectSource;
  to: SubjectSource;
  /** Frames for alpha = 0, 1/(frames−1), ..., 1 (at least 2). */
  frames: number;
  /** How to blend embeddings; default MoA's interpolateSubjects (linear). */
  interpolate?: SubjectInterpolation;
  /** Called after each frame. */
  onFrame?: (frame: MorphFrame, index: number, frames: number) => void;
}

export interface MorphFrame {
  alpha: number;
  /** [3, H, W] in [0, 1]; the caller owns it. */
  image: Tensor;
  /** When recordMaps was set (the caller owns them). */
  maps?: GenerationMaps;
}

/**
 * Subject morphing: frames for alpha in linspace(0, 1, frames), each a generation from the same
 * seed with the subject's embedding interpolated. The endpoints use the two embeddings as they
 * are, so they equal the two subjects' own generations with that seed.
 */
export async function morphSubjects(sd: StableDiffusion, moa: MoAModel, options: MorphOptions): Promise<{ frames: MorphFrame[]; parameters: PersonalizedParameters }> {
  const { word, from, to, frames: count, interpolate = interpolateSubjects, onFrame, ...base } = options;
  if (!Number.isInteger(count) || count < 2 || count > 1000) throw new RangeError(`frames must be an integer from 2 to 1000, not ${count}`);
  const others = base.subjects ?? [];
  if (others.some((s) => s.word === word)) throw new Error(`morph: ${JSON.stringify(word)} is the morphing subject; leave it out of the other subjects`);
  const seed = sharedSeed(base.seed);
  const steps = resolvePersonalized(sd, { ...base, seed }).steps;
  const dim = moa.config.imageEmbedDim;
  const encoder = encoderFor(moa, base.encoder);
  const a = resolveEmbedding(from, `morph start ${JSON.stringify(word)}`, encoder, dim);
  const owned = a.owned ? [a.embedding] : [];
  const frames: MorphFrame[] = [];
  let parameters: PersonalizedParameters | undefined;
  try {
    const b = resolveEmbedding(to, `morph end ${JSON.stringify(word)}`, encoder, dim);
    if (b.owned) owned.push(b.embedding);
    for (let i = 0; i < count; i++) {
      const alpha = i / (count - 1);
      const embedding = i === 0 ? a.embedding : i === count - 1 ? b.embedding : interpolate(a.embedding, b.embedding, alpha);
      try {
        const onProgress = base.onProgress && ((q: Progress) => base.onProgress!({ ...q, step: i * steps + q.step, steps: count * steps }));
        const r = await generatePersonalized(sd, moa, { ...base, encoder, seed, batch: 1, subjects: [...others, { word, embedding }], onProgress });
        parameters ??= r.parameters;
        const frame: MorphFrame = { alpha, image: r.images[0]!, ...(r.maps ? { maps: r.maps } : {}) };
        frames.push(frame);
        onFrame?.(frame, i, count);
      } finally {
        if (embedding !== a.embedding && embedding !== b.embedding) embedding.dispose();
      }
    }
    return { frames, parameters: parameters! };
  } catch (error) {
    for (const f of frames) {
      f.image.dispose();
      if (f.maps) disposeMaps(f.maps);
    }
    throw error;
  } finally {
    owned.forEach((t) => t.dispose());
  }
}
