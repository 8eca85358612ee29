// Autograd through the tensor engine: gradcheck (central differences, float64) for every
// differentiable op family, gradient bookkeeping, and the optimizers against hand-computed updates.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  AdamW,
  attentionReference,
  cat,
  clipGradNorm,
  conv2d,
  convTranspose2d,
  crossEntropy,
  embedding,
  enableGrad,
  Generator,
  gradcheck,
  groupNorm,
  interpolate,
  isGradEnabled,
  layerNorm,
  linear,
  mseLoss,
  noGrad,
  ones,
  pad,
  randn,
  scaledDotProductAttention,
  SGD,
  stack,
  type Tensor,
  tensor,
  tidy,
  where,
} from '../src/tensor/index.js';
import { close as closeTo, f64, rnd, vals } from './helpers.js';

// ---- helpers ----

let seed = 1000;
/** A float64 leaf that requires grad, with deterministic values in [lo, hi). */
function param(shape: readonly number[], lo = -1, hi = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return tensor(rnd(n, seed++, lo, hi), { shape, dtype: 'float64' }).requiresGrad_();
}

const close = (actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-10, what?: string) => closeTo(actual, expected, tol, what);

/** gradcheck inside a tidy scope. */
function check(fn: (...xs: Tensor[]) => Tensor, make: () => Tensor[], options?: Parameters<typeof gradcheck>[2]): void {
  tidy(() => {
    assert.equal(gradcheck(fn, make(), options), true);
  });
}

// ---- gradcheck, op family by op family ----

describe('gradcheck: element-wise', () => {
  test('add, sub (with alpha), mul, div, pow, broadcasting', () => {
    check((a, b) => a.add(b, 0.7), () => [param([2, 3]), param([3])]);
    check((a, b) => a.sub(b, 2), () => [param([2, 3]), param([2, 1])]);
    check((a, b) => a.mul(b), () => [param([2, 3]), param([2, 3])]);
    check((a, b) => a.div(b), () => [param([2, 3]), param([2, 3], 0.5, 2)]);
    check((a, b) => a.pow(b), () => [param([2, 3], 0.5, 2), param([2, 3])]);
    check((a, b) => a.maximum(b).add(a.minimum(b).mul(3)), () => [param([5]), param([5])]);
    check((a, b) => a.lerp(b, 0.3), () => [param([4]), param([4])]);
    check((a, b, c) => a.addcmul(b, c, 0.5), () => [param([4]), param([4]), param([4])]);
  });

  test('scalar forms: add, sub, rsub, mul, div, pow, remainder', () => {
    check((a) => a.add(2).sub(0.5).mul(-3).div(4), () => [param([2, 3])]);
    check((a) => a.rsub(1), () => [param([3])]);
    check((a) => a.pow(3), () => [param([2, 3])]);
    check((a) => a.pow(0.5), () => [param([2, 3], 0.5, 2)]);
    check((a) => a.remainder(0.3), () => [f64([0.05, 0.41, 0.77, -0.52]).requiresGrad_()]);
  });

  test('unary math', () => {
    const ops: [string, (a: Tensor) => Tensor, number, number][] = [
      ['neg', (a) => a.neg(), -1, 1],
      ['abs', (a) => a.abs(), 0.1, 1],
      ['exp', (a) => a.exp(), -1, 1],
      ['log', (a) => a.log(), 0.5, 2],
      ['log1p', (a) => a.log1p(), 0, 2],
      ['sqrt', (a) => a.sqrt(), 0.5, 2],
      ['rsqrt', (a) => a.rsqrt(), 0.5, 2],
      ['square', (a) => a.square(), -1, 1],
      ['reciprocal', (a) => a.reciprocal(), 0.5, 2],
      ['sin', (a) => a.sin(), -2, 2],
      ['cos', (a) => a.cos(), -2, 2],
      ['tanh', (a) => a.tanh(), -2, 2],
      ['erf', (a) => a.erf(), -2, 2],
      ['sigmoid', (a) => a.sigmoid(), -3, 3],
      ['relu', (a) => a.relu(), 0.1, 1],
      ['silu', (a) => a.silu(), -3, 3],
      ['gelu erf', (a) => a.gelu(), -3, 3],
      ['gelu tanh', (a) => a.gelu('tanh'), -3, 3],
      ['clamp', (a) => a.clamp(-0.5, 0.5), -1, 1],
    ];
    for (const [name, op, lo, hi] of ops) {
      tidy(() => {
        const x = param([2, 4], lo, hi);
        try {
          gradcheck(op, [x]);
        } catch (error) {
          assert.fail(`${name}: ${(error as Error).message}`);
        }
      });
    }
  });

  test('where and masked fill pass gradients to the kept elements only', () => {
    const cond = () => tensor([true, false, true, true, false, false], { shape: [2, 3] });
    check((a, b) => where(cond(), a, b), () => [param([2, 3]), param([2, 3])]);
    check((a) => a.maskedFill(cond(), -2), () => [param([2, 3])]);
    check((a) => a.maskedFill(tensor([false, true, false]), 0.5).mul(a), () => [param([2, 3])]);
    tidy(() => {
      const a = param([2, 3]);
      a.maskedFill(cond(), 0).sum().backward();
      assert.deepEqual(vals(a.grad!), [0, 1, 0, 0, 1, 1]);
    });
  });
});

