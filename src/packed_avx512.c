/* AVX-512 kernels of the packed product (packed.c): micro-kernels of up to
 * 12 rows x 32 columns (24 of the 32 zmm registers accumulate), and the
 * single-row product. */
#include "packed.h"

#ifdef PK_X86
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,fma")))
#define VL 16
#define MR_MAX 12
typedef __m512 vec;
typedef __mmask16 vmask;

INLINE TARGET vmask pk_mask(int64_t n) { return (vmask)((1u << n) - 1); }
INLINE TARGET vec pk_load(const float *p, vmask m) { return _mm512_maskz_loadu_ps(m, p); }
INLINE TARGET void pk_store(float *p, vmask m, vec v) { _mm512_mask_storeu_ps(p, m, v); }
INLINE TARGET vec pk_bcast(const float *p) { return _mm512_set1_ps(*p); }
INLINE TARGET vec pk_fma(vec a, vec b, vec c) { return _mm512_fmadd_ps(a, b, c); }
INLINE TARGET vec pk_zero(void) { return _mm512_setzero_ps(); }

#include "packed_kernel.inc"

/* y (N) = W (N rows, ldw) · x (K) [+ y with acc]: the single-row product
 * (B = 1) on the unpacked rows, four rows at a time, each a 16-lane dot
 * product reduced at the end. Packing would cost a copy of the weights per
 * call, which is the whole step when streaming one step per call. */
INLINE TARGET float hsum512(__m512 v) { return _mm512_reduce_add_ps(v); }

static TARGET void rowdot512(int64_t N, int64_t K, const float *W, int64_t ldw, const float *x,
                             float *y, int acc) {
    const int64_t kt = K & ~(int64_t)15;
    const __mmask16 mt = pk_mask(K - kt);
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

static int cpu_has_avx512(void) { return __builtin_cpu_supports("avx512f"); }

const pk_kernels clstm_packed_avx512 = {cpu_has_avx512, pk_gemm, rowdot512};
#endif /* PK_X86 */
