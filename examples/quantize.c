/* quantize: make the int8 copy of a saved model and save it.
 *
 *     quantize MODEL.safetensors OUT.safetensors [TEXT]
 *
 * MODEL is a float32 or float64 model file (clstm.save, or clstm_save from
 * C). Its quantized copy (clstm_quantize: weight matrices int8 with one
 * scale per row, see "quantized models" in clstm.h) is written to OUT; it
 * runs with the same calls (clstm_model_forward) and loads with the same
 * clstm_load, for inference only.
 *
 * What it prints on stdout, one line each, once OUT is written:
 *   the int8 kernel this CPU runs (clstm_int8_kernel);
 *   the sizes of the float and int8 files (clstm_save_buffer_size);
 *   the largest |int8 - float| of the outputs over a short input: for a
 *     character model, the characters of TEXT (default: a pangram); for
 *     another token model, 64 pseudo-random ids; else 64 steps of
 *     pseudo-random features in [-1, 1] (splitmix64, seed 0: the same
 *     numbers on every machine). Outputs are the head's (logits), or the
 *     LSTM's y without a head;
 *   the file written.
 *
 * Exit status: 0 on success; 1 on a file or model error (a model that is
 * already quantized, or holds NaN or Inf, included); 2 on a usage error (a
 * TEXT character outside the vocabulary included). Each error is one line
 * on stderr, with nothing on stdout, and OUT is then not written. */
#include <clstm.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE "usage: quantize MODEL.safetensors OUT.safetensors [TEXT]"
#define DEFAULT_TEXT "the quick brown fox jumps over the lazy dog.\n"
#define RANDOM_STEPS 64

static int fail(const char *what, clstm_status st) {
    fprintf(stderr, "quantize: %s: %s\n", what, clstm_status_string(st));
    return 1;
}

