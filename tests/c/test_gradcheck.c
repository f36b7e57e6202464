/*
 * test_gradcheck.c -- numerical tests of clstm against an independent oracle.
 *
 *   1. forward vs a plain-C double reference of the LSTM equations
 *   2. float64 central finite differences over every parameter, x, h0, c0
 *   3. BLAS vs NAIVE backends, 1, 2 and 3 threads
 *   4. float32 backward vs float64 backward
 *   5. NULL optional arguments behave as zeros
 *   6. gradient accumulation and clstm_zero_grad
 *   7. inference forward == training forward
 *   8. seeding and the initial parameter distribution
 *   9. tensor enumeration (names, shapes, offsets)
 *  10. ownership: backward does not read caller inputs of the forward
 *  11. concurrent forwards on one model
 *  12. a workspace pointer with no particular alignment
 *  13. dropout: masks against the reference, determinism, seeds
 *
 * Each runs over the model options too: projection (P), bidirectional
 * (N = 2), per-sequence lengths (with NaN in x past them, which must be
 * ignored) and dropout.
 *
 * Shapes: x (T, B, D), y (T, B, N*R), h (N*L, B, R), c (N*L, B, H),
 * row-major, R = P or H. The reference below shares no code with src/: it is
 * the header's equations written as loops over a double parameter block laid
 * out as the header says.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clstm.h"
#include "ctest.h"

/* ------------------------------------------------------------ utilities */

static double *dalloc(size_t n) { return xcalloc(n, sizeof(double)); }

static double *ddup(const double *a, size_t n)
{
    double *d = dalloc(n);
    memcpy(d, a, n * sizeof(double));
    return d;
}

/* splitmix64; the state belongs to the caller. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void fill_uniform(uint64_t *s, double *a, size_t n, double lo, double hi)
{
    for (size_t i = 0; i < n; i++)
        a[i] = lo + (hi - lo) * ((double)(rng_next(s) >> 11) * 0x1.0p-53);
}

static const char *dtype_name(clstm_dtype dt)
{
    return dt == CLSTM_FLOAT32 ? "float32" : "float64";
}

static const char *backend_name(clstm_backend be)
{
    return be == CLSTM_BACKEND_BLAS ? "blas" : be == CLSTM_BACKEND_NAIVE ? "naive" : "default";
}

static size_t esize(clstm_dtype dt)
{
    return dt == CLSTM_FLOAT32 ? sizeof(float) : sizeof(double);
}

/* Round to the dtype in place, so that float32 inputs are exact. */
static void quantize(clstm_dtype dt, double *a, size_t n)
{
    if (dt == CLSTM_FLOAT32)
        for (size_t i = 0; i < n; i++)
            a[i] = (double)(float)a[i];
}

/* A new array of the dtype holding src (NULL stays NULL). */
static void *to_dtype(clstm_dtype dt, const double *src, size_t n)
{
    void *dst;
    if (!src)
        return NULL;
    dst = xcalloc(n, esize(dt));
    if (dt == CLSTM_FLOAT32)
        for (size_t i = 0; i < n; i++)
            ((float *)dst)[i] = (float)src[i];
    else
        memcpy(dst, src, n * sizeof(double));
    return dst;
}

static void from_dtype(clstm_dtype dt, const void *src, double *dst, size_t n)
{
    if (!src || !dst)
        return;
    if (dt == CLSTM_FLOAT32)
        for (size_t i = 0; i < n; i++)
            dst[i] = (double)((const float *)src)[i];
    else
        memcpy(dst, src, n * sizeof(double));
}

/* max |a - ref| / max(1, max |ref|); +inf on NaN. *at: the worst element. */
static double max_err(const double *a, const double *ref, size_t n, size_t *at)
{
    double scale = 1.0, worst = 0.0;
    *at = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs(ref[i]) > scale)
            scale = fabs(ref[i]);
    for (size_t i = 0; i < n; i++) {
        double d = fabs(a[i] - ref[i]);
        if (d != d) {
            *at = i;
            return INFINITY;
        }
        if (d > worst) {
            worst = d;
            *at = i;
        }
    }
    return worst / scale;
}

