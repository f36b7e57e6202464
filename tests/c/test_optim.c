/* The optimizer steps' argument checks (their arithmetic is compared with
 * torch.optim in tests/test_optim.py), and one step of each against the
 * formulas written out by hand. */
#include <math.h>
#include <string.h>

#include "clstm.h"
#include "ctest.h"

/* Evaluates expr once (it may have effects). */
#define CHECK_ST(expr, want)                                                              \
    do {                                                                                  \
        clstm_status got_ = (expr);                                                       \
        CHECK(got_ == (want), "%s returned %d, expected %d", #expr, (int)got_, (int)(want)); \
    } while (0)

static void test_sgd_args(void) {
    double p[3] = {1, 2, 3}, g[3] = {1, 1, 1}, buf[3] = {0};
    clstm_sgd_config c = clstm_sgd_config_default();
    CHECK_ST(clstm_sgd_step(CLSTM_FLOAT64, 3, NULL, g, buf, 1, &c), CLSTM_ERR_NULL);
    CHECK_ST(clstm_sgd_step(CLSTM_FLOAT64, 3, p, NULL, buf, 1, &c), CLSTM_ERR_NULL);
    CHECK_ST(clstm_sgd_step(CLSTM_FLOAT64, 3, p, g, buf, 1, NULL), CLSTM_ERR_NULL);
    CHECK_ST(clstm_sgd_step(CLSTM_FLOAT64, 0, p, g, buf, 1, &c), CLSTM_ERR_SIZE);
    CHECK_ST(clstm_sgd_step((clstm_dtype)7, 3, p, g, buf, 1, &c), CLSTM_ERR_DTYPE);
    const double bad[] = {-1.0, NAN, INFINITY};
    for (int i = 0; i < 3; i++) {
        clstm_sgd_config b = c;
        b.lr = bad[i];
        CHECK_ST(clstm_sgd_step(CLSTM_FLOAT64, 3, p, g, buf, 1, &b), CLSTM_ERR_ARG);
        b = c;
        b.momentum = bad[i];
        CHECK_ST(clstm_sgd_step(CLSTM_FLOAT64, 3, p, g, buf, 1, &b), CLSTM_ERR_ARG);
        b = c;
        b.weight_decay = bad[i];
        CHECK_ST(clstm_sgd_step(CLSTM_FLOAT64, 3, p, g, buf, 1, &b), CLSTM_ERR_ARG);
    }
    clstm_sgd_config b = c;
    b.nesterov = 1; /* without momentum */
    CHECK_ST(clstm_sgd_step(CLSTM_FLOAT64, 3, p, g, buf, 1, &b), CLSTM_ERR_ARG);
    b = c;
    b.momentum = 0.9; /* momentum needs a buffer */
    CHECK_ST(clstm_sgd_step(CLSTM_FLOAT64, 3, p, g, NULL, 1, &b), CLSTM_ERR_NULL);
    b = c;
    b.struct_size = 8;
    CHECK_ST(clstm_sgd_step(CLSTM_FLOAT64, 3, p, g, buf, 1, &b), CLSTM_ERR_ARG);
    CHECK(p[0] == 1 && p[1] == 2 && p[2] == 3, "a refused step changed the parameters");
}

static void test_adam_args(void) {
    float p[2] = {1, 2}, g[2] = {1, 1}, m[2] = {0}, v[2] = {0};
    clstm_adam_config c = clstm_adam_config_default();
    CHECK_ST(clstm_adam_step(CLSTM_FLOAT32, 2, p, g, NULL, v, 1, &c), CLSTM_ERR_NULL);
    CHECK_ST(clstm_adam_step(CLSTM_FLOAT32, 2, p, g, m, NULL, 1, &c), CLSTM_ERR_NULL);
    CHECK_ST(clstm_adam_step(CLSTM_FLOAT32, 2, p, g, m, v, 0, &c), CLSTM_ERR_ARG);
    clstm_adam_config b = c;
    b.beta1 = 1.0;
    CHECK_ST(clstm_adam_step(CLSTM_FLOAT32, 2, p, g, m, v, 1, &b), CLSTM_ERR_ARG);
    b = c;
    b.beta2 = NAN;
    CHECK_ST(clstm_adam_step(CLSTM_FLOAT32, 2, p, g, m, v, 1, &b), CLSTM_ERR_ARG);
    b = c;
    b.eps = 0;
    CHECK_ST(clstm_adam_step(CLSTM_FLOAT32, 2, p, g, m, v, 1, &b), CLSTM_ERR_ARG);
    CHECK(p[0] == 1 && p[1] == 2, "a refused step changed the parameters");
}

/* One step each, against the update written out for a single element. */
static void test_one_step(void) {
    double p = 0.5, g = 0.2, buf = 0, m = 0, v = 0;
    clstm_sgd_config s = clstm_sgd_config_default();
    s.lr = 0.1;
    s.momentum = 0.9;
    s.weight_decay = 0.01;
    CHECK_ST(clstm_sgd_step(CLSTM_FLOAT64, 1, &p, &g, &buf, 1, &s), CLSTM_OK);
    double d = 0.2 + 0.01 * 0.5; /* first step: buf = d */
    CHECK(fabs(p - (0.5 - 0.1 * d)) < 1e-15 && buf == d, "SGD step: p=%.17g", p);
    p = 0.5;
    clstm_adam_config a = clstm_adam_config_default();
    a.lr = 0.01;
    CHECK_ST(clstm_adam_step(CLSTM_FLOAT64, 1, &p, &g, &m, &v, 1, &a), CLSTM_OK);
    /* step 1: m_hat = g, v_hat = g^2, so p -= lr * g / (|g| + eps) */
    CHECK(fabs(p - (0.5 - 0.01 * 0.2 / (0.2 + 1e-8))) < 1e-15, "Adam step: p=%.17g", p);
}

int main(void) {
    test_sgd_args();
    test_adam_args();
    test_one_step();
    return ctest_finish();
}
