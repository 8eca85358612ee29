import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Module } from '../src/nn/index.js';
import { ConfigError } from '../src/models/config-fields.js';
import { ResnetBlock2D } from '../src/models/layers/resnet.js';
import {
  attend,
  Attention,
  type AttentionCallContext,
  type AttentionLayer,
  attentionLayers,
  GEGLU,
  parseUNetConfig,
  SD15_UNET_CONFIG,
  SD15_UNET_CONFIG_JSON,
  sinusoidalTimestepEmbedding,
  timestepsForBatch,
  UNet2DConditionModel,
} from '../src/models/unet/index.js';
import { allowCpuAttentionAmx, attentionReference, autocast, cpuAttention, cpuAttentionUsesAmx, cpuGeglu, Generator, hasCpuAttention, hasCpuGeglu, liveTensors, noGrad, randn, type Tensor, tensor, tidy, zerosLike } from '../src/tensor/index.js';
import { useCpuAttentionKernel } from '../src/models/layers/attention.js';
import { close, settledLiveTensors, vals } from './helpers.js';
import * as ref from './reference.js';

// ---- helpers ----

/** Two levels, 1 resnet per block, 2 heads, context width 32: the smallest UNet with every block type. */
const TINY = {
  block_out_channels: [32, 64],
  down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
  layers_per_block: 1,
  attention_head_dim: 2,
  cross_attention_dim: 32,
  norm_num_groups: 8,
};

/** Three levels (two upsamplers), for sizes that are not multiples of 4. */
const TINY3 = {
  block_out_channels: [16, 32, 32],
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
  layers_per_block: 1,
  attention_head_dim: 2,
  cross_attention_dim: 16,
  norm_num_groups: 8,
};

const gen = (seed: number) => new Generator(seed);
const input = (shape: number[], seed: number, dtype: 'float32' | 'float64' = 'float32') => randn(shape, { generator: gen(seed), dtype });
const arrOf = (t: Tensor) => ref.arr(t.toFloat64Array(), t.shape);

/** ‖a − b‖ / ‖b‖ over all elements. */
function relativeError(a: Tensor, b: Tensor): number {
  const [x, y] = [a.toFloat64Array(), b.toFloat64Array()];
  let num = 0;
  let den = 0;
  for (let i = 0; i < y.length; i++) {
    num += (x[i]! - y[i]!) ** 2;
    den += y[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

/** Gives every norm's affine parameters random values (they start at 1 and 0), so tests see them act. */
function randomizeNorms(model: Module, seed: number): void {
  noGrad(() => {
    let s = seed;
    for (const [name, p] of model.namedParameters()) {
      if (/norm\d?\.(weight|bias)$|norm_out\.(weight|bias)$/.test(name)) tidy(() => p.copy_(randn(p.shape, { generator: gen(s++), dtype: p.dtype }).mul(0.5).add(name.endsWith('weight') ? 1 : 0)));
    }
  });
}

function tinyUNet(config: Record<string, unknown> = TINY, seed = 1): UNet2DConditionModel {
  const unet = new UNet2DConditionModel(config, { generator: gen(seed) });
  randomizeNorms(unet, seed + 100);
  return unet.eval();
}

const forward = (unet: UNet2DConditionModel, sample: Tensor, t: number | Tensor, context: Tensor, extras = {}) => noGrad(() => unet.forward(sample, t, context, extras));

// ---- configuration ----

describe('UNet config', () => {
  test('SD1.5 parses to 8 heads per block (attention_head_dim read as the head count), 1280-wide time embedding', () => {
    const c = SD15_UNET_CONFIG;
    assert.deepEqual(c.attentionHeads, [8, 8, 8, 8]);
    assert.deepEqual(c.crossAttentionDim, [768, 768, 768, 768]);
    assert.deepEqual(c.layersPerBlock, [2, 2, 2, 2]);
    assert.deepEqual(c.blockOutChannels, [320, 640, 1280, 1280]);
    assert.equal(c.timeEmbedDim, 1280);
    assert.equal(c.flipSinToCos, true);
    assert.equal(c.freqShift, 0);
    assert.equal(c.normEps, 1e-5);
    assert.equal(c.sampleSize, 64);
    assert.ok(Object.isFrozen(c) && Object.isFrozen(c.blockOutChannels));
  });

  test('per-block lists are accepted where diffusers accepts them', () => {
    const c = parseUNetConfig({ ...TINY, attention_head_dim: [2, 4], layers_per_block: [1, 2], transformer_layers_per_block: [2, 1] });
    assert.deepEqual(c.attentionHeads, [2, 4]);
    assert.deepEqual(c.layersPerBlock, [1, 2]);
    assert.deepEqual(c.transformerLayersPerBlock, [2, 1]);
  });

  test('unsupported features and inconsistent configs are refused with the key named', () => {
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ ...TINY, class_embed_type: 'timestep' }, /class_embed_type/],
      [{ ...TINY, num_attention_heads: 8 }, /num_attention_heads/],
      [{ ...TINY, time_embedding_type: 'fourier' }, /time_embedding_type/],
      [{ ...TINY, up_block_types: ['UpBlock2D'] }, /same length/],
      [{ ...TINY, norm_num_groups: 6 }, /norm_num_groups \(6\) must divide/],
      [{ ...TINY, down_block_types: ['CrossAttnDownBlock2D', 'SimpleCrossAttnDownBlock2D'] }, /down_block_types/],
      [{ ...TINY, attention_head_dim: [2] }, /attention_head_dim/],
      [{ ...TINY, act_fn: 'gelu' }, /act_fn/],
    ];
    for (const [config, message] of bad) assert.throws(() => parseUNetConfig(config), (e: Error) => e instanceof ConfigError && message.test(e.message));
    assert.throws(() => parseUNetConfig([1, 2]), ConfigError);
  });
});

