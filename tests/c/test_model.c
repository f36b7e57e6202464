/*
 * test_model.c -- the whole model (input encoding -> LSTM stack -> Linear
 * head), its losses, softmax, vocabulary, files and config ABI.
 *
 *   1. clstm_model_forward vs an independent double reference: the input
 *      encoded by loops, the LSTM run by a separate BARE model (encoding
 *      none, no head) holding the LSTM prefix of the parameter block, the
 *      head by double loops; every encoding x head x config x dtype, with
 *      lengths (0, < T), B > 1, T = 70 (past the 32-step inference chunk),
 *      training and inference
 *   2. streaming: 40 calls of T = 1 in place == one call of T = 40; the
 *      inference workspace does not grow with T (unidirectional)
 *   3. float64 central finite differences of xent, MSE and sum(w .* out)
 *      losses over every parameter element, x, h0, c0; accumulation and
 *      clstm_zero_grad
 *   4. clstm_loss_xent / clstm_loss_mse against hand formulas, finite
 *      differences, last_only, lengths, errors
 *   5. clstm_softmax
 *   6. errors of clstm_model_forward / clstm_model_backward / clstm_create
 *   7. the vocabulary
 *   8. files: round trips, bad vocab and encoding, torch-style files
 *   9. config ABI: clstm 0.1.0's struct_size
 *  10. tensor enumeration of embedding.weight, head.weight, head.bias
 *
 * Arrays in the test are double and converted to the model's dtype for each
 * call; every check can fail (see the mutations in the report that added it).
 */
#define _POSIX_C_SOURCE 200809L
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clstm.h"
#include "ctest.h"

/* ------------------------------------------------------------ utilities */

static double *dalloc(size_t n) { return xcalloc(n, sizeof(double)); }

/* splitmix64; the state belongs to the caller. */
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

static int32_t irand(uint64_t *s, int64_t n) { return (int32_t)(rng_next(s) % (uint64_t)n); }

static size_t esize(clstm_dtype dt) { return dt == CLSTM_FLOAT32 ? sizeof(float) : sizeof(double); }

static const char *dt_name(clstm_dtype dt) { return dt == CLSTM_FLOAT32 ? "f32" : "f64"; }

static void quantize(clstm_dtype dt, double *a, size_t n)
{
    if (dt == CLSTM_FLOAT32)
        for (size_t i = 0; i < n; i++) a[i] = (double)(float)a[i];
}

/* A new array of the dtype holding src (NULL stays NULL). */
static void *to_dt(clstm_dtype dt, const double *src, size_t n)
{
    if (!src) return NULL;
    void *d = xcalloc(n, esize(dt));
    if (dt == CLSTM_FLOAT32)
        for (size_t i = 0; i < n; i++) ((float *)d)[i] = (float)src[i];
    else
        memcpy(d, src, n * sizeof(double));
    return d;
}

static void from_dt(clstm_dtype dt, const void *src, double *dst, size_t n)
{
    if (dt == CLSTM_FLOAT32)
        for (size_t i = 0; i < n; i++) dst[i] = (double)((const float *)src)[i];
    else
        memcpy(dst, src, n * sizeof(double));
}

/* Worst |a - r| / max(1, |r|); +inf on NaN. */
static double max_relerr(const double *a, const double *r, size_t n, size_t *at)
{
    double worst = 0.0;
    *at = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fabs(a[i] - r[i]) / fmax(1.0, fabs(r[i]));
        if (e != e) e = INFINITY;
        if (e > worst) {
            worst = e;
            *at = i;
        }
    }
    return worst;
}

static int64_t len_of(const int64_t *len, int64_t T, int64_t b) { return len ? len[b] : T; }

typedef struct {
    void *p;
    size_t bytes;
} wsbuf;

static wsbuf ws_model(const clstm_model *m, int64_t T, int64_t B, int train)
{
    wsbuf w = {NULL, 0};
    CHECK_STATUS(clstm_model_workspace_size(m, T, B, train, &w.bytes), CLSTM_OK);
    w.p = xcalloc(w.bytes, 1);
    return w;
}

/* ------------------------------------------------------------ model specs */

typedef struct {
    clstm_encoding enc;
    int64_t V, D, H, L, P; /* D is ignored with ONEHOT (D = V) */
    int bidir;
    int64_t O;
    int softmax;
} mspec;

static int64_t sp_D(mspec s) { return s.enc == CLSTM_ENCODING_ONEHOT ? s.V : s.D; }
static int64_t sp_N(mspec s) { return s.bidir ? 2 : 1; }
static int64_t sp_R(mspec s) { return s.P > 0 ? s.P : s.H; }
static int64_t sp_NR(mspec s) { return sp_N(s) * sp_R(s); }
static int64_t sp_W(mspec s) { return s.O > 0 ? s.O : sp_NR(s); } /* width of out */
static size_t sp_nh(mspec s, int64_t B) { return (size_t)(sp_N(s) * s.L * B * sp_R(s)); }
static size_t sp_nc(mspec s, int64_t B) { return (size_t)(sp_N(s) * s.L * B * s.H); }

static const char *enc_name(clstm_encoding e)
{
    return e == CLSTM_ENCODING_NONE ? "none" : e == CLSTM_ENCODING_ONEHOT ? "onehot" : "embedding";
}

static void spec_str(char *buf, size_t n, mspec s, clstm_dtype dt)
{
    snprintf(buf, n, "%s %s V=%lld D=%lld H=%lld L=%lld P=%lld bidir=%d O=%lld softmax=%d",
             dt_name(dt), enc_name(s.enc), (long long)s.V, (long long)sp_D(s), (long long)s.H,
             (long long)s.L, (long long)s.P, s.bidir, (long long)s.O, s.softmax);
}

static clstm_config spec_config(mspec s, clstm_dtype dt)
{
    clstm_config c = clstm_config_default();
    c.input_size = sp_D(s);
    c.hidden_size = s.H;
    c.num_layers = s.L;
    c.proj_size = s.P;
    c.bidirectional = s.bidir;
    c.dtype = dt;
    c.encoding = s.enc;
    c.vocab_size = s.enc == CLSTM_ENCODING_NONE ? 0 : s.V;
    c.output_size = s.O;
    c.softmax = s.softmax;
    return c;
}

static clstm_model *spec_model(mspec s, clstm_dtype dt, uint64_t seed)
{
    clstm_config c = spec_config(s, dt);
    clstm_model *m = NULL;
    char buf[200];
    spec_str(buf, sizeof buf, s, dt);
    clstm_status st = clstm_create(&c, seed, &m);
    if (!CHECK(st == CLSTM_OK && m, "clstm_create(%s): %s", buf, clstm_status_string(st)))
        return NULL;
    return m;
}

/* The LSTM alone: same LSTM config, encoding none, no head. */
static clstm_model *bare_model(mspec s, clstm_dtype dt)
{
    mspec b = s;
    b.D = sp_D(s);
    b.enc = CLSTM_ENCODING_NONE;
    b.V = 0;
    b.O = 0;
    b.softmax = 0;
    return spec_model(b, dt, 99);
}

/* ------------------------------------------------------------ inputs */

typedef struct {
    mspec s;
    int64_t T, B;
    const int64_t *len;
    double *x;    /* (T, B, D) with NONE (NaN past each length), else NULL */
    int32_t *ids; /* (T, B) for token models (garbage past each length), else NULL */
    double *h0, *c0;
} inputs;

/* Token ids at valid steps are drawn from [0, id_range); past a length they
 * are garbage (negative, >= V, or V - 1, which must all be ignored). */
static inputs make_inputs(mspec s, clstm_dtype dt, int64_t T, int64_t B, const int64_t *len,
                          int64_t id_range, uint64_t seed)
{
    inputs in = {s, T, B, len, NULL, NULL, NULL, NULL};
    const int64_t D = sp_D(s);
    static const int32_t garbage[4] = {-7, 1000, INT32_MAX, -1};
    if (s.enc == CLSTM_ENCODING_NONE) {
        in.x = dalloc((size_t)(T * B * D));
        for (int64_t t = 0; t < T; t++)
            for (int64_t b = 0; b < B; b++)
                for (int64_t d = 0; d < D; d++)
                    in.x[(t * B + b) * D + d] =
                        t < len_of(len, T, b) ? urand(&seed, -1, 1) : NAN;
        quantize(dt, in.x, (size_t)(T * B * D));
    } else {
        in.ids = xcalloc((size_t)(T * B), sizeof(int32_t));
        for (int64_t t = 0; t < T; t++)
            for (int64_t b = 0; b < B; b++)
                in.ids[t * B + b] = t < len_of(len, T, b) ? irand(&seed, id_range)
                                    : (t + b) % 5 == 4 ? (int32_t)(s.V - 1)
                                                       : garbage[(t + b) % 4];
    }
    in.h0 = dalloc(sp_nh(s, B));
    in.c0 = dalloc(sp_nc(s, B));
    for (size_t i = 0; i < sp_nh(s, B); i++) in.h0[i] = urand(&seed, -0.5, 0.5);
    for (size_t i = 0; i < sp_nc(s, B); i++) in.c0[i] = urand(&seed, -0.5, 0.5);
    quantize(dt, in.h0, sp_nh(s, B));
    quantize(dt, in.c0, sp_nc(s, B));
    return in;
}

static void inputs_free(inputs *in)
{
    free(in->x);
    free(in->ids);
    free(in->h0);
    free(in->c0);
}

/* clstm_model_forward with double arrays converted to the model's dtype.
 * out is pre-filled with 777 (so that the zeros past a length must be
 * written); out, hT, cT receive the results (when the call succeeds). */
static clstm_status run_model(const clstm_model *m, clstm_dtype dt, const inputs *in, int train,
                              double *out, double *hT, double *cT, wsbuf w)
{
    const mspec s = in->s;
    const size_t nx = (size_t)(in->T * in->B * sp_D(s)), no = (size_t)(in->T * in->B * sp_W(s));
    const size_t nh = sp_nh(s, in->B), nc = sp_nc(s, in->B);
    void *x = to_dt(dt, in->x, nx), *h0 = to_dt(dt, in->h0, nh), *c0 = to_dt(dt, in->c0, nc);
    double *fill = dalloc(no);
    for (size_t i = 0; i < no; i++) fill[i] = 777.0;
    void *o = to_dt(dt, fill, no), *h = xcalloc(nh, esize(dt)), *c = xcalloc(nc, esize(dt));
    clstm_run_options opt = clstm_run_options_default();
    opt.train = train;
    opt.lengths = in->len;
    clstm_status st =
        clstm_model_forward(m, in->T, in->B, x, in->ids, h0, c0, o, h, c, &opt, w.p, w.bytes);
    if (st == CLSTM_OK) {
        from_dt(dt, o, out, no);
        if (hT) from_dt(dt, h, hT, nh);
        if (cT) from_dt(dt, c, cT, nc);
    }
    free(x);
    free(h0);
    free(c0);
    free(fill);
    free(o);
    free(h);
    free(c);
    return st;
}

/* ------------------------------------------------------------ 1. reference */

/* The reference of the whole model m: encode by loops, the LSTM by a bare
 * model holding the LSTM prefix of m's block (a training forward over the
 * whole sequence: no chunks), the head by double loops. */
static int ref_model(clstm_model *m, clstm_dtype dt, const inputs *in, double *out, double *hT,
                     double *cT)
{
    const mspec s = in->s;
    const int64_t T = in->T, B = in->B, D = sp_D(s), NR = sp_NR(s), O = s.O;
    clstm_model *bare = bare_model(s, dt);
    if (!bare) return 0;
    void *pm, *pb;
    size_t nm, nb;
    CHECK_STATUS(clstm_params(m, &pm, &nm), CLSTM_OK);
    CHECK_STATUS(clstm_params(bare, &pb, &nb), CLSTM_OK);
    memcpy(pb, pm, nb * esize(dt)); /* the LSTM prefix */
    double *p = dalloc(nm);
    from_dt(dt, pm, p, nm);
    const size_t emb = nb, head = nb + (s.enc == CLSTM_ENCODING_EMBEDDING ? (size_t)(s.V * D) : 0);
    CHECK(nm == head + (size_t)(O * NR + O), "block size %zu, expected %zu", nm,
          head + (size_t)(O * NR + O));

    double *e = dalloc((size_t)(T * B * D));
    for (int64_t t = 0; t < T; t++)
        for (int64_t b = 0; b < B; b++) {
            if (t >= len_of(in->len, T, b)) continue; /* 0 past a length */
            double *row = e + (t * B + b) * D;
            if (s.enc == CLSTM_ENCODING_NONE)
                for (int64_t d = 0; d < D; d++) row[d] = in->x[(t * B + b) * D + d];
            else if (s.enc == CLSTM_ENCODING_ONEHOT)
                row[in->ids[t * B + b]] = 1.0;
            else
                for (int64_t d = 0; d < D; d++) row[d] = p[emb + (size_t)in->ids[t * B + b] * D + d];
        }
    void *et = to_dt(dt, e, (size_t)(T * B * D)), *h0 = to_dt(dt, in->h0, sp_nh(s, B)),
         *c0 = to_dt(dt, in->c0, sp_nc(s, B));
    void *yt = xcalloc((size_t)(T * B * NR), esize(dt)), *ht = xcalloc(sp_nh(s, B), esize(dt)),
         *ct = xcalloc(sp_nc(s, B), esize(dt));
    size_t wb;
    CHECK_STATUS(clstm_workspace_size(bare, T, B, 1, &wb), CLSTM_OK);
    void *w = xcalloc(wb, 1);
    clstm_run_options opt = clstm_run_options_default();
    opt.train = 1;
    opt.lengths = in->len;
    int ok = CHECK_STATUS(clstm_forward_ex(bare, T, B, et, h0, c0, yt, ht, ct, &opt, w, wb),
                          CLSTM_OK);
    double *y = dalloc((size_t)(T * B * NR));
    from_dt(dt, yt, y, (size_t)(T * B * NR));
    from_dt(dt, ht, hT, sp_nh(s, B));
    from_dt(dt, ct, cT, sp_nc(s, B));
    for (int64_t t = 0; t < T; t++)
        for (int64_t b = 0; b < B; b++) {
            const double *yr = y + (t * B + b) * NR;
            double *orow = out + (t * B + b) * sp_W(s);
            const int valid = t < len_of(in->len, T, b);
            if (O == 0) {
                for (int64_t j = 0; j < NR; j++) orow[j] = valid ? yr[j] : 0.0;
                continue;
            }
            for (int64_t o = 0; o < O; o++) {
                double z = p[head + (size_t)(O * NR + o)];
                for (int64_t j = 0; j < NR; j++) z += p[head + (size_t)(o * NR + j)] * yr[j];
                orow[o] = valid ? z : 0.0;
            }
        }
    free(p);
    free(e);
    free(et);
    free(h0);
    free(c0);
    free(yt);
    free(ht);
    free(ct);
    free(w);
    free(y);
    clstm_free(bare);
    return ok;
}

