/*
 * test_metadata.c -- user metadata: clstm_set_metadata, clstm_get_metadata,
 * clstm_metadata_count, clstm_metadata_at, and their life in model files.
 *
 *   1. set / get / overwrite / remove (the others keep their order; removing
 *      an absent key is OK), enumeration in the order of first set, count,
 *      get of an absent key (OK, NULL), metadata_at out of range (ARG),
 *      NULL arguments, aliasing (setting or removing with pointers the model
 *      itself returned)
 *   2. values and keys with '"', '\\', control characters, UTF-8, the empty
 *      string
 *   3. errors (ARG): empty key, key of KEY_MAX + 1 bytes, invalid UTF-8 in
 *      key or value, every config key, value of VALUE_MAX + 1 bytes, a new key
 *      past CLSTM_MAX_METADATA; the limits themselves succeed; on error
 *      nothing changes
 *   4. save / load round trips (bare LSTM, whole model with vocab, 48 entries
 *      at the key limit with values at the value limit); the loaded model
 *      still accepts set / remove; saving the loaded model gives the same
 *      bytes
 *   5. hand-built files: user keys counted against CLSTM_MAX_METADATA (48 OK,
 *      49 FORMAT), too long keys or values FORMAT, JSON escapes decoded, the
 *      loader's cap on __metadata__ entries
 * Under ASan/LSan (make test-sanitize) the failing sets and loads also prove
 * that nothing leaks. Every check can fail.
 */
#define _POSIX_C_SOURCE 200809L
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clstm.h"
#include "ctest.h"

/* ------------------------------------------------------------ utilities */

static char g_dir[64];
static char g_path[128];

/* A growable NUL-terminated string. */
typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_put(sbuf *b, const char *p, size_t n)
{
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (b->n + n + 1 > cap) cap *= 2;
        char *q = realloc(b->s, cap);
        if (!q) {
            fprintf(stderr, "out of memory in a test\n");
            exit(2);
        }
        b->s = q;
        b->cap = cap;
    }
    memcpy(b->s + b->n, p, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_str(sbuf *b, const char *p) { sb_put(b, p, strlen(p)); }

/* A string of exactly `bytes` bytes: the prefix, then whole copies of
 * `unit` (exits when they do not fit exactly: a cut character would be
 * invalid UTF-8). */
static char *repeat(const char *prefix, const char *unit, size_t bytes)
{
    char *s = xcalloc(bytes + 1, 1);
    size_t p = strlen(prefix), u = strlen(unit);
    if ((bytes - p) % u) {
        fprintf(stderr, "repeat: %zu bytes are not the prefix and whole units\n", bytes);
        exit(2);
    }
    memcpy(s, prefix, p);
    for (size_t i = p; i < bytes; i += u) memcpy(s + i, unit, u);
    s[bytes] = '\0';
    return s;
}

static clstm_model *bare(uint64_t seed)
{
    clstm_config c = clstm_config_default();
    c.input_size = 2;
    c.hidden_size = 3;
    clstm_model *m = NULL;
    clstm_status st = clstm_create(&c, seed, &m);
    CHECK(st == CLSTM_OK && m, "clstm_create: %s", clstm_status_string(st));
    return st == CLSTM_OK ? m : NULL;
}

static const char VOCAB[] = "ab\"\\\n\xC3\xA9\xF0\x9F\x98\x80Z"; /* 8 characters */

/* Embedding V = 8, D = 3, H = 4, bidirectional, head O = 5 with softmax,
 * float64, with the vocabulary. */
static clstm_model *whole(uint64_t seed)
{
    clstm_config c = clstm_config_default();
    c.input_size = 3;
    c.hidden_size = 4;
    c.bidirectional = 1;
    c.dtype = CLSTM_FLOAT64;
    c.encoding = CLSTM_ENCODING_EMBEDDING;
    c.vocab_size = 8;
    c.output_size = 5;
    c.softmax = 1;
    clstm_model *m = NULL;
    clstm_status st = clstm_create(&c, seed, &m);
    if (!CHECK(st == CLSTM_OK && m, "clstm_create(whole): %s", clstm_status_string(st)))
        return NULL;
    CHECK_STATUS(clstm_set_vocab(m, VOCAB, sizeof VOCAB - 1), CLSTM_OK);
    return m;
}

/* The model's pairs are exactly keys[0..n), vals[0..n), in that order, and
 * clstm_get_metadata agrees. */
static int expect_pairs(const clstm_model *m, int n, const char *const *keys,
                        const char *const *vals, const char *ctx)
{
    int64_t count = -1;
    int ok = CHECK_STATUS(clstm_metadata_count(m, &count), CLSTM_OK);
    ok &= CHECK(count == n, "%s: count %lld, expected %d", ctx, (long long)count, n);
    for (int i = 0; i < n && i < count; i++) {
        const char *k = NULL, *v = NULL, *g = NULL;
        ok &= CHECK_STATUS(clstm_metadata_at(m, i, &k, &v), CLSTM_OK);
        ok &= CHECK(k && strcmp(k, keys[i]) == 0, "%s: key %d is \"%.40s\", expected \"%.40s\"",
                    ctx, i, k ? k : "(null)", keys[i]);
        ok &= CHECK(v && strcmp(v, vals[i]) == 0,
                    "%s: value %d (%zu bytes) is \"%.40s\", expected \"%.40s\" (%zu bytes)", ctx,
                    i, v ? strlen(v) : 0, v ? v : "(null)", vals[i], strlen(vals[i]));
        ok &= CHECK_STATUS(clstm_get_metadata(m, keys[i], &g), CLSTM_OK);
        ok &= CHECK(g && v && g == v, "%s: get(\"%.40s\") is not metadata_at's value", ctx,
                    keys[i]);
    }
    return ok;
}

/* A deep copy of the model's pairs, to check that a failed call changed
 * nothing. */
typedef struct {
    int n;
    char **k, **v;
} snap;

static snap take(const clstm_model *m)
{
    snap s = {0, NULL, NULL};
    int64_t n = 0;
    CHECK_STATUS(clstm_metadata_count(m, &n), CLSTM_OK);
    s.n = (int)n;
    s.k = xcalloc((size_t)n, sizeof *s.k);
    s.v = xcalloc((size_t)n, sizeof *s.v);
    for (int i = 0; i < s.n; i++) {
        const char *k = "", *v = "";
        CHECK_STATUS(clstm_metadata_at(m, i, &k, &v), CLSTM_OK);
        s.k[i] = strdup(k);
        s.v[i] = strdup(v);
    }
    return s;
}

static void snap_free(snap *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->k[i]);
        free(s->v[i]);
    }
    free(s->k);
    free(s->v);
}

