// rnnkit fused kernels, part 3: the plain cells' forward. Included by kernels.cpp inside its anonymous
// namespace, after kernels_threads.h (it uses gemm, transpose, RecurrentWeight, the activations from there,
// run_chunks and SpinBarrier from that; the system headers are included at the top of kernels.cpp).
#pragma once

// One layer and direction's forward tensors (layout: kernels.cpp), shifted to a block of rows by `at`.
template <typename S>
struct Layer {
  int kind, T, B, H;
  const S *xp, *h0, *c0, *b_hh;
  const int64_t* bs;
  S *out, *cs, *gates, *hn, *hT, *cT;  // gates: over xp (save) or a step's scratch; hn: GRU only
  int save;
  Layer at(int64_t r, const int64_t* block_bs) const {  // the block of rows starting at row r
    const int64_t GH = int64_t(gates_of(kind)) * H, sv = saved_of(kind, H, false);
    return {kind, T, B, H, xp + r * GH, h0 + r * H, off(c0, r * H), b_hh, block_bs, out + r * H, off(cs, r * H),
            off(gates, r * sv), off(hn, r * H), hT + r * H, off(cT, r * H), save};
  }
};

// The pointwise update of units [j0, j0 + len) of the first n rows at step t. work holds those units'
// recurrent products h_prev·W_hhᵀ, row stride G·len, gate g's block at column g·len.
template <typename S>
void update(const Layer<S>& L, int t, int n, int j0, int len, const S* work) {
  const int kind = L.kind, H = L.H, GH = gates_of(kind) * H, ld = gates_of(kind) * len;
  const int64_t step = int64_t(L.B) * H;
  const int saved = saved_of(kind, H, false);
  const S* hp = t == 0 ? L.h0 : L.out + (t - 1) * step;
  const S* xt = L.xp + t * int64_t(L.B) * GH;
  // With save, gates lies over xp: each unit's four (three) xp values are read before its gates are written,
  // in the same iteration, so the in-place write never clobbers an input still to be read.
  S* gt = L.gates + (L.save ? t : 0) * int64_t(L.B) * saved;  // without save: one step's scratch, overwritten
  S* hnt = L.kind == GRU ? L.hn + (L.save ? t : 0) * step : nullptr;
  for (int b = 0; b < n; ++b) {
    const S* x = xt + int64_t(b) * GH + j0;
    const S* w = work + int64_t(b) * ld;
    S* h = L.out + t * step + int64_t(b) * H + j0;
    if (kind == RNN_TANH) {
#pragma omp simd
      for (int j = 0; j < len; ++j) h[j] = tanh_(x[j] + w[j]);
    } else if (kind == RNN_RELU) {
#pragma omp simd
      for (int j = 0; j < len; ++j) { S v = x[j] + w[j]; h[j] = v > S(0) ? v : S(0); }
    } else if (kind == LSTM) {
      const S* cp = (t == 0 ? L.c0 : L.cs + (t - 1) * step) + int64_t(b) * H + j0;
      S* c = L.cs + t * step + int64_t(b) * H + j0;
      S* g = gt + int64_t(b) * saved + j0;
#pragma omp simd
      for (int j = 0; j < len; ++j) {
        S i = sigmoid(x[j] + w[j]), f = sigmoid(x[H + j] + w[len + j]);
        S gg = tanh_(x[2 * H + j] + w[2 * len + j]), o = sigmoid(x[3 * H + j] + w[3 * len + j]);
        S cj = f * cp[j] + i * gg;
        c[j] = cj;
        h[j] = o * tanh_(cj);
        g[j] = i; g[H + j] = f; g[2 * H + j] = gg; g[3 * H + j] = o;  // unconditional: no masked stores
      }
    } else {  // GRU
      const S* hprev = hp + int64_t(b) * H + j0;
      const S* bh = L.b_hh + j0;
      S* g = gt + int64_t(b) * saved + j0;
      S* hnb = hnt + int64_t(b) * H + j0;
#pragma omp simd
      for (int j = 0; j < len; ++j) {
        S r = sigmoid(x[j] + w[j] + bh[j]), z = sigmoid(x[H + j] + w[len + j] + bh[H + j]);
        S hn = w[2 * len + j] + bh[2 * H + j];
        S nn = tanh_(x[2 * H + j] + r * hn);
        h[j] = nn + z * (hprev[j] - nn);
        g[j] = r; g[H + j] = z; g[2 * H + j] = nn; hnb[j] = hn;
      }
    }
  }
}

