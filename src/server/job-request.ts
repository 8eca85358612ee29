// A job request (already schema-checked) resolved into what the worker runs: the fields of its
// kind only, every default filled in, the seed fixed, the subjects' words bound to the prompt
// and every upload found. Anything wrong is a 400 naming the field.
import { randomInt } from 'node:crypto';
import type { ClipTokenizer } from '../models/clip-tokenizer.js';
import { bindWords } from '../pipelines/subjects.js';
import type { SchedulerName } from '../schedulers/index.js';
import type { SubjectGuidanceArea } from '../pipelines/guidance.js';
import { badInput } from './errors.js';
import type { JobKind } from './job-schema.js';
import { type Limits, MAX_SEED } from './limits.js';
import type { Uploads } from './uploads.js';
import type { ModelInfo, WorkerJob, WorkerSubject } from './worker/protocol.js';

type UploadRef = string | string[];
interface SubjectRequest {
  word: string;
  upload: UploadRef;
}

export interface JobRequest {
  kind: JobKind;
  prompt: string;
  negativePrompt?: string;
  seed?: number;
  steps?: number;
  guidance?: number;
  subjectGuidance?: number;
  subjectGuidanceArea?: SubjectGuidanceArea;
  width?: number;
  height?: number;
  scheduler?: SchedulerName;
  batch?: number;
  strength?: number;
  subjectStart?: number;
  maps?: boolean;
  subjects?: SubjectRequest[];
  alternatives?: SubjectRequest[][];
  word?: string;
  from?: UploadRef;
  to?: UploadRef;
  frames?: number;
  image?: string;
  sourcePrompt?: string;
}

const COMMON = ['kind', 'prompt', 'negativePrompt', 'seed', 'steps', 'guidance', 'subjectGuidance', 'subjectGuidanceArea', 'strength', 'subjectStart', 'maps', 'subjects'];
const SIZED = ['width', 'height', 'scheduler'];
/** The fields each kind takes. */
const FIELDS: Record<JobKind, readonly string[]> = {
  generate: [...COMMON, ...SIZED, 'batch'],
  swap: [...COMMON, ...SIZED, 'alternatives'],
  morph: [...COMMON, ...SIZED, 'word', 'from', 'to', 'frames'],
  edit: [...COMMON, 'image', 'sourcePrompt'],
};
const REQUIRED: Record<JobKind, readonly string[]> = { generate: [], swap: ['alternatives'], morph: ['word', 'from', 'to'], edit: ['image'] };

export interface ResolveContext {
  info: ModelInfo;
  tokenizer: ClipTokenizer;
  uploads: Uploads;
  limits: Limits;
}

