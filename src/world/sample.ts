// Drawing a scene spec: a kind, a time, 1–4 identities from a pool, and a placement where every
// subject stays mostly visible (tried again with other placements until it does).
import type { Identity } from './identity.js';
import { Random, STREAM } from './random.js';
import { type SceneSpec, type SubjectPlacement, subjectVisibility, xRange } from './render.js';
import { FACINGS, SCENE_KINDS, TIMES } from './vocab.js';

export interface SampleSceneOptions {
  /** Identities to draw subjects from (without repeats within an image). */
  pool: readonly Identity[];
  /** Caption templates to draw from. */
  templates: readonly string[];
  /** Largest subject count. Default 4. */
  maxSubjects?: number;
}

/** Probability of 1, 2, 3, 4 subjects. */
const SUBJECT_COUNT_WEIGHTS = [0.3, 0.35, 0.2, 0.15];
/** A subject must keep this share of its pixels and this many pixels at 64 px. */
const MIN_VISIBLE_SHARE = 0.6;
const MIN_VISIBLE_PIXELS = 24;
const TRIES = 40;

/** The spec of image `index` of the world `seed`; the same arguments give the same spec. */
export function sampleScene(seed: number, index: number, options: SampleSceneOptions): SceneSpec {
  const { pool, templates, maxSubjects = 4 } = options;
  if (pool.length === 0) throw new Error('sampleScene: the identity pool is empty');
  if (templates.length === 0) throw new Error('sampleScene: no caption templates');
  const random = new Random(seed, STREAM.image, index);
  const kind = random.pick(SCENE_KINDS);
  const time = random.pick(TIMES);
  const sceneSeed = random.int(0, 0x7fffffff);
  const template = random.pick(templates);
  let n = Math.min(1 + random.weighted(SUBJECT_COUNT_WEIGHTS.slice(0, maxSubjects)), pool.length);
  const chosen: Identity[] = [];
  const taken = new Set<number>();
  while (chosen.length < n) {
    const i = random.int(0, pool.length - 1);
    if (taken.has(i)) continue;
    taken.add(i);
    chosen.push(pool[i]!);
  }
  // Place until everyone shows; with no luck, drop the last subject and try again.
  for (;;) {
    for (let attempt = 0; attempt < TRIES; attempt++) {
      const placements: SubjectPlacement[] = chosen.slice(0, n).map((identity) => {
        const depth = random.float();
        const [lo, hi] = xRange(identity.class, depth);
        return { identity, x: random.range(lo, hi), depth, facing: random.pick(FACINGS), stride: random.range(0.2, 1) };
      });
      // Caption order is left to right.
      placements.sort((a, b) => a.x - b.x);
      const spec: SceneSpec = { kind, time, seed: sceneSeed, subjects: placements, template };
      const { full, visible } = subjectVisibility(spec);
      if (visible.every((v, i) => v >= MIN_VISIBLE_PIXELS && v >= MIN_VISIBLE_SHARE * full[i]!)) return spec;
    }
    if (n === 1) throw new Error(`sampleScene: no placement of a single subject shows it in image ${index} (this is a bug in the world's layout)`);
    n--;
  }
}
