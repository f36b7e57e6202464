/* The attention decoder of an encoder-decoder (internal; the public calls
 * are clstm_seq2seq_* in include/clstm.h).
 *
 * Luong et al. 2015's global attention after the decoder step, "general"
 * (keys K = S W_a^T) or "dot" (K = S) scores, and input feeding:
 *
 *   x_t   = [emb(y_t); f_{t-1}]                 (E + A), f_{-1} = 0
 *   h_t   = LSTM_dec(x_t)                       top layer (Hd); state 0 at t = 0
 *   a_tj  = softmax_j(h_t . K_j), j < the source's length (no valid j: a = 0)
 *   ctx_t = sum_j a_tj S_j                      (Ne)
 *   f_t   = tanh(W_c [ctx_t; h_t])              (A)
 *   z_t   = W_o f_t + b_o                       (V), 0 past the target's length
 *
 * tests/seq2seq_torch.py is the same model in PyTorch. */
#ifndef CLSTM_SEQ2SEQ_H
#define CLSTM_SEQ2SEQ_H

#include <stddef.h>
#include <stdint.h>

#define CLSTM_S2S_MAX_LAYERS 8

typedef struct {
    int64_t Ts, Tt, B; /* source steps, target steps, batch */
    int64_t Ne, Hd, Ld, E, A, V;
    int dot;   /* keys are S itself (needs Hd == Ne) */
    int train; /* the workspace holds the backward's buffers too */
    int use_blas;
} s2s_dims;

/* The decoder's tensors in one dtype's block (parameters or gradients). */
typedef struct {
    void *emb;                                    /* (V, E) */
    void *w_ih[CLSTM_S2S_MAX_LAYERS];             /* (4Hd, E + A), then (4Hd, Hd) */
    void *w_hh[CLSTM_S2S_MAX_LAYERS];             /* (4Hd, Hd) */
    void *b_ih[CLSTM_S2S_MAX_LAYERS], *b_hh[CLSTM_S2S_MAX_LAYERS]; /* (4Hd) */
    void *w_a;                                    /* (Hd, Ne); NULL with dot */
    void *w_c;                                    /* (A, Ne + Hd) */
    void *w_o, *b_o;                              /* (V, A), (V) */
} s2s_weights;

/* The workspace: offsets in elements (seq2seq_kernels.inc says what each holds). */
typedef struct {
    size_t K, X0, G[CLSTM_S2S_MAX_LAYERS], H[CLSTM_S2S_MAX_LAYERS], C[CLSTM_S2S_MAX_LAYERS],
        alpha, ctx, feed, dA[CLSTM_S2S_MAX_LAYERS], dpre, dK, dE, dh_rec, dc_rec, dh, dx, dctx,
        dfeed, dal, total;
    int overflow; /* the sizes do not fit size_t: nothing else is valid */
} s2s_layout;

/* Forward buffers first, then (train only) the backward's. Every product
 * and sum is checked. */
static inline s2s_layout s2s_plan(const s2s_dims *d) {
    s2s_layout ly = {0};
    size_t o = 0, n;
    const size_t Ts = (size_t)d->Ts, Tt = (size_t)d->Tt, B = (size_t)d->B, Hd = (size_t)d->Hd;
    const size_t in0 = (size_t)(d->E + d->A), L = (size_t)d->Ld, Ne = (size_t)d->Ne;
    const size_t A = (size_t)d->A, TB = Tt * B;
    int bad = __builtin_mul_overflow(Tt, B, &n) || __builtin_mul_overflow(Ts, B, &n);
#define TAKE(field, a, b)                                                                    \
    (ly.field = o, bad |= __builtin_mul_overflow((size_t)(a), (size_t)(b), &n) ||             \
                          __builtin_add_overflow(o, n, &o))
    TAKE(K, d->dot ? 0 : Ts * B, Hd);
    TAKE(X0, TB, in0);
    for (size_t l = 0; l < L; l++) {
        TAKE(G[l], TB, 4 * Hd);
        TAKE(H[l], TB + B, Hd);
        TAKE(C[l], TB + B, Hd);
    }
    TAKE(alpha, TB, Ts);
    TAKE(ctx, TB, Ne);
    TAKE(feed, TB, A);
    const size_t tr = d->train ? 1 : 0;
    for (size_t l = 0; l < L; l++) TAKE(dA[l], tr * TB, 4 * Hd);
    TAKE(dpre, tr * TB, A);
    TAKE(dK, d->dot ? 0 : tr * Ts * B, Hd);
    TAKE(dE, tr * TB, (size_t)d->E);
    TAKE(dh_rec, tr * L * B, Hd);
    TAKE(dc_rec, tr * L * B, Hd);
    TAKE(dh, tr * B, Hd);
    TAKE(dx, tr * B, in0 > Hd ? in0 : Hd);
    TAKE(dctx, tr * B, Ne);
    TAKE(dfeed, tr * B, A);
    TAKE(dal, tr * B, Ts);
#undef TAKE
    ly.total = o;
    ly.overflow = bad;
    return ly;
}

