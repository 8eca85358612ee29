// Seeded random-number generators. Random tensors are drawn on the CPU from an explicit
// Generator and then moved, so a seed gives the same numbers on every device.
import { type GeneratorHandle, native } from './native.js';
import { Tensor } from './tensor.js';

export class Generator {
  readonly handle: GeneratorHandle;

  constructor(seed: number | bigint = 0) {
    if (typeof seed === 'number' && (!Number.isSafeInteger(seed) || seed < 0)) {
      throw new TypeError(`a generator seed must be a non-negative integer, not ${seed}`);
    }
    this.handle = native.newGenerator(seed);
  }

  get seed(): number {
    return native.generatorSeed(this.handle);
  }

  /** The full state (a uint8 tensor), to save in a checkpoint. */
  getState(): Tensor {
    return new Tensor(native.generatorState(this.handle));
  }

  setState(state: Tensor): void {
    native.setGeneratorState(this.handle, state.handle);
  }
}

/** Seeds libtorch's default generator (used by dropout). */
export function manualSeed(seed: number): void {
  native.manualSeed(seed);
}
