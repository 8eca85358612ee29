// CLIPVisionModelWithProjection as transformers defines it (the image encoder: OpenAI CLIP
// ViT-L/14). Pixels [B, 3, 224, 224] (see clip-preprocess) → patch tokens with a class token in
// front → encoder → image_embeds [B, projection_dim] from the class token. Keys:
// `vision_model.embeddings.*`, `vision_model.pre_layrnorm.*` (transformers' spelling),
// `vision_model.encoder.layers.N.*`, `vision_model.post_layernorm.*`, `visual_projection.weight`.
import { Conv2d } from '../nn/conv.js';
import { Embedding } from '../nn/embedding.js';
import { normalInit } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { type LoadOptions, type LoadResult, Module } from '../nn/module.js';
import { LayerNorm } from '../nn/norm.js';
import { arange } from '../tensor/create.js';
import { cat } from '../tensor/functional.js';
import { tidy } from '../tensor/scope.js';
import { type Tensor } from '../tensor/tensor.js';
import { checkEncoderConfig, ClipConfigError, type ClipEncoderConfig, configObject, FieldReader, nestedConfig } from './clip-config.js';
import { CLIPEncoder, type ClipInitOptions, withoutIgnoredClipKeys } from './clip-encoder.js';

/** transformers' CLIPVisionConfig, field for field as its config.json spells them. */
export interface CLIPVisionConfig extends ClipEncoderConfig {
  readonly num_channels: number;
  readonly image_size: number;
  readonly patch_size: number;
  readonly projection_dim: number;
}

/** OpenAI CLIP ViT-L/14 at 224 px (openai/clip-vit-large-patch14's vision_config). */
export const CLIP_VIT_L14_VISION_CONFIG: CLIPVisionConfig = Object.freeze({
  hidden_size: 1024,
  intermediate_size: 4096,
  num_hidden_layers: 24,
  num_attention_heads: 16,
  num_channels: 3,
  image_size: 224,
  patch_size: 14,
  projection_dim: 768,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
});

const VISION_FIELDS = ['hidden_size', 'intermediate_size', 'num_hidden_layers', 'num_attention_heads', 'image_size', 'patch_size'];

/**
 * Parses a CLIPVisionConfig from config.json (text or parsed object): either a CLIPVisionConfig
 * itself (an image_encoder folder) or a CLIPConfig whose vision_config is used. Absent fields
 * take transformers' CLIPVisionConfig defaults, except that a nested vision_config without
 * projection_dim takes the CLIPConfig's (that is the visual_projection a CLIPModel checkpoint has).
 */
export function clipVisionConfigFromJson(json: unknown, source = 'CLIP vision config'): CLIPVisionConfig {
  const top = configObject(json, source);
  let object = top;
  const nested = nestedConfig(top, ['vision_config', 'vision_config_dict'], source);
  if (nested || top['model_type'] === 'clip') {
    if (!nested) throw new ClipConfigError(source, 'a CLIPConfig (model_type "clip") needs a "vision_config"');
    object = nested.projection_dim === undefined && top['projection_dim'] !== undefined ? { ...nested, projection_dim: top['projection_dim'] } : nested;
    source = `${source} (vision_config)`;
  }
  const f = new FieldReader(object, source);
  f.modelType(['clip_vision_model']);
  f.requireAny(VISION_FIELDS, 'CLIP vision config');
  const config: CLIPVisionConfig = {
    hidden_size: f.int('hidden_size', 768),
    intermediate_size: f.int('intermediate_size', 3072),
    num_hidden_layers: f.int('num_hidden_layers', 12, 0),
    num_attention_heads: f.int('num_attention_heads', 12),
    num_channels: f.int('num_channels', 3),
    image_size: f.int('image_size', 224),
    patch_size: f.int('patch_size', 32),
    projection_dim: f.int('projection_dim', 512),
    hidden_act: f.activation('hidden_act', 'quick_gelu'),
    layer_norm_eps: f.positive('layer_norm_eps', 1e-5),
  };
  checkVisionConfig(config, source);
  return Object.freeze(config);
}

