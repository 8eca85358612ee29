// Evaluation (`moa eval`): judges trained on rendered world images (a segmenter, an attribute
// recogniser, a scene recogniser) score what a model generates for held-out identities in
// unseen captions: identity and context fidelity, disentanglement by subject swap, prior
// preservation and routing. See docs/eval.md.
export { measureJudges, type AccuracyOptions, type JudgeAccuracy } from './accuracy.js';
export { evalCases, type EvalCase, type EvalCaseOptions } from './cases.js';
export { subjectCrop, type Box, type CropJitter } from './crops.js';
export { evaluate, type EvalImages, type EvalModel, type EvaluateOptions } from './evaluate.js';
export { buildGrid, changeMap, writeGrid, type GridLayout } from './grid.js';
export { buildJudgeData, judgeIdentities, HELD_OUT_INDEX, type JudgeData, type JudgeDataOptions } from './judge-data.js';
export { AttributeNet, SceneNet, Segmenter, type AttributeNetConfig, type SceneNetConfig, type SegmenterConfig } from './judge-nets.js';
export { DEFAULT_JUDGES_SHAPE, defaultJudgesDir, Judges, type FoundSubject, type Judgement, type JudgesConfig, type JudgesShape, type SubjectReading } from './judges.js';
export { ATTRIBUTE_HEADS, attributeTargets, classAttributes, classIndex, className, IGNORE, PIXEL_CLASSES } from './labels.js';
export { changedPixels, meanAbsDiff, routingOverlap, scoreSubject, swapChange, type RoutingOverlap, type SubjectScore, type SwapChange } from './metrics.js';
export { dilate, findRegions, matchSubjects, unionMask, type Region } from './regions.js';
export { renderJudgeReference, renderJudgeScene, shrinkLabels, type JudgeReference, type JudgeScene } from './render.js';
export { EVAL_FORMAT, EVAL_VERSION, formatReport, type EvalReport, type VariantName, type VariantSummary } from './report.js';
export { DEFAULT_STEPS, trainJudges, type JudgeNet, type TrainJudgesOptions, type TrainJudgesProgress, type TrainJudgesResult } from './train-judges.js';
export { DEFAULT_WORLD, readWorldSettings } from './world-settings.js';
