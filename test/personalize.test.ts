import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import sharp from 'sharp';
import { parseReferences, parseSubjectList, parseSubjectSpec } from '../src/cli/subject-spec.js';
import { saveDiffusersFolder } from '../src/io/diffusers.js';
import { colorize, HEATMAP_STOPS, heatmapColor, overlayHeatmap, writeHeatmap } from '../src/io/heatmap.js';
import { readImage, readPngTextFile, writePng } from '../src/io/image.js';
import { saveSafetensors } from '../src/io/safetensors.js';
import { CLIPVisionModelWithProjection } from '../src/models/clip-vision.js';
import { MoA } from '../src/moa/moa.js';
import { saveMoAWeights } from '../src/moa/weights.js';
import { editRealImage, invertImage } from '../src/pipelines/edit.js';
import { disposeMaps, mapFileNames, writeMaps } from '../src/pipelines/maps.js';
import { generatePersonalized, morphSubjects, resolvePersonalized, runPersonalized, swapSubjects } from '../src/pipelines/personalize.js';
import { buildStableDiffusion, disposeStableDiffusion } from '../src/pipelines/stable-diffusion.js';
import { bindWords } from '../src/pipelines/subjects.js';
import { decodeLatents, encodePrompts, generate, initialLatents, resolveParameters } from '../src/pipelines/text-to-image.js';
import { createScheduler } from '../src/schedulers/index.js';
import { cat, Generator, noGrad, randn, type Tensor, tensor, tidy } from '../src/tensor/index.js';
import { settledLiveTensors } from './helpers.js';
import { CLIP_VOCAB, clipTokenizer, REPO_ROOT, TINY_CONFIGS, TINY_VISION_CONFIG, tinyStableDiffusion } from './tiny-sd.js';

const skip = existsSync(CLIP_VOCAB) ? false : `CLIP's vocabulary is not at ${CLIP_VOCAB}`;
const work = mkdtempSync(join(tmpdir(), 'moa-personalize-'));
after(() => rmSync(work, { recursive: true, force: true }));

const pixels = (t: Tensor) => Array.from(t.toFloat32Array());
const maxDiff = (a: Tensor, b: Tensor) => tidy(() => a.sub(b).abs().max().item());
const meanDiff = (a: Tensor, b: Tensor) => tidy(() => a.sub(b).abs().mean().item());
const disposeAll = (ts: readonly Tensor[]) => ts.forEach((t) => t.dispose());

const EMBED = TINY_VISION_CONFIG.projection_dim;
const TINY_VISION = TINY_VISION_CONFIG;

/** A tiny SD with MoA installed, its MoA weights shaken so that subjects and routing vary. */
function tinyMoA(seed = 3): { sd: ReturnType<typeof tinyStableDiffusion>; moa: MoA } {
  const sd = tinyStableDiffusion(seed);
  const moa = new MoA(sd.unet, { imageEmbedDim: EMBED }, { generator: new Generator(seed + 1) });
  const g = new Generator(seed + 2);
  noGrad(() => tidy(() => moa.moaParameters().forEach((p) => p.add_(randn(p.shape, { generator: g }).mul(0.3)))));
  return { sd, moa };
}

const embedding = (seed: number) => randn([EMBED], { generator: new Generator(seed) });

describe('the denoising loop', { skip }, () => {
  test('generate() gives what the loop it was factored from gave, bit for bit', async () => {
    const sd = tinyStableDiffusion(2);
    for (const [scheduler, guidance] of [['dpmpp-2m', 5], ['ddpm', 3], ['ddim', 1]] as const) {
      const options = { prompt: 'a man and a woman hiking', steps: 3, width: 16, height: 16, seed: 5, batch: 2, guidance, scheduler };
      const result = await generate(sd, options);
      // The loop as text-to-image.ts ran it before denoise() was factored out.
      const p = resolveParameters(sd, options);
      const s = createScheduler(p.scheduler, sd.schedulerConfig);
      s.setTimesteps(p.steps);
      const reference = noGrad(() =>
        tidy(() => {
          const guided = p.guidance > 1;
          const cond = encodePrompts(sd, Array(p.batch).fill(p.prompt));
          const context = guided ? cat([encodePrompts(sd, Array(p.batch).fill(p.negativePrompt)), cond], 0) : cond;
          let latents = initialLatents(sd, p, s.initNoiseSigma);
          const stepNoise = new Generator(p.seed);
          for (const t of s.timesteps) {
            const input = s.scaleModelInput(guided ? cat([latents, latents], 0) : latents, t);
            const out = sd.unet.forward(input, t, context).float();
            const [uncond, c] = guided ? out.chunk(2, 0) : [null, out];
            const eps = uncond ? uncond.add(c!.sub(uncond).mul(p.guidance)) : c!;
            latents = s.step(eps, t, latents, { generator: stepNoise }).prevSample;
          }
          return decodeLatents(sd, latents).chunk(p.batch, 0).map((x) => x.squeeze(0));
        }),
      );
      result.images.forEach((image, i) => assert.deepEqual(pixels(image), pixels(reference[i]!), `${scheduler}, guidance ${guidance}, image ${i}`));
      disposeAll([...result.images, ...reference]);
    }
  });
});

