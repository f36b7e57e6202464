/* Quantized models (clstm.h: "Quantized models"): the int8 form of a
 * tensor, made from float weights (clstm_quantize) or read from a file
 * (safetensors.c), checked, packed for the products of q8.h, and its
 * dequantized copy written into the float32 parameter block. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "q8.h"

int clstm_kind_quantized(clstm_tensor_kind kind) {
    return kind == CLSTM_T_WEIGHT_IH || kind == CLSTM_T_WEIGHT_HH || kind == CLSTM_T_WEIGHT_HR ||
           kind == CLSTM_T_EMBEDDING || kind == CLSTM_T_HEAD_WEIGHT;
}

int clstm_is_quantized(const clstm_model *m) { return m && m->quantized; }

void clstm_q8_begin(clstm_model *m) {
    m->quantized = 1;
    free(m->grads);
    m->grads = NULL;
}

static void q8_tensor_free(clstm_q8_tensor *q) {
    if (!q) return;
    free(q->q);
    free(q->scale);
    free(q->packed);
    free(q->colsum);
    free(q);
}

void clstm_q8_free(clstm_model *m) {
    for (int64_t i = 0; m->tensors && i < m->n_tensors; i++) {
        q8_tensor_free(m->tensors[i].q8);
        m->tensors[i].q8 = NULL;
    }
}

/* Every weight in [-127, 127] (-128 would break the symmetric range the
 * kernels' sums are bounded by) and every scale finite and > 0. */
static int q8_valid(const int8_t *q, const float *scale, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; r++)
        if (!(scale[r] > 0.0f && scale[r] <= 3.402823466e38f)) return 0;
    for (int64_t i = 0; i < rows * cols; i++)
        if (q[i] == -128) return 0;
    return 1;
}

clstm_status clstm_q8_attach(clstm_model *m, int64_t index, const int8_t *q,
                             const float *scale) {
    clstm_tensor *t = &m->tensors[index];
    const int64_t rows = t->info.shape[0], cols = t->info.shape[1];
    if (cols > CLSTM_Q8_MAX_K) return CLSTM_ERR_UNSUPPORTED;
    if (!q8_valid(q, scale, rows, cols)) return CLSTM_ERR_ARG;
    clstm_q8_tensor *e = calloc(1, sizeof *e);
    if (!e) return CLSTM_ERR_NOMEM;
    const size_t n = (size_t)(rows * cols);
    e->q = malloc(n ? n : 1);
    e->scale = malloc(sizeof(float) * (size_t)rows);
    /* the gate weights (4H rows) gate by gate, each from a panel's start,
     * so that a thread's units of every gate are whole panels */
    const int64_t groups = t->kind == CLSTM_T_WEIGHT_IH || t->kind == CLSTM_T_WEIGHT_HH ? 4 : 1;
    const size_t group_bytes = clstm_q8_packed_bytes(rows / groups, cols);
    e->packed = aligned_alloc(64, ((size_t)groups * group_bytes + 63) & ~(size_t)63);
    e->colsum = malloc(sizeof(int32_t) * (size_t)rows);
    if (!e->q || !e->scale || !e->packed || !e->colsum) {
        q8_tensor_free(e);
        return CLSTM_ERR_NOMEM;
    }
    memcpy(e->q, q, n);
    memcpy(e->scale, scale, sizeof(float) * (size_t)rows);
    for (int64_t g = 0, gr = rows / groups; g < groups; g++)
        clstm_q8_pack(e->packed + g * group_bytes, e->colsum + g * gr, q + g * gr * cols, cols,
                      gr, cols);
    float *w = (float *)m->params + t->info.offset;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < cols; k++) w[r * cols + k] = (float)q[r * cols + k] * scale[r];
    q8_tensor_free(t->q8);
    t->q8 = e;
    return CLSTM_OK;
}

/* Row r of an (rows, cols) float tensor as int8 with a per-row scale:
 * s = max|w| / 127, q = rint(w * 127 / max|w|); a row of zeros gets s = 1
 * (any positive scale gives its zeros back). */
static void quantize_row(const double *w, int64_t cols, int8_t *q, float *s) {
    double amax = 0;
    for (int64_t k = 0; k < cols; k++) amax = fabs(w[k]) > amax ? fabs(w[k]) : amax;
    /* a row too small for float32 (float64 source) is a row of zeros */
    const float scale = (float)(amax / 127.0) > 0 ? (float)(amax / 127.0) : 1.0f;
    for (int64_t k = 0; k < cols; k++) {
        const double v = rint(w[k] / (double)scale);
        q[k] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
    }
    *s = scale;
}

