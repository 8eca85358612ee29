#!/usr/bin/env node
// The `moa` command. Exit codes: 0 done, 1 failed, 2 bad arguments, 130 interrupted.
import { Command, CommanderError } from 'commander';
import { doctor, formatDoctor } from './doctor.js';
import { editCommand } from './edit.js';
import { evalCommand } from './eval.js';
import { generateCommand } from './generate.js';
import { formatInspect, inspectModel } from './inspect.js';
import { mapsCommand } from './maps.js';
import { morphCommand } from './morph.js';
import { pretrainCommand } from './pretrain.js';
import { serveCommand } from './serve.js';
import { swapCommand } from './swap.js';
import { trainCommand } from './train.js';
import { worldCommand } from './world.js';

const program = new Command()
  .name('moa')
  .description('Personalized image generation with Mixture-of-Attention, over libtorch')
  .showHelpAfterError('(add --help for usage)')
  .exitOverride();

program
  .command('doctor')
  .description('report libtorch, CUDA, threads, BLAS and a quick matmul speed check')
  .option('--json', 'print the report as JSON')
  .addHelpText('after', '\nExamples:\n  $ moa doctor\n  $ moa doctor --json | jq .matmulGflops')
  .action((options: { json?: boolean }) => {
    const report = doctor();
    console.log(options.json ? JSON.stringify(report, null, 2) : formatDoctor(report));
  });

program
  .command('inspect')
  .description("parameter counts of a model's networks, from its configs ('sd15' is built in)")
  .argument('<model>', "'sd15' or a diffusers folder")
  .option('--json', 'print the report as JSON')
  .addHelpText('after', '\nExamples:\n  $ moa inspect sd15\n  $ moa inspect ./stable-diffusion-v1-5 --json')
  .action((target: string, options: { json?: boolean }) => {
    const report = inspectModel(target);
    console.log(options.json ? JSON.stringify(report, null, 2) : formatInspect(target, report));
  });

for (const command of [generateCommand(), swapCommand(), morphCommand(), editCommand(), mapsCommand(), trainCommand(), serveCommand(), worldCommand(), pretrainCommand(), evalCommand()]) program.addCommand(command.copyInheritedSettings(program));

try {
  await program.parseAsync();
} catch (error) {
  if (error instanceof CommanderError) {
    // Help and version exit 0; a usage error has already been printed by commander.
    process.exitCode = error.exitCode === 0 ? 0 : 2;
  } else if (error instanceof Error && error.name === 'AbortError') {
    console.error('moa: interrupted');
    process.exitCode = 130;
  } else {
    console.error(`moa: ${error instanceof Error ? error.message : String(error)}`);
    process.exitCode = 1;
  }
}
