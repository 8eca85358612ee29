// UNet2DConditionModel configuration: diffusers' config.json (snake_case, its defaults for
// missing keys) parsed and checked into a typed object.
import { ConfigError, ConfigReader, frozen } from '../config-fields.js';

export const UNET_DOWN_BLOCK_TYPES = ['CrossAttnDownBlock2D', 'DownBlock2D'] as const;
export const UNET_UP_BLOCK_TYPES = ['CrossAttnUpBlock2D', 'UpBlock2D'] as const;
export type UNetDownBlockType = (typeof UNET_DOWN_BLOCK_TYPES)[number];
export type UNetUpBlockType = (typeof UNET_UP_BLOCK_TYPES)[number];

export interface UNetConfig {
  sampleSize: number | null;
  inChannels: number;
  outChannels: number;
  /** Maps the input from [0, 1] to [-1, 1] first. */
  centerInputSample: boolean;
  flipSinToCos: boolean;
  freqShift: number;
  downBlockTypes: UNetDownBlockType[];
  upBlockTypes: UNetUpBlockType[];
  blockOutChannels: number[];
  /** Resnets per down block (up blocks have one more). */
  layersPerBlock: number[];
  /** Transformer blocks per Transformer2DModel, per down block (reversed for the up blocks). */
  transformerLayersPerBlock: number[];
  downsamplePadding: number;
  midBlockScaleFactor: number;
  resnetOutScaleFactor: number;
  dropout: number;
  normNumGroups: number;
  normEps: number;
  /** Context width per down block (reversed for the up blocks, the last for the mid block). */
  crossAttentionDim: number[];
  /**
   * Heads per down block. diffusers reads config `attention_head_dim` as the NUMBER of heads
   * (a naming slip kept for compatibility): SD1.5's 8 gives 8 heads of 40, 80, 160 channels.
   */
  attentionHeads: number[];
  useLinearProjection: boolean;
  /** Accepted and ignored, as diffusers' default attention processor (AttnProcessor2_0) does. */
  upcastAttention: boolean;
  /** Width of the time embedding: time_embedding_dim, or 4 × block_out_channels[0]. */
  timeEmbedDim: number;
  convInKernel: number;
  convOutKernel: number;
}

/** diffusers' UNet config.json for Stable Diffusion 1.5 (runwayml/stable-diffusion-v1-5, unet/). */
export const SD15_UNET_CONFIG_JSON = Object.freeze({
  _class_name: 'UNet2DConditionModel',
  act_fn: 'silu',
  attention_head_dim: 8,
  block_out_channels: [320, 640, 1280, 1280],
  center_input_sample: false,
  cross_attention_dim: 768,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  downsample_padding: 1,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  out_channels: 4,
  sample_size: 64,
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
});

// Features of UNet2DConditionModel this implementation does not have, with the value that means "off".
const UNSUPPORTED: [string, unknown][] = [
  ['only_cross_attention', false],
  ['mid_block_only_cross_attention', null],
  ['dual_cross_attention', false],
  ['num_attention_heads', null], // diffusers itself refuses it
  ['reverse_transformer_layers_per_block', null],
  ['encoder_hid_dim', null],
  ['encoder_hid_dim_type', null],
  ['class_embed_type', null],
  ['addition_embed_type', null],
  ['num_class_embeds', null],
  ['class_embeddings_concat', false],
  ['projection_class_embeddings_input_dim', null],
  ['resnet_time_scale_shift', 'default'],
  ['resnet_skip_time_act', false],
  ['time_embedding_type', 'positional'],
  ['time_embedding_act_fn', null],
  ['timestep_post_act', null],
  ['time_cond_proj_dim', null],
  ['attention_type', 'default'],
  ['cross_attention_norm', null],
  ['mid_block_type', 'UNetMidBlock2DCrossAttn'],
];

/** Parses and checks a diffusers UNet2DConditionModel config.json object. */
export function parseUNetConfig(json: unknown): UNetConfig {
  const r = new ConfigReader('UNet config', json);
  for (const [key, off] of UNSUPPORTED) r.unsupported(key, off);
  r.oneOf('act_fn', ['silu', 'swish'], 'silu');
  const downBlockTypes = r.listOf('down_block_types', UNET_DOWN_BLOCK_TYPES, SD15_UNET_CONFIG_JSON.down_block_types as UNetDownBlockType[]);
  const upBlockTypes = r.listOf('up_block_types', UNET_UP_BLOCK_TYPES, SD15_UNET_CONFIG_JSON.up_block_types as UNetUpBlockType[]);
  const blockOutChannels = r.intList('block_out_channels', [320, 640, 1280, 1280]);
  const n = downBlockTypes.length;
  if (upBlockTypes.length !== n || blockOutChannels.length !== n) {
    throw new ConfigError(
      `UNet config: down_block_types (${n}), up_block_types (${upBlockTypes.length}) and block_out_channels (${blockOutChannels.length}) must have the same length`,
    );
  }
  const normNumGroups = r.int('norm_num_groups', 32);
  for (const c of blockOutChannels) {
    if (c % normNumGroups !== 0) throw new ConfigError(`UNet config: norm_num_groups (${normNumGroups}) must divide every block_out_channels entry (${c} does not)`);
  }
  const attentionHeads = r.perBlock('attention_head_dim', n, 8);
  attentionHeads.forEach((heads, i) => {
    if (Math.floor(blockOutChannels[i]! / heads) < 1) throw new ConfigError(`UNet config: ${heads} heads leave no channels per head in block ${i} (${blockOutChannels[i]} channels)`);
  });
  const freqShift = r.number('freq_shift', 0);
  if (Math.floor(blockOutChannels[0]! / 2) - freqShift === 0) throw new ConfigError('UNet config: freq_shift equals half the timestep embedding width');
  const convInKernel = r.int('conv_in_kernel', 3);
  const convOutKernel = r.int('conv_out_kernel', 3);
  if (convInKernel % 2 === 0 || convOutKernel % 2 === 0) throw new ConfigError('UNet config: conv_in_kernel and conv_out_kernel must be odd');
  const dropout = r.number('dropout', 0);
  if (!(dropout >= 0 && dropout < 1)) r.fail('dropout', 'in [0, 1)');
  return {
    sampleSize: r.optionalInt('sample_size'),
    inChannels: r.int('in_channels', 4),
    outChannels: r.int('out_channels', 4),
    centerInputSample: r.bool('center_input_sample', false),
    flipSinToCos: r.bool('flip_sin_to_cos', true),
    freqShift,
    downBlockTypes,
    upBlockTypes,
    blockOutChannels,
    layersPerBlock: r.perBlock('layers_per_block', n, 2),
    transformerLayersPerBlock: r.perBlock('transformer_layers_per_block', n, 1),
    downsamplePadding: r.int('downsample_padding', 1, 0),
    midBlockScaleFactor: r.number('mid_block_scale_factor', 1),
    resnetOutScaleFactor: r.number('resnet_out_scale_factor', 1),
    dropout,
    normNumGroups,
    normEps: r.number('norm_eps', 1e-5),
    crossAttentionDim: r.perBlock('cross_attention_dim', n, 1280),
    attentionHeads,
    useLinearProjection: r.bool('use_linear_projection', false),
    upcastAttention: r.bool('upcast_attention', false),
    timeEmbedDim: r.int('time_embedding_dim', blockOutChannels[0]! * 4),
    convInKernel,
    convOutKernel,
  };
}

/** SD1.5's UNet configuration, parsed. */
export const SD15_UNET_CONFIG: Readonly<UNetConfig> = frozen(parseUNetConfig(SD15_UNET_CONFIG_JSON));
