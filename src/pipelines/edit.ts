// Real-image subject swap: DDIM-invert a photo with the prior alone (the base model's view of it),
// then regenerate from the inverted latents with MoA and new subjects. The prior keeps the photo's
// layout and context; the personal branch paints the subjects in.
import type { MoAConditioning } from '../moa/types.js';
import { DDIMInverseScheduler, DDIMScheduler } from '../schedulers/index.js';
import { noGrad } from '../tensor/autograd.js';
import { full } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { checkInstalled, encoderFor, type MoAModel, type PersonalizedResult, type PersonalizeOptions, resolvePersonalized, runPersonalized } from './personalize.js';
import type { StableDiffusion } from './stable-diffusion.js';
import { bindSubjects } from './subjects.js';
import { decodeImages, encodePrompts, type Progress } from './text-to-image.js';

export interface InvertOptions {
  /** The photo, [1, 3, H, W] or [3, H, W] in [0, 1]; H and W multiples of the VAE's scale. */
  image: Tensor;
  /** What the photo shows; the inversion's text condition. */
  prompt: string;
  steps?: number;
  onProgress?: (progress: Progress) => void;
  signal?: AbortSignal;
}

export interface Inversion {
  /** The photo's latents (VAE posterior mean × scaling factor), [1, C, h, w] float32. */
  encoded: Tensor;
  /** The latents at DDIM's first timestep that DDIM sampling with `steps` steps maps back to `encoded`. */
  noise: Tensor;
  steps: number;
}

/** [1, 3, H, W] float32 from [3, H, W] or [1, 3, H, W], checked against the VAE's scale. */
function photoBatch(sd: StableDiffusion, image: Tensor): Tensor {
  const x = image.ndim === 3 ? image.unsqueeze(0) : image.to({});
  const factor = sd.vae.scaleFactor;
  if (x.ndim !== 4 || x.size(0) !== 1 || x.size(1) !== 3) {
    x.dispose();
    throw new RangeError(`the photo must be one RGB image [1, 3, H, W] or [3, H, W] in [0, 1], not [${image.shape.join(', ')}]`);
  }
  if (x.size(2) % factor || x.size(3) % factor) {
    const [h, w] = [x.size(2), x.size(3)];
    x.dispose();
    throw new RangeError(`the photo is ${w}×${h}; its sides must be multiples of ${factor} (the VAE's scale): crop or resize it`);
  }
  return x;
}

/**
 * DDIM inversion with the prior alone (every MoA layer forced to the prior, no guidance):
 * x₀ → x_T along the deterministic DDIM path of `steps` steps.
 */
export async function invertImage(sd: StableDiffusion, options: InvertOptions): Promise<Inversion> {
  const steps = options.steps ?? 50;
  if (!Number.isInteger(steps) || steps < 1 || steps > 1000) throw new RangeError(`steps must be an integer from 1 to 1000, not ${steps}`);
  const photo = photoBatch(sd, options.image);
  const start = performance.now();
  let encoded: Tensor;
  let context: Tensor;
  try {
    ({ encoded, context } = noGrad(() =>
      tidy(() => {
        const posterior = sd.vae.encode(photo.float().mul(2).sub(1).to({ device: sd.device }));
        try {
          return { encoded: posterior.mean.float().mul(sd.vae.scalingFactor), context: encodePrompts(sd, [options.prompt]) };
        } finally {
          posterior.dispose();
        }
      }),
    ));
  } finally {
    photo.dispose();
  }
  let current = encoded;
  const inverse = new DDIMInverseScheduler(sd.schedulerConfig);
  inverse.setTimesteps(steps);
  try {
    for (const [i, t] of inverse.timesteps.entries()) {
      options.signal?.throwIfAborted();
      const next = noGrad(() =>
        tidy(() => {
          const moa: MoAConditioning = { subjects: [[]], forcePrior: true, timestep: full([1], t, { dtype: 'int64', device: sd.device }) };
          const eps = sd.unet.forward(current, t, context, { moa }).float();
          return inverse.step(eps, t, current).prevSample;
        }),
      );
      if (current !== encoded) current.dispose();
      current = next;
      options.onProgress?.({ step: i + 1, steps, timestep: t, elapsedMs: performance.now() - start });
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
    options.signal?.throwIfAborted();
    return { encoded, noise: current === encoded ? encoded.clone() : current, steps };
  } catch (error) {
    if (current !== encoded) current.dispose();
    encoded.dispose();
    throw error;
  } finally {
    context.dispose();
  }
}

export interface EditOptions extends Omit<PersonalizeOptions, 'width' | 'height' | 'batch' | 'scheduler' | 'seed'> {
  /** The photo, [1, 3, H, W] or [3, H, W] in [0, 1]. */
  image: Tensor;
  /** The inversion's prompt (what the photo shows); default: `prompt`. */
  sourcePrompt?: string;
  /**
   * Guidance of the regeneration. Default 1 (off): inversion runs unguided, and guidance would
   * pull the path away from the photo.
   */
  guidance?: number;
  /** Recorded in the parameters only: the path is deterministic. */
  seed?: number;
}

export interface EditResult extends PersonalizedResult {
  /**
   * Mean |Δ| between the result's latents and the photo's: with no new subject (or strength 0),
   * the reconstruction error of the inversion; with one, how far the subject moved the photo.
   */
  latentDistance: number;
}

/** Real-image subject swap: the photo inverted with the prior, regenerated by DDIM with MoA and `subjects`. */
export async function editRealImage(sd: StableDiffusion, moa: MoAModel, options: EditOptions): Promise<EditResult> {
  checkInstalled(sd, moa);
  const steps = options.steps ?? 50;
  const image = options.image;
  if (image.ndim < 3) throw new RangeError(`the photo must be [1, 3, H, W] or [3, H, W], not [${image.shape.join(', ')}]`);
  const [height, width] = image.shape.slice(-2) as [number, number];
  const parameters = resolvePersonalized(sd, { ...options, steps, width, height, batch: 1, scheduler: 'ddim', seed: options.seed ?? 0, guidance: options.guidance ?? 1 });
  const bound = bindSubjects(sd.tokenizer, parameters.prompt, options.subjects ?? [], {
    maxSubjects: moa.config.maxSubjects,
    encoder: encoderFor(moa, options.encoder),
    embedDim: moa.config.imageEmbedDim,
  });
  try {
    const total = 2 * steps;
    const inversion = await invertImage(sd, { image, prompt: options.sourcePrompt ?? parameters.prompt, steps, onProgress: options.onProgress && ((q) => options.onProgress!({ ...q, steps: total })), signal: options.signal });
    try {
      const scheduler = new DDIMScheduler(sd.schedulerConfig);
      scheduler.setTimesteps(steps);
      const out = await runPersonalized(sd, {
        parameters,
        words: bound.words,
        bindings: bound.bindings,
        latents: inversion.noise,
        scheduler,
        recordMaps: options.recordMaps,
        onProgress: options.onProgress,
        signal: options.signal,
        stepOffset: steps,
        totalSteps: total,
      });
      try {
        const latentDistance = tidy(() => out.latents.sub(inversion.encoded).abs().mean().item());
        const subjects = bound.words.map((word, i) => ({ word, tokenIndex: bound.bindings[i]!.tokenIndex }));
        return { images: decodeImages(sd, out.latents), parameters: { ...parameters, subjects }, latentDistance, ...(out.maps ? { maps: out.maps } : {}) };
      } finally {
        out.latents.dispose();
      }
    } finally {
      inversion.encoded.dispose();
      inversion.noise.dispose();
    }
  } finally {
    bound.dispose();
  }
}
