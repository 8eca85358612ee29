// The training loop every pretraining stage shares, with the MoA trainer's qualities: AdamW
// (no weight decay on biases, norms and scalars), warm-up then constant or cosine learning rate,
// gradient accumulation and clipping, bf16 autocast, an optional EMA, one seeded noise generator,
// a JSONL log, and atomic checkpoints (weights, optimizer, EMA, generator, data position) from
// which a resumed run repeats the uninterrupted one exactly. A stage supplies its networks, its
// batches and its loss.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Module } from '../../nn/module.js';
import { autocast } from '../../tensor/autocast.js';
import { noGrad } from '../../tensor/autograd.js';
import type { Device } from '../../tensor/device.js';
import { Generator } from '../../tensor/generator.js';
import { AdamW, clipGradNorm } from '../../tensor/optim.js';
import { tidy } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { checkpointDir, checkpointFiles, checkpointPath, latestCheckpoint, loadCheckpoint, saveCheckpoint } from '../checkpoint.js';
import type { TrainConfig, TrainPrecision } from '../config.js';
import type { DataPosition } from '../data/index.js';
import { JsonlLog, type StepRecord } from '../log.js';
import { emaDecayAt, learningRate } from '../schedule.js';
import type { StageName, StageSchedule } from './config.js';

/** One optimizer step: the loss, the stage's own terms, and the optimisation's numbers. */
export interface StageRecord {
  step: number;
  loss: number;
  lr: number;
  /** The gradient norm before clipping. */
  gradNorm: number;
  itPerSec: number;
  [term: string]: number;
}

export interface StageLoss {
  /** The scalar to minimise. */
  loss: Tensor;
  /** Scalars to log beside it (accuracy, KL, …). */
  terms: Record<string, Tensor>;
}

/** What a stage brings to the loop. */
export interface StageTask<B> {
  readonly name: StageName;
  /** The networks it trains, by the key prefix they take in checkpoints. */
  readonly trained: Readonly<Record<string, Module>>;
  readonly position: DataPosition;
  setPosition(position: DataPosition): void;
  nextBatch(): Promise<B>;
  disposeBatch(batch: B): void;
  /** Forward on one batch (inside tidy, and autocast under bf16); `noise` draws the stage's randomness. */
  loss(batch: B, noise: Generator): StageLoss;
  close(): void;
}

export interface RunnerOptions {
  /** Where the stage keeps checkpoints/ and train-log.jsonl. */
  dir: string;
  seed: number;
  precision: TrainPrecision;
  device: Device;
  keepCheckpoints: number;
  /** Stored in each checkpoint's metadata (the whole pretraining config). */
  config: unknown;
  /** Write the JSONL log (default true). */
  log?: boolean;
}

export interface StageRunOptions {
  /** Stop after this optimizer step (default the stage's steps). */
  until?: number;
  onStep?: (record: StageRecord) => void;
  signal?: AbortSignal;
}

export class StageRunner<B> {
  readonly task: StageTask<B>;
  readonly schedule: StageSchedule;
  readonly optimizer: AdamW;
  /** Draws the stage's noise (timesteps, ε, posterior samples). */
  readonly noise: Generator;
  step = 0;
  readonly #options: RunnerOptions;
  readonly #named: [string, Tensor][];
  readonly #log: JsonlLog | null;
  #ema: Record<string, Tensor> | null = null;
  /** Whether the log was cut back to this run's first step (records of redone or abandoned steps go). */
  #logSynced = false;

  constructor(task: StageTask<B>, schedule: StageSchedule, options: RunnerOptions) {
    this.task = task;
    this.schedule = schedule;
    this.#options = options;
    this.#named = Object.entries(task.trained).flatMap(([prefix, m]) => m.namedParameters(prefix).filter(([, p]) => p.requiresGrad));
    const params = this.#named.map(([, p]) => p);
    // Decay matrices and kernels only: biases, norm scales, embeddings' scalars and the temperature stay free.
    const decayed = params.filter((p) => p.ndim >= 2);
    const free = params.filter((p) => p.ndim < 2);
    const groups = [{ params: decayed, weightDecay: schedule.weightDecay }, ...(free.length ? [{ params: free, weightDecay: 0 }] : [])].filter((g) => g.params.length);
    this.optimizer = new AdamW(groups, { lr: schedule.lr });
    this.noise = new Generator(options.seed);
    if (schedule.emaDecay !== null) this.#ema = noGrad(() => Object.fromEntries(this.#named.map(([k, p]) => [k, p.detach().float().clone()])));
    this.#log = options.log === false ? null : new JsonlLog(join(options.dir, 'train-log.jsonl'));
  }

  /** Runs optimizer steps until `until` (default the stage's steps), checkpointing on the way and at the end. */
  async run({ until = this.schedule.steps, onStep, signal }: StageRunOptions = {}): Promise<StageRecord[]> {
    const records: StageRecord[] = [];
    while (this.step < until) {
      signal?.throwIfAborted();
      const record = await this.trainStep();
      records.push(record);
      onStep?.(record);
      if (this.step % this.schedule.checkpointEvery === 0 || this.step === this.schedule.steps) this.saveCheckpoint();
    }
    return records;
  }

