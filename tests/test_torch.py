"""Parity with torch.nn.LSTM: weights copied across in both directions,
same inputs, same outputs and gradients."""

import numpy as np
import pytest
from conftest import (
    BACKENDS,
    CASES,
    DTYPES,
    FEATURE_CASES,
    Case,
    assert_close,
    forward_backward,
    make_problem,
)

import clstm

torch = pytest.importorskip("torch")
from torch_oracle import run_module, tensor, torch_module, torch_run  # noqa: E402

TORCH_CASES = CASES + (Case(2, 5, 3, 8, 2, "btd"), Case(20, 4, 16, 32, 2)) + FEATURE_CASES
OUT_NAMES = ("y", "hT", "cT", "dx", "dh0", "dc0")


@pytest.mark.parametrize("with_state", [True, False], ids=["state", "nostate"])
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TORCH_CASES, ids=str)
def test_matches_torch(case, dtype, backend, with_state):
    module = torch_module(case, dtype)
    lstm = case.model(dtype, backend, seed=99)
    lstm.load_state_dict(module.state_dict())
    prob = make_problem(case, seed=31)
    t_outs, t_grads = torch_run(module, prob, dtype, with_state)
    c_outs = forward_backward(lstm, prob, "given" if with_state else "none")[:6]
    c_grads = lstm.named_grads()
    for name, got, want in zip(OUT_NAMES, c_outs, t_outs):
        if want is None:
            continue
        assert got.shape == want.shape, name
        assert got.dtype == np.dtype(dtype), name
        assert_close(got, want, dtype, name)
    assert set(c_grads.keys()) == set(t_grads)
    for name, want in t_grads.items():
        assert c_grads[name].shape == want.shape, name
        assert_close(c_grads[name], want, dtype, name)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", TORCH_CASES, ids=str)
def test_state_dict_loads_into_torch(case, dtype):
    lstm = case.model(dtype, seed=41)
    module = torch_module(case, dtype, seed=5)
    sd = lstm.state_dict()
    assert list(sd) == list(module.state_dict())
    module.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()})
    for name, p in module.state_dict().items():
        np.testing.assert_array_equal(p.numpy(), sd[name])
    prob = make_problem(case, seed=32)
    with torch.no_grad():
        y, (h, c) = run_module(
            module,
            tensor(prob.api(prob.x), dtype),
            tuple(tensor(s, dtype) for s in prob.state("given")),
            prob.lengths,
        )
    y2, (h2, c2) = lstm.forward(
        prob.api(prob.x, dtype=dtype), prob.state("given", dtype=dtype), **case.run_kwargs()
    )
    for name, got, want in zip(OUT_NAMES, (y2, h2, c2), (y, h, c)):
        assert_close(got, want.numpy(), dtype, name)


def test_float32_torch_state_dict_into_float64_model():
    """An unchanged (float32) torch state_dict loads into a float64 model,
    converted like forward converts inputs."""
    case = CASES[2]
    module = torch_module(case, np.float32, seed=6)
    lstm = case.model(np.float64)
    lstm.load_state_dict(module.state_dict())
    for name, p in module.state_dict().items():
        np.testing.assert_array_equal(lstm.named_parameters()[name], p.numpy().astype(np.float64))


def test_load_named_parameters_that_require_grad():
    """Tensors that require grad (nn.Parameter) load like a state_dict."""
    case = CASES[3]
    module = torch_module(case, np.float64, seed=7)
    lstm = case.model(np.float64)
    lstm.load_state_dict(dict(module.named_parameters()))
    for name, p in module.named_parameters():
        np.testing.assert_array_equal(lstm.named_parameters()[name], p.detach().numpy())


def test_torch_default_init_range_matches():
    """clstm's init is torch's: U(-1/sqrt(H), 1/sqrt(H)) for every tensor."""
    lstm = clstm.LSTM(3, 16, 2, seed=3)
    bound = 1 / np.sqrt(16)
    for name, p in lstm.named_parameters().items():
        assert np.all(np.abs(p) <= bound), name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_non_finite_values_spread_as_in_torch(dtype, backend):
    """NaN and Inf in x, h0 and dy: the same NaN pattern as torch in every
    output and gradient (README: NaN spreads along its own sequence only;
    an Inf input saturates gates), the finite values equal within the usual
    tolerance, and the sequences without non-finite inputs fully finite."""
    case = Case(T=6, B=5, D=4, H=8, L=2, N=2)
    module = torch_module(case, dtype)
    lstm = case.model(dtype, backend, seed=99)
    lstm.load_state_dict(module.state_dict())
    prob = make_problem(case, seed=7)
    prob.x[2, 1, 0] = np.nan            # sequence 1: NaN in the middle
    prob.x[3, 2, 1] = np.inf            # sequence 2: one Inf (saturates)
    prob.x[1, 3, :2] = [np.inf, -np.inf]  # sequence 3: inf - inf somewhere: NaN
    prob.h0[0, 4, 0] = np.nan           # sequence 4: NaN in the initial state
    prob.wy[4, 0, 3] = np.nan           # sequence 0: NaN only in dy (the loss weights)
    t_outs, _ = torch_run(module, prob, dtype, True)
    c_outs = forward_backward(lstm, prob, "given")[:6]
    for name, got, want in zip(OUT_NAMES, c_outs, t_outs):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
        ok = np.isfinite(want)
        assert_close(np.where(ok, got, 0), np.where(ok, want, 0), dtype, name)
    y, dx = c_outs[0], c_outs[3]
    assert np.isnan(y[:, 1]).any() and np.isnan(y[:, 3]).any() and np.isnan(y[:, 4]).any()
    assert np.isfinite(y[:, [0, 2]]).all(), "NaN reached a sequence without NaN input"
    assert np.isnan(dx[:, 0]).any() and np.isfinite(dx[:, 2]).all()
