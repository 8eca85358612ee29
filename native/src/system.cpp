// Everything bound that is not a tensor op: buffers and files, generators, threads, autocast,
// facts about the libtorch in use, native timing loops for benchmarks, and the module's entry.
#include <ATen/Parallel.h>
#include <ATen/autocast_mode.h>
#include <ATen/detail/CUDAHooksInterface.h>
#include <torch/csrc/api/include/torch/version.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <mutex>

#include "bridge.h"

namespace moa {
void registerTensorOps(Napi::Env env, Napi::Object exports);
void registerOptimizerOps(Napi::Env env, Napi::Object exports);

namespace {

using T = const at::Tensor&;
using Ints = const std::vector<int64_t>&;
using Str = const std::string&;

int64_t byteSize(Ints shape, at::ScalarType dtype) {
  int64_t n = 1;
  for (auto d : shape) {
    TORCH_CHECK(d >= 0, "shape has a negative size ", d);
    TORCH_CHECK(d == 0 || n <= INT64_MAX / d, "shape is too large");
    n *= d;
  }
  return n * static_cast<int64_t>(c10::elementSize(dtype));
}

// fromBuffer(view: ArrayBufferView | ArrayBuffer, dtype, shape): a new CPU tensor holding a copy.
Napi::Value fromBuffer(const Napi::CallbackInfo& info) {
  auto dtype = From<at::ScalarType>::get(info[1]);
  auto shape = From<std::vector<int64_t>>::get(info[2]);
  const uint8_t* data = nullptr;
  size_t length = 0;
  if (info[0].IsTypedArray()) {
    auto view = info[0].As<Napi::TypedArray>();
    data = static_cast<const uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
    length = view.ByteLength();
  } else if (info[0].IsDataView()) {
    auto view = info[0].As<Napi::DataView>();
    data = static_cast<const uint8_t*>(view.ArrayBuffer().Data()) + view.ByteOffset();
    length = view.ByteLength();
  } else if (info[0].IsArrayBuffer()) {
    auto buffer = info[0].As<Napi::ArrayBuffer>();
    data = static_cast<const uint8_t*>(buffer.Data());
    length = buffer.ByteLength();
  } else {
    throw ArgError{"a typed array, DataView or ArrayBuffer"};
  }
  int64_t need = byteSize(shape, dtype);
  TORCH_CHECK(static_cast<int64_t>(length) == need, "the buffer holds ", length, " bytes but shape ", c10::IntArrayRef(shape),
              " of ", c10::toString(dtype), " needs ", need);
  auto t = at::empty(shape, at::TensorOptions(dtype));
  if (need) std::memcpy(t.data_ptr(), data, need);
  return wrapTensor(info.Env(), t);
}

// toBuffer(tensor): an ArrayBuffer with a copy of the tensor's elements in row-major order.
Napi::Value toBuffer(const Napi::CallbackInfo& info) {
  auto t = unwrapTensor(info[0], "a tensor").detach().to(at::kCPU).contiguous();
  size_t n = t.numel() * t.element_size();
  auto buffer = Napi::ArrayBuffer::New(info.Env(), n);
  if (n) std::memcpy(buffer.Data(), t.data_ptr(), n);
  return buffer;
}

struct Fd {
  int fd;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// readFile(path, offset, dtype, shape): reads a tensor's bytes from a file straight into its memory,
// so large weight files never pass through a JavaScript buffer.
at::Tensor readFile(Str path, int64_t offset, at::ScalarType dtype, Ints shape) {
  int64_t need = byteSize(shape, dtype);
  TORCH_CHECK(offset >= 0, "negative file offset");
  Fd file{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  TORCH_CHECK(file.fd >= 0, "cannot open ", path, ": ", std::strerror(errno));
  auto t = at::empty(shape, at::TensorOptions(dtype));
  auto* out = static_cast<uint8_t*>(t.data_ptr());
  int64_t done = 0;
  while (done < need) {
    ssize_t got = ::pread(file.fd, out + done, static_cast<size_t>(std::min<int64_t>(need - done, 1 << 30)), offset + done);
    if (got < 0 && errno == EINTR) continue;
    TORCH_CHECK(got >= 0, "cannot read ", path, ": ", std::strerror(errno));
    TORCH_CHECK(got > 0, path, " ends before the tensor's ", need, " bytes at offset ", offset, " (read ", done, ")");
    done += got;
  }
  return t;
}

// writeFd(fd, tensor, offset): writes a tensor's bytes (row-major) at an offset of an open file.
int64_t writeFd(int64_t fd, T tensor, int64_t offset) {
  auto t = tensor.detach().to(at::kCPU).contiguous();
  const auto* data = static_cast<const uint8_t*>(t.data_ptr());
  int64_t need = t.numel() * t.element_size(), done = 0;
  while (done < need) {
    ssize_t put = ::pwrite(static_cast<int>(fd), data + done, static_cast<size_t>(std::min<int64_t>(need - done, 1 << 30)), offset + done);
    if (put < 0 && errno == EINTR) continue;
    TORCH_CHECK(put > 0, "cannot write: ", std::strerror(errno));
    done += put;
  }
  return need;
}

Napi::Value dispose(const Napi::CallbackInfo& info) {
  for (size_t i = 0; i < info.Length(); i++) releaseTensor(info.Env(), unwrapTensorBox(info[i], "a tensor"));
  return info.Env().Undefined();
}

Napi::Value isDisposed(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), !unwrapTensorBox(info[0], "a tensor")->tensor.defined());
}

Napi::Value liveTensors(const Napi::CallbackInfo& info) {
  auto out = Napi::Object::New(info.Env());
  out.Set("count", Napi::Number::New(info.Env(), static_cast<double>(census().live.load())));
  out.Set("bytes", Napi::Number::New(info.Env(), static_cast<double>(census().bytes.load())));
  return out;
}

// ---- generators ----

Napi::Value newGenerator(const Napi::CallbackInfo& info) {
  auto seed = From<int64_t>::get(info[0]);
  auto* box = new GeneratorBox{at::detail::createCPUGenerator(static_cast<uint64_t>(seed))};
  auto external = Napi::External<GeneratorBox>::New(info.Env(), box, [](Napi::Env, GeneratorBox* b) { delete b; });
  napi_type_tag_object(info.Env(), external, &kGeneratorTag);
  return external;
}

at::Tensor generatorState(at::Generator g) {
  std::lock_guard<std::mutex> lock(g.mutex());
  return g.get_state();
}

void setGeneratorState(at::Generator g, T state) {
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_state(state);
}

void manualSeed(int64_t seed) {
  auto g = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(g.mutex());
  g.set_current_seed(static_cast<uint64_t>(seed));
}

// ---- autocast ----

c10::DeviceType deviceType(Str name) {
  TORCH_CHECK(name == "cpu" || name == "cuda", "autocast is for 'cpu' or 'cuda', not '", name, "'");
  return name == "cpu" ? c10::DeviceType::CPU : c10::DeviceType::CUDA;
}

#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
bool autocastEnabled(c10::DeviceType d) { return at::autocast::is_autocast_enabled(d); }
at::ScalarType autocastDtype(c10::DeviceType d) { return at::autocast::get_autocast_dtype(d); }
void setAutocast(c10::DeviceType d, bool on, at::ScalarType dtype) {
  at::autocast::set_autocast_enabled(d, on);
  at::autocast::set_autocast_dtype(d, dtype);
}
#else
bool autocastEnabled(c10::DeviceType d) {
  return d == c10::DeviceType::CPU ? at::autocast::is_cpu_enabled() : at::autocast::is_enabled();
}
at::ScalarType autocastDtype(c10::DeviceType d) {
  return d == c10::DeviceType::CPU ? at::autocast::get_autocast_cpu_dtype() : at::autocast::get_autocast_gpu_dtype();
}
void setAutocast(c10::DeviceType d, bool on, at::ScalarType dtype) {
  if (d == c10::DeviceType::CPU) {
    at::autocast::set_cpu_enabled(on);
    at::autocast::set_autocast_cpu_dtype(dtype);
  } else {
    at::autocast::set_enabled(on);
    at::autocast::set_autocast_gpu_dtype(dtype);
  }
}
#endif

// autocastEnter(device, enabled, dtype) -> [wasEnabled, previousDtype]; autocastExit restores it.
std::tuple<bool, int64_t> autocastEnter(Str device, bool on, at::ScalarType dtype) {
  auto d = deviceType(device);
  std::tuple<bool, int64_t> previous{autocastEnabled(d), static_cast<int64_t>(autocastDtype(d))};
  setAutocast(d, on, dtype);
  at::autocast::increment_nesting();
  return previous;
}

void autocastExit(Str device, bool wasOn, at::ScalarType previous) {
  setAutocast(deviceType(device), wasOn, previous);
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
}

// ---- facts ----

std::string libraryPath() {
  Dl_info found{};
  if (dladdr(reinterpret_cast<void*>(&at::show_config), &found) && found.dli_fname) return found.dli_fname;
  return "";
}

bool cudaAvailable() { return at::detail::getCUDAHooks().hasCUDA(); }
int64_t cudaDeviceCount() { return cudaAvailable() ? at::detail::getCUDAHooks().getNumGPUs() : 0; }

// The device's name, read through the CUDA runtime libtorch already loaded. cudaDeviceProp
// starts with `char name[256]` in every CUDA version, so a generous buffer is enough.
std::string cudaDeviceName(int64_t index) {
  if (!cudaAvailable()) return "";
  using GetProps = int (*)(void*, int);
  for (const char* symbol : {"cudaGetDeviceProperties_v2", "cudaGetDeviceProperties"}) {
    if (auto fn = reinterpret_cast<GetProps>(dlsym(RTLD_DEFAULT, symbol))) {
      std::vector<char> props(16384, 0);
      if (fn(props.data(), static_cast<int>(index)) == 0) return std::string(props.data(), strnlen(props.data(), 256));
    }
  }
  return "";
}

void cudaSynchronize(int64_t index) {
  if (cudaAvailable()) at::detail::getCUDAHooks().deviceSynchronize(index);
}

// ---- native timing, the other side of bench/ops ----

void syncFor(T t) {
  if (t.is_cuda()) cudaSynchronize(t.device().index() < 0 ? 0 : t.device().index());
}

// nativeLoop(kind, inputs, iterations): seconds per iteration of one op run in a C++ loop.
double nativeLoop(Str kind, const std::vector<at::Tensor>& in, int64_t iterations) {
  c10::InferenceMode guard;
  std::function<at::Tensor()> op;
  if (kind == "add") op = [&] { return at::add(in.at(0), in.at(1)); };
  else if (kind == "matmul") op = [&] { return at::matmul(in.at(0), in.at(1)); };
  else if (kind == "conv2d") op = [&] { return at::conv2d(in.at(0), in.at(1), in.at(2), 1, 1); };
  else if (kind == "attention") {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 1)
    op = [&] { return at::scaled_dot_product_attention(in.at(0), in.at(1), in.at(2)); };
#else
    op = [&] {
      double s = 1.0 / std::sqrt(static_cast<double>(in.at(0).size(-1)));
      return at::matmul(at::softmax(at::matmul(in.at(0), in.at(1).transpose(-2, -1)) * s, -1), in.at(2));
    };
#endif
  } else TORCH_CHECK(false, "unknown native loop '", kind, "'");
  op();
  syncFor(in.at(0));
  auto start = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iterations; i++) op();
  syncFor(in.at(0));
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / static_cast<double>(iterations);
}