describe('gradcheck: reductions', () => {
  test('sum, mean over all and dims', () => {
    check((a) => a.sum(), () => [param([2, 3])]);
    check((a) => a.sum(1, true), () => [param([2, 3, 2])]);
    check((a) => a.mean(), () => [param([2, 3])]);
    check((a) => a.mean([0, 2]), () => [param([2, 3, 2])]);
  });
  test('var, std over dims', () => {
    check((a) => a.var(1, { unbiased: false, keepdim: true }), () => [param([2, 4])]);
    check((a) => a.var([0, 1]), () => [param([2, 3])]);
    check((a) => a.std(0), () => [param([3, 2])]);
  });
  test('var, std over all elements (no dims): gradient 2(x - mean)/(n - 1), by hand', () =>
    tidy(() => {
      const xs = [1, 2, 4, 7];
      const mean = 3.5;
      const unbiased = xs.map((v) => (2 * (v - mean)) / 3);
      const biased = xs.map((v) => (2 * (v - mean)) / 4);
      const x = f64(xs, [2, 2]).requiresGrad_();
      x.var().backward();
      close(vals(x.grad!), unbiased, 1e-12, 'var()');
      x.zeroGrad();
      x.var(undefined, { unbiased: false }).backward();
      close(vals(x.grad!), biased, 1e-12, 'var(unbiased: false)');
      x.zeroGrad();
      const sd = Math.sqrt(xs.reduce((s, v) => s + (v - mean) ** 2, 0) / 3);
      x.std().backward();
      close(vals(x.grad!), unbiased.map((g) => g / (2 * sd)), 1e-12, 'std()');
      x.zeroGrad();
      assert.equal(gradcheck((a) => a.var(), [x]), true);
    }));
  test('max, min (values), logsumexp, norm, cumsum', () => {
    check((a) => a.max(), () => [param([2, 3])]);
    check((a) => a.max(1).values, () => [param([3, 4])]);
    check((a) => a.min(0, true).values, () => [param([3, 4])]);
    check((a) => a.logsumexp(1), () => [param([2, 4])]);
    check((a) => a.logsumexp([0, 1]), () => [param([2, 3])]);
    check((a) => a.norm(), () => [param([2, 3])]);
    check((a) => a.norm(2, 1), () => [param([2, 3])]);
    check((a) => a.norm(1, 0), () => [param([2, 3], 0.1, 1)]);
    check((a) => a.norm(3, 1, true), () => [param([2, 3], 0.2, 1)]);
    check((a) => a.cumsum(1), () => [param([2, 3])]);
  });
});

