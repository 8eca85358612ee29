// The model sizes of a pretraining config: diffusers/transformers config fields for the VAE, the
// CLIP text encoder, the UNet, the CLIP image encoder and the noise schedule. Each is checked by
// the parser its model uses, keys those parsers do not read are refused (a typo would otherwise
// silently take a default), and the fields that follow from others are filled in or checked
// against them (latent channels, context width, sample sizes, the tokenizer's ids).
import { clipTextConfigFromJson, type CLIPTextConfig } from '../../models/clip-text.js';
import type { ClipTokenizer } from '../../models/clip-tokenizer.js';
import { CLIP_MAX_LENGTH } from '../../models/clip-tokenizer.js';
import { clipVisionConfigFromJson } from '../../models/clip-vision.js';
import { parseUNetConfig } from '../../models/unet/config.js';
import { parseVaeConfig } from '../../models/vae/config.js';
import { DEFAULT_SCHEDULER_CONFIG, parseSchedulerConfig } from '../../schedulers/index.js';

/** Configs as their config.json files spell them (filled in); the text encoder's ids come from the tokenizer. */
export interface ModelConfigs {
  vae: Record<string, unknown>;
  textEncoder: Record<string, unknown>;
  unet: Record<string, unknown>;
  imageEncoder: Record<string, unknown>;
  scheduler: Record<string, unknown>;
}

type Raw = Record<string, unknown>;
type MakeError = (field: string, problem: string) => Error;

const VAE_KEYS = [
  'in_channels', 'out_channels', 'down_block_types', 'up_block_types', 'block_out_channels', 'layers_per_block', 'act_fn',
  'latent_channels', 'norm_num_groups', 'sample_size', 'use_quant_conv', 'use_post_quant_conv', 'mid_block_add_attention',
];
const UNET_KEYS = [
  'sample_size', 'in_channels', 'out_channels', 'center_input_sample', 'flip_sin_to_cos', 'freq_shift', 'down_block_types', 'up_block_types',
  'block_out_channels', 'layers_per_block', 'transformer_layers_per_block', 'downsample_padding', 'mid_block_scale_factor', 'resnet_out_scale_factor',
  'dropout', 'act_fn', 'norm_num_groups', 'norm_eps', 'cross_attention_dim', 'attention_head_dim', 'use_linear_projection', 'upcast_attention',
  'time_embedding_dim', 'conv_in_kernel', 'conv_out_kernel',
];
const TEXT_KEYS = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'max_position_embeddings', 'hidden_act', 'layer_norm_eps', 'projection_dim'];
const VISION_KEYS = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'num_channels', 'image_size', 'patch_size', 'projection_dim', 'hidden_act', 'layer_norm_eps'];
const SCHEDULER_KEYS = Object.keys(DEFAULT_SCHEDULER_CONFIG);
/** Set by pretraining itself, never by the config. */
const DERIVED: Record<string, Record<string, string>> = {
  vae: { scaling_factor: 'is measured by the vae stage (from the latents’ spread)', shift_factor: 'is not used (latents are only scaled)' },
  textEncoder: {
    vocab_size: 'follows the tokenizer',
    bos_token_id: 'follows the tokenizer',
    eos_token_id: 'follows the tokenizer',
    pad_token_id: 'follows the tokenizer',
  },
};

const isObject = (v: unknown): v is Raw => typeof v === 'object' && v !== null && !Array.isArray(v);

function section(models: Raw, key: string, known: readonly string[], fail: MakeError, required = true): Raw {
  const v = models[key];
  const at = `models.${key}`;
  if (v === undefined || v === null) {
    if (required) throw fail(at, 'is required (the network’s config.json fields)');
    return {};
  }
  if (!isObject(v)) throw fail(at, `must be an object of config.json fields, not ${JSON.stringify(v)}`);
  for (const k of Object.keys(v)) {
    const why = DERIVED[key]?.[k];
    if (why) throw fail(`${at}.${k}`, `must not be set: it ${why}`);
    if (!known.includes(k)) throw fail(`${at}.${k}`, `is not a field moa reads for this network (known: ${[...known].sort().join(', ')})`);
  }
  return { ...v };
}

