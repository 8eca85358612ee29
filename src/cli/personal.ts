// What the personalized sub-commands share: model, sampling and MoA options, opening the model
// with MoA installed, reading subjects from the command line, and running with Ctrl-C handling.
import { existsSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import { type Command, Option } from 'commander';
import type { CLIPVisionModelWithProjection } from '../models/clip-vision.js';
import type { MoA } from '../moa/moa.js';
import { defaultModel } from '../pipelines/default-model.js';
import { openStableDiffusion } from '../pipelines/load.js';
import { defaultImageEncoderDir, openImageEncoder, openMoA } from '../pipelines/load-moa.js';
import { applyPrecision, checkPrecision, defaultPrecision, type Precision } from '../pipelines/precision.js';
import { GUIDANCE_KEY } from '../io/diffusers.js';
import { disposeStableDiffusion, STANDARD_GUIDANCE, type StableDiffusion } from '../pipelines/stable-diffusion.js';
import type { SubjectInput } from '../pipelines/subjects.js';
import type { Progress } from '../pipelines/text-to-image.js';
import { SCHEDULER_NAMES, type SchedulerName } from '../schedulers/index.js';
import { SUBJECT_GUIDANCE_AREAS, type SubjectGuidanceArea } from '../pipelines/guidance.js';
import { checkDevice } from '../tensor/device.js';
import { collectSubjects, loadReferences, type SubjectSpec } from './subject-spec.js';
import { interruptible } from './interrupt.js';
import { integer, number } from './numbers.js';
import { progressReporter } from './progress.js';

export interface ModelFlags {
  model: string;
  moa?: string;
  imageEncoder?: string;
  precision: string;
  device: string;
  tokenizer?: string;
  variant?: string;
}

export interface SamplingFlags {
  prompt: string;
  negative?: string;
  steps: number;
  /** Absent: the model's default. */
  guidance?: number;
  seed?: number;
  width?: number;
  height?: number;
  scheduler: SchedulerName;
}

export interface SubjectFlags {
  subject?: SubjectSpec[];
  /** Absent: the same as guidance. */
  subjectGuidance?: number;
  subjectGuidanceArea: SubjectGuidanceArea;
  strength: number;
  subjectStart: number;
}

/** The sampling flags as the pipelines' options. */
export function samplingOptions(flags: SamplingFlags) {
  const { prompt, negative: negativePrompt, steps, guidance, seed, width, height, scheduler } = flags;
  return { prompt, negativePrompt, steps, guidance, seed, width, height, scheduler };
}

/** The subject flags as the personalized pipelines' options (maps are recorded when a folder is given). */
export function subjectOptions(flags: SubjectFlags & { maps?: string }) {
  return { subjectGuidance: flags.subjectGuidance, subjectGuidanceArea: flags.subjectGuidanceArea, strength: flags.strength, subjectStart: flags.subjectStart, recordMaps: flags.maps !== undefined };
}

/**
 * --model, --moa and the options that open them. Without --model the shipped default model is
 * used, and its MoA weights too where the command needs MoA (always for 'required'; for
 * 'optional' when subjects or maps are asked for).
 */
export function addModelOptions(command: Command, { moa }: { moa: 'required' | 'optional' }): Command {
  command.option('--model <path>', 'a diffusers folder or a single-file .safetensors checkpoint (default: the shipped model in models/world)');
  command.option('--moa <file>', moa === 'required' ? 'MoA weights (.safetensors; default: the shipped model\'s)' : "MoA weights (.safetensors): generate with Mixture-of-Attention (default with --subject or --maps and no --model: the shipped model's)");
  command.hook('preAction', (cmd) => {
    const flags = cmd.opts<Partial<ModelFlags> & { subject?: unknown[]; maps?: string }>();
    if (flags.model === undefined) {
      const shipped = defaultModel();
      cmd.setOptionValue('model', shipped.model);
      const wanted = moa === 'required' || (flags.subject?.length ?? 0) > 0 || flags.maps !== undefined;
      if (flags.moa === undefined && wanted && shipped.moa) cmd.setOptionValue('moa', shipped.moa);
    }
    if (moa === 'required' && cmd.getOptionValue('moa') === undefined) cmd.error("error: required option '--moa <file>' not specified", { exitCode: 2 });
  });
  return command
    .option('--image-encoder <dir>', 'CLIP vision folder (config.json + model.safetensors) for subject images; default <model>/image_encoder')
    .addOption(new Option('--precision <p>', 'numeric precision: auto picks bf16 on CPUs with bf16 units, fp16 on CUDA').choices(['auto', 'fp32', 'bf16', 'fp16']).default('auto'))
    .option('--device <device>', 'cpu, cuda or cuda:N', 'cpu')
    .option('--tokenizer <path>', 'tokenizer for single-file checkpoints (a tokenizer/ folder or bpe_simple_vocab_16e6.txt.gz)')
    .option('--variant <name>', "prefer this weights variant in a diffusers folder (e.g. 'fp16')");
}

/** How --guidance's help names its default when the model gives it. */
export const MODEL_GUIDANCE_HELP = `default: the model's, ${STANDARD_GUIDANCE} unless its model_index.json sets ${GUIDANCE_KEY}`;

/**
 * --prompt, --negative, --steps, --guidance, --seed; with a scheduler default also --width, --height,
 * --scheduler. Without a `guidance` default, --guidance defaults to the model's.
 */
export function addSamplingOptions(command: Command, { steps = 30, guidance, scheduler = 'dpmpp-2m', seed = true }: { steps?: number; guidance?: number; scheduler?: SchedulerName | null; seed?: boolean } = {}): Command {
  command
    .requiredOption('--prompt <text>', 'what to draw')
    .option('--negative <text>', 'what to avoid (the unconditional side of guidance)')
    .option('--steps <n>', 'denoising steps', integer('--steps'), steps);
  if (guidance === undefined) command.option('--guidance <scale>', `classifier-free guidance scale (1 = off; ${MODEL_GUIDANCE_HELP})`, number('--guidance'));
  else command.option('--guidance <scale>', 'classifier-free guidance scale (1 = off)', number('--guidance'), guidance);
  if (seed) command.option('--seed <n>', 'random seed (image i of a batch uses seed + i); random when omitted', integer('--seed'));
  if (scheduler === null) return command;
  return command
    .option('--width <px>', "image width (default: the model's size)", integer('--width'))
    .option('--height <px>', "image height (default: the model's size)", integer('--height'))
    .addOption(new Option('--scheduler <name>', 'sampler').choices(SCHEDULER_NAMES).default(scheduler));
}

export function addSubjectOptions(command: Command): Command {
  return command
    .option('--subject <word=images>', 'a subject: a word of the prompt = its reference images (path[,path2...], each optionally path:mask.png); repeat for more', collectSubjects)
    .option('--subject-guidance <scale>', "the subjects' own guidance scale, above --guidance for a closer likeness (default: --guidance's; another value costs a third UNet pass per step)", number('--subject-guidance'))
    .addOption(new Option('--subject-guidance-area <area>', "where --subject-guidance applies: the whole image, or where the routers send pixels to the personal branch (the scene moves less)").choices(SUBJECT_GUIDANCE_AREAS).default('image'))
    .option('--strength <s>', 'scale on the personal routing: 0 = base model, 1 = as trained, >1 stronger', number('--strength'), 1)
    .option('--subject-start <f>', 'fraction of the steps run with the base model before the subjects apply (0 to 1)', number('--subject-start'), 0);
}

/** A model with MoA installed (when asked), in the precision asked for. */
export interface Session {
  sd: StableDiffusion;
  moa: MoA | null;
  imageEncoder: CLIPVisionModelWithProjection | null;
  precision: Precision;
  dispose(): void;
}

/** The image encoder folder: --image-encoder, else <model>/image_encoder, else none. */
function imageEncoderDir(flags: ModelFlags): string | null {
  if (flags.imageEncoder) return flags.imageEncoder;
  return existsSync(flags.model) ? defaultImageEncoderDir(flags.model) : null;
}

export function openSession(flags: ModelFlags, { needsEncoder }: { needsEncoder: boolean }): Session {
  const device = checkDevice(flags.device);
  const precision = flags.precision === 'auto' ? defaultPrecision(device) : checkPrecision(flags.precision);
  const encoderDir = imageEncoderDir(flags);
  if (needsEncoder && !encoderDir) {
    throw new Error('subjects given as images need a CLIP image encoder: pass --image-encoder DIR (a folder with config.json and model.safetensors), or put one in <model>/image_encoder');
  }
  const sd = openStableDiffusion(flags.model, { device, tokenizer: flags.tokenizer, variant: flags.variant });
  let imageEncoder: CLIPVisionModelWithProjection | null = null;
  let moa: MoA | null = null;
  try {
    applyPrecision(sd.unet, precision, device);
    applyPrecision(sd.vae, precision, device);
    if (encoderDir && (needsEncoder || flags.moa)) {
      imageEncoder = openImageEncoder(encoderDir, { device, variant: flags.variant });
      applyPrecision(imageEncoder, precision, device);
    }
    if (flags.moa) moa = openMoA(sd, flags.moa, { imageEncoder });
  } catch (error) {
    moa?.dispose();
    imageEncoder?.dispose();
    disposeStableDiffusion(sd);
    throw error;
  }
  return {
    sd,
    moa,
    imageEncoder,
    precision,
    dispose() {
      moa?.dispose();
      imageEncoder?.dispose();
      disposeStableDiffusion(sd);
    },
  };
}

/** Subjects read from their specs (images checked before any model loads); dispose() frees the images. */
export async function readSubjects(specs: readonly SubjectSpec[]): Promise<{ inputs: SubjectInput[]; dispose(): void }> {
  const inputs: SubjectInput[] = [];
  const free = () => inputs.forEach((s) => ('images' in s ? [s.images, s.masks] : []).forEach((t) => t?.dispose()));
  try {
    for (const spec of specs) inputs.push({ word: spec.word, ...(await loadReferences(spec.references)) });
  } catch (error) {
    free();
    throw error;
  }
  return { inputs, dispose: free };
}

/** What a PNG and --json record of the subjects: words and files. */
export function describeSubjects(specs: readonly SubjectSpec[] = []): { word: string; images: string[]; masks?: (string | null)[] }[] {
  return specs.map((s) => {
    const masks = s.references.map((r) => r.mask ?? null);
    return { word: s.word, images: s.references.map((r) => r.image), ...(masks.some(Boolean) ? { masks } : {}) };
  });
}

/** Runs `work` with Ctrl-C aborting it between steps, and a progress bar (quiet under --json). */
export async function withProgress<T>(label: string, quiet: boolean | undefined, work: (signal: AbortSignal, onProgress: (p: Progress) => void) => Promise<T>): Promise<T> {
  const progress = progressReporter(label, quiet);
  try {
    return await interruptible((signal) => work(signal, (p) => progress.update(p.step, p.steps, `${(p.elapsedMs / p.step / 1000).toFixed(2)} s/step`)));
  } finally {
    progress.stop();
  }
}

export function ensureDir(dir: string): void {
  if (!existsSync(dir)) mkdirSync(dir, { recursive: true });
}

export const ensureParent = (file: string) => ensureDir(dirname(file));
