// Inference attention for bfloat16 on CPUs with AVX-512 and AVX512-BF16, where libtorch 1.13 has no
// fused kernel; with AMX tiles where the CPU has them.
//
// The composed form spends most of its time in softmax: libtorch's bf16 exp runs at ~1.8 G/s on
// two cores, and SD1.5's 4096-token self-attention takes 268 M of them per guided step and layer.
// Here each task takes one head and a block of 32 query rows: scores = q·kᵀ in fp32, 32 keys at a
// time, each block turned while still in L1 into bf16 probabilities
// 2^(s·scale·log₂e − shift) (2^x from vreduceps, a cubic and vscalefps) against a per-row shift
// that trails the running maximum (below); then (unnormalised p)·v, with a column of ones in v for
// the row sums, and each output row divided by its sum. Exact up to the bf16 rounding of p and of
// the output. Both matmuls run on AMX tiles where the CPU has AMX, else on AVX512-BF16 dot
// products (vdpbf16ps) register-blocked as in the fp32 kernel. (On an AMX CPU an earlier dot-product
// kernel ran at a third of the speed of the composed form, whose matmuls use AMX there; libtorch's
// per-call oneDNN matmuls cost more than they do on blocks this small.)

#include "cpu_attention.h"

#include <ATen/Parallel.h>

#include "simd.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <vector>

namespace moa {
namespace {

constexpr int64_t kMaxHeadDim = 256;  // 8 AMX steps of 32 (SD1.5's heads are 40, 80 and 160 wide)
constexpr int64_t kRows = 32;  // query rows per task: 32 × 4096 bf16 probabilities = 256 KB, in L2

// Every buffer an AMX tile touches is laid out tile by tile, so each tile load or store is one
// contiguous KB (rows 4 KB apart all fall into one L1 cache set and evict each other):
//   keys:  [keys32/16 tiles][steps·16 pairs][16 keys] uint32, pair p of key j = k[j][2p], k[j][2p+1]
//   probs: [rows16/16][keys32/32][16 rows][32 keys] bf16

// Probabilities are 2^(s·scale·log₂e − shift) with a per-row shift (in log₂ units) at most the
// row's running maximum and at most kHeadroom below it: so p ≤ 2^kHeadroom, which bf16 and the
// fp32 sums hold easily, and the largest p ≥ 1, so a sum never underflows. The shift starts at the
// first block's maximum and moves (rescaling what the row wrote so far) only when a score passes
// it by more than kHeadroom, which after the first block is rare.
constexpr float kHeadroom = 8.0f;

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

// 2^t for finite t: 2^⌊t⌋ (scalef) times 2^f, f = t − ⌊t⌋ in [0, 1) (vreduceps), f's power from a
// degree-3 polynomial fitted to relative error (< 8e-5, far below bf16's 4e-3). Below 2^−149 it
// flushes to 0, as fp32 does. Half the instructions of expNonPositive, in the kernel's hottest loop.
MOA_AVX512_BF16 inline __m512 exp2Finite(__m512 t) {
  const __m512 f = _mm512_reduce_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(0.07802287f), f, _mm512_set1_ps(0.22606596f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.69583589f));
  p = _mm512_fmadd_ps(p, f, _mm512_set1_ps(0.99992478f));
  return _mm512_scalef_ps(p, t);
}

// Max over the real keys of one row's 32 scores, in log₂ units, rounded up to an integer (so
// moving a shift rescales bf16 probabilities exactly, by a power of two).
MOA_AVX512_BF16 inline float shiftFor(__m512 a, __m512 b, __mmask16 valid0, __mmask16 valid1, __m512 scaleLog2) {
  const __m512 lowest = _mm512_set1_ps(-INFINITY);
  const __m512 m = _mm512_max_ps(_mm512_mask_mov_ps(lowest, valid0, a), _mm512_mask_mov_ps(lowest, valid1, b));
  return std::ceil(_mm512_reduce_max_ps(_mm512_mul_ps(m, scaleLog2)));
}

// Multiplies one row's probabilities so far (blocks of 32 keys, 1 KB apart) by 2^by, by ≤ 0.
MOA_AVX512_BF16 void rescaleRow(c10::BFloat16* row, int64_t blocks, float by) {
  const __m512 exponent = _mm512_set1_ps(by);
  for (int64_t k = 0; k < blocks; k++) {
    auto* at = reinterpret_cast<__m512i*>(row + k * 512);
    const __m512i x = _mm512_load_si512(at);
    const __m512 lo = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_castsi512_si256(x)), 16));
    const __m512 hi = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm512_extracti64x4_epi64(x, 1)), 16));
    _mm512_store_si512(at, (__m512i)_mm512_cvtne2ps_pbh(_mm512_scalef_ps(hi, exponent), _mm512_scalef_ps(lo, exponent)));
  }
}

