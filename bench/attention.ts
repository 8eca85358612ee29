// bench/attention: moa's CPU attention kernels against the composed form (q·kᵀ, softmax, ·v through
// libtorch), at the shapes of SD1.5's attention layers (64×64 latent, batch 2, 8 heads), in one run.
//   npm run bench:attention [-- --rounds 5] [-- --json]
// bf16 runs every kernel path this CPU has (AMX tiles, AVX512-BF16 dot products); fp32 its AVX-512
// kernel. Sides alternate round by round, so drift in clock speed hits them alike; median of rounds.
import { attend, useCpuAttentionKernel } from '../src/models/layers/attention.js';
import { allowCpuAttentionAmx, cpuAttentionUsesAmx, Generator, getThreads, hasCpuAttention, hasFusedAttention, noGrad, randn, tidy } from '../src/tensor/index.js';
import { benchArgs } from './args.js';

const { values } = benchArgs({ rounds: { type: 'string', default: '5' }, json: { type: 'boolean', default: false } });
const rounds = Number(values.rounds);
if (!Number.isInteger(rounds) || rounds < 1) {
  console.error(`bench/attention: --rounds must be a whole number ≥ 1 (got '${values.rounds}')`);
  process.exit(2);
}
if (hasFusedAttention()) {
  console.error('bench/attention: this libtorch has a fused attention kernel, which moa uses instead of its own; nothing to compare');
  process.exit(2);
}

// [name, query tokens, key tokens, head width]: the self- and cross-attention of each SD1.5 level.
const SHAPES: [string, number, number, number][] = [
  ['self 64×64', 4096, 4096, 40],
  ['cross 64×64', 4096, 77, 40],
  ['self 32×32', 1024, 1024, 80],
  ['self 16×16', 256, 256, 160],
];
const BATCH = 2;
const HEADS = 8;

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
function seconds(run: () => void): number {
  const t0 = performance.now();
  run();
  return (performance.now() - t0) / 1000;
}

type Side = { name: string; prepare: () => void };
const kernelSides = (dtype: 'bfloat16' | 'float32'): Side[] => {
  if (!hasCpuAttention(dtype)) return [];
  if (dtype === 'float32') return [{ name: 'kernel AVX-512', prepare: () => useCpuAttentionKernel(true) }];
  const amx = cpuAttentionUsesAmx();
  const dot: Side = { name: 'kernel AVX512-BF16', prepare: () => (useCpuAttentionKernel(true), allowCpuAttentionAmx(false)) };
  return amx ? [{ name: 'kernel AMX', prepare: () => (useCpuAttentionKernel(true), allowCpuAttentionAmx(true)) }, dot] : [dot];
};
const composed: Side = { name: 'composed', prepare: () => useCpuAttentionKernel(false) };

const rows: { dtype: string; shape: string; side: string; ms: number; gflops: number; vsComposed: number }[] = [];
for (const dtype of ['bfloat16', 'float32'] as const) {
  const sides = [...kernelSides(dtype), composed];
  for (const [shape, lq, lk, d] of SHAPES) {
    const g = new Generator(0);
    const [q, k, v] = [lq, lk, lk].map((l) => randn([BATCH, l, HEADS * d], { generator: g }).to(dtype));
    const flops = 2 * 2 * BATCH * HEADS * lq * lk * d; // q·kᵀ and p·v
    const times = new Map<string, number[]>(sides.map((s) => [s.name, []]));
    for (let round = 0; round <= rounds; round++) {
      for (const side of sides) {
        side.prepare();
        const t = seconds(() => noGrad(() => tidy(() => attend(q!, k!, v!, HEADS))));
        if (round > 0) times.get(side.name)!.push(t); // round 0 warms up
      }
    }
    const base = median(times.get('composed')!);
    for (const side of sides) {
      const s = median(times.get(side.name)!);
      rows.push({ dtype, shape: `${shape} (${BATCH}×${HEADS}×${lq}×${lk}, d ${d})`, side: side.name, ms: s * 1000, gflops: flops / s / 1e9, vsComposed: base / s });
    }
    [q, k, v].forEach((t) => t!.dispose());
  }
}
useCpuAttentionKernel(true);
allowCpuAttentionAmx(true);

if (values.json) console.log(JSON.stringify({ threads: getThreads(), rounds, rows }));
else {
  console.log(`bench/attention — ${getThreads()} threads, median of ${rounds} rounds`);
  for (const r of rows) {
    const speedup = r.side === 'composed' ? '' : `  ${r.vsComposed.toFixed(2)}× composed`;
    console.log(`  ${r.dtype.padEnd(9)} ${r.shape.padEnd(42)} ${r.side.padEnd(19)} ${r.ms.toFixed(1).padStart(7)} ms ${r.gflops.toFixed(0).padStart(5)} GFLOP/s${speedup}`);
  }
}
