"""The C example programs against the Python package: a model saved from
Python and run by examples/stream.c (built by `make`, which README's test
command runs first) gives the Python outputs."""
import pathlib
import subprocess

import numpy as np
import pytest

import clstm
from conftest import assert_close

STREAM = pathlib.Path(__file__).resolve().parent.parent / "build" / "examples" / "stream"
needs_stream = pytest.mark.skipif(not STREAM.exists(), reason="run `make` to build the examples")


def run_stream(model_path, x):
    text = "\n".join(" ".join(repr(float(v)) for v in row) for row in x) + "\n"
    out = subprocess.run([str(STREAM), str(model_path)], input=text, capture_output=True,
                         text=True, timeout=60)
    return out


@needs_stream
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", [dict(num_layers=1), dict(num_layers=2, proj_size=3),
                                 dict(num_layers=1, peepholes=True, input_forget=True)],
                         ids=["plain", "L2-proj", "onnx-options"])
def test_stream_example_matches_python(tmp_path, dtype, cfg):
    m = clstm.LSTM(4, 6, dtype=dtype, seed=5, **cfg)
    path = tmp_path / "model.safetensors"
    clstm.save(m, path)
    x = np.random.default_rng(0).standard_normal((40, 4)).astype(dtype)
    out = run_stream(path, x)
    assert out.returncode == 0, out.stderr
    y_c = np.array([[float(v) for v in line.split()] for line in out.stdout.splitlines()])
    y_py, _ = m.forward(x, train=False)
    assert y_c.shape == y_py.shape
    assert_close(y_c, y_py, dtype, "y")


@needs_stream
def test_stream_example_rejects_bad_input(tmp_path):
    m = clstm.LSTM(2, 3, seed=1)
    path = tmp_path / "model.safetensors"
    clstm.save(m, path)
    bad = run_stream(path, [[1.0, 2.0, 3.0]])  # 3 numbers for D=2
    assert bad.returncode == 1 and "line 1" in bad.stderr
    missing = subprocess.run([str(STREAM), str(tmp_path / "nope.safetensors")],
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode == 1 and "nope.safetensors" in missing.stderr
    clstm.save(clstm.LSTM(2, 3, bidirectional=True), path)
    bidir = run_stream(path, [[1.0, 2.0]])
    assert bidir.returncode == 1 and "bidirectional" in bidir.stderr