// The time loop over units [j0, j0 + len): all H on the row-block path (weight: w_hh packed, or a Slice of
// all units), one thread's share on the unit-split path (weight: its Slice; sync: the SpinBarrier).
// work: (B, G·len) scratch for the recurrent products.
template <typename S, typename Weight, typename Sync>
void forward(const Layer<S>& L, const Weight& weight, int j0, int len, S* work, Sync& sync) {
  const int64_t step = int64_t(L.B) * L.H;
  for (int t = 0; t < L.T; ++t) {
    const int n = int(L.bs[t]);
    weight.mul(n, t == 0 ? L.h0 : L.out + (t - 1) * step, S(0), work);  // work[:n] = h_prev[:n] · W_hhᵀ
    update(L, t, n, j0, len, work);
    take_finals(t, L.T, L.H, L.bs, L.out + t * step, L.hT, j0, len);
    if (L.kind == LSTM) take_finals(t, L.T, L.H, L.bs, L.cs + t * step, L.cT, j0, len);
    sync.wait();  // every unit of the next step needs all of h_t
  }
}

// At batch 1-7 the step's product h_prev·W_hhᵀ is a matrix-vector product, bound by how fast one core reads
// W_hh. Splitting the rows (sequences) gives a second core nothing to do, so `forward_units` splits the hidden
// UNITS instead: thread p owns units [j0, j1) with all G gate rows of W_hh for them, copies that Slice once per
// call into its own buffer (then it stays in its core's L2 for the whole loop), computes its gate block and
// the pointwise update of its units each step, and meets the others at a SpinBarrier (every unit needs the
// whole h_prev). With one thread the Slice of all units is the row-block path's weight below 8 rows.

// Units [j0, j0 + len) of all G gates of W_hhᵀ, copied out of w_hh (G·H, H): column g·len + u is row
// g·H + j0 + u of w_hh. Stored in blocks of NB columns (256 bytes, four AVX-512 registers), each block
// K × NB contiguous, so a matrix-vector product streams the slice once, front to back, with NB accumulators
// per row in registers. Measured (one core, f32, K 256, N 512, 512 KiB from L2): 1 row 7.7 µs against MKL's
// sgemm 11.8 (1.5× wherever the slice fits L2, f64 1.2-1.3×, about even from L3); 2 rows 9.6 vs 12.7;
// 3 rows 12.3 vs 13.3; from 4 rows MKL wins, so those go to one sgemm/dgemm per block (16.4 µs at 4 rows).
// The copy goes through MKL's omatcopy on one thread: 29 µs for 512 KiB (a plain loop 250 µs, a tiled one 65).
#if defined(__AVX512F__)
// One 512-bit register of S, for the hand matrix-vector loop below.
template <typename S>
struct Zmm;
template <>
struct Zmm<float> {
  using T = __m512;
  static constexpr int lanes = 16;
  static T zero() { return _mm512_setzero_ps(); }
  static T load(const float* p) { return _mm512_load_ps(p); }
  static T broadcast(float v) { return _mm512_set1_ps(v); }
  static T fma(T a, T b, T c) { return _mm512_fmadd_ps(a, b, c); }
  static T add(T a, T b) { return _mm512_add_ps(a, b); }
  static void store(float* p, T v) { _mm512_store_ps(p, v); }
};
template <>
struct Zmm<double> {
  using T = __m512d;
  static constexpr int lanes = 8;
  static T zero() { return _mm512_setzero_pd(); }
  static T load(const double* p) { return _mm512_load_pd(p); }
  static T broadcast(double v) { return _mm512_set1_pd(v); }
  static T fma(T a, T b, T c) { return _mm512_fmadd_pd(a, b, c); }
  static T add(T a, T b) { return _mm512_add_pd(a, b); }
  static void store(double* p, T v) { _mm512_store_pd(p, v); }
};
#endif

