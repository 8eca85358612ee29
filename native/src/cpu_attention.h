// Inference attention on CPUs: bfloat16 with AVX-512 and AMX (cpu_attention.cpp), float32 with
// AVX-512 (cpu_attention_f32.cpp).
#pragma once

#include <ATen/ATen.h>

namespace moa {

// Whether this CPU runs cpuAttention (AVX-512 with AVX512-BF16, and AMX that Linux lets this process use).
bool cpuAttentionAvailable();

// Whether this CPU runs cpuAttention in float32 (AVX-512; see cpu_attention_f32.cpp).
bool cpuAttentionF32Available();

// softmax(q·kᵀ·scale)·v per head for q [B, Lq, heads, d], k [B, Lk, heads, d], v [B, Lk, heads, dv],
// all bfloat16 or all float32 on the CPU (any strides; the last dimension is best contiguous); no
// gradients. → [B, Lq, heads, dv] in their dtype, contiguous.
at::Tensor cpuAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);

// cpuAttention's float32 kernel, for inputs cpuAttention has checked (last dimension contiguous).
at::Tensor cpuAttentionF32(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);

}  // namespace moa
