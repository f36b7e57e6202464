/*
 * test_api.c -- every public function given bad input, checking the exact
 * status it returns, that failed calls write no output (the header's rule),
 * and that failed calls leave the model and the workspace usable.
 */
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clstm.h"
#include "ctest.h"

/* The small model most tests use: D=3, H=5, L=2, T=3, B=2, float64. */
enum { D = 3, H = 5, L = 2, T = 3, B = 2 };

static clstm_config small_config(void)
{
    clstm_config c = clstm_config_default();
    c.input_size = D;
    c.hidden_size = H;
    c.num_layers = L;
    c.dtype = CLSTM_FLOAT64;
    return c;
}

static clstm_model *small_model(uint64_t seed)
{
    clstm_config c = small_config();
    clstm_model *m = NULL;
    if (!CHECK_STATUS(clstm_create(&c, seed, &m), CLSTM_OK))
        return NULL;
    CHECK(m != NULL, "clstm_create returned OK and a NULL model");
    return m;
}

/* The small model with a projection size, directions and dropout. */
static clstm_model *option_model(int64_t P, int bidirectional, double dropout)
{
    clstm_config c = small_config();
    clstm_model *m = NULL;
    c.proj_size = P;
    c.bidirectional = bidirectional;
    c.dropout = dropout;
    if (!CHECK(clstm_create(&c, 1, &m) == CLSTM_OK && m != NULL,
               "clstm_create(P=%lld bidirectional=%d dropout=%g) failed", (long long)P,
               bidirectional, dropout))
        return NULL;
    return m;
}

/* Parameter count by the header's layout: layer 0 reads D inputs, the others H. */
static size_t small_params(void)
{
    return (size_t)(4 * H * D + 4 * H * H + 8 * H) + (size_t)(L - 1) * (8 * H * H + 8 * H);
}

/* ------------------------------------------------------------ version */

static void test_version(void)
{
    char buf[64];
    CHECK_EQ(clstm_version_number(), CLSTM_VERSION_NUMBER);
    CHECK(clstm_version_string() != NULL, "clstm_version_string() is NULL");
    if (clstm_version_string())
        CHECK(strcmp(clstm_version_string(), CLSTM_VERSION_STRING) == 0,
              "runtime \"%s\", header \"%s\"", clstm_version_string(), CLSTM_VERSION_STRING);
    snprintf(buf, sizeof buf, "%d.%d.%d", CLSTM_VERSION_MAJOR, CLSTM_VERSION_MINOR,
             CLSTM_VERSION_PATCH);
    CHECK(strcmp(buf, CLSTM_VERSION_STRING) == 0, "macros give %s, string is %s", buf,
          CLSTM_VERSION_STRING);
}

/* ------------------------------------------------------------ status */

static void test_status_strings(void)
{
    const char *s[CLSTM_STATUS_COUNT_];
    static const int unknown[] = {CLSTM_STATUS_COUNT_, CLSTM_STATUS_COUNT_ + 1, 100, -1,
                                  INT_MAX, INT_MIN};
    for (int i = 0; i < CLSTM_STATUS_COUNT_; i++) {
        s[i] = clstm_status_string((clstm_status)i);
        if (!CHECK(s[i] != NULL, "clstm_status_string(%d) is NULL", i))
            return;
        CHECK(s[i][0] != '\0', "clstm_status_string(%d) is empty", i);
        CHECK(strcmp(s[i], "unknown status") != 0, "known status %d reads \"unknown status\"",
              i);
        for (int j = 0; j < i; j++)
            CHECK(strcmp(s[i], s[j]) != 0, "status %d and %d share the string \"%s\"", i, j,
                  s[i]);
    }
    for (size_t k = 0; k < sizeof unknown / sizeof unknown[0]; k++) {
        const char *u = clstm_status_string((clstm_status)unknown[k]);
        CHECK(u != NULL && strcmp(u, "unknown status") == 0,
              "clstm_status_string(%d) is \"%s\", expected \"unknown status\"", unknown[k],
              u ? u : "(null)");
    }
}

/* ------------------------------------------------------------ config, create */

static void test_config_default(void)
{
    clstm_config c = clstm_config_default();
    CHECK_EQ(c.struct_size, sizeof(clstm_config));
    CHECK_EQ(c.input_size, 1);
    CHECK_EQ(c.hidden_size, 1);
    CHECK_EQ(c.num_layers, 1);
    CHECK_EQ(c.dtype, CLSTM_FLOAT32);
    CHECK_EQ(c.backend, CLSTM_BACKEND_DEFAULT);
    CHECK_EQ(c.proj_size, 0);
    CHECK_EQ(c.bidirectional, 0);
    CHECK(c.dropout == 0.0, "default dropout %g", c.dropout);
}

/* clstm_create(cfg) must fail with `want` and set *out to NULL. */
static void expect_create_fails(clstm_config cfg, clstm_status want, const char *what)
{
    int dummy = 0;
    clstm_model *m = (clstm_model *)(void *)&dummy; /* a non-NULL sentinel */
    clstm_status st = clstm_create(&cfg, 1, &m);
    CHECK(st == want, "clstm_create with %s returned %d (%s), expected %d (%s)", what,
          (int)st, clstm_status_string(st), (int)want, clstm_status_string(want));
    CHECK(m == NULL, "clstm_create with %s failed but left *out non-NULL", what);
    if (st == CLSTM_OK && m != (clstm_model *)(void *)&dummy)
        clstm_free(m);
}