template <typename S>
struct Slice {
  static constexpr int NB = 256 / sizeof(S);
  S* w = nullptr;
  int K, N;
  Slice(const S* w_hh, int G, int H, int j0, int len) : K(H), N(G * len) {
    const int padded = (N + NB - 1) / NB * NB;
    w = static_cast<S*>(std::aligned_alloc(64, sizeof(S) * std::max<int64_t>(1, int64_t(padded) * K)));
    const int previous = blas_threads_local(1);  // threaded omatcopy: up to 100× slower, measured
    for (int col = 0; col < N;) {  // runs of w_hh rows that stay in one block and one gate
      const int m = std::min(NB - col % NB, len - col % len);
      const S* src = w_hh + (int64_t(col / len) * H + j0 + col % len) * H;
      transpose(m, K, src, H, w + int64_t(col / NB) * NB * K + col % NB, NB);
      col += m;
    }
    blas_threads_local(previous);
    S* last = w + int64_t(padded - NB) * K;  // the last block: its spare columns are zeros
    for (int k = 0; N < padded && k < K; ++k) std::fill(last + int64_t(k) * NB + N % NB, last + (k + 1) * NB, S(0));
  }
  ~Slice() { std::free(w); }
  Slice(const Slice&) = delete;
  Slice& operator=(const Slice&) = delete;

  // c (n × N, row-major) = a (n × K) · slice. beta must be 0 (the forward's only use).
  void mul(int n, const S* a, S /*beta*/, S* c) const {
    if (n <= 0 || N == 0) return;
    switch (n) {
      case 1: return rows<1>(a, c);
      case 2: return rows<2>(a, c);
      case 3: return rows<3>(a, c);
      default:
        for (int b = 0; b * NB < N; ++b)
          gemm('N', 'N', std::min(NB, N - b * NB), n, K, S(1), w + int64_t(b) * NB * K, NB, a, K, S(0), c + b * NB,
               N);
    }
  }