// 16 rows × 32 keys of fp32 scores (two tiles just stored, still in L1) → bf16 probabilities in
// their block of probs. shifts: the 16 rows' shifts, set here on a row's first block (block 0).
template <bool Edge>
MOA_AVX512_BF16 void expBlock(const float* tiles, c10::BFloat16* probs, int64_t block, float* shifts, __mmask16 valid0, __mmask16 valid1,
                      __m512 scaleLog2) {
  c10::BFloat16* p = probs + block * 512;
  for (int r = 0; r < 16; r++) {
    const __m512 a = _mm512_load_ps(tiles + r * 16), b = _mm512_load_ps(tiles + 256 + r * 16);
    if (block == 0) shifts[r] = shiftFor(a, b, valid0, valid1, scaleLog2);
    __m512 ta = _mm512_fmsub_ps(a, scaleLog2, _mm512_set1_ps(shifts[r]));
    __m512 tb = _mm512_fmsub_ps(b, scaleLog2, _mm512_set1_ps(shifts[r]));
    const __m512 headroom = _mm512_set1_ps(kHeadroom);
    if (_mm512_mask_cmp_ps_mask(valid0, ta, headroom, _CMP_GT_OQ) | _mm512_mask_cmp_ps_mask(valid1, tb, headroom, _CMP_GT_OQ)) {
      const float shift = shiftFor(a, b, valid0, valid1, scaleLog2);
      rescaleRow(probs + r * 32, block, shifts[r] - shift);
      shifts[r] = shift;
      ta = _mm512_fmsub_ps(a, scaleLog2, _mm512_set1_ps(shift));
      tb = _mm512_fmsub_ps(b, scaleLog2, _mm512_set1_ps(shift));
    }
    __m512 ea = exp2Finite(ta), eb = exp2Finite(tb);
    if (Edge) ea = _mm512_maskz_mov_ps(valid0, ea), eb = _mm512_maskz_mov_ps(valid1, eb);  // padded keys: p = 0
    _mm512_store_si512(reinterpret_cast<__m512i*>(p + r * 32), (__m512i)_mm512_cvtne2ps_pbh(eb, ea));
  }
}

// Probabilities (unnormalised) of 16·n query rows against keys32 keys: scores
// s[i][j] = Σ_c q[i][c]·k[j][c] in fp32 on AMX, 32 × 32 at a time, each block turned into bf16
// probabilities while in L1. q: bf16 rows padded to steps·32 values; shifts: [rows16].
// Tiles 0-3 accumulate a 32 × 32 block; 4-5 hold q, 6-7 keys.
MOA_AMX void probabilityBlockAmx(const c10::BFloat16* q, const uint32_t* keys, c10::BFloat16* probs, float* shifts, int64_t rows16,
                              int64_t steps, int64_t keys32, int64_t lk, float scaleLog2) {
  const int64_t width = steps * 32, qStride = width * 2, keyTiles = keys32 / 16, keyTile = steps * 256, blocks = keys32 / 32;
  const __m512 scale = _mm512_set1_ps(scaleLog2);
  alignas(64) float tiles[4 * 256];
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
      _tile_stored(0, tiles, 64);
      _tile_stored(1, tiles + 256, 64);
      if (two) {
        _tile_stored(2, tiles + 512, 64);
        _tile_stored(3, tiles + 768, 64);
      }
      const __mmask16 valid0 = validKeys(j, lk), valid1 = validKeys(j + 1, lk);
      const bool edge = (valid0 & valid1) != 0xffff;
      for (int64_t half = 0; half < (two ? 2 : 1); half++) {
        c10::BFloat16* rows = probs + (i / 16 + half) * blocks * 512;
        float* rowShifts = shifts + i + half * 16;
        if (edge) expBlock<true>(tiles + half * 512, rows, j / 2, rowShifts, valid0, valid1, scale);
        else expBlock<false>(tiles + half * 512, rows, j / 2, rowShifts, valid0, valid1, scale);
      }
    }
  }
}

