// libtorch's AdamW and SGD, held by JavaScript, with their per-parameter state exposed as
// tensors so a checkpoint can save and restore it.
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <sstream>

#include "bridge.h"

namespace moa {
namespace {

using Groups = std::vector<std::vector<at::Tensor>>;

struct OptimizerBox {
  std::unique_ptr<torch::optim::Optimizer> optimizer;
  bool adamw = false;
};

const napi_type_tag kOptimizerTag = {0x6d6f612d6f707469ULL, 0x6d697a6572000001ULL};

// libtorch keys its state by the parameter's TensorImpl: a string in 1.x, a pointer in 2.x.
template <typename Key>
Key stateKey(const at::Tensor& p) {
  if constexpr (std::is_same_v<Key, std::string>) {
    std::ostringstream s;
    s << static_cast<const void*>(p.unsafeGetTensorImpl());
    return s.str();
  } else {
    return static_cast<Key>(p.unsafeGetTensorImpl());
  }
}
using StateMap = std::remove_reference_t<decltype(std::declval<torch::optim::Optimizer&>().state())>;
using Key = StateMap::key_type;

OptimizerBox* unwrap(const Napi::Value& v) {
  bool tagged = false;
  if (v.IsExternal()) napi_check_object_type_tag(v.Env(), v, &kOptimizerTag, &tagged);
  if (!tagged) throw ArgError{"an optimizer handle"};
  auto* box = v.As<Napi::External<OptimizerBox>>().Data();
  if (!box->optimizer) throw ArgError{"an optimizer that is not disposed"};
  return box;
}

Napi::Value wrap(Napi::Env env, OptimizerBox* box) {
  auto external = Napi::External<OptimizerBox>::New(env, box, [](Napi::Env, OptimizerBox* b) { delete b; });
  napi_type_tag_object(env, external, &kOptimizerTag);
  return external;
}

std::vector<double> numbers(const Napi::Value& v) { return From<std::vector<double>>::get(v); }

// adamw(groups: Tensor[][], lrs, weightDecays, beta1, beta2, eps, amsgrad)
Napi::Value adamw(const Napi::CallbackInfo& info) {
  auto groups = From<Groups>::get(info[0]);
  auto lrs = numbers(info[1]), decays = numbers(info[2]);
  if (lrs.size() != groups.size() || decays.size() != groups.size()) throw ArgError{"one lr and one weight decay per parameter group"};
  auto defaults = torch::optim::AdamWOptions(lrs.empty() ? 1e-3 : lrs[0])
                      .betas({From<double>::get(info[3]), From<double>::get(info[4])})
                      .eps(From<double>::get(info[5]))
                      .amsgrad(From<bool>::get(info[6]));
  std::vector<torch::optim::OptimizerParamGroup> list;
  for (size_t i = 0; i < groups.size(); i++) {
    auto opts = std::make_unique<torch::optim::AdamWOptions>(defaults);
    opts->lr(lrs[i]).weight_decay(decays[i]);
    list.emplace_back(groups[i], std::move(opts));
  }
  auto* box = new OptimizerBox{std::make_unique<torch::optim::AdamW>(list, defaults), true};
  return wrap(info.Env(), box);
}

// sgd(groups: Tensor[][], lrs, weightDecays, momentum, dampening, nesterov)
Napi::Value sgd(const Napi::CallbackInfo& info) {
  auto groups = From<Groups>::get(info[0]);
  auto lrs = numbers(info[1]), decays = numbers(info[2]);
  if (lrs.size() != groups.size() || decays.size() != groups.size()) throw ArgError{"one lr and one weight decay per parameter group"};
  auto defaults = torch::optim::SGDOptions(lrs.empty() ? 1e-2 : lrs[0])
                      .momentum(From<double>::get(info[3]))
                      .dampening(From<double>::get(info[4]))
                      .nesterov(From<bool>::get(info[5]));
  std::vector<torch::optim::OptimizerParamGroup> list;
  for (size_t i = 0; i < groups.size(); i++) {
    auto opts = std::make_unique<torch::optim::SGDOptions>(defaults);
    opts->lr(lrs[i]).weight_decay(decays[i]);
    list.emplace_back(groups[i], std::move(opts));
  }
  auto* box = new OptimizerBox{std::make_unique<torch::optim::SGD>(list, defaults), false};
  return wrap(info.Env(), box);
}

Napi::Value step(const Napi::CallbackInfo& info) {
  torch::NoGradGuard noGrad;
  unwrap(info[0])->optimizer->step();
  return info.Env().Undefined();
}

Napi::Value setLr(const Napi::CallbackInfo& info) {
  auto* box = unwrap(info[0]);
  auto group = From<int64_t>::get(info[1]);
  double lr = From<double>::get(info[2]);
  auto& groups = box->optimizer->param_groups();
  if (group < 0 || group >= static_cast<int64_t>(groups.size())) throw ArgError{"the index of an existing parameter group"};
  auto& opts = groups[group].options();
  if (box->adamw) static_cast<torch::optim::AdamWOptions&>(opts).lr(lr);
  else static_cast<torch::optim::SGDOptions&>(opts).lr(lr);
  return info.Env().Undefined();
}

Napi::Value dispose(const Napi::CallbackInfo& info) {
  unwrap(info[0])->optimizer.reset();
  return info.Env().Undefined();
}

// The state of each parameter in order: [step, exp_avg, exp_avg_sq, max_exp_avg_sq] for AdamW,
// [momentum_buffer] for SGD; null where a parameter has no state yet.
Napi::Value getState(const Napi::CallbackInfo& info) {
  auto env = info.Env();
  auto* box = unwrap(info[0]);
  auto& state = box->optimizer->state();
  auto out = Napi::Array::New(env);
  uint32_t n = 0;
  for (auto& group : box->optimizer->param_groups()) {
    for (auto& p : group.params()) {
      auto it = state.find(stateKey<Key>(p));
      if (it == state.end()) {
        out.Set(n++, env.Null());
        continue;
      }
      auto entry = Napi::Array::New(env);
      if (box->adamw) {
        auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
        entry.Set(0u, Napi::Number::New(env, static_cast<double>(s.step())));
        entry.Set(1u, wrapTensor(env, s.exp_avg().clone()));
        entry.Set(2u, wrapTensor(env, s.exp_avg_sq().clone()));
        entry.Set(3u, wrapTensor(env, s.max_exp_avg_sq().defined() ? s.max_exp_avg_sq().clone() : at::Tensor()));
      } else {
        auto& s = static_cast<torch::optim::SGDParamState&>(*it->second);
        entry.Set(0u, wrapTensor(env, s.momentum_buffer().defined() ? s.momentum_buffer().clone() : at::Tensor()));
      }
      out.Set(n++, entry);
    }
  }
  return out;
}

Napi::Value setState(const Napi::CallbackInfo& info) {
  auto* box = unwrap(info[0]);
  if (!info[1].IsArray()) throw ArgError{"an array of per-parameter states"};
  auto entries = info[1].As<Napi::Array>();
  std::vector<at::Tensor> params;
  for (auto& group : box->optimizer->param_groups())
    for (auto& p : group.params()) params.push_back(p);
  if (entries.Length() != params.size()) {
    std::ostringstream s;
    s << "a state for each of the optimizer's " << params.size() << " parameters (the saved state has " << entries.Length() << ")";
    throw ArgError{s.str()};
  }
  auto& state = box->optimizer->state();
  auto checked = [&](const Napi::Value& v, const at::Tensor& p, const char* name) {
    const at::Tensor& t = unwrapTensor(v, name);
    TORCH_CHECK(t.sizes() == p.sizes(), "optimizer state ", name, " has shape ", t.sizes(), " but its parameter has ", p.sizes());
    return t.to(p.options()).clone();
  };
  for (uint32_t i = 0; i < params.size(); i++) {
    auto key = stateKey<Key>(params[i]);
    Napi::Value v = entries.Get(i);
    if (v.IsNull() || v.IsUndefined()) {
      state.erase(key);
      continue;
    }
    if (!v.IsArray()) throw ArgError{"each per-parameter state to be an array or null"};
    auto e = v.As<Napi::Array>();
    if (box->adamw) {
      auto s = std::make_unique<torch::optim::AdamWParamState>();
      s->step(From<int64_t>::get(e.Get(0u)));
      s->exp_avg(checked(e.Get(1u), params[i], "exp_avg"));
      s->exp_avg_sq(checked(e.Get(2u), params[i], "exp_avg_sq"));
      if (!e.Get(3u).IsNull() && !e.Get(3u).IsUndefined()) s->max_exp_avg_sq(checked(e.Get(3u), params[i], "max_exp_avg_sq"));
      state[key] = std::move(s);
    } else {
      auto s = std::make_unique<torch::optim::SGDParamState>();
      if (!e.Get(0u).IsNull() && !e.Get(0u).IsUndefined()) s->momentum_buffer(checked(e.Get(0u), params[i], "momentum_buffer"));
      state[key] = std::move(s);
    }
  }
  return info.Env().Undefined();
}

const std::vector<OpEntry> kOptimizerOps = {
    {"adamw", &guarded<adamw>},
    {"sgd", &guarded<sgd>},
    {"optimizerStep", &guarded<step>},
    {"optimizerSetLr", &guarded<setLr>},
    {"optimizerDispose", &guarded<dispose>},
    {"optimizerGetState", &guarded<getState>},
    {"optimizerSetState", &guarded<setState>},
};

}  // namespace

void registerOptimizerOps(Napi::Env env, Napi::Object exports) { registerOps(env, exports, kOptimizerOps); }

}  // namespace moa
