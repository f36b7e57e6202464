/* The float32 FMA ceiling of this machine, measured: every thread runs 12
 * independent chains of 16-lane (or 8-lane) fused multiply-adds, enough to
 * cover the FMA latency on current x86 cores, at whatever clock the cores
 * actually run. Prints JSON: the best of 5 runs with 1 thread and with all
 * threads of the team. Built and run by bench_peers.py; a benchmark helper,
 * not part of the library.
 *
 *   cc -O2 -fopenmp bench/fma_peak.c -o fma_peak && ./fma_peak [threads] */
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

__attribute__((target("avx512f,fma"))) static float chains512(long n) {
    __m512 a[CHAINS];
    const __m512 m = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.001f);
    for (int i = 0; i < CHAINS; i++) a[i] = _mm512_set1_ps((float)i);
    for (long k = 0; k < n; k++)
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++) a[i] = _mm512_fmadd_ps(a[i], m, b);
    for (int i = 1; i < CHAINS; i++) a[0] = _mm512_add_ps(a[0], a[i]);
    return _mm512_reduce_add_ps(a[0]);
}

__attribute__((target("avx2,fma"))) static float chains256(long n) {
    __m256 a[CHAINS];
    const __m256 m = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(0.001f);
    for (int i = 0; i < CHAINS; i++) a[i] = _mm256_set1_ps((float)i);
    for (long k = 0; k < n; k++)
#pragma GCC unroll 12
        for (int i = 0; i < CHAINS; i++) a[i] = _mm256_fmadd_ps(a[i], m, b);
    float out[8], s = 0;
    for (int i = 1; i < CHAINS; i++) a[0] = _mm256_add_ps(a[0], a[i]);
    _mm256_storeu_ps(out, a[0]);
    for (int i = 0; i < 8; i++) s += out[i];
    return s;
}

/* best GFLOP/s over 5 runs of n iterations on `threads` threads */
static double best_rate(int threads, int lanes, long n) {
    double best = 0;
    for (int r = 0; r < 5; r++) {
        float sink = 0;
        double t = now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += lanes == 16 ? chains512(n) : chains256(n);
        t = now() - t;
        const double rate = (double)threads * n * CHAINS * lanes * 2 / t / 1e9;
        if (rate > best) best = rate;
        if (sink == 1234.5f) fputs("", stderr); /* keep the result live */
    }
    return best;
}

int main(int argc, char **argv) {
    __builtin_cpu_init();
    const int lanes = __builtin_cpu_supports("avx512f") ? 16
                      : __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 8
                                                                                        : 0;
    const int threads = argc > 1 ? atoi(argv[1]) : omp_get_max_threads();
    if (!lanes || threads < 1) {
        printf("{\"error\": \"needs AVX2+FMA and threads >= 1\"}\n");
        return 1;
    }
    const long n = 20000000; /* about 0.1 s a run on one core */
    printf("{\"lanes\": %d, \"threads\": %d, \"gflops_1\": %.1f, \"gflops_all\": %.1f}\n", lanes,
           threads, best_rate(1, lanes, n), best_rate(threads, lanes, n));
    return 0;
}
