"""Quantized (int8) model files (include/clstm.h: "quantized models").

A quantized file is safetensors with, per quantized matrix (weight_ih_l*,
weight_hh_l*, weight_hr_l*, embedding.weight, head.weight), an I8 tensor of
the matrix's shape and an F32 "<name>.scale" of shape (rows,); every other
tensor F32; "quantized": "int8" and "dtype": "float32" in the metadata.

- Round trips: save -> load of every feature gives the same bits out, the
  same int8 tensors, and the same file again; save_bytes is the file.
- Size: about a quarter of the float32 file.
- Interchange: safetensors.numpy reads the file; a file it rewrites (its
  own tensor order) loads back with the same outputs.
- Hostile files: each inconsistency of the format, made by editing a valid
  file's header and data (tests/fuzz/make_corpus.py's tensors_of / build),
  is refused with a ValueError whose message names it. Edits that stay
  valid load, with the edited values, so the edits reach what they claim.
- clstm.quantize refuses a quantized model and one with NaN or Inf, and
  leaves the model as it was.

The numerics of quantized models are tests/test_quantize.py's (against
tests/q8_reference.py); the C loader's failure paths under ASan and
valgrind are tests/c/test_quantize.c's.
"""
import math
import struct

import numpy as np
import pytest

import clstm
from fuzz.make_corpus import build, join, split, tensors_of

VOCAB = "abcdefg \n"
FEATURES = {
    "layers2": lambda: clstm.LSTM(4, 6, 2),
    "bidirectional": lambda: clstm.LSTM(4, 6, bidirectional=True),
    "proj": lambda: clstm.LSTM(4, 6, 2, proj_size=3),
    "peep-ifg-clip": lambda: clstm.LSTM(4, 6, peepholes=True, input_forget=True, clip=0.5),
    "float64": lambda: clstm.LSTM(4, 6, dtype=np.float64),
    "head": lambda: clstm.Model(4, 6, output_size=3),
    "embedding": lambda: clstm.Model(5, 6, encoding="embedding", vocab=VOCAB,
                                     output_size=len(VOCAB), softmax=True),
    "onehot": lambda: clstm.Model(hidden_size=6, vocab=VOCAB, output_size=len(VOCAB),
                                  softmax=True),
    "everything": lambda: clstm.Model(5, 6, 2, encoding="embedding", vocab=VOCAB,
                                      bidirectional=True, proj_size=3, peepholes=True,
                                      input_forget=True, clip=2.0, output_size=4),
}
QUANTIZED = ("weight_ih_l", "weight_hh_l", "weight_hr_l", "embedding.weight", "head.weight")


def quantized(make, seed=11):
    """clstm.quantize of a model made by `make` with its parameters drawn
    again from `seed` (larger than the initialisation, so every row's scale
    differs)."""
    m = make()
    rng = np.random.default_rng(seed)
    m.load_state_dict({k: rng.standard_normal(v.shape) for k, v in m.state_dict().items()})
    return clstm.quantize(m)


def run(m, seed=0, T=5, B=3):
    """m's outputs and final state on a fixed input and initial state."""
    rng = np.random.default_rng(seed)
    if m.encoding:
        inputs = rng.integers(0, m.vocab_size, (T, B))
    else:
        inputs = rng.standard_normal((T, B, m.input_size)).astype(np.float32)
    NL = m.num_directions * m.num_layers
    h0 = rng.standard_normal((NL, B, m.proj_size or m.hidden_size)).astype(np.float32)
    c0 = rng.standard_normal((NL, B, m.hidden_size)).astype(np.float32)
    out, (h, c) = m.forward(inputs, (h0, c0), train=False)
    return out, h, c


def assert_same_model(a, b):
    """Equal configs, metadata and vocabularies; the same int8 tensors and
    parameter block; the same bits out."""
    assert a.quantized and b.quantized
    assert a.config == b.config and dict(a.metadata) == dict(b.metadata)
    assert getattr(a, "vocab", None) == getattr(b, "vocab", None)
    qa, qb = a.int8_tensors(), b.int8_tensors()
    assert sorted(qa) == sorted(qb)
    for name in qa:
        assert qa[name][0].tobytes() == qb[name][0].tobytes(), name
        assert qa[name][1].tobytes() == qb[name][1].tobytes(), name
    assert a.flat_parameters.tobytes() == b.flat_parameters.tobytes()
    for x, y in zip(run(a), run(b)):
        assert x.dtype == y.dtype == np.float32 and x.tobytes() == y.tobytes()


