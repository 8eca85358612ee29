// The MoA layer (MOA_SPEC 1, 2.1-2.3): one UNet attention site with two experts and a router.
//   prior    = the site's original Attention, frozen, used in place (not copied, not moved);
//   personal = a trainable copy of it; in cross-attention it reads the multimodal prompt;
//   router   = per-token weights (r0, r1); out = r0·prior + r1·personal.
// Without `extras.moa` the layer is the prior, so an MoA UNet called plainly is the base UNet.
import { type Dropout } from '../nn/dropout.js';
import { type Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { Attention, type AttentionCallContext, type AttentionLayer } from '../models/layers/attention.js';
import { ones, zeros } from '../tensor/create.js';
import { keep, tidy } from '../tensor/scope.js';
import { type Tensor } from '../tensor/tensor.js';
import { type MoAConfig, routerHiddenWidth } from './config.js';
import { SubjectPlacement, strengthOf } from './conditioning.js';
import { type MoAFusion } from './fusion.js';
import { MoARouter } from './router.js';
import { type MoAConditioning, type MoARecorder } from './types.js';
import { type InitOptions } from '../nn/init.js';

declare module '../models/layers/attention.js' {
  interface AttentionExtras {
    /** MoA's per-pass state (src/moa/types.ts); absent: MoA layers act as the base model's. */
    moa?: MoAConditioning;
  }
}

/**
 * A trainable copy of an Attention: same options, weights cloned, in the same dtype and device.
 * `empty`: allocated only (for weights loaded right after).
 */
export function copyAttention(source: Attention, { empty = false }: { empty?: boolean } = {}): Attention {
  const out = source.to_out.at(0) as Linear;
  const weight = source.to_q.weight;
  const copy = new Attention({
    queryDim: source.to_q.inFeatures,
    crossAttentionDim: source.to_k.inFeatures,
    heads: source.heads,
    dimHead: source.innerDim / source.heads,
    bias: source.to_q.bias !== null,
    outBias: out.bias !== null,
    dropout: (source.to_out.at(1) as Dropout).p,
    init: { empty: true, dtype: weight.dtype, device: weight.device },
  });
  if (!empty) tidy(() => copy.loadStateDict(source.stateDict()));
  return copy.train(source.training);
}

export interface MoAAttentionOptions {
  /** The site's dotted name in the UNet (what attention calls carry as ctx.name). */
  name: string;
  kind: 'self' | 'cross';
  /** This layer's position among the MoA layers, in forward order (the fusion's layer index). */
  index: number;
  config: MoAConfig;
  /** Builds the multimodal prompt; needed by cross-attention layers only. */
  fusion: MoAFusion | null;
  /** Where the router's initial values come from; `empty` skips them and the personal copy (weights loaded next). */
  init?: InitOptions;
}

export class MoAAttention extends Module implements AttentionLayer {
  readonly name: string;
  readonly kind: 'self' | 'cross';
  readonly index: number;
  readonly config: MoAConfig;
  readonly personal: Attention;
  readonly router: MoARouter;
  // Plain references, not registered: the prior's children are registered here under their own
  // names instead (so `...attn1.to_q.weight` stays the key), and the fusion belongs to the MoA model.
  readonly #prior: Attention;
  readonly #fusion: MoAFusion | null;

  constructor(prior: Attention, { name, kind, index, config, fusion, init = {} }: MoAAttentionOptions) {
    super();
    if (!(prior instanceof Attention)) throw new TypeError(`MoA wraps diffusers-style Attention layers; ${name} is a ${(prior as object).constructor.name}`);
    if (kind === 'cross' && !fusion) throw new TypeError(`MoA cross-attention layer ${name} needs the fusion module`);
    this.name = name;
    this.kind = kind;
    this.index = index;
    this.config = config;
    this.#prior = prior;
    this.#fusion = fusion;
    for (const [child, module] of prior.namedChildren()) this.registerModule(child, module);
    this.personal = this.registerModule('personal', copyAttention(prior, { empty: init.empty }));
    const weight = prior.to_q.weight;
    const channels = prior.to_q.inFeatures;
    this.router = this.registerModule(
      'router',
      new MoARouter(channels, routerHiddenWidth(config, channels), config.initialPriorWeight, { ...init, dtype: weight.dtype, device: weight.device }),
    );
    for (const p of prior.parameters()) p.requiresGrad_(false); // the prior expert never trains
  }

  /** The frozen original attention (the base model's layer). */
  get prior(): Attention {
    return this.#prior;
  }

  forward(hidden: Tensor, context: Tensor | null, ctx: AttentionCallContext): Tensor {
    const moa = ctx.extras.moa;
    if (moa === undefined || moa === null) return this.#prior.forward(hidden, context, ctx);
    const strength = strengthOf(moa);
    if (moa.forcePrior || strength === 0) {
      // r0 = 1 everywhere: exactly the base layer (the personal branch is not even computed).
      if (moa.recorder) this.#recordRouting(moa.recorder, ctx, tidy(() => zeros([hidden.size(0), hidden.size(1), 1], { device: hidden.device })));
      return this.#prior.forward(hidden, context, ctx);
    }
    return tidy(() => {
      const personal = this.kind === 'self' ? this.personal.forward(hidden, null, ctx) : this.#personalCross(hidden, context, ctx, moa);
      if (moa.forcePersonal) {
        if (moa.recorder) this.#recordRouting(moa.recorder, ctx, ones([hidden.size(0), hidden.size(1), 1], { device: hidden.device }));
        return personal;
      }
      const prior = this.#prior.forward(hidden, context, ctx);
      const r1 = this.router.personalWeight(hidden, strength); // [B, N, 1] float32
      if (moa.recorder) this.#recordRouting(moa.recorder, ctx, r1);
      // r0·prior + r1·personal with r0 = 1 − r1 as one lerp pass (personal = prior gives prior exactly).
      return prior.lerp(personal, r1.to(prior.dtype));
    });
  }

  /** The personal expert on the multimodal prompt (the plain text when no subject is bound). */
  #personalCross(hidden: Tensor, context: Tensor | null, ctx: AttentionCallContext, moa: MoAConditioning): Tensor {
    if (!context) throw new TypeError(`MoA cross-attention layer ${this.name} was called without a context`);
    const [b, l] = context.shape as [number, number, number];
    const placement = SubjectPlacement.of(moa, b, l, this.config.imageEmbedDim, this.config.maxSubjects);
    const multimodal = this.#fusion!.multimodalContext(context, placement, this.index);
    if (placement.count === 0 || !moa.recorder?.subjectAttention) return this.personal.forward(hidden, multimodal, ctx);
    return this.#attendRecording(hidden, multimodal, placement, ctx, moa.recorder);
  }

  /**
   * The personal cross-attention computed with explicit probabilities, so the attention each
   * subject's token receives can be recorded: [B, S, h, w], averaged over heads.
   */
  #attendRecording(hidden: Tensor, context: Tensor, placement: SubjectPlacement, ctx: AttentionCallContext, recorder: MoARecorder): Tensor {
    return tidy(() => {
      const p = this.personal;
      const q = p.to_q.forward(hidden);
      const [b, n, inner] = q.shape as [number, number, number];
      const heads = p.heads;
      const d = inner / heads;
      const split = (t: Tensor) => t.reshape(b, t.size(1), heads, d).transpose(1, 2); // [B, heads, L, d]
      const scores = split(q.mul(1 / Math.sqrt(d))).matmul(split(p.to_k.forward(context)).transpose(-2, -1)); // [B, heads, N, L]
      const probs = scores.softmax(-1, 'float32');
      const v = split(p.to_v.forward(context));
      const attended = probs.to(v.dtype).matmul(v).transpose(1, 2).reshape(b, n, inner);
      let out = (p.to_out.at(0) as Linear).forward(attended);
      const drop = p.to_out.at(1) as Dropout;
      if (drop.p > 0) out = drop.forward(out);

      const { index, valid } = placement.slots(hidden.device);
      const s = placement.maxPerElement;
      const perToken = probs.mean(1).transpose(1, 2); // [B, L, N]
      const maps = perToken.gather(1, index.expand(b, s, n)).mul(valid).reshape(b, s, ctx.size[0], ctx.size[1]);
      recorder.subjectAttention!(this.name, ctx.size, handOver(maps, recorder));
      return out;
    });
  }

  #recordRouting(recorder: MoARecorder, ctx: AttentionCallContext, r1: Tensor): void {
    const [h, w] = ctx.size;
    const map = tidy(() => handOver(r1.reshape(r1.size(0), h, w).float(), recorder));
    recorder.routing(this.name, this.kind, ctx.size, map);
  }
}

/**
 * A map for a recorder: float32, detached unless the recorder asks for gradients (training losses
 * on routing and attention maps), and kept out of tidy() scopes: the recorder owns it.
 */
function handOver(map: Tensor, recorder: MoARecorder): Tensor {
  return keep(recorder.withGrad ? map.float() : map.detach().float());
}
