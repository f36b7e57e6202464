/* bench_step: the latency of one streaming step from C, with no Python in
 * the way.
 *
 *     bench_step [--input D] [--hidden H] [--layers L] [--batch B]
 *                [--threads N] [--steps S] [--seq T] [--min-work MACS] [--int8]
 *
 * Defaults: D = H = 256, L = 1, B = 1, threads 1, S = 5000, T = 200;
 * --min-work sets clstm_set_min_thread_work (1: every thread; default: the
 * library's); --int8 runs its quantized copy (clstm_quantize).
 * A float32 model of random weights (seed 1) is created, and then:
 *   step: S calls of clstm_forward_ex with T = 1, the state advanced in
 *         place (h0 = hT, c0 = cT) and one inference workspace reused, each
 *         timed alone (CLOCK_MONOTONIC); the median, 10th and 90th
 *         percentiles are printed, after S/10 untimed warm-up steps.
 *   seq:  one call over T steps (inference), repeated 21 times (after 2
 *         warm-ups); the median whole-call time divided by T is the per-step
 *         cost inside one whole-sequence call.
 * As a check, the first T steps of the stream end in the state of the
 * whole-sequence call (up to float rounding; the largest difference is
 * printed). Output: one line of JSON on stdout, for bench/bench_peers.py.
 *
 * Exit status: 0 on success; 1 on a clstm error or when the check fails;
 * 2 on a usage error. Messages go to stderr. */
#define _POSIX_C_SOURCE 199309L
#include <clstm.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define USAGE                                                                         \
    "usage: bench_step [--input D] [--hidden H] [--layers L] [--batch B] [--threads N] " \
    "[--steps S] [--seq T] [--min-work MACS] [--int8]"

static double now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return 1e9 * (double)ts.tv_sec + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* The q-quantile (0 <= q <= 1) of n sorted values, nearest rank. */
static double quantile(const double *sorted, int64_t n, double q) {
    int64_t i = (int64_t)(q * (double)(n - 1) + 0.5);
    return sorted[i];
}

/* A deterministic value in [-1, 1) from a 64-bit counter (splitmix64). */
static float uniform(uint64_t i) {
    uint64_t z = i * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)((double)(z >> 40) / (double)(1ull << 23) - 1.0);
}

static int parse_pos(const char *s, int64_t *out) {
    char *end;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || v < 1 || v > (1ll << 30)) return -1;
    *out = (int64_t)v;
    return 0;
}

