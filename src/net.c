/* The whole model: input encoding -> LSTM stack (lstm.c) -> Linear head,
 * its workspace, softmax and the losses. The per-dtype loops are in
 * net_kernels.inc. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

/* Unidirectional inference runs in chunks of this many steps, as lstm.c
 * does, so that memory does not grow with T. */
#define NET_INFER_CHUNK 32
/* Below this many multiply-adds a head gemm runs on one thread. */
#define NET_MIN_PARALLEL_WORK (1 << 18)

static int net_threads(int64_t rows, int64_t work_per_row) {
    int n = clstm_get_num_threads();
    if (n < 1 || rows * work_per_row < NET_MIN_PARALLEL_WORK) return 1;
    return rows < n ? (int)rows : n;
}

/* Contiguous share [a, b) of n rows for thread tid of nt. */
static void net_rows(int64_t n, int tid, int nt, int64_t *a, int64_t *b) {
    int64_t per = (n + nt - 1) / nt;
    *a = (int64_t)tid * per < n ? (int64_t)tid * per : n;
    *b = *a + per < n ? *a + per : n;
}

#define real float
#define SUF(name) name##_f32
#define GEMM clstm_sgemm
#include "net_kernels.inc"
#undef real
#undef SUF
#undef GEMM

#define real double
#define SUF(name) name##_f64
#define GEMM clstm_dgemm
#include "net_kernels.inc"
#undef real
#undef SUF
#undef GEMM

/* The model workspace: a header, then (64-byte aligned)
 *     lens (B int64)  each sequence's length
 *     clens (B int64) a chunk's lengths (inference)
 *     ids (T, B) int32 the training forward's tokens (embedding models)
 *     e (tc, B, D)    the encoded input (token models); its gradient in
 *                     backward (embedding models)
 *     y (tc, B, NR)   the LSTM's output (models with a head)
 *     dy (T, B, NR)   its gradient (training, models with a head)
 *     hs, cs          the carried state between chunks (inference)
 *     the LSTM's own workspace for (tc, B)
 * tc = T in training and for bidirectional models, else the chunk. */
typedef struct {
    size_t total, lens, clens, ids, e, y, dy, hs, cs, lstm, lstm_bytes;
    int64_t tc;
} net_layout;

typedef struct {
    uint64_t magic, model_id;
    int64_t T, B;
    uint64_t state;
} net_header;

#define NET_MAGIC 0x636c73746d6e6574ull /* "clstmnet" */
enum { NET_EMPTY = 0, NET_TRAINED = 1, NET_CONSUMED = 2 };

static clstm_status net_layout_of(const clstm_model *m, int64_t T, int64_t B, int train,
                                  net_layout *ly) {
    if (T < 1 || B < 1) return CLSTM_ERR_SIZE;
    if (T > clstm_blas_dim_max() / B) return CLSTM_ERR_OVERFLOW;
    const clstm_config *cf = &m->cfg;
    const int64_t N = clstm_dirs(cf), R = clstm_rsize(cf), NR = N * R;
    const int64_t H = cf->hidden_size, NL = N * cf->num_layers, D = cf->input_size;
    const int tokens = cf->encoding != CLSTM_ENCODING_NONE, head = cf->output_size > 0;
    /* the caller's out (T,B,O) and ids (T,B) must fit the address space (x
     * and the states: clstm_workspace_size below) */
    if (!clstm_array_ok(T, B, head ? cf->output_size : NR, m->elem) ||
        !clstm_array_ok(T, B, 1, sizeof(int32_t)))
        return CLSTM_ERR_OVERFLOW;
    memset(ly, 0, sizeof *ly);
    ly->tc = train || N == 2 ? T : NET_INFER_CHUNK; /* the size never depends on T */
    const int64_t tc = ly->tc;
    carver c = {64, sizeof(int64_t), 0}; /* the header first */
    ly->lens = carve(&c, (size_t)B);
    ly->clens = carve(&c, train ? 0 : (size_t)B);
    c.elem = sizeof(int32_t);
    ly->ids = carve(&c, train && cf->encoding == CLSTM_ENCODING_EMBEDDING ? prod3(T, B, 1) : 0);
    c.elem = m->elem;
    ly->e = carve(&c, tokens ? prod3(tc, B, D) : 0);
    ly->y = carve(&c, head ? prod3(tc, B, NR) : 0);
    ly->dy = carve(&c, train && head ? prod3(T, B, NR) : 0);
    ly->hs = carve(&c, train ? 0 : prod3(NL, B, R));
    ly->cs = carve(&c, train ? 0 : prod3(NL, B, H));
    clstm_status st = clstm_workspace_size(m, tc, B, train, &ly->lstm_bytes);
    if (st != CLSTM_OK) return st;
    ly->lstm = c.off;
    if (c.overflow || clstm_add(c.off, ly->lstm_bytes, &ly->total) ||
        clstm_add(ly->total, WS_ALIGN, &ly->total))
        return CLSTM_ERR_OVERFLOW;
    if (train) { /* a training workspace also serves inference */
        net_layout inf;
        st = net_layout_of(m, T, B, 0, &inf);
        if (st != CLSTM_OK) return st;
        if (inf.total > ly->total) ly->total = inf.total;
    }
    return CLSTM_OK;
}

