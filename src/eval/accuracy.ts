// How far the judges can be trusted: their accuracy on freshly rendered held-out images (held-out
// identities, unseen caption templates), measured the way `moa eval` uses them: segment, find the
// regions, match the caption's subjects to them, read each subject's attributes and the scene.
import { TEST_TEMPLATES } from '../world/captions.js';
import { sampleScene } from '../world/sample.js';
import { CLASSES } from '../world/vocab.js';
import { judgeIdentities } from './judge-data.js';
import type { Judges } from './judges.js';
import { classAttributes, classIndex, PIXEL_CLASSES } from './labels.js';
import { scoreSubject, type SubjectScore } from './metrics.js';
import { renderJudgeReference, renderJudgeScene } from './render.js';
import type { Identity } from '../world/identity.js';
import type { Tensor } from '../tensor/tensor.js';

export interface AccuracyOptions {
  /** The judges' identity draw (their training seed and identity count): held-out ones are read. */
  seed: number;
  identities: number;
  images: number;
  references: number;
  /** First scene index (different indices give different held-out scenes). */
  firstIndex: number;
  /** An attribute is reliable when read right at least this often end to end. Default 0.9. */
  reliableThreshold?: number;
  /** Applied to each rendered scene before the judges read it (e.g. a VAE round trip): an image [3, S, S] in [0, 1]. */
  transform?: (image: Tensor) => Tensor;
  onProgress?: (done: number, total: number) => void;
}

export interface JudgeAccuracy {
  images: number;
  references: number;
  segmentation: {
    /** Share of all pixels given their class. */
    pixelAccuracy: number;
    /** Share of subjects' pixels given their subject's class. */
    subjectPixelAccuracy: number;
    /** Intersection over union per pixel class, and their mean. */
    iou: Record<string, number>;
    meanIoU: number;
  };
  subjects: {
    count: number;
    /** The class the attribute recogniser reads in the subject's crop (true mask) is its class. */
    classAccuracy: number;
    /** The class the segmenter gives most of the subject's pixels is its class. */
    segmenterClassAccuracy: number;
    /** The caption's subject is matched to a found subject overlapping it with IoU ≥ 0.5. */
    found: number;
  };
  attributes: {
    /** Per attribute, read from the region the segmenter found (subjects found only). */
    endToEnd: Record<string, number>;
    /** Per attribute, read from the subject's true mask. */
    trueMasks: Record<string, number>;
    /** Per attribute, on references (front view, plain background). */
    references: Record<string, number>;
    meanEndToEnd: number;
  };
  /** Share of subjects found with every attribute right; with every reliable attribute right. */
  identityMatch: { all: number; reliable: number };
  /**
   * Per number of subjects in the scene, the subjects scored as `moa eval` scores a generation's
   * (found: a region of the class matched to it; identity match: scoreSubject on the reliable
   * attributes): what a generator that drew exactly the world's images would reach.
   */
  asEvaluated: Record<string, { subjects: number; found: number; identityMatch: number }>;
  /** Attributes read right at least reliableThreshold of the time end to end. */
  reliableAttributes: string[];
  scene: { kind: number; time: number };
}

class Tally {
  readonly right = new Map<string, number>();
  readonly total = new Map<string, number>();
  add(key: string, ok: boolean): void {
    this.total.set(key, (this.total.get(key) ?? 0) + 1);
    this.right.set(key, (this.right.get(key) ?? 0) + (ok ? 1 : 0));
  }
  rates(): Record<string, number> {
    return Object.fromEntries([...this.total].map(([k, n]) => [k, round(this.right.get(k)! / n)]));
  }
}

const round = (x: number) => Math.round(x * 10000) / 10000;
const rate = (a: number, b: number) => (b === 0 ? 0 : round(a / b));

function iouOf(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let inter = 0;
  let union = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] && b[i]) inter++;
    if (a[i] || b[i]) union++;
  }
  return union === 0 ? 0 : inter / union;
}

function byCount(subjects: readonly { count: number; identity: Identity; matched: { attributes: Record<string, string> } | null }[], reliable: readonly string[]): JudgeAccuracy['asEvaluated'] {
  const counts = [...new Set(subjects.map((s) => s.count))].sort((a, b) => a - b);
  return Object.fromEntries(
    counts.map((n) => {
      const scores = subjects.filter((s) => s.count === n).map((s) => scoreSubject(s.matched, s.identity, reliable));
      const share = (ok: (x: SubjectScore) => boolean) => rate(scores.filter(ok).length, scores.length);
      return [String(n), { subjects: scores.length, found: share((x) => x.found), identityMatch: share((x) => x.identityMatch) }];
    }),
  );
}

