// The tensor engine's forward ops, checked against values computed independently here in plain
// JavaScript (loops over small inputs), not only against other libtorch ops.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  arange,
  attentionReference,
  autocast,
  cat,
  conv2d,
  convTranspose2d,
  crossEntropy,
  dropout,
  embedding,
  empty,
  eye,
  full,
  fullLike,
  Generator,
  groupNorm,
  interpolate,
  layerNorm,
  linear,
  linspace,
  liveTensors,
  manualSeed,
  mseLoss,
  noGrad,
  oneHot,
  ones,
  onesLike,
  pad,
  rand,
  randint,
  randn,
  randperm,
  scaledDotProductAttention,
  stack,
  type Tensor,
  tensor,
  tidy,
  torchInfo,
  where,
  zeros,
  zerosLike,
} from '../src/tensor/index.js';
import { close as closeTo, f64, rnd, vals } from './helpers.js';

// ---- helpers: deterministic data and independent reference computations ----

const prod = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);
const f32 = (values: readonly number[], shape: readonly number[] = [values.length]) => tensor(values, { shape, dtype: 'float32' });

const close = (actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-6, what?: string) => closeTo(actual, expected, tol, what);

/** erf by its Taylor series; exact to ~1e-12 for |x| <= 3. */
function erf(x: number): number {
  let term = x;
  let sum = x;
  for (let n = 1; n < 120; n++) {
    term *= (-x * x) / n;
    sum += term / (2 * n + 1);
  }
  return (2 / Math.sqrt(Math.PI)) * sum;
}
const sigmoidJs = (x: number) => 1 / (1 + Math.exp(-x));
const geluErf = (x: number) => 0.5 * x * (1 + erf(x / Math.SQRT2));
const geluTanh = (x: number) => 0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));

function matmulRef(a: readonly number[], b: readonly number[], m: number, k: number, n: number): number[] {
  const out = new Array<number>(m * n).fill(0);
  for (let i = 0; i < m; i++) for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) out[i * n + j]! += a[i * k + p]! * b[p * n + j]!;
  return out;
}

function softmaxRows(x: readonly number[], rows: number, cols: number, log = false): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    const row = x.slice(r * cols, (r + 1) * cols);
    const m = Math.max(...row);
    const z = row.reduce((s, v) => s + Math.exp(v - m), 0);
    for (const v of row) out.push(log ? v - m - Math.log(z) : Math.exp(v - m) / z);
  }
  return out;
}

interface ConvArgs {
  stride?: [number, number];
  padding?: [number, number];
  dilation?: [number, number];
  groups?: number;
}
function conv2dRef(x: readonly number[], xs: number[], w: readonly number[], ws: number[], b: readonly number[] | null, o: ConvArgs = {}): { out: number[]; shape: number[] } {
  const [N, C, H, W] = xs as [number, number, number, number];
  const [O, Cg, KH, KW] = ws as [number, number, number, number];
  const [sh, sw] = o.stride ?? [1, 1];
  const [ph, pw] = o.padding ?? [0, 0];
  const [dh, dw] = o.dilation ?? [1, 1];
  const groups = o.groups ?? 1;
  assert.equal(Cg * groups, C);
  const OH = Math.floor((H + 2 * ph - dh * (KH - 1) - 1) / sh) + 1;
  const OW = Math.floor((W + 2 * pw - dw * (KW - 1) - 1) / sw) + 1;
  const Og = O / groups;
  const out: number[] = [];
  for (let n = 0; n < N; n++)
    for (let oc = 0; oc < O; oc++)
      for (let oh = 0; oh < OH; oh++)
        for (let ow = 0; ow < OW; ow++) {
          const g = Math.floor(oc / Og);
          let s = b ? b[oc]! : 0;
          for (let c = 0; c < Cg; c++)
            for (let kh = 0; kh < KH; kh++)
              for (let kw = 0; kw < KW; kw++) {
                const ih = oh * sh - ph + kh * dh;
                const iw = ow * sw - pw + kw * dw;
                if (ih < 0 || ih >= H || iw < 0 || iw >= W) continue;
                const ic = g * Cg + c;
                s += x[((n * C + ic) * H + ih) * W + iw]! * w[((oc * Cg + c) * KH + kh) * KW + kw]!;
              }
          out.push(s);
        }
  return { out, shape: [N, O, OH, OW] };
}

function convTranspose2dRef(
  x: readonly number[],
  xs: number[],
  w: readonly number[],
  ws: number[],
  b: readonly number[] | null,
  o: ConvArgs & { outputPadding?: [number, number] } = {},
): { out: number[]; shape: number[] } {
  const [N, Cin, H, W] = xs as [number, number, number, number];
  const [Cin2, Coutg, KH, KW] = ws as [number, number, number, number];
  assert.equal(Cin, Cin2);
  const [sh, sw] = o.stride ?? [1, 1];
  const [ph, pw] = o.padding ?? [0, 0];
  const [dh, dw] = o.dilation ?? [1, 1];
  const [oph, opw] = o.outputPadding ?? [0, 0];
  const groups = o.groups ?? 1;
  const Cout = Coutg * groups;
  const Cing = Cin / groups;
  const OH = (H - 1) * sh - 2 * ph + dh * (KH - 1) + oph + 1;
  const OW = (W - 1) * sw - 2 * pw + dw * (KW - 1) + opw + 1;
  const out = new Array<number>(N * Cout * OH * OW).fill(0);
  for (let n = 0; n < N; n++)
    for (let oc = 0; oc < Cout; oc++) for (let i = 0; i < OH * OW; i++) out[(n * Cout + oc) * OH * OW + i] = b ? b[oc]! : 0;
  for (let n = 0; n < N; n++)
    for (let ic = 0; ic < Cin; ic++)
      for (let ih = 0; ih < H; ih++)
        for (let iw = 0; iw < W; iw++) {
          const g = Math.floor(ic / Cing);
          const v = x[((n * Cin + ic) * H + ih) * W + iw]!;
          for (let c = 0; c < Coutg; c++)
            for (let kh = 0; kh < KH; kh++)
              for (let kw = 0; kw < KW; kw++) {
                const oh = ih * sh - ph + kh * dh;
                const ow = iw * sw - pw + kw * dw;
                if (oh < 0 || oh >= OH || ow < 0 || ow >= OW) continue;
                const oc = g * Coutg + c;
                out[((n * Cout + oc) * OH + oh) * OW + ow]! += v * w[((ic * Coutg + c) * KH + kh) * KW + kw]!;
              }
        }
  return { out, shape: [N, Cout, OH, OW] };
}

function groupNormRef(x: readonly number[], [N, C, H, W]: number[], G: number, w: readonly number[] | null, b: readonly number[] | null, eps = 1e-5): number[] {
  const out = new Array<number>(x.length);
  const cg = C! / G;
  const hw = H! * W!;
  for (let n = 0; n < N!; n++)
    for (let g = 0; g < G; g++) {
      const idx: number[] = [];
      for (let c = g * cg; c < (g + 1) * cg; c++) for (let i = 0; i < hw; i++) idx.push((n * C! + c) * hw + i);
      const mean = idx.reduce((s, i) => s + x[i]!, 0) / idx.length;
      const v = idx.reduce((s, i) => s + (x[i]! - mean) ** 2, 0) / idx.length;
      for (const i of idx) {
        const c = Math.floor(i / hw) % C!;
        out[i] = ((x[i]! - mean) / Math.sqrt(v + eps)) * (w ? w[c]! : 1) + (b ? b[c]! : 0);
      }
    }
  return out;
}

function layerNormRef(x: readonly number[], D: number, w: readonly number[] | null, b: readonly number[] | null, eps = 1e-5): number[] {
  const out: number[] = [];
  for (let r = 0; r < x.length / D; r++) {
    const row = x.slice(r * D, (r + 1) * D);
    const mean = row.reduce((s, v) => s + v, 0) / D;
    const v = row.reduce((s, e) => s + (e - mean) ** 2, 0) / D;
    row.forEach((e, i) => out.push(((e - mean) / Math.sqrt(v + eps)) * (w ? w[i]! : 1) + (b ? b[i]! : 0)));
  }
  return out;
}

/** Resizes one [H, W] plane as PyTorch does (align_corners false unless told). */
function resizePlane(
  x: readonly number[],
  H: number,
  W: number,
  OH: number,
  OW: number,
  mode: 'nearest' | 'bilinear' | 'bicubic',
  alignCorners = false,
  ratio: [number, number] = [H / OH, W / OW],
): number[] {
  const at = (h: number, w: number) => x[Math.min(Math.max(h, 0), H - 1) * W + Math.min(Math.max(w, 0), W - 1)]!;
  const src = (dst: number, inSize: number, outSize: number, clampZero: boolean) => {
    if (alignCorners) return outSize > 1 ? (dst * (inSize - 1)) / (outSize - 1) : 0;
    const s = (dst + 0.5) * (inSize === H && outSize === OH ? ratio[0] : ratio[1]) - 0.5;
    return clampZero && s < 0 ? 0 : s;
  };
  const A = -0.75;
  const cubic1 = (t: number) => ((A + 2) * t - (A + 3)) * t * t + 1;
  const cubic2 = (t: number) => ((A * t - 5 * A) * t + 8 * A) * t - 4 * A;
  const cubicWeights = (t: number) => [cubic2(t + 1), cubic1(t), cubic1(1 - t), cubic2(2 - t)];
  const out: number[] = [];
  for (let oh = 0; oh < OH; oh++)
    for (let ow = 0; ow < OW; ow++) {
      if (mode === 'nearest') {
        out.push(at(Math.min(Math.floor(oh * ratio[0]), H - 1), Math.min(Math.floor(ow * ratio[1]), W - 1)));
      } else if (mode === 'bilinear') {
        const sh = src(oh, H, OH, true);
        const sw = src(ow, W, OW, true);
        const h0 = Math.floor(sh);
        const w0 = Math.floor(sw);
        const lh = sh - h0;
        const lw = sw - w0;
        const h1 = Math.min(h0 + 1, H - 1);
        const w1 = Math.min(w0 + 1, W - 1);
        out.push((1 - lh) * ((1 - lw) * at(h0, w0) + lw * at(h0, w1)) + lh * ((1 - lw) * at(h1, w0) + lw * at(h1, w1)));
      } else {
        const sh = src(oh, H, OH, false);
        const sw = src(ow, W, OW, false);
        const h0 = Math.floor(sh);
        const w0 = Math.floor(sw);
        const wh = cubicWeights(sh - h0);
        const ww = cubicWeights(sw - w0);
        let s = 0;
        for (let i = 0; i < 4; i++) for (let j = 0; j < 4; j++) s += wh[i]! * ww[j]! * at(h0 - 1 + i, w0 - 1 + j);
        out.push(s);
      }
    }
  return out;
}

