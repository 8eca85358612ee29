// The router losses. [MoA]: background pixels are pushed to the prior (r0 → 1); subject pixels are
// left free. [choice, beyond the spec] an optional pull of subject pixels to the personal branch
// (r1 → 1): on a small base the free subject pixels followed the background to the prior, since
// the shared router MLP gets almost no diffusion gradient while the personal expert is still a
// copy of the prior, and the personal expert learns little while r1 is small.
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
  return tidy(() => routingLosses(r1Maps, unionMask, 'routerLoss').router);
}

/**
 * L = mean((M ⊙ (1 − R1))²), R1 = mean over layers of r1 (resized as in routerLoss): the subjects'
 * share left with the prior. Same normalisation as routerLoss (over every pixel), so their
 * weights compare. With no maps the loss is 0.
 */
export function subjectRoutingLoss(r1Maps: readonly Tensor[], unionMask: Tensor): Tensor {
  return tidy(() => routingLosses(r1Maps, unionMask, 'subjectRoutingLoss').subject);
}

/** Both router terms from one mean R1 (the layers' maps resized once): what training computes. */
export function routingLosses(r1Maps: readonly Tensor[], unionMask: Tensor, what = 'routingLosses'): { router: Tensor; subject: Tensor } {
  return tidy(() => {
    let mask = asMask4d(lossFloat(unionMask), `${what} union mask`);
    if (r1Maps.length === 0) return { router: zeros([], { dtype: mask.dtype, device: mask.device }), subject: zeros([], { dtype: mask.dtype, device: mask.device }) };
    const size: [number, number] = [mask.size(2), mask.size(3)];
    mask = mask.to({ device: r1Maps[0]!.device });
    const resized = r1Maps.map((r1) => {
      if (r1.ndim !== 3 || r1.size(0) !== mask.size(0)) throw new RangeError(`${what}: expected r1 [${mask.size(0)}, h, w], not [${r1.shape.join(', ')}]`);
      return resize(lossFloat(r1).unsqueeze(1), size);
    });
    const meanR1 = resized.reduce((a, b) => a.add(b)).div(resized.length);
    return {
      // (1 − M)(1 − R0) = (1 − M)·R1: the background's share routed away from the prior.
      router: mask.rsub(1).mul(meanR1).square().mean(),
      // M·(1 − R1): the subjects' share left with the prior.
      subject: mask.mul(meanR1.rsub(1)).square().mean(),
    };
  });
}
