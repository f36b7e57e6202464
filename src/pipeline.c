/* The one compute path (pipeline.h): the stage table, the workspace plan,
 * the argument checks, and the driver that runs the stages in one OpenMP
 * team. Every forward and backward entry point of clstm.h ends here. */
#include <omp.h>
#include <string.h>
#include "pipeline.h"
#include "q8.h"

/* ------------------------------------------------------------ the plan */

typedef struct {
    uint64_t magic, model_id;
    int64_t T, B;
    uint64_t state, dropout_seed;
    uint64_t plan; /* plan_code of the training forward */
} ws_header;

#define WS_MAGIC 0x636c73746d777333ull /* "clstmws3" */
enum { WS_EMPTY = 0, WS_TRAINED = 1, WS_CONSUMED = 2 };
#define WS_HEADER 64 /* bytes reserved for ws_header, keeps arrays aligned */

/* A backward must run the plan of its forward. */
static uint64_t plan_code(const run_plan *p) { return (uint64_t)p->enc * 2 + (p->head != 0); }

/* Sizes of the plan of one call, for the stages' workspace entries. */
typedef struct {
    const clstm_model *m;
    const run_plan *p;
    int64_t T, B, tc;
} plan_args;

/* Reserve `count` consecutive blocks laid out by one carver: returns the
 * stride; the offsets inside a block are relative to its start. */
static size_t repeat(carver *c, size_t start, int64_t count) {
    size_t stride = c->off - start, rest;
    if (clstm_mul(stride, (size_t)(count - 1), &rest) || clstm_add(c->off, rest, &c->off))
        c->overflow = 1;
    return stride;
}

/* Workspace entries of the stages: each carves the arrays it uses. */
static void encode_plan(const plan_args *a, carver *c, ws_layout *ly) {
    const clstm_config *cf = &a->m->cfg;
    c->elem = sizeof(int32_t);
    ly->ids = carve(c, a->p->train && a->p->enc == CLSTM_ENCODING_EMBEDDING
                           ? prod3(a->T, a->B, 1) : 0);
    c->elem = a->m->elem;
    ly->e = carve(c, prod3(a->tc, a->B, cf->input_size));
}

