/* finetune: train a saved clstm model further on data read from stdin, and
 * save the result.
 *
 *     finetune MODEL.safetensors OUT.safetensors [--epochs N] [--lr X] [--seed S]
 *              < data
 *
 * Two kinds of model can be trained:
 *   - A character model: token input (encoding onehot or embedding) with a
 *     vocabulary, and a softmax head over it (output_size = vocab_size,
 *     softmax = 1). stdin is UTF-8 text, every character of which must be in
 *     the vocabulary (newlines included); the model learns to predict each
 *     character from the ones before it, with the softmax cross-entropy
 *     (clstm_loss_xent).
 *   - A real-valued model with a regression head: encoding none,
 *     output_size O > 0, softmax = 0. Each line of stdin is one time step: D
 *     inputs followed by O targets (numbers separated by spaces or tabs); a
 *     blank line ends a sequence and starts the next one. Loss: mean squared
 *     error (clstm_loss_mse).
 * Bare LSTMs (no head: nothing to compare against), models with clip (whose
 * backward clstm does not implement), bidirectional models and real-valued
 * classifiers are refused.
 *
 * Training: truncated backpropagation through time, one stream (B = 1). Each
 * sequence starts from a zero state and is cut into chunks of up to 64 steps;
 * the state at the end of a chunk is the next chunk's initial state, but no
 * gradient flows between chunks. Per chunk: a training clstm_model_forward,
 * the loss and its gradient, clstm_zero_grad, clstm_model_backward, then one
 * clstm_adam_step on the flat parameter and gradient blocks (clstm_params,
 * clstm_grads). Adam's moment arrays are allocated once and the step count
 * runs on across epochs; nothing is allocated inside the training loop.
 *
 * Options:
 *   --epochs N  passes over the data, N >= 1 (default 1)
 *   --lr X      Adam's learning rate, finite and > 0 (default 0.001; other
 *               Adam settings are torch's defaults)
 *   --seed S    an unsigned 64-bit integer (default 0) seeding the dropout
 *               masks of models with dropout; training is otherwise
 *               deterministic
 * After each epoch one line goes to stderr: "epoch E loss L", L being the
 * mean loss over the epoch's predictions, measured as they were trained. At
 * the end the model is written to OUT with clstm_save, atomically (a failed
 * run never leaves a partial file, and leaves a previous OUT untouched).
 *
 * Exit status: 0 on success; 1 on a file, model or data error, or when the
 * loss becomes NaN or infinite (OUT is then not written); 2 on a usage
 * error. Messages go to stderr; nothing is written to stdout. */
#include <clstm.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 64 /* truncated-BPTT length */
#define USAGE \
    "usage: finetune MODEL.safetensors OUT.safetensors [--epochs N] [--lr X] [--seed S] < data"

static int usage(const char *problem, const char *arg) {
    if (problem)
        fprintf(stderr, "finetune: %s%s%s%s\n", problem, arg ? " '" : "", arg ? arg : "",
                arg ? "'" : "");
    fprintf(stderr, "%s\n", USAGE);
    return 2;
}

static int fail(const char *what, clstm_status st) {
    fprintf(stderr, "finetune: %s: %s\n", what, clstm_status_string(st));
    return 1;
}

/* splitmix64, for the dropout seeds. */
static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static int parse_u64(const char *s, uint64_t *out) {
    char *end;
    if (*s < '0' || *s > '9') return -1; /* no sign: strtoull accepts "-1" */
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = (uint64_t)v;
    return 0;
}

/* All of stdin in one NUL-terminated buffer (*size bytes before the NUL). */
static char *read_all(FILE *f, size_t *size) {
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        n += fread(buf + n, 1, cap - n - 1, f);
        if (ferror(f)) break;
        if (feof(f)) {
            buf[n] = '\0';
            *size = n;
            return buf;
        }
        char *bigger = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
        if (!bigger) break;
        buf = bigger;
        cap *= 2;
    }
    free(buf);
    return NULL;
}

static int blank(const char *s) {
    while (*s == ' ' || *s == '\t' || *s == '\r') s++;
    return *s == '\0';
}

/* Parse n numbers from *s into out (float or double), advancing *s past
 * them; 0 on success. */
