// Shared by the training losses: the float type losses are computed in, and resizing maps and masks.
import { interpolate } from '../../tensor/functional.js';
import type { Tensor } from '../../tensor/tensor.js';

/**
 * Losses run in float32 at least: bf16/fp16 inputs (autocast training) are upcast, float64 stays
 * float64 (gradcheck). Always a new tensor, so callers may dispose it freely.
 */
export function lossFloat(t: Tensor): Tensor {
  return t.dtype === 'float64' || t.dtype === 'float32' ? t.to({}) : t.to('float32');
}

/**
 * Resizes [N, C, h, w] to [N, C, size] bilinearly (align_corners false, as diffusers), keeping
 * autograd. Downsampling is antialiased so a mask's value becomes the fraction of the area it
 * covers rather than a few sampled pixels.
 */
export function resize(x: Tensor, size: readonly [number, number]): Tensor {
  const [h, w] = [x.size(2), x.size(3)];
  if (h === size[0] && w === size[1]) return x.to({});
  return interpolate(x, { size, mode: 'bilinear', antialias: h > size[0] || w > size[1] });
}

/** A [B, 1, h, w] or [B, h, w] mask as [B, 1, h, w]. */
export function asMask4d(mask: Tensor, what: string): Tensor {
  if (mask.ndim === 3) return mask.unsqueeze(1);
  if (mask.ndim === 4 && mask.size(1) === 1) return mask.to({});
  throw new RangeError(`${what}: expected [B, 1, h, w] or [B, h, w], not [${mask.shape.join(', ')}]`);
}
