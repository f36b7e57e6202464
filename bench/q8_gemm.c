/* The int8 product's speed (src/q8.h): GMAC/s of every path this CPU has
 * (clstm_q8_limit_isa), on one thread, for the shapes an int8 LSTM runs:
 *   M=32   N=2048 K=512   a recurrent step, B=64 H=512 split over 2 threads
 *   M=3200 N=2048 K=512   the input projection of a chunk (T*B rows)
 *   M=1    N=1024 K=256   streaming, B=1 H=256 (the weights from L2)
 *   M=8    N=512  K=128   a small step
 * Each figure is the median (and the best) of 15 timings of enough calls
 * to take 20 ms (3 timings when one call takes over 0.1 s), after the
 * calls that find that count. With the int8 ceiling as argument
 * (fma_peak's "avx512_vnni" gmacs_1: cc -O2 -fopenmp bench/fma_peak.c -o fp
 * && ./fp 1) it prints each as a share of it. A benchmark helper, not part of the
 * library. Build (after make; the q8 objects need no BLAS, so any
 * build folder's library links) and run:
 *
 *   cc -O2 -fopenmp -Iinclude -Isrc bench/q8_gemm.c build/libclstm.a -lm -o q8_gemm
 *   ./q8_gemm [ceiling GMAC/s [lowest path: 0 portable, 1 avx2, ...]] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "q8.h"

#define REPEATS 15

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct {
    int64_t M, N, K, lda;
    int8_t *A, *Wp;
    int32_t *colsum;
    float *sa, *sw, *C;
} shape;

static shape shape_make(int64_t M, int64_t N, int64_t K) {
    shape s = {M, N, K, clstm_q8_kp(K), NULL, NULL, NULL, NULL, NULL, NULL};
    int8_t *W = malloc((size_t)(N * K));
    s.A = calloc((size_t)(M * s.lda), 1);
    s.Wp = malloc(clstm_q8_packed_bytes(N, K));
    s.colsum = malloc(sizeof(int32_t) * (size_t)N);
    s.sa = malloc(sizeof(float) * (size_t)M);
    s.sw = malloc(sizeof(float) * (size_t)N);
    s.C = malloc(sizeof(float) * (size_t)(M * N));
    if (!W || !s.A || !s.Wp || !s.colsum || !s.sa || !s.sw || !s.C) {
        fprintf(stderr, "out of memory\n");
        exit(2);
    }
    srand(1);
    for (int64_t i = 0; i < N * K; i++) W[i] = (int8_t)(rand() % 255 - 127);
    for (int64_t m = 0; m < M; m++)
        for (int64_t k = 0; k < K; k++) s.A[m * s.lda + k] = (int8_t)(rand() % 255 - 127);
    for (int64_t m = 0; m < M; m++) s.sa[m] = 1.0f / 127;
    for (int64_t n = 0; n < N; n++) s.sw[n] = 1.0f / 127;
    clstm_q8_pack(s.Wp, s.colsum, W, K, N, K);
    free(W);
    return s;
}

static void shape_free(shape *s) {
    free(s->A), free(s->Wp), free(s->colsum), free(s->sa), free(s->sw), free(s->C);
}

static double seconds(const shape *s, long calls) {
    const double t0 = now();
    for (long c = 0; c < calls; c++)
        clstm_q8_gemm(s->M, s->N, s->K, s->A, s->lda, s->sa, s->Wp, s->colsum, s->sw, s->C,
                      s->N);
    return now() - t0;
}

/* GMAC/s at the median and at the best of REPEATS timings of about 20 ms
 * each (3 when one call takes over 0.1 s: the portable path on the large
 * shape); the calls that find the count warm the caches. */
static void gmacs(const shape *s, double *median, double *best) {
    long calls = 1;
    double t1;
    while ((t1 = seconds(s, calls)) < 0.02) calls *= 2;
    const int n = t1 > 0.1 ? 3 : REPEATS;
    double t[REPEATS];
    for (int r = 0; r < n; r++) t[r] = seconds(s, calls);
    qsort(t, (size_t)n, sizeof *t, cmp_double);
    const double macs = (double)s->M * (double)s->N * (double)s->K * (double)calls;
    *median = macs / t[n / 2] * 1e-9;
    *best = macs / t[0] * 1e-9;
}

int main(int argc, char **argv) {
    static const int64_t shapes[][3] = {{32, 2048, 512}, {3200, 2048, 512}, {1, 1024, 256},
                                        {8, 512, 128}};
    const double ceiling = argc > 1 ? atof(argv[1]) : 0;
    const int lowest = argc > 2 ? atoi(argv[2]) : Q8_PORTABLE;
    printf("| M x N x K | path | GMAC/s median | best |%s\n|---|---|---|---|%s\n",
           ceiling > 0 ? " % of ceiling (median) |" : "", ceiling > 0 ? "---|" : "");
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) {
        shape s = shape_make(shapes[i][0], shapes[i][1], shapes[i][2]);
        for (int isa = lowest; isa < Q8_ISA_COUNT; isa++) {
            if (clstm_q8_limit_isa(isa) != isa) continue; /* this CPU lacks it */
            double g, best;
            gmacs(&s, &g, &best);
            printf("| %lld x %lld x %lld | %s | %.1f | %.1f |", (long long)s.M, (long long)s.N,
                   (long long)s.K, clstm_q8_isa_name(), g, best);
            if (ceiling > 0) printf(" %.0f%% |", 100 * g / ceiling);
            printf("\n");
            fflush(stdout);
        }
        shape_free(&s);
    }
    clstm_q8_limit_isa(Q8_ISA_COUNT - 1);
    return 0;
}
