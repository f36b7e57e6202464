/* Encoder-decoders (clstm.h: "Sequence to sequence"): the encoder is the
 * model's own pipeline (clstm_model_forward / clstm_model_backward over the
 * source ids), the decoder seq2seq_kernels.inc's. One workspace holds both,
 * after a header that ties it to the forward that filled it. */
#include <stdint.h>
#include <string.h>
#include "internal.h"
#include "pipeline.h"
#include "seq2seq.h"

#define S2S_MAGIC 0x5332534B57534C43ull /* "CLSWKS2S" */

typedef struct {
    uint64_t magic, model_id;
    int64_t Ts, Tt, B;
    int train, consumed; /* a backward has used it (as the pipeline's) */
} s2s_head;

/* Byte offsets of the workspace's parts, each 64-byte aligned. */
typedef struct {
    size_t src_lens, tgt_lens, tgt_ids, S, dS, dz, dec, enc, enc_bytes, total;
} s2s_ws;

static size_t up64(size_t n) { return (n + 63) & ~(size_t)63; }

static void dims_of(const clstm_model *m, int64_t Ts, int64_t Tt, int64_t B, int train,
                    s2s_dims *d) {
    const clstm_config *c = &m->cfg;
    d->Ts = Ts, d->Tt = Tt, d->B = B, d->train = train != 0;
    d->Ne = clstm_dirs(c) * clstm_rsize(c);
    d->Hd = c->decoder_hidden, d->Ld = c->decoder_layers, d->E = c->target_embedding;
    d->A = c->attentional_size, d->V = c->target_vocab;
    d->dot = c->attention == CLSTM_ATTENTION_DOT;
    d->use_blas = m->use_blas;
}

/* The decoder's tensors in block (m's parameters or gradients). */
static void weights_of(const clstm_model *m, void *block, s2s_weights *w) {
    memset(w, 0, sizeof *w);
    char *base = block;
    for (int64_t i = 0; i < m->n_tensors; i++) {
        const clstm_tensor *e = &m->tensors[i];
        void *p = base + e->info.offset * m->elem;
        const int64_t k = e->layer;
        switch (e->kind) {
        case CLSTM_T_DEC_WEIGHT_IH: w->w_ih[k] = p; break;
        case CLSTM_T_DEC_WEIGHT_HH: w->w_hh[k] = p; break;
        case CLSTM_T_DEC_BIAS_IH: w->b_ih[k] = p; break;
        case CLSTM_T_DEC_BIAS_HH: w->b_hh[k] = p; break;
        case CLSTM_T_DEC_EMBEDDING: w->emb = p; break;
        case CLSTM_T_ATT_WEIGHT: w->w_a = p; break;
        case CLSTM_T_ATT_COMBINE: w->w_c = p; break;
        case CLSTM_T_OUT_WEIGHT: w->w_o = p; break;
        case CLSTM_T_OUT_BIAS: w->b_o = p; break;
        default: break;
        }
    }
}

