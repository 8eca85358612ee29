// Key names of a single-file Stable Diffusion 1.x checkpoint (the original CompVis/LDM layout:
// `model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.transformer.*`) mapped to
// and from diffusers / transformers names. The inner names of transformer blocks and ResNet
// convolutions mostly agree; block positions and a few module names differ.

/** What the mapping needs to know of the UNet's layout. */
export interface UNetLayout {
  layersPerBlock: number;
  /** Per down block: does it have cross-attention transformers? */
  downHasAttention: readonly boolean[];
  /** Per up block (diffusers order): does it have cross-attention transformers? */
  upHasAttention: readonly boolean[];
}

/** Number of resolution levels in the VAE (4 for SD1.x). */
export interface VaeLayout {
  levels: number;
}

export const UNET_PREFIX = 'model.diffusion_model.';
export const VAE_PREFIX = 'first_stage_model.';
export const TEXT_PREFIX = 'cond_stage_model.transformer.';

type Rule = [RegExp, (m: RegExpMatchArray) => string];

function rewrite(key: string, rules: readonly Rule[]): string | null {
  for (const [pattern, to] of rules) {
    const m = key.match(pattern);
    if (m) return to(m);
  }
  return null;
}

const RESNET_ORIGINAL_TO_DIFFUSERS: Record<string, string> = {
  'in_layers.0': 'norm1',
  'in_layers.2': 'conv1',
  'emb_layers.1': 'time_emb_proj',
  'out_layers.0': 'norm2',
  'out_layers.3': 'conv2',
  skip_connection: 'conv_shortcut',
};
const RESNET_DIFFUSERS_TO_ORIGINAL = Object.fromEntries(Object.entries(RESNET_ORIGINAL_TO_DIFFUSERS).map(([a, b]) => [b, a]));

function resnetInner(rest: string, table: Record<string, string>): string {
  const m = rest.match(/^([a-z_]+(?:\.\d+)?)\.(weight|bias)$/);
  if (!m) return rest;
  return `${table[m[1]!] ?? m[1]}.${m[2]}`;
}

// ---- UNet ----

/** `model.diffusion_model.X` (without the prefix) → diffusers UNet key, or null if unknown. */
export function unetKeyFromOriginal(key: string, layout: UNetLayout): string | null {
  const per = layout.layersPerBlock + 1;
  return rewrite(key, [
    [/^time_embed\.0\.(.+)$/, (m) => `time_embedding.linear_1.${m[1]}`],
    [/^time_embed\.2\.(.+)$/, (m) => `time_embedding.linear_2.${m[1]}`],
    [/^input_blocks\.0\.0\.(.+)$/, (m) => `conv_in.${m[1]}`],
    [/^out\.0\.(.+)$/, (m) => `conv_norm_out.${m[1]}`],
    [/^out\.2\.(.+)$/, (m) => `conv_out.${m[1]}`],
    [/^middle_block\.0\.(.+)$/, (m) => `mid_block.resnets.0.${resnetInner(m[1]!, RESNET_ORIGINAL_TO_DIFFUSERS)}`],
    [/^middle_block\.1\.(.+)$/, (m) => `mid_block.attentions.0.${m[1]}`],
    [/^middle_block\.2\.(.+)$/, (m) => `mid_block.resnets.1.${resnetInner(m[1]!, RESNET_ORIGINAL_TO_DIFFUSERS)}`],
    [
      /^input_blocks\.(\d+)\.(\d)\.(.+)$/,
      (m) => {
        const i = Number(m[1]) - 1;
        const block = Math.floor(i / per);
        const layer = i % per;
        if (layer === layout.layersPerBlock) return m[2] === '0' && m[3]!.startsWith('op.') ? `down_blocks.${block}.downsamplers.0.conv.${m[3]!.slice(3)}` : '';
        if (m[2] === '0') return `down_blocks.${block}.resnets.${layer}.${resnetInner(m[3]!, RESNET_ORIGINAL_TO_DIFFUSERS)}`;
        return m[2] === '1' ? `down_blocks.${block}.attentions.${layer}.${m[3]}` : '';
      },
    ],
    [
      /^output_blocks\.(\d+)\.(\d)\.(.+)$/,
      (m) => {
        const i = Number(m[1]);
        const block = Math.floor(i / per);
        const layer = i % per;
        const sub = Number(m[2]);
        if (sub === 0) return `up_blocks.${block}.resnets.${layer}.${resnetInner(m[3]!, RESNET_ORIGINAL_TO_DIFFUSERS)}`;
        const attention = layout.upHasAttention[block] ?? false;
        if (sub === 1 && attention) return `up_blocks.${block}.attentions.${layer}.${m[3]}`;
        const upsamplerIndex = attention ? 2 : 1;
        if (sub === upsamplerIndex && m[3]!.startsWith('conv.')) return `up_blocks.${block}.upsamplers.0.conv.${m[3]!.slice(5)}`;
        return '';
      },
    ],
  ]) || null;
}

