// Training losses (spec §3.3) and the training recorder: values against plain-JS computations,
// gradchecks, the masking decision, the losses' behaviour, and end to end on a tiny MoA UNet.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { MoA, moaConfig, type SubjectBinding } from '../src/moa/index.js';
import { UNet2DConditionModel } from '../src/models/unet/index.js';
import { backgroundPriorLoss, drawMaskDecisions, maskedDiffusionLoss, objectLoss, routerLoss, routingLosses, subjectErrorSums, subjectRoutingLoss, totalLoss } from '../src/train/losses/index.js';
import { TrainingRecorder } from '../src/train/recorder.js';
import { Generator, gradcheck, randn, type Tensor, tensor, tidy } from '../src/tensor/index.js';
import { close, rnd, settledLiveTensors } from './helpers.js';
import { TINY_CONFIGS } from './tiny-sd.js';

const f64 = (values: readonly number[], shape: readonly number[], grad = false) => {
  const t = tensor(values, { shape, dtype: 'float64' });
  return grad ? t.requiresGrad_() : t;
};
const binary = (n: number, seed: number) => rnd(n, seed, 0, 1).map((v) => (v < 0.5 ? 1 : 0));
const fill = (n: number, value: number) => Array.from({ length: n }, () => value);

// ---- independent references (plain loops over row-major arrays) ----

/** With `overSubjects`, a masked element's sum is divided by C·Σm² (its subjects' area) instead of C·H·W. */
function refDiffusion(pred: number[], target: number[], mask: number[] | null, masked: boolean[], [B, C, H, W]: number[], subjectWeight = 1, overSubjects = false): number {
  let total = 0;
  for (let b = 0; b < B!; b++) {
    let any = false;
    let area = 0;
    for (let i = 0; i < H! * W!; i++) if (mask && mask[b * H! * W! + i]! > 0) any = true;
    const isMasked = mask !== null && masked[b]! && any;
    let sum = 0;
    for (let c = 0; c < C!; c++)
      for (let i = 0; i < H! * W!; i++) {
        const j = ((b * C! + c) * H! * W!) + i;
        const m = isMasked ? mask[b * H! * W! + i]! : 1;
        const w = mask ? 1 + (subjectWeight - 1) * mask[b * H! * W! + i]! : 1;
        sum += w * (m * pred[j]! - m * target[j]!) ** 2;
        area += m * m;
      }
    total += overSubjects && isMasked ? sum / area : sum / (C! * H! * W!);
  }
  return total / B!;
}

/** Bilinear upsampling, align_corners false (PyTorch's convention), of one [h, w] plane. */
function refUpsample(plane: number[], h: number, w: number, H: number, W: number): number[] {
  const src = (dst: number, inSize: number, outSize: number) => Math.max(0, (dst + 0.5) * (inSize / outSize) - 0.5);
  const out: number[] = [];
  for (let y = 0; y < H; y++)
    for (let x = 0; x < W; x++) {
      const sy = src(y, h, H), sx = src(x, w, W);
      const y0 = Math.floor(sy), x0 = Math.floor(sx);
      const y1 = Math.min(y0 + 1, h - 1), x1 = Math.min(x0 + 1, w - 1);
      const ly = sy - y0, lx = sx - x0;
      const at = (yy: number, xx: number) => plane[yy * w + xx]!;
      out.push((1 - ly) * ((1 - lx) * at(y0, x0) + lx * at(y0, x1)) + ly * ((1 - lx) * at(y1, x0) + lx * at(y1, x1)));
    }
  return out;
}

/** The router loss, or with `subjects` the subject routing loss. */
function refRouter(layers: { r1: number[]; h: number; w: number }[], mask: number[], B: number, H: number, W: number, subjects = false): number {
  let sum = 0;
  for (let b = 0; b < B; b++) {
    const r0 = fill(H * W, 0);
    for (const { r1, h, w } of layers) {
      const up = refUpsample(r1.slice(b * h * w, (b + 1) * h * w).map((v) => 1 - v), h, w, H, W);
      up.forEach((v, i) => (r0[i]! += v / layers.length));
    }
    for (let i = 0; i < H * W; i++) {
      const m = mask[b * H * W + i]!;
      sum += (subjects ? m * r0[i]! : (1 - m) * (1 - r0[i]!)) ** 2;
    }
  }
  return sum / (B * H * W);
}

