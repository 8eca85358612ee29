// CLIPTextModel as transformers defines it: Stable Diffusion 1.5's text encoder. Token ids
// [B, L] → per-token hidden states [B, L, D] (after the final LayerNorm) and a pooled vector per
// sequence (the hidden state at the end-of-text token). Keys: `text_model.embeddings.*`,
// `text_model.encoder.layers.N.*`, `text_model.final_layer_norm.*`.
import { Embedding } from '../nn/embedding.js';
import { type LoadOptions, type LoadResult, Module } from '../nn/module.js';
import { LayerNorm } from '../nn/norm.js';
import { arange } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import { type Tensor } from '../tensor/tensor.js';
import {
  checkEncoderConfig,
  ClipConfigError,
  type ClipEncoderConfig,
  configObject,
  FieldReader,
  nestedConfig,
} from './clip-config.js';
import { CLIPEncoder, type ClipInitOptions, withoutIgnoredClipKeys } from './clip-encoder.js';

/** transformers' CLIPTextConfig, field for field as its config.json spells them. */
export interface CLIPTextConfig extends ClipEncoderConfig {
  readonly vocab_size: number;
  readonly max_position_embeddings: number;
  /** Read but unused: only CLIPTextModelWithProjection has a projection. */
  readonly projection_dim: number;
  readonly bos_token_id: number | null;
  /** 2 (legacy configs, SD1.5's included) means "pool at the largest id", else at the first id equal to this. */
  readonly eos_token_id: number;
  readonly pad_token_id: number | null;
}

/** Stable Diffusion 1.5's text_encoder/config.json (OpenAI CLIP ViT-L/14's text tower). */
export const SD15_TEXT_CONFIG: CLIPTextConfig = Object.freeze({
  vocab_size: 49408,
  hidden_size: 768,
  intermediate_size: 3072,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  max_position_embeddings: 77,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  projection_dim: 768,
  bos_token_id: 0,
  eos_token_id: 2,
  pad_token_id: 1,
});

