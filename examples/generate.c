/* generate: sample text from a saved character model.
 *
 *     generate MODEL.safetensors [--prime TEXT] [--length N]
 *                                [--temperature T] [--seed S]
 *
 * The model must be a character model: token input (encoding onehot or
 * embedding) with a vocabulary, and a softmax head over that vocabulary
 * (output_size = vocab_size, softmax = 1), unidirectional. Such a model is
 * built and trained in Python, e.g.
 *     clstm.Model(vocab=..., hidden_size=..., output_size=len(vocab),
 *                 softmax=True)
 * and saved with clstm.save.
 *
 * What it does, in order:
 *   1. The prime TEXT (UTF-8; default: empty) is turned into token ids with
 *      clstm_vocab_lookup. An empty prime is replaced by the vocabulary's
 *      first character, because the model needs one input to predict from.
 *   2. The prime is run through the model in one clstm_model_forward call
 *      (T = number of prime characters, B = 1) from a zero state, keeping the
 *      final state.
 *   3. N characters (default 200; 0 is allowed) are then generated one at a
 *      time: the logits z of the last step give the probabilities
 *      p = softmax(z / T) (clstm_softmax), a character is drawn from p, and
 *      it is fed back as the next input (T = 1, state advanced in place).
 *      Temperature 0 means greedy decoding: the id with the largest logit,
 *      ties going to the lowest id. Temperature defaults to 1.
 *   4. stdout receives the prime (as used: the vocabulary's first character
 *      when it was empty) followed by the generated characters, and nothing
 *      else: no newline is added.
 *
 * Random numbers: splitmix64 (Steele, Lea and Flood, 2014) seeded with S
 * (default 0), an unsigned 64-bit integer. Each draw takes the next 64-bit
 * value, u = (value >> 11) * 2^-53 in [0, 1), and picks the first id whose
 * cumulative probability exceeds u. So a given model, prime, temperature and
 * seed always give the same text, on every machine.
 *
 * Nothing is allocated after set-up.
 *
 * Exit status: 0 on success; 1 on a file or model error (including a model
 * that is not a character model); 2 on a usage error: an unknown or
 * malformed option, a negative length, a temperature below 0 or NaN, a prime
 * character that is not in the vocabulary. Every message goes to stderr; on
 * a usage or file error nothing is written to stdout. */
#include <clstm.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE                                                                      \
    "usage: generate MODEL.safetensors [--prime TEXT] [--length N] [--temperature T] " \
    "[--seed S]"

static int usage(const char *problem, const char *arg) {
    if (problem)
        fprintf(stderr, "generate: %s%s%s%s\n", problem, arg ? " '" : "", arg ? arg : "",
                arg ? "'" : "");
    fprintf(stderr, "%s\n", USAGE);
    return 2;
}

static int fail(const char *what, clstm_status st) {
    fprintf(stderr, "generate: %s: %s\n", what, clstm_status_string(st));
    return 1;
}

/* splitmix64: a 64-bit state advanced by a constant, then mixed. */
static uint64_t splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* A whole decimal integer in [0, max]; 0 on success. */
static int parse_count(const char *s, long long max, long long *out) {
    char *end;
    if (*s < '0' || *s > '9') return -1; /* no sign, no blanks */
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v > max) return -1;
    *out = v;
    return 0;
}

static int parse_seed(const char *s, uint64_t *out) {
    char *end;
    if (*s < '0' || *s > '9') return -1; /* strtoull would accept "-1" */
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = (uint64_t)v;
    return 0;
}

static double get(const void *a, int f64, int64_t i) {
    return f64 ? ((const double *)a)[i] : (double)((const float *)a)[i];
}

/* The next token: greedy (argmax of the logits, lowest id on ties) when
 * temperature is 0, else a draw from softmax(logits / temperature). -1 when
 * the probabilities are not usable (NaN logits). */
static int32_t next_token(const void *logits, void *probs, int64_t V, clstm_dtype dtype,
                          double temperature, uint64_t *rng, clstm_status *st) {
    const int f64 = dtype == CLSTM_FLOAT64;
    *st = CLSTM_OK;
    if (temperature == 0.0) {
        int64_t best = 0;
        for (int64_t i = 1; i < V; i++)
            if (get(logits, f64, i) > get(logits, f64, best)) best = i;
        return isnan(get(logits, f64, best)) ? -1 : (int32_t)best;
    }
    *st = clstm_softmax(dtype, 1, V, logits, temperature, probs);
    if (*st != CLSTM_OK) return -1;
    const double u = (double)(splitmix64(rng) >> 11) * 0x1.0p-53;
    double cum = 0.0;
    int64_t last = -1; /* the last id of non-zero probability */
    for (int64_t i = 0; i < V; i++) {
        const double p = get(probs, f64, i);
        if (isnan(p)) return -1;
        if (p > 0) last = i;
        cum += p;
        if (u < cum && p > 0) return (int32_t)i;
    }
    return (int32_t)last; /* u beyond the rounded total */
}

