"""Property-based tests (hypothesis) of the Python API: clstm.LSTM (forward in
inference and training, backward, streaming, lengths, states, batch_first,
unbatched, bidirectional, proj_size), clstm.Model and clstm.losses.

The property, for every drawn call: it either works and matches the NumPy
float64 reference (tests/reference.py, through conftest's helpers) within
conftest.tolerance, or raises TypeError / ValueError / MemoryError /
OverflowError with a message that names the argument. It never crashes or
hangs, and it never modifies its inputs.

Draws: small shapes (empty dimensions too), float32 / float64 and wrong
dtypes, strides (non-contiguous, negative, permuted, Fortran, zero-stride
broadcasts), read-only arrays, nested lists, NaN / Inf (the propagation
include/clstm.h documents), and sizes that cannot be allocated (zero-stride
views whose dense copy is petabytes, constructor sizes of 2**40 and more).

Reproducible: every test runs under derandomize=True (a fixed seed per test)
with a deadline per example and no example database."""

import copy
import types

import hypothesis.extra.numpy as hnp
import numpy as np
import pytest
import reference as ref
from conftest import (
    Case,
    assert_close,
    assert_message,
    assert_outputs,
    expected_backward,
    expected_forward,
    params64,
    present,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import clstm
from clstm.losses import cross_entropy, mse, softmax

# NaN and Inf are drawn on purpose: the reference's NumPy warns about them.
pytestmark = pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning",
                                        "ignore:overflow encountered:RuntimeWarning")

CLEAR = (TypeError, ValueError, MemoryError, OverflowError)
FLOATS = (np.float32, np.float64)
BACKENDS = ("default", "naive") + (("blas",) if clstm.has_blas() else ())
# Forms of an array argument that keep its values (as the model's dtype sees them).
SAME_VALUES = ("contig", "readonly", "noncontig", "fortran", "negative", "permuted", "list")
# ... and forms that change the values (the expected result is computed from
# the array as passed): another precision, or a zero-stride broadcast.
FORMS = SAME_VALUES + ("other_float", "float16", "longdouble", "broadcast")
# Dtypes that no real-valued argument accepts.
BAD_DTYPES = (np.int8, np.int32, np.int64, np.uint8, np.uint64, np.bool_, np.complex64,
              np.complex128, object, "U2", "datetime64[s]")
# Bytes no machine here can allocate (far above RAM + swap: malloc fails at once).
HUGE_BYTES = 2**46


def props(max_examples):
    """The settings of every test here: reproducible, a deadline per example,
    no database; max_examples keeps the whole file within ~60 s on 2 cores."""
    return settings(max_examples=max_examples, derandomize=True, deadline=3000, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


# ------------------------------------------------------------------ helpers
def form(arr, how, dtype):
    """arr (canonical values) presented as `how` in dtype (see FORMS)."""
    a = np.asarray(arr, dtype=dtype)
    if how == "list":
        return a.tolist()
    if a.ndim == 0 and how != "readonly":
        return a.copy()
    if how == "negative":
        flip = (slice(None, None, -1),) * a.ndim
        return np.ascontiguousarray(a[flip])[flip]
    if how == "permuted":  # strides in another order than C or Fortran
        return np.moveaxis(np.ascontiguousarray(np.moveaxis(a, 0, -1)), -1, 0)
    if how == "broadcast":  # zero stride along the last axis, read-only
        return np.broadcast_to(a[..., :1], a.shape)
    return present(a, how, dtype)


def as_array(v):
    return None if v is None else np.asarray(v)


def snapshot(*objs):
    return copy.deepcopy(objs)


def assert_unchanged(before, objs):
    """Every input still holds what it held before the call (NaN == NaN)."""
    for b, a in zip(before, objs):
        if b is None or isinstance(b, (int, float)):
            assert a == b or (a != a and b != b)
        elif isinstance(b, (tuple, list)) and not isinstance(b, np.ndarray) and (
                not b or not isinstance(b[0], (int, float))):
            assert_unchanged(b, a)
        else:
            assert np.asarray(a).dtype == np.asarray(b).dtype
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg="input modified")


def assert_clear(excinfo, names):
    """A clear exception: one of CLEAR, whose message names one of `names`."""
    assert isinstance(excinfo.value, CLEAR), repr(excinfo.value)
    assert_message(excinfo, names)


def assert_close_ieee(actual, expected, dtype, what=""):
    """assert_close where NaN and +-Inf must sit at the same places, and the
    finite values agree within the dtype's tolerance (assert_close's atol
    scales with max |expected|, so an Inf there would pass anything)."""
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, what
    np.testing.assert_array_equal(np.isnan(a), np.isnan(e), err_msg="NaN at " + what)
    np.testing.assert_array_equal(np.isposinf(a), np.isposinf(e), err_msg="+inf at " + what)
    np.testing.assert_array_equal(np.isneginf(a), np.isneginf(e), err_msg="-inf at " + what)
    fin = np.isfinite(e)
    assert_close(a[fin], e[fin], dtype, what)


def reals(data, shape, lo=-2.0, hi=2.0):
    """A float64 array of the given shape with values drawn in [lo, hi]."""
    return data.draw(hnp.arrays(np.float64, shape, elements=st.floats(lo, hi)))


@st.composite
def cases(draw, max_T=5, max_B=4, bidirectional=True, lengths=True, layouts=("tbd", "btd", "td")):
    """A Case (tests/conftest.py): sizes, layout, features, lengths."""
    D, H, L = draw(st.integers(1, 4)), draw(st.integers(1, 5)), draw(st.integers(1, 3))
    N = draw(st.sampled_from((1, 2))) if bidirectional else 1
    P = draw(st.integers(0, H - 1))
    layout = draw(st.sampled_from(layouts))
    T = draw(st.integers(1, max_T))
    B = 1 if layout == "td" else draw(st.integers(1, max_B))
    lens = None
    if lengths and draw(st.booleans()):
        lens = tuple(draw(st.lists(st.integers(0, T), min_size=B, max_size=B)))
    return Case(T, B, D, H, L, layout, N=N, P=P, lengths=lens)


def lengths_arg(data, lens):
    """lens (a tuple or None) as the caller may pass it."""
    if lens is None:
        return None
    how = data.draw(st.sampled_from(("int64", "int32", "uint16", "uint64", "list", "negative")))
    if how == "list":
        return list(lens)
    if how == "negative":
        return np.array(lens[::-1], np.int64)[::-1]
    return np.array(lens, dtype=how)


def make_lstm(case, dtype, backend, seed, **kw):
    opts = dict(bidirectional=case.N == 2, proj_size=case.P, dtype=dtype, seed=seed,
                batch_first=case.batch_first, backend=backend)
    return clstm.LSTM(case.D, case.H, case.L, **{**opts, **kw})


def padded(x, lens, pad):
    """x with `pad` at every step past each sequence's length."""
    x = x.copy()
    if lens is not None:
        x[~ref.active_steps(np.array(lens), x.shape[0], x.shape[1])] = pad
    return x