static int parse_numbers(const char **s, int64_t n, int f64, void *out) {
    char *end;
    for (int64_t i = 0; i < n; i++) {
        errno = 0;
        const double v = strtod(*s, &end);
        if (end == *s || errno == ERANGE) return -1;
        if (f64)
            ((double *)out)[i] = v;
        else
            ((float *)out)[i] = (float)v;
        *s = end;
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *in_path = NULL, *out_path = NULL;
    uint64_t epochs = 1, seed = 0;
    double lr = 1e-3;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--epochs") == 0 || strcmp(a, "--lr") == 0 || strcmp(a, "--seed") == 0) {
            if (i + 1 >= argc) return usage("missing value after", a);
            const char *v = argv[++i];
            if (strcmp(a, "--epochs") == 0) {
                if (parse_u64(v, &epochs) != 0 || epochs < 1 || epochs > 1000000000)
                    return usage("--epochs: expected a whole number from 1 to 10^9, got", v);
            } else if (strcmp(a, "--lr") == 0) {
                char *end;
                errno = 0;
                lr = strtod(v, &end);
                if (end == v || *end || errno || !(lr > 0) || isinf(lr))
                    return usage("--lr: expected a finite number > 0, got", v);
            } else if (parse_u64(v, &seed) != 0) {
                return usage("--seed: expected an unsigned 64-bit integer, got", v);
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage("unknown option", a);
        } else if (!in_path) {
            in_path = a;
        } else if (!out_path) {
            out_path = a;
        } else {
            return usage("unexpected extra argument", a);
        }
    }
    if (!out_path) return usage(in_path ? "no output file given" : "no model file given", NULL);
    if (clstm_version_number() != CLSTM_VERSION_NUMBER) {
        fprintf(stderr, "finetune: built against clstm %s, linked with %s\n",
                CLSTM_VERSION_STRING, clstm_version_string());
        return 1;
    }

    clstm_model *m = NULL;
    const char *why = NULL;
    clstm_status st = clstm_load_ex(in_path, &m, &why);
    if (st != CLSTM_OK) {
        fprintf(stderr, "finetune: %s: %s%s%s\n", in_path, clstm_status_string(st),
                why ? ": " : "", why ? why : "");
        return 1;
    }
    int rc = 1;
    char *text = NULL;
    int32_t *ids = NULL;                  /* character model: (S + 1) tokens */
    void *xs = NULL, *ys = NULL;          /* real model: (S, D) inputs, (S, O) targets */
    int64_t *seq_start = NULL, *seq_len = NULL;
    void *out = NULL, *dout = NULL, *ws = NULL, *am = NULL, *av = NULL;
    void *h[2] = {NULL, NULL}, *c[2] = {NULL, NULL};
    clstm_config cfg = clstm_config_default();
    const char *vocab = NULL;
    size_t vocab_bytes = 0;
    if ((st = clstm_get_config(m, &cfg)) != CLSTM_OK) {
        rc = fail("clstm_get_config", st);
        goto done;
    }
    if ((st = clstm_get_vocab(m, &vocab, &vocab_bytes)) != CLSTM_OK) {
        rc = fail("clstm_get_vocab", st);
        goto done;
    }
    const int chars = cfg.encoding != CLSTM_ENCODING_NONE;
    const char *refusal = NULL;
    if (cfg.output_size == 0)
        refusal = "the model has no head (output_size 0), so there is nothing to train it "
                  "against; finetune trains character models and models with a regression "
                  "head";
    else if (cfg.clip > 0)
        refusal = "the model uses clip, and clstm has no backward pass for clipped gates";
    else if (cfg.bidirectional)
        refusal = "bidirectional models are not supported (truncated BPTT carries the state "
                  "forward)";
    else if (chars && (!vocab || cfg.output_size != cfg.vocab_size || !cfg.softmax))
        refusal = "a token model must have a character vocabulary and a softmax head of "
                  "vocab_size outputs (a character model) to be trained on text";
    else if (!chars && cfg.softmax)
        refusal = "a real-valued classifier (softmax head) is not supported; finetune "
                  "trains regression heads (softmax 0) with the mean squared error";
    if (refusal) {
        fprintf(stderr, "finetune: %s: cannot train this model: %s\n", in_path, refusal);
        goto done;
    }

    const int f64 = cfg.dtype == CLSTM_FLOAT64;
    const size_t elem = f64 ? sizeof(double) : sizeof(float);
    const int64_t D = cfg.input_size, H = cfg.hidden_size, L = cfg.num_layers;
    const int64_t R = cfg.proj_size > 0 ? cfg.proj_size : H, O = cfg.output_size;

    /* ------------------------------------------------ read the training data */
    size_t size = 0;
    text = read_all(stdin, &size);
    if (!text) {
        fprintf(stderr, "finetune: reading stdin: %s\n",
                ferror(stdin) ? strerror(errno) : "out of memory");
        goto done;
    }
    int64_t S = 0, nseq = 0; /* steps (predictions) and sequences */
    if (chars) {
        ids = malloc(sizeof(int32_t) * (size ? size : 1));
        seq_start = malloc(sizeof(int64_t));
        seq_len = malloc(sizeof(int64_t));
        if (!ids || !seq_start || !seq_len) {
            rc = fail("malloc", CLSTM_ERR_NOMEM);
            goto done;
        }
        int64_t n = 0;
        long line = 1;
        for (size_t pos = 0; pos < size;) {
            size_t used = 0;
            st = clstm_vocab_lookup(m, text + pos, size - pos, &ids[n], &used);
            if (st == CLSTM_ERR_ARG && used > 0) {
                if (used == 1 && (unsigned char)text[pos] < 0x20)
                    fprintf(stderr, "finetune: stdin line %ld: the character U+%04X is not in "
                                    "the model's vocabulary\n", line, (unsigned)text[pos]);
                else
                    fprintf(stderr, "finetune: stdin line %ld: the character '%.*s' is not in "
                                    "the model's vocabulary\n", line, (int)used, text + pos);
                goto done;
            }
            if (st == CLSTM_ERR_ARG) {
                fprintf(stderr, "finetune: stdin line %ld: invalid UTF-8\n", line);
                goto done;
            }
            if (st != CLSTM_OK) {
                rc = fail("clstm_vocab_lookup", st);
                goto done;
            }
            if (text[pos] == '\n') line++;
            pos += used;
            n++;
        }
        if (n < 2) {
            fprintf(stderr, "finetune: stdin: expected at least 2 characters of text, got "
                            "%lld\n", (long long)n);
            goto done;
        }
        S = n - 1; /* input ids[t], target ids[t + 1] */
        nseq = 1;
        seq_start[0] = 0;
        seq_len[0] = S;
    } else {
        if (strlen(text) != size) {
            fprintf(stderr, "finetune: stdin: unexpected NUL byte in numeric input\n");
            goto done;
        }
        /* count the steps and the sequences, then parse line by line */
        int in_seq = 0;
        for (char *p = text; *p;) {
            char *eol = strchr(p, '\n');
            if (eol) *eol = '\0';
            if (blank(p)) {
                in_seq = 0;
            } else {
                S++;
                if (!in_seq) nseq++;
                in_seq = 1;
            }
            if (eol) *eol = '\n';
            p = eol ? eol + 1 : p + strlen(p);
        }
        if (S == 0) {
            fprintf(stderr, "finetune: stdin: no training data (expected lines of %lld inputs "
                            "and %lld targets)\n", (long long)D, (long long)O);
            goto done;
        }
        xs = malloc(elem * (size_t)S * (size_t)D);
        ys = malloc(elem * (size_t)S * (size_t)O);
        seq_start = malloc(sizeof(int64_t) * (size_t)nseq);
        seq_len = malloc(sizeof(int64_t) * (size_t)nseq);
        if (!xs || !ys || !seq_start || !seq_len) {
            rc = fail("malloc", CLSTM_ERR_NOMEM);
            goto done;
        }
        int64_t s = 0, k = -1;
        in_seq = 0;
        long line = 1;
        for (char *p = text; *p; line++) {
            char *eol = strchr(p, '\n');
            if (eol) *eol = '\0';
            if (blank(p)) {
                in_seq = 0;
            } else {
                if (!in_seq) {
                    seq_start[++k] = s;
                    seq_len[k] = 0;
                }
                in_seq = 1;
                /* D inputs then O targets on one line */
                const char *q = p;
                if (parse_numbers(&q, D, f64, (char *)xs + elem * (size_t)(s * D)) != 0 ||
                    parse_numbers(&q, O, f64, (char *)ys + elem * (size_t)(s * O)) != 0 ||
                    !blank(q)) {
                    fprintf(stderr, "finetune: stdin line %ld: expected %lld numbers (%lld "
                                    "inputs, then %lld targets)\n", line,
                            (long long)(D + O), (long long)D, (long long)O);
                    goto done;
                }
                seq_len[k]++;
                s++;
            }
            p = eol ? eol + 1 : p + strlen(p);
        }
    }

    /* ------------------------------------------------------------- set-up */
    int64_t T = 0; /* the longest chunk */
    for (int64_t k = 0; k < nseq; k++)
        if (seq_len[k] > T) T = seq_len[k] < CHUNK ? seq_len[k] : CHUNK;
    size_t ws_bytes = 0, n_params = 0, n_grads = 0;
    void *params = NULL, *grads = NULL;
    if ((st = clstm_model_workspace_size(m, T, 1, 1, &ws_bytes)) != CLSTM_OK) {
        rc = fail("clstm_model_workspace_size", st);
        goto done;
    }
    if ((st = clstm_params(m, &params, &n_params)) != CLSTM_OK ||
        (st = clstm_grads(m, &grads, &n_grads)) != CLSTM_OK) {
        rc = fail("clstm_params/clstm_grads", st);
        goto done;
    }
    ws = malloc(ws_bytes);
    out = malloc(elem * (size_t)(T * O));  /* (T, 1, O) */
    dout = malloc(elem * (size_t)(T * O)); /* (T, 1, O) */
    am = calloc(n_params, elem);           /* Adam's moments, zero before step 1 */
    av = calloc(n_params, elem);
    for (int i = 0; i < 2; i++) { /* state ping-pong: h0/c0 -> hT/cT */
        h[i] = malloc(elem * (size_t)(L * R));
        c[i] = malloc(elem * (size_t)(L * H));
    }
    if (!ws || !out || !dout || !am || !av || !h[0] || !h[1] || !c[0] || !c[1]) {
        rc = fail("malloc", CLSTM_ERR_NOMEM);
        goto done;
    }
    clstm_adam_config adam = clstm_adam_config_default();
    adam.lr = lr;
    clstm_run_options opt = clstm_run_options_default();
    opt.train = 1;
    uint64_t rng = seed;
    int64_t step = 0;

    /* --------------------------------------------------------------- train */
    for (uint64_t epoch = 1; epoch <= epochs; epoch++) {
        double loss_sum = 0.0;
        for (int64_t k = 0; k < nseq; k++) {
            int cur = 0;
            memset(h[cur], 0, elem * (size_t)(L * R));
            memset(c[cur], 0, elem * (size_t)(L * H));
            for (int64_t t0 = 0; t0 < seq_len[k]; t0 += T) {
                const int64_t s0 = seq_start[k] + t0;
                const int64_t n = seq_len[k] - t0 < T ? seq_len[k] - t0 : T;
                double loss = 0.0;
                opt.dropout_seed = splitmix64(&rng);
                /* x: (n, 1, D) or ids: (n, 1), straight from the data arrays */
                const void *x = chars ? NULL : (char *)xs + elem * (size_t)(s0 * D);
                st = clstm_model_forward(m, n, 1, x, chars ? ids + s0 : NULL, h[cur], c[cur],
                                         out, h[1 - cur], c[1 - cur], &opt, ws, ws_bytes);
                if (st != CLSTM_OK) {
                    rc = fail("clstm_model_forward", st);
                    goto done;
                }
                if (chars)
                    st = clstm_loss_xent(cfg.dtype, n, 1, O, out, ids + s0 + 1, NULL, 0, &loss,
                                         dout);
                else
                    st = clstm_loss_mse(cfg.dtype, n, 1, O, out,
                                        (char *)ys + elem * (size_t)(s0 * O), NULL, 0, &loss,
                                        dout);
                if (st != CLSTM_OK) {
                    rc = fail(chars ? "clstm_loss_xent" : "clstm_loss_mse", st);
                    goto done;
                }
                if (!isfinite(loss)) {
                    fprintf(stderr, "finetune: epoch %llu: the loss is %g; stopping (try a "
                                    "smaller --lr); %s not written\n",
                            (unsigned long long)epoch, loss, out_path);
                    goto done;
                }
                loss_sum += loss * (double)n;
                if ((st = clstm_zero_grad(m)) != CLSTM_OK) {
                    rc = fail("clstm_zero_grad", st);
                    goto done;
                }
                st = clstm_model_backward(m, n, 1, dout, NULL, NULL, NULL, NULL, NULL, ws,
                                          ws_bytes);
                if (st != CLSTM_OK) {
                    rc = fail("clstm_model_backward", st);
                    goto done;
                }
                st = clstm_adam_step(cfg.dtype, n_params, params, grads, am, av, ++step, &adam);
                if (st != CLSTM_OK) {
                    rc = fail("clstm_adam_step", st);
                    goto done;
                }
                cur = 1 - cur;
            }
        }
        fprintf(stderr, "epoch %llu loss %.6f\n", (unsigned long long)epoch,
                loss_sum / (double)S);
    }

    if ((st = clstm_save(m, out_path)) != CLSTM_OK) {
        fprintf(stderr, "finetune: %s: %s\n", out_path, clstm_status_string(st));
        goto done;
    }
    rc = 0;
done:
    free(text);
    free(ids);
    free(xs);
    free(ys);
    free(seq_start);
    free(seq_len);
    free(out);
    free(dout);
    free(ws);
    free(am);
    free(av);
    for (int i = 0; i < 2; i++) {
        free(h[i]);
        free(c[i]);
    }
    clstm_free(m);
    return rc;
}
