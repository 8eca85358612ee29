// FastComposer's FFHQ-wild layout (spec 3.2): ids in image_ids_*.txt, and per id under
// root/<id[0:5]>/ an image, a JSON caption with segments, and a segmentation map. A sample is
// what the trainer needs: the image at training resolution, the caption's token ids, and per
// subject its word's token index, its mask at latent resolution, and its crop for the image
// encoder with the background replaced by noise.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { readImage } from '../../io/image.js';
import { type ClipTokenizer } from '../../models/clip-tokenizer.js';
import { type BackgroundOptions, replaceBackground, squareAround } from '../../models/clip-preprocess.js';
import { tensor } from '../../tensor/create.js';
import { interpolate } from '../../tensor/functional.js';
import { type Generator } from '../../tensor/generator.js';
import { tidy } from '../../tensor/scope.js';
import { type Tensor } from '../../tensor/tensor.js';
import { type AugmentOptions, augmentSubjects } from './augment.js';
import { readImageSegMap, readNpySegMap, type SegMap } from './segmap.js';

export interface FfhqSegment {
  id: number;
  /** [h1, w1, h2, w2] in the original image's pixels. */
  bbox: [number, number, number, number];
  /** Character offset just after the subject's noun phrase. */
  end: number;
  coco_label?: string;
  /** Who the subject is, when the data set says (the synthetic world does): the same identity across images. */
  identity?: string | number;
  /** The subject's class word ('woman', 'dog'), when the data set says. */
  class?: string;
}

export interface FfhqAnnotation {
  caption: string;
  segments: FfhqSegment[];
}

export interface SampleSubject {
  /** Position of the subject's word (its last token) in inputIds. */
  tokenIndex: number;
  /** float32 [1, r, r], 1 on the subject, at latent resolution. */
  mask: Tensor;
  /** float32 [3, S, S] in [0, 1]: the bbox, background replaced by noise, padded square and resized. */
  crop: Tensor;
  /** The segment's identity, when the data set names one. */
  identity?: string;
}

export interface Sample {
  id: string;
  caption: string;
  /** float32 [3, R, R] in [-1, 1]. */
  image: Tensor;
  /** CLIP ids, padded to 77. */
  inputIds: number[];
  subjects: SampleSubject[];
}

export interface SampleOptions extends AugmentOptions {
  /** Training image side. Default 512. */
  resolution?: number;
  /** Mask side. Default resolution / 8 (the VAE's factor). */
  latentResolution?: number;
  /** Image encoder input side. Default 224. */
  cropSize?: number;
}

/** A broken sample: the loader reports it with its id and skips it. */
export class SampleError extends Error {
  constructor(
    readonly id: string,
    readonly reason: string,
  ) {
    super(`sample '${id}': ${reason}`);
    this.name = 'SampleError';
  }
}

const INDEX_FILES = ['image_ids_train.txt', 'image_ids.txt', 'image_ids_test.txt'];

/** The ids listed in `file` (default: the first of image_ids_train.txt, image_ids.txt, image_ids_test.txt that exists). */
export async function readImageIds(root: string, file?: string): Promise<string[]> {
  const name = file ?? INDEX_FILES.find((f) => existsSync(join(root, f)));
  if (!name) throw new Error(`no image id list in '${root}' (looked for ${INDEX_FILES.join(', ')})`);
  const text = await readFile(join(root, name), 'utf8');
  const ids = text.split(/\r?\n/).map((line) => line.trim()).filter((line) => line.length > 0);
  if (ids.length === 0) throw new Error(`'${join(root, name)}' lists no image ids`);
  return ids;
}

/** The folder holding an id's files: root/<first 5 characters of the id>. */
export function sampleDir(root: string, id: string): string {
  return join(root, id.slice(0, 5));
}

