/* The attention decoder (src/seq2seq.h, work in progress): float64
 * gradients of every tensor and of the encoder outputs against central
 * finite differences (h = 1e-6; errors relative to max(|fd|, 1e-3): the
 * differences' own rounding is about 1e-9 here, a wrong term is far above), "general" and "dot" attention, one and two layers,
 * BLAS and the naive loops; padding past a source's length never changes a
 * result, and logits past a target's length are 0. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/seq2seq.h"
#include "clstm.h"
#include "ctest.h"

void clstm_s2s_forward_f64(const s2s_dims *d, const s2s_weights *w, const double *S,
                           const int64_t *src_lens, const int32_t *tgt_in,
                           const int64_t *tgt_lens, double *logits, double *ws);

static uint64_t rng_state = 88172645463325252ull;
static double urand(void) { /* xorshift64 in [-1, 1) */
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) * 0x1.0p-52 - 1.0;
}

/* Point w at consecutive tensors of block (NULL: count only); returns the
 * elements. */
static size_t carve(const s2s_dims *d, double *block, s2s_weights *w) {
    size_t o = 0;
    const size_t Hd = (size_t)d->Hd, H4 = 4 * Hd;
#define PUT(field, n) (w->field = block ? block + o : NULL, o += (n))
    PUT(emb, (size_t)(d->V * d->E));
    for (int64_t l = 0; l < d->Ld; l++) {
        PUT(w_ih[l], H4 * (size_t)(l ? d->Hd : d->E + d->A));
        PUT(w_hh[l], H4 * Hd);
        PUT(b_ih[l], H4);
        PUT(b_hh[l], H4);
    }
    if (!d->dot)
        PUT(w_a, Hd * (size_t)d->Ne);
    else
        w->w_a = NULL;
    PUT(w_c, (size_t)(d->A * (d->Ne + d->Hd)));
    PUT(w_o, (size_t)(d->V * d->A));
    PUT(b_o, (size_t)d->V);
#undef PUT
    return o;
}

typedef struct {
    s2s_dims d;
    s2s_weights w, g;
    double *params, *grads, *S, *dS, *R, *logits, *ws;
    int64_t *src_lens, *tgt_lens;
    int32_t *tgt_in;
    size_t n_params;
} problem;

static double loss(problem *p) {
    const s2s_dims *d = &p->d;
    clstm_s2s_forward_f64(d, &p->w, p->S, p->src_lens, p->tgt_in, p->tgt_lens, p->logits,
                          p->ws);
    double s = 0;
    for (int64_t i = 0; i < d->Tt * d->B * d->V; i++) s += p->R[i] * p->logits[i];
    return s;
}

static void setup(problem *p, int dot, int64_t Ld, int use_blas) {
    memset(p, 0, sizeof *p);
    s2s_dims *d = &p->d;
    d->Ts = 5, d->Tt = 4, d->B = 3, d->Ne = 6, d->Hd = dot ? 6 : 5, d->Ld = Ld, d->E = 3;
    d->A = 4, d->V = 7, d->dot = dot, d->use_blas = use_blas;
    p->n_params = carve(d, NULL, &p->w);
    p->params = malloc(p->n_params * sizeof(double));
    p->grads = calloc(p->n_params, sizeof(double));
    carve(d, p->params, &p->w);
    carve(d, p->grads, &p->g);
    for (size_t i = 0; i < p->n_params; i++) p->params[i] = 0.6 * urand();
    const int64_t nS = d->Ts * d->B * d->Ne, nZ = d->Tt * d->B * d->V;
    p->S = malloc((size_t)nS * sizeof(double));
    p->dS = malloc((size_t)nS * sizeof(double));
    for (int64_t i = 0; i < nS; i++) p->S[i] = urand();
    p->R = malloc((size_t)nZ * sizeof(double));
    p->logits = malloc((size_t)nZ * sizeof(double));
    p->src_lens = malloc((size_t)d->B * sizeof(int64_t));
    p->tgt_lens = malloc((size_t)d->B * sizeof(int64_t));
    p->tgt_in = malloc((size_t)(d->Tt * d->B) * sizeof(int32_t));
    const int64_t sl[3] = {5, 2, 1}, tl[3] = {4, 1, 3};
    for (int64_t b = 0; b < d->B; b++) p->src_lens[b] = sl[b], p->tgt_lens[b] = tl[b];
    for (int64_t i = 0; i < d->Tt * d->B; i++)
        p->tgt_in[i] = (int32_t)((urand() + 1) * 0.5 * (double)d->V) % (int32_t)d->V;
    for (int64_t t = 0; t < d->Tt; t++) /* the loss reads valid steps only */
        for (int64_t b = 0; b < d->B; b++)
            for (int64_t v = 0; v < d->V; v++)
                p->R[(t * d->B + b) * d->V + v] = t < tl[b] ? urand() : 0.0;
    p->ws = malloc(s2s_plan(d).total * sizeof(double));
}