def state_arg(data, case, dtype, forms=FORMS):
    """None or (h0, c0) in the API layout (either may be None), each in a
    drawn form."""
    mode = data.draw(st.sampled_from(("none", "given", "h0_only", "c0_only")))
    if mode == "none":
        return None
    NL = case.N * case.L
    h = reals(data, (NL, case.B, case.R)) if mode in ("given", "h0_only") else None
    c = reals(data, (NL, case.B, case.H)) if mode in ("given", "c0_only") else None
    return tuple(None if s is None else form(ref.state_to_api(s, case.layout),
                                             data.draw(st.sampled_from(forms)), dtype)
                 for s in (h, c))


def expected_state(state):
    return None if state is None else tuple(as_array(s) for s in state)


# ------------------------------------------------------------------ LSTM: values
@props(400)
@given(data=st.data())
def test_lstm_forward_backward_match_reference(data):
    """Any sizes, layout, lengths (padding NaN / Inf), state, backend, dtype
    and argument forms: forward (both modes) and backward match the float64
    reference, outputs are fresh arrays of the model's dtype, inputs are
    untouched."""
    case = data.draw(cases())
    dtype = data.draw(st.sampled_from(FLOATS))
    train = data.draw(st.booleans())
    # dropout has no effect in inference: the reference (without masks) holds
    dropout = 0.5 if not train and case.L > 1 and data.draw(st.booleans()) else 0.0
    lstm = make_lstm(case, dtype, data.draw(st.sampled_from(BACKENDS)),
                     data.draw(st.integers(0, 2**64 - 1)), dropout=dropout)
    pad = data.draw(st.sampled_from((np.nan, np.inf, -np.inf, 0.0)))
    x = form(ref.x_to_api(padded(reals(data, (case.T, case.B, case.D)), case.lengths, pad),
                          case.layout), data.draw(st.sampled_from(FORMS)), dtype)
    state = state_arg(data, case, dtype)
    lengths = lengths_arg(data, case.lengths)
    before = snapshot(x, state, lengths)
    lstm.zero_grad()
    y, (h, c) = lstm.forward(x, state, lengths=lengths, train=train)
    assert_unchanged(before, (x, state, lengths))
    want = expected_forward(lstm, as_array(x), expected_state(state), case.layout,
                            None if lengths is None else np.asarray(lengths))
    assert_outputs((y, (h, c)), want[:3], case.layout, dtype)
    for out in (y, h, c):
        for arg in (x, *(state or ())):
            assert not isinstance(arg, np.ndarray) or not np.shares_memory(out, arg)
    if not train:
        return
    NR = case.N * case.R
    dy = None if data.draw(st.booleans()) else form(
        ref.x_to_api(reals(data, (case.T, case.B, NR)), case.layout),
        data.draw(st.sampled_from(FORMS)), dtype)
    dstate = None if data.draw(st.booleans()) else state_arg(data, case, dtype)
    before = snapshot(dy, dstate)
    dx, (dh0, dc0) = lstm.backward(dy, dstate)
    assert_unchanged(before, (dy, dstate))
    dx_w, dh_w, dc_w, grads = expected_backward(lstm, want[3], as_array(dy),
                                                expected_state(dstate), case.layout)
    assert_outputs((dx, (dh0, dc0)), (dx_w, dh_w, dc_w), case.layout, dtype,
                   ("dx", "dh0", "dc0"))
    for name, g in lstm.named_grads().items():
        assert_close(g, grads[name], dtype, name)


@props(150)
@given(data=st.data())
def test_streaming_matches_reference(data):
    """LSTMState: step() and forward() on chunks (with lengths per chunk),
    starting from a state written into st.h / st.c, give the reference run
    chunk after chunk (each chunk starting from the reference's final state)."""
    case = data.draw(cases(max_T=6, bidirectional=False, lengths=False,
                           layouts=("tbd", "btd")))
    dtype = data.draw(st.sampled_from(FLOATS))
    lstm = make_lstm(case, dtype, data.draw(st.sampled_from(BACKENDS)), 7)
    T, B = case.T, case.B
    x = reals(data, (T, B, case.D))
    st_ = lstm.initial_state(B)
    h, c = reals(data, st_.h.shape), reals(data, st_.c.shape)
    st_.h[...], st_.c[...] = h, c
    p = params64(lstm)
    h, c = st_.h.astype(np.float64), st_.c.astype(np.float64)
    t = 0
    while t < T:
        n = data.draw(st.integers(1, T - t))
        chunk = x[t:t + n]
        if n == 1 and data.draw(st.booleans()):
            xt = form(chunk[0], data.draw(st.sampled_from(FORMS)), dtype)
            before = snapshot(xt)
            yt, st2 = lstm.step(xt, st_)
            assert_unchanged(before, (xt,))
            lens, y = None, yt[None]
            xin = as_array(xt)[None]
        else:
            lens = None
            if data.draw(st.booleans()):
                lens = np.array(data.draw(st.lists(st.integers(0, n), min_size=B, max_size=B)))
            xin = form(ref.x_to_api(chunk, case.layout), data.draw(st.sampled_from(FORMS)),
                       dtype)
            before = snapshot(xin)
            y, st2 = lstm.forward(xin, st_, lengths=lens, train=data.draw(st.booleans()))
            assert_unchanged(before, (xin,))
            y, xin = ref.x_from_api(y, case.layout), ref.x_from_api(as_array(xin), case.layout)
        assert st2 is st_
        y_w, h, c, _ = ref.forward(p, xin.astype(dtype).astype(np.float64), h, c, lens)
        assert_close(y, y_w, dtype, "y at t=%d" % t)
        assert_close(st_.h, h, dtype, "h at t=%d" % t)
        assert_close(st_.c, c, dtype, "c at t=%d" % t)
        t += n


# ------------------------------------------------------------------ LSTM: bad input
def bad_array(data, shape, dtype):
    """A wrong value for an argument that must have exactly `shape`: a
    wrong dtype (any shape), or a wrong shape (a dimension less or more, one
    dimension 0 or larger) in any form."""
    if data.draw(st.booleans()):
        return bad_dtype(data, shape)
    ndim = len(shape)
    how = data.draw(st.sampled_from(("ndim-", "ndim+", "empty", "size")))
    k = data.draw(st.integers(0, ndim - 1))
    if how == "ndim-":
        s = shape[1:]
    elif how == "ndim+":
        s = shape + (1,)
    elif how == "empty":
        s = shape[:k] + (0,) + shape[k + 1:]
    else:
        s = shape[:k] + (shape[k] + data.draw(st.integers(1, 3)),) + shape[k + 1:]
    return form(np.zeros(s), data.draw(st.sampled_from(FORMS)), dtype)


def bad_dtype(data, shape):
    """An array of `shape` in a dtype no real-valued argument accepts (or
    a nested list that NumPy reads as one)."""
    a = np.zeros(shape, dtype=data.draw(st.sampled_from(BAD_DTYPES)))
    return a.tolist() if a.dtype.kind in "biuc" and data.draw(st.booleans()) else a


