// The MoA model: a base UNet with an MoA layer at every transformer-block attention site (attn1
// and attn2; 32 in SD1.5), the fusion MLP, and optionally the image encoder. The base UNet keeps
// its weights, its modules and its state-dict keys; MoA only adds (personal experts, routers,
// fusion) and can be taken out again.
//
// Callers run the UNet as usual and put the conditioning under `extras.moa`:
//   unet.forward(sample, t, text, { moa: { subjects, timestep, strength, recorder } })
// (or moa.forward(sample, t, text, conditioning)). Without `moa` the UNet computes the base model.
import { type InitOptions } from '../nn/init.js';
import { Module } from '../nn/module.js';
import { type CLIPVisionModelWithProjection } from '../models/clip-vision.js';
import { Attention } from '../models/layers/attention.js';
import { type AttentionSite, attentionLayers, type UNet2DConditionModel } from '../models/unet/unet.js';
import { isFloating } from '../tensor/dtype.js';
import { tidy } from '../tensor/scope.js';
import { type Tensor } from '../tensor/tensor.js';
import { DEFAULT_MOA_CONFIG, type MoAConfig, moaConfig } from './config.js';
import { MoAFusion } from './fusion.js';
import { MoAAttention } from './moa-attention.js';
import { type MoAConditioning } from './types.js';

export interface MoAInitOptions extends InitOptions {
  /**
   * The CLIP image encoder subject embeddings come from. Needed when the config trains its last
   * layers (they are then MoA parameters, saved with MoA's weights); optional otherwise.
   */
  imageEncoder?: CLIPVisionModelWithProjection | null;
}

/** What fixes an MoA layer's tensor shapes: weights made for one base load only where these match. */
export interface MoALayerInfo {
  name: string;
  kind: 'self' | 'cross';
  /** The attention's query width (the UNet's channels at that block). */
  width: number;
  /** Width of its keys' input: the same as width for self-attention, the text width for cross. */
  contextDim: number;
  heads: number;
}

/** A module tree holding `modules` at their dotted paths, sharing them (nothing is copied). */
function moduleTree(entries: readonly [string, Module][]): Module {
  const root = new Module();
  for (const [path, module] of entries) {
    const parts = path.split('.');
    let node = root;
    for (const part of parts.slice(0, -1)) {
      node = node.namedChildren().find(([name]) => name === part)?.[1] ?? node.registerModule(part, new Module());
    }
    node.registerModule(parts[parts.length - 1]!, module);
  }
  return root;
}

export class MoA extends Module {
  readonly config: MoAConfig;
  readonly unet: UNet2DConditionModel;
  readonly fusion: MoAFusion;
  readonly imageEncoder: CLIPVisionModelWithProjection | null;
  /** The MoA layers in forward order (down, mid, up; attn1 before attn2). */
  readonly layers: readonly MoAAttention[];
  /** Width of the text embeddings (the UNet's cross-attention context). */
  readonly textDim: number;
  readonly #sites: readonly AttentionSite[];
  /** requiresGrad of every base parameter before MoA froze them, restored by uninstall(). */
  #requiresGrad = new Map<string, boolean>();
  /** Only what MoA adds, at its keys: moaStateDict(), moaParameters() and the weights file read it. */
  readonly #parts: Module;
  #installed = false;

