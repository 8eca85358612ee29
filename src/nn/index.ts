// Network building blocks with PyTorch's parameter names (as torch.nn).
export { type Layer, ModuleList, Sequential } from './containers.js';
export { Conv2d, type Conv2dLayerOptions } from './conv.js';
export { Dropout } from './dropout.js';
export { Embedding } from './embedding.js';
export { defaultInitGenerator, fanInBound, type InitOptions, normalInit, seedDefaultInit, uniformInit } from './init.js';
export { Linear, type LinearOptions } from './linear.js';
export { type BufferOptions, type LoadOptions, type LoadResult, Module, type ShapeMismatch, StateDictError } from './module.js';
export { GroupNorm, type GroupNormOptions, LayerNorm, type LayerNormOptions } from './norm.js';