function parseAnnotation(text: string): FfhqAnnotation {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new Error(`bad JSON: ${(error as Error).message}`);
  }
  const a = json as Partial<FfhqAnnotation> | null;
  if (!a || typeof a.caption !== 'string' || !Array.isArray(a.segments)) throw new Error('the JSON needs a string "caption" and an array "segments"');
  a.segments.forEach((s, i) => {
    const ok = s && Number.isInteger(s.id) && Number.isInteger(s.end) && Array.isArray(s.bbox) && s.bbox.length === 4 && s.bbox.every((v) => Number.isFinite(v));
    if (!ok) throw new Error(`segment ${i} needs an integer "id", an integer "end" and a 4-number "bbox"`);
  });
  return a as FfhqAnnotation;
}

async function readSegMap(dir: string, id: string): Promise<SegMap> {
  const npy = join(dir, `${id}.npy`);
  if (existsSync(npy)) return readNpySegMap(npy);
  const png = join(dir, `${id}.png`);
  if (existsSync(png)) return readImageSegMap(png);
  throw new Error(`no segmentation map (${id}.npy or ${id}.png)`);
}

/** An id's files as read from disk; the image is the caller's to dispose. */
export interface SampleFiles {
  annotation: FfhqAnnotation;
  /** float32 [1, 3, H, W] in [0, 1], as stored (no EXIF rotation: the map matches the stored pixels). */
  image: Tensor;
  map: SegMap;
}

/** Reads an id's JSON, segmentation map and image; anything missing or malformed throws a SampleError. */
export async function readSampleFiles(root: string, id: string): Promise<SampleFiles> {
  const dir = sampleDir(root, id);
  try {
    const jsonPath = join(dir, `${id}.json`);
    if (!existsSync(jsonPath)) throw new Error(`missing ${id}.json`);
    const annotation = parseAnnotation(await readFile(jsonPath, 'utf8'));
    const map = await readSegMap(dir, id);
    const image = await readImage(join(dir, `${id}.jpg`), { autoOrient: false });
    return { annotation, image, map };
  } catch (error) {
    throw new SampleError(id, error instanceof Error ? error.message : String(error));
  }
}

/** Reads and checks an id's JSON only (caption and segments). */
export async function readAnnotation(root: string, id: string): Promise<FfhqAnnotation> {
  const jsonPath = join(sampleDir(root, id), `${id}.json`);
  try {
    if (!existsSync(jsonPath)) throw new Error(`missing ${id}.json`);
    return parseAnnotation(await readFile(jsonPath, 'utf8'));
  } catch (error) {
    throw new SampleError(id, error instanceof Error ? error.message : String(error));
  }
}

/** The centre square [top, left, side] of an h × w image. */
function centreSquare(h: number, w: number): [number, number, number] {
  const side = Math.min(h, w);
  return [Math.floor((h - side) / 2), Math.floor((w - side) / 2), side];
}

interface Resolved {
  resolution: number;
  latentResolution: number;
  cropSize: number;
}

function resolveSizes({ resolution = 512, latentResolution, cropSize = 224 }: SampleOptions): Resolved {
  const latent = latentResolution ?? Math.floor(resolution / 8);
  for (const [name, v] of [['resolution', resolution], ['latentResolution', latent], ['cropSize', cropSize]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`sample options: ${name} must be a positive integer, not ${v}`);
  }
  return { resolution, latentResolution: latent, cropSize };
}

/**
 * A subject's crop from the full-size image [1, 3, H, W] and labels [1, 1, H, W]: the bbox clipped
 * to the image, its background replaced (padding to a square adds mask-0 pixels, so it is
 * replaced too), resized to cropSize: float32 [3, S, S] in [0, 1]. Null for an empty bbox.
 */
export function subjectCrop(image: Tensor, labels: Tensor, segment: FfhqSegment, cropSize: number, background: BackgroundOptions): Tensor | null {
  return tidy(() => {
    const square = squareAround(image, labels.eq(segment.id).float(), segment.bbox.map(Math.round));
    if (!square) return null;
    const replaced = replaceBackground(square.image, square.mask, background);
    return interpolate(replaced, { size: [cropSize, cropSize], mode: 'bilinear', antialias: true }).clamp(0, 1).reshape(3, cropSize, cropSize);
  });
}