/** diffusers UNet key → `model.diffusion_model.X` (without the prefix). */
export function unetKeyToOriginal(key: string, layout: UNetLayout): string | null {
  const per = layout.layersPerBlock + 1;
  return rewrite(key, [
    [/^time_embedding\.linear_1\.(.+)$/, (m) => `time_embed.0.${m[1]}`],
    [/^time_embedding\.linear_2\.(.+)$/, (m) => `time_embed.2.${m[1]}`],
    [/^conv_in\.(.+)$/, (m) => `input_blocks.0.0.${m[1]}`],
    [/^conv_norm_out\.(.+)$/, (m) => `out.0.${m[1]}`],
    [/^conv_out\.(.+)$/, (m) => `out.2.${m[1]}`],
    [/^mid_block\.resnets\.(\d)\.(.+)$/, (m) => `middle_block.${m[1] === '0' ? 0 : 2}.${resnetInner(m[2]!, RESNET_DIFFUSERS_TO_ORIGINAL)}`],
    [/^mid_block\.attentions\.0\.(.+)$/, (m) => `middle_block.1.${m[1]}`],
    [/^down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/, (m) => `input_blocks.${1 + Number(m[1]) * per + Number(m[2])}.0.${resnetInner(m[3]!, RESNET_DIFFUSERS_TO_ORIGINAL)}`],
    [/^down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)$/, (m) => `input_blocks.${1 + Number(m[1]) * per + Number(m[2])}.1.${m[3]}`],
    [/^down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$/, (m) => `input_blocks.${1 + Number(m[1]) * per + layout.layersPerBlock}.0.op.${m[2]}`],
    [/^up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/, (m) => `output_blocks.${Number(m[1]) * per + Number(m[2])}.0.${resnetInner(m[3]!, RESNET_DIFFUSERS_TO_ORIGINAL)}`],
    [/^up_blocks\.(\d+)\.attentions\.(\d+)\.(.+)$/, (m) => `output_blocks.${Number(m[1]) * per + Number(m[2])}.1.${m[3]}`],
    [
      /^up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)$/,
      (m) => `output_blocks.${Number(m[1]) * per + layout.layersPerBlock}.${layout.upHasAttention[Number(m[1])] ? 2 : 1}.conv.${m[2]}`,
    ],
  ]);
}

// ---- VAE ----

const VAE_ATTENTION_ORIGINAL_TO_DIFFUSERS: Record<string, string> = { norm: 'group_norm', q: 'to_q', k: 'to_k', v: 'to_v', proj_out: 'to_out.0' };
const VAE_ATTENTION_DIFFUSERS_TO_ORIGINAL = Object.fromEntries(Object.entries(VAE_ATTENTION_ORIGINAL_TO_DIFFUSERS).map(([a, b]) => [b, a]));
const vaeResnet = (rest: string, toDiffusers: boolean) =>
  toDiffusers ? rest.replace(/^nin_shortcut\./, 'conv_shortcut.') : rest.replace(/^conv_shortcut\./, 'nin_shortcut.');

