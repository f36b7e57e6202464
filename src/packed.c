/* The recurrent product on packed weights: C (M, N) = A (M, K) · Wp, in
 * float32: the packing, and the one table of kernels per instruction set
 * (packed_avx512.c, packed_avx2.c; packed_kernel.inc) chosen at run time.
 *
 * Why not BLAS: a step's product is small (M = the batch, 16 to 64 rows)
 * and repeated T times on the same weights. OpenBLAS repacks the weights on
 * every call and reaches 56 GFLOP/s per core at 16 x 128 @ 128 x 512 on an
 * AVX-512 Xeon, a third of the core's peak (bench/RESULTS.md). Packing once
 * per call of the forward or backward sweep and running a register-blocked
 * kernel over the panels removes both costs.
 *
 * Packed layout: the N columns in panels of PANEL = 32; panel p holds
 * columns [32p, 32p + np) with np = min(32, N - 32p), stored at
 * Wp + 32p*K as K rows of np floats ([k][c]). The last panel is compact, so
 * the whole is exactly N*K floats. Two stacked operands (the fused step
 * product [h, x] · [W_hh; W_ih]^T, K = K1 + K2) keep each panel's K1 rows
 * of the first weight followed by its K2 rows of the second. Tails (np <
 * 32, rows not a multiple of the block) use masked loads and stores, which
 * never touch memory past the panel or the row.
 *
 * Accumulation: each C element is a sum over k in increasing order, one
 * fused multiply-add per term, in float32: results differ from BLAS's in
 * rounding only (the tests compare against a float64 reference). */
#include <string.h>
#include "packed.h"

/* K rows of one panel's np columns: column c is row rows[c] of W, as
 * read from its first K entries. k outer: the writes are sequential, the
 * np reads streams. */
static void pack_panel_rows(float *restrict d, const float *const *rows, int64_t np, int64_t K) {
    for (int64_t k = 0; k < K; k++)
        for (int64_t c = 0; c < np; c++) d[k * np + c] = rows[c][k];
}

/* Pack N columns of two stacked operands: column n is row rowof(n) of W
 * (K entries, leading dimension ldw) followed by row rowof(n) of W2 (K2
 * entries, ldw2; none when K2 = 0), with rowof(n) = (n / group) * gstride
 * + n % group. */
void clstm_pack_rows2_f32(float *restrict dst, const float *W, int64_t ldw, int64_t K,
                          const float *W2, int64_t ldw2, int64_t K2, int64_t N, int64_t group,
                          int64_t gstride) {
    for (int64_t p0 = 0; p0 < N; p0 += PANEL) {
        const int64_t np = N - p0 < PANEL ? N - p0 : PANEL;
        float *d = dst + p0 * (K + K2);
        const float *src[PANEL], *src2[PANEL];
        for (int64_t c = 0; c < np; c++) {
            const int64_t row = ((p0 + c) / group) * gstride + (p0 + c) % group;
            src[c] = W + row * ldw;
            src2[c] = K2 > 0 ? W2 + row * ldw2 : NULL;
        }
        pack_panel_rows(d, src, np, K);
        if (K2 > 0) pack_panel_rows(d + K * np, src2, np, K2);
    }
}

void clstm_pack_rows_f32(float *restrict dst, const float *restrict W, int64_t ldw, int64_t N,
                         int64_t K, int64_t group, int64_t gstride) {
    clstm_pack_rows2_f32(dst, W, ldw, K, NULL, 0, 0, N, group, gstride);
}

/* Pack N columns of W (K rows, leading dimension ldw): column n is W[:, n]. */
void clstm_pack_cols_f32(float *restrict dst, const float *restrict W, int64_t ldw, int64_t N,
                         int64_t K) {
    for (int64_t p0 = 0; p0 < N; p0 += PANEL) {
        const int64_t np = N - p0 < PANEL ? N - p0 : PANEL;
        float *d = dst + p0 * K;
        for (int64_t k = 0; k < K; k++) memcpy(d + k * np, W + k * ldw + p0, sizeof(float) * np);
    }
}

enum { ISA_NONE = 0, ISA_AVX2 = 1, ISA_AVX512 = 2, ISA_COUNT };

/* The kernels of each instruction set, by clstm_packed_limit_isa's number. */
static const pk_kernels *const isa_table[ISA_COUNT] = {
#ifdef PK_X86
    [ISA_AVX2] = &clstm_packed_avx2,
    [ISA_AVX512] = &clstm_packed_avx512,
#endif
};

static int has_isa(int i) { return isa_table[i] && isa_table[i]->cpu_has(); }
static clstm_isa_choice choice = {has_isa, ISA_COUNT, ISA_COUNT - 1, -1};

static const pk_kernels *active_kernels(void) { return isa_table[clstm_isa_active(&choice)]; }

int clstm_packed_available(void) { return active_kernels() != NULL; }

int clstm_packed_limit_isa(int isa) { return clstm_isa_limit(&choice, isa); }

int clstm_rowdot_f32(int64_t N, int64_t K, const float *W, int64_t ldw, const float *x,
                     float *y, int acc) {
    if (N <= 0) return 1;
    if (K <= 0) {
        if (!acc) memset(y, 0, sizeof(float) * N);
        return 1;
    }
    const pk_kernels *kern = active_kernels();
    if (!kern) return 0;
    kern->rowdot(N, K, W, ldw, x, y, acc);
    return 1;
}

int clstm_packed_gemm2_f32(int64_t M, int64_t N, const float *A, int64_t lda, int64_t K,
                           const float *A2, int64_t lda2, int64_t K2, const float *Wp,
                           const float *bias, float *C, int64_t ldc) {
    const pk_kernels *kern = active_kernels();
    if (!kern) return 0;
    if (M <= 0 || N <= 0) return 1;
    if (K < 0) K = 0;
    if (K2 < 0) K2 = 0;
    const pk_args g = {A, A2, Wp, bias, lda, K, lda2, K2, C, ldc};
    kern->gemm(M, N, &g);
    return 1;
}

int clstm_packed_gemm_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                          const float *Wp, float *C, int64_t ldc) {
    return clstm_packed_gemm2_f32(M, N, A, lda, K, NULL, 0, 0, Wp, NULL, C, ldc);
}