static void test_forward_ref(mspec s, clstm_dtype dt, int64_t T, int64_t B, const int64_t *len,
                             int train, uint64_t seed)
{
    char ctx[300], sp[200];
    spec_str(sp, sizeof sp, s, dt);
    snprintf(ctx, sizeof ctx, "%s T=%lld B=%lld lengths=%s train=%d", sp, (long long)T,
             (long long)B, len ? "yes" : "no", train);
    clstm_model *m = spec_model(s, dt, seed);
    if (!m) return;
    inputs in = make_inputs(s, dt, T, B, len, s.V > 0 ? s.V : 1, seed + 1);
    const size_t no = (size_t)(T * B * sp_W(s)), nh = sp_nh(s, B), nc = sp_nc(s, B);
    double *out = dalloc(no), *hT = dalloc(nh), *cT = dalloc(nc);
    double *ro = dalloc(no), *rh = dalloc(nh), *rc = dalloc(nc);
    wsbuf w = ws_model(m, T, B, train);
    if (CHECK_STATUS(run_model(m, dt, &in, train, out, hT, cT, w), CLSTM_OK) &&
        ref_model(m, dt, &in, ro, rh, rc)) {
        /* float64: the same LSTM arithmetic plus a head summed in another
         * order (a few ulps); float32: the head in float against double,
         * and inference chunks grouping the input gemms differently. */
        const double tol = dt == CLSTM_FLOAT64 ? 1e-12 : 1e-5;
        size_t at;
        double e;
        e = max_relerr(out, ro, no, &at);
        CHECK(e <= tol, "%s: out error %.3g > %g at %zu (%.17g vs %.17g)", ctx, e, tol, at,
              out[at], ro[at]);
        e = max_relerr(hT, rh, nh, &at);
        CHECK(e <= tol, "%s: hT error %.3g > %g at %zu", ctx, e, tol, at);
        e = max_relerr(cT, rc, nc, &at);
        CHECK(e <= tol, "%s: cT error %.3g > %g at %zu", ctx, e, tol, at);
        size_t nonzero = 0;
        for (int64_t t = 0; t < T; t++)
            for (int64_t b = 0; b < B; b++)
                for (int64_t o = 0; t >= len_of(len, T, b) && o < sp_W(s); o++)
                    nonzero += out[(t * B + b) * sp_W(s) + o] != 0.0;
        CHECK(nonzero == 0, "%s: %zu outputs past a length are not exactly 0", ctx, nonzero);
    }
    free(w.p);
    free(out);
    free(hT);
    free(cT);
    free(ro);
    free(rh);
    free(rc);
    inputs_free(&in);
    clstm_free(m);
}

static void test_forward_all(void)
{
    static const clstm_encoding encs[3] = {CLSTM_ENCODING_NONE, CLSTM_ENCODING_ONEHOT,
                                           CLSTM_ENCODING_EMBEDDING};
    /* unidirectional L=2; bidirectional L=2; projection (bidirectional) */
    static const mspec cfgs[3] = {
        {CLSTM_ENCODING_NONE, 7, 3, 5, 2, 0, 0, 0, 0},
        {CLSTM_ENCODING_NONE, 7, 3, 4, 2, 0, 1, 0, 0},
        {CLSTM_ENCODING_NONE, 6, 2, 5, 1, 3, 1, 0, 0},
    };
    static const int64_t len3[3] = {5, 0, 2}, len4[4] = {70, 0, 33, 64};
    uint64_t seed = 100;
    for (int dti = 0; dti < 2; dti++)
        for (int e = 0; e < 3; e++)
            for (int h = 0; h < 2; h++)
                for (int c = 0; c < 3; c++) {
                    const clstm_dtype dt = dti ? CLSTM_FLOAT64 : CLSTM_FLOAT32;
                    mspec s = cfgs[c];
                    s.enc = encs[e];
                    s.O = h ? 4 : 0;
                    s.softmax = h && c == 0;
                    for (int train = 0; train < 2; train++) {
                        test_forward_ref(s, dt, 5, 3, len3, train, seed++);
                        test_forward_ref(s, dt, 70, 4, len4, train, seed++);
                        test_forward_ref(s, dt, 70, 2, NULL, train, seed++);
                    }
                    test_forward_ref(s, dt, 1, 1, NULL, 0, seed++);
                }
}

/* ------------------------------------------------------------ 2. streaming */

static void test_streaming(mspec s)
{
    const clstm_dtype dt = CLSTM_FLOAT64;
    const int64_t T = 40, B = 3, W = sp_W(s);
    char sp[200];
    spec_str(sp, sizeof sp, s, dt);
    clstm_model *m = spec_model(s, dt, 5);
    if (!m) return;
    inputs in = make_inputs(s, dt, T, B, NULL, s.V > 0 ? s.V : 1, 6);
    const size_t no = (size_t)(T * B * W), nh = sp_nh(s, B), nc = sp_nc(s, B);
    double *out = dalloc(no), *hT = dalloc(nh), *cT = dalloc(nc);
    wsbuf whole = ws_model(m, T, B, 0), one = ws_model(m, 1, B, 0);
    CHECK_STATUS(run_model(m, dt, &in, 0, out, hT, cT, whole), CLSTM_OK);

    /* hT, cT NULL: the chunks carry the state in the workspace instead */
    {
        double *o2 = dalloc(no);
        clstm_run_options o = clstm_run_options_default();
        if (CHECK_STATUS(clstm_model_forward(m, T, B, in.x, in.ids, in.h0, in.c0, o2, NULL, NULL,
                                             &o, whole.p, whole.bytes),
                         CLSTM_OK))
            CHECK(memcmp(o2, out, no * sizeof(double)) == 0,
                  "%s: out with hT = cT = NULL differs", sp);
        free(o2);
    }
    double *so = dalloc(no), *h = dalloc(nh), *c = dalloc(nc);
    memcpy(h, in.h0, nh * sizeof(double));
    memcpy(c, in.c0, nc * sizeof(double));
    clstm_run_options opt = clstm_run_options_default();
    int ok = 1;
    for (int64_t t = 0; t < T && ok; t++) {
        const int64_t D = sp_D(s);
        ok = CHECK_STATUS(clstm_model_forward(m, 1, B, in.x ? in.x + t * B * D : NULL,
                                              in.ids ? in.ids + t * B : NULL, h, c,
                                              so + t * B * W, h, c, &opt, one.p, one.bytes),
                          CLSTM_OK);
    }
    size_t at;
    double e = max_relerr(so, out, no, &at);
    CHECK(e <= 1e-12, "%s: 40 streamed steps vs one call: out error %.3g at %zu", sp, e, at);
    e = max_relerr(h, hT, nh, &at);
    CHECK(e <= 1e-12, "%s: streamed h error %.3g", sp, e);
    e = max_relerr(c, cT, nc, &at);
    CHECK(e <= 1e-12, "%s: streamed c error %.3g", sp, e);

    size_t b1, b1000, t1, t1000;
    CHECK_STATUS(clstm_model_workspace_size(m, 1, B, 0, &b1), CLSTM_OK);
    CHECK_STATUS(clstm_model_workspace_size(m, 1000, B, 0, &b1000), CLSTM_OK);
    CHECK(b1 == b1000, "%s: inference workspace T=1 %zu bytes, T=1000 %zu", sp, b1, b1000);
    CHECK_STATUS(clstm_model_workspace_size(m, 1, B, 1, &t1), CLSTM_OK);
    CHECK_STATUS(clstm_model_workspace_size(m, 1000, B, 1, &t1000), CLSTM_OK);
    CHECK(t1000 > t1 && t1 >= b1, "%s: training workspace T=1 %zu, T=1000 %zu, inference %zu",
          sp, t1, t1000, b1);
    free(out);
    free(hT);
    free(cT);
    free(so);
    free(h);
    free(c);
    free(whole.p);
    free(one.p);
    inputs_free(&in);
    clstm_free(m);
}

static void test_streaming_all(void)
{
    test_streaming((mspec){CLSTM_ENCODING_EMBEDDING, 7, 3, 4, 2, 0, 0, 3, 1});
    test_streaming((mspec){CLSTM_ENCODING_NONE, 0, 3, 5, 2, 2, 0, 0, 0});
    test_streaming((mspec){CLSTM_ENCODING_ONEHOT, 5, 0, 4, 1, 0, 0, 2, 0});
    /* a bidirectional model's inference workspace grows with T */
    clstm_model *m = spec_model((mspec){CLSTM_ENCODING_ONEHOT, 5, 0, 4, 1, 0, 1, 2, 0},
                                CLSTM_FLOAT32, 1);
    size_t b1, b1000;
    if (m && CHECK_STATUS(clstm_model_workspace_size(m, 1, 2, 0, &b1), CLSTM_OK) &&
        CHECK_STATUS(clstm_model_workspace_size(m, 1000, 2, 0, &b1000), CLSTM_OK))
        CHECK(b1000 > b1, "bidirectional inference workspace T=1 %zu, T=1000 %zu", b1, b1000);
    clstm_free(m);
}

/* ------------------------------------------------------------ 3. gradients */

#define GRAD_FLOOR 1e-4
#define GRAD_TOL 1e-6

typedef enum { LOSS_XENT, LOSS_MSE, LOSS_DOT } loss_kind;

typedef struct {
    clstm_model *m;
    inputs *in;
    loss_kind kind;
    int last_only;
    int32_t *tgt;       /* (T, B) classes, garbage at steps that do not count */
    double *tmse;       /* (T, B, W) */
    double *w, *wh, *wc; /* sum(w .* out) + sum(wh .* hT) + sum(wc .* cT) */
    double *out, *hT, *cT;
    wsbuf wi; /* inference workspace for the evaluations */
} gctx;

static double loss_value(gctx *g, const double *out, const double *hT, const double *cT,
                         double *dout)
{
    const inputs *in = g->in;
    const int64_t W = sp_W(in->s);
    const size_t no = (size_t)(in->T * in->B * W);
    double l = NAN;
    if (g->kind == LOSS_XENT) {
        if (clstm_loss_xent(CLSTM_FLOAT64, in->T, in->B, W, out, g->tgt, in->len, g->last_only,
                            &l, dout) != CLSTM_OK)
            return NAN;
    } else if (g->kind == LOSS_MSE) {
        if (clstm_loss_mse(CLSTM_FLOAT64, in->T, in->B, W, out, g->tmse, in->len, g->last_only,
                           &l, dout) != CLSTM_OK)
            return NAN;
    } else {
        l = 0.0;
        for (size_t i = 0; i < no; i++) l += g->w[i] * out[i];
        for (size_t i = 0; i < sp_nh(in->s, in->B); i++) l += g->wh[i] * hT[i];
        for (size_t i = 0; i < sp_nc(in->s, in->B); i++) l += g->wc[i] * cT[i];
        if (dout) memcpy(dout, g->w, no * sizeof(double));
    }
    return l;
}

static double gloss(gctx *g)
{
    if (run_model(g->m, CLSTM_FLOAT64, g->in, 0, g->out, g->hT, g->cT, g->wi) != CLSTM_OK)
        return NAN;
    return loss_value(g, g->out, g->hT, g->cT, NULL);
}

static double grad_relerr(double fd, double an)
{
    double e = fabs(fd - an) / fmax(fmax(fabs(fd), fabs(an)), GRAD_FLOOR);
    return e == e ? e : INFINITY;
}

/* Best relative error over a sweep of steps of d loss / d v[i]. */
static double fd_elem(gctx *g, double *v, size_t i, double an, double *fd_out)
{
    static const double steps[] = {1e-4, 1e-5, 1e-6};
    const double orig = v[i];
    double best = INFINITY;
    *fd_out = NAN;
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        const double xp = orig + steps[k], xm = orig - steps[k];
        v[i] = xp;
        const double lp = gloss(g);
        v[i] = xm;
        const double lm = gloss(g);
        const double fd = (lp - lm) / (xp - xm), e = grad_relerr(fd, an);
        if (!(e >= best)) {
            best = e;
            *fd_out = fd;
        }
    }
    v[i] = orig;
    return best;
}

/* Every element of v (NaN elements, inputs past a length, skipped). */
static void fd_array(gctx *g, double *v, const double *an, size_t n, const char *what,
                     const char *ctx)
{
    double worst = 0.0, worst_fd = 0.0, fd;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i] != v[i]) continue;
        const double e = fd_elem(g, v, i, an[i], &fd);
        if (!(e <= worst)) {
            worst = e;
            worst_i = i;
            worst_fd = fd;
        }
    }
    CHECK(worst <= GRAD_TOL,
          "%s: d loss / d %s: relative error %.3g > %g at %zu (finite difference %.12g, "
          "backward %.12g)",
          ctx, what, worst, GRAD_TOL, worst_i, worst_fd, n ? an[worst_i] : 0.0);
}

/* One training forward + loss + backward: the analytic gradients (the
 * parameter gradient is what the backward ADDS to the block). */
static clstm_status train_step(gctx *g, double *loss, double *dx, double *dh0, double *dc0)
{
    const inputs *in = g->in;
    const mspec s = in->s;
    const size_t no = (size_t)(in->T * in->B * sp_W(s));
    double *out = dalloc(no), *hT = dalloc(sp_nh(s, in->B)), *cT = dalloc(sp_nc(s, in->B));
    double *dout = dalloc(no);
    wsbuf wt = ws_model(g->m, in->T, in->B, 1);
    clstm_status st = run_model(g->m, CLSTM_FLOAT64, in, 1, out, hT, cT, wt);
    if (st == CLSTM_OK) {
        *loss = loss_value(g, out, hT, cT, dout);
        const int dot = g->kind == LOSS_DOT;
        st = clstm_model_backward(g->m, in->T, in->B, dout, dot ? g->wh : NULL,
                                  dot ? g->wc : NULL, dx, dh0, dc0, wt.p, wt.bytes);
    }
    free(out);
    free(hT);
    free(cT);
    free(dout);
    free(wt.p);
    return st;
}

static void test_gradcheck(mspec s, int64_t T, int64_t B, const int64_t *len, loss_kind kind,
                           int last_only, uint64_t seed)
{
    char ctx[300], sp[200];
    static const char *const kinds[3] = {"xent", "mse", "sum(w.*out)"};
    spec_str(sp, sizeof sp, s, CLSTM_FLOAT64);
    snprintf(ctx, sizeof ctx, "gradcheck %s T=%lld B=%lld lengths=%s loss=%s last_only=%d", sp,
             (long long)T, (long long)B, len ? "yes" : "no", kinds[kind], last_only);
    clstm_model *m = spec_model(s, CLSTM_FLOAT64, seed);
    if (!m) return;
    /* ids at valid steps from [0, V-1): the last embedding row is unused */
    inputs in = make_inputs(s, CLSTM_FLOAT64, T, B, len, s.V > 1 ? s.V - 1 : 1, seed + 7);
    const int64_t W = sp_W(s), D = sp_D(s);
    const size_t no = (size_t)(T * B * W), nh = sp_nh(s, B), nc = sp_nc(s, B);
    const size_t nx = (size_t)(T * B * D);
    gctx g = {m, &in, kind, last_only, NULL, NULL, NULL, NULL, NULL,
              dalloc(no), dalloc(nh), dalloc(nc), ws_model(m, T, B, 0)};
    g.tgt = xcalloc((size_t)(T * B), sizeof(int32_t));
    g.tmse = dalloc(no);
    g.w = dalloc(no);
    g.wh = dalloc(nh);
    g.wc = dalloc(nc);
    for (int64_t t = 0; t < T; t++)
        for (int64_t b = 0; b < B; b++) {
            const int64_t l = len_of(len, T, b);
            const int counted = last_only ? t == l - 1 : t < l;
            g.tgt[t * B + b] = counted ? irand(&seed, W) : -7; /* must not be read */
        }
    for (size_t i = 0; i < no; i++) g.tmse[i] = urand(&seed, -1, 1);
    for (size_t i = 0; i < no; i++) g.w[i] = urand(&seed, -1, 1);
    for (size_t i = 0; i < nh; i++) g.wh[i] = urand(&seed, -1, 1);
    for (size_t i = 0; i < nc; i++) g.wc[i] = urand(&seed, -1, 1);

    double *dx = s.enc == CLSTM_ENCODING_NONE ? dalloc(nx) : NULL;
    double *dh0 = dalloc(nh), *dc0 = dalloc(nc), loss = NAN;
    for (size_t i = 0; dx && i < nx; i++) dx[i] = 555.0; /* past a length: must become 0 */
    void *pv, *gv;
    size_t np, ng;
    CHECK_STATUS(clstm_params(m, &pv, &np), CLSTM_OK);
    CHECK_STATUS(clstm_grads(m, &gv, &ng), CLSTM_OK);
    double *params = pv, *grad = dalloc(np);
    CHECK_STATUS(clstm_zero_grad(m), CLSTM_OK);
    if (!CHECK(train_step(&g, &loss, dx, dh0, dc0) == CLSTM_OK, "%s: training step failed", ctx))
        goto done;
    memcpy(grad, gv, np * sizeof(double));
    const double li = gloss(&g);
    CHECK(fabs(li - loss) <= 1e-12 * fmax(1.0, fabs(loss)),
          "%s: inference loss %.17g, training loss %.17g", ctx, li, loss);

    fd_array(&g, params, grad, np, "every parameter", ctx);
    /* the last embedding row is never used at a valid step: exactly 0 */
    if (s.enc == CLSTM_ENCODING_EMBEDDING) {
        clstm_model *bare = bare_model(s, CLSTM_FLOAT64);
        void *pb;
        size_t nb;
        if (bare && CHECK_STATUS(clstm_params(bare, &pb, &nb), CLSTM_OK)) {
            size_t nonzero = 0;
            for (int64_t d = 0; d < D; d++) nonzero += grad[nb + (size_t)((s.V - 1) * D + d)] != 0.0;
            CHECK(nonzero == 0, "%s: %zu gradients of the unused embedding row are not 0", ctx,
                  nonzero);
            double used = 0.0;
            for (int64_t i = 0; i < (s.V - 1) * D; i++) used += fabs(grad[nb + (size_t)i]);
            CHECK(used > 0.0, "%s: the used embedding rows have no gradient", ctx);
        }
        clstm_free(bare);
    }
    if (dx) {
        fd_array(&g, in.x, dx, nx, "x", ctx);
        size_t bad = 0;
        for (size_t i = 0; i < nx; i++) bad += in.x[i] != in.x[i] && dx[i] != 0.0;
        CHECK(bad == 0, "%s: %zu elements of dx past a length are not 0", ctx, bad);
    }
    fd_array(&g, in.h0, dh0, nh, "h0", ctx);
    fd_array(&g, in.c0, dc0, nc, "c0", ctx);
done:
    free(grad);
    free(dx);
    free(dh0);
    free(dc0);
    free(g.tgt);
    free(g.tmse);
    free(g.w);
    free(g.wh);
    free(g.wc);
    free(g.out);
    free(g.hT);
    free(g.cT);
    free(g.wi.p);
    inputs_free(&in);
    clstm_free(m);
}

