"""The oracle checked first: tests/reference.py against torch.nn.LSTM in
float64 (forward, hand-written backward, every parameter gradient), for
bidirectional, projection, lengths (packed sequences) and dropout masks (torch
run one layer at a time with the same masks)."""

import numpy as np
import pytest
import reference as ref
from conftest import (
    CASES,
    FEATURE_CASES,
    ZERO_LENGTH_CASES,
    Case,
    assert_close,
    canonical_outputs,
    make_problem,
)

torch = pytest.importorskip("torch")
import torch_oracle as oracle  # noqa: E402

OUT_NAMES = ("y", "hT", "cT", "dx", "dh0", "dc0")


def reference_run(params, prob, with_state, masks=None):
    """The reference's forward and backward of the test loss, in the
    problem's API layout (as torch_run returns them)."""
    layout = prob.case.layout
    state = (prob.h0, prob.c0) if with_state else (None, None)
    y, h, c, cache = ref.forward(params, prob.x, *state, prob.lengths, masks)
    dx, dh0, dc0, grads = ref.backward(params, cache, prob.wy, prob.wh, prob.wc)
    outs = [ref.x_to_api(y, layout), ref.state_to_api(h, layout), ref.state_to_api(c, layout)]
    outs += [ref.x_to_api(dx, layout)]
    outs += [ref.state_to_api(s, layout) for s in (dh0, dc0)] if with_state else [None, None]
    return outs, grads


def assert_same_run(got, want):
    (g_outs, g_grads), (w_outs, w_grads) = got, want
    for name, g, w in zip(OUT_NAMES, g_outs, w_outs):
        if w is None:
            continue
        assert g.shape == w.shape, name
        assert_close(g, w, np.float64, name)
    assert list(g_grads) == list(w_grads)
    for name, w in w_grads.items():
        assert_close(g_grads[name], w, np.float64, name)


def torch_params(module):
    return {k: v.detach().numpy().copy() for k, v in module.state_dict().items()}


def dropout_masks(case, p, seed):
    """L-1 masks (T, B, N*R) of 0 and 1/(1-p), as torch's dropout draws them."""
    rng = np.random.default_rng(seed)
    shape = (case.T, case.B, case.N * case.R)
    return [(rng.random(shape) >= p) / (1.0 - p) for _ in range(case.L - 1)]


@pytest.mark.parametrize("with_state", [True, False], ids=["state", "nostate"])
@pytest.mark.parametrize("case", CASES[1:4] + FEATURE_CASES, ids=str)
def test_reference_matches_torch(case, with_state):
    module = oracle.torch_module(case, np.float64, seed=3)
    prob = make_problem(case, seed=71)
    want = oracle.torch_run(module, prob, np.float64, with_state)
    assert list(torch_params(module)) == list(
        ref.param_shapes(case.D, case.H, case.L, case.N, case.P)
    )
    assert_same_run(reference_run(torch_params(module), prob, with_state), want)


DROPOUT_CASES = (
    Case(4, 3, 3, 4, 2),
    Case(3, 2, 2, 5, 3, N=2, P=2),
    Case(5, 3, 3, 4, 3, N=2, lengths=(2, 5, 1)),
    Case(4, 2, 2, 3, 2, P=2, lengths=(4, 3)),
)


@pytest.mark.parametrize("case", DROPOUT_CASES, ids=str)
def test_reference_masks_match_torch_layer_by_layer(case):
    module = oracle.torch_module(case, np.float64, seed=4)
    prob = make_problem(case, seed=72)
    masks = dropout_masks(case, 0.4, seed=73)
    want = oracle.torch_run(module, prob, np.float64, True, oracle.layered_forward(module, masks))
    assert_same_run(reference_run(torch_params(module), prob, True, masks), want)


def test_layer_by_layer_torch_without_masks_is_the_module():
    """The layered oracle itself: all-ones masks give torch's own result."""
    case = DROPOUT_CASES[2]
    module = oracle.torch_module(case, np.float64, seed=5)
    prob = make_problem(case, seed=74)
    ones = [np.ones((case.T, case.B, case.N * case.R))] * (case.L - 1)
    layered = oracle.torch_run(module, prob, np.float64, True, oracle.layered_forward(module, ones))
    module.zero_grad()
    assert_same_run(layered, oracle.torch_run(module, prob, np.float64, True))


@pytest.mark.parametrize("case", ZERO_LENGTH_CASES, ids=str)
def test_reference_zero_lengths(case):
    """Torch cannot pack a length of 0. The reference's 0-length sequences
    give zero outputs and dx, the initial state as final state and the
    upstream state gradients as dh0, dc0; the other sequences are what they
    are in a batch of their own (checked against torch when valid)."""
    module = oracle.torch_module(case, np.float64, seed=6)
    params = torch_params(module)
    prob = make_problem(case, seed=75)
    (y, h, c, dx, dh0, dc0), _ = reference_run(params, prob, True)
    y, h, c = canonical_outputs(y, h, c, case.layout)
    dx, dh0, dc0 = canonical_outputs(dx, dh0, dc0, case.layout)
    zero = prob.lengths == 0
    assert zero.any()
    assert not np.any(y[:, zero]) and not np.any(dx[:, zero])
    for got, want in ((h, prob.h0), (c, prob.c0), (dh0, prob.wh), (dc0, prob.wc)):
        np.testing.assert_array_equal(got[:, zero], want[:, zero])
    for b in np.flatnonzero(~zero):
        one = Case(
            case.T, 1, case.D, case.H, case.L, N=case.N, P=case.P, lengths=(case.lengths[b],)
        )
        single = oracle.torch_module(one, np.float64)
        single.load_state_dict(module.state_dict())
        sub = make_problem(one)
        sub.x, sub.h0, sub.c0 = prob.x[:, b : b + 1], prob.h0[:, b : b + 1], prob.c0[:, b : b + 1]
        sub.wy, sub.wh, sub.wc = prob.wy[:, b : b + 1], prob.wh[:, b : b + 1], prob.wc[:, b : b + 1]
        (sy, sh, sc, sdx, sdh0, sdc0), _ = oracle.torch_run(single, sub, np.float64, True)
        for name, got, want in zip(
            OUT_NAMES,
            (y, h, c, dx, dh0, dc0),
            canonical_outputs(sy, sh, sc, "tbd") + canonical_outputs(sdx, sdh0, sdc0, "tbd"),
        ):
            assert_close(got[:, b : b + 1], want, np.float64, name)


def test_reference_ignores_padding():
    """Values past the lengths change nothing (NaN padding vs. zeros)."""
    case = FEATURE_CASES[5]
    params = torch_params(oracle.torch_module(case, np.float64, seed=7))
    runs = [
        reference_run(params, make_problem(case, seed=76, pad=pad), True) for pad in (np.nan, 0.0)
    ]
    (outs, grads), (outs0, grads0) = runs
    for a, b in zip(outs + list(grads.values()), outs0 + list(grads0.values())):
        np.testing.assert_array_equal(a, b)
