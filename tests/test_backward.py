"""clstm's backward against the reference's hand-written BPTT."""

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
    assert_close,
    assert_outputs,
    expected_backward,
    expected_forward,
    make_problem,
)

# Which upstream gradients are given: (dy?, dhT?, dcT?).
UPSTREAM = {
    "all": (True, True, True),
    "dy_only": (True, False, False),
    "dh_only": (False, True, False),
    "dc_only": (False, False, True),
    "none": (False, False, False),
}


def upstream(prob, which, variant, dtype):
    """The (dy, dstate) arguments: dstate is None when neither dhT nor dcT
    is given, else a tuple that may hold one None."""
    use_dy, use_dh, use_dc = UPSTREAM[which]
    dy = prob.api(prob.wy, variant, dtype) if use_dy else None
    dh = prob.api(prob.wh, variant, dtype, "state") if use_dh else None
    dc = prob.api(prob.wc, variant, dtype, "state") if use_dc else None
    return dy, (None if dh is None and dc is None else (dh, dc))


def check_backward(lstm, prob, state_mode, which, variant="contig", prior=None):
    """Train-forward, backward from zeroed grads, and compare everything
    with the reference. `prior`: a Problem whose training forward runs first
    (the backward must belong to the later one)."""
    case, dtype = prob.case, lstm.dtype
    x = prob.api(prob.x, variant, dtype)
    state = prob.state(state_mode, variant, dtype)
    lstm.zero_grad()
    if prior is not None:
        lstm.forward(
            prior.api(prior.x), prior.state("given"), train=True, **prior.case.run_kwargs()
        )
    lstm.forward(x, state, train=True, **case.run_kwargs())
    dy, dstate = upstream(prob, which, variant, dtype)
    dx, (dh0, dc0) = lstm.backward(dy, dstate)
    assert dx.shape == x.shape
    *_, cache = expected_forward(lstm, x, state, case.layout, prob.lengths)
    edx, edh0, edc0, egrads = expected_backward(lstm, cache, dy, dstate, case.layout)
    assert_outputs((dx, (dh0, dc0)), (edx, edh0, edc0), case.layout, dtype, ("dx", "dh0", "dc0"))
    grads = lstm.named_grads()
    assert set(grads.keys()) == set(egrads)
    for name, g in egrads.items():
        assert grads[name].shape == g.shape
        assert_close(grads[name], g, dtype, name)


@pytest.mark.parametrize("num_threads", [1, 2], indirect=True)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "case", CASES + (MEDIUM,) + ZERO_LENGTH_CASES + (MEDIUM_FEATURES,) + REVERSE_CASES + HARD_CASES,
    ids=str,
)
@pytest.mark.parametrize("state_mode", ("given", "none"))
def test_backward_matches_reference(case, dtype, backend, num_threads, state_mode):
    check_backward(case.model(dtype, backend), make_problem(case, seed=10), state_mode, "all")


@pytest.mark.parametrize("which", sorted(UPSTREAM))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES[1:4] + FEATURE_CASES[5:6] + ZERO_LENGTH_CASES[:1], ids=str)
def test_backward_partial_upstream(case, dtype, which):
    """dy and either element of dstate may be None (zeros)."""
    check_backward(case.model(dtype), make_problem(case, seed=11), "h0_only", which)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES + FEATURE_CASES[8:10], ids=str)
def test_backward_input_forms(case, dtype, variant):
    check_backward(case.model(dtype), make_problem(case, seed=12), "given", "all", variant)


def test_no_upstream_gives_zero_gradients():
    case = CASES[2]
    lstm = case.model()
    prob = make_problem(case, seed=13)
    lstm.forward(prob.x, (prob.h0, prob.c0))
    dx, (dh0, dc0) = lstm.backward(None)
    for a in (dx, dh0, dc0, lstm.flat_grads):
        assert not np.any(a)


@pytest.mark.parametrize("dtype", DTYPES)
def test_inference_forward_keeps_pending_training_forward(dtype):
    """forward(train=False) between a training forward and its backward
    does not change what backward computes."""
    case = CASES[2]
    lstm = case.model(dtype)
    prob = make_problem(case, seed=14)
    dy, dstate = upstream(prob, "all", "contig", dtype)
    lstm.forward(prob.x, (prob.h0, prob.c0), train=True)
    first = lstm.backward(dy, dstate)
    g_first = lstm.flat_grads.copy()
    lstm.zero_grad()
    lstm.forward(prob.x, (prob.h0, prob.c0), train=True)
    lstm.forward(-prob.x[:1, :1], train=False)
    second = lstm.backward(dy, dstate)
    np.testing.assert_array_equal(second[0], first[0])
    np.testing.assert_array_equal(second[1][0], first[1][0])
    np.testing.assert_array_equal(second[1][1], first[1][1])
    np.testing.assert_array_equal(lstm.flat_grads, g_first)


def test_backward_uses_latest_training_forward():
    """Two training forwards in a row: backward belongs to the second."""
    case = CASES[1]
    lstm = case.model()
    prob = make_problem(case, seed=15)
    check_backward(lstm, prob, "given", "all", prior=make_problem(case, seed=16))