/** Runs a model's own parser, turning its error into one that names the config field. */
function parsed<T>(at: string, fail: MakeError, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    throw fail(at, `is not a valid config: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/** Fills `key` with `value`, or checks that the given value equals it. */
function derive(config: Raw, key: string, value: unknown, at: string, reason: string, fail: MakeError): void {
  if (config[key] === undefined) config[key] = value;
  else if (JSON.stringify(config[key]) !== JSON.stringify(value)) throw fail(`${at}.${key}`, `is ${JSON.stringify(config[key])} but must be ${JSON.stringify(value)} (${reason})`);
}

export function checkModelConfigs(models: Raw, resolution: number, fail: MakeError): ModelConfigs {
  for (const k of Object.keys(models)) {
    if (!['vae', 'textEncoder', 'unet', 'imageEncoder', 'scheduler'].includes(k)) throw fail(`models.${k}`, 'is not a known network (vae, textEncoder, unet, imageEncoder, scheduler)');
  }
  const vae = section(models, 'vae', VAE_KEYS, fail);
  derive(vae, 'in_channels', 3, 'models.vae', 'RGB images', fail);
  derive(vae, 'out_channels', 3, 'models.vae', 'RGB images', fail);
  derive(vae, 'sample_size', resolution, 'models.vae', 'the training resolution', fail);
  const vaeParsed = parsed('models.vae', fail, () => parseVaeConfig(vae));
  const factor = 2 ** (vaeParsed.blockOutChannels.length - 1);
  if (resolution % factor !== 0) throw fail('resolution', `${resolution} must be a multiple of the VAE's downscaling factor ${factor}`);

  const text = section(models, 'textEncoder', TEXT_KEYS, fail);
  derive(text, 'max_position_embeddings', CLIP_MAX_LENGTH, 'models.textEncoder', `the pipelines encode prompts as ${CLIP_MAX_LENGTH} tokens`, fail);
  const textParsed = parsed('models.textEncoder', fail, () => clipTextConfigFromJson(text, 'text encoder config'));

  const unet = section(models, 'unet', UNET_KEYS, fail);
  derive(unet, 'in_channels', vaeParsed.latentChannels, 'models.unet', "the VAE's latent_channels", fail);
  derive(unet, 'out_channels', vaeParsed.latentChannels, 'models.unet', "the VAE's latent_channels", fail);
  derive(unet, 'sample_size', resolution / factor, 'models.unet', 'the latent side: resolution / the VAE factor', fail);
  if (unet.cross_attention_dim === undefined) unet.cross_attention_dim = textParsed.hidden_size;
  const unetParsed = parsed('models.unet', fail, () => parseUNetConfig(unet));
  if (unetParsed.crossAttentionDim.some((d) => d !== textParsed.hidden_size)) {
    throw fail('models.unet.cross_attention_dim', `must equal the text encoder's hidden_size ${textParsed.hidden_size}, not ${JSON.stringify(unet.cross_attention_dim)}`);
  }
  if (!unetParsed.downBlockTypes.includes('CrossAttnDownBlock2D')) throw fail('models.unet.down_block_types', 'needs a CrossAttnDownBlock2D: without cross-attention the UNet cannot read the caption');

  const imageEncoder = section(models, 'imageEncoder', VISION_KEYS, fail);
  derive(imageEncoder, 'num_channels', 3, 'models.imageEncoder', 'RGB images', fail);
  parsed('models.imageEncoder', fail, () => clipVisionConfigFromJson(imageEncoder, 'image encoder config'));

  const scheduler = section(models, 'scheduler', SCHEDULER_KEYS, fail, false);
  parsed('models.scheduler', fail, () => parseSchedulerConfig(scheduler));
  return { vae, textEncoder: text, unet, imageEncoder, scheduler };
}

/** The text encoder's config with the tokenizer's vocabulary size and special ids. */
export function textEncoderConfig(models: ModelConfigs, tokenizer: ClipTokenizer): CLIPTextConfig {
  return clipTextConfigFromJson(
    { ...models.textEncoder, vocab_size: tokenizer.vocabSize, bos_token_id: tokenizer.startId, eos_token_id: tokenizer.endId, pad_token_id: tokenizer.padId },
    'text encoder config',
  );
}
