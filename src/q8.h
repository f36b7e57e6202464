/* The int8 products of quantized models (q8.c, and one file per
 * instruction set: q8_avx512.c, q8_avx2.c), chosen once at run time.
 *
 * Operands.
 * - Weights W (N, K) int8 in [-127, 127], one float32 scale per row
 *   (output column n): w = W[n, k] * sw[n]. Packed once, when the model is
 *   made, into panels of Q8_PANEL columns: K is padded with zeros to
 *   Kp = round_up(K, 4); panel p (columns [16p, 16p + 16)) is at
 *   Wp + p * 16 * Kp and holds Kp / 4 blocks of 64 bytes, block kq being
 *   column c's four bytes W[16p + c, 4kq .. 4kq + 3] at byte 4c (the VNNI
 *   and AMX tile layout). Columns past N are zero. colsum[n] is
 *   sum_k W[n, k] (the VNNI kernels' correction for their unsigned
 *   operand: they add 128 to the activations and subtract 128 * colsum).
 * - Activations A (M, K) int8 in [-127, 127], one float32 scale per row,
 *   rows lda >= Kp bytes apart (lda a multiple of 4) with zeros in
 *   [K, Kp): clstm_q8_quantize_rows writes them.
 *
 * The product: C[m, n] = (float)acc * (sa[m] * sw[n]), acc the exact int32
 * sum_k A[m, k] * W[n, k] (|acc| <= 255 * 127 * K < 2^31 for K <=
 * CLSTM_Q8_MAX_K). Every path computes the same acc and then the same two
 * float32 multiplications, so every path gives the same bits. */
#ifndef CLSTM_Q8_H
#define CLSTM_Q8_H

#include "internal.h"

#define Q8_PANEL 16
/* The longest product a quantized model may have (int32 stays exact). */
#define CLSTM_Q8_MAX_K 65536

static inline int64_t clstm_q8_kp(int64_t K) { return (K + 3) & ~(int64_t)3; }
/* Bytes of the packed form of an (N, K) weight. */
static inline size_t clstm_q8_packed_bytes(int64_t N, int64_t K) {
    return (size_t)((N + Q8_PANEL - 1) / Q8_PANEL) * Q8_PANEL * (size_t)clstm_q8_kp(K);
}

/* Pack W (N rows of K, leading dimension ldw) and its column sums. */
void clstm_q8_pack(int8_t *Wp, int32_t *colsum, const int8_t *W, int64_t ldw, int64_t N,
                   int64_t K);

/* Quantize M rows of X (K floats, leading dimension ldx) into A (lda
 * bytes apart) and sa: per row s = max|x| / 127, q = rint(x * (127 /
 * max|x|)); a row of zeros gets s = 0, a row with NaN or Inf s = NaN (so
 * its products are NaN, as in float32) and q = 0. */
void clstm_q8_quantize_rows(int64_t M, int64_t K, const float *X, int64_t ldx, int8_t *A,
                            int64_t lda, float *sa);

/* C[m*ldc + n] = (float)acc(m, n) * (sa[m] * sw[n]) for m < M, n < N, with
 * Wp, colsum and sw pointing at the first of the N columns (a panel's
 * start). M, N >= 0, 0 <= K <= CLSTM_Q8_MAX_K. */
void clstm_q8_gemm(int64_t M, int64_t N, int64_t K, const int8_t *A, int64_t lda,
                   const float *sa, const int8_t *Wp, const int32_t *colsum, const float *sw,
                   float *C, int64_t ldc);

/* The instruction sets, best last. For tests: use none above isa; returns
 * the one now in use. Not thread-safe against running products. */
enum { Q8_PORTABLE = 0, Q8_AVX2 = 1, Q8_AVX_VNNI = 2, Q8_AVX512_VNNI = 3, Q8_ISA_COUNT };
int clstm_q8_limit_isa(int isa);
/* The name of the instruction set in use ("portable", "avx2", ...). */
const char *clstm_q8_isa_name(void);

/* Private to q8*.c: one instruction set's product (the same contract as
 * clstm_q8_gemm, M, N >= 1). */
typedef struct {
    const char *name;
    int (*cpu_has)(void);
    void (*gemm)(int64_t M, int64_t N, int64_t K, const int8_t *A, int64_t lda, const float *sa,
                 const int8_t *Wp, const int32_t *colsum, const float *sw, float *C,
                 int64_t ldc);
} q8_kernels;

/* The x86 kernels' table entries (q8_avx2.c, q8_avx_vnni.c, q8_avx512.c). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(CLSTM_NO_SIMD)
#define Q8_X86 1
extern const q8_kernels clstm_q8_avx2, clstm_q8_avx_vnni, clstm_q8_avx512_vnni;
#endif

#endif
