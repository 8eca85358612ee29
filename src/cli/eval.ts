// `moa eval`: scores a MoA model on held-out identities of its world in unseen captions, with
// judges trained on rendered images (identity, context, swap, prior, routing); writes a JSON
// report and a picture grid. `moa eval train-judges` trains those judges, `moa eval measure-judges`
// measures them.
import { join } from 'node:path';
import { Command, InvalidArgumentError, Option } from 'commander';
import { writeFileAtomically } from '../io/atomic.js';
import { cpuHasFastBf16 } from '../pipelines/precision.js';
import { SUBJECT_GUIDANCE_AREAS, type SubjectGuidanceArea } from '../pipelines/guidance.js';
import { SCHEDULER_NAMES, type SchedulerName } from '../schedulers/index.js';
import { evaluate } from '../eval/evaluate.js';
import { writeGrid } from '../eval/grid.js';
import { defaultJudgesDir, Judges } from '../eval/judges.js';
import { formatReport } from '../eval/report.js';
import { measureJudges, type JudgeAccuracy } from '../eval/accuracy.js';
import { HELD_OUT_INDEX } from '../eval/judge-data.js';
import { DEFAULT_STEPS, trainJudges, type TrainJudgesProgress } from '../eval/train-judges.js';
import { noGrad } from '../tensor/autograd.js';
import { tidy } from '../tensor/scope.js';
import { openStableDiffusion } from '../pipelines/load.js';
import { disposeStableDiffusion } from '../pipelines/stable-diffusion.js';
import { DEFAULT_WORLD, readWorldSettings } from '../eval/world-settings.js';
import { interruptible } from './interrupt.js';
import { integer, number } from './numbers.js';
import { addModelOptions, ensureDir, MODEL_GUIDANCE_HELP, type ModelFlags, openSession } from './personal.js';
import { progressReporter, type ProgressReporter } from './progress.js';

interface EvalFlags extends ModelFlags {
  ablationMoa?: string;
  judges?: string;
  world?: string;
  prompts: number;
  subjects: number[];
  swaps: number;
  steps: number;
  guidance?: number;
  subjectGuidance?: number;
  subjectGuidanceArea: SubjectGuidanceArea;
  strength: number;
  scheduler: SchedulerName;
  seed: number;
  out: string;
  json?: boolean;
}

interface TrainJudgesFlags {
  out: string;
  images: number;
  references?: number;
  identities: number;
  steps?: number;
  seed: number;
  heldOut: number;
  precision: 'auto' | 'fp32' | 'bf16';
  json?: boolean;
}

const countList = (value: string) => {
  const counts = value.split(',').map((s) => Number(s.trim()));
  if (counts.length === 0 || counts.some((n) => !Number.isInteger(n) || n < 1 || n > 4)) throw new InvalidArgumentError('give subject counts from 1 to 4, separated by commas (e.g. 1,2,3,4).');
  return [...new Set(counts)].sort();
};

