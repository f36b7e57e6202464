/* The packed recurrent-product kernels and the single-row kernel
 * (src/packed.c) against a float64
 * reference, for every kernel this CPU has, over shapes that hit every tail:
 * rows not a multiple of the row block, panels with np < 16 and
 * 16 < np < 32, K = 1, and strided A and C; with one operand, and with two
 * stacked operands and a bias (the fused step product). Memory around C
 * and past the packed panels is checked untouched, and the packing against
 * its definition. Then whole LSTM calls on every kernel (fused, unfused,
 * chunked, bidirectional, ragged) against BLAS alone. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "ctest.h"
#include "internal.h"

static uint64_t rng = 88172645463325252ull;
static float urand(void) { /* xorshift64, uniform in [-1, 1) */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 40) * (2.0 / 16777216.0) - 1.0);
}

/* One operand of a product: A (M, K) and W, whose row rowof(n) is
 * column n of the product. */
typedef struct {
    const float *A, *W;
    int64_t lda, ldw, K;
} operand;

/* C = bias + A · W[rows]^T (+ A2 · W2[rows]^T when K2 > 0) where column n
 * is row rowof(n) of W (and W2), in float64; bias NULL: none. */
static void reference(int64_t M, int64_t N, operand o1, operand o2, const float *bias,
                      int64_t group, int64_t gstride, double *C) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t n = 0; n < N; n++) {
            const int64_t row = (n / group) * gstride + n % group;
            double s = bias ? bias[n] : 0;
            for (int64_t k = 0; k < o1.K; k++) s += (double)o1.A[i * o1.lda + k] * o1.W[row * o1.ldw + k];
            for (int64_t k = 0; k < o2.K; k++) s += (double)o2.A[i * o2.lda + k] * o2.W[row * o2.ldw + k];
            C[i * N + n] = s;
        }
}

#define GUARD 64
#define SENTINEL 12345.0f

/* One shape, rows packed (forward) with gate groups of `group`; with K2 >
 * 0 or a bias, the two-operand form (second operand K2 wide). */
static void check_shape(int64_t M, int64_t N, int64_t K, int64_t K2, int with_bias,
                        int64_t group, int isa) {
    const int64_t gstride = group + 3, lda = K + 5, ldc = N + 7, ldw = K + 2;
    const int64_t lda2 = K2 + 6, ldw2 = K2 + 4, KK = K + K2;
    const int64_t nrows = (N + group - 1) / group * gstride;
    float *W = malloc(sizeof(float) * nrows * ldw), *A = malloc(sizeof(float) * M * lda);
    float *W2 = malloc(sizeof(float) * (nrows * ldw2 + 1));
    float *A2 = malloc(sizeof(float) * (M * lda2 + 1)), *bias = malloc(sizeof(float) * N);
    float *Wp = malloc(sizeof(float) * (N * KK + GUARD));
    float *Cb = malloc(sizeof(float) * (M * ldc + 2 * GUARD)), *C = Cb + GUARD;
    double *ref = malloc(sizeof(double) * M * N);
    if (!CHECK(W && A && W2 && A2 && bias && Wp && Cb && ref, "malloc")) goto out;
    for (int64_t i = 0; i < nrows * ldw; i++) W[i] = urand();
    for (int64_t i = 0; i < M * lda; i++) A[i] = urand();
    for (int64_t i = 0; i < nrows * ldw2; i++) W2[i] = urand();
    for (int64_t i = 0; i < M * lda2; i++) A2[i] = urand();
    for (int64_t i = 0; i < N; i++) bias[i] = urand();
    for (int64_t i = 0; i < N * KK + GUARD; i++) Wp[i] = SENTINEL;
    for (int64_t i = 0; i < M * ldc + 2 * GUARD; i++) Cb[i] = SENTINEL;
    const int two = K2 > 0 || with_bias;
    if (two)
        clstm_pack_rows2_f32(Wp, W, ldw, K, W2, ldw2, K2, N, group, gstride);
    else
        clstm_pack_rows_f32(Wp, W, ldw, N, K, group, gstride);
    int guard_ok = 1;
    for (int64_t i = N * KK; i < N * KK + GUARD; i++) guard_ok &= Wp[i] == SENTINEL;
    CHECK(guard_ok, "pack wrote past N*K (M=%lld N=%lld K=%lld K2=%lld)", (long long)M,
          (long long)N, (long long)K, (long long)K2);
    const operand o1 = {A, W, lda, ldw, K}, o2 = {A2, W2, lda2, ldw2, K2};
    reference(M, N, o1, o2, with_bias ? bias : NULL, group, gstride, ref);
    const int ran = two ? clstm_packed_gemm2_f32(M, N, A, lda, K, A2, lda2, K2, Wp,
                                                 with_bias ? bias : NULL, C, ldc)
                        : clstm_packed_gemm_f32(M, N, K, A, lda, Wp, C, ldc);
    if (!CHECK(ran, "kernel available (isa %d)", isa)) goto out;
    double worst = 0;
    int outside_ok = 1;
    for (int64_t i = -GUARD; i < M * ldc + GUARD; i++) {
        const int64_t r = i / ldc, c = i % ldc;
        if (i >= 0 && i < M * ldc && c < N) {
            const double e = fabs(C[i] - ref[r * N + c]);
            worst = e > worst ? e : worst;
        } else {
            outside_ok &= C[i] == SENTINEL;
        }
    }
    /* each term is at most 1 in size: K + K2 + 1 float32 roundings of partial sums */
    CHECK(worst <= 1e-6 * (KK + 1) + 1e-6, "isa %d M=%lld N=%lld K=%lld K2=%lld bias %d: max error %g",
          isa, (long long)M, (long long)N, (long long)K, (long long)K2, with_bias, worst);
    CHECK(outside_ok, "isa %d M=%lld N=%lld K=%lld K2=%lld: wrote outside C's rows", isa,
          (long long)M, (long long)N, (long long)K, (long long)K2);
out:
    free(W);
    free(A);
    free(W2);
    free(A2);
    free(bias);
    free(Wp);
    free(Cb);
    free(ref);
}

