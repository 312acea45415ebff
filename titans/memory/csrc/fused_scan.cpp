// The memory scan (titans/memory/scan.py, MemoryScan) as two C functions: the whole chunk loop forward and its
// vector-Jacobian product, on raw arrays (no ATen calls), one OpenMP task per row n of N = batch x heads (the rows
// are independent through the whole scan).  The math is step.py's, line by line: see its docstring for the
// notation (inner gradient eqs. 16-17 at the chunk-start state, write-then-read, chunk-end update eqs. 13-14 with
// the decay target).  Covered: depth 1..4, momentum on/off, forget on/off, decay target on/off, scalar (not
// channel-wise) gates, activations gelu/silu/relu/tanh.  Built by titans/memory/fused_cpu.py with g++ -O3.
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int MAXL = 4;
constexpr double LOSS_GRAD_SCALE = 2.0;

enum Act { GELU = 0, SILU = 1, RELU = 2, TANH = 3 };

// ------------------------------------------------------------------------------------------ small dense helpers
// C[m, n] (+)= alpha * op(A)[m, k] op(B)[k, n]; row-major with leading dimensions; acc: add to C.
// The inner loop runs over a contiguous row of B (op(B) = B^T is copied transposed first), so it vectorises;
// every C[i, j] is summed over p in order.
template <typename T>
void gemm(int m, int n, int k, const T* A, int lda, bool ta, const T* B, int ldb, bool tb, T* C, int ldc,
          T alpha, bool acc) {
  static thread_local std::vector<T> bt;
  if (tb) {  // B is [n, k]: make op(B) = B^T a contiguous [k, n]
    bt.resize((size_t)k * n);
    for (int j = 0; j < n; ++j)
      for (int p = 0; p < k; ++p) bt[(size_t)p * n + j] = B[(size_t)j * ldb + p];
    B = bt.data();
    ldb = n;
  }
  if (!acc)
    for (int i = 0; i < m; ++i) std::memset(C + (size_t)i * ldc, 0, sizeof(T) * n);
  auto a_at = [&](int i, int p) { return alpha * (ta ? A[(size_t)p * lda + i] : A[(size_t)i * lda + p]); };
  int i = 0;
  for (; i + 4 <= m; i += 4) {  // four rows of C per pass over B
    T* __restrict__ c0 = C + (size_t)i * ldc;
    T* __restrict__ c1 = c0 + ldc;
    T* __restrict__ c2 = c1 + ldc;
    T* __restrict__ c3 = c2 + ldc;
    for (int p = 0; p < k; ++p) {
      const T a0 = a_at(i, p), a1 = a_at(i + 1, p), a2 = a_at(i + 2, p), a3 = a_at(i + 3, p);
      const T* __restrict__ b = B + (size_t)p * ldb;
      for (int j = 0; j < n; ++j) {
        const T bj = b[j];
        c0[j] += a0 * bj;
        c1[j] += a1 * bj;
        c2[j] += a2 * bj;
        c3[j] += a3 * bj;
      }
    }
  }
  for (; i < m; ++i) {
    T* __restrict__ c = C + (size_t)i * ldc;
    for (int p = 0; p < k; ++p) {
      const T a = a_at(i, p);
      const T* __restrict__ b = B + (size_t)p * ldb;
      for (int j = 0; j < n; ++j) c[j] += a * b[j];
    }
  }
}

// sigma, sigma' and sigma'' at once over n values (one erf/exp/tanh per value); d2 may be null.
template <typename T>
void act_all(int a, const T* z, size_t n, T* s, T* d1, T* d2) {
  const T inv_sqrt_2pi = T(0.5 * M_2_SQRTPI * M_SQRT1_2);
  for (size_t i = 0; i < n; ++i) {
    const T x = z[i];
    T v, g, h;
    switch (a) {
      case GELU: {
        const T cdf = T(0.5) * (T(1) + std::erf(x * T(M_SQRT1_2)));
        const T pdf = std::exp(T(-0.5) * x * x) * inv_sqrt_2pi;
        v = x * cdf;
        g = cdf + x * pdf;
        h = pdf * (T(2) - x * x);
        break;
      }
      case SILU: {
        const T sg = T(1) / (T(1) + std::exp(-x));
        v = x * sg;
        g = sg * (T(1) + x * (T(1) - sg));
        h = sg * (T(1) - sg) * (T(2) + x * (T(1) - T(2) * sg));
        break;
      }
      case RELU:
        v = x > 0 ? x : T(0);
        g = x > 0 ? T(1) : T(0);
        h = T(0);
        break;
      default: {
        const T t = std::tanh(x);
        v = t;
        g = T(1) - t * t;
        h = T(-2) * t * (T(1) - t * t);
      }
    }
    s[i] = v;
    d1[i] = g;
    if (d2) d2[i] = h;
  }
}

// Parameter-free LayerNorm over rows of width d: n, mean, rstd (biased variance, as ATen's native_layer_norm).
template <typename T>
void ln_fwd(const T* z, int rows, int d, T eps, T* n, T* mean, T* rstd) {
  for (int t = 0; t < rows; ++t) {
    const T* zr = z + (size_t)t * d;
    T mu = 0;
    for (int j = 0; j < d; ++j) mu += zr[j];
    mu /= d;
    T var = 0;
    for (int j = 0; j < d; ++j) var += (zr[j] - mu) * (zr[j] - mu);
    var /= d;
    const T rs = T(1) / std::sqrt(var + eps);
    mean[t] = mu;
    rstd[t] = rs;
    for (int j = 0; j < d; ++j) n[(size_t)t * d + j] = (zr[j] - mu) * rs;
  }
}

