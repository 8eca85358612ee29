// Training and held-out data for the judges, rendered on the fly from the world (never generated
// images): scenes with their pixel classes, scene kind and time, and every subject's crop with
// its attributes; plus references (one subject, front view) for the segmenter and the attribute
// recogniser. Identities are split as the world splits them, so held-out data shows identities
// the judges never saw.
import { TEST_TEMPLATES, TRAIN_TEMPLATES } from '../world/captions.js';
import { type Identity, sampleIdentities } from '../world/identity.js';
import { Random } from '../world/random.js';
import { sampleScene } from '../world/sample.js';
import { tensor } from '../tensor/create.js';
import { stack } from '../tensor/functional.js';
import { keep, tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import { type CropJitter, subjectCrop } from './crops.js';
import { attributeTargets, ATTRIBUTE_HEADS, classIndex, sceneKindIndex, timeIndex } from './labels.js';
import { renderJudgeReference, renderJudgeScene } from './render.js';

export interface JudgeDataOptions {
  /** Seeds the identities, the scenes and the crops' jitter. */
  seed: number;
  /** Identities drawn (a fifth of each class held out, as a world does). */
  identities: number;
  split: 'train' | 'test';
  /** Scene images. */
  images: number;
  /** Reference images (one identity each, cycling through the split's identities). */
  references: number;
  /** Image side (the judges' imageSize). */
  size: number;
  cropSize: number;
  /** Smallest subject (pixels at `size`) that gets a crop. */
  minPixels: number;
  /** Jitter the crops' placement, as regions found by the segmenter are placed (training). */
  jitter: boolean;
  onProgress?: (done: number, total: number) => void;
  signal?: AbortSignal;
}

/** Everything as compact CPU tensors; dispose() frees them. */
export interface JudgeData {
  size: number;
  /** Scene images, then references: [N, 3, S, S] uint8. */
  images: Tensor;
  /** [N, S, S] uint8 pixel classes. */
  classMaps: Tensor;
  /** Scene images: the first `scenes` of images. */
  scenes: number;
  /** [scenes] int64 scene-kind and time-of-day indices. */
  kinds: Tensor;
  times: Tensor;
  /** Subject crops [M, 4, C, C] uint8 (RGB and mask). */
  crops: Tensor;
  /** Per crop, its pixel class (1..CLASSES). */
  cropClasses: number[];
  /** [M, heads] int64 attribute targets (IGNORE where the class has no such attribute). */
  cropTargets: Tensor;
  /** Per crop: from a reference (true) or a scene. */
  cropFromReference: boolean[];
  dispose(): void;
}

/** Scene indices of held-out data start here, far from training's (whose backgrounds they would share). */
export const HELD_OUT_INDEX = 10_000_000;

/** The identities of a split: the judges' own draw (seed, count), held out a fifth per class. */
export function judgeIdentities(seed: number, count: number, split: 'train' | 'test'): Identity[] {
  const pool = sampleIdentities(seed, count, { heldOutFraction: 0.2 }).filter((p) => p.split === split);
  if (pool.length === 0) throw new Error(`no ${split} identities among ${count}: draw more identities`);
  return pool;
}

const toBytes = (t: Tensor) => tidy(() => t.mul(255).round().clamp(0, 255).to('uint8'));

function jitterFrom(random: Random): CropJitter {
  return { dy: random.range(-0.06, 0.06), dx: random.range(-0.06, 0.06), scale: random.range(0.92, 1.1) };
}

export async function buildJudgeData(o: JudgeDataOptions): Promise<JudgeData> {
  const pool = judgeIdentities(o.seed, o.identities, o.split);
  const templates = o.split === 'train' ? TRAIN_TEMPLATES : TEST_TEMPLATES;
  const base = o.split === 'train' ? 0 : HELD_OUT_INDEX;
  const total = o.images + o.references;
  const images: Tensor[] = [];
  const maps: Uint8Array[] = [];
  const kinds: number[] = [];
  const times: number[] = [];
  const crops: Tensor[] = [];
  const cropClasses: number[] = [];
  const targets: number[] = [];
  const fromReference: boolean[] = [];
  const addCrop = (image: Tensor, mask: ArrayLike<number>, box: [number, number, number, number], cls: number, attributes: number[], reference: boolean, random: Random) => {
    crops.push(keep(toBytes(subjectCrop(image, mask, box, o.cropSize, o.jitter ? jitterFrom(random) : undefined))));
    cropClasses.push(cls);
    targets.push(...attributes);
    fromReference.push(reference);
  };
  try {
    for (let i = 0; i < total; i++) {
      if (o.signal?.aborted) throw Object.assign(new Error('judge data: interrupted'), { name: 'AbortError' });
      const random = new Random(o.seed, 0x7d6e, base + i);
      if (i < o.images) {
        const spec = sampleScene(o.seed, base + i, { pool, templates });
        const r = renderJudgeScene(spec, o.size);
        try {
          images.push(keep(toBytes(r.image)));
          maps.push(r.classMap);
          kinds.push(sceneKindIndex(r.scene.kind));
          times.push(timeIndex(r.scene.time));
          spec.subjects.forEach((s, k) => {
            const label = k + 1;
            const mask = Uint8Array.from(r.segMap, (l) => (l === label ? 1 : 0));
            const pixels = mask.reduce((a, b) => a + b, 0);
            if (pixels < o.minPixels) return;
            addCrop(r.image, mask, r.segments[k]!.bbox, classIndex(s.identity.class), attributeTargets(s.identity.class, s.identity.attributes), false, random);
          });
        } finally {
          r.image.dispose();
        }
      } else {
        const identity = pool[(i - o.images) % pool.length]!;
        const r = renderJudgeReference(identity, o.size);
        try {
          const cls = classIndex(identity.class);
          images.push(keep(toBytes(r.image)));
          maps.push(Uint8Array.from(r.mask, (m) => (m ? cls : 0)));
          addCrop(r.image, r.mask, r.bbox, cls, attributeTargets(identity.class, identity.attributes), true, random);
        } finally {
          r.image.dispose();
        }
      }
      o.onProgress?.(i + 1, total);
      // Let Ctrl-C and progress output through now and then.
      if (i % 32 === 31) await new Promise((resolve) => setImmediate(resolve));
    }
    return tidy(() => {
      const s = o.size;
      const mapBytes = new Uint8Array(maps.length * s * s);
      maps.forEach((m, i) => mapBytes.set(m, i * s * s));
      const data = {
        size: s,
        images: keep(stack(images, 0)),
        classMaps: keep(tensor(mapBytes, { shape: [maps.length, s, s] })),
        scenes: o.images,
        kinds: keep(tensor(kinds, { dtype: 'int64' })),
        times: keep(tensor(times, { dtype: 'int64' })),
        crops: keep(crops.length ? stack(crops, 0) : tensor(new Uint8Array(0), { shape: [0, 4, o.cropSize, o.cropSize] })),
        cropClasses,
        cropTargets: keep(tensor(targets, { dtype: 'int64', shape: [cropClasses.length, ATTRIBUTE_HEADS.length] })),
        cropFromReference: fromReference,
        dispose() {
          for (const t of [data.images, data.classMaps, data.kinds, data.times, data.crops, data.cropTargets]) t.dispose();
        },
      };
      return data;
    });
  } finally {
    images.forEach((t) => t.dispose());
    crops.forEach((t) => t.dispose());
  }
}
