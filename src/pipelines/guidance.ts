// Classifier-free guidance with an optional scale of its own for the subjects. The UNet's batch
// holds one group of rows per branch: the unconditional branch (negative prompt, no subjects),
// the text branch (the prompt, no subjects) and the conditional branch (the prompt and its
// subjects). With g the text scale and s the subject scale the step's noise is
//   u + g·(t − u) + s·(c − t),
// which at s = g is plain guidance u + g·(c − u): the text branch is then left out, so the
// default costs two UNet rows per image as before, and a separate subject scale costs three.
// An area m in [0, 1] per pixel confines the subject scale: g + (s − g)·m takes the place of s,
// so where m = 0 the step is plain guidance.
import type { Tensor } from '../tensor/tensor.js';

export type GuidanceBranch = 'unconditional' | 'text' | 'conditional';

/** Where the subject scale applies: everywhere, or where MoA routes to the personal branch. */
export type SubjectGuidanceArea = 'image' | 'routing';
export const SUBJECT_GUIDANCE_AREAS: readonly SubjectGuidanceArea[] = ['image', 'routing'];

/** The text scale in force: guidance at or below 1 is off (the conditional branch alone). */
export const textScale = (guidance: number): number => (guidance > 1 ? guidance : 1);

/** The branches a step runs, in batch order (the conditional one always last). */
export function guidanceBranches(guidance: number, subjectGuidance?: number): GuidanceBranch[] {
  const branches: GuidanceBranch[] = guidance > 1 ? ['unconditional'] : [];
  if (subjectGuidance !== undefined && subjectGuidance !== textScale(guidance)) branches.push('text');
  branches.push('conditional');
  return branches;
}

/** The guided noise from the UNet's output per branch (in guidanceBranches' order); `area` [B, 1, h, w] confines the subject scale. */
export function combineGuidance(outputs: readonly Tensor[], branches: readonly GuidanceBranch[], guidance: number, subjectGuidance?: number, area?: Tensor | null): Tensor {
  if (outputs.length !== branches.length) throw new RangeError(`combineGuidance: ${outputs.length} outputs for ${branches.length} branches`);
  const of = (b: GuidanceBranch) => outputs[branches.indexOf(b)];
  const [u, t, c] = [of('unconditional'), of('text'), of('conditional')!];
  if (!t) return u ? u.add(c.sub(u).mul(guidance)) : c;
  const s = subjectGuidance ?? textScale(guidance);
  const g = textScale(guidance);
  const subjects = area ? c.sub(t).mul(area.mul(s - g).add(g)) : c.sub(t).mul(s);
  return u ? u.add(t.sub(u).mul(guidance)).add(subjects) : t.add(subjects);
}
