// Optimizers: libtorch's AdamW and SGD, driven from TypeScript. Their per-parameter state is
// exposed as named tensors so a checkpoint (a safetensors file) can hold and restore it.
import { full } from './create.js';
import { native, type OptimizerHandle } from './native.js';
import { Tensor } from './tensor.js';

export interface ParamGroup {
  params: readonly Tensor[];
  lr?: number;
  weightDecay?: number;
}

function groupsOf(params: readonly Tensor[] | readonly ParamGroup[]): ParamGroup[] {
  if (params.length === 0) throw new TypeError('an optimizer needs at least one parameter');
  const groups = params[0] instanceof Tensor ? [{ params: params as readonly Tensor[] }] : [...(params as readonly ParamGroup[])];
  for (const g of groups) {
    for (const p of g.params) {
      if (!(p instanceof Tensor)) throw new TypeError('optimizer parameters must be tensors');
      if (!p.requiresGrad) throw new TypeError(`optimizer parameter ${p} does not require grad: call requiresGrad_() or leave it out`);
    }
  }
  return groups;
}

abstract class Optimizer {
  protected readonly handle: OptimizerHandle;
  readonly groups: readonly ParamGroup[];
  #lrs: number[];

  protected constructor(groups: ParamGroup[], lr: number, make: (lrs: number[]) => OptimizerHandle) {
    this.groups = groups;
    this.#lrs = groups.map((g) => g.lr ?? lr);
    for (const value of this.#lrs) if (!(value >= 0)) throw new RangeError(`learning rate must be >= 0, not ${value}`);
    this.handle = make(this.#lrs);
  }

  get params(): Tensor[] {
    return this.groups.flatMap((g) => [...g.params]);
  }

  /** Applies one update from the accumulated gradients. */
  step(): void {
    native.optimizerStep(this.handle);
  }

  /** Drops every parameter's gradient (set to none, as PyTorch's default). */
  zeroGrad(): void {
    for (const p of this.params) p.zeroGrad();
  }

  /** The learning rate of a group (for schedules). */
  lr(group = 0): number {
    return this.#lrs[group]!;
  }
  setLr(lr: number, group?: number): void {
    const targets = group === undefined ? this.#lrs.map((_, i) => i) : [group];
    for (const i of targets) {
      native.optimizerSetLr(this.handle, i, lr);
      this.#lrs[i] = lr;
    }
  }

  protected abstract readonly slots: readonly string[];

  /** Per-parameter state as named tensors: `<param index>.<slot>`. */
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    native.optimizerGetState(this.handle).forEach((entry, i) => {
      if (!entry) return;
      this.slots.forEach((slot, j) => {
        const value = entry[j];
        if (typeof value === 'number') out[`${i}.${slot}`] = full([], value, { dtype: 'int64' });
        else if (value) out[`${i}.${slot}`] = new Tensor(value as never);
      });
    });
    return out;
  }

  loadStateDict(state: Record<string, Tensor>): void {
    const count = this.params.length;
    const known = new Set<string>();
    const entries = Array.from({ length: count }, (_, i) => {
      if (!this.slots.some((slot) => `${i}.${slot}` in state)) return null;
      return this.slots.map((slot) => {
        const key = `${i}.${slot}`;
        known.add(key);
        const t = state[key];
        if (!t) return null;
        return t.ndim === 0 && t.dtype === 'int64' ? t.item() : t.handle;
      });
    });
    const unexpected = Object.keys(state).filter((k) => !known.has(k));
    if (unexpected.length) throw new Error(`optimizer state has keys for parameters this optimizer lacks: ${unexpected.slice(0, 5).join(', ')}`);
    native.optimizerSetState(this.handle, entries);
  }

  dispose(): void {
    native.optimizerDispose(this.handle);
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

export interface AdamWOptions {
  lr?: number;
  betas?: readonly [number, number];
  eps?: number;
  weightDecay?: number;
  amsgrad?: boolean;
}

export class AdamW extends Optimizer {
  protected readonly slots = ['step', 'exp_avg', 'exp_avg_sq', 'max_exp_avg_sq'];
  constructor(params: readonly Tensor[] | readonly ParamGroup[], { lr = 1e-3, betas = [0.9, 0.999], eps = 1e-8, weightDecay = 1e-2, amsgrad = false }: AdamWOptions = {}) {
    const groups = groupsOf(params);
    super(groups, lr, (lrs) =>
      native.adamw(groups.map((g) => g.params.map((p) => p.handle)), lrs, groups.map((g) => g.weightDecay ?? weightDecay), betas[0], betas[1], eps, amsgrad),
    );
  }
}

export interface SGDOptions {
  lr?: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  weightDecay?: number;
}

export class SGD extends Optimizer {
  protected readonly slots = ['momentum_buffer'];
  constructor(params: readonly Tensor[] | readonly ParamGroup[], { lr = 1e-2, momentum = 0, dampening = 0, nesterov = false, weightDecay = 0 }: SGDOptions = {}) {
    const groups = groupsOf(params);
    super(groups, lr, (lrs) =>
      native.sgd(groups.map((g) => g.params.map((p) => p.handle)), lrs, groups.map((g) => g.weightDecay ?? weightDecay), momentum, dampening, nesterov),
    );
  }
}

/** Scales gradients so their joint norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number, normType = 2): number {
  return native.clipGradNorm(params.map((p) => p.handle), maxNorm, normType);
}