describe('heatmaps', () => {
  test('the colour scale runs through its stops, linearly between them, as tensors and as numbers', () => {
    const values = [0, 0.1, 0.25, 0.4, 0.5, 0.8, 1, -1, 2];
    const colours = colorize(tensor(values, { shape: [1, values.length] }));
    const got = colours.toFloat32Array();
    values.forEach((v, i) => {
      const expected = heatmapColor(v);
      for (let c = 0; c < 3; c++) assert.ok(Math.abs(got[c * values.length + i]! - expected[c]!) < 1e-6, `value ${v}, channel ${c}`);
    });
    assert.deepEqual(heatmapColor(0), [...HEATMAP_STOPS[0]!]);
    assert.deepEqual(heatmapColor(1).map((x) => +x.toFixed(6)), [...HEATMAP_STOPS[4]!]);
    assert.deepEqual(heatmapColor(0.5).map((x) => +x.toFixed(6)), [...HEATMAP_STOPS[2]!]);
    // Lightness rises along the scale (it reads in grey).
    const luma = (c: readonly number[]) => 0.299 * c[0]! + 0.587 * c[1]! + 0.114 * c[2]!;
    for (let v = 0; v < 1; v += 0.05) assert.ok(luma(heatmapColor(v + 0.05)) > luma(heatmapColor(v)), `lighter after ${v}`);
    colours.dispose();
  });

  test('a map is resized to the image and blended over it', async () => {
    const image = tensor(new Array(3 * 8 * 12).fill(1), { shape: [3, 8, 12] });
    const map = tensor([0, 1, 1, 0], { shape: [2, 2] });
    const out = overlayHeatmap(image, map, { alpha: 0.25 });
    assert.deepEqual(out.shape, [3, 8, 12]);
    const v = out.toFloat32Array();
    // The top-left corner is the map's 0 (dark blue) at 25 % over white.
    assert.ok(Math.abs(v[0]! - (0.75 + 0.25 * HEATMAP_STOPS[0]![0]!)) < 1e-5);
    assert.throws(() => overlayHeatmap(image, map, { alpha: 2 }), /alpha must be in \[0, 1\]/);
    const path = join(work, 'heat.png');
    await writeHeatmap(path, image, map);
    const meta = await sharp(path).metadata();
    assert.deepEqual([meta.width, meta.height], [12, 8]);
    disposeAll([image, map, out]);
  });
});

describe('subjects', { skip }, () => {
  test('--subject specs parse words, images and masks', () => {
    assert.deepEqual(parseSubjectSpec('man=./ref.png'), { word: 'man', references: [{ image: './ref.png' }] });
    assert.deepEqual(parseSubjectSpec('woman=a.png:a-mask.png,b.jpg'), { word: 'woman', references: [{ image: 'a.png', mask: 'a-mask.png' }, { image: 'b.jpg' }] });
    assert.deepEqual(parseReferences('x.png'), [{ image: 'x.png' }]);
    assert.deepEqual(parseSubjectList('man=a.png; woman=b.png').map((s) => s.word), ['man', 'woman']);
    assert.throws(() => parseSubjectSpec('man'), /should be word=image\.png/);
    assert.throws(() => parseSubjectSpec('=a.png'), /word before '=' is empty/);
    assert.throws(() => parseSubjectSpec('man=a.png,,b.png'), /empty image path/);
    assert.throws(() => parseSubjectSpec('man=a.png:'), /image\.png:mask\.png/);
  });

  test('words bind to their token; a missing word names the prompt\'s words; repeats and too many are errors', () => {
    const tok = clipTokenizer();
    const prompt = 'a man and a woman hiking';
    assert.deepEqual(bindWords(tok, prompt, ['man', 'woman'], 4), [2, 5]);
    assert.throws(() => bindWords(tok, prompt, ['dog'], 4), /subject word: the word "dog" is not in the prompt "a man and a woman hiking" \(its words: a, man, and, a, woman, hiking\)/);
    assert.throws(() => bindWords(tok, prompt, ['man', 'Man'], 4), /"man" and "Man" are bound to the same word/);
    assert.throws(() => bindWords(tok, 'a b c d e', ['a', 'b', 'c', 'd', 'e'], 4), /5 subjects \(a, b, c, d, e\), but MoA binds at most 4/);
    assert.throws(() => bindWords(tok, prompt, [''], 4), /non-empty string/);
  });
});