describe('gradcheck: linear algebra', () => {
  test('matmul (matrix, vector, batched broadcast), bmm, linear', () => {
    check((a, b) => a.matmul(b), () => [param([2, 3]), param([3, 4])]);
    check((a, b) => a.matmul(b), () => [param([2, 3]), param([3])]);
    check((a, b) => a.matmul(b), () => [param([2, 2, 3]), param([3, 2])]);
    check((a, b) => a.bmm(b), () => [param([2, 2, 3]), param([2, 3, 2])]);
    check((x, w, b) => linear(x, w, b), () => [param([2, 3]), param([4, 3]), param([4])]);
    check((x, w) => linear(x, w), () => [param([2, 2, 3]), param([2, 3])]);
  });
});

describe('gradcheck: convolution', () => {
  test('conv2d plain with bias', () => {
    check((x, w, b) => conv2d(x, w, b), () => [param([1, 2, 4, 4]), param([2, 2, 3, 3]), param([2])]);
  });
  test('conv2d stride 2, padding 1', () => {
    check((x, w) => conv2d(x, w, null, { stride: 2, padding: 1 }), () => [param([1, 2, 5, 5]), param([2, 2, 3, 3])]);
  });
  test('conv2d dilation 2, asymmetric padding', () => {
    check((x, w) => conv2d(x, w, null, { dilation: 2, padding: [2, 1] }), () => [param([1, 1, 5, 4]), param([2, 1, 3, 2])]);
  });
  test('conv2d groups 2', () => {
    check((x, w, b) => conv2d(x, w, b, { groups: 2, padding: 1 }), () => [param([1, 4, 3, 3]), param([4, 2, 2, 2]), param([4])]);
  });
  test('conv_transpose2d with stride, padding, output padding, groups', () => {
    check((x, w, b) => convTranspose2d(x, w, b), () => [param([1, 2, 3, 3]), param([2, 2, 2, 2]), param([2])]);
    check((x, w) => convTranspose2d(x, w, null, { stride: 2, padding: 1, outputPadding: 1 }), () => [param([1, 2, 2, 3]), param([2, 1, 3, 3])]);
    check((x, w) => convTranspose2d(x, w, null, { groups: 2, dilation: 2 }), () => [param([1, 2, 2, 2]), param([2, 1, 2, 2])]);
  });
});

describe('gradcheck: normalization and activations', () => {
  test('group_norm with affine parameters', () => {
    check((x, w, b) => groupNorm(x, 2, w, b), () => [param([2, 4, 2, 2]), param([4]), param([4])]);
    check((x) => groupNorm(x, 1, null, null, 1e-3), () => [param([1, 2, 2, 3])]);
  });
  test('layer_norm with affine parameters', () => {
    check((x, w, b) => layerNorm(x, [4], w, b), () => [param([2, 3, 4]), param([4]), param([4])]);
    check((x) => layerNorm(x, [2, 3]), () => [param([2, 2, 3])]);
  });
  test('softmax, log_softmax', () => {
    check((a) => a.softmax(-1), () => [param([2, 4], -2, 2)]);
    check((a) => a.softmax(0), () => [param([3, 2], -2, 2)]);
    check((a) => a.logSoftmax(1), () => [param([2, 4], -2, 2)]);
  });
  test('gelu (both forms), silu, sigmoid, tanh on a larger range', () => {
    check((a) => a.gelu('none'), () => [param([10], -4, 4)]);
    check((a) => a.gelu('tanh'), () => [param([10], -4, 4)]);
    check((a) => a.silu(), () => [param([10], -4, 4)]);
    check((a) => a.sigmoid(), () => [param([10], -4, 4)]);
    check((a) => a.tanh(), () => [param([10], -4, 4)]);
  });
});

