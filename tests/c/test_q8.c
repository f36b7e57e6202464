/* The int8 product (src/q8.h): the portable path against a scalar
 * reference on the unpacked weights, bit for bit, and every instruction
 * set this CPU has against the portable path, bit for bit (memcmp), over
 * shapes that hit every tail: rows not a multiple of any row block, N not
 * a multiple of 16 (nor of 8 or 64), K not a multiple of 4, K = 0, with
 * lda > Kp and ldc > N; C outside [M, N) and around it checked untouched.
 * Then K = CLSTM_Q8_MAX_K with every value at +-127 (the largest sums
 * int32 must hold exactly, and the pairs that would saturate vpmaddubsw's
 * int16 with an unsigned +128 operand), a NaN scale, and the activations'
 * quantizer.
 *
 * Under valgrind (make test-valgrind) the CPU reported lacks AVX-512, so
 * the AVX-512 path is skipped there like any path the CPU lacks. */
#include <math.h>
#include <stdint.h>
#include <string.h>
#include "ctest.h"
#include "q8.h"

static uint64_t rng = 88172645463325252ull;
static uint64_t next(void) { /* xorshift64 */
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static int8_t rand_q(void) { return (int8_t)((int)(next() >> 40) % 255 - 127); } /* [-127, 127] */
static float rand_scale(void) { return (float)((next() >> 40) + 1) * 0x1p-30f; }

#define SENTINEL (-12345.5f)
#define GUARD 40 /* floats of SENTINEL before and after C */

/* One product's operands, unpacked and packed, and its output. */
typedef struct {
    int64_t M, N, K, Kp, lda, ldc;
    int8_t *W, *A, *Wp; /* W (N, K) row-major; A (M, lda) */
    int32_t *colsum;
    float *sa, *sw, *C, *ref; /* C, ref: GUARD floats into their buffers */
    size_t cbytes;            /* of those buffers */
} problem;

/* Operands drawn by fill (or random when fill is NULL), with A's pad bytes
 * zero as the contract says and the rest of each lda row garbage. */
static void problem_make(problem *q, int64_t M, int64_t N, int64_t K,
                        int8_t (*fill_a)(int64_t, int64_t), int8_t (*fill_w)(int64_t, int64_t)) {
    q->M = M, q->N = N, q->K = K, q->Kp = clstm_q8_kp(K);
    q->lda = q->Kp + 4 * (int64_t)(next() % 3), q->ldc = N + 1 + (int64_t)(next() % 5);
    q->W = xcalloc((size_t)(N * K) + 1, 1);
    q->A = xcalloc((size_t)(M * q->lda) + 1, 1);
    q->Wp = xcalloc(clstm_q8_packed_bytes(N, K) + 1, 1);
    q->colsum = xcalloc((size_t)N, sizeof(int32_t));
    q->sa = xcalloc((size_t)M, sizeof(float));
    q->sw = xcalloc((size_t)N, sizeof(float));
    q->cbytes = sizeof(float) * (size_t)(M * q->ldc + 2 * GUARD);
    q->C = (float *)xcalloc(q->cbytes, 1) + GUARD;
    q->ref = (float *)xcalloc(q->cbytes, 1) + GUARD;
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++) q->W[n * K + k] = fill_w ? fill_w(n, k) : rand_q();
    for (int64_t m = 0; m < M; m++)
        for (int64_t k = 0; k < q->lda; k++)
            q->A[m * q->lda + k] = k >= q->Kp ? (int8_t)0x5a /* never read */
                                   : k >= K   ? 0
                                   : fill_a   ? fill_a(m, k)
                                              : rand_q();
    for (int64_t m = 0; m < M; m++) q->sa[m] = rand_scale();
    for (int64_t n = 0; n < N; n++) q->sw[n] = rand_scale();
    clstm_q8_pack(q->Wp, q->colsum, q->W, K, N, K);
}

static void problem_free(problem *q) {
    free(q->W), free(q->A), free(q->Wp), free(q->colsum);
    free(q->sa), free(q->sw), free(q->C - GUARD), free(q->ref - GUARD);
}

static void fill_sentinel(float *C, size_t bytes) {
    for (size_t i = 0; i < bytes / sizeof(float); i++) C[i] = SENTINEL;
}

/* The definition, on the unpacked W: an int64 sum (which must fit int32),
 * then the contract's two float32 multiplies; SENTINEL outside [M, N). */
