/* The recurrent product on packed weights: C (M, N) = A (M, K) · Wp, with
 * own AVX-512 and AVX2 micro-kernels chosen at run time, in float32.
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
#include "internal.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(CLSTM_NO_SIMD)
#include <immintrin.h>
#define PK_X86 1
#endif

#define PANEL CLSTM_PACK_PANEL

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

enum { ISA_NONE = 0, ISA_AVX2 = 1, ISA_AVX512 = 2 };

static int detect_isa(void) {
#ifdef PK_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) return ISA_AVX512;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return ISA_AVX2;
#endif
    return ISA_NONE;
}

/* -1: not yet detected. Written with the same value by any thread that
 * races here, so a relaxed atomic is enough. */
static int isa_cap = -1, isa_limit = ISA_AVX512;

static int active_isa(void) {
    int cap = __atomic_load_n(&isa_cap, __ATOMIC_RELAXED);
    if (cap < 0) {
        cap = detect_isa();
        __atomic_store_n(&isa_cap, cap, __ATOMIC_RELAXED);
    }
    int lim = __atomic_load_n(&isa_limit, __ATOMIC_RELAXED);
    return cap < lim ? cap : lim;
}

int clstm_packed_available(void) { return active_isa() != ISA_NONE; }

int clstm_packed_limit_isa(int isa) {
    if (isa < ISA_NONE || isa > ISA_AVX512) isa = ISA_AVX512;
    __atomic_store_n(&isa_limit, isa, __ATOMIC_RELAXED);
    return active_isa();
}

#ifdef PK_X86
#define T512 __attribute__((target("avx512f,fma")))
#define T256 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

/* The operands of one product: C (M, N) = [bias] + A (M, K) · W1 +
 * A2 (M, K2) · W2, the weights packed together (layout above). */
typedef struct {
    const float *A, *A2, *Wp, *bias; /* A2 unused when K2 = 0; bias NULL: none */
    int64_t lda, K, lda2, K2;
    float *C;
    int64_t ldc;
} pk_args;

/* Rows [0, MR) of A (and A2) times one panel (np columns, 16 < np <= 32
 * or not): two zmm accumulators per row; MR <= 12 keeps 24 of the 32
 * registers for them. The k loops of both operands are the same code
 * (MK512_K), so each C element sums the K terms, then the K2 terms, in
 * order. Called with a constant MR, so the row loops unroll. */
#define MR512 12
#define MK512_K(AA, LDA, KK, BB)                                               \
    for (int64_t k = 0; k < (KK); k++) {                                        \
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, (BB) + k * np);              \
        const __m512 b1 = _mm512_maskz_loadu_ps(m1, (BB) + k * np + 16);         \
        _Pragma("GCC unroll 12") for (int i = 0; i < MR; i++) {                  \
            const __m512 a = _mm512_set1_ps((AA)[i * (LDA) + k]);                \
            c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);                               \
            c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);                               \
        }                                                                        \
    }
INLINE T512 void mk512(const int MR, const pk_args *g, int64_t i0, int64_t p0, int64_t np) {
    const __mmask16 m0 = np >= 16 ? 0xFFFF : (__mmask16)((1u << np) - 1);
    const __mmask16 m1 = np >= 32 ? 0xFFFF : np > 16 ? (__mmask16)((1u << (np - 16)) - 1) : 0;
    const float *restrict A = g->A + i0 * g->lda, *restrict b = g->Wp + p0 * (g->K + g->K2);
    const int64_t lda = g->lda;
    const __m512 z0 = g->bias ? _mm512_maskz_loadu_ps(m0, g->bias + p0) : _mm512_setzero_ps();
    const __m512 z1 = g->bias ? _mm512_maskz_loadu_ps(m1, g->bias + p0 + 16) : _mm512_setzero_ps();
    __m512 c0[MR512], c1[MR512];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        c0[i] = z0;
        c1[i] = z1;
    }
    MK512_K(A, lda, g->K, b)
    if (g->K2 > 0) {
        const float *restrict A2 = g->A2 + i0 * g->lda2, *restrict b2 = b + g->K * np;
        const int64_t lda2 = g->lda2;
        MK512_K(A2, lda2, g->K2, b2)
    }
    float *restrict C = g->C + i0 * g->ldc + p0;
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        _mm512_mask_storeu_ps(C + i * g->ldc, m0, c0[i]);
        _mm512_mask_storeu_ps(C + i * g->ldc + 16, m1, c1[i]);
    }
}
#undef MK512_K

