"""Bad input at every public entry point: a clear exception, never a crash,
and nothing modified."""

import numpy as np
import pytest
from conftest import Case, assert_message, make_problem

import clstm

# Distinct sizes, so a message's shape can be read unambiguously.
CASE = Case(T=3, B=7, D=4, H=5, L=2)
SIZE_NAMES = ("input_size", "hidden_size", "num_layers")


def good_sizes():
    return [CASE.D, CASE.H, CASE.L]


@pytest.fixture
def lstm():
    return CASE.model(np.float64)


@pytest.fixture
def prob():
    return make_problem(CASE, seed=61)


# ------------------------------------------------------------ constructor
@pytest.mark.parametrize("pos", range(3), ids=SIZE_NAMES)
@pytest.mark.parametrize(
    "value, error",
    [(v, ValueError) for v in (0, -1, -(2**40))]
    + [(v, TypeError) for v in (2.0, True, "3", None, np.float64(3))],
    ids=repr,
)
def test_constructor_bad_size(pos, value, error):
    """Non-positive sizes are ValueErrors, non-integers TypeErrors."""
    sizes = good_sizes()
    sizes[pos] = value
    with pytest.raises(error) as e:
        clstm.LSTM(*sizes)
    assert_message(e, [SIZE_NAMES[pos]])


@pytest.mark.parametrize(
    "sizes",
    [
        (2**40, 2**40, 1),
        (1, 2**62, 1),
        (1, 1, 2**62),
        (2**62, 1, 1),
        (2**63 - 1, 2**63 - 1, 2**63 - 1),
        (2**70, 1, 1),
        (1, 2**64 + 1, 1),
        (10**6, 10**6, 1),
    ],
    ids=str,
)
def test_constructor_huge_sizes(sizes):
    """Sizes whose parameter count overflows or cannot be allocated."""
    with pytest.raises((ValueError, MemoryError)):
        clstm.LSTM(*sizes)
    assert clstm.LSTM(2, 3).flat_parameters.size == 4 * 3 * (2 + 3 + 2)


@pytest.mark.parametrize(
    "dtype", [np.int32, "int64", np.complex128, object, bool, np.uint8], ids=str
)
def test_constructor_non_float_dtype(dtype):
    with pytest.raises(TypeError):
        clstm.LSTM(2, 3, dtype=dtype)


def test_constructor_unsupported_float_dtype():
    with pytest.raises((TypeError, ValueError)):
        clstm.LSTM(2, 3, dtype=np.float16)


@pytest.mark.parametrize("dtype", [np.float32, "float32", np.dtype("float64"), "f8", float])
def test_constructor_dtype_spellings(dtype):
    lstm = clstm.LSTM(2, 3, dtype=dtype)
    assert isinstance(lstm.dtype, np.dtype) and lstm.dtype == np.dtype(dtype)
    assert lstm.flat_parameters.dtype == np.dtype(dtype)


@pytest.mark.parametrize("backend", ["cuda", "", "default ", "openblas"])
def test_constructor_bad_backend(backend):
    with pytest.raises(ValueError) as e:
        clstm.LSTM(2, 3, backend=backend)
    assert_message(e, ["backend"])


@pytest.mark.parametrize("backend", [None, 1])
def test_constructor_non_string_backend(backend):
    with pytest.raises((TypeError, ValueError)):
        clstm.LSTM(2, 3, backend=backend)


def test_constructor_blas_backend_when_missing():
    if clstm.has_blas():
        assert clstm.LSTM(2, 3, backend="blas").backend == "blas"
    else:
        with pytest.raises(ValueError):
            clstm.LSTM(2, 3, backend="blas")


@pytest.mark.parametrize(
    "seed,exc",
    [(-1, ValueError), (2**64, ValueError), (1.5, TypeError), (True, TypeError), ("7", TypeError)],
    ids=repr,
)
def test_constructor_bad_seed(seed, exc):
    with pytest.raises(exc) as e:
        clstm.LSTM(2, 3, seed=seed)
    assert_message(e, ["seed"])


