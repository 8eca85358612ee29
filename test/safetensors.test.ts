import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { loadSafetensors, openSafetensors, SafetensorsError, saveSafetensors } from '../src/io/safetensors.js';
import { arange, liveTensors, type Tensor, tensor, tidy, zeros } from '../src/tensor/index.js';
import { native } from '../src/tensor/native.js';
import { settledLiveTensors } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'moa-safetensors-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let fileCount = 0;
const newPath = (name = 'f') => join(dir, `${name}-${fileCount++}.safetensors`);

/** The raw bytes of a tensor's elements, for bit-exact comparison (NaN payloads, -0). */
const bytesOf = (t: Tensor) => Buffer.from(t.data().buffer);

/** A safetensors file built by hand from the spec: length prefix, header text, data bytes. */
function rawFile(header: string | Uint8Array | object, data: Uint8Array | number[] = []): Buffer {
  const text = header instanceof Uint8Array ? header : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header), 'utf8');
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(text.length));
  return Buffer.concat([prefix, text, Buffer.from(data)]);
}

function writeRaw(bytes: Uint8Array): string {
  const path = newPath('raw');
  writeFileSync(path, bytes);
  return path;
}

const f16 = (bits: number[], dtype: 'float16' | 'bfloat16') => tensor(Uint16Array.from(bits), { dtype });

function everyDtype(): Record<string, Tensor> {
  const f32bits = Uint32Array.from([0x7fc00001, 0x80000000, 0x7f800000, 0xff800000, 0x00000001, 0x3f800000]);
  const f64bits = BigUint64Array.from([0x7ff8000000000001n, 0x8000000000000000n, 0x7ff0000000000000n, 1n, 0x3ff0000000000000n, 0xc000000000000000n]);
  const halfBits = [0x0000, 0x8000, 0x3c00, 0x7c00, 0xfc00, 0x7e01, 0x0001, 0x7bff];
  return {
    f32: tensor(new Float32Array(f32bits.buffer), { shape: [2, 3] }),
    f64: tensor(new Float64Array(f64bits.buffer), { dtype: 'float64', shape: [3, 2] }),
    f16: f16(halfBits, 'float16').reshape(2, 2, 2),
    bf16: f16(halfBits, 'bfloat16'),
    i64: tensor(BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, 0n, -1n, 123456789012345n])),
    i32: tensor(Int32Array.from([-(2 ** 31), 2 ** 31 - 1, 0, 7])),
    i16: tensor(Int16Array.from([-32768, 32767, 0, -5])),
    i8: tensor(Int8Array.from([-128, 127, 0])),
    u8: tensor(Uint8Array.from([0, 255, 17])),
    bool: tensor([true, false, true, true]),
    scalar: tensor(2.5),
    empty: zeros([0, 3], { dtype: 'int32' }),
  };
}

test('every dtype round-trips bit for bit', () => {
  const path = newPath();
  const saved = everyDtype();
  saveSafetensors(path, saved);
  const { tensors, metadata } = loadSafetensors(path);
  assert.deepEqual(Object.keys(tensors).sort(), Object.keys(saved).sort());
  assert.deepEqual(metadata, {});
  for (const [name, t] of Object.entries(saved)) {
    const back = tensors[name]!;
    assert.equal(back.dtype, t.dtype, name);
    assert.deepEqual(back.shape, t.shape, name);
    assert.ok(bytesOf(back).equals(bytesOf(t)), `${name} bytes differ`);
  }
  assert.deepEqual(tensors.bool!.toNumbers(), [1, 0, 1, 1]);
});

test('non-contiguous tensors are written in row-major order', () => {
  const path = newPath();
  const base = arange(12, undefined, 1, { dtype: 'float32' }).reshape(3, 4);
  const view = base.transpose(0, 1);
  assert.equal(view.isContiguous(), false);
  saveSafetensors(path, { view, slice: base.slice(1, 1, 3) });
  const { tensors } = loadSafetensors(path);
  assert.ok(tensors.view!.equal(view.contiguous()));
  assert.deepEqual(tensors.slice!.toNumbers(), [1, 2, 5, 6, 9, 10]);
});