describe('gradcheck: resampling and shapes', () => {
  test('interpolate bilinear (both alignments), bicubic, nearest', () => {
    check((x) => interpolate(x, { size: [4, 5], mode: 'bilinear' }), () => [param([1, 2, 2, 3])]);
    check((x) => interpolate(x, { size: [2, 2], mode: 'bilinear', alignCorners: true }), () => [param([1, 1, 3, 3])]);
    check((x) => interpolate(x, { size: [4, 4], mode: 'bicubic' }), () => [param([1, 1, 3, 3])]);
    check((x) => interpolate(x, { scaleFactor: 2, mode: 'nearest' }), () => [param([1, 2, 2, 2])]);
    check((x) => interpolate(x, { size: [2, 3], mode: 'nearest' }), () => [param([1, 1, 3, 4])]);
  });
  test('pad constant, reflect, replicate', () => {
    check((x) => pad(x, [1, 2, 0, 1], 'constant', 0.5), () => [param([1, 1, 2, 3])]);
    check((x) => pad(x, [1, 1, 1, 1], 'reflect'), () => [param([1, 1, 3, 3])]);
    check((x) => pad(x, [2, 0], 'replicate'), () => [param([1, 2, 3])]);
  });
  test('cat, stack, split, chunk', () => {
    check((a, b) => cat([a, b], 1), () => [param([2, 2]), param([2, 3])]);
    check((a, b) => stack([a, b], 0).mul(stack([b, a], 1).sum()), () => [param([3]), param([3])]);
    check((a) => { const [p, q] = a.split([1, 3], 1); return p!.mul(q!.sum(1, true)); }, () => [param([2, 4])]);
    check((a) => { const parts = a.split(2); return parts[0]!.sub(parts[1]!.mul(2)); }, () => [param([4, 2])]);
    check((a) => { const [p, q] = a.chunk(2, 1); return p!.mul(q!); }, () => [param([2, 4])]);
  });
  test('reshape, view, permute, transpose, flatten, squeeze, unsqueeze, expand, repeat, flip, roll, tril', () => {
    check((a) => a.reshape(3, 2).matmul(a.reshape(2, 3)), () => [param([6])]);
    check((a) => a.view(2, 3).mul(ones([2, 3], { dtype: 'float64' }).cumsum(1)), () => [param([6])]);
    check((a) => a.permute(2, 0, 1).contiguous().mul(a.permute(2, 0, 1)), () => [param([2, 3, 2])]);
    check((a) => a.transpose(0, 1).matmul(a), () => [param([3, 2])]);
    check((a) => a.flatten().unsqueeze(0).squeeze(0).mul(a.flatten()), () => [param([2, 3])]);
    check((a) => a.expand(3, 2).mul(a.repeat(3, 1)), () => [param([1, 2])]);
    check((a) => a.flip(1).roll(1, 0).tril(), () => [param([3, 3])]);
  });
  test('slice, select, narrow, index, indexSelect, gather, take', () => {
    check((a) => a.slice(1, 1, null, 2), () => [param([2, 5])]);
    check((a) => a.select(0, 1).mul(a.select(1, 0)), () => [param([2, 2])]);
    check((a) => a.narrow(1, 1, 2), () => [param([2, 4])]);
    check((a) => a.index(null, [0, 3, 2]), () => [param([2, 4])]);
    check((a) => a.indexSelect(0, tensor([2, 0, 2], { dtype: 'int64' })), () => [param([3, 2])]);
    check((a) => a.gather(1, tensor([1, 0, 1, 2, 2, 2], { dtype: 'int64', shape: [2, 3] })), () => [param([2, 3])]);
    check((a) => a.take(tensor([1, 1, 0], { dtype: 'int64' })), () => [param([2, 3])]);
    check((a) => a.take(tensor([true, false, true, false])), () => [param([4])]);
  });
});

