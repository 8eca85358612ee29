// The training objective: L = L_diff + λ_router·L_router + λ_subject·L_subject + λ_obj·L_obj
// + λ_bg·L_bg, each term kept for logging.
import type { Generator } from '../../tensor/generator.js';
import { tidy } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { backgroundPriorLoss } from './background.js';
import { type MaskedAverage, maskedDiffusionLoss } from './diffusion.js';
import { objectLoss } from './object.js';
import { routingLosses } from './router.js';

export interface LossConfig {
  /** λ_router [choice: start at 1.0]. */
  router: number;
  /** λ_subject: pull of subject pixels to the personal branch [choice beyond the spec; 0 = the spec's loss]. */
  routerSubject: number;
  /** λ_obj = 1e-3 [FastComposer]. */
  object: number;
  /** Probability of the masked diffusion loss, 0.5 [FastComposer]. */
  maskProbability: number;
  /** Weight of subject pixels in the diffusion loss against the background's 1 [choice beyond FastComposer; 1 = its loss]. */
  subjectWeight: number;
  /** What a masked element's error is averaged over: 'latent' [FastComposer] or 'subjects' [choice beyond it]. */
  maskedAverage: MaskedAverage;
  /** λ_bg: the background's prediction pulled to the prior's [choice beyond the spec; 0 = off]. */
  background: number;
}

export const DEFAULT_LOSS_CONFIG: Readonly<LossConfig> = Object.freeze({ router: 1.0, routerSubject: 0, object: 1e-3, maskProbability: 0.5, subjectWeight: 1, maskedAverage: 'latent', background: 0 });

export interface LossInputs {
  /** The UNet's noise prediction and the true noise, [B, C, H, W] (bf16 allowed). */
  pred: Tensor;
  target: Tensor;
  /** Union of subject masks at latent resolution [B, 1, H, W]. */
  unionMask: Tensor;
  /** Per-subject masks [B, S, H', W'] (any resolution; resized per layer). */
  subjectMasks: Tensor;
  /** Subjects bound per batch element (in binding order). */
  subjectCounts: readonly number[];
  /** Every MoA layer's r1 [B, h, w] (TrainingRecorder.r1Maps()). */
  r1Maps: readonly Tensor[];
  /** Subject attention of the chosen middle layers [B, S, h, w] (TrainingRecorder.middleMaps()). */
  attentionMaps: readonly Tensor[];
  /** The prediction with the router forced to the prior, same input (needed when λ_bg > 0). */
  priorPred?: Tensor;
  /** Draws the masking decisions of the diffusion loss. */
  generator: Generator;
}

export interface LossTerms {
  total: Tensor;
  diffusion: Tensor;
  router: Tensor;
  routerSubject: Tensor;
  object: Tensor;
  background: Tensor;
}

/** All terms as float32 (or float64) scalars; total supports backward, the others share its graph. */
export function totalLoss(inputs: LossInputs, config: Partial<LossConfig> = {}): LossTerms {
  const c = { ...DEFAULT_LOSS_CONFIG, ...config };
  return tidy(() => {
    const diffusion = maskedDiffusionLoss(inputs.pred, inputs.target, inputs.unionMask, { maskProbability: c.maskProbability, subjectWeight: c.subjectWeight, maskedAverage: c.maskedAverage, generator: inputs.generator });
    const { router, subject: routerSubject } = routingLosses(inputs.r1Maps, inputs.unionMask);
    const object = objectLoss(inputs.attentionMaps, inputs.subjectMasks, inputs.subjectCounts);
    if (c.background > 0 && !inputs.priorPred) throw new TypeError('totalLoss: loss.background > 0 needs priorPred (the prediction with the router forced to the prior)');
    const background = inputs.priorPred ? backgroundPriorLoss(inputs.pred, inputs.priorPred, inputs.unionMask) : diffusion.mul(0).detach();
    const weighted = (term: Tensor, weight: number) => term.to({ device: diffusion.device }).mul(weight);
    const total = diffusion
      .add(weighted(router, c.router))
      .add(weighted(routerSubject, c.routerSubject))
      .add(weighted(object, c.object))
      .add(weighted(background, c.background));
    return { total, diffusion, router, routerSubject, object, background };
  });
}
