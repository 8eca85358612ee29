// Images on disk ↔ tensors. Decoding and encoding go through sharp (PNG, JPEG, WebP, ...);
// the pixels become float32 tensors [1, C, H, W] in [0, 1] (the VAE wants [-1, 1]: see
// toMinusOneOne). PNGs are written with optional text chunks (png-text.ts).
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { tensor } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import { type Tensor } from '../tensor/tensor.js';
import { writeFileAtomically } from './atomic.js';
import { addPngText, readPngText } from './png-text.js';

export class ImageError extends Error {
  constructor(
    readonly path: string,
    reason: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot read image '${path}': ${reason}`, options);
    this.name = 'ImageError';
  }
}

export interface ReadImageOptions {
  /** Apply the EXIF orientation (phone photos are often stored sideways). Default true. */
  autoOrient?: boolean;
}

interface Decoded {
  data: Buffer;
  width: number;
  height: number;
  channels: number;
}

function checkFile(path: string): void {
  let stats;
  try {
    stats = statSync(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ImageError(path, code === 'ENOENT' ? 'no such file' : (error as Error).message, { cause: error });
  }
  if (!stats.isFile()) throw new ImageError(path, 'not a regular file');
}

/** 8-bit sRGB pixels, interleaved; `space` 'b-w' gives one channel. Alpha, when present, stays last. */
async function decode(path: string, space: 'srgb' | 'b-w', { autoOrient = true }: ReadImageOptions): Promise<Decoded> {
  checkFile(path);
  try {
    let image = sharp(path);
    if (autoOrient) image = image.rotate();
    const { data, info } = await image.toColourspace(space).raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
    return { data, width: info.width, height: info.height, channels: info.channels };
  } catch (error) {
    throw new ImageError(path, error instanceof Error ? error.message : String(error), { cause: error });
  }
}

/** Interleaved 8-bit pixels [H, W, C] → float32 [1, C, H, W] in [0, 1]. */
function toTensor({ data, width, height, channels }: Decoded): Tensor {
  return tidy(() => tensor(data, { shape: [height, width, channels] }).permute(2, 0, 1).unsqueeze(0).float().div(255).contiguous());
}

/** An image file as RGB float32 [1, 3, H, W] in [0, 1]; alpha is dropped (as PIL's convert('RGB')). */
export async function readImage(path: string, options: ReadImageOptions = {}): Promise<Tensor> {
  const { rgb, alpha } = await readImageWithAlpha(path, options);
  alpha?.dispose();
  return rgb;
}

/** An image file as RGB [1, 3, H, W] and, when it has one, its alpha channel [1, 1, H, W], both in [0, 1]. */
export async function readImageWithAlpha(path: string, options: ReadImageOptions = {}): Promise<{ rgb: Tensor; alpha: Tensor | null }> {
  const decoded = await decode(path, 'srgb', options);
  if (decoded.channels !== 3 && decoded.channels !== 4) throw new ImageError(path, `decoded to ${decoded.channels} channels, expected RGB or RGBA`);
  return tidy(() => {
    const all = toTensor(decoded);
    if (decoded.channels === 3) return { rgb: all, alpha: null };
    return { rgb: all.narrow(1, 0, 3).contiguous(), alpha: all.narrow(1, 3, 1).contiguous() };
  });
}

/** A mask image (white = keep) as float32 [1, 1, H, W] in [0, 1]: its grey level, ignoring alpha. */
export async function readMask(path: string, options: ReadImageOptions = {}): Promise<Tensor> {
  const decoded = await decode(path, 'b-w', options);
  return tidy(() => toTensor(decoded).narrow(1, 0, 1).contiguous());
}

/** [0, 1] → [-1, 1], the VAE's range. */
export function toMinusOneOne(image: Tensor): Tensor {
  return tidy(() => image.mul(2).sub(1));
}

/** [-1, 1] → [0, 1], clamped (a decoded image overshoots a little). */
export function fromMinusOneOne(image: Tensor): Tensor {
  return tidy(() => image.add(1).div(2).clamp(0, 1));
}

/** [1, C, H, W] or [C, H, W] in [0, 1] (C = 1, 3 or 4) → interleaved 8-bit pixels, rounded as diffusers' numpy_to_pil. */
function toPixels(image: Tensor): Decoded {
  const shape = image.ndim === 4 && image.size(0) === 1 ? image.shape.slice(1) : image.shape;
  const [channels, height, width] = shape as [number, number, number];
  if (shape.length !== 3 || ![1, 3, 4].includes(channels)) {
    throw new RangeError(`an image to write is [1, C, H, W] or [C, H, W] with C = 1, 3 or 4, not [${image.shape.join(', ')}]`);
  }
  const bytes = tidy(() => image.reshape(channels, height, width).float().clamp(0, 1).mul(255).round().to('uint8').permute(1, 2, 0).contiguous().data());
  return { data: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength), width, height, channels };
}

/** An image tensor in [0, 1] encoded as PNG, with optional text chunks (e.g. the generation settings). */
export async function encodePng(image: Tensor, text: Readonly<Record<string, string>> = {}): Promise<Buffer> {
  const { data, width, height, channels } = toPixels(image);
  const png = await sharp(data, { raw: { width, height, channels: channels as 1 | 3 | 4 } }).png().toBuffer();
  return Object.keys(text).length ? addPngText(png, text) : png;
}

export async function writePng(path: string, image: Tensor, text: Readonly<Record<string, string>> = {}): Promise<void> {
  writeFileAtomically(path, await encodePng(image, text));
}

/** The text chunks of a PNG file, by keyword. */
export async function readPngTextFile(path: string): Promise<Record<string, string>> {
  checkFile(path);
  return readPngText(await readFile(path), `'${path}'`);
}
