import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  Conv2d,
  Dropout,
  Embedding,
  GroupNorm,
  LayerNorm,
  Linear,
  Module,
  ModuleList,
  Sequential,
  StateDictError,
} from '../src/nn/index.js';
import { Generator, getThreads, liveTensors, manualSeed, noGrad, ones, rand, randn, setThreads, type Tensor, tensor, tidy, zeros } from '../src/tensor/index.js';
import { settledLiveTensors } from './helpers.js';

// ---- helpers ----

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-12): void {
  assert.equal(actual.length, expected.length, 'length');
  for (let i = 0; i < actual.length; i++) {
    const diff = Math.abs(actual[i]! - expected[i]!);
    assert.ok(diff <= tol * (1 + Math.abs(expected[i]!)), `element ${i}: ${actual[i]} vs ${expected[i]} (diff ${diff})`);
  }
}

const f64 = (t: Tensor) => t.toFloat64Array();
const gen = (seed: number) => new Generator(seed);
/** Deterministic float64 test input. */
const input = (shape: number[], seed = 1) => randn(shape, { generator: gen(seed), dtype: 'float64' });

/** A small transformer-ish block: `norm`, `attn.to_q`, `attn.to_out.0` as diffusers names them. */
class Attention extends Module {
  readonly toQ = this.registerModule('to_q', new Linear(4, 4, { bias: false, generator: gen(10) }));
  readonly toOut = this.registerModule('to_out', new ModuleList<Linear | Dropout>([new Linear(4, 4, { generator: gen(11) }), new Dropout(0.5)]));
  forward(x: Tensor): Tensor {
    return this.toOut.at(1).forward(this.toOut.at(0).forward(this.toQ.forward(x)));
  }
}
class Block extends Module {
  readonly norm = this.registerModule('norm', new LayerNorm(4));
  readonly attn = this.registerModule('attn1', new Attention());
  forward(x: Tensor): Tensor {
    return this.attn.forward(this.norm.forward(x)).add(x);
  }
}
class Model extends Module {
  readonly layers: Sequential;
  readonly blocks: ModuleList<Block>;
  constructor(seed = 0) {
    super();
    this.registerBuffer('scale', ones([4]));
    this.registerBuffer('cache', zeros([2]), { persistent: false });
    this.layers = this.registerModule('layers', new Sequential(new Linear(3, 4, { generator: gen(seed) }), new Dropout(0.5), new Linear(4, 4, { bias: false, generator: gen(seed + 1) })));
    this.blocks = this.registerModule('blocks', new ModuleList([new Block(), new Block()]));
  }
  get scale(): Tensor {
    return this.buffer('scale');
  }
  forward(x: Tensor): Tensor {
    let h = this.layers.forward(x);
    for (const block of this.blocks) h = block.forward(h);
    return h.mul(this.scale);
  }
}

const MODEL_STATE_KEYS = [
  'scale',
  'layers.0.weight',
  'layers.0.bias',
  'layers.2.weight',
  ...[0, 1].flatMap((i) => [
    `blocks.${i}.norm.weight`,
    `blocks.${i}.norm.bias`,
    `blocks.${i}.attn1.to_q.weight`,
    `blocks.${i}.attn1.to_out.0.weight`,
    `blocks.${i}.attn1.to_out.0.bias`,
  ]),
];

// ---- naming ----

