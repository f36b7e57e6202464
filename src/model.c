/* Model life cycle: config, create/free, the parameter layout, init. */
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "internal.h"

clstm_config clstm_config_default(void) {
    clstm_config c;
    memset(&c, 0, sizeof c);
    c.struct_size = sizeof c;
    c.input_size = 1;
    c.hidden_size = 1;
    c.num_layers = 1;
    c.dtype = CLSTM_FLOAT32;
    c.backend = CLSTM_BACKEND_DEFAULT;
    return c;
}

int64_t clstm_dirs(const clstm_config *c) { return c->bidirectional ? 2 : 1; }
int64_t clstm_rsize(const clstm_config *c) {
    return c->proj_size > 0 ? c->proj_size : c->hidden_size;
}
int64_t clstm_unit_input(const clstm_config *c, int64_t k) {
    return k == 0 ? c->input_size : clstm_dirs(c) * clstm_rsize(c);
}

/* Unit of layer k: weight_ih (4H, D_k), weight_hh (4H, R), bias_ih (4H),
 * bias_hh (4H), weight_hr (P, H) when P > 0. Sizes were checked at create. */
size_t clstm_unit_elems(const clstm_config *c, int64_t k) {
    size_t H = (size_t)c->hidden_size, P = (size_t)c->proj_size;
    return 4 * H * ((size_t)clstm_unit_input(c, k) + (size_t)clstm_rsize(c) + 2) + P * H +
           (c->peepholes ? 3 * H : 0);
}

size_t clstm_unit_offset(const clstm_config *c, int64_t k, int64_t d) {
    size_t N = (size_t)clstm_dirs(c), s0 = clstm_unit_elems(c, 0);
    if (k == 0) return (size_t)d * s0;
    return N * s0 + ((size_t)(k - 1) * N + (size_t)d) * clstm_unit_elems(c, 1);
}

/* Size of both blocks in elements, with every intermediate checked. Sizes
 * are also capped so that every gemm dimension fits the BLAS integer. */
clstm_status clstm_param_count(const clstm_config *c, size_t *n) {
    return clstm_param_count_ex(c, n, NULL);
}

clstm_status clstm_param_count_ex(const clstm_config *c, size_t *n, size_t *n_lstm) {
    const int64_t lim = clstm_blas_dim_max() / 4;
    if (c->input_size < 1 || c->hidden_size < 1 || c->num_layers < 1) return CLSTM_ERR_SIZE;
    if (c->proj_size < 0 || (c->proj_size > 0 && c->proj_size >= c->hidden_size))
        return CLSTM_ERR_SIZE;
    if (c->hidden_size > lim || c->input_size > lim) return CLSTM_ERR_OVERFLOW;
    /* unit_elems in checked arithmetic: 4H (D_k + R + 2) + P H */
    size_t H4 = 4 * (size_t)c->hidden_size, N = (size_t)clstm_dirs(c);
    size_t R = (size_t)clstm_rsize(c), PH;
    size_t cols0, cols1, u0, u1, l0, l1, rest, total;
    if (clstm_mul((size_t)c->proj_size, (size_t)c->hidden_size, &PH) ||
        clstm_add(PH, c->peepholes ? 3 * (size_t)c->hidden_size : 0, &PH) ||
        clstm_add((size_t)c->input_size, R + 2, &cols0) || clstm_mul(H4, cols0, &u0) ||
        clstm_add(u0, PH, &u0) || clstm_mul(N, R, &cols1) || clstm_add(cols1, R + 2, &cols1) ||
        clstm_mul(H4, cols1, &u1) || clstm_add(u1, PH, &u1) || clstm_mul(N, u0, &l0) ||
        clstm_mul(N, u1, &l1) || clstm_mul(l1, (size_t)(c->num_layers - 1), &rest) ||
        clstm_add(l0, rest, &total))
        return CLSTM_ERR_OVERFLOW;
    /* the whole model: embedding.weight (V, D), head.weight (O, N*R), head.bias (O) */
    const int tokens = c->encoding != CLSTM_ENCODING_NONE;
    if (tokens ? c->vocab_size < 1 : c->vocab_size != 0) return CLSTM_ERR_SIZE;
    if (c->encoding == CLSTM_ENCODING_ONEHOT && c->vocab_size != c->input_size)
        return CLSTM_ERR_SIZE;
    if (c->output_size < 0) return CLSTM_ERR_SIZE;
    if (c->vocab_size > lim || c->output_size > lim) return CLSTM_ERR_OVERFLOW;
    size_t lstm = total, emb = 0, head = 0;
    if (c->encoding == CLSTM_ENCODING_EMBEDDING &&
        clstm_mul((size_t)c->vocab_size, (size_t)c->input_size, &emb))
        return CLSTM_ERR_OVERFLOW;
    if (clstm_mul((size_t)c->output_size, N * R + 1, &head) || clstm_add(total, emb, &total) ||
        clstm_add(total, head, &total))
        return CLSTM_ERR_OVERFLOW;
    size_t bytes;
    if (clstm_mul(total, sizeof(double), &bytes) || bytes > (SIZE_MAX >> 2))
        return CLSTM_ERR_OVERFLOW;
    *n = total;
    if (n_lstm) *n_lstm = lstm;
    return CLSTM_OK;
}

