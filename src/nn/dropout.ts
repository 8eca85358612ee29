// Dropout: in training, zeroes elements with probability p and scales the rest by 1/(1-p);
// in eval mode, the identity. Draws from libtorch's default generator (seed it with manualSeed).
import { dropout } from '../tensor/functional.js';
import { type Tensor } from '../tensor/tensor.js';
import { Module } from './module.js';

export class Dropout extends Module {
  readonly p: number;

  constructor(p = 0.5) {
    super();
    if (!(p >= 0 && p < 1)) throw new RangeError(`dropout probability must be in [0, 1), not ${p}`);
    this.p = p;
  }

  forward(x: Tensor): Tensor {
    return dropout(x, this.p, this.training);
  }
}
