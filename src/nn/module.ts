// Module: the base of every network piece. A module owns named parameters, buffers and
// submodules, registered explicitly so their dotted names are exactly PyTorch's
// (`down_blocks.0.attentions.0.to_out.0.weight`), which is what checkpoints are keyed by.
import { noGrad } from '../tensor/autograd.js';
import { checkDevice, type Device } from '../tensor/device.js';
import { type DType, isDType, isFloating } from '../tensor/dtype.js';
import { keep } from '../tensor/scope.js';
import { type MemoryFormat, Tensor, type ToOptions } from '../tensor/tensor.js';

export interface BufferOptions {
  /** Persistent buffers are part of the state dict (the default); others are not. */
  persistent?: boolean;
}

export interface LoadOptions {
  /** Throw when keys are missing or unexpected (the default). Shape mismatches always throw. */
  strict?: boolean;
}

export interface LoadResult {
  missing: string[];
  unexpected: string[];
}

export interface ShapeMismatch {
  key: string;
  expected: readonly number[];
  got: readonly number[];
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;
const sameShape = (a: readonly number[], b: readonly number[]) => a.length === b.length && a.every((d, i) => d === b[i]);

/** A state dict that cannot be loaded; lists every problem found, not only the first. */
export class StateDictError extends Error {
  constructor(
    moduleName: string,
    readonly missing: string[],
    readonly unexpected: string[],
    readonly mismatched: ShapeMismatch[],
  ) {
    const lines = [`Error(s) in loading state dict for ${moduleName}:`];
    const quote = (keys: string[]) => keys.map((k) => `"${k}"`).join(', ');
    if (missing.length) lines.push(`  Missing key(s): ${quote(missing)}.`);
    if (unexpected.length) lines.push(`  Unexpected key(s): ${quote(unexpected)}.`);
    for (const m of mismatched) {
      lines.push(`  Size mismatch for "${m.key}": the state dict has shape ${shapeText(m.got)}, the module has ${shapeText(m.expected)}.`);
    }
    super(lines.join('\n'));
    this.name = 'StateDictError';
  }
}

function checkName(name: string): void {
  if (typeof name !== 'string' || name === '' || name.includes('.')) {
    throw new TypeError(`a parameter, buffer or submodule name must be a non-empty string without '.', not '${String(name)}'`);
  }
}

interface BufferSlot {
  tensor: Tensor | null;
  persistent: boolean;
}

export class Module {
  readonly #parameters = new Map<string, Tensor | null>();
  readonly #buffers = new Map<string, BufferSlot>();
  readonly #modules = new Map<string, Module>();
  #training = true;

  // ---- registration ----

  /**
   * Adds a parameter (null registers the name with no tensor, as PyTorch's `bias=None`).
   * The module takes the tensor over: it is kept out of tidy() scopes and, when floating
   * point, made to require grad. It must be a leaf (pass `t.detach()` for a computed value).
   */
  registerParameter(name: string, tensor: Tensor | null): Tensor | null {
    this.#checkFree(name, this.#parameters);
    if (tensor !== null) {
      checkTensor(name, tensor);
      if (!tensor.isLeaf) throw new TypeError(`parameter '${name}' must be a leaf tensor; register t.detach() instead`);
      keep(tensor);
      if (isFloating(tensor.dtype)) tensor.requiresGrad_(true);
    }
    this.#parameters.set(name, tensor);
    return tensor;
  }

  /** Adds a buffer: state that is not trained (running statistics, fixed tables). Kept out of tidy(). */
  registerBuffer(name: string, tensor: Tensor | null, { persistent = true }: BufferOptions = {}): Tensor | null {
    this.#checkFree(name, this.#buffers);
    if (tensor !== null) {
      checkTensor(name, tensor);
      keep(tensor);
    }
    this.#buffers.set(name, { tensor, persistent });
    return tensor;
  }

  /** Adds a submodule; its tensors appear under `name.`. Returns it, to assign to a field. */
  registerModule<M extends Module>(name: string, module: M): M {
    this.#checkFree(name, this.#modules);
    if (!(module instanceof Module)) throw new TypeError(`submodule '${name}' must be a Module`);
    this.#modules.set(name, module);
    return module;
  }

  /** A name may be re-registered as the same kind (replacing it), never as another kind. */
  #checkFree(name: string, own: Map<string, unknown>): void {
    checkName(name);
    for (const kinds of [this.#parameters, this.#buffers, this.#modules] as Map<string, unknown>[]) {
      if (kinds !== own && kinds.has(name)) throw new TypeError(`${this.constructor.name} already has a member named '${name}'`);
    }
  }

  // ---- lookup ----

