#include "tensor/qconv_onednn.h"

#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <tuple>
#include <vector>

#include "glog/logging.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "tensor/onednn.h"

namespace dive::qconv_internal {
namespace {

using dnnl::memory;
using dt = memory::data_type;
using tag = memory::format_tag;
using onednn_internal::Engine;
using qgemm_internal::CeilDiv;

// The int32 sums of a chunk of `images` images fit in about this (L2).
constexpr int64_t kChunkBytes = 512 << 10;

// One input size's primitives: x [n, c, h, w] NCHW into xp [n, c, hp, wp]
// NHWC (its interior; the border is the zero point), then the sums of
// chunks of `chunk` images (the last one `tail`, when n is not a multiple),
// into an NHWC int32 buffer of `chunk` images.
struct Plan {
  int64_t chunk = 0, tail = 0;
  memory::desc x_user, xp_inner, xp;
  dnnl::reorder x_move;
  dnnl::primitive conv, conv_tail;
  memory::desc src, src_tail, dst, dst_tail, w_prim, w_prim_tail;
  std::shared_ptr<uint8_t> w_data, w_data_tail;  // weights in w_prim's layout
};

struct Key {
  int64_t n, h, w, sh, sw, ph, pw;
  auto Tie() const { return std::tie(n, h, w, sh, sw, ph, pw); }
  bool operator<(const Key& o) const { return Tie() < o.Tie(); }
};

}  // namespace

struct OneDnnQConvCache {
  int64_t oc, c, kh, kw;
  std::vector<int8_t> oihw;
  std::mutex mu;
  std::map<Key, std::unique_ptr<Plan>> plans;  // null: oneDNN has none
};

namespace {

// The weights reordered into `desc` (dive's allocator, 64-byte aligned).
std::shared_ptr<uint8_t> ReorderWeights(OneDnnQConvCache& cache,
                                        const memory::desc& desc) {
  const memory::desc user({cache.oc, cache.c, cache.kh, cache.kw}, dt::s8,
                          tag::oihw);
  std::shared_ptr<uint8_t> data =
      qgemm_internal::AlignedBuffer(static_cast<int64_t>(desc.get_size()));
  memory from(user, Engine(), cache.oihw.data());
  memory to(desc, Engine(), data.get());
  dnnl::stream stream(Engine());
  dnnl::reorder(from, to).execute(stream, from, to);
  stream.wait();
  return data;
}

// The convolution of `images` images of xp [., c, hp, wp] NHWC into int32
// sums [., oc, oh, ow] NHWC, unpadded: the bare sums of the bytes.
dnnl::convolution_forward::primitive_desc SumsPrimitive(
    const OneDnnQConvCache& cache, const Key& k, int64_t images) {
  const int64_t hp = k.h + 2 * k.ph, wp = k.w + 2 * k.pw;
  const int64_t oh = (hp - cache.kh) / k.sh + 1,
                ow = (wp - cache.kw) / k.sw + 1;
  return dnnl::convolution_forward::primitive_desc(
      {dnnl::prop_kind::forward_inference,
       dnnl::algorithm::convolution_direct,
       memory::desc({images, cache.c, hp, wp}, dt::u8, tag::nhwc),
       memory::desc({cache.oc, cache.c, cache.kh, cache.kw}, dt::s8, tag::any),
       memory::desc({images, cache.oc, oh, ow}, dt::s32, tag::nhwc),
       {k.sh, k.sw},
       {0, 0},
       {0, 0}},
      Engine());
}

std::unique_ptr<Plan> MakePlan(OneDnnQConvCache& cache, const Key& k) {
  auto p = std::make_unique<Plan>();
  const int64_t hp = k.h + 2 * k.ph, wp = k.w + 2 * k.pw;
  const int64_t oh = (hp - cache.kh) / k.sh + 1,
                ow = (wp - cache.kw) / k.sw + 1;
  const int64_t image_bytes = oh * ow * cache.oc * 4;
  const int64_t chunks =
      CeilDiv(k.n, std::max<int64_t>(1, kChunkBytes / image_bytes));
  p->chunk = CeilDiv(k.n, chunks);
  p->tail = k.n - (chunks - 1) * p->chunk;
  p->x_user = memory::desc({k.n, cache.c, k.h, k.w}, dt::u8, tag::nchw);
  p->xp = memory::desc({k.n, cache.c, hp, wp}, dt::u8, tag::nhwc);
  p->xp_inner =
      p->xp.submemory_desc({k.n, cache.c, k.h, k.w}, {0, 0, k.ph, k.pw});
  p->x_move = dnnl::reorder(dnnl::reorder::primitive_desc(
      Engine(), p->x_user, Engine(), p->xp_inner));
  const auto pd = SumsPrimitive(cache, k, p->chunk);
  p->conv = dnnl::convolution_forward(pd);
  p->src = pd.src_desc();
  p->dst = pd.dst_desc();
  p->w_prim = pd.weights_desc();
  p->w_data = ReorderWeights(cache, p->w_prim);
  if (p->tail != p->chunk) {
    const auto tail = SumsPrimitive(cache, k, p->tail);
    p->conv_tail = dnnl::convolution_forward(tail);
    p->src_tail = tail.src_desc();
    p->dst_tail = tail.dst_desc();
    p->w_prim_tail = tail.weights_desc();
    p->w_data_tail = p->w_prim_tail == p->w_prim
                         ? p->w_data
                         : ReorderWeights(cache, p->w_prim_tail);
  }
  return p;
}

const Plan* PlanFor(OneDnnQConvCache& cache, const Key& key) {
  const std::lock_guard<std::mutex> lock(cache.mu);
  const auto [it, inserted] = cache.plans.try_emplace(key);
  if (inserted) {
    try {
      it->second = MakePlan(cache, key);
    } catch (const dnnl::error& e) {
      LOG(WARNING) << "oneDNN has no int8 convolution for x [" << key.n << ", "
                   << cache.c << ", " << key.h << ", " << key.w << "], kernel "
                   << cache.kh << "x" << cache.kw << " (" << e.what()
                   << "); dive's kernels run it";
    }
  }
  return it->second.get();
}

// xp's border (ph rows above and below, pw columns left and right of each
// image, all channels) set to the zero point.
void FillBorder(uint8_t* xp, int64_t n, int64_t c, int64_t hp, int64_t wp,
                int64_t ph, int64_t pw, uint8_t zero_point) {
  if (ph == 0 && pw == 0) return;
  const int64_t row = wp * c;
#pragma omp parallel for schedule(static) if (n * hp * row > (1 << 16))
  for (int64_t image = 0; image < n; ++image) {
    uint8_t* x = xp + image * hp * row;
    std::memset(x, zero_point, ph * row);
    for (int64_t i = ph; i < hp - ph; ++i) {
      std::memset(x + i * row, zero_point, pw * c);
      std::memset(x + i * row + (wp - pw) * c, zero_point, pw * c);
    }
    std::memset(x + (hp - ph) * row, zero_point, ph * row);
  }
}

#define DIVE_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl")))

// r[p] = row p of a 16 x 16 int32 matrix, transposed in place.
DIVE_AVX512 inline void Transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {
    r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
    r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
    r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
  }
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 4; ++j) {
      t[8 * i + j] = _mm512_shuffle_i32x4(r[8 * i + j], r[8 * i + 4 + j], 0x88);
      t[8 * i + 4 + j] =
          _mm512_shuffle_i32x4(r[8 * i + j], r[8 * i + 4 + j], 0xdd);
    }
  }
  for (int j = 0; j < 8; ++j) {
    r[j] = _mm512_shuffle_i32x4(t[j], t[8 + j], 0x88);
    r[8 + j] = _mm512_shuffle_i32x4(t[j], t[8 + j], 0xdd);
  }
}

