#include "tensor/conv_onednn.h"

#include <omp.h>

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include "glog/logging.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "tensor/cpu.h"
#include "tensor/gemm.h"

namespace dive::conv_internal {
namespace {

using dnnl::memory;
using dt = memory::data_type;
using tag = memory::format_tag;

dnnl::engine& Engine() {
  static dnnl::engine* const engine = [] {
    // oneDNN picks its own kernels from cpuid; keep it to the ISA dive runs
    // (AMX only where dive's AMX path is active).
    if (ActiveIsa() < Isa::kAmx) {
      try {
        dnnl::set_max_cpu_isa(dnnl::cpu_isa::avx512_core_bf16);
      } catch (const dnnl::error&) {
        // Too late: another user of oneDNN in this process made a primitive.
      }
    }
    return new dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return *engine;
}

dt TypeOf(const Tensor& t) {
  return t.dtype() == DType::kBfloat16 ? dt::bf16 : dt::f32;
}

// What a primitive depends on besides the geometry.
struct Key {
  int64_t n, c, h, w, oc, kh, kw, sh, sw, ph, pw;
  dt x, y, residual;  // residual: dt::undef for none
  bool bias, relu;

  auto Tie() const {
    return std::tie(n, c, h, w, oc, kh, kw, sh, sw, ph, pw, x, y, residual,
                    bias, relu);
  }
  bool operator<(const Key& o) const { return Tie() < o.Tie(); }
};

// The primitive of one Key and the reorders around it, made once.
struct Plan {
  dnnl::convolution_forward conv;
  memory::desc x_user, w_user, b_user, y_user, r_user;
  memory::desc x_prim, w_prim, y_prim;
  dnnl::reorder x_in, w_in, r_in, y_out;  // empty where the layouts agree
};

std::unique_ptr<Plan> MakePlan(const Key& k) {
  const memory::dims x_dims = {k.n, k.c, k.h, k.w};
  const memory::dims w_dims = {k.oc, k.c, k.kh, k.kw};
  const memory::dims y_dims = {k.n, k.oc, (k.h + 2 * k.ph - k.kh) / k.sh + 1,
                               (k.w + 2 * k.pw - k.kw) / k.sw + 1};
  auto p = std::make_unique<Plan>();
  p->x_user = memory::desc(x_dims, k.x, tag::nchw);
  p->w_user = memory::desc(w_dims, dt::f32, tag::oihw);
  p->b_user = memory::desc({k.oc}, dt::f32, tag::x);
  p->y_user = memory::desc(y_dims, k.y, tag::nchw);
  // With a residual the sum is made in float32 and rounded once, as dive's
  // epilogue does.
  const dt y_prim_type = k.residual != dt::undef ? dt::f32 : k.y;
  dnnl::post_ops ops;
  if (k.residual != dt::undef) ops.append_sum(1.0f);
  if (k.relu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0, 0);
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  const dnnl::convolution_forward::desc desc(
      dnnl::prop_kind::forward_inference,
      dnnl::algorithm::convolution_direct,
      memory::desc(x_dims, dt::bf16, tag::any),
      memory::desc(w_dims, dt::bf16, tag::any),
      k.bias ? p->b_user : memory::desc(),
      memory::desc(y_dims, y_prim_type, tag::any), {k.sh, k.sw},
      {k.ph, k.pw}, {k.ph, k.pw});
  const dnnl::convolution_forward::primitive_desc pd(desc, attr, Engine());
  p->conv = dnnl::convolution_forward(pd);
  p->x_prim = pd.src_desc();
  p->w_prim = pd.weights_desc();
  p->y_prim = pd.dst_desc();
  if (p->x_prim != p->x_user) {
    p->x_in = dnnl::reorder(dnnl::reorder::primitive_desc(
        Engine(), p->x_user, Engine(), p->x_prim));
  }
  p->w_in = dnnl::reorder(dnnl::reorder::primitive_desc(Engine(), p->w_user,
                                                        Engine(), p->w_prim));
  if (k.residual != dt::undef) {
    p->r_user = memory::desc(y_dims, k.residual, tag::nchw);
    p->r_in = dnnl::reorder(dnnl::reorder::primitive_desc(
        Engine(), p->r_user, Engine(), p->y_prim));
  }
  if (p->y_prim != p->y_user) {
    p->y_out = dnnl::reorder(dnnl::reorder::primitive_desc(
        Engine(), p->y_prim, Engine(), p->y_user));
  }
  return p;
}

// The plan of `key`, made on first use; null where oneDNN has no primitive
// for it (logged once per key).
const Plan* PlanFor(const Key& key) {
  static std::mutex mu;
  static auto* const plans = new std::map<Key, std::unique_ptr<Plan>>();
  const std::lock_guard<std::mutex> lock(mu);
  const auto [it, inserted] = plans->try_emplace(key);
  if (inserted) {
    try {
      it->second = MakePlan(key);
    } catch (const dnnl::error& e) {
      LOG(WARNING) << "oneDNN has no bf16 convolution for x [" << key.n
                   << ", " << key.c << ", " << key.h << ", " << key.w
                   << "], kernel " << key.kh << "x" << key.kw << " ("
                   << e.what() << "); dive's kernels run it";
    }
  }
  return it->second.get();
}

// A buffer for a memory of `desc` from dive's allocator (64-byte aligned,
// reused across calls by its cache).
Tensor BufferFor(const memory::desc& desc) {
  return Tensor::Empty(
      {static_cast<int64_t>((desc.get_size() + sizeof(float) - 1) /
                            sizeof(float))});
}

void* Ptr(const Tensor& t) { return t.raw_data(); }

}  // namespace

bool OneDnnTakesForward(const ConvGeometry& g) {
  if (GetMatmulPrecision() != MatmulPrecision::kBfloat16 ||
      ActiveIsa() < Isa::kAvx512Bf16 || g.n == 0) {
    return false;
  }
  switch (GetConvLibrary()) {
    case ConvLibrary::kDive:
      return false;
    case ConvLibrary::kOneDnn:
      return true;
    case ConvLibrary::kAuto:
      break;
  }
  return g.kh * g.kw > 1 && g.c >= 16 && g.Ohw() >= 32;
}

bool OneDnnConv2dForward(const ConvGeometry& g, const Tensor& x,
                         const Tensor& w, const Tensor& bias,
                         const Tensor& residual, bool relu, Tensor& y) {
  const Key key{g.n,
                g.c,
                g.h,
                g.w,
                g.oc,
                g.kh,
                g.kw,
                g.sh,
                g.sw,
                g.ph,
                g.pw,
                TypeOf(x),
                TypeOf(y),
                residual.defined() ? TypeOf(residual) : dt::undef,
                bias.defined(),
                relu};
  const Plan* plan = PlanFor(key);
  if (plan == nullptr) return false;
  const Plan& p = *plan;
  dnnl::engine& engine = Engine();
  dnnl::stream stream(engine);
  memory x_user(p.x_user, engine, Ptr(x));
  memory w_user(p.w_user, engine, Ptr(w));
  memory y_user(p.y_user, engine, Ptr(y));
  // The blocked operands live in buffers of dive's allocator.
  Tensor x_buf, y_buf;
  memory x_prim = x_user, y_prim = y_user;
  if (p.x_in) {
    x_buf = BufferFor(p.x_prim);
    x_prim = memory(p.x_prim, engine, Ptr(x_buf));
    p.x_in.execute(stream, x_user, x_prim);
  }
  const Tensor w_buf = BufferFor(p.w_prim);
  memory w_prim(p.w_prim, engine, Ptr(w_buf));
  p.w_in.execute(stream, w_user, w_prim);
  if (p.y_out) {
    y_buf = BufferFor(p.y_prim);
    y_prim = memory(p.y_prim, engine, Ptr(y_buf));
  }
  if (residual.defined()) {
    memory r_user(p.r_user, engine, Ptr(residual));
    p.r_in.execute(stream, r_user, y_prim);
  }
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, x_prim},
                                          {DNNL_ARG_WEIGHTS, w_prim},
                                          {DNNL_ARG_DST, y_prim}};
  if (bias.defined()) {
    args.emplace(DNNL_ARG_BIAS, memory(p.b_user, engine, Ptr(bias)));
  }
  p.conv.execute(stream, args);
  if (p.y_out) p.y_out.execute(stream, y_prim, y_user);
  stream.wait();
  return true;
}

}  // namespace dive::conv_internal
