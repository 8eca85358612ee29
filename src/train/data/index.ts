// Training data: FastComposer's FFHQ-wild layout, augmentation, and the batch loader.
export * from './augment.js';
export * from './ffhq-wild.js';
export * from './loader.js';
export * from './npy.js';
export * from './rng.js';
export * from './segmap.js';
