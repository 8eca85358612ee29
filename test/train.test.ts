// The MoA trainer on the tiny Stable Diffusion: the loss falls, the base stays bit-identical,
// a resumed run repeats the uninterrupted one, configs are checked, checkpoints are atomic.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { CLIPVisionModelWithProjection } from '../src/models/clip-vision.js';
import { disposeStableDiffusion } from '../src/pipelines/stable-diffusion.js';
import { readImage, readPngTextFile, writePng } from '../src/io/image.js';
import { Generator, isGradEnabled, randn, type Tensor } from '../src/tensor/index.js';
import { latestCheckpoint } from '../src/train/checkpoint.js';
import { parseTrainConfig, readTrainConfig, type TrainConfig, TrainConfigError } from '../src/train/config.js';
import { emaDecayAt, learningRate } from '../src/train/schedule.js';
import { Trainer } from '../src/train/trainer.js';
import { writeFfhqFolder } from './ffhq-fixture.js';
import { tinyStableDiffusion, TINY_VISION_CONFIG } from './tiny-sd.js';

const tmp = mkdtempSync(join(tmpdir(), 'moa-train-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const dataRoot = join(tmp, 'ffhq');

before(async () => {
  await writeFfhqFolder(dataRoot, [
    { id: '10001', caption: 'a man and a woman sitting on a bench', words: ['man', 'woman'] },
    { id: '10002', caption: 'the girl and her grandfather at the beach', words: ['girl', 'grandfather'], colours: [[250, 200, 0], [0, 90, 200], [40, 40, 40]] },
    { id: '10003', caption: 'a boy standing next to a lady in a park', words: ['boy', 'lady'], colours: [[0, 0, 0], [255, 255, 255], [0, 160, 0]] },
    { id: '10004', caption: 'a woman hugging a man', words: ['woman', 'man'], colours: [[200, 0, 200], [0, 200, 200], [200, 200, 200]] },
  ]);
});

/** A tiny run's config: 32 px images, 28 px crops for the tiny vision tower. */
function config(outputDir: string, overrides: Record<string, unknown> = {}): TrainConfig {
  return parseTrainConfig({
    dataRoot,
    outputDir,
    resolution: 32,
    cropSize: 28,
    batchSize: 2,
    steps: 40,
    lr: 1e-2,
    seed: 7,
    checkpointEvery: 1000,
    moa: { imageEmbedDim: TINY_VISION_CONFIG.projection_dim },
    ...overrides,
  });
}

/** Fresh tiny networks (the same seeded weights every time) and a trainer over them. */
async function trainer(c: TrainConfig, resume: string | null = null) {
  const sd = tinyStableDiffusion(0);
  const imageEncoder = new CLIPVisionModelWithProjection(TINY_VISION_CONFIG, { generator: new Generator(5) });
  const t = await Trainer.create({ sd, imageEncoder, config: c, resume });
  const dispose = () => {
    t.dispose();
    disposeStableDiffusion(sd);
    imageEncoder.dispose();
  };
  return { sd, imageEncoder, t, dispose };
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

function snapshot(state: Record<string, Tensor>): Map<string, Tensor> {
  return new Map(Object.entries(state).map(([k, v]) => [k, v.clone()]));
}

describe('trainer', () => {
  test('the loss falls and the base model is untouched', async () => {
    const out = join(tmp, 'fall');
    const sd = tinyStableDiffusion(0);
    const imageEncoder = new CLIPVisionModelWithProjection(TINY_VISION_CONFIG, { generator: new Generator(5) });
    const before = [snapshot(sd.unet.stateDict()), snapshot(sd.vae.stateDict()), snapshot(sd.textEncoder.stateDict()), snapshot(imageEncoder.stateDict())];
    const t = await Trainer.create({ sd, imageEncoder, config: config(out, { steps: 60 }) });
    const records = await t.run();
    assert.equal(records.length, 60);
    const losses = records.map((r) => r.loss);
    const first = mean(losses.slice(0, 10));
    const last = mean(losses.slice(-10));
    console.log(`loss: first 10 mean ${first.toFixed(4)}, last 10 mean ${last.toFixed(4)}; curve ${losses.map((l) => l.toFixed(3)).join(' ')}`);
    assert.ok(losses.every(Number.isFinite));
    assert.ok(last < 0.8 * first, `loss should fall: ${first} → ${last}`);
    for (const r of records) for (const k of ['diffusion', 'router', 'object', 'lr', 'gradNorm', 'itPerSec'] as const) assert.ok(Number.isFinite(r[k]), k);
    // Every base tensor bit-identical (MoA's own keys aside).
    const after = [t.moa.baseStateDict(), sd.vae.stateDict(), sd.textEncoder.stateDict(), imageEncoder.stateDict()];
    before.forEach((snap, i) => {
      assert.deepEqual([...snap.keys()].sort(), Object.keys(after[i]!).sort());
      for (const [k, v] of snap) assert.ok(v.equal(after[i]![k]!), `base tensor ${k} changed`);
    });
    // The JSONL log, the final checkpoint and the MoA weights file.
    const log = readFileSync(join(out, 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { step: number; loss: number });
    assert.deepEqual(log.map((r) => r.step), records.map((r) => r.step));
    assert.equal(log[5]!.loss, records[5]!.loss);
    assert.ok(existsSync(join(out, 'moa.safetensors')));
    assert.deepEqual(readdirSync(join(out, 'checkpoints')), ['step-00000060.safetensors']);
    t.dispose();
    disposeStableDiffusion(sd);
    imageEncoder.dispose();
  });

  test('kill and resume repeats the uninterrupted run', async () => {
    const overrides = { steps: 8, checkpointEvery: 3, emaDecay: 0.9, gradientAccumulation: 2, warmupSteps: 2, schedule: 'cosine' };
    const fullDir = join(tmp, 'full');
    const full = await trainer(config(fullDir, overrides));
    const fullRecords = await full.t.run();
    const fullWeights = snapshot(full.t.moa.moaStateDict());
    const fullEma = snapshot({ ...full.t.ema! });
    full.dispose();
    // Checkpoints every 3 steps and at the end, only finished files (no temporaries).
    assert.deepEqual(readdirSync(join(fullDir, 'checkpoints')), ['step-00000003.safetensors', 'step-00000006.safetensors', 'step-00000008.safetensors']);
    assert.equal(latestCheckpoint(fullDir), join(fullDir, 'checkpoints', 'step-00000008.safetensors'));

    // A run "killed" after step 4 (its last checkpoint: step 3), resumed in a new process-like trainer.
    const killedDir = join(tmp, 'killed');
    const killed = await trainer(config(killedDir, overrides));
    await killed.t.run({ until: 4 });
    killed.dispose();
    const resumed = await trainer(config(killedDir, overrides), latestCheckpoint(killedDir));
    assert.equal(resumed.t.step, 3);
    const resumedRecords = await resumed.t.run();
    assert.deepEqual(resumedRecords.map((r) => r.step), [4, 5, 6, 7, 8]);
    for (const r of resumedRecords) {
      const u = fullRecords[r.step - 1]!;
      for (const k of ['loss', 'diffusion', 'router', 'object', 'lr', 'gradNorm'] as const) assert.ok(Math.abs(r[k] - u[k]) <= 1e-6, `step ${r.step} ${k}: ${r[k]} vs ${u[k]}`);
    }
    for (const [k, v] of Object.entries(resumed.t.moa.moaStateDict())) assert.ok(v.allclose(fullWeights.get(k)!, { rtol: 0, atol: 1e-6 }), `weight ${k}`);
    for (const [k, v] of Object.entries(resumed.t.ema!)) assert.ok(v.allclose(fullEma.get(k)!, { rtol: 0, atol: 1e-6 }), `ema ${k}`);
    // The log holds each step once: the steps redone after the checkpoint replace the killed run's.
    const logged = readFileSync(join(killedDir, 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step);
    assert.deepEqual(logged, [1, 2, 3, 4, 5, 6, 7, 8]);
    resumed.dispose();
  });

  test('the router loss pushes background pixels to the prior (measured)', async () => {
    // The router term is mean(((1 - M) · mean-over-layers r1)²): background routing to the personal
    // expert. Train twice from the same start, with and without the router loss (weighted 50: at
    // this scale the term is ~5e-3 beside a diffusion loss of ~0.7), and compare it.
    const background = async (routerWeight: number) => {
      const run = await trainer(config(join(tmp, `router-${routerWeight}`), { steps: 30, loss: { router: routerWeight } }));
      const records = await run.t.run();
      run.dispose();
      return { first: mean(records.slice(0, 5).map((r) => r.router)), last: mean(records.slice(-5).map((r) => r.router)) };
    };
    const withLoss = await background(50);
    const without = await background(0);
    console.log(`router term: with the router loss ${withLoss.first.toExponential(3)} → ${withLoss.last.toExponential(3)}; without ${without.first.toExponential(3)} → ${without.last.toExponential(3)}`);
    assert.ok(withLoss.last < 0.1 * withLoss.first, 'background r1 falls under the router loss');
    assert.ok(withLoss.last < without.last, 'and ends lower than without it');
  });

  test('the background term pulls the background prediction to the prior (measured)', async () => {
    // Same start twice: λ_bg 50 against a negligible λ_bg (which still logs the term).
    const term = async (weight: number) => {
      const run = await trainer(config(join(tmp, `background-${weight}`), { steps: 30, loss: { background: weight } }));
      const records = await run.t.run();
      run.dispose();
      return mean(records.slice(-5).map((r) => r.background));
    };
    const pulled = await term(50);
    const free = await term(1e-9);
    console.log(`background term after 30 steps: λ_bg 50 ${pulled.toExponential(3)}, λ_bg 1e-9 ${free.toExponential(3)}`);
    assert.ok(free > 0 && pulled < 0.5 * free, `${pulled} against ${free}`);
  });

  test('bf16 autocast trains', async () => {
    const run = await trainer(config(join(tmp, 'bf16'), { steps: 2, precision: 'bf16' }));
    const records = await run.t.run();
    assert.equal(records.length, 2);
    assert.ok(records.every((r) => Number.isFinite(r.loss) && Number.isFinite(r.gradNorm)), JSON.stringify(records));
    run.dispose();
  });

  test('config errors name the field', () => {
    const base = { dataRoot: '/d', outputDir: '/o', steps: 10 };
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ outputDir: '/o', steps: 10 }, /'dataRoot' is required/],
      [{ ...base, steps: 0 }, /'steps' must be > 0/],
      [{ ...base, lr: 'fast' }, /'lr' must be a number/],
      [{ ...base, schedule: 'linear' }, /'schedule' must be one of 'constant', 'cosine'/],
      [{ ...base, precision: 'fp16' }, /'precision' must be one of 'fp32', 'bf16'/],
      [{ ...base, batchSize: 1.5 }, /'batchSize' must be an integer/],
      [{ ...base, emaDecay: 2 }, /'emaDecay' must be ≤ 1/],
      [{ ...base, loss: { router: -1 } }, /'loss.router' must be ≥ 0/],
      [{ ...base, loss: { diffusion: 1 } }, /'loss.diffusion' is not a known field/],
      [{ ...base, learningRate: 1 }, /'learningRate' is not a known field/],
      [{ ...base, resolution: 30 }, /'resolution' must be a multiple of 8/],
    ];
    for (const [raw, message] of bad) assert.throws(() => parseTrainConfig(raw), (e: unknown) => e instanceof TrainConfigError && message.test(e.message), JSON.stringify(raw));
    const c = parseTrainConfig(base);
    assert.equal(c.lr, 1e-5);
    assert.equal(c.schedule, 'constant');
    assert.equal(c.emaDecay, null);
    // YAML and JSON files.
    const yamlPath = join(tmp, 'train.yaml');
    writeFileSync(yamlPath, 'dataRoot: /d\noutputDir: /o\nsteps: 5\nschedule: cosine\nloss:\n  router: 0.5\n  routerSubject: 2\n  subjectWeight: 4\n  maskedAverage: subjects\n  background: 3\n');
    const y = readTrainConfig(yamlPath);
    assert.deepEqual([y.steps, y.schedule, y.loss.router, y.loss.routerSubject, y.loss.object, y.loss.subjectWeight, y.loss.maskedAverage, y.loss.background], [5, 'cosine', 0.5, 2, 1e-3, 4, 'subjects', 3]);
    assert.equal(parseTrainConfig(base).loss.maskedAverage, 'latent', "FastComposer's loss unless asked");
    assert.throws(() => parseTrainConfig({ ...base, loss: { maskedAverage: 'pixels' } }), /'loss.maskedAverage' must be one of/);
    assert.throws(() => parseTrainConfig({ ...base, loss: { background: -1 } }), /'loss.background' must be/);
    assert.throws(() => parseTrainConfig({ ...base, loss: { subjectWeight: 0.5 } }), /'loss.subjectWeight' must be/);
    assert.equal(parseTrainConfig(base).loss.routerSubject, 0, 'the spec\'s loss unless asked');
    const jsonPath = join(tmp, 'train.json');
    writeFileSync(jsonPath, JSON.stringify({ ...base, precision: 'bf16' }));
    assert.equal(readTrainConfig(jsonPath).precision, 'bf16');
  });

  test('sample images with routing maps leave training exactly as it was', async () => {
    // A data set with a test list: the default samples come from it (held out from training).
    const heldRoot = join(tmp, 'ffhq-held');
    await writeFfhqFolder(heldRoot, [
      { id: '20001', caption: 'a man and a woman sitting on a bench', words: ['man', 'woman'] },
      { id: '20002', caption: 'a boy standing next to a lady in a park', words: ['boy', 'lady'], colours: [[0, 0, 0], [255, 255, 255], [0, 160, 0]] },
    ]);
    writeFileSync(join(heldRoot, 'image_ids_test.txt'), '20002\n');
    const overrides = { dataRoot: heldRoot, steps: 5, emaDecay: 0.9 };
    const plain = await trainer(config(join(tmp, 'no-samples'), overrides));
    const plainRecords = await plain.t.run();
    const plainWeights = snapshot(plain.t.moa.moaStateDict());
    plain.dispose();

    const out = join(tmp, 'samples');
    const run = await trainer(config(out, { ...overrides, sampleEvery: 2, sampleSteps: 3 }));
    const seen: number[] = [];
    const records = await run.t.run({ onSample: (s) => seen.push(s.step) });
    // Losses, gradient norms and weights: bit-identical to the run without samples.
    assert.deepEqual(records, plainRecords.map((r, i) => ({ ...r, itPerSec: records[i]!.itPerSec })));
    for (const [k, v] of Object.entries(run.t.moa.moaStateDict())) assert.ok(v.equal(plainWeights.get(k)!), `weight ${k}`);
    // Modes and grad mode restored.
    for (const m of [run.t.moa, run.sd.unet, run.sd.vae, run.sd.textEncoder, run.imageEncoder]) assert.ok(m.modules().every((x) => x.training), 'train mode restored');
    assert.equal(isGradEnabled(), true);
    // Steps 2 and 4, and the end (5): a PNG per step, maps beside it, nothing temporary.
    assert.deepEqual(seen, [2, 4, 5]);
    const files = readdirSync(join(out, 'samples')).sort();
    assert.deepEqual(files, ['step-00000002-maps', 'step-00000002.png', 'step-00000004-maps', 'step-00000004.png', 'step-00000005-maps', 'step-00000005.png']);
    const maps = readdirSync(join(out, 'samples', 'step-00000004-maps'));
    assert.ok(maps.includes('routing-mean.png') && maps.includes('subject-boy.png') && maps.includes('subject-lady.png'), maps.join(', '));
    assert.ok(maps.filter((f) => f.startsWith('routing-') && f !== 'routing-mean.png').length >= 2, 'a map per MoA layer');
    const image = await readImage(join(out, 'samples', 'step-00000004.png'));
    assert.deepEqual(image.shape, [1, 3, 32, 32]);
    image.dispose();
    // The log: step records and a sample record after steps 2, 4 and 5.
    const log = readFileSync(join(out, 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    assert.deepEqual(log.map((r) => (r.kind === 'sample' ? `s${r.step}` : r.step)), [1, 2, 's2', 3, 4, 's4', 5, 's5']);
    assert.ok(log.filter((r) => r.kind === undefined).every((r) => typeof r.subjectError === 'number' && r.subjectError > 0), 'each step logs its subjects\' error');
    const sample = log.find((r) => r.kind === 'sample')!;
    assert.deepEqual(sample.source, { ids: ['20002'], heldOut: true });
    assert.deepEqual(sample.prompts, ['a boy standing next to a lady in a park']);
    assert.equal(sample.image, join('samples', 'step-00000002.png'));
    run.dispose();
  });

  test('samples from the config: prompts, subject images and seeds; bad ones fail before training', async () => {
    const ref = join(tmp, 'ref.png');
    const pixels = randn([1, 3, 20, 16], { generator: new Generator(3) }).sigmoid();
    await writePng(ref, pixels);
    pixels.dispose();
    const samples = [
      { prompt: 'a man and a woman hiking', subjects: [{ word: 'man', image: ref }, { word: 'woman', image: ref }], seed: 4 },
      { prompt: 'a dog on a beach' },
    ];
    const out = join(tmp, 'config-samples');
    const run = await trainer(config(out, { steps: 2, sampleEvery: 10, sampleSteps: 2, samples }));
    await run.t.run();
    run.dispose();
    // Only the end (step 2 < sampleEvery): two samples side by side, their maps in 1/ and 2/.
    const image = await readImage(join(out, 'samples', 'step-00000002.png'));
    assert.deepEqual(image.shape, [1, 3, 32, 64]);
    image.dispose();
    assert.deepEqual(readdirSync(join(out, 'samples', 'step-00000002-maps')).sort(), ['1', '2']);
    assert.ok(readdirSync(join(out, 'samples', 'step-00000002-maps', '1')).includes('subject-woman.png'));
    const text = JSON.parse((await readPngTextFile(join(out, 'samples', 'step-00000002.png'))).parameters!) as { step: number; samples: { seed: number; steps: number }[] };
    assert.deepEqual([text.step, text.samples.map((p) => p.seed), text.samples[0]!.steps], [2, [4, 7], 2]);

    await assert.rejects(trainer(config(join(tmp, 'bad-word'), { sampleEvery: 1, samples: [{ prompt: 'a man', subjects: [{ word: 'dog', image: ref }] }] })), /samples\[0\]: subject word: the word "dog" is not in the prompt "a man"/);
    await assert.rejects(trainer(config(join(tmp, 'bad-image'), { sampleEvery: 1, samples: [{ prompt: 'a man', subjects: [{ word: 'man', image: join(tmp, 'nope.png') }] }] })), /cannot read image '.*nope\.png': no such file/);
    assert.throws(() => config(out, { samples }), /'samples' are given but sampleEvery is not/);
    assert.throws(() => config(out, { sampleEvery: 0 }), /'sampleEvery' must be > 0/);
    assert.throws(() => config(out, { sampleEvery: 1, samples: [{ prompt: 'a man', subjects: [{ word: 'man' }] }] }), /'samples\[0\]\.subjects\[0\]\.image' is required/);
    assert.throws(() => config(out, { sampleEvery: 1, samples: [{ prompt: 'a man', steps: 3 }] }), /'samples\[0\]\.steps' is not a known field/);
  });

  test('learning-rate schedules', () => {
    const s = { lr: 1, warmupSteps: 4, steps: 14 };
    assert.deepEqual([0, 1, 3, 4, 10].map((i) => learningRate(i, { ...s, schedule: 'constant' })), [0.25, 0.5, 1, 1, 1]);
    assert.equal(learningRate(4, { ...s, schedule: 'cosine' }), 1);
    assert.ok(Math.abs(learningRate(9, { ...s, schedule: 'cosine' }) - 0.5) < 1e-12);
    assert.ok(learningRate(13, { ...s, schedule: 'cosine' }) < 0.03);
  });

  test('the EMA decay warms up, so the average forgets the initial weights', () => {
    assert.equal(emaDecayAt(0.999, 0), 0.1);
    assert.equal(emaDecayAt(0.999, 90), 0.91);
    assert.equal(emaDecayAt(0.999, 100_000), 0.999);
    // The initial weights' share of the average after 3,000 steps: decay^3000 without warm-up.
    let share = 1;
    for (let step = 0; step < 3000; step++) share *= emaDecayAt(0.999, step);
    assert.ok(share < 1e-3 && 0.999 ** 3000 > 0.04, `initial share ${share}`);
  });
});