  /**
   * Installs MoA on `unet` (in place: its attention sites now hold MoA layers) and freezes every
   * base parameter (see freezeBase). Personal experts start as copies of the prior, routers at
   * r0 = config.initialPriorWeight, the fusion MLP at "fused token = normalised word".
   * init: generator for the routers' and fusion's initial values, dtype/device of the fusion
   * (default: the UNet's), the image encoder; `empty: true` leaves MoA's tensors uninitialised
   * (personal experts not copied either) for weights loaded right after (loadMoAWeights).
   */
  constructor(unet: UNet2DConditionModel, config: Partial<MoAConfig> = DEFAULT_MOA_CONFIG, init: MoAInitOptions = {}) {
    super();
    this.config = moaConfig(config);
    const { imageEncoder = null, ...place } = init;
    this.unet = unet;
    this.imageEncoder = imageEncoder;
    const sites = attentionLayers(unet);
    if (sites.length === 0) throw new Error('MoA: this UNet has no transformer-block attention layers to wrap');
    const taken = sites.find((s) => s.layer instanceof MoAAttention);
    if (taken) throw new Error(`MoA is already installed on this UNet (${taken.name} is an MoA layer); uninstall it first`);
    const foreign = sites.find((s) => !(s.layer instanceof Attention));
    if (foreign) throw new Error(`MoA wraps diffusers-style Attention layers; ${foreign.name} is a ${foreign.layer.constructor.name}`);
    this.#sites = sites;
    this.textDim = this.#textDim(sites);
    this.#checkImageEncoder();

    const dtype = place.dtype ?? unet.conv_in.weight.dtype;
    const device = place.device ?? unet.conv_in.weight.device;
    const routerInit: InitOptions = { ...(place.generator && { generator: place.generator }), ...(place.empty && { empty: true }) };
    this.fusion = new MoAFusion({
      textDim: this.textDim,
      imageEmbedDim: this.config.imageEmbedDim,
      numLayers: sites.length,
      timestepDim: this.config.fusionTimestepDim,
      init: { ...routerInit, dtype, device },
    });
    // Layers are made before any is installed, so a failure leaves the UNet as it was.
    const flags = this.#baseFlags(); // before MoAAttention freezes the priors: the caller's state
    const layers: MoAAttention[] = [];
    try {
      sites.forEach((site, index) =>
        layers.push(
          new MoAAttention(site.layer as Attention, {
            name: site.name,
            kind: site.kind,
            index,
            config: this.config,
            fusion: site.kind === 'cross' ? this.fusion : null,
            init: routerInit,
          }),
        ),
      );
    } catch (error) {
      for (const layer of layers) [layer.personal, layer.router].forEach((m) => m.dispose());
      this.fusion.dispose();
      const byName = new Map([...unet.namedParameters('unet'), ...(imageEncoder?.namedParameters('image_encoder') ?? [])]);
      this.#restoreFlags(flags, (name) => byName.get(name) ?? null);
      throw error;
    }
    this.layers = layers;
    this.registerModule('unet', unet);
    this.registerModule('fusion', this.fusion);
    if (imageEncoder) this.registerModule('image_encoder', imageEncoder);
    this.#parts = moduleTree(this.#partEntries());
    this.#install(flags);
  }

