// `moa train` killed for real (SIGKILL, at a random step after a checkpoint) and resumed with
// --resume repeats an uninterrupted run with the same seed, step for step; sample images taken
// on the way change nothing.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { saveDiffusersFolder } from '../src/io/diffusers.js';
import { loadSafetensors, saveSafetensors } from '../src/io/safetensors.js';
import { CLIPVisionModelWithProjection } from '../src/models/clip-vision.js';
import { disposeStableDiffusion } from '../src/pipelines/stable-diffusion.js';
import { Generator, tidy } from '../src/tensor/index.js';
import { latestCheckpoint } from '../src/train/checkpoint.js';
import type { StepRecord } from '../src/train/log.js';
import { writeFfhqFolder } from './ffhq-fixture.js';
import { REPO_ROOT, tinyStableDiffusion, TINY_VISION_CONFIG } from './tiny-sd.js';

const cli = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const tmp = mkdtempSync(join(tmpdir(), 'moa-train-resume-'));
after(() => rmSync(tmp, { recursive: true, force: true }));
const model = join(tmp, 'model');
const dataRoot = join(tmp, 'ffhq');
const STEPS = 16;
const CHECKPOINT_EVERY = 3;

before(async () => {
  await writeFfhqFolder(dataRoot, [
    { id: '10001', caption: 'a man and a woman sitting on a bench', words: ['man', 'woman'] },
    { id: '10002', caption: 'the girl and her grandfather at the beach', words: ['girl', 'grandfather'], colours: [[250, 200, 0], [0, 90, 200], [40, 40, 40]] },
    { id: '10003', caption: 'a boy standing next to a lady in a park', words: ['boy', 'lady'], colours: [[0, 0, 0], [255, 255, 255], [0, 160, 0]] },
  ]);
  // A tiny diffusers folder with its image encoder in <model>/image_encoder, as `moa train` reads it.
  const sd = tinyStableDiffusion(0);
  saveDiffusersFolder(sd, model);
  disposeStableDiffusion(sd);
  const encoderDir = join(model, 'image_encoder');
  mkdirSync(encoderDir, { recursive: true });
  const encoder = new CLIPVisionModelWithProjection(TINY_VISION_CONFIG, { generator: new Generator(5) });
  writeFileSync(join(encoderDir, 'config.json'), JSON.stringify({ ...TINY_VISION_CONFIG, model_type: 'clip_vision_model' }));
  saveSafetensors(join(encoderDir, 'model.safetensors'), tidy(() => encoder.stateDict()));
  encoder.dispose();
});

/** A config file for a run into `outputDir`: accumulation, warm-up, cosine, EMA and samples, so all of them must resume. */
function configFile(name: string): { file: string; outputDir: string } {
  const outputDir = join(tmp, name);
  const file = join(tmp, `${name}.json`);
  writeFileSync(
    file,
    JSON.stringify({
      model,
      dataRoot,
      outputDir,
      resolution: 32,
      cropSize: 28,
      batchSize: 2,
      steps: STEPS,
      lr: 1e-2,
      seed: 11,
      checkpointEvery: CHECKPOINT_EVERY,
      gradientAccumulation: 2,
      warmupSteps: 2,
      schedule: 'cosine',
      emaDecay: 0.9,
      sampleEvery: 5,
      sampleSteps: 2,
      moa: { imageEmbedDim: TINY_VISION_CONFIG.projection_dim },
    }),
  );
  return { file, outputDir };
}

type Logged = Omit<StepRecord, 'itPerSec'> & { kind?: string };

function readLog(outputDir: string): Logged[] {
  const path = join(outputDir, 'train-log.jsonl');
  if (!existsSync(path)) return [];
  // A line being appended right now may be incomplete: only whole lines count.
  const text = readFileSync(path, 'utf8');
  return text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Logged);
}

const stepRecords = (log: Logged[]) => log.filter((r) => r.kind === undefined);

