/*
 * test_quantize.c -- quantized (int8) models through the public API
 * (include/clstm.h: "quantized models"):
 *
 *   1. clstm_quantize of float32 and float64 models of several configs: the
 *      int8 tensors (q in [-127, 127]; scale = max|w_row| / 127 to float
 *      rounding, 1 for a row of zeros; |q*s - w| <= s/2), the float block
 *      holding q*s, the other tensors copied; the forward close to the float
 *      model's (and not equal to it)
 *   2. inference only: training forwards, backward and training workspace
 *      sizes are UNSUPPORTED, nothing written; clstm_quantize refuses a
 *      quantized model, NaN or Inf parameters (ARG) and a matrix of over
 *      65536 columns (UNSUPPORTED), leaving *out NULL
 *   3. clstm_save_buffer -> clstm_load_buffer: the same int8 tensors,
 *      parameters and output bits
 *   4. every int8 kernel (clstm_int8_kernel_limit) at 1 and 2 threads gives
 *      the same output bits on a model with every feature
 *   5. hostile quantized files (bad scales, a -128 weight, a renamed or
 *      reshaped scale, bad metadata, every truncation, byte flips): FORMAT,
 *      no model, and -- under ASan and valgrind -- nothing leaked on the
 *      paths that fail after the model and some of its int8 tensors exist.
 *      The messages of each inconsistency: tests/test_quantize_files.py.
 *   6. the activations' quantizer (q8.h) on rows whose max|x| is below
 *      127 / FLT_MAX, where 127 / max|x| overflows (found by the fuzzer)
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clstm.h"
#include "ctest.h"
#include "q8.h" /* clstm_q8_quantize_rows, for 6. */

/* ------------------------------------------------------------ utilities */

static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double urand(uint64_t *s, double lo, double hi)
{
    return lo + (hi - lo) * ((double)(rng_next(s) >> 11) * 0x1.0p-53);
}

static int is_f64(const clstm_model *m)
{
    clstm_config c = clstm_config_default();
    clstm_get_config(m, &c);
    return c.dtype == CLSTM_FLOAT64;
}

/* Element i of m's parameter block, as double. */
static double param(clstm_model *m, size_t i)
{
    void *p;
    size_t n;
    clstm_params(m, &p, &n);
    return is_f64(m) ? ((double *)p)[i] : (double)((float *)p)[i];
}

static void set_param(clstm_model *m, size_t i, double v)
{
    void *p;
    size_t n;
    clstm_params(m, &p, &n);
    if (is_f64(m))
        ((double *)p)[i] = v;
    else
        ((float *)p)[i] = (float)v;
}

/* 1 for the kinds of tensor clstm_quantize makes int8 (clstm.h). */
static int is_int8_name(const char *name)
{
    return strncmp(name, "weight_", 7) == 0 || strcmp(name, "embedding.weight") == 0 ||
           strcmp(name, "head.weight") == 0;
}

/* ------------------------------------------------------------ configs */

typedef struct {
    const char *name;
    int64_t D, H, L, P;
    int bidir, peep, ifg;
    double clip;
    clstm_encoding enc;
    int64_t V, O;
    clstm_dtype dtype;
} qcase;

static const qcase CASES[] = {
    {"bare L2", 5, 16, 2, 0, 0, 0, 0, 0.0, CLSTM_ENCODING_NONE, 0, 0, CLSTM_FLOAT32},
    {"bidir proj peep ifg clip f64", 4, 12, 2, 5, 1, 1, 1, 1.5, CLSTM_ENCODING_NONE, 0, 0,
     CLSTM_FLOAT64},
    {"embedding head", 6, 10, 1, 0, 0, 0, 0, 0.0, CLSTM_ENCODING_EMBEDDING, 11, 11,
     CLSTM_FLOAT32},
    {"onehot bidir head f64", 7, 9, 1, 0, 1, 0, 0, 0.0, CLSTM_ENCODING_ONEHOT, 7, 3,
     CLSTM_FLOAT64},
    {"head proj", 3, 8, 1, 3, 0, 1, 0, 0.0, CLSTM_ENCODING_NONE, 0, 4, CLSTM_FLOAT32},
};

/* Every feature at once; H and B large enough for a team of 2 (q8 splits
 * the batch: 3 rows per thread at least). */
static const qcase EVERYTHING = {"everything", 6, 16, 2, 7, 1, 1, 1, 2.0,
                                 CLSTM_ENCODING_EMBEDDING, 13, 5, CLSTM_FLOAT32};

static clstm_config config_of(const qcase *k)
{
    clstm_config c = clstm_config_default();
    c.input_size = k->D;
    c.hidden_size = k->H;
    c.num_layers = k->L;
    c.proj_size = k->P;
    c.bidirectional = k->bidir;
    c.peepholes = k->peep;
    c.input_forget = k->ifg;
    c.clip = k->clip;
    c.encoding = k->enc;
    c.vocab_size = k->V;
    c.output_size = k->O;
    c.softmax = 0;
    c.dtype = k->dtype;
    return c;
}