function refObject(layers: number[][], masks: number[], counts: number[], S: number, H: number, W: number): number {
  let total = 0, n = 0;
  counts.forEach((count, b) => {
    for (let k = 0; k < count; k++) {
      let term = 0;
      for (const a of layers) {
        let inS = 0, inW = 0, outS = 0, outW = 0;
        for (let i = 0; i < H * W; i++) {
          const j = (b * S + k) * H * W + i;
          if (masks[j]! > 0) (inS += a[j]!), inW++;
          else (outS += a[j]!), outW++;
        }
        term += (outW ? outS / outW : 0) - (inW ? inS / inW : 0);
      }
      total += term / layers.length;
      n++;
    }
  });
  return n ? total / n : 0;
}

describe('masked diffusion loss', () => {
  const shape = [2, 2, 3, 3];
  const pred = rnd(36, 1), target = rnd(36, 2);
  const mask = [...binary(9, 3), ...fill(9, 0)]; // element 1 has no subjects

  test('matches a plain computation, masked or not; an element without subjects is never masked', () => {
    tidy(() => {
      const p = f64(pred, shape), t = f64(target, shape), m = f64(mask, [2, 1, 3, 3]);
      for (const masked of [[true, true], [false, true], [true, false], [false, false]]) {
        close([maskedDiffusionLoss(p, t, m, { masked }).item()], [refDiffusion(pred, target, mask, masked, shape)], 1e-12, `masked ${masked}`);
      }
      close([maskedDiffusionLoss(p, t, null).item()], [refDiffusion(pred, target, null, [false, false], shape)], 1e-12);
      // Element 1's mask is empty: masking it changes nothing.
      assert.equal(maskedDiffusionLoss(p, t, m, { masked: [true, true] }).item(), maskedDiffusionLoss(p, t, m, { masked: [true, false] }).item());
    });
  });

  test('subjectWeight counts subject pixels k times, masked or not; 1 is the plain loss; below 1 is refused', () => {
    tidy(() => {
      const p = f64(pred, shape), t = f64(target, shape), m = f64(mask, [2, 1, 3, 3]);
      for (const masked of [[true, false], [false, false]]) {
        const weighted = maskedDiffusionLoss(p, t, m, { masked, subjectWeight: 3 }).item();
        close([weighted], [refDiffusion(pred, target, mask, masked, shape, 3)], 1e-12, `masked ${masked}`);
        assert.ok(weighted > maskedDiffusionLoss(p, t, m, { masked }).item());
      }
      assert.equal(maskedDiffusionLoss(p, t, m, { masked: [false, true], subjectWeight: 1 }).item(), maskedDiffusionLoss(p, t, m, { masked: [false, true] }).item());
      assert.throws(() => maskedDiffusionLoss(p, t, m, { masked: [true, true], subjectWeight: 0.5 }), /subjectWeight must be a finite number ≥ 1, not 0.5/);
    });
  });

  test("maskedAverage 'subjects': a masked element is its mean over the subjects' area, the others unchanged; anything else is refused", () => {
    tidy(() => {
      const soft = mask.map((v, i) => v * (0.25 + (i % 4) / 4)); // soft coverage, as the loader's masks are
      const p = f64(pred, shape), t = f64(target, shape), m = f64(soft, [2, 1, 3, 3]);
      for (const masked of [[true, true], [true, false], [false, false]]) {
        for (const subjectWeight of [1, 3]) {
          const got = maskedDiffusionLoss(p, t, m, { masked, subjectWeight, maskedAverage: 'subjects' }).item();
          close([got], [refDiffusion(pred, target, soft, masked, shape, subjectWeight, true)], 1e-12, `masked ${masked}, weight ${subjectWeight}`);
        }
      }
      // Nothing masked: the same loss as FastComposer's average.
      assert.equal(maskedDiffusionLoss(p, t, m, { masked: [false, false], maskedAverage: 'subjects' }).item(), maskedDiffusionLoss(p, t, m, { masked: [false, false] }).item());
      // Masked, the element's subjects now count as a whole image: the loss grows by H·W / Σm² on it.
      assert.ok(maskedDiffusionLoss(p, t, m, { masked: [true, false], maskedAverage: 'subjects' }).item() > maskedDiffusionLoss(p, t, m, { masked: [true, false] }).item());
      assert.throws(() => maskedDiffusionLoss(p, t, m, { masked: [true, true], maskedAverage: 'pixels' as never }), /maskedAverage must be one of latent, subjects, not "pixels"/);
    });
  });

  test('subjectErrorSums: the squared error over subject pixels and how many values it covers', () => {
    tidy(() => {
      const p = f64(pred, shape), t = f64(target, shape), m = f64(mask, [2, 1, 3, 3]);
      let sum = 0;
      let count = 0;
      for (let c = 0; c < 2; c++)
        for (let i = 0; i < 9; i++) {
          const j = c * 9 + i; // element 0: element 1 has no subject pixels
          sum += mask[i]! * (pred[j]! - target[j]!) ** 2;
          count += mask[i]!;
        }
      const got = subjectErrorSums(p, t, m);
      close([got.sum, got.count], [sum, count], 1e-12);
      assert.ok(count > 0 && got.sum / got.count !== maskedDiffusionLoss(p, t, null).item(), 'not the whole image\'s MSE');
      assert.deepEqual(subjectErrorSums(p, t, f64(fill(18, 0), [2, 1, 3, 3])), { sum: 0, count: 0 });
    });
  });

  test('the masking decision is deterministic by seed and drawn with probability p', () => {
    assert.deepEqual(drawMaskDecisions(64, 0.5, new Generator(7)), drawMaskDecisions(64, 0.5, new Generator(7)));
    assert.notDeepEqual(drawMaskDecisions(64, 0.5, new Generator(7)), drawMaskDecisions(64, 0.5, new Generator(8)));
    for (const p of [0.5, 0.2]) {
      const share = drawMaskDecisions(20000, p, new Generator(1)).filter(Boolean).length / 20000;
      assert.ok(Math.abs(share - p) < 0.02, `p ${p}: share ${share}`);
    }
    assert.ok(drawMaskDecisions(100, 0, new Generator(1)).every((m) => !m));
    assert.ok(drawMaskDecisions(100, 1, new Generator(1)).every((m) => m));
    tidy(() => {
      const p = f64(pred, shape), t = f64(target, shape), m = f64(mask, [2, 1, 3, 3]);
      const drawn = maskedDiffusionLoss(p, t, m, { generator: new Generator(5), maskProbability: 0.5 }).item();
      const expected = refDiffusion(pred, target, mask, drawMaskDecisions(2, 0.5, new Generator(5)), shape);
      close([drawn], [expected], 1e-12);
    });
  });

  test('gradcheck w.r.t. prediction and target', () => {
    tidy(() => {
      const p = f64(pred, shape, true), t = f64(target, shape, true), m = f64(mask, [2, 1, 3, 3]);
      gradcheck((a, b) => maskedDiffusionLoss(a!, b!, m, { masked: [true, false] }), [p, t]);
      gradcheck((a, b) => maskedDiffusionLoss(a!, b!, null), [p, t]);
      gradcheck((a, b) => maskedDiffusionLoss(a!, b!, m, { masked: [false, true], subjectWeight: 4 }), [p, t]);
    });
  });

  test('bf16 inputs give float32 losses (diffusion, router, object)', () => {
    tidy(() => {
      const loss = maskedDiffusionLoss(f64(pred, shape).bfloat16(), f64(target, shape).bfloat16(), f64(mask, [2, 1, 3, 3]).bfloat16(), { masked: [true, true] });
      assert.equal(loss.dtype, 'float32');
      const r1 = f64(rnd(32, 6, 0, 1), [2, 4, 4]).bfloat16();
      assert.equal(routerLoss([r1], f64(mask, [2, 1, 3, 3]).bfloat16()).dtype, 'float32');
      const maps = f64(rnd(32, 9, 0, 1), [2, 1, 4, 4]).bfloat16();
      assert.equal(objectLoss([maps], f64(rnd(32, 8, 0, 1), [2, 1, 4, 4]).bfloat16(), [1, 0]).dtype, 'float32');
    });
  });
});

