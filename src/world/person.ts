// People, drawn in their own frame (pen.ts): adults 100 units tall, children 68 with larger
// heads. Men wear a shirt and trousers and have broad shoulders; women a flared dress; boys a
// t-shirt and shorts; girls a short dress. 'side' is the scenes' walking three-quarter view,
// 'front' the references' standing view.
import type { Identity } from './identity.js';
import { contrast, type LocalPaint, type Pen, shade } from './pen.js';
import type { RGB } from './raster.js';
import { COLOURS, SKIN_COLOURS } from './vocab.js';

export type Pose = 'side' | 'front';

const HAIR_RGB: Record<string, RGB> = {
  black: [36, 30, 28],
  brown: [104, 62, 30],
  blonde: [236, 200, 100],
  red: [186, 64, 26],
  grey: [160, 160, 164],
  pink: [238, 110, 170],
  blue: [60, 110, 220],
};

/** Hats take a colour that stands apart from the clothes. */
const HAT_COLOUR: Record<string, string> = {
  red: 'navy',
  orange: 'blue',
  yellow: 'purple',
  green: 'orange',
  teal: 'red',
  blue: 'yellow',
  purple: 'yellow',
  pink: 'teal',
  white: 'red',
  black: 'orange',
};

const SHOES: RGB = [52, 36, 28];
const EYES: RGB = [24, 20, 22];
const LENS: RGB = [178, 214, 232];
const FRAME: RGB = [20, 20, 24];
const MOUTH: RGB = [150, 50, 50];

/** The clothes' paint: the colour, with stripes, dots or checks in the contrasting colour. */
function clothesPaint(colour: RGB, pattern: string): LocalPaint {
  const other = contrast(colour);
  switch (pattern) {
    case 'stripes':
      return (_x, y) => (Math.floor(y / 4.5) % 2 === 0 ? colour : other);
    case 'dots':
      return (x, y) => {
        const gx = x - 6 * Math.round(x / 6);
        const row = Math.round(y / 6);
        const gy = y - 6 * row;
        const sx = row % 2 === 0 ? gx : x + 3 - 6 * Math.round((x + 3) / 6);
        return sx * sx + gy * gy < 3.6 ? other : colour;
      };
    case 'checks':
      return (x, y) => ((Math.floor(x / 5) + Math.floor(y / 5)) % 2 === 0 ? colour : other);
    default:
      return colour;
  }
}

interface Body {
  child: boolean;
  headX: number;
  headY: number;
  headRx: number;
  headRy: number;
  shoulderY: number;
  shoulderW: number;
  waistY: number;
  hipY: number;
}

function bodyOf(cls: string, pose: Pose): Body {
  const child = cls === 'boy' || cls === 'girl';
  const front = pose === 'front';
  if (child) return { child, headX: front ? 0 : 1, headY: -55, headRx: 10, headRy: 10.5, shoulderY: -45, shoulderW: front ? 9.5 : 8, waistY: -27, hipY: -22 };
  const man = cls === 'man';
  return { child, headX: front ? 0 : 1, headY: -85, headRx: 9.6, headRy: 11, shoulderY: -73, shoulderW: man ? (front ? 16 : 13) : front ? 12 : 10, waistY: -44, hipY: -44 };
}

