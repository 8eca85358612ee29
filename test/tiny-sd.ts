// A tiny Stable Diffusion for tests: SD1.5's architecture with small widths, the real CLIP vocabulary.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClipTokenizer } from '../src/models/clip-tokenizer.js';
import { SD15_TEXT_CONFIG } from '../src/models/clip-text.js';
import type { CLIPVisionConfig } from '../src/models/clip-vision.js';
import { buildStableDiffusion, SD15_CONFIGS, type StableDiffusion, type StableDiffusionConfigs } from '../src/pipelines/stable-diffusion.js';
import { Generator } from '../src/tensor/index.js';

/** The repository root, from dist/test or test/. */
export const REPO_ROOT = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) dir = dirname(dir);
  return dir;
})();

/** The real CLIP BPE vocabulary, beside the repository in shared/. */
export const CLIP_VOCAB = join(REPO_ROOT, '..', 'shared', 'clip', 'bpe_simple_vocab_16e6.txt.gz');

export const TINY_CONFIGS: StableDiffusionConfigs = {
  unet: {
    sample_size: 8,
    in_channels: 4,
    out_channels: 4,
    block_out_channels: [32, 64],
    down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
    up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
    layers_per_block: 1,
    cross_attention_dim: 32,
    attention_head_dim: 2,
    norm_num_groups: 8,
  },
  vae: {
    in_channels: 3,
    out_channels: 3,
    block_out_channels: [16, 32],
    down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
    up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
    layers_per_block: 1,
    latent_channels: 4,
    norm_num_groups: 8,
    sample_size: 16,
  },
  textEncoder: { ...SD15_TEXT_CONFIG, hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 2 },
  scheduler: SD15_CONFIGS.scheduler,
};

let tokenizer: ClipTokenizer | undefined;
export function clipTokenizer(): ClipTokenizer {
  return (tokenizer ??= ClipTokenizer.fromBpeFile(CLIP_VOCAB));
}

/** A tiny model with seeded random weights. */
export function tinyStableDiffusion(seed = 0): StableDiffusion {
  return buildStableDiffusion(TINY_CONFIGS, clipTokenizer(), { generator: new Generator(seed) });
}

/** A tiny CLIP vision tower (28 px images, 16-d embeddings). */
export const TINY_VISION_CONFIG: CLIPVisionConfig = {
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  num_channels: 3,
  image_size: 28,
  patch_size: 7,
  projection_dim: 16,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
};
