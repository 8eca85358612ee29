// Stable Diffusion 1.x as one file in the original layout (`model.diffusion_model.*`,
// `first_stage_model.*`, `cond_stage_model.transformer.*`), mapped onto the same modules as a
// diffusers folder. Such files carry no configs and no tokenizer: SD1.5's configs are assumed
// unless others are given, and the tokenizer comes from elsewhere.
import { isIgnoredClipKey } from '../models/clip-encoder.js';
import type { ClipTokenizer } from '../models/clip-tokenizer.js';
import type { UNet2DConditionModel } from '../models/unet/unet.js';
import type { AutoencoderKL } from '../models/vae/autoencoder-kl.js';
import { buildStableDiffusion, disposeStableDiffusion, SD15_CONFIGS, type StableDiffusion, type StableDiffusionConfigs } from '../pipelines/stable-diffusion.js';
import type { Device } from '../tensor/device.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { saveSafetensors } from './safetensors.js';
import {
  isVaeAttentionProjection,
  TEXT_PREFIX,
  textKeyFromOriginal,
  UNET_PREFIX,
  type UNetLayout,
  unetKeyToOriginal,
  VAE_PREFIX,
  vaeKeyToOriginal,
  type VaeLayout,
} from './sd-keys.js';
import { loadWeights, WeightSource } from './weights.js';

export function unetLayout(unet: UNet2DConditionModel): UNetLayout {
  const c = unet.config;
  const layers = new Set(c.layersPerBlock);
  if (layers.size !== 1) throw new Error('a single-file checkpoint needs the same layers_per_block in every UNet block');
  return {
    layersPerBlock: c.layersPerBlock[0]!,
    downHasAttention: c.downBlockTypes.map((t) => t === 'CrossAttnDownBlock2D'),
    upHasAttention: c.upBlockTypes.map((t) => t === 'CrossAttnUpBlock2D'),
  };
}

export function vaeLayout(vae: AutoencoderKL): VaeLayout {
  return { levels: vae.config.blockOutChannels.length };
}

function mapped(key: string, map: (k: string) => string | null, what: string): string {
  const to = map(key);
  if (to === null) throw new Error(`no original-layout name for ${what} key '${key}'`);
  return to;
}

export interface SingleFileOptions {
  tokenizer: ClipTokenizer;
  configs?: StableDiffusionConfigs;
  device?: Device;
}

/** Loads a single-file SD1.x checkpoint (safetensors), checking every key and shape. */
export function loadSingleFile(path: string, { tokenizer, configs = SD15_CONFIGS, device = 'cpu' }: SingleFileOptions): StableDiffusion {
  const source = WeightSource.open(path);
  if (!source.keys().some((k) => k.startsWith(UNET_PREFIX))) {
    throw new Error(`${path} is not a single-file Stable Diffusion checkpoint (no ${UNET_PREFIX}* keys)`);
  }
  const sd = buildStableDiffusion(configs, tokenizer, { empty: true, device }, path);
  try {
    const unet = unetLayout(sd.unet);
    loadWeights(sd.unet, source, {
      what: 'unet',
      sourceKey: (k) => UNET_PREFIX + mapped(k, (x) => unetKeyToOriginal(x, unet), 'UNet'),
      owns: (k) => k.startsWith(UNET_PREFIX),
    });
    const vae = vaeLayout(sd.vae);
    loadWeights(sd.vae, source, {
      what: 'vae',
      sourceKey: (k) => VAE_PREFIX + mapped(k, (x) => vaeKeyToOriginal(x, vae), 'VAE'),
      owns: (k) => k.startsWith(VAE_PREFIX),
      // The original's attention projections are 1×1 convolutions: [C, C, 1, 1] → [C, C].
      adapt: (k, t, shape) => {
        if (!isVaeAttentionProjection(k)) throw new Error(`vae: '${k}' has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`);
        return t.reshape(...shape);
      },
    });
    // Some checkpoints leave out the `text_model.` level of the text encoder's keys.
    const nested = source.has(`${TEXT_PREFIX}text_model.embeddings.token_embedding.weight`);
    loadWeights(sd.textEncoder, source, {
      what: 'text_encoder',
      sourceKey: (k) => TEXT_PREFIX + (nested ? k : k.replace(/^text_model\./, '')),
      owns: (k) => k.startsWith(TEXT_PREFIX),
      ignore: (k) => isIgnoredClipKey(textKeyFromOriginal(k.slice(TEXT_PREFIX.length))),
    });
  } catch (error) {
    disposeStableDiffusion(sd);
    throw error;
  }
  return sd;
}

/** Writes a model as one safetensors file in the original layout. */
export function saveSingleFile(sd: StableDiffusion, path: string): void {
  tidy(() => {
    const out: Record<string, Tensor> = {};
    const unet = unetLayout(sd.unet);
    for (const [k, t] of Object.entries(sd.unet.stateDict())) out[UNET_PREFIX + mapped(k, (x) => unetKeyToOriginal(x, unet), 'UNet')] = t;
    const vae = vaeLayout(sd.vae);
    for (const [k, t] of Object.entries(sd.vae.stateDict())) {
      out[VAE_PREFIX + mapped(k, (x) => vaeKeyToOriginal(x, vae), 'VAE')] = isVaeAttentionProjection(k) ? t.reshape(...t.shape, 1, 1) : t;
    }
    for (const [k, t] of Object.entries(sd.textEncoder.stateDict())) out[TEXT_PREFIX + k] = t;
    saveSafetensors(path, out, { format: 'pt' });
  });
}
