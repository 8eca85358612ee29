// Inference attention for bfloat16 on CPUs with AVX-512 and AMX (see cpu_attention.cpp).
#pragma once

#include <ATen/ATen.h>

namespace moa {

// Whether this CPU runs cpuAttention (AVX-512 with AVX512-BF16, and AMX that Linux lets this process use).
bool cpuAttentionAvailable();

// softmax(q·kᵀ·scale)·v per head for q [B, Lq, heads, d], k [B, Lk, heads, d], v [B, Lk, heads, dv],
// all bfloat16 on the CPU (any strides; the last dimension is best contiguous); no gradients.
// → [B, Lq, heads, dv] bfloat16, contiguous.
at::Tensor cpuAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);

}  // namespace moa