def bad_x(data, D, dtype):
    """An x no LSTM of input_size D accepts: a wrong dtype, 1 or 4
    dimensions, T = 0, B = 0, or a last dimension other than D (0 too)."""
    if data.draw(st.booleans()):
        return bad_dtype(data, (2, 1, D))
    shape = data.draw(st.sampled_from(((D,), (1, 2, 1, D), (0, 2, D), (2, 0, D), (0, D),
                                       (2, 1, 0), (2, 0), (2, 1, D + 1), (3, D + 2))))
    return form(np.zeros(shape), data.draw(st.sampled_from(FORMS)), dtype)


@props(400)
@given(data=st.data())
def test_lstm_bad_arguments_raise_clearly(data):
    """One argument of forward or backward broken (dtype, ndim, an empty or a
    wrong dimension, lengths out of range or not integers, a non-array):
    TypeError or ValueError naming it, inputs untouched; a rejected call
    leaves the model and a pending training forward as they were (the
    following backward still matches the reference)."""
    case = data.draw(cases(max_T=4, max_B=3))
    dtype = data.draw(st.sampled_from(FLOATS))
    lstm = make_lstm(case, dtype, "default", 3)
    params = lstm.flat_parameters.copy()
    x = ref.x_to_api(padded(reals(data, (case.T, case.B, case.D)), case.lengths, np.nan),
                     case.layout).astype(dtype)
    lengths = None if case.lengths is None else np.array(case.lengths)
    y, _ = lstm.forward(x, lengths=lengths, train=True)
    NL = case.N * case.L
    target = data.draw(st.sampled_from(("x", "state[0]", "state[1]", "lengths", "dy",
                                        "dstate[0]", "dstate[1]", "state", "dstate")))
    fwd = dict(x=x, state=None, lengths=lengths)
    bwd = dict(dy=np.zeros_like(y), dstate=None)
    hs, cs = ref.state_to_api(np.zeros((NL, case.B, case.R)), case.layout), \
        ref.state_to_api(np.zeros((NL, case.B, case.H)), case.layout)
    shapes = {"state[0]": hs.shape, "state[1]": cs.shape, "dy": y.shape,
              "dstate[0]": hs.shape, "dstate[1]": cs.shape}
    names = [target]
    if target in ("state", "dstate"):
        bad = data.draw(st.sampled_from((np.zeros(3), (hs,), (hs, cs, cs), "hc", 1.5, {})))
    elif target == "lengths":
        kind = data.draw(st.sampled_from(("range", "dtype", "shape")))
        B, T = case.B, case.T
        if kind == "range":
            v = data.draw(st.sampled_from((-1, T + 1, 2**62, -(2**62), 2**64 - 1)))
            bad = np.zeros(B, np.uint64 if v >= 2**63 else np.int64)
            bad[data.draw(st.integers(0, B - 1))] = v
        elif kind == "dtype":
            bad = np.zeros(B, dtype=data.draw(st.sampled_from(
                (np.float64, np.float32, np.bool_, np.complex128, object))))
        else:
            bad = np.zeros(data.draw(st.sampled_from(((B + 1,), (B, 1), (), (0,)))), np.int64)
    elif target == "x":
        bad = bad_x(data, case.D, dtype)
    else:
        bad = bad_array(data, shapes[target], dtype)
        names = [target] if target == "dy" else [target, target.split("[")[0]]
    if target.startswith("state"):
        fwd["state"] = bad if "[" not in target else (
            (bad, None) if target.endswith("[0]") else (None, bad))
    elif target.startswith("dstate"):
        bwd["dstate"] = bad if "[" not in target else (
            (bad, None) if target.endswith("[0]") else (None, bad))
    elif target in fwd:
        fwd[target] = bad
    else:
        bwd[target] = bad
    before = snapshot(bad)
    with pytest.raises(CLEAR) as e:
        if target in ("dy", "dstate") or target.startswith("dstate"):
            lstm.backward(**bwd)
        else:
            lstm.forward(fwd["x"], fwd["state"], lengths=fwd["lengths"],
                         train=data.draw(st.booleans()))
    assert_clear(e, names)
    assert_unchanged(before, (bad,))
    # nothing changed: the pending training forward's backward is the reference's
    np.testing.assert_array_equal(lstm.flat_parameters, params)
    lstm.zero_grad()
    dy = ref.x_to_api(reals(data, ref.x_from_api(y, case.layout).shape), case.layout)
    dx, (dh0, dc0) = lstm.backward(dy.astype(dtype))
    want = expected_forward(lstm, x, None, case.layout, lengths)
    dx_w, dh_w, dc_w, grads = expected_backward(lstm, want[3], dy.astype(dtype), None,
                                                case.layout)
    assert_outputs((dx, (dh0, dc0)), (dx_w, dh_w, dc_w), case.layout, dtype,
                   ("dx", "dh0", "dc0"))
    for name, g in lstm.named_grads().items():
        assert_close(g, grads[name], dtype, name)


def huge_shape(data, ndim, itemsize, fixed=None):
    """The shape of a zero-stride view of `ndim` dimensions whose dense copy
    needs 2**46 to 2**60 bytes (NumPy can still represent its size, no
    machine here can allocate it); `fixed`: {axis: size} kept."""
    fixed = fixed or {}
    free = [k for k in range(ndim) if k not in fixed]
    base = itemsize * int(np.prod(list(fixed.values()), dtype=np.int64))
    left = data.draw(st.integers(46, 60)) - (base - 1).bit_length()  # log2 elements to spread
    shape = [fixed.get(k, 1) for k in range(ndim)]
    for k in free[:-1]:
        e = data.draw(st.integers(0, left))
        shape[k], left = 2**e, left - e
    shape[free[-1]] = 2**left
    return tuple(shape)


