// Opening what personalized generation needs beside a Stable Diffusion model: a CLIP image
// encoder folder (config.json + model.safetensors) and a MoA weights file, installed on the UNet.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { findComponentWeights, loadWeights, WeightSource } from '../io/weights.js';
import { isIgnoredClipKey } from '../models/clip-encoder.js';
import { CLIPVisionModelWithProjection } from '../models/clip-vision.js';
import { MoA } from '../moa/moa.js';
import { loadMoAWeights, readMoAWeightsInfo } from '../moa/weights.js';
import type { Device } from '../tensor/device.js';
import type { StableDiffusion } from './stable-diffusion.js';

/** A CLIP vision folder (a diffusers image_encoder/ or a transformers CLIPVisionModelWithProjection). */
export function openImageEncoder(dir: string, { device = 'cpu', variant }: { device?: Device; variant?: string } = {}): CLIPVisionModelWithProjection {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`image encoder not found: ${dir} (give a folder with config.json and model.safetensors)`);
  const configPath = join(dir, 'config.json');
  if (!existsSync(configPath)) throw new Error(`${dir} has no config.json: not a CLIP vision model folder`);
  const model = CLIPVisionModelWithProjection.fromConfigJson(readFileSync(configPath, 'utf8'), { empty: true, device }, configPath);
  try {
    loadWeights(model, WeightSource.open(findComponentWeights(dir, ['model'], variant)), { what: 'image encoder', ignore: isIgnoredClipKey });
  } catch (error) {
    model.dispose();
    throw error;
  }
  return model;
}

/** The image encoder folder that goes with a model: `<model>/image_encoder` when it has one. */
export function defaultImageEncoderDir(modelPath: string): string | null {
  const dir = join(modelPath, 'image_encoder');
  return existsSync(join(dir, 'config.json')) ? dir : null;
}

/**
 * Installs MoA on `sd.unet` with the weights file's config and loads its tensors. The image
 * encoder is needed when the file trained its last layers (then they load into it too).
 */
export function openMoA(sd: StableDiffusion, path: string, { imageEncoder = null }: { imageEncoder?: CLIPVisionModelWithProjection | null } = {}): MoA {
  if (!existsSync(path)) throw new Error(`MoA weights not found: ${path}`);
  const info = readMoAWeightsInfo(path);
  if (info.config.trainImageEncoderLayers > 0 && !imageEncoder) {
    throw new Error(`${path} holds fine-tuned image-encoder layers: give the CLIP image encoder they belong to (--image-encoder)`);
  }
  const moa = new MoA(sd.unet, info.config, { imageEncoder, empty: true, device: sd.device });
  try {
    loadMoAWeights(path, moa);
  } catch (error) {
    moa.dispose();
    throw error;
  }
  return moa;
}
