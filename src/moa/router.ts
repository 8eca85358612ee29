// The MoA router: a per-token MLP on the layer's hidden states that weighs the two experts.
// Keys `0.weight`, `0.bias`, `2.weight`, `2.bias` (the SiLU at index 1 has none), as
// torch.nn.Sequential(Linear, SiLU, Linear) would name them.
import { Sequential } from '../nn/containers.js';
import { type InitOptions } from '../nn/init.js';
import { Linear } from '../nn/linear.js';
import { Module } from '../nn/module.js';
import { noGrad } from '../tensor/autograd.js';
import { tensor } from '../tensor/create.js';
import { tidy } from '../tensor/scope.js';
import { type Tensor } from '../tensor/tensor.js';

/** x·sigmoid(x) as a layer, so the router is a plain Sequential. */
export class SiLU extends Module {
  forward(x: Tensor): Tensor {
    return x.silu();
  }
}

export class MoARouter extends Sequential {
  /**
   * Linear(channels, hidden) → SiLU → Linear(hidden, 2): logits of [prior, personal]. The last
   * layer starts with zero weights and biases [ln(r0 / (1 − r0)), 0], so softmax gives r0 at
   * every token whatever the input, and training starts from the prior's behaviour.
   */
  constructor(channels: number, hidden: number, initialPriorWeight: number, init: InitOptions = {}) {
    const last = new Linear(hidden, 2, { ...init, empty: true });
    super(new Linear(channels, hidden, init), new SiLU(), last);
    const logit = Math.log(initialPriorWeight / (1 - initialPriorWeight));
    noGrad(() =>
      tidy(() => {
        last.weight.zero_();
        last.bias!.copy_(tensor([logit, 0], { dtype: last.bias!.dtype, device: last.bias!.device }));
      }),
    );
  }

  /**
   * r1, the personal expert's weight, per token: hidden [B, N, C] → float32 [B, N, 1].
   * softmax over two experts is sigmoid(l1 − l0). `strength` s rescales the odds:
   * r1' = s·r1 / (r0 + s·r1) = sigmoid(l1 − l0 + ln s), and r0' = 1 − r1' (so s = 1 is the
   * learned routing, s → 0 the prior alone, s > 1 favours the subject).
   */
  personalWeight(hidden: Tensor, strength = 1): Tensor {
    return tidy(() => {
      const logits = this.forward(hidden).float();
      let odds = logits.narrow(-1, 1, 1).sub(logits.narrow(-1, 0, 1));
      if (strength !== 1) odds = odds.add(Math.log(strength));
      return odds.sigmoid();
    });
  }
}