// out = LN'(z)^T g = rstd (g - mean(g) - n mean(g n)); acc: add to out.
template <typename T>
void ln_bwd(const T* g, const T* n, const T* rstd, int rows, int d, T* out, bool acc) {
  for (int t = 0; t < rows; ++t) {
    const T* gr = g + (size_t)t * d;
    const T* nr = n + (size_t)t * d;
    T mg = 0, mgn = 0;
    for (int j = 0; j < d; ++j) {
      mg += gr[j];
      mgn += gr[j] * nr[j];
    }
    mg /= d;
    mgn /= d;
    T* o = out + (size_t)t * d;
    for (int j = 0; j < d; ++j) {
      const T v = rstd[t] * (gr[j] - mg - nr[j] * mgn);
      o[j] = acc ? o[j] + v : v;
    }
  }
}

// ------------------------------------------------------------------------------------------ the problem
struct Dims {
  int depth, b, d, nc, N, group, act, momentum, update_last, has_decay, has_eta, has_target, has_r0;
  int din[MAXL], dout[MAXL], wc[MAXL];  // wc: columns of [W | S] (2 d_out with momentum, else d_out)
  int c1w[MAXL];                        // width of C1 (1 or wc), 0 when C1 is absent
  double eps;
};

// Pointers to the arrays of the call ([nc, N, ...] stacked over chunks; nullptr where absent).  Coefficients per
// layer: A [b], B [b], D [b, b], C1 [c1w], Be [1], de [b], me [b] per chunk and row n.
template <typename T>
struct Arrays {
  T* WS[MAXL];  // [N, din, wc] (start state; in backward: the saved states [n_saved, N, din, wc])
  T *kq, *qb, *v, *off, *lnw, *r0;
  T* co[MAXL][7];
  T* tg[MAXL];  // decay targets [N, din, dout]
};

template <typename T>
struct Work {  // one chunk's intermediates for one row n
  std::vector<T> sz1[MAXL], sz2[MAXL], sa1[MAXL];  // sigma', sigma'' at z_l and sigma' at a_l
  std::vector<T> zkq, hs[MAXL], zs[MAXL], dl[MAXL], ps[MAXL], ln_n, ln_mean, ln_rstd, ln_r, ln_g;
  std::vector<T> xs[MAXL], as[MAXL], ce[MAXL], ss[MAXL], xts[MAXL], Ds[MAXL], n2, mean2, rstd2, rhs;
  // backward
  std::vector<T> gh[MAXL], gdl[MAXL], gz[MAXL], gp[MAXL], ga, gx, gce[MAXL], hG, gDs, gs, tmp, G_, extra, gg, gr;
  explicit Work(const Dims& D) {
    const int b = D.b, L = D.depth;
    zkq.resize((size_t)2 * b * D.wc[0]);
    for (int l = 0; l < L; ++l) {
      hs[l].resize((size_t)b * D.din[l]);
      sz1[l].resize((size_t)b * D.dout[l]);
      sz2[l].resize((size_t)b * D.dout[l]);
      sa1[l].resize((size_t)b * D.dout[l]);
      zs[l].resize((size_t)b * D.dout[l]);
      dl[l].resize((size_t)b * D.dout[l]);
      ps[l].resize((size_t)b * D.dout[l]);
      xs[l].resize((size_t)b * D.din[l]);
      as[l].resize((size_t)b * D.dout[l]);
      ce[l].resize((size_t)b * D.wc[l]);
      ss[l].resize((size_t)b * b);
      xts[l].resize((size_t)b * D.dout[l]);
      Ds[l].resize((size_t)b * b);
      gh[l].resize((size_t)b * D.din[l]);
      gdl[l].resize((size_t)b * D.dout[l]);
      gz[l].resize((size_t)b * D.dout[l]);
      gp[l].resize((size_t)b * D.dout[l]);
      gce[l].resize((size_t)b * D.wc[l]);
    }
    const int dL = D.dout[L - 1];
    for (auto* v : {&ln_n, &ln_r, &ln_g, &n2, &G_, &extra, &gg, &gr}) v->resize((size_t)b * dL);
    for (auto* v : {&ln_mean, &ln_rstd, &mean2, &rstd2}) v->resize(b);
    int wmax = 0, dmax = 0;
    for (int l = 0; l < L; ++l) {
      wmax = std::max(wmax, D.wc[l]);
      dmax = std::max(dmax, std::max(D.din[l], D.dout[l]));
    }
    rhs.resize((size_t)b * wmax);
    hG.resize((size_t)b * wmax);
    ga.resize((size_t)b * dmax);
    gx.resize((size_t)b * dmax);
    tmp.resize((size_t)b * dmax);
    gDs.resize((size_t)b * b);
    gs.resize((size_t)b * b);
  }
};

// The per-chunk, per-row views of the inputs.
template <typename T>
struct ChunkIn {
  const T *kq, *qb, *v, *off, *lnw, *r0;
  const T* co[MAXL][7];
  const T* tg[MAXL];
};

template <typename T>
ChunkIn<T> chunk_in(const Dims& D, const Arrays<T>& X, int c, int n) {
  ChunkIn<T> in{};
  const size_t cn = (size_t)c * D.N + n, b = D.b, d = D.d;
  in.kq = X.kq + cn * 2 * b * d;
  in.qb = X.qb ? X.qb + cn * b * d : nullptr;
  in.v = X.v ? X.v + cn * b * d : nullptr;
  in.off = X.off ? X.off + cn * b * d : nullptr;
  in.r0 = X.r0 ? X.r0 + cn * b * D.dout[0] : nullptr;  // (1 - A_0) (Q T_0): [b, dout_0]
  in.lnw = X.lnw ? X.lnw + (size_t)n * d : nullptr;
  const size_t sizes[7] = {b, b, b * b, 0, 1, b, b};
  for (int l = 0; l < D.depth; ++l) {
    for (int k = 0; k < 7; ++k) {
      const size_t sz = k == 3 ? (size_t)D.c1w[l] : sizes[k];
      in.co[l][k] = X.co[l][k] ? X.co[l][k] + cn * sz : nullptr;
    }
    in.tg[l] = X.tg[l] ? X.tg[l] + (size_t)n * D.din[l] * D.dout[l] : nullptr;
  }
  return in;
}

