// Stage 2: the CLIP-style image encoder learns, contrastively, to give two views of one subject
// close embeddings and views of different subjects distant ones (InfoNCE both ways over the
// batch, with a learned temperature as CLIP has). Rows showing the same identity are not
// counted as each other's negatives. Views pass through the same preprocessing as at inference
// (clipPreprocess at the encoder's image_size), so the embeddings MoA reads are the trained ones.
import { clipPreprocess } from '../../models/clip-preprocess.js';
import type { CLIPVisionModelWithProjection } from '../../models/clip-vision.js';
import { Module } from '../../nn/module.js';
import { arange, full, tensor } from '../../tensor/create.js';
import type { Device } from '../../tensor/device.js';
import { cat, crossEntropy } from '../../tensor/functional.js';
import type { Tensor } from '../../tensor/tensor.js';
import { disposePairBatch, type PairBatch, type SubjectPairLoader } from './subject-pairs.js';
import type { StageLoss, StageTask } from './runner.js';

/** CLIP's cap on the logit scale (a temperature of 1/100). */
const MAX_LOGIT_SCALE = Math.log(100);

/** The learned temperature: logit_scale = log(1 / temperature). */
export class ContrastiveHead extends Module {
  constructor(temperature: number) {
    super();
    this.registerParameter('logit_scale', full([], Math.log(1 / temperature)));
  }
  get logitScale(): Tensor {
    return this.param('logit_scale');
  }
}

/**
 * Symmetric InfoNCE between rows of a and b (embeddings [B, D]); row i of a and b are a
 * positive pair, and pairs whose keys match are left out of the negatives. Also the share of
 * rows whose best match is their own pair.
 */
export function infoNce(a: Tensor, b: Tensor, logitScale: Tensor, keys: readonly string[]): { loss: Tensor; accuracy: Tensor } {
  const n = a.size(0);
  const unit = (x: Tensor) => x.div(x.norm(2, -1, true).clamp(1e-6));
  const logits = unit(a).matmul(unit(b).transpose(0, 1)).mul(logitScale.clamp(null, MAX_LOGIT_SCALE).exp());
  const same = keys.flatMap((ki, i) => keys.map((kj, j) => i !== j && ki === kj));
  const masked = same.some(Boolean) ? logits.maskedFill(tensor(same, { shape: [n, n] }), -1e4) : logits;
  const target = arange(n, undefined, 1, { device: a.device });
  const loss = crossEntropy(masked, target).add(crossEntropy(masked.transpose(0, 1), target)).mul(0.5);
  const accuracy = masked.argmax(1).eq(target).float().mean();
  return { loss, accuracy };
}

export class ImageEncoderTask implements StageTask<PairBatch> {
  readonly name = 'image-encoder' as const;
  readonly trained: { image_encoder: CLIPVisionModelWithProjection; contrastive: ContrastiveHead };

  constructor(
    encoder: CLIPVisionModelWithProjection,
    head: ContrastiveHead,
    private readonly loader: SubjectPairLoader,
    private readonly device: Device,
  ) {
    this.trained = { image_encoder: encoder, contrastive: head };
  }

  get position() {
    return this.loader.position;
  }
  setPosition(position: { epoch: number; index: number }): void {
    this.loader.setPosition(position);
  }
  nextBatch(): Promise<PairBatch> {
    return this.loader.nextBatch();
  }
  disposeBatch(batch: PairBatch): void {
    disposePairBatch(batch);
  }
  close(): void {
    this.loader.close();
  }

  loss(batch: PairBatch): StageLoss {
    const { image_encoder: encoder, contrastive } = this.trained;
    const size = encoder.config.image_size;
    const n = batch.anchors.size(0);
    // Both views in one pass.
    const pixels = clipPreprocess(cat([batch.anchors, batch.positives]).to({ device: this.device }), { size, cropSize: size });
    const embeds = encoder.forward(pixels).imageEmbeds.float();
    const { loss, accuracy } = infoNce(embeds.narrow(0, 0, n), embeds.narrow(0, n, n), contrastive.logitScale, batch.keys);
    return { loss, terms: { accuracy, temperature: contrastive.logitScale.clamp(null, MAX_LOGIT_SCALE).neg().exp() } };
  }
}