  /** The parameter at a dotted path (`layers.0.weight`); null when registered as null. Throws when there is none. */
  getParameter(path: string): Tensor | null {
    const [owner, name] = this.#owner(path);
    if (!owner.#parameters.has(name)) throw new RangeError(`${this.constructor.name} has no parameter '${path}'`);
    return owner.#parameters.get(name)!;
  }

  getBuffer(path: string): Tensor | null {
    const [owner, name] = this.#owner(path);
    const slot = owner.#buffers.get(name);
    if (!slot) throw new RangeError(`${this.constructor.name} has no buffer '${path}'`);
    return slot.tensor;
  }

  /** The submodule at a dotted path (`blocks.1.norm`); '' is this module. */
  getSubmodule(path: string): Module {
    if (path === '') return this;
    let module: Module = this;
    for (const name of path.split('.')) {
      const next = module.#modules.get(name);
      if (!next) throw new RangeError(`${this.constructor.name} has no submodule '${path}'`);
      module = next;
    }
    return module;
  }

  #owner(path: string): [Module, string] {
    const dot = path.lastIndexOf('.');
    return dot < 0 ? [this, path] : [this.getSubmodule(path.slice(0, dot)), path.slice(dot + 1)];
  }

  /** For subclasses: a parameter that must be present (throws when missing or null). */
  protected param(name: string): Tensor {
    const t = this.getParameter(name);
    if (t === null) throw new RangeError(`${this.constructor.name}.${name} is null`);
    return t;
  }

  /** For subclasses: a buffer that must be present. */
  protected buffer(name: string): Tensor {
    const t = this.getBuffer(name);
    if (t === null) throw new RangeError(`${this.constructor.name}.${name} is null`);
    return t;
  }

  // ---- iteration (registration order, depth first, as PyTorch) ----

  /** [name, child] for each direct submodule. */
  namedChildren(): [string, Module][] {
    return [...this.#modules];
  }
  children(): Module[] {
    return [...this.#modules.values()];
  }

  /** This module (named prefix, '' by default) and every submodule below it, each once. */
  namedModules(prefix = ''): [string, Module][] {
    const out: [string, Module][] = [];
    const seen = new Set<Module>();
    const visit = (module: Module, name: string) => {
      if (seen.has(module)) return;
      seen.add(module);
      out.push([name, module]);
      for (const [child, sub] of module.#modules) visit(sub, name ? `${name}.${child}` : child);
    };
    visit(this, prefix);
    return out;
  }
  modules(): Module[] {
    return this.namedModules().map(([, m]) => m);
  }

  /** [dotted name, tensor] for every parameter (a tensor shared by several names is listed once). */
  namedParameters(prefix = ''): [string, Tensor][] {
    return this.#collect(prefix, (m) => [...m.#parameters], true);
  }
  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** [dotted name, tensor] for every buffer, persistent or not. */
  namedBuffers(prefix = ''): [string, Tensor][] {
    return this.#collect(prefix, (m) => [...m.#buffers].map(([n, s]) => [n, s.tensor]), true);
  }
  buffers(): Tensor[] {
    return this.namedBuffers().map(([, t]) => t);
  }

  #collect(prefix: string, own: (m: Module) => [string, Tensor | null][], unique: boolean): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [path, module] of this.namedModules(prefix)) {
      for (const [name, t] of own(module)) {
        if (t === null || (unique && seen.has(t))) continue;
        seen.add(t);
        out.push([path ? `${path}.${name}` : name, t]);
      }
    }
    return out;
  }

  /** Parameters that require grad: what an optimizer should be given. */
  trainableParameters(): Tensor[] {
    return this.parameters().filter((p) => p.requiresGrad);
  }

  /** Element count over all parameters (or only the trainable ones). */
  numParameters({ trainableOnly = false } = {}): number {
    return (trainableOnly ? this.trainableParameters() : this.parameters()).reduce((n, p) => n + p.numel, 0);
  }

  // ---- state dict ----

  /**
   * Parameters and persistent buffers by dotted name, in PyTorch's order. The values are
   * detached aliases of the module's tensors, not copies: they share memory (writing into one
   * changes the module) and do not require grad. Each is a new handle: dispose them (or call
   * this inside tidy()) when done.
   */
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [key, t] of this.#stateEntries()) out[key] = t.detach();
    return out;
  }

  /** The module's own tensors behind stateDict()'s keys (tied tensors under each of their names). */
  #stateEntries(): [string, Tensor][] {
    return this.#collect(
      '',
      (m) => [...m.#parameters, ...[...m.#buffers].filter(([, s]) => s.persistent).map(([n, s]): [string, Tensor | null] => [n, s.tensor])],
      false,
    );
  }

