// Mixture-of-Attention on a Stable Diffusion UNet: the MoA layer, router, fusion MLP, subject
// embeddings and the weights format. See MOA_SPEC.md and docs/moa.md.
export * from './config.js';
export * from './conditioning.js';
export * from './fusion.js';
export * from './moa-attention.js';
export * from './moa.js';
export * from './router.js';
export * from './subject-encoder.js';
export type * from './types.js';
export * from './weights.js';
