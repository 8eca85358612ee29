// Pretraining a small text-to-image model from scratch, stage by stage: the VAE, the image
// encoder, then the text encoder and UNet together. Each stage starts from the output folder,
// trains (or resumes from its newest checkpoint), and when it reaches its steps writes the whole
// model back as a diffusers folder with pretrain.json saying which stages are done.
import { join } from 'node:path';
import type { Device } from '../../tensor/device.js';
import { readImageIds } from '../data/index.js';
import { mixSeed } from '../data/rng.js';
import { checkpointStep, latestCheckpoint } from '../checkpoint.js';
import { type PretrainConfig, type StageName, STAGES, stageConfig } from './config.js';
import { BaseTask } from './base-stage.js';
import { ContrastiveHead, ImageEncoderTask } from './image-encoder-stage.js';
import { disposePretrainModel, openPretrainModel, type PretrainModel, readStatus, writePretrainModel } from './model-folder.js';
import { type StageRecord, StageRunner, type StageTask } from './runner.js';
import { SubjectPairLoader } from './subject-pairs.js';
import { prepareTokenizer } from './tokenizer.js';
import { imageLoader, measureScalingFactor, VaeTask } from './vae-stage.js';

export interface StageOptions {
  config: PretrainConfig;
  stage: StageName;
  /** true: continue from the stage's newest checkpoint when it has one; a path: from that checkpoint. */
  resume?: boolean | string;
  device?: Device;
  /** Stop after this step (default: the stage's steps); the folder is written only when the stage is complete. */
  until?: number;
  onStep?: (record: StageRecord, total: number, stage: StageName) => void;
  /** Told what happens besides steps (tokenizer, resume, measured scaling factor, folder written). */
  onNote?: (note: string) => void;
  signal?: AbortSignal;
  /** Write the JSONL log (default true). */
  log?: boolean;
}

export interface StageResult {
  stage: StageName;
  records: StageRecord[];
  /** The step reached. */
  step: number;
  /** True when the stage reached its steps and the folder was written. */
  finished: boolean;
  /** The vae stage's measured scaling factor. */
  scalingFactor?: number;
}

/** The folder a stage keeps its checkpoints and log in. */
export function stageDir(config: PretrainConfig, stage: StageName): string {
  return join(config.workDir, stage);
}

const stageSeed = (config: PretrainConfig, stage: StageName, salt: number) => mixSeed(config.seed, STAGES.indexOf(stage), salt);

async function makeTask(options: StageOptions, model: PretrainModel, ids: string[]): Promise<StageTask<unknown>> {
  const { config, stage, device = 'cpu' } = options;
  const { sd } = model;
  const seed = stageSeed(config, stage, 0xda7a);
  if (stage === 'vae') {
    const s = config.stages.vae;
    return new VaeTask(sd.vae, imageLoader(config.dataRoot, ids, sd.tokenizer, { batchSize: s.batchSize, seed, resolution: config.resolution, masks: s.subjectWeight !== 1 ? config.resolution : undefined }), s, device) as StageTask<unknown>;
  }
  if (stage === 'image-encoder') {
    const s = config.stages.imageEncoder;
    const loader = await SubjectPairLoader.create(config.dataRoot, ids, {
      batchSize: s.batchSize,
      cropSize: model.imageEncoder.config.image_size,
      seed,
      referenceProbability: s.referenceProbability,
      minScale: s.minScale,
    });
    options.onNote?.(`image-encoder: ${loader.size} subjects, ${loader.identityCount} identities (${loader.referenceCount} with a reference image)`);
    return new ImageEncoderTask(model.imageEncoder, new ContrastiveHead(s.temperature), loader, device) as StageTask<unknown>;
  }
  const s = config.stages.base;
  sd.vae.freeze();
  const masks = s.subjectWeight !== 1 ? config.resolution / sd.vae.scaleFactor : undefined;
  const loader = imageLoader(config.dataRoot, ids, sd.tokenizer, { batchSize: s.batchSize, seed, resolution: config.resolution, dropCaption: s.dropCaption, masks });
  return new BaseTask({ textEncoder: sd.textEncoder, unet: sd.unet, vae: sd.vae }, sd.schedulerConfig, loader, sd.vae.scalingFactor, device, s.subjectWeight) as StageTask<unknown>;
}

