// The eval report: per case what each variant made of it, and per variant the measures summed
// up (identity fidelity by subject count, context, disentanglement, prior preservation, routing).
import type { Judges } from './judges.js';
import { mean, r4, wilsonInterval, type RoutingOverlap, type SubjectScore, type SwapChange } from './metrics.js';

export const EVAL_FORMAT = 'moa-eval';
export const EVAL_VERSION = 1;

export type VariantName = 'moa' | 'moa-no-router' | 'moa-ablation' | 'base';

/** What the MoA model with its routers, the "no router" ablation, the ablation file and the base model are called in the report. */
export const VARIANT_DESCRIPTIONS: Record<VariantName, string> = {
  moa: 'MoA with its learned routing',
  'moa-no-router': "MoA with every pixel routed to the personal expert (routing: 'personal')",
  'moa-ablation': 'the --ablation-moa weights with their learned routing',
  base: 'the base model from the text alone',
};

export interface VariantResult {
  scene: { kind: string; time: string };
  /** Per subject in caption order. */
  subjects: SubjectScore[];
  /** Mean personal routing against the subjects found (learned routing only). */
  routing: RoutingOverlap | null;
  /** The first subject swapped for another identity, same seed. */
  swap?: { change: SwapChange; subject: SubjectScore };
  /** Mean |difference| from the base model of this variant without subjects, same seed. */
  prior?: number;
}

export interface CaseRecord {
  index: number;
  subjects: number;
  prompt: string;
  seed: number;
  scene: { kind: string; time: string };
  template: string;
  identities: { id: string; class: string; attributes: Record<string, string> }[];
  swap: { id: string; class: string; attributes: Record<string, string> } | null;
  results: Partial<Record<VariantName, VariantResult>>;
}

export interface IdentitySummary {
  subjects: number;
  /** Share of subjects found (a region of their class). */
  found: number | null;
  /** Mean share of attributes right, a subject not found counting 0. */
  attributeAccuracy: number | null;
  /** The same over found subjects only. */
  attributeAccuracyFound: number | null;
  /** Share of subjects recognised as their reference's identity. */
  identityMatch: number | null;
  /** 95 % Wilson interval of the identity-match rate over these subjects. */
  identityMatchInterval: [number, number] | null;
}

export interface VariantSummary {
  description: string;
  /** By subject count ('1' … '4') and over all subjects ('all'). */
  identity: Record<string, IdentitySummary>;
  context: { images: number; kind: number | null; time: number | null; both: number | null };
  disentanglement: { pairs: number; inside: number | null; outside: number | null; ratio: number | null; swappedIdentity: IdentitySummary } | null;
  priorPreservation: { images: number; meanAbsDiff: number | null } | null;
  routing: { images: number; inside: number | null; outside: number | null; ratio: number | null; iou: number | null } | null;
}

export interface EvalReport {
  format: typeof EVAL_FORMAT;
  version: typeof EVAL_VERSION;
  settings: Record<string, unknown>;
  judges: {
    reliableAttributes: string[];
    /** The judges' held-out accuracy (from their config.json). */
    heldOut: Record<string, unknown> | null;
    /** The judges reading the references of this eval's identities. */
    onReferences: IdentitySummary;
  };
  variants: Partial<Record<VariantName, VariantSummary>>;
  cases: CaseRecord[];
  files?: { report: string; grid: string };
  seconds: number;
}

export function identitySummary(scores: readonly SubjectScore[]): IdentitySummary {
  const found = scores.filter((s) => s.found);
  const interval = wilsonInterval(scores.filter((s) => s.identityMatch).length, scores.length);
  return {
    subjects: scores.length,
    found: r4(mean(scores.map((s) => (s.found ? 1 : 0)))),
    attributeAccuracy: r4(mean(scores.map((s) => s.attributeAccuracy))),
    attributeAccuracyFound: r4(mean(found.map((s) => s.attributeAccuracy))),
    identityMatch: r4(mean(scores.map((s) => (s.identityMatch ? 1 : 0)))),
    identityMatchInterval: interval && [r4(interval[0])!, r4(interval[1])!],
  };
}

