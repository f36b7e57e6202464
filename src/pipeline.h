/* The one compute path of every model: encode -> LSTM stack -> head.
 *
 *   x (T,B,D) or ids (T,B)
 *     -> encode      identity / one-hot / embedding            (stage_kernels.inc)
 *     -> LSTM stack  per layer and direction, per step          (lstm_kernels.inc)
 *     -> head        Linear over all rows                       (stage_kernels.inc)
 *   (the losses and softmax are separate calls on the output: loss.c)
 *
 * pipeline.c plans one workspace for the stages a call runs, checks the
 * arguments once, and drives the stages inside ONE OpenMP parallel region:
 * forward chunk by chunk (tc steps: T in training and for bidirectional
 * models, CLSTM_INFER_CHUNK in unidirectional inference, so that inference
 * memory does not depend on T), backward once over all steps, in reverse
 * stage order. Every stage is one row of a table (pipeline.c: STAGES) with a
 * forward and a backward entry per dtype; its workspace arrays are planned
 * in plan_layout. A new stage or a new precision is one more entry.
 *
 * Dtype variants: stage_kernels.inc and lstm_kernels.inc are templates over
 * `real`, instantiated once per dtype by kernels_f32.c and kernels_f64.c.
 * Every function they export is declared below for both dtypes. */
#ifndef CLSTM_PIPELINE_H
#define CLSTM_PIPELINE_H

#include "internal.h"
#include "q8.h"

/* The element-wise kernels are compiled for x86-64-v4, v3 and the
 * baseline, and the loader picks one for the CPU: a portable wheel still
 * gets 8- or 16-wide vectors. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define CLSTM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLSTM_CLONES
#endif

/* Unidirectional inference runs in chunks of this many steps. */
#define CLSTM_INFER_CHUNK 32

/* What a call runs: the encoding it applies to its input, and whether the
 * head follows. The LSTM-only entry points (clstm_forward_ex, ...) run
 * {CLSTM_ENCODING_NONE, no head} on any model; the model entry points run
 * the model's own. */
typedef struct {
    clstm_encoding enc;
    int head;
    int train;
} run_plan;

/* Byte offsets into the (64-byte aligned) workspace, after a 64-byte
 * header (pipeline.c). Every field is 0 where the call does not need it.
 *   lens (B int64)       each sequence's length
 *   ids (T,B) int32      the training forward's tokens (embedding)
 *   e (tc,B,D)           the encoded input: token models, and in training a
 *                        zero-padded copy of x (backward reads it); its
 *                        gradient in backward (embedding)
 *   y (tc,B,NR)          the LSTM's output, the head's input (with a head)
 *   dy (T,B,NR)          its gradient (training with a head)
 *   states (NL,B,2R+H)   per unit: h double-buffered by step parity, then c
 *   step buffers         rs, wp (wp_stride elements per layer in chunked
 *                        inference, where the layers take turns chunk by
 *                        chunk and each packs only in its first), bias, ms
 *                        (lstm_kernels.inc: bufs)
 * Training: per layer a block at layer0 + l*layer_stride of l_y (T,B,NR)
 *   output (layers below the top), l_xd (T,B,NR) input after dropout, and
 *   per direction d at d*unit_stride further k_g (T,B,4H), k_ct, k_cp
 *   (T,B,H), k_hp (T,B,R), k_m (T,B,H), k_dh (T,B,P) (the last two with a
 *   projection); then the backward buffers da0, da1 (B,4H), dhrec, dh
 *   (B,R), dc (B,H), dybuf (T,B,NR).
 * Inference: g (tc,B,4H) gate scratch, ybuf0/1 (tc,B,NR) between layers.
 * Quantized models (inference only; no wp or bias panels: their weights
 * are packed in the model): q8x (tc*B rows of clstm_q8_kp(max(D, NR))
 * bytes) and q8xs (tc*B floats), a layer's input rows and scales, then
 * the head's; q8h (B rows of clstm_q8_q8h_kp bytes) and q8hs (B
 * floats), h_{t-1} or o*tanh(c_t) of a step, B rows per thread of a team
 * split by units (B < 3 * CLSTM_Q8_UNIT_TEAM), where a one-step chunk's
 * input rows go too (each thread quantizes them itself: no barrier). */
typedef struct {
    size_t total;
    int chunked;
    int64_t tc; /* steps per chunk */
    size_t lens, ids, e, y, dy, states;
    size_t rs, wp, bias, ms, wp_stride;
    size_t layer0, layer_stride, unit_stride;
    size_t l_y, l_xd, k_g, k_ct, k_cp, k_hp, k_m, k_dh;
    size_t g, ybuf0, ybuf1;
    size_t da0, da1, dhrec, dh, dc, dybuf;
    size_t q8x, q8xs, q8h, q8hs;
} ws_layout;