def test_constructor_extreme_seeds():
    for seed in (0, 2**63, 2**64 - 1, np.uint64(2**64 - 1)):
        a, b = clstm.LSTM(2, 3, seed=seed), clstm.LSTM(2, 3, seed=int(seed))
        np.testing.assert_array_equal(a.flat_parameters, b.flat_parameters)
        assert np.all(np.abs(a.flat_parameters) <= 1 / np.sqrt(3)) and np.ptp(a.flat_parameters) > 0


def test_constructor_attributes():
    lstm = clstm.LSTM(4, 5, 2, dtype=np.float32, seed=0, batch_first=True, backend="naive")
    assert (lstm.input_size, lstm.hidden_size, lstm.num_layers) == (4, 5, 2)
    assert (
        lstm.dtype == np.dtype(np.float32) and lstm.batch_first is True and lstm.backend == "naive"
    )
    d = clstm.LSTM(1, 1)
    assert d.num_layers == 1 and d.dtype == np.dtype(np.float32) and d.batch_first is False
    assert d.backend in ("default", "blas", "naive")


def test_constructor_positional_only_for_sizes():
    """dtype, seed, batch_first and backend are keyword-only."""
    with pytest.raises(TypeError):
        clstm.LSTM(2, 3, 1, np.float64)


# ------------------------------------------------------------ forward
def x_of(shape, dtype=np.float64):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


@pytest.mark.parametrize("shape", [(4,), (3, 7, 4, 1), (), (1, 1, 1, 1, 4)], ids=str)
def test_forward_wrong_ndim(lstm, shape):
    with pytest.raises(ValueError) as e:
        lstm.forward(x_of(shape))
    assert_message(e, ["x"])


@pytest.mark.parametrize("shape", [(3, 7, 3), (3, 7, 5), (3, 1), (3, 7, 1)], ids=str)
def test_forward_wrong_input_size(lstm, shape):
    with pytest.raises(ValueError) as e:
        lstm.forward(x_of(shape))
    assert_message(e, ["x"], [CASE.D])


@pytest.mark.parametrize("shape", [(0, 7, 4), (3, 0, 4), (0, 4), (0, 0, 4)], ids=str)
def test_forward_empty(lstm, shape):
    with pytest.raises(ValueError) as e:
        lstm.forward(x_of(shape))
    assert_message(e, ["x"])


def test_forward_empty_batch_first():
    lstm = clstm.LSTM(CASE.D, CASE.H, CASE.L, batch_first=True)
    for shape in [(0, 3, 4), (7, 0, 4)]:
        with pytest.raises(ValueError):
            lstm.forward(x_of(shape))


@pytest.mark.parametrize(
    "dtype", [np.int64, np.int32, bool, np.complex128, object, np.uint8], ids=str
)
def test_forward_non_float_x(lstm, dtype):
    x = x_of((3, 7, 4)).astype(dtype)
    with pytest.raises(TypeError) as e:
        lstm.forward(x)
    assert_message(e, ["x"])


STATE_NAMES = {0: ("state[0]", "h0"), 1: ("state[1]", "c0")}


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize(
    "shape", [(2, 6, 5), (2, 7, 4), (1, 7, 5), (3, 7, 5), (7, 5), (2, 5), (2, 7, 5, 1)], ids=str
)
def test_forward_wrong_state_shape(lstm, prob, which, shape):
    state = [prob.h0, prob.c0]
    state[which] = x_of(shape)
    with pytest.raises(ValueError) as e:
        lstm.forward(prob.x, tuple(state))
    assert_message(e, STATE_NAMES[which], (CASE.L, CASE.B, CASE.H))


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("shape", [(2, 1, 5), (2, 4), (5,)], ids=str)
def test_forward_unbatched_wrong_state_shape(lstm, prob, which, shape):
    state = [prob.h0[:, 0], prob.c0[:, 0]]
    state[which] = x_of(shape)
    with pytest.raises(ValueError) as e:
        lstm.forward(prob.x[:, 0], tuple(state))
    assert_message(e, STATE_NAMES[which], (CASE.L, CASE.H))


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("dtype", [np.int64, bool, np.complex64], ids=str)
def test_forward_non_float_state(lstm, prob, which, dtype):
    state = [prob.h0, prob.c0]
    state[which] = state[which].astype(dtype)
    with pytest.raises(TypeError) as e:
        lstm.forward(prob.x, tuple(state))
    assert_message(e, STATE_NAMES[which])


