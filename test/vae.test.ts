import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ConfigError } from '../src/models/config-fields.js';
import { SpatialSelfAttention } from '../src/models/layers/attention.js';
import { AutoencoderKL, DiagonalGaussian, parseVaeConfig, SD15_VAE_CONFIG, SD15_VAE_CONFIG_JSON } from '../src/models/vae/index.js';
import { autocast, Generator, liveTensors, noGrad, randn, type Tensor, tensor } from '../src/tensor/index.js';
import { close, settledLiveTensors, vals } from './helpers.js';
import * as ref from './reference.js';

const TINY = {
  block_out_channels: [8, 16],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'],
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'],
  layers_per_block: 1,
  latent_channels: 4,
  norm_num_groups: 4,
};

const gen = (seed: number) => new Generator(seed);
const input = (shape: number[], seed: number, dtype: 'float32' | 'float64' = 'float32') => randn(shape, { generator: gen(seed), dtype });
const arrOf = (t: Tensor) => ref.arr(t.toFloat64Array(), t.shape);

describe('SD1.5 VAE', () => {
  test('has exactly 83,653,863 parameters under diffusers’ 248 keys, with their shapes', () => {
    const vae = new AutoencoderKL(SD15_VAE_CONFIG_JSON, { empty: true });
    try {
      assert.equal(vae.numParameters(), 83_653_863);
      assert.equal(vae.scalingFactor, 0.18215);
      const state = vae.stateDict();
      try {
        assert.equal(Object.keys(state).length, 248);
        const expected: Record<string, number[]> = {
          'encoder.conv_in.weight': [128, 3, 3, 3],
          'encoder.down_blocks.0.resnets.1.norm2.weight': [128],
          'encoder.down_blocks.0.downsamplers.0.conv.weight': [128, 128, 3, 3],
          'encoder.down_blocks.1.resnets.0.conv_shortcut.weight': [256, 128, 1, 1],
          'encoder.mid_block.attentions.0.group_norm.weight': [512],
          'encoder.mid_block.attentions.0.to_q.weight': [512, 512],
          'encoder.mid_block.attentions.0.to_q.bias': [512],
          'encoder.mid_block.attentions.0.to_out.0.weight': [512, 512],
          'encoder.mid_block.resnets.1.conv2.weight': [512, 512, 3, 3],
          'encoder.conv_norm_out.weight': [512],
          'encoder.conv_out.weight': [8, 512, 3, 3],
          'quant_conv.weight': [8, 8, 1, 1],
          'post_quant_conv.weight': [4, 4, 1, 1],
          'decoder.conv_in.weight': [512, 4, 3, 3],
          'decoder.mid_block.attentions.0.to_v.bias': [512],
          'decoder.up_blocks.0.resnets.2.conv1.weight': [512, 512, 3, 3],
          'decoder.up_blocks.0.upsamplers.0.conv.weight': [512, 512, 3, 3],
          'decoder.up_blocks.2.resnets.0.conv_shortcut.weight': [256, 512, 1, 1],
          'decoder.up_blocks.3.resnets.0.conv_shortcut.weight': [128, 256, 1, 1],
          'decoder.conv_out.weight': [3, 128, 3, 3],
        };
        for (const [key, shape] of Object.entries(expected)) assert.deepEqual(state[key]?.shape, shape, key);
        for (const absent of ['decoder.up_blocks.3.upsamplers.0.conv.weight', 'encoder.down_blocks.3.downsamplers.0.conv.weight', 'encoder.down_blocks.0.resnets.0.time_emb_proj.weight']) {
          assert.equal(state[absent], undefined, absent);
        }
      } finally {
        for (const t of Object.values(state)) t.dispose();
      }
    } finally {
      vae.dispose();
    }
  });

  test('config: defaults, and refusals naming the key', () => {
    assert.deepEqual(SD15_VAE_CONFIG.blockOutChannels, [128, 256, 512, 512]);
    assert.equal(SD15_VAE_CONFIG.layersPerBlock, 2);
    assert.equal(parseVaeConfig({ ...SD15_VAE_CONFIG_JSON, scaling_factor: 0.13025 }).scalingFactor, 0.13025);
    assert.throws(() => parseVaeConfig({ ...TINY, up_block_types: ['UpDecoderBlock2D'] }), (e: Error) => e instanceof ConfigError && /same length/.test(e.message));
    assert.throws(() => parseVaeConfig({ ...TINY, latents_mean: [0, 0, 0, 0] }), /latents_mean/);
    assert.throws(() => parseVaeConfig({ ...TINY, down_block_types: ['DownEncoderBlock2D', 'AttnDownEncoderBlock2D'] }), /down_block_types/);
  });
});

