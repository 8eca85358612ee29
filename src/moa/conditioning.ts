// Reading a MoAConditioning (types.ts) as the MoA layers need it: checked once per layer call
// (cheap: a few numbers per subject), with the subjects flattened into one list so the fusion
// MLP runs once per layer for all subjects of the batch.
import { timestepsForBatch } from '../models/unet/embeddings.js';
import { type Device } from '../tensor/device.js';
import { type DType } from '../tensor/dtype.js';
import { tensor } from '../tensor/create.js';
import { stack } from '../tensor/functional.js';
import { tidy } from '../tensor/scope.js';
import { Tensor } from '../tensor/tensor.js';
import { type MoAConditioning, type SubjectBinding } from './types.js';

export class MoAConditioningError extends Error {
  constructor(message: string) {
    super(`MoA conditioning: ${message}`);
    this.name = 'MoAConditioningError';
  }
}

/** The routing strength of a conditioning (1 when absent); a finite number ≥ 0. */
export function strengthOf(moa: MoAConditioning): number {
  const s = moa.strength ?? 1;
  if (typeof s !== 'number' || !Number.isFinite(s) || s < 0) throw new MoAConditioningError(`strength must be a finite number ≥ 0, not ${String(s)}`);
  return s;
}

interface Placed {
  /** Batch element. */
  element: number;
  /** Position among the element's bindings. */
  slot: number;
  binding: SubjectBinding;
}

/** Every subject of a batch with where it goes: what the fusion and the attention maps need. */
export class SubjectPlacement {
  readonly #placed: Placed[];
  readonly #timestep: Tensor;

  private constructor(
    placed: Placed[],
    timestep: Tensor,
    readonly batch: number,
    /** Most subjects any one element has (the S of subject-attention maps). */
    readonly maxPerElement: number,
  ) {
    this.#placed = placed;
    this.#timestep = timestep;
  }

  /**
   * Checks `moa` against a batch of `batch` prompts of `textLength` tokens: one subject list per
   * element, at most `maxSubjects` each, token indices in range and distinct, embeddings of
   * `imageEmbedDim` values, a timestep of 1 or `batch` values.
   */
  static of(moa: MoAConditioning, batch: number, textLength: number, imageEmbedDim: number, maxSubjects: number): SubjectPlacement {
    const { subjects, timestep } = moa;
    if (!Array.isArray(subjects) || subjects.length !== batch) {
      throw new MoAConditioningError(`subjects must list one array per batch element (${batch}), not ${Array.isArray(subjects) ? subjects.length : typeof subjects}`);
    }
    if (!(timestep instanceof Tensor) || timestep.isDisposed) throw new MoAConditioningError('timestep must be a live Tensor [B] (the fusion MLP is conditioned on it)');
    if (timestep.numel !== 1 && timestep.numel !== batch) throw new MoAConditioningError(`timestep must have 1 or ${batch} elements, not shape [${timestep.shape.join(', ')}]`);
    const placed: Placed[] = [];
    let most = 0;
    subjects.forEach((list, element) => {
      if (!Array.isArray(list)) throw new MoAConditioningError(`subjects[${element}] must be an array of bindings`);
      if (list.length > maxSubjects) throw new MoAConditioningError(`batch element ${element} binds ${list.length} subjects; at most ${maxSubjects} are supported`);
      const seen = new Set<number>();
      list.forEach((binding: SubjectBinding, slot) => {
        const where = `subjects[${element}][${slot}]`;
        const { tokenIndex, embedding } = binding ?? ({} as SubjectBinding);
        if (!Number.isSafeInteger(tokenIndex) || tokenIndex < 0 || tokenIndex >= textLength) {
          throw new MoAConditioningError(`${where}.tokenIndex must be an integer in [0, ${textLength}), not ${String(tokenIndex)}`);
        }
        if (seen.has(tokenIndex)) throw new MoAConditioningError(`${where}: token ${tokenIndex} is already bound to another subject of this prompt`);
        seen.add(tokenIndex);
        if (!(embedding instanceof Tensor) || embedding.isDisposed) throw new MoAConditioningError(`${where}.embedding must be a live Tensor`);
        if (embedding.numel !== imageEmbedDim || embedding.shape.filter((d) => d !== 1).length > 1) {
          throw new MoAConditioningError(`${where}.embedding must be [${imageEmbedDim}] (the image embedding width), not [${embedding.shape.join(', ')}]`);
        }
        placed.push({ element, slot, binding });
      });
      most = Math.max(most, list.length);
    });
    return new SubjectPlacement(placed, timestep, batch, most);
  }

  /** K, the number of subjects over the whole batch. */
  get count(): number {
    return this.#placed.length;
  }

  /** [K] int64: each subject's row in the text flattened to [B·L, D]. */
  rows(textLength: number, device: Device): Tensor {
    return tensor(
      this.#placed.map((p) => p.element * textLength + p.binding.tokenIndex),
      { dtype: 'int64', device },
    );
  }

  /** [K, imageEmbedDim]: the subjects' image embeddings. */
  images(dtype: DType, device: Device): Tensor {
    return tidy(() => stack(this.#placed.map((p) => p.binding.embedding.reshape(-1).to({ dtype, device }))));
  }

  /** [K] float32: each subject's element's timestep. */
  timesteps(device: Device): Tensor {
    return tidy(() => {
      const all = timestepsForBatch(this.#timestep, this.batch, device);
      return all.indexSelect(0, tensor(this.#placed.map((p) => p.element), { dtype: 'int64', device }));
    });
  }

  /**
   * Token indices [B, S, 1] int64 (S = maxPerElement; unused slots point at token 0) and a
   * float32 mask [B, S, 1] (1 where a subject is), for gathering per-subject attention maps.
   */
  slots(device: Device): { index: Tensor; valid: Tensor } {
    const s = this.maxPerElement;
    const index = new Array<number>(this.batch * s).fill(0);
    const valid = new Array<number>(this.batch * s).fill(0);
    for (const p of this.#placed) {
      index[p.element * s + p.slot] = p.binding.tokenIndex;
      valid[p.element * s + p.slot] = 1;
    }
    return {
      index: tensor(index, { dtype: 'int64', shape: [this.batch, s, 1], device }),
      valid: tensor(valid, { dtype: 'float32', shape: [this.batch, s, 1], device }),
    };
  }
}
