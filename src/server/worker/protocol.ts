// Messages between the server and its generation worker (a child process, over IPC). The worker
// loads the model once and runs one job at a time; everything it produces comes back as these.
import type { SchedulerName } from '../../schedulers/index.js';
import type { SubjectGuidanceArea } from '../../pipelines/guidance.js';

/** How the worker opens the model (the flags of `moa serve` it needs). */
export interface WorkerInit {
  model: string;
  moa: string | null;
  imageEncoder?: string;
  tokenizer?: string;
  precision: string;
  device: string;
  /** A preview every this many steps; 0 turns previews off. */
  previewEvery: number;
}

/** What the loaded model is, for validating requests in the server. */
export interface ModelInfo {
  model: string;
  moa: string | null;
  precision: string;
  device: string;
  /** The model's default image size. */
  width: number;
  height: number;
  /** Image sides must be multiples of this (the VAE's scale). */
  sizeMultiple: number;
  /** Subjects per prompt (0 without MoA). */
  maxSubjects: number;
  /** The model's default guidance scale (edits default to 1 instead). */
  guidance: number;
}

/** A subject with its reference images as files. */
export interface WorkerSubject {
  word: string;
  images: string[];
}

/** A job, resolved and checked by the server: every value is final, every upload a file path. */
export interface WorkerJob {
  id: string;
  kind: 'generate' | 'swap' | 'morph' | 'edit';
  /** The job's folder, where results and maps are written. */
  dir: string;
  prompt: string;
  negativePrompt: string;
  seed: number;
  steps: number;
  guidance: number;
  width: number;
  height: number;
  scheduler: SchedulerName;
  batch: number;
  /** Absent: the same as guidance. */
  subjectGuidance?: number;
  subjectGuidanceArea?: SubjectGuidanceArea;
  strength: number;
  subjectStart: number;
  maps: boolean;
  subjects: WorkerSubject[];
  alternatives?: WorkerSubject[][];
  morph?: { word: string; from: string[]; to: string[]; frames: number };
  edit?: { image: string; sourcePrompt: string };
  /** Denoising steps of the whole job (progress counts to it). */
  total: number;
  /** Recorded in each PNG's parameters: what the job was asked with (upload ids, not paths). */
  request: Record<string, unknown>;
}

export interface ResultFile {
  /** Relative to the job's folder. */
  file: string;
  label: string;
  seed: number;
  width: number;
  height: number;
  alpha?: number;
  latentDistance?: number;
}

export interface MapFile {
  result: number;
  kind: 'routing' | 'routing-mean' | 'subject';
  layer?: string;
  layerKind?: 'self' | 'cross';
  word?: string;
  /** Relative to the job's folder. */
  file: string;
}

export interface JobOutput {
  results: ResultFile[];
  maps: MapFile[];
  /** What the pipeline reports: model, precision, subjects' token positions, ... */
  generation: Record<string, unknown>;
}

export type ToWorker = { type: 'init'; init: WorkerInit } | { type: 'run'; job: WorkerJob } | { type: 'cancel'; id: string } | { type: 'shutdown' };

export type FromWorker =
  | { type: 'ready'; info: ModelInfo }
  | { type: 'fatal'; message: string }
  /** The last message of a worker that stops as asked. */
  | { type: 'exiting' }
  | { type: 'started'; id: string }
  | { type: 'progress'; id: string; step: number; total: number }
  | { type: 'preview'; id: string; step: number; total: number; png: string }
  | { type: 'done'; id: string; output: JobOutput }
  | { type: 'failed'; id: string; message: string }
  | { type: 'cancelled'; id: string };