/* The single-row product against float64, for N around the 4-row blocks
 * and K around the vector widths, with guard zones around y. */
static void check_rowdot(int isa) {
    static const int64_t Ns[] = {1, 3, 4, 5, 9, 64};
    static const int64_t Ks[] = {1, 7, 8, 9, 15, 16, 17, 33, 256};
    for (size_t a = 0; a < sizeof Ns / sizeof *Ns; a++)
        for (size_t b = 0; b < sizeof Ks / sizeof *Ks; b++) {
            const int64_t N = Ns[a], K = Ks[b], ldw = K + 3;
            float *W = malloc(sizeof(float) * N * ldw), *x = malloc(sizeof(float) * K);
            float *yb = malloc(sizeof(float) * (N + 2 * GUARD)), *y = yb + GUARD;
            if (!CHECK(W && x && yb, "malloc")) {
                free(W), free(x), free(yb);
                return;
            }
            for (int64_t i = 0; i < N * ldw; i++) W[i] = urand();
            for (int64_t i = 0; i < K; i++) x[i] = urand();
            for (int64_t i = 0; i < N + 2 * GUARD; i++) yb[i] = SENTINEL; /* y: below */
            const int acc = (int)(b & 1); /* y += W x on every other shape */
            for (int64_t n = 0; n < N; n++) y[n] = acc ? (float)n : 0;
            CHECK(clstm_rowdot_f32(N, K, W, ldw, x, y, acc), "rowdot available (isa %d)", isa);
            double worst = 0;
            for (int64_t n = 0; n < N; n++) {
                double s = acc ? (double)n : 0;
                for (int64_t k = 0; k < K; k++) s += (double)W[n * ldw + k] * x[k];
                worst = fabs(y[n] - s) > worst ? fabs(y[n] - s) : worst;
            }
            int outside_ok = 1;
            for (int64_t i = 0; i < GUARD; i++)
                outside_ok &= yb[i] == SENTINEL && y[N + i] == SENTINEL;
            CHECK(worst <= 1e-6 * K + 1e-6, "rowdot isa %d N=%lld K=%lld: max error %g", isa,
                  (long long)N, (long long)K, worst);
            CHECK(outside_ok, "rowdot isa %d N=%lld K=%lld wrote outside y", isa, (long long)N,
                  (long long)K);
            free(W), free(x), free(yb);
        }
}

