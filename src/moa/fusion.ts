// The fusion MLP (MOA_SPEC 2.4): a subject's image embedding and the text encoder's output at
// its class word, conditioned on the diffusion timestep and the MoA layer, become one token that
// replaces the word in the personal cross-attention's context (the multimodal prompt).
// The MLP has FastComposer's shape (two LayerNorm → Linear → GELU → Linear blocks, the second
// with a residual, then a LayerNorm); the timestep and layer embeddings are MoA's additions.
import { Embedding } from '../nn/embedding.js';
import { type InitOptions } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { LayerNorm } from '../nn/norm.js';
import { layerNormOf } from '../models/layers/norm.js';
import { sinusoidalTimestepEmbedding } from '../models/unet/embeddings.js';
import { noGrad } from '../tensor/autograd.js';
import { tensor } from '../tensor/create.js';
import { cat } from '../tensor/functional.js';
import { tidy } from '../tensor/scope.js';
import { type Tensor } from '../tensor/tensor.js';
import { type SubjectPlacement } from './conditioning.js';

/** LayerNorm → Linear(in, hidden) → GELU → Linear(hidden, out), plus the input when `residual`. */
export class FusionMLP extends Module {
  readonly residual: boolean;
  readonly layernorm: LayerNorm;
  readonly fc1: Linear;
  readonly fc2: Linear;

  /** `zeroOutput`: fc2 starts at zero, so the block adds nothing until it has trained. */
  constructor(inDim: number, outDim: number, hiddenDim: number, { residual, zeroOutput, init = {} }: { residual: boolean; zeroOutput: boolean; init?: InitOptions }) {
    super();
    if (residual && inDim !== outDim) throw new RangeError(`FusionMLP: a residual block needs in = out, not ${inDim} → ${outDim}`);
    this.residual = residual;
    this.layernorm = this.registerModule('layernorm', new LayerNorm(inDim, { dtype: init.dtype, device: init.device }));
    this.fc1 = this.registerModule('fc1', new Linear(inDim, hiddenDim, init));
    this.fc2 = this.registerModule('fc2', new Linear(hiddenDim, outDim, zeroOutput ? { ...init, empty: true } : init));
    if (zeroOutput) noGrad(() => [this.fc2.weight, this.fc2.bias].forEach((p) => p?.zero_()));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const y = this.fc2.forward(this.fc1.forward(layerNormOf(this.layernorm, x)).gelu());
      return this.residual ? y.add(x) : y;
    });
  }
}

export interface MoAFusionOptions {
  /** Width of the text encoder's output (the UNet's cross-attention context width). */
  textDim: number;
  imageEmbedDim: number;
  /** Number of MoA layers (rows of the layer embedding). */
  numLayers: number;
  /** Channels of the sinusoidal timestep embedding. */
  timestepDim: number;
  init?: InitOptions;
}

/**
 * Keys: `time_proj.*` (Linear(timestepDim, in)), `layer_embedding.weight` [numLayers, in],
 * `mlp1.*` (in → textDim), `mlp2.*` (textDim → textDim, residual), `layer_norm.*`, where
 * in = imageEmbedDim + textDim.
 */
export class MoAFusion extends Module {
  readonly textDim: number;
  readonly imageEmbedDim: number;
  readonly numLayers: number;
  readonly timestepDim: number;
  readonly time_proj: Linear;
  readonly layer_embedding: Embedding;
  readonly mlp1: FusionMLP;
  readonly mlp2: FusionMLP;
  readonly layer_norm: LayerNorm;

  /**
   * Both MLP blocks' last linears start at zero, so at first the fused token is
   * LayerNorm(word embedding): the word itself, renormalised (the text encoder's output already
   * went through its own final LayerNorm, so this is close to the word, not bit-equal).
   */
  constructor({ textDim, imageEmbedDim, numLayers, timestepDim, init = {} }: MoAFusionOptions) {
    super();
    this.textDim = textDim;
    this.imageEmbedDim = imageEmbedDim;
    this.numLayers = numLayers;
    this.timestepDim = timestepDim;
    const inDim = imageEmbedDim + textDim;
    this.time_proj = this.registerModule('time_proj', new Linear(timestepDim, inDim, init));
    this.layer_embedding = this.registerModule('layer_embedding', new Embedding(numLayers, inDim, init));
    // Small layer embeddings: standard normal ones would outweigh the unit-scale features they are added to.
    noGrad(() => this.layer_embedding.weight.mul_(0.02));
    this.mlp1 = this.registerModule('mlp1', new FusionMLP(inDim, textDim, textDim, { residual: false, zeroOutput: true, init }));
    this.mlp2 = this.registerModule('mlp2', new FusionMLP(textDim, textDim, textDim, { residual: true, zeroOutput: true, init }));
    this.layer_norm = this.registerModule('layer_norm', new LayerNorm(textDim, { dtype: init.dtype, device: init.device }));
  }

  /**
   * words [K, textDim] (text-encoder output at each subject's word), images [K, imageEmbedDim],
   * timesteps [K], layer (the MoA layer's index) → fused tokens [K, textDim], in the fusion's dtype
   * (bfloat16 under autocast).
   */
  fuse(words: Tensor, images: Tensor, timesteps: Tensor, layer: number): Tensor {
    if (!Number.isInteger(layer) || layer < 0 || layer >= this.numLayers) throw new RangeError(`MoAFusion: layer ${layer} is outside [0, ${this.numLayers})`);
    return tidy(() => {
      const dtype = this.paramDtype;
      const w = words.to(dtype);
      const time = sinusoidalTimestepEmbedding(timesteps, this.timestepDim, { flipSinToCos: true, downscaleFreqShift: 0 });
      const index = tensor([layer], { dtype: 'int64', device: w.device });
      const x = cat([images.to(dtype), w], -1)
        .add(this.time_proj.forward(time.to(dtype)))
        .add(this.layer_embedding.forward(index));
      const fused = this.mlp2.forward(this.mlp1.forward(x).add(w));
      return layerNormOf(this.layer_norm, fused);
    });
  }

  private get paramDtype() {
    return this.mlp1.fc1.weight.dtype;
  }

  /**
   * The multimodal prompt for one MoA layer: text [B, L, textDim] with each placed subject's word
   * replaced by its fused token (the other tokens are the text's, bit for bit). Returns `text`
   * itself when nothing is placed.
   */
  multimodalContext(text: Tensor, placement: SubjectPlacement, layer: number): Tensor {
    if (placement.count === 0) return text;
    return tidy(() => {
      const [b, l, d] = text.shape as [number, number, number];
      const flat = text.reshape(b * l, d);
      const rows = placement.rows(l, text.device); // [K] int64: b·L + tokenIndex
      const words = flat.indexSelect(0, rows);
      const fused = this.fuse(words, placement.images(this.paramDtype, text.device), placement.timesteps(text.device), layer).to(text.dtype);
      return flat.scatter(0, rows.view(-1, 1).expand(placement.count, d), fused).view(b, l, d);
    });
  }
}
