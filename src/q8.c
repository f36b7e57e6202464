/* The int8 products of quantized models (q8.h): packing, the activations'
 * quantization, the portable product, and the one table of kernels per
 * instruction set, chosen at run time. */
#include <math.h>
#include <string.h>
#include "pipeline.h"
#include "q8.h"

void clstm_q8_pack(int8_t *Wp, int32_t *colsum, const int8_t *W, int64_t ldw, int64_t N,
                   int64_t K) {
    const int64_t Kp = clstm_q8_kp(K), np = (N + Q8_PANEL - 1) / Q8_PANEL;
    memset(Wp, 0, (size_t)(np * Q8_PANEL * Kp));
    for (int64_t n = 0; n < N; n++) {
        int8_t *col = Wp + (n / Q8_PANEL) * Q8_PANEL * Kp + 4 * (n % Q8_PANEL);
        int32_t sum = 0;
        for (int64_t k = 0; k < K; k++) {
            col[(k / 4) * 4 * Q8_PANEL + k % 4] = W[n * ldw + k];
            sum += W[n * ldw + k];
        }
        colsum[n] = sum;
    }
}

CLSTM_CLONES void clstm_q8_quantize_rows(int64_t M, int64_t K, const float *X, int64_t ldx,
                                         int8_t *A, int64_t lda, float *sa) {
    const int64_t Kp = clstm_q8_kp(K);
    for (int64_t m = 0; m < M; m++) {
        const float *restrict x = X + m * ldx;
        int8_t *restrict q = A + m * lda;
        float amax = 0;
        int bad = 0;
        /* omp simd: gcc's -O2 cost model left both loops scalar, 9% of a
         * T=100 B=64 H=512 forward; max, rint and the clamp give the same
         * bits in any order and width */
#pragma omp simd reduction(max : amax) reduction(| : bad)
        for (int64_t k = 0; k < K; k++) {
            const float a = fabsf(x[k]);
            amax = a > amax ? a : amax;
            bad |= !(a <= 3.402823466e38f); /* NaN or Inf */
        }
        if (bad || amax == 0) {
            memset(q, 0, (size_t)Kp);
            sa[m] = bad ? NAN : 0.0f;
            continue;
        }
        const float inv = 127.0f / amax;
        if (!(inv <= 3.402823466e38f)) { /* amax < 127 / FLT_MAX: inv is Inf, 0 * inv NaN */
            for (int64_t k = 0; k < K; k++) q[k] = (int8_t)rint((double)x[k] * (127.0 / amax));
        } else {
#pragma omp simd
            for (int64_t k = 0; k < K; k++) {
                float v = rintf(x[k] * inv);
                v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
                q[k] = (int8_t)v;
            }
        }
        for (int64_t k = K; k < Kp; k++) q[k] = 0;
        sa[m] = amax / 127.0f;
    }
}

/* The portable product: the same sums in plain C, a panel's 16 columns
 * at a time (the inner loop over them vectorises where the compiler
 * can). */
static CLSTM_CLONES void gemm_portable(int64_t M, int64_t N, int64_t K, const int8_t *A,
                                       int64_t lda, const float *sa, const int8_t *Wp,
                                       const int32_t *colsum, const float *sw, float *C,
                                       int64_t ldc) {
    const int64_t Kp = clstm_q8_kp(K);
    for (int64_t m = 0; m < M; m++) {
        const int8_t *a = A + m * lda;
        for (int64_t n0 = 0; n0 < N; n0 += Q8_PANEL) {
            const int8_t *panel = Wp + (n0 / Q8_PANEL) * Q8_PANEL * Kp;
            int32_t acc[Q8_PANEL] = {0};
            for (int64_t kq = 0; kq < Kp / 4; kq++) {
                const int8_t *w = panel + kq * 4 * Q8_PANEL, *x = a + 4 * kq;
                for (int c = 0; c < Q8_PANEL; c++)
                    acc[c] += x[0] * w[4 * c] + x[1] * w[4 * c + 1] + x[2] * w[4 * c + 2] +
                              x[3] * w[4 * c + 3];
            }
            const int64_t nc = N - n0 < Q8_PANEL ? N - n0 : Q8_PANEL;
            for (int64_t c = 0; c < nc; c++)
                C[m * ldc + n0 + c] = (float)acc[c] * (sa[m] * sw[n0 + c]);
        }
    }
}

static int always(void) { return 1; }
static const q8_kernels portable = {"portable", always, gemm_portable};

/* The kernels of each instruction set, by Q8_* number. */
static const q8_kernels *const isa_table[Q8_ISA_COUNT] = {
    [Q8_PORTABLE] = &portable,
#ifdef Q8_X86
    [Q8_AVX2] = &clstm_q8_avx2,
    [Q8_AVX_VNNI] = &clstm_q8_avx_vnni,
    [Q8_AVX512_VNNI] = &clstm_q8_avx512_vnni,
#endif
};

static int has_isa(int i) { return isa_table[i] && isa_table[i]->cpu_has(); }
static clstm_isa_choice choice = {has_isa, Q8_ISA_COUNT, Q8_ISA_COUNT - 1, -1};

static const q8_kernels *active_kernels(void) { return isa_table[clstm_isa_active(&choice)]; }

int clstm_q8_limit_isa(int isa) { return clstm_isa_limit(&choice, isa); }

const char *clstm_q8_isa_name(void) { return active_kernels()->name; }

const char *clstm_int8_kernel(void) { return clstm_q8_isa_name(); }

clstm_status clstm_int8_kernel_limit(const char *name) {
    static const char *const names[Q8_ISA_COUNT] = {"portable", "avx2", "avx-vnni",
                                                    "avx512-vnni"};
    if (!name) return CLSTM_ERR_NULL;
    for (int i = 0; i < Q8_ISA_COUNT; i++)
        if (strcmp(name, names[i]) == 0) {
            clstm_q8_limit_isa(i);
            return CLSTM_OK;
        }
    return CLSTM_ERR_ARG;
}

void clstm_q8_gemm(int64_t M, int64_t N, int64_t K, const int8_t *A, int64_t lda,
                   const float *sa, const int8_t *Wp, const int32_t *colsum, const float *sw,
                   float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    active_kernels()->gemm(M, N, K, A, lda, sa, Wp, colsum, sw, C, ldc);
}
