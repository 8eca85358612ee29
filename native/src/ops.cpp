// The table of bound tensor operations. Each line binds one libtorch call; adding an op is one
// line here and one method in src/tensor/. Argument and result conversion is in bridge.h.
#include <torch/csrc/api/include/torch/version.h>

#include <ATen/detail/CUDAHooksInterface.h>

#include "bridge.h"
#include "cpu_attention.h"
#include "cpu_geglu.h"

namespace moa {
namespace {

using T = const at::Tensor&;
using Opt = const c10::optional<at::Tensor>&;
using Ints = const std::vector<int64_t>&;
using Tensors = const std::vector<at::Tensor>&;
using Str = const std::string&;
using OptInt = c10::optional<int64_t>;
using OptDouble = c10::optional<double>;
using OptType = c10::optional<at::ScalarType>;
using OptTensors = const std::vector<c10::optional<at::Tensor>>&;

// Advanced indexing takes one optional index tensor per leading dimension (null keeps it whole).
c10::List<c10::optional<at::Tensor>> indexList(OptTensors indices) {
  c10::List<c10::optional<at::Tensor>> list;
  for (const auto& i : indices) list.push_back(i);
  return list;
}

c10::Device deviceOf(Str name) {
  c10::Device device(name);
  TORCH_CHECK(!device.is_cuda() || at::detail::getCUDAHooks().hasCUDA(),
              "CUDA is not available: the libtorch moa was built against has no CUDA, or no GPU is visible. "
              "Build against a CUDA-enabled PyTorch (see the README) or use 'cpu'.");
  return device;
}

at::TensorOptions options(at::ScalarType dtype, Str device) { return at::TensorOptions().dtype(dtype).device(deviceOf(device)); }

at::MemoryFormat memoryFormat(int64_t code) {
  switch (code) {
    case 0: return at::MemoryFormat::Contiguous;
    case 1: return at::MemoryFormat::ChannelsLast;
    case 2: return at::MemoryFormat::Preserve;
    default: TORCH_CHECK(false, "unknown memory format code ", code);
  }
}

// Exact attention, used where libtorch has no fused kernel (before 2.0), and the reference the
// fused kernel is tested against. A boolean mask keeps the positions that are true.
at::Tensor attentionMath(T q, T k, T v, Opt mask, double dropout, bool causal, OptDouble scale) {
  double s = scale.value_or(1.0 / std::sqrt(static_cast<double>(q.size(-1))));
  auto scores = at::matmul(q, k.transpose(-2, -1)) * s;
  if (causal) {
    auto keep = at::ones({q.size(-2), k.size(-2)}, q.options().dtype(at::kBool)).tril();
    scores = scores.masked_fill(keep.logical_not(), -std::numeric_limits<double>::infinity());
  }
  if (mask) {
    scores = mask->scalar_type() == at::kBool
                 ? scores.masked_fill(mask->logical_not(), -std::numeric_limits<double>::infinity())
                 : scores + *mask;
  }
  auto weights = at::softmax(scores, -1);
  if (dropout > 0) weights = at::dropout(weights, dropout, true);
  return at::matmul(weights, v);
}

at::Tensor attention(T q, T k, T v, Opt mask, double dropout, bool causal, OptDouble scale) {
#if TORCH_VERSION_MAJOR >= 2 && (TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 1)
  return at::scaled_dot_product_attention(q, k, v, mask, dropout, causal, scale);
#else
  return attentionMath(q, k, v, mask, dropout, causal, scale);
#endif
}

bool fusedAttention() { return TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1); }

// Scales the gradients of `params` so their joint norm is at most maxNorm; returns the norm before.
double clipGradNorm(Tensors params, double maxNorm, double normType) {
  std::vector<at::Tensor> norms;
  for (const auto& p : params) {
    if (p.grad().defined()) norms.push_back(at::linalg_vector_norm(p.grad().detach(), normType).to(at::kDouble));
  }
  if (norms.empty()) return 0.0;
  double total = std::isinf(normType) ? at::stack(norms).max().item<double>()
                                      : at::linalg_vector_norm(at::stack(norms), normType).item<double>();
  TORCH_CHECK(std::isfinite(total), "the gradient norm is not finite (", total, "): the loss or a gradient has NaN/Inf");
  double coef = maxNorm / (total + 1e-6);
  if (coef < 1.0) {
    for (const auto& p : params) {
      if (p.grad().defined()) p.grad().detach().mul_(coef);
    }
  }
  return total;
}

std::vector<int64_t> shapeOf(T t) { return t.sizes().vec(); }
std::vector<int64_t> stridesOf(T t) { return t.strides().vec(); }

#define OP(name, ...) \
  OpEntry { #name, &bound<(+__VA_ARGS__)> }

const std::vector<OpEntry> kOps = {
    // ---- facts about a tensor ----
    OP(shape, shapeOf),
    OP(strides, stridesOf),
    OP(dtype, [](T t) { return static_cast<int64_t>(t.scalar_type()); }),
    OP(device, [](T t) { return t.device().str(); }),
    OP(isContiguous, [](T t, int64_t fmt) { return t.is_contiguous(memoryFormat(fmt)); }),
    OP(requiresGrad, [](T t) { return t.requires_grad(); }),
    OP(isLeaf, [](T t) { return t.is_leaf(); }),
    OP(item, [](T t) { return t.item<double>(); }),

    // ---- creation ----
    OP(empty, [](Ints s, at::ScalarType d, Str dev) { return at::empty(s, options(d, dev)); }),
    OP(zeros, [](Ints s, at::ScalarType d, Str dev) { return at::zeros(s, options(d, dev)); }),
    OP(ones, [](Ints s, at::ScalarType d, Str dev) { return at::ones(s, options(d, dev)); }),
    OP(full, [](Ints s, at::Scalar v, at::ScalarType d, Str dev) { return at::full(s, v, options(d, dev)); }),
    OP(arange, [](at::Scalar a, at::Scalar b, at::Scalar step, at::ScalarType d, Str dev) {
      return at::arange(a, b, step, options(d, dev));
    }),
    OP(linspace, [](at::Scalar a, at::Scalar b, int64_t n, at::ScalarType d, Str dev) {
      return at::linspace(a, b, n, options(d, dev));
    }),
    OP(eye, [](int64_t n, at::ScalarType d, Str dev) { return at::eye(n, options(d, dev)); }),
    OP(rand, [](Ints s, at::Generator g, at::ScalarType d) { return at::rand(s, g, at::TensorOptions(d)); }),
    OP(randn, [](Ints s, at::Generator g, at::ScalarType d) { return at::randn(s, g, at::TensorOptions(d)); }),
    OP(randint, [](int64_t lo, int64_t hi, Ints s, at::Generator g, at::ScalarType d) {
      return at::randint(lo, hi, s, g, at::TensorOptions(d));
    }),
    OP(randperm, [](int64_t n, at::Generator g) { return at::randperm(n, g, at::TensorOptions(at::kLong)); }),
    OP(normal_, [](T t, double mean, double std, at::Generator g) { t.normal_(mean, std, g); }),
    OP(uniform_, [](T t, double lo, double hi, at::Generator g) { t.uniform_(lo, hi, g); }),

    // ---- conversion and copies ----
    OP(to, [](T t, at::ScalarType d) { return t.to(d); }),
    OP(toDevice, [](T t, Str dev, bool nonBlocking) { return t.to(deviceOf(dev), nonBlocking); }),
    OP(contiguous, [](T t, int64_t fmt) { return t.contiguous(memoryFormat(fmt)); }),
    OP(clone, [](T t) { return t.clone(); }),
    OP(alias, [](T t) { return at::alias(t); }),
    OP(detach, [](T t) { return t.detach(); }),
    OP(copy_, [](T dst, T src) { dst.copy_(src); }),
    OP(fill_, [](T t, at::Scalar v) { t.fill_(v); }),
    OP(zero_, [](T t) { t.zero_(); }),

    // ---- element-wise math (broadcasting) ----
    OP(add, [](T a, T b, at::Scalar alpha) { return at::add(a, b, alpha); }),
    OP(addScalar, [](T a, at::Scalar b) { return at::add(a, b); }),
    OP(sub, [](T a, T b, at::Scalar alpha) { return at::sub(a, b, alpha); }),
    OP(rsubScalar, [](T a, at::Scalar b) { return at::rsub(a, b); }),
    OP(mul, [](T a, T b) { return at::mul(a, b); }),
    OP(mulScalar, [](T a, at::Scalar b) { return at::mul(a, b); }),
    OP(div, [](T a, T b) { return at::div(a, b); }),
    OP(divScalar, [](T a, at::Scalar b) { return at::div(a, b); }),
    OP(pow, [](T a, T b) { return at::pow(a, b); }),
    OP(powScalar, [](T a, at::Scalar b) { return at::pow(a, b); }),
    OP(remainder, [](T a, at::Scalar b) { return at::remainder(a, b); }),
    OP(maximum, [](T a, T b) { return at::maximum(a, b); }),
    OP(minimum, [](T a, T b) { return at::minimum(a, b); }),
    OP(lerp, [](T a, T b, at::Scalar w) { return at::lerp(a, b, w); }),
    OP(lerpTensor, [](T a, T b, T w) { return at::lerp(a, b, w); }),
    OP(addcmul, [](T t, T a, T b, at::Scalar v) { return at::addcmul(t, a, b, v); }),
    OP(neg, [](T a) { return at::neg(a); }),
    OP(abs, [](T a) { return at::abs(a); }),
    OP(exp, [](T a) { return at::exp(a); }),
    OP(log, [](T a) { return at::log(a); }),
    OP(log1p, [](T a) { return at::log1p(a); }),
    OP(sqrt, [](T a) { return at::sqrt(a); }),
    OP(rsqrt, [](T a) { return at::rsqrt(a); }),
    OP(square, [](T a) { return at::square(a); }),
    OP(reciprocal, [](T a) { return at::reciprocal(a); }),
    OP(sin, [](T a) { return at::sin(a); }),
    OP(cos, [](T a) { return at::cos(a); }),
    OP(tanh, [](T a) { return at::tanh(a); }),
    OP(erf, [](T a) { return at::erf(a); }),
    OP(sign, [](T a) { return at::sign(a); }),
    OP(floor, [](T a) { return at::floor(a); }),
    OP(ceil, [](T a) { return at::ceil(a); }),
    OP(round, [](T a) { return at::round(a); }),
    OP(sigmoid, [](T a) { return at::sigmoid(a); }),
    OP(relu, [](T a) { return at::relu(a); }),
    OP(silu, [](T a) { return at::silu(a); }),
    OP(gelu, [](T a, Str approximate) { return at::gelu(a, approximate); }),
    OP(isnan, [](T a) { return at::isnan(a); }),
    OP(isfinite, [](T a) { return at::isfinite(a); }),
    OP(clamp, [](T a, c10::optional<at::Scalar> lo, c10::optional<at::Scalar> hi) { return at::clamp(a, lo, hi); }),
    OP(where, [](T c, T a, T b) { return at::where(c, a, b); }),

    // ---- comparisons and logic ----
    OP(eq, [](T a, T b) { return at::eq(a, b); }),
    OP(ne, [](T a, T b) { return at::ne(a, b); }),
    OP(lt, [](T a, T b) { return at::lt(a, b); }),
    OP(le, [](T a, T b) { return at::le(a, b); }),
    OP(gt, [](T a, T b) { return at::gt(a, b); }),
    OP(ge, [](T a, T b) { return at::ge(a, b); }),
    OP(eqScalar, [](T a, at::Scalar b) { return at::eq(a, b); }),
    OP(neScalar, [](T a, at::Scalar b) { return at::ne(a, b); }),
    OP(ltScalar, [](T a, at::Scalar b) { return at::lt(a, b); }),
    OP(leScalar, [](T a, at::Scalar b) { return at::le(a, b); }),
    OP(gtScalar, [](T a, at::Scalar b) { return at::gt(a, b); }),
    OP(geScalar, [](T a, at::Scalar b) { return at::ge(a, b); }),
    OP(logicalAnd, [](T a, T b) { return at::logical_and(a, b); }),
    OP(logicalOr, [](T a, T b) { return at::logical_or(a, b); }),
    OP(logicalNot, [](T a) { return at::logical_not(a); }),
    OP(allclose, [](T a, T b, double rtol, double atol) { return at::allclose(a, b, rtol, atol); }),
    OP(equal, [](T a, T b) { return at::equal(a, b); }),

    // ---- reductions ----
    OP(sum, [](T a, Ints dims, bool keep, OptType d) { return at::sum(a, dims, keep, d); }),
    OP(sumAll, [](T a) { return at::sum(a); }),
    OP(mean, [](T a, Ints dims, bool keep) { return at::mean(a, dims, keep); }),
    OP(meanAll, [](T a) { return at::mean(a); }),
    OP(maxDim, [](T a, int64_t dim, bool keep) { return at::max(a, dim, keep); }),
    OP(maxAll, [](T a) { return at::max(a); }),
    OP(minDim, [](T a, int64_t dim, bool keep) { return at::min(a, dim, keep); }),
    OP(minAll, [](T a) { return at::min(a); }),
    OP(var, [](T a, Ints dims, bool unbiased, bool keep) { return at::var(a, dims, unbiased, keep); }),
    OP(std, [](T a, Ints dims, bool unbiased, bool keep) { return at::std(a, dims, unbiased, keep); }),
    OP(argmax, [](T a, OptInt dim, bool keep) { return at::argmax(a, dim, keep); }),
    OP(argmin, [](T a, OptInt dim, bool keep) { return at::argmin(a, dim, keep); }),
    OP(logsumexp, [](T a, Ints dims, bool keep) { return at::logsumexp(a, dims, keep); }),
    OP(norm, [](T a, double p, Ints dims, bool keep) { return at::linalg_vector_norm(a, p, dims, keep); }),
    OP(cumsum, [](T a, int64_t dim) { return at::cumsum(a, dim); }),
    OP(all, [](T a) { return at::all(a); }),
    OP(any, [](T a) { return at::any(a); }),

    // ---- linear algebra and networks ----
    OP(matmul, [](T a, T b) { return at::matmul(a, b); }),
    OP(bmm, [](T a, T b) { return at::bmm(a, b); }),
    OP(baddbmm, [](T c, T a, T b, at::Scalar beta, at::Scalar alpha) { return at::baddbmm(c, a, b, beta, alpha); }),
    OP(linear, [](T x, T w, Opt b) { return at::linear(x, w, b); }),
    OP(conv2d, [](T x, T w, Opt b, Ints stride, Ints padding, Ints dilation, int64_t groups) {
      return at::conv2d(x, w, b, stride, padding, dilation, groups);
    }),
    OP(convTranspose2d, [](T x, T w, Opt b, Ints stride, Ints padding, Ints outPadding, int64_t groups, Ints dilation) {
      return at::conv_transpose2d(x, w, b, stride, padding, outPadding, groups, dilation);
    }),
    OP(groupNorm, [](T x, int64_t groups, Opt w, Opt b, double eps) { return at::group_norm(x, groups, w, b, eps); }),
    OP(layerNorm, [](T x, Ints shape, Opt w, Opt b, double eps) { return at::layer_norm(x, shape, w, b, eps); }),
    OP(embedding, [](T w, T idx) { return at::embedding(w, idx); }),
    OP(softmax, [](T a, int64_t dim, OptType d) { return at::softmax(a, dim, d); }),
    OP(logSoftmax, [](T a, int64_t dim, OptType d) { return at::log_softmax(a, dim, d); }),
    OP(dropout, [](T a, double p, bool train) { return at::dropout(a, p, train); }),
    OP(attention, attention),
    OP(attentionMath, attentionMath),
    OP(fusedAttention, fusedAttention),
    OP(cpuAttention, cpuAttention),
    OP(cpuAttentionAvailable, cpuAttentionAvailable),
    OP(cpuAttentionUsesAmx, cpuAttentionUsesAmx),
    OP(allowCpuAttentionAmx, allowCpuAttentionAmx),
    OP(cpuAttentionF32Available, cpuAttentionF32Available),
    OP(cpuGeglu, cpuGeglu),
    OP(cpuGegluAvailable, cpuGegluAvailable),
    OP(mseLoss, [](T a, T b) { return at::mse_loss(a, b); }),
    OP(crossEntropy, [](T logits, T target) { return at::cross_entropy_loss(logits, target); }),
    // Scales, when given, map output pixels back by 1/scale (F.interpolate's scale_factor), not in/out.
    OP(upsampleNearest2d, [](T x, Ints size, OptDouble sh, OptDouble sw) { return at::upsample_nearest2d(x, size, sh, sw); }),
    OP(upsampleBilinear2d, [](T x, Ints size, bool alignCorners, bool antialias, OptDouble sh, OptDouble sw) {
      return antialias ? at::_upsample_bilinear2d_aa(x, size, alignCorners, sh, sw) : at::upsample_bilinear2d(x, size, alignCorners, sh, sw);
    }),
    OP(upsampleBicubic2d, [](T x, Ints size, bool alignCorners, bool antialias, OptDouble sh, OptDouble sw) {
      return antialias ? at::_upsample_bicubic2d_aa(x, size, alignCorners, sh, sw) : at::upsample_bicubic2d(x, size, alignCorners, sh, sw);
    }),
    OP(pad, [](T x, Ints pad, Str mode, double value) {
      return mode == "constant" ? at::constant_pad_nd(x, pad, value) : at::pad(x, pad, mode);
    }),
    OP(clipGradNorm, clipGradNorm),

    // ---- shapes and views ----
    OP(reshape, [](T a, Ints s) { return at::reshape(a, s); }),
    OP(view, [](T a, Ints s) { return a.view(s); }),
    OP(permute, [](T a, Ints dims) { return a.permute(dims); }),
    OP(transpose, [](T a, int64_t d0, int64_t d1) { return a.transpose(d0, d1); }),
    OP(flatten, [](T a, int64_t start, int64_t end) { return a.flatten(start, end); }),
    OP(squeeze, [](T a, int64_t dim) { return a.squeeze(dim); }),
    OP(squeezeAll, [](T a) { return a.squeeze(); }),
    OP(unsqueeze, [](T a, int64_t dim) { return a.unsqueeze(dim); }),
    OP(expand, [](T a, Ints s) { return a.expand(s); }),
    OP(repeat, [](T a, Ints r) { return a.repeat(r); }),
    OP(flip, [](T a, Ints dims) { return a.flip(dims); }),
    OP(roll, [](T a, Ints shifts, Ints dims) { return a.roll(shifts, dims); }),
    OP(tril, [](T a, int64_t k) { return a.tril(k); }),
    OP(triu, [](T a, int64_t k) { return a.triu(k); }),
    OP(cat, [](Tensors ts, int64_t dim) { return at::cat(ts, dim); }),
    OP(stack, [](Tensors ts, int64_t dim) { return at::stack(ts, dim); }),
    OP(split, [](T a, int64_t size, int64_t dim) { return a.split(size, dim); }),
    OP(splitWithSizes, [](T a, Ints sizes, int64_t dim) { return a.split_with_sizes(sizes, dim); }),
    OP(chunk, [](T a, int64_t chunks, int64_t dim) { return a.chunk(chunks, dim); }),

    // ---- slicing and indexing ----
    OP(slice, [](T a, int64_t dim, OptInt start, OptInt end, int64_t step) { return a.slice(dim, start, end, step); }),
    OP(select, [](T a, int64_t dim, int64_t i) { return a.select(dim, i); }),
    OP(narrow, [](T a, int64_t dim, int64_t start, int64_t length) { return a.narrow(dim, start, length); }),
    OP(indexSelect, [](T a, int64_t dim, T idx) { return at::index_select(a, dim, idx); }),
    OP(gather, [](T a, int64_t dim, T idx) { return at::gather(a, dim, idx); }),
    OP(scatter, [](T a, int64_t dim, T idx, T src) { return at::scatter(a, dim, idx, src); }),
    OP(index, [](T a, OptTensors idx) { return at::index(a, indexList(idx)); }),
    OP(indexPut_, [](T a, OptTensors idx, T v, bool acc) { a.index_put_(indexList(idx), v, acc); }),
    OP(maskedFill, [](T a, T mask, at::Scalar v) { return at::masked_fill(a, mask, v); }),
    OP(maskedFill_, [](T a, T mask, at::Scalar v) { a.masked_fill_(mask, v); }),
    OP(maskedScatter_, [](T a, T mask, T src) { a.masked_scatter_(mask, src); }),
    OP(maskedSelect, [](T a, T mask) { return at::masked_select(a, mask); }),
    OP(nonzero, [](T a) { return at::nonzero(a); }),
    OP(oneHot, [](T idx, int64_t n) { return at::one_hot(idx, n); }),

    // ---- in place (optimizers, EMA, buffers); they return nothing: the caller holds the tensor ----
    OP(add_, [](T a, T b, at::Scalar alpha) { a.add_(b, alpha); }),
    OP(mul_, [](T a, T b) { a.mul_(b); }),
    OP(mulScalar_, [](T a, at::Scalar b) { a.mul_(b); }),
    OP(lerp_, [](T a, T b, at::Scalar w) { a.lerp_(b, w); }),

    // ---- autograd ----
    OP(setRequiresGrad, [](T t, bool on) { t.requires_grad_(on); }),
    OP(backward, [](T t, Opt grad, bool retain) { t.backward(grad.value_or(at::Tensor()), retain); }),
    OP(grad, [](T t) { return t.grad(); }),  // null when none
    OP(clearGrad, [](T t) { t.mutable_grad() = at::Tensor(); }),
    OP(setGradEnabled, [](bool on) { c10::GradMode::set_enabled(on); }),
    OP(isGradEnabled, []() { return c10::GradMode::is_enabled(); }),
};

}  // namespace

void registerTensorOps(Napi::Env env, Napi::Object exports) { registerOps(env, exports, kOps); }

}  // namespace moa