#define OP(name, ...) \
  OpEntry { #name, &bound<(+__VA_ARGS__)> }
#define RAW(name, fn) \
  OpEntry { #name, &guarded<fn> }

const std::vector<OpEntry> kSystemOps = {
    RAW(fromBuffer, fromBuffer),
    RAW(toBuffer, toBuffer),
    RAW(dispose, dispose),
    RAW(isDisposed, isDisposed),
    RAW(liveTensors, liveTensors),
    RAW(newGenerator, newGenerator),
    OP(readFile, readFile),
    OP(writeFd, writeFd),
    OP(generatorState, generatorState),
    OP(setGeneratorState, setGeneratorState),
    OP(generatorSeed, [](at::Generator g) { return static_cast<int64_t>(g.current_seed()); }),
    OP(manualSeed, manualSeed),
    OP(setNumThreads, [](int64_t n) {
      TORCH_CHECK(n >= 1, "the thread count must be at least 1, not ", n);
      at::set_num_threads(static_cast<int>(n));
    }),
    OP(getNumThreads, []() { return static_cast<int64_t>(at::get_num_threads()); }),
    OP(autocastEnter, autocastEnter),
    OP(autocastExit, autocastExit),
    OP(version, []() { return std::string(TORCH_VERSION); }),
    OP(showConfig, []() { return at::show_config(); }),
    OP(parallelInfo, []() { return at::get_parallel_info(); }),
    OP(libraryPath, libraryPath),
    OP(cudaAvailable, cudaAvailable),
    OP(cudaDeviceCount, cudaDeviceCount),
    OP(cudaDeviceName, cudaDeviceName),
    OP(cudaSynchronize, cudaSynchronize),
    OP(nativeLoop, nativeLoop),
    OP(noop, []() {}),
    OP(allocatorStats, []() {
      auto s = allocatorStats();
      return std::vector<int64_t>{s.inUse, s.cached, s.limit};
    }),
    OP(emptyCache, emptyCache),
    OP(setCacheLimit, setCacheLimit),
};

}  // namespace

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  installAllocator();
  registerOps(env, exports, kSystemOps);
  registerTensorOps(env, exports);
  registerOptimizerOps(env, exports);
  return exports;
}

}  // namespace moa

static Napi::Object InitModule(Napi::Env env, Napi::Object exports) { return moa::Init(env, exports); }
NODE_API_MODULE(moa_native, InitModule)
