/*
 * test_safetensors.c -- clstm_save / clstm_load / clstm_load_buffer /
 * clstm_save_buffer: round trips over configs and dtypes (the buffer holding
 * the file's exact bytes), atomic saves, hostile arguments to the buffer
 * calls (NULL, short capacities), and hostile files (every
 * truncation, a bad header length, malformed JSON, bad offsets, dtypes, shapes,
 * names and metadata, trailing bytes, random byte flips), each of which must
 * give CLSTM_ERR_FORMAT and a NULL model, never a crash.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clstm.h"
#include "ctest.h"

static char g_dir[64]; /* a fresh temporary directory */

static char *path_in(const char *name)
{
    static char buf[256];
    snprintf(buf, sizeof buf, "%s/%s", g_dir, name);
    return buf;
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

/* 1 if a and b have equal configs (backend aside) and bitwise-equal params. */
static int same_model(clstm_model *a, clstm_model *b)
{
    clstm_config x = clstm_config_default(), y = x;
    void *pa, *pb;
    size_t na, nb;
    clstm_get_config(a, &x);
    clstm_get_config(b, &y);
    clstm_params(a, &pa, &na);
    clstm_params(b, &pb, &nb);
    size_t elem = x.dtype == CLSTM_FLOAT64 ? 8 : 4;
    return x.input_size == y.input_size && x.hidden_size == y.hidden_size &&
           x.num_layers == y.num_layers && x.dtype == y.dtype && x.proj_size == y.proj_size &&
           x.bidirectional == y.bidirectional && x.dropout == y.dropout &&
           x.peepholes == y.peepholes && x.input_forget == y.input_forget && x.clip == y.clip &&
           na == nb && memcmp(pa, pb, na * elem) == 0;
}

typedef struct {
    int64_t D, H, L, P;
    int bi, peep, ifg;
    double dropout, clip;
} cfg_case;

static clstm_model *make(const cfg_case *k, clstm_dtype dt, uint64_t seed)
{
    clstm_config c = clstm_config_default();
    clstm_model *m = NULL;
    c.input_size = k->D;
    c.hidden_size = k->H;
    c.num_layers = k->L;
    c.proj_size = k->P;
    c.bidirectional = k->bi;
    c.peepholes = k->peep;
    c.input_forget = k->ifg;
    c.dropout = k->dropout;
    c.clip = k->clip;
    c.dtype = dt;
    if (clstm_create(&c, seed, &m) != CLSTM_OK) return NULL;
    return m;
}

static const cfg_case g_cases[] = {
    {1, 1, 1, 0, 0, 0, 0, 0.0, 0.0},
    {3, 5, 2, 0, 1, 0, 0, 0.25, 0.0},
    {4, 6, 3, 2, 1, 1, 0, 0.1, 0.0},
    {2, 7, 2, 3, 0, 1, 1, 1.0 / 3.0, 2.718281828459045},
    {5, 3, 1, 0, 0, 0, 1, 0.0, 1e-300},
};
#define NCASES (sizeof g_cases / sizeof g_cases[0])

static void test_round_trip(void)
{
    for (size_t i = 0; i < NCASES; i++) {
        for (int dt = 0; dt < 2; dt++) {
            clstm_model *m = make(&g_cases[i], (clstm_dtype)dt, 100 + i), *r = NULL;
            if (!CHECK(m != NULL, "create case %zu", i)) continue;
            const char *p = path_in("rt.safetensors");
            CHECK_EQ(clstm_save(m, p), CLSTM_OK);
            CHECK_EQ(clstm_load(p, &r), CLSTM_OK);
            CHECK(r && same_model(m, r), "case %zu dtype %d: loaded model differs", i, dt);
            size_t size;
            unsigned char *buf = read_all(p, &size);
            clstm_model *rb = NULL;
            CHECK(buf && size % 8 == 0, "file size %zu not a multiple of 8", size);
            CHECK_EQ(clstm_load_buffer(buf, size, &rb), CLSTM_OK);
            CHECK(rb && same_model(m, rb), "case %zu dtype %d: buffer load differs", i, dt);
            free(buf);
            clstm_free(rb);
            clstm_free(r);
            clstm_free(m);
        }
    }
    CHECK_EQ(count_entries(g_dir), 1); /* no temporary files left behind */
}

static void test_errors_io(void)
{
    clstm_model *m = make(&g_cases[0], CLSTM_FLOAT32, 1), *r = m;
    const char *why = NULL;
    CHECK_EQ(clstm_load(path_in("missing"), &r), CLSTM_ERR_IO);
    CHECK(r == NULL, "failed load left *out set");
    CHECK_EQ(clstm_load_ex(g_dir, &r, &why), CLSTM_ERR_IO);
    CHECK(why != NULL, "no reason for loading a directory");
    CHECK_EQ(clstm_load(NULL, &r), CLSTM_ERR_NULL);
    CHECK_EQ(clstm_load(g_dir, NULL), CLSTM_ERR_NULL);
    CHECK_EQ(clstm_load_buffer(NULL, 8, &r), CLSTM_ERR_NULL);
    CHECK_EQ(clstm_save(NULL, path_in("x")), CLSTM_ERR_NULL);
    CHECK_EQ(clstm_save(m, NULL), CLSTM_ERR_NULL);
    /* more tensors than the loader accepts: refused, nothing written */
    const cfg_case big = {1, 1, 1025, 0, 0, 0, 0, 0.0, 0.0}; /* 4100 tensors */
    clstm_model *mb = make(&big, CLSTM_FLOAT32, 1);
    CHECK_EQ(clstm_save(mb, path_in("big")), CLSTM_ERR_SIZE);
    CHECK(access(path_in("big"), F_OK) != 0, "a refused save created a file");
    clstm_free(mb);
    const cfg_case most = {1, 1, 1024, 0, 0, 0, 0, 0.0, 0.0}; /* 4096 tensors: the limit */
    mb = make(&most, CLSTM_FLOAT32, 1);
    CHECK_EQ(clstm_save(mb, path_in("most")), CLSTM_OK);
    CHECK_EQ(clstm_load(path_in("most"), &r), CLSTM_OK);
    CHECK(r && same_model(mb, r), "a model of 4096 tensors does not round-trip");
    clstm_free(r);
    clstm_free(mb);
    remove(path_in("most"));
    CHECK(strcmp(clstm_status_string(CLSTM_ERR_IO), clstm_status_string(CLSTM_ERR_FORMAT)),
          "IO and FORMAT share a string");
    clstm_free(m);
}

/* Saving over a file replaces it; a failed save leaves everything as it was. */
static void test_atomic_save(void)
{
    clstm_model *a = make(&g_cases[1], CLSTM_FLOAT32, 1), *b = make(&g_cases[2], CLSTM_FLOAT64, 2);
    clstm_model *r = NULL;
    char p[320];
    snprintf(p, sizeof p, "%s", path_in("atomic.safetensors"));
    int before = count_entries(g_dir);
    CHECK_EQ(clstm_save(a, p), CLSTM_OK);
    CHECK_EQ(clstm_save(b, p), CLSTM_OK);
    CHECK_EQ(clstm_load(p, &r), CLSTM_OK);
    CHECK(r && same_model(b, r), "saving over a file did not replace it");
    clstm_free(r);
    CHECK_EQ(count_entries(g_dir), before + 1);

    /* into a missing directory: IO, nothing created */
    CHECK_EQ(clstm_save(a, path_in("nodir/m.safetensors")), CLSTM_ERR_IO);
    struct stat sb;
    CHECK(stat(path_in("nodir"), &sb) != 0, "a failed save created a directory");
    CHECK_EQ(count_entries(g_dir), before + 1);

    /* over a non-empty directory: rename fails, the temp file is removed */
    char sub[256];
    snprintf(sub, sizeof sub, "%s", path_in("sub"));
    CHECK(mkdir(sub, 0700) == 0, "mkdir");
    snprintf(p, sizeof p, "%s/keep", sub);
    CHECK_EQ(clstm_save(a, p), CLSTM_OK);
    CHECK_EQ(clstm_save(a, sub), CLSTM_ERR_IO);
    CHECK_EQ(count_entries(sub), 1);
    CHECK_EQ(count_entries(g_dir), before + 2);

    /* a write that fails (file size limit): the previous file is untouched */
    size_t n0, n1;
    snprintf(p, sizeof p, "%s", path_in("atomic.safetensors"));
    unsigned char *old = read_all(p, &n0);
    struct rlimit lim, small;
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    if (CHECK(getrlimit(RLIMIT_FSIZE, &lim) == 0, "getrlimit")) {
        small = lim;
        small.rlim_cur = 64;
        if (CHECK(setrlimit(RLIMIT_FSIZE, &small) == 0, "setrlimit")) {
            CHECK_EQ(clstm_save(a, p), CLSTM_ERR_IO);
            CHECK(setrlimit(RLIMIT_FSIZE, &lim) == 0, "restore rlimit");
        }
    }
    signal(SIGXFSZ, prev);
    unsigned char *now = read_all(p, &n1);
    CHECK(old && now && n0 == n1 && memcmp(old, now, n0) == 0,
          "a failed save changed the existing file");
    CHECK_EQ(count_entries(g_dir), before + 2);
    free(old);
    free(now);
    clstm_free(a);
    clstm_free(b);
}

/* clstm_save_buffer writes clstm_save's bytes exactly; clstm_load_buffer_ex
 * reads them back; a whole model with a vocabulary and metadata too. */
static void test_save_buffer(void)
{
    for (size_t i = 0; i < NCASES + 1; i++) {
        for (int dt = 0; dt < 2; dt++) {
            clstm_model *m = NULL, *r = NULL;
            if (i < NCASES) {
                m = make(&g_cases[i], (clstm_dtype)dt, 200 + i);
            } else { /* one-hot over "ab\"\\", a softmax head, user metadata */
                clstm_config c = clstm_config_default();
                c.input_size = c.vocab_size = 4;
                c.hidden_size = 3;
                c.encoding = CLSTM_ENCODING_ONEHOT;
                c.output_size = 4;
                c.softmax = 1;
                c.dtype = (clstm_dtype)dt;
                if (clstm_create(&c, 7, &m) == CLSTM_OK &&
                    (clstm_set_vocab(m, "ab\"\\", 4) != CLSTM_OK ||
                     clstm_set_metadata(m, "task", "char\n\"quoted\"") != CLSTM_OK)) {
                    clstm_free(m);
                    m = NULL;
                }
            }
            if (!CHECK(m != NULL, "create case %zu", i)) continue;
            const char *p = path_in("buf.safetensors");
            size_t fsize = 0, size = 0, written = 0;
            CHECK_EQ(clstm_save(m, p), CLSTM_OK);
            unsigned char *file = read_all(p, &fsize);
            CHECK_EQ(clstm_save_buffer_size(m, &size), CLSTM_OK);
            CHECK(size == fsize, "case %zu: size %zu, the file has %zu", i, size, fsize);
            unsigned char *buf = xcalloc(size + 16, 1);
            memset(buf, 0xA5, size + 16);
            CHECK_EQ(clstm_save_buffer(m, buf, size + 16, &written), CLSTM_OK);
            CHECK(written == size, "case %zu: wrote %zu of %zu", i, written, size);
            CHECK(file && memcmp(buf, file, fsize) == 0, "case %zu: the bytes differ", i);
            int tail = 1;
            for (size_t k = size; k < size + 16; k++) tail &= buf[k] == 0xA5;
            CHECK(tail, "case %zu: wrote past the size", i);
            const char *why = "unset";
            CHECK_EQ(clstm_load_buffer_ex(buf, written, &r, &why), CLSTM_OK);
            CHECK(why == NULL, "a reason on success");
            CHECK(r && same_model(m, r), "case %zu dtype %d: buffer round trip differs", i, dt);
            size_t again = 0;
            if (r) CHECK_EQ(clstm_save_buffer_size(r, &again), CLSTM_OK);
            CHECK(again == size, "case %zu: the reloaded model's size differs", i);
            free(file);
            free(buf);
            clstm_free(r);
            clstm_free(m);
            remove(p);
        }
    }
}

/* NULLs, short capacities, the tensor limit: a status, nothing written. */
static void test_save_buffer_hostile(void)
{
    clstm_model *m = make(&g_cases[1], CLSTM_FLOAT32, 3), *r = m;
    size_t size = 0, written = 12345;
    CHECK_EQ(clstm_save_buffer_size(NULL, &size), CLSTM_ERR_NULL);
    CHECK_EQ(clstm_save_buffer_size(m, NULL), CLSTM_ERR_NULL);
    CHECK_EQ(clstm_save_buffer_size(m, &size), CLSTM_OK);
    unsigned char *buf = xcalloc(size, 1), one = 0x5A;
    CHECK_EQ(clstm_save_buffer(NULL, buf, size, &written), CLSTM_ERR_NULL);
    CHECK_EQ(clstm_save_buffer(m, NULL, size, &written), CLSTM_ERR_NULL);
    CHECK_EQ(clstm_save_buffer(m, buf, size, NULL), CLSTM_ERR_NULL);
    CHECK_EQ(written, 12345);
    /* too small by one, and zero: SIZE, the size needed in *written, data untouched */
    memset(buf, 0x5A, size);
    CHECK_EQ(clstm_save_buffer(m, buf, size - 1, &written), CLSTM_ERR_SIZE);
    CHECK_EQ(written, size);
    int untouched = 1;
    for (size_t k = 0; k < size; k++) untouched &= buf[k] == 0x5A;
    CHECK(untouched, "a refused save wrote into the buffer");
    written = 0;
    CHECK_EQ(clstm_save_buffer(m, &one, 0, &written), CLSTM_ERR_SIZE);
    CHECK(written == size && one == 0x5A, "capacity 0: wrote or misreported");
    /* exactly the size: OK; a truncated copy does not load */
    CHECK_EQ(clstm_save_buffer(m, buf, size, &written), CLSTM_OK);
    const char *why = NULL;
    CHECK_EQ(clstm_load_buffer_ex(buf, size - 1, &r, &why), CLSTM_ERR_FORMAT);
    CHECK(r == NULL && why != NULL, "a failed load: model or no reason");
    CHECK_EQ(clstm_load_buffer_ex(buf, 0, &r, &why), CLSTM_ERR_FORMAT);
    CHECK_EQ(clstm_load_buffer_ex(NULL, size, &r, &why), CLSTM_ERR_NULL);
    CHECK(why == NULL && r == NULL, "NULL data: a reason or a model");
    CHECK_EQ(clstm_load_buffer_ex(buf, size, NULL, NULL), CLSTM_ERR_NULL);
    CHECK_EQ(clstm_load_buffer_ex(buf, size, &r, NULL), CLSTM_OK);
    CHECK(r && same_model(m, r), "load without why");
    clstm_free(r);
    free(buf);
    /* more tensors than the loader accepts: SIZE from both calls */
    const cfg_case big = {1, 1, 1025, 0, 0, 0, 0, 0.0, 0.0};
    clstm_model *mb = make(&big, CLSTM_FLOAT32, 1);
    size = 0;
    CHECK_EQ(clstm_save_buffer_size(mb, &size), CLSTM_ERR_SIZE);
    CHECK_EQ(size, 0);
    CHECK_EQ(clstm_save_buffer(mb, &one, 1, &written), CLSTM_ERR_SIZE);
    clstm_free(mb);
    clstm_free(m);
}

/* ------------------------------------------------------- hostile inputs */

/* The valid base file for the mutations: D = H = L = 1, float32, 64 bytes. */
static const char g_base[] =
    "{\"__metadata__\":{\"input_size\":\"1\",\"hidden_size\":\"1\",\"num_layers\":\"1\"},"
    "\"weight_ih_l0\":{\"dtype\":\"F32\",\"shape\":[4,1],\"data_offsets\":[0,16]},"
    "\"weight_hh_l0\":{\"dtype\":\"F32\",\"shape\":[4,1],\"data_offsets\":[16,32]},"
    "\"bias_ih_l0\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[32,48]},"
    "\"bias_hh_l0\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[48,64]}}";

/* A file: 8-byte N = strlen(json), the json, then data_bytes of data. */
static unsigned char *build(const char *json, size_t data_bytes, size_t *size)
{
    size_t n = strlen(json);
    unsigned char *f = xcalloc(8 + n + data_bytes, 1);
    for (int i = 0; i < 8; i++) f[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(f + 8, json, n);
    for (size_t i = 0; i < data_bytes; i += 4) {
        float v = 0.125f * (float)(i / 4);
        memcpy(f + 8 + n + i, &v, data_bytes - i < 4 ? data_bytes - i : 4);
    }
    *size = 8 + n + data_bytes;
    return f;
}

/* Load a buffer; check the status; on success free the model. */
static void expect_buf(const unsigned char *f, size_t size, clstm_status want, const char *what)
{
    int dummy;
    clstm_model *m = (clstm_model *)(void *)&dummy;
    clstm_status st = clstm_load_buffer(f, size, &m);
    CHECK(st == want, "%s: got %d (%s), expected %d", what, (int)st, clstm_status_string(st),
          (int)want);
    CHECK((st == CLSTM_OK) == (m != NULL), "%s: *out is %p with status %d", what, (void *)m,
          (int)st);
    if (st == CLSTM_OK) clstm_free(m);
}

static void expect_json(const char *json, size_t data_bytes, clstm_status want, const char *what)
{
    size_t size;
    unsigned char *f = build(json, data_bytes, &size);
    expect_buf(f, size, want, what);
    free(f);
}

/* g_base with the first occurrence of `from` replaced by `to` (free it), or
 * NULL (a failed check) when `from` is not in the base. */
static char *mutate(const char *from, const char *to)
{
    const char *at = strstr(g_base, from);
    if (!CHECK(at != NULL, "mutation source \"%s\" not in the base", from)) return NULL;
    char *json = xcalloc(strlen(g_base) + strlen(to) + 1, 1);
    memcpy(json, g_base, (size_t)(at - g_base));
    strcat(json, to);
    strcat(json, at + strlen(from));
    return json;
}

static void expect_mutation(const char *from, const char *to, size_t data_bytes,
                            clstm_status want)
{
    char *json = mutate(from, to);
    if (!json) return;
    char what[200];
    snprintf(what, sizeof what, "\"%.60s\" -> \"%.100s\"", from, to);
    expect_json(json, data_bytes, want, what);
    free(json);
}

/* The mutated file on disk: clstm_load_ex must fail with FORMAT and a reason
 * containing `word`. For the checks that other checks would back up (a
 * duplicate name also leaves a tensor missing), only the reason tells them
 * apart. */
static void expect_reason(const char *from, const char *to, const char *word)
{
    char *json = mutate(from, to);
    if (!json) return;
    size_t size;
    unsigned char *f = build(json, 64, &size);
    free(json);
    const char *p = path_in("reason.safetensors");
    FILE *out = fopen(p, "wb");
    int written = out && fwrite(f, 1, size, out) == size;
    if (out && fclose(out) != 0) written = 0;
    free(f);
    if (!CHECK(written, "writing %s", p)) return;
    clstm_model *m = NULL;
    const char *why = NULL;
    CHECK_EQ(clstm_load_ex(p, &m, &why), CLSTM_ERR_FORMAT);
    CHECK(m == NULL && why && strstr(why, word), "\"%s\" -> \"%s\": reason \"%s\", expected "
          "one with \"%s\"", from, to, why ? why : "(null)", word);
    remove(p);
}

typedef struct {
    const char *from, *to;
} mutation;

static const mutation g_bad[] = {
    /* syntax */
    {"]}}", "]}"}, {"]}}", "]},}"}, {"\"weight_ih_l0\":", "\"weight_ih_l0\""},
    {"\"dtype\":\"F32\"", "'dtype':\"F32\""}, {"[4,1]", "[4,1,]"}, {"[4,1]", "[4 1]"},
    {"{\"__metadata__\"", "[\"__metadata__\""}, {"]}}", "]}}x"}, {"]}}", "]}}}"},
    {"\"F32\"", "\"F32"}, {"[0,16]", "[0,16"},
    /* escapes and encoding */
    {"weight_hh_l0", "weight_hh\\q_l0"}, {"weight_hh_l0", "weight_hh\\u12_l0"},
    {"weight_hh_l0", "weight_hh\\uZZZZ_l0"}, {"weight_hh_l0", "weight\\ud800_hh_l0"},
    {"weight_hh_l0", "weight\\udc00_hh_l0"}, {"weight_hh_l0", "weight\\ud800\\u0041_hh_l0"},
    {"weight_hh_l0", "weight_hh\\u0000_l0"}, {"weight_hh_l0", "weight_hh\n_l0"},
    {"weight_hh_l0", "weight_hh\xff_l0"}, {"weight_hh_l0", "weight_hh\xc0\xaf_l0"},
    {"weight_hh_l0", "weight_hh\xe2\x82_l0"}, {"weight_hh_l0", "weight_hh\xed\xa0\x80_l0"},
    {"weight_hh_l0", "weight_hh\\"},
    /* duplicates */
    {"\"dtype\":\"F32\"", "\"dtype\":\"F32\",\"dtype\":\"F32\""},
    {"\"input_size\":\"1\"", "\"input_size\":\"1\",\"input_size\":\"1\""},
    {"\"weight_hh_l0\":", "\"__metadata__\":{},\"weight_hh_l0\":"},
    {"bias_hh_l0", "bias_ih_l0"},
    /* wrong types */
    {"[4,1]", "\"4,1\""}, {"\"F32\"", "32"}, {"[0,16]", "{}"}, {"\"1\"", "1"},
    {"[4,1]", "[4.0,1]"}, {"[4,1]", "[4e0,1]"}, {"[4,1]", "[true,1]"}, {"[4,1]", "null"},
    {"[4,1]", "[[4],1]"}, {"\"1\"}", "{\"a\":\"b\"}}"}, {"[0,16]", "[0]"}, {"[0,16]", "[0,16,0]"},
    /* numbers */
    {"[4,1]", "[-4,1]"}, {"[4,1]", "[04,1]"}, {"[4,1]", "[18446744073709551616,1]"},
    {"[4,1]", "[4611686018427387904,4]"}, {"[4,1]", "[4,1,1,1,1,1,1,1,1]"},
    {"[0,16]", "[0,18446744073709551615]"}, {"[16,32]", "[99999999999999999999,32]"},
    /* missing and unknown fields */
    {"\"dtype\":\"F32\",", ""}, {",\"data_offsets\":[0,16]", ""},
    {"\"shape\":[4,1],", ""}, {"\"dtype\":\"F32\"", "\"dtype\":\"F32\",\"x\":\"y\""},
    /* offsets */
    {"[48,64]", "[48,80]"}, {"[16,32]", "[8,24]"}, {"[0,16]", "[0,12]"}, {"[16,32]", "[32,16]"},
    {"[48,64]", "[0,16]"}, {"[0,16]", "[16,32]"},
    /* dtypes */
    {"\"F32\"", "\"F64\""}, {"\"F32\"", "\"BF16\""}, {"\"F32\"", "\"f32\""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"1\",\"dtype\":\"float64\""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"1\",\"dtype\":\"float16\""},
    /* shapes */
    {"[4,1]", "[1,4]"}, {"[4]", "[2,2]"}, {"[4,1]", "[4]"}, {"[4]", "[4,1]"}, {"[4,1]", "[]"},
    /* names */
    {"bias_hh_l0", "bias_xx_l0"}, {"bias_hh_l0", "bias_hh_l1"}, {"bias_hh_l0", "bias_hh_l0_reverse"},
    {"bias_hh_l0", ""},
    /* metadata values */
    {"\"input_size\":\"1\"", "\"input_size\":\"x\""}, {"\"input_size\":\"1\"", "\"input_size\":\"-1\""},
    {"\"input_size\":\"1\"", "\"input_size\":\"\""}, {"\"input_size\":\"1\"", "\"input_size\":\" 1\""},
    {"\"input_size\":\"1\"", "\"input_size\":\"0\""}, {"\"input_size\":\"1\"", "\"input_size\":\"1.0\""},
    {"\"input_size\":\"1\"", "\"input_size\":\"99999999999999999999\""},
    {"\"input_size\":\"1\"", "\"input_size\":\"2\""}, {"\"hidden_size\":\"1\"", "\"hidden_size\":\"2\""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"2\""}, {"\"num_layers\":\"1\"", "\"num_layers\":\"0\""},
    /* sizes that would need gigabytes: rejected before anything is allocated */
    {"\"hidden_size\":\"1\"", "\"hidden_size\":\"100000000\""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"100000000\""},
    {"\"hidden_size\":\"1\"", "\"hidden_size\":\"4611686018427387904\""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"1\",\"proj_size\":\"1\""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"1\",\"proj_size\":\"x\""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"1\",\"bidirectional\":\"2\""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"1\",\"bidirectional\":\"1\""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"1\",\"peepholes\":\"yes\""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"1\",\"dropout\":\"1\""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"1\",\"dropout\":\"nan\""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"1\",\"dropout\":\"0x1p-2\""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"1\",\"dropout\":\"0.5x\""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"1\",\"clip\":\"-1\""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"1\",\"clip\":\"inf\""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"1\",\"clip\":\"1e999\""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"1\",\"format\":\"other\""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"1\",\"format_version\":\"2\""},
    {"{\"input_size\":\"1\",\"hidden_size\":\"1\",\"num_layers\":\"1\"}", "\"x\""},
};

/* Mutations that must still load: they check that the parser accepts what
 * it should (so that the rejections above are not vacuous). */
static const mutation g_good[] = {
    {"]}}", "]}}"}, /* the base itself */
    {"]}}", "]}}   \n\t"},
    {"weight_ih_l0\":", "weight_\\u0069h_l0\":"},
    {"{\"input_size\":\"1\",\"hidden_size\":\"1\",\"num_layers\":\"1\"}", "{}"},
    {"\"__metadata__\":{\"input_size\":\"1\",\"hidden_size\":\"1\",\"num_layers\":\"1\"},", ""},
    {"\"num_layers\":\"1\"", "\"num_layers\":\"1\",\"format\":\"clstm\",\"format_version\":\"1\","
                             "\"dtype\":\"float32\",\"dropout\":\"0\",\"clip\":\"0.5\","
                             "\"note\":\"caf\xc3\xa9 \\ud83d\\ude00\",\"peepholes\":\"false\""},
    {"{\"dtype\":\"F32\",\"shape\":[4,1]", " { \"shape\" : [ 4 , 1 ] , \"dtype\" : \"F32\" "},
};

static void test_mutations(void)
{
    for (size_t i = 0; i < sizeof g_good / sizeof g_good[0]; i++)
        expect_mutation(g_good[i].from, g_good[i].to, 64, CLSTM_OK);
    for (size_t i = 0; i < sizeof g_bad / sizeof g_bad[0]; i++)
        expect_mutation(g_bad[i].from, g_bad[i].to, 64, CLSTM_ERR_FORMAT);
    /* a gap, and trailing bytes after the last tensor */
    expect_mutation("[48,64]", "[52,68]", 68, CLSTM_ERR_FORMAT);
    expect_mutation("]}}", "]}}", 68, CLSTM_ERR_FORMAT);
    expect_mutation("]}}", "]}}", 60, CLSTM_ERR_FORMAT);
    /* a missing tensor (and its data) */
    expect_mutation(",\"bias_hh_l0\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[48,64]}",
                    "", 48, CLSTM_ERR_FORMAT);
    /* an extra tensor with its own data */
    expect_mutation("]}}", "]},\"extra\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[64,68]}}",
                    68, CLSTM_ERR_FORMAT);
    /* deep nesting, in a value and as the whole header */
    char deep[4200];
    memset(deep, '[', 4000);
    memset(deep + 4000, 0, 200);
    expect_json(deep, 0, CLSTM_ERR_FORMAT, "4000 x '['");
    memcpy(deep, "{\"a\":", 5);
    expect_json(deep, 0, CLSTM_ERR_FORMAT, "{\"a\": 4000 x '['");
    expect_mutation("\"1\"}", "{\"a\":{\"a\":{\"a\":{\"a\":{\"a\":{}}}}}}}", 64, CLSTM_ERR_FORMAT);
    expect_json("", 64, CLSTM_ERR_FORMAT, "empty header");
    expect_json("{}", 0, CLSTM_ERR_FORMAT, "no tensors");
    expect_json(" ", 0, CLSTM_ERR_FORMAT, "a blank header");
    char *spaced = mutate("{\"__metadata__\"", " {\"__metadata__\"");
    if (spaced) expect_json(spaced, 64, CLSTM_ERR_FORMAT, "white space before '{'");
    free(spaced);
    expect_reason("bias_hh_l0", "bias_ih_l0", "duplicate tensor");
    expect_reason("\"input_size\":\"1\"", "\"input_size\":\"1\",\"input_size\":\"1\"",
                  "duplicate __metadata__ key");
    expect_reason("\"dtype\":\"F32\"", "\"dtype\":\"F32\",\"dtype\":\"F32\"", "duplicate field");
    expect_reason("\"weight_hh_l0\":", "\"__metadata__\":{},\"weight_hh_l0\":",
                  "duplicate __metadata__");
    expect_reason("[16,32]", "[8,24]", "tile");
    expect_reason("[4,1]", "[1,4]", "shape");
    expect_reason("bias_hh_l0", "bias_xx_l0", "missing");
}

static void test_header_length(void)
{
    size_t size;
    unsigned char *f = build(g_base, 64, &size);
    const uint64_t n = strlen(g_base);
    const uint64_t bad[] = {0, n - 1, n + 1, size - 8 + 1, 100000001, (uint64_t)100 << 20 | 1,
                            UINT64_MAX, (uint64_t)1 << 63, size, n + 64};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int b = 0; b < 8; b++) f[b] = (unsigned char)(bad[i] >> (8 * b));
        char what[64];
        snprintf(what, sizeof what, "header length %llu", (unsigned long long)bad[i]);
        expect_buf(f, size, CLSTM_ERR_FORMAT, what);
    }
    for (int b = 0; b < 8; b++) f[b] = (unsigned char)(n >> (8 * b));
    expect_buf(f, size, CLSTM_OK, "the right header length");
    free(f);
}

