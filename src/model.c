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
    c.gate_alpha = 0.2;
    c.gate_beta = 0.5;
    return c;
}

int64_t clstm_dirs(const clstm_config *c) { return c->bidirectional ? 2 : 1; }
int64_t clstm_rsize(const clstm_config *c) {
    return c->proj_size > 0 ? c->proj_size : c->hidden_size;
}
int64_t clstm_unit_input(const clstm_config *c, int64_t k) {
    return k == 0 ? c->input_size : clstm_dirs(c) * clstm_rsize(c);
}

/* Each kind's name and rank, in block order (clstm_tensor_kind). */
static const struct {
    const char *name;
    int ndim;
} kinds[CLSTM_T_KINDS] = {{"weight_ih", 2},        {"weight_hh", 2},   {"bias_ih", 1},
                          {"bias_hh", 1},          {"weight_hr", 2},   {"peephole", 1},
                          {"embedding.weight", 2}, {"head.weight", 2}, {"head.bias", 1},
                          {"decoder.weight_ih", 2}, {"decoder.weight_hh", 2},
                          {"decoder.bias_ih", 1}, {"decoder.bias_hh", 1},
                          {"decoder.embedding.weight", 2}, {"attention.weight", 2},
                          {"attention.combine.weight", 2}, {"decoder.out.weight", 2},
                          {"decoder.out.bias", 1}};

/* rows x cols of kind j (in layer k for a unit's); rows 0: c has none. Its
 * sizes were checked against lim, so 4H and N*R fit int64. */
static void kind_shape(const clstm_config *c, clstm_tensor_kind j, int64_t k, int64_t s[2]) {
    const int64_t H = c->hidden_size, H4 = 4 * H, R = clstm_rsize(c), O = c->output_size;
    const int64_t V = c->encoding == CLSTM_ENCODING_EMBEDDING ? c->vocab_size : 0;
    /* the decoder's (all rows 0 without one) */
    const int64_t Vt = c->target_vocab, Hd = Vt ? c->decoder_hidden : 0, A = c->attentional_size;
    const int64_t Ne = clstm_dirs(c) * R;
    const int64_t shapes[CLSTM_T_KINDS][2] = {
        {H4, j == CLSTM_T_WEIGHT_IH ? clstm_unit_input(c, k) : 0},
        {H4, R},
        {H4, 1},
        {H4, 1},
        {c->proj_size, H},
        {c->peepholes ? 3 * H : 0, 1},
        {V, c->input_size},
        {O, clstm_dirs(c) * R},
        {O, 1},
        {4 * Hd, k == 0 ? c->target_embedding + A : Hd},
        {4 * Hd, Hd},
        {4 * Hd, 1},
        {4 * Hd, 1},
        {Vt, c->target_embedding},
        {c->attention == CLSTM_ATTENTION_GENERAL ? Hd : 0, Ne},
        {Vt ? A : 0, Ne + Hd},
        {Vt, A},
        {Vt, 1}};
    s[0] = shapes[j][0];
    s[1] = shapes[j][1];
}

/* Add the elements of kinds [j0, j1) (in layer k) to *total and their count
 * to *count; 1 on overflow. */
static int add_kinds(const clstm_config *c, int j0, int j1, int64_t k, size_t *total,
                     int64_t *count) {
    for (int j = j0; j < j1; j++) {
        int64_t s[2];
        size_t e;
        kind_shape(c, (clstm_tensor_kind)j, k, s);
        if (s[0] == 0) continue;
        if (clstm_mul((size_t)s[0], (size_t)s[1], &e) || clstm_add(*total, e, total)) return 1;
        ++*count;
    }
    return 0;
}

/* The one derivation of the block's layout. Checks c's sizes (SIZE;
 * OVERFLOW, also where a gemm dimension would not fit the BLAS integer),
 * counts its tensors and elements, and when t != NULL writes the n_tensors
 * entries of its table. */
