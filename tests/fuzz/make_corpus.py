#!/usr/bin/env python3
"""Write the fuzzing seed corpus for tests/fuzz/fuzz_load.c.

Valid clstm model files (small configs, saved with the installed clstm
package; quantized ones among them, for the I8 and scale paths) plus
hand-made near-misses: truncated files, broken JSON headers, bad offsets,
bad dtypes and shapes, bad scales and int8 weights. Deterministic (fixed
seeds), so re-running it reproduces the committed corpus.

tensors_of / build take a file apart and put it back together; the
hostile-file tests (tests/test_quantize_files.py) use them too.

    python tests/fuzz/make_corpus.py [outdir]   (default tests/fuzz/corpus)
"""
import json
import os
import struct
import sys
import tempfile

import numpy as np

import clstm

HERE = os.path.dirname(os.path.abspath(__file__))

CONFIGS = {
    "uni_f32": dict(input_size=2, hidden_size=3),
    "bidir": dict(input_size=2, hidden_size=3, bidirectional=True),
    "proj": dict(input_size=3, hidden_size=4, proj_size=2),
    "peep": dict(input_size=2, hidden_size=3, peepholes=True),
    "f64": dict(input_size=2, hidden_size=2, dtype=np.float64),
    "two_layers": dict(input_size=2, hidden_size=3, num_layers=2),
    "all_opts": dict(input_size=2, hidden_size=3, num_layers=2, bidirectional=True,
                     proj_size=2, peepholes=True, dtype=np.float64),
    "ifg_clip": dict(input_size=1, hidden_size=2, input_forget=True, clip=3.0),
    "dropout": dict(input_size=1, hidden_size=1, num_layers=2, dropout=0.5),
    # whole models (clstm.Model): encodings, heads, vocabularies
    "onehot_head": dict(vocab="ab\"\\\n\u00e9\U0001F600", hidden_size=3, output_size=7,
                        softmax=True),
    "embed_head": dict(encoding="embedding", vocab_size=5, input_size=2, hidden_size=2,
                       output_size=3, dtype=np.float64),
    "raw_head": dict(input_size=2, hidden_size=3, output_size=2, bidirectional=True,
                     _metadata={"task": "forecast", "mean": "0.5", "note": "a \"quoted\" \u00e9"}),
    # quantized (clstm.quantize): I8 weights, F32 "<name>.scale", "quantized": "int8"
    "q8_embed_head": dict(encoding="embedding", vocab="abcde", input_size=3, hidden_size=4,
                          output_size=5, softmax=True, _quantize=True),
    "q8_bidir_proj_peep": dict(input_size=3, hidden_size=5, num_layers=2, bidirectional=True,
                               proj_size=2, peepholes=True, input_forget=True, clip=2.0,
                               _quantize=True),
}


def model_bytes(cfg):
    cfg = dict(cfg)
    metadata = cfg.pop("_metadata", {})
    quantize = cfg.pop("_quantize", False)
    model = clstm.Model(seed=1, **cfg)
    model.metadata.update(metadata)
    if quantize:
        model = clstm.quantize(model)
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "m.clstm")
        clstm.save(model, p)
        with open(p, "rb") as f:
            return f.read()


def split(blob):
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + n]), blob[8 + n:]


def join(header, data, raw_header=None):
    h = raw_header if raw_header is not None else json.dumps(
        header, separators=(",", ":")).encode()
    return struct.pack("<Q", len(h)) + h + data


def tensors_of(blob):
    """(metadata, {name: [dtype, shape, data bytes]}) of a safetensors file,
    the tensors in the order of their data."""
    header, data = split(blob)
    metadata = header.pop("__metadata__", None)
    order = sorted(header, key=lambda k: header[k]["data_offsets"][0])
    return metadata, {k: [header[k]["dtype"], list(header[k]["shape"]),
                          data[slice(*header[k]["data_offsets"])]] for k in order}


def build(metadata, tensors):
    """A safetensors file of `tensors` ({name: [dtype, shape, data bytes]}),
    their data laid out in the dict's order; no "__metadata__" when
    metadata is None."""
    header = {} if metadata is None else {"__metadata__": metadata}
    at = 0
    for name, (dtype, shape, data) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [at, at + len(data)]}
        at += len(data)
    return join(header, b"".join(t[2] for t in tensors.values()))


