"""clstm.keras: weights exported to Keras 3 and run by Keras itself (the
oracle), on its torch backend; import from Keras layers and models; refusals."""

import os
import subprocess
import sys

import numpy as np
import pytest

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported
keras = pytest.importorskip("keras")
if not keras.__version__.startswith("3."):
    pytest.skip("clstm.keras needs Keras 3, got %s" % keras.__version__, allow_module_level=True)

import clstm  # noqa: E402
from clstm.keras import keras_model, lstm_from_keras, lstm_to_keras  # noqa: E402

# Keras's torch backend converts tensors with np.array(x), which NumPy 2 warns about
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")

# Keras (torch backend) and clstm both compute in float32 with their own
# summation orders and activation code; over T <= 6 steps of values below 1
# the observed differences are below 2e-7 (a few float32 ulps), so 1e-5
# passes with margin and still fails for a wrong gate, bias or time order
# (differences of 1e-2 and more). float64: observed below 1e-15, except with
# a mask: then Keras runs its generic cell, whose keras.ops.matmul returns
# float32 for float64 tensors on the torch backend (Keras 3.15.1; observed
# up to 5e-8), so masked float64 runs get the float32 tolerance.
TOL = {np.float32: dict(rtol=1e-5, atol=1e-5), np.float64: dict(rtol=1e-12, atol=1e-12)}
T, B, D, H = 6, 4, 3, 5
LENGTHS = np.array([6, 3, 0, 1])  # full, partial, empty, one step


def run(model, *inputs):
    """A Keras model's outputs as NumPy arrays."""
    out = model(list(inputs) if len(inputs) > 1 else inputs[0])
    if isinstance(out, (list, tuple)):
        return [keras.ops.convert_to_numpy(o) for o in out]
    return keras.ops.convert_to_numpy(out)


def random_input(lstm, seed=0):
    """x in the model's layout and the same x batch-first for Keras."""
    x = np.random.default_rng(seed).standard_normal((B, T, lstm.input_size)).astype(lstm.dtype)
    return (x if lstm.batch_first else x.transpose(1, 0, 2)), x


def clstm_batch_first(lstm, y):
    return y if lstm.batch_first else y.transpose(1, 0, 2)


CONFIGS = [  # num_layers, bidirectional, reverse, batch_first, dtype
    (1, False, False, False, np.float32),
    (2, False, False, True, np.float32),
    (3, False, False, False, np.float32),
    (1, True, False, True, np.float32),
    (2, True, False, False, np.float32),
    (1, False, True, False, np.float32),
    (3, False, True, True, np.float32),
    (2, True, False, True, np.float64),
    (2, False, True, False, np.float64),
]


def make(L, bidirectional, reverse, batch_first, dtype, seed=1):
    return clstm.LSTM(D, H, L, bidirectional=bidirectional, reverse=reverse,
                      batch_first=batch_first, dtype=dtype, seed=seed)


@pytest.mark.parametrize("masked", [False, True], ids=["full", "lengths"])
@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "L%d%s%s%s-%s" % (
    c[0], "-bi" if c[1] else "", "-rev" if c[2] else "", "-bf" if c[3] else "",
    np.dtype(c[4]).name))
def test_keras_model_matches_clstm(config, masked):
    lstm = make(*config)
    x, xk = random_input(lstm)
    lengths = LENGTHS if masked else None
    y, (h, c) = lstm.forward(x, lengths=lengths, train=False)
    model = lstm.keras_model(return_state=True, mask=masked)
    inputs = [xk, np.arange(T)[None, :] < LENGTHS[:, None]] if masked else [xk]
    yk, hk, ck = run(model, *inputs)
    tol = TOL[np.float32 if masked else config[4]]
    assert yk.dtype == lstm.dtype
    np.testing.assert_allclose(yk, clstm_batch_first(lstm, y), **tol)
    np.testing.assert_allclose(hk, h, **tol)
    np.testing.assert_allclose(ck, c, **tol)
    # without states: the same y
    y_only = run(lstm.keras_model(mask=masked), *inputs)
    np.testing.assert_allclose(y_only, yk, **tol)


