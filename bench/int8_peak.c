/* The int8 multiply-add ceiling of this machine, measured, beside
 * fma_peak.c's float32 one: the bound an int8 LSTM (issue 16) can approach.
 * Every thread runs 12 independent accumulator chains of
 *   avx512_vnni  vpdpbusd zmm: u8 x s8, 4 products into each of 16 int32 (64 MACs)
 *   avx2         vpmaddubsw + vpmaddwd + vpaddd ymm: u8 x s8 pairs to int16
 *                (saturating), pairs to int32, accumulate (32 MACs, 3 instructions)
 * at whatever clock the cores run. Prints JSON: for each kernel the CPU has,
 * the best of 5 runs in GMAC/s on 1 thread and on all threads (a MAC is 2
 * operations: compare 2 x GMAC/s with fma_peak's GFLOP/s). A benchmark
 * helper, not part of the library.
 *
 *   cc -O2 -fopenmp bench/int8_peak.c -o int8_peak && ./int8_peak [threads] */
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#define CHAINS 12

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static int vnni512(long n) {
    __m512i a[CHAINS];
    const __m512i u = _mm512_set1_epi8(3), s = _mm512_set1_epi8(-2);
    for (int i = 0; i < CHAINS; i++) a[i] = _mm512_set1_epi32(i);
    for (long k = 0; k < n; k++)
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++) a[i] = _mm512_dpbusd_epi32(a[i], u, s);
    for (int i = 1; i < CHAINS; i++) a[0] = _mm512_add_epi32(a[0], a[i]);
    return _mm512_reduce_add_epi32(a[0]);
}

__attribute__((target("avx2"))) static int maddubs256(long n) {
    __m256i a[CHAINS];
    const __m256i u = _mm256_set1_epi8(3), s = _mm256_set1_epi8(-2), one = _mm256_set1_epi16(1);
    for (int i = 0; i < CHAINS; i++) a[i] = _mm256_set1_epi32(i);
    for (long k = 0; k < n; k++)
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++)
            a[i] = _mm256_add_epi32(a[i], _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), one));
    int out[8], sum = 0;
    for (int i = 1; i < CHAINS; i++) a[0] = _mm256_add_epi32(a[0], a[i]);
    _mm256_storeu_si256((__m256i *)out, a[0]);
    for (int i = 0; i < 8; i++) sum += out[i];
    return sum;
}

/* best GMAC/s over 5 runs of n iterations on `threads` threads */
static double best_rate(int threads, int kind, long n) {
    const int macs = kind == 0 ? 64 : 32;
    double best = 0;
    for (int r = 0; r < 5; r++) {
        int sink = 0;
        double t = now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += kind == 0 ? vnni512(n) : maddubs256(n);
        t = now() - t;
        const double rate = (double)threads * n * CHAINS * macs / t / 1e9;
        if (rate > best) best = rate;
        if (sink == 12345) fputs("", stderr); /* keep the result live */
    }
    return best;
}

int main(int argc, char **argv) {
    __builtin_cpu_init();
    const int threads = argc > 1 ? atoi(argv[1]) : omp_get_max_threads();
    const int has[2] = {__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw"),
                        __builtin_cpu_supports("avx2")};
    static const char *const names[2] = {"avx512_vnni", "avx2_maddubs"};
    if (threads < 1 || !has[1]) {
        printf("{\"error\": \"needs AVX2 and threads >= 1\"}\n");
        return 1;
    }
    const long n = 10000000; /* about 0.05-0.1 s a run on one core */
    printf("{\"threads\": %d", threads);
    for (int k = 0; k < 2; k++)
        if (has[k])
            printf(", \"%s\": {\"gmacs_1\": %.1f, \"gmacs_all\": %.1f}", names[k],
                   best_rate(1, k, n), best_rate(threads, k, n));
    printf("}\n");
    return 0;
}