static void reference(problem *q) {
    fill_sentinel(q->ref - GUARD, q->cbytes);
    for (int64_t m = 0; m < q->M; m++)
        for (int64_t n = 0; n < q->N; n++) {
            int64_t s = 0;
            for (int64_t k = 0; k < q->K; k++)
                s += (int64_t)q->A[m * q->lda + k] * q->W[n * q->K + k];
            const float scale = q->sa[m] * q->sw[n];
            q->ref[m * q->ldc + n] = (float)s * scale;
        }
}

static void run(problem *q) {
    fill_sentinel(q->C - GUARD, q->cbytes);
    clstm_q8_gemm(q->M, q->N, q->K, q->A, q->lda, q->sa, q->Wp, q->colsum, q->sw, q->C, q->ldc);
}

/* The ISAs to check: those this CPU has (the limit picks the best at or
 * below it, so a lacking one answers lower). */
static int isa_present(int isa) { return clstm_q8_limit_isa(isa) == isa; }

/* Every path on q: portable against the reference, each instruction set
 * against portable, bit for bit over the whole of C's buffer (so nothing
 * outside [M, N) was written either). */
static void check_paths(problem *q, const char *what) {
    float *portable = xcalloc(q->cbytes, 1);
    reference(q);
    clstm_q8_limit_isa(Q8_PORTABLE);
    run(q);
    memcpy(portable, q->C - GUARD, q->cbytes);
    CHECK(memcmp(portable, q->ref - GUARD, q->cbytes) == 0,
          "portable %s M=%lld N=%lld K=%lld lda=%lld ldc=%lld: differs from the reference", what,
          (long long)q->M, (long long)q->N, (long long)q->K, (long long)q->lda,
          (long long)q->ldc);
    for (int isa = Q8_PORTABLE + 1; isa < Q8_ISA_COUNT; isa++) {
        if (!isa_present(isa)) continue;
        run(q);
        CHECK(memcmp(q->C - GUARD, portable, q->cbytes) == 0,
              "%s %s M=%lld N=%lld K=%lld lda=%lld ldc=%lld: differs from portable",
              clstm_q8_isa_name(), what, (long long)q->M, (long long)q->N, (long long)q->K,
              (long long)q->lda, (long long)q->ldc);
    }
    free(portable);
}

static void check_shape(int64_t M, int64_t N, int64_t K, int8_t (*fill_a)(int64_t, int64_t),
                        int8_t (*fill_w)(int64_t, int64_t)) {
    problem q;
    problem_make(&q, M, N, K, fill_a, fill_w);
    check_paths(&q, fill_a || fill_w ? "(+-127)" : "(random)");
    problem_free(&q);
}

static void check_shapes(void) {
    static const int64_t Ms[] = {1, 2, 3, 4, 5, 6, 7, 11, 12, 13, 17, 25, 64, 70};
    static const int64_t Ns[] = {1, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48, 63, 64, 65, 100};
    static const int64_t Ks[] = {0, 1, 3, 4, 5, 8, 63, 64, 127, 300};
    for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
        for (size_t b = 0; b < sizeof Ns / sizeof *Ns; b++)
            for (size_t c = 0; c < sizeof Ks / sizeof *Ks; c++) {
                /* every shape on a full grid is slow under valgrind: a third of it */
                if ((a + b + c) % 3 && !(Ms[a] == 1 || Ks[c] == 300)) continue;
                check_shape(Ms[a], Ns[b], Ks[c], NULL, NULL);
            }
    /* A in more than one chunk of rows (Q8_CHUNK_BYTES, q8_kernel.inc) */
    check_shape(257, 17, 256, NULL, NULL);
    check_shape(300, 33, 300, NULL, NULL);
}

/* The extremes at K = CLSTM_Q8_MAX_K: |acc| = 127 * 127 * K, and +-127
 * pairs of equal and of opposite signs. */
static int8_t all_plus(int64_t i, int64_t k) { return 127; }
static int8_t all_minus(int64_t i, int64_t k) { return -127; }
static int8_t by_row(int64_t i, int64_t k) { return i % 2 ? -127 : 127; }
static int8_t alternating(int64_t i, int64_t k) { return (k + i) % 2 ? -127 : 127; }
static int8_t by_pair(int64_t i, int64_t k) { return (k / 2 + i) % 2 ? -127 : 127; }

static void check_extremes(void) {
    int8_t (*const fills[])(int64_t, int64_t) = {all_plus, all_minus, by_row, alternating,
                                                 by_pair};
    /* (A, W): the largest sums of either sign; pairs of equal signs at
     * every k (vpmaddubsw's worst case); then mixed signs */
    static const int pairs[][2] = {{0, 0}, {1, 1}, {0, 1}, {1, 0}, {3, 3}, {4, 4},
                                   {3, 4}, {2, 3}, {4, 2}};
    for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++)
        check_shape(3, 17, CLSTM_Q8_MAX_K, fills[pairs[i][0]], fills[pairs[i][1]]);
    check_shape(1, 33, CLSTM_Q8_MAX_K, NULL, NULL);
    check_shape(7, 20, CLSTM_Q8_MAX_K - 3, all_plus, NULL);
}

