import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { Generator } from '../src/tensor/index.js';
import { augmentSubjects } from '../src/train/data/augment.js';
import { disposeSample, loadSample, readImageIds, SampleError } from '../src/train/data/ffhq-wild.js';
import { type Batch, disposeBatch, FfhqWildLoader } from '../src/train/data/loader.js';
import { NpyError, parseNpy } from '../src/train/data/npy.js';
import { mulberry32 } from '../src/train/data/rng.js';
import { npyBytes } from './ffhq-fixture.js';
import { clipTokenizer } from './tiny-sd.js';

describe('npy', () => {
  test('reads several dtypes and versions', () => {
    const i4 = parseNpy(npyBytes('<i4', [2, 3], new Uint8Array(Int32Array.from([1, -2, 3, 4, 5, -6]).buffer)));
    assert.equal(i4.dtype, 'int32');
    assert.deepEqual(i4.shape, [2, 3]);
    assert.deepEqual([...i4.data], [1, -2, 3, 4, 5, -6]);
    const u1 = parseNpy(npyBytes('|u1', [4], Uint8Array.from([0, 7, 255, 3]), { version: 2 }));
    assert.deepEqual([u1.dtype, [...u1.data]], ['uint8', [0, 7, 255, 3]]);
    const i8 = parseNpy(npyBytes('<i8', [1, 2], new Uint8Array(BigInt64Array.from([5n, -1n]).buffer), { version: 3 }));
    assert.deepEqual([i8.dtype, [...i8.data]], ['int64', [5n, -1n]]);
    const f4 = parseNpy(npyBytes('<f4', [2], new Uint8Array(Float32Array.from([0.5, -2]).buffer)));
    assert.deepEqual([...f4.data], [0.5, -2]);
    const u2 = parseNpy(npyBytes('<u2', [], new Uint8Array(Uint16Array.from([65535]).buffer)));
    assert.deepEqual([u2.shape, [...u2.data]], [[], [65535]]);
    const b1 = parseNpy(npyBytes('|b1', [3], Uint8Array.from([1, 0, 1])));
    assert.deepEqual([b1.dtype, [...b1.data]], ['bool', [1, 0, 1]]);
    // A Buffer inside a larger pool (as readFile may give): the data must come from its own bytes.
    const inPool = Buffer.concat([Buffer.from('junk'), npyBytes('<i4', [2], new Uint8Array(Int32Array.from([7, 8]).buffer))]).subarray(4);
    assert.deepEqual([...parseNpy(inPool).data], [7, 8]);
  });

  test('transposes Fortran order to row-major', () => {
    // Logical [[1, 2, 3], [4, 5, 6]] stored column by column.
    const f = parseNpy(npyBytes('<i2', [2, 3], new Uint8Array(Int16Array.from([1, 4, 2, 5, 3, 6]).buffer), { fortran: 'True' }));
    assert.deepEqual([...f.data], [1, 2, 3, 4, 5, 6]);
  });

  test('malformed files fail clearly', () => {
    const good = npyBytes('<i4', [2], new Uint8Array(8));
    assert.throws(() => parseNpy(Uint8Array.from([1, 2, 3])), /too short/);
    assert.throws(() => parseNpy(Uint8Array.from([0x50, ...good.subarray(1)])), /magic/);
    const v9 = good.slice();
    v9[6] = 9;
    assert.throws(() => parseNpy(v9), /version 9/);
    assert.throws(() => parseNpy(good.subarray(0, good.length - 1)), /needs 8 data bytes/);
    assert.throws(() => parseNpy(Uint8Array.from([...good, 0])), /unexpected bytes/);
    assert.throws(() => parseNpy(npyBytes('>i4', [2], new Uint8Array(8))), /big-endian/);
    assert.throws(() => parseNpy(npyBytes('<c16', [1], new Uint8Array(16))), /dtype '<c16' is not supported/);
    assert.throws(() => parseNpy(npyBytes('<i4', [-1], new Uint8Array(0))), NpyError);
    const longHeader = good.slice();
    new DataView(longHeader.buffer).setUint16(8, 60000, true);
    assert.throws(() => parseNpy(longHeader), /header claims/);
    assert.throws(() => parseNpy(npyBytes('|b1', [1], Uint8Array.from([2]))), /bool/);
  });
});

