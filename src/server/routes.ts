// The API's routes: jobs, uploads, health, and the OpenAPI description.
import type { FastifyInstance } from 'fastify';
import type { ClipTokenizer } from '../models/clip-tokenizer.js';
import { ApiError, badInput } from './errors.js';
import { newId } from './ids.js';
import { type JobRequest, resolveJob } from './job-request.js';
import { errorSchema, JOB_KINDS, jobListQuerySchema, jobRequestSchema, jobSchema } from './job-schema.js';
import type { JobStatus, Jobs } from './jobs.js';
import { type Limits, MAX_ALTERNATIVES, MAX_FRAMES } from './limits.js';
import type { Uploads } from './uploads.js';
import type { WorkerHost } from './worker-host.js';

export interface RouteContext {
  jobs: Jobs;
  uploads: Uploads;
  worker: WorkerHost;
  tokenizer: ClipTokenizer;
  limits: Limits;
}

const idParams = { type: 'object', properties: { id: { type: 'string' } }, required: ['id'] } as const;
const errors = { 400: errorSchema, 401: errorSchema, 404: errorSchema } as const;

const uploadSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    url: { type: 'string' },
    width: { type: 'integer' },
    height: { type: 'integer' },
    hasAlpha: { type: 'boolean' },
    format: { type: 'string' },
    bytes: { type: 'integer' },
    createdAt: { type: 'string' },
  },
} as const;

export function installRoutes(app: FastifyInstance, { jobs, uploads, worker, tokenizer, limits }: RouteContext): void {
  const job = (id: string) => {
    const record = jobs.get(id);
    if (!record) throw new ApiError(404, `no job '${id}'`);
    return record;
  };

  app.get('/api/health', { schema: { summary: 'the model, the worker and the queue' } }, async () => {
    const info = worker.info!;
    return {
      ok: true,
      model: info.model,
      moa: info.moa,
      precision: info.precision,
      device: info.device,
      defaults: { width: info.width, height: info.height, sizeMultiple: info.sizeMultiple, maxSubjects: info.maxSubjects, guidance: info.guidance },
      limits: { ...limits, maxFrames: MAX_FRAMES, maxAlternatives: MAX_ALTERNATIVES },
      kinds: info.moa ? JOB_KINDS : ['generate'],
      worker: { state: worker.state, pid: worker.pid, restarts: worker.restarts },
      queue: jobs.counts(),
    };
  });

  app.post(
    '/api/jobs',
    {
      schema: {
        summary: 'queue a job: generate, swap, morph or edit',
        body: jobRequestSchema(limits),
        response: {
          202: { type: 'object', properties: { id: { type: 'string' }, status: { type: 'string' }, position: { type: ['integer', 'null'] }, url: { type: 'string' }, events: { type: 'string' } } },
          ...errors,
          429: errorSchema,
          503: errorSchema,
        },
      },
    },
    async (request, reply) => {
      const { work, parameters } = resolveJob(request.body as JobRequest, { info: worker.info!, tokenizer, uploads, limits });
      const id = newId();
      const record = jobs.submit({ ...work, id, dir: jobs.jobDir(id) }, parameters);
      const url = `/api/jobs/${id}`;
      reply.code(202).header('Location', url);
      return { id, status: record.status, position: record.position, url, events: `${url}/events` };
    },
  );

  app.get('/api/jobs', { schema: { summary: 'the gallery: jobs, newest first', querystring: jobListQuerySchema, response: { 200: { type: 'object', properties: { jobs: { type: 'array', items: jobSchema }, total: { type: 'integer' } } }, ...errors } } }, async (request) => {
    const query = request.query as { limit?: string; offset?: string; status?: JobStatus };
    const limit = query.limit === undefined ? 50 : Number(query.limit);
    if (limit < 1 || limit > 200) throw badInput(`limit must be from 1 to 200, not ${limit}`, 'limit');
    return jobs.list({ limit, offset: query.offset === undefined ? 0 : Number(query.offset), status: query.status });
  });

  app.get('/api/jobs/:id', { schema: { summary: 'one job: status, progress, parameters, results, maps', params: idParams, response: { 200: jobSchema, ...errors } } }, async (request) => job((request.params as { id: string }).id));

  app.delete('/api/jobs/:id', { schema: { summary: 'cancel a job (queued: at once; running: between two steps)', params: idParams, response: { 200: jobSchema, 202: jobSchema, ...errors, 409: errorSchema } } }, async (request, reply) => {
    const { id } = request.params as { id: string };
    const outcome = jobs.cancel(id);
    if (outcome === 'finished') throw new ApiError(409, `job '${id}' already finished (${job(id).status}); there is nothing to cancel`);
    reply.code(outcome === 'cancelled' ? 200 : 202);
    return job(id);
  });

  app.post('/api/uploads', { schema: { summary: 'upload a PNG, JPEG or WebP image (multipart/form-data, one file)', consumes: ['multipart/form-data'], response: { 201: uploadSchema, ...errors, 413: errorSchema, 415: errorSchema } } }, async (request, reply) => {
    if (!request.isMultipart()) throw new ApiError(415, "send the image as multipart/form-data (a form with one file field, e.g. curl -F file=@photo.png)");
    const part = await request.file();
    if (!part) throw badInput('no file in the form: send the image as a file field (e.g. curl -F file=@photo.png)');
    let data: Buffer;
    try {
      data = await part.toBuffer();
    } catch (error) {
      if ((error as { code?: string }).code === 'FST_REQ_FILE_TOO_LARGE') {
        throw new ApiError(413, `the upload is larger than ${limits.maxUploadBytes / 2 ** 20} MB, this server's limit (--max-upload-mb)`);
      }
      throw error;
    }
    const record = await uploads.save(data);
    reply.code(201).header('Location', `/api/uploads/${record.id}`);
    return record;
  });

  app.get('/api/uploads', { schema: { summary: 'uploads, newest first', response: { 200: { type: 'object', properties: { uploads: { type: 'array', items: uploadSchema } } } } } }, async () => ({ uploads: uploads.list() }));

  app.get('/api/uploads/:id', { schema: { summary: "one upload's record (the image is at its url)", params: idParams, response: { 200: uploadSchema, ...errors } } }, async (request) => {
    const { id } = request.params as { id: string };
    const record = uploads.get(id);
    if (!record) throw new ApiError(404, `no upload '${id}'`);
    return record;
  });

  app.get('/api/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}
