// Native CPU kernels for the encoders' float32 forward, called from XLA through its FFI (cpu_kernels.py builds,
// loads and registers them). Two handlers:
//   jaxprobe_dense      y[M, N] = act(x[M, K] @ w[K, N] + b[N]), rows split over XLA's intra-op threads, each
//                       slice one sgemm followed by the bias and activation;
//   jaxprobe_attention  softmax(q k^T / sqrt(d)) v for q [B, Tq, H, d], k and v [B, Tk, H, d], one task per
//                       (image, head, block of queries): the block's scores [rows, Tk] stay in cache, the heads are
//                       read and written in place through leading dimensions (no transposes).
// The GEMMs are MKL's cblas_sgemm (sequential layer; the parallelism is ours, on XLA's threads), passed in by
// pointer. Exponentials, erf and the sums are AVX2/FMA code below; the host must have AVX2 and FMA.
#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

using Sgemm = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int, float, float*,
                       int);
Sgemm g_sgemm = nullptr;
enum { kRowMajor = 101, kNoTrans = 111, kTrans = 112 };
enum Activation : int64_t { kNone = 0, kGeluErf = 1, kGeluTanh = 2, kQuickGelu = 3 };

// f(i) for i in [0, n): the calling thread and up to (threads - 1) helpers on XLA's intra-op pool claim indices in
// turn. The caller waits only for indices already claimed, never for a helper to start: XLA may run independent
// custom calls at once on its pool's threads, and a helper that starts after the work is gone just returns. The
// shared counters live on the heap (a late helper may outlive this call); f is used only for claimed indices,
// which this call waits for.
template <typename F>
void ParallelFor(ffi::ThreadPool& pool, int64_t n, const F& f) {
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), n) - 1;
  if (helpers <= 0) {
    for (int64_t i = 0; i < n; ++i) f(i);
    return;
  }
  struct State {
    std::atomic<int64_t> next{0}, done{0};
    std::mutex mu;
    std::condition_variable cv;
  };
  auto state = std::make_shared<State>();
  const F* fn = &f;
  auto work = [state, fn, n]() {
    for (int64_t i; (i = state->next.fetch_add(1)) < n;) {
      (*fn)(i);
      if (state->done.fetch_add(1) + 1 == n) {
        std::lock_guard<std::mutex> lock(state->mu);
        state->cv.notify_all();
      }
    }
  };
  for (int64_t h = 0; h < helpers; ++h) pool.Schedule([work]() { work(); });
  work();
  std::unique_lock<std::mutex> lock(state->mu);
  state->cv.wait(lock, [&] { return state->done.load() == n; });
}

// exp(x), x clamped to [-87.3, 88.3]: 2^n * p(f) with Cephes' degree-6 polynomial on |f| <= ln2 / 2 (about 1 ulp).
inline __m256 Exp(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.3f)), _mm256_set1_ps(88.3f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 f = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  f = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), f);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, f, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_fmadd_ps(p, _mm256_mul_ps(f, f), _mm256_add_ps(f, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

// erf(x): x clamped to [-4, 4], x * P(x^2) / Q(x^2), the rational form XLA and Eigen use for float32.
inline __m256 Erf(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-4.0f)), _mm256_set1_ps(4.0f));
  const __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(-2.72614225801306e-10f);
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(2.77068142495902e-08f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-2.10102402082508e-06f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-5.69250639462346e-05f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-7.34990630326855e-04f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-2.95459980854025e-03f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-1.60960333262415e-02f));
  p = _mm256_mul_ps(p, x);
  __m256 q = _mm256_set1_ps(-1.45660718464996e-05f);
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-2.13374055278905e-04f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-1.68282697438203e-03f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-7.37332916720468e-03f));
  q = _mm256_fmadd_ps(q, x2, _mm256_set1_ps(-1.42647390514189e-02f));
  return _mm256_div_ps(p, q);
}

// x * sigmoid(a x): 1 / (1 + exp(-a x)).
inline __m256 XSigmoid(__m256 x, __m256 ax) {
  const __m256 one = _mm256_set1_ps(1.0f);
  return _mm256_div_ps(x, _mm256_add_ps(one, Exp(_mm256_sub_ps(_mm256_setzero_ps(), ax))));
}

inline __m256 Activate(__m256 x, int64_t act) {
  switch (act) {
    case kGeluErf:  // 0.5 x (1 + erf(x / sqrt(2)))
      return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x),
                           _mm256_add_ps(_mm256_set1_ps(1.0f), Erf(_mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f)))));
    case kGeluTanh: {  // 0.5 x (1 + tanh(u)) = x sigmoid(2u), u = sqrt(2/pi) (x + 0.044715 x^3)
      const __m256 x3 = _mm256_mul_ps(_mm256_mul_ps(x, x), x);
      const __m256 u = _mm256_mul_ps(_mm256_set1_ps(0.79788456080286536f),
                                     _mm256_fmadd_ps(_mm256_set1_ps(0.044715f), x3, x));
      return XSigmoid(x, _mm256_add_ps(u, u));
    }
    case kQuickGelu:  // x sigmoid(1.702 x)
      return XSigmoid(x, _mm256_mul_ps(_mm256_set1_ps(1.702f), x));
    default:
      return x;
  }
}