static void lstm_plan(const plan_args *a, carver *c, ws_layout *ly) {
    const clstm_config *cf = &a->m->cfg;
    const int64_t T = a->T, B = a->B, H = cf->hidden_size, L = cf->num_layers;
    const int64_t D = cf->input_size, P = cf->proj_size, R = clstm_rsize(cf);
    const int64_t N = clstm_dirs(cf), NR = N * R, tc = a->tc;
    ly->states = carve(c, prod3(N * L, B, 2 * R + H));
    ly->rs = carve(c, prod3(1, B, 4 * H));
    /* W_hh, or [W_hh W_ih] for the fused step product, packed, and the
     * summed biases: once per layer in chunked inference, where the
     * layers take turns chunk by chunk and each packs only in its first;
     * the fused panel only where it can run (float32 with BLAS, B > 1; the
     * CPU's kernel is a run-time matter, so not checked here) */
    const int64_t packs = ly->chunked && !a->m->quantized ? L : 1;
    const int fusable = a->m->elem == sizeof(float) && a->m->use_blas && B > 1;
    if (a->m->quantized) { /* packed in the model; a layer's input and a step's rows */
        const int64_t wide = D > NR ? D : NR;
        c->elem = 1;
        ly->q8x = carve(c, prod3(tc, B, clstm_q8_kp(wide)));
        const int64_t slots = B < CLSTM_BATCH_ROWS_MIN * CLSTM_Q8_UNIT_TEAM ? CLSTM_Q8_UNIT_TEAM : 1;
        ly->q8h = carve(c, prod3(slots, B, clstm_q8h_kp(cf)));
        c->elem = sizeof(float);
        ly->q8xs = carve(c, prod3(tc, B, 1));
        ly->q8hs = carve(c, prod3(slots, B, 1));
    }
    const int64_t kmax = R + (fusable ? (L > 1 && NR > D ? NR : D) : 0);
    ly->wp_stride = a->m->quantized ? 0 : prod3(1, 4 * H, kmax);
    ly->wp = carve(c, a->m->quantized ? 0 : prod3(packs, 4 * H, kmax));
    ly->bias = carve(c, a->m->quantized ? 0 : prod3(packs, 1, 4 * H));
    ly->ms = carve(c, prod3(1, B, H));
    if (!a->p->train) {
        ly->g = carve(c, prod3(tc, B, 4 * H));
        ly->ybuf0 = carve(c, L > 1 ? prod3(tc, B, NR) : 0);
        ly->ybuf1 = carve(c, L > 2 ? prod3(tc, B, NR) : 0);
        return;
    }
    ly->layer0 = c->off;
    carver lc = {0, c->elem, 0}; /* one layer's block, relative offsets */
    ly->l_y = carve(&lc, L > 1 ? prod3(T, B, NR) : 0);
    ly->l_xd = carve(&lc, L > 1 && cf->dropout > 0 ? prod3(T, B, NR) : 0);
    size_t u0 = lc.off;
    ly->k_g = carve(&lc, prod3(T, B, 4 * H));
    ly->k_ct = carve(&lc, prod3(T, B, H));
    ly->k_cp = carve(&lc, prod3(T, B, H));
    ly->k_hp = carve(&lc, prod3(T, B, R));
    ly->k_m = carve(&lc, P ? prod3(T, B, H) : 0);
    ly->k_dh = carve(&lc, P ? prod3(T, B, P) : 0);
    ly->unit_stride = repeat(&lc, u0, N);
    if (lc.overflow || clstm_add(c->off, lc.off, &c->off)) c->overflow = 1;
    ly->layer_stride = repeat(c, ly->layer0, L);
    ly->da0 = carve(c, prod3(1, B, 4 * H));
    ly->da1 = carve(c, prod3(1, B, 4 * H));
    ly->dhrec = carve(c, prod3(1, B, R));
    ly->dh = carve(c, prod3(1, B, R));
    ly->dc = carve(c, prod3(1, B, H));
    ly->dybuf = carve(c, L > 1 ? prod3(T, B, NR) : 0);
}

static void head_plan(const plan_args *a, carver *c, ws_layout *ly) {
    const int64_t NR = clstm_dirs(&a->m->cfg) * clstm_rsize(&a->m->cfg);
    ly->y = carve(c, prod3(a->tc, a->B, NR));
    ly->dy = carve(c, a->p->train ? prod3(a->T, a->B, NR) : 0);
}

static int encode_runs(const run_plan *p) { return p->enc != CLSTM_ENCODING_NONE || p->train; }
static int lstm_runs(const run_plan *p) { return 1; }
static int head_runs(const run_plan *p) { return p->head; }

/* The stages in pipeline order: whether a call runs it, its workspace, and
 * its forward and backward by kernel set (kernels_of: float32, float64,
 * int8; a quantized model has no backward). */
enum { K_F32, K_F64, K_Q8, K_SETS };
typedef struct {
    int (*runs)(const run_plan *p);
    void (*plan)(const plan_args *a, carver *c, ws_layout *ly);
    stage_forward_fn forward[K_SETS];
    stage_backward_fn backward[K_SETS];
} stage;

static const stage STAGES[] = {
    {encode_runs, encode_plan,
     {clstm_encode_forward_f32, clstm_encode_forward_f64, clstm_encode_forward_f32},
     {clstm_encode_backward_f32, clstm_encode_backward_f64, NULL}},
    {lstm_runs, lstm_plan,
     {clstm_lstm_forward_f32, clstm_lstm_forward_f64, clstm_lstm_forward_q8},
     {clstm_lstm_backward_f32, clstm_lstm_backward_f64, NULL}},
    {head_runs, head_plan,
     {clstm_head_forward_f32, clstm_head_forward_f64, clstm_head_forward_q8},
     {clstm_head_backward_f32, clstm_head_backward_f64, NULL}},
};

