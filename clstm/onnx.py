"""ONNX interchange for clstm.LSTM: import an ONNX graph's LSTM, export a model.

onnx is imported inside the functions, so ``import clstm`` never needs it.

ONNX's LSTM operator against clstm's (torch.nn.LSTM's) parameters, with N
directions (index 0 forward, 1 reverse), H hidden, D input features:

    ONNX, one node per layer k        clstm, per layer k and direction d
    W [N, 4H, D]                      weight_ih_l{k}[_reverse] (4H, D)
    R [N, 4H, H]                      weight_hh_l{k}[_reverse] (4H, H)
    B [N, 8H] = [Wb (4H), Rb (4H)]    bias_ih_l{k}[_reverse], bias_hh_... (4H)
    P [N, 3H] (peepholes i, o, f)     peephole_l{k}[_reverse] (3H) (i, f, o)
    gate blocks of H rows: i, o, f, c gate blocks: i, f, g, o   (c == g)
    input_forget, clip attributes     the model-wide input_forget, clip
    activations [f, Tanh, Tanh] * N   gate_activation: f = Sigmoid or HardSigmoid
    activation_alpha, activation_beta gate_alpha, gate_beta (HardSigmoid's, one
                                      each per HardSigmoid, consumed in order)

A node's Y is [T, N, B, H] (layout 0) or [B, T, N, H] (layout 1); a stacked
export feeds it to the next layer as [T, B, N*H] (or [B, T, N*H]) through
Transpose/Reshape or Squeeze. Its states Y_h, Y_c are [N, B, H]; clstm's stack all layers'
(N*L, B, H), indexed layer * N + direction.
"""
import os

import numpy as np

from clstm._version import __version__
from clstm.interop import unit_suffixes
from clstm.io import atomic_write
from clstm.model import LSTM

__all__ = ["lstm_from_onnx", "lstm_to_onnx"]

_TORCH_FROM_ONNX = [0, 2, 3, 1]  # clstm gate block k is ONNX block _TORCH_FROM_ONNX[k]
_ONNX_FROM_TORCH = [0, 3, 1, 2]  # and the inverse permutation
_PEEPHOLES = [0, 2, 1]  # i, o, f <-> i, f, o: its own inverse
_DEFAULT_OPSET = 21  # run by onnxruntime >= 1.18
_MIN_OPSET = 14  # Reshape/Squeeze/Slice with tensor inputs, LSTM with layout
_LAYOUT_OPS = ("Transpose", "Reshape", "Squeeze", "Identity")  # allowed between layers
_Y_PERM = [0, 2, 1, 3]  # ONNX Y [T, N, B, H] -> [T, B, N, H]
_ATTRIBUTES = ("hidden_size", "direction", "layout", "activations", "activation_alpha",
               "activation_beta", "clip", "input_forget")


def _onnx():
    """The onnx package, or an ImportError that says how to install it."""
    try:
        import onnx
        import onnx.checker
        import onnx.helper
        import onnx.numpy_helper
    except ImportError as e:
        raise ImportError("clstm.onnx needs the onnx package: pip install onnx") from e
    return onnx


def _blocks(a, order):
    """a (n*H, ...) with its n = len(order) blocks of H rows permuted: block k
    <- block order[k] (gates, or peepholes)."""
    return a.reshape(len(order), -1, *a.shape[1:])[order].reshape(a.shape)


