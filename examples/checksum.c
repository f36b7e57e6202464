/*
 * checksum.c -- the smallest complete use of clstm from C.
 *
 * Creates a 2-layer LSTM (D=8, H=16, float32) from seed 42, runs one training
 * forward over a fixed input, backpropagates dy = 1 and prints the sum of the
 * output and the sum of the gradient block. Every call's status is checked.
 *
 *     cc checksum.c -Iinclude build/libclstm.a -lm -fopenmp [BLAS libs]
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "clstm.h"

#define T 10 /* time steps */
#define B 4  /* batch */
#define D 8  /* input size */
#define H 16 /* hidden size */
#define L 2  /* layers */

/* Print what failed and return 1 (the caller exits with it). */
static int fail(const char *what, clstm_status st)
{
    fprintf(stderr, "checksum: %s: %s\n", what, clstm_status_string(st));
    return 1;
}

int main(void)
{
    clstm_config cfg = clstm_config_default();
    clstm_model *model = NULL;
    clstm_status st;
    size_t ws_bytes = 0, n_grads = 0;
    void *ws = NULL, *grad_block = NULL;
    float *x = NULL, *y = NULL, *dy = NULL;
    double y_sum = 0.0, grad_sum = 0.0;
    int rc = 1;

    /* the header and the linked library must be the same version */
    if (clstm_version_number() != CLSTM_VERSION_NUMBER) {
        fprintf(stderr, "checksum: built against clstm %s, linked with %s\n",
                CLSTM_VERSION_STRING, clstm_version_string());
        return 1;
    }

    cfg.input_size = D;
    cfg.hidden_size = H;
    cfg.num_layers = L;
    cfg.dtype = CLSTM_FLOAT32;
    st = clstm_create(&cfg, 42, &model);
    if (st != CLSTM_OK)
        return fail("clstm_create", st);

    /* a training workspace: forward keeps what backward needs in it */
    st = clstm_workspace_size(model, T, B, 1, &ws_bytes);
    if (st != CLSTM_OK) {
        rc = fail("clstm_workspace_size", st);
        goto cleanup;
    }
    ws = malloc(ws_bytes);
    x = malloc(sizeof(float) * T * B * D);  /* x:  (T, B, D) */
    y = malloc(sizeof(float) * T * B * H);  /* y:  (T, B, H) */
    dy = malloc(sizeof(float) * T * B * H); /* dy: (T, B, H) */
    if (!ws || !x || !y || !dy) {
        rc = fail("malloc", CLSTM_ERR_NOMEM);
        goto cleanup;
    }
    for (int i = 0; i < T * B * D; i++)
        x[i] = (float)sin(0.1 * i);
    for (int i = 0; i < T * B * H; i++)
        dy[i] = 1.0f;

    /* forward (h0 = c0 = 0, final states not needed), then backward */
    st = clstm_forward(model, T, B, x, NULL, NULL, y, NULL, NULL, 1, ws, ws_bytes);
    if (st != CLSTM_OK) {
        rc = fail("clstm_forward", st);
        goto cleanup;
    }
    st = clstm_backward(model, T, B, dy, NULL, NULL, NULL, NULL, NULL, ws, ws_bytes);
    if (st != CLSTM_OK) {
        rc = fail("clstm_backward", st);
        goto cleanup;
    }
    st = clstm_grads(model, &grad_block, &n_grads);
    if (st != CLSTM_OK) {
        rc = fail("clstm_grads", st);
        goto cleanup;
    }

    for (int i = 0; i < T * B * H; i++)
        y_sum += y[i];
    for (size_t i = 0; i < n_grads; i++)
        grad_sum += ((const float *)grad_block)[i];

    printf("clstm %s\n", clstm_version_string());
    printf("sum(y)     = %.6f\n", y_sum);
    printf("sum(grads) = %.6f over %zu parameters\n", grad_sum, n_grads);
    rc = 0;

cleanup:
    free(ws);
    free(x);
    free(y);
    free(dy);
    clstm_free(model);
    return rc;
}
