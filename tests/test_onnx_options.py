"""ONNX's LSTM options: peepholes, input_forget (coupled gates) and clip.

Forward is checked against onnxruntime running a one-node ONNX LSTM with
the same weights (ONNX orders gates i, o, f, c and peepholes i, o, f);
gradients against float64 central finite differences."""

import numpy as np
import pytest

import clstm
from conftest import assert_close, assert_message

D, H, T, B = 3, 5, 6, 2


def onnx_to_clstm_order(a):
    """Rows in ONNX's gate order i, o, f, c -> clstm's i, f, g, o."""
    i, o, f, c = np.split(a, 4)
    return np.concatenate([i, f, c, o])


def run_onnxruntime(W, R, Bias, P, x, h0, c0, **attrs):
    onnx = pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    from onnx import TensorProto, helper, numpy_helper

    inits = [
        numpy_helper.from_array(a[None].astype(np.float32), n)
        for a, n in [(W, "W"), (R, "R"), (Bias, "B"), (P, "P")]
    ]
    node = helper.make_node(
        "LSTM",
        ["X", "W", "R", "B", "", "h0", "c0", "P"],
        ["Y", "Y_h", "Y_c"],
        hidden_size=H,
        **attrs,
    )
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, list(a.shape))
        for n, a in [("X", x), ("h0", h0), ("c0", c0)]
    ]
    outputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, shape)
        for n, shape in [("Y", [T, 1, B, H]), ("Y_h", [1, B, H]), ("Y_c", [1, B, H])]
    ]
    model = helper.make_model(
        helper.make_graph([node], "lstm", inputs, outputs, inits),
        opset_imports=[helper.make_opsetid("", 14)],
    )
    onnx.checker.check_model(model)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = {n: a.astype(np.float32) for n, a in [("X", x), ("h0", h0), ("c0", c0)]}
    return sess.run(None, feed)


OPTIONS = [
    dict(peepholes=True),
    dict(input_forget=True),
    dict(clip=0.5),
    dict(peepholes=True, input_forget=True, clip=0.7),
    # hard sigmoid gates (ONNX's activations [HardSigmoid, Tanh, Tanh]) with
    # every other option, and alone at ONNX's defaults
    dict(gate_activation="hard_sigmoid"),
    dict(peepholes=True, input_forget=True, clip=0.7, gate_activation="hard_sigmoid",
         gate_alpha=0.5, gate_beta=0.4),
]


@pytest.mark.parametrize("opts", OPTIONS, ids=lambda o: "-".join(o))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_forward_matches_onnxruntime(opts, dtype):
    rng = np.random.default_rng(len(opts))
    W, R = rng.standard_normal((4 * H, D)), rng.standard_normal((4 * H, H))
    Bias = rng.standard_normal(8 * H)
    P = rng.standard_normal(3 * H) if opts.get("peepholes") else np.zeros(3 * H)
    x = rng.standard_normal((T, B, D))
    h0, c0 = rng.standard_normal((1, B, H)), rng.standard_normal((1, B, H))
    attrs = dict(input_forget=int(opts.get("input_forget", False)))
    if "clip" in opts:
        attrs["clip"] = opts["clip"]
    if opts.get("gate_activation") == "hard_sigmoid":
        attrs.update(activations=["HardSigmoid", "Tanh", "Tanh"],
                     activation_alpha=[opts.get("gate_alpha", 0.2)],
                     activation_beta=[opts.get("gate_beta", 0.5)])
    Y, Y_h, Y_c = run_onnxruntime(W, R, Bias, P, x, h0, c0, **attrs)
    m = clstm.LSTM(D, H, dtype=dtype, **opts)
    sd = {
        "weight_ih_l0": onnx_to_clstm_order(W),
        "weight_hh_l0": onnx_to_clstm_order(R),
        "bias_ih_l0": onnx_to_clstm_order(Bias[: 4 * H]),
        "bias_hh_l0": onnx_to_clstm_order(Bias[4 * H :]),
    }
    if opts.get("peepholes"):
        p_i, p_o, p_f = np.split(P, 3)
        sd["peephole_l0"] = np.concatenate([p_i, p_f, p_o])
    m.load_state_dict(sd)
    y, (h, c) = m.forward(x.astype(np.float32).astype(dtype), (h0, c0), train=False)
    # onnxruntime computes in float32: compare at float32's tolerance
    for a, e, name in [(y, Y[:, 0], "Y"), (h, Y_h, "Y_h"), (c, Y_c, "Y_c")]:
        assert_close(a, e, np.float32, name)


