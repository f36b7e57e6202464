/* ---- The model's code: the same for every exported model, specialised by
 * the constants above. Everything here is static (file scope) except the
 * NAME_ functions the header declares. */

#ifdef NAME_LIBM
#include <math.h>
static inline float sigmoid_(float x) { return 1.0f / (1.0f + expf(-x)); }
static inline float tanh_(float x) { return tanhf(x); }
#if CX_SOFTMAX
static inline float exp_(float x) { return expf(x); }
#endif
#else
/* clstm's own float32 exp, sigmoid and tanh (src/fastmath.h, renamed):
 * no libm, and the same bits as the library's int8 path. */
@FASTMATH@
static inline float sigmoid_(float x) { return cx_sigmoidf(x); }
static inline float tanh_(float x) { return cx_tanhf(x); }
#if CX_SOFTMAX
static inline float exp_(float x) { return cx_expf(x); }
#endif
#endif

/* One LSTM unit: a layer in one direction. */
typedef struct {
    int32_t din;              /* its input's width */
#if CX_INT8
    const int8_t *qih, *qhh, *qhr; /* (4H, din), (4H, R), (R, H) or NULL */
    const float *sih, *shh, *shr;  /* their rows' scales */
#else
    const float *wih, *whh, *whr;  /* (4H, din), (4H, R), (R, H) or NULL */
#endif
    const float *bih, *bhh;   /* (4H) each */
    const float *peep;        /* (3H): i, f, o; or NULL */
} unit_t;

@UNITS@

#if CX_INT8
static inline float abs_(float x) { return x < 0 ? -x : x; }

