// One SD1.5 UNet step with MoA against the base UNet step, in one run: 64×64 latent, batch 2,
// bfloat16 weights channels-last (the pipeline's `bf16`, bench/unet.ts's 'bf16-weights-cl').
//   node --expose-gc dist/bench/moa.js [--size 64] [--batch 2] [--rounds 3]
// Cases, interleaved round by round so outside load hits them alike (best of the rounds):
//   base            MoA uninstalled: the base UNet
//   moa-off         MoA installed, no extras.moa (must cost what base costs)
//   moa-no-subjects MoA with an empty subject list: both experts in every layer
//   moa-subjects    the last batch element binds 2 subjects (as a guided batch: [unconditional, prompt])
// Base weights are uninitialised and then filled with a constant (their values do not change the
// time; garbage memory could hold NaNs or denormals that would); MoA's routers and fusion are
// initialised normally, so everything is finite.
import { SD15_UNET_CONFIG, UNet2DConditionModel } from '../src/models/unet/index.js';
import { MoA, type MoAConditioning } from '../src/moa/index.js';
import { Generator, liveTensors, noGrad, randn, tensor, tidy } from '../src/tensor/index.js';
import { benchArgs } from './args.js';

const { values } = benchArgs({
  size: { type: 'string', default: '64' },
  batch: { type: 'string', default: '2' },
  rounds: { type: 'string', default: '3' },
});
const size = Number(values.size);
const batch = Number(values.batch);
const rounds = Number(values.rounds);
const gb = (kb: number) => +(kb / 1024 / 1024).toFixed(2);

let t0 = performance.now();
const unet = new UNet2DConditionModel(SD15_UNET_CONFIG, { empty: true });
noGrad(() => unet.parameters().forEach((p) => p.fill_(0.01)));
unet.to({ memoryFormat: 'channels_last' });
unet.to({ dtype: 'bfloat16' });
unet.eval();
const moa = new MoA(unet, {}, { generator: new Generator(0) }).eval(); // its tensors follow the UNet's dtype
const built = (performance.now() - t0) / 1000;

const g = new Generator(0);
const sample = randn([batch, 4, size, size], { generator: g });
const text = randn([batch, 77, 768], { generator: g });
const timestep = tensor(new Array<number>(batch).fill(500));
const subject = (seed: number) => randn([768], { generator: new Generator(seed) });
const none: MoAConditioning = { subjects: Array.from({ length: batch }, () => []), timestep };
const bound: MoAConditioning = {
  subjects: Array.from({ length: batch }, (_, i) =>
    i === batch - 1
      ? [
          { tokenIndex: 5, embedding: subject(1) },
          { tokenIndex: 9, embedding: subject(2) },
        ]
      : [],
  ),
  timestep,
};

const cases: [string, () => void][] = [
  ['base', () => moa.uninstall()],
  ['moa-off', () => moa.install()],
  ['moa-no-subjects', () => moa.install()],
  ['moa-subjects', () => moa.install()],
];
const extrasOf = (name: string) => (name === 'moa-no-subjects' ? { moa: none } : name === 'moa-subjects' ? { moa: bound } : {});
const times = new Map<string, number[]>(cases.map(([name]) => [name, []]));

const live = liveTensors().count;
for (let round = 0; round < rounds; round++) {
  for (const [name, prepare] of cases) {
    prepare();
    t0 = performance.now();
    noGrad(() => tidy(() => unet.forward(sample, 500, text, extrasOf(name)))).dispose();
    times.get(name)!.push((performance.now() - t0) / 1000);
  }
}
(globalThis as { gc?: () => void }).gc?.();

const best = (name: string) => Math.min(...times.get(name)!);
const base = best('base');
for (const [name] of cases) {
  console.log(JSON.stringify({ case: name, size, batch, stepsS: times.get(name)!.map((t) => +t.toFixed(3)), bestS: +best(name).toFixed(3), ratio: +(best(name) / base).toFixed(3) }));
}
console.log(
  JSON.stringify({
    summary: 'MoA step / base step (best of rounds; target ≤ 1.25)',
    noSubjects: +(best('moa-no-subjects') / base).toFixed(3),
    subjects: +(best('moa-subjects') / base).toFixed(3),
    off: +(best('moa-off') / base).toFixed(3),
    moaParameters: moa.moaParameters().reduce((n, p) => n + p.numel, 0),
    constructS: +built.toFixed(2),
    peakRssGB: gb(process.resourceUsage().maxRSS),
    liveTensorDelta: liveTensors().count - live,
  }),
);