describe('augmentation', () => {
  test('is deterministic and has the spec’s probabilities', () => {
    const subjects = [0, 1, 2, 3, 4, 5];
    const a = augmentSubjects('a b', subjects, mulberry32(7));
    const b = augmentSubjects('a b', subjects, mulberry32(7));
    assert.deepEqual(a, b);
    const random = mulberry32(1);
    let unconditional = 0;
    let kept = 0;
    let conditional = 0;
    const draws = 20000;
    for (let i = 0; i < draws; i++) {
      const one = augmentSubjects('caption', [0], random);
      if (one.unconditional) {
        unconditional++;
        assert.deepEqual([one.caption, one.subjects], ['', []]);
      } else {
        conditional++;
        kept += one.subjects.length;
      }
      const many = augmentSubjects('caption', subjects, random);
      assert.ok(many.subjects.length <= 4);
      assert.deepEqual(many.subjects, [...many.subjects].sort((x, y) => x - y), 'kept in order');
    }
    assert.ok(Math.abs(unconditional / draws - 0.1) < 0.01, `drop rate ${unconditional / draws}`);
    assert.ok(Math.abs(kept / conditional - 0.9) < 0.01, `keep rate ${kept / conditional}`);
    // With 6 subjects kept at 0.9, most draws exceed 4: the subset must vary.
    const seen = new Set<string>();
    for (let i = 0; i < 200; i++) seen.add(augmentSubjects('c', subjects, random, { dropCaption: 0, keepSubject: 1 }).subjects.join());
    assert.ok(seen.size > 5);
    assert.throws(() => augmentSubjects('c', subjects, random, { keepSubject: 2 }), /keepSubject/);
  });
});

