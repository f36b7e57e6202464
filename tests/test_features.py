"""Bidirectional, projection and lengths: properties that hold whatever the
values, checked without the reference (which test_forward and test_backward
compare against, and test_torch compares with torch)."""

import numpy as np
import pytest
import reference as ref
from conftest import (
    BACKENDS,
    DTYPES,
    FEATURE_CASES,
    REVERSE_CASES,
    ZERO_LENGTH_CASES,
    Case,
    assert_close,
    canonical_outputs,
    forward_backward,
    make_problem,
)

import clstm

LENGTH_CASES = tuple(c for c in FEATURE_CASES + ZERO_LENGTH_CASES + REVERSE_CASES[:5]
                     if c.lengths is not None)


@pytest.mark.parametrize("case", FEATURE_CASES + ZERO_LENGTH_CASES, ids=str)
def test_attributes_and_parameter_shapes(case):
    lstm = case.model(np.float32)
    assert lstm.bidirectional is (case.N == 2) and lstm.num_directions == case.N
    assert lstm.proj_size == case.P and lstm.dropout == 0.0
    shapes = ref.param_shapes(case.D, case.H, case.L, case.N, case.P)
    named = lstm.named_parameters()
    assert list(named.keys()) == list(shapes)
    assert {k: v.shape for k, v in named.items()} == shapes
    assert lstm.flat_parameters.size == ref.num_params(case.D, case.H, case.L, case.N, case.P)
    for name, v in named.items():  # torch's init, every tensor
        assert np.all(np.abs(v) <= 1 / np.sqrt(case.H)) and np.ptp(v) > 0, name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LENGTH_CASES, ids=str)
def test_padding_is_never_read(case, dtype, backend):
    """NaN, inf or random values past the lengths: bitwise the same outputs
    and gradients, dx exactly 0 there, in training and inference."""
    lstm = case.model(dtype, backend)
    runs = [
        forward_backward(lstm, make_problem(case, seed=81, pad=pad)) for pad in (np.nan, np.inf)
    ]
    prob = make_problem(case, seed=81)
    prob.x = np.where(
        np.isnan(prob.x), np.random.default_rng(0).standard_normal(prob.x.shape), prob.x
    )
    runs.append(forward_backward(lstm, prob))
    pad = ~ref.active_steps(prob.lengths, case.T, case.B)
    for run in runs:
        for a in run:
            assert np.all(np.isfinite(a))
        y, _, _ = canonical_outputs(run[0], run[1], run[2], case.layout)
        assert not np.any(y[pad])
        assert not np.any(ref.x_from_api(run[3], case.layout)[pad])
        for a, b in zip(run, runs[0]):
            np.testing.assert_array_equal(a, b)
    nan_prob = make_problem(case, seed=81)
    y_inf, _ = lstm.forward(
        nan_prob.api(nan_prob.x, dtype=dtype),
        nan_prob.state("given", dtype=dtype),
        train=False,
        **case.run_kwargs(),
    )
    np.testing.assert_array_equal(y_inf, runs[0][0])


def test_full_lengths_equal_no_lengths():
    case = Case(4, 3, 3, 5, 2, N=2, P=3)
    lstm = case.model()
    prob = make_problem(case, seed=82)
    without = forward_backward(lstm, prob)
    with_full = forward_backward(lstm, prob, lengths=[case.T] * case.B)
    for a, b in zip(with_full, without):
        assert_close(a, b, np.float64)


@pytest.mark.parametrize(
    "form",
    ["list", "tuple", "int32", "uint8", "uint64", "readonly", "noncontig", "int64_scalars"],
)
def test_lengths_forms(form):
    """Any integer array-like of shape (B,) is accepted, and left unchanged."""
    case = FEATURE_CASES[5]
    lstm = case.model()
    prob = make_problem(case, seed=83)
    x = prob.api(prob.x)
    want = lstm.forward(x, lengths=np.array(case.lengths))
    base = np.array(case.lengths)
    lengths = {
        "list": list(case.lengths),
        "tuple": tuple(case.lengths),
        "int32": base.astype(np.int32),
        "uint8": base.astype(np.uint8),
        "uint64": base.astype(np.uint64),
        "readonly": np.require(base, requirements="C"),
        "noncontig": np.repeat(base, 2)[::2],
        "int64_scalars": [np.int64(v) for v in case.lengths],
    }[form]
    if form == "readonly":
        lengths.setflags(write=False)
    before = np.array(lengths, copy=True)
    got = lstm.forward(x, lengths=lengths)
    for a, b in zip((got[0], *got[1]), (want[0], *want[1])):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(np.asarray(lengths), before)


