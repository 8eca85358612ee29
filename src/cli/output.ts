// Where generated images go and what their PNGs record.
import { basename, dirname, extname, join } from 'node:path';
import type { Precision } from '../pipelines/precision.js';
import type { GenerationParameters } from '../pipelines/text-to-image.js';

/** out.png for one image; out-1.png, out-2.png, ... for a batch. */
export function outputPaths(out: string, count: number): string[] {
  if (count === 1) return [out];
  const ext = extname(out) || '.png';
  const stem = basename(out, extname(out));
  return Array.from({ length: count }, (_, i) => join(dirname(out), `${stem}-${i + 1}${ext}`));
}

/** PNG text chunks: the complete settings as JSON under "parameters". */
export function pngText(parameters: GenerationParameters & { precision: Precision; index?: number } & Record<string, unknown>): Record<string, string> {
  return { parameters: JSON.stringify(parameters), Software: 'moa' };
}
