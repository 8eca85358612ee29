// Loading weights from safetensors files into a Module, one tensor at a time, so a model is never
// held twice in memory. Every key and shape is checked from the files' headers before anything is
// read, and a failure names every key that does not match.
import { existsSync, readFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { type Module, StateDictError } from '../nn/module.js';
import { noGrad } from '../tensor/autograd.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { openSafetensors, type SafetensorsFile, type TensorInfo } from './safetensors.js';

const PICKLE_EXTENSIONS = new Set(['.bin', '.ckpt', '.pt', '.pth', '.pkl', '.pickle']);

/**
 * Refuses pickle-based checkpoints: unpickling runs code chosen by whoever made the file.
 * The message says how to turn one into safetensors once, in Python, where the user decides.
 */
export function refusePickle(path: string): void {
  if (!PICKLE_EXTENSIONS.has(extname(path).toLowerCase())) return;
  throw new Error(
    `${path} is a pickle file (${extname(path)}). moa does not load pickle files: reading one runs ` +
      'whatever code its author put in it. Convert it to safetensors once, where you trust it, e.g.:\n' +
      `  python3 -c "import torch; from safetensors.torch import save_file; ` +
      `d = torch.load('${basename(path)}', map_location='cpu', weights_only=True); ` +
      `save_file({k: v.contiguous() for k, v in d.get('state_dict', d).items()}, '${basename(path, extname(path))}.safetensors')"\n` +
      'or save the model with diffusers/transformers using safe_serialization=True.',
  );
}

/** Tensors by name across one or more safetensors files (a sharded checkpoint is several). */
export class WeightSource {
  readonly #files: SafetensorsFile[];
  readonly #where = new Map<string, SafetensorsFile>();

  constructor(paths: readonly string[]) {
    for (const path of paths) refusePickle(path);
    this.#files = paths.map((p) => openSafetensors(p));
    for (const file of this.#files) for (const key of file.keys()) this.#where.set(key, file);
  }

  /** A single file, or the shards an `*.safetensors.index.json` names. */
  static open(path: string): WeightSource {
    refusePickle(path);
    if (path.endsWith('.index.json')) {
      const index = JSON.parse(readFileSync(path, 'utf8')) as { weight_map?: Record<string, string> };
      if (!index.weight_map || typeof index.weight_map !== 'object') throw new Error(`${path}: an index file needs a "weight_map"`);
      const shards = [...new Set(Object.values(index.weight_map))].map((f) => join(dirname(path), f));
      return new WeightSource(shards);
    }
    return new WeightSource([path]);
  }

  get paths(): string[] {
    return this.#files.map((f) => f.path);
  }
  keys(): string[] {
    return [...this.#where.keys()];
  }
  has(key: string): boolean {
    return this.#where.has(key);
  }
  info(key: string): TensorInfo {
    return this.#file(key).info(key);
  }
  get(key: string): Tensor {
    return this.#file(key).get(key);
  }
  #file(key: string): SafetensorsFile {
    const file = this.#where.get(key);
    if (!file) throw new Error(`no tensor '${key}' in ${this.paths.join(', ')}`);
    return file;
  }
}

export interface LoadWeightsOptions {
  /** Maps a module key to the key in the source (default: the same). */
  sourceKey?: (moduleKey: string) => string;
  /** Source keys that may be present without a module key (e.g. position_ids, EMA copies). */
  ignore?: (sourceKey: string) => boolean;
  /** Adapts a read tensor to the module's shape (e.g. 1×1 conv weights to linear ones). */
  adapt?: (moduleKey: string, tensor: Tensor, expected: readonly number[]) => Tensor;
  /** Source keys outside this prefix set belong to other components and are not reported. */
  owns?: (sourceKey: string) => boolean;
  /** Name used in error messages. */
  what?: string;
}

const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);
const numel = (s: readonly number[]) => s.reduce((a, b) => a * b, 1);

/**
 * Copies weights from `source` into `module`'s parameters and persistent buffers, converting
 * dtype and device to the module's. Checks everything first: a mismatch throws a StateDictError
 * listing all missing, unexpected and mis-shaped keys, and leaves the module untouched.
 */
export function loadWeights(module: Module, source: WeightSource, options: LoadWeightsOptions = {}): void {
  const { sourceKey = (k) => k, ignore = () => false, owns = () => true, adapt, what = module.constructor.name } = options;
  const targets = tidy(() => Object.entries(module.stateDict()).map(([key, t]) => ({ key, shape: t.shape })));
  const missing: string[] = [];
  const mismatched: { key: string; expected: readonly number[]; got: readonly number[] }[] = [];
  const used = new Set<string>();
  for (const { key, shape } of targets) {
    const from = sourceKey(key);
    if (!source.has(from)) {
      missing.push(from);
      continue;
    }
    used.add(from);
    const got = source.info(from).shape;
    // An adapter may reshape, but never change the element count.
    if (!sameShape(got, shape) && !(adapt && numel(got) === numel(shape))) mismatched.push({ key: from, expected: shape, got });
  }
  const unexpected = source.keys().filter((k) => owns(k) && !used.has(k) && !ignore(k));
  if (missing.length || unexpected.length || mismatched.length) {
    throw new StateDictError(`${what} (from ${source.paths.join(', ')})`, missing, unexpected, mismatched);
  }
  noGrad(() => {
    const params = module.stateDict();
    try {
      for (const { key, shape } of targets) {
        tidy(() => {
          let t = source.get(sourceKey(key));
          if (!sameShape(t.shape, shape)) t = adapt!(key, t, shape);
          params[key]!.copy_(t);
        });
      }
    } finally {
      for (const t of Object.values(params)) t.dispose();
    }
  });
}

/** The weights file of a diffusers component folder, preferring a variant (e.g. 'fp16') if present. */
export function findComponentWeights(dir: string, stems: readonly string[], variant?: string): string {
  const names = stems.flatMap((stem) => [
    ...(variant ? [`${stem}.${variant}.safetensors`, `${stem}.safetensors.index.${variant}.json`] : []),
    `${stem}.safetensors`,
    `${stem}.safetensors.index.json`,
  ]);
  for (const name of names) if (existsSync(join(dir, name))) return join(dir, name);
  for (const stem of stems) {
    for (const ext of ['.bin', '.ckpt', '.pt']) {
      for (const name of [`${stem}${ext}`, ...(variant ? [`${stem}.${variant}${ext}`] : [])]) {
        if (existsSync(join(dir, name))) refusePickle(join(dir, name));
      }
    }
  }
  throw new Error(`${dir}: no weights found (looked for ${names.join(', ')})`);
}
