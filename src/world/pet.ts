// Dogs and cats in their own frame (pen.ts units): 'side' is the scenes' standing profile, 'front'
// the references' sitting view. Dogs are larger with a muzzle and longer legs; cats are smaller
// with round heads, green eyes and an upright tail. Fur patterns sit at fixed places on the body,
// so a pattern always looks the same on the same identity.
import type { Identity } from './identity.js';
import type { Pose } from './person.js';
import { type LocalPaint, type Pen, shade } from './pen.js';
import type { RGB } from './raster.js';
import { COLOURS } from './vocab.js';

const NOSE: RGB = [30, 24, 24];
const EYE: RGB = [24, 20, 20];
const CAT_IRIS: RGB = [150, 200, 60];
const CAT_NOSE: RGB = [226, 120, 140];
const TAG: RGB = [246, 208, 50];

/** Fur paint for a body part centred at (cx, cy): plain, spots, stripes or patches. */
function furPaint(fur: RGB, marking: RGB | null, pattern: string, cx: number, cy: number): LocalPaint {
  if (!marking || pattern === 'plain') return fur;
  switch (pattern) {
    case 'spots':
      return (x, y) => {
        const u = x - cx;
        const v = y - cy;
        const row = Math.round(v / 7);
        const gx = u + (row % 2 === 0 ? 0 : 3.5) - 7 * Math.round((u + (row % 2 === 0 ? 0 : 3.5)) / 7);
        const gy = v - 7 * row;
        return gx * gx + gy * gy < 5.5 ? marking : fur;
      };
    case 'stripes':
      return (x) => (((Math.floor((x - cx) / 4) % 2) + 2) % 2 === 0 ? fur : marking);
    default: {
      // patches: two large blots
      return (x, y) => {
        const a = ((x - cx + 6) / 9) ** 2 + ((y - cy + 2) / 7) ** 2;
        const b = ((x - cx - 8) / 6) ** 2 + ((y - cy - 3) / 6) ** 2;
        return a < 1 || b < 1 ? marking : fur;
      };
    }
  }
}

interface Colours {
  fur: RGB;
  furDark: RGB;
  marking: RGB | null;
  pattern: string;
  collar: RGB | null;
}

function coloursOf(identity: Identity): Colours {
  const a = identity.attributes;
  const fur = COLOURS[a.fur_colour!]!;
  return {
    fur,
    furDark: shade(fur, fur[0] + fur[1] + fur[2] < 200 ? 1.25 : 0.8),
    marking: a.marking_colour && a.marking_colour !== 'none' ? COLOURS[a.marking_colour]! : null,
    pattern: a.fur_pattern!,
    collar: a.collar && a.collar !== 'none' ? COLOURS[a.collar]! : null,
  };
}

export function drawPet(pen: Pen, identity: Identity, pose: Pose, stride = 0.5): void {
  const cat = identity.class === 'cat';
  const c = coloursOf(identity);
  const { ears, tail } = identity.attributes;
  if (pose === 'front') (cat ? catFront : dogFront)(pen, c, ears!, tail!);
  else (cat ? catSide : dogSide)(pen, c, ears!, tail!, stride);
}

function dogSide(pen: Pen, c: Colours, ears: string, tail: string, stride: number): void {
  const step = 5 * stride;
  // Tail first, behind the body.
  if (tail === 'long') pen.capsule(-21, -33, -33, -47, 4.5, c.fur);
  else if (tail === 'short') pen.capsule(-21, -33, -26, -38, 5, c.fur);
  else pen.arc(-25, -42, 5, 3.6, -0.6, 4.4, c.fur);
  // Far legs (darker), body, near legs.
  pen.capsule(-14 + step, -24, -14 - step, -2, 6, c.furDark);
  pen.capsule(14 - step, -24, 14 + step, -2, 6, c.furDark);
  pen.ellipse(0, -29, 24, 11.5, furPaint(c.fur, c.marking, c.pattern, 0, -29));
  pen.capsule(-17 - step, -24, -17 + step, -2, 6.5, c.fur);
  pen.capsule(11 + step, -24, 11 - step, -2, 6.5, c.fur);
  // Neck and head.
  pen.poly([12, -36, 20, -48, 27, -42, 20, -26], c.fur);
  if (ears === 'floppy') pen.ellipse(17, -40, 3.8, 7.5, c.furDark, 0.35);
  pen.circle(22, -42, 10, furPaint(c.fur, c.marking, c.pattern === 'patches' ? 'patches' : 'plain', 30, -44));
  pen.ellipse(31, -38, 7.5, 5, c.fur);
  pen.circle(37.8, -39.5, 2.2, NOSE);
  pen.circle(25.5, -45, 1.7, EYE);
  if (ears === 'pointy') pen.poly([14, -47, 17.5, -60, 23, -50], c.furDark);
  else if (ears === 'round') pen.circle(17, -51, 4.6, c.furDark);
  else pen.ellipse(16.5, -41, 3.8, 7.5, c.furDark, 0.35);
  if (c.collar) {
    pen.capsule(13, -37.5, 21.5, -29.5, 4.2, c.collar); // across the neck
    pen.circle(18.5, -29, 1.9, TAG);
  }
}

