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
 * the whole is exactly N*K floats. Tails (np < 32, rows not a multiple of
 * the block) use masked loads and stores, which never touch memory past the
 * panel or the row.
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

#define PANEL 32

/* Pack N columns: column n is row rowof(n) of W (row-major, leading
 * dimension ldw), with rowof(n) = (n / group) * gstride + n % group. */
void clstm_pack_rows_f32(float *restrict dst, const float *restrict W, int64_t ldw, int64_t N,
                         int64_t K, int64_t group, int64_t gstride) {
    for (int64_t p0 = 0; p0 < N; p0 += PANEL) {
        const int64_t np = N - p0 < PANEL ? N - p0 : PANEL;
        float *d = dst + p0 * K;
        const float *src[PANEL];
        for (int64_t c = 0; c < np; c++) {
            const int64_t n = p0 + c;
            src[c] = W + ((n / group) * gstride + n % group) * ldw;
        }
        /* k outer: the writes are sequential, the np reads streams */
        for (int64_t k = 0; k < K; k++)
            for (int64_t c = 0; c < np; c++) d[k * np + c] = src[c][k];
    }
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

/* Rows [0, MR) of A times one panel (np columns, 16 < np <= 32 or not):
 * two zmm accumulators per row; MR <= 12 keeps 24 of the 32 registers for
 * them. Called with a constant MR, so the row loops unroll. */
#define MR512 12
INLINE T512 void mk512(const int MR, int64_t K, const float *restrict A, int64_t lda,
                       const float *restrict b, int64_t np, float *restrict C, int64_t ldc) {
    const __mmask16 m0 = np >= 16 ? 0xFFFF : (__mmask16)((1u << np) - 1);
    const __mmask16 m1 = np >= 32 ? 0xFFFF : np > 16 ? (__mmask16)((1u << (np - 16)) - 1) : 0;
    __m512 c0[MR512], c1[MR512];
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) c0[i] = c1[i] = _mm512_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, b + k * np);
        const __m512 b1 = _mm512_maskz_loadu_ps(m1, b + k * np + 16);
#pragma GCC unroll 12
        for (int i = 0; i < MR; i++) {
            const __m512 a = _mm512_set1_ps(A[i * lda + k]);
            c0[i] = _mm512_fmadd_ps(a, b0, c0[i]);
            c1[i] = _mm512_fmadd_ps(a, b1, c1[i]);
        }
    }
#pragma GCC unroll 12
    for (int i = 0; i < MR; i++) {
        _mm512_mask_storeu_ps(C + i * ldc, m0, c0[i]);
        _mm512_mask_storeu_ps(C + i * ldc + 16, m1, c1[i]);
    }
}

static T512 void gemm512(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                         const float *Wp, float *C, int64_t ldc) {
    const int64_t nb = (M + MR512 - 1) / MR512; /* row blocks of near-equal size */
    for (int64_t p0 = 0; p0 < N; p0 += PANEL) {
        const int64_t np = N - p0 < PANEL ? N - p0 : PANEL;
        const float *b = Wp + p0 * K;
        for (int64_t blk = 0; blk < nb; blk++) {
            const int64_t i0 = M * blk / nb, mr = M * (blk + 1) / nb - i0;
            const float *a = A + i0 * lda;
            float *c = C + i0 * ldc + p0;
            switch (mr) {
#define CASE(n) \
    case n: mk512(n, K, a, lda, b, np, c, ldc); break;
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

INLINE T256 void mk256(const int MR, int64_t K, const float *restrict A, int64_t lda,
                       const float *restrict b, int64_t ldb, int64_t nh, float *restrict C,
                       int64_t ldc) {
    const __m256i m0 = mask256(nh >= 8 ? 8 : nh), m1 = mask256(nh >= 16 ? 8 : nh > 8 ? nh - 8 : 0);
    __m256 c0[MR256], c1[MR256];
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) c0[i] = c1[i] = _mm256_setzero_ps();
    for (int64_t k = 0; k < K; k++) {
        const __m256 b0 = _mm256_maskload_ps(b + k * ldb, m0);
        const __m256 b1 = _mm256_maskload_ps(b + k * ldb + 8, m1);
#pragma GCC unroll 6
        for (int i = 0; i < MR; i++) {
            const __m256 a = _mm256_broadcast_ss(A + i * lda + k);
            c0[i] = _mm256_fmadd_ps(a, b0, c0[i]);
            c1[i] = _mm256_fmadd_ps(a, b1, c1[i]);
        }
    }
#pragma GCC unroll 6
    for (int i = 0; i < MR; i++) {
        _mm256_maskstore_ps(C + i * ldc, m0, c0[i]);
        _mm256_maskstore_ps(C + i * ldc + 8, m1, c1[i]);
    }
}

static T256 void gemm256(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                         const float *Wp, float *C, int64_t ldc) {
    const int64_t nb = (M + MR256 - 1) / MR256;
    for (int64_t p0 = 0; p0 < N; p0 += PANEL) {
        const int64_t np = N - p0 < PANEL ? N - p0 : PANEL;
        for (int64_t h = 0; h < np; h += 16) {
            const int64_t nh = np - h < 16 ? np - h : 16;
            const float *b = Wp + p0 * K + h;
            for (int64_t blk = 0; blk < nb; blk++) {
                const int64_t i0 = M * blk / nb, mr = M * (blk + 1) / nb - i0;
                const float *a = A + i0 * lda;
                float *c = C + i0 * ldc + p0 + h;
                switch (mr) {
#define CASE(n) \
    case n: mk256(n, K, a, lda, b, np, nh, c, ldc); break;
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

int clstm_packed_gemm_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                          const float *Wp, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return 1;
    if (K <= 0) { /* an empty sum */
        for (int64_t i = 0; i < M; i++) memset(C + i * ldc, 0, sizeof(float) * N);
        return 1;
    }
    switch (active_isa()) {
#ifdef PK_X86
    case ISA_AVX512: gemm512(M, N, K, A, lda, Wp, C, ldc); return 1;
    case ISA_AVX2: gemm256(M, N, K, A, lda, Wp, C, ldc); return 1;
#endif
    default: return 0;
    }
}