def first_tensor(header):
    return next(k for k in header if k != "__metadata__")


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "corpus")
    os.makedirs(out, exist_ok=True)
    files = {}
    for name, cfg in CONFIGS.items():
        files["valid_" + name] = model_bytes(cfg)

    base = files["valid_uni_f32"]
    header, data = split(base)
    # the header as written, without the space padding safetensors allows
    raw = base[8:8 + struct.unpack("<Q", base[:8])[0]].rstrip(b" ")
    t0 = first_tensor(header)

    # truncations
    files["trunc_0"] = b""
    files["trunc_4"] = base[:4]
    files["trunc_header"] = base[:8 + len(raw) // 2]
    files["trunc_data"] = base[:-3]
    # header length prefix wrong
    files["len_too_big"] = struct.pack("<Q", len(raw) + 1000) + base[8:]
    files["len_huge"] = struct.pack("<Q", 2**63) + base[8:]
    files["len_zero"] = struct.pack("<Q", 0) + base[8:]
    # broken JSON
    files["json_not_object"] = join(None, data, b"[]" + b" " * (len(raw) - 2))
    files["json_trailing_comma"] = join(None, data, raw[:-1] + b",}")
    files["json_unterminated"] = join(None, data, raw[:-1])
    files["json_padded_tabs"] = join(None, data, raw + b"\t\n  ")
    files["json_bad_escape"] = join(None, data, raw.replace(b'"', b'"\\q', 1))
    files["json_trailing_garbage"] = join(None, data, raw + b"x")
    files["json_deep"] = join(None, data, b'{"a":' * 20 + b"1" + b"}" * 20)
    dup = raw[:-1] + b"," + raw[1:]
    files["json_dup_keys"] = join(None, data, dup)
    # bad offsets / dtypes / shapes
    h = json.loads(json.dumps(header))
    h[t0]["data_offsets"] = [0, h[t0]["data_offsets"][1] + 4]
    files["off_overlap"] = join(h, data)
    h = json.loads(json.dumps(header))
    h[t0]["data_offsets"] = [8, 4]
    files["off_reversed"] = join(h, data)
    h = json.loads(json.dumps(header))
    h[t0]["data_offsets"] = [0, 2**64 - 1]
    files["off_huge"] = join(h, data)
    h = json.loads(json.dumps(header))
    h[t0]["dtype"] = "F16"
    files["dtype_f16"] = join(h, data)
    h = json.loads(json.dumps(header))
    h[t0]["shape"] = [h[t0]["shape"][0] + 1] + h[t0]["shape"][1:]
    files["shape_wrong"] = join(h, data)
    h = json.loads(json.dumps(header))
    del h[t0]
    files["tensor_missing"] = join(h, data)
    h = json.loads(json.dumps(header))
    h[t0]["extra"] = 1
    files["tensor_extra_field"] = join(h, data)
    # metadata variations
    if "__metadata__" in header:
        h = json.loads(json.dumps(header))
        md = h["__metadata__"]
        for k in list(md):
            if md[k].isdigit():
                md[k] = str(int(md[k]) + 1000000)
                break
        files["meta_bad_size"] = join(h, data)
        h = json.loads(json.dumps(header))
        h["__metadata__"] = {}
        files["meta_empty"] = join(h, data)
    # data section edits
    files["data_nan"] = join(header, b"\xff\xff\xff\x7f" * (len(data) // 4))
    files["data_extra"] = base + b"\0" * 8

    # quantized near-misses: each edits valid_q8_embed_head's metadata or
    # tensors ({name: [dtype, shape, bytes]}) in place
    def q8_file(edit):
        meta, t = tensors_of(files["valid_q8_embed_head"])
        edit(meta, t)
        return build(meta, t)

    def scale(value):
        def edit(meta, t):
            t["weight_hh_l0.scale"][2] = struct.pack("<f", value) + t["weight_hh_l0.scale"][2][4:]
        return edit

    def as_f64(meta, t):
        t["weight_ih_l0.scale"][:3:2] = ["F64", np.frombuffer(
            t["weight_ih_l0.scale"][2], "<f4").astype("<f8").tobytes()]

    def as_f32(meta, t):  # the dequantized weights, in place of the int8 ones
        q = np.frombuffer(t["weight_hh_l0"][2], np.int8).reshape(t["weight_hh_l0"][1])
        s = np.frombuffer(t["weight_hh_l0.scale"][2], "<f4")
        t["weight_hh_l0"][:3:2] = ["F32", (q * s[:, None]).astype("<f4").tobytes()]

    files["q8_scale_zero"] = q8_file(scale(0.0))
    files["q8_scale_neg"] = q8_file(scale(-0.5))
    files["q8_scale_nan"] = q8_file(scale(float("nan")))
    files["q8_scale_inf"] = q8_file(scale(float("inf")))
    files["q8_weight_m128"] = q8_file(
        lambda meta, t: t["head.weight"].__setitem__(2, b"\x80" + t["head.weight"][2][1:]))
    files["q8_scale_missing"] = q8_file(lambda meta, t: t.pop("embedding.weight.scale"))
    files["q8_scale_f64"] = q8_file(as_f64)
    files["q8_weight_f32"] = q8_file(as_f32)
    files["q8_meta_missing"] = q8_file(lambda meta, t: meta.pop("quantized"))
    files["q8_meta_int4"] = q8_file(lambda meta, t: meta.update(quantized="int4"))
    files["q8_meta_float64"] = q8_file(lambda meta, t: meta.update(dtype="float64"))

    total = 0
    for name, blob in sorted(files.items()):
        with open(os.path.join(out, name), "wb") as f:
            f.write(blob)
        total += len(blob)
    print(f"wrote {len(files)} files, {total} bytes, to {out}")


if __name__ == "__main__":
    main()