@props(100)
@given(data=st.data())
def test_huge_inputs_raise_clearly(data):
    """Zero-stride views whose dense copy cannot be allocated (x, ids, a
    loss's out, softmax's z) and sizes of 2**40 and more (constructors,
    initial_state): MemoryError / ValueError / OverflowError naming the
    argument, quickly, with nothing modified; the model works afterwards."""
    dtype = data.draw(st.sampled_from(FLOATS))
    it = np.dtype(dtype).itemsize
    what = data.draw(st.sampled_from(("x", "ids", "out", "z", "ctor", "model_ctor",
                                      "initial_state", "state")))
    big = 2 ** data.draw(st.integers(40, 62))
    lstm = clstm.LSTM(3, 4, dtype=dtype, batch_first=data.draw(st.booleans()))
    train = data.draw(st.booleans())
    if what == "x":
        x = np.broadcast_to(np.ones(1, dtype), huge_shape(data, 3, it, {2: 3}))
        call, names = (lambda: lstm.forward(x, train=train)), ["x"]
    elif what == "state":  # shape checked before anything is copied
        shape = huge_shape(data, 3, it)
        call, names = (lambda: lstm.forward(np.zeros((2, 1, 3), dtype),
                                            (np.broadcast_to(np.ones(1, dtype), shape), None))
                       ), ["state[0]", "state"]
    elif what == "ids":
        m = clstm.Model(hidden_size=2, vocab_size=3)
        shape = huge_shape(data, 2, 4)
        ids = np.broadcast_to(np.zeros(1, data.draw(st.sampled_from((np.int32, np.int64)))),
                              shape)
        call, names = (lambda: m.forward(ids, train=train)), ["ids"]
    elif what == "out":
        shape = huge_shape(data, 3, it, {2: 2})
        out = np.broadcast_to(np.zeros(1, dtype), shape)
        call, names = (lambda: mse(out, out)), ["out"]
    elif what == "z":
        z = np.broadcast_to(np.zeros(1, dtype), huge_shape(data, 2, it))
        call, names = (lambda: softmax(z)), ["z"]
    elif what == "ctor":
        pos = data.draw(st.integers(0, 3))
        sizes = [3, 4, 1, 0]
        sizes[pos] = big
        call = lambda: clstm.LSTM(*sizes[:3], proj_size=sizes[3], dtype=dtype)  # noqa: E731
        names = [("input_size", "hidden_size", "num_layers", "proj_size")[pos]]
    elif what == "model_ctor":
        kw = data.draw(st.sampled_from((dict(vocab_size=big), dict(output_size=big),
                                        dict(encoding="embedding", vocab_size=big))))
        call = lambda: clstm.Model(  # noqa: E731
            None if kw.get("encoding", "onehot") == "onehot" and "vocab_size" in kw else 3, 2,
            dtype=dtype, **kw)
        names = list(kw.keys() - {"encoding"})
    else:
        call, names = (lambda: lstm.initial_state(big)), ["batch_size"]
    params = lstm.flat_parameters.copy()
    with pytest.raises(CLEAR) as e:
        call()
    assert_clear(e, names)
    np.testing.assert_array_equal(lstm.flat_parameters, params)
    x = np.ones((2, 1, 3), dtype)
    layout = "btd" if lstm.batch_first else "tbd"
    want = expected_forward(lstm, x, None, layout)
    assert_outputs(lstm.forward(x, train=False), want[:3], layout, dtype)


CTOR_GOOD = dict(input_size=3, hidden_size=4, num_layers=2, proj_size=0, bidirectional=False,
                 dropout=0.0, dtype=np.float32, seed=0, backend="default")
CTOR_BAD = {
    "input_size": (0, -1, -(2**40), 2**63, 2**64, 1.5, True, "3", None, np.float64(3)),
    "proj_size": (-1, 4, 5, 2**63, 1.5, True, "1", None),
    "dropout": (-0.1, 1.0, np.nan, np.inf, "0.1", True, None, 1j),
    "dtype": (np.float16, np.longdouble, np.int32, np.complex64, object, bool, "nope", "U3"),
    "seed": (-1, 2**64, 1.5, True, "7", np.float32(1)),
    "backend": ("cuda", "", None, 1, "naive "),
    "bidirectional": (1, "yes", None, np.float64(1)),
}
CTOR_BAD["hidden_size"] = CTOR_BAD["num_layers"] = CTOR_BAD["input_size"]


@props(150)
@given(data=st.data())
def test_constructor_arguments(data):
    """Every constructor argument valid, or one of them invalid (a value
    out of range, a wrong type, an unsupported dtype): the model is built
    with those settings, or TypeError / ValueError names the argument."""
    name = data.draw(st.sampled_from(sorted(CTOR_BAD)))
    bad = data.draw(st.sampled_from(CTOR_BAD[name]))
    with pytest.raises(CLEAR) as e:
        clstm.LSTM(**{**CTOR_GOOD, name: bad})
    assert_clear(e, [name])
    good = {k: data.draw(st.sampled_from(v)) for k, v in dict(
        input_size=(1, 5, np.int64(2)), hidden_size=(1, 3, np.uint8(4)), num_layers=(1, 2),
        bidirectional=(False, True, np.bool_(True)), dtype=FLOATS + ("f4", "float64", float),
        seed=(0, 2**64 - 1, np.uint64(7)), backend=BACKENDS).items()}
    good["proj_size"] = data.draw(st.integers(0, int(good["hidden_size"]) - 1))
    good["dropout"] = data.draw(st.sampled_from((0.0, 0.25, 0))) if good["num_layers"] > 1 else 0.0
    m = clstm.LSTM(**good)
    for k in ("input_size", "hidden_size", "num_layers", "proj_size", "bidirectional"):
        assert getattr(m, k) == good[k], k
    assert m.dtype == np.dtype(good["dtype"]) and m.flat_parameters.dtype == m.dtype
    sizes = (m.input_size, m.hidden_size, m.num_layers, m.num_directions, m.proj_size)
    assert m.flat_parameters.size == ref.num_params(*sizes)


def test_views_too_big_for_numpy_never_reach_clstm():
    """Shapes whose element count overflows int64 (or whose byte count does)
    cannot even be made into NumPy views: NumPy refuses them itself, so no
    such array reaches clstm."""
    for shape in ((2**32, 2**32, 4), (2**62, 4, 1), (2**63 - 1, 2, 1)):
        with pytest.raises(ValueError):
            np.broadcast_to(np.float32(1), shape)
        with pytest.raises(ValueError):
            np.lib.stride_tricks.as_strided(np.zeros(1, np.float32), shape, (0,) * 3)


