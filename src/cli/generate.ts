// `moa generate`: text to image with a Stable Diffusion model, written as PNG with its parameters.
import { dirname, extname, join, basename } from 'node:path';
import { existsSync, mkdirSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { writePng } from '../io/image.js';
import { openStableDiffusion } from '../pipelines/load.js';
import { applyPrecision, checkPrecision, defaultPrecision, type Precision } from '../pipelines/precision.js';
import { disposeStableDiffusion } from '../pipelines/stable-diffusion.js';
import { generate, type GenerationParameters } from '../pipelines/text-to-image.js';
import { SCHEDULER_NAMES, type SchedulerName } from '../schedulers/index.js';
import { checkDevice, type Device } from '../tensor/device.js';
import { progressReporter } from './progress.js';

export const integer = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError(`${name} must be an integer.`);
  return n;
};
export const number = (name: string) => (value: string) => {
  const n = Number(value);
  if (!Number.isFinite(n)) throw new InvalidArgumentError(`${name} must be a number.`);
  return n;
};

interface GenerateFlags {
  model: string;
  prompt: string;
  negative?: string;
  steps: number;
  guidance: number;
  seed?: number;
  width?: number;
  height?: number;
  batch: number;
  scheduler: SchedulerName;
  precision: string;
  device: string;
  tokenizer?: string;
  variant?: string;
  out: string;
  json?: boolean;
}

/** out.png for one image; out-1.png, out-2.png, ... for a batch. */
export function outputPaths(out: string, count: number): string[] {
  if (count === 1) return [out];
  const ext = extname(out) || '.png';
  const stem = basename(out, extname(out));
  return Array.from({ length: count }, (_, i) => join(dirname(out), `${stem}-${i + 1}${ext}`));
}

export function pngText(parameters: GenerationParameters & { precision: Precision; index?: number }): Record<string, string> {
  return { parameters: JSON.stringify(parameters), Software: 'moa' };
}

export function generateCommand(): Command {
  return new Command('generate')
    .description('generate images from a text prompt')
    .requiredOption('--model <path>', 'a diffusers folder or a single-file .safetensors checkpoint')
    .requiredOption('--prompt <text>', 'what to draw')
    .option('--negative <text>', 'what to avoid (the unconditional side of guidance)')
    .option('--steps <n>', 'denoising steps', integer('--steps'), 30)
    .option('--guidance <scale>', 'classifier-free guidance scale (1 = off)', number('--guidance'), 7.5)
    .option('--seed <n>', 'random seed (image i of a batch uses seed + i); random when omitted', integer('--seed'))
    .option('--width <px>', 'image width (default: the model\'s size)', integer('--width'))
    .option('--height <px>', 'image height (default: the model\'s size)', integer('--height'))
    .option('--batch <n>', 'images to make', integer('--batch'), 1)
    .addOption(new Option('--scheduler <name>', 'sampler').choices(SCHEDULER_NAMES).default('dpmpp-2m'))
    .addOption(new Option('--precision <p>', 'numeric precision: auto picks bf16 on CPUs with bf16 units, fp16 on CUDA').choices(['auto', 'fp32', 'bf16', 'fp16']).default('auto'))
    .option('--device <device>', 'cpu, cuda or cuda:N', 'cpu')
    .option('--tokenizer <path>', 'tokenizer for single-file checkpoints (a tokenizer/ folder or bpe_simple_vocab_16e6.txt.gz)')
    .option('--variant <name>', "prefer this weights variant in a diffusers folder (e.g. 'fp16')")
    .option('--out <file>', 'output PNG (a batch adds -1, -2, ...)', 'moa.png')
    .option('--json', 'print the parameters and output files as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  $ moa generate --model ./stable-diffusion-v1-5 --prompt "a lighthouse at dusk" --seed 7 --out lighthouse.png\n' +
        '  $ moa generate --model sd15.safetensors --tokenizer ./tokenizer --prompt "a cat" --steps 20 --batch 4 --out cats.png',
    )
    .action(async (flags: GenerateFlags) => {
      const device: Device = checkDevice(flags.device);
      const precision = flags.precision === 'auto' ? defaultPrecision(device) : checkPrecision(flags.precision);
      const outDir = dirname(flags.out);
      if (!existsSync(outDir)) mkdirSync(outDir, { recursive: true });

      const sd = openStableDiffusion(flags.model, { device, tokenizer: flags.tokenizer, variant: flags.variant });
      try {
        applyPrecision(sd.unet, precision, device);
        applyPrecision(sd.vae, precision, device);
        const progress = progressReporter('denoising', flags.json);
        const controller = new AbortController();
        const onSigint = () => controller.abort();
        process.once('SIGINT', onSigint);
        let result;
        try {
          result = await generate(sd, {
            prompt: flags.prompt,
            negativePrompt: flags.negative,
            steps: flags.steps,
            guidance: flags.guidance,
            seed: flags.seed,
            width: flags.width,
            height: flags.height,
            batch: flags.batch,
            scheduler: flags.scheduler,
            signal: controller.signal,
            onProgress: (p) => progress.update(p.step, p.steps, `${(p.elapsedMs / p.step / 1000).toFixed(2)} s/step`),
          });
        } finally {
          progress.stop();
          process.off('SIGINT', onSigint);
        }
        const paths = outputPaths(flags.out, result.images.length);
        for (const [i, image] of result.images.entries()) {
          await writePng(paths[i]!, image, pngText({ ...result.parameters, seed: result.parameters.seed + i, batch: 1, precision }));
          image.dispose();
        }
        if (flags.json) console.log(JSON.stringify({ ...result.parameters, precision, files: paths }, null, 2));
        else console.log(`wrote ${paths.join(', ')} (seed ${result.parameters.seed}, ${precision})`);
      } finally {
        disposeStableDiffusion(sd);
      }
    });
}
