// `moa serve`'s HTTP API on the tiny model: every route, every job kind to a real result, the
// event stream, cancelling, the bounded queue, a crashing worker, bad input, files and tokens.
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { readPngText } from '../src/io/png-text.js';
import { type RunningServer, startServer, type ServerOptions } from '../src/server/app.js';
import { client, readEvents, SERVER_MODEL_GUIDANCE, type ServerEvent, type TinyServerModel, writeTinyServerModel } from './server-fixture.js';
import { CLIP_VOCAB } from './tiny-sd.js';

// One libtorch thread for the worker: the tiny model gains nothing from more, and the tests share the machine.
process.env.MOA_THREADS ??= '1';
const skip = existsSync(CLIP_VOCAB) ? false : `CLIP's vocabulary is not at ${CLIP_VOCAB}`;
const work = mkdtempSync(join(tmpdir(), 'moa-server-'));
const TOKEN = 'secret-token-1234';

let tiny: TinyServerModel;
let server: RunningServer;
let api: ReturnType<typeof client>;
let ref: string[] = [];

const options = (overrides: Partial<ServerOptions> = {}): ServerOptions => ({
  model: tiny.model,
  moa: tiny.moa,
  precision: 'fp32',
  device: 'cpu',
  host: '127.0.0.1',
  port: 0,
  out: join(work, 'out'),
  maxQueue: 2,
  maxSteps: 1000,
  maxBatch: 2,
  maxSide: 64,
  maxUploadBytes: 64 * 1024,
  previewEvery: 1,
  webDir: join(work, 'web'),
  ...overrides,
});

const small = { steps: 2, width: 16, height: 16, seed: 11 };
/** A job long enough to be cancelled, queued behind, or killed while it runs (it never finishes on its own here). */
const long = { kind: 'generate', prompt: 'a man hiking', steps: 500, width: 16, height: 16, seed: 1 };

const pngSize = async (data: Buffer) => {
  const meta = await sharp(data).metadata();
  return [meta.format, meta.width, meta.height];
};
const rawPixels = (data: Buffer) => sharp(data).raw().toBuffer();

/** Waits for a job's first progress event; `all` resolves with every event once the stream ends. */
function follow(id: string, token?: string): { running: Promise<void>; all: Promise<ServerEvent[]> } {
  let started!: () => void;
  let ended!: (error: Error) => void;
  const running = new Promise<void>((resolve, reject) => ((started = resolve), (ended = reject)));
  const all = readEvents(`${server.url}/api/jobs/${id}/events`, token ? { authorization: `Bearer ${token}` } : {}, (e) => {
    if (e.event === 'progress') started();
    if (['done', 'failed', 'cancelled'].includes(e.event)) ended(new Error(`job ${id} ended before it ran a step: ${JSON.stringify(e.data.error)}`));
  });
  return { running, all };
}

/** Keeps the worker busy with a long job, so that jobs posted meanwhile wait in the queue; release() cancels it. */
async function occupy(): Promise<{ release(): Promise<void> }> {
  const { body } = await api.post('/api/jobs', { ...long, seed: 99 });
  const followed = follow(body.id);
  await followed.running;
  return {
    async release() {
      await api.delete(`/api/jobs/${body.id}`);
      await followed.all;
    },
  };
}

/** Listens to a job's events; `connected` resolves once the first ('state') has arrived. */
function listen(id: string): { connected: Promise<void>; all: Promise<ServerEvent[]> } {
  let connected!: () => void;
  const promise = new Promise<void>((resolve) => (connected = resolve));
  return { connected: promise, all: readEvents(`${server.url}/api/jobs/${id}/events`, {}, () => connected()) };
}

/** A raw GET with the path exactly as given (fetch would normalise '..'). */
function rawGet(base: string, path: string, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const req = httpRequest({ host: url.hostname, port: url.port, path, headers }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString('latin1')));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

