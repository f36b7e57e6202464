/* Connectionist temporal classification (Graves et al., ICML 2006): the
 * loss with its gradient with respect to the logits, best-path decoding
 * and prefix beam search (include/clstm.h, "CTC").
 *
 * Numerics. Everything runs in double whatever the dtype: log_softmax of
 * each row (max subtracted), then the forward (alpha) and backward (beta)
 * recursions in log space over the extended labelling l' = (blank, l_1,
 * blank, ..., l_L, blank), both including the emission at t, so that
 * alpha_t(s) + beta_t(s) - lp_t(l'_s) is the log probability of the paths
 * through (t, s). The gradient of -log p(l | x) with respect to logit z_tk
 * is softmax(z_t)_k - sum_{s: l'_s = k} exp(alpha_t(s) + beta_t(s) -
 * lp_t(k) + loss), the classic one (and PyTorch's). Each sequence is one
 * thread's, start to end, and the batch's reduction is summed in order, so
 * results do not depend on the thread count. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "pipeline.h"

static double lse2(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    const double m = a > b ? a : b;
    return m + log1p(exp(-fabs(a - b)));
}

/* Element (t, b, k) of the logits (T, B, C) as a double. */
static double logit(clstm_dtype dtype, const void *z, int64_t i) {
    return dtype == CLSTM_FLOAT64 ? ((const double *)z)[i] : (double)((const float *)z)[i];
}

/* Row (t, b)'s log-sum-exp, max subtracted: log_softmax = z - lse. */
static double row_lse(clstm_dtype dtype, const void *z, int64_t row, int64_t C) {
    double m = -INFINITY, s = 0;
    for (int64_t k = 0; k < C; k++) {
        const double v = logit(dtype, z, row * C + k);
        if (v > m || isnan(v)) m = v;
    }
    if (isnan(m) || m == INFINITY) return m; /* NaN, or +inf - +inf below */
    if (m == -INFINITY) return -INFINITY;     /* every logit -inf: NaN rows */
    for (int64_t k = 0; k < C; k++) s += exp(logit(dtype, z, row * C + k) - m);
    return m + log(s);
}

/* The fewest steps that can emit these L labels: L, plus one blank between
 * each pair of equal neighbours. */
static int64_t min_steps(const int32_t *y, int64_t L) {
    int64_t n = L;
    for (int64_t s = 1; s < L; s++) n += y[s] == y[s - 1];
    return n;
}

/* Store v at element i of dlogits (dtype). */
static void put(clstm_dtype dtype, void *d, int64_t i, double v) {
    if (dtype == CLSTM_FLOAT64) ((double *)d)[i] = v;
    else ((float *)d)[i] = (float)v;
}

/* One sequence b: its loss (-log p, +inf where no path exists, 0 then with
 * zero_infinity) and, when d is not NULL, scale * its gradient into rows
 * t < Tb of d (the (T, B, C) dlogits; rows past Tb are the caller's).
 * Scratch: lse (Tb doubles), alpha (Tb * (2L + 1)), beta2 (2 * (2L + 1)),
 * row (C). */