describe('router loss', () => {
  const mask = [...binary(16, 4), ...binary(16, 5)]; // [2, 1, 4, 4]
  const layers = [
    { r1: rnd(32, 6, 0, 1), h: 4, w: 4 },
    { r1: rnd(8, 7, 0, 1), h: 2, w: 2 }, // resized to 4×4
  ];
  const maps = (grad = false) => layers.map((l) => f64(l.r1, [2, l.h, l.w], grad));
  /** A loss of one layer whose r1 is r1(true) on background pixels and r1(false) on subjects. */
  const onOneLayer = (loss: typeof routerLoss, r1: (bg: boolean) => number) => loss([f64(mask.map((v) => r1(v === 0)), [2, 4, 4])], f64(mask, [2, 1, 4, 4])).item();

  test('matches a plain computation, with maps resized bilinearly to the latent grid', () => {
    tidy(() => close([routerLoss(maps(), f64(mask, [2, 1, 4, 4])).item()], [refRouter(layers, mask, 2, 4, 4)], 1e-12));
  });

  test('gradcheck w.r.t. every layer\'s r1', () => {
    tidy(() => gradcheck((a, b) => routerLoss([a!, b!], f64(mask, [2, 1, 4, 4])), maps(true)));
  });

  test('is 0 with r1 = 0 on the background, grows with background r1, and ignores subject pixels', () => {
    tidy(() => {
      const loss = (r1: (bg: boolean) => number) => onOneLayer(routerLoss, r1);
      assert.equal(loss((bg) => (bg ? 0 : 0.9)), 0);
      const values = [0.1, 0.3, 0.6, 1].map((v) => loss((bg) => (bg ? v : 0.5)));
      for (let i = 1; i < values.length; i++) assert.ok(values[i]! > values[i - 1]!, `grows: ${values}`);
      assert.equal(loss((bg) => (bg ? 0.3 : 0)), loss((bg) => (bg ? 0.3 : 1)));
    });
  });

  test('subject routing: matches a plain computation and gradchecks', () => {
    tidy(() => close([subjectRoutingLoss(maps(), f64(mask, [2, 1, 4, 4])).item()], [refRouter(layers, mask, 2, 4, 4, true)], 1e-12));
    tidy(() => gradcheck((a, b) => subjectRoutingLoss([a!, b!], f64(mask, [2, 1, 4, 4])), maps(true)));
    tidy(() => {
      const both = routingLosses(maps(), f64(mask, [2, 1, 4, 4])); // what training computes, in one pass
      close([both.router.item(), both.subject.item()], [refRouter(layers, mask, 2, 4, 4), refRouter(layers, mask, 2, 4, 4, true)], 1e-12);
    });
  });

  test('subject routing: 0 with r1 = 1 on subjects, falls as subject r1 grows, and ignores the background', () => {
    tidy(() => {
      const loss = (r1: (bg: boolean) => number) => onOneLayer(subjectRoutingLoss, r1);
      assert.equal(loss((bg) => (bg ? 0.7 : 1)), 0);
      const values = [0, 0.3, 0.6, 0.9].map((v) => loss((bg) => (bg ? 0.5 : v)));
      for (let i = 1; i < values.length; i++) assert.ok(values[i]! < values[i - 1]!, `falls: ${values}`);
      assert.equal(loss((bg) => (bg ? 0 : 0.4)), loss((bg) => (bg ? 1 : 0.4)));
    });
  });

  test('the total weighs each term by its λ (subject routing off unless asked)', () => {
    tidy(() => {
      const inputs = {
        pred: f64(rnd(64, 12, -1, 1), [2, 2, 4, 4]),
        target: f64(rnd(64, 13, -1, 1), [2, 2, 4, 4]),
        unionMask: f64(mask, [2, 1, 4, 4]),
        subjectMasks: f64(mask, [2, 1, 4, 4]),
        subjectCounts: [1, 1],
        r1Maps: maps(),
        attentionMaps: [f64(rnd(32, 14, 0, 1), [2, 1, 4, 4])],
      };
      const lambdas = { router: 0.5, routerSubject: 2, object: 0.1, maskProbability: 0.5 };
      const t = totalLoss({ ...inputs, generator: new Generator(3) }, lambdas);
      const expected = t.diffusion.item() + 0.5 * t.router.item() + 2 * t.routerSubject.item() + 0.1 * t.object.item();
      close([t.total.item()], [expected], 1e-12);
      const spec = totalLoss({ ...inputs, generator: new Generator(3) }, { object: 0.1 });
      close([spec.total.item()], [spec.diffusion.item() + spec.router.item() + 0.1 * spec.object.item()], 1e-12);
    });
  });
});