test('metadata and unusual names round-trip', () => {
  const path = newPath();
  const metadata = { format: 'pt', '1': 'one', 'ünï': 'código ✓', empty: '', quote: 'a "b"\n\\' };
  const tensors: Record<string, Tensor> = { '0': tensor([1]), 'emoji 🙂': tensor([2]), '': tensor([3]) };
  Object.defineProperty(tensors, '__proto__', { value: tensor([4]), enumerable: true });
  saveSafetensors(path, tensors, metadata);
  const file = openSafetensors(path);
  assert.deepEqual({ ...file.metadata }, metadata);
  assert.deepEqual(file.keys().sort(), ['', '0', '__proto__', 'emoji 🙂']);
  assert.deepEqual(file.get('__proto__').toNumbers(), [4]);
  const loaded = loadSafetensors(path);
  assert.ok(Object.hasOwn(loaded.tensors, '__proto__'));
  assert.deepEqual(loaded.metadata, metadata);
});

test('the writer produces exactly the bytes the spec describes', () => {
  const path = newPath();
  saveSafetensors(
    path,
    { w: tensor([1.5, -2]), bias: f16([0x3c00], 'float16'), ids: tensor(BigInt64Array.from([7n])), b: tensor(Uint8Array.from([1, 2, 3])) },
    { format: 'pt' },
  );
  // Widest dtype first, then by name; metadata first; header padded with spaces to 8 bytes.
  const header =
    '{"__metadata__":{"format":"pt"},' +
    '"ids":{"dtype":"I64","shape":[1],"data_offsets":[0,8]},' +
    '"w":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},' +
    '"bias":{"dtype":"F16","shape":[1],"data_offsets":[16,18]},' +
    '"b":{"dtype":"U8","shape":[3],"data_offsets":[18,21]}}';
  const padded = header + ' '.repeat((8 - (header.length % 8)) % 8);
  const data = [7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xc0, 0x3f, 0, 0, 0, 0xc0, 0x00, 0x3c, 1, 2, 3];
  const expected = rawFile(padded, data);
  assert.equal(padded.length % 8, 0);
  assert.deepEqual([...readFileSync(path)], [...expected]);

  const emptyPath = newPath();
  saveSafetensors(emptyPath, {});
  assert.deepEqual([...readFileSync(emptyPath)], [8, 0, 0, 0, 0, 0, 0, 0, 0x7b, 0x7d, 32, 32, 32, 32, 32, 32]);
  assert.deepEqual(openSafetensors(emptyPath).keys(), []);
});

test('the reader reads a file built by hand', () => {
  // Unsorted header with tensors out of data order: offsets, not key order, place the data.
  const data = [0, 0, 0x80, 0x3f, 9, 0, 0, 0, 0, 0, 0, 0];
  const path = writeRaw(
    rawFile({ b: { dtype: 'F32', shape: [], data_offsets: [0, 4] }, a: { dtype: 'I64', shape: [1, 1], data_offsets: [4, 12] }, __metadata__: { k: 'v' } }, data),
  );
  const file = openSafetensors(path);
  assert.deepEqual(file.keys(), ['b', 'a']);
  assert.deepEqual(file.metadata, { k: 'v' });
  assert.equal(file.get('b').item(), 1);
  const a = file.get('a');
  assert.deepEqual([a.dtype, a.shape, a.toNumbers()], ['int64', [1, 1], [9]]);
});

test('opening reads only the header; get reads one tensor', () => {
  const path = newPath();
  const n = 64 * 1024;
  saveSafetensors(path, { a: zeros([n]), b: arange(n, undefined, 1, { dtype: 'float32' }), c: zeros([n], { dtype: 'float64' }) });
  const before = settledLiveTensors();
  const file = openSafetensors(path);
  assert.deepEqual(liveTensors(), before, 'opening makes no tensors');
  assert.deepEqual(file.keys(), ['c', 'a', 'b']);
  assert.equal(file.has('b'), true);
  assert.equal(file.has('__metadata__'), false);
  const info = file.info('b');
  assert.deepEqual([info.dtype, info.format, info.shape, info.byteLength], ['float32', 'F32', [n], 4 * n]);
  assert.deepEqual(info.dataOffsets, [8 * n + 4 * n, 8 * n + 8 * n]);
  assert.equal(readFileSync(path).readBigUInt64LE(0) + 8n + BigInt(info.dataOffsets[0]), BigInt(info.fileOffset));

  const b = file.get('b');
  const after = liveTensors();
  assert.equal(after.count, before.count + 1);
  assert.equal(after.bytes, before.bytes + 4 * n);
  assert.equal(b.size(0), n);
  assert.equal(b.index(n - 1).item(), n - 1);

  const half = file.get('b', { dtype: 'float16' });
  assert.equal(half.dtype, 'float16');
  assert.throws(() => file.get('nope'), /no tensor named 'nope'/);
});