/* Column packing is row packing of the transpose: check it directly. */
static void check_pack_cols(void) {
    const int64_t K = 37, N = 45, ldw = 50;
    float *W = malloc(sizeof(float) * K * ldw), *Wp = malloc(sizeof(float) * N * K);
    if (!CHECK(W && Wp, "malloc")) goto out;
    for (int64_t i = 0; i < K * ldw; i++) W[i] = urand();
    clstm_pack_cols_f32(Wp, W, ldw, N, K);
    int ok = 1;
    for (int64_t n = 0; n < N; n++) {
        const int64_t p0 = n / 32 * 32, np = N - p0 < 32 ? N - p0 : 32;
        for (int64_t k = 0; k < K; k++) ok &= Wp[p0 * K + k * np + (n - p0)] == W[k * ldw + n];
    }
    CHECK(ok, "column packing matches its definition");
out:
    free(W);
    free(Wp);
}

/* Whole calls on each kernel against BLAS gemm alone (limit none): they
 * differ in rounding only. A training step (forward, backward, gradients)
 * and an inference forward (y, h_T, c_T) for: one layer; two layers over
 * T = 70 (chunked inference: each layer packs in its first chunk and reuses
 * its panel in the next two); bidirectional with every length T (the
 * reverse unit fused too) and with ragged lengths (the reverse unit
 * unfused). H = 40 on two threads gives slices with every tail; B = 1 takes
 * the row kernel, B = 5 the packed (fused) one split by units, B = 9 the
 * same split by batch rows (3 or more per thread). */
