// GET /files/<path>: files under the output folder, and nothing outside it. The raw path is
// decoded segment by segment and refused when a segment is '.', '..', empty, or holds a slash,
// backslash or NUL; the real path (symbolic links resolved) must still lie inside the folder.
import { createReadStream, realpathSync, statSync } from 'node:fs';
import { extname, join, sep } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { ApiError } from './errors.js';

const TYPES: Record<string, string> = {
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.webp': 'image/webp',
  '.json': 'application/json; charset=utf-8',
};

/** The file a /files/ path names, or null when it names nothing servable. */
export function resolveFile(root: string, rawPath: string): string | null {
  const segments = rawPath.split('/');
  const decoded: string[] = [];
  for (const segment of segments) {
    let part: string;
    try {
      part = decodeURIComponent(segment);
    } catch {
      return null;
    }
    if (part === '' || part === '.' || part === '..' || /[/\\\0]/.test(part)) return null;
    decoded.push(part);
  }
  let real: string;
  let realRoot: string;
  try {
    realRoot = realpathSync(root);
    real = realpathSync(join(realRoot, ...decoded));
  } catch {
    return null;
  }
  if (!real.startsWith(realRoot + sep)) return null;
  try {
    return statSync(real).isFile() ? real : null;
  } catch {
    return null;
  }
}

export function installFiles(app: FastifyInstance, root: string): void {
  app.get('/files/*', { schema: { hide: true } }, async (request, reply) => {
    const raw = request.url.split('?')[0]!.slice('/files/'.length);
    const file = resolveFile(root, raw);
    if (!file || !TYPES[extname(file).toLowerCase()]) throw new ApiError(404, `no file '${raw}'`);
    reply.header('Content-Type', TYPES[extname(file).toLowerCase()]!);
    reply.header('X-Content-Type-Options', 'nosniff');
    reply.header('Cache-Control', 'no-cache');
    reply.header('Content-Length', statSync(file).size);
    return reply.send(createReadStream(file));
  });
}