test('a subset loads by name list or predicate; floatDtype leaves integers alone', () => {
  const path = newPath();
  saveSafetensors(path, { x: tensor([1, 2]), y: tensor([3]), ids: tensor(Int32Array.from([5])) });
  const some = loadSafetensors(path, { only: ['ids', 'x'], floatDtype: 'float64' });
  assert.deepEqual(Object.keys(some.tensors).sort(), ['ids', 'x']);
  assert.equal(some.tensors.x!.dtype, 'float64');
  assert.equal(some.tensors.ids!.dtype, 'int32');
  const picked = openSafetensors(path).load({ only: (_name, info) => info.dtype === 'float32' });
  assert.deepEqual(Object.keys(picked).sort(), ['x', 'y']);
  assert.throws(() => loadSafetensors(path, { only: ['x', 'gone'] }), /no tensor named 'gone'/);
});

test('loaded tensors belong to the caller and to tidy() scopes', () => {
  const path = newPath();
  saveSafetensors(path, { a: tensor([1]), b: tensor([2]) });
  const file = openSafetensors(path);
  let dropped: Tensor | undefined;
  const kept = tidy(() => {
    dropped = file.get('a');
    return loadSafetensors(path).tensors;
  });
  assert.equal(dropped!.isDisposed, true);
  assert.equal(kept.a!.isDisposed, false);
  assert.equal(kept.b!.item(), 2);
});

// ---- malformed files ----

const entry = (dtype: unknown, shape: unknown, offsets: unknown) => ({ dtype, shape, data_offsets: offsets });
const valid = rawFile({ a: entry('F32', [2], [0, 8]) }, new Uint8Array(8));
const prefixOnly = (n: bigint) => {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(n);
  return b;
};

