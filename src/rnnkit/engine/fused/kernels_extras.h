// rnnkit fused kernels, part 2: the general loop for cell extras. Included by kernels.cpp inside its
// anonymous namespace (it uses gemm, RecurrentWeight, sigmoid, tanh_, take_finals from there).
#pragma once

// ---- Cell extras (see rnnkit.cells.extras): recurrent dropout, zoneout, LayerNorm -------------------------
// One general loop; the plain kernels above stay branch-free. Extra inputs (null when the option is off):
//   rmask (B, H)      recurrent-dropout mask: ĥ = h_prev ⊙ m feeds W_hh (hin (B, H) holds ĥ for the step)
//   zh, zc (T, B, H)  zoneout keep-weights d: h = h̃ + d ⊙ (h_prev - h̃) (c likewise, LSTM)
//   ln_w, ln_b (GH)   LN_hh on a = ĥ·W_hhᵀ; saves xh (T, B, GH) = normalised a and rs (T, B) = 1/σ
//   lnc_w, lnc_b (H)  LSTM's LN_c on c̃ before tanh; saves xhc (T, B, H), rsc (T, B)
// Always saved: gates (T, B, 4H) as in the plain kernels, for RNN (T, B, H) = h̃; ct (T, B, H) = LSTM's c̃.
constexpr double kLnEps = 1e-5;  // LayerNorm's eps: rk_ln_eps(), checked against the contract at load

template <typename S>
inline void ln_forward(int n, S* v, const S* w, const S* b, S* xhat, S* rstd) {
  S mean = 0, var = 0;
#pragma omp simd reduction(+ : mean)
  for (int j = 0; j < n; ++j) mean += v[j];
  mean /= n;
#pragma omp simd reduction(+ : var)
  for (int j = 0; j < n; ++j) { S d = v[j] - mean; var += d * d; }
  S r = S(1) / std::sqrt(var / n + S(kLnEps));
  *rstd = r;
#pragma omp simd
  for (int j = 0; j < n; ++j) { S xh = (v[j] - mean) * r; xhat[j] = xh; v[j] = xh * w[j] + b[j]; }
}

// dv = rstd·(g - mean(g) - x̂·mean(g ⊙ x̂)) with g = dy ⊙ γ; accumulates dγ += dy ⊙ x̂ and dβ += dy.
template <typename S>
inline void ln_backward(int n, const S* dy, const S* w, const S* xhat, S rstd, S* dv, S* dw, S* db) {
  S mg = 0, mgx = 0;
#pragma omp simd reduction(+ : mg, mgx)
  for (int j = 0; j < n; ++j) {
    S g = dy[j] * w[j];
    mg += g; mgx += g * xhat[j];
    dw[j] += dy[j] * xhat[j];
    db[j] += dy[j];
  }
  mg /= n; mgx /= n;
#pragma omp simd
  for (int j = 0; j < n; ++j) dv[j] = rstd * (dy[j] * w[j] - mg - xhat[j] * mgx);
}

// The fields of struct Extras, in order, once: the struct and the names rk_extras_field() reports (the loader
// compares them with rnnkit.engine.fused.contract.EXTRAS_FIELDS) are both made from these lists.
#define RK_EXTRAS_INPUTS(X) X(rmask) X(zh) X(zc) X(ln_w) X(ln_b) X(lnc_w) X(lnc_b)
#define RK_EXTRAS_OUTPUTS(X) X(ct) X(xh) X(rs) X(xhc) X(rsc) X(hin)
#define RK_EXTRAS_IN(name) const void* name;
#define RK_EXTRAS_OUT(name) void* name;
#define RK_EXTRAS_NAME(name) #name,
struct Extras {
  RK_EXTRAS_INPUTS(RK_EXTRAS_IN)
  RK_EXTRAS_OUTPUTS(RK_EXTRAS_OUT)
};
constexpr const char* kExtrasFields[] = {RK_EXTRAS_INPUTS(RK_EXTRAS_NAME) RK_EXTRAS_OUTPUTS(RK_EXTRAS_NAME)};
static_assert(sizeof(Extras) == sizeof(kExtrasFields) / sizeof(kExtrasFields[0]) * sizeof(void*),
              "struct Extras: one pointer per field");

