// rnnkit fused recurrence kernels: the whole time loop of one layer and direction in C++.
//
// Plain C++ with a C ABI (called through ctypes), no torch headers, so it compiles in about a second.
// The per-step matmul goes to the BLAS (MKL) that torch already loaded (sgemm_/dgemm_) or, at tiny batches,
// to a hand loop over a private copy of the weight (kernels_forward.h); the gates are one fused pointwise loop
// per step. The input projection xp = x·W_ihᵀ + b for all steps is done by torch before, and the weight
// gradients by torch after (one matmul each over all steps).
//
// Layout (row-major, time-major): xp (T, B, G·H); out, cs (T, B, H); h0, c0, hT, cT (B, H); w_hh (G·H, H) as
// torch stores it (the forward packs it, or copies slices of its transpose, itself: kernels_forward.h).
// bs[t] = number of sequences still running at step t; the batch is sorted by length, longest first, so the
// running rows are always the first bs[t] rows and each step's matmul works on a contiguous block.
// kind: 0 RNN tanh, 1 RNN relu, 2 LSTM (gates i, f, g, o), 3 GRU (gates r, z, n; b_hh (3H) never null).
// Saved per step for backward (save != 0), written over xp (the caller's scratch: xp is dead once read):
// LSTM gates (T, B, 4H) = activated [i, f, g, o]; GRU gates (T, B, 3H) = [r, z, n] and hn (T, B, H) =
// W_hn·h_prev + b_hn in a buffer of its own; RNN needs only out. Without save, gates and hn are one step's
// scratch.
#include <cmath>
#include <cstdint>
#include <cstring>

extern "C" {
void sgemm_(const char*, const char*, const int*, const int*, const int*, const float*, const float*, const int*,
            const float*, const int*, const float*, float*, const int*);
void dgemm_(const char*, const char*, const int*, const int*, const int*, const double*, const double*,
            const int*, const double*, const int*, const double*, double*, const int*);
// MKL's extensions, weak: null where torch's BLAS is not MKL (OpenBLAS on ARM), each with a fallback (RK_MKL).
int MKL_Set_Num_Threads_Local(int) __attribute__((weak));  // mkl_service.h: mkl_set_num_threads_local
// MKL's packed GEMM (mkl_cblas.h): the recurrent weight is packed once per call instead of at every step.
size_t cblas_sgemm_pack_get_size(int identifier, int m, int n, int k) __attribute__((weak));
void cblas_sgemm_pack(int layout, int identifier, int trans, int m, int n, int k, float alpha, const float* src,
                      int ld, float* dest) __attribute__((weak));
void cblas_sgemm_compute(int layout, int transa, int transb, int m, int n, int k, const float* a, int lda,
                         const float* b, int ldb, float beta, float* c, int ldc) __attribute__((weak));
// MKL's out-of-place transpose (mkl_trans.h): B (cols × rows) = Aᵀ, for the per-thread weight slices.
void MKL_Somatcopy(char ordering, char trans, size_t rows, size_t cols, float alpha, const float* a, size_t lda,
                   float* b, size_t ldb) __attribute__((weak));
void MKL_Domatcopy(char ordering, char trans, size_t rows, size_t cols, double alpha, const double* a, size_t lda,
                   double* b, size_t ldb) __attribute__((weak));
// torch's OpenMP runtime (libgomp, loaded with libtorch_cpu); weak: null where torch uses another one.
void GOMP_parallel(void (*fn)(void*), void* data, unsigned num_threads, unsigned flags) __attribute__((weak));
int omp_get_thread_num() __attribute__((weak));
int omp_get_num_threads() __attribute__((weak));
}
#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <thread>
#include <type_traits>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>  // _mm_pause; the AVX-512 matrix-vector loop (kernels_forward.h)
#endif

// 512-bit vectors, where gcc's default for AVX-512 machines is 256 (it matters only there; MKL runs 512-bit
// already): the pointwise update 1.3-1.7× faster, the hand matrix-vector loop 1.1-1.3× (measured, f32,
// H 128-256). For the whole file: where a loop is inlined, the caller's setting is the one that counts.
#if defined(__x86_64__)
#pragma GCC target("prefer-vector-width=512")
#endif

