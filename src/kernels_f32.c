/* The float32 instance of the stage kernels (pipeline.h declares them):
 * the vectorisable activations of fastmath.h, and packed.c's own kernels
 * for the recurrent products where this CPU has one. */
#include <math.h>
#include <omp.h>
#include <string.h>
#include "fastmath.h"
#include "pipeline.h"

#define real float
#define SUF(name) name##_f32
#define GEMM clstm_sgemm
#define SIGM clstm_sigmoidf
#define TANH clstm_tanhf
#define PACKED 1
#define Q8 0
#include "lstm_kernels.inc"
#include "stage_kernels.inc"
#define S2S_EXP clstm_expf
#include "seq2seq.h"
#include "seq2seq_kernels.inc"