describe('names', () => {
  test('nested modules use PyTorch key names, in PyTorch order', () => {
    const model = new Model();
    const state = model.stateDict();
    assert.deepEqual(Object.keys(state), MODEL_STATE_KEYS);
    assert.deepEqual(
      model.namedParameters().map(([n]) => n),
      MODEL_STATE_KEYS.filter((k) => k !== 'scale'),
    );
    assert.deepEqual(
      model.namedBuffers().map(([n]) => n),
      ['scale', 'cache'],
    );
    assert.deepEqual(
      model.namedModules().map(([n]) => n),
      ['', 'layers', 'layers.0', 'layers.1', 'layers.2', 'blocks', 'blocks.0', 'blocks.0.norm', 'blocks.0.attn1', 'blocks.0.attn1.to_q', 'blocks.0.attn1.to_out', 'blocks.0.attn1.to_out.0', 'blocks.0.attn1.to_out.1', 'blocks.1', 'blocks.1.norm', 'blocks.1.attn1', 'blocks.1.attn1.to_q', 'blocks.1.attn1.to_out', 'blocks.1.attn1.to_out.0', 'blocks.1.attn1.to_out.1'],
    );
    assert.deepEqual(
      model.namedChildren().map(([n]) => n),
      ['layers', 'blocks'],
    );
    assert.equal(model.getParameter('blocks.1.norm.bias'), model.blocks.at(1).norm.bias);
    assert.equal(model.getSubmodule('blocks.0.attn1.to_out.0'), model.blocks.at(0).attn.toOut.at(0));
    assert.throws(() => model.getParameter('blocks.2.norm.bias'), /no submodule/);
    assert.throws(() => model.getParameter('layers.0.nope'), /no parameter/);
    model.dispose();
    for (const t of Object.values(state)) t.dispose();
  });

  test('parameter counts and shapes', () => {
    const model = new Model();
    // 3·4+4 + 4·4 + 2·(LayerNorm 4+4, to_q 16, to_out 16+4)
    assert.equal(model.numParameters(), 16 + 16 + 2 * (8 + 16 + 20));
    const conv = new Conv2d(6, 9, [3, 2], { groups: 3 });
    assert.deepEqual(conv.weight.shape, [9, 2, 3, 2]);
    assert.deepEqual(conv.bias!.shape, [9]);
    assert.equal(conv.numParameters(), 9 * 2 * 3 * 2 + 9);
    const noBias = new Conv2d(2, 3, 1, { bias: false });
    assert.equal(noBias.bias, null);
    assert.deepEqual(Object.keys(noBias.stateDict()), ['weight']);
    assert.equal(new Embedding(10, 3).numParameters(), 30);
    assert.equal(new GroupNorm(2, 6).numParameters(), 12);
    assert.equal(new GroupNorm(2, 6, { affine: false }).numParameters(), 0);
    assert.equal(new LayerNorm([2, 3], { elementwiseAffine: false }).numParameters(), 0);
    assert.deepEqual(new LayerNorm([2, 3]).weight!.shape, [2, 3]);
    assert.equal(new Dropout().numParameters(), 0);
    for (const m of [model, conv, noBias]) m.dispose();
  });

  test('registration checks names', () => {
    const m = new Module();
    m.registerParameter('w', zeros([2]));
    assert.throws(() => m.registerBuffer('w', zeros([2])), /already has a member named 'w'/);
    assert.throws(() => m.registerModule('a.b', new Module()), /without '\.'/);
    assert.throws(() => m.registerParameter('', zeros([1])), /non-empty/);
    assert.equal(m.getParameter('w')!.requiresGrad, true);
    m.registerParameter('steps', zeros([1], { dtype: 'int64' }));
    assert.equal(m.getParameter('steps')!.requiresGrad, false, 'integer parameters cannot require grad');
    m.dispose();
  });

  test('modules built inside tidy() keep their tensors', () => {
    const lin = tidy(() => {
      const l = new Linear(3, 2);
      l.forward(ones([1, 3]));
      return l;
    });
    assert.equal(lin.weight.isDisposed, false);
    assert.equal(lin.bias!.isDisposed, false);
    lin.dispose();
  });
});

// ---- initialisation ----