namespace {

enum Kind { RNN_TANH = 0, RNN_RELU = 1, LSTM = 2, GRU = 3 };

inline void gemm(char ta, char tb, int m, int n, int k, float alpha, const float* a, int lda, const float* b,
                 int ldb, float beta, float* c, int ldc) {
  sgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}
inline void gemm(char ta, char tb, int m, int n, int k, double alpha, const double* a, int lda, const double* b,
                 int ldb, double beta, double* c, int ldc) {
  dgemm_(&ta, &tb, &m, &n, &k, &alpha, a, &lda, b, &ldb, &beta, c, &ldc);
}
// MKL's extension f, or null where it is absent. -DRK_BLAS_ONLY (RNNKIT_FUSED_ARCH=portable) makes every one
// null: the path of a BLAS without them, checked on this machine.
#ifdef RK_BLAS_ONLY
#define RK_MKL(f) static_cast<decltype(&f)>(nullptr)
#else
#define RK_MKL(f) (&f)
#endif

// Sets this thread's BLAS threads (MKL only), returns the previous setting (0: none was set).
inline int blas_threads_local(int n) {
  const auto set = RK_MKL(MKL_Set_Num_Threads_Local);
  return set ? set(n) : 0;
}

// b (cols × rows, leading dimension ldb) = aᵀ, a (rows × cols, lda), all row-major.
template <typename S>
inline void transpose_loop(int rows, int cols, const S* a, int lda, S* b, int ldb) {
  constexpr int tile = 16;  // tiles keep both sides' lines in L1
  for (int i0 = 0; i0 < rows; i0 += tile)
    for (int j0 = 0; j0 < cols; j0 += tile)
      for (int i = i0; i < std::min(rows, i0 + tile); ++i)
        for (int j = j0; j < std::min(cols, j0 + tile); ++j) b[int64_t(j) * ldb + i] = a[int64_t(i) * lda + j];
}
inline void transpose(int rows, int cols, const float* a, int lda, float* b, int ldb) {
  if (const auto omatcopy = RK_MKL(MKL_Somatcopy)) omatcopy('R', 'T', rows, cols, 1.0f, a, lda, b, ldb);
  else transpose_loop(rows, cols, a, lda, b, ldb);
}
inline void transpose(int rows, int cols, const double* a, int lda, double* b, int ldb) {
  if (const auto omatcopy = RK_MKL(MKL_Domatcopy)) omatcopy('R', 'T', rows, cols, 1.0, a, lda, b, ldb);
  else transpose_loop(rows, cols, a, lda, b, ldb);
}

// The recurrent product C (n × N) = A (n × K) · W (K × N), all row-major, with W fixed for the whole loop;
// `trans`: w holds Wᵀ (N × K), e.g. w_hh for the forward's h·W_hhᵀ. float: W packed once by MKL (about 1.2-2×
// faster at small n: no per-call packing of the weight; packing from Wᵀ costs the same); double: plain dgemm
// (through the transposed view for `trans`: 1.6× slower than a transposed copy at 8-16 rows, 1.3-1.5× faster
// from 32). beta is 0 or 1.
enum { ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112, PACKED = 151, B_MATRIX = 162 };

template <typename S>
struct RecurrentWeight {
  const S* w; int K, N; bool trans;
  RecurrentWeight(const S* w, int K, int N, int, bool trans = false) : w(w), K(K), N(N), trans(trans) {}
  void mul(int n, const S* a, S beta, S* c) const {  // column-major view: Cᵀ (N × n) = Wᵀ · Aᵀ
    if (n > 0) gemm(trans ? 'T' : 'N', 'N', N, n, K, S(1), w, trans ? K : N, a, K, beta, c, N);
  }
};

#ifndef RK_NO_PACK  // -DRK_NO_PACK: plain sgemm for float too (A/B timing)
template <>
struct RecurrentWeight<float> {
  const float* w; float* packed = nullptr; int K, N; bool trans;
  RecurrentWeight(const float* w, int K, int N, int rows, bool trans = false) : w(w), K(K), N(N), trans(trans) {
    if (rows < 8) return;  // a matrix-vector product: MKL's plain call (gemv) is faster than packed there
    const auto size = RK_MKL(cblas_sgemm_pack_get_size);
    const auto pack = RK_MKL(cblas_sgemm_pack);
    if (!size || !pack || !RK_MKL(cblas_sgemm_compute)) return;  // not MKL: the plain sgemm
    size_t bytes = size(B_MATRIX, rows, N, K);
    packed = static_cast<float*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64));
    pack(ROW_MAJOR, B_MATRIX, trans ? TRANS : NO_TRANS, rows, N, K, 1.0f, w, trans ? K : N, packed);
  }
  ~RecurrentWeight() { std::free(packed); }
  RecurrentWeight(const RecurrentWeight&) = delete;
  RecurrentWeight& operator=(const RecurrentWeight&) = delete;
  void mul(int n, const float* a, float beta, float* c) const {
    if (n <= 0) return;
    if (packed) RK_MKL(cblas_sgemm_compute)(ROW_MAJOR, NO_TRANS, PACKED, n, N, K, a, K, packed, N, beta, c, N);
    else gemm(trans ? 'T' : 'N', 'N', N, n, K, 1.0f, w, trans ? K : N, a, K, beta, c, N);
  }
};
#endif

