// JSON schemas of the job routes: they validate requests (clear 400s, unknown fields refused)
// and describe the API in /api/openapi.json. Limits come from the server's options.
import { SCHEDULER_NAMES } from '../schedulers/index.js';
import { SUBJECT_GUIDANCE_AREAS } from '../pipelines/guidance.js';
import { ID_PATTERN } from './ids.js';
import { JOB_STATUSES } from './jobs.js';
import { type Limits, MAX_ALTERNATIVES, MAX_FRAMES, MAX_PROMPT, MAX_REFERENCES, MAX_SEED } from './limits.js';

export const JOB_KINDS = ['generate', 'swap', 'morph', 'edit'] as const;
export type JobKind = (typeof JOB_KINDS)[number];

const id = { type: 'string', pattern: ID_PATTERN } as const;
const uploadRef = {
  description: 'an upload id, or several (references of one subject)',
  anyOf: [id, { type: 'array', items: id, minItems: 1, maxItems: MAX_REFERENCES }],
} as const;
const subject = {
  type: 'object',
  additionalProperties: false,
  required: ['word', 'upload'],
  properties: { word: { type: 'string', minLength: 1, maxLength: 100, description: 'a word of the prompt' }, upload: uploadRef },
} as const;
const subjects = { type: 'array', items: subject, maxItems: 16 } as const;

/** The body of POST /api/jobs (fields of other kinds are refused in job-request.ts). */
export function jobRequestSchema(limits: Limits) {
  const side = { type: 'integer', minimum: 8, maximum: limits.maxSide };
  return {
    type: 'object',
    additionalProperties: false,
    required: ['kind', 'prompt'],
    properties: {
      kind: { type: 'string', enum: JOB_KINDS },
      prompt: { type: 'string', minLength: 1, maxLength: MAX_PROMPT },
      negativePrompt: { type: 'string', maxLength: MAX_PROMPT },
      seed: { type: 'integer', minimum: 0, maximum: MAX_SEED },
      steps: { type: 'integer', minimum: 1, maximum: limits.maxSteps },
      guidance: { type: 'number', minimum: 0, maximum: 30 },
      width: side,
      height: side,
      scheduler: { type: 'string', enum: SCHEDULER_NAMES },
      batch: { type: 'integer', minimum: 1, maximum: limits.maxBatch, description: 'generate only' },
      subjectGuidance: { type: 'number', minimum: 0, maximum: 30, description: "the subjects' own guidance scale (default: guidance's)" },
      subjectGuidanceArea: { type: 'string', enum: SUBJECT_GUIDANCE_AREAS, description: "where subjectGuidance applies (default 'image')" },
      strength: { type: 'number', minimum: 0, maximum: 10 },
      subjectStart: { type: 'number', minimum: 0, maximum: 1 },
      maps: { type: 'boolean' },
      subjects,
      alternatives: { type: 'array', items: { ...subjects, minItems: 1 }, minItems: 1, maxItems: MAX_ALTERNATIVES, description: 'swap only' },
      word: { type: 'string', minLength: 1, maxLength: 100, description: 'morph only' },
      from: { ...uploadRef, description: 'morph only' },
      to: { ...uploadRef, description: 'morph only' },
      frames: { type: 'integer', minimum: 2, maximum: MAX_FRAMES, description: 'morph only' },
      image: { ...id, description: 'edit only: the photo' },
      sourcePrompt: { type: 'string', maxLength: MAX_PROMPT, description: 'edit only' },
    },
  } as const;
}

const nullableTime = { type: ['string', 'null'] } as const;
const looseObject = { type: 'object', additionalProperties: true } as const;

/** A job as the API returns it. */
export const jobSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    kind: { type: 'string', enum: JOB_KINDS },
    status: { type: 'string', enum: JOB_STATUSES },
    createdAt: { type: 'string' },
    startedAt: nullableTime,
    finishedAt: nullableTime,
    position: { type: ['integer', 'null'] },
    progress: { type: 'object', properties: { step: { type: 'integer' }, total: { type: 'integer' } } },
    parameters: looseObject,
    generation: { type: ['object', 'null'], additionalProperties: true },
    results: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          index: { type: 'integer' },
          label: { type: 'string' },
          url: { type: 'string' },
          seed: { type: 'integer' },
          width: { type: 'integer' },
          height: { type: 'integer' },
          alpha: { type: 'number' },
          latentDistance: { type: 'number' },
        },
      },
    },
    maps: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          result: { type: 'integer' },
          kind: { type: 'string', enum: ['routing', 'routing-mean', 'subject'] },
          layer: { type: 'string' },
          layerKind: { type: 'string', enum: ['self', 'cross'] },
          word: { type: 'string' },
          url: { type: 'string' },
        },
      },
    },
    error: { type: ['object', 'null'], properties: { message: { type: 'string' } } },
    preview: { type: 'object', properties: { step: { type: 'integer' }, image: { type: 'string' } } },
  },
} as const;

export const errorSchema = {
  type: 'object',
  properties: { error: { type: 'object', properties: { message: { type: 'string' }, field: { type: 'string' } } } },
} as const;

export const jobListQuerySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    limit: { type: 'string', pattern: '^[0-9]{1,3}$', description: '1 to 200, default 50' },
    offset: { type: 'string', pattern: '^[0-9]{1,9}$', description: 'default 0' },
    status: { type: 'string', enum: JOB_STATUSES },
    token: { type: 'string' },
  },
} as const;
