// Pretraining from scratch on a tiny FFHQ-wild folder with identities: the trained tokenizer's
// properties, each stage's loss falling, the output folder loading and generating, exact resume,
// Ctrl-C checkpoints, and config errors that name the field.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import sharp from 'sharp';
import { openSafetensors } from '../src/io/safetensors.js';
import { trainClipTokenizer } from '../src/models/clip-tokenizer-train.js';
import { ClipTokenizer } from '../src/models/clip-tokenizer.js';
import { normalizeText, preTokenize } from '../src/models/clip-tokenizer-text.js';
import { openImageEncoder } from '../src/pipelines/load-moa.js';
import { openStableDiffusion } from '../src/pipelines/load.js';
import { disposeStableDiffusion } from '../src/pipelines/stable-diffusion.js';
import { generate } from '../src/pipelines/text-to-image.js';
import { full, Generator, noGrad, randint, randn, stack, tidy, zeros } from '../src/tensor/index.js';
import { disposeBatch, disposeSample, loadSample, readImageIds } from '../src/train/data/index.js';
import { mulberry32 } from '../src/train/data/rng.js';
import { parsePretrainConfig, type PretrainConfig, PretrainConfigError, readPretrainConfig } from '../src/train/pretrain/config.js';
import { pretrain, runStage, stageDir } from '../src/train/pretrain/pretrain.js';
import type { StageRecord } from '../src/train/pretrain/runner.js';
import { SubjectPairLoader } from '../src/train/pretrain/subject-pairs.js';
import { BaseTask } from '../src/train/pretrain/base-stage.js';
import { imageLoader, VaeTask } from '../src/train/pretrain/vae-stage.js';
import { type FixtureSample, writeFfhqFolder } from './ffhq-fixture.js';
import { clipTokenizer, tinyStableDiffusion } from './tiny-sd.js';

const tmp = mkdtempSync(join(tmpdir(), 'moa-pretrain-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const dataRoot = join(tmp, 'world');

const PEOPLE = ['man', 'woman', 'boy', 'girl', 'dog', 'cat'];
const PLACES = ['in a snowy forest at dusk', 'on a beach at noon', 'in a park at night', 'in a kitchen'];
const colour = (i: number) => [(i * 97) % 256, (i * 57 + 80) % 256, (i * 131 + 40) % 256];
const identity = (i: number) => `p${String(i % 6).padStart(5, '0')}`;

/** Twelve scenes of two subjects each, six identities (subject k of image i is identity (i + 3k) mod 6), half with reference images. */
async function writeWorld(root: string): Promise<void> {
  const samples: FixtureSample[] = Array.from({ length: 12 }, (_, i) => {
    const words: [string, string] = [PEOPLE[i % 6]!, PEOPLE[(i + 3) % 6]!];
    return { id: String(10000 + i), caption: `a ${words[0]} and a ${words[1]} ${PLACES[i % 4]}`, words, colours: [colour(i % 6), colour((i + 3) % 6), colour(40 + i)] };
  });
  await writeFfhqFolder(root, samples, 32);
  samples.forEach((s, i) => {
    const path = join(root, s.id.slice(0, 5), `${s.id}.json`);
    const json = JSON.parse(readFileSync(path, 'utf8')) as { segments: Record<string, unknown>[] };
    json.segments.forEach((seg, k) => Object.assign(seg, { identity: identity(i + 3 * k), class: s.words[k] }));
    writeFileSync(path, JSON.stringify(json));
  });
  // References: the subject as a block on a flat light backdrop (as the synthetic world draws them).
  mkdirSync(join(root, 'references'), { recursive: true });
  for (const k of [0, 2, 4]) {
    const rgb = Buffer.alloc(32 * 32 * 3);
    for (let y = 0; y < 32; y++) for (let x = 0; x < 32; x++) rgb.set(x >= 10 && x < 22 && y >= 4 && y < 28 ? colour(k) : [224, 224, 224], (y * 32 + x) * 3);
    await sharp(rgb, { raw: { width: 32, height: 32, channels: 3 } }).png().toFile(join(root, 'references', `${identity(k)}.png`));
  }
}

before(() => writeWorld(dataRoot));

/** A tiny pretraining config: 32 px images, a 2× VAE, 16 px crops for the image encoder. */
function rawConfig(name: string, stages: Record<string, Record<string, unknown>> = {}, top: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    dataRoot,
    outputDir: join(tmp, name, 'model'),
    workDir: join(tmp, name, 'work'),
    resolution: 32,
    seed: 3,
    saveDtype: 'fp16',
    models: {
      vae: { block_out_channels: [16, 32], down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D'], up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D'], latent_channels: 4, norm_num_groups: 8 },
      textEncoder: { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 2 },
      unet: {
        block_out_channels: [32, 64],
        down_block_types: ['CrossAttnDownBlock2D', 'DownBlock2D'],
        up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D'],
        layers_per_block: 1,
        attention_head_dim: 2,
        norm_num_groups: 8,
      },
      imageEncoder: { hidden_size: 32, intermediate_size: 64, num_hidden_layers: 2, num_attention_heads: 4, image_size: 16, patch_size: 4, projection_dim: 16 },
      scheduler: { beta_schedule: 'linear', clip_sample: false, set_alpha_to_one: false, steps_offset: 1 },
    },
    stages: {
      vae: { steps: 40, batchSize: 4, lr: 2e-3, warmupSteps: 2, ...stages.vae },
      imageEncoder: { steps: 40, batchSize: 8, lr: 2e-3, warmupSteps: 2, ...stages.imageEncoder },
      base: { steps: 40, batchSize: 4, lr: 2e-3, warmupSteps: 2, ...stages.base },
    },
    ...top,
  };
}

