// Reading and writing safetensors files. Reading is lazy: opening reads only the 8-byte prefix
// and the header; a tensor's bytes go from the file straight into its memory (native.readFile)
// when it is asked for, so a large checkpoint never passes through a JavaScript buffer.
import { closeSync, constants, fstatSync, openSync, readSync, statSync, writeSync, type Stats } from 'node:fs';
import { endianness } from 'node:os';
import type { Device } from '../tensor/device.js';
import { BYTES_PER_ELEMENT, type DType, dtypeCode, isFloating } from '../tensor/dtype.js';
import { type Handle, native } from '../tensor/native.js';
import { Tensor } from '../tensor/tensor.js';
import {
  decodeHeader,
  headerLength,
  layout,
  METADATA_KEY,
  parseHeader,
  quote,
  SafetensorsError,
  SUPPORTED_FORMAT_DTYPES,
  type TensorEntry,
  type TensorPlan,
} from './safetensors-format.js';
import { writeAtomically } from './atomic.js';

export { MAX_HEADER_BYTES, SafetensorsError } from './safetensors-format.js';

/** Where one tensor lies in the file and what it holds. */
export interface TensorInfo {
  readonly name: string;
  /** The moa dtype, or null when the file's dtype is one moa cannot hold (see `format`). */
  readonly dtype: DType | null;
  /** The dtype as the file spells it ('F32', 'BF16', 'F8_E4M3', ...). */
  readonly format: string;
  readonly shape: readonly number[];
  /** [begin, end) within the data buffer, as the header says. */
  readonly dataOffsets: readonly [number, number];
  /** Absolute position of the tensor's first byte in the file. */
  readonly fileOffset: number;
  readonly byteLength: number;
}

export interface GetOptions {
  /** Convert to this dtype after reading. */
  dtype?: DType;
  /** Move to this device after reading (tensors are read into CPU memory). */
  device?: Device;
}

export interface LoadOptions {
  /** Only these tensors (each must exist), or those the predicate accepts. Default: all. */
  only?: readonly string[] | ((name: string, info: TensorInfo) => boolean);
  /** Convert floating-point tensors to this dtype; integer and bool tensors keep theirs. */
  floatDtype?: DType;
  device?: Device;
}

/** An opened safetensors file: the checked header, with tensors read on demand. Holds no file open. */
export interface SafetensorsFile {
  readonly path: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** Tensor names in the order their data lies in the file. */
  keys(): string[];
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** Reads one tensor; the new Tensor belongs to the caller (and to any open tidy() scope). */
  get(name: string, options?: GetOptions): Tensor;
  /** Reads several tensors (all by default); on failure none of them is left alive. */
  load(options?: LoadOptions): Record<string, Tensor>;
}

function checkLittleEndian(): void {
  // The format is little-endian and the binding copies bytes as they are.
  if (endianness() !== 'LE') throw new Error('safetensors: moa reads and writes only on little-endian machines');
}

const message = (error: unknown) => (error instanceof Error ? error.message : String(error));

/** Sets a key as an own property, even '__proto__'. tidy() still sees the object as plain. */
function put<V>(record: Record<string, V>, key: string, value: V): void {
  Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true });
}

// ---- reading ----

function readExactly(path: string, fd: number, position: number, length: number): Buffer {
  const bytes = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const got = readSync(fd, bytes, done, length - done, position + done);
    if (got === 0) throw new SafetensorsError(path, `the file ended at byte ${position + done} while reading its header (did it change?)`);
    done += got;
  }
  return bytes;
}

// Identifies the file's version, so a tensor is never read from a file replaced since opening.
const stampOf = (s: Stats) => `${s.dev}:${s.ino}:${s.size}:${s.mtimeMs}`;