static void test_create(void)
{
    const clstm_config good = small_config();
    clstm_config c;
    clstm_model *m;
    int dummy = 0;

    /* NULL pointers */
    m = (clstm_model *)(void *)&dummy;
    CHECK_STATUS(clstm_create(NULL, 1, &m), CLSTM_ERR_NULL);
    CHECK(m == NULL, "clstm_create(NULL cfg) left *out non-NULL");
    CHECK_STATUS(clstm_create(&good, 1, NULL), CLSTM_ERR_NULL);

    /* zero and negative sizes */
    {
        static const int64_t bad[] = {0, -1, -1000, INT64_MIN};
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            char what[80];
            c = good;
            c.input_size = bad[i];
            snprintf(what, sizeof what, "input_size=%lld", (long long)bad[i]);
            expect_create_fails(c, CLSTM_ERR_SIZE, what);
            c = good;
            c.hidden_size = bad[i];
            snprintf(what, sizeof what, "hidden_size=%lld", (long long)bad[i]);
            expect_create_fails(c, CLSTM_ERR_SIZE, what);
            c = good;
            c.num_layers = bad[i];
            snprintf(what, sizeof what, "num_layers=%lld", (long long)bad[i]);
            expect_create_fails(c, CLSTM_ERR_SIZE, what);
        }
    }

    /* products that overflow: the element count, or the bytes */
    c = good;
    c.hidden_size = INT64_MAX / 2; /* 4H overflows */
    expect_create_fails(c, CLSTM_ERR_OVERFLOW, "hidden_size=INT64_MAX/2");
    c = good;
    c.hidden_size = (int64_t)1 << 31; /* 4H*H = 2^64 */
    expect_create_fails(c, CLSTM_ERR_OVERFLOW, "hidden_size=2^31");
    c = good;
    c.hidden_size = (int64_t)1 << 30; /* 2^62 elements: fits int64, bytes do not */
    c.num_layers = 1;
    expect_create_fails(c, CLSTM_ERR_OVERFLOW, "hidden_size=2^30 float64 (bytes overflow)");
    c.dtype = CLSTM_FLOAT32;
    expect_create_fails(c, CLSTM_ERR_OVERFLOW, "hidden_size=2^30 float32 (bytes overflow)");
    c = good;
    c.input_size = INT64_MAX; /* 4H*D */
    expect_create_fails(c, CLSTM_ERR_OVERFLOW, "input_size=INT64_MAX");
    c = good;
    c.input_size = 1;
    c.hidden_size = 1;
    c.num_layers = INT64_MAX / 8; /* 16 parameters per layer */
    expect_create_fails(c, CLSTM_ERR_OVERFLOW, "num_layers=INT64_MAX/8");
    c.num_layers = INT64_MAX;
    expect_create_fails(c, CLSTM_ERR_OVERFLOW, "num_layers=INT64_MAX");

    /* unknown dtype and backend values */
    c = good;
    c.dtype = (clstm_dtype)2;
    expect_create_fails(c, CLSTM_ERR_DTYPE, "dtype=2");
    c.dtype = (clstm_dtype)-1;
    expect_create_fails(c, CLSTM_ERR_DTYPE, "dtype=-1");
    c.dtype = (clstm_dtype)1000;
    expect_create_fails(c, CLSTM_ERR_DTYPE, "dtype=1000");
    /* an out-of-range backend is an invalid config value (ARG); UNSUPPORTED
     * is for a valid backend that was not compiled in */
    c = good;
    c.backend = (clstm_backend)3;
    expect_create_fails(c, CLSTM_ERR_ARG, "backend=3");
    c.backend = (clstm_backend)-1;
    expect_create_fails(c, CLSTM_ERR_ARG, "backend=-1");

    /* projection, directions, dropout (H = 5): a projection size out of
     * 1..H-1 is a size error, the others invalid values */
    {
        static const int64_t bad_proj[] = {-1, -1000, INT64_MIN, H, H + 1, INT64_MAX};
        static const int bad_bidir[] = {2, -1, 100, INT_MIN};
        static const double bad_dropout[] = {-0.1, -1e-300, 1.0, 1.5, INFINITY, -INFINITY, NAN};
        char what[80];
        for (size_t i = 0; i < sizeof bad_proj / sizeof bad_proj[0]; i++) {
            c = good;
            c.proj_size = bad_proj[i];
            c.bidirectional = (int)(i % 2);
            snprintf(what, sizeof what, "proj_size=%lld bidirectional=%d",
                     (long long)bad_proj[i], c.bidirectional);
            expect_create_fails(c, CLSTM_ERR_SIZE, what);
        }
        for (size_t i = 0; i < sizeof bad_bidir / sizeof bad_bidir[0]; i++) {
            c = good;
            c.bidirectional = bad_bidir[i];
            snprintf(what, sizeof what, "bidirectional=%d", bad_bidir[i]);
            expect_create_fails(c, CLSTM_ERR_ARG, what);
        }
        for (size_t i = 0; i < sizeof bad_dropout / sizeof bad_dropout[0]; i++) {
            c = good;
            c.dropout = bad_dropout[i];
            snprintf(what, sizeof what, "dropout=%g", bad_dropout[i]);
            expect_create_fails(c, CLSTM_ERR_ARG, what);
        }
    }
    /* ...and their edges are valid (dropout with one layer too, as torch) */
    {
        clstm_config edge[5];
        for (int i = 0; i < 5; i++)
            edge[i] = good;
        edge[0].proj_size = H - 1;
        edge[1].proj_size = 1;
        edge[1].bidirectional = 1;
        edge[2].dropout = 0.999;
        edge[3].dropout = 0.5;
        edge[3].num_layers = 1;
        edge[4].dropout = 0x1p-40;
        for (int i = 0; i < 5; i++) {
            m = NULL;
            CHECK(clstm_create(&edge[i], 1, &m) == CLSTM_OK && m != NULL,
                  "clstm_create with proj_size=%lld bidirectional=%d dropout=%g L=%lld failed",
                  (long long)edge[i].proj_size, edge[i].bidirectional, edge[i].dropout,
                  (long long)edge[i].num_layers);
            clstm_free(m);
        }
    }

    /* struct_size too small */
    c = good;
    c.struct_size = 0;
    expect_create_fails(c, CLSTM_ERR_ARG, "struct_size=0");
    c.struct_size = sizeof(size_t);
    expect_create_fails(c, CLSTM_ERR_ARG, "struct_size=sizeof(size_t)");
    c.struct_size = offsetof(clstm_config, backend);
    expect_create_fails(c, CLSTM_ERR_ARG, "struct_size without backend");
    c.struct_size = sizeof(clstm_config) - 1;
    expect_create_fails(c, CLSTM_ERR_ARG, "struct_size=sizeof-1");

    /* the BLAS backend exists exactly when it was compiled in */
#ifdef CLSTM_USE_CBLAS
    CHECK_EQ(clstm_has_blas(), 1);
#else
    CHECK_EQ(clstm_has_blas(), 0);
