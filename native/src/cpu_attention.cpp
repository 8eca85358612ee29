// Inference attention for bfloat16 on CPUs with AVX-512 and AMX, where libtorch 1.13 has no fused kernel.
//
// The composed form spends most of its time in softmax: libtorch's bf16 exp runs at ~1.8 G/s on
// two cores, and SD1.5's 4096-token self-attention takes 268 M of them per guided step and layer.
// Here each task takes one head and a block of 64 query rows and keeps it in cache: scores = q·kᵀ
// in fp32 on AMX tiles, each tile folded into its rows' maxima while still in L1, then one pass
// that writes p = exp((s − max)·scale) as bf16 (2^x from vreduceps, a cubic and vscalefps), then (unnormalised p)·v on AMX
// tiles with a column of ones for the row sums, each output row divided by its sum. Exact up to the bf16
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
constexpr int64_t kRows = 32;  // query rows per task: 32 × 4096 fp32 scores = 512 KB, in L2 (64 and 128 ran slower)

// Every buffer an AMX tile touches is laid out tile by tile, so each tile load or store is one
// contiguous KB: rows 4 KB apart (a 4096-key row of scores is 16 KB) all fall into the same L1
// cache set and evict each other.
//   keys:   [keys32/16 tiles][steps·16 pairs][16 keys] uint32, pair p of key j = k[j][2p], k[j][2p+1]
//   scores: [rows16/16][keys32/16][16 rows][16 keys] fp32
//   probs:  [rows16/16][keys32/32][16 rows][32 keys] bf16

#define MOA_AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")))

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

// Lanes of a 16-key tile that hold real keys (the rest is padding).
inline __mmask16 validKeys(int64_t tile, int64_t lk) {
  const int64_t n = std::clamp<int64_t>(lk - tile * 16, 0, 16);
  return static_cast<__mmask16>((1u << n) - 1);
}

// Folds a just-stored 16 × 16 score tile (still in L1) into its rows' lane-wise maxima.
MOA_AMX inline void foldMax(const float* tile, float* maxima, __mmask16 valid) {
  for (int r = 0; r < 16; r++) {
    const __m512 m = _mm512_load_ps(maxima + r * 16);
    _mm512_store_ps(maxima + r * 16, _mm512_mask_max_ps(m, valid, m, _mm512_load_ps(tile + r * 16)));
  }
}

// Scores of 16·n query rows against keys32 keys, fp32: s[i][j] = Σ_c q[i][c]·k[j][c], and each
// row's lane-wise maximum over its real keys (maxima: [rows16][16], filled with −∞ by the caller).
// q: bf16 rows padded to steps·32 values. Tiles 0-3 accumulate a 32 × 32 block; 4-5 hold q, 6-7 keys.
MOA_AMX void scoreBlock(const c10::BFloat16* q, const uint32_t* keys, float* s, float* maxima, int64_t rows16, int64_t steps,
                        int64_t keys32, int64_t lk) {
  const int64_t width = steps * 32, qStride = width * 2, keyTiles = keys32 / 16, keyTile = steps * 256;
  for (int64_t i = 0; i < rows16; i += 32) {
    const bool two = i + 16 < rows16;
    for (int64_t j = 0; j < keyTiles; j += 2) {
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t step = 0; step < steps; step++) {
        _tile_loadd(4, q + i * width + step * 32, qStride);
        _tile_loadd(6, keys + j * keyTile + step * 256, 64);
        _tile_loadd(7, keys + (j + 1) * keyTile + step * 256, 64);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        if (two) {
          _tile_loadd(5, q + (i + 16) * width + step * 32, qStride);
          _tile_dpbf16ps(2, 5, 6);
          _tile_dpbf16ps(3, 5, 7);
        }
      }
      float* top = s + ((i / 16) * keyTiles + j) * 256;
      _tile_stored(0, top, 64);
      _tile_stored(1, top + 256, 64);
      const __mmask16 valid0 = validKeys(j, lk), valid1 = validKeys(j + 1, lk);
      foldMax(top, maxima + i * 16, valid0);
      foldMax(top + 256, maxima + i * 16, valid1);
      if (two) {
        float* bottom = top + keyTiles * 256;
        _tile_stored(2, bottom, 64);
        _tile_stored(3, bottom + 256, 64);
        foldMax(bottom, maxima + (i + 16) * 16, valid0);
        foldMax(bottom + 256, maxima + (i + 16) * 16, valid1);
      }
    }
  }
}

