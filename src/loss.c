/* Softmax and the losses on a model's output: argument checks, then the
 * per-dtype row loops of stage_kernels.inc. */
#include <math.h>
#include <stdlib.h>
#include "pipeline.h"

clstm_status clstm_softmax(clstm_dtype dtype, int64_t n, int64_t k, const void *z,
                           double temperature, void *p) {
    if (!z || !p) return CLSTM_ERR_NULL;
    if (n < 1 || k < 1) return CLSTM_ERR_SIZE;
    if (n > INT64_MAX / k) return CLSTM_ERR_OVERFLOW;
    if (dtype != CLSTM_FLOAT32 && dtype != CLSTM_FLOAT64) return CLSTM_ERR_DTYPE;
    if (!clstm_array_ok(n, k, 1, dtype == CLSTM_FLOAT64 ? sizeof(double) : sizeof(float)))
        return CLSTM_ERR_OVERFLOW; /* z and p cannot exist */
    if (!(temperature > 0) || !isfinite(temperature)) return CLSTM_ERR_ARG;
    if (dtype == CLSTM_FLOAT64) clstm_softmax_rows_f64(n, k, z, temperature, p);
    else clstm_softmax_rows_f32(n, k, z, temperature, p);
    return CLSTM_OK;
}

static clstm_status loss(int mse, clstm_dtype dtype, int64_t T, int64_t B, int64_t O,
                         const void *out, const void *targets, const int64_t *lengths,
                         int last_only, double smoothing, double *result, void *dout) {
    if (!out || !targets || !result) return CLSTM_ERR_NULL;
    if (!(smoothing >= 0 && smoothing <= 1)) return CLSTM_ERR_ARG;
    if (T < 1 || B < 1 || O < 1) return CLSTM_ERR_SIZE;
    if (T > INT64_MAX / B || T * B > INT64_MAX / O) return CLSTM_ERR_OVERFLOW;
    if (dtype != CLSTM_FLOAT32 && dtype != CLSTM_FLOAT64) return CLSTM_ERR_DTYPE;
    /* out (T,B,O) cannot exist; also bounds the B-element work array below */
    if (!clstm_array_ok(T, B, O, dtype == CLSTM_FLOAT64 ? sizeof(double) : sizeof(float)))
        return CLSTM_ERR_OVERFLOW;
    if (clstm_check_lengths(lengths, B, T) != CLSTM_OK) return CLSTM_ERR_ARG;
    if (!mse)
        for (int64_t t = 0; t < T; t++)
            for (int64_t b = 0; b < B; b++) {
                const int64_t len = lengths ? lengths[b] : T;
                if (last_only ? t != len - 1 : t >= len) continue;
                const int32_t y = ((const int32_t *)targets)[t * B + b];
                if (y < 0 || y >= O) return CLSTM_ERR_ARG;
            }
    /* the lengths, or all T, as one array (small: B) */
    int64_t stack_lens[64], *lens = stack_lens;
    if (B > 64 && !(lens = malloc((size_t)B * sizeof *lens))) return CLSTM_ERR_NOMEM;
    for (int64_t b = 0; b < B; b++) lens[b] = lengths ? lengths[b] : T;
    if (dtype == CLSTM_FLOAT64)
        *result = clstm_loss_rows_f64(mse, T, B, O, out, targets, lens, last_only != 0,
                                      smoothing, dout);
    else
        *result = clstm_loss_rows_f32(mse, T, B, O, out, targets, lens, last_only != 0,
                                      smoothing, dout);
    if (lens != stack_lens) free(lens);
    return CLSTM_OK;
}

clstm_status clstm_loss_xent(clstm_dtype dtype, int64_t T, int64_t B, int64_t O,
                             const void *out, const int32_t *targets, const int64_t *lengths,
                             int last_only, double *result, void *dout) {
    return loss(0, dtype, T, B, O, out, targets, lengths, last_only, 0.0, result, dout);
}

clstm_status clstm_loss_xent_smoothed(clstm_dtype dtype, int64_t T, int64_t B, int64_t O,
                                      const void *out, const int32_t *targets,
                                      const int64_t *lengths, int last_only,
                                      double label_smoothing, double *result, void *dout) {
    return loss(0, dtype, T, B, O, out, targets, lengths, last_only, label_smoothing, result,
                dout);
}

clstm_status clstm_loss_mse(clstm_dtype dtype, int64_t T, int64_t B, int64_t O,
                            const void *out, const void *targets, const int64_t *lengths,
                            int last_only, double *result, void *dout) {
    return loss(1, dtype, T, B, O, out, targets, lengths, last_only, 0.0, result, dout);
}
