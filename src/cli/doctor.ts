// `moa doctor`: what this machine gives moa — libtorch, CUDA, threads, BLAS, and a quick speed check.
import { performance } from 'node:perf_hooks';
import { cpuAttentionUsesAmx, type DType, Generator, getThreads, hasCpuAttention, noGrad, randn, synchronize, tidy, torchInfo, type TorchInfo } from '../tensor/index.js';

export interface DoctorReport {
  node: string;
  libtorch: { version: string; path: string };
  cuda: TorchInfo['cuda'];
  threads: number;
  blas: TorchInfo['blas'];
  fusedAttention: boolean;
  /** moa's bf16 CPU attention kernel runs here (AVX-512 and AVX512-BF16). */
  cpuAttention: boolean;
  /** ...with its matmuls on AMX tiles (else on AVX512-BF16 dot products). */
  cpuAttentionAmx: boolean;
  /** moa's fp32 CPU attention kernel runs here (AVX-512). */
  cpuAttentionF32: boolean;
  /** fp32 matmul throughput, 1024×1024×1024, on the CPU. */
  matmulGflops: number;
  /** The same in bfloat16 (fast where oneDNN finds AMX or AVX512-BF16). */
  matmulGflopsBf16: number;
}

/** Median throughput of an n×n×n matmul in GFLOP/s. */
export function matmulGflops(n: number, dtype: DType, device = 'cpu', repeats = 7): number {
  return tidy(() =>
    noGrad(() => {
      const g = new Generator(0);
      const a = randn([n, n], { generator: g, dtype, device: device as 'cpu' });
      const b = randn([n, n], { generator: g, dtype, device: device as 'cpu' });
      a.matmul(b).dispose();
      const times: number[] = [];
      for (let i = 0; i < repeats; i++) {
        const start = performance.now();
        a.matmul(b).dispose();
        synchronize(device);
        times.push((performance.now() - start) / 1000);
      }
      times.sort((x, y) => x - y);
      return (2 * n ** 3) / times[Math.floor(times.length / 2)]! / 1e9;
    }),
  );
}

export function doctor(): DoctorReport {
  const info = torchInfo();
  return {
    node: process.version,
    libtorch: { version: info.version, path: info.path },
    cuda: info.cuda,
    threads: getThreads(),
    blas: info.blas,
    fusedAttention: info.fusedAttention,
    cpuAttention: hasCpuAttention('bfloat16'),
    cpuAttentionAmx: cpuAttentionUsesAmx(), // AMX implies AVX512-BF16
    cpuAttentionF32: hasCpuAttention('float32'),
    matmulGflops: Math.round(matmulGflops(1024, 'float32')),
    matmulGflopsBf16: Math.round(matmulGflops(1024, 'bfloat16')),
  };
}

/** Which of moa's CPU attention kernels run inference here; the exact composed form does the rest. */
function cpuAttentionLine(r: DoctorReport): string {
  const kernels = [r.cpuAttention && (r.cpuAttentionAmx ? 'bf16 (AVX-512 + AMX)' : 'bf16 (AVX512-BF16)'), r.cpuAttentionF32 && 'fp32 (AVX-512)'].filter(Boolean);
  if (kernels.length === 0) return 'exact composed form (libtorch < 2.1 has no fused kernel)';
  return `moa's kernels for ${kernels.join(' and ')} inference, else the exact composed form`;
}

export function formatDoctor(r: DoctorReport): string {
  const cuda = r.cuda.available
    ? r.cuda.devices.map((d) => `cuda:${d.index} ${d.name}`).join(', ')
    : 'not available (this libtorch has no CUDA, or no GPU is visible)';
  const lines = [
    ['node', r.node],
    ['libtorch', `${r.libtorch.version} (${r.libtorch.path})`],
    ['cuda', cuda],
    ['threads', String(r.threads)],
    ['blas', r.blas.path ? `${r.blas.name} (${r.blas.path})` : r.blas.name],
    ['attention', r.fusedAttention ? 'fused (libtorch ≥ 2.1)' : cpuAttentionLine(r)],
    ['matmul fp32', `${r.matmulGflops} GFLOP/s (1024³, CPU)`],
    ['matmul bf16', `${r.matmulGflopsBf16} GFLOP/s (1024³, CPU)`],
  ];
  return lines.map(([k, v]) => `${k!.padEnd(12)} ${v}`).join('\n');
}
