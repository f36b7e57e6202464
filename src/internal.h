/* Internal declarations shared by the library's translation units. */
#ifndef CLSTM_INTERNAL_H
#define CLSTM_INTERNAL_H

#include <stdint.h>
#include <stddef.h>
#include "clstm.h"

struct clstm_model {
    clstm_config cfg;   /* struct_size is always sizeof(clstm_config) */
    int use_blas;       /* resolved backend */
    uint64_t id;        /* unique per model in this process: ties a workspace to it */
    size_t n_params;    /* elements in each block */
    size_t elem;        /* bytes per element */
    void *params;       /* owned, 64-byte aligned */
    void *grads;        /* owned, 64-byte aligned */
    struct clstm_tensor *tensors; /* owned: the tensor table, n_tensors entries */
    int64_t n_tensors;
    int64_t unit_tensors; /* entries per unit: unit (k, d)'s start at (k*N + d) * this */
    char *vocab;        /* owned NUL-terminated UTF-8 of V characters, or NULL */
    size_t vocab_bytes;
    size_t *vocab_at;   /* (V + 1) byte offsets of each token in vocab */
    uint32_t *vocab_cp; /* (V) code points sorted ascending ... */
    int32_t *vocab_id;  /* ... and their token ids */
    char *meta_key[CLSTM_MAX_METADATA]; /* owned user metadata, n_meta pairs */
    char *meta_val[CLSTM_MAX_METADATA];
    int n_meta;
    int quantized;      /* int8 weights (quantize.c): tensors[i].q8 of the
                           quantized kinds; inference only */
};

/* A "unit" is one direction of one layer: index u = k*N + d. Its tensors
 * (weight_ih, weight_hh, bias_ih, bias_hh[, weight_hr][, peephole]) are
 * contiguous. */
int64_t clstm_dirs(const clstm_config *c);          /* N: 1 or 2 */
int64_t clstm_rsize(const clstm_config *c);         /* R: P if P > 0 else H */
int64_t clstm_unit_input(const clstm_config *c, int64_t k); /* D_k */

/* The tensor table (model.c): the one derivation of the block's layout.
 * clstm_create builds it once; the model owns it. Entries are in block
 * order: per unit (k, d) its kinds WEIGHT_IH .. PEEPHOLE that the config
 * has, then EMBEDDING, HEAD_WEIGHT, HEAD_BIAS that it has. */
typedef enum {
    CLSTM_T_WEIGHT_IH, /* (4H, D_k) */
    CLSTM_T_WEIGHT_HH, /* (4H, R) */
    CLSTM_T_BIAS_IH,   /* (4H) */
    CLSTM_T_BIAS_HH,   /* (4H) */
    CLSTM_T_WEIGHT_HR, /* (P, H), only when P > 0 */
    CLSTM_T_PEEPHOLE,  /* (3H), only with peepholes */
    CLSTM_T_EMBEDDING, /* (V, D), only with CLSTM_ENCODING_EMBEDDING */
    CLSTM_T_HEAD_WEIGHT, /* (O, N*R), only when O > 0 */
    CLSTM_T_HEAD_BIAS,   /* (O), only when O > 0 */
    /* an encoder-decoder's decoder (target_vocab > 0), after the above:
     * per decoder layer k its LSTM, then the rest */
    CLSTM_T_DEC_WEIGHT_IH, /* (4Hd, Et + A) in layer 0, else (4Hd, Hd) */
    CLSTM_T_DEC_WEIGHT_HH, /* (4Hd, Hd) */
    CLSTM_T_DEC_BIAS_IH,   /* (4Hd) */
    CLSTM_T_DEC_BIAS_HH,   /* (4Hd) */
    CLSTM_T_DEC_EMBEDDING, /* (Vt, Et) */
    CLSTM_T_ATT_WEIGHT,    /* (Hd, N*R), general attention only */
    CLSTM_T_ATT_COMBINE,   /* (A, N*R + Hd) */
    CLSTM_T_OUT_WEIGHT,    /* (Vt, A) */
    CLSTM_T_OUT_BIAS,      /* (Vt) */
    CLSTM_T_KINDS
} clstm_tensor_kind;
/* The first kind of the decoder's layers, and of its other tensors. */
#define CLSTM_T_DEC_FIRST CLSTM_T_DEC_WEIGHT_IH
#define CLSTM_T_DEC_OWN CLSTM_T_DEC_EMBEDDING

/* A quantized tensor (quantize.c; q8.h): its int8 rows, one scale per row,
 * and the packed form the products read. Owned by its table entry. */
typedef struct {
    int8_t *q;      /* (rows, cols) row-major, in [-127, 127] */
    float *scale;   /* (rows), finite and > 0 */
    int8_t *packed; /* q8.h's layout: N = rows, K = cols */
    int32_t *colsum;
} clstm_q8_tensor;