/** Attention by hand for [B, L, D] inputs; mask[b?][i][j] true = attend. */
function attentionRef(q: number[], k: number[], v: number[], B: number, L: number, S: number, D: number, Dv: number, opts: { scale?: number; keep?: (b: number, i: number, j: number) => boolean } = {}): number[] {
  const scale = opts.scale ?? 1 / Math.sqrt(D);
  const out: number[] = [];
  for (let b = 0; b < B; b++)
    for (let i = 0; i < L; i++) {
      const scores: number[] = [];
      for (let j = 0; j < S; j++) {
        let s = 0;
        for (let d = 0; d < D; d++) s += q[(b * L + i) * D + d]! * k[(b * S + j) * D + d]!;
        scores.push(opts.keep && !opts.keep(b, i, j) ? -Infinity : s * scale);
      }
      const p = softmaxRows(scores, 1, S);
      for (let d = 0; d < Dv; d++) {
        let s = 0;
        for (let j = 0; j < S; j++) s += p[j]! * v[(b * S + j) * Dv + d]!;
        out.push(s);
      }
    }
  return out;
}

const nums = (t: Tensor) => t.toNumbers();

// ---- creation ----

describe('creation', () => {
  test('zeros, ones, full, empty, eye with shape, dtype and values', () =>
    tidy(() => {
      const z = zeros([2, 3]);
      assert.deepEqual(z.shape, [2, 3]);
      assert.equal(z.dtype, 'float32');
      assert.equal(z.device, 'cpu');
      assert.deepEqual(nums(z), [0, 0, 0, 0, 0, 0]);
      assert.deepEqual(nums(ones([2], { dtype: 'int32' })), [1, 1]);
      assert.equal(ones([2], { dtype: 'int32' }).dtype, 'int32');
      const f = full([2, 2], 2.5);
      assert.equal(f.dtype, 'float32');
      assert.deepEqual(nums(f), [2.5, 2.5, 2.5, 2.5]);
      assert.equal(full([1], true).dtype, 'bool');
      assert.deepEqual(nums(full([3], 7, { dtype: 'int64' })), [7, 7, 7]);
      assert.deepEqual(empty([4, 0]).shape, [4, 0]);
      assert.equal(empty([4, 0]).numel, 0);
      assert.deepEqual(nums(eye(3)), [1, 0, 0, 0, 1, 0, 0, 0, 1]);
      assert.deepEqual(zeros([]).shape, []);
      assert.equal(zeros([]).numel, 1);
    }));

  test('zerosLike, onesLike, fullLike keep shape and dtype', () =>
    tidy(() => {
      const x = ones([2, 3], { dtype: 'float64' });
      assert.deepEqual(zerosLike(x).shape, [2, 3]);
      assert.equal(zerosLike(x).dtype, 'float64');
      assert.equal(onesLike(x, { dtype: 'int32' }).dtype, 'int32');
      assert.deepEqual(nums(fullLike(x, 4)), [4, 4, 4, 4, 4, 4]);
    }));

  test('arange and linspace', () =>
    tidy(() => {
      const a = arange(5);
      assert.equal(a.dtype, 'int64');
      assert.deepEqual(nums(a), [0, 1, 2, 3, 4]);
      assert.deepEqual(nums(arange(2, 11, 3)), [2, 5, 8]);
      const f = arange(0, 1, 0.25);
      assert.equal(f.dtype, 'float32');
      assert.deepEqual(nums(f), [0, 0.25, 0.5, 0.75]);
      assert.deepEqual(nums(arange(0, 3, 1, { dtype: 'float64' })), [0, 1, 2]);
      assert.equal(arange(0, 3, 1, { dtype: 'float64' }).dtype, 'float64');
      close(nums(linspace(-1, 1, 5)), [-1, -0.5, 0, 0.5, 1]);
    }));

  test('tensor() from arrays, typed arrays and scalars', () =>
    tidy(() => {
      const t = tensor([1, 2, 3, 4, 5, 6], { shape: [2, 3] });
      assert.deepEqual(t.shape, [2, 3]);
      assert.equal(t.dtype, 'float32');
      assert.deepEqual(nums(t), [1, 2, 3, 4, 5, 6]);
      const s = tensor(3.5);
      assert.deepEqual(s.shape, []);
      assert.equal(s.item(), 3.5);
      const b = tensor([true, false, true]);
      assert.equal(b.dtype, 'bool');
      assert.deepEqual(nums(b), [1, 0, 1]);
      assert.equal(tensor(new Int32Array([1, -2])).dtype, 'int32');
      assert.equal(tensor(new BigInt64Array([1n, -2n])).dtype, 'int64');
      assert.equal(tensor(new Uint8Array([1, 255])).dtype, 'uint8');
      assert.equal(tensor(new Float32Array([0.5])).dtype, 'float32');
      assert.equal(tensor([1, 2], { dtype: 'int64' }).dtype, 'int64');
      assert.deepEqual(tensor([]).shape, [0]);
    }));

  test('tensor() of a Float64Array keeps float64 (a typed array gives its own dtype)', () =>
    tidy(() => {
      const t = tensor(new Float64Array([0.1, 1 / 3]));
      assert.equal(t.dtype, 'float64', 'a Float64Array should make a float64 tensor, as an Int32Array makes int32');
      assert.deepEqual(Array.from(t.toFloat64Array()), [0.1, 1 / 3]);
    }));

  test('rand, randn, randint, randperm draw from the generator with the right shape and range', () =>
    tidy(() => {
      const g = new Generator(7);
      const u = rand([1000], { generator: g });
      const uv = nums(u);
      assert.ok(uv.every((v) => v >= 0 && v < 1));
      const mean = uv.reduce((a, b) => a + b, 0) / uv.length;
      assert.ok(Math.abs(mean - 0.5) < 0.05, `uniform mean ${mean}`);
      const n = nums(randn([2000], { generator: g, dtype: 'float64' }));
      const nm = n.reduce((a, b) => a + b, 0) / n.length;
      const nv = n.reduce((a, b) => a + (b - nm) ** 2, 0) / n.length;
      assert.ok(Math.abs(nm) < 0.1 && Math.abs(nv - 1) < 0.1, `normal mean ${nm} var ${nv}`);
      const r = randint(3, 7, [500], { generator: g });
      assert.equal(r.dtype, 'int64');
      const rv = nums(r);
      assert.ok(rv.every((v) => Number.isInteger(v) && v >= 3 && v < 7));
      assert.deepEqual([...new Set(rv)].sort(), [3, 4, 5, 6]);
      const p = nums(randperm(10, { generator: g }));
      assert.deepEqual([...p].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }));
});

// ---- element-wise ----

describe('element-wise', () => {
  const xs = rnd(12, 3, -2, 2);
  const ys = rnd(12, 4, 0.5, 2);

  test('arithmetic with tensors and scalars, alpha, broadcasting', () =>
    tidy(() => {
      const x = f64(xs, [3, 4]);
      const y = f64(ys, [3, 4]);
      close(vals(x.add(y)), xs.map((v, i) => v + ys[i]!), 1e-12);
      close(vals(x.add(y, 2)), xs.map((v, i) => v + 2 * ys[i]!), 1e-12);
      close(vals(x.sub(y)), xs.map((v, i) => v - ys[i]!), 1e-12);
      close(vals(x.sub(y, 0.5)), xs.map((v, i) => v - 0.5 * ys[i]!), 1e-12);
      close(vals(x.mul(y)), xs.map((v, i) => v * ys[i]!), 1e-12);
      close(vals(x.div(y)), xs.map((v, i) => v / ys[i]!), 1e-12);
      close(vals(y.pow(x)), ys.map((v, i) => v ** xs[i]!), 1e-12);
      close(vals(x.add(1.5)), xs.map((v) => v + 1.5), 1e-12);
      close(vals(x.sub(1.5)), xs.map((v) => v - 1.5), 1e-12);
      close(vals(x.sub(1.5, 2)), xs.map((v) => v - 3), 1e-12);
      close(vals(x.rsub(1)), xs.map((v) => 1 - v), 1e-12);
      close(vals(x.mul(-3)), xs.map((v) => -3 * v), 1e-12);
      close(vals(x.div(4)), xs.map((v) => v / 4), 1e-12);
      close(vals(y.pow(2)), ys.map((v) => v * v), 1e-12);
      close(vals(y.pow(0.5)), ys.map((v) => Math.sqrt(v)), 1e-12);
      close(vals(x.remainder(0.7)), xs.map((v) => v - 0.7 * Math.floor(v / 0.7)), 1e-12);
      close(vals(x.maximum(y)), xs.map((v, i) => Math.max(v, ys[i]!)), 0);
      close(vals(x.minimum(y)), xs.map((v, i) => Math.min(v, ys[i]!)), 0);
      close(vals(x.lerp(y, 0.25)), xs.map((v, i) => v + 0.25 * (ys[i]! - v)), 1e-12);
      close(vals(x.addcmul(y, y, 0.5)), xs.map((v, i) => v + 0.5 * ys[i]! * ys[i]!), 1e-12);
      // broadcasting [3, 4] + [4] and [3, 1]
      const row = f64([1, 2, 3, 4]);
      const col = f64([10, 20, 30], [3, 1]);
      close(vals(x.add(row)), xs.map((v, i) => v + [1, 2, 3, 4][i % 4]!), 1e-12);
      close(vals(x.mul(col)), xs.map((v, i) => v * [10, 20, 30][Math.floor(i / 4)]!), 1e-12);
      assert.deepEqual(row.add(col).shape, [3, 4]);
    }));

  test('integer arithmetic stays integer; true division gives float', () =>
    tidy(() => {
      const a = tensor([7, -7, 3], { dtype: 'int64' });
      assert.equal(a.add(2).dtype, 'int64');
      assert.deepEqual(nums(a.add(2)), [9, -5, 5]);
      assert.deepEqual(nums(a.mul(3)), [21, -21, 9]);
      assert.equal(a.div(2).dtype, 'float32');
      assert.deepEqual(nums(a.div(2)), [3.5, -3.5, 1.5]);
      assert.deepEqual(nums(a.remainder(3)), [1, 2, 0]);
      assert.equal(tensor([1, 2], { dtype: 'int32' }).add(tensor([1.5, 1.5])).dtype, 'float32');
    }));

  test('unary math matches Math.*', () =>
    tidy(() => {
      const x = f64(xs, [3, 4]);
      const p = f64(ys, [3, 4]);
      const cases: [string, Tensor, number[]][] = [
        ['neg', x.neg(), xs.map((v) => -v)],
        ['abs', x.abs(), xs.map(Math.abs)],
        ['exp', x.exp(), xs.map(Math.exp)],
        ['log', p.log(), ys.map(Math.log)],
        ['log1p', p.log1p(), ys.map(Math.log1p)],
        ['sqrt', p.sqrt(), ys.map(Math.sqrt)],
        ['rsqrt', p.rsqrt(), ys.map((v) => 1 / Math.sqrt(v))],
        ['square', x.square(), xs.map((v) => v * v)],
        ['reciprocal', p.reciprocal(), ys.map((v) => 1 / v)],
        ['sin', x.sin(), xs.map(Math.sin)],
        ['cos', x.cos(), xs.map(Math.cos)],
        ['tanh', x.tanh(), xs.map(Math.tanh)],
        ['erf', x.erf(), xs.map(erf)],
        ['sign', x.sign(), xs.map(Math.sign)],
        ['floor', x.floor(), xs.map(Math.floor)],
        ['ceil', x.ceil(), xs.map(Math.ceil)],
        ['sigmoid', x.sigmoid(), xs.map(sigmoidJs)],
        ['relu', x.relu(), xs.map((v) => Math.max(v, 0))],
        ['silu', x.silu(), xs.map((v) => v * sigmoidJs(v))],
        ['gelu erf', x.gelu(), xs.map(geluErf)],
        ['gelu none', x.gelu('none'), xs.map(geluErf)],
        ['gelu tanh', x.gelu('tanh'), xs.map(geluTanh)],
      ];
      for (const [name, got, want] of cases) {
        assert.equal(got.dtype, 'float64', name);
        close(vals(got), want, 1e-11, name);
      }
      // round: half to even, as PyTorch
      assert.deepEqual(nums(f64([0.5, 1.5, 2.5, -0.5, -1.7, 2.2]).round()), [0, 2, 2, -0, -2, 2]);
    }));

  test('float32 unary ops (sigmoid, silu, gelu both forms) within float32 precision', () =>
    tidy(() => {
      const v = rnd(64, 9, -3, 3);
      const x = f32(v);
      close(nums(x.sigmoid()), v.map(sigmoidJs), 2e-6, 'sigmoid');
      close(nums(x.silu()), v.map((e) => e * sigmoidJs(e)), 2e-6, 'silu');
      close(nums(x.gelu()), v.map(geluErf), 2e-6, 'gelu');
      close(nums(x.gelu('tanh')), v.map(geluTanh), 2e-6, 'gelu tanh');
      // the two gelu forms differ, but by little
      const diff = nums(x.gelu().sub(x.gelu('tanh')).abs().max());
      assert.ok(diff[0]! > 0 && diff[0]! < 1e-2);
    }));

  test('isnan, isfinite, logical ops', () =>
    tidy(() => {
      const x = f32([1, NaN, Infinity, -Infinity, 0]);
      assert.deepEqual(nums(x.isnan()), [0, 1, 0, 0, 0]);
      assert.deepEqual(nums(x.isfinite()), [1, 0, 0, 0, 1]);
      assert.equal(x.isnan().dtype, 'bool');
      const a = tensor([true, true, false, false]);
      const b = tensor([true, false, true, false]);
      assert.deepEqual(nums(a.logicalAnd(b)), [1, 0, 0, 0]);
      assert.deepEqual(nums(a.logicalOr(b)), [1, 1, 1, 0]);
      assert.deepEqual(nums(a.logicalNot()), [0, 0, 1, 1]);
    }));

  test('comparisons with tensors and scalars; allclose and equal', () =>
    tidy(() => {
      const a = f32([1, 2, 3, 4]);
      const b = f32([4, 2, 1, 4]);
      assert.deepEqual(nums(a.eq(b)), [0, 1, 0, 1]);
      assert.deepEqual(nums(a.ne(b)), [1, 0, 1, 0]);
      assert.deepEqual(nums(a.lt(b)), [1, 0, 0, 0]);
      assert.deepEqual(nums(a.le(b)), [1, 1, 0, 1]);
      assert.deepEqual(nums(a.gt(b)), [0, 0, 1, 0]);
      assert.deepEqual(nums(a.ge(b)), [0, 1, 1, 1]);
      assert.equal(a.eq(b).dtype, 'bool');
      assert.deepEqual(nums(a.eq(2)), [0, 1, 0, 0]);
      assert.deepEqual(nums(a.ne(2)), [1, 0, 1, 1]);
      assert.deepEqual(nums(a.lt(2.5)), [1, 1, 0, 0]);
      assert.deepEqual(nums(a.le(2)), [1, 1, 0, 0]);
      assert.deepEqual(nums(a.gt(2)), [0, 0, 1, 1]);
      assert.deepEqual(nums(a.ge(3)), [0, 0, 1, 1]);
      assert.ok(a.allclose(a.add(1e-7)));
      assert.ok(!a.allclose(a.add(1e-3)));
      assert.ok(a.allclose(a.add(1e-3), { atol: 1e-2 }));
      assert.ok(a.equal(f32([1, 2, 3, 4])));
      assert.ok(!a.equal(b));
    }));

  test('where picks elementwise, with broadcasting', () =>
    tidy(() => {
      const c = tensor([true, false, true, false]);
      assert.deepEqual(nums(where(c, f32([1, 2, 3, 4]), f32([10, 20, 30, 40]))), [1, 20, 3, 40]);
      const c2 = tensor([true, false], { shape: [2, 1] });
      const r = where(c2, f32([1, 2, 3]), zeros([1]));
      assert.deepEqual(r.shape, [2, 3]);
      assert.deepEqual(nums(r), [1, 2, 3, 0, 0, 0]);
    }));

  test('clamp with min, max, both', () =>
    tidy(() => {
      const x = f32([-2, -0.5, 0, 0.5, 2]);
      assert.deepEqual(nums(x.clamp(-1, 1)), [-1, -0.5, 0, 0.5, 1]);
      assert.deepEqual(nums(x.clamp(0)), [0, 0, 0, 0.5, 2]);
      assert.deepEqual(nums(x.clamp(null, 0)), [-2, -0.5, 0, 0, 0]);
      assert.equal(x.clamp(-1, 1).dtype, 'float32');
    }));

  test('clamp keeps an integer tensor integer (as PyTorch)', () =>
    tidy(() => {
      const x = tensor([1, 5, 9], { dtype: 'int64' });
      const c = x.clamp(2, 6);
      assert.deepEqual(nums(c), [2, 5, 6]);
      assert.equal(c.dtype, 'int64', 'torch.tensor([1, 5, 9]).clamp(2, 6) is int64');
    }));
});

// ---- reductions ----

describe('reductions', () => {
  const v = rnd(24, 11, -2, 2);
  const shape = [2, 3, 4];
  /** Reduces dim 1 of a [2, 3, 4] array with fn over the 3 values. */
  const overDim1 = (fn: (xs: number[]) => number) => {
    const out: number[] = [];
    for (let a = 0; a < 2; a++) for (let c = 0; c < 4; c++) out.push(fn([0, 1, 2].map((b) => v[(a * 3 + b) * 4 + c]!)));
    return out;
  };
  const sumJs = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
  const meanJs = (xs: number[]) => sumJs(xs) / xs.length;
  const varJs = (xs: number[], unbiased = true) => {
    const m = meanJs(xs);
    return xs.reduce((a, b) => a + (b - m) ** 2, 0) / (xs.length - (unbiased ? 1 : 0));
  };

  test('sum, mean over all and over dims, keepdim, sum dtype', () =>
    tidy(() => {
      const x = f64(v, shape);
      close(vals(x.sum()), [sumJs(v)], 1e-12);
      assert.deepEqual(x.sum().shape, []);
      close(vals(x.mean()), [meanJs(v)], 1e-12);
      close(vals(x.sum(1)), overDim1(sumJs), 1e-12);
      assert.deepEqual(x.sum(1).shape, [2, 4]);
      assert.deepEqual(x.sum(1, true).shape, [2, 1, 4]);
      close(vals(x.mean(1)), overDim1(meanJs), 1e-12);
      assert.deepEqual(x.mean([0, 2]).shape, [3]);
      close(vals(x.mean([0, 2])), [0, 1, 2].map((b) => meanJs([0, 1].flatMap((a) => [0, 1, 2, 3].map((c) => v[(a * 3 + b) * 4 + c]!)))), 1e-12);
      close(vals(x.sum(-1)), [0, 1, 2, 3, 4, 5].map((r) => sumJs(v.slice(r * 4, r * 4 + 4))), 1e-12);
      const ints = tensor([1, 2, 3, 4], { dtype: 'int32' });
      assert.equal(ints.sum().dtype, 'int64');
      const d = ints.sum(0, false, 'float64');
      assert.equal(d.dtype, 'float64');
      assert.equal(d.item(), 10);
    }));

  test('var and std, unbiased and biased, over all and over a dim', () =>
    tidy(() => {
      const x = f64(v, shape);
      close(vals(x.var()), [varJs(v)], 1e-12);
      close(vals(x.var(undefined, { unbiased: false })), [varJs(v, false)], 1e-12);
      close(vals(x.std()), [Math.sqrt(varJs(v))], 1e-12);
      close(vals(x.var(1)), overDim1((a) => varJs(a)), 1e-12);
      close(vals(x.std(1, { unbiased: false })), overDim1((a) => Math.sqrt(varJs(a, false))), 1e-12);
      assert.deepEqual(x.var(1, { keepdim: true }).shape, [2, 1, 4]);
    }));

  test('max, min (all and along a dim with indices), argmax, argmin', () =>
    tidy(() => {
      const x = f64(v, shape);
      assert.equal(x.max().item(), Math.max(...v));
      assert.equal(x.min().item(), Math.min(...v));
      const { values, indices } = x.max(1);
      close(vals(values), overDim1((a) => Math.max(...a)), 0);
      assert.equal(indices.dtype, 'int64');
      assert.deepEqual(nums(indices), overDim1((a) => a.indexOf(Math.max(...a))));
      const mn = x.min(2, true);
      assert.deepEqual(mn.values.shape, [2, 3, 1]);
      assert.deepEqual(nums(mn.indices.flatten()), [0, 1, 2, 3, 4, 5].map((r) => {
        const row = v.slice(r * 4, r * 4 + 4);
        return row.indexOf(Math.min(...row));
      }));
      assert.equal(x.argmax().item(), v.indexOf(Math.max(...v)));
      assert.equal(x.argmin().item(), v.indexOf(Math.min(...v)));
      assert.deepEqual(nums(x.argmax(1)), overDim1((a) => a.indexOf(Math.max(...a))));
      assert.deepEqual(x.argmin(1, true).shape, [2, 1, 4]);
    }));

  test('logsumexp, norm, cumsum, all, any', () =>
    tidy(() => {
      const x = f64(v, shape);
      close(vals(x.logsumexp(1)), overDim1((a) => Math.log(sumJs(a.map(Math.exp)))), 1e-12);
      // logsumexp stays finite where exp overflows
      close(vals(f64([1000, 1000]).logsumexp(0)), [1000 + Math.log(2)], 1e-12);
      close(vals(x.norm()), [Math.sqrt(sumJs(v.map((e) => e * e)))], 1e-12);
      close(vals(x.norm(1, 1)), overDim1((a) => sumJs(a.map(Math.abs))), 1e-12);
      close(vals(x.norm(3, [1], true)), overDim1((a) => sumJs(a.map((e) => Math.abs(e) ** 3)) ** (1 / 3)), 1e-12);
      close(vals(x.norm(Infinity)), [Math.max(...v.map(Math.abs))], 0);
      const c = f64([1, 2, 3, 4, 5, 6], [2, 3]);
      assert.deepEqual(nums(c.cumsum(1)), [1, 3, 6, 4, 9, 15]);
      assert.deepEqual(nums(c.cumsum(0)), [1, 2, 3, 5, 7, 9]);
      assert.equal(tensor([true, true]).all().item(), 1);
      assert.equal(tensor([true, false]).all().item(), 0);
      assert.equal(tensor([false, true]).any().item(), 1);
      assert.equal(tensor([false, false]).any().item(), 0);
    }));
});

// ---- linear algebra ----

describe('matmul, bmm, linear', () => {
  test('matmul of matrices, vectors, and batched broadcasting', () =>
    tidy(() => {
      const a = rnd(6, 21);
      const b = rnd(12, 22);
      close(vals(f64(a, [2, 3]).matmul(f64(b, [3, 4]))), matmulRef(a, b, 2, 3, 4), 1e-12);
      // float32
      close(nums(f32(a, [2, 3]).matmul(f32(b, [3, 4]))), matmulRef(a, b, 2, 3, 4), 1e-6);
      // matrix @ vector
      close(vals(f64(a, [2, 3]).matmul(f64(b.slice(0, 3)))), matmulRef(a, b.slice(0, 3), 2, 3, 1), 1e-12);
      // batched [2, 2, 3] @ [3, 4] broadcasts the matrix
      const a2 = rnd(12, 23);
      const r = f64(a2, [2, 2, 3]).matmul(f64(b, [3, 4]));
      assert.deepEqual(r.shape, [2, 2, 4]);
      close(vals(r), [...matmulRef(a2.slice(0, 6), b, 2, 3, 4), ...matmulRef(a2.slice(6), b, 2, 3, 4)], 1e-12);
    }));

  test('bmm multiplies each batch', () =>
    tidy(() => {
      const a = rnd(12, 31);
      const b = rnd(16, 32);
      const r = f64(a, [2, 2, 3]).bmm(f64(b.slice(0, 12), [2, 3, 2]));
      assert.deepEqual(r.shape, [2, 2, 2]);
      close(vals(r), [...matmulRef(a.slice(0, 6), b.slice(0, 6), 2, 3, 2), ...matmulRef(a.slice(6, 12), b.slice(6, 12), 2, 3, 2)], 1e-12);
    }));

  test('linear is x Wᵀ + b, with and without bias, over leading dims', () =>
    tidy(() => {
      const x = rnd(2 * 3 * 4, 41);
      const w = rnd(5 * 4, 42);
      const b = rnd(5, 43);
      const wt: number[] = [];
      for (let i = 0; i < 4; i++) for (let o = 0; o < 5; o++) wt.push(w[o * 4 + i]!);
      const plain = matmulRef(x, wt, 6, 4, 5);
      const y = linear(f64(x, [2, 3, 4]), f64(w, [5, 4]), f64(b));
      assert.deepEqual(y.shape, [2, 3, 5]);
      close(vals(y), plain.map((e, i) => e + b[i % 5]!), 1e-12);
      close(vals(linear(f64(x, [6, 4]), f64(w, [5, 4]))), plain, 1e-12);
      close(vals(linear(f64(x, [6, 4]), f64(w, [5, 4]), null)), plain, 1e-12);
    }));
});

// ---- convolution ----

describe('convolution', () => {
  const cases: { name: string; xs: number[]; ws: number[]; bias: boolean; o: ConvArgs }[] = [
    { name: 'plain 3x3', xs: [2, 3, 5, 6], ws: [4, 3, 3, 3], bias: true, o: {} },
    { name: 'stride 2, padding 1', xs: [1, 2, 7, 6], ws: [3, 2, 3, 3], bias: true, o: { stride: [2, 2], padding: [1, 1] } },
    { name: 'asymmetric stride/padding, dilation 2', xs: [1, 2, 7, 8], ws: [2, 2, 3, 2], bias: false, o: { stride: [1, 2], padding: [2, 1], dilation: [2, 1] } },
    { name: 'groups 2', xs: [1, 4, 5, 5], ws: [6, 2, 3, 3], bias: true, o: { groups: 2, padding: [1, 1] } },
    { name: 'depthwise', xs: [2, 3, 4, 4], ws: [3, 1, 2, 2], bias: false, o: { groups: 3 } },
  ];
  for (const c of cases) {
    test(`conv2d ${c.name} matches a direct loop`, () =>
      tidy(() => {
        const x = rnd(prod(c.xs), 51);
        const w = rnd(prod(c.ws), 52);
        const b = c.bias ? rnd(c.ws[0]!, 53) : null;
        const want = conv2dRef(x, c.xs, w, c.ws, b, c.o);
        const got = conv2d(f64(x, c.xs), f64(w, c.ws), b ? f64(b) : null, c.o);
        assert.deepEqual(got.shape, want.shape);
        close(vals(got), want.out, 1e-12);
        // float32 too
        close(nums(conv2d(f32(x, c.xs), f32(w, c.ws), b ? f32(b) : null, c.o)), want.out, 1e-5);
      }));
  }

  test('conv2d takes a single number for stride/padding/dilation', () =>
    tidy(() => {
      const x = rnd(50, 54);
      const w = rnd(18, 55);
      const want = conv2dRef(x, [1, 2, 5, 5], w, [1, 2, 3, 3], null, { stride: [2, 2], padding: [1, 1] });
      close(vals(conv2d(f64(x, [1, 2, 5, 5]), f64(w, [1, 2, 3, 3]), null, { stride: 2, padding: 1 })), want.out, 1e-12);
    }));

  const tcases: { name: string; xs: number[]; ws: number[]; bias: boolean; o: ConvArgs & { outputPadding?: [number, number] } }[] = [
    { name: 'plain', xs: [1, 2, 3, 3], ws: [2, 3, 3, 3], bias: true, o: {} },
    { name: 'stride 2, padding 1, output padding 1', xs: [2, 2, 3, 4], ws: [2, 2, 3, 3], bias: true, o: { stride: [2, 2], padding: [1, 1], outputPadding: [1, 1] } },
    { name: 'groups 2, dilation 2', xs: [1, 4, 3, 3], ws: [4, 1, 2, 2], bias: false, o: { groups: 2, dilation: [2, 2] } },
  ];
  for (const c of tcases) {
    test(`conv_transpose2d ${c.name} matches a direct loop`, () =>
      tidy(() => {
        const x = rnd(prod(c.xs), 61);
        const w = rnd(prod(c.ws), 62);
        const b = c.bias ? rnd(c.ws[1]! * (c.o.groups ?? 1), 63) : null;
        const want = convTranspose2dRef(x, c.xs, w, c.ws, b, c.o);
        const got = convTranspose2d(f64(x, c.xs), f64(w, c.ws), b ? f64(b) : null, c.o);
        assert.deepEqual(got.shape, want.shape);
        close(vals(got), want.out, 1e-12);
      }));
  }
});

// ---- normalization, softmax ----

describe('normalization and softmax', () => {
  test('group_norm with and without affine parameters', () =>
    tidy(() => {
      const xs = [2, 4, 3, 3];
      const x = rnd(prod(xs), 71, -3, 3);
      const w = rnd(4, 72, 0.5, 1.5);
      const b = rnd(4, 73);
      close(vals(groupNorm(f64(x, xs), 2, f64(w), f64(b))), groupNormRef(x, xs, 2, w, b), 1e-10);
      close(vals(groupNorm(f64(x, xs), 4)), groupNormRef(x, xs, 4, null, null), 1e-10);
      close(vals(groupNorm(f64(x, xs), 1, null, null, 0.1)), groupNormRef(x, xs, 1, null, null, 0.1), 1e-10);
      close(nums(groupNorm(f32(x, xs), 2, f32(w), f32(b))), groupNormRef(x, xs, 2, w, b), 1e-5);
    }));

  test('layer_norm over the last dims, with and without affine parameters', () =>
    tidy(() => {
      const x = rnd(2 * 3 * 4, 81, -2, 2);
      const w = rnd(4, 82, 0.5, 1.5);
      const b = rnd(4, 83);
      close(vals(layerNorm(f64(x, [2, 3, 4]), [4], f64(w), f64(b))), layerNormRef(x, 4, w, b), 1e-10);
      close(vals(layerNorm(f64(x, [2, 3, 4]), [3, 4])), layerNormRef(x, 12, null, null), 1e-10);
      close(vals(layerNorm(f64(x, [2, 3, 4]), [4], null, null, 0.5)), layerNormRef(x, 4, null, null, 0.5), 1e-10);
    }));

  test('softmax and log_softmax along a dim, with a dtype', () =>
    tidy(() => {
      const x = rnd(12, 91, -4, 4);
      const t = f64(x, [3, 4]);
      close(vals(t.softmax(-1)), softmaxRows(x, 3, 4), 1e-12);
      close(vals(t.softmax(1)), softmaxRows(x, 3, 4), 1e-12);
      close(vals(t.logSoftmax(1)), softmaxRows(x, 3, 4, true), 1e-12);
      // along dim 0: transpose in JS
      const xt: number[] = [];
      for (let c = 0; c < 4; c++) for (let r = 0; r < 3; r++) xt.push(x[r * 4 + c]!);
      const st = softmaxRows(xt, 4, 3);
      const back: number[] = [];
      for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) back.push(st[c * 3 + r]!);
      close(vals(t.softmax(0)), back, 1e-12);
      // large logits stay finite
      close(vals(f64([1000, 1001, 1002]).softmax(0)), softmaxRows([0, 1, 2], 1, 3), 1e-12);
      const h = f32(x, [3, 4]).softmax(1, 'float64');
      assert.equal(h.dtype, 'float64');
      close(vals(h), softmaxRows(x, 3, 4), 1e-6);
      assert.equal(f32(x, [3, 4]).logSoftmax(1, 'float64').dtype, 'float64');
    }));
});