function variantSummary(name: VariantName, records: readonly CaseRecord[]): VariantSummary {
  const results = records.flatMap((c) => (c.results[name] ? [{ c, r: c.results[name]! }] : []));
  const identity: Record<string, IdentitySummary> = {};
  for (const n of [...new Set(results.map(({ c }) => c.subjects))].sort()) identity[String(n)] = identitySummary(results.filter(({ c }) => c.subjects === n).flatMap(({ r }) => r.subjects));
  identity.all = identitySummary(results.flatMap(({ r }) => r.subjects));
  const kind = results.map(({ c, r }) => (r.scene.kind === c.scene.kind ? 1 : 0));
  const time = results.map(({ c, r }) => (r.scene.time === c.scene.time ? 1 : 0));
  const swaps = results.flatMap(({ r }) => (r.swap ? [r.swap] : []));
  const inside = mean(swaps.map((s) => s.change.inside));
  const outside = mean(swaps.map((s) => s.change.outside));
  const pixels = swaps[0] ? swaps[0].change.insidePixels + swaps[0].change.outsidePixels : 1;
  const priors = results.flatMap(({ r }) => (r.prior === undefined ? [] : [r.prior]));
  const routing = results.flatMap(({ r }) => (r.routing ? [r.routing] : []));
  const routeIn = mean(routing.map((x) => x.inside));
  const routeOut = mean(routing.map((x) => x.outside));
  return {
    description: VARIANT_DESCRIPTIONS[name],
    identity,
    context: { images: results.length, kind: r4(mean(kind)), time: r4(mean(time)), both: r4(mean(kind.map((k, i) => k * time[i]!))) },
    disentanglement:
      name === 'base'
        ? null
        : {
            pairs: swaps.length,
            inside: r4(inside),
            outside: r4(outside),
            // Of the means, with outside at least one pixel's share (finite when nothing changed outside).
            ratio: inside === null || outside === null ? null : r4(inside / Math.max(outside, 1 / pixels)),
            swappedIdentity: identitySummary(swaps.map((s) => s.subject)),
          },
    priorPreservation: name === 'base' ? null : { images: priors.length, meanAbsDiff: r4(mean(priors)) },
    routing: name === 'base' || name === 'moa-no-router' ? null : { images: routing.length, inside: r4(routeIn), outside: r4(routeOut), ratio: routeIn === null || routeOut === null ? null : r4(routeIn / Math.max(routeOut, 1e-6)), iou: r4(mean(routing.map((x) => x.iou))) },
  };
}

function roundCase(c: CaseRecord): CaseRecord {
  const roundScore = (s: SubjectScore): SubjectScore => ({ ...s, attributeAccuracy: r4(s.attributeAccuracy)! });
  const results: CaseRecord['results'] = {};
  for (const [name, r] of Object.entries(c.results) as [VariantName, VariantResult][]) {
    results[name] = {
      ...r,
      subjects: r.subjects.map(roundScore),
      routing: r.routing && { inside: r4(r.routing.inside)!, outside: r4(r.routing.outside)!, ratio: r4(r.routing.ratio)!, iou: r4(r.routing.iou)! },
      ...(r.swap ? { swap: { change: { ...r.swap.change, inside: r4(r.swap.change.inside)!, outside: r4(r.swap.change.outside)!, ratio: r4(r.swap.change.ratio)! }, subject: roundScore(r.swap.subject) } } : {}),
      ...(r.prior === undefined ? {} : { prior: r4(r.prior)! }),
    };
  }
  return { ...c, results };
}

export function summarise(o: {
  records: readonly CaseRecord[];
  variants: readonly VariantName[];
  judges: Judges;
  onReferences: readonly SubjectScore[];
  settings: Record<string, unknown>;
  seconds: number;
}): EvalReport {
  return {
    format: EVAL_FORMAT,
    version: EVAL_VERSION,
    settings: o.settings,
    judges: { reliableAttributes: o.judges.config.reliableAttributes, heldOut: o.judges.config.heldOut ?? null, onReferences: identitySummary(o.onReferences) },
    variants: Object.fromEntries(o.variants.map((v) => [v, variantSummary(v, o.records)])),
    cases: o.records.map(roundCase),
    seconds: Math.round(o.seconds * 10) / 10,
  };
}

