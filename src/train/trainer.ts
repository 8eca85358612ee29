// The MoA trainer (spec §3): only MoA's parameters learn; the VAE, text encoder and image
// encoder run without gradients; DDPM noise and timesteps come from one seeded Generator whose
// state, with the loader position, optimizer state and EMA, is checkpointed for exact resumes.
import { appendFileSync } from 'node:fs';
import { join } from 'node:path';
import type { CLIPVisionModelWithProjection } from '../models/clip-vision.js';
import { MoA, type MoAConfig, imageEmbeddings, saveMoAWeights, type SubjectBinding } from '../moa/index.js';
import type { StableDiffusion } from '../pipelines/stable-diffusion.js';
import { DDPMScheduler } from '../schedulers/index.js';
import { autocast } from '../tensor/autocast.js';
import { noGrad } from '../tensor/autograd.js';
import { randint, randn } from '../tensor/create.js';
import { stack } from '../tensor/functional.js';
import { Generator } from '../tensor/generator.js';
import { AdamW, clipGradNorm } from '../tensor/optim.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkpointPath, loadCheckpoint, saveCheckpoint } from './checkpoint.js';
import type { TrainConfig } from './config.js';
import { type Batch, batchMasks, disposeBatch, FfhqWildLoader, readImageIds } from './data/index.js';
import { JsonlLog, type StepRecord } from './log.js';
import { subjectErrorSums, totalLoss } from './losses/index.js';
import { TrainingRecorder } from './recorder.js';
import { type SampleRecord, TrainingSampler } from './samples.js';
import { emaDecayAt, learningRate } from './schedule.js';

export interface TrainerOptions {
  sd: StableDiffusion;
  imageEncoder: CLIPVisionModelWithProjection;
  config: TrainConfig;
  /** MoA already installed on sd.unet; default: a new one from config.moa (seeded by config.seed). */
  moa?: MoA;
  /** A checkpoint file to continue from. */
  resume?: string | null;
  /** Write <outputDir>/train-log.jsonl (default true). */
  log?: boolean;
}

export interface RunOptions {
  /** Stop after this optimizer step (default config.steps). */
  until?: number;
  onStep?: (record: StepRecord) => void;
  /** Told after each round of sample images (config.sampleEvery). */
  onSample?: (record: SampleRecord) => void;
  signal?: AbortSignal;
}

export class Trainer {
  readonly sd: StableDiffusion;
  readonly moa: MoA;
  readonly imageEncoder: CLIPVisionModelWithProjection;
  readonly config: TrainConfig;
  readonly loader: FfhqWildLoader;
  readonly optimizer: AdamW;
  /** Draws noise, timesteps and the loss's masking decisions. */
  readonly noise: Generator;
  readonly scheduler: DDPMScheduler;
  /** Optimizer steps done. */
  step = 0;
  #ema: Record<string, Tensor> | null = null;
  readonly #params: Tensor[];
  readonly #log: JsonlLog | null;
  readonly #recorder = new TrainingRecorder();
  #sampler: TrainingSampler | null = null;

