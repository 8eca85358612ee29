// The diffusion timestep as the UNet sees it: a sinusoidal embedding (diffusers'
// get_timestep_embedding / Timesteps) and the two-layer MLP `time_embedding` on top of it.
import { type InitOptions } from '../../nn/init.js';
import { Linear } from '../../nn/linear.js';
import { Module } from '../../nn/module.js';
import { arange, full } from '../../tensor/create.js';
import { type Device } from '../../tensor/device.js';
import { cat, pad } from '../../tensor/functional.js';
import { tidy } from '../../tensor/scope.js';
import { Tensor } from '../../tensor/tensor.js';

export interface SinusoidalOptions {
  /** [cos, sin] instead of [sin, cos] (true for SD). */
  flipSinToCos?: boolean;
  /** Frequencies are exp(-ln(maxPeriod)·i / (half - shift)), i < half (SD: shift 0). */
  downscaleFreqShift?: number;
  scale?: number;
  maxPeriod?: number;
}

/**
 * timesteps [N] (any real dtype) → float32 [N, dim]: for i < half = ⌊dim/2⌋, angle_i = t ·
 * exp(-ln(maxPeriod)·i / (half - shift)); the halves are sin and cos of the angles; an odd dim
 * gets a zero column at the end. Computed in float32, as diffusers does.
 */
export function sinusoidalTimestepEmbedding(timesteps: Tensor, dim: number, options: SinusoidalOptions = {}): Tensor {
  const { flipSinToCos = false, downscaleFreqShift = 1, scale = 1, maxPeriod = 10000 } = options;
  if (timesteps.ndim !== 1) throw new RangeError(`timestep embedding takes a 1-D tensor of timesteps, not shape [${timesteps.shape.join(', ')}]`);
  const half = Math.floor(dim / 2);
  return tidy(() => {
    const exponent = arange(0, half, 1, { dtype: 'float32', device: timesteps.device })
      .mul(-Math.log(maxPeriod))
      .div(half - downscaleFreqShift);
    let angles = timesteps.float().unsqueeze(1).mul(exponent.exp().unsqueeze(0));
    if (scale !== 1) angles = angles.mul(scale);
    const [sin, cos] = [angles.sin(), angles.cos()];
    const emb = flipSinToCos ? cat([cos, sin], 1) : cat([sin, cos], 1);
    return dim % 2 === 1 ? pad(emb, [0, 1, 0, 0]) : emb;
  });
}

/**
 * The UNet's `timestep` argument as a float32 tensor [batch]: a number (every sample at that
 * timestep), or a tensor of int64 or floating timesteps with one element or `batch` elements.
 */
export function timestepsForBatch(timestep: number | Tensor, batch: number, device: Device = 'cpu'): Tensor {
  if (typeof timestep === 'number') {
    if (!Number.isFinite(timestep)) throw new RangeError(`timestep must be a finite number, not ${timestep}`);
    return full([batch], timestep, { dtype: 'float32', device });
  }
  if (!(timestep instanceof Tensor)) throw new TypeError('timestep must be a number or a Tensor');
  if (timestep.numel !== 1 && !(timestep.ndim === 1 && timestep.size(0) === batch)) {
    throw new RangeError(`timestep tensor must have one element or ${batch} (the batch), not shape [${timestep.shape.join(', ')}]`);
  }
  return tidy(() => {
    const t = timestep.float().reshape(-1);
    return (t.numel === batch ? t : t.expand(batch)).to({ device });
  });
}

/** diffusers' TimestepEmbedding: linear_1 → SiLU → linear_2. */
export class TimestepEmbedding extends Module {
  readonly linear_1: Linear;
  readonly linear_2: Linear;

  constructor(inChannels: number, timeEmbedDim: number, init: InitOptions = {}) {
    super();
    this.linear_1 = this.registerModule('linear_1', new Linear(inChannels, timeEmbedDim, init));
    this.linear_2 = this.registerModule('linear_2', new Linear(timeEmbedDim, timeEmbedDim, init));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => this.linear_2.forward(this.linear_1.forward(x).silu()));
  }
}
