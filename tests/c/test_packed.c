/* The packed recurrent-product kernels and the single-row kernel
 * (src/packed.c) against a float64
 * reference, for every kernel this CPU has, over shapes that hit every tail:
 * rows not a multiple of the row block, panels with np < 16 and
 * 16 < np < 32, K = 1, and strided A and C. Memory around C is checked
 * untouched, and the packing against its definition. */
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

/* C = A · W[rows]^T where column n is W row rowof(n), in float64 */
static void reference(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                      const float *W, int64_t ldw, int64_t group, int64_t gstride, double *C) {
    for (int64_t i = 0; i < M; i++)
        for (int64_t n = 0; n < N; n++) {
            const float *w = W + ((n / group) * gstride + n % group) * ldw;
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += (double)A[i * lda + k] * w[k];
            C[i * N + n] = s;
        }
}

#define GUARD 64
#define SENTINEL 12345.0f

/* One shape, rows packed (forward) with gate groups of `group`. */
static void check_shape(int64_t M, int64_t N, int64_t K, int64_t group, int isa) {
    const int64_t gstride = group + 3, lda = K + 5, ldc = N + 7, ldw = K + 2;
    const int64_t nrows = (N + group - 1) / group * gstride;
    float *W = malloc(sizeof(float) * nrows * ldw), *A = malloc(sizeof(float) * M * lda);
    float *Wp = malloc(sizeof(float) * (N * K + GUARD));
    float *Cb = malloc(sizeof(float) * (M * ldc + 2 * GUARD)), *C = Cb + GUARD;
    double *ref = malloc(sizeof(double) * M * N);
    if (!CHECK(W && A && Wp && Cb && ref, "malloc")) goto out;
    for (int64_t i = 0; i < nrows * ldw; i++) W[i] = urand();
    for (int64_t i = 0; i < M * lda; i++) A[i] = urand();
    for (int64_t i = 0; i < N * K + GUARD; i++) Wp[i] = SENTINEL;
    for (int64_t i = 0; i < M * ldc + 2 * GUARD; i++) Cb[i] = SENTINEL;
    clstm_pack_rows_f32(Wp, W, ldw, N, K, group, gstride);
    int guard_ok = 1;
    for (int64_t i = N * K; i < N * K + GUARD; i++) guard_ok &= Wp[i] == SENTINEL;
    CHECK(guard_ok, "pack wrote past N*K (M=%lld N=%lld K=%lld)", (long long)M, (long long)N,
          (long long)K);
    reference(M, N, K, A, lda, W, ldw, group, gstride, ref);
    if (!CHECK(clstm_packed_gemm_f32(M, N, K, A, lda, Wp, C, ldc), "kernel available (isa %d)",
               isa))
        goto out;
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
    /* each term is at most 1 in size: K float32 roundings of partial sums */
    CHECK(worst <= 1e-6 * K + 1e-6, "isa %d M=%lld N=%lld K=%lld: max error %g", isa,
          (long long)M, (long long)N, (long long)K, worst);
    CHECK(outside_ok, "isa %d M=%lld N=%lld K=%lld: wrote outside C's rows", isa, (long long)M,
          (long long)N, (long long)K);
out:
    free(W);
    free(A);
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

/* A whole training step (forward, backward, gradients) on each kernel
 * against BLAS gemm alone (limit none): they differ in rounding only. H = 40
 * on two threads gives slices with every tail; B = 1 takes the row kernel. */
static void check_lstm_paths(void) {
    const int64_t T = 6, D = 24, H = 40;
    clstm_set_num_threads(2);
    clstm_set_min_thread_work(0);
    for (int64_t B = 1; B <= 5; B += 4) {
        clstm_config cfg = clstm_config_default();
        cfg.input_size = D;
        cfg.hidden_size = H;
        clstm_model *m = NULL;
        if (!CHECK(clstm_create(&cfg, 7, &m) == CLSTM_OK, "create")) return;
        size_t ws_bytes = 0, np = 0;
        void *pp = NULL, *gp = NULL;
        clstm_workspace_size(m, T, B, 1, &ws_bytes);
        clstm_grads(m, &gp, &np);
        clstm_params(m, &pp, &np);
        float *x = malloc(sizeof(float) * T * B * D), *dy = malloc(sizeof(float) * T * B * H);
        float *y[3], *dx[3], *g[3];
        void *ws = malloc(ws_bytes);
        for (int i = 0; i < 3; i++) {
            y[i] = malloc(sizeof(float) * T * B * H);
            dx[i] = malloc(sizeof(float) * T * B * D);
            g[i] = malloc(sizeof(float) * np);
        }
        for (int64_t i = 0; i < T * B * D; i++) x[i] = urand();
        for (int64_t i = 0; i < T * B * H; i++) dy[i] = urand();
        for (int isa = 0; isa < 3; isa++) {
            clstm_packed_limit_isa(isa);
            memset(gp, 0, sizeof(float) * np);
            CHECK(clstm_forward(m, T, B, x, NULL, NULL, y[isa], NULL, NULL, 1, ws, ws_bytes) ==
                      CLSTM_OK, "forward");
            CHECK(clstm_backward(m, T, B, dy, NULL, NULL, dx[isa], NULL, NULL, ws, ws_bytes) ==
                      CLSTM_OK, "backward");
            memcpy(g[isa], gp, sizeof(float) * np);
        }
        clstm_packed_limit_isa(2);
        for (int isa = 1; isa < 3; isa++) {
            double e = 0;
            for (int64_t i = 0; i < T * B * H; i++) e = fmax(e, fabs(y[isa][i] - y[0][i]));
            for (int64_t i = 0; i < T * B * D; i++) e = fmax(e, fabs(dx[isa][i] - dx[0][i]));
            for (size_t i = 0; i < np; i++) e = fmax(e, fabs(g[isa][i] - g[0][i]));
            CHECK(e < 1e-4, "B=%lld isa %d against BLAS: max difference %g", (long long)B, isa, e);
        }
        for (int i = 0; i < 3; i++) free(y[i]), free(dx[i]), free(g[i]);
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
                for (size_t c = 0; c < sizeof Ks / sizeof *Ks; c++)
                    check_shape(Ms[a], Ns[b], Ks[c], Ns[b] > 8 ? Ns[b] / 4 + 1 : 1, isa);
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
