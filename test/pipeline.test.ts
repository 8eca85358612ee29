import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { inspectModel } from '../src/cli/inspect.js';
import { loadDiffusersFolder, saveDiffusersFolder } from '../src/io/diffusers.js';
import { readPngTextFile } from '../src/io/image.js';
import { loadSafetensors, saveSafetensors } from '../src/io/safetensors.js';
import { unetKeyFromOriginal, unetKeyToOriginal, vaeKeyFromOriginal, vaeKeyToOriginal } from '../src/io/sd-keys.js';
import { loadSingleFile, saveSingleFile, unetLayout, vaeLayout } from '../src/io/single-file.js';
import { UNet2DConditionModel } from '../src/models/unet/unet.js';
import { AutoencoderKL } from '../src/models/vae/autoencoder-kl.js';
import { StateDictError } from '../src/nn/module.js';
import { openStableDiffusion } from '../src/pipelines/load.js';
import { applyPrecision } from '../src/pipelines/precision.js';
import { disposeStableDiffusion, SD15_CONFIGS, type StableDiffusion } from '../src/pipelines/stable-diffusion.js';
import { encodePrompts, generate, resolveParameters } from '../src/pipelines/text-to-image.js';
import { Generator, noGrad, randn, type Tensor, tidy } from '../src/tensor/index.js';
import { CLIP_VOCAB, clipTokenizer, REPO_ROOT, tinyStableDiffusion } from './tiny-sd.js';

const skip = existsSync(CLIP_VOCAB) ? false : `CLIP's vocabulary is not at ${CLIP_VOCAB}`;
const work = mkdtempSync(join(tmpdir(), 'moa-pipeline-'));
after(() => rmSync(work, { recursive: true, force: true }));

/** The UNet's and VAE's outputs and the text embedding for fixed inputs: a model's fingerprint. */
function fingerprint(sd: StableDiffusion): Float64Array[] {
  return noGrad(() =>
    tidy(() => {
      const g = new Generator(5);
      const latents = randn([1, 4, 8, 8], { generator: g });
      const context = encodePrompts(sd, ['a photo of a cat']);
      const eps = sd.unet.forward(latents, 500, context);
      const image = sd.vae.decode(latents);
      const posterior = sd.vae.encode(randn([1, 3, 16, 16], { generator: g }));
      return [context, eps, image, posterior.mean].map((t: Tensor) => t.toFloat64Array());
    }),
  );
}