/* Two forward + backward pairs add twice the gradient; zero_grad resets. */
static void test_accumulation(mspec s, const int64_t *len)
{
    const int64_t T = 4, B = 3;
    char sp[200];
    spec_str(sp, sizeof sp, s, CLSTM_FLOAT64);
    clstm_model *m = spec_model(s, CLSTM_FLOAT64, 31);
    if (!m) return;
    inputs in = make_inputs(s, CLSTM_FLOAT64, T, B, len, s.V > 0 ? s.V : 1, 32);
    const size_t no = (size_t)(T * B * sp_W(s)), nh = sp_nh(s, B), nc = sp_nc(s, B);
    gctx g = {m, &in, LOSS_DOT, 0, NULL, NULL, dalloc(no), dalloc(nh), dalloc(nc),
              NULL, NULL, NULL, {NULL, 0}};
    uint64_t seed = 33;
    for (size_t i = 0; i < no; i++) g.w[i] = urand(&seed, -1, 1);
    for (size_t i = 0; i < nh; i++) g.wh[i] = urand(&seed, -1, 1);
    for (size_t i = 0; i < nc; i++) g.wc[i] = urand(&seed, -1, 1);
    void *gv;
    size_t n;
    double loss, *dh1 = dalloc(nh), *dh2 = dalloc(nh);
    CHECK_STATUS(clstm_grads(m, &gv, &n), CLSTM_OK);
    double *g1 = dalloc(n);
    CHECK_STATUS(clstm_zero_grad(m), CLSTM_OK);
    if (CHECK_STATUS(train_step(&g, &loss, NULL, dh1, NULL), CLSTM_OK)) {
        memcpy(g1, gv, n * sizeof(double));
        if (CHECK_STATUS(train_step(&g, &loss, NULL, dh2, NULL), CLSTM_OK)) {
            double worst = 0.0, mag = 0.0;
            for (size_t i = 0; i < n; i++) {
                worst = fmax(worst, fabs(((double *)gv)[i] - 2.0 * g1[i]) /
                                        fmax(1e-3, fabs(2.0 * g1[i])));
                mag += fabs(g1[i]);
            }
            CHECK(worst <= 1e-12 && mag > 0.0,
                  "%s: two backwards give %.3g relative from twice one (|g| = %g)", sp, worst,
                  mag);
            CHECK(memcmp(dh1, dh2, nh * sizeof(double)) == 0,
                  "%s: dh0 is accumulated, not written", sp);
        }
    }
    CHECK_STATUS(clstm_zero_grad(m), CLSTM_OK);
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i++) nonzero += ((double *)gv)[i] != 0.0;
    CHECK(nonzero == 0, "%s: %zu gradients not zero after clstm_zero_grad", sp, nonzero);
    free(g1);
    free(dh1);
    free(dh2);
    free(g.w);
    free(g.wh);
    free(g.wc);
    inputs_free(&in);
    clstm_free(m);
}

static void test_gradients_all(void)
{
    static const int64_t len3[3] = {4, 0, 2}, len3b[3] = {3, 4, 0}, len3c[3] = {1, 0, 4};
    const mspec emb = {CLSTM_ENCODING_EMBEDDING, 6, 3, 3, 2, 0, 0, 4, 1};
    test_gradcheck(emb, 4, 3, len3, LOSS_XENT, 0, 1);
    test_gradcheck(emb, 4, 3, len3, LOSS_XENT, 1, 2);
    test_gradcheck(emb, 4, 3, NULL, LOSS_MSE, 1, 3);
    test_gradcheck((mspec){CLSTM_ENCODING_ONEHOT, 5, 0, 3, 1, 2, 1, 3, 0}, 4, 3, len3b,
                   LOSS_MSE, 0, 4);
    test_gradcheck((mspec){CLSTM_ENCODING_NONE, 0, 3, 3, 2, 0, 1, 0, 0}, 4, 3, len3c, LOSS_DOT,
                   0, 5);
    test_gradcheck((mspec){CLSTM_ENCODING_NONE, 0, 2, 4, 1, 2, 0, 3, 0}, 3, 2, NULL, LOSS_DOT,
                   0, 6);
    test_gradcheck((mspec){CLSTM_ENCODING_NONE, 0, 3, 3, 1, 0, 1, 4, 1}, 4, 3, len3, LOSS_XENT,
                   1, 7);
    test_gradcheck((mspec){CLSTM_ENCODING_EMBEDDING, 5, 2, 3, 1, 0, 1, 2, 0}, 4, 3, len3b,
                   LOSS_DOT, 0, 8);
    test_gradcheck((mspec){CLSTM_ENCODING_ONEHOT, 4, 0, 3, 2, 0, 0, 0, 0}, 4, 3, len3c,
                   LOSS_DOT, 0, 9);
    test_accumulation(emb, len3);
    test_accumulation((mspec){CLSTM_ENCODING_NONE, 0, 3, 3, 1, 2, 1, 3, 0}, NULL);
}

/* A head big enough to be split over threads: 1 and 4 threads agree with
 * each other (forward, gradients) and with the reference. */
/* 1 thread against 4: the same numbers, and the reference's. */
static void threads_case(mspec s, int64_t T, int64_t B)
{
    static int64_t len[16];
    for (int b = 0; b < B; b++) len[b] = (b * 7) % (T + 1);
    const int saved = clstm_get_num_threads();
    clstm_model *m = spec_model(s, CLSTM_FLOAT64, 3);
    if (!m) return;
    inputs in = make_inputs(s, CLSTM_FLOAT64, T, B, len, s.V, 4);
    const size_t no = (size_t)(T * B * s.O), nh = sp_nh(s, B), nc = sp_nc(s, B);
    gctx g = {m, &in, LOSS_DOT, 0, NULL, NULL, dalloc(no), dalloc(nh), dalloc(nc),
              NULL, NULL, NULL, {NULL, 0}};
    uint64_t seed = 5;
    for (size_t i = 0; i < no; i++) g.w[i] = urand(&seed, -1, 1);
    void *gv;
    size_t n;
    CHECK_STATUS(clstm_grads(m, &gv, &n), CLSTM_OK);
    double *grad[2] = {dalloc(n), dalloc(n)}, *out[2] = {dalloc(no), dalloc(no)};
    double *hT = dalloc(nh), *cT = dalloc(nc), *ro = dalloc(no), *rh = dalloc(nh),
           *rc = dalloc(nc);
    const int threads[2] = {1, 4};
    for (int k = 0; k < 2; k++) {
        double loss;
        CHECK_STATUS(clstm_set_num_threads(threads[k]), CLSTM_OK);
        wsbuf w = ws_model(m, T, B, 0);
        CHECK_STATUS(run_model(m, CLSTM_FLOAT64, &in, 0, out[k], hT, cT, w), CLSTM_OK);
        free(w.p);
        CHECK_STATUS(clstm_zero_grad(m), CLSTM_OK);
        CHECK_STATUS(train_step(&g, &loss, NULL, NULL, NULL), CLSTM_OK);
        memcpy(grad[k], gv, n * sizeof(double));
    }
    CHECK_STATUS(clstm_set_num_threads(saved > 0 ? saved : 1), CLSTM_OK);
    size_t at;
    double e = max_relerr(out[1], out[0], no, &at);
    CHECK(e <= 1e-12, "threads: out with 4 threads differs by %.3g", e);
    e = max_relerr(grad[1], grad[0], n, &at);
    CHECK(e <= 1e-12, "threads: gradients with 4 threads differ by %.3g at %zu", e, at);
    if (ref_model(m, CLSTM_FLOAT64, &in, ro, rh, rc)) {
        e = max_relerr(out[1], ro, no, &at);
        CHECK(e <= 1e-12, "threads: out vs the reference %.3g at %zu", e, at);
    }
    free(grad[0]);
    free(grad[1]);
    free(out[0]);
    free(out[1]);
    free(hT);
    free(cT);
    free(ro);
    free(rh);
    free(rc);
    free(g.w);
    free(g.wh);
    free(g.wc);
    inputs_free(&in);
    clstm_free(m);
}

static void test_threads(void)
{
    threads_case((mspec){CLSTM_ENCODING_EMBEDDING, 10, 4, 8, 1, 0, 1, 16, 0}, 64, 16);
    /* a head worth more threads than the LSTM (H = 8 gets one): the team
     * grows for the head, and the LSTM's extra threads stay idle */
    threads_case((mspec){CLSTM_ENCODING_EMBEDDING, 10, 4, 8, 2, 0, 0, 5000, 0}, 9, 2);
}

/* ------------------------------------------------------------ 4. losses */

/* The mean of -log softmax(z)[y] (xent) or of (z - y)^2 over the counted
 * steps, by hand, with its gradient. */
static double ref_loss(int mse, int64_t T, int64_t B, int64_t O, const double *z,
                       const int32_t *tc, const double *tr, const int64_t *len, int last_only,
                       double *g)
{
    double total = 0.0;
    int64_t count = 0;
    memset(g, 0, (size_t)(T * B * O) * sizeof(double));
    for (int64_t b = 0; b < B; b++) {
        const int64_t l = len_of(len, T, b);
        for (int64_t t = last_only ? l - 1 : 0; t >= 0 && t < l; t++) {
            const double *zr = z + (t * B + b) * O;
            count++;
            if (mse) {
                for (int64_t o = 0; o < O; o++) total += pow(zr[o] - tr[(t * B + b) * O + o], 2);
            } else {
                double mx = zr[0], s = 0.0;
                for (int64_t o = 1; o < O; o++) mx = fmax(mx, zr[o]);
                for (int64_t o = 0; o < O; o++) s += exp(zr[o] - mx);
                total += mx + log(s) - zr[tc[t * B + b]];
            }
            if (last_only) break;
        }
    }
    if (count == 0) return 0.0;
    const double scale = 1.0 / ((double)count * (mse ? (double)O : 1.0));
    for (int64_t b = 0; b < B; b++) {
        const int64_t l = len_of(len, T, b);
        for (int64_t t = last_only ? l - 1 : 0; t >= 0 && t < l; t++) {
            const double *zr = z + (t * B + b) * O;
            double *gr = g + (t * B + b) * O;
            double mx = zr[0], s = 0.0;
            for (int64_t o = 1; o < O; o++) mx = fmax(mx, zr[o]);
            for (int64_t o = 0; o < O; o++) s += exp(zr[o] - mx);
            for (int64_t o = 0; o < O; o++)
                gr[o] = mse ? 2.0 * scale * (zr[o] - tr[(t * B + b) * O + o])
                            : scale * (exp(zr[o] - mx) / s - (o == tc[t * B + b]));
            if (last_only) break;
        }
    }
    return total * scale;
}

static clstm_status call_loss(int mse, clstm_dtype dt, int64_t T, int64_t B, int64_t O,
                              const void *z, const int32_t *tc, const void *tr,
                              const int64_t *len, int last_only, double *loss, void *g)
{
    return mse ? clstm_loss_mse(dt, T, B, O, z, tr, len, last_only, loss, g)
               : clstm_loss_xent(dt, T, B, O, z, tc, len, last_only, loss, g);
}

static void test_loss_case(int mse, clstm_dtype dt, const int64_t *len, int last_only,
                           uint64_t seed)
{
    enum { T = 3, B = 4, O = 5 };
    const size_t n = T * B * O;
    char ctx[120];
    snprintf(ctx, sizeof ctx, "%s %s lengths=%s last_only=%d", mse ? "mse" : "xent",
             dt_name(dt), len ? "yes" : "no", last_only);
    double z[T * B * O], tr[T * B * O], g[T * B * O], rg[T * B * O];
    int32_t tc[T * B];
    for (size_t i = 0; i < n; i++) {
        z[i] = urand(&seed, -3, 3);
        tr[i] = urand(&seed, -1, 1);
    }
    quantize(dt, z, n);
    quantize(dt, tr, n);
    for (int64_t t = 0; t < T; t++)
        for (int64_t b = 0; b < B; b++) {
            const int64_t l = len_of(len, T, b);
            const int counted = last_only ? t == l - 1 : t < l;
            tc[t * B + b] = counted ? irand(&seed, O) : -7; /* garbage: must not be read */
            for (int64_t o = 0; !counted && o < O; o++)
                tr[(t * B + b) * O + o] = NAN; /* MSE: must not be read either */
        }
    const double ref = ref_loss(mse, T, B, O, z, tc, tr, len, last_only, rg);
    void *zt = to_dt(dt, z, n), *trt = to_dt(dt, tr, n), *gt = xcalloc(n, esize(dt));
    for (size_t i = 0; i < n * esize(dt); i++) ((unsigned char *)gt)[i] = 0x7F; /* garbage */
    double loss = NAN;
    if (CHECK_STATUS(call_loss(mse, dt, T, B, O, zt, tc, trt, len, last_only, &loss, gt),
                     CLSTM_OK)) {
        const double tol = dt == CLSTM_FLOAT64 ? 1e-13 : 1e-6;
        CHECK(fabs(loss - ref) <= tol * fmax(1.0, fabs(ref)), "%s: loss %.17g, expected %.17g",
              ctx, loss, ref);
        from_dt(dt, gt, g, n);
        size_t at;
        const double e = max_relerr(g, rg, n, &at);
        CHECK(e <= tol, "%s: dout error %.3g at %zu (%.17g vs %.17g)", ctx, e, at, g[at], rg[at]);
        double none = NAN;
        CHECK_STATUS(call_loss(mse, dt, T, B, O, zt, tc, trt, len, last_only, &none, NULL),
                     CLSTM_OK);
        CHECK(none == loss, "%s: loss without dout %.17g, with %.17g", ctx, none, loss);
    }
    if (dt == CLSTM_FLOAT64) { /* finite differences of the loss value */
        double worst = 0.0;
        size_t wi = 0;
        for (size_t i = 0; i < n; i++) {
            static const double steps[3] = {1e-3, 1e-4, 1e-5};
            double e = INFINITY;
            for (int k = 0; k < 3; k++) {
                const double orig = z[i], h = steps[k];
                double lp, lm;
                z[i] = orig + h;
                call_loss(mse, dt, T, B, O, z, tc, tr, len, last_only, &lp, NULL);
                z[i] = orig - h;
                call_loss(mse, dt, T, B, O, z, tc, tr, len, last_only, &lm, NULL);
                z[i] = orig;
                e = fmin(e, grad_relerr((lp - lm) / (2 * h), g[i]));
            }
            if (e > worst) {
                worst = e;
                wi = i;
            }
        }
        CHECK(worst <= 1e-6, "%s: dout vs finite differences: %.3g at %zu", ctx, worst, wi);
    }
    free(zt);
    free(trt);
    free(gt);
}

