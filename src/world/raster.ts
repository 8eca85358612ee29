// A tiny rasteriser without anti-aliasing: a pixel belongs to a shape when its centre does.
// Every fill writes the colour and the segment label of the same pixels in the same pass, so a
// segmentation map agrees with the pixels exactly (no second render, no edge blending).

export type RGB = readonly [number, number, number];

/** A flat colour, or a colour per pixel centre (patterns), evaluated only where the shape covers. */
export type Paint = RGB | ((x: number, y: number) => RGB);

export interface Point {
  x: number;
  y: number;
}

/** The pixel spans [x0, x1) a shape covers on one row, for the row's centre height y + 0.5. */
type Spans = (y: number) => number[];

interface Shape {
  top: number;
  bottom: number;
  spans: Spans;
}

export class Canvas {
  /** Interleaved RGB, row-major; absent on a labels-only canvas. */
  readonly rgb: Uint8Array | null;
  /** Segment id per pixel (0 = background). */
  readonly labels: Int32Array;
  /** The label that fills write; subjects set it to their segment id while they draw. */
  label = 0;

  constructor(
    readonly width: number,
    readonly height: number,
    { withColour = true } = {},
  ) {
    this.rgb = withColour ? new Uint8Array(width * height * 3) : null;
    this.labels = new Int32Array(width * height);
  }

  private fill(shape: Shape, paint: Paint): void {
    const y0 = Math.max(0, Math.ceil(shape.top - 0.5));
    const y1 = Math.min(this.height, Math.ceil(shape.bottom - 0.5));
    const { rgb, labels, width, label } = this;
    for (let y = y0; y < y1; y++) {
      const spans = shape.spans(y + 0.5);
      for (let s = 0; s + 1 < spans.length; s += 2) {
        // Pixel x is covered when its centre x + 0.5 lies in [a, b).
        const x0 = Math.max(0, Math.ceil(spans[s]! - 0.5));
        const x1 = Math.min(width, Math.ceil(spans[s + 1]! - 0.5));
        for (let x = x0; x < x1; x++) {
          const i = y * width + x;
          labels[i] = label;
          if (rgb) {
            const c = typeof paint === 'function' ? paint(x + 0.5, y + 0.5) : paint;
            rgb[3 * i] = c[0];
            rgb[3 * i + 1] = c[1];
            rgb[3 * i + 2] = c[2];
          }
        }
      }
    }
  }

  /** An ellipse centred at (cx, cy) with radii rx, ry, turned by `angle` radians. */
  ellipse(cx: number, cy: number, rx: number, ry: number, paint: Paint, angle = 0): void {
    if (!(rx > 0 && ry > 0)) return;
    const c = Math.cos(angle);
    const s = Math.sin(angle);
    // (u/rx)² + (v/ry)² ≤ 1 with u = dx·c + dy·s, v = −dx·s + dy·c, a quadratic in dx per row.
    const a = (c * c) / (rx * rx) + (s * s) / (ry * ry);
    const b = 2 * c * s * (1 / (rx * rx) - 1 / (ry * ry));
    const cc = (s * s) / (rx * rx) + (c * c) / (ry * ry);
    const half = Math.sqrt(1 / (cc - (b * b) / (4 * a))); // the ellipse's vertical half-extent
    this.fill(
      {
        top: cy - half,
        bottom: cy + half,
        spans: (y) => {
          const dy = y - cy;
          const disc = b * b * dy * dy - 4 * a * (cc * dy * dy - 1);
          if (disc < 0) return [];
          const r = Math.sqrt(disc);
          return [cx + (-b * dy - r) / (2 * a), cx + (-b * dy + r) / (2 * a)];
        },
      },
      paint,
    );
  }

  circle(cx: number, cy: number, r: number, paint: Paint): void {
    this.ellipse(cx, cy, r, r, paint);
  }

  /** A polygon, filled by the even-odd rule. */
  polygon(points: readonly Point[], paint: Paint): void {
    if (points.length < 3) return;
    let top = Infinity;
    let bottom = -Infinity;
    for (const p of points) {
      top = Math.min(top, p.y);
      bottom = Math.max(bottom, p.y);
    }
    this.fill(
      {
        top,
        bottom,
        spans: (y) => {
          const xs: number[] = [];
          for (let i = 0; i < points.length; i++) {
            const p = points[i]!;
            const q = points[(i + 1) % points.length]!;
            // Half-open in y so a vertex shared by two edges counts once.
            if (p.y <= y !== q.y <= y) xs.push(p.x + ((y - p.y) * (q.x - p.x)) / (q.y - p.y));
          }
          return xs.sort((m, n) => m - n);
        },
      },
      paint,
    );
  }

  rect(x: number, y: number, w: number, h: number, paint: Paint): void {
    if (!(w > 0 && h > 0)) return;
    this.fill({ top: y, bottom: y + h, spans: () => [x, x + w] }, paint);
  }

  /** A thick segment from (x0, y0) to (x1, y1) with round ends (arms, legs, trunks). */
  capsule(x0: number, y0: number, x1: number, y1: number, width: number, paint: Paint): void {
    const dx = x1 - x0;
    const dy = y1 - y0;
    const length = Math.hypot(dx, dy);
    const r = width / 2;
    if (length > 0) {
      const nx = (-dy / length) * r;
      const ny = (dx / length) * r;
      this.polygon(
        [
          { x: x0 + nx, y: y0 + ny },
          { x: x1 + nx, y: y1 + ny },
          { x: x1 - nx, y: y1 - ny },
          { x: x0 - nx, y: y0 - ny },
        ],
        paint,
      );
    }
    this.circle(x0, y0, r, paint);
    this.circle(x1, y1, r, paint);
  }
}