int main(int argc, char **argv) {
    const char *path = NULL, *prime = "";
    long long length = 200;
    double temperature = 1.0;
    uint64_t seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has_value = strcmp(a, "--prime") == 0 || strcmp(a, "--length") == 0 ||
                        strcmp(a, "--temperature") == 0 || strcmp(a, "--seed") == 0;
        if (has_value) {
            if (i + 1 >= argc) return usage("missing value after", a);
            const char *v = argv[++i];
            if (strcmp(a, "--prime") == 0) {
                prime = v;
            } else if (strcmp(a, "--length") == 0) {
                if (parse_count(v, INT32_MAX, &length) != 0)
                    return usage("--length: expected a whole number from 0 to 2147483647, got", v);
            } else if (strcmp(a, "--temperature") == 0) {
                char *end;
                errno = 0;
                temperature = strtod(v, &end);
                if (end == v || *end || errno || !(temperature >= 0) || isinf(temperature))
                    return usage("--temperature: expected a finite number >= 0, got", v);
            } else if (parse_seed(v, &seed) != 0) {
                return usage("--seed: expected an unsigned 64-bit integer, got", v);
            }
        } else if (a[0] == '-' && a[1] != '\0') {
            return usage("unknown option", a);
        } else if (!path) {
            path = a;
        } else {
            return usage("unexpected extra argument", a);
        }
    }
    if (!path) return usage("no model file given", NULL);
    if (clstm_version_number() != CLSTM_VERSION_NUMBER) {
        fprintf(stderr, "generate: built against clstm %s, linked with %s\n",
                CLSTM_VERSION_STRING, clstm_version_string());
        return 1;
    }

    clstm_model *m = NULL;
    const char *why = NULL;
    clstm_status st = clstm_load_ex(path, &m, &why);
    if (st != CLSTM_OK) {
        fprintf(stderr, "generate: %s: %s%s%s\n", path, clstm_status_string(st),
                why ? ": " : "", why ? why : "");
        return 1;
    }
    int rc = 1;
    int32_t *ids = NULL;
    void *out = NULL, *probs = NULL, *h = NULL, *c = NULL, *ws = NULL;
    const char *vocab = NULL;
    size_t vocab_bytes = 0;
    clstm_config cfg = clstm_config_default();
    if ((st = clstm_get_config(m, &cfg)) != CLSTM_OK) {
        rc = fail("clstm_get_config", st);
        goto done;
    }
    if ((st = clstm_get_vocab(m, &vocab, &vocab_bytes)) != CLSTM_OK) {
        rc = fail("clstm_get_vocab", st);
        goto done;
    }
    if (cfg.encoding == CLSTM_ENCODING_NONE || !vocab || cfg.output_size != cfg.vocab_size ||
        !cfg.softmax) {
        fprintf(stderr,
                "generate: %s: not a character model (needs token input with a vocabulary "
                "and a softmax head of vocab_size outputs; this one has encoding %s, %s, "
                "output_size %lld, softmax %d)%s\n",
                path,
                cfg.encoding == CLSTM_ENCODING_NONE     ? "none"
                : cfg.encoding == CLSTM_ENCODING_ONEHOT ? "onehot"
                                                        : "embedding",
                vocab ? "a vocabulary" : "no vocabulary", (long long)cfg.output_size,
                cfg.softmax,
                cfg.encoding == CLSTM_ENCODING_NONE ? "; use `stream` for real-valued input"
                                                    : "");
        goto done;
    }
    if (cfg.bidirectional) {
        fprintf(stderr, "generate: %s: a bidirectional model cannot generate (the reverse "
                        "direction needs the end of the text)\n", path);
        goto done;
    }

    /* the prime as token ids; at most one id per byte */
    const size_t prime_bytes = strlen(prime);
    ids = malloc(sizeof(int32_t) * (prime_bytes ? prime_bytes : 1));
    if (!ids) {
        rc = fail("malloc", CLSTM_ERR_NOMEM);
        goto done;
    }
    int64_t P = 0;
    for (size_t pos = 0; pos < prime_bytes;) {
        size_t used = 0;
        st = clstm_vocab_lookup(m, prime + pos, prime_bytes - pos, &ids[P], &used);
        if (st == CLSTM_ERR_ARG && used > 0) {
            fprintf(stderr, "generate: --prime: the character '%.*s' (byte %zu) is not in the "
                            "model's vocabulary\n", (int)used, prime + pos, pos);
            rc = usage(NULL, NULL);
            goto done;
        }
        if (st == CLSTM_ERR_ARG) {
            fprintf(stderr, "generate: --prime: invalid UTF-8 at byte %zu\n", pos);
            rc = usage(NULL, NULL);
            goto done;
        }
        if (st != CLSTM_OK) {
            rc = fail("clstm_vocab_lookup", st);
            goto done;
        }
        pos += used;
        P++;
    }
    const char *prime_text = prime;
    size_t prime_len = prime_bytes;
    if (P == 0) { /* empty prime: start from the vocabulary's first character */
        ids[0] = 0;
        P = 1;
        if ((st = clstm_vocab_token(m, 0, &prime_text, &prime_len)) != CLSTM_OK) {
            rc = fail("clstm_vocab_token", st);
            goto done;
        }
    }

    const int64_t V = cfg.vocab_size, H = cfg.hidden_size, L = cfg.num_layers;
    const int64_t R = cfg.proj_size > 0 ? cfg.proj_size : H;
    const size_t elem = cfg.dtype == CLSTM_FLOAT64 ? sizeof(double) : sizeof(float);
    size_t ws_prime = 0, ws_step = 0;
    if ((st = clstm_model_workspace_size(m, P, 1, 0, &ws_prime)) != CLSTM_OK ||
        (st = clstm_model_workspace_size(m, 1, 1, 0, &ws_step)) != CLSTM_OK) {
        rc = fail("clstm_model_workspace_size", st);
        goto done;
    }
    const size_t ws_bytes = ws_prime > ws_step ? ws_prime : ws_step;
    out = malloc(elem * (size_t)(P * V)); /* (P, 1, V) logits of the prime */
    probs = malloc(elem * (size_t)V);
    h = calloc((size_t)(L * R), elem); /* zero initial state */
    c = calloc((size_t)(L * H), elem);
    ws = malloc(ws_bytes ? ws_bytes : 1);
    if (!out || !probs || !h || !c || !ws) {
        rc = fail("malloc", CLSTM_ERR_NOMEM);
        goto done;
    }

    const clstm_run_options opt = clstm_run_options_default(); /* inference */
    st = clstm_model_forward(m, P, 1, NULL, ids, h, c, out, h, c, &opt, ws, ws_bytes);
    if (st != CLSTM_OK) {
        rc = fail("clstm_model_forward", st);
        goto done;
    }
    /* the last step's logits, moved to the front of out */
    memmove(out, (char *)out + elem * (size_t)((P - 1) * V), elem * (size_t)V);

    if (fwrite(prime_text, 1, prime_len, stdout) != prime_len) goto write_error;
    uint64_t rng = seed;
    for (long long n = 0; n < length; n++) {
        const int32_t id = next_token(out, probs, V, cfg.dtype, temperature, &rng, &st);
        if (st != CLSTM_OK) {
            rc = fail("clstm_softmax", st);
            goto done;
        }
        if (id < 0) {
            fprintf(stderr, "\ngenerate: the model's outputs are NaN; stopping\n");
            goto done;
        }
        const char *tok;
        size_t tok_len;
        if ((st = clstm_vocab_token(m, id, &tok, &tok_len)) != CLSTM_OK) {
            rc = fail("clstm_vocab_token", st);
            goto done;
        }
        if (fwrite(tok, 1, tok_len, stdout) != tok_len) goto write_error;
        if (n + 1 == length) break; /* no need to run the last character */
        ids[0] = id;
        st = clstm_model_forward(m, 1, 1, NULL, ids, h, c, out, h, c, &opt, ws, ws_bytes);
        if (st != CLSTM_OK) {
            rc = fail("clstm_model_forward", st);
            goto done;
        }
    }
    if (fflush(stdout) != 0 || ferror(stdout)) goto write_error;
    rc = 0;
    goto done;
write_error:
    fprintf(stderr, "generate: writing stdout: %s\n", strerror(errno));
    rc = 1;
done:
    free(ids);
    free(out);
    free(probs);
    free(h);
    free(c);
    free(ws);
    clstm_free(m);
    return rc;
}