/* Label smoothing: the gradient by finite differences of the loss (float64),
 * eps = 0 the plain loss bit for bit, and eps outside [0, 1] refused. */
static void test_label_smoothing(void)
{
    enum { T = 3, B = 2, O = 4 };
    const int64_t len[B] = {3, 1};
    double z[T * B * O], g[T * B * O], g0[T * B * O], loss, plain;
    int32_t tc[T * B];
    uint64_t seed = 77;
    for (int i = 0; i < T * B * O; i++) z[i] = urand(&seed, -3, 3);
    for (int i = 0; i < T * B; i++) tc[i] = irand(&seed, O);
    CHECK_STATUS(clstm_loss_xent_smoothed(CLSTM_FLOAT64, T, B, O, z, tc, len, 0, 0.0, &loss, g),
                 CLSTM_OK);
    CHECK_STATUS(clstm_loss_xent(CLSTM_FLOAT64, T, B, O, z, tc, len, 0, &plain, g0), CLSTM_OK);
    CHECK(loss == plain && memcmp(g, g0, sizeof g) == 0, "eps 0 differs from the plain loss");
    CHECK_STATUS(clstm_loss_xent_smoothed(CLSTM_FLOAT64, T, B, O, z, tc, len, 0, 0.3, &loss, g),
                 CLSTM_OK);
    double worst = 0;
    for (int i = 0; i < T * B * O; i++) {
        const double orig = z[i], h = 1e-5;
        double lp, lm;
        z[i] = orig + h;
        clstm_loss_xent_smoothed(CLSTM_FLOAT64, T, B, O, z, tc, len, 0, 0.3, &lp, NULL);
        z[i] = orig - h;
        clstm_loss_xent_smoothed(CLSTM_FLOAT64, T, B, O, z, tc, len, 0, 0.3, &lm, NULL);
        z[i] = orig;
        worst = fmax(worst, grad_relerr((lp - lm) / (2 * h), g[i]));
    }
    CHECK(worst < 1e-7, "label smoothing: gradient vs finite differences %.3g", worst);
    const double bad[3] = {-0.01, 1.01, NAN};
    for (int k = 0; k < 3; k++)
        CHECK_STATUS(clstm_loss_xent_smoothed(CLSTM_FLOAT64, T, B, O, z, tc, len, 0, bad[k],
                                              &loss, g),
                     CLSTM_ERR_ARG);
}

static void test_losses(void)
{
    test_label_smoothing();
    static const int64_t len[4] = {3, 1, 0, 2}, zeros[4] = {0, 0, 0, 0};
    uint64_t seed = 40;
    for (int mse = 0; mse < 2; mse++)
        for (int dti = 0; dti < 2; dti++)
            for (int last = 0; last < 2; last++) {
                const clstm_dtype dt = dti ? CLSTM_FLOAT64 : CLSTM_FLOAT32;
                test_loss_case(mse, dt, len, last, seed++);
                test_loss_case(mse, dt, NULL, last, seed++);
            }

    {
        /* T=2 B=2 O=2, lengths {2, 1}: last_only counts (t=1,b=0) and
         * (t=0,b=1), targets there 1 and 0; the rest is garbage. */
        const double z[8] = {9, 9, 50, -50, 1, 2, 9, 9};
        const int32_t tc[4] = {-7, 0, 1, -7};
        const int64_t l[2] = {2, 1};
        double loss = NAN, g[8];
        const double want =
            0.5 * ((log(exp(1.0) + exp(2.0)) - 2.0) + (log1p(exp(-100.0)) + 0.0));
        if (CHECK_STATUS(clstm_loss_xent(CLSTM_FLOAT64, 2, 2, 2, z, tc, l, 1, &loss, g),
                         CLSTM_OK))
            CHECK(fabs(loss - want) <= 1e-15, "last_only hand value %.17g, expected %.17g", loss,
                  want);
        CHECK(g[0] == 0 && g[1] == 0 && g[6] == 0 && g[7] == 0,
              "dout at steps not counted: %g %g %g %g", g[0], g[1], g[6], g[7]);
        /* MSE: the mean over counted steps and O outputs */
        const double tr[8] = {NAN, NAN, 1, 1, 0, 0, NAN, NAN};
        if (CHECK_STATUS(clstm_loss_mse(CLSTM_FLOAT64, 2, 2, 2, z, tr, l, 1, &loss, g),
                         CLSTM_OK)) {
            const double w2 = (49.0 * 49.0 + 51.0 * 51.0 + 1.0 + 4.0) / 4.0;
            CHECK(fabs(loss - w2) <= 1e-12, "mse hand value %.17g, expected %.17g", loss, w2);
        }
    }
    /* B > 64 (the lengths no longer fit the library's stack array) */
    {
        enum { T2 = 3, B2 = 70, O2 = 3 };
        double *z = dalloc(T2 * B2 * O2), *g = dalloc(T2 * B2 * O2), *rg = dalloc(T2 * B2 * O2);
        int32_t *tc = xcalloc(T2 * B2, sizeof(int32_t));
        int64_t l[B2];
        for (int i = 0; i < T2 * B2 * O2; i++) z[i] = urand(&seed, -2, 2);
        for (int b = 0; b < B2; b++) l[b] = b % (T2 + 1);
        for (int i = 0; i < T2 * B2; i++) tc[i] = (int32_t)(i % O2);
        for (int last = 0; last < 2; last++) {
            double loss = NAN;
            const double ref = ref_loss(0, T2, B2, O2, z, tc, NULL, l, last, rg);
            if (CHECK_STATUS(clstm_loss_xent(CLSTM_FLOAT64, T2, B2, O2, z, tc, l, last, &loss, g),
                             CLSTM_OK)) {
                size_t at;
                CHECK(fabs(loss - ref) <= 1e-13 && max_relerr(g, rg, T2 * B2 * O2, &at) <= 1e-13,
                      "B=70 last_only=%d: loss %.17g, expected %.17g", last, loss, ref);
            }
        }
        free(z);
        free(g);
        free(rg);
        free(tc);
    }
    /* nothing counted: loss 0 and dout all 0 (not just untouched) */
    for (int last = 0; last < 2; last++)
        for (int mse = 0; mse < 2; mse++) {
            double z[4 * 3 * 2], g[4 * 3 * 2];
            int32_t tc[4 * 3];
            for (int i = 0; i < 24; i++) {
                z[i] = i;
                g[i] = 123.0;
            }
            for (int i = 0; i < 12; i++) tc[i] = -7;
            double loss = NAN;
            if (CHECK_STATUS(call_loss(mse, CLSTM_FLOAT64, 3, 4, 2, z, tc, z, zeros, last, &loss,
                                       g),
                             CLSTM_OK)) {
                int nz = 0;
                for (int i = 0; i < 24; i++) nz += g[i] != 0.0;
                CHECK(loss == 0.0 && nz == 0,
                      "nothing counted (mse=%d last=%d): loss %g, %d dout nonzero", mse, last,
                      loss, nz);
            }
        }

    /* errors: NULL, SIZE, DTYPE, ARG; nothing written */
    {
        double z[3 * 2 * 4] = {0}, g[24], loss = 42.0, tr[24] = {0};
        int32_t tc[6] = {0, 1, 2, 3, 0, 1};
        const int64_t lbad[2] = {3, 4}, lneg[2] = {-1, 2}, lok[2] = {3, 1};
        for (int i = 0; i < 24; i++) g[i] = 5.0;
        for (int mse = 0; mse < 2; mse++) {
            const void *tg = mse ? (const void *)tr : (const void *)tc;
#define LOSS(dt, T_, B_, O_, zz, t, l, lo, res, gg)                                         \
    (mse ? clstm_loss_mse(dt, T_, B_, O_, zz, t, l, lo, res, gg)                            \
         : clstm_loss_xent(dt, T_, B_, O_, zz, (const int32_t *)(t), l, lo, res, gg))
            CHECK_STATUS(LOSS(CLSTM_FLOAT64, 3, 2, 4, NULL, tg, NULL, 0, &loss, g), CLSTM_ERR_NULL);
            CHECK_STATUS(LOSS(CLSTM_FLOAT64, 3, 2, 4, z, NULL, NULL, 0, &loss, g), CLSTM_ERR_NULL);
            CHECK_STATUS(LOSS(CLSTM_FLOAT64, 3, 2, 4, z, tg, NULL, 0, NULL, g), CLSTM_ERR_NULL);
            CHECK_STATUS(LOSS(CLSTM_FLOAT64, 0, 2, 4, z, tg, NULL, 0, &loss, g), CLSTM_ERR_SIZE);
            CHECK_STATUS(LOSS(CLSTM_FLOAT64, 3, 0, 4, z, tg, NULL, 0, &loss, g), CLSTM_ERR_SIZE);
            CHECK_STATUS(LOSS(CLSTM_FLOAT64, 3, 2, 0, z, tg, NULL, 0, &loss, g), CLSTM_ERR_SIZE);
            CHECK_STATUS(LOSS(CLSTM_FLOAT64, -1, 2, 4, z, tg, NULL, 0, &loss, g), CLSTM_ERR_SIZE);
            CHECK_STATUS(LOSS((clstm_dtype)2, 3, 2, 4, z, tg, NULL, 0, &loss, g), CLSTM_ERR_DTYPE);
            CHECK_STATUS(LOSS((clstm_dtype)-1, 3, 2, 4, z, tg, NULL, 0, &loss, g),
                         CLSTM_ERR_DTYPE);
            CHECK_STATUS(LOSS(CLSTM_FLOAT64, 3, 2, 4, z, tg, lbad, 0, &loss, g), CLSTM_ERR_ARG);
            CHECK_STATUS(LOSS(CLSTM_FLOAT64, 3, 2, 4, z, tg, lneg, 1, &loss, g), CLSTM_ERR_ARG);
            CHECK_STATUS(LOSS(CLSTM_FLOAT64, 3, 2, 4, z, tg, lok, 0, &loss, g), CLSTM_OK);
#undef LOSS
        }
        loss = 42.0;
        for (int i = 0; i < 24; i++) g[i] = 5.0;
        /* a target outside [0, O) at a counted step: ARG; at a step not
         * counted it is not read */
        tc[5] = 4; /* (t=2, b=1): past lok[1] = 1, and not its last step */
        CHECK_STATUS(clstm_loss_xent(CLSTM_FLOAT64, 3, 2, 4, z, tc, lok, 0, &loss, g), CLSTM_OK);
        CHECK_STATUS(clstm_loss_xent(CLSTM_FLOAT64, 3, 2, 4, z, tc, lok, 1, &loss, g), CLSTM_OK);
        loss = 42.0;
        for (int i = 0; i < 24; i++) g[i] = 5.0;
        tc[1] = 4; /* (t=0, b=1): counted, the last step of b=1 */
        CHECK_STATUS(clstm_loss_xent(CLSTM_FLOAT64, 3, 2, 4, z, tc, lok, 1, &loss, g),
                     CLSTM_ERR_ARG);
        tc[1] = -1;
        CHECK_STATUS(clstm_loss_xent(CLSTM_FLOAT64, 3, 2, 4, z, tc, lok, 0, &loss, g),
                     CLSTM_ERR_ARG);
        tc[1] = 1;
        tc[0] = 4; /* (t=0, b=0): counted with last_only 0 only */
        CHECK_STATUS(clstm_loss_xent(CLSTM_FLOAT64, 3, 2, 4, z, tc, lok, 0, &loss, g),
                     CLSTM_ERR_ARG);
        int untouched = loss == 42.0;
        for (int i = 0; i < 24; i++) untouched &= g[i] == 5.0;
        CHECK(untouched, "a failed loss call wrote its outputs");
        CHECK_STATUS(clstm_loss_xent(CLSTM_FLOAT64, 3, 2, 4, z, tc, lok, 1, &loss, g), CLSTM_OK);
    }
}

/* ------------------------------------------------------------ 5. softmax */

static void test_softmax(void)
{
    const double z[2 * 3] = {1.0, 2.0, 3.0, -1.0, 0.5, 0.25};
    double p[6], q[6];
    for (double temp = 0.5; temp <= 2.0; temp *= 2.0) {
        if (!CHECK_STATUS(clstm_softmax(CLSTM_FLOAT64, 2, 3, z, temp, p), CLSTM_OK)) continue;
        for (int r = 0; r < 2; r++) {
            double s = 0.0, den = 0.0;
            for (int j = 0; j < 3; j++) den += exp(z[r * 3 + j] / temp);
            for (int j = 0; j < 3; j++) {
                const double want = exp(z[r * 3 + j] / temp) / den;
                CHECK(fabs(p[r * 3 + j] - want) <= 1e-15,
                      "softmax T=%g [%d][%d] = %.17g, expected %.17g", temp, r, j, p[r * 3 + j],
                      want);
                s += p[r * 3 + j];
            }
            CHECK(fabs(s - 1.0) <= 1e-15, "softmax row %d sums to %.17g", r, s);
        }
    }
    /* float32, in place */
    float f[6] = {1.0f, 2.0f, 3.0f, -1.0f, 0.5f, 0.25f};
    if (CHECK_STATUS(clstm_softmax(CLSTM_FLOAT32, 2, 3, f, 1.0, f), CLSTM_OK)) {
        const double den = exp(1.0) + exp(2.0) + exp(3.0);
        CHECK(fabs(f[2] - exp(3.0) / den) <= 1e-7 && fabs(f[0] - exp(1.0) / den) <= 1e-7,
              "float32 in-place softmax: %g %g", f[0], f[2]);
        CHECK(fabs(f[3] + f[4] + f[5] - 1.0) <= 1e-6, "float32 row sums to %g",
              f[3] + f[4] + f[5]);
    }
    memcpy(q, z, sizeof q);
    CHECK_STATUS(clstm_softmax(CLSTM_FLOAT64, 2, 3, q, 0.5, q), CLSTM_OK);
    CHECK_STATUS(clstm_softmax(CLSTM_FLOAT64, 2, 3, z, 0.5, p), CLSTM_OK);
    CHECK(memcmp(p, q, sizeof p) == 0, "in-place softmax differs from out of place");
    /* large logits: no overflow */
    const double big[2] = {1000.0, 1001.0};
    double pb[2];
    if (CHECK_STATUS(clstm_softmax(CLSTM_FLOAT64, 1, 2, big, 1.0, pb), CLSTM_OK)) {
        const double want = 1.0 / (1.0 + exp(1.0));
        CHECK(fabs(pb[0] - want) <= 1e-15 && fabs(pb[1] - (1.0 - want)) <= 1e-15,
              "softmax(1000, 1001) = %.17g %.17g", pb[0], pb[1]);
    }
    const float bigf[2] = {1000.0f, 1001.0f};
    float pf[2];
    if (CHECK_STATUS(clstm_softmax(CLSTM_FLOAT32, 1, 2, bigf, 1.0, pf), CLSTM_OK))
        CHECK(fabsf(pf[0] - 0.26894142f) <= 1e-7f && isfinite(pf[1]),
              "float32 softmax(1000, 1001) = %g %g", pf[0], pf[1]);
    /* a NaN row is NaN, the other rows are unaffected; k = 1 gives 1 */
    const double zn[4] = {1.0, NAN, 0.0, 0.0};
    double pn[4];
    if (CHECK_STATUS(clstm_softmax(CLSTM_FLOAT64, 2, 2, zn, 1.0, pn), CLSTM_OK))
        CHECK(isnan(pn[0]) && isnan(pn[1]) && pn[2] == 0.5 && pn[3] == 0.5,
              "NaN row: %g %g, other row %g %g", pn[0], pn[1], pn[2], pn[3]);
    const double one = -5.0;
    double pone = 0.0;
    CHECK_STATUS(clstm_softmax(CLSTM_FLOAT64, 1, 1, &one, 3.0, &pone), CLSTM_OK);
    CHECK(pone == 1.0, "softmax of one logit is %g", pone);
    /* errors, nothing written */
    for (int i = 0; i < 6; i++) p[i] = 9.0;
    const double bad_t[5] = {0.0, -1.0, INFINITY, NAN, -INFINITY};
    for (int i = 0; i < 5; i++)
        CHECK_STATUS(clstm_softmax(CLSTM_FLOAT64, 2, 3, z, bad_t[i], p), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_softmax(CLSTM_FLOAT64, 0, 3, z, 1.0, p), CLSTM_ERR_SIZE);
    CHECK_STATUS(clstm_softmax(CLSTM_FLOAT64, 2, 0, z, 1.0, p), CLSTM_ERR_SIZE);
    CHECK_STATUS(clstm_softmax(CLSTM_FLOAT64, -2, 3, z, 1.0, p), CLSTM_ERR_SIZE);
    CHECK_STATUS(clstm_softmax((clstm_dtype)7, 2, 3, z, 1.0, p), CLSTM_ERR_DTYPE);
    CHECK_STATUS(clstm_softmax(CLSTM_FLOAT64, 2, 3, NULL, 1.0, p), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_softmax(CLSTM_FLOAT64, 2, 3, z, 1.0, NULL), CLSTM_ERR_NULL);
    int untouched = 1;
    for (int i = 0; i < 6; i++) untouched &= p[i] == 9.0;
    CHECK(untouched, "a failed softmax wrote p");
}

