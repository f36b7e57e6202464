"""clstm.onnx: import against ONNX's own LSTM test cases and torch's exporter,
export against onnxruntime (float32: its LSTM kernel has no double), ONNX's
reference evaluator (float64) and torch.nn.LSTM; bad models; atomic saves."""

import itertools
import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import helper, numpy_helper  # noqa: E402
from onnx.reference import ReferenceEvaluator  # noqa: E402

import clstm  # noqa: E402
from clstm.onnx import lstm_from_onnx, lstm_to_onnx  # noqa: E402

# clstm and onnxruntime both compute in float32, with different summation
# orders and activation code: observed differences are below 5e-7.
F32_TOL = dict(rtol=1e-5, atol=1e-5)
F64_TOL = dict(rtol=1e-12, atol=1e-12)


# ------------------------------------------------------------ ONNX's test cases
def _onnx_lstm_cases():
    """ONNX's LSTM node test cases (onnx/backend/test/case/node/lstm.py) by name.

    Importing that module runs its exports, which append the cases to the node
    case list; collect_testcases("LSTM") returns the same list but first runs
    the exports of every operator (about 16 s), so it is only the fallback."""
    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import onnx.backend.test.case.node.lstm  # noqa: F401

            cases = node._NodeTestCases
        except (ImportError, AttributeError):
            cases = node.collect_testcases("LSTM")
    return {c.name: c for c in cases if [n.op_type for n in c.model.graph.node] == ["LSTM"]}


ONNX_CASES = _onnx_lstm_cases()
SUPPORTED = (
    "test_lstm_defaults",
    "test_lstm_with_initial_bias",
    "test_lstm_with_peepholes",
    "test_lstm_batchwise",
    "test_lstm_bidirectional",
    "test_lstm_reverse",
)
# Cases clstm cannot represent; the test fails if one starts to import.
REJECTED = {}


def test_onnx_cases_found():
    assert set(SUPPORTED) | set(REJECTED) <= set(ONNX_CASES)