#define CHECK_CLOSE(a, ref, n, tol, ctx)                                                   \
    do {                                                                                   \
        size_t at_;                                                                        \
        double e_ = max_err((a), (ref), (n), &at_);                                        \
        CHECK(e_ <= (tol), "%s: %s vs %s: error %.3g > %.3g at element %zu (%.17g vs %.17g)", \
              (ctx), #a, #ref, e_, (double)(tol), at_, (a)[at_], (ref)[at_]);              \
    } while (0)

/* ------------------------------------------------------------ shapes */

/* One test problem: sizes, the model options and the lengths. */
typedef struct {
    int64_t T, B, D, H, L;
    int64_t P;          /* projection size, 0: none */
    int bidir;          /* 1: bidirectional (N = 2) */
    double dropout;     /* the model's dropout probability */
    const int64_t *len; /* (B) valid steps of each sequence, or NULL: all T */
} shape;

/* A plain problem: the sizes alone (no options, no lengths). */
#define DIMS(T_, B_, D_, H_, L_) {.T = (T_), .B = (B_), .D = (D_), .H = (H_), .L = (L_)}

static int64_t n_dir(shape s) { return s.bidir ? 2 : 1; }
static int64_t r_size(shape s) { return s.P > 0 ? s.P : s.H; }
static int64_t seq_len(shape s, int64_t b) { return s.len ? s.len[b] : s.T; }
/* training forwards of this model drop something */
static int dropout_active(shape s) { return s.dropout > 0.0 && s.L > 1; }

static size_t n_x(shape s) { return (size_t)(s.T * s.B * s.D); }
static size_t n_y(shape s) { return (size_t)(s.T * s.B * n_dir(s) * r_size(s)); }
static size_t n_h(shape s) { return (size_t)(n_dir(s) * s.L * s.B * r_size(s)); }
static size_t n_c(shape s) { return (size_t)(n_dir(s) * s.L * s.B * s.H); }

/* Elements of one (layer k, direction) group: weight_ih (4H, D_k),
 * weight_hh (4H, R), bias_ih (4H), bias_hh (4H), weight_hr (P, H). */
static size_t group_elems(shape s, int64_t k)
{
    const int64_t G = 4 * s.H, R = r_size(s), Dk = k == 0 ? s.D : n_dir(s) * R;
    return (size_t)(G * Dk + G * R + 2 * G + s.P * s.H);
}

/* Offset of (layer k, direction dir)'s weight_ih in the parameter block,
 * per the header: layers in order, directions in order within a layer. */
static size_t group_offset(shape s, int64_t k, int64_t dir)
{
    size_t off = 0;
    for (int64_t j = 0; j < k; j++)
        off += (size_t)n_dir(s) * group_elems(s, j);
    return off + (size_t)dir * group_elems(s, k);
}

static size_t n_params(shape s) { return group_offset(s, s.L, 0); }

static void shape_str(char *buf, size_t len, shape s)
{
    int n = snprintf(buf, len, "T=%lld B=%lld D=%lld H=%lld L=%lld P=%lld N=%lld p=%g",
                     (long long)s.T, (long long)s.B, (long long)s.D, (long long)s.H,
                     (long long)s.L, (long long)s.P, (long long)n_dir(s), s.dropout);
    for (int64_t b = 0; s.len && b < s.B && n > 0 && (size_t)n < len; b++)
        n += snprintf(buf + n, len - (size_t)n, "%s%lld", b ? "," : " len=",
                      (long long)s.len[b]);
}

/* The elements of a (T, B, width) array at steps past their sequence's
 * length: returns how many are not exactly 0, then sets them to *fill
 * unless fill is NULL. */
static size_t past_len(shape s, double *a, int64_t width, const double *fill)
{
    size_t nonzero = 0;
    for (int64_t b = 0; b < s.B; b++)
        for (int64_t t = seq_len(s, b); t < s.T; t++)
            for (int64_t j = 0; j < width; j++) {
                double *e = a + (t * s.B + b) * width + j;
                nonzero += *e != 0.0;
                if (fill)
                    *e = *fill;
            }
    return nonzero;
}

/* ------------------------------------------------------------ reference */

static double sigmoid(double v) { return 1.0 / (1.0 + exp(-v)); }

/* One direction of one layer over sequence b: the header's equations in
 * double, one gate row at a time.
 *   w:   the (layer, direction) group of the parameter block
 *   in:  (T, B, Din) the layer's input; only the valid steps are read
 *   h, c: (R), (H) the state, updated in place to the state after the
 *        sequence's last valid step
 *   out: (T, B, N*R) this direction's R columns written at the valid steps
 * The reverse direction starts at the sequence's last valid step. */
static void ref_direction(shape s, const double *w, int64_t Din, const double *in, int64_t b,
                          int dir, double *h, double *c, double *out)
{
    const int64_t B = s.B, H = s.H, G = 4 * H, R = r_size(s), NR = n_dir(s) * R;
    const int64_t len = seq_len(s, b);
    const double *W_ih = w, *W_hh = W_ih + G * Din, *b_ih = W_hh + G * R;
    const double *b_hh = b_ih + G, *W_hr = b_hh + G;
    double *a = dalloc((size_t)G), *u = dalloc((size_t)H);

    for (int64_t step = 0; step < len; step++) {
        const int64_t t = dir ? len - 1 - step : step;
        const double *xt = in + (t * B + b) * Din;
        for (int64_t r = 0; r < G; r++) {
            double acc = b_ih[r] + b_hh[r];
            for (int64_t j = 0; j < Din; j++)
                acc += W_ih[r * Din + j] * xt[j];
            for (int64_t j = 0; j < R; j++)
                acc += W_hh[r * R + j] * h[j];
            a[r] = acc;
        }
        for (int64_t j = 0; j < H; j++) {
            double ig = sigmoid(a[j]);
            double fg = sigmoid(a[H + j]);
            double gg = tanh(a[2 * H + j]);
            double og = sigmoid(a[3 * H + j]);
            c[j] = fg * c[j] + ig * gg;
            u[j] = og * tanh(c[j]);
        }
        /* h = W_hr u with a projection, else u */
        for (int64_t q = 0; q < R; q++) {
            double acc = s.P > 0 ? 0.0 : u[q];
            for (int64_t j = 0; s.P > 0 && j < H; j++)
                acc += W_hr[q * H + j] * u[j];
            h[q] = acc;
        }
        memcpy(out + (t * B + b) * NR + dir * R, h, (size_t)R * sizeof(double));
    }
    free(a);
    free(u);
}

/* The whole model, layer by layer. p: parameter block; h0, c0 may be NULL
 * (zeros); hT, cT may be NULL. mask: NULL (no dropout), or L-1 arrays of
 * (T, B, N*R), multiplied into the inputs of layers 1..L-1. y is 0 past
 * each sequence's length, and x is never read there. */
static void ref_forward(shape s, const double *p, const double *x, const double *h0,
                        const double *c0, const double *mask, double *y, double *hT,
                        double *cT)
{
    const int64_t N = n_dir(s), R = r_size(s);
    const size_t n_out = n_y(s);
    double *h = dalloc(n_h(s)), *c = dalloc(n_c(s));
    double *in = ddup(x, n_x(s)), *out = dalloc(n_out);

    if (h0)
        memcpy(h, h0, n_h(s) * sizeof(double));
    if (c0)
        memcpy(c, c0, n_c(s) * sizeof(double));
    for (int64_t k = 0; k < s.L; k++) {
        const int64_t Din = k == 0 ? s.D : N * R;
        if (k > 0) {
            free(in);
            in = out;
            out = dalloc(n_out);
            for (size_t i = 0; mask && i < n_out; i++)
                in[i] *= mask[(size_t)(k - 1) * n_out + i];
        }
        for (int dir = 0; dir < N; dir++)
            for (int64_t b = 0; b < s.B; b++) {
                const int64_t st = (k * N + dir) * s.B + b; /* state index */
                ref_direction(s, p + group_offset(s, k, dir), Din, in, b, dir, h + st * R,
                              c + st * s.H, out);
            }
    }
    memcpy(y, out, n_out * sizeof(double));
    if (hT)
        memcpy(hT, h, n_h(s) * sizeof(double));
    if (cT)
        memcpy(cT, c, n_c(s) * sizeof(double));
    free(h);
    free(c);
    free(in);
    free(out);
}

/* ------------------------------------------------------------ model helpers */

/* A model with s's sizes and options (T, B and the lengths are not the
 * model's). */
static clstm_model *make_model(clstm_dtype dt, clstm_backend be, shape s, uint64_t seed)
{
    clstm_config cfg = clstm_config_default();
    clstm_model *m = NULL;
    clstm_status st;
    char sh[200];
    cfg.input_size = s.D;
    cfg.hidden_size = s.H;
    cfg.num_layers = s.L;
    cfg.proj_size = s.P;
    cfg.bidirectional = s.bidir;
    cfg.dropout = s.dropout;
    cfg.dtype = dt;
    cfg.backend = be;
    st = clstm_create(&cfg, seed, &m);
    shape_str(sh, sizeof sh, s);
    if (!CHECK(st == CLSTM_OK && m != NULL, "clstm_create(%s %s %s): %s", sh,
               dtype_name(dt), backend_name(be), clstm_status_string(st))) {
        clstm_free(m);
        return NULL;
    }
    return m;
}

static clstm_dtype model_dtype(const clstm_model *m)
{
    clstm_config c = clstm_config_default();
    clstm_get_config(m, &c);
    return c.dtype;
}

static shape model_shape(const clstm_model *m, int64_t T, int64_t B)
{
    clstm_config c = clstm_config_default();
    shape s = {0};
    clstm_get_config(m, &c);
    s.T = T;
    s.B = B;
    s.D = c.input_size;
    s.H = c.hidden_size;
    s.L = c.num_layers;
    s.P = c.proj_size;
    s.bidir = c.bidirectional;
    s.dropout = c.dropout;
    s.len = NULL; /* sizes only */
    return s;
}

/* A copy of the parameter (grads = 0) or gradient (grads = 1) block. */
static double *block_copy(clstm_model *m, int grads, size_t *n)
{
    void *data = NULL;
    double *d;
    clstm_status st = grads ? clstm_grads(m, &data, n) : clstm_params(m, &data, n);
    if (st != CLSTM_OK) {
        fprintf(stderr, "clstm_%s failed: %s\n", grads ? "grads" : "params",
                clstm_status_string(st));
        exit(2);
    }
    d = dalloc(*n);
    from_dtype(model_dtype(m), data, d, *n);
    return d;
}

/* Overwrite the parameter block with doubles rounded to the dtype. */
static void params_set(clstm_model *m, const double *src)
{
    void *data = NULL;
    size_t n = 0;
    clstm_params(m, &data, &n);
    if (model_dtype(m) == CLSTM_FLOAT32)
        for (size_t i = 0; i < n; i++)
            ((float *)data)[i] = (float)src[i];
    else
        memcpy(data, src, n * sizeof(double));
}

typedef struct {
    void *p;
    size_t bytes;
} workspace;

static workspace ws_make(const clstm_model *m, int64_t T, int64_t B, int train)
{
    workspace w = {NULL, 0};
    clstm_status st = clstm_workspace_size(m, T, B, train, &w.bytes);
    if (st != CLSTM_OK) {
        fprintf(stderr, "clstm_workspace_size(T=%lld B=%lld train=%d) failed: %s\n",
                (long long)T, (long long)B, train, clstm_status_string(st));
        exit(2);
    }
    w.p = xcalloc(w.bytes, 1);
    return w;
}

/* clstm_forward_ex on double arrays, converted to and from the model's
 * dtype. */
static clstm_status run_forward(clstm_model *m, int64_t T, int64_t B, const double *x,
                                const double *h0, const double *c0, double *y, double *hT,
                                double *cT, clstm_run_options o, workspace w)
{
    const clstm_dtype dt = model_dtype(m);
    const shape s = model_shape(m, T, B);
    void *xt = to_dtype(dt, x, n_x(s));
    void *h0t = to_dtype(dt, h0, n_h(s));
    void *c0t = to_dtype(dt, c0, n_c(s));
    void *yt = xcalloc(n_y(s), esize(dt));
    void *hTt = hT ? xcalloc(n_h(s), esize(dt)) : NULL;
    void *cTt = cT ? xcalloc(n_c(s), esize(dt)) : NULL;
    clstm_status st =
        clstm_forward_ex(m, T, B, xt, h0t, c0t, yt, hTt, cTt, &o, w.p, w.bytes);
    if (st == CLSTM_OK) {
        from_dtype(dt, yt, y, n_y(s));
        from_dtype(dt, hTt, hT, n_h(s));
        from_dtype(dt, cTt, cT, n_c(s));
    }
    free(xt);
    free(h0t);
    free(c0t);
    free(yt);
    free(hTt);
    free(cTt);
    return st;
}

/* clstm_backward on double arrays. */
static clstm_status run_backward(clstm_model *m, int64_t T, int64_t B, const double *dy,
                                 const double *dhT, const double *dcT, double *dx,
                                 double *dh0, double *dc0, workspace w)
{
    const clstm_dtype dt = model_dtype(m);
    const shape s = model_shape(m, T, B);
    void *dyt = to_dtype(dt, dy, n_y(s));
    void *dhTt = to_dtype(dt, dhT, n_h(s));
    void *dcTt = to_dtype(dt, dcT, n_c(s));
    void *dxt = dx ? xcalloc(n_x(s), esize(dt)) : NULL;
    void *dh0t = dh0 ? xcalloc(n_h(s), esize(dt)) : NULL;
    void *dc0t = dc0 ? xcalloc(n_c(s), esize(dt)) : NULL;
    clstm_status st =
        clstm_backward(m, T, B, dyt, dhTt, dcTt, dxt, dh0t, dc0t, w.p, w.bytes);
    if (st == CLSTM_OK) {
        from_dtype(dt, dxt, dx, n_x(s));
        from_dtype(dt, dh0t, dh0, n_h(s));
        from_dtype(dt, dc0t, dc0, n_c(s));
    }
    free(dyt);
    free(dhTt);
    free(dcTt);
    free(dxt);
    free(dh0t);
    free(dc0t);
    return st;
}

#define CHECK_OK(expr, ctx)                                                            \
    do {                                                                               \
        clstm_status st_ = (expr);                                                     \
        CHECK(st_ == CLSTM_OK, "%s: %s", (ctx), clstm_status_string(st_));             \
    } while (0)

/* Inputs and loss weights of one problem, all in double, rounded to dtype. */
typedef struct {
    shape s;
    double *x, *h0, *c0;   /* inputs; x is NaN past each sequence's length */
    double *Wy, *Wh, *Wc;  /* loss weights = dy, dhT, dcT */
    uint64_t dropout_seed; /* of its training forwards */
} problem;

static problem problem_make(shape s, clstm_dtype dt, uint64_t seed)
{
    const double nan = NAN;
    problem p;
    uint64_t r = seed * 7919u + 17u;
    p.s = s;
    p.x = dalloc(n_x(s));
    p.h0 = dalloc(n_h(s));
    p.c0 = dalloc(n_c(s));
    p.Wy = dalloc(n_y(s));
    p.Wh = dalloc(n_h(s));
    p.Wc = dalloc(n_c(s));
    p.dropout_seed = seed * 1000003u + 11u;
    fill_uniform(&r, p.x, n_x(s), -1.5, 1.5);
    fill_uniform(&r, p.h0, n_h(s), -0.9, 0.9);
    fill_uniform(&r, p.c0, n_c(s), -1.5, 1.5);
    fill_uniform(&r, p.Wy, n_y(s), -1.0, 1.0);
    fill_uniform(&r, p.Wh, n_h(s), -1.0, 1.0);
    fill_uniform(&r, p.Wc, n_c(s), -1.0, 1.0);
    quantize(dt, p.x, n_x(s));
    quantize(dt, p.h0, n_h(s));
    quantize(dt, p.c0, n_c(s));
    quantize(dt, p.Wy, n_y(s));
    quantize(dt, p.Wh, n_h(s));
    quantize(dt, p.Wc, n_c(s));
    /* the header: inputs past a length are ignored, "may be NaN" */
    past_len(s, p.x, s.D, &nan);
    return p;
}

/* The options of a forward of p: its lengths and dropout seed. */
static clstm_run_options problem_opts(const problem *p, int train)
{
    clstm_run_options o = clstm_run_options_default();
    o.train = train;
    o.lengths = p->s.len;
    o.dropout_seed = p->dropout_seed;
    return o;
}

static void problem_free(problem *p)
{
    free(p->x);
    free(p->h0);
    free(p->c0);
    free(p->Wy);
    free(p->Wh);
    free(p->Wc);
}

/* Everything one training forward + backward produces. */
typedef struct {
    double *y, *hT, *cT, *dx, *dh0, *dc0, *grads;
    size_t n_grads;
} result;

static void result_free(result *r)
{
    free(r->y);
    free(r->hT);
    free(r->cT);
    free(r->dx);
    free(r->dh0);
    free(r->dc0);
    free(r->grads);
}

/* A forward of p with options o in workspace w into r->y, r->hT, r->cT
 * (allocated here, the rest of r empty). */
static int forward_into(clstm_model *m, const problem *p, clstm_run_options o, workspace w,
                        result *r, const char *ctx)
{
    const shape s = p->s;
    clstm_status st;
    memset(r, 0, sizeof *r);
    r->y = dalloc(n_y(s));
    r->hT = dalloc(n_h(s));
    r->cT = dalloc(n_c(s));
    st = run_forward(m, s.T, s.B, p->x, p->h0, p->c0, r->y, r->hT, r->cT, o, w);
    return CHECK(st == CLSTM_OK, "%s: forward (train=%d): %s", ctx, o.train,
                 clstm_status_string(st));
}

/* zero_grad, training forward, backward with the problem's loss weights. */
static int train_step(clstm_model *m, const problem *p, result *r, const char *ctx)
{
    const shape s = p->s;
    workspace w = ws_make(m, s.T, s.B, 1);
    clstm_status st = CLSTM_ERR_STATE;
    CHECK_OK(clstm_zero_grad(m), ctx);
    if (forward_into(m, p, problem_opts(p, 1), w, r, ctx)) {
        r->dx = dalloc(n_x(s));
        r->dh0 = dalloc(n_h(s));
        r->dc0 = dalloc(n_c(s));
        st = run_backward(m, s.T, s.B, p->Wy, p->Wh, p->Wc, r->dx, r->dh0, r->dc0, w);
        CHECK(st == CLSTM_OK, "%s: backward: %s", ctx, clstm_status_string(st));
    }
    r->grads = block_copy(m, 1, &r->n_grads);
    free(w.p);
    return st == CLSTM_OK;
}

/* ------------------------------------------------------------ 1. reference */

static void test_forward_reference(clstm_dtype dt, clstm_backend be, shape s, uint64_t seed)
{
    /* measured worst: 4e-16 (float64), 1.2e-7 (float32), relative to max(1, |y|) */
    const double tol = dt == CLSTM_FLOAT64 ? 1e-12 : 1e-5;
    char ctx[300], sh[200];
    clstm_model *m = make_model(dt, be, s, seed);
    problem p;
    double *params, *ry, *rhT, *rcT, *y, *hT, *cT;
    size_t np;

    if (!m)
        return;
    shape_str(sh, sizeof sh, s);
    p = problem_make(s, dt, seed);
    params = block_copy(m, 0, &np);
    CHECK_EQ(np, n_params(s));
    ry = dalloc(n_y(s));
    rhT = dalloc(n_h(s));
    rcT = dalloc(n_c(s));
    y = dalloc(n_y(s));
    hT = dalloc(n_h(s));
    cT = dalloc(n_c(s));
    for (int with_state = 1; with_state >= 0; with_state--) {
        const double *h0 = with_state ? p.h0 : NULL;
        const double *c0 = with_state ? p.c0 : NULL;
        ref_forward(s, params, p.x, h0, c0, NULL, ry, rhT, rcT);
        for (int train = 0; train <= 1; train++) {
            workspace w;
            clstm_status st;
            /* a training forward with dropout has the library's own masks:
             * test_dropout_masks checks it */
            if (train && dropout_active(s))
                continue;
            w = ws_make(m, s.T, s.B, train);
            snprintf(ctx, sizeof ctx, "forward vs reference %s %s %s train=%d h0/c0=%s",
                     dtype_name(dt), backend_name(be), sh, train, with_state ? "given" : "NULL");
            st = run_forward(m, s.T, s.B, p.x, h0, c0, y, hT, cT, problem_opts(&p, train),
                             w);
            if (CHECK(st == CLSTM_OK, "%s: %s", ctx, clstm_status_string(st))) {
                size_t nz = past_len(s, y, n_dir(s) * r_size(s), NULL);
                CHECK_CLOSE(y, ry, n_y(s), tol, ctx);
                CHECK_CLOSE(hT, rhT, n_h(s), tol, ctx);
                CHECK_CLOSE(cT, rcT, n_c(s), tol, ctx);
                CHECK(nz == 0, "%s: %zu elements of y past the lengths are not 0", ctx, nz);
            }
            free(w.p);
        }
    }
    free(ry);
    free(rhT);
    free(rcT);
    free(y);
    free(hT);
    free(cT);
    free(params);
    problem_free(&p);
    clstm_free(m);
}

/* ------------------------------------------------------------ 2. gradcheck */

/* Relative error of an analytic gradient against a finite difference,
 * |fd - an| / max(|fd|, |an|, GRAD_FLOOR). The loss is O(1), so a central
 * difference carries round-off ~1e-16 / step plus truncation ~step^2, and
 * the best of the three steps agrees to ~1e-9 relative on O(1) gradients.
 * The floor keeps that noise on near-zero gradients from reading as a large
 * relative error.
 * Measured worst over all configs: 4e-9 (and 4e-8 even with a floor of
 * 1e-5), against GRAD_TOL = 1e-6. A wrong gradient is off by O(1); a single
 * term scaled by 1 + 1e-5 inside the backward still fails (checked). */
#define GRAD_FLOOR 1e-4
#define GRAD_TOL 1e-6

static double grad_relerr(double fd, double an)
{
    double den = fmax(fmax(fabs(fd), fabs(an)), GRAD_FLOOR);
    double e = fabs(fd - an) / den;
    return e == e ? e : INFINITY;
}

/* The loss is sum(y Wy) + sum(hT Wh) + sum(cT Wc), from a forward with
 * options o: inference, or with dropout a training forward with the
 * problem's fixed dropout_seed, so that every evaluation has the masks of
 * the training forward whose gradients are checked. */
typedef struct {
    clstm_model *m;
    shape s;
    const problem *p;
    double *x, *h0, *c0; /* the (perturbed) inputs */
    double *y, *hT, *cT;
    clstm_run_options o;
    workspace w;
} loss_ctx;

static double loss_of(const problem *p, const double *y, const double *hT, const double *cT)
{
    const shape s = p->s;
    double sum = 0.0;
    for (size_t i = 0; i < n_y(s); i++)
        sum += y[i] * p->Wy[i];
    for (size_t i = 0; i < n_h(s); i++)
        sum += hT[i] * p->Wh[i];
    for (size_t i = 0; i < n_c(s); i++)
        sum += cT[i] * p->Wc[i];
    return sum;
}

static double loss_eval(loss_ctx *lc)
{
    const shape s = lc->s;
    clstm_status st = clstm_forward_ex(lc->m, s.T, s.B, lc->x, lc->h0, lc->c0, lc->y, lc->hT,
                                       lc->cT, &lc->o, lc->w.p, lc->w.bytes);
    return st == CLSTM_OK ? loss_of(lc->p, lc->y, lc->hT, lc->cT) : NAN;
}

/* Best relative error over a sweep of steps of d loss / d v[i], in place. */
static double fd_check_elem(loss_ctx *lc, double *v, size_t i, double analytic, double *fd_out)
{
    static const double steps[] = {1e-4, 1e-5, 1e-6};
    const double orig = v[i];
    double best = INFINITY;
    *fd_out = NAN;
    for (size_t k = 0; k < sizeof steps / sizeof steps[0]; k++) {
        double xp = orig + steps[k], xm = orig - steps[k], lp, lm, fd, e;
        v[i] = xp;
        lp = loss_eval(lc);
        v[i] = xm;
        lm = loss_eval(lc);
        fd = (lp - lm) / (xp - xm);
        e = grad_relerr(fd, analytic);
        if (!(e >= best)) {
            best = e;
            *fd_out = fd;
        }
    }
    v[i] = orig;
    return best;
}

/* Check every element of v against the analytic gradient an, except NaN
 * elements of v (inputs past a length, which the forward must ignore). */
static void fd_check_array(loss_ctx *lc, double *v, const double *an, size_t n,
                           const char *what, const char *ctx)
{
    double worst = 0.0, worst_fd = 0.0, fd;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        double e;
        if (v[i] != v[i])
            continue;
        e = fd_check_elem(lc, v, i, an[i], &fd);
        if (!(e <= worst)) {
            worst = e;
            worst_i = i;
            worst_fd = fd;
        }
    }
    CHECK(worst <= GRAD_TOL,
          "%s: d loss / d %s: relative error %.3g > %g at element %zu "
          "(finite difference %.12g, backward %.12g)",
          ctx, what, worst, GRAD_TOL, worst_i, worst_fd, an[worst_i]);
}