/* The quantizer: rows of zeros, rows with NaN or Inf, pad bytes, the
 * range, and the round trip within half a step. */
enum { FINITE, ZEROS, NOT_FINITE };
static const int row_kind[] = {FINITE, ZEROS, NOT_FINITE, NOT_FINITE, NOT_FINITE, FINITE, FINITE};

static void check_quantized_row(int64_t m, const float *x, int64_t K, const int8_t *q,
                                int64_t Kp, int64_t lda, float s) {
    int in_range = 1, pad_zero = 1, untouched = 1, zero = 1;
    float worst = 0;
    for (int64_t k = 0; k < K; k++) {
        in_range &= q[k] != -128; /* the one int8 outside [-127, 127] */
        zero &= q[k] == 0;
        worst = fmaxf(worst, fabsf((float)q[k] * s - x[k]));
    }
    for (int64_t k = K; k < Kp; k++) pad_zero &= q[k] == 0;
    for (int64_t k = Kp; k < lda; k++) untouched &= q[k] == 0x77;
    CHECK(in_range && pad_zero, "row %lld: q in [-127, 127], pad bytes zero", (long long)m);
    CHECK(untouched, "row %lld: nothing written past Kp", (long long)m);
    if (row_kind[m] == ZEROS)
        CHECK(s == 0 && zero, "row of zeros: s = 0, q = 0");
    else if (row_kind[m] == NOT_FINITE)
        CHECK(isnan(s) && zero, "row %lld with NaN or Inf: s NaN, q = 0", (long long)m);
    else
        CHECK(s > 0 && worst <= s * 0.5f * (1 + 1e-6f),
              "row %lld: round trip error %g > s / 2 = %g", (long long)m, worst, s * 0.5f);
}

static void check_quantize(void) {
    enum { M = 7, K = 45, ldx = 50, lda = 56 };
    const int64_t Kp = clstm_q8_kp(K);
    float X[M * ldx], sa[M];
    int8_t A[M * lda];
    for (int64_t i = 0; i < M * ldx; i++)
        X[i] = (float)((int64_t)(next() >> 40) - (1 << 23)) * 0x1p-20f; /* [-8, 8) */
    for (int64_t k = 0; k < K; k++) X[1 * ldx + k] = 0;
    X[2 * ldx + 7] = NAN;
    X[3 * ldx + 44] = INFINITY;
    X[4 * ldx + 0] = -INFINITY;
    for (int64_t k = 0; k < K; k++) X[5 * ldx + k] = k == 3 ? -1e-30f : 0; /* one tiny value */
    memset(A, 0x77, sizeof A);
    clstm_q8_quantize_rows(M, K, X, ldx, A, lda, sa);
    for (int64_t m = 0; m < M; m++)
        check_quantized_row(m, X + m * ldx, K, A + m * lda, Kp, lda, sa[m]);
    float s0 = -1; /* K = 0: nothing to read */
    clstm_q8_quantize_rows(1, 0, X, ldx, A, lda, &s0);
    CHECK(s0 == 0, "K = 0: s = 0");
}

/* A NaN activation scale (a row with NaN or Inf) gives NaN products on
 * every path, with the same bits. */
static void check_nan_scale(void) {
    problem q;
    problem_make(&q, 5, 40, 20, NULL, NULL);
    q.sa[2] = NAN;
    check_paths(&q, "(NaN scale)");
    CHECK(isnan(q.C[2 * q.ldc + 39]), "NaN scale: NaN products");
    problem_free(&q);
}

int main(void) {
    int tried = 0;
    for (int isa = Q8_PORTABLE; isa < Q8_ISA_COUNT; isa++) {
        if (!isa_present(isa)) continue;
        printf("q8 path: %s\n", clstm_q8_isa_name());
        tried++;
    }
    CHECK_EQ(clstm_q8_limit_isa(Q8_PORTABLE), Q8_PORTABLE);
    CHECK(strcmp(clstm_q8_isa_name(), "portable") == 0, "limit 0 is portable");
    check_shapes();
    check_extremes();
    check_nan_scale();
    check_quantize();
    clstm_q8_limit_isa(Q8_ISA_COUNT - 1);
    CHECK(tried >= 1, "at least the portable path ran");
    return ctest_finish();
}
