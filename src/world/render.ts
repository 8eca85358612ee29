// Rendering a scene spec to pixels, an exact segmentation map, a caption and its segments; and
// an identity alone as a reference image. A spec is resolution independent: positions are
// fractions of the side, so one spec renders the same scene at any size.
import { buildBackdrop, type Layer } from './backdrop.js';
import { buildCaption } from './captions.js';
import { adultHeight, groundY } from './ground.js';
import { checkIdentity, type Identity } from './identity.js';
import { Pen, type Tint } from './pen.js';
import { drawPerson } from './person.js';
import { drawPet } from './pet.js';
import { Canvas, type RGB } from './raster.js';
import { type Facing, isPersonClass, SCENE_KINDS, type SceneKind, type SubjectClass, TIMES, type TimeOfDay } from './vocab.js';

export interface SubjectPlacement {
  identity: Identity;
  /** Horizontal centre, a fraction of the width. */
  x: number;
  /** 0 = nearest (bottom of the image, full size) … 1 = farthest (towards the horizon). */
  depth: number;
  facing: Facing;
  /** Walking stride in [0, 1]: legs apart and arms swinging. Default 0.6. */
  stride?: number;
}

export interface SceneSpec {
  kind: SceneKind;
  time: TimeOfDay;
  /** Seeds the props and the caption's phrasing (not the subjects). */
  seed: number;
  /** In caption order; drawn back to front by depth. */
  subjects: SubjectPlacement[];
  /** Caption template id (CAPTION_TEMPLATES). Default 'train-1'. */
  template?: string;
}

export interface Segment {
  /** Segment id in the map: 1..n in caption order. */
  id: number;
  /** [h1, w1, h2, w2]: rows [h1, h2) and columns [w1, w2) holding the segment's pixels. */
  bbox: [number, number, number, number];
  /** Character offset just after the subject's class word in the caption. */
  end: number;
  /** The class word (FastComposer's field name). */
  coco_label: SubjectClass;
  identity: string;
  class: SubjectClass;
}

export interface RenderedScene {
  width: number;
  height: number;
  /** Interleaved 8-bit RGB, row-major. */
  rgb: Uint8Array;
  /** Row-major segment ids: 0 background, k = segments[k − 1]. */
  segMap: Int32Array;
  caption: string;
  segments: Segment[];
  scene: { kind: SceneKind; time: TimeOfDay; props: string[] };
  template: string;
}

export interface RenderOptions {
  /** Side in pixels (square). Default 128. */
  size?: number;
  /**
   * Paint subject k entirely in flatColours[k − 1] (a check that masks and pixels agree: the
   * map must be exactly where those colours are).
   */
  flatColours?: readonly RGB[];
}

/** Half widths (local units, scene pose) used to keep subjects inside the frame. */
const HALF_WIDTH: Record<SubjectClass, number> = { man: 20, woman: 21, boy: 15, girl: 16, dog: 40, cat: 29 };
/** Pets are drawn a little larger than life so they read at 64 px. */
const CLASS_SCALE: Record<SubjectClass, number> = { man: 1, woman: 1, boy: 1, girl: 1, dog: 1.15, cat: 1.25 };

export function checkSize(size: number): number {
  if (!Number.isInteger(size) || size < 32 || size > 2048) throw new RangeError(`size must be an integer from 32 to 2048 pixels, not ${size}`);
  return size;
}

function checkSpec(spec: SceneSpec): void {
  if (!SCENE_KINDS.includes(spec.kind)) throw new Error(`scene kind must be one of ${SCENE_KINDS.join(', ')}, not '${spec.kind}'`);
  if (!TIMES.includes(spec.time)) throw new Error(`time of day must be one of ${TIMES.join(', ')}, not '${spec.time}'`);
  if (!Number.isSafeInteger(spec.seed) || spec.seed < 0) throw new Error(`scene seed must be a non-negative integer, not ${spec.seed}`);
  spec.subjects.forEach((s, i) => {
    checkIdentity(s.identity);
    if (!(s.x >= 0 && s.x <= 1) || !(s.depth >= 0 && s.depth <= 1)) throw new Error(`subject ${i + 1}: x and depth must be in [0, 1] (got x ${s.x}, depth ${s.depth})`);
    if (s.facing !== 'left' && s.facing !== 'right') throw new Error(`subject ${i + 1}: facing must be 'left' or 'right', not '${s.facing}'`);
  });
}

/** The pixels per local unit of a subject at `depth` in a `size` image. */
function unitAt(depth: number, size: number): number {
  return (adultHeight(depth) * size) / 100;
}

/** The x range (fractions) that keeps a subject of `cls` at `depth` inside the frame. */
export function xRange(cls: SubjectClass, depth: number): [number, number] {
  const half = HALF_WIDTH[cls] * CLASS_SCALE[cls] * unitAt(depth, 1) + 0.01;
  return [half, 1 - half];
}

function subjectLayer(placement: SubjectPlacement, label: number, horizon: number, size: number, tint: Tint, flat?: RGB): Layer {
  const footY = groundY(horizon, placement.depth) * size;
  const k = unitAt(placement.depth, size) * CLASS_SCALE[placement.identity.class];
  const draw = (canvas: Canvas) => {
    const pen = new Pen(canvas, placement.x * size, footY, k, placement.facing === 'left' ? -1 : 1, flat ? () => flat : tint);
    if (isPersonClass(placement.identity.class)) drawPerson(pen, placement.identity, 'side', placement.stride ?? 0.6);
    else drawPet(pen, placement.identity, 'side', placement.stride ?? 0.6);
  };
  return { y: footY, label, draw };
}