static void test_gradcheck(clstm_backend be, shape s, uint64_t seed)
{
    char ctx[300], sh[200];
    clstm_model *m = make_model(CLSTM_FLOAT64, be, s, seed);
    problem p;
    result r;
    loss_ctx lc;
    void *pdata = NULL;
    size_t np = 0, nz;
    double loss, loss_train;

    if (!m)
        return;
    shape_str(sh, sizeof sh, s);
    snprintf(ctx, sizeof ctx, "gradcheck %s %s", backend_name(be), sh);
    p = problem_make(s, CLSTM_FLOAT64, seed);
    if (!train_step(m, &p, &r, ctx))
        goto done;
    CHECK_EQ(r.n_grads, n_params(s));
    /* dx past the lengths: exactly 0 (x is NaN there, never perturbed) */
    nz = past_len(s, r.dx, s.D, NULL);
    CHECK(nz == 0, "%s: %zu elements of dx past the lengths are not 0", ctx, nz);

    lc.m = m;
    lc.s = s;
    lc.p = &p;
    lc.x = ddup(p.x, n_x(s));
    lc.h0 = ddup(p.h0, n_h(s));
    lc.c0 = ddup(p.c0, n_c(s));
    lc.y = dalloc(n_y(s));
    lc.hT = dalloc(n_h(s));
    lc.cT = dalloc(n_c(s));
    lc.o = problem_opts(&p, dropout_active(s));
    lc.w = ws_make(m, s.T, s.B, lc.o.train);

    /* the loss at the unperturbed point is the training forward's */
    loss = loss_eval(&lc);
    loss_train = loss_of(&p, r.y, r.hT, r.cT);
    CHECK(fabs(loss - loss_train) <= 1e-12 * fmax(1.0, fabs(loss)),
          "%s: loss %.17g, from the training forward %.17g", ctx, loss, loss_train);

    CHECK_OK(clstm_params(m, &pdata, &np), ctx);
    fd_check_array(&lc, (double *)pdata, r.grads, np, "parameters", ctx);
    fd_check_array(&lc, lc.x, r.dx, n_x(s), "x", ctx);
    fd_check_array(&lc, lc.h0, r.dh0, n_h(s), "h0", ctx);
    fd_check_array(&lc, lc.c0, r.dc0, n_c(s), "c0", ctx);

    free(lc.x);
    free(lc.h0);
    free(lc.c0);
    free(lc.y);
    free(lc.hT);
    free(lc.cT);
    free(lc.w.p);
done:
    result_free(&r);
    problem_free(&p);
    clstm_free(m);
}

