/* The tensor table (src/model.c) through the internal accessors the kernels
 * read (clstm_unit_layout, clstm_tensor_offset, and the kept
 * clstm_unit_offset, n_lstm, emb_off, head_off), for every option: each
 * offset is the one clstm_tensor_info_get names, the tensors tile the block
 * in order with no gap, and clstm_param_count (the table's counting pass,
 * for a config with no model) agrees with the model. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include "ctest.h"
#include "internal.h"

/* The offset of the tensor called name, or CLSTM_ABSENT. */
static size_t offset_of(const clstm_model *m, const char *name) {
    int64_t nt = 0;
    clstm_num_tensors(m, &nt);
    for (int64_t i = 0; i < nt; i++) {
        clstm_tensor_info t;
        clstm_tensor_info_get(m, i, &t);
        if (strcmp(t.name, name) == 0) return t.offset;
    }
    return CLSTM_ABSENT;
}

static void check_config(const clstm_config *c, const char *ctx) {
    clstm_model *m = NULL;
    size_t counted = 0;
    if (!CHECK(clstm_param_count(c, &counted) == CLSTM_OK, "%s: param_count", ctx)) return;
    if (!CHECK(clstm_create(c, 3, &m) == CLSTM_OK, "%s: create", ctx)) return;
    CHECK_EQ(counted, m->n_params);
    int64_t nt = 0;
    clstm_num_tensors(m, &nt);
    size_t next = 0; /* tiling: each tensor starts where the one before ends */
    for (int64_t i = 0; i < nt; i++) {
        clstm_tensor_info t;
        clstm_tensor_info_get(m, i, &t);
        CHECK(t.offset == next, "%s: %s at %zu, expected %zu", ctx, t.name, t.offset, next);
        next = t.offset + (size_t)t.shape[0] * (size_t)t.shape[1];
    }
    CHECK(next == m->n_params, "%s: tensors end at %zu of %zu", ctx, next, m->n_params);
    static const char *const unit_names[6] = {"weight_ih", "weight_hh", "bias_ih",
                                              "bias_hh",   "weight_hr", "peephole"};
    const int64_t N = c->bidirectional ? 2 : 1;
    for (int64_t k = 0; k < c->num_layers; k++)
        for (int64_t d = 0; d < N; d++) {
            const clstm_unit_offsets u = clstm_unit_layout(m, k, d);
            const size_t got[6] = {u.w_ih, u.w_hh, u.b_ih, u.b_hh, u.w_hr, u.peephole};
            for (int j = 0; j < 6; j++) {
                char name[CLSTM_NAME_MAX];
                snprintf(name, sizeof name, "%s_l%lld%s", unit_names[j], (long long)k,
                         d ? "_reverse" : "");
                CHECK(got[j] == offset_of(m, name), "%s: unit (%lld, %lld) %s", ctx,
                      (long long)k, (long long)d, name);
            }
        }
    const size_t emb = clstm_tensor_offset(m, CLSTM_T_EMBEDDING);
    const size_t hw = clstm_tensor_offset(m, CLSTM_T_HEAD_WEIGHT);
    CHECK(emb == offset_of(m, "embedding.weight"), "%s: embedding offset", ctx);
    CHECK(hw == offset_of(m, "head.weight"), "%s: head.weight offset", ctx);
    CHECK(clstm_tensor_offset(m, CLSTM_T_HEAD_BIAS) == offset_of(m, "head.bias"),
          "%s: head.bias offset", ctx);
    clstm_free(m);
}

int main(void) {
    for (int ci = 0; ci < 96; ci++) {
        clstm_config c = clstm_config_default();
        c.input_size = 2 + ci % 3;
        c.hidden_size = 4 + ci % 2;
        c.num_layers = 1 + (ci / 3) % 3;
        c.bidirectional = (ci >> 1) & 1;
        c.proj_size = (ci >> 2) & 1 ? 2 : 0;
        c.peepholes = (ci >> 3) & 1;
        c.dtype = (ci >> 4) & 1 ? CLSTM_FLOAT64 : CLSTM_FLOAT32;
        c.encoding = (clstm_encoding)(ci % 3);
        if (c.encoding == CLSTM_ENCODING_ONEHOT) c.vocab_size = c.input_size;
        if (c.encoding == CLSTM_ENCODING_EMBEDDING) c.vocab_size = 9;
        c.output_size = (ci >> 5) & 1 ? 3 : 0;
        char ctx[64];
        snprintf(ctx, sizeof ctx, "config %d", ci);
        check_config(&c, ctx);
    }
    return ctest_finish();
}
