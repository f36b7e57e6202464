"""clstm's forward against the NumPy float64 reference (tests/reference.py)."""

import numpy as np
import pytest
from conftest import (
    BACKENDS,
    CASES,
    DTYPES,
    FEATURE_CASES,
    HARD_CASES,
    MEDIUM,
    MEDIUM_FEATURES,
    REVERSE_CASES,
    VARIANTS,
    ZERO_LENGTH_CASES,
    assert_outputs,
    expected_forward,
    make_problem,
    present,
)

import clstm

STATE_MODES = ("none", "given", "h0_only", "c0_only")


@pytest.mark.parametrize("num_threads", [1, 2], indirect=True)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "case", CASES + (MEDIUM,) + ZERO_LENGTH_CASES + (MEDIUM_FEATURES,) + REVERSE_CASES + HARD_CASES,
    ids=str,
)
@pytest.mark.parametrize("state_mode", STATE_MODES)
def test_forward_matches_reference(case, dtype, backend, num_threads, state_mode):
    lstm = case.model(dtype, backend)
    prob = make_problem(case)
    x = prob.api(prob.x, dtype=dtype)
    state = prob.state(state_mode, dtype=dtype)
    y, hc = lstm.forward(x, state, **case.run_kwargs())
    want = expected_forward(lstm, x, state, case.layout, prob.lengths)[:3]
    assert_outputs((y, hc), want, case.layout, dtype)


@pytest.mark.parametrize("variant", VARIANTS + ("float16", "longdouble"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES + FEATURE_CASES[8:10], ids=str)
def test_forward_input_forms(case, dtype, variant):
    """Read-only, strided, Fortran-ordered and other-precision inputs give
    the reference result (for the values rounded to the model's dtype) and
    are left unchanged."""
    lstm = case.model(dtype)
    prob = make_problem(case, seed=1)
    x = prob.api(prob.x, variant, dtype)
    state = prob.state("given", variant, dtype)
    before = [a.copy() for a in (x, *state)]
    out = lstm.forward(x, state, **case.run_kwargs())
    want = expected_forward(lstm, x, state, case.layout, prob.lengths)[:3]
    assert_outputs(out, want, case.layout, dtype)
    for a, b in zip((x, *state), before):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES + FEATURE_CASES + ZERO_LENGTH_CASES + REVERSE_CASES
                         + HARD_CASES, ids=str)
def test_call_and_train_flag_agree(case, dtype):
    lstm = case.model(dtype)
    prob = make_problem(case, seed=2)
    x = prob.api(prob.x, dtype=dtype)
    state = prob.state("given", dtype=dtype)
    run = case.run_kwargs()
    y0, (h0, c0) = lstm.forward(x, state, train=False, **run)
    for y, (h, c) in (
        lstm(x, state, **run),
        lstm.forward(x, state, train=True, **run),
        lstm(x, state=state, train=False, **run),
    ):
        np.testing.assert_array_equal(y, y0)
        np.testing.assert_array_equal(h, h0)
        np.testing.assert_array_equal(c, c0)


@pytest.mark.parametrize("dtype", DTYPES)
def test_outputs_are_new_arrays(dtype):
    case = CASES[1]
    lstm = case.model(dtype)
    prob = make_problem(case, seed=3)
    x = prob.api(prob.x, dtype=dtype)
    state = prob.state("given", dtype=dtype)
    y1, (h1, c1) = lstm.forward(x, state)
    saved = [a.copy() for a in (y1, h1, c1)]
    y2, (h2, c2) = lstm.forward(2 * x, state)
    for a in (y1, h1, c1):
        for b in (x, *state, y2, h2, c2):
            assert not np.shares_memory(a, b)
    for a, b in zip((y1, h1, c1), saved):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(y1, y2)


@pytest.mark.parametrize("case", [CASES[2], FEATURE_CASES[5]], ids=str)
def test_zero_state_equals_no_state(case):
    lstm = case.model()
    prob = make_problem(case, seed=4)
    x, run = prob.api(prob.x), case.run_kwargs()
    zeros_h, zeros_c = np.zeros(case.state_shape("h")), np.zeros(case.state_shape("c"))
    ref_out = lstm.forward(x, **run)
    for state in ((zeros_h, zeros_c), (None, None), (zeros_h, None), (None, zeros_c)):
        y, (h, c) = lstm.forward(x, state, **run)
        np.testing.assert_array_equal(y, ref_out[0])
        np.testing.assert_array_equal(h, ref_out[1][0])
        np.testing.assert_array_equal(c, ref_out[1][1])


def test_batch_first_and_unbatched_agree_with_tbd():
    """One model's parameters in three layouts give the same numbers (to
    rounding: a different batch size may change the gemm's blocking)."""
    case = CASES[3]
    prob = make_problem(case, seed=5)
    models = {
        bf: clstm.LSTM(case.D, case.H, case.L, dtype=np.float64, seed=9, batch_first=bf)
        for bf in (False, True)
    }
    y_t, (h_t, c_t) = models[False].forward(prob.x, (prob.h0, prob.c0))
    y_b, (h_b, c_b) = models[True].forward(np.swapaxes(prob.x, 0, 1), (prob.h0, prob.c0))
    pairs = [(np.swapaxes(y_b, 0, 1), y_t), (h_b, h_t), (c_b, c_t)]
    for b in range(case.B):
        for m in models.values():  # (T, D) is unbatched whatever batch_first says
            y_u, (h_u, c_u) = m.forward(prob.x[:, b], (prob.h0[:, b], prob.c0[:, b]))
            pairs += [(y_u, y_t[:, b]), (h_u, h_t[:, b]), (c_u, c_t[:, b])]
    for got, want in pairs:
        np.testing.assert_allclose(got, want, rtol=1e-13, atol=1e-13)


def test_list_input_converted_or_rejected():
    """A nested list is either converted like np.asarray or rejected with a
    TypeError/ValueError that names x."""
    case = CASES[1]
    lstm = case.model()
    prob = make_problem(case, seed=6)
    try:
        y, _ = lstm.forward(prob.x.tolist())
    except (TypeError, ValueError) as e:
        assert "x" in str(e)
    else:
        np.testing.assert_array_equal(y, lstm.forward(prob.x)[0])


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_large_inputs_saturate_without_nan(dtype, backend):
    """Inputs of +-1e4 saturate the gates: no inf or nan, |y| <= 1 and
    |c_t| <= t (|c_t| <= |c_{t-1}| + 1 from a zero state)."""
    case = CASES[1]
    lstm = case.model(dtype, backend)
    prob = make_problem(case, seed=7, scale=1e4)
    y, (h, c) = lstm.forward(present(prob.x, "contig", dtype))
    for a in (y, h, c):
        assert np.all(np.isfinite(a))
    assert np.all(np.abs(y) <= 1) and np.all(np.abs(h) <= 1)
    assert np.all(np.abs(c) <= case.T)
