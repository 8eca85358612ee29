// Gradient recording scopes. libtorch's grad mode is per thread, so each worker has its own.
import { native } from './native.js';

function withGradMode<R>(enabled: boolean, fn: () => R): R {
  const previous = native.isGradEnabled();
  native.setGradEnabled(enabled);
  try {
    const result = fn();
    if (result instanceof Promise) throw new TypeError('noGrad()/enableGrad() take a synchronous function');
    return result;
  } finally {
    native.setGradEnabled(previous);
  }
}

/** Runs fn without recording operations for autograd (inference, weight updates). */
export function noGrad<R>(fn: () => R): R {
  return withGradMode(false, fn);
}
export function enableGrad<R>(fn: () => R): R {
  return withGradMode(true, fn);
}
export function isGradEnabled(): boolean {
  return native.isGradEnabled();
}
