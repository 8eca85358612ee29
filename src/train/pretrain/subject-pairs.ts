// Pairs of views of one subject, for training the image encoder contrastively. Every segment
// with a bbox is an entry. Its first view is its crop from its own image; its second view shows
// the same subject otherwise: when the data set names the subject's identity, the identity's
// reference image (<root>/references/<identity>.png) or its crop from another image, else a
// second augmentation of the same crop. Views are square crops with the background replaced by
// noise or grey (as the MoA trainer and inference show subjects), randomly rescaled and flipped.
//
// Like FfhqWildLoader: a seeded order reshuffled each epoch, a position to checkpoint, loads
// running ahead of the consumer, and every random choice seeded from (seed, epoch, index), so
// prefetching and resuming never change the stream.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { readImageWithAlpha } from '../../io/image.js';
import type { BackgroundOptions } from '../../models/clip-preprocess.js';
import { full, tensor } from '../../tensor/create.js';
import { interpolate, stack } from '../../tensor/functional.js';
import { Generator } from '../../tensor/generator.js';
import { tidy } from '../../tensor/scope.js';
import type { Tensor } from '../../tensor/tensor.js';
import { type FfhqSegment, readAnnotation, readSampleFiles, SampleError, subjectCrop } from '../data/ffhq-wild.js';
import type { DataPosition } from '../data/loader.js';
import { mixSeed, mulberry32, shuffledIndices } from '../data/rng.js';

/** One subject of the data set. */
export interface SubjectEntry {
  id: string;
  segment: FfhqSegment;
  /** The data set's identity, or null. */
  identity: string | null;
}

export interface PairBatch {
  /** float32 [B, 3, S, S] in [0, 1]: each subject's crop. */
  anchors: Tensor;
  /** float32 [B, 3, S, S] in [0, 1]: another view of the same subject. */
  positives: Tensor;
  /** Per row, who it shows: rows with the same key are the same subject (never each other's negatives). */
  keys: string[];
}

export interface PairLoaderOptions {
  batchSize: number;
  /** View side (the image encoder's image_size). */
  cropSize: number;
  seed?: number;
  /** How often an identity's second view is its reference image, when it has one. Default 0.5. */
  referenceProbability?: number;
  /** Random crops keep at least this fraction of the side. Default 0.7. */
  minScale?: number;
  prefetch?: number;
  maxBroken?: number;
  onBroken?: (id: string, reason: string) => void;
}

interface Pair {
  anchor: Tensor;
  positive: Tensor;
  key: string;
}

type Loaded = { ok: true; pair: Pair } | { ok: false; id: string; reason: string };

/** Every subject of `ids` with a usable bbox; broken annotations are reported and left out. */
export async function indexSubjects(root: string, ids: readonly string[], onBroken: (id: string, reason: string) => void): Promise<SubjectEntry[]> {
  const entries: SubjectEntry[] = [];
  for (let i = 0; i < ids.length; i += 64) {
    const chunk = ids.slice(i, i + 64);
    const read = await Promise.all(chunk.map((id) => readAnnotation(root, id).then((a) => a, (e: unknown) => e as Error)));
    read.forEach((a, k) => {
      const id = chunk[k]!;
      if (a instanceof Error) return onBroken(id, a instanceof SampleError ? a.reason : a.message);
      for (const segment of a.segments) {
        const [h1, w1, h2, w2] = segment.bbox;
        if (!(h2 > h1 && w2 > w1)) continue;
        entries.push({ id, segment, identity: segment.identity === undefined || segment.identity === null ? null : String(segment.identity) });
      }
    });
  }
  return entries;
}

/** Background of a view: uniform noise or flat grey, half the time each. */
function background(random: () => number, generator: Generator): BackgroundOptions {
  return random() < 0.5 ? { background: 'noise', generator } : { background: 'grey' };
}

/** A random square part (at least minScale of the side) resized back, flipped half the time. */
function augment(crop: Tensor, random: () => number, minScale: number): Tensor {
  return tidy(() => {
    const size = crop.size(1);
    const side = Math.max(1, Math.round(size * (minScale + (1 - minScale) * random())));
    const top = Math.floor(random() * (size - side + 1));
    const left = Math.floor(random() * (size - side + 1));
    let x = crop.narrow(1, top, side).narrow(2, left, side).unsqueeze(0);
    if (side !== size) x = interpolate(x, { size: [size, size], mode: 'bilinear', antialias: true });
    if (random() < 0.5) x = x.flip(3);
    return x.clamp(0, 1).reshape(3, size, size).contiguous();
  });
}

/** How far (per channel, in [0, 1]) a pixel may be from a reference's backdrop colour and still count as backdrop. */
const BACKDROP_TOLERANCE = 0.06;

/**
 * Where a reference image [1, 3, H, W] shows its subject, int32 [1, 1, H, W] (1 = subject): its
 * alpha when it has one, else every pixel unlike the top-left corner's colour (references are
 * drawn on a flat backdrop), else the whole image.
 */
