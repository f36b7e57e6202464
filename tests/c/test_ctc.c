/*
 * test_ctc.c -- the CTC loss and decoders from C: the loss against every
 * alignment enumerated, the gradient's rows (they sum to 0 at valid
 * steps, and are 0 past a length), the beam against the enumerated
 * labelling probabilities, greedy decoding, float32 against float64, and
 * every bad argument's status with nothing written. Run under ASan, UBSan
 * and valgrind by make's sanitizer targets.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "clstm.h"
#include "ctest.h"

enum { T = 4, B = 3, C = 3, S = 3, PATHS = 81 /* C^T */ };

static double logits[T * B * C];

static void fill_logits(void) {
    uint64_t z = 12345;
    for (int i = 0; i < T * B * C; i++) {
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        logits[i] = (double)(z >> 11) / (double)(1ull << 53) * 4.0 - 2.0;
    }
}

/* log p(t, b, k) */
static double lp(int t, int b, int k) {
    const double *r = logits + (t * B + b) * C;
    double m = r[0], s = 0;
    for (int j = 1; j < C; j++) m = r[j] > m ? r[j] : m;
    for (int j = 0; j < C; j++) s += exp(r[j] - m);
    return r[k] - m - log(s);
}

/* The labelling of a path (T digits base C), collapsed; its length. */
static int collapse(int path, int Tb, int blank, int *out) {
    int n = 0, prev = -1;
    for (int t = 0; t < Tb; t++) {
        const int k = path % C;
        path /= C;
        if (k != prev && k != blank) out[n++] = k;
        prev = k;
    }
    return n;
}

/* p(labelling y of length n | sequence b's first Tb steps), every path. */
static double brute(int b, int Tb, int blank, const int *y, int n) {
    double p = 0;
    int paths = 1;
    for (int t = 0; t < Tb; t++) paths *= C;
    for (int path = 0; path < paths; path++) {
        int lab[T], m = collapse(path, Tb, blank, lab);
        if (m != n || memcmp(lab, y, sizeof(int) * (size_t)n) != 0) continue;
        double l = 0;
        for (int t = 0, q = path; t < Tb; t++, q /= C) l += lp(t, b, q % C);
        p += exp(l);
    }
    return p;
}

static void test_loss(void) {
    const int32_t targets[B * S] = {1, 1, 0, 2, 0, 0, 0, 0, 0};
    const int64_t tl[B] = {2, 1, 0}, il[B] = {4, 2, 3};
    double loss[B], grad[T * B * C];
    CHECK_EQ(clstm_ctc_loss(CLSTM_FLOAT64, T, B, C, logits, il, targets, S, tl, 0,
                            CLSTM_REDUCE_NONE, 0, loss, grad),
             CLSTM_OK);
    for (int b = 0; b < B; b++) {
        int y[S];
        for (int s = 0; s < tl[b]; s++) y[s] = targets[b * S + s];
        const double want = -log(brute(b, (int)il[b], 0, y, (int)tl[b]));
        CHECK(fabs(loss[b] - want) < 1e-12 * (1 + fabs(want)), "b=%d: %.17g against %.17g", b,
              loss[b], want);
        for (int t = 0; t < T; t++) {
            double sum = 0, mag = 0;
            for (int k = 0; k < C; k++) {
                sum += grad[(t * B + b) * C + k];
                mag += fabs(grad[(t * B + b) * C + k]);
            }
            if (t < il[b])
                CHECK(fabs(sum) < 1e-12 && mag > 0, "b=%d t=%d: row sums to %g", b, t, sum);
            else
                CHECK(mag == 0, "b=%d t=%d: past the length, |g| = %g", b, t, mag);
        }
    }
    /* float32 logits: the same loss to float32's rounding of the logits */
    float l32[T * B * C], g32[T * B * C];
    for (int i = 0; i < T * B * C; i++) l32[i] = (float)logits[i];
    double loss32[B];
    CHECK_EQ(clstm_ctc_loss(CLSTM_FLOAT32, T, B, C, l32, il, targets, S, tl, 0,
                            CLSTM_REDUCE_NONE, 0, loss32, g32),
             CLSTM_OK);
    for (int b = 0; b < B; b++)
        CHECK(fabs(loss32[b] - loss[b]) < 1e-5, "float32 b=%d: %g against %g", b, loss32[b],
              loss[b]);
    /* mean: each divided by max(1, target length), then by B */
    double mean;
    CHECK_EQ(clstm_ctc_loss(CLSTM_FLOAT64, T, B, C, logits, il, targets, S, tl, 0,
                            CLSTM_REDUCE_MEAN, 0, &mean, NULL),
             CLSTM_OK);
    CHECK(fabs(mean - (loss[0] / 2 + loss[1] + loss[2]) / 3) < 1e-13, "mean %g", mean);
    /* too short: 1 1 in 2 steps needs 3 */
    const int64_t short_il[B] = {2, 2, 3};
    CHECK_EQ(clstm_ctc_loss(CLSTM_FLOAT64, T, B, C, logits, short_il, targets, S, tl, 0,
                            CLSTM_REDUCE_NONE, 0, loss, grad),
             CLSTM_OK);
    CHECK(isinf(loss[0]) && isnan(grad[0]), "impossible: inf and NaN");
    CHECK_EQ(clstm_ctc_loss(CLSTM_FLOAT64, T, B, C, logits, short_il, targets, S, tl, 0,
                            CLSTM_REDUCE_NONE, 1, loss, grad),
             CLSTM_OK);
    CHECK(loss[0] == 0 && grad[0] == 0, "zero_infinity: 0 and 0");
}

