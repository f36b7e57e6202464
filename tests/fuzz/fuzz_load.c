/* libFuzzer target for the clstm model loader (clstm_load_buffer).
 *
 * Every input is handed to clstm_load_buffer. When it loads, a tiny
 * inference forward of the whole model (T = 2, B = 1; token ids for token
 * models) is run with a workspace sized by clstm_model_workspace_size, every
 * vocabulary token is looked up both ways, and the model is freed. Models of more than MAX_PARAMS
 * elements are freed without the forward (keeps executions fast).
 *
 * Build and run: tests/fuzz/run.sh [seconds]
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clstm.h"

#define MAX_PARAMS 1000000u

static void run_forward(clstm_model *m)
{
    clstm_config cfg;
    void *params = NULL;
    size_t nparams = 0;
    if (clstm_get_config(m, &cfg) != CLSTM_OK) return;
    if (clstm_params(m, &params, &nparams) != CLSTM_OK) return;
    if (nparams > MAX_PARAMS) return;
    /* the config was validated by the loader; still refuse anything the
     * parameter count cap did not already bound */
    if (cfg.input_size < 1 || cfg.input_size > (int64_t)MAX_PARAMS) return;
    if (cfg.hidden_size < 1 || cfg.hidden_size > (int64_t)MAX_PARAMS) return;
    if (cfg.num_layers < 1 || cfg.num_layers > (int64_t)MAX_PARAMS) return;

    const int64_t T = 2, B = 1;
    const int64_t N = cfg.bidirectional ? 2 : 1;
    const int64_t R = cfg.proj_size > 0 ? cfg.proj_size : cfg.hidden_size;
    const int64_t O = cfg.output_size > 0 ? cfg.output_size : N * R;
    const int tokens = cfg.encoding != CLSTM_ENCODING_NONE;
    const size_t esz = cfg.dtype == CLSTM_FLOAT64 ? sizeof(double) : sizeof(float);

    size_t nx = tokens ? 0 : (size_t)(T * B * cfg.input_size);
    size_t ny = (size_t)(T * B * O);
    size_t nh = (size_t)(N * cfg.num_layers * B * R);
    size_t nc = (size_t)(N * cfg.num_layers * B * cfg.hidden_size);

    size_t ws_bytes = 0;
    if (clstm_model_workspace_size(m, T, B, 0, &ws_bytes) != CLSTM_OK) return;

    void *x = calloc(nx ? nx : 1, esz);
    void *y = calloc(ny ? ny : 1, esz);
    void *hT = calloc(nh ? nh : 1, esz);
    void *cT = calloc(nc ? nc : 1, esz);
    void *ws = malloc(ws_bytes ? ws_bytes : 1);
    int32_t ids[2] = {0, (int32_t)(cfg.vocab_size > 1 ? cfg.vocab_size - 1 : 0)};
    if (x && y && hT && cT && ws) {
        /* deterministic, non-trivial input */
        for (size_t i = 0; i < nx; i++) {
            double v = 0.25 * (double)((int)(i % 7) - 3);
            if (esz == sizeof(double)) ((double *)x)[i] = v;
            else ((float *)x)[i] = (float)v;
        }
        (void)clstm_model_forward(m, T, B, tokens ? NULL : x, tokens ? ids : NULL, NULL, NULL,
                                  y, hT, cT, NULL, ws, ws_bytes);
    }
    free(x);
    free(y);
    free(hT);
    free(cT);
    free(ws);
}

/* Every token of a vocabulary maps to bytes that map back to it. */
static void check_vocab(clstm_model *m)
{
    clstm_config cfg;
    const char *all = NULL;
    size_t bytes = 0;
    if (clstm_get_config(m, &cfg) != CLSTM_OK || clstm_get_vocab(m, &all, &bytes) != CLSTM_OK ||
        !all)
        return;
    if (strlen(all) != bytes) __builtin_trap(); /* NUL-terminated, no NUL inside */
    for (int32_t id = 0; id < cfg.vocab_size; id++) {
        const char *s;
        size_t len, used;
        int32_t back;
        if (clstm_vocab_token(m, id, &s, &len) != CLSTM_OK) __builtin_trap();
        if (clstm_vocab_lookup(m, s, len, &back, &used) != CLSTM_OK || back != id || used != len)
            __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    clstm_model *m = NULL;
    clstm_status s = clstm_load_buffer(data, size, &m);
    if (s == CLSTM_OK) {
        run_forward(m);
        check_vocab(m);
        clstm_free(m);
    } else if (m != NULL) {
        /* the API promises *out is NULL on failure */
        __builtin_trap();
    }
    return 0;
}
