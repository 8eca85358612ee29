// Reading transformers' CLIP config.json files: fields keep transformers' snake_case names so a
// parsed file maps one to one; absent fields take transformers' defaults (as from_pretrained
// does), present but invalid ones throw a ClipConfigError naming the file and the field.

/** Activations transformers' CLIP configs name. gelu_new and gelu_pytorch_tanh are both the tanh form. */
export const CLIP_ACTIVATIONS = ['quick_gelu', 'gelu', 'gelu_new', 'gelu_pytorch_tanh'] as const;
export type ClipActivation = (typeof CLIP_ACTIVATIONS)[number];

/** The part of a config the shared encoder needs (text and vision configs both have it). */
export interface ClipEncoderConfig {
  readonly hidden_size: number;
  readonly intermediate_size: number;
  readonly num_hidden_layers: number;
  readonly num_attention_heads: number;
  readonly hidden_act: ClipActivation;
  readonly layer_norm_eps: number;
}

export class ClipConfigError extends Error {
  constructor(source: string, problem: string) {
    super(`${source}: ${problem}`);
    this.name = 'ClipConfigError';
  }
}

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A config given as JSON text or as an already parsed object, as a plain object. */
export function configObject(json: unknown, source: string): Json {
  let value = json;
  if (typeof json === 'string') {
    try {
      value = JSON.parse(json);
    } catch (error) {
      throw new ClipConfigError(source, `not valid JSON (${error instanceof Error ? error.message : String(error)})`);
    }
  }
  if (!isObject(value)) throw new ClipConfigError(source, `a config is a JSON object, not ${Array.isArray(value) ? 'an array' : typeof value}`);
  return value;
}

/** A nested sub-config (CLIPConfig's text_config / vision_config), or null when absent. */
export function nestedConfig(config: Json, keys: readonly string[], source: string): Json | null {
  for (const key of keys) {
    const value = config[key];
    if (value === undefined || value === null) continue;
    if (!isObject(value)) throw new ClipConfigError(source, `"${key}" must be an object`);
    return value;
  }
  return null;
}

/** Field readers: the default when absent, a clear error when present and wrong. */
export class FieldReader {
  constructor(
    private readonly config: Json,
    readonly source: string,
  ) {}

  has(key: string): boolean {
    return this.config[key] !== undefined;
  }

  int(key: string, fallback: number, min = 1): number {
    const v = this.config[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) {
      throw new ClipConfigError(this.source, `"${key}" must be an integer ≥ ${min}, not ${JSON.stringify(v)}`);
    }
    return v;
  }

  /** A token id: an integer ≥ 0, or null where the config says null. */
  tokenId(key: string, fallback: number | null): number | null {
    const v = this.config[key] === undefined ? fallback : this.config[key];
    if (v === null) return null;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 0) {
      throw new ClipConfigError(this.source, `"${key}" must be a token id (an integer ≥ 0) or null, not ${JSON.stringify(v)}`);
    }
    return v;
  }

  positive(key: string, fallback: number): number {
    const v = this.config[key] ?? fallback;
    if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0) {
      throw new ClipConfigError(this.source, `"${key}" must be a positive number, not ${JSON.stringify(v)}`);
    }
    return v;
  }

  activation(key: string, fallback: ClipActivation): ClipActivation {
    const v = this.config[key] ?? fallback;
    if (typeof v !== 'string' || !(CLIP_ACTIVATIONS as readonly string[]).includes(v)) {
      throw new ClipConfigError(this.source, `"${key}" ${JSON.stringify(v)} is not supported; expected one of ${CLIP_ACTIVATIONS.join(', ')}`);
    }
    return v as ClipActivation;
  }

  /** model_type, when present, must be one of the expected names (catches a UNet or VAE config). */
  modelType(expected: readonly string[]): void {
    const v = this.config['model_type'];
    if (v !== undefined && !expected.includes(v as string)) {
      throw new ClipConfigError(this.source, `model_type is ${JSON.stringify(v)}, expected ${expected.map((e) => `"${e}"`).join(' or ')}`);
    }
  }

  /** Refuses an object that has none of a CLIP config's fields (a wrong file would otherwise parse as the defaults). */
  requireAny(keys: readonly string[], what: string): void {
    if (!keys.some((k) => this.has(k))) throw new ClipConfigError(this.source, `does not look like a ${what} (none of ${keys.join(', ')})`);
  }
}

/** Checks shared by text and vision configs. */
export function checkEncoderConfig(config: ClipEncoderConfig, source: string): void {
  if (config.hidden_size % config.num_attention_heads !== 0) {
    throw new ClipConfigError(source, `hidden_size (${config.hidden_size}) must be divisible by num_attention_heads (${config.num_attention_heads})`);
  }
}
