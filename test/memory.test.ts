import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Generator, liveTensors, ones, randn, tidy, zeros, type Tensor } from '../src/tensor/index.js';
import { settledLiveTensors } from './helpers.js';

const MB = 1024 * 1024;
const rss = () => process.memoryUsage().rss;

test('10,000 operations on 4 MB tensors keep resident memory flat', () => {
  const a = randn([1024, 1024], { generator: new Generator(1) });
  const b = randn([1024, 1024], { generator: new Generator(2) });
  const step = () => tidy(() => a.add(b).mul(0.5).sub(a).abs().sum().item());
  for (let i = 0; i < 500; i++) step();
  const before = rss();
  const liveBefore = settledLiveTensors().count;
  for (let i = 0; i < 10_000; i++) step();
  const growth = rss() - before;
  assert.equal(settledLiveTensors().count, liveBefore, 'every tensor made inside tidy() is released');
  assert.ok(growth < 64 * MB, `resident memory grew ${(growth / MB).toFixed(1)} MB over 10,000 steps`);
  a.dispose();
  b.dispose();
});

test('tensors dropped without dispose are freed by the GC, which sees their native memory', () => {
  const before = rss();
  // 1,000 × 4 MB = 4 GB if nothing were reclaimed.
  for (let i = 0; i < 1000; i++) ones([1024, 1024]).mul(2);
  const growth = rss() - before;
  assert.ok(growth < 1024 * MB, `resident memory grew ${(growth / MB).toFixed(0)} MB`);
});

test('tidy() frees what it made and keeps what it returns, nested', () => {
  const start = settledLiveTensors().count;
  let inner: Tensor | undefined;
  const result = tidy(() => {
    const x = zeros([8]);
    inner = tidy(() => x.add(1).mul(2));
    const pair = { sum: inner.sum(), list: [inner.mean()] };
    return pair;
  });
  assert.equal(liveTensors().count, start + 2);
  assert.equal(result.sum.item(), 16);
  assert.equal(result.list[0]!.item(), 2);
  assert.equal(inner!.isDisposed, true);
  result.sum.dispose();
  result.list[0]!.dispose();
  assert.equal(liveTensors().count, start);
});

test('tidy() frees everything when its function throws', () => {
  const start = settledLiveTensors().count;
  assert.throws(() => tidy(() => {
    zeros([4]);
    throw new Error('boom');
  }), /boom/);
  assert.equal(liveTensors().count, start);
});

test('tidy() refuses async functions', () => {
  assert.throws(() => tidy((async () => zeros([1])) as never), /synchronous/);
});

test('`using` releases a tensor at the end of its block', () => {
  const start = settledLiveTensors().count;
  let t: Tensor;
  {
    using x = zeros([16]);
    t = x;
    assert.equal(liveTensors().count, start + 1);
  }
  assert.equal(t.isDisposed, true);
  assert.equal(liveTensors().count, start);
});

test('a disposed tensor gives a clear TypeError, and disposing twice is harmless', () => {
  const x = ones([2]);
  x.dispose();
  x.dispose();
  assert.throws(() => x.add(1), (e: Error) => e instanceof TypeError && /disposed/.test(e.message));
});

test('disposing a view keeps the base alive', () => {
  const base = ones([4, 4]);
  const row = base.select(0, 1);
  row.dispose();
  assert.equal(base.sum().item(), 16);
  base.dispose();
});

test('in-place ops make no new handles', () => {
  const x = zeros([4]);
  const y = ones([4]);
  const start = settledLiveTensors().count;
  x.copy_(y).fill_(2).add_(y).mul_(3).mul_(y).lerp_(y, 0.5).zero_();
  assert.equal(liveTensors().count, start);
  x.dispose();
  y.dispose();
});

test('worker threads each load the binding and compute alongside the main thread', async () => {
  const { Worker } = await import('node:worker_threads');
  const index = new URL('../src/tensor/index.js', import.meta.url).href;
  const code = `const T = await import(${JSON.stringify(index)});
    const { parentPort } = await import('node:worker_threads');
    let s = 0;
    for (let i = 0; i < 50; i++) s += T.tidy(() => T.ones([32, 32]).matmul(T.ones([32, 32])).sum().item());
    parentPort.postMessage(s);`;
  const sums = await Promise.all(
    [0, 1, 2].map(
      () =>
        new Promise<number>((resolve, reject) => {
          const worker = new Worker(code, { eval: true, type: 'module' } as never);
          worker.once('message', resolve);
          worker.once('error', reject);
        }),
    ),
  );
  assert.deepEqual(sums, [50 * 32 ** 3, 50 * 32 ** 3, 50 * 32 ** 3]);
});