// y [images, oc, ohw] (NCHW, rq.output's type) = the requantization of
// acc [images, ohw, oc] (NHWC int32 sums) as QTileEpilogue's StoreScalar
// (qgemm.cc) does it: v = acc + offset (wrapping int32), then the int32 as
// is, float(double(v) * scale) (ReLU after), or clamp(double(v) * scale)
// rounded half to even (the default MXCSR) plus the zero point. Tiles of 16
// pixels by 16 channels, transposed in registers.
DIVE_AVX512 void Requantize(const int32_t* acc, int64_t images, int64_t ohw,
                            int64_t oc, const QRequantization& rq,
                            const qgemm_internal::ChannelData& ch, void* y) {
  const int64_t q_tiles = CeilDiv(oc, 16), p_tiles = CeilDiv(ohw, 16);
  const int64_t tiles = images * q_tiles * p_tiles;
  const double lo = rq.relu ? 0.0 : -rq.zero_point;
  const double hi = 255.0 - rq.zero_point;
#pragma omp parallel for schedule(static) if (tiles > 16)
  for (int64_t tile = 0; tile < tiles; ++tile) {
    const int64_t image = tile / (q_tiles * p_tiles);
    const int64_t q0 = tile / p_tiles % q_tiles * 16, p0 = tile % p_tiles * 16;
    const int64_t qn = std::min<int64_t>(16, oc - q0);
    const int64_t pn = std::min<int64_t>(16, ohw - p0);
    const __mmask16 q_mask = static_cast<__mmask16>((1u << qn) - 1);
    const __mmask16 p_mask = static_cast<__mmask16>((1u << pn) - 1);
    __m512i r[16];
    const int32_t* a = acc + (image * ohw + p0) * oc + q0;
    for (int64_t p = 0; p < 16; ++p) {
      r[p] = p < pn ? _mm512_maskz_loadu_epi32(q_mask, a + p * oc)
                    : _mm512_setzero_si512();
    }
    Transpose16(r);
    for (int64_t l = 0; l < qn; ++l) {
      const int64_t at = (image * oc + q0 + l) * ohw + p0;
      const __m512i v =
          _mm512_add_epi32(r[l], _mm512_set1_epi32(ch.offset[q0 + l]));
      if (rq.output == QOutputType::kInt32) {
        _mm512_mask_storeu_epi32(static_cast<int32_t*>(y) + at, p_mask, v);
        continue;
      }
      const __m512d s = _mm512_set1_pd(ch.scale[q0 + l]);
      __m512d d0 =
          _mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_castsi512_si256(v)), s);
      __m512d d1 =
          _mm512_mul_pd(_mm512_cvtepi32_pd(_mm512_extracti64x4_epi64(v, 1)), s);
      if (rq.output == QOutputType::kFloat) {
        __m512 f =
            _mm512_insertf32x8(_mm512_castps256_ps512(_mm512_cvtpd_ps(d0)),
                               _mm512_cvtpd_ps(d1), 1);
        // f < 0 becomes 0 (v = 0 gives +0, never -0).
        if (rq.relu) f = _mm512_max_ps(f, _mm512_setzero_ps());
        _mm512_mask_storeu_ps(static_cast<float*>(y) + at, p_mask, f);
        continue;
      }
      const __m512d vlo = _mm512_set1_pd(lo), vhi = _mm512_set1_pd(hi);
      d0 = _mm512_min_pd(_mm512_max_pd(d0, vlo), vhi);
      d1 = _mm512_min_pd(_mm512_max_pd(d1, vlo), vhi);
      __m512i u =
          _mm512_inserti64x4(_mm512_castsi256_si512(_mm512_cvtpd_epi32(d0)),
                             _mm512_cvtpd_epi32(d1), 1);
      u = _mm512_add_epi32(u, _mm512_set1_epi32(rq.zero_point));
      _mm_mask_storeu_epi8(static_cast<uint8_t*>(y) + at, p_mask,
                           _mm512_cvtusepi32_epi8(u));
    }
  }
}

}  // namespace

