/* AVX2 kernels of the packed product (packed.c): micro-kernels of up to
 * 6 rows x 16 columns (12 of the 16 ymm registers accumulate), and the
 * single-row product. */
#include "packed.h"

#ifdef PK_X86
#include <immintrin.h>

#define TARGET __attribute__((target("avx2,fma")))
#define VL 8
#define MR_MAX 6
typedef __m256 vec;
typedef __m256i vmask;

INLINE TARGET vmask pk_mask(int64_t n) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n), idx);
}
INLINE TARGET vec pk_load(const float *p, vmask m) { return _mm256_maskload_ps(p, m); }
INLINE TARGET void pk_store(float *p, vmask m, vec v) { _mm256_maskstore_ps(p, m, v); }
INLINE TARGET vec pk_bcast(const float *p) { return _mm256_broadcast_ss(p); }
INLINE TARGET vec pk_fma(vec a, vec b, vec c) { return _mm256_fmadd_ps(a, b, c); }
INLINE TARGET vec pk_zero(void) { return _mm256_setzero_ps(); }

#include "packed_kernel.inc"

/* As rowdot512 (packed_avx512.c), one row at a time in two 8-lane
 * accumulators. */
INLINE TARGET float hsum256(__m256 v) {
    const __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(t, _mm_movehdup_ps(t)));
}

static TARGET void rowdot256(int64_t N, int64_t K, const float *W, int64_t ldw, const float *x,
                             float *y, int acc) {
    const int64_t kt = K & ~(int64_t)7;
    const __m256i mt = pk_mask(K - kt);
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

static int cpu_has_avx2(void) {
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

const pk_kernels clstm_packed_avx2 = {cpu_has_avx2, pk_gemm, rowdot256};
#endif /* PK_X86 */