# ------------------------------------------------------------------ import
def lstm_from_onnx(model_or_path, *, dtype=None):
    """A clstm.LSTM holding the weights of the LSTM node(s) of an ONNX model.

    model_or_path: an onnx.ModelProto, or the path of a .onnx file. The graph
    must hold one LSTM node, or a chain of them that makes a stack: each
    layer's Y feeding the next layer's X, possibly through the Transpose,
    Reshape, Squeeze (or Identity) nodes exporters insert. All layers share
    hidden_size, direction ("forward", "reverse" (clstm's reverse=True) or
    "bidirectional"), layout, input_forget,
    clip and whether they have peepholes (input P), as a clstm model does. The
    model is batch_first when layout=1, or when X reaches the first layer
    through a Transpose(perm=[1, 0, 2]) (how lstm_to_onnx and torch write a
    batch-first model, as onnxruntime runs layout=0 only). W, R, B and P must
    be initializers or Constant nodes; sequence_lens, initial_h and initial_c
    are run-time inputs and ignored here. dtype: the model's dtype (default
    float64 if a weight is float64, else float32).

    The activations may be [Sigmoid, Tanh, Tanh] (ONNX's default) or
    [HardSigmoid, Tanh, Tanh] per direction, alike in every direction and
    layer: clstm's gate_activation "hard_sigmoid" with gate_alpha and
    gate_beta from activation_alpha and activation_beta, which list one
    value per HardSigmoid in order (as onnxruntime reads them; ONNX's
    defaults 0.2 and 0.5 where the lists end). ONNX stores them as float32;
    they are read as the shortest decimal that rounds to that float32
    (0.2, not 0.20000000298).

    Raises ValueError for a malformed graph, NotImplementedError for other
    activations (all clstm lacks of ONNX's LSTM).
    """
    onnx = _onnx()
    model = model_or_path
    if isinstance(model, (str, os.PathLike)):
        model = onnx.load(os.fspath(model))
    if not isinstance(model, onnx.ModelProto):
        raise TypeError("model_or_path: expected an onnx.ModelProto or a path, got %s"
                        % type(model_or_path).__name__)
    graph = model.graph
    consts = {t.name: t for t in graph.initializer}
    consts.update((n.output[0], a.t) for n in graph.node if n.op_type == "Constant"
                  for a in n.attribute if a.name == "value")
    layers = [dict(_read_layer(n, consts, onnx), perms=perms) for n, perms in _chain(graph)]
    first = layers[0]
    N, H = first["N"], first["H"]
    for k, lay in enumerate(layers[1:], 1):
        want = {key: first[key] for key in ("N", "reverse", "H", "layout", "peepholes",
                                            "input_forget", "clip", "gate")}
        want["D"] = N * H
        got = {key: lay[key] for key in want}
        if got != want:
            raise ValueError("LSTM node %r (layer %d): expected %s to match layer 0, got %s"
                             % (lay["name"], k, want, got))
        perms = lay["perms"]
        if (any(p != _Y_PERM for p in perms) or len(perms) > (first["layout"] == 0)
                or len(perms) < (first["layout"] == 0 and N == 2)):
            raise ValueError("LSTM node %r (layer %d): the Transposes between layers (perms "
                             "%s) do not turn Y into [T, B, N*H]" % (lay["name"], k, perms))
    if dtype is None:
        f64 = any(lay[p].dtype == np.float64 for lay in layers for p in "WRB")
        dtype = np.float64 if f64 else np.float32
    # a Transpose of X to time-first in front of a time-first (layout 0) stack
    batch_first = (first["layout"] == 1) != (first["perms"] == [[1, 0, 2]])
    lstm = LSTM(first["D"], H, len(layers), bidirectional=N == 2, reverse=first["reverse"],
                dtype=dtype, seed=0,
                batch_first=batch_first, peepholes=first["peepholes"],
                input_forget=first["input_forget"], clip=first["clip"],
                **dict(zip(("gate_activation", "gate_alpha", "gate_beta"), first["gate"])))
    state = {}
    for k, lay in enumerate(layers):
        for d, sfx in enumerate(unit_suffixes(k, N)):
            for name, a in (("weight_ih", lay["W"][d]), ("weight_hh", lay["R"][d]),
                            ("bias_ih", lay["B"][d, :4 * H]), ("bias_hh", lay["B"][d, 4 * H:])):
                state[name + sfx] = _blocks(a, _TORCH_FROM_ONNX)
            if lay["peepholes"]:
                state["peephole" + sfx] = _blocks(lay["P"][d], _PEEPHOLES)
    lstm.load_state_dict(state)
    return lstm


def _chain(graph):
    """The graph's LSTM nodes in layer order, each with the perms of the
    Transposes between it and the layer before (see _source)."""
    lstms = [n for n in graph.node if n.op_type == "LSTM" and n.domain in ("", "ai.onnx")]
    if not lstms:
        raise ValueError("the graph has no LSTM node (ops: %s)"
                         % sorted({n.op_type for n in graph.node}))
    producer = {o: n for n in graph.node for o in n.output if o}
    feeds = {}  # id(LSTM) -> the LSTM fed by its Y
    heads, perms = [], {}
    for n in lstms:
        src, perms[id(n)] = _source(n.input[0] if n.input else "", producer)
        if src is None:
            heads.append(n)
        elif feeds.setdefault(id(src), n) is not n:
            raise ValueError("LSTM node %r feeds two LSTM nodes: not a stack" % src.name)
    order = heads[:1]
    while len(heads) == 1 and id(order[-1]) in feeds:
        order.append(feeds[id(order[-1])])
    if len(heads) != 1 or len(order) != len(lstms):
        raise ValueError("expected the graph's %d LSTM nodes to form one stack (each Y "
                         "feeding the next X through %s only), found %d first layers"
                         % (len(lstms), "/".join(_LAYOUT_OPS), len(heads)))
    return [(n, perms[id(n)]) for n in order]


