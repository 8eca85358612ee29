// Heatmaps over images: a map in [0, 1] is resized to the image (bilinear), coloured with a
// perceptual blue → green → yellow scale and alpha-blended over the image, then written as PNG.
import { tensor } from '../tensor/create.js';
import { interpolate, stack } from '../tensor/functional.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { writePng } from './image.js';

/**
 * Five evenly spaced stops of a viridis-like scale (dark blue, blue, teal, green, yellow) in
 * [0, 1] RGB; between stops the colour is linear. Lightness rises monotonically, so the scale
 * reads correctly in grey and for most colour-blind viewers.
 */
export const HEATMAP_STOPS: readonly (readonly [number, number, number])[] = Object.freeze([
  [0.267, 0.005, 0.329],
  [0.231, 0.322, 0.545],
  [0.129, 0.569, 0.549],
  [0.369, 0.788, 0.384],
  [0.993, 0.906, 0.144],
]);

export interface HeatmapOptions {
  /** Weight of the colour over the image, in [0, 1]. Default 0.5. */
  alpha?: number;
}

/** The colour of one value (clamped to [0, 1]), as the tensor path computes it. */
export function heatmapColor(value: number): [number, number, number] {
  const n = HEATMAP_STOPS.length - 1;
  const x = Math.min(Math.max(value, 0), 1) * n;
  const k = Math.min(Math.floor(x), n - 1);
  const f = x - k;
  const [a, b] = [HEATMAP_STOPS[k]!, HEATMAP_STOPS[k + 1]!];
  return [0, 1, 2].map((c) => a[c]! + (b[c]! - a[c]!) * f) as [number, number, number];
}

/**
 * Values [H, W] → colours [3, H, W]. Piecewise linear as a sum of clamped ramps:
 * colour(v) = stop₀ + Σₖ (stopₖ₊₁ − stopₖ) · clamp(v·n − k, 0, 1), so it runs as tensor ops.
 */
export function colorize(values: Tensor): Tensor {
  if (values.ndim !== 2) throw new RangeError(`colorize takes a map [H, W], not [${values.shape.join(', ')}]`);
  return tidy(() => {
    const n = HEATMAP_STOPS.length - 1;
    const [h, w] = values.shape as [number, number];
    const v = values.float().clamp(0, 1).reshape(1, h * w).mul(n);
    const ramps = stack(Array.from({ length: n }, (_, k) => v.sub(k).clamp(0, 1).squeeze(0)), 0); // [n, H·W]
    const deltas = HEATMAP_STOPS.slice(1).flatMap((stop, k) => stop.map((c, i) => c - HEATMAP_STOPS[k]![i]!));
    const d = tensor(deltas, { shape: [n, 3], device: values.device }).mT; // [3, n]
    const base = tensor([...HEATMAP_STOPS[0]!], { shape: [3, 1], device: values.device });
    return d.matmul(ramps).add(base).reshape(3, h, w);
  });
}

/** A map [h, w] (or maps [B, h, w]) resized to [H, W], bilinear (antialiased when shrinking). */
export function resizeMap(map: Tensor, size: readonly [number, number]): Tensor {
  if (map.ndim !== 2 && map.ndim !== 3) throw new RangeError(`resizeMap takes a map [h, w] or maps [B, h, w], not [${map.shape.join(', ')}]`);
  return tidy(() => {
    const [h, w] = map.shape.slice(-2) as [number, number];
    if (h === size[0] && w === size[1]) return map.float().clone();
    const lead = map.ndim === 3 ? [map.size(0)] : [];
    const antialias = h > size[0] || w > size[1];
    const x = map.float().reshape(lead[0] ?? 1, 1, h, w);
    return interpolate(x, { size, mode: 'bilinear', antialias }).reshape(...lead, size[0], size[1]);
  });
}

/** The image [3, H, W] (or [1, 3, H, W]) in [0, 1] with the map [h, w] in [0, 1] coloured over it. */
export function overlayHeatmap(image: Tensor, map: Tensor, { alpha = 0.5 }: HeatmapOptions = {}): Tensor {
  if (!(alpha >= 0 && alpha <= 1)) throw new RangeError(`heatmap alpha must be in [0, 1], not ${alpha}`);
  const shape = image.ndim === 4 && image.size(0) === 1 ? image.shape.slice(1) : image.shape;
  if (shape.length !== 3 || shape[0] !== 3) throw new RangeError(`overlayHeatmap takes an RGB image [3, H, W], not [${image.shape.join(', ')}]`);
  const [, height, width] = shape as [number, number, number];
  return tidy(() => {
    const colour = colorize(resizeMap(map.to({ device: image.device }), [height, width]));
    return image.reshape(3, height, width).float().mul(1 - alpha).add(colour.mul(alpha));
  });
}

/** Writes the image with the map over it as a PNG (atomically). */
export async function writeHeatmap(path: string, image: Tensor, map: Tensor, options: HeatmapOptions = {}): Promise<void> {
  const blended = overlayHeatmap(image, map, options);
  try {
    await writePng(path, blended, { Software: 'moa' });
  } finally {
    blended.dispose();
  }
}