static int kernels_of(const clstm_model *m) {
    return m->quantized ? K_Q8 : m->cfg.dtype == CLSTM_FLOAT64 ? K_F64 : K_F32;
}

int clstm_q8_team(int64_t B, int64_t H) {
    const int n = clstm_team_size(B, H);
    if (B >= (int64_t)CLSTM_BATCH_ROWS_MIN * n) return n; /* by rows */
    if (B >= (int64_t)CLSTM_BATCH_ROWS_MIN * CLSTM_Q8_UNIT_TEAM)
        return (int)(B / CLSTM_BATCH_ROWS_MIN); /* by rows, fewer threads */
    int64_t units = (H + 15) / 16; /* by units, whole panels */
    if (units > CLSTM_Q8_UNIT_TEAM) units = CLSTM_Q8_UNIT_TEAM;
    return units < n ? (int)units : n;
}

/* The LSTM stage's team (measured sizes: clstm_team_size). */
static int lstm_team(const clstm_model *m, int64_t B, int64_t H) {
    return m->quantized ? clstm_q8_team(B, H) : clstm_team_size(B, H);
}
#define N_STAGES ((int)(sizeof STAGES / sizeof STAGES[0]))

/* The workspace of plan p for (T, B): a header, the lengths, then each
 * running stage's arrays (pipeline.h: ws_layout). Inference runs in chunks
 * of tc steps where the model is unidirectional, so its size never depends
 * on T; a training workspace also serves inference (the larger of both). */
static clstm_status plan_layout(const clstm_model *m, const run_plan *p, int64_t T, int64_t B,
                                ws_layout *ly) {
    if (T < 1 || B < 1) return CLSTM_ERR_SIZE;
    const clstm_config *cf = &m->cfg;
    const int64_t H = cf->hidden_size, D = cf->input_size, L = cf->num_layers;
    const int64_t R = clstm_rsize(cf), N = clstm_dirs(cf), NR = N * R;
    const int64_t O = p->head ? cf->output_size : NR;
    if (T > clstm_blas_dim_max() / B) return CLSTM_ERR_OVERFLOW; /* T*B rows in one gemm */
    /* the caller's x (T,B,D) (raw input), ids (T,B), out (T,B,O) and states
     * (N*L,B,H or R) must fit the address space, also where the workspace
     * does not grow with T */
    if ((p->enc == CLSTM_ENCODING_NONE && !clstm_array_ok(T, B, D, m->elem)) ||
        !clstm_array_ok(T, B, 1, sizeof(int32_t)) ||
        !clstm_array_ok(T, B, O > NR ? O : NR, m->elem) ||
        !clstm_array_ok(N * L, B, H > R ? H : R, m->elem))
        return CLSTM_ERR_OVERFLOW;
    memset(ly, 0, sizeof *ly);
    ly->chunked = !p->train && N == 1 && !cf->reverse; /* streams forward only */
    ly->tc = ly->chunked ? CLSTM_INFER_CHUNK : T; /* even for shorter T */
    const plan_args a = {m, p, T, B, ly->tc};
    carver c = {WS_HEADER, sizeof(int64_t), 0};
    ly->lens = carve(&c, (size_t)B);
    c.elem = m->elem;
    for (int k = 0; k < N_STAGES; k++)
        if (STAGES[k].runs(p)) STAGES[k].plan(&a, &c, ly);
    /* slack so that any caller pointer can be aligned up to WS_ALIGN */
    if (c.overflow || clstm_add(c.off, WS_ALIGN, &ly->total)) return CLSTM_ERR_OVERFLOW;
    if (p->train) {
        run_plan inf = *p;
        ws_layout il;
        inf.train = 0;
        clstm_status st = plan_layout(m, &inf, T, B, &il);
        if (st != CLSTM_OK) return st;
        if (il.total > ly->total) ly->total = il.total;
    }
    return CLSTM_OK;
}

/* -------------------------------------------------------------- checks */