static double ctc_one(clstm_dtype dtype, const void *z, int64_t B, int64_t C, int64_t b,
                      int64_t Tb, const int32_t *y, int64_t L, int32_t blank, double *lse,
                      double *alpha, double *beta2, double *row, void *d, double scale,
                      int zero_infinity) {
    const int64_t S = 2 * L + 1;
#define LABEL(s) ((s) & 1 ? y[(s) >> 1] : blank)
#define LP(t, k) (logit(dtype, z, ((t) * B + b) * C + (k)) - lse[t])
#define FILL(v)                                                           \
    do {                                                                  \
        if (d)                                                            \
            for (int64_t t_ = 0; t_ < Tb; t_++)                           \
                for (int64_t k_ = 0; k_ < C; k_++) put(dtype, d, (t_ * B + b) * C + k_, v); \
    } while (0)
    if (Tb < min_steps(y, L)) { /* no alignment: PyTorch's inf and NaN */
        FILL(zero_infinity ? 0.0 : NAN);
        return zero_infinity ? 0 : INFINITY;
    }
    if (Tb == 0) return 0; /* (L = 0) nothing to emit, and nothing emitted */
    for (int64_t t = 0; t < Tb; t++) lse[t] = row_lse(dtype, z, t * B + b, C);
    /* alpha, row t at alpha + t * S */
    for (int64_t s = 0; s < S; s++) alpha[s] = -INFINITY;
    alpha[0] = LP(0, blank);
    if (S > 1) alpha[1] = LP(0, LABEL(1));
    for (int64_t t = 1; t < Tb; t++) {
        const double *a0 = alpha + (t - 1) * S;
        double *a1 = alpha + t * S;
        for (int64_t s = 0; s < S; s++) {
            double v = a0[s];
            if (s >= 1) v = lse2(v, a0[s - 1]);
            if (s >= 2 && (s & 1) && LABEL(s) != LABEL(s - 2)) v = lse2(v, a0[s - 2]);
            a1[s] = v == -INFINITY ? v : v + LP(t, LABEL(s));
        }
    }
    const double *aT = alpha + (Tb - 1) * S;
    const double logp = S > 1 ? lse2(aT[S - 1], aT[S - 2]) : aT[0];
    if (logp == -INFINITY) { /* every path has probability 0 (-inf logits) */
        FILL(zero_infinity ? 0.0 : NAN);
        return zero_infinity ? 0 : INFINITY;
    }
    const double loss = -logp; /* NaN where the logits hold NaN */
    if (!d) return loss;
    /* beta by rows, two of them; row t's gradient as soon as beta_t is
     * known: the occupation of each class summed (in log) into row, then
     * softmax - exp(occupation - log p) */
    double *bn = beta2, *bc = beta2 + S; /* beta_{t+1}, beta_t */
    for (int64_t t = Tb - 1; t >= 0; t--) {
        for (int64_t s = 0; s < S; s++) {
            double v;
            if (t == Tb - 1) {
                v = s >= S - 2 ? 0 : -INFINITY;
            } else {
                v = bn[s];
                if (s + 1 < S) v = lse2(v, bn[s + 1]);
                if (s + 2 < S && (s & 1) && LABEL(s) != LABEL(s + 2)) v = lse2(v, bn[s + 2]);
            }
            bc[s] = v == -INFINITY ? v : v + LP(t, LABEL(s));
        }
        for (int64_t k = 0; k < C; k++) row[k] = -INFINITY;
        const double *at = alpha + t * S;
        for (int64_t s = 0; s < S; s++) {
            const int32_t k = LABEL(s);
            if (at[s] > -INFINITY && bc[s] > -INFINITY)
                row[k] = lse2(row[k], at[s] + bc[s] - LP(t, k));
        }
        for (int64_t k = 0; k < C; k++)
            put(dtype, d, (t * B + b) * C + k,
                scale * (exp(LP(t, k)) - exp(row[k] + loss)));
        double *swap = bn;
        bn = bc;
        bc = swap;
    }
    return loss;
#undef FILL
#undef LP
#undef LABEL
}

static int64_t seq_len(const int64_t *lengths, int64_t b, int64_t T) {
    return lengths ? lengths[b] : T;
}

