/* Forward and backward over whole sequences: argument checks, the workspace
 * layout, and dispatch to the per-dtype kernels in lstm_kernels.inc. */
#include <math.h>
#include <omp.h>
#include <string.h>
#include "fastmath.h"
#include "internal.h"

/* The element-wise kernels are compiled twice on x86-64 (AVX2+FMA and the
 * baseline), and the loader picks one for the CPU: a portable wheel still
 * gets 8-wide vectors. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLSTM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLSTM_CLONES
#endif

/* Inference processes the sequence in chunks of this many steps: the input
 * projection is one gemm per chunk, and memory does not grow with T. */
#define CLSTM_INFER_CHUNK 32

/* Byte offsets into the (64-byte aligned) workspace.
 * Always: the lengths (B int64) and the step buffers, among them the packed
 *   weights (4H, R + max D_k) and summed biases (4H) of the step product,
 *   L of each in chunked inference (a layer's stay packed across chunks).
 * Training: the zero-padded copy of x (T,B,D), then per layer a block of
 *   l_y (T,B,N*R) output (layers below the top), l_xd (T,B,N*R) input after
 *   dropout (layers >= 1 with dropout), and per direction a unit block of
 *   k_g (T,B,4H), k_ct, k_cp (T,B,H), k_hp (T,B,R), k_m (T,B,H), k_dh
 *   (T,B,P) (the last two with projection); layer l's block is layer0 +
 *   l*layer_stride, its unit d's is d*unit_stride further (all offsets of
 *   l_* and k_* are relative to those). Then the backward buffers.
 * Inference, unidirectional (chunked): G (tc,B,4H), two (tc,B,R) buffers
 *   between layers, and per layer its state (2*B*R + B*H).
 * Inference, bidirectional: G (T,B,4H) and two (T,B,N*R) layer buffers. */
typedef struct {
    size_t total;
    int chunked;
    int64_t tc; /* steps per chunk (chunked inference only) */
    size_t lens, x0, layer0, layer_stride, unit_stride;
    size_t l_y, l_xd, k_g, k_ct, k_cp, k_hp, k_m, k_dh;
    size_t g, ybuf0, ybuf1, states;
    size_t hb0, hb1, c, rs, wp, bias, ms, junk;       /* step buffers */
    size_t wp_stride;                                 /* elements, per layer */
    size_t da0, da1, dhrec, dh, dc, dybuf;            /* backward */
} ws_layout;

typedef struct {
    uint64_t magic;
    uint64_t model_id;
    int64_t T, B;
    uint64_t state;
    uint64_t dropout_seed;
} ws_header;

#define WS_MAGIC 0x636c73746d777332ull /* "clstmws2" */
enum { WS_EMPTY = 0, WS_TRAINED = 1, WS_CONSUMED = 2 };
#define WS_HEADER 64 /* bytes reserved for ws_header, keeps arrays aligned */

/* Reserve `count` consecutive blocks laid out by one carver: returns the
 * stride; the offsets inside a block are relative to its start. */
static size_t repeat(carver *c, size_t start, int64_t count) {
    size_t stride = c->off - start, rest;
    if (clstm_mul(stride, (size_t)(count - 1), &rest) || clstm_add(c->off, rest, &c->off))
        c->overflow = 1;
    return stride;
}

