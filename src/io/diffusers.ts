// Stable Diffusion as a diffusers folder: model_index.json, and unet/, vae/, text_encoder/,
// tokenizer/, scheduler/ each with its config and weights (safetensors, optionally a variant
// such as `diffusion_pytorch_model.fp16.safetensors`).
import { existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { isIgnoredClipKey } from '../models/clip-encoder.js';
import { clipTextConfigFromJson } from '../models/clip-text.js';
import { ClipTokenizer } from '../models/clip-tokenizer.js';
import { buildStableDiffusion, disposeStableDiffusion, STANDARD_GUIDANCE, type StableDiffusion, type StableDiffusionConfigs } from '../pipelines/stable-diffusion.js';
import type { Device } from '../tensor/device.js';
import { tidy } from '../tensor/scope.js';
import { writeFileAtomically } from './atomic.js';
import { saveSafetensors } from './safetensors.js';
import { findComponentWeights, loadWeights, WeightSource } from './weights.js';

const COMPONENTS = ['unet', 'vae', 'text_encoder', 'tokenizer', 'scheduler'] as const;

/**
 * The model_index.json key for the model's own default guidance scale. Private keys (a leading
 * underscore) are ones diffusers ignores, so the folder still loads there.
 */
export const GUIDANCE_KEY = '_moa_guidance';

function readJson(path: string): Record<string, unknown> {
  if (!existsSync(path)) throw new Error(`${path} is missing`);
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new Error(`${path} is not valid JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new Error(`${path} must hold a JSON object`);
  return value as Record<string, unknown>;
}

export function isDiffusersFolder(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory() && existsSync(join(path, 'model_index.json'));
}

/** The folder's default guidance scale: model_index.json's `_moa_guidance`, else Stable Diffusion's 7.5. */
export function readDefaultGuidance(dir: string): number {
  const path = join(dir, 'model_index.json');
  const value = readJson(path)[GUIDANCE_KEY];
  if (value === undefined) return STANDARD_GUIDANCE;
  if (typeof value !== 'number' || !(value >= 0 && value <= 100)) {
    throw new Error(`${path}: ${GUIDANCE_KEY} must be a number from 0 to 100 (the default guidance scale), not ${JSON.stringify(value)}; fix it or remove the key to use ${STANDARD_GUIDANCE}`);
  }
  return value;
}

/** The configs of a diffusers folder, without reading any weights. */
export function readDiffusersConfigs(dir: string): StableDiffusionConfigs {
  if (!isDiffusersFolder(dir)) throw new Error(`${dir} is not a diffusers folder (no model_index.json)`);
  const index = readJson(join(dir, 'model_index.json'));
  const missing = COMPONENTS.filter((c) => !(c in index) && !existsSync(join(dir, c)));
  if (missing.length) throw new Error(`${dir}: model_index.json and the folder lack ${missing.join(', ')} (a Stable Diffusion folder has ${COMPONENTS.join(', ')})`);
  const textJson = join(dir, 'text_encoder', 'config.json');
  return {
    unet: readJson(join(dir, 'unet', 'config.json')),
    vae: readJson(join(dir, 'vae', 'config.json')),
    textEncoder: clipTextConfigFromJson(readJson(textJson), textJson),
    scheduler: readJson(join(dir, 'scheduler', 'scheduler_config.json')),
  };
}

export interface LoadOptions {
  device?: Device;
  /** Prefer weight files of this variant when present (diffusers' `fp16`). */
  variant?: string;
}

/** Loads a diffusers Stable Diffusion folder; every weight file is checked key by key and shape by shape. */
export function loadDiffusersFolder(dir: string, { device = 'cpu', variant }: LoadOptions = {}): StableDiffusion {
  const configs = readDiffusersConfigs(dir);
  const tokenizer = ClipTokenizer.fromFolder(join(dir, 'tokenizer'));
  const defaultGuidance = readDefaultGuidance(dir);
  const sd = buildStableDiffusion(configs, tokenizer, { empty: true, device }, dir);
  sd.defaultGuidance = defaultGuidance;
  try {
    loadWeights(sd.unet, WeightSource.open(findComponentWeights(join(dir, 'unet'), ['diffusion_pytorch_model'], variant)), { what: 'unet' });
    loadWeights(sd.vae, WeightSource.open(findComponentWeights(join(dir, 'vae'), ['diffusion_pytorch_model'], variant)), { what: 'vae' });
    loadWeights(sd.textEncoder, WeightSource.open(findComponentWeights(join(dir, 'text_encoder'), ['model'], variant)), {
      what: 'text_encoder',
      ignore: isIgnoredClipKey,
    });
  } catch (error) {
    disposeStableDiffusion(sd);
    throw error;
  }
  return sd;
}

function writeJson(path: string, value: unknown): void {
  writeFileAtomically(path, Buffer.from(JSON.stringify(value, null, 2) + '\n'));
}

/** Writes a model as a diffusers folder (float32 weights as they are held). */
export function saveDiffusersFolder(sd: StableDiffusion, dir: string): void {
  for (const c of COMPONENTS) mkdirSync(join(dir, c), { recursive: true });
  writeJson(join(dir, 'unet', 'config.json'), { _class_name: 'UNet2DConditionModel', ...sd.configs.unet });
  writeJson(join(dir, 'vae', 'config.json'), { _class_name: 'AutoencoderKL', ...sd.configs.vae });
  writeJson(join(dir, 'text_encoder', 'config.json'), { architectures: ['CLIPTextModel'], model_type: 'clip_text_model', ...sd.configs.textEncoder });
  writeJson(join(dir, 'scheduler', 'scheduler_config.json'), { _class_name: 'DDIMScheduler', ...sd.configs.scheduler });
  sd.tokenizer.save(join(dir, 'tokenizer'));
  tidy(() => {
    saveSafetensors(join(dir, 'unet', 'diffusion_pytorch_model.safetensors'), sd.unet.stateDict());
    saveSafetensors(join(dir, 'vae', 'diffusion_pytorch_model.safetensors'), sd.vae.stateDict());
    saveSafetensors(join(dir, 'text_encoder', 'model.safetensors'), sd.textEncoder.stateDict());
  });
  // Written last: a folder without it is not mistaken for a complete model.
  writeJson(join(dir, 'model_index.json'), {
    _class_name: 'StableDiffusionPipeline',
    scheduler: ['diffusers', 'DDIMScheduler'],
    text_encoder: ['transformers', 'CLIPTextModel'],
    tokenizer: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'],
    vae: ['diffusers', 'AutoencoderKL'],
    safety_checker: [null, null],
    feature_extractor: [null, null],
    requires_safety_checker: false,
    ...(sd.defaultGuidance === STANDARD_GUIDANCE ? {} : { [GUIDANCE_KEY]: sd.defaultGuidance }),
  });
}
