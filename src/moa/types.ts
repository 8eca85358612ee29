// The contract between the MoA model (src/moa/) and the pipelines that drive it: what a caller
// hands the UNet's forward for MoA, and what MoA records for routing maps.
import type { Tensor } from '../tensor/tensor.js';

/** One subject bound to one word of one prompt. */
export interface SubjectBinding {
  /** Position in the prompt's 77 token ids of the subject's class word (its last token). */
  tokenIndex: number;
  /** The subject's image embedding [imageEmbedDim] (mean over its reference images). */
  embedding: Tensor;
}

/**
 * Collects what MoA layers route and attend, for maps. Filled only when handed in. The tensors
 * handed to it are its own: they are kept out of tidy() scopes, so store them or dispose them.
 */
export interface MoARecorder {
  /**
   * Hand the maps over with their autograd graph (not detached), for losses on them (the router
   * loss on r1, the object loss on subject attention). Default false.
   */
  readonly withGrad?: boolean;
  /**
   * Called by each MoA layer: its name, kind, token grid [h, w], and r1 (the personal branch's
   * routing weight) as [B, h, w] float32, detached (unless withGrad). forcePrior and strength 0
   * report zeros.
   */
  routing(layer: string, kind: 'self' | 'cross', size: readonly [number, number], r1: Tensor): void;
  /**
   * Called by personal cross-attention layers when subjects are bound (and the recorder has this
   * method: without it the layers skip the costlier attention that records): the attention each
   * subject's token receives, averaged over heads, [B, subjects, h, w] float32, detached (unless
   * withGrad); subjects = the most any batch element binds (in the order of the batch element's
   * bindings, padded with zeros).
   */
  subjectAttention?(layer: string, size: readonly [number, number], maps: Tensor): void;
}

/** Per forward pass: how MoA layers should behave. Put under `extras.moa` of the UNet's forward. */
export interface MoAConditioning {
  /** Per batch element, its subjects (empty: none; the personal branch then sees the plain text). */
  subjects: readonly (readonly SubjectBinding[])[];
  /** Route everything to the prior (r0 = 1): the MoA UNet then computes exactly the base UNet. */
  forcePrior?: boolean;
  /** Route everything to the personal expert (r1 = 1): the "no router" ablation. */
  forcePersonal?: boolean;
  /** Scales the personal routing weight r1 (renormalised so r0 + r1 = 1); 1 = as learned. */
  strength?: number;
  /** The diffusion timestep of this pass, [B] (the fusion MLP is conditioned on it). */
  timestep: Tensor;
  recorder?: MoARecorder;
}