const config = (...args: Parameters<typeof rawConfig>): PretrainConfig => parsePretrainConfig(rawConfig(...args));
const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

describe('tokenizer training', () => {
  const captions = ['a woman and a dog in a snowy forest at dusk', 'a man and a cat on a beach at noon', 'two girls, a boy & a grey cat; in the park!', 'A Woman hugging a DOG'];

  test('every caption word is one token; start and end are the last two ids', () => {
    const { tokenizer, frequentWords, splitWords } = trainClipTokenizer(captions);
    assert.equal(splitWords, 0);
    const words = new Set(captions.flatMap((c) => preTokenize(normalizeText(c)).map((p) => p.text)));
    assert.equal(frequentWords, words.size);
    for (const word of words) {
      const { ids } = tokenizer.encode(word, { pad: false });
      assert.equal(ids.length, 3, `${JSON.stringify(word)} → ${ids.length - 2} tokens`);
    }
    assert.deepEqual([tokenizer.startId, tokenizer.endId], [tokenizer.vocabSize - 2, tokenizer.vocabSize - 1]);
    // The subject words of a caption are found as usual.
    assert.equal(tokenizer.wordTokenIndex(captions[0]!, 'dog'), 5);
  });

  test('any text still encodes, and decodes as CLIP decodes it', () => {
    const { tokenizer } = trainClipTokenizer(captions);
    const clip = clipTokenizer();
    for (const text of ['Hello,   WÖRLD!! 😀 naïve — ok? 123', 'ünïcödé «quotes» 日本語 tab\there', 'a snowy zebra-crossing at 3am', '']) {
      const { ids } = tokenizer.encode(text, { pad: false });
      assert.ok(ids.every((id) => id >= 0 && id < tokenizer.vocabSize));
      assert.equal(tokenizer.decode(ids), clip.decode(clip.encode(text, { pad: false }).ids), JSON.stringify(text));
    }
  });

  test('rare words stay split under minWordCount; maxMerges caps the merges; a saved folder reads back', () => {
    const rare = trainClipTokenizer([...captions, 'xylophone'], { minWordCount: 2 });
    assert.ok(rare.tokenizer.encode('xylophone', { pad: false }).ids.length > 3);
    assert.equal(rare.tokenizer.encode('woman', { pad: false }).ids.length, 3);
    const capped = trainClipTokenizer(captions, { maxMerges: 5 });
    assert.equal(capped.tokenizer.merges.length, 5);
    assert.ok(capped.splitWords > 0);
    const dir = join(tmp, 'tokenizer');
    rare.tokenizer.save(dir);
    const back = ClipTokenizer.fromFolder(dir);
    assert.deepEqual(back.encode(captions[2]!).ids, rare.tokenizer.encode(captions[2]!).ids);
    assert.throws(() => trainClipTokenizer(captions, { minWordCount: 0 }), /minWordCount must be an integer ≥ 1/);
  });
});