# ------------------------------------------------------------------ LSTM: NaN and Inf
@props(200)
@given(data=st.data())
def test_nan_propagation(data):
    """include/clstm.h: a NaN in x at a valid (t, b) makes sequence b's
    outputs NaN from t on in the forward direction (up to t in the reverse
    one, and the later layers' outputs from there) and its final state NaN;
    other sequences are unaffected, forward and backward. Past its length
    the output stays 0. The NaN leaves nothing behind in the model: the next
    call on clean input is the reference's."""
    case = data.draw(cases(max_T=5, max_B=3))
    lens = np.array(case.lengths) if case.lengths is not None else np.full(case.B, case.T)
    if not lens.any():
        lens[0] = case.T
        case = Case(case.T, case.B, case.D, case.H, case.L, case.layout, N=case.N, P=case.P,
                    lengths=tuple(lens) if case.lengths is not None else None)
    dtype = data.draw(st.sampled_from(FLOATS))
    lstm = make_lstm(case, dtype, data.draw(st.sampled_from(BACKENDS)), 11)
    T, B, R = case.T, case.B, case.R
    b = data.draw(st.sampled_from(np.flatnonzero(lens).tolist()))
    t = data.draw(st.integers(0, int(lens[b]) - 1))
    d = data.draw(st.integers(0, case.D - 1))
    clean = reals(data, (T, B, case.D))
    x = clean.copy()
    x[t, b, d] = np.nan
    lengths = None if case.lengths is None else np.array(case.lengths)
    train = data.draw(st.booleans())
    xa = ref.x_to_api(x, case.layout).astype(dtype)
    y, (h, c) = lstm.forward(xa, lengths=lengths, train=train)
    y, h, c = ref.x_from_api(y, case.layout), ref.state_from_api(h, case.layout), \
        ref.state_from_api(c, case.layout)
    # the documented pattern, row b
    nan = np.zeros((T, case.N * R), bool)
    Lb = int(lens[b])
    if case.N == 1:
        nan[t:Lb] = True
    elif case.L == 1:
        nan[t:Lb, :R] = True
        nan[:t + 1, R:] = True
    else:
        nan[:Lb] = True
    np.testing.assert_array_equal(np.isnan(y[:, b]), nan)
    assert np.all(y[Lb:, b] == 0)
    assert np.isnan(h[:, b]).all() and np.isnan(c[:, b]).all()
    # everything else: the reference's (which treats NaN alike: compared NaN-aware)
    want = expected_forward(lstm, xa, None, case.layout, lengths)
    for got, exp, name in zip((y, h, c), want[:3], ("y", "h", "c")):
        assert_close_ieee(got, exp, dtype, name)
    others = [k for k in range(B) if k != b]
    assert np.isfinite(y[:, others]).all() and np.isfinite(h[:, others]).all()
    if train:
        dy = reals(data, (T, B, case.N * R))
        dx, (dh0, dc0) = lstm.backward(ref.x_to_api(dy, case.layout).astype(dtype))
        dx, dh0, dc0 = ref.x_from_api(dx, case.layout), ref.state_from_api(dh0, case.layout), \
            ref.state_from_api(dc0, case.layout)
        dx_w, dh_w, dc_w, _ = ref.backward(params64(lstm), want[3],
                                           dy.astype(dtype).astype(np.float64))
        for got, exp, name in ((dx, dx_w, "dx"), (dh0, dh_w, "dh0"), (dc0, dc_w, "dc0")):
            assert_close(got[:, others], exp[:, others], dtype, name + " (other rows)")
    # no trace left: a clean call now is the reference's
    xa = ref.x_to_api(clean, case.layout).astype(dtype)
    lstm.zero_grad()
    out = lstm.forward(xa, lengths=lengths, train=train)
    want = expected_forward(lstm, xa, None, case.layout, lengths)
    assert_outputs(out, want[:3], case.layout, dtype)
    if train:
        dy = ref.x_to_api(reals(data, (T, B, case.N * R)), case.layout).astype(dtype)
        dx, (dh0, dc0) = lstm.backward(dy)
        dx_w, dh_w, dc_w, grads = expected_backward(lstm, want[3], dy, None, case.layout)
        assert_outputs((dx, (dh0, dc0)), (dx_w, dh_w, dc_w), case.layout, dtype,
                       ("dx", "dh0", "dc0"))
        for name, g in lstm.named_grads().items():
            assert_close(g, grads[name], dtype, name)


@props(200)
@given(data=st.data())
def test_nonfinite_inputs_follow_ieee(data):
    """NaN and +-Inf anywhere in x, h0 and c0 (at valid steps): the forward
    is the reference's, NaN for NaN and Inf for Inf (an Inf pre-activation
    saturates its gate, so outputs may stay finite; inf - inf and 0 * inf
    give NaN); rows holding only finite numbers are unaffected."""
    case = data.draw(cases(max_T=4, max_B=3))
    dtype = data.draw(st.sampled_from(FLOATS))
    lstm = make_lstm(case, dtype, data.draw(st.sampled_from(BACKENDS)), 5)
    T, B, NL = case.T, case.B, case.N * case.L
    special = st.sampled_from((np.nan, np.inf, -np.inf))

    def sprinkle(a):
        mask = data.draw(hnp.arrays(bool, a.shape, elements=st.booleans()))
        vals = data.draw(hnp.arrays(np.float64, a.shape, elements=special))
        return np.where(mask & (data.draw(st.integers(0, 3)) > 0), vals, a)

    x = sprinkle(reals(data, (T, B, case.D)))
    h0 = sprinkle(reals(data, (NL, B, case.R)))
    c0 = sprinkle(reals(data, (NL, B, case.H)))
    lengths = None if case.lengths is None else np.array(case.lengths)
    xa = ref.x_to_api(x, case.layout).astype(dtype)
    state = (ref.state_to_api(h0, case.layout).astype(dtype),
             ref.state_to_api(c0, case.layout).astype(dtype))
    before = snapshot(xa, state)
    train = data.draw(st.booleans())
    y, (h, c) = lstm.forward(xa, state, lengths=lengths, train=train)
    assert_unchanged(before, (xa, state))
    want = expected_forward(lstm, xa, state, case.layout, lengths)
    got = (ref.x_from_api(y, case.layout), ref.state_from_api(h, case.layout),
           ref.state_from_api(c, case.layout))
    for g, w, name in zip(got, want[:3], ("y", "h", "c")):
        assert_close_ieee(g, w, dtype, name)
    active = ref.active_steps(lengths, T, B)
    fin = (np.isfinite(np.where(active[..., None], x, 0)).all(axis=(0, 2))
           & np.isfinite(h0).all(axis=(0, 2)) & np.isfinite(c0).all(axis=(0, 2)))
    assert np.isfinite(got[0][:, fin]).all() and np.isfinite(got[1][:, fin]).all()
    if train:  # backward: no crash; finite rows get the reference's dx, dh0, dc0
        dy = reals(data, (T, B, case.N * case.R))
        dx, (dh0, dc0) = lstm.backward(ref.x_to_api(dy, case.layout).astype(dtype))
        dx_w, dh_w, dc_w, _ = ref.backward(params64(lstm), want[3],
                                           dy.astype(dtype).astype(np.float64))
        got = (ref.x_from_api(dx, case.layout), ref.state_from_api(dh0, case.layout),
               ref.state_from_api(dc0, case.layout))
        for g, w, name in zip(got, (dx_w, dh_w, dc_w), ("dx", "dh0", "dc0")):
            assert_close(g[:, fin], w[:, fin], dtype, name + " (finite rows)")