/* A real saved file: every truncation fails; random byte flips never crash. */
static void test_truncation_and_flips(void)
{
    const cfg_case k = {2, 3, 2, 2, 1, 1, 0, 0.5, 0.0};
    clstm_model *m = make(&k, CLSTM_FLOAT64, 7);
    const char *p = path_in("fuzz.safetensors");
    size_t size;
    CHECK_EQ(clstm_save(m, p), CLSTM_OK);
    unsigned char *f = read_all(p, &size);
    clstm_free(m);
    if (!CHECK(f != NULL, "read back")) return;
    long bad = 0;
    for (size_t len = 0; len < size; len++) {
        clstm_model *r = NULL;
        clstm_status st = clstm_load_buffer(f, len, &r);
        bad += st != CLSTM_ERR_FORMAT || r != NULL;
        clstm_free(r);
    }
    CHECK(bad == 0, "%ld of %zu truncations did not fail with FORMAT", bad, size);
    expect_buf(f, size, CLSTM_OK, "the untruncated file");

    unsigned char *g = xcalloc(size, 1);
    uint64_t s = 0x9E3779B97F4A7C15ull;
    long ok = 0, other = 0;
    for (int it = 0; it < 4000; it++) {
        memcpy(g, f, size);
        int flips = 1 + it % 3;
        for (int j = 0; j < flips; j++) {
            s ^= s << 13, s ^= s >> 7, s ^= s << 17;
            /* mostly the header, where the parser lives */
            size_t at = (size_t)(s >> 8) % (it % 4 ? size / 3 : size);
            g[at] ^= (unsigned char)(1u << (s & 7));
        }
        clstm_model *r = NULL;
        clstm_status st = clstm_load_buffer(g, size, &r);
        ok += st == CLSTM_OK;
        other += st != CLSTM_OK && st != CLSTM_ERR_FORMAT;
        other += (st == CLSTM_OK) != (r != NULL);
        clstm_free(r);
    }
    CHECK(other == 0, "%ld byte-flipped files gave a status other than OK/FORMAT", other);
    CHECK(ok > 0 && ok < 4000, "byte flips: %ld of 4000 loaded (expected some, not all)", ok);
    free(g);
    free(f);
}

int main(void)
{
    snprintf(g_dir, sizeof g_dir, "/tmp/clstm_st_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 2;
    }
    test_round_trip();
    test_errors_io();
    test_atomic_save();
    test_save_buffer();
    test_save_buffer_hostile();
    test_mutations();
    test_header_length();
    test_truncation_and_flips();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", g_dir);
    return ctest_finish();
}
