"""Quantized (int8) models: clstm.quantize against an independent NumPy
reference of the int8 numerics (tests/q8_reference.py), every feature, the
kernels' bit-for-bit agreement, streaming, and the refusals. Files:
tests/test_quantize_files.py."""
import numpy as np
import pytest

import clstm
from clstm import _core

import q8_reference as ref

FEATURES = [
    dict(),
    dict(num_layers=2),
    dict(bidirectional=True),
    dict(num_layers=2, bidirectional=True, proj_size=6),
    dict(proj_size=6),
    dict(peepholes=True),
    dict(input_forget=True, clip=1.5),
    dict(num_layers=3, peepholes=True, input_forget=True, proj_size=5),
    # hard sigmoid gates, steep enough to saturate often; and Keras 3's
    dict(num_layers=2, bidirectional=True, gate_activation="hard_sigmoid", gate_alpha=2.0),
    dict(num_layers=2, peepholes=True, input_forget=True, reverse=True,
         gate_activation="hard_sigmoid", gate_alpha=1 / 6),
]


def _model(seed, features, output_size=4, encoding=None, dtype=np.float32):
    if encoding is None:
        return clstm.Model(10, 16, seed=seed, output_size=output_size, dtype=dtype, **features)
    return clstm.Model(6 if encoding == "embedding" else None, 16, seed=seed,
                       output_size=output_size, vocab="abcdefghij", encoding=encoding,
                       dtype=dtype, **features)


def _agrees(actual, expected):
    """The C model against the reference. Both quantize the same activations
    by the same formula, but the reference's gates are float64 and C's
    float32: where that rounding moves an activation across a quantization
    step (rint at a half), the two differ by that step's effect from there
    on in that sequence. Measured over 40 random models: 38 agree to 1e-7
    everywhere, 2 differ by at most 5.3e-4 on under 1% of outputs. A float
    model (no int8 at all) differs by ~1e-3 on nearly every output, so the
    bounds below still tell int8 numerics from float ones."""
    d = np.abs(np.asarray(actual, np.float64) - expected)
    assert np.all(np.isfinite(d)), "NaN or Inf where the reference has none"
    assert (d > 1e-5).mean() <= 0.02, "%.1f%% of outputs off by > 1e-5 (max %.2e)" % (
        100 * (d > 1e-5).mean(), d.max())
    assert d.max() < 5e-3, d.max()


@pytest.mark.parametrize("features", FEATURES, ids=lambda f: ",".join(f) or "plain")
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_raw_input_matches_reference(features, dtype):
    rng = np.random.default_rng(1)
    m = _model(3, features, dtype=dtype)
    q = clstm.quantize(m)
    assert q.quantized and not m.quantized and q.dtype == np.float32
    x = rng.standard_normal((20, 5, 10)).astype(np.float32)
    lens = np.array([20, 13, 0, 1, 7])
    out, (h, c) = q.forward(x, lengths=lens)
    expected = ref.forward(q, x=x, lengths=lens)
    _agrees(out, expected)
    # and int8 is not float: the float model is further from the reference
    f, _ = m.forward(x, lengths=lens, train=False)
    valid = np.arange(20)[:, None] < lens
    assert (np.abs(f - expected)[valid] > 1e-5).mean() > 0.5


@pytest.mark.parametrize("encoding", ["embedding", "onehot"])
@pytest.mark.parametrize("features", [dict(), dict(num_layers=2, bidirectional=True)],
                         ids=["plain", "deep-bidir"])
def test_token_models_match_reference(encoding, features):
    rng = np.random.default_rng(2)
    q = clstm.quantize(_model(4, features, output_size=10, encoding=encoding))
    ids = rng.integers(0, 10, (15, 4)).astype(np.int32)
    lens = np.array([15, 2, 9, 0])
    out, _ = q.forward(ids, lengths=lens)
    _agrees(out, ref.forward(q, ids=ids, lengths=lens))