def _source(name, producer):
    """Follow tensor `name` back through layout ops: (the LSTM node whose Y it
    is, or None; the Transpose perms passed)."""
    perms = []
    node = producer.get(name)
    while node is not None and node.op_type in _LAYOUT_OPS and node.input:
        perms += [list(a.ints) for a in node.attribute if a.name == "perm"]
        name = node.input[0]
        node = producer.get(name)
    if node is not None and node.op_type == "LSTM" and node.output[0] == name:
        return node, perms
    return None, perms


def _read_layer(node, consts, onnx):
    """One LSTM node as {name, N, H, D, layout, peepholes, input_forget, clip,
    and W, R, B, P (None if absent) in ONNX's order}."""
    what = "LSTM node %r" % (node.name or ",".join(node.output))
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
    attrs = {k: v.decode() if isinstance(v, bytes) else v for k, v in attrs.items()}
    for key in attrs:
        if key not in _ATTRIBUTES:
            raise NotImplementedError("%s: attribute %r is not supported" % (what, key))
    direction = attrs.get("direction", "forward")
    if direction not in ("forward", "reverse", "bidirectional"):
        raise ValueError("%s: unknown direction %r" % (what, direction))
    N = 2 if direction == "bidirectional" else 1
    clip = attrs.get("clip")
    if clip is not None and not clip > 0:
        raise ValueError("%s: clip must be positive, got %r" % (what, clip))
    input_forget = attrs.get("input_forget", 0)
    if input_forget not in (0, 1):
        raise ValueError("%s: input_forget must be 0 or 1, got %r" % (what, input_forget))
    gate = _read_activations(attrs, N, what)
    layout = attrs.get("layout", 0)
    if layout not in (0, 1):
        raise ValueError("%s: layout must be 0 or 1, got %r" % (what, layout))
    ins = list(node.input) + [""] * (8 - len(node.input))
    if len(ins) > 8 or not all(ins[:3]):
        raise ValueError("%s: expected inputs X, W, R and up to 5 optional ones, got %s"
                         % (what, list(node.input)))

    def const(i, label):
        if ins[i] not in consts:
            raise ValueError("%s: %s (%r) must be an initializer or a Constant node, not a "
                             "run-time input" % (what, label, ins[i]))
        a = onnx.numpy_helper.to_array(consts[ins[i]])
        if a.dtype.kind != "f":
            raise ValueError("%s: %s must be floating point, got %s" % (what, label, a.dtype))
        return a

    W, R = const(1, "W"), const(2, "R")
    if W.ndim != 3 or W.shape[0] != N or W.shape[1] % 4 or not W.shape[1] or not W.shape[2]:
        raise ValueError("%s: W must be [%d, 4*hidden_size, input_size] (nonzero), got %s"
                         % (what, N, list(W.shape)))
    H, D = W.shape[1] // 4, W.shape[2]
    if attrs.get("hidden_size", H) != H:
        raise ValueError("%s: hidden_size=%r but W is %s"
                         % (what, attrs["hidden_size"], list(W.shape)))
    B = const(3, "B") if ins[3] else np.zeros((N, 8 * H), W.dtype)
    P = const(7, "P") if ins[7] else None
    for label, a, shape in (("R", R, (N, 4 * H, H)), ("B", B, (N, 8 * H)),
                            ("P", P, (N, 3 * H))):
        if a is not None and a.shape != shape:
            raise ValueError("%s: %s must be %s, got %s" % (what, label, list(shape),
                                                             list(a.shape)))
    return dict(name=node.name, N=N, reverse=direction == "reverse", H=H, D=D, layout=layout,
                W=W, R=R, B=B, P=P,
                peepholes=P is not None, input_forget=bool(input_forget), clip=clip, gate=gate)


