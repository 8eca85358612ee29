// Writing a world to disk in the FFHQ-wild layout the trainer reads (docs/world.md), plus the
// identities and their reference images. Worker threads make the files (rendering is plain
// JavaScript and every file is fsync'ed, so threads keep both the cores and the disk busy);
// each image depends only on the settings, so the files are the same whatever the thread count.
// Every file is written atomically; running the same command again finishes an interrupted write.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { writeFileAtomically } from '../io/atomic.js';
import { TEST_TEMPLATES, TRAIN_TEMPLATES } from './captions.js';
import { jsonBytes } from './files.js';
import { imageId, planWorld, type WorldSettings } from './plan.js';
import { checkSize } from './render.js';
import { CLASSES } from './vocab.js';
import type { WorkerInput, WorkerReply, WorkerTask } from './worker.js';

export const WORLD_FORMAT = 'moa-world';
export const WORLD_VERSION = 1;

export interface WriteWorldOptions {
  /** The folder to write (made if missing). */
  out: string;
  /** Number of images, train and test together. */
  images: number;
  seed: number;
  /** Image side in pixels. Default 128. */
  size?: number;
  /** Number of identities. Default 1000. */
  identities?: number;
  /** Fraction of identities (per class) and of images held out for testing, in [0, 1). Default 0.2. */
  heldOutFraction?: number;
  /** Replace a different world already in `out`. Default false. */
  force?: boolean;
  /** Worker threads. Default: twice the CPU count, from 2 to 8. */
  workers?: number;
  onProgress?: (progress: WorldProgress) => void;
  signal?: AbortSignal;
}

export interface WorldProgress {
  phase: 'references' | 'images';
  done: number;
  total: number;
}

export interface WorldCounts {
  trainImages: number;
  testImages: number;
  trainIdentities: number;
  testIdentities: number;
  /** Subjects in all images, per class. */
  subjects: Record<string, number>;
  /** Images with 1, 2, 3, 4 subjects. */
  subjectsPerImage: Record<string, number>;
}

/** The content of world.json. */
export interface WorldManifest {
  format: typeof WORLD_FORMAT;
  version: number;
  seed: number;
  size: number;
  images: number;
  identities: number;
  heldOutFraction: number;
  /** False while being written; true once every file is in place. */
  complete: boolean;
  /** Null until complete. */
  counts: WorldCounts | null;
  templates: { train: string[]; test: string[] };
}

export interface WorldSummary {
  out: string;
  manifest: WorldManifest;
  /** Images made by this call. */
  rendered: number;
  /** Images already in place from an interrupted write. */
  kept: number;
  workers: number;
  seconds: number;
  /** Images made per second (render, encode and write), over the image phase. */
  imagesPerSecond: number;
}

function settingsKey(m: WorldManifest): string {
  return JSON.stringify([m.format, m.version, m.seed, m.size, m.images, m.identities, m.heldOutFraction]);
}

function describe(m: WorldManifest): string {
  return `seed ${m.seed}, ${m.images} images of ${m.size} px, ${m.identities} identities, held out ${m.heldOutFraction}`;
}

function readManifest(path: string): WorldManifest | null {
  try {
    const m = JSON.parse(readFileSync(path, 'utf8')) as WorldManifest | null;
    return m && m.format === WORLD_FORMAT ? m : null;
  } catch {
    return null;
  }
}

/** Entries a world writes at the top of its folder (and temporary files of an interrupted write). */
function isWorldEntry(name: string): boolean {
  return ['world.json', 'identities.json', 'image_ids_train.txt', 'image_ids_test.txt', 'references'].includes(name) || /^\d{5}$/.test(name) || /^\..*\.tmp$/.test(name);
}

/**
 * What to do with `out`: 'fresh' (missing or empty), 'resume' (the same world, interrupted),
 * 'done' (the same world, complete). A different world is replaced only with `force`; a folder
 * holding anything else is refused.
 */
function prepareOut(out: string, manifest: WorldManifest, force: boolean): { mode: 'fresh' | 'resume' | 'done'; existing: WorldManifest | null } {
  if (!existsSync(out)) {
    mkdirSync(out, { recursive: true });
    return { mode: 'fresh', existing: null };
  }
  if (!statSync(out).isDirectory()) throw new Error(`output '${out}' is a file; give a folder`);
  const entries = readdirSync(out);
  if (entries.length === 0) return { mode: 'fresh', existing: null };
  const existing = readManifest(join(out, 'world.json'));
  if (!existing) throw new Error(`'${out}' is not empty and holds no moa world (no world.json); choose an empty or new folder`);
  if (settingsKey(existing) === settingsKey(manifest)) return { mode: existing.complete ? 'done' : 'resume', existing };
  if (!force) throw new Error(`'${out}' holds a different world (${describe(existing)}); add --force to replace it, or choose another folder`);
  const foreign = entries.filter((e) => !isWorldEntry(e));
  if (foreign.length > 0) throw new Error(`'${out}' holds files that are not part of its world (${foreign.slice(0, 3).join(', ')}); it is not replaced, even with --force`);
  for (const e of entries) rmSync(join(out, e), { recursive: true, force: true });
  return { mode: 'fresh', existing: null };
}