static int unchanged(const clstm_model *m, const snap *s, const char *ctx)
{
    return expect_pairs(m, s->n, (const char *const *)s->k, (const char *const *)s->v, ctx);
}

/* set must return `want` and, when it is an error, change nothing. */
static void expect_set(clstm_model *m, const char *key, const char *value, clstm_status want,
                       const char *what)
{
    snap s = take(m);
    clstm_status st = clstm_set_metadata(m, key, value);
    CHECK(st == want, "set(%s) returned %d (%s), expected %d (%s)", what, (int)st,
          clstm_status_string(st), (int)want, clstm_status_string(want));
    if (want != CLSTM_OK) {
        char ctx[160];
        snprintf(ctx, sizeof ctx, "after the failed set(%s)", what);
        unchanged(m, &s, ctx);
    }
    snap_free(&s);
}

/* ------------------------------------------------- 1. set/get/remove */

static void test_basic(void)
{
    clstm_model *m = bare(1);
    if (!m) return;
    int64_t n = -1;
    CHECK_STATUS(clstm_metadata_count(m, &n), CLSTM_OK);
    CHECK_EQ(n, 0);
    const char *v = "sentinel", *k = "sentinel";
    CHECK_STATUS(clstm_get_metadata(m, "a", &v), CLSTM_OK);
    CHECK(v == NULL, "get of an absent key on a new model is not NULL");
    v = "sentinel";
    CHECK_STATUS(clstm_metadata_at(m, 0, &k, &v), CLSTM_ERR_ARG);
    CHECK(strcmp(k, "sentinel") == 0 && strcmp(v, "sentinel") == 0,
          "metadata_at(0) on an empty model wrote its outputs");

    CHECK_STATUS(clstm_set_metadata(m, "alpha", "1"), CLSTM_OK);
    CHECK_STATUS(clstm_set_metadata(m, "beta", "2"), CLSTM_OK);
    CHECK_STATUS(clstm_set_metadata(m, "gamma", "3"), CLSTM_OK);
    CHECK_STATUS(clstm_set_metadata(m, "delta", "4"), CLSTM_OK);
    {
        const char *K[] = {"alpha", "beta", "gamma", "delta"}, *V[] = {"1", "2", "3", "4"};
        expect_pairs(m, 4, K, V, "four sets");
    }
    /* overwrite: the value changes, the position does not */
    CHECK_STATUS(clstm_set_metadata(m, "beta", "two, longer than before"), CLSTM_OK);
    CHECK_STATUS(clstm_set_metadata(m, "alpha", ""), CLSTM_OK);
    {
        const char *K[] = {"alpha", "beta", "gamma", "delta"},
                   *V[] = {"", "two, longer than before", "3", "4"};
        expect_pairs(m, 4, K, V, "after overwrites");
    }
    /* an empty value is present, not absent */
    v = NULL;
    CHECK_STATUS(clstm_get_metadata(m, "alpha", &v), CLSTM_OK);
    CHECK(v != NULL && v[0] == '\0', "the empty value reads back as %s", v ? v : "NULL");
    /* keys are case- and byte-exact */
    v = "sentinel";
    CHECK_STATUS(clstm_get_metadata(m, "Alpha", &v), CLSTM_OK);
    CHECK(v == NULL, "get(\"Alpha\") found \"alpha\"");
    v = "sentinel";
    CHECK_STATUS(clstm_get_metadata(m, "alph", &v), CLSTM_OK);
    CHECK(v == NULL, "get(\"alph\") found something");
    v = "sentinel";
    CHECK_STATUS(clstm_get_metadata(m, "alpha ", &v), CLSTM_OK);
    CHECK(v == NULL, "get(\"alpha \") found something");

    /* a value pointer stays valid while other keys are set and removed */
    const char *gamma = NULL;
    CHECK_STATUS(clstm_get_metadata(m, "gamma", &gamma), CLSTM_OK);

    /* remove from the middle: the others keep their order */
    CHECK_STATUS(clstm_set_metadata(m, "beta", NULL), CLSTM_OK);
    {
        const char *K[] = {"alpha", "gamma", "delta"}, *V[] = {"", "3", "4"};
        expect_pairs(m, 3, K, V, "after removing beta (middle)");
    }
    v = "sentinel";
    CHECK_STATUS(clstm_get_metadata(m, "beta", &v), CLSTM_OK);
    CHECK(v == NULL, "a removed key is still found");
    /* removing an absent key is OK and changes nothing */
    {
        snap s = take(m);
        CHECK_STATUS(clstm_set_metadata(m, "beta", NULL), CLSTM_OK);
        CHECK_STATUS(clstm_set_metadata(m, "never-set", NULL), CLSTM_OK);
        unchanged(m, &s, "after removing absent keys");
        snap_free(&s);
    }
    /* re-adding goes to the end (the order of first set since it was added) */
    CHECK_STATUS(clstm_set_metadata(m, "beta", "again"), CLSTM_OK);
    CHECK_STATUS(clstm_set_metadata(m, "epsilon", "5"), CLSTM_OK);
    {
        const char *K[] = {"alpha", "gamma", "delta", "beta", "epsilon"},
                   *V[] = {"", "3", "4", "again", "5"};
        expect_pairs(m, 5, K, V, "after re-adding beta");
    }
    CHECK(gamma && strcmp(gamma, "3") == 0, "gamma's value pointer changed under other calls");
    /* remove the first, then the last */
    CHECK_STATUS(clstm_set_metadata(m, "alpha", NULL), CLSTM_OK);
    {
        const char *K[] = {"gamma", "delta", "beta", "epsilon"}, *V[] = {"3", "4", "again", "5"};
        expect_pairs(m, 4, K, V, "after removing the first");
    }
    CHECK_STATUS(clstm_set_metadata(m, "epsilon", NULL), CLSTM_OK);
    {
        const char *K[] = {"gamma", "delta", "beta"}, *V[] = {"3", "4", "again"};
        expect_pairs(m, 3, K, V, "after removing the last");
    }
    /* out of range indices: ARG, outputs untouched */
    const int64_t bad[] = {-1, 3, 4, 48, INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        k = "sentinel";
        v = "sentinel";
        CHECK(clstm_metadata_at(m, bad[i], &k, &v) == CLSTM_ERR_ARG,
              "metadata_at(%lld) of 3 is not ARG", (long long)bad[i]);
        CHECK(strcmp(k, "sentinel") == 0 && strcmp(v, "sentinel") == 0,
              "metadata_at(%lld) wrote its outputs on ARG", (long long)bad[i]);
    }
    CHECK_STATUS(clstm_metadata_at(m, 2, &k, &v), CLSTM_OK);
    CHECK(strcmp(k, "beta") == 0 && strcmp(v, "again") == 0, "metadata_at(2) is %s=%s", k, v);

    /* aliasing: values and keys the model returned, passed back in */
    CHECK_STATUS(clstm_get_metadata(m, "delta", &v), CLSTM_OK);
    CHECK_STATUS(clstm_set_metadata(m, "delta", v), CLSTM_OK); /* self-assignment */
    CHECK_STATUS(clstm_get_metadata(m, "delta", &v), CLSTM_OK);
    CHECK(v && strcmp(v, "4") == 0, "self-assignment gave \"%s\"", v ? v : "NULL");
    CHECK_STATUS(clstm_get_metadata(m, "gamma", &v), CLSTM_OK);
    CHECK_STATUS(clstm_set_metadata(m, "copy", v), CLSTM_OK); /* another key's value */
    CHECK_STATUS(clstm_metadata_at(m, 1, &k, &v), CLSTM_OK);
    CHECK_STATUS(clstm_set_metadata(m, k, "four"), CLSTM_OK); /* the model's own key */
    CHECK_STATUS(clstm_metadata_at(m, 0, &k, &v), CLSTM_OK);
    CHECK_STATUS(clstm_set_metadata(m, k, NULL), CLSTM_OK); /* remove by the model's key */
    {
        const char *K[] = {"delta", "beta", "copy"}, *V[] = {"four", "again", "3"};
        expect_pairs(m, 3, K, V, "after aliased calls");
    }

    /* remove everything */
    CHECK_STATUS(clstm_set_metadata(m, "copy", NULL), CLSTM_OK);
    CHECK_STATUS(clstm_set_metadata(m, "delta", NULL), CLSTM_OK);
    CHECK_STATUS(clstm_set_metadata(m, "beta", NULL), CLSTM_OK);
    expect_pairs(m, 0, NULL, NULL, "after removing all");

    /* NULL arguments */
    CHECK_STATUS(clstm_set_metadata(NULL, "a", "b"), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_set_metadata(NULL, "a", NULL), CLSTM_ERR_NULL);
    expect_set(m, NULL, "b", CLSTM_ERR_NULL, "NULL key");
    expect_set(m, NULL, NULL, CLSTM_ERR_NULL, "NULL key, NULL value");
    CHECK_STATUS(clstm_get_metadata(NULL, "a", &v), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_get_metadata(m, NULL, &v), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_get_metadata(m, "a", NULL), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_metadata_count(NULL, &n), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_metadata_count(m, NULL), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_set_metadata(m, "x", "y"), CLSTM_OK);
    CHECK_STATUS(clstm_metadata_at(NULL, 0, &k, &v), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_metadata_at(m, 0, NULL, &v), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_metadata_at(m, 0, &k, NULL), CLSTM_ERR_NULL);
    clstm_free(m); /* with metadata: LSan checks it is all freed */
}