/* The arguments of the loss and the decoders, checked alike. */
static clstm_status check_ctc(clstm_dtype dtype, int64_t T, int64_t B, int64_t C,
                              const void *logits, const int64_t *input_lengths, int32_t blank) {
    if (!logits) return CLSTM_ERR_NULL;
    if (T < 1 || B < 1 || C < 1) return CLSTM_ERR_SIZE;
    if (T > INT64_MAX / B || T * B > INT64_MAX / C) return CLSTM_ERR_OVERFLOW;
    if (dtype != CLSTM_FLOAT32 && dtype != CLSTM_FLOAT64) return CLSTM_ERR_DTYPE;
    if (!clstm_array_ok(T, B, C, dtype == CLSTM_FLOAT64 ? sizeof(double) : sizeof(float)))
        return CLSTM_ERR_OVERFLOW;
    if (clstm_check_lengths(input_lengths, B, T) != CLSTM_OK) return CLSTM_ERR_ARG;
    if (blank < 0 || blank >= C) return CLSTM_ERR_ARG;
    return CLSTM_OK;
}

/* Threads for B independent sequences of about `work` operations each:
 * clstm's count, at most B, and one where the batch is small. */
static int seq_threads(int64_t B, double work) {
    int nt = clstm_get_num_threads();
    if (nt > B) nt = (int)B;
    if (work * (double)B < 1e5) nt = 1;
    return nt < 1 ? 1 : nt;
}

clstm_status clstm_ctc_loss(clstm_dtype dtype, int64_t T, int64_t B, int64_t C,
                            const void *logits, const int64_t *input_lengths,
                            const int32_t *targets, int64_t S, const int64_t *target_lengths,
                            int32_t blank, clstm_reduction reduction, int zero_infinity,
                            double *loss, void *dlogits) {
    clstm_status st = check_ctc(dtype, T, B, C, logits, input_lengths, blank);
    if (st != CLSTM_OK) return st;
    if (!loss || !target_lengths || (!targets && S > 0)) return CLSTM_ERR_NULL;
    if (S < 0) return CLSTM_ERR_SIZE;
    if (S > 0 && B > INT64_MAX / S) return CLSTM_ERR_OVERFLOW;
    if (reduction != CLSTM_REDUCE_NONE && reduction != CLSTM_REDUCE_SUM &&
        reduction != CLSTM_REDUCE_MEAN)
        return CLSTM_ERR_ARG;
    if (clstm_check_lengths(target_lengths, B, S) != CLSTM_OK) return CLSTM_ERR_ARG;
    int64_t most = 0; /* the largest Tb * (2 L + 1) */
    for (int64_t b = 0; b < B; b++) {
        const int64_t L = target_lengths[b], Tb = seq_len(input_lengths, b, T);
        for (int64_t s = 0; s < L; s++) {
            const int32_t k = targets[b * S + s];
            if (k < 0 || k >= C || k == blank) return CLSTM_ERR_ARG;
        }
        if (Tb * (2 * L + 1) > most) most = Tb * (2 * L + 1);
    }
    /* per thread: lse (T), alpha (most), beta (2 (2S + 1)), a row (C) */
    const double per_d = (double)T + (double)most + 2.0 * (2.0 * (double)S + 1) + (double)C;
    const int nt = seq_threads(B, (double)most + (double)T * (double)C);
    if (per_d * nt * sizeof(double) > (double)(SIZE_MAX / 4)) return CLSTM_ERR_NOMEM;
    const int64_t per = (int64_t)per_d;
    double *scratch = malloc((size_t)per * (size_t)nt * sizeof(double));
    double *each = malloc((size_t)B * sizeof(double));
    if (!scratch || !each) {
        free(scratch);
        free(each);
        return CLSTM_ERR_NOMEM;
    }
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t b = 0; b < B; b++) {
        double *lse = scratch + (size_t)per * (size_t)omp_get_thread_num();
        double *alpha = lse + T, *beta2 = alpha + most, *row = beta2 + 2 * (2 * S + 1);
        const int64_t L = target_lengths[b], Tb = seq_len(input_lengths, b, T);
        const double scale = reduction == CLSTM_REDUCE_MEAN
                                 ? 1.0 / ((double)B * (double)(L > 1 ? L : 1))
                                 : 1.0;
        each[b] = ctc_one(dtype, logits, B, C, b, Tb, targets + b * S, L, blank, lse, alpha,
                          beta2, row, dlogits, scale, zero_infinity);
        for (int64_t t = Tb; dlogits && t < T; t++)
            for (int64_t k = 0; k < C; k++) put(dtype, dlogits, (t * B + b) * C + k, 0.0);
    }
    if (reduction == CLSTM_REDUCE_NONE) {
        memcpy(loss, each, (size_t)B * sizeof(double));
    } else {
        double sum = 0;
        for (int64_t b = 0; b < B; b++) {
            const int64_t L = target_lengths[b];
            sum += reduction == CLSTM_REDUCE_MEAN ? each[b] / (double)(L > 1 ? L : 1) : each[b];
        }
        *loss = reduction == CLSTM_REDUCE_MEAN ? sum / (double)B : sum;
    }
    free(scratch);
    free(each);
    return CLSTM_OK;
}