describe('initialisation', () => {
  test('Linear and Conv2d draw uniform within ±1/sqrt(fan_in), seeded', () => {
    const lin = new Linear(16, 32, { generator: gen(3) });
    const bound = 1 / 4;
    for (const v of [...f64(lin.weight), ...f64(lin.bias!)]) assert.ok(Math.abs(v) <= bound, `${v} outside ±${bound}`);
    assert.ok(Math.max(...f64(lin.weight).map(Math.abs)) > 0.9 * bound, 'uses the whole range');
    const again = new Linear(16, 32, { generator: gen(3) });
    assert.ok(again.weight.equal(lin.weight) && again.bias!.equal(lin.bias!), 'same seed, same weights');
    const other = new Linear(16, 32, { generator: gen(4) });
    assert.ok(!other.weight.equal(lin.weight));

    const conv = new Conv2d(8, 4, 3, { groups: 2, generator: gen(5) });
    const convBound = 1 / Math.sqrt((8 / 2) * 3 * 3);
    const w = f64(conv.weight);
    for (const v of [...w, ...f64(conv.bias!)]) assert.ok(Math.abs(v) <= convBound);
    assert.ok(Math.max(...w.map(Math.abs)) > 0.9 * convBound);
    for (const m of [lin, again, other, conv]) m.dispose();
  });

  test('without a generator, layers draw from one shared default (different layers differ)', () => {
    const a = new Linear(4, 4);
    const b = new Linear(4, 4);
    assert.ok(!a.weight.equal(b.weight));
    a.dispose();
    b.dispose();
  });

  test('norms start at weight 1, bias 0; Embedding is standard normal', () => {
    const gn = new GroupNorm(2, 4);
    assert.deepEqual(gn.weight!.toNumbers(), [1, 1, 1, 1]);
    assert.deepEqual(gn.bias!.toNumbers(), [0, 0, 0, 0]);
    const ln = new LayerNorm(3, { dtype: 'float64' });
    assert.equal(ln.weight!.dtype, 'float64');
    assert.deepEqual(ln.weight!.toNumbers(), [1, 1, 1]);
    assert.deepEqual(ln.bias!.toNumbers(), [0, 0, 0]);
    const emb = new Embedding(200, 50, { generator: gen(7) });
    const v = f64(emb.weight);
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
    assert.ok(Math.abs(mean) < 0.03, `mean ${mean}`);
    assert.ok(Math.abs(std - 1) < 0.03, `std ${std}`);
    for (const m of [gn, ln, emb]) m.dispose();
  });
});

// ---- forward against plain JavaScript ----