/* ------------------------------------------------------------ 6. errors */

static void expect_create(clstm_config c, clstm_status want, const char *what)
{
    int dummy;
    clstm_model *m = (clstm_model *)(void *)&dummy;
    clstm_status st = clstm_create(&c, 1, &m);
    CHECK(st == want, "clstm_create with %s: %d (%s), expected %d (%s)", what, (int)st,
          clstm_status_string(st), (int)want, clstm_status_string(want));
    CHECK(m == NULL, "clstm_create with %s: *out not NULL", what);
    if (st == CLSTM_OK && m != (clstm_model *)(void *)&dummy) clstm_free(m);
}

static void test_config_validation(void)
{
    const mspec s = {CLSTM_ENCODING_EMBEDDING, 5, 3, 4, 1, 0, 0, 2, 1};
    clstm_config c = spec_config(s, CLSTM_FLOAT32);
    clstm_model *m = NULL;
    CHECK_STATUS(clstm_create(&c, 1, &m), CLSTM_OK);
    clstm_free(m);
    c.encoding = (clstm_encoding)3;
    expect_create(c, CLSTM_ERR_ARG, "encoding 3");
    c.encoding = (clstm_encoding)-1;
    expect_create(c, CLSTM_ERR_ARG, "encoding -1");
    c = spec_config(s, CLSTM_FLOAT32);
    c.encoding = CLSTM_ENCODING_ONEHOT; /* D = 3 != V = 5 */
    expect_create(c, CLSTM_ERR_SIZE, "onehot with input_size != vocab_size");
    c.input_size = 5;
    c.output_size = 0;
    c.softmax = 0;
    m = NULL;
    CHECK_STATUS(clstm_create(&c, 1, &m), CLSTM_OK);
    clstm_free(m);
    c = spec_config(s, CLSTM_FLOAT32);
    c.vocab_size = 0;
    expect_create(c, CLSTM_ERR_SIZE, "embedding with vocab_size 0");
    c.vocab_size = -3;
    expect_create(c, CLSTM_ERR_SIZE, "embedding with vocab_size -3");
    c = spec_config(s, CLSTM_FLOAT32);
    c.encoding = CLSTM_ENCODING_NONE;
    expect_create(c, CLSTM_ERR_SIZE, "vocab_size 5 with encoding none");
    c = spec_config(s, CLSTM_FLOAT32);
    c.output_size = 0;
    expect_create(c, CLSTM_ERR_ARG, "softmax without a head");
    c = spec_config(s, CLSTM_FLOAT32);
    c.softmax = 2;
    expect_create(c, CLSTM_ERR_ARG, "softmax 2");
    c.softmax = -1;
    expect_create(c, CLSTM_ERR_ARG, "softmax -1");
    c = spec_config(s, CLSTM_FLOAT32);
    c.softmax = 0;
    c.output_size = -1;
    expect_create(c, CLSTM_ERR_SIZE, "output_size -1");
}

static int all_equal(const double *a, size_t n, double v)
{
    for (size_t i = 0; i < n; i++)
        if (!(a[i] == v)) return 0;
    return 1;
}

static void test_forward_errors(void)
{
    enum { T = 4, B = 2, V = 5, D = 3, O = 2 };
    const mspec se = {CLSTM_ENCODING_EMBEDDING, V, D, 3, 1, 0, 0, O, 1};
    const mspec sn = {CLSTM_ENCODING_NONE, 0, D, 3, 1, 0, 0, O, 0};
    clstm_model *me = spec_model(se, CLSTM_FLOAT64, 1), *mn = spec_model(sn, CLSTM_FLOAT64, 1);
    clstm_model *me2 = spec_model(se, CLSTM_FLOAT64, 1);
    if (!me || !mn || !me2) goto out;
    double x[T * B * D], out[T * B * O], hT[B * 3], cT[B * 3], dx[T * B * D];
    int32_t ids[T * B];
    for (int i = 0; i < T * B * D; i++) x[i] = 0.1 * i;
    for (int i = 0; i < T * B; i++) ids[i] = i % V;
    wsbuf we = ws_model(me, T, B, 1), wn = ws_model(mn, T, B, 1);
    clstm_run_options opt = clstm_run_options_default();
    opt.train = 1;
#define RESET()                                                  \
    do {                                                         \
        for (int i_ = 0; i_ < T * B * O; i_++) out[i_] = 777.0;  \
        for (int i_ = 0; i_ < B * 3; i_++) hT[i_] = cT[i_] = 555.0; \
    } while (0)
#define UNTOUCHED(what)                                                                   \
    CHECK(all_equal(out, T * B * O, 777.0) && all_equal(hT, B * 3, 555.0) &&               \
              all_equal(cT, B * 3, 555.0),                                                 \
          "%s: a failed forward wrote its outputs", what)
    RESET();
    CHECK_STATUS(clstm_model_forward(me, T, B, x, ids, NULL, NULL, out, hT, cT, &opt, we.p,
                                     we.bytes),
                 CLSTM_ERR_ARG);
    UNTOUCHED("x given to a token model");
    CHECK_STATUS(clstm_model_forward(mn, T, B, x, ids, NULL, NULL, out, hT, cT, &opt, wn.p,
                                     wn.bytes),
                 CLSTM_ERR_ARG);
    UNTOUCHED("ids given to a none model");
    CHECK_STATUS(clstm_model_forward(me, T, B, x, NULL, NULL, NULL, out, hT, cT, &opt, we.p,
                                     we.bytes),
                 CLSTM_ERR_NULL);
    UNTOUCHED("x only to a token model");
    CHECK_STATUS(clstm_model_forward(mn, T, B, NULL, ids, NULL, NULL, out, hT, cT, &opt, wn.p,
                                     wn.bytes),
                 CLSTM_ERR_NULL);
    UNTOUCHED("ids only to a none model");
    CHECK_STATUS(clstm_model_forward(me, T, B, NULL, NULL, NULL, NULL, out, hT, cT, &opt, we.p,
                                     we.bytes),
                 CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_model_forward(mn, T, B, NULL, NULL, NULL, NULL, out, hT, cT, &opt, wn.p,
                                     wn.bytes),
                 CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_model_forward(mn, T, B, x, NULL, NULL, NULL, NULL, hT, cT, &opt, wn.p,
                                     wn.bytes),
                 CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_model_forward(NULL, T, B, x, NULL, NULL, NULL, out, hT, cT, &opt, wn.p,
                                     wn.bytes),
                 CLSTM_ERR_NULL);
    UNTOUCHED("missing inputs");
    /* an id outside [0, V) at a valid step; garbage past a length is fine */
    static const int32_t bad_ids[4] = {-1, V, INT32_MIN, INT32_MAX};
    for (int k = 0; k < 4; k++) {
        ids[5] = bad_ids[k]; /* t = 2, b = 1 */
        CHECK_STATUS(clstm_model_forward(me, T, B, NULL, ids, NULL, NULL, out, hT, cT, &opt,
                                         we.p, we.bytes),
                     CLSTM_ERR_ARG);
        UNTOUCHED("an id out of range");
    }
    const int64_t l_ok[B] = {4, 2}, l_bad[B] = {4, 5}, l_neg[B] = {-1, 2};
    opt.lengths = l_ok;
    ids[7] = -7; /* t = 3, b = 1: past length 2 */
    if (CHECK_STATUS(clstm_model_forward(me, T, B, NULL, ids, NULL, NULL, out, hT, cT, &opt,
                                         we.p, we.bytes),
                     CLSTM_OK)) {
        double out2[T * B * O];
        memcpy(out2, out, sizeof out);
        ids[5] = 0;
        ids[7] = 1;
        CHECK_STATUS(clstm_model_forward(me, T, B, NULL, ids, NULL, NULL, out, hT, cT, &opt,
                                         we.p, we.bytes),
                     CLSTM_OK);
        CHECK(memcmp(out, out2, sizeof out) == 0, "ids past a length changed the outputs");
    }
    RESET();
    opt.lengths = l_bad;
    CHECK_STATUS(clstm_model_forward(me, T, B, NULL, ids, NULL, NULL, out, hT, cT, &opt, we.p,
                                     we.bytes),
                 CLSTM_ERR_ARG);
    opt.lengths = l_neg;
    CHECK_STATUS(clstm_model_forward(me, T, B, NULL, ids, NULL, NULL, out, hT, cT, &opt, we.p,
                                     we.bytes),
                 CLSTM_ERR_ARG);
    opt.lengths = NULL;
    UNTOUCHED("a bad length");
    /* workspace */
    CHECK_STATUS(clstm_model_forward(me, T, B, NULL, ids, NULL, NULL, out, hT, cT, &opt, we.p,
                                     we.bytes - 1),
                 CLSTM_ERR_WORKSPACE);
    CHECK_STATUS(clstm_model_forward(me, T, B, NULL, ids, NULL, NULL, out, hT, cT, &opt, NULL,
                                     we.bytes),
                 CLSTM_ERR_WORKSPACE);
    {
        size_t inf;
        CHECK_STATUS(clstm_model_workspace_size(me, T, B, 0, &inf), CLSTM_OK);
        opt.train = 0;
        CHECK_STATUS(clstm_model_forward(me, T, B, NULL, ids, NULL, NULL, out, hT, cT, &opt,
                                         we.p, inf - 1),
                     CLSTM_ERR_WORKSPACE);
        opt.train = 1;
        CHECK(inf <= we.bytes, "inference workspace %zu > training %zu", inf, we.bytes);
    }
    UNTOUCHED("a small workspace");
    CHECK_STATUS(clstm_model_forward(me, 0, B, NULL, ids, NULL, NULL, out, hT, cT, &opt, we.p,
                                     we.bytes),
                 CLSTM_ERR_SIZE);
    CHECK_STATUS(clstm_model_forward(me, T, 0, NULL, ids, NULL, NULL, out, hT, cT, &opt, we.p,
                                     we.bytes),
                 CLSTM_ERR_SIZE);
    UNTOUCHED("T or B 0");
    {
        size_t bytes = 7;
        CHECK_STATUS(clstm_model_workspace_size(NULL, T, B, 0, &bytes), CLSTM_ERR_NULL);
        CHECK_STATUS(clstm_model_workspace_size(me, T, B, 0, NULL), CLSTM_ERR_NULL);
        CHECK_STATUS(clstm_model_workspace_size(me, 0, B, 0, &bytes), CLSTM_ERR_SIZE);
        CHECK_STATUS(clstm_model_workspace_size(me, T, -1, 1, &bytes), CLSTM_ERR_SIZE);
        CHECK_STATUS(clstm_model_workspace_size(me, INT64_MAX, INT64_MAX, 1, &bytes),
                     CLSTM_ERR_OVERFLOW);
        CHECK(bytes == 7, "a failed workspace size wrote %zu", bytes);
    }

    /* backward: twice, another model's workspace, dx for tokens, sizes */
    double dout[T * B * O];
    for (int i = 0; i < T * B * O; i++) dout[i] = 0.01 * i;
    ids[5] = 0;
    ids[7] = 1;
    if (CHECK_STATUS(clstm_model_forward(me, T, B, NULL, ids, NULL, NULL, out, hT, cT, &opt,
                                         we.p, we.bytes),
                     CLSTM_OK)) {
        CHECK_STATUS(clstm_model_backward(me2, T, B, dout, NULL, NULL, NULL, NULL, NULL, we.p,
                                          we.bytes),
                     CLSTM_ERR_STATE);
        CHECK_STATUS(clstm_model_backward(me, T, B, dout, NULL, NULL, dx, NULL, NULL, we.p,
                                          we.bytes),
                     CLSTM_ERR_ARG);
        CHECK_STATUS(clstm_model_backward(me, T, B, dout, NULL, NULL, NULL, NULL, NULL, we.p,
                                          we.bytes - 1),
                     CLSTM_ERR_WORKSPACE);
        CHECK_STATUS(clstm_model_backward(me, T, B, dout, NULL, NULL, NULL, NULL, NULL, NULL,
                                          we.bytes),
                     CLSTM_ERR_WORKSPACE);
        CHECK_STATUS(clstm_model_backward(NULL, T, B, dout, NULL, NULL, NULL, NULL, NULL, we.p,
                                          we.bytes),
                     CLSTM_ERR_NULL);
        CHECK_STATUS(clstm_model_backward(me, T - 1, B, dout, NULL, NULL, NULL, NULL, NULL,
                                          we.p, we.bytes),
                     CLSTM_ERR_STATE);
        CHECK_STATUS(clstm_model_backward(me, 0, B, dout, NULL, NULL, NULL, NULL, NULL, we.p,
                                          we.bytes),
                     CLSTM_ERR_SIZE);
        /* none of the failures above consumed the workspace */
        CHECK_STATUS(clstm_model_backward(me, T, B, dout, NULL, NULL, NULL, NULL, NULL, we.p,
                                          we.bytes),
                     CLSTM_OK);
        CHECK_STATUS(clstm_model_backward(me, T, B, dout, NULL, NULL, NULL, NULL, NULL, we.p,
                                          we.bytes),
                     CLSTM_ERR_STATE);
    }
    /* an inference forward does not arm a backward */
    opt.train = 0;
    CHECK_STATUS(clstm_model_forward(me, T, B, NULL, ids, NULL, NULL, out, hT, cT, &opt, we.p,
                                     we.bytes),
                 CLSTM_OK);
    CHECK_STATUS(clstm_model_backward(me, T, B, dout, NULL, NULL, NULL, NULL, NULL, we.p,
                                      we.bytes),
                 CLSTM_ERR_STATE);
    /* a bare LSTM workspace is not a model workspace (NONE model with head) */
    opt.train = 1;
    if (CHECK_STATUS(clstm_model_forward(mn, T, B, x, NULL, NULL, NULL, out, hT, cT, &opt, wn.p,
                                         wn.bytes),
                     CLSTM_OK))
        CHECK_STATUS(clstm_model_backward(mn, T, B, dout, NULL, NULL, dx, NULL, NULL, wn.p,
                                          wn.bytes),
                     CLSTM_OK);
    /* clip > 0: backward unsupported */
    {
        clstm_config c = spec_config(se, CLSTM_FLOAT64);
        c.clip = 3.0;
        clstm_model *mc = NULL;
        if (CHECK_STATUS(clstm_create(&c, 1, &mc), CLSTM_OK)) {
            wsbuf wc = ws_model(mc, T, B, 1);
            if (CHECK_STATUS(clstm_model_forward(mc, T, B, NULL, ids, NULL, NULL, out, hT, cT,
                                                 &opt, wc.p, wc.bytes),
                             CLSTM_OK))
                CHECK_STATUS(clstm_model_backward(mc, T, B, dout, NULL, NULL, NULL, NULL, NULL,
                                                  wc.p, wc.bytes),
                             CLSTM_ERR_UNSUPPORTED);
            free(wc.p);
        }
        clstm_free(mc);
    }
#undef RESET
#undef UNTOUCHED
    free(we.p);
    free(wn.p);
out:
    clstm_free(me);
    clstm_free(me2);
    clstm_free(mn);
}

