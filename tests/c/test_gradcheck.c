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
 *
 * Shapes: x (T, B, D), y (T, B, H), states (L, B, H), row-major.
 * The reference below shares no code with src/: it is the header's equations
 * written as loops over a double parameter block laid out as the header says.
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

typedef struct {
    int64_t T, B, D, H, L;
} shape;

static size_t n_x(shape s) { return (size_t)(s.T * s.B * s.D); }
static size_t n_y(shape s) { return (size_t)(s.T * s.B * s.H); }
static size_t n_st(shape s) { return (size_t)(s.L * s.B * s.H); }

/* Offset of layer k's weight_ih in the parameter block, per the header. */
static size_t layer_offset(int64_t D, int64_t H, int64_t k)
{
    size_t off = 0;
    for (int64_t j = 0; j < k; j++) {
        int64_t Dj = j == 0 ? D : H;
        off += (size_t)(4 * H * Dj + 4 * H * H + 8 * H);
    }
    return off;
}

static size_t n_params(shape s) { return layer_offset(s.D, s.H, s.L); }

static void shape_str(char *buf, size_t len, shape s)
{
    snprintf(buf, len, "T=%lld B=%lld D=%lld H=%lld L=%lld", (long long)s.T, (long long)s.B,
             (long long)s.D, (long long)s.H, (long long)s.L);
}

/* ------------------------------------------------------------ reference */

static double sigmoid(double v) { return 1.0 / (1.0 + exp(-v)); }

/* The header's equations, in double, one sample and one gate row at a time.
 * p: parameter block; h0, c0 may be NULL (zeros); hT, cT may be NULL. */
static void ref_forward(shape s, const double *p, const double *x, const double *h0,
                        const double *c0, double *y, double *hT, double *cT)
{
    const int64_t T = s.T, B = s.B, D = s.D, H = s.H, L = s.L, G = 4 * H;
    double *h = dalloc(n_st(s)), *c = dalloc(n_st(s)), *a = dalloc((size_t)G);

    if (h0)
        memcpy(h, h0, n_st(s) * sizeof(double));
    if (c0)
        memcpy(c, c0, n_st(s) * sizeof(double));
    for (int64_t t = 0; t < T; t++) {
        for (int64_t k = 0; k < L; k++) {
            const int64_t Dk = k == 0 ? D : H;
            const double *W_ih = p + layer_offset(D, H, k);
            const double *W_hh = W_ih + G * Dk;
            const double *b_ih = W_hh + G * H;
            const double *b_hh = b_ih + G;
            for (int64_t b = 0; b < B; b++) {
                /* layer 0 reads x_t; layer k reads h of layer k-1 at step t */
                const double *in = k == 0 ? x + (t * B + b) * D : h + ((k - 1) * B + b) * H;
                double *hk = h + (k * B + b) * H;
                double *ck = c + (k * B + b) * H;
                for (int64_t r = 0; r < G; r++) {
                    double acc = b_ih[r] + b_hh[r];
                    for (int64_t j = 0; j < Dk; j++)
                        acc += W_ih[r * Dk + j] * in[j];
                    for (int64_t j = 0; j < H; j++)
                        acc += W_hh[r * H + j] * hk[j];
                    a[r] = acc;
                }
                for (int64_t u = 0; u < H; u++) {
                    double ig = sigmoid(a[u]);
                    double fg = sigmoid(a[H + u]);
                    double gg = tanh(a[2 * H + u]);
                    double og = sigmoid(a[3 * H + u]);
                    ck[u] = fg * ck[u] + ig * gg;
                    hk[u] = og * tanh(ck[u]);
                }
            }
        }
        memcpy(y + t * B * H, h + (L - 1) * B * H, (size_t)(B * H) * sizeof(double));
    }
    if (hT)
        memcpy(hT, h, n_st(s) * sizeof(double));
    if (cT)
        memcpy(cT, c, n_st(s) * sizeof(double));
    free(h);
    free(c);
    free(a);
}

/* ------------------------------------------------------------ model helpers */

