// `moa pretrain --config FILE [--stage vae|image-encoder|base|all] [--resume [CHECKPOINT]]`:
// trains a small text-to-image model from scratch on an FFHQ-wild folder.
import { Command, InvalidArgumentError } from 'commander';
import { checkDevice } from '../tensor/device.js';
import { readPretrainConfig, type StageName, STAGES } from '../train/pretrain/config.js';
import { pretrain, runStage } from '../train/pretrain/pretrain.js';
import type { StageRecord } from '../train/pretrain/runner.js';
import { interruptible } from './interrupt.js';
import { progressReporter, type ProgressReporter } from './progress.js';
import { formatDuration } from './train.js';

interface PretrainFlags {
  config: string;
  stage: StageName | 'all';
  resume?: string | boolean;
  device: string;
  quiet?: boolean;
}

function parseStage(value: string): StageName | 'all' {
  if (value === 'all' || (STAGES as readonly string[]).includes(value)) return value as StageName | 'all';
  throw new InvalidArgumentError(`expected one of ${[...STAGES, 'all'].join(', ')}`);
}

/** A step's progress note: loss, the stage's terms, learning rate, speed and (in plain logs) the ETA. */
function note(r: StageRecord, eta: number | null): string {
  const terms = Object.entries(r)
    .filter(([k]) => !['step', 'loss', 'lr', 'gradNorm', 'itPerSec'].includes(k))
    .map(([k, v]) => `${k} ${Math.abs(v) >= 1e-3 ? v.toFixed(4) : v.toExponential(2)}`);
  const rest = terms.length ? ` (${terms.join(', ')})` : '';
  return `loss ${r.loss.toFixed(4)}${rest} lr ${r.lr.toExponential(2)} ${r.itPerSec.toFixed(2)} it/s` + (eta === null ? '' : ` ETA ${formatDuration(eta)}`);
}

export function pretrainCommand(): Command {
  return new Command('pretrain')
    .description('train a small text-to-image model from scratch (VAE, image encoder, text encoder + UNet) on an FFHQ-wild folder; writes a diffusers folder')
    .requiredOption('--config <file>', 'pretraining config (.json, .yaml or .yml): data, model sizes, stages (see configs/world-base.yaml)')
    .option('--stage <stage>', `which stage: ${STAGES.join(', ')} or all (in that order)`, parseStage, 'all')
    .option('--resume [checkpoint]', 'continue: from a checkpoint of --stage, or (no file) each stage from its newest checkpoint, skipping finished stages (unless trained again and not finished yet)')
    .option('--device <device>', "'cpu' or 'cuda[:n]'", 'cpu')
    .option('--quiet', 'no progress output')
    .addHelpText('after', '\nExamples:\n  $ moa pretrain --config configs/world-base.yaml\n  $ moa pretrain --config configs/world-base.yaml --stage base --resume')
    .action(async (flags: PretrainFlags) => {
      const config = readPretrainConfig(flags.config);
      const device = checkDevice(flags.device);
      if (typeof flags.resume === 'string' && flags.stage === 'all') throw new Error('--resume with a checkpoint file needs --stage (the stage the checkpoint belongs to)');
      const withEta = !process.stderr.isTTY;
      const say = (text: string) => {
        if (!flags.quiet) console.error(`pretrain: ${text}`);
      };
      // One progress bar per stage; the ETA from this process's pace (loading and checkpoints included).
      const bar: { stage: StageName | null; progress: ProgressReporter | null; started: number; firstStep: number } = { stage: null, progress: null, started: 0, firstStep: 0 };
      const onStep = (r: StageRecord, total: number, stage: StageName) => {
        let perStep: number;
        if (stage !== bar.stage) {
          bar.progress?.stop();
          Object.assign(bar, { stage, progress: progressReporter(`pretrain ${stage}`, flags.quiet), started: performance.now(), firstStep: r.step });
          perStep = 1 / r.itPerSec;
        } else perStep = (performance.now() - bar.started) / 1000 / (r.step - bar.firstStep);
        bar.progress!.update(r.step, total, note(r, withEta ? perStep * (total - r.step) : null));
      };
      try {
        await interruptible(async (signal) => {
          const common = { config, device, signal, onNote: say, onStep };
          if (typeof flags.resume === 'string') await runStage({ ...common, stage: flags.stage as StageName, resume: flags.resume });
          else await pretrain({ ...common, stages: flags.stage === 'all' ? STAGES : [flags.stage], resume: Boolean(flags.resume) });
        });
      } finally {
        bar.progress?.stop();
      }
    });
}