def _as_saved_model(case):
    """The case's model with W, R, B, P turned from graph inputs into
    initializers (as a saved model holds them), and the remaining feeds."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    graph = model.graph
    feeds = {vi.name: a for vi, a in zip(graph.input, case.data_sets[0][0])}
    for vi in [vi for vi in graph.input if vi.name in ("W", "R", "B", "P")]:
        graph.initializer.append(numpy_helper.from_array(feeds.pop(vi.name), vi.name))
        graph.input.remove(vi)
    onnx.checker.check_model(model)
    return model, feeds


@pytest.mark.parametrize("name", sorted(ONNX_CASES))
def test_onnx_backend_case(name):
    case = ONNX_CASES[name]
    model, feeds = _as_saved_model(case)
    if name in REJECTED:
        exc, match = REJECTED[name]
        with pytest.raises(exc, match=match):
            lstm_from_onnx(model)
        return
    lstm = lstm_from_onnx(model)
    layout = next((a.i for a in model.graph.node[0].attribute if a.name == "layout"), 0)
    assert lstm.batch_first == (layout == 1)
    x = feeds["X"]
    # ONNX's layout 1 has batch-major states [B, N, H]; clstm's are [N, B, H]
    h0, c0 = (feeds.get(k) for k in ("initial_h", "initial_c"))
    h0, c0 = (s if s is None or not layout else s.swapaxes(0, 1) for s in (h0, c0))
    state = None if h0 is None and c0 is None else (h0, c0)
    y, (h, c) = lstm.forward(x, state, lengths=feeds.get("sequence_lens"), train=False)
    N, H = lstm.num_directions, lstm.hidden_size
    if layout:  # Y [B, T, N, H], Y_h [B, N, H]
        got = dict(Y=y.reshape(*y.shape[:2], N, H), Y_h=h.swapaxes(0, 1), Y_c=c.swapaxes(0, 1))
    else:  # Y [T, N, B, H], Y_h [N, B, H]
        got = dict(Y=y.reshape(*y.shape[:2], N, H).transpose(0, 2, 1, 3), Y_h=h, Y_c=c)
    outputs = case.data_sets[0][1]
    assert outputs
    for vi, want in zip(model.graph.output, outputs):
        np.testing.assert_allclose(
            got[vi.name], want, rtol=case.rtol, atol=case.atol, err_msg=vi.name
        )


# ------------------------------------------------------------ export round trips
def _session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _problem(lstm, T, B, initial_state, lengths, seed=0):
    """forward()'s (x, state, lengths) and the same as the exported graph's feed."""
    rng = np.random.default_rng(seed)
    NL, H = lstm.num_directions * lstm.num_layers, lstm.hidden_size
    x = rng.standard_normal(
        (B, T, lstm.input_size) if lstm.batch_first else (T, B, lstm.input_size)
    ).astype(lstm.dtype)
    feed, state, lens = {"X": x}, None, None
    if initial_state:
        state = tuple(rng.standard_normal((NL, B, H)).astype(lstm.dtype) for _ in "hc")
        feed.update(initial_h=state[0], initial_c=state[1])
    if lengths:
        lens = rng.integers(1, T + 1, B).astype(np.int32)
        lens[0] = T
        feed["sequence_lens"] = lens
    return (x, state, lens), feed


def _assert_outputs(outs, lstm, args, tol):
    x, state, lens = args
    y, (h, c) = lstm.forward(x, state, lengths=lens, train=False)
    for name, got, want in zip(("Y", "Y_h", "Y_c"), outs, (y, h, c)):
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, err_msg=name, **tol)


CONFIGS = list(itertools.product((1, 2, 3), (False, True), (False, True)))
CONFIG_IDS = ["L%d%s%s" % (L, "-bi" if bi else "", "-bf" if bf else "") for L, bi, bf in CONFIGS]


@pytest.mark.parametrize("lengths", [False, True], ids=["", "lengths"])
@pytest.mark.parametrize("initial_state", [False, True], ids=["", "state"])
@pytest.mark.parametrize("L,bi,bf", CONFIGS, ids=CONFIG_IDS)
def test_export_matches_onnxruntime(L, bi, bf, initial_state, lengths):
    lstm = clstm.LSTM(3, 5, L, bidirectional=bi, batch_first=bf, seed=L)
    model = lstm_to_onnx(lstm, initial_state=initial_state, lengths=lengths)
    assert [i.name for i in model.graph.input] == (
        ["X"] + ["initial_h", "initial_c"] * initial_state + ["sequence_lens"] * lengths
    )
    assert [n.op_type for n in model.graph.node].count("LSTM") == L
    for T, B in ((4, 3), (1, 1)):  # T and B are dynamic
        args, feed = _problem(lstm, T, B, initial_state, lengths)
        _assert_outputs(_session(model).run(None, feed), lstm, args, F32_TOL)


@pytest.mark.parametrize("peepholes", [False, True], ids=["", "peepholes"])
@pytest.mark.parametrize("initial_state", [False, True], ids=["", "state"])
@pytest.mark.parametrize("L,bi,bf", CONFIGS, ids=CONFIG_IDS)
def test_export_float64_matches_reference_evaluator(L, bi, bf, initial_state, peepholes):
    """onnxruntime's LSTM runs float32 only; ONNX's reference evaluator runs
    float64 (but ignores sequence_lens, clip and input_forget: not tested here)."""
    lstm = clstm.LSTM(
        2, 3, L, bidirectional=bi, batch_first=bf, seed=7, dtype=np.float64, peepholes=peepholes
    )
    model = lstm_to_onnx(lstm, initial_state=initial_state)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    args, feed = _problem(lstm, 5, 2, initial_state, False)
    _assert_outputs(ReferenceEvaluator(model).run(None, feed), lstm, args, F64_TOL)


def test_zero_length_sequences():
    """onnxruntime zeroes Y past each length as clstm does; for a length-0
    sequence its Y_h, Y_c are 0 where clstm returns the initial state
    (documented in lstm_to_onnx)."""
    lstm = clstm.LSTM(3, 4, 2, bidirectional=True, seed=3)
    sess = _session(lstm_to_onnx(lstm, initial_state=True, lengths=True))
    (x, state, _), feed = _problem(lstm, 5, 3, True, True)
    lens = feed["sequence_lens"] = np.array([5, 0, 2], np.int32)
    Y, Y_h, Y_c = sess.run(None, feed)
    y, (h, c) = lstm.forward(x, state, lengths=lens, train=False)
    np.testing.assert_allclose(Y, y, **F32_TOL)
    assert not Y[2:, 2].any() and not Y[:, 1].any()
    keep = lens > 0
    np.testing.assert_allclose(Y_h[:, keep], h[:, keep], **F32_TOL)
    np.testing.assert_allclose(Y_c[:, keep], c[:, keep], **F32_TOL)
    np.testing.assert_array_equal(h[:, 1], state[0][:, 1])
    assert not Y_h[:, 1].any() and not Y_c[:, 1].any()
    feed.update(initial_h=np.zeros_like(state[0]), initial_c=np.zeros_like(state[1]))
    _assert_outputs(
        sess.run(None, feed), lstm, (x, (feed["initial_h"], feed["initial_c"]), lens), F32_TOL
    )


# ONNX's LSTM options, which clstm has too (clip 0.5 is exact in float32)
OPTIONS = [
    {"peepholes": True},
    {"input_forget": True},
    {"clip": 0.5},
    {"peepholes": True, "input_forget": True, "clip": 0.75},
]
OPTION_IDS = ["-".join(o) for o in OPTIONS]
SETTINGS = ("input_size", "hidden_size", "num_layers", "bidirectional", "batch_first", "dtype")
SETTINGS += ("peepholes", "input_forget", "clip", "reverse", "gate_activation", "gate_alpha",
             "gate_beta")


def _assert_same_model(got, want):
    assert [getattr(got, a) for a in SETTINGS] == [getattr(want, a) for a in SETTINGS]
    g, w = got.named_parameters(), want.named_parameters()
    assert g.keys() == w.keys()
    for k in w.keys():
        np.testing.assert_array_equal(g[k], w[k], err_msg=k)


@pytest.mark.parametrize("L,bi,bf", [(1, False, False), (2, True, True), (3, False, True)])
@pytest.mark.parametrize("opts", OPTIONS, ids=OPTION_IDS)
def test_export_options_match_onnxruntime(opts, L, bi, bf):
    """peepholes (P), input_forget and clip, exported, run by onnxruntime, and
    imported back: the same model, the same outputs."""
    lstm = clstm.LSTM(3, 5, L, bidirectional=bi, batch_first=bf, seed=L, **opts)
    lstm.flat_parameters[:] *= 4  # big pre-activations, so that clip matters
    model = lstm_to_onnx(lstm, initial_state=True, lengths=True)
    for node in [n for n in model.graph.node if n.op_type == "LSTM"]:
        attrs = {a.name for a in node.attribute}
        assert (len(node.input) == 8) == ("peepholes" in opts)
        assert {"input_forget", "clip"} & attrs == {"input_forget", "clip"} & set(opts)
    args, feed = _problem(lstm, 4, 3, True, True)
    outs = _session(model).run(None, feed)
    _assert_outputs(outs, lstm, args, F32_TOL)
    back = lstm_from_onnx(model)
    _assert_same_model(back, lstm)
    _assert_outputs(outs, back, args, F32_TOL)
    if "clip" in opts:  # clip changes the result
        plain = clstm.LSTM(3, 5, L, bidirectional=bi, batch_first=bf, peepholes=lstm.peepholes)
        plain.load_state_dict(lstm.state_dict())
        assert not np.allclose(plain.forward(args[0], args[1], train=False)[0], outs[0])


def _runs_and_imports(lstm, model, initial_state, lengths, sizes):
    """onnxruntime runs the exported `model` as lstm does for each (T, B) of
    sizes, and the import gives lstm back; the last (args, outputs)."""
    for T, B in sizes:
        args, feed = _problem(lstm, T, B, initial_state, lengths)
        outs = _session(model).run(None, feed)
        _assert_outputs(outs, lstm, args, F32_TOL)
    _assert_same_model(lstm_from_onnx(model), lstm)
    return args, outs


@pytest.mark.parametrize("lengths", [False, True], ids=["", "lengths"])
@pytest.mark.parametrize("initial_state", [False, True], ids=["", "state"])
@pytest.mark.parametrize("L,bf,opts", [(1, False, {}), (2, True, {}), (3, False, {}),
                                       (2, False, {"peepholes": True, "clip": 0.75})],
                         ids=["L1", "L2-bf", "L3", "L2-options"])
def test_reverse_export_matches_onnxruntime(L, bf, opts, initial_state, lengths):
    """A reverse-only model is one direction="reverse" node per layer:
    onnxruntime computes what clstm does (lengths included: each sequence
    starts at its last valid step), and the import gives the model back."""
    lstm = clstm.LSTM(3, 5, L, reverse=True, batch_first=bf, seed=L, **opts)
    model = lstm_to_onnx(lstm, initial_state=initial_state, lengths=lengths)
    nodes = [n for n in model.graph.node if n.op_type == "LSTM"]
    assert [onnx.helper.get_attribute_value(a) for n in nodes for a in n.attribute
            if a.name == "direction"] == [b"reverse"] * L
    _runs_and_imports(lstm, model, initial_state, lengths, ((4, 3), (1, 1)))
    # not the forward model: reversing the direction changes the outputs
    fwd = clstm.LSTM(3, 5, L, batch_first=bf, **opts)
    fwd.load_state_dict(lstm.state_dict())
    (x, state, lens), feed = _problem(lstm, 4, 3, initial_state, lengths)
    assert not np.allclose(fwd.forward(x, state, lengths=lens, train=False)[0],
                           _session(model).run(None, feed)[0])


@pytest.mark.parametrize("initial_state", [False, True], ids=["", "state"])
def test_reverse_float64_matches_reference_evaluator(initial_state):
    lstm = clstm.LSTM(2, 3, 2, reverse=True, seed=7, dtype=np.float64)
    model = lstm_to_onnx(lstm, initial_state=initial_state)
    args, feed = _problem(lstm, 5, 2, initial_state, False)
    _assert_outputs(ReferenceEvaluator(model).run(None, feed), lstm, args, F64_TOL)


def _stacked(a, b):
    """The ONNX graph of clstm.LSTM a with b's (its input a's output) on top:
    a two-layer stack whose layers may differ."""
    ma, mb = lstm_to_onnx(a), lstm_to_onnx(b)
    graph = ma.graph
    for n in mb.graph.node:
        n.input[:] = [("Y" if i == "X" else i + "_b") if i else i for i in n.input]
        n.output[:] = [o + "_b" for o in n.output]
    graph.node.extend(mb.graph.node)
    for t in mb.graph.initializer:
        t.name += "_b"
    graph.initializer.extend(mb.graph.initializer)
    return ma


def test_reverse_layers_must_agree():
    """A stack whose layers mix directions is not one clstm model."""
    a, b = clstm.LSTM(3, 4, reverse=True, seed=1), clstm.LSTM(4, 4, seed=2)
    with pytest.raises(ValueError, match="reverse"):
        lstm_from_onnx(_stacked(a, b))


# Hard sigmoid gates ([HardSigmoid, Tanh, Tanh] per direction): (gate_alpha,
# gate_beta) whose float32 forms' shortest decimals are themselves, so that
# the import gives the model back exactly; ONNX's and Keras 2's defaults,
# and steep ones that saturate the gates often.
HARD_CONFIGS = [  # L, bidirectional, reverse, batch_first, (alpha, beta), options
    (1, False, False, False, (0.2, 0.5), {}),
    (2, True, False, True, (1.5, 0.3), {"peepholes": True}),
    (2, False, True, False, (2.0, 0.5), {"input_forget": True}),
    (3, False, False, True, (1.25, 0.6), {"peepholes": True, "clip": 0.75}),
    (2, True, False, False, (0.25, 0.5), {"input_forget": True}),
]
HARD_IDS = ["L%d%s%s%s-a%g-b%g%s" % (L, "-bi" * bi, "-rev" * rev, "-bf" * bf, a, b,
                                     "".join("-" + k for k in o))
            for L, bi, rev, bf, (a, b), o in HARD_CONFIGS]


@pytest.mark.parametrize("lengths", [False, True], ids=["", "lengths"])
@pytest.mark.parametrize("initial_state", [False, True], ids=["", "state"])
@pytest.mark.parametrize("L,bi,rev,bf,gate,opts", HARD_CONFIGS, ids=HARD_IDS)
def test_hard_sigmoid_export_matches_onnxruntime(L, bi, rev, bf, gate, opts, initial_state,
                                                 lengths):
    """A model with hard sigmoid gates exports activations [HardSigmoid, Tanh,
    Tanh] per direction with its alpha and beta; onnxruntime computes what
    clstm does, and the import gives the model back exactly."""
    lstm = clstm.LSTM(3, 5, L, bidirectional=bi, reverse=rev, batch_first=bf, seed=L,
                      gate_activation="hard_sigmoid", gate_alpha=gate[0], gate_beta=gate[1],
                      **opts)
    lstm.flat_parameters[:] *= 3  # big pre-activations: gates saturate at 0 and 1
    model = lstm_to_onnx(lstm, initial_state=initial_state, lengths=lengths)
    N = 2 if bi else 1
    for node in [n for n in model.graph.node if n.op_type == "LSTM"]:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        assert attrs["activations"] == [b"HardSigmoid", b"Tanh", b"Tanh"] * N
        assert attrs["activation_alpha"] == pytest.approx([gate[0]] * N)
        assert attrs["activation_beta"] == pytest.approx([gate[1]] * N)
    args, outs = _runs_and_imports(lstm, model, initial_state, lengths, ((1, 1), (5, 3)))
    # the hard sigmoid matters: the sigmoid model with these weights differs
    sig = clstm.LSTM(3, 5, L, bidirectional=bi, reverse=rev, batch_first=bf, **opts)
    sig.load_state_dict(lstm.state_dict())
    x, state, lens = args
    assert not np.allclose(sig.forward(x, state, lengths=lens, train=False)[0], outs[0],
                           atol=1e-3)


def _hand_built_lstm(acts, alphas, betas, N, H=4, D=3, seed=5):
    """One LSTM node written by hand (not by lstm_to_onnx) with these
    activation attributes (None: left out), its weights, sequence_lens and
    initial state as run-time inputs."""
    rng = np.random.default_rng(seed)
    w = {"W": rng.standard_normal((N, 4 * H, D)), "R": rng.standard_normal((N, 4 * H, H)),
         "B": rng.standard_normal((N, 8 * H))}
    attrs = dict(hidden_size=H, direction="bidirectional" if N == 2 else "forward")
    for k, v in (("activations", acts), ("activation_alpha", alphas),
                 ("activation_beta", betas)):
        if v is not None:
            attrs[k] = v
    node = helper.make_node("LSTM", ["X", "W", "R", "B", "L", "h0", "c0"], ["Y", "Y_h", "Y_c"],
                            **attrs)
    f = onnx.TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("X", f, ["T", "B", D]),
              helper.make_tensor_value_info("L", onnx.TensorProto.INT32, ["B"]),
              helper.make_tensor_value_info("h0", f, [N, "B", H]),
              helper.make_tensor_value_info("c0", f, [N, "B", H])]
    outputs = [helper.make_tensor_value_info("Y", f, ["T", N, "B", H]),
               helper.make_tensor_value_info("Y_h", f, [N, "B", H]),
               helper.make_tensor_value_info("Y_c", f, [N, "B", H])]
    graph = helper.make_graph([node], "hand", inputs, outputs, initializer=[
        numpy_helper.from_array(a.astype(np.float32), k) for k, a in w.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    onnx.checker.check_model(model)
    return model


@pytest.mark.parametrize("acts,alphas,betas,want", [
    (["HardSigmoid", "Tanh", "Tanh"], [0.3], [0.6], (0.3, 0.6)),
    (["HardSigmoid", "Tanh", "Tanh"], None, None, (0.2, 0.5)),  # ONNX's defaults
    (["hardsigmoid", "tanh", "TANH"], [1.5], None, (1.5, 0.5)),  # beta's default
    (["HardSigmoid", "Tanh", "Tanh"] * 2, [0.75, 0.75], [0.4, 0.4], (0.75, 0.4)),
], ids=["alpha-beta", "defaults", "alpha-only", "bidirectional"])
def test_hand_built_hard_sigmoid_node_matches_onnxruntime(acts, alphas, betas, want):
    """An ONNX LSTM node written by hand with HardSigmoid gates (as a Keras
    converter writes one) imports as gate_activation="hard_sigmoid" with its
    alpha and beta (ONNX's defaults where absent), and the clstm model
    computes what onnxruntime does on that node (standard normal weights:
    pre-activations of a few units, so that the gates often saturate)."""
    N = len(acts) // 3
    model = _hand_built_lstm(acts, alphas, betas, N)
    lstm = lstm_from_onnx(model)
    assert (lstm.gate_activation, lstm.gate_alpha, lstm.gate_beta) == ("hard_sigmoid",) + want
    assert lstm.num_directions == N
    rng = np.random.default_rng(6)
    T, B, H = 6, 3, 4
    x = rng.standard_normal((T, B, 3)).astype(np.float32)
    h0, c0 = (rng.standard_normal((N, B, H)).astype(np.float32) for _ in "hc")
    lens = np.array([6, 2, 4], np.int32)
    Y, Y_h, Y_c = _session(model).run(None, {"X": x, "L": lens, "h0": h0, "c0": c0})
    y, (h, c) = lstm.forward(x, (h0, c0), lengths=lens, train=False)
    np.testing.assert_allclose(y, Y.transpose(0, 2, 1, 3).reshape(T, B, N * H), **F32_TOL)
    np.testing.assert_allclose(h, Y_h, **F32_TOL)
    np.testing.assert_allclose(c, Y_c, **F32_TOL)


def test_keras3_hard_sigmoid_imports_as_float32():
    """Keras 3's hard sigmoid (alpha 1/6) is stored as float32: the import
    reads the shortest decimal of that float32, and runs as onnxruntime
    does."""
    model = _hand_built_lstm(["HardSigmoid", "Tanh", "Tanh"], [1 / 6], [0.5], 1)
    lstm = lstm_from_onnx(model)
    assert lstm.gate_alpha == float(str(np.float32(1 / 6))) == 0.16666667
    assert np.float32(lstm.gate_alpha) == np.float32(1 / 6)


def test_hard_sigmoid_layers_must_agree():
    """A stack whose layers' gate activations differ is not one clstm model."""
    a = clstm.LSTM(3, 4, seed=1, gate_activation="hard_sigmoid")
    b = clstm.LSTM(4, 4, seed=2)
    with pytest.raises(ValueError, match="gate"):
        lstm_from_onnx(_stacked(a, b))


def test_clip_is_stored_as_float32():
    lstm = clstm.LSTM(2, 3, clip=0.1, seed=0)
    assert lstm_from_onnx(lstm_to_onnx(lstm)).clip == float(np.float32(0.1))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("L,bi,bf", CONFIGS, ids=CONFIG_IDS)
def test_import_of_export_is_exact(L, bi, bf, dtype):
    lstm = clstm.LSTM(4, 3, L, bidirectional=bi, batch_first=bf, seed=11, dtype=dtype)
    _assert_same_model(lstm_from_onnx(lstm_to_onnx(lstm)), lstm)


def test_import_dtype_override():
    lstm = clstm.LSTM(2, 3, seed=1)
    back = lstm_from_onnx(lstm_to_onnx(lstm), dtype=np.float64)
    assert back.dtype == np.float64
    np.testing.assert_array_equal(back.flat_parameters, lstm.flat_parameters)


def test_export_opset():
    lstm = clstm.LSTM(2, 3, 2, bidirectional=True, seed=1)
    for opset in (14, onnx.defs.onnx_opset_version()):
        model = lstm_to_onnx(lstm, opset=opset)
        assert [(o.domain, o.version) for o in model.opset_import] == [("", opset)]
    for bad in (13, onnx.defs.onnx_opset_version() + 1, 17.0, True):
        with pytest.raises(ValueError, match="opset"):
            lstm_to_onnx(lstm, opset=bad)


# ------------------------------------------------------------ torch
def _torch_pair(L, bi, bf):
    """A torch.nn.LSTM and a clstm.LSTM with its settings and weights."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(L)
    t = torch.nn.LSTM(3, 5, L, bidirectional=bi, batch_first=bf).eval()
    lstm = clstm.LSTM(3, 5, L, bidirectional=bi, batch_first=bf, seed=0)
    lstm.load_state_dict(t.state_dict())
    return torch, t, lstm


@pytest.mark.parametrize("L,bi,bf", CONFIGS, ids=CONFIG_IDS)
def test_torch_to_clstm_to_onnx(L, bi, bf):
    torch, t, lstm = _torch_pair(L, bi, bf)
    (x, state, _), feed = _problem(lstm, 4, 3, True, False)
    with torch.no_grad():
        want = t(torch.from_numpy(x), tuple(map(torch.from_numpy, state)))
    Y, Y_h, Y_c = _session(lstm_to_onnx(lstm, initial_state=True)).run(None, feed)
    for name, got, w in zip(("Y", "Y_h", "Y_c"), (Y, Y_h, Y_c), (want[0], *want[1])):
        np.testing.assert_allclose(got, w.numpy(), err_msg=name, **F32_TOL)


@pytest.mark.parametrize("L,bi,bf", CONFIGS, ids=CONFIG_IDS)
def test_import_torch_export(L, bi, bf, tmp_path):
    """torch.onnx's TorchScript exporter: Squeeze (unidirectional) or Transpose +
    Reshape (bidirectional) between layers, Transposes around a batch-first
    stack, initial states built from Shape/Expand nodes, Constant nodes."""
    torch, t, lstm = _torch_pair(L, bi, bf)
    path = tmp_path / "torch.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(t, (torch.zeros(2, 2, 3),), str(path), dynamo=False)
    _assert_same_model(lstm_from_onnx(path), lstm)


# ------------------------------------------------------------ bad models
def _model(nodes, inits, inputs=("X",)):
    f = onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info(n, f, None) for n in inputs],
        [helper.make_tensor_value_info(nodes[-1].output[-1], f, None)],
        initializer=[numpy_helper.from_array(np.asarray(a), k) for k, a in inits.items()],
    )
    return helper.make_model(graph)


def _weights(N=1, H=2, D=3, k=""):
    rng = np.random.default_rng(0)
    return {
        "W" + k: rng.standard_normal((N, 4 * H, D)).astype(np.float32),
        "R" + k: rng.standard_normal((N, 4 * H, H)).astype(np.float32),
        "B" + k: rng.standard_normal((N, 8 * H)).astype(np.float32),
    }


def _lstm_model(inputs=("X", "W", "R", "B"), weights=None, **attrs):
    """One LSTM node; those of its inputs not in weights are graph inputs."""
    weights = _weights() if weights is None else weights
    node = helper.make_node("LSTM", list(inputs), ["Y", "Y_h"], **attrs)
    return _model([node], weights, [i for i in inputs if i and i not in weights])


def _replace(d, **kw):
    return {**d, **kw}


W0 = _weights()
WITH_P = ("X", "W", "R", "B", "", "", "", "P")
BAD_MODELS = {
    "W 2-D": (_lstm_model(weights=_replace(W0, W=W0["W"][0])), "W must be"),
    "W rows not 4H": (_lstm_model(weights=_replace(W0, W=W0["W"][:, :7])), "W must be"),
    "R shape": (_lstm_model(weights=_replace(W0, R=W0["R"][:, :, :1])), "R must be"),
    "B shape": (_lstm_model(weights=_replace(W0, B=W0["B"][:, :8])), "B must be"),
    "hidden_size": (_lstm_model(hidden_size=3), "hidden_size=3"),
    "directions": (_lstm_model(direction="bidirectional"), r"W must be \[2,"),
    "direction": (_lstm_model(direction="sideways"), "unknown direction"),
    "layout": (_lstm_model(layout=2), "layout"),
    "int weights": (
        _lstm_model(weights=_replace(W0, W=W0["W"].astype(np.int32))),
        "floating point",
    ),
    "W is an input": (_lstm_model(("X", "W", "R"), {"R": W0["R"]}), "run-time input"),
    "P is an input": (_lstm_model(WITH_P, W0), "run-time input"),
    "P shape": (_lstm_model(WITH_P, _replace(W0, P=np.ones((1, 4), np.float32))), "P must be"),
    "clip": (_lstm_model(clip=0.0), "clip must be positive"),
    "input_forget": (_lstm_model(input_forget=2), "input_forget must be 0 or 1"),
    "no R": (_lstm_model(inputs=("X", "W")), "expected inputs X, W, R"),
    "alphas left over": (_lstm_model(activations=["HardSigmoid", "Tanh", "Tanh"],
                                     activation_alpha=[0.2, 0.3]), "more values"),
    "alpha for sigmoid": (_lstm_model(activation_alpha=[0.2]), "more values"),
    "reverse with 2 directions' W": (
        _lstm_model(direction="reverse", weights=_replace(W0, W=np.stack([W0["W"][0]] * 2))),
        r"W must be \[1,"),
    "no LSTM": (_model([helper.make_node("Relu", ["X"], ["Y"])], {}), "no LSTM node"),
}


@pytest.mark.parametrize("name", BAD_MODELS)
def test_bad_model(name):
    model, match = BAD_MODELS[name]
    with pytest.raises(ValueError, match=match):
        lstm_from_onnx(model)


UNSUPPORTED = {
    "activations": ({"activations": ["Sigmoid", "Relu", "Tanh"]}, "activations"),
    "hard sigmoid cell": ({"activations": ["HardSigmoid", "HardSigmoid", "Tanh"]},
                          "activations"),
    "too few activations": ({"activations": ["HardSigmoid", "Tanh"]}, "activations"),
    "directions' gates differ": (
        {"activations": ["HardSigmoid", "Tanh", "Tanh", "Sigmoid", "Tanh", "Tanh"],
         "direction": "bidirectional"}, "directions' gate activations differ"),
    "directions' alphas differ": (
        {"activations": ["HardSigmoid", "Tanh", "Tanh"] * 2, "activation_alpha": [0.2, 0.3],
         "direction": "bidirectional"}, "directions' gate activations differ"),
    "bidirectional activations": (
        {"activations": ["Sigmoid", "Tanh", "Tanh"], "direction": "bidirectional"},
        "activations",
    ),
    "unknown attribute": ({"foo": 1}, "attribute 'foo'"),
}


@pytest.mark.parametrize("name", UNSUPPORTED)
def test_unsupported_feature(name):
    attrs, match = UNSUPPORTED[name]
    with pytest.raises(NotImplementedError, match=match):
        lstm_from_onnx(_lstm_model(weights=_weights(2 if attrs.get("direction") else 1), **attrs))


def test_explicit_defaults_and_options():
    """Explicit defaults (activation names in any case, input_forget=0) give a
    plain LSTM; P, input_forget=1 and clip give those options, P reordered."""
    explicit = _lstm_model(
        hidden_size=2, direction="forward", layout=0, input_forget=0,
        activations=["sigmoid", "TANH", "Tanh"],
    )  # fmt: skip
    plain = lstm_from_onnx(_lstm_model())
    _assert_same_model(lstm_from_onnx(explicit), plain)
    P = np.arange(6, dtype=np.float32)[None]  # i, o, f blocks of H=2
    lstm = lstm_from_onnx(_lstm_model(WITH_P, _replace(W0, P=P), input_forget=1, clip=2.0))
    assert (lstm.peepholes, lstm.input_forget, lstm.clip) == (True, True, 2.0)
    np.testing.assert_array_equal(lstm.named_parameters()["peephole_l0"], [0, 1, 4, 5, 2, 3])


def test_constant_nodes_and_missing_bias():
    consts = [
        helper.make_node("Constant", [], [k], value=numpy_helper.from_array(a, k))
        for k, a in W0.items()
        if k != "B"
    ]
    node = helper.make_node("LSTM", ["X", "W", "R"], ["Y"], hidden_size=2)
    lstm = lstm_from_onnx(_model(consts + [node], {}))
    with_bias = lstm_from_onnx(_lstm_model(weights=_replace(W0, B=np.zeros((1, 16), np.float32))))
    np.testing.assert_array_equal(lstm.flat_parameters, with_bias.flat_parameters)
    assert not lstm.named_parameters()["bias_ih_l0"].any()


def _stack(links, H1=2, clip1=None, **attrs):
    """Two LSTM layers; `links` is the op chain from layer 0's Y to layer 1's X;
    H1, clip1: layer 1's hidden_size and clip."""
    N = 2 if attrs.get("direction") == "bidirectional" else 1
    inits = {**_weights(N), **_weights(N, H1, N * 2, k="1"), "shape": np.array([0, 0, -1])}
    nodes = [helper.make_node("LSTM", ["X", "W", "R", "B"], ["Y0"], **attrs)]
    for i, (op_type, kw) in enumerate(links):
        extra = ["shape"] if op_type == "Reshape" else []
        nodes.append(helper.make_node(op_type, [nodes[-1].output[0]] + extra, ["t%d" % i], **kw))
    attrs1 = attrs if clip1 is None else {**attrs, "clip": clip1}
    nodes.append(
        helper.make_node("LSTM", [nodes[-1].output[0], "W1", "R1", "B1"], ["Y1"], **attrs1)
    )
    return _model(nodes, inits)


TO_TBD = [("Transpose", dict(perm=[0, 2, 1, 3])), ("Reshape", {})]


def test_stack_links():
    assert lstm_from_onnx(_stack(TO_TBD, direction="bidirectional")).num_layers == 2
    assert lstm_from_onnx(_stack([("Reshape", {})], layout=1)).batch_first
    with pytest.raises(ValueError, match="Transposes between layers"):
        lstm_from_onnx(_stack([("Reshape", {})], direction="bidirectional"))
    with pytest.raises(ValueError, match="Transposes between layers"):
        lstm_from_onnx(_stack([("Transpose", dict(perm=[2, 0, 1, 3])), ("Reshape", {})]))
    with pytest.raises(ValueError, match="to match layer 0"):
        lstm_from_onnx(_stack(TO_TBD, H1=3))
    with pytest.raises(ValueError, match="to match layer 0"):
        lstm_from_onnx(_stack(TO_TBD, clip1=1.0))
    with pytest.raises(ValueError, match="one stack"):  # a Relu is no layout op
        lstm_from_onnx(_stack(TO_TBD + [("Relu", {})]))


def test_lstms_not_one_stack():
    w0, w1 = _weights(), _weights(k="1")
    two = [
        helper.make_node("LSTM", ["X", "W", "R"], ["Ya"]),
        helper.make_node("LSTM", ["X", "W1", "R1"], ["Yb"]),
    ]
    with pytest.raises(ValueError, match="one stack"):
        lstm_from_onnx(_model(two, {**w0, **w1}))
    fork = [
        helper.make_node("LSTM", ["X", "W", "R"], ["Y"]),
        helper.make_node("LSTM", ["Y", "W1", "R1"], ["Ya"]),
        helper.make_node("LSTM", ["Y", "W1", "R1"], ["Yb"]),
    ]
    with pytest.raises(ValueError, match="feeds two LSTM"):
        lstm_from_onnx(_model(fork, {**w0, **_weights(D=2, k="1")}))


def test_bad_arguments():
    with pytest.raises(TypeError, match="ModelProto or a path"):
        lstm_from_onnx(b"not a model")
    with pytest.raises(TypeError, match="clstm.LSTM"):
        lstm_to_onnx(object())
    with pytest.raises(NotImplementedError, match="proj_size"):
        lstm_to_onnx(clstm.LSTM(3, 4, proj_size=2, seed=0))


def test_missing_onnx_package(monkeypatch):
    lstm = clstm.LSTM(2, 3, seed=0)
    model = lstm_to_onnx(lstm)
    monkeypatch.setitem(sys.modules, "onnx", None)
    with pytest.raises(ImportError, match="pip install onnx"):
        lstm_to_onnx(lstm)
    with pytest.raises(ImportError, match="pip install onnx"):
        lstm_from_onnx(model)


def test_import_clstm_does_not_import_onnx():
    code = "import sys, clstm, clstm.onnx; assert 'onnx' not in sys.modules, 'onnx imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------ saving
def test_atomic_save(tmp_path, monkeypatch):
    lstm = clstm.LSTM(3, 4, 2, bidirectional=True, batch_first=True, seed=5)
    path = tmp_path / "m.onnx"
    model = lstm_to_onnx(lstm, path)
    assert onnx.load(path) == model
    assert os.listdir(tmp_path) == ["m.onnx"]
    np.testing.assert_array_equal(lstm_from_onnx(str(path)).flat_parameters, lstm.flat_parameters)

    def fail(fd):
        raise OSError("disk full")

    before = path.read_bytes()
    monkeypatch.setattr(os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        lstm_to_onnx(clstm.LSTM(3, 4, seed=6), path)
    assert path.read_bytes() == before and os.listdir(tmp_path) == ["m.onnx"]
    monkeypatch.undo()
    other = lstm_to_onnx(clstm.LSTM(3, 4, seed=6), path)  # replaces the old file
    assert onnx.load(str(path)) == other
