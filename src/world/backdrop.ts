// Scene backdrops: sky, ground and props for each kind, lit by the time of day. Props come only
// from the scene's own seed, never from its subjects, so the same scene can be rendered with
// other subjects and keep its context. Props standing on the ground are layers sorted by depth
// with the subjects (drawn back to front); flat things (sky, ground, far hills) come first.
import { adultHeight, groundY } from './ground.js';
import { ambientTint, SKIES } from './palette.js';
import { shade, type Tint } from './pen.js';
import { Random, STREAM } from './random.js';
import type { Canvas, Paint, RGB } from './raster.js';
import type { SceneKind, TimeOfDay } from './vocab.js';

/** Something drawn in one go; `y` (pixels) orders ground-standing layers, lower first. */
export interface Layer {
  y: number;
  /** The segment id it paints: 0 for the scene, k for subject k. */
  label: number;
  draw: (canvas: Canvas) => void;
}

export interface Backdrop {
  /** The horizon as a fraction of the side. */
  horizon: number;
  /** Flat layers drawn first, in order. */
  back: Layer[];
  /** Ground-standing props, to be sorted with the subjects. */
  standing: Layer[];
  /** The props drawn, each named once, in drawing order. */
  props: string[];
  /** The tint the scene's subjects get. */
  subjectTint: Tint;
}

const HORIZON: Record<SceneKind, [number, number]> = {
  beach: [0.46, 0.54],
  forest: [0.42, 0.52],
  city: [0.48, 0.56],
  snow: [0.42, 0.52],
  room: [0.52, 0.6],
  park: [0.44, 0.52],
  desert: [0.46, 0.54],
  mountains: [0.5, 0.58],
};

const LIT_WINDOW: RGB = [252, 220, 120];
const LAMP_LIGHT: RGB = [255, 236, 150];
const WHITE: RGB = [248, 248, 250];

/** Collects the layers of one backdrop; sizes are fractions of the side `s`. */
class Builder {
  readonly back: Layer[] = [];
  readonly standing: Layer[] = [];
  readonly props: string[] = [];
  readonly tint: Tint;
  readonly night: boolean;

  constructor(
    readonly s: number,
    readonly horizon: number,
    readonly time: TimeOfDay,
    indoor: boolean,
    readonly random: Random,
  ) {
    this.tint = ambientTint(time, indoor);
    this.night = time === 'night';
  }

  /** A flat layer drawn before everything standing. */
  flat(prop: string | null, draw: (c: Canvas) => void): void {
    if (prop) this.name(prop);
    this.back.push({ y: -Infinity, label: 0, draw });
  }

  /** A prop standing on the ground at `depth`, sorted with the subjects. */
  stand(prop: string, depth: number, draw: (c: Canvas, footY: number, height: number) => void): void {
    this.name(prop);
    const footY = groundY(this.horizon, depth) * this.s;
    const height = adultHeight(Math.min(depth, 1.25)) * this.s;
    this.standing.push({ y: footY, label: 0, draw: (c) => draw(c, footY, height) });
  }

  name(prop: string): void {
    if (!this.props.includes(prop)) this.props.push(prop);
  }

  /** The sky in bands down to the horizon. */
  sky(bottom = this.horizon): void {
    const { bands } = SKIES[this.time];
    this.flat(null, (c) => {
      const h = (bottom * this.s) / bands.length;
      bands.forEach((colour, i) => c.rect(0, i * h, this.s, h + 1, colour));
    });
  }