clstm_status clstm_check_lengths(const int64_t *lengths, int64_t B, int64_t T) {
    for (int64_t b = 0; lengths && b < B; b++)
        if (lengths[b] < 0 || lengths[b] > T) return CLSTM_ERR_ARG;
    return CLSTM_OK;
}

/* Token ids in [0, V) at every valid step (they index the table). */
static clstm_status check_ids(const clstm_model *m, int64_t T, int64_t B, const int32_t *ids,
                              const int64_t *lengths) {
    for (int64_t t = 0; t < T; t++)
        for (int64_t b = 0; b < B; b++) {
            const int32_t id = ids[t * B + b];
            if ((!lengths || t < lengths[b]) && (id < 0 || id >= m->cfg.vocab_size))
                return CLSTM_ERR_ARG;
        }
    return CLSTM_OK;
}

/* ------------------------------------------------------------ the team */

void clstm_aligned_range(int64_t n, int64_t align, int tid, int nt, int64_t *a, int64_t *b) {
    int64_t per = (n + nt - 1) / nt;
    per = (per + align - 1) / align * align;
    *a = (int64_t)tid * per < n ? (int64_t)tid * per : n;
    *b = *a + per < n ? *a + per : n;
}

/* Threads worth giving n rows of `work` multiply-adds each, at most `most`. */
static int shared_threads(int64_t n, int64_t work, int most) {
    if ((double)n * (double)work < (double)CLSTM_MIN_SHARED_WORK) return 1;
    return n < most ? (int)n : most;
}

void clstm_share_rows(int64_t n, int64_t work, const slices *s, int64_t *a, int64_t *b) {
    int nt = shared_threads(n, work, s->team);
    if (nt < 1) nt = 1;
    if (s->tid >= nt) {
        *a = *b = n;
        return;
    }
    clstm_aligned_range(n, 1, s->tid, nt, a, b);
}

/* The first batch row of thread tid's share: the rows split so that every
 * thread gets near the same number of valid steps (sum of lengths; equal
 * counts of rows when every length is 0). */
static int64_t batch_start(const dims *d, int tid, int nt) {
    int64_t total = 0, acc = 0;
    for (int64_t b = 0; b < d->B; b++) total += d->lens[b];
    if (total == 0) return d->B * tid / nt;
    const double goal = (double)total * tid / nt;
    int64_t b = 0;
    for (; b < d->B && (double)acc + 0.5 * (double)d->lens[b] < goal; b++) acc += d->lens[b];
    return b;
}

void clstm_make_slices(const dims *d, int tid, int nt, int team, int align, slices *s) {
    s->tid = tid;
    s->nt = nt;
    s->team = team;
    clstm_aligned_range(d->H, align, tid, nt, &s->j0, &s->j1);
    clstm_aligned_range(d->R, align, tid, nt, &s->r0, &s->r1);
    s->b0 = tid < nt ? batch_start(d, tid, nt) : d->B;
    s->b1 = tid + 1 < nt ? batch_start(d, tid + 1, nt) : d->B;
}

/* The team of a call: the LSTM's measured size `lstm`, or more where the
 * head's rows (per chunk, or all T*B in backward) are worth more threads. */
static int team_size(const run_ctx *c, int lstm, int64_t head_rows) {
    if (!c->plan.head) return lstm;
    const int64_t work = c->d.N * c->d.R * c->m->cfg.output_size;
    const int head = shared_threads(head_rows, work, clstm_get_num_threads());
    return head > lstm ? head : lstm;
}

/* This thread's slices in a team of omp_get_num_threads() (which may be
 * fewer than asked for), the LSTM using `lstm` of them. */
static void team_slices(const run_ctx *c, int lstm, slices *s) {
    const int team = omp_get_num_threads();
    clstm_make_slices(&c->d, omp_get_thread_num(), lstm < team ? lstm : team, team,
                      c->m->quantized ? Q8_PANEL : 8, s);
}

