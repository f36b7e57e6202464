/* Version, status strings and the process-wide thread setting. */
#include <omp.h>
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
    case CLSTM_ERR_UNSUPPORTED: return "option not supported by this build";
    case CLSTM_ERR_ARG: return "invalid argument";
    case CLSTM_ERR_IO: return "file input/output failed (open, read, write, sync or rename)";
    case CLSTM_ERR_FORMAT: return "malformed or inconsistent model file";
    case CLSTM_STATUS_COUNT_: break;
    }
    return "unknown status";
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

/* Per-step work below which a second thread costs more than it gives. The
 * hidden units are split across threads in slices of at least 8. */
#define CLSTM_MIN_STEP_WORK 4096

int clstm_team_size(int64_t B, int64_t H) {
    int n = clstm_get_num_threads();
    if (n < 1) n = 1;
    if (4 * B * H * H < CLSTM_MIN_STEP_WORK) return 1; /* B, H <= 2^31 checked */
    int64_t max_by_h = (H + 7) / 8;
    if (n > max_by_h) n = (int)max_by_h;
    return n;
}