/** Draws a person; in 'side' pose `stride` in [0, 1] spreads legs and swings arms. */
export function drawPerson(pen: Pen, identity: Identity, pose: Pose, stride = 0.6): void {
  const a = identity.attributes;
  const cls = identity.class;
  const b = bodyOf(cls, pose);
  const front = pose === 'front';
  const skin = SKIN_COLOURS[a.skin as keyof typeof SKIN_COLOURS] ?? SKIN_COLOURS.light;
  const skinDark = shade(skin, 0.82);
  const cloth = COLOURS[a.clothes_colour!]!;
  const clothes = clothesPaint(cloth, a.clothes_pattern!);
  const legwear = a.trousers ? COLOURS[a.trousers]! : skin;
  const hair = a.hair_colour && a.hair_colour !== 'none' ? HAIR_RGB[a.hair_colour]! : skin;
  const dress = cls === 'woman' || cls === 'girl';
  const scale = b.child ? 0.68 : 1;
  const s = (v: number) => v * scale; // lengths below the head follow body size

  // Long hair hangs behind everything else.
  if (a.hair === 'long') {
    const { headX: hx, headY: hy } = b;
    if (front) pen.poly([hx - 12.5, hy - 3, hx + 12.5, hy - 3, hx + 13.5, hy + (b.child ? 15 : 21), hx - 13.5, hy + (b.child ? 15 : 21)], hair);
    else pen.poly([hx - 11, hy - 4, hx + 5, hy - 4, hx + 3, hy + (b.child ? 14 : 20), hx - 13, hy + (b.child ? 16 : 22)], hair);
  }

  // Legs (the far one first), then shoes.
  const legW = b.child ? 6.5 : dress ? 6 : 9.5;
  const spread = front ? 0 : s(13) * stride;
  const legs = front
    ? [
        [-s(5), b.hipY + 2, -s(5.5), -4],
        [s(5), b.hipY + 2, s(5.5), -4],
      ]
    : [
        [0, b.hipY + 2, -spread, -4],
        [0, b.hipY + 2, spread, -4],
      ];
  for (const [x0, y0, x1, y1] of legs) {
    pen.capsule(x0!, y0!, x1!, y1!, legW, dress || b.child ? skin : legwear);
    if (b.child && !dress) pen.capsule(x0!, y0!, x0! + (x1! - x0!) * 0.35, y0! + (y1! - y0!) * 0.35, legW + 1.5, legwear); // shorts
    if (front) pen.ellipse(x1!, -2.5, 4.5, 2.8, SHOES);
    else pen.ellipse(x1! + 2.5, -2.5, s(6.5), 2.8, SHOES);
  }

  // The far arm, behind the torso.
  const shoulderX = b.shoulderW - 2.5;
  const armLength = b.child ? 19 : 29;
  const swing = front ? 0 : 0.5 * stride;
  const arm = (side: number, angle: number) => {
    const x0 = front ? side * shoulderX : 0;
    const y0 = b.shoulderY + 3;
    const dx = front ? side * 3 : Math.sin(angle) * armLength;
    const x1 = x0 + dx;
    const y1 = y0 + Math.cos(angle) * armLength;
    const sleeveEnd = b.child ? 0.45 : 0.85;
    pen.capsule(x0, y0, x1, y1, b.child ? 5.5 : 6.5, skin);
    pen.capsule(x0, y0, x0 + (x1 - x0) * sleeveEnd, y0 + (y1 - y0) * sleeveEnd, b.child ? 6.5 : 7.5, clothes);
    pen.circle(x1, y1, b.child ? 3 : 3.6, skin);
  };
  if (!front) arm(0, -swing);

  // Torso: a shirt, or a dress flaring to the knee.
  const sw = b.shoulderW;
  pen.rect(b.headX - 3, b.headY + b.headRy - 3, 6, 6, skinDark); // neck
  if (dress) {
    const hemY = b.child ? -17 : -24;
    const hemW = b.child ? 14 : 19;
    pen.poly([-sw, b.shoulderY, sw, b.shoulderY, sw - 2, b.waistY - (b.child ? 2 : 8), hemW, hemY, -hemW, hemY, -sw + 2, b.waistY - (b.child ? 2 : 8)], clothes);
  } else {
    pen.poly([-sw, b.shoulderY, sw, b.shoulderY, sw - 3, b.waistY + 1, -sw + 3, b.waistY + 1], clothes);
    if (!b.child) pen.rect(-sw + 3, b.waistY - 1, 2 * sw - 6, 3, shade(legwear, 0.7)); // belt
  }
  if (front) {
    arm(-1, 0);
    arm(1, 0);
  } else arm(0, swing);

  drawHead(pen, b, a, skin, skinDark, hair, front);
}

