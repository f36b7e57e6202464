/*
 * test_hostile.c -- every CLSTM_API function of clstm.h called systematically
 * with hostile arguments:
 *   - each pointer argument NULL in turn, the others valid: the documented
 *     status (NULL, or WORKSPACE for a workspace), or success where the header
 *     says NULL is accepted (optional inputs and outputs, free(NULL), a NULL
 *     metadata value, a NULL `why`);
 *   - each size bad in turn: zero and negative where invalid (SIZE),
 *     INT64_MAX, SIZE_MAX and sizes whose products overflow int64 or size_t
 *     (OVERFLOW, or NOMEM for an allocation that cannot succeed), checked
 *     before any array is touched: the test passes tiny arrays with huge
 *     sizes, so a wrapped product would read or write out of bounds (ASan and
 *     valgrind catch it);
 * and on every failure, that no output was written (outputs are poisoned
 * with a byte pattern, output pointers preset to a sentinel).
 *
 * Sizes that are large but valid (T*B*4H above 2^31) are checked in the
 * workspace queries here; running a forward with them needs ~10 GB and runs
 * only with CLSTM_TEST_BIG=1.
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

/* Under ASan, an allocation that cannot succeed returns NULL (the library
 * then returns NOMEM) instead of ASan aborting the process. Unused without
 * ASan; exported, since the build hides symbols by default. */
const char *__asan_default_options(void);
__attribute__((visibility("default"))) const char *__asan_default_options(void) { return "allocator_may_return_null=1"; }

#define POISON 0xA5
static void poison(void *p, size_t n) { memset(p, POISON, n); }
static int poisoned(const void *p, size_t n)
{
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != POISON) return 0;
    return 1;
}
#define UNTOUCHED(buf, n, what) CHECK(poisoned((buf), (n)), "%s: a failed call wrote %s", what, #buf)

static int g_sentinel_obj;
#define SENTINEL ((void *)&g_sentinel_obj)

static const int64_t TWO62 = (int64_t)1 << 62, TWO40 = (int64_t)1 << 40;
static const int64_t bad_sizes[] = {0, -1, -7, INT64_MIN}; /* SIZE */

/* The small model most tests use: D=3, H=5, L=2, float64. */
enum { D = 3, H = 5, L = 2, T = 4, B = 2, NL = 2 };

static clstm_config small_config(void)
{
    clstm_config c = clstm_config_default();
    c.input_size = D;
    c.hidden_size = H;
    c.num_layers = L;
    c.dtype = CLSTM_FLOAT64;
    return c;
}

static clstm_model *make(clstm_config c)
{
    clstm_model *m = NULL;
    if (!CHECK_STATUS(clstm_create(&c, 7, &m), CLSTM_OK)) return NULL;
    return m;
}

/* ------------------------------------------------------------ no pointer arguments */

static void test_plain_functions(void)
{
    CHECK_EQ(clstm_version_number(), CLSTM_VERSION_NUMBER);
    CHECK(clstm_version_string() && strcmp(clstm_version_string(), CLSTM_VERSION_STRING) == 0,
          "version string");
    static const int codes[] = {-1, INT_MIN, INT_MAX, CLSTM_STATUS_COUNT_, 1000};
    for (int s = 0; s < CLSTM_STATUS_COUNT_; s++) {
        const char *str = clstm_status_string((clstm_status)s);
        CHECK(str && str[0] && strcmp(str, "unknown status") != 0, "status %d: %s", s,
              str ? str : "(null)");
    }
    for (size_t k = 0; k < sizeof codes / sizeof *codes; k++) {
        const char *str = clstm_status_string((clstm_status)codes[k]);
        CHECK(str && strcmp(str, "unknown status") == 0, "status %d", codes[k]);
    }
    clstm_config c = clstm_config_default();
    CHECK_EQ(c.struct_size, sizeof c);
    clstm_run_options o = clstm_run_options_default();
    CHECK(o.struct_size == sizeof o && o.train == 0 && o.lengths == NULL && o.dropout_seed == 0,
          "run options default");
    clstm_sgd_config s = clstm_sgd_config_default();
    CHECK(s.struct_size == sizeof s && s.lr == 0.01, "sgd default");
    clstm_adam_config a = clstm_adam_config_default();
    CHECK(a.struct_size == sizeof a && a.lr == 0.001 && a.eps == 1e-8, "adam default");
    CHECK(clstm_has_blas() == 0 || clstm_has_blas() == 1, "has_blas");

    /* threads: bad values are ARG and change nothing */
    const int nt = clstm_get_num_threads();
    CHECK(nt >= 1, "num_threads %d", nt);
    static const int bad_n[] = {0, -1, INT_MIN};
    for (size_t k = 0; k < sizeof bad_n / sizeof *bad_n; k++) {
        CHECK_STATUS(clstm_set_num_threads(bad_n[k]), CLSTM_ERR_ARG);
        CHECK_EQ(clstm_get_num_threads(), nt);
    }
    const int64_t w = clstm_get_min_thread_work();
    CHECK_STATUS(clstm_set_min_thread_work(-1), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_set_min_thread_work(INT64_MIN), CLSTM_ERR_ARG);
    CHECK_EQ(clstm_get_min_thread_work(), w);
    CHECK_STATUS(clstm_set_min_thread_work(INT64_MAX), CLSTM_OK); /* a huge value is valid */
    CHECK_STATUS(clstm_set_min_thread_work(w), CLSTM_OK);

    clstm_free(NULL); /* documented no-op */
}

/* ------------------------------------------------------------ create */