/* Teacher forcing over tgt_in (Tt, B) ids: logits (Tt, B, V) from the
 * encoder outputs S (Ts, B, Ne) and the lengths; ws keeps what backward
 * needs. */
void clstm_s2s_forward_f32(const s2s_dims *d, const s2s_weights *w, const float *S,
                           const int64_t *src_lens, const int32_t *tgt_in,
                           const int64_t *tgt_lens, float *logits, float *ws);
void clstm_s2s_forward_f64(const s2s_dims *d, const s2s_weights *w, const double *S,
                           const int64_t *src_lens, const int32_t *tgt_in,
                           const int64_t *tgt_lens, double *logits, double *ws);
/* The gradients of a loss with d loss / d logits = dlogits: added into g,
 * and d loss / d S written to dS (Ts, B, Ne). After the forward with ws. */
void clstm_s2s_backward_f32(const s2s_dims *d, const s2s_weights *w, const s2s_weights *g,
                            const float *S, const int64_t *src_lens, const int32_t *tgt_in,
                            const float *dlogits, float *dS, float *ws);
void clstm_s2s_backward_f64(const s2s_dims *d, const s2s_weights *w, const s2s_weights *g,
                            const double *S, const int64_t *src_lens, const int32_t *tgt_in,
                            const double *dlogits, double *dS, double *ws);

/* Decoding (seq2seq.c): the keys of S (Ts, Bs, Ne) into K (Ts, Bs, Hd), or S
 * itself with dot attention; and one step of R rows (row r reads source
 * src_of[r]): ids (R) the previous tokens, feed_in (R, A) the previous f
 * (NULL: 0), state hp/cp in and h/c out per layer (R, Hd each), f into
 * feed_out, logits (R, V); scratch: s2s_step_scratch(d, R) elements. */
static inline size_t s2s_step_scratch(const s2s_dims *d, int64_t R) {
    return (size_t)R * (size_t)(d->E + d->A + d->Ts + d->Ne + 4 * d->Hd * d->Ld);
}
const void *clstm_s2s_keys_f32(const s2s_dims *d, const s2s_weights *w, const void *S,
                               int64_t Bs, void *K);
const void *clstm_s2s_keys_f64(const s2s_dims *d, const s2s_weights *w, const void *S,
                               int64_t Bs, void *K);
void clstm_s2s_decode_step_f32(const s2s_dims *d, const s2s_weights *w, const void *S,
                               const void *keys, int64_t Bs, const int64_t *src_lens,
                               const int64_t *src_of, int64_t R, const int32_t *ids,
                               const void *feed_in, void *const *hp, void *const *cp,
                               void *const *h, void *const *c, void *scratch, void *feed_out,
                               void *logits);
void clstm_s2s_decode_step_f64(const s2s_dims *d, const s2s_weights *w, const void *S,
                               const void *keys, int64_t Bs, const int64_t *src_lens,
                               const int64_t *src_of, int64_t R, const int32_t *ids,
                               const void *feed_in, void *const *hp, void *const *cp,
                               void *const *h, void *const *c, void *scratch, void *feed_out,
                               void *logits);

#endif
