// The pretraining configuration: one JSON or YAML file for the tokenizer, the model sizes (as
// diffusers/transformers config fields) and the three stages. Every field is checked, unknown
// keys are refused (typos), and errors name the field.
import { join } from 'node:path';
import type { LrSchedule, TrainPrecision } from '../config.js';
import { ConfigFieldError, fieldReader, isObject, type Raw, readConfigFile } from '../config-fields.js';
import { checkModelConfigs, type ModelConfigs } from './model-configs.js';

export const STAGES = ['vae', 'image-encoder', 'base'] as const;
export type StageName = (typeof STAGES)[number];

/** What every stage's optimisation takes. */
export interface StageSchedule {
  steps: number;
  batchSize: number;
  lr: number;
  weightDecay: number;
  warmupSteps: number;
  schedule: LrSchedule;
  gradientAccumulation: number;
  maxGradNorm: number;
  /** EMA of the trained weights (what the folder gets), or null for none. */
  emaDecay: number | null;
  checkpointEvery: number;
}

export interface VaeStageConfig extends StageSchedule {
  /** Reconstruction: l1·|x̂ − x| + l2·(x̂ − x)², per pixel. */
  l1Weight: number;
  l2Weight: number;
  /** KL(posterior ‖ N(0, 1)) per latent element. */
  klWeight: number;
  /**
   * Reconstruction weight of subject pixels (the segments' masks) relative to the background's 1:
   * subjects are small and their details are what identity is made of. 1 reads no masks.
   */
  subjectWeight: number;
  /** Training images whose latents measure the scaling factor. */
  scalingSamples: number;
}

export interface ImageEncoderStageConfig extends StageSchedule {
  /** The contrastive temperature at the start (it is learned). */
  temperature: number;
  /** For a subject with an identity: how often its second view is the identity's reference image (when there is one) rather than another scene. */
  referenceProbability: number;
  /** Random crops keep at least this fraction of the crop's side. */
  minScale: number;
}

export interface BaseStageConfig extends StageSchedule {
  /** Probability of training on the empty caption, so classifier-free guidance works. */
  dropCaption: number;
  /** How many times the noise-prediction error on a subject's latent pixels counts against the background's (1: plain MSE). */
  subjectWeight: number;
}

export interface TokenizerSettings {
  /** An existing tokenizer folder (vocab.json + merges.txt), or null to train one from the captions. */
  folder: string | null;
  minWordCount: number;
  maxMerges: number;
}

export type SaveDtype = 'fp32' | 'fp16' | 'bf16';

export interface PretrainConfig {
  /** An FFHQ-wild folder (spec §3.2). */
  dataRoot: string;
  idsFile: string | null;
  /** The diffusers folder written after each stage. */
  outputDir: string;
  /** Checkpoints and logs, per stage (default <outputDir>/pretrain). */
  workDir: string;
  seed: number;
  /** Training image side in pixels. */
  resolution: number;
  precision: TrainPrecision;
  /** The dtype weights are stored in inside outputDir (loading converts back). */
  saveDtype: SaveDtype;
  /** Checkpoints kept per stage (older ones are deleted). */
  keepCheckpoints: number;
  /** The model's default guidance scale, written to its model_index.json; null keeps the folder's (else 7.5). */
  guidance: number | null;
  tokenizer: TokenizerSettings;
  models: ModelConfigs;
  stages: { vae: VaeStageConfig; imageEncoder: ImageEncoderStageConfig; base: BaseStageConfig };
}

export class PretrainConfigError extends ConfigFieldError {
  constructor(field: string, problem: string) {
    super('pretrain config', field, problem);
  }
}

const { onlyKeys, object, str, num, oneOf } = fieldReader((field, problem) => new PretrainConfigError(field, problem));

const SCHEDULE_KEYS = ['steps', 'batchSize', 'lr', 'weightDecay', 'warmupSteps', 'schedule', 'gradientAccumulation', 'maxGradNorm', 'emaDecay', 'checkpointEvery'];

function stageSchedule(raw: Raw, at: string, defaults: { batchSize: number; lr: number }): StageSchedule {
  const ema = raw.emaDecay;
  const schedule: StageSchedule = {
    steps: num(raw, 'steps', at, undefined, { int: true, positive: true }),
    batchSize: num(raw, 'batchSize', at, defaults.batchSize, { int: true, positive: true }),
    lr: num(raw, 'lr', at, defaults.lr, { positive: true }),
    weightDecay: num(raw, 'weightDecay', at, 0.01, { min: 0 }),
    warmupSteps: num(raw, 'warmupSteps', at, 0, { int: true, min: 0 }),
    schedule: oneOf(raw, 'schedule', at, ['constant', 'cosine'] as const, 'cosine'),
    gradientAccumulation: num(raw, 'gradientAccumulation', at, 1, { int: true, positive: true }),
    maxGradNorm: num(raw, 'maxGradNorm', at, 1, { positive: true }),
    emaDecay: ema === undefined || ema === null ? null : num(raw, 'emaDecay', at, undefined, { min: 0, below: 1 }),
    checkpointEvery: num(raw, 'checkpointEvery', at, 500, { int: true, positive: true }),
  };
  return schedule;
}