std::shared_ptr<OneDnnQConvCache> MakeOneDnnQConvCache(int64_t oc, int64_t c,
                                                       int64_t kh, int64_t kw,
                                                       const int8_t* w) {
  auto cache = std::make_shared<OneDnnQConvCache>();
  cache->oc = oc;
  cache->c = c;
  cache->kh = kh;
  cache->kw = kw;
  cache->oihw.assign(w, w + oc * c * kh * kw);
  return cache;
}

bool OneDnnQConvTakes(const QPackedWeights& weights) {
  if (weights.onednn() == nullptr || weights.path() != QGemmPath::kAvx512Vnni) {
    return false;
  }
  switch (GetQConvLibrary()) {
    case QConvLibrary::kDive:
      return false;
    case QConvLibrary::kOneDnn:
      return true;
    case QConvLibrary::kAuto:
      break;
  }
  return weights.conv_kh() * weights.conv_kw() > 1 && weights.k() >= 1024;
}

bool OneDnnQConv2d(int64_t n, int64_t h, int64_t w, const uint8_t* x,
                   int32_t x_zero_point, const QPackedWeights& weights,
                   const QConv2dParams& p, int64_t oh, int64_t ow,
                   const QRequantization& rq,
                   const qgemm_internal::ChannelData& channels, void* y) {
  OneDnnQConvCache& cache = *weights.onednn();
  const Plan* plan =
      PlanFor(cache, Key{n, h, w, p.stride_h, p.stride_w, p.pad_h, p.pad_w});
  if (plan == nullptr) return false;
  const int64_t c = cache.c, oc = cache.oc;
  const int64_t hp = h + 2 * p.pad_h, wp = w + 2 * p.pad_w, ohw = oh * ow;
  dnnl::stream stream(Engine());
  uint8_t* const xp = qgemm_internal::ThreadScratch(
      qgemm_internal::kLeftScratch, n * c * hp * wp);
  FillBorder(xp, n, c, hp, wp, p.pad_h, p.pad_w,
             static_cast<uint8_t>(x_zero_point));
  memory x_user(plan->x_user, Engine(), const_cast<uint8_t*>(x));
  memory xp_inner(plan->xp_inner, Engine(), xp);
  plan->x_move.execute(stream, x_user, xp_inner);
  uint8_t* const sums = qgemm_internal::ThreadScratch(
      qgemm_internal::kRightScratch, plan->chunk * ohw * oc * 4);
  const int64_t c_bytes = qgemm_internal::OutputBytes(rq.output);
  for (int64_t i0 = 0; i0 < n; i0 += plan->chunk) {
    const bool tail = n - i0 < plan->chunk;
    const int64_t images = tail ? plan->tail : plan->chunk;
    memory src(tail ? plan->src_tail : plan->src, Engine(),
               xp + i0 * c * hp * wp);
    memory wts(tail ? plan->w_prim_tail : plan->w_prim, Engine(),
               (tail ? plan->w_data_tail : plan->w_data).get());
    memory dst(tail ? plan->dst_tail : plan->dst, Engine(), sums);
    (tail ? plan->conv_tail : plan->conv)
        .execute(stream, {{DNNL_ARG_SRC, src},
                          {DNNL_ARG_WEIGHTS, wts},
                          {DNNL_ARG_DST, dst}});
    stream.wait();
    Requantize(reinterpret_cast<const int32_t*>(sums), images, ohw, oc, rq,
               channels, static_cast<char*>(y) + i0 * oc * ohw * c_bytes);
  }
  return true;
}

}  // namespace dive::qconv_internal