describe('gradcheck: attention, embedding, losses', () => {
  test('attention reference with bool mask, additive mask, causal', () => {
    const boolMask = () => tensor([true, false, true, true, true, false], { shape: [2, 3] });
    check((q, k, v) => attentionReference(q, k, v, { mask: boolMask() }), () => [param([1, 2, 3]), param([1, 3, 3]), param([1, 3, 2])]);
    check((q, k, v) => attentionReference(q, k, v, { mask: f64([0.1, -0.3, 0.5, 0, 0.2, -1], [2, 3]) }), () => [param([1, 2, 3]), param([1, 3, 3]), param([1, 3, 2])]);
    check((q, k, v) => attentionReference(q, k, v, { causal: true, scale: 0.7 }), () => [param([1, 3, 2]), param([1, 3, 2]), param([1, 3, 2])]);
    check((q, k, v) => scaledDotProductAttention(q, k, v, { mask: boolMask() }), () => [param([1, 2, 3]), param([1, 3, 3]), param([1, 3, 2])]);
  });
  test('embedding (weight gradient, with repeated indices)', () => {
    check((w) => embedding(w, tensor([2, 0, 2, 3], { dtype: 'int64', shape: [2, 2] })), () => [param([4, 3])]);
  });
  test('mse_loss and cross_entropy', () => {
    check((a, b) => mseLoss(a, b), () => [param([2, 3]), param([2, 3])]);
    check((logits) => crossEntropy(logits, tensor([2, 0, 1], { dtype: 'int64' })), () => [param([3, 4], -2, 2)]);
  });
  test('cross_entropy gradient is softmax - onehot over the batch (by hand)', () =>
    tidy(() => {
      const raw = rnd(6, 77, -2, 2);
      const logits = f64(raw, [2, 3]).requiresGrad_();
      crossEntropy(logits, tensor([2, 0], { dtype: 'int64' })).backward();
      const want: number[] = [];
      for (let r = 0; r < 2; r++) {
        const row = raw.slice(r * 3, r * 3 + 3);
        const z = row.reduce((s, v) => s + Math.exp(v), 0);
        row.forEach((v, i) => want.push((Math.exp(v) / z - (i === [2, 0][r] ? 1 : 0)) / 2));
      }
      close(vals(logits.grad!), want, 1e-12);
    }));
});

// ---- gradient bookkeeping ----