const pct = (x: number | null | undefined) => (x === null || x === undefined ? '  –  ' : `${(100 * x).toFixed(1).padStart(5)}%`);
const num = (x: number | null | undefined, digits = 3) => (x === null || x === undefined ? '–' : x.toFixed(digits));

/** How MoA's variants sampled, from the report's settings (what a reader needs to compare runs). */
function samplingLine(settings: Record<string, unknown>): string {
  const { steps, scheduler, guidance, subjectGuidance, subjectGuidanceArea, strength, seed } = settings;
  const parts = [`${String(steps)} steps ${String(scheduler)}`, `guidance ${String(guidance)}`];
  if (subjectGuidance !== undefined && subjectGuidance !== guidance) parts.push(`subject guidance ${String(subjectGuidance)}${subjectGuidanceArea === 'routing' ? ' where routed' : ''}`);
  if (strength !== undefined && strength !== 1) parts.push(`strength ${String(strength)}`);
  parts.push(`seed ${String(seed)}`);
  return parts.join(', ');
}

/** The report as a few lines of text (the JSON holds everything). */
export function formatReport(report: EvalReport): string {
  const names = Object.keys(report.variants) as VariantName[];
  const counts = Object.keys(report.variants[names[0]!]?.identity ?? {});
  const rows: string[] = [];
  // The label column fits the longest label with a space to spare.
  const pad = (s: string, n: number) => s.padEnd(n);
  const LABEL = 40;
  rows.push(`${pad('identity match (attribute accuracy)', LABEL)}${names.map((n) => pad(n, 22)).join('')}`);
  for (const k of counts) {
    rows.push(`${pad(k === 'all' ? '  all subjects' : `  ${k} subject${k === '1' ? '' : 's'}`, LABEL)}${names.map((n) => pad(`${pct(report.variants[n]!.identity[k]?.identityMatch)} (${pct(report.variants[n]!.identity[k]?.attributeAccuracy)})`, 22)).join('')}`);
  }
  rows.push(`${pad('  95 % interval, all subjects', LABEL)}${names.map((n) => { const i = report.variants[n]!.identity.all?.identityMatchInterval; return pad(i ? `${pct(i[0])} – ${pct(i[1])}` : '–', 22); }).join('')}`);
  rows.push(`${pad('context: scene kind / time', LABEL)}${names.map((n) => pad(`${pct(report.variants[n]!.context.kind)} / ${pct(report.variants[n]!.context.time)}`, 22)).join('')}`);
  rows.push(`${pad('swap: changed inside / outside, ratio', LABEL)}${names.map((n) => { const d = report.variants[n]!.disentanglement; return pad(d ? `${pct(d.inside)} / ${pct(d.outside)}, ${num(d.ratio, 1)}` : '–', 22); }).join('')}`);
  rows.push(`${pad('prior: mean |MoA − base| (no subjects)', LABEL)}${names.map((n) => pad(num(report.variants[n]!.priorPreservation?.meanAbsDiff), 22)).join('')}`);
  rows.push(`${pad('routing r1 in / out subjects, IoU', LABEL)}${names.map((n) => { const r = report.variants[n]!.routing; return pad(r ? `${num(r.inside)} / ${num(r.outside)}, ${num(r.iou, 2)}` : '–', 22); }).join('')}`);
  const ref = report.judges.onReferences;
  rows.push(`judges on the references: identity match ${pct(ref.identityMatch)}, attributes ${pct(ref.attributeAccuracy)} (reliable attributes: ${report.judges.reliableAttributes.join(', ') || 'none'})`);
  rows.push(`sampling: ${samplingLine(report.settings)}`);
  rows.push(`${report.cases.length} prompts in ${report.seconds} s`);
  if (report.files) rows.push(`wrote ${report.files.report} and ${report.files.grid}`);
  return rows.join('\n');
}