@pytest.mark.parametrize(
    "opts",
    [
        dict(peepholes=True),
        dict(input_forget=True),
        dict(peepholes=True, input_forget=True, bidirectional=True, proj_size=2, num_layers=2),
        dict(peepholes=True, input_forget=True, gate_activation="hard_sigmoid",
             gate_alpha=0.8, gate_beta=0.4, num_layers=2),
    ],
    ids=lambda o: "-".join(o),
)
def test_gradients_match_finite_differences(opts):
    """Every parameter (peepholes included), x and the initial state, in
    float64, on a batch with a short sequence. (Hard sigmoid gates: a
    difference across a kink would need a pre-activation within about 1e-6
    of one; test_gradcheck.py checks that margin on its cases.)"""
    opts = dict(opts)
    L = opts.pop("num_layers", 1)
    rng = np.random.default_rng(3)
    m = clstm.LSTM(3, 4, L, dtype=np.float64, seed=3, **opts)
    p = m.flat_parameters
    p[:] = rng.standard_normal(p.size) * 0.5
    N, R = m.num_directions, m.proj_size or 4
    x = rng.standard_normal((5, 2, 3))
    h0, c0 = rng.standard_normal((N * L, 2, R)), rng.standard_normal((N * L, 2, 4))
    lens = [5, 3]
    wy = rng.standard_normal((5, 2, N * R))
    wh, wc = rng.standard_normal(h0.shape), rng.standard_normal(c0.shape)

    def loss():
        y, (h, c) = m.forward(x, (h0, c0), lengths=lens, train=False)
        return (y * wy).sum() + (h * wh).sum() + (c * wc).sum()

    m.zero_grad()
    m.forward(x, (h0, c0), lengths=lens)
    dx, (dh0, dc0) = m.backward(wy, (wh, wc))
    for arr, grad, name in [
        (p, m.flat_grads, "params"),
        (x, dx, "x"),
        (h0, dh0, "h0"),
        (c0, dc0, "c0"),
    ]:
        flat, g = arr.reshape(-1), grad.reshape(-1)
        for i in range(flat.size):
            if name == "x" and i // 3 % 2 == 1 and i // 6 >= 3:
                continue  # padding of the short sequence: ignored, gradient 0
            old = flat[i]
            flat[i] = old + 1e-6
            up = loss()
            flat[i] = old - 1e-6
            down = loss()
            flat[i] = old
            fd = (up - down) / 2e-6
            assert abs(fd - g[i]) <= 1e-7 * max(1.0, abs(fd)), f"{name}[{i}]: {fd} vs {g[i]}"


def test_peephole_tensor_is_named_and_sized():
    m = clstm.LSTM(3, 4, 2, peepholes=True, bidirectional=True, proj_size=2)
    shapes = {k: v.shape for k, v in m.named_parameters().items()}
    assert shapes["peephole_l1_reverse"] == (12,)
    assert list(shapes)[:6] == [
        "weight_ih_l0",
        "weight_hh_l0",
        "bias_ih_l0",
        "bias_hh_l0",
        "weight_hr_l0",
        "peephole_l0",
    ]
    assert sum(v.size for v in m.named_parameters().values()) == m.flat_parameters.size


def test_clip_has_no_backward_and_bad_options():
    m = clstm.LSTM(3, 4, clip=1.0)
    m.forward(np.zeros((2, 1, 3), np.float32))
    with pytest.raises(NotImplementedError, match="clip"):
        m.backward(np.zeros((2, 1, 4), np.float32))
    for kw, err, name in [
        (dict(clip=0.0), ValueError, "clip"),
        (dict(clip=-1), ValueError, "clip"),
        (dict(clip=float("nan")), ValueError, "clip"),
        (dict(clip="1"), TypeError, "clip"),
        (dict(peepholes=1), TypeError, "peepholes"),
        (dict(input_forget=None), TypeError, "input_forget"),
    ]:
        with pytest.raises(err) as e:
            clstm.LSTM(3, 4, **kw)
        assert_message(e, [name])