const malformed: [string, Uint8Array, RegExp][] = [
  ['an empty file', new Uint8Array(0), /0 bytes, too short for the 8-byte header length/],
  ['a truncated length prefix', valid.subarray(0, 5), /5 bytes, too short/],
  ['a truncated header', valid.subarray(0, 20), /header length \d+ runs past the end of the file \(20 bytes\)/],
  ['a header length bigger than the file', prefixOnly(1000n), /header length 1000 runs past the end of the file/],
  ['a header length over the limit', prefixOnly(2n ** 40n), /header length 1099511627776 is over the 100000000-byte limit/],
  ['a header length of 2^64 - 1', prefixOnly(2n ** 64n - 1n), /over the 100000000-byte limit/],
  ['truncated data', valid.subarray(0, valid.length - 3), /tensor 'a': data_offsets \[0, 8\] run past the end of the data buffer \(5 bytes/],
  ['a header that is not UTF-8', rawFile(Buffer.from([0x7b, 0x22, 0xff, 0x22, 0x3a, 0x7b, 0x7d, 0x7d])), /header is not valid UTF-8/], // {"\xff":{}}
  ['bad JSON', rawFile('{"a": {"dtype": '), /header is not valid JSON/],
  ['an empty header', rawFile(''), /header is not valid JSON/],
  ['an array header', rawFile('[1, 2]'), /header is an array, not a JSON object/],
  ['a null header', rawFile('null'), /header is null, not a JSON object/],
  ['a number header', rawFile('42'), /header is number 42, not a JSON object/],
  ['an entry that is not an object', rawFile({ a: 5 }), /tensor 'a': entry is number 5, not an object/],
  ['a missing dtype', rawFile({ a: { shape: [], data_offsets: [0, 0] } }), /tensor 'a': dtype is missing/],
  ['an unknown dtype', rawFile({ a: entry('F17', [1], [0, 4]) }, new Uint8Array(4)), /tensor 'a': unknown dtype 'F17'/],
  ['a lower-case dtype', rawFile({ a: entry('f32', [1], [0, 4]) }, new Uint8Array(4)), /tensor 'a': unknown dtype 'f32'/],
  ['a negative shape', rawFile({ a: entry('F32', [-1], [0, 4]) }, new Uint8Array(4)), /tensor 'a': shape \[-1\] must hold non-negative integers/],
  ['a fractional shape', rawFile({ a: entry('F32', [1.5], [0, 6]) }, new Uint8Array(6)), /tensor 'a': shape \[1.5\] must hold non-negative integers/],
  ['a string shape', rawFile({ a: entry('F32', ['2'], [0, 8]) }, new Uint8Array(8)), /tensor 'a': shape \["2"\] must hold non-negative integers/],
  ['a shape that is not an array', rawFile({ a: entry('F32', 2, [0, 8]) }, new Uint8Array(8)), /tensor 'a': shape is number 2, not an array/],
  ['one data offset', rawFile({ a: entry('F32', [1], [4]) }, new Uint8Array(4)), /tensor 'a': data_offsets \(\[4\]\) must be \[begin, end\]/],
  ['missing data offsets', rawFile({ a: { dtype: 'F32', shape: [1] } }, new Uint8Array(4)), /tensor 'a': data_offsets \(missing\) must be/],
  ['huge data offsets', rawFile('{"a":{"dtype":"U8","shape":[1],"data_offsets":[1e20,100000000000000000001]}}'), /data_offsets .* must be \[begin, end\]/],
  ['offsets that end before they begin', rawFile({ a: entry('F32', [0], [8, 0]) }, new Uint8Array(8)), /data_offsets \[8, 0\] end before they begin/],
  ['a byte length that does not match the shape', rawFile({ a: entry('F32', [2], [0, 4]) }, new Uint8Array(4)), /tensor 'a': data_offsets \[0, 4\] hold 4 bytes but shape \[2\] of F32 needs 8/],
  ['a shape whose size overflows', rawFile({ a: entry('F32', [2 ** 52, 2 ** 52], [0, 4]) }, new Uint8Array(4)), /hold 4 bytes but shape \[4503599627370496, 4503599627370496\] of F32 needs/],
  ['offsets past the data buffer', rawFile({ a: entry('F32', [1], [4, 8]) }, new Uint8Array(6)), /tensor 'a': data_offsets \[4, 8\] run past the end of the data buffer \(6 bytes/],
  ['overlapping tensors', rawFile({ a: entry('F32', [2], [0, 8]), b: entry('F32', [2], [4, 12]) }, new Uint8Array(12)), /tensors 'a' \[0, 8\] and 'b' \[4, 12\] overlap/],
  ['a tensor twice over the same bytes', rawFile({ a: entry('U8', [4], [0, 4]), b: entry('I8', [4], [0, 4]) }, new Uint8Array(4)), /'a' \[0, 4\] and 'b' \[0, 4\] overlap/],
  ['a hole between tensors', rawFile({ a: entry('F32', [1], [0, 4]), b: entry('F32', [1], [8, 12]) }, new Uint8Array(12)), /bytes 4 to 8 of the data buffer \(before tensor 'b'\) belong to no tensor/],
  ['bytes after the last tensor', rawFile({ a: entry('F32', [1], [0, 4]) }, new Uint8Array(8)), /the last 4 bytes of the data buffer belong to no tensor/],
  ['a metadata value that is not a string', rawFile({ __metadata__: { epoch: 3 } }), /__metadata__ value for 'epoch' is number 3, not a string/],
  ['metadata that is not an object', rawFile({ __metadata__: ['x'] }), /__metadata__ is an array, not an object of strings/],
  ['a tensor named twice', rawFile('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}', [1]), /header names 'a' twice/],
  ['a field given twice', rawFile('{"a":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}}', [1]), /header repeats the key 'dtype' inside 'a'/],
];
for (const [what, bytes, pattern] of malformed) {
  test(`a file with ${what} is refused with a clear error`, () => {
    const path = writeRaw(bytes);
    assert.throws(
      () => openSafetensors(path),
      (error: unknown) => {
        assert.ok(error instanceof SafetensorsError, `${String(error)} is a SafetensorsError`);
        assert.match(error.message, pattern);
        assert.ok(error.message.startsWith(`${path}: `), 'the message names the file');
        return true;
      },
    );
  });
}

test('missing files, directories and bad BOOL bytes are refused', () => {
  assert.throws(() => openSafetensors(join(dir, 'nothing-here')), /nothing-here: cannot open: ENOENT/);
  const sub = join(dir, 'a-directory');
  mkdirSync(sub);
  assert.throws(() => openSafetensors(sub), /a-directory: not a regular file/);
  const fifo = join(dir, 'a-fifo');
  if (spawnSync('mkfifo', [fifo]).status === 0) assert.throws(() => openSafetensors(fifo), /a-fifo: not a regular file/);
  const path = writeRaw(rawFile({ ok: entry('BOOL', [2], [0, 2]), bad: entry('BOOL', [2], [2, 4]) }, [0, 1, 1, 2]));
  const file = openSafetensors(path);
  assert.deepEqual(file.get('ok').toNumbers(), [0, 1]);
  assert.throws(() => file.get('bad'), /cannot read tensor 'bad': a BOOL tensor holds bytes other than 0 and 1/);
  assert.equal(tensor([1, 2]).add(1).sum().item(), 5, 'the process lives on');
});

test('dtypes moa cannot hold are listed but refused by name when read', () => {
  const data = new Uint8Array(4 + 2 + 8 + 16);
  const path = writeRaw(
    rawFile(
      { x: entry('F32', [1], [0, 4]), q: entry('F8_E4M3', [2], [4, 6]), u: entry('U64', [1], [6, 14]), c: entry('C64', [2], [14, 30]) },
      data,
    ),
  );
  const file = openSafetensors(path);
  assert.deepEqual(file.keys(), ['x', 'q', 'u', 'c']);
  assert.deepEqual([file.info('q').dtype, file.info('q').format], [null, 'F8_E4M3']);
  assert.throws(() => file.get('q'), /tensor 'q' has dtype F8_E4M3, which safetensors allows but moa cannot hold/);
  assert.throws(() => file.get('u'), /tensor 'u' has dtype U64/);
  const before = settledLiveTensors().count;
  assert.throws(() => loadSafetensors(path), /tensor 'q' has dtype F8_E4M3/);
  assert.equal(liveTensors().count, before, 'a refused load leaves no tensors behind');
  assert.deepEqual(Object.keys(loadSafetensors(path, { only: ['x'] }).tensors), ['x']);
});

test('a file replaced after opening is not read with the old header', () => {
  const path = newPath();
  saveSafetensors(path, { a: tensor([1, 2]) });
  const file = openSafetensors(path);
  saveSafetensors(path, { a: tensor([1, 2, 3, 4]) });
  assert.throws(() => file.get('a'), /changed since it was opened/);
  truncateSync(path, 3);
  assert.throws(() => openSafetensors(path), /too short/);
});

// ---- atomic saves ----

const leftovers = () => readdirSync(dir).filter((name) => name.endsWith('.tmp'));

test('a save that fails while writing leaves the old file intact and no temporary file', () => {
  const path = newPath();
  saveSafetensors(path, { old: tensor([1, 2, 3]) });
  const original = readFileSync(path);
  const gone = tensor([4, 5]);
  void [gone.shape, gone.dtype]; // cached, so the failure comes from writing its bytes
  gone.dispose();
  assert.throws(() => saveSafetensors(path, { fine: tensor([9]), gone }), /cannot save tensor 'gone': .*disposed/);
  assert.ok(readFileSync(path).equals(original));
  assert.deepEqual(leftovers(), []);

  const fresh = tensor([1]);
  fresh.dispose();
  assert.throws(() => saveSafetensors(path, { fresh }), /cannot save: tensor 'fresh': .*disposed/);
  assert.throws(() => saveSafetensors(path, { x: tensor([1]) }, { n: 3 as unknown as string }), /metadata value for 'n' is number, not a string/);
  assert.throws(() => saveSafetensors(path, { __metadata__: tensor([1]) }), /__metadata__ is reserved/);
  assert.throws(() => saveSafetensors(path, { x: 5 as unknown as Tensor }), /tensor 'x' is not a Tensor/);
  assert.ok(readFileSync(path).equals(original));
  assert.deepEqual(leftovers(), []);

  const nowhere = join(dir, 'no-such-dir', 'x.safetensors');
  assert.throws(() => saveSafetensors(nowhere, { x: tensor([1]) }), /no-such-dir\/x.safetensors: cannot save: ENOENT/);
  assert.equal(existsSync(nowhere), false);
});

test('tensors on a GPU are saved and loaded', { skip: !native.cudaAvailable() && 'no CUDA device' }, () => {
  const path = newPath();
  const t = tensor([1, 2, 3]).to('cuda');
  saveSafetensors(path, { t });
  const back = openSafetensors(path).get('t', { device: 'cuda' });
  assert.equal(back.device, 'cuda:0');
  assert.deepEqual(back.cpu().toNumbers(), [1, 2, 3]);
});