describe('background preservation loss', () => {
  const shape = [2, 2, 3, 3];
  const pred = rnd(36, 21, -1, 1);
  const prior = rnd(36, 22, -1, 1);
  const mask = [...binary(9, 23), ...binary(9, 24)]; // [2, 1, 3, 3]

  test('matches a plain computation: mean over every element of the background difference squared', () => {
    let sum = 0;
    for (let i = 0; i < 36; i++) {
      const [b, pixel] = [Math.floor(i / 18), i % 9];
      sum += ((1 - mask[b * 9 + pixel]!) * (pred[i]! - prior[i]!)) ** 2;
    }
    tidy(() => close([backgroundPriorLoss(f64(pred, shape), f64(prior, shape), f64(mask, [2, 1, 3, 3])).item()], [sum / 36], 1e-12));
  });

  test('gradcheck w.r.t. the prediction; the prior gets no gradient', () => {
    tidy(() => {
      const m = f64(mask, [2, 1, 3, 3]);
      gradcheck((a) => backgroundPriorLoss(a!, f64(prior, shape), m), [f64(pred, shape, true)]);
      const p = f64(pred, shape, true), q = f64(prior, shape, true);
      backgroundPriorLoss(p, q, m).backward();
      assert.equal(q.grad, null);
      assert.ok(p.grad !== null);
    });
  });

  test('is 0 when the background matches the prior, whatever the subjects do; shapes must match', () => {
    tidy(() => {
      const onSubjects = pred.map((v, i) => (mask[Math.floor(i / 18) * 9 + (i % 9)] ? v : prior[i]!));
      assert.equal(backgroundPriorLoss(f64(onSubjects, shape), f64(prior, shape), f64(mask, [2, 1, 3, 3])).item(), 0);
      assert.throws(() => backgroundPriorLoss(f64(pred, shape), f64(prior.slice(0, 18), [1, 2, 3, 3]), f64(mask, [2, 1, 3, 3])), /pred \[2, 2, 3, 3\] and prior \[1, 2, 3, 3\] differ/);
    });
  });

  test('the total adds λ_bg·L_bg and asks for the prior\'s prediction when λ_bg > 0', () => {
    tidy(() => {
      const inputs = {
        pred: f64(pred, shape),
        target: f64(rnd(36, 25, -1, 1), shape),
        unionMask: f64(mask, [2, 1, 3, 3]),
        subjectMasks: f64(mask, [2, 1, 3, 3]),
        subjectCounts: [1, 1],
        r1Maps: [f64(rnd(18, 26, 0, 1), [2, 3, 3])],
        attentionMaps: [f64(rnd(18, 27, 0, 1), [2, 1, 3, 3])],
        generator: new Generator(3),
      };
      const t = totalLoss({ ...inputs, priorPred: f64(prior, shape) }, { background: 2, object: 0 });
      close([t.total.item()], [t.diffusion.item() + t.router.item() + 2 * t.background.item()], 1e-12);
      assert.ok(t.background.item() > 0);
      assert.equal(totalLoss(inputs).background.item(), 0, 'off by default');
      assert.throws(() => totalLoss(inputs, { background: 1 }), /loss.background > 0 needs priorPred/);
    });
  });
});

