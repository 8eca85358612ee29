// Stable Diffusion's UNet: UNet2DConditionModel and its parts.
export * from './blocks.js';
export * from './config.js';
export * from './embeddings.js';
export * from './transformer.js';
export * from './unet.js';
export {
  Attention,
  type AttentionCallContext,
  type AttentionExtras,
  type AttentionLayer,
  type AttentionOptions,
  attend,
} from '../layers/attention.js';
