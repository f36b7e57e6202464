"""clstm.save / clstm.load: safetensors files written and read by the C
library; interchange with the safetensors package and torch; errors."""

import itertools
import os
import subprocess
import sys

import numpy as np
import pytest

import clstm

ATTRS = ("input_size", "hidden_size", "num_layers", "bidirectional", "proj_size", "dropout",
         "peepholes", "input_forget", "clip", "dtype")

# every option that changes the tensors or the math, alone and together
OPTIONS = [
    dict(),
    dict(num_layers=2, bidirectional=True),
    dict(num_layers=3, proj_size=2, dropout=0.25),
    dict(peepholes=True),
    dict(input_forget=True, clip=0.7),
    dict(num_layers=2, bidirectional=True, proj_size=3, dropout=1 / 3, peepholes=True,
         input_forget=True, clip=2.5),
]


def _ids(cfg):
    return "-".join(f"{k}{v:.3g}" if isinstance(v, float) else f"{k}{v}"
                    for k, v in cfg.items()) or "plain"


def _attrs(m):
    return {k: getattr(m, k) for k in ATTRS}


@pytest.mark.parametrize("cfg", OPTIONS, ids=_ids)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("as_pathlike", [False, True])
def test_round_trip(tmp_path, cfg, dtype, as_pathlike):
    m = clstm.LSTM(4, 5, seed=3, dtype=dtype, **cfg)
    path = tmp_path / "m.safetensors"
    clstm.save(m, path if as_pathlike else str(path))
    r = clstm.load(path if as_pathlike else str(path))
    assert isinstance(r, clstm.LSTM)
    assert _attrs(r) == _attrs(m)
    assert r.flat_parameters.tobytes() == m.flat_parameters.tobytes()
    assert not r.flat_grads.any()
    x = np.random.default_rng(1).standard_normal((6, 3, 4)).astype(dtype)
    y0, (h0, c0) = m.forward(x, train=False)
    y1, (h1, c1) = r.forward(x, train=False)
    for a, b in ((y0, y1), (h0, h1), (c0, c1)):
        np.testing.assert_array_equal(a, b)
    assert os.listdir(tmp_path) == ["m.safetensors"]  # no temporary file left


def test_load_batch_first(tmp_path):
    m = clstm.LSTM(2, 3, seed=0)
    clstm.save(m, tmp_path / "m")
    assert clstm.load(tmp_path / "m", batch_first=True).batch_first
    assert not clstm.load(tmp_path / "m").batch_first


@pytest.mark.parametrize("cfg", OPTIONS, ids=_ids)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_file_reads_with_safetensors(tmp_path, cfg, dtype):
    st = pytest.importorskip("safetensors")
    from safetensors.numpy import load_file

    m = clstm.LSTM(4, 5, seed=3, dtype=dtype, **cfg)
    path = str(tmp_path / "m.safetensors")
    clstm.save(m, path)
    tensors = load_file(path)
    named = m.named_parameters()
    assert sorted(tensors) == sorted(named.keys())
    for k, v in named.items():
        assert tensors[k].dtype == v.dtype and tensors[k].shape == v.shape, k
        np.testing.assert_array_equal(tensors[k], v)
    with st.safe_open(path, framework="numpy") as f:
        meta = f.metadata()
    assert meta["format"] == "clstm" and meta["format_version"] == "1"
    assert meta["dtype"] == np.dtype(dtype).name
    assert int(meta["hidden_size"]) == 5 and int(meta["input_size"]) == 4
    assert int(meta["num_layers"]) == m.num_layers and int(meta["proj_size"]) == m.proj_size
    assert meta["bidirectional"] == str(int(m.bidirectional))
    assert float(meta["dropout"]) == m.dropout  # round-trips exactly
    assert float(meta["clip"]) == (m.clip or 0.0)


