"""Keras 3 interchange for clstm.LSTM: weights for keras.layers.LSTM, a Keras
model that computes the same, and import from Keras layers and models.

keras is imported inside the functions, so ``import clstm`` never needs it.

Keras's LSTM against clstm's (torch.nn.LSTM's) parameters, H hidden, D input:

    Keras, one layer per clstm layer k    clstm, per layer k and direction d
    kernel (D, 4H)                        weight_ih_l{k}[_reverse].T (4H, D)
    recurrent_kernel (H, 4H)              weight_hh_l{k}[_reverse].T (4H, H)
    bias (4H,)                            bias_ih_l{k}[...] + bias_hh_l{k}[...]
    gate blocks of H columns: i, f, c, o  gate blocks of H rows: i, f, g, o (c == g)
    activation="tanh", recurrent_activation="sigmoid" (Keras 3's defaults)

A bidirectional layer is keras.layers.Bidirectional(LSTM(...)) (merge_mode
"concat": [forward, backward] along the last axis, as clstm); its
get_weights() is the forward layer's three arrays, then the backward
layer's. A reverse model's layers are LSTM(..., go_backwards=True).

Keras has no peepholes, input_forget, clip or projection, and its layers are
batch-first only: x (B, T, D) whatever the clstm model's batch_first.
"""
import numpy as np

from clstm.checks import to_numpy
from clstm.interop import unit_suffixes
from clstm.model import LSTM

__all__ = ["lstm_to_keras", "lstm_from_keras", "keras_model"]

_UNSUPPORTED = ("proj_size", "peepholes", "input_forget", "clip")
_MODEL_OPS = ("Flip", "Stack")  # the keras.ops calls keras_model puts in its models


def _keras():
    """The keras package, or an ImportError that says how to install it."""
    try:
        import keras
    except ImportError as e:
        raise ImportError("clstm.keras needs Keras 3: pip install keras (and a backend, "
                          "e.g. torch, chosen with KERAS_BACKEND=torch)") from e
    if not keras.__version__.startswith("3."):
        raise ImportError("clstm.keras needs Keras 3, got keras %s" % keras.__version__)
    return keras


# ------------------------------------------------------------------ export
def lstm_to_keras(lstm):
    """The weights of lstm for Keras: one list per layer, in Keras's
    set_weights order. A one-direction layer's list is [kernel (D, 4H),
    recurrent_kernel (H, 4H), bias (4H,)] for keras.layers.LSTM(H); a
    bidirectional layer's is those of the forward direction, then those of the
    reverse one, for keras.layers.Bidirectional(LSTM(H)). D is input_size for
    layer 0, N*H after. Arrays are new, in the model's dtype; bias is
    bias_ih + bias_hh (Keras has one bias).

    Raises NotImplementedError for what Keras's LSTM lacks: proj_size > 0,
    peepholes, input_forget, clip; for a model with an encoding or a head;
    and for hard sigmoid gates (not exported yet).
    """
    if not isinstance(lstm, LSTM):
        raise TypeError("lstm: expected a clstm.LSTM, got %s" % type(lstm).__name__)
    for name in _UNSUPPORTED:
        value = getattr(lstm, name)
        if value not in (0, False, None):
            raise NotImplementedError("%s=%r: Keras's LSTM layer has no %s, so this model "
                                      "cannot be exported" % (name, value, name))
    if not lstm.is_bare_lstm:
        raise NotImplementedError("to_keras: only a bare LSTM (no encoding, no head) "
                                  "exports to Keras")
    if getattr(lstm, "gate_activation", "sigmoid") != "sigmoid":
        raise NotImplementedError("gate_activation=%r: to_keras exports sigmoid gates only"
                                  % (lstm.gate_activation,))
    params = lstm.named_parameters()
    layers = []
    for k in range(lstm.num_layers):
        weights = []
        for sfx in unit_suffixes(k, lstm.num_directions):
            weights += [params["weight_ih" + sfx].T.copy(), params["weight_hh" + sfx].T.copy(),
                        params["bias_ih" + sfx] + params["bias_hh" + sfx]]
        layers.append(weights)
    return layers


