// Inference attention on CPUs: bfloat16 with AVX512-BF16, and AMX where present (cpu_attention.cpp), float32 with
// AVX-512 (cpu_attention_f32.cpp).
#pragma once

#include <ATen/ATen.h>

namespace moa {

// Whether this CPU runs cpuAttention in bfloat16 (AVX-512 with AVX512-BF16).
bool cpuAttentionAvailable();

// Whether bfloat16 cpuAttention runs its matmuls on AMX tiles (AMX that Linux lets this process use,
// and not turned off below) rather than on AVX512-BF16 dot products.
bool cpuAttentionUsesAmx();

// Lets bfloat16 cpuAttention use AMX where it can (the default) or not: tests check both paths on
// AMX CPUs, benchmarks compare them.
void allowCpuAttentionAmx(bool on);

// Whether this CPU runs cpuAttention in float32 (AVX-512; see cpu_attention_f32.cpp).
bool cpuAttentionF32Available();

// softmax(q·kᵀ·scale)·v per head for q [B, Lq, heads, d], k [B, Lk, heads, d], v [B, Lk, heads, dv],
// all bfloat16 or all float32 on the CPU (any strides; the last dimension is best contiguous); no
// gradients. → [B, Lq, heads, dv] in their dtype, contiguous.
at::Tensor cpuAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);

// cpuAttention's float32 kernel, for inputs cpuAttention has checked (last dimension contiguous).
at::Tensor cpuAttentionF32(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale);

}  // namespace moa
