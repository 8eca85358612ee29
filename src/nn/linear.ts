// Linear: y = x Wᵀ + b, with PyTorch's `weight` [out, in] and `bias` [out].
import { linear } from '../tensor/functional.js';
import { type Tensor } from '../tensor/tensor.js';
import { fanInBound, type InitOptions, uniformInit } from './init.js';
import { Module } from './module.js';

export interface LinearOptions extends InitOptions {
  bias?: boolean;
}

export class Linear extends Module {
  readonly inFeatures: number;
  readonly outFeatures: number;

  /** Weight and bias start uniform on ±1/sqrt(inFeatures), as PyTorch's. */
  constructor(inFeatures: number, outFeatures: number, { bias = true, ...init }: LinearOptions = {}) {
    super();
    this.inFeatures = inFeatures;
    this.outFeatures = outFeatures;
    const bound = fanInBound(inFeatures);
    this.registerParameter('weight', uniformInit([outFeatures, inFeatures], bound, init));
    this.registerParameter('bias', bias ? uniformInit([outFeatures], bound, init) : null);
  }

  get weight(): Tensor {
    return this.param('weight');
  }
  get bias(): Tensor | null {
    return this.getParameter('bias');
  }

  forward(x: Tensor): Tensor {
    return linear(x, this.weight, this.bias);
  }
}