// ---- SD1.5 at full size ----

describe('SD1.5 UNet (fp32, built once with uninitialised weights)', () => {
  let unet: UNet2DConditionModel;
  let buildSeconds = 0;
  before(() => {
    const t0 = performance.now();
    unet = new UNet2DConditionModel(SD15_UNET_CONFIG_JSON, { empty: true }); // values do not matter here: skip drawing 860M
    buildSeconds = (performance.now() - t0) / 1000;
  });
  after(() => unet.dispose());

  test('has exactly 859,520,964 parameters under diffusers’ 686 keys', (t) => {
    t.diagnostic(`built in ${buildSeconds.toFixed(1)} s`);
    assert.equal(unet.numParameters(), 859_520_964);
    const keys = tidy(() => Object.keys(unet.stateDict()));
    assert.equal(keys.length, 686);
    assert.deepEqual(keys.slice(0, 4), ['conv_in.weight', 'conv_in.bias', 'time_embedding.linear_1.weight', 'time_embedding.linear_1.bias']);
    assert.deepEqual(keys.slice(-2), ['conv_out.weight', 'conv_out.bias']);
  });

  test('keys and shapes in every block type match diffusers', () => {
    const expected: Record<string, number[]> = {
      'conv_in.weight': [320, 4, 3, 3],
      'time_embedding.linear_1.weight': [1280, 320],
      'time_embedding.linear_2.bias': [1280],
      'down_blocks.0.resnets.0.norm1.weight': [320],
      'down_blocks.0.resnets.0.time_emb_proj.weight': [320, 1280],
      'down_blocks.0.attentions.0.norm.weight': [320],
      'down_blocks.0.attentions.0.proj_in.weight': [320, 320, 1, 1],
      'down_blocks.0.attentions.0.transformer_blocks.0.norm1.weight': [320],
      'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight': [320, 320],
      'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.weight': [320, 768],
      'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_v.weight': [320, 768],
      'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_out.0.weight': [320, 320],
      'down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_out.0.bias': [320],
      'down_blocks.0.attentions.0.transformer_blocks.0.ff.net.0.proj.weight': [2560, 320],
      'down_blocks.0.attentions.0.transformer_blocks.0.ff.net.2.weight': [320, 1280],
      'down_blocks.0.attentions.0.transformer_blocks.0.norm3.bias': [320],
      'down_blocks.0.attentions.1.proj_out.weight': [320, 320, 1, 1],
      'down_blocks.0.downsamplers.0.conv.weight': [320, 320, 3, 3],
      'down_blocks.1.resnets.0.conv_shortcut.weight': [640, 320, 1, 1],
      'down_blocks.2.attentions.1.transformer_blocks.0.attn1.to_v.weight': [1280, 1280],
      'down_blocks.3.resnets.1.conv2.weight': [1280, 1280, 3, 3],
      'mid_block.resnets.1.time_emb_proj.weight': [1280, 1280],
      'mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight': [1280, 768],
      'up_blocks.0.resnets.2.conv1.weight': [1280, 2560, 3, 3],
      'up_blocks.0.upsamplers.0.conv.weight': [1280, 1280, 3, 3],
      'up_blocks.1.resnets.2.conv_shortcut.weight': [1280, 1920, 1, 1],
      'up_blocks.1.attentions.2.transformer_blocks.0.ff.net.0.proj.weight': [10240, 1280],
      'up_blocks.2.upsamplers.0.conv.bias': [640],
      'up_blocks.3.resnets.0.conv_shortcut.weight': [320, 960, 1, 1],
      'up_blocks.3.resnets.2.conv_shortcut.weight': [320, 640, 1, 1],
      'up_blocks.3.attentions.2.transformer_blocks.0.attn1.to_out.0.weight': [320, 320],
      'conv_norm_out.weight': [320],
      'conv_out.weight': [4, 320, 3, 3],
    };
    const state = unet.stateDict();
    try {
      for (const [key, shape] of Object.entries(expected)) assert.deepEqual(state[key]?.shape, shape, key);
      for (const absent of ['down_blocks.3.attentions.0.norm.weight', 'up_blocks.3.upsamplers.0.conv.weight', 'down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.bias', 'down_blocks.0.downsamplers.0.Conv2d_0.weight']) {
        assert.equal(state[absent], undefined, absent);
      }
    } finally {
      for (const t of Object.values(state)) t.dispose();
    }
  });

  test('lists its 32 transformer attention layers in forward order', () => {
    const sites = attentionLayers(unet);
    assert.equal(sites.length, 32);
    assert.equal(sites[0]!.name, 'down_blocks.0.attentions.0.transformer_blocks.0.attn1');
    assert.equal(sites[1]!.name, 'down_blocks.0.attentions.0.transformer_blocks.0.attn2');
    assert.equal(sites[12]!.name, 'mid_block.attentions.0.transformer_blocks.0.attn1');
    assert.equal(sites[31]!.name, 'up_blocks.3.attentions.2.transformer_blocks.0.attn2');
    assert.deepEqual(new Set(sites.map((s) => s.kind)), new Set(['self', 'cross']));
  });
});