/* Row (t, b)'s log_softmax into lp (C doubles). */
static void log_softmax_row(clstm_dtype dtype, const void *z, int64_t row, int64_t C,
                            double *lp) {
    const double lse = row_lse(dtype, z, row, C);
    for (int64_t k = 0; k < C; k++) lp[k] = logit(dtype, z, row * C + k) - lse;
}

clstm_status clstm_ctc_greedy(clstm_dtype dtype, int64_t T, int64_t B, int64_t C,
                              const void *logits, const int64_t *input_lengths, int32_t blank,
                              int32_t *labels, int64_t *label_lengths) {
    clstm_status st = check_ctc(dtype, T, B, C, logits, input_lengths, blank);
    if (st != CLSTM_OK) return st;
    if (!labels || !label_lengths) return CLSTM_ERR_NULL;
    for (int64_t b = 0; b < B; b++) {
        const int64_t Tb = seq_len(input_lengths, b, T);
        int64_t n = 0;
        int32_t prev = blank;
        for (int64_t t = 0; t < Tb; t++) {
            int32_t best = 0; /* the first of the largest; NaN never wins */
            double v = logit(dtype, logits, (t * B + b) * C);
            for (int64_t k = 1; k < C; k++) {
                const double w = logit(dtype, logits, (t * B + b) * C + k);
                if (w > v || (isnan(v) && !isnan(w))) {
                    v = w;
                    best = (int32_t)k;
                }
            }
            if (best != blank && best != prev) labels[b * T + n++] = best;
            prev = best;
        }
        label_lengths[b] = n;
    }
    return CLSTM_OK;
}

/* Prefix beam search (Hannun et al., 2014, "First-pass large vocabulary
 * continuous speech recognition using bi-directional recurrent DNNs").
 * Prefixes are the nodes of a trie (parent, label), found again through a
 * hash of (parent, label), so one labelling is one node; each beam entry
 * keeps the log probability of its paths ending in a blank (pb) and in
 * its last label (pnb). With a language model (shallow fusion), every
 * node also keeps the model's state after its labels, its log
 * probabilities for the next token, and lm: weight * the sum of its
 * labels' log probabilities + bonus * its length; entries rank by
 * log(pb + pnb) + lm. */
typedef struct {
    int64_t parent, node; /* the key is (parent, label); node: -1 until made */
    int32_t label;
    double pb, pnb, lm;
} beam_cand;

typedef struct {
    int64_t *parent; /* nodes: parent (-1: the root) and label */
    int32_t *label;
    int64_t *slot; /* a beam entry's node: its candidate's index in the step; else -1 */
    int64_t n;
    int64_t *hash; /* node + 1, 0: empty; hcap a power of two */
    int64_t hcap;
    /* with a language model: per node its state (state_bytes), log
     * probabilities of the next token (V doubles) and lm score */
    char *state;
    double *next, *lm;
} trie;

/* The language model's side of a search (clstm_ctc_lm and its sizes). */
typedef struct {
    const clstm_ctc_lm *lm;
    clstm_config cfg;
    int64_t V, hsize, csize; /* tokens; elements of h (NL, 1, R) and c (NL, 1, H) */
    size_t elem, state_bytes, ws_bytes;
} lm_info;