static clstm_status tensor_table(const clstm_config *c, clstm_tensor *t, int64_t *n_tensors,
                                 int64_t *per_unit, size_t *n_elems) {
    const int64_t lim = clstm_blas_dim_max() / 4;
    if (c->input_size < 1 || c->hidden_size < 1 || c->num_layers < 1) return CLSTM_ERR_SIZE;
    if (c->proj_size < 0 || (c->proj_size > 0 && c->proj_size >= c->hidden_size))
        return CLSTM_ERR_SIZE;
    if (c->hidden_size > lim || c->input_size > lim) return CLSTM_ERR_OVERFLOW;
    /* the decoder: all or nothing, checked before any shape is computed;
     * clip applies to the encoder only, so it is refused */
    if (c->target_vocab) {
        if (c->target_vocab < 4 || c->encoding != CLSTM_ENCODING_EMBEDDING ||
            c->output_size != 0 || c->target_embedding < 1 || c->decoder_hidden < 1 ||
            c->decoder_layers < 1 || c->decoder_layers > CLSTM_MAX_DECODER_LAYERS ||
            c->attentional_size < 1 || c->clip > 0 ||
            (c->attention != CLSTM_ATTENTION_GENERAL && c->attention != CLSTM_ATTENTION_DOT) ||
            (c->attention == CLSTM_ATTENTION_DOT &&
             c->decoder_hidden != clstm_dirs(c) * clstm_rsize(c)))
            return CLSTM_ERR_SIZE;
        if (c->target_vocab > lim || c->target_embedding > lim || c->decoder_hidden > lim ||
            c->attentional_size > lim ||
            c->target_embedding + c->attentional_size > lim ||
            clstm_dirs(c) * clstm_rsize(c) + c->decoder_hidden > lim)
            return CLSTM_ERR_OVERFLOW;
    } else if (c->target_embedding || c->decoder_hidden || c->decoder_layers || c->attention ||
               c->attentional_size) {
        return CLSTM_ERR_SIZE;
    }
    const int64_t Ld = c->target_vocab ? c->decoder_layers : 0;
    /* the LSTM: N units of layer 0, then N (L - 1) units alike (D_k = N*R for k > 0) */
    const size_t N = (size_t)clstm_dirs(c), L = (size_t)c->num_layers;
    size_t u0 = 0, u1 = 0, l0, rest, total;
    int64_t per = 0, per1 = 0, extra = 0; /* per1 == per: layers differ in D_k only */
    if (add_kinds(c, CLSTM_T_WEIGHT_IH, CLSTM_T_EMBEDDING, 0, &u0, &per) ||
        add_kinds(c, CLSTM_T_WEIGHT_IH, CLSTM_T_EMBEDDING, 1, &u1, &per1) ||
        clstm_mul(N, u0, &l0) || clstm_mul(N, u1, &rest) || clstm_mul(rest, L - 1, &rest) ||
        clstm_add(l0, rest, &total))
        return CLSTM_ERR_OVERFLOW;
    /* the whole model: embedding.weight, head.weight, head.bias */
    const int tokens = c->encoding != CLSTM_ENCODING_NONE;
    if (tokens ? c->vocab_size < 1 : c->vocab_size != 0) return CLSTM_ERR_SIZE;
    if (c->encoding == CLSTM_ENCODING_ONEHOT && c->vocab_size != c->input_size)
        return CLSTM_ERR_SIZE;
    if (c->output_size < 0) return CLSTM_ERR_SIZE;
    if (c->vocab_size > lim || c->output_size > lim) return CLSTM_ERR_OVERFLOW;
    size_t bytes, nt;
    if (add_kinds(c, CLSTM_T_EMBEDDING, CLSTM_T_DEC_FIRST, -1, &total, &extra))
        return CLSTM_ERR_OVERFLOW;
    for (int64_t k = 0; k < Ld; k++)
        if (add_kinds(c, CLSTM_T_DEC_FIRST, CLSTM_T_DEC_OWN, k, &total, &extra))
            return CLSTM_ERR_OVERFLOW;
    if (add_kinds(c, CLSTM_T_DEC_OWN, CLSTM_T_KINDS, -1, &total, &extra) ||
        clstm_mul(total, sizeof(double), &bytes) || bytes > (SIZE_MAX >> 2) ||
        clstm_mul(N * L, (size_t)per, &nt) || clstm_add(nt, (size_t)extra, &nt) ||
        nt > INT64_MAX)
        return CLSTM_ERR_OVERFLOW;
    size_t i = 0, off = 0; /* the fill: running offsets in block order */
    /* u < N*L: the encoder's units; N*L: the model's own tensors; then with
     * a decoder, its layers and its own tensors */
    const size_t n_groups = N * L + 1 + (Ld ? (size_t)Ld + 1 : 0);
    for (size_t u = 0; t && u < n_groups; u++) {
        const int own = u == N * L, dec = u > N * L, dec_own = dec && u == n_groups - 1;
        const int64_t k = own || dec_own ? -1 : dec ? (int64_t)(u - N * L - 1) : (int64_t)(u / N);
        const int64_t d = own || dec_own ? -1 : dec ? 0 : (int64_t)(u % N);
        const int j0 = dec_own ? CLSTM_T_DEC_OWN : dec ? CLSTM_T_DEC_FIRST
                               : own ? CLSTM_T_EMBEDDING : 0;
        const int j1 = dec_own ? CLSTM_T_KINDS : dec ? CLSTM_T_DEC_OWN
                               : own ? CLSTM_T_DEC_FIRST : CLSTM_T_EMBEDDING;
        for (int j = j0; j < j1; j++) {
            clstm_tensor *e = &t[i];
            int64_t s[2];
            kind_shape(c, (clstm_tensor_kind)j, k, s);
            if (s[0] == 0) continue;
            memset(e, 0, sizeof *e);
            if (own || dec_own)
                snprintf(e->info.name, sizeof e->info.name, "%s", kinds[j].name);
            else if (dec)
                snprintf(e->info.name, sizeof e->info.name, "%s_l%lld", kinds[j].name,
                         (long long)k);
            else
                snprintf(e->info.name, sizeof e->info.name, "%s_l%lld%s", kinds[j].name,
                         (long long)k, d ? "_reverse" : "");
            e->info.offset = off;
            e->info.ndim = kinds[j].ndim;
            e->info.shape[0] = s[0];
            e->info.shape[1] = s[1];
            e->kind = (clstm_tensor_kind)j;
            e->layer = k;
            e->dir = d;
            off += (size_t)s[0] * (size_t)s[1];
            i++;
        }
    }
    *n_tensors = (int64_t)nt;
    if (per_unit) *per_unit = per;
    *n_elems = total;
    return CLSTM_OK;
}