static T512 void gemm512(int64_t M, int64_t N, const pk_args *g) {
    const int64_t nb = (M + MR512 - 1) / MR512; /* row blocks of near-equal size */
    for (int64_t p0 = 0; p0 < N; p0 += PANEL) {
        const int64_t np = N - p0 < PANEL ? N - p0 : PANEL;
        for (int64_t blk = 0; blk < nb; blk++) {
            const int64_t i0 = M * blk / nb, mr = M * (blk + 1) / nb - i0;
            switch (mr) {
#define CASE(n) \
    case n: mk512(n, g, i0, p0, np); break;
                CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6)
                CASE(7) CASE(8) CASE(9) CASE(10) CASE(11) CASE(12)
#undef CASE
            }
        }
    }
}

/* AVX2: half-panels of 16 columns, two ymm accumulators per row, MR <= 6
 * (12 of the 16 registers). Masked loads and stores for np < 16 columns. */
#define MR256 6
INLINE T256 __m256i mask256(int64_t n) { /* lanes [0, n) on, n in [0, 8] */
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx);
}

/* As mk512 for the half-panel of nh columns at column h of the panel. */
#define MK256_K(AA, LDA, KK, BB)                                               \
    for (int64_t k = 0; k < (KK); k++) {                                        \
        const __m256 b0 = _mm256_maskload_ps((BB) + k * np, m0);                 \
        const __m256 b1 = _mm256_maskload_ps((BB) + k * np + 8, m1);             \
        _Pragma("GCC unroll 6") for (int i = 0; i < MR; i++) {                   \
            const __m256 a = _mm256_broadcast_ss((AA) + i * (LDA) + k);          \
            c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);                               \
            c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);                               \
        }                                                                        \
    }
INLINE T256 void mk256(const int MR, const pk_args *g, int64_t i0, int64_t p0, int64_t np,
                       int64_t h, int64_t nh) {
    const __m256i m0 = mask256(nh >= 8 ? 8 : nh), m1 = mask256(nh >= 16 ? 8 : nh > 8 ? nh - 8 : 0);
    const float *restrict A = g->A + i0 * g->lda, *restrict b = g->Wp + p0 * (g->K + g->K2) + h;
    const int64_t lda = g->lda;
    const __m256 z0 = g->bias ? _mm256_maskload_ps(g->bias + p0 + h, m0) : _mm256_setzero_ps();
    const __m256 z1 = g->bias ? _mm256_maskload_ps(g->bias + p0 + h + 8, m1) : _mm256_setzero_ps();
    __m256 c0[MR256], c1[MR256];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        c0[i] = z0;
        c1[i] = z1;
    }
    MK256_K(A, lda, g->K, b)
    if (g->K2 > 0) {
        const float *restrict A2 = g->A2 + i0 * g->lda2, *restrict b2 = b + g->K * np;
        const int64_t lda2 = g->lda2;
        MK256_K(A2, lda2, g->K2, b2)
    }
    float *restrict C = g->C + i0 * g->ldc + p0 + h;
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        _mm256_maskstore_ps(C + i * g->ldc, m0, c0[i]);
        _mm256_maskstore_ps(C + i * g->ldc + 8, m1, c1[i]);
    }
}
#undef MK256_K

static T256 void gemm256(int64_t M, int64_t N, const pk_args *g) {
    const int64_t nb = (M + MR256 - 1) / MR256;
    for (int64_t p0 = 0; p0 < N; p0 += PANEL) {
        const int64_t np = N - p0 < PANEL ? N - p0 : PANEL;
        for (int64_t h = 0; h < np; h += 16) {
            const int64_t nh = np - h < 16 ? np - h : 16;
            for (int64_t blk = 0; blk < nb; blk++) {
                const int64_t i0 = M * blk / nb, mr = M * (blk + 1) / nb - i0;
                switch (mr) {
#define CASE(n) \
    case n: mk256(n, g, i0, p0, np, h, nh); break;
                    CASE(1) CASE(2) CASE(3) CASE(4) CASE(5) CASE(6)
#undef CASE
                }
            }
        }
    }
}

/* y (N) = W (N rows, ldw) · x (K) [+ y with acc]: the single-row product (B = 1) on the
 * unpacked rows, four rows at a time, each a 16- (8-) lane dot product
 * reduced at the end. Packing would cost a copy of the weights per call,
 * which is the whole step when streaming one step per call. */
INLINE T512 float hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }

