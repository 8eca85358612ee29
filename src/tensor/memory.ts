import { native } from './native.js';

/** Tensors alive in the binding and the host bytes they hold (views count their own extent). */
export function liveTensors(): { count: number; bytes: number } {
  return native.liveTensors();
}