test('the VAE attention equals an independent computation (group norm, one head, residual; float64)', () => {
  const attn = new SpatialSelfAttention(4, { groups: 2, eps: 1e-6, init: { dtype: 'float64', generator: gen(1) } });
  assert.deepEqual(
    attn.namedParameters().map(([k]) => k),
    ['group_norm.weight', 'group_norm.bias', 'to_q.weight', 'to_q.bias', 'to_k.weight', 'to_k.bias', 'to_v.weight', 'to_v.bias', 'to_out.0.weight', 'to_out.0.bias'],
  );
  const x = input([2, 4, 3, 2], 2, 'float64');
  const p = (name: string) => arrOf(attn.getParameter(name)!);
  const normed = ref.groupNorm(arrOf(x), 2, p('group_norm.weight'), p('group_norm.bias'), 1e-6);
  // [B, C, H·W] → [B, H·W, C]
  const tokens = ref.arr(
    Array.from({ length: 2 * 6 * 4 }, (_, i) => {
      const [b, pos, c] = [Math.floor(i / 24), Math.floor(i / 4) % 6, i % 4];
      return normed.data[(b * 4 + c) * 6 + pos]!;
    }),
    [2, 6, 4],
  );
  const out = ref.linear(
    ref.attention(ref.linear(tokens, p('to_q.weight'), p('to_q.bias')), ref.linear(tokens, p('to_k.weight'), p('to_k.bias')), ref.linear(tokens, p('to_v.weight'), p('to_v.bias')), 1),
    p('to_out.0.weight'),
    p('to_out.0.bias'),
  );
  const expected = Array.from({ length: 48 }, (_, i) => {
    const [b, c, pos] = [Math.floor(i / 24), Math.floor(i / 6) % 4, i % 6];
    return x.toFloat64Array()[i]! + out.data[(b * 6 + pos) * 4 + c]!;
  });
  close(vals(noGrad(() => attn.forward(x))), expected, 1e-10);
});

describe('tiny VAE', () => {
  const vae = new AutoencoderKL(TINY, { generator: gen(3) }).eval();

  test('encode → [B, 4, H/2, W/2] posterior, decode → [B, 3, H, W], odd sizes too', () => {
    for (const [h, w] of [[16, 16], [12, 20], [8, 6]] as const) {
      const image = input([2, 3, h, w], h * w);
      const posterior = noGrad(() => vae.encode(image));
      assert.deepEqual(posterior.mean.shape, [2, 4, h / 2, w / 2]);
      assert.deepEqual(posterior.logvar.shape, [2, 4, h / 2, w / 2]);
      const decoded = noGrad(() => vae.decode(posterior.sample(gen(1))));
      assert.deepEqual(decoded.shape, [2, 3, h, w]);
      assert.ok(vals(decoded).every(Number.isFinite));
      posterior.dispose();
    }
  });

  test('sampling is deterministic by seed: mean + std · ε with ε from that generator', () => {
    const posterior = noGrad(() => vae.encode(input([1, 3, 8, 8], 4)));
    const a = posterior.sample(gen(42));
    const b = posterior.sample(gen(42));
    const c = posterior.sample(gen(43));
    assert.ok(a.equal(b), 'same seed, same sample');
    assert.ok(!a.allclose(c), 'another seed, another sample');
    const eps = randn(posterior.mean.shape, { generator: gen(42) });
    close(vals(a), vals(posterior.mean.add(posterior.logvar.mul(0.5).exp().mul(eps))), 1e-6);
    assert.ok(posterior.mode().equal(posterior.mean));
    posterior.dispose();
  });

  test('log-variance is clamped to [-30, 20]', () => {
    // channels 0-1: mean 0.5; channels 2-3: log-variance 50 then -50 along the width
    const moments = tensor([0.5, 0.5, 0.5, 0.5, 50, -50, 50, -50], { shape: [1, 4, 1, 2] });
    const g = new DiagonalGaussian(moments);
    assert.deepEqual(vals(g.logvar), [20, -30, 20, -30]);
    close(vals(g.std), [Math.exp(10), Math.exp(-15), Math.exp(10), Math.exp(-15)], 1e-6);
    assert.deepEqual(vals(g.mean), [0.5, 0.5, 0.5, 0.5]);
  });

  test('bf16 autocast and channels-last decode close to fp32', (t) => {
    const z = input([1, 4, 8, 8], 5);
    const reference = noGrad(() => vae.decode(z));
    const lowered = noGrad(() => autocast({ device: 'cpu', dtype: 'bfloat16' }, () => vae.decode(z)));
    const rel = (a: Tensor) => {
      const [x, y] = [vals(a), vals(reference)];
      return Math.sqrt(x.reduce((s, v, i) => s + (v - y[i]!) ** 2, 0) / y.reduce((s, v) => s + v * v, 0));
    };
    const cl = new AutoencoderKL(TINY, { generator: gen(3) }).eval();
    cl.to({ memoryFormat: 'channels_last' });
    const clOut = noGrad(() => cl.decode(z));
    assert.ok(clOut.isContiguous());
    t.diagnostic(`relative error vs fp32: autocast ${rel(lowered).toExponential(2)}, channels-last ${rel(clOut).toExponential(2)}`);
    assert.ok(rel(lowered) < 0.03);
    assert.ok(rel(clOut) < 1e-5);
  });

  test('encode and decode free everything they make', () => {
    const image = input([1, 3, 32, 32], 6);
    const roundTrip = () => {
      const posterior = noGrad(() => vae.encode(image));
      const z = posterior.sample(gen(7));
      const decoded = noGrad(() => vae.decode(z));
      for (const t of [posterior, z, decoded]) t.dispose();
    };
    roundTrip(); // warm-up
    const before = settledLiveTensors().count;
    roundTrip();
    assert.equal(liveTensors().count, before, 'no tensor outlives encode, sample and decode (without waiting for the GC)');
  });
});
