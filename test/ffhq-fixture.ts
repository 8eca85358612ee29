// Tiny FFHQ-wild folders for tests: images with two coloured subjects, their captions, segment
// JSON and an int64 .npy segmentation map (spec §3.2 layout).
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';

/** A .npy file written by hand: preamble, a space-padded header dict, the raw bytes. */
export function npyBytes(descr: string, shape: number[], data: Uint8Array, { version = 1, fortran = 'False' } = {}): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  let dict = `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shapeText}, }`;
  const preamble = version === 1 ? 10 : 12;
  while ((preamble + dict.length + 1) % 64 !== 0) dict += ' ';
  dict += '\n';
  const header = Buffer.from(dict, 'latin1');
  const head = Buffer.alloc(preamble);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]).copy(head);
  if (version === 1) head.writeUInt16LE(header.length, 8);
  else head.writeUInt32LE(header.length, 8);
  return new Uint8Array(Buffer.concat([head, header, Buffer.from(data.buffer, data.byteOffset, data.byteLength)]));
}

export interface FixtureSample {
  id: string;
  caption: string;
  /** The two subject words, left then right. */
  words: [string, string];
  /** RGB of the left subject, the right subject and the background. */
  colours?: [number[], number[], number[]];
}

/**
 * Writes square `size`×`size` samples: subject 1 fills columns [size/4, size/2), subject 2
 * [size/2, 3·size/4); the id list goes to image_ids_train.txt.
 */
export async function writeFfhqFolder(root: string, samples: readonly FixtureSample[], size = 32): Promise<void> {
  const q = size / 4;
  const label = (x: number) => (x >= q && x < 2 * q ? 1 : x >= 2 * q && x < 3 * q ? 2 : 0);
  for (const { id, caption, words, colours = [[255, 0, 0], [0, 255, 0], [0, 0, 255]] } of samples) {
    const dir = join(root, id.slice(0, 5));
    mkdirSync(dir, { recursive: true });
    const rgb = Buffer.alloc(size * size * 3);
    const labels = new BigInt64Array(size * size);
    for (let y = 0; y < size; y++) {
      for (let x = 0; x < size; x++) {
        const l = label(x);
        labels[y * size + x] = BigInt(l);
        rgb.set(l === 1 ? colours[0] : l === 2 ? colours[1] : colours[2], (y * size + x) * 3);
      }
    }
    await sharp(rgb, { raw: { width: size, height: size, channels: 3 } }).jpeg({ quality: 100, chromaSubsampling: '4:4:4' }).toFile(join(dir, `${id}.jpg`));
    const ends = words.map((word) => ` ${caption} `.indexOf(` ${word} `) + word.length); // whole words
    const segments = [
      { id: 1, bbox: [0, 0, size, 2 * q], end: ends[0], coco_label: 'person' },
      { id: 2, bbox: [0, 2 * q, size, 3 * q], end: ends[1], coco_label: 'person' },
    ];
    writeFileSync(join(dir, `${id}.json`), JSON.stringify({ caption, segments }));
    writeFileSync(join(dir, `${id}.npy`), npyBytes('<i8', [size, size], new Uint8Array(labels.buffer)));
  }
  writeFileSync(join(root, 'image_ids_train.txt'), samples.map((s) => s.id).join('\n') + '\n');
}
