/* The AVX2 kernel of the int8 product (q8.h; the body is q8_kernel.inc,
 * the vector operations q8_ymm.h, both shared with q8_avx_vnni.c).
 * vpmaddubsw multiplies unsigned by signed bytes and saturates its int16
 * pair sums, so it takes |a| and w with a's sign: |a| <= 127 keeps a pair
 * within 2 * 127 * 127 = 32258, never saturating (a + 128 would reach
 * 64770); vpmaddwd by ones widens the pairs to int32. Exact, with nothing
 * to correct. */
#include "q8.h"

#ifdef Q8_X86
#define TARGET __attribute__((target("avx2")))
#include "q8_ymm.h"

INLINE TARGET vi q8_prep(vi a) { return _mm256_abs_epi8(a); }
INLINE TARGET vi q8_mac(vi acc, vi a, vi ap, vi w) {
    const __m256i pairs = _mm256_maddubs_epi16(ap, _mm256_sign_epi8(w, a));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, _mm256_set1_epi16(1)));
}
INLINE TARGET vi q8_offset(const int32_t *cs, int n) { return _mm256_setzero_si256(); }

#include "q8_kernel.inc"

static int cpu_has_avx2(void) { return __builtin_cpu_supports("avx2"); }

const q8_kernels clstm_q8_avx2 = {"avx2", cpu_has_avx2, q8_gemm};
#endif /* Q8_X86 */
