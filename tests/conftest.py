"""Shared fixtures and helpers for the clstm test suite.

Vocabulary used by the tests:
  layout   "tbd" (T, B, D), "btd" (batch_first) or "td" (unbatched);
  variant  how an input array is presented: "contig", "readonly",
           "noncontig", "fortran", "other_float" (the other of float32 and
           float64), "float16" or "longdouble";
  Case     one model/problem configuration.
"""

import dataclasses
import os
import re
import sys

import numpy as np
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import reference as ref  # noqa: E402

import clstm  # noqa: E402  (a missing package must fail the suite, not skip it)

DTYPES = (np.float32, np.float64)

BACKENDS = (
    "default",
    "naive",
    pytest.param(
        "blas", marks=pytest.mark.skipif(not clstm.has_blas(), reason="built without BLAS")
    ),
)

VARIANTS = ("contig", "readonly", "noncontig", "fortran", "other_float")


@dataclasses.dataclass(frozen=True)
class Case:
    T: int
    B: int
    D: int
    H: int
    L: int
    layout: str = "tbd"
    N: int = 1  # directions: 2 for bidirectional
    P: int = 0  # proj_size
    lengths: tuple = None  # per sequence, passed as forward(lengths=...)
    dropout: float = 0.0
    rev: bool = False  # a reverse-only model (reverse=True)
    hard: tuple = None  # hard sigmoid gates: (gate_alpha, gate_beta)

    def __str__(self):
        s = f"T{self.T}B{self.B}D{self.D}H{self.H}L{self.L}-{self.layout}"
        if self.N == 2:
            s += "-bi"
        if self.P:
            s += f"-P{self.P}"
        if self.lengths is not None and len(self.lengths) <= 6:
            s += "-len" + "_".join(map(str, self.lengths))
        elif self.lengths is not None:
            s += f"-len{min(self.lengths)}to{max(self.lengths)}"
        if self.dropout:
            s += f"-p{self.dropout}"
        if self.rev:
            s += "-rev"
        if self.hard:
            s += "-hard%g_%g" % self.hard
        return s

    @property
    def batch_first(self):
        return self.layout == "btd"

    @property
    def R(self):
        """The size of h: P with a projection, else H."""
        return self.P or self.H

    def options(self):
        """The constructor's keywords for the bidirectional/projection/dropout
        features, only where they differ from the defaults."""
        opts = {"bidirectional": True} if self.N == 2 else {}
        if self.P:
            opts["proj_size"] = self.P
        if self.dropout:
            opts["dropout"] = self.dropout
        if self.rev:
            opts["reverse"] = True
        if self.hard:
            opts.update(gate_activation="hard_sigmoid", gate_alpha=self.hard[0],
                        gate_beta=self.hard[1])
        return opts

    def model(self, dtype=np.float64, backend="default", seed=1234, **overrides):
        kwargs = {"dtype": dtype, "seed": seed, "batch_first": self.batch_first, "backend": backend}
        return clstm.LSTM(self.D, self.H, self.L, **{**kwargs, **self.options(), **overrides})

    def state_shape(self, which="h"):
        """The API shape of state[0] ("h": width R) or state[1] ("c": H)."""
        width = self.R if which == "h" else self.H
        return (self.N * self.L, width) if self.layout == "td" else (self.N * self.L, self.B, width)

    def run_kwargs(self):
        """forward()'s lengths keyword for this case ({} without lengths)."""
        return {} if self.lengths is None else {"lengths": np.array(self.lengths)}


def _c(T, B, D, H, L, layout="tbd", **features):
    assert layout != "td" or B == 1
    case = Case(T, B, D, H, L, layout, **features)
    assert case.lengths is None or len(case.lengths) == B
    return case


# The awkward cases: T=1, B=1, odd H, D=1, L=3, batch_first, unbatched, and
# one case big enough for clstm to use more than one thread.
CASES = (
    _c(1, 1, 1, 1, 1),
    _c(5, 3, 4, 7, 1),
    _c(3, 2, 5, 3, 3),
    _c(4, 3, 2, 5, 2, "btd"),
    _c(1, 4, 3, 2, 3, "btd"),
    _c(6, 1, 3, 4, 2, "td"),
    _c(1, 1, 2, 3, 1, "td"),
)
MEDIUM = _c(3, 32, 20, 65, 2)