template <typename S>
void forward_ext(int kind, int T, int B, int H, const S* xp, const S* h0, const S* c0, const S* w_t, const S* b_hh,
                 const int64_t* bs, S* out, S* cs, S* gates, S* work, S* hT, S* cT, const Extras& e) {
  const int G = gates_of(kind), GH = G * H;
  const int64_t step = int64_t(B) * H;
  const int saved = saved_of(kind, H, true);
  const S *rmask = (const S*)e.rmask, *zh = (const S*)e.zh, *zc = (const S*)e.zc;
  const S *ln_w = (const S*)e.ln_w, *ln_b = (const S*)e.ln_b, *lnc_w = (const S*)e.lnc_w, *lnc_b = (const S*)e.lnc_b;
  S *ct = (S*)e.ct, *xh = (S*)e.xh, *rs = (S*)e.rs, *xhc = (S*)e.xhc, *rsc = (S*)e.rsc, *hin = (S*)e.hin;
  const RecurrentWeight<S> weight(w_t, H, GH, B);
  const std::vector<S> zeros(H, S(0));  // stands in for an absent mask row: the loops stay branch-free
  for (int t = 0; t < T; ++t) {
    const int n = int(bs[t]);
    const S* hp = t == 0 ? h0 : out + (t - 1) * step;
    const S* src = hp;
    if (rmask) {
      for (int64_t k = 0; k < int64_t(n) * H; ++k) hin[k] = hp[k] * rmask[k];
      src = hin;
    }
    weight.mul(n, src, S(0), work);
    for (int b = 0; b < n; ++b) {
      const int64_t row = t * int64_t(B) + b;
      const S* x = xp + row * GH;
      S* w = work + int64_t(b) * GH;
      if (ln_w) ln_forward(GH, w, ln_w, ln_b, xh + row * GH, rs + row);
      const S* hprev = hp + int64_t(b) * H;
      S* h = out + row * H;
      S* g = gates + row * saved;
      const S* dzh = zh ? zh + row * H : zeros.data();
      if (kind == RNN_TANH || kind == RNN_RELU) {
        #pragma omp simd
        for (int j = 0; j < H; ++j) {
          S v = x[j] + w[j];
          S ht = kind == RNN_TANH ? tanh_(v) : (v > S(0) ? v : S(0));
          g[j] = ht;
          h[j] = ht + dzh[j] * (hprev[j] - ht);
        }
      } else if (kind == LSTM) {
        const S* cp = (t == 0 ? c0 : cs + (t - 1) * step) + int64_t(b) * H;
        S* c = cs + row * H;
        S* cn = ct + row * H;
        #pragma omp simd
        for (int j = 0; j < H; ++j) {
          S i = sigmoid(x[j] + w[j]), f = sigmoid(x[H + j] + w[H + j]);
          S gg = tanh_(x[2 * H + j] + w[2 * H + j]), o = sigmoid(x[3 * H + j] + w[3 * H + j]);
          g[j] = i; g[H + j] = f; g[2 * H + j] = gg; g[3 * H + j] = o;
          cn[j] = f * cp[j] + i * gg;
        }
        // h̃ = o ⊙ tanh(LN_c(c̃)); LN works on a copy in h (c̃ itself is kept in ct for backward)
        std::memcpy(h, cn, sizeof(S) * H);
        if (lnc_w) ln_forward(H, h, lnc_w, lnc_b, xhc + row * H, rsc + row);
        const S* dzc = zc ? zc + row * H : zeros.data();
        #pragma omp simd
        for (int j = 0; j < H; ++j) {
          S ht = g[3 * H + j] * tanh_(h[j]);
          h[j] = ht + dzh[j] * (hprev[j] - ht);
          c[j] = cn[j] + dzc[j] * (cp[j] - cn[j]);
        }
      } else {  // GRU
        #pragma omp simd
        for (int j = 0; j < H; ++j) {
          S r = sigmoid(x[j] + w[j] + b_hh[j]), z = sigmoid(x[H + j] + w[H + j] + b_hh[H + j]);
          S hn = w[2 * H + j] + b_hh[2 * H + j];
          S nn = tanh_(x[2 * H + j] + r * hn);
          S ht = nn + z * (hprev[j] - nn);
          g[j] = r; g[H + j] = z; g[2 * H + j] = nn; g[3 * H + j] = hn;
          h[j] = ht + dzh[j] * (hprev[j] - ht);
        }
      }
    }
    take_finals(t, T, H, bs, out + t * step, hT);
    if (kind == LSTM) take_finals(t, T, H, bs, cs + t * step, cT);
  }
}