def test_go_backwards_layer_is_reverse_flipped():
    """A bare go_backwards layer (not keras_model's flips): its output is
    clstm's reverse y flipped in time; with a mask too, the padding read first."""
    lstm = make(1, False, True, True, np.float32)
    x, _ = random_input(lstm)
    layer = keras.layers.LSTM(H, return_sequences=True, return_state=True, go_backwards=True)
    layer(x)
    layer.set_weights(lstm.to_keras()[0])
    mask = np.arange(T)[None, :] < LENGTHS[:, None]
    for lengths, kw in ((None, {}), (LENGTHS, dict(mask=mask))):
        y, (h, c) = lstm.forward(x, lengths=lengths)
        yk, hk, ck = (keras.ops.convert_to_numpy(o) for o in layer(x, **kw))
        np.testing.assert_allclose(yk[:, ::-1], y, **TOL[np.float32])
        np.testing.assert_allclose(hk, h[0], **TOL[np.float32])
        np.testing.assert_allclose(ck, c[0], **TOL[np.float32])
        assert np.abs(yk - y).max() > 1e-2  # unflipped it differs


def test_bidirectional_weights_forward_then_backward():
    lstm = make(1, True, False, True, np.float32)
    x, _ = random_input(lstm)
    layer = keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=True))
    layer(x)
    w = lstm.to_keras()[0]
    assert [a.shape for a in w] == [a.shape for a in layer.get_weights()]
    assert "forward" in layer.weights[0].path and "backward" in layer.weights[3].path
    layer.set_weights(w)
    y, _ = lstm.forward(x)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(layer(x)), y, **TOL[np.float32])
    layer.set_weights(w[3:] + w[:3])  # swapped, it must differ
    assert np.abs(keras.ops.convert_to_numpy(layer(x)) - y).max() > 1e-2


def test_keras_default_mask_output_repeats_last_step():
    """What keras_model's zero_output_for_mask=True is for: by default a
    forward Keras LSTM repeats the last valid output over the padding, where
    clstm (and keras_model) give 0."""
    lstm = make(1, False, False, True, np.float32)
    x, _ = random_input(lstm)
    layer = keras.layers.LSTM(H, return_sequences=True)
    layer(x)
    layer.set_weights(lstm.to_keras()[0])
    yk = keras.ops.convert_to_numpy(layer(x, mask=np.arange(T)[None, :] < LENGTHS[:, None]))
    y, _ = lstm.forward(x, lengths=LENGTHS)
    for b, n in enumerate(LENGTHS):
        np.testing.assert_allclose(yk[b, :n], y[b, :n], **TOL[np.float32])
        np.testing.assert_array_equal(yk[b, n:], np.broadcast_to(yk[b, n - 1] if n else 0,
                                                                 yk[b, n:].shape))
        assert not y[b, n:].any()


@pytest.mark.parametrize("config", CONFIGS[::2], ids=str)
def test_round_trip(config):
    lstm = make(*config)
    weights = lstm.to_keras()
    back = clstm.LSTM.from_keras(lstm.keras_model())
    assert (back.num_layers, back.bidirectional, back.reverse, back.input_size,
            back.hidden_size, back.dtype, back.batch_first) == (
        lstm.num_layers, lstm.bidirectional, lstm.reverse, D, H, lstm.dtype, True)
    again = back.to_keras()
    for a, b in zip(sum(weights, []), sum(again, [])):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)  # exact
    p, q = dict(lstm.named_parameters().items()), dict(back.named_parameters().items())
    for name in p:
        if name.startswith("bias_hh"):
            assert not q[name].any()
        elif name.startswith("bias_ih"):
            np.testing.assert_array_equal(q[name], p[name] + p[name.replace("_ih", "_hh")])
        else:
            np.testing.assert_array_equal(q[name], p[name])


def test_from_keras_own_initialisation_and_layers():
    """Keras-initialised layers (Keras's orthogonal and unit_forget_bias
    initialisers), imported, compute what Keras computes; the list form."""
    layers = [keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=True)),
              keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=True))]
    x = np.random.default_rng(3).standard_normal((B, T, D)).astype(np.float32)
    yk = keras.ops.convert_to_numpy(layers[1](layers[0](x)))
    lstm = clstm.LSTM.from_keras(layers)
    assert lstm.batch_first and lstm.bidirectional and lstm.num_layers == 2
    np.testing.assert_allclose(lstm.forward(x)[0], yk, **TOL[np.float32])
    for a, b in zip(sum(lstm.to_keras(), []), layers[0].get_weights() + layers[1].get_weights()):
        np.testing.assert_array_equal(a, b)