/* ------------------------------------------------------------ 7. vocabulary */

/* 8 characters: ASCII, quote, backslash, newline, tab, é, 😀 (4 bytes), Z */
static const char VOCAB[] = "a" "\"" "\\" "\n" "\t" "\xC3\xA9" "\xF0\x9F\x98\x80" "Z";
static const size_t VOCAB_LEN[8] = {1, 1, 1, 1, 1, 2, 4, 1};

static void test_vocab(void)
{
    const mspec s = {CLSTM_ENCODING_ONEHOT, 8, 0, 3, 1, 0, 0, 0, 0};
    clstm_model *m = spec_model(s, CLSTM_FLOAT32, 1);
    clstm_model *mn = spec_model((mspec){CLSTM_ENCODING_NONE, 0, 2, 3, 1, 0, 0, 0, 0},
                                 CLSTM_FLOAT32, 1);
    if (!m || !mn) goto out;
    const char *v = (const char *)1;
    size_t n = 99, used = 99;
    int32_t id = -99;
    /* no vocabulary yet */
    CHECK_STATUS(clstm_get_vocab(m, &v, &n), CLSTM_OK);
    CHECK(v == NULL && n == 0, "a model without a vocab gives %p, %zu", (const void *)v, n);
    CHECK_STATUS(clstm_vocab_token(m, 0, &v, &n), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_vocab_lookup(m, "a", 1, &id, &used), CLSTM_ERR_ARG);

    const size_t vb = sizeof VOCAB - 1;
    CHECK_EQ(vb, 12);
    if (!CHECK_STATUS(clstm_set_vocab(m, VOCAB, vb), CLSTM_OK)) goto out;
    CHECK_STATUS(clstm_get_vocab(m, &v, &n), CLSTM_OK);
    CHECK(v && n == vb && memcmp(v, VOCAB, vb) == 0 && v[vb] == '\0',
          "get_vocab does not return the vocab");
    size_t at = 0;
    for (int32_t i = 0; i < 8; i++) {
        const char *tok = NULL;
        size_t tl = 0;
        CHECK_STATUS(clstm_vocab_token(m, i, &tok, &tl), CLSTM_OK);
        CHECK(tok && tl == VOCAB_LEN[i] && memcmp(tok, VOCAB + at, tl) == 0,
              "token %d: %zu bytes", (int)i, tl);
        char text[8];
        memcpy(text, VOCAB + at, VOCAB_LEN[i]);
        memcpy(text + VOCAB_LEN[i], "ab", 2); /* more text after the character */
        id = -99;
        used = 99;
        CHECK_STATUS(clstm_vocab_lookup(m, text, VOCAB_LEN[i] + 2, &id, &used), CLSTM_OK);
        CHECK(id == i && used == VOCAB_LEN[i], "lookup of token %d: id %d, used %zu", (int)i,
              (int)id, used);
        at += VOCAB_LEN[i];
    }
    /* characters not in the vocab: ARG, *used set, *id untouched */
    static const struct {
        const char *s;
        size_t used;
    } absent[4] = {{"q", 1}, {"\xE2\x82\xAC", 3}, {"\xF0\x9F\x98\x81", 4}, {"\xC3\xA8", 2}};
    for (int k = 0; k < 4; k++) {
        id = -99;
        used = 99;
        CHECK_STATUS(clstm_vocab_lookup(m, absent[k].s, strlen(absent[k].s), &id, &used),
                     CLSTM_ERR_ARG);
        CHECK(used == absent[k].used && id == -99, "absent character %d: used %zu, id %d", k,
              used, (int)id);
    }
    /* lookups of invalid text */
    static const char *const inval[5] = {"\xC0\x80", "\x80", "\xE2\x82", "\xED\xA0\x80",
                                         "\xF4\x90\x80\x80"};
    for (int k = 0; k < 5; k++) {
        id = -99;
        CHECK_STATUS(clstm_vocab_lookup(m, inval[k], strlen(inval[k]), &id, &used),
                     CLSTM_ERR_ARG);
        CHECK(id == -99, "invalid lookup %d wrote id", k);
    }
    CHECK_STATUS(clstm_vocab_lookup(m, "\xC3\xA9", 1, &id, &used), CLSTM_ERR_ARG); /* cut */
    CHECK_STATUS(clstm_vocab_lookup(m, "a", 0, &id, &used), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_vocab_lookup(m, NULL, 1, &id, &used), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_vocab_lookup(m, "a", 1, NULL, &used), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_vocab_lookup(m, "a", 1, &id, NULL), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_vocab_lookup(NULL, "a", 1, &id, &used), CLSTM_ERR_NULL);
    /* ids out of range */
    v = (const char *)1;
    n = 99;
    CHECK_STATUS(clstm_vocab_token(m, -1, &v, &n), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_vocab_token(m, 8, &v, &n), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_vocab_token(m, INT32_MIN, &v, &n), CLSTM_ERR_ARG);
    CHECK(v == (const char *)1 && n == 99, "a failed vocab_token wrote its outputs");
    CHECK_STATUS(clstm_vocab_token(m, 0, NULL, &n), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_vocab_token(m, 0, &v, NULL), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_vocab_token(NULL, 0, &v, &n), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_get_vocab(NULL, &v, &n), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_get_vocab(m, NULL, &n), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_get_vocab(m, &v, NULL), CLSTM_ERR_NULL);

    /* set_vocab errors (each leaves the previous vocab in place) */
    static const struct {
        const char *s;
        size_t n;
        const char *what;
    } bad[] = {
        {"abcdefg", 7, "7 characters"},
        {"abcdefghi", 9, "9 characters"},
        {"abcdefga", 8, "a duplicate"},
        {"abc\xC3\xA9" "def\xC3\xA9", 10, "a duplicate é"},
        {"abcdefg\xC0\x80", 9, "overlong NUL"},
        {"abcdefg\x80", 8, "a lone continuation byte"},
        {"abcdefg\xE2\x82", 9, "a truncated sequence"},
        {"abcdefg\xED\xA0\x80", 10, "a surrogate"},
        {"abcdefg\xF4\x90\x80\x80", 11, "past U+10FFFF"},
        {"abc\0defg", 8, "U+0000 inside"},
        {"abcdefgh", 0, "0 bytes"},
        {"", 0, "empty"},
    };
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        clstm_status st = clstm_set_vocab(m, bad[k].s, bad[k].n);
        CHECK(st == CLSTM_ERR_ARG, "set_vocab with %s: %d, expected ARG", bad[k].what, (int)st);
    }
    CHECK_STATUS(clstm_set_vocab(m, NULL, 8), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_set_vocab(NULL, "abcdefgh", 8), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_get_vocab(m, &v, &n), CLSTM_OK);
    CHECK(v && n == vb && memcmp(v, VOCAB, vb) == 0, "a failed set_vocab changed the vocab");
    /* replaced by a new one */
    CHECK_STATUS(clstm_set_vocab(m, "ABCDEFGH", 8), CLSTM_OK);
    CHECK_STATUS(clstm_vocab_lookup(m, "H", 1, &id, &used), CLSTM_OK);
    CHECK(id == 7 && used == 1, "after replacing the vocab, H is %d", (int)id);
    CHECK_STATUS(clstm_vocab_lookup(m, "a", 1, &id, &used), CLSTM_ERR_ARG);
    /* a model without tokens has no vocabulary */
    CHECK_STATUS(clstm_set_vocab(mn, "a", 1), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_set_vocab(mn, "", 0), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_get_vocab(mn, &v, &n), CLSTM_OK);
    CHECK(v == NULL && n == 0, "none model has a vocab");
    CHECK_STATUS(clstm_vocab_token(mn, 0, &v, &n), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_vocab_lookup(mn, "a", 1, &id, &used), CLSTM_ERR_ARG);
out:
    clstm_free(m);
    clstm_free(mn);
}

/* ------------------------------------------------------------ 8. files */

static char g_dir[64];

/* Replace the first `from` in buf[0..n) by `to` of the same length. */
static int patch(unsigned char *buf, size_t n, const char *from, const char *to)
{
    const size_t k = strlen(from);
    if (!CHECK(strlen(to) == k, "patch lengths differ")) return 0;
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(buf + i, from, k) == 0) {
            memcpy(buf + i, to, k);
            return 1;
        }
    return CHECK(0, "\"%s\" not found in the file", from);
}

static void compare_models(clstm_model *a, clstm_model *b, const char *ctx)
{
    clstm_config ca = clstm_config_default(), cb = clstm_config_default();
    CHECK_STATUS(clstm_get_config(a, &ca), CLSTM_OK);
    CHECK_STATUS(clstm_get_config(b, &cb), CLSTM_OK);
    CHECK(ca.input_size == cb.input_size && ca.hidden_size == cb.hidden_size &&
              ca.num_layers == cb.num_layers && ca.proj_size == cb.proj_size &&
              ca.bidirectional == cb.bidirectional && ca.dtype == cb.dtype &&
              ca.peepholes == cb.peepholes && ca.input_forget == cb.input_forget &&
              ca.dropout == cb.dropout && ca.clip == cb.clip && ca.reverse == cb.reverse &&
              ca.gate_activation == cb.gate_activation && ca.gate_alpha == cb.gate_alpha &&
              ca.gate_beta == cb.gate_beta,
          "%s: LSTM config differs after the round trip", ctx);
    CHECK(ca.encoding == cb.encoding && ca.vocab_size == cb.vocab_size &&
              ca.output_size == cb.output_size && ca.softmax == cb.softmax,
          "%s: encoding %d/%d vocab_size %lld/%lld output_size %lld/%lld softmax %d/%d", ctx,
          (int)ca.encoding, (int)cb.encoding, (long long)ca.vocab_size, (long long)cb.vocab_size,
          (long long)ca.output_size, (long long)cb.output_size, ca.softmax, cb.softmax);
    void *pa, *pb;
    size_t na, nb;
    CHECK_STATUS(clstm_params(a, &pa, &na), CLSTM_OK);
    CHECK_STATUS(clstm_params(b, &pb, &nb), CLSTM_OK);
    CHECK(na == nb && memcmp(pa, pb, na * esize(ca.dtype)) == 0,
          "%s: parameter blocks differ (%zu, %zu elements)", ctx, na, nb);
    const char *va, *vb;
    size_t la, lb;
    CHECK_STATUS(clstm_get_vocab(a, &va, &la), CLSTM_OK);
    CHECK_STATUS(clstm_get_vocab(b, &vb, &lb), CLSTM_OK);
    CHECK(la == lb && (la == 0 ? va == NULL && vb == NULL : memcmp(va, vb, la) == 0),
          "%s: vocab differs (%zu vs %zu bytes)", ctx, la, lb);
}

static void test_file_round_trips(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/m.safetensors", g_dir);
    static const clstm_encoding encs[3] = {CLSTM_ENCODING_NONE, CLSTM_ENCODING_ONEHOT,
                                           CLSTM_ENCODING_EMBEDDING};
    uint64_t seed = 70;
    for (int e = 0; e < 3; e++)
        for (int h = 0; h < 3; h++)
            for (int dti = 0; dti < 2; dti++)
                for (int withv = 0; withv < (e ? 2 : 1); withv++) {
                    const clstm_dtype dt = dti ? CLSTM_FLOAT64 : CLSTM_FLOAT32;
                    mspec s = {encs[e], e ? 8 : 0, 3, 4, 2, h == 2 ? 2 : 0, h == 1,
                               h ? 3 : 0, h == 2};
                    char ctx[250];
                    spec_str(ctx, sizeof ctx, s, dt);
                    strcat(ctx, withv ? " vocab" : "");
                    clstm_model *m = spec_model(s, dt, seed++), *l = NULL;
                    if (!m) continue;
                    if (withv) CHECK_STATUS(clstm_set_vocab(m, VOCAB, sizeof VOCAB - 1), CLSTM_OK);
                    if (CHECK_STATUS(clstm_save(m, path), CLSTM_OK) &&
                        CHECK_STATUS(clstm_load(path, &l), CLSTM_OK))
                        compare_models(m, l, ctx);
                    clstm_free(l);
                    clstm_free(m);
                }
    /* a saved vocab with the wrong count, an unknown encoding: FORMAT */
    clstm_model *m = spec_model((mspec){CLSTM_ENCODING_ONEHOT, 8, 0, 3, 1, 0, 0, 2, 1},
                                CLSTM_FLOAT32, 3);
    if (!m) return;
    CHECK_STATUS(clstm_set_vocab(m, VOCAB, sizeof VOCAB - 1), CLSTM_OK);
    size_t n;
    unsigned char *f;
    if (CHECK_STATUS(clstm_save(m, path), CLSTM_OK) && (f = read_all(path, &n))) {
        clstm_model *l = NULL;
        CHECK_STATUS(clstm_load_buffer(f, n, &l), CLSTM_OK);
        clstm_free(l);
        static const char *const patches[][2] = {
            {"\xC3\xA9", "xy"},                         /* 9 characters */
            {"\xF0\x9F\x98\x80", "\xC3\xA9\xC3\xA9"},   /* 9 characters, é 3 times */
            {"\xF0\x9F\x98\x80Z", "\xF0\x9F\x98\x80" "a"}, /* 8 characters, a twice */
            {"\"encoding\":\"onehot\"", "\"encoding\":\"oneHot\""},
            {"\"softmax\":\"1\"", "\"softmax\":\"2\""},
        };
        for (size_t k = 0; k < sizeof patches / sizeof patches[0]; k++) {
            unsigned char *g = xcalloc(n, 1);
            memcpy(g, f, n);
            if (patch(g, n, patches[k][0], patches[k][1])) {
                int dummy;
                l = (clstm_model *)(void *)&dummy;
                CHECK(clstm_load_buffer(g, n, &l) == CLSTM_ERR_FORMAT && l == NULL,
                      "patch %zu: not FORMAT", k);
                const char *why = NULL;
                if (CHECK(write_all(path, g, n), "write %s", path)) {
                    l = (clstm_model *)(void *)&dummy;
                    CHECK(clstm_load_ex(path, &l, &why) == CLSTM_ERR_FORMAT && l == NULL &&
                              why != NULL,
                          "patch %zu from a file: not FORMAT with a reason", k);
                }
            }
            free(g);
        }
        free(f);
    }
    clstm_free(m);
}