// o[i][c] = Σ_j p[i][j]·v[j][c], fp32, for 16·n rows. vp: v's pairs as uint32 [keys32/2][cols16]
// (pair m of column c = v[2m][c], v[2m+1][c]; column dv is all ones, so o[i][dv] = Σ_j p[i][j]).
// 32 rows × 32 columns at a time (tiles 0-3 accumulate, 4-5 hold p, 6-7 v), so each tile of v
// read from L2 serves two tiles of p.
MOA_AMX void valueBlockAmx(const c10::BFloat16* p, const uint32_t* vp, float* o, int64_t rows16, int64_t keys32, int64_t cols16) {
  const int64_t vStride = cols16 * 4, oStride = cols16 * 4, pTiles = keys32 / 32;
  for (int64_t i = 0; i < rows16; i += 32) {
    const bool twoRows = i + 16 < rows16;
    const c10::BFloat16* top = p + (i / 16) * pTiles * 512;
    const c10::BFloat16* bottom = top + pTiles * 512;
    for (int64_t c = 0; c < cols16; c += 32) {
      const bool twoCols = c + 16 < cols16;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t k = 0; k < pTiles; k++) {
        const uint32_t* vr = vp + k * 16 * cols16 + c;
        _tile_loadd(4, top + k * 512, 64);
        _tile_loadd(6, vr, vStride);
        _tile_dpbf16ps(0, 4, 6);
        if (twoCols) {
          _tile_loadd(7, vr + 16, vStride);
          _tile_dpbf16ps(1, 4, 7);
        }
        if (twoRows) {
          _tile_loadd(5, bottom + k * 512, 64);
          _tile_dpbf16ps(2, 5, 6);
          if (twoCols) _tile_dpbf16ps(3, 5, 7);
        }
      }
      float* out = o + i * cols16 + c;
      _tile_stored(0, out, oStride);
      if (twoCols) _tile_stored(1, out + 16, oStride);
      if (twoRows) {
        _tile_stored(2, out + 16 * cols16, oStride);
        if (twoCols) _tile_stored(3, out + 16 * cols16 + 16, oStride);
      }
    }
  }
}

// The same two blocks on AVX512-BF16 dot products, for CPUs without AMX. vdpbf16ps adds to each
// fp32 lane the products of one bf16 pair: a pair of q's (or p's) broadcast against the lane's pair
// of k (or v), which is the layout the keys and values are already packed in.
MOA_AVX512_BF16 inline __m512bh broadcastPair(const c10::BFloat16* at) {
  uint32_t pair;
  std::memcpy(&pair, at, sizeof pair);
  return reinterpret_cast<__m512bh>(_mm512_set1_epi32(static_cast<int>(pair)));
}

// Scores of 8 rows against the 32 keys of two key tiles (pairs: the head width's pairs, padding
// past them skipped) → tiles as AMX stores them: [2 tiles][16 rows][16 keys], rows 0-7 here.
MOA_AVX512_BF16 void scoreRowsDot(const c10::BFloat16* q, int64_t width, const uint32_t* k0, const uint32_t* k1, int64_t pairs,
                                  float* tiles) {
  constexpr int kRowsHere = 8;
  __m512 acc[kRowsHere][2];
  #pragma GCC unroll 8
  for (int r = 0; r < kRowsHere; r++) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
  for (int64_t c = 0; c < pairs; c++) {
    const __m512bh a = reinterpret_cast<__m512bh>(_mm512_loadu_si512(k0 + c * 16));
    const __m512bh b = reinterpret_cast<__m512bh>(_mm512_loadu_si512(k1 + c * 16));
    #pragma GCC unroll 8
    for (int r = 0; r < kRowsHere; r++) {
      const __m512bh qr = broadcastPair(q + r * width + 2 * c);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], qr, a);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], qr, b);
    }
  }
  #pragma GCC unroll 8
  for (int r = 0; r < kRowsHere; r++) {
    _mm512_store_ps(tiles + r * 16, acc[r][0]);
    _mm512_store_ps(tiles + 256 + r * 16, acc[r][1]);
  }
}