describe('pretraining', () => {
  const records: Record<string, StageRecord[]> = {};
  const made = config('full');

  before(async () => {
    await pretrain({ config: made, stages: ['vae', 'image-encoder', 'base'], onStep: (r, _total, stage) => (records[stage] ??= []).push(r) });
  });

  test('each stage’s loss falls', () => {
    for (const [stage, term] of [['vae', 'l1'], ['image-encoder', 'loss'], ['base', 'loss']] as const) {
      const values = records[stage]!.map((r) => r[term]!);
      assert.equal(values.length, 40);
      const [first, last] = [mean(values.slice(0, 8)), mean(values.slice(-8))];
      console.log(`${stage} ${term}: first 8 mean ${first.toFixed(4)}, last 8 mean ${last.toFixed(4)}`);
      assert.ok(values.every(Number.isFinite));
      assert.ok(last < 0.8 * first, `${stage}: ${first} → ${last}`);
    }
    const accuracy = records['image-encoder']!.map((r) => r.accuracy!);
    assert.ok(mean(accuracy.slice(-8)) > mean(accuracy.slice(0, 8)), 'the encoder tells subjects apart better');
  });

  test('the output folder loads, generates, and holds what each stage made', async () => {
    const dir = made.outputDir;
    const sd = openStableDiffusion(dir);
    const encoder = openImageEncoder(join(dir, 'image_encoder'));
    try {
      const status = JSON.parse(readFileSync(join(dir, 'pretrain.json'), 'utf8')) as { stages: Record<string, { steps: number; scalingFactor?: number }> };
      assert.deepEqual(Object.keys(status.stages).sort(), ['base', 'image-encoder', 'vae']);
      // The measured scaling factor is the VAE's, and the text encoder fits the trained tokenizer.
      assert.equal(sd.vae.scalingFactor, status.stages.vae!.scalingFactor);
      assert.ok(sd.vae.scalingFactor > 0 && sd.vae.scalingFactor !== 0.18215);
      assert.equal(sd.textEncoder.config.vocab_size, sd.tokenizer.vocabSize);
      assert.equal(sd.textEncoder.config.eos_token_id, sd.tokenizer.endId);
      // Stored as fp16, loaded as float32.
      assert.equal(openSafetensors(join(dir, 'unet', 'diffusion_pytorch_model.safetensors')).info('conv_in.weight').dtype, 'float16');
      assert.equal(sd.unet.parameters()[0]!.dtype, 'float32');
      const index = JSON.parse(readFileSync(join(dir, 'model_index.json'), 'utf8')) as Record<string, unknown>;
      assert.deepEqual(index.image_encoder, ['transformers', 'CLIPVisionModelWithProjection']);
      // Checkpoints and logs stay in workDir, not in the model.
      assert.ok(!existsSync(join(dir, 'checkpoints')));
      assert.equal(readdirSync(join(stageDir(made, 'base'), 'checkpoints')).length, 1);
      const log = readFileSync(join(stageDir(made, 'vae'), 'train-log.jsonl'), 'utf8').trim().split('\n');
      assert.equal(log.length, 40);

      const { images } = await generate(sd, { prompt: 'a man and a dog on a beach at noon', steps: 3, guidance: 3, seed: 1, width: 32, height: 32 });
      assert.deepEqual(images[0]!.shape, [3, 32, 32]);
      assert.ok(tidy(() => images[0]!.isfinite().all().item()));
      images.forEach((t) => t.dispose());
      const embeds = tidy(() => encoder.forward(full([1, 3, 16, 16], 0.5)).imageEmbeds);
      assert.deepEqual(embeds.shape, [1, 16]);
      embeds.dispose();
    } finally {
      disposeStableDiffusion(sd);
      encoder.dispose();
    }
  });

  test('a resumed stage repeats the uninterrupted one', async () => {
    // Base needs the trained VAE: both runs start from a copy of the finished folder.
    const stages = { vae: { steps: 4, checkpointEvery: 2 }, imageEncoder: { steps: 4, checkpointEvery: 2 }, base: { steps: 4, checkpointEvery: 2, emaDecay: 0.8, gradientAccumulation: 2 } };
    for (const stage of ['vae', 'image-encoder', 'base'] as const) {
      const a = config(`resume-a-${stage}`, stages);
      const b = { ...config(`resume-b-${stage}`, stages), guidance: 2 };
      for (const c of [a, b]) cpSync(made.outputDir, c.outputDir, { recursive: true });
      // A default guidance set by hand in the folder survives the stage rewriting it.
      const indexPath = join(a.outputDir, 'model_index.json');
      writeFileSync(indexPath, JSON.stringify({ ...JSON.parse(readFileSync(indexPath, 'utf8')), _moa_guidance: 3 }));
      const whole = await runStage({ config: a, stage });
      assert.equal(JSON.parse(readFileSync(indexPath, 'utf8'))._moa_guidance, 3, `${stage} keeps _moa_guidance`);
      // "Killed" after step 3: its newest checkpoint is step 2.
      const killed = await runStage({ config: b, stage, until: 3 });
      assert.equal(killed.finished, false);
      const resumed = await runStage({ config: b, stage, resume: true });
      assert.equal(JSON.parse(readFileSync(join(b.outputDir, 'model_index.json'), 'utf8'))._moa_guidance, 2, "the config's guidance is written");
      assert.deepEqual(resumed.records.map((r) => r.step), [3, 4]);
      for (const r of resumed.records) {
        const u = whole.records[r.step - 1]!;
        for (const k of Object.keys(u).filter((k) => k !== 'itPerSec')) assert.ok(Math.abs(r[k]! - u[k]!) <= 1e-6, `${stage} step ${r.step} ${k}: ${r[k]} vs ${u[k]}`);
      }
      // The same weights in both folders (the EMA's, for base).
      const weights = { vae: 'vae/diffusion_pytorch_model.safetensors', 'image-encoder': 'image_encoder/model.safetensors', base: 'unet/diffusion_pytorch_model.safetensors' }[stage];
      const [x, y] = [a, b].map((c) => openSafetensors(join(c.outputDir, weights)));
      for (const key of x!.keys()) tidy(() => assert.ok(x!.get(key).equal(y!.get(key)), `${stage}: ${key}`));
      // The log holds each step once.
      const logged = readFileSync(join(stageDir(b, stage), 'train-log.jsonl'), 'utf8').trim().split('\n').map((l) => (JSON.parse(l) as { step: number }).step);
      assert.deepEqual(logged, [1, 2, 3, 4]);
    }
  });

  test('stopping saves a checkpoint at the step reached; later stages need earlier ones', async () => {
    const c = config('stop', { vae: { steps: 10 } });
    const abort = new AbortController();
    const notes: string[] = [];
    await assert.rejects(
      runStage({ config: c, stage: 'vae', signal: abort.signal, onStep: (r) => r.step === 3 && abort.abort(), onNote: (n) => notes.push(n) }),
      (e: unknown) => e instanceof Error && e.name === 'AbortError',
    );
    assert.deepEqual(readdirSync(join(stageDir(c, 'vae'), 'checkpoints')), ['step-00000003.safetensors']);
    assert.ok(notes.some((n) => /vae: stopped at step 3; checkpoint/.test(n)), notes.join('\n'));
    assert.ok(!existsSync(join(c.outputDir, 'model_index.json')), 'an unfinished stage writes no model');
    await assert.rejects(runStage({ config: c, stage: 'base' }), /no trained VAE yet: run --stage vae first/);
    // Resuming everything on a finished folder skips every stage.
    const skipped: string[] = [];
    assert.deepEqual(await pretrain({ config: made, stages: ['vae', 'image-encoder', 'base'], resume: true, onNote: (n) => skipped.push(n) }), []);
    assert.equal(skipped.filter((n) => /already done .*; skipped/.test(n)).length, 3);
    // A finished stage trained again (here with a new config) resumes its unfinished run instead of being skipped.
    const again = config('again', { imageEncoder: { steps: 4, checkpointEvery: 2 } });
    cpSync(made.outputDir, again.outputDir, { recursive: true });
    await runStage({ config: again, stage: 'image-encoder', until: 2 });
    const [rerun] = await pretrain({ config: again, stages: ['image-encoder'], resume: true });
    assert.deepEqual(rerun?.records.map((r) => r.step), [3, 4]);
  });

  test('the command: bad flags exit 2, bad configs exit 1 with the field named', () => {
    const cli = join(process.cwd(), 'dist', 'src', 'cli', 'main.js');
    const path = join(tmp, 'bad.json');
    writeFileSync(path, JSON.stringify({ ...rawConfig('cli'), stages: { vae: { steps: 1 }, imageEncoder: { steps: 1 }, base: { steps: 1, lr: -1 } } }));
    const bad = spawnSync(process.execPath, [cli, 'pretrain', '--config', path], { encoding: 'utf8' });
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /pretrain config: 'stages.base.lr' must be > 0, not -1/);
    const flag = spawnSync(process.execPath, [cli, 'pretrain', '--config', path, '--stage', 'unet'], { encoding: 'utf8' });
    assert.equal(flag.status, 2);
    assert.match(flag.stderr, /expected one of vae, image-encoder, base, all/);
  });
});

