// Captions from templates. A caption names every subject by its class word (left to right)
// and the scene's place and time; each subject's `end` is the character offset just after its
// word. Train and test images use disjoint templates, so test captions are unseen in training.
// Captions are lower-case words separated by single spaces, all in WORLD_WORDS.
import { Random } from './random.js';
import { CLASSES, type SceneKind, type SubjectClass, type TimeOfDay } from './vocab.js';

export const PLACE_PHRASES: Readonly<Record<SceneKind, readonly string[]>> = {
  beach: ['on a beach', 'on the beach', 'by the sea'],
  forest: ['in a forest', 'in the woods'],
  city: ['in a city', 'on a city street'],
  snow: ['in the snow', 'in a snowy forest', 'on a snowy hill'],
  room: ['in a room', 'in a living room', 'indoors'],
  park: ['in a park', 'on the grass in a park'],
  desert: ['in a desert', 'in the desert'],
  mountains: ['in the mountains', 'by a mountain lake'],
};

export const TIME_PHRASES: Readonly<Record<TimeOfDay, readonly string[]>> = {
  day: ['during the day', 'in the daytime'],
  dusk: ['at dusk', 'at sunset', 'in the evening'],
  night: ['at night', 'in the night'],
};

/** Templates: {subjects}, {place} and {time} are filled in; the rest are literal words. */
export const CAPTION_TEMPLATES = {
  train: {
    'train-0': '{subjects} {place}',
    'train-1': '{subjects} {place} {time}',
    'train-2': 'a photo of {subjects} {place} {time}',
    'train-3': 'a picture of {subjects} {place}',
    'train-4': '{time} {subjects} {place}',
  },
  test: {
    'test-0': 'an image of {subjects} {place} {time}',
    'test-1': 'there is {subjects} {place} {time}',
    'test-2': 'a scene {place} {time} with {subjects}',
    'test-3': 'a drawing of {subjects} {place}',
  },
} as const;

export type TemplateId = keyof (typeof CAPTION_TEMPLATES)['train'] | keyof (typeof CAPTION_TEMPLATES)['test'];

export const TRAIN_TEMPLATES = Object.keys(CAPTION_TEMPLATES.train) as TemplateId[];
export const TEST_TEMPLATES = Object.keys(CAPTION_TEMPLATES.test) as TemplateId[];

export function templateText(id: string): string {
  const text = (CAPTION_TEMPLATES.train as Record<string, string>)[id] ?? (CAPTION_TEMPLATES.test as Record<string, string>)[id];
  if (!text) throw new Error(`unknown caption template '${id}' (one of ${[...TRAIN_TEMPLATES, ...TEST_TEMPLATES].join(', ')})`);
  return text;
}

/** Every word a caption can contain, sorted (a tokenizer for the world is built from it). */
export const WORLD_WORDS: readonly string[] = (() => {
  const texts = [
    ...Object.values(CAPTION_TEMPLATES.train),
    ...Object.values(CAPTION_TEMPLATES.test),
    ...Object.values(PLACE_PHRASES).flat(),
    ...Object.values(TIME_PHRASES).flat(),
    ...CLASSES,
    'a and another',
  ];
  const words = new Set<string>();
  for (const t of texts) for (const w of t.split(' ')) if (!w.startsWith('{')) words.add(w);
  return [...words].sort();
})();

export interface CaptionSubject {
  class: SubjectClass;
}

export interface Caption {
  text: string;
  /** Per subject (in the order given), the offset just after its class word. */
  ends: number[];
}

/**
 * The caption for subjects (already in caption order, left to right) in a scene. `phraseSeed`
 * picks the place and time phrasings.
 */
export function buildCaption(template: string, subjects: readonly CaptionSubject[], kind: SceneKind, time: TimeOfDay, phraseSeed: number): Caption {
  const random = new Random(phraseSeed, 0xca9);
  const place = random.pick(PLACE_PHRASES[kind]);
  const when = random.pick(TIME_PHRASES[time]);
  const parts = templateText(template).split(/(\{subjects\}|\{place\}|\{time\})/);
  let text = '';
  const ends: number[] = [];
  for (const part of parts) {
    if (part === '{place}') text += place;
    else if (part === '{time}') text += when;
    else if (part === '{subjects}') {
      const seen = new Set<string>();
      subjects.forEach((s, i) => {
        if (i > 0) text += ' and ';
        text += seen.has(s.class) ? 'another ' : 'a ';
        seen.add(s.class);
        text += s.class;
        ends.push(text.length);
      });
    } else text += part;
  }
  return { text, ends };
}
