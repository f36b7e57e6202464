"""Sizes that overflow or cannot be allocated: an exception (MemoryError,
OverflowError or ValueError) whose message names the argument, never a crash
and never a wrapped size. tests/test_errors.py covers the constructor's
huge sizes without the message, and one broadcast input; this file adds the
message and the other entry points. Inputs are zero-stride views
(broadcast_to, as_strided), so nothing big is ever allocated."""

import numpy as np
import pytest
from conftest import assert_message
from numpy.lib.stride_tricks import as_strided

import clstm
from clstm import losses

ERRORS = (MemoryError, OverflowError, ValueError)
HUGE = [2**40, 2**62, 2**63 - 1]


# ------------------------------------------------------------ construction
@pytest.mark.parametrize("value", HUGE, ids=str)
@pytest.mark.parametrize("pos, name", [(0, "input_size"), (1, "hidden_size"), (2, "num_layers")])
def test_lstm_huge_size_names_it(pos, name, value):
    sizes = [3, 4, 1]
    sizes[pos] = value
    with pytest.raises(ERRORS) as e:
        clstm.LSTM(*sizes)
    assert_message(e, [name])
    assert str(value) in str(e.value)


@pytest.mark.parametrize("value", HUGE, ids=str)
def test_lstm_huge_sizes_bidirectional_projection(value):
    with pytest.raises(ERRORS) as e:
        clstm.LSTM(3, value, 2, bidirectional=True, proj_size=2)
    assert_message(e, ["hidden_size"])


@pytest.mark.parametrize("value", HUGE, ids=str)
def test_model_huge_vocab(value):
    with pytest.raises(ERRORS) as e:
        clstm.Model(4, 4, encoding="embedding", vocab_size=value)
    assert_message(e, ["vocab_size"])


@pytest.mark.parametrize("value", HUGE, ids=str)
def test_model_huge_head(value):
    with pytest.raises(ERRORS) as e:
        clstm.Model(4, 4, output_size=value)
    assert_message(e, ["output_size"])


def test_still_usable_after_failures():
    for v in HUGE:
        with pytest.raises(ERRORS):
            clstm.LSTM(v, v)
    y, _ = clstm.LSTM(2, 3).forward(np.ones((2, 1, 2), np.float32))
    assert y.shape == (2, 1, 3) and np.all(np.isfinite(y))


# ------------------------------------------------------------ forward
@pytest.fixture(scope="module")
def small():
    return clstm.LSTM(3, 4)


# numpy itself refuses views of 2**63 bytes or more, so these are the
# largest zero-stride inputs there can be: their dense copy cannot exist.
@pytest.mark.parametrize("train", [False, True])
@pytest.mark.parametrize(
    "shape",
    [
        (2**59, 1, 3),
        (1, 2**59, 3),
        (2**39, 2**19, 3),
        (2**29, 2**29, 3),
    ],
    ids=str,
)
def test_forward_huge_broadcast_x(small, shape, train):
    x = np.broadcast_to(np.float32(1), shape)
    with pytest.raises(ERRORS) as e:
        small.forward(x, train=train)
    assert_message(e, ["x"])


@pytest.mark.parametrize(
    "shape",
    [(2**38, 2**20, 3), (2**36, 2**4, 3)],
    ids=str,
)
def test_forward_huge_as_strided_x(small, shape):
    x = as_strided(np.zeros(3, np.float32), shape, (0, 0, 4))
    with pytest.raises(ERRORS) as e:
        small.forward(x, train=True)
    assert_message(e, ["x"])


@pytest.mark.parametrize("train", [False, True])
def test_forward_output_cannot_be_allocated(train):
    """x is small enough to copy (64 MB); y (T, B, 2H) is 128 GiB."""
    lstm = clstm.LSTM(1, 1024, bidirectional=True)
    x = np.broadcast_to(np.float32(1), (2**14, 2**10, 1))
    with pytest.raises(ERRORS) as e:
        lstm.forward(x, train=train)
    assert_message(e, ["x", "y", "T", "B"])


@pytest.mark.parametrize("B", [2**62, 2**63 - 1, 2**40], ids=str)
def test_initial_state_huge_batch(small, B):
    with pytest.raises(ERRORS) as e:
        small.initial_state(B)
    assert_message(e, ["batch_size"])


def test_huge_lengths_and_state_rejected(small):
    x = np.ones((3, 2, 3), np.float32)
    with pytest.raises(ValueError) as e:
        small.forward(x, lengths=np.array([2**62, 1]))
    assert_message(e, ["lengths"])
    h = np.broadcast_to(np.float32(0), (1, 2**40, 4))
    with pytest.raises(ERRORS) as e:
        small.forward(x, (h, h))
    assert_message(e, ["state[0]", "h0", "state"])


def test_model_forward_output_cannot_be_allocated():
    m = clstm.Model(4, 4, output_size=2**16)
    x = np.broadcast_to(np.float32(1), (2**14, 2**10, 4))
    with pytest.raises(ERRORS) as e:
        m.forward(x, train=False)
    assert_message(e, ["x", "out", "T", "B", "output_size"])


def test_model_forward_huge_ids():
    m = clstm.Model(3, 4, encoding="embedding", vocab_size=5)
    ids = np.broadcast_to(np.int32(1), (2**40, 2**20))
    with pytest.raises(ERRORS) as e:
        m.forward(ids, train=False)
    assert_message(e, ["ids"])


# ------------------------------------------------------------ losses
def test_softmax_huge():
    with pytest.raises(ERRORS) as e:
        losses.softmax(np.broadcast_to(np.float32(1), (2**40, 2**20)))
    assert_message(e, ["z"])


@pytest.mark.parametrize("fn", ["cross_entropy", "mse"])
def test_losses_huge_out(fn):
    out = np.broadcast_to(np.float32(1), (2**30, 2**20, 4))
    if fn == "cross_entropy":
        targets = np.broadcast_to(np.int32(0), (2**30, 2**20))
    else:
        targets = out
    with pytest.raises(ERRORS) as e:
        getattr(losses, fn)(out, targets)
    assert_message(e, ["out"])