describe('object loss', () => {
  const [B, S, H, W] = [2, 2, 4, 4];
  const masks = binary(B * S * H * W, 8);
  const counts = [2, 1];
  const layers = [rnd(64, 9, 0, 1), rnd(64, 10, 0, 1)];

  test('matches a plain computation over layers and present subjects', () => {
    tidy(() => {
      const got = objectLoss(layers.map((a) => f64(a, [B, S, H, W])), f64(masks, [B, S, H, W]), counts).item();
      close([got], [refObject(layers, masks, counts, S, H, W)], 1e-12);
      assert.equal(objectLoss(layers.map((a) => f64(a, [B, S, H, W])), f64(masks, [B, S, H, W]), [0, 0]).item(), 0);
    });
  });

  test('gradcheck w.r.t. the maps, including a coarser layer (masks resized to it)', () => {
    tidy(() => {
      const inputs = [f64(layers[0]!, [B, S, H, W], true), f64(rnd(16, 11, 0, 1), [B, S, 2, 2], true)];
      gradcheck((a, b) => objectLoss([a!, b!], f64(masks, [B, S, H, W]), counts), inputs);
    });
  });

  test('negative when attention sits inside the mask, positive outside', () => {
    tidy(() => {
      const m = f64(masks, [B, S, H, W]);
      const inside = objectLoss([f64(masks, [B, S, H, W])], m, counts).item();
      const outside = objectLoss([f64(masks.map((v) => 1 - v), [B, S, H, W])], m, counts).item();
      assert.ok(inside < 0 && Math.abs(inside + 1) < 1e-12, `inside ${inside}`);
      assert.ok(outside > 0 && Math.abs(outside - 1) < 1e-12, `outside ${outside}`);
    });
  });
});