# ------------------------------------------------------------ round trips

@pytest.mark.parametrize("feature", FEATURES)
def test_round_trip(tmp_path, feature):
    q = quantized(FEATURES[feature])
    q.metadata["note"] = "int8 \u00e9"
    names = {n for n in q.named_parameters().keys() if n.startswith(QUANTIZED)}
    assert set(q.int8_tensors()) == names and names
    path = tmp_path / "q.safetensors"
    clstm.save(q, path)
    data = path.read_bytes()
    assert clstm.save_bytes(q) == data
    for back in (clstm.load(path), clstm.load_bytes(data)):
        assert type(back) is type(q)
        assert_same_model(back, q)
        assert clstm.save_bytes(back) == data  # and the same file again


def test_file_is_a_quarter_of_float32(tmp_path):
    m = clstm.LSTM(256, 256, seed=1)
    q = clstm.quantize(m)
    f32, i8 = clstm.save_bytes(m), clstm.save_bytes(q)
    # The data: per weight one byte instead of four; per row of a matrix,
    # one float32 scale; the biases float32 in both files.
    rows, weights = 4 * 256 * 2, 4 * 256 * (256 + 256)
    biases = 2 * 4 * 256
    assert len(split(f32)[1]) == 4 * (weights + biases)
    assert len(split(i8)[1]) == weights + 4 * rows + 4 * biases
    # Each LSTM row holds D + H = 512 weights (4 * 512 bytes, then 512) and
    # brings 2 bias floats and 2 scale floats over its two matrices: the
    # ratio is 4 * 514 / 528 = 3.89 before the headers. It is below 4 for
    # any model (the int8 file adds scales and header entries, saves 3 bytes
    # per weight) and above 3.5 while rows have over 64 weights.
    ratio = len(f32) / len(i8)
    assert 3.5 < ratio < 4.0, ratio


def test_safetensors_reads_the_file(tmp_path):
    pytest.importorskip("safetensors")
    from safetensors import safe_open
    from safetensors.numpy import load_file

    q = quantized(FEATURES["everything"])
    path = tmp_path / "q.safetensors"
    clstm.save(q, path)
    tensors = load_file(str(path))
    int8, params = q.int8_tensors(), q.named_parameters()
    assert sorted(tensors) == sorted(list(params.keys()) + [n + ".scale" for n in int8])
    for name, value in params.items():
        if name in int8:
            w, s = int8[name]
            assert tensors[name].dtype == np.int8 and tensors[name].shape == value.shape
            assert tensors[name + ".scale"].dtype == np.float32
            assert tensors[name + ".scale"].shape == (value.shape[0],)
            np.testing.assert_array_equal(tensors[name], w)
            np.testing.assert_array_equal(tensors[name + ".scale"], s)
            # the float block holds the dequantized weights
            np.testing.assert_array_equal(w * s[:, None], value)
        else:
            assert tensors[name].dtype == np.float32 and tensors[name].shape == value.shape
            np.testing.assert_array_equal(tensors[name], value)
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    assert meta["quantized"] == "int8" and meta["dtype"] == "float32"


def test_rewritten_by_safetensors_loads(tmp_path):
    pytest.importorskip("safetensors")
    from safetensors import safe_open
    from safetensors.numpy import load_file, save_file

    q = quantized(FEATURES["everything"])
    path, again = tmp_path / "q.safetensors", tmp_path / "again.safetensors"
    clstm.save(q, path)
    with safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    save_file(load_file(str(path)), str(again), metadata=meta)
    order = list(tensors_of(path.read_bytes())[1])
    reordered = list(tensors_of(again.read_bytes())[1])
    assert sorted(order) == sorted(reordered) and order != reordered  # its own order
    assert_same_model(clstm.load(again), q)


def test_tensor_order_does_not_matter():
    q = quantized(FEATURES["everything"])
    meta, t = tensors_of(clstm.save_bytes(q))
    for order in (reversed(list(t)), sorted(t)):
        shuffled = {k: t[k] for k in order}
        assert list(shuffled) != list(t)
        assert_same_model(clstm.load_bytes(build(meta, shuffled)), q)