// ---- pieces against independent computations ----

describe('timestep embedding', () => {
  /** diffusers' get_timestep_embedding, written out in float64. */
  function formula(ts: number[], dim: number, flip: boolean, shift: number): number[] {
    const half = Math.floor(dim / 2);
    const out: number[] = [];
    for (const t of ts) {
      const angles = Array.from({ length: half }, (_, i) => t * Math.exp((-Math.log(10000) * i) / (half - shift)));
      const [first, second] = flip ? [angles.map(Math.cos), angles.map(Math.sin)] : [angles.map(Math.sin), angles.map(Math.cos)];
      out.push(...first, ...second, ...(dim % 2 ? [0] : []));
    }
    return out;
  }

  test('matches the formula: [cos, sin] with flip_sin_to_cos, freq shift, odd widths', () => {
    const ts = [0, 1, 10.5, 999];
    for (const [dim, flip, shift] of [[320, true, 0], [8, false, 1], [7, true, 0]] as const) {
      const emb = sinusoidalTimestepEmbedding(tensor(ts), dim, { flipSinToCos: flip, downscaleFreqShift: shift });
      assert.deepEqual(emb.shape, [4, dim]);
      assert.equal(emb.dtype, 'float32');
      // float32 angles up to ~1000 rad: sin/cos agree to ~1e-4
      close(vals(emb), formula(ts, dim, flip, shift), 2e-4, `dim ${dim}`);
    }
  });

  test('the timestep argument: a number, one element, or one per sample', () => {
    assert.deepEqual(vals(timestepsForBatch(7, 3)), [7, 7, 7]);
    assert.deepEqual(vals(timestepsForBatch(tensor([5], { dtype: 'int64' }), 2)), [5, 5]);
    assert.deepEqual(vals(timestepsForBatch(tensor(9.5), 2)), [9.5, 9.5]);
    assert.deepEqual(vals(timestepsForBatch(tensor([1, 2, 3], { dtype: 'int64' }), 3)), [1, 2, 3]);
    assert.throws(() => timestepsForBatch(tensor([1, 2], { dtype: 'int64' }), 3), /one element or 3/);
    assert.throws(() => timestepsForBatch(Number.NaN, 1), /finite/);
  });
});

