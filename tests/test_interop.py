"""Weights from and to PyTorch (modules and state_dicts) and Keras."""

import numpy as np
import pytest

import clstm
import reference
from conftest import assert_close, params64

torch = pytest.importorskip("torch")

CONFIGS = [
    dict(num_layers=1),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=3, proj_size=3),
    dict(num_layers=2, bidirectional=True, proj_size=4),
]


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("source", ["module", "state_dict"])
def test_from_torch_runs_like_torch(cfg, double, source):
    """from_torch reproduces the module's outputs; settings come along
    (batch_first from a module), and the dtype follows the weights."""
    tm = torch.nn.LSTM(5, 7, batch_first=True, **cfg)
    tm = tm.double() if double else tm
    m = clstm.LSTM.from_torch(tm if source == "module" else tm.state_dict())
    dtype = np.float64 if double else np.float32
    assert m.dtype == dtype
    assert (m.num_layers, m.bidirectional, m.proj_size) == (
        cfg["num_layers"],
        cfg.get("bidirectional", False),
        cfg.get("proj_size", 0),
    )
    x = np.random.default_rng(0).standard_normal((3, 6, 5)).astype(dtype)  # (B, T, D)
    with torch.no_grad():
        yt, (ht, ct) = tm(torch.from_numpy(x))
    if source == "state_dict":  # a state_dict carries no batch_first
        assert not m.batch_first
        x, yt = x.transpose(1, 0, 2), yt.transpose(0, 1)
    y, (h, c) = m.forward(x, train=False)
    for a, e, name in [(y, yt, "y"), (h, ht, "h"), (c, ct, "c")]:
        assert_close(a, e.numpy(), dtype, name)


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_to_torch_state_dict_loads_into_torch(cfg):
    m = clstm.LSTM(4, 6, seed=3, dtype=np.float64, **cfg)
    tm = torch.nn.LSTM(4, 6, **cfg).double()
    tm.load_state_dict(m.to_torch_state_dict())
    for name, p in tm.named_parameters():
        np.testing.assert_array_equal(p.detach().numpy(), m.named_parameters()[name])


def test_from_torch_without_bias_has_zero_biases():
    tm = torch.nn.LSTM(3, 4, bias=False)
    m = clstm.LSTM.from_torch(tm)
    x = np.random.default_rng(1).standard_normal((5, 2, 3)).astype(np.float32)
    with torch.no_grad():
        yt, _ = tm(torch.from_numpy(x))
    assert_close(m.forward(x, train=False)[0], yt.numpy(), np.float32)
    assert not any(v.any() for k, v in m.named_parameters().items() if k.startswith("bias"))


def test_from_torch_bad_input():
    with pytest.raises(TypeError, match="module_or_state_dict"):
        clstm.LSTM.from_torch(42)
    with pytest.raises(KeyError, match="weight_ih_l0"):
        clstm.LSTM.from_torch({"foo": np.zeros(3)})


# ------------------------------------------------------------------ Keras
# Keras's recurrent activations, as each Keras version writes them
KERAS_GATES = {
    "sigmoid": reference.sigmoid,
    "keras2 hard_sigmoid": lambda z: np.clip(0.2 * z + 0.5, 0.0, 1.0),
    "keras3 hard_sigmoid": lambda z: np.minimum(np.maximum(z + 3.0, 0.0), 6.0) / 6.0,
}


def keras_forward(kernel, recurrent_kernel, bias, x, gate=reference.sigmoid):
    """A Keras LSTM layer in float64 from Keras's own equations (gates
    i, f, c, o along the kernel's columns; x (T, B, D); gate: the
    recurrent activation)."""
    H = recurrent_kernel.shape[0]
    h = np.zeros((x.shape[1], H))
    c = np.zeros_like(h)
    ys = []
    for x_t in x:
        z = x_t @ kernel + h @ recurrent_kernel + bias
        i, f = gate(z[:, :H]), gate(z[:, H : 2 * H])
        c = f * c + i * np.tanh(z[:, 2 * H : 3 * H])
        h = gate(z[:, 3 * H :]) * np.tanh(c)
        ys.append(h)
    return np.stack(ys), h, c