/** Draws layers in order: flat ones first, then the standing ones back to front (stable). */
function paint(canvas: Canvas, back: readonly Layer[], standing: readonly Layer[]): void {
  const ordered = standing.map((layer, i) => ({ layer, i })).sort((a, b) => a.layer.y - b.layer.y || a.i - b.i);
  for (const layer of [...back, ...ordered.map((o) => o.layer)]) {
    canvas.label = layer.label;
    layer.draw(canvas);
  }
  canvas.label = 0;
}

function bboxes(map: Int32Array, width: number, height: number, n: number): [number, number, number, number][] {
  const boxes = Array.from({ length: n }, () => [Infinity, Infinity, -Infinity, -Infinity]);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const l = map[y * width + x]!;
      if (l === 0) continue;
      const b = boxes[l - 1]!;
      b[0] = Math.min(b[0]!, y);
      b[1] = Math.min(b[1]!, x);
      b[2] = Math.max(b[2]!, y + 1);
      b[3] = Math.max(b[3]!, x + 1);
    }
  }
  return boxes.map((b) => (b[0] === Infinity ? [0, 0, 0, 0] : (b as [number, number, number, number])));
}

/** Renders a scene: pixels and segmentation map from one pass over the same shapes. */
export function renderScene(spec: SceneSpec, options: RenderOptions = {}): RenderedScene {
  checkSpec(spec);
  const size = checkSize(options.size ?? 128);
  const backdrop = buildBackdrop(spec.kind, spec.time, spec.seed, size);
  const subjects = spec.subjects.map((s, i) => subjectLayer(s, i + 1, backdrop.horizon, size, backdrop.subjectTint, options.flatColours?.[i]));
  const canvas = new Canvas(size, size);
  paint(canvas, backdrop.back, [...backdrop.standing, ...subjects]);
  const template = spec.template ?? 'train-1';
  const caption = buildCaption(
    template,
    spec.subjects.map((s) => ({ class: s.identity.class })),
    spec.kind,
    spec.time,
    spec.seed,
  );
  const boxes = bboxes(canvas.labels, size, size, spec.subjects.length);
  const segments: Segment[] = spec.subjects.map((s, i) => ({
    id: i + 1,
    bbox: boxes[i]!,
    end: caption.ends[i]!,
    coco_label: s.identity.class,
    identity: s.identity.id,
    class: s.identity.class,
  }));
  return {
    width: size,
    height: size,
    rgb: canvas.rgb!,
    segMap: canvas.labels,
    caption: caption.text,
    segments,
    scene: { kind: spec.kind, time: spec.time, props: backdrop.props },
    template,
  };
}

export interface Visibility {
  /** Per subject: pixels it would cover alone. */
  full: number[];
  /** Per subject: pixels left visible in the scene. */
  visible: number[];
}

/** How much of each subject shows at `size` once props and nearer subjects cover it (labels only, no colour). */
export function subjectVisibility(spec: SceneSpec, size = 64): Visibility {
  const backdrop = buildBackdrop(spec.kind, spec.time, spec.seed, size);
  const tint: Tint = (c) => c;
  const layers = spec.subjects.map((s, i) => subjectLayer(s, i + 1, backdrop.horizon, size, tint));
  const count = (labels: Int32Array, n: number) => {
    const counts = new Array<number>(n + 1).fill(0);
    for (const l of labels) counts[l]!++;
    return counts;
  };
  const scene = new Canvas(size, size, { withColour: false });
  paint(scene, backdrop.back, [...backdrop.standing, ...layers]);
  const visible = count(scene.labels, layers.length).slice(1);
  const full = layers.map((layer) => {
    const alone = new Canvas(size, size, { withColour: false });
    paint(alone, [], [layer]);
    return count(alone.labels, layers.length)[layer.label]!;
  });
  return { full, visible };
}

export interface ReferenceOptions {
  /** Side in pixels. Default 128. */
  size?: number;
  /** Background colour. Default a neutral light grey. */
  background?: RGB;
}

export interface RenderedReference {
  width: number;
  height: number;
  rgb: Uint8Array;
  /** 1 where the subject is, 0 elsewhere. */
  mask: Uint8Array;
}

/** Local height (units) of each class in the front pose, to fill the reference frame. */
const FRONT_HEIGHT: Record<SubjectClass, number> = { man: 104, woman: 104, boy: 74, girl: 74, dog: 70, cat: 54 };

/**
 * An identity alone, facing the viewer (scenes show people walking in three-quarter view and
 * pets in profile), centred and filling most of the frame, on a plain background, untinted.
 */
export function renderReference(identity: Identity, options: ReferenceOptions = {}): RenderedReference {
  checkIdentity(identity);
  const size = checkSize(options.size ?? 128);
  const background = options.background ?? [214, 214, 210];
  const canvas = new Canvas(size, size);
  canvas.rect(0, 0, size, size, background);
  const k = (0.84 * size) / FRONT_HEIGHT[identity.class];
  const pen = new Pen(canvas, size / 2, 0.93 * size, k, 1);
  canvas.label = 1;
  if (isPersonClass(identity.class)) drawPerson(pen, identity, 'front');
  else drawPet(pen, identity, 'front');
  const mask = Uint8Array.from(canvas.labels);
  return { width: size, height: size, rgb: canvas.rgb!, mask };
}