static void check_lstm_paths(void) {
    static const struct {
        int64_t T, L;
        int bidir, ragged;
    } cases[] = {{6, 1, 0, 0}, {70, 2, 0, 0}, {9, 2, 1, 0}, {9, 1, 1, 1}};
    const int64_t D = 24, H = 40;
    clstm_set_num_threads(2);
    clstm_set_min_thread_work(0);
    for (size_t ci = 0; ci < sizeof cases / sizeof *cases; ci++)
        for (int64_t B = 1; B <= 9; B += 4) {
            const int64_t T = cases[ci].T, N = cases[ci].bidir ? 2 : 1, NL = N * cases[ci].L;
            clstm_config cfg = clstm_config_default();
            cfg.input_size = D;
            cfg.hidden_size = H;
            cfg.num_layers = cases[ci].L;
            cfg.bidirectional = cases[ci].bidir;
            clstm_model *m = NULL;
            if (!CHECK(clstm_create(&cfg, 7, &m) == CLSTM_OK, "create")) return;
            size_t ws_bytes = 0, np = 0;
            void *pp = NULL, *gp = NULL;
            clstm_workspace_size(m, T, B, 1, &ws_bytes);
            clstm_grads(m, &gp, &np);
            clstm_params(m, &pp, &np);
            int64_t lens[9];
            for (int64_t b = 0; b < B; b++) lens[b] = cases[ci].ragged ? T - 2 * (b % 5) : T;
            clstm_run_options opt = clstm_run_options_default();
            opt.lengths = lens;
            const int64_t ny = T * B * N * H, ns = NL * B * H;
            float *x = malloc(sizeof(float) * T * B * D), *dy = malloc(sizeof(float) * ny);
            float *y[3], *dx[3], *g[3], *yi[3], *st[3];
            void *ws = malloc(ws_bytes);
            for (int i = 0; i < 3; i++) {
                y[i] = malloc(sizeof(float) * ny);
                yi[i] = malloc(sizeof(float) * ny);
                st[i] = malloc(sizeof(float) * 2 * ns);
                dx[i] = malloc(sizeof(float) * T * B * D);
                g[i] = malloc(sizeof(float) * np);
            }
            for (int64_t i = 0; i < T * B * D; i++) x[i] = urand();
            for (int64_t i = 0; i < ny; i++) dy[i] = urand();
            for (int isa = 0; isa < 3; isa++) {
                clstm_packed_limit_isa(isa);
                memset(gp, 0, sizeof(float) * np);
                opt.train = 1;
                CHECK(clstm_forward_ex(m, T, B, x, NULL, NULL, y[isa], NULL, NULL, &opt, ws,
                                       ws_bytes) == CLSTM_OK, "forward");
                CHECK(clstm_backward(m, T, B, dy, NULL, NULL, dx[isa], NULL, NULL, ws,
                                     ws_bytes) == CLSTM_OK, "backward");
                memcpy(g[isa], gp, sizeof(float) * np);
                opt.train = 0;
                CHECK(clstm_forward_ex(m, T, B, x, NULL, NULL, yi[isa], st[isa], st[isa] + ns,
                                       &opt, ws, ws_bytes) == CLSTM_OK, "inference");
            }
            clstm_packed_limit_isa(2);
            for (int isa = 1; isa < 3; isa++) {
                double e = 0, ei = 0;
                for (int64_t i = 0; i < ny; i++) e = fmax(e, fabs(y[isa][i] - y[0][i]));
                for (int64_t i = 0; i < T * B * D; i++) e = fmax(e, fabs(dx[isa][i] - dx[0][i]));
                for (size_t i = 0; i < np; i++) e = fmax(e, fabs(g[isa][i] - g[0][i]));
                for (int64_t i = 0; i < ny; i++) ei = fmax(ei, fabs(yi[isa][i] - yi[0][i]));
                for (int64_t i = 0; i < 2 * ns; i++) ei = fmax(ei, fabs(st[isa][i] - st[0][i]));
                CHECK(e < 1e-4, "case %zu B=%lld isa %d training against BLAS: max difference %g",
                      ci, (long long)B, isa, e);
                CHECK(ei < 1e-5, "case %zu B=%lld isa %d inference against BLAS: max difference %g",
                      ci, (long long)B, isa, ei);
            }
            for (int i = 0; i < 3; i++) free(y[i]), free(yi[i]), free(st[i]), free(dx[i]), free(g[i]);
            free(x), free(dy), free(ws);
            clstm_free(m);
        }
    clstm_set_min_thread_work(CLSTM_DEFAULT_MIN_THREAD_WORK);
}

int main(void) {
    static const int64_t Ms[] = {1, 2, 5, 6, 7, 11, 12, 13, 16, 25, 64};
    static const int64_t Ns[] = {1, 8, 15, 16, 17, 31, 32, 33, 48, 100};
    static const int64_t Ks[] = {1, 3, 64, 129};
    int tried = 0;
    for (int isa = 2; isa >= 1; isa--) {
        if (clstm_packed_limit_isa(isa) != isa) continue; /* this CPU lacks it */
        tried++;
        for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
            for (size_t b = 0; b < sizeof Ns / sizeof *Ns; b++)
                for (size_t c = 0; c < sizeof Ks / sizeof *Ks; c++) {
                    const int64_t group = Ns[b] > 8 ? Ns[b] / 4 + 1 : 1;
                    check_shape(Ms[a], Ns[b], Ks[c], 0, 0, group, isa);
                    /* fused: a second operand (or none) and a bias */
                    check_shape(Ms[a], Ns[b], Ks[c], Ks[(c + 1) % 4], 1, group, isa);
                    check_shape(Ms[a], Ns[b], Ks[c], 0, 1, group, isa);
                }
        check_rowdot(isa);
    }
    CHECK_EQ(clstm_packed_limit_isa(0), 0);
    CHECK(!clstm_packed_gemm_f32(2, 2, 2, NULL, 2, NULL, NULL, 2),
          "no kernel when limited to none: the caller falls back, nothing is written");
    CHECK(!clstm_rowdot_f32(2, 2, NULL, 2, NULL, NULL, 0), "no row kernel when limited to none");
    clstm_packed_limit_isa(2);
    check_pack_cols();
    check_lstm_paths();
    printf("packed kernels tried: %d\n", tried);
    return ctest_finish();
}