test('ResnetBlock2D equals an independent computation (float64, with time embedding and 1×1 shortcut)', () => {
  const block = new ResnetBlock2D({ inChannels: 4, outChannels: 6, tembChannels: 5, groups: 2, eps: 1e-5, init: { dtype: 'float64', generator: gen(3) } });
  randomizeNorms(block, 30);
  assert.deepEqual(
    block.namedParameters().map(([k]) => k),
    ['norm1.weight', 'norm1.bias', 'conv1.weight', 'conv1.bias', 'time_emb_proj.weight', 'time_emb_proj.bias', 'norm2.weight', 'norm2.bias', 'conv2.weight', 'conv2.bias', 'conv_shortcut.weight', 'conv_shortcut.bias'],
  );
  const x = input([2, 4, 5, 5], 4, 'float64');
  const temb = input([2, 5], 5, 'float64');
  const p = (name: string) => arrOf(block.getParameter(name)!);
  let h = ref.conv2d(ref.silu(ref.groupNorm(arrOf(x), 2, p('norm1.weight'), p('norm1.bias'), 1e-5)), p('conv1.weight'), p('conv1.bias'), 1);
  h = ref.addPerChannel(h, ref.linear(ref.silu(arrOf(temb)), p('time_emb_proj.weight'), p('time_emb_proj.bias')));
  h = ref.conv2d(ref.silu(ref.groupNorm(h, 2, p('norm2.weight'), p('norm2.bias'), 1e-5)), p('conv2.weight'), p('conv2.bias'), 1);
  const expected = ref.add(ref.conv2d(arrOf(x), p('conv_shortcut.weight'), p('conv_shortcut.bias'), 0), h);
  const out = noGrad(() => block.forward(x, temb));
  assert.deepEqual(out.shape, [2, 6, 5, 5]);
  close(vals(out), expected.data, 1e-10);

  // Same channels: no shortcut conv, the input is added as is; no time embedding (the VAE's kind).
  const plain = new ResnetBlock2D({ inChannels: 4, tembChannels: null, groups: 2, eps: 1e-6, init: { dtype: 'float64', generator: gen(6) } });
  assert.equal(plain.conv_shortcut, null);
  assert.equal(plain.time_emb_proj, null);
  const q = (name: string) => arrOf(plain.getParameter(name)!);
  let g = ref.conv2d(ref.silu(ref.groupNorm(arrOf(x), 2, q('norm1.weight'), q('norm1.bias'), 1e-6)), q('conv1.weight'), q('conv1.bias'), 1);
  g = ref.conv2d(ref.silu(ref.groupNorm(g, 2, q('norm2.weight'), q('norm2.bias'), 1e-6)), q('conv2.weight'), q('conv2.bias'), 1);
  close(vals(noGrad(() => plain.forward(x))), ref.add(arrOf(x), g).data, 1e-10);
});

test('Attention equals an independent computation (self and cross, 2 heads, float64)', () => {
  const attn = new Attention({ queryDim: 6, crossAttentionDim: 5, heads: 2, dimHead: 4, init: { dtype: 'float64', generator: gen(7) } });
  assert.deepEqual(
    attn.namedParameters().map(([k, t]) => `${k} [${t.shape.join(', ')}]`),
    ['to_q.weight [8, 6]', 'to_k.weight [8, 5]', 'to_v.weight [8, 5]', 'to_out.0.weight [6, 8]', 'to_out.0.bias [6]'],
  );
  const hidden = input([2, 3, 6], 8, 'float64');
  const context = input([2, 4, 5], 9, 'float64');
  const p = (name: string) => arrOf(attn.getParameter(name)!);
  const ctx: AttentionCallContext = { extras: {}, name: 'attn', kind: 'cross', size: [1, 3] };
  const q = ref.linear(arrOf(hidden), p('to_q.weight'), null);
  const kv = arrOf(context);
  const cross = ref.linear(ref.attention(q, ref.linear(kv, p('to_k.weight'), null), ref.linear(kv, p('to_v.weight'), null), 2), p('to_out.0.weight'), p('to_out.0.bias'));
  close(vals(noGrad(() => attn.forward(hidden, context, ctx))), cross.data, 1e-10);

  const selfAttn = new Attention({ queryDim: 6, heads: 3, dimHead: 2, init: { dtype: 'float64', generator: gen(10) } });
  const s = (name: string) => arrOf(selfAttn.getParameter(name)!);
  const h = arrOf(hidden);
  const expected = ref.linear(
    ref.attention(ref.linear(h, s('to_q.weight'), null), ref.linear(h, s('to_k.weight'), null), ref.linear(h, s('to_v.weight'), null), 3),
    s('to_out.0.weight'),
    s('to_out.0.bias'),
  );
  close(vals(noGrad(() => selfAttn.forward(hidden, null, { ...ctx, kind: 'self' }))), expected.data, 1e-10);
});

test('attend() in bfloat16 over cache-sized blocks (uneven heads and rows) matches the one-piece float32 result', () => {
  // 2 × 3 heads, 700 queries, 3000 keys: blocks of 2 heads × 256 rows, the last rows block 188
  const [q, k, v] = [input([2, 700, 24], 30), input([2, 3000, 24], 31), input([2, 3000, 24], 32)];
  const exact = noGrad(() => attend(q, k, v, 3));
  useCpuAttentionKernel(false); // the composed form, which CPUs without AVX-512 and AMX take
  try {
    const blocked = noGrad(() => attend(q.bfloat16(), k.bfloat16(), v.bfloat16(), 3));
    assert.equal(blocked.dtype, 'bfloat16');
    assert.deepEqual(blocked.shape, [2, 700, 24]);
    const error = relativeError(blocked, exact);
    assert.ok(error < 1e-2, `relative error ${error}`);
  } finally {
    useCpuAttentionKernel(true);
  }
  const q3 = ref.arr(vals(q.index(null, [0, 2])), [2, 2, 24]);
  const expected = ref.attention(q3, arrOf(k), arrOf(v), 3);
  close(vals(exact.index(null, [0, 2])), expected.data, 1e-4, 'float32 against the reference');
});