static clstm_status layout(const clstm_model *m, int64_t T, int64_t B, int train,
                           ws_layout *ly) {
    if (T < 1 || B < 1) return CLSTM_ERR_SIZE;
    const clstm_config *cf = &m->cfg;
    const int64_t H = cf->hidden_size, D = cf->input_size, L = cf->num_layers;
    const int64_t P = cf->proj_size, R = clstm_rsize(cf), N = clstm_dirs(cf), NR = N * R;
    const int64_t lim = clstm_blas_dim_max();
    if (T > lim / B) return CLSTM_ERR_OVERFLOW; /* T*B rows in one gemm */
    /* the caller's x (T,B,D), y (T,B,N*R) and states (N*L,B,H or R) must fit
     * the address space, also where the workspace does not grow with T */
    if (!clstm_array_ok(T, B, D, m->elem) || !clstm_array_ok(T, B, NR, m->elem) ||
        !clstm_array_ok(N * L, B, H > R ? H : R, m->elem))
        return CLSTM_ERR_OVERFLOW;
    memset(ly, 0, sizeof *ly);
    carver c = {WS_HEADER, sizeof(int64_t), 0};
    ly->lens = carve(&c, (size_t)B);
    c.elem = m->elem;
    ly->hb0 = carve(&c, prod3(1, B, R));
    ly->hb1 = carve(&c, prod3(1, B, R));
    ly->c = carve(&c, prod3(1, B, H));
    ly->rs = carve(&c, prod3(1, B, 4 * H));
    /* W_hh, or [W_hh W_ih] for the fused step product, packed, and the
     * summed biases: once per layer in chunked inference, where the
     * layers take turns chunk by chunk and each packs only in its first */
    const int64_t packs = !train && N == 1 ? L : 1;
    /* the fused panel only where it can run (float32 with BLAS, B > 1; the
     * CPU's kernel is a run-time matter, so not checked here) */
    const int fusable = m->elem == sizeof(float) && m->use_blas && B > 1;
    const int64_t kmax = R + (fusable ? (L > 1 && NR > D ? NR : D) : 0);
    ly->wp_stride = prod3(1, 4 * H, kmax);
    ly->wp = carve(&c, prod3(packs, 4 * H, kmax));
    ly->bias = carve(&c, prod3(packs, 1, 4 * H));
    ly->ms = carve(&c, prod3(1, B, H));
    ly->junk = carve(&c, prod3(1, B, 2 * H));
    if (train) {
        ly->x0 = carve(&c, prod3(T, B, D));
        ly->layer0 = c.off;
        carver lc = {0, m->elem, 0}; /* one layer's block, relative offsets */
        ly->l_y = carve(&lc, L > 1 ? prod3(T, B, NR) : 0);
        ly->l_xd = carve(&lc, L > 1 && cf->dropout > 0 ? prod3(T, B, NR) : 0);
        size_t u0 = lc.off;
        ly->k_g = carve(&lc, prod3(T, B, 4 * H));
        ly->k_ct = carve(&lc, prod3(T, B, H));
        ly->k_cp = carve(&lc, prod3(T, B, H));
        ly->k_hp = carve(&lc, prod3(T, B, R));
        ly->k_m = carve(&lc, P ? prod3(T, B, H) : 0);
        ly->k_dh = carve(&lc, P ? prod3(T, B, P) : 0);
        ly->unit_stride = repeat(&lc, u0, N);
        if (lc.overflow || clstm_add(c.off, lc.off, &c.off)) return CLSTM_ERR_OVERFLOW;
        ly->layer_stride = repeat(&c, ly->layer0, L);
        ly->da0 = carve(&c, prod3(1, B, 4 * H));
        ly->da1 = carve(&c, prod3(1, B, 4 * H));
        ly->dhrec = carve(&c, prod3(1, B, R));
        ly->dh = carve(&c, prod3(1, B, R));
        ly->dc = carve(&c, prod3(1, B, H));
        ly->dybuf = carve(&c, L > 1 ? prod3(T, B, NR) : 0);
    } else if (N == 1) {
        ly->chunked = 1;
        ly->tc = CLSTM_INFER_CHUNK; /* even for shorter T: the size never depends on T */
        ly->g = carve(&c, prod3(ly->tc, B, 4 * H));
        ly->ybuf0 = carve(&c, L > 1 ? prod3(ly->tc, B, R) : 0);
        ly->ybuf1 = carve(&c, L > 2 ? prod3(ly->tc, B, R) : 0);
        ly->states = carve(&c, prod3(L, B, 2 * R + H));
    } else { /* bidirectional inference: whole sequences, no chunks */
        ly->g = carve(&c, prod3(T, B, 4 * H));
        ly->ybuf0 = carve(&c, L > 1 ? prod3(T, B, NR) : 0);
        ly->ybuf1 = carve(&c, L > 2 ? prod3(T, B, NR) : 0);
    }
    /* slack so that any caller pointer can be aligned up to WS_ALIGN */
    if (c.overflow || clstm_add(c.off, WS_ALIGN, &ly->total)) return CLSTM_ERR_OVERFLOW;
    if (train) { /* a training workspace also serves inference (short T) */
        ws_layout inf;
        clstm_status st = layout(m, T, B, 0, &inf);
        if (st != CLSTM_OK) return st;
        if (inf.total > ly->total) ly->total = inf.total;
    }
    return CLSTM_OK;
}

/* Sizes and settings of one call, shared by the team. */
typedef struct {
    int use_blas;
    int64_t T, B, H, P, R, N, L;
    const int64_t *lens; /* (B), in the workspace */
    int uniform;         /* every length is T */
    double dropout;      /* > 0 only in a training call of a model with dropout */
    uint64_t seed;
    uint32_t drop_thresh; /* dropped when 24 random bits < this */
} dims;

