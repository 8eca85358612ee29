// bench/unet: one guided SD1.5 UNet step at 512×512 (64×64 latent, batch 2, random weights) on this
// machine, in fp32 and in the pipeline's bf16 mode, each in its own process (so peak memory is its
// own), with the machine's matmul throughput in the same precision measured in the same run.
//   npm run bench:unet [-- --steps 3] [-- --json]
import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { matmulGflops } from '../src/cli/doctor.js';
import { getThreads } from '../src/tensor/index.js';
import { benchArgs } from './args.js';

const { values } = benchArgs({ steps: { type: 'string', default: '3' }, json: { type: 'boolean', default: false } });
const GFLOP_PER_LATENT_PASS = 803; // SD1.5 UNet at a 64×64 latent (MOA_SPEC §5)
const batch = 2;
const modes = [
  { mode: 'fp32', precision: 'float32' as const, target: 'achieved ≥ 50% of fp32 matmul' },
  { mode: 'bf16-weights-cl', precision: 'bfloat16' as const, target: '≤ 2 s per guided step' },
];

const here = dirname(fileURLToPath(import.meta.url));
const rows = modes.map(({ mode, precision, target }) => {
  const out = execFileSync(process.execPath, ['--expose-gc', join(here, 'unet.js'), '--mode', mode, '--batch', String(batch), '--steps', values.steps!], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const step = JSON.parse(out.trim().split('\n').pop()!) as { bestS: number; stepsS: number[]; peakRssGB: number; constructS: number };
  const achieved = (GFLOP_PER_LATENT_PASS * batch) / step.bestS;
  const matmul = matmulGflops(2048, precision);
  const met = mode === 'fp32' ? achieved >= 0.5 * matmul : step.bestS <= 2;
  return { mode, secondsPerStep: step.bestS, allSteps: step.stepsS, achievedGflops: +achieved.toFixed(0), matmulGflops: +matmul.toFixed(0), share: +(achieved / matmul).toFixed(2), peakRssGB: step.peakRssGB, target, met };
});

if (values.json) {
  console.log(JSON.stringify({ threads: getThreads(), batch, latent: 64, rows }, null, 2));
} else {
  console.log(`bench/unet — SD1.5 UNet, 64×64 latent, batch ${batch} (one guided step), ${getThreads()} threads, best of ${values.steps} steps`);
  for (const r of rows) {
    console.log(
      `  ${r.mode.padEnd(16)} ${r.secondsPerStep.toFixed(2)} s/step  ${String(r.achievedGflops).padStart(5)} GFLOP/s  ` +
        `(matmul ${r.matmulGflops} GFLOP/s, ${Math.round(r.share * 100)}%)  peak RSS ${r.peakRssGB} GB  target ${r.target}: ${r.met ? 'met' : 'NOT met'}`,
    );
  }
}