// ---- resampling and padding ----

describe('interpolate and pad', () => {
  const planes = 2;
  const [H, W] = [3, 4];
  const x = rnd(planes * H * W, 101, -1, 1);
  const resizeAll = (OH: number, OW: number, mode: 'nearest' | 'bilinear' | 'bicubic', align = false) =>
    [0, 1].flatMap((p) => resizePlane(x.slice(p * H * W, (p + 1) * H * W), H, W, OH, OW, mode, align));

  for (const mode of ['nearest', 'bilinear', 'bicubic'] as const) {
    for (const [OH, OW] of [
      [6, 8],
      [5, 7],
      [2, 3],
    ] as const) {
      test(`interpolate ${mode} ${H}x${W} -> ${OH}x${OW}`, () =>
        tidy(() => {
          const y = interpolate(f64(x, [1, planes, H, W]), { size: [OH, OW], mode });
          assert.deepEqual(y.shape, [1, planes, OH, OW]);
          close(vals(y), resizeAll(OH, OW, mode), 1e-10, mode);
        }));
    }
  }

  test('interpolate bilinear and bicubic with alignCorners', () =>
    tidy(() => {
      for (const mode of ['bilinear', 'bicubic'] as const) {
        const y = interpolate(f64(x, [1, planes, H, W]), { size: [5, 7], mode, alignCorners: true });
        close(vals(y), resizeAll(5, 7, mode, true), 1e-10, `${mode} align corners`);
      }
    }));

  test('interpolate with scaleFactor; default mode nearest', () =>
    tidy(() => {
      const y = interpolate(f64(x, [1, planes, H, W]), { scaleFactor: 2 });
      assert.deepEqual(y.shape, [1, planes, 6, 8]);
      close(vals(y), resizeAll(6, 8, 'nearest'), 0);
      const z = interpolate(f64(x, [1, planes, H, W]), { scaleFactor: [2, 0.5], mode: 'bilinear' });
      assert.deepEqual(z.shape, [1, planes, 6, 2]);
      close(vals(z), resizeAll(6, 2, 'bilinear'), 1e-10);
    }));

  test('interpolate with a non-integer scaleFactor maps coordinates by 1/scaleFactor, as F.interpolate(scale_factor=...)', () =>
    tidy(() => {
      // F.interpolate(x, scale_factor=1.5, mode='bilinear') on 3x4: output 4x6, source = (dst + 0.5) / 1.5 - 0.5
      const y = interpolate(f64(x, [1, planes, H, W]), { scaleFactor: 1.5, mode: 'bilinear' });
      assert.deepEqual(y.shape, [1, planes, 4, 6]);
      const want = [0, 1].flatMap((p) => resizePlane(x.slice(p * H * W, (p + 1) * H * W), H, W, 4, 6, 'bilinear', false, [1 / 1.5, 1 / 1.5]));
      close(vals(y), want, 1e-10, 'bilinear scale 1.5');
      // nearest, 5 -> 8 with scale 1.7: source = floor(dst / 1.7)
      const n = interpolate(f64([0, 1, 2, 3, 4], [1, 1, 1, 5]), { scaleFactor: [1, 1.7], mode: 'nearest' });
      assert.deepEqual(nums(n), [0, 1, 2, 3, 4, 5, 6, 7].map((d) => Math.floor(d / 1.7)));
    }));

  test('interpolate antialias bilinear downsampling averages (constant stays constant)', () =>
    tidy(() => {
      const y = interpolate(full([1, 1, 8, 8], 3, { dtype: 'float64' }), { size: [2, 2], mode: 'bilinear', antialias: true });
      close(vals(y), [3, 3, 3, 3], 1e-12);
      const r = interpolate(f64(rnd(64, 3), [1, 1, 8, 8]), { size: [3, 5], mode: 'bicubic', antialias: true });
      assert.deepEqual(r.shape, [1, 1, 3, 5]);
    }));

  test('pad constant, reflect, replicate', () =>
    tidy(() => {
      const t = f64([1, 2, 3, 4, 5, 6], [1, 2, 3]);
      assert.deepEqual(nums(pad(t, [1, 2])), [0, 1, 2, 3, 0, 0, 0, 4, 5, 6, 0, 0]);
      assert.deepEqual(nums(pad(t, [1, 0], 'constant', -1)), [-1, 1, 2, 3, -1, 4, 5, 6]);
      assert.deepEqual(nums(pad(t, [2, 1], 'reflect')), [3, 2, 1, 2, 3, 2, 6, 5, 4, 5, 6, 5]);
      assert.deepEqual(nums(pad(t, [2, 1], 'replicate')), [1, 1, 1, 2, 3, 3, 4, 4, 4, 5, 6, 6]);
      // 2-D padding of [N, C, H, W]: [left, right, top, bottom]
      const img = f64([1, 2, 3, 4, 5, 6], [1, 1, 2, 3]);
      const p = pad(img, [1, 0, 0, 1]);
      assert.deepEqual(p.shape, [1, 1, 3, 4]);
      assert.deepEqual(nums(p), [0, 1, 2, 3, 0, 4, 5, 6, 0, 0, 0, 0]);
      assert.deepEqual(nums(pad(img, [0, 0, 1, 1], 'reflect')), [4, 5, 6, 1, 2, 3, 4, 5, 6, 1, 2, 3]);
      assert.deepEqual(nums(pad(img, [1, 1, 1, 0], 'replicate')), [1, 1, 2, 3, 3, 1, 1, 2, 3, 3, 4, 4, 5, 6, 6]);
      // negative padding crops
      assert.deepEqual(nums(pad(t, [-1, 0])), [2, 3, 5, 6]);
    }));
});