# Bidirectional, projection and lengths: each of L = 1, 2, 3 with and without
# either feature, every layout; lengths unsorted, with 1 and T. Torch packs
# only lengths >= 1, so these are also the torch parity cases.
FEATURE_CASES = (
    _c(4, 3, 3, 5, 1, N=2),
    _c(3, 2, 4, 5, 1, P=2),
    _c(5, 3, 2, 4, 1, N=2, P=3, lengths=(2, 5, 1)),
    _c(4, 3, 3, 4, 2, N=2, lengths=(3, 1, 4)),
    _c(3, 2, 3, 5, 2, "btd", P=3),
    _c(5, 4, 3, 5, 2, "btd", N=2, P=2, lengths=(1, 5, 3, 2)),
    _c(4, 3, 2, 3, 3, lengths=(4, 2, 3)),
    _c(3, 2, 4, 3, 3, N=2, P=1),
    _c(4, 2, 3, 4, 3, "btd", N=2, P=3, lengths=(4, 3)),
    _c(5, 1, 3, 4, 2, "td", N=2, P=2, lengths=(3,)),
    _c(2, 1, 2, 3, 1, "td", lengths=(1,)),
    _c(3, 2, 2, 3, 2, "btd", lengths=(3, 3)),
)
# Zero lengths, which torch cannot pack: checked against the reference only.
ZERO_LENGTH_CASES = (
    _c(3, 4, 2, 3, 2, N=2, P=2, lengths=(0, 3, 1, 0)),
    _c(2, 3, 3, 4, 1, "btd", lengths=(2, 0, 1)),
    _c(4, 1, 2, 3, 2, "td", N=2, lengths=(0,)),
    _c(1, 2, 2, 3, 2, N=2, P=1, lengths=(1, 0)),
)
# Reverse-only models (reverse=True): layouts, projection, lengths with 0,
# 1 and T, and one case big enough for more than one thread.
REVERSE_CASES = (
    _c(4, 3, 3, 5, 1, rev=True),
    _c(5, 3, 2, 4, 2, P=3, lengths=(2, 5, 1), rev=True),
    _c(4, 2, 3, 4, 3, "btd", lengths=(4, 3), rev=True),
    _c(5, 1, 3, 4, 2, "td", P=2, lengths=(3,), rev=True),
    _c(3, 4, 2, 3, 2, lengths=(0, 3, 1, 0), rev=True),
    _c(6, 32, 20, 33, 2, P=17, lengths=tuple(range(6, 0, -1)) * 5 + (0, 6), rev=True),
)
# Hard sigmoid gates (gate_activation="hard_sigmoid"): Keras 2's and 3's
# (alpha, beta) and steeper ones, whose gates saturate at 0 and 1 on a good
# share of the steps of these small random models; with bidirectional,
# reverse, projection, lengths, layouts, and one case for several threads.
HARD_CASES = (
    _c(4, 3, 3, 5, 1, hard=(0.2, 0.5)),
    _c(5, 3, 2, 4, 2, P=3, lengths=(2, 5, 1), hard=(2.0, 0.5)),
    _c(4, 2, 3, 4, 3, "btd", N=2, lengths=(4, 3), hard=(1.5, 0.3)),
    _c(5, 1, 3, 4, 2, "td", P=2, rev=True, hard=(1 / 6, 0.5)),
    _c(3, 4, 2, 3, 2, N=2, P=2, lengths=(0, 3, 1, 2), hard=(3.0, 0.6)),
    _c(6, 32, 20, 33, 2, N=2, P=17, lengths=tuple(range(6, 0, -1)) * 5 + (0, 6),
       hard=(2.5, 0.5)),
)
# Big enough for clstm to use more than one thread.
MEDIUM_FEATURES = _c(6, 32, 20, 33, 2, N=2, P=17, lengths=tuple(range(6, 0, -1)) * 5 + (0, 6))


# ------------------------------------------------------------ tolerances
def tolerance(dtype):
    """(rtol, atol-per-unit-of-scale) for comparing against float64 results.

    float64: both compute in float64 and differ only in the order of sums
    of O(10) terms: a few ulps (measured: below 1e-15). float32: clstm
    computes in float32,
    so the error is float32 rounding (eps 6e-8) amplified by sums of O(10)
    terms and by BPTT over a few steps (measured: below 4e-7)."""
    return (1e-12, 1e-12) if np.dtype(dtype) == np.float64 else (1e-5, 1e-5)