static clstm_model *make(const qcase *k, uint64_t seed)
{
    clstm_config c = config_of(k);
    clstm_model *m = NULL;
    if (!CHECK_STATUS(clstm_create(&c, seed, &m), CLSTM_OK)) return NULL;
    return m;
}

static clstm_model *quantize(const clstm_model *f)
{
    clstm_model *q = NULL;
    if (!CHECK_STATUS(clstm_quantize(f, &q), CLSTM_OK)) return NULL;
    return q;
}

/* ------------------------------------------------------------ forward */

/* One call's inputs (double; converted to each model's dtype) and sizes. */
typedef struct {
    int64_t T, B, NL, R, H, W; /* W: out's last axis */
    double *x, *h0, *c0;
    int32_t *ids;
    int64_t *lengths; /* NULL: all T */
} call;

static call make_call(const qcase *k, int64_t T, int64_t B, uint64_t seed)
{
    call c;
    memset(&c, 0, sizeof c);
    const int64_t N = k->bidir ? 2 : 1;
    c.T = T;
    c.B = B;
    c.NL = N * k->L;
    c.R = k->P ? k->P : k->H;
    c.H = k->H;
    c.W = k->O ? k->O : N * c.R;
    uint64_t s = seed;
    if (k->enc == CLSTM_ENCODING_NONE) {
        c.x = xcalloc((size_t)(T * B * k->D), sizeof(double));
        for (int64_t i = 0; i < T * B * k->D; i++) c.x[i] = urand(&s, -1.5, 1.5);
    } else {
        c.ids = xcalloc((size_t)(T * B), sizeof(int32_t));
        for (int64_t i = 0; i < T * B; i++) c.ids[i] = (int32_t)(rng_next(&s) % (uint64_t)k->V);
    }
    c.h0 = xcalloc((size_t)(c.NL * B * c.R), sizeof(double));
    c.c0 = xcalloc((size_t)(c.NL * B * c.H), sizeof(double));
    for (int64_t i = 0; i < c.NL * B * c.R; i++) c.h0[i] = urand(&s, -0.5, 0.5);
    for (int64_t i = 0; i < c.NL * B * c.H; i++) c.c0[i] = urand(&s, -0.5, 0.5);
    return c;
}

static void free_call(call *c)
{
    free(c->x);
    free(c->ids);
    free(c->h0);
    free(c->c0);
    free(c->lengths);
}

static void *to_dtype(int f64, const double *src, size_t n)
{
    if (!src) return NULL;
    void *d = xcalloc(n, f64 ? sizeof(double) : sizeof(float));
    for (size_t i = 0; i < n; i++) {
        if (f64)
            ((double *)d)[i] = src[i];
        else
            ((float *)d)[i] = (float)src[i];
    }
    return d;
}

static void from_dtype(int f64, const void *src, double *dst, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = f64 ? ((const double *)src)[i] : (double)((const float *)src)[i];
}

/* out, hT, cT of one inference forward, as doubles: one array of
 * T*B*W + NL*B*R + NL*B*H (the caller frees it), or NULL on a failed call. */
static double *forward(const clstm_model *m, const call *c)
{
    const int f64 = is_f64(m);
    const size_t no = (size_t)(c->T * c->B * c->W), nh = (size_t)(c->NL * c->B * c->R),
                 nc = (size_t)(c->NL * c->B * c->H);
    size_t nx = 0;
    if (c->x) {
        clstm_config cfg = clstm_config_default();
        clstm_get_config(m, &cfg);
        nx = (size_t)(c->T * c->B * cfg.input_size);
    }
    void *x = to_dtype(f64, c->x, nx), *h0 = to_dtype(f64, c->h0, nh),
         *c0 = to_dtype(f64, c->c0, nc);
    const size_t e = f64 ? sizeof(double) : sizeof(float);
    void *out = xcalloc(no, e), *hT = xcalloc(nh, e), *cT = xcalloc(nc, e);
    size_t ws_bytes = 0;
    void *ws = NULL;
    double *r = NULL;
    clstm_run_options o = clstm_run_options_default();
    o.lengths = c->lengths;
    if (CHECK_STATUS(clstm_model_workspace_size(m, c->T, c->B, 0, &ws_bytes), CLSTM_OK)) {
        ws = xcalloc(ws_bytes, 1);
        if (CHECK_STATUS(clstm_model_forward(m, c->T, c->B, x, c->ids, h0, c0, out, hT, cT, &o,
                                             ws, ws_bytes),
                         CLSTM_OK)) {
            r = xcalloc(no + nh + nc, sizeof(double));
            from_dtype(f64, out, r, no);
            from_dtype(f64, hT, r + no, nh);
            from_dtype(f64, cT, r + no + nh, nc);
        }
    }
    free(x);
    free(h0);
    free(c0);
    free(out);
    free(hT);
    free(cT);
    free(ws);
    return r;
}

static size_t result_size(const call *c)
{
    return (size_t)(c->T * c->B * c->W + c->NL * c->B * (c->R + c->H));
}

/* 1 if both results exist and hold the same bits. */
static int same_bits(const double *a, const double *b, const call *c)
{
    return a && b && memcmp(a, b, result_size(c) * sizeof(double)) == 0;
}

/* ------------------------------------------------------------ 1. the int8 tensors */