// ---- end to end on a tiny MoA UNet ----

const CONFIG = moaConfig({ imageEmbedDim: 32 });
const gen = (seed: number) => new Generator(seed);

function setup() {
  const unet = new UNet2DConditionModel(TINY_CONFIGS.unet, { generator: gen(1) }).eval();
  const moa = new MoA(unet, CONFIG, { generator: gen(5) }).train();
  const g = gen(3);
  const x = { sample: randn([2, 4, 8, 8], { generator: g }), timestep: tensor([500, 700]), text: randn([2, 77, 32], { generator: g }) };
  const noise = randn([2, 4, 8, 8], { generator: g });
  const subjects: SubjectBinding[][] = [
    [
      { tokenIndex: 3, embedding: randn([32], { generator: gen(10) }) },
      { tokenIndex: 6, embedding: randn([32], { generator: gen(11) }) },
    ],
    [],
  ];
  // Element 0: subject 0 in the top-left quarter, subject 1 in the bottom-right; element 1: none.
  const m = fill(2 * 2 * 64, 0);
  for (let y = 0; y < 8; y++)
    for (let xx = 0; xx < 8; xx++) {
      if (y < 4 && xx < 4) m[y * 8 + xx] = 1;
      if (y >= 4 && xx >= 4) m[64 + y * 8 + xx] = 1;
    }
  const subjectMasks = tensor(m, { shape: [2, 2, 8, 8] });
  const unionMask = subjectMasks.sum(1, true).clamp(0, 1);
  return { unet, moa, x, noise, subjects, subjectMasks, unionMask };
}

function step(s: ReturnType<typeof setup>, recorder: TrainingRecorder, which: 'total' | 'router' | 'routerSubject' | 'object') {
  tidy(() => {
    const pred = s.unet.forward(s.x.sample, s.x.timestep, s.x.text, { moa: { subjects: s.subjects, timestep: s.x.timestep, recorder } });
    const terms = totalLoss({
      pred,
      target: s.noise,
      unionMask: s.unionMask,
      subjectMasks: s.subjectMasks,
      subjectCounts: s.subjects.map((b) => b.length),
      r1Maps: recorder.r1Maps(),
      attentionMaps: recorder.middleMaps(),
      generator: gen(2),
    });
    for (const t of Object.values(terms)) assert.ok(Number.isFinite(t.item()) && t.ndim === 0);
    terms[which].backward();
  });
  recorder.reset();
}

