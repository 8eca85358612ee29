// `moa swap`: subject swap with the context held — the base subjects and each variant from the
// same seed, prompt and settings, so only the swapped subjects change.
import { basename, dirname, extname, join } from 'node:path';
import { Command, InvalidArgumentError } from 'commander';
import { writePng } from '../io/image.js';
import { writeMaps } from '../pipelines/maps.js';
import { disposeResult, swapSubjects } from '../pipelines/personalize.js';
import { personalRecord } from './generate-moa.js';
import { pngText } from './output.js';
import { addModelOptions, addSamplingOptions, addSubjectOptions, ensureParent, type ModelFlags, openSession, readSubjects, type SamplingFlags, type SubjectFlags, samplingOptions, subjectOptions, withProgress } from './personal.js';
import { parseSubjectList, type SubjectSpec } from './subject-spec.js';

interface SwapFlags extends ModelFlags, SamplingFlags, SubjectFlags {
  swap: SubjectSpec[][];
  maps?: string;
  out: string;
  json?: boolean;
}

const collectSwaps = (value: string, previous: SubjectSpec[][] = []) => {
  const variant = parseSubjectList(value);
  if (!variant.length) throw new InvalidArgumentError(`'${value}' names no subject`);
  return [...previous, variant];
};

/** out.png → out-0.png (the base), out-1.png, ... (the variants). */
export function swapPaths(out: string, variants: number): string[] {
  const ext = extname(out) || '.png';
  const stem = basename(out, extname(out));
  return Array.from({ length: variants + 1 }, (_, i) => join(dirname(out), `${stem}-${i}${ext}`));
}

export function swapCommand(): Command {
  const command = new Command('swap').description('swap subjects with the context held: the same seed and prompt, other reference images');
  addSubjectOptions(addSamplingOptions(addModelOptions(command, { moa: 'required' })));
  return command
    .requiredOption('--swap <word=images>', "a variant: subjects that replace the base subjects of the same word (several joined by ';'); repeat for more variants", collectSwaps)
    .option('--out <file>', 'output PNGs: <out>-0.png is the base, <out>-1.png ... the variants', 'swap.png')
    .option('--maps <dir>', 'also write each image\'s routing and subject maps into <dir>/0, <dir>/1, ...')
    .option('--json', 'print the parameters and output files as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  $ moa swap --model ./sd15 --moa moa.safetensors --prompt "a man hiking in the alps" --seed 7 \\\n' +
        '        --subject man=alice.png --swap man=bob.png --swap man=carol.png,carol2.png --out hike.png\n' +
        '  $ moa swap --model ./sd15 --moa moa.safetensors --prompt "a man and a woman at a cafe" --subject man=a.png --subject woman=b.png \\\n' +
        '        --swap "man=c.png;woman=d.png" --out cafe.png --json',
    )
    .action(async (flags: SwapFlags) => {
      const base = await readSubjects(flags.subject ?? []);
      const variants: Awaited<ReturnType<typeof readSubjects>>[] = [];
      try {
        for (const specs of flags.swap) variants.push(await readSubjects(specs));
        const session = openSession(flags, { needsEncoder: true });
        try {
          const results = await withProgress('denoising', flags.json, (signal, onProgress) =>
            swapSubjects(session.sd, session.moa!, {
              ...samplingOptions(flags),
              subjects: base.inputs,
              swaps: variants.map((v) => v.inputs),
              ...subjectOptions(flags),
              signal,
              onProgress,
            }),
          );
          try {
            const files = swapPaths(flags.out, flags.swap.length);
            ensureParent(files[0]!);
            const records = results.map((r, i) => {
              // Each variant's subjects: the base specs with the swapped words replaced.
              const specs = (flags.subject ?? []).map((s) => flags.swap[i - 1]?.find((v) => v.word === s.word) ?? s);
              return { ...personalRecord(r.parameters, { ...flags, subject: specs }), precision: session.precision };
            });
            const maps: string[] = [];
            for (const [i, r] of results.entries()) {
              await writePng(files[i]!, r.images[0]!, pngText(records[i]!));
              if (flags.maps !== undefined && r.maps) maps.push(...(await writeMaps(join(flags.maps, String(i)), r.images, r.maps)));
            }
            if (flags.json) console.log(JSON.stringify({ seed: records[0]!.seed, files, maps, variants: records }, null, 2));
            else console.log(`wrote ${files.join(', ')} (seed ${records[0]!.seed}, ${session.precision})`);
          } finally {
            results.forEach(disposeResult);
          }
        } finally {
          session.dispose();
        }
      } finally {
        base.dispose();
        variants.forEach((v) => v.dispose());
      }
    });
}
