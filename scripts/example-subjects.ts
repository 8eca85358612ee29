// Writes examples/<word>.png: the reference renders of six held-out identities of the default
// world, with the subject's mask as alpha, so `moa generate --subject man=examples/man.png` cuts
// each reference to its subject and greys the backdrop, as MoA's training crops are.
//   npx tsc -p tsconfig.json && node dist/scripts/example-subjects.js
import { join } from 'node:path';
import sharp from 'sharp';
import { DEFAULT_WORLD } from '../src/eval/world-settings.js';
import { planWorld, renderReference } from '../src/world/index.js';

const EXAMPLES: Record<string, string> = { man: 'p00503', woman: 'p00525', girl: 'p00548', boy: 'p00555', dog: 'a00278', cat: 'a00273' };
const out = join(import.meta.dirname, '..', '..', 'examples');
const plan = planWorld(DEFAULT_WORLD);

for (const [word, id] of Object.entries(EXAMPLES)) {
  const identity = plan.people.find((p) => p.id === id);
  if (!identity) throw new Error(`identity ${id} is not in the default world`);
  if (!plan.pools.test.includes(identity)) throw new Error(`identity ${id} is not held out`);
  const ref = renderReference(identity, { size: DEFAULT_WORLD.size });
  const rgba = Buffer.alloc(ref.width * ref.height * 4);
  for (let i = 0; i < ref.width * ref.height; i++) {
    rgba.set(ref.rgb.subarray(3 * i, 3 * i + 3), 4 * i);
    rgba[4 * i + 3] = ref.mask[i] ? 255 : 0;
  }
  await sharp(rgba, { raw: { width: ref.width, height: ref.height, channels: 4 } }).png().toFile(join(out, `${word}.png`));
  console.log(`examples/${word}.png: ${id}`);
}