def test_bare_lstm_matches_reference():
    rng = np.random.default_rng(3)
    q = clstm.quantize(clstm.LSTM(10, 16, num_layers=2, seed=5))
    assert type(q) is clstm.LSTM
    x = rng.standard_normal((12, 3, 10)).astype(np.float32)
    y, _ = q.forward(x)
    _agrees(y, ref.forward(q, x=x))


def test_int8_form():
    """Per-row scales max|w|/127, |q| <= 127, and the float block holds q*s."""
    m = _model(6, dict(proj_size=6))
    q = clstm.quantize(m)
    params, t8 = m.named_parameters(), q.int8_tensors()
    assert set(t8) == {n for n in params.keys() if n.startswith(("weight_", "head.weight"))}
    for name, (qw, s) in t8.items():
        w = params[name]
        assert qw.dtype == np.int8 and qw.shape == w.shape and s.shape == (w.shape[0],)
        assert np.abs(qw.astype(int)).max() <= 127
        np.testing.assert_allclose(s, np.abs(w).max(axis=1) / 127, rtol=1e-6)
        assert np.all(np.abs(qw * s[:, None].astype(np.float64) - w) <= s[:, None] / 2 * 1.0001)
        np.testing.assert_array_equal(q.named_parameters()[name], qw * s[:, None])
    for name in params.keys():  # biases stay float
        if name not in t8:
            np.testing.assert_array_equal(q.named_parameters()[name], params[name])


def _every_kernel():
    names = []
    for name in ("portable", "avx2", "avx-vnni", "avx512-vnni"):
        _core.int8_kernel_limit(name)
        if _core.int8_kernel() == name:
            names.append(name)
    return names


@pytest.fixture
def kernels():
    try:
        yield _every_kernel()
    finally:
        _core.int8_kernel_limit("avx512-vnni")


@pytest.mark.parametrize("features", [dict(), FEATURES[3], FEATURES[7], FEATURES[8]],
                         ids=["plain", "bidir-proj", "every-option", "hard-sigmoid"])
def test_every_kernel_and_thread_count_same_bits(kernels, features):
    """Exact int32 sums and the same float operations after them: every
    kernel this CPU has, at 1 and 2 threads, gives the same bits."""
    for B in (13, 4):  # split by batch rows; by hidden units (fewer than 3 rows a thread)
        _same_bits_everywhere(kernels, features, B)


def _same_bits_everywhere(kernels, features, B):
    rng = np.random.default_rng(7)
    q = clstm.quantize(clstm.Model(10, 40, seed=8, output_size=5, **dict(features, num_layers=2)))
    # 70 steps: two 32-step chunks and a shorter one (threads run different
    # layers, products and chunks at once); H = 40: a part of a panel
    x = rng.standard_normal((70, B, 10)).astype(np.float32)
    lens = rng.integers(0, 71, B)
    first = None
    for name in kernels:
        _core.int8_kernel_limit(name)
        for threads in (1, 2, 2, 2):
            clstm.set_num_threads(threads)
            out, (h, c) = q.forward(x, lengths=lens)
            if first is None:
                first = (out, h, c)
            for a, b in zip((out, h, c), first):
                np.testing.assert_array_equal(a, b, err_msg="%s, %d threads" % (name, threads))
    assert "portable" in kernels


def test_streaming_equals_whole_sequence():
    """Per-row quantization does not depend on the chunk: a stream fed one
    step at a time gives the whole call's bits (float32 only promises this
    for B > 1)."""
    rng = np.random.default_rng(9)
    for B in (1, 7):
        q = clstm.quantize(_model(10, dict(num_layers=2, proj_size=6), output_size=10,
                                  encoding="embedding"))
        ids = rng.integers(0, 10, (40, B)).astype(np.int32)  # over a 32-step chunk
        whole, _ = q.forward(ids)
        state = q.initial_state(B)
        steps = np.stack([q.step(ids[t], state)[0] for t in range(40)])
        np.testing.assert_array_equal(steps, whole)


