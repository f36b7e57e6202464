"""clstm.optim (C kernels) against torch.optim, step by step in float64 and
float32, and bad settings."""
import numpy as np
import pytest

import clstm
from clstm.optim import SGD, Adam, AdamW
from conftest import assert_close

torch = pytest.importorskip("torch")

CASES = [
    (SGD, torch.optim.SGD, dict(lr=0.1)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, weight_decay=0.01)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.9, dampening=0.3)),
    (SGD, torch.optim.SGD, dict(lr=0.05, momentum=0.8, nesterov=True, weight_decay=0.1)),
    (Adam, torch.optim.Adam, dict(lr=0.01)),
    (Adam, torch.optim.Adam, dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    (AdamW, torch.optim.AdamW, dict(lr=0.02)),
    (AdamW, torch.optim.AdamW, dict(lr=0.02, weight_decay=0.3, betas=(0.5, 0.9))),
]


@pytest.mark.parametrize("ours, theirs, kw", CASES, ids=lambda v: str(v) if isinstance(v, dict) else "")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_steps_match_torch(ours, theirs, kw, dtype):
    """Five steps with changing gradients: parameters and optimizer state
    follow torch.optim to the dtype's tolerance. Two (params, grads) pairs
    of different sizes share one optimizer."""
    rng = np.random.default_rng(0)
    ps = [rng.standard_normal(n).astype(dtype) for n in (7, 33)]
    gs = [np.zeros_like(p) for p in ps]
    tps = [torch.tensor(p.copy(), requires_grad=True) for p in ps]
    opt, topt = ours(list(zip(ps, gs)), **kw), theirs(tps, **kw)
    for _ in range(5):
        for g, tp in zip(gs, tps):
            g[:] = rng.standard_normal(g.size)
            tp.grad = torch.tensor(g.copy())
        opt.step()
        topt.step()
        for p, tp in zip(ps, tps):
            assert_close(p, tp.detach().numpy(), dtype, "params")


def test_optimizer_trains_an_lstm():
    """Adam over an LSTM's flat blocks reduces a loss (the blocks are views)."""
    m = clstm.LSTM(2, 8, seed=0, dtype=np.float64)
    x = np.random.default_rng(1).standard_normal((10, 4, 2))
    target = np.roll(x[..., :1], 1, axis=0)
    opt = Adam(m, lr=0.02)
    losses = []
    for _ in range(60):
        y, _ = m.forward(x)
        err = y[..., :1] - target
        losses.append(float((err ** 2).mean()))
        dy = np.zeros_like(y)
        dy[..., :1] = 2 * err / err.size
        m.zero_grad()
        m.backward(dy)
        opt.step()
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("make, name", [
    (lambda pr: SGD(pr, lr=-1), "lr"), (lambda pr: SGD(pr, momentum=float("nan")), "momentum"),
    (lambda pr: SGD(pr, dampening=1.0), "dampening"), (lambda pr: SGD(pr, nesterov=True), "nesterov"),
    (lambda pr: Adam(pr, betas=(1.0, 0.9)), "betas[0]"), (lambda pr: Adam(pr, eps=0), "eps"),
    (lambda pr: AdamW(pr, weight_decay=-0.1), "weight_decay"),
])
def test_bad_settings(make, name):
    p = np.zeros(3)
    with pytest.raises(ValueError, match=name.replace("[", r"\[").replace("]", r"\]")):
        make([(p, np.zeros(3))])


def test_bad_params():
    with pytest.raises(TypeError, match="params"):
        SGD([(np.zeros((2, 2)), np.zeros((2, 2)))])
    with pytest.raises(ValueError, match="differ"):
        SGD([(np.zeros(3), np.zeros(4))])
    with pytest.raises(ValueError, match="differ"):
        Adam([(np.zeros(3), np.zeros(3, np.float32))])
    ro = np.zeros(3)
    ro.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        SGD([(ro, np.zeros(3))])
    with pytest.raises(ValueError, match="at least one"):
        SGD([])