describe('loading and saving Stable Diffusion', { skip }, () => {
  const sd = tinyStableDiffusion(1);
  const reference = fingerprint(sd);

  test('a diffusers folder round trip gives identical outputs', () => {
    const dir = join(work, 'folder');
    saveDiffusersFolder(sd, dir);
    const loaded = loadDiffusersFolder(dir);
    try {
      assert.deepEqual(fingerprint(loaded), reference);
      assert.equal(loaded.source, dir);
      assert.equal(loaded.defaultGuidance, 7.5, "Stable Diffusion's scale when the folder names none");
      assert.equal(JSON.parse(readFileSync(join(dir, 'model_index.json'), 'utf8'))._moa_guidance, undefined);
    } finally {
      disposeStableDiffusion(loaded);
    }
  });

  test("a folder's own default guidance is saved, loaded and used; a bad one is a clear error", () => {
    const dir = join(work, 'guided');
    const own = tinyStableDiffusion(1);
    own.defaultGuidance = 3;
    saveDiffusersFolder(own, dir);
    disposeStableDiffusion(own);
    const indexPath = join(dir, 'model_index.json');
    const index = JSON.parse(readFileSync(indexPath, 'utf8'));
    assert.equal(index._moa_guidance, 3);
    const loaded = loadDiffusersFolder(dir);
    try {
      assert.equal(loaded.defaultGuidance, 3);
      assert.equal(resolveParameters(loaded, { prompt: 'x' }).guidance, 3);
      assert.equal(resolveParameters(loaded, { prompt: 'x', guidance: 1 }).guidance, 1, 'an explicit scale wins');
    } finally {
      disposeStableDiffusion(loaded);
    }
    writeFileSync(indexPath, JSON.stringify({ ...index, _moa_guidance: 'high' }));
    assert.throws(() => loadDiffusersFolder(dir), /_moa_guidance must be a number from 0 to 100.*not "high"/);
  });

  test('a single-file checkpoint round trip gives identical outputs', () => {
    const path = join(work, 'model.safetensors');
    saveSingleFile(sd, path);
    const keys = Object.keys(loadSafetensors(path).tensors);
    assert.ok(keys.includes('model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn1.to_q.weight'));
    assert.ok(keys.includes('first_stage_model.encoder.mid.attn_1.q.weight'));
    assert.ok(keys.includes('cond_stage_model.transformer.text_model.final_layer_norm.weight'));
    const loaded = loadSingleFile(path, { tokenizer: clipTokenizer(), configs: sd.configs });
    try {
      assert.deepEqual(fingerprint(loaded), reference);
    } finally {
      disposeStableDiffusion(loaded);
    }
  });

  test('single-file checkpoints without the text_model level load too', () => {
    const path = join(work, 'model.safetensors');
    const flat = join(work, 'flat.safetensors');
    const { tensors } = loadSafetensors(path);
    const renamed = Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k.replace('cond_stage_model.transformer.text_model.', 'cond_stage_model.transformer.'), t]));
    saveSafetensors(flat, renamed);
    const loaded = loadSingleFile(flat, { tokenizer: clipTokenizer(), configs: sd.configs });
    try {
      assert.deepEqual(fingerprint(loaded), reference);
    } finally {
      disposeStableDiffusion(loaded);
    }
  });

  test('a missing, an unexpected and a mis-shaped key are all named, and nothing is loaded', () => {
    const dir = join(work, 'folder');
    const path = join(dir, 'unet', 'diffusion_pytorch_model.safetensors');
    const backup = join(work, 'unet-backup.safetensors');
    copyFileSync(path, backup);
    try {
      const { tensors } = loadSafetensors(path);
      delete tensors['conv_in.bias'];
      tensors['extra.weight'] = randn([2], { generator: new Generator(0) });
      tensors['conv_out.bias'] = randn([5], { generator: new Generator(0) });
      saveSafetensors(path, tensors);
      assert.throws(
        () => loadDiffusersFolder(dir),
        (e: Error) => e instanceof StateDictError && /conv_in\.bias/.test(e.message) && /extra\.weight/.test(e.message) && /conv_out\.bias.*\[5\]/.test(e.message),
      );
    } finally {
      renameSync(backup, path);
    }
  });

  test('pickle files are refused with a way out', () => {
    const dir = join(work, 'folder');
    const weights = join(dir, 'vae', 'diffusion_pytorch_model.safetensors');
    const moved = join(work, 'vae.safetensors');
    renameSync(weights, moved);
    writeFileSync(join(dir, 'vae', 'diffusion_pytorch_model.bin'), 'not really a pickle');
    try {
      assert.throws(() => loadDiffusersFolder(dir), /pickle file.*runs[\s\S]*safetensors/);
      assert.throws(() => openStableDiffusion(join(dir, 'vae', 'diffusion_pytorch_model.bin')), /does not load pickle files/);
    } finally {
      rmSync(join(dir, 'vae', 'diffusion_pytorch_model.bin'));
      renameSync(moved, weights);
    }
  });

  test('a single-file checkpoint without a tokenizer is a clear error', () => {
    const saved = process.env.MOA_CLIP_TOKENIZER;
    delete process.env.MOA_CLIP_TOKENIZER;
    try {
      assert.throws(() => openStableDiffusion(join(work, 'model.safetensors')), /holds no tokenizer: pass --tokenizer/);
    } finally {
      if (saved !== undefined) process.env.MOA_CLIP_TOKENIZER = saved;
    }
  });
});