/* Sizes and settings of one call, shared by the team. */
typedef struct {
    int use_blas;
    int64_t T, B, H, P, R, N, L;
    const int64_t *lens;  /* (B), in the workspace */
    int uniform;          /* every length is T */
    double dropout;       /* > 0 only in a training call of a model with dropout */
    uint64_t seed;
    uint32_t drop_thresh; /* dropped when 24 random bits < this */
    int reverse;          /* a reverse-only model: direction 0 runs backwards */
} dims;

/* One call: the model, its plan and workspace, and the caller's arrays
 * (NULL where not given or not this direction's). */
typedef struct {
    const clstm_model *m;
    clstm_model *mg; /* backward: the model whose gradient block is written */
    run_plan plan;
    dims d;
    const ws_layout *ly;
    char *base; /* the aligned workspace */
    /* forward */
    const void *x;
    const int32_t *ids;
    const void *h0, *c0;
    void *out, *hT, *cT;
    /* backward */
    const void *dout, *dhT, *dcT;
    void *dx, *dh0, *dc0;
} run_ctx;

/* The arrays of one chunk [t0, t0 + n): the LSTM's input x (n,B,D) and
 * output y (n,B,NR), and the head's output out (n,B,O). */
typedef struct {
    int64_t t0, n;
    const void *x;
    void *y, *out;
} chunk_io;

/* A thread's share. The team has `team` threads; the LSTM stage uses the
 * first nt of them (its own measured size, clstm_team_size), the others
 * only the stages around it (a large head). In the LSTM: hidden units
 * [j0, j1) and h columns [r0, r1) (split by units), or batch rows [b0, b1)
 * (split by rows; see lstm_kernels.inc); all empty for tid >= nt. */
typedef struct {
    int64_t j0, j1, r0, r1, b0, b1;
    int tid, nt, team;
} slices;

/* The units and h columns in ranges aligned to `align` (8; Q8_PANEL for
 * quantized models, whose parts split by units are whole panels, so that
 * a thread loads and stores the state it steps: lstm_kernels.inc). */
/* Bytes per row of q8h: clstm_q8_kp of the widest of R, H, D and N*R. */
static inline int64_t clstm_q8h_kp(const clstm_config *cf) {
    const int64_t R = clstm_rsize(cf), NR = clstm_dirs(cf) * R;
    int64_t w = R > cf->hidden_size ? R : cf->hidden_size;
    w = w > cf->input_size ? w : cf->input_size;
    return clstm_q8_kp(w > NR ? w : NR);
}

void clstm_make_slices(const dims *d, int tid, int nt, int team, int align, slices *s);
/* The LSTM's share [a, b) of n rows: n*tid/nt .. n*(tid+1)/nt, empty for
 * tid >= nt. */
static inline void clstm_lstm_rows(int64_t n, const slices *s, int64_t *a, int64_t *b) {
    *a = s->tid < s->nt ? n * s->tid / s->nt : n;
    *b = s->tid < s->nt ? n * (s->tid + 1) / s->nt : n;
}
/* Contiguous ranges of a multiple of `align` (the last may be shorter or
 * empty). */
void clstm_aligned_range(int64_t n, int64_t align, int tid, int nt, int64_t *a, int64_t *b);
/* This thread's share [a, b) of n rows of `work` multiply-adds each: rows
 * split over as many of the whole team as keep at least
 * CLSTM_MIN_SHARED_WORK each (the others get none). */
#define CLSTM_MIN_SHARED_WORK (1 << 18)
void clstm_share_rows(int64_t n, int64_t work, const slices *s, int64_t *a, int64_t *b);

/* Whether a unit that runs on the own kernel splits its steps by batch
 * rows (lstm_kernels.inc, top): a team of two or more with at least
 * CLSTM_BATCH_ROWS_MIN rows per thread (bench/RESULTS.md: 2 rows per
 * thread is the measured break-even). */
#define CLSTM_BATCH_ROWS_MIN 3
static inline int clstm_by_rows(const dims *d, const slices *s) {
    return s->nt > 1 && d->B >= (int64_t)CLSTM_BATCH_ROWS_MIN * s->nt;
}

