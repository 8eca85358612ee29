// The bridge between JavaScript values and libtorch types.
//
// Every bound operation is a plain C++ function (usually a lambda in ops.cpp). `bind<F>()` reads
// the function's parameter types, converts each JavaScript argument to that type (a TypeError
// when it cannot), calls it, turns a libtorch error into a JavaScript Error that names the
// operation and its tensors' shapes and dtypes, and converts the result back.
#pragma once

#include <ATen/ATen.h>
#include <napi.h>

#include <atomic>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

namespace moa {

// A tensor owned by JavaScript. `dispose` empties it at once; the GC finalizer deletes the box.
struct TensorBox {
  at::Tensor tensor;
  int64_t reported = 0;  // bytes reported to V8 as external memory
};

struct GeneratorBox {
  at::Generator generator;
};

// Type tags keep a foreign External from being read as one of ours.
extern const napi_type_tag kTensorTag;
extern const napi_type_tag kGeneratorTag;

// Live tensor count and bytes, for tests and leak checks. Atomic: worker threads each run their
// own JavaScript environment over the same addon.
struct Census {
  std::atomic<int64_t> live{0};
  std::atomic<int64_t> bytes{0};
};
Census& census();

Napi::Value wrapTensor(Napi::Env env, at::Tensor tensor);
void releaseTensor(node_api_basic_env env, TensorBox* box);
TensorBox* unwrapTensorBox(const Napi::Value& value, const char* what);
const at::Tensor& unwrapTensor(const Napi::Value& value, const char* what);

// Thrown by argument conversion; becomes a JavaScript TypeError.
struct ArgError {
  std::string message;
};

std::string describeArgs(const Napi::CallbackInfo& info);

// ---- JavaScript -> C++ ----------------------------------------------------------------------

template <typename T, typename = void>
struct From;

template <>
struct From<at::Tensor> {
  static const at::Tensor& get(const Napi::Value& v) { return unwrapTensor(v, "a tensor"); }
};

template <>
struct From<c10::optional<at::Tensor>> {
  static c10::optional<at::Tensor> get(const Napi::Value& v) {
    if (v.IsNull() || v.IsUndefined()) return c10::nullopt;
    return unwrapTensor(v, "a tensor or null");
  }
};

template <>
struct From<double> {
  static double get(const Napi::Value& v) {
    if (v.IsNumber()) return v.As<Napi::Number>().DoubleValue();
    if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? 1.0 : 0.0;
    throw ArgError{"a number"};
  }
};

template <>
struct From<int64_t> {
  static int64_t get(const Napi::Value& v) {
    if (v.IsNumber()) {
      double d = v.As<Napi::Number>().DoubleValue();
      if (d != static_cast<double>(static_cast<int64_t>(d))) throw ArgError{"an integer"};
      return static_cast<int64_t>(d);
    }
    if (v.IsBigInt()) {
      bool lossless = false;
      int64_t i = v.As<Napi::BigInt>().Int64Value(&lossless);
      if (!lossless) throw ArgError{"an integer within 64 bits"};
      return i;
    }
    throw ArgError{"an integer"};
  }
};

template <>
struct From<bool> {
  static bool get(const Napi::Value& v) {
    if (v.IsBoolean()) return v.As<Napi::Boolean>().Value();
    throw ArgError{"a boolean"};
  }
};

template <typename T>
struct From<c10::optional<T>, std::enable_if_t<!std::is_same_v<T, at::Tensor>>> {
  static c10::optional<T> get(const Napi::Value& v) {
    if (v.IsNull() || v.IsUndefined()) return c10::nullopt;
    return From<T>::get(v);
  }
};

template <>
struct From<std::string> {
  static std::string get(const Napi::Value& v) {
    if (v.IsString()) return v.As<Napi::String>().Utf8Value();
    throw ArgError{"a string"};
  }
};

template <>
struct From<at::Scalar> {
  static at::Scalar get(const Napi::Value& v) {
    if (v.IsBoolean()) return at::Scalar(v.As<Napi::Boolean>().Value());
    if (v.IsNumber()) {
      // An integer-valued number acts as an integer (as a Python int does): int tensors stay int.
      double d = v.As<Napi::Number>().DoubleValue();
      bool integral = std::isfinite(d) && std::trunc(d) == d && std::abs(d) < 9007199254740992.0 && !(d == 0 && std::signbit(d));
      return integral ? at::Scalar(static_cast<int64_t>(d)) : at::Scalar(d);
    }
    throw ArgError{"a number or boolean"};
  }
};

template <>
struct From<at::ScalarType> {
  static at::ScalarType get(const Napi::Value& v) {
    int64_t code = From<int64_t>::get(v);
    if (code < 0 || code >= static_cast<int64_t>(at::ScalarType::NumOptions)) throw ArgError{"a dtype code"};
    return static_cast<at::ScalarType>(code);
  }
};

template <typename T>
struct From<std::vector<T>> {
  static std::vector<T> get(const Napi::Value& v) {
    if (!v.IsArray()) throw ArgError{"an array"};
    auto array = v.As<Napi::Array>();
    std::vector<T> out;
    out.reserve(array.Length());
    for (uint32_t i = 0; i < array.Length(); i++) out.push_back(From<T>::get(array.Get(i)));
    return out;
  }
};

template <>
struct From<at::Generator> {
  static at::Generator get(const Napi::Value& v) {
    bool tagged = false;
    if (v.IsExternal()) napi_check_object_type_tag(v.Env(), v, &kGeneratorTag, &tagged);
    if (!tagged) throw ArgError{"a Generator"};
    return v.As<Napi::External<GeneratorBox>>().Data()->generator;
  }
};

// ---- C++ -> JavaScript ----------------------------------------------------------------------

inline Napi::Value to(Napi::Env env, at::Tensor t) { return wrapTensor(env, std::move(t)); }
inline Napi::Value to(Napi::Env env, double d) { return Napi::Number::New(env, d); }
inline Napi::Value to(Napi::Env env, int64_t i) { return Napi::Number::New(env, static_cast<double>(i)); }
inline Napi::Value to(Napi::Env env, bool b) { return Napi::Boolean::New(env, b); }
inline Napi::Value to(Napi::Env env, const std::string& s) { return Napi::String::New(env, s); }
inline Napi::Value to(Napi::Env env, Napi::Value v) { return v; }

template <typename T>
Napi::Value to(Napi::Env env, c10::optional<T> v) {
  return v ? to(env, std::move(*v)) : env.Null();
}

template <typename T>
Napi::Value to(Napi::Env env, std::vector<T> items) {
  auto array = Napi::Array::New(env, items.size());
  for (size_t i = 0; i < items.size(); i++) array.Set(static_cast<uint32_t>(i), to(env, std::move(items[i])));
  return array;
}

template <typename... T>
Napi::Value to(Napi::Env env, std::tuple<T...> items) {
  auto array = Napi::Array::New(env, sizeof...(T));
  std::apply([&](auto&... item) {
    uint32_t i = 0;
    ((array.Set(i++, to(env, std::move(item)))), ...);
  }, items);
  return array;
}

// ---- Binding a C++ function -------------------------------------------------------------------

// Signature of a plain function pointer, with parameters stripped of const and references.
template <typename F>
struct Signature;
template <typename R, typename... A>
struct Signature<R (*)(A...)> {
  using Result = R;
  using Args = std::tuple<std::decay_t<A>...>;
  static constexpr size_t arity = sizeof...(A);
};

// Error for an argument that cannot be converted: names the op, the position and what it wanted.
[[noreturn]] void throwArgError(const Napi::CallbackInfo& info, const char* op, size_t index, const std::string& wanted);
// Error from libtorch: names the op, its arguments' shapes and dtypes, and libtorch's message.
[[noreturn]] void throwTorchError(const Napi::CallbackInfo& info, const char* op, const char* message);

template <typename A, size_t I>
A convertArg(const Napi::CallbackInfo& info, const char* op) {
  try {
    return From<A>::get(info[I]);
  } catch (const ArgError& e) {
    throwArgError(info, op, I, e.message);
  }
}

template <typename Args, size_t... I>
Args convertArgs(const Napi::CallbackInfo& info, const char* op, std::index_sequence<I...>) {
  (void)op;  // unused when the function takes no arguments
  return Args{convertArg<std::tuple_element_t<I, Args>, I>(info, op)...};
}

template <auto F>
Napi::Value bound(const Napi::CallbackInfo& info) {
  using S = Signature<decltype(F)>;
  const char* op = static_cast<const char*>(info.Data());
  auto args = convertArgs<typename S::Args>(info, op, std::make_index_sequence<S::arity>{});
  try {
    if constexpr (std::is_void_v<typename S::Result>) {
      std::apply(F, args);
      return info.Env().Undefined();
    } else {
      return to(info.Env(), std::apply(F, std::move(args)));
    }
  } catch (const c10::Error& e) {
    throwTorchError(info, op, e.what_without_backtrace());
  } catch (const std::exception& e) {
    throwTorchError(info, op, e.what());
  }
}

struct OpEntry {
  const char* name;
  Napi::Function::Callback callback;
};

// Env-aware functions (those that need the env, e.g. to build buffers) take the CallbackInfo.
template <Napi::Value (*F)(const Napi::CallbackInfo&)>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  const char* op = static_cast<const char*>(info.Data());
  try {
    return F(info);
  } catch (const ArgError& e) {
    throw Napi::TypeError::New(info.Env(), std::string(op) + ": expected " + e.message);
  } catch (const c10::Error& e) {
    throwTorchError(info, op, e.what_without_backtrace());
  } catch (const std::exception& e) {
    throwTorchError(info, op, e.what());
  }
}

void registerOps(Napi::Env env, Napi::Object exports, const std::vector<OpEntry>& ops);

// The caching CPU allocator (allocator.cpp).
struct AllocatorStats {
  int64_t inUse = 0;   // bytes of large blocks held by tensors
  int64_t cached = 0;  // bytes of large blocks kept for reuse
  int64_t limit = 0;   // most bytes the cache keeps
};
void installAllocator();
AllocatorStats allocatorStats();
void emptyCache();
void setCacheLimit(int64_t bytes);

}  // namespace moa
