#include "tensor/conv_onednn.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <unordered_map>

#include "absl/strings/str_cat.h"
#include "glog/logging.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/memory_format.h"
#include "tensor/onednn.h"

namespace dive::conv_internal {
namespace {

using dnnl::memory;
using dt = memory::data_type;
using onednn_internal::Engine;
using tag = memory::format_tag;

dt TypeOf(const Tensor& t) {
  return t.dtype() == DType::kBfloat16 ? dt::bf16 : dt::f32;
}
bool IsNhwc(const Tensor& t) {
  return MemoryFormatOf(t) == MemoryFormat::kChannelsLast;
}
dt StoredType(const Conv2dStage& stage) {
  return stage.dtype == DType::kBfloat16 ? dt::bf16 : dt::f32;
}

// What a primitive depends on: the pass, the geometry, the dtypes of x and
// of y (dx and dy for the gradients) and the epilogue, and which of x, y
// and the residual are channels-last.
struct Key {
  ConvPass pass;
  int64_t n, c, h, w, oc, kh, kw, sh, sw, ph, pw;
  dt x, y, residual;  // residual: dt::undef for none
  bool bias, relu;
  bool x_nhwc, y_nhwc, residual_nhwc;

  auto Tie() const {
    return std::tie(pass, n, c, h, w, oc, kh, kw, sh, sw, ph, pw, x, y,
                    residual, bias, relu, x_nhwc, y_nhwc, residual_nhwc);
  }
  bool operator<(const Key& o) const { return Tie() < o.Tie(); }
};

// The primitive of one Key and the reorders around it, made once: between
// dive's NCHW (or channels-last) / OIHW tensors (_user) and the primitive's
// layouts (_prim). Where x or y is channels-last, the primitive reads and
// writes its activations channels-last too (oneDNN runs the same kernels on
// them: bench/conv_library_benchmark dnnl_nhwc), so that they need no
// reorder; else it picks its own, blocked, layout.
// Forward, x and w go in, y out (r, the residual, into y's memory); for the
// input gradient, y (dy) and w go in, x (dx) out; for the weight gradient, x
// and y (dy) go in, w (dw) out. A reorder is empty where the two layouts
// agree.
struct Plan {
  dnnl::primitive conv;
  memory::desc x_user, w_user, b_user, y_user, r_user;
  memory::desc x_prim, w_prim, y_prim;
  dnnl::reorder x_move, w_move, r_in, y_move;
};

tag UserTag(bool nhwc) { return nhwc ? tag::nhwc : tag::nchw; }
tag PrimTag(const Key& k) {
  return k.x_nhwc || k.y_nhwc ? tag::nhwc : tag::any;
}

memory::dims XDims(const Key& k) { return {k.n, k.c, k.h, k.w}; }
memory::dims WDims(const Key& k) { return {k.oc, k.c, k.kh, k.kw}; }
memory::dims YDims(const Key& k) {
  return {k.n, k.oc, ConvOutSize(k.h, k.kh, k.sh, k.ph),
          ConvOutSize(k.w, k.kw, k.sw, k.pw)};
}

dnnl::reorder Reorder(const memory::desc& from, const memory::desc& to) {
  if (from == to) return dnnl::reorder();
  return dnnl::reorder(
      dnnl::reorder::primitive_desc(Engine(), from, Engine(), to));
}

std::unique_ptr<Plan> MakeForwardPlan(const Key& k) {
  const memory::dims x_dims = XDims(k), w_dims = WDims(k), y_dims = YDims(k);
  auto p = std::make_unique<Plan>();
  p->x_user = memory::desc(x_dims, k.x, UserTag(k.x_nhwc));
  p->w_user = memory::desc(w_dims, dt::bf16, tag::oihw);  // WeightsIn
  p->b_user = memory::desc({k.oc}, dt::f32, tag::x);
  p->y_user = memory::desc(y_dims, k.y, UserTag(k.y_nhwc));
  // With a residual the sum is made in float32 and rounded once, as dive's
  // epilogue does: oneDNN reads the residual from y's memory, so that is
  // float32 unless the residual is bf16 (exact either way).
  const dt y_prim_type = k.residual == dt::f32 ? dt::f32 : k.y;
  dnnl::post_ops ops;
  if (k.residual != dt::undef) ops.append_sum(1.0f);
  if (k.relu) ops.append_eltwise(1.0f, dnnl::algorithm::eltwise_relu, 0, 0);
  dnnl::primitive_attr attr;
  attr.set_post_ops(ops);
  const dnnl::convolution_forward::desc desc(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
      memory::desc(x_dims, dt::bf16, PrimTag(k)),
      memory::desc(w_dims, dt::bf16, tag::any),
      k.bias ? p->b_user : memory::desc(),
      memory::desc(y_dims, y_prim_type, PrimTag(k)), {k.sh, k.sw}, {k.ph, k.pw},
      {k.ph, k.pw});
  const dnnl::convolution_forward::primitive_desc pd(desc, attr, Engine());
  p->conv = dnnl::convolution_forward(pd);
  p->x_prim = pd.src_desc();
  p->w_prim = pd.weights_desc();
  p->y_prim = pd.dst_desc();
  p->x_move = Reorder(p->x_user, p->x_prim);
  p->w_move = Reorder(p->w_user, p->w_prim);
  if (k.residual != dt::undef) {
    p->r_user = memory::desc(y_dims, k.residual, UserTag(k.residual_nhwc));
    p->r_in = dnnl::reorder(dnnl::reorder::primitive_desc(
        Engine(), p->r_user, Engine(), p->y_prim));
  }
  p->y_move = Reorder(p->y_prim, p->y_user);
  return p;
}

// The forward pass a gradient is of (oneDNN's hint for its primitive).
dnnl::convolution_forward::primitive_desc ForwardHint(const Key& k) {
  return dnnl::convolution_forward::primitive_desc(
      {dnnl::prop_kind::forward_training,
       dnnl::algorithm::convolution_direct,
       memory::desc(XDims(k), dt::bf16, PrimTag(k)),
       memory::desc(WDims(k), dt::bf16, tag::any),
       memory::desc(YDims(k), dt::bf16, PrimTag(k)),
       {k.sh, k.sw},
       {k.ph, k.pw},
       {k.ph, k.pw}},
      Engine());
}

std::unique_ptr<Plan> MakeBackwardInputPlan(const Key& k) {
  const memory::dims x_dims = XDims(k), w_dims = WDims(k), y_dims = YDims(k);
  auto p = std::make_unique<Plan>();
  p->x_user = memory::desc(x_dims, k.x, UserTag(k.x_nhwc));
  p->w_user = memory::desc(w_dims, dt::bf16, tag::oihw);  // WeightsIn
  p->y_user = memory::desc(y_dims, k.y, UserTag(k.y_nhwc));
  const dnnl::convolution_backward_data::primitive_desc pd(
      {dnnl::algorithm::convolution_direct,
       memory::desc(x_dims, dt::f32, PrimTag(k)),
       memory::desc(w_dims, dt::bf16, tag::any),
       memory::desc(y_dims, dt::bf16, PrimTag(k)),
       {k.sh, k.sw},
       {k.ph, k.pw},
       {k.ph, k.pw}},
      Engine(), ForwardHint(k));
  p->conv = dnnl::convolution_backward_data(pd);
  p->x_prim = pd.diff_src_desc();
  p->w_prim = pd.weights_desc();
  p->y_prim = pd.diff_dst_desc();
  p->y_move = Reorder(p->y_user, p->y_prim);
  p->w_move = Reorder(p->w_user, p->w_prim);
  p->x_move = Reorder(p->x_prim, p->x_user);
  return p;
}

std::unique_ptr<Plan> MakeBackwardWeightPlan(const Key& k) {
  const memory::dims x_dims = XDims(k), w_dims = WDims(k), y_dims = YDims(k);
  auto p = std::make_unique<Plan>();
  p->x_user = memory::desc(x_dims, k.x, UserTag(k.x_nhwc));
  p->w_user = memory::desc(w_dims, dt::f32, tag::oihw);
  p->y_user = memory::desc(y_dims, k.y, UserTag(k.y_nhwc));
  const dnnl::convolution_backward_weights::primitive_desc pd(
      {dnnl::algorithm::convolution_direct,
       memory::desc(x_dims, dt::bf16, PrimTag(k)),
       memory::desc(w_dims, dt::f32, tag::any),
       memory::desc(y_dims, dt::bf16, PrimTag(k)),
       {k.sh, k.sw},
       {k.ph, k.pw},
       {k.ph, k.pw}},
      Engine(), ForwardHint(k));
  p->conv = dnnl::convolution_backward_weights(pd);
  p->x_prim = pd.src_desc();
  p->w_prim = pd.diff_weights_desc();
  p->y_prim = pd.diff_dst_desc();
  p->x_move = Reorder(p->x_user, p->x_prim);
  p->y_move = Reorder(p->y_user, p->y_prim);
  p->w_move = Reorder(p->w_prim, p->w_user);
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
      switch (key.pass) {
        case ConvPass::kForward:
          it->second = MakeForwardPlan(key);
          break;
        case ConvPass::kInputGradient:
          it->second = MakeBackwardInputPlan(key);
          break;
        case ConvPass::kWeightGradient:
          it->second = MakeBackwardWeightPlan(key);
          break;
      }
    } catch (const dnnl::error& e) {
      static constexpr const char* kWhat[] = {"", "input gradient ",
                                              "weight gradient "};
      LOG(WARNING) << "oneDNN has no bf16 convolution "
                   << kWhat[static_cast<int>(key.pass)] << "for x [" << key.n
                   << ", " << key.c << ", " << key.h << ", " << key.w
                   << "], kernel " << key.kh << "x" << key.kw << " ("
                   << e.what() << "); dive's kernels run it";
    }
  }
  return it->second.get();
}

