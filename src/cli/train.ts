// `moa train --config FILE [--resume [CHECKPOINT]]`: trains MoA on an FFHQ-wild folder.
import { Command } from 'commander';
import { defaultImageEncoderDir, openImageEncoder } from '../pipelines/load-moa.js';
import { openStableDiffusion } from '../pipelines/load.js';
import { disposeStableDiffusion } from '../pipelines/stable-diffusion.js';
import { checkDevice } from '../tensor/device.js';
import { latestCheckpoint } from '../train/checkpoint.js';
import { readTrainConfig } from '../train/config.js';
import { Trainer } from '../train/trainer.js';
import { progressReporter } from './progress.js';

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
      const abort = new AbortController();
      const onSigint = () => abort.abort();
      process.once('SIGINT', onSigint);
      const progress = progressReporter('train', flags.quiet);
      let trainer: Trainer | null = null;
      try {
        trainer = await Trainer.create({ sd, imageEncoder, config, resume });
        const t = trainer;
        await t.run({
          signal: abort.signal,
          onStep: (r) => progress.update(r.step, config.steps, `loss ${r.loss.toFixed(4)} lr ${r.lr.toExponential(2)} ${r.itPerSec.toFixed(2)} it/s`),
        });
      } catch (error) {
        // Interrupted: keep what was learned since the last checkpoint.
        if (abort.signal.aborted && trainer) console.error(`moa: stopped at step ${trainer.step}; checkpoint ${trainer.saveCheckpoint()}`);
        throw error;
      } finally {
        progress.stop();
        process.off('SIGINT', onSigint);
        trainer?.dispose();
        imageEncoder.dispose();
        disposeStableDiffusion(sd);
      }
    });
}