def assert_close(actual, expected, dtype, what=""):
    """Compare with the dtype's tolerance; atol scales with max |expected|,
    so gradients of larger magnitude are held to the same relative accuracy."""
    rtol, atol = tolerance(dtype)
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(1.0, float(np.max(np.abs(expected), initial=0.0)))
    np.testing.assert_allclose(
        np.asarray(actual, dtype=np.float64), expected, rtol=rtol, atol=atol * scale, err_msg=what
    )


# ------------------------------------------------------------ inputs
def other_float(dtype):
    return np.float64 if np.dtype(dtype) == np.float32 else np.float32


def present(arr, variant, dtype):
    """Return `arr` (values unchanged when cast to dtype) in the given form."""
    if arr is None:
        return None
    arr = np.asarray(arr, dtype=dtype)
    if variant == "contig":
        return np.ascontiguousarray(arr)
    if variant == "readonly":
        out = arr.copy()
        out.setflags(write=False)
        return out
    if variant == "noncontig":
        big = np.zeros(arr.shape[:-1] + (2 * arr.shape[-1],), dtype=dtype)
        big[..., ::2] = arr
        out = big[..., ::2]
        assert not out.flags.c_contiguous or out.size <= 1
        return out
    if variant == "fortran":
        return np.asfortranarray(arr)
    if variant == "other_float":
        return arr.astype(other_float(dtype))
    if variant in ("float16", "longdouble"):
        return arr.astype(variant)
    raise ValueError(variant)


def as_model_f64(arr, dtype):
    """What the model sees of an input, as float64: the value rounded to the
    model's dtype (forward converts other float precisions)."""
    if arr is None:
        return None
    return np.asarray(arr).astype(dtype).astype(np.float64)


def params64(lstm):
    """The model's parameters as a dict of float64 copies."""
    return {k: np.array(v, dtype=np.float64) for k, v in lstm.named_parameters().items()}


@dataclasses.dataclass
class Problem:
    """Random inputs for one case, canonical layout, float64; and upstream
    gradients (the loss weights Wy, Wh, Wc). With lengths, x holds NaN past
    each sequence's length: padding must never be read."""

    case: Case
    x: np.ndarray
    h0: np.ndarray
    c0: np.ndarray
    wy: np.ndarray
    wh: np.ndarray
    wc: np.ndarray

    @property
    def lengths(self):
        return None if self.case.lengths is None else np.array(self.case.lengths)

    def api(self, arr, variant="contig", dtype=np.float64, kind="x"):
        """`arr` (canonical) in the API layout and the requested form."""
        if arr is None:
            return None
        to_api = ref.x_to_api if kind == "x" else ref.state_to_api
        return present(to_api(arr, self.case.layout), variant, dtype)

    def state(self, mode, variant="contig", dtype=np.float64):
        """The `state` argument for mode none / given / h0_only / c0_only."""
        if mode == "none":
            return None
        h0 = self.h0 if mode in ("given", "h0_only") else None
        c0 = self.c0 if mode in ("given", "c0_only") else None
        return (self.api(h0, variant, dtype, "state"), self.api(c0, variant, dtype, "state"))


def make_problem(case, seed=0, scale=1.0, pad=np.nan):
    """`pad` fills x past each sequence's length."""
    rng = np.random.default_rng(seed)
    T, B, D, H, R, NL = case.T, case.B, case.D, case.H, case.R, case.N * case.L

    def n(*shape):
        return scale * rng.standard_normal(shape)

    prob = Problem(
        case,
        n(T, B, D),
        n(NL, B, R),
        n(NL, B, H),
        rng.standard_normal((T, B, case.N * R)),
        rng.standard_normal((NL, B, R)),
        rng.standard_normal((NL, B, H)),
    )
    if case.lengths is not None:
        prob.x[~ref.active_steps(prob.lengths, T, B)] = pad
    return prob


