"""Parameter and gradient views, state_dict round trips, seeds and init."""

import gc

import numpy as np
import pytest
import reference as ref
from conftest import (
    CASES,
    DTYPES,
    Case,
    assert_outputs,
    expected_forward,
    forward_backward,
    make_problem,
)

import clstm

CASE = CASES[2]  # L=3, so layers with D_k = D and D_k = H
# and with D_k = N*R: both directions, a projection
LAYOUT_CASES = (
    CASE,
    Case(3, 2, 5, 4, 3, N=2, P=3),
    Case(3, 2, 5, 4, 2, N=2),
    Case(3, 2, 5, 4, 2, P=1),
)


def model(dtype=np.float64, seed=1):
    return CASE.model(dtype, seed=seed)


def trained_grads(lstm, prob):
    """One forward/backward of the test loss added into the gradients;
    returns a copy of flat_grads."""
    return forward_backward(lstm, prob, zero_grad=False)[-1]


@pytest.mark.parametrize("case", LAYOUT_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("which", ["params", "grads"])
def test_named_views_alias_flat_block(dtype, which, case):
    lstm = case.model(dtype)
    named = lstm.named_parameters() if which == "params" else lstm.named_grads()
    flat = lstm.flat_parameters if which == "params" else lstm.flat_grads
    sizes = (case.D, case.H, case.L, case.N, case.P)
    shapes = ref.param_shapes(*sizes)
    assert list(named.keys()) == list(shapes)
    assert flat.ndim == 1 and flat.size == ref.num_params(*sizes)
    assert flat.dtype == np.dtype(dtype) and flat.flags.writeable
    # Each named view sits where the header's layout puts it.
    offset = 0
    for name, shape in shapes.items():
        v = named[name]
        assert v.shape == shape and v.dtype == np.dtype(dtype) and v.flags.writeable, name
        assert np.shares_memory(v, flat), name
        n = int(np.prod(shape))
        flat[offset : offset + n] = np.arange(n) + 0.5
        np.testing.assert_array_equal(v.reshape(-1), np.arange(n) + 0.5, err_msg=name)
        offset += n
    assert offset == flat.size


def test_params_and_grads_blocks_are_distinct():
    lstm = model()
    assert not np.shares_memory(lstm.flat_parameters, lstm.flat_grads)
    assert not np.any(lstm.flat_grads)


def test_repeated_calls_give_views_of_the_same_memory():
    lstm = model()
    a, b = lstm.named_parameters(), lstm.named_parameters()
    for name in a.keys():
        assert np.shares_memory(a[name], b[name])
    a["bias_hh_l1"][:] = 7
    np.testing.assert_array_equal(b["bias_hh_l1"], 7)
    np.testing.assert_array_equal(lstm.state_dict()["bias_hh_l1"], 7)


@pytest.mark.parametrize("dtype", DTYPES)
def test_writing_a_view_changes_forward(dtype):
    lstm = model(dtype)
    prob = make_problem(CASE, seed=51)
    x = prob.api(prob.x, dtype=dtype)
    before = lstm.forward(x)[0]
    p = lstm.named_parameters()
    p["weight_hh_l1"][:] = 0
    p["bias_ih_l2"][CASE.H : 2 * CASE.H] += 0.5
    out = lstm.forward(x)
    assert not np.allclose(out[0], before)
    assert_outputs(out, expected_forward(lstm, x, None, CASE.layout)[:3], CASE.layout, dtype)
    assert not np.any(lstm.named_parameters()["weight_hh_l1"])


def test_views_outlive_the_model():
    lstm = model(seed=52)
    params, grads = lstm.named_parameters(), lstm.named_grads()
    flat = lstm.flat_parameters
    saved = flat.copy()
    del lstm
    gc.collect()
    # Allocate and fill other models so that freed memory would be reused.
    others = [clstm.LSTM(CASE.D, CASE.H, CASE.L, dtype=np.float64, seed=s) for s in range(20)]
    for o in others:
        o.flat_parameters[:] = -123.0
    np.testing.assert_array_equal(flat, saved)
    np.testing.assert_array_equal(np.concatenate([v.reshape(-1) for v in params.values()]), saved)
    assert not any(np.any(g) for g in grads.values())
    params["weight_ih_l0"][:] = 3.0
    np.testing.assert_array_equal(flat[: params["weight_ih_l0"].size], 3.0)


def test_view_keeps_model_usable_through_base_chain():
    """A single view, with every other reference dropped, stays valid."""
    v = model(seed=53).named_parameters()["bias_hh_l2"]
    expected = model(seed=53).named_parameters()["bias_hh_l2"].copy()
    gc.collect()
    for s in range(5):
        clstm.LSTM(CASE.D, CASE.H, CASE.L, dtype=np.float64, seed=s).flat_parameters.fill(9)
    np.testing.assert_array_equal(v, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_zero_grad_and_accumulation(dtype):
    lstm = model(dtype)
    prob = make_problem(CASE, seed=54)
    grads_view = lstm.named_grads()
    g1 = trained_grads(lstm, prob)
    assert np.any(g1)
    g2 = trained_grads(lstm, prob)
    rtol = 1e-14 if dtype == np.float64 else 1e-6
    np.testing.assert_allclose(g2, 2 * g1, rtol=rtol, atol=rtol * np.abs(g1).max())
    lstm.zero_grad()
    assert not np.any(lstm.flat_grads)
    assert not any(np.any(g) for g in grads_view.values())
    np.testing.assert_array_equal(trained_grads(lstm, prob), g1)
    assert np.shares_memory(grads_view["weight_ih_l0"], lstm.flat_grads)


def test_backward_does_not_change_parameters():
    lstm = model()
    before = lstm.flat_parameters.copy()
    trained_grads(lstm, make_problem(CASE, seed=55))
    np.testing.assert_array_equal(lstm.flat_parameters, before)


def test_sgd_step_through_flat_views_reduces_loss():
    """The flat blocks are an optimizer's interface: p -= lr * g."""
    lstm = model()
    prob = make_problem(CASE, seed=56)

    def loss():
        y, (h, c) = lstm.forward(prob.x, (prob.h0, prob.c0), train=False)
        return ref.loss(y, h, c, prob.wy, prob.wh, prob.wc)

    start = loss()
    lstm.zero_grad()
    g = trained_grads(lstm, prob)
    lstm.flat_parameters[:] -= 1e-3 * lstm.flat_grads
    # First-order prediction of the decrease: lr * |g|^2.
    np.testing.assert_allclose(start - loss(), 1e-3 * np.dot(g, g), rtol=1e-2)


# ------------------------------------------------------------ state_dict
@pytest.mark.parametrize("case", LAYOUT_CASES, ids=str)
@pytest.mark.parametrize("dtype", DTYPES)
def test_state_dict_is_a_copy_with_torch_names(dtype, case):
    lstm = case.model(dtype)
    sd = lstm.state_dict()
    shapes = ref.param_shapes(case.D, case.H, case.L, case.N, case.P)
    assert list(sd) == list(shapes)
    params = lstm.named_parameters()
    for name, arr in sd.items():
        assert (
            isinstance(arr, np.ndarray)
            and arr.dtype == np.dtype(dtype)
            and arr.shape == shapes[name]
        )
        assert not np.shares_memory(arr, lstm.flat_parameters)
        np.testing.assert_array_equal(arr, params[name])
        arr[...] = 42
    assert not np.any(lstm.flat_parameters == 42)


@pytest.mark.parametrize("dtype", DTYPES)
def test_load_state_dict_round_trip(dtype):
    src, dst = model(dtype, seed=1), model(dtype, seed=2)
    assert not np.array_equal(src.flat_parameters, dst.flat_parameters)
    sd = src.state_dict()
    dst.load_state_dict(sd)
    np.testing.assert_array_equal(dst.flat_parameters, src.flat_parameters)
    for arr in sd.values():
        arr[...] = 0  # the model took a copy
    assert np.array_equal(dst.flat_parameters, src.flat_parameters)
    x = make_problem(CASE, seed=57).x.astype(dtype)
    np.testing.assert_array_equal(dst.forward(x)[0], src.forward(x)[0])


def test_load_state_dict_accepts_other_precision_and_noncontiguous():
    src = model(np.float64, seed=3)
    sd = {
        k: np.asfortranarray(v) if v.ndim == 2 else v[::-1].copy()[::-1]
        for k, v in src.state_dict().items()
    }
    dst = model(np.float32, seed=4)
    dst.load_state_dict(sd)
    for name, v in src.state_dict().items():
        np.testing.assert_array_equal(dst.named_parameters()[name], v.astype(np.float32))


def test_load_state_dict_non_strict_partial():
    src, dst = model(seed=5), model(seed=6)
    before = dst.state_dict()
    partial = {"weight_hh_l1": src.state_dict()["weight_hh_l1"], "unexpected": np.zeros(3)}
    dst.load_state_dict(partial, strict=False)
    after = dst.state_dict()
    for name in after:
        want = partial["weight_hh_l1"] if name == "weight_hh_l1" else before[name]
        np.testing.assert_array_equal(after[name], want, err_msg=name)


# ------------------------------------------------------------ seeds, init
@pytest.mark.parametrize("dtype", DTYPES)
def test_same_seed_same_parameters(dtype):
    a, b, c = model(dtype, 7), model(dtype, 7), model(dtype, 8)
    np.testing.assert_array_equal(a.flat_parameters, b.flat_parameters)
    assert not np.array_equal(a.flat_parameters, c.flat_parameters)


def test_seed_none_gives_different_models():
    a, b = model(seed=None), model(seed=None)
    assert not np.array_equal(a.flat_parameters, b.flat_parameters)


def test_float32_and_float64_of_one_seed_agree_to_rounding():
    """Values are drawn in double and rounded to the dtype (clstm.h)."""
    np.testing.assert_array_equal(
        model(np.float32, 9).flat_parameters,
        model(np.float64, 9).flat_parameters.astype(np.float32),
    )


@pytest.mark.parametrize("H", [1, 7, 64])
def test_init_is_uniform_in_torch_range(H):
    """U(-k, k), k = 1/sqrt(H): bounds, mean, variance and a
    Kolmogorov-Smirnov distance against the uniform CDF (fixed seed, so
    deterministic; thresholds at about the 1e-3 level)."""
    lstm = clstm.LSTM(32, H, 2, dtype=np.float64, seed=11)
    p = lstm.flat_parameters
    n, k = p.size, 1 / np.sqrt(H)
    assert np.all(np.abs(p) <= k)
    assert abs(p.mean()) < 4.0 * (k / np.sqrt(3)) / np.sqrt(n)
    assert abs(p.var() / (k * k / 3) - 1) < 4.0 * np.sqrt(0.8 / n)
    u = np.sort((p + k) / (2 * k))
    ks = max(np.max(np.arange(1, n + 1) / n - u), np.max(u - np.arange(n) / n))
    assert ks < 1.95 / np.sqrt(n)
    for name, v in lstm.named_parameters().items():
        assert np.ptp(v) > 0, name


def test_named_parameters_follow_torch_idioms():
    """Iterated, named_parameters() and named_grads() give (name, array)
    pairs as torch.nn.Module.named_parameters() does; a name still looks
    one up, and dict(...) and load_state_dict take them."""
    torch = pytest.importorskip("torch")
    m = clstm.LSTM(3, 4, num_layers=2, seed=1)
    module = torch.nn.LSTM(3, 4, num_layers=2)
    pairs = list(m.named_parameters())
    assert [n for n, _ in pairs] == [n for n, _ in module.named_parameters()]
    for name, p in m.named_parameters():
        assert p.shape == tuple(dict(module.named_parameters())[name].shape)
        assert np.shares_memory(p, m.flat_parameters)
    named = m.named_parameters()
    assert len(named) == len(pairs) and "weight_ih_l0" in named and "nope" not in named
    assert named["bias_hh_l1"] is not None and named.get("nope") is None
    assert list(dict(named).keys()) == list(named.keys())
    assert [p.shape for p in m.parameters()] == [p.shape for _, p in pairs]
    assert [n for n, _ in m.named_grads()] == [n for n, _ in pairs]
    other = clstm.LSTM(3, 4, num_layers=2, seed=2)
    other.load_state_dict(m.named_parameters())  # pairs when iterated: keys() is used
    np.testing.assert_array_equal(other.flat_parameters, m.flat_parameters)