static void expect_create(clstm_config c, clstm_status want, clstm_status or_want,
                          const char *what)
{
    clstm_model *m = SENTINEL;
    clstm_status st = clstm_create(&c, 1, &m);
    CHECK(st == want || st == or_want, "clstm_create(%s) returned %d (%s), expected %d", what,
          (int)st, clstm_status_string(st), (int)want);
    CHECK(m == NULL, "clstm_create(%s) failed and left *out = %p", what, (void *)m);
    if (st == CLSTM_OK && m != SENTINEL) clstm_free(m);
}
#define EXPECT_CREATE(field, value, want)                                  \
    do {                                                                   \
        clstm_config c_ = small_config();                                  \
        c_.field = value;                                                  \
        expect_create(c_, want, want, #field " = " #value);                \
    } while (0)
#define EXPECT_CREATE2(field, value, want, or_want)                        \
    do {                                                                   \
        clstm_config c_ = small_config();                                  \
        c_.field = value;                                                  \
        expect_create(c_, want, or_want, #field " = " #value);             \
    } while (0)

static void test_create(void)
{
    clstm_config good = small_config();
    clstm_model *m = SENTINEL;
    CHECK_STATUS(clstm_create(NULL, 1, &m), CLSTM_ERR_NULL);
    CHECK(m == NULL, "clstm_create(NULL cfg) left *out non-NULL");
    CHECK_STATUS(clstm_create(&good, 1, NULL), CLSTM_ERR_NULL);

    for (size_t k = 0; k < sizeof bad_sizes / sizeof *bad_sizes; k++) {
        EXPECT_CREATE(input_size, bad_sizes[k], CLSTM_ERR_SIZE);
        EXPECT_CREATE(hidden_size, bad_sizes[k], CLSTM_ERR_SIZE);
        EXPECT_CREATE(num_layers, bad_sizes[k], CLSTM_ERR_SIZE);
    }
    /* products that overflow size_t (or the BLAS integer): OVERFLOW */
    EXPECT_CREATE(hidden_size, INT64_MAX, CLSTM_ERR_OVERFLOW);
    EXPECT_CREATE(hidden_size, TWO62, CLSTM_ERR_OVERFLOW);
    EXPECT_CREATE(hidden_size, TWO40, CLSTM_ERR_OVERFLOW); /* 4H*H = 2^82 */
    EXPECT_CREATE(input_size, INT64_MAX, CLSTM_ERR_OVERFLOW);
    EXPECT_CREATE(input_size, TWO62, CLSTM_ERR_OVERFLOW);
    EXPECT_CREATE(num_layers, INT64_MAX, CLSTM_ERR_OVERFLOW);
    EXPECT_CREATE(num_layers, TWO62, CLSTM_ERR_OVERFLOW);
    /* counts that fit size_t but whose blocks (terabytes) cannot be
     * allocated: OVERFLOW where the BLAS integer is 32-bit, else NOMEM */
    EXPECT_CREATE2(input_size, TWO40, CLSTM_ERR_OVERFLOW, CLSTM_ERR_NOMEM);
    EXPECT_CREATE2(num_layers, TWO40, CLSTM_ERR_OVERFLOW, CLSTM_ERR_NOMEM);
    /* projection */
    EXPECT_CREATE(proj_size, -1, CLSTM_ERR_SIZE);
    EXPECT_CREATE(proj_size, INT64_MIN, CLSTM_ERR_SIZE);
    EXPECT_CREATE(proj_size, H, CLSTM_ERR_SIZE);
    EXPECT_CREATE(proj_size, INT64_MAX, CLSTM_ERR_SIZE);
    /* the whole model's sizes */
    EXPECT_CREATE(vocab_size, 1, CLSTM_ERR_SIZE); /* with encoding NONE */
    EXPECT_CREATE(vocab_size, -1, CLSTM_ERR_SIZE);
    EXPECT_CREATE(output_size, -1, CLSTM_ERR_SIZE);
    EXPECT_CREATE(output_size, INT64_MIN, CLSTM_ERR_SIZE);
    EXPECT_CREATE(output_size, INT64_MAX, CLSTM_ERR_OVERFLOW);
    EXPECT_CREATE(output_size, TWO62, CLSTM_ERR_OVERFLOW);
    {
        clstm_config c = small_config();
        c.encoding = CLSTM_ENCODING_EMBEDDING;
        static const int64_t bad_v[] = {0, -1, INT64_MIN};
        for (size_t k = 0; k < 3; k++) {
            c.vocab_size = bad_v[k];
            expect_create(c, CLSTM_ERR_SIZE, CLSTM_ERR_SIZE, "embedding vocab_size <= 0");
        }
        c.vocab_size = INT64_MAX;
        expect_create(c, CLSTM_ERR_OVERFLOW, CLSTM_ERR_OVERFLOW, "embedding vocab_size max");
        c.vocab_size = TWO62;
        expect_create(c, CLSTM_ERR_OVERFLOW, CLSTM_ERR_OVERFLOW, "embedding vocab_size 2^62");
        c.vocab_size = TWO40; /* V*D = 3*2^40 elements: too big to allocate */
        expect_create(c, CLSTM_ERR_OVERFLOW, CLSTM_ERR_NOMEM, "embedding vocab_size 2^40");
        c = small_config();
        c.encoding = CLSTM_ENCODING_ONEHOT;
        c.vocab_size = D + 1;
        expect_create(c, CLSTM_ERR_SIZE, CLSTM_ERR_SIZE, "onehot V != D");
    }
    /* struct_size and the enums and flags */
    EXPECT_CREATE(struct_size, 0, CLSTM_ERR_ARG);
    EXPECT_CREATE(struct_size, 1, CLSTM_ERR_ARG);
    EXPECT_CREATE(struct_size, sizeof(clstm_config) - 1, CLSTM_ERR_ARG);
    EXPECT_CREATE(dtype, (clstm_dtype)2, CLSTM_ERR_DTYPE);
    EXPECT_CREATE(dtype, (clstm_dtype)-1, CLSTM_ERR_DTYPE);
    EXPECT_CREATE(backend, (clstm_backend)3, CLSTM_ERR_ARG);
    EXPECT_CREATE(backend, (clstm_backend)-1, CLSTM_ERR_ARG);
    EXPECT_CREATE(encoding, (clstm_encoding)3, CLSTM_ERR_ARG);
    EXPECT_CREATE(bidirectional, 2, CLSTM_ERR_ARG);
    EXPECT_CREATE(bidirectional, -1, CLSTM_ERR_ARG);
    EXPECT_CREATE(peepholes, INT_MAX, CLSTM_ERR_ARG);
    EXPECT_CREATE(input_forget, INT_MIN, CLSTM_ERR_ARG);
    EXPECT_CREATE(softmax, 1, CLSTM_ERR_ARG); /* without a head */
    EXPECT_CREATE(dropout, -0.0625, CLSTM_ERR_ARG);
    EXPECT_CREATE(dropout, 1.0, CLSTM_ERR_ARG);
    EXPECT_CREATE(dropout, NAN, CLSTM_ERR_ARG);
    EXPECT_CREATE(dropout, INFINITY, CLSTM_ERR_ARG);
    EXPECT_CREATE(clip, -1.0, CLSTM_ERR_ARG);
    EXPECT_CREATE(clip, NAN, CLSTM_ERR_ARG);
}

/* ------------------------------------------------------------ model accessors */

static void test_accessors(void)
{
    clstm_model *m = make(small_config());
    if (!m) return;
    clstm_config cfg;
    poison(&cfg, sizeof cfg);
    CHECK_STATUS(clstm_get_config(NULL, &cfg), CLSTM_ERR_NULL);
    UNTOUCHED(&cfg, sizeof cfg, "get_config(NULL m)");
    CHECK_STATUS(clstm_get_config(m, NULL), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_init_params(NULL, 1), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_zero_grad(NULL), CLSTM_ERR_NULL);

    clstm_status (*const block[2])(clstm_model *, void **, size_t *) = {clstm_params,
                                                                        clstm_grads};
    for (int k = 0; k < 2; k++) {
        void *data = SENTINEL;
        size_t n = 4242;
        CHECK_STATUS(block[k](NULL, &data, &n), CLSTM_ERR_NULL);
        CHECK_STATUS(block[k](m, NULL, &n), CLSTM_ERR_NULL);
        CHECK_STATUS(block[k](m, &data, NULL), CLSTM_ERR_NULL);
        CHECK(data == SENTINEL && n == 4242, "a failed params/grads wrote its outputs");
    }

    int64_t nt = -42;
    CHECK_STATUS(clstm_num_tensors(NULL, &nt), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_num_tensors(m, NULL), CLSTM_ERR_NULL);
    CHECK_EQ(nt, -42);
    CHECK_STATUS(clstm_num_tensors(m, &nt), CLSTM_OK);
    clstm_tensor_info ti;
    poison(&ti, sizeof ti);
    CHECK_STATUS(clstm_tensor_info_get(NULL, 0, &ti), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_tensor_info_get(m, 0, NULL), CLSTM_ERR_NULL);
    const int64_t bad_index[] = {-1, INT64_MIN, nt, nt + 1, nt + 3, INT64_MAX, INT64_MAX - 1,
                                 TWO62};
    for (size_t k = 0; k < sizeof bad_index / sizeof *bad_index; k++)
        CHECK_STATUS(clstm_tensor_info_get(m, bad_index[k], &ti), CLSTM_ERR_ARG);
    UNTOUCHED(&ti, sizeof ti, "tensor_info_get");
    clstm_free(m);
}

/* ------------------------------------------------------------ workspace sizes */

typedef clstm_status (*ws_fn)(const clstm_model *, int64_t, int64_t, int, size_t *);

static void workspace_sizes(ws_fn fn, const char *name)
{
    clstm_model *m = make(small_config());
    if (!m) return;
    size_t bytes = 4242;
    CHECK_STATUS(fn(NULL, T, B, 0, &bytes), CLSTM_ERR_NULL);
    CHECK_STATUS(fn(m, T, B, 0, NULL), CLSTM_ERR_NULL);
    for (int train = 0; train <= 1; train++) {
        for (size_t k = 0; k < sizeof bad_sizes / sizeof *bad_sizes; k++) {
            CHECK_STATUS(fn(m, bad_sizes[k], B, train, &bytes), CLSTM_ERR_SIZE);
            CHECK_STATUS(fn(m, T, bad_sizes[k], train, &bytes), CLSTM_ERR_SIZE);
            CHECK_STATUS(fn(m, bad_sizes[k], bad_sizes[k], train, &bytes), CLSTM_ERR_SIZE);
        }
        /* T*B overflows int64 */
        CHECK_STATUS(fn(m, TWO62, 4, train, &bytes), CLSTM_ERR_OVERFLOW);
        CHECK_STATUS(fn(m, 4, TWO62, train, &bytes), CLSTM_ERR_OVERFLOW);
        CHECK_STATUS(fn(m, INT64_MAX, INT64_MAX, train, &bytes), CLSTM_ERR_OVERFLOW);
        CHECK_STATUS(fn(m, INT64_MAX, 2, train, &bytes), CLSTM_ERR_OVERFLOW);
        /* T*B fits int64 but the (T, B, D) input's bytes overflow size_t: even
         * the T-independent inference workspace must refuse them */
        CHECK_STATUS(fn(m, INT64_MAX, 1, train, &bytes), CLSTM_ERR_OVERFLOW);
        CHECK_STATUS(fn(m, (int64_t)1 << 31, (int64_t)1 << 31, train, &bytes),
                     CLSTM_ERR_OVERFLOW);
        CHECK_STATUS(fn(m, 1, INT64_MAX, train, &bytes), CLSTM_ERR_OVERFLOW);
        CHECK_STATUS(fn(m, 1, (int64_t)1 << 59, train, &bytes), CLSTM_ERR_OVERFLOW);
        CHECK(bytes == 4242, "%s: a failed query wrote %zu", name, bytes);
    }
    /* T*B*4H above 2^31 (and 2^32) but every byte count fits: the size is
     * exact, not wrapped: at least T*B*4H doubles for the gates */
    const int64_t Tb = (int64_t)1 << 22, Bb = 64; /* T*B = 2^28 <= INT32_MAX */
    const double gates = (double)Tb * Bb * 4 * H * sizeof(double);
    if (CHECK_STATUS(fn(m, Tb, Bb, 1, &bytes), CLSTM_OK))
        CHECK((double)bytes >= gates * L, "%s: training workspace %zu < %.0f bytes", name,
              bytes, gates * L);
    size_t inf_small = 0, inf_big = 1;
    CHECK_STATUS(fn(m, 1, Bb, 0, &inf_small), CLSTM_OK);
    CHECK_STATUS(fn(m, Tb, Bb, 0, &inf_big), CLSTM_OK);
    CHECK(inf_small == inf_big, "%s: inference workspace depends on T", name);
    clstm_free(m);
}

/* ------------------------------------------------------------ forward, backward */

/* Buffers of one T x B call of the small model (D=3, H=5, L=2), float64. */
typedef struct {
    double x[T * B * D], h0[NL * B * H], c0[NL * B * H];
    double y[T * B * H], hT[NL * B * H], cT[NL * B * H];
    double dy[T * B * H], dx[T * B * D], dh0[NL * B * H], dc0[NL * B * H];
} bufs;

static void init_inputs(bufs *b)
{
    for (int i = 0; i < T * B * D; i++) b->x[i] = 0.1 * (i % 7) - 0.3;
    for (int i = 0; i < NL * B * H; i++) b->h0[i] = b->c0[i] = 0.05 * (i % 5);
    for (int i = 0; i < T * B * H; i++) b->dy[i] = 0.01 * (i % 11);
}
static void poison_outputs(bufs *b)
{
    poison(b->y, sizeof b->y);
    poison(b->hT, sizeof b->hT);
    poison(b->cT, sizeof b->cT);
    poison(b->dx, sizeof b->dx);
    poison(b->dh0, sizeof b->dh0);
    poison(b->dc0, sizeof b->dc0);
}
static int outputs_untouched(const bufs *b)
{
    return poisoned(b->y, sizeof b->y) && poisoned(b->hT, sizeof b->hT) &&
           poisoned(b->cT, sizeof b->cT) && poisoned(b->dx, sizeof b->dx) &&
           poisoned(b->dh0, sizeof b->dh0) && poisoned(b->dc0, sizeof b->dc0);
}

static void test_forward(void)
{
    clstm_model *m = make(small_config());
    bufs *b = xcalloc(1, sizeof *b);
    size_t need = 0;
    if (!m) goto done;
    init_inputs(b);
    CHECK_STATUS(clstm_workspace_size(m, T, B, 1, &need), CLSTM_OK);
    unsigned char *ws = xcalloc(need, 1);
    clstm_run_options o = clstm_run_options_default();
    for (int train = 0; train <= 1; train++) {
        o.train = train;
        poison_outputs(b);
        poison(ws, need);
#define FWD(m_, T_, B_, x_, h0_, c0_, y_, hT_, cT_, o_, ws_, n_)                                 \
    clstm_forward_ex(m_, T_, B_, x_, h0_, c0_, y_, hT_, cT_, o_, ws_, n_)
        /* required pointers, each NULL in turn */
        CHECK_STATUS(FWD(NULL, T, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, &o, ws, need),
                     CLSTM_ERR_NULL);
        CHECK_STATUS(FWD(m, T, B, NULL, b->h0, b->c0, b->y, b->hT, b->cT, &o, ws, need),
                     CLSTM_ERR_NULL);
        CHECK_STATUS(FWD(m, T, B, b->x, b->h0, b->c0, NULL, b->hT, b->cT, &o, ws, need),
                     CLSTM_ERR_NULL);
        CHECK_STATUS(FWD(m, T, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, NULL, ws, need),
                     CLSTM_ERR_NULL);
        CHECK_STATUS(FWD(m, T, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, &o, NULL, need),
                     CLSTM_ERR_WORKSPACE);
        CHECK_STATUS(FWD(m, T, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, &o, NULL, SIZE_MAX),
                     CLSTM_ERR_WORKSPACE);
        /* clstm_forward (the wrapper) with each pointer NULL: test_api.c */
        /* bad sizes; a huge ws_bytes claim must not make an overflow pass */
        for (size_t k = 0; k < sizeof bad_sizes / sizeof *bad_sizes; k++) {
            CHECK_STATUS(FWD(m, bad_sizes[k], B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, &o,
                             ws, SIZE_MAX),
                         CLSTM_ERR_SIZE);
            CHECK_STATUS(FWD(m, T, bad_sizes[k], b->x, b->h0, b->c0, b->y, b->hT, b->cT, &o,
                             ws, SIZE_MAX),
                         CLSTM_ERR_SIZE);
            CHECK_STATUS(clstm_forward(m, bad_sizes[k], B, b->x, b->h0, b->c0, b->y, b->hT,
                                       b->cT, train, ws, SIZE_MAX),
                         CLSTM_ERR_SIZE);
        }
        static const int64_t huge[][2] = {{INT64_MAX, 1}, {1, INT64_MAX}, {(int64_t)1 << 62, 4},
                                          {4, (int64_t)1 << 62}, {(int64_t)1 << 31, (int64_t)1 << 31},
                                          {(int64_t)1 << 61, 2}, {1, (int64_t)1 << 59},
                                          {INT64_MAX, INT64_MAX}};
        for (size_t k = 0; k < sizeof huge / sizeof *huge; k++) {
            CHECK_STATUS(FWD(m, huge[k][0], huge[k][1], b->x, b->h0, b->c0, b->y, b->hT, b->cT,
                             &o, ws, SIZE_MAX),
                         CLSTM_ERR_OVERFLOW);
            CHECK_STATUS(clstm_forward(m, huge[k][0], huge[k][1], b->x, NULL, NULL, b->y, NULL,
                                       NULL, train, ws, SIZE_MAX),
                         CLSTM_ERR_OVERFLOW);
        }
        /* workspace too small */
        size_t need_mode = 0;
        CHECK_STATUS(clstm_workspace_size(m, T, B, train, &need_mode), CLSTM_OK);
        CHECK_STATUS(FWD(m, T, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, &o, ws, need_mode - 1),
                     CLSTM_ERR_WORKSPACE);
        CHECK_STATUS(FWD(m, T, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, &o, ws, 0),
                     CLSTM_ERR_WORKSPACE);
        /* options */
        clstm_run_options bad = o;
        bad.struct_size = 0;
        CHECK_STATUS(FWD(m, T, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, &bad, ws, need),
                     CLSTM_ERR_ARG);
        bad.struct_size = sizeof bad - 1;
        CHECK_STATUS(FWD(m, T, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, &bad, ws, need),
                     CLSTM_ERR_ARG);
        static const int64_t bad_len[] = {-1, T + 1, INT64_MAX, INT64_MIN};
        int64_t len[B];
        bad = o;
        bad.lengths = len;
        for (size_t k = 0; k < sizeof bad_len / sizeof *bad_len; k++) {
            len[0] = T;
            len[1] = bad_len[k];
            CHECK_STATUS(FWD(m, T, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, &bad, ws, need),
                         CLSTM_ERR_ARG);
        }
        CHECK(outputs_untouched(b), "a failed forward (train=%d) wrote an output", train);
        CHECK(poisoned(ws, need), "a failed forward (train=%d) wrote the workspace", train);

        /* optional pointers, each NULL in turn: success */
        const void *opt_in[2] = {b->h0, b->c0};
        for (int k = 0; k < 4; k++) {
            const void *h0 = k == 0 ? NULL : opt_in[0], *c0 = k == 1 ? NULL : opt_in[1];
            void *hT = k == 2 ? NULL : b->hT, *cT = k == 3 ? NULL : b->cT;
            CHECK_STATUS(FWD(m, T, B, b->x, h0, c0, b->y, hT, cT, &o, ws, need), CLSTM_OK);
        }
        CHECK_STATUS(FWD(m, T, B, b->x, NULL, NULL, b->y, NULL, NULL, &o, ws, need), CLSTM_OK);
    }
    free(ws);
done:
    free(b);
    clstm_free(m);
}

static void test_backward(void)
{
    clstm_model *m = make(small_config());
    bufs *b = xcalloc(1, sizeof *b);
    unsigned char *ws = NULL;
    size_t need = 0;
    if (!m) goto done;
    init_inputs(b);
    CHECK_STATUS(clstm_workspace_size(m, T, B, 1, &need), CLSTM_OK);
    ws = xcalloc(need, 1);
    /* a workspace that never saw a forward */
    CHECK_STATUS(clstm_backward(m, T, B, b->dy, NULL, NULL, b->dx, b->dh0, b->dc0, ws, need),
                 CLSTM_ERR_STATE);
    CHECK_STATUS(clstm_forward(m, T, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, 1, ws, need),
                 CLSTM_OK);
    void *g;
    size_t n;
    CHECK_STATUS(clstm_grads(m, &g, &n), CLSTM_OK);
    double *g0 = xcalloc(n, sizeof(double));
    memcpy(g0, g, n * sizeof(double));
    poison_outputs(b);
#define BWD(m_, T_, B_, ws_, n_)                                                                \
    clstm_backward(m_, T_, B_, b->dy, b->hT, b->cT, b->dx, b->dh0, b->dc0, ws_, n_)
    CHECK_STATUS(BWD(NULL, T, B, ws, need), CLSTM_ERR_NULL);
    CHECK_STATUS(BWD(m, T, B, NULL, need), CLSTM_ERR_WORKSPACE);
    CHECK_STATUS(BWD(m, T, B, NULL, SIZE_MAX), CLSTM_ERR_WORKSPACE);
    CHECK_STATUS(BWD(m, T, B, ws, need - 1), CLSTM_ERR_WORKSPACE);
    CHECK_STATUS(BWD(m, T, B, ws, 0), CLSTM_ERR_WORKSPACE);
    for (size_t k = 0; k < sizeof bad_sizes / sizeof *bad_sizes; k++) {
        CHECK_STATUS(BWD(m, bad_sizes[k], B, ws, SIZE_MAX), CLSTM_ERR_SIZE);
        CHECK_STATUS(BWD(m, T, bad_sizes[k], ws, SIZE_MAX), CLSTM_ERR_SIZE);
    }
    CHECK_STATUS(BWD(m, INT64_MAX, 1, ws, SIZE_MAX), CLSTM_ERR_OVERFLOW);
    CHECK_STATUS(BWD(m, (int64_t)1 << 62, 4, ws, SIZE_MAX), CLSTM_ERR_OVERFLOW);
    CHECK_STATUS(BWD(m, 4, (int64_t)1 << 62, ws, SIZE_MAX), CLSTM_ERR_OVERFLOW);
    CHECK_STATUS(BWD(m, (int64_t)1 << 31, (int64_t)1 << 31, ws, SIZE_MAX), CLSTM_ERR_OVERFLOW);
    CHECK_STATUS(BWD(m, T + 1, B, ws, SIZE_MAX), CLSTM_ERR_STATE);
    CHECK(outputs_untouched(b), "a failed backward wrote an output");
    CHECK(memcmp(g, g0, n * sizeof(double)) == 0, "a failed backward changed the gradients");
    /* the training forward is still pending; optional pointers NULL in turn */
    for (int k = 0; k < 7; k++) {
        if (k > 0)
            CHECK_STATUS(
                clstm_forward(m, T, B, b->x, b->h0, b->c0, b->y, b->hT, b->cT, 1, ws, need),
                CLSTM_OK);
        CHECK_STATUS(clstm_backward(m, T, B, k == 0 ? NULL : b->dy, k == 1 ? NULL : b->hT,
                                    k == 2 ? NULL : b->cT, k == 3 ? NULL : b->dx,
                                    k == 4 ? NULL : b->dh0, k == 5 ? NULL : b->dc0, ws, need),
                     CLSTM_OK);
        CHECK_STATUS(clstm_backward(m, T, B, NULL, NULL, NULL, NULL, NULL, NULL, ws, need),
                     CLSTM_ERR_STATE); /* consumed */
    }
    free(g0);
done:
    free(ws);
    free(b);
    clstm_free(m);
}

/* ------------------------------------------------------------ streaming state reset */

static void test_state_reset(void)
{
    clstm_model *m = make(small_config());
    clstm_config bc = small_config();
    bc.bidirectional = 1;
    clstm_model *bi = make(bc);
    double h[NL * B * H], c[NL * B * H];
    if (!m || !bi) goto done;
    poison(h, sizeof h);
    poison(c, sizeof c);
    CHECK_STATUS(clstm_state_reset(NULL, B, h, c, 0), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_state_reset(m, B, NULL, c, 0), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_state_reset(m, B, h, NULL, 0), CLSTM_ERR_NULL);
    for (size_t k = 0; k < sizeof bad_sizes / sizeof *bad_sizes; k++)
        CHECK_STATUS(clstm_state_reset(m, bad_sizes[k], h, c, 0), CLSTM_ERR_SIZE);
    static const int64_t bad_b[] = {-1, B, B + 1, INT64_MAX, INT64_MIN};
    for (size_t k = 0; k < sizeof bad_b / sizeof *bad_b; k++)
        CHECK_STATUS(clstm_state_reset(m, B, h, c, bad_b[k]), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_state_reset(bi, B, h, c, 0), CLSTM_ERR_ARG);
    /* (L, B, H) arrays whose bytes overflow size_t cannot exist: b = 0 of
     * layer 1 would be at byte (1*B + 0)*H*8 */
    CHECK_STATUS(clstm_state_reset(m, INT64_MAX, h, c, 0), CLSTM_ERR_OVERFLOW);
    CHECK_STATUS(clstm_state_reset(m, TWO62, h, c, 0), CLSTM_ERR_OVERFLOW);
    CHECK_STATUS(clstm_state_reset(m, (int64_t)1 << 59, h, c, 0), CLSTM_ERR_OVERFLOW);
    UNTOUCHED(h, sizeof h, "state_reset");
    UNTOUCHED(c, sizeof c, "state_reset");
    /* success: stream 1 of every layer zeroed, stream 0 kept */
    if (CHECK_STATUS(clstm_state_reset(m, B, h, c, 1), CLSTM_OK)) {
        for (int l = 0; l < NL; l++) {
            CHECK(poisoned(h + (l * B) * H, H * sizeof(double)), "stream 0 of h changed");
            for (int j = 0; j < H; j++)
                CHECK(h[(l * B + 1) * H + j] == 0 && c[(l * B + 1) * H + j] == 0,
                      "stream 1 not zeroed");
        }
    }
done:
    clstm_free(m);
    clstm_free(bi);
}

/* ------------------------------------------------------------ the whole model */

enum { V = 4, O = 3 };

static void test_model_forward(void)
{
    clstm_config ce = small_config(); /* embedding, head */
    ce.encoding = CLSTM_ENCODING_EMBEDDING;
    ce.vocab_size = V;
    ce.output_size = O;
    ce.dtype = CLSTM_FLOAT32;
    clstm_model *me = make(ce), *mn = make(small_config());
    float out[T * B * O], hT[NL * B * H], cT[NL * B * H], dout[T * B * O];
    double xn[T * B * D], outn[T * B * H];
    int32_t ids[T * B];
    unsigned char *we = NULL, *wn = NULL;
    size_t ne = 0, nn = 0;
    if (!me || !mn) goto done;
    for (int i = 0; i < T * B; i++) ids[i] = i % V;
    for (int i = 0; i < T * B * D; i++) xn[i] = 0.1 * i;
    for (int i = 0; i < T * B * O; i++) dout[i] = 0.01f * (float)i;
    CHECK_STATUS(clstm_model_workspace_size(me, T, B, 1, &ne), CLSTM_OK);
    CHECK_STATUS(clstm_model_workspace_size(mn, T, B, 1, &nn), CLSTM_OK);
    we = xcalloc(ne, 1);
    wn = xcalloc(nn, 1);
    clstm_run_options o = clstm_run_options_default();
    for (int train = 0; train <= 1; train++) {
        o.train = train;
        poison(out, sizeof out);
        poison(hT, sizeof hT);
        poison(cT, sizeof cT);
        poison(outn, sizeof outn);
        poison(we, ne);
#define MFE(m_, T_, B_, x_, ids_, out_, o_, ws_, n_)                                             \
    clstm_model_forward(m_, T_, B_, x_, ids_, NULL, NULL, out_, hT, cT, o_, ws_, n_)
        CHECK_STATUS(MFE(NULL, T, B, NULL, ids, out, &o, we, ne), CLSTM_ERR_NULL);
        CHECK_STATUS(MFE(me, T, B, NULL, NULL, out, &o, we, ne), CLSTM_ERR_NULL);
        CHECK_STATUS(MFE(me, T, B, NULL, ids, NULL, &o, we, ne), CLSTM_ERR_NULL);
        CHECK_STATUS(MFE(mn, T, B, NULL, NULL, outn, &o, wn, nn), CLSTM_ERR_NULL);
        CHECK_STATUS(MFE(me, T, B, NULL, ids, out, &o, NULL, ne), CLSTM_ERR_WORKSPACE);
        CHECK_STATUS(MFE(me, T, B, NULL, ids, out, &o, NULL, SIZE_MAX), CLSTM_ERR_WORKSPACE);
        CHECK_STATUS(MFE(me, T, B, xn, ids, out, &o, we, ne), CLSTM_ERR_ARG);
        CHECK_STATUS(MFE(mn, T, B, xn, ids, outn, &o, wn, nn), CLSTM_ERR_ARG);
        for (size_t k = 0; k < sizeof bad_sizes / sizeof *bad_sizes; k++) {
            CHECK_STATUS(MFE(me, bad_sizes[k], B, NULL, ids, out, &o, we, SIZE_MAX),
                         CLSTM_ERR_SIZE);
            CHECK_STATUS(MFE(me, T, bad_sizes[k], NULL, ids, out, &o, we, SIZE_MAX),
                         CLSTM_ERR_SIZE);
        }
        /* sizes whose arrays cannot exist: nothing may be read (ids are
         * checked before anything else is done with them) */
        static const int64_t huge[][2] = {{INT64_MAX, 1}, {(int64_t)1 << 62, 4},
                                          {4, (int64_t)1 << 62}, {(int64_t)1 << 40, (int64_t)1 << 20},
                                          {(int64_t)1 << 61, 1}, {1, (int64_t)1 << 59}};
        for (size_t k = 0; k < sizeof huge / sizeof *huge; k++) {
            CHECK_STATUS(MFE(me, huge[k][0], huge[k][1], NULL, ids, out, &o, we, SIZE_MAX),
                         CLSTM_ERR_OVERFLOW);
            CHECK_STATUS(MFE(mn, huge[k][0], huge[k][1], xn, NULL, outn, &o, wn, SIZE_MAX),
                         CLSTM_ERR_OVERFLOW);
        }
        size_t need_mode = 0;
        CHECK_STATUS(clstm_model_workspace_size(me, T, B, train, &need_mode), CLSTM_OK);
        CHECK_STATUS(MFE(me, T, B, NULL, ids, out, &o, we, need_mode - 1), CLSTM_ERR_WORKSPACE);
        clstm_run_options bad = o;
        bad.struct_size = 0;
        CHECK_STATUS(MFE(me, T, B, NULL, ids, out, &bad, we, ne), CLSTM_ERR_ARG);
        int32_t bad_ids[T * B];
        memcpy(bad_ids, ids, sizeof ids);
        static const int32_t bad_id[] = {-1, V, INT32_MAX, INT32_MIN};
        for (size_t k = 0; k < 4; k++) {
            bad_ids[T * B - 1] = bad_id[k];
            CHECK_STATUS(MFE(me, T, B, NULL, bad_ids, out, &o, we, ne), CLSTM_ERR_ARG);
        }
        CHECK(poisoned(out, sizeof out) && poisoned(hT, sizeof hT) && poisoned(cT, sizeof cT) &&
                  poisoned(outn, sizeof outn),
              "a failed model_forward (train=%d) wrote an output", train);
        CHECK(poisoned(we, ne), "a failed model_forward (train=%d) wrote the workspace", train);
        /* a NULL opt runs with the default options (see the report: the
         * header's "as clstm_forward_ex" lists opt as required) */
        if (!train) CHECK_STATUS(MFE(me, T, B, NULL, ids, out, NULL, we, ne), CLSTM_OK);
        CHECK_STATUS(clstm_model_forward(me, T, B, NULL, ids, NULL, NULL, out, NULL, NULL, &o,
                                         we, ne),
                     CLSTM_OK);
    }
    /* backward (the training forward above is pending) */
    poison(hT, sizeof hT);
#define MBE(m_, T_, B_, dx_, ws_, n_)                                                           \
    clstm_model_backward(m_, T_, B_, dout, NULL, NULL, dx_, hT, cT, ws_, n_)
    CHECK_STATUS(MBE(NULL, T, B, NULL, we, ne), CLSTM_ERR_NULL);
    CHECK_STATUS(MBE(me, T, B, NULL, NULL, ne), CLSTM_ERR_WORKSPACE);
    CHECK_STATUS(MBE(me, T, B, NULL, we, ne - 1), CLSTM_ERR_WORKSPACE);
    CHECK_STATUS(MBE(me, T, B, xn, we, ne), CLSTM_ERR_ARG); /* dx for a token model */
    for (size_t k = 0; k < sizeof bad_sizes / sizeof *bad_sizes; k++) {
        CHECK_STATUS(MBE(me, bad_sizes[k], B, NULL, we, SIZE_MAX), CLSTM_ERR_SIZE);
        CHECK_STATUS(MBE(me, T, bad_sizes[k], NULL, we, SIZE_MAX), CLSTM_ERR_SIZE);
    }
    CHECK_STATUS(MBE(me, INT64_MAX, 1, NULL, we, SIZE_MAX), CLSTM_ERR_OVERFLOW);
    CHECK_STATUS(MBE(me, (int64_t)1 << 62, 4, NULL, we, SIZE_MAX), CLSTM_ERR_OVERFLOW);
    CHECK_STATUS(MBE(me, T + 1, B, NULL, we, SIZE_MAX), CLSTM_ERR_STATE);
    CHECK(poisoned(hT, sizeof hT), "a failed model_backward wrote dh0");
    CHECK_STATUS(clstm_model_backward(me, T, B, NULL, NULL, NULL, NULL, NULL, NULL, we, ne),
                 CLSTM_OK);
done:
    free(we);
    free(wn);
    clstm_free(me);
    clstm_free(mn);
}

/* ------------------------------------------------------------ softmax, losses */

static void test_softmax(void)
{
    double z[6] = {1, 2, 3, 4, 5, 6}, p[6];
    poison(p, sizeof p);
    CHECK_STATUS(clstm_softmax(CLSTM_FLOAT64, 2, 3, NULL, 1.0, p), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_softmax(CLSTM_FLOAT64, 2, 3, z, 1.0, NULL), CLSTM_ERR_NULL);
    for (size_t k = 0; k < sizeof bad_sizes / sizeof *bad_sizes; k++) {
        CHECK_STATUS(clstm_softmax(CLSTM_FLOAT64, bad_sizes[k], 3, z, 1.0, p), CLSTM_ERR_SIZE);
        CHECK_STATUS(clstm_softmax(CLSTM_FLOAT64, 2, bad_sizes[k], z, 1.0, p), CLSTM_ERR_SIZE);
    }
    for (int dt = 0; dt <= 1; dt++) {
        CHECK_STATUS(clstm_softmax((clstm_dtype)dt, INT64_MAX, INT64_MAX, z, 1.0, p),
                     CLSTM_ERR_OVERFLOW);
        CHECK_STATUS(clstm_softmax((clstm_dtype)dt, INT64_MAX, 2, z, 1.0, p), CLSTM_ERR_OVERFLOW);
        /* n*k fits int64, its bytes do not fit size_t */
        CHECK_STATUS(clstm_softmax((clstm_dtype)dt, TWO62, 1, z, 1.0, p), CLSTM_ERR_OVERFLOW);
        CHECK_STATUS(clstm_softmax((clstm_dtype)dt, 1, TWO62, z, 1.0, p), CLSTM_ERR_OVERFLOW);
        CHECK_STATUS(clstm_softmax((clstm_dtype)dt, (int64_t)1 << 61, 2, z, 1.0, p),
                     CLSTM_ERR_OVERFLOW);
    }
    CHECK_STATUS(clstm_softmax((clstm_dtype)2, 2, 3, z, 1.0, p), CLSTM_ERR_DTYPE);
    CHECK_STATUS(clstm_softmax((clstm_dtype)-1, 2, 3, z, 1.0, p), CLSTM_ERR_DTYPE);
    static const double bad_t[] = {0.0, -1.0, NAN, INFINITY, -INFINITY};
    for (size_t k = 0; k < sizeof bad_t / sizeof *bad_t; k++)
        CHECK_STATUS(clstm_softmax(CLSTM_FLOAT64, 2, 3, z, bad_t[k], p), CLSTM_ERR_ARG);
    UNTOUCHED(p, sizeof p, "softmax");
    CHECK_STATUS(clstm_softmax(CLSTM_FLOAT64, 2, 3, z, 1.0, z), CLSTM_OK); /* in place */
}

typedef clstm_status (*loss_fn)(clstm_dtype, int64_t, int64_t, int64_t, const void *,
                                const void *, const int64_t *, int, double *, void *);
static clstm_status xent(clstm_dtype dt, int64_t t, int64_t b, int64_t o, const void *out,
                         const void *tg, const int64_t *len, int last, double *loss, void *d)
{
    return clstm_loss_xent(dt, t, b, o, out, (const int32_t *)tg, len, last, loss, d);
}

static void test_losses(void)
{
    enum { LT = 3, LB = 2, LO = 4 };
    double out[LT * LB * LO], dout[LT * LB * LO], tr[LT * LB * LO];
    int32_t tc[LT * LB];
    for (int i = 0; i < LT * LB * LO; i++) out[i] = tr[i] = 0.1 * i;
    for (int i = 0; i < LT * LB; i++) tc[i] = i % LO;
    const loss_fn fns[2] = {xent, clstm_loss_mse};
    const void *tgs[2] = {tc, tr};
    for (int f = 0; f < 2; f++) {
        const loss_fn fn = fns[f];
        const void *tg = tgs[f];
        double loss = 4242.0;
        poison(dout, sizeof dout);
        CHECK_STATUS(fn(CLSTM_FLOAT64, LT, LB, LO, NULL, tg, NULL, 0, &loss, dout), CLSTM_ERR_NULL);
        CHECK_STATUS(fn(CLSTM_FLOAT64, LT, LB, LO, out, NULL, NULL, 0, &loss, dout),
                     CLSTM_ERR_NULL);
        CHECK_STATUS(fn(CLSTM_FLOAT64, LT, LB, LO, out, tg, NULL, 0, NULL, dout), CLSTM_ERR_NULL);
        for (size_t k = 0; k < sizeof bad_sizes / sizeof *bad_sizes; k++) {
            const int64_t s = bad_sizes[k];
            CHECK_STATUS(fn(CLSTM_FLOAT64, s, LB, LO, out, tg, NULL, 0, &loss, dout),
                         CLSTM_ERR_SIZE);
            CHECK_STATUS(fn(CLSTM_FLOAT64, LT, s, LO, out, tg, NULL, 0, &loss, dout),
                         CLSTM_ERR_SIZE);
            CHECK_STATUS(fn(CLSTM_FLOAT64, LT, LB, s, out, tg, NULL, 0, &loss, dout),
                         CLSTM_ERR_SIZE);
        }
        for (int dt = 0; dt <= 1; dt++) {
            const clstm_dtype d = (clstm_dtype)dt;
            CHECK_STATUS(fn(d, INT64_MAX, INT64_MAX, 1, out, tg, NULL, 0, &loss, dout),
                         CLSTM_ERR_OVERFLOW);
            CHECK_STATUS(fn(d, TWO62, 4, 1, out, tg, NULL, 0, &loss, dout), CLSTM_ERR_OVERFLOW);
            CHECK_STATUS(fn(d, 1, 4, TWO62, out, tg, NULL, 1, &loss, dout), CLSTM_ERR_OVERFLOW);
            /* T*B*O fits int64, the bytes of out do not fit size_t (and B
             * int64 lengths of the work array would wrap) */
            CHECK_STATUS(fn(d, 1, TWO62, 1, out, tg, NULL, 1, &loss, dout), CLSTM_ERR_OVERFLOW);
            CHECK_STATUS(fn(d, 1, (int64_t)1 << 61, 2, out, tg, NULL, 1, &loss, dout),
                         CLSTM_ERR_OVERFLOW);
            CHECK_STATUS(fn(d, TWO62, 1, 1, out, tg, NULL, 1, &loss, dout), CLSTM_ERR_OVERFLOW);
        }
        CHECK_STATUS(fn((clstm_dtype)2, LT, LB, LO, out, tg, NULL, 0, &loss, dout),
                     CLSTM_ERR_DTYPE);
        static const int64_t bad_len[] = {-1, LT + 1, INT64_MAX, INT64_MIN};
        for (size_t k = 0; k < sizeof bad_len / sizeof *bad_len; k++) {
            const int64_t len[LB] = {LT, bad_len[k]};
            CHECK_STATUS(fn(CLSTM_FLOAT64, LT, LB, LO, out, tg, len, 0, &loss, dout),
                         CLSTM_ERR_ARG);
        }
        CHECK(loss == 4242.0, "a failed loss wrote *loss = %g", loss);
        UNTOUCHED(dout, sizeof dout, "loss");
        CHECK_STATUS(fn(CLSTM_FLOAT64, LT, LB, LO, out, tg, NULL, 0, &loss, NULL), CLSTM_OK);
    }
    /* class ids outside [0, O) at a counted step */
    static const int32_t bad_class[] = {-1, LO, INT32_MAX, INT32_MIN};
    double loss = 4242.0;
    for (size_t k = 0; k < 4; k++) {
        int32_t t2[LT * LB];
        memcpy(t2, tc, sizeof tc);
        t2[0] = bad_class[k];
        CHECK_STATUS(clstm_loss_xent(CLSTM_FLOAT64, LT, LB, LO, out, t2, NULL, 0, &loss, dout),
                     CLSTM_ERR_ARG);
    }
    CHECK(loss == 4242.0, "a failed xent wrote *loss");
}

/* ------------------------------------------------------------ vocabulary, metadata */

static void test_vocab_metadata(void)
{
    clstm_config ct = small_config();
    ct.encoding = CLSTM_ENCODING_ONEHOT;
    ct.vocab_size = D;
    clstm_model *m = make(ct), *bare = make(small_config());
    if (!m || !bare) goto done;
    const char *s = SENTINEL;
    size_t n = 4242, used = 4242;
    int32_t id = -42;
    /* no vocabulary yet */
    CHECK_STATUS(clstm_vocab_token(m, 0, &s, &n), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_vocab_lookup(m, "a", 1, &id, &used), CLSTM_ERR_ARG);
    CHECK(used == 0 && id == -42, "lookup without vocab: used %zu id %d", used, (int)id);
    used = 4242;
    CHECK_STATUS(clstm_set_vocab(NULL, "abc", 3), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_set_vocab(m, NULL, 3), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_set_vocab(m, "abc", 0), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_set_vocab(m, "abc", SIZE_MAX), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_set_vocab(m, "abc", SIZE_MAX / 2), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_set_vocab(bare, "abc", 3), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_set_vocab(m, "abc", 3), CLSTM_OK);
    CHECK_STATUS(clstm_set_vocab(m, "xyzw", 4), CLSTM_ERR_ARG); /* keeps the old one */
    CHECK_STATUS(clstm_get_vocab(NULL, &s, &n), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_get_vocab(m, NULL, &n), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_get_vocab(m, &s, NULL), CLSTM_ERR_NULL);
    CHECK(s == SENTINEL && n == 4242, "a failed get_vocab wrote its outputs");
    CHECK_STATUS(clstm_vocab_token(NULL, 0, &s, &n), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_vocab_token(m, 0, NULL, &n), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_vocab_token(m, 0, &s, NULL), CLSTM_ERR_NULL);
    static const int32_t bad_id[] = {-1, D, INT32_MAX, INT32_MIN};
    for (size_t k = 0; k < 4; k++)
        CHECK_STATUS(clstm_vocab_token(m, bad_id[k], &s, &n), CLSTM_ERR_ARG);
    CHECK(s == SENTINEL && n == 4242, "a failed vocab_token wrote its outputs");
    CHECK_STATUS(clstm_vocab_lookup(NULL, "a", 1, &id, &used), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_vocab_lookup(m, NULL, 1, &id, &used), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_vocab_lookup(m, "a", 1, NULL, &used), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_vocab_lookup(m, "a", 1, &id, NULL), CLSTM_ERR_NULL);
    CHECK(id == -42 && used == 4242, "a NULL-argument lookup wrote its outputs");
    CHECK_STATUS(clstm_vocab_lookup(m, "a", 0, &id, &used), CLSTM_ERR_ARG);
    CHECK(id == -42 && used == 0, "lookup len 0: used %zu id %d", used, (int)id);
    CHECK_STATUS(clstm_vocab_lookup(m, "\xc3", 1, &id, &used), CLSTM_ERR_ARG); /* truncated */
    CHECK(id == -42 && used == 0, "lookup of invalid UTF-8");
    CHECK_STATUS(clstm_vocab_lookup(m, "q", 1, &id, &used), CLSTM_ERR_ARG); /* unknown */
    CHECK(id == -42 && used == 1, "lookup of an unknown character");
    CHECK_STATUS(clstm_vocab_lookup(m, "c", SIZE_MAX, &id, &used), CLSTM_OK); /* len is a bound */
    CHECK(id == 2 && used == 1, "lookup 'c': id %d used %zu", (int)id, used);

    /* metadata */
    const char *v = SENTINEL, *k = SENTINEL;
    int64_t count = -42;
    CHECK_STATUS(clstm_set_metadata(NULL, "a", "b"), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_set_metadata(m, NULL, "b"), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_set_metadata(m, NULL, NULL), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_set_metadata(m, "absent", NULL), CLSTM_OK); /* removing nothing */
    CHECK_STATUS(clstm_set_metadata(m, "", "b"), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_set_metadata(m, "hidden_size", "b"), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_set_metadata(m, "a", "\xff"), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_set_metadata(m, "a", "b"), CLSTM_OK);
    CHECK_STATUS(clstm_get_metadata(NULL, "a", &v), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_get_metadata(m, NULL, &v), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_get_metadata(m, "a", NULL), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_metadata_count(NULL, &count), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_metadata_count(m, NULL), CLSTM_ERR_NULL);
    CHECK_EQ(count, -42);
    CHECK_STATUS(clstm_metadata_at(NULL, 0, &k, &v), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_metadata_at(m, 0, NULL, &v), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_metadata_at(m, 0, &k, NULL), CLSTM_ERR_NULL);
    static const int64_t bad_i[] = {-1, 1, INT64_MAX, INT64_MIN, (int64_t)1 << 32};
    for (size_t i = 0; i < sizeof bad_i / sizeof *bad_i; i++)
        CHECK_STATUS(clstm_metadata_at(m, bad_i[i], &k, &v), CLSTM_ERR_ARG);
    CHECK(k == SENTINEL && v == SENTINEL, "a failed metadata call wrote its outputs");
    CHECK_STATUS(clstm_metadata_count(m, &count), CLSTM_OK);
    CHECK_EQ(count, 1);
done:
    clstm_free(m);
    clstm_free(bare);
}

/* ------------------------------------------------------------ files */

/* A safetensors buffer: u64 N | header (N bytes) | data. */
static unsigned char *st_buffer(const char *header, size_t data_bytes, size_t *size)
{
    const size_t n = strlen(header);
    unsigned char *buf = xcalloc(8 + n + data_bytes, 1);
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(buf + 8, header, n);
    *size = 8 + n + data_bytes;
    return buf;
}

static void expect_load_format(const char *header, size_t data_bytes, const char *what)
{
    size_t size;
    unsigned char *buf = st_buffer(header, data_bytes, &size);
    clstm_model *m = SENTINEL;
    clstm_status st = clstm_load_buffer(buf, size, &m);
    CHECK(st == CLSTM_ERR_FORMAT && m == NULL, "%s: load_buffer returned %d (%s), *out %p",
          what, (int)st, clstm_status_string(st), (void *)m);
    if (st == CLSTM_OK && m != SENTINEL) clstm_free(m);
    free(buf);
}

static void test_files(void)
{
    clstm_model *m = make(small_config()), *r = SENTINEL;
    const char *why = SENTINEL;
    if (!m) return;
    CHECK_STATUS(clstm_save(NULL, "x.safetensors"), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_save(m, NULL), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_save_ex(NULL, "x.safetensors", &why), CLSTM_ERR_NULL);
    CHECK(why != SENTINEL, "save_ex did not set *why");
    CHECK_STATUS(clstm_save_ex(m, NULL, NULL), CLSTM_ERR_NULL);
    why = NULL;
    CHECK_STATUS(clstm_save_ex(m, "/nonexistent-clstm-dir/x.safetensors", &why), CLSTM_ERR_IO);
    CHECK(why != NULL && why[0], "save_ex IO: no reason");
    CHECK_STATUS(clstm_save(m, ""), CLSTM_ERR_IO);

    CHECK_STATUS(clstm_load(NULL, &r), CLSTM_ERR_NULL);
    CHECK(r == NULL, "load(NULL path) left *out non-NULL");
    CHECK_STATUS(clstm_load("x", NULL), CLSTM_ERR_NULL);
    r = SENTINEL;
    why = SENTINEL;
    CHECK_STATUS(clstm_load_ex(NULL, &r, &why), CLSTM_ERR_NULL);
    CHECK(r == NULL && why == NULL, "load_ex(NULL path): *out %p, *why set", (void *)r);
    CHECK_STATUS(clstm_load_ex("x", NULL, &why), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_load_ex("x", NULL, NULL), CLSTM_ERR_NULL);
    r = SENTINEL;
    CHECK_STATUS(clstm_load_ex(".", &r, NULL), CLSTM_ERR_IO); /* a directory */
    CHECK(r == NULL, "load_ex(dir) left *out");
    CHECK_STATUS(clstm_load("", &r), CLSTM_ERR_IO);

    const unsigned char bytes[16] = {0};
    r = SENTINEL;
    CHECK_STATUS(clstm_load_buffer(NULL, 16, &r), CLSTM_ERR_NULL);
    CHECK(r == NULL, "load_buffer(NULL data) left *out");
    CHECK_STATUS(clstm_load_buffer(NULL, 0, &r), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_load_buffer(bytes, 16, NULL), CLSTM_ERR_NULL);
    for (size_t s = 0; s <= 16; s++) {
        r = SENTINEL;
        CHECK_STATUS(clstm_load_buffer(bytes, s, &r), CLSTM_ERR_FORMAT);
        CHECK(r == NULL, "load_buffer(%zu zero bytes) left *out", s);
    }
    /* header lengths: all ones, 2^63, 10^8 + 1, one past the end */
    static const uint64_t bad_n[] = {UINT64_MAX, (uint64_t)1 << 63, 100000001, 9};
    for (size_t k = 0; k < sizeof bad_n / sizeof *bad_n; k++) {
        unsigned char b16[16];
        memset(b16, '{', sizeof b16);
        for (int i = 0; i < 8; i++) b16[i] = (unsigned char)(bad_n[k] >> (8 * i));
        r = SENTINEL;
        CHECK_STATUS(clstm_load_buffer(b16, sizeof b16, &r), CLSTM_ERR_FORMAT);
        CHECK(r == NULL, "load_buffer left *out");
    }
    /* sizes in the file that overflow or cannot be allocated: FORMAT, with
     * nothing allocated in proportion to them */
    expect_load_format("{\"__metadata__\":{\"input_size\":\"3\",\"hidden_size\":\"1099511627776\","
                       "\"num_layers\":\"1\"}}",
                       0, "hidden_size 2^40, no tensors");
    expect_load_format("{\"__metadata__\":{\"input_size\":\"4611686018427387904\","
                       "\"hidden_size\":\"4611686018427387904\",\"num_layers\":\"4611686018427387904\"}}",
                       0, "every size 2^62");
    expect_load_format("{\"__metadata__\":{\"input_size\":\"9223372036854775807\","
                       "\"hidden_size\":\"1\",\"num_layers\":\"1\"}}",
                       0, "input_size INT64_MAX");
    expect_load_format("{\"__metadata__\":{\"input_size\":\"1\",\"hidden_size\":\"1\","
                       "\"num_layers\":\"1099511627776\"}}",
                       0, "num_layers 2^40");
    expect_load_format("{\"weight_ih_l0\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],"
                       "\"data_offsets\":[0,0]}}",
                       0, "shape 2^32 x 2^32 (bytes overflow)");
    expect_load_format("{\"weight_ih_l0\":{\"dtype\":\"F64\",\"shape\":[256,256,256,256,256,256,"
                       "256,256],\"data_offsets\":[0,0]}}",
                       0, "8-d shape of 2^64 elements");
    expect_load_format("{\"weight_ih_l0\":{\"dtype\":\"F32\",\"shape\":[4611686018427387904,1],"
                       "\"data_offsets\":[0,18446744073709551615]}}",
                       0, "data_offsets end 2^64-1");
    expect_load_format("{\"weight_ih_l0\":{\"dtype\":\"F32\",\"shape\":[1073741824,4],"
                       "\"data_offsets\":[0,17179869184]},\"weight_hh_l0\":{\"dtype\":\"F32\","
                       "\"shape\":[1073741824,268435456],\"data_offsets\":[17179869184,"
                       "17179869184]}}",
                       16, "shapes of a 2^28 hidden size, 16 data bytes");
    clstm_free(m);
}

/* ------------------------------------------------------------ quantized models */

static void test_quantized(void)
{
    clstm_model *m = make(small_config()), *q = SENTINEL;
    if (!m) return;
    CHECK_STATUS(clstm_quantize(NULL, &q), CLSTM_ERR_NULL);
    CHECK(q == NULL, "quantize(NULL) left *out %p", (void *)q);
    CHECK_STATUS(clstm_quantize(m, NULL), CLSTM_ERR_NULL);
    CHECK_EQ(clstm_is_quantized(NULL), 0);
    CHECK_EQ(clstm_is_quantized(m), 0);
    q = NULL;
    if (!CHECK_STATUS(clstm_quantize(m, &q), CLSTM_OK)) goto done;
    CHECK_EQ(clstm_is_quantized(q), 1);

    int64_t nt = 0;
    CHECK_STATUS(clstm_num_tensors(q, &nt), CLSTM_OK);
    const int8_t *w8 = (const int8_t *)SENTINEL;
    const float *s = (const float *)SENTINEL;
    CHECK_STATUS(clstm_tensor_int8(NULL, 0, &w8, &s), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_tensor_int8(q, 0, NULL, &s), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_tensor_int8(q, 0, &w8, NULL), CLSTM_ERR_NULL);
    const int64_t bad_index[] = {-1, INT64_MIN, nt, nt + 1, INT64_MAX, TWO62,
                                 2 /* bias_ih_l0: not int8 */};
    for (size_t k = 0; k < sizeof bad_index / sizeof *bad_index; k++)
        CHECK_STATUS(clstm_tensor_int8(q, bad_index[k], &w8, &s), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_tensor_int8(m, 0, &w8, &s), CLSTM_ERR_ARG); /* a float model */
    CHECK(w8 == (const int8_t *)SENTINEL && s == (const float *)SENTINEL,
          "a failed clstm_tensor_int8 wrote its outputs");
    CHECK_STATUS(clstm_tensor_int8(q, 0, &w8, &s), CLSTM_OK);

    const char *kernel = clstm_int8_kernel();
    CHECK(kernel && kernel[0], "clstm_int8_kernel() is empty");
    static const char *const bad_names[] = {"", "AVX2", "avx2 ", "sse", "avx512"};
    CHECK_STATUS(clstm_int8_kernel_limit(NULL), CLSTM_ERR_NULL);
    for (size_t k = 0; k < sizeof bad_names / sizeof *bad_names; k++)
        CHECK_STATUS(clstm_int8_kernel_limit(bad_names[k]), CLSTM_ERR_ARG);
    CHECK(strcmp(clstm_int8_kernel(), kernel) == 0, "a refused limit changed the kernel to %s",
          clstm_int8_kernel());
done:
    clstm_free(q);
    clstm_free(m);
}

/* ------------------------------------------------------------ optimizers */

static void test_optim(void)
{
    double p[3] = {1, 2, 3}, g[3] = {0.1, 0.2, 0.3}, vel[3] = {0}, am[3] = {0}, av[3] = {0};
    double p0[3];
    memcpy(p0, p, sizeof p);
    clstm_sgd_config s = clstm_sgd_config_default();
    clstm_adam_config a = clstm_adam_config_default();
    CHECK_STATUS(clstm_sgd_step(CLSTM_FLOAT64, 3, NULL, g, vel, 1, &s), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_sgd_step(CLSTM_FLOAT64, 3, p, NULL, vel, 1, &s), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_sgd_step(CLSTM_FLOAT64, 3, p, g, vel, 1, NULL), CLSTM_ERR_NULL);
    s.momentum = 0.9;
    CHECK_STATUS(clstm_sgd_step(CLSTM_FLOAT64, 3, p, g, NULL, 1, &s), CLSTM_ERR_NULL);
    s = clstm_sgd_config_default();
    CHECK_STATUS(clstm_adam_step(CLSTM_FLOAT64, 3, NULL, g, am, av, 1, &a), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_adam_step(CLSTM_FLOAT64, 3, p, NULL, am, av, 1, &a), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_adam_step(CLSTM_FLOAT64, 3, p, g, NULL, av, 1, &a), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_adam_step(CLSTM_FLOAT64, 3, p, g, am, NULL, 1, &a), CLSTM_ERR_NULL);
    CHECK_STATUS(clstm_adam_step(CLSTM_FLOAT64, 3, p, g, am, av, 1, NULL), CLSTM_ERR_NULL);
    /* sizes: n = 0, and n whose bytes overflow size_t */
    CHECK_STATUS(clstm_sgd_step(CLSTM_FLOAT64, 0, p, g, vel, 1, &s), CLSTM_ERR_SIZE);
    CHECK_STATUS(clstm_adam_step(CLSTM_FLOAT64, 0, p, g, am, av, 1, &a), CLSTM_ERR_SIZE);
    static const size_t huge[] = {SIZE_MAX, SIZE_MAX / 2 + 1, SIZE_MAX / 4 + 1};
    for (size_t k = 0; k < sizeof huge / sizeof *huge; k++)
        for (int dt = 0; dt <= 1; dt++) {
            CHECK_STATUS(clstm_sgd_step((clstm_dtype)dt, huge[k], p, g, vel, 1, &s),
                         CLSTM_ERR_OVERFLOW);
            CHECK_STATUS(clstm_adam_step((clstm_dtype)dt, huge[k], p, g, am, av, 1, &a),
                         CLSTM_ERR_OVERFLOW);
        }
    CHECK_STATUS(clstm_sgd_step(CLSTM_FLOAT64, SIZE_MAX / 8 + 1, p, g, vel, 1, &s),
                 CLSTM_ERR_OVERFLOW);
    CHECK_STATUS(clstm_sgd_step((clstm_dtype)2, 3, p, g, vel, 1, &s), CLSTM_ERR_DTYPE);
    CHECK_STATUS(clstm_adam_step((clstm_dtype)-1, 3, p, g, am, av, 1, &a), CLSTM_ERR_DTYPE);
    static const int64_t bad_step[] = {0, -1, INT64_MIN};
    for (size_t k = 0; k < 3; k++)
        CHECK_STATUS(clstm_adam_step(CLSTM_FLOAT64, 3, p, g, am, av, bad_step[k], &a),
                     CLSTM_ERR_ARG);
    s.struct_size = 0;
    a.struct_size = 0;
    CHECK_STATUS(clstm_sgd_step(CLSTM_FLOAT64, 3, p, g, vel, 1, &s), CLSTM_ERR_ARG);
    CHECK_STATUS(clstm_adam_step(CLSTM_FLOAT64, 3, p, g, am, av, 1, &a), CLSTM_ERR_ARG);
    CHECK(memcmp(p, p0, sizeof p) == 0, "a failed optimizer step changed the parameters");
    CHECK(vel[0] == 0 && am[0] == 0 && av[0] == 0, "a failed step changed the state");
    /* velocity may be NULL without momentum (documented) */
    s = clstm_sgd_config_default();
    CHECK_STATUS(clstm_sgd_step(CLSTM_FLOAT64, 3, p, g, NULL, 1, &s), CLSTM_OK);
}

/* ------------------------------------------------------------ big, valid sizes */

/* A forward whose gate array G has T*B*4H > 2^31 elements (bidirectional
 * inference keeps G (T, B, 4H) whole: 8.6 GB in float32; x and y 0.5 GB):
 * it must work, every index computed in 64 bits. Checked against a short
 * run of the same constant input: the first step forward and the first
 * step of the reverse direction (t = T - 1) are single steps from a zero
 * state; the forward direction converges to a fixed point. Opt-in:
 * CLSTM_TEST_BIG=1. */
static void test_big_forward(void)
{
    const char *env = getenv("CLSTM_TEST_BIG");
    if (!env || strcmp(env, "1") != 0) return;
    clstm_config c = clstm_config_default();
    c.input_size = 1;
    c.hidden_size = 8;
    c.proj_size = 1;
    c.bidirectional = 1;
    c.dtype = CLSTM_FLOAT32;
    clstm_model *m = make(c);
    if (!m) return;
    const int64_t Bb = 64, Tb = ((int64_t)1 << 31) / (Bb * 4 * 8) + 1, Ts = 64;
    size_t need = 0, need_s = 0;
    CHECK_STATUS(clstm_workspace_size(m, Tb, Bb, 0, &need), CLSTM_OK);
    CHECK_STATUS(clstm_workspace_size(m, Ts, Bb, 0, &need_s), CLSTM_OK);
    CHECK((double)need >= (double)Tb * Bb * 32 * sizeof(float), "big workspace %zu", need);
    float *x = malloc((size_t)(Tb * Bb) * sizeof(float));
    float *y = malloc((size_t)(Tb * Bb * 2) * sizeof(float));
    float *ys = malloc((size_t)(Ts * Bb * 2) * sizeof(float));
    void *ws = malloc(need), *ws_s = malloc(need_s);
    if (x && y && ys && ws && ws_s) {
        for (int64_t i = 0; i < Tb * Bb; i++) x[i] = 0.5f;
        CHECK_STATUS(clstm_forward(m, Tb, Bb, x, NULL, NULL, y, NULL, NULL, 0, ws, need),
                     CLSTM_OK);
        CHECK_STATUS(clstm_forward(m, Ts, Bb, x, NULL, NULL, ys, NULL, NULL, 0, ws_s, need_s),
                     CLSTM_OK);
        double worst = 0;
        for (int64_t b = 0; b < Bb; b++) {
            const float *yl = y + ((Tb - 1) * Bb + b) * 2, *ysl = ys + ((Ts - 1) * Bb + b) * 2;
            const float *y0 = y + b * 2, *ys0 = ys + b * 2;
            const double e[4] = {fabs(yl[0] - ysl[0]), fabs(yl[1] - ysl[1]),
                                 fabs(y0[0] - ys0[0]), fabs(y0[1] - ys0[1])};
            for (int k = 0; k < 4; k++) worst = e[k] > worst || e[k] != e[k] ? e[k] : worst;
        }
        CHECK(worst < 1e-4, "T*B*4H = %lld: outputs differ from a short run by %g",
              (long long)(Tb * Bb * 32), worst);
        printf("big forward: T=%lld B=%lld T*B*4H=%lld, largest difference %g\n",
               (long long)Tb, (long long)Bb, (long long)(Tb * Bb * 32), worst);
    } else {
        printf("big forward: not enough memory, skipped\n");
    }
    free(x);
    free(y);
    free(ys);
    free(ws);
    free(ws_s);
    clstm_free(m);
}

int main(void)
{
    test_plain_functions();
    test_create();
    test_accessors();
    workspace_sizes(clstm_workspace_size, "clstm_workspace_size");
    workspace_sizes(clstm_model_workspace_size, "clstm_model_workspace_size");
    test_forward();
    test_backward();
    test_state_reset();
    test_model_forward();
    test_softmax();
    test_losses();
    test_vocab_metadata();
    test_files();
    test_quantized();
    test_optim();
    test_big_forward();
    return ctest_finish();
}
