// Making tensors: constants, ranges, random draws and copies of JavaScript data.
import { checkDevice, type Device } from './device.js';
import { type AnyTypedArray, type DType, dtypeCode, dtypeOfTypedArray, isFloating } from './dtype.js';
import { Generator } from './generator.js';
import { native } from './native.js';
import { Tensor } from './tensor.js';

export interface CreateOptions {
  dtype?: DType;
  device?: Device;
}

export interface RandomOptions extends CreateOptions {
  /** The generator to draw from. Required: every random draw in moa is seeded. */
  generator: Generator;
}

function checkShape(shape: readonly number[]): readonly number[] {
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) throw new TypeError(`a shape holds non-negative integers, not [${shape.join(', ')}]`);
  }
  return shape;
}

const dt = (o: CreateOptions | undefined, fallback: DType = 'float32') => dtypeCode(o?.dtype ?? fallback);
const dev = (o: CreateOptions | undefined) => checkDevice(o?.device ?? 'cpu');

export function empty(shape: readonly number[], options?: CreateOptions): Tensor {
  return new Tensor(native.empty(checkShape(shape), dt(options), dev(options)));
}
export function zeros(shape: readonly number[], options?: CreateOptions): Tensor {
  return new Tensor(native.zeros(checkShape(shape), dt(options), dev(options)));
}
export function ones(shape: readonly number[], options?: CreateOptions): Tensor {
  return new Tensor(native.ones(checkShape(shape), dt(options), dev(options)));
}
export function full(shape: readonly number[], value: number | boolean, options?: CreateOptions): Tensor {
  return new Tensor(native.full(checkShape(shape), value, dt(options, typeof value === 'boolean' ? 'bool' : 'float32'), dev(options)));
}
export function zerosLike(t: Tensor, options?: CreateOptions): Tensor {
  return zeros(t.shape, { dtype: t.dtype, device: t.device, ...options });
}
export function onesLike(t: Tensor, options?: CreateOptions): Tensor {
  return ones(t.shape, { dtype: t.dtype, device: t.device, ...options });
}
export function fullLike(t: Tensor, value: number, options?: CreateOptions): Tensor {
  return full(t.shape, value, { dtype: t.dtype, device: t.device, ...options });
}
/** Values from start (inclusive) to end (exclusive); int64 when all arguments are integers. */
export function arange(start: number, end?: number, step = 1, options?: CreateOptions): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new RangeError('arange: step must not be 0');
  const integral = Number.isInteger(start) && Number.isInteger(end) && Number.isInteger(step);
  return new Tensor(native.arange(start, end, step, dt(options, integral ? 'int64' : 'float32'), dev(options)));
}
export function linspace(start: number, end: number, steps: number, options?: CreateOptions): Tensor {
  return new Tensor(native.linspace(start, end, steps, dt(options), dev(options)));
}
export function eye(n: number, options?: CreateOptions): Tensor {
  return new Tensor(native.eye(n, dt(options), dev(options)));
}

function drawn(t: Tensor, options: CreateOptions): Tensor {
  if ((options.device ?? 'cpu') === 'cpu') return t;
  const moved = t.to({ device: checkDevice(options.device) });
  t.dispose();
  return moved;
}
function checkGenerator(options: RandomOptions | undefined): RandomOptions {
  if (!(options?.generator instanceof Generator)) {
    throw new TypeError('random draws need an explicit generator: pass { generator: new Generator(seed) }');
  }
  return options;
}
/** Uniform on [0, 1). */
export function rand(shape: readonly number[], options: RandomOptions): Tensor {
  const o = checkGenerator(options);
  return drawn(new Tensor(native.rand(checkShape(shape), o.generator.handle, dt(o))), o);
}
/** Standard normal. */
export function randn(shape: readonly number[], options: RandomOptions): Tensor {
  const o = checkGenerator(options);
  return drawn(new Tensor(native.randn(checkShape(shape), o.generator.handle, dt(o))), o);
}
/** Integers in [low, high). */
export function randint(low: number, high: number, shape: readonly number[], options: RandomOptions): Tensor {
  const o = checkGenerator(options);
  return drawn(new Tensor(native.randint(low, high, checkShape(shape), o.generator.handle, dt(o, 'int64'))), o);
}
export function randperm(n: number, options: RandomOptions): Tensor {
  const o = checkGenerator(options);
  return drawn(new Tensor(native.randperm(n, o.generator.handle)), o);
}
export function randnLike(t: Tensor, generator: Generator): Tensor {
  return randn(t.shape, { generator, dtype: t.dtype, device: t.device });
}

export interface TensorOptions extends CreateOptions {
  shape?: readonly number[];
}

/**
 * A tensor holding a copy of JavaScript data: a typed array (its dtype unless told otherwise),
 * an array of numbers or booleans, or a single number. Shape defaults to flat.
 */
export function tensor(data: AnyTypedArray | readonly number[] | readonly boolean[] | number, options: TensorOptions = {}): Tensor {
  if (options.dtype !== undefined) dtypeCode(options.dtype); // an unknown dtype fails here, named as one
  const scalar = typeof data === 'number';
  const list = scalar ? [data] : data;
  let values: AnyTypedArray;
  let source: DType;
  if (ArrayBuffer.isView(list)) {
    values = list;
    const halfBits = list instanceof Uint16Array && (options.dtype === 'float16' || options.dtype === 'bfloat16');
    source = halfBits ? options.dtype! : dtypeOfTypedArray(list);
  } else if (list.length > 0 && typeof list[0] === 'boolean') {
    values = Uint8Array.from(list as readonly boolean[], (b) => (b ? 1 : 0));
    source = 'bool';
  } else {
    values = Float64Array.from(list as readonly number[]);
    source = 'float64';
  }
  const dtype = options.dtype ?? (ArrayBuffer.isView(list) ? source : source === 'float64' ? 'float32' : source);
  if (!ArrayBuffer.isView(list) && source === 'float64' && !isFloating(dtype) && !(values as Float64Array).every((v) => Number.isInteger(v))) {
    throw new TypeError(`tensor: non-integer values cannot be stored as ${dtype}`);
  }
  const shape = checkShape(options.shape ?? (scalar ? [] : [values.length]));
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== values.length) throw new RangeError(`tensor: ${values.length} values do not fill shape [${shape.join(', ')}] (${count} elements)`);
  let t = new Tensor(native.fromBuffer(values, dtypeCode(source), shape));
  if (source !== dtype) {
    const cast = t.to(dtype);
    t.dispose();
    t = cast;
  }
  return drawn(t, options);
}
