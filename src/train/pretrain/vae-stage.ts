// Stage 1: the VAE learns to reconstruct training images through a sampled latent. Loss:
// l1·|x̂ − x| + l2·(x̂ − x)² per pixel, plus klWeight · KL(q(z|x) ‖ N(0, 1)) per latent element,
// which keeps the latents near unit scale and the decoder tolerant of small errors. Afterwards
// the latents' spread gives the scaling factor the UNet's inputs are multiplied by.
import type { ClipTokenizer } from '../../models/clip-tokenizer.js';
import type { AutoencoderKL } from '../../models/vae/autoencoder-kl.js';
import { noGrad } from '../../tensor/autograd.js';
import type { Device } from '../../tensor/device.js';
import type { Generator } from '../../tensor/generator.js';
import { tidy } from '../../tensor/scope.js';
import { zeros } from '../../tensor/create.js';
import { stack } from '../../tensor/functional.js';
import type { Tensor } from '../../tensor/tensor.js';
import { type Batch, disposeBatch, FfhqWildLoader } from '../data/index.js';
import type { VaeStageConfig } from './config.js';
import type { StageLoss, StageTask } from './runner.js';

/**
 * Batches of training images: no caption dropout, no subject crops; with `masks` (a side in
 * pixels: the image's resolution, or its latents'), every subject's mask at that resolution.
 */
export function imageLoader(
  root: string,
  ids: readonly string[],
  tokenizer: ClipTokenizer,
  options: { batchSize: number; seed: number; resolution: number; dropCaption?: number; shuffle?: boolean; masks?: number },
): FfhqWildLoader {
  const { masks, ...rest } = options;
  const subjects = masks ? { maxSubjects: MAX_SEGMENTS, latentResolution: masks } : { maxSubjects: 0, latentResolution: 1 };
  return new FfhqWildLoader(root, ids, tokenizer, { ...rest, dropCaption: options.dropCaption ?? 0, keepSubject: 1, cropSize: 1, ...subjects });
}

/** Every segment of an image counts as a subject for the stages' weighting (the world has at most 4). */
const MAX_SEGMENTS = 16;

/**
 * Per-pixel loss weights [B, 1, R, R] at the masks' resolution R: 1 + (weight − 1) · m, where m is
 * the largest share of the pixel one subject covers (1 on subjects, 0 elsewhere at full size).
 */
export function subjectPixelWeights(batch: Batch, weight: number, r: number): Tensor {
  return tidy(() => {
    const union = batch.subjects.map((subjects) => subjects.reduce((acc, s) => acc.maximum(s.mask), zeros([1, r, r])));
    return stack(union).mul(weight - 1).add(1);
  });
}

/** The mean of `e` [B, C, R, R] over everything, each pixel counted by its weight [B, 1, R, R]. */
export function pixelWeightedMean(e: Tensor, weights: Tensor): Tensor {
  return e.mul(weights).sum().div(weights.sum().mul(e.size(1)));
}

/** A stage fed by an FfhqWildLoader: the data position, batches and closing come from it. */
export abstract class LoaderTask {
  readonly #loader: FfhqWildLoader;

  constructor(loader: FfhqWildLoader) {
    this.#loader = loader;
  }

  get position() {
    return this.#loader.position;
  }
  setPosition(position: { epoch: number; index: number }): void {
    this.#loader.setPosition(position);
  }
  nextBatch(): Promise<Batch> {
    return this.#loader.nextBatch();
  }
  disposeBatch(batch: Batch): void {
    disposeBatch(batch);
  }
  close(): void {
    this.#loader.close();
  }
}

export class VaeTask extends LoaderTask implements StageTask<Batch> {
  readonly name = 'vae' as const;
  readonly trained: { vae: AutoencoderKL };

  constructor(
    vae: AutoencoderKL,
    loader: FfhqWildLoader,
    private readonly config: VaeStageConfig,
    private readonly device: Device,
  ) {
    super(loader);
    this.trained = { vae };
  }

  loss(batch: Batch, noise: Generator): StageLoss {
    const { vae } = this.trained;
    const x = batch.images.to({ device: this.device });
    const posterior = vae.encode(x);
    const decoded = vae.decode(posterior.sample(noise)).float();
    const error = decoded.sub(x);
    const { subjectWeight } = this.config;
    // A weighted mean over pixels and channels: with subjectWeight 1 it is the plain mean.
    const weights = subjectWeight === 1 ? null : subjectPixelWeights(batch, subjectWeight, x.size(2)).to({ device: this.device });
    const mean = (e: Tensor) => (weights ? pixelWeightedMean(e, weights) : e.mean());
    const l1 = mean(error.abs());
    const l2 = mean(error.square());
    const mu = posterior.mean.float();
    const logvar = posterior.logvar.float();
    const kl = mu.square().add(logvar.exp()).sub(1).sub(logvar).mean().mul(0.5);
    const { l1Weight, l2Weight, klWeight } = this.config;
    const loss = l1.mul(l1Weight).add(l2.mul(l2Weight)).add(kl.mul(klWeight));
    return { loss, terms: { l1, l2, kl } };
  }
}

/** 1 / std of the posterior means of up to `samples` images: latents × this have unit spread. */
export async function measureScalingFactor(vae: AutoencoderKL, loader: FfhqWildLoader, samples: number, device: Device): Promise<number> {
  const means: Tensor[] = [];
  try {
    for (let seen = 0; seen < samples; ) {
      const batch = await loader.nextBatch();
      try {
        means.push(noGrad(() => tidy(() => vae.encode(batch.images.to({ device })).mean.float().cpu())));
        seen += batch.images.size(0);
      } finally {
        disposeBatch(batch);
      }
    }
    const std = tidy(() => {
      const all = means.map((m) => m.flatten());
      let sum = 0;
      let sumSq = 0;
      let n = 0;
      for (const m of all) {
        sum += m.sum().item();
        sumSq += m.square().sum().item();
        n += m.numel;
      }
      const mean = sum / n;
      return Math.sqrt(Math.max(0, sumSq / n - mean * mean));
    });
    if (!(std > 0) || !Number.isFinite(std)) throw new Error(`the VAE's latents have no spread (std ${std}): it learned nothing; check the vae stage's loss`);
    return 1 / std;
  } finally {
    for (const m of means) m.dispose();
  }
}
