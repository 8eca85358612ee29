// Training the judges on rendered world images (never on generated ones): the segmenter on
// pixel classes (subject pixels weighted up: the background is most of every image), the
// attribute recogniser on subject crops and references, the scene recogniser on scene kind and
// time of day. Each net has its own AdamW with warm-up and cosine decay; every draw is seeded.
import { learningRate } from '../train/schedule.js';
import { Random } from '../world/random.js';
import { autocast } from '../tensor/autocast.js';
import { noGrad } from '../tensor/autograd.js';
import { onesLike, tensor } from '../tensor/create.js';
import { Generator } from '../tensor/generator.js';
import { AdamW } from '../tensor/optim.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Module } from '../nn/module.js';
import { CLASSES, SCENE_KINDS, TIMES } from '../world/vocab.js';
import { type AccuracyOptions, type JudgeAccuracy, measureJudges } from './accuracy.js';
import { flipMask, flipWhere, jitterImages } from './augment.js';
import { buildJudgeData, HELD_OUT_INDEX, type JudgeData } from './judge-data.js';
import { DEFAULT_JUDGES_SHAPE, Judges, JUDGES_FORMAT, JUDGES_VERSION, type JudgesConfig, type JudgesShape } from './judges.js';
import { ATTRIBUTE_HEADS, ATTRIBUTE_LOGITS, IGNORE } from './labels.js';

export interface TrainJudgesOptions {
  /** Seeds the identities, scenes, weights, batches and augmentation. Default 0. */
  seed?: number;
  /** Rendered scene images to train on. Default 16000. */
  images?: number;
  /** Rendered references to train on (segmenter and attributes). Default images / 4. */
  references?: number;
  /** Identities drawn for the judges (a fifth of each class held out). Default 3000. */
  identities?: number;
  /** Optimizer steps of each net (one number for all, or per net). Default DEFAULT_STEPS. */
  steps?: number | Partial<Record<JudgeNet, number>>;
  /** Held-out scenes and references to measure the trained judges on. Default 300 and 150. */
  heldOutImages?: number;
  heldOutReferences?: number;
  /** 'bf16' trains under bf16 autocast (weights stay float32). Default 'fp32'. */
  precision?: 'fp32' | 'bf16';
  /** Net sizes; default DEFAULT_JUDGES_SHAPE. */
  shape?: JudgesShape;
  onProgress?: (p: TrainJudgesProgress) => void;
  signal?: AbortSignal;
}

export type JudgeNet = 'segmenter' | 'attributes' | 'scene';

export interface TrainJudgesProgress {
  phase: 'render' | 'segmenter' | 'attributes' | 'scene' | 'held-out';
  done: number;
  total: number;
  /** The step's loss (training phases). */
  loss?: number;
}

export interface TrainJudgesResult {
  judges: Judges;
  /** Each net's loss at every step. */
  losses: { segmenter: number[]; attributes: number[]; scene: number[] };
  heldOut: JudgeAccuracy;
  /** Wall-clock seconds of each phase. */
  seconds: Record<TrainJudgesProgress['phase'], number>;
}

const BATCH = { segmenter: 24, attributes: 64, scene: 48 } as const;
/** Steps each judge needs (the scene is easy; attributes take longest). */
export const DEFAULT_STEPS: Readonly<Record<JudgeNet, number>> = { segmenter: 3000, attributes: 4000, scene: 600 };
const LR = 2e-3;
const WARMUP = 50;
/** Subject pixels weigh this much more than background pixels in the segmenter's loss. */
const SUBJECT_WEIGHT = 3;

function checkCount(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) throw new RangeError(`${name} must be an integer ≥ ${min}, not ${value}`);
  return value;
}

function abortIf(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw Object.assign(new Error('judge training interrupted'), { name: 'AbortError' });
}

/** Mean negative log-likelihood of `target` under `logits` (classes on dim 1), each item weighted. */
function weightedNll(logits: Tensor, target: Tensor, weight: Tensor): Tensor {
  const nll = logits.float().logSoftmax(1).gather(1, target.unsqueeze(1)).squeeze(1).neg();
  return nll.mul(weight).sum().div(weight.sum().clamp(1e-6));
}

/**
 * The attribute recogniser's loss: each attribute head's mean cross-entropy over the crops whose
 * class has it, and the class's, averaged over those heads.
 */