/**
 * One test per attention kernel case [BH, Lq, Lk, d, dv, magnitude of q and k]: random inputs in
 * `dtype`, the kernel's result checked by `expect`, its dtype and shape; one where every score is
 * far below zero; and one on token-major views of a wider projection, which must give the
 * head-major result exactly.
 */
function caseTests(dtype: 'bfloat16' | 'float32', cases: number[][], expect: (q: Tensor, k: Tensor, v: Tensor) => Tensor, reference: string): void {
  for (const [bh, lq, lk, d, dv, m] of cases) {
    test(`[${bh}, ${lq}, ${d}] × [${lk} keys, ${dv} values], scores ×${m! * m!}: as the ${reference}`, () => {
      tidy(() => {
        const [q, k, v] = [input([bh!, lq!, d!], 40).mul(m!), input([bh!, lk!, d!], 41).mul(m!), input([bh!, lk!, dv!], 42)].map((t) => t.to(dtype));
        const got = expect(q!, k!, v!);
        assert.equal(got.dtype, dtype);
        assert.deepEqual(got.shape, [bh, lq, dv]);
      });
    });
  }
  test('scores all far below zero, keys not a multiple of 32: padded keys neither set the maximum nor add to sums', () => {
    tidy(() => {
      const q = input([2, 20, 40], 50).abs().add(1).mul(3).to(dtype);
      const k = input([2, 50, 40], 51).abs().add(1).mul(-3).to(dtype);
      expect(q, k, input([2, 50, 40], 52).to(dtype));
    });
  });
  test('token-major [B, L, heads, d] views with row strides (slices of a wider projection) give the head-major result, bit for bit', () => {
    tidy(() => {
      const [b, l, heads, d] = [2, 70, 3, 24];
      const qkv = input([b, l, 3 * heads * d], 56).to(dtype); // rows 3·heads·d apart
      const [q, k, v] = [0, 1, 2].map((i) => qkv.narrow(2, i * heads * d, heads * d).view(b, l, heads, d));
      const headMajor = (t: Tensor) => t.transpose(1, 2).reshape(b * heads, l, d);
      const got = cpuAttention(q!, k!, v!, 1 / Math.sqrt(d));
      assert.deepEqual(got.shape, [b, l, heads, d]);
      const expected = expect(headMajor(q!), headMajor(k!), headMajor(v!));
      assert.equal(got.transpose(1, 2).reshape(b * heads, l, d).sub(expected).abs().max().item(), 0);
    });
  });
}

// Both of its paths: AMX tiles where the CPU has them (then the dot-product path too, with AMX
// turned off), AVX512-BF16 dot products on CPUs without AMX.
const hasAmx = cpuAttentionUsesAmx(); // AMX implies AVX512-BF16
for (const path of ['AMX', 'AVX512-BF16 dot products']) {
  const amx = path === 'AMX';
  const skip = !hasCpuAttention('bfloat16') ? 'this CPU lacks AVX-512 or AVX512-BF16' : amx && !hasAmx && 'this CPU lacks AMX';
  describe(`moa's bf16 CPU attention kernel on ${path}`, { skip }, () => {
    before(() => allowCpuAttentionAmx(amx));
    after(() => allowCpuAttentionAmx(true));

    test(`runs its matmuls on ${path}`, () => assert.equal(cpuAttentionUsesAmx(), amx));

    /** The kernel's result, checked against the float32 reference from the same bf16 inputs. */
    function expectReferenceResult(q: Tensor, k: Tensor, v: Tensor): Tensor {
      const scale = 1 / Math.sqrt(q.size(-1));
      const got = cpuAttention(q, k, v, scale);
      // bf16 keeps 8 bits: p and the output are each rounded once (the composed form rounds scores too).
      const error = relativeError(got.float(), attentionReference(q.float(), k.float(), v.float(), { scale }));
      assert.ok(error < 8e-3, `relative error ${error}`);
      return got;
    }

    // [BH, Lq, Lk, d, dv, magnitude of q and k]: rows and keys off every block size (16, 32, 64),
    // an odd key count and head width, dv ≠ d, SD1.5's cross-attention (77 keys), scores up to ~±60.
    const cases = [
      [3, 5, 7, 8, 8, 1],
      [2, 130, 77, 40, 40, 2],
      [1, 100, 1001, 33, 20, 1],
      [2, 64, 64, 64, 64, 1],
      [1, 40, 50, 40, 40, 8],
      [2, 70, 90, 80, 80, 1],
      [1, 33, 77, 160, 160, 1],
    ];
    caseTests('bfloat16', cases, expectReferenceResult, 'float32 reference from the same bf16 inputs');

    test('scores rising along the keys (each 32-key block passes the row shift, which moves and rescales what came before)', () => {
      tidy(() => {
        const ramp = tensor(Float32Array.from({ length: 300 }, (_, j) => (j / 300) * 6 - 1), { shape: [1, 300, 1] });
        const q = input([2, 40, 32], 53).abs().add(0.5).bfloat16();
        const k = input([2, 300, 32], 54).abs().add(0.5).mul(ramp).bfloat16();
        expectReferenceResult(q, k, input([2, 300, 32], 55).bfloat16());
      });
    });

    test('attend() takes it for bf16 without gradients, and agrees with the composed form', () => {
      tidy(() => {
        const [q, k, v] = [input([2, 300, 80], 43).bfloat16(), input([2, 300, 80], 44).bfloat16(), input([2, 300, 80], 45).bfloat16()];
        const kernel = noGrad(() => attend(q, k, v, 2));
        useCpuAttentionKernel(false);
        const composed = noGrad(() => attend(q, k, v, 2));
        useCpuAttentionKernel(true);
        assert.ok(relativeError(kernel.float(), composed.float()) < 1e-2);
        assert.ok(relativeError(kernel.float(), attend(q.float(), k.float(), v.float(), 2)) < 8e-3);
      });
    });

    test('refuses what it does not handle, saying what', () => {
      tidy(() => {
        const x = input([1, 4, 8], 46);
        assert.throws(() => cpuAttention(x.to('float64'), x.to('float64'), x.to('float64'), 1), /must all be bfloat16 or all float32/);
        assert.throws(() => cpuAttention(x.bfloat16(), x, x, 1), /must all be bfloat16 or all float32/);
        const wide = input([1, 4, 300], 47).bfloat16();
        assert.throws(() => cpuAttention(wide, wide, wide, 1), /head width 300 is over 256/);
        const b = x.bfloat16();
        assert.throws(() => cpuAttention(b, input([1, 5, 8], 48).bfloat16(), input([1, 6, 8], 49).bfloat16(), 1), /k must be/);
      });
    });
  });
}