// inner: the inner-gradient factors at the chunk-start state WS (step.inner)
template <typename T>
void inner(const Dims& D, const ChunkIn<T>& in, T* const* WS, Work<T>& w) {
  const int b = D.b, L = D.depth, d0 = D.dout[0], wc0 = D.wc[0];
  gemm<T>(2 * b, wc0, D.d, in.kq, D.d, false, WS[0], wc0, false, w.zkq.data(), wc0, T(1), false);
  std::memcpy(w.hs[0].data(), in.kq, sizeof(T) * b * D.d);
  for (int t = 0; t < b; ++t) std::memcpy(&w.zs[0][(size_t)t * d0], &w.zkq[(size_t)t * wc0], sizeof(T) * d0);
  for (int l = 1; l < L; ++l) {
    const size_t m = (size_t)b * D.din[l];
    act_all<T>(D.act, w.zs[l - 1].data(), m, w.hs[l].data(), w.sz1[l - 1].data(), w.sz2[l - 1].data());
    gemm<T>(b, D.dout[l], D.din[l], w.hs[l].data(), D.din[l], false, WS[l], D.wc[l], false, w.zs[l].data(),
            D.dout[l], T(1), false);
  }
  if (L == 1) {
    for (int i = 0; i < b * d0; ++i) w.dl[0][i] = T(LOSS_GRAD_SCALE) * (w.zs[0][i] - in.v[i]);
    return;
  }
  const int dL = D.dout[L - 1];
  ln_fwd<T>(w.zs[L - 1].data(), b, dL, T(D.eps), w.ln_n.data(), w.ln_mean.data(), w.ln_rstd.data());
  for (int t = 0; t < b; ++t)
    for (int j = 0; j < dL; ++j) {
      const size_t i = (size_t)t * dL + j;
      w.ln_r[i] = in.off[i] + in.lnw[j] * w.ln_n[i];
      w.ln_g[i] = w.ln_r[i] * (T(LOSS_GRAD_SCALE) * in.lnw[j]);
    }
  ln_bwd<T>(w.ln_g.data(), w.ln_n.data(), w.ln_rstd.data(), b, dL, w.dl[L - 1].data(), false);
  for (int l = L - 2; l >= 0; --l) {  // p_l = delta_{l+1} W_{l+1}^T, delta_l = sigma'(z_l) p_l
    gemm<T>(b, D.din[l + 1], D.dout[l + 1], w.dl[l + 1].data(), D.dout[l + 1], false, WS[l + 1], D.wc[l + 1], true,
            w.ps[l].data(), D.dout[l], T(1), false);
    const size_t m = (size_t)b * D.dout[l];
    for (size_t i = 0; i < m; ++i) w.dl[l][i] = w.sz1[l][i] * w.ps[l][i];
  }
}

// c_l and e_l of the read (layer 0: from zkq's Q rows)
template <typename T>
inline const T* read_c(const Dims& D, const Work<T>& w, int l, int& ld) {
  if (l == 0) {
    ld = D.wc[0];
    return w.zkq.data() + (size_t)D.b * D.wc[0];
  }
  ld = D.wc[l];
  return w.ce[l].data();
}

// read: write-then-read in dual form (step.read); y [b, d] when given
template <typename T>
void read(const Dims& D, const ChunkIn<T>& in, T* const* WS, Work<T>& w, T* y) {
  const int b = D.b, L = D.depth;
  for (int l = 0; l < L; ++l) {
    const int dl_ = D.dout[l], din = D.din[l];
    const T *A = in.co[l][0], *B = in.co[l][1], *Dc = in.co[l][2];
    if (l > 0) {
      const T* x = w.xs[l].data();
      gemm<T>(b, D.wc[l], din, x, din, false, WS[l], D.wc[l], false, w.ce[l].data(), D.wc[l], T(1), false);
      gemm<T>(b, b, din, x, din, false, w.hs[l].data(), din, true, w.ss[l].data(), b, T(1), false);
      if (in.tg[l]) gemm<T>(b, dl_, din, x, din, false, in.tg[l], dl_, false, w.xts[l].data(), dl_, T(1), false);
    }
    int ldc;
    const T* c = read_c(D, w, l, ldc);
    T* a = w.as[l].data();
    for (int t = 0; t < b; ++t)
      for (int j = 0; j < dl_; ++j) {
        const T cv = c[(size_t)t * ldc + j];
        T v = A ? A[t] * cv : cv;
        if (l == 0 && in.r0) {
          v = v + in.r0[(size_t)t * dl_ + j];
        } else if (l > 0 && in.tg[l]) {
          const T xt = w.xts[l][(size_t)t * dl_ + j];
          v = v + xt - A[t] * xt;
        }
        if (D.momentum) v = v + B[t] * c[(size_t)t * ldc + dl_ + j];
        a[(size_t)t * dl_ + j] = v;
      }
    T* Ds = w.Ds[l].data();
    for (int i = 0; i < b * b; ++i) Ds[i] = l == 0 ? Dc[i] : Dc[i] * w.ss[l][i];
    gemm<T>(b, dl_, b, Ds, b, false, w.dl[l].data(), dl_, false, a, dl_, T(-1), true);
    if (l < L - 1)
      act_all<T>(D.act, a, (size_t)b * dl_, w.xs[l + 1].data(), w.sa1[l].data(), (T*)nullptr);
  }
  if (!y) return;
  const int dL = D.dout[L - 1];
  if (L == 1) {
    std::memcpy(y, w.as[0].data(), sizeof(T) * b * dL);
    return;
  }
  ln_fwd<T>(w.as[L - 1].data(), b, dL, T(D.eps), w.n2.data(), w.mean2.data(), w.rstd2.data());
  for (int t = 0; t < b; ++t)
    for (int j = 0; j < dL; ++j) {
      const size_t i = (size_t)t * dL + j;
      y[i] = in.qb[i] + in.lnw[j] * w.n2[i];
    }
}

