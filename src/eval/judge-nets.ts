// The judges' networks: small convolutional nets sized for a 2-core CPU. A segmenter (pixel
// classes of a 64 px image, a small U-Net), an attribute recogniser (a subject's crop and mask →
// every attribute head) and a scene recogniser (a whole image → scene kind and time of day).
// Each takes values in [0, 1] and maps them to [-1, 1] itself.
import { groupNormOf } from '../models/layers/norm.js';
import { Conv2d } from '../nn/conv.js';
import { ModuleList } from '../nn/containers.js';
import type { InitOptions } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { GroupNorm } from '../nn/norm.js';
import { cat, interpolate } from '../tensor/functional.js';
import type { Tensor } from '../tensor/tensor.js';
import { ATTRIBUTE_LOGITS, PIXEL_CLASSES } from './labels.js';
import { CLASSES, SCENE_KINDS, TIMES } from '../world/vocab.js';

/** Conv → GroupNorm → SiLU. Norms run in float32 (groupNormOf), so bf16 autocast works. */
class ConvBlock extends Module {
  readonly conv: Conv2d;
  readonly norm: GroupNorm;

  constructor(inChannels: number, outChannels: number, { kernel = 3, stride = 1, dilation = 1, init = {} }: { kernel?: number; stride?: number; dilation?: number; init?: InitOptions } = {}) {
    super();
    const padding = kernel === 1 ? 0 : dilation;
    this.conv = this.registerModule('conv', new Conv2d(inChannels, outChannels, kernel, { stride, padding, dilation, ...init }));
    this.norm = this.registerModule('norm', new GroupNorm(groupsFor(outChannels), outChannels));
  }

  forward(x: Tensor): Tensor {
    return groupNormOf(this.norm, this.conv.forward(x)).silu();
  }
}

/** 8 channels a group where that divides, else the largest divisor up to 8 groups. */
function groupsFor(channels: number): number {
  for (let g = Math.min(8, channels); g > 1; g--) if (channels % g === 0) return g;
  return 1;
}

function checkWidths(name: string, widths: readonly number[], count: number): void {
  if (widths.length !== count || widths.some((w) => !Number.isInteger(w) || w < 4 || w > 1024)) {
    throw new RangeError(`${name}: widths must be ${count} integers from 4 to 1024, not [${widths.join(', ')}]`);
  }
}

export interface SegmenterConfig {
  /** Channels at 64, 32, 16 and 8 px (for a 64 px input). */
  widths: [number, number, number, number];
}

/**
 * Pixel classes of an image [N, 3, H, W] in [0, 1] (H and W multiples of 8) → logits
 * [N, PIXEL_CLASSES, H, W]. Three stride-2 stages down to H/8 give it the context to tell a
 * child from an adult; skips back up keep the edges.
 */
export class Segmenter extends Module {
  readonly config: SegmenterConfig;
  readonly stem: ConvBlock;
  readonly down: ModuleList<ConvBlock>;
  readonly up: ModuleList<ConvBlock>;
  readonly head: Conv2d;

  constructor(config: SegmenterConfig, init: InitOptions = {}) {
    super();
    checkWidths('segmenter', config.widths, 4);
    this.config = config;
    const [w0, w1, w2, w3] = config.widths;
    this.stem = this.registerModule('stem', new ConvBlock(3, w0, { init }));
    this.down = this.registerModule(
      'down',
      new ModuleList([
        new ConvBlock(w0, w1, { stride: 2, init }),
        new ConvBlock(w1, w1, { init }),
        new ConvBlock(w1, w2, { stride: 2, init }),
        new ConvBlock(w2, w2, { init }),
        new ConvBlock(w2, w3, { stride: 2, init }),
        new ConvBlock(w3, w3, { dilation: 2, init }),
      ]),
    );
    this.up = this.registerModule(
      'up',
      new ModuleList([
        new ConvBlock(w3 + w2, w2, { kernel: 1, init }),
        new ConvBlock(w2, w2, { init }),
        new ConvBlock(w2 + w1, w1, { kernel: 1, init }),
        new ConvBlock(w1, w1, { init }),
        new ConvBlock(w1 + w0, w0, { kernel: 1, init }),
      ]),
    );
    this.head = this.registerModule('head', new Conv2d(w0, PIXEL_CLASSES.length, 1, init));
  }

  forward(x: Tensor): Tensor {
    if (x.ndim !== 4 || x.size(1) !== 3 || x.size(2) % 8 !== 0 || x.size(3) % 8 !== 0) {
      throw new RangeError(`segmenter: input is [N, 3, H, W] with H and W multiples of 8, not [${x.shape.join(', ')}]`);
    }
    const d = [...this.down];
    const u = [...this.up];
    const s64 = this.stem.forward(x.mul(2).sub(1));
    const s32 = d[1]!.forward(d[0]!.forward(s64));
    const s16 = d[3]!.forward(d[2]!.forward(s32));
    const s8 = d[5]!.forward(d[4]!.forward(s16));
    const up = (t: Tensor) => interpolate(t, { scaleFactor: 2, mode: 'nearest' });
    const u16 = u[1]!.forward(u[0]!.forward(cat([up(s8), s16], 1)));
    const u32 = u[3]!.forward(u[2]!.forward(cat([up(u16), s32], 1)));
    const u64 = u[4]!.forward(cat([up(u32), s64], 1));
    return this.head.forward(u64);
  }
}