static clstm_status plan(const clstm_model *m, int64_t Ts, int64_t Tt, int64_t B, int train,
                         s2s_ws *ly) {
    const clstm_config *c = &m->cfg;
    if (Ts < 1 || Tt < 1 || B < 1) return CLSTM_ERR_SIZE;
    const int64_t lim = clstm_blas_dim_max(); /* the decoder's gemms take Ts*B and Tt*B */
    if (Ts > lim / B || Tt > lim / B) return CLSTM_ERR_OVERFLOW;
    s2s_dims d;
    dims_of(m, Ts, Tt, B, train, &d);
    const s2s_layout dl = s2s_plan(&d);
    if (dl.overflow) return CLSTM_ERR_OVERFLOW;
    size_t enc_bytes;
    clstm_status st = clstm_model_workspace_size(m, Ts, B, train, &enc_bytes);
    if (st != CLSTM_OK) return st;
    /* every product and sum is checked (Ts*B and Tt*B fit int64: <= lim) */
    size_t n_s, n_z, n_dec, n_ids, o = 64, v;
    if (clstm_mul((size_t)Tt, (size_t)B, &n_ids) ||
        clstm_mul((size_t)Ts * (size_t)B, (size_t)d.Ne, &n_s) ||
        clstm_mul(n_ids, (size_t)c->target_vocab, &n_z))
        return CLSTM_ERR_OVERFLOW;
    n_dec = dl.total;
    const size_t parts[7][2] = {{(size_t)B, 8}, {(size_t)B, 8}, {n_ids, 4},   {n_s, m->elem},
                                {train ? n_s : 0, m->elem}, {train ? n_z : 0, m->elem},
                                {n_dec, m->elem}};
    size_t *at[7] = {&ly->src_lens, &ly->tgt_lens, &ly->tgt_ids, &ly->S, &ly->dS, &ly->dz,
                     &ly->dec};
    for (int i = 0; i < 7; i++) {
        *at[i] = o;
        if (clstm_mul(parts[i][0], parts[i][1], &v) || clstm_add(o, up64(v), &o))
            return CLSTM_ERR_OVERFLOW;
    }
    ly->enc = o;
    ly->enc_bytes = enc_bytes;
    if (clstm_add(o, enc_bytes, &o) || clstm_add(o, 64, &ly->total)) /* alignment slack */
        return CLSTM_ERR_OVERFLOW;
    return CLSTM_OK;
}

static clstm_status check_model(const clstm_model *m) {
    if (!m) return CLSTM_ERR_NULL;
    if (m->cfg.target_vocab == 0) return CLSTM_ERR_ARG;
    return m->quantized ? CLSTM_ERR_UNSUPPORTED : CLSTM_OK;
}

clstm_status clstm_seq2seq_workspace_size(const clstm_model *m, int64_t Ts, int64_t Tt,
                                          int64_t B, int train, size_t *bytes) {
    clstm_status st = check_model(m);
    if (st != CLSTM_OK) return st;
    if (!bytes) return CLSTM_ERR_NULL;
    s2s_ws ly;
    if ((st = plan(m, Ts, Tt, B, train != 0, &ly)) != CLSTM_OK) return st;
    *bytes = ly.total;
    return CLSTM_OK;
}

clstm_status clstm_seq2seq_forward(const clstm_model *m, int64_t Ts, int64_t Tt, int64_t B,
                                   const int32_t *src, const int64_t *src_lens,
                                   const int32_t *tgt_in, const int64_t *tgt_lens, void *logits,
                                   int train, uint64_t dropout_seed, void *ws, size_t ws_bytes) {
    clstm_status st = check_model(m);
    if (st != CLSTM_OK) return st;
    if (!src || !src_lens || !tgt_in || !tgt_lens || !logits) return CLSTM_ERR_NULL;
    s2s_ws ly;
    if ((st = plan(m, Ts, Tt, B, train != 0, &ly)) != CLSTM_OK) return st;
    if (!ws || ws_bytes < ly.total) return CLSTM_ERR_WORKSPACE;
    if ((st = clstm_check_lengths(src_lens, B, Ts)) != CLSTM_OK ||
        (st = clstm_check_lengths(tgt_lens, B, Tt)) != CLSTM_OK)
        return st;
    const int64_t Vt = m->cfg.target_vocab;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < tgt_lens[b]; t++)
            if (tgt_in[t * B + b] < 0 || tgt_in[t * B + b] >= Vt) return CLSTM_ERR_ARG;
    char *base = ws_base(ws);
    s2s_head *h = (s2s_head *)(void *)base;
    h->magic = 0; /* invalid until the forward has finished */
    int64_t *sl = (int64_t *)(void *)(base + ly.src_lens), *tl = (int64_t *)(void *)(base + ly.tgt_lens);
    int32_t *ids = (int32_t *)(void *)(base + ly.tgt_ids);
    memcpy(sl, src_lens, (size_t)B * sizeof *sl);
    memcpy(tl, tgt_lens, (size_t)B * sizeof *tl);
    for (int64_t t = 0; t < Tt; t++) /* past a target's length: token 0, never read back */
        for (int64_t b = 0; b < B; b++) ids[t * B + b] = t < tl[b] ? tgt_in[t * B + b] : 0;
    clstm_run_options opt = clstm_run_options_default();
    opt.train = train != 0;
    opt.lengths = sl;
    opt.dropout_seed = dropout_seed;
    void *S = base + ly.S;
    st = clstm_model_forward(m, Ts, B, NULL, src, NULL, NULL, S, NULL, NULL, &opt,
                             base + ly.enc, ly.enc_bytes);
    if (st != CLSTM_OK) return st;
    s2s_dims d;
    s2s_weights w;
    dims_of(m, Ts, Tt, B, train, &d);
    weights_of(m, m->params, &w);
    if (m->cfg.dtype == CLSTM_FLOAT64)
        clstm_s2s_forward_f64(&d, &w, S, sl, ids, tl, logits, (double *)(void *)(base + ly.dec));
    else
        clstm_s2s_forward_f32(&d, &w, S, sl, ids, tl, logits, (float *)(void *)(base + ly.dec));
    *h = (s2s_head){S2S_MAGIC, m->id, Ts, Tt, B, train != 0, 0};
    return CLSTM_OK;
}

