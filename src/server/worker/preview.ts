// Previews while a job runs: the latents each denoising step starts from, decoded small by the
// VAE. The pipelines report progress without their latents, so the worker observes the UNet's
// input instead: every denoising step (and every inversion step of an edit) calls the UNet once,
// and the rows of that call all hold the current latents (guidance repeats them).
import { encodePng } from '../../io/image.js';
import type { StableDiffusion } from '../../pipelines/stable-diffusion.js';
import { decodeLatents } from '../../pipelines/text-to-image.js';
import { interpolate } from '../../tensor/functional.js';
import { keep, tidy } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';

/** Latents are pooled to at most this many cells a side before decoding (128 px for SD). */
const PREVIEW_LATENT_SIDE = 16;

type Emit = (step: number, png: Buffer) => void;

export class PreviewTap {
  #calls = 0;
  #emit: Emit | null = null;
  #pending = new Set<Promise<void>>();

  /** Wraps the UNet's forward once; `every` 0 leaves it alone. */
  constructor(
    private readonly sd: StableDiffusion,
    readonly every: number,
  ) {
    if (every <= 0) return;
    const unet = sd.unet;
    const forward = unet.forward.bind(unet);
    unet.forward = (sample, timestep, context, extras) => {
      this.#observe(sample);
      return forward(sample, timestep, context, extras);
    };
  }

  /** Starts counting steps of a new job; previews go to `emit`. */
  begin(emit: Emit): void {
    this.#calls = 0;
    this.#emit = emit;
  }

  /** Stops emitting and waits for previews being encoded. */
  async end(): Promise<void> {
    this.#emit = null;
    await Promise.allSettled([...this.#pending]);
  }

  #observe(sample: Tensor): void {
    const done = this.#calls++;
    if (!this.#emit || done === 0 || done % this.every !== 0) return;
    const emit = this.#emit;
    const image = keep(this.#render(sample));
    const encoding = encodePng(image)
      .then((png) => emit(done, png))
      .catch(() => {
        // A preview is a courtesy: failing to encode one never fails the job.
      })
      .finally(() => {
        image.dispose();
        this.#pending.delete(encoding);
      });
    this.#pending.add(encoding);
  }

  /** The first row's latents, pooled small, decoded to [1, 3, h, w] in [0, 1]. */
  #render(sample: Tensor): Tensor {
    return tidy(() => {
      let latents = sample.narrow(0, 0, 1).float();
      const [h, w] = [latents.size(2), latents.size(3)];
      const scale = PREVIEW_LATENT_SIDE / Math.max(h, w);
      if (scale < 1) {
        const size: [number, number] = [Math.max(1, Math.round(h * scale)), Math.max(1, Math.round(w * scale))];
        latents = interpolate(latents, { size, mode: 'bilinear', antialias: true });
      }
      return decodeLatents(this.sd, latents);
    });
  }
}
