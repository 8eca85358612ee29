// The model a pretraining run builds, kept as a diffusers folder (outputDir) that is valid after
// every stage: model_index.json, unet/, vae/, text_encoder/, tokenizer/, scheduler/ and
// image_encoder/, plus pretrain.json saying which stages are done. A stage starts from the folder
// (the networks it does not train stay as they are there) and re-initialises what it trains.
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomically } from '../../io/atomic.js';
import { isDiffusersFolder, readDiffusersConfigs, saveDiffusersFolder } from '../../io/diffusers.js';
import { loadSafetensors, saveSafetensors } from '../../io/safetensors.js';
import { CLIPTextModel } from '../../models/clip-text.js';
import type { ClipTokenizer } from '../../models/clip-tokenizer.js';
import { clipVisionConfigFromJson, CLIPVisionModelWithProjection } from '../../models/clip-vision.js';
import { UNet2DConditionModel } from '../../models/unet/unet.js';
import { AutoencoderKL } from '../../models/vae/autoencoder-kl.js';
import type { Module } from '../../nn/module.js';
import { openImageEncoder } from '../../pipelines/load-moa.js';
import { openStableDiffusion } from '../../pipelines/load.js';
import { disposeStableDiffusion, STANDARD_GUIDANCE, type StableDiffusion, type StableDiffusionConfigs } from '../../pipelines/stable-diffusion.js';
import { parseSchedulerConfig } from '../../schedulers/index.js';
import type { Device } from '../../tensor/device.js';
import type { DType } from '../../tensor/dtype.js';
import { Generator } from '../../tensor/generator.js';
import { tidy } from '../../tensor/scope.js';
import { mixSeed } from '../data/rng.js';
import type { PretrainConfig, SaveDtype, StageName } from './config.js';
import { textEncoderConfig } from './model-configs.js';

export const STATUS_FILE = 'pretrain.json';
const STATUS_FORMAT = 'moa-pretrain';

export type Component = 'vae' | 'text_encoder' | 'unet' | 'image_encoder';

/** The networks each stage trains (and so re-initialises when it starts afresh). */
export const STAGE_COMPONENTS: Record<StageName, readonly Component[]> = {
  vae: ['vae'],
  'image-encoder': ['image_encoder'],
  base: ['text_encoder', 'unet'],
};

export interface StageStatus {
  steps: number;
  finishedAt: string;
  /** The vae stage's measured latent scaling factor. */
  scalingFactor?: number;
}

export interface PretrainStatus {
  format: typeof STATUS_FORMAT;
  stages: Partial<Record<StageName, StageStatus>>;
}

export interface PretrainModel {
  sd: StableDiffusion;
  imageEncoder: CLIPVisionModelWithProjection;
  status: PretrainStatus;
}

/** The configs the run's networks have, from the pretrain config and the tokenizer. */
export function configsOf(config: PretrainConfig, tokenizer: ClipTokenizer): StableDiffusionConfigs {
  const { models } = config;
  return { unet: { ...models.unet }, vae: { ...models.vae }, textEncoder: textEncoderConfig(models, tokenizer), scheduler: { ...models.scheduler } };
}

export function readStatus(outputDir: string): PretrainStatus {
  const path = join(outputDir, STATUS_FILE);
  if (!existsSync(path)) return { format: STATUS_FORMAT, stages: {} };
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (error) {
    throw new Error(`${path} is not valid JSON: ${error instanceof Error ? error.message : String(error)}`);
  }
  const status = json as Partial<PretrainStatus> | null;
  if (status?.format !== STATUS_FORMAT || typeof status.stages !== 'object' || status.stages === null) throw new Error(`${path} is not a moa pretraining status file`);
  return status as PretrainStatus;
}

/** JSON with sorted keys, so two configs compare by content. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v) ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1))) : v,
  );
}

const without = (o: Record<string, unknown>, keys: readonly string[]) => Object.fromEntries(Object.entries(o).filter(([k]) => !keys.includes(k)));
const WRITER_KEYS = ['_class_name', '_diffusers_version', 'architectures', 'model_type'];

/** The components of the folder whose config differs from the run's. */
function differingComponents(dir: string, configs: StableDiffusionConfigs, imageEncoder: Record<string, unknown>): Component[] {
  const folder = readDiffusersConfigs(dir);
  const differ: Component[] = [];
  if (canonical(without(folder.unet, WRITER_KEYS)) !== canonical(configs.unet)) differ.push('unet');
  if (canonical(without(folder.vae, [...WRITER_KEYS, 'scaling_factor'])) !== canonical(configs.vae)) differ.push('vae');
  if (canonical(folder.textEncoder) !== canonical(configs.textEncoder)) differ.push('text_encoder');
  const encoderJson = join(dir, 'image_encoder', 'config.json');
  if (existsSync(encoderJson)) {
    const theirs = clipVisionConfigFromJson(readFileSync(encoderJson, 'utf8'), encoderJson);
    if (canonical(theirs) !== canonical(clipVisionConfigFromJson(imageEncoder))) differ.push('image_encoder');
  }
  return differ;
}

