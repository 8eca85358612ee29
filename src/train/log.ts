// The training log: one JSON object per optimizer step, appended to <outputDir>/train-log.jsonl.
import { appendFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { writeFileAtomically } from '../io/atomic.js';

export interface StepRecord {
  step: number;
  loss: number;
  diffusion: number;
  router: number;
  routerSubject: number;
  object: number;
  /** The background-preservation term (0 unless loss.background > 0). */
  background: number;
  /**
   * The plain mean squared prediction error on the subjects' pixels (whatever the masked loss
   * drew), the part of the diffusion loss MoA's personal branch is there to lower; null when the
   * step's images had no subject pixels.
   */
  subjectError: number | null;
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
  /** Drops the records after `step` (a resumed run redoes them), keeping the rest. */
  truncateAfter(step: number): void {
    if (!existsSync(this.path)) return;
    const kept = readFileSync(this.path, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '' && (JSON.parse(line) as StepRecord).step <= step);
    writeFileAtomically(this.path, Buffer.from(kept.map((line) => line + '\n').join('')));
  }
}