// A memory of `desc` on `data`, or, for `buffer`, on a new buffer from
// dive's allocator (64-byte aligned, reused across calls by its cache).
memory Memory(const memory::desc& desc, void* data) {
  return memory(desc, Engine(), data);
}
memory Memory(const memory::desc& desc, Tensor* buffer) {
  *buffer = Tensor::Empty({static_cast<int64_t>(
      (desc.get_size() + sizeof(float) - 1) / sizeof(float))});
  return memory(desc, Engine(), buffer->raw_data());
}

// `user` as the primitive reads it: itself, or reordered into a buffer.
memory In(dnnl::stream& stream, const dnnl::reorder& reorder,
          const memory::desc& prim, memory user, Tensor* buffer) {
  if (!reorder) return user;
  memory m = Memory(prim, buffer);
  reorder.execute(stream, user, m);
  return m;
}

// The float32 OIHW weights `w` as the primitive of `p` reads them: rounded
// to bf16 OIHW by dive (into `bf16`, which must outlive the primitive's
// run), then reordered into its layout (into `buffer`). oneDNN's reorder
// that also converts runs at about 1 ns a weight (ResNet-18's 256x256x3x3,
// DNNL_VERBOSE=1); converting first halves it: bf16 inference 1.01-1.07x on
// ResNet-18 and VGG-11/4 (bench/ab_throughput.py, Zen 5). The same values:
// both round to nearest even.
memory ConvertWeights(dnnl::stream& stream, const Plan& p, const Tensor& w,
                      Tensor* bf16, Tensor* buffer) {
  *bf16 = w.To(DType::kBfloat16);
  return In(stream, p.w_move, p.w_prim, Memory(p.w_user, bf16->raw_data()),
            buffer);
}

