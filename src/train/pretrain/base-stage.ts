// Stage 3: the text encoder and the UNet learn together to predict the noise added to the frozen
// VAE's latents (scaled by its measured scaling factor), the caption dropped now and then so
// classifier-free guidance has an unconditional model to steer from. Noise and timesteps follow
// the DDPM schedule of the scheduler config. With subjectWeight > 1, the error on latent pixels
// that subjects cover counts that many times (a weighted mean), so the small UNet spends more of
// its few steps on the subjects than their share of the image would give them.
import type { CLIPTextModel } from '../../models/clip-text.js';
import type { UNet2DConditionModel } from '../../models/unet/unet.js';
import type { AutoencoderKL } from '../../models/vae/autoencoder-kl.js';
import { DDPMScheduler, type SchedulerConfig } from '../../schedulers/index.js';
import { noGrad } from '../../tensor/autograd.js';
import { randint, randn } from '../../tensor/create.js';
import type { Device } from '../../tensor/device.js';
import { mseLoss } from '../../tensor/functional.js';
import type { Generator } from '../../tensor/generator.js';
import type { Batch, FfhqWildLoader } from '../data/index.js';
import type { StageLoss, StageTask } from './runner.js';
import { LoaderTask, pixelWeightedMean, subjectPixelWeights } from './vae-stage.js';

export interface BaseNetworks {
  textEncoder: CLIPTextModel;
  unet: UNet2DConditionModel;
  /** Frozen: only encodes. */
  vae: AutoencoderKL;
}

export class BaseTask extends LoaderTask implements StageTask<Batch> {
  readonly name = 'base' as const;
  readonly trained: { text_encoder: CLIPTextModel; unet: UNet2DConditionModel };
  readonly scheduler: DDPMScheduler;
  readonly #vae: AutoencoderKL;

  constructor(
    networks: BaseNetworks,
    schedulerConfig: SchedulerConfig,
    loader: FfhqWildLoader,
    private readonly scalingFactor: number,
    private readonly device: Device,
    /** How many times a subject's latent pixel counts; the loader must give masks at latent size when > 1. */
    private readonly subjectWeight = 1,
  ) {
    super(loader);
    this.trained = { text_encoder: networks.textEncoder, unet: networks.unet };
    this.#vae = networks.vae;
    this.scheduler = new DDPMScheduler(schedulerConfig);
  }

  loss(batch: Batch, noise: Generator): StageLoss {
    const { device } = this;
    const B = batch.images.size(0);
    const latents = noGrad(() => this.#vae.encode(batch.images.to({ device })).mean.float().mul(this.scalingFactor));
    const context = this.trained.text_encoder.forward(batch.inputIds.to({ device })).lastHiddenState;
    const eps = randn(latents.shape, { generator: noise }).to({ device });
    const timesteps = randint(0, this.scheduler.config.num_train_timesteps, [B], { generator: noise }).to({ device });
    const noisy = this.scheduler.addNoise(latents, eps, timesteps);
    const target = this.scheduler.trainingTarget(latents, eps, timesteps);
    const pred = this.trained.unet.forward(noisy, timesteps, context).float();
    if (this.subjectWeight === 1) return { loss: mseLoss(pred, target), terms: {} };
    const weights = subjectPixelWeights(batch, this.subjectWeight, latents.size(2)).to({ device });
    const squared = pred.sub(target).square();
    return { loss: pixelWeightedMean(squared, weights), terms: { plain: squared.mean().detach() } };
  }
}
