// MoAConfig: the numbers that shape what MoA adds to a UNet (routers, fusion MLP, which image
// encoder layers train). Everything that changes a tensor's shape is here, so a weights file
// records it and a mismatch is found before loading.

export interface MoAConfig {
  /** Router hidden width as a fraction of the layer's width: Linear(C, C·ratio) → SiLU → Linear(·, 2). */
  readonly routerHiddenRatio: number;
  /** r0 (the prior's routing weight) everywhere at initialisation, in (0, 1). */
  readonly initialPriorWeight: number;
  /** Width of a subject's image embedding (CLIP's projection_dim: 768 for ViT-L/14, SD1.5's image encoder). */
  readonly imageEmbedDim: number;
  /** Most subjects one prompt may bind (FastComposer's max_num_objects). */
  readonly maxSubjects: number;
  /** How many of the image encoder's last transformer layers train with MoA (0: the encoder stays frozen). */
  readonly trainImageEncoderLayers: number;
  /** Channels of the sinusoidal timestep embedding the fusion MLP is conditioned on. */
  readonly fusionTimestepDim: number;
}

export const DEFAULT_MOA_CONFIG: MoAConfig = Object.freeze({
  routerHiddenRatio: 1 / 4,
  initialPriorWeight: 0.9,
  imageEmbedDim: 768,
  maxSubjects: 4,
  trainImageEncoderLayers: 0,
  fusionTimestepDim: 320,
});

export class MoAConfigError extends Error {
  constructor(message: string) {
    super(`MoA config: ${message}`);
    this.name = 'MoAConfigError';
  }
}

const positiveInt = (v: unknown) => Number.isSafeInteger(v) && (v as number) > 0;

/** DEFAULT_MOA_CONFIG with `overrides` applied, checked; unknown keys are refused (a typo must not pass silently). */
export function moaConfig(overrides: Partial<MoAConfig> | Record<string, unknown> = {}): MoAConfig {
  if (typeof overrides !== 'object' || overrides === null || Array.isArray(overrides)) throw new MoAConfigError('expected an object');
  const unknown = Object.keys(overrides).filter((k) => !Object.hasOwn(DEFAULT_MOA_CONFIG, k));
  if (unknown.length) throw new MoAConfigError(`unknown field(s) ${unknown.join(', ')} (known: ${Object.keys(DEFAULT_MOA_CONFIG).join(', ')})`);
  const c = { ...DEFAULT_MOA_CONFIG, ...overrides } as MoAConfig;
  const { routerHiddenRatio: ratio, initialPriorWeight: r0 } = c;
  if (typeof ratio !== 'number' || !(ratio > 0 && ratio <= 4)) throw new MoAConfigError(`routerHiddenRatio must be a number in (0, 4], not ${String(ratio)}`);
  if (typeof r0 !== 'number' || !(r0 > 0 && r0 < 1)) throw new MoAConfigError(`initialPriorWeight must be in (0, 1) (softmax weights are never exactly 0 or 1), not ${String(r0)}`);
  if (!positiveInt(c.imageEmbedDim)) throw new MoAConfigError(`imageEmbedDim must be a positive integer, not ${String(c.imageEmbedDim)}`);
  if (!positiveInt(c.maxSubjects)) throw new MoAConfigError(`maxSubjects must be a positive integer, not ${String(c.maxSubjects)}`);
  if (!Number.isSafeInteger(c.trainImageEncoderLayers) || c.trainImageEncoderLayers < 0) {
    throw new MoAConfigError(`trainImageEncoderLayers must be an integer ≥ 0, not ${String(c.trainImageEncoderLayers)}`);
  }
  if (!positiveInt(c.fusionTimestepDim) || c.fusionTimestepDim % 2 !== 0) {
    throw new MoAConfigError(`fusionTimestepDim must be a positive even integer, not ${String(c.fusionTimestepDim)}`);
  }
  return Object.freeze({ ...c });
}

/** The router's hidden width for a layer of `channels` (at least 1). */
export function routerHiddenWidth(config: MoAConfig, channels: number): number {
  return Math.max(1, Math.round(channels * config.routerHiddenRatio));
}