static uint64_t key_hash(int64_t parent, int32_t label) {
    uint64_t h = (uint64_t)parent * 0x9E3779B97F4A7C15ull ^ (uint64_t)(uint32_t)label;
    h ^= h >> 29;
    h *= 0xBF58476D1CE4E5B9ull;
    return h ^ (h >> 32);
}

/* The node of (parent, label), or -1 if there is none. */
static int64_t trie_find(const trie *tr, int64_t parent, int32_t label) {
    for (uint64_t i = key_hash(parent, label) & (uint64_t)(tr->hcap - 1);;
         i = (i + 1) & (uint64_t)(tr->hcap - 1)) {
        const int64_t h = tr->hash[i];
        if (h == 0) return -1;
        if (tr->parent[h - 1] == parent && tr->label[h - 1] == label) return h - 1;
    }
}

/* The node of (parent, label), made if new (room is reserved); *made says
 * whether it was. */
static int64_t trie_node(trie *tr, int64_t parent, int32_t label, int *made) {
    uint64_t i = key_hash(parent, label) & (uint64_t)(tr->hcap - 1);
    *made = 0;
    for (;; i = (i + 1) & (uint64_t)(tr->hcap - 1)) {
        const int64_t h = tr->hash[i];
        if (h == 0) break;
        if (tr->parent[h - 1] == parent && tr->label[h - 1] == label) return h - 1;
    }
    const int64_t n = tr->n++;
    tr->parent[n] = parent;
    tr->label[n] = label;
    tr->slot[n] = -1;
    tr->hash[i] = n + 1;
    *made = 1;
    return n;
}

/* Node n's language-model state and next-token log probabilities: the
 * model run one step from `from`'s state (the zero state for from < 0) on
 * token `token`. A token < 0 (a class the model has no token for, or the
 * root without a start token) leaves them as from's (the root's: the zero
 * state, every token equally likely). ws: the model's workspace, out: V
 * logits. */
static clstm_status lm_advance(const lm_info *li, trie *tr, int64_t n, int64_t from,
                               int32_t token, void *ws, void *out) {
    char *st = tr->state + (size_t)n * li->state_bytes;
    double *next = tr->next + n * li->V;
    if (from < 0) memset(st, 0, li->state_bytes);
    else memcpy(st, tr->state + (size_t)from * li->state_bytes, li->state_bytes);
    if (token < 0) {
        for (int64_t v = 0; v < li->V; v++)
            next[v] = from < 0 ? -log((double)li->V) : tr->next[from * li->V + v];
        return CLSTM_OK;
    }
    char *c = st + (size_t)li->hsize * li->elem;
    clstm_status s = clstm_model_forward(li->lm->model, 1, 1, NULL, &token, st, c, out, st, c,
                                         NULL, ws, li->ws_bytes);
    if (s != CLSTM_OK) return s;
    const clstm_dtype dt = li->cfg.dtype;
    const double lse = row_lse(dt, out, 0, li->V);
    for (int64_t v = 0; v < li->V; v++) next[v] = logit(dt, out, v) - lse;
    return CLSTM_OK;
}

static double cand_ctc(const beam_cand *c) { return lse2(c->pb, c->pnb); }
static double cand_score(const beam_cand *c) { return cand_ctc(c) + c->lm; }

static int cmp_key(const void *a, const void *b) {
    const beam_cand *x = a, *y = b;
    if (x->parent != y->parent) return x->parent < y->parent ? -1 : 1;
    return (x->label > y->label) - (x->label < y->label);
}

/* Best first; equal scores by key, so the order is total. */
static int cmp_score(const void *a, const void *b) {
    const double sx = cand_score(a), sy = cand_score(b);
    if (sx != sy) return sx > sy ? -1 : 1;
    return cmp_key(a, b);
}

