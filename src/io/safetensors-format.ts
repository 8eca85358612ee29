// The safetensors layout, without I/O: an 8-byte little-endian header length N, N bytes of JSON
// header, then the data buffer that the header's data_offsets point into. This module checks a
// header strictly (as the reference implementation does) and builds one for the writer.
import type { DType } from '../tensor/dtype.js';
import { findDuplicateKey } from './json-keys.js';

/** The reference implementation refuses larger headers; so do we, before reading one. */
export const MAX_HEADER_BYTES = 100_000_000;
export const METADATA_KEY = '__metadata__';

/** A problem with a safetensors file: the message starts with the file's path. */
export class SafetensorsError extends Error {
  readonly path: string;
  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super(`${path}: ${message}`, options);
    this.name = 'SafetensorsError';
    this.path = path;
  }
}

interface FormatType {
  readonly name: string;
  readonly bits: number;
  readonly dtype: DType | null; // null: the format has it, moa cannot hold it
}

// Every dtype the format defines, in the reference's order (narrowest first); the writer lays
// tensors out widest first so each one's data stays aligned to its element size.
const FORMAT_TYPES: readonly FormatType[] = [
  { name: 'BOOL', bits: 8, dtype: 'bool' },
  { name: 'F4', bits: 4, dtype: null },
  { name: 'F6_E2M3', bits: 6, dtype: null },
  { name: 'F6_E3M2', bits: 6, dtype: null },
  { name: 'U8', bits: 8, dtype: 'uint8' },
  { name: 'I8', bits: 8, dtype: 'int8' },
  { name: 'F8_E5M2', bits: 8, dtype: null },
  { name: 'F8_E4M3', bits: 8, dtype: null },
  { name: 'F8_E8M0', bits: 8, dtype: null },
  { name: 'I16', bits: 16, dtype: 'int16' },
  { name: 'U16', bits: 16, dtype: null },
  { name: 'F16', bits: 16, dtype: 'float16' },
  { name: 'BF16', bits: 16, dtype: 'bfloat16' },
  { name: 'I32', bits: 32, dtype: 'int32' },
  { name: 'U32', bits: 32, dtype: null },
  { name: 'F32', bits: 32, dtype: 'float32' },
  { name: 'C64', bits: 64, dtype: null },
  { name: 'F64', bits: 64, dtype: 'float64' },
  { name: 'I64', bits: 64, dtype: 'int64' },
  { name: 'U64', bits: 64, dtype: null },
];
const BY_NAME = new Map(FORMAT_TYPES.map((t, rank) => [t.name, { ...t, rank }]));
const BY_DTYPE = new Map(FORMAT_TYPES.filter((t) => t.dtype).map((t) => [t.dtype as DType, t.name]));

/** The names moa reads, for error messages. */
export const SUPPORTED_FORMAT_DTYPES = FORMAT_TYPES.filter((t) => t.dtype).map((t) => t.name);

/** The format's name for a moa dtype ('float16' -> 'F16'). */
export function formatDtypeOf(dtype: DType): string {
  const name = BY_DTYPE.get(dtype);
  if (!name) throw new TypeError(`safetensors has no dtype for '${String(dtype)}'`);
  return name;
}

