// Conv2d over [N, C, H, W], with PyTorch's `weight` [out, in/groups, kh, kw] and `bias` [out].
import { conv2d } from '../tensor/functional.js';
import { type Tensor } from '../tensor/tensor.js';
import { fanInBound, type InitOptions, uniformInit } from './init.js';
import { Module } from './module.js';

type Pair = number | readonly [number, number];
const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

export interface Conv2dLayerOptions extends InitOptions {
  stride?: Pair;
  padding?: Pair;
  dilation?: Pair;
  groups?: number;
  bias?: boolean;
}

export class Conv2d extends Module {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly kernelSize: [number, number];
  readonly stride: [number, number];
  readonly padding: [number, number];
  readonly dilation: [number, number];
  readonly groups: number;

  /** Weight and bias start uniform on ±1/sqrt(fan_in), fan_in = in/groups·kh·kw, as PyTorch's. */
  constructor(
    inChannels: number,
    outChannels: number,
    kernelSize: Pair,
    { stride = 1, padding = 0, dilation = 1, groups = 1, bias = true, ...init }: Conv2dLayerOptions = {},
  ) {
    super();
    if (!Number.isInteger(groups) || groups < 1 || inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new RangeError(`Conv2d: groups (${groups}) must divide in_channels (${inChannels}) and out_channels (${outChannels})`);
    }
    this.inChannels = inChannels;
    this.outChannels = outChannels;
    this.kernelSize = pair(kernelSize);
    this.stride = pair(stride);
    this.padding = pair(padding);
    this.dilation = pair(dilation);
    this.groups = groups;
    const [kh, kw] = this.kernelSize;
    const bound = fanInBound((inChannels / groups) * kh * kw);
    this.registerParameter('weight', uniformInit([outChannels, inChannels / groups, kh, kw], bound, init));
    this.registerParameter('bias', bias ? uniformInit([outChannels], bound, init) : null);
  }

  get weight(): Tensor {
    return this.param('weight');
  }
  get bias(): Tensor | null {
    return this.getParameter('bias');
  }

  forward(x: Tensor): Tensor {
    return conv2d(x, this.weight, this.bias, { stride: this.stride, padding: this.padding, dilation: this.dilation, groups: this.groups });
  }
}
