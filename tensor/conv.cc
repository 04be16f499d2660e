#include "tensor/conv.h"

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <type_traits>
#include <vector>

#include "glog/logging.h"
#include "tensor/bf16.h"
#include "tensor/conv_onednn.h"
#include "tensor/cpu.h"
#include "tensor/gemm.h"
#include "tensor/im2col.h"
#include "tensor/kernel_util.h"
#include "tensor/memory_format.h"
#include "tensor/parallel.h"

namespace dive {
namespace {

using conv_internal::ChainLastReads;
using conv_internal::Col2Im;
using conv_internal::ConvGeometry;
using conv_internal::Im2ColRhs;
using conv_internal::OneDnnConv2dBackward;
using conv_internal::OneDnnConv2dBackwardInput;
using conv_internal::OneDnnConv2dBackwardWeight;
using conv_internal::OneDnnConv2dChainForward;
using conv_internal::OneDnnConv2dForward;
using conv_internal::OneDnnTakes;
using conv_internal::OneDnnTakesChain;
using conv_internal::PlanesRhs;
using kernel_internal::CeilDiv;
using kernel_internal::CheckFloat4D;
using kernel_internal::CheckShape4D;
using kernel_internal::MakeWindow2d;
using kernel_internal::OutSize;
using kernel_internal::ParallelFor;
using kernel_internal::Scratch;
using kernel_internal::Shapes;
using kernel_internal::SumDouble;
using kernel_internal::ThreadsIf;
using kernel_internal::WithActivation;

ConvGeometry MakeGeometry(const char* op, const Shape& x, const Shape& w,
                          const Conv2dParams& p) {
  const std::string shapes = Shapes("x", x, "w", w);
  CHECK_EQ(x[1], w[1]) << op << ": input has " << x[1]
                       << " channels but weight expects " << w[1] << shapes;
  return ConvGeometry{
      MakeWindow2d(op,
                   {.h = x[2],
                    .w = x[3],
                    .kh = w[2],
                    .kw = w[3],
                    .sh = p.stride_h,
                    .sw = p.stride_w,
                    .ph = p.pad_h,
                    .pw = p.pad_w},
                   shapes),
      /*n=*/x[0], /*c=*/x[1], /*oc=*/w[0]};
}

// `bias` made contiguous, after checking that it is undefined or float32
// [OC] for w [OC, C, KH, KW].
Tensor CheckedBias(const char* op, const Tensor& bias, const Tensor& w) {
  if (!bias.defined()) return Tensor();
  CHECK(bias.dtype() == DType::kFloat32)
      << op << ": bias must be float32, got " << DTypeName(bias.dtype());
  CHECK(bias.rank() == 1 && bias.dim(0) == w.dim(0))
      << op << ": bias has shape " << bias.shape() << " but weight has "
      << w.dim(0) << " output channels"
      << Shapes("w", w.shape(), "bias", bias.shape());
  return bias.Contiguous();
}

// `stages` with each input numbered (Conv2dStage::kPrevious resolved), after
// checking that each stage reads values before it.
std::vector<Conv2dStage> NumberedStages(
    const char* op, const std::vector<Conv2dStage>& stages) {
  CHECK(!stages.empty()) << op << ": a chain of no convolutions";
  std::vector<Conv2dStage> numbered = stages;
  for (int i = 0; i < static_cast<int>(numbered.size()); ++i) {
    Conv2dStage& stage = numbered[i];
    if (stage.input == Conv2dStage::kPrevious) stage.input = i;
    CHECK(stage.input >= 0 && stage.input <= i)
        << op << ": stage " << i << " convolves value " << stage.input
        << "; it can read x (0) or an earlier stage's output (1 to " << i
        << ")";
    CHECK(stage.residual >= Conv2dStage::kNone && stage.residual <= i)
        << op << ": stage " << i << " adds value " << stage.residual
        << "; it can add x (0) or an earlier stage's output (1 to " << i
        << "), or none (-1)";
    CHECK(!stage.max_pool.has_value() || stage.residual == Conv2dStage::kNone)
        << op << ": stage " << i << " is a max pooling; it cannot add value "
        << stage.residual;
  }
  return numbered;
}

// A max pooling of x by `p` as a chain stage's geometry: the window as the
// kernel, the channels kept.
ConvGeometry PoolGeometry(const char* op, const Shape& x,
                          const Pool2dParams& p) {
  const Shape y = Pool2dOutputShape(op, x, p);
  ConvGeometry g;
  g.n = x[0];
  g.c = g.oc = x[1];
  g.h = x[2];
  g.w = x[3];
  g.kh = p.kernel_h;
  g.kw = p.kernel_w;
  g.sh = p.stride_h;
  g.sw = p.stride_w;
  g.ph = p.pad_h;
  g.pw = p.pad_w;
  g.oh = y[2];
  g.ow = y[3];
  return g;
}

// The geometry of each stage of a chain of numbered stages on x, after
// checking each residual's shape.
std::vector<ConvGeometry> ChainGeometry(
    const char* op, const Shape& x, const std::vector<Conv2dStage>& stages) {
  CheckShape4D(op, "x", x);
  std::vector<ConvGeometry> g;
  std::vector<Shape> values = {x};
  for (size_t i = 0; i < stages.size(); ++i) {
    const Conv2dStage& stage = stages[i];
    if (stage.max_pool.has_value()) {
      g.push_back(PoolGeometry(op, values[stage.input], *stage.max_pool));
    } else {
      CheckShape4D(op, "w", stage.weight.shape());
      g.push_back(MakeGeometry(op, values[stage.input], stage.weight.shape(),
                               stage.params));
    }
    values.push_back(Shape{g.back().n, g.back().oc, g.back().oh, g.back().ow});
    CHECK(stage.residual == Conv2dStage::kNone ||
          values[stage.residual] == values.back())
        << op << ": stage " << i << " gives " << values.back()
        << " but adds value " << stage.residual << " of shape "
        << values[stage.residual];
  }
  return g;
}

void CheckGradOutput(const char* op, const Tensor& dy, const ConvGeometry& g) {
  const Shape expected{g.n, g.oc, g.oh, g.ow};
  CHECK(dy.shape() == expected)
      << op << ": dy has shape " << dy.shape() << " but the convolution of x ["
      << g.n << ", " << g.c << ", " << g.h << ", " << g.w << "] with w ["
      << g.oc << ", " << g.c << ", " << g.kh << ", " << g.kw << "] gives "
      << expected;
}

// The gradient a backward pass computes.
enum class GradOf { kInput, kWeight };

// The checks both backward passes start with: dy and the operand they are
// given (w for the input's gradient, x for the weight's) are float 4-D
// tensors, the other operand's `shape` is 4-D, and dy has the shape the
// convolution gives. Returns the convolution's geometry.
ConvGeometry CheckBackward(const char* op, GradOf grad_of, const Tensor& dy,
                           const Tensor& operand, const Shape& shape,
                           const Conv2dParams& p) {
  const bool input = grad_of == GradOf::kInput;
  CheckFloat4D(op, "dy", dy);
  CheckFloat4D(op, input ? "w" : "x", operand, /*bf16_ok=*/!input);
  CheckShape4D(op, input ? "x_shape" : "w_shape", shape);
  const ConvGeometry g = input ? MakeGeometry(op, shape, operand.shape(), p)
                               : MakeGeometry(op, operand.shape(), shape, p);
  CheckGradOutput(op, dy, g);
  return g;
}

// Parallel over the batch only when there are enough images for every
// thread; otherwise images run one after another and the GEMM itself may use
// the threads (Eigen parallelizes a GEMM called outside a parallel region).
bool BatchParallel(int64_t n) { return n > 1 && n >= omp_get_max_threads(); }

// ---- Several images per GEMM ------------------------------------------------
//
// The GEMM computes C in tiles of GemmTileColumns() (64) columns, so one GEMM
// per image wastes the padding of its last tile: ResNet's 12x12 maps fill
// 144 of 192 columns, its 3x3 maps 9 of 64. The kernels may instead lay the
// columns of `cs` images side by side, [CKK, cs*OH*OW], and run one GEMM per
// chunk of images (scattering or gathering the [OC, cs*OH*OW] side to and
// from the NCHW layout); ChunkSize picks cs.

// Upper bound on a chunk's column buffer, in floats (16 MiB).
constexpr int64_t kChunkMaxColFloats = int64_t{4} << 20;

// The most images a chunk may hold: the batch, within kChunkMaxColFloats of
// columns [C*KH*KW, images*OH*OW].
int64_t MaxChunkImages(const ConvGeometry& g) {
  return std::min(
      g.n, std::max<int64_t>(1, kChunkMaxColFloats /
                                    std::max<int64_t>(1, g.Ckk() * g.Ohw())));
}

// The size of the fewest chunks of at most cs of n images, balanced.
int64_t BalancedChunk(int64_t n, int64_t cs) {
  return CeilDiv(n, CeilDiv(n, cs));
}

// Images per GEMM whose columns are the output positions (forward and input
// gradient), for GEMMs of `rows` rows: the cs that gives the busiest thread
// the fewest tile rows (column tiles x rows), the smallest such cs on ties
// (1: one GEMM per image).
int64_t ChunkSize(const ConvGeometry& g, int64_t rows) {
  const int64_t ohw = g.Ohw(), tile = GemmTileColumns();
  if (g.n <= 1 || ohw <= 0) return 1;
  const int64_t threads = omp_get_max_threads(), max_cs = MaxChunkImages(g);
  int64_t best = 1, best_cost = std::numeric_limits<int64_t>::max();
  for (int64_t cs = 1; cs <= max_cs; ++cs) {
    const int64_t chunks = CeilDiv(g.n, cs), cols = cs * ohw;
    const int64_t tiles = CeilDiv(cols, tile);
    // Chunks run in parallel when there is one per thread; otherwise each
    // GEMM splits its columns (wide C) or its rows between the threads.
    int64_t cost;
    if (chunks >= threads) {
      cost = CeilDiv(chunks, threads) * tiles * rows;
    } else if (cols >= rows) {
      cost = chunks * CeilDiv(tiles, threads) * rows;
    } else {
      cost = chunks * tiles * CeilDiv(rows, threads);
    }
    if (cost < best_cost) {
      best = cs;
      best_cost = cost;
    }
  }
  return BalancedChunk(g.n, best);
}

// Images per GEMM of the weight gradient, whose columns are the weights and
// whose images are summed over: maps under 1024 positions are grouped to
// about 1024 summed positions per GemmNT (its block along k; 1024 beat 768
// and 512 on AlexNet's and ResNet's layers), larger maps keep a GEMM each.
int64_t WeightChunkSize(const ConvGeometry& g) {
  constexpr int64_t kCols = 1024;
  const int64_t ohw = g.Ohw();
  if (g.n <= 1 || ohw <= 0 || ohw >= kCols) return 1;
  return BalancedChunk(g.n, std::min(CeilDiv(kCols, ohw), MaxChunkImages(g)));
}

// dy images [c0, c0 + cn) -> dyc [OC, cn*OH*OW] (image k at column k*OH*OW).
void GatherOut(const ConvGeometry& g, const float* __restrict dy, int64_t c0,
               int64_t cn, float* __restrict dyc) {
  const int64_t ohw = g.Ohw(), ld = cn * ohw;
  for (int64_t k = 0; k < cn; ++k) {
    const float* __restrict src = dy + (c0 + k) * g.OutPlane();
    for (int64_t o = 0; o < g.oc; ++o) {
      std::copy(src + o * ohw, src + (o + 1) * ohw, dyc + o * ld + k * ohw);
    }
  }
}

// Runs chunk(c0, cn, thread_slot) for every chunk of cs images of n, in
// parallel over chunks when there are enough of them for every thread (the
// slot is then the thread number), else one after another in slot 0 (and the
// GEMM itself may use the threads). Returns the number of slots used.
template <typename F>
int RunChunks(int64_t n, int64_t cs, const F& chunk) {
  const int64_t chunks = CeilDiv(n, cs);
  const int threads = BatchParallel(chunks) ? omp_get_max_threads() : 1;
  ParallelFor(chunks, threads, [&](int64_t begin, int64_t end, int slot) {
    for (int64_t i = begin; i < end; ++i) {
      chunk(i * cs, std::min(cs, n - i * cs), slot);
    }
  });
  return threads;
}

// Per-slot scratch buffers, allocated lazily by the slot's own thread.
class SlotBuffers {
 public:
  explicit SlotBuffers(int64_t size)
      : size_(size), bufs_(static_cast<size_t>(omp_get_max_threads())) {}
  float* Get(int slot) {
    auto& b = bufs_[static_cast<size_t>(slot)];
    if (!b.defined()) b = Scratch(size_);
    return b.data();
  }