/* One sequence. beam and best hold width entries, cand width * (C + 1);
 * lp C doubles; tr room for 1 + Tb * width nodes (and their
 * language-model rows with li). Writes its nbest results. */
static clstm_status beam_one(clstm_dtype dtype, const void *z, int64_t T, int64_t B, int64_t C,
                             int64_t b, int64_t Tb, int32_t blank, int64_t width, int64_t nbest,
                             beam_cand *beam, beam_cand *best, beam_cand *cand, double *lp,
                             trie *tr,
                             const lm_info *li, void *lm_ws, void *lm_out, int32_t *labels,
                             int64_t *lengths, double *scores) {
    memset(tr->hash, 0, (size_t)tr->hcap * sizeof *tr->hash);
    tr->n = 0;
    int made;
    const int64_t root = trie_node(tr, -1, -1, &made);
    clstm_status st = CLSTM_OK;
    if (li) {
        st = lm_advance(li, tr, root, -1, li->lm->start, lm_ws, lm_out);
        tr->lm[root] = 0;
    }
    int64_t nb = 1;
    beam[0] = (beam_cand){-1, root, -1, 0.0, -INFINITY, 0.0};
    for (int64_t t = 0; t < Tb && st == CLSTM_OK; t++) {
        log_softmax_row(dtype, z, t * B + b, C, lp);
        /* the same prefixes first (cand[e] for beam[e]: a blank, or the
         * last label repeated), each node's place in slot[] */
        for (int64_t e = 0; e < nb; e++) {
            const beam_cand *p = &beam[e];
            const int32_t last = tr->label[p->node];
            cand[e] = (beam_cand){tr->parent[p->node], p->node, last,
                                  lse2(p->pb, p->pnb) + lp[blank],
                                  last >= 0 ? p->pnb + lp[last] : -INFINITY, p->lm};
            tr->slot[p->node] = e;
        }
        int64_t nc = nb;
        for (int64_t e = 0; e < nb; e++) {
            const beam_cand *p = &beam[e];
            const int32_t last = tr->label[p->node];
            const double tot = lse2(p->pb, p->pnb);
            const double *next = li ? tr->next + p->node * li->V : NULL;
            double floor = 0; /* a class the model has no token for: its least likely */
            for (int64_t v = 0; li && v < li->V; v++)
                floor = v == 0 || next[v] < floor ? next[v] : floor;
            for (int64_t k = 0; k < C; k++) {
                if (k == blank) continue;
                const double from = k == last ? p->pb : tot; /* aa needs a blank between */
                double lm = p->lm;
                if (li) {
                    const int32_t v = li->lm->tokens[k];
                    lm += li->lm->weight * (v >= 0 ? next[v] : floor) + li->lm->bonus;
                }
                /* an extension that is another entry merges into its
                 * candidate (the same labelling, the same lm) */
                const int64_t c = trie_find(tr, p->node, (int32_t)k);
                if (c >= 0 && tr->slot[c] >= 0) {
                    beam_cand *q = &cand[tr->slot[c]];
                    q->pnb = lse2(q->pnb, from + lp[k]);
                } else {
                    cand[nc++] = (beam_cand){p->node, c, (int32_t)k, -INFINITY, from + lp[k], lm};
                }
            }
        }
        /* the best `width` in (score, key) order: an insertion into best[]
         * (most candidates fall below its last at once) */
        int64_t m = 0;
        for (int64_t i = 0; i < nc; i++) {
            if (m == width && cmp_score(&cand[i], &best[m - 1]) >= 0) continue;
            int64_t j = m < width ? m++ : m - 1;
            for (; j > 0 && cmp_score(&cand[i], &best[j - 1]) < 0; j--) best[j] = best[j - 1];
            best[j] = cand[i];
        }
        for (int64_t e = 0; e < nb; e++) tr->slot[beam[e].node] = -1;
        nb = m;
        for (int64_t i = 0; i < nb && st == CLSTM_OK; i++) {
            beam[i] = best[i];
            if (beam[i].node >= 0) continue;
            beam[i].node = trie_node(tr, beam[i].parent, beam[i].label, &made);
            if (li && made) {
                tr->lm[beam[i].node] = beam[i].lm;
                st = lm_advance(li, tr, beam[i].node, beam[i].parent,
                                li->lm->tokens[beam[i].label], lm_ws, lm_out);
            }
        }
    }
    for (int64_t r = 0; r < nbest; r++) {
        int32_t *out = labels + (b * nbest + r) * T;
        if (r >= nb || st != CLSTM_OK) {
            lengths[b * nbest + r] = 0;
            scores[b * nbest + r] = -INFINITY;
            continue;
        }
        int64_t n = 0;
        for (int64_t v = beam[r].node; tr->parent[v] >= 0; v = tr->parent[v]) n++;
        lengths[b * nbest + r] = n;
        scores[b * nbest + r] = cand_score(&beam[r]);
        for (int64_t v = beam[r].node, i = n - 1; tr->parent[v] >= 0; v = tr->parent[v], i--)
            out[i] = tr->label[v];
    }
    return st;
}