describe('forward', () => {
  test('Linear', () => {
    const lin = new Linear(3, 2, { dtype: 'float64', generator: gen(1) });
    const x = input([4, 3]);
    const [w, b, xs] = [f64(lin.weight), f64(lin.bias!), f64(x)];
    const expected: number[] = [];
    for (let n = 0; n < 4; n++) {
      for (let o = 0; o < 2; o++) {
        let s = b[o]!;
        for (let i = 0; i < 3; i++) s += xs[n * 3 + i]! * w[o * 3 + i]!;
        expected.push(s);
      }
    }
    const y = lin.forward(x);
    assert.deepEqual(y.shape, [4, 2]);
    assertClose(f64(y), expected);
    const noBias = new Linear(3, 2, { bias: false, dtype: 'float64', generator: gen(1) });
    assertClose(f64(noBias.forward(x)), expected.map((v, k) => v - b[k % 2]!));
    lin.dispose();
    noBias.dispose();
  });

  test('Conv2d with stride, padding, dilation and groups', () => {
    const [N, C, H, W, O, G] = [2, 4, 6, 5, 6, 2];
    const [kh, kw, sh, sw, ph, pw, dh, dw] = [3, 2, 2, 1, 1, 2, 1, 2];
    const conv = new Conv2d(C, O, [kh, kw], { stride: [sh, sw], padding: [ph, pw], dilation: [dh, dw], groups: G, dtype: 'float64', generator: gen(2) });
    const x = input([N, C, H, W], 3);
    const [w, b, xs] = [f64(conv.weight), f64(conv.bias!), f64(x)];
    const OH = Math.floor((H + 2 * ph - dh * (kh - 1) - 1) / sh) + 1;
    const OW = Math.floor((W + 2 * pw - dw * (kw - 1) - 1) / sw) + 1;
    const cg = C / G;
    const og = O / G;
    const expected: number[] = [];
    for (let n = 0; n < N; n++) {
      for (let o = 0; o < O; o++) {
        const g = Math.floor(o / og);
        for (let oy = 0; oy < OH; oy++) {
          for (let ox = 0; ox < OW; ox++) {
            let s = b[o]!;
            for (let c = 0; c < cg; c++) {
              for (let ky = 0; ky < kh; ky++) {
                for (let kx = 0; kx < kw; kx++) {
                  const iy = oy * sh - ph + ky * dh;
                  const ix = ox * sw - pw + kx * dw;
                  if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                  s += xs[((n * C + g * cg + c) * H + iy) * W + ix]! * w[((o * cg + c) * kh + ky) * kw + kx]!;
                }
              }
            }
            expected.push(s);
          }
        }
      }
    }
    const y = conv.forward(x);
    assert.deepEqual(y.shape, [N, O, OH, OW]);
    assertClose(f64(y), expected);
    conv.dispose();
  });

  test('GroupNorm', () => {
    const [N, C, H, W, G, eps] = [2, 6, 3, 2, 3, 1e-5];
    const gn = new GroupNorm(G, C, { dtype: 'float64' });
    const gamma = [0.5, 1, 1.5, -2, 3, 0.25];
    const beta = [0.1, -0.2, 0.3, 0, 1, -1];
    gn.loadStateDict({ weight: tensor(gamma, { dtype: 'float64' }), bias: tensor(beta, { dtype: 'float64' }) });
    const x = input([N, C, H, W], 4);
    const xs = f64(x);
    const expected = new Float64Array(xs.length);
    const per = (C / G) * H * W;
    for (let n = 0; n < N; n++) {
      for (let g = 0; g < G; g++) {
        const start = (n * G + g) * per;
        const group = xs.subarray(start, start + per);
        const mean = group.reduce((a, v) => a + v, 0) / per;
        const variance = group.reduce((a, v) => a + (v - mean) ** 2, 0) / per;
        for (let i = 0; i < per; i++) {
          const c = g * (C / G) + Math.floor(i / (H * W));
          expected[start + i] = ((group[i]! - mean) / Math.sqrt(variance + eps)) * gamma[c]! + beta[c]!;
        }
      }
    }
    assertClose(f64(gn.forward(x)), expected, 1e-10);
    gn.dispose();
  });

  test('GroupNorm in bfloat16, channels-last, on a 64 × 64 map: as float32 within bfloat16 rounding, at any thread count', () => {
    // libtorch 1.13's own CPU kernel sums this input in bfloat16 (mean error 0.66 with one thread).
    const threads = getThreads();
    const gn = new GroupNorm(32, 64);
    noGrad(() => tidy(() => {
      gn.weight!.copy_(randn([64], { generator: new Generator(1) }));
      const x = randn([1, 64, 64, 64], { generator: new Generator(2) }).add(1);
      const want = gn.forward(x);
      gn.to({ dtype: 'bfloat16' });
      try {
        for (const n of [1, 2]) {
          setThreads(n);
          const got = gn.forward(x.to({ dtype: 'bfloat16' }).contiguous('channels_last'));
          assert.equal(got.dtype, 'bfloat16');
          const error = got.float().sub(want).abs().mean().item();
          assert.ok(error < 0.01, `${n} thread(s): mean |bf16 − fp32| ${error}`);
        }
      } finally {
        setThreads(threads);
      }
    }));
    gn.dispose();
  });

  test('LayerNorm over two trailing dimensions', () => {
    const eps = 1e-6;
    const ln = new LayerNorm([2, 3], { eps, dtype: 'float64' });
    const gamma = [1, 2, 3, 4, 5, 6];
    const beta = [-1, 0, 1, 2, 3, 4];
    noGrad(() => {
      ln.weight!.copy_(tensor(gamma, { shape: [2, 3] }));
      ln.bias!.copy_(tensor(beta, { shape: [2, 3] }));
    });
    const x = input([4, 2, 3], 5);
    const xs = f64(x);
    const expected: number[] = [];
    for (let r = 0; r < 4; r++) {
      const row = xs.subarray(r * 6, r * 6 + 6);
      const mean = row.reduce((a, v) => a + v, 0) / 6;
      const variance = row.reduce((a, v) => a + (v - mean) ** 2, 0) / 6;
      row.forEach((v, i) => expected.push(((v - mean) / Math.sqrt(variance + eps)) * gamma[i]! + beta[i]!));
    }
    assertClose(f64(ln.forward(x)), expected, 1e-10);
    const plain = new LayerNorm(6, { eps, elementwiseAffine: false, dtype: 'float64' });
    const y = f64(plain.forward(x.reshape(4, 6)));
    assertClose(y, expected.map((v, i) => (v - beta[i % 6]!) / gamma[i % 6]!), 1e-10);
    ln.dispose();
    plain.dispose();
  });

  test('Embedding looks rows up', () => {
    const emb = new Embedding(5, 3, { generator: gen(6) });
    const table = f64(emb.weight);
    const idx = tensor([4, 0, 4, 2], { dtype: 'int64', shape: [2, 2] });
    const y = emb.forward(idx);
    assert.deepEqual(y.shape, [2, 2, 3]);
    assertClose(f64(y), [4, 0, 4, 2].flatMap((i) => Array.from(table.subarray(i * 3, i * 3 + 3))));
    emb.dispose();
  });

  test('Sequential chains its modules', () => {
    const a = new Linear(3, 5, { dtype: 'float64', generator: gen(1) });
    const b = new Linear(5, 2, { dtype: 'float64', generator: gen(2) });
    const seq = new Sequential(a, b);
    const x = input([3, 3]);
    assertClose(f64(seq.forward(x)), f64(b.forward(a.forward(x))), 0);
    assert.equal(seq.length, 2);
    assert.equal(seq.at(-1), b);
    assert.deepEqual([...seq], [a, b]);
    seq.dispose();
  });
});