function catSide(pen: Pen, c: Colours, ears: string, tail: string, stride: number): void {
  const step = 3.5 * stride;
  if (tail === 'long') {
    pen.capsule(-15, -22, -23, -31, 4, c.fur);
    pen.capsule(-23, -31, -21, -44, 4, c.fur);
  } else if (tail === 'short') pen.capsule(-15, -22, -20, -27, 4.5, c.fur);
  else pen.arc(-20, -31, 5, 3.2, -0.8, 4.2, c.fur);
  pen.capsule(-10 + step, -16, -10 - step, -2, 4.8, c.furDark);
  pen.capsule(11 - step, -16, 11 + step, -2, 4.8, c.furDark);
  pen.ellipse(0, -20, 17, 8.5, furPaint(c.fur, c.marking, c.pattern, 0, -20));
  pen.capsule(-13 - step, -16, -13 + step, -2, 5, c.fur);
  pen.capsule(8 + step, -16, 8 - step, -2, 5, c.fur);
  // Head: round, no muzzle.
  if (ears === 'pointy') {
    pen.poly([11, -34, 12.5, -45, 18, -37], c.furDark);
    pen.poly([17, -38, 22.5, -45.5, 24, -34], c.furDark);
  } else if (ears === 'round') {
    pen.circle(13.5, -38.5, 3.8, c.furDark);
    pen.circle(21.5, -39.5, 3.8, c.furDark);
  }
  pen.circle(18, -31, 8.8, furPaint(c.fur, c.marking, c.pattern === 'patches' ? 'patches' : 'plain', 24, -34));
  if (ears === 'floppy') {
    pen.ellipse(13, -37, 4, 2.6, c.furDark, -0.5);
    pen.ellipse(21, -38.5, 4, 2.6, c.furDark, 0.5);
  }
  pen.circle(22.5, -33, 2.2, CAT_IRIS);
  pen.ellipse(22.8, -33, 0.9, 1.8, EYE);
  pen.poly([25.5, -29.5, 27.5, -29.5, 26.3, -27.5], CAT_NOSE);
  if (c.collar) {
    pen.capsule(9.5, -29, 15.5, -22.5, 3.4, c.collar); // across the neck
    pen.circle(13.8, -21, 1.6, TAG);
  }
}

function dogFront(pen: Pen, c: Colours, ears: string, tail: string): void {
  if (tail === 'long') pen.capsule(9, -4, 25, -10, 5, c.fur);
  else if (tail === 'short') pen.capsule(9, -4, 15, -6, 5, c.fur);
  else pen.arc(17, -12, 5.5, 3.8, -2.6, 2.2, c.fur);
  pen.ellipse(-11, -9, 7.5, 9, c.furDark);
  pen.ellipse(11, -9, 7.5, 9, c.furDark);
  pen.ellipse(0, -22, 13, 18, furPaint(c.fur, c.marking, c.pattern, 0, -22));
  for (const side of [-1, 1]) {
    pen.capsule(side * 5, -18, side * 5, -3, 6.5, c.fur);
    pen.ellipse(side * 5.5, -2, 4.5, 2.6, c.furDark);
  }
  if (ears === 'pointy') for (const side of [-1, 1]) pen.poly([side * 4, -55, side * 10.5, -67, side * 13, -50], c.furDark);
  else if (ears === 'round') for (const side of [-1, 1]) pen.circle(side * 9.5, -57, 5.2, c.furDark);
  pen.circle(0, -47, 12, furPaint(c.fur, c.marking, c.pattern === 'patches' ? 'patches' : 'plain', 3, -49));
  if (ears === 'floppy') for (const side of [-1, 1]) pen.ellipse(side * 12, -46, 4, 8.5, c.furDark, side * -0.2);
  pen.ellipse(0, -41, 6.5, 5, shade(c.fur, 1.25));
  pen.ellipse(0, -43.5, 2.8, 2, NOSE);
  for (const side of [-1, 1]) pen.circle(side * 4.5, -50, 1.8, EYE);
  if (c.collar) {
    pen.rect(-9, -36, 18, 4.2, c.collar);
    pen.circle(0, -30.5, 2, TAG);
  }
}

function catFront(pen: Pen, c: Colours, ears: string, tail: string): void {
  if (tail === 'long') pen.capsule(7, -3, 18, -22, 4, c.fur);
  else if (tail === 'short') pen.capsule(7, -3, 12, -6, 4.5, c.fur);
  else pen.arc(14, -10, 4.5, 3.2, -2.6, 2.2, c.fur);
  pen.ellipse(-8, -7, 5.5, 7, c.furDark);
  pen.ellipse(8, -7, 5.5, 7, c.furDark);
  pen.ellipse(0, -17, 10, 14, furPaint(c.fur, c.marking, c.pattern, 0, -17));
  for (const side of [-1, 1]) {
    pen.capsule(side * 4, -14, side * 4, -3, 4.8, c.fur);
    pen.ellipse(side * 4.5, -2, 3.4, 2, c.furDark);
  }
  if (ears === 'pointy') for (const side of [-1, 1]) pen.poly([side * 2.5, -44, side * 9, -52, side * 10, -38], c.furDark);
  else if (ears === 'round') for (const side of [-1, 1]) pen.circle(side * 7.5, -45, 4, c.furDark);
  pen.circle(0, -37, 9.5, furPaint(c.fur, c.marking, c.pattern === 'patches' ? 'patches' : 'plain', 2, -39));
  if (ears === 'floppy') for (const side of [-1, 1]) pen.ellipse(side * 7, -44, 4, 2.6, c.furDark, side * 0.5);
  for (const side of [-1, 1]) {
    pen.circle(side * 3.8, -38.5, 2.3, CAT_IRIS);
    pen.ellipse(side * 3.8, -38.5, 0.9, 1.9, EYE);
  }
  pen.poly([-1.3, -34.5, 1.3, -34.5, 0, -32.8], CAT_NOSE);
  if (c.collar) {
    pen.rect(-7, -29, 14, 3.4, c.collar);
    pen.circle(0, -24.6, 1.6, TAG);
  }
}