  /** One optimizer step over gradientAccumulation batches. */
  async trainStep(): Promise<StageRecord> {
    const started = performance.now();
    if (!this.#logSynced) {
      this.#log?.truncateAfter(this.step);
      this.#logSynced = true;
    }
    const { gradientAccumulation: accumulation, maxGradNorm } = this.schedule;
    const lr = learningRate(this.step, this.schedule);
    this.optimizer.setLr(lr);
    this.optimizer.zeroGrad();
    const sums: Record<string, number> = {};
    for (let i = 0; i < accumulation; i++) {
      const batch = await this.task.nextBatch();
      try {
        const values = this.#microStep(batch, 1 / accumulation);
        for (const [k, v] of Object.entries(values)) sums[k] = (sums[k] ?? 0) + v / accumulation;
      } finally {
        this.task.disposeBatch(batch);
      }
    }
    const gradNorm = clipGradNorm(this.optimizer.params, maxGradNorm);
    this.optimizer.step();
    this.optimizer.zeroGrad();
    this.#updateEma();
    this.step++;
    const { loss, ...terms } = sums;
    const record: StageRecord = { step: this.step, loss: loss!, ...terms, lr, gradNorm, itPerSec: 1000 / (performance.now() - started) };
    // The log file takes any record with a step; its type names the MoA trainer's fields.
    this.#log?.write(record as unknown as StepRecord);
    return record;
  }

  #microStep(batch: B, scale: number): Record<string, number> {
    return tidy(() => {
      const { device, precision } = this.#options;
      const forward = () => this.task.loss(batch, this.noise);
      const { loss, terms } = precision === 'bf16' ? autocast({ device: device === 'cpu' ? 'cpu' : 'cuda', dtype: 'bfloat16' }, forward) : forward();
      const total = loss.float();
      total.mul(scale).backward();
      return { loss: total.item(), ...Object.fromEntries(Object.entries(terms).map(([k, t]) => [k, t.float().item()])) };
    });
  }

  #updateEma(): void {
    const ema = this.#ema;
    if (!ema) return;
    const decay = emaDecayAt(this.schedule.emaDecay!, this.step);
    noGrad(() => {
      for (const [k, p] of this.#named) tidy(() => ema[k]!.lerp_(p.detach().float(), 1 - decay));
    });
  }

  /** The trained networks' state by prefixed key (aliases: dispose them). */
  #weights(): Record<string, Tensor> {
    return Object.fromEntries(Object.entries(this.task.trained).flatMap(([prefix, m]) => Object.entries(m.stateDict()).map(([k, t]) => [`${prefix}.${k}`, t])));
  }

  /** Writes <dir>/checkpoints/step-N.safetensors (keeping the newest keepCheckpoints); returns its path. */
  saveCheckpoint(): string {
    const { dir, config, keepCheckpoints } = this.#options;
    const path = checkpointPath(dir, this.step);
    const optimizer = this.optimizer.stateDict();
    const rng = this.noise.getState();
    const weights = this.#weights();
    try {
      // The checkpoint format names the MoA trainer's fields; the stage's weights take the weights' slot.
      const tagged = { pretrainStage: this.task.name, ...(config as object) } as unknown as TrainConfig;
      saveCheckpoint(path, { step: this.step, position: this.task.position, config: tagged, moa: weights, optimizer, ema: this.#ema, rng });
    } finally {
      for (const t of [rng, ...Object.values(optimizer), ...Object.values(weights)]) t.dispose();
    }
    const files = checkpointFiles(dir);
    for (const old of files.slice(0, Math.max(0, files.length - keepCheckpoints))) rmSync(join(checkpointDir(dir), old));
    return path;
  }

  /** Continues from a checkpoint of this stage: weights, optimizer, EMA, noise generator, data position, step. */
  restore(path: string): void {
    const state = loadCheckpoint(path);
    const all = [state.rng, ...Object.values(state.moa), ...Object.values(state.optimizer), ...Object.values(state.ema ?? {})];
    try {
      const stage = (state.config as unknown as { pretrainStage?: string }).pretrainStage;
      if (stage !== this.task.name) throw new Error(`checkpoint '${path}' is ${stage ? `of the ${stage} stage` : 'not a pretraining checkpoint'}, not of the ${this.task.name} stage`);
      for (const [prefix, module] of Object.entries(this.task.trained)) {
        const mine = Object.fromEntries(Object.entries(state.moa).filter(([k]) => k.startsWith(`${prefix}.`)).map(([k, t]) => [k.slice(prefix.length + 1), t]));
        module.loadStateDict(mine);
      }
      this.optimizer.loadStateDict(state.optimizer);
      this.noise.setState(state.rng);
      if (this.#ema) {
        if (!state.ema) throw new Error(`checkpoint '${path}' has no EMA weights but this stage has emaDecay ${this.schedule.emaDecay}`);
        noGrad(() => {
          for (const [k, t] of Object.entries(this.#ema!)) t.copy_(state.ema![k] ?? missing(path, `ema.${k}`));
        });
      }
      this.task.setPosition(state.position);
      this.step = state.step;
    } finally {
      for (const t of all) t.dispose();
    }
  }

  /** Continues from the stage's newest checkpoint; false when it has none. */
  resumeLatest(): string | null {
    const path = latestCheckpoint(this.#options.dir);
    if (path) this.restore(path);
    return path;
  }

  /** Puts the EMA weights into the networks (what the folder should hold at the end); no-op without EMA. */
  applyEma(): void {
    const ema = this.#ema;
    if (!ema) return;
    noGrad(() => {
      for (const [k, p] of this.#named) p.copy_(ema[k]!);
    });
  }

  dispose(): void {
    this.task.close();
    this.optimizer.dispose();
    for (const t of Object.values(this.#ema ?? {})) t.dispose();
  }
}

function missing(path: string, key: string): never {
  throw new Error(`checkpoint '${path}' lacks ${key}`);
}