static void test_decoders(void) {
    int32_t labels[B * 9 * T];
    int64_t lens[B * 9];
    double scores[B * 9];
    CHECK_EQ(clstm_ctc_beam_search(CLSTM_FLOAT64, T, B, C, logits, NULL, 2, 64, 9, labels, lens,
                                   scores),
             CLSTM_OK);
    for (int b = 0; b < B; b++) {
        double last = INFINITY, total = 0;
        for (int r = 0; r < 9; r++) {
            const double *sc = scores + b * 9 + r;
            int y[T];
            for (int i = 0; i < lens[b * 9 + r]; i++) y[i] = labels[(b * 9 + r) * T + i];
            const double want = log(brute(b, T, 2, y, (int)lens[b * 9 + r]));
            CHECK(fabs(*sc - want) < 1e-12, "b=%d r=%d: %.17g against %.17g", b, r, *sc, want);
            CHECK(*sc <= last, "b=%d: not best first", b);
            last = *sc;
            total += exp(*sc);
        }
        /* labellings of 4 steps over 2 labels: "", a, b, aa, ab, ..., so
         * the best 9 hold most of the mass, never more than all of it */
        CHECK(total <= 1 + 1e-12 && total > 0.5, "b=%d: mass %g", b, total);
    }
    int32_t g[B * T];
    int64_t gl[B];
    const int64_t il[B] = {4, 0, 1};
    CHECK_EQ(clstm_ctc_greedy(CLSTM_FLOAT64, T, B, C, logits, il, 0, g, gl), CLSTM_OK);
    CHECK_EQ(gl[1], 0);
    for (int b = 0; b < B; b++) {
        int path = 0, mul = 1, y[T];
        for (int t = 0; t < il[b]; t++, mul *= C) {
            int best = 0;
            for (int k = 1; k < C; k++)
                if (logits[(t * B + b) * C + k] > logits[(t * B + b) * C + best]) best = k;
            path += best * mul;
        }
        const int n = collapse(path, (int)il[b], 0, y);
        CHECK_EQ(gl[b], n);
        for (int i = 0; i < n && i < gl[b]; i++) CHECK_EQ(g[b * T + i], y[i]);
    }
}

