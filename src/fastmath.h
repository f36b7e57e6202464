/* Branch-free float32 exp, sigmoid and tanh that the compiler can
 * vectorise (libm's expf/tanhf are scalar calls and took 30-55% of the
 * forward time in the first profile). Accuracy: a few float32 ulp, which is
 * below what the float32 gemms around them already lose.
 *
 * Classic approximations: exp by range reduction x = n ln2 + r with a
 * degree-6 polynomial for exp(r) on |r| <= ln2/2 (Cephes' coefficients);
 * tanh by an odd polynomial below |x| = 0.625 and 1 - 2/(exp(2|x|) + 1)
 * above it. NaN propagates: the clamps are comparisons, which are false for
 * NaN, and no float is converted to an integer (2^n is built from the bits
 * of the rounding shifter, in unsigned arithmetic). +-inf give the limits. */
#ifndef CLSTM_FASTMATH_H
#define CLSTM_FASTMATH_H

#include <stdint.h>
#include <string.h>

static inline float clstm_expf(float x) {
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
    p = p * (r * r) + r + 1.0f;
    uint32_t bits;
    memcpy(&bits, &t, sizeof bits);
    uint32_t e = (bits - 0x4B400000u + 127u) << 23; /* n + 127 in the exponent field */
    float scale;
    memcpy(&scale, &e, sizeof scale);
    return p * scale;
}

/* Below -104 the true sigmoid rounds to 0 in float32 (and -inf must give 0,
 * so that 0 * inf is NaN as in IEEE); the clamp in clstm_expf alone would
 * leave 1 / (1 + e^88) = 6e-39 there. */
static inline float clstm_sigmoidf(float x) {
    float s = 1.0f / (1.0f + clstm_expf(-x));
    return x < -104.0f ? 0.0f : s;
}

static inline float clstm_tanhf(float x) {
    float ax = x < 0 ? -x : x;
    float z = x * x;
    float small = -5.70498872745e-3f;
    small = small * z + 2.06390887954e-2f;
    small = small * z - 5.37397155531e-2f;
    small = small * z + 1.33314422036e-1f;
    small = small * z - 3.33332819422e-1f;
    small = small * z * x + x;
    float big = 1.0f - 2.0f / (clstm_expf(2.0f * ax) + 1.0f);
    big = x < 0 ? -big : big;
    return ax < 0.625f ? small : big;
}

#endif