int main(int argc, char **argv) {
    int64_t D = 256, H = 256, L = 1, B = 1, threads = 1, S = 5000, T = 200, min_work = 0;
    int int8 = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--int8") == 0) {
            int8 = 1;
            continue;
        }
        int64_t *dst = strcmp(argv[i], "--input") == 0     ? &D
                       : strcmp(argv[i], "--hidden") == 0  ? &H
                       : strcmp(argv[i], "--layers") == 0  ? &L
                       : strcmp(argv[i], "--batch") == 0   ? &B
                       : strcmp(argv[i], "--threads") == 0 ? &threads
                       : strcmp(argv[i], "--steps") == 0   ? &S
                       : strcmp(argv[i], "--seq") == 0     ? &T
                       : strcmp(argv[i], "--min-work") == 0 ? &min_work
                                                           : NULL;
        if (!dst || i + 1 >= argc || parse_pos(argv[i + 1], dst) != 0) {
            fprintf(stderr, "bench_step: bad or incomplete option '%s'\n%s\n", argv[i], USAGE);
            return 2;
        }
        i++;
    }
    if (S + S / 10 < T) {
        fprintf(stderr, "bench_step: --steps must be at least about --seq (%lld) for the "
                        "check\n", (long long)T);
        return 2;
    }
    if (clstm_version_number() != CLSTM_VERSION_NUMBER) {
        fprintf(stderr, "bench_step: built against clstm %s, linked with %s\n",
                CLSTM_VERSION_STRING, clstm_version_string());
        return 1;
    }
    clstm_status st = clstm_set_num_threads((int)threads);
    if (st != CLSTM_OK) {
        fprintf(stderr, "bench_step: clstm_set_num_threads: %s\n", clstm_status_string(st));
        return 1;
    }
    if (min_work > 0) clstm_set_min_thread_work(min_work);
    clstm_config cfg = clstm_config_default();
    cfg.input_size = D;
    cfg.hidden_size = H;
    cfg.num_layers = L;
    clstm_model *m = NULL;
    st = clstm_create(&cfg, 1, &m);
    if (st != CLSTM_OK) {
        fprintf(stderr, "bench_step: clstm_create: %s\n", clstm_status_string(st));
        return 1;
    }
    if (int8) {
        clstm_model *q = NULL;
        st = clstm_quantize(m, &q);
        clstm_free(m);
        m = q;
        if (st != CLSTM_OK) {
            fprintf(stderr, "bench_step: clstm_quantize: %s\n", clstm_status_string(st));
            return 1;
        }
    }
    size_t ws1 = 0, wsT = 0;
    clstm_status s1 = clstm_workspace_size(m, 1, B, 0, &ws1);
    clstm_status s2 = clstm_workspace_size(m, T, B, 0, &wsT);
    const size_t state_n = (size_t)(L * B * H), seq_n = (size_t)(T * B * D);
    float *x = malloc(seq_n * sizeof *x), *y = malloc((size_t)(T * B * H) * sizeof *y);
    float *h = calloc(state_n, sizeof *h), *c = calloc(state_n, sizeof *c);
    float *hs = malloc(state_n * sizeof *hs), *cs = malloc(state_n * sizeof *cs);
    void *ws = malloc(ws1 > wsT ? ws1 : wsT);
    double *t_step = malloc((size_t)S * sizeof *t_step), t_seq[21];
    int rc = 0;
    if (s1 != CLSTM_OK || s2 != CLSTM_OK || !x || !y || !h || !c || !hs || !cs || !ws ||
        !t_step) {
        fprintf(stderr, "bench_step: workspace size or allocation failed\n");
        rc = 1;
        goto done;
    }
    for (size_t i = 0; i < seq_n; i++) x[i] = uniform(i);
    clstm_run_options opt = clstm_run_options_default();

    /* whole sequence: the reference state, then the timing */
    for (int r = -2; r < 21; r++) {
        double t0 = now_ns();
        st = clstm_forward_ex(m, T, B, x, NULL, NULL, y, hs, cs, &opt, ws, wsT);
        double t1 = now_ns();
        if (st != CLSTM_OK) break;
        if (r >= 0) t_seq[r] = t1 - t0;
    }
    if (st != CLSTM_OK) {
        fprintf(stderr, "bench_step: clstm_forward_ex (T=%lld): %s\n", (long long)T,
                clstm_status_string(st));
        rc = 1;
        goto done;
    }
    /* streaming: step t reads x[t % T]; after the first T steps the state
     * must match the whole-sequence call's */
    double max_diff = 0;
    const int64_t warm = S / 10;
    for (int64_t k = 0; k < warm + S && st == CLSTM_OK; k++) {
        const float *xt = x + (size_t)((k % T) * B * D);
        double t0 = now_ns();
        st = clstm_forward_ex(m, 1, B, xt, h, c, y, h, c, &opt, ws, ws1);
        double t1 = now_ns();
        if (k >= warm) t_step[k - warm] = t1 - t0;
        if (k == T - 1)
            for (size_t i = 0; i < state_n; i++) {
                double dh = fabs((double)h[i] - hs[i]), dc = fabs((double)c[i] - cs[i]);
                if (dh > max_diff) max_diff = dh;
                if (dc > max_diff) max_diff = dc;
            }
    }
    if (st != CLSTM_OK) {
        fprintf(stderr, "bench_step: clstm_forward_ex (T=1): %s\n", clstm_status_string(st));
        rc = 1;
        goto done;
    }
    qsort(t_step, (size_t)S, sizeof *t_step, cmp_double);
    qsort(t_seq, 21, sizeof *t_seq, cmp_double);
    printf("{\"int8\": %s, \"kernel\": \"%s\", \"D\": %lld, \"H\": %lld, \"L\": %lld, "
           "\"B\": %lld, \"threads\": %lld, "
           "\"steps\": %lld, \"T\": %lld, \"step_ns_median\": %.1f, \"step_ns_p10\": %.1f, "
           "\"step_ns_p90\": %.1f, \"seq_ns_median\": %.1f, \"seq_per_step_ns\": %.1f, "
           "\"stream_vs_seq_max_abs_diff\": %.3g}\n",
           int8 ? "true" : "false", int8 ? clstm_int8_kernel() : "float32", (long long)D,
           (long long)H, (long long)L, (long long)B, (long long)threads, (long long)S, (long long)T, quantile(t_step, S, 0.5), quantile(t_step, S, 0.1),
           quantile(t_step, S, 0.9), t_seq[10], t_seq[10] / (double)T, max_diff);
    if (!(max_diff <= 1e-4)) {
        fprintf(stderr, "bench_step: streamed state differs from the whole-sequence one by "
                        "%.3g\n", max_diff);
        rc = 1;
    }
done:
    free(x);
    free(y);
    free(h);
    free(c);
    free(hs);
    free(cs);
    free(ws);
    free(t_step);
    clstm_free(m);
    return rc;
}