function runCommand(): Command {
  const command = new Command('run').description('score a MoA model (the default sub-command: `moa eval` runs it)');
  addModelOptions(command, { moa: 'required' });
  return command
    .option('--ablation-moa <file>', 'also score these MoA weights for the same base model (e.g. trained without the router loss)')
    .option('--judges <dir>', 'judges folder (config.json + judges.safetensors; default: the shipped models/judges)')
    .option('--world <dir>', `the world the model was trained on (its world.json); default: seed ${DEFAULT_WORLD.seed}, ${DEFAULT_WORLD.identities} identities, ${DEFAULT_WORLD.heldOutFraction} held out, ${DEFAULT_WORLD.size} px`)
    .option('--prompts <n>', 'prompts per subject count', integer('--prompts'), 3)
    .addOption(new Option('--subjects <counts>', 'subject counts to test, comma-separated').argParser(countList).default([1, 2, 3, 4], '1,2,3,4'))
    .option('--swaps <n>', 'prompts per subject count that also get a subject swap', integer('--swaps'), 4)
    .option('--steps <n>', 'denoising steps', integer('--steps'), 20)
    .option('--guidance <scale>', `classifier-free guidance scale (${MODEL_GUIDANCE_HELP})`, number('--guidance'))
    .option('--subject-guidance <scale>', "the subjects' own guidance scale (default: --guidance's)", number('--subject-guidance'))
    .addOption(new Option('--subject-guidance-area <area>', "where the subjects' guidance applies: the whole image, or where the routers send pixels to the personal branch").choices(SUBJECT_GUIDANCE_AREAS).default('image'))
    .option('--strength <s>', 'scale on the personal routing: 0 = base model, 1 = as trained, >1 stronger', number('--strength'), 1)
    .addOption(new Option('--scheduler <name>', 'sampler').choices(SCHEDULER_NAMES).default('dpmpp-2m'))
    .option('--seed <n>', 'seeds the prompts, identities and generation seeds', integer('--seed'), 0)
    .option('--out <dir>', 'where report.json and grid.png go', 'eval')
    .option('--json', 'print the report as JSON')
    .action(async (flags: EvalFlags) => {
      if (flags.prompts < 1) throw new InvalidArgumentError('--prompts must be at least 1');
      const world = flags.world ? readWorldSettings(flags.world) : DEFAULT_WORLD;
      const judgesDir = flags.judges ?? defaultJudgesDir();
      const judges = Judges.open(judgesDir);
      try {
        const session = openSession(flags, { needsEncoder: true });
        try {
          const progress = progressReporter('eval', flags.json);
          const { report, images } = await interruptible((signal) =>
            evaluate(
              { sd: session.sd, moa: session.moa!, imageEncoder: session.imageEncoder },
              {
                judges,
                world,
                prompts: flags.prompts,
                counts: flags.subjects,
                swapsPerCount: flags.swaps,
                steps: flags.steps,
                guidance: flags.guidance,
                subjectGuidance: flags.subjectGuidance,
                subjectGuidanceArea: flags.subjectGuidanceArea,
                strength: flags.strength,
                scheduler: flags.scheduler,
                seed: flags.seed,
                ablationMoa: flags.ablationMoa ?? null,
                describe: { model: flags.model, moa: flags.moa, judges: judgesDir, precision: session.precision, device: flags.device },
                onProgress: (done, total, what) => progress.update(done, total, what),
                signal,
              },
            ).finally(() => progress.stop()),
          );
          try {
            ensureDir(flags.out);
            const files = { report: join(flags.out, 'report.json'), grid: join(flags.out, 'grid.png') };
            const layout = await writeGrid(files.grid, images, Object.keys(report.variants) as never, report.cases.map((c) => c.prompt));
            const full = { ...report, grid: layout, files };
            writeFileAtomically(files.report, Buffer.from(JSON.stringify(full, null, 2) + '\n'));
            console.log(flags.json ? JSON.stringify(full, null, 2) : formatReport(full));
          } finally {
            images.dispose();
          }
        } finally {
          session.dispose();
        }
      } finally {
        judges.dispose();
      }
    });
}

function trainJudgesCommand(): Command {
  return new Command('train-judges')
    .description('train the judges on rendered world images (never on generated ones) and report their held-out accuracy')
    .requiredOption('--out <dir>', 'folder for config.json and judges.safetensors')
    .option('--images <n>', 'rendered scenes to train on', integer('--images'), 16000)
    .option('--references <n>', 'rendered references to train on (default: images / 4)', integer('--references'))
    .option('--identities <n>', 'identities drawn for the judges (a fifth of each class held out)', integer('--identities'), 3000)
    .option('--steps <n>', `optimizer steps of each judge (default: ${Object.entries(DEFAULT_STEPS).map(([k, v]) => `${k} ${v}`).join(', ')})`, integer('--steps'))
    .option('--held-out <n>', 'held-out scenes to measure the judges on', integer('--held-out'), 300)
    .option('--seed <n>', 'seeds the data, weights, batches and augmentation', integer('--seed'), 0)
    .addOption(new Option('--precision <p>', 'auto: bf16 autocast on CPUs with bf16 units').choices(['auto', 'fp32', 'bf16']).default('auto'))
    .option('--json', 'print the held-out accuracy as JSON')
    .addHelpText('after', '\nExamples:\n  $ moa eval train-judges --out models/judges\n  $ moa eval train-judges --out /tmp/judges --images 500 --steps 100 --json')
    .action(async (flags: TrainJudgesFlags) => {
      const precision = flags.precision === 'auto' ? (cpuHasFastBf16() ? 'bf16' : 'fp32') : flags.precision;
      const reporters = new Map<string, ProgressReporter>();
      let shown: ProgressReporter | null = null;
      const onProgress = (p: TrainJudgesProgress) => {
        let reporter = reporters.get(p.phase);
        if (!reporter) reporters.set(p.phase, (reporter = progressReporter(p.phase, flags.json)));
        if (shown !== reporter) shown?.stop();
        shown = reporter;
        reporter.update(p.done, p.total, p.loss === undefined ? '' : `loss ${p.loss.toFixed(4)}`);
      };
      const result = await interruptible(async (signal) => {
        try {
          return await trainJudges({ seed: flags.seed, images: flags.images, references: flags.references, identities: flags.identities, steps: flags.steps, heldOutImages: flags.heldOut, precision, onProgress, signal });
        } finally {
          (shown as ProgressReporter | null)?.stop();
        }
      });
      try {
        result.judges.save(flags.out);
        const h = result.heldOut;
        if (flags.json) console.log(JSON.stringify({ out: flags.out, seconds: result.seconds, heldOut: h }, null, 2));
        else console.log([`judges in ${flags.out} (${Object.entries(result.seconds).map(([k, v]) => `${k} ${v.toFixed(0)} s`).join(', ')})`, ...accuracyLines(h)].join('\n'));
      } finally {
        result.judges.dispose();
      }
    });
}