/* The language model's sizes, or ARG where it cannot serve (not a token
 * model with a softmax head over its tokens, bidirectional, a token id
 * out of range, the blank mapped, a weight or bonus not finite). */
static clstm_status lm_check(const clstm_ctc_lm *lm, int64_t C, int32_t blank, lm_info *li) {
    if (!lm->model || !lm->tokens) return CLSTM_ERR_NULL;
    li->cfg = clstm_config_default(); /* sets struct_size, which get_config reads */
    clstm_status st = clstm_get_config(lm->model, &li->cfg);
    if (st != CLSTM_OK) return st;
    const clstm_config *c = &li->cfg;
    if (c->encoding == CLSTM_ENCODING_NONE || c->bidirectional || c->reverse ||
        c->output_size < 1 ||
        c->output_size != c->vocab_size || !isfinite(lm->weight) || !isfinite(lm->bonus))
        return CLSTM_ERR_ARG;
    li->lm = lm;
    li->V = c->output_size;
    for (int64_t k = 0; k < C; k++)
        if (lm->tokens[k] < -1 || lm->tokens[k] >= li->V || (k == blank && lm->tokens[k] != -1))
            return CLSTM_ERR_ARG;
    if (lm->start < -1 || lm->start >= li->V) return CLSTM_ERR_ARG;
    const int64_t R = c->proj_size > 0 ? c->proj_size : c->hidden_size;
    li->hsize = c->num_layers * R;
    li->csize = c->num_layers * c->hidden_size;
    li->elem = c->dtype == CLSTM_FLOAT64 ? sizeof(double) : sizeof(float);
    li->state_bytes = (size_t)(li->hsize + li->csize) * li->elem;
    return clstm_model_workspace_size(lm->model, 1, 1, 0, &li->ws_bytes);
}