/* Tensor i of src as double (src's dtype), into row (cols doubles). */
static void read_row(const clstm_model *src, const clstm_tensor *t, int64_t r, double *row) {
    const int64_t cols = t->info.shape[1];
    const size_t at = t->info.offset + (size_t)(r * cols);
    for (int64_t k = 0; k < cols; k++)
        row[k] = src->cfg.dtype == CLSTM_FLOAT64 ? ((const double *)src->params)[at + k]
                                                 : (double)((const float *)src->params)[at + k];
}

static clstm_status quantize_tensor(const clstm_model *src, clstm_model *m, int64_t i) {
    const clstm_tensor *t = &src->tensors[i];
    const int64_t rows = t->info.shape[0], cols = t->info.shape[1];
    double *row = malloc(sizeof(double) * (size_t)cols);
    int8_t *q = malloc((size_t)(rows * cols) + 1);
    float *s = malloc(sizeof(float) * (size_t)rows);
    clstm_status st = row && q && s ? CLSTM_OK : CLSTM_ERR_NOMEM;
    for (int64_t r = 0; st == CLSTM_OK && r < rows; r++) {
        read_row(src, t, r, row);
        quantize_row(row, cols, q + r * cols, s + r);
    }
    if (st == CLSTM_OK) st = clstm_q8_attach(m, i, q, s);
    free(row);
    free(q);
    free(s);
    return st;
}

/* 1 if every parameter of m is finite as a float32 (a float64 source's
 * may be beyond its range). */
static int params_finite(const clstm_model *m) {
    for (size_t i = 0; i < m->n_params; i++) {
        const double v = m->cfg.dtype == CLSTM_FLOAT64 ? ((const double *)m->params)[i]
                                                       : (double)((const float *)m->params)[i];
        if (!(fabs(v) <= 3.4028234663852886e38)) return 0;
    }
    return 1;
}

clstm_status clstm_quantize(const clstm_model *src, clstm_model **out) {
    if (out) *out = NULL;
    if (!src || !out) return CLSTM_ERR_NULL;
    if (src->quantized || !params_finite(src)) return CLSTM_ERR_ARG;
    if (src->cfg.target_vocab) return CLSTM_ERR_UNSUPPORTED; /* no int8 decoder */
    for (int64_t i = 0; i < src->n_tensors; i++)
        if (clstm_kind_quantized(src->tensors[i].kind) &&
            src->tensors[i].info.shape[1] > CLSTM_Q8_MAX_K)
            return CLSTM_ERR_UNSUPPORTED;
    clstm_config cfg = src->cfg;
    cfg.dtype = CLSTM_FLOAT32;
    cfg.backend = CLSTM_BACKEND_DEFAULT;
    clstm_model *m;
    clstm_status st = clstm_create(&cfg, 0, &m);
    if (st != CLSTM_OK) return st;
    clstm_q8_begin(m);
    for (int64_t i = 0; st == CLSTM_OK && i < m->n_tensors; i++) {
        const clstm_tensor *t = &src->tensors[i];
        if (clstm_kind_quantized(t->kind)) {
            st = quantize_tensor(src, m, i);
            continue;
        }
        const size_t n = (size_t)(t->info.shape[0] * t->info.shape[1]);
        for (size_t k = 0; k < n; k++) /* biases, peepholes: float32 */
            ((float *)m->params)[t->info.offset + k] =
                src->cfg.dtype == CLSTM_FLOAT64
                    ? (float)((const double *)src->params)[t->info.offset + k]
                    : ((const float *)src->params)[t->info.offset + k];
    }
    if (st == CLSTM_OK && src->vocab) st = clstm_set_vocab(m, src->vocab, src->vocab_bytes);
    for (int i = 0; st == CLSTM_OK && i < src->n_meta; i++)
        st = clstm_set_metadata(m, src->meta_key[i], src->meta_val[i]);
    if (st != CLSTM_OK) {
        clstm_free(m);
        return st;
    }
    *out = m;
    return CLSTM_OK;
}

clstm_status clstm_tensor_int8(const clstm_model *m, int64_t index, const int8_t **q,
                               const float **scale) {
    if (!m || !q || !scale) return CLSTM_ERR_NULL;
    if (index < 0 || index >= m->n_tensors || !m->tensors[index].q8) return CLSTM_ERR_ARG;
    *q = m->tensors[index].q8->q;
    *scale = m->tensors[index].q8->scale;
    return CLSTM_OK;
}

const clstm_q8_tensor *clstm_q8_of(const clstm_model *m, size_t offset) {
    for (int64_t i = 0; offset != CLSTM_ABSENT && i < m->n_tensors; i++)
        if (m->tensors[i].info.offset == offset) return m->tensors[i].q8;
    return NULL;
}
