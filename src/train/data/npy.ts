// NumPy .npy files (format versions 1, 2 and 3), parsed by hand: FastComposer stores each
// image's segmentation map as one. Only little-endian numeric and bool arrays are accepted;
// Fortran-ordered arrays are transposed to C order so callers always see row-major data.

export type NpyDType = 'int8' | 'uint8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64' | 'float32' | 'float64' | 'bool';

export type NpyData = Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | BigUint64Array | Float32Array | Float64Array;

export interface NpyArray {
  readonly dtype: NpyDType;
  readonly shape: readonly number[];
  /** Row-major (C order) values; bool is a Uint8Array of 0/1. */
  readonly data: NpyData;
}

export class NpyError extends Error {
  constructor(source: string, reason: string) {
    super(`cannot parse .npy ${source}: ${reason}`);
    this.name = 'NpyError';
  }
}

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

interface DTypeInfo {
  dtype: NpyDType;
  bytes: number;
  make: (buffer: ArrayBuffer, count: number) => NpyData;
}

const DESCRS: Record<string, DTypeInfo> = {};
function define(names: string[], dtype: NpyDType, bytes: number, make: DTypeInfo['make']): void {
  for (const n of names) DESCRS[n] = { dtype, bytes, make };
}
// One-byte types have no byte order ('|'), but '<' and '=' are written by some tools too.
define(['|i1', '<i1', 'i1'], 'int8', 1, (b, n) => new Int8Array(b, 0, n));
define(['|u1', '<u1', 'u1'], 'uint8', 1, (b, n) => new Uint8Array(b, 0, n));
define(['|b1', '<b1', 'b1', '?'], 'bool', 1, (b, n) => new Uint8Array(b, 0, n));
define(['<i2'], 'int16', 2, (b, n) => new Int16Array(b, 0, n));
define(['<u2'], 'uint16', 2, (b, n) => new Uint16Array(b, 0, n));
define(['<i4'], 'int32', 4, (b, n) => new Int32Array(b, 0, n));
define(['<u4'], 'uint32', 4, (b, n) => new Uint32Array(b, 0, n));
define(['<i8'], 'int64', 8, (b, n) => new BigInt64Array(b, 0, n));
define(['<u8'], 'uint64', 8, (b, n) => new BigUint64Array(b, 0, n));
define(['<f4'], 'float32', 4, (b, n) => new Float32Array(b, 0, n));
define(['<f8'], 'float64', 8, (b, n) => new Float64Array(b, 0, n));

interface Header {
  descr: string;
  fortranOrder: boolean;
  shape: number[];
}

/** The header dict, e.g. "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 4), }". */
function parseHeader(text: string, source: string): Header {
  const fail = (reason: string): never => {
    throw new NpyError(source, `${reason} in header ${JSON.stringify(text.trim())}`);
  };
  const body = text.trim();
  if (!body.startsWith('{') || !body.endsWith('}')) fail('the header is not a dict');
  const descr = /['"]descr['"]\s*:\s*['"]([^'"]*)['"]/.exec(body)?.[1] ?? fail("no 'descr' string");
  const order = /['"]fortran_order['"]\s*:\s*(True|False)/.exec(body)?.[1] ?? fail("no 'fortran_order' True/False");
  const shapeText = /['"]shape['"]\s*:\s*\(([^)]*)\)/.exec(body)?.[1] ?? fail("no 'shape' tuple");
  const parts = shapeText.split(',').map((s) => s.trim());
  if (parts.at(-1) === '') parts.pop(); // "(3,)" and "(3, 4,)" have a trailing comma
  const shape = parts.map((p) => {
    if (!/^\d+$/.test(p)) fail(`shape entry '${p}' is not a non-negative integer`);
    const n = Number(p);
    if (!Number.isSafeInteger(n)) fail(`shape entry '${p}' is too large`);
    return n;
  });
  return { descr, fortranOrder: order === 'True', shape };
}

/** Column-major values of `shape` → row-major. */
function toRowMajor<T extends NpyData>(data: T, shape: readonly number[]): T {
  const n = shape.length;
  if (n < 2) return data;
  const out = new (data.constructor as new (length: number) => T)(data.length);
  const fStrides = new Array<number>(n);
  let stride = 1;
  for (let d = 0; d < n; d++) {
    fStrides[d] = stride;
    stride *= shape[d]!;
  }
  const index = new Array<number>(n).fill(0);
  for (let i = 0; i < data.length; i++) {
    let f = 0;
    for (let d = 0; d < n; d++) f += index[d]! * fStrides[d]!;
    out[i] = data[f]!;
    for (let d = n - 1; d >= 0; d--) {
      if (++index[d]! < shape[d]!) break;
      index[d] = 0;
    }
  }
  return out;
}

/** Parses the bytes of a .npy file; `source` names it in errors (a path, say). */
export function parseNpy(bytes: Uint8Array, source = '(buffer)'): NpyArray {
  if (bytes.length < 10) throw new NpyError(source, `only ${bytes.length} bytes, too short for a header`);
  if (!MAGIC.every((b, i) => bytes[i] === b)) throw new NpyError(source, 'it does not start with the magic \\x93NUMPY');
  const major = bytes[6]!;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let headerLength: number;
  let headerStart: number;
  if (major === 1) [headerLength, headerStart] = [view.getUint16(8, true), 10];
  else if (major === 2 || major === 3) {
    if (bytes.length < 12) throw new NpyError(source, `only ${bytes.length} bytes, too short for a version ${major} header`);
    [headerLength, headerStart] = [view.getUint32(8, true), 12];
  } else throw new NpyError(source, `format version ${major}.${bytes[7]} is not supported (1, 2 or 3)`);
  const dataStart = headerStart + headerLength;
  if (dataStart > bytes.length) throw new NpyError(source, `the header claims ${headerLength} bytes but the file has ${bytes.length - headerStart} after the preamble`);
  // Version 3 allows UTF-8 in the header; 1 and 2 are latin-1 (ASCII in practice).
  const text = new TextDecoder(major === 3 ? 'utf-8' : 'latin1').decode(bytes.subarray(headerStart, dataStart));
  const header = parseHeader(text, source);
  const info = DESCRS[header.descr];
  if (!info) {
    const hint = header.descr.startsWith('>') ? ' (big-endian data is not supported)' : '';
    throw new NpyError(source, `dtype '${header.descr}' is not supported${hint}; expected one of ${Object.keys(DESCRS).join(', ')}`);
  }
  const count = header.shape.reduce((a, b) => a * b, 1);
  const expected = count * info.bytes;
  const available = bytes.length - dataStart;
  if (available < expected) throw new NpyError(source, `shape (${header.shape.join(', ')}) of ${header.descr} needs ${expected} data bytes, but only ${available} follow the header`);
  if (available > expected) throw new NpyError(source, `${available - expected} unexpected bytes after the data`);
  // Copy so the typed array is aligned and owns its memory (a Buffer's slice() would share its pool).
  const copy = new Uint8Array(bytes.subarray(dataStart, dataStart + expected)).buffer;
  let data = info.make(copy, count);
  if (info.dtype === 'bool' && (data as Uint8Array).some((v) => v > 1)) throw new NpyError(source, 'a bool array holds values other than 0 and 1');
  if (header.fortranOrder) data = toRowMajor(data, header.shape);
  return { dtype: info.dtype, shape: header.shape, data };
}