clstm_status clstm_config_read(const clstm_config *in, clstm_config *out) {
    const size_t v010 = offsetof(clstm_config, encoding); /* clstm 0.1.0's size */
    if (in->struct_size != v010 && in->struct_size < sizeof *out) return CLSTM_ERR_ARG;
    *out = clstm_config_default();
    memcpy(out, in, in->struct_size < sizeof *out ? in->struct_size : sizeof *out);
    out->struct_size = sizeof *out;
    return CLSTM_OK;
}

static void *alloc_block(size_t bytes) {
    size_t rounded = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded);
    if (p) memset(p, 0, rounded);
    return p;
}

static atomic_uint_fast64_t g_next_id = 1; /* ties workspaces to models */

clstm_status clstm_create(const clstm_config *cfg, uint64_t seed, clstm_model **out) {
    if (out) *out = NULL;
    if (!cfg || !out) return CLSTM_ERR_NULL;
    clstm_config own;
    if (clstm_config_read(cfg, &own) != CLSTM_OK) return CLSTM_ERR_ARG;
    cfg = &own;
    if (cfg->dtype != CLSTM_FLOAT32 && cfg->dtype != CLSTM_FLOAT64) return CLSTM_ERR_DTYPE;
    if (cfg->bidirectional != 0 && cfg->bidirectional != 1) return CLSTM_ERR_ARG;
    if (!(cfg->dropout >= 0.0 && cfg->dropout < 1.0)) return CLSTM_ERR_ARG; /* NaN too */
    if ((cfg->peepholes != 0 && cfg->peepholes != 1) ||
        (cfg->input_forget != 0 && cfg->input_forget != 1) || !(cfg->clip >= 0.0))
        return CLSTM_ERR_ARG;
    if (cfg->encoding != CLSTM_ENCODING_NONE && cfg->encoding != CLSTM_ENCODING_ONEHOT &&
        cfg->encoding != CLSTM_ENCODING_EMBEDDING)
        return CLSTM_ERR_ARG;
    if ((cfg->softmax != 0 && cfg->softmax != 1) || (cfg->softmax && cfg->output_size == 0))
        return CLSTM_ERR_ARG;
    int use_blas;
    switch (cfg->backend) {
    case CLSTM_BACKEND_DEFAULT: use_blas = clstm_has_blas(); break;
    case CLSTM_BACKEND_BLAS:
        if (!clstm_has_blas()) return CLSTM_ERR_UNSUPPORTED;
        use_blas = 1;
        break;
    case CLSTM_BACKEND_NAIVE: use_blas = 0; break;
    default: return CLSTM_ERR_ARG;
    }
    size_t n, n_lstm;
    clstm_status st = clstm_param_count_ex(cfg, &n, &n_lstm);
    if (st != CLSTM_OK) return st;

    clstm_model *m = calloc(1, sizeof *m);
    if (!m) return CLSTM_ERR_NOMEM;
    m->cfg = *cfg;
    m->cfg.struct_size = sizeof(clstm_config);
    m->use_blas = use_blas;
    m->id = atomic_fetch_add(&g_next_id, 1);
    m->n_params = n;
    m->n_lstm = n_lstm;
    m->emb_off = n_lstm;
    m->head_off = n_lstm + (cfg->encoding == CLSTM_ENCODING_EMBEDDING
                                ? (size_t)(cfg->vocab_size * cfg->input_size)
                                : 0);
    m->elem = cfg->dtype == CLSTM_FLOAT64 ? sizeof(double) : sizeof(float);
    m->params = alloc_block(n * m->elem);
    m->grads = alloc_block(n * m->elem);
    if (!m->params || !m->grads) {
        clstm_free(m);
        return CLSTM_ERR_NOMEM;
    }
    clstm_init_params(m, seed);
    *out = m;
    return CLSTM_OK;
}