describe('moa serve', { skip, timeout: 180_000 }, () => {
  before(async () => {
    tiny = await writeTinyServerModel(work);
    mkdirSync(join(work, 'web'));
    writeFileSync(join(work, 'web', 'index.html'), '<!doctype html><title>studio</title>');
    writeFileSync(join(work, 'web', 'app.js'), 'console.log("studio")');
    server = await startServer(options());
    api = client(server.url);
    for (const path of tiny.references) ref.push((await api.upload(readFileSync(path))).body.id);
  });
  after(async () => {
    await server?.close();
    rmSync(work, { recursive: true, force: true });
  });

  test('health, the OpenAPI description and the studio', async () => {
    const health = await api.get('/api/health');
    assert.equal(health.status, 200);
    assert.equal(health.body.ok, true);
    assert.equal(health.body.model, tiny.model);
    assert.equal(health.body.moa, tiny.moa);
    assert.deepEqual(health.body.defaults, { width: 16, height: 16, sizeMultiple: 2, maxSubjects: 4, guidance: SERVER_MODEL_GUIDANCE });
    assert.deepEqual(health.body.kinds, ['generate', 'swap', 'morph', 'edit']);
    assert.deepEqual(health.body.queue, { running: 0, waiting: 0, max: 2 });
    assert.equal(health.body.worker.state, 'idle');
    assert.equal(health.body.limits.maxSteps, 1000);

    const openapi = await api.get('/api/openapi.json');
    assert.equal(openapi.status, 200);
    assert.match(openapi.body.openapi, /^3\./);
    for (const path of ['/api/jobs', '/api/jobs/{id}', '/api/jobs/{id}/events', '/api/uploads', '/api/uploads/{id}', '/api/health']) assert.ok(openapi.body.paths[path], `${path} is described`);
    const body = openapi.body.paths['/api/jobs'].post.requestBody.content['application/json'].schema;
    assert.equal(body.properties.steps.maximum, 1000, 'the limits of this server are in the description');

    const index = await api.get('/');
    assert.equal(index.status, 200);
    assert.match(index.body, /<title>studio<\/title>/);
    assert.equal((await api.get('/app.js')).body, 'console.log("studio")');
  });

  test('uploads are checked by decoding them, stored as PNG and listed', async () => {
    const jpeg = await sharp({ create: { width: 30, height: 20, channels: 3, background: '#3a6' } }).jpeg().toBuffer();
    const up = await api.upload(jpeg, 'photo.jpg');
    assert.equal(up.status, 201);
    assert.equal(up.headers.get('location'), `/api/uploads/${up.body.id}`);
    assert.deepEqual([up.body.width, up.body.height, up.body.format, up.body.hasAlpha, up.body.bytes], [30, 20, 'jpeg', false, jpeg.length]);
    assert.deepEqual(await pngSize(await api.bytes(up.body.url)), ['png', 30, 20]);
    assert.deepEqual((await api.get(`/api/uploads/${up.body.id}`)).body, up.body);
    const list = await api.get('/api/uploads');
    assert.equal(list.body.uploads[0].id, up.body.id, 'newest first');
    assert.ok(ref.every((id) => list.body.uploads.some((u: { id: string }) => u.id === id)));

    const rgba = await sharp({ create: { width: 8, height: 8, channels: 4, background: { r: 1, g: 2, b: 3, alpha: 0.5 } } }).webp().toBuffer();
    const withAlpha = await api.upload(rgba, 'x.webp');
    assert.equal(withAlpha.status, 201);
    assert.equal(withAlpha.body.hasAlpha, true);

    const text = await api.upload(Buffer.from('not an image at all, whatever the name says'), 'fake.png');
    assert.equal(text.status, 415);
    assert.match(text.body.error.message, /not a PNG, JPEG or WebP image/);
    const gif = await api.upload(await sharp({ create: { width: 4, height: 4, channels: 3, background: '#fff' } }).gif().toBuffer(), 'a.png');
    assert.equal(gif.status, 415);
    assert.match(gif.body.error.message, /a gif image: upload a PNG, JPEG or WebP/);
    const noise = await sharp(Buffer.from(Array.from({ length: 200 * 200 * 3 }, (_, i) => (i * 7919) % 251)), { raw: { width: 200, height: 200, channels: 3 } }).png({ compressionLevel: 0 }).toBuffer();
    const big = await api.upload(noise);
    assert.equal(big.status, 413);
    assert.match(big.body.error.message, /larger than 0\.0625 MB/);
    const wide = await api.upload(await sharp({ create: { width: 5000, height: 2, channels: 3, background: '#000' } }).png().toBuffer());
    assert.equal(wide.status, 400);
    assert.match(wide.body.error.message, /5000×2; uploads may be at most 4096 pixels a side/);
    const notMultipart = await api.postRaw('/api/uploads', '{}');
    assert.equal(notMultipart.status, 415);
    assert.equal((await api.get('/api/uploads/0000000000nothere')).status, 404);
  });

  test('a generate job runs to a PNG with its parameters, maps and progress events, and reproduces', async () => {
    // The job waits behind another while its events are subscribed to, so none is missed.
    const busy = await occupy();
    const submitted = await api.post('/api/jobs', { kind: 'generate', prompt: 'a man hiking', ...small, maps: true, subjects: [{ word: 'man', upload: ref[0] }] });
    assert.equal(submitted.status, 202);
    const { id } = submitted.body;
    assert.deepEqual([submitted.body.status, submitted.body.position], ['queued', 0]);
    assert.equal(submitted.headers.get('location'), `/api/jobs/${id}`);
    assert.equal(submitted.body.events, `/api/jobs/${id}/events`);
    const listening = listen(id);
    await listening.connected;
    await busy.release();
    const events = await listening.all;
    assert.equal(events[0]!.event, 'state', 'a client first gets the current state');
    assert.equal(events[0]!.data.status, 'queued');
    assert.deepEqual(events[1], { event: 'status', data: { status: 'running' } });
    assert.equal(events.at(-1)!.event, 'done');
    const steps = events.filter((e) => e.event === 'progress').map((e) => e.data.step);
    assert.ok(steps.length >= 1 && steps.every((s, i) => i === 0 || s > steps[i - 1]!), `progress steps rise: ${steps}`);
    assert.equal(steps.at(-1), 2);
    const previews = events.filter((e) => e.event === 'preview');
    assert.ok(previews.length >= 1, 'previews are sent');
    const preview = Buffer.from(previews[0]!.data.image.replace(/^data:image\/png;base64,/, ''), 'base64');
    assert.equal((await pngSize(preview))[0], 'png');

    const job = events.at(-1)!.data;
    assert.deepEqual((await api.get(`/api/jobs/${id}`)).body, job);
    assert.equal(job.status, 'succeeded');
    assert.deepEqual(job.progress, { step: 2, total: 2 });
    assert.deepEqual(job.parameters, { kind: 'generate', prompt: 'a man hiking', negativePrompt: '', seed: 11, steps: 2, guidance: SERVER_MODEL_GUIDANCE, width: 16, height: 16, scheduler: 'dpmpp-2m', batch: 1, strength: 1, subjectStart: 0, maps: true, subjects: [{ word: 'man', upload: ref[0] }] });
    assert.deepEqual(job.generation.subjects, [{ word: 'man', tokenIndex: 2 }]);
    assert.equal(job.generation.precision, 'fp32');
    assert.equal(job.results.length, 1);
    assert.deepEqual({ ...job.results[0], url: undefined }, { index: 0, label: 'image 1', seed: 11, width: 16, height: 16, url: undefined });
    const image = await api.bytes(job.results[0].url);
    assert.deepEqual(await pngSize(image), ['png', 16, 16]);
    const recorded = JSON.parse(readPngText(image, 'result').parameters!);
    assert.equal(recorded.seed, 11);
    assert.deepEqual(recorded.request, job.parameters);

    const kinds = job.maps.map((m: { kind: string }) => m.kind);
    assert.ok(kinds.includes('routing-mean') && kinds.includes('routing'));
    assert.deepEqual(job.maps.filter((m: { kind: string }) => m.kind === 'subject').map((m: { word: string }) => m.word), ['man']);
    assert.ok(job.maps.every((m: { result: number }) => m.result === 0));
    assert.deepEqual(await pngSize(await api.bytes(job.maps.find((m: { kind: string }) => m.kind === 'subject').url)), ['png', 16, 16]);

    // A late client gets the state and the end at once.
    const late = await api.events(id);
    assert.deepEqual(late.map((e) => e.event), ['state', 'done']);

    // The recorded parameters, posted again, give the same image.
    const again = await api.post('/api/jobs', job.parameters);
    const second = await api.finished(again.body.id);
    assert.deepEqual(second.parameters, job.parameters);
    assert.ok((await rawPixels(await api.bytes(second.results[0].url))).equals(await rawPixels(image)));

    const gallery = await api.get('/api/jobs');
    assert.deepEqual(gallery.body.jobs.slice(0, 2).map((j: { id: string }) => j.id), [again.body.id, id], 'newest first');
    assert.equal((await api.get('/api/jobs?limit=1&offset=1')).body.jobs[0].id, id);
    assert.ok((await api.get('/api/jobs?status=succeeded')).body.jobs.every((j: { status: string }) => j.status === 'succeeded'));
  });

  test('a batch: one result per image, seeds counting up', async () => {
    const { body } = await api.post('/api/jobs', { kind: 'generate', prompt: 'a photo of a dog', ...small, batch: 2 });
    const job = await api.finished(body.id);
    assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    assert.deepEqual(job.results.map((r: { seed: number; label: string }) => [r.seed, r.label]), [[11, 'image 1'], [12, 'image 2']]);
    assert.equal(job.parameters.subjects.length, 0);
  });

  test('swap, morph and edit', async () => {
    const swap = await api.post('/api/jobs', { kind: 'swap', prompt: 'a man hiking', ...small, subjects: [{ word: 'man', upload: ref[0] }], alternatives: [[{ word: 'man', upload: [ref[1], ref[2]] }]], maps: true, subjectGuidance: 6, subjectGuidanceArea: 'routing' });
    assert.equal(swap.status, 202, JSON.stringify(swap.body));
    const swapped = await api.finished(swap.body.id);
    assert.equal(swapped.status, 'succeeded', JSON.stringify(swapped.error));
    assert.deepEqual(swapped.results.map((r: { label: string; seed: number }) => [r.label, r.seed]), [['base', 11], ['alternative 1', 11]]);
    assert.deepEqual(swapped.progress, { step: 4, total: 4 });
    assert.equal(swapped.parameters.subjectGuidance, 6);
    assert.equal(swapped.generation.subjectGuidance, 6);
    assert.equal(swapped.generation.subjectGuidanceArea, 'routing');
    assert.deepEqual([...new Set(swapped.maps.map((m: { result: number }) => m.result))], [0, 1]);
    const [a, b] = await Promise.all(swapped.results.map(async (r: { url: string }) => rawPixels(await api.bytes(r.url))));
    assert.ok(!a.equals(b), 'another subject gives another image');

    const morph = await api.post('/api/jobs', { kind: 'morph', prompt: 'a portrait of a man', ...small, word: 'man', from: ref[0], to: ref[1], frames: 3 });
    assert.equal(morph.status, 202, JSON.stringify(morph.body));
    const morphed = await api.finished(morph.body.id);
    assert.equal(morphed.status, 'succeeded', JSON.stringify(morphed.error));
    assert.deepEqual(morphed.results.map((r: { alpha: number }) => r.alpha), [0, 0.5, 1]);
    assert.deepEqual(morphed.progress, { step: 6, total: 6 });

    const photo = (await api.upload(await sharp({ create: { width: 16, height: 12, channels: 3, background: '#a52' } }).png().toBuffer())).body.id;
    const edit = await api.post('/api/jobs', { kind: 'edit', prompt: 'a photo of a man', steps: 2, image: photo, subjects: [{ word: 'man', upload: ref[1] }], maps: true });
    assert.equal(edit.status, 202, JSON.stringify(edit.body));
    const edited = await api.finished(edit.body.id);
    assert.equal(edited.status, 'succeeded', JSON.stringify(edited.error));
    assert.deepEqual([edited.results[0].width, edited.results[0].height], [16, 12]);
    assert.ok(edited.results[0].latentDistance >= 0);
    assert.equal(edited.parameters.sourcePrompt, 'a photo of a man');
    assert.equal(edited.parameters.guidance, 1);
    assert.deepEqual(edited.progress, { step: 4, total: 4 }, 'inversion and regeneration');
    assert.ok(edited.maps.some((m: { kind: string; word?: string }) => m.kind === 'subject' && m.word === 'man'));
  });

  test('bad input is a 400 naming the field', async () => {
    const bad = async (body: unknown, field: string | undefined, message: RegExp) => {
      const r = await api.post('/api/jobs', body);
      assert.equal(r.status, 400, JSON.stringify(r.body));
      assert.equal(r.body.error.field, field, JSON.stringify(r.body));
      assert.match(r.body.error.message, message);
    };
    const man = [{ word: 'man', upload: ref[0] }];
    await bad({ kind: 'generate', prompt: 'a dog', subjects: man }, 'subjects/0/word', /"man" is not in the prompt "a dog"/);
    await bad({ kind: 'generate', prompt: 'a man', subjects: [{ word: 'man', upload: '0000000000nothere' }] }, 'subjects/0/upload', /no upload '0000000000nothere'/);
    await bad({ kind: 'generate', prompt: 'a man', steps: 1001 }, 'steps', /'steps' must be <= 1000/);
    await bad({ kind: 'generate', prompt: 'a man', steps: '3' }, 'steps', /'steps' must be an integer/);
    await bad({ kind: 'generate', prompt: 'a man', bogus: 1 }, 'bogus', /unknown field 'bogus'/);
    await bad({ kind: 'generate', prompt: 'a man', subjects: [{ word: 'man', upload: ref[0], mask: 'x' }] }, 'subjects/0/mask', /unknown field 'subjects\/0\/mask'/);
    await bad({ prompt: 'a man' }, 'kind', /missing field 'kind'/);
    await bad({ kind: 'paint', prompt: 'a man' }, 'kind', /must be one of: generate, swap, morph, edit/);
    await bad({ kind: 'generate', prompt: 'a man', frames: 3 }, 'frames', /'frames' is not a field of a 'generate' job \(it belongs to morph jobs\)/);
    await bad({ kind: 'generate', prompt: 'a man', width: 15 }, 'width', /multiple of 2/);
    await bad({ kind: 'generate', prompt: 'a man', batch: 3 }, 'batch', /'batch' must be <= 2/);
    await bad({ kind: 'swap', prompt: 'a man', subjects: man }, 'alternatives', /a 'swap' job needs 'alternatives'/);
    await bad({ kind: 'swap', prompt: 'a man and a woman', subjects: man, alternatives: [[{ word: 'woman', upload: ref[1] }]] }, 'alternatives/0/0/word', /swaps 'woman', which is not one of the subjects \(man\)/);
    await bad({ kind: 'morph', prompt: 'a man', word: 'dog', from: ref[0], to: ref[1] }, 'word', /"dog" is not in the prompt/);
    await bad({ kind: 'generate', prompt: 'a man', maps: true, strength: 0 }, 'maps', /maps need steps that run MoA/);
    await bad({ kind: 'generate', prompt: 'a man', subjectGuidance: 31 }, 'subjectGuidance', /'subjectGuidance' must be <= 30/);
    await bad({ kind: 'generate', prompt: 'a man', subjectGuidanceArea: 'face' }, 'subjectGuidanceArea', /must be one of: image, routing/);
    const odd = (await api.upload(await sharp({ create: { width: 15, height: 16, channels: 3, background: '#000' } }).png().toBuffer())).body.id;
    await bad({ kind: 'edit', prompt: 'a man', image: odd }, 'image', /the photo is 15×16; its sides must be multiples of 2/);

    const json = await api.postRaw('/api/jobs', '{"kind": "generate", "prompt": ');
    assert.equal(json.status, 400);
    assert.match(json.body.error.message, /not valid JSON/);
    const text = await api.postRaw('/api/jobs', 'kind=generate', 'text/plain');
    assert.equal(text.status, 400);
    assert.match(text.body.error.message, /the request body must be of type object/);
    const form = await api.postRaw('/api/jobs', 'kind=generate', 'application/x-www-form-urlencoded');
    assert.equal(form.status, 415);
    for (const path of ['/api/jobs/0000000000nothere', '/api/jobs/0000000000nothere/events', '/api/nothing']) {
      const r = await api.get(path);
      assert.equal(r.status, 404, path);
      assert.ok(r.body.error.message, path);
    }
    assert.equal((await api.delete('/api/jobs/0000000000nothere')).status, 404);
    assert.equal((await api.get('/api/jobs?limit=0')).status, 400);
    assert.equal((await api.get('/api/jobs?limit=abc')).body.error.field, 'limit');
  });

  test('cancelling: a queued job at once, a running one between steps, a finished one is a 409', async () => {
    const running = await api.post('/api/jobs', long);
    const followed = follow(running.body.id);
    await followed.running;
    const queued = await api.post('/api/jobs', { ...long, seed: 2 });
    assert.deepEqual([queued.status, queued.body.status, queued.body.position], [202, 'queued', 0]);
    const cancelQueued = await api.delete(`/api/jobs/${queued.body.id}`);
    assert.deepEqual([cancelQueued.status, cancelQueued.body.status], [200, 'cancelled']);
    const cancelRunning = await api.delete(`/api/jobs/${running.body.id}`);
    assert.deepEqual([cancelRunning.status, cancelRunning.body.status], [202, 'running']);
    const events = await followed.all;
    assert.equal(events.at(-1)!.event, 'cancelled');
    const job = (await api.get(`/api/jobs/${running.body.id}`)).body;
    assert.equal(job.status, 'cancelled');
    assert.ok(job.progress.step < 500);
    assert.equal((await api.delete(`/api/jobs/${running.body.id}`)).status, 409);
    assert.deepEqual((await api.get('/api/health')).body.queue, { running: 0, waiting: 0, max: 2 });
  });

  test('a full queue refuses with 429; queued jobs learn their positions', async () => {
    const first = await api.post('/api/jobs', long);
    const followed = follow(first.body.id);
    await followed.running;
    const second = await api.post('/api/jobs', { ...long, seed: 2 });
    const third = await api.post('/api/jobs', { ...long, seed: 3 });
    assert.deepEqual([second.body.position, third.body.position], [0, 1]);
    const refused = await api.post('/api/jobs', { ...long, seed: 4 });
    assert.equal(refused.status, 429);
    assert.equal(refused.headers.get('retry-after'), '5');
    assert.match(refused.body.error.message, /the queue is full \(2 jobs waiting, at most 2\)/);
    const thirdEvents = listen(third.body.id);
    await thirdEvents.connected;
    await api.delete(`/api/jobs/${second.body.id}`);
    await api.delete(`/api/jobs/${third.body.id}`);
    const seen = await thirdEvents.all;
    assert.deepEqual(seen.map((e) => e.event), ['state', 'status', 'cancelled']);
    assert.deepEqual(seen[1]!.data, { status: 'queued', position: 0 }, 'moved up when the job ahead left');
    await api.delete(`/api/jobs/${first.body.id}`);
    await followed.all;
  });

  test('a worker that dies fails its job clearly; a new one runs the queued jobs', async () => {
    const doomed = await api.post('/api/jobs', long);
    const followed = follow(doomed.body.id);
    await followed.running;
    const waiting = await api.post('/api/jobs', { kind: 'generate', prompt: 'a man', ...small });
    const pid = (await api.get('/api/health')).body.worker.pid;
    process.kill(pid, 'SIGKILL');
    const events = await followed.all;
    assert.equal(events.at(-1)!.event, 'failed');
    assert.match(events.at(-1)!.data.error.message, /the generation worker stopped unexpectedly \(killed by SIGKILL\).*a new worker has been started/);
    const next = await api.finished(waiting.body.id);
    assert.equal(next.status, 'succeeded', JSON.stringify(next.error));
    const health = (await api.get('/api/health')).body;
    assert.equal(health.worker.restarts, 1);
    assert.notEqual(health.worker.pid, pid);
  });

  test('/files serves only files inside the output folder', async () => {
    const outside = join(work, 'secret.json');
    writeFileSync(outside, '{"secret": true}');
    symlinkSync(outside, join(work, 'out', 'link.json'));
    const upload = `/files/uploads/${ref[0]}.png`;
    assert.equal((await rawGet(server.url, upload)).status, 200);
    for (const path of [
      '/files/../secret.json',
      '/files/uploads/../../secret.json',
      '/files/%2e%2e/secret.json',
      '/files/%2E%2E%2Fsecret.json',
      '/files/uploads%2f..%2f..%2fsecret.json',
      '/files//etc/passwd',
      '/files/%2Fetc%2Fpasswd',
      '/files/..%5csecret.json',
      '/files/link.json',
      '/files/uploads/nothing.png',
      '/files/uploads/%00.png',
      '/files/',
    ]) {
      const r = await rawGet(server.url, path);
      assert.ok(r.status === 404 || r.status === 400, `${path}: ${r.status}`);
      assert.ok(!r.body.includes('"secret": true') && !r.body.includes('root:'), path);
    }
  });

  test('without a token: loopback hosts only, and no requests from other web pages', async () => {
    const evilHost = await rawGet(server.url, '/api/health', { host: 'evil.example:80' });
    assert.equal(evilHost.status, 403);
    assert.match(evilHost.body, /not a loopback name/);
    const crossSite = await fetch(`${server.url}/api/jobs`, { method: 'POST', headers: { 'content-type': 'application/json', origin: 'http://evil.example' }, body: JSON.stringify({ kind: 'generate', prompt: 'a man', ...small }) });
    assert.equal(crossSite.status, 403);
    const sameSite = await fetch(`${server.url}/api/health`, { headers: { origin: server.url } });
    assert.equal(sameSite.status, 200);
    await assert.rejects(startServer(options({ host: '0.0.0.0' })), /binding 0\.0\.0\.0 would let other machines use this server: give --token/);
  });

  test('with a token: every /api and /files request needs it; the studio does not', async () => {
    const guarded = await startServer(options({ token: TOKEN, out: join(work, 'out-token'), webDir: join(work, 'no-web') }));
    try {
      const anonymous = client(guarded.url);
      const missing = await anonymous.get('/api/health');
      assert.equal(missing.status, 401);
      assert.equal(missing.headers.get('www-authenticate'), 'Bearer');
      assert.match(missing.body.error.message, /needs a token/);
      assert.equal((await client(guarded.url, 'wrong-token-123').get('/api/health')).status, 401);
      assert.equal((await anonymous.post('/api/jobs', { kind: 'generate', prompt: 'a man' })).status, 401);
      assert.equal((await anonymous.get('/files/uploads/x.png')).status, 401);
      assert.equal((await anonymous.get(`/api/health?token=${TOKEN}`)).status, 200);
      const authed = client(guarded.url, TOKEN);
      assert.equal((await authed.get('/api/health')).status, 200);
      const up = await authed.upload(readFileSync(tiny.references[0]!));
      assert.equal(up.status, 201);
      assert.equal((await anonymous.get(`${up.body.url}?token=${TOKEN}`)).status, 200);
      const job = await authed.post('/api/jobs', { kind: 'generate', prompt: 'a man', ...small, subjects: [{ word: 'man', upload: up.body.id }] });
      const events = await readEvents(`${guarded.url}/api/jobs/${job.body.id}/events?token=${TOKEN}`);
      assert.equal(events.at(-1)!.event, 'done');
      const notice = await anonymous.get('/');
      assert.equal(notice.status, 200);
      assert.match(notice.body, /web studio is not installed here/);
    } finally {
      await guarded.close();
    }
  });

  test('shutting down cancels the running and queued jobs; the gallery is there after a restart', async () => {
    const running = await api.post('/api/jobs', long);
    const followed = follow(running.body.id);
    await followed.running;
    const queued = await api.post('/api/jobs', { ...long, seed: 9 });
    const pid = (await api.get('/api/health')).body.worker.pid;
    const before = (await api.get('/api/jobs?limit=200')).body.total;
    await server.close();
    assert.equal((await followed.all).at(-1)!.event, 'cancelled');
    assert.throws(() => process.kill(pid, 0), /ESRCH/, 'the worker has exited');

    server = await startServer(options());
    api = client(server.url);
    const gallery = (await api.get('/api/jobs?limit=200')).body;
    assert.equal(gallery.total, before);
    const byId = new Map(gallery.jobs.map((j: { id: string }) => [j.id, j]));
    assert.equal((byId.get(running.body.id) as { status: string }).status, 'cancelled');
    assert.equal((byId.get(queued.body.id) as { status: string }).status, 'cancelled');
    const done = gallery.jobs.find((j: { status: string; results: unknown[] }) => j.status === 'succeeded' && j.results.length);
    assert.equal((await api.bytes(done.results[0].url)).subarray(1, 4).toString(), 'PNG', 'old results are still served');
    assert.equal((await api.get(`/api/uploads/${ref[0]}`)).status, 200, 'uploads are kept too');
  });
});