/* Checks q's tensors against f's (the float original): int8 where clstm.h
 * says, with the documented scales and rounding; copied otherwise. */
static void check_tensors(clstm_model *f, clstm_model *q, const char *what)
{
    int64_t nt = 0, nq = 0;
    CHECK_STATUS(clstm_num_tensors(q, &nt), CLSTM_OK);
    long bad_q = 0, bad_s = 0, bad_w = 0, bad_block = 0, bad_copy = 0;
    for (int64_t i = 0; i < nt; i++) {
        clstm_tensor_info ti;
        CHECK_STATUS(clstm_tensor_info_get(q, i, &ti), CLSTM_OK);
        const int8_t *w8 = NULL;
        const float *s = NULL;
        const clstm_status st = clstm_tensor_int8(q, i, &w8, &s);
        const int64_t rows = ti.shape[0], cols = ti.shape[1];
        if (!is_int8_name(ti.name)) {
            CHECK(st == CLSTM_ERR_ARG, "%s: %s is not int8, clstm_tensor_int8 gave %d", what,
                  ti.name, (int)st);
            for (int64_t k = 0; k < rows * cols; k++)
                bad_copy += param(q, ti.offset + (size_t)k) !=
                            (double)(float)param(f, ti.offset + (size_t)k);
            continue;
        }
        if (!CHECK(st == CLSTM_OK && w8 && s, "%s: %s: clstm_tensor_int8 gave %d", what, ti.name,
                   (int)st))
            continue;
        nq++;
        for (int64_t r = 0; r < rows; r++) {
            double amax = 0;
            for (int64_t k = 0; k < cols; k++)
                amax = fmax(amax, fabs(param(f, ti.offset + (size_t)(r * cols + k))));
            /* s = max|w| / 127 rounded to float (|fl(v) - v| <= 2^-24 |v|); 1 for zeros */
            const double want = amax > 0 ? amax / 127.0 : 1.0;
            bad_s += !(s[r] > 0) || fabs((double)s[r] - want) > want * 0x1p-24;
            for (int64_t k = 0; k < cols; k++) {
                const int8_t v = w8[r * cols + k];
                const double w = param(f, ti.offset + (size_t)(r * cols + k));
                bad_q += v == -128;
                bad_w += fabs((double)v * s[r] - w) > 0.5 * (double)s[r] * (1 + 1e-12);
                bad_block += param(q, ti.offset + (size_t)(r * cols + k)) !=
                             (double)((float)v * s[r]);
            }
        }
    }
    CHECK(nq > 0, "%s: no int8 tensors", what);
    CHECK(bad_q == 0, "%s: %ld weights outside [-127, 127]", what, bad_q);
    CHECK(bad_s == 0, "%s: %ld scales not max|w_row| / 127", what, bad_s);
    CHECK(bad_w == 0, "%s: %ld weights with |q*s - w| > s/2", what, bad_w);
    CHECK(bad_block == 0, "%s: %ld elements of the float block are not q*s", what, bad_block);
    CHECK(bad_copy == 0, "%s: %ld float tensor elements not copied", what, bad_copy);
}

static void test_quantize_configs(void)
{
    for (size_t ci = 0; ci < sizeof CASES / sizeof *CASES; ci++) {
        const qcase *k = &CASES[ci];
        clstm_model *f = make(k, 100 + ci), *q = NULL;
        if (!f) continue;
        /* a row of zeros (its scale is 1) and a larger row, in weight_hh_l0 */
        clstm_tensor_info ti;
        CHECK_STATUS(clstm_tensor_info_get(f, 1, &ti), CLSTM_OK);
        for (int64_t j = 0; j < ti.shape[1]; j++) {
            set_param(f, ti.offset + (size_t)j, 0.0);
            set_param(f, ti.offset + (size_t)(ti.shape[1] + j), 3.0 * (j % 3 - 1));
        }
        if (!(q = quantize(f))) goto next;
        CHECK(clstm_is_quantized(q) == 1 && clstm_is_quantized(f) == 0, "%s: is_quantized",
              k->name);
        void *gq = (void *)1;
        size_t ngq = 1;
        CHECK(clstm_grads(q, &gq, &ngq) == CLSTM_OK && gq == NULL && ngq == 0 &&
                  clstm_zero_grad(q) == CLSTM_OK,
              "%s: a quantized model has no gradient block", k->name);
        clstm_config cq = clstm_config_default(), cf = cq;
        clstm_get_config(q, &cq);
        clstm_get_config(f, &cf);
        CHECK(cq.dtype == CLSTM_FLOAT32 && cq.hidden_size == cf.hidden_size &&
                  cq.num_layers == cf.num_layers && cq.proj_size == cf.proj_size &&
                  cq.bidirectional == cf.bidirectional && cq.encoding == cf.encoding &&
                  cq.output_size == cf.output_size && cq.clip == cf.clip,
              "%s: the quantized config", k->name);
        check_tensors(f, q, k->name);

        /* the forward: close to the float model's, not equal to it */
        call c = make_call(k, 9, 3, 7 + ci);
        double *yf = forward(f, &c), *yq = forward(q, &c);
        if (yf && yq) {
            double worst = 0;
            for (size_t i = 0; i < result_size(&c); i++) worst = fmax(worst, fabs(yq[i] - yf[i]));
            CHECK(worst > 0 && worst < 0.05, "%s: quantized vs float outputs: max |d| = %g",
                  k->name, worst);
        }
        free(yf);
        free(yq);
        free_call(&c);
    next:
        clstm_free(q);
        clstm_free(f);
    }
}

