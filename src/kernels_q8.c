/* The int8 instance of the LSTM stage (quantized models, inference only)
 * and the int8 head: lstm_kernels.inc with Q8 on, over float32 states and
 * gates (pipeline.h declares them; q8.h has the products). */
/* No FMA contraction in this file: a * b + c is rounded twice here on
 * every CPU, so the x86-64-v3/v4 clones of the gate arithmetic give the
 * default clone's bits (clstm.h: "the same bits on every path"), and so
 * does any C99 compiler in ISO mode, such as clstm.export_c's code on a
 * microcontroller. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include <math.h>
#include <omp.h>
#include <string.h>
#include "fastmath.h"
#include "pipeline.h"
#include "q8.h"

#define real float
#define SUF(name) name##_q8
#define GEMM clstm_sgemm
#define SIGM clstm_sigmoidf
#define TANH clstm_tanhf
#define PACKED 0
#define Q8 1
#include "lstm_kernels.inc"

/* The head stage, forward, on int8 weights: out (rows, O) = y (rows, NR)
 * W^T + bias over the chunk's rows, 0 past a length; rows split over the
 * team. y's rows are quantized into the LSTM's q8x buffer, free once the
 * LSTM stage of the chunk is done (the driver's barrier between them). */
void clstm_head_forward_q8(const run_ctx *c, const slices *s, const chunk_io *io) {
    const int64_t B = c->d.B, NR = c->d.N * c->d.R, O = c->m->cfg.output_size, rows = io->n * B;
    const clstm_q8_tensor *W = clstm_q8_of(c->m, clstm_tensor_offset(c->m, CLSTM_T_HEAD_WEIGHT));
    const float *bias =
        (const float *)c->m->params + clstm_tensor_offset(c->m, CLSTM_T_HEAD_BIAS);
    const int64_t kp = clstm_q8_kp(NR);
    float *out = (float *)io->out;
    int64_t r0, r1;
    clstm_share_rows(rows, NR * O / 4, s, &r0, &r1);
    if (r1 > r0)
        q8_product(r1 - r0, (const float *)io->y + r0 * NR, NR, NR, W, O,
                   (int8_t *)(c->base + c->ly->q8x) + r0 * kp,
                   (float *)(c->base + c->ly->q8xs) + r0, out + r0 * O, O);
    for (int64_t r = r0; r < r1; r++) {
        float *row = out + r * O;
        if (io->t0 + r / B < c->d.lens[r % B])
            for (int64_t o = 0; o < O; o++) row[o] += bias[o];
        else
            memset(row, 0, (size_t)O * sizeof(float));
    }
}
