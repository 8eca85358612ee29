// What the judges predict, as integer labels: pixel classes (0 background, then the world's
// subject classes), one head per attribute name (every value any class gives it), scene kinds
// and times of day. An attribute a class does not have (a woman's trousers) is IGNORE.
import { ATTRIBUTES, CLASS_ATTRIBUTES, CLASSES, SCENE_KINDS, type SubjectClass, TIMES } from '../world/vocab.js';

/** Target of an attribute the subject's class does not have (cross-entropy's ignore_index). */
export const IGNORE = -100;

/** Pixel classes: index 0 is background, index k is CLASSES[k − 1]. */
export const PIXEL_CLASSES: readonly string[] = ['background', ...CLASSES];

export function classIndex(cls: SubjectClass): number {
  const i = CLASSES.indexOf(cls);
  if (i < 0) throw new Error(`unknown subject class '${cls}' (one of ${CLASSES.join(', ')})`);
  return i + 1;
}

export function className(index: number): SubjectClass {
  const cls = CLASSES[index - 1];
  if (!cls) throw new RangeError(`pixel class ${index} is not a subject class (1 to ${CLASSES.length})`);
  return cls;
}

/** One attribute head: its name, its values, and where its logits sit in the attribute net's output. */
export interface AttributeHead {
  name: string;
  values: readonly string[];
  offset: number;
}

/** Every attribute name, in ATTRIBUTES' order, with its slice of the logits. */
export const ATTRIBUTE_HEADS: readonly AttributeHead[] = (() => {
  let offset = 0;
  return Object.entries(ATTRIBUTES).map(([name, values]) => {
    const head = { name, values, offset };
    offset += values.length;
    return head;
  });
})();

/** Total logits of the attribute net. */
export const ATTRIBUTE_LOGITS = ATTRIBUTE_HEADS.reduce((n, h) => n + h.values.length, 0);

/** The attribute names a class has, in head order. */
export function classAttributes(cls: SubjectClass): string[] {
  const own = CLASS_ATTRIBUTES[cls];
  return ATTRIBUTE_HEADS.filter((h) => h.name in own).map((h) => h.name);
}

/** Per head, the index of the identity's value, or IGNORE where its class has no such attribute. */
export function attributeTargets(cls: SubjectClass, attributes: Readonly<Record<string, string>>): number[] {
  const own = CLASS_ATTRIBUTES[cls];
  return ATTRIBUTE_HEADS.map((h) => {
    if (!(h.name in own)) return IGNORE;
    const v = attributes[h.name];
    const i = v === undefined ? -1 : h.values.indexOf(v);
    if (i < 0) throw new Error(`a ${cls}'s '${h.name}' must be one of ${h.values.join(', ')}, not ${JSON.stringify(v)}`);
    return i;
  });
}

export function sceneKindIndex(kind: string): number {
  const i = (SCENE_KINDS as readonly string[]).indexOf(kind);
  if (i < 0) throw new Error(`unknown scene kind '${kind}' (one of ${SCENE_KINDS.join(', ')})`);
  return i;
}

export function timeIndex(time: string): number {
  const i = (TIMES as readonly string[]).indexOf(time);
  if (i < 0) throw new Error(`unknown time of day '${time}' (one of ${TIMES.join(', ')})`);
  return i;
}