/* Every bad argument: its status, and the outputs untouched. */
static void test_errors(void) {
    const int32_t targets[B * S] = {1, 1, 0, 2, 0, 0, 0, 0, 0}, blank_target[B * S] = {0};
    const int64_t tl[B] = {2, 1, 0}, bad_il[B] = {5, 1, 1}, bad_tl[B] = {4, 0, 0};
    double loss[B] = {7, 7, 7};
    const double sentinel = 7;
#define LOSS(dt, t, b, c, z, il, y, s, l, bl, red, out) \
    clstm_ctc_loss(dt, t, b, c, z, il, y, s, l, bl, red, 0, out, NULL)
    CHECK_EQ(LOSS(CLSTM_FLOAT64, T, B, C, NULL, NULL, targets, S, tl, 0, 2, loss), CLSTM_ERR_NULL);
    CHECK_EQ(LOSS(CLSTM_FLOAT64, T, B, C, logits, NULL, NULL, S, tl, 0, 2, loss), CLSTM_ERR_NULL);
    CHECK_EQ(LOSS(CLSTM_FLOAT64, T, B, C, logits, NULL, targets, S, NULL, 0, 2, loss),
             CLSTM_ERR_NULL);
    CHECK_EQ(LOSS(CLSTM_FLOAT64, T, B, C, logits, NULL, targets, S, tl, 0, 2, NULL),
             CLSTM_ERR_NULL);
    CHECK_EQ(LOSS(CLSTM_FLOAT64, 0, B, C, logits, NULL, targets, S, tl, 0, 2, loss),
             CLSTM_ERR_SIZE);
    CHECK_EQ(LOSS(CLSTM_FLOAT64, T, B, C, logits, NULL, targets, -1, tl, 0, 2, loss),
             CLSTM_ERR_SIZE);
    CHECK_EQ(LOSS(CLSTM_FLOAT64, INT64_MAX, 2, C, logits, NULL, targets, S, tl, 0, 2, loss),
             CLSTM_ERR_OVERFLOW);
    CHECK_EQ(LOSS((clstm_dtype)9, T, B, C, logits, NULL, targets, S, tl, 0, 2, loss),
             CLSTM_ERR_DTYPE);
    CHECK_EQ(LOSS(CLSTM_FLOAT64, T, B, C, logits, bad_il, targets, S, tl, 0, 2, loss),
             CLSTM_ERR_ARG);
    CHECK_EQ(LOSS(CLSTM_FLOAT64, T, B, C, logits, NULL, targets, S, bad_tl, 0, 2, loss),
             CLSTM_ERR_ARG);
    CHECK_EQ(LOSS(CLSTM_FLOAT64, T, B, C, logits, NULL, targets, S, tl, 3, 2, loss),
             CLSTM_ERR_ARG);
    CHECK_EQ(LOSS(CLSTM_FLOAT64, T, B, C, logits, NULL, targets, S, tl, 0, 3, loss),
             CLSTM_ERR_ARG);
    CHECK_EQ(LOSS(CLSTM_FLOAT64, T, B, C, logits, NULL, blank_target, S, tl, 0, 2, loss),
             CLSTM_ERR_ARG); /* a target that is the blank */
    CHECK_EQ(LOSS(CLSTM_FLOAT64, T, B, 2, logits, NULL, targets, S, tl, 0, 2, loss),
             CLSTM_ERR_ARG); /* target 2 with C = 2 */
    CHECK(loss[0] == sentinel && loss[1] == sentinel && loss[2] == sentinel,
          "a failed loss wrote its output");
    const int64_t empty[B] = {0, 0, 0};
    CHECK_EQ(LOSS(CLSTM_FLOAT64, T, B, C, logits, NULL, NULL, 0, empty, 0, 2, loss), CLSTM_OK);
#undef LOSS
    int32_t labels[B * T];
    int64_t lens[B] = {7, 7, 7};
    double scores[B];
    CHECK_EQ(clstm_ctc_greedy(CLSTM_FLOAT64, T, B, C, logits, NULL, 0, NULL, lens),
             CLSTM_ERR_NULL);
    CHECK_EQ(clstm_ctc_greedy(CLSTM_FLOAT64, T, B, C, logits, NULL, -1, labels, lens),
             CLSTM_ERR_ARG);
    CHECK_EQ(clstm_ctc_beam_search(CLSTM_FLOAT64, T, B, C, logits, NULL, 0, 0, 1, labels, lens,
                                   scores),
             CLSTM_ERR_ARG);
    CHECK_EQ(clstm_ctc_beam_search(CLSTM_FLOAT64, T, B, C, logits, NULL, 0, 2, 3, labels, lens,
                                   scores),
             CLSTM_ERR_ARG);
    CHECK_EQ(clstm_ctc_beam_search(CLSTM_FLOAT64, T, B, C, logits, NULL, 0,
                                   CLSTM_CTC_MAX_WIDTH + 1, 1, labels, lens, scores),
             CLSTM_ERR_ARG);
    CHECK_EQ(clstm_ctc_beam_search(CLSTM_FLOAT64, T, B, C, logits, bad_il, 0, 2, 1, labels,
                                   lens, scores),
             CLSTM_ERR_ARG);
    CHECK_EQ(clstm_ctc_beam_search(CLSTM_FLOAT64, T, B, C, logits, NULL, 0, 2, 1, labels, lens,
                                   NULL),
             CLSTM_ERR_NULL);
    CHECK(lens[0] == 7 && lens[1] == 7 && lens[2] == 7, "a failed decoder wrote its output");
}