function attributeLoss(logits: Tensor, targets: Tensor, classes: Tensor): Tensor {
  const heads = ATTRIBUTE_HEADS.map((h, i) => {
    const t = targets.select(1, i);
    const valid = t.ne(IGNORE);
    return weightedNll(logits.narrow(1, h.offset, h.values.length), t.clamp(0), valid.float());
  });
  const all = onesLike(classes, { dtype: 'float32' });
  heads.push(weightedNll(logits.narrow(1, ATTRIBUTE_LOGITS, CLASSES.length), classes, all));
  return heads.reduce((a, b) => a.add(b)).div(heads.length);
}

interface FitOptions {
  steps: number;
  precision: 'fp32' | 'bf16';
  phase: TrainJudgesProgress['phase'];
  onProgress?: (p: TrainJudgesProgress) => void;
  signal?: AbortSignal;
}

/** Trains `net` for `steps` steps on the loss `lossAt(step)` builds; returns the losses. */
async function fit(net: Module, lossAt: (step: number) => Tensor, o: FitOptions): Promise<number[]> {
  const optimizer = new AdamW(net.parameters(), { lr: LR, weightDecay: 1e-4 });
  const losses: number[] = [];
  net.train();
  try {
    for (let step = 0; step < o.steps; step++) {
      abortIf(o.signal);
      optimizer.setLr(learningRate(step, { lr: LR, warmupSteps: Math.min(WARMUP, Math.floor(o.steps / 4)), schedule: 'cosine', steps: o.steps }));
      const loss = tidy(() => {
        const l = autocast({ device: 'cpu', dtype: 'bfloat16', enabled: o.precision === 'bf16' }, () => lossAt(step));
        optimizer.zeroGrad();
        l.backward();
        optimizer.step();
        return l.item();
      });
      if (!Number.isFinite(loss)) throw new Error(`judge training (${o.phase}): the loss became ${loss} at step ${step}`);
      losses.push(loss);
      o.onProgress?.({ phase: o.phase, done: step + 1, total: o.steps, loss });
      // Let Ctrl-C and progress output through between steps.
      await new Promise((resolve) => setImmediate(resolve));
    }
  } finally {
    optimizer.zeroGrad();
    optimizer.dispose();
    net.eval();
  }
  return losses;
}

/** `count` indices in [0, n) for a batch, drawn from (seed, net, step). */
function batchIndices(seed: number, tag: number, step: number, n: number, count: number): Tensor {
  const random = new Random(seed, tag, step);
  return tensor(Array.from({ length: count }, () => random.int(0, n - 1)), { dtype: 'int64' });
}

/** uint8 [N, ...] in 0..255 → float32 in [0, 1]. */
const unit = (t: Tensor) => t.float().div(255);