# ------------------------------------------------------------ hostile files

# the base of the edits: one tensor of each quantized kind (weight_hr too)
BASE = quantized(FEATURES["everything"])
BASE_BYTES = clstm.save_bytes(BASE)


def edited(edit):
    """BASE's file after edit(metadata, tensors) changed them in place
    (tensors: {name: [dtype, shape, data bytes]})."""
    meta, t = tensors_of(BASE_BYTES)
    edit(meta, t)
    return build(meta, t)


def refused(data, match):
    with pytest.raises(ValueError, match="not a valid clstm model file: .*" + match):
        clstm.load_bytes(data)


def set_f32(name, row, value):
    """An edit: element `row` of the F32 tensor `name` set to value."""
    def edit(meta, t):
        d = bytearray(t[name][2])
        d[4 * row:4 * row + 4] = struct.pack("<f", value)
        t[name][2] = bytes(d)
    return edit


def set_i8(name, index, value):
    def edit(meta, t):
        d = bytearray(t[name][2])
        d[index] = value & 0xFF
        t[name][2] = bytes(d)
    return edit


INT8_NAMES = ("weight_ih_l0", "weight_hh_l1_reverse", "weight_hr_l0", "embedding.weight",
              "head.weight")


def last_row(name):
    return BASE.named_parameters()[name].shape[0] - 1


BAD_SCALE = r"a scale that is zero, negative, NaN or Inf"


@pytest.mark.parametrize("name", INT8_NAMES)
@pytest.mark.parametrize("value", [0.0, -0.0, -0.5, -math.inf, math.nan, math.inf],
                         ids=["0", "-0", "negative", "-inf", "nan", "inf"])
def test_bad_scale(name, value):
    for row in (0, last_row(name)):  # every row is checked
        refused(edited(set_f32(name + ".scale", row, value)), BAD_SCALE)


@pytest.mark.parametrize("name", INT8_NAMES)
def test_weight_minus_128(name):
    size = BASE.named_parameters()[name].size
    for index in (0, size - 1):
        refused(edited(set_i8(name, index, -128)), "a weight of -128")


@pytest.mark.parametrize("name", INT8_NAMES)
def test_valid_edits_load(name):
    """The edits reach the tensors they name: values that stay valid load,
    and the model holds them."""
    row, s = last_row(name), BASE.int8_tensors()[name][1]
    tiny = np.nextafter(np.float32(0), np.float32(1))  # the smallest subnormal is > 0
    for value in (2 * s[row], tiny):
        m = clstm.load_bytes(edited(set_f32(name + ".scale", row, value)))
        assert m.int8_tensors()[name][1][row] == np.float32(value)
        assert m.named_parameters()[name][row].tolist() == (
            m.int8_tensors()[name][0][row] * np.float32(value)).tolist()
    size = BASE.named_parameters()[name].size
    for value in (-127, 127):
        m = clstm.load_bytes(edited(set_i8(name, size - 1, value)))
        assert m.int8_tensors()[name][0].reshape(-1)[-1] == value


def drop(name):
    return lambda meta, t: t.pop(name)


def retype(name, dtype, convert):
    """An edit: tensor `name` stored as dtype, its values converted by convert(array)."""
    def edit(meta, t):
        src = {"F32": "<f4", "I8": "i1"}[t[name][0]]
        a = np.frombuffer(t[name][2], src).reshape(t[name][1])
        t[name][0], t[name][2] = dtype, convert(a).tobytes()
    return edit


def reshape(name, shape, extra=b""):
    def edit(meta, t):
        t[name][1], t[name][2] = shape, t[name][2] + extra
    return edit


def dequantized(name):
    """weight `name` as F32 (q * scale), its scale kept."""
    def edit(meta, t):
        q = np.frombuffer(t[name][2], np.int8).reshape(t[name][1])
        s = np.frombuffer(t[name + ".scale"][2], "<f4")
        t[name][0], t[name][2] = "F32", (q * s[:, None]).astype("<f4").tobytes()
    return edit


def add(name, dtype, shape, data):
    return lambda meta, t: t.__setitem__(name, [dtype, shape, data])