MOA_AVX512_BF16 void probabilityBlockDot(const c10::BFloat16* q, const uint32_t* keys, c10::BFloat16* probs, float* shifts,
                                         int64_t rows16, int64_t steps, int64_t pairs, int64_t keys32, int64_t lk, float scaleLog2) {
  const int64_t width = steps * 32, keyTiles = keys32 / 16, keyTile = steps * 256, blocks = keys32 / 32;
  const __m512 scale = _mm512_set1_ps(scaleLog2);
  alignas(64) float tiles[2 * 256];
  for (int64_t i = 0; i < rows16; i += 16) {
    for (int64_t j = 0; j < keyTiles; j += 2) {
      const uint32_t* k0 = keys + j * keyTile;
      scoreRowsDot(q + i * width, width, k0, k0 + keyTile, pairs, tiles);
      scoreRowsDot(q + (i + 8) * width, width, k0, k0 + keyTile, pairs, tiles + 8 * 16);
      const __mmask16 valid0 = validKeys(j, lk), valid1 = validKeys(j + 1, lk);
      c10::BFloat16* rows = probs + (i / 16) * blocks * 512;
      if ((valid0 & valid1) != 0xffff) expBlock<true>(tiles, rows, j / 2, shifts + i, valid0, valid1, scale);
      else expBlock<false>(tiles, rows, j / 2, shifts + i, valid0, valid1, scale);
    }
  }
}

// o[i][c] for NR rows (in one 16-row group of probs) and the NC·16 columns vp and o start at: the fp32
// kernel's register blocking, over pairs of keys (only the real ones: p is 0 past them).
template <int NR, int NC>
MOA_AVX512_BF16 void valueRowsDot(const c10::BFloat16* rows, const uint32_t* vp, int64_t cols16, int64_t keyPairs, float* o) {
  __m512 acc[NR][NC];
  #pragma GCC unroll 16
  for (int r = 0; r < NR; r++)
    #pragma GCC unroll 16
    for (int c = 0; c < NC; c++) acc[r][c] = _mm512_setzero_ps();
  for (int64_t m = 0; m < keyPairs; m++) {
    const c10::BFloat16* pm = rows + (m / 16) * 512 + (m % 16) * 2;
    __m512bh vv[NC];
    #pragma GCC unroll 16
    for (int c = 0; c < NC; c++) vv[c] = reinterpret_cast<__m512bh>(_mm512_loadu_si512(vp + m * cols16 + c * 16));
    #pragma GCC unroll 16
    for (int r = 0; r < NR; r++) {
      const __m512bh pr = broadcastPair(pm + r * 32);
      #pragma GCC unroll 16
      for (int c = 0; c < NC; c++) acc[r][c] = _mm512_dpbf16_ps(acc[r][c], pr, vv[c]);
    }
  }
  #pragma GCC unroll 16
  for (int r = 0; r < NR; r++)
    #pragma GCC unroll 16
    for (int c = 0; c < NC; c++) _mm512_storeu_ps(o + r * cols16 + c * 16, acc[r][c]);
}

// Runtime column-chunk count → the template instances above.
template <int NC>
MOA_AVX512_BF16 void valueRowsDotUpTo(int nc, const c10::BFloat16* rows, const uint32_t* vp, int64_t cols16, int64_t keyPairs,
                                      float* o) {
  if constexpr (NC > 1) {
    if (nc < NC) return valueRowsDotUpTo<NC - 1>(nc, rows, vp, cols16, keyPairs, o);
  }
  valueRowsDot<4, NC>(rows, vp, cols16, keyPairs, o);
}

MOA_AVX512_BF16 void valueBlockDot(const c10::BFloat16* p, const uint32_t* vp, float* o, int64_t rows16, int64_t keys32, int64_t lk,
                                   int64_t cols16) {
  const int64_t blocks = keys32 / 32, keyPairs = (lk + 1) / 2;
  for (int64_t i = 0; i < rows16; i += 4) {
    const c10::BFloat16* rows = p + (i / 16) * blocks * 512 + (i % 16) * 32;
    for (int64_t c = 0; c < cols16; c += 64) {
      const int nc = static_cast<int>(std::min<int64_t>(4, (cols16 - c) / 16));
      valueRowsDotUpTo<4>(nc, rows, vp + c, cols16, keyPairs, o + i * cols16 + c);
    }
  }
}