 private:
  int64_t size_;
  std::vector<Tensor> bufs_;
};

// Runs image(n, col) for every image of the batch, in parallel over the
// batch when it has an image per thread, each thread with its own im2col
// buffer of `col_size` floats.
template <typename F>
void ForEachImage(int64_t batch, int64_t col_size, const F& image) {
  const int threads = BatchParallel(batch) ? omp_get_max_threads() : 1;
  ParallelFor(batch, threads, [&](int64_t begin, int64_t end, int) {
    Tensor col = Scratch(col_size);
    for (int64_t n = begin; n < end; ++n) image(n, col.data());
  });
}

// dst[u] = act(src[u] + bias + residual[u]) for u < len, in dst's dtype
// (float32, or bf16 rounded to nearest even), without the bias or the
// residual (float32 or bf16) where the convolution has none: the arithmetic
// of the GEMM's epilogue (GemmEpilogue), bit for bit. One instance per
// combination, so that each is a plain vector loop.
using FinishRunFn = void (*)(const float* src, int64_t len, float bias,
                             const void* residual, void* dst);

template <typename Out, typename Res, bool kBias, bool kRelu>
void FinishRunAs(const float* __restrict src, int64_t len, float bias,
                 const void* residual, void* dst) {
  const Res* __restrict res = static_cast<const Res*>(residual);
  Out* __restrict out = static_cast<Out*>(dst);
  for (int64_t u = 0; u < len; ++u) {
    float v = src[u];
    if constexpr (!std::is_void_v<Res>) {
      v = v + bias + static_cast<float>(res[u]);
    } else if constexpr (kBias) {
      v += bias;
    }
    if constexpr (kRelu) v = v < 0.0f ? 0.0f : v;
    if constexpr (std::is_same_v<Out, bfloat16>) {
      out[u].bits = FloatToBf16(v);
    } else {
      out[u] = v;
    }
  }
}

template <typename Out, typename Res>
FinishRunFn FinishRunFor(bool bias, bool relu) {
  if (bias) {
    return relu ? FinishRunAs<Out, Res, true, true>
                : FinishRunAs<Out, Res, true, false>;
  }
  return relu ? FinishRunAs<Out, Res, false, true>
              : FinishRunAs<Out, Res, false, false>;
}

// The instance for an output of `out` and a residual of `residual`
// (undefined: none).
FinishRunFn FinishRunFor(DType out, const Tensor& residual, bool bias,
                         bool relu) {
  const auto with_out = [&](auto* o) {
    using Out = std::remove_pointer_t<decltype(o)>;
    if (!residual.defined()) return FinishRunFor<Out, void>(bias, relu);
    if (residual.dtype() == DType::kBfloat16) {
      return FinishRunFor<Out, bfloat16>(bias, relu);
    }
    return FinishRunFor<Out, float>(bias, relu);
  };
  return out == DType::kBfloat16 ? with_out(static_cast<bfloat16*>(nullptr))
                                 : with_out(static_cast<float*>(nullptr));
}

ConvLibrary LibraryFromEnvironment() {
  const char* value = std::getenv("DIVE_CONV_LIBRARY");
  if (value == nullptr || value == std::string("auto")) {
    return ConvLibrary::kAuto;
  }
  if (value == std::string("dive")) return ConvLibrary::kDive;
  if (value == std::string("onednn")) return ConvLibrary::kOneDnn;
  LOG(FATAL) << "DIVE_CONV_LIBRARY=" << value
             << " is not one of auto, dive, onednn";
  return ConvLibrary::kAuto;
}

std::atomic<ConvLibrary>& Library() {
  static std::atomic<ConvLibrary> library(LibraryFromEnvironment());
  return library;
}

MemoryFormat FormatFromEnvironment() {
  const char* value = std::getenv("DIVE_CONV_MEMORY_FORMAT");
  if (value == nullptr || value == std::string("contiguous")) {
    return MemoryFormat::kContiguous;
  }
  if (value == std::string("channels_last")) {
    return MemoryFormat::kChannelsLast;
  }
  LOG(FATAL) << "DIVE_CONV_MEMORY_FORMAT=" << value
             << " is not one of contiguous, channels_last";
  return MemoryFormat::kContiguous;
}

std::atomic<MemoryFormat>& Format() {
  static std::atomic<MemoryFormat> format(FormatFromEnvironment());
  return format;
}

// Whether the activations of a convolution that reads `t` (x or dy) are
// channels-last where oneDNN runs it: `t` is, or they are chosen so.
bool ChannelsLast(const Tensor& t) {
  return GetConvMemoryFormat() == MemoryFormat::kChannelsLast ||
         MemoryFormatOf(t) == MemoryFormat::kChannelsLast;
}

// The layout of what oneDNN writes (a forward output, an input gradient)
// from `in` (x, dy): channels-last where `in` is or where chosen so.
MemoryFormat OneDnnOutputFormat(const Tensor& in) {
  return GetConvMemoryFormat() == MemoryFormat::kChannelsLast
             ? MemoryFormat::kChannelsLast
             : MemoryFormatOf(in);
}

}  // namespace

ConvLibrary GetConvLibrary() { return Library().load(); }

void SetConvLibrary(ConvLibrary library) { Library().store(library); }

MemoryFormat GetConvMemoryFormat() { return Format().load(); }

void SetConvMemoryFormat(MemoryFormat format) { Format().store(format); }

bool Conv2dUsesOneDnn(const Shape& x, const Shape& w, const Conv2dParams& p,
                      ConvPass pass, MemoryFormat activations) {
  CheckShape4D("Conv2dUsesOneDnn", "x", x);
  CheckShape4D("Conv2dUsesOneDnn", "w", w);
  return OneDnnTakes(MakeGeometry("Conv2dUsesOneDnn", x, w, p), pass,
                     activations == MemoryFormat::kChannelsLast ||
                         GetConvMemoryFormat() == MemoryFormat::kChannelsLast);
}

bool Conv2dChainUsesOneDnn(const Shape& x,
                           const std::vector<Conv2dStage>& stages) {
  static constexpr char kOp[] = "Conv2dChainUsesOneDnn";
  const std::vector<Conv2dStage> numbered = NumberedStages(kOp, stages);
  return OneDnnTakesChain(ChainGeometry(kOp, x, numbered), numbered);
}

Tensor Conv2dChainForward(const Tensor& x_in,
                          const std::vector<Conv2dStage>& stages, DType dtype) {
  static constexpr char kOp[] = "Conv2dChainForward";
  CheckFloat4D(kOp, "x", x_in, /*bf16_ok=*/true);
  CHECK(dtype == DType::kFloat32 || dtype == DType::kBfloat16)
      << kOp << ": the output dtype must be float32 or bfloat16, got "
      << DTypeName(dtype);
  std::vector<Conv2dStage> checked = NumberedStages(kOp, stages);
  const std::vector<ConvGeometry> g = ChainGeometry(kOp, x_in.shape(), checked);
  const DType between = GetMatmulPrecision() == MatmulPrecision::kBfloat16
                            ? DType::kBfloat16
                            : DType::kFloat32;
  for (size_t i = 0; i < checked.size(); ++i) {
    Conv2dStage& stage = checked[i];
    if (!stage.max_pool.has_value()) {
      CheckFloat4D(kOp, "w", stage.weight);
      stage.bias = CheckedBias(kOp, stage.bias, stage.weight);
      stage.weight = stage.weight.Contiguous();
    }
    stage.dtype =
        i + 1 == checked.size() ? dtype : stage.dtype.value_or(between);
    CHECK(stage.dtype == DType::kFloat32 || stage.dtype == DType::kBfloat16)
        << kOp << ": stage " << i << " would store its output in "
        << DTypeName(*stage.dtype) << "; it must be float32 or bfloat16";
  }
  if (OneDnnTakesChain(g, checked)) {
    const ConvGeometry& last = g.back();
    Tensor y = Tensor::Empty({last.n, last.oc, last.oh, last.ow}, dtype);
    if (OneDnnConv2dChainForward(g, x_in.Contiguous(), checked, y)) return y;
  }
  const std::vector<int> last_reads = ChainLastReads(checked);
  std::vector<Tensor> values = {x_in};
  for (size_t i = 0; i < checked.size(); ++i) {
    const Conv2dStage& stage = checked[i];
    if (stage.max_pool.has_value()) {
      Tensor pooled =
          MaxPool2dForward(values[stage.input], *stage.max_pool, nullptr);
      values.push_back(
          *stage.dtype == DType::kFloat32 ? pooled : pooled.To(*stage.dtype));
    } else {
      values.push_back(Conv2dForward(
          values[stage.input], stage.weight, stage.bias, stage.params,
          {.residual = stage.residual == Conv2dStage::kNone
                           ? Tensor()
                           : values[stage.residual],
           .relu = stage.relu,
           .dtype = *stage.dtype}));
    }
    for (size_t v = 0; v <= i; ++v) {
      if (last_reads[v] == static_cast<int>(i)) values[v] = Tensor();
    }
  }
  return values.back();
}

int64_t ConvOutSize(int64_t in, int64_t kernel, int64_t stride, int64_t pad) {
  return OutSize("ConvOutSize", "size", in, kernel, stride, pad, "");
}

Tensor Conv2dForward(const Tensor& x, const Tensor& w, const Tensor& bias,
                     const Conv2dParams& p) {
  return Conv2dForward(x, w, bias, p, Conv2dEpilogue{});
}

Tensor Conv2dForward(const Tensor& x_in, const Tensor& w_in,
                     const Tensor& bias_in, const Conv2dParams& p,
                     const Conv2dEpilogue& epilogue) {
  static constexpr char kOp[] = "Conv2dForward";
  CheckFloat4D(kOp, "x", x_in, /*bf16_ok=*/true);
  CheckFloat4D(kOp, "w", w_in);
  CHECK(epilogue.dtype == DType::kFloat32 || epilogue.dtype == DType::kBfloat16)
      << kOp << ": the output dtype must be float32 or bfloat16, got "
      << DTypeName(epilogue.dtype);
  const ConvGeometry g = MakeGeometry(kOp, x_in.shape(), w_in.shape(), p);
  const Tensor w = w_in.Contiguous();
  const Tensor bias = CheckedBias(kOp, bias_in, w);
  const float* pb = bias.defined() ? bias.data() : nullptr;

  const Shape y_shape = {g.n, g.oc, g.oh, g.ow};
  const Tensor& residual_in = epilogue.residual;
  CHECK(!residual_in.defined() || ((residual_in.dtype() == DType::kFloat32 ||
                                    residual_in.dtype() == DType::kBfloat16) &&
                                   residual_in.shape() == y_shape))
      << kOp << ": the residual is " << DTypeName(residual_in.dtype()) << " "
      << residual_in.shape() << " but the output is "
      << DTypeName(epilogue.dtype) << " " << y_shape
      << Shapes("x", x_in.shape(), "w", w.shape());
  if (OneDnnTakes(g, ConvPass::kForward, ChannelsLast(x_in))) {
    // oneDNN reads and writes channels-last tensors as they lie.
    const Tensor x = DenseOrContiguous(x_in);
    Tensor y = EmptyIn(y_shape, epilogue.dtype, OneDnnOutputFormat(x));
    if (OneDnnConv2dForward(
            g, x, w, bias,
            residual_in.defined() ? DenseOrContiguous(residual_in) : Tensor(),
            epilogue.relu, y)) {
      return y;
    }
  }
  const Tensor x = x_in.Contiguous();
  Tensor y = Tensor::Empty(y_shape, epilogue.dtype);
  const Tensor residual =
      residual_in.defined() ? residual_in.Contiguous() : Tensor();
  const int64_t ohw = g.Ohw();
  // Where the GEMM's C is y itself: float32 out, a float32 residual (or
  // none) and one GEMM per image. Otherwise C is scratch, and each finished
  // tile goes to y through `finish`.
  const bool c_is_y =
      epilogue.dtype == DType::kFloat32 &&
      (!residual.defined() || residual.dtype() == DType::kFloat32);
  // Finishes rows [i0, i0 + rows) x columns [j0, j0 + cols) of C, whose
  // column j is position j % OH*OW of image first + j / OH*OW: bias,
  // residual and ReLU, then stored to y in its dtype.
  const FinishRunFn finish_run =
      FinishRunFor(epilogue.dtype, residual, pb != nullptr, epilogue.relu);
  const size_t out_size = DTypeSize(epilogue.dtype);
  const size_t res_size = residual.defined() ? DTypeSize(residual.dtype()) : 0;
  char* const out_base = static_cast<char*>(y.raw_data());
  const char* const res_base =
      residual.defined() ? static_cast<const char*>(residual.raw_data())
                         : nullptr;
  const auto finish = [&](int64_t first, int64_t i0, int64_t rows, int64_t j0,
                          int64_t cols, const float* c, int64_t ldc) {
    for (int64_t j = j0; j < j0 + cols;) {
      const int64_t image = first + j / ohw, t = j % ohw;
      const int64_t len = std::min(ohw - t, j0 + cols - j);
      for (int64_t i = i0; i < i0 + rows; ++i) {
        const int64_t at = image * g.OutPlane() + i * ohw + t;
        finish_run(c + i * ldc + j, len, pb != nullptr ? pb[i] : 0.0f,
                   res_base != nullptr ? res_base + at * res_size : nullptr,
                   out_base + at * out_size);
      }
      j += len;
    }
  };
  // The weights [OC, CKK], packed once for every image (into a buffer of
  // this thread's, shared by the reference with the threads of the batch
  // loop), or once for good where they are frozen.
  thread_local GemmLhs packed;
  const GemmLhs& weights = PackWeights(w, g.oc, g.Ckk(), packed);

  WithActivation(x, [&](const auto* px) {
    const int64_t cs = ChunkSize(g, g.oc);
    if (cs > 1) {
      SlotBuffers outs(g.oc * cs * ohw);
      RunChunks(g.n, cs, [&](int64_t c0, int64_t cn, int slot) {
        const int64_t ld = cn * ohw;
        // out [OC, cn*OH*OW] = w [OC, CKK] * col [CKK, cn*OH*OW], each
        // finished tile to NCHW y.
        GemmEpilogue e;
        const auto store = [&](int64_t i0, int64_t rows, int64_t j0,
                               int64_t cols, const float* c, int64_t ldc) {
          finish(c0, i0, rows, j0, cols, c, ldc);
        };
        e.store.emplace(store);
        Gemm(weights, ld, Im2ColRhs(g, px + c0 * g.InPlane()), 0.0f,
             outs.Get(slot), ld, e);
      });
      return;
    }
    // One GEMM per image: straight into y with the GEMM's own epilogue, or
    // through a buffer of this thread's and `finish`.
    ForEachImage(g.n, c_is_y ? 0 : g.OutPlane(), [&](int64_t n, float* buf) {
      // y_n [OC, OH*OW] = w [OC, CKK] * col [CKK, OH*OW], then the epilogue.
      const int64_t offset = n * g.OutPlane();
      GemmEpilogue e;
      float* dst = buf;
      const auto store = [&](int64_t i0, int64_t rows, int64_t j0, int64_t cols,
                             const float* c, int64_t ldc) {
        finish(n, i0, rows, j0, cols, c, ldc);
      };
      if (c_is_y) {
        dst = y.data<float>() + offset;
        e.row_bias = pb;
        e.addend = residual.defined() ? residual.data() + offset : nullptr;
        e.ld_addend = ohw;
        e.relu = epilogue.relu;
      } else {
        e.store.emplace(store);
      }
      Gemm(weights, ohw, Im2ColRhs(g, px + n * g.InPlane()), 0.0f, dst, ohw, e);
    });
  });
  return y;
}

Tensor Conv2dBackwardInput(const Tensor& dy_in, const Tensor& w_in,
                           const Shape& x_shape, const Conv2dParams& p) {
  static constexpr char kOp[] = "Conv2dBackwardInput";
  const ConvGeometry g =
      CheckBackward(kOp, GradOf::kInput, dy_in, w_in, x_shape, p);
  const Tensor w = w_in.Contiguous();
  if (OneDnnTakes(g, ConvPass::kInputGradient, ChannelsLast(dy_in))) {
    const Tensor dy = DenseOrContiguous(dy_in);
    Tensor dx = EmptyIn(x_shape, DType::kFloat32, OneDnnOutputFormat(dy));
    if (OneDnnConv2dBackwardInput(g, dy, w, dx)) return dx;
  }
  const Tensor dy = dy_in.Contiguous();

  const bool direct = g.Direct();
  if (!direct && g.sh == 1 && g.sw == 1 && g.ph < g.kh && g.pw < g.kw &&
      g.c >= 16) {
    // With stride 1 the input gradient is itself a convolution: dy, padded
    // by k - 1 - p, with the kernels flipped and in/out channels swapped.
    // The forward path computes it without a column buffer or col2im. Its
    // GEMM has C rows, too few below 16 to pay for the im2col of dy
    // (LeNet's 6-channel layer: 1.4x slower).
    Tensor flipped = Tensor::Empty({g.c, g.oc, g.kh, g.kw});
    const float* pw = w.data();
    float* pf = flipped.data();
    const int64_t taps = g.kh * g.kw;
    ParallelFor(g.c, ThreadsIf(g.c * g.oc * taps > (1 << 16)),
                [&](int64_t begin, int64_t end, int) {
                  for (int64_t c = begin; c < end; ++c) {
                    for (int64_t o = 0; o < g.oc; ++o) {
                      for (int64_t t = 0; t < taps; ++t) {
                        pf[(c * g.oc + o) * taps + t] =
                            pw[(o * g.c + c) * taps + taps - 1 - t];
                      }
                    }
                  }
                });
    Conv2dParams q;
    q.pad_h = g.kh - 1 - g.ph;
    q.pad_w = g.kw - 1 - g.pw;
    return Conv2dForward(dy, flipped, Tensor(), q);
  }
  const int64_t cs = ChunkSize(g, g.Ckk());
  Tensor dx =
      direct && cs == 1 ? Tensor::Empty(x_shape) : Tensor::Zeros(x_shape);
  const float* pdy = dy.data();
  float* pdx = dx.data();
  const int64_t ohw = g.Ohw(), ckk = g.Ckk();
  // w^T [CKK, OC], packed once for every image (as in Conv2dForward).
  thread_local GemmLhs packed;
  GemmLhs& weights_t = packed;
  weights_t.Pack(true, ckk, g.oc, w.data(), ckk);

  if (cs > 1) {
    SlotBuffers cols(ckk * cs * ohw);
    RunChunks(g.n, cs, [&](int64_t c0, int64_t cn, int slot) {
      float* col = cols.Get(slot);
      const int64_t ld = cn * ohw;
      // dcol [CKK, cn*OH*OW] = w^T [CKK, OC] * dy [OC, cn*OH*OW].
      Gemm(weights_t, ld, PlanesRhs(pdy + c0 * g.OutPlane(), g.OutPlane(), ohw),
           0.0f, col, ld);
      for (int64_t k = 0; k < cn; ++k) {
        Col2Im(g, col + k * ohw, pdx + (c0 + k) * g.InPlane(), ld);
      }
    });
    return dx;
  }

  ForEachImage(g.n, direct ? 0 : ckk * ohw, [&](int64_t n, float* col) {
    float* dxn = pdx + n * g.InPlane();
    // dcol [CKK, OH*OW] = w^T [CKK, OC] * dy_n [OC, OH*OW].
    Gemm(weights_t, ohw, PlanesRhs(pdy + n * g.OutPlane(), g.OutPlane(), ohw),
         0.0f, direct ? dxn : col, ohw);
    if (!direct) Col2Im(g, col, dxn, ohw);
  });
  return dx;
}

namespace {

// Conv2dBackwardWeight with x float32 or bf16 (WithActivation).
template <typename T>
Tensor BackwardWeight(const ConvGeometry& g, const Tensor& dy, const T* px,
                      const Shape& w_shape) {
  Tensor dw = Tensor::Zeros(w_shape);
  const float* pdy = dy.data();
  float* pdw = dw.data();
  const int64_t ohw = g.Ohw(), ckk = g.Ckk(), wsize = g.oc * ckk;

  // acc [OC, CKK] += dy [OC, images*OH*OW] * col^T [images*OH*OW, CKK], with
  // dy of the images given as one [OC, images*OH*OW] matrix.
  auto accumulate = [&](const float* dys, const T* xs, int64_t images,
                        float* acc) {
    const int64_t cols = images * ohw;
    GemmNT(g.oc, ckk, cols, dys, cols, Im2ColRhs(g, xs), 1.0f, acc, ckk);
  };

  // Each thread sums its images into its own partial dw (slot 0: dw itself);
  // the partials are added at the end (dw is small next to the columns).
  const int threads = omp_get_max_threads();
  Tensor partial;
  auto slot_acc = [&](int slot) {
    return slot == 0 ? pdw : partial.data() + (slot - 1) * wsize;
  };
  int used = 1;
  const int64_t cs = WeightChunkSize(g);
  if (cs > 1) {
    SlotBuffers dys(g.oc * cs * ohw);
    if (BatchParallel(CeilDiv(g.n, cs))) {
      partial = Tensor::Zeros({threads - 1, wsize});
    }
    used = RunChunks(g.n, cs, [&](int64_t c0, int64_t cn, int slot) {
      float* dyc = dys.Get(slot);
      GatherOut(g, pdy, c0, cn, dyc);
      accumulate(dyc, px + c0 * g.InPlane(), cn, slot_acc(slot));
    });
  } else if (BatchParallel(g.n)) {
    partial = Tensor::Zeros({threads - 1, wsize});
    used = threads;
    ParallelFor(g.n, threads, [&](int64_t begin, int64_t end, int slot) {
      float* acc = slot_acc(slot);
      for (int64_t n = begin; n < end; ++n) {
        accumulate(pdy + n * g.OutPlane(), px + n * g.InPlane(), 1, acc);
      }
    });
  } else {
    for (int64_t n = 0; n < g.n; ++n) {
      accumulate(pdy + n * g.OutPlane(), px + n * g.InPlane(), 1, pdw);
    }
  }
  if (used > 1) {
    const float* src = partial.data();
    ParallelFor(wsize, ThreadsIf(wsize > (1 << 14)),
                [&](int64_t begin, int64_t end, int) {
                  for (int64_t i = begin; i < end; ++i) {
                    for (int t = 1; t < used; ++t) {
                      pdw[i] += src[(t - 1) * wsize + i];
                    }
                  }
                });
  }
  return dw;
}

// dst[0 : n] = src[0 : n] as Out: float, or bf16 rounded to nearest even.
template <typename Out>
void StoreAs(const float* src, Out* dst, int64_t n) {
  if constexpr (std::is_same_v<Out, bfloat16>) {
    FloatToBf16(src, dst, n);
  } else {
    std::copy(src, src + n, dst);
  }
}

// Over the rows of [rows, c] matrices (a channels-last tensor's positions):
// g = dy where y > 0 (all of dy for Y = void), written as Out (none for Out
// = void), and, unless `bias` is null, each column's sum of g before any
// rounding in double, as float32 into bias[c]. One pass over dy, a few rows
// at a time through a buffer in L1: the mask and the conversion run along
// the rows' contiguous elements, then each row is added to its block's
// sums, in simple loops the compiler vectorizes (one loop doing all three
// it left scalar). Blocks of kBlockRows rows run in parallel and their sums
// are added in block order, so the sums do not depend on the number of
// threads.
template <typename Y, typename Out>
void MaskedRows(const float* dy, const Y* y, Out* g, int64_t rows, int64_t c,
                float* bias) {
  constexpr int64_t kBlockRows = 256, kChunk = 4096;
  const int64_t blocks = (rows + kBlockRows - 1) / kBlockRows;
  const int64_t chunk_rows = std::max<int64_t>(1, kChunk / c);
  std::vector<double> part(bias != nullptr ? blocks * c : 0, 0.0);
  ParallelFor(
      blocks, ThreadsIf(rows * c > 32768), [&](int64_t b0, int64_t b1, int) {
        std::vector<float> buffer(std::is_void_v<Y> ? 0 : chunk_rows * c);
        float* __restrict tmp = buffer.data();
        for (int64_t b = b0; b < b1; ++b) {
          const int64_t end = std::min(rows, (b + 1) * kBlockRows);
          for (int64_t r0 = b * kBlockRows; r0 < end; r0 += chunk_rows) {
            const int64_t n = std::min(chunk_rows, end - r0) * c;
            const float* __restrict t = dy + r0 * c;
            if constexpr (!std::is_void_v<Y>) {
              const Y* __restrict v = y + r0 * c;
              for (int64_t i = 0; i < n; ++i) {
                tmp[i] = static_cast<float>(v[i]) > 0.0f ? t[i] : 0.0f;
              }
              t = tmp;
            }
            if constexpr (!std::is_void_v<Out>) StoreAs(t, g + r0 * c, n);
            if (bias == nullptr) continue;
            // Four rows per update of the sums: a quarter of the loads and
            // stores of acc, whose chains across rows bound narrow rows.
            double* __restrict acc = part.data() + b * c;
            int64_t i = 0;
            for (; i + 4 * c <= n; i += 4 * c) {
              const float* __restrict t1 = t + i + c;
              const float* __restrict t2 = t1 + c;
              const float* __restrict t3 = t2 + c;
              for (int64_t j = 0; j < c; ++j) {
                acc[j] += (double{t[i + j]} + double{t1[j]}) +
                          (double{t2[j]} + double{t3[j]});
              }
            }
            for (; i < n; i += c) {
              for (int64_t j = 0; j < c; ++j) acc[j] += t[i + j];
            }
          }
        }
      });
  if (bias == nullptr) return;
  for (int64_t j = 0; j < c; ++j) {
    double sum = 0.0;
    for (int64_t b = 0; b < blocks; ++b) sum += part[b * c + j];
    bias[j] = static_cast<float>(sum);
  }
}

}  // namespace

Tensor Conv2dBackwardWeight(const Tensor& dy_in, const Tensor& x_in,
                            const Shape& w_shape, const Conv2dParams& p) {
  static constexpr char kOp[] = "Conv2dBackwardWeight";
  const ConvGeometry g =
      CheckBackward(kOp, GradOf::kWeight, dy_in, x_in, w_shape, p);
  if (OneDnnTakes(g, ConvPass::kWeightGradient,
                  ChannelsLast(x_in) || ChannelsLast(dy_in))) {
    Tensor dw = Tensor::Empty(w_shape);
    if (OneDnnConv2dBackwardWeight(g, DenseOrContiguous(dy_in),
                                   DenseOrContiguous(x_in), dw)) {
      return dw;
    }
  }
  const Tensor dy = dy_in.Contiguous();
  const Tensor x = x_in.Contiguous();
  return WithActivation(x, [&](const auto* px) {
    return BackwardWeight(g, dy, px, w_shape);
  });
}


Tensor Conv2dBackwardBias(const Tensor& dy_in) {
  static constexpr char kOp[] = "Conv2dBackwardBias";
  CheckFloat4D(kOp, "dy", dy_in);
  if (MemoryFormatOf(dy_in) == MemoryFormat::kChannelsLast) {
    const int64_t c = dy_in.dim(1);
    Tensor db = Tensor::Empty({c});
    MaskedRows<void, void>(dy_in.data(), nullptr, nullptr, dy_in.numel() / c, c,
                           db.data());
    return db;
  }
  const Tensor dy = dy_in.Contiguous();
  const int64_t n = dy.dim(0), oc = dy.dim(1), hw = dy.dim(2) * dy.dim(3);
  Tensor db = Tensor::Empty({oc});
  const float* pdy = dy.data();
  float* pdb = db.data();
  ParallelFor(oc, ThreadsIf(oc * n * hw > 32768),
              [&](int64_t begin, int64_t end, int) {
                for (int64_t o = begin; o < end; ++o) {
                  double sum = 0.0;
                  for (int64_t i = 0; i < n; ++i) {
                    sum += SumDouble(pdy + (i * oc + o) * hw, hw);
                  }
                  pdb[o] = static_cast<float>(sum);
                }
              });
  return db;
}

namespace {

// g = dy masked where relu_y <= 0 (Y = float or bfloat16; Y = void: no
// mask), written as Out (float or bfloat16), and, with `sums`, each
// (image, channel) plane's sum of g in double, in SumDouble's order (eight
// interleaved accumulators, then the tail), so that the bias gradient below
// is Conv2dBackwardBias(g) bit for bit. One pass over dy, in chunks that
// stay in L1.
template <typename Y, typename Out>
void MaskedPlanes(const float* dy, const Y* y, Out* g, double* sums,
                  int64_t planes, int64_t hw) {
  constexpr int64_t kChunk = 2048;  // a multiple of 8: the tail is the last's
  ParallelFor(planes, ThreadsIf(planes * hw > 32768),
              [&](int64_t begin, int64_t end, int) {
                alignas(64) float tmp[kChunk];
                for (int64_t p = begin; p < end; ++p) {
                  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, tail = 0.0;
                  for (int64_t s = 0; s < hw; s += kChunk) {
                    const int64_t len = std::min(kChunk, hw - s);
                    const float* d = dy + p * hw + s;
                    if constexpr (std::is_void_v<Y>) {
                      std::copy(d, d + len, tmp);
                    } else {
                      const Y* v = y + p * hw + s;
                      for (int64_t i = 0; i < len; ++i) {
                        tmp[i] = static_cast<float>(v[i]) > 0.0f ? d[i] : 0.0f;
                      }
                    }
                    StoreAs(tmp, g + p * hw + s, len);
                    if (sums == nullptr) continue;
                    const int64_t full = len / 8 * 8;
                    for (int64_t i = 0; i < full; i += 8) {
                      for (int k = 0; k < 8; ++k) acc[k] += tmp[i + k];
                    }
                    for (int64_t i = full; i < len; ++i) tail += tmp[i];
                  }
                  if (sums != nullptr) {
                    sums[p] = ((acc[0] + acc[4]) + (acc[1] + acc[5])) +
                              ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail;
                  }
                }
              });
}

// MaskedPlanes over dy [N, OC, OH, OW] into a new tensor of `dtype`, and the
// bias gradient into *db when db is not null.
Tensor MaskedGrad(const Tensor& dy, const Tensor& relu_y_in, DType dtype,
                  Tensor* db) {
  const MemoryFormat format = MemoryFormatOf(dy);
  if (format == MemoryFormat::kChannelsLast) {
    const Tensor relu_y =
        relu_y_in.defined() ? ToMemoryFormat(relu_y_in, format) : Tensor();
    const int64_t c = dy.dim(1), rows = dy.numel() / c;
    Tensor g = EmptyIn(dy.shape(), dtype, format);
    if (db != nullptr) *db = Tensor::Empty({c});
    float* pb = db != nullptr ? db->data() : nullptr;
    const auto run = [&](const auto* y) {
      using Y = std::remove_const_t<std::remove_pointer_t<decltype(y)>>;
      if (dtype == DType::kBfloat16) {
        MaskedRows<Y>(dy.data(), y, g.data<bfloat16>(), rows, c, pb);
      } else {
        MaskedRows<Y>(dy.data(), y, g.data<float>(), rows, c, pb);
      }
    };
    if (!relu_y.defined()) {
      run(static_cast<const void*>(nullptr));
    } else {
      WithActivation(relu_y, run);
    }
    return g;
  }
  const Tensor relu_y = relu_y_in.defined() ? relu_y_in.Contiguous() : Tensor();
  const int64_t n = dy.dim(0), oc = dy.dim(1), hw = dy.dim(2) * dy.dim(3);
  Tensor g = Tensor::Empty(dy.shape(), dtype);
  std::vector<double> sums(db != nullptr ? n * oc : 0);
  double* ps = db != nullptr ? sums.data() : nullptr;
  auto run = [&](const auto* y) {
    using Y = std::remove_const_t<std::remove_pointer_t<decltype(y)>>;
    if (dtype == DType::kBfloat16) {
      MaskedPlanes<Y>(dy.data(), y, g.data<bfloat16>(), ps, n * oc, hw);
    } else {
      MaskedPlanes<Y>(dy.data(), y, g.data<float>(), ps, n * oc, hw);
    }
  };
  if (!relu_y.defined()) {
    run(static_cast<const void*>(nullptr));
  } else {
    WithActivation(relu_y, [&](const auto* y) { run(y); });
  }
  if (db != nullptr) {
    *db = Tensor::Empty({oc});
    float* pdb = db->data();
    for (int64_t o = 0; o < oc; ++o) {
      double sum = 0.0;
      for (int64_t i = 0; i < n; ++i) sum += ps[i * oc + o];
      pdb[o] = static_cast<float>(sum);
    }
  }
  return g;
}

}  // namespace

Conv2dGrads Conv2dBackward(const Tensor& dy_in, const Tensor& relu_y_in,
                           const Tensor& x_in, const Shape& x_shape,
                           const Tensor& w_in, const Shape& w_shape,
                           const Conv2dParams& p,
                           const Conv2dGradRequest& want) {
  static constexpr char kOp[] = "Conv2dBackward";
  CheckFloat4D(kOp, "dy", dy_in);
  CheckShape4D(kOp, "x_shape", x_shape);
  CheckShape4D(kOp, "w_shape", w_shape);
  const ConvGeometry g = MakeGeometry(kOp, x_shape, w_shape, p);
  CheckGradOutput(kOp, dy_in, g);
  if (relu_y_in.defined()) {
    CheckFloat4D(kOp, "relu_y", relu_y_in, /*bf16_ok=*/true);
    CHECK(relu_y_in.shape() == dy_in.shape())
        << kOp << ": relu_y has shape " << relu_y_in.shape() << " but dy "
        << dy_in.shape();
  }
  CHECK(!want.input || (w_in.defined() && w_in.shape() == w_shape))
      << kOp << ": the input gradient needs w of shape " << w_shape;
  CHECK(!want.weight || (x_in.defined() && x_in.shape() == x_shape))
      << kOp << ": the weight gradient needs x of shape " << x_shape;
  const bool dnn_input = want.input && OneDnnTakes(g, ConvPass::kInputGradient,
                                                   ChannelsLast(dy_in));
  const bool dnn_weight =
      want.weight && OneDnnTakes(g, ConvPass::kWeightGradient,
                                 ChannelsLast(dy_in) || ChannelsLast(x_in));
  // oneDNN reads channels-last tensors as they lie; dive's kernels (below,
  // and the functions above where oneDNN has no primitive) read any layout.
  const Tensor w = want.input ? w_in.Contiguous() : Tensor();
  const Tensor x = !want.weight ? Tensor()
                   : dnn_weight ? DenseOrContiguous(x_in)
                                : x_in.Contiguous();
  // Rounded to bf16 here, in the pass that masks it, where nothing but
  // oneDNN reads g: it rounds its operands to bf16 itself, so the products
  // are the same, and its reorder moves half the bytes.
  const bool bf16 = !want.sum && (want.input || want.weight) &&
                    (dnn_input || !want.input) && (dnn_weight || !want.weight);
  Conv2dGrads r;
  Tensor dy =
      dnn_input || dnn_weight ? DenseOrContiguous(dy_in) : dy_in.Contiguous();
  if (relu_y_in.defined() || bf16) {
    dy = MaskedGrad(dy, relu_y_in, bf16 ? DType::kBfloat16 : DType::kFloat32,
                    want.bias ? &r.bias : nullptr);
  } else if (want.bias) {
    r.bias = Conv2dBackwardBias(dy);
  }
  if (want.sum) r.sum = dy;

  const MemoryFormat dx_format = OneDnnOutputFormat(dy);
  if (dnn_input && dnn_weight) {
    Tensor dx = EmptyIn(x_shape, DType::kFloat32, dx_format);
    Tensor dw = Tensor::Empty(w_shape);
    if (OneDnnConv2dBackward(g, dy, x, w, dx, dw)) {
      r.input = std::move(dx);
      r.weight = std::move(dw);
    }
  } else if (bf16 && dnn_input) {
    Tensor dx = EmptyIn(x_shape, DType::kFloat32, dx_format);
    if (OneDnnConv2dBackwardInput(g, dy, w, dx)) r.input = std::move(dx);
  } else if (bf16 && dnn_weight) {
    Tensor dw = Tensor::Empty(w_shape);
    if (OneDnnConv2dBackwardWeight(g, dy, x, dw)) r.weight = std::move(dw);
  }
  // What is left runs on float32 dy (bf16 only where oneDNN has no
  // primitive for the shape: dive's kernels then read its float copy).
  if ((want.input && !r.input.defined()) ||
      (want.weight && !r.weight.defined())) {
    if (dy.dtype() == DType::kBfloat16) dy = dy.To(DType::kFloat32);
    if (want.input && !r.input.defined()) {
      r.input = Conv2dBackwardInput(dy, w, x_shape, p);
    }
    if (want.weight && !r.weight.defined()) {
      r.weight = Conv2dBackwardWeight(dy, x, w_shape, p);
    }
  }
  return r;
}

}  // namespace dive