static dims make_dims(const clstm_model *m, int64_t T, int64_t B, const int64_t *lens,
                      int train, uint64_t seed) {
    const clstm_config *c = &m->cfg;
    dims d = {m->use_blas, T, B, c->hidden_size, c->proj_size, clstm_rsize(c),
              clstm_dirs(c), c->num_layers, lens, 1, 0.0, seed, 0, c->reverse};
    for (int64_t b = 0; b < B; b++) d.uniform &= lens[b] == T;
    if (train && c->num_layers > 1 && c->dropout > 0) {
        d.dropout = c->dropout;
        d.drop_thresh = (uint32_t)(c->dropout * 16777216.0 + 0.5); /* p to 2^-24 */
    }
    return d;
}

/* ---------------------------------------------------------- the driver */

/* The stages that plan p runs, in pipeline order; returns their count. */
static int running(const run_plan *p, const stage **run) {
    int n = 0;
    for (int k = 0; k < N_STAGES; k++)
        if (STAGES[k].runs(p)) run[n++] = &STAGES[k];
    return n;
}

/* Forward: chunk by chunk, every running stage in order, all in one team.
 * A barrier stands between two stages (the next reads rows another thread
 * wrote) and between chunks when more than one stage runs (the next chunk
 * overwrites their buffers); the LSTM alone orders its own. Run by every
 * thread of the team. */
static void forward_team(const run_ctx *c, int lstm) {
    const stage *run[N_STAGES];
    const int n_run = running(&c->plan, run), dt = kernels_of(c->m);
    const dims *d = &c->d;
    const ws_layout *ly = c->ly;
    const size_t el = c->m->elem;
    const int64_t T = d->T, B = d->B, D = c->m->cfg.input_size, NR = d->N * d->R;
    const int64_t O = c->plan.head ? c->m->cfg.output_size : NR;
    const int encoded = encode_runs(&c->plan);
    slices sl;
    team_slices(c, lstm, &sl);
    for (int64_t t0 = 0; t0 < T; t0 += ly->tc) {
        const int64_t n = T - t0 < ly->tc ? T - t0 : ly->tc;
        const chunk_io io = {
            t0, n,
            encoded ? (const void *)(c->base + ly->e)
                    : (const void *)((const char *)c->x + (size_t)(t0 * B * D) * el),
            c->plan.head ? (void *)(c->base + ly->y)
                         : (void *)((char *)c->out + (size_t)(t0 * B * NR) * el),
            (char *)c->out + (size_t)(t0 * B * O) * el};
        for (int k = 0; k < n_run; k++) {
            if (k > 0) {
#pragma omp barrier
            }
            run[k]->forward[dt](c, &sl, &io);
        }
        if (n_run > 1 && t0 + n < T) {
#pragma omp barrier
        }
    }
}

/* Backward: every running stage in reverse order, one barrier between. */
static void backward_team(const run_ctx *c, int lstm) {
    const stage *run[N_STAGES];
    const int n_run = running(&c->plan, run), dt = kernels_of(c->m);
    slices sl;
    team_slices(c, lstm, &sl);
    for (int k = n_run - 1; k >= 0; k--) {
        if (k < n_run - 1) {
#pragma omp barrier
        }
        run[k]->backward[dt](c, &sl);
    }
}

/* Run body on a team of `team` threads, the LSTM using `lstm` of them. A
 * team of one runs outside any parallel region (its barriers are then
 * no-ops): entering one cost a streaming step 1.6 us of its 2.0 us at H = 8
 * (examples/bench_step). Not inside a caller's parallel region: there the
 * thread numbers and the barriers would be the caller's team's. */
static void in_team(void (*body)(const run_ctx *, int), const run_ctx *c, int team, int lstm) {
    if (team == 1 && !omp_in_parallel()) {
        body(c, lstm);
        return;
    }
#pragma omp parallel num_threads(team)
    body(c, lstm);
}

static void drive_forward(const run_ctx *c) {
    const int lstm = lstm_team(c->m, c->d.B, c->d.H);
    in_team(forward_team, c, team_size(c, lstm, c->ly->tc * c->d.B), lstm);
}