describe('autograd bookkeeping', () => {
  test('backward gives d(sum(x²·c))/dx = 2·c·x, computed by hand', () =>
    tidy(() => {
      const x = param([4]);
      const c = f64([1, -2, 0.5, 3]);
      x.square().mul(c).sum().backward();
      close(vals(x.grad!), vals(x).map((v, i) => 2 * [1, -2, 0.5, 3][i]! * v), 1e-12);
      assert.equal(x.isLeaf, true);
      assert.equal(x.square().isLeaf, false);
    }));

  test('gradients accumulate over two backward calls; zeroGrad clears', () =>
    tidy(() => {
      const x = param([3]);
      assert.equal(x.grad, null);
      x.mul(f64([1, 2, 3])).sum().backward();
      x.mul(f64([1, 2, 3])).sum().backward();
      assert.deepEqual(vals(x.grad!), [2, 4, 6]);
      x.zeroGrad();
      assert.equal(x.grad, null);
      x.mul(3).sum().backward();
      assert.deepEqual(vals(x.grad!), [3, 3, 3]);
    }));

  test('grad is a handle on the stored gradient: changing it in place changes the gradient', () =>
    tidy(() => {
      const x = param([3]);
      x.sum().backward();
      x.grad!.mul_(3);
      assert.deepEqual(vals(x.grad!), [3, 3, 3]);
    }));

  test('retainGraph allows a second backward through the same graph', () =>
    tidy(() => {
      const x = param([2]);
      const y = x.exp().sum();
      y.backward(undefined, { retainGraph: true });
      y.backward();
      close(vals(x.grad!), vals(x).map((v) => 2 * Math.exp(v)), 1e-12);
      const z = x.exp().sum();
      z.backward();
      assert.throws(() => z.backward(), /backward/, 'a second backward without retainGraph fails');
    }));

  test('noGrad records nothing; enableGrad turns it back on', () =>
    tidy(() => {
      const x = param([3]);
      assert.equal(isGradEnabled(), true);
      const y = noGrad(() => {
        assert.equal(isGradEnabled(), false);
        const inner = enableGrad(() => x.mul(2));
        assert.equal(inner.requiresGrad, true);
        return x.mul(2).add(1);
      });
      assert.equal(isGradEnabled(), true);
      assert.equal(y.requiresGrad, false);
      assert.throws(() => y.sum().backward(), /does not require grad|backward/);
      // grad mode is restored when fn throws
      assert.throws(() => noGrad(() => { throw new Error('inside'); }), /inside/);
      assert.equal(isGradEnabled(), true);
    }));

  test('detach cuts the graph', () =>
    tidy(() => {
      const x = param([3]);
      const d = x.detach();
      assert.equal(d.requiresGrad, false);
      // z = x · detach(x): the gradient is detach(x), not 2x
      x.mul(d).sum().backward();
      close(vals(x.grad!), vals(x), 0);
    }));

  test('backward on a non-scalar needs a gradient argument', () =>
    tidy(() => {
      const x = param([3]);
      const y = x.mul(2);
      assert.throws(
        () => y.backward(),
        (e: Error) => e instanceof Error && /backward/.test(e.message) && /scalar/.test(e.message),
      );
      y.backward(f64([1, 0.5, -1]));
      close(vals(x.grad!), [2, 1, -2], 0);
    }));

  test('requiresGrad_ turns tracking on and off', () =>
    tidy(() => {
      const x = f64([1, 2]);
      assert.equal(x.requiresGrad, false);
      x.requiresGrad_();
      assert.equal(x.requiresGrad, true);
      x.requiresGrad_(false);
      assert.equal(x.requiresGrad, false);
      assert.equal(x.mul(2).requiresGrad, false);
    }));

  test('gradcheck catches a wrong gradient', () =>
    tidy(() => {
      // detach in the middle hides a dependency: autograd says 0 where finite differences do not
      assert.throws(() => gradcheck((a) => a.mul(a.detach()), [param([3])]), /gradcheck: input 0/);
      assert.throws(() => gradcheck((a) => a.mul(2), [f64([1, 2])]), TypeError);
    }));
});

// ---- optimizers ----

/** loss(p) = Σ sin(p)·c + p², a smooth function with a gradient that changes each step. */
function lossOf(p: Tensor, c: readonly number[]): Tensor {
  return p.sin().mul(f64(c)).add(p.square()).sum();
}
function gradOf(p: readonly number[], c: readonly number[]): number[] {
  return p.map((v, i) => Math.cos(v) * c[i]! + 2 * v);
}