export function measureJudges(judges: Judges, o: AccuracyOptions): JudgeAccuracy {
  const size = judges.config.imageSize;
  const minPixels = judges.config.minRegionPixels;
  const pool = judgeIdentities(o.seed, o.identities, 'test');
  const classes = PIXEL_CLASSES.length;
  const inter = new Array<number>(classes).fill(0);
  const union = new Array<number>(classes).fill(0);
  let [pixels, pixelsRight, subjectPixels, subjectPixelsRight] = [0, 0, 0, 0];
  let [subjects, classRight, segmenterClassRight, found, allRight, reliableRight] = [0, 0, 0, 0, 0, 0];
  let [kindRight, timeRight] = [0, 0];
  const endToEnd = new Tally();
  const trueMasks = new Tally();
  const onReferences = new Tally();
  const perSubject: { cls: (typeof CLASSES)[number]; read: Record<string, string> | null; truth: Record<string, string> }[] = [];
  const asEvaluated: { count: number; identity: Identity; matched: { attributes: Record<string, string> } | null }[] = [];
  const total = o.images + o.references;
  for (let i = 0; i < o.images; i++) {
    const spec = sampleScene(o.seed, o.firstIndex + i, { pool, templates: TEST_TEMPLATES });
    const r = renderJudgeScene(spec, size);
    const image = o.transform ? o.transform(r.image) : r.image;
    try {
      const expected = spec.subjects.map((s) => classIndex(s.identity.class));
      const { judgement, subjects: read } = judges.readSubjects(image, expected);
      kindRight += judgement.scene.kind === r.scene.kind ? 1 : 0;
      timeRight += judgement.scene.time === r.scene.time ? 1 : 0;
      for (let p = 0; p < r.classMap.length; p++) {
        const [t, q] = [r.classMap[p]!, judgement.classMap[p]!];
        pixels++;
        if (t === q) pixelsRight++;
        if (t !== 0) {
          subjectPixels++;
          if (t === q) subjectPixelsRight++;
        }
        for (let c = 0; c < classes; c++) {
          if (t === c && q === c) inter[c]!++;
          if (t === c || q === c) union[c]!++;
        }
      }
      const trueReads = judges.recognise(
        spec.subjects.flatMap((_, k) => {
          const mask = Uint8Array.from(r.segMap, (l) => (l === k + 1 ? 1 : 0));
          return mask.reduce((a, b) => a + b, 0) >= minPixels ? [{ image: r.image, mask, box: r.segments[k]!.bbox, classIndex: expected[k]! }] : [];
        }),
      );
      let t = 0;
      spec.subjects.forEach((s, k) => {
        const mask = Uint8Array.from(r.segMap, (l) => (l === k + 1 ? 1 : 0));
        const own = mask.reduce((a, b) => a + b, 0);
        if (own < minPixels) return;
        subjects++;
        // The class most of its pixels get.
        const votes = new Array<number>(classes).fill(0);
        for (let p = 0; p < mask.length; p++) if (mask[p]) votes[judgement.classMap[p]!]!++;
        if (votes.indexOf(Math.max(...votes)) === expected[k]) segmenterClassRight++;
        const truth = s.identity.attributes;
        const fromTrue = trueReads[t++]!;
        if (fromTrue.classIndex === expected[k]) classRight++;
        for (const name of classAttributes(s.identity.class)) trueMasks.add(name, fromTrue.attributes[name] === truth[name]);
        const match = read[k];
        const isFound = match !== null && match !== undefined && iouOf(match.mask, mask) >= 0.5;
        if (isFound) {
          found++;
          for (const name of classAttributes(s.identity.class)) endToEnd.add(name, match.attributes[name] === truth[name]);
        }
        perSubject.push({ cls: s.identity.class, read: isFound ? match.attributes : null, truth });
        asEvaluated.push({ count: spec.subjects.length, identity: s.identity, matched: match ?? null });
      });
    } finally {
      r.image.dispose();
      if (image !== r.image) image.dispose();
    }
    o.onProgress?.(i + 1, total);
  }
  for (let i = 0; i < o.references; i++) {
    const identity = pool[i % pool.length]!;
    const r = renderJudgeReference(identity, size);
    try {
      const [read] = judges.recognise([{ image: r.image, mask: r.mask, box: r.bbox, classIndex: classIndex(identity.class) }]);
      for (const name of classAttributes(identity.class)) onReferences.add(name, read!.attributes[name] === identity.attributes[name]);
    } finally {
      r.image.dispose();
    }
    o.onProgress?.(o.images + i + 1, total);
  }
  const endToEndRates = endToEnd.rates();
  const threshold = o.reliableThreshold ?? 0.9;
  const reliable = Object.entries(endToEndRates)
    .filter(([, v]) => v >= threshold)
    .map(([k]) => k);
  for (const s of perSubject) {
    if (!s.read) continue;
    const names = classAttributes(s.cls);
    if (names.every((n) => s.read![n] === s.truth[n])) allRight++;
    if (names.filter((n) => reliable.includes(n)).every((n) => s.read![n] === s.truth[n])) reliableRight++;
  }
  const iou = Object.fromEntries(PIXEL_CLASSES.map((name, c) => [name, rate(inter[c]!, union[c]!)]));
  const present = PIXEL_CLASSES.filter((_, c) => union[c]! > 0);
  const attributeRates = Object.values(endToEndRates);
  return {
    images: o.images,
    references: o.references,
    segmentation: {
      pixelAccuracy: rate(pixelsRight, pixels),
      subjectPixelAccuracy: rate(subjectPixelsRight, subjectPixels),
      iou,
      meanIoU: round(present.reduce((a, n) => a + iou[n]!, 0) / Math.max(1, present.length)),
    },
    subjects: { count: subjects, classAccuracy: rate(classRight, subjects), segmenterClassAccuracy: rate(segmenterClassRight, subjects), found: rate(found, subjects) },
    attributes: {
      endToEnd: endToEndRates,
      trueMasks: trueMasks.rates(),
      references: onReferences.rates(),
      meanEndToEnd: round(attributeRates.reduce((a, b) => a + b, 0) / Math.max(1, attributeRates.length)),
    },
    identityMatch: { all: rate(allRight, subjects), reliable: rate(reliableRight, subjects) },
    // moa eval decides with the judges' stored reliable attributes; fresh judges have none yet.
    asEvaluated: byCount(asEvaluated, judges.config.reliableAttributes.length > 0 ? judges.config.reliableAttributes : reliable),
    reliableAttributes: reliable,
    scene: { kind: rate(kindRight, o.images), time: rate(timeRight, o.images) },
  };
}
