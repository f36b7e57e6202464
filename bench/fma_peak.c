/* The float32 FMA ceiling of this machine, measured: every thread runs 12
 * independent chains of 16-lane (or 8-lane) fused multiply-adds, enough to
 * cover the FMA latency on current x86 cores, at whatever clock the cores
 * actually run. Prints JSON: the best of 5 runs with 1 thread and with all
 * threads of the team. Beside it, under "int8", the int8 multiply-add
 * ceiling (the bound an int8 LSTM can approach) in GMAC/s (a MAC is 2
 * operations) for each kernel the CPU has, in the same 12 chains:
 *   avx512_vnni   vpdpbusd zmm: u8 x s8, 4 products into each of 16 int32 (64 MACs)
 *   avx2_maddubs  vpmaddubsw + vpmaddwd + vpaddd ymm: u8 x s8 pairs to int16
 *                 (saturating), pairs to int32, accumulate (32 MACs)
 * Built and run by bench_peers.py; a benchmark helper, not part of the
 * library.
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

/* The kernels: 12 chains of n steps each; per chain and step, `ops`
 * floating-point operations or multiply-adds. */
typedef struct {
    const char *name;
    double (*run)(long n);
    int ops;
} kernel;

static double f512(long n) { return chains512(n); }
static double f256(long n) { return chains256(n); }
static double v512(long n) { return vnni512(n); }
static double m256(long n) { return maddubs256(n); }
static const kernel KERNELS[4] = {
    {"fma512", f512, 32}, {"fma256", f256, 16}, {"avx512_vnni", v512, 64}, {"avx2_maddubs", m256, 32}};

/* best rate (G ops/s) over 5 runs of n steps of kernel k on `threads` threads */
static double best_rate(int threads, const kernel *k, long n) {
    double best = 0;
    for (int r = 0; r < 5; r++) {
        double sink = 0;
        double t = now();
#pragma omp parallel num_threads(threads) reduction(+ : sink)
        sink += k->run(n);
        t = now() - t;
        const double rate = (double)threads * n * CHAINS * k->ops / t / 1e9;
        if (rate > best) best = rate;
        if (sink == 1234.5) fputs("", stderr); /* keep the result live */
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
    const kernel *f = &KERNELS[lanes == 16 ? 0 : 1];
    printf("{\"lanes\": %d, \"threads\": %d, \"gflops_1\": %.1f, \"gflops_all\": %.1f", lanes,
           threads, best_rate(1, f, n), best_rate(threads, f, n));
    const int has[2] = {__builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw"),
                        1};
    printf(", \"int8\": {");
    for (int k = 0; k < 2; k++)
        if (has[k])
            printf("%s\"%s\": {\"gmacs_1\": %.1f, \"gmacs_all\": %.1f}", k && has[0] ? ", " : "",
                   KERNELS[2 + k].name, best_rate(1, &KERNELS[2 + k], n / 2),
                   best_rate(threads, &KERNELS[2 + k], n / 2));
    printf("}}\n");
    return 0;
}