/* Shallow fusion: weight 0 and bonus 0 give the plain search; a weighted
 * one runs (memory checked by the sanitizers); bad models and tokens are
 * refused. */
static void test_fusion(void) {
    clstm_config c = clstm_config_default();
    c.encoding = CLSTM_ENCODING_ONEHOT;
    c.vocab_size = 4;
    c.input_size = 4;
    c.hidden_size = 6;
    c.output_size = 4;
    c.softmax = 1;
    c.dtype = CLSTM_FLOAT64;
    clstm_model *lm = NULL;
    if (!CHECK_EQ(clstm_create(&c, 9, &lm), CLSTM_OK)) return;
    const int32_t tokens[C] = {1, 3, -1}; /* class 2 (the blank here) has none */
    clstm_ctc_lm fuse = {lm, tokens, 0, 0.0, 0.0};
    int32_t a[B * 4 * T], p[B * 4 * T];
    int64_t al[B * 4], pl[B * 4];
    double as[B * 4], ps[B * 4];
    CHECK_EQ(clstm_ctc_beam_search(CLSTM_FLOAT64, T, B, C, logits, NULL, 2, 8, 4, p, pl, ps),
             CLSTM_OK);
    CHECK_EQ(clstm_ctc_beam_search_lm(CLSTM_FLOAT64, T, B, C, logits, NULL, 2, 8, 4, &fuse, a,
                                      al, as),
             CLSTM_OK);
    for (int i = 0; i < B * 4; i++) {
        CHECK(al[i] == pl[i] && fabs(as[i] - ps[i]) < 1e-12, "entry %d", i);
        for (int j = 0; j < al[i] && al[i] == pl[i]; j++) CHECK_EQ(a[i * T + j], p[i * T + j]);
    }
    fuse.weight = 0.8;
    fuse.bonus = 0.5;
    fuse.start = -1;
    CHECK_EQ(clstm_ctc_beam_search_lm(CLSTM_FLOAT64, T, B, C, logits, NULL, 2, 8, 4, &fuse, a,
                                      al, as),
             CLSTM_OK);
    CHECK(isfinite(as[0]) && as[0] >= as[1], "fused scores, best first");
    const int32_t bad_tokens[C] = {1, 4, -1}, mapped_blank[C] = {1, 3, 0};
    fuse.tokens = bad_tokens;
    CHECK_EQ(clstm_ctc_beam_search_lm(CLSTM_FLOAT64, T, B, C, logits, NULL, 2, 8, 4, &fuse, a,
                                      al, as),
             CLSTM_ERR_ARG);
    fuse.tokens = mapped_blank;
    CHECK_EQ(clstm_ctc_beam_search_lm(CLSTM_FLOAT64, T, B, C, logits, NULL, 2, 8, 4, &fuse, a,
                                      al, as),
             CLSTM_ERR_ARG);
    fuse.tokens = tokens;
    fuse.weight = NAN;
    CHECK_EQ(clstm_ctc_beam_search_lm(CLSTM_FLOAT64, T, B, C, logits, NULL, 2, 8, 4, &fuse, a,
                                      al, as),
             CLSTM_ERR_ARG);
    fuse.weight = 1;
    fuse.start = 4;
    CHECK_EQ(clstm_ctc_beam_search_lm(CLSTM_FLOAT64, T, B, C, logits, NULL, 2, 8, 4, &fuse, a,
                                      al, as),
             CLSTM_ERR_ARG);
    fuse.start = -1;
    fuse.model = NULL;
    CHECK_EQ(clstm_ctc_beam_search_lm(CLSTM_FLOAT64, T, B, C, logits, NULL, 2, 8, 4, &fuse, a,
                                      al, as),
             CLSTM_ERR_NULL);
    clstm_config plain = clstm_config_default();
    plain.input_size = 3;
    plain.hidden_size = 4;
    clstm_model *bare = NULL;
    if (CHECK_EQ(clstm_create(&plain, 1, &bare), CLSTM_OK)) {
        fuse.model = bare;
        CHECK_EQ(clstm_ctc_beam_search_lm(CLSTM_FLOAT64, T, B, C, logits, NULL, 2, 8, 4, &fuse,
                                          a, al, as),
                 CLSTM_ERR_ARG);
        clstm_free(bare);
    }
    clstm_free(lm);
}

int main(void) {
    fill_logits();
    test_loss();
    test_decoders();
    test_errors();
    test_fusion();
    return ctest_finish();
}