describe('data', () => {
  test('samples carry their identity; pairs show one subject twice', async () => {
    const ids = await readImageIds(dataRoot);
    const sample = await loadSample(dataRoot, ids[1]!, clipTokenizer(), mulberry32(0), new Generator(0), { resolution: 32, cropSize: 16, keepSubject: 1, dropCaption: 0 });
    assert.deepEqual(sample.subjects.map((s) => s.identity), [identity(1), identity(4)]);
    disposeSample(sample);
    const loader = await SubjectPairLoader.create(dataRoot, ids, { batchSize: 6, cropSize: 16, seed: 1, referenceProbability: 1 });
    assert.deepEqual([loader.size, loader.identityCount, loader.referenceCount], [24, 6, 3]);
    const batch = await loader.nextBatch();
    assert.deepEqual(batch.anchors.shape, [6, 3, 16, 16]);
    assert.ok(batch.keys.every((k) => k.startsWith('identity:')));
    const position = loader.position;
    const next = await loader.nextBatch();
    loader.setPosition(position);
    const again = await loader.nextBatch();
    assert.ok(next.anchors.equal(again.anchors) && next.positives.equal(again.positives), 'a restored position replays the stream');
    for (const b of [batch, next, again]) [b.anchors, b.positives].forEach((t) => t.dispose());
    loader.close();
  });
  test('the VAE stage weights subject pixels by subjectWeight; 1 is the plain mean', async () => {
    const ids = await readImageIds(dataRoot);
    const loader = imageLoader(dataRoot, ids, clipTokenizer(), { batchSize: 2, seed: 0, resolution: 32, masks: 32 });
    const batch = await loader.nextBatch();
    const { vae } = tinyStableDiffusion();
    try {
      // The fixture's two subjects fill the middle half of the columns: 512 of 1024 pixels.
      const subject = tidy(() => stack(batch.subjects.map((ss) => ss.reduce((acc, s) => acc.maximum(s.mask), zeros([1, 32, 32])))));
      assert.deepEqual(subject.shape, [2, 1, 32, 32]);
      assert.equal(subject.sum().item(), 2 * 512);
      for (const weight of [1, 4]) {
        const task = new VaeTask(vae, loader, config('weighted', { vae: { subjectWeight: weight } }).stages.vae, 'cpu');
        const [l1, l2, plainL1, expectedL1, expectedL2] = noGrad(() =>
          tidy(() => {
            const { terms } = task.loss(batch, new Generator(5));
            const error = vae.decode(vae.encode(batch.images).sample(new Generator(5))).sub(batch.images);
            const weights = subject.mul(weight - 1).add(1);
            const weighted = (e: typeof error) => e.mul(weights).sum().item() / (weights.sum().item() * 3);
            return [terms.l1!.item(), terms.l2!.item(), error.abs().mean().item(), weighted(error.abs()), weighted(error.square())];
          }),
        );
        assert.ok(Math.abs(l1 - expectedL1) < 1e-5 && Math.abs(l2 - expectedL2) < 1e-5, `weight ${weight}: l1 ${l1} vs ${expectedL1}, l2 ${l2} vs ${expectedL2}`);
        if (weight === 1) assert.ok(Math.abs(l1 - plainL1) < 1e-6, 'weight 1 is the plain mean');
        else assert.ok(Math.abs(l1 - plainL1) > 1e-4, 'subject pixels count more');
      }
      subject.dispose();
    } finally {
      disposeBatch(batch);
      loader.close();
    }
  });
  test('the base stage weights subject latents by subjectWeight; 1 is the plain MSE', async () => {
    const ids = await readImageIds(dataRoot);
    const sd = tinyStableDiffusion();
    const side = 32 / sd.vae.scaleFactor;
    const loader = imageLoader(dataRoot, ids, clipTokenizer(), { batchSize: 2, seed: 0, resolution: 32, masks: side });
    const batch = await loader.nextBatch();
    try {
      // The fixture's subjects fill the middle half of the columns: half of every latent.
      const subject = tidy(() => stack(batch.subjects.map((ss) => ss.reduce((acc, s) => acc.maximum(s.mask), zeros([1, side, side])))));
      assert.deepEqual(subject.shape, [2, 1, side, side]);
      assert.equal(subject.sum().item(), side * side);
      for (const weight of [1, 4]) {
        const task = new BaseTask({ textEncoder: sd.textEncoder, unet: sd.unet, vae: sd.vae }, sd.schedulerConfig, loader, sd.vae.scalingFactor, 'cpu', weight);
        const [loss, expected, plain] = noGrad(() =>
          tidy(() => {
            const got = task.loss(batch, new Generator(5)).loss.item();
            // The same noise, timesteps and prediction, weighted by hand.
            const noise = new Generator(5);
            const latents = sd.vae.encode(batch.images).mean.float().mul(sd.vae.scalingFactor);
            const eps = randn(latents.shape, { generator: noise });
            const t = randint(0, task.scheduler.config.num_train_timesteps, [2], { generator: noise });
            const pred = sd.unet.forward(task.scheduler.addNoise(latents, eps, t), t, sd.textEncoder.forward(batch.inputIds).lastHiddenState);
            const squared = pred.sub(task.scheduler.trainingTarget(latents, eps, t)).square();
            const weights = subject.mul(weight - 1).add(1);
            return [got, squared.mul(weights).sum().item() / (weights.sum().item() * squared.size(1)), squared.mean().item()];
          }),
        );
        assert.ok(Math.abs(loss - expected) < 1e-6 * Math.max(1, expected), `weight ${weight}: ${loss} vs ${expected}`);
        if (weight === 1) assert.ok(Math.abs(loss - plain) < 1e-6 * Math.max(1, plain), 'weight 1 is the plain MSE');
        else assert.ok(Math.abs(loss - plain) > 1e-4 * plain, 'subject latents count more');
      }
      subject.dispose();
    } finally {
      disposeBatch(batch);
      loader.close();
      disposeStableDiffusion(sd);
    }
  });
});