clstm_status clstm_model_workspace_size(const clstm_model *m, int64_t T, int64_t B, int train,
                                        size_t *bytes) {
    if (!m || !bytes) return CLSTM_ERR_NULL;
    net_layout ly;
    clstm_status st = net_layout_of(m, T, B, train != 0, &ly);
    if (st == CLSTM_OK) *bytes = ly.total;
    return st;
}

/* Encode steps [0, T) of ids (a chunk) for lengths lens into e. */
static void encode(const clstm_model *m, int64_t T, int64_t B, const int32_t *ids,
                   const int64_t *lens, void *e) {
    const clstm_config *cf = &m->cfg;
    const int f64 = cf->dtype == CLSTM_FLOAT64;
    if (cf->encoding == CLSTM_ENCODING_ONEHOT) {
        if (f64) encode_onehot_f64(T, B, cf->vocab_size, ids, lens, e);
        else encode_onehot_f32(T, B, cf->vocab_size, ids, lens, e);
    } else if (f64) {
        encode_embedding_f64(T, B, cf->input_size, ids, lens,
                             (const double *)m->params + m->emb_off, e);
    } else {
        encode_embedding_f32(T, B, cf->input_size, ids, lens,
                             (const float *)m->params + m->emb_off, e);
    }
}

static void head_forward(const clstm_model *m, int64_t T, int64_t B, const void *y,
                         const int64_t *lens, void *out) {
    const clstm_config *cf = &m->cfg;
    const int64_t NR = clstm_dirs(cf) * clstm_rsize(cf), O = cf->output_size;
    if (cf->dtype == CLSTM_FLOAT64) {
        const double *W = (const double *)m->params + m->head_off;
        head_forward_f64(m->use_blas, T, B, NR, O, y, W, W + O * NR, lens, out);
    } else {
        const float *W = (const float *)m->params + m->head_off;
        head_forward_f32(m->use_blas, T, B, NR, O, y, W, W + O * NR, lens, out);
    }
}

/* Shared argument checks of the forward: which input, its ids, lengths. */
static clstm_status check_inputs(const clstm_model *m, int64_t T, int64_t B, const void *x,
                                 const int32_t *ids, const clstm_run_options *opt) {
    const clstm_config *cf = &m->cfg;
    const int tokens = cf->encoding != CLSTM_ENCODING_NONE;
    if (tokens ? !ids : !x) return CLSTM_ERR_NULL;
    if (tokens ? x != NULL : ids != NULL) return CLSTM_ERR_ARG;
    if (opt->struct_size < sizeof(clstm_run_options)) return CLSTM_ERR_ARG;
    if (opt->lengths)
        for (int64_t b = 0; b < B; b++)
            if (opt->lengths[b] < 0 || opt->lengths[b] > T) return CLSTM_ERR_ARG;
    if (tokens)
        for (int64_t t = 0; t < T; t++)
            for (int64_t b = 0; b < B; b++) {
                int32_t id = ids[t * B + b];
                if ((!opt->lengths || t < opt->lengths[b]) &&
                    (id < 0 || id >= cf->vocab_size))
                    return CLSTM_ERR_ARG;
            }
    return CLSTM_OK;
}