// σ and tanh both go through exp. float: an inline Cephes-style exp that gcc vectorises in the loop
// (measured 1.5× faster than glibc's libmvec call; σ, tanh within 3e-7); double: std::exp (libmvec).
// The clamps keep exp finite (-ffast-math assumes no infinities); tanh(±20), σ(±80) round to their limits.
template <typename S> inline S clamp(S x, S lim) { return x < -lim ? -lim : (x > lim ? lim : x); }
template <typename S> inline S exp_(S x) { return std::exp(x); }
template <> inline float exp_(float x) {
  float fx = std::floor(x * 1.44269504088896341f + 0.5f);  // x = fx·ln2 + r, |r| ≤ ln2/2
  x = x - fx * 0.693359375f + fx * 2.12194440e-4f;
  float z = x * x;
  float y = ((((1.9875691500E-4f * x + 1.3981999507E-3f) * x + 8.3334519073E-3f) * x + 4.1665795894E-2f) * x +
             1.6666665459E-1f) * x + 5.0000001201E-1f;
  y = y * z + x + 1.f;
  int32_t e = (int32_t(fx) + 127) << 23;  // 2^fx assembled in the exponent bits
  float scale;
  std::memcpy(&scale, &e, sizeof scale);
  return y * scale;
}
template <typename S> inline S sigmoid(S x) { return S(1) / (S(1) + exp_(-clamp(x, S(80)))); }
template <typename S> inline S tanh_(S x) { return S(1) - S(2) / (S(1) + exp_(S(2) * clamp(x, S(20)))); }

inline int gates_of(int kind) { return kind == LSTM ? 4 : kind == GRU ? 3 : 1; }
// Activations saved per row and step. Plain cells write them over xp (a scratch the caller gives up; each unit's
// xp is read before its gates are written): LSTM [i f g o] 4H, GRU [r z n] 3H, GRU's hn (H) in a buffer of its
// own. With extras: LSTM, GRU 4H ([r z n hn]), RNN h̃ (H), in a separate buffer.
inline int saved_of(int kind, int H, bool ext) {
  if (kind == LSTM || (ext && kind == GRU)) return 4 * H;
  return kind == GRU ? 3 * H : (ext ? H : 0);
}

// rows [bs[t+1], bs[t]) end at step t: their state there (units [j0, j0 + len)) is the final state.
template <typename S>
void take_finals(int t, int T, int H, const int64_t* bs, const S* src, S* dst, int j0, int len) {
  for (int64_t r = t + 1 < T ? bs[t + 1] : 0; r < bs[t]; ++r)
    std::memcpy(dst + r * H + j0, src + r * H + j0, sizeof(S) * len);
}
template <typename S>
void take_finals(int t, int T, int H, const int64_t* bs, const S* src, S* dst) {
  take_finals(t, T, H, bs, src, dst, 0, H);
}

template <typename P> inline P* off(P* p, int64_t k) { return p ? p + k : nullptr; }

