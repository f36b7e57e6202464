/* Version, status strings and the process-wide thread setting. */
#include <omp.h>
#include <stdatomic.h>
#include "internal.h"

unsigned clstm_version_number(void) { return CLSTM_VERSION_NUMBER; }
const char *clstm_version_string(void) { return CLSTM_VERSION_STRING; }

const char *clstm_status_string(clstm_status s) {
    switch (s) {
    case CLSTM_OK: return "success";
    case CLSTM_ERR_NULL: return "a required pointer argument is NULL";
    case CLSTM_ERR_SIZE: return "a size is zero, negative or inconsistent";
    case CLSTM_ERR_OVERFLOW: return "sizes too large: their product overflows";
    case CLSTM_ERR_NOMEM: return "out of memory";
    case CLSTM_ERR_WORKSPACE: return "workspace is NULL or smaller than clstm_workspace_size";
    case CLSTM_ERR_DTYPE: return "unknown dtype";
    case CLSTM_ERR_STATE:
        return "backward needs the workspace of a training-mode forward of this model "
               "with the same T and B, not yet consumed by a backward";
    case CLSTM_ERR_UNSUPPORTED:
        return "not supported by this build or model (e.g. a BLAS backend not compiled in, "
               "backward with clip, training a quantized model)";
    case CLSTM_ERR_ARG: return "invalid argument";
    case CLSTM_ERR_IO: return "file input/output failed (open, read, write, sync or rename)";
    case CLSTM_ERR_FORMAT: return "malformed or inconsistent model file";
    case CLSTM_STATUS_COUNT_: break;
    }
    return "unknown status";
}

/* The best entry c->has at most limit (has reads what libgcc's constructor
 * detected: no __builtin_cpu_init, which would write it). */
static int pick_isa(const clstm_isa_choice *c, int limit) {
    for (int i = limit; i > 0; i--)
        if (c->has(i)) return i;
    return 0;
}

int clstm_isa_active(clstm_isa_choice *c) {
    int a = __atomic_load_n(&c->active, __ATOMIC_RELAXED);
    if (a < 0) {
        int unset = -1;
        a = pick_isa(c, __atomic_load_n(&c->limit, __ATOMIC_RELAXED));
        if (!__atomic_compare_exchange_n(&c->active, &unset, a, 0, __ATOMIC_RELAXED,
                                         __ATOMIC_RELAXED))
            a = unset;
    }
    return a;
}

int clstm_isa_limit(clstm_isa_choice *c, int isa) {
    if (isa < 0 || isa >= c->count) isa = c->count - 1;
    __atomic_store_n(&c->limit, isa, __ATOMIC_RELAXED);
    const int a = pick_isa(c, isa);
    __atomic_store_n(&c->active, a, __ATOMIC_RELAXED);
    return a;
}

/* 0 means "not set": use OpenMP's default. The one process-wide setting. */
static int g_num_threads = 0;

clstm_status clstm_set_num_threads(int n) {
    if (n < 1) return CLSTM_ERR_ARG;
    g_num_threads = n;
    return CLSTM_OK;
}

int clstm_get_num_threads(void) {
    return g_num_threads > 0 ? g_num_threads : omp_get_max_threads();
}

/* Recurrent multiply-adds per step (4 B H R, counted as 4 B H^2) that each
 * thread of a team should get at least: below this, the per-step barrier
 * costs more than a second thread gives. Measured with examples/bench_step
 * on 2 cores of an AVX-512 Xeon with the own kernels of packed.c (step /
 * whole-sequence us per step, 1 thread -> 2): H=64 B=1 (16k MACs) 2.3/1.5
 * -> 4.2/1.6, worse; H=128 B=4 (262k) 37.6/24.4 -> 27.1/14.8; H=256 B=1
 * (262k) 32.3/18.6 -> 12.6/12.8, where the two halves of the weights fit
 * the two cores' L2 and the whole does not fit one. With a busy-loop
 * process beside it, H=256 B=1 on 2 threads stayed at 11.4 us per step.
 * (The earlier default, 512k, came from OpenBLAS's gemv and gemm on an AMD
 * EPYC, where B=1 H=256 ran 2-4x slower on two threads.) The default is
 * CLSTM_DEFAULT_MIN_THREAD_WORK (clstm.h); clstm_set_min_thread_work
 * changes it. A spin-then-sched_yield barrier in place of OpenMP's was
 * tried against contention and measured worse (more variance, 1.5-5x
 * slower under load) than OpenMP's spin-then-futex barrier: not kept. */
static _Atomic int64_t g_min_thread_work = CLSTM_DEFAULT_MIN_THREAD_WORK;

clstm_status clstm_set_min_thread_work(int64_t macs) {
    if (macs < 0) return CLSTM_ERR_ARG;
    atomic_store(&g_min_thread_work, macs);
    return CLSTM_OK;
}

int64_t clstm_get_min_thread_work(void) { return atomic_load(&g_min_thread_work); }

int clstm_team_size(int64_t B, int64_t H) {
    int n = clstm_get_num_threads();
    if (n < 1) n = 1;
    const int64_t min_work = atomic_load(&g_min_thread_work);
    if (min_work > 0) {
        const double by_work = 4.0 * (double)B * (double)H * (double)H / (double)min_work;
        if (by_work < n) n = by_work < 1 ? 1 : (int)by_work;
    }
    int64_t max_by_h = (H + 7) / 8; /* slices of at least 8 units */
    if (n > max_by_h) n = (int)max_by_h;
    return n;
}
