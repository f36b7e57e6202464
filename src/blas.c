/* The BLAS shim: CBLAS gemm when built with -DCLSTM_USE_CBLAS, and a naive
 * loop that is always compiled in (BLAS=none builds, and the tests' oracle).
 *
 * Symbol names follow numpy's convention: with -DBLAS_SYMBOL_PREFIX=scipy_
 * -DBLAS_SYMBOL_SUFFIX=64_ -DHAVE_BLAS_ILP64, cblas_sgemm becomes
 * scipy_cblas_sgemm64_ taking 64-bit integers (scipy-openblas64). Without
 * them, plain LP64 names (Debian's libopenblas). We declare the few functions
 * we use ourselves so that no particular cblas.h is needed. */
#include "internal.h"

#ifdef CLSTM_USE_CBLAS
#ifndef BLAS_SYMBOL_PREFIX
#define BLAS_SYMBOL_PREFIX
#endif
#ifndef BLAS_SYMBOL_SUFFIX
#define BLAS_SYMBOL_SUFFIX
#endif
#define BLAS_CAT2_(a, b, c) a##b##c
#define BLAS_CAT_(a, b, c) BLAS_CAT2_(a, b, c)
#define BLAS_NAME(name) BLAS_CAT_(BLAS_SYMBOL_PREFIX, name, BLAS_SYMBOL_SUFFIX)

#ifdef HAVE_BLAS_ILP64
typedef int64_t blas_int;
#define BLAS_DIM_MAX INT64_MAX
#else
typedef int blas_int;
#define BLAS_DIM_MAX INT32_MAX
#endif

enum { CB_ROW_MAJOR = 101, CB_NO_TRANS = 111, CB_TRANS = 112 };

void BLAS_NAME(cblas_sgemm)(int order, int ta, int tb, blas_int M, blas_int N, blas_int K,
                            float alpha, const float *A, blas_int lda, const float *B,
                            blas_int ldb, float beta, float *C, blas_int ldc);
void BLAS_NAME(cblas_dgemm)(int order, int ta, int tb, blas_int M, blas_int N, blas_int K,
                            double alpha, const double *A, blas_int lda, const double *B,
                            blas_int ldb, double beta, double *C, blas_int ldc);
void BLAS_NAME(cblas_sgemv)(int order, int trans, blas_int M, blas_int N, float alpha,
                            const float *A, blas_int lda, const float *x, blas_int incx,
                            float beta, float *y, blas_int incy);
void BLAS_NAME(cblas_dgemv)(int order, int trans, blas_int M, blas_int N, double alpha,
                            const double *A, blas_int lda, const double *x, blas_int incx,
                            double beta, double *y, blas_int incy);
#ifdef CLSTM_OPENBLAS
void BLAS_NAME(openblas_set_num_threads)(int n);
int BLAS_NAME(openblas_get_num_threads)(void);
#endif
#endif /* CLSTM_USE_CBLAS */

int clstm_has_blas(void) {
#ifdef CLSTM_USE_CBLAS
    return 1;
#else
    return 0;
#endif
}

int64_t clstm_blas_dim_max(void) {
#ifdef CLSTM_USE_CBLAS
    return BLAS_DIM_MAX;
#else
    return INT64_MAX;
#endif
}

void clstm_blas_single_thread(void) {
#if defined(CLSTM_USE_CBLAS) && defined(CLSTM_OPENBLAS)
    if (BLAS_NAME(openblas_get_num_threads)() != 1) BLAS_NAME(openblas_set_num_threads)(1);
#endif
}

/* Naive gemm, one definition per element type. Accumulates in the element
 * type, row by row; never reads C when beta == 0. */
#define DEFINE_NAIVE_GEMM(NAME, real)                                                   \
    static void NAME(int ta, int tb, int64_t M, int64_t N, int64_t K, real alpha,        \
                     const real *A, int64_t lda, const real *B, int64_t ldb, real beta,  \
                     real *C, int64_t ldc) {                                             \
        for (int64_t i = 0; i < M; i++) {                                                \
            for (int64_t j = 0; j < N; j++) {                                            \
                real s = 0;                                                              \
                for (int64_t k = 0; k < K; k++) {                                        \
                    real a = ta ? A[k * lda + i] : A[i * lda + k];                       \
                    real b = tb ? B[j * ldb + k] : B[k * ldb + j];                       \
                    s += a * b;                                                          \
                }                                                                        \
                real *c = &C[i * ldc + j];                                               \
                *c = beta == 0 ? alpha * s : alpha * s + beta * *c;                      \
            }                                                                            \
        }                                                                                \
    }
DEFINE_NAIVE_GEMM(naive_sgemm, float)
DEFINE_NAIVE_GEMM(naive_dgemm, double)

/* The public-to-the-library entry: skip empty products, then CBLAS or naive.
 * A single-row product (M = 1: streaming at B = 1, a thread's one batch row)
 * goes to gemv, which OpenBLAS runs several times faster than a 1-row gemm:
 * C (1, N) = alpha A (1, K) op(B) + beta C is y = alpha op(B)^T x + beta y. */
#ifdef CLSTM_USE_CBLAS
#define TRY_CBLAS(CBLAS, CBLASV)                                                          \
    if (use_blas && K > 0 && M == 1) {                                                    \
        if (beta == 0) /* never read C, even where it holds NaN */                        \
            for (int64_t j = 0; j < N; j++) C[j] = 0;                                     \
        BLAS_NAME(CBLASV)(CB_ROW_MAJOR, tb ? CB_NO_TRANS : CB_TRANS,                      \
                          (blas_int)(tb ? N : K), (blas_int)(tb ? K : N), alpha, B,       \
                          (blas_int)ldb, A, (blas_int)(ta ? lda : 1), beta, C, 1);        \
        return;                                                                           \
    }                                                                                     \
    if (use_blas && K > 0) {                                                              \
        BLAS_NAME(CBLAS)(CB_ROW_MAJOR, ta ? CB_TRANS : CB_NO_TRANS,                       \
                         tb ? CB_TRANS : CB_NO_TRANS, (blas_int)M, (blas_int)N,           \
                         (blas_int)K, alpha, A, (blas_int)lda, B, (blas_int)ldb, beta, C, \
                         (blas_int)ldc);                                                  \
        return;                                                                           \
    }
#else
#define TRY_CBLAS(CBLAS, CBLASV)
#endif
#define DEFINE_GEMM(NAME, NAIVE, CBLAS, CBLASV, real)                                   \
    void NAME(int use_blas, int ta, int tb, int64_t M, int64_t N, int64_t K, real alpha, \
              const real *A, int64_t lda, const real *B, int64_t ldb, real beta, real *C,  \
              int64_t ldc) {                                                             \
        if (M <= 0 || N <= 0) return;                                                    \
        TRY_CBLAS(CBLAS, CBLASV)                                                         \
        NAIVE(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);                     \
    }
DEFINE_GEMM(clstm_sgemm, naive_sgemm, cblas_sgemm, cblas_sgemv, float)
DEFINE_GEMM(clstm_dgemm, naive_dgemm, cblas_dgemm, cblas_dgemv, double)