// dh, dc hold the gradient flowing into the state (start: d h_T, d c_T; end: d h_0, d c_0).
// dg (T, B, G·H) receives the gradient of the pre-activations fed by xp; for GRU dhp (T, B, 3H) that of
// W_hh·h_prev + b_hh (it differs from dg in the n block by the factor r).
template <typename S>
void backward(int kind, int T, int B, int H, const S* dout, const S* out, const S* h0, const S* cs, const S* c0,
              const S* gates, const S* hns, const S* w_hh, const int64_t* bs, S* dg, S* dhp, S* dh, S* dc) {
  const int G = gates_of(kind), GH = G * H;
  const int64_t step = int64_t(B) * H;
  const int saved = saved_of(kind, H, false);
  const RecurrentWeight<S> weight(w_hh, GH, H, B);
  const std::vector<S> zeros(H, S(0));  // stands in for an absent row: the loops stay branch-free
  for (int t = T - 1; t >= 0; --t) {
    const int n = int(bs[t]);
    const S* hp = t == 0 ? h0 : out + (t - 1) * step;
    const S* ht = out + t * step;
    const S* dot = dout ? dout + t * step : nullptr;
    S* dgt = dg + t * int64_t(B) * GH;
    S* dhpt = kind == GRU ? dhp + t * int64_t(B) * GH : dgt;
    for (int b = 0; b < n; ++b) {
      S* dhb = dh + int64_t(b) * H;
      const S* dob = dot ? dot + int64_t(b) * H : zeros.data();
      S* d = dgt + int64_t(b) * GH;
      if (kind == RNN_TANH || kind == RNN_RELU) {
        const S* h = ht + int64_t(b) * H;
        const bool relu = kind == RNN_RELU;
#pragma omp simd
        for (int j = 0; j < H; ++j) {
          S dhj = dhb[j] + dob[j];
          d[j] = relu ? (h[j] > S(0) ? dhj : S(0)) : dhj * (S(1) - h[j] * h[j]);
        }
      } else if (kind == LSTM) {
        const S* g = gates + (t * int64_t(B) + b) * saved;
        const S* c = cs + t * step + int64_t(b) * H;
        const S* cp = (t == 0 ? c0 : cs + (t - 1) * step) + int64_t(b) * H;
        S* dcb = dc + int64_t(b) * H;
#pragma omp simd
        for (int j = 0; j < H; ++j) {
          S i = g[j], f = g[H + j], gg = g[2 * H + j], o = g[3 * H + j];
          S dhj = dhb[j] + dob[j];
          S tc = tanh_(c[j]);
          S dcj = dcb[j] + dhj * o * (S(1) - tc * tc);
          d[j] = dcj * gg * i * (S(1) - i);
          d[H + j] = dcj * cp[j] * f * (S(1) - f);
          d[2 * H + j] = dcj * i * (S(1) - gg * gg);
          d[3 * H + j] = dhj * tc * o * (S(1) - o);
          dcb[j] = dcj * f;
        }
      } else {  // GRU
        const S* g = gates + (t * int64_t(B) + b) * saved;
        const S* hnb = hns + t * step + int64_t(b) * H;
        const S* hprev = hp + int64_t(b) * H;
        S* e = dhpt + int64_t(b) * GH;
#pragma omp simd
        for (int j = 0; j < H; ++j) {
          S r = g[j], z = g[H + j], nn = g[2 * H + j], hn = hnb[j];
          S dhj = dhb[j] + dob[j];
          S dpn = dhj * (S(1) - z) * (S(1) - nn * nn);
          S dpr = dpn * hn * r * (S(1) - r);
          S dpz = dhj * (hprev[j] - nn) * z * (S(1) - z);
          d[j] = dpr; d[H + j] = dpz; d[2 * H + j] = dpn;
          e[j] = dpr; e[H + j] = dpz; e[2 * H + j] = dpn * r;
          dhb[j] = dhj * z;  // the direct path; the matmul below adds the path through W_hh
        }
      }
    }
    weight.mul(n, dhpt, kind == GRU ? S(1) : S(0), dh);  // dh[:n] (+)= dhp[t, :n] · W_hh
  }
}

#include "kernels_extras.h"  // forward_ext / backward_ext: LayerNorm, recurrent dropout, zoneout

#include "kernels_threads.h"  // run_chunks, run_team (on torch's OpenMP team), SpinBarrier
#include "kernels_forward.h"  // the plain cells' forward: by blocks of rows, or by hidden units (tiny batches)
#include "kernels_scan.h"     // the minimal cells' gated scan (minGRU, minLSTM)

}  // namespace