describe('moa\'s fp32 CPU attention kernel', { skip: !hasCpuAttention('float32') && 'this CPU lacks AVX-512' }, () => {
  /** The kernel's result, checked against the float64 reference from the same inputs. */
  function expectReferenceResult(q: Tensor, k: Tensor, v: Tensor): Tensor {
    const scale = 1 / Math.sqrt(q.size(-1));
    const got = cpuAttention(q, k, v, scale);
    // float32 sums and an exp within 5e-5 of the true one.
    const error = relativeError(got, attentionReference(q.to('float64'), k.to('float64'), v.to('float64'), { scale }));
    assert.ok(error < 1e-4, `relative error ${error}`);
    return got;
  }

  // [BH, Lq, Lk, d, dv, magnitude of q and k]: rows off the blocks of 4, 8 and 32, keys off 32, odd
  // widths, dv ≠ d and off the 64-column blocks, one key, the VAE's 512-wide head, scores up to ~±60.
  const cases = [
    [3, 5, 7, 8, 8, 1],
    [2, 130, 77, 40, 40, 2],
    [1, 100, 1001, 33, 20, 1],
    [1, 37, 1, 16, 16, 1],
    [1, 40, 50, 40, 40, 8],
    [2, 70, 90, 80, 100, 1],
    [1, 33, 77, 160, 160, 1],
    [1, 9, 64, 512, 512, 0.3],
  ];
  caseTests('float32', cases, expectReferenceResult, 'float64 reference');

  test('attend() takes it for fp32 without gradients; with gradients it keeps the composed form, which autograd sees', () => {
    tidy(() => {
      const [q, k, v] = [input([2, 300, 80], 67), input([2, 300, 80], 68), input([2, 300, 80], 69)];
      const kernel = noGrad(() => attend(q, k, v, 2));
      useCpuAttentionKernel(false);
      const composed = noGrad(() => attend(q, k, v, 2));
      useCpuAttentionKernel(true);
      assert.ok(relativeError(kernel, composed) < 1e-4);
      const qg = q.clone().requiresGrad_(true);
      const traced = attend(qg, k, v, 2);
      assert.equal(traced.sub(composed).abs().max().item(), 0);
      traced.sum().backward();
      assert.ok(qg.grad !== null && qg.grad.abs().sum().item() > 0);
    });
  });
});

