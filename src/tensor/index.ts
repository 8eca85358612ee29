// The tensor engine: TypeScript over libtorch.
import { defaultThreads, setThreads } from './system.js';

export * from './autocast.js';
export * from './autograd.js';
export * from './create.js';
export * from './device.js';
export * from './dtype.js';
export * from './functional.js';
export * from './generator.js';
export * from './gradcheck.js';
export * from './optim.js';
export { keep, tidy } from './scope.js';
export * from './system.js';
export * from './tensor.js';
export * from './memory.js';

// libtorch starts with one thread on these machines: use the cores (or MOA_THREADS).
setThreads(defaultThreads());
