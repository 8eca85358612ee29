// A Stable Diffusion 1.x model: tokenizer, text encoder, UNet, VAE and the scheduler settings it
// was trained with, built from configs (the same code for a tiny test model and for SD1.5).
import type { InitOptions } from '../nn/init.js';
import { CLIPTextModel, type CLIPTextConfig, SD15_TEXT_CONFIG } from '../models/clip-text.js';
import type { ClipTokenizer } from '../models/clip-tokenizer.js';
import { SD15_UNET_CONFIG_JSON } from '../models/unet/config.js';
import { UNet2DConditionModel } from '../models/unet/unet.js';
import { AutoencoderKL } from '../models/vae/autoencoder-kl.js';
import { SD15_VAE_CONFIG_JSON } from '../models/vae/config.js';
import { parseSchedulerConfig, SD15_SCHEDULER_CONFIG, type SchedulerConfig } from '../schedulers/index.js';
import type { Device } from '../tensor/device.js';

export interface StableDiffusion {
  tokenizer: ClipTokenizer;
  textEncoder: CLIPTextModel;
  unet: UNet2DConditionModel;
  vae: AutoencoderKL;
  /** The training noise schedule (betas, steps, prediction type); samplers are built from it. */
  schedulerConfig: SchedulerConfig;
  /** The configs it was built from, as diffusers writes them (saved with the weights). */
  configs: StableDiffusionConfigs;
  /** Where the weights came from (a folder, a file, or 'random'). */
  source: string;
  device: Device;
  /** The guidance scale generation uses when the caller gives none (a model trained small may want less than SD's 7.5). */
  defaultGuidance: number;
}

/** Stable Diffusion's usual guidance scale: the default of a model that names none. */
export const STANDARD_GUIDANCE = 7.5;

/** The diffusers-style configs of the four networks. */
export interface StableDiffusionConfigs {
  unet: Record<string, unknown>;
  vae: Record<string, unknown>;
  textEncoder: CLIPTextConfig;
  scheduler: Record<string, unknown>;
}

export const SD15_CONFIGS: StableDiffusionConfigs = {
  unet: SD15_UNET_CONFIG_JSON as unknown as Record<string, unknown>,
  vae: SD15_VAE_CONFIG_JSON as unknown as Record<string, unknown>,
  textEncoder: SD15_TEXT_CONFIG,
  scheduler: SD15_SCHEDULER_CONFIG as unknown as Record<string, unknown>,
};

/** Builds the networks of a config (random weights, or uninitialised with init.empty). */
export function buildStableDiffusion(configs: StableDiffusionConfigs, tokenizer: ClipTokenizer, init: InitOptions = {}, source = 'random'): StableDiffusion {
  return {
    tokenizer,
    textEncoder: new CLIPTextModel(configs.textEncoder, init),
    unet: new UNet2DConditionModel(configs.unet, init),
    vae: new AutoencoderKL(configs.vae, init),
    schedulerConfig: parseSchedulerConfig(configs.scheduler),
    configs,
    source,
    device: init.device ?? 'cpu',
    defaultGuidance: STANDARD_GUIDANCE,
  };
}

export function disposeStableDiffusion(sd: StableDiffusion): void {
  sd.textEncoder.dispose();
  sd.unet.dispose();
  sd.vae.dispose();
}
