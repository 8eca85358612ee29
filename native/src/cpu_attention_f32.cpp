// Inference attention for float32 on CPUs with AVX-512, where libtorch 1.13 has no fused kernel.
//
// The composed form writes a 4096-token layer's scores (1 GB at batch 2 with 8 heads) to memory
// and reads them back through softmax and the second matmul; smaller blocks through libtorch's
// matmuls pay OpenBLAS's per-call cost. Here each task takes one head and 32 query rows, whose
// scores (32 × Lk floats: 512 KB at 4096 keys) stay in L2: q·kᵀ register-blocked 8 rows × 32 keys
// on the FMA units, exp against each row's maximum, then p·v register-blocked 4 rows × 64 columns,
// each output row divided by its sum. Exact up to float32 rounding and exp's 5e-5.

#include "cpu_attention.h"

#include <ATen/Parallel.h>

#include "simd.h"

#include <algorithm>
#include <limits>
#include <vector>

namespace moa {
namespace {

constexpr int64_t kRows = 32;       // query rows per task
constexpr int kScoreRows = 8;       // rows per register block of q·kᵀ: 16 accumulators
constexpr int kValueRows = 4;       // rows per register block of p·v: up to 16 accumulators
constexpr int kValueChunks = 4;     // 16-float column chunks per register block of p·v
// (The loops over rows and chunks below are unrolled, so that the accumulators live in registers.)

// The first n lanes (n clamped to [0, 16]).
inline __mmask16 firstLanes(int64_t n) {
  return static_cast<__mmask16>((1u << std::clamp<int64_t>(n, 0, 16)) - 1);
}

// s[r][j] = q[r]·k[j] for NR rows and every key. Keys are packed per head in blocks of 32:
// kp[(j / 32)·d·32 + i·32 + j % 32] = k[j][i], zero past the last key.
template <int NR>
MOA_AVX512 void scoreRows(const float* q, int64_t d, const float* kp, int64_t keys32, float* s, int64_t sStride) {
  for (int64_t j = 0; j < keys32; j += 32) {
    const float* kb = kp + j * d;
    __m512 acc[NR][2];
    #pragma GCC unroll 16
    for (int r = 0; r < NR; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
    for (int64_t i = 0; i < d; i++) {
      const __m512 k0 = _mm512_loadu_ps(kb + i * 32), k1 = _mm512_loadu_ps(kb + i * 32 + 16);
      #pragma GCC unroll 16
      for (int r = 0; r < NR; r++) {
        const __m512 qb = _mm512_set1_ps(q[r * d + i]);
        acc[r][0] = _mm512_fmadd_ps(qb, k0, acc[r][0]);
        acc[r][1] = _mm512_fmadd_ps(qb, k1, acc[r][1]);
      }
    }
    #pragma GCC unroll 16
    for (int r = 0; r < NR; r++) {
      _mm512_storeu_ps(s + r * sStride + j, acc[r][0]);
      _mm512_storeu_ps(s + r * sStride + j + 16, acc[r][1]);
    }
  }
}

// One row of scores → unnormalised probabilities exp(s − max) in place (zero past the last key);
// returns their sum.
MOA_AVX512 float expRow(float* s, int64_t lk, int64_t keys32) {
  __m512 m = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  for (int64_t j = 0; j < keys32; j += 16) m = _mm512_mask_max_ps(m, firstLanes(lk - j), m, _mm512_loadu_ps(s + j));
  const __m512 max = _mm512_set1_ps(_mm512_reduce_max_ps(m));
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < keys32; j += 16) {
    const __m512 p = _mm512_maskz_mov_ps(firstLanes(lk - j), expNonPositive(_mm512_sub_ps(_mm512_loadu_ps(s + j), max)));
    _mm512_storeu_ps(s + j, p);
    sum = _mm512_add_ps(sum, p);
  }
  return _mm512_reduce_add_ps(sum);
}

// o[r][c] = inv[r] · Σ_j p[r][j]·v[j][c] for NR rows and NC·16 columns (columns from `cols` on
// are not written). v is packed per head as [keys][dvPad], zero in the padding.
template <int NR, int NC>
MOA_AVX512 void valueRows(const float* p, int64_t pStride, const float* v, int64_t dvPad, int64_t lk, const float* inv, float* o,
                          int64_t oStride, int64_t cols) {
  __m512 acc[NR][NC];
  #pragma GCC unroll 16
  for (int r = 0; r < NR; r++)
    #pragma GCC unroll 16
    for (int c = 0; c < NC; c++) acc[r][c] = _mm512_setzero_ps();
  for (int64_t j = 0; j < lk; j++) {
    __m512 vv[NC];
    #pragma GCC unroll 16
    for (int c = 0; c < NC; c++) vv[c] = _mm512_loadu_ps(v + j * dvPad + c * 16);
    #pragma GCC unroll 16
    for (int r = 0; r < NR; r++) {
      const __m512 pb = _mm512_set1_ps(p[r * pStride + j]);
      #pragma GCC unroll 16
      for (int c = 0; c < NC; c++) acc[r][c] = _mm512_fmadd_ps(pb, vv[c], acc[r][c]);
    }
  }
  #pragma GCC unroll 16
  for (int r = 0; r < NR; r++)
    #pragma GCC unroll 16
    for (int c = 0; c < NC; c++)
      _mm512_mask_storeu_ps(o + r * oStride + c * 16, firstLanes(cols - c * 16), _mm512_mul_ps(acc[r][c], _mm512_set1_ps(inv[r])));
}

// Runtime row and chunk counts → the template instances above.
template <int NR>
MOA_AVX512 void scoreRowsUpTo(int nr, const float* q, int64_t d, const float* kp, int64_t keys32, float* s, int64_t sStride) {
  if constexpr (NR > 1) {
    if (nr < NR) return scoreRowsUpTo<NR - 1>(nr, q, d, kp, keys32, s, sStride);
  }
  scoreRows<NR>(q, d, kp, keys32, s, sStride);
}

template <int NR, int NC>
MOA_AVX512 void valueRowsUpTo(int nr, int nc, const float* p, int64_t pStride, const float* v, int64_t dvPad, int64_t lk,
                              const float* inv, float* o, int64_t oStride, int64_t cols) {
  if constexpr (NR > 1) {
    if (nr < NR) return valueRowsUpTo<NR - 1, NC>(nr, nc, p, pStride, v, dvPad, lk, inv, o, oStride, cols);
  }
  if constexpr (NC > 1) {
    if (nc < NC) return valueRowsUpTo<NR, NC - 1>(nr, nc, p, pStride, v, dvPad, lk, inv, o, oStride, cols);
  }
  valueRows<NR, NC>(p, pStride, v, dvPad, lk, inv, o, oStride, cols);
}

// Head h (= b·heads + hh) of a [B, L, heads, d] view whose last dimension is contiguous: row l.
const float* headRow(const at::Tensor& t, int64_t h, int64_t l) {
  const int64_t heads = t.size(2);
  return t.data_ptr<float>() + (h / heads) * t.stride(0) + (h % heads) * t.stride(2) + l * t.stride(1);
}

}  // namespace

bool cpuAttentionF32Available() {
  static const bool ok = hasAvx512();
  return ok;
}

at::Tensor cpuAttentionF32(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, double scale) {
  TORCH_CHECK(cpuAttentionF32Available(), "cpuAttention in float32 needs a CPU with AVX-512 (use the composed attention)");
  const int64_t batch = q.size(0), heads = q.size(2), bh = batch * heads;
  const int64_t lq = q.size(1), lk = k.size(1), d = q.size(3), dv = v.size(3);
  const int64_t keys32 = (lk + 31) / 32 * 32, dvPad = (dv + 15) / 16 * 16;
  // Every head's keys and values packed once (layouts above), zero in the padding.
  const int64_t kSize = keys32 * d, vSize = lk * dvPad;
  std::vector<float> kp(static_cast<size_t>(bh * kSize), 0.0f), vp(static_cast<size_t>(bh * vSize), 0.0f);
  at::parallel_for(0, bh, 1, [&](int64_t begin, int64_t end) {
    for (int64_t h = begin; h < end; h++) {
      float* kd = kp.data() + h * kSize;
      float* vd = vp.data() + h * vSize;
      for (int64_t j = 0; j < lk; j++) {
        const float* kr = headRow(k, h, j);
        float* block = kd + (j / 32) * d * 32 + j % 32;
        for (int64_t i = 0; i < d; i++) block[i * 32] = kr[i];
        const float* vr = headRow(v, h, j);
        std::copy(vr, vr + dv, vd + j * dvPad);
      }
    }
  });
  auto out = at::empty({batch, lq, heads, dv}, q.options());
  const int64_t blocks = (lq + kRows - 1) / kRows;
  at::parallel_for(0, bh * blocks, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> qs(static_cast<size_t>(kRows * d)), scores(static_cast<size_t>(kRows * keys32));
    float inv[kRows];
    const float s = static_cast<float>(scale);
    for (int64_t task = begin; task < end; task++) {
      const int64_t h = task / blocks, r0 = (task % blocks) * kRows, rows = std::min(kRows, lq - r0);
      for (int64_t r = 0; r < rows; r++) {
        const float* qr = headRow(q, h, r0 + r);
        for (int64_t i = 0; i < d; i++) qs[r * d + i] = qr[i] * s;  // q scaled first, as the composed form does
      }
      for (int64_t g = 0; g < rows; g += kScoreRows)
        scoreRowsUpTo<kScoreRows>(static_cast<int>(std::min<int64_t>(kScoreRows, rows - g)), qs.data() + g * d, d,
                                  kp.data() + h * kSize, keys32, scores.data() + g * keys32, keys32);
      for (int64_t r = 0; r < rows; r++) inv[r] = 1.0f / expRow(scores.data() + r * keys32, lk, keys32);
      float* o = out.data_ptr<float>() + ((h / heads) * lq + r0) * heads * dv + (h % heads) * dv;
      for (int64_t g = 0; g < rows; g += kValueRows) {
        const int nr = static_cast<int>(std::min<int64_t>(kValueRows, rows - g));
        for (int64_t c0 = 0; c0 < dvPad; c0 += kValueChunks * 16) {
          const int nc = static_cast<int>(std::min<int64_t>(kValueChunks, (dvPad - c0) / 16));
          valueRowsUpTo<kValueRows, kValueChunks>(nr, nc, scores.data() + g * keys32, keys32, vp.data() + h * vSize + c0, dvPad, lk,
                                                  inv + g, o + g * heads * dv + c0, heads * dv, dv - c0);
        }
      }
    }
  });
  return out;
}

}  // namespace moa