extern "C" {

#define RK_EXPORT __attribute__((visibility("default")))

RK_EXPORT int rk_version() { return 7; }

// The minimal cells' gated scan (kernels_scan.h); argument lists as contract.SCAN_FORWARD / SCAN_BACKWARD.
#define RK_DEFINE_SCAN(SUFFIX, S)                                                                              \
  RK_EXPORT void rk_gated_scan_forward_##SUFFIX(int T, int B, int H, const S* u, int ldu, const S* c, int ldc, \
                                                const S* h0, const int64_t* lengths, S* out, S* hn,           \
                                                int chunks) {                                                 \
    scan_by_rows(B, chunks, [&](int64_t r0, int64_t r1) {                                                    \
      gated_scan_forward<S>(T, B, H, r0, r1, u, ldu, c, ldc, h0, lengths, out, hn);                          \
    });                                                                                                        \
  }                                                                                                            \
  RK_EXPORT void rk_gated_scan_backward_##SUFFIX(int T, int B, int H, const S* dout, const S* u, int ldu,      \
                                                 const S* c, int ldc, const S* h0, const S* out,              \
                                                 const int64_t* lengths, S* du, S* dc, S* dh, int chunks) {   \
    scan_by_rows(B, chunks, [&](int64_t r0, int64_t r1) {                                                    \
      gated_scan_backward<S>(T, B, H, r0, r1, dout, u, ldu, c, ldc, h0, out, lengths, du, dc, dh);           \
    });                                                                                                        \
  }

RK_DEFINE_SCAN(f32, float)
RK_DEFINE_SCAN(f64, double)

// The kernels' side of rnnkit.engine.fused.contract, checked by the loader: version, number of kinds, then per
// kind its gates, its saved activations (plain, then extras; in units of H), then struct Extras' field count
// and size, the size of the index type (batch_sizes, starts, lengths), and the gated scan's two signatures.
// Returns the count written (at most n).
RK_EXPORT int rk_contract(int64_t* out, int n) {
  std::vector<int64_t> v{rk_version(), 4};
  for (int k : {RNN_TANH, RNN_RELU, LSTM, GRU}) v.push_back(gates_of(k));
  for (int k : {RNN_TANH, RNN_RELU, LSTM, GRU}) v.push_back(saved_of(k, 1, false));
  for (int k : {RNN_TANH, RNN_RELU, LSTM, GRU}) v.push_back(saved_of(k, 1, true));
  v.push_back(int64_t(sizeof(kExtrasFields) / sizeof(kExtrasFields[0])));
  v.push_back(int64_t(sizeof(Extras)));
  v.push_back(int64_t(sizeof(int64_t)));
  // The gated scan's signatures: parameter count and integer mask, forward then backward (both dtypes alike).
  static_assert(arity(&rk_gated_scan_forward_f32) == arity(&rk_gated_scan_forward_f64));
  static_assert(integer_args(&rk_gated_scan_backward_f32) == integer_args(&rk_gated_scan_backward_f64));
  v.push_back(arity(&rk_gated_scan_forward_f32));
  v.push_back(integer_args(&rk_gated_scan_forward_f32));
  v.push_back(arity(&rk_gated_scan_backward_f32));
  v.push_back(integer_args(&rk_gated_scan_backward_f32));
  const int count = std::min(n, int(v.size()));
  for (int i = 0; i < count; ++i) out[i] = v[i];
  return count;
}
RK_EXPORT const char* rk_extras_field(int i) {
  const int count = int(sizeof(kExtrasFields) / sizeof(kExtrasFields[0]));
  return i >= 0 && i < count ? kExtrasFields[i] : "";
}
RK_EXPORT double rk_ln_eps() { return kLnEps; }

// chunks < 0: the rows are one block whose hidden units are split across −chunks threads (forward only).
#define RK_DEFINE(SUFFIX, S)                                                                                   \
  RK_EXPORT void rk_forward_##SUFFIX(int kind, int T, int B, int H, const S* xp, const S* h0, const S* c0,      \
                                     const S* w_hh, const S* b_hh, const int64_t* bs, S* out, S* cs, S* gates, \
                                     S* hn, int save, S* work, S* hT, S* cT, int threads, int chunks,           \
                                     const int64_t* starts) {                                                  \
    const Layer<S> layer{kind, T, B, H, xp, h0, c0, b_hh, bs, out, cs, gates, hn, hT, cT, save};              \
    if (chunks < 0) return forward_units(layer, -chunks, w_hh);                                                \
    run_chunks(chunks, threads, [&](int c) {                                                                   \
      const int64_t r = starts[c];                                                                             \
      forward_rows(layer.at(r, bs + int64_t(c) * T), int(starts[c + 1] - r), w_hh,                            \
                   work + r * gates_of(kind) * H);                                                             \
    });                                                                                                        \
  }                                                                                                            \
  RK_EXPORT void rk_backward_##SUFFIX(int kind, int T, int B, int H, const S* dout, const S* out, const S* h0,  \
                                      const S* cs, const S* c0, const S* gates, const S* hn, const S* w_hh,   \
                                      const int64_t* bs, S* dg, S* dhp, S* dh, S* dc, int threads, int chunks, \
                                      const int64_t* starts) {                                                 \
    const int64_t GH = int64_t(gates_of(kind)) * H, sv = saved_of(kind, H, false);                              \
    run_chunks(chunks, threads, [&](int c) {                                                                   \
      const int64_t r = starts[c];                                                                             \
      backward<S>(kind, T, B, H, off(dout, r * H), out + r * H, h0 + r * H, off(cs, r * H), off(c0, r * H),   \
                  off(gates, r * sv), off(hn, r * H), w_hh, bs + int64_t(c) * T, dg + r * GH, dhp + r * GH,   \
                  dh + r * H, off(dc, r * H));                                                                 \
    });                                                                                                        \
  }