/* A file: 8-byte N = strlen(json), the json, then float32 data 0.125 * i. */
static unsigned char *build_file(const char *json, size_t floats, size_t *size)
{
    const size_t n = strlen(json);
    unsigned char *f = xcalloc(8 + n + 4 * floats, 1);
    for (int i = 0; i < 8; i++) f[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(f + 8, json, n);
    for (size_t i = 0; i < floats; i++) {
        const float v = 0.125f * (float)i;
        memcpy(f + 8 + n + 4 * i, &v, 4);
    }
    *size = 8 + n + 4 * floats;
    return f;
}

static void test_torch_style_files(void)
{
    /* D = 2, H = 1, V = 3, no metadata */
    static const char lstm[] =
        "\"weight_ih_l0\":{\"dtype\":\"F32\",\"shape\":[4,2],\"data_offsets\":[0,32]},"
        "\"weight_hh_l0\":{\"dtype\":\"F32\",\"shape\":[4,1],\"data_offsets\":[32,48]},"
        "\"bias_ih_l0\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[48,64]},"
        "\"bias_hh_l0\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[64,80]},"
        "\"embedding.weight\":{\"dtype\":\"F32\",\"shape\":[3,2],\"data_offsets\":[80,104]}";
    static const char head[] =
        ",\"head.weight\":{\"dtype\":\"F32\",\"shape\":[5,1],\"data_offsets\":[104,124]},"
        "\"head.bias\":{\"dtype\":\"F32\",\"shape\":[5],\"data_offsets\":[124,144]}";
    for (int withhead = 0; withhead < 2; withhead++) {
        char json[1024];
        snprintf(json, sizeof json, "{%s%s}", lstm, withhead ? head : "");
        const size_t floats = withhead ? 36 : 26;
        size_t size;
        unsigned char *f = build_file(json, floats, &size);
        clstm_model *m = NULL;
        if (CHECK_STATUS(clstm_load_buffer(f, size, &m), CLSTM_OK)) {
            clstm_config c = clstm_config_default();
            CHECK_STATUS(clstm_get_config(m, &c), CLSTM_OK);
            CHECK(c.encoding == CLSTM_ENCODING_EMBEDDING && c.vocab_size == 3 &&
                      c.input_size == 2 && c.hidden_size == 1 && c.dtype == CLSTM_FLOAT32 &&
                      c.output_size == (withhead ? 5 : 0) && c.softmax == 0,
                  "torch-style file (head %d): encoding %d V %lld D %lld O %lld", withhead,
                  (int)c.encoding, (long long)c.vocab_size, (long long)c.input_size,
                  (long long)c.output_size);
            void *p;
            size_t n;
            CHECK_STATUS(clstm_params(m, &p, &n), CLSTM_OK);
            int same = n == floats;
            for (size_t i = 0; same && i < n; i++) same = ((float *)p)[i] == 0.125f * (float)i;
            CHECK(same, "torch-style file: parameters not the file's (%zu elements)", n);
            const char *v;
            size_t vb;
            CHECK_STATUS(clstm_get_vocab(m, &v, &vb), CLSTM_OK);
            CHECK(v == NULL && vb == 0, "torch-style file has a vocab");
        }
        clstm_free(m);
        free(f);
    }
}

/* ------------------------------------------------------------ 9. ABI */

static void test_abi(void)
{
    const size_t v010 = offsetof(clstm_config, encoding);
    union {
        clstm_config c;
        unsigned char raw[sizeof(clstm_config)];
    } u;
    u.c = clstm_config_default();
    u.c.input_size = 3;
    u.c.hidden_size = 4;
    u.c.num_layers = 2;
    u.c.dtype = CLSTM_FLOAT64;
    u.c.bidirectional = 1;
    memset(u.raw + v010, 0xA5, sizeof u.raw - v010); /* must not be read */
    u.c.struct_size = v010;
    clstm_model *m = NULL;
    if (CHECK_STATUS(clstm_create(&u.c, 1, &m), CLSTM_OK)) {
        clstm_config c = clstm_config_default();
        CHECK_STATUS(clstm_get_config(m, &c), CLSTM_OK);
        CHECK(c.struct_size == sizeof(clstm_config) && c.encoding == CLSTM_ENCODING_NONE &&
                  c.vocab_size == 0 && c.output_size == 0 && c.softmax == 0 &&
                  c.input_size == 3 && c.hidden_size == 4 && c.num_layers == 2 &&
                  c.bidirectional == 1 && c.dtype == CLSTM_FLOAT64,
              "a 0.1.0 config: encoding %d vocab %lld output %lld softmax %d struct_size %zu",
              (int)c.encoding, (long long)c.vocab_size, (long long)c.output_size, c.softmax,
              c.struct_size);
        /* get_config for a 0.1.0 caller writes only 0.1.0's fields */
        union {
            clstm_config c;
            unsigned char raw[sizeof(clstm_config)];
        } o;
        memset(o.raw, 0x5A, sizeof o.raw);
        o.c.struct_size = v010;
        CHECK_STATUS(clstm_get_config(m, &o.c), CLSTM_OK);
        size_t touched = 0;
        for (size_t i = v010; i < sizeof o.raw; i++) touched += o.raw[i] != 0x5A;
        CHECK(touched == 0, "get_config(0.1.0 size) wrote %zu bytes past the old struct",
              touched);
        CHECK(o.c.struct_size == v010 && o.c.input_size == 3 && o.c.hidden_size == 4 &&
                  o.c.num_layers == 2 && o.c.bidirectional == 1 && o.c.clip == 0.0,
              "get_config(0.1.0 size): struct_size %zu input %lld", o.c.struct_size,
              (long long)o.c.input_size);
        /* any other size: the whole struct */
        memset(o.raw, 0x5A, sizeof o.raw);
        o.c.struct_size = 0;
        CHECK_STATUS(clstm_get_config(m, &o.c), CLSTM_OK);
        CHECK(o.c.struct_size == sizeof(clstm_config) && o.c.encoding == CLSTM_ENCODING_NONE &&
                  o.c.softmax == 0,
              "get_config(size 0) did not write the whole struct");
    }
    clstm_free(m);
    /* a 0.1.0 config with a whole model's garbage is still a bare LSTM; and
     * every other smaller size is ARG */
    const size_t bad[] = {0, 8, v010 - 8, v010 - 1, v010 + 1, v010 + 8,
                          sizeof(clstm_config) - 1};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        u.c.struct_size = bad[k];
        if (bad[k] >= sizeof(clstm_config)) continue;
        m = (clstm_model *)(void *)&u;
        clstm_status st = clstm_create(&u.c, 1, &m);
        CHECK(st == CLSTM_ERR_ARG && m == NULL, "struct_size %zu: %d, expected ARG", bad[k],
              (int)st);
        if (st == CLSTM_OK && m != (clstm_model *)(void *)&u) clstm_free(m);
    }
    /* the full size reads the new fields */
    clstm_config c = clstm_config_default();
    c.input_size = 4;
    c.encoding = CLSTM_ENCODING_ONEHOT;
    c.vocab_size = 4;
    c.output_size = 2;
    m = NULL;
    if (CHECK_STATUS(clstm_create(&c, 1, &m), CLSTM_OK)) {
        clstm_config g = clstm_config_default();
        CHECK_STATUS(clstm_get_config(m, &g), CLSTM_OK);
        CHECK(g.encoding == CLSTM_ENCODING_ONEHOT && g.vocab_size == 4 && g.output_size == 2,
              "the full config's new fields were not read");
    }
    clstm_free(m);
}

/* ------------------------------------------------------------ 9b. reverse */

/* Whether the file's bytes hold `text`. */
static int has_text(const unsigned char *f, size_t n, const char *text)
{
    const size_t k = strlen(text);
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(f + i, text, k) == 0) return 1;
    return 0;
}

/* Each of the `count` patches {from, to} of file f (n bytes) makes its
 * load FORMAT. */
static void check_patches_refused(const unsigned char *f, size_t n,
                                  const char *const (*patches)[2], size_t count,
                                  const char *ctx)
{
    for (size_t k = 0; k < count; k++) {
        unsigned char *g = xcalloc(n, 1);
        memcpy(g, f, n);
        if (patch(g, n, patches[k][0], patches[k][1])) {
            clstm_model *l = NULL;
            CHECK(clstm_load_buffer(g, n, &l) == CLSTM_ERR_FORMAT && l == NULL,
                  "%s patch %zu: not FORMAT", ctx, k);
            clstm_free(l);
        }
        free(g);
    }
}

/* File f (n bytes) with `from` patched to `to`, loaded (checked OK), or NULL. */
static clstm_model *load_patched(const unsigned char *f, size_t n, const char *from,
                                 const char *to)
{
    unsigned char *g = xcalloc(n, 1);
    memcpy(g, f, n);
    clstm_model *l = NULL;
    if (patch(g, n, from, to)) CHECK_STATUS(clstm_load_buffer(g, n, &l), CLSTM_OK);
    free(g);
    return l;
}

/* File f relabelled from `version` (its "format_version" pair) to version 1,
 * an older writer's, and loaded: its config into *cfg, and a copy of the
 * user metadata `key` (malloc'd; NULL when absent or not loaded). */
static char *as_version1(const unsigned char *f, size_t n, const char *version,
                         const char *key, clstm_config *cfg)
{
    clstm_model *l = load_patched(f, n, version, "\"format_version\":\"1\"");
    const char *v = NULL;
    char *copy = NULL;
    if (l && CHECK_STATUS(clstm_get_config(l, cfg), CLSTM_OK) &&
        CHECK_STATUS(clstm_get_metadata(l, key, &v), CLSTM_OK) && v) {
        copy = xcalloc(strlen(v) + 1, 1);
        strcpy(copy, v);
    }
    clstm_free(l);
    return copy;
}

/* A model from a config of an older header: `before` its struct_size,
 * `fields` the end of its last field (garbage in its padding and past it
 * must not be read, and get_config must write nothing there). */
static clstm_model *create_older(clstm_config c, size_t before, size_t fields, const char *ctx)
{
    union {
        clstm_config c;
        unsigned char raw[sizeof(clstm_config)];
    } u;
    u.c = c;
    memset(u.raw + fields, 0xA5, sizeof u.raw - fields);
    u.c.struct_size = before;
    clstm_model *m = NULL;
    if (!CHECK_STATUS(clstm_create(&u.c, 1, &m), CLSTM_OK)) return NULL;
    memset(u.raw, 0x5A, sizeof u.raw);
    u.c.struct_size = before;
    CHECK_STATUS(clstm_get_config(m, &u.c), CLSTM_OK);
    size_t touched = 0;
    for (size_t i = fields; i < sizeof u.raw; i++) touched += u.raw[i] != 0x5A;
    CHECK(touched == 0 && u.c.struct_size == before && u.c.hidden_size == c.hidden_size,
          "get_config(the size before %s) wrote %zu bytes past it", ctx, touched);
    return m;
}

/* The reverse flag: its validation, an older caller's config (the one
 * ending before it), no streaming, and its file: version 3 with "reverse",
 * refused when malformed; a forward model may keep user metadata of that
 * name. (Its numbers: tests/test_forward.py etc., REVERSE_CASES.) */
static void test_reverse(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/m.safetensors", g_dir);
    clstm_config c = clstm_config_default();
    c.input_size = 3;
    c.hidden_size = 4;
    c.num_layers = 2;
    clstm_model *m = NULL;
    c.reverse = 2;
    CHECK(clstm_create(&c, 1, &m) == CLSTM_ERR_ARG && m == NULL, "reverse = 2 accepted");
    c.reverse = 1;
    c.bidirectional = 1;
    CHECK(clstm_create(&c, 1, &m) == CLSTM_ERR_ARG && m == NULL,
          "reverse with bidirectional accepted");
    c.bidirectional = 0;

    if ((m = create_older(c, offsetof(clstm_config, reverse), offsetof(clstm_config, reverse),
                          "reverse"))) {
        clstm_config g = clstm_config_default();
        CHECK_STATUS(clstm_get_config(m, &g), CLSTM_OK);
        CHECK(g.reverse == 0, "a config that ends before reverse made a reverse model");
    }
    clstm_free(m);

    m = NULL;
    if (!CHECK_STATUS(clstm_create(&c, 1, &m), CLSTM_OK)) return;
    float h[2 * 4], cs[2 * 4];
    CHECK_STATUS(clstm_state_reset(m, 1, h, cs, 0), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_set_metadata(m, "reverse", "x"), CLSTM_ERR_ARG);
    /* a version 3 file with target_vocab is an encoder-decoder's: reserved */
    CHECK_STATUS(clstm_set_metadata(m, "target_vocab", "5"), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_set_metadata(m, "attention", "dot"), CLSTM_ERR_ARG);
    size_t n;
    unsigned char *f;
    if (CHECK_STATUS(clstm_save(m, path), CLSTM_OK) && (f = read_all(path, &n))) {
        CHECK(has_text(f, n, "\"format_version\":\"3\"") && has_text(f, n, "\"reverse\":\"1\""),
              "a reverse model's file lacks format_version 3 or reverse 1");
        clstm_model *l = NULL;
        if (CHECK_STATUS(clstm_load_buffer(f, n, &l), CLSTM_OK)) compare_models(m, l, "reverse");
        clstm_free(l);
        /* version 3 without "reverse" (renamed to user metadata), a bad
         * flag, and version 1 (an older writer's): FORMAT for the first
         * two; the third loads a forward model keeping "reverse" as user
         * metadata */
        static const char *const patches[][2] = {{"\"reverse\":", "\"reverzz\":"},
                                                 {"\"reverse\":\"1\"", "\"reverse\":\"7\""}};
        check_patches_refused(f, n, patches, 2, "reverse");
        clstm_config g1 = clstm_config_default();
        char *v = as_version1(f, n, "\"format_version\":\"3\"", "reverse", &g1);
        CHECK(g1.reverse == 0 && v && strcmp(v, "1") == 0,
              "version 1: reverse %d, user metadata %s", g1.reverse, v ? v : "(none)");
        free(v);
        free(f);
    }
    clstm_free(m);

    /* a forward model keeps user metadata named "reverse" in a version 1 file */
    c.reverse = 0;
    m = NULL;
    if (!CHECK_STATUS(clstm_create(&c, 1, &m), CLSTM_OK)) return;
    CHECK_STATUS(clstm_set_metadata(m, "reverse", "yes"), CLSTM_OK);
    if (CHECK_STATUS(clstm_save(m, path), CLSTM_OK) && (f = read_all(path, &n))) {
        CHECK(has_text(f, n, "\"format_version\":\"1\""), "a forward model's file not version 1");
        clstm_model *l = NULL;
        const char *v = NULL;
        if (CHECK_STATUS(clstm_load_buffer(f, n, &l), CLSTM_OK) &&
            CHECK_STATUS(clstm_get_metadata(l, "reverse", &v), CLSTM_OK))
            CHECK(v && strcmp(v, "yes") == 0, "user metadata \"reverse\" lost");
        clstm_free(l);
        free(f);
    }
    clstm_free(m);
}

/* ------------------------------------------------------ 9c. gate activation */

/* Hard sigmoid gates: validation, an older caller's config (the one ending
 * at reverse), and the file: version 4 with "reverse" and the gate keys,
 * refused when they are missing or malformed; a version 1 file (an older
 * writer's) keeps those names as user metadata. (Their numbers: HARD_CASES
 * in tests/test_forward.py etc., against the NumPy reference.) */
