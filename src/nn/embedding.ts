// Embedding: a lookup table `weight` [num, dim] indexed by integer tensors.
import { embedding } from '../tensor/functional.js';
import { type Tensor } from '../tensor/tensor.js';
import { type InitOptions, normalInit } from './init.js';
import { Module } from './module.js';

export class Embedding extends Module {
  readonly numEmbeddings: number;
  readonly embeddingDim: number;

  /** The table starts standard normal, as PyTorch's. */
  constructor(numEmbeddings: number, embeddingDim: number, init: InitOptions = {}) {
    super();
    this.numEmbeddings = numEmbeddings;
    this.embeddingDim = embeddingDim;
    this.registerParameter('weight', normalInit([numEmbeddings, embeddingDim], 1, init));
  }

  get weight(): Tensor {
    return this.param('weight');
  }

  /** Rows of the table for int64 (or int32) indices of any shape; the result adds a last dimension. */
  forward(indices: Tensor): Tensor {
    return embedding(this.weight, indices);
  }
}