static void drive_backward(const run_ctx *c) {
    const int lstm = clstm_team_size(c->d.B, c->d.H);
    in_team(backward_team, c, team_size(c, lstm, c->d.T * c->d.B), lstm);
}

static clstm_status run_forward(const clstm_model *m, run_plan p, int64_t T, int64_t B,
                                const void *x, const int32_t *ids, const void *h0,
                                const void *c0, void *out, void *hT, void *cT,
                                const clstm_run_options *opt, void *ws, size_t ws_bytes) {
    if (opt->struct_size < sizeof(clstm_run_options)) return CLSTM_ERR_ARG;
    p.train = opt->train != 0;
    if (p.train && m->quantized) return CLSTM_ERR_UNSUPPORTED;
    ws_layout ly;
    clstm_status st = plan_layout(m, &p, T, B, &ly);
    if (st == CLSTM_OK) st = clstm_check_lengths(opt->lengths, B, T);
    if (st == CLSTM_OK && p.enc != CLSTM_ENCODING_NONE) st = check_ids(m, T, B, ids, opt->lengths);
    if (st != CLSTM_OK) return st;
    if (!ws || ws_bytes < ly.total) return CLSTM_ERR_WORKSPACE;
    char *base = ws_base(ws);
    ws_header *hd = (ws_header *)base;
    hd->magic = WS_MAGIC;
    hd->state = WS_EMPTY;
    int64_t *lens = (int64_t *)(base + ly.lens);
    for (int64_t b = 0; b < B; b++) lens[b] = opt->lengths ? opt->lengths[b] : T;
    const run_ctx c = {.m = m, .plan = p, .d = make_dims(m, T, B, lens, p.train, opt->dropout_seed),
                       .ly = &ly, .base = base, .x = x, .ids = ids, .h0 = h0, .c0 = c0,
                       .out = out, .hT = hT, .cT = cT};
    clstm_blas_single_thread();
    drive_forward(&c);
    if (p.train) {
        hd->model_id = m->id;
        hd->T = T;
        hd->B = B;
        hd->dropout_seed = opt->dropout_seed;
        hd->plan = plan_code(&p);
        hd->state = WS_TRAINED;
    }
    return CLSTM_OK;
}

static clstm_status run_backward(clstm_model *m, run_plan p, int64_t T, int64_t B,
                                 const void *dout, const void *dhT, const void *dcT, void *dx,
                                 void *dh0, void *dc0, void *ws, size_t ws_bytes) {
    p.train = 1;
    if (m->quantized) return CLSTM_ERR_UNSUPPORTED;
    ws_layout ly;
    clstm_status st = plan_layout(m, &p, T, B, &ly);
    if (st != CLSTM_OK) return st;
    if (!ws || ws_bytes < ly.total) return CLSTM_ERR_WORKSPACE;
    if (m->cfg.clip > 0) return CLSTM_ERR_UNSUPPORTED;
    if (p.enc != CLSTM_ENCODING_NONE && dx) return CLSTM_ERR_ARG;
    char *base = ws_base(ws);
    ws_header *hd = (ws_header *)base;
    if (hd->magic != WS_MAGIC || hd->state != WS_TRAINED || hd->model_id != m->id ||
        hd->T != T || hd->B != B || hd->plan != plan_code(&p))
        return CLSTM_ERR_STATE;
    hd->state = WS_CONSUMED;
    const dims d = make_dims(m, T, B, (const int64_t *)(base + ly.lens), 1, hd->dropout_seed);
    const run_ctx c = {.m = m, .mg = m, .plan = p, .d = d, .ly = &ly, .base = base,
                       .dout = dout, .dhT = dhT, .dcT = dcT, .dx = dx, .dh0 = dh0, .dc0 = dc0};
    clstm_blas_single_thread();
    drive_backward(&c);
    return CLSTM_OK;
}

/* -------------------------------------------------------- entry points */

/* The LSTM stack alone, on any model: its x is the encoded input e. */
static const run_plan LSTM_ONLY = {CLSTM_ENCODING_NONE, 0, 0};

