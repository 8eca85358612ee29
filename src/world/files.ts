// One image's files (<id>.jpg, <id>.json, <id>.npy) and one reference's PNG, each written
// atomically; files already complete from an interrupted run are kept.
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import sharp from 'sharp';
import { writeFileAtomically } from '../io/atomic.js';
import { encodeNpyInt32 } from './npy-write.js';
import { imageId, imageSpec, type WorldPlan } from './plan.js';
import { type RenderedScene, renderReference, renderScene } from './render.js';
import type { SubjectClass } from './vocab.js';

export interface ImageResult {
  /** The classes of the image's subjects (for the world's counts). */
  classes: SubjectClass[];
  /** False when the files were already there. */
  written: boolean;
}

export const jsonBytes = (value: unknown) => Buffer.from(JSON.stringify(value, null, 1) + '\n');

/** The <id>.json annotation: FFHQ-wild's caption and segments, plus the scene and template. */
export function annotationOf(r: RenderedScene): { caption: string; segments: RenderedScene['segments']; scene: RenderedScene['scene']; template: string } {
  return { caption: r.caption, segments: r.segments, scene: r.scene, template: r.template };
}

/** 4:4:4 keeps flat colours from bleeding across the exact mask edges. */
export function encodeJpeg(rgb: Uint8Array, width: number, height: number): Promise<Buffer> {
  return sharp(rgb, { raw: { width, height, channels: 3 } }).jpeg({ quality: 95, chromaSubsampling: '4:4:4' }).toBuffer();
}

export async function writeImageFiles(out: string, plan: WorldPlan, index: number): Promise<ImageResult> {
  const spec = imageSpec(plan, index);
  const classes = spec.subjects.map((s) => s.identity.class);
  const id = imageId(index, plan.settings.images);
  const dir = join(out, id.slice(0, 5));
  const [jpg, json, npy] = ['jpg', 'json', 'npy'].map((ext) => join(dir, `${id}.${ext}`)) as [string, string, string];
  if (existsSync(jpg) && existsSync(json) && existsSync(npy)) return { classes, written: false };
  const scene = renderScene(spec, { size: plan.settings.size });
  const jpeg = await encodeJpeg(scene.rgb, scene.width, scene.height);
  mkdirSync(dir, { recursive: true });
  // The map and annotation first, the image last: an image never appears without them.
  writeFileAtomically(npy, encodeNpyInt32(scene.segMap, scene.height, scene.width));
  writeFileAtomically(json, jsonBytes(annotationOf(scene)));
  writeFileAtomically(jpg, jpeg);
  return { classes, written: true };
}

export async function writeReferenceFile(out: string, plan: WorldPlan, index: number): Promise<boolean> {
  const identity = plan.people[index]!;
  const path = join(out, 'references', `${identity.id}.png`);
  if (existsSync(path)) return false;
  const ref = renderReference(identity, { size: plan.settings.size });
  const png = await sharp(ref.rgb, { raw: { width: ref.width, height: ref.height, channels: 3 } })
    .png()
    .toBuffer();
  writeFileAtomically(path, png);
  return true;
}
