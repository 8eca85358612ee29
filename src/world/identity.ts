// Identities: a class and a set of named, visible attributes. A world draws a fixed number of
// them from its seed, all different, and holds a fraction of each class out for testing.
import { Random, STREAM } from './random.js';
import { CLASS_ATTRIBUTES, CLASSES, isPersonClass, type SubjectClass } from './vocab.js';

export type Split = 'train' | 'test';

export interface Identity {
  /** `p00042` for people, `a00007` for animals (pets), numbered in the order drawn. */
  id: string;
  class: SubjectClass;
  split: Split;
  /** Attribute name → value, as listed in CLASS_ATTRIBUTES for the class. */
  attributes: Record<string, string>;
}

export interface SampleIdentitiesOptions {
  /** Fraction of each class held out for testing, in [0, 1). Default 0.2. */
  heldOutFraction?: number;
  /** Relative frequency of each class. Default: every person class 1, dog and cat 1 (pets a third). */
  classWeights?: Partial<Record<SubjectClass, number>>;
}

/** Draws one identity's attributes for `cls` from `random`, keeping the attributes' rules. */
export function drawAttributes(cls: SubjectClass, random: Random): Record<string, string> {
  const allowed = CLASS_ATTRIBUTES[cls];
  const a: Record<string, string> = {};
  for (const [name, values] of Object.entries(allowed)) {
    // 'none' values are set by the rules below, not drawn.
    const drawable = name === 'hair_colour' || name === 'marking_colour' ? values.filter((v) => v !== 'none') : values;
    a[name] = random.pick(drawable);
  }
  if (isPersonClass(cls)) {
    if (a.hair === 'bald') a.hair_colour = 'none';
    if (a.hair === 'bun') a.hat = 'none';
  } else if (a.fur_pattern === 'plain') a.marking_colour = 'none';
  else while (a.marking_colour === a.fur_colour) a.marking_colour = random.pick(allowed.marking_colour!.filter((v) => v !== 'none'));
  return a;
}

/** Checks an identity's attributes against its class's vocabulary (for identities from outside). */
export function checkIdentity(identity: Identity): void {
  const allowed = CLASS_ATTRIBUTES[identity.class];
  if (!allowed) throw new Error(`identity '${identity.id}': unknown class '${identity.class}' (one of ${CLASSES.join(', ')})`);
  for (const [name, values] of Object.entries(allowed)) {
    const v = identity.attributes[name];
    if (v === undefined || !values.includes(v)) throw new Error(`identity '${identity.id}': attribute '${name}' must be one of ${values.join(', ')}, not ${JSON.stringify(v)}`);
  }
  const extra = Object.keys(identity.attributes).filter((name) => !(name in allowed));
  if (extra.length > 0) throw new Error(`identity '${identity.id}': a ${identity.class} has no attribute ${extra.map((e) => `'${e}'`).join(', ')} (it has ${Object.keys(allowed).join(', ')})`);
}

function signature(cls: SubjectClass, attributes: Record<string, string>): string {
  return `${cls}:${Object.keys(attributes)
    .sort()
    .map((k) => attributes[k])
    .join('/')}`;
}

/**
 * `count` different identities drawn from `seed`. Within each class the last
 * round(n·heldOutFraction) drawn are held out ('test'; at least one when the fraction is above 0
 * and the class has two or more), the rest are 'train'.
 */
export function sampleIdentities(seed: number, count: number, options: SampleIdentitiesOptions = {}): Identity[] {
  const { heldOutFraction = 0.2, classWeights = {} } = options;
  if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative integer, not ${seed}`);
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`identity count must be a positive integer, not ${count}`);
  if (!(heldOutFraction >= 0 && heldOutFraction < 1)) throw new RangeError(`held-out fraction must be in [0, 1), not ${heldOutFraction}`);
  const weights = CLASSES.map((c) => classWeights[c] ?? 1);
  if (weights.some((w) => !(w >= 0)) || weights.every((w) => w === 0)) throw new RangeError('class weights must be ≥ 0 and not all 0');
  const seen = new Set<string>();
  const drawn: { class: SubjectClass; attributes: Record<string, string> }[] = [];
  for (let i = 0; i < count; i++) {
    const random = new Random(seed, STREAM.identity, i);
    const cls = CLASSES[random.weighted(weights)]!;
    // Redraw until different from every identity so far; the class's space runs to thousands.
    for (let attempt = 0; ; attempt++) {
      const attributes = drawAttributes(cls, random);
      const key = signature(cls, attributes);
      if (!seen.has(key)) {
        seen.add(key);
        drawn.push({ class: cls, attributes });
        break;
      }
      if (attempt > 2000) throw new RangeError(`cannot draw ${count} different identities: the '${cls}' class ran out of attribute combinations; ask for fewer identities`);
    }
  }
  const numbers = { person: 0, pet: 0 };
  const identities: Identity[] = drawn.map((d) => {
    const person = isPersonClass(d.class);
    const n = person ? numbers.person++ : numbers.pet++;
    return { id: `${person ? 'p' : 'a'}${String(n).padStart(5, '0')}`, class: d.class, split: 'train', attributes: d.attributes };
  });
  for (const cls of CLASSES) {
    const members = identities.filter((x) => x.class === cls);
    let held = Math.round(members.length * heldOutFraction);
    if (heldOutFraction > 0 && members.length >= 2) held = Math.max(1, held);
    held = Math.min(held, members.length - 1);
    for (const x of members.slice(members.length - Math.max(0, held))) x.split = 'test';
  }
  return identities;
}
