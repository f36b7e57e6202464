/* stream: run a saved clstm model over real-valued inputs read from stdin,
 * one time step per line, printing the model's output for each step.
 *
 *     stream MODEL.safetensors [--probs] < inputs.txt
 *
 * Each input line holds D numbers (the model's input size) separated by
 * spaces or tabs; each output line holds that step's outputs, printed with
 * %.17g so they round-trip:
 *   - a bare LSTM (no head): the R outputs of the top layer (y);
 *   - a model with a Linear head: the head's O outputs. For a softmax head
 *     these are the logits; with --probs (softmax heads only) they are the
 *     probabilities softmax(logits) instead (clstm_softmax, temperature 1).
 * The state is carried from line to line: this is a single stream (B = 1),
 * one clstm_model_forward call of T = 1 per line with the state advanced in
 * place. Nothing is allocated after set-up.
 *
 * Models with token input (encoding onehot or embedding) read token ids,
 * not numbers: use `generate` for those. Bidirectional models cannot stream
 * (the reverse direction needs the end of the sequence).
 *
 * Exit status: 0 on success; 1 on a file, model or input error; 2 on a usage
 * error. Every message goes to stderr. */
#include <clstm.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE "usage: stream MODEL.safetensors [--probs] < inputs"

static int fail(const char *what, const char *detail) {
    fprintf(stderr, "stream: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    return 1;
}

static int usage(const char *problem) {
    if (problem) fprintf(stderr, "stream: %s\n", problem);
    fprintf(stderr, "%s\n", USAGE);
    return 2;
}

/* Parse exactly n doubles from line into out; 0 on success. */
static int parse_line(char *line, double *out, int64_t n) {
    char *p = line, *end;
    for (int64_t i = 0; i < n; i++) {
        errno = 0;
        out[i] = strtod(p, &end);
        if (end == p || errno == ERANGE) return -1;
        p = end;
    }
    while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++;
    return *p ? -1 : 0;
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int probs = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--probs") == 0)
            probs = 1;
        else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            fprintf(stderr, "stream: unknown option '%s'\n", argv[i]);
            return usage(NULL);
        } else if (!path)
            path = argv[i];
        else
            return usage("more than one model file given");
    }
    if (!path) return usage("no model file given");
    if (clstm_version_number() != CLSTM_VERSION_NUMBER) {
        fprintf(stderr, "stream: built against clstm %s, linked with %s\n",
                CLSTM_VERSION_STRING, clstm_version_string());
        return 1;
    }

    clstm_model *m = NULL;
    const char *why = NULL;
    clstm_status st = clstm_load_ex(path, &m, &why);
    if (st != CLSTM_OK) {
        fprintf(stderr, "stream: %s: %s%s%s\n", path, clstm_status_string(st),
                why ? ": " : "", why ? why : "");
        return 1;
    }
    clstm_config cfg = clstm_config_default();
    st = clstm_get_config(m, &cfg);
    if (st != CLSTM_OK) {
        clstm_free(m);
        return fail("clstm_get_config", clstm_status_string(st));
    }
    if (cfg.encoding != CLSTM_ENCODING_NONE) {
        clstm_free(m);
        fprintf(stderr, "stream: %s: a token model (encoding %s) reads token ids, not "
                        "numbers: use `generate` to run it\n",
                path, cfg.encoding == CLSTM_ENCODING_ONEHOT ? "onehot" : "embedding");
        return 1;
    }
    if (cfg.bidirectional) {
        clstm_free(m);
        return fail("a bidirectional model cannot stream", NULL);
    }
    if (probs && !cfg.softmax) {
        clstm_free(m);
        fprintf(stderr, "stream: %s: --probs needs a model with a softmax head; this "
                        "model's outputs are not logits\n", path);
        return 2;
    }
    const int64_t D = cfg.input_size, H = cfg.hidden_size, L = cfg.num_layers;
    const int64_t R = cfg.proj_size > 0 ? cfg.proj_size : H;
    const int64_t O = cfg.output_size > 0 ? cfg.output_size : R; /* width of out */
    const int f64 = cfg.dtype == CLSTM_FLOAT64;
    const size_t elem = f64 ? sizeof(double) : sizeof(float);
    size_t ws_bytes = 0;
    st = clstm_model_workspace_size(m, 1, 1, 0, &ws_bytes);
    if (st != CLSTM_OK) {
        clstm_free(m);
        return fail("clstm_model_workspace_size", clstm_status_string(st));
    }
    /* a line of D numbers: up to ~25 characters each, with some slack */
    if ((size_t)D > ((size_t)0x7fffffff - 64) / 32) {
        clstm_free(m);
        return fail("input size too large for this program", NULL);
    }
    double *xd = calloc((size_t)D, sizeof(double));
    void *x = calloc((size_t)D, elem), *out = calloc((size_t)O, elem);
    void *h = calloc((size_t)(L * R), elem), *c = calloc((size_t)(L * H), elem);
    void *ws = malloc(ws_bytes ? ws_bytes : 1);
    size_t cap = 64 + (size_t)D * 32;
    char *line = malloc(cap);
    int rc = 0;
    if (!xd || !x || !out || !h || !c || !ws || !line) {
        rc = fail("out of memory", NULL);
        goto done;
    }
    clstm_run_options opt = clstm_run_options_default(); /* inference */
    for (long lineno = 1; fgets(line, (int)cap, stdin); lineno++) {
        if (!strchr(line, '\n') && !feof(stdin)) {
            fprintf(stderr, "stream: line %ld: input line too long\n", lineno);
            rc = 1;
            goto done;
        }
        if (parse_line(line, xd, D) != 0) {
            fprintf(stderr, "stream: line %ld: expected %lld numbers\n", lineno, (long long)D);
            rc = 1;
            goto done;
        }
        for (int64_t i = 0; i < D; i++) {
            if (f64)
                ((double *)x)[i] = xd[i];
            else
                ((float *)x)[i] = (float)xd[i];
        }
        /* T = 1, B = 1; h0 = hT = h and c0 = cT = c advance the state in place */
        st = clstm_model_forward(m, 1, 1, x, NULL, h, c, out, h, c, &opt, ws, ws_bytes);
        if (st != CLSTM_OK) {
            rc = fail("clstm_model_forward", clstm_status_string(st));
            goto done;
        }
        if (probs) {
            st = clstm_softmax(cfg.dtype, 1, O, out, 1.0, out);
            if (st != CLSTM_OK) {
                rc = fail("clstm_softmax", clstm_status_string(st));
                goto done;
            }
        }
        for (int64_t i = 0; i < O; i++)
            printf(i ? " %.17g" : "%.17g", f64 ? ((double *)out)[i] : (double)((float *)out)[i]);
        printf("\n");
    }
    if (ferror(stdin)) {
        rc = fail("reading stdin", strerror(errno));
        goto done;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) rc = fail("writing stdout", strerror(errno));
done:
    free(xd);
    free(x);
    free(out);
    free(h);
    free(c);
    free(ws);
    free(line);
    clstm_free(m);
    return rc;
}
