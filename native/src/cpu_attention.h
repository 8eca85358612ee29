// Inference attention for bfloat16 on CPUs with AVX-512 and AMX (see cpu_attention.cpp).
#pragma once

#include <ATen/ATen.h>

namespace moa {

// Whether this CPU runs cpuAttention (AVX-512 with AVX512-BF16, and AMX that Linux lets this process use).
bool cpuAttentionAvailable();

// softmax(q·kᵀ·scale)·v for q [BH, Lq, d], k [BH, Lk, d], v [BH, Lk, dv], all bfloat16 on the CPU;
// no gradients. → [BH, Lq, dv] bfloat16.
at::Tensor cpuAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);

}  // namespace moa