static inline float nan_(void) {
    const uint32_t bits = 0x7fc00000u;
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* Round to the nearest integer, ties to even (rintf in the default
 * rounding mode), for |v| < 2^22: adding 1.5 * 2^23 leaves no fraction
 * bits. Needs each operation rounded to float (FLT_EVAL_METHOD 0) and no
 * -ffast-math, which would fold the two additions away. */
static inline float round_(float v) { return (v + 12582912.0f) - 12582912.0f; }
static inline double round_d(double v) { return (v + 6755399441055744.0) - 6755399441055744.0; }

/* x (K floats) as int8 q with scale *s, as clstm_q8_quantize_rows:
 * s = max|x| / 127, q = rint(x * (127 / max|x|)); zeros give s = 0, a NaN
 * or Inf s = NaN (its products are NaN) and q = 0. */
static void quantize_(const float *x, int32_t K, int8_t *q, float *s) {
    float amax = 0;
    int bad = 0;
    for (int32_t k = 0; k < K; k++) {
        const float a = abs_(x[k]);
        amax = a > amax ? a : amax;
        bad |= !(a <= 3.402823466e38f);
    }
    if (bad || amax == 0) {
        for (int32_t k = 0; k < K; k++) q[k] = 0;
        *s = bad ? nan_() : 0.0f;
        return;
    }
    const float inv = 127.0f / amax;
    if (!(inv <= 3.402823466e38f)) { /* amax < 127 / FLT_MAX: the ratio in double */
        for (int32_t k = 0; k < K; k++) q[k] = (int8_t)round_d((double)x[k] * (127.0 / amax));
    } else {
        for (int32_t k = 0; k < K; k++) {
            float v = round_(x[k] * inv);
            v = v > 127.0f ? 127.0f : v < -127.0f ? -127.0f : v;
            q[k] = (int8_t)v;
        }
    }
    *s = amax / 127.0f;
}

/* y[n] = (float)(W[n] . q) * (s * sw[n]) for n < N: exact int32 sums. */
static void product_(const int8_t *W, const float *sw, int32_t N, int32_t K, const int8_t *q,
                     float s, float *y) {
    for (int32_t n = 0; n < N; n++) {
        const int8_t *w = W + (size_t)n * (size_t)K;
        int32_t acc = 0;
        for (int32_t k = 0; k < K; k++) acc += (int32_t)w[k] * (int32_t)q[k];
        y[n] = (float)acc * (s * sw[n]);
    }
}

/* y (N) = W (N, K) x, x quantized first into the state's buffer. */
static void matvec_(NAME_state *st, const int8_t *W, const float *sw, int32_t N, int32_t K,
                    const float *x, float *y) {
    float s;
    quantize_(x, K, st->q_, &s);
    product_(W, sw, N, K, st->q_, s, y);
}
#else
/* y (N) = W (N, K) x. */
static void matvec_(const float *W, int32_t N, int32_t K, const float *x, float *y) {
    for (int32_t n = 0; n < N; n++) {
        const float *w = W + (size_t)n * (size_t)K;
        float acc = 0;
        for (int32_t k = 0; k < K; k++) acc += w[k] * x[k];
        y[n] = acc;
    }
}
#endif

static inline float clip_(float v) {
#if CX_CLIP
    const float clip = CX_CLIP_VALUE;
    return v > clip ? clip : v < -clip ? -clip : v;
#else
    return v;
#endif
}

/* The gate activation of i, f and o: the sigmoid, or the hard sigmoid
 * max(0, min(1, alpha z + beta)) (NaN stays NaN), as clstm computes it. */
static inline float gate_(float z) {
#if CX_HARD_SIGMOID
    const float s = CX_GATE_ALPHA * z + CX_GATE_BETA;
    return s < 0 ? 0 : s > 1 ? 1 : s;
#else
    return sigmoid_(z);
#endif
}

/* One step of unit u: h (R) and c (H) advanced in place from input x (din
 * floats), or from token `onehot` (>= 0) of a one-hot layer 0. */
static void cell_(NAME_state *st, const unit_t *u, const float *x, int32_t onehot, float *h,
                  float *c) {
    const int32_t H = CX_H;
    float *a = st->a_, *r = st->r_, *m = st->m_;
#if CX_INT8
    if (onehot >= 0) { /* x one-hot: q = 127 at the token, s = 1 / 127 */
        for (int32_t n = 0; n < 4 * H; n++)
            a[n] = (float)(127 * (int32_t)u->qih[(size_t)n * (size_t)u->din + (size_t)onehot]) *
                   ((1.0f / 127.0f) * u->sih[n]);
    } else {
        matvec_(st, u->qih, u->sih, 4 * H, u->din, x, a);
    }
    matvec_(st, u->qhh, u->shh, 4 * H, CX_R, h, r);
#else
    if (onehot >= 0) {
        for (int32_t n = 0; n < 4 * H; n++) a[n] = u->wih[(size_t)n * (size_t)u->din + (size_t)onehot];
    } else {
        matvec_(u->wih, 4 * H, u->din, x, a);
    }
    matvec_(u->whh, 4 * H, CX_R, h, r);
#endif
    for (int32_t j = 0; j < H; j++) {
        const float cp = c[j];
        float zi = r[j], zf = r[H + j], zg = r[2 * H + j], zo = r[3 * H + j];
        zi += a[j] + (u->bih[j] + u->bhh[j]);
        zf += a[H + j] + (u->bih[H + j] + u->bhh[H + j]);
        zg += a[2 * H + j] + (u->bih[2 * H + j] + u->bhh[2 * H + j]);
        zo += a[3 * H + j] + (u->bih[3 * H + j] + u->bhh[3 * H + j]);
#if CX_PEEPHOLES
        zi += u->peep[j] * cp;
        zf += u->peep[H + j] * cp;
#endif
        const float i = gate_(clip_(zi)), g = tanh_(clip_(zg));
#if CX_INPUT_FORGET
        const float f = 1 - i;
        (void)zf;
#else
        const float f = gate_(clip_(zf));
#endif
        const float cn = f * cp + i * g;
#if CX_PEEPHOLES
        zo += u->peep[2 * H + j] * cn;
#endif
        const float o = gate_(clip_(zo));
        c[j] = cn;
        m[j] = o * tanh_(cn);
    }
#if CX_P
#if CX_INT8
    matvec_(st, u->qhr, u->shr, CX_R, H, m, h);
#else
    matvec_(u->whr, CX_R, H, m, h);
#endif
#else
    memcpy(h, m, sizeof(float) * (size_t)H);
#endif
}

/* Layer 0's input at one step into st->x_ (or *onehot for a one-hot
 * model); the token checked by the caller. */
#if CX_ENCODING == 0
static const float *encode_(NAME_state *st, const float *x, int32_t *onehot) {
    *onehot = -1;
#if CX_SCALE_IN /* standardized as in training, in double as clstm does */
    for (int32_t k = 0; k < CX_D; k++)
        st->x_[k] = (float)(((double)x[k] - cx_in_mean[k]) / cx_in_std[k]);
    return st->x_;
#else
    (void)st;
    return x;
#endif
}
#elif CX_ENCODING == 1
static const float *encode_(NAME_state *st, int32_t token, int32_t *onehot) {
    (void)st;
    *onehot = token;
    return 0;
}
#else
static const float *encode_(NAME_state *st, int32_t token, int32_t *onehot) {
    *onehot = -1;
    for (int32_t k = 0; k < CX_D; k++)
#if CX_INT8
        st->x_[k] = (float)cx_emb_q[(size_t)token * CX_D + (size_t)k] * cx_emb_s[token];
#else
        st->x_[k] = cx_emb[(size_t)token * CX_D + (size_t)k];
#endif
    return st->x_;
}
#endif

/* The head on y (N*R) into out (O), or y itself without one. */
static void head_(NAME_state *st, const float *y, float *out) {
#if CX_O
#if CX_INT8
    matvec_(st, cx_head_q, cx_head_s, CX_O, CX_NR, y, out);
#else
    (void)st;
    matvec_(cx_head, CX_O, CX_NR, y, out);
#endif
    for (int32_t o = 0; o < CX_O; o++) out[o] += cx_head_b[o];
#if CX_SCALE_OUT /* a regression's outputs back on the data's scale */
    for (int32_t o = 0; o < CX_O; o++) out[o] = (float)((double)out[o] * cx_out_std[o] + cx_out_mean[o]);
#endif
#else
    (void)st;
    memcpy(out, y, sizeof(float) * CX_NR);
#endif
}

void NAME_init(NAME_state *s) {
    if (s) memset(s, 0, sizeof *s);
}

int NAME_reset(NAME_state *s, const float *h, const float *c) {
    if (!s) return NAME_ERR_ARG;
    if (h)
        memcpy(s->h, h, sizeof s->h);
    else
        memset(s->h, 0, sizeof s->h);
    if (c)
        memcpy(s->c, c, sizeof s->c);
    else
        memset(s->c, 0, sizeof s->c);
    return NAME_OK;
}

#if CX_ENCODING == 0
#define CX_INPUT_T const float *
#define CX_AT(in, t) ((in) + (size_t)(t) * CX_D)
#define CX_BAD(in, T) 0
#else
#define CX_INPUT_T const int32_t *
#define CX_AT(in, t) ((in)[t])
static int bad_tokens_(const int32_t *ids, int32_t T) {
    for (int32_t t = 0; t < T; t++)
        if (ids[t] < 0 || ids[t] >= CX_V) return 1;
    return 0;
}
#define CX_BAD(in, T) bad_tokens_(in, T)
#endif

#if !CX_WHOLE
int NAME_step(NAME_state *s, CX_INPUT_ONE in, float *out) {
#if CX_ENCODING == 0
    if (!s || !in || !out) return NAME_ERR_ARG;
#else
    if (!s || !out || in < 0 || in >= CX_V) return NAME_ERR_ARG;
#endif
    int32_t onehot;
    const float *x = encode_(s, in, &onehot);
    for (int32_t l = 0; l < CX_L; l++) {
        cell_(s, &cx_units[l], l == 0 ? x : s->h[l - 1], l == 0 ? onehot : -1, s->h[l],
              s->c[l]);
    }
    head_(s, s->h[CX_L - 1], out);
    return NAME_OK;
}

int NAME_forward(NAME_state *s, int32_t T, CX_INPUT_T in, float *out, float *work) {
    (void)work;
    if (!s || T < 0 || (T > 0 && (!in || !out)) || CX_BAD(in, T)) return NAME_ERR_ARG;
    for (int32_t t = 0; t < T; t++) NAME_step(s, CX_AT(in, t), out + (size_t)t * CX_OUT);
    return NAME_OK;
}
#else
int NAME_forward(NAME_state *s, int32_t T, CX_INPUT_T in, float *out, float *work) {
    if (!s || T < 0 || (T > 0 && (!in || !out || !work)) || CX_BAD(in, T)) return NAME_ERR_ARG;
    if (T == 0) return NAME_OK; /* (work may be NULL) */
    float *buf[2] = {work, work + (size_t)T * CX_NR};
    for (int32_t l = 0; l < CX_L; l++) {
        float *y = buf[l % 2];
        const float *prev = buf[(l + 1) % 2];
        for (int32_t d = 0; d < CX_N; d++) {
            const int32_t k = CX_N * l + d;
            for (int32_t step = 0; step < T; step++) {
                const int32_t t = d || CX_REVERSE ? T - 1 - step : step;
                int32_t onehot = -1;
                const float *x = l == 0 ? encode_(s, CX_AT(in, t), &onehot)
                                        : prev + (size_t)t * CX_NR;
                cell_(s, &cx_units[k], x, onehot, s->h[k], s->c[k]);
                memcpy(y + (size_t)t * CX_NR + (size_t)d * CX_R, s->h[k], sizeof(float) * CX_R);
            }
        }
    }
    const float *top = buf[(CX_L - 1) % 2];
    for (int32_t t = 0; t < T; t++) head_(s, top + (size_t)t * CX_NR, out + (size_t)t * CX_OUT);
    return NAME_OK;
}
#endif

#if CX_O
int32_t NAME_argmax(const float *out) {
    int32_t best = -1;
    for (int32_t o = 0; out && o < CX_O; o++)
        if (out[o] == out[o] && (best < 0 || out[o] > out[best])) best = o; /* NaN skipped */
    return best;
}
#endif

#if CX_SOFTMAX
int NAME_softmax(const float *logits, float temperature, float *p) {
    if (!logits || !p || !(temperature > 0)) return NAME_ERR_ARG;
    float mx = logits[0], sum = 0;
    for (int32_t o = 1; o < CX_O; o++) mx = logits[o] > mx ? logits[o] : mx;
    for (int32_t o = 0; o < CX_O; o++) {
        p[o] = exp_((logits[o] - mx) / temperature);
        sum += p[o];
    }
    for (int32_t o = 0; o < CX_O; o++) p[o] /= sum;
    return NAME_OK;
}

int32_t NAME_sample(const float *logits, float temperature, uint32_t *rng, float *p) {
    if (NAME_softmax(logits, temperature, p) != NAME_OK || !rng) return -1;
    uint32_t x = *rng ? *rng : 0x9e3779b9u; /* xorshift32: any state but 0 */
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *rng = x;
    const float u = (float)(x >> 8) * (1.0f / 16777216.0f); /* [0, 1) */
    float cum = 0;
    for (int32_t o = 0; o < CX_O; o++) {
        cum += p[o];
        if (u < cum) return o;
    }
    for (int32_t o = CX_O - 1; o >= 0; o--) /* rounding left u above the sum */
        if (p[o] > 0) return o;
    return -1; /* NaN logits */
}
#endif

#if CX_VOCAB
int32_t NAME_token(uint32_t codepoint) {
    for (int32_t i = 0; i < CX_VOCAB; i++)
        if (cx_vocab[i] == codepoint) return i;
    return -1;
}

uint32_t NAME_codepoint(int32_t token) {
    return token >= 0 && token < CX_VOCAB ? cx_vocab[token] : 0u;
}
#endif