/* ------------------------------------------------------------ 3. backends */

/* The forward's outputs y, hT, cT. */
static void compare_outputs(const result *a, const result *ref, shape s, double tol,
                            const char *ctx)
{
    CHECK_CLOSE(a->y, ref->y, n_y(s), tol, ctx);
    CHECK_CLOSE(a->hT, ref->hT, n_h(s), tol, ctx);
    CHECK_CLOSE(a->cT, ref->cT, n_c(s), tol, ctx);
}

/* Everything a train_step gives. */
static void compare_results(const result *a, const result *ref, shape s, double tol,
                            const char *ctx)
{
    compare_outputs(a, ref, s, tol, ctx);
    CHECK_CLOSE(a->dx, ref->dx, n_x(s), tol, ctx);
    CHECK_CLOSE(a->dh0, ref->dh0, n_h(s), tol, ctx);
    CHECK_CLOSE(a->dc0, ref->dc0, n_c(s), tol, ctx);
    if (CHECK_EQ(a->n_grads, ref->n_grads))
        CHECK_CLOSE(a->grads, ref->grads, ref->n_grads, tol, ctx);
}

/* Every (backend, threads) pair against naive on one thread (itself checked
 * by the finite differences): a training step and an inference forward
 * (chunked when unidirectional, whole sequences when not). With dropout, every run has the problem's
 * dropout_seed: the masks are a function of (seed, layer, position) only,
 * so neither the backend nor the thread count may change them. Results
 * differ only by summation order:
 * measured worst 6e-16 (float64) and 4e-7 (float32), relative to the array's
 * largest element; the tolerances leave a wide margin. */
static void test_backend_agreement(clstm_dtype dt, shape s, uint64_t seed)
{
    const double tol = dt == CLSTM_FLOAT64 ? 1e-12 : 1e-5;
    const int old_threads = clstm_get_num_threads();
    char ctx[300], sh[200];
    problem p = problem_make(s, dt, seed);
    result ref[2] = {{0}}; /* training step, inference forward */
    int have_ref = 0;

    shape_str(sh, sizeof sh, s);
    for (int be_i = 0; be_i < 2; be_i++) {
        clstm_backend be = be_i == 0 ? CLSTM_BACKEND_NAIVE : CLSTM_BACKEND_BLAS;
        if (be == CLSTM_BACKEND_BLAS && !clstm_has_blas())
            continue;
        for (int threads = 1; threads <= 3; threads++) {
            clstm_model *m;
            result r[2] = {{0}};
            workspace wi;
            int ok;
            snprintf(ctx, sizeof ctx, "agreement %s %s threads=%d %s vs naive threads=1",
                     dtype_name(dt), backend_name(be), threads, sh);
            CHECK_OK(clstm_set_num_threads(threads), ctx);
            CHECK_EQ(clstm_get_num_threads(), threads);
            m = make_model(dt, be, s, seed);
            if (!m)
                continue;
            wi = ws_make(m, s.T, s.B, 0);
            ok = train_step(m, &p, &r[0], ctx) &&
                 forward_into(m, &p, problem_opts(&p, 0), wi, &r[1], ctx);
            free(wi.p);
            if (ok && !have_ref) {
                memcpy(ref, r, sizeof ref);
                have_ref = 1;
                clstm_free(m);
                continue;
            }
            if (ok) {
                compare_results(&r[0], &ref[0], s, tol, ctx);
                compare_outputs(&r[1], &ref[1], s, tol, ctx);
            }
            result_free(&r[0]);
            result_free(&r[1]);
            clstm_free(m);
        }
    }
    clstm_set_num_threads(old_threads);
    result_free(&ref[0]);
    result_free(&ref[1]);
    problem_free(&p);
}

/* ------------------------------------------------------------ 4. f32 vs f64 */

/* The float32 path (forward and backward) against float64 on the same
 * parameters and inputs, both rounded to float32: float32 rounding in the
 * sums gives about 1e-7 relative (measured), a wrong float32 kernel O(1).
 * Dropout masks do not depend on the dtype (the same dropout_seed). */
static void test_float32_vs_float64(clstm_backend be, shape s, uint64_t seed)
{
    char ctx[300], sh[200];
    clstm_model *m32 = make_model(CLSTM_FLOAT32, be, s, seed);
    clstm_model *m64 = make_model(CLSTM_FLOAT64, be, s, seed);
    problem p = problem_make(s, CLSTM_FLOAT32, seed);
    result r32, r64;
    double *params;
    size_t np;

    shape_str(sh, sizeof sh, s);
    snprintf(ctx, sizeof ctx, "float32 vs float64 %s %s", backend_name(be), sh);
    if (m32 && m64) {
        params = block_copy(m32, 0, &np);
        params_set(m64, params);
        free(params);
        if (train_step(m32, &p, &r32, ctx)) {
            if (train_step(m64, &p, &r64, ctx))
                compare_results(&r32, &r64, s, 1e-5, ctx);
            result_free(&r64);
        }
        result_free(&r32);
    }
    problem_free(&p);
    clstm_free(m32);
    clstm_free(m64);
}

/* ------------------------------------------------------------ 5. NULLs */

/* float64, any shape; zst: zeros, as long as the larger state (c). */
static void test_null_is_zero(clstm_backend be, shape s, uint64_t seed)
{
    const double tol = 1e-14;
    char ctx[300], sh[200];
    clstm_model *m = make_model(CLSTM_FLOAT64, be, s, seed);
    problem p = problem_make(s, CLSTM_FLOAT64, seed);
    double *zst = dalloc(n_c(s)), *zy = dalloc(n_y(s));
    double *y0 = dalloc(n_y(s)), *hT0 = dalloc(n_h(s)), *cT0 = dalloc(n_c(s));
    double *y1 = dalloc(n_y(s)), *hT1 = dalloc(n_h(s)), *cT1 = dalloc(n_c(s));
    double *dx0 = dalloc(n_x(s)), *dh00 = dalloc(n_h(s)), *dc00 = dalloc(n_c(s));
    double *dx1 = dalloc(n_x(s)), *dh01 = dalloc(n_h(s)), *dc01 = dalloc(n_c(s));
    const clstm_run_options oi = problem_opts(&p, 0), ot = problem_opts(&p, 1);
    double *g0 = NULL, *g1 = NULL;
    size_t ng;
    workspace w;

    if (!m)
        goto done;
    shape_str(sh, sizeof sh, s);
    w = ws_make(m, s.T, s.B, 1);

    /* forward: NULL h0/c0 == zeros; NULL hT/cT leave y unchanged */
    snprintf(ctx, sizeof ctx, "NULL h0/c0 vs zeros %s %s", backend_name(be), sh);
    CHECK_OK(run_forward(m, s.T, s.B, p.x, zst, zst, y0, hT0, cT0, oi, w), ctx);
    CHECK_OK(run_forward(m, s.T, s.B, p.x, NULL, NULL, y1, hT1, cT1, oi, w), ctx);
    CHECK_CLOSE(y1, y0, n_y(s), tol, ctx);
    CHECK_CLOSE(hT1, hT0, n_h(s), tol, ctx);
    CHECK_CLOSE(cT1, cT0, n_c(s), tol, ctx);
    snprintf(ctx, sizeof ctx, "NULL hT/cT %s %s", backend_name(be), sh);
    CHECK_OK(run_forward(m, s.T, s.B, p.x, p.h0, p.c0, y0, hT0, cT0, oi, w), ctx);
    CHECK_OK(run_forward(m, s.T, s.B, p.x, p.h0, p.c0, y1, NULL, NULL, oi, w), ctx);
    CHECK_CLOSE(y1, y0, n_y(s), tol, ctx);

    /* backward after a NULL-h0/c0 forward == after an explicit-zeros forward */
    snprintf(ctx, sizeof ctx, "backward after NULL h0/c0 forward %s %s", backend_name(be),
             sh);
    CHECK_OK(clstm_zero_grad(m), ctx);
    CHECK_OK(run_forward(m, s.T, s.B, p.x, zst, zst, y0, NULL, NULL, ot, w), ctx);
    CHECK_OK(run_backward(m, s.T, s.B, p.Wy, p.Wh, p.Wc, dx0, dh00, dc00, w), ctx);
    g0 = block_copy(m, 1, &ng);
    CHECK_OK(clstm_zero_grad(m), ctx);
    CHECK_OK(run_forward(m, s.T, s.B, p.x, NULL, NULL, y1, NULL, NULL, ot, w), ctx);
    CHECK_OK(run_backward(m, s.T, s.B, p.Wy, p.Wh, p.Wc, dx1, dh01, dc01, w), ctx);
    g1 = block_copy(m, 1, &ng);
    CHECK_CLOSE(dx1, dx0, n_x(s), tol, ctx);
    CHECK_CLOSE(dh01, dh00, n_h(s), tol, ctx);
    CHECK_CLOSE(dc01, dc00, n_c(s), tol, ctx);
    CHECK_CLOSE(g1, g0, ng, tol, ctx);
    free(g0);
    free(g1);

    /* backward: each of dy, dhT, dcT NULL == zeros; dx/dh0/dc0 NULL leave the
     * parameter gradient unchanged */
    for (int which = 0; which < 4; which++) {
        const double *dy = which == 0 ? NULL : p.Wy, *dy0 = which == 0 ? zy : p.Wy;
        const double *dh = which == 1 ? NULL : p.Wh, *dh0 = which == 1 ? zst : p.Wh;
        const double *dc = which == 2 ? NULL : p.Wc, *dc0 = which == 2 ? zst : p.Wc;
        static const char *names[] = {"dy", "dhT", "dcT", "dx/dh0/dc0"};
        snprintf(ctx, sizeof ctx, "backward with NULL %s %s %s", names[which],
                 backend_name(be), sh);
        CHECK_OK(clstm_zero_grad(m), ctx);
        CHECK_OK(run_forward(m, s.T, s.B, p.x, p.h0, p.c0, y0, NULL, NULL, ot, w), ctx);
        CHECK_OK(run_backward(m, s.T, s.B, dy0, dh0, dc0, dx0, dh00, dc00, w), ctx);
        g0 = block_copy(m, 1, &ng);
        CHECK_OK(clstm_zero_grad(m), ctx);
        CHECK_OK(run_forward(m, s.T, s.B, p.x, p.h0, p.c0, y0, NULL, NULL, ot, w), ctx);
        if (which == 3) {
            CHECK_OK(run_backward(m, s.T, s.B, dy, dh, dc, NULL, NULL, NULL, w), ctx);
        } else {
            CHECK_OK(run_backward(m, s.T, s.B, dy, dh, dc, dx1, dh01, dc01, w), ctx);
            CHECK_CLOSE(dx1, dx0, n_x(s), tol, ctx);
            CHECK_CLOSE(dh01, dh00, n_h(s), tol, ctx);
            CHECK_CLOSE(dc01, dc00, n_c(s), tol, ctx);
        }
        g1 = block_copy(m, 1, &ng);
        CHECK_CLOSE(g1, g0, ng, tol, ctx);
        free(g0);
        free(g1);
    }

    /* all three NULL: every gradient is exactly zero */
    snprintf(ctx, sizeof ctx, "backward with dy, dhT, dcT all NULL %s %s", backend_name(be),
             sh);
    CHECK_OK(clstm_zero_grad(m), ctx);
    CHECK_OK(run_forward(m, s.T, s.B, p.x, p.h0, p.c0, y0, NULL, NULL, ot, w), ctx);
    fill_uniform(&(uint64_t){1}, dx1, n_x(s), 1.0, 2.0);
    CHECK_OK(run_backward(m, s.T, s.B, NULL, NULL, NULL, dx1, dh01, dc01, w), ctx);
    g1 = block_copy(m, 1, &ng);
    {
        int nonzero = 0;
        for (size_t i = 0; i < n_x(s); i++)
            nonzero += dx1[i] != 0.0;
        for (size_t i = 0; i < n_h(s); i++)
            nonzero += dh01[i] != 0.0;
        for (size_t i = 0; i < n_c(s); i++)
            nonzero += dc01[i] != 0.0;
        for (size_t i = 0; i < ng; i++)
            nonzero += g1[i] != 0.0;
        CHECK(nonzero == 0, "%s: %d nonzero gradient elements", ctx, nonzero);
    }
    free(g1);
    free(w.p);
done:
    free(zst);
    free(zy);
    free(y0);
    free(hT0);
    free(cT0);
    free(y1);
    free(hT1);
    free(cT1);
    free(dx0);
    free(dh00);
    free(dc00);
    free(dx1);
    free(dh01);
    free(dc01);
    problem_free(&p);
    clstm_free(m);
}

