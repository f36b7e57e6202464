/* Forward and backward over whole sequences: argument checks, the workspace
 * layout, and dispatch to the per-dtype kernels in lstm_kernels.inc. */
#include <math.h>
#include <omp.h>
#include <string.h>
#include "fastmath.h"
#include "internal.h"

/* The element-wise kernels are compiled twice on x86-64 (AVX2+FMA and the
 * baseline), and the loader picks one for the CPU: a portable wheel still
 * gets 8-wide vectors. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLSTM_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CLSTM_CLONES
#endif

/* Inference processes the sequence in chunks of this many steps: the input
 * projection is one gemm per chunk, and memory does not grow with T. */
#define CLSTM_INFER_CHUNK 32

/* Byte offsets into the (64-byte aligned) workspace. Training: the input
 * copy, then per layer a block of G (T,B,4H), C (T+1,B,H), H (T+1,B,H) --
 * g, c, h name layer 0's, layer l's are layer_stride further -- then the
 * backward scratch dY (T,B,H), dh (L,B,H), dc (L,B,H). Inference: G
 * (tc,B,4H), two ping-pong buffers (tc,B,H) and the states (L,B,H). */
typedef struct {
    size_t total;
    int64_t tc;
    size_t x, layers, layer_stride, g, c, h, dy, dh, dc; /* training */
    size_t buf0, buf1, hst, cst;                         /* inference (and g) */
} ws_layout;

typedef struct {
    uint64_t magic;
    uint64_t model_id;
    int64_t T, B;
    uint64_t state;
} ws_header;

#define WS_MAGIC 0x636c73746d777331ull /* "clstmws1" */
enum { WS_EMPTY = 0, WS_TRAINED = 1, WS_CONSUMED = 2 };
#define WS_ALIGN 64
#define WS_HEADER 64 /* bytes reserved for ws_header, keeps arrays aligned */

typedef struct {
    size_t off, elem;
    int overflow;
} carver;

/* Reserve n elements, 64-byte aligned; returns the offset. */
static size_t carve(carver *c, size_t n) {
    size_t start = c->off, bytes, next;
    if (clstm_mul(n, c->elem, &bytes) || clstm_add(bytes, WS_ALIGN - 1, &bytes) ||
        clstm_add(start, bytes & ~(size_t)(WS_ALIGN - 1), &next)) {
        c->overflow = 1;
        return 0;
    }
    c->off = next;
    return start;
}

/* n1 * n2 * n3 elements, or SIZE_MAX (which then overflows in carve). */
static size_t prod3(int64_t a, int64_t b, int64_t c) {
    size_t ab, abc;
    if (clstm_mul((size_t)a, (size_t)b, &ab) || clstm_mul(ab, (size_t)c, &abc)) return SIZE_MAX;
    return abc;
}

static clstm_status layout(const clstm_model *m, int64_t T, int64_t B, int train,
                           ws_layout *ly) {
    if (T < 1 || B < 1) return CLSTM_ERR_SIZE;
    const int64_t H = m->cfg.hidden_size, D = m->cfg.input_size, L = m->cfg.num_layers;
    const int64_t lim = clstm_blas_dim_max();
    if (T > lim / B) return CLSTM_ERR_OVERFLOW; /* T*B rows in one gemm */
    memset(ly, 0, sizeof *ly);
    carver c = {WS_HEADER, m->elem, 0};
    if (train) {
        ly->tc = T;
        ly->x = carve(&c, prod3(T, B, D));
        ly->layers = c.off;
        ly->g = carve(&c, prod3(T, B, 4 * H));
        ly->c = carve(&c, prod3(T + 1, B, H));
        ly->h = carve(&c, prod3(T + 1, B, H));
        ly->layer_stride = c.off - ly->layers;
        size_t rest;
        if (c.overflow || clstm_mul(ly->layer_stride, (size_t)(L - 1), &rest) ||
            clstm_add(c.off, rest, &c.off))
            return CLSTM_ERR_OVERFLOW;
        ly->dy = carve(&c, prod3(T, B, H));
        ly->dh = carve(&c, prod3(L, B, H));
        ly->dc = carve(&c, prod3(L, B, H));
    } else {
        ly->tc = CLSTM_INFER_CHUNK; /* even for shorter T: the size never depends on T */
        ly->g = carve(&c, prod3(ly->tc, B, 4 * H));
        ly->buf0 = carve(&c, L > 1 ? prod3(ly->tc, B, H) : 0);
        ly->buf1 = carve(&c, L > 2 ? prod3(ly->tc, B, H) : 0);
        ly->hst = carve(&c, prod3(L, B, H));
        ly->cst = carve(&c, prod3(L, B, H));
    }
    /* slack so that any caller pointer can be aligned up to WS_ALIGN */
    if (c.overflow || clstm_add(c.off, WS_ALIGN, &ly->total)) return CLSTM_ERR_OVERFLOW;
    if (train) { /* a training workspace also serves inference (short T) */
        ws_layout inf;
        clstm_status st = layout(m, T, B, 0, &inf);
        if (st != CLSTM_OK) return st;
        if (inf.total > ly->total) ly->total = inf.total;
    }
    return CLSTM_OK;
}