template <typename T>
inline T c1_at(const Dims& D, const T* C1, int l, int j) {  // C1 broadcast to column j ([W | S] layout)
  return C1 ? (D.c1w[l] == 1 ? C1[0] : C1[j]) : T(1);
}

// update: WS' = C1 * WS + [Be S | 0] - h^T [de delta | me delta] (+ [(1 - Ae) T | 0]) (step.update)
template <typename T>
void update(const Dims& D, const ChunkIn<T>& in, T* const* WS, Work<T>& w, T* const* out) {
  const int b = D.b;
  for (int l = 0; l < D.depth; ++l) {
    const int din = D.din[l], dd = D.dout[l], wc = D.wc[l];
    const T *C1 = in.co[l][3], *Be = in.co[l][4], *de = in.co[l][5], *me = in.co[l][6], *Tg = in.tg[l];
    for (int t = 0; t < b; ++t)
      for (int j = 0; j < dd; ++j) {
        const T dv = w.dl[l][(size_t)t * dd + j];
        w.rhs[(size_t)t * wc + j] = de[t] * dv;
        if (D.momentum) w.rhs[(size_t)t * wc + dd + j] = me[t] * dv;
      }
    T* o = out[l];
    const T* s = WS[l];
    for (int i = 0; i < din; ++i)
      for (int j = 0; j < wc; ++j) {
        const size_t k = (size_t)i * wc + j;
        o[k] = c1_at(D, C1, l, j) * s[k];
      }
    gemm<T>(din, wc, b, w.hs[l].data(), din, true, w.rhs.data(), wc, false, o, wc, T(-1), true);
    for (int i = 0; i < din; ++i)
      for (int j = 0; j < dd; ++j) {
        const size_t k = (size_t)i * wc + j;
        if (D.momentum) o[k] = o[k] + Be[0] * s[k + dd];
        if (Tg) {
          const T tv = Tg[(size_t)i * dd + j];
          o[k] = o[k] + tv;
          o[k] = o[k] - c1_at(D, C1, l, j) * tv;
        }
      }
  }
}

// Gradient outputs of one call (same layout as the inputs; nullptr where the input is absent).
template <typename T>
struct Grads {
  T* WS[MAXL];  // [N, din, wc]: in: gradient of the final state; out: of the initial state
  T *kq, *qb, *v, *off, *lnw, *r0;
  T* co[MAXL][7];
  T* tg[MAXL];
};