function vaeStage(raw: Raw): VaeStageConfig {
  const at = 'stages.vae';
  onlyKeys(raw, [...SCHEDULE_KEYS, 'l1Weight', 'l2Weight', 'klWeight', 'subjectWeight', 'scalingSamples'], at);
  const c: VaeStageConfig = {
    ...stageSchedule(raw, at, { batchSize: 8, lr: 2e-4 }),
    l1Weight: num(raw, 'l1Weight', at, 1, { min: 0 }),
    l2Weight: num(raw, 'l2Weight', at, 0, { min: 0 }),
    klWeight: num(raw, 'klWeight', at, 1e-4, { min: 0 }),
    subjectWeight: num(raw, 'subjectWeight', at, 1, { min: 1 }),
    scalingSamples: num(raw, 'scalingSamples', at, 256, { int: true, positive: true }),
  };
  if (c.l1Weight === 0 && c.l2Weight === 0) throw new PretrainConfigError(`${at}.l1Weight`, 'and l2Weight are both 0: the VAE would learn no reconstruction');
  return c;
}

function imageEncoderStage(raw: Raw): ImageEncoderStageConfig {
  const at = 'stages.imageEncoder';
  onlyKeys(raw, [...SCHEDULE_KEYS, 'temperature', 'referenceProbability', 'minScale'], at);
  return {
    ...stageSchedule(raw, at, { batchSize: 32, lr: 3e-4 }),
    temperature: num(raw, 'temperature', at, 0.07, { positive: true, max: 10 }),
    referenceProbability: num(raw, 'referenceProbability', at, 0.5, { min: 0, max: 1 }),
    minScale: num(raw, 'minScale', at, 0.7, { positive: true, max: 1 }),
  };
}

function baseStage(raw: Raw): BaseStageConfig {
  const at = 'stages.base';
  onlyKeys(raw, [...SCHEDULE_KEYS, 'dropCaption', 'subjectWeight'], at);
  return {
    ...stageSchedule(raw, at, { batchSize: 16, lr: 2e-4 }),
    dropCaption: num(raw, 'dropCaption', at, 0.1, { min: 0, max: 1 }),
    subjectWeight: num(raw, 'subjectWeight', at, 1, { min: 1 }),
  };
}

function tokenizerSettings(raw: unknown): TokenizerSettings {
  const defaults = { folder: null, minWordCount: 1, maxMerges: 20_000 };
  if (raw === undefined || raw === null) return defaults;
  if (typeof raw === 'string') {
    if (raw === '') throw new PretrainConfigError('tokenizer', 'must be a tokenizer folder or { minWordCount, maxMerges }, not ""');
    return { ...defaults, folder: raw };
  }
  if (!isObject(raw)) throw new PretrainConfigError('tokenizer', `must be a tokenizer folder (a string) or { minWordCount, maxMerges }, not ${JSON.stringify(raw)}`);
  onlyKeys(raw, ['minWordCount', 'maxMerges'], 'tokenizer');
  return {
    folder: null,
    minWordCount: num(raw, 'minWordCount', 'tokenizer', defaults.minWordCount, { int: true, positive: true }),
    maxMerges: num(raw, 'maxMerges', 'tokenizer', defaults.maxMerges, { int: true, min: 0 }),
  };
}

const TOP_KEYS = ['dataRoot', 'idsFile', 'outputDir', 'workDir', 'seed', 'resolution', 'precision', 'saveDtype', 'keepCheckpoints', 'guidance', 'tokenizer', 'models', 'stages'];

/** Checks a parsed config object and fills in defaults. */
export function parsePretrainConfig(raw: unknown): PretrainConfig {
  if (!isObject(raw)) throw new PretrainConfigError('(root)', 'must be an object');
  onlyKeys(raw, TOP_KEYS, '');
  const outputDir = str(raw, 'outputDir', '')!;
  const resolution = num(raw, 'resolution', '', 64, { int: true, positive: true });
  const stagesRaw = object(raw, 'stages', '', true);
  onlyKeys(stagesRaw, ['vae', 'imageEncoder', 'base'], 'stages');
  const config: PretrainConfig = {
    dataRoot: str(raw, 'dataRoot', '')!,
    idsFile: str(raw, 'idsFile', '', null),
    outputDir,
    workDir: str(raw, 'workDir', '', join(outputDir, 'pretrain'))!,
    seed: num(raw, 'seed', '', 0, { int: true, min: 0 }),
    resolution,
    precision: oneOf(raw, 'precision', '', ['fp32', 'bf16'] as const, 'fp32'),
    saveDtype: oneOf(raw, 'saveDtype', '', ['fp32', 'fp16', 'bf16'] as const, 'fp32'),
    keepCheckpoints: num(raw, 'keepCheckpoints', '', 2, { int: true, positive: true }),
    guidance: raw.guidance === undefined || raw.guidance === null ? null : num(raw, 'guidance', '', undefined, { min: 0, max: 100 }),
    tokenizer: tokenizerSettings(raw.tokenizer),
    models: checkModelConfigs(object(raw, 'models', '', true), resolution, (field, problem) => new PretrainConfigError(field, problem)),
    stages: {
      vae: vaeStage(object(stagesRaw, 'vae', 'stages', true)),
      imageEncoder: imageEncoderStage(object(stagesRaw, 'imageEncoder', 'stages', true)),
      base: baseStage(object(stagesRaw, 'base', 'stages', true)),
    },
  };
  return config;
}

/** Reads a .json, .yaml or .yml config file. */
export function readPretrainConfig(path: string): PretrainConfig {
  const raw = readConfigFile(path, 'pretrain config');
  try {
    return parsePretrainConfig(raw);
  } catch (error) {
    if (error instanceof PretrainConfigError) error.message = `${path}: ${error.message}`;
    throw error;
  }
}

/** The stage's section of the config. */
export function stageConfig(config: PretrainConfig, stage: StageName): StageSchedule {
  return stage === 'vae' ? config.stages.vae : stage === 'image-encoder' ? config.stages.imageEncoder : config.stages.base;
}
