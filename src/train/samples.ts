// Sample images during training: generations with the current MoA weights, each with its routing
// maps, written under <outputDir>/samples. Sampling draws only from its own seeded generators
// (never the trainer's noise generator or the loader), runs without gradients and in eval mode,
// and puts every module back in the mode it was in, so training goes on exactly as without it.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { readImage, writePng } from '../io/image.js';
import type { ClipTokenizer } from '../models/clip-tokenizer.js';
import type { CLIPVisionModelWithProjection } from '../models/clip-vision.js';
import type { MoA } from '../moa/index.js';
import type { Module } from '../nn/module.js';
import { writeMaps } from '../pipelines/maps.js';
import { disposeResult, generatePersonalized, type PersonalizedResult } from '../pipelines/personalize.js';
import type { StableDiffusion } from '../pipelines/stable-diffusion.js';
import { bindWords, clipSubjectEncoder, type SubjectInput } from '../pipelines/subjects.js';
import { cat } from '../tensor/functional.js';
import { Generator } from '../tensor/generator.js';
import type { Tensor } from '../tensor/tensor.js';
import type { SampleSpec, TrainConfig } from './config.js';
import { disposeSample, loadSample, readImageIds, type Sample } from './data/index.js';
import { mulberry32 } from './data/rng.js';

/** The JSONL record of one round of samples. */
export interface SampleRecord {
  kind: 'sample';
  step: number;
  /** Relative to outputDir: the samples side by side in one PNG. */
  image: string;
  /** Relative to outputDir: the routing maps (one sample: in it; several: in 1/, 2/, ...). */
  maps: string;
  prompts: string[];
  /** Where the prompts came from: 'config', or the data set ids (heldOut: from a test list). */
  source: 'config' | { ids: string[]; heldOut: boolean };
  seconds: number;
}

/** A sample ready to generate: the subjects' reference images are loaded. */
interface Prepared {
  prompt: string;
  seed: number;
  words: string[];
  /** [1, 3, H, W] in [0, 1] per subject. */
  images: Tensor[];
}

const TEST_IDS = 'image_ids_test.txt';
/** How many ids of the list are tried before giving up on finding loadable samples. */
const TRIED_IDS = 8;

/** The file name stem of a step's samples, padded as checkpoints are so listings sort by step. */
export function sampleStem(step: number): string {
  return `step-${String(step).padStart(8, '0')}`;
}

export class TrainingSampler {
  private constructor(
    private readonly config: TrainConfig,
    private readonly prepared: Prepared[],
    readonly source: SampleRecord['source'],
  ) {}

  /** Loads what the samples need now, so a bad prompt or image fails before training starts. */
  static async prepare(config: TrainConfig, tokenizer: ClipTokenizer, maxSubjects: number): Promise<TrainingSampler> {
    if (config.samples) return new TrainingSampler(config, await fromConfig(config.samples, tokenizer, maxSubjects), 'config');
    const { prepared, ids, heldOut } = await fromDataSet(config, tokenizer, maxSubjects);
    return new TrainingSampler(config, prepared, { ids, heldOut });
  }

  get prompts(): string[] {
    return this.prepared.map((p) => p.prompt);
  }

  /** Generates every sample with MoA as it is now and writes the image and maps of `step`. */
  async write(step: number, sd: StableDiffusion, moa: MoA, imageEncoder: CLIPVisionModelWithProjection, signal?: AbortSignal): Promise<SampleRecord> {
    const started = performance.now();
    const dir = join(this.config.outputDir, 'samples');
    mkdirSync(dir, { recursive: true });
    const stem = sampleStem(step);
    const encoder = clipSubjectEncoder(imageEncoder);
    const results: PersonalizedResult[] = [];
    try {
      await inEvalMode([moa, sd.unet, sd.vae, sd.textEncoder, imageEncoder], async () => {
        for (const p of this.prepared) {
          const subjects: SubjectInput[] = p.words.map((word, i) => ({ word, images: p.images[i]! }));
          const { resolution, sampleSteps } = this.config;
          results.push(await generatePersonalized(sd, moa, { prompt: p.prompt, seed: p.seed, steps: sampleSteps, width: resolution, height: resolution, subjects, encoder, recordMaps: true, signal }));
        }
      });
      // The maps go into a temporary folder renamed into place, then the image: a PNG present
      // means its maps are complete. A resumed run that redoes a step replaces both, and clears
      // what a killed run left half-written.
      const mapsDir = join(dir, `${stem}-maps`);
      const temp = join(dir, `.${stem}-maps.${process.pid}.tmp`);
      for (const f of readdirSync(dir)) if (f.startsWith(`.${stem}-maps.`) && f.endsWith('.tmp')) rmSync(join(dir, f), { recursive: true, force: true });
      rmSync(join(dir, `${stem}.png`), { force: true });
      try {
        for (const [i, r] of results.entries()) await writeMaps(results.length === 1 ? temp : join(temp, String(i + 1)), r.images, r.maps!);
        rmSync(mapsDir, { recursive: true, force: true });
        renameSync(temp, mapsDir);
      } finally {
        rmSync(temp, { recursive: true, force: true });
      }
      const row = cat(results.map((r) => r.images[0]!), 2);
      try {
        const parameters = results.map((r) => r.parameters);
        await writePng(join(dir, `${stem}.png`), row, { parameters: JSON.stringify({ step, samples: parameters }), Software: 'moa' });
      } finally {
        row.dispose();
      }
    } finally {
      results.forEach(disposeResult);
    }
    return {
      kind: 'sample',
      step,
      image: join('samples', `${stem}.png`),
      maps: join('samples', `${stem}-maps`),
      prompts: this.prompts,
      source: this.source,
      seconds: (performance.now() - started) / 1000,
    };
  }

