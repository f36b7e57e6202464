/* Branch-free float32 exp, sigmoid and tanh that the compiler can
 * vectorise (libm's expf/tanhf are scalar calls and took 30-55% of the
 * forward time in the first profile). Accuracy: a few float32 ulp, which is
 * below what the float32 gemms around them already lose.
 *
 * Classic approximations: exp by range reduction x = n ln2 + r with a
 * degree-6 polynomial for exp(r) on |r| <= ln2/2 (Cephes' coefficients),
 * in the form e^r - 1 = r + r^2 P(r), which also gives expm1 without
 * cancellation near 0; tanh(x) = expm1(2x) / (expm1(2x) + 2), accurate
 * relative to the result near 0 as well. (tanh had an odd polynomial below
 * |x| = 0.625 and 1 - 2/(exp(2|x|) + 1) above it, both computed and one
 * kept: 12 more operations, and the gates of an int8 forward 4-8% slower
 * at T=100 B=32 H=256 L=2.) NaN propagates: the clamps are comparisons,
 * which are false for NaN, and no float is converted to an integer (2^n is
 * built from the bits of the rounding shifter, in unsigned arithmetic).
 * +-inf give the limits. */
#ifndef CLSTM_FASTMATH_H
#define CLSTM_FASTMATH_H

#include <stdint.h>
#include <string.h>

/* e^x = 2^n (1 + e), returning e = e^r - 1 and setting *scale = 2^n. */
static inline float clstm_exp_parts(float x, float *scale) {
    x = x > 88.0f ? 88.0f : x; /* keeps 2^n finite */
    x = x < -87.0f ? -87.0f : x;  /* keeps 2^n normal */
    const float shifter = 12582912.0f; /* 1.5 * 2^23: adding it rounds to an integer */
    float t = x * 1.44269504088896341f + shifter;
    float n = t - shifter;
    float r = x - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    uint32_t e = (bits - 0x4B400000u + 127u) << 23; /* n + 127 in the exponent field */
    memcpy(scale, &e, sizeof *scale);
    return p * (r * r) + r;
}

static inline float clstm_expf(float x) {
    float scale, em1 = clstm_exp_parts(x, &scale);
    return (em1 + 1.0f) * scale;
}

/* e^x - 1 = 2^n e + (2^n - 1); -1 below x = -87, e^88 - 1 above 88. */
static inline float clstm_expm1f(float x) {
    float scale, em1 = clstm_exp_parts(x, &scale);
    return em1 * scale + (scale - 1.0f);
}

/* Below -104 the true sigmoid rounds to 0 in float32 (and -inf must give 0,
 * so that 0 * inf is NaN as in IEEE); the clamp in clstm_expf alone would
 * leave 1 / (1 + e^88) = 6e-39 there. */
static inline float clstm_sigmoidf(float x) {
    float s = 1.0f / (1.0f + clstm_expf(-x));
    return x < -104.0f ? 0.0f : s;
}

/* On |x|, where em >= 0 and em + 2 has no cancellation (2.5 ulp on
 * x < 0 otherwise), the sign put back; at |x| >= 44 em = e^88 - 1 and
 * the quotient 1. */
static inline float clstm_tanhf(float x) {
    float em = clstm_expm1f(2.0f * (x < 0 ? -x : x));
    float t = em / (em + 2.0f);
    return x < 0 ? -t : t;
}

#endif
