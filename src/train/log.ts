// The training log: one JSON object per optimizer step, appended to <outputDir>/train-log.jsonl.
import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export interface StepRecord {
  step: number;
  loss: number;
  diffusion: number;
  router: number;
  object: number;
  lr: number;
  /** The gradient norm before clipping. */
  gradNorm: number;
  itPerSec: number;
}

export class JsonlLog {
  constructor(readonly path: string) {
    mkdirSync(dirname(path), { recursive: true });
  }
  write(record: StepRecord): void {
    appendFileSync(this.path, JSON.stringify(record) + '\n');
  }
}