clstm_status clstm_param_count(const clstm_config *c, size_t *n) {
    int64_t nt;
    return tensor_table(c, NULL, &nt, NULL, n);
}

/* The size of the config that ends before gate_activation (an int after
 * the int reverse): its offset rounded up to the struct's alignment, which
 * the older struct shares (it holds the same doubles and int64s). */
#define CFG_ALIGN _Alignof(clstm_config)
#define REVERSE_CFG_SIZE                                                                   \
    ((offsetof(clstm_config, gate_activation) + CFG_ALIGN - 1) / CFG_ALIGN * CFG_ALIGN)

/* The bytes of fields in a config whose struct_size `size` is an older
 * header's, or 0 for any other size. The one before the gate activation
 * ends in padding after its int reverse (bytes this struct gives to
 * gate_activation): only its fields are read or written. */
static size_t older_config_fields(size_t size) {
    if (size == offsetof(clstm_config, encoding) ||     /* clstm 0.1.0's */
        size == offsetof(clstm_config, target_vocab) || /* before the decoder */
        size == offsetof(clstm_config, reverse))        /* before reverse */
        return size;
    if (size == REVERSE_CFG_SIZE) /* before the gate activation */
        return offsetof(clstm_config, reverse) + sizeof(int);
    return 0;
}

