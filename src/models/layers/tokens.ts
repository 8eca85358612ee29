// Between feature maps [B, C, H, W] and token sequences [B, H·W, C] (row-major positions).
// On channels-last maps both directions are free views; on contiguous maps each is one copy.
import { type Tensor } from '../../tensor/tensor.js';

/** Whether x is laid out channels-last (and not trivially both, as a 1×1 map is). */
export function isChannelsLast(x: Tensor): boolean {
  return x.isContiguous('channels_last') && !x.isContiguous();
}

/** [B, C, H, W] → [B, H·W, C]. */
export function toTokens(x: Tensor): Tensor {
  const [b, c, h, w] = x.shape as [number, number, number, number];
  return x.permute(0, 2, 3, 1).reshape(b, h * w, c);
}

/** [B, H·W, C] → [B, C, H, W], channels-last when `like` is, else contiguous. */
export function fromTokens(t: Tensor, h: number, w: number, like: Tensor): Tensor {
  const [b, , c] = t.shape as [number, number, number];
  const map = t.reshape(b, h, w, c).permute(0, 3, 1, 2); // a channels-last view
  return isChannelsLast(like) ? map : map.contiguous();
}