/* ------------------------------------------------------------ 2. inference only, refusals */

#define POISON 0xA5
static int poisoned(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != POISON) return 0;
    return 1;
}

static void test_inference_only(void)
{
    const qcase *k = &CASES[0];
    clstm_model *f = make(k, 1), *q = f ? quantize(f) : NULL;
    if (!q) goto done;
    enum { T = 3, B = 2 };
    size_t bytes = 4242, inf_bytes = 0;
    CHECK_STATUS(clstm_model_workspace_size(q, T, B, 1, &bytes), CLSTM_ERR_UNSUPPORTED);
    CHECK_STATUS(clstm_workspace_size(q, T, B, 1, &bytes), CLSTM_ERR_UNSUPPORTED);
    CHECK_EQ(bytes, 4242);
    CHECK_STATUS(clstm_model_workspace_size(q, T, B, 0, &inf_bytes), CLSTM_OK);
    size_t train_bytes = 0; /* the float model's training workspace: larger */
    CHECK_STATUS(clstm_model_workspace_size(f, T, B, 1, &train_bytes), CLSTM_OK);
    const size_t wsn = inf_bytes > train_bytes ? inf_bytes : train_bytes;
    float x[T * B * 5], y[T * B * 16], hT[2 * B * 16], cT[2 * B * 16], dx[T * B * 5];
    for (size_t i = 0; i < sizeof x / sizeof *x; i++) x[i] = 0.1f * (float)(i % 7);
    unsigned char *ws = xcalloc(wsn, 1);
    memset(y, POISON, sizeof y);
    memset(hT, POISON, sizeof hT);
    memset(cT, POISON, sizeof cT);
    memset(dx, POISON, sizeof dx);
    memset(ws, POISON, wsn);
    clstm_run_options o = clstm_run_options_default();
    o.train = 1;
    CHECK_STATUS(clstm_model_forward(q, T, B, x, NULL, NULL, NULL, y, hT, cT, &o, ws, wsn),
                 CLSTM_ERR_UNSUPPORTED);
    CHECK_STATUS(clstm_forward_ex(q, T, B, x, NULL, NULL, y, hT, cT, &o, ws, wsn),
                 CLSTM_ERR_UNSUPPORTED);
    CHECK_STATUS(clstm_forward(q, T, B, x, NULL, NULL, y, hT, cT, 1, ws, wsn),
                 CLSTM_ERR_UNSUPPORTED);
    CHECK_STATUS(clstm_model_backward(q, T, B, y, NULL, NULL, dx, NULL, NULL, ws, wsn),
                 CLSTM_ERR_UNSUPPORTED);
    CHECK_STATUS(clstm_backward(q, T, B, y, NULL, NULL, dx, NULL, NULL, ws, wsn),
                 CLSTM_ERR_UNSUPPORTED);
    CHECK(poisoned(y, sizeof y) && poisoned(hT, sizeof hT) && poisoned(cT, sizeof cT) &&
              poisoned(dx, sizeof dx) && poisoned(ws, wsn),
          "a refused training call wrote an output or the workspace");
    /* after a float training forward in the same workspace: still refused */
    CHECK_STATUS(clstm_model_forward(f, T, B, x, NULL, NULL, NULL, y, NULL, NULL, &o, ws, wsn),
                 CLSTM_OK);
    CHECK_STATUS(clstm_model_backward(q, T, B, y, NULL, NULL, NULL, NULL, NULL, ws, wsn),
                 CLSTM_ERR_UNSUPPORTED);
    /* inference runs */
    o.train = 0;
    CHECK_STATUS(clstm_model_forward(q, T, B, x, NULL, NULL, NULL, y, hT, cT, &o, ws, wsn),
                 CLSTM_OK);
    free(ws);
done:
    clstm_free(q);
    clstm_free(f);
}

static int g_sentinel;
#define SENTINEL ((clstm_model *)(void *)&g_sentinel)