def forward_backward(lstm, prob, state_mode="given", zero_grad=True, **run):
    """A training forward and the backward of the test loss, with the
    problem's arrays in the case's layout and the model's dtype; `run`: more
    forward keywords (the case's lengths are passed already).
    Returns [y, hT, cT, dx, dh0, dc0, a copy of flat_grads]."""
    dt = lstm.dtype
    if zero_grad:
        lstm.zero_grad()
    x = prob.api(prob.x, dtype=dt)
    run = {**prob.case.run_kwargs(), **run}
    y, (h, c) = lstm.forward(x, prob.state(state_mode, dtype=dt), train=True, **run)
    dstate = (prob.api(prob.wh, dtype=dt, kind="state"), prob.api(prob.wc, dtype=dt, kind="state"))
    dx, (dh0, dc0) = lstm.backward(prob.api(prob.wy, dtype=dt), dstate)
    return [y, h, c, dx, dh0, dc0, lstm.flat_grads.copy()]


def canonical_outputs(y, h, c, layout):
    return ref.x_from_api(y, layout), ref.state_from_api(h, layout), ref.state_from_api(c, layout)


def _state_f64(state, layout, dtype):
    if state is None:
        return None, None
    return tuple(as_model_f64(ref.state_from_api(s, layout), dtype) for s in state)


def expected_forward(lstm, x, state, layout, lengths=None, masks=None):
    """The reference's y, hT, cT (canonical layout) and cache for the API
    arguments x, state and lengths exactly as they were passed to `lstm`;
    masks: the dropout masks (canonical layout), see reference.forward."""
    x64 = as_model_f64(ref.x_from_api(np.asarray(x), layout), lstm.dtype)
    h0, c0 = _state_f64(state, layout, lstm.dtype)
    gate = ((lstm.gate_alpha, lstm.gate_beta)
            if getattr(lstm, "gate_activation", "sigmoid") == "hard_sigmoid" else None)
    return ref.forward(params64(lstm), x64, h0, c0, lengths, masks, getattr(lstm, "reverse", False),
                       gate)


def expected_backward(lstm, cache, dy, dstate, layout):
    """The reference's dx, dh0, dc0 (canonical) and parameter gradients for
    the API arguments dy and dstate exactly as passed to `lstm.backward`
    (lengths and masks: those of the forward, kept in the cache)."""
    dy64 = None if dy is None else as_model_f64(ref.x_from_api(np.asarray(dy), layout), lstm.dtype)
    dh, dc = _state_f64(dstate, layout, lstm.dtype)
    return ref.backward(params64(lstm), cache, dy64, dh, dc)


def assert_outputs(actual, expected, layout, dtype, names=("y", "h", "c")):
    """actual: (y-like, (h-like, c-like)) in the API layout; expected: three
    canonical float64 arrays. Also checks dtype and shapes."""
    first, (second, third) = actual
    got = canonical_outputs(first, second, third, layout)
    for name, a, e, raw in zip(names, got, expected, (first, second, third)):
        assert isinstance(raw, np.ndarray), name
        assert raw.dtype == np.dtype(dtype), name
        assert a.shape == e.shape, name
        assert_close(a, e, dtype, name)


# ------------------------------------------------------------ messages
def assert_message(excinfo, names, numbers=()):
    """The exception message names one of `names` (as a whole token) and
    contains `numbers` in that order (the expected shape)."""
    msg = str(excinfo.value)
    token = r"(?<![A-Za-z0-9_]){}(?![A-Za-z0-9_])"
    assert any(re.search(token.format(re.escape(n)), msg) for n in names), (
        f"message {msg!r} names none of {names}"
    )
    if numbers:
        pattern = r"\D+".join(rf"(?<!\d){k}(?!\d)" for k in numbers)
        assert re.search(pattern, msg), f"message {msg!r} lacks the shape {tuple(numbers)}"


# ------------------------------------------------------------ fixtures
@pytest.fixture
def num_threads(request):
    """Indirectly parametrised: set clstm's thread count (restored by
    _restore_threads)."""
    clstm.set_num_threads(request.param)
    return request.param


@pytest.fixture(autouse=True, scope="session")
def _split_small_models():
    """Split even the tests' small models across threads (by default clstm
    runs them on one), so that the thread split is what gets tested."""
    old = clstm.get_min_thread_work()
    clstm.set_min_thread_work(0)
    yield
    clstm.set_min_thread_work(old)


@pytest.fixture(autouse=True)
def _restore_threads():
    old = clstm.get_num_threads()
    yield
    if clstm.get_num_threads() != old:
        clstm.set_num_threads(old)