/* ------------------------------------------------- 2. keys and values */

static const char *const SPECIAL_K[] = {
    "quote",          "backslash",   "newline",       "tab",        "controls",
    "utf8",           "emoji",       "empty",         "mixed",      "slash-and-u",
    "cl\xC3\xA9",     "\xF0\x9F\x98\x80", "key \"with\" quotes", "key\\with\\backslashes",
    "key\nwith\tcontrols\x01\x1f", "__metadata__", "Format", "vocab ",  "dtype2", "formats",
    " ",
};
static const char *const SPECIAL_V[] = {
    "\"",
    "\\",
    "\n",
    "\t",
    "\x01\x02\x03\x08\x0b\x0c\x0d\x1b\x1f\x7f",
    "caf\xC3\xA9 \xE2\x82\xAC \xEF\xBF\xBF",
    "\xF0\x9F\x98\x80\xF4\x8F\xBF\xBF",
    "",
    "a \"quoted\" \\path\\ \r\n\tline\x01 \xC3\xA9\xF0\x9F\x98\x80 end",
    "/ \\u0041 \\n \\\" u00e9",
    "key-utf8",
    "key-emoji",
    "k1",
    "k2",
    "k3",
    "{\"nested\": \"json-looking\"}",
    "not the config's format",
    "not the vocab",
    "x",
    "y",
    "space",
};
#define N_SPECIAL ((int)(sizeof SPECIAL_K / sizeof *SPECIAL_K))

static void set_special(clstm_model *m)
{
    for (int i = 0; i < N_SPECIAL; i++)
        CHECK(clstm_set_metadata(m, SPECIAL_K[i], SPECIAL_V[i]) == CLSTM_OK,
              "set special pair %d (%s)", i, SPECIAL_K[i]);
}

static void test_values(void)
{
    typedef char check_lengths[(sizeof SPECIAL_K == sizeof SPECIAL_V) ? 1 : -1];
    (void)sizeof(check_lengths);
    clstm_model *m = bare(2);
    if (!m) return;
    set_special(m);
    expect_pairs(m, N_SPECIAL, SPECIAL_K, SPECIAL_V, "special keys and values");
    clstm_free(m);
}

/* ------------------------------------------------------------ 3. errors */

static const char *const RESERVED[] = {
    "format",  "format_version", "input_size",   "hidden_size", "num_layers", "proj_size",
    "bidirectional", "dropout",  "peepholes",    "input_forget", "clip",      "dtype",
    "encoding", "vocab_size",    "output_size",  "softmax",      "vocab"};
#define N_RESERVED ((int)(sizeof RESERVED / sizeof *RESERVED))

static const char *const BAD_UTF8[] = {
    "\xC0\xAF",             /* overlong '/' */
    "\xC1\xBF",             /* overlong */
    "\xE0\x80\xAF",         /* overlong, 3 bytes */
    "\xF0\x80\x80\xAF",     /* overlong, 4 bytes */
    "\xED\xA0\x80",         /* surrogate U+D800 */
    "\xED\xBF\xBF",         /* surrogate U+DFFF */
    "ab\xC3",               /* truncated 2-byte */
    "\xE2\x82",             /* truncated 3-byte */
    "x\xF0\x9F\x98",        /* truncated 4-byte */
    "\x80",                 /* lone continuation */
    "ok\xBF" "ok",          /* continuation in the middle */
    "\xC3\x28",             /* lead byte, then no continuation */
    "\xF4\x90\x80\x80",     /* past U+10FFFF */
    "\xF5\x80\x80\x80",     /* lead byte past 0xF4 */
    "\xFE",                 /* never valid */
    "\xFF\xFF",             /* never valid */
};
#define N_BAD_UTF8 ((int)(sizeof BAD_UTF8 / sizeof *BAD_UTF8))

