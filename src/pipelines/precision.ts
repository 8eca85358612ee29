// Which precision a device runs best in, and putting a model in it.
import { readFileSync } from 'node:fs';
import type { Module } from '../nn/module.js';
import type { Device } from '../tensor/device.js';
import type { DType } from '../tensor/dtype.js';

export type Precision = 'fp32' | 'bf16' | 'fp16';
export const PRECISIONS: readonly Precision[] = ['fp32', 'bf16', 'fp16'];

export const DTYPE_OF: Record<Precision, DType> = { fp32: 'float32', bf16: 'bfloat16', fp16: 'float16' };

/** True when the CPU has bfloat16 matrix units (AMX) or instructions (AVX512-BF16). */
export function cpuHasFastBf16(): boolean {
  try {
    const flags = readFileSync('/proc/cpuinfo', 'utf8');
    return /\b(amx_bf16|avx512_bf16)\b/.test(flags);
  } catch {
    return false;
  }
}

/** The fastest precision the device handles well: fp16 on CUDA, bf16 on CPUs built for it, else fp32. */
export function defaultPrecision(device: Device): Precision {
  if (device.startsWith('cuda')) return 'fp16';
  return cpuHasFastBf16() ? 'bf16' : 'fp32';
}

export function checkPrecision(value: unknown): Precision {
  if (PRECISIONS.includes(value as Precision)) return value as Precision;
  throw new TypeError(`unknown precision '${String(value)}'; expected ${PRECISIONS.join(', ')}`);
}

/**
 * Puts a convolutional model in a precision: its weights in that dtype and, off fp32 on the CPU,
 * channels-last, the layout oneDNN's bf16 kernels want.
 */
export function applyPrecision(model: Module, precision: Precision, device: Device): void {
  const channelsLast = precision !== 'fp32' && device === 'cpu';
  model.to({ dtype: DTYPE_OF[precision], device, ...(channelsLast ? { memoryFormat: 'channels_last' as const } : {}) });
}