clstm_status clstm_model_forward(const clstm_model *m, int64_t T, int64_t B, const void *x,
                                 const int32_t *ids, const void *h0, const void *c0, void *out,
                                 void *hT, void *cT, const clstm_run_options *opt, void *ws,
                                 size_t ws_bytes) {
    if (!m || !out) return CLSTM_ERR_NULL;
    const clstm_run_options dflt = clstm_run_options_default();
    if (!opt) opt = &dflt;
    const int train = opt->train != 0;
    net_layout ly;
    clstm_status st = net_layout_of(m, T, B, train, &ly);
    if (st != CLSTM_OK) return st;
    st = check_inputs(m, T, B, x, ids, opt);
    if (st != CLSTM_OK) return st;
    if (!ws || ws_bytes < ly.total) return CLSTM_ERR_WORKSPACE;

    const clstm_config *cf = &m->cfg;
    const int tokens = cf->encoding != CLSTM_ENCODING_NONE, head = cf->output_size > 0;
    const size_t el = m->elem;
    const int64_t D = cf->input_size, NR = clstm_dirs(cf) * clstm_rsize(cf);
    const int64_t O = head ? cf->output_size : NR;
    char *base = ws_base(ws);
    net_header *hd = (net_header *)base;
    hd->magic = NET_MAGIC;
    hd->state = NET_EMPTY;
    int64_t *lens = (int64_t *)(base + ly.lens);
    for (int64_t b = 0; b < B; b++) lens[b] = opt->lengths ? opt->lengths[b] : T;

    if (train) {
        if (cf->encoding == CLSTM_ENCODING_EMBEDDING)
            memcpy(base + ly.ids, ids, (size_t)(T * B) * sizeof *ids);
        if (tokens) encode(m, T, B, ids, lens, base + ly.e);
        void *y = head ? base + ly.y : out;
        st = clstm_forward_ex(m, T, B, tokens ? base + ly.e : x, h0, c0, y, hT, cT, opt,
                              base + ly.lstm, ly.lstm_bytes);
        if (st != CLSTM_OK) return st;
        if (head) head_forward(m, T, B, y, lens, out);
        hd->model_id = m->id;
        hd->T = T;
        hd->B = B;
        hd->state = NET_TRAINED;
        return CLSTM_OK;
    }

    /* inference, in chunks of tc steps carrying the state in hs, cs */
    int64_t *clens = (int64_t *)(base + ly.clens);
    void *hs = hT ? hT : base + ly.hs, *cs = cT ? cT : base + ly.cs;
    clstm_run_options ro = *opt;
    for (int64_t t0 = 0; t0 < T; t0 += ly.tc) {
        const int64_t tl = T - t0 < ly.tc ? T - t0 : ly.tc;
        for (int64_t b = 0; b < B; b++) {
            int64_t l = lens[b] - t0;
            clens[b] = l < 0 ? 0 : l > tl ? tl : l;
        }
        ro.lengths = opt->lengths ? clens : NULL;
        const void *e = base + ly.e;
        if (tokens) encode(m, tl, B, ids + t0 * B, clens, base + ly.e);
        else e = (const char *)x + (size_t)(t0 * B * D) * el;
        void *y = head ? base + ly.y : (char *)out + (size_t)(t0 * B * NR) * el;
        st = clstm_forward_ex(m, tl, B, e, t0 ? hs : h0, t0 ? cs : c0, y, hs, cs, &ro,
                              base + ly.lstm, ly.lstm_bytes);
        if (st != CLSTM_OK) return st;
        if (head) head_forward(m, tl, B, y, clens, (char *)out + (size_t)(t0 * B * O) * el);
    }
    return CLSTM_OK;
}

clstm_status clstm_model_backward(clstm_model *m, int64_t T, int64_t B, const void *dout,
                                  const void *dhT, const void *dcT, void *dx, void *dh0,
                                  void *dc0, void *ws, size_t ws_bytes) {
    if (!m) return CLSTM_ERR_NULL;
    net_layout ly;
    clstm_status st = net_layout_of(m, T, B, 1, &ly);
    if (st != CLSTM_OK) return st;
    if (!ws || ws_bytes < ly.total) return CLSTM_ERR_WORKSPACE;
    const clstm_config *cf = &m->cfg;
    if (cf->clip > 0) return CLSTM_ERR_UNSUPPORTED;
    if (cf->encoding != CLSTM_ENCODING_NONE && dx) return CLSTM_ERR_ARG;
    char *base = ws_base(ws);
    net_header *hd = (net_header *)base;
    if (hd->magic != NET_MAGIC || hd->state != NET_TRAINED || hd->model_id != m->id ||
        hd->T != T || hd->B != B)
        return CLSTM_ERR_STATE;

    const int head = cf->output_size > 0, f64 = cf->dtype == CLSTM_FLOAT64;
    const int64_t NR = clstm_dirs(cf) * clstm_rsize(cf), O = cf->output_size;
    const int64_t D = cf->input_size;
    const int64_t *lens = (const int64_t *)(base + ly.lens);
    const void *dy = dout;
    if (head && dout) { /* dy = dout W on valid rows */
        if (f64)
            head_backward_dy_f64(m->use_blas, T, B, NR, O, dout,
                                 (const double *)m->params + m->head_off, lens,
                                 (double *)(base + ly.dy));
        else
            head_backward_dy_f32(m->use_blas, T, B, NR, O, dout,
                                 (const float *)m->params + m->head_off, lens,
                                 (float *)(base + ly.dy));
        dy = base + ly.dy;
    } else if (head) {
        dy = NULL;
    }
    const int emb = cf->encoding == CLSTM_ENCODING_EMBEDDING;
    void *de = cf->encoding == CLSTM_ENCODING_NONE ? dx : emb ? base + ly.e : NULL;
    st = clstm_backward(m, T, B, dy, dhT, dcT, de, dh0, dc0, base + ly.lstm, ly.lstm_bytes);
    if (st != CLSTM_OK) return st;
    hd->state = NET_CONSUMED;
    const int32_t *ids = (const int32_t *)(base + ly.ids);
    if (f64) {
        double *g = (double *)m->grads;
        if (head && dout)
            head_backward_params_f64(m->use_blas, T, B, NR, O, dout,
                                     (const double *)(base + ly.y), lens, g + m->head_off,
                                     g + m->head_off + O * NR);
        if (emb) embedding_backward_f64(T, B, D, ids, lens, de, g + m->emb_off);
    } else {
        float *g = (float *)m->grads;
        if (head && dout)
            head_backward_params_f32(m->use_blas, T, B, NR, O, dout,
                                     (const float *)(base + ly.y), lens, g + m->head_off,
                                     g + m->head_off + O * NR);
        if (emb) embedding_backward_f32(T, B, D, ids, lens, de, g + m->emb_off);
    }
    return CLSTM_OK;
}

