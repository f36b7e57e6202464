/* Private to packed*.c: the operands of a packed product and the type of
 * an entry of packed.c's kernel table, one per instruction set (layout and
 * accumulation order: packed.c). */
#ifndef CLSTM_PACKED_H
#define CLSTM_PACKED_H

#include "internal.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(CLSTM_NO_SIMD)
#define PK_X86 1
#endif

#define PANEL CLSTM_PACK_PANEL
#define INLINE static inline __attribute__((always_inline))

/* The operands of one product: C (M, N) = [bias] + A (M, K) · W1 +
 * A2 (M, K2) · W2, the weights packed together. */
typedef struct {
    const float *A, *A2, *Wp, *bias; /* A2 unused when K2 = 0; bias NULL: none */
    int64_t lda, K, lda2, K2;
    float *C;
    int64_t ldc;
} pk_args;

/* One instruction set's kernels. */
typedef struct {
    int (*cpu_has)(void); /* 1 if this CPU (and OS) runs them */
    /* the product of g, M, N >= 1 and K, K2 >= 0 */
    void (*gemm)(int64_t M, int64_t N, const pk_args *g);
    /* clstm_rowdot_f32's y (N) = W · x [+ y], N, K >= 1 */
    void (*rowdot)(int64_t N, int64_t K, const float *W, int64_t ldw, const float *x, float *y,
                   int acc);
} pk_kernels;

#ifdef PK_X86
extern const pk_kernels clstm_packed_avx2;   /* packed_avx2.c */
extern const pk_kernels clstm_packed_avx512; /* packed_avx512.c */
#endif

#endif