static void test_errors(void)
{
    clstm_model *m = bare(3);
    if (!m) return;
    CHECK_STATUS(clstm_set_metadata(m, "first", "1"), CLSTM_OK);
    CHECK_STATUS(clstm_set_metadata(m, "second", "two"), CLSTM_OK);
    CHECK_STATUS(clstm_set_metadata(m, "third", "3"), CLSTM_OK);
    char what[200];

    expect_set(m, "", "v", CLSTM_ERR_ARG, "empty key");
    expect_set(m, "", NULL, CLSTM_ERR_ARG, "empty key, remove");

    char *k257 = repeat("", "k", CLSTM_METADATA_KEY_MAX + 1);
    char *k256 = repeat("", "k", CLSTM_METADATA_KEY_MAX);
    char *k_long = repeat("", "k", 10000);
    /* 256 bytes of which 2-byte and 4-byte characters; + 1 byte = 257 */
    char *k256u = repeat("", "\xC3\xA9\xF0\x9F\x98\x80\xC3\xA9", CLSTM_METADATA_KEY_MAX);
    char *k257u = repeat("z", "\xC3\xA9\xF0\x9F\x98\x80\xC3\xA9", CLSTM_METADATA_KEY_MAX + 1);
    expect_set(m, k257, "v", CLSTM_ERR_ARG, "key of KEY_MAX + 1 bytes");
    expect_set(m, k257u, "v", CLSTM_ERR_ARG, "UTF-8 key of KEY_MAX + 1 bytes");
    expect_set(m, k_long, "v", CLSTM_ERR_ARG, "key of 10000 bytes");
    expect_set(m, k257, NULL, CLSTM_ERR_ARG, "key of KEY_MAX + 1 bytes, remove");
    expect_set(m, k_long, NULL, CLSTM_ERR_ARG, "key of 10000 bytes, remove");

    for (int i = 0; i < N_BAD_UTF8; i++) {
        snprintf(what, sizeof what, "key with bad UTF-8 #%d", i);
        expect_set(m, BAD_UTF8[i], "v", CLSTM_ERR_ARG, what);
        snprintf(what, sizeof what, "value with bad UTF-8 #%d", i);
        expect_set(m, "newkey", BAD_UTF8[i], CLSTM_ERR_ARG, what);
        /* overwriting an existing key with a bad value keeps the old one */
        snprintf(what, sizeof what, "existing key, value with bad UTF-8 #%d", i);
        expect_set(m, "second", BAD_UTF8[i], CLSTM_ERR_ARG, what);
    }
    /* bad UTF-8 at the very end of a value at the limit */
    {
        char *vbad = repeat("", "v", CLSTM_METADATA_VALUE_MAX);
        vbad[CLSTM_METADATA_VALUE_MAX - 1] = (char)0xC3;
        expect_set(m, "newkey", vbad, CLSTM_ERR_ARG, "value at the limit ending in a lead byte");
        memcpy(vbad + CLSTM_METADATA_VALUE_MAX - 3, "\xED\xA0\x80", 3);
        expect_set(m, "newkey", vbad, CLSTM_ERR_ARG, "value at the limit ending in a surrogate");
        free(vbad);
    }

    for (int i = 0; i < N_RESERVED; i++) {
        snprintf(what, sizeof what, "reserved key \"%s\"", RESERVED[i]);
        expect_set(m, RESERVED[i], "1", CLSTM_ERR_ARG, what);
        snprintf(what, sizeof what, "reserved key \"%s\", remove", RESERVED[i]);
        expect_set(m, RESERVED[i], NULL, CLSTM_ERR_ARG, what);
    }

    char *v65537 = repeat("", "v", CLSTM_METADATA_VALUE_MAX + 1);
    char *v65536 = repeat("", "v", CLSTM_METADATA_VALUE_MAX);
    char *v65537u = repeat("v", "\xF0\x9F\x98\x80", CLSTM_METADATA_VALUE_MAX + 1);
    char *v65536u = repeat("", "\xF0\x9F\x98\x80", CLSTM_METADATA_VALUE_MAX);
    expect_set(m, "newkey", v65537, CLSTM_ERR_ARG, "value of VALUE_MAX + 1 bytes");
    expect_set(m, "newkey", v65537u, CLSTM_ERR_ARG, "UTF-8 value of VALUE_MAX + 1 bytes");
    expect_set(m, "second", v65537, CLSTM_ERR_ARG, "existing key, value of VALUE_MAX + 1 bytes");

    /* exactly at the limits: OK */
    expect_set(m, k256, "at key max", CLSTM_OK, "key of KEY_MAX bytes");
    expect_set(m, k256u, "at key max, UTF-8", CLSTM_OK, "UTF-8 key of KEY_MAX bytes");
    expect_set(m, "big", v65536, CLSTM_OK, "value of VALUE_MAX bytes");
    expect_set(m, "bigu", v65536u, CLSTM_OK, "UTF-8 value of VALUE_MAX bytes");
    expect_set(m, k256, v65536, CLSTM_OK, "both at the limits (overwrite)");
    {
        const char *K[] = {"first", "second", "third", k256, k256u, "big", "bigu"},
                   *V[] = {"1", "two", "3", v65536, "at key max, UTF-8", v65536, v65536u};
        expect_pairs(m, 7, K, V, "after the boundary sets");
    }

    /* up to CLSTM_MAX_METADATA keys; then a new key is ARG, but overwriting
     * and removing still work */
    char key[32];
    for (int i = 7; i < CLSTM_MAX_METADATA; i++) {
        snprintf(key, sizeof key, "fill%d", i);
        CHECK(clstm_set_metadata(m, key, key) == CLSTM_OK, "set %s", key);
    }
    int64_t n = -1;
    CHECK_STATUS(clstm_metadata_count(m, &n), CLSTM_OK);
    CHECK_EQ(n, CLSTM_MAX_METADATA);
    expect_set(m, "one-too-many", "v", CLSTM_ERR_ARG, "a 49th key");
    expect_set(m, "one-too-many", "", CLSTM_ERR_ARG, "a 49th key, empty value");
    expect_set(m, "one-too-many", NULL, CLSTM_OK, "removing an absent key when full");
    expect_set(m, "second", "overwrite when full", CLSTM_OK, "overwrite when full");
    {
        const char *v = NULL;
        CHECK_STATUS(clstm_get_metadata(m, "second", &v), CLSTM_OK);
        CHECK(v && strcmp(v, "overwrite when full") == 0, "overwrite when full: \"%s\"",
              v ? v : "NULL");
    }
    expect_set(m, "third", NULL, CLSTM_OK, "remove when full");
    expect_set(m, "one-too-many", "now fits", CLSTM_OK, "a 48th key after a removal");
    expect_set(m, "two-too-many", "v", CLSTM_ERR_ARG, "a 49th key again");
    CHECK_STATUS(clstm_metadata_count(m, &n), CLSTM_OK);
    CHECK_EQ(n, CLSTM_MAX_METADATA);
    {
        const char *k = NULL, *v = NULL;
        CHECK_STATUS(clstm_metadata_at(m, CLSTM_MAX_METADATA - 1, &k, &v), CLSTM_OK);
        CHECK(k && strcmp(k, "one-too-many") == 0 && strcmp(v, "now fits") == 0,
              "the last pair is %s", k ? k : "NULL");
        CHECK_STATUS(clstm_metadata_at(m, 2, &k, &v), CLSTM_OK); /* "third" was removed */
        CHECK(k && strcmp(k, k256) == 0, "pair 2 after removing \"third\" is not the 256-byte key");
        CHECK_STATUS(clstm_metadata_at(m, CLSTM_MAX_METADATA, &k, &v), CLSTM_ERR_ARG);
    }

    free(k257);
    free(k256);
    free(k_long);
    free(k256u);
    free(k257u);
    free(v65537);
    free(v65536);
    free(v65537u);
    free(v65536u);
    clstm_free(m);
}

