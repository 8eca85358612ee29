// A subject's crop for the attribute recogniser: a square around its box (background kept, so
// the scene's light is there to read colours against), the subject's mask as a fourth channel,
// resized to the net's crop size.
import { tensor } from '../tensor/create.js';
import { cat, interpolate, pad } from '../tensor/functional.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

export type Box = [number, number, number, number];

/** Where a crop sits relative to the box: a shift of its centre (fractions of its side) and a scale. */
export interface CropJitter {
  dy: number;
  dx: number;
  scale: number;
}

/** Margin around a box: the square's side is this times the box's longer side, plus 2 pixels. */
const MARGIN = 1.15;

/**
 * image [3, H, W] in [0, 1], mask (1 = the subject, row-major H × W), box [h1, w1, h2, w2] →
 * [4, S, S]: RGB and mask of a square around the box, zero outside the image.
 */
export function subjectCrop(image: Tensor, mask: ArrayLike<number>, box: Box, cropSize: number, jitter: CropJitter = { dy: 0, dx: 0, scale: 1 }): Tensor {
  const [, height, width] = image.shape as [number, number, number];
  if (image.ndim !== 3 || image.size(0) !== 3) throw new RangeError(`subjectCrop: image is [3, H, W], not [${image.shape.join(', ')}]`);
  if (mask.length !== height * width) throw new RangeError(`subjectCrop: mask has ${mask.length} values for a ${height} × ${width} image`);
  const [h1, w1, h2, w2] = box;
  if (!(h2 > h1 && w2 > w1)) throw new RangeError(`subjectCrop: empty box [${box.join(', ')}]`);
  const side = Math.max(4, Math.round((Math.max(h2 - h1, w2 - w1) * MARGIN + 2) * jitter.scale));
  const y0 = Math.round((h1 + h2) / 2 + jitter.dy * side - side / 2);
  const x0 = Math.round((w1 + w2) / 2 + jitter.dx * side - side / 2);
  return tidy(() => {
    const m = tensor(Float32Array.from(mask), { shape: [1, height, width] });
    const both = cat([image.float(), m], 0).unsqueeze(0);
    const [top, left] = [Math.max(0, -y0), Math.max(0, -x0)];
    const [bottom, right] = [Math.max(0, y0 + side - height), Math.max(0, x0 + side - width)];
    const padded = top || left || bottom || right ? pad(both, [left, right, top, bottom]) : both;
    const window = padded.narrow(2, y0 + top, side).narrow(3, x0 + left, side);
    return interpolate(window, { size: [cropSize, cropSize], mode: 'bilinear', antialias: side > cropSize }).clamp(0, 1).squeeze(0);
  });
}