// ---- state dicts ----

describe('state dict', () => {
  test('values are detached aliases of the module tensors', () => {
    const lin = new Linear(2, 2);
    const state = lin.stateDict();
    assert.equal(state.weight!.requiresGrad, false);
    noGrad(() => state.weight!.fill_(7));
    assert.deepEqual(lin.weight.toNumbers(), [7, 7, 7, 7]);
    assert.equal(lin.weight.requiresGrad, true);
    lin.dispose();
  });

  test('strict load lists missing, unexpected and mis-shaped keys at once and changes nothing', () => {
    const model = new Model();
    const before = tidy(() => Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, t.clone()])));
    const source = new Model(5).stateDict();
    delete source['layers.0.bias'];
    delete source['blocks.1.norm.weight'];
    source['layers.3.weight'] = zeros([2, 2]);
    source['blocks.0.attn1.to_q.weight'] = zeros([4, 5]);
    source['scale'] = zeros([3]);

    let caught: unknown;
    assert.throws(() => model.loadStateDict(source), (e) => ((caught = e), e instanceof StateDictError));
    const error = caught as StateDictError;
    assert.deepEqual(error.missing, ['layers.0.bias', 'blocks.1.norm.weight']);
    assert.deepEqual(error.unexpected, ['layers.3.weight']);
    assert.deepEqual(
      error.mismatched.map((m) => [m.key, m.got, m.expected]),
      [
        ['scale', [3], [4]],
        ['blocks.0.attn1.to_q.weight', [4, 5], [4, 4]],
      ],
    );
    for (const text of ['Missing key(s): "layers.0.bias", "blocks.1.norm.weight"', 'Unexpected key(s): "layers.3.weight"', '"blocks.0.attn1.to_q.weight": the state dict has shape [4, 5], the module has [4, 4]', '"scale"']) {
      assert.ok(error.message.includes(text), `message lacks ${text}:\n${error.message}`);
    }
    for (const [k, t] of Object.entries(model.stateDict())) assert.ok(t.equal(before[k]!), `${k} changed`);

    // Non-strict: still refuses a shape mismatch, and still changes nothing.
    assert.throws(() => model.loadStateDict(source, { strict: false }), /Size mismatch for "scale"/);
    for (const [k, t] of Object.entries(model.stateDict())) assert.ok(t.equal(before[k]!), `${k} changed`);
    model.dispose();
  });

  test('non-strict load copies what matches and reports the rest', () => {
    const model = new Model();
    const source = new Model(5).stateDict();
    delete source['layers.0.bias'];
    source['extra.weight'] = zeros([1]);
    const oldBias = model.layers.at(0).getParameter('bias')!.clone();
    const result = model.loadStateDict(source, { strict: false });
    assert.deepEqual(result, { missing: ['layers.0.bias'], unexpected: ['extra.weight'] });
    assert.ok(model.getParameter('layers.0.weight')!.equal(source['layers.0.weight']!));
    assert.ok(model.getParameter('layers.0.bias')!.equal(oldBias), 'missing keys are left alone');
    model.dispose();
  });

  test('load converts dtype and keeps the module tensors (and requiresGrad)', () => {
    const lin = new Linear(2, 3);
    const weight = lin.weight;
    lin.loadStateDict({ weight: tensor([1, 2, 3, 4, 5, 6], { dtype: 'float64', shape: [3, 2] }), bias: tensor([0.5, 0.25, 0], { dtype: 'bfloat16' }) });
    assert.equal(lin.weight, weight);
    assert.equal(lin.weight.dtype, 'float32');
    assert.equal(lin.weight.requiresGrad, true);
    assert.deepEqual(lin.weight.toNumbers(), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(lin.bias!.toNumbers(), [0.5, 0.25, 0]);
    lin.dispose();
  });

  test('a round trip into a fresh module gives identical outputs', () => {
    const a = new Model(1).eval();
    const b = new Model(2).eval();
    // Make the LayerNorms non-trivial so they take part.
    noGrad(() => a.blocks.at(1).norm.weight!.copy_(rand([4], { generator: gen(9) })));
    const x = randn([5, 3], { generator: gen(8) });
    assert.ok(!a.forward(x).equal(b.forward(x)));
    tidy(() => b.loadStateDict(a.stateDict()));
    assert.ok(a.forward(x).equal(b.forward(x)));
    a.dispose();
    b.dispose();
  });
});