def test_from_keras_no_bias_and_masking_layer():
    model = keras.Sequential([keras.Input((None, D)), keras.layers.Masking(0.0),
                              keras.layers.LSTM(H, use_bias=False, return_sequences=True)])
    x = np.random.default_rng(4).standard_normal((B, T, D)).astype(np.float32)
    x[np.arange(T)[None, :] >= LENGTHS[:, None]] = 0.0
    lstm = lstm_from_keras(model, batch_first=False)
    assert not lstm.batch_first
    assert not any(v.any() for k, v in lstm.named_parameters().items() if "bias" in k)
    y, _ = lstm.forward(x.transpose(1, 0, 2), lengths=LENGTHS)
    yk = run(model, x)
    for b, n in enumerate(LENGTHS):  # Keras repeats the last output past n
        np.testing.assert_allclose(yk[b, :n], y[:n, b], **TOL[np.float32])


@pytest.mark.parametrize("setting", [dict(proj_size=2), dict(peepholes=True),
                                     dict(input_forget=True), dict(clip=3.0)], ids=str)
def test_to_keras_refuses(setting):
    lstm = clstm.LSTM(D, H, seed=0, **setting)
    name = next(iter(setting))
    with pytest.raises(NotImplementedError, match=name):
        lstm.to_keras()
    with pytest.raises(NotImplementedError, match=name):
        keras_model(lstm)
    with pytest.raises(TypeError, match="lstm"):
        lstm_to_keras("lstm")


def test_to_keras_refuses_a_head():
    m = clstm.Model(D, H, output_size=2, seed=0)
    with pytest.raises(NotImplementedError, match="bare LSTM"):
        m.to_keras()


def _built(layer):
    layer(np.zeros((1, 2, D), np.float32))
    return layer


def _functional_with_relu():
    x = keras.Input((None, D))
    y = keras.ops.relu(keras.layers.LSTM(H, return_sequences=True)(x))
    return keras.Model(x, keras.layers.LSTM(H, return_sequences=True)(y))


def _functional_backwards_without_flips():
    x = keras.Input((None, D))
    y = keras.layers.LSTM(H, go_backwards=True, return_sequences=True)(x)
    return keras.Model(x, keras.layers.LSTM(H, go_backwards=True, return_sequences=True)(y))


@pytest.mark.parametrize("layer, match", [
    (lambda: _built(keras.layers.LSTM(H, recurrent_activation="hard_sigmoid")), "hard_sigmoid"),
    (lambda: _built(keras.layers.LSTM(H, activation="relu")), "relu"),
    (lambda: _built(keras.layers.Bidirectional(keras.layers.LSTM(H), merge_mode="sum")),
     "merge_mode"),
    (lambda: keras.Sequential([keras.Input((None, D)), keras.layers.LSTM(H)]
                              + [keras.layers.Dense(2)]), "Dense"),
    (lambda: keras.Sequential([keras.Input((None, D)),
                               keras.layers.LSTM(H, go_backwards=True, return_sequences=True),
                               keras.layers.LSTM(H, go_backwards=True)]), "no flip"),
    (lambda: keras.Sequential([keras.Input((None, D)),
                               keras.layers.LSTM(H, return_sequences=True),
                               keras.layers.LSTM(H + 1)]), "layer 1"),
    (lambda: _functional_with_relu(), "Relu"),
    (lambda: _functional_backwards_without_flips(), "no flip"),
    (lambda: keras.layers.LSTM(H), "built"),
    (lambda: "lstm", "layer_or_model"),
], ids=["hard_sigmoid", "relu", "merge_mode", "dense", "sequential-backwards", "units",
        "relu-op", "functional-backwards", "unbuilt", "type"])
def test_from_keras_refuses(layer, match):
    with pytest.raises((ValueError, TypeError), match=match):
        lstm_from_keras(layer())


def test_to_keras_needs_no_keras():
    """to_keras works without Keras; keras_model says how to install it."""
    code = ("import sys; sys.modules['keras'] = None\n"
            "import clstm\n"
            "m = clstm.LSTM(3, 5, 2, bidirectional=True, seed=0)\n"
            "w = m.to_keras(); assert [len(l) for l in w] == [6, 6], w\n"
            "assert w[1][0].shape == (10, 20)\n"
            "try:\n    m.keras_model()\nexcept ImportError as e:\n"
            "    assert 'pip install keras' in str(e), e\nelse:\n    raise SystemExit(1)\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


def test_from_keras_classmethod_dispatch():
    layer = _built(keras.layers.LSTM(H))
    with pytest.raises(TypeError, match="recurrent_kernel"):
        clstm.LSTM.from_keras(layer, np.zeros((H, 4 * H)))
    a = clstm.LSTM.from_keras(layer)
    b = clstm.LSTM.from_keras(*layer.get_weights(), batch_first=True)
    for (n, x), (_, y) in zip(a.named_parameters().items(), b.named_parameters().items()):
        np.testing.assert_array_equal(x, y, err_msg=n)
