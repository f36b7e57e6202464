/* Encoder-decoders (clstm.h: "Sequence to sequence"): the encoder is the
 * model's own pipeline (clstm_model_forward / clstm_model_backward over the
 * source ids), the decoder seq2seq_kernels.inc's. One workspace holds both,
 * after a header that ties it to the forward that filled it. */
#include <math.h>
#include <omp.h>
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

/* ---------------------------------------------------------------- decoding */

/* A candidate of a source's next step: its total log-probability, the row
 * it extends and the token. */
typedef struct {
    double total;
    int64_t row;
    int32_t tok;
} s2s_cand;

/* The order of candidates: higher total first; ties: lower row, then lower
 * token (tests/seq2seq_torch.py's beam). */
static int cand_before(const s2s_cand *a, const s2s_cand *b) {
    if (a->total != b->total) return a->total > b->total;
    if (a->row != b->row) return a->row < b->row;
    return a->tok < b->tok;
}

/* Byte offsets of the decoding workspace's parts (64-byte aligned). */
typedef struct {
    size_t S, K, enc, enc_bytes, hc[2], feed[2], logits, scratch, logp, src_of, ids, score[2],
        hist[2], live, first, fin_tok, fin_len, fin_raw, fin_n, cand, total;
} s2s_dec_ws;

static clstm_status plan_decode(const clstm_model *m, int64_t Ts, int64_t B, int64_t width,
                                int64_t max_len, s2s_dec_ws *ly) {
    if (Ts < 1 || B < 1 || width < 1 || max_len < 1) return CLSTM_ERR_SIZE;
    const int64_t lim = clstm_blas_dim_max();
    if (Ts > lim / B || width > CLSTM_SEQ2SEQ_MAX_WIDTH || B > lim / width)
        return CLSTM_ERR_OVERFLOW;
    const int64_t R = B * width;
    s2s_dims d;
    dims_of(m, Ts, 1, R, 0, &d);
    size_t enc_bytes;
    clstm_status st = clstm_model_workspace_size(m, Ts, B, 0, &enc_bytes);
    if (st != CLSTM_OK) return st;
    const size_t e = m->elem, Ld = (size_t)d.Ld, Hd = (size_t)d.Hd, nR = (size_t)R;
    const size_t Kb = (size_t)(B * width), ml = (size_t)max_len;
    /* (count, bytes each, where); every product and sum checked */
    struct {
        size_t a, b, c, *at;
    } parts[] = {
        {(size_t)(Ts * B), (size_t)d.Ne, e, &ly->S},
        {d.dot ? 0 : (size_t)(Ts * B), Hd, e, &ly->K},
        {2 * Ld * nR, Hd, e, &ly->hc[0]},
        {2 * Ld * nR, Hd, e, &ly->hc[1]},
        {nR, (size_t)d.A, e, &ly->feed[0]},
        {nR, (size_t)d.A, e, &ly->feed[1]},
        {nR, (size_t)d.V, e, &ly->logits},
        {1, s2s_step_scratch(&d, R), e, &ly->scratch},
        {nR, (size_t)d.V, sizeof(double), &ly->logp},
        {nR, 1, sizeof(int64_t), &ly->src_of},
        {nR, 1, sizeof(int32_t), &ly->ids},
        {nR, 1, sizeof(double), &ly->score[0]},
        {nR, 1, sizeof(double), &ly->score[1]},
        {nR, ml, sizeof(int32_t), &ly->hist[0]},
        {nR, ml, sizeof(int32_t), &ly->hist[1]},
        {(size_t)B, 1, sizeof(int64_t), &ly->live},
        {(size_t)B, 1, sizeof(int64_t), &ly->first},
        {2 * Kb, ml, sizeof(int32_t), &ly->fin_tok},
        {2 * Kb, 1, sizeof(int64_t), &ly->fin_len},
        {2 * Kb, 1, sizeof(double), &ly->fin_raw},
        {(size_t)B, 1, sizeof(int64_t), &ly->fin_n},
        {2 * (size_t)width, 1, sizeof(s2s_cand), &ly->cand},
    };
    size_t o = 64, v;
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        *parts[i].at = o;
        if (clstm_mul(parts[i].a, parts[i].b, &v) || clstm_mul(v, parts[i].c, &v) ||
            clstm_add(o, up64(v), &o))
            return CLSTM_ERR_OVERFLOW;
    }
    if (s2s_plan(&d).overflow) return CLSTM_ERR_OVERFLOW;
    ly->enc = o;
    ly->enc_bytes = enc_bytes;
    if (clstm_add(o, enc_bytes, &o) || clstm_add(o, 64, &ly->total)) return CLSTM_ERR_OVERFLOW;
    return CLSTM_OK;
}