static void test_quantize_refuses(void)
{
    const qcase *k = &CASES[1]; /* float64: Inf and NaN of either kind */
    clstm_model *f = make(k, 3), *q = f ? quantize(f) : NULL, *out;
    if (!q) goto done;
    out = SENTINEL;
    CHECK_STATUS(clstm_quantize(q, &out), CLSTM_ERR_ARG);
    CHECK(out == NULL, "quantize(quantized) left *out %p", (void *)out);
    CHECK(clstm_is_quantized(q), "the quantized model changed");

    void *p;
    size_t n;
    clstm_params(f, &p, &n);
    double *before = xcalloc(n, sizeof(double));
    memcpy(before, p, n * sizeof(double));
    const double bad[] = {NAN, INFINITY, -INFINITY};
    const size_t where[] = {0, n / 2, n - 1}; /* a weight, somewhere, the last (a bias) */
    for (size_t b = 0; b < 3; b++)
        for (size_t w = 0; w < 3; w++) {
            ((double *)p)[where[w]] = bad[b];
            out = SENTINEL;
            CHECK_STATUS(clstm_quantize(f, &out), CLSTM_ERR_ARG);
            CHECK(out == NULL, "quantize(%g at %zu) left *out %p", bad[b], where[w], (void *)out);
            ((double *)p)[where[w]] = before[where[w]];
        }
    CHECK(memcmp(p, before, n * sizeof(double)) == 0, "a refused quantize changed the model");
    out = NULL; /* the same model, finite again, quantizes */
    CHECK_STATUS(clstm_quantize(f, &out), CLSTM_OK);
    clstm_free(out);
    free(before);

    /* over 65536 columns: UNSUPPORTED (int32 sums could overflow) */
    clstm_config wide = clstm_config_default();
    wide.input_size = 65537;
    clstm_model *fw = NULL;
    if (CHECK_STATUS(clstm_create(&wide, 1, &fw), CLSTM_OK)) {
        out = SENTINEL;
        CHECK_STATUS(clstm_quantize(fw, &out), CLSTM_ERR_UNSUPPORTED);
        CHECK(out == NULL, "quantize(65537 columns) left *out");
        clstm_free(fw);
    }
    wide.input_size = 65536; /* the limit itself is fine */
    if (CHECK_STATUS(clstm_create(&wide, 1, &fw), CLSTM_OK)) {
        out = NULL;
        CHECK_STATUS(clstm_quantize(fw, &out), CLSTM_OK);
        clstm_free(out);
        clstm_free(fw);
    }
done:
    clstm_free(q);
    clstm_free(f);
}

/* ------------------------------------------------------------ 3. buffers */

static unsigned char *save(const clstm_model *m, size_t *size)
{
    *size = 0;
    if (!CHECK_STATUS(clstm_save_buffer_size(m, size), CLSTM_OK)) return NULL;
    unsigned char *buf = xcalloc(*size, 1);
    size_t written = 0;
    CHECK_STATUS(clstm_save_buffer(m, buf, *size, &written), CLSTM_OK);
    CHECK_EQ(written, *size);
    return buf;
}

/* 1 if a and b (quantized) have the same int8 tensors and parameter block. */
static int same_int8(clstm_model *a, clstm_model *b)
{
    int64_t na = 0, nb = 0;
    clstm_num_tensors(a, &na);
    clstm_num_tensors(b, &nb);
    if (na != nb) return 0;
    for (int64_t i = 0; i < na; i++) {
        clstm_tensor_info ti;
        const int8_t *qa, *qb;
        const float *sa, *sb;
        clstm_tensor_info_get(a, i, &ti);
        const clstm_status st = clstm_tensor_int8(a, i, &qa, &sa);
        if (st != clstm_tensor_int8(b, i, &qb, &sb)) return 0;
        if (st == CLSTM_OK &&
            (memcmp(qa, qb, (size_t)(ti.shape[0] * ti.shape[1])) != 0 ||
             memcmp(sa, sb, sizeof(float) * (size_t)ti.shape[0]) != 0))
            return 0;
    }
    void *pa, *pb;
    size_t ka, kb;
    clstm_params(a, &pa, &ka);
    clstm_params(b, &pb, &kb);
    return ka == kb && memcmp(pa, pb, ka * sizeof(float)) == 0;
}

static void test_buffer_round_trip(void)
{
    const qcase *all[sizeof CASES / sizeof *CASES + 1];
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) all[i] = &CASES[i];
    all[sizeof CASES / sizeof *CASES] = &EVERYTHING;
    for (size_t ci = 0; ci < sizeof all / sizeof *all; ci++) {
        const qcase *k = all[ci];
        clstm_model *f = make(k, 40 + ci), *q = f ? quantize(f) : NULL, *r = NULL;
        size_t size = 0, size2 = 0;
        unsigned char *buf = q ? save(q, &size) : NULL, *again = NULL;
        if (!buf) goto next;
        size_t fsize = 0;
        clstm_save_buffer_size(f, &fsize);
        CHECK(size < fsize, "%s: the int8 file (%zu bytes) is not smaller than the float "
              "one (%zu)", k->name, size, fsize);
        const char *why = NULL;
        if (!CHECK_STATUS(clstm_load_buffer_ex(buf, size, &r, &why), CLSTM_OK)) {
            fprintf(stderr, "%s: %s\n", k->name, why ? why : "");
            goto next;
        }
        CHECK(clstm_is_quantized(r), "%s: loaded model not quantized", k->name);
        CHECK(same_int8(q, r), "%s: loaded int8 tensors or parameters differ", k->name);
        again = save(r, &size2);
        CHECK(again && size2 == size && memcmp(again, buf, size) == 0,
              "%s: the loaded model saves other bytes", k->name);
        call c = make_call(k, 6, 4, 5);
        double *yq = forward(q, &c), *yr = forward(r, &c);
        CHECK(same_bits(yq, yr, &c), "%s: loaded model's outputs differ", k->name);
        free(yq);
        free(yr);
        free_call(&c);
    next:
        free(buf);
        free(again);
        clstm_free(r);
        clstm_free(q);
        clstm_free(f);
    }
}

