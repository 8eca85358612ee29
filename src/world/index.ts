// The synthetic world: procedural people and pets with named attributes, in scenes, with exact
// segmentation maps, captions and identities; the data the small default model trains on and
// the ground truth `moa eval` measures against. See docs/world.md.
//
//   const people = sampleIdentities(seed, 1000);                  // identities, split train/test
//   const spec = sampleScene(seed, 0, { pool, templates });       // or write a SceneSpec by hand
//   const { rgb, segMap, caption, segments } = renderScene(spec, { size: 128 });
//   const ref = renderReference(people[0]!, { size: 128 });       // the identity alone, front view
//   await writeWorld({ out: 'world', images: 20000, seed: 1 });   // the FFHQ-wild folder
export {
  CAPTION_TEMPLATES,
  PLACE_PHRASES,
  TEST_TEMPLATES,
  TIME_PHRASES,
  TRAIN_TEMPLATES,
  WORLD_WORDS,
  buildCaption,
  templateText,
  type Caption,
  type TemplateId,
} from './captions.js';
export { checkIdentity, drawAttributes, sampleIdentities, type Identity, type SampleIdentitiesOptions, type Split } from './identity.js';
export { encodeNpyInt32 } from './npy-write.js';
export type { RGB } from './raster.js';
export {
  renderReference,
  renderScene,
  subjectVisibility,
  xRange,
  type ReferenceOptions,
  type RenderedReference,
  type RenderedScene,
  type RenderOptions,
  type SceneSpec,
  type Segment,
  type SubjectPlacement,
  type Visibility,
} from './render.js';
export { sampleScene, type SampleSceneOptions } from './sample.js';
export * from './vocab.js';
export { imageId, imageSpec, imageSplit, planWorld, splitImages, type WorldPlan, type WorldSettings } from './plan.js';
export {
  WORLD_FORMAT,
  WORLD_VERSION,
  writeWorld,
  type WorldCounts,
  type WorldManifest,
  type WorldProgress,
  type WorldSummary,
  type WriteWorldOptions,
} from './write.js';
