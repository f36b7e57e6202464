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
    d->A = 4, d->V = 7, d->dot = dot, d->use_blas = use_blas, d->train = 1;
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

/* The largest error of grad (n) against central differences of f over x,
 * relative to max(|fd|, 1e-3), and where. */
static double worst_fd(double (*f)(void *), void *ctx, double *x, const double *grad, size_t n,
                       size_t *at) {
    const double h = 1e-6;
    double worst = 0;
    for (size_t i = 0; i < n; i++) {
        const double keep = x[i];
        x[i] = keep + h;
        const double up = f(ctx);
        x[i] = keep - h;
        const double down = f(ctx);
        x[i] = keep;
        const double fd = (up - down) / (2 * h), err = fabs(fd - grad[i]) / (1e-3 + fabs(fd));
        if (err > worst) worst = err, *at = i;
    }
    return worst;
}

static double problem_loss(void *p) { return loss(p); }

static void gradcheck(int dot, int64_t Ld, int use_blas) {
    problem p;
    setup(&p, dot, Ld, use_blas);
    loss(&p);
    clstm_s2s_backward_f64(&p.d, &p.w, &p.g, p.S, p.src_lens, p.tgt_in, p.R, p.dS, p.ws);
    size_t at = 0;
    double worst = worst_fd(problem_loss, &p, p.params, p.grads, p.n_params, &at);
    CHECK(worst < 1e-5, "dot %d L %lld blas %d: parameter %zu: relative error %.3g", dot,
          (long long)Ld, use_blas, at, worst);
    worst = worst_fd(problem_loss, &p, p.S, p.dS, (size_t)(p.d.Ts * p.d.B * p.d.Ne), &at);
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

/* ------------------------------------------------- through the public API */

static clstm_config s2s_config(int dot, int bidir) {
    clstm_config c = clstm_config_default();
    c.dtype = CLSTM_FLOAT64;
    c.encoding = CLSTM_ENCODING_EMBEDDING;
    c.vocab_size = 6, c.input_size = 3, c.hidden_size = 4, c.num_layers = 2;
    c.bidirectional = bidir;
    c.target_vocab = 7, c.target_embedding = 3, c.decoder_hidden = dot ? 4 * (1 + bidir) : 5;
    c.decoder_layers = 2, c.attention = dot ? CLSTM_ATTENTION_DOT : CLSTM_ATTENTION_GENERAL;
    c.attentional_size = 4;
    return c;
}

enum { TS = 4, TT = 3, NB = 2 };
static const int32_t SRC[TS * NB] = {1, 2, 3, 5, 4, 0, 2, 1};
static const int64_t SRC_LENS[NB] = {4, 2}, TGT_LENS[NB] = {3, 1};
static const int32_t TGT[TT * NB] = {0, 0, 4, 6, 5, 3};

static double api_loss(clstm_model *m, const double *R, double *z, void *ws, size_t bytes) {
    CHECK(clstm_seq2seq_forward(m, TS, TT, NB, SRC, SRC_LENS, TGT, TGT_LENS, z, 1, 0, ws,
                                bytes) == CLSTM_OK,
          "seq2seq forward");
    double s = 0;
    for (int i = 0; i < TT * NB * 7; i++) s += R[i] * z[i];
    return s;
}

typedef struct {
    clstm_model *m;
    const double *R;
    double *z;
    void *ws;
    size_t bytes;
} api_ctx;

static double api_ctx_loss(void *c) {
    api_ctx *a = c;
    return api_loss(a->m, a->R, a->z, a->ws, a->bytes);
}

/* bidir: 0 forward, 1 bidirectional, 2 a reverse-only encoder */
static void api_gradcheck(int dot, int bidir) {
    clstm_config c = s2s_config(dot, bidir == 1);
    c.reverse = bidir == 2;
    clstm_model *m = NULL;
    if (!CHECK(clstm_create(&c, 5, &m) == CLSTM_OK, "create dot %d bidir %d", dot, bidir))
        return;
    int64_t nt = 0;
    clstm_num_tensors(m, &nt);
    int names = 0;
    for (int64_t i = 0; i < nt; i++) {
        clstm_tensor_info info;
        clstm_tensor_info_get(m, i, &info);
        names += strcmp(info.name, "decoder.weight_ih_l1") == 0 ||
                 strcmp(info.name, "attention.combine.weight") == 0 ||
                 strcmp(info.name, "decoder.out.bias") == 0 ||
                 strcmp(info.name, "attention.weight") == 0;
    }
    CHECK(names == (dot ? 3 : 4), "decoder tensors named as torch's state_dict keys: %d", names);
    size_t bytes = 0;
    CHECK(clstm_seq2seq_workspace_size(m, TS, TT, NB, 1, &bytes) == CLSTM_OK, "ws size");
    void *ws = malloc(bytes);
    double R[TT * NB * 7], z[TT * NB * 7];
    for (int t = 0; t < TT; t++)
        for (int b = 0; b < NB; b++)
            for (int v = 0; v < 7; v++) R[(t * NB + b) * 7 + v] = t < TGT_LENS[b] ? urand() : 0;
    void *pv, *gv;
    size_t n;
    clstm_params(m, &pv, &n);
    clstm_grads(m, &gv, &n);
    double *p = pv, *g = gv;
    clstm_zero_grad(m);
    api_loss(m, R, z, ws, bytes);
    CHECK(clstm_seq2seq_backward(m, TS, TT, NB, R, ws, bytes) == CLSTM_OK, "backward");
    size_t at = 0;
    api_ctx ctx = {m, R, z, ws, bytes};
    const double worst = worst_fd(api_ctx_loss, &ctx, p, g, n, &at);
    CHECK(worst < 1e-5, "dot %d bidir %d: every parameter, encoder's too: element %zu: %.3g",
          dot, bidir, at, worst);
    /* a backward without its forward, or another size, is STATE */
    api_loss(m, R, z, ws, bytes);
    CHECK(clstm_seq2seq_backward(m, TS, TT, NB, R, ws, bytes) == CLSTM_OK &&
              clstm_seq2seq_backward(m, TS, TT, NB, R, ws, bytes) == CLSTM_ERR_STATE,
          "a second backward of one forward, as the pipeline's");
    api_loss(m, R, z, ws, bytes);
    void *small = malloc(bytes);
    CHECK(clstm_seq2seq_forward(m, TS, TT, NB, SRC, SRC_LENS, TGT, TGT_LENS, z, 0, 0, small,
                                bytes) == CLSTM_OK &&
              clstm_seq2seq_backward(m, TS, TT, NB, R, small, bytes) == CLSTM_ERR_STATE,
          "backward after an inference forward");
    free(small);
    /* bad ids and sizes */
    int32_t bad[TT * NB];
    memcpy(bad, TGT, sizeof bad);
    bad[0] = 7;
    CHECK(clstm_seq2seq_forward(m, TS, TT, NB, SRC, SRC_LENS, bad, TGT_LENS, z, 1, 0, ws,
                                bytes) == CLSTM_ERR_ARG,
          "a target id past Vt");
    bad[0] = 0, bad[5] = -1; /* past the second target's length: ignored */
    CHECK(clstm_seq2seq_forward(m, TS, TT, NB, SRC, SRC_LENS, bad, TGT_LENS, z, 1, 0, ws,
                                bytes) == CLSTM_OK,
          "ids past a length are ignored");
    CHECK(clstm_seq2seq_forward(m, TS, TT, NB, SRC, SRC_LENS, TGT, TGT_LENS, z, 1, 0, ws,
                                bytes - 1) == CLSTM_ERR_WORKSPACE,
          "a small workspace");
    const int64_t long_lens[NB] = {TT + 1, 1};
    CHECK(clstm_seq2seq_forward(m, TS, TT, NB, SRC, SRC_LENS, TGT, long_lens, z, 1, 0, ws,
                                bytes) != CLSTM_OK,
          "a target length past Tt");
    /* the file keeps the decoder */
    size_t file_bytes = 0;
    CHECK(clstm_save_buffer_size(m, &file_bytes) == CLSTM_OK, "file size");
    unsigned char *file = malloc(file_bytes);
    CHECK(clstm_save_buffer(m, file, file_bytes, &file_bytes) == CLSTM_OK, "save");
    clstm_model *back = NULL;
    if (CHECK(clstm_load_buffer(file, file_bytes, &back) == CLSTM_OK, "load")) {
        clstm_config bc = clstm_config_default();
        clstm_get_config(back, &bc);
        CHECK(bc.target_vocab == 7 && bc.decoder_layers == 2 && bc.attention == c.attention &&
                  bc.attentional_size == 4 && bc.decoder_hidden == c.decoder_hidden,
              "the decoder's config comes back");
        void *bp;
        size_t bn;
        clstm_params(back, &bp, &bn);
        CHECK(bn == n && memcmp(bp, p, n * sizeof(double)) == 0, "the parameters come back");
        clstm_free(back);
    }
    free(file);
    clstm_model *q = NULL;
    CHECK(clstm_quantize(m, &q) == CLSTM_ERR_UNSUPPORTED && !q, "no int8 decoder");
    free(ws);
    clstm_free(m);
}

/* Width 1 is greedy decoding: each token the argmax of the last step of a
 * teacher-forcing forward over the tokens so far (an independent path);
 * wider beams give well-formed hypotheses, best first. */
static void decoding(int dot) {
    clstm_config c = s2s_config(dot, 1);
    clstm_model *m = NULL;
    if (!CHECK(clstm_create(&c, 11, &m) == CLSTM_OK, "create")) return;
    void *pv;
    size_t n;
    clstm_params(m, &pv, &n);
    for (size_t i = 0; i < n; i++) ((double *)pv)[i] *= 3.0; /* sharper distributions */
    enum { ML = 6, K = 3 };
    int32_t tok[NB * K * ML];
    int64_t len[NB * K];
    double score[NB * K];
    size_t bytes = 0;
    CHECK(clstm_seq2seq_decode_workspace_size(m, TS, NB, K, ML, &bytes) == CLSTM_OK, "size");
    void *ws = malloc(bytes);
    CHECK(clstm_seq2seq_beam_search(m, TS, NB, SRC, SRC_LENS, 1, ML, 1.0, 1, tok, len, score, ws,
                                    bytes) == CLSTM_OK,
          "greedy");
    for (int b = 0; b < NB; b++) { /* the same, by teacher forcing one step longer each time */
        int32_t prefix[ML + 1] = {0};
        int64_t n_out = 0;
        for (int64_t t = 1; t <= ML; t++) {
            double z[(ML + 1) * 7];
            size_t fb = 0;
            clstm_seq2seq_workspace_size(m, TS, t, 1, 0, &fb);
            void *fw = malloc(fb);
            int32_t one_src[TS];
            for (int j = 0; j < TS; j++) one_src[j] = SRC[j * NB + b];
            const int64_t sl = SRC_LENS[b], tl = t;
            CHECK(clstm_seq2seq_forward(m, TS, t, 1, one_src, &sl, prefix, &tl, z, 0, 0, fw,
                                        fb) == CLSTM_OK,
                  "forward");
            free(fw);
            int best = 0;
            for (int v = 1; v < 7; v++)
                if (z[(t - 1) * 7 + v] > z[(t - 1) * 7 + best]) best = v;
            if (best == 1) break; /* </s> */
            prefix[t] = best;
            n_out = t;
        }
        int same = len[b] == n_out;
        for (int64_t i = 0; same && i < n_out; i++) same = tok[b * ML + i] == prefix[i + 1];
        CHECK(same, "dot %d source %d: width 1 is greedy (%lld tokens, expected %lld)", dot, b,
              (long long)len[b], (long long)n_out);
    }
    CHECK(clstm_seq2seq_beam_search(m, TS, NB, SRC, SRC_LENS, K, ML, 0.7, K, tok, len, score, ws,
                                    bytes) == CLSTM_OK,
          "beam");
    for (int b = 0; b < NB; b++)
        for (int k = 0; k < K; k++) {
            const int64_t L = len[b * K + k];
            int ok = L >= 0 && L <= ML && (k == 0 || score[b * K + k] <= score[b * K + k - 1]);
            for (int64_t i = 0; ok && i < L; i++) {
                const int32_t v = tok[(b * K + k) * ML + i];
                ok = v >= 0 && v < 7 && v != 1;
            }
            CHECK(ok, "dot %d source %d hypothesis %d: well formed, best first", dot, b, k);
        }
    CHECK(clstm_seq2seq_beam_search(m, TS, NB, SRC, SRC_LENS, K, ML, 0.7, K + 1, tok, len, score,
                                    ws, bytes) == CLSTM_ERR_ARG,
          "nbest > width");
    free(ws);
    clstm_free(m);
}

static void configs_refused(void) {
    clstm_config c = s2s_config(0, 1);
    clstm_model *m = NULL;
    c.output_size = 3; /* a head on an encoder-decoder */
    CHECK(clstm_create(&c, 1, &m) == CLSTM_ERR_SIZE && !m, "a head");
    c = s2s_config(1, 1);
    c.decoder_hidden = 5; /* dot needs Hd = N*R */
    CHECK(clstm_create(&c, 1, &m) == CLSTM_ERR_SIZE && !m, "dot with Hd != N*R");
    c = s2s_config(0, 1);
    c.decoder_layers = CLSTM_MAX_DECODER_LAYERS + 1;
    CHECK(clstm_create(&c, 1, &m) == CLSTM_ERR_SIZE && !m, "too many decoder layers");
    c = s2s_config(0, 1);
    c.clip = 1.0; /* the decoder's gates are not clipped: refused, not ignored */
    CHECK(clstm_create(&c, 1, &m) == CLSTM_ERR_SIZE && !m, "clip with a decoder");
    c = s2s_config(0, 1);
    c.decoder_hidden = INT64_MAX; /* no overflow before the checks */
    CHECK(clstm_create(&c, 1, &m) == CLSTM_ERR_OVERFLOW && !m, "a huge decoder");
    c = clstm_config_default();
    c.decoder_hidden = 4; /* decoder fields without a decoder */
    CHECK(clstm_create(&c, 1, &m) == CLSTM_ERR_SIZE && !m, "stray decoder fields");
    c = clstm_config_default();
    CHECK(clstm_create(&c, 1, &m) == CLSTM_OK, "plain model");
    size_t bytes;
    CHECK(clstm_seq2seq_workspace_size(m, 2, 2, 1, 1, &bytes) == CLSTM_ERR_ARG,
          "not an encoder-decoder");
    clstm_free(m);
}

int main(void) {
    for (int dot = 0; dot <= 1; dot++)
        for (int64_t L = 1; L <= 2; L++)
            for (int blas = 0; blas <= clstm_has_blas(); blas++) gradcheck(dot, L, blas);
    for (int dot = 0; dot <= 1; dot++)
        for (int bidir = 0; bidir <= 2; bidir++) api_gradcheck(dot, bidir);
    for (int dot = 0; dot <= 1; dot++) decoding(dot);
    configs_refused();
    return ctest_finish();
}
