// GET /api/jobs/:id/events: a job's progress as server-sent events. A client first gets the job
// as it is now ('state'), then what happens to it, until it finishes.
import type { ServerResponse } from 'node:http';
import type { FastifyInstance } from 'fastify';
import { ApiError } from './errors.js';
import { isFinished, type JobRecord, type Jobs } from './jobs.js';

const HEARTBEAT_MS = 15_000;

function write(res: ServerResponse, event: string, data: unknown): void {
  res.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

const terminalEvent = (job: JobRecord) => (job.status === 'succeeded' ? 'done' : job.status);

/** Open event streams, ended when the server stops. */
export class EventStreams {
  readonly #open = new Set<ServerResponse>();

  install(app: FastifyInstance, jobs: Jobs): void {
    app.get('/api/jobs/:id/events', { schema: { summary: "a job's progress as server-sent events (state, status, progress, preview, then done / failed / cancelled)", params: { type: 'object', properties: { id: { type: 'string' } } } } }, (request, reply) => {
      const { id } = request.params as { id: string };
      const job = jobs.get(id);
      if (!job) throw new ApiError(404, `no job '${id}'`);
      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, { 'Content-Type': 'text/event-stream; charset=utf-8', 'Cache-Control': 'no-cache, no-transform', Connection: 'keep-alive', 'X-Accel-Buffering': 'no' });
      write(res, 'state', job);
      if (isFinished(job.status)) {
        write(res, terminalEvent(job), job);
        res.end();
        return;
      }
      this.#open.add(res);
      const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
      const stop = () => {
        clearInterval(heartbeat);
        unsubscribe();
        this.#open.delete(res);
      };
      const unsubscribe = jobs.subscribe(id, (event, data) => {
        write(res, event, data);
        if (event === 'done' || event === 'failed' || event === 'cancelled') {
          stop();
          res.end();
        }
      });
      res.on('close', stop);
    });
  }

  /** Ends every open stream (the server is stopping). */
  closeAll(): void {
    for (const res of this.#open) res.end();
    this.#open.clear();
  }
}