/** `first_stage_model.X` (without the prefix) → diffusers AutoencoderKL key. */
export function vaeKeyFromOriginal(key: string, layout: VaeLayout): string | null {
  return rewrite(key, [
    [/^(encoder|decoder)\.norm_out\.(.+)$/, (m) => `${m[1]}.conv_norm_out.${m[2]}`],
    [/^(encoder|decoder)\.(conv_in|conv_out)\.(.+)$/, (m) => `${m[1]}.${m[2]}.${m[3]}`],
    [/^(quant_conv|post_quant_conv)\.(.+)$/, (m) => `${m[1]}.${m[2]}`],
    [/^(encoder|decoder)\.mid\.block_(\d)\.(.+)$/, (m) => `${m[1]}.mid_block.resnets.${Number(m[2]) - 1}.${vaeResnet(m[3]!, true)}`],
    [
      /^(encoder|decoder)\.mid\.attn_1\.([a-z_]+)\.(.+)$/,
      (m) => (VAE_ATTENTION_ORIGINAL_TO_DIFFUSERS[m[2]!] ? `${m[1]}.mid_block.attentions.0.${VAE_ATTENTION_ORIGINAL_TO_DIFFUSERS[m[2]!]}.${m[3]}` : ''),
    ],
    [/^encoder\.down\.(\d+)\.block\.(\d+)\.(.+)$/, (m) => `encoder.down_blocks.${m[1]}.resnets.${m[2]}.${vaeResnet(m[3]!, true)}`],
    [/^encoder\.down\.(\d+)\.downsample\.conv\.(.+)$/, (m) => `encoder.down_blocks.${m[1]}.downsamplers.0.conv.${m[2]}`],
    [/^decoder\.up\.(\d+)\.block\.(\d+)\.(.+)$/, (m) => `decoder.up_blocks.${layout.levels - 1 - Number(m[1])}.resnets.${m[2]}.${vaeResnet(m[3]!, true)}`],
    [/^decoder\.up\.(\d+)\.upsample\.conv\.(.+)$/, (m) => `decoder.up_blocks.${layout.levels - 1 - Number(m[1])}.upsamplers.0.conv.${m[2]}`],
  ]) || null;
}

/** diffusers AutoencoderKL key → `first_stage_model.X` (without the prefix). */
export function vaeKeyToOriginal(key: string, layout: VaeLayout): string | null {
  return rewrite(key, [
    [/^(encoder|decoder)\.conv_norm_out\.(.+)$/, (m) => `${m[1]}.norm_out.${m[2]}`],
    [/^(encoder|decoder)\.(conv_in|conv_out)\.(.+)$/, (m) => `${m[1]}.${m[2]}.${m[3]}`],
    [/^(quant_conv|post_quant_conv)\.(.+)$/, (m) => `${m[1]}.${m[2]}`],
    [/^(encoder|decoder)\.mid_block\.resnets\.(\d)\.(.+)$/, (m) => `${m[1]}.mid.block_${Number(m[2]) + 1}.${vaeResnet(m[3]!, false)}`],
    [
      /^(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(.+)$/,
      (m) => `${m[1]}.mid.attn_1.${VAE_ATTENTION_DIFFUSERS_TO_ORIGINAL[m[2]!]}.${m[3]}`,
    ],
    [/^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/, (m) => `encoder.down.${m[1]}.block.${m[2]}.${vaeResnet(m[3]!, false)}`],
    [/^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$/, (m) => `encoder.down.${m[1]}.downsample.conv.${m[2]}`],
    [/^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/, (m) => `decoder.up.${layout.levels - 1 - Number(m[1])}.block.${m[2]}.${vaeResnet(m[3]!, false)}`],
    [/^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)$/, (m) => `decoder.up.${layout.levels - 1 - Number(m[1])}.upsample.conv.${m[2]}`],
  ]);
}

/**
 * The original VAE's mid-block attention uses 1×1 convolutions where diffusers uses linear
 * layers: weights [C, C, 1, 1] there, [C, C] here.
 */
export function isVaeAttentionProjection(diffusersKey: string): boolean {
  return /mid_block\.attentions\.0\.(to_q|to_k|to_v|to_out\.0)\.weight$/.test(diffusersKey);
}

// ---- text encoder ----

/** `cond_stage_model.transformer.X` (without the prefix) → transformers CLIPTextModel key. */
export function textKeyFromOriginal(key: string): string {
  // Older checkpoints leave out the `text_model.` level.
  return key.startsWith('text_model.') ? key : `text_model.${key}`;
}