// row[0:n] = act(row + bias), eight at a time; the tail through a zero-padded lane block.
void BiasActivate(float* row, const float* bias, int64_t n, int64_t act) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    _mm256_storeu_ps(row + j, Activate(_mm256_add_ps(_mm256_loadu_ps(row + j), _mm256_loadu_ps(bias + j)), act));
  }
  if (j < n) {
    alignas(32) float tmp[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int64_t t = j; t < n; ++t) tmp[t - j] = row[t] + bias[t];
    _mm256_store_ps(tmp, Activate(_mm256_load_ps(tmp), act));
    for (int64_t t = j; t < n; ++t) row[t] = tmp[t - j];
  }
}

inline float HorizontalMax(__m256 v) {
  __m128 a = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_max_ps(a, _mm_movehl_ps(a, a));
  return _mm_cvtss_f32(_mm_max_ss(a, _mm_shuffle_ps(a, a, 1)));
}

inline float HorizontalSum(__m256 v) {
  __m128 a = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  a = _mm_add_ps(a, _mm_movehl_ps(a, a));
  return _mm_cvtss_f32(_mm_add_ss(a, _mm_shuffle_ps(a, a, 1)));
}

// s[0:n] = exp(s[0:n] - max(s)); returns the sum (the attention divides its output rows by it afterwards: d
// values a row instead of Tk).
float ExpRow(float* s, int64_t n) {
  const int64_t n8 = n & ~int64_t{7};
  __m256 vmax = _mm256_set1_ps(-INFINITY);
  for (int64_t j = 0; j < n8; j += 8) vmax = _mm256_max_ps(vmax, _mm256_loadu_ps(s + j));
  float m = HorizontalMax(vmax);
  for (int64_t j = n8; j < n; ++j) m = std::max(m, s[j]);
  const __m256 vm = _mm256_set1_ps(m);
  __m256 vsum = _mm256_setzero_ps();
  for (int64_t j = 0; j < n8; j += 8) {
    const __m256 e = Exp(_mm256_sub_ps(_mm256_loadu_ps(s + j), vm));
    _mm256_storeu_ps(s + j, e);
    vsum = _mm256_add_ps(vsum, e);
  }
  float sum = HorizontalSum(vsum);
  for (int64_t j = n8; j < n; ++j) {
    s[j] = std::exp(s[j] - m);
    sum += s[j];
  }
  return sum;
}

ffi::Error NoGemm() { return ffi::Error(ffi::ErrorCode::kFailedPrecondition, "jaxprobe: no sgemm was set"); }

ffi::Error Dense(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w, ffi::Buffer<ffi::F32> b,
                 ffi::ResultBuffer<ffi::F32> y, int64_t activation) {
  if (g_sgemm == nullptr) return NoGemm();
  const auto wd = w.dimensions();
  if (wd.size() != 2 || b.dimensions().size() != 1 || b.dimensions()[0] != wd[1] || x.dimensions().size() == 0 ||
      x.dimensions()[x.dimensions().size() - 1] != wd[0] || activation < kNone || activation > kQuickGelu) {
    return ffi::Error::InvalidArgument("jaxprobe_dense: expected x [..., K], w [K, N], b [N], a known activation");
  }
  const int64_t K = wd[0], N = wd[1], M = x.element_count() / std::max<int64_t>(K, 1);
  const float* X = x.typed_data();
  const float* W = w.typed_data();
  const float* B = b.typed_data();
  float* Y = y->typed_data();
  // One slice of rows per thread: each sgemm call packs the whole weight matrix again, so fewer, larger slices
  // are faster than cache-sized ones (256-row slices measured slower); the bias and activation follow per row.
  const int64_t threads = std::max<int64_t>(1, pool.num_threads());
  const int64_t rows = std::max<int64_t>(1, (M + threads - 1) / threads);
  const int64_t slices = (M + rows - 1) / rows;
  ParallelFor(pool, slices, [&](int64_t s) {
    const int64_t r0 = s * rows, r1 = std::min(M, r0 + rows);
    g_sgemm(kRowMajor, kNoTrans, kNoTrans, r1 - r0, N, K, 1.0f, X + r0 * K, K, W, N, 0.0f, Y + r0 * N, N);
    for (int64_t r = r0; r < r1; ++r) BiasActivate(Y + r * N, B, N, activation);
  });
  return ffi::Error::Success();
}

