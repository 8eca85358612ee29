// Training losses for MoA (spec §3.3).
export { maskedDiffusionLoss, drawMaskDecisions, subjectErrorSums, MASKED_AVERAGES, type MaskedAverage, type MaskedDiffusionOptions } from './diffusion.js';
export { routerLoss, routingLosses, subjectRoutingLoss } from './router.js';
export { objectLoss } from './object.js';
export { backgroundPriorLoss } from './background.js';
export { totalLoss, DEFAULT_LOSS_CONFIG, type LossConfig, type LossInputs, type LossTerms } from './total.js';
export { lossFloat } from './common.js';