export interface AttributeNetConfig {
  /** Side of the square crop it reads (a multiple of 8). */
  cropSize: number;
  /** Channels at the crop's size, /2, /4 and /8. */
  widths: [number, number, number, number];
  /** Channels the last feature map is reduced to (1 × 1) before it is flattened. */
  reduce: number;
  /** Width of the hidden layer that reads the flattened map. */
  hidden: number;
}

/** Input channels of the attribute net: RGB and the subject's mask. */
export const ATTRIBUTE_INPUT_CHANNELS = 4;
/** Its outputs: every attribute head's logits, then the subject class's. */
export const ATTRIBUTE_NET_OUTPUTS = ATTRIBUTE_LOGITS + CLASSES.length;

/**
 * A subject's crop [N, 4, S, S] (RGB and mask) → [N, ATTRIBUTE_NET_OUTPUTS]: the logits of every
 * attribute head, then of the class. The last feature map is flattened, not pooled, so where a
 * colour is (hair on top, trousers below) still counts.
 */
export class AttributeNet extends Module {
  readonly config: AttributeNetConfig;
  readonly blocks: ModuleList<ConvBlock>;
  readonly reduce: ConvBlock;
  readonly hidden: Linear;
  readonly out: Linear;

  constructor(config: AttributeNetConfig, init: InitOptions = {}) {
    super();
    checkWidths('attribute net', config.widths, 4);
    if (!Number.isInteger(config.cropSize) || config.cropSize < 16 || config.cropSize % 8 !== 0) throw new RangeError(`attribute net: cropSize must be a multiple of 8 from 16, not ${config.cropSize}`);
    for (const key of ['reduce', 'hidden'] as const) {
      if (!Number.isInteger(config[key]) || config[key] < 4) throw new RangeError(`attribute net: ${key} must be an integer ≥ 4, not ${config[key]}`);
    }
    this.config = config;
    const [w0, w1, w2, w3] = config.widths;
    this.blocks = this.registerModule(
      'blocks',
      new ModuleList([
        new ConvBlock(ATTRIBUTE_INPUT_CHANNELS, w0, { init }),
        new ConvBlock(w0, w1, { stride: 2, init }),
        new ConvBlock(w1, w1, { init }),
        new ConvBlock(w1, w2, { stride: 2, init }),
        new ConvBlock(w2, w2, { init }),
        new ConvBlock(w2, w3, { stride: 2, init }),
        new ConvBlock(w3, w3, { init }),
      ]),
    );
    this.reduce = this.registerModule('reduce', new ConvBlock(w3, config.reduce, { kernel: 1, init }));
    const cells = (config.cropSize / 8) ** 2;
    this.hidden = this.registerModule('hidden', new Linear(config.reduce * cells, config.hidden, init));
    this.out = this.registerModule('out', new Linear(config.hidden, ATTRIBUTE_NET_OUTPUTS, init));
  }

  forward(x: Tensor): Tensor {
    const s = this.config.cropSize;
    if (x.ndim !== 4 || x.size(1) !== ATTRIBUTE_INPUT_CHANNELS || x.size(2) !== s || x.size(3) !== s) {
      throw new RangeError(`attribute net: input is [N, ${ATTRIBUTE_INPUT_CHANNELS}, ${s}, ${s}], not [${x.shape.join(', ')}]`);
    }
    let h = x.mul(2).sub(1);
    for (const block of this.blocks) h = block.forward(h);
    return this.out.forward(this.hidden.forward(this.reduce.forward(h).flatten(1)).silu());
  }
}

export interface SceneNetConfig {
  /** Channels at 1/2, 1/4, 1/8 and 1/16 of the input side. */
  widths: [number, number, number, number];
}

/** Scene logits of images [N, 3, H, W]: [N, SCENE_KINDS + TIMES] (kinds first). */
export class SceneNet extends Module {
  readonly config: SceneNetConfig;
  readonly blocks: ModuleList<ConvBlock>;
  readonly out: Linear;

  constructor(config: SceneNetConfig, init: InitOptions = {}) {
    super();
    checkWidths('scene net', config.widths, 4);
    this.config = config;
    const [w0, w1, w2, w3] = config.widths;
    this.blocks = this.registerModule(
      'blocks',
      new ModuleList([
        new ConvBlock(3, w0, { stride: 2, init }),
        new ConvBlock(w0, w1, { stride: 2, init }),
        new ConvBlock(w1, w1, { init }),
        new ConvBlock(w1, w2, { stride: 2, init }),
        new ConvBlock(w2, w2, { init }),
        new ConvBlock(w2, w3, { stride: 2, init }),
      ]),
    );
    this.out = this.registerModule('out', new Linear(w3, SCENE_KINDS.length + TIMES.length, init));
  }

  forward(x: Tensor): Tensor {
    if (x.ndim !== 4 || x.size(1) !== 3) throw new RangeError(`scene net: input is [N, 3, H, W], not [${x.shape.join(', ')}]`);
    let h = x.mul(2).sub(1);
    for (const block of this.blocks) h = block.forward(h);
    return this.out.forward(h.mean([2, 3]));
  }
}