void checkInputs(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  TORCH_CHECK(q.dim() == 4 && k.dim() == 4 && v.dim() == 4, "cpuAttention: q, k, v must be [batch, L, heads, d]");
  const auto dtype = q.scalar_type();
  TORCH_CHECK((dtype == at::kBFloat16 || dtype == at::kFloat) && k.scalar_type() == dtype && v.scalar_type() == dtype,
              "cpuAttention: q, k, v must all be bfloat16 or all float32");
  TORCH_CHECK(q.device().is_cpu() && k.device().is_cpu() && v.device().is_cpu(), "cpuAttention: q, k, v must be on the CPU");
  TORCH_CHECK(k.size(0) == q.size(0) && v.size(0) == q.size(0) && k.size(2) == q.size(2) && v.size(2) == q.size(2),
              "cpuAttention: q, k, v differ in batch or heads");
  TORCH_CHECK(k.size(3) == q.size(3) && v.size(1) == k.size(1), "cpuAttention: k must be [B, Lk, heads, d] and v [B, Lk, heads, dv]");
  TORCH_CHECK(k.size(1) > 0, "cpuAttention: no keys");
  TORCH_CHECK(dtype == at::kFloat || q.size(3) <= kMaxHeadDim, "cpuAttention: head width ", q.size(3), " is over ", kMaxHeadDim, " in bfloat16");
}

// Rows of one head in a [B, L, heads, d] view: row l at base + l·stride, its d values contiguous.
struct HeadRows {
  const c10::BFloat16* base;
  int64_t stride;
  const c10::BFloat16* operator[](int64_t l) const { return base + l * stride; }
};

// Head h (= b·heads + hh) of a view whose last dimension is contiguous.
HeadRows headRows(const at::Tensor& t, int64_t h) {
  const int64_t heads = t.size(2);
  return {t.data_ptr<c10::BFloat16>() + (h / heads) * t.stride(0) + (h % heads) * t.stride(2), t.stride(1)};
}

// Linux hands out AMX tile state only to processes that ask (arch_prctl ARCH_REQ_XCOMP_PERM).
bool amxAvailable() {
  static const bool ok = [] {
    if (!hasAvx512Bf16() || !__builtin_cpu_supports("amx-tile") || !__builtin_cpu_supports("amx-bf16")) return false;
    constexpr long kReqXcompPerm = 0x1023, kXfeatureTileData = 18;
    return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureTileData) == 0;
  }();
  return ok;
}

std::atomic<bool> amxAllowed{true};

}  // namespace

bool cpuAttentionAvailable() { return hasAvx512Bf16(); }

bool cpuAttentionUsesAmx() { return amxAllowed && amxAvailable(); }

void allowCpuAttentionAmx(bool on) { amxAllowed = on; }

