// The small default model the project trains on its synthetic world and ships in models/world:
// a diffusers folder with image_encoder/ and the MoA weights beside it (moa.safetensors).
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface DefaultModel {
  /** The diffusers folder. */
  model: string;
  /** Its MoA weights, or null when only the base model is shipped. */
  moa: string | null;
}

/** The package root, from dist/src/pipelines or src/pipelines. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('moa: cannot find the package root (package.json) above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return dir;
}

/** Where the default model lives: MOA_DEFAULT_MODEL, else <package>/models/world. */
export function defaultModelDir(): string {
  return process.env.MOA_DEFAULT_MODEL ?? join(packageRoot(), 'models', 'world');
}

/** The shipped default model, or a clear error saying how to pass one. */
export function defaultModel(): DefaultModel {
  const model = defaultModelDir();
  if (!existsSync(join(model, 'model_index.json'))) {
    throw new Error(`no default model at '${model}' (expected a diffusers folder with model_index.json): pass --model with a diffusers folder or a .safetensors checkpoint`);
  }
  const moa = join(model, 'moa.safetensors');
  return { model, moa: existsSync(moa) ? moa : null };
}
