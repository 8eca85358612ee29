// The libtorch in use: threads, version, BLAS, CUDA.
import { readFileSync, realpathSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { native } from './native.js';

/** libtorch's intra-op thread count. It starts at 1 here; moa sets it to the core count on load. */
export function setThreads(n: number): void {
  if (!Number.isInteger(n) || n < 1) throw new RangeError(`thread count must be a positive integer, not ${n}`);
  native.setNumThreads(n);
}
export function getThreads(): number {
  return native.getNumThreads();
}

/** Threads to use by default: MOA_THREADS, else every available core. */
export function defaultThreads(): number {
  const fromEnv = process.env.MOA_THREADS;
  if (fromEnv !== undefined && fromEnv !== '') {
    const n = Number(fromEnv);
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`MOA_THREADS must be a positive integer, not '${fromEnv}'`);
    return n;
  }
  return availableParallelism();
}

export interface TorchInfo {
  version: string;
  path: string;
  blas: { name: string; path: string };
  cuda: { available: boolean; devices: { index: number; name: string }[] };
  fusedAttention: boolean;
}

/**
 * The BLAS actually loaded into this process (Debian's libtorch links the generic libblas.so.3,
 * which the system's alternatives point at OpenBLAS or at the 50× slower reference BLAS).
 */
function blasInUse(config: string): { name: string; path: string } {
  let maps = '';
  try {
    maps = readFileSync('/proc/self/maps', 'utf8');
  } catch {
    // not Linux: fall back to the build configuration
  }
  const path = maps.split('\n').map((line) => line.split(/\s+/)[5] ?? '').find((p) => /lib(open)?blas|libmkl_|libblis/.test(p)) ?? '';
  const real = path ? realpathSync(path) : '';
  if (/openblas/i.test(real)) return { name: 'OpenBLAS', path: real };
  if (/mkl/i.test(real)) return { name: 'MKL', path: real };
  if (/blis/i.test(real)) return { name: 'BLIS', path: real };
  if (real) return { name: 'reference BLAS (slow: install libopenblas0-pthread)', path: real };
  const built = /BLAS_INFO=([^,\s]+)/.exec(config)?.[1];
  return { name: built === 'mkl' ? 'MKL' : built === 'open' ? 'OpenBLAS' : (built ?? 'unknown'), path: '' };
}

export function torchInfo(): TorchInfo {
  const count = native.cudaDeviceCount();
  return {
    version: native.version(),
    path: native.libraryPath(),
    blas: blasInUse(native.showConfig()),
    cuda: {
      available: native.cudaAvailable(),
      devices: Array.from({ length: count }, (_, index) => ({ index, name: native.cudaDeviceName(index) || 'unknown' })),
    },
    fusedAttention: native.fusedAttention(),
  };
}

/** Waits for queued CUDA work (for timing); nothing to do on the CPU. */
export function synchronize(device = 'cpu'): void {
  const match = /^cuda(?::(\d+))?$/.exec(device);
  if (match) native.cudaSynchronize(Number(match[1] ?? 0));
}
