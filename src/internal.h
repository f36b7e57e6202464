/* Internal declarations shared by the library's translation units. */
#ifndef CLSTM_INTERNAL_H
#define CLSTM_INTERNAL_H

#include <stdint.h>
#include <stddef.h>
#include "clstm.h"

struct clstm_model {
    clstm_config cfg;   /* struct_size is always sizeof(clstm_config) */
    int use_blas;       /* resolved backend */
    uint64_t id;        /* unique per model in this process: ties a workspace to it */
    size_t n_params;    /* elements in each block */
    size_t elem;        /* bytes per element */
    void *params;       /* owned, 64-byte aligned */
    void *grads;        /* owned, 64-byte aligned */
};

/* A "unit" is one direction of one layer: index u = k*N + d. Its tensors
 * (weight_ih, weight_hh, bias_ih, bias_hh[, weight_hr]) are contiguous. */
int64_t clstm_dirs(const clstm_config *c);          /* N: 1 or 2 */
int64_t clstm_rsize(const clstm_config *c);         /* R: P if P > 0 else H */
int64_t clstm_unit_input(const clstm_config *c, int64_t k); /* D_k */
size_t clstm_unit_elems(const clstm_config *c, int64_t k);
size_t clstm_unit_offset(const clstm_config *c, int64_t k, int64_t d);
/* Elements in each block for config c (sizes checked: SIZE, OVERFLOW). */
clstm_status clstm_param_count(const clstm_config *c, size_t *n);

/* Checked size arithmetic: return 0 on success, 1 on overflow. */
static inline int clstm_mul(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out);
}
static inline int clstm_add(size_t a, size_t b, size_t *out) {
    return __builtin_add_overflow(a, b, out);
}

/* Row-major gemm: C = alpha * op(A) op(B) + beta * C, op(A) M x K, op(B) K x N.
 * transX != 0 means op(X) = X^T. beta == 0 never reads C. use_blas selects
 * CBLAS (when compiled in) or the naive loops. Sizes are checked by callers to
 * fit the BLAS integer type. */
void clstm_sgemm(int use_blas, int ta, int tb, int64_t M, int64_t N, int64_t K,
                 float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                 float beta, float *C, int64_t ldc);
void clstm_dgemm(int use_blas, int ta, int tb, int64_t M, int64_t N, int64_t K,
                 double alpha, const double *A, int64_t lda, const double *B, int64_t ldb,
                 double beta, double *C, int64_t ldc);

/* Largest dimension the linked BLAS accepts (INT32_MAX for LP64 builds). */
int64_t clstm_blas_dim_max(void);
/* Make BLAS run single-threaded, so that our OpenMP team owns the cores. */
void clstm_blas_single_thread(void);

/* Threads in the OpenMP team for a problem with batch B, hidden H. */
int clstm_team_size(int64_t B, int64_t H);

#endif
