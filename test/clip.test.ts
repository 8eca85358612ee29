import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import sharp from 'sharp';
import { encodePng, fromMinusOneOne, ImageError, readImage, readImageWithAlpha, readMask, readPngTextFile, toMinusOneOne, writePng } from '../src/io/image.js';
import { addPngText, crc32, PngError, readPngText } from '../src/io/png-text.js';
import { loadSafetensors, saveSafetensors } from '../src/io/safetensors.js';
import { Module } from '../src/nn/module.js';
import { ClipConfigError } from '../src/models/clip-config.js';
import { CLIPEncoderLayer, isIgnoredClipKey, quickGelu } from '../src/models/clip-encoder.js';
import { CLIP_IMAGE_MEAN, CLIP_IMAGE_STD, centerCrop, clipPreprocess, maskBox, replaceBackground, resizeShortSide, shortSideSize, squareAround } from '../src/models/clip-preprocess.js';
import { type CLIPTextConfig, CLIPTextModel, clipTextConfigFromJson, SD15_TEXT_CONFIG } from '../src/models/clip-text.js';
import { CLIP_VIT_L14_VISION_CONFIG, clipVisionConfigFromJson, CLIPVisionModelWithProjection } from '../src/models/clip-vision.js';
import { arange, autocast, full, Generator, liveTensors, noGrad, rand, type Tensor, tensor, tidy, zeros } from '../src/tensor/index.js';
import { close, rnd, vals } from './helpers.js';
import { TINY_VISION_CONFIG } from './tiny-sd.js';