static char *ws_base(void *ws) {
    uintptr_t p = (uintptr_t)ws;
    return (char *)((p + WS_ALIGN - 1) & ~(uintptr_t)(WS_ALIGN - 1));
}

/* Hidden units [j0, j1) of thread tid: contiguous slices of a multiple of 8. */
static void slice_units(int64_t H, int tid, int nt, int64_t *j0, int64_t *j1) {
    int64_t per = (H + nt - 1) / nt;
    per = (per + 7) & ~(int64_t)7;
    *j0 = (int64_t)tid * per < H ? (int64_t)tid * per : H;
    *j1 = *j0 + per < H ? *j0 + per : H;
}

#define real float
#define SUF(name) name##_f32
#define GEMM clstm_sgemm
#define SIGM clstm_sigmoidf
#define TANH clstm_tanhf
#include "lstm_kernels.inc"
#undef real
#undef SUF
#undef GEMM
#undef SIGM
#undef TANH

#define real double
#define SUF(name) name##_f64
#define GEMM clstm_dgemm
#define SIGM(x) (1.0 / (1.0 + exp(-(x))))
#define TANH tanh
#include "lstm_kernels.inc"
#undef real
#undef SUF
#undef GEMM
#undef SIGM
#undef TANH

clstm_status clstm_workspace_size(const clstm_model *m, int64_t T, int64_t B, int train,
                                  size_t *bytes) {
    if (!m || !bytes) return CLSTM_ERR_NULL;
    ws_layout ly;
    clstm_status st = layout(m, T, B, train, &ly);
    if (st == CLSTM_OK) *bytes = ly.total;
    return st;
}

clstm_status clstm_forward(const clstm_model *m, int64_t T, int64_t B, const void *x,
                           const void *h0, const void *c0, void *y, void *hT, void *cT,
                           int train, void *ws, size_t ws_bytes) {
    if (!m || !x || !y) return CLSTM_ERR_NULL;
    ws_layout ly;
    clstm_status st = layout(m, T, B, train, &ly);
    if (st != CLSTM_OK) return st;
    if (!ws || ws_bytes < ly.total) return CLSTM_ERR_WORKSPACE;
    char *base = ws_base(ws);
    ws_header *hd = (ws_header *)base;
    hd->magic = WS_MAGIC;
    hd->state = WS_EMPTY;
    if (m->cfg.dtype == CLSTM_FLOAT64)
        forward_f64(m, T, B, x, h0, c0, y, hT, cT, train, base, &ly);
    else
        forward_f32(m, T, B, x, h0, c0, y, hT, cT, train, base, &ly);
    if (train) {
        hd->model_id = m->id;
        hd->T = T;
        hd->B = B;
        hd->state = WS_TRAINED;
    }
    return CLSTM_OK;
}

clstm_status clstm_backward(clstm_model *m, int64_t T, int64_t B, const void *dy,
                            const void *dhT, const void *dcT, void *dx, void *dh0, void *dc0,
                            void *ws, size_t ws_bytes) {
    if (!m) return CLSTM_ERR_NULL;
    ws_layout ly;
    clstm_status st = layout(m, T, B, 1, &ly);
    if (st != CLSTM_OK) return st;
    if (!ws || ws_bytes < ly.total) return CLSTM_ERR_WORKSPACE;
    char *base = ws_base(ws);
    ws_header *hd = (ws_header *)base;
    if (hd->magic != WS_MAGIC || hd->state != WS_TRAINED || hd->model_id != m->id ||
        hd->T != T || hd->B != B)
        return CLSTM_ERR_STATE;
    hd->state = WS_CONSUMED;
    if (m->cfg.dtype == CLSTM_FLOAT64)
        backward_f64(m, T, B, dy, dhT, dcT, dx, dh0, dc0, base, &ly);
    else
        backward_f32(m, T, B, dy, dhT, dcT, dx, dh0, dc0, base, &ly);
    return CLSTM_OK;
}