@pytest.mark.parametrize("state", ["array", "1-tuple", "3-tuple", "string"])
def test_forward_malformed_state(lstm, prob, state):
    bad = {
        "array": prob.h0[:1],
        "1-tuple": (prob.h0,),
        "3-tuple": (prob.h0, prob.c0, prob.c0),
        "string": "state",
    }[state]
    with pytest.raises((TypeError, ValueError)) as e:
        lstm.forward(prob.x, bad)
    assert_message(e, ["state", "h0", "state[0]"])


@pytest.mark.parametrize("x", [None, "abc", object()], ids=repr)
def test_forward_non_array_x(lstm, x):
    with pytest.raises((TypeError, ValueError)) as e:
        lstm.forward(x)
    assert_message(e, ["x"])


def test_forward_impossibly_large_broadcast_input():
    """A zero-stride x whose dense copy cannot exist: an exception, no crash."""
    lstm = clstm.LSTM(CASE.D, CASE.H)
    x = np.broadcast_to(np.float32(1), (2**39, 2**19, CASE.D))
    with pytest.raises((ValueError, MemoryError)):
        lstm.forward(x, train=False)


def test_forward_error_leaves_pending_training_forward(lstm, prob):
    """A rejected forward does not disturb a pending training forward."""
    lstm.forward(prob.x, train=True)
    with pytest.raises(ValueError):
        lstm.forward(prob.x[..., :3], train=True)
    dx, _ = lstm.backward(prob.wy)
    assert dx.shape == prob.x.shape


# ------------------------------------------------------------ backward
def assert_needs_training_forward(lstm, *args):
    with pytest.raises(ValueError) as e:
        lstm.backward(*args)
    assert "train=True" in str(e.value) and "forward" in str(e.value), str(e.value)


def test_backward_without_forward(lstm, prob):
    assert_needs_training_forward(lstm, prob.wy)
    assert_needs_training_forward(lstm, None)


def test_backward_after_inference_forward_only(lstm, prob):
    lstm.forward(prob.x, train=False)
    assert_needs_training_forward(lstm, prob.wy)


def test_double_backward(lstm, prob):
    lstm.forward(prob.x, train=True)
    lstm.backward(prob.wy)
    grads = lstm.flat_grads.copy()
    assert_needs_training_forward(lstm, prob.wy)
    np.testing.assert_array_equal(lstm.flat_grads, grads)


@pytest.mark.parametrize(
    "shape", [(3, 7, 4), (3, 6, 5), (2, 7, 5), (7, 3, 5), (3, 7), (3, 7, 5, 1)], ids=str
)
def test_backward_wrong_dy_shape(lstm, prob, shape):
    lstm.forward(prob.x, train=True)
    with pytest.raises(ValueError) as e:
        lstm.backward(x_of(shape))
    assert_message(e, ["dy"], (CASE.T, CASE.B, CASE.H))


DSTATE_NAMES = {0: ("dstate[0]", "dhT", "dh", "dh_n"), 1: ("dstate[1]", "dcT", "dc", "dc_n")}


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("shape", [(2, 6, 5), (1, 7, 5), (7, 5), (3, 7, 5)], ids=str)
def test_backward_wrong_dstate_shape(lstm, prob, which, shape):
    lstm.forward(prob.x, train=True)
    dstate = [prob.wh, prob.wc]
    dstate[which] = x_of(shape)
    with pytest.raises(ValueError) as e:
        lstm.backward(prob.wy, tuple(dstate))
    assert_message(e, DSTATE_NAMES[which], (CASE.L, CASE.B, CASE.H))


