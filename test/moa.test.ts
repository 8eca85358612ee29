// MoA on the tiny Stable Diffusion: prior preservation (forcePrior, fresh install, strength 0),
// base weights and keys untouched, gradients only on MoA's parameters, routing and attention
// maps, the weights format, subject embeddings.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { saveSafetensors } from '../src/io/safetensors.js';
import { type CLIPVisionConfig, CLIPVisionModelWithProjection } from '../src/models/clip-vision.js';
import { Attention } from '../src/models/layers/attention.js';
import { attentionLayers, UNet2DConditionModel } from '../src/models/unet/index.js';
import {
  DEFAULT_MOA_CONFIG,
  imageEmbeddings,
  interpolateSubjects,
  loadMoAWeights,
  MoA,
  MoAAttention,
  type MoAConditioning,
  MoAConditioningError,
  MoAConfigError,
  moaConfig,
  type MoARecorder,
  MoAWeightsError,
  readMoAWeightsInfo,
  saveMoAWeights,
  subjectEmbedding,
  type SubjectBinding,
} from '../src/moa/index.js';
import { autocast, Generator, mseLoss, noGrad, rand, randn, type Tensor, tensor, tidy } from '../src/tensor/index.js';
import { settledLiveTensors } from './helpers.js';
import { clipTokenizer, tinyStableDiffusion, TINY_CONFIGS } from './tiny-sd.js';