def test_lengths_from_torch_tensor():
    torch = pytest.importorskip("torch")
    case = FEATURE_CASES[3]
    lstm = case.model()
    x = make_problem(case, seed=84).x
    want = lstm.forward(x, lengths=np.array(case.lengths))[0]
    np.testing.assert_array_equal(lstm.forward(x, lengths=torch.tensor(case.lengths))[0], want)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", LENGTH_CASES, ids=str)
def test_each_sequence_as_if_alone(case, dtype):
    """A sequence of a padded batch gives what it gives alone, cut to its
    length and unbatched without lengths: y over its length, its final
    states, dx, dh0 and dc0."""
    lstm = case.model(dtype, seed=85)
    prob = make_problem(case, seed=86)
    y, h, c, dx, dh0, dc0, _ = forward_backward(lstm, prob)
    y, h, c = canonical_outputs(y, h, c, case.layout)
    dx, dh0, dc0 = canonical_outputs(dx, dh0, dc0, case.layout)
    alone = clstm.LSTM(case.D, case.H, case.L, dtype=dtype, **case.options())
    alone.load_state_dict(lstm.state_dict())
    for b, n in enumerate(prob.lengths):
        if n == 0:
            continue
        ya, (ha, ca) = alone.forward(prob.x[:n, b], (prob.h0[:, b], prob.c0[:, b]))
        dxa, (dh0a, dc0a) = alone.backward(prob.wy[:n, b], (prob.wh[:, b], prob.wc[:, b]))
        for name, got, want in (
            ("y", y[:n, b], ya),
            ("h", h[:, b], ha),
            ("c", c[:, b], ca),
            ("dx", dx[:n, b], dxa),
            ("dh0", dh0[:, b], dh0a),
            ("dc0", dc0[:, b], dc0a),
        ):
            assert_close(got, want, dtype, f"{name}[b={b}]")


def reversed_within_lengths(a, lengths):
    """a (T, B, .) with each sequence's first lengths[b] steps reversed."""
    out = a.copy()
    for b, n in enumerate(lengths):
        out[:n, b] = a[:n, b][::-1]
    return out


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("P", [0, 2])
def test_reverse_direction_is_forward_on_reversed_sequences(P, backend):
    """Layer 0 of a bidirectional model: its forward half is a
    unidirectional model with the forward weights, its reverse half one with
    the _reverse weights run on each sequence reversed within its length,
    and h, c are indexed layer * 2 + direction."""
    case = Case(5, 4, 3, 4, 1, N=2, P=P, lengths=(5, 2, 3, 1))
    bi = case.model(np.float64, backend, seed=87)
    prob = make_problem(case, seed=88, pad=0.0)
    y, (h, c) = bi.forward(prob.x, (prob.h0, prob.c0), lengths=prob.lengths)
    R = case.R
    params = bi.named_parameters()
    for d, sfx in enumerate(("", "_reverse")):
        uni = clstm.LSTM(case.D, case.H, dtype=np.float64, proj_size=P, backend=backend)
        uni.load_state_dict({k: params[k + sfx] for k in uni.named_parameters().keys()})
        x = prob.x if d == 0 else reversed_within_lengths(prob.x, prob.lengths)
        yd, (hd, cd) = uni.forward(
            x, (prob.h0[d : d + 1], prob.c0[d : d + 1]), lengths=prob.lengths
        )
        if d == 1:
            yd = reversed_within_lengths(yd, prob.lengths)
        assert_close(y[..., d * R : (d + 1) * R], yd, np.float64, f"y, direction {d}")
        assert_close(h[d : d + 1], hd, np.float64, f"h, direction {d}")
        assert_close(c[d : d + 1], cd, np.float64, f"c, direction {d}")


def test_projection_output_is_projected_hidden():
    """With P, y = W_hr (o * tanh(c)): h and y have P features while c keeps
    H; with W_hr = [I 0] the model is the unprojected one truncated, when
    W_hh only reads those P units."""
    D, H, P = 3, 5, 2
    proj = clstm.LSTM(D, H, proj_size=P, dtype=np.float64, seed=89)
    plain = clstm.LSTM(D, H, dtype=np.float64, seed=90)
    pp, qp = proj.named_parameters(), plain.named_parameters()
    pp["weight_hr_l0"][:] = np.eye(P, H)
    for k in ("weight_ih_l0", "bias_ih_l0", "bias_hh_l0"):
        qp[k][:] = pp[k]
    qp["weight_hh_l0"][:] = 0
    qp["weight_hh_l0"][:, :P] = pp["weight_hh_l0"]
    x = make_problem(Case(4, 2, D, H, 1), seed=91).x
    y, (h, c) = proj.forward(x)
    yq, (hq, cq) = plain.forward(x)
    assert y.shape == (4, 2, P) and h.shape == (1, 2, P) and c.shape == (1, 2, H)
    assert_close(y, yq[..., :P], np.float64, "y")
    assert_close(h, hq[..., :P], np.float64, "h")
    assert_close(c, cq, np.float64, "c")
