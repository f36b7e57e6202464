/* stream: run a saved clstm model over real-valued inputs read from stdin,
 * one time step per line, printing the model's output for each step.
 *
 *     stream MODEL.safetensors [--probs] [--sequences] < inputs.txt
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
 * --sequences: the input is whole sequences, each ended by an empty line (or
 * the end of the input); each runs as one clstm_model_forward call (T = its
 * length, B = 1, from a zero state), so bidirectional models run too, and
 * one line per sequence holds the outputs at its last step, or their mean
 * over its steps where the model's metadata has "pooling": "mean": for a
 * classifier trained by `clstm train --npz`, its logits (the class is the
 * largest; --probs: the probabilities), as Python's
 * clstm.tasks.predict_sequences gives them. The buffers grow to the
 * longest sequence read.
 *
 * Standardization (`clstm train --npz` and `--csv` models): where the
 * model's metadata holds "input_mean" and "input_std" (JSON arrays of D
 * numbers), each input feature is read as (x - mean) / std, as in
 * training; where it holds "output_mean" and "output_std" (O numbers: a
 * regression's), each output is printed as z * std + mean, on the data's
 * scale. A forecaster saved before those keys existed holds one "mean" and
 * "std" for its series, which serve as both. Models without them read and
 * print numbers as they are.
 *
 * Models with token input (encoding onehot or embedding) read token ids,
 * not numbers: use `generate` for those. Bidirectional models cannot stream
 * step by step (the reverse direction needs the end of the sequence): use
 * --sequences.
 *
 * Exit status: 0 on success; 1 on a file, model or input error; 2 on a usage
 * error. Every message goes to stderr. */
#include <clstm.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE "usage: stream MODEL.safetensors [--probs] [--sequences] < inputs"

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

/* n numbers, a JSON array such as "[0.5, -1, 2e-3]", into out; 0 on
 * success, -1 when s is anything else (or a number is not finite). */
static int parse_array(const char *s, double *out, int64_t n) {
    const char *p = s;
    char *end;
    while (*p == ' ') p++;
    if (*p++ != '[') return -1;
    for (int64_t i = 0; i < n; i++) {
        errno = 0;
        out[i] = strtod(p, &end);
        if (end == p || errno == ERANGE || !isfinite(out[i])) return -1;
        for (p = end; *p == ' ';) p++;
        if (*p++ != (i + 1 < n ? ',' : ']')) return -1;
    }
    while (*p == ' ') p++;
    return *p ? -1 : 0;
}

/* The model's standardization of n features under prefix ("input" or
 * "output"): its metadata's "<prefix>_mean" and "<prefix>_std" into mean
 * and std (n each), or a pre-standardization forecaster's "mean" and "std"
 * repeated. Returns 1 when found, 0 when the model has none (the
 * identity), -1 when a key is missing, malformed, of another length, or a
 * std is not > 0. */
static int read_scaling(const clstm_model *m, const char *prefix, int64_t n, double *mean,
                        double *std) {
    char key_mean[32], key_std[32];
    const char *vm = NULL, *vs = NULL, *task = NULL;
    snprintf(key_mean, sizeof key_mean, "%s_mean", prefix);
    snprintf(key_std, sizeof key_std, "%s_std", prefix);
    clstm_get_metadata(m, key_mean, &vm);
    clstm_get_metadata(m, key_std, &vs);
    if (!vm && !vs) {
        clstm_get_metadata(m, "task", &task);
        clstm_get_metadata(m, "input_mean", &vm); /* a newer forecaster: the keys decide */
        clstm_get_metadata(m, "output_mean", &vs);
        if (!task || strcmp(task, "forecast") != 0 || vm || vs) return 0;
        if (clstm_get_metadata(m, "mean", &vm) != CLSTM_OK || !vm ||
            clstm_get_metadata(m, "std", &vs) != CLSTM_OK || !vs)
            return -1;
        char *end1, *end2;
        const double m0 = strtod(vm, &end1), s0 = strtod(vs, &end2);
        if (end1 == vm || *end1 || end2 == vs || *end2 || !isfinite(m0) || !isfinite(s0) ||
            !(s0 > 0))
            return -1;
        for (int64_t i = 0; i < n; i++) {
            mean[i] = m0;
            std[i] = s0;
        }
        return 1;
    }
    if (!vm || !vs || parse_array(vm, mean, n) != 0 || parse_array(vs, std, n) != 0) return -1;
    for (int64_t i = 0; i < n; i++)
        if (!(std[i] > 0)) return -1;
    return 1;
}