describe('moa\'s bf16 CPU GEGLU', { skip: !hasCpuGeglu() && 'this CPU lacks AVX-512 with AVX512-BF16' }, () => {
  test('value · gelu(gate) as the float32 composition of the same bf16 input, at rounding level', () => {
    for (const [shape, m] of [[[3, 5, 34], 1], [[2, 7, 2560], 4], [[1, 2], 0.01]] as const) {
      tidy(() => {
        const h = input([...shape], 50).mul(m).bfloat16();
        const [value, gate] = h.float().chunk(2, -1) as [Tensor, Tensor];
        const got = cpuGeglu(h);
        assert.equal(got.dtype, 'bfloat16');
        assert.deepEqual(got.shape, [...shape.slice(0, -1), shape[shape.length - 1]! / 2]);
        const error = relativeError(got.float(), value.mul(gate.gelu()));
        assert.ok(error < 4e-3, `relative error ${error}`); // bf16 keeps 8 bits: 2⁻⁹ ≈ 2e-3 per rounding
      });
    }
  });

  test('GEGLU takes it for bf16 without gradients; refuses what it does not handle', () => {
    tidy(() => {
      const geglu = new GEGLU(8, 16, { generator: gen(51) });
      const x = input([2, 5, 8], 52);
      const exact = noGrad(() => geglu.forward(x));
      const bf16 = noGrad(() => autocast({ device: 'cpu', dtype: 'bfloat16' }, () => geglu.forward(x)));
      assert.equal(bf16.dtype, 'bfloat16');
      assert.ok(relativeError(bf16.float(), exact) < 2e-2); // the bf16 projection rounds its inputs too
      assert.throws(() => cpuGeglu(input([2, 4], 53)), /bfloat16/);
      assert.throws(() => cpuGeglu(input([2, 5], 54).bfloat16()), /must be even/);
    });
  });
});

// ---- the tiny UNet end to end ----