clstm_status clstm_config_read(const clstm_config *in, clstm_config *out) {
    size_t fields = older_config_fields(in->struct_size);
    if (!fields) {
        if (in->struct_size < sizeof *out) return CLSTM_ERR_ARG;
        fields = sizeof *out;
    }
    *out = clstm_config_default();
    memcpy(out, in, fields);
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
    if ((cfg->reverse != 0 && cfg->reverse != 1) || (cfg->reverse && cfg->bidirectional))
        return CLSTM_ERR_ARG;
    if (!(cfg->dropout >= 0.0 && cfg->dropout < 1.0)) return CLSTM_ERR_ARG; /* NaN too */
    if (cfg->gate_activation == CLSTM_GATE_SIGMOID) {
        if (cfg->gate_alpha != 0.2 || cfg->gate_beta != 0.5) return CLSTM_ERR_ARG;
    } else if (cfg->gate_activation != CLSTM_GATE_HARD_SIGMOID ||
               !(isfinite(cfg->gate_alpha) && cfg->gate_alpha > 0) ||
               !isfinite(cfg->gate_beta) || cfg->target_vocab) {
        return CLSTM_ERR_ARG;
    }
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
    size_t n;
    int64_t nt;
    clstm_status st = tensor_table(cfg, NULL, &nt, NULL, &n);
    if (st != CLSTM_OK) return st;

    clstm_model *m = calloc(1, sizeof *m);
    if (!m) return CLSTM_ERR_NOMEM;
    m->cfg = *cfg;
    m->cfg.struct_size = sizeof(clstm_config);
    m->use_blas = use_blas;
    m->id = atomic_fetch_add(&g_next_id, 1);
    m->n_params = n;
    m->tensors = calloc((size_t)nt, sizeof *m->tensors);
    if (!m->tensors) {
        clstm_free(m);
        return CLSTM_ERR_NOMEM;
    }
    tensor_table(cfg, m->tensors, &m->n_tensors, &m->unit_tensors, &n); /* OK as above */
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
    clstm_q8_free(m);
    free(m->params);
    free(m->grads);
    free(m->tensors);
    clstm_vocab_clear(m);
    clstm_metadata_clear(m);
    free(m);
}