export async function trainJudges(options: TrainJudgesOptions = {}): Promise<TrainJudgesResult> {
  const seed = checkCount('seed', options.seed ?? 0, 0);
  const images = checkCount('images', options.images ?? 16000, 1);
  const references = checkCount('references', options.references ?? Math.ceil(images / 4), 0);
  const identities = checkCount('identities', options.identities ?? 3000, 12);
  const given = options.steps ?? DEFAULT_STEPS;
  const steps: Record<JudgeNet, number> = Object.fromEntries(
    (['segmenter', 'attributes', 'scene'] as const).map((net) => [net, checkCount(`${net} steps`, typeof given === 'number' ? given : (given[net] ?? DEFAULT_STEPS[net]), 1)]),
  ) as Record<JudgeNet, number>;
  const heldOutImages = checkCount('held-out images', options.heldOutImages ?? 300, 1);
  const heldOutReferences = checkCount('held-out references', options.heldOutReferences ?? 150, 0);
  const precision = options.precision ?? 'fp32';
  if (precision !== 'fp32' && precision !== 'bf16') throw new RangeError(`precision must be 'fp32' or 'bf16', not ${String(precision)}`);
  const shape = options.shape ?? DEFAULT_JUDGES_SHAPE;
  const { onProgress, signal } = options;
  const seconds = { render: 0, segmenter: 0, attributes: 0, scene: 0, 'held-out': 0 };
  const timed = async <T>(phase: keyof typeof seconds, work: () => T | Promise<T>): Promise<T> => {
    const start = performance.now();
    try {
      return await work();
    } finally {
      seconds[phase] += (performance.now() - start) / 1000;
    }
  };

  const data: JudgeData = await timed('render', () =>
    buildJudgeData({
      seed,
      identities,
      split: 'train',
      images,
      references,
      size: shape.imageSize,
      cropSize: shape.attributes.cropSize,
      minPixels: shape.minRegionPixels,
      jitter: true,
      onProgress: (done, total) => onProgress?.({ phase: 'render', done, total }),
      signal,
    }),
  );
  const config: JudgesConfig = { format: JUDGES_FORMAT, version: JUDGES_VERSION, ...shape, reliableAttributes: [] };
  const judges = new Judges(config, { generator: new Generator(seed) });
  try {
    const augment = new Generator(seed + 1);
    const total = data.images.size(0);
    const crops = data.crops.size(0);
    if (crops === 0) throw new Error('judge training: no subject is large enough to crop; render more images');
    const fitOptions = (phase: JudgeNet): FitOptions => ({ steps: steps[phase], precision, phase, onProgress, signal });

    const segmenter = await timed('segmenter', () =>
      fit(
        judges.segmenter,
        (step) => {
          const idx = batchIndices(seed, 1, step, total, BATCH.segmenter);
          const flip = flipMask(BATCH.segmenter, augment);
          const x = jitterImages(flipWhere(unit(data.images.indexSelect(0, idx)), flip), augment);
          const y = flipWhere(data.classMaps.indexSelect(0, idx), flip).long();
          const weight = y.gt(0).float().mul(SUBJECT_WEIGHT - 1).add(1);
          return weightedNll(judges.segmenter.forward(x), y, weight);
        },
        fitOptions('segmenter'),
      ),
    );

    const attributes = await timed('attributes', () =>
      fit(
        judges.attributes,
        (step) => {
          const idx = batchIndices(seed, 2, step, crops, BATCH.attributes);
          const classes = tensor(Array.from(idx.toNumbers(), (i) => data.cropClasses[i]! - 1), { dtype: 'int64' });
          const flip = flipMask(BATCH.attributes, augment);
          const x = jitterImages(flipWhere(unit(data.crops.indexSelect(0, idx)), flip), augment);
          return attributeLoss(judges.attributes.forward(x), data.cropTargets.indexSelect(0, idx), classes);
        },
        fitOptions('attributes'),
      ),
    );

    const scene = await timed('scene', () =>
      fit(
        judges.scene,
        (step) => {
          const idx = batchIndices(seed, 3, step, data.scenes, BATCH.scene);
          const flip = flipMask(BATCH.scene, augment);
          const x = jitterImages(flipWhere(unit(data.images.indexSelect(0, idx)), flip), augment);
          const logits = judges.scene.forward(x).float();
          const ones = (n: number) => tensor(new Float32Array(n).fill(1));
          const kind = weightedNll(logits.narrow(1, 0, SCENE_KINDS.length), data.kinds.indexSelect(0, idx), ones(BATCH.scene));
          const time = weightedNll(logits.narrow(1, SCENE_KINDS.length, TIMES.length), data.times.indexSelect(0, idx), ones(BATCH.scene));
          return kind.add(time);
        },
        fitOptions('scene'),
      ),
    );

    // Measured as shipped: with the weights rounded to what the file stores.
    judges.roundToStored().eval();
    const measure: AccuracyOptions = {
      seed,
      identities,
      images: heldOutImages,
      references: heldOutReferences,
      firstIndex: HELD_OUT_INDEX,
      onProgress: (done, t) => onProgress?.({ phase: 'held-out', done, total: t }),
    };
    const heldOut = await timed('held-out', () => noGrad(() => measureJudges(judges, measure)));
    judges.config.reliableAttributes = heldOut.reliableAttributes;
    judges.config.heldOut = heldOut as unknown as Record<string, unknown>;
    judges.config.training = {
      seed,
      images,
      references,
      identities,
      steps,
      batch: BATCH,
      lr: LR,
      precision,
      heldOutImages,
      heldOutReferences,
      seconds: Object.fromEntries(Object.entries(seconds).map(([k, v]) => [k, Math.round(v * 10) / 10])),
      finalLoss: { segmenter: segmenter.at(-1), attributes: attributes.at(-1), scene: scene.at(-1) },
    };
    return { judges, losses: { segmenter, attributes, scene }, heldOut, seconds };
  } catch (error) {
    judges.dispose();
    throw error;
  } finally {
    data.dispose();
  }
}
