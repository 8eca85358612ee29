// Light by time of day: sky colours, and a tint that multiplies every lit colour of a scene
// (subjects get half of it, so their attributes stay readable at night).
import { type Tint } from './pen.js';
import type { RGB } from './raster.js';
import type { TimeOfDay } from './vocab.js';

export interface Sky {
  /** Colour bands from the top of the sky down to the horizon. */
  bands: RGB[];
}

export const SKIES: Record<TimeOfDay, Sky> = {
  day: { bands: [[104, 172, 232], [126, 188, 240], [150, 204, 246], [178, 220, 250]] },
  dusk: { bands: [[70, 60, 130], [150, 80, 130], [226, 118, 96], [250, 170, 92]] },
  night: { bands: [[10, 14, 40], [16, 22, 54], [24, 32, 70], [34, 44, 88]] },
};

const AMBIENT: Record<TimeOfDay, readonly [number, number, number]> = {
  day: [1, 1, 1],
  dusk: [1, 0.8, 0.74],
  night: [0.46, 0.52, 0.76],
};

/** Indoors the lamps are on: the night is milder. */
const INDOOR: Record<TimeOfDay, readonly [number, number, number]> = {
  day: [1, 1, 1],
  dusk: [1, 0.9, 0.82],
  night: [0.78, 0.74, 0.7],
};

function multiply(f: readonly [number, number, number]): Tint {
  if (f[0] === 1 && f[1] === 1 && f[2] === 1) return (c) => c;
  return (c) => [Math.round(c[0] * f[0]), Math.round(c[1] * f[1]), Math.round(c[2] * f[2])];
}

/** The tint of the scene's lit colours; `strength` 0.5 gives the subjects' milder one. */
export function ambientTint(time: TimeOfDay, indoor: boolean, strength = 1): Tint {
  const f = (indoor ? INDOOR : AMBIENT)[time];
  return multiply([1 + (f[0] - 1) * strength, 1 + (f[1] - 1) * strength, 1 + (f[2] - 1) * strength]);
}