static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* The model's outputs (T, 1, W) as doubles into out, from token ids or
 * features x (doubles, converted to the model's dtype). */
static clstm_status run(const clstm_model *m, int64_t T, const int32_t *ids, const double *x,
                        int64_t D, double *out, int64_t W) {
    clstm_config cfg = clstm_config_default();
    clstm_status st = clstm_get_config(m, &cfg);
    if (st != CLSTM_OK) return st;
    const int f64 = cfg.dtype == CLSTM_FLOAT64;
    const size_t elem = f64 ? sizeof(double) : sizeof(float);
    size_t ws_bytes = 0;
    if ((st = clstm_model_workspace_size(m, T, 1, 0, &ws_bytes)) != CLSTM_OK) return st;
    void *xs = x ? malloc(elem * (size_t)(T * D)) : NULL, *ys = malloc(elem * (size_t)(T * W));
    void *ws = malloc(ws_bytes ? ws_bytes : 1);
    if ((x && !xs) || !ys || !ws) {
        st = CLSTM_ERR_NOMEM;
        goto done;
    }
    for (int64_t i = 0; x && i < T * D; i++) {
        if (f64)
            ((double *)xs)[i] = x[i];
        else
            ((float *)xs)[i] = (float)x[i];
    }
    st = clstm_model_forward(m, T, 1, xs, ids, NULL, NULL, ys, NULL, NULL, NULL, ws, ws_bytes);
    for (int64_t i = 0; st == CLSTM_OK && i < T * W; i++)
        out[i] = f64 ? ((double *)ys)[i] : (double)((float *)ys)[i];
done:
    free(xs);
    free(ys);
    free(ws);
    return st;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "%s\n", USAGE);
        return 2;
    }
    const char *path = argv[1], *out_path = argv[2];
    const char *text = argc == 4 ? argv[3] : DEFAULT_TEXT;
    if (clstm_version_number() != CLSTM_VERSION_NUMBER) {
        fprintf(stderr, "quantize: built against clstm %s, linked with %s\n",
                CLSTM_VERSION_STRING, clstm_version_string());
        return 1;
    }

    clstm_model *m = NULL, *q = NULL;
    const char *why = NULL;
    clstm_status st = clstm_load_ex(path, &m, &why);
    if (st != CLSTM_OK) {
        fprintf(stderr, "quantize: %s: %s%s%s\n", path, clstm_status_string(st),
                why ? ": " : "", why ? why : "");
        return 1;
    }
    int rc = 1;
    int32_t *ids = NULL;
    double *x = NULL, *yf = NULL, *yq = NULL;
    st = clstm_quantize(m, &q);
    if (st == CLSTM_ERR_ARG) {
        fprintf(stderr, "quantize: %s: %s\n", path,
                clstm_is_quantized(m) ? "the model is already quantized"
                                      : "the model holds NaN or Inf; it cannot be quantized");
        goto done;
    }
    if (st != CLSTM_OK) {
        rc = fail("clstm_quantize", st);
        goto done;
    }

    size_t float_bytes = 0, int8_bytes = 0;
    if ((st = clstm_save_buffer_size(m, &float_bytes)) != CLSTM_OK ||
        (st = clstm_save_buffer_size(q, &int8_bytes)) != CLSTM_OK) {
        rc = fail("clstm_save_buffer_size", st);
        goto done;
    }

    /* the input: the text's characters, pseudo-random ids or features */
    clstm_config cfg = clstm_config_default();
    const char *vocab = NULL;
    size_t vocab_bytes = 0;
    if ((st = clstm_get_config(m, &cfg)) != CLSTM_OK ||
        (st = clstm_get_vocab(m, &vocab, &vocab_bytes)) != CLSTM_OK) {
        rc = fail("clstm_get_config", st);
        goto done;
    }
    const size_t text_bytes = strlen(text);
    int64_t T = RANDOM_STEPS;
    const char *input = "random features";
    uint64_t rng = 0;
    if (cfg.encoding != CLSTM_ENCODING_NONE) {
        ids = malloc(sizeof(int32_t) * (text_bytes > RANDOM_STEPS ? text_bytes : RANDOM_STEPS));
        if (!ids) {
            rc = fail("malloc", CLSTM_ERR_NOMEM);
            goto done;
        }
        if (vocab) {
            input = "the text";
            T = 0;
            for (size_t pos = 0; pos < text_bytes;) {
                size_t used = 0;
                st = clstm_vocab_lookup(m, text + pos, text_bytes - pos, &ids[T], &used);
                if (st == CLSTM_ERR_ARG && used > 0) {
                    fprintf(stderr, "quantize: TEXT: the character '%.*s' (byte %zu) is not "
                            "in the model's vocabulary\n", (int)used, text + pos, pos);
                    rc = 2;
                    goto done;
                }
                if (st != CLSTM_OK) {
                    fprintf(stderr, "quantize: TEXT: invalid UTF-8 at byte %zu\n", pos);
                    rc = 2;
                    goto done;
                }
                pos += used;
                T++;
            }
            if (T == 0) {
                fprintf(stderr, "quantize: TEXT is empty\n");
                rc = 2;
                goto done;
            }
        } else {
            input = "random ids";
            for (int64_t t = 0; t < T; t++)
                ids[t] = (int32_t)(splitmix64(&rng) % (uint64_t)cfg.vocab_size);
        }
    } else {
        x = malloc(sizeof(double) * (size_t)(T * cfg.input_size));
        if (!x) {
            rc = fail("malloc", CLSTM_ERR_NOMEM);
            goto done;
        }
        for (int64_t i = 0; i < T * cfg.input_size; i++)
            x[i] = (double)(splitmix64(&rng) >> 11) * 0x1.0p-52 - 1.0;
    }
    const int64_t R = cfg.proj_size > 0 ? cfg.proj_size : cfg.hidden_size;
    const int64_t W = cfg.output_size > 0 ? cfg.output_size : (cfg.bidirectional ? 2 : 1) * R;
    yf = malloc(sizeof(double) * (size_t)(T * W));
    yq = malloc(sizeof(double) * (size_t)(T * W));
    if (!yf || !yq) {
        rc = fail("malloc", CLSTM_ERR_NOMEM);
        goto done;
    }
    if ((st = run(m, T, ids, x, cfg.input_size, yf, W)) != CLSTM_OK ||
        (st = run(q, T, ids, x, cfg.input_size, yq, W)) != CLSTM_OK) {
        rc = fail("clstm_model_forward", st);
        goto done;
    }
    double worst = 0.0;
    for (int64_t i = 0; i < T * W; i++) {
        const double d = fabs(yq[i] - yf[i]);
        worst = d > worst || isnan(d) ? d : worst; /* NaN wins */
    }

    if ((st = clstm_save_ex(q, out_path, &why)) != CLSTM_OK) {
        fprintf(stderr, "quantize: %s: %s%s%s\n", out_path, clstm_status_string(st),
                why ? ": " : "", why ? why : "");
        goto done;
    }
    printf("int8 kernel: %s\n", clstm_int8_kernel());
    printf("file size: %zu bytes float, %zu bytes int8 (%.2fx smaller)\n", float_bytes,
           int8_bytes, (double)float_bytes / (double)int8_bytes);
    printf("max |int8 - float| of the %s over %lld steps (%s): %.9g\n",
           cfg.output_size > 0 ? "outputs" : "LSTM outputs", (long long)T, input, worst);
    printf("wrote %s\n", out_path);
    if (fflush(stdout) != 0 || ferror(stdout)) {
        fprintf(stderr, "quantize: writing stdout failed\n");
        goto done;
    }
    rc = 0;
done:
    free(ids);
    free(x);
    free(yf);
    free(yq);
    clstm_free(q);
    clstm_free(m);
    return rc;
}