// ConvertWeights at each call; for frozen weights (Tensor::Frozen), once
// per plan, kept with them for every later call.
memory WeightsIn(dnnl::stream& stream, const Plan& p, const Tensor& w,
                 Tensor* bf16, Tensor* buffer) {
  FrozenForms* const forms = w.frozen_forms();
  if (forms == nullptr) return ConvertWeights(stream, p, w, bf16, buffer);
  // Plans live as long as the process, so the address names one.
  const Tensor& kept = forms->Get<Tensor>(
      absl::StrCat("oneDNN weights of plan ",
                   absl::Hex(reinterpret_cast<uintptr_t>(&p)), " at ",
                   w.offset()),
      [&] {
        Tensor w16, w_buf;
        ConvertWeights(stream, p, w, &w16, &w_buf);
        stream.wait();
        return std::make_unique<Tensor>(p.w_move ? w_buf : w16);
      });
  return Memory(p.w_prim, kept.raw_data());
}

Key KeyOf(ConvPass pass, const ConvGeometry& g, const Tensor& x,
          const Tensor& y, const Tensor& residual, bool bias, bool relu) {
  return Key{pass, g.n, g.c, g.h, g.w, g.oc, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw,
             TypeOf(x), TypeOf(y),
             residual.defined() ? TypeOf(residual) : dt::undef, bias, relu,
             // A tensor of one channel (a stem's input) lies as
             // channels-last too.
             IsNhwc(x) || (IsNhwc(y) && IsChannelsLast(x)), IsNhwc(y),
             residual.defined() && IsNhwc(residual)};
}

}  // namespace