function drawHead(pen: Pen, b: Body, a: Record<string, string>, skin: RGB, skinDark: RGB, hair: RGB, front: boolean): void {
  const { headX: hx, headY: hy, headRx: rx, headRy: ry } = b;
  const style = a.hair!;
  // Hair mass behind the head.
  if (style === 'short' || style === 'bun' || style === 'long') pen.ellipse(front ? hx : hx - 1.5, hy - 2.5, rx + 1.4, ry - 0.5, hair);
  if (style === 'curly') {
    for (let i = 0; i <= 8; i++) {
      const t = front ? Math.PI * (i / 8) : Math.PI * (0.15 + (i / 8) * 1.05);
      pen.circle(hx + Math.cos(t) * (rx + 0.5), hy - 1 - Math.sin(t) * (ry - 0.5), 4.6, hair);
    }
  }
  if (style === 'bun') pen.circle(front ? hx : hx - 6, front ? hy - ry - 3 : hy - ry + 0.5, 5.2, hair);

  pen.ellipse(hx, hy, rx, ry, skin);
  // Ears.
  if (front) {
    pen.ellipse(hx - rx, hy + 1, 2.2, 3.2, skinDark);
    pen.ellipse(hx + rx, hy + 1, 2.2, 3.2, skinDark);
  } else if (style !== 'long') pen.ellipse(hx - 2.5, hy + 1, 2.4, 3.4, skinDark);

  // Fringe over the forehead.
  if (style === 'short' || style === 'bun' || style === 'long') pen.dome(front ? hx : hx - 1, hy - 3, rx + 0.6, ry - 2, hair);
  if (style === 'curly') pen.dome(front ? hx : hx - 1, hy - 3.5, rx + 0.4, ry - 3, hair);

  // Face.
  const eyes = front ? [hx - 4, hx + 4] : [hx - 0.5, hx + 5.5];
  const eyeY = hy + 0.5;
  if (!front) pen.poly([hx + rx - 0.6, hy - 0.5, hx + rx + 2.8, hy + 4, hx + rx - 0.6, hy + 4.5], skinDark); // nose
  else pen.ellipse(hx, hy + 3.5, 1.4, 1.1, skinDark);
  pen.rect(front ? hx - 2.5 : hx + 3, hy + 6.5, 5, 1.3, MOUTH);
  if (a.glasses === 'yes') {
    pen.rect(eyes[0]!, eyeY - 1, eyes[1]! - eyes[0]!, 1.4, FRAME); // bridge
    if (!front) pen.rect(hx - 3.5, eyeY - 1, 3.5, 1.2, FRAME); // temple arm
    for (const ex of eyes) {
      pen.circle(ex, eyeY, 3.5, FRAME);
      pen.circle(ex, eyeY, 2.3, LENS);
    }
  }
  for (const ex of eyes) pen.circle(ex, eyeY, 1.5, EYES);

  // Hats.
  const hatColour = COLOURS[HAT_COLOUR[a.clothes_colour!] ?? 'red']!;
  if (a.hat === 'cap') {
    pen.dome(front ? hx : hx - 0.5, hy - 4, rx + 1.2, ry - 0.5, hatColour);
    if (front) pen.ellipse(hx, hy - 4, rx + 2, 2.6, shade(hatColour, 0.75));
    else pen.ellipse(hx + rx + 1, hy - 4, 7.5, 2.2, shade(hatColour, 0.75));
  } else if (a.hat === 'beanie') {
    pen.dome(hx, hy - 3, rx + 1.3, ry + 1, hatColour);
    pen.rect(hx - rx - 1.3, hy - 5.5, 2 * rx + 2.6, 3.5, shade(hatColour, 0.72));
    pen.circle(hx, hy - 3 - ry - 2, 3.4, shade(hatColour, 1.35));
  }
}
