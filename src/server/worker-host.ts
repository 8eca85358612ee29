// The server's side of the generation worker: forks it, waits until its model is loaded, hands it
// one job at a time, and starts a new one when it dies (the running job fails, queued ones wait).
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { FromWorker, ModelInfo, ToWorker, WorkerInit, WorkerJob } from './worker/protocol.js';

export type WorkerState = 'starting' | 'idle' | 'busy' | 'stopped';

export interface WorkerHostEvents {
  /** A message about a job (started, progress, preview, done, failed, cancelled). */
  onJobMessage(message: Exclude<FromWorker, { type: 'ready' | 'fatal' | 'exiting' }>): void;
  /** The worker died while running `jobId`. */
  onCrash(jobId: string, reason: string): void;
  /** The worker can take a job. */
  onIdle(): void;
}

const WORKER_SCRIPT = fileURLToPath(new URL('./worker/main.js', import.meta.url));
/** How much of the worker's stderr is kept to explain a crash. */
const STDERR_TAIL = 2000;

export class WorkerHost {
  state: WorkerState = 'stopped';
  restarts = 0;
  info: ModelInfo | null = null;
  #child: ChildProcess | null = null;
  #runningId: string | null = null;
  #failuresInARow = 0;
  #stopping = false;
  #restartTimer: NodeJS.Timeout | null = null;
  #stderr = '';

  constructor(
    private readonly init: WorkerInit,
    private readonly events: WorkerHostEvents,
  ) {}

  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  get runningId(): string | null {
    return this.#runningId;
  }

  /** Starts the first worker; resolves when its model is loaded, rejects with the reason it could not be. */
  start(): Promise<ModelInfo> {
    return new Promise((resolve, reject) => this.#spawn({ resolve, reject }));
  }

  /** Hands a job to the idle worker. */
  run(job: WorkerJob): void {
    if (this.state !== 'idle') throw new Error(`internal: the worker is ${this.state}, it cannot take job ${job.id}`);
    this.state = 'busy';
    this.#runningId = job.id;
    this.#send({ type: 'run', job });
  }

  cancel(id: string): void {
    if (this.#runningId === id) this.#send({ type: 'cancel', id });
  }

  /** Asks the worker to stop (cancelling its job) and waits for it; kills it after `timeoutMs`. */
  async stop(timeoutMs = 10_000): Promise<void> {
    this.#stopping = true;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    const child = this.#child;
    if (!child || child.exitCode !== null || child.signalCode !== null) {
      this.state = 'stopped';
      return;
    }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.#send({ type: 'shutdown' });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
    this.state = 'stopped';
  }

  #send(message: ToWorker): void {
    if (this.#child?.connected) this.#child.send(message);
  }

  #spawn(first?: { resolve: (info: ModelInfo) => void; reject: (error: Error) => void }): void {
    this.state = 'starting';
    this.#stderr = '';
    const child = fork(WORKER_SCRIPT, [], { stdio: ['ignore', 'inherit', 'pipe', 'ipc'], execArgv: [] });
    this.#child = child;
    child.stderr!.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      this.#stderr = (this.#stderr + chunk.toString('utf8')).slice(-STDERR_TAIL);
    });
    let fatal: string | null = null;
    child.on('message', (message: FromWorker) => {
      if (message.type === 'ready') {
        this.info = message.info;
        this.#failuresInARow = 0;
        this.state = 'idle';
        first?.resolve(message.info);
        first = undefined;
        this.events.onIdle();
      } else if (message.type === 'fatal') {
        fatal = message.message;
      } else if (message.type !== 'exiting') {
        if ((message.type === 'done' || message.type === 'failed' || message.type === 'cancelled') && message.id === this.#runningId) {
          this.#runningId = null;
          this.state = 'idle';
          this.events.onJobMessage(message);
          if (!this.#stopping) this.events.onIdle();
          return;
        }
        this.events.onJobMessage(message);
      }
    });
    child.on('error', (error) => {
      // Spawning failed (exit follows when it had started).
      fatal ??= error.message;
    });
    child.on('exit', (code, signal) => {
      if (this.#child === child) this.#child = null;
      const how = signal ? `killed by ${signal}` : `exit code ${code}`;
      const lastLine = this.#stderr.trim().split('\n').at(-1);
      const reason = fatal ?? `the generation worker stopped unexpectedly (${how})${lastLine ? `: ${lastLine}` : ''}`;
      if (first) {
        first.reject(new Error(fatal ? `cannot load the model: ${fatal}` : reason));
        first = undefined;
        this.state = 'stopped';
        return;
      }
      const crashed = this.#runningId;
      this.#runningId = null;
      if (this.#stopping) {
        this.state = 'stopped';
        return;
      }
      this.state = 'starting';
      if (crashed) this.events.onCrash(crashed, reason);
      // A worker that keeps dying before it is ready is restarted less and less often.
      const delay = Math.min(30_000, 200 * 2 ** this.#failuresInARow);
      this.#failuresInARow++;
      this.restarts++;
      this.#restartTimer = setTimeout(() => {
        this.#restartTimer = null;
        if (!this.#stopping) this.#spawn();
      }, delay);
    });
    this.#send({ type: 'init', init: this.init });
  }
}