/* lengths NULL == every length T, in the training forward and backward;
 * s has no lengths. */
static void test_full_lengths(clstm_dtype dt, clstm_backend be, shape s, uint64_t seed)
{
    const double tol = dt == CLSTM_FLOAT64 ? 1e-14 : 1e-6;
    int64_t *full = xcalloc((size_t)s.B, sizeof *full);
    clstm_model *m = make_model(dt, be, s, seed);
    problem p = problem_make(s, dt, seed);
    result r0 = {0}, r1 = {0};
    char ctx[300], sh[200];

    shape_str(sh, sizeof sh, s);
    snprintf(ctx, sizeof ctx, "lengths all T vs NULL %s %s %s", dtype_name(dt),
             backend_name(be), sh);
    for (int64_t b = 0; b < s.B; b++)
        full[b] = s.T;
    if (m && train_step(m, &p, &r0, ctx)) {
        p.s.len = full;
        if (train_step(m, &p, &r1, ctx))
            compare_results(&r1, &r0, s, tol, ctx);
    }
    result_free(&r0);
    result_free(&r1);
    problem_free(&p);
    clstm_free(m);
    free(full);
}

/* ------------------------------------------------------------ 6. accumulate */

/* Every tensor's gradient accumulates, weight_hr included; with dropout
 * both backwards have the same masks (one dropout_seed). */
static void test_accumulation(clstm_dtype dt, clstm_backend be, shape s, uint64_t seed)
{
    const double tol = dt == CLSTM_FLOAT64 ? 1e-13 : 1e-6;
    char ctx[300], sh[200];
    clstm_model *m = make_model(dt, be, s, seed);
    problem p = problem_make(s, dt, seed);
    double *y = dalloc(n_y(s)), *dx1 = dalloc(n_x(s)), *dx2 = dalloc(n_x(s));
    const clstm_run_options ot = problem_opts(&p, 1);
    double *g1, *g2;
    size_t n1, n2;
    workspace w;

    if (!m)
        goto done;
    shape_str(sh, sizeof sh, s);
    snprintf(ctx, sizeof ctx, "accumulation %s %s %s", dtype_name(dt), backend_name(be), sh);
    w = ws_make(m, s.T, s.B, 1);

    /* a fresh model has exactly zero gradients */
    g1 = block_copy(m, 1, &n1);
    {
        size_t nonzero = 0;
        for (size_t i = 0; i < n1; i++)
            nonzero += g1[i] != 0.0;
        CHECK(nonzero == 0, "%s: fresh model has %zu nonzero gradients", ctx, nonzero);
    }
    free(g1);

    CHECK_OK(run_forward(m, s.T, s.B, p.x, p.h0, p.c0, y, NULL, NULL, ot, w), ctx);
    CHECK_OK(run_backward(m, s.T, s.B, p.Wy, p.Wh, p.Wc, dx1, NULL, NULL, w), ctx);
    g1 = block_copy(m, 1, &n1);
    CHECK_OK(run_forward(m, s.T, s.B, p.x, p.h0, p.c0, y, NULL, NULL, ot, w), ctx);
    CHECK_OK(run_backward(m, s.T, s.B, p.Wy, p.Wh, p.Wc, dx2, NULL, NULL, w), ctx);
    g2 = block_copy(m, 1, &n2);
    /* dx is written, not accumulated */
    CHECK_CLOSE(dx2, dx1, n_x(s), tol, ctx);
    if (CHECK_EQ(n1, n2)) {
        size_t nonzero = 0;
        for (size_t i = 0; i < n1; i++) {
            nonzero += g1[i] != 0.0;
            g1[i] *= 2.0;
        }
        CHECK(nonzero > n1 / 2, "%s: only %zu of %zu gradients nonzero", ctx, nonzero, n1);
        CHECK_CLOSE(g2, g1, n1, tol, ctx);
    }
    free(g1);
    free(g2);

    CHECK_OK(clstm_zero_grad(m), ctx);
    g1 = block_copy(m, 1, &n1);
    {
        size_t nonzero = 0;
        for (size_t i = 0; i < n1; i++)
            nonzero += g1[i] != 0.0;
        CHECK(nonzero == 0, "%s: %zu nonzero gradients after clstm_zero_grad", ctx, nonzero);
    }
    free(g1);
    free(w.p);
done:
    free(y);
    free(dx1);
    free(dx2);
    problem_free(&p);
    clstm_free(m);
}

/* ------------------------------------------------------------ 7. inference */

/* s without dropout (a training forward with dropout is not inference). */
static void test_inference_vs_training(clstm_dtype dt, clstm_backend be, shape s,
                                       uint64_t seed)
{
    /* the same equations in the same dtype; float32 may differ by summation
     * order only, float64 by at most a few ulps */
    const double tol = dt == CLSTM_FLOAT64 ? 1e-14 : 1e-6;
    char ctx[300], sh[200];
    clstm_model *m = make_model(dt, be, s, seed);
    problem p = problem_make(s, dt, seed);
    result r[3] = {{0}};
    workspace wi, wt;

    if (!m)
        goto done;
    shape_str(sh, sizeof sh, s);
    snprintf(ctx, sizeof ctx, "inference vs training %s %s %s", dtype_name(dt),
             backend_name(be), sh);
    wi = ws_make(m, s.T, s.B, 0);
    wt = ws_make(m, s.T, s.B, 1);
    /* inference, training, inference in a (larger) training workspace */
    if (forward_into(m, &p, problem_opts(&p, 0), wi, &r[0], ctx))
        for (int i = 1; i < 3; i++)
            if (forward_into(m, &p, problem_opts(&p, i == 1), wt, &r[i], ctx))
                compare_outputs(&r[i], &r[0], s, tol, ctx);
    free(wi.p);
    free(wt.p);
done:
    for (int i = 0; i < 3; i++)
        result_free(&r[i]);
    problem_free(&p);
    clstm_free(m);
}

/* ------------------------------------------------------------ 8. seeds */

