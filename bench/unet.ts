// One SD1.5 UNet step in one precision mode (random weights): seconds per forward and peak memory,
// as one JSON line. bench/unet-all.ts runs the modes the pipeline uses and compares with matmul.
//   node --expose-gc dist/bench/unet.js [--mode fp32|fp32-cl|bf16|bf16-cl|bf16-weights-cl] [--size 64] [--batch 2] [--steps 3]
// fp32: float32 weights and math. bf16: autocast({ device: 'cpu', dtype: 'bfloat16' }).
// -cl: weights (and so activations) channels-last. bf16-weights-cl: the model converted to bfloat16.
import { autocast, Generator, liveTensors, noGrad, randn } from '../src/tensor/index.js';
import { SD15_UNET_CONFIG, UNet2DConditionModel } from '../src/models/unet/index.js';
import { benchArgs } from './args.js';

const { values } = benchArgs({
  mode: { type: 'string', default: 'bf16-cl' },
  size: { type: 'string', default: '64' },
  batch: { type: 'string', default: '2' },
  steps: { type: 'string', default: '3' },
});
const mode = values.mode!;
const size = Number(values.size);
const batch = Number(values.batch);
const steps = Number(values.steps);
const gb = (kb: number) => (kb / 1024 / 1024).toFixed(2);

let t0 = performance.now();
const unet = new UNet2DConditionModel(SD15_UNET_CONFIG, { generator: new Generator(0) });
const built = (performance.now() - t0) / 1000;
if (mode.endsWith('-cl')) unet.to({ memoryFormat: 'channels_last' });
if (mode.startsWith('bf16-weights')) unet.to({ dtype: 'bfloat16' });
unet.eval();
const rssModel = process.memoryUsage().rss / 1024; // KB, as maxRSS

const g = new Generator(0);
const sample = randn([batch, 4, size, size], { generator: g });
const context = randn([batch, 77, 768], { generator: g });
const useAutocast = mode === 'bf16' || mode === 'bf16-cl';
const step = () => noGrad(() => (useAutocast ? autocast({ device: 'cpu', dtype: 'bfloat16' }, () => unet.forward(sample, 500, context)) : unet.forward(sample, 500, context)));

const live = liveTensors().count;
const times: number[] = [];
for (let i = 0; i < steps; i++) {
  t0 = performance.now();
  step().dispose();
  times.push((performance.now() - t0) / 1000);
}
(globalThis as { gc?: () => void }).gc?.();
console.log(
  JSON.stringify({
    mode,
    size,
    batch,
    constructS: +built.toFixed(2),
    stepsS: times.map((t) => +t.toFixed(3)),
    bestS: +Math.min(...times).toFixed(3),
    rssBeforeStepsGB: +gb(rssModel),
    peakRssGB: +gb(process.resourceUsage().maxRSS),
    liveTensorDelta: liveTensors().count - live,
  }),
);