// The vector-Jacobian product of one chunk (step.chunk_backward); gW: in: the chunk-end state's gradient, out: the
// chunk-start state's (gS: scratch of the same size).  The chunk's input gradients are written (lnw, targets:
// accumulated).
template <typename T>
void chunk_backward(const Dims& D, const ChunkIn<T>& in, T* const* WS, const T* gy, bool do_update, Work<T>& w,
                    T* const* gW, T* const* gS, T* gkq, T* gqb, T* gv, T* goff, T* glnw, T* gr0, T* const* gco_c,
                    T* const* gtg) {
  const int b = D.b, L = D.depth;
  inner(D, in, WS, w);
  read(D, in, WS, w, (T*)nullptr);
  // gco_c: per layer 7 pointers (layer-major) to this chunk's coefficient gradients
  for (int l = 0; l < L; ++l) {
    std::fill(w.gh[l].begin(), w.gh[l].end(), T(0));
    std::fill(w.gdl[l].begin(), w.gdl[l].end(), T(0));
    std::fill(w.gz[l].begin(), w.gz[l].end(), T(0));
    std::fill(w.gp[l].begin(), w.gp[l].end(), T(0));
  }
  // ---- update
  for (int l = 0; l < L; ++l) {
    const int din = D.din[l], dd = D.dout[l], wc = D.wc[l];
    const T* G = gW[l];
    T* g = gS[l];
    const size_t sz = (size_t)din * wc;
    if (!do_update) {
      std::memcpy(g, G, sizeof(T) * sz);
      continue;
    }
    const T *C1 = in.co[l][3], *Be = in.co[l][4], *de = in.co[l][5], *me = in.co[l][6], *Tg = in.tg[l];
    const T* s = WS[l];
    T* gC1 = gco_c[l * 7 + 3];
    if (gC1)
      for (int j = 0; j < D.c1w[l]; ++j) gC1[j] = 0;
    for (int i = 0; i < din; ++i)
      for (int j = 0; j < wc; ++j) {
        const size_t k = (size_t)i * wc + j;
        g[k] = C1 ? c1_at(D, C1, l, j) * G[k] : G[k];
        if (gC1) gC1[D.c1w[l] == 1 ? 0 : j] += s[k] * G[k];
      }
    if (Tg) {
      for (int i = 0; i < din; ++i)
        for (int j = 0; j < dd; ++j) {
          const size_t k = (size_t)i * wc + j;
          const T GW = G[k];
          gtg[l][(size_t)i * dd + j] += GW - c1_at(D, C1, l, j) * GW;
          gC1[D.c1w[l] == 1 ? 0 : j] += -(Tg[(size_t)i * dd + j] * GW);
        }
    }
    if (D.momentum) {
      T gBe = 0;
      for (int i = 0; i < din; ++i)
        for (int j = 0; j < dd; ++j) {
          const size_t k = (size_t)i * wc + j;
          g[k + dd] += Be[0] * G[k];
          gBe += s[k + dd] * G[k];
        }
      gco_c[l * 7 + 4][0] = gBe;
    }
    gemm<T>(b, wc, din, w.hs[l].data(), din, false, G, wc, false, w.hG.data(), wc, T(1), false);
    T *gde = gco_c[l * 7 + 5], *gme = gco_c[l * 7 + 6];
    for (int t = 0; t < b; ++t) {
      T sde = 0, sme = 0;
      for (int j = 0; j < dd; ++j) {
        const size_t i = (size_t)t * dd + j;
        const T hP = w.hG[(size_t)t * wc + j], dv = w.dl[l][i];
        w.gdl[l][i] = -(de[t] * hP);
        sde += -(dv * hP);
        if (D.momentum) {
          const T hR = w.hG[(size_t)t * wc + dd + j];
          w.gdl[l][i] = w.gdl[l][i] - me[t] * hR;
          sme += -(dv * hR);
        }
      }
      gde[t] = sde;
      if (D.momentum) gme[t] = sme;
    }
    for (int t = 0; t < b; ++t)
      for (int j = 0; j < dd; ++j) {
        const T dv = w.dl[l][(size_t)t * dd + j];
        w.rhs[(size_t)t * wc + j] = de[t] * dv;
        if (D.momentum) w.rhs[(size_t)t * wc + dd + j] = me[t] * dv;
      }
    gemm<T>(b, din, wc, w.rhs.data(), wc, false, G, wc, true, w.gh[l].data(), din, T(-1), false);
  }
  // ---- read, from the output back to the query
  const int dL = D.dout[L - 1];
  T* ga = w.ga.data();
  if (L == 1) {
    std::memcpy(ga, gy, sizeof(T) * b * dL);
  } else {
    ln_fwd<T>(w.as[L - 1].data(), b, dL, T(D.eps), w.n2.data(), w.mean2.data(), w.rstd2.data());
    std::memcpy(gqb, gy, sizeof(T) * b * dL);
    for (int t = 0; t < b; ++t)
      for (int j = 0; j < dL; ++j) {
        const size_t i = (size_t)t * dL + j;
        glnw[j] += gy[i] * w.n2[i];
        w.tmp[i] = gy[i] * in.lnw[j];
      }
    ln_bwd<T>(w.tmp.data(), w.n2.data(), w.rstd2.data(), b, dL, ga, false);
  }
  for (int l = L - 1; l >= 0; --l) {
    const int dd = D.dout[l], din = D.din[l], wc = D.wc[l];
    const T *A = in.co[l][0], *B = in.co[l][1], *Dc = in.co[l][2];
    int ldc;
    const T* c = read_c(D, w, l, ldc);
    const bool has_xt = l > 0 && in.tg[l];
    if (A) {
      T* gA = gco_c[l * 7 + 0];
      for (int t = 0; t < b; ++t) {
        T s = 0;
        for (int j = 0; j < dd; ++j) {
          const T cv = c[(size_t)t * ldc + j];
          s += ga[(size_t)t * dd + j] * (has_xt ? cv - w.xts[l][(size_t)t * dd + j] : cv);
        }
        gA[t] = s;
      }
    }
    if (l == 0 && in.r0) std::memcpy(gr0, ga, sizeof(T) * b * dd);
    T* gce = w.gce[l].data();
    for (int t = 0; t < b; ++t)
      for (int j = 0; j < dd; ++j) {
        const T g = ga[(size_t)t * dd + j];
        gce[(size_t)t * wc + j] = A ? A[t] * g : g;
        if (D.momentum) gce[(size_t)t * wc + dd + j] = B[t] * g;
      }
    if (D.momentum) {
      T* gB = gco_c[l * 7 + 1];
      for (int t = 0; t < b; ++t) {
        T s = 0;
        for (int j = 0; j < dd; ++j) s += ga[(size_t)t * dd + j] * c[(size_t)t * ldc + dd + j];
        gB[t] = s;
      }
    }
    T* gat = nullptr;  // (1 - A) ga, the gradient of x_l T_l
    if (has_xt) {
      gat = w.tmp.data();
      for (int t = 0; t < b; ++t)
        for (int j = 0; j < dd; ++j) {
          const T g = ga[(size_t)t * dd + j];
          gat[(size_t)t * dd + j] = g - A[t] * g;
        }
      gemm<T>(din, dd, b, w.xs[l].data(), din, true, gat, dd, false, gtg[l], dd, T(1), true);
    }
    // a -= Ds delta: gDs = -ga delta^T, gdelta -= Ds^T ga
    gemm<T>(b, b, dd, ga, dd, false, w.dl[l].data(), dd, true, w.gDs.data(), b, T(-1), false);
    gemm<T>(b, dd, b, w.Ds[l].data(), b, true, ga, dd, false, w.gdl[l].data(), dd, T(-1), true);
    T* gD = gco_c[l * 7 + 2];
    if (l == 0) {
      std::memcpy(gD, w.gDs.data(), sizeof(T) * b * b);
      continue;
    }
    for (int i = 0; i < b * b; ++i) {
      gD[i] = w.gDs[i] * w.ss[l][i];
      w.gs[i] = w.gDs[i] * Dc[i];
    }
    // [c | e] = x WS, s = x h^T
    T* gx = w.gx.data();
    gemm<T>(b, din, b, w.gs.data(), b, false, w.hs[l].data(), din, false, gx, din, T(1), false);
    gemm<T>(b, din, wc, gce, wc, false, WS[l], wc, true, gx, din, T(1), true);
    if (gat) gemm<T>(b, din, dd, gat, dd, false, in.tg[l], dd, true, gx, din, T(1), true);
    gemm<T>(b, din, b, w.gs.data(), b, true, w.xs[l].data(), din, false, w.gh[l].data(), din, T(1), true);
    gemm<T>(din, wc, b, w.xs[l].data(), din, true, gce, wc, false, gS[l], wc, T(1), true);
    const T* sa = w.sa1[l - 1].data();
    for (int i = 0; i < b * din; ++i) ga[i] = sa[i] * gx[i];
  }
  // ---- the delta chain delta_l = sigma'(z_l) * p_l, with its second-order term
  for (int l = 0; l < L - 1; ++l) {
    const size_t m = (size_t)b * D.dout[l];
    for (size_t i = 0; i < m; ++i) {
      const T gd = w.gdl[l][i];
      w.gp[l][i] = w.sz1[l][i] * gd;
      w.gz[l][i] = w.sz2[l][i] * (w.ps[l][i] * gd);
    }
    gemm<T>(b, D.dout[l + 1], D.din[l + 1], w.gp[l].data(), D.din[l + 1], false, WS[l + 1], D.wc[l + 1], false,
            w.gdl[l + 1].data(), D.dout[l + 1], T(1), true);
  }
  // ---- the error at the output
  if (L == 1) {
    for (int i = 0; i < b * dL; ++i) {
      w.gz[0][i] = T(LOSS_GRAD_SCALE) * w.gdl[0][i];
      gv[i] = -w.gz[0][i];
    }
  } else {
    const T* wv = w.gdl[L - 1].data();
    ln_bwd<T>(wv, w.ln_n.data(), w.ln_rstd.data(), b, dL, w.gg.data(), false);
    const T* out = w.dl[L - 1].data();
    for (int t = 0; t < b; ++t) {
      T mwn = 0, mgn = 0, wo = 0;
      for (int j = 0; j < dL; ++j) {
        const size_t i = (size_t)t * dL + j;
        mwn += wv[i] * w.ln_n[i];
        mgn += w.ln_g[i] * w.ln_n[i];
        wo += wv[i] * out[i];
      }
      mwn /= dL;
      mgn /= dL;
      const T rs = w.ln_rstd[t];
      for (int j = 0; j < dL; ++j) {
        const size_t i = (size_t)t * dL + j;
        const T Gv = -rs * (w.ln_g[i] * mwn + wv[i] * mgn);
        w.extra[i] = w.ln_n[i] * (-(rs / dL) * wo);
        const T gr = w.gg[i] * (T(LOSS_GRAD_SCALE) * in.lnw[j]);
        glnw[j] += T(LOSS_GRAD_SCALE) * w.ln_r[i] * w.gg[i] + w.ln_n[i] * gr;
        goff[i] = gr;
        w.G_[i] = Gv + in.lnw[j] * gr;
      }
    }
    ln_bwd<T>(w.G_.data(), w.ln_n.data(), w.ln_rstd.data(), b, dL, w.tmp.data(), false);
    for (int i = 0; i < b * dL; ++i) w.gz[L - 1][i] += w.tmp[i] + w.extra[i];
  }
  // ---- the forward chain z_l = h_l W_l, h_{l+1} = sigma(z_l)
  for (int l = L - 1; l >= 1; --l) {
    const int din = D.din[l], dd = D.dout[l], wc = D.wc[l];
    T* t1 = w.gx.data();
    std::memcpy(t1, w.gh[l].data(), sizeof(T) * b * din);
    gemm<T>(b, din, dd, w.gz[l].data(), dd, false, WS[l], wc, true, t1, din, T(1), true);
    for (int i = 0; i < b * din; ++i) w.gz[l - 1][i] += w.sz1[l - 1][i] * t1[i];
    gemm<T>(din, dd, b, w.hs[l].data(), din, true, w.gz[l].data(), dd, false, gS[l], wc, T(1), true);
    gemm<T>(din, dd, b, w.gp[l - 1].data(), din, true, w.dl[l].data(), dd, false, gS[l], wc, T(1), true);
  }
  // layer 0: the rows [K; Q] times [W_0 | S_0] gave z_0 (K rows, W part) and [c_0 | e_0] (Q rows)
  const int d0 = D.dout[0], wc0 = D.wc[0], d = D.d;
  T* gz = w.hG.data();  // reuse as gzkq [2b, wc0]
  std::vector<T> gzkq((size_t)2 * b * wc0, T(0));
  for (int t = 0; t < b; ++t) {
    for (int j = 0; j < d0; ++j) gzkq[(size_t)t * wc0 + j] = w.gz[0][(size_t)t * d0 + j];
    std::memcpy(&gzkq[(size_t)(b + t) * wc0], &w.gce[0][(size_t)t * wc0], sizeof(T) * wc0);
  }
  (void)gz;
  gemm<T>(d, wc0, 2 * b, in.kq, d, true, gzkq.data(), wc0, false, gS[0], wc0, T(1), true);
  gemm<T>(2 * b, d, wc0, gzkq.data(), wc0, false, WS[0], wc0, true, gkq, d, T(1), false);
  for (int i = 0; i < b * d; ++i) gkq[i] += w.gh[0][i];
  // the chunk-start gradient becomes the next (earlier) chunk's chunk-end gradient
  for (int l = 0; l < L; ++l) std::memcpy(gW[l], gS[l], sizeof(T) * D.din[l] * D.wc[l]);
}