def meta_set(**kv):
    return lambda meta, t: meta.update(kv)


def both(*edits):
    def edit(meta, t):
        for e in edits:
            e(meta, t)
    return edit


ROWS = BASE.named_parameters()["weight_hh_l0"].shape[0]
DTYPE = r"a tensor's dtype is not the model's \(a quantized model: I8 weights, F32 scales"
UNKNOWN = "the file's tensors are not the model's: missing or unknown names"
NOT_QUANTIZED = 'an I8 tensor in a file without __metadata__ quantized "int8"'
HOSTILE = {
    # the scales
    "scale-missing": (drop("weight_hh_l0.scale"), UNKNOWN),
    "embedding-scale-missing": (drop("embedding.weight.scale"), UNKNOWN),
    "scale-rows+1": (reshape("weight_hh_l0.scale", [ROWS + 1], b"\0\0\x80\x3f"),
                     "a tensor's shape differs from the model's"),
    "scale-rows-1": (both(drop("weight_hh_l0.scale"),
                          add("weight_hh_l0.scale", "F32", [ROWS - 1],
                              b"\0\0\x80\x3f" * (ROWS - 1))),
                     "a tensor's shape differs from the model's"),
    "scale-2d": (reshape("weight_hh_l0.scale", [ROWS, 1]),
                 "a tensor's shape differs from the model's"),
    "scale-0d": (both(drop("head.weight.scale"), add("head.weight.scale", "F32", [],
                                                     b"\0\0\x80\x3f")),
                 "a tensor's shape differs from the model's"),
    "scale-f64": (retype("weight_hh_l0.scale", "F64", lambda a: a.astype("<f8")), DTYPE),
    "scale-i8": (retype("weight_hh_l0.scale", "I8", lambda a: np.ones(a.shape, "i1")), DTYPE),
    "scale-of-a-bias": (add("bias_ih_l0.scale", "F32", [ROWS], b"\0\0\x80\x3f" * ROWS),
                        UNKNOWN),
    # the int8 tensors
    "weight-as-f32": (dequantized("weight_hh_l0"), DTYPE),
    "embedding-as-f32": (dequantized("embedding.weight"), DTYPE),
    "weight-as-f32-no-scale": (both(dequantized("head.weight"), drop("head.weight.scale")),
                               UNKNOWN),
    "weight-as-f64": (retype("weight_ih_l0", "F64", lambda a: a.astype("<f8")), DTYPE),
    "weight-transposed": (lambda meta, t: t["weight_hr_l0"][1].reverse(),
                          "a tensor's shape differs from the model's"),
    "weight-1d": (lambda meta, t: t["weight_ih_l0"].__setitem__(1, [t["weight_ih_l0"][1][0] *
                                                                    t["weight_ih_l0"][1][1]]),
                  "a tensor's shape differs from the model's"),
    "bias-as-i8": (retype("bias_hh_l0", "I8", lambda a: np.zeros(a.shape, "i1")), DTYPE),
    "peephole-as-i8": (retype("peephole_l0", "I8", lambda a: np.zeros(a.shape, "i1")), DTYPE),
    "head-bias-as-i8": (retype("head.bias", "I8", lambda a: np.zeros(a.shape, "i1")), DTYPE),
    "weight-missing": (drop("weight_hh_l0"), UNKNOWN),
    "extra-tensor": (add("extra", "F32", [2], b"\0" * 8), UNKNOWN),
    "extra-i8-tensor": (add("extra", "I8", [2, 2], b"\0" * 4), UNKNOWN),
    "renamed-scale": (lambda meta, t: t.__setitem__("weight_hh_l0.Scale",
                                                    t.pop("weight_hh_l0.scale")),
                      "missing, or an unknown one present"),
    # the metadata
    "no-quantized-key": (lambda meta, t: meta.pop("quantized"), NOT_QUANTIZED),
    "no-metadata": (lambda meta, t: meta.clear(), NOT_QUANTIZED),
    "int4": (meta_set(quantized="int4"), 'quantized is not "int8"'),
    "INT8": (meta_set(quantized="INT8"), 'quantized is not "int8"'),
    "empty": (meta_set(quantized=""), 'quantized is not "int8"'),
    "float64": (meta_set(dtype="float64"), "a quantized model's dtype is not float32"),
    "float16": (meta_set(dtype="float16"), "dtype is not float32 or float64"),
    "hidden-size": (meta_set(hidden_size="7"), "a tensor's shape differs from the model's"),
}