def _read_activations(attrs, N, what):
    """The node's (gate_activation, gate_alpha, gate_beta) from its
    activations, activation_alpha and activation_beta (see lstm_from_onnx)."""
    acts = [a.decode() if isinstance(a, bytes) else a for a in attrs.get("activations", [])]
    alphas = [float(np.float32(a)) for a in attrs.get("activation_alpha", [])]
    betas = [float(np.float32(b)) for b in attrs.get("activation_beta", [])]
    low = [a.lower() for a in acts] or ["sigmoid", "tanh", "tanh"] * N
    if len(low) != 3 * N or any(low[3 * d:3 * d + 3] not in (["sigmoid", "tanh", "tanh"],
                                                              ["hardsigmoid", "tanh", "tanh"])
                                for d in range(N)):
        raise NotImplementedError("%s: activations %s are not supported (only Sigmoid or "
                                  "HardSigmoid, then Tanh, Tanh, per direction)" % (what, acts))
    gates = []
    for d in range(N):
        if low[3 * d] == "sigmoid":
            gates.append(("sigmoid", 0.2, 0.5))
            continue
        # ONNX's defaults where the lists end; float32 values as their shortest decimal
        alpha = float(str(np.float32(alphas.pop(0)))) if alphas else 0.2
        beta = float(str(np.float32(betas.pop(0)))) if betas else 0.5
        gates.append(("hard_sigmoid", alpha, beta))
    if alphas or betas:
        raise ValueError("%s: activation_alpha/activation_beta hold %d/%d more values than "
                         "the activations %s take" % (what, len(alphas), len(betas), acts))
    if len(set(gates)) > 1:
        raise NotImplementedError("%s: the directions' gate activations differ (%s); a clstm "
                                  "model has one" % (what, gates))
    return gates[0]