#endif
    c = good;
    c.backend = CLSTM_BACKEND_BLAS;
    if (clstm_has_blas()) {
        m = NULL;
        CHECK_STATUS(clstm_create(&c, 1, &m), CLSTM_OK);
        clstm_free(m);
    } else {
        expect_create_fails(c, CLSTM_ERR_UNSUPPORTED, "backend=BLAS without BLAS");
    }
    c.backend = CLSTM_BACKEND_NAIVE;
    m = NULL;
    CHECK_STATUS(clstm_create(&c, 1, &m), CLSTM_OK);
    clstm_free(m);

    /* success, and get_config round-trips */
    c = good;
    c.dtype = CLSTM_FLOAT32;
    c.backend = CLSTM_BACKEND_NAIVE;
    c.proj_size = 2;
    c.bidirectional = 1;
    c.dropout = 0.25;
    m = NULL;
    if (CHECK_STATUS(clstm_create(&c, 3, &m), CLSTM_OK) && CHECK(m != NULL, "model")) {
        clstm_config got;
        memset(&got, 0xA5, sizeof got);
        CHECK_STATUS(clstm_get_config(m, &got), CLSTM_OK);
        CHECK_EQ(got.struct_size, sizeof(clstm_config));
        CHECK_EQ(got.input_size, D);
        CHECK_EQ(got.hidden_size, H);
        CHECK_EQ(got.num_layers, L);
        CHECK_EQ(got.dtype, CLSTM_FLOAT32);
        CHECK_EQ(got.backend, CLSTM_BACKEND_NAIVE);
        CHECK_EQ(got.proj_size, 2);
        CHECK_EQ(got.bidirectional, 1);
        CHECK(got.dropout == 0.25, "get_config: dropout %g, created with 0.25", got.dropout);
    }
    clstm_free(m);
    clstm_free(NULL); /* accepted, does nothing */
}

/* ------------------------------------------------------------ accessors */

static void test_accessors(void)
{
    clstm_model *m = small_model(1);
    clstm_config cfg, cfg0;
    void *data, *sentinel = (void *)&cfg;
    size_t n;
    int64_t nt;
    clstm_tensor_info ti, ti0;

    if (!m)
        return;

    /* get_config */
    memset(&cfg, 0x33, sizeof cfg);
    cfg0 = cfg;
    CHECK_STATUS(clstm_get_config(NULL, &cfg), CLSTM_ERR_NULL);
    CHECK(memcmp(&cfg, &cfg0, sizeof cfg) == 0, "failed clstm_get_config wrote its output");
    CHECK_STATUS(clstm_get_config(m, NULL), CLSTM_ERR_NULL);

    /* params / grads: each pointer in turn */
    data = sentinel;
    n = 777;
    CHECK_STATUS(clstm_params(NULL, &data, &n), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_params(m, NULL, &n), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_params(m, &data, NULL), CLSTM_ERR_NULL);
    CHECK(data == sentinel && n == 777, "failed clstm_params wrote its outputs");
    CHECK_STATUS(clstm_grads(NULL, &data, &n), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_grads(m, NULL, &n), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_grads(m, &data, NULL), CLSTM_ERR_NULL);
    CHECK(data == sentinel && n == 777, "failed clstm_grads wrote its outputs");
    CHECK_STATUS(clstm_params(m, &data, &n), CLSTM_OK);
    CHECK(data != NULL && data != sentinel, "clstm_params gave no block");
    CHECK_EQ(n, small_params());
    CHECK_STATUS(clstm_grads(m, &data, &n), CLSTM_OK);
    CHECK_EQ(n, small_params());

    /* zero_grad, init_params */
    CHECK_STATUS(clstm_zero_grad(NULL), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_init_params(NULL, 1), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_zero_grad(m), CLSTM_OK);
    CHECK_STATUS(clstm_init_params(m, 0), CLSTM_OK);
    CHECK_STATUS(clstm_init_params(m, UINT64_MAX), CLSTM_OK);

    /* num_tensors */
    nt = -77;
    CHECK_STATUS(clstm_num_tensors(NULL, &nt), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_num_tensors(m, NULL), CLSTM_ERR_NULL);
    CHECK_EQ(nt, -77);
    CHECK_STATUS(clstm_num_tensors(m, &nt), CLSTM_OK);
    CHECK_EQ(nt, 4 * L);

    /* tensor_info_get: NULLs and every side of the index range */
    memset(&ti, 0x5A, sizeof ti);
    ti0 = ti;
    CHECK_STATUS(clstm_tensor_info_get(NULL, 0, &ti), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_tensor_info_get(m, 0, NULL), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_tensor_info_get(m, -1, &ti), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_tensor_info_get(m, 4 * L, &ti), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_tensor_info_get(m, 4 * L + 1, &ti), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_tensor_info_get(m, INT64_MAX, &ti), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_tensor_info_get(m, INT64_MIN, &ti), CLSTM_ERR_ARG);
    CHECK(memcmp(&ti, &ti0, sizeof ti) == 0, "failed clstm_tensor_info_get wrote its output");
    CHECK_STATUS(clstm_tensor_info_get(m, 0, &ti), CLSTM_OK);
    CHECK_STATUS(clstm_tensor_info_get(m, 4 * L - 1, &ti), CLSTM_OK);
    CHECK(strcmp(ti.name, "bias_hh_l1") == 0, "last tensor is \"%s\"", ti.name);

    clstm_free(m);
}

/* ------------------------------------------------------------ tensor order */

/* One named tensor as torch.nn.LSTM's state_dict has it; cols 0: 1-D. */
typedef struct {
    const char *name;
    int64_t rows, cols;
} tensor_row;

/* The model's tensors must be exactly `want`, in order and back to back. */
static void check_tensors(int64_t P, int bidirectional, const tensor_row *want, int64_t n)
{
    clstm_model *m = option_model(P, bidirectional, 0.0);
    clstm_tensor_info ti;
    int64_t nt = -1;
    size_t next = 0, np = 0;
    void *data;

    if (!m)
        return;
    CHECK_STATUS(clstm_num_tensors(m, &nt), CLSTM_OK);
    CHECK(nt == n, "P=%lld bidirectional=%d: %lld tensors, torch has %lld", (long long)P,
          bidirectional, (long long)nt, (long long)n);
    for (int64_t i = 0; i < n && i < nt; i++) {
        const int64_t cols = want[i].cols ? want[i].cols : 1;
        memset(&ti, 0x5A, sizeof ti);
        if (!CHECK_STATUS(clstm_tensor_info_get(m, i, &ti), CLSTM_OK))
            continue;
        ti.name[CLSTM_NAME_MAX - 1] = '\0';
        CHECK(strcmp(ti.name, want[i].name) == 0 && ti.offset == next &&
                  ti.ndim == (want[i].cols ? 2 : 1) && ti.shape[0] == want[i].rows &&
                  ti.shape[1] == cols,
              "P=%lld bidirectional=%d tensor %lld: \"%s\" at %zu, ndim %d, (%lld, %lld); "
              "torch: \"%s\" at %zu, (%lld, %lld)",
              (long long)P, bidirectional, (long long)i, ti.name, ti.offset, ti.ndim,
              (long long)ti.shape[0], (long long)ti.shape[1], want[i].name, next,
              (long long)want[i].rows, (long long)cols);
        next += (size_t)(want[i].rows * cols);
    }
    CHECK_STATUS(clstm_tensor_info_get(m, n, &ti), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_params(m, &data, &np), CLSTM_OK);
    CHECK(np == next, "P=%lld bidirectional=%d: block of %zu, torch's tensors hold %zu",
          (long long)P, bidirectional, np, next);
    clstm_free(m);
}

