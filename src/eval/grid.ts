// The eval's picture grid, its columns named in a strip above. One row per case: its references
// (up to four), then each variant's generation (the order of the report's variants), then MoA's
// mean personal routing over its image. One row per swap: the two references, then MoA's image
// with each, then the change map (dark: unchanged, blue: the subjects' region, yellow: changed
// inside it, red: changed outside).
import sharp from 'sharp';
import { writeFileAtomically } from '../io/atomic.js';
import { overlayHeatmap } from '../io/heatmap.js';
import { encodePng } from '../io/image.js';
import { addPngText } from '../io/png-text.js';
import { full, tensor } from '../tensor/create.js';
import { interpolate } from '../tensor/functional.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';
import type { EvalImages } from './evaluate.js';
import type { VariantName } from './report.js';

const GUTTER = 4;
const BACKGROUND = 0.92;

/** The change map of a swap: an RGB image [3, S, S] in [0, 1]. */
export function changeMap(changed: Uint8Array, region: Uint8Array, size: number): Tensor {
  const rgb = new Float32Array(3 * size * size);
  const plane = size * size;
  for (let i = 0; i < plane; i++) {
    const colour = changed[i] ? (region[i] ? [1, 0.9, 0.2] : [1, 0.2, 0.2]) : region[i] ? [0.2, 0.3, 0.6] : [0.15, 0.15, 0.15];
    for (let c = 0; c < 3; c++) rgb[c * plane + i] = colour[c]!;
  }
  return tensor(rgb, { shape: [3, size, size] });
}

/** An image [3, h, w] resized to a cell [3, side, side] (crisp when enlarged, antialiased when shrunk). */
function cell(image: Tensor, side: number): Tensor {
  return tidy(() => {
    const x = image.float().reshape(1, 3, image.size(-2), image.size(-1));
    const enlarge = x.size(2) <= side && x.size(3) <= side;
    const resized = interpolate(x, enlarge && side % x.size(2) === 0 ? { size: [side, side], mode: 'nearest' } : { size: [side, side], mode: 'bilinear', antialias: !enlarge });
    return resized.clamp(0, 1).reshape(3, side, side);
  });
}

export interface GridLayout {
  columns: string[];
  rows: string[];
}

/** Builds the grid [3, H, W] from an eval's images; `variants` in report order. */
export function buildGrid(images: EvalImages, variants: readonly VariantName[], prompts: readonly string[], cellSize = 128): { grid: Tensor; layout: GridLayout } {
  const columns = ['reference 1', 'reference 2', 'reference 3', 'reference 4', ...variants, 'moa routing (r1)'];
  const rows: (Tensor | null)[][] = [];
  const names: string[] = [];
  const owned: Tensor[] = [];
  try {
    images.references.forEach((refs, i) => {
      const row: (Tensor | null)[] = [0, 1, 2, 3].map((k) => refs[k] ?? null);
      for (const v of variants) row.push(images.generations[v]?.[i] ?? null);
      const moa = images.generations.moa?.[i];
      const map = images.routing[i];
      if (moa && map) {
        const overlay = overlayHeatmap(moa, map);
        owned.push(overlay);
        row.push(overlay);
      } else row.push(null);
      rows.push(row);
      names.push(`case ${i}: ${prompts[i] ?? ''}`);
    });
    images.swaps.forEach((swap, i) => {
      if (!swap) return;
      const change = changeMap(swap.changed, swap.region, swap.size);
      owned.push(change);
      rows.push([images.references[i]![0]!, swap.reference, null, null, images.generations.moa?.[i] ?? null, swap.image, change]);
      names.push(`swap of case ${i}: references, MoA with each, change map`);
    });
    const width = columns.length * (cellSize + GUTTER) + GUTTER;
    const height = rows.length * (cellSize + GUTTER) + GUTTER;
    const grid = full([3, height, width], BACKGROUND);
    try {
      rows.forEach((row, r) =>
        row.forEach((image, c) => {
          if (!image) return;
          tidy(() => {
            const target = grid.narrow(1, GUTTER + r * (cellSize + GUTTER), cellSize).narrow(2, GUTTER + c * (cellSize + GUTTER), cellSize);
            target.copy_(cell(image, cellSize));
          });
        }),
      );
    } catch (error) {
      grid.dispose();
      throw error;
    }
    return { grid, layout: { columns, rows: names } };
  } finally {
    owned.forEach((t) => t.dispose());
  }
}

/** Height of the strip above the grid that names its columns. */
export const HEADER = 24;

const escapeXml = (text: string) => text.replace(/[<>&"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;' })[c]!);

/** The grid as a PNG with each column's name above it (drawn by sharp from SVG). */
async function labelledPng(grid: Tensor, columns: readonly string[], cellSize: number): Promise<Buffer> {
  const width = grid.size(2);
  const labels = columns.map((name, c) => `<text x="${GUTTER + c * (cellSize + GUTTER) + cellSize / 2}" y="${HEADER - 7}" text-anchor="middle">${escapeXml(name)}</text>`);
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${HEADER}"><style>text { font: 13px sans-serif; fill: #333; }</style>${labels.join('')}</svg>`;
  const grey = Math.round(BACKGROUND * 255);
  return sharp(await encodePng(grid))
    .extend({ top: HEADER, background: { r: grey, g: grey, b: grey } })
    .composite([{ input: Buffer.from(svg), top: 0, left: 0 }])
    .png()
    .toBuffer();
}

/** Writes the grid as a PNG (atomically), its columns named above it; returns its layout. */
export async function writeGrid(path: string, images: EvalImages, variants: readonly VariantName[], prompts: readonly string[], cellSize = 128): Promise<GridLayout> {
  const { grid, layout } = buildGrid(images, variants, prompts, cellSize);
  try {
    const png = await labelledPng(grid, layout.columns, cellSize);
    writeFileAtomically(path, addPngText(png, { Software: 'moa', layout: JSON.stringify(layout) }));
  } finally {
    grid.dispose();
  }
  return layout;
}