// 2^t for finite t: 2^⌊t⌋ (scalef) times 2^f, f = t − ⌊t⌋ in [0, 1) (vreduceps), f's power from a
// degree-3 polynomial fitted to relative error (< 8e-5, far below bf16's 4e-3). Below 2^−149 it
// flushes to 0, as fp32 does. Half the instructions of expNonPositive, in the kernel's hottest loop.
MOA_AMX inline __m512 exp2Finite(__m512 t) {
  const __m512 f = _mm512_reduce_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(0.07802287f), f, _mm512_set1_ps(0.22606596f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.69583589f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.99992478f));
  return _mm512_scalef_ps(p, t);
}

// One 16-row tile of scores → p = exp((s − max)·scale) = 2^(s·scale·log₂e − shift) as bf16
// (rounded to nearest even by AVX512-BF16), 0 for padded keys. shifts[r] = max·scale·log₂e. Row
// sums come from p·v (a column of ones in v), so they add exactly the rounded p.
MOA_AMX void expTile(const float* s, c10::BFloat16* p, const float* shifts, int64_t keys32, int64_t lk, float scaleLog2) {
  const __m512 vscale = _mm512_set1_ps(scaleLog2);
  const int64_t tiles = keys32 / 16, full = lk / 16;
  for (int64_t t = 0; t < tiles; t++) {
    const float* st = s + t * 256;
    c10::BFloat16* pt = p + (t / 2) * 512 + (t % 2) * 16;
    if (t < full) {
      for (int r = 0; r < 16; r++) {
        const __m512 e = exp2Finite(_mm512_fmsub_ps(_mm512_load_ps(st + r * 16), vscale, _mm512_set1_ps(shifts[r])));
        _mm256_store_si256(reinterpret_cast<__m256i*>(pt + r * 32), (__m256i)_mm512_cvtneps_pbh(e));
      }
    } else {
      const __mmask16 valid = validKeys(t, lk);
      for (int r = 0; r < 16; r++) {
        const __m512 e = _mm512_maskz_mov_ps(valid, exp2Finite(_mm512_fmsub_ps(_mm512_load_ps(st + r * 16), vscale, _mm512_set1_ps(shifts[r]))));
        _mm256_store_si256(reinterpret_cast<__m256i*>(pt + r * 32), (__m256i)_mm512_cvtneps_pbh(e));
      }
    }
  }
}

