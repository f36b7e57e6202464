/* The AVX-512 VNNI kernel of the int8 product (q8.h; the body is
 * q8_kernel.inc). vpdpbusd multiplies unsigned by signed bytes, so each
 * broadcast activation quad gets 128 added (XOR 0x80) and 128 * colsum[n]
 * comes off the sums at the end; both stay exact in int32 for K <=
 * CLSTM_Q8_MAX_K (q8.h). Blocks of 6 rows x 4 panels: 24 of the 32 zmm
 * registers accumulate, 4 hold weights. */
#include <string.h>
#include "q8.h"

#ifdef Q8_X86
#include <immintrin.h>

#define TARGET __attribute__((target("avx512f,avx512bw,avx512vnni")))
#define INLINE static inline __attribute__((always_inline))
#define VL 16
#define MR_MAX 6
#define NR_MAX 4
typedef __m512i vi;
typedef __m512 vf;

INLINE TARGET __mmask16 q8_mask(int n) { return (__mmask16)((1u << n) - 1); }
INLINE TARGET vi q8_zero(void) { return _mm512_setzero_si512(); }
INLINE TARGET vi q8_sub(vi a, vi b) { return _mm512_sub_epi32(a, b); }
INLINE TARGET vi q8_load_w(const int8_t *p) { return _mm512_loadu_si512(p); }
INLINE TARGET vi q8_bcast(const int8_t *p) {
    int32_t q;
    memcpy(&q, p, 4);
    return _mm512_set1_epi32(q);
}
INLINE TARGET vi q8_prep(vi a) { return _mm512_xor_si512(a, _mm512_set1_epi8((char)0x80)); }
/* vpdpbusd as inline asm: around each _mm512_dpbusd_epi32 GCC 12 copies
 * the accumulator to a scratch register and back, and spills at 24
 * accumulators, which halves the kernel's speed (bench/q8_gemm.c: 114
 * against 222 GMAC/s at 32 x 2048 x 512 on Zen 4). */
INLINE TARGET vi q8_mac(vi acc, vi a, vi ap, vi w) {
    __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(ap), "vm"(w));
    return acc;
}
INLINE TARGET vi q8_offset(const int32_t *cs, int n) {
    return _mm512_slli_epi32(_mm512_maskz_loadu_epi32(q8_mask(n), cs), 7);
}
INLINE TARGET vf q8_loadf(const float *p, int n) { return _mm512_maskz_loadu_ps(q8_mask(n), p); }
INLINE TARGET void q8_storef(float *p, int n, vf v) { _mm512_mask_storeu_ps(p, q8_mask(n), v); }
INLINE TARGET vf q8_cvt(vi v) { return _mm512_cvtepi32_ps(v); }
INLINE TARGET vf q8_mul(vf a, vf b) { return _mm512_mul_ps(a, b); }
INLINE TARGET vf q8_setf(float x) { return _mm512_set1_ps(x); }

#include "q8_kernel.inc"

static int cpu_has_avx512_vnni(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}

const q8_kernels clstm_q8_avx512_vnni = {"avx512-vnni", cpu_has_avx512_vnni, q8_gemm};
#endif /* Q8_X86 */