/* ------------------------------------------------------------ 4. kernels and threads */

static const char *const KERNELS[] = {"portable", "avx2", "avx-vnni", "avx512-vnni"};
enum { NK = sizeof KERNELS / sizeof *KERNELS };

static int kernel_index(const char *name)
{
    for (int i = 0; name && i < NK; i++)
        if (strcmp(name, KERNELS[i]) == 0) return i;
    return -1;
}

/* Every kernel the CPU has (at or below each limit), at 1 and 2 threads,
 * against the portable kernel at 1 thread, on model k and calls c. */
static void kernels_and_threads(const qcase *k, call *calls, int ncalls)
{
    clstm_model *f = make(k, 77), *q = f ? quantize(f) : NULL;
    double **ref = xcalloc((size_t)ncalls, sizeof *ref);
    if (!q) goto done;
    const int best = kernel_index(clstm_int8_kernel());
    CHECK(best >= 0, "clstm_int8_kernel() = \"%s\"", clstm_int8_kernel());
    CHECK_STATUS(clstm_int8_kernel_limit("portable"), CLSTM_OK);
    CHECK(strcmp(clstm_int8_kernel(), "portable") == 0, "limit portable: %s runs",
          clstm_int8_kernel());
    CHECK_STATUS(clstm_set_num_threads(1), CLSTM_OK);
    for (int j = 0; j < ncalls; j++) ref[j] = forward(q, &calls[j]);

    int ran[NK] = {0};
    for (int lim = 0; lim < NK; lim++) {
        CHECK_STATUS(clstm_int8_kernel_limit(KERNELS[lim]), CLSTM_OK);
        const char *active = clstm_int8_kernel();
        const int a = kernel_index(active);
        CHECK(a >= 0 && a <= lim && a <= best, "limit %s: %s runs (best %s)", KERNELS[lim],
              active ? active : "(null)", KERNELS[best < 0 ? 0 : best]);
        if (a < 0) continue;
        ran[a] = 1;
        for (int threads = 1; threads <= 2; threads++) {
            CHECK_STATUS(clstm_set_num_threads(threads), CLSTM_OK);
            for (int j = 0; j < ncalls; j++)
                for (int again = 0; again < (threads > 1 ? 3 : 1); again++) { /* races */
                    double *y = forward(q, &calls[j]);
                    CHECK(same_bits(y, ref[j], &calls[j]),
                          "%s: kernel %s (limit %s), %d threads, T=%lld B=%lld: outputs "
                          "differ from portable's at 1 thread",
                          k->name, active, KERNELS[lim], threads, (long long)calls[j].T,
                          (long long)calls[j].B);
                    free(y);
                }
        }
    }
    CHECK(ran[0], "the portable kernel never ran");
    CHECK(ran[best < 0 ? 0 : best], "the best kernel never ran");
    CHECK_STATUS(clstm_int8_kernel_limit(KERNELS[NK - 1]), CLSTM_OK); /* no limit */
    CHECK(kernel_index(clstm_int8_kernel()) == best, "the kernel after restoring: %s",
          clstm_int8_kernel());
done:
    for (int j = 0; j < ncalls; j++) free(ref[j]);
    free(ref);
    clstm_free(q);
    clstm_free(f);
}

/* Three layers and a projection, no encoding or head: T past the 32-step
 * inference chunk, so layers and chunks follow each other in one team
 * with no stage barrier between them. */
static const qcase BARE_DEEP = {"bare deep proj", 6, 16, 3, 5, 0, 0, 0, 0.0,
                                CLSTM_ENCODING_NONE, 0, 0, CLSTM_FLOAT32};

static void test_kernels_and_threads(void)
{
    const int nt0 = clstm_get_num_threads();
    const int64_t w0 = clstm_get_min_thread_work();
    CHECK_STATUS(clstm_set_min_thread_work(0), CLSTM_OK); /* split whenever B allows */
    /* B = 1 (one thread), B = 7 and 13 (two threads: 3 rows each at least),
     * with lengths (one 0, one short) */
    call every[2] = {make_call(&EVERYTHING, 5, 1, 11), make_call(&EVERYTHING, 5, 7, 12)};
    call deep[2] = {make_call(&BARE_DEEP, 40, 7, 13), make_call(&BARE_DEEP, 70, 13, 14)};
    every[1].lengths = xcalloc(7, sizeof(int64_t));
    deep[1].lengths = xcalloc(13, sizeof(int64_t));
    for (int b = 0; b < 13; b++) {
        if (b < 7) every[1].lengths[b] = b == 2 ? 0 : b == 4 ? 2 : 5;
        deep[1].lengths[b] = b == 2 ? 0 : b == 4 ? 33 : b == 9 ? 5 : 70;
    }
    kernels_and_threads(&EVERYTHING, every, 2);
    kernels_and_threads(&BARE_DEEP, deep, 2);
    for (int j = 0; j < 2; j++) {
        free_call(&every[j]);
        free_call(&deep[j]);
    }
    CHECK_STATUS(clstm_set_num_threads(nt0), CLSTM_OK);
    CHECK_STATUS(clstm_set_min_thread_work(w0), CLSTM_OK);
}