RK_DEFINE(f32, float)
RK_DEFINE(f64, double)

#define RK_DEFINE_EXT(SUFFIX, S)                                                                               \
  static Extras shift_##SUFFIX(const Extras& e, int64_t r, int64_t H, int64_t GH) {                            \
    Extras s = e;                                                                                              \
    s.rmask = off((const S*)e.rmask, r * H); s.zh = off((const S*)e.zh, r * H);                               \
    s.zc = off((const S*)e.zc, r * H); s.ct = off((S*)e.ct, r * H); s.xh = off((S*)e.xh, r * GH);             \
    s.rs = off((S*)e.rs, r); s.xhc = off((S*)e.xhc, r * H); s.rsc = off((S*)e.rsc, r);                        \
    s.hin = off((S*)e.hin, r * H);                                                                             \
    return s;                                                                                                  \
  }                                                                                                            \
  RK_EXPORT void rk_forward_ext_##SUFFIX(int kind, int T, int B, int H, const S* xp, const S* h0, const S* c0,  \
                                         const S* w_t, const S* b_hh, const int64_t* bs, S* out, S* cs,         \
                                         S* gates, S* work, S* hT, S* cT, int threads, const Extras* e,         \
                                         int chunks, const int64_t* starts) {                                  \
    const int64_t GH = int64_t(gates_of(kind)) * H, sv = saved_of(kind, H, true);                               \
    run_chunks(chunks, threads, [&](int c) {                                                                   \
      const int64_t r = starts[c];                                                                             \
      forward_ext<S>(kind, T, B, H, xp + r * GH, h0 + r * H, off(c0, r * H), w_t, b_hh, bs + int64_t(c) * T,    \
                     out + r * H, off(cs, r * H), gates + r * sv, work + r * GH, hT + r * H, off(cT, r * H),   \
                     shift_##SUFFIX(*e, r, H, GH));                                                            \
    });                                                                                                        \
  }                                                                                                            \
  RK_EXPORT void rk_backward_ext_##SUFFIX(int kind, int T, int B, int H, const S* dout, const S* out,           \
                                          const S* h0, const S* cs, const S* c0, const S* gates,              \
                                          const S* w_hh, const int64_t* bs, S* dg, S* da, S* dh, S* dc,        \
                                          S* dln_w, S* dln_b, S* dlnc_w, S* dlnc_b, S* tmp, int threads,       \
                                          const Extras* e, int chunks, const int64_t* starts) {                \
    const int64_t GH = int64_t(gates_of(kind)) * H, sv = saved_of(kind, H, true);                              \
    run_chunks(chunks, threads, [&](int c) {                                                                   \
      const int64_t r = starts[c];                                                                             \
      /* each chunk accumulates the LayerNorm gradients in its own row c of dln_* (chunks, ·) */               \
      backward_ext<S>(kind, T, B, H, off(dout, r * H), out + r * H, h0 + r * H, off(cs, r * H),               \
                      off(c0, r * H), gates + r * sv, w_hh, bs + int64_t(c) * T, dg + r * GH, da + r * GH,    \
                      dh + r * H, off(dc, r * H), off(dln_w, c * GH), off(dln_b, c * GH), off(dlnc_w, c * H), \
                      off(dlnc_b, c * H), tmp + r * H, shift_##SUFFIX(*e, r, H, GH));                           \
    });                                                                                                        \
  }

RK_DEFINE_EXT(f32, float)
RK_DEFINE_EXT(f64, double)
}