// A tiny FFHQ-wild folder: 48×64 images, a red subject on the left half of the centre square and a
// green one on the right; segment 1 is columns 8..32, segment 2 columns 32..56.
const H = 48;
const W = 64;
const tmp = mkdtempSync(join(tmpdir(), 'moa-train-data-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const root = join(tmp, 'ffhq');
const GOOD = ['10001', '10002', '10003', '10004'];
const CAPTIONS: Record<string, [string, string, string]> = {
  '10001': ['a man and a woman sitting on a bench', 'man', 'woman'],
  '10002': ['the girl and her grandfather at the beach', 'girl', 'grandfather'],
  '10003': ['a boy standing next to a lady in a park', 'boy', 'lady'],
  '10004': ['a woman hugging a man', 'woman', 'man'],
};

function labelsMap(h = H, w = W): Int32Array {
  const labels = new Int32Array(h * w);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) labels[y * w + x] = x >= 8 && x < 32 ? 1 : x >= 32 && x < 56 ? 2 : 0;
  return labels;
}

async function writeSample(id: string, { caption, words, map = 'npy', mapSize = [H, W] }: { caption: string; words: [string, string]; map?: 'npy' | 'png' | 'none'; mapSize?: number[] }): Promise<void> {
  const dir = join(root, id.slice(0, 5));
  mkdirSync(dir, { recursive: true });
  const rgb = Buffer.alloc(H * W * 3);
  const labels = labelsMap();
  for (let i = 0; i < H * W; i++) {
    const colour = labels[i] === 1 ? [255, 0, 0] : labels[i] === 2 ? [0, 255, 0] : [0, 0, 255];
    rgb.set(colour, i * 3);
  }
  await sharp(rgb, { raw: { width: W, height: H, channels: 3 } }).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toFile(join(dir, `${id}.jpg`));
  const ends = words.map((word) => (` ${caption} `).indexOf(` ${word} `) + word.length); // whole words: "man" is inside "woman"
  const segments = [
    { id: 1, bbox: [0, 0, H, 32], end: ends[0], coco_label: 'person' },
    { id: 2, bbox: [0, 32, H, 56], end: ends[1], coco_label: 'person' },
  ];
  writeFileSync(join(dir, `${id}.json`), JSON.stringify({ caption, segments }));
  const [mh, mw] = mapSize as [number, number];
  if (map === 'npy') writeFileSync(join(dir, `${id}.npy`), npyBytes('<i8', [mh, mw], new Uint8Array(BigInt64Array.from(labelsMap(mh, mw), BigInt).buffer)));
  if (map === 'png') await sharp(Buffer.from(Uint8Array.from(labelsMap(mh, mw))), { raw: { width: mw, height: mh, channels: 1 } }).png().toFile(join(dir, `${id}.png`));
}

before(async () => {
  for (const id of GOOD) {
    const [caption, a, b] = CAPTIONS[id]!;
    await writeSample(id, { caption, words: [a, b], map: id === '10003' ? 'png' : 'npy' });
  }
  await writeSample('20001', { caption: 'a man', words: ['man', 'man'] });
  rmSync(join(root, '20001', '20001.jpg'));
  await writeSample('20002', { caption: 'a man', words: ['man', 'man'] });
  writeFileSync(join(root, '20002', '20002.json'), '{"caption": "a man", "segments": [');
  await writeSample('20003', { caption: 'a man', words: ['man', 'man'], mapSize: [40, 64] });
  writeFileSync(join(root, 'image_ids_train.txt'), [...GOOD, '20001', '20002', '20003'].join('\n') + '\n');
});

const SMALL = { resolution: 32, cropSize: 48, dropCaption: 0, keepSubject: 1 };

describe('FFHQ-wild samples', () => {
  const tokenizer = clipTokenizer();

  test('index, tokens, masks, crops', async () => {
    assert.deepEqual(await readImageIds(root), [...GOOD, '20001', '20002', '20003']);
    for (const id of GOOD) {
      const sample = await loadSample(root, id, tokenizer, mulberry32(1), new Generator(1), SMALL);
      const [caption, a, b] = CAPTIONS[id]!;
      assert.equal(sample.caption, caption);
      assert.equal(sample.inputIds.length, 77);
      assert.deepEqual(sample.image.shape, [3, 32, 32]);
      assert.equal(sample.subjects.length, 2);
      assert.deepEqual(sample.subjects.map((s) => tokenizer.decode([sample.inputIds[s.tokenIndex]!]).trim()), [a, b]);
      // Centre square = columns 8..56: subject 1 fills its left half, subject 2 its right half.
      const [m1, m2] = sample.subjects.map((s) => s.mask);
      assert.equal(m1!.sum().item(), 8, `sample ${id}`);
      assert.deepEqual(m1!.shape, [1, 4, 4]);
      const row = [1, 1, 0, 0];
      assert.deepEqual(m1!.toNumbers(), [...row, ...row, ...row, ...row]);
      assert.deepEqual(m2!.toNumbers(), Array(4).fill([0, 0, 1, 1]).flat());
      // Image colours: red left, green right, in [-1, 1].
      const px = (c: number, y: number, x: number) => sample.image.select(0, c).select(0, y).select(0, x).item();
      assert.ok(px(0, 16, 4) > 0.8 && px(1, 16, 4) < -0.8, 'red subject on the left');
      assert.ok(px(1, 16, 28) > 0.8 && px(0, 16, 28) < -0.8, 'green subject on the right');
      // Crop of subject 1: bbox columns 0..32 padded to 48 (8 each side); the mask covers bbox 8..32 → crop 16..40.
      const crop = sample.subjects[0]!.crop;
      assert.deepEqual(crop.shape, [3, 48, 48]);
      const inside = crop.narrow(2, 20, 16).narrow(1, 4, 40);
      const red = inside.select(0, 0).mean().item();
      const green = inside.select(0, 1).mean().item();
      assert.ok(red > 0.9 && green < 0.1, `subject pixels kept (${red}, ${green})`);
      const outside = crop.narrow(2, 0, 14);
      assert.ok(outside.min().item() >= 0 && outside.max().item() <= 1);
      const std = outside.std().item();
      assert.ok(Math.abs(std - Math.sqrt(1 / 12)) < 0.03, `uniform noise outside the mask (std ${std})`);
      disposeSample(sample);
    }
  });

  test('default sizes, seeded noise', async () => {
    const load = (seed: number) => loadSample(root, '10001', tokenizer, mulberry32(3), new Generator(seed), { dropCaption: 0, keepSubject: 1 });
    const [a, b, c] = [await load(5), await load(5), await load(6)];
    assert.deepEqual(a.image.shape, [3, 512, 512]);
    assert.deepEqual(a.subjects[0]!.mask.shape, [1, 64, 64]);
    assert.deepEqual(a.subjects[0]!.crop.shape, [3, 224, 224]);
    assert.ok(a.subjects[0]!.crop.equal(b.subjects[0]!.crop));
    assert.ok(!a.subjects[0]!.crop.equal(c.subjects[0]!.crop));
    [a, b, c].forEach(disposeSample);
  });

  test('broken samples throw a SampleError naming the id', async () => {
    const reasons: Record<string, RegExp> = { '20001': /no such file/, '20002': /bad JSON/, '20003': /size mismatch/ };
    for (const [id, reason] of Object.entries(reasons)) {
      await assert.rejects(loadSample(root, id, tokenizer, mulberry32(1), new Generator(1), SMALL), (e: unknown) => e instanceof SampleError && e.id === id && reason.test(e.reason));
    }
  });
});

describe('loader', () => {
  const tokenizer = clipTokenizer();
  const options = { resolution: 32, cropSize: 24, batchSize: 2 };
  const summary = (batch: Batch) => ({ ids: batch.ids, captions: batch.captions, image: batch.images.sum().item(), tokens: batch.subjects.map((s) => s.map((x) => x.tokenIndex)), crops: batch.subjects.map((s) => s.map((x) => x.crop.sum().item())) });
  const take = async (loader: FfhqWildLoader, n: number) => {
    const out = [];
    for (let i = 0; i < n; i++) {
      const batch = await loader.nextBatch();
      assert.deepEqual(batch.images.shape, [2, 3, 32, 32]);
      assert.deepEqual([batch.inputIds.shape, batch.inputIds.dtype], [[2, 77], 'int64']);
      out.push(summary(batch));
      disposeBatch(batch);
    }
    return out;
  };

  test('deterministic by seed; a restored position replays exactly', async () => {
    const make = (seed: number) => new FfhqWildLoader(root, GOOD, tokenizer, { ...options, seed });
    const a = make(3);
    const first = await take(a, 1);
    const saved = a.position;
    const rest = await take(a, 4);
    a.close();
    const b = make(3);
    assert.deepEqual([...first, ...rest], await take(b, 5));
    b.close();
    const c = make(3);
    c.setPosition(saved);
    assert.deepEqual(await take(c, 4), rest);
    c.close();
    const d = make(4);
    const orders = (l: FfhqWildLoader) => [0, 1, 2, 3].map((e) => l.order(e).join());
    assert.notDeepEqual(orders(a), orders(d));
    // Each epoch visits every id once.
    assert.deepEqual([...a.order(1)].sort(), [0, 1, 2, 3]);
  });

  test('broken samples are reported and skipped; past maxBroken it throws', async () => {
    const ids = await readImageIds(root);
    const reported: string[] = [];
    const loader = new FfhqWildLoader(root, ids, tokenizer, { ...options, shuffle: false, onBroken: (id, reason) => reported.push(`${id}: ${reason}`) });
    const batches = await take(loader, 3); // 4 good + 3 broken, then the next epoch
    loader.close();
    assert.deepEqual(batches.map((b) => b.ids), [['10001', '10002'], ['10003', '10004'], ['10001', '10002']]);
    assert.equal(reported.length, 3);
    assert.match(reported[0]!, /^20001: .*no such file/);
    assert.match(reported[1]!, /^20002: bad JSON/);
    assert.match(reported[2]!, /^20003: mask\/image size mismatch/);
    const strict = new FfhqWildLoader(root, ids, tokenizer, { ...options, shuffle: false, maxBroken: 1, onBroken: () => {} });
    await assert.rejects(take(strict, 3), /more than 1 broken samples/);
    strict.close();
  });
});