template <typename T>
size_t state_size(const Dims& D, int l) {
  return (size_t)D.din[l] * D.wc[l];
}

template <typename T>
void scan_forward(const Dims& D, const Arrays<T>& X, T* y, T* const* WSout, T* const* saved, int nthreads) {
  const int L = D.depth;
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int n = 0; n < D.N; ++n) {
    Work<T> w(D);
    std::vector<T> cur[MAXL], nxt[MAXL];
    T *pc[MAXL], *pn[MAXL];
    for (int l = 0; l < L; ++l) {
      const size_t sz = state_size<T>(D, l);
      cur[l].assign(X.WS[l] + n * sz, X.WS[l] + (n + 1) * sz);
      nxt[l].resize(sz);
      pc[l] = cur[l].data();
      pn[l] = nxt[l].data();
    }
    for (int c = 0; c < D.nc; ++c) {
      if (saved && c % D.group == 0)
        for (int l = 0; l < L; ++l) {
          const size_t sz = state_size<T>(D, l);
          std::memcpy(saved[l] + ((size_t)(c / D.group) * D.N + n) * sz, pc[l], sizeof(T) * sz);
        }
      const ChunkIn<T> in = chunk_in(D, X, c, n);
      inner(D, in, pc, w);
      read(D, in, pc, w, y + ((size_t)c * D.N + n) * D.b * D.dout[L - 1]);
      if (c < D.nc - 1 || D.update_last) {
        update(D, in, pc, w, pn);
        for (int l = 0; l < L; ++l) std::swap(pc[l], pn[l]);
      }
    }
    for (int l = 0; l < L; ++l) {
      const size_t sz = state_size<T>(D, l);
      std::memcpy(WSout[l] + n * sz, pc[l], sizeof(T) * sz);
    }
  }
}