function checkOptions(o: WriteWorldOptions): WorldSettings & { out: string; force: boolean; workers: number } {
  const { out, images, seed, size = 128, identities = 1000, heldOutFraction = 0.2, force = false } = o;
  const workers = o.workers ?? Math.min(8, Math.max(2, 2 * availableParallelism()));
  if (!out) throw new Error('an output folder is required');
  if (!Number.isSafeInteger(images) || images < 1) throw new RangeError(`images must be a positive integer, not ${images}`);
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, not ${seed}`);
  checkSize(size);
  if (!Number.isSafeInteger(identities) || identities < 1) throw new RangeError(`identities must be a positive integer, not ${identities}`);
  if (!(heldOutFraction >= 0 && heldOutFraction < 1)) throw new RangeError(`held-out fraction must be in [0, 1), not ${heldOutFraction}`);
  if (!Number.isInteger(workers) || workers < 1 || workers > 64) throw new RangeError(`workers must be an integer from 1 to 64, not ${workers}`);
  return { out, images, seed, size, identities, heldOutFraction, force, workers };
}

/** Runs tasks on worker threads, two in flight per thread (one renders while the other waits on the disk). */
async function runOnWorkers(input: WorkerInput, count: number, tasks: readonly WorkerTask[], onReply: (reply: WorkerReply & { ok: true }) => void, signal?: AbortSignal): Promise<void> {
  if (tasks.length === 0) return;
  const workers = Array.from({ length: Math.min(count, Math.ceil(tasks.length / 2)) }, () => new Worker(new URL('./worker.js', import.meta.url), { workerData: input }));
  let next = 0;
  let pending = 0;
  let failure: Error | null = null;
  try {
    await new Promise<void>((resolve) => {
      const settle = () => {
        if (pending === 0 && (next >= tasks.length || failure || signal?.aborted)) resolve();
      };
      const feed = (worker: Worker) => {
        if (failure || signal?.aborted || next >= tasks.length) return settle();
        pending++;
        worker.postMessage(tasks[next++]);
      };
      for (const worker of workers) {
        worker.on('message', (reply: WorkerReply) => {
          pending--;
          if (reply.ok) onReply(reply);
          else failure ??= new Error(`${reply.kind} ${reply.index}: ${reply.error}`);
          feed(worker);
        });
        worker.on('error', (error) => {
          failure ??= error;
          pending = 0; // a dead thread answers nothing more
          settle();
        });
        feed(worker);
        feed(worker);
      }
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  if (failure) throw failure;
}

function interrupted(done: number, total: number, what: string): Error {
  const error = new Error(`interrupted after ${done} of ${total} ${what}; run the same command again to finish`);
  error.name = 'AbortError';
  return error;
}

/** Writes (or finishes writing) a world; resolves with what it did. */
export async function writeWorld(options: WriteWorldOptions): Promise<WorldSummary> {
  const o = checkOptions(options);
  const { onProgress, signal } = options;
  const started = performance.now();
  const settings: WorldSettings = { seed: o.seed, size: o.size, images: o.images, identities: o.identities, heldOutFraction: o.heldOutFraction };
  const plan = planWorld(settings);
  const manifest: WorldManifest = {
    format: WORLD_FORMAT,
    version: WORLD_VERSION,
    ...settings,
    complete: false,
    counts: null,
    templates: { train: [...TRAIN_TEMPLATES], test: [...TEST_TEMPLATES] },
  };
  const { mode, existing } = prepareOut(o.out, manifest, o.force);
  const elapsed = () => (performance.now() - started) / 1000;
  if (mode === 'done') return { out: o.out, manifest: existing!, rendered: 0, kept: o.images, workers: 0, seconds: elapsed(), imagesPerSecond: 0 };
  writeFileAtomically(join(o.out, 'world.json'), jsonBytes(manifest));
  writeFileAtomically(join(o.out, 'identities.json'), jsonBytes(plan.people));
  mkdirSync(join(o.out, 'references'), { recursive: true });
  const input: WorkerInput = { out: o.out, settings };

  let refs = 0;
  const refTasks = plan.people.map((_, index): WorkerTask => ({ kind: 'reference', index }));
  await runOnWorkers(input, o.workers, refTasks, () => onProgress?.({ phase: 'references', done: ++refs, total: refTasks.length }), signal);
  if (signal?.aborted) throw interrupted(refs, refTasks.length, 'references');

  const counts: WorldCounts = {
    trainImages: plan.split.train,
    testImages: plan.split.test,
    trainIdentities: plan.pools.train.length,
    testIdentities: plan.pools.test.length,
    subjects: Object.fromEntries(CLASSES.map((c) => [c, 0])),
    subjectsPerImage: { 1: 0, 2: 0, 3: 0, 4: 0 },
  };
  let done = 0;
  let rendered = 0;
  const imagesStarted = performance.now();
  const imageTasks = Array.from({ length: o.images }, (_, index): WorkerTask => ({ kind: 'image', index }));
  await runOnWorkers(
    input,
    o.workers,
    imageTasks,
    (reply) => {
      for (const c of reply.classes) counts.subjects[c]!++;
      counts.subjectsPerImage[reply.classes.length]!++;
      if (reply.written) rendered++;
      onProgress?.({ phase: 'images', done: ++done, total: o.images });
    },
    signal,
  );
  if (signal?.aborted) throw interrupted(done, o.images, 'images');
  const imageSeconds = (performance.now() - imagesStarted) / 1000;

  const ids = Array.from({ length: o.images }, (_, i) => imageId(i, o.images));
  const list = (part: string[]) => Buffer.from(part.map((id) => `${id}\n`).join(''));
  writeFileAtomically(join(o.out, 'image_ids_train.txt'), list(ids.slice(0, plan.split.train)));
  writeFileAtomically(join(o.out, 'image_ids_test.txt'), list(ids.slice(plan.split.train)));
  const final: WorldManifest = { ...manifest, complete: true, counts };
  writeFileAtomically(join(o.out, 'world.json'), jsonBytes(final));
  return { out: o.out, manifest: final, rendered, kept: o.images - rendered, workers: o.workers, seconds: elapsed(), imagesPerSecond: rendered > 0 ? rendered / imageSeconds : 0 };
}
