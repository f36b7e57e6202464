"""clstm.losses (cross_entropy, mse, softmax; computed in C) against torch
autograd, float64 finite differences and a NumPy softmax; masking by
lengths, last_only, layouts, and bad arguments."""

import re

import numpy as np
import pytest
import reference as ref
from conftest import DTYPES, assert_close

from clstm.losses import cross_entropy, mse, softmax

torch = pytest.importorskip("torch")
F = torch.nn.functional
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}

T, B, O = 5, 4, 3


@pytest.fixture(autouse=True, scope="module")
def _torch_one_thread():
    """torch's OpenMP team and clstm's contend for the cores (see test_model)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)

LENGTHS = {"nolen": None, "len": np.array([5, 2, 1, 4]), "len0": np.array([0, 5, 3, 0])}
KINDS = ("xent", "xent_last", "mse")


def _ends(lengths):
    return np.full(B, T) if lengths is None else lengths


def problem(kind, dtype, seed=0, T=T, B=B, O=O):
    """Canonical logits (T, B, O) and targets: (T, B) ids, (B,) ids, or
    (T, B, O) reals."""
    rng = np.random.default_rng(seed)
    out = (2 * rng.standard_normal((T, B, O))).astype(dtype)
    if kind == "xent":
        tg = rng.integers(0, O, (T, B))
    elif kind == "xent_last":
        tg = rng.integers(0, O, B)
    else:
        tg = rng.standard_normal((T, B, O)).astype(dtype)
    return out, tg


def loss_fn(kind):
    if kind == "mse":
        return mse
    return lambda *a, **k: cross_entropy(*a, last_only=kind == "xent_last", **k)


def torch_loss(kind, out, tg, lengths):
    """(mean loss, d loss / d out) by autograd over the counted steps."""
    o = torch.tensor(out, requires_grad=True)
    Tn, Bn = out.shape[:2]
    if kind == "xent_last":
        bs = [b for b in range(Bn) if _ends(lengths)[b] > 0]
        sel = o[[int(_ends(lengths)[b]) - 1 for b in bs], bs]
        loss = F.cross_entropy(sel, torch.as_tensor(tg[bs]))
    else:
        mask = torch.as_tensor(np.ones((Tn, Bn), bool) if lengths is None
                               else ref.active_steps(lengths, Tn, Bn))
        if kind == "xent":
            loss = F.cross_entropy(o[mask], torch.as_tensor(tg)[mask])
        else:
            loss = F.mse_loss(o[mask], torch.tensor(tg)[mask])
    loss.backward()
    return loss.item(), o.grad.numpy()


# ------------------------------------------------------------------ values
@pytest.mark.parametrize("lengths", LENGTHS, ids=str)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_torch(dtype, kind, lengths):
    lengths = LENGTHS[lengths]
    out, tg = problem(kind, dtype)
    loss, dout = loss_fn(kind)(out, tg, lengths)
    want, dwant = torch_loss(kind, out, tg, lengths)
    assert isinstance(loss, float)
    assert dout.shape == out.shape and dout.dtype == out.dtype
    assert_close(loss, want, dtype, "loss")
    assert_close(dout, dwant, dtype, "dout")


@pytest.mark.parametrize("lengths", LENGTHS, ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_finite_differences(kind, lengths):
    """Central differences in float64 over every element of out, for a sweep
    of step sizes: the error falls like eps**2 and is tiny at the best."""
    lengths = LENGTHS[lengths]
    out, tg = problem(kind, np.float64, seed=1, T=3, B=4, O=3)
    lengths = None if lengths is None else np.minimum(lengths, 3)
    f = loss_fn(kind)
    _, dout = f(out, tg, lengths)
    errs = []
    for eps in (1e-3, 1e-4, 1e-5):
        num = np.empty_like(out)
        for i in np.ndindex(out.shape):
            p, m = out.copy(), out.copy()
            p[i] += eps
            m[i] -= eps
            num[i] = (f(p, tg, lengths, grad=False)[0] - f(m, tg, lengths, grad=False)[0]) / (2 * eps)
        errs.append(np.abs(num - dout).max())
        assert errs[-1] < 1e-5, (eps, errs)
    assert min(errs) < 1e-9, errs


@pytest.mark.parametrize("kind", KINDS)
def test_grad_false(kind):
    out, tg = problem(kind, np.float64)
    loss, dout = loss_fn(kind)(out, tg, LENGTHS["len"], grad=False)
    assert dout is None
    assert loss == loss_fn(kind)(out, tg, LENGTHS["len"])[0]


def test_known_values():
    """Uniform logits: ln O nats; mse of 0 vs 1 is 1; a confident right
    answer costs ~0."""
    assert cross_entropy(np.zeros((2, 3, 5)), np.zeros((2, 3), int))[0] == pytest.approx(np.log(5),
                                                                                      rel=1e-15)
    assert mse(np.zeros((2, 3, 4)), np.ones((2, 3, 4)))[0] == 1.0
    z = np.array([[[40.0, 0.0]]])
    loss, d = cross_entropy(z, np.array([[0]]))
    assert loss < 1e-15 and np.abs(d).max() < 1e-15


# ------------------------------------------------------------------ masking
@pytest.mark.parametrize("kind", ["xent", "mse"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_past_lengths_ignored(kind, dtype):
    """Targets and logits past a length change nothing; dout is 0 there. mse
    targets there may even be NaN (they are never read)."""
    lengths = LENGTHS["len"]
    out, tg = problem(kind, dtype)
    loss, dout = loss_fn(kind)(out, tg, lengths)
    past = ~ref.active_steps(lengths, T, B)
    out2, tg2 = out.copy(), tg.copy()
    out2[past] = 1e6
    if kind == "xent":
        tg2[past] = (tg2[past] + 1) % O  # other valid ids (out-of-range ids are refused)
    else:
        tg2[past] = np.nan
    loss2, dout2 = loss_fn(kind)(out2, tg2, lengths)
    assert loss2 == loss
    np.testing.assert_array_equal(dout2, dout)
    assert not dout[past].any()
    assert dout[~past].all()


@pytest.mark.parametrize("kind", KINDS)
def test_nothing_counted(kind):
    """All lengths 0: loss 0 and dout 0 (documented; torch would give NaN)."""
    out, tg = problem(kind, np.float64)
    loss, dout = loss_fn(kind)(out, tg, np.zeros(B, np.int64))
    assert loss == 0.0 and not dout.any()


@pytest.mark.parametrize("kind", ["xent_last", "mse"])
def test_last_only_places_at_last_step(kind):
    """last_only: only step length-1 of each sequence counts; length 0
    sequences not at all."""
    lengths = LENGTHS["len0"]
    out, _ = problem("xent", np.float64)
    if kind == "xent_last":
        tg = np.array([0, 1, 2, 1])
        loss, dout = cross_entropy(out, tg, lengths, last_only=True)
    else:
        tg = np.random.default_rng(3).standard_normal((B, O))
        loss, dout = mse(out, tg, lengths, last_only=True)
    nz = np.argwhere(np.abs(dout).sum(-1) > 0)
    assert sorted(map(tuple, nz)) == [(2, 2), (4, 1)]  # (t = len - 1, b) for len > 0
    counted = [(4, 1), (2, 2)]
    if kind == "xent_last":
        z = np.array([out[t, b] for t, b in counted])
        lse = np.log(np.exp(z).sum(-1))
        want = np.mean([lse[i] - z[i, tg[b]] for i, (_, b) in enumerate(counted)])
    else:
        want = np.mean([(out[t, b] - tg[b]) ** 2 for t, b in counted])
    assert loss == pytest.approx(want, rel=1e-13)
    # without lengths: the last step of every sequence
    _, dout = loss_fn(kind)(out, tg, last_only=True) if kind == "mse" else \
        cross_entropy(out, tg, last_only=True)
    assert (np.abs(dout).sum(-1) > 0).tolist() == [[False] * B] * (T - 1) + [[True] * B]


# ------------------------------------------------------------------ layouts
def _tg_to_api(kind, tg, layout):
    if kind == "xent_last":
        return tg[0] if layout == "td" else tg
    if kind == "xent":
        return {"tbd": tg, "btd": tg.T, "td": tg[:, 0]}[layout]
    return ref.x_to_api(tg, layout)


def _lastmse(*a, **k):
    return mse(*a, last_only=True, **k)


@pytest.mark.parametrize("layout", ["btd", "td"])
@pytest.mark.parametrize("kind", KINDS + ("mse_last",))
@pytest.mark.parametrize("dtype", DTYPES)
def test_layouts_agree(dtype, kind, layout):
    """batch_first and unbatched give time_first's loss and the transposed /
    squeezed dout."""
    Bl = 1 if layout == "td" else B
    real = "xent" if kind == "mse_last" else kind
    out, tg = problem(real, dtype, seed=4, B=Bl)
    if kind == "mse_last":
        tg = np.random.default_rng(5).standard_normal((Bl, O))
        f = _lastmse
        tg_api = tg[0] if layout == "td" else tg
    else:
        f = loss_fn(kind)
        tg_api = _tg_to_api(kind, tg, layout)
    lengths = np.array([T - 1]) if layout == "td" else LENGTHS["len"]
    loss, dout = f(out, tg, lengths)
    loss2, dout2 = f(ref.x_to_api(out, layout), tg_api, lengths, batch_first=layout == "btd")
    assert loss2 == loss
    assert dout2.shape == ref.x_to_api(out, layout).shape
    np.testing.assert_array_equal(ref.x_from_api(dout2, layout), dout)


def test_input_forms():
    """Non-contiguous, read-only, Fortran, torch tensors and other integer
    target dtypes: the same values; inputs not modified."""
    out, tg = problem("xent", np.float64)
    loss, dout = cross_entropy(out, tg, LENGTHS["len"])
    keep = out.copy()
    big = np.zeros((T, B, 2 * O))
    big[..., ::2] = out
    ro = out.copy()
    ro.setflags(write=False)
    for o, t in ((big[..., ::2], tg), (ro, tg.astype(np.uint8)), (np.asfortranarray(out), tg),
                 (torch.tensor(out), torch.tensor(tg)), (out, tg.astype(np.int32))):
        l2, d2 = cross_entropy(o, t, torch.tensor(LENGTHS["len"]))
        assert l2 == loss
        np.testing.assert_array_equal(d2, dout)
    np.testing.assert_array_equal(out, keep)
    # mse accepts integer targets (converted)
    ti = np.random.default_rng(0).integers(-2, 3, (T, B, O))
    assert mse(out, ti)[0] == mse(out, ti.astype(np.float64))[0]


def test_float32_loss_accumulates_in_double():
    """Many float32 steps: the mean still equals a float64 mean of the same
    float32 logits."""
    out, tg = problem("xent", np.float32, T=2000, B=4, O=3)
    want, _ = cross_entropy(out.astype(np.float64), tg, grad=False)
    got, _ = cross_entropy(out, tg, grad=False)
    assert got == pytest.approx(want, rel=1e-9)


# ------------------------------------------------------------------ softmax
def np_softmax(z, t=1.0):
    z = np.asarray(z, np.float64) / t
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 3, 4), (1, 1, 1, 2)], ids=str)
@pytest.mark.parametrize("temperature", [1.0, 0.25, 3.0, 1e-3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax(dtype, temperature, shape):
    z = (3 * np.random.default_rng(0).standard_normal(shape)).astype(dtype)
    keep = z.copy()
    p = softmax(z, temperature)
    assert p.shape == z.shape and p.dtype == z.dtype
    assert_close(p, np_softmax(z, temperature), dtype, "p")
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=0, atol=1e-6 if dtype == np.float32 else 1e-14)
    np.testing.assert_array_equal(z, keep)


@pytest.mark.parametrize("dtype", DTYPES)
def test_softmax_big_logits(dtype):
    big = 1e30 if dtype == np.float32 else 1e300
    z = np.array([[big, 0.0, -big], [1000.0, 999.0, -1000.0], [-big, -big, -big],
                  [88.0, 89.0, 90.0]], dtype)
    p = softmax(z)
    assert np.isfinite(p).all()
    np.testing.assert_allclose(p, np_softmax(z), rtol=1e-6, atol=1e-30)
    assert p[0].tolist() == [1.0, 0.0, 0.0]
    np.testing.assert_allclose(p[2], 1 / 3, rtol=1e-6)
    p = softmax(z, temperature=1e-3)  # z / t overflows the dtype but not double
    assert np.isfinite(p).all() and p[1].tolist() == [1.0, 0.0, 0.0]


def test_softmax_nan_row_and_forms():
    z = np.array([[0.0, np.nan], [1.0, 2.0]])
    p = softmax(z)
    assert np.isnan(p[0]).all() and np.isfinite(p[1]).all()
    z = np.random.default_rng(1).standard_normal((4, 6))
    np.testing.assert_array_equal(softmax(z[:, ::2]), softmax(np.ascontiguousarray(z[:, ::2])))
    np.testing.assert_array_equal(softmax(torch.tensor(z)), softmax(z))
    np.testing.assert_array_equal(softmax(z, 2), softmax(z / 2))


# ------------------------------------------------------------------ errors
def _call(kind, out, tg, *a, **k):
    return loss_fn(kind)(out, tg, *a, **k)


@pytest.mark.parametrize(
    "fn, args, kwargs, exc, match",
    [
        (cross_entropy, (np.zeros((4, 2, 3), np.int64), np.zeros((4, 2), int)), {}, TypeError,
         "out: expected a float32 or float64 array, got dtype int64"),
        (mse, (np.zeros((4, 2, 3), np.float16), np.zeros((4, 2, 3))), {}, TypeError,
         "out: expected a float32 or float64 array, got dtype float16"),
        (cross_entropy, (np.zeros(3), np.zeros(3, int)), {}, ValueError,
         r"out: expected shape \(T, B, O\) or \(T, O\), got \(3,\)"),
        (cross_entropy, (np.zeros((1, 2, 3, 4)), np.zeros((1, 2), int)),
         dict(batch_first=True), ValueError, r"out: expected shape \(B, T, O\) or \(T, O\)"),
        (cross_entropy, (np.zeros((4, 2, 3)), np.zeros((4, 2))), {}, TypeError,
         "targets: expected integer class ids, got dtype float64"),
        (cross_entropy, (np.zeros((4, 2, 3)), np.full((4, 2), 3)), {}, ValueError,
         re.escape("targets: expected class ids in [0, 3), got values in [3, 3]")),
        (cross_entropy, (np.zeros((4, 2, 3)), np.array([[0, -1]] * 4)), {}, ValueError,
         re.escape("targets: expected class ids in [0, 3), got values in [-1, 0]")),
        (cross_entropy, (np.zeros((4, 2, 3)), np.zeros((2, 4), int)), {}, ValueError,
         re.escape("targets: expected shape (4, 2), got (2, 4)")),
        (cross_entropy, (np.zeros((2, 4, 3)), np.zeros((4, 2), int)), dict(batch_first=True),
         ValueError, re.escape("targets: expected shape (2, 4), got (4, 2)")),
        (cross_entropy, (np.zeros((4, 3)), np.zeros((4, 1), int)), {}, ValueError,
         re.escape("targets: expected shape (4,), got (4, 1)")),
        (cross_entropy, (np.zeros((4, 2, 3)), np.zeros((4, 2), int)), dict(last_only=True),
         ValueError, re.escape("targets: with last_only expected shape (2,) (one per "
                               "sequence), got (4, 2)")),
        (cross_entropy, (np.zeros((4, 3)), np.zeros(1, int)), dict(last_only=True),
         ValueError, re.escape("targets: with last_only expected shape () (one per")),
        (mse, (np.zeros((4, 2, 3)), np.zeros((4, 2, 2))), {}, ValueError,
         re.escape("targets: expected shape (4, 2, 3), got (4, 2, 2)")),
        (mse, (np.zeros((4, 2, 3)), np.zeros((2, 2))), dict(last_only=True), ValueError,
         re.escape("targets: with last_only expected shape (2, 3) (one per sequence)")),
        (mse, (np.zeros((4, 2, 3)), np.zeros((4, 2, 3), complex)), {}, TypeError,
         "targets: expected real numbers, got dtype complex128"),
        (mse, (np.zeros((4, 2, 3)), np.full((4, 2, 3), "a")), {}, TypeError,
         "targets: expected real numbers"),
        (cross_entropy, (np.zeros((4, 2, 3)), np.zeros((4, 2), int), np.array([1, 2, 3])), {},
         ValueError, re.escape("lengths: expected (2,) integers, got (3,) int64")),
        (cross_entropy, (np.zeros((4, 2, 3)), np.zeros((4, 2), int), np.array([1.0, 2.0])), {},
         ValueError, re.escape("lengths: expected (2,) integers, got (2,) float64")),
        (mse, (np.zeros((4, 2, 3)), np.zeros((4, 2, 3)), np.array([1, 5])), {}, ValueError,
         re.escape("lengths: expected 0 <= length <= T (4)")),
        (mse, (np.zeros((4, 2, 3)), np.zeros((4, 2, 3)), np.array([-1, 2])), {}, ValueError,
         re.escape("lengths: expected 0 <= length <= T (4)")),
        (softmax, (np.zeros(3),), dict(temperature=0), ValueError,
         r"temperature: expected a finite number > 0, got 0"),
        (softmax, (np.zeros(3),), dict(temperature=-1.5), ValueError, r"temperature: .*-1\.5"),
        (softmax, (np.zeros(3),), dict(temperature=float("inf")), ValueError, "temperature: "),
        (softmax, (np.zeros(3),), dict(temperature=float("nan")), ValueError, "temperature: "),
        (softmax, (np.zeros(3, np.int32),), {}, TypeError,
         "z: expected a float32 or float64 array, got dtype int32"),
        (softmax, (np.zeros((2, 0)),), {}, ValueError, r"z: expected a non-empty array"),
        (softmax, (np.float64(1.0),), {}, ValueError, r"z: expected a non-empty array"),
    ],
    ids=lambda v: v.__name__ if callable(v) else v.__name__ if isinstance(v, type) else "",
)
def test_errors(fn, args, kwargs, exc, match):
    with pytest.raises(exc, match="^" + match):
        fn(*args, **kwargs)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("eps", [0.1, 0.5, 1.0])
def test_label_smoothing_matches_torch(dtype, eps):
    rng = np.random.default_rng(7)
    T, B, O = 5, 4, 6
    out = rng.standard_normal((T, B, O)).astype(dtype)
    tg = rng.integers(0, O, (T, B))
    lengths = np.array([5, 2, 0, 3])
    o = torch.tensor(out, requires_grad=True)
    mask = torch.as_tensor(np.arange(T)[:, None] < lengths[None, :])
    want = F.cross_entropy(o[mask], torch.as_tensor(tg)[mask], label_smoothing=eps)
    want.backward()
    loss, dout = cross_entropy(out, tg, lengths, label_smoothing=eps)
    tol = 1e-12 if dtype == np.float64 else 1e-6
    assert loss == pytest.approx(float(want.detach()), rel=tol)
    np.testing.assert_allclose(dout, o.grad.numpy(), rtol=0, atol=tol)


def test_label_smoothing_zero_is_the_plain_loss_and_bad_values_are_refused():
    rng = np.random.default_rng(8)
    out = rng.standard_normal((3, 2, 4)).astype(np.float32)
    tg = rng.integers(0, 4, (3, 2))
    plain, d0 = cross_entropy(out, tg)
    zero, d1 = cross_entropy(out, tg, label_smoothing=0.0)
    assert plain == zero and np.array_equal(d0, d1)
    for eps in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="label_smoothing"):
            cross_entropy(out, tg, label_smoothing=eps)