function referenceMask(rgb: Tensor, alpha: Tensor | null): Tensor {
  return tidy(() => {
    if (alpha) return alpha.gt(0.5).int();
    const corner = rgb.narrow(2, 0, 1).narrow(3, 0, 1);
    const { values } = rgb.sub(corner).abs().max(1, true) as { values: Tensor };
    const subject = values.gt(BACKDROP_TOLERANCE);
    return subject.any().item() ? subject.int() : full([1, 1, rgb.size(2), rgb.size(3)], 1, { dtype: 'int32' });
  });
}

/** The bbox [h1, w1, h2, w2] of a mask's 1s. */
function maskBox(labels: Tensor): [number, number, number, number] {
  const [rows, cols] = tidy(() => [labels.sum([0, 1, 3]).toNumbers(), labels.sum([0, 1, 2]).toNumbers()]) as [number[], number[]];
  const first = (xs: number[]) => xs.findIndex((v) => v > 0);
  const last = (xs: number[]) => xs.length - 1 - [...xs].reverse().findIndex((v) => v > 0);
  return [first(rows), first(cols), last(rows) + 1, last(cols) + 1];
}

/** A reference image as a view [3, S, S], cropped to its subject like a scene crop. */
export async function referenceCrop(path: string, cropSize: number, backdrop: BackgroundOptions): Promise<Tensor> {
  const { rgb, alpha } = await readImageWithAlpha(path);
  try {
    return tidy(() => {
      const labels = referenceMask(rgb, alpha);
      const crop = subjectCrop(rgb, labels, { id: 1, bbox: maskBox(labels), end: 0 }, cropSize, backdrop);
      if (!crop) throw new Error(`reference image '${path}' is empty`);
      return crop;
    });
  } finally {
    rgb.dispose();
    alpha?.dispose();
  }
}

export class SubjectPairLoader {
  readonly batchSize: number;
  readonly seed: number;
  brokenCount = 0;
  readonly #entries: readonly SubjectEntry[];
  /** Identity → its entries' indices. */
  readonly #byIdentity = new Map<string, number[]>();
  readonly #references = new Map<string, string>();
  readonly #options: Required<Omit<PairLoaderOptions, 'onBroken' | 'prefetch'>> & { prefetch: number };
  readonly #onBroken: (id: string, reason: string) => void;
  #next: DataPosition = { epoch: 0, index: 0 };
  #queue: { position: DataPosition; result: Promise<Loaded> }[] = [];
  #orderCache: { epoch: number; order: number[] } | null = null;

