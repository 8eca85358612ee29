// Errors from the tensor engine: libtorch failures become catchable Errors that name the op and
// its tensors' shapes and dtypes; wrong argument types become TypeErrors; nothing crashes the
// process, and work goes on normally after each error.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AdamW,
  arange,
  cat,
  conv2d,
  dropout,
  embedding,
  full,
  Generator,
  gradcheck,
  interpolate,
  layerNorm,
  linear,
  ones,
  rand,
  randint,
  randn,
  randnLike,
  randperm,
  SGD,
  stack,
  type Tensor,
  tensor,
  tidy,
  zeros,
} from '../src/tensor/index.js';
import { native } from '../src/tensor/native.js';

/** After an error, the engine still works: a fresh computation gives the right answer. */
function stillWorks(): void {
  tidy(() => {
    const r = ones([2, 2]).matmul(full([2, 2], 3)).sum().item();
    assert.equal(r, 24);
  });
}

/** Asserts fn throws an instance of `kind` (exactly that class for Error) whose message matches every pattern. */
function throwsWith(fn: () => unknown, kind: typeof Error | typeof TypeError | typeof RangeError, ...patterns: RegExp[]): void {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  assert.ok(caught !== undefined, 'expected an error');
  assert.ok(caught instanceof kind, `expected a ${kind.name}, got ${(caught as Error)?.constructor?.name}: ${(caught as Error)?.message}`);
  if (kind === Error) assert.ok(!(caught instanceof TypeError), `expected an Error from libtorch, got a TypeError: ${(caught as Error).message}`);
  for (const p of patterns) assert.match((caught as Error).message, p);
  stillWorks();
}

// ---- libtorch errors: op, shapes and dtypes in the message ----

