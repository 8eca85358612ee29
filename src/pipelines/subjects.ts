// Subjects of a personalized prompt: each bound to one word of the prompt, given as an image
// embedding or as reference images (and masks) that a subject encoder turns into one.
import type { ClipTokenizer } from '../models/clip-tokenizer.js';
import type { CLIPVisionModelWithProjection } from '../models/clip-vision.js';
import { subjectEmbedding } from '../moa/subject-encoder.js';
import type { SubjectBinding } from '../moa/types.js';
import { noGrad } from '../tensor/autograd.js';
import { tidy } from '../tensor/scope.js';
import type { Tensor } from '../tensor/tensor.js';

/** Reference images of one subject: [N, 3, H, W] (or [3, H, W]) in [0, 1], masks [N, 1, H, W] (1 = subject). */
export interface SubjectImages {
  images: Tensor;
  masks?: Tensor | null;
}

/** A subject's identity: its image embedding [imageEmbedDim], or reference images to encode. */
export type SubjectSource = { embedding: Tensor } | SubjectImages;

/** A subject bound to a word of the prompt (its class word: "man", "dog", ...). */
export type SubjectInput = SubjectSource & { word: string };

/** Reference images (+ masks) → one embedding [imageEmbedDim] (the mean over the images). */
export type SubjectEncoder = (images: Tensor, masks: Tensor | null) => Tensor;

/** A CLIP image encoder as a subject encoder: mean embedding of the images, backgrounds grey through the masks. */
export function clipSubjectEncoder(encoder: CLIPVisionModelWithProjection): SubjectEncoder {
  const device = encoder.visualProjection.weight.device;
  return (images, masks) => noGrad(() => tidy(() => subjectEmbedding(encoder, images.to({ device }), { masks: masks?.to({ device }) ?? null })));
}

/** Where each subject's word sits in the prompt's tokens, checked: no repeats, at most `maxSubjects`. */
export function bindWords(tokenizer: ClipTokenizer, prompt: string, words: readonly string[], maxSubjects: number): number[] {
  if (words.length > maxSubjects) {
    throw new RangeError(`${words.length} subjects (${words.join(', ')}), but MoA binds at most ${maxSubjects} per prompt`);
  }
  const seen = new Map<number, string>();
  return words.map((word) => {
    if (typeof word !== 'string' || !word.trim()) throw new TypeError(`a subject's word must be a non-empty string, not ${JSON.stringify(word)}`);
    let index: number;
    try {
      index = tokenizer.wordTokenIndex(prompt, word);
    } catch (error) {
      // The tokenizer's message already lists the prompt's words; say it is about a subject.
      const reason = error instanceof Error ? error.message.replace(/^wordTokenIndex: /, '') : String(error);
      throw new Error(`subject word: ${reason}`, { cause: error });
    }
    const other = seen.get(index);
    if (other !== undefined) {
      throw new Error(`subjects ${JSON.stringify(other)} and ${JSON.stringify(word)} are bound to the same word of the prompt; each subject needs its own word`);
    }
    seen.set(index, word);
    return index;
  });
}

/** A subject source with a one-dimensional embedding, checked. */
function checkEmbedding(embedding: Tensor, what: string, dim?: number): Tensor {
  if (embedding.ndim !== 1) throw new RangeError(`${what}: an embedding is [imageEmbedDim], not [${embedding.shape.join(', ')}]`);
  if (dim !== undefined && embedding.size(0) !== dim) throw new RangeError(`${what}: the embedding has ${embedding.size(0)} values, but this MoA takes ${dim}`);
  return embedding;
}

/**
 * The embedding of a subject source. Given embeddings are returned as they are (owned: false);
 * images are encoded (owned: true, the caller disposes the result).
 */
export function resolveEmbedding(source: SubjectSource, what: string, encoder: SubjectEncoder | undefined, dim?: number): { embedding: Tensor; owned: boolean } {
  if ('embedding' in source && source.embedding) return { embedding: checkEmbedding(source.embedding, what, dim), owned: false };
  if (!('images' in source) || !source.images) throw new TypeError(`${what}: give an embedding or reference images`);
  if (!encoder) throw new Error(`${what}: reference images need a subject encoder (a CLIP vision model); pass one, or give embeddings`);
  const images = source.images.ndim === 3 ? source.images.unsqueeze(0) : source.images;
  try {
    if (images.ndim !== 4 || images.size(1) !== 3) throw new RangeError(`${what}: reference images are [N, 3, H, W] in [0, 1], not [${source.images.shape.join(', ')}]`);
    const embedding = tidy(() => encoder(images, source.masks ?? null));
    try {
      return { embedding: checkEmbedding(embedding, what, dim), owned: true };
    } catch (error) {
      embedding.dispose();
      throw error;
    }
  } finally {
    if (images !== source.images) images.dispose();
  }
}

/** Subjects with their token positions and embeddings; dispose() frees the embeddings it encoded. */
export interface BoundSubjects {
  words: string[];
  bindings: SubjectBinding[];
  dispose(): void;
}

/** Binds each subject to its word of the prompt and resolves its embedding. */
export function bindSubjects(
  tokenizer: ClipTokenizer,
  prompt: string,
  subjects: readonly SubjectInput[],
  { maxSubjects, encoder, embedDim }: { maxSubjects: number; encoder?: SubjectEncoder; embedDim?: number },
): BoundSubjects {
  const words = subjects.map((s) => s.word);
  const indices = bindWords(tokenizer, prompt, words, maxSubjects);
  const owned: Tensor[] = [];
  try {
    const bindings = subjects.map((s, i) => {
      const { embedding, owned: mine } = resolveEmbedding(s, `subject ${JSON.stringify(s.word)}`, encoder, embedDim);
      if (mine) owned.push(embedding);
      return { tokenIndex: indices[i]!, embedding };
    });
    return { words, bindings, dispose: () => owned.forEach((t) => t.dispose()) };
  } catch (error) {
    owned.forEach((t) => t.dispose());
    throw error;
  }
}
