// Augmentation for judge training, so judges trained on clean renders still read a generated
// image: a mirror flip (with the labels), small changes of brightness and contrast, a blur of
// random strength and pixel noise, each drawn per image from a seeded generator.
import { full, rand, randn } from '../tensor/create.js';
import { cat, conv2d, pad, where } from '../tensor/functional.js';
import type { Generator } from '../tensor/generator.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

/** Which images of a batch of n to mirror: a bool [n, 1, 1, 1]. */
export function flipMask(n: number, generator: Generator): Tensor {
  return tidy(() => rand([n, 1, 1, 1], { generator }).lt(0.5));
}

/** Mirrors x [N, ..., W] left-right where mask [N, 1, 1(, 1)] is true. */
export function flipWhere(x: Tensor, mask: Tensor): Tensor {
  return tidy(() => {
    const m = mask.reshape(x.size(0), ...Array<number>(x.ndim - 1).fill(1));
    return where(m, x.flip(x.ndim - 1), x);
  });
}

/**
 * Photometric changes of images [N, C, H, W] in [0, 1]; only the first three (RGB) channels
 * change, so a mask channel passes through.
 */
export function jitterImages(x: Tensor, generator: Generator): Tensor {
  return tidy(() => {
    const n = x.size(0);
    const rgb = x.narrow(1, 0, 3);
    const draw = () => rand([n, 1, 1, 1], { generator });
    // Contrast ×[0.9, 1.1] about mid-grey, brightness ±0.04.
    let y = rgb.sub(0.5).mul(draw().mul(0.2).add(0.9)).add(0.5).add(draw().mul(0.08).sub(0.04));
    // A 3 × 3 box blur blended in by a random amount, in 40 % of the images.
    const kernel = full([3, 1, 3, 3], 1 / 9);
    const blurred = conv2d(pad(y, [1, 1, 1, 1], 'replicate'), kernel, null, { groups: 3 });
    const amount = draw().mul(draw().lt(0.4).float());
    y = y.add(blurred.sub(y).mul(amount));
    // Gaussian noise of σ up to 0.03.
    y = y.add(randn(y.shape, { generator }).mul(draw().mul(0.03))).clamp(0, 1);
    return x.size(1) === 3 ? y : cat([y, x.narrow(1, 3, x.size(1) - 3)], 1);
  });
}