namespace {

// Whether oneDNN may run convolutions of `n` images at all, and then whether
// the library is chosen by shape (kAuto).
enum class Choice { kNo, kYes, kByShape };
Choice LibraryChoice(int64_t n) {
  if (GetMatmulPrecision() != MatmulPrecision::kBfloat16 ||
      ActiveIsa() < Isa::kAvx512Bf16 || n == 0) {
    return Choice::kNo;
  }
  switch (GetConvLibrary()) {
    case ConvLibrary::kDive:
      return Choice::kNo;
    case ConvLibrary::kOneDnn:
      return Choice::kYes;
    case ConvLibrary::kAuto:
      break;
  }
  return Choice::kByShape;
}

}  // namespace

bool OneDnnTakes(const ConvGeometry& g, ConvPass pass, bool channels_last) {
  const Choice choice = LibraryChoice(g.n);
  if (choice != Choice::kByShape) return choice == Choice::kYes;
  if (pass == ConvPass::kInputGradient) return g.c >= 16;
  if (channels_last) return (g.c >= 16 || g.c == 1) && g.Ohw() >= 32;
  return g.kh * g.kw > 1 && g.c >= 16 && g.Ohw() >= 32;
}

bool OneDnnTakesChain(const std::vector<ConvGeometry>& g,
                      const std::vector<Conv2dStage>& stages) {
  const Choice choice = LibraryChoice(g.empty() ? 0 : g[0].n);
  if (g.size() < 2 || choice == Choice::kNo) return false;
  if (choice == Choice::kYes) return true;
  for (size_t i = 0; i < g.size(); ++i) {
    if ((stages[i].input > 0 && g[i].c < 16) || g[i].Ohw() < 32) return false;
  }
  return true;
}

bool OneDnnConv2dForward(const ConvGeometry& g, const Tensor& x,
                         const Tensor& w, const Tensor& bias,
                         const Tensor& residual, bool relu, Tensor& y) {
  const Plan* plan = PlanFor(
      KeyOf(ConvPass::kForward, g, x, y, residual, bias.defined(), relu));
  if (plan == nullptr) return false;
  const Plan& p = *plan;
  dnnl::stream stream(Engine());
  Tensor x_buf, w16, w_buf, y_buf;
  memory x_prim =
      In(stream, p.x_move, p.x_prim, Memory(p.x_user, x.raw_data()), &x_buf);
  memory w_prim = WeightsIn(stream, p, w, &w16, &w_buf);
  memory y_user = Memory(p.y_user, y.raw_data());
  memory y_prim = p.y_move ? Memory(p.y_prim, &y_buf) : y_user;
  if (residual.defined()) {
    memory r_user = Memory(p.r_user, residual.raw_data());
    p.r_in.execute(stream, r_user, y_prim);
  }
  std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, x_prim},
                                          {DNNL_ARG_WEIGHTS, w_prim},
                                          {DNNL_ARG_DST, y_prim}};
  if (bias.defined()) {
    args.emplace(DNNL_ARG_BIAS, Memory(p.b_user, bias.raw_data()));
  }
  p.conv.execute(stream, args);
  if (p.y_move) p.y_move.execute(stream, y_prim, y_user);
  stream.wait();
  return true;
}

