// `moa world --out DIR --images N --seed S`: writes the synthetic world (people and pets in
// scenes, exact masks, captions, identities, references) as an FFHQ-wild folder.
import { Command } from 'commander';
import { writeWorld, type WorldSummary } from '../world/write.js';
import { integer, number } from './numbers.js';
import { interruptible } from './interrupt.js';
import { progressReporter, type ProgressReporter } from './progress.js';

interface WorldFlags {
  out: string;
  images: number;
  seed: number;
  size: number;
  identities: number;
  heldOut: number;
  force?: boolean;
  workers?: number;
  json?: boolean;
  quiet?: boolean;
}

function formatSummary(s: WorldSummary): string {
  const m = s.manifest;
  const c = m.counts!;
  const lines = [
    `world in ${s.out}: ${m.images} images of ${m.size}×${m.size} px (train ${c.trainImages}, test ${c.testImages}), ${m.identities} identities (train ${c.trainIdentities}, held out ${c.testIdentities})`,
    `subjects: ${Object.entries(c.subjects)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ')}`,
  ];
  if (s.rendered > 0) lines.push(`rendered ${s.rendered} images in ${s.seconds.toFixed(1)} s (${s.imagesPerSecond.toFixed(0)} images/s on ${s.workers} threads)${s.kept > 0 ? `; kept ${s.kept} from an earlier run` : ''}`);
  else lines.push('already complete: nothing to do');
  return lines.join('\n');
}

export function worldCommand(): Command {
  return new Command('world')
    .description('write the synthetic world: people and pets in scenes with exact masks, captions and identities, as an FFHQ-wild folder for `moa train`')
    .requiredOption('--out <dir>', 'folder to write (made if missing; an interrupted write in it is resumed)')
    .requiredOption('--images <n>', 'number of images, train and test together', integer('--images'))
    .requiredOption('--seed <n>', 'seed: the same seed and options give byte-identical files', integer('--seed'))
    .option('--size <px>', 'image side in pixels', integer('--size'), 128)
    .option('--identities <n>', 'number of identities (people and pets)', integer('--identities'), 1000)
    .option('--held-out <fraction>', 'fraction of identities (and images) held out for testing, with unseen caption templates', number('--held-out'), 0.2)
    .option('--force', 'replace a different world already in --out')
    .option('--workers <n>', 'worker threads (default: twice the CPU count, 2 to 8); the files do not depend on it', integer('--workers'))
    .option('--json', 'print the summary as JSON')
    .option('--quiet', 'no progress output')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  $ moa world --out world --images 20000 --seed 1\n' +
        '  $ moa world --out world-small --images 500 --seed 7 --size 64 --identities 200 --held-out 0.25\n' +
        '  $ moa world --out world --images 20000 --seed 1 --json | jq .imagesPerSecond\n' +
        '\nLayout: world.json, identities.json, references/<identity>.png, image_ids_train.txt,\n' +
        'image_ids_test.txt, and <id[0:5]>/<id>.jpg|.json|.npy (see docs/world.md).\n' +
        'Train with `dataRoot: world` in the training config; held-out images are in image_ids_test.txt.',
    )
    .action(async (flags: WorldFlags) => {
      const reporters: Record<string, ProgressReporter> = {};
      const shown: { reporter: ProgressReporter | null } = { reporter: null };
      try {
        const summary = await interruptible((signal) =>
          writeWorld({
            out: flags.out,
            images: flags.images,
            seed: flags.seed,
            size: flags.size,
            identities: flags.identities,
            heldOutFraction: flags.heldOut,
            force: flags.force,
            workers: flags.workers,
            signal,
            onProgress: ({ phase, done, total }) => {
              const reporter = (reporters[phase] ??= progressReporter(phase, flags.quiet || flags.json));
              if (shown.reporter !== reporter) shown.reporter?.stop();
              shown.reporter = reporter;
              reporter.update(done, total);
            },
          }),
        );
        shown.reporter?.stop();
        shown.reporter = null;
        console.log(flags.json ? JSON.stringify(summary, null, 2) : formatSummary(summary));
      } catch (error) {
        if (error instanceof Error && error.name === 'AbortError') console.error(`moa: ${error.message}`);
        throw error;
      } finally {
        shown.reporter?.stop();
      }
    });
}
