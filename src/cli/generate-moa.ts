// `moa generate --moa ...` and `moa maps`: personalized generation from the command line, with
// subjects read from image files and, when asked, routing maps written over the images.
import { writePng } from '../io/image.js';
import { writeMaps } from '../pipelines/maps.js';
import { disposeResult, generatePersonalized, type PersonalizedParameters } from '../pipelines/personalize.js';
import { outputPaths, pngText } from './output.js';
import { describeSubjects, ensureParent, type ModelFlags, openSession, readSubjects, samplingOptions, type SamplingFlags, type SubjectFlags, subjectOptions, withProgress } from './personal.js';

export interface PersonalGenerateFlags extends ModelFlags, SamplingFlags, SubjectFlags {
  batch: number;
  maps?: string;
  out?: string;
  json?: boolean;
}

/** The record of a personalized image: the settings, the MoA file and each subject's word, token and files. */
export function personalRecord(parameters: PersonalizedParameters, flags: ModelFlags & SubjectFlags) {
  const files = describeSubjects(flags.subject);
  return {
    ...parameters,
    moa: flags.moa,
    subjects: parameters.subjects.map((s, i) => ({ ...s, ...files[i] })),
  };
}

/** Generates with MoA; writes the images to flags.out (unless mapsOnly) and the maps to flags.maps. */
export async function generateWithMoA(flags: PersonalGenerateFlags, { mapsOnly = false } = {}): Promise<void> {
  // Images first: an unreadable reference fails before a model is loaded.
  const subjects = await readSubjects(flags.subject ?? []);
  try {
    const session = openSession(flags, { needsEncoder: subjects.inputs.length > 0 });
    try {
      const result = await withProgress('denoising', flags.json, (signal, onProgress) =>
        generatePersonalized(session.sd, session.moa!, {
          ...samplingOptions(flags),
          batch: flags.batch,
          subjects: subjects.inputs,
          ...subjectOptions(flags),
          signal,
          onProgress,
        }),
      );
      const record = { ...personalRecord(result.parameters, flags), precision: session.precision };
      try {
        const files = mapsOnly ? [] : outputPaths(flags.out ?? 'moa.png', result.images.length);
        if (files.length) ensureParent(files[0]!);
        for (const [i, image] of result.images.entries()) {
          if (!mapsOnly) await writePng(files[i]!, image, pngText({ ...record, seed: record.seed + i, batch: 1 }));
        }
        // writeMaps makes its folder.
        const maps = flags.maps !== undefined && result.maps ? await writeMaps(flags.maps, result.images, result.maps) : [];
        if (flags.json) console.log(JSON.stringify({ ...record, files, maps }, null, 2));
        else {
          if (files.length) console.log(`wrote ${files.join(', ')} (seed ${record.seed}, ${session.precision})`);
          if (maps.length) console.log(`wrote ${maps.length} maps into ${flags.maps}`);
        }
      } finally {
        disposeResult(result);
      }
    } finally {
      session.dispose();
    }
  } finally {
    subjects.dispose();
  }
}
