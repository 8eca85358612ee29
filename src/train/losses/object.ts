// The object (localization) loss [FastComposer]: each subject token's personal cross-attention
// should fall inside that subject's mask: L = mean(A_k over ¬M_k) − mean(A_k over M_k).
import { tensor, zeros } from '../../tensor/create.js';
import { tidy } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { lossFloat, resize } from './common.js';

/**
 * maps: one [B, S, h, w] per chosen layer (subject attention averaged over heads, as MoA records
 * it; layers may differ in resolution). subjectMasks: [B, S', H, W] with S' ≥ S, 1 inside subject
 * k of element b. subjectCounts: how many subjects element b binds (subjects k < count are
 * present; the rest are padding).
 *
 * Per layer and present (b, k): mean of A over 1 − M (mask resized to the layer's grid, as
 * weights) minus mean of A over M. The result averages over layers, then over the present
 * subjects; it is 0 when no subject is present or no map was recorded. (The difference is linear
 * in A, so averaging the per-layer losses equals the loss of the layer-averaged map where the
 * layers share a grid.)
 */
export function objectLoss(maps: readonly Tensor[], subjectMasks: Tensor, subjectCounts: readonly number[]): Tensor {
  return tidy(() => {
    const masks = lossFloat(subjectMasks);
    const batch = masks.size(0);
    if (subjectCounts.length !== batch) throw new RangeError(`objectLoss: ${subjectCounts.length} subject counts for a batch of ${batch}`);
    const present = subjectCounts.reduce((a, b) => a + b, 0);
    if (maps.length === 0 || present === 0) return zeros([], { dtype: masks.dtype, device: masks.device });
    const S = maps[0]!.size(1);
    if (subjectCounts.some((c) => c > S)) throw new RangeError(`objectLoss: a count exceeds the ${S} subjects the maps hold`);
    if (masks.size(1) < S) throw new RangeError(`objectLoss: ${masks.size(1)} masks for ${S} subjects`);
    const perLayer = maps.map((raw) => {
      if (raw.ndim !== 4 || raw.size(0) !== batch || raw.size(1) !== S) throw new RangeError(`objectLoss: expected maps [${batch}, ${S}, h, w], not [${raw.shape.join(', ')}]`);
      const a = lossFloat(raw);
      const m = resize(masks.narrow(1, 0, S).to({ device: a.device, dtype: a.dtype }), [a.size(2), a.size(3)]);
      const inside = weightedMean(a, m);
      const outside = weightedMean(a, m.rsub(1));
      return outside.sub(inside); // [B, S]
    });
    const term = perLayer.reduce((x, y) => x.add(y)).div(perLayer.length);
    const weights = subjectCounts.flatMap((c) => Array.from({ length: S }, (_, k) => (k < c ? 1 : 0)));
    const w = tensor(weights, { shape: [batch, S], dtype: term.dtype, device: term.device });
    return term.mul(w).sum().div(present);
  });
}

/** Σ a·w / Σ w over the grid, per [B, S]; an empty region (Σ w = 0) gives 0. */
function weightedMean(a: Tensor, w: Tensor): Tensor {
  return a.mul(w).sum([2, 3]).div(w.sum([2, 3]).clamp(1e-6));
}