describe('tiny UNet', () => {
  const unet = tinyUNet();
  const context = input([2, 7, 32], 20);

  test('maps [B, 4, h, w] to [B, 4, h, w] at several sizes, odd ones included (upsampling to the skip size)', () => {
    for (const [h, w] of [[8, 8], [16, 16], [32, 24], [9, 13], [5, 7], [1, 1]] as const) {
      const out = forward(unet, input([2, 4, h, w], h * 100 + w), 500, context);
      assert.deepEqual(out.shape, [2, 4, h, w], `${h}×${w}`);
      assert.ok(out.isContiguous());
      assert.ok(vals(out).every(Number.isFinite));
    }
    const three = tinyUNet(TINY3, 2);
    for (const [h, w] of [[12, 12], [10, 6], [7, 5], [3, 9]] as const) {
      const out = forward(three, input([1, 4, h, w], h + w), 10, input([1, 3, 16], 3));
      assert.deepEqual(out.shape, [1, 4, h, w], `3 levels, ${h}×${w}`);
    }
  });

  test('timestep as a number, an int64 tensor per sample, or a float scalar tensor give consistent results', () => {
    const sample = input([2, 4, 8, 8], 21);
    const a = forward(unet, sample, 250, context);
    const b = forward(unet, sample, tensor([250, 250], { dtype: 'int64' }), context);
    const c = forward(unet, sample, tensor(250.0), context);
    assert.ok(a.equal(b) && a.equal(c));
    const d = forward(unet, sample, tensor([250, 900], { dtype: 'int64' }), context);
    assert.ok(d.index(0).equal(a.index(0)), 'sample 0 at the same timestep');
    assert.ok(!d.index(1).allclose(a.index(1)), 'sample 1 at another timestep');
  });

  test('refuses inputs of the wrong shape with a clear message', () => {
    assert.throws(() => forward(unet, input([2, 3, 8, 8], 1), 1, context), /sample must be \[B, 4, h, w\]/);
    assert.throws(() => forward(unet, input([2, 4, 8, 8], 1), 1, input([2, 7, 31], 2)), /encoderHiddenStates must be \[2, L, 32\]/);
    assert.throws(() => forward(unet, input([2, 4, 8, 8], 1), tensor([1, 2, 3]), context), /one element or 2/);
  });

  test('linear projections, two transformer layers and per-block heads build and run', () => {
    const config = { ...TINY, use_linear_projection: true, transformer_layers_per_block: 2, attention_head_dim: [4, 2] };
    const model = tinyUNet(config, 3);
    const keys = tidy(() => Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, t.shape])));
    assert.deepEqual(keys['down_blocks.0.attentions.0.proj_in.weight'], [32, 32]);
    assert.deepEqual(keys['up_blocks.1.attentions.1.transformer_blocks.1.attn2.to_k.weight'], [32, 32]);
    assert.equal(attentionLayers(model).length, 2 * (2 + 2 + 2 * 2));
    assert.deepEqual(forward(model, input([1, 4, 6, 10], 4), 3, input([1, 5, 32], 5)).shape, [1, 4, 6, 10]);
  });

  test('bf16 autocast, channels-last and a bfloat16 copy of the model stay close to fp32', (t) => {
    const sample = input([2, 4, 16, 16], 22);
    const reference = forward(unet, sample, 300, context);
    const inAutocast = noGrad(() => autocast({ device: 'cpu', dtype: 'bfloat16' }, () => unet.forward(sample, 300, context)));
    assert.equal(inAutocast.dtype, 'bfloat16');
    const autocastError = relativeError(inAutocast, reference);

    const cl = tinyUNet();
    cl.to({ memoryFormat: 'channels_last' });
    assert.ok(cl.conv_in.weight.isContiguous('channels_last'));
    const clOut = forward(cl, sample, 300, context);
    const clError = relativeError(clOut, reference);
    const clAutocast = noGrad(() => autocast({ device: 'cpu', dtype: 'bfloat16' }, () => cl.forward(sample, 300, context)));
    const clAutocastError = relativeError(clAutocast, reference);

    const half = tinyUNet().to({ dtype: 'bfloat16' });
    const halfOut = forward(half, sample, 300, context); // float32 inputs are cast to the model's dtype
    assert.equal(halfOut.dtype, 'bfloat16');
    const halfError = relativeError(halfOut, reference);

    t.diagnostic(`relative error vs fp32: autocast ${autocastError.toExponential(2)}, channels-last fp32 ${clError.toExponential(2)}, channels-last + autocast ${clAutocastError.toExponential(2)}, bf16 weights ${halfError.toExponential(2)}`);
    assert.ok(clError < 1e-5, `channels-last fp32: ${clError}`);
    assert.ok(autocastError < 0.03, `autocast: ${autocastError}`);
    assert.ok(clAutocastError < 0.03, `channels-last + autocast: ${clAutocastError}`);
    assert.ok(halfError < 0.05, `bf16 weights: ${halfError}`);
  });

  test('extras reach every attention layer unchanged, with its name, kind and token grid', () => {
    class Recording extends Module {
      readonly calls: AttentionCallContext[] = [];
      constructor(readonly inner: AttentionLayer) {
        super();
        this.registerModule('inner', inner);
      }
      forward(hidden: Tensor, context: Tensor | null, extras: AttentionCallContext): Tensor {
        this.calls.push(extras);
        assert.equal(context === null, extras.kind === 'self');
        assert.equal(hidden.size(1), extras.size[0] * extras.size[1]);
        return this.inner.forward(hidden, context, extras);
      }
    }
    const model = tinyUNet(TINY, 4);
    const sample = input([2, 4, 12, 10], 23);
    const baseline = forward(model, sample, 40, context);
    const sites = attentionLayers(model);
    const recorders = sites.map((site) => site.block.registerModule(site.slot, new Recording(site.layer)));
    const extras = { marker: Symbol('mine') };
    const wrapped = forward(model, sample, 40, context, extras);
    assert.ok(wrapped.equal(baseline), 'delegating wrappers leave the output unchanged');

    const calls = recorders.flatMap((r) => r.calls);
    assert.equal(calls.length, sites.length, 'one call per layer');
    assert.deepEqual(
      calls.map((c) => c.name),
      sites.map((s) => s.name),
    );
    for (const c of calls) {
      assert.equal(c.extras, extras, 'the very object given to forward');
      assert.equal(c.kind, c.name.endsWith('attn1') ? 'self' : 'cross');
      assert.deepEqual(c.size, c.name.startsWith('mid_block') ? [6, 5] : [12, 10], c.name);
    }
    assert.deepEqual(
      [...new Set(calls.map((c) => c.name.split('.transformer_blocks')[0]))],
      ['down_blocks.0.attentions.0', 'mid_block.attentions.0', 'up_blocks.1.attentions.0', 'up_blocks.1.attentions.1'],
    );
  });

  test('registering another attn1 on a block changes the output; restoring the original restores it', () => {
    class Silent extends Module {
      forward(hidden: Tensor): Tensor {
        return zerosLike(hidden);
      }
    }
    const model = tinyUNet(TINY, 5);
    const sample = input([1, 4, 8, 8], 24);
    const ctx = input([1, 7, 32], 25);
    const baseline = forward(model, sample, 70, ctx);
    const site = attentionLayers(model).find((s) => s.name === 'up_blocks.1.attentions.1.transformer_blocks.0.attn1')!;
    site.block.registerModule('attn1', new Silent());
    const changed = forward(model, sample, 70, ctx);
    assert.ok(!changed.allclose(baseline, { rtol: 1e-4, atol: 1e-5 }), 'a silent attn1 changes the prediction');
    assert.ok(!(attentionLayers(model).find((s) => s.name === site.name)!.layer instanceof Attention));
    site.block.registerModule('attn1', site.layer);
    assert.ok(forward(model, sample, 70, ctx).equal(baseline));
  });

  test('a forward at a 64×64 latent frees everything it makes', () => {
    const sample = input([2, 4, 64, 64], 26);
    forward(unet, sample, 10, context).dispose(); // warm-up
    const before = settledLiveTensors().count;
    forward(unet, sample, 999, context).dispose();
    assert.equal(liveTensors().count, before, 'no tensor outlives the forward (without waiting for the GC)');
    noGrad(() => autocast({ device: 'cpu', dtype: 'bfloat16' }, () => unet.forward(sample, 999, context))).dispose();
    assert.equal(liveTensors().count, before, 'nor under autocast');
  });
});