static void teardown(problem *p) {
    free(p->params), free(p->grads), free(p->S), free(p->dS), free(p->R), free(p->logits);
    free(p->src_lens), free(p->tgt_lens), free(p->tgt_in), free(p->ws);
}

static void gradcheck(int dot, int64_t Ld, int use_blas) {
    problem p;
    setup(&p, dot, Ld, use_blas);
    loss(&p);
    clstm_s2s_backward_f64(&p.d, &p.w, &p.g, p.S, p.src_lens, p.tgt_in, p.R, p.dS, p.ws);
    const double h = 1e-6;
    double worst = 0;
    size_t at = 0;
    for (size_t i = 0; i < p.n_params; i++) {
        const double keep = p.params[i];
        p.params[i] = keep + h;
        const double up = loss(&p);
        p.params[i] = keep - h;
        const double down = loss(&p);
        p.params[i] = keep;
        const double fd = (up - down) / (2 * h), err = fabs(fd - p.grads[i]) / (1e-3 + fabs(fd));
        if (err > worst) worst = err, at = i;
    }
    CHECK(worst < 1e-5, "dot %d L %lld blas %d: parameter %zu: relative error %.3g", dot,
          (long long)Ld, use_blas, at, worst);
    worst = 0;
    const int64_t nS = p.d.Ts * p.d.B * p.d.Ne;
    for (int64_t i = 0; i < nS; i++) {
        const double keep = p.S[i];
        p.S[i] = keep + h;
        const double up = loss(&p);
        p.S[i] = keep - h;
        const double down = loss(&p);
        p.S[i] = keep;
        const double fd = (up - down) / (2 * h), err = fabs(fd - p.dS[i]) / (1e-3 + fabs(fd));
        if (err > worst) worst = err, at = (size_t)i;
    }
    CHECK(worst < 1e-5, "dot %d L %lld blas %d: dS[%zu]: relative error %.3g", dot,
          (long long)Ld, use_blas, at, worst);
    /* padding: source steps past a length never matter; logits past a target's are 0 */
    loss(&p);
    double *before = malloc((size_t)(p.d.Tt * p.d.B * p.d.V) * sizeof(double));
    memcpy(before, p.logits, (size_t)(p.d.Tt * p.d.B * p.d.V) * sizeof(double));
    for (int64_t j = 0; j < p.d.Ts; j++)
        for (int64_t b = 0; b < p.d.B; b++)
            if (j >= p.src_lens[b])
                for (int64_t q = 0; q < p.d.Ne; q++) p.S[(j * p.d.B + b) * p.d.Ne + q] = 1e3;
    loss(&p);
    CHECK(memcmp(before, p.logits, (size_t)(p.d.Tt * p.d.B * p.d.V) * sizeof(double)) == 0,
          "source padding changed the logits");
    int zero = 1;
    for (int64_t t = 0; t < p.d.Tt; t++)
        for (int64_t b = 0; b < p.d.B; b++)
            for (int64_t v = 0; t >= p.tgt_lens[b] && v < p.d.V; v++)
                zero &= p.logits[(t * p.d.B + b) * p.d.V + v] == 0.0;
    CHECK(zero, "logits past a target's length are 0");
    free(before);
    teardown(&p);
}

int main(void) {
    for (int dot = 0; dot <= 1; dot++)
        for (int64_t L = 1; L <= 2; L++)
            for (int blas = 0; blas <= clstm_has_blas(); blas++) gradcheck(dot, L, blas);
    return ctest_finish();
}