/* ------------------------------------------------------ 4. round trips */

static void same_params(clstm_model *a, clstm_model *b, const char *ctx)
{
    void *pa, *pb;
    size_t na = 0, nb = 1;
    clstm_config ca = clstm_config_default();
    CHECK_STATUS(clstm_get_config(a, &ca), CLSTM_OK);
    CHECK_STATUS(clstm_params(a, &pa, &na), CLSTM_OK);
    CHECK_STATUS(clstm_params(b, &pb, &nb), CLSTM_OK);
    CHECK(na == nb && memcmp(pa, pb, na * (ca.dtype == CLSTM_FLOAT64 ? 8 : 4)) == 0,
          "%s: parameters differ", ctx);
}

/* Save m, load it, and compare every pair (in order) and the parameters. */
static clstm_model *round_trip(clstm_model *m, const char *ctx)
{
    clstm_model *l = NULL;
    if (!CHECK_STATUS(clstm_save(m, g_path), CLSTM_OK)) return NULL;
    const char *why = NULL;
    clstm_status st = clstm_load_ex(g_path, &l, &why);
    if (!CHECK(st == CLSTM_OK && l, "%s: load returned %s (%s)", ctx, clstm_status_string(st),
               why ? why : "")) {
        clstm_free(l);
        return NULL;
    }
    snap s = take(m);
    char c2[160];
    snprintf(c2, sizeof c2, "%s, loaded", ctx);
    unchanged(l, &s, c2);
    snap_free(&s);
    same_params(m, l, ctx);
    return l;
}

static void test_round_trips(void)
{
    /* a bare LSTM with the special pairs, after some removals */
    clstm_model *m = bare(4), *l;
    if (!m) return;
    expect_pairs(m, 0, NULL, NULL, "new model");
    if ((l = round_trip(m, "bare, no metadata"))) clstm_free(l);
    set_special(m);
    CHECK_STATUS(clstm_set_metadata(m, "gone", "soon"), CLSTM_OK);
    CHECK_STATUS(clstm_set_metadata(m, "tab", NULL), CLSTM_OK);
    CHECK_STATUS(clstm_set_metadata(m, "quote", "\"\"\""), CLSTM_OK);
    CHECK_STATUS(clstm_set_metadata(m, "gone", NULL), CLSTM_OK);
    if ((l = round_trip(m, "bare, special pairs"))) {
        /* the loaded model's metadata is live: set, overwrite, remove */
        CHECK_STATUS(clstm_set_metadata(l, "added after load", "yes"), CLSTM_OK);
        CHECK_STATUS(clstm_set_metadata(l, "emoji", "changed"), CLSTM_OK);
        CHECK_STATUS(clstm_set_metadata(l, "quote", NULL), CLSTM_OK);
        CHECK_STATUS(clstm_set_metadata(l, "format", "x"), CLSTM_ERR_ARG);
        CHECK_STATUS(clstm_set_metadata(m, "added after load", "yes"), CLSTM_OK);
        CHECK_STATUS(clstm_set_metadata(m, "emoji", "changed"), CLSTM_OK);
        CHECK_STATUS(clstm_set_metadata(m, "quote", NULL), CLSTM_OK);
        snap s = take(m);
        unchanged(l, &s, "loaded model after set/remove");
        snap_free(&s);
        /* and saving the loaded model gives back the same file */
        size_t n1, n2;
        unsigned char *f1 = NULL, *f2 = NULL;
        if (CHECK_STATUS(clstm_save(m, g_path), CLSTM_OK)) f1 = read_all(g_path, &n1);
        if (CHECK_STATUS(clstm_save(l, g_path), CLSTM_OK)) f2 = read_all(g_path, &n2);
        CHECK(f1 && f2 && n1 == n2 && memcmp(f1, f2, n1) == 0,
              "saving the loaded model gives another file");
        free(f1);
        free(f2);
        clstm_free(l);
    }
    clstm_free(m);

    /* the whole model with a vocabulary */
    m = whole(5);
    if (!m) return;
    set_special(m);
    if ((l = round_trip(m, "whole model"))) {
        const char *va, *vb;
        size_t la, lb;
        CHECK_STATUS(clstm_get_vocab(m, &va, &la), CLSTM_OK);
        CHECK_STATUS(clstm_get_vocab(l, &vb, &lb), CLSTM_OK);
        CHECK(la == lb && vb && memcmp(va, vb, la) == 0, "whole model: vocab differs");
        clstm_config c = clstm_config_default();
        CHECK_STATUS(clstm_get_config(l, &c), CLSTM_OK);
        CHECK(c.encoding == CLSTM_ENCODING_EMBEDDING && c.vocab_size == 8 &&
                  c.output_size == 5 && c.softmax == 1 && c.bidirectional == 1 &&
                  c.dtype == CLSTM_FLOAT64,
              "whole model: config differs after load");
        CHECK_STATUS(clstm_set_metadata(l, "controls", NULL), CLSTM_OK);
        CHECK_STATUS(clstm_set_metadata(l, "late", "1"), CLSTM_OK);
        int64_t n = -1;
        CHECK_STATUS(clstm_metadata_count(l, &n), CLSTM_OK);
        CHECK_EQ(n, N_SPECIAL);
        const char *k = "", *v = "";
        CHECK_STATUS(clstm_metadata_at(l, 4, &k, &v), CLSTM_OK); /* "controls" was 4 */
        CHECK(strcmp(k, SPECIAL_K[5]) == 0, "whole model after load/remove: pair 4 is %s", k);
        CHECK_STATUS(clstm_metadata_at(l, n - 1, &k, &v), CLSTM_OK);
        CHECK(strcmp(k, "late") == 0 && strcmp(v, "1") == 0, "whole model: last pair is %s", k);
        clstm_free(l);
    }
    clstm_free(m);

    /* 48 entries, every key of KEY_MAX bytes; values at VALUE_MAX bytes that
     * each need escaping (control characters: 6 bytes each in JSON), UTF-8,
     * quotes and backslashes; the others short */
    m = bare(6);
    if (!m) return;
    char *keys[CLSTM_MAX_METADATA], *vals[CLSTM_MAX_METADATA];
    static const char *const units[4] = {"\x01\x1f", "\xF0\x9F\x98\x80", "\"\\", "v"};
    for (int i = 0; i < CLSTM_MAX_METADATA; i++) {
        char prefix[16];
        snprintf(prefix, sizeof prefix, i % 2 ? "%02d:x" : "%02d:", i); /* even lengths left */
        keys[i] = repeat(prefix, i % 2 ? "\xC3\xA9" : "k", CLSTM_METADATA_KEY_MAX);
        vals[i] = i % 12 == 0 ? repeat("", units[i / 12], CLSTM_METADATA_VALUE_MAX)
                              : repeat("", "\xC3\xA9", (size_t)(2 * i));
        CHECK(clstm_set_metadata(m, keys[i], vals[i]) == CLSTM_OK, "set max pair %d", i);
    }
    expect_pairs(m, CLSTM_MAX_METADATA, (const char *const *)keys, (const char *const *)vals,
                 "48 max pairs");
    if ((l = round_trip(m, "48 pairs at the limits"))) {
        expect_pairs(l, CLSTM_MAX_METADATA, (const char *const *)keys,
                     (const char *const *)vals, "48 max pairs, loaded");
        CHECK_STATUS(clstm_set_metadata(l, "49th", "v"), CLSTM_ERR_ARG);
        CHECK_STATUS(clstm_set_metadata(l, keys[0], NULL), CLSTM_OK);
        CHECK_STATUS(clstm_set_metadata(l, "49th", "v"), CLSTM_OK);
        const char *k = "", *v = "";
        CHECK_STATUS(clstm_metadata_at(l, 0, &k, &v), CLSTM_OK);
        CHECK(strcmp(k, keys[1]) == 0, "loaded 48: after removing the first, pair 0 is wrong");
        CHECK_STATUS(clstm_metadata_at(l, CLSTM_MAX_METADATA - 1, &k, &v), CLSTM_OK);
        CHECK(strcmp(k, "49th") == 0, "loaded 48: the new key is not last");
        clstm_free(l);
    }
    for (int i = 0; i < CLSTM_MAX_METADATA; i++) {
        free(keys[i]);
        free(vals[i]);
    }
    clstm_free(m);
}

