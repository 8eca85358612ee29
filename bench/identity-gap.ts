// Does a MoA model use its subjects' identity? On world images, the diffusion loss on subject
// pixels with each subject's own crop against the crop of another identity of the same class
// (same image, noise and timestep), and with the router forced to the prior (the base model).
// If MoA carries identity, its own crops give the lowest loss inside the subjects.
//   node dist/bench/identity-gap.js [--model models/world] [--moa FILE] [--world world]
//                                   [--ids image_ids_test.txt] [--batches 16]
import { imageEmbeddings, type MoAConditioning, type SubjectBinding } from '../src/moa/index.js';
import { openImageEncoder, openMoA } from '../src/pipelines/load-moa.js';
import { openStableDiffusion } from '../src/pipelines/load.js';
import { DDPMScheduler } from '../src/schedulers/index.js';
import { batchMasks, disposeBatch, FfhqWildLoader, readImageIds, type Batch } from '../src/train/data/index.js';
import { Generator, noGrad, randint, randn, stack, tidy, type Tensor } from '../src/tensor/index.js';
import { benchArgs } from './args.js';

const { values } = benchArgs({
  model: { type: 'string', default: 'models/world' },
  moa: { type: 'string' },
  world: { type: 'string', default: 'world' },
  ids: { type: 'string', default: 'image_ids_test.txt' },
  batches: { type: 'string', default: '16' },
});
const wanted = Number(values.batches);
if (!Number.isInteger(wanted) || wanted < 1) {
  console.error(`identity-gap: --batches must be a whole number ≥ 1, not '${values.batches}'`);
  process.exit(2);
}
const sd = openStableDiffusion(values.model!);
const imageEncoder = openImageEncoder(`${values.model}/image_encoder`);
const moa = openMoA(sd, values.moa ?? `${values.model}/moa.safetensors`, { imageEncoder });
const scheduler = new DDPMScheduler(sd.schedulerConfig);
const resolution = 64;
const factor = 2 ** (sd.vae.config.blockOutChannels.length - 1);
const ids = await readImageIds(values.world!, values.ids);
const loader = new FfhqWildLoader(values.world!, ids, sd.tokenizer, {
  batchSize: 16,
  seed: 1,
  resolution,
  latentResolution: resolution / factor,
  cropSize: imageEncoder.config.image_size,
  dropCaption: 0,
  keepSubject: 1,
});
const noise = new Generator(7);

type Variant = 'own crop' | 'other identity' | 'prior only';
const sums: Record<Variant, { inside: number; outside: number }> = {
  'own crop': { inside: 0, outside: 0 },
  'other identity': { inside: 0, outside: 0 },
  'prior only': { inside: 0, outside: 0 },
};
let insidePixels = 0;
let outsidePixels = 0;
let swapped = 0;
let subjects = 0;

/** For each subject, the embedding of another identity bound to the same word in this batch (or its own when there is none). */
function otherIdentities(batch: Batch, embeddings: Tensor): Tensor {
  const flat = batch.subjects.flatMap((list, b) => list.map((s) => ({ word: Number(batch.inputIds.select(0, b).select(0, s.tokenIndex).item()), identity: s.identity })));
  const rows = flat.map((s, i) => {
    const j = flat.findIndex((o, k) => k !== i && o.word === s.word && o.identity !== s.identity);
    if (j >= 0) swapped++;
    return j >= 0 ? j : i;
  });
  return stack(rows.map((r) => embeddings.select(0, r)));
}

let done = 0;
for await (const batch of loader) {
  noGrad(() =>
    tidy(() => {
      const all = batch.subjects.flat();
      subjects += all.length;
      const latents = sd.vae.encode(batch.images).mean.mul(sd.vae.scalingFactor);
      const text = sd.textEncoder.forward(batch.inputIds).lastHiddenState;
      const B = latents.size(0);
      const eps = randn(latents.shape, { generator: noise });
      const t = randint(0, scheduler.config.num_train_timesteps, [B], { generator: noise });
      const noisy = scheduler.addNoise(latents, eps, t);
      const target = scheduler.trainingTarget(latents, eps, t);
      const own = imageEmbeddings(imageEncoder, stack(all.map((s) => s.crop)));
      const other = otherIdentities(batch, own);
      const bind = (e: Tensor): SubjectBinding[][] => {
        let row = 0;
        return batch.subjects.map((list) => list.map((s) => ({ tokenIndex: s.tokenIndex, embedding: e.select(0, row++) })));
      };
      const h = latents.size(2);
      const masks = batchMasks(batch, h, h).unionMask;
      const inside = masks.sum().item() as number;
      insidePixels += inside;
      outsidePixels += B * h * h - inside;
      const run = (variant: Variant, moaExtras: Omit<MoAConditioning, 'timestep'>) => {
        const pred = sd.unet.forward(noisy, t, text, { moa: { timestep: t, ...moaExtras } });
        const err = pred.sub(target).square().mean(1, true);
        const i = err.mul(masks).sum().item() as number;
        sums[variant].inside += i;
        sums[variant].outside += (err.sum().item() as number) - i;
      };
      run('own crop', { subjects: bind(own) });
      run('other identity', { subjects: bind(other) });
      run('prior only', { subjects: batch.subjects.map(() => []), forcePrior: true });
    }),
  );
  disposeBatch(batch);
  if (++done >= wanted) break;
}

console.log(`${values.moa ?? `${values.model}/moa.safetensors`} on ${values.ids}: ${done} batches, ${subjects} subjects (${swapped} given another identity of their word)`);
console.log('variant            mse inside subjects   mse outside');
for (const [name, s] of Object.entries(sums)) {
  console.log(`${name.padEnd(18)} ${(s.inside / insidePixels).toFixed(4).padStart(10)}            ${(s.outside / outsidePixels).toFixed(4)}`);
}
moa.dispose();
