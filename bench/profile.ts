// bench/profile: where one SD1.5 UNet step (bf16 weights, channels-last, 64×64 latent, batch 2)
// spends its time and its FLOPs, by kind of op, for the base UNet and with MoA active; and the
// least time the step could take if every FLOP ran at the best throughput this machine reached in
// the same run (a 2048³ matmul and a 3×3 convolution at SD1.5's widest layer, both bf16).
//   npm run bench:profile [-- --json] [-- --steps 2]
// FLOPs come from the shapes of the real forward (convolutions, linears, attention's two batched
// matmuls), not from a constant, so the sum also checks the 803 GFLOP per latent of MOA_SPEC §5.
// Times are exclusive (an attention's own linears count as linear, not as attention).
import { Conv2d } from '../src/nn/conv.js';
import { Linear } from '../src/nn/linear.js';
import { GroupNorm, LayerNorm } from '../src/nn/norm.js';
import { Attention } from '../src/models/layers/attention.js';
import { SD15_UNET_CONFIG, UNet2DConditionModel } from '../src/models/unet/index.js';
import { BasicTransformerBlock, GEGLU, Transformer2DModel } from '../src/models/unet/transformer.js';
import { ResnetBlock2D } from '../src/models/layers/resnet.js';
import { MoA, MoAAttention, type MoAConditioning } from '../src/moa/index.js';
import { matmulGflops } from '../src/cli/doctor.js';
import { Generator, getThreads, noGrad, randn, type Tensor, tensor, tidy } from '../src/tensor/index.js';
import { benchArgs } from './args.js';

const { values } = benchArgs({ steps: { type: 'string', default: '2' }, json: { type: 'boolean', default: false } });
const steps = Number(values.steps);
const [batch, size] = [2, 64];

type Kind = 'conv' | 'linear' | 'attention core' | 'norm' | 'moa mixing' | 'geglu' | 'resnet rest' | 'transformer rest';
interface Tally {
  seconds: number;
  flops: number;
  exps: number;
}
let tallies = new Map<Kind, Tally>();
const stack: { kind: Kind; children: number }[] = [];

/** Wraps a class's forward so each call adds its exclusive time and its FLOPs to its kind. */
function profile<T extends { forward(...args: never[]): Tensor }>(cls: { prototype: T }, kind: Kind, count: (self: T, args: Parameters<T['forward']>) => { flops: number; exps?: number }) {
  const forward = cls.prototype.forward as (...args: unknown[]) => Tensor;
  (cls.prototype as { forward: unknown }).forward = function (this: T, ...args: unknown[]) {
    stack.push({ kind, children: 0 });
    const start = performance.now();
    const out = forward.apply(this, args);
    const total = (performance.now() - start) / 1000;
    const frame = stack.pop()!;
    if (stack.length > 0) stack[stack.length - 1]!.children += total;
    const t = tallies.get(kind) ?? { seconds: 0, flops: 0, exps: 0 };
    const { flops, exps = 0 } = count(this, args as Parameters<T['forward']>);
    tallies.set(kind, { seconds: t.seconds + total - frame.children, flops: t.flops + flops, exps: t.exps + exps });
    return out;
  };
}

profile(Conv2d, 'conv', (c, [x]) => {
  const [n, , h, w] = x.shape as number[];
  const [oh, ow] = [0, 1].map((i) => Math.floor(([h, w][i]! + 2 * c.padding[i]! - c.dilation[i]! * (c.kernelSize[i]! - 1) - 1) / c.stride[i]!) + 1);
  return { flops: 2 * n! * c.outChannels * oh! * ow! * (c.inChannels / c.groups) * c.kernelSize[0] * c.kernelSize[1] };
});
profile(Linear, 'linear', (l, [x]) => ({ flops: 2 * (x.numel / l.inFeatures) * l.inFeatures * l.outFeatures }));
profile(Attention, 'attention core', (a, [hidden, context]) => {
  const [b, lq] = hidden.shape as number[];
  const lk = (context ?? hidden).size(1);
  return { flops: 4 * b! * lq! * lk * a.innerDim, exps: b! * a.heads * lq! * lk };
});
profile(GroupNorm, 'norm', () => ({ flops: 0 }));
profile(LayerNorm, 'norm', () => ({ flops: 0 }));
profile(MoAAttention, 'moa mixing', () => ({ flops: 0 }));
// What the blocks do around those ops (exclusive of them): GEGLU's gelu and product; a ResNet's
// SiLUs, casts, time-embedding add and residual; a transformer's norms' casts, residual adds and
// token layout changes.
profile(GEGLU, 'geglu', () => ({ flops: 0 }));
profile(ResnetBlock2D, 'resnet rest', () => ({ flops: 0 }));
profile(BasicTransformerBlock, 'transformer rest', () => ({ flops: 0 }));
profile(Transformer2DModel, 'transformer rest', () => ({ flops: 0 }));

const unet = new UNet2DConditionModel(SD15_UNET_CONFIG, { empty: true });
noGrad(() => unet.parameters().forEach((p) => p.fill_(0.01)));
unet.to({ memoryFormat: 'channels_last' }).to({ dtype: 'bfloat16' }).eval();
const moa = new MoA(unet, {}, { generator: new Generator(0) }).eval();
const g = new Generator(0);
const sample = randn([batch, 4, size, size], { generator: g });
const text = randn([batch, 77, 768], { generator: g });
const conditioning: MoAConditioning = { subjects: Array.from({ length: batch }, () => []), timestep: tensor(new Array<number>(batch).fill(500)) };

