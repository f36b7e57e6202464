#define _POSIX_C_SOURCE 200809L /* strnlen */
/* The vocabulary of a token model: V distinct characters, one UTF-8 string,
 * with an index from token id to bytes and a sorted code-point table for
 * lookups. */
#include <stdlib.h>
#include <string.h>
#include "internal.h"

void clstm_vocab_clear(clstm_model *m) {
    free(m->vocab);
    free(m->vocab_at);
    free(m->vocab_cp);
    free(m->vocab_id);
    m->vocab = NULL;
    m->vocab_at = NULL;
    m->vocab_cp = NULL;
    m->vocab_id = NULL;
    m->vocab_bytes = 0;
}

/* Decode one UTF-8 character of s[0..n): its length (1..4), or 0 when the
 * bytes are not valid UTF-8 (overlong forms, surrogates and values past
 * U+10FFFF are invalid). */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    size_t len = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC0 ? 2 : 0;
    if (len == 0 || s[0] > 0xF4 || len > n) return 0;
    uint32_t v = s[0] & (0x7F >> len);
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i] & 0x3F);
    }
    static const uint32_t min_of[5] = {0, 0, 0x80, 0x800, 0x10000};
    if (v < min_of[len] || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

typedef struct {
    uint32_t cp;
    int32_t id;
} cp_id;

static int by_cp(const void *a, const void *b) {
    const cp_id *x = a, *y = b;
    return x->cp < y->cp ? -1 : x->cp > y->cp;
}

clstm_status clstm_set_vocab(clstm_model *m, const char *utf8, size_t bytes) {
    if (!m || !utf8) return CLSTM_ERR_NULL;
    if (m->cfg.encoding == CLSTM_ENCODING_NONE) return CLSTM_ERR_ARG;
    const size_t V = (size_t)m->cfg.vocab_size;
    if (bytes < V || bytes / 4 > V) return CLSTM_ERR_ARG; /* 1..4 bytes per character */
    char *text = malloc(bytes + 1);
    size_t *at = malloc((V + 1) * sizeof *at);
    cp_id *pairs = malloc(V * sizeof *pairs);
    uint32_t *cps = malloc(V * sizeof *cps);
    int32_t *ids = malloc(V * sizeof *ids);
    clstm_status st = CLSTM_OK;
    if (!text || !at || !pairs || !cps || !ids) st = CLSTM_ERR_NOMEM;
    size_t pos = 0, count = 0;
    while (st == CLSTM_OK && pos < bytes) {
        uint32_t cp;
        size_t len = utf8_decode((const unsigned char *)utf8 + pos, bytes - pos, &cp);
        if (len == 0 || cp == 0 || count == V) {
            st = CLSTM_ERR_ARG;
            break;
        }
        at[count] = pos;
        pairs[count].cp = cp;
        pairs[count].id = (int32_t)count;
        count++;
        pos += len;
    }
    if (st == CLSTM_OK && count != V) st = CLSTM_ERR_ARG;
    if (st == CLSTM_OK) {
        qsort(pairs, V, sizeof *pairs, by_cp);
        for (size_t i = 1; i < V; i++)
            if (pairs[i].cp == pairs[i - 1].cp) st = CLSTM_ERR_ARG; /* a duplicate */
    }
    if (st == CLSTM_OK) {
        at[V] = bytes;
        for (size_t i = 0; i < V; i++) {
            cps[i] = pairs[i].cp;
            ids[i] = pairs[i].id;
        }
        memcpy(text, utf8, bytes);
        text[bytes] = '\0';
        clstm_vocab_clear(m);
        m->vocab = text;
        m->vocab_bytes = bytes;
        m->vocab_at = at;
        m->vocab_cp = cps;
        m->vocab_id = ids;
    } else {
        free(text);
        free(at);
        free(cps);
        free(ids);
    }
    free(pairs);
    return st;
}

clstm_status clstm_get_vocab(const clstm_model *m, const char **utf8, size_t *bytes) {
    if (!m || !utf8 || !bytes) return CLSTM_ERR_NULL;
    *utf8 = m->vocab;
    *bytes = m->vocab_bytes;
    return CLSTM_OK;
}

clstm_status clstm_vocab_token(const clstm_model *m, int32_t id, const char **s, size_t *len) {
    if (!m || !s || !len) return CLSTM_ERR_NULL;
    if (!m->vocab || id < 0 || id >= m->cfg.vocab_size) return CLSTM_ERR_ARG;
    *s = m->vocab + m->vocab_at[id];
    *len = m->vocab_at[id + 1] - m->vocab_at[id];
    return CLSTM_OK;
}

clstm_status clstm_vocab_lookup(const clstm_model *m, const char *text, size_t len,
                                int32_t *id, size_t *used) {
    if (!m || !text || !id || !used) return CLSTM_ERR_NULL;
    uint32_t cp;
    size_t n = m->vocab ? utf8_decode((const unsigned char *)text, len, &cp) : 0;
    *used = n;
    if (n == 0) return CLSTM_ERR_ARG;
    size_t lo = 0, hi = (size_t)m->cfg.vocab_size; /* binary search in [lo, hi) */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (m->vocab_cp[mid] < cp) lo = mid + 1;
        else hi = mid;
    }
    if (lo == (size_t)m->cfg.vocab_size || m->vocab_cp[lo] != cp) return CLSTM_ERR_ARG;
    *id = m->vocab_id[lo];
    return CLSTM_OK;
}