at::Tensor cpuAttention(const at::Tensor& qIn, const at::Tensor& kIn, const at::Tensor& vIn, double scale) {
  checkInputs(qIn, kIn, vIn);
  at::NoGradGuard noGrad;
  // Views straight from the projections ([B, L, heads·d] seen as [B, L, heads, d]) are read in
  // place: only the last dimension must be contiguous.
  const auto rowMajor = [](const at::Tensor& t) { return t.stride(3) == 1 ? t : t.contiguous(); };
  const auto q = rowMajor(qIn), k = rowMajor(kIn), v = rowMajor(vIn);
  if (q.scalar_type() == at::kFloat) return cpuAttentionF32(q, k, v, scale);
  TORCH_CHECK(cpuAttentionAvailable(), "cpuAttention in bfloat16 needs a CPU with AVX-512 and AVX512-BF16 (use the composed attention)");
  const bool amx = cpuAttentionUsesAmx();
  const int64_t batch = q.size(0), heads = q.size(2), bh = batch * heads;
  const int64_t lq = q.size(1), lk = k.size(1), d = q.size(3), dv = v.size(3);
  const int64_t steps = (d + 31) / 32, width = steps * 32;  // head width in AMX steps of 32
  const int64_t keys32 = (lk + 31) / 32 * 32, cols16 = (dv + 16) / 16 * 16;  // dv columns and one of ones
  // Every head's keys and values packed once (layouts above); zeros in the padding, so padded key
  // widths add 0 to scores and padded keys add 0 to outputs.
  const int64_t kSize = keys32 * steps * 16, vSize = keys32 / 2 * cols16;
  std::vector<uint32_t> kp(static_cast<size_t>(bh * kSize), 0), vp(static_cast<size_t>(bh * vSize), 0);
  const auto pair = [](c10::BFloat16 lo, c10::BFloat16 hi) { return lo.x | static_cast<uint32_t>(hi.x) << 16; };
  at::parallel_for(0, bh, 1, [&](int64_t begin, int64_t end) {
    const c10::BFloat16 zero(0.0f), one(1.0f);
    for (int64_t h = begin; h < end; h++) {
      const HeadRows kh = headRows(k, h), vh = headRows(v, h);
      uint32_t* kd = kp.data() + h * kSize;
      uint32_t* vd = vp.data() + h * vSize;
      for (int64_t j = 0; j < lk; j++) {
        uint32_t* tile = kd + (j / 16) * steps * 256 + j % 16;
        for (int64_t c = 0; c < d; c += 2) tile[c / 2 * 16] = pair(kh[j][c], c + 1 < d ? kh[j][c + 1] : zero);
      }
      for (int64_t m = 0; 2 * m < lk; m++)
        for (int64_t c = 0; c < dv; c++) vd[m * cols16 + c] = pair(vh[2 * m][c], 2 * m + 1 < lk ? vh[2 * m + 1][c] : zero);
      for (int64_t m = 0; m < keys32 / 2; m++) vd[m * cols16 + dv] = pair(one, one);
    }
  });
  auto out = at::empty({batch, lq, heads, dv}, q.options());
  const int64_t blocks = (lq + kRows - 1) / kRows;
  at::parallel_for(0, bh * blocks, 1, [&](int64_t begin, int64_t end) {
    if (amx) configureTiles();  // per thread: tile configuration is thread state
    // libtorch's CPU allocations are 64-byte aligned, as the aligned vector loads need.
    auto qb = at::empty({kRows * width}, q.options());
    auto probs = at::empty({kRows * keys32}, q.options());
    auto acc = at::empty({kRows * cols16}, q.options().dtype(at::kFloat));
    auto* qbp = qb.data_ptr<c10::BFloat16>();
    auto* pp = probs.data_ptr<c10::BFloat16>();
    auto* ap = acc.data_ptr<float>();
    float shifts[kRows];
    const float scaleLog2 = static_cast<float>(scale * 1.4426950408889634);  // exp(x) = 2^(x·log₂e)
    for (int64_t task = begin; task < end; task++) {
      const int64_t h = task / blocks, r0 = (task % blocks) * kRows, rows = std::min(kRows, lq - r0);
      const int64_t rows16 = (rows + 15) / 16 * 16;
      const HeadRows qh = headRows(q, h);
      std::fill(qbp, qbp + rows16 * width, c10::BFloat16(0.0f));  // padded rows and widths are zero
      for (int64_t i = 0; i < rows; i++) std::copy(qh[r0 + i], qh[r0 + i] + d, qbp + i * width);
      if (amx) {
        probabilityBlockAmx(qbp, kp.data() + h * kSize, pp, shifts, rows16, steps, keys32, lk, scaleLog2);
        valueBlockAmx(pp, vp.data() + h * vSize, ap, rows16, keys32, cols16);
      } else {
        probabilityBlockDot(qbp, kp.data() + h * kSize, pp, shifts, rows16, steps, (d + 1) / 2, keys32, lk, scaleLog2);
        valueBlockDot(pp, vp.data() + h * vSize, ap, rows16, keys32, lk, cols16);
      }
      c10::BFloat16* po = out.data_ptr<c10::BFloat16>() + ((h / heads) * lq + r0) * heads * dv + (h % heads) * dv;
      for (int64_t i = 0; i < rows; i++) {
        const float inv = 1.0f / ap[i * cols16 + dv];
        for (int64_t c = 0; c < dv; c++) po[i * heads * dv + c] = static_cast<c10::BFloat16>(ap[i * cols16 + c] * inv);
      }
    }
    if (amx) releaseTiles();
  });
  return out;
}

}  // namespace moa