describe('personalized generation', { skip }, () => {
  const { sd, moa } = tinyMoA();
  const alice = embedding(10);
  const bob = embedding(11);
  const base = { prompt: 'a man and a woman hiking', steps: 3, width: 16, height: 16, seed: 7, guidance: 4 } as const;

  test('with the router forced to the prior, MoA is the base model and swapping subjects changes nothing', async () => {
    const plain = await generate(sd, base);
    const [first, second] = await swapSubjects(sd, moa, { ...base, strength: 0, subjects: [{ word: 'man', embedding: alice }], swaps: [[{ word: 'man', embedding: bob }]] });
    assert.deepEqual(pixels(first!.images[0]!), pixels(second!.images[0]!));
    assert.deepEqual(pixels(first!.images[0]!), pixels(plain.images[0]!));
    // subjectStart 1: every step before the subjects, the same.
    const late = await generatePersonalized(sd, moa, { ...base, subjectStart: 1, subjects: [{ word: 'man', embedding: alice }] });
    assert.deepEqual(pixels(late.images[0]!), pixels(plain.images[0]!));
    disposeAll([...plain.images, ...first!.images, ...second!.images, ...late.images]);
  });

  test('subjects change the image; the same call repeats; a batch is its seeds; strength and start matter', async () => {
    const subjects = [{ word: 'man', embedding: alice }];
    const [a, b] = await swapSubjects(sd, moa, { ...base, subjects, swaps: [[{ word: 'man', embedding: bob }]] });
    const again = await generatePersonalized(sd, moa, { ...base, subjects });
    assert.deepEqual(pixels(again.images[0]!), pixels(a!.images[0]!));
    assert.ok(maxDiff(a!.images[0]!, b!.images[0]!) > 1e-4, 'another subject gives another image');
    assert.deepEqual(a!.parameters.subjects, [{ word: 'man', tokenIndex: 2 }]);
    assert.equal(a!.parameters.seed, b!.parameters.seed);

    const batch = await generatePersonalized(sd, moa, { ...base, subjects, seed: 6, batch: 2 });
    assert.ok(maxDiff(batch.images[1]!, a!.images[0]!) < 1e-5, `batch image 1 is seed 7 alone: ${maxDiff(batch.images[1]!, a!.images[0]!)}`);

    const weak = await generatePersonalized(sd, moa, { ...base, subjects, strength: 0.3 });
    const late = await generatePersonalized(sd, moa, { ...base, subjects, subjectStart: 0.5 });
    assert.equal(late.parameters.subjectStartStep, 1);
    assert.ok(maxDiff(weak.images[0]!, a!.images[0]!) > 1e-5);
    assert.ok(maxDiff(late.images[0]!, a!.images[0]!) > 1e-5);
    disposeAll([...a!.images, ...b!.images, ...again.images, ...batch.images, ...weak.images, ...late.images]);
  });

  test('subject guidance: u + g·(t − u) + s·(c − t) over the branches; at s = g it is plain guidance', async () => {
    // One DDIM step is affine in the noise, and the three weights sum to 1: the guided step's
    // latents are the same mix of the latents each branch gives alone (unguided).
    const bindings = [{ tokenIndex: 2, embedding: alice }];
    const run = async (options: { prompt?: string; guidance: number; subjectGuidance?: number; subjectGuidanceArea?: 'image' | 'routing' }, bound: typeof bindings, recordMaps = false) => {
      const parameters = resolvePersonalized(sd, { ...base, steps: 1, scheduler: 'ddim', ...options });
      const scheduler = createScheduler('ddim', sd.schedulerConfig);
      scheduler.setTimesteps(1);
      const latents = initialLatents(sd, { ...parameters, prompt: base.prompt }, scheduler.initNoiseSigma);
      const out = await runPersonalized(sd, { parameters, words: bound.map(() => 'man'), bindings: bound, latents, scheduler, recordMaps });
      latents.dispose();
      return out;
    };
    const oneStep = async (...args: Parameters<typeof run>) => (await run(...args)).latents;
    const [g, s] = [4, 9];
    const guided = await oneStep({ guidance: g, subjectGuidance: s }, bindings);
    const [u, t, c] = [await oneStep({ prompt: '', guidance: 1 }, []), await oneStep({ guidance: 1 }, []), await oneStep({ guidance: 1 }, bindings)];
    const expected = tidy(() => u.add(t.sub(u).mul(g)).add(c.sub(t).mul(s)));
    assert.ok(maxDiff(guided, expected) < 1e-4, `three-branch step off by ${maxDiff(guided, expected)}`);
    const plain = await oneStep({ guidance: g }, bindings);
    const same = await oneStep({ guidance: g, subjectGuidance: g }, bindings);
    assert.deepEqual(pixels(same), pixels(plain));
    assert.ok(maxDiff(guided, plain) > 1e-3, 'a larger subject scale moves the step');

    // Confined to the routing: the subject scale at a pixel is g + (s − g)·m, m = r1 (summed over
    // layers) scaled to its peak, as the conditional branch routes.
    const routed = await oneStep({ guidance: g, subjectGuidance: s, subjectGuidanceArea: 'routing' }, bindings);
    const { maps } = await run({ guidance: 1 }, bindings, true);
    const expectedRouted = tidy(() => {
      const r1 = maps!.routingMean;
      const m = r1.div(r1.reshape(1, -1).max(1, true).values.reshape(1, 1, 1)).unsqueeze(1);
      return u.add(t.sub(u).mul(g)).add(c.sub(t).mul(m.mul(s - g).add(g)));
    });
    assert.ok(maxDiff(routed, expectedRouted) < 1e-4, `routed step off by ${maxDiff(routed, expectedRouted)}`);
    assert.ok(maxDiff(routed, guided) > 1e-4 && maxDiff(routed, plain) > 1e-4, 'between plain guidance and the full subject scale');
    const routedSame = await oneStep({ guidance: g, subjectGuidance: g, subjectGuidanceArea: 'routing' }, bindings);
    assert.deepEqual(pixels(routedSame), pixels(plain));
    disposeMaps(maps!);
    disposeAll([guided, u, t, c, expected, plain, same, routed, expectedRouted, routedSame]);

    // With the prior forced, the subjects' branch is the text's: any subject scale is the base model.
    const prior = await generatePersonalized(sd, moa, { ...base, strength: 0, subjectGuidance: 9, subjects: [{ word: 'man', embedding: alice }] });
    const plainBase = await generate(sd, base);
    assert.ok(maxDiff(prior.images[0]!, plainBase.images[0]!) < 1e-5);
    assert.equal(prior.parameters.subjectGuidance, 9);
    const defaulted = await generatePersonalized(sd, moa, { ...base, steps: 1 });
    assert.equal(defaulted.parameters.subjectGuidance, base.guidance);
    await assert.rejects(generatePersonalized(sd, moa, { ...base, subjectGuidance: -1 }), /subjectGuidance must be a number from 0 to 100, not -1/);
    await assert.rejects(generatePersonalized(sd, moa, { ...base, subjectGuidanceArea: 'subjects' as never }), /subjectGuidanceArea must be 'image' or 'routing', not subjects/);
    disposeAll([...prior.images, ...plainBase.images, ...defaulted.images]);
  });

  test('morphing: the endpoints are the two subjects\' own generations', async () => {
    const options = { ...base, prompt: 'a photo of a man', steps: 2 };
    const { frames, parameters } = await morphSubjects(sd, moa, { ...options, word: 'man', from: { embedding: alice }, to: { embedding: bob }, frames: 3 });
    assert.deepEqual(frames.map((f) => f.alpha), [0, 0.5, 1]);
    const own = await Promise.all([alice, bob].map((e) => generatePersonalized(sd, moa, { ...options, subjects: [{ word: 'man', embedding: e }] })));
    assert.deepEqual(pixels(frames[0]!.image), pixels(own[0]!.images[0]!));
    assert.deepEqual(pixels(frames[2]!.image), pixels(own[1]!.images[0]!));
    assert.ok(maxDiff(frames[1]!.image, frames[0]!.image) > 1e-6 && maxDiff(frames[1]!.image, frames[2]!.image) > 1e-6, 'the middle frame is neither');
    assert.equal(parameters.seed, 7);
    await assert.rejects(morphSubjects(sd, moa, { ...options, word: 'man', from: { embedding: alice }, to: { embedding: bob }, frames: 1 }), /frames must be an integer from 2/);
    disposeAll([...frames.map((f) => f.image), ...own.flatMap((r) => r.images)]);
  });

  test('bad subjects are clear errors', async () => {
    await assert.rejects(generatePersonalized(sd, moa, { ...base, subjects: [{ word: 'dog', embedding: alice }] }), /"dog" is not in the prompt "a man and a woman hiking" \(its words: a, man, and, a, woman, hiking\)/);
    await assert.rejects(generatePersonalized(sd, moa, { ...base, subjects: [{ word: 'man', embedding: alice }, { word: 'man', embedding: bob }] }), /bound to the same word/);
    await assert.rejects(generatePersonalized(sd, moa, { ...base, subjects: [{ word: 'man', images: randn([1, 3, 8, 8], { generator: new Generator(0) }) }] }), /need a subject encoder/);
    await assert.rejects(generatePersonalized(sd, moa, { ...base, subjects: [{ word: 'man', embedding: randn([4], { generator: new Generator(0) }) }] }), /has 4 values, but this MoA takes 16/);
    await assert.rejects(generatePersonalized(sd, moa, { ...base, strength: -1 }), /strength must be a number from 0/);
    await assert.rejects(generatePersonalized(sd, moa, { ...base, subjectStart: 2 }), /subjectStart must be a number from 0 to 1/);
    await assert.rejects(swapSubjects(sd, moa, { ...base, subjects: [], swaps: [[{ word: 'man', embedding: bob }]] }), /"man" is not a subject of the base generation/);
    await assert.rejects(generatePersonalized(tinyStableDiffusion(1), moa, base), /installed on another UNet/);
    moa.uninstall();
    await assert.rejects(generatePersonalized(sd, moa, base), /not installed in its UNet: call moa\.install\(\)/);
    moa.install();
  });

  test('subjects from reference images go through the image encoder', async () => {
    const encoder = new CLIPVisionModelWithProjection(TINY_VISION, { generator: new Generator(1) });
    const other = tinyStableDiffusion(4);
    const withEncoder = new MoA(other.unet, { imageEmbedDim: EMBED }, { imageEncoder: encoder, generator: new Generator(2) });
    const images = randn([2, 3, 20, 24], { generator: new Generator(3) }).sigmoid();
    const r = await generatePersonalized(other, withEncoder, { ...base, subjects: [{ word: 'woman', images }] });
    assert.deepEqual(r.parameters.subjects, [{ word: 'woman', tokenIndex: 5 }]);
    disposeAll([...r.images, images]);
  });

  test('routing and subject maps: per layer, averaged, per subject; written with their names and sizes', async () => {
    const r = await generatePersonalized(sd, moa, { ...base, batch: 2, subjects: [{ word: 'man', embedding: alice }, { word: 'woman', embedding: bob }], recordMaps: true });
    const maps = r.maps!;
    assert.equal(maps.routing.length, moa.layers.length);
    assert.deepEqual(maps.routing.map((m) => m.layer), moa.layers.map((l) => l.name));
    assert.deepEqual(maps.routing[0]!.map.shape, [2, 8, 8]);
    assert.deepEqual(maps.routing.at(-1)!.map.shape, [2, 8, 8]);
    assert.ok(maps.routing.some((m) => m.map.shape[1] === 4), 'the lower block routes at its own 4×4 grid');
    assert.deepEqual(maps.routingMean.shape, [2, 8, 8]);
    const r1 = maps.routingMean.toFloat32Array();
    assert.ok(r1.every((v) => v > 0 && v < 1), 'r1 is a weight in (0, 1)');
    assert.deepEqual(maps.subjects.map((s) => [s.word, s.map.shape]), [['man', [2, 8, 8]], ['woman', [2, 8, 8]]]);
    assert.ok(maps.subjects.every((s) => s.map.toFloat32Array().some((v) => v > 0)), 'each subject receives attention');

    const dir = join(work, 'maps');
    const written = await writeMaps(dir, r.images, maps);
    const names = mapFileNames(maps);
    assert.ok(names.includes('routing-mean.png') && names.includes('subject-man.png') && names.includes('subject-woman.png'));
    assert.ok(names.includes('routing-down_blocks.0.attentions.0.transformer_blocks.0.attn1.png'));
    assert.deepEqual(readdirSync(join(dir, '1')).sort(), [...names].sort());
    assert.equal(written.length, 2 * names.length);
    for (const file of [join(dir, '2', 'routing-mean.png'), join(dir, '1', 'subject-woman.png')]) {
      const meta = await sharp(file).metadata();
      assert.deepEqual([meta.width, meta.height], [16, 16]);
    }
    disposeMaps(maps);
    disposeAll(r.images);
    await assert.rejects(generatePersonalized(sd, moa, { ...base, strength: 0, recordMaps: true }), /maps need steps that run MoA/);
  });

  test('no tensor outlives a generation with maps, a swap, routed subject guidance, a morph or an edit', async () => {
    const subjects = [{ word: 'man', embedding: alice }];
    const runAll = async () => {
      const r = await generatePersonalized(sd, moa, { ...base, batch: 2, subjects, recordMaps: true });
      disposeMaps(r.maps!);
      disposeAll(r.images);
      for (const s of await swapSubjects(sd, moa, { ...base, subjects, swaps: [[{ word: 'man', embedding: bob }]] })) disposeAll(s.images);
      const routed = await generatePersonalized(sd, moa, { ...base, subjects, subjectGuidance: 7, subjectGuidanceArea: 'routing', recordMaps: true });
      assert.equal(routed.maps!.subjects.length, 1, 'maps are recorded beside the routing area');
      disposeMaps(routed.maps!);
      disposeAll(routed.images);
      const m = await morphSubjects(sd, moa, { ...base, steps: 1, word: 'man', from: { embedding: alice }, to: { embedding: bob }, frames: 3 });
      disposeAll(m.frames.map((f) => f.image));
      const photo = randn([1, 3, 16, 16], { generator: new Generator(2) }).sigmoid();
      const e = await editRealImage(sd, moa, { image: photo, prompt: base.prompt, steps: 2, subjects, recordMaps: true });
      disposeMaps(e.maps!);
      disposeAll([...e.images, photo]);
      await assert.rejects(generatePersonalized(sd, moa, { ...base, subjects: [{ word: 'dog', embedding: alice }] }));
    };
    await runAll(); // first calls may fill caches
    const before = settledLiveTensors().count;
    await runAll();
    assert.equal(settledLiveTensors().count, before);
  });

  test('real-image subject swap: the photo inverted with the prior comes back; a new subject changes it', async () => {
    // The tiny VAE's latents are ~0.02 in size where SD's are ~1, and a random UNet is far rougher
    // in x than a trained denoiser (DDIM inversion assumes ε changes little over a step). So this
    // model scales its latents to unit size (scaling_factor 8) and its ε by 0.3.
    const smooth = buildStableDiffusion({ ...TINY_CONFIGS, vae: { ...TINY_CONFIGS.vae, scaling_factor: 8 } }, clipTokenizer(), { generator: new Generator(3) });
    noGrad(() => [smooth.unet.conv_out.weight, smooth.unet.conv_out.bias!].forEach((p) => p.mul_(0.3)));
    const fresh = new MoA(smooth.unet, { imageEmbedDim: EMBED }, { generator: new Generator(4) });
    // Trained-looking fusion and routers, so that a subject changes the image. With no subject
    // neither matters: the personal experts, still copies of the prior, compute what it does.
    const g = new Generator(5);
    const shaken = [...fresh.fusion.parameters(), ...fresh.layers.flatMap((l) => l.router.parameters())];
    noGrad(() => tidy(() => shaken.forEach((p) => p.add_(randn(p.shape, { generator: g }).mul(0.3)))));
    // A smooth "photo"; the error is measured against the VAE's own round trip of it.
    const photo = noGrad(() =>
      tidy(() => {
        const ramp = tensor(Array.from({ length: 16 }, (_, i) => i / 15));
        const [ys, xs] = [ramp.reshape(1, 1, 16, 1).expand(1, 1, 16, 16), ramp.reshape(1, 1, 1, 16).expand(1, 1, 16, 16)];
        return cat([ys.mul(xs), ys.mul(0.5).add(0.2), xs.mul(-0.6).add(0.8)], 1);
      }),
    );
    const errors: number[] = [];
    let pixelError = 0;
    for (const steps of [20, 50]) {
      const options = { image: photo, prompt: 'a photo of a man', steps };
      const { encoded, noise } = await invertImage(smooth, options);
      const vaeRoundTrip = noGrad(() => decodeLatents(smooth, encoded));
      const same = await editRealImage(smooth, fresh, options);
      pixelError = meanDiff(same.images[0]!, vaeRoundTrip.squeeze(0));
      const latentScale = tidy(() => encoded.abs().mean().item());
      errors.push(same.latentDistance / latentScale);
      console.log(
        `# DDIM inversion, ${steps} steps: latent mean |error| ${same.latentDistance.toFixed(4)} (${((100 * same.latentDistance) / latentScale).toFixed(1)}% of the latents' mean |value|); ` +
          `pixel mean |error| vs the VAE round trip ${pixelError.toFixed(4)}`,
      );
      if (steps === 50) {
        const swapped = await editRealImage(smooth, fresh, { ...options, strength: 4, subjects: [{ word: 'man', embedding: alice }] });
        const moved = meanDiff(swapped.images[0]!, same.images[0]!);
        assert.ok(moved > 1e-4, `a new subject changes the photo (${moved})`);
        assert.deepEqual(swapped.parameters.subjects, [{ word: 'man', tokenIndex: 5 }]);
        disposeAll(swapped.images);
      }
      disposeAll([encoded, noise, vaeRoundTrip, ...same.images]);
    }
    // The error is DDIM inversion's discretisation error: it shrinks with more steps.
    assert.ok(errors[1]! < errors[0]!, `error falls with steps: ${errors}`);
    assert.ok(errors[1]! < 0.1, `latent error at 50 steps: ${errors[1]}`);
    assert.ok(pixelError < 0.01, `pixel error at 50 steps: ${pixelError}`);
    await assert.rejects(editRealImage(smooth, fresh, { image: randn([3, 15, 16], { generator: new Generator(0) }), prompt: 'a man' }), /multiples of 2/);
    disposeAll([photo]);
    fresh.dispose();
    disposeStableDiffusion(smooth);
  });
});

