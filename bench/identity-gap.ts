// Does a MoA model use its subjects' identity? On world images, the diffusion loss on subject
// pixels with each subject's own crop against the crop of another identity of the same class
// (same image, noise and timestep), and with the router forced to the prior (the base model).
// If MoA carries identity, its own crops give the lowest loss inside the subjects. The loss is also
// split by noise level (timestep bands): generation settles a subject's look at the noisy steps,
// where the ε loss weighs the clean image least.
//   node dist/bench/identity-gap.js [--model models/world] [--moa FILE] [--world world]
//                                   [--ids image_ids_test.txt] [--batches 16] [--bands 3]
//                                   [--references]
// --references binds each identity's reference render (world/references/, as `moa eval` shows
// subjects) instead of its crop from the image itself, as the trainer does.
import { join } from 'node:path';
import { imageEmbeddings, type MoAConditioning, type SubjectBinding } from '../src/moa/index.js';
import { openImageEncoder, openMoA } from '../src/pipelines/load-moa.js';
import { openStableDiffusion } from '../src/pipelines/load.js';
import { DDPMScheduler } from '../src/schedulers/index.js';
import { batchMasks, disposeBatch, FfhqWildLoader, readImageIds, type Batch } from '../src/train/data/index.js';
import { Generator, noGrad, randint, randn, stack, tidy, type Tensor } from '../src/tensor/index.js';
import { referenceCrop } from '../src/train/pretrain/subject-pairs.js';
import { benchArgs } from './args.js';

const { values } = benchArgs({
  model: { type: 'string', default: 'models/world' },
  moa: { type: 'string' },
  world: { type: 'string', default: 'world' },
  ids: { type: 'string', default: 'image_ids_test.txt' },
  batches: { type: 'string', default: '16' },
  bands: { type: 'string', default: '3' },
  references: { type: 'boolean', default: false },
});
const wanted = Number(values.batches);
if (!Number.isInteger(wanted) || wanted < 1) {
  console.error(`identity-gap: --batches must be a whole number ≥ 1, not '${values.batches}'`);
  process.exit(2);
}
const bandCount = Number(values.bands);
if (!Number.isInteger(bandCount) || bandCount < 1 || bandCount > 20) {
  console.error(`identity-gap: --bands must be a whole number from 1 to 20, not '${values.bands}'`);
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
const VARIANTS: Variant[] = ['own crop', 'other identity', 'prior only'];
const sums: Record<Variant, { inside: number; outside: number }> = {
  'own crop': { inside: 0, outside: 0 },
  'other identity': { inside: 0, outside: 0 },
  'prior only': { inside: 0, outside: 0 },
};
/** Per timestep band: each variant's error summed inside the subjects, and their pixels. */
const bands = Array.from({ length: bandCount }, () => ({ pixels: 0, inside: { 'own crop': 0, 'other identity': 0, 'prior only': 0 } as Record<Variant, number> }));
const steps = scheduler.config.num_train_timesteps;
const bandOf = (t: number) => Math.min(bandCount - 1, Math.floor((t * bandCount) / steps));
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

/** Each subject's reference render, cropped as a view (grey backdrop), in the batch's order. */
async function referenceCrops(batch: Batch): Promise<Tensor[]> {
  return Promise.all(
    batch.subjects.flat().map((s) => {
      if (s.identity === undefined) throw new Error('identity-gap --references: the world names no identity for a subject');
      return referenceCrop(join(values.world!, 'references', `${s.identity}.png`), imageEncoder.config.image_size, { background: 'grey' });
    }),
  );
}

let done = 0;
for await (const batch of loader) {
  const references = values.references ? await referenceCrops(batch) : null;
  noGrad(() =>
    tidy(() => {
      const all = batch.subjects.flat();
      subjects += all.length;
      const latents = sd.vae.encode(batch.images).mean.mul(sd.vae.scalingFactor);
      const text = sd.textEncoder.forward(batch.inputIds).lastHiddenState;
      const B = latents.size(0);
      const eps = randn(latents.shape, { generator: noise });
      const t = randint(0, steps, [B], { generator: noise });
      const band = t.toNumbers().map(bandOf);
      const noisy = scheduler.addNoise(latents, eps, t);
      const target = scheduler.trainingTarget(latents, eps, t);
      const own = imageEmbeddings(imageEncoder, stack(references ?? all.map((s) => s.crop)));
      const other = otherIdentities(batch, own);
      const bind = (e: Tensor): SubjectBinding[][] => {
        let row = 0;
        return batch.subjects.map((list) => list.map((s) => ({ tokenIndex: s.tokenIndex, embedding: e.select(0, row++) })));
      };
      const h = latents.size(2);
      const masks = batchMasks(batch, h, h).unionMask;
      const inside = masks.sum().item() as number;
      masks.sum([1, 2, 3]).toNumbers().forEach((n, b) => (bands[band[b]!]!.pixels += n));
      insidePixels += inside;
      outsidePixels += B * h * h - inside;
      const run = (variant: Variant, moaExtras: Omit<MoAConditioning, 'timestep'>) => {
        const pred = sd.unet.forward(noisy, t, text, { moa: { timestep: t, ...moaExtras } });
        const err = pred.sub(target).square().mean(1, true);
        const perElement = err.mul(masks).sum([1, 2, 3]).toNumbers();
        perElement.forEach((e, b) => (bands[band[b]!]!.inside[variant] += e));
        const i = perElement.reduce((a, e) => a + e, 0);
        sums[variant].inside += i;
        sums[variant].outside += (err.sum().item() as number) - i;
      };
      run('own crop', { subjects: bind(own) });
      run('other identity', { subjects: bind(other) });
      run('prior only', { subjects: batch.subjects.map(() => []), forcePrior: true });
    }),
  );
  disposeBatch(batch);
  references?.forEach((t) => t.dispose());
  if (++done >= wanted) break;
}

console.log(`${values.moa ?? `${values.model}/moa.safetensors`} on ${values.ids}: ${done} batches, ${subjects} subjects (${swapped} given another identity of their word), bound through their ${values.references ? 'reference renders' : 'crops'}`);
console.log('variant            mse inside subjects   mse outside');
for (const [name, s] of Object.entries(sums)) {
  console.log(`${name.padEnd(18)} ${(s.inside / insidePixels).toFixed(4).padStart(10)}            ${(s.outside / outsidePixels).toFixed(4)}`);
}
if (bandCount > 1) {
  console.log('\n' + 'inside subjects, by timestep band'.padEnd(34) + VARIANTS.map((v) => v.padStart(16)).join('') + '    own vs other');
  bands.forEach((b, k) => {
    const [lo, hi] = [Math.round((k * steps) / bandCount), Math.round(((k + 1) * steps) / bandCount)];
    const m = VARIANTS.map((v) => (b.pixels ? b.inside[v] / b.pixels : NaN));
    const gap = b.pixels ? `${((1 - m[0]! / m[1]!) * 100).toFixed(1)} %` : '–';
    console.log(`t in [${lo}, ${hi})`.padEnd(34) + m.map((x) => x.toFixed(4).padStart(16)).join('') + gap.padStart(16));
  });
}
moa.dispose();
