// Uploaded images: checked by decoding them (never by name or declared type), stored re-encoded
// as PNG under <out>/uploads/<id>.png with their record beside them (<id>.json).
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp, { type Metadata, type OutputInfo } from 'sharp';
import { writeFileAtomically } from '../io/atomic.js';
import { ApiError } from './errors.js';
import { isId, newId } from './ids.js';

/** Uploads may be at most this many pixels a side. */
export const MAX_UPLOAD_SIDE = 4096;
const FORMATS = ['png', 'jpeg', 'webp'];

export interface UploadRecord {
  id: string;
  url: string;
  width: number;
  height: number;
  hasAlpha: boolean;
  format: string;
  bytes: number;
  createdAt: string;
}

export class Uploads {
  readonly dir: string;
  readonly #records = new Map<string, UploadRecord>();

  constructor(out: string) {
    this.dir = join(out, 'uploads');
    mkdirSync(this.dir, { recursive: true });
    for (const name of readdirSync(this.dir)) {
      if (!name.endsWith('.json')) continue;
      try {
        const record = JSON.parse(readFileSync(join(this.dir, name), 'utf8')) as UploadRecord;
        if (isId(record.id) && existsSync(this.path(record.id))) this.#records.set(record.id, record);
      } catch {
        // A damaged record is left out of the list; its image stays on disk.
      }
    }
  }

  path(id: string): string {
    return join(this.dir, `${id}.png`);
  }

  get(id: string): UploadRecord | undefined {
    return this.#records.get(id);
  }

  /** Newest first. */
  list(): UploadRecord[] {
    return [...this.#records.values()].sort((a, b) => b.createdAt.localeCompare(a.createdAt) || b.id.localeCompare(a.id));
  }

  /** Checks and stores an upload; an ApiError says what is wrong with it. */
  async save(data: Buffer): Promise<UploadRecord> {
    if (data.length === 0) throw new ApiError(400, 'the uploaded file is empty');
    let meta: Metadata;
    try {
      meta = await sharp(data).metadata();
    } catch (error) {
      throw new ApiError(415, `the upload is not a PNG, JPEG or WebP image (it does not decode as an image: ${(error as Error).message})`);
    }
    const format = meta.format;
    if (!format || !FORMATS.includes(format)) throw new ApiError(415, `the upload is a ${format ?? 'unknown'} image: upload a PNG, JPEG or WebP image`);
    const tooBig = (w: number, h: number) => new ApiError(400, `the image is ${w}×${h}; uploads may be at most ${MAX_UPLOAD_SIDE} pixels a side: scale it down`);
    if (meta.width > MAX_UPLOAD_SIDE || meta.height > MAX_UPLOAD_SIDE) throw tooBig(meta.width, meta.height);
    let png: { data: Buffer; info: OutputInfo };
    try {
      // Decoding it fully catches truncated and corrupt files; rotate() applies the EXIF orientation.
      png = await sharp(data, { failOn: 'error', limitInputPixels: MAX_UPLOAD_SIDE * MAX_UPLOAD_SIDE }).rotate().png().toBuffer({ resolveWithObject: true });
    } catch (error) {
      throw new ApiError(400, `the ${format} image cannot be decoded: ${(error as Error).message}`);
    }
    const { width, height, channels } = png.info;
    if (width > MAX_UPLOAD_SIDE || height > MAX_UPLOAD_SIDE) throw tooBig(width, height);
    const id = newId();
    writeFileAtomically(this.path(id), png.data);
    const record: UploadRecord = { id, url: `/files/uploads/${id}.png`, width, height, hasAlpha: channels === 4 || channels === 2, format, bytes: data.length, createdAt: new Date().toISOString() };
    writeFileAtomically(join(this.dir, `${id}.json`), Buffer.from(JSON.stringify(record, null, 2)));
    this.#records.set(id, record);
    return record;
  }
}