  private constructor(
    readonly root: string,
    entries: SubjectEntry[],
    options: PairLoaderOptions,
    onBroken: (id: string, reason: string) => void,
  ) {
    const { batchSize, cropSize, seed = 0, referenceProbability = 0.5, minScale = 0.7, prefetch, maxBroken = 100 } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`pair loader: batchSize must be a positive integer, not ${batchSize}`);
    if (!Number.isInteger(cropSize) || cropSize < 1) throw new RangeError(`pair loader: cropSize must be a positive integer, not ${cropSize}`);
    if (entries.length === 0) throw new Error(`no subjects with a bbox in '${root}': the image encoder learns from the segments of the JSON files`);
    this.batchSize = batchSize;
    this.seed = seed;
    this.#entries = entries;
    this.#options = { batchSize, cropSize, seed, referenceProbability, minScale, maxBroken, prefetch: Math.max(1, prefetch ?? 2 * batchSize) };
    this.#onBroken = onBroken;
    entries.forEach((e, i) => {
      if (e.identity === null) return;
      let list = this.#byIdentity.get(e.identity);
      if (!list) {
        this.#byIdentity.set(e.identity, (list = []));
        const reference = join(root, 'references', `${e.identity}.png`);
        if (existsSync(reference)) this.#references.set(e.identity, reference);
      }
      list.push(i);
    });
  }

  /** Indexes the subjects of `ids` (reading every JSON once). */
  static async create(root: string, ids: readonly string[], options: PairLoaderOptions): Promise<SubjectPairLoader> {
    const onBroken = options.onBroken ?? ((id: string, reason: string) => console.warn(`skipping broken sample '${id}': ${reason}`));
    return new SubjectPairLoader(root, await indexSubjects(root, ids, onBroken), options, onBroken);
  }

  get size(): number {
    return this.#entries.length;
  }
  /** Identities with a reference image. */
  get referenceCount(): number {
    return this.#references.size;
  }
  get identityCount(): number {
    return this.#byIdentity.size;
  }

  get position(): DataPosition {
    return { ...this.#next };
  }

  setPosition(position: DataPosition): void {
    const { epoch, index } = position;
    if (!Number.isSafeInteger(epoch) || epoch < 0 || !Number.isSafeInteger(index) || index < 0 || index >= this.#entries.length) {
      throw new RangeError(`pair loader: a position is { epoch ≥ 0, index in [0, ${this.#entries.length}) }, not ${JSON.stringify(position)}`);
    }
    this.#discard();
    this.#next = { epoch, index };
  }

  #order(epoch: number): number[] {
    if (this.#orderCache?.epoch !== epoch) this.#orderCache = { epoch, order: shuffledIndices(this.#entries.length, mulberry32(mixSeed(this.seed, epoch, 0x5eed))) };
    return this.#orderCache.order;
  }

  #advance({ epoch, index }: DataPosition): DataPosition {
    return index + 1 < this.#entries.length ? { epoch, index: index + 1 } : { epoch: epoch + 1, index: 0 };
  }

  /** Both views of entry `e`, with every choice drawn from `random` and noise from `generator`. */
  async #pair(e: number, random: () => number, generator: Generator): Promise<Pair> {
    const entry = this.#entries[e]!;
    const { cropSize, minScale, referenceProbability } = this.#options;
    const key = entry.identity === null ? `entry:${e}` : `identity:${entry.identity}`;
    const anchorCrop = await this.#sceneCrop(entry, random, generator);
    try {
      let second: Tensor;
      const others = entry.identity === null ? [] : this.#byIdentity.get(entry.identity)!.filter((o) => this.#entries[o]!.id !== entry.id);
      const reference = entry.identity === null ? undefined : this.#references.get(entry.identity);
      if (reference && (others.length === 0 || random() < referenceProbability)) second = await referenceCrop(reference, cropSize, background(random, generator));
      else if (others.length > 0) second = await this.#sceneCrop(this.#entries[others[Math.floor(random() * others.length)]!]!, random, generator);
      else second = tidy(() => anchorCrop.clone());
      try {
        return tidy(() => ({ anchor: augment(anchorCrop, random, minScale), positive: augment(second, random, minScale), key }));
      } finally {
        second.dispose();
      }
    } finally {
      anchorCrop.dispose();
    }
  }

  async #sceneCrop(entry: SubjectEntry, random: () => number, generator: Generator): Promise<Tensor> {
    const { image, map } = await readSampleFiles(this.root, entry.id);
    try {
      if (map.height !== image.size(2) || map.width !== image.size(3)) throw new SampleError(entry.id, `mask/image size mismatch: map ${map.height}×${map.width}, image ${image.size(2)}×${image.size(3)}`);
      const crop = tidy(() => subjectCrop(image, tensor(map.labels, { shape: [1, 1, map.height, map.width] }), entry.segment, this.#options.cropSize, background(random, generator)));
      if (!crop) throw new SampleError(entry.id, `segment ${entry.segment.id}: its bbox lies outside the image`);
      return crop;
    } finally {
      image.dispose();
    }
  }

  #start(position: DataPosition): { position: DataPosition; result: Promise<Loaded> } {
    const e = this.#order(position.epoch)[position.index]!;
    const seed = mixSeed(this.seed, position.epoch, position.index);
    const result = this.#pair(e, mulberry32(seed), new Generator(seed)).then(
      (pair): Loaded => ({ ok: true, pair }),
      (error: unknown): Loaded => ({ ok: false, id: this.#entries[e]!.id, reason: error instanceof SampleError ? error.reason : error instanceof Error ? error.message : String(error) }),
    );
    return { position, result };
  }

  #fill(): void {
    const last = this.#queue.at(-1);
    let position = last ? this.#advance(last.position) : this.#next;
    while (this.#queue.length < this.#options.prefetch) {
      this.#queue.push(this.#start(position));
      position = this.#advance(position);
    }
  }

  #discard(): void {
    for (const pending of this.#queue) void pending.result.then((r) => r.ok && (r.pair.anchor.dispose(), r.pair.positive.dispose()));
    this.#queue = [];
  }

  async nextBatch(): Promise<PairBatch> {
    const pairs: Pair[] = [];
    try {
      while (pairs.length < this.batchSize) {
        this.#fill();
        const pending = this.#queue.shift()!;
        const loaded = await pending.result;
        this.#next = this.#advance(pending.position);
        if (loaded.ok) {
          pairs.push(loaded.pair);
          continue;
        }
        this.brokenCount++;
        this.#onBroken(loaded.id, loaded.reason);
        if (this.brokenCount > this.#options.maxBroken) throw new Error(`more than ${this.#options.maxBroken} broken samples were skipped (the last: '${loaded.id}': ${loaded.reason}); check the data set`);
      }
      this.#fill();
      return { anchors: stack(pairs.map((p) => p.anchor)), positives: stack(pairs.map((p) => p.positive)), keys: pairs.map((p) => p.key) };
    } finally {
      for (const p of pairs) {
        p.anchor.dispose();
        p.positive.dispose();
      }
    }
  }

  close(): void {
    this.#discard();
  }
}

export function disposePairBatch(batch: PairBatch): void {
  batch.anchors.dispose();
  batch.positives.dispose();
}
