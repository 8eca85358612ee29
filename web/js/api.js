// Talks to `moa serve` (docs/api.md): the access token, JSON requests that turn the API's error
// shape into ApiError, file URLs and event streams.

const TOKEN_KEY = 'moa-studio:token';

/** An error answer of the API: its status, message and (when about one input) field path. */
export class ApiError extends Error {
  constructor(status, message, field) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.field = field ?? null;
  }
}

/**
 * Moves ?token= from the address bar into browser storage, so the token is sent with every
 * request but is not left in the history or in links copied from the address bar.
 */
export function adoptUrlToken() {
  const url = new URL(location.href);
  const given = url.searchParams.get('token');
  if (given === null) return;
  setToken(given);
  url.searchParams.delete('token');
  history.replaceState(history.state, '', url.pathname + url.search + url.hash);
}

export const token = () => localStorage.getItem(TOKEN_KEY) || null;

export function setToken(value) {
  if (value) localStorage.setItem(TOKEN_KEY, value);
  else localStorage.removeItem(TOKEN_KEY);
}

/** A path of /api or /files with the token as a query parameter (for <img src> and EventSource). */
export function withToken(path) {
  const t = token();
  if (!t) return path;
  const url = new URL(path, location.origin);
  url.searchParams.set('token', t);
  return url.pathname + url.search;
}

async function request(method, path, body) {
  const headers = {};
  const t = token();
  if (t) headers.authorization = `Bearer ${t}`;
  let payload;
  if (body instanceof FormData) payload = body;
  else if (body !== undefined) {
    headers['content-type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body: payload });
  } catch (error) {
    throw new ApiError(0, `cannot reach the server (${error.message}): is moa serve still running?`);
  }
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // not JSON: reported below if it was an error
  }
  if (!res.ok) {
    const error = data?.error;
    let message = error?.message ?? `the server answered ${res.status} ${res.statusText}`;
    if (res.status === 429) message += ` (retry in ${res.headers.get('retry-after') ?? 'a few'} s)`;
    throw new ApiError(res.status, message, error?.field);
  }
  return data;
}

export const api = {
  health: () => request('GET', '/api/health'),
  uploads: () => request('GET', '/api/uploads'),
  upload(file) {
    const form = new FormData();
    form.append('file', file, file.name);
    return request('POST', '/api/uploads', form);
  },
  submit: (job) => request('POST', '/api/jobs', job),
  job: (id) => request('GET', `/api/jobs/${encodeURIComponent(id)}`),
  jobs: ({ limit, offset, status }) => request('GET', `/api/jobs?limit=${limit}&offset=${offset}${status ? `&status=${status}` : ''}`),
  cancel: (id) => request('DELETE', `/api/jobs/${encodeURIComponent(id)}`),
};

/** The job's server-sent events (docs/api.md: state, status, progress, preview, done/failed/cancelled). */
export const jobEvents = (id) => new EventSource(withToken(`/api/jobs/${encodeURIComponent(id)}/events`));
