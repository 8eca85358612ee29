// Runs one job in the worker with the library's pipelines and writes what it made into the job's
// folder: result PNGs (their parameters in a text chunk) and, when asked, the routing maps.
import { join, relative } from 'node:path';
import { pngText } from '../../cli/output.js';
import { readSubjects, type Session } from '../../cli/personal.js';
import { readImage, writePng } from '../../io/image.js';
import { editRealImage } from '../../pipelines/edit.js';
import { disposeMaps, fileSafe, type GenerationMaps, writeMaps } from '../../pipelines/maps.js';
import { disposeResult, generatePersonalized, morphSubjects, swapSubjects } from '../../pipelines/personalize.js';
import { generate, type GenerationParameters, type Progress } from '../../pipelines/text-to-image.js';
import type { Tensor } from '../../tensor/tensor.js';
import type { JobOutput, MapFile, ResultFile, WorkerJob, WorkerSubject } from './protocol.js';

type Subjects = Awaited<ReturnType<typeof readSubjects>>;

const specs = (subjects: readonly WorkerSubject[]) => subjects.map((s) => ({ word: s.word, references: s.images.map((image) => ({ image })) }));

/** The map files writeMaps wrote for `images`, described (its order: layers, mean, subjects; image by image). */
function describeMaps(job: WorkerJob, written: readonly string[], images: number, maps: GenerationMaps, firstResult: number): MapFile[] {
  const kinds: Omit<MapFile, 'result' | 'file'>[] = [
    ...maps.routing.map((r) => ({ kind: 'routing' as const, layer: r.layer, layerKind: r.kind })),
    { kind: 'routing-mean' as const },
    ...maps.subjects.map((s) => ({ kind: 'subject' as const, word: s.word })),
  ];
  if (written.length !== kinds.length * images) throw new Error(`internal: ${written.length} map files for ${images} image(s) of ${kinds.length} maps`);
  return written.map((path, n) => {
    const kind = kinds[n % kinds.length]!;
    if (!path.endsWith(kind.kind === 'subject' ? `subject-${fileSafe(kind.word!)}.png` : kind.kind === 'routing' ? `routing-${fileSafe(kind.layer!)}.png` : 'routing-mean.png')) {
      throw new Error(`internal: map file ${path} is not the ${kind.kind} map expected`);
    }
    return { result: firstResult + Math.floor(n / kinds.length), ...kind, file: relative(job.dir, path) };
  });
}

export interface RunHooks {
  signal: AbortSignal;
  onProgress(step: number, total: number): void;
  precision: string;
  /** The MoA weights file, for the record (null without MoA). */
  moa: string | null;
}