function measureJudgesCommand(): Command {
  return new Command('measure-judges')
    .description("measure judges on freshly rendered held-out scenes and references (as train-judges does after training), with each subject count scored the way `moa eval` scores generations: what a perfect generator would reach")
    .option('--judges <dir>', 'judges folder (default: the shipped models/judges)')
    .option('--held-out <n>', 'held-out scenes', integer('--held-out'), 300)
    .option('--references <n>', 'held-out references', integer('--references'), 150)
    .option('--through-vae <model>', "pass each scene through this model's VAE (encode, posterior mean, decode) first: the ceiling that VAE leaves")
    .option('--json', 'print the accuracy as JSON')
    .addHelpText('after', '\nExamples:\n  $ moa eval measure-judges\n  $ moa eval measure-judges --through-vae models/world\n  $ moa eval measure-judges --judges /tmp/judges --held-out 1000 --json')
    .action((flags: { judges?: string; heldOut: number; references: number; throughVae?: string; json?: boolean }) => {
      const judges = Judges.open(flags.judges ?? defaultJudgesDir());
      const sd = flags.throughVae === undefined ? null : openStableDiffusion(flags.throughVae);
      try {
        const reporter = progressReporter('held-out', flags.json);
        const { seed, identities } = judges.config.training ?? {};
        if (typeof seed !== 'number' || typeof identities !== 'number')
          throw new Error(`${flags.judges ?? defaultJudgesDir()}/config.json has no training record (seed, identities), so its held-out identities are unknown; measure judges that \`moa eval train-judges\` wrote`);
        const h = noGrad(() =>
          measureJudges(judges, { seed, identities, images: flags.heldOut, references: flags.references, firstIndex: HELD_OUT_INDEX, transform: sd ? (image) => tidy(() => sd.vae.reconstruct(image.unsqueeze(0).mul(2).sub(1)).float().add(1).div(2).clamp(0, 1).squeeze(0)) : undefined, onProgress: (done, total) => reporter.update(done, total, '') }),
        );
        reporter.stop();
        console.log(flags.json ? JSON.stringify(h, null, 2) : accuracyLines(h).join('\n'));
      } finally {
        judges.dispose();
        if (sd) disposeStableDiffusion(sd);
      }
    });
}

/** The held-out accuracy of judges, as lines for the terminal. */
function accuracyLines(h: JudgeAccuracy): string[] {
  const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
  const attrs = Object.entries(h.attributes.endToEnd)
    .map(([k, v]) => `${k} ${pct(v)}`)
    .join(', ');
  const counts = Object.entries(h.asEvaluated)
    .map(([n, c]) => `${n}: found ${pct(c.found)}, identity match ${pct(c.identityMatch)} (${c.subjects})`)
    .join('; ');
  return [
    `held out: ${h.images} scenes, ${h.references} references; subjects ${h.subjects.count}`,
    `segmenter: subject class ${pct(h.subjects.classAccuracy)}, found ${pct(h.subjects.found)}, subject pixels ${pct(h.segmentation.subjectPixelAccuracy)}, mean IoU ${h.segmentation.meanIoU.toFixed(3)}`,
    `attributes (end to end): ${attrs}`,
    `identity match: ${pct(h.identityMatch.reliable)} on reliable attributes (${h.reliableAttributes.join(', ')}), ${pct(h.identityMatch.all)} on all`,
    `scored as moa eval scores generations, by subjects per scene: ${counts}`,
    `scene: kind ${pct(h.scene.kind)}, time ${pct(h.scene.time)}`,
  ];
}

/** `moa eval` with its sub-commands; settings given to it (exit handling, output) reach them too. */
class EvalCommand extends Command {
  override copyInheritedSettings(source: Command): this {
    super.copyInheritedSettings(source);
    for (const sub of this.commands) sub.copyInheritedSettings(source);
    return this;
  }
}

export function evalCommand(): Command {
  const command = new EvalCommand('eval')
    .description('score a MoA model with judges trained on rendered images: identity, context, swap, prior, routing (`moa eval run --help` for the options)')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  $ moa eval                                      # the shipped model and judges; writes eval/report.json and eval/grid.png\n' +
        '  $ moa eval --model ./world-model --moa moa.safetensors --ablation-moa no-router-loss.safetensors --prompts 5 --json\n' +
        '  $ moa eval train-judges --out models/judges\n' +
        '  $ moa eval measure-judges                      # the shipped judges on fresh held-out renders',
    );
  command.addCommand(runCommand(), { isDefault: true });
  command.addCommand(trainJudgesCommand());
  command.addCommand(measureJudgesCommand());
  return command;
}
