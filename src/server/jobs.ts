// The jobs: their records (the gallery, kept on disk as <out>/jobs/<id>/job.json), the bounded
// queue in front of the worker, and the events each job's listeners receive.
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { writeFileAtomically } from '../io/atomic.js';
import { ApiError } from './errors.js';
import { isId } from './ids.js';
import type { FromWorker, JobOutput, WorkerJob } from './worker/protocol.js';

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';
export const JOB_STATUSES: readonly JobStatus[] = ['queued', 'running', 'succeeded', 'failed', 'cancelled'];
const FINISHED: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];

export interface JobRecord {
  id: string;
  kind: WorkerJob['kind'];
  status: JobStatus;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  position: number | null;
  progress: { step: number; total: number };
  /** The complete request, defaults filled in and the seed fixed: POSTing it again reproduces the job. */
  parameters: Record<string, unknown>;
  /** What the pipeline reported, once it ran. */
  generation: Record<string, unknown> | null;
  results: (Omit<JobOutput['results'][number], 'file'> & { index: number; url: string })[];
  maps: (Omit<JobOutput['maps'][number], 'file'> & { url: string })[];
  error: { message: string } | null;
  /** The latest preview while running (not kept on disk). */
  preview?: { step: number; image: string };
}

export type JobEventName = 'status' | 'progress' | 'preview' | 'done' | 'failed' | 'cancelled';
export type JobListener = (event: JobEventName, data: unknown) => void;

/** The worker as the queue uses it. */
export interface JobRunner {
  readonly state: string;
  run(job: WorkerJob): void;
  cancel(id: string): void;
}

const now = () => new Date().toISOString();
export const isFinished = (status: JobStatus) => FINISHED.includes(status);

export class Jobs {
  readonly dir: string;
  readonly #records = new Map<string, JobRecord>();
  readonly #work = new Map<string, WorkerJob>();
  readonly #waiting: string[] = [];
  readonly #listeners = new Map<string, Set<JobListener>>();
  #running: string | null = null;
  #cancelRequested = new Set<string>();
  #closed = false;
  runner: JobRunner | null = null;

  constructor(
    readonly out: string,
    readonly maxWaiting: number,
  ) {
    this.dir = join(out, 'jobs');
    mkdirSync(this.dir, { recursive: true });
    this.#load();
  }