/* ------------------------------------------------------------ 5. hostile files */

/* Load a buffer: FORMAT and no model expected. */
static void expect_format(const unsigned char *buf, size_t size, const char *what)
{
    clstm_model *m = SENTINEL;
    const char *why = NULL;
    const clstm_status st = clstm_load_buffer_ex(buf, size, &m, &why);
    CHECK(st == CLSTM_ERR_FORMAT && m == NULL && why && why[0],
          "%s: status %d (%s), *out %p, why \"%s\"", what, (int)st, clstm_status_string(st),
          (void *)m, why ? why : "(null)");
    if (st == CLSTM_OK && m != SENTINEL) clstm_free(m);
}

/* The file's header length N (its JSON is at 8, its data at 8 + N). */
static size_t header_len(const unsigned char *f)
{
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | f[i];
    return (size_t)n;
}

/* The data byte range of tensor `name` in file f: 1 if found. */
static int tensor_range(const unsigned char *f, const char *name, size_t *begin, size_t *end)
{
    const size_t n = header_len(f);
    char *json = xcalloc(n + 1, 1), key[96];
    memcpy(json, f + 8, n);
    snprintf(key, sizeof key, "\"%s\":{", name);
    const char *at = strstr(json, key), *off = at ? strstr(at, "\"data_offsets\":[") : NULL;
    unsigned long long b = 0, e = 0;
    const int ok = off && sscanf(off, "\"data_offsets\":[%llu,%llu]", &b, &e) == 2;
    free(json);
    *begin = 8 + n + (size_t)b;
    *end = 8 + n + (size_t)e;
    return CHECK(ok, "tensor %s not in the file", name);
}

/* f (size bytes) with the first `from` of its header replaced by `to`, the
 * header length rewritten; *out_size its size. NULL (a failed check) when
 * `from` is not in the header. */
static unsigned char *edit_header(const unsigned char *f, size_t size, const char *from,
                                  const char *to, size_t *out_size)
{
    const size_t n = header_len(f);
    char *json = xcalloc(n + 1, 1);
    memcpy(json, f + 8, n);
    char *at = strstr(json, from);
    if (!CHECK(at != NULL, "\"%s\" not in the header", from)) {
        free(json);
        return NULL;
    }
    const size_t n2 = n - strlen(from) + strlen(to);
    unsigned char *g = xcalloc(size - n + n2, 1);
    for (int i = 0; i < 8; i++) g[i] = (unsigned char)((uint64_t)n2 >> (8 * i));
    const size_t pre = (size_t)(at - json);
    memcpy(g + 8, json, pre);
    memcpy(g + 8 + pre, to, strlen(to));
    memcpy(g + 8 + pre + strlen(to), at + strlen(from), n - pre - strlen(from));
    memcpy(g + 8 + n2, f + 8 + n, size - 8 - n);
    *out_size = size - n + n2;
    free(json);
    return g;
}

static void expect_header_edit(const unsigned char *f, size_t size, const char *from,
                               const char *to)
{
    size_t s2;
    unsigned char *g = edit_header(f, size, from, to, &s2);
    if (!g) return;
    char what[200];
    snprintf(what, sizeof what, "\"%.60s\" -> \"%.60s\"", from, to);
    expect_format(g, s2, what);
    free(g);
}