static dims make_dims(const clstm_model *m, int64_t T, int64_t B, const int64_t *lens,
                      int train, uint64_t seed) {
    const clstm_config *c = &m->cfg;
    dims d = {m->use_blas, T, B, c->hidden_size, c->proj_size, clstm_rsize(c),
              clstm_dirs(c), c->num_layers, lens, 1, 0.0, seed, 0};
    for (int64_t b = 0; b < B; b++) d.uniform &= lens[b] == T;
    if (train && c->num_layers > 1 && c->dropout > 0) {
        d.dropout = c->dropout;
        d.drop_thresh = (uint32_t)(c->dropout * 16777216.0 + 0.5); /* p to 2^-24 */
    }
    return d;
}

static inline uint64_t mix64(uint64_t z) { /* splitmix64's finaliser */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The dropout key of layer l: seed and layer both pass through the mixer,
 * so no two (seed, layer) pairs give shifted copies of one mask stream. */
static inline uint64_t dropout_key(uint64_t seed, int64_t l) {
    return mix64(seed ^ mix64((uint64_t)l + 0x9E3779B97F4A7C15ull));
}

/* Whether element `idx` of a layer's input is dropped: a hash of (key,
 * index), so forward and backward agree without storing masks. */
static inline int clstm_dropped(uint64_t key, uint64_t idx, uint32_t thresh) {
    return (uint32_t)(mix64(key + 0x9E3779B97F4A7C15ull * (idx + 1)) >> 40) < thresh;
}

/* A thread's share: hidden units [j0, j1) and h columns [r0, r1) (split by
 * units), or batch rows [b0, b1) (split by rows; see lstm_kernels.inc). */
typedef struct {
    int64_t j0, j1, r0, r1, b0, b1;
    int tid, nt;
} slices;

/* Contiguous ranges of a multiple of `align` (the last may be shorter or
 * empty). */
static void aligned_range(int64_t n, int64_t align, int tid, int nt, int64_t *a, int64_t *b) {
    int64_t per = (n + nt - 1) / nt;
    per = (per + align - 1) / align * align;
    *a = (int64_t)tid * per < n ? (int64_t)tid * per : n;
    *b = *a + per < n ? *a + per : n;
}

/* Slices of a multiple of 8. */
static void slice_range(int64_t n, int tid, int nt, int64_t *a, int64_t *b) {
    aligned_range(n, 8, tid, nt, a, b);
}

/* The first batch row of thread tid's share: the rows split so that every
 * thread gets near the same number of valid steps (sum of lengths; equal
 * counts of rows when every length is 0). */
static int64_t batch_start(const dims *d, int tid, int nt) {
    int64_t total = 0, acc = 0;
    for (int64_t b = 0; b < d->B; b++) total += d->lens[b];
    if (total == 0) return d->B * tid / nt;
    const double goal = (double)total * tid / nt;
    int64_t b = 0;
    for (; b < d->B && (double)acc + 0.5 * (double)d->lens[b] < goal; b++) acc += d->lens[b];
    return b;
}

static void make_slices(const dims *d, int tid, int nt, slices *s) {
    s->tid = tid;
    s->nt = nt;
    slice_range(d->H, tid, nt, &s->j0, &s->j1);
    slice_range(d->R, tid, nt, &s->r0, &s->r1);
    s->b0 = batch_start(d, tid, nt);
    s->b1 = tid + 1 < nt ? batch_start(d, tid + 1, nt) : d->B;
}

/* Whether a unit that runs on the own kernel splits its steps by batch
 * rows (lstm_kernels.inc, top): a team of two or more with at least
 * CLSTM_BATCH_ROWS_MIN rows per thread. Measured at T=100 D=H=256 on 2
 * threads, by rows against by units: B = 2 and 3 were 33% and 25% slower in
 * inference (the kernel's row blocks too short), B = 4 even, B = 6 6-11%
 * faster, B = 8 15-17% faster. */
#define CLSTM_BATCH_ROWS_MIN 3
static inline int by_rows(const dims *d, const slices *s) {
    return s->nt > 1 && d->B >= (int64_t)CLSTM_BATCH_ROWS_MIN * s->nt;
}

#define real float
#define SUF(name) name##_f32
#define GEMM clstm_sgemm
#define SIGM clstm_sigmoidf
#define TANH clstm_tanhf
#define PACKED 1
#include "lstm_kernels.inc"
#undef real
#undef SUF
#undef GEMM
#undef SIGM
#undef TANH
#undef PACKED

#define real double
#define SUF(name) name##_f64
#define GEMM clstm_dgemm
#define SIGM(x) (1.0 / (1.0 + exp(-(x))))
#define TANH tanh
#define PACKED 0
#include "lstm_kernels.inc"
#undef real
#undef SUF
#undef GEMM
#undef SIGM
#undef TANH
#undef PACKED

clstm_status clstm_workspace_size(const clstm_model *m, int64_t T, int64_t B, int train,
                                  size_t *bytes) {
    if (!m || !bytes) return CLSTM_ERR_NULL;
    ws_layout ly;
    clstm_status st = layout(m, T, B, train, &ly);
    if (st == CLSTM_OK) *bytes = ly.total;
    return st;
}

clstm_run_options clstm_run_options_default(void) {
    clstm_run_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    return o;
}

clstm_status clstm_forward_ex(const clstm_model *m, int64_t T, int64_t B, const void *x,
                              const void *h0, const void *c0, void *y, void *hT, void *cT,
                              const clstm_run_options *opt, void *ws, size_t ws_bytes) {
    if (!m || !x || !y || !opt) return CLSTM_ERR_NULL;
    if (opt->struct_size < sizeof(clstm_run_options)) return CLSTM_ERR_ARG;
    const int train = opt->train != 0;
    ws_layout ly;
    clstm_status st = layout(m, T, B, train, &ly);
    if (st != CLSTM_OK) return st;
    if (!ws || ws_bytes < ly.total) return CLSTM_ERR_WORKSPACE;
    if (opt->lengths)
        for (int64_t b = 0; b < B; b++)
            if (opt->lengths[b] < 0 || opt->lengths[b] > T) return CLSTM_ERR_ARG;
    char *base = ws_base(ws);
    ws_header *hd = (ws_header *)base;
    hd->magic = WS_MAGIC;
    hd->state = WS_EMPTY;
    int64_t *lens = (int64_t *)(base + ly.lens);
    for (int64_t b = 0; b < B; b++) lens[b] = opt->lengths ? opt->lengths[b] : T;
    const dims dm = make_dims(m, T, B, lens, train, opt->dropout_seed);
    clstm_blas_single_thread();
    if (m->cfg.dtype == CLSTM_FLOAT64)
        forward_f64(m, &dm, x, h0, c0, y, hT, cT, train, base, &ly);
    else
        forward_f32(m, &dm, x, h0, c0, y, hT, cT, train, base, &ly);
    if (train) {
        hd->model_id = m->id;
        hd->T = T;
        hd->B = B;
        hd->dropout_seed = opt->dropout_seed;
        hd->state = WS_TRAINED;
    }
    return CLSTM_OK;
}

clstm_status clstm_forward(const clstm_model *m, int64_t T, int64_t B, const void *x,
                           const void *h0, const void *c0, void *y, void *hT, void *cT,
                           int train, void *ws, size_t ws_bytes) {
    clstm_run_options opt = clstm_run_options_default();
    opt.train = train;
    return clstm_forward_ex(m, T, B, x, h0, c0, y, hT, cT, &opt, ws, ws_bytes);
}

clstm_status clstm_backward(clstm_model *m, int64_t T, int64_t B, const void *dy,
                            const void *dhT, const void *dcT, void *dx, void *dh0, void *dc0,
                            void *ws, size_t ws_bytes) {
    if (!m) return CLSTM_ERR_NULL;
    ws_layout ly;
    clstm_status st = layout(m, T, B, 1, &ly);
    if (st != CLSTM_OK) return st;
    if (!ws || ws_bytes < ly.total) return CLSTM_ERR_WORKSPACE;
    char *base = ws_base(ws);
    ws_header *hd = (ws_header *)base;
    if (m->cfg.clip > 0) return CLSTM_ERR_UNSUPPORTED;
    if (hd->magic != WS_MAGIC || hd->state != WS_TRAINED || hd->model_id != m->id ||
        hd->T != T || hd->B != B)
        return CLSTM_ERR_STATE;
    hd->state = WS_CONSUMED;
    const dims dm = make_dims(m, T, B, (const int64_t *)(base + ly.lens), 1, hd->dropout_seed);
    clstm_blas_single_thread();
    if (m->cfg.dtype == CLSTM_FLOAT64)
        backward_f64(m, &dm, dy, dhT, dcT, dx, dh0, dc0, base, &ly);
    else
        backward_f32(m, &dm, dy, dhT, dcT, dx, dh0, dc0, base, &ly);
    return CLSTM_OK;
}
