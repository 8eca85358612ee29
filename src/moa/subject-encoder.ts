// Subject embeddings (MOA_SPEC 2.4): reference images of one subject → CLIP image embeddings
// (pooled class token through visual_projection) → their mean. With subject masks, each image is
// first cut to the square around its subject and its background replaced, as the training crops
// are (FastComposer: grey at inference, noise in training).
import { type CLIPVisionModelWithProjection } from '../models/clip-vision.js';
import { type Background, clipPreprocess } from '../models/clip-preprocess.js';
import { type Generator } from '../tensor/generator.js';
import { tidy } from '../tensor/scope.js';
import { type Tensor } from '../tensor/tensor.js';

export interface SubjectImageOptions {
  /** Subject masks [N, 1, H, W] (or [1, 1, H, W] for all), 1 = subject; the rest becomes `background`. */
  masks?: Tensor | null;
  /** 'grey' (default), 'noise' (needs a generator) or a grey level in [0, 1]. */
  background?: Background;
  generator?: Generator;
  /**
   * With masks: cut each image to the square around its subject first (default true). Training
   * crops are cut so; a full-frame reference embeds further from them (cosine 0.81 against 0.89
   * on the world's references, docs/moa.md).
   */
  cropToSubject?: boolean;
}

/**
 * images [N, 3, H, W] RGB in [0, 1] → float32 [N, projection_dim]: one embedding per image.
 * Runs with gradients when they are enabled (training the encoder's last layers); wrap in
 * noGrad() at inference.
 */
export function imageEmbeddings(encoder: CLIPVisionModelWithProjection, images: Tensor, { masks = null, background = 'grey', generator, cropToSubject = true }: SubjectImageOptions = {}): Tensor {
  if (images.ndim !== 4 || images.size(1) !== 3) throw new RangeError(`subject images must be [N, 3, H, W] RGB in [0, 1], not [${images.shape.join(', ')}]`);
  return tidy(() => {
    const size = encoder.config.image_size;
    const pixels = clipPreprocess(images, { mask: masks, cropToMask: cropToSubject, background, ...(generator && { generator }), size, cropSize: size });
    return encoder.forward(pixels).imageEmbeds.float();
  });
}

/** One subject's embedding [projection_dim]: the mean over its N reference images. */
export function subjectEmbedding(encoder: CLIPVisionModelWithProjection, images: Tensor, options: SubjectImageOptions = {}): Tensor {
  return tidy(() => imageEmbeddings(encoder, images, options).mean(0));
}

/**
 * Morphing between two subjects: (1 − alpha)·a + alpha·b on their embeddings (alpha 0 is a,
 * 1 is b; values outside [0, 1] extrapolate).
 */
export function interpolateSubjects(a: Tensor, b: Tensor, alpha: number): Tensor {
  if (!Number.isFinite(alpha)) throw new RangeError(`interpolateSubjects: alpha must be a finite number, not ${alpha}`);
  if (a.shape.length !== b.shape.length || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new RangeError(`interpolateSubjects: embeddings of shapes [${a.shape.join(', ')}] and [${b.shape.join(', ')}] differ`);
  }
  return tidy(() => {
    const [x, y] = a.dtype === b.dtype ? [a, b] : [a.float(), b.float()];
    return x.add(y.sub(x).mul(alpha));
  });
}