clstm_status clstm_softmax(clstm_dtype dtype, int64_t n, int64_t k, const void *z,
                           double temperature, void *p) {
    if (!z || !p) return CLSTM_ERR_NULL;
    if (n < 1 || k < 1) return CLSTM_ERR_SIZE;
    if (n > INT64_MAX / k) return CLSTM_ERR_OVERFLOW;
    if (dtype != CLSTM_FLOAT32 && dtype != CLSTM_FLOAT64) return CLSTM_ERR_DTYPE;
    if (!clstm_array_ok(n, k, 1, dtype == CLSTM_FLOAT64 ? sizeof(double) : sizeof(float)))
        return CLSTM_ERR_OVERFLOW; /* z and p cannot exist */
    if (!(temperature > 0) || !isfinite(temperature)) return CLSTM_ERR_ARG;
    if (dtype == CLSTM_FLOAT64) softmax_rows_f64(n, k, z, temperature, p);
    else softmax_rows_f32(n, k, z, temperature, p);
    return CLSTM_OK;
}

static clstm_status loss(int mse, clstm_dtype dtype, int64_t T, int64_t B, int64_t O,
                         const void *out, const void *targets, const int64_t *lengths,
                         int last_only, double *result, void *dout) {
    if (!out || !targets || !result) return CLSTM_ERR_NULL;
    if (T < 1 || B < 1 || O < 1) return CLSTM_ERR_SIZE;
    if (T > INT64_MAX / B || T * B > INT64_MAX / O) return CLSTM_ERR_OVERFLOW;
    if (dtype != CLSTM_FLOAT32 && dtype != CLSTM_FLOAT64) return CLSTM_ERR_DTYPE;
    /* out (T,B,O) cannot exist; also bounds the B-element work array below */
    if (!clstm_array_ok(T, B, O, dtype == CLSTM_FLOAT64 ? sizeof(double) : sizeof(float)))
        return CLSTM_ERR_OVERFLOW;
    for (int64_t b = 0; lengths && b < B; b++)
        if (lengths[b] < 0 || lengths[b] > T) return CLSTM_ERR_ARG;
    if (!mse)
        for (int64_t t = 0; t < T; t++)
            for (int64_t b = 0; b < B; b++) {
                const int64_t len = lengths ? lengths[b] : T;
                if (last_only ? t != len - 1 : t >= len) continue;
                const int32_t y = ((const int32_t *)targets)[t * B + b];
                if (y < 0 || y >= O) return CLSTM_ERR_ARG;
            }
    /* the lengths, or all T, as one array (small: B) */
    int64_t stack_lens[64], *lens = stack_lens;
    if (B > 64 && !(lens = malloc((size_t)B * sizeof *lens))) return CLSTM_ERR_NOMEM;
    for (int64_t b = 0; b < B; b++) lens[b] = lengths ? lengths[b] : T;
    if (dtype == CLSTM_FLOAT64)
        *result = loss_f64(mse, T, B, O, out, targets, lens, last_only != 0, dout);
    else
        *result = loss_f32(mse, T, B, O, out, targets, lens, last_only != 0, dout);
    if (lens != stack_lens) free(lens);
    return CLSTM_OK;
}

clstm_status clstm_loss_xent(clstm_dtype dtype, int64_t T, int64_t B, int64_t O,
                             const void *out, const int32_t *targets, const int64_t *lengths,
                             int last_only, double *result, void *dout) {
    return loss(0, dtype, T, B, O, out, targets, lengths, last_only, result, dout);
}

clstm_status clstm_loss_mse(clstm_dtype dtype, int64_t T, int64_t B, int64_t O,
                            const void *out, const void *targets, const int64_t *lengths,
                            int last_only, double *result, void *dout) {
    return loss(1, dtype, T, B, O, out, targets, lengths, last_only, result, dout);
}
