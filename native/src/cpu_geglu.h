// GEGLU's activation for bfloat16 on AVX-512 CPUs (see cpu_geglu.cpp).
#pragma once

#include <ATen/ATen.h>

namespace moa {

// Whether this CPU runs cpuGeglu (AVX-512 with AVX512-BF16).
bool cpuGegluAvailable();

// For h [..., 2n] bfloat16 on the CPU: value · gelu(gate) with value = h[..., :n] and
// gate = h[..., n:] (gelu with erf, as diffusers' GEGLU); no gradients. → [..., n] bfloat16.
at::Tensor cpuGeglu(const at::Tensor& h);

}  // namespace moa