/** The best of `steps` steps, with the tallies of that step. */
function measure(withMoA: boolean) {
  if (withMoA) moa.install();
  else moa.uninstall();
  let best: { seconds: number; tallies: Map<Kind, Tally> } | null = null;
  for (let i = 0; i <= steps; i++) {
    tallies = new Map();
    const start = performance.now();
    noGrad(() => tidy(() => unet.forward(sample, 500, text, withMoA ? { moa: conditioning } : {}))).dispose();
    const seconds = (performance.now() - start) / 1000;
    if (i > 0 && (!best || seconds < best.seconds)) best = { seconds, tallies }; // step 0 warms up
  }
  return best!;
}

/** Best throughput of a 3×3 bf16 channels-last convolution at SD1.5's 64×64×320 layer. */
function convGflops(): number {
  const conv = new Conv2d(320, 320, 3, { padding: 1, generator: new Generator(1) });
  conv.to({ memoryFormat: 'channels_last' }).to({ dtype: 'bfloat16' });
  const x = randn([batch, 320, size, size], { generator: g }).bfloat16().contiguous('channels_last');
  const times = Array.from({ length: 6 }, () => {
    const start = performance.now();
    noGrad(() => conv.forward(x)).dispose();
    return (performance.now() - start) / 1000;
  }).slice(1);
  return (2 * batch * 320 * size * size * 320 * 9) / Math.min(...times) / 1e9;
}

/** Exps per second of bf16 exp over a 4096×4096 block: the least softmax can cost. */
function expRate(): number {
  const x = randn([4096, 4096], { generator: g }).bfloat16();
  const times = Array.from({ length: 6 }, () => {
    const start = performance.now();
    x.exp().dispose();
    return (performance.now() - start) / 1000;
  }).slice(1);
  return 4096 * 4096 / Math.min(...times);
}

const base = measure(false);
const withMoA = measure(true);
tallies = new Map();
const peaks = { matmul: matmulGflops(2048, 'bfloat16'), conv: convGflops(), expsPerS: expRate() };
const peak = Math.max(peaks.matmul, peaks.conv);

function summary(name: string, m: { seconds: number; tallies: Map<Kind, Tally> }) {
  const kinds = [...m.tallies].map(([kind, t]) => ({ kind, seconds: +t.seconds.toFixed(3), gflop: +(t.flops / 1e9).toFixed(1), gflops: t.flops > 0 ? Math.round(t.flops / 1e9 / t.seconds) : null }));
  const counted = kinds.reduce((s, k) => s + k.seconds, 0);
  const gflop = kinds.reduce((s, k) => s + k.gflop, 0);
  const exps = [...m.tallies.values()].reduce((s, t) => s + t.exps, 0);
  const floorS = gflop / peak + exps / peaks.expsPerS;
  return { name, seconds: +m.seconds.toFixed(3), gflop: +gflop.toFixed(1), gflopPerLatent: +(gflop / batch).toFixed(1), otherSeconds: +(m.seconds - counted).toFixed(3), softmaxExps: exps, floorS: +floorS.toFixed(3), kinds };
}
const rows = [summary('base', base), summary('moa', withMoA)];
const report = {
  threads: getThreads(),
  latent: size,
  batch,
  peaks: { matmulGflops: Math.round(peaks.matmul), convGflops: Math.round(peaks.conv), gigaExpsPerS: +(peaks.expsPerS / 1e9).toFixed(2) },
  rows,
  moaOverBase: { seconds: +(withMoA.seconds / base.seconds).toFixed(3), flops: +(rows[1]!.gflop / rows[0]!.gflop).toFixed(3) },
};

if (values.json) console.log(JSON.stringify(report, null, 2));
else {
  console.log(`bench/profile — SD1.5 UNet step, bf16 weights channels-last, ${size}×${size} latent, batch ${batch}, ${report.threads} threads, best of ${steps}`);
  console.log(`peaks measured now: matmul 2048³ ${report.peaks.matmulGflops} GFLOP/s, conv 3×3 ${report.peaks.convGflops} GFLOP/s, exp ${report.peaks.gigaExpsPerS} G/s`);
  for (const r of rows) {
    console.log(`\n${r.name}: ${r.seconds} s, ${r.gflop} GFLOP (${r.gflopPerLatent} per latent), ${r.softmaxExps.toExponential(2)} softmax exps`);
    for (const k of r.kinds) console.log(`  ${k.kind.padEnd(16)} ${k.seconds.toFixed(3).padStart(7)} s  ${k.gflop.toFixed(1).padStart(7)} GFLOP` + (k.gflops === null ? '' : `  ${k.gflops} GFLOP/s`));
    console.log(`  ${'other'.padEnd(16)} ${r.otherSeconds.toFixed(3).padStart(7)} s  (the UNet's own glue: embeddings, skip concatenations, up/down sampling)`);
    console.log(`  floor: ${r.floorS} s (every FLOP at ${Math.round(peak)} GFLOP/s, every softmax exp at ${report.peaks.gigaExpsPerS} G/s, nothing else)`);
  }
  console.log(`\nMoA / base: ${report.moaOverBase.seconds}× the time, ${report.moaOverBase.flops}× the FLOPs`);
}
