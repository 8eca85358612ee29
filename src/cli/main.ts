#!/usr/bin/env node
// The `moa` command.
import { Command } from 'commander';
import { doctor, formatDoctor } from './doctor.js';

const program = new Command()
  .name('moa')
  .description('Personalized image generation with Mixture-of-Attention, over libtorch')
  .showHelpAfterError();

program
  .command('doctor')
  .description('report libtorch, CUDA, threads, BLAS and a quick matmul speed check')
  .option('--json', 'print the report as JSON')
  .addHelpText('after', '\nExamples:\n  $ moa doctor\n  $ moa doctor --json | jq .matmulGflops')
  .action((options: { json?: boolean }) => {
    const report = doctor();
    console.log(options.json ? JSON.stringify(report, null, 2) : formatDoctor(report));
  });

try {
  await program.parseAsync();
} catch (error) {
  console.error(`moa: ${error instanceof Error ? error.message : String(error)}`);
  process.exitCode = 1;
}
