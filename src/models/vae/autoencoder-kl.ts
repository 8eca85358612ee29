// AutoencoderKL (diffusers): images ↔ latents. encode() gives a diagonal Gaussian over latents;
// decode() maps latents back. The UNet works on latents × scalingFactor.
import { Conv2d } from '../../nn/conv.js';
import { type InitOptions } from '../../nn/init.js';
import { Module } from '../../nn/module.js';
import { randn } from '../../tensor/create.js';
import { type Generator } from '../../tensor/generator.js';
import { tidy } from '../../tensor/scope.js';
import { type Tensor } from '../../tensor/tensor.js';
import { parseVaeConfig, type VaeConfig } from './config.js';
import { Decoder } from './decoder.js';
import { Encoder } from './encoder.js';

/**
 * The encoder's posterior: moments [B, 2·latent, h, w] split into mean and log-variance
 * (clamped to [-30, 20], as diffusers). Its tensors are ordinary tensors of the scope that
 * made it (an enclosing tidy() frees them; tidy does not look inside class instances).
 */
export class DiagonalGaussian {
  readonly mean: Tensor;
  readonly logvar: Tensor;
  readonly std: Tensor;

  constructor(moments: Tensor) {
    const [mean, logvar, std] = tidy(() => {
      const [m, lv] = moments.chunk(2, 1) as [Tensor, Tensor];
      const clamped = lv.clamp(-30, 20);
      return [m.contiguous(), clamped, clamped.mul(0.5).exp()];
    });
    this.mean = mean;
    this.logvar = logvar;
    this.std = std;
  }

  /** mean + std · ε, ε ~ N(0, 1) drawn from `generator` (the same seed gives the same sample). */
  sample(generator: Generator): Tensor {
    return tidy(() => {
      const eps = randn(this.mean.shape, { generator, dtype: this.mean.dtype, device: this.mean.device });
      return this.mean.add(this.std.mul(eps));
    });
  }

  /** The most likely latent: the mean (a new handle on it). */
  mode(): Tensor {
    return this.mean.to({});
  }

  dispose(): void {
    this.mean.dispose();
    this.logvar.dispose();
    this.std.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

export class AutoencoderKL extends Module {
  readonly config: Readonly<VaeConfig>;
  readonly encoder: Encoder;
  readonly decoder: Decoder;
  readonly quant_conv: Conv2d | null;
  readonly post_quant_conv: Conv2d | null;

  /** config: a parsed VaeConfig or a diffusers config.json object. */
  constructor(config: VaeConfig | Record<string, unknown>, init: InitOptions = {}) {
    super();
    const c = (this.config = 'blockOutChannels' in config ? (config as VaeConfig) : parseVaeConfig(config));
    const z = c.latentChannels;
    this.encoder = this.registerModule('encoder', new Encoder(c, init));
    this.decoder = this.registerModule('decoder', new Decoder(c, init));
    this.quant_conv = c.useQuantConv ? this.registerModule('quant_conv', new Conv2d(2 * z, 2 * z, 1, init)) : null;
    this.post_quant_conv = c.usePostQuantConv ? this.registerModule('post_quant_conv', new Conv2d(z, z, 1, init)) : null;
  }

  /** Image pixels per latent cell along each side (8 for SD1.5's VAE). */
  get scaleFactor(): number {
    return 2 ** (this.config.blockOutChannels.length - 1);
  }

  get scalingFactor(): number {
    return this.config.scalingFactor;
  }

  /** Images [B, in, H, W] in [-1, 1] → the posterior over (unscaled) latents [B, latent, H/f, W/f]. */
  encode(x: Tensor): DiagonalGaussian {
    this.#check('encode', x, this.config.inChannels);
    const moments = tidy(() => {
      const h = this.encoder.forward(this.#cast(x));
      return this.quant_conv ? this.quant_conv.forward(h) : h;
    });
    try {
      return new DiagonalGaussian(moments);
    } finally {
      moments.dispose();
    }
  }

  /** (Unscaled) latents [B, latent, h, w] → images [B, out, h·f, w·f], roughly in [-1, 1]. */
  decode(z: Tensor): Tensor {
    this.#check('decode', z, this.config.latentChannels);
    return tidy(() => {
      const h = this.post_quant_conv ? this.post_quant_conv.forward(this.#cast(z)) : this.#cast(z);
      const out = this.decoder.forward(h);
      return out.isContiguous() ? out : out.contiguous();
    });
  }

  /** Images [B, in, H, W] in [-1, 1] → their reconstruction through the posterior mean: what the VAE keeps of them. */
  reconstruct(x: Tensor): Tensor {
    const posterior = this.encode(x);
    try {
      return this.decode(posterior.mean);
    } finally {
      posterior.dispose();
    }
  }

  #check(what: string, x: Tensor, channels: number): void {
    if (x.ndim !== 4 || x.size(1) !== channels) throw new RangeError(`VAE ${what}: expected [B, ${channels}, H, W], got [${x.shape.join(', ')}]`);
  }

  /** Inputs in the model's dtype (a bfloat16 model takes float32 images). */
  #cast(x: Tensor): Tensor {
    const dtype = this.encoder.conv_in.weight.dtype;
    return x.dtype === dtype ? x : x.to(dtype);
  }
}