clstm_status clstm_get_config(const clstm_model *m, clstm_config *out) {
    if (!m || !out) return CLSTM_ERR_NULL;
    const size_t want = out->struct_size, fields = older_config_fields(want);
    if (fields) {
        /* a caller built with an older header: its fields only */
        memcpy(out, &m->cfg, fields);
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

/* The decoder's initial range, as torch's defaults: 1/sqrt(Hd) for its
 * LSTM, 1/sqrt(fan-in) for the attention's and the output's Linears. */
static double decoder_scale(const clstm_config *c, clstm_tensor_kind kind) {
    const double Ne = (double)(clstm_dirs(c) * clstm_rsize(c)), Hd = (double)c->decoder_hidden;
    switch (kind) {
    case CLSTM_T_ATT_WEIGHT: return 1.0 / sqrt(Ne);
    case CLSTM_T_ATT_COMBINE: return 1.0 / sqrt(Ne + Hd);
    case CLSTM_T_OUT_WEIGHT:
    case CLSTM_T_OUT_BIAS: return 1.0 / sqrt((double)c->attentional_size);
    default: return 1.0 / sqrt(Hd);
    }
}

clstm_status clstm_init_params(clstm_model *m, uint64_t seed) {
    if (!m) return CLSTM_ERR_NULL;
    if (m->quantized) return CLSTM_ERR_UNSUPPORTED; /* its int8 weights would stay */
    const double k = 1.0 / sqrt((double)m->cfg.hidden_size);
    const double kh = 1.0 / sqrt((double)(clstm_dirs(&m->cfg) * clstm_rsize(&m->cfg)));
    uint64_t s = seed;
    for (int64_t t = 0; t < m->n_tensors; t++) { /* tensors in block order: one stream */
        const clstm_tensor *e = &m->tensors[t];
        const size_t i0 = e->info.offset, i1 = i0 + (size_t)e->info.shape[0] * (size_t)e->info.shape[1];
        for (size_t i = i0; i < i1; i++) {
            double v;
            if (e->kind == CLSTM_T_EMBEDDING || e->kind == CLSTM_T_DEC_EMBEDDING)
                v = normal01(&s);
            else
                v = (2.0 * uniform01(&s) - 1.0) * (e->kind < CLSTM_T_DEC_FIRST
                                                       ? (e->layer >= 0 ? k : kh) /* LSTM, head */
                                                       : decoder_scale(&m->cfg, e->kind));
            if (m->cfg.dtype == CLSTM_FLOAT64)
                ((double *)m->params)[i] = v;
            else
                ((float *)m->params)[i] = (float)v;
        }
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
    *data = m->grads; /* NULL for a quantized model */
    *n = m->grads ? m->n_params : 0;
    return CLSTM_OK;
}

clstm_status clstm_zero_grad(clstm_model *m) {
    if (!m) return CLSTM_ERR_NULL;
    if (m->grads) memset(m->grads, 0, m->n_params * m->elem);
    return CLSTM_OK;
}

clstm_status clstm_num_tensors(const clstm_model *m, int64_t *n) {
    if (!m || !n) return CLSTM_ERR_NULL;
    *n = m->n_tensors;
    return CLSTM_OK;
}

clstm_status clstm_tensor_info_get(const clstm_model *m, int64_t index,
                                   clstm_tensor_info *out) {
    if (!m || !out) return CLSTM_ERR_NULL;
    if (index < 0 || index >= m->n_tensors) return CLSTM_ERR_ARG;
    *out = m->tensors[index].info;
    return CLSTM_OK;
}

clstm_unit_offsets clstm_unit_layout(const clstm_model *m, int64_t k, int64_t d) {
    clstm_unit_offsets u = {CLSTM_ABSENT, CLSTM_ABSENT, CLSTM_ABSENT,
                            CLSTM_ABSENT, CLSTM_ABSENT, CLSTM_ABSENT};
    size_t *const field[CLSTM_T_EMBEDDING] = {&u.w_ih, &u.w_hh, &u.b_ih,
                                              &u.b_hh, &u.w_hr, &u.peephole};
    const clstm_tensor *t = m->tensors + (k * clstm_dirs(&m->cfg) + d) * m->unit_tensors;
    for (int64_t j = 0; j < m->unit_tensors; j++) *field[t[j].kind] = t[j].info.offset;
    return u;
}

size_t clstm_tensor_offset(const clstm_model *m, clstm_tensor_kind kind) {
    /* the model's own come after the units: embedding, head, then any decoder's */
    const clstm_tensor *t = m->tensors;
    for (int64_t i = m->n_tensors - 1; i >= 0 && t[i].kind >= CLSTM_T_EMBEDDING; i--)
        if (t[i].kind == kind) return t[i].info.offset;
    return CLSTM_ABSENT;
}

clstm_status clstm_state_reset(const clstm_model *m, int64_t B, void *h, void *c, int64_t b) {
    if (!m || !h || !c) return CLSTM_ERR_NULL;
    if (B < 1) return CLSTM_ERR_SIZE;
    if (b < 0 || b >= B || m->cfg.bidirectional || m->cfg.reverse) return CLSTM_ERR_ARG;
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
