// 50 generation requests at once on the tiny model: each is either accepted and completes, or
// refused with a clean 429; none is lost, and status requests are answered all the while.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { startServer } from '../src/server/app.js';
import { client, writeTinyServerModel } from './server-fixture.js';
import { CLIP_VOCAB } from './tiny-sd.js';

process.env.MOA_THREADS ??= '1';
const skip = existsSync(CLIP_VOCAB) ? false : `CLIP's vocabulary is not at ${CLIP_VOCAB}`;
const work = mkdtempSync(join(tmpdir(), 'moa-server-load-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('50 concurrent jobs: each completes or is refused with 429, none lost; status answered meanwhile', { skip, timeout: 120_000 }, async () => {
  const tiny = await writeTinyServerModel(work);
  const server = await startServer({
    model: tiny.model,
    moa: tiny.moa,
    precision: 'fp32',
    device: 'cpu',
    host: '127.0.0.1',
    port: 0,
    out: join(work, 'out'),
    maxQueue: 8,
    maxSteps: 10,
    maxBatch: 1,
    maxSide: 64,
    maxUploadBytes: 1 << 20,
    previewEvery: 1,
  });
  try {
    const api = client(server.url);
    let polling = true;
    const statuses: number[] = [];
    const poller = (async () => {
      while (polling) {
        statuses.push((await api.get('/api/health')).status, (await api.get('/api/jobs?limit=5')).status);
        await new Promise((r) => setTimeout(r, 10));
      }
    })();

    const responses = await Promise.all(Array.from({ length: 50 }, (_, i) => api.post('/api/jobs', { kind: 'generate', prompt: `a photo of a dog number ${i}`, steps: 2, width: 16, height: 16, seed: i })));
    const accepted = responses.filter((r) => r.status === 202);
    const refused = responses.filter((r) => r.status === 429);
    assert.equal(accepted.length + refused.length, 50, `only 202 and 429: ${responses.map((r) => r.status).join(' ')}`);
    assert.ok(accepted.length >= 9, `at least the running job and a full queue were taken: ${accepted.length}`);
    for (const r of refused) {
      assert.match(r.body.error.message, /the queue is full/);
      assert.equal(r.headers.get('retry-after'), '5');
    }

    const finished = await Promise.all(accepted.map((r) => api.finished(r.body.id)));
    polling = false;
    await poller;
    for (const job of finished) assert.equal(job.status, 'succeeded', JSON.stringify(job.error));
    assert.equal(new Set(finished.map((j) => j.results[0].url)).size, accepted.length, 'every job has its own image');

    const gallery = (await api.get('/api/jobs?limit=200')).body;
    assert.equal(gallery.total, accepted.length, 'the gallery holds exactly the accepted jobs');
    assert.deepEqual(new Set(gallery.jobs.map((j: { id: string }) => j.id)), new Set(accepted.map((r) => r.body.id)));
    assert.deepEqual((await api.get('/api/health')).body.queue, { running: 0, waiting: 0, max: 8 });
    assert.ok(statuses.length >= 2 && statuses.every((s) => s === 200), `status requests answered: ${statuses.length}`);
  } finally {
    await server.close();
  }
});
