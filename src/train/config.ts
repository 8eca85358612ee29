// Training configuration: read from JSON or YAML, every field checked, errors name the field.
import { ConfigFieldError, fieldReader, isObject, readConfigFile } from './config-fields.js';
import { DEFAULT_LOSS_CONFIG, type LossConfig, MASKED_AVERAGES } from './losses/index.js';

export type LrSchedule = 'constant' | 'cosine';

/** One sample image to generate during training: a prompt, its subjects (image files) and a seed. */
export interface SampleSpec {
  prompt: string;
  /** Each subject bound to its word of the prompt; `image` is a file (relative to the working directory). */
  subjects: { word: string; image: string }[];
  seed: number;
}
export type TrainPrecision = 'fp32' | 'bf16';

export interface TrainConfig {
  /** An FFHQ-wild folder (spec §3.2). */
  dataRoot: string;
  /** The id list inside dataRoot; default: the loader's (image_ids_train.txt, …). */
  idsFile: string | null;
  /** Training image side in pixels. */
  resolution: number;
  /** Subject crop side (the image encoder's input before its own resize). */
  cropSize: number;
  batchSize: number;
  /** Optimizer steps (each of gradientAccumulation micro-batches). */
  steps: number;
  lr: number;
  weightDecay: number;
  warmupSteps: number;
  schedule: LrSchedule;
  gradientAccumulation: number;
  maxGradNorm: number;
  precision: TrainPrecision;
  /** EMA of MoA's parameters, or null for none. */
  emaDecay: number | null;
  seed: number;
  checkpointEvery: number;
  /** Write sample images with routing maps every this many steps and at the end; null: none. */
  sampleEvery: number | null;
  /** Denoising steps of each sample image. */
  sampleSteps: number;
  /** What to sample; null: one or two held-out samples of the data set (caption and subject crops). */
  samples: SampleSpec[] | null;
  outputDir: string;
  loss: LossConfig;
  /** Augmentation [FastComposer]. */
  dropCaption: number;
  keepSubject: number;
  maxSubjects: number;
  /** For the CLI: a diffusers folder, its image encoder folder, MoA config overrides. */
  model: string | null;
  imageEncoder: string | null;
  moa: Record<string, unknown>;
}

export class TrainConfigError extends ConfigFieldError {
  constructor(field: string, problem: string) {
    super('training config', field, problem);
  }
}

const DEFAULTS: Omit<TrainConfig, 'dataRoot' | 'outputDir' | 'steps'> = {
  idsFile: null,
  resolution: 512,
  cropSize: 224,
  batchSize: 1,
  lr: 1e-5,
  weightDecay: 1e-2,
  warmupSteps: 0,
  schedule: 'constant',
  gradientAccumulation: 1,
  maxGradNorm: 1,
  precision: 'fp32',
  emaDecay: null,
  seed: 0,
  checkpointEvery: 1000,
  sampleEvery: null,
  sampleSteps: 20,
  samples: null,
  loss: { ...DEFAULT_LOSS_CONFIG },
  dropCaption: 0.1,
  keepSubject: 0.9,
  maxSubjects: 4,
  model: null,
  imageEncoder: null,
  moa: {},
};

const KEYS = [...Object.keys(DEFAULTS), 'dataRoot', 'outputDir', 'steps'];

const { onlyKeys, str, num, oneOf } = fieldReader((field, problem) => new TrainConfigError(field, problem));

function lossConfig(raw: unknown): LossConfig {
  if (raw === undefined) return { ...DEFAULT_LOSS_CONFIG };
  const keys = Object.keys(DEFAULT_LOSS_CONFIG);
  if (!isObject(raw)) throw new TrainConfigError('loss', `must be an object { ${keys.join(', ')} }`);
  onlyKeys(raw, keys, 'loss');
  return {
    router: num(raw, 'router', 'loss', DEFAULT_LOSS_CONFIG.router, { min: 0 }),
    routerSubject: num(raw, 'routerSubject', 'loss', DEFAULT_LOSS_CONFIG.routerSubject, { min: 0 }),
    object: num(raw, 'object', 'loss', DEFAULT_LOSS_CONFIG.object, { min: 0 }),
    maskProbability: num(raw, 'maskProbability', 'loss', DEFAULT_LOSS_CONFIG.maskProbability, { min: 0, max: 1 }),
    subjectWeight: num(raw, 'subjectWeight', 'loss', DEFAULT_LOSS_CONFIG.subjectWeight, { min: 1 }),
    maskedAverage: oneOf(raw, 'maskedAverage', 'loss', MASKED_AVERAGES, DEFAULT_LOSS_CONFIG.maskedAverage),
    background: num(raw, 'background', 'loss', DEFAULT_LOSS_CONFIG.background, { min: 0 }),
  };
}

