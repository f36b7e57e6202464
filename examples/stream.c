/* stream: run a saved clstm model over real-valued inputs read from stdin,
 * one time step per line, printing the model's output for each step.
 *
 *     stream MODEL.safetensors < inputs.txt
 *
 * Each input line holds D numbers (the model's input size) separated by
 * spaces or tabs; each output line holds the R outputs of that step. The
 * state is carried from line to line: this is a single stream (B = 1).
 * Nothing is allocated after set-up. Exit status: 0 on success, 1 on a
 * usage, file or input error (with a message on stderr). */
#include <clstm.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int fail(const char *what, const char *detail) {
    fprintf(stderr, "stream: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    return 1;
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
    if (argc != 2) return fail("usage: stream MODEL.safetensors < inputs", NULL);
    clstm_model *m = NULL;
    clstm_status st = clstm_load(argv[1], &m);
    if (st != CLSTM_OK) return fail(argv[1], clstm_status_string(st));
    clstm_config cfg;
    clstm_get_config(m, &cfg);
    if (cfg.bidirectional) {
        clstm_free(m);
        return fail("a bidirectional model cannot stream", NULL);
    }
    const int64_t D = cfg.input_size, H = cfg.hidden_size, L = cfg.num_layers;
    const int64_t R = cfg.proj_size > 0 ? cfg.proj_size : H;
    const int f64 = cfg.dtype == CLSTM_FLOAT64;
    const size_t elem = f64 ? sizeof(double) : sizeof(float);
    size_t ws_bytes = 0;
    clstm_workspace_size(m, 1, 1, 0, &ws_bytes);
    double *xd = calloc((size_t)D, sizeof(double));
    void *x = calloc((size_t)D, elem), *y = calloc((size_t)R, elem);
    void *h = calloc((size_t)(L * R), elem), *c = calloc((size_t)(L * H), elem);
    void *ws = malloc(ws_bytes);
    size_t cap = 64 + (size_t)D * 32;
    char *line = malloc(cap);
    int rc = 0;
    if (!xd || !x || !y || !h || !c || !ws || !line) {
        rc = fail("out of memory", NULL);
        goto done;
    }
    clstm_run_options opt = clstm_run_options_default(); /* inference */
    for (long lineno = 1; fgets(line, (int)cap, stdin); lineno++) {
        if (!strchr(line, '\n') && !feof(stdin)) {
            rc = fail("input line too long", NULL);
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
        st = clstm_forward_ex(m, 1, 1, x, h, c, y, h, c, &opt, ws, ws_bytes);
        if (st != CLSTM_OK) {
            rc = fail("forward", clstm_status_string(st));
            goto done;
        }
        for (int64_t i = 0; i < R; i++)
            printf(i ? " %.17g" : "%.17g", f64 ? ((double *)y)[i] : (double)((float *)y)[i]);
        printf("\n");
    }
    if (ferror(stdin)) rc = fail("reading stdin", strerror(errno));
done:
    free(xd);
    free(x);
    free(y);
    free(h);
    free(c);
    free(ws);
    free(line);
    clstm_free(m);
    return rc;
}