describe('bad shapes give Errors naming the op, shapes and dtypes', () => {
  test('matmul with mismatched inner dims', () =>
    tidy(() => {
      throwsWith(() => zeros([2, 3]).matmul(zeros([4, 5])), Error, /matmul\(Tensor\[2, 3\] Float, Tensor\[4, 5\] Float\)/, /2x3 and 4x5/);
      throwsWith(() => zeros([2, 3], { dtype: 'float64' }).matmul(zeros([3, 2])), Error, /matmul\(Tensor\[2, 3\] Double, Tensor\[3, 2\] Float\)/);
      throwsWith(() => zeros([2, 2, 3]).bmm(zeros([2, 4, 3])), Error, /bmm\(Tensor\[2, 2, 3\] Float, Tensor\[2, 4, 3\] Float\)/);
      throwsWith(() => linear(zeros([2, 3]), zeros([4, 5])), Error, /linear\(Tensor\[2, 3\] Float, Tensor\[4, 5\] Float, null\)/);
    }));

  test('view with the wrong number of elements', () =>
    tidy(() => {
      throwsWith(() => zeros([2, 3]).view(4), Error, /view\(Tensor\[2, 3\] Float, \[4\]\)/, /invalid for input of size 6/);
      throwsWith(() => zeros([2, 3]).reshape(4, 2), Error, /reshape\(Tensor\[2, 3\] Float, \[4, 2\]\)/);
      throwsWith(() => zeros([2, 3]).view(-1, -1), Error, /view/);
    }));

  test('cat and stack of mismatched shapes', () =>
    tidy(() => {
      throwsWith(() => cat([zeros([2, 3]), zeros([2, 4])]), Error, /cat\(\[Tensor\[2, 3\] Float, Tensor\[2, 4\] Float\], 0\)/, /Sizes of tensors must match/);
      throwsWith(() => stack([zeros([2]), zeros([3])]), Error, /stack\(\[Tensor\[2\] Float, Tensor\[3\] Float\], 0\)/);
    }));

  test('conv2d with the wrong number of channels', () =>
    tidy(() => {
      throwsWith(
        () => conv2d(zeros([1, 3, 5, 5]), zeros([2, 4, 3, 3])),
        Error,
        /conv2d\(Tensor\[1, 3, 5, 5\] Float, Tensor\[2, 4, 3, 3\] Float/,
        /4 channels, but got 3/,
      );
      throwsWith(() => conv2d(zeros([1, 4, 5, 5]), zeros([2, 4, 3, 3]), null, { groups: 3 }), Error, /conv2d/);
      throwsWith(() => conv2d(zeros([1, 1, 2, 2]), zeros([1, 1, 3, 3])), Error, /conv2d/, /Kernel size can't be greater than actual input size/);
    }));

  test('broadcasting, norms and other shape errors', () =>
    tidy(() => {
      throwsWith(() => zeros([2, 3]).add(zeros([4])), Error, /add\(Tensor\[2, 3\] Float, Tensor\[4\] Float, 1\)/);
      throwsWith(() => layerNorm(zeros([2, 3]), [4]), Error, /layerNorm\(Tensor\[2, 3\] Float, \[4\]/);
      throwsWith(() => zeros([2]).permute(0, 1), Error, /permute/);
      throwsWith(() => zeros([2, 3]).transpose(0, 5), Error, /transpose/, /out of range/);
      throwsWith(() => zeros([2, 3]).sum(4), Error, /sum/);
      throwsWith(() => zeros([2, 3]).item(), Error, /item\(Tensor\[2, 3\] Float\)/);
      throwsWith(() => zeros([3]).expand(2, 2), Error, /expand/);
      throwsWith(() => zeros([2, 3]).split([1, 2]), Error, /splitWithSizes\(Tensor\[2, 3\] Float, \[1, 2\], 0\)/);
    }));

  test('dtype errors name the dtypes', () =>
    tidy(() => {
      throwsWith(() => tensor([1, 2], { dtype: 'int64' }).lerp(tensor([1, 2], { dtype: 'int64' }), 0.5), Error, /lerp\(Tensor\[2\] Long, Tensor\[2\] Long, 0.5\)/);
      throwsWith(() => tensor([true, false]).add_(ones([2])), Error, /add_\(Tensor\[2\] Bool, Tensor\[2\] Float, 1\)/, /can't be cast/);
      throwsWith(() => tensor([1, 2], { dtype: 'int64' }).add(ones([2], { dtype: 'int64' }), 0.5), Error, /add\(Tensor\[2\] Long, Tensor\[2\] Long, 0.5\)/);
      throwsWith(() => embedding(ones([3, 2]), ones([2])), Error, /embedding\(Tensor\[3, 2\] Float, Tensor\[2\] Float\)/);
    }));

  test('in-place ops on a leaf that requires grad', () =>
    tidy(() => {
      const x = ones([2]).requiresGrad_();
      throwsWith(() => x.fill_(3), Error, /fill_/, /leaf Variable that requires grad/);
    }));
});

describe('index out of range gives an Error', () => {
  test('indexSelect, select, gather, embedding, take, narrow, slice of a dim out of range', () =>
    tidy(() => {
      const t = zeros([2, 3]);
      throwsWith(() => t.indexSelect(0, tensor([5], { dtype: 'int64' })), Error, /indexSelect\(Tensor\[2, 3\] Float, 0, Tensor\[1\] Long\)/, /out of range/);
      throwsWith(() => t.indexSelect(1, tensor([-7], { dtype: 'int64' })), Error, /indexSelect/);
      throwsWith(() => t.select(0, 5), Error, /select\(Tensor\[2, 3\] Float, 0, 5\)/, /out of range/);
      throwsWith(() => t.select(3, 0), Error, /select/);
      throwsWith(() => t.gather(1, tensor([0, 9], { dtype: 'int64', shape: [2, 1] })), Error, /gather/);
      throwsWith(() => embedding(ones([3, 2]), tensor([3], { dtype: 'int64' })), Error, /embedding/, /out of range/);
      throwsWith(() => t.take(tensor([2], { dtype: 'int64' })), Error, /index/, /out of bounds/);
      throwsWith(() => t.narrow(1, 2, 5), Error, /narrow/);
      throwsWith(() => t.slice(4, 0, 1), Error, /slice/);
      throwsWith(() => t.indexSelect(0, tensor([0.5])), Error, /indexSelect/);
      assert.throws(() => t.size(3), RangeError);
    }));
});

// ---- argument type errors ----

describe('wrong argument types give TypeErrors', () => {
  test('a non-tensor to a native op directly', () => {
    throwsWith(() => native.add({} as never, {} as never, 1), TypeError, /add: argument 1 must be a tensor/);
    throwsWith(() => native.matmul(null as never, undefined as never), TypeError, /matmul: argument 1 must be a tensor/);
    throwsWith(() => native.shape(undefined as never), TypeError, /shape/);
    throwsWith(() => (native.shape as () => unknown)(), TypeError, /shape: argument 1 must be a tensor \(got nothing\)/);
    throwsWith(() => native.sumAll(42 as never), TypeError, /sumAll/);
    throwsWith(() => native.cat([{}] as never, 0), TypeError, /cat/);
    throwsWith(() => native.dispose({} as never), TypeError, /dispose/);
    throwsWith(() => native.toBuffer('x' as never), TypeError, /toBuffer/);
    throwsWith(() => native.index(zeros([2]).handle, [{}] as never), TypeError, /index/);
    throwsWith(() => native.fromBuffer('abc' as never, 6, [1]), TypeError, /fromBuffer/);
    throwsWith(() => native.optimizerStep({} as never), TypeError, /optimizerStep/);
  });

  test('the wrong kind of native handle is refused by its type tag', () =>
    tidy(() => {
      const g = new Generator(1);
      const t = zeros([2]);
      throwsWith(() => native.add(g.handle as never, t.handle, 1), TypeError, /add: argument 1 must be a tensor/);
      throwsWith(() => native.randn([2], t.handle as never, 6), TypeError, /randn: argument 2 must be a Generator/);
      throwsWith(() => native.optimizerStep(t.handle as never), TypeError, /optimizer/);
      throwsWith(() => native.generatorSeed({} as never), TypeError, /Generator/);
    }));

  test('wrong scalar and list types to native ops', () =>
    tidy(() => {
      const t = zeros([2, 3]);
      throwsWith(() => native.add(t.handle, t.handle, 'x' as never), TypeError, /add: argument 3 must be a number or boolean \(got "x"\)/);
      throwsWith(() => native.reshape(t.handle, 6 as never), TypeError, /reshape: argument 2 must be an array/);
      throwsWith(() => native.select(t.handle, 0, 1.5), TypeError, /select: argument 3 must be an integer \(got 1.5\)/);
      throwsWith(() => native.transpose(t.handle, NaN, 1), TypeError, /transpose: argument 2 must be an integer/);
      throwsWith(() => native.zeros([2], 99, 'cpu'), TypeError, /zeros: argument 2 must be a dtype code/);
      throwsWith(() => native.flatten(t.handle, 0, '1' as never), TypeError, /flatten: argument 3/);
      throwsWith(() => native.layerNorm(t.handle, [3], null, null, 'eps' as never), TypeError, /layerNorm: argument 5 must be a number/);
      throwsWith(() => native.dropout(t.handle, 0.5, 1 as never), TypeError, /dropout: argument 3 must be a boolean/);
      throwsWith(() => native.newGenerator('seed' as never), TypeError, /newGenerator/);
    }));

  test('a string where a number is needed, through the Tensor API', () =>
    tidy(() => {
      const t = zeros([2, 3]);
      throwsWith(() => t.clamp('a' as never), TypeError, /clamp: argument 2 must be a number or boolean \(got "a"\)/);
      throwsWith(() => t.reshape('a' as never), TypeError, /reshape: argument 2 must be an integer/);
      throwsWith(() => t.select(0, '1' as never), TypeError, /select/);
      throwsWith(() => t.softmax('1' as never), TypeError, /softmax/);
      throwsWith(() => t.sum('0' as never), TypeError, /sum/);
      throwsWith(() => t.add('x' as never), TypeError);
      throwsWith(() => t.mul('2' as never), TypeError);
      throwsWith(() => t.matmul(3 as never), TypeError);
      throwsWith(() => t.fill_('1' as never), TypeError, /fill_/);
    }));

  test('a number plus a non-number alpha is a TypeError, not a silent NaN', () =>
    tidy(() => {
      const t = zeros([2, 3]);
      throwsWith(() => t.add(1, 'x' as never), TypeError);
      throwsWith(() => t.sub(1, 'x' as never), TypeError);
      throwsWith(() => t.add(1, null as never), TypeError);
    }));

  test('a disposed tensor', () =>
    tidy(() => {
      const a = ones([2]);
      const b = ones([2]);
      b.dispose();
      assert.equal(b.isDisposed, true);
      throwsWith(() => a.add(b), TypeError, /add: argument 2 must be a tensor, but this tensor was disposed/);
      throwsWith(() => b.add(1), TypeError, /disposed/);
      throwsWith(() => b.toNumbers(), TypeError, /disposed/);
      throwsWith(() => b.item(), TypeError, /disposed/);
      throwsWith(() => cat([a, b]), TypeError, /cat/);
      b.dispose(); // a second dispose is harmless
      assert.deepEqual(a.toNumbers(), [1, 1]);
    }));

  test('a disposed optimizer', () =>
    tidy(() => {
      const p = ones([2]).requiresGrad_();
      const opt = new SGD([p], { lr: 0.1 });
      opt.dispose();
      throwsWith(() => opt.step(), TypeError, /optimizerStep/, /disposed/);
    }));
});

// ---- creation errors ----

describe('creation errors are clear', () => {
  test('tensor() with data not filling the shape', () => {
    throwsWith(() => tensor([1, 2, 3], { shape: [2, 2] }), RangeError, /3 values do not fill shape \[2, 2\]/);
    throwsWith(() => tensor(new Float32Array(5), { shape: [2, 3] }), RangeError, /5 values do not fill shape \[2, 3\]/);
    throwsWith(() => tensor([1.5], { dtype: 'int64' }), TypeError, /non-integer/);
    throwsWith(() => tensor([1], { shape: [-1] }), TypeError, /shape/);
    throwsWith(() => zeros([2, 1.5]), TypeError, /shape/);
    throwsWith(() => tensor(new Uint16Array([1])), TypeError, /ambiguous/);
  });

  test('unknown dtype', () => {
    throwsWith(() => zeros([2], { dtype: 'float65' as never }), TypeError, /unknown dtype 'float65'/);
    throwsWith(() => tidy(() => ones([2]).sum(0, false, 'int128' as never)), TypeError, /unknown dtype/);
  });

  test('unknown dtype in to() and tensor() is reported as a dtype, not as a device', () =>
    tidy(() => {
      throwsWith(() => ones([2]).to('float65' as never), TypeError, /float65/, /dtype/);
      // tensor() of plain numbers converts with to(dtype): the same message
      throwsWith(() => tensor([1], { dtype: 'double' as never }), TypeError, /unknown dtype 'double'/);
    }));

  test('cuda without CUDA says so and how to get it', { skip: native.cudaAvailable() && 'CUDA is available here' }, () => {
    throwsWith(() => zeros([2], { device: 'cuda' }), Error, /CUDA is not available/, /PyTorch/);
    throwsWith(() => tidy(() => ones([2]).to('cuda')), Error, /CUDA is not available/);
    stillWorks();
  });

  test('unknown device', () => {
    throwsWith(() => zeros([2], { device: 'gpu' as never }), TypeError, /unknown device 'gpu'/);
    throwsWith(() => tensor([1], { device: 'tpu:0' as never }), TypeError, /unknown device 'tpu:0'/);
    throwsWith(() => tidy(() => ones([2]).to({ device: 'cuda:x' as never })), TypeError, /unknown device/);
    throwsWith(() => native.zeros([2], 6, 'gpu'), Error, /zeros/);
  });

  test('random functions without a generator throw TypeError', () => {
    for (const [name, fn] of [
      ['rand', () => rand([2], undefined as never)],
      ['randn', () => randn([2], {} as never)],
      ['randint', () => randint(0, 3, [2], { generator: 42 } as never)],
      ['randperm', () => randperm(3, undefined as never)],
      ['randnLike', () => tidy(() => randnLike(ones([2]), undefined as never))],
    ] as const) {
      try {
        throwsWith(fn, TypeError, /explicit generator/);
      } catch (error) {
        assert.fail(`${name}: ${(error as Error).message}`);
      }
    }
    throwsWith(() => new Generator(-1), TypeError, /seed/);
    throwsWith(() => new Generator(1.5), TypeError, /seed/);
  });

  test('arange step 0, native buffers of the wrong size', () => {
    throwsWith(() => arange(0, 3, 0), RangeError, /step/);
    throwsWith(() => native.fromBuffer(new Float32Array(2), 6, [3]), Error, /fromBuffer/, /8 bytes/, /12/);
    throwsWith(() => native.zeros([-1], 6, 'cpu'), Error, /zeros/);
  });
});

// ---- errors from the TypeScript layer ----

describe('argument checks in the TypeScript layer', () => {
  test('functional, optimizer and scope argument checks', () =>
    tidy(() => {
      throwsWith(() => cat([]), TypeError, /cat: expected a non-empty array/);
      throwsWith(() => stack([]), TypeError, /stack/);
      throwsWith(() => dropout(ones([2]), 1.5, true), RangeError, /dropout probability/);
      throwsWith(() => interpolate(ones([2, 2]), { size: [4, 4] }), RangeError, /interpolate takes \[N, C, H, W\]/);
      throwsWith(() => interpolate(ones([1, 1, 2, 2]), { size: [4, 4], mode: 'area' as never }), TypeError, /unknown mode 'area'/);
      throwsWith(() => interpolate(ones([1, 1, 2, 2]), {}), TypeError, /size or scaleFactor/);
      throwsWith(() => ones([2]).gelu('fast' as never), Error, /gelu/);
      throwsWith(() => ones([2]).contiguous('nhwc' as never), TypeError, /unknown memory format 'nhwc'/);
      throwsWith(() => new SGD([]), TypeError, /at least one parameter/);
      throwsWith(() => new AdamW([ones([2])]), TypeError, /does not require grad/);
      throwsWith(() => new SGD([ones([2]).requiresGrad_()], { lr: -1 }), RangeError, /learning rate/);
      throwsWith(() => gradcheck((a: Tensor) => a, [ones([2])]), TypeError, /does not require grad/);
      throwsWith(() => tidy(() => Promise.resolve(1) as never), TypeError, /synchronous/);
    }));

  test('loadStateDict with the wrong shapes or keys', () =>
    tidy(() => {
      const p = ones([2]).requiresGrad_();
      const opt = new AdamW([p]);
      p.sum().backward();
      opt.step();
      const state = opt.stateDict();
      const q = ones([3]).requiresGrad_();
      const other = new AdamW([q]);
      throwsWith(() => other.loadStateDict(state), Error, /shape/);
      throwsWith(() => opt.loadStateDict({ ...state, '5.exp_avg': ones([2]) }), Error, /5\.exp_avg/);
      opt.dispose();
      other.dispose();
    }));

  test('backward errors: non-scalar without a gradient, no grad at all', () =>
    tidy(() => {
      const x = ones([3]).requiresGrad_();
      throwsWith(() => x.mul(2).backward(), Error, /backward\(Tensor\[3\] Float, null, false\)/, /only for scalar outputs/);
      throwsWith(() => ones([3]).sum().backward(), Error, /backward/, /does not require grad/);
      throwsWith(() => x.mul(2).backward(ones([4])), Error, /backward/);
    }));
});

describe('the process survives a burst of errors', () => {
  test('many failing calls in a row leave the engine working and free their tensors', () => {
    for (let i = 0; i < 200; i++) {
      try {
        tidy(() => zeros([2, 3]).matmul(zeros([4, 5])));
      } catch {
        // expected
      }
      try {
        native.add({} as never, {} as never, 1);
      } catch {
        // expected
      }
    }
    stillWorks();
  });
});