/** Runs (or resumes) one stage; writes the folder when it completes. */
export async function runStage(options: StageOptions): Promise<StageResult> {
  const { config, stage, device = 'cpu', signal, onNote } = options;
  const ids = await readImageIds(config.dataRoot, config.idsFile ?? undefined);
  const prepared = await prepareTokenizer(config.tokenizer, config.outputDir, config.dataRoot, ids);
  if (prepared.source !== 'existing') onNote?.(prepared.note);
  if (stage === 'base' && !readStatus(config.outputDir).stages.vae) {
    throw new Error(`the base stage trains on the VAE's latents, but '${config.outputDir}' has no trained VAE yet: run --stage vae first (or --stage all)`);
  }
  const model = openPretrainModel(config, prepared.tokenizer, { stage, device });
  let runner: StageRunner<unknown> | null = null;
  try {
    const schedule = stageConfig(config, stage);
    const task = await makeTask(options, model, ids);
    runner = new StageRunner(task, schedule, {
      dir: stageDir(config, stage),
      seed: stageSeed(config, stage, 0x0153),
      precision: config.precision,
      device,
      keepCheckpoints: config.keepCheckpoints,
      config,
      log: options.log,
    });
    if (typeof options.resume === 'string') {
      runner.restore(options.resume);
      onNote?.(`${stage}: resumed at step ${runner.step} from ${options.resume}`);
    } else if (options.resume) {
      const from = runner.resumeLatest();
      onNote?.(from ? `${stage}: resumed at step ${runner.step} from ${from}` : `${stage}: no checkpoint in ${stageDir(config, stage)}; starting at step 0`);
    }
    const r = runner;
    let records: StageRecord[];
    try {
      records = await r.run({ until: options.until, signal, onStep: (record) => options.onStep?.(record, schedule.steps, stage) });
    } catch (error) {
      // Interrupted: keep what was learned since the last checkpoint.
      if (signal?.aborted) onNote?.(`${stage}: stopped at step ${r.step}; checkpoint ${r.saveCheckpoint()}`);
      throw error;
    }
    const result: StageResult = { stage, records, step: r.step, finished: r.step >= schedule.steps };
    if (!result.finished) return result;
    r.applyEma();
    if (stage === 'vae') {
      const s = config.stages.vae;
      const loader = imageLoader(config.dataRoot, ids, model.sd.tokenizer, { batchSize: s.batchSize, seed: stageSeed(config, stage, 0x5ca1), resolution: config.resolution });
      try {
        result.scalingFactor = await measureScalingFactor(model.sd.vae, loader, Math.min(s.scalingSamples, ids.length), device);
      } finally {
        loader.close();
      }
      model.sd.configs.vae.scaling_factor = result.scalingFactor;
      onNote?.(`vae: latents' std ${(1 / result.scalingFactor).toFixed(4)} → scaling_factor ${result.scalingFactor.toFixed(5)}`);
    }
    model.status = readStatus(config.outputDir);
    model.status.stages[stage] = { steps: r.step, finishedAt: new Date().toISOString(), ...(result.scalingFactor !== undefined && { scalingFactor: result.scalingFactor }) };
    if (stage === 'vae' && model.status.stages.base) {
      // The UNet learned the previous VAE's latents: it no longer fits.
      delete model.status.stages.base;
      onNote?.('vae: the base stage was trained on the previous VAE; run it again (--stage base)');
    }
    writePretrainModel(model, config);
    onNote?.(`${stage}: done; wrote ${config.outputDir}`);
    return result;
  } finally {
    runner?.dispose();
    disposePretrainModel(model);
  }
}

export interface PretrainOptions extends Omit<StageOptions, 'stage' | 'until'> {
  stages: readonly StageName[];
}

/** Runs stages in order; with resume, stages the folder marks done are skipped. */
export async function pretrain(options: PretrainOptions): Promise<StageResult[]> {
  const results: StageResult[] = [];
  for (const stage of STAGES.filter((s) => options.stages.includes(s))) {
    const done = readStatus(options.config.outputDir).stages[stage];
    // A stage trained again (say with more steps) is resumed, not skipped, while its run is unfinished.
    const latest = latestCheckpoint(stageDir(options.config, stage));
    const rerunning = latest !== null && checkpointStep(latest) < stageConfig(options.config, stage).steps;
    if (options.resume && done && !rerunning) {
      options.onNote?.(`${stage}: already done (${done.steps} steps, ${done.finishedAt}); skipped`);
      continue;
    }
    results.push(await runStage({ ...options, stage }));
  }
  return results;
}
