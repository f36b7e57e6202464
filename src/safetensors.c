/* Models as files: clstm_save / clstm_load in the safetensors format.
 *
 * File: u64 little-endian N | N bytes of JSON header | data buffer. The header
 * maps tensor name -> {"dtype", "shape", "data_offsets": [begin, end]} (offsets
 * relative to the data buffer) plus "__metadata__" (string -> string: the
 * config). The loader trusts nothing: every size is checked before use, the
 * tensors must tile the data buffer exactly (no gap, no overlap, nothing after),
 * and every tensor of the configured model must be present exactly once with
 * its exact shape and dtype. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "internal.h"
#include "json.h"

#define ST_MAX_HEADER ((uint64_t)100000000) /* safetensors' own cap on N */
#define ST_MAX_TENSORS 4096
#define ST_MAX_META 80 /* the config's keys and CLSTM_MAX_METADATA of the user's */
#define ST_MAX_DIMS 8

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define ST_BIG_ENDIAN 1
#else
#define ST_BIG_ENDIAN 0
#endif

/* A tensor's element type in a file: the model dtypes, and int8. */
enum { ST_F32 = CLSTM_FLOAT32, ST_F64 = CLSTM_FLOAT64, ST_I8, ST_DTYPES };
static const char *const ST_DTYPE_NAMES[ST_DTYPES] = {"F32", "F64", "I8"};
static const unsigned ST_DTYPE_BYTES[ST_DTYPES] = {4, 8, 1};

typedef struct {
    const char *name;
    int dtype; /* ST_* */
    int ndim;
    uint64_t shape[ST_MAX_DIMS];
    uint64_t begin, end;
} st_tensor;

typedef struct {
    st_tensor *t; /* nt entries, capacity cap */
    size_t nt, cap;
    const char *key[ST_MAX_META], *val[ST_MAX_META];
    size_t nm;
    int have_meta;
    int nomem;       /* an allocation failed: NOMEM, not FORMAT */
    const char *why; /* static reason for a FORMAT error */
} st_header;

static int fail(st_header *h, const char *why) {
    if (!h->why) h->why = why;
    return -1;
}

static int oom(st_header *h) {
    h->nomem = 1;
    return fail(h, "out of memory");
}

/* ---------------------------------------------------------------- parsing */

static int parse_meta(clstm_json *j, st_header *h) {
    if (h->have_meta) return fail(h, "duplicate __metadata__");
    h->have_meta = 1;
    if (!clstm_json_accept(j, '{')) return fail(h, "__metadata__ is not an object");
    if (clstm_json_accept(j, '}')) return 0;
    do {
        const char *k, *v;
        if (clstm_json_string(j, &k) || !clstm_json_accept(j, ':'))
            return fail(h, "malformed __metadata__ key");
        if (clstm_json_string(j, &v))
            return fail(h, "a __metadata__ value is not a valid JSON string (or holds U+0000)");
        for (size_t i = 0; i < h->nm; i++)
            if (strcmp(h->key[i], k) == 0) return fail(h, "duplicate __metadata__ key");
        if (h->nm == ST_MAX_META) return fail(h, "too many __metadata__ entries");
        h->key[h->nm] = k;
        h->val[h->nm++] = v;
    } while (clstm_json_accept(j, ','));
    return clstm_json_accept(j, '}') ? 0 : fail(h, "malformed __metadata__ object");
}

/* '[' uint (',' uint)* ']' with at most `max` elements (at least `min`). */
static int parse_uints(clstm_json *j, uint64_t *v, int min, int max, int *n) {
    *n = 0;
    if (!clstm_json_accept(j, '[')) return -1;
    if (clstm_json_accept(j, ']')) return min > 0 ? -1 : 0;
    do {
        if (*n == max || clstm_json_uint(j, &v[*n])) return -1;
        (*n)++;
    } while (clstm_json_accept(j, ','));
    return clstm_json_accept(j, ']') && *n >= min ? 0 : -1;
}

static int parse_tensor(clstm_json *j, st_header *h, const char *name) {
    st_tensor t;
    memset(&t, 0, sizeof t);
    t.name = name;
    unsigned seen = 0;
    if (!clstm_json_accept(j, '{')) return fail(h, "a tensor entry is not an object");
    do {
        const char *k, *v;
        uint64_t off[2];
        int n;
        unsigned bit;
        if (clstm_json_string(j, &k) || !clstm_json_accept(j, ':'))
            return fail(h, "malformed tensor entry");
        if (strcmp(k, "dtype") == 0) {
            bit = 1;
            if (clstm_json_string(j, &v)) return fail(h, "tensor dtype is not a string");
            for (t.dtype = 0; t.dtype < ST_DTYPES; t.dtype++)
                if (strcmp(v, ST_DTYPE_NAMES[t.dtype]) == 0) break;
            if (t.dtype == ST_DTYPES) return fail(h, "tensor dtype is not F32, F64 or I8");
        } else if (strcmp(k, "shape") == 0) {
            bit = 2;
            if (parse_uints(j, t.shape, 0, ST_MAX_DIMS, &t.ndim))
                return fail(h, "tensor shape is not a list of at most 8 integers");
        } else if (strcmp(k, "data_offsets") == 0) {
            bit = 4;
            if (parse_uints(j, off, 2, 2, &n) || off[1] < off[0])
                return fail(h, "data_offsets is not [begin, end] with begin <= end");
            t.begin = off[0];
            t.end = off[1];
        } else {
            return fail(h, "unknown field in a tensor entry");
        }
        if (seen & bit) return fail(h, "duplicate field in a tensor entry");
        seen |= bit;
    } while (clstm_json_accept(j, ','));
    if (!clstm_json_accept(j, '}')) return fail(h, "malformed tensor entry");
    if (seen != 7) return fail(h, "a tensor entry lacks dtype, shape or data_offsets");
    for (size_t i = 0; i < h->nt; i++)
        if (strcmp(h->t[i].name, name) == 0) return fail(h, "duplicate tensor name");
    if (h->nt == ST_MAX_TENSORS) return fail(h, "too many tensors");
    if (h->nt == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 16;
        st_tensor *p = realloc(h->t, cap * sizeof *p);
        if (!p) return oom(h);
        h->t = p;
        h->cap = cap;
    }
    h->t[h->nt++] = t;
    return 0;
}