  /** The gallery from disk; jobs the last server did not finish are listed as cancelled. */
  #load(): void {
    for (const id of readdirSync(this.dir)) {
      const file = join(this.dir, id, 'job.json');
      if (!isId(id) || !existsSync(file)) continue;
      try {
        const record = JSON.parse(readFileSync(file, 'utf8')) as JobRecord;
        if (record.id !== id) continue;
        if (!isFinished(record.status)) {
          Object.assign(record, { status: 'cancelled', position: null, finishedAt: now(), error: { message: 'the server stopped before this job finished' } });
          this.#save(record);
        }
        this.#records.set(id, record);
      } catch {
        // A damaged record stays on disk, out of the gallery.
      }
    }
  }

  #save(record: JobRecord): void {
    const { preview: _, ...kept } = record;
    writeFileAtomically(join(this.dir, record.id, 'job.json'), Buffer.from(JSON.stringify(kept, null, 2)));
  }

  /** The folder a job writes into. */
  jobDir(id: string): string {
    return join(this.dir, id);
  }

  get(id: string): JobRecord | undefined {
    return this.#records.get(id);
  }

  /** Newest first. */
  list({ limit, offset, status }: { limit: number; offset: number; status?: JobStatus }): { jobs: JobRecord[]; total: number } {
    const all = [...this.#records.values()].filter((j) => !status || j.status === status).sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
    return { jobs: all.slice(offset, offset + limit), total: all.length };
  }

  counts(): { running: number; waiting: number; max: number } {
    return { running: this.#running ? 1 : 0, waiting: this.#waiting.length, max: this.maxWaiting };
  }

  /** Queues a resolved job; 429 when the queue is full, 503 when the server is stopping. */
  submit(work: WorkerJob, parameters: Record<string, unknown>): JobRecord {
    if (this.#closed) throw new ApiError(503, 'the server is shutting down; it takes no new jobs');
    if (this.#waiting.length >= this.maxWaiting) {
      throw new ApiError(429, `the queue is full (${this.#waiting.length} jobs waiting, at most ${this.maxWaiting}): try again when a job has finished`);
    }
    const record: JobRecord = {
      id: work.id,
      kind: work.kind,
      status: 'queued',
      createdAt: now(),
      startedAt: null,
      finishedAt: null,
      position: this.#waiting.length,
      progress: { step: 0, total: work.total },
      parameters,
      generation: null,
      results: [],
      maps: [],
      error: null,
    };
    mkdirSync(this.jobDir(work.id), { recursive: true });
    this.#records.set(work.id, record);
    this.#work.set(work.id, work);
    this.#waiting.push(work.id);
    this.#save(record);
    this.dispatch();
    return record;
  }

  /** Hands the next queued job to the worker when it is idle. */
  dispatch(): void {
    if (this.#running || this.runner?.state !== 'idle') return;
    const id = this.#waiting.shift();
    if (id === undefined) return;
    const record = this.#records.get(id)!;
    this.#running = id;
    Object.assign(record, { status: 'running', position: null, startedAt: now() });
    this.#save(record);
    this.#emit(id, 'status', { status: 'running' });
    this.#positionsChanged();
    this.runner.run(this.#work.get(id)!);
  }

  /**
   * Cancels a job: a queued one at once ('cancelled'), a running one between two steps
   * ('cancelling'); 'finished' when it already finished.
   */
  cancel(id: string): 'cancelled' | 'cancelling' | 'finished' {
    const record = this.#records.get(id);
    if (!record) throw new ApiError(404, `no job '${id}'`);
    if (isFinished(record.status)) return 'finished';
    const at = this.#waiting.indexOf(id);
    if (at >= 0) {
      this.#waiting.splice(at, 1);
      this.#finish(record, 'cancelled', { error: { message: 'cancelled before it started' } });
      this.#positionsChanged();
      return 'cancelled';
    }
    this.#cancelRequested.add(id);
    this.runner?.cancel(id);
    return 'cancelling';
  }

  /** Listens to a job's events until the returned function is called. */
  subscribe(id: string, listener: JobListener): () => void {
    let set = this.#listeners.get(id);
    if (!set) this.#listeners.set(id, (set = new Set()));
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0 && this.#listeners.get(id) === set) this.#listeners.delete(id);
    };
  }

  /** What the worker reports about a job. */
  onWorkerMessage(message: Exclude<FromWorker, { type: 'ready' | 'fatal' | 'exiting' }>): void {
    const record = this.#records.get(message.id);
    if (!record || isFinished(record.status)) return;
    switch (message.type) {
      case 'started':
        return;
      case 'progress':
        record.progress = { step: message.step, total: message.total };
        return this.#emit(record.id, 'progress', record.progress);
      case 'preview': {
        record.preview = { step: message.step, image: `data:image/png;base64,${message.png}` };
        return this.#emit(record.id, 'preview', { step: message.step, total: message.total, image: record.preview.image });
      }
      case 'done':
        return this.#finish(record, 'succeeded', { generation: message.output.generation, ...this.#urls(record.id, message.output) });
      case 'failed':
        return this.#finish(record, 'failed', { error: { message: message.message } });
      case 'cancelled':
        return this.#finish(record, 'cancelled', { error: { message: this.#closed && !this.#cancelRequested.has(record.id) ? 'the server shut down while it ran' : 'cancelled while running' } });
    }
  }

  /** The worker died while running the job. */
  onCrash(id: string, reason: string): void {
    const record = this.#records.get(id);
    if (record && !isFinished(record.status)) this.#finish(record, 'failed', { error: { message: `${reason}; the job was not finished (a new worker has been started for the next jobs)` } });
  }

  /** Stops taking jobs: queued ones are cancelled; the running one is asked to stop. */
  close(): void {
    this.#closed = true;
    for (const id of this.#waiting.splice(0)) this.#finish(this.#records.get(id)!, 'cancelled', { error: { message: 'the server shut down before it started' } });
    if (this.#running) this.runner?.cancel(this.#running);
  }

  get runningId(): string | null {
    return this.#running;
  }

  #urls(id: string, output: JobOutput): Pick<JobRecord, 'results' | 'maps'> {
    const url = (file: string) => '/files/' + relative(this.out, join(this.jobDir(id), file)).split(sep).map(encodeURIComponent).join('/');
    return {
      results: output.results.map(({ file, ...r }, index) => ({ index, ...r, url: url(file) })),
      maps: output.maps.map(({ file, ...m }) => ({ ...m, url: url(file) })),
    };
  }

  #finish(record: JobRecord, status: JobStatus, fields: Partial<JobRecord>): void {
    delete record.preview;
    Object.assign(record, { status, position: null, finishedAt: now(), ...fields });
    if (status === 'succeeded') record.progress = { step: record.progress.total, total: record.progress.total };
    this.#work.delete(record.id);
    this.#cancelRequested.delete(record.id);
    if (this.#running === record.id) this.#running = null;
    this.#save(record);
    this.#emit(record.id, status === 'succeeded' ? 'done' : status === 'failed' ? 'failed' : 'cancelled', record);
    this.#listeners.delete(record.id);
  }

  #positionsChanged(): void {
    this.#waiting.forEach((id, position) => {
      const record = this.#records.get(id)!;
      if (record.position === position) return;
      record.position = position;
      this.#emit(id, 'status', { status: 'queued', position });
    });
  }

  #emit(id: string, event: JobEventName, data: unknown): void {
    for (const listener of [...(this.#listeners.get(id) ?? [])]) listener(event, data);
  }
}
