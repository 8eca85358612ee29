// `moa inspect`: the networks of a model and their parameter counts, built from configs alone.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readDiffusersConfigs } from '../io/diffusers.js';
import { CLIP_VIT_L14_VISION_CONFIG, clipVisionConfigFromJson, CLIPVisionModelWithProjection } from '../models/clip-vision.js';
import { CLIPTextModel } from '../models/clip-text.js';
import { UNet2DConditionModel } from '../models/unet/unet.js';
import { AutoencoderKL } from '../models/vae/autoencoder-kl.js';
import type { Module } from '../nn/module.js';
import { SD15_CONFIGS, type StableDiffusionConfigs } from '../pipelines/stable-diffusion.js';
import { readFileSync } from 'node:fs';

export interface ComponentReport {
  class: string;
  params: number;
  tensors: number;
}
export type InspectReport = Record<string, ComponentReport>;

// Built uninitialised in bfloat16: counting needs shapes, not values, and SD1.5 is 1.4B numbers.
const INIT = { empty: true, dtype: 'bfloat16' as const };

function measure(make: () => Module): ComponentReport {
  const module = make();
  try {
    return { class: module.constructor.name, params: module.numParameters(), tensors: module.parameters().length };
  } finally {
    module.dispose();
  }
}

/** 'sd15', or a diffusers folder (with an optional image_encoder/ beside the usual components). */
export function inspectModel(target: string): InspectReport {
  let configs: StableDiffusionConfigs;
  let vision: Record<string, unknown> | null = null;
  if (target === 'sd15') {
    configs = SD15_CONFIGS;
  } else if (existsSync(target)) {
    configs = readDiffusersConfigs(target);
    const visionConfig = join(target, 'image_encoder', 'config.json');
    if (existsSync(visionConfig)) vision = JSON.parse(readFileSync(visionConfig, 'utf8')) as Record<string, unknown>;
  } else {
    throw new Error(`'${target}' is neither the built-in config 'sd15' nor an existing diffusers folder`);
  }
  const report: InspectReport = {
    unet: measure(() => new UNet2DConditionModel(configs.unet, INIT)),
    vae: measure(() => new AutoencoderKL(configs.vae, INIT)),
    textEncoder: measure(() => new CLIPTextModel(configs.textEncoder, INIT)),
  };
  if (target === 'sd15' || vision) {
    const config = vision ? clipVisionConfigFromJson(vision) : CLIP_VIT_L14_VISION_CONFIG;
    report.imageEncoder = measure(() => new CLIPVisionModelWithProjection(config, INIT));
  }
  return report;
}

export function formatInspect(target: string, report: InspectReport): string {
  const rows = Object.entries(report).map(([name, r]) => `  ${name.padEnd(14)} ${r.class.padEnd(32)} ${r.params.toLocaleString('en-US').padStart(13)} parameters`);
  const total = Object.values(report).reduce((sum, r) => sum + r.params, 0);
  return [`${target}`, ...rows, `  ${'total'.padEnd(14)} ${''.padEnd(32)} ${total.toLocaleString('en-US').padStart(13)} parameters`].join('\n');
}
