// AutoencoderKL configuration: diffusers' config.json parsed and checked into a typed object.
import { ConfigError, ConfigReader, frozen } from '../config-fields.js';

export interface VaeConfig {
  inChannels: number;
  outChannels: number;
  blockOutChannels: number[];
  /** Resnets per encoder block (decoder blocks have one more). */
  layersPerBlock: number;
  latentChannels: number;
  normNumGroups: number;
  sampleSize: number | null;
  /** Latents are multiplied by this before the UNet sees them (SD1.5: 0.18215). */
  scalingFactor: number;
  /** Subtracted before scaling, when set (not in SD1.5). */
  shiftFactor: number | null;
  useQuantConv: boolean;
  usePostQuantConv: boolean;
  midBlockAddAttention: boolean;
}

/** diffusers' VAE config.json for Stable Diffusion 1.5 (runwayml/stable-diffusion-v1-5, vae/). */
export const SD15_VAE_CONFIG_JSON = Object.freeze({
  _class_name: 'AutoencoderKL',
  act_fn: 'silu',
  block_out_channels: [128, 256, 512, 512],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  in_channels: 3,
  latent_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 512,
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
});

/** Parses and checks a diffusers AutoencoderKL config.json object. */
export function parseVaeConfig(json: unknown): VaeConfig {
  const r = new ConfigReader('VAE config', json);
  r.oneOf('act_fn', ['silu', 'swish'], 'silu');
  r.unsupported('latents_mean', null);
  r.unsupported('latents_std', null);
  const blockOutChannels = r.intList('block_out_channels', [64]);
  const n = blockOutChannels.length;
  const down = r.listOf('down_block_types', ['DownEncoderBlock2D'], ['DownEncoderBlock2D']);
  const up = r.listOf('up_block_types', ['UpDecoderBlock2D'], ['UpDecoderBlock2D']);
  if (down.length !== n || up.length !== n) {
    throw new ConfigError(`VAE config: down_block_types (${down.length}), up_block_types (${up.length}) and block_out_channels (${n}) must have the same length`);
  }
  const normNumGroups = r.int('norm_num_groups', 32);
  for (const c of blockOutChannels) {
    if (c % normNumGroups !== 0) throw new ConfigError(`VAE config: norm_num_groups (${normNumGroups}) must divide every block_out_channels entry (${c} does not)`);
  }
  return {
    inChannels: r.int('in_channels', 3),
    outChannels: r.int('out_channels', 3),
    blockOutChannels,
    layersPerBlock: r.int('layers_per_block', 1),
    latentChannels: r.int('latent_channels', 4),
    normNumGroups,
    sampleSize: r.optionalInt('sample_size'),
    scalingFactor: r.number('scaling_factor', 0.18215),
    shiftFactor: (json as Record<string, unknown>).shift_factor == null ? null : r.number('shift_factor'),
    useQuantConv: r.bool('use_quant_conv', true),
    usePostQuantConv: r.bool('use_post_quant_conv', true),
    midBlockAddAttention: r.bool('mid_block_add_attention', true),
  };
}

/** SD1.5's VAE configuration, parsed. */
export const SD15_VAE_CONFIG: Readonly<VaeConfig> = frozen(parseVaeConfig(SD15_VAE_CONFIG_JSON));
