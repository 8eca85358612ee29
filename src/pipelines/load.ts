// Opening a Stable Diffusion model from what a user has: a diffusers folder, or a single-file
// checkpoint (with a tokenizer from elsewhere, since such files have none).
import { existsSync, statSync } from 'node:fs';
import { extname } from 'node:path';
import { ClipTokenizer } from '../models/clip-tokenizer.js';
import { isDiffusersFolder, loadDiffusersFolder } from '../io/diffusers.js';
import { loadSingleFile } from '../io/single-file.js';
import { refusePickle } from '../io/weights.js';
import type { Device } from '../tensor/device.js';
import type { StableDiffusion } from './stable-diffusion.js';

export interface OpenModelOptions {
  device?: Device;
  /** For single-file checkpoints: a tokenizer folder (vocab.json + merges.txt) or CLIP's bpe_simple_vocab_16e6.txt.gz. */
  tokenizer?: string;
  /** Prefer weight files of this variant in a diffusers folder ('fp16'). */
  variant?: string;
}

export function openTokenizer(path: string): ClipTokenizer {
  if (!existsSync(path)) throw new Error(`tokenizer not found: ${path}`);
  return statSync(path).isDirectory() ? ClipTokenizer.fromFolder(path) : ClipTokenizer.fromBpeFile(path);
}

export function openStableDiffusion(path: string, options: OpenModelOptions = {}): StableDiffusion {
  if (!existsSync(path)) throw new Error(`model not found: ${path} (give a diffusers folder or a .safetensors checkpoint)`);
  if (isDiffusersFolder(path)) return loadDiffusersFolder(path, options);
  if (statSync(path).isDirectory()) throw new Error(`${path} is a folder without model_index.json: not a diffusers model folder`);
  refusePickle(path);
  if (extname(path) !== '.safetensors') throw new Error(`${path}: expected a diffusers folder or a .safetensors file`);
  const tokenizerPath = options.tokenizer ?? process.env.MOA_CLIP_TOKENIZER;
  if (!tokenizerPath) {
    throw new Error(
      `${path} is a single-file checkpoint, which holds no tokenizer: pass --tokenizer with a diffusers tokenizer/ folder ` +
        "or CLIP's bpe_simple_vocab_16e6.txt.gz (or set MOA_CLIP_TOKENIZER)",
    );
  }
  return loadSingleFile(path, { tokenizer: openTokenizer(tokenizerPath), device: options.device });
}
