// bench/train: MoA training on the CPU: optimizer steps per second and peak resident memory, for
// the tiny test model (32 px) and for SD1.5 size at 512 px (random weights: SD1.5's UNet, VAE and
// text encoder with a CLIP ViT-L/14 vision encoder), batch 1, fp32 and bf16 autocast.
//   npm run bench:train [-- --only tiny|sd15] [--steps N] [--sd15-steps N] [--json]
// Each case runs in its own process, so its peak memory is its own. The parent watches each
// child's resident memory and stops it past a limit (the memory available when the case starts,
// less 1 GiB; --limit-gb to set it), so a case that does not fit is reported instead of bringing
// the machine down. One warm-up step, then timed steps; a case's figures are from the timed ones.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CLIP_VIT_L14_VISION_CONFIG, CLIPVisionModelWithProjection } from '../src/models/clip-vision.js';
import { buildStableDiffusion, disposeStableDiffusion, SD15_CONFIGS, type StableDiffusion } from '../src/pipelines/stable-diffusion.js';
import { Generator, getThreads } from '../src/tensor/index.js';
import { parseTrainConfig } from '../src/train/config.js';
import { Trainer } from '../src/train/trainer.js';
import { writeFfhqFolder } from '../test/ffhq-fixture.js';
import { CLIP_VOCAB, clipTokenizer, tinyStableDiffusion, TINY_VISION_CONFIG } from '../test/tiny-sd.js';
import { benchArgs } from './args.js';

const { values } = benchArgs({
  case: { type: 'string' },
  only: { type: 'string' },
  steps: { type: 'string', default: '20' },
  'sd15-steps': { type: 'string', default: '3' },
  'limit-gb': { type: 'string' },
  json: { type: 'boolean', default: false },
});

const GiB = 1024 ** 3;
const CASES = ['tiny-fp32', 'tiny-bf16', 'sd15-bf16', 'sd15-fp32'] as const;
type CaseName = (typeof CASES)[number];

interface CaseResult {
  case: CaseName;
  resolution: number;
  precision: 'fp32' | 'bf16';
  threads: number;
  moaParameters: number;
  buildS: number;
  warmupS: number;
  stepsS: number[];
  stepsPerSec: number;
  /** CPU seconds per wall second over the timed steps: near the thread count when the cores were this process's own. */
  cpuPerWall: number;
  /** CPU seconds (all threads) per timed step: what a step costs whatever else runs on the machine. */
  cpuSPerStep: number;
  rssAfterBuildGB: number;
  peakRssGB: number;
  losses: number[];
}

const gb = (bytes: number) => +(bytes / GiB).toFixed(2);

// ---- a child: one case ----

async function runCase(name: CaseName, timed: number): Promise<CaseResult> {
  if (!existsSync(CLIP_VOCAB)) throw new Error(`bench/train needs the CLIP vocabulary at ${CLIP_VOCAB}`);
  const sd15 = name.startsWith('sd15');
  const precision = name.endsWith('bf16') ? 'bf16' : 'fp32';
  const resolution = sd15 ? 512 : 32;
  const work = mkdtempSync(join(tmpdir(), 'moa-bench-train-'));
  try {
    const dataRoot = join(work, 'ffhq');
    await writeFfhqFolder(
      dataRoot,
      [
        { id: '10001', caption: 'a man and a woman sitting on a bench', words: ['man', 'woman'] },
        { id: '10002', caption: 'the girl and her grandfather at the beach', words: ['girl', 'grandfather'], colours: [[250, 200, 0], [0, 90, 200], [40, 40, 40]] },
      ],
      resolution,
    );
    let t0 = performance.now();
    let sd: StableDiffusion;
    let imageEncoder: CLIPVisionModelWithProjection;
    if (sd15) {
      const generator = new Generator(0);
      sd = buildStableDiffusion(SD15_CONFIGS, clipTokenizer(), { generator });
      imageEncoder = new CLIPVisionModelWithProjection(CLIP_VIT_L14_VISION_CONFIG, { generator });
    } else {
      sd = tinyStableDiffusion(0);
      imageEncoder = new CLIPVisionModelWithProjection(TINY_VISION_CONFIG, { generator: new Generator(5) });
    }
    const config = parseTrainConfig({
      dataRoot,
      outputDir: join(work, 'out'),
      resolution,
      cropSize: sd15 ? 224 : 28,
      batchSize: 1,
      steps: 1 + timed,
      lr: 1e-5,
      precision,
      seed: 0,
      moa: sd15 ? {} : { imageEmbedDim: TINY_VISION_CONFIG.projection_dim },
    });
    const trainer = await Trainer.create({ sd, imageEncoder, config, log: false });
    const buildS = (performance.now() - t0) / 1000;
    const rssAfterBuild = process.memoryUsage().rss;
    try {
      t0 = performance.now();
      const losses = [(await trainer.trainStep()).loss];
      const warmupS = (performance.now() - t0) / 1000;
      const stepsS: number[] = [];
      const cpu0 = process.cpuUsage();
      const wall0 = performance.now();
      for (let i = 0; i < timed; i++) {
        t0 = performance.now();
        losses.push((await trainer.trainStep()).loss);
        stepsS.push((performance.now() - t0) / 1000);
      }
      const wall = (performance.now() - wall0) / 1000;
      const cpu = process.cpuUsage(cpu0);
      return {
        case: name,
        resolution,
        precision,
        threads: getThreads(),
        moaParameters: trainer.moa.moaParameters().reduce((n, p) => n + p.numel, 0),
        buildS: +buildS.toFixed(2),
        warmupS: +warmupS.toFixed(3),
        stepsS: stepsS.map((s) => +s.toFixed(3)),
        stepsPerSec: +(timed / wall).toFixed(3),
        cpuPerWall: +((cpu.user + cpu.system) / 1e6 / wall).toFixed(2),
        cpuSPerStep: +((cpu.user + cpu.system) / 1e6 / timed).toFixed(3),
        rssAfterBuildGB: gb(rssAfterBuild),
        peakRssGB: gb(process.resourceUsage().maxRSS * 1024),
        losses: losses.map((l) => +l.toFixed(4)),
      };
    } finally {
      trainer.dispose();
      disposeStableDiffusion(sd);
      imageEncoder.dispose();
    }
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

// ---- the parent: every case in its own process, memory watched ----

/** A /proc/meminfo or /proc/<pid>/status field in bytes, or null where there is no /proc. */
function procKb(file: string, field: string): number | null {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(file, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

type Outcome = { ok: true; result: CaseResult } | { ok: false; case: CaseName; reason: string; peakRssGB: number | null };

function runChild(name: CaseName, timed: number, limitBytes: number | null): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), '--case', name, '--steps', String(timed)], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let peak = 0;
    let overLimit = false;
    const watch = setInterval(() => {
      const rss = procKb(`/proc/${child.pid}/status`, 'VmRSS');
      if (rss === null) return;
      peak = Math.max(peak, rss);
      if (limitBytes !== null && rss > limitBytes && !overLimit) {
        overLimit = true;
        child.kill('SIGKILL');
      }
    }, 200);
    child.on('exit', (code, signal) => {
      clearInterval(watch);
      const observed = peak ? gb(peak) : null;
      if (overLimit) return resolve({ ok: false, case: name, reason: `does not fit: resident memory passed the ${gb(limitBytes!)} GB limit (stopped)`, peakRssGB: observed });
      if (code === 0) {
        try {
          return resolve({ ok: true, result: JSON.parse(stdout.trim().split('\n').pop()!) as CaseResult });
        } catch {
          // fall through: report what the child said
        }
      }
      const said = stderr.trim().split('\n').slice(-3).join(' | ') || `exit ${code ?? signal}`;
      resolve({ ok: false, case: name, reason: signal === 'SIGKILL' ? `killed (likely out of memory): ${said}` : `failed: ${said}`, peakRssGB: observed });
    });
  });
}