  /** Sun by day and dusk (low and large at dusk), moon and stars at night. */
  lights({ clouds = true, sun = true } = {}): void {
    const { s, random } = this;
    if (this.time === 'night') {
      const stars: [number, number][] = [];
      for (let i = random.int(14, 24); i > 0; i--) stars.push([random.float() * s, random.float() * this.horizon * 0.9 * s]);
      this.flat('stars', (c) => stars.forEach(([x, y]) => c.circle(x, y, Math.max(0.7, 0.008 * s), [255, 250, 220])));
      const [mx, my] = [random.range(0.15, 0.85) * s, random.range(0.08, 0.2) * s];
      const sky = SKIES.night.bands[0]!;
      this.flat('moon', (c) => {
        c.circle(mx, my, 0.055 * s, [244, 240, 214]);
        c.circle(mx + 0.025 * s, my - 0.012 * s, 0.045 * s, sky);
      });
    } else if (sun) {
      const dusk = this.time === 'dusk';
      const [x, y] = [random.range(0.15, 0.85) * s, dusk ? (this.horizon - 0.03) * s : random.range(0.08, 0.18) * s];
      this.flat('sun', (c) => c.circle(x, y, (dusk ? 0.085 : 0.06) * s, dusk ? [255, 150, 70] : [255, 222, 90]));
    }
    if (clouds && !this.night) {
      for (let i = random.int(1, 3); i > 0; i--) {
        const [x, y, w] = [random.float() * s, random.range(0.06, this.horizon - 0.16) * s, random.range(0.08, 0.14) * s];
        const colour = this.tint(WHITE);
        this.flat('cloud', (c) => {
          c.ellipse(x, y, w, w * 0.32, colour);
          c.circle(x - w * 0.3, y - w * 0.2, w * 0.34, colour);
          c.circle(x + w * 0.2, y - w * 0.28, w * 0.42, colour);
        });
      }
    }
  }

  /** The ground from the horizon down. */
  ground(colour: RGB, top = this.horizon): void {
    const paint = this.tint(colour);
    this.flat(null, (c) => c.rect(0, top * this.s, this.s, this.s, paint));
  }

  /** A round tree: a trunk and a canopy of three circles. */
  tree(depth: number, x: number): void {
    const green = this.tint(this.random.pick<RGB>([[52, 140, 60], [70, 156, 56], [40, 120, 72]]));
    const trunk = this.tint([110, 72, 40]);
    const dark = shade(green, 0.8);
    this.stand('tree', depth, (c, y, h) => {
      const px = x * this.s;
      c.rect(px - 0.05 * h, y - 0.75 * h, 0.1 * h, 0.75 * h, trunk);
      c.circle(px - 0.2 * h, y - 0.85 * h, 0.26 * h, dark);
      c.circle(px + 0.2 * h, y - 0.88 * h, 0.27 * h, dark);
      c.circle(px, y - 1.12 * h, 0.34 * h, green);
    });
  }

  /** A pine: three stacked triangles, white-tipped in snow. */
  pine(depth: number, x: number, snowy = false): void {
    const green = this.tint([34, 108, 66]);
    const trunk = this.tint([96, 64, 40]);
    const snow = this.tint(WHITE);
    this.stand('pine', depth, (c, y, h) => {
      const px = x * this.s;
      c.rect(px - 0.05 * h, y - 0.25 * h, 0.1 * h, 0.25 * h, trunk);
      for (let i = 0; i < 3; i++) {
        const base = y - (0.2 + 0.38 * i) * h;
        const half = (0.42 - 0.1 * i) * h;
        const top = base - 0.6 * h;
        c.polygon([{ x: px - half, y: base }, { x: px + half, y: base }, { x: px, y: top }], green);
        if (snowy) c.polygon([{ x: px - half * 0.35, y: top + 0.21 * h }, { x: px + half * 0.35, y: top + 0.21 * h }, { x: px, y: top }], snow);
      }
    });
  }

  bush(depth: number, x: number): void {
    const green = this.tint([60, 150, 70]);
    const dark = shade(green, 0.82);
    this.stand('bush', depth, (c, y, h) => {
      const px = x * this.s;
      c.circle(px - 0.14 * h, y - 0.1 * h, 0.13 * h, dark);
      c.circle(px + 0.14 * h, y - 0.1 * h, 0.13 * h, dark);
      c.circle(px, y - 0.16 * h, 0.16 * h, green);
    });
  }

  /** Far things along the horizon: a row of circles or ellipses. */
  horizonRow(prop: string | null, colour: RGB, count: number, radius: [number, number], flatten = 1): void {
    const items: [number, number][] = [];
    for (let i = 0; i < count; i++) items.push([((i + this.random.range(-0.3, 0.3)) / (count - 1)) * this.s, this.random.range(radius[0], radius[1]) * this.s]);
    const paint = this.tint(colour);
    this.flat(prop, (c) => items.forEach(([x, r]) => c.ellipse(x, this.horizon * this.s, r, r * flatten, paint)));
  }

