// The masked diffusion loss [FastComposer]: MSE(ε̂, ε), where with probability p both are first
// multiplied by the union of the subject masks, so the loss looks only at the subjects. Our
// options beyond it: subject pixels weighted over the background's (`subjectWeight`), and a
// masked element averaged over its subjects' area instead of the whole latent (`maskedAverage`).
import { noGrad } from '../../tensor/autograd.js';
import { rand, tensor } from '../../tensor/create.js';
import type { Generator } from '../../tensor/generator.js';
import { tidy } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { asMask4d, lossFloat } from './common.js';

export interface MaskedDiffusionOptions {
  /** Probability of masking each batch element. Default 0.5 [FastComposer]. */
  maskProbability?: number;
  /** Draws the decisions (one uniform per batch element): same seed, same decisions. */
  generator?: Generator;
  /** The decisions themselves (one per batch element), instead of drawing them. */
  masked?: readonly boolean[];
  /** How many times a subject pixel's squared error counts (≥ 1). Default 1: FastComposer's loss. */
  subjectWeight?: number;
  /**
   * What a masked element's squared error is averaged over: 'latent' (default, FastComposer's
   * loss) or 'subjects', its subjects' area, so that small subjects weigh as much as a whole image.
   */
  maskedAverage?: MaskedAverage;
}

export const MASKED_AVERAGES = ['latent', 'subjects'] as const;
export type MaskedAverage = (typeof MASKED_AVERAGES)[number];

/** One masking decision per batch element: uniform draw < p. */
export function drawMaskDecisions(batch: number, probability: number, generator: Generator): boolean[] {
  if (!(probability >= 0 && probability <= 1)) throw new RangeError(`maskProbability must be in [0, 1], not ${probability}`);
  const u = rand([batch], { generator, dtype: 'float64' });
  try {
    return u.toNumbers().map((x) => x < probability);
  } finally {
    u.dispose();
  }
}

/**
 * mean(w ⊙ (m ⊙ (pred − target))²) over every element, with m = the union mask [B, 1, h, w] for
 * the batch elements chosen to be masked and 1 for the others, and w = 1 + (subjectWeight − 1) ·
 * union mask (1 everywhere by default). With maskedAverage 'subjects' a masked element's share is
 * multiplied by h·w / Σm², so it is its mean over the subjects' area. A chosen element whose mask
 * is empty (no subjects) is not masked: a zero mask would make its loss 0 and teach nothing. With
 * unionMask null nothing is masked or weighted (and no decision is drawn).
 */
export function maskedDiffusionLoss(pred: Tensor, target: Tensor, unionMask: Tensor | null, options: MaskedDiffusionOptions = {}): Tensor {
  if (pred.shape.join() !== target.shape.join()) throw new RangeError(`maskedDiffusionLoss: pred [${pred.shape.join(', ')}] and target [${target.shape.join(', ')}] differ`);
  const subjectWeight = options.subjectWeight ?? 1;
  if (!(subjectWeight >= 1 && Number.isFinite(subjectWeight))) throw new RangeError(`maskedDiffusionLoss: subjectWeight must be a finite number ≥ 1, not ${subjectWeight}`);
  const maskedAverage = options.maskedAverage ?? 'latent';
  if (!MASKED_AVERAGES.includes(maskedAverage)) throw new RangeError(`maskedDiffusionLoss: maskedAverage must be one of ${MASKED_AVERAGES.join(', ')}, not ${JSON.stringify(maskedAverage)}`);
  return tidy(() => {
    const diff = lossFloat(pred).sub(lossFloat(target));
    if (unionMask === null) return diff.square().mean();
    const batch = pred.size(0);
    const masked = options.masked ?? drawMaskDecisions(batch, options.maskProbability ?? 0.5, requireGenerator(options.generator));
    if (masked.length !== batch) throw new RangeError(`maskedDiffusionLoss: ${masked.length} decisions for a batch of ${batch}`);
    const mask = asMask4d(lossFloat(unionMask), 'maskedDiffusionLoss union mask').to({ device: pred.device, dtype: diff.dtype });
    const hasSubjects = mask.flatten(1).sum(1).gt(0).toNumbers();
    // Per element: its mask where chosen (and non-empty), else all ones.
    const chosen = masked.map((m, b) => (m && hasSubjects[b]! > 0 ? 1 : 0));
    const select = tensor(chosen, { shape: [batch, 1, 1, 1], dtype: diff.dtype, device: diff.device });
    const m = mask.mul(select).add(select.rsub(1));
    let squared = diff.mul(m).square();
    // Subjects are a small share of each image, yet they are what MoA learns to draw.
    if (subjectWeight !== 1) squared = squared.mul(mask.mul(subjectWeight - 1).add(1));
    if (maskedAverage === 'subjects') {
      // Masked elements: × h·w / Σm² (their mean over the subjects); the others × 1.
      const area = m.square().flatten(1).sum(1).view(batch, 1, 1, 1);
      const pixels = m.size(2) * m.size(3);
      squared = squared.mul(area.reciprocal().mul(pixels).sub(1).mul(select).add(1));
    }
    return squared.mean();
  });
}

/**
 * The plain squared error of the prediction on the subjects' pixels, for the log: its sum (each
 * latent pixel's channels weighted by the union mask [B, 1, h, w]) and how many such values it
 * covers (mask coverage × channels). Divide the two, summed over micro-batches, for the mean;
 * the count is 0 when no subject covers any pixel. Not a loss: no gradient.
 */
export function subjectErrorSums(pred: Tensor, target: Tensor, unionMask: Tensor): { sum: number; count: number } {
  return noGrad(() =>
    tidy(() => {
      const squared = lossFloat(pred).sub(lossFloat(target)).square();
      const mask = asMask4d(lossFloat(unionMask), 'subjectErrorSums union mask').to({ device: pred.device, dtype: squared.dtype });
      return { sum: squared.mul(mask).sum().item(), count: mask.sum().item() * pred.size(1) };
    }),
  );
}

function requireGenerator(generator: Generator | undefined): Generator {
  if (!generator) throw new TypeError('maskedDiffusionLoss: pass { generator } (or { masked }) to draw the masking decisions');
  return generator;
}
