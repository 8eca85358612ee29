// GET /: the web studio, the static files of the repository's web/ folder; a short notice when
// the folder is missing.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fastifyStatic from '@fastify/static';
import type { FastifyInstance } from 'fastify';

/** <repo>/web, found from this file (src/server or dist/src/server). */
export function defaultWebDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const parent = dirname(dir);
    if (parent === dir) return join(process.cwd(), 'web');
    dir = parent;
  }
  return join(dir, 'web');
}

const NOTICE = `<!doctype html><meta charset="utf-8"><title>moa</title>
<p>The moa web studio is not installed here (no <code>web/</code> folder). The HTTP API is at
<code>/api</code>: see <code>docs/api.md</code>, or <a href="/api/openapi.json">/api/openapi.json</a>.</p>`;

export async function installWeb(app: FastifyInstance, dir: string): Promise<void> {
  if (existsSync(join(dir, 'index.html'))) {
    await app.register(fastifyStatic, { root: dir, prefix: '/', index: 'index.html', schemaHide: true, serveDotFiles: false });
    return;
  }
  app.get('/', { schema: { hide: true } }, async (_request, reply) => reply.type('text/html; charset=utf-8').send(NOTICE));
}