/* torch.nn.LSTM(3, 5, num_layers=2, ...).state_dict(), written out. */
static void test_tensor_order(void)
{
    static const tensor_row proj[] = {
        {"weight_ih_l0", 20, 3}, {"weight_hh_l0", 20, 2}, {"bias_ih_l0", 20, 0},
        {"bias_hh_l0", 20, 0},   {"weight_hr_l0", 2, 5},  {"weight_ih_l1", 20, 2},
        {"weight_hh_l1", 20, 2}, {"bias_ih_l1", 20, 0},   {"bias_hh_l1", 20, 0},
        {"weight_hr_l1", 2, 5}};
    static const tensor_row bidir[] = {
        {"weight_ih_l0", 20, 3},          {"weight_hh_l0", 20, 5},
        {"bias_ih_l0", 20, 0},            {"bias_hh_l0", 20, 0},
        {"weight_ih_l0_reverse", 20, 3},  {"weight_hh_l0_reverse", 20, 5},
        {"bias_ih_l0_reverse", 20, 0},    {"bias_hh_l0_reverse", 20, 0},
        {"weight_ih_l1", 20, 10},         {"weight_hh_l1", 20, 5},
        {"bias_ih_l1", 20, 0},            {"bias_hh_l1", 20, 0},
        {"weight_ih_l1_reverse", 20, 10}, {"weight_hh_l1_reverse", 20, 5},
        {"bias_ih_l1_reverse", 20, 0},    {"bias_hh_l1_reverse", 20, 0}};
    static const tensor_row both[] = {
        {"weight_ih_l0", 20, 3},         {"weight_hh_l0", 20, 2},
        {"bias_ih_l0", 20, 0},           {"bias_hh_l0", 20, 0},
        {"weight_hr_l0", 2, 5},          {"weight_ih_l0_reverse", 20, 3},
        {"weight_hh_l0_reverse", 20, 2}, {"bias_ih_l0_reverse", 20, 0},
        {"bias_hh_l0_reverse", 20, 0},   {"weight_hr_l0_reverse", 2, 5},
        {"weight_ih_l1", 20, 4},         {"weight_hh_l1", 20, 2},
        {"bias_ih_l1", 20, 0},           {"bias_hh_l1", 20, 0},
        {"weight_hr_l1", 2, 5},          {"weight_ih_l1_reverse", 20, 4},
        {"weight_hh_l1_reverse", 20, 2}, {"bias_ih_l1_reverse", 20, 0},
        {"bias_hh_l1_reverse", 20, 0},   {"weight_hr_l1_reverse", 2, 5}};
    check_tensors(2, 0, proj, (int64_t)(sizeof proj / sizeof proj[0]));
    check_tensors(0, 1, bidir, (int64_t)(sizeof bidir / sizeof bidir[0]));
    check_tensors(2, 1, both, (int64_t)(sizeof both / sizeof both[0]));
}

/* ------------------------------------------------------------ workspace */

static void test_workspace_size(void)
{
    clstm_model *m = small_model(1);
    size_t bytes, b_inf1, b_inf2, b_tr1, b_tr2, b_tr3;
    const int64_t two32 = (int64_t)1 << 32;

    if (!m)
        return;
    bytes = 4242;
    CHECK_STATUS(clstm_workspace_size(NULL, T, B, 1, &bytes), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_workspace_size(m, T, B, 1, NULL), CLSTM_ERR_NULL);
    for (int train = 0; train <= 1; train++) {
        CHECK_STATUS(clstm_workspace_size(m, 0, B, train, &bytes), CLSTM_ERR_SIZE);
        CHECK_STATUS(clstm_workspace_size(m, -1, B, train, &bytes), CLSTM_ERR_SIZE);
        CHECK_STATUS(clstm_workspace_size(m, INT64_MIN, B, train, &bytes), CLSTM_ERR_SIZE);
        CHECK_STATUS(clstm_workspace_size(m, T, 0, train, &bytes), CLSTM_ERR_SIZE);
        CHECK_STATUS(clstm_workspace_size(m, T, -3, train, &bytes), CLSTM_ERR_SIZE);
        /* B alone, scaled by H, overflows in either mode */
        CHECK_STATUS(clstm_workspace_size(m, T, INT64_MAX, train, &bytes),
                     CLSTM_ERR_OVERFLOW);
        CHECK_STATUS(clstm_workspace_size(m, T, INT64_MAX / 2, train, &bytes),
                     CLSTM_ERR_OVERFLOW);
    }
    /* training storage grows with T: T*B overflows, or the bytes do */
    CHECK_STATUS(clstm_workspace_size(m, INT64_MAX, B, 1, &bytes), CLSTM_ERR_OVERFLOW);
    CHECK_STATUS(clstm_workspace_size(m, INT64_MAX / 2, 3, 1, &bytes), CLSTM_ERR_OVERFLOW);
    CHECK_STATUS(clstm_workspace_size(m, two32, two32, 1, &bytes), CLSTM_ERR_OVERFLOW);
    CHECK_STATUS(clstm_workspace_size(m, (int64_t)1 << 40, (int64_t)1 << 20, 1, &bytes),
                 CLSTM_ERR_OVERFLOW);
    CHECK_EQ(bytes, 4242);

    /* the header: "train = 0: inference, independent of T" */
    CHECK_STATUS(clstm_workspace_size(m, 1000, B, 0, &b_inf1), CLSTM_OK);
    CHECK_STATUS(clstm_workspace_size(m, 1000000, B, 0, &b_inf2), CLSTM_OK);
    CHECK(b_inf1 == b_inf2, "inference workspace grows with T: %zu at T=1000, %zu at T=1e6",
          b_inf1, b_inf2);
    CHECK_STATUS(clstm_workspace_size(m, 1, B, 0, &b_inf2), CLSTM_OK);
    CHECK(b_inf1 == b_inf2, "inference workspace depends on T: %zu at T=1000, %zu at T=1",
          b_inf1, b_inf2);
    /* training grows with T (beyond the inference chunk, below which it is
     * at least the inference size: the header says it also serves inference) */
    CHECK_STATUS(clstm_workspace_size(m, 100, B, 1, &b_tr1), CLSTM_OK);
    CHECK_STATUS(clstm_workspace_size(m, 1000, B, 1, &b_tr2), CLSTM_OK);
    CHECK(b_tr1 >= b_inf1, "training workspace smaller than inference: %zu < %zu", b_tr1,
          b_inf1);
    CHECK(b_tr2 > b_tr1, "training workspace does not grow with T: %zu vs %zu", b_tr1,
          b_tr2);
    /* train is a flag: any nonzero value means training */
    CHECK_STATUS(clstm_workspace_size(m, 1000, B, 7, &b_tr3), CLSTM_OK);
    CHECK_EQ(b_tr3, b_tr2);
    clstm_free(m);
}