/** Opens a safetensors file: reads and checks its header, and nothing else. */
export function openSafetensors(path: string): SafetensorsFile {
  checkLittleEndian();
  let fd: number;
  try {
    // Non-blocking, so a FIFO is refused below rather than waited on; regular files ignore the flag.
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    throw new SafetensorsError(path, `cannot open: ${message(error)}`, { cause: error });
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new SafetensorsError(path, 'not a regular file');
    if (stats.size < 8) throw new SafetensorsError(path, `the file is ${stats.size} bytes, too short for the 8-byte header length`);
    const n = headerLength(path, readExactly(path, fd, 0, 8), stats.size);
    const text = decodeHeader(path, readExactly(path, fd, 8, n));
    const header = parseHeader(path, text, stats.size - 8 - n);
    return new LazyFile(path, header.entries, header.metadata, 8 + n, stampOf(stats));
  } catch (error) {
    if (error instanceof SafetensorsError) throw error;
    throw new SafetensorsError(path, `cannot read: ${message(error)}`, { cause: error });
  } finally {
    closeSync(fd);
  }
}

class LazyFile implements SafetensorsFile {
  readonly #entries: Map<string, TensorEntry>;

  constructor(
    readonly path: string,
    entries: readonly TensorEntry[],
    readonly metadata: Readonly<Record<string, string>>,
    private readonly dataStart: number,
    private readonly stamp: string,
  ) {
    this.#entries = new Map(entries.map((e) => [e.name, e]));
    Object.freeze(metadata);
  }

  keys(): string[] {
    return [...this.#entries.keys()];
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  info(name: string): TensorInfo {
    const e = this.#entry(name);
    return {
      name,
      dtype: e.dtype,
      format: e.format,
      shape: e.shape,
      dataOffsets: [e.begin, e.end],
      fileOffset: this.dataStart + e.begin,
      byteLength: e.end - e.begin,
    };
  }

  get(name: string, options: GetOptions = {}): Tensor {
    const e = this.#entry(name);
    const dtype = this.#readable(e);
    this.#checkUnchanged();
    let handle: Handle;
    try {
      handle = readTensor(this.path, this.dataStart + e.begin, dtype, e.shape);
    } catch (error) {
      throw new SafetensorsError(this.path, `cannot read tensor ${quote(name)}: ${message(error)}`, { cause: error });
    }
    const t = new Tensor(handle);
    const convert = (options.dtype !== undefined && options.dtype !== dtype) || (options.device !== undefined && options.device !== 'cpu');
    if (!convert) return t;
    try {
      return t.to({ dtype: options.dtype, device: options.device });
    } finally {
      t.dispose();
    }
  }

  load({ only, floatDtype, device }: LoadOptions = {}): Record<string, Tensor> {
    const names = this.#select(only);
    for (const name of names) this.#readable(this.#entry(name)); // fail before reading anything
    const tensors: Record<string, Tensor> = {};
    try {
      for (const name of names) {
        const dtype = this.#entries.get(name)!.dtype!;
        put(tensors, name, this.get(name, { dtype: floatDtype && isFloating(dtype) ? floatDtype : undefined, device }));
      }
    } catch (error) {
      for (const t of Object.values(tensors)) t.dispose();
      throw error;
    }
    return tensors;
  }

  #select(only: LoadOptions['only']): string[] {
    if (only === undefined) return this.keys();
    if (typeof only === 'function') return this.keys().filter((name) => only(name, this.info(name)));
    const missing = only.filter((name) => !this.#entries.has(name));
    if (missing.length > 0) throw new SafetensorsError(this.path, `no tensor named ${missing.map(quote).join(', ')}`);
    return [...new Set(only)];
  }

  #entry(name: string): TensorEntry {
    const e = this.#entries.get(name);
    if (!e) throw new SafetensorsError(this.path, `no tensor named ${quote(name)} (the file holds ${this.#entries.size})`);
    return e;
  }

  #readable(e: TensorEntry): DType {
    if (e.dtype) return e.dtype;
    throw new SafetensorsError(
      this.path,
      `tensor ${quote(e.name)} has dtype ${e.format}, which safetensors allows but moa cannot hold (moa reads ${SUPPORTED_FORMAT_DTYPES.join(', ')})`,
    );
  }

