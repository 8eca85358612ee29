// Which world an eval draws its held-out identities from: a world folder's world.json, or the
// settings of the world the default model is trained on (`moa world --out world --images 20000 --seed 1`).
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WorldSettings } from '../world/plan.js';
import { WORLD_FORMAT } from '../world/write.js';

export const DEFAULT_WORLD: WorldSettings = { seed: 1, size: 128, images: 20000, identities: 1000, heldOutFraction: 0.2 };

/** The settings in DIR/world.json. */
export function readWorldSettings(dir: string): WorldSettings {
  const path = join(dir, 'world.json');
  if (!existsSync(path)) throw new Error(`no world in '${dir}' (expected world.json, as \`moa world --out DIR\` writes it)`);
  let m: Partial<WorldSettings> & { format?: string };
  try {
    m = JSON.parse(readFileSync(path, 'utf8')) as typeof m;
  } catch (error) {
    throw new Error(`${path}: not valid JSON (${error instanceof Error ? error.message : String(error)})`, { cause: error });
  }
  if (m?.format !== WORLD_FORMAT) throw new Error(`${path} is not a world manifest (format '${WORLD_FORMAT}')`);
  const { seed, size, images, identities, heldOutFraction } = m;
  for (const [name, v] of Object.entries({ seed, size, images, identities, heldOutFraction })) {
    if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`${path}: '${name}' must be a number, not ${JSON.stringify(v)}`);
  }
  return { seed: seed!, size: size!, images: images!, identities: identities!, heldOutFraction: heldOutFraction! };
}