@pytest.mark.parametrize("use_bias", [True, False])
def test_from_keras_matches_keras_equations(use_bias):
    rng = np.random.default_rng(2)
    D, H = 4, 6
    kernel, rk = rng.standard_normal((D, 4 * H)) * 0.5, rng.standard_normal((H, 4 * H)) * 0.5
    bias = rng.standard_normal(4 * H) if use_bias else None
    m = clstm.LSTM.from_keras(kernel, rk, bias)
    assert m.dtype == np.float64 and (m.input_size, m.hidden_size) == (D, H)
    x = rng.standard_normal((7, 3, D))
    y_k, h_k, c_k = keras_forward(kernel, rk, np.zeros(4 * H) if bias is None else bias, x)
    y, (h, c) = m.forward(x, train=False)
    assert_close(y, y_k, np.float64, "y")
    assert_close(h[0], h_k, np.float64, "h")
    assert_close(c[0], c_k, np.float64, "c")
    assert_close(params64(m)["weight_ih_l0"], kernel.T, np.float64)


@pytest.mark.parametrize("version,alpha", [("keras2", 0.2), ("keras3", 1 / 6)])
def test_from_keras_hard_sigmoid(version, alpha):
    """recurrent_activation="hard_sigmoid" with Keras 2's or Keras 3's
    gate_alpha computes that Keras's equations (weights big enough that
    the gates saturate)."""
    rng = np.random.default_rng(4)
    D, H = 4, 6
    kernel, rk = rng.standard_normal((D, 4 * H)) * 2, rng.standard_normal((H, 4 * H)) * 2
    bias = rng.standard_normal(4 * H)
    m = clstm.LSTM.from_keras(kernel, rk, bias, recurrent_activation="hard_sigmoid",
                              gate_alpha=alpha)
    assert (m.gate_activation, m.gate_alpha, m.gate_beta) == ("hard_sigmoid", alpha, 0.5)
    x = rng.standard_normal((7, 3, D))
    gate = KERAS_GATES[version + " hard_sigmoid"]
    y_k, h_k, c_k = keras_forward(kernel, rk, bias, x, gate)
    y, (h, c) = m.forward(x, train=False)
    assert_close(y, y_k, np.float64, "y")
    assert_close(c[0], c_k, np.float64, "c")
    z = x.reshape(-1, D) @ kernel + bias
    assert np.mean((gate(z) == 0) | (gate(z) == 1)) > 0.2  # saturated gates are tested
    # the other Keras's hard sigmoid differs
    other = KERAS_GATES[("keras3" if version == "keras2" else "keras2") + " hard_sigmoid"]
    assert not np.allclose(keras_forward(kernel, rk, bias, x, other)[0], y, atol=1e-3)


def test_from_keras_bad_input():
    k, rk = np.zeros((3, 8)), np.zeros((2, 8))
    with pytest.raises(ValueError, match="hard_sigmoid.*gate_alpha=0.2"):
        clstm.LSTM.from_keras(k, rk, recurrent_activation="hard_sigmoid")
    with pytest.raises(ValueError, match="recurrent_activation"):
        clstm.LSTM.from_keras(k, rk, recurrent_activation="relu")
    with pytest.raises(ValueError, match="activation"):
        clstm.LSTM.from_keras(k, rk, activation="relu")
    with pytest.raises(ValueError, match="kernel"):
        clstm.LSTM.from_keras(np.zeros((3, 7)), rk)
    with pytest.raises(ValueError, match="recurrent_kernel"):
        clstm.LSTM.from_keras(k, np.zeros((3, 8)))
    with pytest.raises(ValueError, match="bias"):
        clstm.LSTM.from_keras(k, rk, np.zeros(7))