const dir = mkdtempSync(join(tmpdir(), 'moa-clip-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const gen = (seed: number) => new Generator(seed);
const ids = (rows: number[][]) => tensor(rows.flat(), { shape: [rows.length, rows[0]!.length], dtype: 'int64' });
const shapeOf = (state: Record<string, Tensor>) => Object.fromEntries(Object.entries(state).map(([k, t]) => [k, [...t.shape]]));
const disposeAll = (state: Record<string, Tensor>) => Object.values(state).forEach((t) => t.dispose());

const TINY_TEXT: CLIPTextConfig = {
  vocab_size: 100,
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 4,
  max_position_embeddings: 16,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  projection_dim: 32,
  bos_token_id: 0,
  eos_token_id: 2,
  pad_token_id: 1,
};
const TINY_VISION = TINY_VISION_CONFIG;
/** A row of token ids in [3, 90) with the end-of-text (99, the largest) at `eos`. */
const tokenRow = (length: number, eos: number, seed: number) => rnd(length, seed, 3, 90).map((v, i) => (i === eos ? 99 : Math.floor(v)));

const LAYER_KEYS = [
  'self_attn.k_proj.weight',
  'self_attn.k_proj.bias',
  'self_attn.v_proj.weight',
  'self_attn.v_proj.bias',
  'self_attn.q_proj.weight',
  'self_attn.q_proj.bias',
  'self_attn.out_proj.weight',
  'self_attn.out_proj.bias',
  'layer_norm1.weight',
  'layer_norm1.bias',
  'mlp.fc1.weight',
  'mlp.fc1.bias',
  'mlp.fc2.weight',
  'mlp.fc2.bias',
  'layer_norm2.weight',
  'layer_norm2.bias',
];
const layerKeys = (prefix: string, layers: number) => Array.from({ length: layers }, (_, i) => LAYER_KEYS.map((k) => `${prefix}.encoder.layers.${i}.${k}`)).flat();

// ---- full-size models ----

describe('SD1.5 text encoder and ViT-L/14 image encoder at full size', () => {
  test('CLIPTextModel (SD1.5): 123,060,480 parameters under transformers key names', () => {
    const model = new CLIPTextModel(SD15_TEXT_CONFIG, { generator: gen(0) });
    try {
      assert.equal(model.numParameters(), 123_060_480);
      const state = model.stateDict();
      const keys = Object.keys(state);
      assert.deepEqual(keys, [
        'text_model.embeddings.token_embedding.weight',
        'text_model.embeddings.position_embedding.weight',
        ...layerKeys('text_model', 12),
        'text_model.final_layer_norm.weight',
        'text_model.final_layer_norm.bias',
      ]);
      const shapes = shapeOf(state);
      assert.deepEqual(shapes['text_model.embeddings.token_embedding.weight'], [49408, 768]);
      assert.deepEqual(shapes['text_model.embeddings.position_embedding.weight'], [77, 768]);
      assert.deepEqual(shapes['text_model.encoder.layers.0.self_attn.q_proj.weight'], [768, 768]);
      assert.deepEqual(shapes['text_model.encoder.layers.11.self_attn.out_proj.bias'], [768]);
      assert.deepEqual(shapes['text_model.encoder.layers.3.mlp.fc1.weight'], [3072, 768]);
      assert.deepEqual(shapes['text_model.encoder.layers.3.mlp.fc1.bias'], [3072]);
      assert.deepEqual(shapes['text_model.encoder.layers.7.mlp.fc2.weight'], [768, 3072]);
      assert.deepEqual(shapes['text_model.encoder.layers.11.layer_norm2.bias'], [768]);
      assert.deepEqual(shapes['text_model.final_layer_norm.weight'], [768]);
      disposeAll(state);
      // position_ids is a buffer, but not persistent: in no state dict, as in current transformers.
      assert.deepEqual(model.namedBuffers().map(([k, t]) => [k, [...t.shape], t.dtype]), [['text_model.embeddings.position_ids', [1, 77], 'int64']]);
      noGrad(() =>
        tidy(() => {
          const row = [49406, 320, 1125, 539, 49407, ...Array<number>(72).fill(49407)];
          const out = model.forward(ids([row]));
          assert.deepEqual(out.lastHiddenState.shape, [1, 77, 768]);
          assert.deepEqual(out.poolerOutput.shape, [1, 768]);
          // 49407 first appears at position 4; argmax picks the first maximum.
          assert.ok(out.poolerOutput.equal(out.lastHiddenState.select(1, 4)));
        }),
      );
    } finally {
      model.dispose();
    }
  });

  test('CLIPVisionModelWithProjection (ViT-L/14): 303,966,208 parameters under transformers key names', () => {
    const model = new CLIPVisionModelWithProjection(CLIP_VIT_L14_VISION_CONFIG, { generator: gen(0) });
    try {
      assert.equal(model.numParameters(), 303_966_208);
      const state = model.stateDict();
      assert.deepEqual(Object.keys(state), [
        'vision_model.embeddings.class_embedding',
        'vision_model.embeddings.patch_embedding.weight',
        'vision_model.embeddings.position_embedding.weight',
        'vision_model.pre_layrnorm.weight',
        'vision_model.pre_layrnorm.bias',
        ...layerKeys('vision_model', 24),
        'vision_model.post_layernorm.weight',
        'vision_model.post_layernorm.bias',
        'visual_projection.weight',
      ]);
      const shapes = shapeOf(state);
      assert.deepEqual(shapes['vision_model.embeddings.class_embedding'], [1024]);
      assert.deepEqual(shapes['vision_model.embeddings.patch_embedding.weight'], [1024, 3, 14, 14]);
      assert.deepEqual(shapes['vision_model.embeddings.position_embedding.weight'], [257, 1024]);
      assert.deepEqual(shapes['vision_model.encoder.layers.23.self_attn.k_proj.weight'], [1024, 1024]);
      assert.deepEqual(shapes['vision_model.encoder.layers.0.mlp.fc1.weight'], [4096, 1024]);
      assert.deepEqual(shapes['vision_model.encoder.layers.12.mlp.fc2.weight'], [1024, 4096]);
      assert.deepEqual(shapes['vision_model.post_layernorm.bias'], [1024]);
      assert.deepEqual(shapes['visual_projection.weight'], [768, 1024]);
      disposeAll(state);
      assert.deepEqual(model.namedBuffers().map(([k, t]) => [k, [...t.shape]]), [['vision_model.embeddings.position_ids', [1, 257]]]);
      // (A full-size forward takes seconds on a small CPU; the tiny models below cover forward.)
    } finally {
      model.dispose();
    }
  });
});

// ---- configs ----

describe('configs', () => {
  // Stable Diffusion 1.5's text_encoder/config.json.
  const SD15_JSON = `{
    "_name_or_path": "openai/clip-vit-large-patch14", "architectures": ["CLIPTextModel"], "attention_dropout": 0.0,
    "bos_token_id": 0, "dropout": 0.0, "eos_token_id": 2, "hidden_act": "quick_gelu", "hidden_size": 768,
    "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": 3072, "layer_norm_eps": 1e-05,
    "max_position_embeddings": 77, "model_type": "clip_text_model", "num_attention_heads": 12, "num_hidden_layers": 12,
    "pad_token_id": 1, "projection_dim": 768, "torch_dtype": "float32", "transformers_version": "4.22.0.dev0", "vocab_size": 49408
  }`;

  test('SD1.5 text_encoder/config.json parses to SD15_TEXT_CONFIG', () => {
    assert.deepEqual(clipTextConfigFromJson(SD15_JSON), SD15_TEXT_CONFIG);
    assert.deepEqual(clipTextConfigFromJson(JSON.parse(SD15_JSON)), SD15_TEXT_CONFIG);
    // A CLIPConfig: the text tower is its text_config.
    const clip = { model_type: 'clip', projection_dim: 768, text_config: JSON.parse(SD15_JSON), vision_config: { hidden_size: 1024 } };
    assert.deepEqual(clipTextConfigFromJson(clip), SD15_TEXT_CONFIG);
    // Absent fields take transformers' CLIPTextConfig defaults.
    const sparse = clipTextConfigFromJson({ hidden_size: 64, num_attention_heads: 4 });
    assert.equal(sparse.vocab_size, 49408);
    assert.equal(sparse.intermediate_size, 2048);
    assert.equal(sparse.eos_token_id, 49407);
    assert.equal(sparse.hidden_act, 'quick_gelu');
  });

  test('vision configs: a CLIPVisionConfig, or a CLIPConfig with vision_config', () => {
    const vision = {
      architectures: ['CLIPVisionModelWithProjection'], model_type: 'clip_vision_model', hidden_act: 'quick_gelu', hidden_size: 1024, image_size: 224,
      intermediate_size: 4096, layer_norm_eps: 1e-5, num_attention_heads: 16, num_channels: 3, num_hidden_layers: 24, patch_size: 14, projection_dim: 768,
    };
    assert.deepEqual(clipVisionConfigFromJson(JSON.stringify(vision)), CLIP_VIT_L14_VISION_CONFIG);
    const { projection_dim: _, model_type: __, ...nested } = vision;
    // The nested config lacks projection_dim: the CLIPConfig's (768), not CLIPVisionConfig's default (512).
    const clip = { model_type: 'clip', projection_dim: 768, text_config: {}, vision_config: nested };
    assert.deepEqual(clipVisionConfigFromJson(clip), CLIP_VIT_L14_VISION_CONFIG);
    assert.equal(clipVisionConfigFromJson({ hidden_size: 64, num_attention_heads: 4 }).patch_size, 32);
  });

  test('invalid configs fail with the file and field named', () => {
    const bad = (json: unknown, pattern: RegExp, parse: (json: unknown, source?: string) => unknown = clipTextConfigFromJson) =>
      assert.throws(() => parse(json, 'text_encoder/config.json'), (e: Error) => e instanceof ClipConfigError && pattern.test(e.message) && e.message.startsWith('text_encoder/config.json'));
    bad('{"hidden_size": 768,', /not valid JSON/);
    bad('[1, 2]', /JSON object, not an array/);
    bad({ hidden_size: 770, num_attention_heads: 12 }, /hidden_size \(770\) must be divisible by num_attention_heads \(12\)/);
    bad({ hidden_size: 768, hidden_act: 'swish' }, /"hidden_act" "swish" is not supported; expected one of quick_gelu, gelu/);
    bad({ hidden_size: 768.5 }, /"hidden_size" must be an integer/);
    bad({ hidden_size: '768' }, /"hidden_size" must be an integer ≥ 1, not "768"/);
    bad({ hidden_size: 768, layer_norm_eps: -1 }, /"layer_norm_eps" must be a positive number/);
    bad({ hidden_size: 768, eos_token_id: null }, /"eos_token_id" must not be null/);
    bad({ _class_name: 'UNet2DConditionModel', sample_size: 64 }, /does not look like a CLIP text config/);
    bad({ model_type: 'clip_vision_model', hidden_size: 1024 }, /model_type is "clip_vision_model", expected "clip_text_model"/);
    bad({ model_type: 'clip' }, /needs a "text_config"/);
    bad({ hidden_size: 64, num_attention_heads: 4, patch_size: 100, image_size: 32 }, /patch_size \(100\) must not exceed image_size \(32\)/, clipVisionConfigFromJson);
    // Configs written by hand are checked as files are.
    assert.throws(() => new CLIPTextModel({ ...TINY_TEXT, hidden_size: 30 }), /CLIPTextModel config: hidden_size \(30\) must be divisible by num_attention_heads \(4\)/);
    assert.throws(() => new CLIPVisionModelWithProjection({ ...TINY_VISION, hidden_act: 'relu' as 'gelu' }), /"hidden_act" "relu" is not supported/);
  });

  test('fromConfigJson builds the model the config describes', () => {
    const model = CLIPTextModel.fromConfigJson(JSON.stringify(TINY_TEXT), { generator: gen(1) });
    assert.deepEqual(model.config, TINY_TEXT);
    assert.equal(model.numParameters(), 100 * 32 + 16 * 32 + 2 * (4 * (32 * 32 + 32) + 2 * 64 + (32 * 64 + 64) + (64 * 32 + 32)) + 64);
    const vision = CLIPVisionModelWithProjection.fromConfigJson(TINY_VISION, { generator: gen(1) });
    assert.deepEqual(vision.config, TINY_VISION);
    model.dispose();
    vision.dispose();
  });
});

// ---- forward ----

describe('forward', () => {
  test('tiny text and vision models: output shapes', () => {
    const text = new CLIPTextModel(TINY_TEXT, { generator: gen(2) });
    const vision = new CLIPVisionModelWithProjection(TINY_VISION, { generator: gen(3) });
    noGrad(() =>
      tidy(() => {
        const t = text.forward(ids([tokenRow(16, 5, 1), tokenRow(16, 9, 2)]), { outputHiddenStates: true });
        assert.deepEqual(t.lastHiddenState.shape, [2, 16, 32]);
        assert.deepEqual(t.poolerOutput.shape, [2, 32]);
        assert.equal(t.hiddenStates!.length, 3);
        for (const h of t.hiddenStates!) assert.deepEqual(h.shape, [2, 16, 32]);
        assert.deepEqual(text.forward(ids([tokenRow(5, 4, 3)])).lastHiddenState.shape, [1, 5, 32]);
        const v = vision.forward(rand([2, 3, 28, 28], { generator: gen(4) }), { outputHiddenStates: true });
        assert.deepEqual(v.imageEmbeds.shape, [2, 16]);
        assert.deepEqual(v.lastHiddenState.shape, [2, 17, 32]);
        assert.equal(v.hiddenStates!.length, 3);
        assert.ok(v.hiddenStates!.at(-1)!.equal(v.lastHiddenState));
      }),
    );
    text.dispose();
    vision.dispose();
  });

  test('inputs are checked', () => {
    const text = new CLIPTextModel(TINY_TEXT, { generator: gen(2) });
    const vision = new CLIPVisionModelWithProjection(TINY_VISION, { generator: gen(3) });
    noGrad(() =>
      tidy(() => {
        assert.throws(() => text.forward(zeros([2, 17], { dtype: 'int64' })), /1 to 16 tokens per sequence, not \[2, 17\]/);
        assert.throws(() => text.forward(zeros([16], { dtype: 'int64' })), /token ids \[batch, length\]/);
        assert.throws(() => text.forward(zeros([1, 4])), /integer token ids, not float32/);
        assert.throws(() => text.forward(ids([[1, 2, 100]])), /token ids must lie in \[0, 100\); these span \[1, 100\]/);
        assert.throws(() => text.forward(ids([[1, 2]]), { attentionMask: zeros([1, 3]) }), /attentionMask must be \[1, 2\]/);
        assert.throws(() => vision.forward(zeros([1, 3, 32, 32])), /pixel values \[batch, 3, 28, 28\] \(see clipPreprocess\), not a tensor of shape \[1, 3, 32, 32\]/);
      }),
    );
    text.dispose();
    vision.dispose();
  });

  test('the text model is causal: a later token never changes earlier hidden states', () => {
    const text = new CLIPTextModel(TINY_TEXT, { generator: gen(5) });
    noGrad(() =>
      tidy(() => {
        const a = tokenRow(12, 11, 6);
        const b = [...a];
        b[6] = a[6] === 40 ? 41 : 40;
        const [ha, hb] = [text.forward(ids([a])).lastHiddenState, text.forward(ids([b])).lastHiddenState];
        assert.ok(ha.narrow(1, 0, 6).allclose(hb.narrow(1, 0, 6), { rtol: 0, atol: 1e-6 }), 'positions before the change');
        for (let i = 6; i < 12; i++) assert.ok(!ha.select(1, i).allclose(hb.select(1, i), { rtol: 0, atol: 1e-4 }), `position ${i} should change`);
      }),
    );
    text.dispose();
  });

  test('an attention mask hides padded keys', () => {
    const text = new CLIPTextModel(TINY_TEXT, { generator: gen(7) });
    noGrad(() =>
      tidy(() => {
        const a = tokenRow(8, 7, 8);
        const b = [...a];
        [b[2], b[3]] = [a[2] === 10 ? 11 : 10, a[3] === 12 ? 13 : 12];
        const mask = tensor([1, 1, 0, 0, 1, 1, 1, 1], { shape: [1, 8], dtype: 'int64' });
        const [ha, hb] = [a, b].map((row) => text.forward(ids([row]), { attentionMask: mask }).lastHiddenState);
        // Positions 4+ attend to 0, 1 and themselves onward, never to the masked 2 and 3.
        assert.ok(ha!.narrow(1, 4, 4).allclose(hb!.narrow(1, 4, 4), { rtol: 0, atol: 1e-6 }));
        assert.ok(!ha!.select(1, 2).allclose(hb!.select(1, 2), { rtol: 0, atol: 1e-4 }));
      }),
    );
    text.dispose();
  });

  test('the pooled output is the hidden state at the end-of-text token', () => {
    const legacy = new CLIPTextModel(TINY_TEXT, { generator: gen(9) });
    // eos_token_id other than 2: the first position holding that id, not the largest id.
    const modern = new CLIPTextModel({ ...TINY_TEXT, eos_token_id: 7 }, { generator: gen(9) });
    noGrad(() =>
      tidy(() => {
        const out = legacy.forward(ids([tokenRow(10, 3, 10), tokenRow(10, 8, 11)]));
        assert.ok(out.poolerOutput.select(0, 0).equal(out.lastHiddenState.select(0, 0).select(0, 3)));
        assert.ok(out.poolerOutput.select(0, 1).equal(out.lastHiddenState.select(0, 1).select(0, 8)));
        const row = tokenRow(10, 1, 12).map((v, i) => (i === 6 ? 7 : v === 7 ? 8 : v)); // 99 at 1, 7 at 6
        const m = modern.forward(ids([row]));
        assert.ok(m.poolerOutput.select(0, 0).equal(m.lastHiddenState.select(0, 0).select(0, 6)));
      }),
    );
    legacy.dispose();
    modern.dispose();
  });

  test('one encoder layer matches an independent computation', () => {
    const [D, H, I, L] = [8, 2, 16, 3];
    const hd = D / H;
    const layer = new CLIPEncoderLayer(
      { hidden_size: D, intermediate_size: I, num_hidden_layers: 1, num_attention_heads: H, hidden_act: 'quick_gelu', layer_norm_eps: 1e-5 },
      { generator: gen(13), dtype: 'float64' },
    );
    const state = layer.stateDict();
    // Non-trivial LayerNorm affines, so their use is checked too.
    noGrad(() => {
      for (const k of ['layer_norm1', 'layer_norm2']) {
        state[`${k}.weight`]!.copy_(tensor(rnd(D, k.length * 7, 0.5, 1.5)));
        state[`${k}.bias`]!.copy_(tensor(rnd(D, k.length * 11, -0.5, 0.5)));
      }
    });
    const p = Object.fromEntries(Object.entries(state).map(([k, t]) => [k, vals(t)]));
    const xs = rnd(L * D, 14, -2, 2);
    const rows = (flat: number[], n: number) => Array.from({ length: flat.length / n }, (_, i) => flat.slice(i * n, i * n + n));
    const x = rows(xs, D);
    const ln = (h: number[][], w: number[], b: number[]) =>
      h.map((r) => {
        const mean = r.reduce((s, v) => s + v, 0) / r.length;
        const variance = r.reduce((s, v) => s + (v - mean) ** 2, 0) / r.length;
        return r.map((v, i) => ((v - mean) / Math.sqrt(variance + 1e-5)) * w[i]! + b[i]!);
      });
    const lin = (h: number[][], name: string) => {
      const [w, b] = [p[`${name}.weight`]!, p[`${name}.bias`]!];
      return h.map((r) => b.map((bias, o) => r.reduce((s, v, i) => s + v * w[o * r.length + i]!, bias)));
    };
    const reference = (causal: boolean) => {
      const n1 = ln(x, p['layer_norm1.weight']!, p['layer_norm1.bias']!);
      const [q, k, v] = ['q_proj', 'k_proj', 'v_proj'].map((n) => lin(n1, `self_attn.${n}`)) as [number[][], number[][], number[][]];
      const attended = q.map((qi, i) => {
        const out = new Array<number>(D).fill(0);
        for (let h = 0; h < H; h++) {
          const cols = Array.from({ length: hd }, (_, d) => h * hd + d);
          const keys = Array.from({ length: causal ? i + 1 : L }, (_, j) => j);
          const scores = keys.map((j) => cols.reduce((s, c) => s + qi[c]! * k[j]![c]!, 0) / Math.sqrt(hd));
          const top = Math.max(...scores);
          const e = scores.map((s) => Math.exp(s - top));
          const sum = e.reduce((a, b) => a + b, 0);
          for (const c of cols) out[c] = keys.reduce((s, j, n) => s + (e[n]! / sum) * v[j]![c]!, 0);
        }
        return out;
      });
      const h1 = lin(attended, 'self_attn.out_proj').map((r, i) => r.map((v2, c) => v2 + x[i]![c]!));
      const f1 = lin(ln(h1, p['layer_norm2.weight']!, p['layer_norm2.bias']!), 'mlp.fc1').map((r) => r.map((v2) => v2 / (1 + Math.exp(-1.702 * v2))));
      return lin(f1, 'mlp.fc2').map((r, i) => r.map((v2, c) => v2 + h1[i]![c]!)).flat();
    };
    for (const causal of [true, false]) {
      const got = tidy(() => vals(layer.forward(tensor(xs, { shape: [1, L, D], dtype: 'float64' }), { causal })));
      close(got, reference(causal), 1e-10, `layer output (causal ${causal})`);
    }
    disposeAll(state);
    layer.dispose();
  });

  test('quick_gelu is x·sigmoid(1.702x)', () => {
    const xs = [-4, -1.5, -0.25, 0, 0.3, 1, 2.5, 6];
    const got = tidy(() => vals(quickGelu(tensor(xs, { dtype: 'float64' }))));
    close(got, xs.map((x) => x / (1 + Math.exp(-1.702 * x))), 1e-14, 'quick_gelu');
    close([got[3]!], [0], 0);
  });

  test('bfloat16 autocast and bfloat16 weights give outputs close to float32', () => {
    const text = new CLIPTextModel(TINY_TEXT, { generator: gen(15) });
    const vision = new CLIPVisionModelWithProjection(TINY_VISION, { generator: gen(16) });
    noGrad(() =>
      tidy(() => {
        const tokens = ids([tokenRow(16, 10, 17)]);
        const pixels = rand([1, 3, 28, 28], { generator: gen(18) });
        const t32 = text.forward(tokens);
        const v32 = vision.forward(pixels);
        const tAuto = autocast({ device: 'cpu', dtype: 'bfloat16' }, () => text.forward(tokens));
        const vAuto = autocast({ device: 'cpu', dtype: 'bfloat16' }, () => vision.forward(pixels));
        const near = (a: Tensor, b: Tensor, what: string) => assert.ok(a.float().allclose(b, { rtol: 0.05, atol: 0.1 }), what);
        near(tAuto.lastHiddenState, t32.lastHiddenState, 'text under autocast');
        near(tAuto.poolerOutput, t32.poolerOutput, 'pooled under autocast');
        near(vAuto.imageEmbeds, v32.imageEmbeds, 'image embeds under autocast');
        text.to('bfloat16');
        vision.to('bfloat16');
        const t16 = text.forward(tokens);
        const v16 = vision.forward(pixels); // float32 pixels into a bfloat16 model
        assert.equal(t16.lastHiddenState.dtype, 'bfloat16');
        assert.equal(v16.imageEmbeds.dtype, 'bfloat16');
        near(t16.lastHiddenState, t32.lastHiddenState, 'bfloat16 text model');
        near(v16.imageEmbeds, v32.imageEmbeds, 'bfloat16 vision model');
      }),
    );
    text.dispose();
    vision.dispose();
  });

  test('a seed gives the same weights; another seed, others', () => {
    const [a, b, c] = [1, 1, 2].map((s) => new CLIPVisionModelWithProjection(TINY_VISION, { generator: gen(s) }));
    tidy(() => {
      const [sa, sb, sc] = [a!, b!, c!].map((m) => m.stateDict());
      for (const k of Object.keys(sa!)) assert.ok(sa![k]!.equal(sb![k]!), k);
      assert.ok(!sa!['visual_projection.weight']!.equal(sc!['visual_projection.weight']!));
    });
    for (const m of [a, b, c]) m!.dispose();
  });

  test('gradients reach every parameter (layer outputs freed early stay in the graph)', () => {
    const vision = new CLIPVisionModelWithProjection(TINY_VISION, { generator: gen(32) });
    tidy(() => {
      vision.forward(rand([2, 3, 28, 28], { generator: gen(33) })).imageEmbeds.square().mean().backward();
      for (const [name, p] of vision.namedParameters()) {
        const g = p.grad;
        assert.ok(g && g.abs().sum().item() > 0, `${name} has a gradient`);
      }
    });
    vision.dispose();
  });

  test('forward inside tidy() leaves no tensors behind', () => {
    const text = new CLIPTextModel(TINY_TEXT, { generator: gen(19) });
    const tokens = ids([tokenRow(16, 10, 20)]);
    const before = liveTensors().count;
    noGrad(() => tidy(() => void text.forward(tokens, { outputHiddenStates: true, attentionMask: full([1, 16], 1, { dtype: 'int64' }) })));
    noGrad(() => tidy(() => void text.forward(tokens)));
    // Only frees by the GC could lower the count meanwhile; a leak would raise it.
    assert.ok(liveTensors().count <= before, `${liveTensors().count - before} tensors leaked`);
    tokens.dispose();
    text.dispose();
  });
});

// ---- weights ----

describe('weights', () => {
  test('save to safetensors and load back: identical outputs', () => {
    const path = join(dir, 'text.safetensors');
    const a = new CLIPTextModel(TINY_TEXT, { generator: gen(21) });
    const b = new CLIPTextModel(TINY_TEXT, { generator: gen(22) });
    const va = new CLIPVisionModelWithProjection(TINY_VISION, { generator: gen(23) });
    const vb = new CLIPVisionModelWithProjection(TINY_VISION, { generator: gen(24) });
    tidy(() => {
      saveSafetensors(path, a.stateDict());
      saveSafetensors(join(dir, 'vision.safetensors'), va.stateDict());
      const { tensors } = loadSafetensors(path);
      assert.deepEqual(b.loadStateDict(tensors), { missing: [], unexpected: [] });
      vb.loadStateDict(loadSafetensors(join(dir, 'vision.safetensors')).tensors);
      noGrad(() => {
        const tokens = ids([tokenRow(16, 12, 25)]);
        assert.ok(a.forward(tokens).lastHiddenState.equal(b.forward(tokens).lastHiddenState));
        const pixels = rand([1, 3, 28, 28], { generator: gen(26) });
        assert.ok(va.forward(pixels).imageEmbeds.equal(vb.forward(pixels).imageEmbeds));
      });
    });
    for (const m of [a, b, va, vb]) m.dispose();
  });

  test('a checkpoint that still holds embeddings.position_ids loads; the key is ignored', () => {
    const model = new CLIPTextModel(TINY_TEXT, { generator: gen(27) });
    const vision = new CLIPVisionModelWithProjection(TINY_VISION, { generator: gen(28) });
    tidy(() => {
      // Older transformers saved it; some checkpoints hold it as float.
      const legacy = { ...model.stateDict(), 'text_model.embeddings.position_ids': arange(16).view(1, 16).float() };
      assert.deepEqual(model.loadStateDict(legacy), { missing: [], unexpected: [] });
      // Module's own strict load would refuse it: the override is what drops it.
      assert.throws(() => Module.prototype.loadStateDict.call(model, legacy), /Unexpected key\(s\): "text_model.embeddings.position_ids"/);
      const legacyVision = { ...vision.stateDict(), 'vision_model.embeddings.position_ids': arange(17).view(1, 17) };
      assert.deepEqual(vision.loadStateDict(legacyVision), { missing: [], unexpected: [] });
      // Other unexpected keys are still refused.
      assert.throws(() => model.loadStateDict({ ...legacy, 'text_model.extra': zeros([1]) }), /Unexpected key\(s\): "text_model.extra"\./);
    });
    assert.ok(isIgnoredClipKey('text_model.embeddings.position_ids'));
    assert.ok(isIgnoredClipKey('cond_stage_model.transformer.text_model.embeddings.position_ids'));
    assert.ok(isIgnoredClipKey('vision_model.embeddings.position_ids'));
    assert.ok(!isIgnoredClipKey('text_model.embeddings.position_embedding.weight'));
    assert.ok(!isIgnoredClipKey('unet.position_ids_extra'));
    model.dispose();
    vision.dispose();
  });
});

// ---- images ----

/** An RGB PNG of width × height, each pixel's colour chosen by colour(x, y) as 0–255 values. */
async function writeSynthetic(name: string, width: number, height: number, colour: (x: number, y: number) => [number, number, number]): Promise<string> {
  const data = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) data.set(colour(x, y), (y * width + x) * 3);
  const path = join(dir, name);
  await sharp(data, { raw: { width, height, channels: 3 } }).png().toFile(path);
  return path;
}

/** CLIP-normalised value of a [0, 1] colour. */
const normalised = (rgb: readonly number[]) => rgb.map((v, c) => (v - CLIP_IMAGE_MEAN[c]!) / CLIP_IMAGE_STD[c]!);
const pixelAt = (t: Tensor, y: number, x: number) => tidy(() => vals(t.select(0, 0).select(1, y).select(1, x)));

describe('images and CLIP preprocessing', () => {
  test('readImage gives RGB [1, 3, H, W] in [0, 1]; writePng and readImage round-trip exactly', async () => {
    const path = await writeSynthetic('grad.png', 5, 3, (x, y) => [x * 50, y * 100, 7]);
    const image = await readImage(path);
    assert.deepEqual(image.shape, [1, 3, 3, 5]);
    assert.equal(image.dtype, 'float32');
    close(pixelAt(image, 2, 4), [200 / 255, 200 / 255, 7 / 255], 1e-7, 'pixel (4, 2)');
    const copy = join(dir, 'copy.png');
    await writePng(copy, image);
    const back = await readImage(copy);
    assert.ok(back.equal(image));
    const signed = toMinusOneOne(image);
    close(pixelAt(signed, 0, 0), [-1, -1, (2 * 7) / 255 - 1], 1e-7, '[-1, 1]');
    assert.ok(fromMinusOneOne(signed).allclose(image, { atol: 1e-6 }));
    for (const t of [image, back, signed]) t.dispose();
  });

  test('alpha and masks', async () => {
    const rgba = Buffer.from([255, 0, 0, 255, 0, 255, 0, 0]);
    const path = join(dir, 'rgba.png');
    await sharp(rgba, { raw: { width: 2, height: 1, channels: 4 } }).png().toFile(path);
    const { rgb, alpha } = await readImageWithAlpha(path);
    assert.deepEqual(rgb.shape, [1, 3, 1, 2]);
    assert.deepEqual(alpha!.toNumbers(), [1, 0]);
    const mask = await readMask(path);
    assert.deepEqual(mask.shape, [1, 1, 1, 2]);
    for (const t of [rgb, alpha!, mask]) t.dispose();
  });

  test('clipPreprocess: [1, 3, 224, 224], short side to 224, centre crop, CLIP normalisation', async () => {
    // 300 × 200, red left of x = 100, blue from there: resized to 336 × 224 the edge is at x = 112,
    // and the centre crop starts at x = 56, so the edge lands at crop column 56 (not 112 as in the middle).
    const wide = await readImage(await writeSynthetic('wide.png', 300, 200, (x) => (x < 100 ? [255, 0, 0] : [0, 0, 255])));
    assert.deepEqual(shortSideSize(200, 300, 224), [224, 336]);
    const px = clipPreprocess(wide);
    assert.deepEqual(px.shape, [1, 3, 224, 224]);
    const [red, blue] = [normalised([1, 0, 0]), normalised([0, 0, 1])];
    for (const y of [0, 111, 223]) {
      close(pixelAt(px, y, 0), red, 1e-5, `row ${y} column 0`);
      close(pixelAt(px, y, 50), red, 1e-5, `row ${y} column 50`);
      close(pixelAt(px, y, 62), blue, 1e-5, `row ${y} column 62`);
      close(pixelAt(px, y, 223), blue, 1e-5, `row ${y} column 223`);
    }
    // 200 × 301, green above y = 200: resized to 224 × 337 (truncated), crop top = 56, edge at row 224 − 56 = 168.
    const tall = await readImage(await writeSynthetic('tall.png', 200, 301, (_, y) => (y < 200 ? [0, 255, 0] : [0, 0, 0])));
    assert.deepEqual(shortSideSize(301, 200, 224), [337, 224]);
    const pt = clipPreprocess(tall);
    assert.deepEqual(pt.shape, [1, 3, 224, 224]);
    close(pixelAt(pt, 160, 100), normalised([0, 1, 0]), 1e-5, 'above the edge');
    close(pixelAt(pt, 176, 100), normalised([0, 0, 0]), 1e-5, 'below the edge');
    for (const t of [wide, px, tall, pt]) t.dispose();
  });

  test('normalisation values and crop offsets', () => {
    tidy(() => {
      const grey = clipPreprocess(full([1, 3, 224, 224], 0.5));
      close(pixelAt(grey, 7, 9), normalised([0.5, 0.5, 0.5]), 1e-6, 'grey');
      close(pixelAt(grey, 7, 9), [0.069037, 0.161393, 0.332839], 1e-5, 'grey, by hand');
      // 5 × 7 crop 3: top (5 − 3) // 2 = 1, left (7 − 3) // 2 = 2.
      const grid = arange(35).float().view(1, 1, 5, 7);
      assert.deepEqual(centerCrop(grid, 3).toNumbers(), [9, 10, 11, 16, 17, 18, 23, 24, 25]);
      // 6 × 4 crop 3: top 1, left 0.
      assert.deepEqual(centerCrop(arange(24).float().view(1, 1, 6, 4), 3).toNumbers(), [4, 5, 6, 8, 9, 10, 12, 13, 14]);
    });
  });

  test("resizing is PIL's bicubic filter (a = -0.5, widened when shrinking), clamped to [0, 1]", () => {
    // PIL's separable resampling, written from its definition: output pixel i is centred at
    // (i + 0.5)·scale in the input, with cubic weights over ±2·max(scale, 1) input pixels, normalised.
    const cubic = (x: number) => {
      const [t, a] = [Math.abs(x), -0.5];
      return t < 1 ? ((a + 2) * t - (a + 3)) * t * t + 1 : t < 2 ? (((t - 5) * t + 8) * t - 4) * a : 0;
    };
    const resample1d = (row: number[], out: number) => {
      const scale = row.length / out;
      const filterScale = Math.max(scale, 1);
      return Array.from({ length: out }, (_, i) => {
        const centre = (i + 0.5) * scale;
        const lo = Math.max(Math.trunc(centre - 2 * filterScale + 0.5), 0);
        const hi = Math.min(Math.trunc(centre + 2 * filterScale + 0.5), row.length);
        let [sum, norm] = [0, 0];
        for (let j = lo; j < hi; j++) {
          const w = cubic((j - centre + 0.5) / filterScale);
          sum += w * row[j]!;
          norm += w;
        }
        return sum / norm;
      });
    };
    for (const [h, w, size] of [[8, 12, 4], [6, 7, 9]] as const) {
      const values = rnd(h * w, h * 100 + w, 0, 1);
      const [oh, ow] = shortSideSize(h, w, size);
      const rows = Array.from({ length: h }, (_, y) => resample1d(values.slice(y * w, y * w + w), ow));
      const expected: number[] = new Array(oh * ow);
      for (let x = 0; x < ow; x++) resample1d(rows.map((r) => r[x]!), oh).forEach((v, y) => (expected[y * ow + x] = Math.min(Math.max(v, 0), 1)));
      const got = tidy(() => vals(resizeShortSide(tensor(values, { shape: [1, 1, h, w] }), size)));
      close(got, expected, 1e-5, `${h}×${w} → ${oh}×${ow}`);
    }
  });

  test('a mask replaces the background with grey or seeded noise', () => {
    tidy(() => {
      const image = full([1, 3, 4, 6], 0.9);
      const mask = zeros([4, 6]);
      mask.narrow(1, 0, 3).fill_(1); // subject: the left half
      const grey = replaceBackground(image, mask);
      close(vals(grey.narrow(3, 0, 3)), new Array(36).fill(0.9), 1e-7, 'subject kept');
      close(vals(grey.narrow(3, 3, 3)), new Array(36).fill(0.5), 1e-7, 'background grey');
      const n1 = replaceBackground(image, mask, { background: 'noise', generator: gen(30) });
      const n2 = replaceBackground(image, mask, { background: 'noise', generator: gen(30) });
      assert.ok(n1.equal(n2), 'same seed, same noise');
      const noise = vals(n1.narrow(3, 3, 3));
      assert.ok(noise.every((v) => v >= 0 && v < 1) && new Set(noise).size > 30, 'uniform noise');
      close(vals(n1.narrow(3, 0, 3)), new Array(36).fill(0.9), 1e-7, 'subject kept under noise');
      assert.throws(() => replaceBackground(image, mask, { background: 'noise' }), /needs a generator/);
      assert.throws(() => replaceBackground(image, zeros([4, 5])), /a mask for an image \[1, 3, 4, 6\] is \[4, 6\]/);
      // Through clipPreprocess: a 224 image whose background becomes grey normalises to grey's value.
      const pixels = clipPreprocess(full([1, 3, 224, 224], 0.2), { mask: zeros([1, 1, 224, 224]) });
      close(pixelAt(pixels, 100, 100), normalised([0.5, 0.5, 0.5]), 1e-6, 'masked out');
    });
  });

  test('cropToMask cuts each image to the square around its own subject before resizing', () => {
    tidy(() => {
      const image = full([2, 3, 8, 12], 0.2);
      const masks = zeros([2, 1, 8, 12]);
      image.narrow(0, 0, 1).narrow(2, 2, 4).narrow(3, 3, 3).fill_(0.9); // image 0: rows 2–5, columns 3–5
      masks.narrow(0, 0, 1).narrow(2, 2, 4).narrow(3, 3, 3).fill_(1);
      image.narrow(0, 1, 1).narrow(2, 0, 2).narrow(3, 8, 4).fill_(0.9); // image 1: rows 0–1, columns 8–11
      masks.narrow(0, 1, 1).narrow(2, 0, 2).narrow(3, 8, 4).fill_(1);
      assert.deepEqual(maskBox(masks.narrow(0, 0, 1)), [2, 3, 6, 6]);
      assert.deepEqual(maskBox(masks.narrow(0, 1, 1)), [0, 8, 2, 12]);
      assert.equal(maskBox(zeros([8, 12])), null);
      assert.throws(() => maskBox(masks), /one mask/);
      // Box 4 × 3: one column of padding on the right (mask 0), so the square is 4 × 4.
      const square = squareAround(image.narrow(0, 0, 1), masks.narrow(0, 0, 1), [2, 3, 6, 6])!;
      assert.deepEqual([square.image.shape, square.mask.shape], [[1, 3, 4, 4], [1, 1, 4, 4]]);
      close(vals(square.mask.select(3, 3)), [0, 0, 0, 0], 0, 'padding is background');
      assert.equal(squareAround(image, masks, [2, 12, 6, 14]), null, 'a box outside the image');
      const pixels = clipPreprocess(image, { mask: masks, cropToMask: true, size: 4, cropSize: 4 });
      assert.deepEqual(pixels.shape, [2, 3, 4, 4]);
      for (const [y, x] of [[0, 0], [3, 2]]) close(pixelAt(pixels, y, x), normalised([0.9, 0.9, 0.9]), 1e-6, `subject at ${y}, ${x}`);
      close(pixelAt(pixels, 1, 3), normalised([0.5, 0.5, 0.5]), 1e-6, 'padding becomes grey');
      // Image 1's 2 × 4 box becomes 4 × 4 with a row of grey above and below.
      const second = pixels.narrow(0, 1, 1);
      close(pixelAt(second, 0, 0), normalised([0.5, 0.5, 0.5]), 1e-6, 'grey above');
      close(pixelAt(second, 1, 0), normalised([0.9, 0.9, 0.9]), 1e-6, 'subject');
      assert.throws(() => clipPreprocess(image, { mask: zeros([2, 1, 8, 12]), cropToMask: true }), /the mask of image 0 is empty .* give the subject's mask, or none/);
    });
  });

  test('PNG text chunks round-trip (tEXt for Latin-1, iTXt otherwise)', async () => {
    const image = tidy(() => rand([1, 3, 8, 8], { generator: gen(31) }).mul(255).round().div(255));
    const text = { parameters: 'a photo of sks dog, steps: 30, seed: 7', Comment: 'café', prompt: '猫の写真 ✓', empty: '' };
    const path = join(dir, 'text.png');
    await writePng(path, image, text);
    assert.deepEqual(await readPngTextFile(path), text);
    const bytes = await encodePng(image, text);
    const types = chunkTypes(bytes);
    assert.equal(types[0], 'IHDR');
    assert.equal(types.at(-1), 'IEND');
    assert.equal(types.filter((t) => t === 'tEXt').length, 3);
    assert.equal(types.filter((t) => t === 'iTXt').length, 1);
    assert.ok(types.indexOf('iTXt') < types.indexOf('IDAT'), 'text before the image data');
    const back = await readImage(path);
    assert.ok(back.equal(image), 'pixels survive');
    assert.deepEqual(readPngText(addPngText(bytes, { parameters: 'newer' })).parameters, 'newer');
    assert.throws(() => addPngText(bytes, { ' bad': 'x' }), PngError);
    assert.throws(() => addPngText(bytes, { ['k'.repeat(80)]: 'x' }), /1 to 79 printable Latin-1/);
    const corrupt = Buffer.from(bytes);
    corrupt[corrupt.indexOf('tEXt') + 6]! ^= 0xff;
    assert.throws(() => readPngText(corrupt), /tEXt chunk at byte \d+ fails its CRC check/);
    assert.throws(() => readPngText(Buffer.from('not a png at all')), /not a PNG/);
    image.dispose();
    back.dispose();
  });

  test('CRC-32: node:zlib and the table agree with the standard check value', () => {
    const check = Buffer.from('123456789');
    assert.equal(crc32(check), 0xcbf43926);
    assert.equal(crc32(check, { useTable: true }), 0xcbf43926);
    const data = Buffer.from(rnd(1000, 32, 0, 256).map(Math.floor));
    assert.equal(crc32(data), crc32(data, { useTable: true }));
  });

  test('unreadable images: a clear error naming the path', async () => {
    const missing = join(dir, 'no-such-image.png');
    await assert.rejects(readImage(missing), (e: Error) => e instanceof ImageError && e.message === `cannot read image '${missing}': no such file`);
    const junk = join(dir, 'junk.png');
    writeFileSync(junk, 'this is not an image');
    await assert.rejects(readImage(junk), (e: Error) => e instanceof ImageError && e.message.startsWith(`cannot read image '${junk}': `) && /unsupported image format/.test(e.message));
    await assert.rejects(readImage(dir), new RegExp(`cannot read image '${dir}': not a regular file`));
    await assert.rejects(readPngTextFile(junk), /is not a PNG/);
  });
});

function chunkTypes(png: Buffer): string[] {
  const types: string[] = [];
  for (let at = 8; at < png.length; at += 12 + png.readUInt32BE(at)) types.push(png.toString('latin1', at + 4, at + 8));
  return types;
}
