// Native memory: what tensors hold, and the cache of large CPU blocks moa keeps for reuse.
import { native } from './native.js';

/** Tensors alive in the binding and the host bytes they hold (views count their own extent). */
export function liveTensors(): { count: number; bytes: number } {
  return native.liveTensors();
}

export interface CpuCacheStats {
  /** Bytes of large (≥ 256 KiB) blocks that tensors hold now. */
  inUse: number;
  /** Bytes of freed large blocks kept for reuse. */
  cached: number;
  /** The most the cache keeps (MOA_CPU_CACHE_MB, default 1024 MiB). */
  limit: number;
}

export function cpuCacheStats(): CpuCacheStats {
  const [inUse, cached, limit] = native.allocatorStats();
  return { inUse: inUse!, cached: cached!, limit: limit! };
}

/** Returns every cached block to the system. */
export function emptyCpuCache(): void {
  native.emptyCache();
}

export function setCpuCacheLimit(bytes: number): void {
  native.setCacheLimit(bytes);
}
