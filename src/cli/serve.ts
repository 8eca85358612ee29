// `moa serve`: the HTTP API and web studio over one loaded model (docs/api.md).
import { Command, Option } from 'commander';
import { defaultModel } from '../pipelines/default-model.js';
import { checkServerOptions, startServer } from '../server/app.js';
import { integer, number } from './numbers.js';

interface ServeFlags {
  model?: string;
  moa?: string;
  imageEncoder?: string;
  tokenizer?: string;
  precision: string;
  device: string;
  host: string;
  port: number;
  token?: string;
  out: string;
  maxQueue: number;
  maxUploadMb: number;
  maxSteps: number;
  maxBatch: number;
  maxSide: number;
  previewEvery: number;
}

/** Resolves when SIGINT or SIGTERM arrives. */
function stopSignal(): Promise<string> {
  return new Promise((resolve) => {
    const on = (signal: string) => {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
      // A second Ctrl-C while stopping ends at once.
      process.once('SIGINT', () => process.exit(130));
      resolve(signal);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
}

export function serveCommand(): Command {
  return new Command('serve')
    .description('serve the HTTP API and the web studio (one model, loaded once; jobs run one at a time in a worker process)')
    .option('--model <path>', 'a diffusers folder or a single-file .safetensors checkpoint (default: the shipped model)')
    .option('--moa <file>', 'MoA weights (default: the shipped model\'s, when --model is not given)')
    .option('--image-encoder <dir>', 'CLIP vision folder for subject images; default <model>/image_encoder')
    .option('--tokenizer <path>', 'tokenizer for single-file checkpoints')
    .addOption(new Option('--precision <p>', 'numeric precision').choices(['auto', 'fp32', 'bf16', 'fp16']).default('auto'))
    .option('--device <device>', 'cpu, cuda or cuda:N', 'cpu')
    .option('--host <address>', 'address to listen on; anything but loopback needs --token', '127.0.0.1')
    .option('--port <n>', 'port (0: any free port)', integer('--port'), 7860)
    .option('--token <secret>', 'require "Authorization: Bearer <secret>" (or ?token=) on /api and /files')
    .option('--out <dir>', 'folder for uploads, results and job records', 'moa-studio')
    .option('--max-queue <n>', 'jobs that may wait behind the running one (more get 429)', integer('--max-queue'), 8)
    .option('--max-upload-mb <n>', 'largest upload in MB', number('--max-upload-mb'), 10)
    .option('--max-steps <n>', 'most denoising steps per image', integer('--max-steps'), 100)
    .option('--max-batch <n>', 'most images per generate job', integer('--max-batch'), 4)
    .option('--max-side <px>', 'largest width or height of an image', integer('--max-side'), 1024)
    .option('--preview-every <n>', 'a preview image every n steps (0: none)', integer('--preview-every'), 5)
    .addHelpText(
      'after',
      '\nExamples:\n' +
        '  $ moa serve                                              # the shipped model on http://127.0.0.1:7860/\n' +
        '  $ moa serve --model ./sd15 --moa moa.safetensors --out ./gallery\n' +
        '  $ moa serve --host 0.0.0.0 --token "$(openssl rand -hex 16)"   # reachable from other machines\n' +
        '\nThe API is described in docs/api.md and at /api/openapi.json.',
    )
    .action(async (flags: ServeFlags) => {
      const settings = {
        imageEncoder: flags.imageEncoder,
        tokenizer: flags.tokenizer,
        precision: flags.precision,
        device: flags.device,
        host: flags.host,
        port: flags.port,
        token: flags.token,
        out: flags.out,
        maxQueue: flags.maxQueue,
        maxUploadBytes: Math.round(flags.maxUploadMb * 2 ** 20),
        maxSteps: flags.maxSteps,
        maxBatch: flags.maxBatch,
        maxSide: flags.maxSide,
        previewEvery: flags.previewEvery,
      };
      // Settings first: an exposed host without a token is refused before any model is looked for.
      checkServerOptions({ ...settings, model: flags.model ?? '', moa: flags.moa ?? null });
      const shipped = flags.model === undefined ? defaultModel() : null;
      const server = await startServer({ ...settings, model: flags.model ?? shipped!.model, moa: flags.moa ?? shipped?.moa ?? null });
      const info = server.worker.info!;
      console.log(`moa serve: listening on ${server.url}/ (model ${info.model}${info.moa ? `, MoA ${info.moa}` : ', no MoA'}, ${info.precision} on ${info.device}; files in ${flags.out})`);
      const signal = await stopSignal();
      console.log(`moa serve: ${signal}: stopping (the running job is cancelled)`);
      await server.close();
      console.log('moa serve: stopped');
    });
}
