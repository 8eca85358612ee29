// Containers whose children are named by position ('0', '1', ...), giving PyTorch's keys
// such as `layers.0.weight` and `to_out.0.bias`.
import { type Tensor } from '../tensor/tensor.js';
import { Module } from './module.js';

/** A module that maps one tensor to one tensor: what Sequential chains. */
export type Layer = Module & { forward(x: Tensor): Tensor };

/** A list of submodules, each registered under its index. It has no forward of its own. */
export class ModuleList<M extends Module = Module> extends Module {
  readonly #items: M[] = [];

  constructor(modules: Iterable<M> = []) {
    super();
    for (const m of modules) this.append(m);
  }

  get length(): number {
    return this.#items.length;
  }
  /** The module at an index; negative counts from the end. */
  at(index: number): M {
    const item = this.#items.at(index);
    if (item === undefined) throw new RangeError(`index ${index} is out of range for a ${this.constructor.name} of ${this.length}`);
    return item;
  }
  append(module: M): this {
    this.registerModule(String(this.#items.length), module);
    this.#items.push(module);
    return this;
  }
  extend(modules: Iterable<M>): this {
    for (const m of modules) this.append(m);
    return this;
  }
  [Symbol.iterator](): Iterator<M> {
    return this.#items[Symbol.iterator]();
  }
}

/** Modules applied one after another: forward(x) = last(...(first(x))). */
export class Sequential extends ModuleList<Layer> {
  constructor(...modules: Layer[]) {
    super(modules);
  }

  forward(x: Tensor): Tensor {
    let y = x;
    for (const m of this) y = m.forward(y);
    return y;
  }
}