static int parse_header(const unsigned char *s, size_t n, char *arena, st_header *h) {
    clstm_json j;
    clstm_json_init(&j, s, n, arena, n + 1);
    if (n == 0 || s[0] != '{' || !clstm_json_accept(&j, '{'))
        return fail(h, "header does not start with '{' (not a JSON object)"); /* as safetensors */
    if (!clstm_json_accept(&j, '}')) {
        do {
            const char *k;
            if (clstm_json_string(&j, &k) || !clstm_json_accept(&j, ':'))
                return fail(h, "malformed header key");
            if (strcmp(k, "__metadata__") == 0 ? parse_meta(&j, h) : parse_tensor(&j, h, k))
                return -1;
        } while (clstm_json_accept(&j, ','));
        if (!clstm_json_accept(&j, '}')) return fail(h, "malformed header object");
    }
    return clstm_json_at_end(&j) ? 0 : fail(h, "bytes after the header's JSON object");
}

/* ------------------------------------------------------------ the config */

static const st_tensor *find(const st_header *h, const char *name) {
    for (size_t i = 0; i < h->nt; i++)
        if (strcmp(h->t[i].name, name) == 0) return &h->t[i];
    return NULL;
}

static const char *meta(const st_header *h, const char *key) {
    for (size_t i = 0; i < h->nm; i++)
        if (strcmp(h->key[i], key) == 0) return h->val[i];
    return NULL;
}

/* A decimal integer 0..2^62, digits only. */
static int parse_int(const char *s, int64_t *out) {
    int64_t v = 0;
    if (!*s) return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || v > ((int64_t)1 << 62) / 10) return -1;
        v = v * 10 + (*s - '0');
    }
    *out = v;
    return 0;
}

static int parse_bool(const char *s, int *out) {
    if (!strcmp(s, "1") || !strcmp(s, "true") || !strcmp(s, "True")) *out = 1;
    else if (!strcmp(s, "0") || !strcmp(s, "false") || !strcmp(s, "False")) *out = 0;
    else return -1;
    return 0;
}