// o[i][c] = Σ_j p[i][j]·v[j][c], fp32, for 16·n rows. vp: v's pairs as uint32 [keys32/2][cols16]
// (pair m of column c = v[2m][c], v[2m+1][c]; column dv is all ones, so o[i][dv] = Σ_j p[i][j]). Per 16 rows and up to 3 column tiles: tiles 0-2
// accumulate over all keys, 4 holds p, 5-7 v.
MOA_AMX void valueBlock(const c10::BFloat16* p, const uint32_t* vp, float* o, int64_t rows16, int64_t keys32, int64_t cols16) {
  const int64_t vStride = cols16 * 4, oStride = cols16 * 4, pTiles = keys32 / 32;
  for (int64_t i = 0; i < rows16; i += 16) {
    for (int64_t c = 0; c < cols16; c += 48) {
      const int64_t n = std::min<int64_t>(3, (cols16 - c) / 16);
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      for (int64_t k = 0; k < pTiles; k++) {
        const uint32_t* vr = vp + k * 16 * cols16 + c;
        _tile_loadd(4, p + ((i / 16) * pTiles + k) * 512, 64);
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
  const int64_t keys32 = (lk + 31) / 32 * 32, cols16 = (dv + 16) / 16 * 16;  // dv columns and one of ones
  // Every head's keys and values packed once (layouts above); zeros in the padding, so padded key
  // widths add 0 to scores and padded keys add 0 to outputs.
  const int64_t kSize = keys32 * steps * 16, vSize = keys32 / 2 * cols16;
  std::vector<uint32_t> kp(static_cast<size_t>(bh * kSize), 0), vp(static_cast<size_t>(bh * vSize), 0);
  const auto* kAll = k.data_ptr<c10::BFloat16>();
  const auto* vAll = v.data_ptr<c10::BFloat16>();
  at::parallel_for(0, bh, 1, [&](int64_t begin, int64_t end) {
    for (int64_t h = begin; h < end; h++) {
      const c10::BFloat16* kh = kAll + h * lk * d;
      const c10::BFloat16* vh = vAll + h * lk * dv;
      uint32_t* kd = kp.data() + h * kSize;
      uint32_t* vd = vp.data() + h * vSize;
      for (int64_t j = 0; j < lk; j++) {
        uint32_t* tile = kd + (j / 16) * steps * 256 + j % 16;
        for (int64_t c = 0; c < d; c += 2)
          tile[c / 2 * 16] = kh[j * d + c].x | (c + 1 < d ? static_cast<uint32_t>(kh[j * d + c + 1].x) << 16 : 0u);
      }
      for (int64_t m = 0; 2 * m < lk; m++)
        for (int64_t c = 0; c < dv; c++)
          vd[m * cols16 + c] = vh[2 * m * dv + c].x | (2 * m + 1 < lk ? static_cast<uint32_t>(vh[(2 * m + 1) * dv + c].x) << 16 : 0u);
      const uint32_t one = c10::BFloat16(1.0f).x;
      for (int64_t m = 0; m < keys32 / 2; m++) vd[m * cols16 + dv] = one | one << 16;
    }
  });
  auto out = at::empty({bh, lq, dv}, q.options());
  const int64_t blocks = (lq + kRows - 1) / kRows;
  at::parallel_for(0, bh * blocks, 1, [&](int64_t begin, int64_t end) {
    configureTiles();  // per thread: tile configuration is thread state
    // libtorch's CPU allocations are 64-byte aligned, as the aligned vector loads need.
    auto qb = at::empty({kRows * width}, q.options());
    auto scores = at::empty({kRows * keys32}, q.options().dtype(at::kFloat));
    auto probs = at::empty({kRows * keys32}, q.options());
    auto acc = at::empty({kRows * cols16}, q.options().dtype(at::kFloat));
    auto maxima = at::empty({kRows * 16}, q.options().dtype(at::kFloat));
    auto* qbp = qb.data_ptr<c10::BFloat16>();
    auto* sp = scores.data_ptr<float>();
    auto* pp = probs.data_ptr<c10::BFloat16>();
    auto* ap = acc.data_ptr<float>();
    auto* mp = maxima.data_ptr<float>();
    float shifts[16];
    const float scaleLog2 = static_cast<float>(scale * 1.4426950408889634);  // exp(x) = 2^(x·log₂e)
    for (int64_t task = begin; task < end; task++) {
      const int64_t h = task / blocks, r0 = (task % blocks) * kRows, rows = std::min(kRows, lq - r0);
      const int64_t rows16 = (rows + 15) / 16 * 16;
      const c10::BFloat16* qh = q.data_ptr<c10::BFloat16>() + (h * lq + r0) * d;
      std::fill(qbp, qbp + rows16 * width, c10::BFloat16(0.0f));  // padded rows and widths are zero
      for (int64_t i = 0; i < rows; i++) std::copy(qh + i * d, qh + (i + 1) * d, qbp + i * width);
      std::fill(mp, mp + rows16 * 16, -INFINITY);
      scoreBlock(qbp, kp.data() + h * kSize, sp, mp, rows16, steps, keys32, lk);
      for (int64_t i = 0; i < rows16; i += 16) {
        for (int r = 0; r < 16; r++) shifts[r] = *std::max_element(mp + (i + r) * 16, mp + (i + r + 1) * 16) * scaleLog2;
        expTile(sp + i * keys32, pp + i * keys32, shifts, keys32, lk, scaleLog2);
      }
      valueBlock(pp, vp.data() + h * vSize, ap, rows16, keys32, cols16);
      auto* po = out.data_ptr<c10::BFloat16>() + (h * lq + r0) * dv;
      for (int64_t i = 0; i < rows; i++) {
        const float inv = 1.0f / ap[i * cols16 + dv];
        for (int64_t c = 0; c < dv; c++) po[i * dv + c] = static_cast<c10::BFloat16>(ap[i * cols16 + c] * inv);
      }
    }
    releaseTiles();
  });
  return out;
}

}  // namespace moa
