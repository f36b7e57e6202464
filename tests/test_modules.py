"""The package's modules: the old import path, the one list of settings,
the shared checks and layouts."""
import json
import struct

import numpy as np
import pytest

import clstm
from clstm import checks, config, layout


def test_old_import_path_keeps_its_names():
    from clstm.lstm import (LSTM, LSTMState, Metadata, get_min_thread_work,  # noqa: F401
                            get_num_threads, has_blas, set_min_thread_work, set_num_threads)
    assert LSTM is clstm.LSTM and LSTMState is clstm.LSTMState
    assert set_num_threads is clstm.set_num_threads and Metadata is config.Metadata


def test_model_is_an_lstm_and_an_lstm_has_the_model_settings():
    m = clstm.Model(vocab="abc", hidden_size=4, output_size=3, seed=0)
    lstm = clstm.LSTM(3, 4, seed=0)
    assert isinstance(m, clstm.LSTM) and not isinstance(lstm, clstm.Model)
    assert (lstm.encoding, lstm.vocab_size, lstm.output_size, lstm.softmax) == (None, 0, 0, False)
    assert lstm.is_bare_lstm and lstm.out_size == 4 and not m.is_bare_lstm
    for k in config.SETTINGS:
        assert hasattr(lstm, k) and hasattr(m, k), k


def _file_metadata(path):
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n])["__metadata__"]


def test_reserved_metadata_is_what_the_c_writer_writes(tmp_path):
    """config.SETTINGS is the one list of setting names: a file's config keys
    (written by C) are exactly RESERVED_METADATA in a version 4 file (hard
    sigmoid gates: every key), and a subset of it in a version 1 file (a
    forward model) or 3 (a reverse one, with "reverse")."""
    for kw, version in (({}, "1"), ({"reverse": True}, "3"),
                        ({"gate_activation": "hard_sigmoid"}, "4")):
        m = clstm.Model(vocab="abc", hidden_size=4, output_size=3, seed=0, **kw)
        m.metadata["task"] = "char"
        clstm.save(m, tmp_path / "m.safetensors")
        meta = _file_metadata(tmp_path / "m.safetensors")
        assert meta["format_version"] == version
        keys = set(meta) - {"task"}
        if version == "4":
            assert keys == config.RESERVED_METADATA
        else:
            assert keys < config.RESERVED_METADATA
            assert ("reverse" in keys) == (version == "3")


@pytest.mark.parametrize("make", [lambda: clstm.LSTM(3, 5, 2, proj_size=2, peepholes=True,
                                                      clip=1.5, dtype=np.float64, seed=1),
                                  lambda: clstm.Model(encoding="embedding", vocab_size=7,
                                                      input_size=3, hidden_size=4,
                                                      output_size=2, bidirectional=True,
                                                      seed=1)])
def test_settings_round_trip_through_the_c_config(make):
    m = make()
    got = config.settings_of(m._m)
    for k in config.SETTINGS:
        assert got[k] == getattr(m, k), k
    assert config.core_settings(m)["dtype"] == clstm._core.DTYPES[m.dtype.name]


def test_lengths_of_the_wrong_dtype_raise_one_error_for_forward_and_losses():
    lstm = clstm.LSTM(2, 3, seed=0)
    for call in (lambda: lstm.forward(np.zeros((4, 2, 2)), lengths=[1.0, 2.0]),
                 lambda: clstm.losses.mse(np.zeros((4, 2, 3)), np.zeros((4, 2, 3)),
                                          lengths=np.array([1.0, 2.0]))):
        with pytest.raises(checks.DTypeError, match=r"lengths: expected \(2,\) integers"):
            call()
    assert issubclass(checks.DTypeError, TypeError) and issubclass(checks.DTypeError,
                                                                   ValueError)


@pytest.mark.parametrize("batch_first", [False, True])
@pytest.mark.parametrize("shape", [(2, 3, 4), (2, 4)], ids=["batched", "unbatched"])
def test_layout_round_trip(batch_first, shape):
    """split gives a time-first view whose caller's shape is a's; from and
    to time-first invert each other."""
    a = np.arange(float(np.prod(shape))).reshape(shape)
    t, lay = layout.split(a, batch_first, "a", ("F",))
    assert t.ndim == 3 and layout.shape(lay, t.shape[0], t.shape[1], (4,)) == a.shape
    np.testing.assert_array_equal(layout.from_time_first(np.ascontiguousarray(t), lay), a)
    np.testing.assert_array_equal(layout.to_time_first(a, lay), t)
    # against explicit indexing: t[time, batch] is a[time] unbatched, a[batch, time]
    # batch-first, a[time, batch] time-first
    for i in range(t.shape[0]):
        for j in range(t.shape[1]):
            want = a[i] if a.ndim == 2 else a[j, i] if batch_first else a[i, j]
            np.testing.assert_array_equal(t[i, j], want)
    with pytest.raises(ValueError, match=r"a: expected shape \((B, T|T, B), F\) or \(T, F\)"):
        layout.split(a[None, None], batch_first, "a", ("F",))
