// A worker thread of writeWorld: derives the world's plan from its settings, then makes the
// images and references it is asked for, one message each, and answers with what it did.
import { parentPort, workerData } from 'node:worker_threads';
import { writeImageFiles, writeReferenceFile } from './files.js';
import { planWorld, type WorldSettings } from './plan.js';

export interface WorkerInput {
  out: string;
  settings: WorldSettings;
}

export interface WorkerTask {
  kind: 'image' | 'reference';
  index: number;
}

export type WorkerReply =
  | { ok: true; kind: 'image' | 'reference'; index: number; written: boolean; classes: string[] }
  | { ok: false; kind: 'image' | 'reference'; index: number; error: string };

if (parentPort) {
  const port = parentPort;
  const { out, settings } = workerData as WorkerInput;
  const plan = planWorld(settings);
  port.on('message', (task: WorkerTask) => {
    const work =
      task.kind === 'image' ? writeImageFiles(out, plan, task.index) : writeReferenceFile(out, plan, task.index).then((written) => ({ written, classes: [] as string[] }));
    work.then(
      (r) => port.postMessage({ ok: true, kind: task.kind, index: task.index, written: r.written, classes: r.classes } satisfies WorkerReply),
      (error: unknown) => port.postMessage({ ok: false, kind: task.kind, index: task.index, error: error instanceof Error ? error.message : String(error) } satisfies WorkerReply),
    );
  });
}