describe('config', () => {
  test('errors name the field', () => {
    const base = rawConfig('cfg');
    const models = base.models as Record<string, Record<string, unknown>>;
    const stages = base.stages as Record<string, Record<string, unknown>>;
    const bad: [Record<string, unknown>, RegExp][] = [
      [{ ...base, dataRoot: undefined }, /'dataRoot' is required/],
      [{ ...base, learningRate: 1 }, /'learningRate' is not a known field/],
      [{ ...base, precision: 'fp16' }, /'precision' must be one of 'fp32', 'bf16'/],
      [{ ...base, stages: { ...stages, vae: { batchSize: 2 } } }, /'stages.vae.steps' is required/],
      [{ ...base, stages: { ...stages, base: { ...stages.base, dropCaptions: 0.1 } } }, /'stages.base.dropCaptions' is not a known field/],
      [{ ...base, stages: { ...stages, base: { ...stages.base, emaDecay: 1 } } }, /'stages.base.emaDecay' must be < 1/],
      [{ ...base, stages: { ...stages, vae: { ...stages.vae, subjectWeight: 0.5 } } }, /'stages.vae.subjectWeight' must be ≥ 1/],
      [{ ...base, stages: { ...stages, base: { ...stages.base, subjectWeight: 0 } } }, /'stages.base.subjectWeight' must be ≥ 1/],
      [{ ...base, stages: { ...stages, imageEncoder: undefined } }, /'stages.imageEncoder' is required/],
      [{ ...base, models: { ...models, vae: { ...models.vae, block_out_channel: [8] } } }, /'models.vae.block_out_channel' is not a field moa reads/],
      [{ ...base, models: { ...models, vae: { ...models.vae, scaling_factor: 0.2 } } }, /'models.vae.scaling_factor' must not be set: it is measured by the vae stage/],
      [{ ...base, models: { ...models, textEncoder: { ...models.textEncoder, vocab_size: 100 } } }, /'models.textEncoder.vocab_size' must not be set: it follows the tokenizer/],
      [{ ...base, models: { ...models, textEncoder: { ...models.textEncoder, max_position_embeddings: 32 } } }, /'models.textEncoder.max_position_embeddings' is 32 but must be 77/],
      [{ ...base, models: { ...models, unet: { ...models.unet, cross_attention_dim: 64 } } }, /'models.unet.cross_attention_dim' must equal the text encoder's hidden_size 32/],
      [{ ...base, models: { ...models, unet: { ...models.unet, in_channels: 3 } } }, /'models.unet.in_channels' is 3 but must be 4/],
      [{ ...base, models: { ...models, unet: { ...models.unet, norm_num_groups: 5 } } }, /'models.unet' is not a valid config: UNet config: norm_num_groups \(5\) must divide/],
      [{ ...base, models: { ...models, imageEncoder: undefined } }, /'models.imageEncoder' is required/],
      [{ ...base, resolution: 33 }, /'resolution' 33 must be a multiple of the VAE's downscaling factor 2/],
      [{ ...base, tokenizer: { minWordCount: 0 } }, /'tokenizer.minWordCount' must be > 0/],
      [{ ...base, guidance: -1 }, /'guidance' must be ≥ 0/],
    ];
    for (const [raw, message] of bad) assert.throws(() => parsePretrainConfig(raw), (e: unknown) => e instanceof PretrainConfigError && message.test(e.message), `${JSON.stringify(raw).slice(0, 80)}… should fail with ${message}`);
    const c = parsePretrainConfig({ ...base, workDir: undefined, tokenizer: '/some/tokenizer' });
    assert.equal(c.workDir, join(tmp, 'cfg', 'model', 'pretrain'));
    assert.equal(c.tokenizer.folder, '/some/tokenizer');
    assert.equal(c.models.unet.cross_attention_dim, 32);
    assert.equal(c.models.unet.sample_size, 16);
    assert.equal(c.stages.base.dropCaption, 0.1);
    assert.equal(c.guidance, null);
  });

  test('YAML files, and the shipped default config, parse', () => {
    const path = join(tmp, 'pretrain.yaml');
    writeFileSync(path, 'dataRoot: d\noutputDir: o\nstages: {}\nmodels: [1]\n');
    assert.throws(() => readPretrainConfig(path), /pretrain\.yaml: pretrain config: 'models' must be an object/);
    writeFileSync(path, 'dataRoot: d\n  bad: [\n');
    assert.throws(() => readPretrainConfig(path), /is not valid YAML/);
    const shipped = readPretrainConfig(join(process.cwd(), 'configs', 'world-base.yaml'));
    assert.equal(shipped.resolution, 64);
    assert.equal(shipped.precision, 'bf16');
    assert.equal(shipped.guidance, 3);
  });
});