/** Starts `moa train`, SIGKILLs it once its log reaches `killAt` and a checkpoint exists; resolves with how it ended. */
function trainAndKill(file: string, outputDir: string, killAt: number): Promise<{ signal: NodeJS.Signals | null; code: number | null; lastLogged: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cli, 'train', '--config', file], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let lastLogged = 0;
    const timer = setInterval(() => {
      const steps = stepRecords(readLog(outputDir));
      lastLogged = steps.at(-1)?.step ?? 0;
      if (lastLogged >= killAt && latestCheckpoint(outputDir)) {
        child.kill('SIGKILL');
        clearInterval(timer);
      }
    }, 5);
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearInterval(timer);
      resolve({ signal, code, lastLogged, stderr });
    });
  });
}

test('moa train killed with SIGKILL and resumed repeats the uninterrupted run', async () => {
  // A step after the first checkpoint, and early enough that the run cannot finish first.
  const killAt = CHECKPOINT_EVERY + 1 + Math.floor(Math.random() * (STEPS - CHECKPOINT_EVERY - 5));
  const killed = configFile('killed');
  const ended = await trainAndKill(killed.file, killed.outputDir, killAt);
  console.log(`killed at step ${ended.lastLogged} (aimed at ${killAt}); latest checkpoint ${latestCheckpoint(killed.outputDir)}`);
  assert.equal(ended.signal, 'SIGKILL', `the run should have been killed, not ended (code ${ended.code}): ${ended.stderr}`);
  assert.ok(ended.lastLogged < STEPS);

  const resumed = spawnSync(process.execPath, [cli, 'train', '--config', killed.file, '--resume'], { encoding: 'utf8' });
  assert.equal(resumed.status, 0, resumed.stderr);
  const full = configFile('full');
  const uninterrupted = spawnSync(process.execPath, [cli, 'train', '--config', full.file], { encoding: 'utf8' });
  assert.equal(uninterrupted.status, 0, uninterrupted.stderr);

  // Each step once in the resumed run's log (the steps redone after the checkpoint replaced the
  // killed run's), every term within 1e-6 of the uninterrupted run's.
  const a = stepRecords(readLog(killed.outputDir));
  const b = stepRecords(readLog(full.outputDir));
  assert.deepEqual(a.map((r) => r.step), Array.from({ length: STEPS }, (_, i) => i + 1));
  assert.deepEqual(b.map((r) => r.step), a.map((r) => r.step));
  for (const [i, r] of a.entries()) {
    for (const k of ['loss', 'diffusion', 'router', 'object', 'lr', 'gradNorm'] as const) {
      assert.ok(Math.abs(r[k] - b[i]![k]) <= 1e-6, `step ${r.step} ${k}: resumed ${r[k]}, uninterrupted ${b[i]![k]}`);
    }
  }
  // The final MoA weights too.
  const wa = loadSafetensors(join(killed.outputDir, 'moa.safetensors')).tensors;
  const wb = loadSafetensors(join(full.outputDir, 'moa.safetensors')).tensors;
  assert.deepEqual(Object.keys(wa).sort(), Object.keys(wb).sort());
  for (const [k, t] of Object.entries(wa)) assert.ok(t.allclose(wb[k]!, { rtol: 0, atol: 1e-6 }), `weight ${k}`);
  [...Object.values(wa), ...Object.values(wb)].forEach((t) => t.dispose());

  // Samples at steps 5, 10, 15 and the end in both; the log records them.
  const samples = (log: Logged[]) => log.filter((r) => r.kind === 'sample').map((r) => r.step);
  assert.deepEqual(samples(readLog(full.outputDir)), [5, 10, 15, 16]);
  assert.deepEqual(samples(readLog(killed.outputDir)).slice(-2), [15, 16]);
  assert.ok(existsSync(join(full.outputDir, 'samples', 'step-00000016.png')));
  // Progress in a plain log: step, every loss term, it/s and the ETA; and where the samples went.
  assert.match(uninterrupted.stderr, /train: 16\/16 loss \d\.\d{4} \(diffusion \d\.\d{4}, router [-\d.e+]+, subject routing [-\d.e+]+, object [-\d.e+]+\) subjects \d\.\d{4} lr [\d.e+-]+ [\d.]+ it\/s ETA 0s/);
  assert.match(uninterrupted.stderr, /train: step 5: wrote .*step-00000005\.png and its routing maps/);
});