  dispose(): void {
    for (const p of this.prepared) p.images.forEach((t) => t.dispose());
    this.prepared.length = 0;
  }
}

/** Runs `fn` with every module in eval mode, then puts each back in the mode it had. */
async function inEvalMode<R>(roots: readonly Module[], fn: () => Promise<R>): Promise<R> {
  // Pre-order (parent before children): replaying it in order restores mixed modes too.
  const modes = roots.flatMap((root) => root.modules().map((m) => [m, m.training] as const));
  roots.forEach((root) => root.eval());
  try {
    return await fn();
  } finally {
    for (const [m, training] of modes) m.train(training);
  }
}

async function fromConfig(specs: readonly SampleSpec[], tokenizer: ClipTokenizer, maxSubjects: number): Promise<Prepared[]> {
  const prepared: Prepared[] = [];
  try {
    for (const [i, spec] of specs.entries()) {
      const words = spec.subjects.map((s) => s.word);
      try {
        bindWords(tokenizer, spec.prompt, words, maxSubjects);
      } catch (error) {
        throw new Error(`training config: samples[${i}]: ${error instanceof Error ? error.message : String(error)}`, { cause: error });
      }
      const entry: Prepared = { prompt: spec.prompt, seed: spec.seed, words, images: [] };
      prepared.push(entry);
      for (const s of spec.subjects) entry.images.push(await readImage(s.image));
    }
    return prepared;
  } catch (error) {
    for (const p of prepared) p.images.forEach((t) => t.dispose());
    throw error;
  }
}

/**
 * One or two samples of the data set: the first of image_ids_test.txt that load (held out from
 * training), or, when the folder has no test list or training reads it, of the training list.
 * Their captions are the prompts and their subject crops (background noised, as in training)
 * the references.
 */
async function fromDataSet(config: TrainConfig, tokenizer: ClipTokenizer, maxSubjects: number): Promise<{ prepared: Prepared[]; ids: string[]; heldOut: boolean }> {
  const heldOut = existsSync(join(config.dataRoot, TEST_IDS)) && config.idsFile !== TEST_IDS;
  const ids = await readImageIds(config.dataRoot, heldOut ? TEST_IDS : (config.idsFile ?? undefined));
  const prepared: Prepared[] = [];
  const used: string[] = [];
  const failures: string[] = [];
  for (const id of ids.slice(0, TRIED_IDS)) {
    if (prepared.length === 2) break;
    let sample: Sample;
    try {
      sample = await loadSample(config.dataRoot, id, tokenizer, mulberry32(config.seed), new Generator(config.seed), {
        resolution: config.resolution,
        cropSize: config.cropSize,
        dropCaption: 0,
        keepSubject: 1,
        maxSubjects: Math.min(config.maxSubjects, maxSubjects),
      });
    } catch (error) {
      failures.push(error instanceof Error ? error.message : String(error));
      continue;
    }
    try {
      const { words } = tokenizer.encode(sample.caption);
      const entry: Prepared = { prompt: sample.caption, seed: config.seed, words: [], images: [] };
      for (const s of sample.subjects) {
        const word = words.find((w) => w.tokenIndices.at(-1) === s.tokenIndex)?.word;
        // Generation binds a subject by its word's first occurrence: one that sits elsewhere
        // (a repeated word) cannot be bound to this subject, so it is left out.
        if (word === undefined || tokenizer.wordTokenIndex(sample.caption, word) !== s.tokenIndex) continue;
        entry.words.push(word);
        entry.images.push(s.crop.unsqueeze(0));
      }
      prepared.push(entry);
      used.push(id);
    } finally {
      disposeSample(sample);
    }
  }
  if (prepared.length === 0) {
    throw new Error(`sampleEvery: no sample of '${config.dataRoot}' could be loaded for the sample images (${failures.join('; ')}); fix the data or give 'samples' in the config`);
  }
  return { prepared, ids: used, heldOut };
}