void clstm_free(clstm_model *m) {
    if (!m) return;
    free(m->params);
    free(m->grads);
    clstm_vocab_clear(m);
    clstm_metadata_clear(m);
    free(m);
}

clstm_status clstm_get_config(const clstm_model *m, clstm_config *out) {
    if (!m || !out) return CLSTM_ERR_NULL;
    const size_t v010 = offsetof(clstm_config, encoding), want = out->struct_size;
    if (want == v010) { /* a caller built with clstm 0.1.0's header */
        memcpy(out, &m->cfg, want);
        out->struct_size = want;
    } else {
        *out = m->cfg;
    }
    return CLSTM_OK;
}

/* splitmix64: a small, well-mixed generator whose state is the caller's. */
static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static double uniform01(uint64_t *s) { return (double)(splitmix64(s) >> 11) * 0x1.0p-53; }

/* A standard normal draw (Box-Muller, one value per two uniforms). */
static double normal01(uint64_t *s) {
    const double u1 = 1.0 - uniform01(s), u2 = uniform01(s); /* u1 in (0, 1] */
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

clstm_status clstm_init_params(clstm_model *m, uint64_t seed) {
    if (!m) return CLSTM_ERR_NULL;
    const double k = 1.0 / sqrt((double)m->cfg.hidden_size);
    const double kh = 1.0 / sqrt((double)(clstm_dirs(&m->cfg) * clstm_rsize(&m->cfg)));
    uint64_t s = seed;
    for (size_t i = 0; i < m->n_params; i++) {
        double v;
        if (i < m->n_lstm) v = (2.0 * uniform01(&s) - 1.0) * k;
        else if (i < m->head_off) v = normal01(&s);
        else v = (2.0 * uniform01(&s) - 1.0) * kh;
        if (m->cfg.dtype == CLSTM_FLOAT64)
            ((double *)m->params)[i] = v;
        else
            ((float *)m->params)[i] = (float)v;
    }
    return CLSTM_OK;
}

clstm_status clstm_params(clstm_model *m, void **data, size_t *n) {
    if (!m || !data || !n) return CLSTM_ERR_NULL;
    *data = m->params;
    *n = m->n_params;
    return CLSTM_OK;
}

clstm_status clstm_grads(clstm_model *m, void **data, size_t *n) {
    if (!m || !data || !n) return CLSTM_ERR_NULL;
    *data = m->grads;
    *n = m->n_params;
    return CLSTM_OK;
}

clstm_status clstm_zero_grad(clstm_model *m) {
    if (!m) return CLSTM_ERR_NULL;
    memset(m->grads, 0, m->n_params * m->elem);
    return CLSTM_OK;
}

/* Tensors per unit: 4, +1 with the projection weight_hr, +1 with peepholes. */
static int64_t unit_tensors(const clstm_config *c) {
    return 4 + (c->proj_size > 0) + (c->peepholes != 0);
}

static int64_t lstm_tensors(const clstm_config *c) {
    return unit_tensors(c) * clstm_dirs(c) * c->num_layers;
}

/* embedding.weight, head.weight, head.bias: the tensors after the LSTM's. */
static clstm_status extra_tensor_info(const clstm_model *m, int64_t index,
                                      clstm_tensor_info *out) {
    const clstm_config *c = &m->cfg;
    const int emb = c->encoding == CLSTM_ENCODING_EMBEDDING;
    const int64_t O = c->output_size, NR = clstm_dirs(c) * clstm_rsize(c);
    if (index < 0 || index > 2) return CLSTM_ERR_ARG;
    int which = (int)index + !emb; /* 0 embedding, 1 head.weight, 2 head.bias */
    if (which > (O > 0 ? 2 : 0) || (which == 0 && !emb)) return CLSTM_ERR_ARG;
    memset(out, 0, sizeof *out);
    static const char *const names[3] = {"embedding.weight", "head.weight", "head.bias"};
    snprintf(out->name, sizeof out->name, "%s", names[which]);
    const int64_t rows[3] = {c->vocab_size, O, O}, cols[3] = {c->input_size, NR, 1};
    out->offset = which == 0 ? m->emb_off : m->head_off + (which == 2 ? (size_t)(O * NR) : 0);
    out->ndim = which == 2 ? 1 : 2;
    out->shape[0] = rows[which];
    out->shape[1] = cols[which];
    return CLSTM_OK;
}

clstm_status clstm_num_tensors(const clstm_model *m, int64_t *n) {
    if (!m || !n) return CLSTM_ERR_NULL;
    *n = lstm_tensors(&m->cfg) + (m->cfg.encoding == CLSTM_ENCODING_EMBEDDING) +
         2 * (m->cfg.output_size > 0);
    return CLSTM_OK;
}

clstm_status clstm_tensor_info_get(const clstm_model *m, int64_t index,
                                   clstm_tensor_info *out) {
    if (!m || !out) return CLSTM_ERR_NULL;
    const clstm_config *c = &m->cfg;
    const int64_t per = unit_tensors(c), N = clstm_dirs(c);
    if (index < 0) return CLSTM_ERR_ARG;
    if (index / per >= N * c->num_layers) return extra_tensor_info(m, index - lstm_tensors(c), out);
    static const char *const kind[6] = {"weight_ih", "weight_hh", "bias_ih",
                                        "bias_hh",   "weight_hr", "peephole"};
    const int64_t u = index / per, k = u / N, d = u % N;
    int64_t which = index % per;
    if (which == 4 && c->proj_size == 0) which = 5; /* peephole without weight_hr */
    const int64_t H = c->hidden_size, H4 = 4 * H, din = clstm_unit_input(c, k);
    const int64_t R = clstm_rsize(c);
    /* rows x cols of each tensor, in block order */
    const int64_t rows[6] = {H4, H4, H4, H4, c->proj_size, 3 * H};
    const int64_t cols[6] = {din, R, 1, 1, H, 1};
    size_t off = clstm_unit_offset(c, k, d);
    for (int64_t i = 0; i < which; i++) off += (size_t)(rows[i] * cols[i]);
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s_l%lld%s", kind[which], (long long)k,
             d ? "_reverse" : "");
    out->offset = off;
    out->ndim = which == 2 || which == 3 || which == 5 ? 1 : 2;
    out->shape[0] = rows[which];
    out->shape[1] = cols[which];
    return CLSTM_OK;
}

clstm_status clstm_state_reset(const clstm_model *m, int64_t B, void *h, void *c, int64_t b) {
    if (!m || !h || !c) return CLSTM_ERR_NULL;
    if (B < 1) return CLSTM_ERR_SIZE;
    if (b < 0 || b >= B || m->cfg.bidirectional) return CLSTM_ERR_ARG;
    const size_t R = (size_t)clstm_rsize(&m->cfg), H = (size_t)m->cfg.hidden_size;
    if (!clstm_array_ok(m->cfg.num_layers, B, (int64_t)H, m->elem))
        return CLSTM_ERR_OVERFLOW; /* h and c cannot exist (H >= R) */
    for (int64_t l = 0; l < m->cfg.num_layers; l++) {
        size_t row = (size_t)(l * B + b);
        memset((char *)h + row * R * m->elem, 0, R * m->elem);
        memset((char *)c + row * H * m->elem, 0, H * m->elem);
    }
    return CLSTM_OK;
}
