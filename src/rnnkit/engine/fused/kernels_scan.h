// rnnkit fused kernels, part 5: the minimal cells' gated scan (minGRU, minLSTM). Included by kernels.cpp inside
// its anonymous namespace, after kernels_threads.h.
//
// No matrix product here: the caller projects every step at once (u_t, c_t from x_t alone), so what is left is
// an elementwise recurrence, one pass forward and one back, each vectorised along the units of a block of rows.
// Per row b, over its own length L_b (T without lengths):
//   s_t = σ(u_t);  h_t = (1 − s_t) ⊙ h_(t−1) + s_t ⊙ c_t,  h_(−1) = h0;
//   out_t = h_t for t < L_b and 0 after;  h_n = h_(L_b − 1) (h0 where L_b = 0).
// Backward, from each row's end, D = δh_n; for t = L_b − 1 … 0, with G = δout_t + D:
//   δc_t = G ⊙ s_t;  δu_t = δc_t ⊙ (c_t − h_(t−1)) ⊙ (1 − s_t);  D = G ⊙ (1 − s_t);  finally δh0 = D;
// δu_t = δc_t = 0 past the length. σ(u_t) is recomputed (one exp) rather than saved: the backward reads only u,
// c, h0 and out, which the caller keeps anyway.
// Layout, row-major: u, c (T, B, H) with rows (t, b) `ldu`, `ldc` values apart (≥ H: e.g. u and c are the two
// halves of one (T, B, 2H) projection, read in place); out, δout, δu, δc (T, B, H) and h0, h_n, δh (B, H)
// contiguous; lengths (B,) int64 or null. `dh` holds δh_n on entry and δh0 on return.
#pragma once

// A row's length, clamped into [0, T]: the kernels index with it, whatever the caller passed.
inline int64_t row_length(const int64_t* lengths, int64_t b, int T) {
  return lengths ? std::min<int64_t>(std::max<int64_t>(lengths[b], 0), T) : T;
}

// One step of n units (a row, or a block of rows that all run): o = (1 − σ(u)) ⊙ prev + σ(u) ⊙ c.
template <typename S>
inline void scan_step(int64_t n, const S* u, const S* c, const S* prev, S* o) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const S s = sigmoid(u[j]);
    o[j] = (S(1) - s) * prev[j] + s * c[j];
  }
}

// One step back over n units: δc, δu of this step, and D (in d) carried to the step before.
template <typename S>
inline void scan_step_back(int64_t n, const S* dout, const S* u, const S* c, const S* prev, S* du, S* dc, S* d) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) {
    const S s = sigmoid(u[j]);
    const S g = dout[j] + d[j];
    const S dcj = g * s;
    dc[j] = dcj;
    du[j] = dcj * (c[j] - prev[j]) * (S(1) - s);
    d[j] = g * (S(1) - s);
  }
}

// Rows [r0, r1) of the forward. Without lengths and with dense u, c the rows' units are one run per step.
template <typename S>
void gated_scan_forward(int T, int B, int H, int64_t r0, int64_t r1, const S* u, int ldu, const S* c, int ldc,
                        const S* h0, const int64_t* lengths, S* out, S* hn) {
  const int64_t step = int64_t(B) * H;
  const bool dense = !lengths && ldu == H && ldc == H;
  for (int t = 0; t < T; ++t) {
    const int64_t at = t * step;
    if (dense) {
      const S* prev = t == 0 ? h0 : out + at - step;
      scan_step((r1 - r0) * H, u + at + r0 * H, c + at + r0 * H, prev + r0 * H, out + at + r0 * H);
      continue;
    }
    for (int64_t b = r0; b < r1; ++b) {
      const int64_t i = at + b * H, row = int64_t(t) * B + b;
      if (t >= row_length(lengths, b, T)) {
        std::fill(out + i, out + i + H, S(0));
        continue;
      }
      scan_step(H, u + row * ldu, c + row * ldc, t == 0 ? h0 + b * H : out + i - step, out + i);
    }
  }
  for (int64_t b = r0; b < r1; ++b) {
    const int64_t L = row_length(lengths, b, T);
    const S* last = L == 0 ? h0 + b * H : out + (L - 1) * step + b * H;
    std::memcpy(hn + b * H, last, sizeof(S) * H);
  }
}

// Rows [r0, r1) of the backward.
template <typename S>
void gated_scan_backward(int T, int B, int H, int64_t r0, int64_t r1, const S* dout, const S* u, int ldu,
                         const S* c, int ldc, const S* h0, const S* out, const int64_t* lengths, S* du, S* dc,
                         S* dh) {
  const int64_t step = int64_t(B) * H;
  const bool dense = !lengths && ldu == H && ldc == H;
  for (int t = T - 1; t >= 0; --t) {
    const int64_t at = t * step;
    if (dense) {
      const S* prev = (t == 0 ? h0 : out + at - step) + r0 * H;
      const int64_t i = at + r0 * H;
      scan_step_back((r1 - r0) * H, dout + i, u + i, c + i, prev, du + i, dc + i, dh + r0 * H);
      continue;
    }
    for (int64_t b = r0; b < r1; ++b) {
      const int64_t i = at + b * H, row = int64_t(t) * B + b;
      if (t >= row_length(lengths, b, T)) {
        std::fill(du + i, du + i + H, S(0));
        std::fill(dc + i, dc + i + H, S(0));
        continue;
      }
      const S* prev = t == 0 ? h0 + b * H : out + i - step;
      scan_step_back(H, dout + i, u + row * ldu, c + row * ldc, prev, du + i, dc + i, dh + b * H);
    }
  }
}

// Rows never interact: `chunks` blocks of rows, each on its own thread (run_chunks), one block without threads.
template <typename F>
void scan_by_rows(int B, int chunks, F&& body) {
  chunks = std::max(1, std::min(chunks, B));
  run_chunks(chunks, 0, [&](int k) { body(int64_t(B) * k / chunks, int64_t(B) * (k + 1) / chunks); });
}

// The number of parameters of a function and which of them are integers (bit i: parameter i), for rk_contract:
// the loader builds its ctypes signature from the contract's list of arguments and checks it against these.
template <typename R, typename... A>
constexpr int64_t arity(R (*)(A...)) { return int64_t(sizeof...(A)); }
template <typename R, typename... A>
constexpr int64_t integer_args(R (*)(A...)) {
  int64_t mask = 0, bit = 1;
  ((mask |= std::is_integral_v<A> ? bit : 0, bit <<= 1), ...);
  return mask;
}
