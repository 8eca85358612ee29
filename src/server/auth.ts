// Who may talk to the server. With a token, /api and /files need it (Bearer header or ?token=).
// Without one the server is loopback-only: the Host must be a loopback name (no DNS rebinding)
// and a browser request from another origin is refused (no cross-site job submission).
import { timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from './errors.js';

const LOOPBACK_NAMES = new Set(['127.0.0.1', 'localhost', '[::1]', '::1']);

/** True for addresses only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  return LOOPBACK_NAMES.has(host) || /^127\.\d+\.\d+\.\d+$/.test(host);
}

const hostName = (host: string) => (host.startsWith('[') ? host.slice(0, host.indexOf(']') + 1) : host.split(':')[0]!).toLowerCase();

function sameToken(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function givenToken(request: FastifyRequest): string | null {
  const header = request.headers.authorization;
  if (header) return /^Bearer (.+)$/i.exec(header)?.[1]?.trim() ?? '';
  const query = (request.query as Record<string, unknown> | undefined)?.token;
  return typeof query === 'string' ? query : null;
}

export function installAuth(app: FastifyInstance, token: string | undefined): void {
  app.addHook('onRequest', async (request) => {
    const path = request.url.split('?')[0]!;
    const guarded = path.startsWith('/api/') || path === '/api' || path.startsWith('/files/');
    if (token) {
      if (!guarded) return;
      const given = givenToken(request);
      if (given === null) throw new ApiError(401, 'this server needs a token: send it as "Authorization: Bearer <token>" (or ?token=<token>)');
      if (!sameToken(given, token)) throw new ApiError(401, 'wrong token');
      return;
    }
    const host = request.headers.host ?? '';
    if (!isLoopbackHost(hostName(host))) {
      throw new ApiError(403, `refused: Host '${host}' is not a loopback name; this server answers on 127.0.0.1 only (to serve other machines, start it with --host and --token)`);
    }
    const origin = request.headers.origin;
    if (origin !== undefined) {
      let originHost: string | null = null;
      try {
        originHost = new URL(origin).host;
      } catch {
        // 'null' and other opaque origins
      }
      if (originHost?.toLowerCase() !== host.toLowerCase()) throw new ApiError(403, `refused: a request from the web page at ${origin}; only the studio served here may call this server`);
    }
  });
}