@pytest.mark.parametrize("dtype", [np.int64, bool, np.complex128, object], ids=str)
def test_backward_non_float_dy(lstm, prob, dtype):
    lstm.forward(prob.x, train=True)
    with pytest.raises(TypeError) as e:
        lstm.backward(prob.wy.astype(dtype))
    assert_message(e, ["dy"])


def test_backward_shape_of_other_training_forward(lstm, prob):
    """dy must match the latest training forward, not an earlier one."""
    lstm.forward(prob.x, train=True)
    lstm.forward(prob.x[:, :3], train=True)
    with pytest.raises(ValueError):
        lstm.backward(prob.wy)


def test_rejected_backward_changes_nothing(lstm, prob):
    """A backward rejected for its arguments writes no gradient and leaves
    the training forward pending."""
    lstm.forward(prob.x, train=True)
    with pytest.raises(ValueError):
        lstm.backward(prob.wy[:, :3])
    assert not np.any(lstm.flat_grads)
    dx, _ = lstm.backward(prob.wy)
    assert dx.shape == prob.x.shape and np.any(lstm.flat_grads)


# ------------------------------------------------------------ load_state_dict
def assert_unchanged_after(lstm, exc, fn, names=()):
    before = lstm.flat_parameters.copy()
    with pytest.raises(exc) as e:
        fn()
    np.testing.assert_array_equal(lstm.flat_parameters, before)
    if names:
        assert_message(e, names)
    return e


def new_values(lstm):
    """A full state_dict whose every tensor differs from lstm's."""
    return {k: v + 1.0 for k, v in lstm.state_dict().items()}


def test_load_missing_key(lstm):
    sd = new_values(lstm)
    del sd["bias_hh_l1"]
    assert_unchanged_after(lstm, KeyError, lambda: lstm.load_state_dict(sd), ["bias_hh_l1"])


def test_load_unexpected_key(lstm):
    sd = new_values(lstm)
    sd["weight_ih_l2"] = np.zeros((20, 5))
    assert_unchanged_after(lstm, KeyError, lambda: lstm.load_state_dict(sd), ["weight_ih_l2"])


@pytest.mark.parametrize("strict", [True, False])
@pytest.mark.parametrize(
    "name,shape",
    [
        ("bias_hh_l1", (19,)),
        ("weight_ih_l0", (4, 20)),
        ("weight_hh_l1", (20, 5, 1)),
        ("bias_ih_l0", (20, 1)),
    ],
    ids=str,
)
def test_load_wrong_shape(lstm, strict, name, shape):
    sd = new_values(lstm)
    sd[name] = np.zeros(shape)
    sd = {**{k: v for k, v in sd.items() if k != name}, name: sd[name]}  # the bad one last
    expected = lstm.named_parameters()[name].shape
    e = assert_unchanged_after(
        lstm, ValueError, lambda: lstm.load_state_dict(sd, strict=strict), [name]
    )
    assert_message(e, [name], expected)


@pytest.mark.parametrize("value", [None, "abc", object(), {"a": 1}], ids=repr)
def test_load_non_array_value(lstm, value):
    sd = new_values(lstm)
    del sd["bias_hh_l1"]
    sd["bias_hh_l1"] = value
    assert_unchanged_after(
        lstm, (TypeError, ValueError), lambda: lstm.load_state_dict(sd), ["bias_hh_l1"]
    )


@pytest.mark.parametrize("dtype", [np.complex128, object], ids=str)
def test_load_non_float_array(lstm, dtype):
    sd = new_values(lstm)
    sd["bias_hh_l1"] = sd.pop("bias_hh_l1").astype(dtype)
    assert_unchanged_after(
        lstm, (TypeError, ValueError), lambda: lstm.load_state_dict(sd), ["bias_hh_l1"]
    )


@pytest.mark.parametrize("arg", [None, [1, 2], "weights", 3], ids=repr)
def test_load_not_a_mapping(lstm, arg):
    assert_unchanged_after(lstm, (TypeError, ValueError), lambda: lstm.load_state_dict(arg))


# ------------------------------------------------------------ threads
@pytest.mark.parametrize("n", [0, -1, -(2**40)])
def test_set_num_threads_nonpositive(n):
    old = clstm.get_num_threads()
    with pytest.raises(ValueError):
        clstm.set_num_threads(n)
    assert clstm.get_num_threads() == old