/** One tensor as the header describes it; begin and end are offsets into the data buffer. */
export interface TensorEntry {
  readonly name: string;
  /** The dtype as the file spells it ('BF16'). */
  readonly format: string;
  /** The moa dtype, or null when the format has the dtype but moa cannot hold it. */
  readonly dtype: DType | null;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

export interface ParsedHeader {
  /** Ordered by position in the data buffer. */
  readonly entries: readonly TensorEntry[];
  readonly metadata: Record<string, string>;
}

/** A name as messages show it: quoted, and cut short when huge. */
export function quote(name: string): string {
  const shown = name.length > 120 ? `${name.slice(0, 120)}…` : name;
  return `'${shown}'`;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  return typeof value === 'object' ? 'an object' : `${typeof value} ${JSON.stringify(value)?.slice(0, 40)}`;
}

const isPlainObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** The header length N from the 8-byte prefix, checked against the file's size. */
export function headerLength(path: string, prefix: Uint8Array, fileSize: number): number {
  const n = Buffer.from(prefix.buffer, prefix.byteOffset, 8).readBigUInt64LE(0);
  if (n > BigInt(MAX_HEADER_BYTES)) {
    throw new SafetensorsError(path, `header length ${n} is over the ${MAX_HEADER_BYTES}-byte limit (not a safetensors file, or a corrupt one)`);
  }
  const length = Number(n);
  if (8 + length > fileSize) {
    throw new SafetensorsError(path, `header length ${length} runs past the end of the file (${fileSize} bytes): the file is truncated or not safetensors`);
  }
  return length;
}

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

export function decodeHeader(path: string, bytes: Uint8Array): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new SafetensorsError(path, 'header is not valid UTF-8');
  }
}

/** Checks a header's JSON against the format; bufferBytes is the size of the data buffer. */
export function parseHeader(path: string, text: string, bufferBytes: number): ParsedHeader {
  const fail = (message: string): never => {
    throw new SafetensorsError(path, message);
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    fail(`header is not valid JSON (${(error as Error).message})`);
  }
  if (!isPlainObject(json)) return fail(`header is ${describe(json)}, not a JSON object`);
  const repeat = findDuplicateKey(text);
  if (repeat) {
    fail(repeat.owner === null ? `header names ${quote(repeat.key)} twice` : `header repeats the key ${quote(repeat.key)} inside ${quote(repeat.owner)}`);
  }
  let metadata: Record<string, string> = {};
  const entries: TensorEntry[] = [];
  for (const [name, value] of Object.entries(json)) {
    if (name === METADATA_KEY) metadata = checkMetadata(value, fail);
    else entries.push(checkEntry(name, value, bufferBytes, fail));
  }
  checkCoverage(entries, bufferBytes, fail);
  return { entries, metadata };
}

function checkMetadata(value: unknown, fail: (m: string) => never): Record<string, string> {
  if (value === null) return {}; // the reference writes no metadata as null or leaves it out
  if (!isPlainObject(value)) return fail(`${METADATA_KEY} is ${describe(value)}, not an object of strings`);
  const metadata: Record<string, string> = {};
  for (const [key, v] of Object.entries(value)) {
    if (typeof v !== 'string') fail(`${METADATA_KEY} value for ${quote(key)} is ${describe(v)}, not a string`);
    Object.defineProperty(metadata, key, { value: v, enumerable: true, writable: true, configurable: true });
  }
  return metadata;
}

