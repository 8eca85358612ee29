// PNG text chunks (generation settings stored in the image, as other SD tools do). sharp cannot
// write arbitrary ones, so they are spliced into the encoded PNG here: each chunk is
// length (4 bytes, big-endian) · type · data · CRC-32 of type and data (PNG spec §5.3).
// Latin-1 text goes in a tEXt chunk; anything else in an uncompressed UTF-8 iTXt chunk.
import * as zlib from 'node:zlib';

const SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

export class PngError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PngError';
  }
}

// node:zlib has crc32 from Node 20.15 / 22.2; older Node 20 builds use the table below.
const nativeCrc32 = (zlib as { crc32?: (data: Uint8Array, value?: number) => number }).crc32;
let table: Uint32Array | undefined;

function tableCrc32(bytes: Uint8Array): number {
  table ??= Uint32Array.from({ length: 256 }, (_, n) => {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    return c >>> 0;
  });
  let c = 0xffffffff;
  for (const b of bytes) c = table[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** CRC-32 (ISO 3309, as PNG and zlib use). */
export function crc32(bytes: Uint8Array, { useTable = false } = {}): number {
  return nativeCrc32 && !useTable ? nativeCrc32(bytes) >>> 0 : tableCrc32(bytes);
}

interface Chunk {
  type: string;
  /** Offset of the chunk's length field, and of the byte after its CRC. */
  start: number;
  end: number;
  data: Buffer;
}

function chunks(png: Buffer, what: string): Chunk[] {
  if (png.length < 8 || !png.subarray(0, 8).equals(SIGNATURE)) throw new PngError(`${what} is not a PNG (no PNG signature)`);
  const out: Chunk[] = [];
  let at = 8;
  while (at < png.length) {
    if (at + 12 > png.length) throw new PngError(`${what}: truncated chunk header at byte ${at}`);
    const length = png.readUInt32BE(at);
    const type = png.toString('latin1', at + 4, at + 8);
    const end = at + 12 + length;
    if (end > png.length) throw new PngError(`${what}: chunk ${type} at byte ${at} runs past the end of the file`);
    out.push({ type, start: at, end, data: png.subarray(at + 8, at + 8 + length) });
    at = end;
    if (type === 'IEND') break;
  }
  if (out.at(-1)?.type !== 'IEND') throw new PngError(`${what}: no IEND chunk (truncated file?)`);
  return out;
}

function makeChunk(type: string, data: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

const isLatin1 = (s: string) => /^[\u0001-\u00ff]*$/.test(s);

function checkKeyword(key: string): void {
  // PNG keywords: 1–79 printable Latin-1 characters, no leading, trailing or double spaces.
  if (!/^[\u0020-\u007e\u00a1-\u00ff]{1,79}$/.test(key) || key.startsWith(' ') || key.endsWith(' ') || key.includes('  ')) {
    throw new PngError(`PNG text keyword ${JSON.stringify(key)} is invalid: 1 to 79 printable Latin-1 characters, no leading, trailing or double spaces`);
  }
}

function textChunk(key: string, value: string): Buffer {
  checkKeyword(key);
  if (isLatin1(value)) return makeChunk('tEXt', Buffer.concat([Buffer.from(key, 'latin1'), Buffer.from([0]), Buffer.from(value, 'latin1')]));
  // iTXt: keyword \0, compression flag 0, method 0, empty language tag \0, empty translated keyword \0, UTF-8 text.
  return makeChunk('iTXt', Buffer.concat([Buffer.from(key, 'latin1'), Buffer.from([0, 0, 0, 0, 0]), Buffer.from(value, 'utf8')]));
}

/** A copy of an encoded PNG with text chunks added before the image data. */
export function addPngText(png: Uint8Array, text: Readonly<Record<string, string>>): Buffer {
  const bytes = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  const list = chunks(bytes, 'the PNG');
  const firstData = list.find((c) => c.type === 'IDAT') ?? list.at(-1)!;
  const added = Object.entries(text).map(([k, v]) => {
    if (typeof v !== 'string') throw new PngError(`PNG text ${JSON.stringify(k)} must be a string, not ${typeof v}`);
    return textChunk(k, v);
  });
  return Buffer.concat([bytes.subarray(0, firstData.start), ...added, bytes.subarray(firstData.start)]);
}

function inflate(body: Buffer, chunk: Chunk, what: string): Buffer {
  try {
    return zlib.inflateSync(body);
  } catch (error) {
    throw new PngError(`${what}: ${chunk.type} chunk at byte ${chunk.start} does not decompress (${error instanceof Error ? error.message : String(error)})`);
  }
}

function decodeText(chunk: Chunk, what: string): [string, string] {
  const { type, data } = chunk;
  const nul = data.indexOf(0);
  if (nul < 1) throw new PngError(`${what}: ${type} chunk at byte ${chunk.start} has no keyword`);
  const key = data.toString('latin1', 0, nul);
  if (type === 'tEXt') return [key, data.toString('latin1', nul + 1)];
  if (type === 'zTXt') return [key, inflate(data.subarray(nul + 2), chunk, what).toString('latin1')];
  // iTXt: flag, method, language tag \0, translated keyword \0, then the text.
  const compressed = data[nul + 1] === 1;
  const language = data.indexOf(0, nul + 3);
  const translated = language < 0 ? -1 : data.indexOf(0, language + 1);
  if (translated < 0) throw new PngError(`${what}: malformed iTXt chunk at byte ${chunk.start}`);
  const body = data.subarray(translated + 1);
  return [key, (compressed ? inflate(body, chunk, what) : body).toString('utf8')];
}

/** The text chunks (tEXt, zTXt, iTXt) of an encoded PNG, by keyword; a later chunk wins. */
export function readPngText(png: Uint8Array, what = 'the PNG'): Record<string, string> {
  const bytes = Buffer.from(png.buffer, png.byteOffset, png.byteLength);
  const out: Record<string, string> = {};
  for (const chunk of chunks(bytes, what)) {
    if (chunk.type !== 'tEXt' && chunk.type !== 'zTXt' && chunk.type !== 'iTXt') continue;
    const stored = bytes.readUInt32BE(chunk.end - 4);
    if (crc32(bytes.subarray(chunk.start + 4, chunk.end - 4)) !== stored) throw new PngError(`${what}: ${chunk.type} chunk at byte ${chunk.start} fails its CRC check`);
    const [key, value] = decodeText(chunk, what);
    // defineProperty, so a keyword such as '__proto__' is stored as data.
    Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  }
  return out;
}