static inline uint64_t clstm_mix64(uint64_t z) { /* splitmix64's finaliser */
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The dropout key of layer l: seed and layer both pass through the mixer,
 * so no two (seed, layer) pairs give shifted copies of one mask stream. */
static inline uint64_t clstm_dropout_key(uint64_t seed, int64_t l) {
    return clstm_mix64(seed ^ clstm_mix64((uint64_t)l + 0x9E3779B97F4A7C15ull));
}

/* Whether element `idx` of a layer's input is dropped: a hash of (key,
 * index), so forward and backward agree without storing masks. */
static inline int clstm_dropped(uint64_t key, uint64_t idx, uint32_t thresh) {
    return (uint32_t)(clstm_mix64(key + 0x9E3779B97F4A7C15ull * (idx + 1)) >> 40) < thresh;
}

/* Stage entries, run by every thread of the team (s: this thread's share).
 * forward: steps [io->t0, io->t0 + io->n) of the call; backward: all steps.
 * None ends with a barrier unless it says so: the driver orders them. */
typedef void (*stage_forward_fn)(const run_ctx *c, const slices *s, const chunk_io *io);
typedef void (*stage_backward_fn)(const run_ctx *c, const slices *s);

/* encode: writes the chunk's LSTM input e (the driver points io->x at it) */
void clstm_encode_forward_f32(const run_ctx *c, const slices *s, const chunk_io *io);
void clstm_encode_forward_f64(const run_ctx *c, const slices *s, const chunk_io *io);
/* embedding rows' gradients from de (e), after the LSTM's backward */
void clstm_encode_backward_f32(const run_ctx *c, const slices *s);
void clstm_encode_backward_f64(const run_ctx *c, const slices *s);
/* the LSTM stack over the chunk, all layers; loads the initial state in the
 * first chunk and stores the final one after the last (lstm_kernels.inc) */
void clstm_lstm_forward_f32(const run_ctx *c, const slices *s, const chunk_io *io);
void clstm_lstm_forward_f64(const run_ctx *c, const slices *s, const chunk_io *io);
/* BPTT through the stack, parameter gradients, and d input into c->dx
 * (identity encoding) or e (embedding); ends with a barrier */
void clstm_lstm_backward_f32(const run_ctx *c, const slices *s);
void clstm_lstm_backward_f64(const run_ctx *c, const slices *s);
/* out = y W^T + b over the chunk's rows (0 past a length) */
void clstm_head_forward_f32(const run_ctx *c, const slices *s, const chunk_io *io);
void clstm_head_forward_f64(const run_ctx *c, const slices *s, const chunk_io *io);
/* dy = dout W, dW += dout^T y, db += sum dout (valid rows) */
void clstm_head_backward_f32(const run_ctx *c, const slices *s);
void clstm_head_backward_f64(const run_ctx *c, const slices *s);

/* Quantized models (kernels_q8.c: the LSTM template over int8 products;
 * forward only, split by batch rows). The encode stage is float32's: it
 * reads the embedding's dequantized copy in the parameter block. */
void clstm_lstm_forward_q8(const run_ctx *c, const slices *s, const chunk_io *io);
void clstm_head_forward_q8(const run_ctx *c, const slices *s, const chunk_io *io);
/* The LSTM stage's team for a quantized model: clstm_team_size's, split
 * by batch rows where each thread gets at least CLSTM_BATCH_ROWS_MIN rows
 * (with fewer threads where B is large but short of that), else by units
 * with at most CLSTM_Q8_UNIT_TEAM threads (lstm_kernels.inc: part_of_q8;
 * each quantizes every row of a step into its own B rows of q8h). */
#define CLSTM_Q8_UNIT_TEAM 16
int clstm_q8_team(int64_t B, int64_t H);

/* Softmax and the losses (stage_kernels.inc; loss.c checks arguments). */
void clstm_softmax_rows_f32(int64_t n, int64_t k, const float *z, double temperature, float *p);
void clstm_softmax_rows_f64(int64_t n, int64_t k, const double *z, double temperature,
                            double *p);
double clstm_loss_rows_f32(int mse, int64_t T, int64_t B, int64_t O, const float *out,
                           const void *targets, const int64_t *lens, int last_only,
                           double smoothing, float *dout);
double clstm_loss_rows_f64(int mse, int64_t T, int64_t B, int64_t O, const double *out,
                           const void *targets, const int64_t *lens, int last_only,
                           double smoothing, double *dout);

/* The one check of sequence lengths (pipeline and losses): each in [0, T],
 * or ARG. lengths may be NULL (all T). */
clstm_status clstm_check_lengths(const int64_t *lengths, int64_t B, int64_t T);

#endif