clstm_status clstm_seq2seq_decode_workspace_size(const clstm_model *m, int64_t Ts, int64_t B,
                                                 int64_t width, int64_t max_len,
                                                 size_t *bytes) {
    clstm_status st = check_model(m);
    if (st != CLSTM_OK) return st;
    if (!bytes) return CLSTM_ERR_NULL;
    s2s_dec_ws ly;
    if ((st = plan_decode(m, Ts, B, width, max_len, &ly)) != CLSTM_OK) return st;
    *bytes = ly.total;
    return CLSTM_OK;
}

/* log-softmax of each of n rows of V logits (real) into double */
static void log_softmax_rows(int f64, int64_t n, int64_t V, const void *z, double *out) {
    for (int64_t r = 0; r < n; r++) {
        double *o = out + r * V, top = -INFINITY, sum = 0;
        for (int64_t v = 0; v < V; v++) {
            o[v] = f64 ? ((const double *)z)[r * V + v] : (double)((const float *)z)[r * V + v];
            if (o[v] > top) top = o[v];
        }
        for (int64_t v = 0; v < V; v++) sum += exp(o[v] - top);
        const double lse = top + log(sum);
        for (int64_t v = 0; v < V; v++) o[v] -= lse;
    }
}

clstm_status clstm_seq2seq_beam_search(const clstm_model *m, int64_t Ts, int64_t B,
                                       const int32_t *src, const int64_t *src_lens,
                                       int64_t width, int64_t max_len, double alpha,
                                       int64_t nbest, int32_t *tokens, int64_t *lengths,
                                       double *scores, void *ws, size_t ws_bytes) {
    clstm_status st = check_model(m);
    if (st != CLSTM_OK) return st;
    if (!src || !src_lens || !tokens || !lengths || !scores) return CLSTM_ERR_NULL;
    if (!(alpha >= 0 && isfinite(alpha)) || nbest < 1 || nbest > width) return CLSTM_ERR_ARG;
    s2s_dec_ws ly;
    if ((st = plan_decode(m, Ts, B, width, max_len, &ly)) != CLSTM_OK) return st;
    if (!ws || ws_bytes < ly.total) return CLSTM_ERR_WORKSPACE;
    if ((st = clstm_check_lengths(src_lens, B, Ts)) != CLSTM_OK) return st;
    char *base = ws_base(ws);
    ((s2s_head *)(void *)base)->magic = 0; /* no training forward's any more */
    const int f64 = m->cfg.dtype == CLSTM_FLOAT64;
    const size_t e = m->elem;
    const int64_t K = width, R = B * K, V = m->cfg.target_vocab;
    void *S = base + ly.S;
    clstm_run_options opt = clstm_run_options_default();
    opt.lengths = src_lens;
    st = clstm_model_forward(m, Ts, B, NULL, src, NULL, NULL, S, NULL, NULL, &opt,
                             base + ly.enc, ly.enc_bytes);
    if (st != CLSTM_OK) return st;
    s2s_dims d;
    s2s_weights w;
    dims_of(m, Ts, 1, R, 0, &d);
    weights_of(m, m->params, &w);
    const void *keys = f64 ? clstm_s2s_keys_f64(&d, &w, S, B, base + ly.K)
                           : clstm_s2s_keys_f32(&d, &w, S, B, base + ly.K);
    const int64_t Ld = d.Ld, Hd = d.Hd, A = d.A;
    /* state buffers: in = 0, out = 1; per layer h then c, R rows each */
    void *hcs[2][2][CLSTM_S2S_MAX_LAYERS];
    for (int s = 0; s < 2; s++)
        for (int64_t l = 0; l < Ld; l++)
            for (int k = 0; k < 2; k++)
                hcs[s][k][l] = base + ly.hc[s] + (size_t)((2 * l + k) * R * Hd) * e;
    for (int s = 0; s < 2; s++) { /* rows no hypothesis holds are computed too: defined */
        memset(base + ly.hc[s], 0, (size_t)(2 * Ld * R * Hd) * e);
        memset(base + ly.feed[s], 0, (size_t)(R * A) * e);
    }
    int64_t *src_of = (int64_t *)(void *)(base + ly.src_of), *live = (int64_t *)(void *)(base + ly.live);
    int64_t *first = (int64_t *)(void *)(base + ly.first);
    int64_t *fin_len = (int64_t *)(void *)(base + ly.fin_len), *fin_n = (int64_t *)(void *)(base + ly.fin_n);
    int32_t *ids = (int32_t *)(void *)(base + ly.ids), *fin_tok = (int32_t *)(void *)(base + ly.fin_tok);
    int32_t *hist[2] = {(int32_t *)(void *)(base + ly.hist[0]), (int32_t *)(void *)(base + ly.hist[1])};
    double *score[2] = {(double *)(void *)(base + ly.score[0]), (double *)(void *)(base + ly.score[1])};
    double *fin_raw = (double *)(void *)(base + ly.fin_raw), *logp = (double *)(void *)(base + ly.logp);
    s2s_cand *cand = (s2s_cand *)(void *)(base + ly.cand);
    /* The live hypotheses are packed: source b's are rows first[b] ..
     * first[b] + live[b] - 1, in source order, and only the n_rows rows held
     * are stepped (a finished source, or a beam not yet full, costs nothing). */
    for (int64_t b = 0; b < B; b++)
        src_of[b] = b, ids[b] = 0, score[0][b] = 0, first[b] = b, live[b] = 1, fin_n[b] = 0;
    int64_t open = B, n_rows = B; /* sources still searching; rows held */
    int64_t step;
    for (step = 1; step <= max_len && open > 0; step++) {
        int team = clstm_team_size(n_rows, Hd);
        if (team > n_rows) team = (int)n_rows;
        void *fin = base + ly.feed[0], *fout = base + ly.feed[1];
        /* the rows are independent: each thread steps a slice of them */
#pragma omp parallel num_threads(team)
        {
            const int64_t n = omp_get_num_threads(), tid = omp_get_thread_num();
            const int64_t r0 = n_rows * tid / n, nr = n_rows * (tid + 1) / n - r0;
            void *hp[CLSTM_S2S_MAX_LAYERS], *cp[CLSTM_S2S_MAX_LAYERS];
            void *ho[CLSTM_S2S_MAX_LAYERS], *co[CLSTM_S2S_MAX_LAYERS];
            for (int64_t l = 0; l < Ld; l++) {
                const size_t off = (size_t)(r0 * Hd) * e;
                hp[l] = (char *)hcs[0][0][l] + off, cp[l] = (char *)hcs[0][1][l] + off;
                ho[l] = (char *)hcs[1][0][l] + off, co[l] = (char *)hcs[1][1][l] + off;
            }
            const void *fi = step > 1 ? (const char *)fin + (size_t)(r0 * A) * e : NULL;
            void *fo = (char *)fout + (size_t)(r0 * A) * e;
            void *scr = base + ly.scratch + s2s_step_scratch(&d, r0) * e;
            void *z = base + ly.logits + (size_t)(r0 * V) * e;
            if (nr > 0 && f64)
                clstm_s2s_decode_step_f64(&d, &w, S, keys, B, src_lens, src_of + r0, nr,
                                          ids + r0, fi, hp, cp, ho, co, scr, fo, z);
            else if (nr > 0)
                clstm_s2s_decode_step_f32(&d, &w, S, keys, B, src_lens, src_of + r0, nr,
                                          ids + r0, fi, hp, cp, ho, co, scr, fo, z);
            if (nr > 0)
                log_softmax_rows(f64, nr, V, (const char *)base + ly.logits + (size_t)(r0 * V) * e,
                                 logp + r0 * V);
        }
        int64_t packed = 0; /* the next step's rows */
        for (int64_t b = 0; b < B; b++) {
            if (live[b] == 0) continue; /* done */
            /* the best 2K candidates in order (at most K end in </s>, one a row) */
            int64_t nc = 0;
            const int64_t cap = 2 * K;
            for (int64_t i = 0; i < live[b]; i++) {
                const int64_t row = first[b] + i;
                for (int64_t v = 0; v < V; v++) {
                    const s2s_cand c = {score[0][row] + logp[row * V + v], row, (int32_t)v};
                    if (nc == cap && !cand_before(&c, &cand[nc - 1])) continue;
                    int64_t at = nc < cap ? nc++ : nc - 1;
                    while (at > 0 && cand_before(&c, &cand[at - 1])) cand[at] = cand[at - 1], at--;
                    cand[at] = c;
                }
            }
            int64_t n_live = 0;
            const int64_t first_b = packed;
            for (int64_t i = 0; i < nc && n_live < K; i++) {
                const s2s_cand *c = &cand[i];
                const int64_t p = c->row;
                if (c->tok == 1) { /* </s>: finished */
                    if (fin_n[b] < K) {
                        const int64_t f = b * 2 * K + fin_n[b]++;
                        memcpy(fin_tok + f * max_len, hist[0] + p * max_len,
                               (size_t)(step - 1) * sizeof(int32_t));
                        fin_len[f] = step - 1;
                        fin_raw[f] = c->total / pow((double)step, alpha);
                    }
                    continue;
                }
                const int64_t row = packed++;
                n_live++;
                src_of[row] = b;
                memcpy(hist[1] + row * max_len, hist[0] + p * max_len,
                       (size_t)(step - 1) * sizeof(int32_t));
                hist[1][row * max_len + step - 1] = c->tok;
                score[1][row] = c->total;
                ids[row] = c->tok;
                for (int s = 0; s < 2; s++)
                    for (int64_t l = 0; l < Ld; l++)
                        memcpy((char *)hcs[0][s][l] + (size_t)(row * Hd) * e,
                               (const char *)hcs[1][s][l] + (size_t)(p * Hd) * e,
                               (size_t)Hd * e);
                memcpy((char *)fin + (size_t)(row * A) * e, (const char *)fout + (size_t)(p * A) * e,
                       (size_t)A * e);
            }
            live[b] = n_live;
            first[b] = first_b;
            if (fin_n[b] >= K || n_live == 0) live[b] = 0, open--, packed = first_b;
        }
        n_rows = packed;
        int32_t *th = hist[0];
        hist[0] = hist[1], hist[1] = th;
        double *ts = score[0];
        score[0] = score[1], score[1] = ts;
    }
    for (int64_t b = 0; b < B; b++) {
        /* a source the length cut short: its live hypotheses finish as they are */
        for (int64_t i = 0; i < live[b]; i++) {
            const int64_t row = first[b] + i, f = b * 2 * K + fin_n[b]++;
            memcpy(fin_tok + f * max_len, hist[0] + row * max_len, (size_t)max_len * sizeof(int32_t));
            fin_len[f] = max_len;
            fin_raw[f] = score[0][row] / pow((double)max_len, alpha);
        }
        /* rank by normalized score, stably (the order found breaks ties) */
        for (int64_t k = 0; k < nbest; k++) {
            int64_t best = -1;
            for (int64_t i = 0; i < fin_n[b]; i++) {
                const int64_t f = b * 2 * K + i;
                if (fin_len[f] >= 0 && (best < 0 || fin_raw[f] > fin_raw[best])) best = f;
            }
            int32_t *out = tokens + (b * nbest + k) * max_len;
            memset(out, 0, (size_t)max_len * sizeof(int32_t));
            if (best < 0) { /* fewer hypotheses than nbest */
                lengths[b * nbest + k] = -1, scores[b * nbest + k] = -INFINITY;
                continue;
            }
            memcpy(out, fin_tok + best * max_len, (size_t)fin_len[best] * sizeof(int32_t));
            lengths[b * nbest + k] = fin_len[best];
            scores[b * nbest + k] = fin_raw[best];
            fin_len[best] = -1; /* taken */
        }
    }
    return CLSTM_OK;
}