static void test_hostile_files(void)
{
    const qcase *k = &EVERYTHING;
    clstm_model *f = make(k, 5), *q = f ? quantize(f) : NULL;
    size_t size = 0;
    unsigned char *file = q ? save(q, &size) : NULL;
    if (!file) goto done;
    unsigned char *g = xcalloc(size, 1);
    size_t b, e;
    char scale_shape[96];
    snprintf(scale_shape, sizeof scale_shape, "\"head.weight.scale\":{\"dtype\":\"F32\","
             "\"shape\":[%lld", (long long)k->O);

    /* the data: the head's tensors come last in block order, so the model
     * and every int8 tensor before them exist when these fail */
    const float bad_scales[] = {0.0f, -0.0f, -1.0f, NAN, INFINITY, -INFINITY};
    if (tensor_range(file, "head.weight.scale", &b, &e)) {
        CHECK_EQ(e - b, 4 * k->O);
        for (size_t i = 0; i < sizeof bad_scales / sizeof *bad_scales; i++) {
            memcpy(g, file, size);
            memcpy(g + e - 4, &bad_scales[i], 4); /* the last row's */
            char what[64];
            snprintf(what, sizeof what, "head.weight.scale[last] = %g", bad_scales[i]);
            expect_format(g, size, what);
        }
        memcpy(g, file, size); /* control: a valid change loads */
        const float two = 2.0f;
        memcpy(g + e - 4, &two, 4);
        clstm_model *r = NULL;
        CHECK_STATUS(clstm_load_buffer(g, size, &r), CLSTM_OK);
        const int8_t *w8;
        const float *s;
        int64_t nt = 0;
        clstm_num_tensors(q, &nt);
        if (r && CHECK_STATUS(clstm_tensor_int8(r, nt - 2, &w8, &s), CLSTM_OK))
            CHECK(s[k->O - 1] == 2.0f, "the edited scale is %g", s[k->O - 1]);
        clstm_free(r);
    }
    if (tensor_range(file, "head.weight", &b, &e)) {
        memcpy(g, file, size);
        g[e - 1] = 0x80; /* -128 */
        expect_format(g, size, "head.weight[last] = -128");
    }
    if (tensor_range(file, "weight_ih_l0", &b, &e)) {
        memcpy(g, file, size);
        g[b] = 0x80;
        expect_format(g, size, "weight_ih_l0[0] = -128");
    }
    if (tensor_range(file, "weight_hr_l1_reverse.scale", &b, &e)) {
        memcpy(g, file, size);
        const float nan = NAN;
        memcpy(g + b, &nan, 4);
        expect_format(g, size, "weight_hr_l1_reverse.scale[0] = NaN");
    }
    /* the header: names, shapes, dtypes, metadata */
    expect_header_edit(file, size, "\"head.weight.scale\"", "\"head.weight.Scale\"");
    {
        char to[112];
        snprintf(to, sizeof to, "%s,1]", scale_shape);
        char from[100];
        snprintf(from, sizeof from, "%s]", scale_shape);
        expect_header_edit(file, size, from, to); /* (O, 1): the same bytes, 2-D */
    }
    expect_header_edit(file, size, "\"head.weight\":{\"dtype\":\"I8\"",
                       "\"head.weight\":{\"dtype\":\"U8\"");
    expect_header_edit(file, size, "\"quantized\":\"int8\"", "\"quantized\":\"int4\"");
    expect_header_edit(file, size, ",\"quantized\":\"int8\"", "");
    expect_header_edit(file, size, "\"dtype\":\"float32\"", "\"dtype\":\"float64\"");

    /* every truncation; byte flips (mostly in the header) */
    long bad = 0;
    for (size_t len = 0; len < size; len++) {
        clstm_model *r = SENTINEL;
        const clstm_status st = clstm_load_buffer(file, len, &r);
        bad += st != CLSTM_ERR_FORMAT || r != NULL;
        if (st == CLSTM_OK && r != SENTINEL) clstm_free(r);
    }
    CHECK(bad == 0, "%ld of %zu truncations did not fail with FORMAT", bad, size);
    uint64_t s = 0x51A7E5ull;
    long ok = 0, other = 0;
    const size_t n = header_len(file);
    for (int it = 0; it < 3000; it++) {
        memcpy(g, file, size);
        for (int j = 0; j < 1 + it % 3; j++) {
            const uint64_t r = rng_next(&s);
            const size_t at = it % 4 ? 8 + (size_t)(r >> 8) % n : (size_t)(r >> 8) % size;
            g[at] ^= (unsigned char)(1u << (r & 7));
        }
        clstm_model *r = NULL;
        const clstm_status st = clstm_load_buffer(g, size, &r);
        ok += st == CLSTM_OK;
        other += (st != CLSTM_OK && st != CLSTM_ERR_FORMAT) || ((st == CLSTM_OK) != (r != NULL));
        clstm_free(r);
    }
    CHECK(other == 0, "%ld byte-flipped files gave a status other than OK/FORMAT", other);
    CHECK(ok > 0 && ok < 3000, "byte flips: %ld of 3000 loaded (expected some, not all)", ok);
    free(g);
done:
    free(file);
    clstm_free(q);
    clstm_free(f);
}

/* ------------------------------------------------------------ 6. tiny rows */

static void test_tiny_rows(void)
{
    enum { M = 3, K = 5 }; /* Kp = 8: the pad must be zero too */
    const float X[M][K] = {{1e-37f, 4e-38f, 0.0f, -1e-37f, 0.0f},
                           {0x1p-149f, 0.0f, -0.0f, 0.0f, 0.0f},
                           {3e-39f, -1e-39f, 0.0f, 1e-45f, 0.0f}};
    const int8_t want[M][K] = {{127, 51, 0, -127, 0}, {127, 0, 0, 0, 0}, {127, -42, 0, 0, 0}};
    int8_t A[M][8];
    float sa[M];
    memset(A, 0x55, sizeof A);
    clstm_q8_quantize_rows(M, K, &X[0][0], K, &A[0][0], 8, sa);
    for (int m = 0; m < M; m++) {
        float amax = 0;
        for (int k = 0; k < K; k++) amax = fmaxf(amax, fabsf(X[m][k]));
        CHECK(sa[m] == amax / 127.0f, "row %d: scale %g, expected %g", m, sa[m], amax / 127.0f);
        for (int k = 0; k < 8; k++)
            CHECK(A[m][k] == (k < K ? want[m][k] : 0), "row %d (max %g): q[%d] = %d, expected %d",
                  m, amax, k, A[m][k], k < K ? want[m][k] : 0);
    }
}

int main(void)
{
    test_quantize_configs();
    test_inference_only();
    test_quantize_refuses();
    test_buffer_round_trip();
    test_kernels_and_threads();
    test_hostile_files();
    test_tiny_rows();
    return ctest_finish();
}