typedef struct clstm_tensor {
    clstm_tensor_info info; /* what clstm_tensor_info_get returns */
    clstm_tensor_kind kind;
    int64_t layer, dir;     /* the unit (k, d); -1 for the model's own tensors */
    clstm_q8_tensor *q8;    /* a quantized model's int8 form, else NULL */
} clstm_tensor;

/* Quantized models (quantize.c). The kinds stored as int8: W_ih, W_hh,
 * W_hr, the embedding and the head's weight. */
int clstm_kind_quantized(clstm_tensor_kind kind);
/* Give tensor `index` of m (a float32 model being made quantized) the
 * int8 form q (rows, cols) with scales: checked (ARG: a scale not finite
 * and > 0, or a weight of -128; UNSUPPORTED: cols > CLSTM_Q8_MAX_K),
 * copied, packed, and its dequantized values written to the block. */
clstm_status clstm_q8_attach(clstm_model *m, int64_t index, const int8_t *q,
                             const float *scale);
void clstm_q8_free(clstm_model *m);
/* Make m, just created, a quantized model: inference only, so its
 * gradient block goes (a quarter of its memory). */
void clstm_q8_begin(clstm_model *m);
/* The int8 form of the tensor at block offset `offset`, or NULL. */
const clstm_q8_tensor *clstm_q8_of(const clstm_model *m, size_t offset);

/* Element offsets of unit (k, d)'s tensors in both blocks (0 <= k < L,
 * 0 <= d < N); CLSTM_ABSENT for a tensor the config has not. */
#define CLSTM_ABSENT SIZE_MAX
typedef struct {
    size_t w_ih, w_hh, b_ih, b_hh, w_hr, peephole;
} clstm_unit_offsets;
clstm_unit_offsets clstm_unit_layout(const clstm_model *m, int64_t k, int64_t d);
/* Offset of the model's EMBEDDING, HEAD_WEIGHT or HEAD_BIAS, or
 * CLSTM_ABSENT if it has none (units' kinds: clstm_unit_layout). */
size_t clstm_tensor_offset(const clstm_model *m, clstm_tensor_kind kind);
/* Elements in each block for config c (sizes checked: SIZE, OVERFLOW): the
 * counting pass of the table's derivation, for a config with no model. */
clstm_status clstm_param_count(const clstm_config *c, size_t *n);
/* The fields of a caller's config, of any size from clstm 0.1.0's on, over
 * the defaults (ARG when struct_size is smaller than that). */
clstm_status clstm_config_read(const clstm_config *in, clstm_config *out);

/* Checked size arithmetic: return 0 on success, 1 on overflow. */
static inline int clstm_mul(size_t a, size_t b, size_t *out) {
    return __builtin_mul_overflow(a, b, out);
}
static inline int clstm_add(size_t a, size_t b, size_t *out) {
    return __builtin_add_overflow(a, b, out);
}

/* Workspaces: caller memory, aligned up to WS_ALIGN by ws_base, carved into
 * 64-byte aligned arrays by a carver (sizes checked: overflow is sticky). */
#define WS_ALIGN 64

typedef struct {
    size_t off, elem;
    int overflow;
} carver;

/* Reserve n elements, 64-byte aligned; returns the offset. */
static inline size_t carve(carver *c, size_t n) {
    size_t start = c->off, bytes, next;
    if (clstm_mul(n, c->elem, &bytes) || clstm_add(bytes, WS_ALIGN - 1, &bytes) ||
        clstm_add(start, bytes & ~(size_t)(WS_ALIGN - 1), &next)) {
        c->overflow = 1;
        return 0;
    }
    c->off = next;
    return start;
}

/* a * b * c elements, or SIZE_MAX (which then overflows in carve). */
static inline size_t prod3(int64_t a, int64_t b, int64_t c) {
    size_t ab, abc;
    if (clstm_mul((size_t)a, (size_t)b, &ab) || clstm_mul(ab, (size_t)c, &abc)) return SIZE_MAX;
    return abc;
}

/* 1 if an (a, b, c) array of elem-byte elements fits the address space
 * (at most PTRDIFF_MAX bytes), for sizes a, b, c >= 0. */
static inline int clstm_array_ok(int64_t a, int64_t b, int64_t c, size_t elem) {
    size_t n = prod3(a, b, c), bytes;
    return n != SIZE_MAX && !clstm_mul(n, elem, &bytes) && bytes <= (size_t)PTRDIFF_MAX;
}

static inline char *ws_base(void *ws) {
    uintptr_t p = (uintptr_t)ws;
    return (char *)((p + WS_ALIGN - 1) & ~(uintptr_t)(WS_ALIGN - 1));
}

/* Row-major gemm: C = alpha * op(A) op(B) + beta * C, op(A) M x K, op(B) K x N.
 * transX != 0 means op(X) = X^T. beta == 0 never reads C. use_blas selects
 * CBLAS (when compiled in) or the naive loops. Sizes are checked by callers to
 * fit the BLAS integer type. */