/* ----------------------------------------------------- 5. hand-built files */

/* D = 2, H = 1, L = 1, float32: 20 floats of data. */
static const char TENSORS[] =
    "\"weight_ih_l0\":{\"dtype\":\"F32\",\"shape\":[4,2],\"data_offsets\":[0,32]},"
    "\"weight_hh_l0\":{\"dtype\":\"F32\",\"shape\":[4,1],\"data_offsets\":[32,48]},"
    "\"bias_ih_l0\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[48,64]},"
    "\"bias_hh_l0\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[64,80]}";

/* A file: 8-byte little-endian N, N bytes of json, then data. */
static unsigned char *assemble(const char *json, size_t n, const unsigned char *data,
                               size_t data_bytes, size_t *size)
{
    unsigned char *f = xcalloc(8 + n + data_bytes, 1);
    for (int i = 0; i < 8; i++) f[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(f + 8, json, n);
    if (data_bytes) memcpy(f + 8 + n, data, data_bytes);
    *size = 8 + n + data_bytes;
    return f;
}

/* The bare D = 2, H = 1 file with __metadata__ {meta} (meta without braces). */
static unsigned char *file_with_meta(const char *meta, size_t *size)
{
    sbuf j = {0};
    sb_str(&j, "{\"__metadata__\":{");
    sb_str(&j, meta);
    sb_str(&j, "},");
    sb_str(&j, TENSORS);
    sb_str(&j, "}");
    unsigned char data[80];
    for (int i = 0; i < 20; i++) {
        float v = 0.25f * (float)i - 1.0f;
        memcpy(data + 4 * i, &v, 4);
    }
    unsigned char *f = assemble(j.s, j.n, data, sizeof data, size);
    free(j.s);
    return f;
}

/* A saved file with `extra` (",key":"value" pairs without the leading comma)
 * inserted at the start of its __metadata__ object. */
static unsigned char *insert_meta(const unsigned char *saved, size_t size, const char *extra,
                                  size_t *out_size)
{
    static const char pre[] = "{\"__metadata__\":{";
    const size_t lp = sizeof pre - 1;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = (n << 8) | saved[i];
    if (!CHECK(size > 8 + lp && n <= size - 8 && memcmp(saved + 8, pre, lp) == 0,
               "the saved file does not start with %s", pre))
        return NULL;
    sbuf j = {0};
    sb_put(&j, pre, lp);
    sb_str(&j, extra);
    sb_str(&j, ",");
    sb_put(&j, (const char *)saved + 8 + lp, (size_t)n - lp);
    unsigned char *f = assemble(j.s, j.n, saved + 8 + n, size - 8 - (size_t)n, out_size);
    free(j.s);
    return f;
}

/* Load; expect `want` (and *out NULL unless OK); return the model on OK. */
static clstm_model *expect_load(const unsigned char *f, size_t size, clstm_status want,
                                const char **why_out, const char *what)
{
    int dummy;
    clstm_model *m = (clstm_model *)(void *)&dummy;
    clstm_status st = clstm_load_buffer(f, size, &m);
    CHECK(st == want, "%s: load_buffer returned %d (%s), expected %d (%s)", what, (int)st,
          clstm_status_string(st), (int)want, clstm_status_string(want));
    CHECK((st == CLSTM_OK) == (m != NULL), "%s: *out %p with status %d", what, (void *)m, (int)st);
    /* the same through a file, with the reason */
    const char *why = NULL;
    clstm_model *m2 = (clstm_model *)(void *)&dummy;
    if (CHECK(write_all(g_path, f, size), "write %s", g_path)) {
        clstm_status st2 = clstm_load_ex(g_path, &m2, &why);
        CHECK(st2 == want, "%s: load_ex returned %d (%s), expected %d", what, (int)st2,
              clstm_status_string(st2), (int)want);
        CHECK((st2 == CLSTM_OK) == (m2 != NULL), "%s: load_ex *out %p", what, (void *)m2);
        CHECK((st2 == CLSTM_OK) == (why == NULL), "%s: load_ex why = %s with status %d", what,
              why ? why : "NULL", (int)st2);
        if (st2 == CLSTM_OK) clstm_free(m2);
    }
    if (why_out) *why_out = why;
    return st == CLSTM_OK ? m : NULL;
}

/* ,"<prefix><i>":"<value>" for i in [from, to), without the first comma. */
static void user_keys(sbuf *b, const char *prefix, int from, int to, const char *value)
{
    char e[512];
    for (int i = from; i < to; i++) {
        snprintf(e, sizeof e, "%s\"%s%d\":\"%s\"", b->n ? "," : "", prefix, i, value);
        sb_str(b, e);
    }
}

static void test_files(void)
{
    size_t size;
    unsigned char *f;
    clstm_model *m;
    const char *why;
    char what[160];

    /* no config keys at all: every key is user metadata; 48 OK, 49 FORMAT */
    for (int nk = 0; nk <= CLSTM_MAX_METADATA + 1; nk += nk < 46 ? 23 : 1) {
        sbuf b = {0};
        sb_str(&b, "");
        user_keys(&b, "k", 0, nk, "val");
        f = file_with_meta(b.s, &size);
        snprintf(what, sizeof what, "bare file with %d user keys", nk);
        m = expect_load(f, size, nk <= CLSTM_MAX_METADATA ? CLSTM_OK : CLSTM_ERR_FORMAT, &why,
                        what);
        if (m) {
            int64_t n = -1;
            CHECK_STATUS(clstm_metadata_count(m, &n), CLSTM_OK);
            CHECK(n == nk, "%s: count %lld", what, (long long)n);
            int inorder = 1;
            for (int i = 0; i < nk && i < n; i++) {
                const char *k = "", *v = "";
                char want[16];
                snprintf(want, sizeof want, "k%d", i);
                inorder &= clstm_metadata_at(m, i, &k, &v) == CLSTM_OK && strcmp(k, want) == 0 &&
                           strcmp(v, "val") == 0;
            }
            CHECK(inorder, "%s: pairs not in the file's order", what);
            clstm_config c = clstm_config_default();
            CHECK_STATUS(clstm_get_config(m, &c), CLSTM_OK);
            CHECK(c.input_size == 2 && c.hidden_size == 1 && c.num_layers == 1,
                  "%s: config not inferred from the tensors", what);
            CHECK_STATUS(clstm_set_metadata(m, "after", "load"),
                         nk < CLSTM_MAX_METADATA ? CLSTM_OK : CLSTM_ERR_ARG);
            clstm_free(m);
        }
        free(f);
        free(b.s);
    }

    /* escapes in keys and values are decoded */
    f = file_with_meta("\"note\":\"caf\\u00e9\\n\\\"q\\\" \\\\ \\t\\/\\u0001 \\ud83d\\ude00\","
                       "\"cl\\u00e9\":\"raw \xC3\xA9\xF0\x9F\x98\x80\","
                       "\"\\u0041\\u00DF\":\"\"",
                       &size);
    if ((m = expect_load(f, size, CLSTM_OK, NULL, "escaped metadata"))) {
        const char *K[] = {"note", "cl\xC3\xA9", "A\xC3\x9F"},
                   *V[] = {"caf\xC3\xA9\n\"q\" \\ \t/\x01 \xF0\x9F\x98\x80",
                           "raw \xC3\xA9\xF0\x9F\x98\x80", ""};
        expect_pairs(m, 3, K, V, "escaped metadata, loaded");
        /* and it saves back to something that loads the same */
        clstm_model *l = round_trip(m, "escaped metadata, saved again");
        clstm_free(l);
        clstm_free(m);
    }
    free(f);

    /* key and value lengths in a file: the limits load, one more byte is
     * FORMAT (after 10 keys were already set: no leak) */
    {
        char *k256 = repeat("", "k", CLSTM_METADATA_KEY_MAX);
        char *k257 = repeat("", "k", CLSTM_METADATA_KEY_MAX + 1);
        char *v65536 = repeat("", "v", CLSTM_METADATA_VALUE_MAX);
        char *v65537 = repeat("", "v", CLSTM_METADATA_VALUE_MAX + 1);
        /* 65536 bytes written as 16384 escaped 4-byte characters */
        char *v_esc = repeat("", "\\ud83d\\ude00", 12 * (CLSTM_METADATA_VALUE_MAX / 4));
        char *v_esc_u = repeat("", "\xF0\x9F\x98\x80", CLSTM_METADATA_VALUE_MAX);
        const struct {
            const char *k, *v;
            clstm_status want;
            const char *what;
        } cases[] = {
            {k256, v65536, CLSTM_OK, "key and value at the limits"},
            {k257, "v", CLSTM_ERR_FORMAT, "key of KEY_MAX + 1 bytes"},
            {"big", v65537, CLSTM_ERR_FORMAT, "value of VALUE_MAX + 1 bytes"},
            {"esc", v_esc, CLSTM_OK, "escaped value decoding to VALUE_MAX bytes"},
            {"bad", "\\u0000", CLSTM_ERR_FORMAT, "value with \\u0000"},
            {"", "empty key", CLSTM_ERR_FORMAT, "empty key"},
        };
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
            sbuf b = {0};
            sb_str(&b, "");
            user_keys(&b, "before", 0, 10, "x");
            sb_str(&b, ",\"");
            sb_str(&b, cases[c].k);
            sb_str(&b, "\":\"");
            sb_str(&b, cases[c].v);
            sb_str(&b, "\"");
            f = file_with_meta(b.s, &size);
            if ((m = expect_load(f, size, cases[c].want, &why, cases[c].what))) {
                const char *v = NULL;
                CHECK_STATUS(clstm_get_metadata(m, cases[c].k, &v), CLSTM_OK);
                const char *want = cases[c].v == v_esc ? v_esc_u : cases[c].v;
                CHECK(v && strcmp(v, want) == 0, "%s: value not loaded", cases[c].what);
                int64_t n = 0;
                CHECK_STATUS(clstm_metadata_count(m, &n), CLSTM_OK);
                CHECK_EQ(n, 11);
                clstm_free(m);
            } else {
                CHECK(why != NULL, "%s: no reason given", cases[c].what);
            }
            free(f);
            free(b.s);
        }
        free(k256);
        free(k257);
        free(v65536);
        free(v65537);
        free(v_esc);
        free(v_esc_u);
    }

    /* a duplicate user key is FORMAT */
    f = file_with_meta("\"a\":\"1\",\"b\":\"2\",\"a\":\"3\"", &size);
    expect_load(f, size, CLSTM_ERR_FORMAT, NULL, "duplicate user key");
    free(f);

    /* a saved whole model (all 17 config keys, with "vocab") plus user keys:
     * the config keys do not count against CLSTM_MAX_METADATA */
    clstm_model *w = whole(7);
    if (!w) return;
    CHECK_STATUS(clstm_set_metadata(w, "saved", "by the model"), CLSTM_OK);
    unsigned char *saved = NULL;
    size_t saved_size = 0;
    if (CHECK_STATUS(clstm_save(w, g_path), CLSTM_OK)) saved = read_all(g_path, &saved_size);
    if (!CHECK(saved != NULL, "read the saved whole model")) {
        clstm_free(w);
        return;
    }
    {
        /* every config key is in the saved file (so the counts below hold) */
        for (int i = 0; i < N_RESERVED; i++) {
            char needle[64];
            snprintf(needle, sizeof needle, "\"%s\":\"", RESERVED[i]);
            int found = 0;
            for (size_t p = 0; !found && p + strlen(needle) <= saved_size; p++)
                found = memcmp(saved + p, needle, strlen(needle)) == 0;
            CHECK(found, "the saved whole model lacks %s", needle);
        }
    }
    /* 17 config + 1 saved + u inserted user keys */
    const int ucases[] = {0, 46, 47, 48, 62, 63};
    for (size_t c = 0; c < sizeof ucases / sizeof *ucases; c++) {
        const int u = ucases[c], users = u + 1, total = N_RESERVED + users;
        sbuf b = {0};
        sb_str(&b, "");
        user_keys(&b, "u", 0, u, "\\u00e9");
        size_t fs;
        f = b.n ? insert_meta(saved, saved_size, b.s, &fs) : NULL;
        if (!b.n) {
            fs = saved_size;
            f = xcalloc(fs, 1);
            memcpy(f, saved, fs);
        }
        snprintf(what, sizeof what, "whole model with %d user keys, %d entries", users, total);
        const clstm_status want = users <= CLSTM_MAX_METADATA ? CLSTM_OK : CLSTM_ERR_FORMAT;
        if (f && (m = expect_load(f, fs, want, &why, what))) {
            int64_t n = -1;
            CHECK_STATUS(clstm_metadata_count(m, &n), CLSTM_OK);
            CHECK(n == users, "%s: count %lld", what, (long long)n);
            const char *k = NULL, *v = NULL;
            if (u > 0) {
                CHECK_STATUS(clstm_metadata_at(m, 0, &k, &v), CLSTM_OK);
                CHECK(k && strcmp(k, "u0") == 0 && strcmp(v, "\xC3\xA9") == 0,
                      "%s: first pair %s", what, k ? k : "NULL");
            }
            CHECK_STATUS(clstm_metadata_at(m, n - 1, &k, &v), CLSTM_OK);
            CHECK(k && strcmp(k, "saved") == 0 && strcmp(v, "by the model") == 0,
                  "%s: last pair %s", what, k ? k : "NULL");
            for (int i = 0; i < N_RESERVED; i++) {
                v = "sentinel";
                CHECK_STATUS(clstm_get_metadata(m, RESERVED[i], &v), CLSTM_OK);
                CHECK(v == NULL, "%s: config key %s is user metadata", what, RESERVED[i]);
            }
            const char *va;
            size_t la;
            CHECK_STATUS(clstm_get_vocab(m, &va, &la), CLSTM_OK);
            CHECK(la == sizeof VOCAB - 1 && va && memcmp(va, VOCAB, la) == 0,
                  "%s: vocab lost", what);
            clstm_free(m);
        } else if (f && want != CLSTM_OK) {
            /* 80 entries: within the parser's cap, refused for its 63 user
             * keys; 81: the parser's cap itself. The two reasons differ. */
            CHECK(why != NULL, "%s: no reason", what);
        }
        free(f);
        free(b.s);
    }
    /* the parser's own cap of 80 __metadata__ entries: 80 and 81 give
     * different reasons (no file with 80 entries can load: there are only
     * 17 config keys, so 80 entries hold 63 user keys) */
    {
        const char *why80 = NULL, *why81 = NULL;
        sbuf b80 = {0}, b81 = {0};
        sb_str(&b80, "");
        sb_str(&b81, "");
        user_keys(&b80, "u", 0, 80 - N_RESERVED - 1, "x");
        user_keys(&b81, "u", 0, 81 - N_RESERVED - 1, "x");
        size_t s80 = 0, s81 = 0;
        unsigned char *f80 = insert_meta(saved, saved_size, b80.s, &s80);
        unsigned char *f81 = insert_meta(saved, saved_size, b81.s, &s81);
        if (f80 && f81) {
            expect_load(f80, s80, CLSTM_ERR_FORMAT, &why80, "80 metadata entries");
            expect_load(f81, s81, CLSTM_ERR_FORMAT, &why81, "81 metadata entries");
            CHECK(why80 && why81 && strcmp(why80, why81) != 0,
                  "80 and 81 entries fail for the same reason: %s",
                  why80 ? why80 : "NULL");
        }
        /* a bare file of 80 and 81 entries (no config keys) */
        sbuf c80 = {0}, c81 = {0};
        sb_str(&c80, "");
        sb_str(&c81, "");
        user_keys(&c80, "k", 0, 80, "x");
        user_keys(&c81, "k", 0, 81, "x");
        size_t t80, t81;
        unsigned char *g80 = file_with_meta(c80.s, &t80), *g81 = file_with_meta(c81.s, &t81);
        const char *w80 = NULL, *w81 = NULL;
        expect_load(g80, t80, CLSTM_ERR_FORMAT, &w80, "bare file, 80 user keys");
        expect_load(g81, t81, CLSTM_ERR_FORMAT, &w81, "bare file, 81 user keys");
        CHECK(w80 && why80 && strcmp(w80, why80) == 0,
              "80 entries: the bare file and the whole model fail differently");
        CHECK(w81 && why81 && strcmp(w81, why81) == 0,
              "81 entries: the bare file and the whole model fail differently");
        free(f80);
        free(f81);
        free(g80);
        free(g81);
        free(b80.s);
        free(b81.s);
        free(c80.s);
        free(c81.s);
    }
    /* a user value over the limit inserted into the saved whole model */
    {
        char *big = repeat("\"long\":\"", "v", 8 + CLSTM_METADATA_VALUE_MAX + 1);
        sbuf b = {0};
        sb_str(&b, big);
        sb_str(&b, "\"");
        size_t fs;
        f = insert_meta(saved, saved_size, b.s, &fs);
        if (f) expect_load(f, fs, CLSTM_ERR_FORMAT, NULL, "whole model, value of 65537 bytes");
        free(f);
        free(b.s);
        free(big);
    }
    free(saved);
    clstm_free(w);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/clstm_test_metadata_XXXXXX");
    if (!mkdtemp(g_dir)) {
        fprintf(stderr, "mkdtemp failed\n");
        return 1;
    }
    snprintf(g_path, sizeof g_path, "%s/m.safetensors", g_dir);
    test_basic();
    test_values();
    test_errors();
    test_round_trips();
    test_files();
    unlink(g_path);
    rmdir(g_dir);
    return ctest_finish();
}