function checkVisionConfig(config: CLIPVisionConfig, source: string): void {
  checkEncoderConfig(config, source);
  if (config.patch_size > config.image_size) {
    throw new ClipConfigError(source, `patch_size (${config.patch_size}) must not exceed image_size (${config.image_size})`);
  }
}

/** Patches per side: the stride-patch convolution drops a remainder, as transformers' does. */
const patchesPerSide = (c: CLIPVisionConfig) => Math.floor(c.image_size / c.patch_size);

export class CLIPVisionEmbeddings extends Module {
  readonly config: CLIPVisionConfig;
  readonly patchEmbedding: Conv2d;
  readonly positionEmbedding: Embedding;

  constructor(config: CLIPVisionConfig, init: ClipInitOptions = {}) {
    super();
    this.config = config;
    const positions = patchesPerSide(config) ** 2 + 1;
    this.registerParameter('class_embedding', normalInit([config.hidden_size], 1, init));
    this.patchEmbedding = this.registerModule(
      'patch_embedding',
      new Conv2d(config.num_channels, config.hidden_size, config.patch_size, { stride: config.patch_size, bias: false, ...init }),
    );
    this.positionEmbedding = this.registerModule('position_embedding', new Embedding(positions, config.hidden_size, init));
    // Non-persistent, as in current transformers: not in state dicts; old checkpoints' copies are ignored.
    const ids = arange(positions, undefined, 1, { device: init.device ?? 'cpu' });
    this.registerBuffer('position_ids', ids.view(1, positions), { persistent: false });
    ids.dispose();
  }

  get classEmbedding(): Tensor {
    return this.param('class_embedding');
  }
  /** [1, patches + 1] int64: 0, 1, 2, ... */
  get positionIds(): Tensor {
    return this.buffer('position_ids');
  }

  /** pixels [B, C, S, S] → [B, patches + 1, D]: class token, then patches row by row, plus positions. */
  forward(pixelValues: Tensor): Tensor {
    return tidy(() => {
      const b = pixelValues.size(0);
      const d = this.config.hidden_size;
      const weight = this.patchEmbedding.weight;
      // Pixels follow the weights' dtype (a bfloat16 model takes float32 pixels), as transformers casts.
      const patches = this.patchEmbedding.forward(pixelValues.to(weight.dtype)).flatten(2).transpose(1, 2);
      const cls = this.classEmbedding.view(1, 1, d).expand(b, 1, d);
      return cat([cls, patches], 1).add(this.positionEmbedding.forward(this.positionIds));
    });
  }
}

export interface CLIPVisionForwardOptions {
  /** Also return the embeddings and every layer's output (image adapters often use hiddenStates[-2]). */
  outputHiddenStates?: boolean;
}

export interface CLIPVisionTransformerOutput {
  /** [B, patches + 1, D]: the encoder's output (no post_layernorm, as transformers). */
  lastHiddenState: Tensor;
  /** [B, D]: post_layernorm of the class token. */
  poolerOutput: Tensor;
  /** num_hidden_layers + 1 tensors [B, patches + 1, D], or null. */
  hiddenStates: Tensor[] | null;
}

/** transformers' CLIPVisionTransformer: the `vision_model` of the CLIP vision models. */
export class CLIPVisionTransformer extends Module {
  readonly config: CLIPVisionConfig;
  readonly embeddings: CLIPVisionEmbeddings;
  readonly preLayrnorm: LayerNorm;
  readonly encoder: CLIPEncoder;
  readonly postLayernorm: LayerNorm;