/** [1, 1, S, S] → [1, r, r]: the share of each cell the mask covers (exact when r divides S). */
function coverage(square: Tensor, r: number): Tensor {
  const side = square.size(2);
  if (side % r === 0) return square.reshape(r, side / r, r, side / r).mean([1, 3]).reshape(1, r, r);
  return interpolate(square, { size: [r, r], mode: 'bilinear', antialias: r < side }).clamp(0, 1).reshape(1, r, r);
}

/** One subject's mask and crop from the full-size image [1, 3, H, W] and labels [1, 1, H, W]. */
function subjectTensors(image: Tensor, labels: Tensor, segment: FfhqSegment, sizes: Resolved, generator: Generator): { mask: Tensor; crop: Tensor } | null {
  const [h, w] = [image.size(2), image.size(3)];
  const full = labels.eq(segment.id).float();
  // The mask follows the image: centre square, then averaged down to latent size (a cell's value
  // is the share of it the subject covers), so a small subject never vanishes between samples.
  const [top, left, side] = centreSquare(h, w);
  const square = full.narrow(2, top, side).narrow(3, left, side);
  const mask = coverage(square, sizes.latentResolution);
  const crop = subjectCrop(image, labels, segment, sizes.cropSize, { background: 'noise', generator });
  return crop ? { mask, crop } : null;
}

/**
 * Loads and augments one sample. `random` drives augmentation, `generator` the crops' noise;
 * both come from the caller so a sample is reproducible from its seed. Anything wrong with the
 * files throws a SampleError naming the id.
 */
export async function loadSample(root: string, id: string, tokenizer: ClipTokenizer, random: () => number, generator: Generator, options: SampleOptions = {}): Promise<Sample> {
  const sizes = resolveSizes(options);
  const broken = (error: unknown) => new SampleError(id, error instanceof Error ? error.message : String(error));
  const { annotation, image, map } = await readSampleFiles(root, id);
  try {
    const [h, w] = [image.size(2), image.size(3)];
    if (map.height !== h || map.width !== w) throw new Error(`mask/image size mismatch: map ${map.height}×${map.width}, image ${h}×${w}`);
    const { caption } = annotation;
    // Subjects whose word is past the 77-token limit cannot be bound: left out before augmenting.
    const bindable: { segment: FfhqSegment; tokenIndex: number }[] = [];
    for (const segment of annotation.segments) {
      if (segment.end < 0 || segment.end > caption.length) throw new Error(`segment ${segment.id}: end ${segment.end} is outside the caption (${caption.length} characters)`);
      let tokenIndex: number;
      try {
        tokenIndex = tokenizer.tokenIndexAtCharEnd(caption, segment.end);
      } catch {
        continue;
      }
      bindable.push({ segment, tokenIndex });
    }
    const augmented = augmentSubjects(caption, bindable, random, options);
    const inputIds = tokenizer.encode(augmented.caption).ids;
    const tensors = tidy(() => {
      const [top, left, side] = centreSquare(h, w);
      const square = image.narrow(2, top, side).narrow(3, left, side);
      const resized = interpolate(square, { size: [sizes.resolution, sizes.resolution], mode: 'bilinear', antialias: true }).clamp(0, 1);
      const out = resized.mul(2).sub(1).reshape(3, sizes.resolution, sizes.resolution);
      const labels = tensor(map.labels, { shape: [1, 1, h, w] });
      const subjects: SampleSubject[] = [];
      for (const { segment, tokenIndex } of augmented.subjects) {
        const made = subjectTensors(image, labels, segment, sizes, generator);
        const identity = segment.identity === undefined || segment.identity === null ? {} : { identity: String(segment.identity) };
        if (made) subjects.push({ tokenIndex, ...made, ...identity });
      }
      return { image: out, subjects };
    });
    return { id, caption: augmented.caption, inputIds, ...tensors };
  } catch (error) {
    throw broken(error);
  } finally {
    image.dispose();
  }
}

/** Frees a sample's tensors. */
export function disposeSample(sample: Sample): void {
  sample.image.dispose();
  for (const s of sample.subjects) {
    s.mask.dispose();
    s.crop.dispose();
  }
}
