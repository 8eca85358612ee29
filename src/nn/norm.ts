// Normalisation layers: GroupNorm over channel groups, LayerNorm over the trailing dimensions.
// Affine weight starts at 1 and bias at 0, as PyTorch's.
import { full } from '../tensor/create.js';
import { groupNorm, layerNorm } from '../tensor/functional.js';
import { type Tensor } from '../tensor/tensor.js';
import { type InitOptions } from './init.js';
import { Module } from './module.js';

const filled = (shape: readonly number[], value: number, { dtype, device }: InitOptions) => full(shape, value, { dtype: dtype ?? 'float32', device: device ?? 'cpu' });

export interface GroupNormOptions extends Pick<InitOptions, 'dtype' | 'device'> {
  eps?: number;
  affine?: boolean;
}

export class GroupNorm extends Module {
  readonly numGroups: number;
  readonly numChannels: number;
  readonly eps: number;

  constructor(numGroups: number, numChannels: number, { eps = 1e-5, affine = true, ...place }: GroupNormOptions = {}) {
    super();
    if (!Number.isInteger(numGroups) || numGroups < 1 || numChannels % numGroups !== 0) {
      throw new RangeError(`GroupNorm: num_groups (${numGroups}) must divide num_channels (${numChannels})`);
    }
    this.numGroups = numGroups;
    this.numChannels = numChannels;
    this.eps = eps;
    this.registerParameter('weight', affine ? filled([numChannels], 1, place) : null);
    this.registerParameter('bias', affine ? filled([numChannels], 0, place) : null);
  }

  get weight(): Tensor | null {
    return this.getParameter('weight');
  }
  get bias(): Tensor | null {
    return this.getParameter('bias');
  }

  forward(x: Tensor): Tensor {
    return groupNorm(x, this.numGroups, this.weight, this.bias, this.eps);
  }
}

export interface LayerNormOptions extends Pick<InitOptions, 'dtype' | 'device'> {
  eps?: number;
  elementwiseAffine?: boolean;
  /** With elementwiseAffine, whether there is a bias too (PyTorch ≥ 2.1's `bias`). */
  bias?: boolean;
}

export class LayerNorm extends Module {
  readonly normalizedShape: readonly number[];
  readonly eps: number;

  constructor(normalizedShape: number | readonly number[], { eps = 1e-5, elementwiseAffine = true, bias = true, ...place }: LayerNormOptions = {}) {
    super();
    this.normalizedShape = Object.freeze(typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape]);
    this.eps = eps;
    this.registerParameter('weight', elementwiseAffine ? filled(this.normalizedShape, 1, place) : null);
    this.registerParameter('bias', elementwiseAffine && bias ? filled(this.normalizedShape, 0, place) : null);
  }

  get weight(): Tensor | null {
    return this.getParameter('weight');
  }
  get bias(): Tensor | null {
    return this.getParameter('bias');
  }

  forward(x: Tensor): Tensor {
    return layerNorm(x, this.normalizedShape, this.weight, this.bias, this.eps);
  }
}
