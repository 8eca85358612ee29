// Drawing in a subject's own frame: units of 1/100 of an adult's height, the origin between the
// feet on the ground, y up is negative, +x is the way the subject faces. The pen maps that frame
// to pixels (scale, mirroring for left-facing) and tints colours for the time of day.
import { type Canvas, type Paint, type Point, type RGB } from './raster.js';

export type Tint = (c: RGB) => RGB;

/** A paint in local coordinates: flat, or a pattern of the local (x, y). */
export type LocalPaint = RGB | ((x: number, y: number) => RGB);

export class Pen {
  constructor(
    readonly canvas: Canvas,
    /** Pixel position of the local origin. */
    readonly ox: number,
    readonly oy: number,
    /** Pixels per local unit. */
    readonly k: number,
    /** +1 facing right (or front), −1 facing left. */
    readonly dir: 1 | -1,
    readonly tint: Tint = (c) => c,
  ) {}

  private px(x: number): number {
    return this.ox + this.dir * x * this.k;
  }

  private py(y: number): number {
    return this.oy + y * this.k;
  }

  private paint(p: LocalPaint): Paint {
    if (typeof p !== 'function') return this.tint(p);
    const { ox, oy, k, dir, tint } = this;
    return (x, y) => tint(p((x - ox) / (dir * k), (y - oy) / k));
  }

  ellipse(x: number, y: number, rx: number, ry: number, paint: LocalPaint, angle = 0): void {
    this.canvas.ellipse(this.px(x), this.py(y), rx * this.k, ry * this.k, this.paint(paint), this.dir * angle);
  }

  circle(x: number, y: number, r: number, paint: LocalPaint): void {
    this.canvas.circle(this.px(x), this.py(y), r * this.k, this.paint(paint));
  }

  polygon(points: readonly Point[], paint: LocalPaint): void {
    this.canvas.polygon(
      points.map((p) => ({ x: this.px(p.x), y: this.py(p.y) })),
      this.paint(paint),
    );
  }

  /** Points given as a flat list x0, y0, x1, y1, … */
  poly(coords: readonly number[], paint: LocalPaint): void {
    const points: Point[] = [];
    for (let i = 0; i + 1 < coords.length; i += 2) points.push({ x: coords[i]!, y: coords[i + 1]! });
    this.polygon(points, paint);
  }

  rect(x: number, y: number, w: number, h: number, paint: LocalPaint): void {
    this.poly([x, y, x + w, y, x + w, y + h, x, y + h], paint);
  }

  capsule(x0: number, y0: number, x1: number, y1: number, width: number, paint: LocalPaint): void {
    this.canvas.capsule(this.px(x0), this.py(y0), this.px(x1), this.py(y1), width * this.k, this.paint(paint));
  }

  /** The upper half of an ellipse standing on the line y = base (hats, hair, domes). */
  dome(x: number, base: number, rx: number, ry: number, paint: LocalPaint): void {
    const points: Point[] = [];
    const steps = 16;
    for (let i = 0; i <= steps; i++) {
      const a = (Math.PI * i) / steps;
      points.push({ x: x + rx * Math.cos(a), y: base - ry * Math.sin(a) });
    }
    this.polygon(points, paint);
  }

  /** A thick circular arc (curly tails): angles in radians, 0 = +x, growing towards −y (up). */
  arc(x: number, y: number, radius: number, width: number, from: number, to: number, paint: LocalPaint): void {
    const steps = 14;
    const outer: Point[] = [];
    const inner: Point[] = [];
    for (let i = 0; i <= steps; i++) {
      const a = from + ((to - from) * i) / steps;
      const [c, s] = [Math.cos(a), -Math.sin(a)];
      outer.push({ x: x + (radius + width / 2) * c, y: y + (radius + width / 2) * s });
      inner.push({ x: x + (radius - width / 2) * c, y: y + (radius - width / 2) * s });
    }
    this.polygon([...outer, ...inner.reverse()], paint);
  }
}

/** A colour scaled towards black (f < 1) or white (f > 1). */
export function shade(c: RGB, f: number): RGB {
  if (f <= 1) return [Math.round(c[0] * f), Math.round(c[1] * f), Math.round(c[2] * f)];
  const t = f - 1;
  return [Math.round(c[0] + (255 - c[0]) * t), Math.round(c[1] + (255 - c[1]) * t), Math.round(c[2] + (255 - c[2]) * t)];
}

/** Black or white, whichever reads better on `c`. */
export function contrast(c: RGB): RGB {
  return 0.299 * c[0] + 0.587 * c[1] + 0.114 * c[2] > 150 ? [40, 40, 48] : [246, 246, 242];
}