namespace {

// The reorder of `from` into `to` (a copy where they agree), made once per
// pair.
const dnnl::reorder& CachedReorder(const memory::desc& from,
                                   const memory::desc& to) {
  static std::mutex mu;
  static auto* const reorders =
      new std::vector<std::tuple<memory::desc, memory::desc, dnnl::reorder>>();
  const std::lock_guard<std::mutex> lock(mu);
  for (const auto& [f, t, reorder] : *reorders) {
    if (f == from && t == to) return reorder;
  }
  return std::get<2>(
      reorders->emplace_back(from, to,
                             dnnl::reorder(dnnl::reorder::primitive_desc(
                                 Engine(), from, Engine(), to))));
}

// A max pooling (inference) of values in layout `src` by the window of `g`,
// written in the layout oneDNN picks for its output (that of src, in its
// dtype), made once per layout and window.
struct MaxPool {
  dnnl::pooling_forward pool;
  memory::desc dst;
};
const MaxPool& CachedMaxPool(const memory::desc& src, const ConvGeometry& g) {
  static std::mutex mu;
  static auto* const pools = new std::vector<
      std::tuple<memory::desc, std::array<int64_t, 6>, MaxPool>>();
  const std::array<int64_t, 6> window = {g.kh, g.kw, g.sh, g.sw, g.ph, g.pw};
  const std::lock_guard<std::mutex> lock(mu);
  for (const auto& [from, w, pool] : *pools) {
    if (from == src && w == window) return pool;
  }
  // Padding on the right as on the left: oneDNN then computes the output
  // size as MaxPool2dForward does, rounded down.
  const dnnl::pooling_forward::primitive_desc pd(
      dnnl::pooling_forward::desc(
          dnnl::prop_kind::forward_inference, dnnl::algorithm::pooling_max, src,
          memory::desc({g.n, g.c, g.oh, g.ow}, src.data_type(), tag::any),
          {g.sh, g.sw}, {g.kh, g.kw}, {g.ph, g.pw}, {g.ph, g.pw}),
      Engine());
  return std::get<2>(pools->emplace_back(
      src, window, MaxPool{dnnl::pooling_forward(pd), pd.dst_desc()}));
}

// A value of a chain (x or a stage's output) in the layouts it is read in:
// the first as it was written, then any reordered copy a reader needed.
struct ChainValue {
  std::vector<memory> forms;
  std::vector<Tensor> buffers;  // the storage of the forms dive allocated

  // The value in layout `desc`, reordered into it on first use.
  const memory& As(dnnl::stream& stream, const memory::desc& desc) {
    for (const memory& m : forms) {
      if (m.get_desc() == desc) return m;
    }
    buffers.emplace_back();
    memory m = Memory(desc, &buffers.back());
    CachedReorder(forms.front().get_desc(), desc)
        .execute(stream, forms.front(), m);
    return forms.emplace_back(m);
  }
};

}  // namespace