@pytest.mark.parametrize("n", [1.5, 2.0, "2", None, [2]], ids=repr)
def test_set_num_threads_non_int(n):
    old = clstm.get_num_threads()
    with pytest.raises(TypeError):
        clstm.set_num_threads(n)
    assert clstm.get_num_threads() == old


def test_set_num_threads_huge():
    old = clstm.get_num_threads()
    with pytest.raises((ValueError, OverflowError)):
        clstm.set_num_threads(2**64)
    assert clstm.get_num_threads() == old


def test_set_and_get_num_threads():
    for n in (1, 3, 2):
        clstm.set_num_threads(n)
        assert clstm.get_num_threads() == n
        assert type(clstm.get_num_threads()) is int


# ------------------------------------------------------------ module
def test_module_functions():
    assert clstm.has_blas() in (True, False)
    assert isinstance(clstm.__version__, str) and clstm.__version__


def test_version_matches_header():
    import pathlib
    import re

    header = pathlib.Path(__file__).resolve().parents[1] / "include" / "clstm.h"
    if not header.exists():
        pytest.skip("no source tree")
    m = re.search(r'#define CLSTM_VERSION_STRING "([^"]+)"', header.read_text())
    assert clstm.__version__ == m.group(1)


# ------------------------------------------------------------ bidirectional, proj_size, dropout
def make(**options):
    return clstm.LSTM(CASE.D, CASE.H, CASE.L, **options)


@pytest.mark.parametrize(
    "value, error",
    [(v, ValueError) for v in (-1, -(2**40), CASE.H, CASE.H + 1, 2**63)]
    + [(v, TypeError) for v in (2.0, 0.0, True, False, "2", None, np.float64(2), [2])],
    ids=repr,
)
def test_constructor_bad_proj_size(value, error):
    """0 or 1 <= proj_size < hidden_size; an int, as the other sizes."""
    with pytest.raises(error) as e:
        make(proj_size=value)
    assert_message(e, ["proj_size"])


@pytest.mark.parametrize(
    "value", ["yes", "", None, 2, 1.0, [True], np.array([True, False])], ids=repr
)
def test_constructor_bad_bidirectional(value):
    with pytest.raises(TypeError) as e:
        make(bidirectional=value)
    assert_message(e, ["bidirectional"])


@pytest.mark.parametrize(
    "value, error",
    [(v, ValueError) for v in (-0.1, -1e-300, 1.0, 1, 1.5, np.inf, -np.inf, np.nan)]
    + [(v, TypeError) for v in ("0.5", None, True, [0.5], 0.5j, np.array([0.5]))],
    ids=repr,
)
def test_constructor_bad_dropout(value, error):
    with pytest.raises(error) as e:
        make(dropout=value)
    assert_message(e, ["dropout"])


def test_constructor_feature_attributes():
    d = clstm.LSTM(2, 3)
    assert (d.bidirectional, d.num_directions, d.proj_size, d.dropout) == (False, 1, 0, 0.0)
    for P in (1, CASE.H - 1, np.int64(2)):
        assert make(proj_size=P).proj_size == P
    m = make(bidirectional=np.bool_(True), proj_size=0, dropout=np.float32(0.25))
    assert m.bidirectional is True and m.num_directions == 2
    assert m.dropout == 0.25 and type(m.dropout) is float and m.proj_size == 0
    assert make(dropout=0).dropout == 0.0 and make(dropout=-0.0).dropout == 0.0


def test_constructor_feature_options_are_keyword_only():
    with pytest.raises(TypeError):
        clstm.LSTM(2, 3, 1, True)


# ------------------------------------------------------------ lengths
@pytest.mark.parametrize(
    "lengths",
    [[3.0] * 7, np.full(7, 2.0, np.float32), [True] * 7, np.ones(7, bool), ["3"] * 7],
    ids=["floats", "float32", "bools", "bool_array", "strings"],
)
def test_forward_non_integer_lengths(lstm, prob, lengths):
    with pytest.raises(TypeError) as e:
        lstm.forward(prob.x, lengths=lengths)
    assert_message(e, ["lengths"])


