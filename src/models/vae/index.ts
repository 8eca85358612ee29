// Stable Diffusion's VAE: AutoencoderKL and its parts.
export * from './autoencoder-kl.js';
export * from './blocks.js';
export * from './config.js';
export * from './decoder.js';
export * from './encoder.js';