describe('training recorder and losses on a tiny MoA UNet', () => {
  test('records every layer, selects the middle layers, and the losses reach the right parameters', () => {
    const s = setup();
    const recorder = new TrainingRecorder();
    tidy(() => s.unet.forward(s.x.sample, s.x.timestep, s.x.text, { moa: { subjects: s.subjects, timestep: s.x.timestep, recorder } }));
    assert.equal(recorder.routings.length, s.moa.layers.length);
    assert.equal(recorder.attentions.length, s.moa.layers.filter((l) => l.kind === 'cross').length);
    assert.ok(recorder.routings.every((r) => r.r1.requiresGrad) && recorder.attentions.every((a) => a.maps.requiresGrad && a.maps.size(1) === 2));
    assert.equal(recorder.middleAttention().length, recorder.attentions.length, 'the tiny UNet has two grids (8×8, 4×4): all count');
    assert.deepEqual(new TrainingRecorder({ resolutions: 1 }).middleAttention(), []);
    const coarsest = recorder.attentions.filter((a) => a.layer.startsWith('mid_block'));
    const one = new TrainingRecorder({ resolutions: 1 });
    for (const a of recorder.attentions) one.subjectAttention(a.layer, a.size, a.maps);
    assert.deepEqual(one.middleAttention().map((a) => a.layer), coarsest.map((a) => a.layer));
    const named = new TrainingRecorder({ match: (n) => n.startsWith('mid_block') });
    for (const a of recorder.attentions) named.subjectAttention(a.layer, a.size, a.maps);
    assert.deepEqual(named.middleAttention().map((a) => a.layer), coarsest.map((a) => a.layer));
    recorder.dispose(); // (one and named hold the same tensors: disposed once, here)
    assert.equal(recorder.routings.length, 0);

    const mine = new Set(s.moa.moaParameters());
    const base = s.moa.parameters().filter((p) => !mine.has(p));
    const zero = () => s.moa.moaParameters().forEach((p) => p.zeroGrad());
    const nonzero = (t: Tensor | null) => t !== null && tidy(() => t.abs().sum().item()) > 0;

    // The router loss alone trains the routers (their last layer: the first sees none while the
    // last starts at zero weights).
    step(s, recorder, 'router');
    for (const l of s.moa.layers) assert.ok(nonzero(l.router.at(2).getParameter('weight')!.grad), `${l.name} router`);
    zero();
    step(s, recorder, 'routerSubject');
    for (const l of s.moa.layers) assert.ok(nonzero(l.router.at(2).getParameter('weight')!.grad), `${l.name} router (subject routing)`);
    zero();
    // The object loss alone trains the personal cross-attention.
    step(s, recorder, 'object');
    for (const l of s.moa.layers.filter((l) => l.kind === 'cross')) assert.ok(nonzero(l.personal.to_k.weight.grad) || nonzero(l.personal.to_q.weight.grad), `${l.name} personal`);
    zero();
    step(s, recorder, 'total');
    assert.ok(s.moa.moaParameters().some((p) => nonzero(p.grad)));
    assert.ok(base.every((p) => p.grad === null), 'base parameters get no gradient');
    s.moa.dispose();
  });

  test('the recorder leaves no tensors alive after dispose', () => {
    const s = setup();
    const recorder = new TrainingRecorder();
    step(s, recorder, 'total'); // first step creates the gradients
    const live = settledLiveTensors().count;
    step(s, recorder, 'total');
    tidy(() => s.unet.forward(s.x.sample, s.x.timestep, s.x.text, { moa: { subjects: s.subjects, timestep: s.x.timestep, recorder } }));
    assert.ok(recorder.routings.length > 0);
    recorder.dispose();
    assert.equal(settledLiveTensors().count, live);
    s.moa.dispose();
  });
});
