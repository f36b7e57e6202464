/* The float64 instance of the stage kernels (pipeline.h declares them):
 * libm's activations, BLAS (or the naive loops) for every product. */
#include <math.h>
#include <omp.h>
#include <string.h>
#include "pipeline.h"

#define real double
#define SUF(name) name##_f64
#define GEMM clstm_dgemm
#define SIGM(x) (1.0 / (1.0 + exp(-(x))))
#define TANH tanh
#define PACKED 0
#define Q8 0
#include "lstm_kernels.inc"
#include "stage_kernels.inc"
#define S2S_EXP exp
#include "seq2seq.h"
#include "seq2seq_kernels.inc"