  /** Small things lying on the ground (flowers, shells): never in front of a subject. */
  scatter(prop: string, count: number, radius: number, colours: RGB[], top = this.horizon + 0.03): void {
    const items: [number, number, RGB][] = [];
    for (let i = 0; i < count; i++) items.push([this.random.float() * this.s, this.random.range(top, 1) * this.s, this.tint(this.random.pick(colours))]);
    this.flat(prop, (c) => items.forEach(([x, y, colour]) => c.circle(x, y, Math.max(0.7, radius * this.s), colour)));
  }
}

/** x positions for `n` props, spread across the width with jitter. */
function spread(random: Random, n: number, lo = 0.04, hi = 0.96): number[] {
  return Array.from({ length: n }, (_, i) => lo + ((i + random.range(0.15, 0.85)) / n) * (hi - lo));
}

type Draw = (b: Builder) => void;

const KINDS: Record<SceneKind, Draw> = {
  beach(b) {
    const { s, random } = b;
    b.sky();
    b.lights();
    const seaBottom = b.horizon + 0.09;
    b.flat('sea', (c) => c.rect(0, b.horizon * s, s, (seaBottom - b.horizon) * s + 1, b.tint([38, 118, 186])));
    const waves: [number, number][] = [];
    for (let i = random.int(5, 9); i > 0; i--) waves.push([random.float() * s, random.range(b.horizon + 0.015, seaBottom - 0.01) * s]);
    const foam = b.tint([214, 234, 246]);
    b.flat('wave', (c) => waves.forEach(([x, y]) => c.ellipse(x, y, 0.035 * s, 0.007 * s + 0.5, foam)));
    b.ground([236, 212, 150], seaBottom);
    b.flat(null, (c) => c.rect(0, seaBottom * s, s, 0.012 * s + 1, b.tint([246, 240, 222])));
    for (const x of spread(random, random.int(0, 2))) {
      const [top, stripe] = random.pick<[RGB, RGB]>([[[214, 40, 40], WHITE], [[44, 94, 206], [246, 208, 50]], [[24, 150, 150], WHITE]]);
      const [p, q] = [b.tint(top), b.tint(stripe)];
      b.stand('parasol', random.range(0.6, 1.2), (c, y, h) => {
        const px = x * s;
        c.capsule(px, y, px, y - 0.95 * h, 0.035 * h, b.tint([240, 240, 236]));
        const striped: Paint = (cx) => (Math.floor((cx - px) / (0.12 * h) + 100) % 2 === 0 ? p : q);
        c.polygon(domePoints(px, y - 0.9 * h, 0.48 * h, 0.26 * h), striped);
      });
    }
    if (random.chance(0.5)) {
      const x = random.range(0.08, 0.92);
      const colours = [b.tint([214, 40, 40]), b.tint(WHITE), b.tint([44, 94, 206])];
      b.stand('ball', random.range(0.2, 1.1), (c, y, h) => {
        const [px, r] = [x * s, 0.07 * h];
        c.circle(px, y - r, r, (cx, cy) => colours[Math.floor(((Math.atan2(cy - (y - r), cx - px) + Math.PI) / (2 * Math.PI)) * 6) % 3]!);
      });
    }
  },

  forest(b) {
    const { random } = b;
    b.sky();
    b.lights({ clouds: false });
    b.horizonRow(null, [30, 96, 52], 9, [0.06, 0.11]);
    b.ground([72, 136, 62]);
    for (const x of spread(random, random.int(4, 7))) {
      const depth = random.range(0.9, 1.25);
      if (random.chance(0.5)) b.tree(depth, x);
      else b.pine(depth, x);
    }
    for (const x of [random.range(-0.02, 0.1), random.range(0.9, 1.02)]) if (random.chance(0.6)) b.tree(random.range(-0.1, 0.4), x);
    for (const x of spread(random, random.int(1, 3))) b.bush(random.range(0.3, 1.1), x);
    for (const x of spread(random, random.int(0, 3))) {
      const [cap, stem] = [b.tint([206, 46, 40]), b.tint([240, 226, 196])];
      b.stand('mushroom', random.range(0, 1), (c, y, h) => {
        const px = x * b.s;
        c.rect(px - 0.025 * h, y - 0.08 * h, 0.05 * h, 0.08 * h, stem);
        c.polygon(domePoints(px, y - 0.075 * h, 0.07 * h, 0.06 * h), cap);
      });
    }
  },

  city(b) {
    const { s, random } = b;
    b.sky();
    b.lights({ sun: false });
    let x = -0.04;
    const greys: RGB[] = [[120, 124, 138], [150, 138, 128], [96, 104, 124], [170, 160, 150], [132, 112, 108]];
    while (x < 1.04) {
      const w = random.range(0.1, 0.22);
      const height = random.range(0.14, b.horizon - 0.06);
      const body = b.tint(random.pick(greys));
      const seed = random.int(0, 1e9);
      const [left, top] = [x, b.horizon - height];
      b.flat(x === -0.04 ? 'building' : null, (c) => {
        c.rect(left * s, top * s, w * s, height * s + 1, body);
        const wr = new Random(seed);
        const [cols, rows] = [Math.max(1, Math.floor(w / 0.045)), Math.max(1, Math.floor(height / 0.06))];
        for (let i = 0; i < cols; i++) {
          for (let j = 0; j < rows; j++) {
            const lit = b.time !== 'day' && wr.chance(b.night ? 0.55 : 0.3);
            const colour = lit ? LIT_WINDOW : b.tint(b.time === 'day' ? [182, 210, 232] : [70, 78, 98]);
            c.rect((left + 0.012 + (i * (w - 0.012)) / cols) * s, (top + 0.02 + j * 0.06) * s, 0.024 * s, 0.03 * s, colour);
          }
        }
      });
      b.name('window');
      x += w + random.range(0, 0.02);
    }
    b.flat('street', (c) => {
      c.rect(0, b.horizon * s, s, 0.07 * s, b.tint([70, 72, 78]));
      for (let i = 0; i < 6; i++) c.rect((i / 6 + 0.03) * s, (b.horizon + 0.032) * s, 0.07 * s, 0.008 * s + 0.6, b.tint([236, 236, 220]));
    });
    b.ground([184, 180, 172], b.horizon + 0.07);
    for (const lx of spread(random, random.int(1, 2))) {
      const pole = b.tint([60, 64, 72]);
      const light = b.time === 'day' ? b.tint([220, 220, 210]) : LAMP_LIGHT;
      b.stand('lamp', random.range(0.7, 1.2), (c, y, h) => {
        const px = lx * s;
        c.rect(px - 0.025 * h, y - 1.3 * h, 0.05 * h, 1.3 * h, pole);
        c.rect(px - 0.025 * h, y - 1.3 * h, 0.18 * h, 0.04 * h, pole);
        c.ellipse(px + 0.16 * h, y - 1.24 * h, 0.06 * h, 0.045 * h, light);
      });
    }
  },

  snow(b) {
    const { s, random } = b;
    b.sky();
    b.lights();
    b.horizonRow('hill', [206, 220, 238], 4, [0.16, 0.3], 0.35);
    b.ground([236, 242, 250]);
    const flakes: [number, number][] = [];
    for (let i = random.int(30, 50); i > 0; i--) flakes.push([random.float() * s, random.float() * s]);
    b.flat('snowflake', (c) => flakes.forEach(([x, y]) => c.circle(x, y, Math.max(0.7, 0.009 * s), [255, 255, 255])));
    for (const x of spread(random, random.int(3, 5))) b.pine(random.range(0.85, 1.25), x, true);
    if (random.chance(0.5)) {
      const x = random.range(0.08, 0.92);
      const [snow, coal, carrot, scarf] = [b.tint(WHITE), b.tint([30, 30, 34]), b.tint([244, 132, 30]), b.tint([214, 40, 40])];
      b.stand('snowman', random.range(0.5, 1.2), (c, y, h) => {
        const px = x * s;
        c.circle(px, y - 0.17 * h, 0.18 * h, snow);
        c.circle(px, y - 0.45 * h, 0.13 * h, snow);
        c.circle(px, y - 0.66 * h, 0.1 * h, snow);
        c.rect(px - 0.1 * h, y - 0.57 * h, 0.2 * h, 0.035 * h, scarf);
        c.circle(px - 0.035 * h, y - 0.68 * h, 0.015 * h + 0.4, coal);
        c.circle(px + 0.035 * h, y - 0.68 * h, 0.015 * h + 0.4, coal);
        c.polygon([{ x: px, y: y - 0.66 * h }, { x: px + 0.1 * h, y: y - 0.645 * h }, { x: px, y: y - 0.63 * h }], carrot);
      });
    }
  },

  room(b) {
    const { s, random, horizon } = b;
    const wall = b.tint(random.pick<RGB>([[236, 222, 190], [196, 222, 196], [190, 210, 232], [232, 200, 200], [220, 214, 236]]));
    b.flat('wall', (c) => c.rect(0, 0, s, horizon * s + 1, wall));
    // A window onto the time of day.
    const [wx, wy, ww, wh] = [random.range(0.08, 0.62), random.range(0.08, 0.14), random.range(0.2, 0.3), random.range(0.2, 0.26)];
    const frame = b.tint([244, 244, 240]);
    const pane = SKIES[b.time].bands[2]!;
    b.flat('window', (c) => {
      c.rect(wx * s, wy * s, ww * s, wh * s, frame);
      c.rect((wx + 0.012) * s, (wy + 0.012) * s, (ww - 0.024) * s, (wh - 0.024) * s, pane);
      if (b.time === 'night') c.circle((wx + ww * 0.7) * s, (wy + wh * 0.35) * s, 0.03 * s, [244, 240, 214]);
      if (b.time === 'dusk') c.circle((wx + ww * 0.3) * s, (wy + wh * 0.75) * s, 0.04 * s, [255, 150, 70]);
      c.rect((wx + ww / 2 - 0.006) * s, wy * s, 0.012 * s + 0.5, wh * s, frame);
      c.rect(wx * s, (wy + wh / 2 - 0.006) * s, ww * s, 0.012 * s + 0.5, frame);
    });
    if (random.chance(0.7)) {
      const px = wx > 0.4 ? random.range(0.08, 0.25) : random.range(0.65, 0.8);
      const art = [b.tint([150, 200, 240]), b.tint([80, 160, 80]), b.tint([250, 200, 60])];
      const border = b.tint([120, 80, 50]);
      b.flat('picture', (c) => {
        const [x, y, w, h] = [px * s, 0.14 * s, 0.14 * s, 0.11 * s];
        c.rect(x, y, w, h, border);
        c.rect(x + 0.01 * s, y + 0.01 * s, w - 0.02 * s, h - 0.02 * s, art[0]!);
        c.ellipse(x + w / 2, y + h - 0.01 * s, w * 0.42, h * 0.4, art[1]!);
        c.circle(x + w * 0.72, y + h * 0.32, 0.015 * s, art[2]!);
      });
    }
    const floor = b.tint([176, 124, 82]);
    const plank = shade(floor, 0.86);
    b.flat('floor', (c) => {
      c.rect(0, horizon * s, s, s, floor);
      for (let y = horizon + 0.06; y < 1; y += 0.08) c.rect(0, y * s, s, 0.006 * s + 0.5, plank);
      c.rect(0, horizon * s, s, 0.02 * s, b.tint([244, 244, 240]));
    });
    const rug = b.tint(random.pick<RGB>([[180, 50, 60], [60, 90, 160], [200, 160, 60], [90, 140, 110]]));
    const [rx, ry] = [random.range(0.3, 0.7), random.range(horizon + 0.18, 0.86)];
    b.flat('rug', (c) => c.ellipse(rx * s, ry * s, 0.3 * s, 0.07 * s, rug));
    if (random.chance(0.7)) {
      const sx = random.range(0.15, 0.85);
      const sofa = b.tint(random.pick<RGB>([[200, 90, 60], [70, 110, 170], [110, 150, 90], [150, 110, 170]]));
      const dark = shade(sofa, 0.8);
      b.stand('sofa', 1.2, (c, y, h) => {
        const px = sx * s;
        c.rect(px - 0.55 * h, y - 0.42 * h, 1.1 * h, 0.25 * h, dark);
        c.rect(px - 0.55 * h, y - 0.2 * h, 1.1 * h, 0.16 * h, sofa);
        c.rect(px - 0.62 * h, y - 0.3 * h, 0.1 * h, 0.26 * h, dark);
        c.rect(px + 0.52 * h, y - 0.3 * h, 0.1 * h, 0.26 * h, dark);
        c.rect(px - 0.5 * h, y - 0.04 * h, 0.05 * h, 0.04 * h, b.tint([60, 40, 30]));
        c.rect(px + 0.45 * h, y - 0.04 * h, 0.05 * h, 0.04 * h, b.tint([60, 40, 30]));
      });
    }
    if (random.chance(0.6)) {
      const lx = random.chance(0.5) ? random.range(0.05, 0.2) : random.range(0.8, 0.95);
      const [pole, shadeColour] = [b.tint([60, 56, 52]), b.time === 'day' ? b.tint([240, 226, 190]) : LAMP_LIGHT];
      b.stand('lamp', random.range(0.9, 1.2), (c, y, h) => {
        const px = lx * s;
        c.rect(px - 0.02 * h, y - 0.95 * h, 0.04 * h, 0.95 * h, pole);
        c.ellipse(px, y - 0.01 * h, 0.1 * h, 0.025 * h, pole);
        c.polygon([{ x: px - 0.08 * h, y: y - 1.15 * h }, { x: px + 0.08 * h, y: y - 1.15 * h }, { x: px + 0.14 * h, y: y - 0.92 * h }, { x: px - 0.14 * h, y: y - 0.92 * h }], shadeColour);
      });
    }
    if (random.chance(0.5)) {
      const px = random.chance(0.5) ? random.range(0.04, 0.16) : random.range(0.84, 0.96);
      const [pot, leaf] = [b.tint([196, 100, 60]), b.tint([50, 140, 70])];
      b.stand('plant', random.range(0.2, 1.1), (c, y, h) => {
        const x = px * s;
        c.ellipse(x - 0.07 * h, y - 0.3 * h, 0.05 * h, 0.14 * h, leaf, -0.5);
        c.ellipse(x + 0.07 * h, y - 0.3 * h, 0.05 * h, 0.14 * h, leaf, 0.5);
        c.ellipse(x, y - 0.34 * h, 0.05 * h, 0.16 * h, leaf);
        c.polygon([{ x: x - 0.09 * h, y: y - 0.2 * h }, { x: x + 0.09 * h, y: y - 0.2 * h }, { x: x + 0.065 * h, y }, { x: x - 0.065 * h, y }], pot);
      });
    }
  },

  park(b) {
    const { s, random } = b;
    b.sky();
    b.lights();
    b.horizonRow(null, [70, 140, 70], 8, [0.05, 0.09]);
    b.ground([112, 182, 82]);
    const [top, bottom] = [random.range(0.4, 0.6), random.range(0.3, 0.7)];
    const path = b.tint([214, 196, 150]);
    b.flat('path', (c) =>
      c.polygon(
        [
          { x: (top - 0.03) * s, y: b.horizon * s },
          { x: (top + 0.03) * s, y: b.horizon * s },
          { x: (bottom + 0.2) * s, y: s },
          { x: (bottom - 0.2) * s, y: s },
        ],
        path,
      ),
    );
    b.scatter('flower', random.int(6, 14), 0.011, [[236, 70, 90], [250, 220, 70], [250, 250, 250], [170, 100, 220]]);
    for (const x of spread(random, random.int(2, 4))) b.tree(random.range(0.85, 1.25), x);
    if (random.chance(0.6)) {
      const x = random.range(0.15, 0.85);
      const [wood, iron] = [b.tint([150, 100, 56]), b.tint([50, 50, 56])];
      b.stand('bench', random.range(0.8, 1.2), (c, y, h) => {
        const px = x * s;
        c.rect(px - 0.35 * h, y - 0.45 * h, 0.7 * h, 0.07 * h, wood);
        c.rect(px - 0.35 * h, y - 0.34 * h, 0.7 * h, 0.05 * h, wood);
        c.rect(px - 0.37 * h, y - 0.24 * h, 0.74 * h, 0.06 * h, wood);
        c.rect(px - 0.32 * h, y - 0.2 * h, 0.04 * h, 0.2 * h, iron);
        c.rect(px + 0.28 * h, y - 0.2 * h, 0.04 * h, 0.2 * h, iron);
      });
    }
  },

  desert(b) {
    const { s, random } = b;
    b.sky();
    b.lights();
    b.horizonRow('dune', [214, 168, 100], 4, [0.18, 0.32], 0.3);
    b.ground([232, 196, 128]);
    for (const x of spread(random, random.int(2, 4))) {
      const [green, dark] = [b.tint([70, 150, 80]), b.tint([52, 120, 64])];
      const [left, right] = [random.range(0.3, 0.5), random.range(0.35, 0.6)];
      b.stand('cactus', random.range(0.5, 1.25), (c, y, h) => {
        const px = x * s;
        const w = 0.13 * h;
        c.capsule(px, y, px, y - 0.85 * h, w, green);
        c.capsule(px, y - left * h, px - 0.2 * h, y - left * h, w * 0.75, dark);
        c.capsule(px - 0.2 * h, y - left * h, px - 0.2 * h, y - (left + 0.2) * h, w * 0.75, dark);
        c.capsule(px, y - right * h, px + 0.18 * h, y - right * h, w * 0.75, dark);
        c.capsule(px + 0.18 * h, y - right * h, px + 0.18 * h, y - (right + 0.18) * h, w * 0.75, dark);
      });
    }
    for (const x of spread(random, random.int(1, 3))) {
      const rock = b.tint([150, 120, 100]);
      b.stand('rock', random.range(0.3, 1.25), (c, y, h) => c.ellipse(x * s, y - 0.06 * h, 0.16 * h, 0.09 * h, rock));
    }
  },

  mountains(b) {
    const { s, random } = b;
    b.sky();
    b.lights();
    const peaks: [number, number, number][] = [];
    for (const x of spread(random, random.int(3, 5), -0.1, 1.1)) peaks.push([x, random.range(0.2, 0.36), random.range(0.18, 0.3)]);
    const [rock, snow] = [b.tint([108, 118, 148]), b.tint(WHITE)];
    b.flat('mountain', (c) => {
      for (const [x, height, half] of peaks) {
        const base = b.horizon * s;
        const top = (b.horizon - height) * s;
        c.polygon([{ x: (x - half) * s, y: base }, { x: (x + half) * s, y: base }, { x: x * s, y: top }], rock);
        const f = 0.3;
        c.polygon([{ x: (x - half * f) * s, y: top + (base - top) * f }, { x: (x + half * f) * s, y: top + (base - top) * f }, { x: x * s, y: top }], snow);
      }
    });
    b.ground([116, 160, 88]);
    const [lx, lw] = [random.range(0.3, 0.7), random.range(0.3, 0.45)];
    b.flat('lake', (c) => c.ellipse(lx * s, (b.horizon + 0.035) * s, lw * s, 0.04 * s, b.tint([70, 140, 200])));
    for (const x of spread(random, random.int(2, 4))) b.pine(random.range(0.8, 1.25), x);
  },
};

function domePoints(x: number, base: number, rx: number, ry: number): { x: number; y: number }[] {
  return Array.from({ length: 17 }, (_, i) => {
    const a = (Math.PI * i) / 16;
    return { x: x + rx * Math.cos(a), y: base - ry * Math.sin(a) };
  });
}

/** The backdrop of a scene kind at a time of day, drawn from `seed`, for a `size`-pixel side. */
export function buildBackdrop(kind: SceneKind, time: TimeOfDay, seed: number, size: number): Backdrop {
  const random = new Random(seed, STREAM.props);
  const [lo, hi] = HORIZON[kind];
  const horizon = random.range(lo, hi);
  const indoor = kind === 'room';
  const builder = new Builder(size, horizon, time, indoor, random);
  KINDS[kind](builder);
  return { horizon, back: builder.back, standing: builder.standing, props: builder.props, subjectTint: ambientTint(time, indoor, 0.5) };
}

/** The horizon of a scene, without building it (layout needs only this). */
export function sceneHorizon(kind: SceneKind, seed: number): number {
  const [lo, hi] = HORIZON[kind];
  return new Random(seed, STREAM.props).range(lo, hi);
}
