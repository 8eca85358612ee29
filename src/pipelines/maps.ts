// Routing and attention maps of a generation: a MoARecorder that averages what MoA layers report
// over the denoising steps, and writing the maps as heatmaps over the generated images.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { resizeMap, writeHeatmap, type HeatmapOptions } from '../io/heatmap.js';
import type { MoARecorder } from '../moa/types.js';
import { keep, tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

/** One layer's personal-routing weight r1, averaged over the recorded steps. */
export interface LayerRouting {
  layer: string;
  kind: 'self' | 'cross';
  /** [B, h, w] float32 in [0, 1], at the layer's own token grid. */
  map: Tensor;
}

/** What a generation recorded; every tensor is float32 on the CPU and owned by the caller. */
export interface GenerationMaps {
  /** Per MoA layer, in the order the layers first reported (forward order). */
  routing: LayerRouting[];
  /** r1 averaged over layers and steps, each layer's map resized to the latent grid: [B, h, w]. */
  routingMean: Tensor;
  /** Per subject: the attention its token receives, averaged over layers and steps, at the latent grid: [B, h, w]. */
  subjects: { word: string; map: Tensor }[];
}

interface Sum {
  sum: Tensor;
  count: number;
}

/**
 * Averages what MoA layers report. The UNet's batch may hold more rows than the images (the
 * unconditional half of guidance comes first): only rows [offset, offset + batch) are kept.
 */
export class MapRecorder implements MoARecorder {
  readonly #routing = new Map<string, Sum & { kind: 'self' | 'cross' }>();
  readonly #attention: Sum[] = [];
  #disposed = false;

  constructor(
    /** Words of the subjects, in binding order (the order subjectAttention reports them). */
    readonly words: readonly string[],
    /** [h, w] of the latents: mean maps are resized to it. */
    readonly latentSize: readonly [number, number],
    readonly batch: number,
    readonly offset = 0,
  ) {}

  // The maps handed in are this recorder's own (kept out of tidy scopes): always disposed here.
  routing(layer: string, kind: 'self' | 'cross', _size: readonly [number, number], r1: Tensor): void {
    try {
      tidy(() => {
        const rows = this.#rows(r1, `routing map of ${layer}`);
        const entry = this.#routing.get(layer);
        if (entry) this.#accumulate(entry, rows);
        else this.#routing.set(layer, { kind, sum: this.#start(rows), count: 1 });
      });
    } finally {
      r1.dispose();
    }
  }

  subjectAttention(layer: string, _size: readonly [number, number], maps: Tensor): void {
    try {
      tidy(() => {
        const rows = this.#rows(maps, `subject attention of ${layer}`);
        for (let s = 0; s < Math.min(this.words.length, rows.size(1)); s++) {
          // Layers differ in resolution: each map joins the sum at the latent grid.
          const map = resizeMap(rows.select(1, s), this.latentSize);
          const entry = this.#attention[s];
          if (entry) this.#accumulate(entry, map);
          else this.#attention[s] = { sum: this.#start(map), count: 1 };
        }
      });
    } finally {
      maps.dispose();
    }
  }

  /** The averages so far (new tensors on the CPU; the recorder keeps its sums until disposed). */
  maps(): GenerationMaps {
    if (this.#disposed) throw new Error('MapRecorder: maps() after dispose()');
    if (this.#routing.size === 0) throw new Error('no routing was recorded: the UNet has no MoA layers, or every step ran with the prior alone');
    return tidy(() => {
      const routing = [...this.#routing].map(([layer, { kind, sum, count }]) => ({ layer, kind, map: sum.div(count).cpu() }));
      const resized = routing.map((r) => resizeMap(r.map, this.latentSize));
      const routingMean = resized.reduce((a, b) => a.add(b)).div(resized.length);
      const subjects = this.words.map((word, s) => {
        const entry = this.#attention[s];
        return { word, map: entry ? entry.sum.div(entry.count).cpu() : routingMean.mul(0) };
      });
      return { routing, routingMean, subjects };
    });
  }

  dispose(): void {
    for (const { sum } of [...this.#routing.values(), ...this.#attention]) sum.dispose();
    this.#routing.clear();
    this.#attention.length = 0;
    this.#disposed = true;
  }

  /** This recorder's rows of a [rows, ...] map, detached float32 (recording never trains). */
  #rows(map: Tensor, what: string): Tensor {
    if (map.size(0) < this.offset + this.batch) throw new RangeError(`${what}: ${map.size(0)} rows, expected at least ${this.offset + this.batch}`);
    return map.detach().narrow(0, this.offset, this.batch).float();
  }

  // Sums outlive the scopes of the calls that start them (keep) and are updated in place.
  #start(map: Tensor): Tensor {
    return keep(map.clone());
  }
  #accumulate(entry: Sum, map: Tensor): void {
    entry.sum.add_(map);
    entry.count++;
  }
}

/** A file-name-safe form of a layer name or word. */
export function fileSafe(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]+/g, '_');
}

/** The files writeMaps writes for one image, relative to its folder. */
export function mapFileNames(maps: Pick<GenerationMaps, 'routing' | 'subjects'>): string[] {
  return [...maps.routing.map((r) => `routing-${fileSafe(r.layer)}.png`), 'routing-mean.png', ...maps.subjects.map((s) => `subject-${fileSafe(s.word)}.png`)];
}

export type WriteMapsOptions = HeatmapOptions;

/**
 * Writes each image's maps over it: `routing-<layer>.png` (r1 on its absolute scale, 0 = prior,
 * 1 = personal), `routing-mean.png`, and `subject-<word>.png` (attention scaled so its peak is
 * 1). One image goes straight into `dir`; a batch gets `dir/1/`, `dir/2/`, ...
 * Returns the paths written.
 */
export async function writeMaps(dir: string, images: readonly Tensor[], maps: GenerationMaps, options: WriteMapsOptions = {}): Promise<string[]> {
  const names = mapFileNames(maps);
  const written: string[] = [];
  for (const [i, image] of images.entries()) {
    const folder = images.length === 1 ? dir : join(dir, String(i + 1));
    if (!existsSync(folder)) mkdirSync(folder, { recursive: true });
    const row = (t: Tensor) => t.select(0, i);
    const layers = [...maps.routing.map((r) => r.map), maps.routingMean];
    let n = 0;
    for (const map of layers) {
      const m = row(map);
      try {
        await writeHeatmap(join(folder, names[n]!), image, m, options);
      } finally {
        m.dispose();
      }
      written.push(join(folder, names[n++]!));
    }
    for (const { map } of maps.subjects) {
      const peakScaled = tidy(() => {
        const m = row(map);
        const peak = m.max() as Tensor;
        return m.div(peak.clamp(1e-12));
      });
      try {
        await writeHeatmap(join(folder, names[n]!), image, peakScaled, options);
      } finally {
        peakScaled.dispose();
      }
      written.push(join(folder, names[n++]!));
    }
  }
  return written;
}

export function disposeMaps(maps: GenerationMaps): void {
  for (const r of maps.routing) r.map.dispose();
  maps.routingMean.dispose();
  for (const s of maps.subjects) s.map.dispose();
}
