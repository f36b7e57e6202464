"""Hard sigmoid gates (gate_activation="hard_sigmoid"): the Python API's
checks, repr, config and file round trip. Their numbers are checked
elsewhere against independent references: HARD_CASES in test_forward.py and
test_backward.py (the NumPy float64 reference), HARD_FD_CASES in
test_gradcheck.py (finite differences), test_quantize.py (the int8
reference), test_export_c.py, and onnxruntime in test_onnx.py and
test_onnx_options.py. torch.nn.LSTM has no hard sigmoid, so there is no
torch parity test."""

import json
import struct

import numpy as np
import pytest
from conftest import assert_message

import clstm


@pytest.mark.parametrize("kw,err,names", [
    (dict(gate_activation="relu"), ValueError, ["gate_activation", "hard_sigmoid"]),
    (dict(gate_activation=None), ValueError, ["gate_activation"]),
    (dict(gate_activation="hard_sigmoid", gate_alpha=0.0), ValueError, ["gate_alpha", "> 0"]),
    (dict(gate_activation="hard_sigmoid", gate_alpha=-1), ValueError, ["gate_alpha"]),
    (dict(gate_activation="hard_sigmoid", gate_alpha=float("nan")), ValueError,
     ["gate_alpha"]),
    (dict(gate_activation="hard_sigmoid", gate_beta=float("inf")), ValueError, ["gate_beta"]),
    (dict(gate_activation="hard_sigmoid", gate_alpha="0.2"), TypeError, ["gate_alpha"]),
    (dict(gate_activation="hard_sigmoid", gate_beta=True), TypeError, ["gate_beta"]),
    (dict(gate_alpha=0.25), ValueError, ["gate_alpha", "hard_sigmoid"]),
    (dict(gate_beta=0.4), ValueError, ["gate_beta", "hard_sigmoid"]),
], ids=lambda v: v if isinstance(v, str) else None)
def test_bad_gate_arguments(kw, err, names):
    with pytest.raises(err) as e:
        clstm.LSTM(3, 4, **kw)
    assert_message(e, names)


def test_repr_and_config():
    plain = clstm.LSTM(3, 4, seed=0)
    assert "gate" not in repr(plain)
    m = clstm.LSTM(3, 4, seed=0, gate_activation="hard_sigmoid", gate_alpha=1.5)
    assert "gate_activation='hard_sigmoid'" in repr(m) and "gate_alpha=1.5" in repr(m)
    assert "gate_beta" not in repr(m)  # the default
    c = m.config
    assert (c["gate_activation"], c["gate_alpha"], c["gate_beta"]) == (1, 1.5, 0.5)
    assert plain.config["gate_activation"] == 0


@pytest.mark.parametrize("cls", ["LSTM", "Model"])
def test_save_load_round_trip(tmp_path, cls):
    """Version 4 file with the gate keys; the loaded model has the setting
    and gives the same outputs (which differ from the sigmoid model's)."""
    kw = dict(gate_activation="hard_sigmoid", gate_alpha=1 / 6, gate_beta=0.5, seed=3,
              num_layers=2, bidirectional=True)
    m = clstm.LSTM(3, 4, **kw) if cls == "LSTM" else clstm.Model(3, 4, output_size=2, **kw)
    path = tmp_path / "m.safetensors"
    clstm.save(m, path)
    raw = path.read_bytes()
    meta = json.loads(raw[8:8 + struct.unpack("<Q", raw[:8])[0]])["__metadata__"]
    assert meta["format_version"] == "4" and meta["gate_activation"] == "hard_sigmoid"
    assert float(meta["gate_alpha"]) == 1 / 6 and meta["reverse"] == "0"
    back = clstm.load(path)
    assert type(back) is type(m)
    assert (back.gate_activation, back.gate_alpha, back.gate_beta) == ("hard_sigmoid", 1 / 6,
                                                                      0.5)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32) * 3
    np.testing.assert_array_equal(back.forward(x)[0], m.forward(x)[0])
    sig = m.__class__(3, 4, **{**kw, "gate_activation": "sigmoid", "gate_alpha": 0.2},
                      **({} if cls == "LSTM" else {"output_size": 2}))
    sig.load_state_dict(m.state_dict())
    assert not np.allclose(sig.forward(x)[0], m.forward(x)[0], atol=1e-3)


def test_reserved_gate_metadata():
    m = clstm.LSTM(3, 4, seed=0)
    for key in ("gate_activation", "gate_alpha", "gate_beta"):
        with pytest.raises(ValueError, match="config key"):
            m.metadata[key] = "x"


def test_quantized_file_round_trip(tmp_path):
    """An int8 model keeps its hard sigmoid gates through a file."""
    m = clstm.Model(3, 6, num_layers=2, output_size=3, seed=5, gate_activation="hard_sigmoid",
                    gate_alpha=2.0, gate_beta=0.25)
    q = clstm.quantize(m)
    assert (q.gate_activation, q.gate_alpha, q.gate_beta) == ("hard_sigmoid", 2.0, 0.25)
    clstm.save(q, tmp_path / "q.safetensors")
    back = clstm.load(tmp_path / "q.safetensors")
    assert back.quantized and (back.gate_activation, back.gate_alpha) == ("hard_sigmoid", 2.0)
    x = np.random.default_rng(1).standard_normal((6, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(back.forward(x)[0], q.forward(x)[0])