// ---- training controls ----

describe('training', () => {
  test('freeze decides what requires grad and what gets gradients', () => {
    const model = new Model();
    const total = model.parameters().length;
    model.blocks.at(0).freeze();
    const frozen = new Set(model.blocks.at(0).parameters());
    assert.equal(frozen.size, 5);
    assert.equal(model.trainableParameters().length, total - 5);
    assert.equal(model.numParameters({ trainableOnly: true }), model.numParameters() - 44);

    model.eval().forward(randn([2, 3], { generator: gen(1) })).square().sum().backward();
    for (const [name, p] of model.namedParameters()) {
      if (frozen.has(p)) {
        assert.equal(p.requiresGrad, false, name);
        assert.equal(p.grad, null, `${name} is frozen but got a gradient`);
      } else {
        assert.ok(p.grad !== null, `${name} got no gradient`);
      }
    }
    model.unfreeze();
    assert.equal(model.trainableParameters().length, total);
    model.freeze();
    assert.equal(model.trainableParameters().length, 0);
    model.dispose();
  });

  test('train/eval propagate to children and switch Dropout', () => {
    const model = new Model();
    assert.ok(model.modules().every((m) => m.training));
    model.eval();
    assert.ok(model.modules().every((m) => !m.training));
    model.blocks.train();
    assert.equal(model.training, false);
    assert.equal(model.blocks.at(1).attn.toOut.at(1).training, true);
    model.dispose();

    const drop = new Dropout(0.5);
    const x = ones([1000]);
    manualSeed(0);
    const y = drop.forward(x).toNumbers();
    const zeros = y.filter((v) => v === 0).length;
    assert.ok(y.every((v) => v === 0 || v === 2), 'kept elements are scaled by 1/(1-p)');
    assert.ok(zeros > 400 && zeros < 600, `${zeros} of 1000 dropped`);
    drop.eval();
    assert.ok(drop.forward(x).equal(x));
  });
});