void clstm_sgemm(int use_blas, int ta, int tb, int64_t M, int64_t N, int64_t K,
                 float alpha, const float *A, int64_t lda, const float *B, int64_t ldb,
                 float beta, float *C, int64_t ldc);
void clstm_dgemm(int use_blas, int ta, int tb, int64_t M, int64_t N, int64_t K,
                 double alpha, const double *A, int64_t lda, const double *B, int64_t ldb,
                 double beta, double *C, int64_t ldc);

/* Largest dimension the linked BLAS accepts (INT32_MAX for LP64 builds). */
int64_t clstm_blas_dim_max(void);
/* Make BLAS run single-threaded, so that our OpenMP team owns the cores. */
void clstm_blas_single_thread(void);

/* The recurrent product on packed float32 weights (packed.c; layout there:
 * panels of CLSTM_PACK_PANEL columns, so a range of columns that starts at
 * a multiple of it packs on its own at dst + n0 * K).
 * clstm_pack_rows_f32: column n of the packed matrix is row
 * (n / group) * gstride + n % group of W (ldw); clstm_pack_cols_f32: column
 * n is W[:, n]. Both write exactly N*K floats. clstm_packed_gemm_f32 sets
 * C (M, N) = A (M, K) · packed and returns 1, or returns 0 (and writes
 * nothing) where this CPU has no kernel: the caller then uses GEMM. */
#define CLSTM_PACK_PANEL 32
void clstm_pack_rows_f32(float *dst, const float *W, int64_t ldw, int64_t N, int64_t K,
                         int64_t group, int64_t gstride);
void clstm_pack_cols_f32(float *dst, const float *W, int64_t ldw, int64_t N, int64_t K);
int clstm_packed_gemm_f32(int64_t M, int64_t N, int64_t K, const float *A, int64_t lda,
                          const float *Wp, float *C, int64_t ldc);
/* Two stacked operands (the fused step product): clstm_pack_rows2_f32 packs
 * column n as row rowof(n) of W (K entries) followed by the same row of W2
 * (K2 entries), N*(K+K2) floats; clstm_packed_gemm2_f32 sets C (M, N) =
 * bias + A (M, K) · W + A2 (M, K2) · W2 (bias: N floats in packed column
 * order, or NULL for none) and returns 1, or 0 as above. */
void clstm_pack_rows2_f32(float *dst, const float *W, int64_t ldw, int64_t K, const float *W2,
                          int64_t ldw2, int64_t K2, int64_t N, int64_t group, int64_t gstride);
int clstm_packed_gemm2_f32(int64_t M, int64_t N, const float *A, int64_t lda, int64_t K,
                           const float *A2, int64_t lda2, int64_t K2, const float *Wp,
                           const float *bias, float *C, int64_t ldc);
/* y (N) = W (N rows, leading dimension ldw) · x (K), plus y's old value
 * when acc: the single-row product on unpacked rows; returns 1, or 0
 * (nothing written) where this CPU has no kernel. */
int clstm_rowdot_f32(int64_t N, int64_t K, const float *W, int64_t ldw, const float *x,
                     float *y, int acc);
/* 1 if clstm_packed_gemm_f32 and clstm_rowdot_f32 have kernels for this CPU. */
int clstm_packed_available(void);
/* For tests: use no kernel above isa (0 none, 1 AVX2, 2 AVX-512); returns
 * the one now in use. Not thread-safe against running products. */
int clstm_packed_limit_isa(int isa);

/* One run-time choice among a table of kernels by instruction set
 * (packed.c, q8.c; status.c): entries 0 .. count - 1, best last; has(i)
 * says whether entry i exists and this CPU (and OS) runs it (entry 0 is
 * the fallback, never asked). The entry in use is picked at the first
 * use: the best the CPU has, at most limit. Any threads racing there pick
 * the same, and the tables are constant, so relaxed atomics are enough; a
 * limit set meanwhile wins the race. */
typedef struct {
    int (*has)(int i);
    int count;
    int limit, active; /* initialise limit to count - 1, active to -1 */
} clstm_isa_choice;
/* The entry in use. */
int clstm_isa_active(clstm_isa_choice *c);
/* For tests: use no entry above isa (out of range: the best); returns the
 * one now in use. Not thread-safe against running products. */
int clstm_isa_limit(clstm_isa_choice *c, int isa);

/* Free the model's vocabulary and user metadata (vocab.c). */
void clstm_vocab_clear(clstm_model *m);
void clstm_metadata_clear(clstm_model *m);
/* 1 if s[0..n) is valid UTF-8 (no overlongs, surrogates or > U+10FFFF). */
int clstm_utf8_valid(const char *s, size_t n);
/* 1 if key is one of m's config keys in its file (not user metadata): the
 * decoder's only for an encoder-decoder. */
int clstm_metadata_reserved(const clstm_model *m, const char *key);

/* Threads in the OpenMP team for a problem with batch B, hidden H. */
int clstm_team_size(int64_t B, int64_t H);

#endif
