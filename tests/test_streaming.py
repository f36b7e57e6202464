"""Streaming: LSTMState, step(), forward() on chunks, reset()."""

import numpy as np
import pytest

import clstm
import reference
from conftest import assert_close, assert_message, params64

DTYPES = [np.float32, np.float64]


def model(dtype, L=2, P=0, **kw):
    return clstm.LSTM(3, 10, L, proj_size=P, dtype=dtype, seed=7, **kw)


def inputs(T, B, dtype, seed=0):
    return np.random.default_rng(seed).standard_normal((T, B, 3)).astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("P", [0, 4])
def test_steps_equal_the_reference(dtype, P):
    """Feeding one step at a time reproduces the float64 reference run over
    the whole sequence, outputs and final states."""
    m = model(dtype, P=P)
    x = inputs(40, 3, dtype)
    y_ref, h_ref, c_ref, _ = reference.forward(params64(m), x)
    st = m.initial_state(3)
    ys = np.stack([m.step(x[t], st)[0] for t in range(len(x))])
    assert_close(ys, y_ref, dtype, "y")
    assert_close(st.h, h_ref, dtype, "h")
    assert_close(st.c, c_ref, dtype, "c")


@pytest.mark.parametrize("B", [1, 9])
def test_steps_of_many_streams_and_batch_first(B):
    """step() at B = 1 (row kernels) and B = 9 (on two threads the steps
    split by batch rows), batch_first included: y_t is (B, R) and the run
    equals the float64 reference."""
    clstm.set_num_threads(2)
    old = clstm.get_min_thread_work()
    clstm.set_min_thread_work(0)
    try:
        for batch_first in (False, True):
            m = model(np.float32, batch_first=batch_first)
            x = inputs(12, B, np.float32, seed=3)
            y_ref, h_ref, c_ref, _ = reference.forward(params64(m), x)
            st = m.initial_state(B)
            ys = []
            for t in range(len(x)):
                y_t, st2 = m.step(x[t], st)
                assert st2 is st and y_t.shape == (B, 10)
                ys.append(y_t)
            assert_close(np.stack(ys), y_ref, np.float32, "y")
            assert_close(st.h, h_ref, np.float32, "h")
    finally:
        clstm.set_min_thread_work(old)


def test_core_step_checks_sizes():
    """The binding's streaming entry point checks every length itself."""
    m = model(np.float32)
    st = m.initial_state(2)
    h, c = st.h.reshape(-1), st.c.reshape(-1)
    x, y = np.zeros(6, np.float32), np.zeros(20, np.float32)
    with pytest.raises(ValueError, match="h0: expected 40 elements, got 39"):
        m._m.step(2, h[:-1], c, x, y, st._ws)
    with pytest.raises(ValueError, match="x: expected 6 elements, got 5"):
        m._m.step(2, h, c, x[:-1], y, st._ws)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cuts", [(1,), (17,), (5, 6, 40), (33, 34)])
def test_chunks_equal_one_call(dtype, cuts):
    """A sequence fed in chunks (crossing the 32-step inference chunk) equals
    one forward over all of it, to float rounding."""
    m = model(dtype)
    x = inputs(70, 4, dtype, seed=1)
    y_all, (h_all, c_all) = m.forward(x, train=False)
    st = m.initial_state(4)
    ys = [m.forward(part, st, train=False)[0] for part in np.split(x, cuts)]
    assert_close(np.concatenate(ys), y_all, dtype, "y")
    assert_close(st.h, h_all, dtype, "h")
    assert_close(st.c, c_all, dtype, "c")


def test_state_is_advanced_in_place_and_returned():
    m = model(np.float64)
    st = m.initial_state(2)
    h_before = st.h
    y, st2 = m.forward(inputs(5, 2, np.float64), st, train=False)
    assert st2 is st and st.h is h_before
    assert np.any(st.h != 0) and y.shape == (5, 2, 10)


def test_reset_one_stream_leaves_the_others():
    """After reset(i), stream i restarts from zeros; the other streams go on
    as if nothing happened (compared with runs that were never reset)."""
    m = model(np.float64)
    x = inputs(12, 3, np.float64, seed=2)
    st = m.initial_state(3)
    m.forward(x[:6], st, train=False)
    st.reset(1)
    y, _ = m.forward(x[6:], st, train=False)
    y_cont, _ = m.forward(x, train=False)
    y_fresh, _ = m.forward(x[6:], train=False)
    np.testing.assert_array_equal(y[:, [0, 2]], y_cont[6:, [0, 2]])
    np.testing.assert_array_equal(y[:, 1], y_fresh[:, 1])


def test_reset_all_and_lengths_in_chunks():
    """A stream whose chunk is shorter (lengths) keeps its state past its
    length; reset() zeroes everything."""
    m = model(np.float64, L=1)
    x = inputs(8, 2, np.float64, seed=3)
    st = m.initial_state(2)
    m.forward(x, st, lengths=[8, 3], train=False)
    _, (h, c) = m.forward(x, lengths=[8, 3], train=False)
    np.testing.assert_array_equal(st.h, h)
    np.testing.assert_array_equal(st.c, c)
    st.reset()
    assert not st.h.any() and not st.c.any()


def test_streaming_bad_input():
    m = model(np.float32)
    st = m.initial_state(2)
    with pytest.raises(ValueError) as e:
        m.step(np.zeros((3, 3), np.float32), st)  # batch 3, state 2
    assert_message(e, ["state"])
    with pytest.raises(ValueError) as e:
        m.step(np.zeros((2, 4), np.float32), st)
    assert_message(e, ["x_t"])
    with pytest.raises(TypeError) as e:
        m.step(np.zeros((2, 3), np.float32), (st.h, st.c))
    assert_message(e, ["state"])
    with pytest.raises(ValueError) as e:
        model(np.float64).step(np.zeros((2, 3)), st)  # dtype of another model
    assert_message(e, ["state"])
    for bad, err in [(2, IndexError), (-1, IndexError), (1.0, TypeError), (True, TypeError)]:
        with pytest.raises(err) as e:
            st.reset(bad)
        assert_message(e, ["i"])
    with pytest.raises(ValueError) as e:
        clstm.LSTM(3, 4, bidirectional=True).initial_state(1)
    assert_message(e, ["initial_state"])
    for bad, err in [(0, ValueError), (1.5, TypeError)]:
        with pytest.raises(err) as e:
            m.initial_state(bad)
        assert_message(e, ["batch_size"])