  template <int R>
  void rows(const S* a, S* c) const {
#if defined(__AVX512F__)
    rows_avx512<R>(a, c);
#else  // the portable loop: one accumulator row of NB per input row
    for (int b = 0; b * NB < N; ++b) {
      const S* wb = w + int64_t(b) * NB * K;
      S acc[R][NB] = {};
      for (int k = 0; k < K; ++k) {
        for (int r = 0; r < R; ++r) {
          const S ar = a[int64_t(r) * K + k];
#pragma omp simd
          for (int j = 0; j < NB; ++j) acc[r][j] += ar * wb[int64_t(k) * NB + j];
        }
      }
      const int m = std::min(NB, N - b * NB);
      for (int r = 0; r < R; ++r) std::memcpy(c + int64_t(r) * N + b * NB, acc[r], sizeof(S) * m);
    }
#endif
  }

#if defined(__AVX512F__)
  // The same product with the NB-column block held in four 512-bit registers per row and, for one row, two
  // sets of them (even and odd k): one set makes each register wait for its previous FMA's latency; two keep
  // the loads streaming. Measured (one core, f32, K 256, N 512, from L2, min of 30 × 200): 5.2 µs against
  // 5.6 for the portable loop above (7.9 without 512-bit vectors); K 256, N 256: 2.5 against 2.7.
  template <int R>
  void rows_avx512(const S* a, S* c) const {
    using V = Zmm<S>;
    constexpr int L = V::lanes, P = R == 1 ? 2 : 1;  // L lanes a register, four registers = NB columns
    static_assert(4 * L == NB, "a block is four registers wide");
    for (int b = 0; b * NB < N; ++b) {
      const S* wb = w + int64_t(b) * NB * K;
      typename V::T acc[P][R][4];
      for (int q = 0; q < P; ++q)
        for (int r = 0; r < R; ++r)
          for (int j = 0; j < 4; ++j) acc[q][r][j] = V::zero();
      int k = 0;
      for (; k + P <= K; k += P) {
        for (int q = 0; q < P; ++q) {
          const S* row = wb + int64_t(k + q) * NB;
          const typename V::T w0 = V::load(row), w1 = V::load(row + L), w2 = V::load(row + 2 * L),
                              w3 = V::load(row + 3 * L);
          for (int r = 0; r < R; ++r) {
            const typename V::T ar = V::broadcast(a[int64_t(r) * K + k + q]);
            acc[q][r][0] = V::fma(ar, w0, acc[q][r][0]);
            acc[q][r][1] = V::fma(ar, w1, acc[q][r][1]);
            acc[q][r][2] = V::fma(ar, w2, acc[q][r][2]);
            acc[q][r][3] = V::fma(ar, w3, acc[q][r][3]);
          }
        }
      }
      for (; k < K; ++k) {  // an odd K's last row (P = 2)
        const S* row = wb + int64_t(k) * NB;
        for (int r = 0; r < R; ++r) {
          const typename V::T ar = V::broadcast(a[int64_t(r) * K + k]);
          for (int j = 0; j < 4; ++j) acc[0][r][j] = V::fma(ar, V::load(row + j * L), acc[0][r][j]);
        }
      }
      const int m = std::min(NB, N - b * NB);
      for (int r = 0; r < R; ++r) {
        alignas(64) S out[NB];
        for (int j = 0; j < 4; ++j) {
          typename V::T sum = acc[0][r][j];
          for (int q = 1; q < P; ++q) sum = V::add(sum, acc[q][r][j]);
          V::store(out + j * L, sum);
        }
        std::memcpy(c + int64_t(r) * N + b * NB, out, sizeof(S) * m);
      }
    }
  }
#endif
};

// Unit p's range [bound(p), bound(p+1)) of `parts` near-equal ranges, cut at whole cache lines where H
// allows (no line of h_t written by two cores).
template <typename S>
inline int unit_bound(int p, int parts, int H) {
  const int line = H >= parts * int(64 / sizeof(S)) ? int(64 / sizeof(S)) : 1;
  return p == parts ? H : int(int64_t(H / line) * p / parts) * line;
}

// One block of rows on the calling thread. The product's weight: below 8 rows a Slice of all units (a
// matrix-vector product: the hand loop is 1.2-1.5× faster than MKL), from 8 rows w_hh itself (float: packed
// by MKL with the transpose flag; double: dgemm through the transposed view).
template <typename S>
void forward_rows(const Layer<S>& L, int rows, const S* w_hh, S* work) {
  NoSync none;
  const int G = gates_of(L.kind);
  if (rows < 8) forward(L, Slice<S>(w_hh, G, L.H, 0, L.H), 0, L.H, work, none);
  else forward(L, RecurrentWeight<S>(w_hh, L.H, G * L.H, rows, true), 0, L.H, work, none);
}

// One block of rows (a tiny batch) with its hidden units split across `parts` threads (see above): each
// copies its Slice of W_hh on its own core, then runs the loop over its units, meeting the others every step.
template <typename S>
void forward_units(const Layer<S>& L, int parts, const S* w_hh) {
  const int G = gates_of(L.kind);
  SpinBarrier sync;
  run_team(std::max(1, std::min(parts, L.H)), [&](int p, int n) {
    sync.expect(n);
    const int j0 = unit_bound<S>(p, n, L.H), len = unit_bound<S>(p + 1, n, L.H) - j0;
    const Slice<S> slice(w_hh, G, L.H, j0, len);
    std::vector<S> work(size_t(L.B) * G * len);
    forward(L, slice, j0, len, work.data(), sync);
  });
}