clstm_status clstm_ctc_beam_search_lm(clstm_dtype dtype, int64_t T, int64_t B, int64_t C,
                                      const void *logits, const int64_t *input_lengths,
                                      int32_t blank, int64_t width, int64_t nbest,
                                      const clstm_ctc_lm *lm, int32_t *labels,
                                      int64_t *label_lengths, double *scores) {
    clstm_status st = check_ctc(dtype, T, B, C, logits, input_lengths, blank);
    if (st != CLSTM_OK) return st;
    if (!labels || !label_lengths || !scores) return CLSTM_ERR_NULL;
    if (width < 1 || nbest < 1 || nbest > width || width > CLSTM_CTC_MAX_WIDTH)
        return CLSTM_ERR_ARG;
    if (!clstm_array_ok(B, nbest, T, sizeof(int32_t))) return CLSTM_ERR_OVERFLOW;
    lm_info info, *li = NULL;
    if (lm) {
        if ((st = lm_check(lm, C, blank, &info)) != CLSTM_OK) return st;
        li = &info;
    }
    /* nodes: the root and at most width new ones a step */
    const double nodes = 1.0 + (double)T * (double)width, ncand = (double)width * (double)(C + 1);
    int64_t hcap = 1;
    while ((double)hcap < 2.0 * nodes) hcap *= 2;
    double bytes = nodes * (2 * sizeof(int64_t) + sizeof(int32_t)) +
                   (double)hcap * sizeof(int64_t) +
                   (ncand + 2.0 * (double)width) * sizeof(beam_cand) + (double)C * sizeof(double);
    if (li) /* per node: state, next-token row, lm; then the model's workspace and logits */
        bytes += nodes * ((double)li->state_bytes + (double)(li->V + 1) * sizeof(double)) +
                 (double)li->ws_bytes + (double)li->V * sizeof(double) + 64;
    /* the language model runs one step at a time on the calling thread's
     * team: one sequence at a time */
    const int nt = li ? 1 : seq_threads(B, (double)T * ncand * 8);
    if (bytes * nt > (double)(SIZE_MAX / 4)) return CLSTM_ERR_NOMEM;
    void **mem = calloc((size_t)nt, sizeof *mem);
    int ok = mem != NULL;
    for (int i = 0; ok && i < nt; i++) ok = (mem[i] = malloc((size_t)bytes)) != NULL;
    if (!ok) {
        for (int i = 0; mem && i < nt; i++) free(mem[i]);
        free(mem);
        return CLSTM_ERR_NOMEM;
    }
    clstm_status worst = CLSTM_OK;
#pragma omp parallel for num_threads(nt) schedule(static)
    for (int64_t b = 0; b < B; b++) {
        char *p = mem[omp_get_thread_num()];
        beam_cand *cand = (beam_cand *)p, *beam = cand + (int64_t)ncand, *best = beam + width;
        int64_t *hash = (int64_t *)(best + width);
        int64_t *parent = hash + hcap, *slot = parent + (int64_t)nodes;
        double *lp = (double *)(slot + (int64_t)nodes);
        int32_t *label = (int32_t *)(lp + C);
        trie tr = {parent, label, slot, 0, hash, hcap, NULL, NULL, NULL};
        void *lm_ws = NULL, *lm_out = NULL;
        if (li) { /* after the labels, 8-aligned: next, lm, logits, workspace, states */
            tr.next = (double *)((((uintptr_t)(label + (int64_t)nodes)) + 7) & ~(uintptr_t)7);
            tr.lm = tr.next + (int64_t)nodes * li->V;
            lm_out = tr.lm + (int64_t)nodes;
            lm_ws = (double *)lm_out + li->V;
            tr.state = (char *)lm_ws + ((li->ws_bytes + 7) & ~(size_t)7);
        }
        const clstm_status s =
            beam_one(dtype, logits, T, B, C, b, seq_len(input_lengths, b, T), blank, width,
                     nbest, beam, best, cand, lp, &tr, li, lm_ws, lm_out, labels, label_lengths,
                     scores);
        if (s != CLSTM_OK) {
#pragma omp critical(clstm_ctc_status)
            worst = s;
        }
    }
    for (int i = 0; i < nt; i++) free(mem[i]);
    free(mem);
    return worst;
}

clstm_status clstm_ctc_beam_search(clstm_dtype dtype, int64_t T, int64_t B, int64_t C,
                                   const void *logits, const int64_t *input_lengths,
                                   int32_t blank, int64_t width, int64_t nbest, int32_t *labels,
                                   int64_t *label_lengths, double *scores) {
    return clstm_ctc_beam_search_lm(dtype, T, B, C, logits, input_lengths, blank, width, nbest,
                                    NULL, labels, label_lengths, scores);
}