/** The resolved job (without id and folder) and its complete parameters for the record. */
export function resolveJob(request: JobRequest, { info, tokenizer, uploads, limits }: ResolveContext): { work: Omit<WorkerJob, 'id' | 'dir'>; parameters: Record<string, unknown> } {
  const { kind } = request;
  for (const field of Object.keys(request)) {
    if (!FIELDS[kind].includes(field)) {
      const owners = (Object.keys(FIELDS) as JobKind[]).filter((k) => FIELDS[k].includes(field));
      throw badInput(`'${field}' is not a field of a '${kind}' job (it belongs to ${owners.join(', ')} jobs)`, field);
    }
  }
  for (const field of REQUIRED[kind]) if ((request as unknown as Record<string, unknown>)[field] === undefined) throw badInput(`a '${kind}' job needs '${field}'`, field);

  const subjects = request.subjects ?? [];
  const maps = request.maps ?? false;
  if (!info.moa) {
    if (kind !== 'generate') throw badInput(`this server runs without MoA weights, so it cannot ${kind}: start it with --moa FILE`, 'kind');
    if (subjects.length) throw badInput('this server runs without MoA weights, so it takes no subjects: start it with --moa FILE', 'subjects');
    if (maps) throw badInput('this server runs without MoA weights, so it has no routing maps: start it with --moa FILE', 'maps');
    for (const field of ['subjectGuidance', 'subjectGuidanceArea'] as const) {
      if (request[field] !== undefined) throw badInput('this server runs without MoA weights, so it has no subject guidance: start it with --moa FILE', field);
    }
  }

  const edit = kind === 'edit';
  const steps = request.steps ?? (edit ? 50 : 30);
  const strength = request.strength ?? 1;
  const subjectStart = request.subjectStart ?? 0;
  if (maps && (strength === 0 || Math.floor(subjectStart * steps) >= steps)) {
    throw badInput('maps need steps that run MoA: with strength 0 or subjectStart 1 every step runs the base model alone', 'maps');
  }

  const files = (ref: UploadRef, field: string): string[] =>
    (Array.isArray(ref) ? ref : [ref]).map((id, i) => {
      if (!uploads.get(id)) throw badInput(`no upload '${id}': upload the image first (POST /api/uploads) and use the id it returns`, Array.isArray(ref) ? `${field}/${i}` : field);
      return uploads.path(id);
    });
  const toWorker = (list: readonly SubjectRequest[], field: string): WorkerSubject[] => list.map((s, i) => ({ word: s.word, images: files(s.upload, `${field}/${i}/upload`) }));

  // Every word must be a word of the prompt, each its own (bindWords says which is not).
  const words = [...subjects.map((s) => s.word), ...(kind === 'morph' ? [request.word!] : [])];
  if (words.length) {
    if (info.maxSubjects === 0) throw badInput('this server runs without MoA weights, so it takes no subjects', 'subjects');
    try {
      bindWords(tokenizer, request.prompt, words, info.maxSubjects);
    } catch (error) {
      const message = (error as Error).message;
      const culprit = subjects.findIndex((s) => message.includes(JSON.stringify(s.word)));
      const field = culprit >= 0 ? `subjects/${culprit}/word` : kind === 'morph' && message.includes(JSON.stringify(request.word)) ? 'word' : 'subjects';
      throw badInput(message, field);
    }
  }
  if (kind === 'morph' && subjects.some((s) => s.word === request.word)) throw badInput(`'${request.word}' is the morphing subject; leave it out of 'subjects'`, 'word');

  const base = {
    kind,
    prompt: request.prompt,
    negativePrompt: request.negativePrompt ?? '',
    seed: request.seed ?? randomInt(0, MAX_SEED),
    steps,
    guidance: request.guidance ?? (edit ? 1 : info.guidance),
  };
  let size: { width: number; height: number; scheduler: SchedulerName };
  if (edit) {
    const photo = uploads.get(request.image!);
    if (!photo) throw badInput(`no upload '${request.image}': upload the photo first (POST /api/uploads) and use the id it returns`, 'image');
    const m = info.sizeMultiple;
    if (photo.width % m || photo.height % m) throw badInput(`the photo is ${photo.width}×${photo.height}; its sides must be multiples of ${m} (the VAE's scale): crop or resize it`, 'image');
    if (photo.width > limits.maxSide || photo.height > limits.maxSide) throw badInput(`the photo is ${photo.width}×${photo.height}; this server edits photos of at most ${limits.maxSide} pixels a side: scale it down`, 'image');
    size = { width: photo.width, height: photo.height, scheduler: 'ddim' };
  } else {
    size = { width: request.width ?? info.width, height: request.height ?? info.height, scheduler: request.scheduler ?? 'dpmpp-2m' };
    for (const side of ['width', 'height'] as const) {
      if (size[side] % info.sizeMultiple) throw badInput(`${side} must be a multiple of ${info.sizeMultiple} (the VAE's scale), not ${size[side]}`, side);
      if (size[side] > limits.maxSide) throw badInput(`${side} ${size[side]} is over this server's limit of ${limits.maxSide} (--max-side)`, side);
    }
  }
  const subjectGuidance = {
    ...(request.subjectGuidance !== undefined ? { subjectGuidance: request.subjectGuidance } : {}),
    ...(request.subjectGuidanceArea !== undefined ? { subjectGuidanceArea: request.subjectGuidanceArea } : {}),
  };
  const personal = { ...subjectGuidance, strength, subjectStart, maps, subjects };
  const work = {
    ...base,
    ...size,
    batch: kind === 'generate' ? (request.batch ?? 1) : 1,
    ...subjectGuidance,
    strength,
    subjectStart,
    maps,
    subjects: toWorker(subjects, 'subjects'),
  };

  switch (kind) {
    case 'generate': {
      const parameters = { ...base, width: size.width, height: size.height, scheduler: size.scheduler, batch: work.batch, ...personal };
      return { work: { ...work, total: steps, request: parameters }, parameters };
    }
    case 'swap': {
      const alternatives = request.alternatives!;
      const baseWords = new Set(subjects.map((s) => s.word));
      alternatives.forEach((variant, v) => {
        const seen = new Set<string>();
        variant.forEach((s, i) => {
          if (!baseWords.has(s.word)) throw badInput(`alternative ${v + 1} swaps '${s.word}', which is not one of the subjects (${[...baseWords].join(', ') || 'none'}): each alternative replaces subjects of the same word`, `alternatives/${v}/${i}/word`);
          if (seen.has(s.word)) throw badInput(`alternative ${v + 1} gives '${s.word}' twice`, `alternatives/${v}/${i}/word`);
          seen.add(s.word);
        });
      });
      const parameters = { ...base, ...size, ...personal, alternatives };
      const resolved = alternatives.map((variant, v) => toWorker(variant, `alternatives/${v}`));
      return { work: { ...work, alternatives: resolved, total: (1 + alternatives.length) * steps, request: parameters }, parameters };
    }
    case 'morph': {
      const frames = request.frames ?? 8;
      const parameters = { ...base, ...size, ...personal, word: request.word!, from: request.from!, to: request.to!, frames };
      const morph = { word: request.word!, from: files(request.from!, 'from'), to: files(request.to!, 'to'), frames };
      return { work: { ...work, morph, total: frames * steps, request: parameters }, parameters };
    }
    case 'edit': {
      const sourcePrompt = request.sourcePrompt ?? request.prompt;
      const parameters = { ...base, ...personal, image: request.image!, sourcePrompt };
      return { work: { ...work, edit: { image: uploads.path(request.image!), sourcePrompt }, total: 2 * steps, request: parameters }, parameters };
    }
  }
}
