// Pretraining a small text-to-image model from scratch (VAE, image encoder, text encoder + UNet).
export * from './config.js';
export * from './model-configs.js';
export * from './model-folder.js';
export * from './pretrain.js';
export * from './runner.js';
export * from './subject-pairs.js';
export * from './tokenizer.js';
export { ContrastiveHead, ImageEncoderTask, infoNce } from './image-encoder-stage.js';
export { BaseTask } from './base-stage.js';
export { imageLoader, measureScalingFactor, VaeTask } from './vae-stage.js';