/* Unidirectional inference is chunked (independent of T), with a
 * projection too; bidirectional inference keeps whole sequences. */
static void test_workspace_options(void)
{
    clstm_model *proj = option_model(2, 0, 0.5), *bi = option_model(2, 1, 0.5);
    size_t a = 0, b = 0, tr = 0;

    if (proj) {
        CHECK_STATUS(clstm_workspace_size(proj, 1, B, 0, &a), CLSTM_OK);
        CHECK_STATUS(clstm_workspace_size(proj, 100000, B, 0, &b), CLSTM_OK);
        CHECK(a == b, "projection: inference workspace %zu at T=1, %zu at T=1e5", a, b);
    }
    if (bi) {
        CHECK_STATUS(clstm_workspace_size(bi, 10, B, 0, &a), CLSTM_OK);
        CHECK_STATUS(clstm_workspace_size(bi, 1000, B, 0, &b), CLSTM_OK);
        CHECK_STATUS(clstm_workspace_size(bi, 1000, B, 1, &tr), CLSTM_OK);
        CHECK(b > a, "bidirectional: inference workspace %zu at T=10, %zu at T=1000", a, b);
        CHECK(tr >= b, "bidirectional: training workspace %zu < inference %zu", tr, b);
    }
    clstm_free(proj);
    clstm_free(bi);
}

/* ------------------------------------------------------------ forward */

typedef struct {
    double x[T * B * D], h0[L * B * H], c0[L * B * H];
    double y[T * B * H], hT[L * B * H], cT[L * B * H];
    double dy[T * B * H], dhT[L * B * H], dcT[L * B * H];
    double dx[T * B * D], dh0[L * B * H], dc0[L * B * H];
} buffers;

static void buffers_init(buffers *b)
{
    memset(b, 0, sizeof *b);
    for (int i = 0; i < T * B * D; i++)
        b->x[i] = 0.1 * (double)(i % 7) - 0.3;
    for (int i = 0; i < L * B * H; i++) {
        b->h0[i] = 0.05 * (double)(i % 5) - 0.1;
        b->c0[i] = 0.2 * (double)(i % 3) - 0.2;
        b->dhT[i] = 0.5;
        b->dcT[i] = -0.25;
    }
    for (int i = 0; i < T * B * H; i++)
        b->dy[i] = 1.0;
}

/* Fill outputs with a pattern, to see whether a failed call wrote them. */
static void poison_outputs(buffers *b)
{
    memset(b->y, 0x7B, sizeof b->y);
    memset(b->hT, 0x7B, sizeof b->hT);
    memset(b->cT, 0x7B, sizeof b->cT);
    memset(b->dx, 0x7B, sizeof b->dx);
    memset(b->dh0, 0x7B, sizeof b->dh0);
    memset(b->dc0, 0x7B, sizeof b->dc0);
}

/* Every output of a and b bitwise equal. */
static int outputs_equal(const buffers *a, const buffers *b)
{
    return memcmp(a->y, b->y, sizeof a->y) == 0 && memcmp(a->hT, b->hT, sizeof a->hT) == 0 &&
           memcmp(a->cT, b->cT, sizeof a->cT) == 0 && memcmp(a->dx, b->dx, sizeof a->dx) == 0 &&
           memcmp(a->dh0, b->dh0, sizeof a->dh0) == 0 &&
           memcmp(a->dc0, b->dc0, sizeof a->dc0) == 0;
}

static int outputs_poisoned(const buffers *b)
{
    buffers p;
    poison_outputs(&p);
    return outputs_equal(b, &p);
}