bool OneDnnConv2dChainForward(const std::vector<ConvGeometry>& g,
                              const Tensor& x,
                              const std::vector<Conv2dStage>& stages,
                              Tensor& y) {
  CHECK(!stages.empty() && g.size() == stages.size());
  const size_t n = stages.size();
  std::vector<const Plan*> plans;
  for (size_t i = 0; i < n; ++i) {
    // What OneDnnConv2dForward would be given: x or the stored value the
    // stage reads and adds, and y in the stage's dtype. A pooling has none.
    const Conv2dStage& stage = stages[i];
    if (stage.max_pool.has_value()) {
      plans.push_back(nullptr);
      continue;
    }
    auto type_of = [&](int value) {
      return value == 0 ? TypeOf(x) : StoredType(stages[value - 1]);
    };
    Key key = KeyOf(ConvPass::kForward, g[i], x, y, Tensor(),
                    stage.bias.defined(), stage.relu);
    key.x = type_of(stage.input);
    key.y = StoredType(stage);
    if (stage.residual != Conv2dStage::kNone) {
      key.residual = type_of(stage.residual);
    }
    const Plan* plan = PlanFor(key);
    if (plan == nullptr) return false;
    plans.push_back(plan);
  }
  dnnl::stream stream(Engine());
  const std::vector<int> last_reads = ChainLastReads(stages);
  std::vector<ChainValue> values(n);
  values[0].forms.push_back(Memory(
      memory::desc({g[0].n, g[0].c, g[0].h, g[0].w}, TypeOf(x), tag::abcd),
      x.raw_data()));
  Tensor w16, w_buf, y_buf;
  for (size_t i = 0; i < n; ++i) {
    const Conv2dStage& stage = stages[i];
    const bool last = i + 1 == n;
    ChainValue out;
    if (stage.max_pool.has_value()) {
      // On the value as it was written, in its dtype; then stored as a
      // convolution's output is, below, or reordered into y.
      memory src = values[stage.input].forms.front();
      const MaxPool& pool = CachedMaxPool(src.get_desc(), g[i]);
      memory dst = Memory(pool.dst, &out.buffers.emplace_back());
      pool.pool.execute(stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
      if (last) {
        memory y_user = Memory(memory::desc({g[i].n, g[i].oc, g[i].oh, g[i].ow},
                                            TypeOf(y), tag::abcd),
                               y.raw_data());
        CachedReorder(pool.dst, y_user.get_desc()).execute(stream, dst, y_user);
        break;
      }
      out.forms.push_back(dst);
    } else {
      const Plan& p = *plans[i];
      const memory in = values[stage.input].As(stream, p.x_prim);
      memory w_prim = WeightsIn(stream, p, stage.weight, &w16, &w_buf);
      // Where the stage's output is written: a new value in the primitive's
      // layout, or, for the last stage, y or a buffer reordered into it.
      memory y_user = last ? Memory(p.y_user, y.raw_data()) : memory();
      Tensor& out_buf = last ? y_buf : out.buffers.emplace_back();
      memory dst = last && !p.y_move ? y_user : Memory(p.y_prim, &out_buf);
      if (stage.residual != Conv2dStage::kNone) {
        memory& r = values[stage.residual].forms.front();
        CachedReorder(r.get_desc(), p.y_prim).execute(stream, r, dst);
      }
      std::unordered_map<int, memory> args = {
          {DNNL_ARG_SRC, in}, {DNNL_ARG_WEIGHTS, w_prim}, {DNNL_ARG_DST, dst}};
      if (stage.bias.defined()) {
        args.emplace(DNNL_ARG_BIAS, Memory(p.b_user, stage.bias.raw_data()));
      }
      p.conv.execute(stream, args);
      if (last) {
        if (p.y_move) p.y_move.execute(stream, dst, y_user);
        break;
      }
      out.forms.push_back(dst);
    }
    // Stored in the stage's dtype, as OneDnnConv2dForward stores it (its
    // primitive writes float32 where it adds a float32 residual; a pooling
    // writes its input's dtype).
    const memory::desc written = out.forms.front().get_desc();
    if (written.data_type() != StoredType(stage)) {
      memory::desc stored = written;
      stored.data.data_type = static_cast<dnnl_data_type_t>(StoredType(stage));
      out.As(stream, stored);
      out.forms.erase(out.forms.begin());
      out.buffers.erase(out.buffers.begin());
    }
    values[i + 1] = std::move(out);
    // oneDNN's CPU stream has run a primitive when its execute returns, so
    // a value is freed once the last stage that reads it is done.
    for (size_t v = 0; v <= i; ++v) {
      if (last_reads[v] == static_cast<int>(i)) values[v] = ChainValue();
    }
  }
  stream.wait();
  return true;
}

namespace {

// The two gradients' primitives, given dy as the primitive reads it.
void RunBackwardInput(dnnl::stream& stream, const Plan& p, const memory& dy,
                      const Tensor& w, Tensor& dx) {
  Tensor w16, w_buf, x_buf;
  memory w_prim = WeightsIn(stream, p, w, &w16, &w_buf);
  memory x_user = Memory(p.x_user, dx.raw_data());
  memory x_prim = p.x_move ? Memory(p.x_prim, &x_buf) : x_user;
  p.conv.execute(stream, {{DNNL_ARG_DIFF_DST, dy},
                          {DNNL_ARG_WEIGHTS, w_prim},
                          {DNNL_ARG_DIFF_SRC, x_prim}});
  if (p.x_move) p.x_move.execute(stream, x_prim, x_user);
}

void RunBackwardWeight(dnnl::stream& stream, const Plan& p, const memory& dy,
                       const Tensor& x, Tensor& dw) {
  Tensor x_buf, w_buf;
  memory x_prim =
      In(stream, p.x_move, p.x_prim, Memory(p.x_user, x.raw_data()), &x_buf);
  memory w_user = Memory(p.w_user, dw.raw_data());
  memory w_prim = p.w_move ? Memory(p.w_prim, &w_buf) : w_user;
  p.conv.execute(stream, {{DNNL_ARG_SRC, x_prim},
                          {DNNL_ARG_DIFF_DST, dy},
                          {DNNL_ARG_DIFF_WEIGHTS, w_prim}});
  if (p.w_move) p.w_move.execute(stream, w_prim, w_user);
}

const Plan* InputPlan(const ConvGeometry& g, const Tensor& dy,
                      const Tensor& dx) {
  return PlanFor(
      KeyOf(ConvPass::kInputGradient, g, dx, dy, Tensor(), false, false));
}

const Plan* WeightPlan(const ConvGeometry& g, const Tensor& dy,
                       const Tensor& x) {
  return PlanFor(
      KeyOf(ConvPass::kWeightGradient, g, x, dy, Tensor(), false, false));
}

}  // namespace

bool OneDnnConv2dBackwardInput(const ConvGeometry& g, const Tensor& dy,
                               const Tensor& w, Tensor& dx) {
  const Plan* p = InputPlan(g, dy, dx);
  if (p == nullptr) return false;
  dnnl::stream stream(Engine());
  Tensor y_buf;
  RunBackwardInput(stream, *p,
                   In(stream, p->y_move, p->y_prim,
                      Memory(p->y_user, dy.raw_data()), &y_buf),
                   w, dx);
  stream.wait();
  return true;
}

bool OneDnnConv2dBackwardWeight(const ConvGeometry& g, const Tensor& dy,
                                const Tensor& x, Tensor& dw) {
  const Plan* p = WeightPlan(g, dy, x);
  if (p == nullptr) return false;
  dnnl::stream stream(Engine());
  Tensor y_buf;
  RunBackwardWeight(stream, *p,
                    In(stream, p->y_move, p->y_prim,
                       Memory(p->y_user, dy.raw_data()), &y_buf),
                    x, dw);
  stream.wait();
  return true;
}

bool OneDnnConv2dBackward(const ConvGeometry& g, const Tensor& dy,
                          const Tensor& x, const Tensor& w, Tensor& dx,
                          Tensor& dw) {
  const Plan* in = InputPlan(g, dy, dx);
  const Plan* wt = WeightPlan(g, dy, x);
  if (in == nullptr || wt == nullptr) return false;
  dnnl::stream stream(Engine());
  const memory y_user = Memory(in->y_user, dy.raw_data());
  Tensor y_buf, y_buf2;
  const memory y_in = In(stream, in->y_move, in->y_prim, y_user, &y_buf);
  const memory y_wt = wt->y_prim == in->y_prim
                          ? y_in
                          : In(stream, wt->y_move, wt->y_prim, y_user, &y_buf2);
  RunBackwardInput(stream, *in, y_in, w, dx);
  RunBackwardWeight(stream, *wt, y_wt, x, dw);
  stream.wait();
  return true;
}

}  // namespace dive::conv_internal