def keras_model(lstm, *, return_state=False, mask=False):
    """A keras.Model that computes lstm.forward(x, lengths=...) (train=False,
    zero initial state), built from lstm_to_keras(lstm).

    Input: x (B, T, D), batch-first whatever lstm.batch_first; with mask=True
    the model takes [x, mask], mask (B, T) booleans, True for the valid
    steps (a prefix of each row, as clstm's lengths: mask[b, t] = t <
    lengths[b]). Output: y (B, T, N*H), 0 past each length as in clstm; with
    return_state=True [y, h, c], h and c (N*L, B, H) indexed layer * N +
    direction as clstm's.

    Layers, in order: keras.layers.LSTM(H, activation="tanh",
    recurrent_activation="sigmoid", return_sequences=True,
    zero_output_for_mask=True), wrapped in Bidirectional for a bidirectional
    model, with go_backwards=True for a reverse one. A go_backwards layer
    returns its outputs in the order it computes them, flipped in time:
    out[:, j] = clstm's y[:, T-1-j]. (With a mask, the padding is read first
    and skipped, so each sequence starts at its last valid step as in clstm.)
    The model flips each go_backwards layer's output back (keras.ops.flip on
    axis 1) before the next layer, which is what clstm's reverse stack
    computes, and returns y in time order.
    """
    keras = _keras()
    weights = lstm_to_keras(lstm)
    dtype = np.dtype(lstm.dtype).name
    x = keras.Input(shape=(None, lstm.input_size), dtype=dtype, name="x")
    inputs = [x]
    m = None
    if mask:
        m = keras.Input(shape=(None,), dtype="bool", name="mask")
        inputs.append(m)
    y, hs, cs = x, [], []
    for k, w in enumerate(weights):
        layer = keras.layers.LSTM(lstm.hidden_size, activation="tanh",
                                  recurrent_activation="sigmoid", return_sequences=True,
                                  return_state=return_state, go_backwards=lstm.reverse,
                                  zero_output_for_mask=True, dtype=dtype, name="lstm_%d" % k)
        if lstm.bidirectional:
            layer = keras.layers.Bidirectional(layer, dtype=dtype, name="bidirectional_%d" % k)
        out = layer(y, mask=m)
        layer.set_weights(w)
        if return_state:
            y, states = out[0], out[1:]
            hs += states[0::2]
            cs += states[1::2]
        else:
            y = out
        if lstm.reverse:
            y = keras.ops.flip(y, axis=1)
    outputs = y
    if return_state:
        outputs = [y, keras.ops.stack(hs, axis=0), keras.ops.stack(cs, axis=0)]
    return keras.Model(inputs if mask else x, outputs, name="clstm_lstm")


# ------------------------------------------------------------------ import
def check_activations(activation, recurrent_activation, what):
    """Refuse a Keras LSTM whose activations (names) are not clstm's."""
    for attr, name, want in (("recurrent_activation", recurrent_activation, "sigmoid"),
                             ("activation", activation, "tanh")):
        if name != want:
            raise ValueError("%s: %s=%r; a Keras layer or model imports with %s only (a "
                             "hard_sigmoid layer's get_weights() import with from_keras(kernel, "
                             "recurrent_kernel, bias, recurrent_activation='hard_sigmoid', "
                             "gate_alpha=1/6))" % (what, attr, name, want))


def _activation_name(fn):
    return getattr(fn, "__name__", repr(fn))


def _lstm_layers(keras, src):
    """The keras.layers.LSTM / Bidirectional layers of src, in order."""
    if isinstance(src, (keras.layers.LSTM, keras.layers.Bidirectional)):
        return [src]
    if isinstance(src, keras.Model):
        # a functional model's operations include its keras.ops calls
        ops = getattr(src, "operations", None) or src.layers
    elif isinstance(src, (list, tuple)):
        ops = list(src)
    else:
        raise TypeError("layer_or_model: expected a keras.layers.LSTM, a Bidirectional(LSTM), "
                        "a keras.Model or a list of them, got %s" % type(src).__name__)
    skip = (keras.layers.InputLayer, keras.layers.Masking)
    out, flips = [], 0
    for op in ops:
        if isinstance(op, (keras.layers.LSTM, keras.layers.Bidirectional)):
            out.append(op)
        elif type(op).__name__ in _MODEL_OPS:
            flips += type(op).__name__ == "Flip"
        elif not isinstance(op, skip):
            raise ValueError("layer_or_model: %r is a %s; only LSTM, Bidirectional(LSTM), "
                             "InputLayer and Masking layers (and keras_model's flips and "
                             "stacks) can be imported" % (op.name, type(op).__name__))
    if not out:
        raise ValueError("layer_or_model: no LSTM layer found")
    if (isinstance(src, keras.Model) and flips < len(out) - 1
            and any(getattr(layer, "go_backwards", False) for layer in out)):
        raise ValueError("layer_or_model: a go_backwards layer passes its output on flipped "
                         "in time, and this model has no flip between its layers (a "
                         "keras.Sequential cannot), so its next layer reads in another order "
                         "than clstm's reverse stack; build the stack as "
                         "clstm.keras.keras_model does, or pass the list of layers")
    return out


