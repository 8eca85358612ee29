// Norms that accept activations of another dtype than their parameters. libtorch 1.13's CPU
// autocast leaves group_norm and layer_norm alone, and both refuse a bfloat16 input with
// float32 weights; under autocast every conv and linear output is bfloat16, so each norm that
// follows one meets exactly that case. Both normalise in the parameters' precision (float32).
import { type GroupNorm, type LayerNorm } from '../../nn/norm.js';
import { layerNorm } from '../../tensor/functional.js';
import { tidy } from '../../tensor/scope.js';
import { type Tensor } from '../../tensor/tensor.js';

/**
 * layer.forward(x) for any floating x. When x's dtype differs from the parameters', x is cast
 * to theirs and the result stays in it: float32 under autocast, which the SiLU after every
 * group norm runs 3× faster in than in bfloat16 here, and the next conv casts back anyway.
 * (Casting the parameters down to bfloat16 instead measured no faster over a whole UNet step.)
 */
export function groupNormOf(layer: GroupNorm, x: Tensor): Tensor {
  const w = layer.weight;
  if (w === null || w.dtype === x.dtype) return layer.forward(x);
  return tidy(() => layer.forward(x.to(w.dtype)));
}

/**
 * layer.forward(x) for any floating x, returned in x's dtype (one cast here rather than one in
 * each of the q, k, v projections that follow). libtorch 1.13's bfloat16 layer_norm is ~15×
 * slower than float32 on this CPU, so a 16-bit x is normalised in float32 whatever the
 * parameters' dtype (under autocast, and in a model converted to bfloat16).
 */
export function layerNormOf(layer: LayerNorm, x: Tensor): Tensor {
  const w = layer.weight;
  const low = x.dtype === 'bfloat16' || x.dtype === 'float16';
  if (!low && (w === null || w.dtype === x.dtype)) return layer.forward(x);
  const f32 = (t: Tensor | null) => (t === null || t.dtype === 'float32' ? t : t.float());
  return tidy(() => layerNorm(x.float(), layer.normalizedShape, f32(w), f32(layer.bias), layer.eps).to(x.dtype));
}
