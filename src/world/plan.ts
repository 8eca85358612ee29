// What a world holds, from its settings alone: the identities, their train/test pools, which
// images are train and which test, and each image's scene. Pure and cheap, so every worker
// thread derives the same plan and any image can be made on its own.
import { TEST_TEMPLATES, TRAIN_TEMPLATES } from './captions.js';
import { type Identity, sampleIdentities, type Split } from './identity.js';
import type { SceneSpec } from './render.js';
import { sampleScene } from './sample.js';

export interface WorldSettings {
  seed: number;
  /** Image side in pixels. */
  size: number;
  images: number;
  identities: number;
  heldOutFraction: number;
}

export interface WorldPlan {
  settings: WorldSettings;
  people: Identity[];
  pools: Record<Split, Identity[]>;
  /** Images [0, train) are train images, [train, train + test) test images. */
  split: Record<Split, number>;
}

/** Images [0, train) use train identities, the rest held-out ones. */
export function splitImages(images: number, heldOutFraction: number): Record<Split, number> {
  const test = Math.round(images * heldOutFraction);
  return { train: images - test, test };
}

export function planWorld(settings: WorldSettings): WorldPlan {
  const people = sampleIdentities(settings.seed, settings.identities, { heldOutFraction: settings.heldOutFraction });
  const pools = { train: people.filter((p) => p.split === 'train'), test: people.filter((p) => p.split === 'test') };
  const split = splitImages(settings.images, settings.heldOutFraction);
  if (split.test > 0 && pools.test.length === 0) {
    throw new Error(`no identity is held out with ${settings.identities} identities at a held-out fraction of ${settings.heldOutFraction}; ask for more identities`);
  }
  return { settings, people, pools, split };
}

export function imageSplit(plan: WorldPlan, index: number): Split {
  return index < plan.split.train ? 'train' : 'test';
}

/** The scene of image `index`: held-out identities and unseen templates for test images. */
export function imageSpec(plan: WorldPlan, index: number): SceneSpec {
  const test = imageSplit(plan, index) === 'test';
  return sampleScene(plan.settings.seed, index, { pool: test ? plan.pools.test : plan.pools.train, templates: test ? TEST_TEMPLATES : TRAIN_TEMPLATES });
}

/** The id of image `index`: zero-padded to 7 digits (more for huge worlds), so 100 images share a folder. */
export function imageId(index: number, images: number): string {
  return String(index).padStart(Math.max(7, String(images - 1).length), '0');
}
