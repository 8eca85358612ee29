// The judges `moa eval` scores generations with: a segmenter, an attribute recogniser and a scene
// recogniser, trained on rendered world images only (src/eval/train-judges.ts). A judges folder
// holds judges.safetensors (the three nets under `segmenter.`, `attributes.`, `scene.`) and
// config.json (their sizes, how they were trained and their held-out accuracy).
import { existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeFileAtomically } from '../io/atomic.js';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import type { InitOptions } from '../nn/init.js';
import type { Module } from '../nn/module.js';
import { noGrad } from '../tensor/autograd.js';
import { stack } from '../tensor/functional.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { CLASS_ATTRIBUTES, CLASSES, SCENE_KINDS, type SceneKind, TIMES, type TimeOfDay } from '../world/vocab.js';
import { type Box, subjectCrop } from './crops.js';
import { AttributeNet, type AttributeNetConfig, SceneNet, type SceneNetConfig, Segmenter, type SegmenterConfig } from './judge-nets.js';
import { ATTRIBUTE_HEADS, ATTRIBUTE_LOGITS, className } from './labels.js';
import { findRegions, matchSubjects, type Region } from './regions.js';
import { shrink } from './render.js';

export const JUDGES_FORMAT = 'moa-judges';
export const JUDGES_VERSION = 1;
export const JUDGES_WEIGHTS = 'judges.safetensors';
export const JUDGES_CONFIG = 'config.json';

export interface JudgesConfig {
  format: typeof JUDGES_FORMAT;
  version: typeof JUDGES_VERSION;
  /** Side the judges read images at; other sizes are resized to it. */
  imageSize: number;
  /** Regions smaller than this (pixels at imageSize) are not subjects. */
  minRegionPixels: number;
  segmenter: SegmenterConfig;
  attributes: AttributeNetConfig;
  scene: SceneNetConfig;
  /**
   * Attributes the judges read well enough to decide an identity (held-out accuracy ≥ 0.9 end to
   * end); an identity match requires all of these to agree.
   */
  reliableAttributes: string[];
  /** How they were trained (train-judges fills it). */
  training?: Record<string, unknown>;
  /** Held-out accuracy measured after training (src/eval/accuracy.ts). */
  heldOut?: Record<string, unknown>;
}

/** The sizes of the judges' nets (what config.json holds besides training records). */
export type JudgesShape = Pick<JudgesConfig, 'imageSize' | 'minRegionPixels' | 'segmenter' | 'attributes' | 'scene'>;

export const DEFAULT_JUDGES_SHAPE: JudgesShape = {
  imageSize: 64,
  minRegionPixels: 12,
  segmenter: { widths: [24, 48, 96, 128] },
  attributes: { cropSize: 40, widths: [32, 48, 96, 128], reduce: 48, hidden: 256 },
  scene: { widths: [16, 32, 64, 96] },
};

/** A subject region the judges found, its class and attributes read from its crop. */
export interface FoundSubject extends Region {
  /** The class the segmenter gave most of the region (classIndex is the crop's reading). */
  segmentedClass: number;
  /** The value of each attribute its class has. */
  attributes: Record<string, string>;
}

/** What the judges see in one image. */
export interface Judgement {
  /** Pixel classes at imageSize (row-major), as the segmenter gives them. */
  classMap: Uint8Array;
  size: number;
  /** Subject regions, largest first (at most MAX_SUBJECTS), each read by the attribute recogniser. */
  subjects: FoundSubject[];
  scene: { kind: SceneKind; time: TimeOfDay };
}

/** What the attribute recogniser reads in a subject's crop. */
export interface SubjectReading {
  /** The class it sees (1..CLASSES). */
  classIndex: number;
  /** The values of the attributes of the class asked for (else of the class it sees). */
  attributes: Record<string, string>;
}

/** Regions read per image, largest first: more than any caption names. */
const MAX_SUBJECTS = 8;

/** The package root, from dist/src/eval or src/eval. */
function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`moa: cannot find the package root (package.json) above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
  return dir;
}

/** The shipped judges: MOA_JUDGES, else <package>/models/judges. */
export function defaultJudgesDir(): string {
  return process.env.MOA_JUDGES ?? join(packageRoot(), 'models', 'judges');
}

function checkConfig(raw: unknown, path: string): JudgesConfig {
  const c = raw as Partial<JudgesConfig> | null;
  if (!c || typeof c !== 'object' || c.format !== JUDGES_FORMAT) throw new Error(`${path} is not a judges config (format '${JUDGES_FORMAT}'): train judges with \`moa eval train-judges --out DIR\``);
  if (c.version !== JUDGES_VERSION) throw new Error(`${path}: judges version ${String(c.version)}, this moa reads version ${JUDGES_VERSION}`);
  for (const key of ['imageSize', 'minRegionPixels', 'segmenter', 'attributes', 'scene', 'reliableAttributes'] as const) {
    if (c[key] === undefined) throw new Error(`${path}: '${key}' is missing`);
  }
  return c as JudgesConfig;
}