/** A freshly initialised network, seeded by the run's seed and the component (the same every time). */
function freshNetwork(component: Component, configs: StableDiffusionConfigs, imageEncoder: Record<string, unknown>, seed: number, device: Device): Module {
  const index = (['vae', 'text_encoder', 'unet', 'image_encoder'] as const).indexOf(component);
  const init = { generator: new Generator(mixSeed(seed, 0x1417, index)), device };
  switch (component) {
    case 'vae':
      return new AutoencoderKL(configs.vae, init);
    case 'text_encoder':
      return new CLIPTextModel(configs.textEncoder, init);
    case 'unet':
      return new UNet2DConditionModel(configs.unet, init);
    case 'image_encoder':
      return CLIPVisionModelWithProjection.fromConfigJson(imageEncoder, init);
  }
}

/**
 * The run's model: the networks in outputDir where it holds them (their configs must match the
 * run's), fresh ones elsewhere; the networks `stage` trains are always fresh.
 */
export function openPretrainModel(config: PretrainConfig, tokenizer: ClipTokenizer, { stage, device = 'cpu' }: { stage: StageName; device?: Device }): PretrainModel {
  const configs = configsOf(config, tokenizer);
  const encoderConfig = config.models.imageEncoder;
  const fresh = new Set<Component>(STAGE_COMPONENTS[stage]);
  const dir = config.outputDir;
  const status = readStatus(dir);
  let loaded: StableDiffusion | null = null;
  let encoder: CLIPVisionModelWithProjection | null = null;
  if (isDiffusersFolder(dir)) {
    const stale = differingComponents(dir, configs, encoderConfig).filter((c) => !fresh.has(c));
    if (stale.length) {
      throw new Error(
        `'${dir}' holds ${stale.join(', ')} built with other sizes than the config's models: run the stages that train them again ` +
          `(--stage all), or give a new outputDir`,
      );
    }
    loaded = openStableDiffusion(dir, { device });
    if (!fresh.has('image_encoder') && existsSync(join(dir, 'image_encoder', 'config.json'))) encoder = openImageEncoder(join(dir, 'image_encoder'), { device });
  }
  const scalingFactor = loaded && !fresh.has('vae') ? (loaded.configs.vae.scaling_factor as number | undefined) : undefined;
  if (scalingFactor !== undefined) configs.vae.scaling_factor = scalingFactor;
  const pick = <M extends Module>(component: Component, existing: M | undefined): M => {
    if (existing && !fresh.has(component)) return existing;
    existing?.dispose();
    return freshNetwork(component, configs, encoderConfig, config.seed, device) as M;
  };
  const sd: StableDiffusion = {
    tokenizer,
    textEncoder: pick('text_encoder', loaded?.textEncoder),
    unet: pick('unet', loaded?.unet),
    vae: pick('vae', loaded?.vae),
    schedulerConfig: parseSchedulerConfig(configs.scheduler),
    configs,
    source: dir,
    device,
    // Without one in the config, a default set by hand in the folder survives retraining a stage.
    defaultGuidance: config.guidance ?? loaded?.defaultGuidance ?? STANDARD_GUIDANCE,
  };
  const imageEncoder = pick('image_encoder', encoder ?? undefined);
  return { sd, imageEncoder, status };
}

export function disposePretrainModel(model: PretrainModel): void {
  disposeStableDiffusion(model.sd);
  model.imageEncoder.dispose();
}

const DTYPES: Record<SaveDtype, DType> = { fp32: 'float32', fp16: 'float16', bf16: 'bfloat16' };

/** Rewrites a weights file with its floating-point tensors in `dtype`. */
function storeAs(path: string, dtype: DType): void {
  const { tensors, metadata } = loadSafetensors(path, { floatDtype: dtype });
  try {
    saveSafetensors(path, tensors, metadata);
  } finally {
    for (const t of Object.values(tensors)) t.dispose();
  }
}

/** Writes the whole model to outputDir as a diffusers folder (weights in saveDtype) and the status file. */
export function writePretrainModel(model: PretrainModel, config: PretrainConfig): void {
  const dir = config.outputDir;
  const { sd, imageEncoder } = model;
  saveDiffusersFolder(sd, dir);
  const encoderDir = join(dir, 'image_encoder');
  mkdirSync(encoderDir, { recursive: true });
  writeFileAtomically(
    join(encoderDir, 'config.json'),
    Buffer.from(JSON.stringify({ architectures: ['CLIPVisionModelWithProjection'], model_type: 'clip_vision_model', ...imageEncoder.config }, null, 2) + '\n'),
  );
  const dtype = DTYPES[config.saveDtype];
  tidy(() => {
    const state = imageEncoder.stateDict();
    saveSafetensors(join(encoderDir, 'model.safetensors'), dtype === 'float32' ? state : Object.fromEntries(Object.entries(state).map(([k, t]) => [k, t.to(dtype)])));
  });
  if (dtype !== 'float32') {
    for (const file of ['unet/diffusion_pytorch_model.safetensors', 'vae/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors']) storeAs(join(dir, file), dtype);
  }
  // diffusers names the image encoder in model_index.json (StableDiffusionPipeline's optional component).
  const indexPath = join(dir, 'model_index.json');
  const index = JSON.parse(readFileSync(indexPath, 'utf8')) as Record<string, unknown>;
  writeFileAtomically(indexPath, Buffer.from(JSON.stringify({ ...index, image_encoder: ['transformers', 'CLIPVisionModelWithProjection'] }, null, 2) + '\n'));
  writeFileAtomically(join(dir, STATUS_FILE), Buffer.from(JSON.stringify(model.status, null, 2) + '\n'));
}