clstm_status clstm_seq2seq_backward(clstm_model *m, int64_t Ts, int64_t Tt, int64_t B,
                                    const void *dlogits, void *ws, size_t ws_bytes) {
    clstm_status st = check_model(m);
    if (st != CLSTM_OK) return st;
    if (!dlogits) return CLSTM_ERR_NULL;
    s2s_ws ly;
    if ((st = plan(m, Ts, Tt, B, 1, &ly)) != CLSTM_OK) return st;
    if (!ws || ws_bytes < ly.total) return CLSTM_ERR_WORKSPACE;
    char *base = ws_base(ws);
    s2s_head *h = (s2s_head *)(void *)base;
    if (h->magic != S2S_MAGIC || h->model_id != m->id || !h->train || h->consumed ||
        h->Ts != Ts || h->Tt != Tt || h->B != B)
        return CLSTM_ERR_STATE;
    /* from here nothing fails: the encoder's workspace is this forward's
     * (clip, which its backward refuses, is refused at create) */
    h->consumed = 1;
    const int64_t *sl = (const int64_t *)(void *)(base + ly.src_lens),
                  *tl = (const int64_t *)(void *)(base + ly.tgt_lens);
    const int32_t *ids = (const int32_t *)(void *)(base + ly.tgt_ids);
    const int64_t V = m->cfg.target_vocab;
    const size_t row = (size_t)V * m->elem;
    char *dz = base + ly.dz; /* dlogits, 0 past each target's length */
    for (int64_t t = 0; t < Tt; t++)
        for (int64_t b = 0; b < B; b++) {
            const size_t at = (size_t)(t * B + b) * row;
            if (t < tl[b])
                memcpy(dz + at, (const char *)dlogits + at, row);
            else
                memset(dz + at, 0, row);
        }
    s2s_dims d;
    s2s_weights w, g;
    dims_of(m, Ts, Tt, B, 1, &d);
    weights_of(m, m->params, &w);
    weights_of(m, m->grads, &g);
    void *S = base + ly.S, *dS = base + ly.dS;
    if (m->cfg.dtype == CLSTM_FLOAT64)
        clstm_s2s_backward_f64(&d, &w, &g, S, sl, ids, (const double *)(void *)dz, dS,
                               (double *)(void *)(base + ly.dec));
    else
        clstm_s2s_backward_f32(&d, &w, &g, S, sl, ids, (const float *)(void *)dz, dS,
                               (float *)(void *)(base + ly.dec));
    return clstm_model_backward(m, Ts, B, dS, NULL, NULL, NULL, NULL, NULL, base + ly.enc,
                                ly.enc_bytes);
}