/* ------------------------------------------------------------ metadata */

int clstm_utf8_valid(const char *s, size_t n) {
    uint32_t cp;
    for (size_t i = 0; i < n;) {
        size_t len = utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (len == 0) return 0;
        i += len;
    }
    return 1;
}

void clstm_metadata_clear(clstm_model *m) {
    for (int i = 0; i < m->n_meta; i++) {
        free(m->meta_key[i]);
        free(m->meta_val[i]);
    }
    m->n_meta = 0;
}

static int find_meta(const clstm_model *m, const char *key) {
    for (int i = 0; i < m->n_meta; i++)
        if (strcmp(m->meta_key[i], key) == 0) return i;
    return -1;
}

static char *dup_bytes(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (d) {
        memcpy(d, s, n);
        d[n] = '\0';
    }
    return d;
}

clstm_status clstm_set_metadata(clstm_model *m, const char *key, const char *value) {
    if (!m || !key) return CLSTM_ERR_NULL;
    const size_t kn = strnlen(key, CLSTM_METADATA_KEY_MAX + 1);
    if (kn == 0 || kn > CLSTM_METADATA_KEY_MAX || !clstm_utf8_valid(key, kn) ||
        clstm_metadata_reserved(m, key))
        return CLSTM_ERR_ARG;
    const int at = find_meta(m, key);
    if (!value) { /* remove, keeping the order of the rest */
        if (at < 0) return CLSTM_OK;
        free(m->meta_key[at]);
        free(m->meta_val[at]);
        for (int i = at + 1; i < m->n_meta; i++) {
            m->meta_key[i - 1] = m->meta_key[i];
            m->meta_val[i - 1] = m->meta_val[i];
        }
        m->n_meta--;
        return CLSTM_OK;
    }
    const size_t vn = strnlen(value, CLSTM_METADATA_VALUE_MAX + 1);
    if (vn > CLSTM_METADATA_VALUE_MAX || !clstm_utf8_valid(value, vn)) return CLSTM_ERR_ARG;
    if (at < 0 && m->n_meta == CLSTM_MAX_METADATA) return CLSTM_ERR_ARG;
    char *v = dup_bytes(value, vn), *k = at < 0 ? dup_bytes(key, kn) : NULL;
    if (!v || (at < 0 && !k)) {
        free(v);
        free(k);
        return CLSTM_ERR_NOMEM;
    }
    if (at >= 0) {
        free(m->meta_val[at]);
        m->meta_val[at] = v;
    } else {
        m->meta_key[m->n_meta] = k;
        m->meta_val[m->n_meta++] = v;
    }
    return CLSTM_OK;
}

clstm_status clstm_get_metadata(const clstm_model *m, const char *key, const char **value) {
    if (!m || !key || !value) return CLSTM_ERR_NULL;
    const int at = find_meta(m, key);
    *value = at < 0 ? NULL : m->meta_val[at];
    return CLSTM_OK;
}

clstm_status clstm_metadata_count(const clstm_model *m, int64_t *n) {
    if (!m || !n) return CLSTM_ERR_NULL;
    *n = m->n_meta;
    return CLSTM_OK;
}

clstm_status clstm_metadata_at(const clstm_model *m, int64_t i, const char **key,
                               const char **value) {
    if (!m || !key || !value) return CLSTM_ERR_NULL;
    if (i < 0 || i >= m->n_meta) return CLSTM_ERR_ARG;
    *key = m->meta_key[i];
    *value = m->meta_val[i];
    return CLSTM_OK;
}
