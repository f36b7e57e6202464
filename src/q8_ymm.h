/* Private to q8_avx2.c and q8_avx_vnni.c: what their kernels share, under
 * the TARGET each defines first: the register block and the 256-bit
 * vector operations of q8_kernel.inc, all but the multiply-add (q8_prep,
 * q8_mac, q8_offset). Blocks of 2 rows x 2 panels: 8 of the 16 ymm
 * registers accumulate, 4 hold weights. */
#ifndef CLSTM_Q8_YMM_H
#define CLSTM_Q8_YMM_H

#include <immintrin.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))
#define VL 8
#define MR_MAX 2
#define NR_MAX 2
typedef __m256i vi;
typedef __m256 vf;

/* lanes [0, n) on */
INLINE TARGET __m256i q8_mask(int n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
INLINE TARGET vi q8_zero(void) { return _mm256_setzero_si256(); }
INLINE TARGET vi q8_sub(vi a, vi b) { return _mm256_sub_epi32(a, b); }
INLINE TARGET vi q8_load_w(const int8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
INLINE TARGET vi q8_bcast(const int8_t *p) {
    int32_t q;
    memcpy(&q, p, 4);
    return _mm256_set1_epi32(q);
}
/* vmaskmov is slow on AMD: whole vectors take plain loads and stores */
INLINE TARGET vi q8_loadi(const int32_t *p, int n) {
    return n == VL ? _mm256_loadu_si256((const __m256i *)p) : _mm256_maskload_epi32(p, q8_mask(n));
}
INLINE TARGET vf q8_loadf(const float *p, int n) {
    return n == VL ? _mm256_loadu_ps(p) : _mm256_maskload_ps(p, q8_mask(n));
}
INLINE TARGET void q8_storef(float *p, int n, vf v) {
    if (n == VL)
        _mm256_storeu_ps(p, v);
    else
        _mm256_maskstore_ps(p, q8_mask(n), v);
}
INLINE TARGET vf q8_cvt(vi v) { return _mm256_cvtepi32_ps(v); }
INLINE TARGET vf q8_mul(vf a, vf b) { return _mm256_mul_ps(a, b); }
INLINE TARGET vf q8_setf(float x) { return _mm256_set1_ps(x); }

#endif
