// Autocast: inside the scope, libtorch runs matmuls and convolutions in a reduced precision
// (bfloat16 on CPU, float16 or bfloat16 on CUDA) and keeps precision-sensitive ops in float32.
import { type DType, dtypeCode } from './dtype.js';
import { native } from './native.js';

export interface AutocastOptions {
  device?: 'cpu' | 'cuda';
  dtype?: Extract<DType, 'bfloat16' | 'float16'>;
  enabled?: boolean;
}

export function autocast<R>(options: AutocastOptions, fn: () => R): R {
  const { device = 'cpu', dtype = device === 'cpu' ? 'bfloat16' : 'float16', enabled = true } = options;
  if (dtype !== 'bfloat16' && dtype !== 'float16') throw new TypeError(`autocast runs in bfloat16 or float16, not ${String(dtype)}`);
  const [wasEnabled, previous] = native.autocastEnter(device, enabled, dtypeCode(dtype));
  try {
    const result = fn();
    if (result instanceof Promise) throw new TypeError('autocast() takes a synchronous function');
    return result;
  } finally {
    native.autocastExit(device, wasEnabled, previous);
  }
}