# ------------------------------------------------------------------ Model
@props(200)
@given(data=st.data())
def test_model_matches_reference(data):
    """clstm.Model = encoding (raw / onehot / embedding) -> LSTM -> optional
    Linear head: forward and backward are the reference LSTM composed with
    the encoding and the head (out 0 past each length, dout ignored there,
    embedding gradients added at the ids seen); ids in any integer dtype and
    form, out-of-range ids only in padding; inputs untouched."""
    case = data.draw(cases(max_T=4, max_B=3))
    dtype = data.draw(st.sampled_from(FLOATS))
    encoding = data.draw(st.sampled_from((None, "onehot", "embedding")))
    V = data.draw(st.integers(1, 4))
    O = data.draw(st.integers(0, 3))
    D = V if encoding == "onehot" else case.D
    case = Case(case.T, case.B, D, case.H, case.L, case.layout, N=case.N, P=case.P,
                lengths=case.lengths)
    m = clstm.Model(None if encoding == "onehot" else D, case.H, case.L, encoding=encoding,
                    vocab_size=None if encoding is None else V, output_size=O,
                    bidirectional=case.N == 2, proj_size=case.P, dtype=dtype, seed=2,
                    batch_first=case.batch_first, backend=data.draw(st.sampled_from(BACKENDS)))
    T, B = case.T, case.B
    lengths = None if case.lengths is None else np.array(case.lengths)
    active = ref.active_steps(lengths, T, B)
    p = params64(m)
    if encoding is None:
        x = padded(reals(data, (T, B, D)), case.lengths, np.nan)
        inp = form(ref.x_to_api(x, case.layout), data.draw(st.sampled_from(FORMS)), dtype)
        e = as_array(inp)
        e = ref.x_from_api(e, case.layout).astype(dtype).astype(np.float64)
    else:
        how = data.draw(st.sampled_from(("int64", "int32", "int16", "uint8", "uint64", "list",
                                         "negative", "fortran")))
        idt = np.int64 if how in ("list", "negative", "fortran") else np.dtype(how)
        ids = data.draw(hnp.arrays(np.int64, (T, B), elements=st.integers(0, V - 1)))
        api_of = {"tbd": lambda a: a, "btd": lambda a: a.T, "td": lambda a: a[:, 0]}
        api = np.array(api_of[case.layout](ids), dtype=idt)
        info = np.iinfo(idt)
        # padding: anything the dtype holds, out of range too (never read)
        api[~api_of[case.layout](active)] = data.draw(st.sampled_from(
            (V, int(info.max), int(info.min))))
        if how == "list":
            inp = api.tolist()
        elif how == "negative":
            inp = np.ascontiguousarray(api[::-1])[::-1]
        elif how == "fortran":
            inp = np.asfortranarray(api)
        else:
            inp = api
        safe = np.where(active, ids, 0)
        e = np.eye(V)[safe] if encoding == "onehot" else p["embedding.weight"][safe]
    state = state_arg(data, case, dtype)
    before = snapshot(inp, state)
    out, (h, c) = m.forward(inp, state, lengths=lengths, train=True)
    assert_unchanged(before, (inp, state))
    st64 = expected_state(state)
    h0, c0 = (None, None) if st64 is None else (
        None if s is None else ref.state_from_api(s, case.layout).astype(dtype).astype(np.float64)
        for s in st64)
    y, hT, cT, cache = ref.forward(p, e, h0, c0, lengths)
    want = y if not O else np.where(active[..., None], y @ p["head.weight"].T + p["head.bias"], 0)
    assert_outputs((out, (h, c)), (want, hT, cT), case.layout, dtype, ("out", "h", "c"))
    # backward
    K = O or case.N * case.R
    dout = reals(data, (T, B, K))
    dout_api = ref.x_to_api(np.where(active[..., None], dout, np.nan), case.layout)
    m.zero_grad()
    dx, (dh0, dc0) = m.backward(dout_api.astype(dtype))
    dout = np.where(active[..., None], dout, 0).astype(dtype).astype(np.float64)
    dy = dout @ p["head.weight"] if O else dout
    dx_w, dh_w, dc_w, grads = ref.backward(p, cache, dy)
    if O:
        grads["head.weight"] = np.einsum("tbo,tbr->or", dout, y)
        grads["head.bias"] = dout.sum(axis=(0, 1))
    if encoding == "embedding":
        grads["embedding.weight"] = np.zeros_like(p["embedding.weight"])
        np.add.at(grads["embedding.weight"], safe[active], dx_w[active])
    if encoding is None:
        assert_close(ref.x_from_api(dx, case.layout), dx_w, dtype, "dx")
    else:
        assert dx is None
    assert_close(ref.state_from_api(dh0, case.layout), dh_w, dtype, "dh0")
    assert_close(ref.state_from_api(dc0, case.layout), dc_w, dtype, "dc0")
    for name, g in m.named_grads().items():
        assert_close(g, grads[name], dtype, name)


@props(150)
@given(data=st.data())
def test_model_bad_ids_raise_clearly(data):
    """Token ids that are not integers, out of range at a valid step, of the
    wrong shape or empty: TypeError / ValueError naming ids, nothing
    modified."""
    V, T, B = 3, data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    m = clstm.Model(hidden_size=2, vocab_size=V, batch_first=data.draw(st.booleans()))
    params = m.flat_parameters.copy()
    kind = data.draw(st.sampled_from(("dtype", "range", "shape")))
    if kind == "dtype":
        ids = np.zeros((T, B), data.draw(st.sampled_from(
            (np.float32, np.float64, np.float16, np.bool_, np.complex64, object, "U1"))))
    elif kind == "range":
        ids = np.zeros((T, B), data.draw(st.sampled_from((np.int64, np.uint64))))
        v = data.draw(st.sampled_from((V, 2**31, 2**62) + ((-1, -(2**40))
                                                           if ids.dtype == np.int64 else ())))
        ids[data.draw(st.integers(0, T - 1)), data.draw(st.integers(0, B - 1))] = v
        if data.draw(st.booleans()):
            ids = ids.tolist()
    else:
        shape = data.draw(st.sampled_from(((0,), (0, B), (T, 0), (T, B, 1), ())))
        ids = np.zeros(shape, np.int64)
    before = snapshot(ids)
    with pytest.raises(CLEAR) as e:
        m.forward(ids, train=data.draw(st.booleans()))
    assert_clear(e, ["ids"])
    assert_unchanged(before, (ids,))
    np.testing.assert_array_equal(m.flat_parameters, params)


# ------------------------------------------------------------------ losses
def loss_oracle(kind, out, tg, lengths, last_only):
    """The losses as clstm/losses.py defines them, in float64 on canonical
    arrays: the mean over counted steps (every valid one, or the last valid
    one with last_only) of the softmax cross-entropy or of the squared error
    averaged over O; 0 and dout 0 with nothing counted."""
    T, B, O = out.shape
    act = ref.active_steps(lengths, T, B)
    if last_only:
        ends = (np.full(B, T) if lengths is None else lengths) - 1
        act = np.arange(T)[:, None] == ends[None, :]
    n = int(act.sum())
    d = np.zeros_like(out)
    if n == 0:
        return 0.0, d
    if kind == "mse":
        diff = np.where(act[..., None], out - np.where(act[..., None], tg, 0), 0)
        return float((diff**2).sum() / (n * O)), 2 * diff / (n * O)
    z = out - out.max(axis=-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))
    onehot = np.eye(O)[np.where(act, tg, 0)]
    loss = -(np.where(act[..., None], onehot * logp, 0)).sum() / n
    return float(loss), np.where(act[..., None], np.exp(logp) - onehot, 0) / n