template <typename T>
void scan_backward(const Dims& D, const Arrays<T>& X, T* const* saved, const T* gy, const Grads<T>& G,
                   int nthreads) {
  const int L = D.depth, b = D.b, d = D.d;
  const int n_saved = (D.nc + D.group - 1) / D.group;
#pragma omp parallel for num_threads(nthreads) schedule(static)
  for (int n = 0; n < D.N; ++n) {
    Work<T> w(D);
    std::vector<std::vector<T>> states((size_t)D.group * L);
    std::vector<T> gS[MAXL];
    T *pgW[MAXL], *pgS[MAXL];
    for (int l = 0; l < L; ++l) {
      const size_t sz = state_size<T>(D, l);
      for (int k = 0; k < D.group; ++k) states[(size_t)k * L + l].resize(sz);
      gS[l].resize(sz);
      pgW[l] = G.WS[l] + n * sz;  // in place: the final state's gradient, then each earlier one
      pgS[l] = gS[l].data();
    }
    for (int g = n_saved - 1; g >= 0; --g) {
      const int c0 = g * D.group, c1 = std::min(D.nc, (g + 1) * D.group);
      T* ps[MAXL];
      for (int l = 0; l < L; ++l) {
        const size_t sz = state_size<T>(D, l);
        std::memcpy(states[l].data(), saved[l] + ((size_t)g * D.N + n) * sz, sizeof(T) * sz);
      }
      for (int c = c0; c < c1 - 1; ++c) {  // the group's chunk-start states (every chunk here updates)
        const ChunkIn<T> in = chunk_in(D, X, c, n);
        T *pc[MAXL], *pn[MAXL];
        for (int l = 0; l < L; ++l) {
          pc[l] = states[(size_t)(c - c0) * L + l].data();
          pn[l] = states[(size_t)(c - c0 + 1) * L + l].data();
        }
        inner(D, in, pc, w);
        update(D, in, pc, w, pn);
      }
      for (int c = c1 - 1; c >= c0; --c) {
        const ChunkIn<T> in = chunk_in(D, X, c, n);
        for (int l = 0; l < L; ++l) ps[l] = states[(size_t)(c - c0) * L + l].data();
        const size_t cn = (size_t)c * D.N + n;
        T* gco_c[MAXL * 7];
        const size_t sizes[7] = {(size_t)b, (size_t)b, (size_t)b * b, 0, 1, (size_t)b, (size_t)b};
        for (int l = 0; l < L; ++l)
          for (int k = 0; k < 7; ++k) {
            const size_t sz = k == 3 ? (size_t)D.c1w[l] : sizes[k];
            gco_c[l * 7 + k] = G.co[l][k] ? G.co[l][k] + cn * sz : nullptr;
          }
        T* gtg[MAXL];
        for (int l = 0; l < L; ++l) gtg[l] = G.tg[l] ? G.tg[l] + (size_t)n * D.din[l] * D.dout[l] : nullptr;
        const size_t bd = (size_t)b * d;
        chunk_backward(D, in, ps, gy + cn * bd, c < D.nc - 1 || D.update_last, w, pgW, pgS, G.kq + cn * 2 * bd,
                       G.qb ? G.qb + cn * bd : nullptr, G.v ? G.v + cn * bd : nullptr,
                       G.off ? G.off + cn * bd : nullptr, G.lnw ? G.lnw + (size_t)n * d : nullptr,
                       G.r0 ? G.r0 + cn * b * D.dout[0] : nullptr, gco_c, gtg);
      }
    }
  }
}

