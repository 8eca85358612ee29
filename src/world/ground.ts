// Perspective on the ground plane, as fractions of the image side: depth 0 stands near the
// bottom edge at full size, depth 1 far up towards the horizon at a bit over half size. Props and
// subjects share it, so a tree and a person at the same depth stand on the same line.

/** The y (fraction of the side) where something at `depth` touches the ground. */
export function groundY(horizon: number, depth: number): number {
  return horizon + (0.97 - horizon) * (0.22 + 0.78 * (1 - depth));
}

/** An adult's height (fraction of the side) at `depth`: large enough to read at 64 px. */
export function adultHeight(depth: number): number {
  return 0.4 + 0.34 * (1 - depth);
}