static void test_forward_errors(void)
{
    clstm_model *m = small_model(1);
    buffers *b = xcalloc(1, sizeof *b);
    size_t need_inf = 0, need_tr = 0;
    void *ws;

    if (!m)
        goto done;
    buffers_init(b);
    CHECK_STATUS(clstm_workspace_size(m, T, B, 0, &need_inf), CLSTM_OK);
    CHECK_STATUS(clstm_workspace_size(m, T, B, 1, &need_tr), CLSTM_OK);
    ws = xcalloc(need_tr, 1);
    poison_outputs(b);

    for (int train = 0; train <= 1; train++) {
        const size_t need = train ? need_tr : need_inf;
        /* required pointers, each in turn */
        CHECK_STATUS(clstm_forward(NULL, T, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, train,
                                   ws, need),
                     CLSTM_ERR_NULL);
        CHECK_STATUS(clstm_forward(m, T, B, NULL, b->h0, b->c0, b->y, b->hT, b->cT, train, ws,
                                   need),
                     CLSTM_ERR_NULL);
        CHECK_STATUS(clstm_forward(m, T, B, b->x, b->h0, b->c0, NULL, b->hT, b->cT, train, ws,
                                   need),
                     CLSTM_ERR_NULL);
        CHECK_STATUS(clstm_forward(m, T, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, train,
                                   NULL, need),
                     CLSTM_ERR_WORKSPACE);
        /* sizes */
        CHECK_STATUS(clstm_forward(m, 0, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, train, ws,
                                   need),
                     CLSTM_ERR_SIZE);
        CHECK_STATUS(clstm_forward(m, -1, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, train,
                                   ws, need),
                     CLSTM_ERR_SIZE);
        CHECK_STATUS(clstm_forward(m, T, 0, b->x, b->h0, b->c0, b->y, b->hT, b->cT, train, ws,
                                   need),
                     CLSTM_ERR_SIZE);
        CHECK_STATUS(clstm_forward(m, T, -2, b->x, b->h0, b->c0, b->y, b->hT, b->cT, train,
                                   ws, need),
                     CLSTM_ERR_SIZE);
        /* T*B*D overflows (the arrays cannot exist; nothing may be read) */
        CHECK_STATUS(clstm_forward(m, INT64_MAX, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT,
                                   train, ws, need),
                     CLSTM_ERR_OVERFLOW);
        CHECK_STATUS(clstm_forward(m, (int64_t)1 << 32, (int64_t)1 << 32, b->x, b->h0, b->c0,
                                   b->y, b->hT, b->cT, train, ws, need),
                     CLSTM_ERR_OVERFLOW);
        /* workspace too small by one byte, and empty */
        if (need > 0)
            CHECK_STATUS(clstm_forward(m, T, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, train,
                                       ws, need - 1),
                         CLSTM_ERR_WORKSPACE);
        if (need > 0)
            CHECK_STATUS(clstm_forward(m, T, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, train,
                                       ws, 0),
                         CLSTM_ERR_WORKSPACE);
        CHECK(outputs_poisoned(b), "a failed clstm_forward (train=%d) wrote its outputs",
              train);
    }
    /* an inference-sized workspace is too small for training */
    if (need_inf < need_tr)
        CHECK_STATUS(clstm_forward(m, T, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, 1, ws,
                                   need_inf),
                     CLSTM_ERR_WORKSPACE);
    CHECK(outputs_poisoned(b), "a failed clstm_forward wrote its outputs");

    /* the optional pointers may each be NULL */
    for (int train = 0; train <= 1; train++) {
        const size_t need = train ? need_tr : need_inf;
        CHECK_STATUS(clstm_forward(m, T, B, b->x, NULL, b->c0, b->y, b->hT, b->cT, train, ws,
                                   need),
                     CLSTM_OK);
        CHECK_STATUS(clstm_forward(m, T, B, b->x, b->h0, NULL, b->y, b->hT, b->cT, train, ws,
                                   need),
                     CLSTM_OK);
        CHECK_STATUS(clstm_forward(m, T, B, b->x, b->h0, b->c0, b->y, NULL, b->cT, train, ws,
                                   need),
                     CLSTM_OK);
        CHECK_STATUS(clstm_forward(m, T, B, b->x, b->h0, b->c0, b->y, b->hT, NULL, train, ws,
                                   need),
                     CLSTM_OK);
        CHECK_STATUS(clstm_forward(m, T, B, b->x, NULL, NULL, b->y, NULL, NULL, train, ws,
                                   need),
                     CLSTM_OK);
        /* a larger workspace than needed is fine */
        CHECK_STATUS(clstm_forward(m, T, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, train, ws,
                                   need_tr),
                     CLSTM_OK);
    }
    free(ws);
done:
    free(b);
    clstm_free(m);
}

/* ------------------------------------------------------------ backward */

/* The gradient block as bytes, to see whether a failed backward changed it. */
static unsigned char *grads_snapshot(clstm_model *m, size_t *bytes)
{
    void *g = NULL;
    size_t n = 0;
    unsigned char *copy;
    clstm_grads(m, &g, &n);
    *bytes = n * sizeof(double);
    copy = xcalloc(*bytes, 1);
    memcpy(copy, g, *bytes);
    return copy;
}

static int grads_equal(clstm_model *m, const unsigned char *snap, size_t bytes)
{
    void *g = NULL;
    size_t n = 0;
    clstm_grads(m, &g, &n);
    return n * sizeof(double) == bytes && memcmp(g, snap, bytes) == 0;
}

#define FWD_TRAIN(m, b, ws, bytes)                                                        \
    CHECK_STATUS(clstm_forward((m), T, B, (b)->x, (b)->h0, (b)->c0, (b)->y, NULL, NULL, 1, \
                               (ws), (bytes)),                                            \
                 CLSTM_OK)

#define BWD(m, tt, bb, b, ws, bytes)                                                        \
    clstm_backward((m), (tt), (bb), (b)->dy, (b)->dhT, (b)->dcT, (b)->dx, (b)->dh0, (b)->dc0, \
                   (ws), (bytes))

