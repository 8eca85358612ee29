// The generation worker: a child process of `moa serve` that loads the model once and runs jobs
// one at a time, so generation never blocks the server's event loop and a native crash or an
// out-of-memory kill takes down only this process. It talks to the server over IPC (protocol.ts).
import { mkdirSync } from 'node:fs';
import { openSession, type Session } from '../../cli/personal.js';
import { resolveParameters } from '../../pipelines/text-to-image.js';
import { PreviewTap } from './preview.js';
import type { FromWorker, ModelInfo, ToWorker, WorkerInit, WorkerJob } from './protocol.js';
import { runJob } from './run-job.js';

function send(message: FromWorker): void {
  // The server may be gone (it kills us then); nothing to report to.
  if (process.connected) process.send!(message);
}

/** Exits once every message sent so far has been written (they go out in order). */
function sendAndExit(message: FromWorker, code: number): void {
  process.exitCode = code;
  if (process.connected) process.send!(message, () => process.exit(code));
  else process.exit(code);
}

const messageOf = (error: unknown) => (error instanceof Error ? error.message : String(error));

let session: Session | null = null;
let init: WorkerInit | null = null;
let tap: PreviewTap | null = null;
let running: { id: string; controller: AbortController } | null = null;
let stopping = false;

function open(options: WorkerInit): void {
  init = options;
  try {
    session = openSession(
      { model: options.model, moa: options.moa ?? undefined, imageEncoder: options.imageEncoder, tokenizer: options.tokenizer, precision: options.precision, device: options.device },
      { needsEncoder: options.moa !== null },
    );
    const { sd, moa } = session;
    const defaults = resolveParameters(sd, { prompt: '' });
    const info: ModelInfo = {
      model: sd.source,
      moa: options.moa,
      precision: session.precision,
      device: sd.device,
      width: defaults.width,
      height: defaults.height,
      sizeMultiple: sd.vae.scaleFactor,
      maxSubjects: moa?.config.maxSubjects ?? 0,
      guidance: defaults.guidance,
    };
    tap = new PreviewTap(sd, options.previewEvery);
    send({ type: 'ready', info });
  } catch (error) {
    sendAndExit({ type: 'fatal', message: messageOf(error) }, 1);
  }
}

function start(job: WorkerJob): void {
  if (running) {
    send({ type: 'failed', id: job.id, message: `the worker is already running job ${running.id}` });
    return;
  }
  const controller = new AbortController();
  running = { id: job.id, controller };
  void runWith(job, controller).finally(() => {
    running = null;
    if (stopping) exit();
  });
}

async function runWith(job: WorkerJob, controller: AbortController): Promise<void> {
  send({ type: 'started', id: job.id });
  tap!.begin((step, png) => send({ type: 'preview', id: job.id, step, total: job.total, png: png.toString('base64') }));
  try {
    mkdirSync(job.dir, { recursive: true });
    const output = await runJob(session!, job, {
      signal: controller.signal,
      onProgress: (step, total) => send({ type: 'progress', id: job.id, step, total }),
      precision: session!.precision,
      moa: init!.moa,
    });
    await tap!.end();
    send({ type: 'done', id: job.id, output });
  } catch (error) {
    await tap!.end();
    if (controller.signal.aborted) send({ type: 'cancelled', id: job.id });
    else send({ type: 'failed', id: job.id, message: messageOf(error) });
  }
}

function exit(): void {
  session?.dispose();
  session = null;
  sendAndExit({ type: 'exiting' }, 0);
}

process.on('message', (message: ToWorker) => {
  switch (message.type) {
    case 'init':
      if (!session) open(message.init);
      break;
    case 'run':
      if (stopping) send({ type: 'cancelled', id: message.job.id });
      else start(message.job);
      break;
    case 'cancel':
      if (running?.id === message.id) running.controller.abort();
      break;
    case 'shutdown':
      stopping = true;
      if (running) running.controller.abort();
      else exit();
      break;
  }
});

// The server went away without saying so: stop, do not linger as an orphan.
process.on('disconnect', () => {
  stopping = true;
  running?.controller.abort();
  if (!running) exit();
});
