// Batches from an FFHQ-wild folder for training: a seeded order (reshuffled each epoch), a
// position that can be saved and restored for exact resumption, samples loaded ahead of the
// consumer, and broken samples reported and skipped up to a limit. Each sample's randomness is
// seeded from (seed, epoch, index), so prefetching and resuming never change what comes out.
import { type ClipTokenizer } from '../../models/clip-tokenizer.js';
import { tensor, zeros } from '../../tensor/create.js';
import { stack } from '../../tensor/functional.js';
import { Generator } from '../../tensor/generator.js';
import { type Tensor } from '../../tensor/tensor.js';
import { disposeSample, loadSample, type Sample, SampleError, type SampleOptions, type SampleSubject } from './ffhq-wild.js';
import { mixSeed, mulberry32, shuffledIndices } from './rng.js';

/** Where the stream stands: the next sample is order(epoch)[index]. */
export interface DataPosition {
  epoch: number;
  index: number;
}

export interface Batch {
  /** float32 [B, 3, R, R] in [-1, 1]. */
  images: Tensor;
  /** int64 [B, 77]. */
  inputIds: Tensor;
  /** Per sample, its subjects (0..maxSubjects). */
  subjects: SampleSubject[][];
  ids: string[];
  captions: string[];
}

export interface LoaderOptions extends SampleOptions {
  batchSize: number;
  /** Seeds the order, the augmentation and the crops' noise. Default 0. */
  seed?: number;
  /** Shuffle each epoch. Default true. */
  shuffle?: boolean;
  /** Samples loaded ahead of the consumer. Default 2 × batchSize. */
  prefetch?: number;
  /** Throw once more than this many broken samples were skipped. Default 100. */
  maxBroken?: number;
  /** Told about each broken sample; default: console.warn. */
  onBroken?: (id: string, reason: string) => void;
}

type Loaded = { ok: true; sample: Sample } | { ok: false; id: string; reason: string };

interface Pending {
  position: DataPosition;
  result: Promise<Loaded>;
}

export class FfhqWildLoader implements AsyncIterable<Batch> {
  readonly batchSize: number;
  readonly seed: number;
  readonly maxBroken: number;
  /** Broken samples skipped so far. */
  brokenCount = 0;
  private readonly prefetch: number;
  private readonly shuffle: boolean;
  private readonly onBroken: (id: string, reason: string) => void;
  private readonly sampleOptions: SampleOptions;
  private next: DataPosition = { epoch: 0, index: 0 };
  /** Loads started ahead, in order, beginning at `next`. */
  private queue: Pending[] = [];
  private orderCache: { epoch: number; order: number[] } | null = null;

