// Inference attention for bfloat16 on CPUs with AVX-512 and AMX, where libtorch 1.13 has no fused kernel.
//
// The composed form spends most of its time in softmax: libtorch's bf16 exp runs at ~1.8 G/s on
// two cores, and SD1.5's 4096-token self-attention takes 268 M of them per guided step and layer.
// Here each task takes one head and a block of 64 query rows and keeps it in cache: scores = q·kᵀ
// in fp32 on AMX tiles, one pass per row for the maximum and one that writes
// p = exp((s − max)·scale) as bf16 (a polynomial exp in AVX-512), then (unnormalised p)·v on AMX
// tiles, and each output row divided by its sum, as flash attention does. Exact up to the bf16
// rounding of p and of the output. (libtorch's per-call oneDNN matmuls cost more than they do on
// blocks this small, and AVX512-BF16 dot products ran at a third of the composed form's speed.)

#include "cpu_attention.h"

#include <ATen/Parallel.h>

#include "simd.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <vector>

namespace moa {
namespace {

constexpr int64_t kMaxHeadDim = 256;  // 8 AMX steps of 32 (SD1.5's heads are 40, 80 and 160 wide)
constexpr int64_t kRows = 64;  // query rows per task: 64 × 4096 fp32 scores = 1 MB, in L2

#define MOA_AMX __attribute__((target("amx-tile,amx-bf16,avx512f")))

// AMX: eight tiles of 16 rows × 64 bytes (16 × 32 bf16, or 16 × 16 fp32), the only shape used.
struct alignas(64) TileConfig {
  uint8_t palette = 1, startRow = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

MOA_AMX void releaseTiles() { _tile_release(); }

MOA_AMX void configureTiles() {
  TileConfig config;
  for (int t = 0; t < 8; t++) config.colsb[t] = 64, config.rows[t] = 16;
  // GCC 12 does not see that ldtilecfg reads the struct and drops the stores above without this.
  asm volatile("" : : "r"(&config) : "memory");
  _tile_loadconfig(&config);
}

// Scores of 16·n query rows against cols64 keys, fp32: s[i][j] = Σ_c q[i][c]·k[j][c].
// q: bf16 rows padded to steps·32 values; kp: the keys' pairs as uint32 [steps·16][cols64]
// (pair p of key j = k[j][2p], k[j][2p+1]; zero past d and Lk): a B tile is 16 pairs × 16 keys.
// Tiles 0-3 accumulate a 32 × 32 block; 4-5 hold q, 6-7 the keys.
MOA_AMX void scoreBlock(const c10::BFloat16* q, const uint32_t* kp, float* s, int64_t rows16, int64_t steps, int64_t cols64) {
  const int64_t width = steps * 32, qStride = width * 2, kStride = cols64 * 4, sStride = cols64 * 4;
  for (int64_t i = 0; i < rows16; i += 32) {
    const bool two = i + 16 < rows16;
    for (int64_t j = 0; j < cols64; j += 32) {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t step = 0; step < steps; step++) {
        _tile_loadd(4, q + i * width + step * 32, qStride);
        _tile_loadd(6, kp + step * 16 * cols64 + j, kStride);
        _tile_loadd(7, kp + step * 16 * cols64 + j + 16, kStride);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        if (two) {
          _tile_loadd(5, q + (i + 16) * width + step * 32, qStride);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
      }
      _tile_stored(0, s + i * cols64 + j, sStride);
      _tile_stored(1, s + i * cols64 + j + 16, sStride);
      if (two) {
        _tile_stored(2, s + (i + 16) * cols64 + j, sStride);
        _tile_stored(3, s + (i + 16) * cols64 + j + 16, sStride);
      }
    }
  }
}

// o[i][c] = Σ_j p[i][j]·v[j][c], fp32, for 16·n rows. p: bf16 rows of keys32 values (zero past
// Lk); vp: v's pairs as uint32 [keys32/2][cols16] (pair m of column c = v[2m][c], v[2m+1][c]).
// Per 16 rows and up to 3 column tiles: tiles 0-2 accumulate over all keys, 4 holds p, 5-7 v.
MOA_AMX void valueBlock(const c10::BFloat16* p, const uint32_t* vp, float* o, int64_t rows16, int64_t keys32, int64_t cols16) {
  const int64_t pStride = keys32 * 2, vStride = cols16 * 4, oStride = cols16 * 4;
  for (int64_t i = 0; i < rows16; i += 16) {
    for (int64_t c = 0; c < cols16; c += 48) {
      const int64_t n = std::min<int64_t>(3, (cols16 - c) / 16);
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      for (int64_t k = 0; k < keys32; k += 32) {
        const uint32_t* vr = vp + (k / 2) * cols16 + c;
        _tile_loadd(4, p + i * keys32 + k, pStride);
        _tile_loadd(5, vr, vStride);
        _tile_dpbf16ps(0, 4, 5);
        if (n > 1) {
          _tile_loadd(6, vr + 16, vStride);
          _tile_dpbf16ps(1, 4, 6);
        }
        if (n > 2) {
          _tile_loadd(7, vr + 32, vStride);
          _tile_dpbf16ps(2, 4, 7);
        }
      }
      _tile_stored(0, o + i * cols16 + c, oStride);
      if (n > 1) _tile_stored(1, o + i * cols16 + c + 16, oStride);
      if (n > 2) _tile_stored(2, o + i * cols16 + c + 32, oStride);
    }
  }
}

// One row of fp32 scores (n of them) → p = exp((s − max)·scale) as bf16 (rounded to nearest
// even by AVX512-BF16); returns Σ p in fp32.
MOA_AVX512_BF16 float expRow(const float* s, c10::BFloat16* p, int64_t n, float scale) {
  const int64_t full = n / 16 * 16;
  const __mmask16 tail = static_cast<__mmask16>((1u << (n - full)) - 1);
  __m512 vmax = _mm512_set1_ps(-INFINITY);
  for (int64_t j = 0; j < full; j += 16) vmax = _mm512_max_ps(vmax, _mm512_loadu_ps(s + j));
  if (tail) vmax = _mm512_mask_max_ps(vmax, tail, vmax, _mm512_maskz_loadu_ps(tail, s + full));
  const __m512 shift = _mm512_set1_ps(_mm512_reduce_max_ps(vmax) * scale);
  const __m512 vscale = _mm512_set1_ps(scale);
  __m512 sum = _mm512_setzero_ps();
  for (int64_t j = 0; j < full; j += 16) {
    __m512 e = expNonPositive(_mm512_fmsub_ps(_mm512_loadu_ps(s + j), vscale, shift));
    sum = _mm512_add_ps(sum, e);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(p + j), (__m256i)_mm512_cvtneps_pbh(e));
  }
  if (tail) {
    __m512 e = expNonPositive(_mm512_fmsub_ps(_mm512_maskz_loadu_ps(tail, s + full), vscale, shift));
    sum = _mm512_mask_add_ps(sum, tail, sum, e);
    _mm256_mask_storeu_epi16(p + full, tail, (__m256i)_mm512_cvtneps_pbh(e));
  }
  return _mm512_reduce_add_ps(sum);
}

void checkInputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  TORCH_CHECK(q.dim() == 3 && k.dim() == 3 && v.dim() == 3, "cpuAttention: q, k, v must be [batch·heads, L, d]");
  TORCH_CHECK(q.scalar_type() == at::kBFloat16 && k.scalar_type() == at::kBFloat16 && v.scalar_type() == at::kBFloat16,
              "cpuAttention: q, k, v must be bfloat16");
  TORCH_CHECK(q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu(), "cpuAttention: q, k, v must be on the CPU");
  TORCH_CHECK(k.size(0) == q.size(0) && v.size(0) == q.size(0), "cpuAttention: q, k, v differ in batch·heads");
  TORCH_CHECK(k.size(2) == q.size(2) && v.size(1) == k.size(1), "cpuAttention: k must be [BH, Lk, d] and v [BH, Lk, dv]");
  TORCH_CHECK(k.size(1) > 0, "cpuAttention: no keys");
  TORCH_CHECK(q.size(2) <= kMaxHeadDim, "cpuAttention: head width ", q.size(2), " is over ", kMaxHeadDim);
}

}  // namespace

