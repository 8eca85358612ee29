// [choice, beyond the spec] Background preservation: outside the subjects, the MoA UNet's
// prediction is pulled to the prior's (the router forced to the prior, same input, no gradient).
// The router loss only asks r1 → 0 there; on a small base a personal branch that learns the
// subjects still changed the background's prediction through the layers it shares with them
// (bench/identity-gap: +11 % background loss with subject pixels weighted 5×). The prior's
// prediction is a far less noisy target for the background than the diffusion target.
import { tidy } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { asMask4d, lossFloat } from './common.js';

/**
 * L = mean(((1 − M) ⊙ (pred − prior))²) over every element: pred and prior [B, C, H, W] (bf16
 * allowed; prior is treated as a constant), M the union of subject masks [B, 1, H, W] or [B, H, W].
 */
export function backgroundPriorLoss(pred: Tensor, prior: Tensor, unionMask: Tensor): Tensor {
  if (pred.shape.join() !== prior.shape.join()) throw new RangeError(`backgroundPriorLoss: pred [${pred.shape.join(', ')}] and prior [${prior.shape.join(', ')}] differ`);
  return tidy(() => {
    const mask = asMask4d(lossFloat(unionMask), 'backgroundPriorLoss union mask');
    const diff = lossFloat(pred).sub(lossFloat(prior).detach());
    return diff.mul(mask.to({ device: diff.device, dtype: diff.dtype }).rsub(1)).square().mean();
  });
}