static void test_gate_activation(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/m.safetensors", g_dir);
    clstm_config c = clstm_config_default();
    CHECK(c.gate_activation == CLSTM_GATE_SIGMOID && c.gate_alpha == 0.2 && c.gate_beta == 0.5,
          "default gate activation");
    c.input_size = 3;
    c.hidden_size = 4;
    c.num_layers = 2;
    clstm_model *m = NULL;
    /* refused: an unknown activation, alpha <= 0 or not finite, beta not
     * finite, sigmoid with other alpha/beta, a decoder */
    static const struct {
        int act;
        double alpha, beta;
    } bad[] = {{2, 0.2, 0.5},          {-1, 0.2, 0.5},       {1, 0.0, 0.5},
               {1, -0.2, 0.5},         {1, INFINITY, 0.5},   {1, NAN, 0.5},
               {1, 0.2, NAN},          {1, 0.2, -INFINITY},  {0, 0.25, 0.5},
               {0, 0.2, 0.4}};
    for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
        c.gate_activation = bad[k].act;
        c.gate_alpha = bad[k].alpha;
        c.gate_beta = bad[k].beta;
        CHECK(clstm_create(&c, 1, &m) == CLSTM_ERR_ARG && m == NULL,
              "gate case %zu accepted", k);
    }
    clstm_config s = c;
    s.gate_activation = CLSTM_GATE_HARD_SIGMOID, s.gate_alpha = 0.2, s.gate_beta = 0.5;
    s.encoding = CLSTM_ENCODING_EMBEDDING, s.vocab_size = 5;
    s.target_vocab = 7, s.target_embedding = 3, s.decoder_hidden = 5, s.decoder_layers = 1;
    s.attentional_size = 4;
    CHECK(clstm_create(&s, 1, &m) == CLSTM_ERR_ARG && m == NULL,
          "an encoder-decoder with hard sigmoid gates accepted");
    s.gate_activation = CLSTM_GATE_SIGMOID;
    if (CHECK_STATUS(clstm_create(&s, 1, &m), CLSTM_OK)) clstm_free(m); /* the control */
    m = NULL;

    /* the config of the header before the gate activation: its size is the
     * end of `reverse` rounded up to the struct's alignment */
    const size_t end = offsetof(clstm_config, reverse) + sizeof(int);
    const size_t before = (end + _Alignof(clstm_config) - 1) / _Alignof(clstm_config) *
                          _Alignof(clstm_config);
    c.gate_activation = CLSTM_GATE_SIGMOID, c.gate_alpha = 0.2, c.gate_beta = 0.5;
    c.reverse = 1;
    if ((m = create_older(c, before, end, "the gate activation"))) {
        clstm_config g = clstm_config_default();
        CHECK_STATUS(clstm_get_config(m, &g), CLSTM_OK);
        CHECK(g.reverse == 1 && g.gate_activation == CLSTM_GATE_SIGMOID &&
                  g.gate_alpha == 0.2 && g.gate_beta == 0.5,
              "a config that ends before the gate activation: reverse %d gate %d",
              g.reverse, g.gate_activation);
    }
    clstm_free(m);
    m = NULL;
    clstm_config odd = c;
    odd.struct_size = end + 1; /* between the two sizes (or past the padding) */
    if (end + 1 != before)
        CHECK(clstm_create(&odd, 1, &m) == CLSTM_ERR_ARG && m == NULL,
              "struct_size %zu accepted", end + 1);

    /* the file: a forward and a reverse model with hard sigmoid gates */
    for (int rev = 0; rev < 2; rev++) {
        c.reverse = rev;
        c.gate_activation = CLSTM_GATE_HARD_SIGMOID, c.gate_alpha = 1.0 / 6, c.gate_beta = 0.5;
        m = NULL;
        if (!CHECK_STATUS(clstm_create(&c, 1, &m), CLSTM_OK)) return;
        CHECK_STATUS(clstm_set_metadata(m, "reverse", "x"), CLSTM_ERR_ARG);
        CHECK_STATUS(clstm_set_metadata(m, "gate_alpha", "x"), CLSTM_ERR_ARG);
        size_t n;
        unsigned char *f;
        if (!CHECK_STATUS(clstm_save(m, path), CLSTM_OK) || !(f = read_all(path, &n))) {
            clstm_free(m);
            return;
        }
        CHECK(has_text(f, n, "\"format_version\":\"4\"") &&
                  has_text(f, n, rev ? "\"reverse\":\"1\"" : "\"reverse\":\"0\"") &&
                  has_text(f, n, "\"gate_activation\":\"hard_sigmoid\"") &&
                  has_text(f, n, "\"gate_alpha\":\"0.16666666666666666\"") &&
                  has_text(f, n, "\"gate_beta\":\"0.5\""),
              "a hard sigmoid model's file lacks version 4 or a gate key");
        clstm_model *l = NULL;
        if (CHECK_STATUS(clstm_load_buffer(f, n, &l), CLSTM_OK)) compare_models(m, l, "gate");
        clstm_free(l);
        /* FORMAT: each of the four keys missing (renamed to user metadata),
         * an unknown activation, alpha 0 (create refuses it), a malformed
         * number */
        static const char *const patches[][2] = {
            {"\"reverse\":", "\"reverzz\":"},
            {"\"gate_activation\":", "\"gate_activatioz\":"},
            {"\"gate_alpha\":", "\"gate_alphz\":"},
            {"\"gate_beta\":", "\"gate_betz\":"},
            {"\"hard_sigmoid\"", "\"hard_sigmoix\""},
            {"\"0.16666666666666666\"", "\"0.00000000000000000\""},
            {"\"gate_beta\":\"0.5\"", "\"gate_beta\":\"0.x\""}};
        check_patches_refused(f, n, patches, sizeof patches / sizeof patches[0], "gate");
        /* version 1 (an older writer's): sigmoid gates, forward, and the
         * four keys as user metadata */
        clstm_config g1 = clstm_config_default();
        char *v = as_version1(f, n, "\"format_version\":\"4\"", "gate_activation", &g1);
        CHECK(g1.gate_activation == CLSTM_GATE_SIGMOID && g1.reverse == 0 && v &&
                  strcmp(v, "hard_sigmoid") == 0,
              "version 1: gate %d, user metadata %s", g1.gate_activation, v ? v : "(none)");
        free(v);
        free(f);
        clstm_free(m);
    }
}

/* ------------------------------------------------------------ 10. tensors */

static void test_tensors(mspec s)
{
    char ctx[200];
    spec_str(ctx, sizeof ctx, s, CLSTM_FLOAT32);
    clstm_model *m = spec_model(s, CLSTM_FLOAT32, 12), *bare = bare_model(s, CLSTM_FLOAT32);
    if (!m || !bare) goto out;
    int64_t nt, nbt;
    CHECK_STATUS(clstm_num_tensors(m, &nt), CLSTM_OK);
    CHECK_STATUS(clstm_num_tensors(bare, &nbt), CLSTM_OK);
    const int emb = s.enc == CLSTM_ENCODING_EMBEDDING;
    CHECK(nt == nbt + emb + 2 * (s.O > 0), "%s: %lld tensors, bare %lld", ctx, (long long)nt,
          (long long)nbt);
    void *pm, *pb;
    size_t np, nb;
    CHECK_STATUS(clstm_params(m, &pm, &np), CLSTM_OK);
    CHECK_STATUS(clstm_params(bare, &pb, &nb), CLSTM_OK);
    size_t sum = 0;
    for (int64_t i = 0; i < nt; i++) {
        clstm_tensor_info t, tb;
        if (!CHECK_STATUS(clstm_tensor_info_get(m, i, &t), CLSTM_OK)) continue;
        CHECK(t.offset == sum, "%s: tensor %lld %s at %zu, expected %zu", ctx, (long long)i,
              t.name, t.offset, sum);
        sum += (size_t)(t.shape[0] * t.shape[1]);
        if (i < nbt) {
            CHECK_STATUS(clstm_tensor_info_get(bare, i, &tb), CLSTM_OK);
            CHECK(strcmp(t.name, tb.name) == 0 && t.offset == tb.offset &&
                      t.shape[0] == tb.shape[0] && t.shape[1] == tb.shape[1] && t.ndim == tb.ndim,
                  "%s: LSTM tensor %lld differs from the bare model's", ctx, (long long)i);
            continue;
        }
        const int64_t k = i - nbt + !emb; /* 0 embedding, 1 head.weight, 2 head.bias */
        static const char *const names[3] = {"embedding.weight", "head.weight", "head.bias"};
        const int64_t rows[3] = {s.V, s.O, s.O}, cols[3] = {sp_D(s), sp_NR(s), 1};
        CHECK(strcmp(t.name, names[k]) == 0 && t.ndim == (k == 2 ? 1 : 2) &&
                  t.shape[0] == rows[k] && t.shape[1] == cols[k],
              "%s: tensor %lld is %s ndim %d (%lld, %lld), expected %s (%lld, %lld)", ctx,
              (long long)i, t.name, t.ndim, (long long)t.shape[0], (long long)t.shape[1],
              names[k], (long long)rows[k], (long long)cols[k]);
    }
    CHECK(sum == np, "%s: tensors hold %zu elements, block %zu", ctx, sum, np);
    clstm_tensor_info t;
    memset(&t, 0x33, sizeof t);
    CHECK_STATUS(clstm_tensor_info_get(m, nt, &t), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_tensor_info_get(m, -1, &t), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_tensor_info_get(m, nt + 1, &t), CLSTM_ERR_ARG);
    CHECK(t.offset == (size_t)0x3333333333333333ull, "a failed tensor_info_get wrote");
    /* the LSTM part of the init does not depend on the embedding or head */
    clstm_model *b2 = bare_model(s, CLSTM_FLOAT32);
    if (b2) {
        void *p2;
        CHECK_STATUS(clstm_init_params(b2, 12), CLSTM_OK);
        CHECK_STATUS(clstm_params(b2, &p2, &nb), CLSTM_OK);
        CHECK(memcmp(pm, p2, nb * sizeof(float)) == 0,
              "%s: the LSTM prefix differs from a bare model of the same seed", ctx);
    }
    clstm_free(b2);
out:
    clstm_free(m);
    clstm_free(bare);
}

static void test_tensors_all(void)
{
    test_tensors((mspec){CLSTM_ENCODING_EMBEDDING, 7, 3, 4, 2, 2, 1, 5, 1});
    test_tensors((mspec){CLSTM_ENCODING_EMBEDDING, 7, 3, 4, 1, 0, 0, 0, 0});
    test_tensors((mspec){CLSTM_ENCODING_ONEHOT, 6, 0, 4, 2, 0, 0, 3, 0});
    test_tensors((mspec){CLSTM_ENCODING_NONE, 0, 3, 4, 1, 0, 1, 2, 0});
    test_tensors((mspec){CLSTM_ENCODING_ONEHOT, 6, 0, 4, 1, 0, 0, 0, 0});
}

/* One code path: on a bare model the LSTM-only calls and the model calls
 * are the same plan, so their workspaces are interchangeable and give the
 * same numbers; on a model with a head a workspace of one family is refused
 * (STATE) by the other's backward. */
static void test_one_path(void)
{
    enum { T = 5, B = 3, D = 4, H = 3, O = 2, NR = 2 * H, NL = 2 * 2 };
    const mspec bare = {CLSTM_ENCODING_NONE, 0, D, H, 2, 0, 1, 0, 0};
    const mspec head = {CLSTM_ENCODING_NONE, 0, D, H, 1, 0, 0, O, 0};
    clstm_model *m = spec_model(bare, CLSTM_FLOAT64, 7), *mh = spec_model(head, CLSTM_FLOAT64, 7);
    if (!CHECK(m && mh, "create")) goto out;
    double x[T * B * D], y[T * B * NR], dy[T * B * NR], dx[2][T * B * D], dh0[2][NL * B * H];
    double dc0[2][NL * B * H], grads[2][4096];
    for (int i = 0; i < T * B * D; i++) x[i] = sin(0.7 * i);
    for (int i = 0; i < T * B * NR; i++) dy[i] = cos(0.3 * i);
    size_t a, b;
    CHECK_STATUS(clstm_workspace_size(m, T, B, 1, &a), CLSTM_OK);
    CHECK_STATUS(clstm_model_workspace_size(m, T, B, 1, &b), CLSTM_OK);
    CHECK_EQ(a, b);
    void *ws = xcalloc(a, 1), *gp;
    size_t n;
    clstm_grads(m, &gp, &n);
    if (!CHECK(n <= 4096, "grads fit")) goto out_ws;
    clstm_run_options opt = clstm_run_options_default();
    opt.train = 1;
    for (int k = 0; k < 2; k++) { /* k = 0: LSTM-only calls; 1: LSTM forward, model backward */
        clstm_zero_grad(m);
        CHECK_STATUS(clstm_forward_ex(m, T, B, x, NULL, NULL, y, NULL, NULL, &opt, ws, a),
                     CLSTM_OK);
        if (k == 0)
            CHECK_STATUS(clstm_backward(m, T, B, dy, NULL, NULL, dx[k], dh0[k], dc0[k], ws, a),
                         CLSTM_OK);
        else
            CHECK_STATUS(clstm_model_backward(m, T, B, dy, NULL, NULL, dx[k], dh0[k], dc0[k], ws,
                                              a),
                         CLSTM_OK);
        memcpy(grads[k], gp, n * sizeof(double));
    }
    CHECK(memcmp(dx[0], dx[1], sizeof dx[0]) == 0 && memcmp(dh0[0], dh0[1], sizeof dh0[0]) == 0 &&
              memcmp(dc0[0], dc0[1], sizeof dc0[0]) == 0 &&
              memcmp(grads[0], grads[1], n * sizeof(double)) == 0,
          "bare model: the model backward of an LSTM-only forward differs");
    free(ws);
    /* a head: the plans differ, and each family's backward refuses the other's forward */
    double out[T * B * O], yh[T * B * H], dout[T * B * O];
    for (int i = 0; i < T * B * O; i++) dout[i] = 1.0;
    wsbuf w = ws_model(mh, T, B, 1);
    CHECK_STATUS(clstm_workspace_size(mh, T, B, 1, &a), CLSTM_OK);
    ws = xcalloc(a > w.bytes ? a : w.bytes, 1);
    const size_t wb = a > w.bytes ? a : w.bytes;
    CHECK_STATUS(clstm_forward_ex(mh, T, B, x, NULL, NULL, yh, NULL, NULL, &opt, ws, wb), CLSTM_OK);
    CHECK_STATUS(clstm_model_backward(mh, T, B, dout, NULL, NULL, NULL, NULL, NULL, ws, wb),
                 CLSTM_ERR_STATE);
    CHECK_STATUS(clstm_model_forward(mh, T, B, x, NULL, NULL, NULL, out, NULL, NULL, &opt, ws, wb),
                 CLSTM_OK);
    CHECK_STATUS(clstm_backward(mh, T, B, NULL, NULL, NULL, NULL, NULL, NULL, ws, wb),
                 CLSTM_ERR_STATE);
    CHECK_STATUS(clstm_model_backward(mh, T, B, dout, NULL, NULL, NULL, NULL, NULL, ws, wb),
                 CLSTM_OK);
    free(w.p);
out_ws:
    free(ws);
out:
    clstm_free(m);
    clstm_free(mh);
}

int main(void)
{
    /* split even small models across threads, so the split itself is tested */
    clstm_set_min_thread_work(0);
    snprintf(g_dir, sizeof g_dir, "/tmp/clstm_test_model_XXXXXX");
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    test_forward_all();
    test_streaming_all();
    test_gradients_all();
    test_threads();
    test_losses();
    test_softmax();
    test_config_validation();
    test_forward_errors();
    test_vocab();
    test_file_round_trips();
    test_torch_style_files();
    test_abi();
    test_reverse();
    test_gate_activation();
    test_tensors_all();
    test_one_path();
    char path[128];
    snprintf(path, sizeof path, "%s/m.safetensors", g_dir);
    unlink(path);
    rmdir(g_dir);
    return ctest_finish();
}