const dir = mkdtempSync(join(tmpdir(), 'moa-moa-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const gen = (seed: number) => new Generator(seed);
const TEXT_DIM = 32; // the tiny UNet's cross-attention width (the tiny text encoder's hidden size)
const CONFIG = moaConfig({ imageEmbedDim: 32 });

/** A tiny CLIP vision tower with projection_dim 32, to match CONFIG.imageEmbedDim. */
const TINY_VISION: CLIPVisionConfig = {
  hidden_size: 32,
  intermediate_size: 64,
  num_hidden_layers: 2,
  num_attention_heads: 2,
  num_channels: 3,
  image_size: 32,
  patch_size: 8,
  projection_dim: 32,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
};

const tinyUNet = (seed = 1, overrides: Record<string, unknown> = {}) => new UNet2DConditionModel({ ...TINY_CONFIGS.unet, ...overrides }, { generator: gen(seed) }).eval();

/** A batch of 2: latents, timesteps and text embeddings. */
function inputs(seed = 3) {
  const g = gen(seed);
  return {
    sample: randn([2, 4, 8, 8], { generator: g }),
    timestep: tensor([500, 700]),
    text: randn([2, 77, TEXT_DIM], { generator: g }),
  };
}

const embedding = (seed: number) => randn([CONFIG.imageEmbedDim], { generator: gen(seed) });

/** Element 0 binds two subjects, element 1 none: batch elements may differ. */
const twoSubjects = (): SubjectBinding[][] => [
  [
    { tokenIndex: 3, embedding: embedding(10) },
    { tokenIndex: 6, embedding: embedding(11) },
  ],
  [],
];

/** Adds random values to every MoA tensor (or those `which` accepts), so nothing MoA holds is trivial. */
function perturb(moa: MoA, seed: number, which: (key: string) => boolean = () => true, scale = 0.3): void {
  const g = gen(seed);
  noGrad(() => {
    for (const [key, p] of moa.moaNamedParameters()) if (which(key)) tidy(() => p.add_(randn(p.shape, { generator: g, dtype: p.dtype }), scale));
  });
}

const maxAbsDiff = (a: Tensor, b: Tensor) => tidy(() => a.sub(b).abs().max().item());

function run(unet: UNet2DConditionModel, x: ReturnType<typeof inputs>, moa?: Omit<MoAConditioning, 'timestep'>): Tensor {
  return noGrad(() => unet.forward(x.sample, x.timestep, x.text, moa ? { moa: { timestep: x.timestep, ...moa } } : {}));
}

/** Records every call (tensors kept for inspection). */
function recorder(withGrad = false) {
  const routing: { layer: string; kind: string; size: readonly [number, number]; r1: Tensor }[] = [];
  const attention: { layer: string; size: readonly [number, number]; maps: Tensor }[] = [];
  const rec: MoARecorder = {
    withGrad,
    routing: (layer, kind, size, r1) => void routing.push({ layer, kind, size, r1 }),
    subjectAttention: (layer, size, maps) => void attention.push({ layer, size, maps }),
  };
  return { rec, routing, attention, dispose: () => [...routing.map((r) => r.r1), ...attention.map((a) => a.maps)].forEach((t) => t.dispose()) };
}

describe('MoA layers and prior preservation', () => {
  test('installs an MoA layer at every transformer-block attention site, in forward order', () => {
    const unet = tinyUNet();
    const sites = attentionLayers(unet);
    const moa = new MoA(unet, CONFIG, { generator: gen(5) });
    assert.equal(moa.layers.length, 8); // 4 transformer blocks × (attn1, attn2)
    assert.deepEqual(
      moa.layers.map((l) => [l.name, l.kind, l.index]),
      sites.map((s, i) => [s.name, s.kind, i]),
    );
    for (const site of attentionLayers(unet)) assert.ok(site.layer instanceof MoAAttention);
    assert.throws(() => new MoA(unet, CONFIG), /already installed/);
    moa.uninstall();
    for (const [i, site] of attentionLayers(unet).entries()) assert.equal(site.layer, sites[i]!.layer);
    moa.install();
    assert.ok(attentionLayers(unet).every((s) => s.layer instanceof MoAAttention));
    moa.dispose();
    assert.ok(attentionLayers(unet).every((s) => s.layer instanceof Attention));
  });

  test('(a) forcePrior gives the base UNet output, whatever the subjects and MoA weights', () => {
    const unet = tinyUNet();
    const x = inputs();
    const base = run(unet, x);
    const moa = new MoA(unet, CONFIG, { generator: gen(5) });
    perturb(moa, 7);
    const forced = run(unet, x, { subjects: twoSubjects(), forcePrior: true });
    assert.ok(maxAbsDiff(forced, base) <= 1e-6, `forcePrior differs from the base by ${maxAbsDiff(forced, base)}`);
    assert.ok(forced.equal(base), 'forcePrior runs the prior layers only: bit-identical');
    const plain = run(unet, x); // no extras.moa: the base model too
    assert.ok(plain.equal(base));
    moa.dispose();
  });

  test('(b) a fresh install without subjects equals the base UNet, whatever the router', () => {
    const unet = tinyUNet();
    const x = inputs();
    const base = run(unet, x);
    const moa = new MoA(unet, CONFIG, { generator: gen(5) });
    perturb(moa, 8, (key) => key.includes('.router.') || key.startsWith('fusion.'));
    const out = run(unet, x, { subjects: [[], []] });
    assert.ok(maxAbsDiff(out, base) <= 1e-6, `differs by ${maxAbsDiff(out, base)}`);
    moa.dispose();
  });

  test('(f) routers start at r0 = 0.9 everywhere; strength rescales r1; strength 0 is the prior', () => {
    const unet = tinyUNet();
    const x = inputs();
    const base = run(unet, x);
    const moa = new MoA(unet, CONFIG, { generator: gen(5) });
    const r = recorder();
    run(unet, x, { subjects: twoSubjects(), recorder: r.rec });
    assert.equal(r.routing.length, 8);
    for (const { r1 } of r.routing) assert.ok(maxAbsDiff(r1, tidy(() => r1.mul(0).add(0.1))) < 1e-6, 'r1 = 0.1 at init');
    r.dispose();

    const s = recorder();
    run(unet, x, { subjects: twoSubjects(), recorder: s.rec, strength: 3 });
    // r1' = s·r1 / (r0 + s·r1) = 0.3 / 1.2
    for (const { r1 } of s.routing) assert.ok(Math.abs(r1.max().item() - 0.25) < 1e-6 && Math.abs(r1.min().item() - 0.25) < 1e-6);
    s.dispose();

    perturb(moa, 9);
    const zero = recorder();
    const out = run(unet, x, { subjects: twoSubjects(), strength: 0, recorder: zero.rec });
    assert.ok(maxAbsDiff(out, base) <= 1e-6);
    assert.ok(zero.routing.every(({ r1 }) => r1.abs().max().item() === 0), 'strength 0 reports r1 = 0');
    zero.dispose();
    assert.throws(() => run(unet, x, { subjects: [[], []], strength: -1 }), MoAConditioningError);
    moa.dispose();
  });

  test('forcePersonal (the "no router" ablation) is the limit of ever larger strength, and reports r1 = 1', () => {
    const unet = tinyUNet();
    const x = inputs();
    const moa = new MoA(unet, CONFIG, { generator: gen(5) });
    perturb(moa, 11);
    const r = recorder();
    const personal = run(unet, x, { subjects: twoSubjects(), forcePersonal: true, recorder: r.rec });
    assert.ok(r.routing.every(({ r1 }) => r1.min().item() === 1), 'every layer reports r1 = 1');
    r.dispose();
    const strong = run(unet, x, { subjects: twoSubjects(), strength: 1e9 });
    const learned = run(unet, x, { subjects: twoSubjects() });
    assert.ok(maxAbsDiff(personal, strong) < 1e-4, `differs from strength 1e9 by ${maxAbsDiff(personal, strong)}`);
    assert.ok(maxAbsDiff(personal, learned) > 1e-3, 'and differs from the learned routing');
    moa.dispose();
  });

  test('(e) bound subjects with trained weights change the output, and so does another subject', () => {
    const unet = tinyUNet();
    const x = inputs();
    const base = run(unet, x);
    const moa = new MoA(unet, CONFIG, { generator: gen(5) });
    perturb(moa, 10);
    const subjects = twoSubjects();
    const out = run(unet, x, { subjects });
    assert.ok(maxAbsDiff(out, base) > 1e-3, 'MoA changes the output');
    const swapped = [[{ ...subjects[0]![0]!, embedding: embedding(99) }, subjects[0]![1]!], []];
    const other = run(unet, x, { subjects: swapped });
    const d0 = tidy(() => other.narrow(0, 0, 1).sub(out.narrow(0, 0, 1)).abs().max().item());
    const d1 = tidy(() => other.narrow(0, 1, 1).sub(out.narrow(0, 1, 1)).abs().max().item());
    assert.ok(d0 > 1e-4, 'the element with the changed subject changes');
    assert.equal(d1, 0, 'the element without subjects does not');
    moa.dispose();
  });

  test('MoA runs with the real text encoder and tokenizer, under bfloat16 autocast and in a bfloat16 model', () => {
    const sd = tinyStableDiffusion(2);
    const tokenizer = clipTokenizer();
    const prompt = 'a photo of a man and a dog';
    const ids = tensor([...tokenizer.encode(prompt, { maxLength: 77 }).ids, ...tokenizer.encode('', { maxLength: 77 }).ids], { dtype: 'int64', shape: [2, 77] });
    const text = noGrad(() => sd.textEncoder.forward(ids).lastHiddenState);
    const subjects = [
      [
        { tokenIndex: tokenizer.wordTokenIndex(prompt, 'man'), embedding: embedding(1) },
        { tokenIndex: tokenizer.wordTokenIndex(prompt, 'dog'), embedding: embedding(2) },
      ],
      [],
    ];
    const unet = sd.unet.eval();
    const moa = new MoA(unet, CONFIG, { generator: gen(5) });
    perturb(moa, 11);
    const x = { ...inputs(), text };
    const fp32 = run(unet, x, { subjects });
    const r = recorder();
    const bf = autocast({ device: 'cpu', dtype: 'bfloat16' }, () => run(unet, x, { subjects, recorder: r.rec }));
    assert.equal(bf.dtype, 'bfloat16');
    assert.ok(r.routing.every(({ r1 }) => r1.dtype === 'float32') && r.attention.every(({ maps }) => maps.dtype === 'float32'));
    assert.ok(maxAbsDiff(bf.float(), fp32) < 0.1 * (fp32.abs().max().item() + 1), 'bfloat16 autocast stays close to float32');
    r.dispose();
    moa.uninstall().to({ dtype: 'bfloat16' }).install(); // converted while out of the UNet, MoA's tensors follow
    assert.ok(moa.moaParameters().every((p) => p.dtype === 'bfloat16'));
    const model = run(unet, x, { subjects });
    assert.equal(model.dtype, 'bfloat16');
    assert.ok(Number.isFinite(model.float().abs().max().item()));
    moa.dispose();
  });
});

describe('MoA parameters and base weights', () => {
  test('(c) installing, saving and loading MoA weights leave every base tensor and key unchanged', () => {
    const unet = tinyUNet();
    const before = tidy(() => Object.fromEntries(Object.entries(unet.stateDict()).map(([k, t]) => [k, t.clone()])));
    const keys = Object.keys(before);
    const moa = new MoA(unet, CONFIG, { generator: gen(5) });
    perturb(moa, 12);
    const after = tidy(() => unet.stateDict());
    assert.deepEqual(
      Object.keys(after).filter((k) => !/\.(personal|router)\./.test(k)),
      keys,
      'the base keys are all there, in their order; MoA only adds',
    );
    assert.deepEqual(Object.keys(tidy(() => moa.baseStateDict())), keys);
    const path = join(dir, 'c.safetensors');
    saveMoAWeights(path, moa, { baseModel: 'tiny' });
    loadMoAWeights(path, moa);
    const now = tidy(() => moa.baseStateDict());
    for (const key of keys) assert.ok(now[key]!.equal(before[key]!), `${key} is bit-identical`);
    // The prior's tensors are the base model's own, not copies.
    const site = attentionLayers(unet)[0]!;
    assert.equal((site.layer as MoAAttention).prior.to_q.weight, unet.getParameter(`${site.name}.to_q.weight`));
    moa.uninstall();
    assert.deepEqual(Object.keys(tidy(() => unet.stateDict())), keys, 'after uninstall the UNet has exactly its keys');
    moa.dispose();
  });

  test('MoA keys are stable: personal experts and routers under their sites, fusion under fusion.', () => {
    const unet = tinyUNet();
    const moa = new MoA(unet, CONFIG, { generator: gen(5) });
    const keys = Object.keys(tidy(() => moa.moaStateDict()));
    const site = 'unet.down_blocks.0.attentions.0.transformer_blocks.0';
    for (const key of [
      `${site}.attn1.personal.to_q.weight`,
      `${site}.attn1.personal.to_out.0.bias`,
      `${site}.attn1.router.0.weight`,
      `${site}.attn1.router.2.bias`,
      `${site}.attn2.personal.to_k.weight`,
      'fusion.time_proj.weight',
      'fusion.layer_embedding.weight',
      'fusion.mlp1.fc1.weight',
      'fusion.mlp2.fc2.bias',
      'fusion.layer_norm.weight',
    ]) {
      assert.ok(keys.includes(key), `has ${key}`);
    }
    assert.ok(keys.every((k) => /^unet\..*\.attn[12]\.(personal|router)\./.test(k) || k.startsWith('fusion.')), 'nothing else');
    assert.equal(moa.moaParameters().length, keys.length);
    const [first, second] = [moa.layers[0]!, moa.layers[1]!];
    assert.deepEqual([...first.router.at(0).getParameter('weight')!.shape], [8, 32], 'router hidden = C/4');
    assert.deepEqual([...second.personal.to_k.weight.shape], [32, TEXT_DIM]);
    moa.dispose();
  });

  test('(d) gradients reach exactly the MoA parameters', () => {
    const unet = tinyUNet();
    const x = inputs();
    const moa = new MoA(unet, CONFIG, { generator: gen(5) }).train();
    perturb(moa, 13);
    const mine = new Set(moa.moaParameters());
    assert.ok(moa.moaParameters().every((p) => p.requiresGrad));
    assert.ok(moa.parameters().filter((p) => !mine.has(p)).every((p) => !p.requiresGrad), 'the base is frozen');
    tidy(() => {
      const out = unet.forward(x.sample, x.timestep, x.text, { moa: { subjects: twoSubjects(), timestep: x.timestep } });
      mseLoss(out, randn(out.shape, { generator: gen(14) })).backward();
    });
    for (const [key, p] of moa.moaNamedParameters()) assert.ok(p.grad !== null && p.grad.abs().sum().item() > 0, `${key} has a gradient`);
    for (const [key, p] of moa.namedParameters()) if (!mine.has(p)) assert.equal(p.grad, null, `${key} has no gradient`);
    moa.uninstall();
    assert.ok(unet.parameters().every((p) => p.requiresGrad), 'uninstall restores requiresGrad');
    moa.dispose();
  });

  test('(d) with trainable image-encoder layers, their gradients come through the subject embedding', () => {
    const unet = tinyUNet();
    const encoder = new CLIPVisionModelWithProjection(TINY_VISION, { generator: gen(15) });
    const x = inputs();
    const moa = new MoA(unet, { ...CONFIG, trainImageEncoderLayers: 1 }, { generator: gen(5), imageEncoder: encoder });
    perturb(moa, 16);
    const keys = moa.moaNamedParameters().map(([k]) => k);
    assert.ok(keys.some((k) => k.startsWith('image_encoder.vision_model.encoder.layers.1.')));
    assert.ok(!keys.some((k) => k.startsWith('image_encoder.vision_model.encoder.layers.0.')));
    tidy(() => {
      const emb = subjectEmbedding(encoder, rand([2, 3, 40, 48], { generator: gen(17) }));
      const out = unet.forward(x.sample, x.timestep, x.text, { moa: { subjects: [[{ tokenIndex: 4, embedding: emb }], []], timestep: x.timestep } });
      out.square().mean().backward();
    });
    const mine = new Set(moa.moaParameters());
    for (const [key, p] of moa.moaNamedParameters()) assert.ok(p.grad !== null, `${key} has a gradient`);
    for (const [key, p] of moa.namedParameters()) if (!mine.has(p)) assert.equal(p.grad, null, `${key} has no gradient`);
    assert.throws(() => new MoA(tinyUNet(), { ...CONFIG, trainImageEncoderLayers: 1 }), /pass \{ imageEncoder \}/);
    moa.dispose();
  });
});

describe('recorded maps', () => {
  test('(h) routing maps per layer and subject attention per cross layer, shaped as the layers', () => {
    const unet = tinyUNet();
    const x = inputs();
    const moa = new MoA(unet, CONFIG, { generator: gen(5) });
    perturb(moa, 18);
    const plain = run(unet, x, { subjects: twoSubjects() });
    const r = recorder();
    const recorded = run(unet, x, { subjects: twoSubjects(), recorder: r.rec });
    assert.ok(maxAbsDiff(recorded, plain) < 1e-5, 'recording does not change the output');
    const blocks = attentionLayers(unet).length / 2;
    assert.equal(r.routing.length, 2 * blocks);
    assert.deepEqual(
      r.routing.map((c) => [c.layer, c.kind]),
      moa.layers.map((l) => [l.name, l.kind]),
    );
    for (const { r1, size } of r.routing) {
      assert.deepEqual([...r1.shape], [2, size[0], size[1]]);
      assert.equal(r1.requiresGrad, false);
      assert.ok(r1.min().item() > 0 && r1.max().item() < 1);
    }
    assert.ok(r.routing.some(({ r1 }) => r1.max().item() - r1.min().item() > 1e-3), 'trained routers route per pixel');
    assert.equal(r.attention.length, blocks, 'one subject map per cross-attention layer');
    for (const { maps, size } of r.attention) {
      assert.deepEqual([...maps.shape], [2, 2, size[0], size[1]]); // S = the most subjects an element binds
      assert.ok(maps.min().item() >= 0 && maps.max().item() <= 1);
      assert.ok(maps.narrow(0, 0, 1).sum(1).max().item() <= 1 + 1e-5, 'two tokens take at most all the attention');
      assert.ok(maps.narrow(0, 0, 1).min().item() > 0, 'bound subjects get some attention');
      assert.equal(maps.narrow(0, 1, 1).abs().max().item(), 0, 'padding: element 1 binds none');
    }
    r.dispose();
    moa.dispose();
  });

  test('with withGrad the maps carry gradients to routers and the personal cross-attention', () => {
    const unet = tinyUNet();
    const x = inputs();
    const moa = new MoA(unet, CONFIG, { generator: gen(5) }).train();
    perturb(moa, 19);
    const r = recorder(true);
    tidy(() => {
      unet.forward(x.sample, x.timestep, x.text, { moa: { subjects: twoSubjects(), timestep: x.timestep, recorder: r.rec } });
      const loss = r.routing.map((c) => c.r1.mean()).reduce((a, b) => a.add(b)).add(r.attention.map((c) => c.maps.mean()).reduce((a, b) => a.add(b)));
      loss.backward();
    });
    const layer = moa.layers[1]!; // a cross-attention layer
    assert.ok(layer.router.at(0).getParameter('weight')!.grad !== null);
    assert.ok(layer.personal.to_k.weight.grad !== null);
    assert.ok(moa.fusion.mlp1.fc1.weight.grad !== null);
    r.dispose();
    moa.dispose();
  });

  test('conditioning is checked with messages that say what is wrong', () => {
    const unet = tinyUNet();
    const x = inputs();
    const moa = new MoA(unet, CONFIG, { generator: gen(5) });
    const e = embedding(1);
    assert.throws(() => run(unet, x, { subjects: [[]] }), /one array per batch element \(2\)/);
    assert.throws(() => run(unet, x, { subjects: [[{ tokenIndex: 77, embedding: e }], []] }), /tokenIndex must be an integer in \[0, 77\)/);
    assert.throws(() => run(unet, x, { subjects: [[{ tokenIndex: 2, embedding: e }, { tokenIndex: 2, embedding: e }], []] }), /already bound/);
    const five = [1, 2, 3, 4, 5].map((tokenIndex) => ({ tokenIndex, embedding: e }));
    assert.throws(() => run(unet, x, { subjects: [five, []] }), /at most 4/);
    assert.throws(() => run(unet, x, { subjects: [[{ tokenIndex: 2, embedding: randn([7], { generator: gen(1) }) }], []] }), /must be \[32\]/);
    assert.throws(() => moaConfig({ routerHiddenRatio: 0 }), MoAConfigError);
    assert.throws(() => moaConfig({ initialPriorWeight: 1 }), MoAConfigError);
    assert.throws(() => moaConfig({ hidden: 3 } as Record<string, unknown>), /unknown field/);
    assert.equal(DEFAULT_MOA_CONFIG.imageEmbedDim, 768);
    moa.dispose();
  });

  test('a forward pass leaves no tensors behind, with and without a recorder', () => {
    const unet = tinyUNet();
    const x = inputs();
    const moa = new MoA(unet, CONFIG, { generator: gen(5) });
    const subjects = twoSubjects();
    run(unet, x, { subjects }).dispose();
    const live = settledLiveTensors().count;
    for (let i = 0; i < 3; i++) {
      run(unet, x, { subjects }).dispose();
      const r = recorder();
      run(unet, x, { subjects, recorder: r.rec }).dispose();
      r.dispose();
    }
    assert.equal(settledLiveTensors().count, live);
    moa.dispose();
  });
});

describe('MoA weights files', () => {
  test('(g) a round trip gives identical outputs in a fresh MoA; the file holds only MoA tensors', () => {
    const x = inputs();
    const subjects = twoSubjects();
    const unetA = tinyUNet(1);
    const a = new MoA(unetA, CONFIG, { generator: gen(5) });
    perturb(a, 20);
    const expected = run(unetA, x, { subjects });
    const path = join(dir, 'g.safetensors');
    saveMoAWeights(path, a, { baseModel: 'tiny-sd', metadata: { steps: '3' } });
    const info = readMoAWeightsInfo(path);
    assert.equal(info.baseModel, 'tiny-sd');
    assert.equal(info.metadata['steps'], '3');
    assert.deepEqual(info.config, a.config);
    assert.equal(info.layers.length, 8);

    const unetB = tinyUNet(1);
    const b = new MoA(unetB, CONFIG, { generator: gen(6) });
    assert.ok(!run(unetB, x, { subjects }).equal(expected));
    loadMoAWeights(path, b);
    assert.ok(run(unetB, x, { subjects }).equal(expected), 'identical outputs');
    // Built empty (nothing drawn or copied), as a pipeline does before loading.
    const unetC = tinyUNet(1);
    const c = new MoA(unetC, CONFIG, { empty: true });
    loadMoAWeights(path, c);
    assert.ok(run(unetC, x, { subjects }).equal(expected), 'identical outputs from an empty MoA');
    c.dispose();

    // Stored in bfloat16, it loads into the float32 model (converted).
    const half = join(dir, 'g-bf16.safetensors');
    saveMoAWeights(half, a, { dtype: 'bfloat16' });
    loadMoAWeights(half, b);
    assert.ok(maxAbsDiff(run(unetB, x, { subjects }), expected) < 0.05 * (expected.abs().max().item() + 1));
    [a, b].forEach((m) => m.dispose());
  });

  test('(g) weights for another base architecture, config or format are refused with a clear error', () => {
    const path = join(dir, 'g2.safetensors');
    const a = new MoA(tinyUNet(1), CONFIG, { generator: gen(5) });
    saveMoAWeights(path, a, { baseModel: 'tiny-sd' });

    const wider = new MoA(tinyUNet(1, { block_out_channels: [16, 32] }), CONFIG, { generator: gen(5) });
    assert.throws(
      () => loadMoAWeights(path, wider),
      (e: Error) => e instanceof MoAWeightsError && /base UNet with 8 attention layers of widths 32\/64/.test(e.message) && /this UNet has 8 attention layers of widths 16\/32/.test(e.message),
    );
    const otherRouter = new MoA(tinyUNet(1), { ...CONFIG, routerHiddenRatio: 0.5 }, { generator: gen(5) });
    assert.throws(() => loadMoAWeights(path, otherRouter), /routerHiddenRatio = 0.25.*routerHiddenRatio = 0.5/);

    const plain = join(dir, 'plain.safetensors');
    tidy(() => saveSafetensors(plain, a.moaStateDict()));
    assert.throws(() => loadMoAWeights(plain, a), /not a MoA weights file/);
    [a, wider, otherRouter].forEach((m) => m.dispose());
  });
});

describe('subject embeddings', () => {
  test('references → CLIP image embeddings → mean; masks grey out the background; morphing interpolates', () => {
    const encoder = new CLIPVisionModelWithProjection(TINY_VISION, { generator: gen(21) }).eval();
    const images = rand([3, 3, 40, 48], { generator: gen(22) });
    noGrad(() => {
      const each = imageEmbeddings(encoder, images);
      assert.deepEqual([...each.shape], [3, 32]);
      const mean = subjectEmbedding(encoder, images);
      assert.deepEqual([...mean.shape], [32]);
      assert.ok(maxAbsDiff(mean, each.mean(0)) < 1e-6);
      const masks = tidy(() => rand([3, 1, 40, 48], { generator: gen(23) }).gt(0.5).float());
      const masked = subjectEmbedding(encoder, images, { masks });
      assert.ok(maxAbsDiff(masked, mean) > 1e-4);
      const [a, b] = [each.select(0, 0), each.select(0, 1)];
      assert.ok(interpolateSubjects(a, b, 0).equal(a));
      assert.ok(maxAbsDiff(interpolateSubjects(a, b, 1), b) < 1e-6);
      assert.ok(maxAbsDiff(interpolateSubjects(a, b, 0.5), a.add(b).div(2)) < 1e-6);
      assert.throws(() => interpolateSubjects(a, each, 0.5), /differ/);
    });
  });
});