static void test_seeds(void)
{
    const shape s = {.D = 9, .H = 40, .L = 2};
    const double bound = 1.0 / sqrt((double)s.H);
    clstm_model *a = make_model(CLSTM_FLOAT64, CLSTM_BACKEND_DEFAULT, s, 1234);
    clstm_model *b = make_model(CLSTM_FLOAT64, CLSTM_BACKEND_NAIVE, s, 1234);
    clstm_model *c = make_model(CLSTM_FLOAT64, CLSTM_BACKEND_DEFAULT, s, 1235);
    clstm_model *f = make_model(CLSTM_FLOAT32, CLSTM_BACKEND_DEFAULT, s, 1234);
    double *pa, *pb, *pc, *pf;
    size_t na, nb, nc, nf, differ = 0, out64 = 0, out32 = 0, mismatch32 = 0;
    double lo = INFINITY, hi = -INFINITY, mean = 0.0;

    if (!a || !b || !c || !f)
        goto done;
    pa = block_copy(a, 0, &na);
    pb = block_copy(b, 0, &nb);
    pc = block_copy(c, 0, &nc);
    pf = block_copy(f, 0, &nf);
    CHECK(na == nb && na == nc && na == nf, "parameter counts differ: %zu %zu %zu %zu", na,
          nb, nc, nf);
    if (na != nb || na != nc || na != nf)
        goto free_blocks;
    CHECK(memcmp(pa, pb, na * sizeof(double)) == 0,
          "same seed, different backend: parameter blocks differ");
    for (size_t i = 0; i < na; i++) {
        differ += pa[i] != pc[i];
        out64 += !(fabs(pa[i]) <= bound);
        out32 += !(fabs(pf[i]) <= (double)(float)bound);
        mismatch32 += (float)pa[i] != (float)pf[i] || pf[i] != (double)(float)pf[i];
        lo = fmin(lo, pa[i]);
        hi = fmax(hi, pa[i]);
        mean += pa[i];
    }
    mean /= (double)na;
    CHECK(differ > na * 9 / 10, "seeds 1234 and 1235: only %zu of %zu parameters differ",
          differ, na);
    CHECK(out64 == 0, "float64: %zu parameters outside [-1/sqrt(H), 1/sqrt(H)]", out64);
    CHECK(out32 == 0, "float32: %zu parameters outside [-1/sqrt(H), 1/sqrt(H)]", out32);
    CHECK(mismatch32 == 0, "%zu float32 parameters are not the float64 ones rounded",
          mismatch32);
    /* U(-b, b) over ~21000 draws: P(max < 0.999 b) = 0.9995^21000 ~ 3e-5, so
     * the extremes pin the bound to 0.1%; the mean is near 0 */
    CHECK(lo < -0.999 * bound && hi > 0.999 * bound, "range [%g, %g] vs bound %g", lo, hi,
          bound);
    CHECK(fabs(mean) < 0.05 * bound, "mean %g of U(-%g, %g) draws", mean, bound, bound);

    /* clstm_init_params(seed) reproduces clstm_create(seed) */
    CHECK_OK(clstm_init_params(c, 1234), "clstm_init_params");
    free(pc);
    pc = block_copy(c, 0, &nc);
    CHECK(memcmp(pa, pc, na * sizeof(double)) == 0,
          "clstm_init_params(1234) differs from clstm_create(1234)");
    CHECK_OK(clstm_init_params(c, 99), "clstm_init_params");
    free(pc);
    pc = block_copy(c, 0, &nc);
    CHECK(memcmp(pa, pc, na * sizeof(double)) != 0,
          "clstm_init_params(99) equals seed 1234");
    /* a different H scales the bound: H = 1 draws in [-1, 1] */
    {
        clstm_model *h1 = make_model(CLSTM_FLOAT64, CLSTM_BACKEND_DEFAULT,
                                     (shape){.D = 3, .H = 1, .L = 2}, 7);
        if (h1) {
            size_t n1, out = 0, big = 0;
            double *p1 = block_copy(h1, 0, &n1);
            for (size_t i = 0; i < n1; i++) {
                out += !(fabs(p1[i]) <= 1.0);
                big += fabs(p1[i]) > 1.0 / sqrt(40.0);
            }
            CHECK(out == 0, "H=1: %zu parameters outside [-1, 1]", out);
            CHECK(big > 0, "H=1: every parameter within 1/sqrt(40): bound not scaled by H");
            free(p1);
            clstm_free(h1);
        }
    }
free_blocks:
    free(pa);
    free(pb);
    free(pc);
    free(pf);
done:
    clstm_free(a);
    clstm_free(b);
    clstm_free(c);
    clstm_free(f);
}

/* ------------------------------------------------------------ 9. tensors */

/* Per layer, per direction ("" then "_reverse"): weight_ih, weight_hh,
 * bias_ih, bias_hh, then weight_hr with a projection: torch's order. */
static void test_tensor_enumeration(clstm_dtype dt, shape s)
{
    static const char *kinds[] = {"weight_ih_l", "weight_hh_l", "bias_ih_l", "bias_hh_l",
                                  "weight_hr_l"};
    const int64_t N = n_dir(s), R = r_size(s), nk = s.P > 0 ? 5 : 4, want_nt = s.L * N * nk;
    clstm_model *m = make_model(dt, CLSTM_BACKEND_DEFAULT, s, 5);
    int64_t nt = -1;
    size_t np = 0, ng = 0, next = 0;
    void *pd = NULL, *gd = NULL;
    char ctx[300], sh[200];

    if (!m)
        return;
    shape_str(sh, sizeof sh, s);
    snprintf(ctx, sizeof ctx, "tensors %s %s", dtype_name(dt), sh);
    CHECK_OK(clstm_num_tensors(m, &nt), ctx);
    CHECK_EQ(nt, want_nt);
    CHECK_OK(clstm_params(m, &pd, &np), ctx);
    CHECK_OK(clstm_grads(m, &gd, &ng), ctx);
    CHECK_EQ(np, n_params(s));
    CHECK_EQ(ng, np);
    CHECK(pd != NULL && gd != NULL && pd != gd, "%s: blocks %p and %p", ctx, pd, gd);
    for (int64_t i = 0; i < nt && i < want_nt; i++) {
        const int64_t k = i / (N * nk), dir = i / nk % N, kind = i % nk;
        const int64_t Dk = k == 0 ? s.D : N * R;
        const int64_t rows = kind == 4 ? s.P : 4 * s.H;
        const int64_t cols = kind == 0 ? Dk : kind == 1 ? R : kind == 4 ? s.H : 1;
        clstm_tensor_info ti;
        char want[CLSTM_NAME_MAX];
        memset(&ti, 0x5A, sizeof ti);
        snprintf(want, sizeof want, "%s%lld%s", kinds[kind], (long long)k,
                 dir ? "_reverse" : "");
        if (!CHECK(clstm_tensor_info_get(m, i, &ti) == CLSTM_OK, "%s: tensor %lld", ctx,
                   (long long)i))
            continue;
        CHECK(memchr(ti.name, '\0', sizeof ti.name) != NULL, "%s: tensor %lld name not "
              "NUL-terminated", ctx, (long long)i);
        ti.name[CLSTM_NAME_MAX - 1] = '\0';
        CHECK(strcmp(ti.name, want) == 0, "%s: tensor %lld is \"%s\", expected \"%s\"", ctx,
              (long long)i, ti.name, want);
        CHECK(ti.offset == next, "%s: %s offset %zu, expected %zu", ctx, want, ti.offset,
              next);
        if (kind == 0)
            CHECK(ti.offset == group_offset(s, k, dir), "%s: %s offset %zu, the reference "
                  "reads it at %zu", ctx, want, ti.offset, group_offset(s, k, dir));
        CHECK(ti.ndim == (kind == 2 || kind == 3 ? 1 : 2), "%s: %s ndim %d", ctx, want,
              ti.ndim);
        CHECK(ti.shape[0] == rows && ti.shape[1] == cols,
              "%s: %s shape (%lld, %lld), expected (%lld, %lld)", ctx, want,
              (long long)ti.shape[0], (long long)ti.shape[1], (long long)rows,
              (long long)cols);
        next += (size_t)(rows * cols);
    }
    CHECK(next == np, "%s: tensors cover %zu elements, block has %zu", ctx, next, np);
    clstm_free(m);
}

/* ------------------------------------------------------------ 10. ownership */

/* Backward must use the workspace's copies, not the caller's x, h0, c0 or
 * lengths (the header: the lengths are copied). float64. */
static void test_inputs_not_retained(clstm_backend be, shape s, uint64_t seed)
{
    char ctx[300], sh[200];
    clstm_model *m = make_model(CLSTM_FLOAT64, be, s, seed);
    problem p = problem_make(s, CLSTM_FLOAT64, seed);
    result r;
    double *x = ddup(p.x, n_x(s)), *h0 = ddup(p.h0, n_h(s)), *c0 = ddup(p.c0, n_c(s));
    double *y = dalloc(n_y(s)), *dx = dalloc(n_x(s)), *dh0 = dalloc(n_h(s));
    double *dc0 = dalloc(n_c(s)), *g;
    int64_t *len = xcalloc((size_t)s.B, sizeof *len);
    clstm_run_options o = problem_opts(&p, 1);
    size_t ng;
    workspace w;

    if (!m)
        goto done;
    shape_str(sh, sizeof sh, s);
    snprintf(ctx, sizeof ctx, "inputs overwritten between forward and backward %s %s",
             backend_name(be), sh);
    if (!train_step(m, &p, &r, ctx)) {
        result_free(&r);
        goto done;
    }
    w = ws_make(m, s.T, s.B, 1);
    for (int64_t b = 0; b < s.B; b++)
        len[b] = seq_len(s, b);
    o.lengths = s.len ? len : NULL;
    CHECK_OK(clstm_zero_grad(m), ctx);
    CHECK_OK(clstm_forward_ex(m, s.T, s.B, x, h0, c0, y, NULL, NULL, &o, w.p, w.bytes), ctx);
    fill_uniform(&(uint64_t){3}, x, n_x(s), 5.0, 9.0);
    fill_uniform(&(uint64_t){4}, h0, n_h(s), 5.0, 9.0);
    fill_uniform(&(uint64_t){5}, c0, n_c(s), 5.0, 9.0);
    fill_uniform(&(uint64_t){6}, y, n_y(s), 5.0, 9.0);
    for (int64_t b = 0; b < s.B; b++)
        len[b] = b % 2 ? -1 : s.T + 5; /* invalid: any read is visible */
    CHECK_OK(clstm_backward(m, s.T, s.B, p.Wy, p.Wh, p.Wc, dx, dh0, dc0, w.p, w.bytes), ctx);
    g = block_copy(m, 1, &ng);
    CHECK_CLOSE(dx, r.dx, n_x(s), 1e-13, ctx);
    CHECK_CLOSE(dh0, r.dh0, n_h(s), 1e-13, ctx);
    CHECK_CLOSE(dc0, r.dc0, n_c(s), 1e-13, ctx);
    CHECK_CLOSE(g, r.grads, ng, 1e-13, ctx);
    free(g);
    free(w.p);
    result_free(&r);
done:
    free(len);
    free(x);
    free(h0);
    free(c0);
    free(y);
    free(dx);
    free(dh0);
    free(dc0);
    problem_free(&p);
    clstm_free(m);
}

/* ------------------------------------------------------------ 11. threads */

/* Several threads run forward on one model at once, each with its own
 * workspace and input (inference, then training); each must get its serial
 * answer. With dropout each has its own dropout_seed: no generator state
 * may be shared between calls. float64. */
