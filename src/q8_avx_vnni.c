/* The AVX-VNNI kernel of the int8 product (q8.h): 256-bit VEX vpdpbusd
 * (Intel from Alder Lake and Sapphire Rapids, AMD from Zen 5) on the AVX2
 * kernel's body, block and vector operations (q8_kernel.inc, q8_ymm.h):
 * the AVX2 kernel's tests run all of it but the multiply-add, and the
 * AVX-512 kernel's run the same multiply-add (+128, less 128 * colsum) at
 * 512 bits. */
#include "q8.h"

#ifdef Q8_X86
#include <cpuid.h>
#define TARGET __attribute__((target("avxvnni,avx2")))
#include "q8_ymm.h"

INLINE TARGET vi q8_prep(vi a) { return _mm256_xor_si256(a, _mm256_set1_epi8((char)0x80)); }
/* inline asm for the reason given in q8_avx512.c; {vex}: never the EVEX
 * form, which CPUs with AVX-VNNI and no AVX-512 lack */
INLINE TARGET vi q8_mac(vi acc, vi a, vi ap, vi w) {
    __asm__("%{vex%} vpdpbusd %2, %1, %0" : "+x"(acc) : "x"(ap), "xm"(w));
    return acc;
}
INLINE TARGET vi q8_offset(const int32_t *cs, int n) {
    return _mm256_slli_epi32(q8_loadi(cs, n), 7);
}

#include "q8_kernel.inc"

/* CPUID.(EAX=7, ECX=1):EAX bit 4, read directly: clang 14's
 * __builtin_cpu_supports knows no "avxvnni" (the fuzzer's build); the OS's
 * saving of the ymm registers comes with avx2's check */
static int cpu_has_avx_vnni(void) {
    unsigned a, b, c, d;
    return __builtin_cpu_supports("avx2") && __get_cpuid_count(7, 1, &a, &b, &c, &d) &&
           (a >> 4 & 1);
}

const q8_kernels clstm_q8_avx_vnni = {"avx-vnni", cpu_has_avx_vnni, q8_gemm};
#endif /* Q8_X86 */