def _directions(keras, layer):
    """[(LSTM layer, what)] for one layer: one, or a Bidirectional's two."""
    if isinstance(layer, keras.layers.Bidirectional):
        if layer.merge_mode != "concat":
            raise ValueError("%s: merge_mode=%r; clstm concatenates the directions "
                             "(merge_mode='concat')" % (layer.name, layer.merge_mode))
        pair = [layer.forward_layer, layer.backward_layer]
        if not all(isinstance(d, keras.layers.LSTM) for d in pair):
            raise ValueError("%s: expected a Bidirectional of LSTM layers, got %s"
                             % (layer.name, [type(d).__name__ for d in pair]))
        if pair[0].go_backwards or not pair[1].go_backwards:
            raise ValueError("%s: expected the forward layer first and the go_backwards one "
                             "second" % layer.name)
        return [(d, "%s (%s)" % (layer.name, d.name)) for d in pair]
    return [(layer, layer.name)]


def lstm_from_keras(layer_or_model, *, dtype=None, batch_first=True, **kwargs):
    """A clstm.LSTM with the weights of Keras LSTM layers.

    layer_or_model: a keras.layers.LSTM, a keras.layers.Bidirectional(LSTM)
    (merge_mode "concat"), a list of them (one per layer of a stack), or a
    keras.Model whose layers are these (InputLayer and Masking layers are
    passed over, as are keras_model's flips and stacks). Every layer has the same units, activation="tanh" and
    recurrent_activation="sigmoid" (anything else, e.g. old Keras's
    "hard_sigmoid", is refused), the same direction kind (forward,
    go_backwards: clstm's reverse=True, or Bidirectional), and each layer's
    input is the one before's output: a go_backwards stack is read as
    keras_model builds it, each output flipped back in time before the next
    layer (a model of several go_backwards layers without those flips, such
    as a keras.Sequential, is refused).
    use_bias=False gives zero biases; the Keras bias becomes bias_ih
    (bias_hh = 0). Training settings (dropout, recurrent_dropout,
    initializers such as unit_forget_bias, regularizers) are not weights and
    are ignored. batch_first defaults to True, Keras's layout; dtype to
    float64 for float64 weights, else float32; other keywords go to
    clstm.LSTM.
    """
    keras = _keras()
    layers = [_directions(keras, layer) for layer in _lstm_layers(keras, layer_or_model)]
    first = layers[0]
    N, H = len(first), first[0][0].units
    reverse = N == 1 and first[0][0].go_backwards
    state, D = {}, None
    for k, dirs in enumerate(layers):
        if len(dirs) != N or dirs[0][0].units != H or (N == 1 and
                                                     dirs[0][0].go_backwards != reverse):
            raise ValueError("%s (layer %d): expected a %s layer of %d units as layer 0, got "
                             "%s of %d units" % (
                                 dirs[0][1], k, _kind(N, reverse), H,
                                 _kind(len(dirs), dirs[0][0].go_backwards), dirs[0][0].units))
        for (cell_layer, what), sfx in zip(dirs, unit_suffixes(k, N)):
            cell = cell_layer.cell
            check_activations(_activation_name(cell.activation),
                              _activation_name(cell.recurrent_activation), what)
            w = [to_numpy(a) for a in cell_layer.get_weights()]
            if len(w) not in (2, 3):
                raise ValueError("%s: expected get_weights() = [kernel, recurrent_kernel, "
                                 "bias] (or no bias), got %d arrays (is the layer built?)"
                                 % (what, len(w)))
            kernel, rk = w[0], w[1]
            if k == 0:
                D = kernel.shape[0]
            want = D if k == 0 else N * H
            if kernel.shape != (want, 4 * H) or rk.shape != (H, 4 * H):
                raise ValueError("%s: expected kernel (%d, %d) and recurrent_kernel (%d, %d), "
                                 "got %s and %s" % (what, want, 4 * H, H, 4 * H, kernel.shape,
                                                    rk.shape))
            bias = w[2] if len(w) == 3 else np.zeros(4 * H, kernel.dtype)
            state.update({"weight_ih" + sfx: kernel.T, "weight_hh" + sfx: rk.T,
                          "bias_ih" + sfx: bias, "bias_hh" + sfx: np.zeros(4 * H, kernel.dtype)})
    if dtype is None:
        f64 = any(a.dtype == np.float64 for a in state.values())
        dtype = np.float64 if f64 else np.float32
    kwargs.setdefault("seed", 0)
    lstm = LSTM(D, H, len(layers), bidirectional=N == 2, reverse=reverse, dtype=dtype,
                batch_first=batch_first, **kwargs)
    lstm.load_state_dict(state)
    return lstm


def _kind(N, go_backwards):
    return "Bidirectional" if N == 2 else "go_backwards" if go_backwards else "forward"
