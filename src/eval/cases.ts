// What `moa eval` asks the model for: prompts with 1 to 4 subjects, each a held-out identity of
// the world the model was trained on, in captions of the unseen test templates. The subjects of
// one prompt have different classes, so each binds to its own class word ("a man and a dog ...").
import { buildCaption, TEST_TEMPLATES } from '../world/captions.js';
import type { Identity } from '../world/identity.js';
import { type WorldPlan } from '../world/plan.js';
import { Random } from '../world/random.js';
import { CLASSES, SCENE_KINDS, type SceneKind, type SubjectClass, TIMES, type TimeOfDay } from '../world/vocab.js';

export interface EvalCase {
  index: number;
  /** The subjects, in caption order (left to right). */
  identities: Identity[];
  prompt: string;
  kind: SceneKind;
  time: TimeOfDay;
  template: string;
  /** The generation seed every variant of this case uses. */
  seed: number;
  /** For swap cases: another held-out identity of the first subject's class. */
  swap: Identity | null;
}

export interface EvalCaseOptions {
  /** Prompts per subject count. */
  prompts: number;
  /** Subject counts (each 1 to 4). */
  counts: readonly number[];
  /** Seeds the choices and the generation seeds. */
  seed: number;
  /** How many prompts of each count also get a swap (the first ones). */
  swapsPerCount: number;
}

/** The eval's cases from a world's held-out identities (plan.pools.test). */
export function evalCases(plan: Pick<WorldPlan, 'pools'>, o: EvalCaseOptions): EvalCase[] {
  const held = plan.pools.test;
  const byClass = new Map<SubjectClass, Identity[]>(CLASSES.map((c) => [c, held.filter((p) => p.class === c)]));
  const available = CLASSES.filter((c) => byClass.get(c)!.length > 0);
  if (!Number.isInteger(o.prompts) || o.prompts < 1) throw new RangeError(`prompts must be a positive integer, not ${o.prompts}`);
  const cases: EvalCase[] = [];
  for (const n of o.counts) {
    if (!Number.isInteger(n) || n < 1 || n > 4) throw new RangeError(`a subject count must be 1 to 4, not ${n}`);
    if (n > available.length) throw new Error(`${n} subjects of different classes need held-out identities of ${n} classes; this world holds out only ${available.join(', ') || 'none'}`);
    for (let p = 0; p < o.prompts; p++) {
      const index = cases.length;
      const random = new Random(o.seed, 0xe7a1, n, p);
      const classes: SubjectClass[] = [];
      while (classes.length < n) {
        const c = random.pick(available);
        if (!classes.includes(c)) classes.push(c);
      }
      const identities = classes.map((c) => random.pick(byClass.get(c)!));
      const kind = random.pick(SCENE_KINDS);
      const time = random.pick(TIMES);
      const template = random.pick(TEST_TEMPLATES);
      const prompt = buildCaption(template, identities, kind, time, random.int(0, 0x7fffffff)).text;
      const others = byClass.get(identities[0]!.class)!.filter((x) => x !== identities[0]);
      // Drawn for every case, kept for the first swapsPerCount: so --swaps changes no case's seed.
      const swapCandidate = others.length > 0 ? random.pick(others) : null;
      const swap = p < o.swapsPerCount ? swapCandidate : null;
      cases.push({ index, identities, prompt, kind, time, template, seed: random.int(0, 0x7fffffff), swap });
    }
  }
  return cases;
}