  /**
   * Copies a state dict's values into the module's tensors in place (without recording
   * gradients), converting dtype and device as needed. Everything is checked before anything
   * is copied, so a load that throws leaves the module unchanged. Strict mode throws one
   * StateDictError listing every missing, unexpected and mis-shaped key; non-strict mode
   * returns the missing and unexpected keys but still throws on mis-shaped ones.
   */
  loadStateDict(state: Readonly<Record<string, Tensor>>, { strict = true }: LoadOptions = {}): LoadResult {
    const targets = new Map(this.#stateEntries());
    const missing = [...targets.keys()].filter((k) => !Object.hasOwn(state, k));
    const unexpected = Object.keys(state).filter((k) => !targets.has(k));
    const mismatched: ShapeMismatch[] = [];
    for (const [key, target] of targets) {
      const value = state[key];
      if (value === undefined) continue;
      if (!(value instanceof Tensor) || value.isDisposed) throw new TypeError(`state dict value '${key}' is not a live Tensor`);
      if (!sameShape(value.shape, target.shape)) mismatched.push({ key, expected: target.shape, got: value.shape });
    }
    if (mismatched.length || (strict && (missing.length || unexpected.length))) {
      throw new StateDictError(this.constructor.name, strict ? missing : [], strict ? unexpected : [], mismatched);
    }
    noGrad(() => {
      for (const [key, target] of targets) {
        const value = state[key];
        if (value !== undefined) target.copy_(value);
      }
    });
    return { missing, unexpected };
  }

  // ---- training ----

  get training(): boolean {
    return this.#training;
  }
  /** Sets training mode here and in every submodule (dropout is active only in training). */
  train(mode = true): this {
    for (const m of this.modules()) m.#training = mode;
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  /** Stops every parameter from requiring grad (floating-point ones). */
  freeze(): this {
    return this.#setRequiresGrad(false);
  }
  unfreeze(): this {
    return this.#setRequiresGrad(true);
  }
  #setRequiresGrad(on: boolean): this {
    for (const p of this.parameters()) if (isFloating(p.dtype)) p.requiresGrad_(on);
    return this;
  }

  // ---- conversion and memory ----

  /**
   * Converts parameters and buffers, replacing the module's tensors with converted ones (old
   * handles are disposed, so fetch tensors — and build optimizers — after calling this).
   * dtype applies to floating-point tensors only, memoryFormat 'channels_last' to 4-D tensors
   * only. Parameters keep requiring grad as before; accumulated gradients are dropped.
   */
  to(target: DType | Device | ToOptions): this {
    const options: ToOptions = typeof target === 'string' ? (isDType(target) ? { dtype: target } : { device: checkDevice(target) }) : target;
    const converted = new Map<Tensor, Tensor>();
    const convert = (t: Tensor): Tensor => {
      let out = converted.get(t);
      if (!out) {
        out = convertTensor(t, options);
        converted.set(t, out);
      }
      return out;
    };
    for (const module of this.modules()) {
      for (const [name, t] of module.#parameters) if (t) module.#parameters.set(name, convert(t));
      for (const slot of module.#buffers.values()) if (slot.tensor) slot.tensor = convert(slot.tensor);
    }
    for (const [old, now] of converted) if (old !== now) old.dispose();
    return this;
  }

  /** Frees every parameter and buffer of this module and its submodules now. */
  dispose(): void {
    for (const module of this.modules()) {
      for (const t of module.#parameters.values()) t?.dispose();
      for (const slot of module.#buffers.values()) slot.tensor?.dispose();
    }
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

function checkTensor(name: string, tensor: Tensor): void {
  if (!(tensor instanceof Tensor)) throw new TypeError(`'${name}' must be a Tensor or null`);
  if (tensor.isDisposed) throw new TypeError(`'${name}' is a disposed tensor`);
}

/** One tensor converted for Module.to: the same tensor when nothing changes, else a new kept one. */
function convertTensor(t: Tensor, options: ToOptions): Tensor {
  const wanted: ToOptions = {};
  if (options.device !== undefined && checkDevice(options.device) !== t.device) wanted.device = options.device;
  if (options.dtype !== undefined && isFloating(t.dtype) && options.dtype !== t.dtype) wanted.dtype = options.dtype;
  const format: MemoryFormat | undefined = options.memoryFormat;
  if (format !== undefined && format !== 'preserve' && (format === 'contiguous' || t.ndim === 4) && !t.isContiguous(format)) {
    wanted.memoryFormat = format;
  }
  if (Object.keys(wanted).length === 0) return t;
  const requiresGrad = t.requiresGrad;
  const out = keep(noGrad(() => t.to(wanted)));
  if (requiresGrad) out.requiresGrad_(true);
  return out;
}