  /** requiresGrad of each base parameter (the UNet's without MoA layers, the image encoder's), by key under this module. */
  #baseFlags(): Map<string, boolean> {
    const named = [...this.unet.namedParameters('unet'), ...(this.imageEncoder?.namedParameters('image_encoder') ?? [])];
    return new Map(named.map(([name, p]) => [name, p.requiresGrad]));
  }

  #restoreFlags(flags: ReadonlyMap<string, boolean>, lookup: (name: string) => Tensor | null = (name) => this.getParameter(name)): void {
    for (const [name, flag] of flags) {
      const p = lookup(name);
      if (p && isFloating(p.dtype)) p.requiresGrad_(flag);
    }
  }

  #textDim(sites: readonly AttentionSite[]): number {
    const widths = new Set(sites.filter((s) => s.kind === 'cross').map((s) => (s.layer as Attention).to_k.inFeatures));
    if (widths.size !== 1) throw new Error(`MoA needs one text width for every cross-attention layer; this UNet has ${[...widths].join(', ') || 'none'}`);
    return [...widths][0]!;
  }

  #checkImageEncoder(): void {
    const { imageEncoder: encoder, config } = this;
    if (!encoder) {
      if (config.trainImageEncoderLayers > 0) {
        throw new Error(`MoA: config.trainImageEncoderLayers is ${config.trainImageEncoderLayers}, so the image encoder is part of MoA: pass { imageEncoder }`);
      }
      return;
    }
    if (encoder.config.projection_dim !== config.imageEmbedDim) {
      throw new Error(`MoA: the image encoder's projection_dim is ${encoder.config.projection_dim}, but config.imageEmbedDim is ${config.imageEmbedDim}`);
    }
    if (config.trainImageEncoderLayers > encoder.config.num_hidden_layers) {
      throw new Error(`MoA: config.trainImageEncoderLayers (${config.trainImageEncoderLayers}) exceeds the image encoder's ${encoder.config.num_hidden_layers} layers`);
    }
  }

  /** [dotted key prefix under this module, module] for everything MoA trains. */
  #partEntries(): [string, Module][] {
    const entries: [string, Module][] = [];
    for (const layer of this.layers) {
      entries.push([`unet.${layer.name}.personal`, layer.personal], [`unet.${layer.name}.router`, layer.router]);
    }
    entries.push(['fusion', this.fusion]);
    const encoder = this.imageEncoder;
    const n = this.config.trainImageEncoderLayers;
    if (encoder && n > 0) {
      const total = encoder.config.num_hidden_layers;
      for (let i = total - n; i < total; i++) {
        const path = `vision_model.encoder.layers.${i}`;
        entries.push([`image_encoder.${path}`, encoder.getSubmodule(path)]);
      }
    }
    return entries;
  }

  // ---- installing ----

  get installed(): boolean {
    return this.#installed;
  }

  /** Puts the MoA layers into the UNet's attention sites (the constructor did) and freezes the base (see freezeBase). */
  install(): this {
    if (this.#installed) return this;
    return this.#install(this.#baseFlags());
  }

  #install(flags: Map<string, boolean>): this {
    for (const site of this.#sites) {
      if (site.block.getSubmodule(site.slot) !== site.layer) throw new Error(`MoA: ${site.name} was replaced since MoA was built; cannot install over it`);
    }
    this.#requiresGrad = flags;
    this.#sites.forEach((site, i) => site.block.registerModule(site.slot, this.layers[i]!));
    this.#installed = true;
    return this.freezeBase();
  }

  /** Restores the UNet's original attention layers and the base parameters' requiresGrad; MoA's tensors stay (install() puts them back). */
  uninstall(): this {
    if (!this.#installed) return this;
    this.#sites.forEach((site) => site.block.registerModule(site.slot, site.layer));
    this.#restoreFlags(this.#requiresGrad);
    this.#installed = false;
    return this;
  }

  // ---- parameters and state ----

  /** [key, tensor] of what MoA adds: `unet.<site>.personal.*`, `unet.<site>.router.*`, `fusion.*`, trained image-encoder layers. */
  moaNamedParameters(): [string, Tensor][] {
    return this.#parts.namedParameters();
  }

  /** What an optimizer trains. */
  moaParameters(): Tensor[] {
    return this.#parts.parameters();
  }

  /** MoA's tensors only, by key (detached aliases, as Module.stateDict). */
  moaStateDict(): Record<string, Tensor> {
    return this.#parts.stateDict();
  }

  /** A module whose state dict is exactly moaStateDict() (its tensors shared): for streaming loads. */
  moaModule(): Module {
    return this.#parts;
  }

  /** Loads MoA's tensors (strict: every key, no other); the base model is not touched. */
  loadMoAStateDict(state: Readonly<Record<string, Tensor>>): void {
    this.#parts.loadStateDict(state);
  }

  /** The UNet's state dict without MoA's keys: what the base UNet's stateDict() was before install. */
  baseStateDict(): Record<string, Tensor> {
    return tidy(() => {
      const prefixes = this.layers.flatMap((l) => [`${l.name}.personal.`, `${l.name}.router.`]);
      const out: Record<string, Tensor> = {};
      for (const [key, t] of Object.entries(this.unet.stateDict())) if (!prefixes.some((p) => key.startsWith(p))) out[key] = t;
      return out;
    });
  }

  /** Only MoA's parameters require grad; the base UNet and the image encoder (but its trained layers) are frozen. */
  freezeBase(): this {
    const trainable = new Set(this.moaParameters());
    for (const p of this.parameters()) if (isFloating(p.dtype)) p.requiresGrad_(trainable.has(p));
    for (const p of trainable) if (isFloating(p.dtype)) p.requiresGrad_(true);
    return this;
  }

  /** Shapes that MoA weights must match (see weights.ts). */
  layerInfo(): MoALayerInfo[] {
    return this.layers.map((l) => ({ name: l.name, kind: l.kind, width: l.prior.to_q.inFeatures, contextDim: l.prior.to_k.inFeatures, heads: l.prior.heads }));
  }

  // ---- running ----

  /** unet.forward with `extras.moa = conditioning`; null or omitted runs the base model. */
  forward(sample: Tensor, timestep: number | Tensor, text: Tensor, conditioning: MoAConditioning | null = null): Tensor {
    if (!this.#installed) throw new Error('MoA is not installed on its UNet (call install())');
    return this.unet.forward(sample, timestep, text, conditioning ? { moa: conditioning } : {});
  }

  /** Converts the whole model; MoA's own tensors too while uninstalled (they are then outside the UNet). */
  override to(target: Parameters<Module['to']>[0]): this {
    super.to(target);
    this.#parts.to(target); // a no-op for what super.to already converted
    return this;
  }

  override train(mode = true): this {
    super.train(mode);
    this.#parts.train(mode);
    return this;
  }

  /** Frees only what MoA added (after uninstalling it); the UNet and the image encoder stay the caller's. */
  override dispose(): void {
    this.uninstall();
    for (const layer of this.layers) {
      layer.personal.dispose();
      layer.router.dispose();
    }
    this.fusion.dispose();
  }
}