function checkEntry(name: string, value: unknown, bufferBytes: number, fail: (m: string) => never): TensorEntry {
  const what = `tensor ${quote(name)}`;
  if (!isPlainObject(value)) return fail(`${what}: entry is ${describe(value)}, not an object`);
  const { dtype: format, shape, data_offsets: offsets } = value;
  if (typeof format !== 'string') return fail(`${what}: dtype is ${format === undefined ? 'missing' : describe(format)}, not a string`);
  const type = BY_NAME.get(format);
  if (!type) return fail(`${what}: unknown dtype ${quote(format)} (the format defines ${FORMAT_TYPES.map((t) => t.name).join(', ')})`);
  const isCount = (d: unknown): d is number => Number.isSafeInteger(d) && (d as number) >= 0;
  if (!Array.isArray(shape)) return fail(`${what}: shape is ${shape === undefined ? 'missing' : describe(shape)}, not an array`);
  if (!shape.every(isCount)) return fail(`${what}: shape ${JSON.stringify(shape).slice(0, 80)} must hold non-negative integers`);
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isCount)) {
    const shown = offsets === undefined ? 'missing' : JSON.stringify(offsets).slice(0, 80);
    return fail(`${what}: data_offsets (${shown}) must be [begin, end], two non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end) fail(`${what}: data_offsets [${begin}, ${end}] end before they begin`);
  // BigInt: a hostile shape may multiply past 2^53.
  const bits = shape.reduce((n: bigint, d: number) => n * BigInt(d), 1n) * BigInt(type.bits);
  const dims = `shape [${shape.join(', ')}] of ${format}`;
  if (bits % 8n !== 0n) fail(`${what}: ${dims} does not fill a whole number of bytes`);
  if (bits / 8n !== BigInt(end - begin)) {
    fail(`${what}: data_offsets [${begin}, ${end}] hold ${end - begin} bytes but ${dims} needs ${bits / 8n}`);
  }
  if (end > bufferBytes) {
    fail(`${what}: data_offsets [${begin}, ${end}] run past the end of the data buffer (${bufferBytes} bytes; the file is truncated or the offsets are wrong)`);
  }
  return { name, format, dtype: type.dtype, shape: Object.freeze([...shape]), begin, end };
}

// As the reference: every byte of the data buffer belongs to exactly one tensor (no overlaps,
// no holes, nothing after the last tensor). Sorts entries by position.
function checkCoverage(entries: TensorEntry[], bufferBytes: number, fail: (m: string) => never): void {
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let cursor = 0;
  let previous: TensorEntry | null = null;
  for (const e of entries) {
    if (e.begin < cursor) {
      fail(`tensors ${quote(previous!.name)} [${previous!.begin}, ${previous!.end}] and ${quote(e.name)} [${e.begin}, ${e.end}] overlap`);
    }
    if (e.begin > cursor) fail(`bytes ${cursor} to ${e.begin} of the data buffer (before tensor ${quote(e.name)}) belong to no tensor`);
    cursor = e.end;
    previous = e;
  }
  if (cursor < bufferBytes) fail(`the last ${bufferBytes - cursor} bytes of the data buffer belong to no tensor`);
}

/** What the writer knows of one tensor before laying the file out. */
export interface TensorPlan {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  readonly byteLength: number;
}

export interface Layout {
  /** The 8-byte length and the space-padded header: the file up to the data buffer. */
  readonly head: Buffer;
  /** The plans in file order, each with its offset into the data buffer. */
  readonly placed: readonly (TensorPlan & { readonly begin: number })[];
}

const utf8Order = (a: string, b: string) => Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));

/**
 * Lays out a file as the reference writer does: widest dtype first, then by name (UTF-8 byte
 * order); __metadata__ first in the header (its keys sorted); the header padded with spaces to
 * a multiple of 8 bytes. Keys are written by hand since JSON.stringify puts integer-like keys first.
 */
export function layout(plans: readonly TensorPlan[], metadata?: Readonly<Record<string, string>>): Layout {
  const rank = (p: TensorPlan) => BY_NAME.get(formatDtypeOf(p.dtype))!.rank;
  const ordered = [...plans].sort((a, b) => rank(b) - rank(a) || utf8Order(a.name, b.name));
  const parts: string[] = [];
  if (metadata !== undefined) {
    const keys = Object.keys(metadata).sort(utf8Order);
    parts.push(`"${METADATA_KEY}":{${keys.map((k) => `${JSON.stringify(k)}:${JSON.stringify(metadata[k])}`).join(',')}}`);
  }
  let offset = 0;
  const placed = ordered.map((p) => {
    const begin = offset;
    offset += p.byteLength;
    parts.push(`${JSON.stringify(p.name)}:{"dtype":"${formatDtypeOf(p.dtype)}","shape":[${p.shape.join(',')}],"data_offsets":[${begin},${offset}]}`);
    return { ...p, begin };
  });
  const json = Buffer.from(`{${parts.join(',')}}`, 'utf8');
  const n = json.length + ((8 - (json.length % 8)) % 8);
  if (n > MAX_HEADER_BYTES) throw new RangeError(`the header would be ${n} bytes, over the format's ${MAX_HEADER_BYTES}-byte limit`);
  const head = Buffer.alloc(8 + n, 0x20);
  head.writeBigUInt64LE(BigInt(n), 0);
  json.copy(head, 8);
  return { head, placed };
}