static void test_backward_errors(void)
{
    clstm_model *m = small_model(1), *other = small_model(1);
    buffers *b = xcalloc(1, sizeof *b);
    size_t need = 0, need_big = 0, snap_bytes = 0;
    unsigned char *snap = NULL;
    void *ws = NULL, *big = NULL;

    if (!m || !other)
        goto done;
    buffers_init(b);
    CHECK_STATUS(clstm_workspace_size(m, T, B, 1, &need), CLSTM_OK);
    CHECK_STATUS(clstm_workspace_size(m, T + 1, B + 1, 1, &need_big), CLSTM_OK);
    ws = xcalloc(need, 1);
    big = xcalloc(need_big, 1);

    /* a workspace that never saw a forward (zeroed memory) */
    snap = grads_snapshot(m, &snap_bytes);
    poison_outputs(b);
    CHECK_STATUS(BWD(m, T, B, b, ws, need), CLSTM_ERR_STATE);
    CHECK_STATUS(BWD(m, T, B, b, big, need_big), CLSTM_ERR_STATE);

    /* argument errors after a valid training forward must not consume it */
    FWD_TRAIN(m, b, ws, need);
    poison_outputs(b);
    CHECK_STATUS(BWD(NULL, T, B, b, ws, need), CLSTM_ERR_NULL);
    CHECK_STATUS(BWD(m, T, B, b, NULL, need), CLSTM_ERR_WORKSPACE);
    CHECK_STATUS(BWD(m, T, B, b, ws, need - 1), CLSTM_ERR_WORKSPACE);
    CHECK_STATUS(BWD(m, T, B, b, ws, 0), CLSTM_ERR_WORKSPACE);
    CHECK_STATUS(BWD(m, 0, B, b, ws, need), CLSTM_ERR_SIZE);
    CHECK_STATUS(BWD(m, -1, B, b, ws, need), CLSTM_ERR_SIZE);
    CHECK_STATUS(BWD(m, T, 0, b, ws, need), CLSTM_ERR_SIZE);
    CHECK_STATUS(BWD(m, T, -1, b, ws, need), CLSTM_ERR_SIZE);
    /* a different T or B than the forward (the workspace is big enough) */
    CHECK_STATUS(BWD(m, T - 1, B, b, ws, need), CLSTM_ERR_STATE);
    CHECK_STATUS(BWD(m, T, B - 1, b, ws, need), CLSTM_ERR_STATE);
    CHECK_STATUS(BWD(m, 1, 1, b, ws, need), CLSTM_ERR_STATE);
    /* another model with the same configuration */
    CHECK_STATUS(BWD(other, T, B, b, ws, need), CLSTM_ERR_STATE);
    CHECK(outputs_poisoned(b), "a failed clstm_backward wrote its outputs");
    CHECK(grads_equal(m, snap, snap_bytes), "a failed clstm_backward changed the gradients");
    /* ...and the forward is still there */
    CHECK_STATUS(BWD(m, T, B, b, ws, need), CLSTM_OK);
    CHECK(!grads_equal(m, snap, snap_bytes), "clstm_backward did not change the gradients");
    free(snap);

    /* a second backward on the consumed workspace */
    snap = grads_snapshot(m, &snap_bytes);
    poison_outputs(b);
    CHECK_STATUS(BWD(m, T, B, b, ws, need), CLSTM_ERR_STATE);
    CHECK(outputs_poisoned(b), "a second clstm_backward wrote its outputs");
    CHECK(grads_equal(m, snap, snap_bytes), "a second clstm_backward changed the gradients");

    /* a workspace larger than the forward needed: a larger T or B is still
     * a mismatch, not a size error */
    FWD_TRAIN(m, b, big, need_big);
    CHECK_STATUS(BWD(m, T + 1, B, b, big, need_big), CLSTM_ERR_STATE);
    CHECK_STATUS(BWD(m, T, B + 1, b, big, need_big), CLSTM_ERR_STATE);
    CHECK_STATUS(BWD(m, T + 1, B + 1, b, big, need_big), CLSTM_ERR_STATE);
    CHECK(grads_equal(m, snap, snap_bytes), "a mismatched clstm_backward changed gradients");
    CHECK_STATUS(BWD(m, T, B, b, big, need_big), CLSTM_OK);

    /* a training forward followed by an inference forward in the same
     * workspace: the workspace no longer holds training activations */
    FWD_TRAIN(m, b, ws, need);
    CHECK_STATUS(clstm_forward(m, T, B, b->x, b->h0, b->c0, b->y, NULL, NULL, 0, ws, need),
                 CLSTM_OK);
    CHECK_STATUS(BWD(m, T, B, b, ws, need), CLSTM_ERR_STATE);

    /* the optional pointers may each be NULL (a fresh forward every time) */
    for (int which = 0; which < 7; which++) {
        const void *dy = which == 0 ? NULL : b->dy, *dhT = which == 1 ? NULL : b->dhT;
        const void *dcT = which == 2 ? NULL : b->dcT;
        void *dx = which == 3 ? NULL : b->dx, *dh0 = which == 4 ? NULL : b->dh0;
        void *dc0 = which == 5 ? NULL : b->dc0;
        if (which == 6) {
            dy = dhT = dcT = NULL;
            dx = dh0 = dc0 = NULL;
        }
        FWD_TRAIN(m, b, ws, need);
        CHECK(clstm_backward(m, T, B, dy, dhT, dcT, dx, dh0, dc0, ws, need) == CLSTM_OK,
              "clstm_backward with optional argument set %d NULL failed", which);
    }
    free(snap);
    snap = NULL;
done:
    free(snap);
    free(ws);
    free(big);
    free(b);
    clstm_free(m);
    clstm_free(other);
}

/* ------------------------------------------------------------ forward_ex */

#define FWD_EX(m, b, opt, ws, bytes)                                                       \
    clstm_forward_ex((m), T, B, (b)->x, (b)->h0, (b)->c0, (b)->y, (b)->hT, (b)->cT, (opt), \
                     (ws), (bytes))

static void test_run_options_default(void)
{
    clstm_run_options o;
    memset(&o, 0x5A, sizeof o);
    o = clstm_run_options_default();
    CHECK_EQ(o.struct_size, sizeof(clstm_run_options));
    CHECK_EQ(o.train, 0);
    CHECK(o.lengths == NULL, "default lengths %p", (const void *)o.lengths);
    CHECK_EQ(o.dropout_seed, 0);
}

static void test_forward_ex_errors(void)
{
    static const int64_t bad_len[] = {-1, T + 1, INT64_MIN, INT64_MAX};
    static const size_t bad_size[] = {0, sizeof(size_t),
                                      offsetof(clstm_run_options, dropout_seed),
                                      sizeof(clstm_run_options) - 1};
    clstm_model *m = small_model(1);
    buffers *b = xcalloc(1, sizeof *b);
    clstm_run_options o;
    int64_t len[B];
    size_t need = 0;
    void *ws = NULL;

    if (!m)
        goto done;
    buffers_init(b);
    CHECK_STATUS(clstm_workspace_size(m, T, B, 1, &need), CLSTM_OK);
    ws = xcalloc(need, 1);
    poison_outputs(b);
    for (int train = 0; train <= 1; train++) {
        o = clstm_run_options_default();
        o.train = train;
        CHECK_STATUS(FWD_EX(m, b, NULL, ws, need), CLSTM_ERR_NULL);
        CHECK_STATUS(FWD_EX(NULL, b, &o, ws, need), CLSTM_ERR_NULL);
        CHECK_STATUS(clstm_forward_ex(m, T, B, NULL, b->h0, b->c0, b->y, b->hT, b->cT, &o, ws,
                                      need),
                     CLSTM_ERR_NULL);
        CHECK_STATUS(clstm_forward_ex(m, T, B, b->x, b->h0, b->c0, NULL, b->hT, b->cT, &o, ws,
                                      need),
                     CLSTM_ERR_NULL);
        for (size_t k = 0; k < sizeof bad_size / sizeof bad_size[0]; k++) {
            o.struct_size = bad_size[k];
            CHECK(FWD_EX(m, b, &o, ws, need) == CLSTM_ERR_ARG,
                  "clstm_forward_ex with struct_size %zu (train=%d) did not return ARG",
                  bad_size[k], train);
        }
        o.struct_size = sizeof o;
        /* one length out of 0..T, at each position in turn */
        o.lengths = len;
        for (size_t k = 0; k < sizeof bad_len / sizeof bad_len[0]; k++)
            for (int pos = 0; pos < B; pos++) {
                for (int i = 0; i < B; i++)
                    len[i] = i % 2 ? 0 : T;
                len[pos] = bad_len[k];
                CHECK(FWD_EX(m, b, &o, ws, need) == CLSTM_ERR_ARG,
                      "clstm_forward_ex with lengths[%d] = %lld (T = %d, train=%d) did not "
                      "return ARG", pos, (long long)bad_len[k], T, train);
            }
    }
    CHECK(outputs_poisoned(b), "a failed clstm_forward_ex wrote its outputs");
    /* 0 and T are valid lengths, in either order */
    for (int pos = 0; pos < B; pos++) {
        for (int i = 0; i < B; i++)
            len[i] = i == pos ? 0 : T;
        CHECK_STATUS(FWD_EX(m, b, &o, ws, need), CLSTM_OK);
        CHECK_STATUS(BWD(m, T, B, b, ws, need), CLSTM_OK);
    }
done:
    free(ws);
    free(b);
    clstm_free(m);
}

