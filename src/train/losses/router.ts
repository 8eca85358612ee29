// The router loss [MoA]: background pixels are pushed to the prior (r0 → 1); subject pixels are
// left free, so the routers learn to send only the subject to the personal branch.
import { zeros } from '../../tensor/create.js';
import { tidy } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { asMask4d, lossFloat, resize } from './common.js';

/**
 * L = mean(((1 − M) ⊙ (1 − R0))²), R0 = mean over layers of r0 = 1 − r1, each layer's map
 * resized (bilinear) to the latent grid of M.
 *
 * r1Maps: each MoA layer's personal routing weight r1 [B, h, w] (what MoA's recorder reports;
 * r0 = 1 − r1 is formed here). unionMask: the union of subject masks at latent resolution,
 * [B, 1, H, W] or [B, H, W], 1 on subjects. With no maps the loss is 0.
 */
export function routerLoss(r1Maps: readonly Tensor[], unionMask: Tensor): Tensor {
  return tidy(() => {
    let mask = asMask4d(lossFloat(unionMask), 'routerLoss union mask');
    const size: [number, number] = [mask.size(2), mask.size(3)];
    if (r1Maps.length === 0) return zeros([], { dtype: mask.dtype, device: mask.device });
    mask = mask.to({ device: r1Maps[0]!.device });
    const r0 = r1Maps.map((r1) => {
      if (r1.ndim !== 3 || r1.size(0) !== mask.size(0)) throw new RangeError(`routerLoss: expected r1 [${mask.size(0)}, h, w], not [${r1.shape.join(', ')}]`);
      return resize(lossFloat(r1).rsub(1).unsqueeze(1), size);
    });
    const meanR0 = r0.reduce((a, b) => a.add(b)).div(r0.length);
    // (1 − M)(1 − R0): the background's share routed away from the prior.
    return mask.rsub(1).mul(meanR0.rsub(1)).square().mean();
  });
}