describe('optimizers', () => {
  const init = [0.5, -1.2, 2.0, 0.1];
  const c = [1, -0.5, 2, 0.3];

  test('one SGD step equals p - lr·grad, computed by hand', () =>
    tidy(() => {
      const p = f64(init).requiresGrad_();
      const opt = new SGD([p], { lr: 0.1 });
      lossOf(p, c).backward();
      opt.step();
      const g = gradOf(init, c);
      close(vals(p), init.map((v, i) => v - 0.1 * g[i]!), 1e-14);
      assert.equal(p.requiresGrad, true, 'the step does not detach the parameter');
      opt.dispose();
    }));

  test('SGD with momentum and weight decay over two steps, by hand', () =>
    tidy(() => {
      const [lr, mu, wd] = [0.05, 0.9, 0.01];
      const p = f64(init).requiresGrad_();
      const opt = new SGD([p], { lr, momentum: mu, weightDecay: wd });
      let want = [...init];
      let buf: number[] | null = null;
      for (let step = 0; step < 2; step++) {
        opt.zeroGrad();
        lossOf(p, c).backward();
        opt.step();
        const g = gradOf(want, c).map((v, i) => v + wd * want[i]!);
        buf = buf ? buf.map((b, i) => mu * b + g[i]!) : g;
        want = want.map((v, i) => v - lr * buf![i]!);
      }
      close(vals(p), want, 1e-13);
      opt.dispose();
    }));

  test('AdamW steps match the decoupled AdamW formula, by hand', () =>
    tidy(() => {
      const [lr, b1, b2, eps, wd] = [0.1, 0.8, 0.95, 1e-6, 0.1];
      const p = f64(init).requiresGrad_();
      const opt = new AdamW([p], { lr, betas: [b1, b2], eps, weightDecay: wd });
      let want = [...init];
      let m = init.map(() => 0);
      let v = init.map(() => 0);
      for (let t = 1; t <= 3; t++) {
        opt.zeroGrad();
        lossOf(p, c).backward();
        opt.step();
        const g = gradOf(want, c);
        want = want.map((x) => x * (1 - lr * wd));
        m = m.map((mi, i) => b1 * mi + (1 - b1) * g[i]!);
        v = v.map((vi, i) => b2 * vi + (1 - b2) * g[i]! ** 2);
        const bc1 = 1 - b1 ** t;
        const bc2 = 1 - b2 ** t;
        want = want.map((x, i) => x - (lr / bc1) * (m[i]! / (Math.sqrt(v[i]!) / Math.sqrt(bc2) + eps)));
        close(vals(p), want, 1e-12, `after step ${t}`);
      }
      opt.dispose();
    }));

  test('AdamW defaults are PyTorch\'s (lr 1e-3, betas 0.9/0.999, eps 1e-8, weight decay 1e-2)', () =>
    tidy(() => {
      const p = f64(init).requiresGrad_();
      const opt = new AdamW([p]);
      assert.equal(opt.lr(), 1e-3);
      lossOf(p, c).backward();
      opt.step();
      const g = gradOf(init, c);
      // first step: m̂ = g, v̂ = g², update = lr · g / (|g| + eps)
      close(vals(p), init.map((x, i) => x * (1 - 1e-3 * 1e-2) - 1e-3 * (g[i]! / (Math.abs(g[i]!) + 1e-8))), 1e-12);
      opt.dispose();
    }));

  test('parameter groups with their own lr and weight decay; setLr', () =>
    tidy(() => {
      const a = f64([1, 2]).requiresGrad_();
      const b = f64([3]).requiresGrad_();
      const opt = new SGD([{ params: [a], lr: 0.1 }, { params: [b], lr: 0.01, weightDecay: 0.5 }], { lr: 1 });
      assert.equal(opt.lr(0), 0.1);
      assert.equal(opt.lr(1), 0.01);
      a.sum().add(b.sum()).backward();
      opt.step();
      close(vals(a), [0.9, 1.9], 1e-14);
      close(vals(b), [3 - 0.01 * (1 + 0.5 * 3)], 1e-14);
      opt.setLr(1);
      assert.equal(opt.lr(1), 1);
      opt.zeroGrad();
      assert.equal(a.grad, null);
      a.sum().add(b.sum()).backward();
      opt.step();
      close(vals(a), [-0.1, 0.9], 1e-14);
      opt.dispose();
    }));

  for (const kind of ['AdamW', 'AdamW amsgrad', 'SGD'] as const) {
    test(`${kind} stateDict → new optimizer loadStateDict → next steps identical to an uninterrupted run`, () =>
      tidy(() => {
        const make = (ps: Tensor[]) =>
          kind === 'SGD' ? new SGD(ps, { lr: 0.05, momentum: 0.9 }) : new AdamW(ps, { lr: 0.05, betas: [0.9, 0.99], weightDecay: 0.02, amsgrad: kind === 'AdamW amsgrad' });
        const run = (opt: AdamW | SGD, p: Tensor[], steps: number) => {
          for (let s = 0; s < steps; s++) {
            opt.zeroGrad();
            lossOf(p[0]!, c).add(p[1]!.square().sum()).backward();
            opt.step();
          }
        };
        // uninterrupted: 5 steps
        const a = [f64(init).requiresGrad_(), f64([0.3, -0.7]).requiresGrad_()];
        const optA = make(a);
        run(optA, a, 5);
        // interrupted: 2 steps, save, new parameters (copies) and a new optimizer, load, 3 steps
        const b = [f64(init).requiresGrad_(), f64([0.3, -0.7]).requiresGrad_()];
        const optB = make(b);
        run(optB, b, 2);
        const state = optB.stateDict();
        const slots = kind === 'SGD' ? ['momentum_buffer'] : ['step', 'exp_avg', 'exp_avg_sq', ...(kind === 'AdamW amsgrad' ? ['max_exp_avg_sq'] : [])];
        assert.deepEqual(Object.keys(state).sort(), [0, 1].flatMap((i) => slots.map((s) => `${i}.${s}`)).sort());
        if (kind !== 'SGD') assert.equal(state['0.step']!.item(), 2);
        const saved = b.map((t) => noGrad(() => t.detach().clone()));
        optB.dispose();
        const resumed = saved.map((t) => t.clone().requiresGrad_());
        const optC = make(resumed);
        optC.loadStateDict(state);
        run(optC, resumed, 3);
        assert.deepEqual(vals(resumed[0]!), vals(a[0]!));
        assert.deepEqual(vals(resumed[1]!), vals(a[1]!));
        // and a fresh optimizer without the state does differ
        const fresh = saved.map((t) => t.clone().requiresGrad_());
        const optD = make(fresh);
        run(optD, fresh, 3);
        assert.notDeepEqual(vals(fresh[0]!), vals(a[0]!));
        optA.dispose();
        optC.dispose();
        optD.dispose();
      }));
  }

  test('clipGradNorm returns the pre-clip norm and scales the gradients to maxNorm', () =>
    tidy(() => {
      const a = f64([1, 2]).requiresGrad_();
      const b = f64([3, 4, 5]).requiresGrad_();
      const ga = [3, -4];
      const gb = [1, 2, -2];
      a.mul(f64(ga)).sum().add(b.mul(f64(gb)).sum()).backward();
      const total = Math.sqrt([...ga, ...gb].reduce((s, v) => s + v * v, 0));
      const norm = clipGradNorm([a, b], 2);
      close([norm], [total], 1e-7);
      const after = Math.sqrt([...vals(a.grad!), ...vals(b.grad!)].reduce((s, v) => s + v * v, 0));
      close([after], [2], 1e-5);
      // direction kept
      close(vals(a.grad!), ga.map((v) => (v * 2) / total), 1e-5);
      // below the limit: nothing changes
      const before = vals(b.grad!);
      const n2 = clipGradNorm([a, b], 100);
      close([n2], [after], 1e-7);
      assert.deepEqual(vals(b.grad!), before);
      // infinity norm
      a.zeroGrad();
      b.zeroGrad();
      a.mul(f64(ga)).sum().add(b.mul(f64(gb)).sum()).backward();
      close([clipGradNorm([a, b], 1, Infinity)], [4], 1e-7);
      close(vals(a.grad!), [3 / 4, -1], 1e-5);
      // parameters without gradients are skipped
      assert.equal(clipGradNorm([f64([1]).requiresGrad_()], 1), 0);
    }));

  test('clipGradNorm keeps float64 precision for float64 gradients', () =>
    tidy(() => {
      const a = f64([0]).requiresGrad_();
      const g = 1 + 1e-10;
      a.mul(g).sum().backward();
      assert.equal(clipGradNorm([a], 100), g, 'the norm of a float64 gradient is computed in float64');
    }));

  test('seeded random init + a few AdamW steps is reproducible', () =>
    tidy(() => {
      const runOnce = () => {
        const w = randn([3, 2], { generator: new Generator(5), dtype: 'float64' }).requiresGrad_();
        const opt = new AdamW([w], { lr: 0.01 });
        for (let i = 0; i < 3; i++) {
          opt.zeroGrad();
          w.matmul(f64([1, -1], [2, 1])).square().sum().backward();
          opt.step();
        }
        opt.dispose();
        return vals(w);
      };
      assert.deepEqual(runOnce(), runOnce());
    }));
});
