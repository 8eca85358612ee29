// `moa train --config FILE [--resume [CHECKPOINT]]`: trains MoA on an FFHQ-wild folder.
import { join } from 'node:path';
import { Command } from 'commander';
import { defaultImageEncoderDir, openImageEncoder } from '../pipelines/load-moa.js';
import { openStableDiffusion } from '../pipelines/load.js';
import { disposeStableDiffusion } from '../pipelines/stable-diffusion.js';
import { checkDevice } from '../tensor/device.js';
import { latestCheckpoint } from '../train/checkpoint.js';
import { readTrainConfig } from '../train/config.js';
import type { StepRecord } from '../train/log.js';
import { Trainer } from '../train/trainer.js';
import { interruptible } from './interrupt.js';
import { progressReporter } from './progress.js';

/** Seconds as "45s", "12m05s" or "3h07m". */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  const [h, m] = [Math.floor(s / 3600), Math.floor((s % 3600) / 60)];
  return h > 0 ? `${h}h${String(m).padStart(2, '0')}m` : `${m}m${String(s % 60).padStart(2, '0')}s`;
}

/** The progress note of a step: every loss term, the learning rate, the pace and (when asked) the ETA. */
export function stepNote(r: StepRecord, itPerSec: number, etaSeconds: number | null): string {
  const terms = `loss ${r.loss.toFixed(4)} (diffusion ${r.diffusion.toFixed(4)}, router ${r.router.toExponential(2)}, subject routing ${r.routerSubject.toExponential(2)}, object ${r.object.toExponential(2)}${r.background ? `, background ${r.background.toExponential(2)}` : ''})` + (r.subjectError === null ? '' : ` subjects ${r.subjectError.toFixed(4)}`);
  return `${terms} lr ${r.lr.toExponential(2)} ${itPerSec.toFixed(2)} it/s` + (etaSeconds === null ? '' : ` ETA ${formatDuration(etaSeconds)}`);
}

interface TrainFlags {
  config: string;
  resume?: string | boolean;
  device: string;
  quiet?: boolean;
}

export function trainCommand(): Command {
  return new Command('train')
    .description('train MoA (routers, personal experts, fusion MLP) on an FFHQ-wild folder; the base model stays frozen')
    .requiredOption('--config <file>', 'training config (.json, .yaml or .yml); it names model, dataRoot, outputDir, steps, …')
    .option('--resume [checkpoint]', 'continue from a checkpoint (default: the latest in <outputDir>/checkpoints)')
    .option('--device <device>', "'cpu' or 'cuda[:n]'", 'cpu')
    .option('--quiet', 'no progress output')
    .addHelpText('after', '\nExamples:\n  $ moa train --config train.yaml\n  $ moa train --config train.yaml --resume')
    .action(async (flags: TrainFlags) => {
      const config = readTrainConfig(flags.config);
      if (!config.model) throw new Error(`training config '${flags.config}': 'model' (a diffusers folder) is required by the CLI`);
      const encoderDir = config.imageEncoder ?? defaultImageEncoderDir(config.model);
      if (!encoderDir) throw new Error(`training config '${flags.config}': no image encoder: set 'imageEncoder' or put one in <model>/image_encoder`);
      let resume: string | null = null;
      if (typeof flags.resume === 'string') resume = flags.resume;
      else if (flags.resume) {
        resume = latestCheckpoint(config.outputDir);
        if (!resume) throw new Error(`--resume: no checkpoint in '${config.outputDir}/checkpoints'`);
      }
      const device = checkDevice(flags.device);
      const sd = openStableDiffusion(config.model, { device });
      const imageEncoder = openImageEncoder(encoderDir, { device });
      const progress = progressReporter('train', flags.quiet);
      // Assigned inside the interruptible work; `as` keeps TypeScript from narrowing it to null here.
      let trainer = null as Trainer | null;
      try {
        await interruptible(async (signal) => {
          const t = (trainer = await Trainer.create({ sd, imageEncoder, config, resume }));
          // it/s and the ETA from this process's average pace (sampling and checkpoints included: a
          // single step's speed jumps around); a terminal's bar shows its own ETA, so the note
          // carries one only in plain logs.
          const started = performance.now();
          const firstStep = t.step;
          const withEta = !process.stderr.isTTY;
          try {
            await t.run({
              signal,
              onStep: (r) => {
                const perStep = (performance.now() - started) / 1000 / (r.step - firstStep);
                progress.update(r.step, config.steps, stepNote(r, 1 / perStep, withEta ? perStep * (config.steps - r.step) : null));
              },
              onSample: (s) => {
                if (withEta && !flags.quiet) console.error(`train: step ${s.step}: wrote ${join(config.outputDir, s.image)} and its routing maps (${s.seconds.toFixed(1)} s)`);
              },
            });
          } catch (error) {
            // Interrupted: keep what was learned since the last checkpoint.
            if (signal.aborted) console.error(`moa: stopped at step ${t.step}; checkpoint ${t.saveCheckpoint()}`);
            throw error;
          }
        });
      } finally {
        progress.stop();
        trainer?.dispose();
        imageEncoder.dispose();
        disposeStableDiffusion(sd);
      }
    });
}