describe('SD1.5 names', () => {
  test('moa inspect sd15 gives the published parameter counts', () => {
    const report = inspectModel('sd15');
    assert.deepEqual(
      Object.fromEntries(Object.entries(report).map(([k, r]) => [k, r.params])),
      { unet: 859_520_964, vae: 83_653_863, textEncoder: 123_060_480, imageEncoder: 303_966_208 },
    );
  });

  test('every SD1.5 UNet and VAE key maps to the original layout and back', () => {
    const init = { empty: true, dtype: 'bfloat16' as const };
    const unet = new UNet2DConditionModel(SD15_CONFIGS.unet, init);
    const vae = new AutoencoderKL(SD15_CONFIGS.vae, init);
    try {
      const ul = unetLayout(unet);
      const unetKeys = tidy(() => Object.keys(unet.stateDict()));
      const originals = unetKeys.map((k) => unetKeyToOriginal(k, ul));
      assert.equal(new Set(originals).size, unetKeys.length, 'no two keys map to one');
      originals.forEach((o, i) => assert.equal(unetKeyFromOriginal(o!, ul), unetKeys[i]));
      // Positions in the original layout, as SD1.5 checkpoints have them.
      const to = (k: string) => unetKeyToOriginal(k, ul);
      assert.equal(to('down_blocks.0.downsamplers.0.conv.weight'), 'input_blocks.3.0.op.weight');
      assert.equal(to('down_blocks.1.attentions.1.proj_in.weight'), 'input_blocks.5.1.proj_in.weight');
      assert.equal(to('up_blocks.0.upsamplers.0.conv.weight'), 'output_blocks.2.1.conv.weight');
      assert.equal(to('up_blocks.1.upsamplers.0.conv.weight'), 'output_blocks.5.2.conv.weight');
      assert.equal(to('up_blocks.3.resnets.2.conv_shortcut.weight'), 'output_blocks.11.0.skip_connection.weight');
      assert.equal(to('mid_block.resnets.1.time_emb_proj.bias'), 'middle_block.2.emb_layers.1.bias');
      assert.equal(to('time_embedding.linear_2.weight'), 'time_embed.2.weight');

      const vl = vaeLayout(vae);
      const vaeKeys = tidy(() => Object.keys(vae.stateDict()));
      for (const k of vaeKeys) assert.equal(vaeKeyFromOriginal(vaeKeyToOriginal(k, vl)!, vl), k);
      assert.equal(vaeKeyToOriginal('decoder.up_blocks.3.resnets.2.conv2.weight', vl), 'decoder.up.0.block.2.conv2.weight');
      assert.equal(vaeKeyToOriginal('decoder.up_blocks.0.upsamplers.0.conv.bias', vl), 'decoder.up.3.upsample.conv.bias');
      assert.equal(vaeKeyToOriginal('encoder.down_blocks.1.resnets.0.conv_shortcut.weight', vl), 'encoder.down.1.block.0.nin_shortcut.weight');
      assert.equal(vaeKeyToOriginal('encoder.mid_block.attentions.0.to_out.0.weight', vl), 'encoder.mid.attn_1.proj_out.weight');
      assert.equal(vaeKeyToOriginal('decoder.conv_norm_out.weight', vl), 'decoder.norm_out.weight');
    } finally {
      unet.dispose();
      vae.dispose();
    }
  });
});