@pytest.mark.parametrize(
    "lengths",
    [[3] * 6, [3] * 8, [[3] * 7], np.full((7, 1), 3), 3, np.array([], int), np.full((1, 7), 3)],
    ids=["B-1", "B+1", "nested", "column", "scalar", "empty", "row"],
)
def test_forward_lengths_wrong_shape(lstm, prob, lengths):
    with pytest.raises(ValueError) as e:
        lstm.forward(prob.x, lengths=lengths)
    assert_message(e, ["lengths"], [CASE.B])


def test_forward_lengths_empty_list(lstm, prob):
    """[] has no integer dtype either: either error, naming lengths."""
    with pytest.raises((TypeError, ValueError)) as e:
        lstm.forward(prob.x, lengths=[])
    assert_message(e, ["lengths"])


@pytest.mark.parametrize("bad", [-1, CASE.T + 1, 10**9, 2**63, -(2**62)], ids=repr)
@pytest.mark.parametrize("train", [True, False])
def test_forward_lengths_out_of_range(lstm, prob, bad, train):
    lengths = np.array([1, 2, 3, 0, 3, 2, 1], dtype=np.uint64 if bad >= 2**63 else np.int64)
    lengths[4] = bad
    with pytest.raises(ValueError) as e:
        lstm.forward(prob.x, lengths=lengths, train=train)
    assert_message(e, ["lengths"])


@pytest.mark.parametrize("lengths", [[2, 2], 2, np.int64(2), [4], [-1]], ids=repr)
def test_forward_unbatched_lengths(lstm, prob, lengths):
    """Unbatched x takes lengths of shape (1,)."""
    with pytest.raises(ValueError) as e:
        lstm.forward(prob.x[:, 0], lengths=lengths)
    assert_message(e, ["lengths"])
    lstm.forward(prob.x[:, 0], lengths=[2])


def test_forward_batch_first_lengths_follow_the_batch():
    """With batch_first, lengths still has one entry per sequence (B,)."""
    lstm = clstm.LSTM(CASE.D, CASE.H, CASE.L, batch_first=True)
    x = x_of((CASE.B, CASE.T, CASE.D))
    with pytest.raises(ValueError) as e:
        lstm.forward(x, lengths=[1] * CASE.T)
    assert_message(e, ["lengths"], [CASE.B])
    assert lstm.forward(x, lengths=[1] * CASE.B)[0].shape == (CASE.B, CASE.T, CASE.H)


def test_bad_lengths_leave_pending_training_forward(lstm, prob):
    lstm.forward(prob.x, train=True)
    for bad in ([1.5] * CASE.B, [CASE.T + 1] * CASE.B, [1] * (CASE.B + 1)):
        with pytest.raises((TypeError, ValueError)):
            lstm.forward(prob.x, lengths=bad, train=True)
    dx, _ = lstm.backward(prob.wy)
    assert dx.shape == prob.x.shape and np.all(np.isfinite(dx)) and np.any(dx[-1])


# ------------------------------------------------------------ dropout_seed
@pytest.mark.parametrize(
    "seed, error",
    [(-1, ValueError), (2**64, ValueError), (-(2**70), ValueError)]
    + [(v, TypeError) for v in (1.5, np.float64(2), "3", True, np.bool_(False), [1], b"1")],
    ids=repr,
)
def test_forward_bad_dropout_seed(prob, seed, error):
    lstm = CASE.model(np.float64, dropout=0.5)
    with pytest.raises(error) as e:
        lstm.forward(prob.x, train=True, dropout_seed=seed)
    assert_message(e, ["dropout_seed"])


# ------------------------------------------------------------ shapes with N = 2 and P > 0
FEATURE_SHAPES = {
    "bi": Case(3, 7, 4, 5, 2, N=2),
    "proj": Case(3, 7, 4, 5, 2, P=3),
    "bi-proj": Case(3, 7, 4, 5, 3, N=2, P=2),
}