describe('moa CLI with subjects', { skip }, () => {
  const cli = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });
  const model = join(work, 'cli-model');
  const weights = join(work, 'moa.safetensors');
  const encoderDir = join(work, 'image-encoder');
  const ref = join(work, 'ref.png');
  const ref2 = join(work, 'ref2.png');
  const modelArgs = ['--model', model, '--moa', weights, '--image-encoder', encoderDir, '--precision', 'fp32'];
  const common = [...modelArgs, '--steps', '2', '--width', '16', '--height', '16', '--seed', '3'];

  test('generate --moa --subject --maps writes the image, its parameters and the maps', async () => {
    const { sd, moa } = tinyMoA(5);
    moa.uninstall(); // the folder holds the base model; MoA's weights go in their own file
    saveDiffusersFolder(sd, model);
    moa.install();
    mkdirSync(encoderDir, { recursive: true });
    const encoder = new CLIPVisionModelWithProjection(TINY_VISION, { generator: new Generator(1) });
    writeFileSync(join(encoderDir, 'config.json'), JSON.stringify({ ...TINY_VISION, model_type: 'clip_vision_model' }));
    saveSafetensors(join(encoderDir, 'model.safetensors'), tidy(() => encoder.stateDict()));
    saveMoAWeights(weights, moa, { baseModel: 'tiny' });
    moa.dispose();
    disposeStableDiffusion(sd);
    encoder.dispose();
    const gen = new Generator(9);
    for (const path of [ref, ref2]) {
      const t = randn([1, 3, 24, 20], { generator: gen }).sigmoid();
      await writePng(path, t);
      t.dispose();
    }
    const out = join(work, 'cli', 'hike.png');
    const maps = join(work, 'cli', 'maps');
    const r = run('generate', ...common, '--prompt', 'a man and a woman hiking', '--subject', `man=${ref}`, '--subject', `woman=${ref2},${ref}`, '--strength', '0.8', '--subject-guidance', '5', '--subject-guidance-area', 'routing', '--maps', maps, '--out', out, '--json');
    assert.equal(r.status, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { files: string[]; maps: string[]; subjects: { word: string; images: string[] }[] };
    assert.deepEqual(report.files, [out]);
    assert.deepEqual(report.subjects.map((s) => s.word), ['man', 'woman']);
    const text = await readPngTextFile(out);
    const parameters = JSON.parse(text.parameters!) as Record<string, unknown>;
    assert.equal(parameters.strength, 0.8);
    assert.equal(parameters.subjectGuidance, 5);
    assert.equal(parameters.subjectGuidanceArea, 'routing');
    assert.equal(parameters.moa, weights);
    assert.ok(readdirSync(maps).includes('routing-mean.png') && readdirSync(maps).includes('subject-woman.png'));
    const image = await readImage(out);
    assert.deepEqual(image.shape, [1, 3, 16, 16]);
    image.dispose();

    const missing = run('generate', ...common, '--prompt', 'a man hiking', '--subject', `dog=${ref}`, '--out', out);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /"dog" is not in the prompt "a man hiking" \(its words: a, man, hiking\)/);
    const unreadable = run('generate', ...common, '--prompt', 'a man hiking', '--subject', `man=${join(work, 'nope.png')}`, '--out', out);
    assert.equal(unreadable.status, 1);
    assert.match(unreadable.stderr, /cannot read image '.*nope\.png': no such file/);
    const noMoA = run('generate', '--model', model, '--prompt', 'a man', '--subject', `man=${ref}`);
    assert.equal(noMoA.status, 2);
    assert.match(noMoA.stderr, /--subject needs --moa/);
    const badArea = run('generate', ...common, '--prompt', 'a man', '--subject', `man=${ref}`, '--subject-guidance-area', 'face');
    assert.equal(badArea.status, 2);
    assert.match(badArea.stderr, /'face' is invalid. Allowed choices are image, routing/);
    const badSpec = run('generate', ...common, '--prompt', 'a man', '--subject', 'man');
    assert.equal(badSpec.status, 2);
    assert.match(badSpec.stderr, /should be word=image\.png/);
  });

  test('without --model the shipped default model is used, with its MoA weights when subjects are given', () => {
    const shipped = join(work, 'shipped');
    cpSync(model, shipped, { recursive: true });
    cpSync(encoderDir, join(shipped, 'image_encoder'), { recursive: true });
    cpSync(weights, join(shipped, 'moa.safetensors'));
    const env = { ...process.env, MOA_DEFAULT_MODEL: shipped };
    const args = ['generate', '--precision', 'fp32', '--steps', '2', '--width', '16', '--height', '16', '--seed', '3', '--prompt', 'a man hiking', '--json'];
    const withSubject = spawnSync(process.execPath, [cli, ...args, '--subject', `man=${ref}`, '--out', join(work, 'shipped.png')], { encoding: 'utf8', env });
    assert.equal(withSubject.status, 0, withSubject.stderr);
    assert.equal((JSON.parse(withSubject.stdout) as { moa: string }).moa, join(shipped, 'moa.safetensors'));
    const textOnly = spawnSync(process.execPath, [cli, ...args, '--out', join(work, 'shipped-text.png')], { encoding: 'utf8', env });
    assert.equal(textOnly.status, 0, textOnly.stderr);
    assert.equal((JSON.parse(textOnly.stdout) as { moa?: string }).moa, undefined);
  });

  test('swap, morph, edit and maps write what they say, from the same seed', async () => {
    const out = join(work, 'sub');
    const swap = run('swap', ...common, '--prompt', 'a man hiking', '--subject', `man=${ref}`, '--swap', `man=${ref2}`, '--maps', join(out, 'swap-maps'), '--out', join(out, 'swap.png'), '--json');
    assert.equal(swap.status, 0, swap.stderr);
    const swapped = JSON.parse(swap.stdout) as { seed: number; files: string[]; variants: { subjects: { images: string[] }[] }[] };
    assert.deepEqual(swapped.files, [join(out, 'swap-0.png'), join(out, 'swap-1.png')]);
    assert.equal(swapped.seed, 3);
    assert.deepEqual(swapped.variants.map((v) => v.subjects[0]!.images), [[ref], [ref2]]);
    assert.deepEqual(readdirSync(join(out, 'swap-maps')).sort(), ['0', '1']);
    assert.ok(readdirSync(join(out, 'swap-maps', '1')).includes('subject-man.png'));

    const morph = run('morph', ...common, '--prompt', 'a photo of a man', '--word', 'man', '--from', ref, '--to', ref2, '--frames', '3', '--out', join(out, 'morph'), '--json');
    assert.equal(morph.status, 0, morph.stderr);
    const frames = (JSON.parse(morph.stdout) as { frames: { alpha: number; file: string }[] }).frames;
    assert.deepEqual(frames.map((f) => f.alpha), [0, 0.5, 1]);
    assert.deepEqual(readdirSync(join(out, 'morph')).sort(), ['frame-000.png', 'frame-001.png', 'frame-002.png']);
    // Frame 0 is the first subject's own generation: the swap's base image (same seed, prompt aside).
    const alone = run('generate', ...common, '--prompt', 'a photo of a man', '--subject', `man=${ref}`, '--out', join(out, 'alone.png'));
    assert.equal(alone.status, 0, alone.stderr);
    const [f0, a0] = await Promise.all([readImage(frames[0]!.file), readImage(join(out, 'alone.png'))]);
    assert.deepEqual(pixels(f0), pixels(a0));
    disposeAll([f0, a0]);

    const photo = join(work, 'photo.png');
    const editArgs = [...modelArgs, '--steps', '2', '--image', photo, '--prompt', 'a photo of a man', '--subject', `man=${ref}`, '--maps', join(out, 'edit-maps'), '--out', join(out, 'edit.png'), '--json'];
    const early = run('edit', ...editArgs);
    assert.equal(early.status, 1, 'the photo does not exist yet');
    assert.match(early.stderr, /cannot read image '.*photo\.png': no such file/);
    const pixelsIn = randn([3, 16, 16], { generator: new Generator(1) }).sigmoid();
    await writePng(photo, pixelsIn);
    pixelsIn.dispose();
    const edited = run('edit', ...editArgs);
    assert.equal(edited.status, 0, edited.stderr);
    const record = JSON.parse(edited.stdout) as { scheduler: string; latentDistance: number; files: string[]; maps: string[] };
    assert.equal(record.scheduler, 'ddim');
    assert.ok(record.latentDistance >= 0);
    assert.ok(record.maps.some((m) => m.endsWith('subject-man.png')));

    const maps = run('maps', ...common, '--prompt', 'a man and a woman hiking', '--subject', `man=${ref}`, '--subject', `woman=${ref2}`, '--out', join(out, 'maps'), '--json');
    assert.equal(maps.status, 0, maps.stderr);
    const listed = readdirSync(join(out, 'maps'));
    assert.ok(listed.includes('routing-mean.png') && listed.includes('subject-man.png') && listed.includes('subject-woman.png'));
    assert.ok(listed.every((f) => f.startsWith('routing-') || f.startsWith('subject-')), 'only maps');

    for (const sub of ['swap', 'morph', 'edit', 'maps']) {
      const help = run(sub, '--help');
      assert.equal(help.status, 0);
      assert.match(help.stdout, new RegExp(`Examples:[\\s\\S]*\\$ moa ${sub} `));
    }
  });
});