  private constructor(options: TrainerOptions, ids: string[]) {
    const { sd, imageEncoder, config } = options;
    this.sd = sd;
    this.imageEncoder = imageEncoder;
    this.config = config;
    this.moa = options.moa ?? new MoA(sd.unet, config.moa as Partial<MoAConfig>, { generator: new Generator(config.seed), imageEncoder });
    this.#params = this.moa.moaParameters();
    this.optimizer = new AdamW(this.#params, { lr: config.lr, weightDecay: config.weightDecay });
    this.noise = new Generator(config.seed);
    this.scheduler = new DDPMScheduler(sd.schedulerConfig);
    const vaeFactor = 2 ** (sd.vae.config.blockOutChannels.length - 1);
    this.loader = new FfhqWildLoader(config.dataRoot, ids, sd.tokenizer, {
      batchSize: config.batchSize,
      seed: config.seed,
      resolution: config.resolution,
      latentResolution: config.resolution / vaeFactor,
      cropSize: config.cropSize,
      dropCaption: config.dropCaption,
      keepSubject: config.keepSubject,
      maxSubjects: config.maxSubjects,
    });
    if (config.emaDecay !== null) this.#ema = noGrad(() => Object.fromEntries(this.moa.moaNamedParameters().map(([k, p]) => [k, p.detach().float().clone()])));
    this.#log = options.log === false ? null : new JsonlLog(join(config.outputDir, 'train-log.jsonl'));
  }

  static async create(options: TrainerOptions): Promise<Trainer> {
    const ids = await readImageIds(options.config.dataRoot, options.config.idsFile ?? undefined);
    const trainer = new Trainer(options, ids);
    try {
      if (options.resume) trainer.restore(options.resume);
      const { config, sd } = options;
      if (config.sampleEvery !== null) trainer.#sampler = await TrainingSampler.prepare(config, sd.tokenizer, trainer.moa.config.maxSubjects);
    } catch (error) {
      trainer.dispose();
      throw error;
    }
    return trainer;
  }

  /** The EMA of MoA's parameters (float32), or null without emaDecay. */
  get ema(): Readonly<Record<string, Tensor>> | null {
    return this.#ema;
  }

  /** Runs optimizer steps until `until` (default config.steps), checkpointing and sampling on the way and at the end. */
  async run({ until = this.config.steps, onStep, onSample, signal }: RunOptions = {}): Promise<StepRecord[]> {
    const records: StepRecord[] = [];
    const { checkpointEvery, sampleEvery, steps } = this.config;
    while (this.step < until) {
      signal?.throwIfAborted();
      const record = await this.trainStep();
      records.push(record);
      onStep?.(record);
      if (this.step % checkpointEvery === 0 || this.step === steps) this.saveCheckpoint();
      if (this.#sampler && (this.step % sampleEvery! === 0 || this.step === steps)) {
        const written = await this.writeSamples(signal);
        onSample?.(written);
      }
    }
    if (this.step === this.config.steps) saveMoAWeights(join(this.config.outputDir, 'moa.safetensors'), this.moa, { baseModel: this.sd.source });
    return records;
  }

  /** One optimizer step over gradientAccumulation micro-batches. */
  async trainStep(): Promise<StepRecord> {
    const started = performance.now();
    const { gradientAccumulation: accumulation, maxGradNorm } = this.config;
    const lr = learningRate(this.step, this.config);
    this.optimizer.setLr(lr);
    this.optimizer.zeroGrad();
    const sums = { loss: 0, diffusion: 0, router: 0, routerSubject: 0, object: 0, background: 0 };
    const subjectError = { sum: 0, count: 0 };
    for (let i = 0; i < accumulation; i++) {
      const batch = await this.loader.nextBatch();
      try {
        const { terms, subjects } = this.#microStep(batch, 1 / accumulation);
        for (const k of Object.keys(sums) as (keyof typeof sums)[]) sums[k] += terms[k] / accumulation;
        subjectError.sum += subjects.sum;
        subjectError.count += subjects.count;
      } finally {
        disposeBatch(batch);
        this.#recorder.reset();
      }
    }
    const gradNorm = clipGradNorm(this.#params, maxGradNorm);
    this.optimizer.step();
    this.optimizer.zeroGrad();
    this.#updateEma();
    this.step++;
    const record: StepRecord = { step: this.step, ...sums, subjectError: subjectError.count > 0 ? subjectError.sum / subjectError.count : null, lr, gradNorm, itPerSec: 1000 / (performance.now() - started) };
    this.#log?.write(record);
    return record;
  }

  /** Generates the sample images of the current step with MoA's current weights (not the EMA) and logs them. */
  async writeSamples(signal?: AbortSignal): Promise<SampleRecord> {
    if (!this.#sampler) throw new Error('this training run has no sampleEvery: no samples are set up');
    const record = await this.#sampler.write(this.step, this.sd, this.moa, this.imageEncoder, signal);
    // Same file as the step records (JsonlLog.write is typed for those); kind marks it apart.
    if (this.#log) appendFileSync(this.#log.path, JSON.stringify(record) + '\n');
    return record;
  }

  /**
   * Forward and backward on one batch; gradients accumulate scaled by `scale`. Returns the loss
   * terms and the sums behind the log's subjectError.
   */
  #microStep(batch: Batch, scale: number): { terms: Omit<StepRecord, 'step' | 'subjectError' | 'lr' | 'gradNorm' | 'itPerSec'>; subjects: { sum: number; count: number } } {
    return tidy(() => {
      const { sd } = this;
      const B = batch.images.size(0);
      const device = sd.device;
      const [latents, text] = noGrad(() => {
        const posterior = sd.vae.encode(batch.images.to({ device }));
        const z = posterior.mean.float().mul(sd.vae.scalingFactor);
        posterior.dispose();
        return [z, sd.textEncoder.forward(batch.inputIds.to({ device })).lastHiddenState];
      });
      const subjects = this.#subjects(batch);
      const noise = randn(latents.shape, { generator: this.noise }).to({ device });
      const timesteps = randint(0, this.scheduler.config.num_train_timesteps, [B], { generator: this.noise }).to({ device });
      const noisy = this.scheduler.addNoise(latents, noise, timesteps);
      const target = this.scheduler.trainingTarget(latents, noise, timesteps);
      const forward = () => sd.unet.forward(noisy, timesteps, text, { moa: { subjects, timestep: timesteps, recorder: this.#recorder } });
      const precise = <T>(f: () => T): T => (this.config.precision === 'bf16' ? autocast({ device: device === 'cpu' ? 'cpu' : 'cuda', dtype: 'bfloat16' }, f) : f());
      const pred = precise(forward);
      // The base model's prediction, for the background-preservation term only.
      const priorPred = this.config.loss.background > 0 ? noGrad(() => precise(() => sd.unet.forward(noisy, timesteps, text, { moa: { subjects, timestep: timesteps, forcePrior: true } }))) : undefined;
      const { unionMask, subjectMasks, counts } = batchMasks(batch, latents.size(2), latents.size(3));
      const terms = totalLoss(
        {
          pred,
          target,
          unionMask: unionMask.to({ device }),
          subjectMasks: subjectMasks.to({ device }),
          subjectCounts: counts,
          r1Maps: this.#recorder.r1Maps(),
          attentionMaps: this.#recorder.middleMaps(),
          priorPred,
          generator: this.noise,
        },
        this.config.loss,
      );
      terms.total.mul(scale).backward();
      return {
        terms: { loss: terms.total.item(), diffusion: terms.diffusion.item(), router: terms.router.item(), routerSubject: terms.routerSubject.item(), object: terms.object.item(), background: terms.background.item() },
        subjects: subjectErrorSums(pred, target, unionMask),
      };
    });
  }

  /** Every subject's image embedding, from its crop (no gradients unless MoA trains encoder layers). */
  #subjects(batch: Batch): SubjectBinding[][] {
    const all = batch.subjects.flat();
    if (all.length === 0) return batch.subjects.map(() => []);
    const encode = () => imageEmbeddings(this.imageEncoder, stack(all.map((s) => s.crop)).to({ device: this.sd.device }));
    const embeddings = this.moa.config.trainImageEncoderLayers > 0 ? encode() : noGrad(encode);
    let row = 0;
    return batch.subjects.map((subjects) => subjects.map((s) => ({ tokenIndex: s.tokenIndex, embedding: embeddings.select(0, row++) })));
  }

  #updateEma(): void {
    const ema = this.#ema;
    if (!ema) return;
    const decay = emaDecayAt(this.config.emaDecay!, this.step);
    noGrad(() => {
      for (const [k, p] of this.moa.moaNamedParameters()) tidy(() => ema[k]!.lerp_(p.detach().float(), 1 - decay));
    });
  }

  /** Writes <outputDir>/checkpoints/step-N.safetensors; returns its path. */
  saveCheckpoint(): string {
    const path = checkpointPath(this.config.outputDir, this.step);
    const optimizer = this.optimizer.stateDict();
    const rng = this.noise.getState();
    try {
      saveCheckpoint(path, { step: this.step, position: this.loader.position, config: this.config, moa: this.moa.moaStateDict(), optimizer, ema: this.#ema, rng });
    } finally {
      rng.dispose();
      for (const t of Object.values(optimizer)) t.dispose();
    }
    return path;
  }

  /** Continues from a checkpoint: MoA weights, optimizer, EMA, noise generator, loader position, step. */
  restore(path: string): void {
    const state = loadCheckpoint(path);
    this.moa.loadMoAStateDict(state.moa);
    for (const t of Object.values(state.moa)) t.dispose();
    this.optimizer.loadStateDict(state.optimizer);
    this.noise.setState(state.rng);
    state.rng.dispose();
    if (this.#ema) {
      if (!state.ema) throw new Error(`checkpoint '${path}' has no EMA weights but this run has emaDecay ${this.config.emaDecay}`);
      for (const t of Object.values(this.#ema)) t.dispose();
      this.#ema = state.ema;
    } else if (state.ema) for (const t of Object.values(state.ema)) t.dispose();
    this.loader.setPosition(state.position);
    this.step = state.step;
    this.#log?.truncateAfter(state.step);
  }

  dispose(): void {
    this.loader.close();
    this.optimizer.dispose();
    this.#recorder.dispose();
    this.#sampler?.dispose();
    for (const t of Object.values(this.#ema ?? {})) t.dispose();
  }
}