const TEXT_FIELDS = ['vocab_size', 'hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'max_position_embeddings'];

/**
 * Parses a CLIPTextConfig from config.json (text or parsed object): a text_encoder config, or a
 * CLIPConfig whose text_config is used. Absent fields take transformers' CLIPTextConfig defaults.
 */
export function clipTextConfigFromJson(json: unknown, source = 'CLIP text config'): CLIPTextConfig {
  let object = configObject(json, source);
  const nested = nestedConfig(object, ['text_config', 'text_config_dict'], source);
  if (nested || object['model_type'] === 'clip') {
    if (!nested) throw new ClipConfigError(source, 'a CLIPConfig (model_type "clip") needs a "text_config"');
    object = nested;
    source = `${source} (text_config)`;
  }
  const f = new FieldReader(object, source);
  f.modelType(['clip_text_model']);
  f.requireAny(TEXT_FIELDS, 'CLIP text config');
  const config: CLIPTextConfig = {
    vocab_size: f.int('vocab_size', 49408),
    hidden_size: f.int('hidden_size', 512),
    intermediate_size: f.int('intermediate_size', 2048),
    num_hidden_layers: f.int('num_hidden_layers', 12, 0),
    num_attention_heads: f.int('num_attention_heads', 8),
    max_position_embeddings: f.int('max_position_embeddings', 77),
    hidden_act: f.activation('hidden_act', 'quick_gelu'),
    layer_norm_eps: f.positive('layer_norm_eps', 1e-5),
    projection_dim: f.int('projection_dim', 512),
    bos_token_id: f.tokenId('bos_token_id', 49406),
    eos_token_id: f.tokenId('eos_token_id', 49407) ?? missingEos(source),
    pad_token_id: f.tokenId('pad_token_id', 1),
  };
  checkEncoderConfig(config, source);
  return Object.freeze(config);
}

function missingEos(source: string): never {
  throw new ClipConfigError(source, '"eos_token_id" must not be null: the pooled output is taken at the end-of-text token');
}

export class CLIPTextEmbeddings extends Module {
  readonly tokenEmbedding: Embedding;
  readonly positionEmbedding: Embedding;

  constructor(config: CLIPTextConfig, init: ClipInitOptions = {}) {
    super();
    this.tokenEmbedding = this.registerModule('token_embedding', new Embedding(config.vocab_size, config.hidden_size, init));
    this.positionEmbedding = this.registerModule('position_embedding', new Embedding(config.max_position_embeddings, config.hidden_size, init));
    // Non-persistent, as in current transformers: not in state dicts; old checkpoints' copies are ignored.
    const ids = arange(config.max_position_embeddings, undefined, 1, { device: init.device ?? 'cpu' });
    this.registerBuffer('position_ids', ids.view(1, config.max_position_embeddings), { persistent: false });
    ids.dispose();
  }

  /** [1, max_position_embeddings] int64: 0, 1, 2, ... */
  get positionIds(): Tensor {
    return this.buffer('position_ids');
  }

  /** ids [B, L] → token + position embeddings [B, L, D]. */
  forward(inputIds: Tensor): Tensor {
    return tidy(() => {
      const positions = this.positionIds.narrow(1, 0, inputIds.size(1));
      return this.tokenEmbedding.forward(inputIds).add(this.positionEmbedding.forward(positions));
    });
  }
}

export interface CLIPTextForwardOptions {
  /** [B, L], 1 (or true) where a token may be attended to, 0 at padding. SD1.5 uses none. */
  attentionMask?: Tensor | null;
  /** Also return the embeddings and every layer's output (clip skip uses hiddenStates[-2]). */
  outputHiddenStates?: boolean;
}

export interface CLIPTextOutput {
  /** [B, L, D], after the final LayerNorm. */
  lastHiddenState: Tensor;
  /** [B, D]: lastHiddenState at each sequence's end-of-text token. */
  poolerOutput: Tensor;
  /** num_hidden_layers + 1 tensors [B, L, D] (before the final LayerNorm), or null. */
  hiddenStates: Tensor[] | null;
}

/** transformers' CLIPTextTransformer: the `text_model` of CLIPTextModel. */
export class CLIPTextTransformer extends Module {
  readonly config: CLIPTextConfig;
  readonly embeddings: CLIPTextEmbeddings;
  readonly encoder: CLIPEncoder;
  readonly finalLayerNorm: LayerNorm;

  constructor(config: CLIPTextConfig, init: ClipInitOptions = {}) {
    super();
    this.config = config;
    this.embeddings = this.registerModule('embeddings', new CLIPTextEmbeddings(config, init));
    this.encoder = this.registerModule('encoder', new CLIPEncoder(config, init));
    const norm = { eps: config.layer_norm_eps, ...(init.dtype && { dtype: init.dtype }), ...(init.device && { device: init.device }) };
    this.finalLayerNorm = this.registerModule('final_layer_norm', new LayerNorm(config.hidden_size, norm));
  }

  forward(inputIds: Tensor, { attentionMask = null, outputHiddenStates = false }: CLIPTextForwardOptions = {}): CLIPTextOutput {
    this.#checkIds(inputIds);
    return tidy(() => {
      const [b, l] = inputIds.shape as [number, number];
      const ids = inputIds.to('int64');
      const mask = attentionMask ? this.#paddingMask(attentionMask, b, l) : null;
      const h = this.embeddings.forward(ids);
      const { lastHiddenState: encoded, hiddenStates } = this.encoder.forward(h, { causal: true, mask }, outputHiddenStates);
      const lastHiddenState = this.finalLayerNorm.forward(encoded);
      // Legacy configs (eos_token_id 2) pool at the largest id, which is the real end-of-text (49407).
      const eos = this.config.eos_token_id === 2 ? ids.argmax(-1) : ids.eq(this.config.eos_token_id).int().argmax(-1);
      const poolerOutput = lastHiddenState.take(arange(b, undefined, 1, { device: ids.device }), eos);
      return { lastHiddenState, poolerOutput, hiddenStates };
    });
  }

  #checkIds(ids: Tensor): void {
    const { max_position_embeddings: maxLength, vocab_size: vocab } = this.config;
    if (ids.ndim !== 2) throw new RangeError(`CLIP text model takes token ids [batch, length], not a tensor of shape [${ids.shape.join(', ')}]`);
    if (!['int64', 'int32', 'int16', 'uint8', 'int8'].includes(ids.dtype)) throw new TypeError(`CLIP text model takes integer token ids, not ${ids.dtype}`);
    const [b, l] = ids.shape as [number, number];
    if (b < 1 || l < 1 || l > maxLength) throw new RangeError(`CLIP text model takes 1 to ${maxLength} tokens per sequence, not [${b}, ${l}]`);
    const [lo, hi] = tidy(() => [ids.min().item(), ids.max().item()]);
    if (lo! < 0 || hi! >= vocab) throw new RangeError(`token ids must lie in [0, ${vocab}); these span [${lo}, ${hi}]`);
  }

  /** [B, L] attention mask → bool [B, 1, 1, L] over keys. */
  #paddingMask(mask: Tensor, b: number, l: number): Tensor {
    if (mask.ndim !== 2 || mask.size(0) !== b || mask.size(1) !== l) {
      throw new RangeError(`attentionMask must be [${b}, ${l}] like the ids, not [${mask.shape.join(', ')}]`);
    }
    return mask.ne(0).view(b, 1, 1, l);
  }
}

/** transformers' CLIPTextModel (SD1.5's text_encoder): keys under `text_model.`. */
export class CLIPTextModel extends Module {
  readonly config: CLIPTextConfig;
  readonly textModel: CLIPTextTransformer;

  constructor(config: CLIPTextConfig = SD15_TEXT_CONFIG, init: ClipInitOptions = {}) {
    super();
    // Re-read through the parser, so a config written by hand is checked like a file.
    this.config = clipTextConfigFromJson(config, 'CLIPTextModel config');
    this.textModel = this.registerModule('text_model', new CLIPTextTransformer(this.config, init));
  }

  /** A model built from config.json (text or parsed object); see clipTextConfigFromJson. */
  static fromConfigJson(json: unknown, init: ClipInitOptions = {}, source?: string): CLIPTextModel {
    return new CLIPTextModel(clipTextConfigFromJson(json, source), init);
  }

  forward(inputIds: Tensor, options: CLIPTextForwardOptions = {}): CLIPTextOutput {
    return this.textModel.forward(inputIds, options);
  }

  /** As Module.loadStateDict, but a checkpoint's `text_model.embeddings.position_ids` is accepted and ignored. */
  override loadStateDict(state: Readonly<Record<string, Tensor>>, options?: LoadOptions): LoadResult {
    return super.loadStateDict(withoutIgnoredClipKeys(state), options);
  }
}