# ------------------------------------------------------------------ export
def lstm_to_onnx(lstm, path=None, *, opset=None, initial_state=False, lengths=False):
    """An onnx.ModelProto that computes lstm.forward(x, train=False).

    Graph inputs: X (T, B, D), or (B, T, D) when lstm.batch_first; with
    initial_state=True also initial_h and initial_c, (N*L, B, H) each; with
    lengths=True also sequence_lens, (B,) int32 in [0, T]. Every declared input
    must be fed (onnxruntime omits only undeclared ones), hence the keywords.
    Graph outputs: Y (T, B, N*H) ((B, T, N*H) when batch_first), 0 past a
    sequence's length as in clstm; Y_h, Y_c (N*L, B, H). T and B are dynamic.
    One difference: for a sequence of length 0, onnxruntime returns Y_h = Y_c
    = 0 where clstm returns the initial state (the same when that is 0).

    One LSTM node per layer (direction "forward", "reverse" for a model with
    reverse=True, or "bidirectional"; ONNX gate order, weights as initializers; P,
    input_forget and clip from the model's peepholes, input_forget and clip,
    clip rounded to float32 as ONNX stores it; a model with hard sigmoid gates
    gets activations [HardSigmoid, Tanh, Tanh] per direction with
    activation_alpha and activation_beta, float32 too), joined by Transpose + Reshape
    from [T, N, B, H] to [T, B, N*H]. Dropout is a training feature and is
    left out. opset: the ai.onnx opset, 14 up to what the installed onnx knows
    (default 21). path: also save there atomically.
    Raises NotImplementedError for proj_size > 0 (ONNX's LSTM has no projection)
    and for a model with an encoding or a head (only a bare LSTM exports so far).
    """
    onnx = _onnx()
    helper, TP = onnx.helper, onnx.TensorProto
    if not isinstance(lstm, LSTM):
        raise TypeError("lstm: expected a clstm.LSTM, got %s" % type(lstm).__name__)
    if not lstm.is_bare_lstm:
        raise NotImplementedError("to_onnx: only a bare LSTM (no encoding, no head) "
                                  "exports to ONNX so far")
    if lstm.proj_size:
        raise NotImplementedError("proj_size=%d: ONNX's LSTM operator has no projection "
                                  "(weight_hr), so this model cannot be exported"
                                  % lstm.proj_size)
    opset = _DEFAULT_OPSET if opset is None else opset
    top = onnx.defs.onnx_opset_version()
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or \
            not _MIN_OPSET <= opset <= top:
        raise ValueError("opset: expected an int in [%d, %d], got %r" % (_MIN_OPSET, top, opset))
    N, L, H, D = lstm.num_directions, lstm.num_layers, lstm.hidden_size, lstm.input_size
    elem = helper.np_dtype_to_tensor_dtype(lstm.dtype)
    params = lstm.named_parameters()
    nodes, inits = [], []

    def op(op_type, inputs, output, **attrs):
        nodes.append(helper.make_node(op_type, inputs, [output] if isinstance(output, str)
                                      else output, **attrs))
        return output

    def const(name, a):
        inits.append(onnx.numpy_helper.from_array(np.ascontiguousarray(a), name))
        return name

    seq = ("T", "B") if not lstm.batch_first else ("B", "T")
    x = op("Transpose", ["X"], "X_tbd", perm=[1, 0, 2]) if lstm.batch_first else "X"
    y_shape = const("Y_shape", np.array([0, 0, -1], np.int64))
    states = {"h": [], "c": []}
    direction = "bidirectional" if N == 2 else "reverse" if lstm.reverse else "forward"
    options = {"input_forget": 1} if lstm.input_forget else {}
    if lstm.clip is not None:
        options["clip"] = lstm.clip
    if lstm.gate_activation == "hard_sigmoid":
        options.update(activations=["HardSigmoid", "Tanh", "Tanh"] * N,
                       activation_alpha=[lstm.gate_alpha] * N,
                       activation_beta=[lstm.gate_beta] * N)
    for k in range(L):
        sfx = unit_suffixes(k, N)
        W, R, Bi, Bh = (np.stack([_blocks(params[p + s], _ONNX_FROM_TORCH) for s in sfx])
                        for p in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))
        ins = [x, const("W_l%d" % k, W), const("R_l%d" % k, R),
               const("B_l%d" % k, np.concatenate([Bi, Bh], axis=1)),
               "sequence_lens" if lengths else "", "", "", ""]
        if lstm.peepholes:
            ins[7] = const("P_l%d" % k, np.stack([_blocks(params["peephole" + s], _PEEPHOLES)
                                                  for s in sfx]))
        if initial_state:
            cut = [const("%s_l%d" % (n, k), np.array([v], np.int64))
                   for n, v in (("start", k * N), ("end", k * N + N), ("axis", 0))]
            ins[5:7] = [op("Slice", ["initial_" + s] + cut, "initial_%s_l%d" % (s, k))
                        if L > 1 else "initial_" + s for s in "hc"]
        outs = ["Y_l%d" % k] + ["Y_%s" % s if L == 1 else "Y_%s_l%d" % (s, k) for s in "hc"]
        while not ins[-1]:
            ins.pop()
        op("LSTM", ins, outs, hidden_size=H, direction=direction, **options)
        for s, name in zip("hc", outs[1:]):
            states[s].append(name)
        last = k == L - 1 and not lstm.batch_first
        x = op("Reshape", [op("Transpose", [outs[0]], "Y_tbnh_l%d" % k, perm=_Y_PERM), y_shape],
               "Y" if last else "Y_tbd_l%d" % k)
    if lstm.batch_first:
        op("Transpose", [x], "Y", perm=[1, 0, 2])
    if L > 1:
        for s in "hc":
            op("Concat", states[s], "Y_" + s, axis=0)

    def info(name, shape, t=elem):
        return helper.make_tensor_value_info(name, t, list(shape))

    inputs = [info("X", seq + (D,))]
    if initial_state:
        inputs += [info("initial_" + s, (N * L, "B", H)) for s in "hc"]
    if lengths:
        inputs.append(info("sequence_lens", ("B",), TP.INT32))
    outputs = [info("Y", seq + (N * H,))] + [info("Y_" + s, (N * L, "B", H)) for s in "hc"]
    graph = helper.make_graph(nodes, "clstm_lstm", inputs, outputs, initializer=inits,
                              doc_string=repr(lstm))
    model = helper.make_model_gen_version(graph, opset_imports=[helper.make_opsetid("", opset)],
                                          producer_name="clstm", producer_version=__version__)
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        # a reader sees the old file or the whole new one, never a partial one
        atomic_write(os.fspath(path), lambda f: f.write(model.SerializeToString()),
                     mode=0o644)
    return model
