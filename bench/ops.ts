// bench/ops: what the binding costs. One binding call against the same op in a C++ loop, and
// matmul / conv2d / attention throughput through moa against the same ops run natively, in the
// same process and run. Usage: npm run bench:ops [-- --json] [-- --quick]
import { performance } from 'node:perf_hooks';
import {
  conv2d,
  type DType,
  Generator,
  getThreads,
  noGrad,
  randn,
  scaledDotProductAttention,
  synchronize,
  type Tensor,
  torchInfo,
  zeros,
} from '../src/tensor/index.js';
import { native } from '../src/tensor/native.js';

const json = process.argv.includes('--json');
const quick = process.argv.includes('--quick');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

/** Seconds per call of fn, median over rounds of `iterations` calls. */
function timeJs(fn: () => void, iterations: number, rounds: number): number {
  fn();
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = performance.now();
    for (let i = 0; i < iterations; i++) fn();
    synchronize();
    samples.push((performance.now() - start) / 1000 / iterations);
  }
  return median(samples);
}

function timeNative(kind: string, inputs: Tensor[], iterations: number, rounds: number): number {
  const handles = inputs.map((t) => t.handle);
  return median(Array.from({ length: rounds }, () => native.nativeLoop(kind, handles, iterations)));
}

interface Row {
  name: string;
  bytes: number;
  flops: number;
  moaSeconds: number;
  nativeSeconds: number;
}

function throughput(name: string, kind: string, inputs: Tensor[], flops: number, run: () => Tensor, iterations: number): Row {
  const rounds = quick ? 3 : 7;
  // Alternate sides so drift in clock speed or cache state hits both alike.
  const moa: number[] = [];
  const nat: number[] = [];
  for (let r = 0; r < rounds; r++) {
    moa.push(timeJs(() => run().dispose(), iterations, 1));
    nat.push(timeNative(kind, inputs, iterations, 1));
  }
  const bytes = inputs.reduce((sum, t) => sum + t.numel * (t.dtype === 'float32' ? 4 : 2), 0);
  return { name, bytes, flops, moaSeconds: median(moa), nativeSeconds: median(nat) };
}

function main(): void {
  const g = new Generator(0);
  const r = (shape: number[], dtype: DType = 'float32') => randn(shape, { generator: g, dtype });

  // ---- call overhead ----
  const noop = timeJs(() => native.noop(), 200_000, 5);
  const s1 = r([1]);
  const s2 = r([1]);
  const addMoa = timeJs(() => s1.add(s2).dispose(), 100_000, 5);
  const addNative = timeNative('add', [s1, s2], 100_000, 5);
  const overhead = { emptyCallUs: noop * 1e6, tinyAddMoaUs: addMoa * 1e6, tinyAddNativeUs: addNative * 1e6, overheadUs: (addMoa - addNative) * 1e6 };

  // ---- throughput at DESIGN.md's sizes (and the AMX-friendly bf16 channels-last conv) ----
  const rows: Row[] = [];
  noGrad(() => {
    const a = r([1024, 1024]);
    const b = r([1024, 1024]);
    rows.push(throughput('matmul 1024³ fp32', 'matmul', [a, b], 2 * 1024 ** 3, () => a.matmul(b), quick ? 3 : 10));
    const ab = a.to('bfloat16');
    const bb = b.to('bfloat16');
    rows.push(throughput('matmul 1024³ bf16', 'matmul', [ab, bb], 2 * 1024 ** 3, () => ab.matmul(bb), quick ? 3 : 10));

    const x = r([1, 320, 64, 64]);
    const w = r([320, 320, 3, 3]);
    const bias = zeros([320]);
    const convFlops = 2 * 320 * 320 * 9 * 64 * 64;
    rows.push(throughput('conv2d 64×64×320→320 3×3 fp32', 'conv2d', [x, w, bias], convFlops, () => conv2d(x, w, bias, { padding: 1 }), quick ? 2 : 5));
    const xc = x.to({ dtype: 'bfloat16', memoryFormat: 'channels_last' });
    const wc = w.to({ dtype: 'bfloat16', memoryFormat: 'channels_last' });
    const bc = bias.to('bfloat16');
    rows.push(throughput('conv2d same, bf16 channels-last', 'conv2d', [xc, wc, bc], convFlops, () => conv2d(xc, wc, bc, { padding: 1 }), quick ? 2 : 5));

    const [q, k, v] = [r([8, 4096, 40]), r([8, 4096, 40]), r([8, 4096, 40])];
    const attnFlops = 4 * 8 * 4096 * 4096 * 40;
    rows.push(throughput('attention 8×4096×40 fp32', 'attention', [q, k, v], attnFlops, () => scaledDotProductAttention(q, k, v), quick ? 1 : 2));
  });

  const info = torchInfo();
  const report = {
    libtorch: info.version,
    threads: getThreads(),
    fusedAttention: info.fusedAttention,
    callOverhead: overhead,
    throughput: rows.map((row) => ({
      op: row.name,
      inputMB: +(row.bytes / 2 ** 20).toFixed(2),
      moaMs: +(row.moaSeconds * 1e3).toFixed(3),
      nativeMs: +(row.nativeSeconds * 1e3).toFixed(3),
      moaGflops: +(row.flops / row.moaSeconds / 1e9).toFixed(1),
      nativeGflops: +(row.flops / row.nativeSeconds / 1e9).toFixed(1),
      moaVsNative: +(row.nativeSeconds / row.moaSeconds).toFixed(3),
    })),
  };
  if (json) {
    console.log(JSON.stringify(report, null, 2));
    return;
  }
  console.log(`bench/ops — libtorch ${report.libtorch}, ${report.threads} threads, attention ${report.fusedAttention ? 'fused' : 'composed'}`);
  console.log('\ncall overhead (target ≤ 5 µs)');
  console.log(`  empty binding call          ${overhead.emptyCallUs.toFixed(3)} µs`);
  console.log(`  add of 1-element tensors    moa ${overhead.tinyAddMoaUs.toFixed(3)} µs, C++ loop ${overhead.tinyAddNativeUs.toFixed(3)} µs`);
  console.log(`  overhead per op             ${overhead.overheadUs.toFixed(3)} µs`);
  console.log('\nthroughput, moa vs the same op in a C++ loop (target: moa ≥ 0.95× native for ≥ 1 MB)');
  for (const row of report.throughput) {
    console.log(
      `  ${row.op.padEnd(34)} ${String(row.inputMB).padStart(6)} MB  moa ${row.moaMs.toFixed(2).padStart(8)} ms ${String(row.moaGflops).padStart(7)} GFLOP/s` +
        `   native ${row.nativeMs.toFixed(2).padStart(8)} ms ${String(row.nativeGflops).padStart(7)} GFLOP/s   ${row.moaVsNative.toFixed(3)}×`,
    );
  }
}

main();