// ---- joining and splitting ----

describe('cat, stack, split, chunk', () => {
  test('cat along dims', () =>
    tidy(() => {
      const a = f32([1, 2, 3, 4], [2, 2]);
      const b = f32([5, 6], [1, 2]);
      const c = cat([a, b]);
      assert.deepEqual(c.shape, [3, 2]);
      assert.deepEqual(nums(c), [1, 2, 3, 4, 5, 6]);
      const d = cat([a, f32([7, 8], [2, 1])], 1);
      assert.deepEqual(nums(d), [1, 2, 7, 3, 4, 8]);
      assert.deepEqual(nums(cat([a, a], -1)), [1, 2, 1, 2, 3, 4, 3, 4]);
    }));

  test('stack makes a new dim', () =>
    tidy(() => {
      const a = f32([1, 2]);
      const b = f32([3, 4]);
      assert.deepEqual(stack([a, b]).shape, [2, 2]);
      assert.deepEqual(nums(stack([a, b])), [1, 2, 3, 4]);
      assert.deepEqual(nums(stack([a, b], 1)), [1, 3, 2, 4]);
      assert.deepEqual(stack([a, b, a], -1).shape, [2, 3]);
    }));

  test('split by size and by sizes; chunk', () =>
    tidy(() => {
      const t = arange(10);
      assert.deepEqual(t.split(4).map(nums), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
      assert.deepEqual(t.split([2, 3, 5]).map(nums), [[0, 1], [2, 3, 4], [5, 6, 7, 8, 9]]);
      assert.deepEqual(t.chunk(3).map(nums), [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]);
      const m = arange(12).reshape(3, 4);
      const [l, r] = m.chunk(2, 1);
      assert.deepEqual(nums(l!), [0, 1, 4, 5, 8, 9]);
      assert.deepEqual(nums(r!), [2, 3, 6, 7, 10, 11]);
      assert.deepEqual(m.split(1, 0).map((p) => p.shape), [[1, 4], [1, 4], [1, 4]]);
      assert.equal(m.chunk(4, -1).length, 4);
    }));
});

// ---- shapes and views ----

describe('shapes and views', () => {
  test('reshape, view (shares memory), flatten, squeeze, unsqueeze', () =>
    tidy(() => {
      const t = arange(6, undefined, 1, { dtype: 'float32' });
      const v = t.view(2, 3);
      assert.deepEqual(v.shape, [2, 3]);
      v.select(0, 1).fill_(9);
      assert.deepEqual(nums(t), [0, 1, 2, 9, 9, 9], 'a view shares its base memory');
      assert.deepEqual(t.reshape(3, -1).shape, [3, 2]);
      assert.deepEqual(t.view(-1, 2).shape, [3, 2]);
      const x = zeros([2, 1, 3, 1]);
      assert.deepEqual(x.flatten().shape, [6]);
      assert.deepEqual(x.flatten(1).shape, [2, 3]);
      assert.deepEqual(x.flatten(1, 2).shape, [2, 3, 1]);
      assert.deepEqual(x.squeeze().shape, [2, 3]);
      assert.deepEqual(x.squeeze(1).shape, [2, 3, 1]);
      assert.deepEqual(x.unsqueeze(0).shape, [1, 2, 1, 3, 1]);
      assert.deepEqual(x.unsqueeze(-1).shape, [2, 1, 3, 1, 1]);
      assert.equal(x.ndim, 4);
      assert.equal(x.numel, 6);
      assert.equal(x.size(-2), 3);
    }));

  test('permute, transpose, mT, contiguous copy the right elements', () =>
    tidy(() => {
      const v = rnd(24, 111);
      const t = f64(v, [2, 3, 4]);
      const p = t.permute(2, 0, 1);
      assert.deepEqual(p.shape, [4, 2, 3]);
      assert.equal(p.isContiguous(), false);
      const want: number[] = [];
      for (let c = 0; c < 4; c++) for (let a = 0; a < 2; a++) for (let b = 0; b < 3; b++) want.push(v[(a * 3 + b) * 4 + c]!);
      assert.deepEqual(vals(p), want, 'readback of a permuted view is in its logical order');
      const pc = p.contiguous();
      assert.equal(pc.isContiguous(), true);
      assert.deepEqual(vals(pc), want);
      assert.deepEqual(pc.strides, [6, 3, 1]);
      const tr = t.transpose(0, 2);
      assert.deepEqual(tr.shape, [4, 3, 2]);
      const wantT: number[] = [];
      for (let c = 0; c < 4; c++) for (let b = 0; b < 3; b++) for (let a = 0; a < 2; a++) wantT.push(v[(a * 3 + b) * 4 + c]!);
      assert.deepEqual(vals(tr), wantT);
      assert.deepEqual(t.mT.shape, [2, 4, 3]);
      assert.deepEqual(vals(t.mT.select(0, 0)), [0, 1, 2, 3].flatMap((c) => [0, 1, 2].map((b) => v[b * 4 + c]!)));
      // view of a non-contiguous tensor fails, reshape copies
      assert.throws(() => p.view(24), /view/);
      assert.deepEqual(vals(p.reshape(24)), want);
    }));

  test('expand, repeat, flip, roll, tril, triu', () =>
    tidy(() => {
      const r = f32([1, 2, 3], [3, 1]);
      assert.deepEqual(nums(r.expand(3, 2)), [1, 1, 2, 2, 3, 3]);
      assert.deepEqual(nums(f32([1, 2]).repeat(2, 2)), [1, 2, 1, 2, 1, 2, 1, 2]);
      const m = arange(6).reshape(2, 3);
      assert.deepEqual(nums(m.flip(1)), [2, 1, 0, 5, 4, 3]);
      assert.deepEqual(nums(m.flip(0, 1)), [5, 4, 3, 2, 1, 0]);
      assert.deepEqual(nums(m.roll(1, 1)), [2, 0, 1, 5, 3, 4]);
      assert.deepEqual(nums(m.roll([1, -1], [0, 1])), [4, 5, 3, 1, 2, 0]);
      const sq = ones([3, 3]);
      assert.deepEqual(nums(sq.tril()), [1, 0, 0, 1, 1, 0, 1, 1, 1]);
      assert.deepEqual(nums(sq.triu(1)), [0, 1, 1, 0, 0, 1, 0, 0, 0]);
    }));

  test('channels_last: strides, contiguity, same values, conv agrees', () =>
    tidy(() => {
      const v = rnd(2 * 3 * 4 * 5, 121);
      const t = f64(v, [2, 3, 4, 5]);
      assert.equal(t.isContiguous('channels_last'), false);
      const cl = t.contiguous('channels_last');
      assert.deepEqual(cl.shape, [2, 3, 4, 5]);
      assert.deepEqual(cl.strides, [60, 1, 15, 3]);
      assert.equal(cl.isContiguous('channels_last'), true);
      assert.equal(cl.isContiguous(), false);
      assert.deepEqual(vals(cl), v, 'readback is in logical NCHW order');
      const viaTo = t.to({ memoryFormat: 'channels_last' });
      assert.equal(viaTo.isContiguous('channels_last'), true);
      const back = cl.contiguous();
      assert.equal(back.isContiguous(), true);
      assert.deepEqual(vals(back), v);
      const w = rnd(2 * 3 * 3 * 3, 122);
      const want = conv2dRef(v, [2, 3, 4, 5], w, [2, 3, 3, 3], null, { padding: [1, 1] }).out;
      const y = conv2d(cl, f64(w, [2, 3, 3, 3]), null, { padding: 1 });
      close(vals(y), want, 1e-12);
      assert.equal(y.isContiguous('channels_last'), true, 'conv keeps channels_last');
      // a dtype change preserves the memory format
      assert.equal(cl.to('float32').isContiguous('channels_last'), true);
    }));
});

// ---- slicing and indexing ----

describe('slicing and indexing', () => {
  test('slice, select, narrow, index', () =>
    tidy(() => {
      const t = arange(24).reshape(2, 3, 4);
      assert.deepEqual(nums(t.slice(2, 1, 3)), [1, 2, 5, 6, 9, 10, 13, 14, 17, 18, 21, 22]);
      assert.deepEqual(nums(t.slice(2, null, null, 2).select(0, 0)), [0, 2, 4, 6, 8, 10]);
      assert.deepEqual(nums(t.slice(1, -1).flatten()), [8, 9, 10, 11, 20, 21, 22, 23]);
      assert.deepEqual(nums(t.select(1, 2)), [8, 9, 10, 11, 20, 21, 22, 23]);
      assert.deepEqual(nums(t.select(0, -1).select(0, 0)), [12, 13, 14, 15]);
      assert.deepEqual(nums(t.narrow(2, 1, 2).select(0, 1).select(0, 0)), [13, 14]);
      // t[0, :, 1:4:2]
      const i = t.index(0, null, [1, 4, 2]);
      assert.deepEqual(i.shape, [3, 2]);
      assert.deepEqual(nums(i), [1, 3, 5, 7, 9, 11]);
      // t[1, 2] and t[:, 1:]
      assert.deepEqual(nums(t.index(1, 2)), [20, 21, 22, 23]);
      assert.deepEqual(t.index(null, [1]).shape, [2, 2, 4]);
      assert.deepEqual(t.index().shape, [2, 3, 4]);
      // slices are views
      const z = zeros([3, 3]);
      z.index([1, 3], [0, 2]).fill_(5);
      assert.deepEqual(nums(z), [0, 0, 0, 5, 5, 0, 5, 5, 0]);
    }));

  test('indexSelect and gather', () =>
    tidy(() => {
      const t = arange(12, undefined, 1, { dtype: 'float32' }).reshape(3, 4);
      const idx = tensor([2, 0, 2], { dtype: 'int64' });
      assert.deepEqual(nums(t.indexSelect(0, idx)), [8, 9, 10, 11, 0, 1, 2, 3, 8, 9, 10, 11]);
      assert.deepEqual(nums(t.indexSelect(1, idx)), [2, 0, 2, 6, 4, 6, 10, 8, 10]);
      const g = tensor([3, 0, 1, 1, 2, 2], { dtype: 'int64', shape: [3, 2] });
      // out[i][j] = t[i][g[i][j]]
      assert.deepEqual(nums(t.gather(1, g)), [3, 0, 5, 5, 10, 10]);
      const g0 = tensor([2, 1, 0, 0], { dtype: 'int64', shape: [1, 4] });
      // out[i][j] = t[g0[i][j]][j]
      assert.deepEqual(nums(t.gather(0, g0)), [8, 5, 2, 3]);
      const s = zeros([2, 3]).scatter(1, tensor([2, 0], { dtype: 'int64', shape: [2, 1] }), f32([7, 8], [2, 1]));
      assert.deepEqual(nums(s), [0, 0, 7, 8, 0, 0]);
    }));

  test('take (advanced indexing) with index tensors and bool masks', () =>
    tidy(() => {
      const t = arange(12).reshape(3, 4);
      assert.deepEqual(nums(t.take(tensor([2, 0], { dtype: 'int64' }))), [8, 9, 10, 11, 0, 1, 2, 3]);
      assert.deepEqual(nums(t.take(null, tensor([3, 1], { dtype: 'int64' }))), [3, 1, 7, 5, 11, 9]);
      assert.deepEqual(nums(t.take(tensor([0, 2], { dtype: 'int64' }), tensor([1, 3], { dtype: 'int64' }))), [1, 11]);
      const m = t.gt(6);
      assert.deepEqual(nums(t.take(m)), [7, 8, 9, 10, 11]);
      assert.deepEqual(nums(t.take(tensor([true, false, true]))), [0, 1, 2, 3, 8, 9, 10, 11]);
      assert.deepEqual(nums(t.maskedSelect(m)), [7, 8, 9, 10, 11]);
      assert.deepEqual(nums(f32([0, 3, 0, 4]).nonzero()), [1, 3]);
      assert.deepEqual(f32([0, 3, 0, 4]).nonzero().shape, [2, 1]);
    }));

  test('maskedFill, maskedFill_, put_ (masked and indexed assignment)', () =>
    tidy(() => {
      const x = f32([1, 2, 3, 4]);
      const m = tensor([true, false, true, false]);
      assert.deepEqual(nums(x.maskedFill(m, -1)), [-1, 2, -1, 4]);
      assert.deepEqual(nums(x), [1, 2, 3, 4], 'maskedFill does not change its input');
      // broadcast mask over rows
      const y = zeros([2, 3]).maskedFill(tensor([false, true, false]), 7);
      assert.deepEqual(nums(y), [0, 7, 0, 0, 7, 0]);
      assert.deepEqual(nums(f32([1, 2]).maskedFill(tensor([true, false]), -Infinity)), [-Infinity, 2]);
      const z = f32([1, 2, 3, 4]);
      assert.equal(z.maskedFill_(m, 0), z);
      assert.deepEqual(nums(z), [0, 2, 0, 4]);
      const p = zeros([4]);
      p.put_([m], f32([5, 6]));
      assert.deepEqual(nums(p), [5, 0, 6, 0]);
      const q = zeros([3]);
      q.put_([tensor([0, 2, 0], { dtype: 'int64' })], f32([1, 2, 3]), true);
      assert.deepEqual(nums(q), [4, 0, 2], 'accumulate sums repeated indices');
      const r = zeros([2, 2]);
      r.put_([tensor([1], { dtype: 'int64' }), tensor([0], { dtype: 'int64' })], f32([9]));
      assert.deepEqual(nums(r), [0, 0, 9, 0]);
    }));

  test('embedding, oneHot', () =>
    tidy(() => {
      const w = f32([0, 1, 10, 11, 20, 21], [3, 2]);
      const e = embedding(w, tensor([2, 0, 2, 1], { dtype: 'int64', shape: [2, 2] }));
      assert.deepEqual(e.shape, [2, 2, 2]);
      assert.deepEqual(nums(e), [20, 21, 0, 1, 20, 21, 10, 11]);
      const o = oneHot(tensor([0, 2], { dtype: 'int64' }), 3);
      assert.deepEqual(nums(o), [1, 0, 0, 0, 0, 1]);
    }));
});

// ---- attention ----

describe('attention', () => {
  const [B, L, S, D, Dv] = [2, 3, 4, 5, 3];
  const q = rnd(B * L * D, 131, -2, 2);
  const k = rnd(B * S * D, 132, -2, 2);
  const v = rnd(B * S * Dv, 133, -2, 2);
  const inputs = () => [f64(q, [B, L, D]), f64(k, [B, S, D]), f64(v, [B, S, Dv])] as const;

  test('scaledDotProductAttention and attentionReference match a hand computation', () =>
    tidy(() => {
      const want = attentionRef(q, k, v, B, L, S, D, Dv);
      const [tq, tk, tv] = inputs();
      const fused = scaledDotProductAttention(tq, tk, tv);
      const ref = attentionReference(tq, tk, tv);
      assert.deepEqual(fused.shape, [B, L, Dv]);
      close(vals(fused), want, 1e-10, 'sdpa');
      close(vals(ref), want, 1e-10, 'reference');
      close(vals(fused), vals(ref), 1e-10, 'sdpa vs reference');
    }));

  test('explicit scale', () =>
    tidy(() => {
      const want = attentionRef(q, k, v, B, L, S, D, Dv, { scale: 0.3 });
      const [tq, tk, tv] = inputs();
      close(vals(scaledDotProductAttention(tq, tk, tv, { scale: 0.3 })), want, 1e-10);
      close(vals(attentionReference(tq, tk, tv, { scale: 0.3 })), want, 1e-10);
    }));

  test('bool mask (true = attend), broadcast over the batch', () =>
    tidy(() => {
      const keep = (_b: number, i: number, j: number) => (i + 2 * j) % 3 !== 0 || j === 3;
      const maskValues: boolean[] = [];
      for (let i = 0; i < L; i++) for (let j = 0; j < S; j++) maskValues.push(keep(0, i, j));
      const mask = tensor(maskValues, { shape: [L, S] });
      const want = attentionRef(q, k, v, B, L, S, D, Dv, { keep });
      const [tq, tk, tv] = inputs();
      close(vals(scaledDotProductAttention(tq, tk, tv, { mask })), want, 1e-10, 'sdpa');
      close(vals(attentionReference(tq, tk, tv, { mask })), want, 1e-10, 'reference');
    }));

  test('additive float mask', () =>
    tidy(() => {
      const add = rnd(L * S, 134, -1, 1);
      const [tq, tk, tv] = inputs();
      // hand: scores*scale + mask
      const out: number[] = [];
      const scale = 1 / Math.sqrt(D);
      for (let b = 0; b < B; b++)
        for (let i = 0; i < L; i++) {
          const sc: number[] = [];
          for (let j = 0; j < S; j++) {
            let s = 0;
            for (let d = 0; d < D; d++) s += q[(b * L + i) * D + d]! * k[(b * S + j) * D + d]!;
            sc.push(s * scale + add[i * S + j]!);
          }
          const p = softmaxRows(sc, 1, S);
          for (let d = 0; d < Dv; d++) out.push(p.reduce((s, pj, j) => s + pj * v[(b * S + j) * Dv + d]!, 0));
        }
      close(vals(scaledDotProductAttention(tq, tk, tv, { mask: f64(add, [L, S]) })), out, 1e-10);
    }));

  test('causal attention masks future keys (top-left aligned)', () =>
    tidy(() => {
      const want = attentionRef(q, k, v, B, L, S, D, Dv, { keep: (_b, i, j) => j <= i });
      const [tq, tk, tv] = inputs();
      close(vals(scaledDotProductAttention(tq, tk, tv, { causal: true })), want, 1e-10, 'sdpa');
      close(vals(attentionReference(tq, tk, tv, { causal: true })), want, 1e-10, 'reference');
    }));

  test('4-D [B, H, L, D] float32 attention agrees with the reference', () =>
    tidy(() => {
      const g = new Generator(5);
      const [a, b, c] = [randn([2, 3, 6, 8], { generator: g }), randn([2, 3, 7, 8], { generator: g }), randn([2, 3, 7, 4], { generator: g })];
      const r = scaledDotProductAttention(a!, b!, c!);
      assert.deepEqual(r.shape, [2, 3, 6, 4]);
      assert.ok(r.allclose(attentionReference(a!, b!, c!), { atol: 1e-5, rtol: 1e-4 }));
    }));
});

// ---- losses ----

describe('losses', () => {
  test('mse_loss and cross_entropy match hand computations', () =>
    tidy(() => {
      const a = rnd(6, 141);
      const b = rnd(6, 142);
      close(vals(mseLoss(f64(a), f64(b))), [a.reduce((s, e, i) => s + (e - b[i]!) ** 2, 0) / 6], 1e-12);
      const logits = rnd(12, 143, -2, 2);
      const target = [3, 0, 2];
      const ls = softmaxRows(logits, 3, 4, true);
      const want = -(ls[0 * 4 + 3]! + ls[1 * 4 + 0]! + ls[2 * 4 + 2]!) / 3;
      close(vals(crossEntropy(f64(logits, [3, 4]), tensor(target, { dtype: 'int64' }))), [want], 1e-12);
    }));
});

// ---- dropout ----

describe('dropout', () => {
  test('p = 0 and train = false are the identity', () =>
    tidy(() => {
      const x = f32(rnd(100, 151));
      assert.ok(dropout(x, 0, true).equal(x));
      assert.ok(dropout(x, 0.5, false).equal(x));
    }));

  test('p > 0 zeros about p of the elements and scales the rest by 1/(1-p)', () =>
    tidy(() => {
      manualSeed(1234);
      const n = 20000;
      for (const p of [0.1, 0.5, 0.8]) {
        const y = nums(dropout(ones([n]), p, true));
        const zeros = y.filter((e) => e === 0).length;
        assert.ok(Math.abs(zeros / n - p) < 0.02, `p=${p}: ${zeros / n} zeroed`);
        const kept = y.filter((e) => e !== 0);
        for (const e of kept) if (Math.abs(e - 1 / (1 - p)) > 1e-5) assert.fail(`p=${p}: kept value ${e}, expected ${1 / (1 - p)}`);
      }
    }));

  test('manualSeed makes dropout reproducible', () =>
    tidy(() => {
      manualSeed(99);
      const a = nums(dropout(ones([64]), 0.5, true));
      manualSeed(99);
      const b = nums(dropout(ones([64]), 0.5, true));
      assert.deepEqual(a, b);
    }));
});

// ---- conversion, copies, readback, dtypes ----

describe('conversion and dtypes', () => {
  test("to({ memoryFormat: 'preserve' }) keeps the layout (PyTorch's default for .to)", () =>
    tidy(() => {
      const cl = f32(rnd(2 * 3 * 4 * 5, 123), [2, 3, 4, 5]).contiguous('channels_last');
      const p = cl.to({ dtype: 'float64', memoryFormat: 'preserve' });
      assert.equal(p.dtype, 'float64');
      assert.equal(p.isContiguous('channels_last'), true);
      const q = f32([1, 2, 3, 4], [1, 1, 2, 2]).to({ memoryFormat: 'preserve' });
      assert.equal(q.isContiguous(), true);
    }));


  test('to(dtype), to(device), to(options); same dtype is a no-op alias', () =>
    tidy(() => {
      const x = f32([1.5, -2.25, 3]);
      const d = x.to('float64');
      assert.equal(d.dtype, 'float64');
      assert.deepEqual(vals(d), [1.5, -2.25, 3]);
      assert.deepEqual(nums(x.to('int64')), [1, -2, 3]);
      assert.equal(x.to('int32').dtype, 'int32');
      assert.deepEqual(nums(x.to('bool')), [1, 1, 1]);
      const c = x.to('cpu');
      assert.equal(c.device, 'cpu');
      assert.notEqual(c, x);
      c.fill_(0);
      assert.deepEqual(nums(x), [0, 0, 0], 'to() with nothing to change returns the same tensor (PyTorch returns self)');
      const both = f32([1, 2]).to({ dtype: 'float16', device: 'cpu' });
      assert.equal(both.dtype, 'float16');
      assert.equal(f32([1]).float().dtype, 'float32');
      assert.equal(f32([1]).half().dtype, 'float16');
      assert.equal(f32([1]).bfloat16().dtype, 'bfloat16');
      assert.equal(f32([1]).long().dtype, 'int64');
      assert.equal(f32([1]).int().dtype, 'int32');
      assert.equal(f32([1]).bool().dtype, 'bool');
      assert.equal(f32([1]).cpu().device, 'cpu');
      assert.equal(String(zeros([2, 3])), 'Tensor[2, 3] float32');
    }));

  test('to(cuda) and back round-trips', { skip: !torchInfo().cuda.available && 'no CUDA device' }, () =>
    tidy(() => {
      const x = f32([1, 2, 3]);
      const g = x.to('cuda');
      assert.match(g.device, /^cuda/);
      assert.deepEqual(nums(g.add(1)), [2, 3, 4]);
      assert.deepEqual(nums(g.cpu()), [1, 2, 3]);
      const r = randn([4], { generator: new Generator(1), device: 'cuda' });
      assert.deepEqual(nums(r), nums(randn([4], { generator: new Generator(1) })), 'seeded draws are the same on every device');
    }));

  test('clone is an independent copy; detach shares memory and drops grad', () =>
    tidy(() => {
      const x = f32([1, 2, 3]).requiresGrad_();
      const c = noGrad(() => x.clone());
      noGrad(() => c.fill_(0));
      assert.deepEqual(nums(x), [1, 2, 3]);
      const d = x.detach();
      assert.equal(d.requiresGrad, false);
      d.fill_(7);
      assert.deepEqual(nums(x), [7, 7, 7], 'detach shares storage');
      const withGrad = x.clone();
      assert.equal(withGrad.requiresGrad, true, 'clone stays in the graph');
    }));

  test('a -0 scalar keeps its sign with float tensors (fill_(-0), mul(-0), full(-0))', () =>
    tidy(() => {
      assert.ok(Object.is(zeros([1]).fill_(-0).toNumbers()[0], -0), 'fill_(-0)');
      assert.ok(Object.is(ones([1]).mul(-0).toNumbers()[0], -0), 'mul(-0)');
      assert.ok(Object.is(full([1], -0).toNumbers()[0], -0), 'full(-0)');
    }));

  test('bool tensors convert to numbers', () =>
    tidy(() => {
      const b = tensor([true, false], { dtype: 'float32' });
      assert.equal(b.dtype, 'float32');
      assert.deepEqual(nums(b), [1, 0]);
      assert.deepEqual(nums(tensor([true, false]).to('int64').add(1)), [2, 1]);
    }));

  test('item, data, toFloat32Array, toFloat64Array, toNumbers', () =>
    tidy(() => {
      assert.equal(tensor(2.5).item(), 2.5);
      assert.equal(f32([7]).item(), 7);
      assert.equal(tensor([true]).item(), 1);
      assert.equal(tensor([-3], { dtype: 'int64' }).item(), -3);
      const d = f32([1, 2.5]).data();
      assert.ok(d instanceof Float32Array);
      assert.deepEqual(Array.from(d), [1, 2.5]);
      assert.ok(f64([1]).data() instanceof Float64Array);
      const i = tensor([1, -2], { dtype: 'int64' }).data();
      assert.ok(i instanceof BigInt64Array);
      assert.deepEqual(Array.from(i as BigInt64Array), [1n, -2n]);
      assert.ok(tensor([1], { dtype: 'int32' }).data() instanceof Int32Array);
      assert.ok(tensor([1], { dtype: 'uint8' }).data() instanceof Uint8Array);
      assert.ok(tensor([true]).data() instanceof Uint8Array);
      const f = tensor([1, -2], { dtype: 'int64' }).toFloat32Array();
      assert.ok(f instanceof Float32Array);
      assert.deepEqual(Array.from(f), [1, -2]);
      assert.deepEqual(Array.from(f32([0.5]).toFloat64Array()), [0.5]);
      assert.deepEqual(tensor([1, 2], { dtype: 'int32' }).toNumbers(), [1, 2]);
      // readback of a non-contiguous view is in logical order
      assert.deepEqual(arange(6).reshape(2, 3).transpose(0, 1).toNumbers(), [0, 3, 1, 4, 2, 5]);
    }));

  test('toNumbers of float16 and bfloat16 gives the values, not their bits', () =>
    tidy(() => {
      assert.deepEqual(tensor([1, -2.5], { dtype: 'float16' }).toNumbers(), [1, -2.5]);
      assert.deepEqual(tensor([1, -2.5], { dtype: 'bfloat16' }).toNumbers(), [1, -2.5]);
    }));

  test('float16 and bfloat16: raw bits from data(), values from toFloat32Array(), arithmetic keeps dtype', () =>
    tidy(() => {
      const h = tensor([1.5, -2.25, 65504], { dtype: 'float16' });
      assert.equal(h.dtype, 'float16');
      const hb = h.data();
      assert.ok(hb instanceof Uint16Array);
      assert.deepEqual(Array.from(hb), [0x3e00, 0xc080, 0x7bff]);
      assert.deepEqual(Array.from(h.toFloat32Array()), [1.5, -2.25, 65504]);
      const b = tensor([1.5, -2.25, 3], { dtype: 'bfloat16' });
      assert.deepEqual(Array.from(b.data() as Uint16Array), [0x3fc0, 0xc010, 0x4040]);
      assert.deepEqual(Array.from(b.toFloat32Array()), [1.5, -2.25, 3]);
      // from raw bits
      const fromBits = tensor(new Uint16Array([0x3c00, 0xc000]), { dtype: 'float16' });
      assert.deepEqual(Array.from(fromBits.toFloat32Array()), [1, -2]);
      const fromBitsB = tensor(new Uint16Array([0x3f80]), { dtype: 'bfloat16' });
      assert.deepEqual(Array.from(fromBitsB.toFloat32Array()), [1]);
      assert.equal(h.add(h).dtype, 'float16');
      assert.equal(b.mul(b).dtype, 'bfloat16');
      assert.deepEqual(Array.from(b.mul(b).toFloat32Array()), [2.25, 5.0625, 9]);
      // rounding to the nearest representable value
      assert.equal(tensor([1 + 2 ** -12], { dtype: 'float16' }).toFloat32Array()[0], 1);
      assert.equal(tensor([1 + 2 ** -9], { dtype: 'bfloat16' }).toFloat32Array()[0], 1);
    }));

  test('int64, int32, uint8, bool dtypes hold their values', () =>
    tidy(() => {
      const big = tensor(new BigInt64Array([2n ** 40n + 1n, -5n]));
      assert.deepEqual(Array.from(big.data() as BigInt64Array), [2n ** 40n + 1n, -5n]);
      assert.equal(big.add(1).dtype, 'int64');
      const i32 = tensor([2147483647, -2147483648], { dtype: 'int32' });
      assert.deepEqual(i32.toNumbers(), [2147483647, -2147483648]);
      const u8 = tensor([0, 200, 255], { dtype: 'uint8' });
      assert.deepEqual(u8.toNumbers(), [0, 200, 255]);
      assert.equal(u8.dtype, 'uint8');
      const bo = tensor([1, 0, 2], { dtype: 'bool' });
      assert.equal(bo.dtype, 'bool');
      assert.deepEqual(bo.toNumbers(), [1, 0, 1]);
    }));
});

// ---- random generators ----

describe('seeded generators', () => {
  test('Generator(42).randn(3) gives PyTorch\'s torch.manual_seed(42); torch.randn(3)', () =>
    tidy(() => {
      close(nums(randn([3], { generator: new Generator(42) })), [0.3367, 0.1288, 0.2345], 1e-4);
      assert.equal(new Generator(42).seed, 42);
    }));

  test('same seed, same numbers; different seed, different numbers', () =>
    tidy(() => {
      const a = nums(randn([16], { generator: new Generator(3) }));
      const b = nums(randn([16], { generator: new Generator(3) }));
      const c = nums(randn([16], { generator: new Generator(4) }));
      assert.deepEqual(a, b);
      assert.notDeepEqual(a, c);
      const g1 = new Generator(8);
      const g2 = new Generator(8);
      assert.deepEqual(nums(rand([5], { generator: g1 })), nums(rand([5], { generator: g2 })));
      assert.deepEqual(nums(randint(0, 100, [5], { generator: g1 })), nums(randint(0, 100, [5], { generator: g2 })));
      assert.deepEqual(nums(randperm(8, { generator: g1 })), nums(randperm(8, { generator: g2 })));
      // a generator advances
      assert.notDeepEqual(nums(randn([4], { generator: g1 })), nums(randn([4], { generator: g1 })));
      // BigInt seeds work too
      assert.deepEqual(nums(randn([3], { generator: new Generator(3n) })), nums(randn([3], { generator: new Generator(3) })));
    }));

  test('saving and restoring the state reproduces the next draws', () =>
    tidy(() => {
      const g = new Generator(11);
      randn([7], { generator: g });
      const state = g.getState();
      assert.equal(state.dtype, 'uint8');
      const next = nums(randn([10], { generator: g }));
      const nextU = nums(rand([3], { generator: g }));
      g.setState(state);
      assert.deepEqual(nums(randn([10], { generator: g })), next);
      assert.deepEqual(nums(rand([3], { generator: g })), nextU);
      // into another generator
      const h = new Generator(999);
      h.setState(state);
      assert.deepEqual(nums(randn([10], { generator: h })), next);
    }));
});

// ---- autocast ----

describe('autocast', () => {
  test('bfloat16 autocast on CPU: linear, matmul, conv2d give bfloat16 close to float32', () =>
    tidy(() => {
      const g = new Generator(21);
      const x = randn([4, 8], { generator: g });
      const w = randn([6, 8], { generator: g });
      const b = randn([6], { generator: g });
      const img = randn([1, 3, 6, 6], { generator: g });
      const k = randn([4, 3, 3, 3], { generator: g });
      const full32 = [linear(x, w, b), x.matmul(w.mT), conv2d(img, k, null, { padding: 1 })];
      const low = autocast({ device: 'cpu', dtype: 'bfloat16' }, () => [linear(x, w, b), x.matmul(w.mT), conv2d(img, k, null, { padding: 1 })]);
      ['linear', 'matmul', 'conv2d'].forEach((name, i) => {
        assert.equal(low[i]!.dtype, 'bfloat16', name);
        const ref = full32[i]!.toFloat32Array();
        const got = low[i]!.toFloat32Array();
        const scale = Math.max(...Array.from(ref, Math.abs));
        for (let j = 0; j < ref.length; j++) {
          if (Math.abs(got[j]! - ref[j]!) > 0.03 * scale) assert.fail(`${name} element ${j}: bf16 ${got[j]} vs fp32 ${ref[j]}`);
        }
      });
      // autocast is off again after the scope, and off when disabled
      assert.equal(x.matmul(w.mT).dtype, 'float32');
      assert.equal(autocast({ enabled: false }, () => x.matmul(w.mT)).dtype, 'float32');
      // default options: CPU bfloat16
      assert.equal(autocast({}, () => linear(x, w)).dtype, 'bfloat16');
    }));

  test('nested autocast scopes restore the outer state', () =>
    tidy(() => {
      const [a, b] = [ones([2, 2]), ones([2, 2])];
      const [inner, outerAfter] = autocast({}, () => {
        const off = autocast({ enabled: false }, () => linear(a, b).dtype);
        return [off, linear(a, b).dtype];
      });
      assert.equal(inner, 'float32');
      assert.equal(outerAfter, 'bfloat16');
      const [on, offAfter] = autocast({ enabled: false }, () => [autocast({}, () => linear(a, b).dtype), linear(a, b).dtype]);
      assert.equal(on, 'bfloat16');
      assert.equal(offAfter, 'float32');
    }));

  test('autocast restores its state when fn throws', () =>
    tidy(() => {
      assert.throws(() => autocast({}, () => {
        throw new Error('boom');
      }), /boom/);
      assert.equal(ones([2, 2]).matmul(ones([2, 2])).dtype, 'float32');
    }));
});

// ---- memory scopes ----

describe('tidy', () => {
  test('tidy frees what it made, keeps what it returns', () => {
    const before = liveTensors().count;
    const kept = tidy(() => {
      const a = ones([10]);
      const b = a.add(1);
      b.mul(2);
      return { b };
    });
    assert.equal(kept.b.isDisposed, false);
    assert.deepEqual(nums(kept.b), Array(10).fill(2));
    kept.b.dispose();
    assert.equal(kept.b.isDisposed, true);
    assert.ok(liveTensors().count <= before, `${liveTensors().count} live tensors after, ${before} before`);
  });
});