static run_plan model_plan(const clstm_model *m) {
    run_plan p = {m->cfg.encoding, m->cfg.output_size > 0, 0};
    return p;
}

clstm_run_options clstm_run_options_default(void) {
    clstm_run_options o;
    memset(&o, 0, sizeof o);
    o.struct_size = sizeof o;
    return o;
}

static clstm_status workspace_size(const clstm_model *m, run_plan p, int64_t T, int64_t B,
                                   int train, size_t *bytes) {
    if (!m || !bytes) return CLSTM_ERR_NULL;
    ws_layout ly;
    p.train = train != 0;
    if (p.train && m->quantized) return CLSTM_ERR_UNSUPPORTED;
    clstm_status st = plan_layout(m, &p, T, B, &ly);
    if (st == CLSTM_OK) *bytes = ly.total;
    return st;
}

clstm_status clstm_workspace_size(const clstm_model *m, int64_t T, int64_t B, int train,
                                  size_t *bytes) {
    return workspace_size(m, LSTM_ONLY, T, B, train, bytes);
}

clstm_status clstm_model_workspace_size(const clstm_model *m, int64_t T, int64_t B, int train,
                                        size_t *bytes) {
    return m ? workspace_size(m, model_plan(m), T, B, train, bytes) : CLSTM_ERR_NULL;
}

clstm_status clstm_forward_ex(const clstm_model *m, int64_t T, int64_t B, const void *x,
                              const void *h0, const void *c0, void *y, void *hT, void *cT,
                              const clstm_run_options *opt, void *ws, size_t ws_bytes) {
    if (!m || !x || !y || !opt) return CLSTM_ERR_NULL;
    return run_forward(m, LSTM_ONLY, T, B, x, NULL, h0, c0, y, hT, cT, opt, ws, ws_bytes);
}

clstm_status clstm_forward(const clstm_model *m, int64_t T, int64_t B, const void *x,
                           const void *h0, const void *c0, void *y, void *hT, void *cT,
                           int train, void *ws, size_t ws_bytes) {
    clstm_run_options opt = clstm_run_options_default();
    opt.train = train;
    return clstm_forward_ex(m, T, B, x, h0, c0, y, hT, cT, &opt, ws, ws_bytes);
}

clstm_status clstm_backward(clstm_model *m, int64_t T, int64_t B, const void *dy,
                            const void *dhT, const void *dcT, void *dx, void *dh0, void *dc0,
                            void *ws, size_t ws_bytes) {
    if (!m) return CLSTM_ERR_NULL;
    return run_backward(m, LSTM_ONLY, T, B, dy, dhT, dcT, dx, dh0, dc0, ws, ws_bytes);
}

clstm_status clstm_model_forward(const clstm_model *m, int64_t T, int64_t B, const void *x,
                                 const int32_t *ids, const void *h0, const void *c0, void *out,
                                 void *hT, void *cT, const clstm_run_options *opt, void *ws,
                                 size_t ws_bytes) {
    if (!m || !out) return CLSTM_ERR_NULL;
    const int tokens = m->cfg.encoding != CLSTM_ENCODING_NONE;
    if (tokens ? !ids : !x) return CLSTM_ERR_NULL;
    if (tokens ? x != NULL : ids != NULL) return CLSTM_ERR_ARG;
    const clstm_run_options dflt = clstm_run_options_default();
    return run_forward(m, model_plan(m), T, B, x, ids, h0, c0, out, hT, cT, opt ? opt : &dflt,
                       ws, ws_bytes);
}

clstm_status clstm_model_backward(clstm_model *m, int64_t T, int64_t B, const void *dout,
                                  const void *dhT, const void *dcT, void *dx, void *dh0,
                                  void *dc0, void *ws, size_t ws_bytes) {
    if (!m) return CLSTM_ERR_NULL;
    return run_backward(m, model_plan(m), T, B, dout, dhT, dcT, dx, dh0, dc0, ws, ws_bytes);
}
