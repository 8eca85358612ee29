// `moa edit`: real-image subject swap — the photo DDIM-inverted with the base model, regenerated
// with MoA and the new subjects.
import { Command } from 'commander';
import { readImage, writePng } from '../io/image.js';
import { editRealImage } from '../pipelines/edit.js';
import { writeMaps } from '../pipelines/maps.js';
import { disposeResult } from '../pipelines/personalize.js';
import { personalRecord } from './generate-moa.js';
import { pngText } from './output.js';
import { addModelOptions, addSamplingOptions, addSubjectOptions, ensureParent, type ModelFlags, openSession, readSubjects, type SamplingFlags, type SubjectFlags, subjectOptions, withProgress } from './personal.js';

interface EditFlags extends ModelFlags, Omit<SamplingFlags, 'seed' | 'width' | 'height' | 'scheduler'>, SubjectFlags {
  image: string;
  sourcePrompt?: string;
  maps?: string;
  out: string;
  json?: boolean;
}

export function editCommand(): Command {
  const command = new Command('edit').description('put new subjects into a real photo: DDIM inversion with the base model, then regeneration with MoA');
  addSubjectOptions(addSamplingOptions(addModelOptions(command, { moa: 'required' }), { steps: 50, guidance: 1, scheduler: null, seed: false }));
  return command
    .requiredOption('--image <photo>', "the photo (its sides multiples of the VAE's scale, 8 for SD)")
    .option('--source-prompt <text>', 'what the photo shows, for the inversion (default: --prompt)')
    .option('--maps <dir>', 'also write routing and subject-attention maps over the result into this folder')
    .option('--out <file>', 'output PNG', 'edit.png')
    .option('--json', 'print the parameters and output files as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  $ moa edit --model ./sd15 --moa moa.safetensors --image photo.png --prompt "a photo of a man on a beach" --subject man=bob.png --out bob-beach.png\n' +
        '  $ moa edit --model ./sd15 --moa moa.safetensors --image photo.png --prompt "a photo of a man on a beach"   # no subject: reconstructs the photo\n' +
        '\nGuidance defaults to 1: the inversion runs unguided, and guidance pulls the result away from the photo.',
    )
    .action(async (flags: EditFlags) => {
      const photo = await readImage(flags.image);
      const subjects = await readSubjects(flags.subject ?? []).catch((error: unknown) => {
        photo.dispose();
        throw error;
      });
      try {
        const session = openSession(flags, { needsEncoder: subjects.inputs.length > 0 });
        try {
          const result = await withProgress('inverting, then regenerating', flags.json, (signal, onProgress) =>
            editRealImage(session.sd, session.moa!, {
              image: photo,
              prompt: flags.prompt,
              sourcePrompt: flags.sourcePrompt,
              negativePrompt: flags.negative,
              steps: flags.steps,
              guidance: flags.guidance,
              subjects: subjects.inputs,
              ...subjectOptions(flags),
              signal,
              onProgress,
            }),
          );
          try {
            const record = { ...personalRecord(result.parameters, flags), precision: session.precision, image: flags.image, sourcePrompt: flags.sourcePrompt ?? flags.prompt, latentDistance: result.latentDistance };
            ensureParent(flags.out);
            await writePng(flags.out, result.images[0]!, pngText(record));
            // writeMaps makes its folder.
            const maps = flags.maps !== undefined && result.maps ? await writeMaps(flags.maps, result.images, result.maps) : [];
            if (flags.json) console.log(JSON.stringify({ ...record, files: [flags.out], maps }, null, 2));
            else console.log(`wrote ${flags.out} (mean latent distance from the photo ${result.latentDistance.toFixed(4)}, ${session.precision})`);
          } finally {
            disposeResult(result);
          }
        } finally {
          session.dispose();
        }
      } finally {
        photo.dispose();
        subjects.dispose();
      }
    });
}