static clstm_model *make_model(clstm_dtype dt, clstm_backend be, int64_t D, int64_t H,
                               int64_t L, uint64_t seed)
{
    clstm_config cfg = clstm_config_default();
    clstm_model *m = NULL;
    clstm_status st;
    cfg.input_size = D;
    cfg.hidden_size = H;
    cfg.num_layers = L;
    cfg.dtype = dt;
    cfg.backend = be;
    st = clstm_create(&cfg, seed, &m);
    if (!CHECK(st == CLSTM_OK && m != NULL, "clstm_create(D=%lld H=%lld L=%lld %s %s): %s",
               (long long)D, (long long)H, (long long)L, dtype_name(dt), backend_name(be),
               clstm_status_string(st))) {
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
    shape s;
    clstm_get_config(m, &c);
    s.T = T;
    s.B = B;
    s.D = c.input_size;
    s.H = c.hidden_size;
    s.L = c.num_layers;
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

/* clstm_forward on double arrays, converted to and from the model's dtype. */
static clstm_status run_forward(clstm_model *m, int64_t T, int64_t B, const double *x,
                                const double *h0, const double *c0, double *y, double *hT,
                                double *cT, int train, workspace w)
{
    const clstm_dtype dt = model_dtype(m);
    const shape s = model_shape(m, T, B);
    void *xt = to_dtype(dt, x, n_x(s));
    void *h0t = to_dtype(dt, h0, n_st(s));
    void *c0t = to_dtype(dt, c0, n_st(s));
    void *yt = xcalloc(n_y(s), esize(dt));
    void *hTt = hT ? xcalloc(n_st(s), esize(dt)) : NULL;
    void *cTt = cT ? xcalloc(n_st(s), esize(dt)) : NULL;
    clstm_status st = clstm_forward(m, T, B, xt, h0t, c0t, yt, hTt, cTt, train, w.p, w.bytes);
    if (st == CLSTM_OK) {
        from_dtype(dt, yt, y, n_y(s));
        from_dtype(dt, hTt, hT, n_st(s));
        from_dtype(dt, cTt, cT, n_st(s));
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
    void *dhTt = to_dtype(dt, dhT, n_st(s));
    void *dcTt = to_dtype(dt, dcT, n_st(s));
    void *dxt = dx ? xcalloc(n_x(s), esize(dt)) : NULL;
    void *dh0t = dh0 ? xcalloc(n_st(s), esize(dt)) : NULL;
    void *dc0t = dc0 ? xcalloc(n_st(s), esize(dt)) : NULL;
    clstm_status st =
        clstm_backward(m, T, B, dyt, dhTt, dcTt, dxt, dh0t, dc0t, w.p, w.bytes);
    if (st == CLSTM_OK) {
        from_dtype(dt, dxt, dx, n_x(s));
        from_dtype(dt, dh0t, dh0, n_st(s));
        from_dtype(dt, dc0t, dc0, n_st(s));
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
    double *x, *h0, *c0; /* inputs */
    double *Wy, *Wh, *Wc; /* loss weights = dy, dhT, dcT */
} problem;

static problem problem_make(shape s, clstm_dtype dt, uint64_t seed)
{
    problem p;
    uint64_t r = seed * 7919u + 17u;
    p.s = s;
    p.x = dalloc(n_x(s));
    p.h0 = dalloc(n_st(s));
    p.c0 = dalloc(n_st(s));
    p.Wy = dalloc(n_y(s));
    p.Wh = dalloc(n_st(s));
    p.Wc = dalloc(n_st(s));
    fill_uniform(&r, p.x, n_x(s), -1.5, 1.5);
    fill_uniform(&r, p.h0, n_st(s), -0.9, 0.9);
    fill_uniform(&r, p.c0, n_st(s), -1.5, 1.5);
    fill_uniform(&r, p.Wy, n_y(s), -1.0, 1.0);
    fill_uniform(&r, p.Wh, n_st(s), -1.0, 1.0);
    fill_uniform(&r, p.Wc, n_st(s), -1.0, 1.0);
    quantize(dt, p.x, n_x(s));
    quantize(dt, p.h0, n_st(s));
    quantize(dt, p.c0, n_st(s));
    quantize(dt, p.Wy, n_y(s));
    quantize(dt, p.Wh, n_st(s));
    quantize(dt, p.Wc, n_st(s));
    return p;
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

/* zero_grad, training forward, backward with the problem's loss weights. */
static int train_step(clstm_model *m, const problem *p, result *r, const char *ctx)
{
    const shape s = p->s;
    workspace w = ws_make(m, s.T, s.B, 1);
    clstm_status st;
    r->y = dalloc(n_y(s));
    r->hT = dalloc(n_st(s));
    r->cT = dalloc(n_st(s));
    r->dx = dalloc(n_x(s));
    r->dh0 = dalloc(n_st(s));
    r->dc0 = dalloc(n_st(s));
    r->grads = NULL;
    r->n_grads = 0;
    CHECK_OK(clstm_zero_grad(m), ctx);
    st = run_forward(m, s.T, s.B, p->x, p->h0, p->c0, r->y, r->hT, r->cT, 1, w);
    if (CHECK(st == CLSTM_OK, "%s: training forward: %s", ctx, clstm_status_string(st))) {
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
    char ctx[200], sh[100];
    clstm_model *m = make_model(dt, be, s.D, s.H, s.L, seed);
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
    rhT = dalloc(n_st(s));
    rcT = dalloc(n_st(s));
    y = dalloc(n_y(s));
    hT = dalloc(n_st(s));
    cT = dalloc(n_st(s));
    for (int with_state = 1; with_state >= 0; with_state--) {
        const double *h0 = with_state ? p.h0 : NULL;
        const double *c0 = with_state ? p.c0 : NULL;
        ref_forward(s, params, p.x, h0, c0, ry, rhT, rcT);
        for (int train = 0; train <= 1; train++) {
            workspace w = ws_make(m, s.T, s.B, train);
            clstm_status st;
            snprintf(ctx, sizeof ctx, "forward vs reference %s %s %s train=%d h0/c0=%s",
                     dtype_name(dt), backend_name(be), sh, train, with_state ? "given" : "NULL");
            st = run_forward(m, s.T, s.B, p.x, h0, c0, y, hT, cT, train, w);
            if (CHECK(st == CLSTM_OK, "%s: %s", ctx, clstm_status_string(st))) {
                CHECK_CLOSE(y, ry, n_y(s), tol, ctx);
                CHECK_CLOSE(hT, rhT, n_st(s), tol, ctx);
                CHECK_CLOSE(cT, rcT, n_st(s), tol, ctx);
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

typedef struct {
    clstm_model *m;
    shape s;
    const problem *p;
    double *x, *h0, *c0; /* the (perturbed) inputs */
    double *y, *hT, *cT;
    workspace w;
} loss_ctx;

static double loss_eval(loss_ctx *lc)
{
    const shape s = lc->s;
    double sum = 0.0;
    clstm_status st = clstm_forward(lc->m, s.T, s.B, lc->x, lc->h0, lc->c0, lc->y, lc->hT,
                                    lc->cT, 0, lc->w.p, lc->w.bytes);
    if (st != CLSTM_OK)
        return NAN;
    for (size_t i = 0; i < n_y(s); i++)
        sum += lc->y[i] * lc->p->Wy[i];
    for (size_t i = 0; i < n_st(s); i++)
        sum += lc->hT[i] * lc->p->Wh[i] + lc->cT[i] * lc->p->Wc[i];
    return sum;
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

/* Check every element of v against the analytic gradient an. */
static void fd_check_array(loss_ctx *lc, double *v, const double *an, size_t n,
                           const char *what, const char *ctx)
{
    double worst = 0.0, worst_fd = 0.0, fd;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        double e = fd_check_elem(lc, v, i, an[i], &fd);
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
    char ctx[200], sh[100];
    clstm_model *m = make_model(CLSTM_FLOAT64, be, s.D, s.H, s.L, seed);
    problem p;
    result r;
    loss_ctx lc;
    void *pdata = NULL;
    size_t np = 0;

    if (!m)
        return;
    shape_str(sh, sizeof sh, s);
    snprintf(ctx, sizeof ctx, "gradcheck %s %s", backend_name(be), sh);
    p = problem_make(s, CLSTM_FLOAT64, seed);
    if (!train_step(m, &p, &r, ctx))
        goto done;
    CHECK_EQ(r.n_grads, n_params(s));

    lc.m = m;
    lc.s = s;
    lc.p = &p;
    lc.x = ddup(p.x, n_x(s));
    lc.h0 = ddup(p.h0, n_st(s));
    lc.c0 = ddup(p.c0, n_st(s));
    lc.y = dalloc(n_y(s));
    lc.hT = dalloc(n_st(s));
    lc.cT = dalloc(n_st(s));
    lc.w = ws_make(m, s.T, s.B, 0);

    /* the loss at the unperturbed point uses the same forward as training */
    CHECK(fabs(loss_eval(&lc)) < INFINITY, "%s: loss evaluation failed", ctx);

    CHECK_OK(clstm_params(m, &pdata, &np), ctx);
    fd_check_array(&lc, (double *)pdata, r.grads, np, "parameters", ctx);
    fd_check_array(&lc, lc.x, r.dx, n_x(s), "x", ctx);
    fd_check_array(&lc, lc.h0, r.dh0, n_st(s), "h0", ctx);
    fd_check_array(&lc, lc.c0, r.dc0, n_st(s), "c0", ctx);

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

static void compare_results(const result *a, const result *ref, shape s, double tol,
                            const char *ctx)
{
    CHECK_CLOSE(a->y, ref->y, n_y(s), tol, ctx);
    CHECK_CLOSE(a->hT, ref->hT, n_st(s), tol, ctx);
    CHECK_CLOSE(a->cT, ref->cT, n_st(s), tol, ctx);
    CHECK_CLOSE(a->dx, ref->dx, n_x(s), tol, ctx);
    CHECK_CLOSE(a->dh0, ref->dh0, n_st(s), tol, ctx);
    CHECK_CLOSE(a->dc0, ref->dc0, n_st(s), tol, ctx);
    if (CHECK_EQ(a->n_grads, ref->n_grads))
        CHECK_CLOSE(a->grads, ref->grads, ref->n_grads, tol, ctx);
}

/* Every (backend, threads) pair against naive on one thread (itself checked
 * by the finite differences). Results differ only by summation order:
 * measured worst 6e-16 (float64) and 4e-7 (float32), relative to the array's
 * largest element; the tolerances leave a wide margin. */
static void test_backend_agreement(clstm_dtype dt, shape s, uint64_t seed)
{
    const double tol = dt == CLSTM_FLOAT64 ? 1e-12 : 1e-5;
    const int old_threads = clstm_get_num_threads();
    char ctx[200], sh[100];
    problem p = problem_make(s, dt, seed);
    result ref = {0};
    int have_ref = 0;

    shape_str(sh, sizeof sh, s);
    for (int be_i = 0; be_i < 2; be_i++) {
        clstm_backend be = be_i == 0 ? CLSTM_BACKEND_NAIVE : CLSTM_BACKEND_BLAS;
        if (be == CLSTM_BACKEND_BLAS && !clstm_has_blas())
            continue;
        for (int threads = 1; threads <= 3; threads++) {
            clstm_model *m;
            result r;
            snprintf(ctx, sizeof ctx, "agreement %s %s threads=%d %s vs naive threads=1",
                     dtype_name(dt), backend_name(be), threads, sh);
            CHECK_OK(clstm_set_num_threads(threads), ctx);
            CHECK_EQ(clstm_get_num_threads(), threads);
            m = make_model(dt, be, s.D, s.H, s.L, seed);
            if (!m)
                continue;
            if (train_step(m, &p, &r, ctx)) {
                if (!have_ref) {
                    ref = r;
                    have_ref = 1;
                    clstm_free(m);
                    continue;
                }
                compare_results(&r, &ref, s, tol, ctx);
            }
            result_free(&r);
            clstm_free(m);
        }
    }
    clstm_set_num_threads(old_threads);
    if (have_ref)
        result_free(&ref);
    problem_free(&p);
}

/* ------------------------------------------------------------ 4. f32 vs f64 */

/* The float32 path (forward and backward) against float64 on the same
 * parameters and inputs, both rounded to float32: float32 rounding in the
 * sums gives about 1e-7 relative (measured), a wrong float32 kernel O(1). */
static void test_float32_vs_float64(clstm_backend be, shape s, uint64_t seed)
{
    char ctx[200], sh[100];
    clstm_model *m32 = make_model(CLSTM_FLOAT32, be, s.D, s.H, s.L, seed);
    clstm_model *m64 = make_model(CLSTM_FLOAT64, be, s.D, s.H, s.L, seed);
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

static void test_null_is_zero(clstm_backend be, uint64_t seed)
{
    const shape s = {3, 2, 4, 5, 2};
    const double tol = 1e-14;
    char ctx[200];
    clstm_model *m = make_model(CLSTM_FLOAT64, be, s.D, s.H, s.L, seed);
    problem p = problem_make(s, CLSTM_FLOAT64, seed);
    double *zst = dalloc(n_st(s)), *zy = dalloc(n_y(s));
    double *y0 = dalloc(n_y(s)), *hT0 = dalloc(n_st(s)), *cT0 = dalloc(n_st(s));
    double *y1 = dalloc(n_y(s)), *hT1 = dalloc(n_st(s)), *cT1 = dalloc(n_st(s));
    double *dx0 = dalloc(n_x(s)), *dh00 = dalloc(n_st(s)), *dc00 = dalloc(n_st(s));
    double *dx1 = dalloc(n_x(s)), *dh01 = dalloc(n_st(s)), *dc01 = dalloc(n_st(s));
    double *g0 = NULL, *g1 = NULL;
    size_t ng;
    workspace w;

    if (!m)
        goto done;
    w = ws_make(m, s.T, s.B, 1);

    /* forward: NULL h0/c0 == zeros; NULL hT/cT leave y unchanged */
    snprintf(ctx, sizeof ctx, "NULL h0/c0 vs zeros %s", backend_name(be));
    CHECK_OK(run_forward(m, s.T, s.B, p.x, zst, zst, y0, hT0, cT0, 0, w), ctx);
    CHECK_OK(run_forward(m, s.T, s.B, p.x, NULL, NULL, y1, hT1, cT1, 0, w), ctx);
    CHECK_CLOSE(y1, y0, n_y(s), tol, ctx);
    CHECK_CLOSE(hT1, hT0, n_st(s), tol, ctx);
    CHECK_CLOSE(cT1, cT0, n_st(s), tol, ctx);
    snprintf(ctx, sizeof ctx, "NULL hT/cT %s", backend_name(be));
    CHECK_OK(run_forward(m, s.T, s.B, p.x, p.h0, p.c0, y0, hT0, cT0, 0, w), ctx);
    CHECK_OK(run_forward(m, s.T, s.B, p.x, p.h0, p.c0, y1, NULL, NULL, 0, w), ctx);
    CHECK_CLOSE(y1, y0, n_y(s), tol, ctx);

    /* backward after a NULL-h0/c0 forward == after an explicit-zeros forward */
    snprintf(ctx, sizeof ctx, "backward after NULL h0/c0 forward %s", backend_name(be));
    CHECK_OK(clstm_zero_grad(m), ctx);
    CHECK_OK(run_forward(m, s.T, s.B, p.x, zst, zst, y0, NULL, NULL, 1, w), ctx);
    CHECK_OK(run_backward(m, s.T, s.B, p.Wy, p.Wh, p.Wc, dx0, dh00, dc00, w), ctx);
    g0 = block_copy(m, 1, &ng);
    CHECK_OK(clstm_zero_grad(m), ctx);
    CHECK_OK(run_forward(m, s.T, s.B, p.x, NULL, NULL, y1, NULL, NULL, 1, w), ctx);
    CHECK_OK(run_backward(m, s.T, s.B, p.Wy, p.Wh, p.Wc, dx1, dh01, dc01, w), ctx);
    g1 = block_copy(m, 1, &ng);
    CHECK_CLOSE(dx1, dx0, n_x(s), tol, ctx);
    CHECK_CLOSE(dh01, dh00, n_st(s), tol, ctx);
    CHECK_CLOSE(dc01, dc00, n_st(s), tol, ctx);
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
        snprintf(ctx, sizeof ctx, "backward with NULL %s %s", names[which], backend_name(be));
        CHECK_OK(clstm_zero_grad(m), ctx);
        CHECK_OK(run_forward(m, s.T, s.B, p.x, p.h0, p.c0, y0, NULL, NULL, 1, w), ctx);
        CHECK_OK(run_backward(m, s.T, s.B, dy0, dh0, dc0, dx0, dh00, dc00, w), ctx);
        g0 = block_copy(m, 1, &ng);
        CHECK_OK(clstm_zero_grad(m), ctx);
        CHECK_OK(run_forward(m, s.T, s.B, p.x, p.h0, p.c0, y0, NULL, NULL, 1, w), ctx);
        if (which == 3) {
            CHECK_OK(run_backward(m, s.T, s.B, dy, dh, dc, NULL, NULL, NULL, w), ctx);
        } else {
            CHECK_OK(run_backward(m, s.T, s.B, dy, dh, dc, dx1, dh01, dc01, w), ctx);
            CHECK_CLOSE(dx1, dx0, n_x(s), tol, ctx);
            CHECK_CLOSE(dh01, dh00, n_st(s), tol, ctx);
            CHECK_CLOSE(dc01, dc00, n_st(s), tol, ctx);
        }
        g1 = block_copy(m, 1, &ng);
        CHECK_CLOSE(g1, g0, ng, tol, ctx);
        free(g0);
        free(g1);
    }

    /* all three NULL: every gradient is exactly zero */
    snprintf(ctx, sizeof ctx, "backward with dy, dhT, dcT all NULL %s", backend_name(be));
    CHECK_OK(clstm_zero_grad(m), ctx);
    CHECK_OK(run_forward(m, s.T, s.B, p.x, p.h0, p.c0, y0, NULL, NULL, 1, w), ctx);
    fill_uniform(&(uint64_t){1}, dx1, n_x(s), 1.0, 2.0);
    CHECK_OK(run_backward(m, s.T, s.B, NULL, NULL, NULL, dx1, dh01, dc01, w), ctx);
    g1 = block_copy(m, 1, &ng);
    {
        int nonzero = 0;
        for (size_t i = 0; i < n_x(s); i++)
            nonzero += dx1[i] != 0.0;
        for (size_t i = 0; i < n_st(s); i++)
            nonzero += (dh01[i] != 0.0) + (dc01[i] != 0.0);
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

/* ------------------------------------------------------------ 6. accumulate */

static void test_accumulation(clstm_dtype dt, clstm_backend be, uint64_t seed)
{
    const shape s = {4, 3, 5, 6, 2};
    const double tol = dt == CLSTM_FLOAT64 ? 1e-13 : 1e-6;
    char ctx[200];
    clstm_model *m = make_model(dt, be, s.D, s.H, s.L, seed);
    problem p = problem_make(s, dt, seed);
    double *y = dalloc(n_y(s)), *dx1 = dalloc(n_x(s)), *dx2 = dalloc(n_x(s));
    double *g1, *g2;
    size_t n1, n2;
    workspace w;

    if (!m)
        goto done;
    snprintf(ctx, sizeof ctx, "accumulation %s %s", dtype_name(dt), backend_name(be));
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

    CHECK_OK(run_forward(m, s.T, s.B, p.x, p.h0, p.c0, y, NULL, NULL, 1, w), ctx);
    CHECK_OK(run_backward(m, s.T, s.B, p.Wy, p.Wh, p.Wc, dx1, NULL, NULL, w), ctx);
    g1 = block_copy(m, 1, &n1);
    CHECK_OK(run_forward(m, s.T, s.B, p.x, p.h0, p.c0, y, NULL, NULL, 1, w), ctx);
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

static void test_inference_vs_training(clstm_dtype dt, clstm_backend be, int64_t T,
                                       uint64_t seed)
{
    const shape s = {T, 3, 5, 7, 2};
    /* the same equations in the same dtype; float32 may differ by summation
     * order only, float64 by at most a few ulps */
    const double tol = dt == CLSTM_FLOAT64 ? 1e-14 : 1e-6;
    char ctx[200];
    clstm_model *m = make_model(dt, be, s.D, s.H, s.L, seed);
    problem p = problem_make(s, dt, seed);
    double *y0 = dalloc(n_y(s)), *hT0 = dalloc(n_st(s)), *cT0 = dalloc(n_st(s));
    double *y1 = dalloc(n_y(s)), *hT1 = dalloc(n_st(s)), *cT1 = dalloc(n_st(s));
    workspace wi, wt;

    if (!m)
        goto done;
    snprintf(ctx, sizeof ctx, "inference vs training %s %s T=%lld", dtype_name(dt),
             backend_name(be), (long long)T);
    wi = ws_make(m, T, s.B, 0);
    wt = ws_make(m, T, s.B, 1);
    CHECK_OK(run_forward(m, T, s.B, p.x, p.h0, p.c0, y0, hT0, cT0, 0, wi), ctx);
    CHECK_OK(run_forward(m, T, s.B, p.x, p.h0, p.c0, y1, hT1, cT1, 1, wt), ctx);
    CHECK_CLOSE(y1, y0, n_y(s), tol, ctx);
    CHECK_CLOSE(hT1, hT0, n_st(s), tol, ctx);
    CHECK_CLOSE(cT1, cT0, n_st(s), tol, ctx);
    /* inference in a (larger) training workspace */
    CHECK_OK(run_forward(m, T, s.B, p.x, p.h0, p.c0, y1, hT1, cT1, 0, wt), ctx);
    CHECK_CLOSE(y1, y0, n_y(s), tol, ctx);
    CHECK_CLOSE(hT1, hT0, n_st(s), tol, ctx);
    CHECK_CLOSE(cT1, cT0, n_st(s), tol, ctx);
    free(wi.p);
    free(wt.p);
done:
    free(y0);
    free(hT0);
    free(cT0);
    free(y1);
    free(hT1);
    free(cT1);
    problem_free(&p);
    clstm_free(m);
}

/* ------------------------------------------------------------ 8. seeds */

static void test_seeds(void)
{
    const int64_t D = 9, H = 40, L = 2;
    const double bound = 1.0 / sqrt((double)H);
    clstm_model *a = make_model(CLSTM_FLOAT64, CLSTM_BACKEND_DEFAULT, D, H, L, 1234);
    clstm_model *b = make_model(CLSTM_FLOAT64, CLSTM_BACKEND_NAIVE, D, H, L, 1234);
    clstm_model *c = make_model(CLSTM_FLOAT64, CLSTM_BACKEND_DEFAULT, D, H, L, 1235);
    clstm_model *f = make_model(CLSTM_FLOAT32, CLSTM_BACKEND_DEFAULT, D, H, L, 1234);
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
        clstm_model *h1 = make_model(CLSTM_FLOAT64, CLSTM_BACKEND_DEFAULT, 3, 1, 2, 7);
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

static void test_tensor_enumeration(clstm_dtype dt, int64_t D, int64_t H, int64_t L)
{
    clstm_model *m = make_model(dt, CLSTM_BACKEND_DEFAULT, D, H, L, 5);
    static const char *kinds[] = {"weight_ih_l", "weight_hh_l", "bias_ih_l", "bias_hh_l"};
    int64_t nt = -1;
    size_t np = 0, ng = 0, next = 0;
    void *pd = NULL, *gd = NULL;
    char ctx[120];

    if (!m)
        return;
    snprintf(ctx, sizeof ctx, "tensors %s D=%lld H=%lld L=%lld", dtype_name(dt),
             (long long)D, (long long)H, (long long)L);
    CHECK_OK(clstm_num_tensors(m, &nt), ctx);
    CHECK_EQ(nt, 4 * L);
    CHECK_OK(clstm_params(m, &pd, &np), ctx);
    CHECK_OK(clstm_grads(m, &gd, &ng), ctx);
    CHECK_EQ(np, layer_offset(D, H, L));
    CHECK_EQ(ng, np);
    CHECK(pd != NULL && gd != NULL && pd != gd, "%s: blocks %p and %p", ctx, pd, gd);
    for (int64_t i = 0; i < nt && i < 4 * L; i++) {
        const int64_t k = i / 4, kind = i % 4, Dk = k == 0 ? D : H;
        const int64_t rows = 4 * H, cols = kind == 0 ? Dk : kind == 1 ? H : 1;
        clstm_tensor_info ti;
        char want[CLSTM_NAME_MAX];
        memset(&ti, 0x5A, sizeof ti);
        snprintf(want, sizeof want, "%s%lld", kinds[kind], (long long)k);
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
        CHECK(ti.ndim == (kind < 2 ? 2 : 1), "%s: %s ndim %d", ctx, want, ti.ndim);
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

/* Backward must use the workspace's copies, not the caller's x, h0, c0. */
static void test_inputs_not_retained(clstm_backend be, uint64_t seed)
{
    const shape s = {3, 2, 4, 5, 2};
    char ctx[100];
    clstm_model *m = make_model(CLSTM_FLOAT64, be, s.D, s.H, s.L, seed);
    problem p = problem_make(s, CLSTM_FLOAT64, seed);
    result r;
    double *x = ddup(p.x, n_x(s)), *h0 = ddup(p.h0, n_st(s)), *c0 = ddup(p.c0, n_st(s));
    double *y = dalloc(n_y(s)), *dx = dalloc(n_x(s)), *dh0 = dalloc(n_st(s));
    double *dc0 = dalloc(n_st(s)), *g;
    size_t ng;
    workspace w;

    if (!m)
        goto done;
    snprintf(ctx, sizeof ctx, "inputs overwritten between forward and backward %s",
             backend_name(be));
    if (!train_step(m, &p, &r, ctx)) {
        result_free(&r);
        goto done;
    }
    w = ws_make(m, s.T, s.B, 1);
    CHECK_OK(clstm_zero_grad(m), ctx);
    CHECK_OK(clstm_forward(m, s.T, s.B, x, h0, c0, y, NULL, NULL, 1, w.p, w.bytes), ctx);
    fill_uniform(&(uint64_t){3}, x, n_x(s), 5.0, 9.0);
    fill_uniform(&(uint64_t){4}, h0, n_st(s), 5.0, 9.0);
    fill_uniform(&(uint64_t){5}, c0, n_st(s), 5.0, 9.0);
    fill_uniform(&(uint64_t){6}, y, n_y(s), 5.0, 9.0);
    CHECK_OK(clstm_backward(m, s.T, s.B, p.Wy, p.Wh, p.Wc, dx, dh0, dc0, w.p, w.bytes), ctx);
    g = block_copy(m, 1, &ng);
    CHECK_CLOSE(dx, r.dx, n_x(s), 1e-13, ctx);
    CHECK_CLOSE(dh0, r.dh0, n_st(s), 1e-13, ctx);
    CHECK_CLOSE(dc0, r.dc0, n_st(s), 1e-13, ctx);
    CHECK_CLOSE(g, r.grads, ng, 1e-13, ctx);
    free(g);
    free(w.p);
    result_free(&r);
done:
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
 * answer. */
static void test_concurrent_forward(clstm_backend be, uint64_t seed)
{
    enum { NT = 4 };
    const shape s = {6, 3, 7, 9, 2};
    clstm_model *m = make_model(CLSTM_FLOAT64, be, s.D, s.H, s.L, seed);
    problem p[NT];
    double *serial[NT], *par[NT];
    workspace w[NT];
    char ctx[100];

    for (int i = 0; i < NT; i++) {
        p[i] = problem_make(s, CLSTM_FLOAT64, seed + (uint64_t)i);
        serial[i] = dalloc(n_y(s));
        par[i] = dalloc(n_y(s));
    }
    if (!m)
        goto done;
    for (int train = 0; train <= 1; train++) {
        int bad = 0;
        snprintf(ctx, sizeof ctx, "concurrent forward train=%d %s", train, backend_name(be));
        for (int i = 0; i < NT; i++) {
            w[i] = ws_make(m, s.T, s.B, train);
            CHECK_OK(clstm_forward(m, s.T, s.B, p[i].x, p[i].h0, p[i].c0, serial[i], NULL,
                                   NULL, train, w[i].p, w[i].bytes),
                     ctx);
        }
#pragma omp parallel for num_threads(NT) reduction(+ : bad)
        for (int i = 0; i < NT; i++)
            bad += clstm_forward(m, s.T, s.B, p[i].x, p[i].h0, p[i].c0, par[i], NULL, NULL,
                                 train, w[i].p, w[i].bytes) != CLSTM_OK;
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

/* The header asks only for ws_bytes bytes at ws: any address must work. */
static void test_ws_alignment(clstm_backend be, uint64_t seed)
{
    static const size_t offsets[] = {1, 4, 8, 24, 63};
    const shape s = {4, 3, 5, 6, 2};
    char ctx[100];
    clstm_model *m = make_model(CLSTM_FLOAT64, be, s.D, s.H, s.L, seed);
    problem p = problem_make(s, CLSTM_FLOAT64, seed);
    result r;
    double *y = dalloc(n_y(s)), *yi = dalloc(n_y(s)), *dx = dalloc(n_x(s)), *g;
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
        snprintf(ctx, sizeof ctx, "workspace at malloc + %zu %s", offsets[k], backend_name(be));
        CHECK_OK(clstm_zero_grad(m), ctx);
        CHECK_OK(run_forward(m, s.T, s.B, p.x, p.h0, p.c0, y, NULL, NULL, 1, w), ctx);
        CHECK_OK(run_backward(m, s.T, s.B, p.Wy, p.Wh, p.Wc, dx, NULL, NULL, w), ctx);
        g = block_copy(m, 1, &ng);
        CHECK_CLOSE(y, r.y, n_y(s), 1e-13, ctx);
        CHECK_CLOSE(dx, r.dx, n_x(s), 1e-13, ctx);
        CHECK_CLOSE(g, r.grads, ng, 1e-13, ctx);
        CHECK_OK(run_forward(m, s.T, s.B, p.x, p.h0, p.c0, yi, NULL, NULL, 0, wi), ctx);
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

/* ------------------------------------------------------------ main */

int main(void)
{
    static const shape grad_shapes[] = {
        {1, 1, 1, 1, 1}, {3, 2, 4, 5, 1}, {4, 3, 3, 2, 3}, {2, 1, 5, 3, 2}};
    static const shape fwd_shapes[] = {{1, 1, 1, 1, 1}, {3, 2, 4, 5, 1}, {4, 3, 3, 2, 3},
                                       {2, 1, 5, 3, 2}, {1, 4, 6, 3, 2}, {7, 5, 33, 40, 2},
                                       {40, 2, 3, 4, 1}, {70, 2, 3, 4, 3}};
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
        test_float32_vs_float64(be, (shape){5, 3, 6, 8, 2}, seed++);
        test_null_is_zero(be, seed++);
        test_accumulation(CLSTM_FLOAT64, be, seed++);
        test_accumulation(CLSTM_FLOAT32, be, seed++);
        for (int dti = 0; dti < 2; dti++) {
            const clstm_dtype dt = dti ? CLSTM_FLOAT64 : CLSTM_FLOAT32;
            test_inference_vs_training(dt, be, 1, seed++);
            test_inference_vs_training(dt, be, 100, seed++);
        }
        test_inputs_not_retained(be, seed++);
        test_concurrent_forward(be, seed++);
        test_ws_alignment(be, seed++);
    }
    test_backend_agreement(CLSTM_FLOAT64, (shape){7, 5, 33, 40, 2}, seed++);
    test_backend_agreement(CLSTM_FLOAT32, (shape){7, 5, 33, 40, 2}, seed++);
    test_backend_agreement(CLSTM_FLOAT64, (shape){5, 32, 64, 96, 2}, seed++);
    test_backend_agreement(CLSTM_FLOAT32, (shape){5, 32, 64, 96, 2}, seed++);
    /* odd H = 9: uneven slices of hidden units across threads; L = 3 */
    test_backend_agreement(CLSTM_FLOAT64, (shape){3, 64, 5, 9, 3}, seed++);
    test_backend_agreement(CLSTM_FLOAT32, (shape){3, 64, 5, 9, 3}, seed++);
    test_seeds();
    test_tensor_enumeration(CLSTM_FLOAT32, 1, 1, 1);
    test_tensor_enumeration(CLSTM_FLOAT64, 3, 5, 1);
    test_tensor_enumeration(CLSTM_FLOAT32, 7, 2, 3);
    return ctest_finish();
}