/* row (n) = the mean of the T rows of out (T, n; the model's dtype), in
 * double; T = 1: that row. */
static void mean_rows(const void *out, int f64, int64_t T, int64_t n, double *row) {
    for (int64_t i = 0; i < n; i++) {
        double sum = 0.0;
        for (int64_t t = 0; t < T; t++)
            sum += f64 ? ((const double *)out)[t * n + i] : (double)((const float *)out)[t * n + i];
        row[i] = T > 1 ? sum / (double)T : sum;
    }
}

int main(int argc, char **argv) {
    const char *path = NULL;
    int probs = 0, sequences = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--probs") == 0)
            probs = 1;
        else if (strcmp(argv[i], "--sequences") == 0)
            sequences = 1;
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
    if (cfg.bidirectional && !sequences) {
        clstm_free(m);
        return fail("a bidirectional model cannot stream step by step: run whole sequences "
                    "with --sequences",
                    NULL);
    }
    if (probs && !cfg.softmax) {
        clstm_free(m);
        fprintf(stderr, "stream: %s: --probs needs a model with a softmax head; this "
                        "model's outputs are not logits\n", path);
        return 2;
    }
    const int64_t D = cfg.input_size, H = cfg.hidden_size, L = cfg.num_layers;
    const int64_t R = cfg.proj_size > 0 ? cfg.proj_size : H, N = cfg.bidirectional ? 2 : 1;
    const int64_t O = cfg.output_size > 0 ? cfg.output_size : N * R; /* width of out */
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
    double *in_mean = calloc((size_t)D, sizeof(double)), *in_std = calloc((size_t)D, sizeof(double));
    double *out_mean = calloc((size_t)O, sizeof(double));
    double *out_std = calloc((size_t)O, sizeof(double)), *row = calloc((size_t)O, sizeof(double));
    void *x = calloc((size_t)D, elem), *out = calloc((size_t)O, elem);
    void *h = calloc((size_t)(L * R), elem), *c = calloc((size_t)(L * H), elem);
    void *ws = malloc(ws_bytes ? ws_bytes : 1);
    size_t cap = 64 + (size_t)D * 32;
    char *line = malloc(cap);
    int64_t T = 0, T_cap = 1; /* --sequences: the steps read of the current sequence */
    int rc = 0;
    if (!xd || !in_mean || !in_std || !out_mean || !out_std || !row || !x || !out || !h || !c ||
        !ws || !line) {
        rc = fail("out of memory", NULL);
        goto done;
    }
    const int scale_in = read_scaling(m, "input", D, in_mean, in_std);
    const int scale_out = read_scaling(m, "output", O, out_mean, out_std);
    if (scale_in < 0 || scale_out < 0) {
        rc = fail(path, "its standardization metadata (input_mean, input_std, output_mean, "
                        "output_std) is incomplete or malformed");
        goto done;
    }
    const char *pooling = NULL; /* --sequences: "mean" averages the outputs over the steps */
    clstm_get_metadata(m, "pooling", &pooling);
    const int mean_pool = pooling && strcmp(pooling, "mean") == 0;
    if (pooling && !mean_pool && strcmp(pooling, "last") != 0) {
        rc = fail(path, "its metadata 'pooling' is neither \"last\" nor \"mean\"");
        goto done;
    }
    clstm_run_options opt = clstm_run_options_default(); /* inference */
    for (long lineno = 1;; lineno++) {
        const int more = fgets(line, (int)cap, stdin) != NULL;
        if (more && !strchr(line, '\n') && !feof(stdin)) {
            fprintf(stderr, "stream: line %ld: input line too long\n", lineno);
            rc = 1;
            goto done;
        }
        if (sequences && (!more || line[strspn(line, " \t\r\n")] == '\0')) {
            if (T > 0) { /* a whole sequence: one forward, its last step printed */
                size_t need = 0;
                st = clstm_model_workspace_size(m, T, 1, 0, &need);
                if (st == CLSTM_OK && need > ws_bytes) {
                    void *grown = realloc(ws, need);
                    if (!grown) {
                        rc = fail("out of memory", NULL);
                        goto done;
                    }
                    ws = grown;
                    ws_bytes = need;
                }
                if (st == CLSTM_OK)
                    st = clstm_model_forward(m, T, 1, x, NULL, NULL, NULL, out, NULL, NULL, &opt,
                                             ws, ws_bytes);
                if (st != CLSTM_OK) {
                    rc = fail("clstm_model_forward", clstm_status_string(st));
                    goto done;
                }
                if (mean_pool)
                    mean_rows(out, f64, T, O, row);
                else
                    mean_rows((char *)out + (size_t)((T - 1) * O) * elem, f64, 1, O, row);
                T = 0;
            } else if (more) {
                continue; /* empty lines between sequences */
            } else {
                break;
            }
        } else if (more) {
            if (parse_line(line, xd, D) != 0) {
                fprintf(stderr, "stream: line %ld: expected %lld numbers\n", lineno,
                        (long long)D);
                rc = 1;
                goto done;
            }
            if (sequences && T == T_cap) { /* room for twice as many steps */
                void *gx = realloc(x, (size_t)(2 * T_cap * D) * elem);
                if (gx) x = gx;
                void *go = gx ? realloc(out, (size_t)(2 * T_cap * O) * elem) : NULL;
                if (!go) {
                    rc = fail("out of memory", NULL);
                    goto done;
                }
                out = go;
                T_cap *= 2;
            }
            const int64_t at = sequences ? T * D : 0;
            for (int64_t i = 0; i < D; i++) {
                const double v = scale_in ? (xd[i] - in_mean[i]) / in_std[i] : xd[i];
                if (f64)
                    ((double *)x)[at + i] = v;
                else
                    ((float *)x)[at + i] = (float)v;
            }
            if (sequences) {
                T++;
                continue;
            }
            /* T = 1, B = 1; h0 = hT = h and c0 = cT = c advance the state in place */
            st = clstm_model_forward(m, 1, 1, x, NULL, h, c, out, h, c, &opt, ws, ws_bytes);
            if (st != CLSTM_OK) {
                rc = fail("clstm_model_forward", clstm_status_string(st));
                goto done;
            }
            mean_rows(out, f64, 1, O, row);
        } else {
            break;
        }
        if (probs) {
            st = clstm_softmax(CLSTM_FLOAT64, 1, O, row, 1.0, row);
            if (st != CLSTM_OK) {
                rc = fail("clstm_softmax", clstm_status_string(st));
                goto done;
            }
        }
        for (int64_t i = 0; i < O; i++) { /* a regression's outputs on the data's scale */
            const double v = scale_out && !probs ? row[i] * out_std[i] + out_mean[i] : row[i];
            printf(i ? " %.17g" : "%.17g", v);
        }
        printf("\n");
        if (!more) break;
    }
    if (ferror(stdin)) {
        rc = fail("reading stdin", strerror(errno));
        goto done;
    }
    if (fflush(stdout) != 0 || ferror(stdout)) rc = fail("writing stdout", strerror(errno));
done:
    free(xd);
    free(in_mean);
    free(in_std);
    free(out_mean);
    free(out_std);
    free(row);
    free(x);
    free(out);
    free(h);
    free(c);
    free(ws);
    free(line);
    clstm_free(m);
    return rc;
}
