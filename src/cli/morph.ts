// `moa morph`: frames between two subjects, their embeddings interpolated, seed and prompt held.
import { basename, join } from 'node:path';
import { Command } from 'commander';
import { writePng } from '../io/image.js';
import { disposeMaps, writeMaps } from '../pipelines/maps.js';
import { morphSubjects } from '../pipelines/personalize.js';
import { personalRecord } from './generate-moa.js';
import { integer } from './numbers.js';
import { pngText } from './output.js';
import { addModelOptions, addSamplingOptions, addSubjectOptions, ensureDir, type ModelFlags, openSession, readSubjects, type SamplingFlags, type SubjectFlags, samplingOptions, subjectOptions, withProgress } from './personal.js';
import { parseReferences, type ReferenceSpec } from './subject-spec.js';

interface MorphFlags extends ModelFlags, SamplingFlags, SubjectFlags {
  word: string;
  from: ReferenceSpec[];
  to: ReferenceSpec[];
  frames: number;
  maps?: string;
  out: string;
  json?: boolean;
}

const references = (what: string) => (value: string) => parseReferences(value, what);

/** frame-000.png, frame-001.png, ... (zero-padded so they sort). */
export function framePaths(dir: string, frames: number): string[] {
  const width = Math.max(3, String(frames - 1).length);
  return Array.from({ length: frames }, (_, i) => join(dir, `frame-${String(i).padStart(width, '0')}.png`));
}

export function morphCommand(): Command {
  const command = new Command('morph').description("morph one subject into another: frames with the two subjects' embeddings interpolated, seed and prompt held");
  addSubjectOptions(addSamplingOptions(addModelOptions(command, { moa: 'required' })));
  return command
    .requiredOption('--word <word>', 'the word of the prompt the morphing subject is bound to')
    .requiredOption('--from <images>', 'reference images of the first subject (path[,path2...], each optionally path:mask.png)', references('--from'))
    .requiredOption('--to <images>', 'reference images of the second subject', references('--to'))
    .option('--frames <n>', 'frames, from the first subject (alpha 0) to the second (alpha 1)', integer('--frames'), 8)
    .option('--out <dir>', 'folder for frame-000.png, frame-001.png, ...', 'morph')
    .option('--maps <dir>', "also write each frame's routing and subject maps into <dir>/frame-000, ...")
    .option('--json', 'print the parameters and output files as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  $ moa morph --model ./sd15 --moa moa.safetensors --prompt "a portrait of a man" --word man --from alice.png --to bob.png --frames 12 --seed 3 --out morph/\n' +
        '  $ ffmpeg -framerate 6 -i morph/frame-%03d.png morph.gif   # the frames as an animation\n' +
        '\n--subject binds other subjects, which stay fixed across the frames.',
    )
    .action(async (flags: MorphFlags) => {
      const others = await readSubjects(flags.subject ?? []);
      const ends = await readSubjects([
        { word: flags.word, references: flags.from },
        { word: flags.word, references: flags.to },
      ]);
      try {
        const [from, to] = [ends.inputs[0]!, ends.inputs[1]!];
        const session = openSession(flags, { needsEncoder: true });
        try {
          const { frames, parameters } = await withProgress('morphing', flags.json, (signal, onProgress) =>
            morphSubjects(session.sd, session.moa!, {
              ...samplingOptions(flags),
              subjects: others.inputs,
              word: flags.word,
              from,
              to,
              frames: flags.frames,
              ...subjectOptions(flags),
              signal,
              onProgress,
            }),
          );
          try {
            ensureDir(flags.out);
            const files = framePaths(flags.out, frames.length);
            const record = { ...personalRecord(parameters, flags), precision: session.precision, morph: { word: flags.word, from: flags.from, to: flags.to, frames: flags.frames } };
            const maps: string[] = [];
            for (const [i, frame] of frames.entries()) {
              await writePng(files[i]!, frame.image, pngText({ ...record, alpha: frame.alpha }));
              if (flags.maps !== undefined && frame.maps) maps.push(...(await writeMaps(join(flags.maps, basename(files[i]!, '.png')), [frame.image], frame.maps)));
            }
            if (flags.json) console.log(JSON.stringify({ ...record, frames: frames.map((f, i) => ({ alpha: f.alpha, file: files[i] })), maps }, null, 2));
            else console.log(`wrote ${files.length} frames into ${flags.out} (seed ${record.seed}, ${session.precision})`);
          } finally {
            for (const f of frames) {
              f.image.dispose();
              if (f.maps) disposeMaps(f.maps);
            }
          }
        } finally {
          session.dispose();
        }
      } finally {
        others.dispose();
        ends.dispose();
      }
    });
}