// softmax(q k^T / sqrt(d)) v per (image, head), queries in blocks of `query_block`. q, k, v and out are [B, T, H, d]
// views with row strides ldq, ldk, ldv, ldo (floats between consecutive tokens of one image).
void AttentionImpl(ffi::ThreadPool& pool, const float* Q, const float* K, const float* V, float* O, int64_t B,
                   int64_t Tq, int64_t Tk, int64_t H, int64_t D, int64_t ldq, int64_t ldk, int64_t ldv, int64_t ldo,
                   int64_t query_block) {
  const int64_t blocks = (Tq + query_block - 1) / query_block;
  const float scale = 1.0f / std::sqrt(static_cast<float>(D));
  ParallelFor(pool, B * H * blocks, [&](int64_t task) {
    thread_local std::vector<float> scores, sums;
    const int64_t bh = task / blocks, r0 = (task % blocks) * query_block, image = bh / H, head = bh % H;
    const int64_t rows = std::min(query_block, Tq - r0);
    if (static_cast<int64_t>(scores.size()) < rows * Tk) scores.resize(rows * Tk);
    if (static_cast<int64_t>(sums.size()) < rows) sums.resize(rows);
    float* S = scores.data();
    float* Op = O + (image * Tq + r0) * ldo + head * D;
    g_sgemm(kRowMajor, kNoTrans, kTrans, rows, Tk, D, scale, Q + (image * Tq + r0) * ldq + head * D, ldq,
            K + image * Tk * ldk + head * D, ldk, 0.0f, S, Tk);
    for (int64_t r = 0; r < rows; ++r) sums[r] = ExpRow(S + r * Tk, Tk);
    g_sgemm(kRowMajor, kNoTrans, kNoTrans, rows, D, Tk, 1.0f, S, Tk, V + image * Tk * ldv + head * D, ldv, 0.0f, Op,
            ldo);
    for (int64_t r = 0; r < rows; ++r) {
      const float inv = 1.0f / sums[r];
      for (int64_t j = 0; j < D; ++j) Op[r * ldo + j] *= inv;
    }
  });
}

ffi::Error Attention(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> q, ffi::Buffer<ffi::F32> k,
                     ffi::Buffer<ffi::F32> v, ffi::ResultBuffer<ffi::F32> out, int64_t query_block) {
  if (g_sgemm == nullptr) return NoGemm();
  const auto qd = q.dimensions(), kd = k.dimensions(), vd = v.dimensions();
  if (qd.size() != 4 || kd.size() != 4 || vd.size() != 4 || kd[0] != qd[0] || kd[2] != qd[2] || kd[3] != qd[3] ||
      vd[0] != kd[0] || vd[1] != kd[1] || vd[2] != kd[2] || vd[3] != kd[3] || query_block < 1) {
    return ffi::Error::InvalidArgument("jaxprobe_attention: expected q [B, Tq, H, d], k and v [B, Tk, H, d]");
  }
  const int64_t ld = qd[2] * qd[3];
  AttentionImpl(pool, q.typed_data(), k.typed_data(), v.typed_data(), out->typed_data(), qd[0], qd[1], kd[1], qd[2],
                qd[3], ld, ld, ld, ld, query_block);
  return ffi::Error::Success();
}

// Self-attention from one packed projection: qkv [B, T, 3, H, d] (q, k, v of each token side by side, as one dense
// layer with the three kernels concatenated writes them) -> out [B, T, H, d].
ffi::Error PackedAttention(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> qkv, ffi::ResultBuffer<ffi::F32> out,
                           int64_t query_block) {
  if (g_sgemm == nullptr) return NoGemm();
  const auto d = qkv.dimensions();
  if (d.size() != 5 || d[2] != 3 || query_block < 1) {
    return ffi::Error::InvalidArgument("jaxprobe_packed_attention: expected qkv [B, T, 3, H, d]");
  }
  const int64_t B = d[0], T = d[1], H = d[3], D = d[4], hd = H * D;
  const float* X = qkv.typed_data();
  AttentionImpl(pool, X, X + hd, X + 2 * hd, out->typed_data(), B, T, T, H, D, 3 * hd, 3 * hd, 3 * hd, hd,
                query_block);
  return ffi::Error::Success();
}

}  // namespace

extern "C" void jaxprobe_set_sgemm(void* sgemm) { g_sgemm = reinterpret_cast<Sgemm>(sgemm); }

using F32 = ffi::Buffer<ffi::F32>;

XLA_FFI_DEFINE_HANDLER_SYMBOL(
    jaxprobe_dense, Dense,
    ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<F32>().Arg<F32>().Arg<F32>().Ret<F32>().Attr<int64_t>("activation"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    jaxprobe_attention, Attention,
    ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<F32>().Arg<F32>().Arg<F32>().Ret<F32>().Attr<int64_t>("query_block"));
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    jaxprobe_packed_attention, PackedAttention,
    ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<F32>().Ret<F32>().Attr<int64_t>("query_block"));