static void test_concurrent_forward(clstm_backend be, shape s, uint64_t seed)
{
    enum { NT = 4 };
    clstm_model *m = make_model(CLSTM_FLOAT64, be, s, seed);
    problem p[NT];
    double *serial[NT], *par[NT];
    workspace w[NT];
    clstm_run_options o[NT];
    char ctx[300], sh[200];

    for (int i = 0; i < NT; i++) {
        p[i] = problem_make(s, CLSTM_FLOAT64, seed + (uint64_t)i);
        serial[i] = dalloc(n_y(s));
        par[i] = dalloc(n_y(s));
    }
    if (!m)
        goto done;
    shape_str(sh, sizeof sh, s);
    for (int train = 0; train <= 1; train++) {
        int bad = 0;
        snprintf(ctx, sizeof ctx, "concurrent forward train=%d %s %s", train,
                 backend_name(be), sh);
        for (int i = 0; i < NT; i++) {
            w[i] = ws_make(m, s.T, s.B, train);
            o[i] = problem_opts(&p[i], train);
            CHECK_OK(clstm_forward_ex(m, s.T, s.B, p[i].x, p[i].h0, p[i].c0, serial[i], NULL,
                                      NULL, &o[i], w[i].p, w[i].bytes),
                     ctx);
        }
#pragma omp parallel for num_threads(NT) reduction(+ : bad)
        for (int i = 0; i < NT; i++)
            bad += clstm_forward_ex(m, s.T, s.B, p[i].x, p[i].h0, p[i].c0, par[i], NULL, NULL,
                                    &o[i], w[i].p, w[i].bytes) != CLSTM_OK;
        CHECK(bad == 0, "%s: %d calls failed", ctx, bad);
        for (int i = 0; i < NT; i++) {
            CHECK_CLOSE(par[i], serial[i], n_y(s), 1e-13, ctx);
            free(w[i].p);
        }
    }
done:
    for (int i = 0; i < NT; i++) {
        problem_free(&p[i]);
        free(serial[i]);
        free(par[i]);
    }
    clstm_free(m);
}

/* ------------------------------------------------------------ 12. alignment */

/* The header asks only for ws_bytes bytes at ws: any address must work.
 * float64, s without dropout (inference is compared with training). */
static void test_ws_alignment(clstm_backend be, shape s, uint64_t seed)
{
    static const size_t offsets[] = {1, 4, 8, 24, 63};
    char ctx[300], sh[200];
    clstm_model *m = make_model(CLSTM_FLOAT64, be, s, seed);
    problem p = problem_make(s, CLSTM_FLOAT64, seed);
    result r;
    double *y = dalloc(n_y(s)), *yi = dalloc(n_y(s)), *dx = dalloc(n_x(s)), *g;
    const clstm_run_options oi = problem_opts(&p, 0), ot = problem_opts(&p, 1);
    size_t need = 0, need_inf = 0, ng;

    if (!m)
        goto done;
    if (!train_step(m, &p, &r, "alignment reference")) {
        result_free(&r);
        goto done;
    }
    CHECK_OK(clstm_workspace_size(m, s.T, s.B, 1, &need), "alignment");
    CHECK_OK(clstm_workspace_size(m, s.T, s.B, 0, &need_inf), "alignment");
    for (size_t k = 0; k < sizeof offsets / sizeof offsets[0]; k++) {
        char *buf = xcalloc(need + offsets[k], 1);
        workspace w = {buf + offsets[k], need}, wi = {buf + offsets[k], need_inf};
        shape_str(sh, sizeof sh, s);
        snprintf(ctx, sizeof ctx, "workspace at malloc + %zu %s %s", offsets[k],
                 backend_name(be), sh);
        CHECK_OK(clstm_zero_grad(m), ctx);
        CHECK_OK(run_forward(m, s.T, s.B, p.x, p.h0, p.c0, y, NULL, NULL, ot, w), ctx);
        CHECK_OK(run_backward(m, s.T, s.B, p.Wy, p.Wh, p.Wc, dx, NULL, NULL, w), ctx);
        g = block_copy(m, 1, &ng);
        CHECK_CLOSE(y, r.y, n_y(s), 1e-13, ctx);
        CHECK_CLOSE(dx, r.dx, n_x(s), 1e-13, ctx);
        CHECK_CLOSE(g, r.grads, ng, 1e-13, ctx);
        CHECK_OK(run_forward(m, s.T, s.B, p.x, p.h0, p.c0, yi, NULL, NULL, oi, wi), ctx);
        CHECK_CLOSE(yi, r.y, n_y(s), 1e-13, ctx);
        free(g);
        free(buf);
    }
    result_free(&r);
done:
    free(y);
    free(yi);
    free(dx);
    problem_free(&p);
    clstm_free(m);
}

/* ------------------------------------------------------------ 13. dropout */

static int same_outputs(const result *a, const result *b, shape s)
{
    return memcmp(a->y, b->y, n_y(s) * sizeof(double)) == 0 &&
           memcmp(a->hT, b->hT, n_h(s) * sizeof(double)) == 0 &&
           memcmp(a->cT, b->cT, n_c(s) * sizeof(double)) == 0;
}

/* What dropout must do without knowing its masks: a training forward
 * drops something (differs from inference) but only between layers (layer
 * 0's final state is inference's); one dropout_seed gives bitwise the same
 * forward, another seed another one; inference ignores the seed; with
 * L = 1 there is nothing to drop. */
static void test_dropout_properties(clstm_dtype dt, clstm_backend be, uint64_t seed)
{
    static const int64_t len[] = {5, 0, 3};
    static const struct {
        int train;
        uint64_t seed;
    } runs[] = {{0, 7}, {0, 8}, {1, 7}, {1, 7}, {1, 8}};
    enum { NR = sizeof runs / sizeof runs[0] };
    const shape s = {5, 3, 4, 6, 3, 2, 1, 0.5, len}, s1 = {5, 3, 4, 6, 1, 2, 1, 0.5, len};
    const double tol = dt == CLSTM_FLOAT64 ? 1e-14 : 1e-6;
    const size_t h_l0 = (size_t)(n_dir(s) * s.B * r_size(s));
    const size_t c_l0 = (size_t)(n_dir(s) * s.B * s.H);
    clstm_model *m = make_model(dt, be, s, seed), *m1 = make_model(dt, be, s1, seed);
    problem p = problem_make(s, dt, seed), p1 = problem_make(s1, dt, seed);
    result r[NR + 2];
    workspace w = {NULL, 0}, w1 = {NULL, 0};
    clstm_run_options o;
    size_t at;
    char ctx[300], sh[200];

    memset(r, 0, sizeof r);
    if (!m || !m1)
        goto done;
    shape_str(sh, sizeof sh, s);
    snprintf(ctx, sizeof ctx, "dropout %s %s %s", dtype_name(dt), backend_name(be), sh);
    w = ws_make(m, s.T, s.B, 1);
    for (int i = 0; i < NR; i++) {
        o = problem_opts(&p, runs[i].train);
        o.dropout_seed = runs[i].seed;
        if (!forward_into(m, &p, o, w, &r[i], ctx))
            goto done;
    }
    CHECK(same_outputs(&r[0], &r[1], s), "%s: inference depends on dropout_seed", ctx);
    CHECK(same_outputs(&r[2], &r[3], s), "%s: two training forwards with dropout_seed 7 "
          "differ", ctx);
    CHECK(memcmp(r[2].y, r[4].y, n_y(s) * sizeof(double)) != 0,
          "%s: dropout_seed 7 and 8 give the same training y", ctx);
    CHECK(max_err(r[2].y, r[0].y, n_y(s), &at) > 1e-3,
          "%s: a training forward with dropout %g is inference's", ctx, s.dropout);
    CHECK(past_len(s, r[2].y, n_dir(s) * r_size(s), NULL) == 0,
          "%s: y of a training forward not 0 past the lengths", ctx);
    /* layer 0 reads x, never dropped: its final states (index 0..N-1) */
    CHECK_CLOSE(r[2].hT, r[0].hT, h_l0, tol, ctx);
    CHECK_CLOSE(r[2].cT, r[0].cT, c_l0, tol, ctx);

    /* L = 1: a training forward with dropout is the inference forward */
    shape_str(sh, sizeof sh, s1);
    snprintf(ctx, sizeof ctx, "dropout with one layer %s %s %s", dtype_name(dt),
             backend_name(be), sh);
    w1 = ws_make(m1, s1.T, s1.B, 1);
    if (forward_into(m1, &p1, problem_opts(&p1, 0), w1, &r[NR], ctx) &&
        forward_into(m1, &p1, problem_opts(&p1, 1), w1, &r[NR + 1], ctx))
        compare_outputs(&r[NR + 1], &r[NR], s1, tol, ctx);
done:
    for (int i = 0; i < NR + 2; i++)
        result_free(&r[i]);
    free(w.p);
    free(w1.p);
    problem_free(&p);
    problem_free(&p1);
    clstm_free(m);
    clstm_free(m1);
}

/* The masks themselves, float64, L = 2 and no lengths: a training forward
 * must be the reference's under some mask of entries 0 and 1/(1-p) on
 * layer 1's input. That input has K = T*B*N*R <= 10 entries, so every mask
 * is tried; over SEEDS dropout seeds about a fraction p must be 0: with
 * SEEDS*K = 192 draws the binomial's standard deviation is at most 0.036,
 * and the check allows 0.15. */
static void test_dropout_masks(clstm_backend be, shape s, uint64_t seed)
{
    enum { SEEDS = 32 };
    const size_t K = n_y(s);
    clstm_model *m = make_model(CLSTM_FLOAT64, be, s, seed);
    problem p = problem_make(s, CLSTM_FLOAT64, seed);
    double *mask = dalloc(K), *params = NULL;
    result ref = {0}, r = {0};
    size_t np, at, dropped = 0;
    double frac;
    workspace w = {NULL, 0};
    char ctx[300], sh[200];

    shape_str(sh, sizeof sh, s);
    snprintf(ctx, sizeof ctx, "dropout masks %s %s", backend_name(be), sh);
    if (!m || !CHECK(s.L == 2 && !s.len && K <= 10, "%s: not a mask test shape", ctx))
        goto done;
    params = block_copy(m, 0, &np);
    w = ws_make(m, s.T, s.B, 1);
    ref.y = dalloc(n_y(s));
    ref.hT = dalloc(n_h(s));
    ref.cT = dalloc(n_c(s));
    for (uint64_t ds = 0; ds < SEEDS; ds++) {
        clstm_run_options o = problem_opts(&p, 1);
        double best = INFINITY;
        size_t best_mask = 0;
        o.dropout_seed = seed * 1000u + ds;
        result_free(&r);
        if (!forward_into(m, &p, o, w, &r, ctx))
            break;
        for (size_t bits = 0; bits < ((size_t)1 << K); bits++) {
            double e;
            for (size_t i = 0; i < K; i++)
                mask[i] = (bits >> i) & 1 ? 0.0 : 1.0 / (1.0 - s.dropout);
            ref_forward(s, params, p.x, p.h0, p.c0, mask, ref.y, ref.hT, ref.cT);
            e = fmax(max_err(r.y, ref.y, n_y(s), &at),
                     fmax(max_err(r.hT, ref.hT, n_h(s), &at),
                          max_err(r.cT, ref.cT, n_c(s), &at)));
            if (e < best) {
                best = e;
                best_mask = bits;
            }
        }
        CHECK(best <= 1e-12, "%s dropout_seed=%llu: no mask of 0 and 1/(1-p) on layer 1's "
              "input gives the training forward (closest: error %.3g)", ctx,
              (unsigned long long)o.dropout_seed, best);
        for (size_t i = 0; i < K; i++)
            dropped += (best_mask >> i) & 1;
    }
    frac = (double)dropped / (double)(SEEDS * K);
    CHECK(fabs(frac - s.dropout) < 0.15, "%s: %.3f of the inputs dropped at p = %g", ctx, frac,
          s.dropout);
done:
    result_free(&r);
    result_free(&ref);
    free(w.p);
    free(mask);
    free(params);
    problem_free(&p);
    clstm_free(m);
}