/* A finite decimal number (no leading space, sign or hex). */
static int parse_real(const char *s, double *out) {
    char *e;
    if (!((*s >= '0' && *s <= '9') || *s == '.') || strchr(s, 'x') || strchr(s, 'X')) return -1;
    errno = 0;
    double v = strtod(s, &e);
    if (*e || errno || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* The config's keys in a model file's __metadata__, in the order written:
 * the one list the writer, the reader and clstm_metadata_reserved use. */
typedef enum {
    KEY_INT,
    KEY_BOOL,
    KEY_REAL,
    KEY_FRACTION,
    KEY_DTYPE,
    KEY_ENCODING,
    KEY_ATTENTION,
    KEY_GATE
} key_kind;
typedef struct {
    const char *name;
    key_kind kind;
    size_t at; /* offsetof the field in clstm_config */
    const char *bad; /* the reader's message for a malformed value */
} config_key;

#define KEY(field, kind, bad) {#field, kind, offsetof(clstm_config, field), bad}
static const config_key CONFIG_KEYS[] = {
    KEY(input_size, KEY_INT, "input_size is not a decimal integer"),
    KEY(hidden_size, KEY_INT, "hidden_size is not a decimal integer"),
    KEY(num_layers, KEY_INT, "num_layers is not a decimal integer"),
    KEY(proj_size, KEY_INT, "proj_size is not a decimal integer"),
    KEY(bidirectional, KEY_BOOL, "bidirectional is not 0 or 1"),
    KEY(dropout, KEY_FRACTION, "dropout is not a number in [0, 1)"),
    KEY(peepholes, KEY_BOOL, "peepholes is not 0 or 1"),
    KEY(input_forget, KEY_BOOL, "input_forget is not 0 or 1"),
    KEY(clip, KEY_REAL, "clip is not a non-negative number"),
    KEY(dtype, KEY_DTYPE, "dtype is not float32 or float64"),
    KEY(encoding, KEY_ENCODING, "encoding is not \"none\", \"onehot\" or \"embedding\""),
    KEY(vocab_size, KEY_INT, "vocab_size is not a decimal integer"),
    KEY(output_size, KEY_INT, "output_size is not a decimal integer"),
    KEY(softmax, KEY_BOOL, "softmax is not 0 or 1"),
    /* an encoder-decoder's, written only with target_vocab > 0 (absent: 0) */
    KEY(target_vocab, KEY_INT, "target_vocab is not a decimal integer"),
    KEY(target_embedding, KEY_INT, "target_embedding is not a decimal integer"),
    KEY(decoder_hidden, KEY_INT, "decoder_hidden is not a decimal integer"),
    KEY(decoder_layers, KEY_INT, "decoder_layers is not a decimal integer"),
    KEY(attention, KEY_ATTENTION, "attention is not \"general\" or \"dot\""),
    KEY(attentional_size, KEY_INT, "attentional_size is not a decimal integer"),
    /* a reverse-only model's, written in versions 3 and 4 (absent: 0) */
    KEY(reverse, KEY_BOOL, "reverse is not 0 or 1"),
    /* hard sigmoid gates, written in version 4 (absent: sigmoid) */
    KEY(gate_activation, KEY_GATE, "gate_activation is not \"sigmoid\" or \"hard_sigmoid\""),
    KEY(gate_alpha, KEY_REAL, "gate_alpha is not a number"),
    KEY(gate_beta, KEY_REAL, "gate_beta is not a number"),
};
/* the first of the decoder's keys, the reverse key, the first gate key */
#define FIRST_DECODER_KEY 14
#define REVERSE_KEY 20
#define FIRST_GATE_KEY 21
#undef KEY
#define N_CONFIG_KEYS (sizeof CONFIG_KEYS / sizeof CONFIG_KEYS[0])
static const char *const ENCODINGS[3] = {"none", "onehot", "embedding"};
static const char *const DTYPES[2] = {"float32", "float64"};
static const char *const ATTENTIONS[2] = {"general", "dot"};
static const char *const GATES[2] = {"sigmoid", "hard_sigmoid"};
static const char *const VERSIONS[4] = {"1", "2", "3", "4"};

/* Index of s in names[0..n), or -1. */
static int name_index(const char *s, const char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

/* Parse value v of key k into its field of c; 0, or -1 when malformed. */
static int parse_key(const config_key *k, const char *v, clstm_config *c) {
    void *field = (char *)c + k->at;
    int i;
    switch (k->kind) {
    case KEY_INT: return parse_int(v, (int64_t *)field);
    case KEY_BOOL: return parse_bool(v, (int *)field);
    case KEY_REAL: return parse_real(v, (double *)field);
    case KEY_FRACTION: return (parse_real(v, (double *)field) || *(double *)field >= 1.0) ? -1 : 0;
    case KEY_DTYPE:
        if ((i = name_index(v, DTYPES, 2)) < 0) return -1;
        *(clstm_dtype *)field = (clstm_dtype)i;
        return 0;
    case KEY_ENCODING:
        if ((i = name_index(v, ENCODINGS, 3)) < 0) return -1;
        *(clstm_encoding *)field = (clstm_encoding)i;
        return 0;
    case KEY_ATTENTION:
        if ((i = name_index(v, ATTENTIONS, 2)) < 0) return -1;
        *(int *)field = i;
        return 0;
    case KEY_GATE:
        if ((i = name_index(v, GATES, 2)) < 0) return -1;
        *(int *)field = i;
        return 0;
    }
    return -1;
}

/* Key k's value in c as the writer spells it, into buf (64 bytes). */
static void format_key(const config_key *k, const clstm_config *c, char *buf) {
    const void *field = (const char *)c + k->at;
    switch (k->kind) {
    case KEY_INT: snprintf(buf, 64, "%lld", (long long)*(const int64_t *)field); break;
    case KEY_BOOL: snprintf(buf, 64, "%d", *(const int *)field); break;
    case KEY_REAL:
    case KEY_FRACTION: snprintf(buf, 64, "%.17g", *(const double *)field); break;
    case KEY_DTYPE: snprintf(buf, 64, "%s", DTYPES[*(const clstm_dtype *)field]); break;
    case KEY_ENCODING: snprintf(buf, 64, "%s", ENCODINGS[*(const clstm_encoding *)field]); break;
    case KEY_ATTENTION: snprintf(buf, 64, "%s", ATTENTIONS[*(const int *)field]); break;
    case KEY_GATE: snprintf(buf, 64, "%s", GATES[*(const int *)field]); break;
    }
}

/* Whether CONFIG_KEYS[i] is config in a file of format version `version`
 * of a model with (or without) a decoder: the decoder's keys where it has
 * one (version 2, or 3 and 4 with target_vocab), "reverse" from version 3,
 * the gate keys in version 4; in a lower version those names are user
 * metadata. */
static int config_key_in(size_t i, int version, int decoder) {
    return i < FIRST_DECODER_KEY || (i < REVERSE_KEY    ? decoder
                                     : i < FIRST_GATE_KEY ? version >= 3
                                                          : version >= 4);
}

/* The format version of m's file: the lowest that holds its config. */
static int file_version(const clstm_config *c) {
    return c->gate_activation != CLSTM_GATE_SIGMOID ? 4 : c->reverse ? 3 : c->target_vocab ? 2 : 1;
}

int clstm_metadata_reserved(const clstm_model *m, const char *key) {
    static const char *const file_keys[4] = {"format", "format_version", "vocab", "quantized"};
    /* from version 3 a file's target_vocab makes it an encoder-decoder, so
     * the decoder's names are reserved there even without a decoder */
    const int version = file_version(&m->cfg);
    for (size_t i = 0; i < N_CONFIG_KEYS; i++)
        if (config_key_in(i, version, m->cfg.target_vocab > 0 || version >= 3) &&
            strcmp(key, CONFIG_KEYS[i].name) == 0)
            return 1;
    return name_index(key, file_keys, 4) >= 0;
}

/* Sizes absent from the metadata are read off the tensors: D from
 * weight_ih_l0 (4H, D), H from weight_hh_l0 (4H, R), L from the count of
 * weight_ih_l{k}. */
static int infer_size(const st_header *h, const char *key, int64_t *v) {
    const st_tensor *t;
    if (strcmp(key, "num_layers") == 0) {
        char name[CLSTM_NAME_MAX];
        int64_t k = 0;
        do snprintf(name, sizeof name, "weight_ih_l%lld", (long long)k);
        while (find(h, name) && ++k < ST_MAX_TENSORS);
        *v = k;
        return k > 0 ? 0 : -1;
    }
    int ih = strcmp(key, "input_size") == 0;
    t = find(h, ih ? "weight_ih_l0" : "weight_hh_l0");
    if (!t || t->ndim != 2 || t->shape[0] % 4 || t->shape[ih] > ((uint64_t)1 << 62)) return -1;
    *v = ih ? (int64_t)t->shape[1] : (int64_t)(t->shape[0] / 4);
    return 0;
}

/* A quantized model's file (clstm.h: "quantized": "int8"); -1 on a bad
 * value. */
static int quantized_file(st_header *h) {
    const char *v = meta(h, "quantized");
    if (!v) return 0;
    return strcmp(v, "int8") == 0 ? 1 : fail(h, "__metadata__ quantized is not \"int8\"");
}

static int config_from_meta(st_header *h, clstm_config *c, int quantized) {
    static const char *const sizes[3] = {"input_size", "hidden_size", "num_layers"};
    int64_t *const size_at[3] = {&c->input_size, &c->hidden_size, &c->num_layers};
    const char *v;
    *c = clstm_config_default();
    if ((v = meta(h, "format")) && strcmp(v, "clstm") != 0)
        return fail(h, "__metadata__ format is not \"clstm\"");
    /* version 2: an encoder-decoder, whose decoder keys are config; version
     * 3: a reverse model ("reverse" is config; the decoder's keys are where
     * target_vocab is given); in version 1 (or none) those names are user
     * metadata */
    const char *vs = meta(h, "format_version");
    const int version = vs ? name_index(vs, VERSIONS, 4) + 1 : 1;
    if (version == 0) return fail(h, "unsupported __metadata__ format_version");
    if (version == 2 && !meta(h, "target_vocab"))
        return fail(h, "format_version 2 (an encoder-decoder) without target_vocab");
    if (version >= 3 && !meta(h, "reverse"))
        return fail(h, "format_version 3 or 4 without reverse");
    if (version >= 4 &&
        !(meta(h, "gate_activation") && meta(h, "gate_alpha") && meta(h, "gate_beta")))
        return fail(h, "format_version 4 without gate_activation, gate_alpha and gate_beta");
    const int decoder = version == 2 || (version >= 3 && meta(h, "target_vocab"));
    if (decoder && quantized) return fail(h, "an encoder-decoder cannot be quantized");
    for (size_t i = 0; i < N_CONFIG_KEYS; i++)
        if (config_key_in(i, version, decoder) && (v = meta(h, CONFIG_KEYS[i].name)) &&
            parse_key(&CONFIG_KEYS[i], v, c))
            return fail(h, CONFIG_KEYS[i].bad);
    /* what the metadata leaves out is read off the tensors */
    for (int i = 0; i < 3; i++)
        if (!meta(h, sizes[i]) && infer_size(h, sizes[i], size_at[i]))
            return fail(h, "input_size, hidden_size or num_layers is missing and not "
                           "inferable from the tensors");
    if (!meta(h, "encoding") && find(h, "embedding.weight"))
        c->encoding = CLSTM_ENCODING_EMBEDDING;
    const st_tensor *emb = find(h, "embedding.weight"), *head = find(h, "head.weight");
    const int vocab_given = meta(h, "vocab_size") != NULL;
    if (!vocab_given && c->encoding == CLSTM_ENCODING_ONEHOT) {
        c->vocab_size = c->input_size;
    } else if (!vocab_given && c->encoding == CLSTM_ENCODING_EMBEDDING) {
        if (!emb || emb->ndim != 2 || emb->shape[0] > ((uint64_t)1 << 62))
            return fail(h, "vocab_size is missing and embedding.weight is not (V, D)");
        c->vocab_size = (int64_t)emb->shape[0];
    }
    if (!meta(h, "output_size") && head) {
        if (head->ndim != 2 || head->shape[0] > ((uint64_t)1 << 62))
            return fail(h, "head.weight is not (O, N*R)");
        c->output_size = (int64_t)head->shape[0];
    }
    if (quantized) /* its tensors' dtypes are checked one by one (fill_params) */
        return c->dtype == CLSTM_FLOAT32 ? 0 : fail(h, "a quantized model's dtype is not float32");
    if (!meta(h, "dtype") && h->nt > 0 && h->t[0].dtype != ST_I8)
        c->dtype = (clstm_dtype)h->t[0].dtype; /* (I8 without "quantized": refused below) */
    for (size_t i = 0; i < h->nt; i++)
        if (h->t[i].dtype != (int)c->dtype)
            return fail(h, h->t[i].dtype == ST_I8
                               ? "an I8 tensor in a file without __metadata__ quantized \"int8\""
                               : "a tensor's dtype differs from the model's");
    return 0;
}

/* --------------------------------------------------------------- loading */

static int by_begin(const void *a, const void *b) {
    const st_tensor *x = *(const st_tensor *const *)a, *y = *(const st_tensor *const *)b;
    return x->begin < y->begin ? -1 : x->begin > y->begin;
}

/* The tensors must tile [0, size) exactly, each (end - begin) matching its
 * shape and dtype. */
static int check_tiling(st_header *h, uint64_t size) {
    const st_tensor **s = malloc((h->nt ? h->nt : 1) * sizeof *s);
    if (!s) return oom(h);
    for (size_t i = 0; i < h->nt; i++) s[i] = &h->t[i];
    qsort(s, h->nt, sizeof *s, by_begin);
    uint64_t at = 0;
    int bad = 0;
    for (size_t i = 0; i < h->nt && !bad; i++) {
        uint64_t bytes = ST_DTYPE_BYTES[s[i]->dtype];
        for (int d = 0; d < s[i]->ndim; d++)
            bad |= __builtin_mul_overflow(bytes, s[i]->shape[d], &bytes);
        bad |= s[i]->begin != at || s[i]->end - s[i]->begin != bytes;
        at = s[i]->end;
    }
    free(s);
    if (bad) return fail(h, "tensor data_offsets do not match shapes or do not tile the data "
                            "buffer (gap, overlap or out of bounds)");
    return at == size ? 0 : fail(h, "the data buffer's size differs from the tensors' total");
}

/* The file's tensor `name` with the given dtype, rank and shape, or NULL
 * (and the reason in h). */
static const st_tensor *find_exact(st_header *h, const char *name, int dtype, int ndim,
                                   const int64_t shape[2]) {
    const st_tensor *t = find(h, name);
    if (!t) {
        fail(h, "a tensor of the model is missing, or an unknown one present");
        return NULL;
    }
    if (t->ndim != ndim || t->shape[0] != (uint64_t)shape[0] ||
        (ndim == 2 && t->shape[1] != (uint64_t)shape[1])) {
        fail(h, "a tensor's shape differs from the model's");
        return NULL;
    }
    if (t->dtype != dtype) {
        fail(h, "a tensor's dtype is not the model's (a quantized model: I8 weights, F32 "
                "scales, biases and peepholes)");
        return NULL;
    }
    return t;
}

/* A quantized tensor: its I8 weights and its "<name>.scale" (F32, one per
 * row), checked (clstm_q8_attach) and given to m. */
static int fill_int8(st_header *h, clstm_model *m, int64_t i, const unsigned char *data) {
    const clstm_tensor_info *info = &m->tensors[i].info;
    char name[CLSTM_NAME_MAX + 8];
    snprintf(name, sizeof name, "%s.scale", info->name);
    const int64_t rows[2] = {info->shape[0], 1};
    const st_tensor *q = find_exact(h, info->name, ST_I8, 2, info->shape);
    const st_tensor *sc = q ? find_exact(h, name, ST_F32, 1, rows) : NULL;
    if (!sc) return -1;
    float *scale = malloc(sizeof(float) * (size_t)rows[0]); /* aligned for the checks */
    if (!scale) return oom(h);
    memcpy(scale, data + sc->begin, sc->end - sc->begin);
    const clstm_status st = clstm_q8_attach(m, i, (const int8_t *)(data + q->begin), scale);
    free(scale);
    if (st == CLSTM_ERR_NOMEM) return oom(h);
    if (st == CLSTM_ERR_UNSUPPORTED)
        return fail(h, "a quantized matrix has over 65536 columns (its int32 sums could "
                       "overflow)");
    if (st != CLSTM_OK)
        return fail(h, "a quantized tensor has a scale that is zero, negative, NaN or Inf, "
                       "or a weight of -128");
    return 0;
}

/* Copy each of the model's tensors from the file, checking name, shape and
 * dtype; a quantized model's int8 tensors and their scales by fill_int8. */
static int fill_params(st_header *h, clstm_model *m, const unsigned char *data) {
    const int64_t n = m->n_tensors;
    int64_t expect = n;
    for (int64_t i = 0; m->quantized && i < n; i++)
        expect += clstm_kind_quantized(m->tensors[i].kind);
    if ((size_t)expect != h->nt)
        return fail(h, "the file's tensors are not the model's: missing or unknown names");
    for (int64_t i = 0; i < n; i++) {
        const clstm_tensor_info *info = &m->tensors[i].info;
        if (m->quantized && clstm_kind_quantized(m->tensors[i].kind)) {
            if (fill_int8(h, m, i, data)) return -1;
            continue;
        }
        const st_tensor *t = find_exact(h, info->name, (int)m->cfg.dtype, info->ndim, info->shape);
        if (!t) return -1;
        memcpy((char *)m->params + info->offset * m->elem, data + t->begin, t->end - t->begin);
    }
    return 0;
}

static clstm_status load_buffer(const unsigned char *buf, size_t size, clstm_model **out,
                                const char **why) {
    st_header h;
    memset(&h, 0, sizeof h);
    if (size < 8) h.why = "file shorter than its 8-byte header length";
    uint64_t n = 0;
    for (int i = 7; i >= 0 && !h.why; i--) n = (n << 8) | buf[i];
    if (!h.why && (n == 0 || n > ST_MAX_HEADER || n > size - 8))
        h.why = "header length is zero, over 10^8 bytes or beyond the end of the file";
    if (h.why) {
        if (why) *why = h.why;
        return CLSTM_ERR_FORMAT;
    }
    clstm_status st = CLSTM_ERR_FORMAT;
    char *arena = malloc((size_t)n + 1);
    clstm_config cfg;
    size_t count;
    const char *vocab;
    clstm_model *m = NULL;
    int quantized = 0;
    if (!arena) {
        st = CLSTM_ERR_NOMEM;
    } else if (!parse_header(buf + 8, (size_t)n, arena, &h) &&
               !check_tiling(&h, size - 8 - n) && (quantized = quantized_file(&h)) >= 0 &&
               !config_from_meta(&h, &cfg, quantized)) {
        /* the data size first: a config from the file must not make us
         * allocate more than the file holds (a quantized file: at least a
         * byte per parameter; the exact count is fill_params' check) */
        st = clstm_param_count(&cfg, &count);
        if (st == CLSTM_OK && (quantized ? count > size - 8 - n
                                         : count * (cfg.dtype == CLSTM_FLOAT64 ? 8 : 4) !=
                                               size - 8 - n)) {
            st = CLSTM_ERR_FORMAT;
            fail(&h, "the data size does not match the configured model (its config, or "
                     "tensors missing or unknown)");
        }
        if (st == CLSTM_OK) st = clstm_create(&cfg, 0, &m);
        if (st == CLSTM_OK && quantized) clstm_q8_begin(m);
        if (st != CLSTM_OK && st != CLSTM_ERR_NOMEM) {
            st = CLSTM_ERR_FORMAT;
            fail(&h, "the __metadata__ config is invalid (sizes, proj_size, dropout, clip, "
                     "encoding, vocab_size, output_size, softmax, the gate's or the decoder's)");
        } else if (st == CLSTM_OK && fill_params(&h, m, buf + 8 + n)) {
            st = CLSTM_ERR_FORMAT;
        } else if (st == CLSTM_OK && (vocab = meta(&h, "vocab")) &&
                   (st = clstm_set_vocab(m, vocab, strlen(vocab))) != CLSTM_OK) {
            if (st != CLSTM_ERR_NOMEM) st = CLSTM_ERR_FORMAT;
            fail(&h, "vocab is not vocab_size distinct characters of a token model");
        }
        for (size_t i = 0; st == CLSTM_OK && i < h.nm; i++) {
            if (clstm_metadata_reserved(m, h.key[i])) continue;
            st = clstm_set_metadata(m, h.key[i], h.val[i]);
            if (st != CLSTM_OK && st != CLSTM_ERR_NOMEM) {
                st = CLSTM_ERR_FORMAT;
                fail(&h, "more than 48 user metadata entries, or one too long");
            }
        }
        if (st != CLSTM_OK) {
            clstm_free(m);
            m = NULL;
        }
    }
    if (h.nomem) st = CLSTM_ERR_NOMEM;
    if (st == CLSTM_ERR_NOMEM) h.why = "out of memory";
    free(arena);
    free(h.t);
    if (why) *why = st == CLSTM_OK ? NULL : h.why;
    *out = m;
    return st;
}

clstm_status clstm_load_buffer_ex(const void *data, size_t size, clstm_model **out,
                                  const char **why) {
    if (why) *why = NULL;
    if (out) *out = NULL;
    if (!data || !out) return CLSTM_ERR_NULL;
    if (ST_BIG_ENDIAN) return CLSTM_ERR_UNSUPPORTED;
    return load_buffer(data, size, out, why);
}

clstm_status clstm_load_buffer(const void *data, size_t size, clstm_model **out) {
    return clstm_load_buffer_ex(data, size, out, NULL);
}

clstm_status clstm_load_ex(const char *path, clstm_model **out, const char **why) {
    if (why) *why = NULL;
    if (out) *out = NULL;
    if (!path || !out) return CLSTM_ERR_NULL;
    if (ST_BIG_ENDIAN) return CLSTM_ERR_UNSUPPORTED;
    FILE *f = fopen(path, "rb");
    struct stat sb;
    if (!f || fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > SIZE_MAX) {
        if (why) *why = f ? "not a regular file" : "cannot open the file";
        if (f) fclose(f);
        return CLSTM_ERR_IO;
    }
    size_t size = (size_t)sb.st_size;
    unsigned char *buf = malloc(size ? size : 1);
    clstm_status st;
    if (!buf) {
        st = CLSTM_ERR_NOMEM;
    } else if (fread(buf, 1, size, f) != size || ferror(f)) {
        st = CLSTM_ERR_IO;
        if (why) *why = "cannot read the file";
    } else {
        st = load_buffer(buf, size, out, why);
    }
    free(buf);
    fclose(f);
    return st;
}

clstm_status clstm_load(const char *path, clstm_model **out) {
    return clstm_load_ex(path, out, NULL);
}

/* ---------------------------------------------------------------- saving */

/* Append ,"key":"value" to s at len, JSON-escaped (quote, backslash and
 * control characters; UTF-8 passes through); returns the new length. The
 * caller sized s for 6 bytes per input byte plus 16. */
static size_t put_pair(char *s, size_t len, const char *key, const char *value) {
    const char *parts[2] = {key, value};
    s[len++] = ',';
    for (int p = 0; p < 2; p++) {
        s[len++] = '"';
        for (const unsigned char *c = (const unsigned char *)parts[p]; *c; c++) {
            if (*c == '"' || *c == '\\') {
                s[len++] = '\\';
                s[len++] = (char)*c;
            } else if (*c < 0x20) {
                static const char hex[] = "0123456789abcdef";
                memcpy(s + len, "\\u00", 4);
                s[len + 4] = hex[*c >> 4];
                s[len + 5] = hex[*c & 15];
                len += 6;
            } else {
                s[len++] = (char)*c;
            }
        }
        s[len++] = '"';
        if (p == 0) s[len++] = ':';
    }
    return len;
}

/* One tensor of the file: its entry in the header and its bytes. */
typedef struct {
    char name[CLSTM_NAME_MAX + 8];
    int dtype; /* ST_* */
    int ndim;
    int64_t shape[2];
    const void *data;
    size_t bytes;
} st_entry;

/* The file's tensors in data order: a float model's in block order; a
 * quantized model's float32 tensors (biases, peepholes, head.bias), then
 * the scales of its int8 tensors, then the int8 tensors, each group in
 * block order, so that every F32 tensor is 4-byte aligned in the file.
 * Writes m's count of entries into *count; e may be NULL (count only). */
static void file_entries(const clstm_model *m, st_entry *e, size_t *count) {
    size_t k = 0;
    for (int pass = 0; pass < (m->quantized ? 3 : 1); pass++)
        for (int64_t i = 0; i < m->n_tensors; i++) {
            const clstm_tensor *t = &m->tensors[i];
            const int q8 = m->quantized && clstm_kind_quantized(t->kind);
            if (q8 ? pass == 0 : pass > 0) continue; /* pass 0: float; 1, 2: int8 */
            if (e) {
                st_entry *x = &e[k];
                const int scale = pass == 1, weights = pass == 2;
                snprintf(x->name, sizeof x->name, "%s%s", t->info.name, scale ? ".scale" : "");
                x->dtype = weights ? ST_I8 : scale ? ST_F32 : (int)m->cfg.dtype;
                x->ndim = scale ? 1 : t->info.ndim;
                x->shape[0] = t->info.shape[0];
                x->shape[1] = scale ? 1 : t->info.shape[1];
                x->data = weights ? (const void *)t->q8->q
                          : scale ? (const void *)t->q8->scale
                                  : (const void *)((const char *)m->params + t->info.offset * m->elem);
                x->bytes = (size_t)(x->shape[0] * x->shape[1]) * ST_DTYPE_BYTES[x->dtype];
            }
            k++;
        }
    *count = k;
}

/* The header: JSON padded with spaces so that 8 + N is a multiple of 8.
 * Returns a malloc'd buffer of *n bytes, or NULL (out of memory). */
static char *build_header(const clstm_model *m, const st_entry *e, size_t ne, size_t *n) {
    size_t cap = 1024 + ne * 200 + 6 * m->vocab_bytes + 16, len, at = 0;
    for (int i = 0; i < m->n_meta; i++)
        cap += 6 * (strlen(m->meta_key[i]) + strlen(m->meta_val[i])) + 16;
    char *s = malloc(cap);
    if (!s) return NULL;
    len = (size_t)snprintf(s, cap, "{\"__metadata__\":{\"format\":\"clstm\","
                                   "\"format_version\":\"%s\"",
                           VERSIONS[file_version(&m->cfg) - 1]);
    for (size_t i = 0; i < N_CONFIG_KEYS; i++) {
        if (!config_key_in(i, file_version(&m->cfg), m->cfg.target_vocab > 0)) continue;
        char value[64];
        format_key(&CONFIG_KEYS[i], &m->cfg, value);
        len = put_pair(s, len, CONFIG_KEYS[i].name, value);
    }
    if (m->quantized) len = put_pair(s, len, "quantized", "int8");
    if (m->vocab) len = put_pair(s, len, "vocab", m->vocab);
    for (int i = 0; i < m->n_meta; i++) len = put_pair(s, len, m->meta_key[i], m->meta_val[i]);
    len += (size_t)snprintf(s + len, cap - len, "}");
    for (size_t i = 0; i < ne; i++) {
        char dims[48];
        if (e[i].ndim == 2)
            snprintf(dims, sizeof dims, "%lld,%lld", (long long)e[i].shape[0],
                     (long long)e[i].shape[1]);
        else
            snprintf(dims, sizeof dims, "%lld", (long long)e[i].shape[0]);
        len += (size_t)snprintf(s + len, cap - len,
                                ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%s],\"data_offsets\":"
                                "[%zu,%zu]}",
                                e[i].name, ST_DTYPE_NAMES[e[i].dtype], dims, at, at + e[i].bytes);
        at += e[i].bytes;
    }
    len += (size_t)snprintf(s + len, cap - len, "}");
    while ((len + 8) % 8 && len + 1 < cap) s[len++] = ' ';
    *n = len;
    return s;
}

/* The file's bytes as pieces: the 8-byte header length, the header and
 * each tensor's data. One layout for both writers, the file's and the
 * buffer's, so they cannot differ by a byte. */
typedef struct {
    unsigned char len8[8];
    char *header;     /* owned: free with pieces_free */
    st_entry *tensor; /* owned: n - 2 entries */
    const void **at;  /* owned: n pieces */
    size_t *bytes;
    size_t n, total;
} st_pieces;

static clstm_status pieces_make(const clstm_model *m, st_pieces *p, const char **why) {
    memset(p, 0, sizeof *p);
    if (ST_BIG_ENDIAN) return CLSTM_ERR_UNSUPPORTED;
    size_t ne, n = 0;
    file_entries(m, NULL, &ne);
    if (ne > ST_MAX_TENSORS) { /* the loader would refuse it */
        *why = "over 4096 tensors: clstm_load would refuse the file";
        return CLSTM_ERR_SIZE;
    }
    p->tensor = malloc(sizeof *p->tensor * (ne ? ne : 1));
    p->at = malloc(sizeof *p->at * (ne + 2));
    p->bytes = malloc(sizeof *p->bytes * (ne + 2));
    if (p->tensor) file_entries(m, p->tensor, &ne);
    if (p->tensor && p->at && p->bytes) p->header = build_header(m, p->tensor, ne, &n);
    if (!p->header) {
        *why = "out of memory";
        return CLSTM_ERR_NOMEM;
    }
    for (int i = 0; i < 8; i++) p->len8[i] = (unsigned char)((uint64_t)n >> (8 * i));
    p->n = ne + 2;
    p->at[0] = p->len8;
    p->bytes[0] = 8;
    p->at[1] = p->header;
    p->bytes[1] = n;
    p->total = 8 + n;
    for (size_t i = 0; i < ne; i++) {
        p->at[i + 2] = p->tensor[i].data;
        p->bytes[i + 2] = p->tensor[i].bytes; /* the model's memory: no overflow */
        if (__builtin_add_overflow(p->total, p->bytes[i + 2], &p->total)) {
            *why = "the file would exceed SIZE_MAX bytes";
            return CLSTM_ERR_OVERFLOW;
        }
    }
    return CLSTM_OK;
}

static void pieces_free(st_pieces *p) {
    free(p->header);
    free(p->tensor);
    free(p->at);
    free(p->bytes);
    memset(p, 0, sizeof *p);
}

static atomic_uint g_tmp_counter = 0; /* unique temp names within a process */

/* Make a completed rename durable: fsync the directory that holds `path`.
 * Best effort: the file itself is already synced and in place. */
static void sync_parent_dir(const char *path) {
    const char *slash = strrchr(path, '/');
    size_t n = slash ? (size_t)(slash - path) : 0;
    char *dir = malloc(n + 2);
    if (!dir) return;
    if (slash && n == 0) n = 1; /* "/file": the root */
    if (slash)
        memcpy(dir, path, n);
    else
        dir[n++] = '.';
    dir[n] = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

static clstm_status save_model(const clstm_model *m, const char *path, const char **why) {
    if (!m || !path) return CLSTM_ERR_NULL;
    st_pieces pc;
    clstm_status st = pieces_make(m, &pc, why);
    if (st != CLSTM_OK) {
        pieces_free(&pc);
        return st;
    }
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 48);
    if (!tmp) {
        pieces_free(&pc);
        *why = "out of memory";
        return CLSTM_ERR_NOMEM;
    }
    snprintf(tmp, plen + 48, "%s.tmp.%ld.%u", path, (long)getpid(),
             atomic_fetch_add(&g_tmp_counter, 1));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0666);
    FILE *f = fd >= 0 ? fdopen(fd, "wb") : NULL;
    int ok = f != NULL;
    if (!f && fd >= 0) close(fd);
    if (!ok) *why = "cannot create a temporary file beside the target (a missing or "
                    "read-only directory?)";
    for (size_t i = 0; ok && i < pc.n; i++) {
        if (fwrite(pc.at[i], 1, pc.bytes[i], f) != pc.bytes[i]) {
            ok = 0;
            *why = "writing the temporary file failed (disk full?)";
        }
    }
    if (ok && fflush(f) != 0) {
        ok = 0;
        *why = "writing the temporary file failed (disk full?)";
    }
    if (ok && fsync(fileno(f)) != 0) {
        ok = 0;
        *why = "fsync of the temporary file failed";
    }
    if (f && fclose(f) != 0 && ok) {
        ok = 0;
        *why = "closing the temporary file failed";
    }
    if (ok && rename(tmp, path) != 0) {
        ok = 0;
        *why = "renaming the temporary file over the target failed (is the target a "
               "directory?)";
    }
    if (ok) sync_parent_dir(path);
    if (!ok && fd >= 0) remove(tmp);
    pieces_free(&pc);
    free(tmp);
    return ok ? CLSTM_OK : CLSTM_ERR_IO;
}

clstm_status clstm_save_ex(const clstm_model *m, const char *path, const char **why) {
    const char *reason = NULL;
    clstm_status st = save_model(m, path, &reason);
    if (why) *why = st == CLSTM_OK ? NULL : reason;
    return st;
}

clstm_status clstm_save(const clstm_model *m, const char *path) {
    return clstm_save_ex(m, path, NULL);
}

clstm_status clstm_save_buffer_size(const clstm_model *m, size_t *size) {
    if (!m || !size) return CLSTM_ERR_NULL;
    st_pieces pc;
    const char *why;
    clstm_status st = pieces_make(m, &pc, &why);
    if (st == CLSTM_OK) *size = pc.total;
    pieces_free(&pc);
    return st;
}

clstm_status clstm_save_buffer(const clstm_model *m, void *data, size_t capacity,
                               size_t *written) {
    if (!m || !data || !written) return CLSTM_ERR_NULL;
    st_pieces pc;
    const char *why;
    clstm_status st = pieces_make(m, &pc, &why);
    if (st == CLSTM_OK && pc.total > capacity) {
        *written = pc.total; /* the size needed */
        st = CLSTM_ERR_SIZE;
    } else if (st == CLSTM_OK) {
        unsigned char *to = data;
        for (size_t i = 0; i < pc.n; i++) {
            memcpy(to, pc.at[i], pc.bytes[i]);
            to += pc.bytes[i];
        }
        *written = pc.total;
    }
    pieces_free(&pc);
    return st;
}