TORCH_CONFIGS = [dict(num_layers=1), dict(num_layers=2, bidirectional=True),
                 dict(num_layers=2, proj_size=3), dict(num_layers=3, dropout=0.5)]


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
@pytest.mark.parametrize("cfg", TORCH_CONFIGS, ids=_ids)
@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("with_meta", [False, True])
def test_torch_written_file_loads(tmp_path, cfg, double, with_meta):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from safetensors.torch import save_file

    tm = torch.nn.LSTM(5, 7, **cfg).eval()  # eval: no dropout in the oracle
    tm = tm.double() if double else tm
    meta = {k: str(int(v) if isinstance(v, bool) else v) for k, v in cfg.items()}
    meta.update(input_size="5", hidden_size="7")
    has_implied = cfg.get("bidirectional") or cfg.get("proj_size")
    if not with_meta and has_implied:
        # bidirectional/proj_size are not inferred: without metadata, the
        # _reverse / weight_hr tensors are unknown names
        save_file(tm.state_dict(), str(tmp_path / "t"))
        with pytest.raises(ValueError, match="not a valid clstm model file: .*tensors"):
            clstm.load(tmp_path / "t")
        return
    save_file(tm.state_dict(), str(tmp_path / "t"), metadata=meta if with_meta else None)
    m = clstm.load(tmp_path / "t")
    assert m.dtype == (np.float64 if double else np.float32)
    assert (m.input_size, m.hidden_size, m.num_layers) == (5, 7, cfg["num_layers"])
    assert (m.bidirectional, m.proj_size) == (bool(cfg.get("bidirectional")),
                                              cfg.get("proj_size", 0))
    assert m.dropout == (cfg.get("dropout", 0.0) if with_meta else 0.0)
    x = np.random.default_rng(0).standard_normal((4, 2, 5))
    x = x.astype(np.float64 if double else np.float32)
    with torch.no_grad():
        yt, (ht, ct) = tm(torch.from_numpy(x))
    y, (h, c) = m.forward(x, train=False)
    tol = dict(rtol=1e-12, atol=1e-12) if double else dict(rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(y, yt.numpy(), **tol)
    np.testing.assert_allclose(h, ht.numpy(), **tol)
    np.testing.assert_allclose(c, ct.numpy(), **tol)


def test_clstm_file_loads_into_torch(tmp_path):
    torch = pytest.importorskip("torch")
    pytest.importorskip("safetensors")
    from safetensors.torch import load_file

    m = clstm.LSTM(3, 4, 2, bidirectional=True, proj_size=2, seed=5)
    clstm.save(m, tmp_path / "m")
    tm = torch.nn.LSTM(3, 4, 2, bidirectional=True, proj_size=2)
    tm.load_state_dict(load_file(str(tmp_path / "m")))
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    with torch.no_grad():
        yt, _ = tm(torch.from_numpy(x))
    np.testing.assert_allclose(m.forward(x, train=False)[0], yt.numpy(), rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------- errors

def test_load_missing_file(tmp_path):
    p = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        clstm.load(p)


def test_load_directory(tmp_path):
    with pytest.raises(IsADirectoryError, match=str(tmp_path)):
        clstm.load(tmp_path)


def test_load_bad_path_type():
    with pytest.raises(TypeError, match="path"):
        clstm.load(3.5)


def _saved_bytes(tmp_path):
    m = clstm.LSTM(2, 3, 2, seed=0)
    clstm.save(m, tmp_path / "good")
    return (tmp_path / "good").read_bytes()


@pytest.mark.parametrize("cut", [0, 4, 8, 20, -1])
def test_load_truncated(tmp_path, cut):
    data = _saved_bytes(tmp_path)
    p = tmp_path / "cut.safetensors"
    p.write_bytes(data[:cut])
    with pytest.raises(ValueError, match=r"cut\.safetensors.*not a valid clstm model file"):
        clstm.load(p)


@pytest.mark.parametrize("garbage, problem", [
    (b"", "shorter"),
    (b"hello world, this is not a model", "header length"),
    (b"\x05\x00\x00\x00\x00\x00\x00\x00{}}}}", "header"),
    (b"\x02\x00\x00\x00\x00\x00\x00\x00{}", "tensors"),
    (b"\x0c\x00\x00\x00\x00\x00\x00\x00{\"a\":[[[[]]]", "tensor entry"),
])
def test_load_garbage(tmp_path, garbage, problem):
    p = tmp_path / "garbage.bin"
    p.write_bytes(garbage)
    with pytest.raises(ValueError, match="garbage.bin") as e:
        clstm.load(p)
    assert problem in str(e.value)


def test_load_trailing_bytes(tmp_path):
    p = tmp_path / "t"
    p.write_bytes(_saved_bytes(tmp_path) + b"\0\0\0\0")
    with pytest.raises(ValueError, match="size"):
        clstm.load(p)


def test_save_errors(tmp_path):
    m = clstm.LSTM(2, 3, seed=0)
    with pytest.raises(FileNotFoundError, match="nodir"):
        clstm.save(m, tmp_path / "nodir" / "m")
    assert os.listdir(tmp_path) == []
    with pytest.raises(TypeError, match="clstm.LSTM"):
        clstm.save(object(), tmp_path / "m")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "x").write_bytes(b"x")
    with pytest.raises(OSError, match="sub"):  # rename over a non-empty directory
        clstm.save(m, tmp_path / "sub")
    assert sorted(os.listdir(tmp_path)) == ["sub"]
    assert os.listdir(tmp_path / "sub") == ["x"]


def test_failed_save_leaves_existing_file(tmp_path):
    """A save that fails mid-write (here: a file size limit, in a child
    process) raises OSError and leaves the previous file and the directory
    exactly as they were."""
    old = clstm.LSTM(2, 3, seed=0)
    path = tmp_path / "m.safetensors"
    clstm.save(old, path)
    before = path.read_bytes()
    code = (
        "import resource, signal, sys, clstm\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
        "m = clstm.LSTM(8, 64, 2, seed=1)\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))\n"
        "try:\n"
        "    clstm.save(m, sys.argv[1])\n"
        "except OSError as e:\n"
        "    print('OSError', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                         text=True, check=True).stdout
    assert out.startswith("OSError") and "m.safetensors" in out
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["m.safetensors"]
    np.testing.assert_array_equal(clstm.load(path).flat_parameters, old.flat_parameters)


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_save_read_only_directory(tmp_path):
    m = clstm.LSTM(2, 3, seed=0)
    path = tmp_path / "m"
    clstm.save(m, path)
    before = path.read_bytes()
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(OSError, match="m"):
            clstm.save(clstm.LSTM(2, 3, seed=1), path)
    finally:
        tmp_path.chmod(0o700)
    assert path.read_bytes() == before


def test_all_options_listed():
    """OPTIONS covers every flag the file stores."""
    keys = set(itertools.chain.from_iterable(OPTIONS))
    assert keys >= {"num_layers", "bidirectional", "proj_size", "dropout", "peepholes",
                    "input_forget", "clip"}


# ------------------------------------------------------ bytes in memory
@pytest.mark.parametrize("cfg", OPTIONS, ids=_ids)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bytes_are_the_file(tmp_path, cfg, dtype):
    """save_bytes is clstm.save's file byte for byte; load_bytes reads it back."""
    m = clstm.LSTM(3, 5, dtype=dtype, seed=1, **cfg)
    m.metadata["note"] = 'a "quoted"\nline'
    clstm.save(m, tmp_path / "m.safetensors")
    b = clstm.save_bytes(m)
    assert isinstance(b, bytes) and b == (tmp_path / "m.safetensors").read_bytes()
    r = clstm.load_bytes(b)
    assert type(r) is clstm.LSTM and _attrs(r) == _attrs(m)
    assert dict(r.metadata) == dict(m.metadata)
    np.testing.assert_array_equal(r.flat_parameters, m.flat_parameters)


def test_bytes_whole_model_and_buffers():
    m = clstm.Model(hidden_size=4, vocab="abc\u00e9", output_size=4, softmax=True, seed=2)
    b = clstm.save_bytes(m)
    for data in (b, bytearray(b), memoryview(b), np.frombuffer(b, np.uint8)):
        r = clstm.load_bytes(data)
        assert type(r) is clstm.Model and r.vocab == m.vocab
        np.testing.assert_array_equal(r.flat_parameters, m.flat_parameters)
    assert clstm.load_bytes(b, batch_first=True).batch_first
    assert clstm.save_bytes(clstm.load_bytes(b)) == b


@pytest.mark.parametrize("data,error,match", [
    (b"", ValueError, "shorter than its 8-byte header"),
    (b"\x10\0\0\0\0\0\0\0{}" + b" " * 14, ValueError, "not a valid clstm model"),
    (b"x" * 64, ValueError, "not a valid clstm model"),
    ("a str", TypeError, "data: expected bytes"),
    (None, TypeError, "data: expected bytes"),
    (np.zeros((4, 4), np.uint8)[:, ::2], ValueError, "data: expected a contiguous buffer")])
def test_load_bytes_errors(data, error, match):
    with pytest.raises(error, match=match):
        clstm.load_bytes(data)


def test_load_bytes_truncated():
    b = clstm.save_bytes(clstm.LSTM(2, 3, seed=0))
    for cut in (1, 8, len(b) // 2, len(b) - 1):
        with pytest.raises(ValueError, match="not a valid clstm model"):
            clstm.load_bytes(b[:cut])


def test_save_bytes_errors():
    with pytest.raises(TypeError, match="model: expected a clstm.LSTM"):
        clstm.save_bytes("not a model")