/** Runs `job` on the session's model; returns what it wrote. */
export async function runJob(session: Session, job: WorkerJob, hooks: RunHooks): Promise<JobOutput> {
  const { sd, moa } = session;
  let step = 0;
  // Every pipeline calls onProgress once per denoising step; the job's total spans all of them.
  const onProgress = (_: Progress) => hooks.onProgress(++step, job.total);
  const sampling = {
    prompt: job.prompt,
    negativePrompt: job.negativePrompt,
    steps: job.steps,
    guidance: job.guidance,
    seed: job.seed,
    width: job.width,
    height: job.height,
    scheduler: job.scheduler,
    signal: hooks.signal,
    onProgress,
  };
  const personal = { subjectGuidance: job.subjectGuidance, subjectGuidanceArea: job.subjectGuidanceArea, strength: job.strength, subjectStart: job.subjectStart, recordMaps: job.maps };
  const results: ResultFile[] = [];
  const maps: MapFile[] = [];
  const record = (parameters: GenerationParameters, extra: Record<string, unknown> = {}) => ({ ...parameters, ...extra, moa: hooks.moa, precision: hooks.precision as never });

  async function writeResult(image: Tensor, parameters: GenerationParameters, result: Omit<ResultFile, 'file' | 'width' | 'height'>): Promise<number> {
    const index = results.length;
    const file = `result-${index}.png`;
    await writePng(join(job.dir, file), image, pngText(record(parameters, { seed: result.seed, batch: 1, ...(result.alpha !== undefined ? { alpha: result.alpha } : {}), request: job.request })));
    results.push({ file, width: image.shape.at(-1)!, height: image.shape.at(-2)!, ...result });
    return index;
  }
  async function writeResultMaps(images: readonly Tensor[], generated: GenerationMaps | undefined, first: number): Promise<void> {
    if (!generated) return;
    const folder = join(job.dir, 'maps', String(first));
    maps.push(...describeMaps(job, await writeMaps(folder, images, generated), images.length, generated, first));
  }

  const base = await readSubjects(specs(job.subjects));
  try {
    if (!moa) {
      if (job.kind !== 'generate' || job.subjects.length || job.maps) throw new Error(`this server runs without MoA weights: ${job.kind} with subjects or maps needs them`);
      const result = await generate(sd, { ...sampling, batch: job.batch });
      try {
        for (const [i, image] of result.images.entries()) await writeResult(image, result.parameters, { label: `image ${i + 1}`, seed: job.seed + i });
        return { results, maps, generation: record(result.parameters) };
      } finally {
        result.images.forEach((t) => t.dispose());
      }
    }
    if (job.kind === 'generate') {
      const result = await generatePersonalized(sd, moa, { ...sampling, ...personal, batch: job.batch, subjects: base.inputs });
      try {
        for (const [i, image] of result.images.entries()) await writeResult(image, result.parameters, { label: `image ${i + 1}`, seed: job.seed + i });
        await writeResultMaps(result.images, result.maps, 0);
        return { results, maps, generation: record(result.parameters) };
      } finally {
        disposeResult(result);
      }
    }
    if (job.kind === 'swap') {
      const variants: Subjects[] = [];
      try {
        for (const alternative of job.alternatives ?? []) variants.push(await readSubjects(specs(alternative)));
        const swapped = await swapSubjects(sd, moa, { ...sampling, ...personal, subjects: base.inputs, swaps: variants.map((v) => v.inputs) });
        try {
          for (const [i, r] of swapped.entries()) {
            const index = await writeResult(r.images[0]!, r.parameters, { label: i === 0 ? 'base' : `alternative ${i}`, seed: job.seed });
            await writeResultMaps(r.images, r.maps, index);
          }
          return { results, maps, generation: record(swapped[0]!.parameters) };
        } finally {
          swapped.forEach(disposeResult);
        }
      } finally {
        variants.forEach((v) => v.dispose());
      }
    }
    if (job.kind === 'morph') {
      const morph = job.morph!;
      const ends = await readSubjects(specs([{ word: morph.word, images: morph.from }, { word: morph.word, images: morph.to }]));
      try {
        const { frames, parameters } = await morphSubjects(sd, moa, { ...sampling, ...personal, subjects: base.inputs, word: morph.word, from: ends.inputs[0]!, to: ends.inputs[1]!, frames: morph.frames });
        try {
          for (const [i, frame] of frames.entries()) {
            const index = await writeResult(frame.image, parameters, { label: `frame ${i}`, seed: job.seed, alpha: frame.alpha });
            await writeResultMaps([frame.image], frame.maps, index);
          }
          return { results, maps, generation: record(parameters, { morph: { word: morph.word, frames: morph.frames } }) };
        } finally {
          for (const f of frames) {
            f.image.dispose();
            if (f.maps) disposeMaps(f.maps);
          }
        }
      } finally {
        ends.dispose();
      }
    }
    const edit = job.edit!;
    const photo = await readImage(edit.image);
    try {
      const result = await editRealImage(sd, moa, {
        image: photo,
        prompt: job.prompt,
        sourcePrompt: edit.sourcePrompt,
        negativePrompt: job.negativePrompt,
        steps: job.steps,
        guidance: job.guidance,
        seed: job.seed,
        subjects: base.inputs,
        ...personal,
        signal: hooks.signal,
        onProgress,
      });
      try {
        const index = await writeResult(result.images[0]!, result.parameters, { label: 'edit', seed: job.seed, latentDistance: result.latentDistance });
        await writeResultMaps(result.images, result.maps, index);
        return { results, maps, generation: record(result.parameters, { sourcePrompt: edit.sourcePrompt, latentDistance: result.latentDistance }) };
      } finally {
        disposeResult(result);
      }
    } finally {
      photo.dispose();
    }
  } finally {
    base.dispose();
  }
}