  constructor(config: CLIPVisionConfig, init: ClipInitOptions = {}) {
    super();
    this.config = config;
    const norm = { eps: config.layer_norm_eps, ...(init.dtype && { dtype: init.dtype }), ...(init.device && { device: init.device }) };
    this.embeddings = this.registerModule('embeddings', new CLIPVisionEmbeddings(config, init));
    this.preLayrnorm = this.registerModule('pre_layrnorm', new LayerNorm(config.hidden_size, norm));
    this.encoder = this.registerModule('encoder', new CLIPEncoder(config, init));
    this.postLayernorm = this.registerModule('post_layernorm', new LayerNorm(config.hidden_size, norm));
  }

  forward(pixelValues: Tensor, { outputHiddenStates = false }: CLIPVisionForwardOptions = {}): CLIPVisionTransformerOutput {
    this.#checkPixels(pixelValues);
    return tidy(() => {
      const h = this.preLayrnorm.forward(this.embeddings.forward(pixelValues));
      const { lastHiddenState, hiddenStates } = this.encoder.forward(h, {}, outputHiddenStates);
      const poolerOutput = this.postLayernorm.forward(lastHiddenState.select(1, 0));
      return { lastHiddenState, poolerOutput, hiddenStates };
    });
  }

  #checkPixels(x: Tensor): void {
    const { num_channels: c, image_size: s } = this.config;
    const [b, xc, xh, xw] = x.shape;
    if (x.ndim !== 4 || xc !== c || xh !== s || xw !== s || b === 0) {
      throw new RangeError(`CLIP vision model takes pixel values [batch, ${c}, ${s}, ${s}] (see clipPreprocess), not a tensor of shape [${x.shape.join(', ')}]`);
    }
    if (!['float32', 'float64', 'float16', 'bfloat16'].includes(x.dtype)) throw new TypeError(`CLIP vision model takes floating-point pixel values, not ${x.dtype}`);
  }
}

export interface CLIPVisionModelOutput {
  /** [B, projection_dim]: visual_projection(post_layernorm(class token)). */
  imageEmbeds: Tensor;
  /** [B, patches + 1, hidden_size]. */
  lastHiddenState: Tensor;
  hiddenStates: Tensor[] | null;
}

/** transformers' CLIPVisionModelWithProjection: `vision_model.*` and `visual_projection.weight`. */
export class CLIPVisionModelWithProjection extends Module {
  readonly config: CLIPVisionConfig;
  readonly visionModel: CLIPVisionTransformer;
  readonly visualProjection: Linear;

  constructor(config: CLIPVisionConfig = CLIP_VIT_L14_VISION_CONFIG, init: ClipInitOptions = {}) {
    super();
    // Re-read through the parser, so a config written by hand is checked like a file.
    this.config = clipVisionConfigFromJson(config, 'CLIPVisionModelWithProjection config');
    this.visionModel = this.registerModule('vision_model', new CLIPVisionTransformer(this.config, init));
    this.visualProjection = this.registerModule('visual_projection', new Linear(this.config.hidden_size, this.config.projection_dim, { bias: false, ...init }));
  }

  /** A model built from config.json (text or parsed object); see clipVisionConfigFromJson. */
  static fromConfigJson(json: unknown, init: ClipInitOptions = {}, source?: string): CLIPVisionModelWithProjection {
    return new CLIPVisionModelWithProjection(clipVisionConfigFromJson(json, source), init);
  }

  forward(pixelValues: Tensor, options: CLIPVisionForwardOptions = {}): CLIPVisionModelOutput {
    return tidy(() => {
      const { lastHiddenState, poolerOutput, hiddenStates } = this.visionModel.forward(pixelValues, options);
      return { imageEmbeds: this.visualProjection.forward(poolerOutput), lastHiddenState, hiddenStates };
    });
  }

  /** As Module.loadStateDict, but a checkpoint's `vision_model.embeddings.position_ids` is accepted and ignored. */
  override loadStateDict(state: Readonly<Record<string, Tensor>>, options?: LoadOptions): LoadResult {
    return super.loadStateDict(withoutIgnoredClipKeys(state), options);
  }
}
