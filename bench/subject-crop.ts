// How close a reference embeds to the crops MoA is trained on, whole or cut to its subject.
// Training crops are cut to the subject's box with noise around it; a reference render shows the
// whole frame. For identities with two training crops each: cosine similarity and nearest-crop
// identification (top-1 among all of them) of crop against crop, whole reference against crop,
// and reference cut to its subject (grey, as subjectEmbedding does with a mask) against crop.
//   node dist/bench/subject-crop.js [--world world] [--encoder models/world/image_encoder] [--identities 100]
import { rgbTensor } from '../src/eval/render.js';
import { readWorldSettings } from '../src/eval/world-settings.js';
import { imageEmbeddings } from '../src/moa/subject-encoder.js';
import { openImageEncoder } from '../src/pipelines/load-moa.js';
import { readImageIds, readSampleFiles, subjectCrop } from '../src/train/data/ffhq-wild.js';
import { Generator, noGrad, tensor, tidy, type Tensor } from '../src/tensor/index.js';
import { planWorld, renderReference } from '../src/world/index.js';
import { benchArgs } from './args.js';

const { values } = benchArgs({
  world: { type: 'string', default: 'world' },
  encoder: { type: 'string', default: 'models/world/image_encoder' },
  identities: { type: 'string', default: '100' },
});
const wanted = Number(values.identities);
const encoder = openImageEncoder(values.encoder!);
const side = encoder.config.image_size;
const generator = new Generator(1);

/** A unit-length embedding as a plain array. */
function embed(images: Tensor, masks: Tensor | null, cropToSubject: boolean): number[] {
  const e = noGrad(() => tidy(() => imageEmbeddings(encoder, images, { masks, cropToSubject }).reshape(-1)));
  const v = Array.from(e.toFloat32Array());
  e.dispose();
  const n = Math.hypot(...v);
  return v.map((x) => x / n);
}

// Two training crops per identity, exactly as the trainer cuts them.
const crops = new Map<string, number[][]>();
const complete = () => [...crops.values()].filter((c) => c.length === 2).length;
for (const id of await readImageIds(values.world!, 'image_ids_train.txt')) {
  if (complete() >= wanted) break;
  const { annotation, image, map } = await readSampleFiles(values.world!, id);
  const labels = tensor(map.labels, { shape: [1, 1, map.height, map.width] });
  for (const segment of annotation.segments) {
    const key = String(segment.identity);
    const list = crops.get(key) ?? [];
    if (list.length === 2) continue;
    const crop = subjectCrop(image, labels, segment, side, { background: 'noise', generator });
    if (!crop) continue;
    list.push(embed(crop.unsqueeze(0), null, false));
    crops.set(key, list);
    crop.dispose();
  }
  [image, labels].forEach((t) => t.dispose());
}
const ids = [...crops.keys()].filter((k) => crops.get(k)!.length === 2);

// Each identity's reference render, whole and cut to its subject.
const people = new Map(planWorld(readWorldSettings(values.world!)).people.map((p) => [p.id, p]));
const whole = new Map<string, number[]>();
const cut = new Map<string, number[]>();
for (const id of ids) {
  const ref = renderReference(people.get(id)!, { size: 128 });
  const image = rgbTensor(ref.rgb, 128);
  const mask = tensor(Float32Array.from(ref.mask), { shape: [1, 1, 128, 128] });
  whole.set(id, embed(image, mask, false));
  cut.set(id, embed(image, mask, true));
  [image, mask].forEach((t) => t.dispose());
}

const dot = (a: number[], b: number[]) => a.reduce((s, x, j) => s + x * b[j]!, 0);
function compare(name: string, query: (id: string) => number[]) {
  let top1 = 0;
  let same = 0;
  for (const id of ids) {
    const scores = ids.map((other) => dot(query(id), crops.get(other)![1]!));
    same += scores[ids.indexOf(id)]!;
    if (scores.indexOf(Math.max(...scores)) === ids.indexOf(id)) top1++;
  }
  console.log(JSON.stringify({ case: name, identities: ids.length, cosineSameIdentity: +(same / ids.length).toFixed(3), top1: +(top1 / ids.length).toFixed(3) }));
}
compare('training crop vs another training crop', (id) => crops.get(id)![0]!);
compare('whole reference vs training crop', (id) => whole.get(id)!);
compare('reference cut to its subject vs training crop', (id) => cut.get(id)!);