static T512 void rowdot512(int64_t N, int64_t K, const float *W, int64_t ldw, const float *x,
                           float *y, int acc) {
    const int64_t kt = K & ~(int64_t)15;
    const __mmask16 mt = (__mmask16)((1u << (K - kt)) - 1);
    int64_t n = 0;
    for (; n + 4 <= N; n += 4) {
        const float *w0 = W + n * ldw, *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int64_t k = 0; k < kt; k += 16) {
            const __m512 v = _mm512_loadu_ps(x + k);
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + k), v, a0);
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(w1 + k), v, a1);
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(w2 + k), v, a2);
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(w3 + k), v, a3);
        }
        if (mt) {
            const __m512 v = _mm512_maskz_loadu_ps(mt, x + kt);
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mt, w0 + kt), v, a0);
            a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mt, w1 + kt), v, a1);
            a2 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mt, w2 + kt), v, a2);
            a3 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mt, w3 + kt), v, a3);
        }
        y[n] = hsum512(a0) + (acc ? y[n] : 0);
        y[n + 1] = hsum512(a1) + (acc ? y[n + 1] : 0);
        y[n + 2] = hsum512(a2) + (acc ? y[n + 2] : 0);
        y[n + 3] = hsum512(a3) + (acc ? y[n + 3] : 0);
    }
    for (; n < N; n++) {
        const float *w0 = W + n * ldw;
        __m512 a0 = _mm512_setzero_ps();
        for (int64_t k = 0; k < kt; k += 16)
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(w0 + k), _mm512_loadu_ps(x + k), a0);
        if (mt)
            a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(mt, w0 + kt),
                                 _mm512_maskz_loadu_ps(mt, x + kt), a0);
        y[n] = hsum512(a0) + (acc ? y[n] : 0);
    }
}

INLINE T256 float hsum256(__m256 v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

static T256 void rowdot256(int64_t N, int64_t K, const float *W, int64_t ldw, const float *x,
                           float *y, int acc) {
    const int64_t kt = K & ~(int64_t)7;
    const __m256i mt = mask256(K - kt);
    for (int64_t n = 0; n < N; n++) {
        const float *w0 = W + n * ldw;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0;
        int64_t k = 0;
        for (; k + 16 <= kt; k += 16) {
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + k), _mm256_loadu_ps(x + k), a0);
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + k + 8), _mm256_loadu_ps(x + k + 8), a1);
        }
        if (k < kt) a0 = _mm256_fmadd_ps(_mm256_loadu_ps(w0 + k), _mm256_loadu_ps(x + k), a0);
        if (kt < K)
            a1 = _mm256_fmadd_ps(_mm256_maskload_ps(w0 + kt, mt), _mm256_maskload_ps(x + kt, mt),
                                 a1);
        y[n] = hsum256(_mm256_add_ps(a0, a1)) + (acc ? y[n] : 0);
    }
}
#endif /* PK_X86 */

int clstm_rowdot_f32(int64_t N, int64_t K, const float *W, int64_t ldw, const float *x,
                     float *y, int acc) {
    if (N <= 0) return 1;
    if (K <= 0) {
        if (!acc) memset(y, 0, sizeof(float) * N);
        return 1;
    }
    switch (active_isa()) {
#ifdef PK_X86
    case ISA_AVX512: rowdot512(N, K, W, ldw, x, y, acc); return 1;
    case ISA_AVX2: rowdot256(N, K, W, ldw, x, y, acc); return 1;
#endif
    default: return 0;
    }
}

int clstm_packed_gemm2_f32(int64_t M, int64_t N, const float *A, int64_t lda, int64_t K,
                           const float *A2, int64_t lda2, int64_t K2, const float *Wp,
                           const float *bias, float *C, int64_t ldc) {
    const int isa = active_isa();
    if (isa == ISA_NONE) return 0;
    if (M <= 0 || N <= 0) return 1;
    if (K < 0) K = 0;
    if (K2 < 0) K2 = 0;
    const pk_args g = {A, A2, Wp, bias, lda, K, lda2, K2, C, ldc};
    switch (isa) {
#ifdef PK_X86
    case ISA_AVX512: gemm512(M, N, &g); return 1;
    case ISA_AVX2: gemm256(M, N, &g); return 1;
#endif
    default: return 0;
    }
}

int clstm_packed_gemm_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                          const float *Wp, float *C, int64_t ldc) {
    return clstm_packed_gemm2_f32(M, N, A, lda, K, NULL, 0, 0, Wp, NULL, C, ldc);
}