  constructor(
    readonly root: string,
    readonly ids: readonly string[],
    private readonly tokenizer: ClipTokenizer,
    options: LoaderOptions,
  ) {
    const { batchSize, seed = 0, shuffle = true, prefetch, maxBroken = 100, onBroken, ...sampleOptions } = options;
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new RangeError(`loader: batchSize must be a positive integer, not ${batchSize}`);
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`loader: seed must be a non-negative integer, not ${seed}`);
    if (!Number.isInteger(maxBroken) || maxBroken < 0) throw new RangeError(`loader: maxBroken must be an integer ≥ 0, not ${maxBroken}`);
    if (ids.length === 0) throw new RangeError('loader: no sample ids');
    this.batchSize = batchSize;
    this.seed = seed;
    this.shuffle = shuffle;
    this.prefetch = Math.max(1, prefetch ?? 2 * batchSize);
    this.maxBroken = maxBroken;
    this.onBroken = onBroken ?? ((id, reason) => console.warn(`skipping broken sample '${id}': ${reason}`));
    this.sampleOptions = sampleOptions;
  }

  /** The position of the next sample to be batched: save it with a checkpoint. */
  get position(): DataPosition {
    return { ...this.next };
  }

  /** Resumes from a saved position; loads already started are discarded. */
  setPosition(position: DataPosition): void {
    const { epoch, index } = position;
    if (!Number.isSafeInteger(epoch) || epoch < 0 || !Number.isSafeInteger(index) || index < 0 || index >= this.ids.length) {
      throw new RangeError(`loader: a position is { epoch ≥ 0, index in [0, ${this.ids.length}) }, not ${JSON.stringify(position)}`);
    }
    this.discardQueue();
    this.next = { epoch, index };
  }

  /** The id order of an epoch. */
  order(epoch: number): number[] {
    if (this.orderCache?.epoch !== epoch) {
      const order = this.shuffle ? shuffledIndices(this.ids.length, mulberry32(mixSeed(this.seed, epoch, 0x5eed))) : this.ids.map((_, i) => i);
      this.orderCache = { epoch, order };
    }
    return this.orderCache.order;
  }

  private advance({ epoch, index }: DataPosition): DataPosition {
    return index + 1 < this.ids.length ? { epoch, index: index + 1 } : { epoch: epoch + 1, index: 0 };
  }

  private start(position: DataPosition): Pending {
    const id = this.ids[this.order(position.epoch)[position.index]!]!;
    const sampleSeed = mixSeed(this.seed, position.epoch, position.index);
    const result = loadSample(this.root, id, this.tokenizer, mulberry32(sampleSeed), new Generator(sampleSeed), this.sampleOptions).then(
      (sample): Loaded => ({ ok: true, sample }),
      (error: unknown): Loaded => ({ ok: false, id, reason: error instanceof SampleError ? error.reason : String(error) }),
    );
    return { position, result };
  }

  /** Keeps `prefetch` loads in flight ahead of `next`. */
  private fill(): void {
    let position = this.queue.at(-1) ? this.advance(this.queue.at(-1)!.position) : this.next;
    while (this.queue.length < this.prefetch) {
      this.queue.push(this.start(position));
      position = this.advance(position);
    }
  }

  private discardQueue(): void {
    for (const pending of this.queue) void pending.result.then((r) => r.ok && disposeSample(r.sample));
    this.queue = [];
  }

  /** The next batch (the stream is endless: epochs follow one another). */
  async nextBatch(): Promise<Batch> {
    const samples: Sample[] = [];
    try {
      while (samples.length < this.batchSize) {
        this.fill();
        const pending = this.queue.shift()!;
        const loaded = await pending.result;
        this.next = this.advance(pending.position);
        if (loaded.ok) {
          samples.push(loaded.sample);
          continue;
        }
        this.brokenCount++;
        this.onBroken(loaded.id, loaded.reason);
        if (this.brokenCount > this.maxBroken) {
          throw new Error(`more than ${this.maxBroken} broken samples were skipped (the last: '${loaded.id}': ${loaded.reason}); check the data set`);
        }
      }
      this.fill(); // the next batch loads while the caller trains on this one
      return collate(samples);
    } catch (error) {
      for (const s of samples) for (const subject of s.subjects) [subject.mask, subject.crop].forEach((t) => t.dispose());
      throw error;
    } finally {
      for (const s of samples) s.image.dispose(); // stacked into the batch, or dropped with it
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Batch> {
    try {
      for (;;) yield await this.nextBatch();
    } finally {
      this.discardQueue();
    }
  }

  /** Stops the loads in flight and frees what they produced. */
  close(): void {
    this.discardQueue();
  }
}

/** Stacks images and ids; subjects stay per sample (their count varies). */
function collate(samples: Sample[]): Batch {
  const images = stack(samples.map((s) => s.image));
  const inputIds = tensor(samples.flatMap((s) => s.inputIds), { shape: [samples.length, samples[0]!.inputIds.length], dtype: 'int64' });
  return { images, inputIds, subjects: samples.map((s) => s.subjects), ids: samples.map((s) => s.id), captions: samples.map((s) => s.caption) };
}

/** Per-subject masks [B, S, h, w] (zero-padded), their union [B, 1, h, w], and counts. */
export function batchMasks(batch: Batch, h: number, w: number): { unionMask: Tensor; subjectMasks: Tensor; counts: number[] } {
  const counts = batch.subjects.map((s) => s.length);
  const S = Math.max(1, ...counts);
  const subjectMasks = stack(
    batch.subjects.map((subjects) => {
      const rows = Array.from({ length: S }, (_, k) => (k < subjects.length ? subjects[k]!.mask.reshape(h, w) : zeros([h, w])));
      return stack(rows);
    }),
  );
  return { unionMask: subjectMasks.max(1, true).values, subjectMasks, counts };
}

/** Frees a batch's tensors. */
export function disposeBatch(batch: Batch): void {
  batch.images.dispose();
  batch.inputIds.dispose();
  for (const subjects of batch.subjects) {
    for (const s of subjects) {
      s.mask.dispose();
      s.crop.dispose();
    }
  }
}