export class Judges {
  readonly segmenter: Segmenter;
  readonly attributes: AttributeNet;
  readonly scene: SceneNet;

  constructor(
    readonly config: JudgesConfig,
    init: InitOptions = {},
  ) {
    this.segmenter = new Segmenter(config.segmenter, init);
    this.attributes = new AttributeNet(config.attributes, init);
    this.scene = new SceneNet(config.scene, init);
  }

  get nets(): Record<'segmenter' | 'attributes' | 'scene', Module> {
    return { segmenter: this.segmenter, attributes: this.attributes, scene: this.scene };
  }

  /** Reads a judges folder (config.json + judges.safetensors). */
  static open(dir: string): Judges {
    const configPath = join(dir, JUDGES_CONFIG);
    const weightsPath = join(dir, JUDGES_WEIGHTS);
    if (!existsSync(configPath) || !existsSync(weightsPath)) {
      throw new Error(`no judges in '${dir}' (expected ${JUDGES_CONFIG} and ${JUDGES_WEIGHTS}): train them with \`moa eval train-judges --out ${dir}\`, or pass --judges DIR`);
    }
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(configPath, 'utf8'));
    } catch (error) {
      throw new Error(`${configPath}: not valid JSON (${error instanceof Error ? error.message : String(error)})`, { cause: error });
    }
    const judges = new Judges(checkConfig(raw, configPath), { empty: true });
    const { tensors } = loadSafetensors(weightsPath);
    try {
      for (const [name, net] of Object.entries(judges.nets)) {
        const prefix = `${name}.`;
        const own = Object.fromEntries(Object.entries(tensors).flatMap(([k, t]) => (k.startsWith(prefix) ? [[k.slice(prefix.length), t]] : [])));
        net.loadStateDict(own);
      }
      const known = Object.keys(judges.nets).map((n) => `${n}.`);
      const stray = Object.keys(tensors).filter((k) => !known.some((p) => k.startsWith(p)));
      if (stray.length) throw new Error(`${weightsPath}: tensors of no judge: ${stray.slice(0, 5).join(', ')}`);
    } catch (error) {
      judges.dispose();
      throw error;
    } finally {
      Object.values(tensors).forEach((t) => t.dispose());
    }
    judges.eval();
    return judges;
  }

  /**
   * Writes config.json and judges.safetensors (float16, half the size; roundToStored() first
   * makes the nets compute exactly what they will after loading) into `dir`, each atomically.
   */
  save(dir: string): void {
    mkdirSync(dir, { recursive: true });
    const state: Record<string, Tensor> = {};
    for (const [name, net] of Object.entries(this.nets)) {
      for (const [k, t] of Object.entries(net.stateDict())) {
        state[`${name}.${k}`] = t.dtype === 'float32' ? t.to('float16') : t;
        if (t.dtype === 'float32') t.dispose();
      }
    }
    try {
      saveSafetensors(join(dir, JUDGES_WEIGHTS), state, { format: JUDGES_FORMAT, version: String(JUDGES_VERSION) });
    } finally {
      Object.values(state).forEach((t) => t.dispose());
    }
    writeFileAtomically(join(dir, JUDGES_CONFIG), Buffer.from(JSON.stringify(this.config, null, 2) + '\n'));
  }

  /** Rounds every weight to float16 precision in place: what save() stores. */
  roundToStored(): this {
    noGrad(() => {
      for (const net of Object.values(this.nets)) for (const p of [...net.parameters(), ...net.buffers()]) if (p.dtype === 'float32') tidy(() => p.copy_(p.to('float16').float()));
    });
    return this;
  }

  eval(): this {
    Object.values(this.nets).forEach((n) => n.eval());
    return this;
  }

  train(): this {
    Object.values(this.nets).forEach((n) => n.train());
    return this;
  }

  dispose(): void {
    Object.values(this.nets).forEach((n) => n.dispose());
  }

  /** Images [N, 3, H, W] (or one [3, H, W]) in [0, 1] → float32 [N, 3, S, S] at the judges' size. */
  prepare(images: Tensor): Tensor {
    return tidy(() => {
      const x = (images.ndim === 3 ? images.unsqueeze(0) : images).float().cpu();
      if (x.ndim !== 4 || x.size(1) !== 3) throw new RangeError(`judges read RGB images [N, 3, H, W], not [${images.shape.join(', ')}]`);
      const s = this.config.imageSize;
      return x.size(2) === s && x.size(3) === s ? x.clone() : shrink(x, s);
    });
  }

  /** Pixel classes of prepared images: one row-major map per image. */
  classMaps(prepared: Tensor): Uint8Array[] {
    const labels = noGrad(() => tidy(() => this.segmenter.forward(prepared).argmax(1).to('uint8').contiguous().data() as Uint8Array));
    const n = prepared.size(0);
    const per = labels.length / n;
    return Array.from({ length: n }, (_, i) => labels.slice(i * per, (i + 1) * per));
  }

  /** Scene kind and time of prepared images. */
  scenes(prepared: Tensor): { kind: SceneKind; time: TimeOfDay }[] {
    const logits = noGrad(() => tidy(() => this.scene.forward(prepared).float().contiguous().toFloat32Array()));
    const width = SCENE_KINDS.length + TIMES.length;
    return Array.from({ length: prepared.size(0) }, (_, i) => {
      const row = logits.subarray(i * width, (i + 1) * width);
      return { kind: SCENE_KINDS[argmax(row, 0, SCENE_KINDS.length)]!, time: TIMES[argmax(row, SCENE_KINDS.length, TIMES.length)]! };
    });
  }

  /**
   * Reads subjects from crops of prepared images [3, S, S]: each one's class, and the attributes
   * of `classIndex` when given (else of the class read).
   */
  recognise(items: readonly { image: Tensor; mask: ArrayLike<number>; box: Box; classIndex?: number }[]): SubjectReading[] {
    if (items.length === 0) return [];
    const logits = noGrad(() =>
      tidy(() => {
        const crops = stack(
          items.map((it) => subjectCrop(it.image, it.mask, it.box, this.config.attributes.cropSize)),
          0,
        );
        return this.attributes.forward(crops).float().contiguous().toFloat32Array();
      }),
    );
    const width = logits.length / items.length;
    return items.map((it, i) => {
      const row = logits.subarray(i * width, (i + 1) * width);
      const classIndex = 1 + argmax(row, ATTRIBUTE_LOGITS, CLASSES.length);
      return { classIndex, attributes: decodeAttributes(row, it.classIndex ?? classIndex) };
    });
  }

  /**
   * Segments one image [3, H, W] (or [1, 3, H, W]) in [0, 1], finds its subject regions and reads
   * each (class and attributes from its crop), and reads the scene.
   */
  judge(image: Tensor): Judgement {
    const prepared = this.prepare(image);
    try {
      if (prepared.size(0) !== 1) throw new RangeError(`judge() reads one image, not ${prepared.size(0)}`);
      const [classMap] = this.classMaps(prepared);
      const [scene] = this.scenes(prepared);
      const size = this.config.imageSize;
      const regions = findRegions(classMap!, size, this.config.minRegionPixels).slice(0, MAX_SUBJECTS);
      const frame = tidy(() => prepared.squeeze(0));
      try {
        const readings = this.recognise(regions.map((r) => ({ image: frame, mask: r.mask, box: r.bbox })));
        const subjects = regions.map((r, i) => ({ ...r, segmentedClass: r.classIndex, classIndex: readings[i]!.classIndex, attributes: readings[i]!.attributes }));
        return { classMap: classMap!, size, subjects, scene: scene! };
      } finally {
        frame.dispose();
      }
    } finally {
      prepared.dispose();
    }
  }

  /**
   * The subjects a caption names (pixel classes in caption order, left to right) in one image:
   * per subject, the found subject matched to it by class and position, or null.
   */
  readSubjects(image: Tensor, expected: readonly number[]): { judgement: Judgement; subjects: (FoundSubject | null)[] } {
    const judgement = this.judge(image);
    return { judgement, subjects: matchSubjects(expected, judgement.subjects) };
  }
}

function argmax(row: Float32Array, offset: number, length: number): number {
  let best = 0;
  for (let i = 1; i < length; i++) if (row[offset + i]! > row[offset + best]!) best = i;
  return best;
}

/** Logits of every head → the values of the attributes `classIndex`'s class has. */
export function decodeAttributes(logits: Float32Array, classIndex: number): Record<string, string> {
  const own = CLASS_ATTRIBUTES[className(classIndex)];
  const out: Record<string, string> = {};
  for (const head of ATTRIBUTE_HEADS) {
    const allowed = own[head.name];
    if (!allowed) continue;
    // Only values this class can take compete (a boy's hair colour is never 'none').
    let best = -1;
    for (let i = 0; i < head.values.length; i++) {
      if (!allowed.includes(head.values[i]!)) continue;
      if (best < 0 || logits[head.offset + i]! > logits[head.offset + best]!) best = i;
    }
    out[head.name] = head.values[best]!;
  }
  return out;
}