@props(300)
@given(data=st.data())
def test_losses_match_definition(data):
    """cross_entropy and mse over drawn shapes (T, B, O >= 0), layouts,
    lengths, last_only, dtypes and forms: the definition's loss and
    gradient within the dtype's tolerance, or (an empty dimension, an id out
    of range) a clear error naming out / targets; inputs untouched."""
    kind = data.draw(st.sampled_from(("xent", "mse")))
    dtype = data.draw(st.sampled_from(FLOATS))
    layout = data.draw(st.sampled_from(("tbd", "btd", "td")))
    T, O = data.draw(st.integers(0, 4)), data.draw(st.integers(0, 3))
    B = 1 if layout == "td" else data.draw(st.integers(0, 3))
    last_only = data.draw(st.booleans())
    lengths = None
    if data.draw(st.booleans()):
        lengths = np.array(data.draw(st.lists(st.integers(0, T), min_size=B, max_size=B)),
                           dtype=np.int64)
    out = reals(data, (T, B, O), -5.0, 5.0).astype(dtype)
    ends = (np.full(B, T) if lengths is None else lengths) - 1
    # per sequence (last_only) or per step; canonical tg: per step, for the definition
    if kind == "xent":
        ids = st.integers(0, max(O - 1, 0))
        per = data.draw(hnp.arrays(np.int64, (B,) if last_only else (T, B), elements=ids))
        idt = data.draw(st.sampled_from((np.int64, np.int32, np.uint8, np.uint64)))
        per = per.astype(idt)
        tg = np.zeros((T, B), np.int64)
    else:
        per = reals(data, (B, O) if last_only else (T, B, O))
        tg = np.zeros((T, B, O))
    if last_only:
        for k, e_ in enumerate(ends):
            if e_ >= 0:
                tg[e_, k] = per[k]
        tg_api = per[0] if layout == "td" else per
    else:
        tg = per.astype(tg.dtype)
        tg_api = ref.x_to_api(per, layout) if kind == "mse" else (
            per if layout == "tbd" else per.T if layout == "btd" else per[:, 0])
    out_api = form(ref.x_to_api(out, layout), data.draw(st.sampled_from(SAME_VALUES)), dtype)
    before = snapshot(out_api, tg_api, lengths)
    f = mse if kind == "mse" else cross_entropy
    try:
        loss, dout = f(out_api, tg_api, lengths, last_only=last_only,
                       batch_first=layout == "btd")
    except CLEAR as exc:
        assert_unchanged(before, (out_api, tg_api, lengths))
        # refused: only for an empty dimension, or class ids with O = 0
        assert T == 0 or B == 0 or O == 0, repr(exc)
        assert_message(types.SimpleNamespace(value=exc), ["out", "targets"])
        return
    assert_unchanged(before, (out_api, tg_api, lengths))
    assert T and B and O
    dt = np.asarray(out_api).dtype  # float64 for a nested list
    want, dwant = loss_oracle(kind, out.astype(np.float64), tg, lengths, last_only)
    assert isinstance(loss, float)
    assert dout.shape == np.shape(out_api) and dout.dtype == dt
    assert_close(loss, want, dt, "loss")
    assert_close(ref.x_from_api(dout, layout), dwant, dt, "dout")


@props(150)
@given(data=st.data())
def test_losses_nan_stay_in_their_step(data):
    """A NaN logit at a counted (t, b): the loss is NaN and dout NaN in that
    step's row only (mse: in that element only); dout elsewhere is the
    definition's for the finite steps. NaN at a step that is not counted
    changes nothing (it is never read)."""
    kind = data.draw(st.sampled_from(("xent", "mse")))
    dtype = data.draw(st.sampled_from(FLOATS))
    T, B, O = data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3)), data.draw(
        st.integers(1, 3))
    lengths = np.array(data.draw(st.lists(st.integers(0, T), min_size=B, max_size=B)))
    out = reals(data, (T, B, O), -5.0, 5.0).astype(dtype)
    tg = data.draw(hnp.arrays(np.int64, (T, B), elements=st.integers(0, O - 1))) \
        if kind == "xent" else reals(data, (T, B, O))
    f = mse if kind == "mse" else cross_entropy
    t, b, o = (data.draw(st.integers(0, n - 1)) for n in (T, B, O))
    bad = out.copy()
    bad[t, b, o] = np.nan
    loss, dout = f(bad, tg, lengths)
    if t >= lengths[b]:  # padding: never read
        l0, d0 = f(out, tg, lengths)
        assert loss == l0
        np.testing.assert_array_equal(dout, d0)
        return
    assert np.isnan(loss)
    nan = np.zeros(out.shape, bool)
    if kind == "mse":
        nan[t, b, o] = True
    else:
        nan[t, b, :] = True
    np.testing.assert_array_equal(np.isnan(dout), nan)
    _, dwant = loss_oracle(kind, out.astype(np.float64), tg, lengths, False)
    assert_close(dout[~nan], dwant[~nan], dtype, "dout")


@props(200)
@given(data=st.data())
def test_softmax_matches_definition(data):
    """softmax over the last axis for drawn shapes, temperatures, dtypes and
    forms (NaN rows give NaN rows, others unaffected); bad z (empty, wrong
    dtype) or temperature: a clear error naming it; z untouched."""
    dtype = data.draw(st.sampled_from(FLOATS))
    shape = tuple(data.draw(st.lists(st.integers(0, 4), min_size=0, max_size=3)))
    z = reals(data, shape, -30.0, 30.0)
    if z.size and data.draw(st.booleans()):
        z.reshape(-1)[data.draw(st.integers(0, z.size - 1))] = np.nan
    zin = form(z, data.draw(st.sampled_from(SAME_VALUES)), dtype) if z.ndim else z.astype(dtype)
    temperature = data.draw(st.one_of(st.floats(1e-2, 1e2), st.sampled_from(
        (0.0, -1.0, np.inf, np.nan, "a", None, 2))))
    before = snapshot(zin, temperature)
    good_t = isinstance(temperature, (int, float)) and 0 < temperature < np.inf
    if z.ndim == 0 or z.size == 0 or not good_t:
        with pytest.raises(CLEAR) as e:
            softmax(zin, temperature)
        assert_clear(e, ["z"] if good_t else ["z", "temperature"])
        assert_unchanged(before, (zin, temperature))
        return
    p = softmax(zin, temperature)
    assert_unchanged(before, (zin, temperature))
    dt = np.asarray(zin).dtype  # float64 for a nested list
    zz = np.asarray(zin, np.float64) / temperature
    e = np.exp(zz - zz.max(axis=-1, keepdims=True))
    assert p.shape == z.shape and p.dtype == dt
    assert_close_ieee(p, e / e.sum(axis=-1, keepdims=True), dt, "p")