// dg (T, B, GH): gradient of xp; da (T, B, GH): gradient of a = ĥ·W_hhᵀ (before LN_hh). dln_* accumulate
// the LayerNorm parameters' gradients (dln_b is also GRU's δb_hh, which LN_hh's output is added to).
template <typename S>
void backward_ext(int kind, int T, int B, int H, const S* dout, const S* out, const S* h0, const S* cs, const S* c0,
                  const S* gates, const S* w_hh, const int64_t* bs, S* dg, S* da, S* dh, S* dc, S* dln_w, S* dln_b,
                  S* dlnc_w, S* dlnc_b, S* tmp, const Extras& e) {
  const int G = gates_of(kind), GH = G * H;
  const int64_t step = int64_t(B) * H;
  const int saved = saved_of(kind, H, true);
  const S *rmask = (const S*)e.rmask, *zh = (const S*)e.zh, *zc = (const S*)e.zc;
  const S *ln_w = (const S*)e.ln_w, *lnc_w = (const S*)e.lnc_w, *lnc_b = (const S*)e.lnc_b;
  const S *ct = (const S*)e.ct, *xh = (const S*)e.xh, *rs = (const S*)e.rs, *xhc = (const S*)e.xhc;
  const S* rsc = (const S*)e.rsc;
  S* dahat = new S[GH];
  S* dcn = new S[H];
  S* dct = new S[H];
  const RecurrentWeight<S> weight(w_hh, GH, H, B);
  const std::vector<S> zeros(H, S(0));
  for (int t = T - 1; t >= 0; --t) {
    const int n = int(bs[t]);
    const S* hp = t == 0 ? h0 : out + (t - 1) * step;
    for (int b = 0; b < n; ++b) {
      const int64_t row = t * int64_t(B) + b;
      const S* g = gates + row * saved;
      const S* hprev = hp + int64_t(b) * H;
      const S* dzh = zh ? zh + row * H : zeros.data();
      S* dhb = dh + int64_t(b) * H;  // in: δh_t (running), out: the direct part of δh_{t-1}
      const S* dob = dout ? dout + row * H : zeros.data();
      S* d = dg + row * GH;
      if (kind == RNN_TANH || kind == RNN_RELU) {
        #pragma omp simd
        for (int j = 0; j < H; ++j) {
          S dht = dhb[j] + dob[j];
          S keep = dzh[j];
          dhb[j] = dht * keep;
          dht *= S(1) - keep;
          S ht = g[j];
          d[j] = kind == RNN_TANH ? dht * (S(1) - ht * ht) : (ht > S(0) ? dht : S(0));
          dahat[j] = d[j];
        }
      } else if (kind == LSTM) {
        const S* cp = (t == 0 ? c0 : cs + (t - 1) * step) + int64_t(b) * H;
        const S* cn = ct + row * H;
        const S* dzc = zc ? zc + row * H : zeros.data();
        S* dcb = dc + int64_t(b) * H;
        #pragma omp simd
        for (int j = 0; j < H; ++j) {
          S v = lnc_w ? xhc[row * H + j] * lnc_w[j] + lnc_b[j] : cn[j];
          S tc = tanh_(v), o = g[3 * H + j];
          S dht = dhb[j] + dob[j];
          S keep = dzh[j];
          dhb[j] = dht * keep;
          dht *= S(1) - keep;
          d[3 * H + j] = dht * tc * o * (S(1) - o);
          dcn[j] = dht * o * (S(1) - tc * tc);
        }
        if (lnc_w) ln_backward(H, dcn, lnc_w, xhc + row * H, rsc[row], dct, dlnc_w, dlnc_b);
        else std::memcpy(dct, dcn, sizeof(S) * H);
        #pragma omp simd
        for (int j = 0; j < H; ++j) {
          S i = g[j], f = g[H + j], gg = g[2 * H + j];
          S keep = dzc[j];
          S dctil = dcb[j] * (S(1) - keep) + dct[j];
          d[j] = dctil * gg * i * (S(1) - i);
          d[H + j] = dctil * cp[j] * f * (S(1) - f);
          d[2 * H + j] = dctil * i * (S(1) - gg * gg);
          dcb[j] = dcb[j] * keep + dctil * f;
        }
        for (int j = 0; j < GH; ++j) dahat[j] = d[j];
      } else {  // GRU
        #pragma omp simd
        for (int j = 0; j < H; ++j) {
          S r = g[j], z = g[H + j], nn = g[2 * H + j], hn = g[3 * H + j];
          S dht = dhb[j] + dob[j];
          S keep = dzh[j];
          S direct = dht * keep;
          dht *= S(1) - keep;
          S dpn = dht * (S(1) - z) * (S(1) - nn * nn);
          S dpr = dpn * hn * r * (S(1) - r);
          S dpz = dht * (hprev[j] - nn) * z * (S(1) - z);
          d[j] = dpr; d[H + j] = dpz; d[2 * H + j] = dpn;
          dahat[j] = dpr; dahat[H + j] = dpz; dahat[2 * H + j] = dpn * r;
          dhb[j] = direct + dht * z;
        }
      }
      S* dab = da + row * GH;
      if (ln_w) ln_backward(GH, dahat, ln_w, xh + row * GH, rs[row], dab, dln_w, dln_b);
      else {
        for (int j = 0; j < GH; ++j) dab[j] = dahat[j];
        if (dln_b) for (int j = 0; j < GH; ++j) dln_b[j] += dahat[j];
      }
    }
    if (n > 0) {
      // δĥ = δa·W_hh; through the mask into δh_{t-1}, added to the direct part left in dh
      weight.mul(n, da + t * int64_t(B) * GH, S(0), tmp);
      for (int64_t k = 0; k < int64_t(n) * H; ++k) dh[k] += rmask ? tmp[k] * rmask[k] : tmp[k];
    }
  }
  delete[] dahat;
  delete[] dcn;
  delete[] dct;
}