template <typename T>
void unpack(const int64_t* ints, const double* eps, void** ptrs, Dims& D, Arrays<T>& X, Grads<T>* G) {
  D.depth = (int)ints[0];
  D.b = (int)ints[1];
  D.d = (int)ints[2];
  D.nc = (int)ints[3];
  D.N = (int)ints[4];
  D.group = (int)ints[5];
  D.act = (int)ints[6];
  D.momentum = (int)ints[7];
  D.update_last = (int)ints[8];
  for (int l = 0; l < D.depth; ++l) {
    D.din[l] = (int)ints[9 + 3 * l];
    D.dout[l] = (int)ints[10 + 3 * l];
    D.c1w[l] = (int)ints[11 + 3 * l];
    D.wc[l] = D.dout[l] * (D.momentum ? 2 : 1);
  }
  D.eps = eps[0];
  // pointer layout: WS[4], kq, qb, v, off, lnw, r0, co[4][7], tg[4]
  int k = 0;
  for (int l = 0; l < MAXL; ++l) X.WS[l] = (T*)ptrs[k++];
  X.kq = (T*)ptrs[k++];
  X.qb = (T*)ptrs[k++];
  X.v = (T*)ptrs[k++];
  X.off = (T*)ptrs[k++];
  X.lnw = (T*)ptrs[k++];
  X.r0 = (T*)ptrs[k++];
  for (int l = 0; l < MAXL; ++l)
    for (int j = 0; j < 7; ++j) X.co[l][j] = (T*)ptrs[k++];
  for (int l = 0; l < MAXL; ++l) X.tg[l] = (T*)ptrs[k++];
  if (G) {  // gradients in the same layout after the inputs
    for (int l = 0; l < MAXL; ++l) G->WS[l] = (T*)ptrs[k++];
    G->kq = (T*)ptrs[k++];
    G->qb = (T*)ptrs[k++];
    G->v = (T*)ptrs[k++];
    G->off = (T*)ptrs[k++];
    G->lnw = (T*)ptrs[k++];
    G->r0 = (T*)ptrs[k++];
    for (int l = 0; l < MAXL; ++l)
      for (int j = 0; j < 7; ++j) G->co[l][j] = (T*)ptrs[k++];
    for (int l = 0; l < MAXL; ++l) G->tg[l] = (T*)ptrs[k++];
  }
}

// ptrs after the inputs (forward): y, WSout[4], saved[4] (saved[0] null: nothing saved)
template <typename T>
void forward_entry(const int64_t* ints, const double* eps, void** ptrs, int nthreads) {
  Dims D{};
  Arrays<T> X{};
  unpack<T>(ints, eps, ptrs, D, X, nullptr);
  const int k = 4 + 6 + 7 * MAXL + MAXL;
  T* y = (T*)ptrs[k];
  T* WSout[MAXL];
  T* saved[MAXL];
  for (int l = 0; l < MAXL; ++l) WSout[l] = (T*)ptrs[k + 1 + l];
  for (int l = 0; l < MAXL; ++l) saved[l] = (T*)ptrs[k + 1 + MAXL + l];
  scan_forward<T>(D, X, y, WSout, saved[0] ? saved : nullptr, nthreads);
}

// The gradients of every input but the state start at zero (the caller allocates them uninitialised).
template <typename T>
void zero_input_grads(const Dims& D, const Grads<T>& G) {
  const size_t cn = (size_t)D.nc * D.N, b = D.b, d = D.d;
  auto zero = [](T* p, size_t n) {
    if (p) std::memset(p, 0, sizeof(T) * n);
  };
  zero(G.kq, cn * 2 * b * d);
  zero(G.qb, cn * b * d);
  zero(G.v, cn * b * d);
  zero(G.off, cn * b * d);
  zero(G.lnw, (size_t)D.N * d);
  zero(G.r0, cn * b * D.dout[0]);
  for (int l = 0; l < D.depth; ++l) {
    const size_t sizes[7] = {b, b, b * b, (size_t)D.c1w[l], 1, b, b};
    for (int k = 0; k < 7; ++k) zero(G.co[l][k], cn * sizes[k]);
    zero(G.tg[l], (size_t)D.N * D.din[l] * D.dout[l]);
  }
}

// ptrs: inputs, gradients (same layout; gradient WS holds the final state's gradient on entry), saved[4], gy
template <typename T>
void backward_entry(const int64_t* ints, const double* eps, void** ptrs, int nthreads) {
  Dims D{};
  Arrays<T> X{};
  Grads<T> G{};
  unpack<T>(ints, eps, ptrs, D, X, &G);
  zero_input_grads(D, G);
  const int k = 2 * (4 + 6 + 7 * MAXL + MAXL);
  T* saved[MAXL];
  for (int l = 0; l < MAXL; ++l) saved[l] = (T*)ptrs[k + l];
  const T* gy = (const T*)ptrs[k + MAXL];
  scan_backward<T>(D, X, saved, gy, G, nthreads);
}

}  // namespace

extern "C" {
void titans_scan_forward_f32(const int64_t* ints, const double* eps, void** ptrs, int nthreads) {
  forward_entry<float>(ints, eps, ptrs, nthreads);
}
void titans_scan_forward_f64(const int64_t* ints, const double* eps, void** ptrs, int nthreads) {
  forward_entry<double>(ints, eps, ptrs, nthreads);
}
void titans_scan_backward_f32(const int64_t* ints, const double* eps, void** ptrs, int nthreads) {
  backward_entry<float>(ints, eps, ptrs, nthreads);
}
void titans_scan_backward_f64(const int64_t* ints, const double* eps, void** ptrs, int nthreads) {
  backward_entry<double>(ints, eps, ptrs, nthreads);
}
}