  #checkUnchanged(): void {
    let now: string;
    try {
      now = stampOf(statSync(this.path));
    } catch (error) {
      throw new SafetensorsError(this.path, `cannot read tensors: ${message(error)}`, { cause: error });
    }
    if (now !== this.stamp) throw new SafetensorsError(this.path, 'the file changed since it was opened; open it again');
  }
}

/** A tensor's handle read from the file; bool bytes must be 0 or 1, as the format requires. */
function readTensor(path: string, offset: number, dtype: DType, shape: readonly number[]): Handle {
  if (dtype !== 'bool') return native.readFile(path, offset, dtypeCode(dtype), shape);
  const bytes = native.readFile(path, offset, dtypeCode('uint8'), shape);
  const made: Handle[] = [bytes];
  try {
    const above = native.gtScalar(bytes, 1);
    made.push(above);
    const any = native.any(above);
    made.push(any);
    if (native.item(any)) throw new Error('a BOOL tensor holds bytes other than 0 and 1');
    return native.to(bytes, dtypeCode('bool'));
  } finally {
    native.dispose(...made);
  }
}

/** Reads every tensor (or a subset: see LoadOptions) and the metadata. */
export function loadSafetensors(path: string, options?: LoadOptions): { tensors: Record<string, Tensor>; metadata: Record<string, string> } {
  const file = openSafetensors(path);
  return { tensors: file.load(options), metadata: { ...file.metadata } };
}

// ---- writing ----

function planOf(name: string, t: unknown): TensorPlan {
  if (!(t instanceof Tensor)) throw new TypeError(`tensor ${quote(name)} is not a Tensor`);
  try {
    const shape = t.shape;
    return { name, dtype: t.dtype, shape, byteLength: shape.reduce((a, b) => a * b, 1) * BYTES_PER_ELEMENT[t.dtype] };
  } catch (error) {
    throw new Error(`tensor ${quote(name)}: ${message(error)}`, { cause: error });
  }
}

function checkMetadata(metadata: unknown): Readonly<Record<string, string>> | undefined {
  if (metadata === undefined) return undefined;
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) throw new TypeError('metadata must be an object of strings');
  for (const [key, value] of Object.entries(metadata)) {
    if (typeof value !== 'string') throw new TypeError(`metadata value for ${quote(key)} is ${typeof value}, not a string`);
  }
  return metadata as Record<string, string>;
}

function writeAll(fd: number, bytes: Buffer, position: number): void {
  for (let done = 0; done < bytes.length; ) done += writeSync(fd, bytes, done, bytes.length - done, position + done);
}

/**
 * Writes tensors (any device, any layout) and optional string metadata as a safetensors file.
 * Atomic: the file is written beside `path` under a temporary name and renamed over it only when
 * complete, so a failure leaves any existing file as it was.
 */
export function saveSafetensors(path: string, tensors: Readonly<Record<string, Tensor>>, metadata?: Readonly<Record<string, string>>): void {
  checkLittleEndian();
  let plan: ReturnType<typeof layout>;
  let byName: Map<string, Tensor>;
  try {
    if (typeof tensors !== 'object' || tensors === null) throw new TypeError('tensors must be an object of named Tensors');
    if (Object.hasOwn(tensors, METADATA_KEY)) throw new TypeError(`${METADATA_KEY} is reserved for metadata and cannot name a tensor`);
    byName = new Map(Object.entries(tensors));
    plan = layout([...byName].map(([name, t]) => planOf(name, t)), checkMetadata(metadata));
  } catch (error) {
    throw new SafetensorsError(path, `cannot save: ${message(error)}`, { cause: error });
  }
  let current = '';
  try {
    writeAtomically(path, (fd) => {
      writeAll(fd, plan.head, 0);
      for (const p of plan.placed) {
        current = ` tensor ${quote(p.name)}`;
        const written = native.writeFd(fd, byName.get(p.name)!.handle, plan.head.length + p.begin);
        if (written !== p.byteLength) throw new Error(`wrote ${written} bytes, expected ${p.byteLength} (did the tensor change?)`);
      }
      current = '';
    });
  } catch (error) {
    throw new SafetensorsError(path, `cannot save${current}: ${message(error)}`, { cause: error });
  }
}