def wrong_state_shapes(case, which):
    """Shapes near the right one of state[0] ("h") or state[1] ("c"): L
    rows instead of N*L, the other of H and R as width, and off by one."""
    NL, B = case.N * case.L, case.B
    width, other = (case.R, case.H) if which == "h" else (case.H, case.R)
    shapes = {
        (case.L, B, width),
        (NL, B, other),
        (NL + 1, B, width),
        (NL, B - 1, width),
        (NL, B, width + 1),
        (NL, width),
        (NL, B, width, 1),
    }
    return sorted(shapes - {(NL, B, width)})


def feature_state_cases():
    for name, case in FEATURE_SHAPES.items():
        for i, which in enumerate("hc"):
            for shape in wrong_state_shapes(case, which):
                yield pytest.param(case, i, shape, id=f"{name}-{which}-{shape}")


@pytest.mark.parametrize("case, which, shape", feature_state_cases())
def test_forward_wrong_state_shape_features(case, which, shape):
    lstm = case.model()
    prob = make_problem(case, seed=62)
    state = [prob.h0, prob.c0]
    state[which] = x_of(shape)
    with pytest.raises(ValueError) as e:
        lstm.forward(prob.x, tuple(state))
    assert_message(e, STATE_NAMES[which], case.state_shape("hc"[which]))
    lstm.forward(prob.x, (prob.h0, prob.c0))


@pytest.mark.parametrize("which", [0, 1])
@pytest.mark.parametrize("name", FEATURE_SHAPES)
def test_forward_unbatched_wrong_state_shape_features(name, which):
    case = FEATURE_SHAPES[name]
    lstm = case.model()
    prob = make_problem(case, seed=63)
    state = [prob.h0[:, 0], prob.c0[:, 0]]
    right = state[which].shape
    for shape in {(case.L, right[1]), (right[0], case.R if which else case.H)} - {right}:
        bad = list(state)
        bad[which] = x_of(shape)
        with pytest.raises(ValueError) as e:
            lstm.forward(prob.x[:, 0], tuple(bad))
        assert_message(e, STATE_NAMES[which], right)
    lstm.forward(prob.x[:, 0], tuple(state))


@pytest.mark.parametrize("case, which, shape", feature_state_cases())
def test_backward_wrong_dstate_shape_features(case, which, shape):
    lstm = case.model()
    prob = make_problem(case, seed=64)
    lstm.forward(prob.x, train=True)
    dstate = [prob.wh, prob.wc]
    dstate[which] = x_of(shape)
    with pytest.raises(ValueError) as e:
        lstm.backward(prob.wy, tuple(dstate))
    assert_message(e, DSTATE_NAMES[which], case.state_shape("hc"[which]))
    assert not np.any(lstm.flat_grads)
    lstm.backward(prob.wy, (prob.wh, prob.wc))


@pytest.mark.parametrize("name", FEATURE_SHAPES)
def test_backward_wrong_dy_shape_features(name):
    case = FEATURE_SHAPES[name]
    lstm = case.model()
    prob = make_problem(case, seed=65)
    lstm.forward(prob.x, train=True)
    T, B, NR = case.T, case.B, case.N * case.R
    for shape in {(T, B, case.R), (T, B, case.H), (T, B, case.N * case.H), (T, B, NR + 1)} - {
        (T, B, NR)
    }:
        with pytest.raises(ValueError) as e:
            lstm.backward(x_of(shape))
        assert_message(e, ["dy"], (T, B, NR))
    lstm.backward(prob.wy)


@pytest.mark.parametrize("shape", [2**62, (2**31, 2**31)])
def test_an_array_too_large_names_itself(shape):
    """checks.empty's MemoryError names the array and its shape, for a size
    (the workspace's bytes, as LSTM._workspace passes it) as for a shape; a
    size once raised TypeError from the message's own formatting."""
    from clstm import checks
    with pytest.raises(MemoryError, match=r"the workspace: cannot allocate an array of "
                                          r"shape \(\d+(, \d+)*,?\)"):
        checks.empty(shape, np.uint8, "the workspace")