function samplesConfig(raw: unknown, seed: number): SampleSpec[] | null {
  if (raw === undefined || raw === null) return null;
  const shape = 'a non-empty list of { prompt, subjects: [{ word, image }], seed }';
  if (!Array.isArray(raw) || raw.length === 0) throw new TrainConfigError('samples', `must be ${shape}`);
  return raw.map((entry: unknown, i) => {
    const field = `samples[${i}]`;
    if (!isObject(entry)) throw new TrainConfigError(field, `must be an object { prompt, subjects, seed }, not ${JSON.stringify(entry)}`);
    onlyKeys(entry, ['prompt', 'subjects', 'seed'], field);
    const subjects = entry.subjects ?? [];
    if (!Array.isArray(subjects)) throw new TrainConfigError(`${field}.subjects`, 'must be a list of { word, image }');
    return {
      prompt: str(entry, 'prompt', field)!,
      subjects: subjects.map((s: unknown, k) => {
        const at = `${field}.subjects[${k}]`;
        if (!isObject(s)) throw new TrainConfigError(at, `must be an object { word, image }, not ${JSON.stringify(s)}`);
        onlyKeys(s, ['word', 'image'], at);
        return { word: str(s, 'word', at)!, image: str(s, 'image', at)! };
      }),
      seed: num(entry, 'seed', field, seed, { int: true, min: 0 }),
    };
  });
}

/** Checks a parsed config object and fills in defaults; unknown keys are refused (typos). */
export function parseTrainConfig(raw: unknown): TrainConfig {
  if (!isObject(raw)) throw new TrainConfigError('(root)', 'must be an object');
  onlyKeys(raw, KEYS, '');
  const d = DEFAULTS;
  const emaRaw = raw.emaDecay;
  const config: TrainConfig = {
    dataRoot: str(raw, 'dataRoot', '')!,
    idsFile: str(raw, 'idsFile', '', null),
    resolution: num(raw, 'resolution', '', d.resolution, { int: true, positive: true }),
    cropSize: num(raw, 'cropSize', '', d.cropSize, { int: true, positive: true }),
    batchSize: num(raw, 'batchSize', '', d.batchSize, { int: true, positive: true }),
    steps: num(raw, 'steps', '', undefined, { int: true, positive: true }),
    lr: num(raw, 'lr', '', d.lr, { positive: true }),
    weightDecay: num(raw, 'weightDecay', '', d.weightDecay, { min: 0 }),
    warmupSteps: num(raw, 'warmupSteps', '', d.warmupSteps, { int: true, min: 0 }),
    schedule: oneOf(raw, 'schedule', '', ['constant', 'cosine'] as const, d.schedule),
    gradientAccumulation: num(raw, 'gradientAccumulation', '', d.gradientAccumulation, { int: true, positive: true }),
    maxGradNorm: num(raw, 'maxGradNorm', '', d.maxGradNorm, { positive: true }),
    precision: oneOf(raw, 'precision', '', ['fp32', 'bf16'] as const, d.precision),
    emaDecay: emaRaw === undefined || emaRaw === null ? null : num(raw, 'emaDecay', '', undefined, { min: 0, max: 1 }),
    seed: num(raw, 'seed', '', d.seed, { int: true, min: 0 }),
    checkpointEvery: num(raw, 'checkpointEvery', '', d.checkpointEvery, { int: true, positive: true }),
    sampleEvery: raw.sampleEvery === undefined || raw.sampleEvery === null ? null : num(raw, 'sampleEvery', '', undefined, { int: true, positive: true }),
    sampleSteps: num(raw, 'sampleSteps', '', d.sampleSteps, { int: true, positive: true, max: 1000 }),
    samples: null,
    outputDir: str(raw, 'outputDir', '')!,
    loss: lossConfig(raw.loss),
    dropCaption: num(raw, 'dropCaption', '', d.dropCaption, { min: 0, max: 1 }),
    keepSubject: num(raw, 'keepSubject', '', d.keepSubject, { min: 0, max: 1 }),
    maxSubjects: num(raw, 'maxSubjects', '', d.maxSubjects, { int: true, min: 1 }),
    model: str(raw, 'model', '', null),
    imageEncoder: str(raw, 'imageEncoder', '', null),
    moa: raw.moa === undefined ? {} : isObject(raw.moa) ? { ...raw.moa } : (() => { throw new TrainConfigError('moa', 'must be an object of MoA config overrides'); })(),
  };
  config.samples = samplesConfig(raw.samples, config.seed);
  if (config.samples && config.sampleEvery === null) throw new TrainConfigError('samples', 'are given but sampleEvery is not: set sampleEvery (steps between sample images)');
  if (config.resolution % 8 !== 0) throw new TrainConfigError('resolution', `must be a multiple of 8, not ${config.resolution}`);
  if (config.emaDecay === 1) throw new TrainConfigError('emaDecay', 'must be < 1 (1 would never move)');
  return config;
}

/** Reads a .json, .yaml or .yml config file. */
export function readTrainConfig(path: string): TrainConfig {
  return parseTrainConfig(readConfigFile(path, 'training config'));
}