// ---- conversion and memory ----

describe('conversion and memory', () => {
  class ConvNet extends Module {
    readonly conv = this.registerModule('conv', new Conv2d(3, 8, 3, { padding: 1, generator: gen(1) }));
    readonly norm = this.registerModule('norm', new GroupNorm(2, 8));
    readonly head = this.registerModule('head', new Linear(8, 4, { generator: gen(2) }));
    constructor() {
      super();
      this.registerBuffer('steps', zeros([1], { dtype: 'int64' }));
    }
    forward(x: Tensor): Tensor {
      return this.head.forward(this.norm.forward(this.conv.forward(x)).mean([2, 3]));
    }
  }
  const x = randn([2, 3, 6, 6], { generator: gen(3) });

  test("to({ dtype: 'bfloat16' }) converts floating tensors and keeps outputs close", () => {
    const net = new ConvNet();
    const reference = f64(net.forward(x));
    net.to({ dtype: 'bfloat16' });
    assert.deepEqual(
      net.namedParameters().map(([n, p]) => [n, p.dtype, p.requiresGrad]),
      ['conv.weight', 'conv.bias', 'norm.weight', 'norm.bias', 'head.weight', 'head.bias'].map((n) => [n, 'bfloat16', true]),
    );
    assert.equal(net.getBuffer('steps')!.dtype, 'int64', 'integer buffers keep their dtype');
    assert.equal(net.conv.weight.isLeaf, true);
    const y = f64(net.forward(x.bfloat16()));
    assertClose(y, reference, 0.05);
    net.to('float32');
    assert.equal(net.head.weight.dtype, 'float32');
    net.dispose();
  });

  test("to({ memoryFormat: 'channels_last' }) applies to 4-D tensors and keeps outputs", () => {
    const net = new ConvNet();
    const reference = net.forward(x);
    net.to({ memoryFormat: 'channels_last' });
    assert.ok(net.conv.weight.isContiguous('channels_last'));
    assert.ok(!net.conv.weight.isContiguous());
    assert.ok(net.conv.bias!.isContiguous());
    assert.ok(net.head.weight.isContiguous());
    assert.ok(net.conv.weight.requiresGrad);
    const y = net.forward(x.contiguous('channels_last'));
    assert.ok(y.allclose(reference, { atol: 1e-5, rtol: 1e-5 }));
    net.dispose();
  });

  test('dispose frees every tensor', () => {
    const before = settledLiveTensors();
    const net = new ConvNet();
    net.to({ memoryFormat: 'channels_last' });
    const tensors = [...net.parameters(), ...net.buffers()];
    assert.equal(tensors.length, 7, '6 parameters and 1 buffer');
    const built = settledLiveTensors();
    assert.ok(built.count >= before.count + 7);
    net.dispose();
    const after = liveTensors();
    assert.ok(tensors.every((t) => t.isDisposed));
    assert.equal(built.count - after.count, 7);
    assert.equal(built.bytes - after.bytes, (8 * 3 * 3 * 3 + 8 + 8 + 8 + 4 * 8 + 4) * 4 + 8, 'float32 parameters and an int64 buffer');
    assert.ok(after.count <= before.count);
  });
});