def test_nan_input_propagates():
    q = clstm.quantize(_model(11, dict()))
    x = np.zeros((3, 2, 10), np.float32)
    x[1, 0, 4] = np.nan
    out, _ = q.forward(x)
    assert np.all(np.isnan(out[1:, 0])) and np.all(np.isfinite(out[:, 1]))
    assert np.all(np.isfinite(out[0]))


def test_inference_only():
    m = _model(12, dict())
    q = clstm.quantize(m)
    x = np.zeros((2, 1, 10), np.float32)
    with pytest.raises(ValueError, match="quantized.*inference only"):
        q.forward(x, train=True)
    with pytest.raises(ValueError, match="quantized.*inference only"):
        q.backward(np.zeros((2, 1, 4), np.float32))
    with pytest.raises(ValueError, match="quantized.*inference only"):
        q.load_state_dict(m.state_dict())
    with pytest.raises(ValueError, match="quantized.*inference only"):
        q.load_state_dict({})  # refused for what it is, not for the missing keys
    with pytest.raises(ValueError, match="read-only"):
        q.flat_parameters[0] = 1.0
    assert q.flat_grads.size == 0  # no gradient block: inference only
    with pytest.raises(ValueError, match="quantized.*inference only"):
        q.named_grads()
    q.zero_grad()
    with pytest.raises(ValueError, match="already quantized"):
        clstm.quantize(q)
    with pytest.raises(ValueError, match="not quantized"):
        m.int8_tensors()
    with pytest.raises(TypeError, match="model: expected"):
        clstm.quantize("model")
    with pytest.raises(ValueError, match="quantized"):
        _core.Model.workspace_size(q._m, 2, 1, True)
    out, _ = q.forward(x)  # the default is inference for a quantized model
    assert out.shape == (2, 1, 4)


def test_nan_weights_refused_and_nothing_changed():
    m = _model(13, dict())
    m.named_parameters()["weight_hh_l0"][3, 2] = np.inf
    before = m.flat_parameters.copy()
    with pytest.raises(ValueError, match="weight_hh_l0 holds NaN, Inf or values beyond float32"):
        clstm.quantize(m)
    np.testing.assert_array_equal(m.flat_parameters, before)


def test_metadata_and_vocab_come_along():
    m = _model(14, dict(), output_size=10, encoding="onehot")
    m.metadata["task"] = "demo"
    q = clstm.quantize(m)
    assert q.vocab == m.vocab and dict(q.metadata) == {"task": "demo"}
    assert clstm.int8_kernel() in ("portable", "avx2", "avx-vnni", "avx512-vnni")


def test_training_a_quantized_model_refused():
    from clstm.tasks import SequenceTask
    from clstm.data import Sequences
    from clstm.trainer import Trainer
    q = clstm.quantize(_model(15, dict(), output_size=2))
    seqs = Sequences(np.zeros((4, 3, 10), np.float32), np.full(4, 3), np.zeros(4, np.int64))
    with pytest.raises(ValueError, match="quantized.*inference only"):
        Trainer(q, SequenceTask(seqs, None, 2))
    with pytest.raises(ValueError, match="quantized.*inference only"):
        clstm.optim.Adam(q)


def test_float64_beyond_float32_range():
    """A float64 source: a weight beyond float32's range is refused (it
    would be Inf), a row too small for float32 quantizes to zeros."""
    m = _model(16, dict(), dtype=np.float64)
    m.named_parameters()["bias_hh_l0"][0] = 1e45
    with pytest.raises(ValueError, match="bias_hh_l0 holds NaN, Inf or values beyond float32"):
        clstm.quantize(m)
    m.named_parameters()["bias_hh_l0"][0] = 0.0
    m.named_parameters()["weight_hh_l0"][5] = 1e-50
    q = clstm.quantize(m)
    qw, s = q.int8_tensors()["weight_hh_l0"]
    assert np.all(qw[5] == 0) and s[5] == 1.0
