// Training checkpoints: one safetensors file per save (written atomically by saveSafetensors)
// holding MoA's weights, the optimizer state, the EMA weights and the noise generator's state,
// plus metadata (step, loader position, config) — everything an exact resume needs.
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { loadSafetensors, saveSafetensors } from '../io/safetensors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { TrainConfig } from './config.js';
import type { DataPosition } from './data/index.js';

export const CHECKPOINT_FORMAT = 'moa-train-checkpoint';
const PREFIX = { moa: 'moa.', optimizer: 'optimizer.', ema: 'ema.', rng: 'rng.noise' } as const;

export interface CheckpointState {
  step: number;
  position: DataPosition;
  config: TrainConfig;
  moa: Record<string, Tensor>;
  optimizer: Record<string, Tensor>;
  ema: Record<string, Tensor> | null;
  /** The noise generator's state (uint8). */
  rng: Tensor;
}

export function checkpointDir(outputDir: string): string {
  return join(outputDir, 'checkpoints');
}

export function checkpointPath(outputDir: string, step: number): string {
  return join(checkpointDir(outputDir), `step-${String(step).padStart(8, '0')}.safetensors`);
}

/** A checkpoint's file name: step-00000250.safetensors (zero-padded, so names sort by step). */
const CHECKPOINT_FILE = /^step-(\d+)\.safetensors$/;

/** The step a checkpoint file is named for (step-00000250.safetensors → 250). */
export function checkpointStep(path: string): number {
  const match = CHECKPOINT_FILE.exec(basename(path));
  if (!match) throw new Error(`'${path}' is not named like a checkpoint (step-N.safetensors)`);
  return Number(match[1]);
}

/** The checkpoint file names in outputDir's checkpoints folder, oldest step first. */
export function checkpointFiles(outputDir: string): string[] {
  const dir = checkpointDir(outputDir);
  return existsSync(dir) ? readdirSync(dir).filter((f) => CHECKPOINT_FILE.test(f)).sort() : [];
}

/** The checkpoint with the highest step in outputDir, or null. */
export function latestCheckpoint(outputDir: string): string | null {
  const latest = checkpointFiles(outputDir).at(-1);
  return latest ? join(checkpointDir(outputDir), latest) : null;
}

export function saveCheckpoint(path: string, state: CheckpointState): void {
  mkdirSync(dirname(path), { recursive: true });
  const tensors: Record<string, Tensor> = { [PREFIX.rng]: state.rng };
  for (const [k, t] of Object.entries(state.moa)) tensors[PREFIX.moa + k] = t;
  for (const [k, t] of Object.entries(state.optimizer)) tensors[PREFIX.optimizer + k] = t;
  for (const [k, t] of Object.entries(state.ema ?? {})) tensors[PREFIX.ema + k] = t;
  saveSafetensors(path, tensors, {
    format: CHECKPOINT_FORMAT,
    step: String(state.step),
    position: JSON.stringify(state.position),
    config: JSON.stringify(state.config),
    ema: state.ema ? 'true' : 'false',
  });
}

/** Reads a checkpoint; its tensors are the caller's to dispose. */
export function loadCheckpoint(path: string): CheckpointState {
  const { tensors, metadata } = loadSafetensors(path);
  if (metadata.format !== CHECKPOINT_FORMAT) {
    for (const t of Object.values(tensors)) t.dispose();
    throw new Error(`'${path}' is not a MoA training checkpoint (format ${JSON.stringify(metadata.format ?? null)})`);
  }
  const pick = (prefix: string) => Object.fromEntries(Object.entries(tensors).filter(([k]) => k.startsWith(prefix)).map(([k, t]) => [k.slice(prefix.length), t]));
  const rng = tensors[PREFIX.rng];
  if (!rng) throw new Error(`checkpoint '${path}' lacks the noise generator state`);
  return {
    step: Number(metadata.step),
    position: JSON.parse(metadata.position!) as DataPosition,
    config: JSON.parse(metadata.config!) as TrainConfig,
    moa: pick(PREFIX.moa),
    optimizer: pick(PREFIX.optimizer),
    ema: metadata.ema === 'true' ? pick(PREFIX.ema) : null,
    rng,
  };
}
