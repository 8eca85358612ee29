// `moa serve`'s server: starts the generation worker, then a Fastify app with the API, the
// output files and the studio; close() stops both gracefully.
import { mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import fastifyMultipart from '@fastify/multipart';
import fastifySwagger from '@fastify/swagger';
import Fastify, { type FastifyInstance } from 'fastify';
import { isDiffusersFolder } from '../io/diffusers.js';
import type { ClipTokenizer } from '../models/clip-tokenizer.js';
import { openTokenizer } from '../pipelines/load.js';
import { installAuth, isLoopbackHost } from './auth.js';
import { installErrorHandlers } from './errors.js';
import { EventStreams } from './events.js';
import { installFiles } from './files.js';
import { Jobs } from './jobs.js';
import type { Limits } from './limits.js';
import { installRoutes } from './routes.js';
import { Uploads } from './uploads.js';
import { installWeb, defaultWebDir } from './web.js';
import { WorkerHost } from './worker-host.js';
import type { WorkerInit } from './worker/protocol.js';

/** The worker's fields (model, precision, device, previews) and the server's own. */
export interface ServerOptions extends Limits, WorkerInit {
  host: string;
  port: number;
  token?: string;
  /** Uploads, results and job records. */
  out: string;
  /** Jobs that may wait behind the running one. */
  maxQueue: number;
  /** The studio's folder (default <repo>/web). */
  webDir?: string;
  /** Fastify's logger (off by default). */
  logger?: boolean;
}

export interface RunningServer {
  url: string;
  app: FastifyInstance;
  jobs: Jobs;
  worker: WorkerHost;
  /** Stops gracefully: no new jobs, queued ones cancelled, the running one stopped, the worker ended. */
  close(): Promise<void>;
}

/** Refuses settings that would expose the server or cannot work. */
export function checkServerOptions(options: ServerOptions): void {
  if (!isLoopbackHost(options.host) && !options.token) {
    throw new Error(`binding ${options.host} would let other machines use this server: give --token (every API request must then carry it), or keep the default --host 127.0.0.1`);
  }
  if (options.token !== undefined && options.token.length < 8) throw new Error('--token must be at least 8 characters');
  const positive: [string, number][] = [['--max-queue', options.maxQueue], ['--max-steps', options.maxSteps], ['--max-batch', options.maxBatch], ['--max-side', options.maxSide]];
  for (const [name, value] of positive) if (!Number.isInteger(value) || value < 1) throw new Error(`${name} must be a positive integer, not ${value}`);
  if (options.maxSteps > 1000) throw new Error(`--max-steps must be at most 1000 (the pipelines' limit), not ${options.maxSteps}`);
  if (!(options.maxUploadBytes > 0)) throw new Error('--max-upload-mb must be positive');
  if (!Number.isInteger(options.previewEvery) || options.previewEvery < 0) throw new Error(`--preview-every must be an integer ≥ 0, not ${options.previewEvery}`);
  if (!Number.isInteger(options.port) || options.port < 0 || options.port > 65535) throw new Error(`--port must be from 0 to 65535, not ${options.port}`);
}

/** The tokenizer the server checks subject words with: the model's own. */
function serverTokenizer(options: ServerOptions): ClipTokenizer {
  if (isDiffusersFolder(options.model)) return openTokenizer(join(options.model, 'tokenizer'));
  const path = options.tokenizer ?? process.env.MOA_CLIP_TOKENIZER;
  if (!path) throw new Error(`${options.model} is a single-file checkpoint, which holds no tokenizer: pass --tokenizer`);
  return openTokenizer(path);
}

export async function startServer(options: ServerOptions): Promise<RunningServer> {
  checkServerOptions(options);
  const out = resolve(options.out);
  mkdirSync(out, { recursive: true });
  const tokenizer = serverTokenizer(options);
  const limits: Limits = { maxSteps: options.maxSteps, maxBatch: options.maxBatch, maxSide: options.maxSide, maxUploadBytes: options.maxUploadBytes };
  const jobs = new Jobs(out, options.maxQueue);
  const uploads = new Uploads(out);
  const worker = new WorkerHost(
    { model: options.model, moa: options.moa, imageEncoder: options.imageEncoder, tokenizer: options.tokenizer, precision: options.precision, device: options.device, previewEvery: options.previewEvery },
    {
      onJobMessage: (message) => jobs.onWorkerMessage(message),
      onCrash: (id, reason) => jobs.onCrash(id, reason),
      onIdle: () => jobs.dispatch(),
    },
  );
  jobs.runner = worker;
  await worker.start();

  const app = Fastify({
    logger: options.logger ?? false,
    // Unknown fields are refused, not silently dropped; types are not coerced.
    ajv: { customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false } },
  });
  const streams = new EventStreams();
  try {
    installErrorHandlers(app);
    installAuth(app, options.token);
    await app.register(fastifySwagger, {
      openapi: {
        openapi: '3.0.3',
        info: { title: 'moa serve', description: 'Personalized image generation with Mixture-of-Attention: see docs/api.md', version: '1' },
        ...(options.token ? { components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } }, security: [{ bearer: [] }] } : {}),
      },
    });
    await app.register(fastifyMultipart, { limits: { fileSize: options.maxUploadBytes, files: 1, fields: 8, parts: 9 } });
    installRoutes(app, { jobs, uploads, worker, tokenizer, limits });
    streams.install(app, jobs);
    installFiles(app, out);
    await installWeb(app, options.webDir ?? defaultWebDir());
    app.addHook('preClose', async () => {
      jobs.close();
      await worker.stop();
      streams.closeAll();
    });
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    await worker.stop();
    await app.close().catch(() => {});
    throw error;
  }
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : options.port;
  const host = options.host.includes(':') ? `[${options.host}]` : options.host;
  let closing: Promise<void> | null = null;
  return { url: `http://${host}:${port}`, app, jobs, worker, close: () => (closing ??= app.close()) };
}