/* clstm_forward(train) is clstm_forward_ex with default options and that
 * train, bit for bit, forward and backward; any nonzero train trains; a
 * model without dropout ignores dropout_seed. */
static void test_forward_is_forward_ex(void)
{
    clstm_model *m = small_model(4);
    buffers *a = xcalloc(1, sizeof *a), *b = xcalloc(1, sizeof *b);
    clstm_run_options o = clstm_run_options_default();
    size_t need = 0, snap_bytes = 0;
    unsigned char *snap = NULL;
    void *ws = NULL;

    if (!m)
        goto done;
    buffers_init(a);
    buffers_init(b);
    CHECK_STATUS(clstm_workspace_size(m, T, B, 1, &need), CLSTM_OK);
    ws = xcalloc(need, 1);
    for (int k = 0; k < 2; k++) {
        const int train = k ? 7 : 0;
        o.train = train;
        for (uint64_t seed = 0; seed <= 1; seed++) {
            o.dropout_seed = seed * 12345u;
            poison_outputs(a);
            poison_outputs(b);
            CHECK_STATUS(clstm_zero_grad(m), CLSTM_OK);
            CHECK_STATUS(clstm_forward(m, T, B, a->x, a->h0, a->c0, a->y, a->hT, a->cT,
                                       train != 0, ws, need),
                         CLSTM_OK);
            if (train)
                CHECK_STATUS(BWD(m, T, B, a, ws, need), CLSTM_OK);
            free(snap);
            snap = grads_snapshot(m, &snap_bytes);
            CHECK_STATUS(clstm_zero_grad(m), CLSTM_OK);
            CHECK_STATUS(FWD_EX(m, b, &o, ws, need), CLSTM_OK);
            if (train)
                CHECK_STATUS(BWD(m, T, B, b, ws, need), CLSTM_OK);
            CHECK(outputs_equal(a, b), "clstm_forward and clstm_forward_ex (train=%d, "
                  "dropout_seed=%llu) differ", train, (unsigned long long)o.dropout_seed);
            CHECK(grads_equal(m, snap, snap_bytes), "gradients after clstm_forward and "
                  "clstm_forward_ex (train=%d, dropout_seed=%llu) differ", train,
                  (unsigned long long)o.dropout_seed);
        }
    }
done:
    free(snap);
    free(ws);
    free(a);
    free(b);
    clstm_free(m);
}

/* ------------------------------------------------------------ threads */

static void test_threads(void)
{
    const int old = clstm_get_num_threads();
    CHECK(old >= 1, "clstm_get_num_threads() = %d", old);
    CHECK_STATUS(clstm_set_min_thread_work(-1), CLSTM_ERR_ARG);
    CHECK(clstm_get_min_thread_work() == CLSTM_DEFAULT_MIN_THREAD_WORK,
          "min thread work starts at the default, got %lld",
          (long long)clstm_get_min_thread_work());
    CHECK_STATUS(clstm_set_min_thread_work(0), CLSTM_OK);
    CHECK(clstm_get_min_thread_work() == 0, "min thread work not set");
    CHECK_STATUS(clstm_set_min_thread_work(CLSTM_DEFAULT_MIN_THREAD_WORK), CLSTM_OK);
    CHECK_STATUS(clstm_set_num_threads(0), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_set_num_threads(-1), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_set_num_threads(INT_MIN), CLSTM_ERR_ARG);
    CHECK_EQ(clstm_get_num_threads(), old);
    CHECK_STATUS(clstm_set_num_threads(1), CLSTM_OK);
    CHECK_EQ(clstm_get_num_threads(), 1);
    CHECK_STATUS(clstm_set_num_threads(3), CLSTM_OK);
    CHECK_EQ(clstm_get_num_threads(), 3);
    CHECK_STATUS(clstm_set_num_threads(old), CLSTM_OK);
    CHECK_EQ(clstm_get_num_threads(), old);
}

/* Forwards run from the threads of the caller's own OpenMP region, each
 * with its own workspace (clstm.h: any number of threads may run inference
 * on one model): every thread gets the serial result, float and int8.
 * (A team of one once ran in the caller's region, with its thread numbers
 * and barriers: threads 1..3 computed nothing.) */
static void test_forward_inside_caller_region(void)
{
    clstm_config cfg = clstm_config_default();
    cfg.input_size = 8;
    cfg.hidden_size = 8;
    clstm_model *f = NULL, *q = NULL;
    if (!CHECK_STATUS(clstm_create(&cfg, 1, &f), CLSTM_OK) ||
        !CHECK_STATUS(clstm_quantize(f, &q), CLSTM_OK)) {
        clstm_free(f);
        return;
    }
    clstm_model *models[2] = {f, q};
    enum { TT = 5, BB = 1, N = TT * BB * 8 };
    float x[N], ref[N];
    for (int i = 0; i < N; i++) x[i] = sinf((float)i);
    for (int k = 0; k < 2; k++) {
        size_t wsb = 0;
        CHECK_STATUS(clstm_workspace_size(models[k], TT, BB, 0, &wsb), CLSTM_OK);
        void *ws0 = malloc(wsb);
        CHECK_STATUS(clstm_forward(models[k], TT, BB, x, NULL, NULL, ref, NULL, NULL, 0, ws0,
                                   wsb),
                     CLSTM_OK);
        free(ws0);
        int bad = 0;
#pragma omp parallel num_threads(4) reduction(+ : bad)
        {
            float y[N];
            void *ws = malloc(wsb);
            for (int i = 0; i < N; i++) y[i] = -999;
            bad += !ws || clstm_forward(models[k], TT, BB, x, NULL, NULL, y, NULL, NULL, 0, ws,
                                        wsb) != CLSTM_OK;
            for (int i = 0; i < N; i++) bad += y[i] != ref[i];
            free(ws);
        }
        CHECK(bad == 0, "%s model: %d elements differ from the serial run",
              k ? "int8" : "float32", bad);
    }
    clstm_free(q);
    clstm_free(f);
}

int main(void)
{
    test_version();
    test_status_strings();
    test_config_default();
    test_create();
    test_accessors();
    test_tensor_order();
    test_workspace_size();
    test_workspace_options();
    test_forward_errors();
    test_backward_errors();
    test_run_options_default();
    test_forward_ex_errors();
    test_forward_is_forward_ex();
    test_threads();
    test_forward_inside_caller_region();
    return ctest_finish();
}
