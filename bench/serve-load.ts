// `moa serve` under load: many generation requests at once against the real CLI server (a child
// process) on the tiny model, while a client keeps asking for status. Prints the status
// requests' latency percentiles (target: under 200 ms while generating), the peak resident
// memory of the server and of its worker, and how many jobs were accepted, refused (429) and
// finished.
//   npm run bench:serve -- [--jobs 50] [--steps 10] [--size 32] [--max-queue 8] [--interval 20]
// The worker uses libtorch's default threads (all cores; MOA_THREADS to choose).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { client, writeTinyServerModel } from '../test/server-fixture.js';
import { REPO_ROOT } from '../test/tiny-sd.js';
import { benchArgs } from './args.js';

const { values } = benchArgs({
  jobs: { type: 'string', default: '50' },
  steps: { type: 'string', default: '10' },
  size: { type: 'string', default: '32' },
  'max-queue': { type: 'string', default: '8' },
  interval: { type: 'string', default: '20' },
});
const jobs = Number(values.jobs);
const steps = Number(values.steps);
const size = Number(values.size);
const interval = Number(values.interval);

/** Peak resident memory of a process (VmHWM), in MiB; null once it has exited. */
function peakRssMiB(pid: number): number | null {
  try {
    const kb = Number(/VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);
    return +(kb / 1024).toFixed(1);
  } catch {
    return null;
  }
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;

const work = mkdtempSync(join(tmpdir(), 'moa-bench-serve-'));
const tiny = await writeTinyServerModel(work);
const cli = join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js');
const args = ['serve', '--model', tiny.model, '--moa', tiny.moa, '--precision', 'fp32', '--port', '0', '--out', join(work, 'out'), '--max-queue', values['max-queue']!, '--max-steps', String(steps), '--max-side', String(size)];
const server = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
const url = await new Promise<string>((resolve, reject) => {
  let out = '';
  server.stdout!.on('data', (chunk: Buffer) => {
    out += chunk.toString();
    const found = /listening on (http:\/\/\S+?)\/? /.exec(out);
    if (found) resolve(found[1]!);
  });
  server.once('exit', (code) => reject(new Error(`moa serve exited (${code}) before listening: ${out}`)));
});

try {
  const api = client(url);
  const health = (await api.get('/api/health')).body;
  const workerPid: number = health.worker.pid;

  const latencies: number[] = [];
  let failures = 0;
  let polling = true;
  const poller = (async () => {
    let i = 0;
    while (polling) {
      const path = i++ % 2 ? '/api/health' : '/api/jobs?limit=20';
      const t0 = performance.now();
      const r = await api.get(path);
      latencies.push(performance.now() - t0);
      if (r.status !== 200) failures++;
      await new Promise((r) => setTimeout(r, interval));
    }
  })();

  const t0 = performance.now();
  const responses = await Promise.all(Array.from({ length: jobs }, (_, i) => api.post('/api/jobs', { kind: 'generate', prompt: `a photo of a dog number ${i}`, steps, width: size, height: size, seed: i })));
  const accepted = responses.filter((r) => r.status === 202);
  const refused = responses.filter((r) => r.status === 429).length;
  const other = responses.length - accepted.length - refused;
  const finished = await Promise.all(accepted.map((r) => api.finished(r.body.id)));
  const seconds = (performance.now() - t0) / 1000;
  polling = false;
  await poller;

  const workerPeak = peakRssMiB(workerPid);
  const serverPeak = peakRssMiB(server.pid!);
  const sorted = [...latencies].sort((a, b) => a - b);
  const count = (status: string) => finished.filter((j) => j.status === status).length;
  const ms = (x: number) => +x.toFixed(1);
  const report = {
    jobs: { sent: jobs, accepted: accepted.length, refused429: refused, otherStatus: other, succeeded: count('succeeded'), failed: count('failed'), cancelled: count('cancelled') },
    generation: { steps, size, seconds: +seconds.toFixed(2), jobsPerSecond: +(accepted.length / seconds).toFixed(2) },
    statusLatencyMs: { requests: sorted.length, failed: failures, p50: ms(percentile(sorted, 50)), p90: ms(percentile(sorted, 90)), p99: ms(percentile(sorted, 99)), max: ms(sorted.at(-1)!) },
    peakRssMiB: { server: serverPeak, worker: workerPeak, total: serverPeak !== null && workerPeak !== null ? +(serverPeak + workerPeak).toFixed(1) : null },
    target: { statusP99Under200ms: percentile(sorted, 99) < 200 },
  };
  console.log(JSON.stringify(report, null, 2));
} finally {
  server.kill('SIGTERM');
  await new Promise((resolve) => server.once('exit', resolve));
  rmSync(work, { recursive: true, force: true });
}
