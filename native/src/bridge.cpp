#include "bridge.h"

#include <sstream>

namespace moa {

const napi_type_tag kTensorTag = {0x6d6f612d74656e73ULL, 0x6f722d626f780001ULL};
const napi_type_tag kGeneratorTag = {0x6d6f612d67656e65ULL, 0x7261746f72000001ULL};

Census& census() {
  static Census c;
  return c;
}

// Host memory a tensor holds, as V8 should count it. Views count their own extent: an
// over-estimate that only makes the GC look sooner. Device memory is not the V8 heap's concern.
static int64_t hostBytes(const at::Tensor& t) {
  if (!t.defined() || !t.device().is_cpu()) return 0;
  return static_cast<int64_t>(t.numel()) * static_cast<int64_t>(t.element_size());
}

void releaseTensor(node_api_basic_env env, TensorBox* box) {
  if (!box->tensor.defined()) return;
  int64_t ignored;
  if (box->reported) napi_adjust_external_memory(env, -box->reported, &ignored);
  census().live -= 1;
  census().bytes -= box->reported;
  box->reported = 0;
  box->tensor = at::Tensor();
}

// A basic finalizer touches no JavaScript, so Node runs it inside the GC itself rather than on a
// later turn of the event loop: a synchronous loop that drops tensors gets their memory back.
static void finalizeTensor(node_api_basic_env env, void* data, void*) {
  auto* box = static_cast<TensorBox*>(data);
  releaseTensor(env, box);
  delete box;
}

Napi::Value wrapTensor(Napi::Env env, at::Tensor tensor) {
  if (!tensor.defined()) return env.Null();
  auto* box = new TensorBox{std::move(tensor), 0};
  box->reported = hostBytes(box->tensor);
  census().live += 1;
  census().bytes += box->reported;
  if (box->reported) Napi::MemoryManagement::AdjustExternalMemory(env, box->reported);
  napi_value external;
  NAPI_THROW_IF_FAILED(env, napi_create_external(env, box, finalizeTensor, nullptr, &external), Napi::Value());
  napi_type_tag_object(env, external, &kTensorTag);
  return Napi::Value(env, external);
}

TensorBox* unwrapTensorBox(const Napi::Value& value, const char* what) {
  bool tagged = false;
  if (value.IsExternal()) napi_check_object_type_tag(value.Env(), value, &kTensorTag, &tagged);
  if (!tagged) throw ArgError{what};
  return value.As<Napi::External<TensorBox>>().Data();
}

const at::Tensor& unwrapTensor(const Napi::Value& value, const char* what) {
  auto* box = unwrapTensorBox(value, what);
  if (!box->tensor.defined()) throw ArgError{std::string(what) + ", but this tensor was disposed"};
  return box->tensor;
}

static std::string describeTensor(const at::Tensor& t) {
  std::ostringstream s;
  s << "Tensor[";
  for (int64_t i = 0; i < t.dim(); i++) s << (i ? ", " : "") << t.size(i);
  s << "] " << c10::toString(t.scalar_type());
  if (!t.device().is_cpu()) s << " on " << t.device();
  return s.str();
}

static std::string describeValue(const Napi::Value& v, int depth = 0) {
  bool tagged = false;
  if (v.IsExternal()) {
    napi_check_object_type_tag(v.Env(), v, &kTensorTag, &tagged);
    if (!tagged) return "External";
    auto* box = v.As<Napi::External<TensorBox>>().Data();
    return box->tensor.defined() ? describeTensor(box->tensor) : "disposed Tensor";
  }
  if (v.IsNumber()) {
    std::ostringstream s;
    s << v.As<Napi::Number>().DoubleValue();
    return s.str();
  }
  if (v.IsBoolean()) return v.As<Napi::Boolean>().Value() ? "true" : "false";
  if (v.IsNull()) return "null";
  if (v.IsUndefined()) return "undefined";
  if (v.IsString()) return "\"" + v.As<Napi::String>().Utf8Value() + "\"";
  if (v.IsArray()) {
    if (depth > 1) return "[...]";
    auto a = v.As<Napi::Array>();
    std::string out = "[";
    for (uint32_t i = 0; i < a.Length() && i < 8; i++) out += (i ? ", " : "") + describeValue(a.Get(i), depth + 1);
    if (a.Length() > 8) out += ", ...";
    return out + "]";
  }
  return v.IsObject() ? "object" : "value";
}

std::string describeArgs(const Napi::CallbackInfo& info) {
  std::string out;
  for (size_t i = 0; i < info.Length(); i++) out += (i ? ", " : "") + describeValue(info[i]);
  return out;
}

void throwArgError(const Napi::CallbackInfo& info, const char* op, size_t index, const std::string& wanted) {
  std::ostringstream s;
  s << op << ": argument " << index + 1 << " must be " << wanted << " (got "
    << (index < info.Length() ? describeValue(info[index]) : std::string("nothing")) << ")";
  throw Napi::TypeError::New(info.Env(), s.str());
}

void throwTorchError(const Napi::CallbackInfo& info, const char* op, const char* message) {
  std::string text = message;
  // libtorch messages can carry a C++ stack; the first lines say what went wrong.
  auto cut = text.find("\nException raised from");
  if (cut != std::string::npos) text.resize(cut);
  std::ostringstream s;
  s << op << "(" << describeArgs(info) << ") failed: " << text;
  throw Napi::Error::New(info.Env(), s.str());
}

void registerOps(Napi::Env env, Napi::Object exports, const std::vector<OpEntry>& ops) {
  for (const auto& op : ops) {
    exports.Set(op.name, Napi::Function::New(env, op.callback, op.name, const_cast<char*>(op.name)));
  }
}

}  // namespace moa