/* ------------------------------------------------------------ main */

int main(void)
{
    /* split even small models across threads, so the split itself is tested */
    clstm_set_min_thread_work(0);
    /* lengths, unsorted, each with a 0 and a full one (T = the first number) */
    static const int64_t len4_4[] = {2, 0, 4, 1}, len4_3[] = {2, 4, 0}, len5_3[] = {5, 0, 3};
    static const int64_t len6_3[] = {4, 6, 0}, len1_3[] = {1, 0, 1}, len100_3[] = {100, 0, 37};
    static const int64_t len40_3[] = {17, 40, 0}, len_empty[] = {0, 0};
    /* T > 32: inference runs in chunks of 32; sequences end inside the first
     * chunk, just past it, at the end of the second, and at T */
    static const int64_t len70_5[] = {33, 0, 70, 31, 64};
    static const shape grad_shapes[] = {
        DIMS(1, 1, 1, 1, 1), DIMS(3, 2, 4, 5, 1), DIMS(4, 3, 3, 2, 3), DIMS(2, 1, 5, 3, 2),
        {3, 2, 2, 3, 1, 0, 1, 0.0, NULL},      /* bidirectional, L = 1 */
        {3, 2, 2, 2, 2, 0, 1, 0.0, NULL},      /* bidirectional, L = 2 */
        {3, 2, 3, 5, 2, 3, 0, 0.0, NULL},      /* projection H = 5, P = 3 */
        {4, 4, 2, 3, 2, 0, 0, 0.0, len4_4},    /* lengths */
        {3, 2, 2, 3, 2, 0, 0, 0.5, NULL},      /* dropout (a fixed dropout_seed) */
        {4, 3, 3, 4, 1, 2, 1, 0.0, len4_3},    /* bidirectional + projection + lengths */
        {4, 3, 2, 5, 2, 3, 1, 0.5, len4_3},    /* all of them */
        {2, 2, 2, 3, 2, 2, 1, 0.5, len_empty}}; /* every sequence empty */
    static const shape fwd_shapes[] = {
        DIMS(1, 1, 1, 1, 1), DIMS(3, 2, 4, 5, 1), DIMS(4, 3, 3, 2, 3), DIMS(2, 1, 5, 3, 2),
        DIMS(1, 4, 6, 3, 2), DIMS(7, 5, 33, 40, 2), DIMS(40, 2, 3, 4, 1), DIMS(70, 2, 3, 4, 3),
        {3, 2, 4, 5, 1, 0, 1, 0.0, NULL},    {4, 3, 3, 4, 2, 0, 1, 0.0, NULL},
        {4, 3, 3, 5, 2, 3, 0, 0.0, NULL},    {4, 3, 6, 9, 3, 4, 1, 0.0, NULL},
        {4, 4, 3, 4, 2, 0, 0, 0.0, len4_4},  {4, 3, 3, 5, 2, 3, 1, 0.0, len4_3},
        {3, 2, 2, 3, 2, 0, 0, 0.5, NULL},    {4, 3, 2, 5, 2, 3, 1, 0.5, len4_3},
        {70, 5, 3, 4, 2, 0, 0, 0.0, len70_5}, {70, 5, 3, 6, 3, 4, 0, 0.0, len70_5},
        {40, 3, 3, 4, 2, 2, 1, 0.0, len40_3}, {2, 2, 2, 3, 2, 2, 1, 0.0, len_empty},
        {35, 2, 2, 3, 2, 0, 0, 0.0, len_empty}};
    static const shape infer_shapes[] = {
        DIMS(1, 3, 5, 7, 2), DIMS(100, 3, 5, 7, 2), {1, 3, 5, 7, 2, 3, 1, 0.0, len1_3},
        {100, 3, 5, 7, 2, 0, 0, 0.0, len100_3}, {100, 3, 5, 7, 2, 3, 1, 0.0, len100_3}};
    /* the other tests run a plain problem and one with every option */
    static const shape plain = DIMS(3, 2, 4, 5, 2);
    static const shape rich = {5, 3, 4, 6, 2, 3, 1, 0.0, len5_3};
    static const shape rich_dropout = {5, 3, 4, 6, 2, 3, 1, 0.5, len5_3};
    int64_t len32[32], len16[16];
    shape medium = {9, 32, 24, 47, 2, 19, 1, 0.0, len32};
    const shape medium_uni = {36, 16, 24, 47, 2, 19, 0, 0.0, len16};
    clstm_backend backends[2];
    int nb = 0;
    uint64_t seed = 1;

    backends[nb++] = CLSTM_BACKEND_NAIVE;
    if (clstm_has_blas())
        backends[nb++] = CLSTM_BACKEND_BLAS;

    for (int bi = 0; bi < nb; bi++) {
        const clstm_backend be = backends[bi];
        for (size_t i = 0; i < sizeof fwd_shapes / sizeof fwd_shapes[0]; i++) {
            test_forward_reference(CLSTM_FLOAT64, be, fwd_shapes[i], seed++);
            test_forward_reference(CLSTM_FLOAT32, be, fwd_shapes[i], seed++);
        }
        for (size_t i = 0; i < sizeof grad_shapes / sizeof grad_shapes[0]; i++)
            test_gradcheck(be, grad_shapes[i], seed++);
        test_float32_vs_float64(be, (shape)DIMS(5, 3, 6, 8, 2), seed++);
        test_float32_vs_float64(be, rich_dropout, seed++);
        test_null_is_zero(be, plain, seed++);
        test_null_is_zero(be, rich_dropout, seed++);
        test_full_lengths(CLSTM_FLOAT64, be, (shape){5, 3, 4, 6, 2, 3, 1, 0.0, NULL},
                          seed++);
        test_full_lengths(CLSTM_FLOAT32, be, (shape)DIMS(40, 3, 4, 6, 2), seed++);
        test_accumulation(CLSTM_FLOAT64, be, (shape)DIMS(4, 3, 5, 6, 2), seed++);
        test_accumulation(CLSTM_FLOAT32, be, (shape)DIMS(4, 3, 5, 6, 2), seed++);
        test_accumulation(CLSTM_FLOAT64, be, rich_dropout, seed++);
        test_accumulation(CLSTM_FLOAT32, be, rich_dropout, seed++);
        for (int dti = 0; dti < 2; dti++) {
            const clstm_dtype dt = dti ? CLSTM_FLOAT64 : CLSTM_FLOAT32;
            for (size_t i = 0; i < sizeof infer_shapes / sizeof infer_shapes[0]; i++)
                test_inference_vs_training(dt, be, infer_shapes[i], seed++);
            test_dropout_properties(dt, be, seed++);
        }
        test_dropout_masks(be, (shape){2, 1, 2, 3, 2, 0, 0, 0.5, NULL}, seed++);
        test_dropout_masks(be, (shape){3, 1, 2, 2, 2, 1, 1, 0.25, NULL}, seed++);
        test_inputs_not_retained(be, plain, seed++);
        test_inputs_not_retained(be, rich_dropout, seed++);
        test_concurrent_forward(be, (shape)DIMS(6, 3, 7, 9, 2), seed++);
        test_concurrent_forward(be, (shape){6, 3, 7, 9, 2, 4, 1, 0.5, len6_3}, seed++);
        test_ws_alignment(be, (shape)DIMS(4, 3, 5, 6, 2), seed++);
        test_ws_alignment(be, rich, seed++);
    }
    test_backend_agreement(CLSTM_FLOAT64, (shape)DIMS(7, 5, 33, 40, 2), seed++);
    test_backend_agreement(CLSTM_FLOAT32, (shape)DIMS(7, 5, 33, 40, 2), seed++);
    test_backend_agreement(CLSTM_FLOAT64, (shape)DIMS(5, 32, 64, 96, 2), seed++);
    test_backend_agreement(CLSTM_FLOAT32, (shape)DIMS(5, 32, 64, 96, 2), seed++);
    /* odd H = 9: uneven slices of hidden units across threads; L = 3 */
    test_backend_agreement(CLSTM_FLOAT64, (shape)DIMS(3, 64, 5, 9, 3), seed++);
    test_backend_agreement(CLSTM_FLOAT32, (shape)DIMS(3, 64, 5, 9, 3), seed++);
    /* bidirectional + projection + lengths 0..9 in no order (T = 9), odd H;
     * then with dropout, whose masks no backend or thread count may change;
     * and unidirectional with lengths 0..36 in no order (T = 36: two
     * inference chunks) */
    for (int64_t b = 0; b < medium.B; b++)
        len32[b] = b * 7 % 10;
    for (int64_t b = 0; b < medium_uni.B; b++)
        len16[b] = b * 23 % 37;
    test_backend_agreement(CLSTM_FLOAT64, medium, seed++);
    test_backend_agreement(CLSTM_FLOAT32, medium, seed++);
    test_backend_agreement(CLSTM_FLOAT64, medium_uni, seed++);
    test_backend_agreement(CLSTM_FLOAT32, medium_uni, seed++);
    medium.dropout = 0.3;
    test_backend_agreement(CLSTM_FLOAT64, medium, seed++);
    test_seeds();
    test_tensor_enumeration(CLSTM_FLOAT32, (shape){.D = 1, .H = 1, .L = 1});
    test_tensor_enumeration(CLSTM_FLOAT64, (shape){.D = 3, .H = 5, .L = 1});
    test_tensor_enumeration(CLSTM_FLOAT32, (shape){.D = 7, .H = 2, .L = 3});
    test_tensor_enumeration(CLSTM_FLOAT64, (shape){.D = 3, .H = 5, .L = 2, .P = 3});
    test_tensor_enumeration(CLSTM_FLOAT32, (shape){.D = 4, .H = 3, .L = 3, .bidir = 1});
    test_tensor_enumeration(CLSTM_FLOAT64,
                            (shape){.D = 2, .H = 6, .L = 2, .P = 1, .bidir = 1});
    return ctest_finish();
}
