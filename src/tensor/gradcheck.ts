// Checks autograd against central finite differences, as torch.autograd.gradcheck does.
import { noGrad } from './autograd.js';
import { randn } from './create.js';
import { Generator } from './generator.js';
import { tidy } from './scope.js';
import type { Tensor } from './tensor.js';

export interface GradcheckOptions {
  eps?: number;
  atol?: number;
  rtol?: number;
  seed?: number;
}

/**
 * Compares the gradient autograd computes for each input with central differences of
 * sum(fn(inputs) · w) for a random w. Inputs should be small, float64, contiguous and
 * require grad. Throws an error naming the input, element and both values on a mismatch.
 */
export function gradcheck(fn: (...inputs: Tensor[]) => Tensor, inputs: readonly Tensor[], options: GradcheckOptions = {}): true {
  const { eps = 1e-6, atol = 1e-5, rtol = 1e-3, seed = 0 } = options;
  for (const [i, x] of inputs.entries()) {
    if (!x.requiresGrad) throw new TypeError(`gradcheck: input ${i} does not require grad`);
    if (!x.isContiguous()) throw new TypeError(`gradcheck: input ${i} is not contiguous`);
  }
  tidy(() => {
    const probe = noGrad(() => fn(...inputs));
    const weights = randn(probe.shape, { generator: new Generator(seed), dtype: probe.dtype, device: probe.device });
    const objective = () => fn(...inputs).mul(weights).sum();

    for (const x of inputs) x.zeroGrad();
    objective().backward();
    const analytic = inputs.map((x) => x.grad?.toFloat64Array() ?? new Float64Array(x.numel));

    inputs.forEach((x, i) => {
      const flat = x.detach().view(-1);
      const values = x.toFloat64Array();
      for (let j = 0; j < values.length; j++) {
        const element = flat.narrow(0, j, 1);
        const at = (v: number) => noGrad(() => {
          element.fill_(v);
          return objective().item();
        });
        const numeric = (at(values[j]! + eps) - at(values[j]! - eps)) / (2 * eps);
        noGrad(() => element.fill_(values[j]!));
        const got = analytic[i]![j]!;
        if (!(Math.abs(got - numeric) <= atol + rtol * Math.abs(numeric))) {
          throw new Error(
            `gradcheck: input ${i} (shape [${x.shape.join(', ')}]) element ${j}: autograd gives ${got}, finite differences ${numeric}`,
          );
        }
      }
    });
    for (const x of inputs) x.zeroGrad();
  });
  return true;
}
