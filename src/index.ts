// moa: personalized image generation with Mixture-of-Attention, in TypeScript over libtorch.
export * from './tensor/index.js';
export * as nn from './nn/index.js';
export * from './io/safetensors.js';
