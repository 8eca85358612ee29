// MoA weights files: one safetensors file with only what MoA adds (personal experts, routers,
// fusion MLP, trained image-encoder layers) and metadata that says what it is and which base
// architecture it fits, so loading it into another architecture fails with a clear message
// instead of a list of mis-shaped keys. The base model's own weights are never written or read.
import { type DType, isFloating } from '../tensor/dtype.js';
import { tidy } from '../tensor/scope.js';
import { type Tensor } from '../tensor/tensor.js';
import { openSafetensors, saveSafetensors } from '../io/safetensors.js';
import { loadWeights, WeightSource } from '../io/weights.js';
import { type MoAConfig, moaConfig } from './config.js';
import { type MoA, type MoALayerInfo } from './moa.js';

export const MOA_WEIGHTS_FORMAT = 'moa';
export const MOA_WEIGHTS_VERSION = '1';

export class MoAWeightsError extends Error {
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.name = 'MoAWeightsError';
  }
}

export interface SaveMoAWeightsOptions {
  /** What the MoA was trained on (a model id, folder or file name): recorded, shown, not enforced. */
  baseModel?: string;
  /** Store floating-point tensors in this dtype (e.g. 'bfloat16' halves the file); default: as they are. */
  dtype?: DType;
  /** More string metadata (e.g. training steps); the keys this format uses cannot be overridden. */
  metadata?: Readonly<Record<string, string>>;
}

/** What a MoA weights file says about itself. */
export interface MoAWeightsInfo {
  baseModel: string;
  config: MoAConfig;
  layers: MoALayerInfo[];
  metadata: Readonly<Record<string, string>>;
}

/** Writes MoA's tensors and metadata (atomically: a failure leaves an existing file as it was). */
export function saveMoAWeights(path: string, moa: MoA, { baseModel = 'unknown', dtype, metadata = {} }: SaveMoAWeightsOptions = {}): void {
  tidy(() => {
    const state = moa.moaStateDict();
    if (dtype) for (const [key, t] of Object.entries(state)) if (isFloating(t.dtype) && t.dtype !== dtype) state[key] = t.to(dtype);
    saveSafetensors(path, state, {
      ...metadata,
      format: MOA_WEIGHTS_FORMAT,
      version: MOA_WEIGHTS_VERSION,
      base_model: baseModel,
      moa_config: JSON.stringify(moa.config),
      moa_layers: JSON.stringify(moa.layerInfo()),
    });
  });
}

/** Reads a MoA weights file's metadata (no tensors): to build a matching MoA before loading. */
export function readMoAWeightsInfo(path: string): MoAWeightsInfo {
  const { metadata } = openSafetensors(path);
  const format = metadata['format'];
  if (format !== MOA_WEIGHTS_FORMAT) {
    throw new MoAWeightsError(path, `not a MoA weights file (its metadata format is ${format === undefined ? 'absent' : JSON.stringify(format)}, MoA weights say "moa"); is it a base model checkpoint?`);
  }
  if (metadata['version'] !== MOA_WEIGHTS_VERSION) {
    throw new MoAWeightsError(path, `MoA weights version ${JSON.stringify(metadata['version'])} is not supported (this moa reads version ${MOA_WEIGHTS_VERSION})`);
  }
  const json = (key: string): unknown => {
    try {
      return JSON.parse(metadata[key] ?? '');
    } catch {
      throw new MoAWeightsError(path, `the metadata "${key}" is missing or not JSON`);
    }
  };
  let config: MoAConfig;
  try {
    config = moaConfig(json('moa_config') as Record<string, unknown>);
  } catch (error) {
    throw new MoAWeightsError(path, `bad "moa_config": ${(error as Error).message}`);
  }
  const layers = json('moa_layers');
  if (!Array.isArray(layers)) throw new MoAWeightsError(path, 'the metadata "moa_layers" must be a list of layers');
  return { baseModel: metadata['base_model'] ?? 'unknown', config, layers: layers as MoALayerInfo[], metadata };
}

const describe = (layers: readonly MoALayerInfo[]) => {
  const widths = [...new Set(layers.map((l) => l.width))].join('/');
  const text = [...new Set(layers.filter((l) => l.kind === 'cross').map((l) => l.contextDim))].join('/');
  return `${layers.length} attention layers of widths ${widths} with text width ${text || 'none'}`;
};
const sameLayer = (a: MoALayerInfo, b: MoALayerInfo) => a.name === b.name && a.kind === b.kind && a.width === b.width && a.contextDim === b.contextDim && a.heads === b.heads;

// Config fields that shape tensors; the others (initial r0, subject limit) may differ.
const SHAPING: readonly (keyof MoAConfig)[] = ['routerHiddenRatio', 'imageEmbedDim', 'fusionTimestepDim', 'trainImageEncoderLayers'];

/**
 * Loads MoA weights into `moa` (its MoA tensors only; the base model is untouched). Checks, before
 * reading any tensor: the file is MoA weights, its base architecture's attention layers are
 * this UNet's, its shape-giving config matches; then every key and shape (StateDictError).
 */
export function loadMoAWeights(path: string, moa: MoA): MoAWeightsInfo {
  const info = readMoAWeightsInfo(path);
  const mine = moa.layerInfo();
  if (info.layers.length !== mine.length || info.layers.some((l, i) => !sameLayer(l, mine[i]!))) {
    const first = info.layers.findIndex((l, i) => !mine[i] || !sameLayer(l, mine[i]!));
    const at = first >= 0 && mine[first] && info.layers[first] ? ` (first difference: ${info.layers[first]!.name} width ${info.layers[first]!.width} vs ${mine[first]!.name} width ${mine[first]!.width})` : '';
    throw new MoAWeightsError(
      path,
      `these MoA weights were made for a base UNet with ${describe(info.layers)} (base model "${info.baseModel}"); ` +
        `this UNet has ${describe(mine)}${at}. MoA weights load only into the base architecture they were trained for.`,
    );
  }
  const differ = SHAPING.filter((k) => info.config[k] !== moa.config[k]);
  if (differ.length) {
    throw new MoAWeightsError(
      path,
      `these MoA weights were made with ${differ.map((k) => `${k} = ${info.config[k]}`).join(', ')}, this MoA has ${differ.map((k) => `${k} = ${moa.config[k]}`).join(', ')}: ` +
        'build the MoA with the file\'s config (readMoAWeightsInfo(path).config)',
    );
  }
  loadWeights(moa.moaModule(), WeightSource.open(path), { what: 'MoA weights' });
  return info;
}

/** MoA weights as tensors (for tools that inspect them); the caller disposes them. */
export function readMoAWeights(path: string): { info: MoAWeightsInfo; tensors: Record<string, Tensor> } {
  const info = readMoAWeightsInfo(path);
  return { info, tensors: openSafetensors(path).load() };
}
