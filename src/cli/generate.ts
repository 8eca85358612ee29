// `moa generate`: text to image with a Stable Diffusion model, written as PNG with its parameters.
import { dirname } from 'node:path';
import { existsSync, mkdirSync } from 'node:fs';
import { Command } from 'commander';
import { writePng } from '../io/image.js';
import { openStableDiffusion } from '../pipelines/load.js';
import { applyPrecision, checkPrecision, defaultPrecision } from '../pipelines/precision.js';
import { disposeStableDiffusion } from '../pipelines/stable-diffusion.js';
import { generate } from '../pipelines/text-to-image.js';
import { checkDevice, type Device } from '../tensor/device.js';
import { generateWithMoA } from './generate-moa.js';
import { integer } from './numbers.js';
import { outputPaths, pngText } from './output.js';
import { addModelOptions, addSamplingOptions, addSubjectOptions, type ModelFlags, samplingOptions, type SamplingFlags, type SubjectFlags, withProgress } from './personal.js';

export { integer, number } from './numbers.js';
export { outputPaths, pngText } from './output.js';

export interface GenerateFlags extends ModelFlags, SamplingFlags, SubjectFlags {
  batch: number;
  maps?: string;
  out: string;
  json?: boolean;
}

export function generateCommand(): Command {
  const command = new Command('generate').description('generate images from a text prompt, optionally with MoA subjects bound to its words');
  addSubjectOptions(addSamplingOptions(addModelOptions(command, { moa: 'optional' })));
  return command
    .option('--batch <n>', 'images to make', integer('--batch'), 1)
    .option('--maps <dir>', 'also write routing and subject-attention maps over the image into this folder (needs --moa)')
    .option('--out <file>', 'output PNG (a batch adds -1, -2, ...)', 'moa.png')
    .option('--json', 'print the parameters and output files as JSON')
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  $ moa generate --model ./stable-diffusion-v1-5 --prompt "a lighthouse at dusk" --seed 7 --out lighthouse.png\n' +
        '  $ moa generate --model sd15.safetensors --tokenizer ./tokenizer --prompt "a cat" --steps 20 --batch 4 --out cats.png\n' +
        '  $ moa generate --model ./stable-diffusion-v1-5 --moa moa.safetensors --subject man=./ref.png --subject woman=./ref2.png \\\n' +
        '        --prompt "a man and a woman hiking" --seed 7 --maps maps/ --out hike.png\n' +
        '  $ moa generate --model ./sd15 --moa moa.safetensors --subject "dog=dog1.png:dog1-mask.png,dog2.png" --strength 0.8 --subject-start 0.2 --prompt "a dog on a sofa"',
    )
    .action(async (flags: GenerateFlags) => {
      if (flags.subject?.length && !flags.moa) command.error('error: --subject needs --moa (MoA weights to bind subjects with)', { exitCode: 2 });
      if (flags.maps && !flags.moa) command.error('error: --maps needs --moa (routing maps come from MoA layers)', { exitCode: 2 });
      if (flags.moa) return generateWithMoA(flags);
      const device: Device = checkDevice(flags.device);
      const precision = flags.precision === 'auto' ? defaultPrecision(device) : checkPrecision(flags.precision);
      const outDir = dirname(flags.out);
      if (!existsSync(outDir)) mkdirSync(outDir, { recursive: true });

      const sd = openStableDiffusion(flags.model, { device, tokenizer: flags.tokenizer, variant: flags.variant });
      try {
        applyPrecision(sd.unet, precision, device);
        applyPrecision(sd.vae, precision, device);
        const result = await withProgress('denoising', flags.json, (signal, onProgress) =>
          generate(sd, { ...samplingOptions(flags), batch: flags.batch, signal, onProgress }),
        );
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