@props(150)
@given(data=st.data())
def test_loss_bad_arguments_raise_clearly(data):
    """out / targets / lengths of a wrong dtype or shape, targets out of
    range (uint64 beyond int64 too): TypeError / ValueError naming the
    argument; inputs untouched."""
    T, B, O = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 3)), data.draw(
        st.integers(1, 3))
    kind = data.draw(st.sampled_from(("xent", "mse")))
    last_only = data.draw(st.booleans())
    f = mse if kind == "mse" else cross_entropy
    out = np.zeros((T, B, O))
    tshape = ((B,) if last_only else (T, B)) + ((O,) if kind == "mse" else ())
    tg = np.zeros(tshape, np.int64 if kind == "xent" else np.float64)
    lengths = None
    target = data.draw(st.sampled_from(("out", "targets", "lengths")))
    if target == "out":  # a wrong dtype, 0, 1 or 4 dimensions, or an empty one
        out = bad_dtype(data, out.shape) if data.draw(st.booleans()) else form(
            np.zeros(data.draw(st.sampled_from(((), (O,), (1, T, B, O), (0, B, O), (T, 0, O),
                                                (T, B, 0), (0, O), (T, 0))))),
            data.draw(st.sampled_from(SAME_VALUES)), np.float64)
    elif target == "targets":
        if kind == "xent" and data.draw(st.booleans()):
            tg = np.zeros(tshape, data.draw(st.sampled_from((np.int64, np.uint64))))
            v = data.draw(st.sampled_from(
                (O, 2**40) + ((-1,) if tg.dtype == np.int64 else (2**63, 2**64 - 1))))
            tg.reshape(-1)[data.draw(st.integers(0, tg.size - 1))] = v
        else:
            tg = np.zeros(tg.shape, data.draw(st.sampled_from(
                (np.complex128, object, "U1", np.bool_) + ((np.float64, np.float16)
                                                           if kind == "xent" else ()))))
    else:
        lengths = data.draw(st.sampled_from((np.array([T + 1] * B), np.array([-1] * B),
                                             np.zeros(B + 1, np.int64), np.zeros(B),
                                             np.full(B, 2**64 - 1, np.uint64))))
    before = snapshot(out, tg, lengths)
    with pytest.raises(CLEAR) as e:
        f(out, tg, lengths, last_only=last_only)
    assert_clear(e, [target])
    assert_unchanged(before, (out, tg, lengths))


# ------------------------------------------------------------------ regressions
def test_regression_empty_loss_dimension_names_out():
    """Shrunk from test_losses_match_definition: T, B or O = 0 raised
    'loss: a size is zero, negative or inconsistent' (no argument named)."""
    for shape in ((0, 2, 3), (2, 0, 3), (2, 2, 0)):
        with pytest.raises(ValueError) as e:
            mse(np.zeros(shape), np.zeros(shape))
        assert_message(e, ["out"])


def test_regression_uint64_class_ids():
    """Shrunk from test_loss_bad_arguments_raise_clearly: uint64 ids beyond
    int64 raised a bare OverflowError (last_only) or were reported as -1."""
    out = np.zeros((2, 2, 3))
    with pytest.raises(ValueError, match=r"targets: .*18446744073709551615"):
        cross_entropy(out, np.array([2**64 - 1, 0], np.uint64), last_only=True)
    with pytest.raises(ValueError, match=r"targets: .*18446744073709551615"):
        cross_entropy(out, np.full((2, 2), 2**64 - 1, np.uint64))
    # in padding they are never read
    ids = np.array([[0, 2**64 - 1], [1, 2**64 - 1]], np.uint64)
    assert cross_entropy(out, ids, np.array([2, 0]))[0] == pytest.approx(np.log(3), rel=1e-15)


def test_regression_softmax_temperature_not_a_number():
    """Shrunk from test_softmax_matches_definition: 'a' and None gave
    float()'s messages, which do not name temperature."""
    for t in ("a", None, [1.0]):
        with pytest.raises((TypeError, ValueError)) as e:
            softmax(np.zeros(3), t)
        assert_message(e, ["temperature"])


def test_regression_huge_sizes_name_the_argument():
    """Shrunk from test_huge_inputs_raise_clearly: constructor sizes of 2**40
    gave 'LSTM: out of memory' and huge views NumPy's 'Unable to allocate'
    (neither names the argument); broadcast ids of 2**50 elements took
    minutes (a min/max over every element) before failing."""
    for sizes, name in (((1, 2**40), "hidden_size"), ((2**40, 1), "input_size"),
                        ((1, 1, 2**40), "num_layers")):
        with pytest.raises((ValueError, MemoryError)) as e:
            clstm.LSTM(*sizes)
        assert_message(e, [name])
    with pytest.raises(MemoryError) as e:
        clstm.LSTM(2, 3).forward(np.broadcast_to(np.float32(1), (2**39, 2**19, 2)))
    assert_message(e, ["x"])
    with pytest.raises(MemoryError) as e:
        clstm.LSTM(2, 3).initial_state(2**40)
    assert_message(e, ["batch_size"])
    with pytest.raises(MemoryError) as e:
        clstm.Model(hidden_size=2, vocab_size=3).forward(np.broadcast_to(np.int64(0),
                                                                         (2**25, 2**25)))
    assert_message(e, ["ids"])


def test_regression_token_padding_beyond_int32():
    """Shrunk from test_model_matches_reference: ids past a length "may hold
    anything", but an int64 id beyond int32 there was refused ("values out
    of int32 range"); at a valid step it is reported as given."""
    m = clstm.Model(hidden_size=2, vocab_size=3, seed=0)
    lens = np.array([2, 1])
    ids = np.array([[0, 1], [2, 2**40]], np.int64)
    want = m.forward(np.array([[0, 1], [2, 0]]), lengths=lens, train=False)[0]
    np.testing.assert_array_equal(m.forward(ids, lengths=lens, train=False)[0], want)
    np.testing.assert_array_equal(m.forward(ids.astype(np.uint64), lengths=lens)[0], want)
    with pytest.raises(ValueError, match=r"ids: expected token ids in \[0, 3\), got 1099511627776"):
        m.forward(ids)


@pytest.mark.parametrize("backend", BACKENDS)
def test_regression_float32_sigmoid_of_minus_inf_is_zero(backend):
    """Shrunk from test_nonfinite_inputs_follow_ieee: in float32 an h0 of
    +inf drove the forget gate's pre-activation to -inf, whose sigmoid came
    out as 6e-39 (src/fastmath.h clamps exp at 88) instead of 0, so
    f * c0 with c0 = inf gave inf where IEEE (and float64, and the
    reference) give 0 * inf = NaN."""
    outs = []
    for dtype in FLOATS:
        m = clstm.LSTM(1, 2, dtype=dtype, seed=5, backend=backend)
        x = np.zeros((1, 1), dtype)
        state = (np.array([[0, np.inf]], dtype), np.array([[np.inf, 0]], dtype))
        y, (h, c) = m.forward(x, state, train=False)
        want = expected_forward(m, x, state, "td")
        for g, w, name in zip((y[:, None], h[:, None], c[:, None]), want[:3], "yhc"):
            assert_close_ieee(g, w, dtype, name)
        outs.append(np.isnan(c))
    np.testing.assert_array_equal(outs[0], outs[1])