describe('text to image', { skip }, () => {
  const sd = tinyStableDiffusion(2);
  const base = { prompt: 'a man and a woman hiking', steps: 3, width: 32, height: 32 } as const;
  const pixels = (images: Tensor[]) => images.map((t) => Array.from(t.toFloat32Array()));

  test('the same seed gives the same image; image i of a batch is seed + i alone', async () => {
    const batch = await generate(sd, { ...base, seed: 10, batch: 2 });
    const again = await generate(sd, { ...base, seed: 10 });
    const second = await generate(sd, { ...base, seed: 11 });
    assert.deepEqual(batch.images[0]!.shape, [3, 32, 32]);
    const [b0, b1] = pixels(batch.images);
    const [a0] = pixels(again.images);
    const [s0] = pixels(second.images);
    const maxDiff = (x: number[], y: number[]) => Math.max(...x.map((v, i) => Math.abs(v - y[i]!)));
    assert.ok(maxDiff(b0!, a0!) < 1e-5, `batch image 0 vs seed 10 alone: ${maxDiff(b0!, a0!)}`);
    assert.ok(maxDiff(b1!, s0!) < 1e-5, `batch image 1 vs seed 11 alone: ${maxDiff(b1!, s0!)}`);
    assert.ok(maxDiff(b0!, b1!) > 1e-3, 'different seeds give different images');
    for (const r of [batch, again, second]) for (const t of r.images) t.dispose();
  });

  test('every scheduler runs, with guidance on and off', async () => {
    for (const scheduler of ['ddim', 'euler', 'dpmpp-2m', 'ddpm'] as const) {
      for (const guidance of [1, 5]) {
        const r = await generate(sd, { ...base, seed: 1, scheduler, guidance });
        const values = r.images[0]!.toFloat32Array();
        assert.ok(values.every((v) => v >= 0 && v <= 1), `${scheduler}: pixels in [0, 1]`);
        r.images[0]!.dispose();
      }
    }
  });

  test('bf16 gives the image fp32 gives, within bf16 precision', async () => {
    const fp32 = await generate(sd, { ...base, seed: 4 });
    const other = tinyStableDiffusion(2);
    applyPrecision(other.unet, 'bf16', 'cpu');
    applyPrecision(other.vae, 'bf16', 'cpu');
    const bf16 = await generate(other, { ...base, seed: 4 });
    const a = fp32.images[0]!.toFloat32Array();
    const b = bf16.images[0]!.toFloat32Array();
    const meanDiff = a.reduce((s, v, i) => s + Math.abs(v - b[i]!), 0) / a.length;
    assert.ok(meanDiff < 0.02, `mean pixel difference ${meanDiff}`);
    disposeStableDiffusion(other);
  });

  test('progress is reported and an abort stops between steps', async () => {
    const seen: number[] = [];
    const controller = new AbortController();
    await assert.rejects(
      generate(sd, { ...base, steps: 5, seed: 1, signal: controller.signal, onProgress: (p) => (seen.push(p.step), p.step === 2 && controller.abort()) }),
      { name: 'AbortError' },
    );
    assert.deepEqual(seen, [1, 2]);
  });

  test("the default size is the UNet's sample size times the VAE's scale factor", () => {
    // The tiny VAE halves once (factor 2) and the UNet's sample_size is 8: 16 px, not SD's 8× rule.
    assert.equal(sd.vae.scaleFactor, 2);
    const p = resolveParameters(sd, { prompt: 'x' });
    assert.deepEqual([p.width, p.height], [16, 16]);
  });

  test('bad settings are clear errors', async () => {
    await assert.rejects(generate(sd, { ...base, width: 31 }), /multiples of 2/);
    await assert.rejects(generate(sd, { ...base, steps: 0 }), /steps must be an integer from 1/);
    await assert.rejects(generate(sd, { ...base, scheduler: 'pndm' as never }), /unknown scheduler 'pndm'/);
    await assert.rejects(generate(sd, { ...base, seed: -1 }), /seed must be a non-negative integer/);
  });

  test('moa generate writes PNGs that carry their parameters', () => {
    const dir = join(work, 'cli-model');
    saveDiffusersFolder({ ...sd, defaultGuidance: 2 }, dir);
    const out = join(work, 'out', 'hike.png');
    const cli = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
    const run = spawnSync(process.execPath, [cli, 'generate', '--model', dir, '--prompt', 'a hike', '--steps', '2', '--width', '16', '--height', '16', '--seed', '9', '--batch', '2', '--precision', 'fp32', '--out', out, '--json'], {
      encoding: 'utf8',
    });
    assert.equal(run.status, 0, run.stderr);
    const report = JSON.parse(run.stdout) as { files: string[]; seed: number };
    assert.deepEqual(report.files, [join(work, 'out', 'hike-1.png'), join(work, 'out', 'hike-2.png')]);
    return readPngTextFile(report.files[1]!).then((text) => {
      const parameters = JSON.parse(text.parameters!) as Record<string, unknown>;
      assert.equal(parameters.seed, 10);
      assert.equal(parameters.prompt, 'a hike');
      assert.equal(parameters.precision, 'fp32');
      assert.equal(parameters.guidance, 2, "no --guidance: the model's default");
    });
  });

  test('moa generate: bad arguments exit 2, a missing model exits 1', () => {
    const cli = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
    const usage = spawnSync(process.execPath, [cli, 'generate', '--model', join(work, 'nope')], { encoding: 'utf8' });
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /required option '--prompt <text>'/);
    const noDefault = spawnSync(process.execPath, [cli, 'generate', '--prompt', 'x'], { encoding: 'utf8', env: { ...process.env, MOA_DEFAULT_MODEL: join(work, 'no-default') } });
    assert.equal(noDefault.status, 1);
    assert.match(noDefault.stderr, /no default model at .*pass --model/);
    const missing = spawnSync(process.execPath, [cli, 'generate', '--model', join(work, 'nope'), '--prompt', 'x'], { encoding: 'utf8' });
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /model not found/);
  });
});