function table(outcomes: Outcome[]): string {
  const head = ['case', 'image', 'precision', 'steps/s', 'timed steps (s)', 'warm-up (s)', 'peak RSS', 'CPU/wall', 'CPU s/step'];
  const rows = outcomes.flatMap((o) => {
    if (!o.ok) return [];
    const r = o.result;
    return [[r.case, `${r.resolution} px`, r.precision, r.stepsPerSec.toFixed(3), r.stepsS.map((x) => x.toFixed(2)).join(' '), r.warmupS.toFixed(2), `${r.peakRssGB} GB`, r.cpuPerWall.toFixed(2), r.cpuSPerStep.toFixed(2)]];
  });
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => '  ' + cells.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd();
  const failed = outcomes.flatMap((o) => (o.ok ? [] : [`  ${o.case}: ${o.reason}${o.peakRssGB === null ? '' : ` (highest resident memory seen ${o.peakRssGB} GB)`}`]));
  return [line(head), ...rows.map(line), ...failed].join('\n');
}

async function main(): Promise<void> {
  if (values.case) {
    const name = values.case as CaseName;
    if (!CASES.includes(name)) throw new Error(`--case must be one of ${CASES.join(', ')}, not '${name}'`);
    console.log(JSON.stringify(await runCase(name, Number(values.steps))));
    return;
  }
  const only = values.only;
  if (only !== undefined && only !== 'tiny' && only !== 'sd15') throw new Error(`--only must be 'tiny' or 'sd15', not '${only}'`);
  const cases = CASES.filter((c) => only === undefined || c.startsWith(only));
  const loadBefore = loadavg();
  const outcomes: Outcome[] = [];
  for (const name of cases) {
    const available = procKb('/proc/meminfo', 'MemAvailable');
    const limit = values['limit-gb'] !== undefined ? Number(values['limit-gb']) * GiB : available === null ? null : available - GiB;
    const timed = Number(name.startsWith('sd15') ? values['sd15-steps'] : values.steps);
    if (!values.json) process.stderr.write(`bench/train: ${name} (${timed} timed steps after 1 warm-up; memory limit ${limit === null ? 'none' : `${gb(limit)} GB`})…\n`);
    outcomes.push(await runChild(name, timed, limit));
  }
  const loadAfter = loadavg();
  const load = { before: loadBefore.map((x) => +x.toFixed(2)), after: loadAfter.map((x) => +x.toFixed(2)) };
  if (values.json) {
    console.log(JSON.stringify({ load, outcomes }, null, 2));
    return;
  }
  const any = outcomes.find((o) => o.ok);
  console.log(`bench/train — MoA training steps on the CPU, batch 1, ${any?.ok ? any.result.threads : '?'} threads (1 warm-up step, then timed steps)`);
  console.log(table(outcomes));
  for (const o of outcomes) if (o.ok) console.log(`  ${o.result.case}: MoA parameters ${o.result.moaParameters.toLocaleString('en')}, built in ${o.result.buildS} s, RSS after build ${o.result.rssAfterBuildGB} GB, losses ${o.result.losses.join(' ')}`);
  console.log(`load average (1, 5, 15 min): before ${load.before.join(' ')}, after ${load.after.join(' ')}; CPU/wall well under the thread count means other processes shared the cores`);
}

await main();