// Linux hands out AMX tile state only to processes that ask (arch_prctl ARCH_REQ_XCOMP_PERM).
bool cpuAttentionAvailable() {
  static const bool ok = [] {
    if (!hasAvx512Bf16() || !__builtin_cpu_supports("amx-tile") || !__builtin_cpu_supports("amx-bf16")) return false;
    constexpr long kReqXcompPerm = 0x1023, kXfeatureTileData = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureTileData) == 0;
  }();
  return ok;
}

at::Tensor cpuAttention(const at::Tensor& qIn, const at::Tensor& kIn, const at::Tensor& vIn, double scale) {
  TORCH_CHECK(cpuAttentionAvailable(), "cpuAttention needs a CPU with AVX-512 and AMX (use the composed attention)");
  checkInputs(qIn, kIn, vIn);
  at::NoGradGuard noGrad;
  const auto q = qIn.contiguous(), k = kIn.contiguous(), v = vIn.contiguous();
  const int64_t bh = q.size(0), lq = q.size(1), lk = k.size(1), d = q.size(2), dv = v.size(2);
  const int64_t steps = (d + 31) / 32, width = steps * 32;  // head width in AMX steps of 32
  const int64_t cols64 = (lk + 63) / 64 * 64, keys32 = (lk + 31) / 32 * 32, cols16 = (dv + 15) / 16 * 16;
  // Every head's keys as pairs [width/2][cols64] and values as pairs [keys32/2][cols16], packed once;
  // zeros in the padding, so padded key widths add 0 to scores and padded keys add 0 to outputs.
  const int64_t kSize = width / 2 * cols64, vSize = keys32 / 2 * cols16;
  std::vector<uint32_t> kp(static_cast<size_t>(bh * kSize), 0), vp(static_cast<size_t>(bh * vSize), 0);
  const auto bits = [](const c10::BFloat16* x, int64_t i, int64_t n) -> uint32_t { return i < n ? x[i].x : 0; };
  at::parallel_for(0, bh, 1, [&](int64_t begin, int64_t end) {
    for (int64_t h = begin; h < end; h++) {
      const auto* kh = k[h].data_ptr<c10::BFloat16>();
      const auto* vh = v[h].data_ptr<c10::BFloat16>();
      uint32_t* kd = kp.data() + h * kSize;
      uint32_t* vd = vp.data() + h * vSize;
      for (int64_t j = 0; j < lk; j++)
        for (int64_t p = 0; 2 * p < d; p++) kd[p * cols64 + j] = bits(kh + j * d, 2 * p, d) | bits(kh + j * d, 2 * p + 1, d) << 16;
      for (int64_t m = 0; 2 * m < lk; m++)
        for (int64_t c = 0; c < dv; c++)
          vd[m * cols16 + c] = vh[2 * m * dv + c].x | (2 * m + 1 < lk ? static_cast<uint32_t>(vh[(2 * m + 1) * dv + c].x) << 16 : 0u);
    }
  });
  auto out = at::empty({bh, lq, dv}, q.options());
  const int64_t blocks = (lq + kRows - 1) / kRows;
  at::parallel_for(0, bh * blocks, 1, [&](int64_t begin, int64_t end) {
    configureTiles();  // per thread: tile configuration is thread state
    std::vector<c10::BFloat16> qb(static_cast<size_t>(kRows * width));
    std::vector<float> scores(static_cast<size_t>(kRows * cols64)), acc(static_cast<size_t>(kRows * cols16));
    std::vector<c10::BFloat16> probs(static_cast<size_t>(kRows * keys32));
    std::vector<float> sums(kRows);
    for (int64_t task = begin; task < end; task++) {
      const int64_t h = task / blocks, r0 = (task % blocks) * kRows, rows = std::min(kRows, lq - r0);
      const int64_t rows16 = (rows + 15) / 16 * 16;
      const auto* qh = q[h].data_ptr<c10::BFloat16>() + r0 * d;
      std::fill(qb.begin(), qb.end(), c10::BFloat16(0.0f));
      for (int64_t i = 0; i < rows; i++) std::copy(qh + i * d, qh + (i + 1) * d, qb.begin() + i * width);
      scoreBlock(qb.data(), kp.data() + h * kSize, scores.data(), rows16, steps, cols64);
      for (int64_t i = 0; i < rows; i++) {
        c10::BFloat16* row = probs.data() + i * keys32;
        sums[i] = expRow(scores.data() + i * cols64, row, lk, static_cast<float>(scale));
        std::fill(row + lk, row + keys32, c10::BFloat16(0.0f));  // padded keys add nothing
      }
      std::fill(probs.begin() + rows * keys32, probs.begin() + rows16 * keys32, c10::BFloat16(0.0f));  // nor padded rows
      valueBlock(probs.data(), vp.data() + h * vSize, acc.data(), rows16, keys32, cols16);
      auto* po = out[h].data_ptr<c10::BFloat16>() + r0 * dv;
      for (int64_t i = 0; i < rows; i++) {
        const float inv = 1.0f / sums[i];
        for (int64_t c = 0; c < dv; c++) po[i * dv + c] = static_cast<c10::BFloat16>(acc[i * cols16 + c] * inv);
      }
    }
    releaseTiles();
  });
  return out;
}

}  // namespace moa