@pytest.mark.parametrize("case", HOSTILE)
def test_hostile(case):
    edit, match = HOSTILE[case]
    refused(edited(edit), match)


def test_hostile_file_names_itself(tmp_path):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(edited(set_f32("head.weight.scale", 0, math.nan)))
    with pytest.raises(ValueError, match=r"bad\.safetensors.*" + BAD_SCALE):
        clstm.load(path)


def test_quantized_key_on_a_float_file():
    meta, t = tensors_of(clstm.save_bytes(FEATURES["head"]()))
    meta["quantized"] = "int8"  # the int8 tensors and scales are not there
    refused(build(meta, t), UNKNOWN)


def test_i8_tensor_in_a_float_file():
    meta, t = tensors_of(clstm.save_bytes(FEATURES["head"]()))
    shape = t["weight_hh_l0"][1]
    t["weight_hh_l0"] = ["I8", shape, b"\1" * (shape[0] * shape[1])]
    refused(build(meta, t), NOT_QUANTIZED)


def test_offsets_not_tiling():
    header, data = split(BASE_BYTES)
    names = [k for k in header if k != "__metadata__"]
    first = min(names, key=lambda k: header[k]["data_offsets"][0])
    scale = "weight_hh_l0.scale"
    b, e = header[scale]["data_offsets"]
    cases = {
        "overlap": {scale: [b - 4, e - 4]},
        "gap": {scale: [b + 4, e + 4]},
        "first-not-at-0": {first: [4, header[first]["data_offsets"][1] + 4]},
        "too-long": {scale: [b, e + 4]},
        "past-the-end": {scale: [len(data), len(data) + e - b]},
    }
    for what, offsets in cases.items():
        h = {k: dict(v) if k != "__metadata__" else v for k, v in header.items()}
        for k, v in offsets.items():
            h[k]["data_offsets"] = v
        with pytest.raises(ValueError, match="tile|size"):
            clstm.load_bytes(join(h, data))
    # the data buffer longer or shorter than the tensors' total
    refused(BASE_BYTES + b"\0", "size")
    refused(BASE_BYTES[:-1], "size|tile")


def test_every_truncation_refused():
    q = quantized(FEATURES["embedding"])  # a small file: every length is tried
    data = clstm.save_bytes(q)
    for n in range(len(data)):
        with pytest.raises(ValueError, match="not a valid clstm model file"):
            clstm.load_bytes(data[:n])
    assert_same_model(clstm.load_bytes(data), q)


# ------------------------------------------------------------ clstm.quantize refuses

def test_quantize_a_quantized_model():
    q = quantized(FEATURES["everything"])
    before = clstm.save_bytes(q)
    with pytest.raises(ValueError, match="already quantized"):
        clstm.quantize(q)
    assert q.quantized and clstm.save_bytes(q) == before


@pytest.mark.parametrize("name, value, dtype", [
    ("weight_hh_l1", np.nan, np.float32),
    ("weight_ih_l1_reverse", np.inf, np.float32),
    ("bias_ih_l0", -np.inf, np.float64),
    ("peephole_l1", np.nan, np.float64),
    ("embedding.weight", np.nan, np.float32),
    ("head.bias", np.inf, np.float32),
])
def test_quantize_non_finite(name, value, dtype):
    m = clstm.Model(5, 6, 2, encoding="embedding", vocab=VOCAB, bidirectional=True,
                    peepholes=True, output_size=4, dtype=dtype, seed=2)
    sd = m.state_dict()
    sd[name].reshape(-1)[-1] = value
    m.load_state_dict(sd)
    params, saved = m.flat_parameters.tobytes(), clstm.save_bytes(m)
    with pytest.raises(ValueError, match=name.replace(".", r"\.") + " holds NaN, Inf or values beyond float32"):
        clstm.quantize(m)
    assert not m.quantized
    assert m.flat_parameters.tobytes() == params and clstm.save_bytes(m) == saved
    sd[name].reshape(-1)[-1] = 0.5  # the same model with the value finite quantizes
    m.load_state_dict(sd)
    assert clstm.quantize(m).quantized
