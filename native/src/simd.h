// AVX-512 helpers shared by moa's CPU kernels. Functions carry their own target attributes, so the
// rest of the binding builds for any x86-64; callers check the CPU before calling them.
#pragma once

#include <immintrin.h>

// GCC 12's AVX-512 headers trip these on their own _mm512_undefined_* placeholders.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace moa {

#define MOA_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq")))
#define MOA_AVX512_BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

// exp(x) for x ≤ 0: 2^n · p(r), x = n·ln2 + r, |r| ≤ ln2/2, p the Taylor polynomial of degree 4
// (relative error < 5e-5, far below bf16's 4e-3). Below −87 the result flushes to 0, as the true
// value underflows.
MOA_AVX512 inline __m512 expNonPositive(__m512 x) {
  x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
  __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693147180559945f), x);
  __m512 p = _mm512_set1_ps(1.0f / 24);
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
  return _mm512_scalef_ps(p, n);
}

// Whether this CPU has AVX-512 F/BW/VL/DQ (what MOA_AVX512 code needs).
inline bool hasAvx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
         __builtin_cpu_supports("avx512dq");
}

// Whether this CPU also has AVX512-BF16 (what MOA_AVX512_BF16 code needs).
inline bool hasAvx512Bf16() {
  return hasAvx512() && __builtin_cpu_supports("avx512bf16");
}

}  // namespace moa
