// A segmentation map (pixel value == segment id) from FastComposer's .npy or from a PNG.
import { readFile } from 'node:fs/promises';
import sharp from 'sharp';
import { parseNpy } from './npy.js';

export interface SegMap {
  readonly height: number;
  readonly width: number;
  /** Row-major segment ids. */
  readonly labels: Int32Array;
}

/** An .npy map [H, W] (or [H, W, 1]) of integers (or bools / integral floats). */
export async function readNpySegMap(path: string): Promise<SegMap> {
  const array = parseNpy(await readFile(path), `'${path}'`);
  const { shape } = array;
  if (!(shape.length === 2 || (shape.length === 3 && shape[2] === 1))) {
    throw new Error(`segmentation map '${path}' must be [H, W] or [H, W, 1], not [${shape.join(', ')}]`);
  }
  const labels = new Int32Array(array.data.length);
  for (let i = 0; i < labels.length; i++) {
    const v = Number(array.data[i]!);
    if (!Number.isInteger(v)) throw new Error(`segmentation map '${path}' holds a non-integer value ${v}`);
    labels[i] = v;
  }
  return { height: shape[0]!, width: shape[1]!, labels };
}

/** A PNG (or any image sharp reads) map: the first channel's 8-bit value is the segment id. */
export async function readImageSegMap(path: string): Promise<SegMap> {
  const { data, info } = await sharp(path).raw({ depth: 'uchar' }).toBuffer({ resolveWithObject: true });
  const labels = new Int32Array(info.width * info.height);
  for (let i = 0; i < labels.length; i++) labels[i] = data[i * info.channels]!;
  return { height: info.height, width: info.width, labels };
}
