"""clstm.export_c and `clstm export --c`: a model as one C99 file.

The exported code is compiled here with the host's gcc (-std=c99 -Wall
-Wextra -Werror -pedantic) and run; its outputs are compared with clstm's
own forward on the same model and inputs: float32 within 1e-5 of the
outputs' scale, int8 bit for bit. Every combination of the features is
exported, all of them linked into one program (which also checks that
their prefixed names never clash)."""
import itertools
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import clstm
from clstm import export_c as E

CC = shutil.which("gcc")
pytestmark = pytest.mark.skipif(CC is None, reason="needs gcc")
CFLAGS = ["-std=c99", "-O1", "-Wall", "-Wextra", "-Werror", "-pedantic"]

# bidirectional (or "reverse": a reverse-only model), proj_size, peepholes,
# input_forget, clip, encoding, head
FEATURES = list(itertools.product([False, True], [0, 3], [False, True], [False, True],
                                  [None, 0.5], [None, "onehot", "embedding"], [0, 4]))
# reverse-only: every projection, encoding and head, the ONNX options by turns
FEATURES += [("reverse", proj, k % 2 == 0, k % 3 == 0, (None, 0.5)[k % 2], enc, head)
             for k, (proj, enc, head) in enumerate(itertools.product(
                 [0, 3], [None, "onehot", "embedding"], [0, 4]))]


# hard sigmoid gates (their gate_alpha last; gate_beta 0.5), steep and
# Keras 3's, with every direction, encoding and the ONNX options by turns
FEATURES += [(bi, 3 * (k % 2), k % 2 == 1, k % 3 == 0, (None, 0.5)[k % 3 == 2], enc, 4 * (k % 2),
              (2.0, 1 / 6)[k % 2])
             for k, (bi, enc) in enumerate(itertools.product(
                 [False, True, "reverse"], [None, "onehot", "embedding"]))]


def make_model(i, bi, proj, peep, cf, clip, enc, head, hard=None):
    """A random model with these features (hard: hard sigmoid gates with
    this gate_alpha) and three input sequences."""
    rng = np.random.default_rng(i)
    kw = dict(hidden_size=5, num_layers=2, bidirectional=bi is True, reverse=bi == "reverse",
              proj_size=proj, peepholes=peep,
              input_forget=cf, clip=clip, output_size=head, softmax=bool(head), seed=i)
    if hard:
        kw.update(gate_activation="hard_sigmoid", gate_alpha=hard)
    if enc is None:
        m = clstm.Model(input_size=3, **kw)
        seqs = [rng.standard_normal((T, 3)).astype(np.float32) * 2 for T in (4, 1, 7)]
    else:
        m = clstm.Model(input_size=3 if enc == "embedding" else None, encoding=enc,
                        vocab_size=6, **kw)
        seqs = [rng.integers(0, 6, T).astype(np.int32) for T in (4, 1, 7)]
    if peep:  # torch-style init leaves them 0
        for name, p in m.named_parameters().items():
            if name.startswith("peephole"):
                p[...] = rng.uniform(-0.5, 0.5, p.shape)
    return m, seqs


def compile_and_run(sources, exe, extra=()):
    """Compile the C files (in parallel), link them into exe, run it."""
    def obj(src):
        o = src[:-2] + ".o"
        r = subprocess.run([CC] + CFLAGS + list(extra) + ["-c", src, "-o", o],
                           capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
        return o
    with ThreadPoolExecutor(os.cpu_count() or 1) as pool:
        objs = list(pool.map(obj, sources))
    subprocess.run([CC, "-o", exe] + objs + ["-lm"], check=True, capture_output=True)
    return subprocess.run([exe], capture_output=True, text=True, check=True, timeout=120).stdout


def reference(model, seqs):
    return np.concatenate([model.forward(s)[0] for s in seqs])


def assert_matches(model, got, ref, msg=""):
    """int8: the same bits; float32: within 1e-5 of the outputs' scale."""
    assert got.shape == ref.shape, msg
    if model.quantized:
        np.testing.assert_array_equal(got.view(np.uint32), ref.view(np.uint32), err_msg=msg)
    else:
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max(),
                                   err_msg=msg)


def export_and_run(d, model, seqs, name, extra=()):
    """Export `model` as NAME into d, run its check program over seqs on
    the host; (its outputs, clstm's)."""
    d = str(d)
    E.export_c(model, d, name=name)
    with open(os.path.join(d, "main.c"), "w") as f:
        f.write(E.check_program(model, seqs, name))
    text = compile_and_run([os.path.join(d, "main.c"), os.path.join(d, name + ".c")],
                           os.path.join(d, "a"), extra)
    return E.parse_check_output(text, model.out_size)[0], reference(model, seqs)


@pytest.fixture(scope="module")
def every_combination(tmp_path_factory):
    """{name: (model, exported outputs, clstm's outputs)} over FEATURES, each
    as float32 ("f<i>") and quantized ("q<i>"), run as one program."""
    d = str(tmp_path_factory.mktemp("export_all"))
    cases, sources = [], []
    for i, feat in enumerate(FEATURES):
        m, seqs = make_model(i, *feat)
        for name, model in (("f%d" % i, m), ("q%d" % i, clstm.quantize(m))):
            E.export_c(model, d, name=name)
            with open(os.path.join(d, name + "_check.c"), "w") as f:
                f.write(E.check_program(model, seqs, name, main=False))
            sources += [os.path.join(d, name + ".c"), os.path.join(d, name + "_check.c")]
            cases.append((name, model, seqs))
    with open(os.path.join(d, "main.c"), "w") as f:
        f.write("#include <stdio.h>\n")
        f.write("void clstm_check_write(const char *text);\n")
        f.write("void clstm_check_write(const char *text) { fputs(text, stdout); }\n")
        f.write("".join("void %s_check(void);\n" % n for n, _, _ in cases))
        f.write("int main(void) {\n%s    return 0;\n}\n"
                % "".join("    %s_check();\n" % n for n, _, _ in cases))
    text = compile_and_run(sources + [os.path.join(d, "main.c")], os.path.join(d, "all"))
    out = {}
    for name, model, seqs in cases:
        got, text = E.parse_check_output(text, model.out_size)
        out[name] = (model, got, reference(model, seqs))
    return out


@pytest.mark.parametrize("i", range(len(FEATURES)))
def test_float32_matches_clstm(every_combination, i):
    model, got, ref = every_combination["f%d" % i]
    assert_matches(model, got, ref, repr(model))


@pytest.mark.parametrize("i", range(len(FEATURES)))
def test_int8_same_bits_as_clstm(every_combination, i):
    model, got, ref = every_combination["q%d" % i]
    assert_matches(model, got, ref, repr(model))


@pytest.mark.parametrize("quantized", [False, True])
def test_bare_lstm(tmp_path, quantized):
    """clstm.LSTM (no encoding, no head): the output is y, [forward, reverse]."""
    m = clstm.LSTM(3, 4, num_layers=2, bidirectional=True, proj_size=2, seed=9)
    m = clstm.quantize(m) if quantized else m
    seqs = [np.random.default_rng(1).standard_normal((5, 3)).astype(np.float32)]
    assert_matches(m, *export_and_run(tmp_path, m, seqs, "bare"))


def test_int8_same_bits_larger_model(tmp_path):
    """H = 64 with a projection and a softmax head: long products, and the
    gate arithmetic's vector loops in the library."""
    m = clstm.Model(encoding="onehot", vocab_size=20, hidden_size=64, proj_size=24,
                    num_layers=2, output_size=20, softmax=True, seed=3)
    q = clstm.quantize(m)
    seqs = [np.random.default_rng(4).integers(0, 20, 40).astype(np.int32)]
    assert_matches(q, *export_and_run(tmp_path, q, seqs, "big"))


DRIVER = r"""
#include <stdio.h>
#include <string.h>
#include "m.h"
static m_state s, before;
static float out[64 * M_OUTPUT_SIZE];
static void show(const float *v, int n);
static void show(const float *v, int n) {
    for (int i = 0; i < n; i++) printf("%.9g%s", v[i], i + 1 < n ? " " : "\n");
}
int main(void) {
    (void)s, (void)before, (void)out, (void)show;
    @BODY@
    return 0;
}
"""


def run_driver(tmp_path, model, body, extra=()):
    d = str(tmp_path)
    E.export_c(model, d, name="m")
    with open(os.path.join(d, "main.c"), "w") as f:
        f.write(DRIVER.replace("@BODY@", body))
    text = compile_and_run([os.path.join(d, "main.c"), os.path.join(d, "m.c")],
                           os.path.join(d, "a"), extra)
    return [np.array(line.split(), np.float64) if line[:1] not in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
            else line for line in text.splitlines()]


def test_initial_state_forward_and_final_state(tmp_path):
    """reset(h0, c0), then forward over T steps, gives clstm's forward from
    (h0, c0): the outputs and the final state left in the struct."""
    rng = np.random.default_rng(7)
    m = clstm.Model(input_size=3, hidden_size=4, proj_size=2, num_layers=2, output_size=3,
                    seed=5)
    x = rng.standard_normal((6, 3)).astype(np.float32)
    h0 = rng.standard_normal((2, 2)).astype(np.float32)
    c0 = rng.standard_normal((2, 4)).astype(np.float32)
    f = lambda a: "{" + ", ".join(E._floats(a)) + "}"  # noqa: E731
    body = """static const float x[] = %s, h0[] = %s, c0[] = %s;
    m_init(&s);
    if (m_reset(&s, h0, c0) != M_OK || m_forward(&s, 6, x, out, NULL) != M_OK) return 1;
    show(out, 6 * M_OUTPUT_SIZE);
    show(&s.h[0][0], 4);
    show(&s.c[0][0], 8);""" % (f(x), f(h0), f(c0))
    lines = run_driver(tmp_path, m, body)
    y, (h, c) = m.forward(x, (h0, c0))
    np.testing.assert_allclose(lines[0], y.ravel(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lines[1], h.ravel(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(lines[2], c.ravel(), rtol=1e-5, atol=1e-6)


def test_bad_arguments_write_nothing(tmp_path):
    m = clstm.Model(encoding="embedding", input_size=3, vocab_size=5, hidden_size=4,
                    output_size=5, softmax=True, seed=1)
    body = r"""static const int32_t ok[] = {1, 2}, bad[] = {1, 5};
    m_init(&s);
    m_step(&s, 3, out);
    before = s;
    out[0] = 42.0f;
    printf("A %d %d %d %d %d\n", m_step(&s, 5, out), m_step(&s, -1, out),
           m_step(NULL, 1, out), m_step(&s, 1, NULL), m_reset(NULL, NULL, NULL));
    printf("B %d %d %d %d\n", m_forward(&s, 2, bad, out, NULL), m_forward(&s, -1, ok, out, NULL),
           m_forward(&s, 2, NULL, out, NULL), m_forward(&s, 0, NULL, NULL, NULL));
    printf("C %d %g\n", memcmp(&s, &before, sizeof s) == 0, out[0]);"""
    lines = run_driver(tmp_path, m, body)
    assert lines == ["A 1 1 1 1 1", "B 1 1 1 0", "C 1 42"]


def test_bidirectional_needs_its_work_area(tmp_path):
    m = clstm.Model(input_size=2, hidden_size=3, bidirectional=True, seed=2)
    body = r"""static const float x[4] = {1, 2, 3, 4};
    static float work[M_WORK_FLOATS(2)];
    m_init(&s);
    printf("A %d %d %d %d\n", m_forward(&s, 2, x, out, NULL), m_forward(&s, 2, x, out, work),
           (int)M_WORK_FLOATS(2), m_forward(&s, 0, x, out, NULL));"""
    # two (T, 2H) buffers: the layer below and the one being computed; T = 0 needs none
    assert run_driver(tmp_path, m, body) == ["A 1 0 %d 0" % (2 * 2 * (2 * 3))]


def test_softmax_argmax_and_sampling(tmp_path):
    m = clstm.Model(vocab="abcd", hidden_size=4, output_size=4, softmax=True, seed=3)
    body = r"""static const float z[4] = {0.5f, -1.0f, 2.0f, 0.25f};
    float p[4];
    int counts[4] = {0, 0, 0, 0};
    uint32_t rng = 1;
    m_softmax(z, 1.0f, p);
    show(p, 4);
    m_softmax(z, 0.5f, p);
    show(p, 4);
    for (int i = 0; i < 40000; i++) counts[m_sample(z, 1.0f, &rng, p)]++;
    printf("%d %d %d %d\n", counts[0], counts[1], counts[2], counts[3]);
    volatile float zero = 0.0f;
    const float nan_row[4] = {zero / zero, 1.0f, 3.0f, 3.0f};
    printf("A %d %d %d %d\n", m_argmax(z), m_argmax(nan_row), m_sample(z, 0.0f, &rng, p),
           m_softmax(z, -1.0f, p));"""
    lines = run_driver(tmp_path, m, body)
    z = np.array([0.5, -1.0, 2.0, 0.25])
    for row, t in ((lines[0], 1.0), (lines[1], 0.5)):
        want = np.exp(z / t) / np.exp(z / t).sum()
        np.testing.assert_allclose(row, want, rtol=1e-6)
    counts, p = lines[2], np.exp(z) / np.exp(z).sum()
    # each count within 5 binomial standard deviations of its expectation
    assert np.all(np.abs(counts - 40000 * p) < 5 * np.sqrt(40000 * p * (1 - p))), counts
    assert lines[3] == "A 2 2 -1 1"


@pytest.mark.parametrize("quantized", [False, True])
@pytest.mark.parametrize("bi", [False, True])
@pytest.mark.parametrize("regression", [False, True])
def test_standardized_model_reads_the_datas_scale(tmp_path, quantized, bi, regression):
    """A model with input_mean/input_std (and a regression's
    output_mean/output_std) in its metadata: the exported code takes raw
    inputs and gives outputs on the data's scale, as clstm does: the
    inputs scaled in float64, rounded to float32 (int8: the same bits)."""
    from clstm import data as D
    from clstm.tasks import SequenceTask
    rng = np.random.default_rng(11)
    X = rng.standard_normal((30, 6, 3)) * [40.0, 0.05, 0.0] + [200.0, -1.0, 3.5]
    y = X[:, -1, :2] * [1.0, 10.0] + 5 if regression else (X[:, -1, 0] > 200).astype(int)
    task = SequenceTask(D.Sequences(X, np.full(30, 6), y), None, 8, standardize=True,
                        kind="regress" if regression else "classify")
    m = clstm.Model(input_size=3, hidden_size=5, bidirectional=bi, output_size=2,
                    softmax=not regression, seed=4)
    m.metadata.update(task.model_metadata(m))
    model = clstm.quantize(m) if quantized else m
    seqs = [X[i].astype(np.float32) for i in (0, 7)]
    got, _ = export_and_run(tmp_path, model, seqs, "std")
    inputs, outputs = task.input_scaling, task.output_scaling
    ref = []
    for x in seqs:
        z = model.forward(((x.astype(np.float64) - inputs.mean) / inputs.std)
                          .astype(np.float32))[0]
        if outputs is not None:
            z = (z.astype(np.float64) * outputs.std + outputs.mean).astype(np.float32)
        ref.append(z)
    assert_matches(model, got, np.concatenate(ref))
    header = open(os.path.join(str(tmp_path), "std.h")).read()
    assert "(x - mean) / std" in header
    assert ("output_mean" in header) == regression


def test_vocabulary(tmp_path):
    """A character model's vocabulary, both ways, as clstm's encode/decode."""
    vocab = "ab\u00e9\u20ac\U0001F600 \n"
    m = clstm.Model(vocab=vocab, hidden_size=4, output_size=len(vocab), softmax=True, seed=1)
    body = r"""static const uint32_t cps[] = {0x61, 0xe9, 0x20ac, 0x1f600, 0x0a, 0x7a};
    for (int i = 0; i < 6; i++) printf("A %d\n", (int)m_token(cps[i]));
    for (int t = -1; t <= 7; t++) printf("B %lu\n", (unsigned long)m_codepoint(t));"""
    lines = run_driver(tmp_path, m, body)
    tokens = [int(line.split()[1]) for line in lines[:6]]
    assert tokens == [vocab.find(ch) for ch in "a\u00e9\u20ac\U0001F600\nz"]
    assert tokens[:5] == m.encode("a\u00e9\u20ac\U0001F600\n").tolist()
    cps = [int(line.split()[1]) for line in lines[6:]]
    assert cps == [0] + [ord(ch) for ch in vocab] + [0]


def test_libm_activations(tmp_path):
    """NAME_LIBM: libm's expf and tanhf instead of clstm's: still within
    1e-5 of clstm's float32 outputs."""
    m, seqs = make_model(0, False, 0, True, False, None, "onehot", 4)
    got, ref = export_and_run(tmp_path, m, seqs, "lm", ["-DLM_LIBM"])
    assert_matches(m, got, ref)
    undefined = subprocess.run(["nm", "-u", os.path.join(str(tmp_path), "lm.o")],
                               capture_output=True, text=True, check=True).stdout
    assert "expf" in undefined and "tanhf" in undefined  # the macro took effect
    subprocess.run([CC] + CFLAGS + ["-c", os.path.join(str(tmp_path), "lm.c"), "-o",
                                    os.path.join(str(tmp_path), "own.o")], check=True)
    own = subprocess.run(["nm", "-u", os.path.join(str(tmp_path), "own.o")],
                         capture_output=True, text=True, check=True).stdout
    assert "expf" not in own and "tanhf" not in own  # by default: no libm at all


def _has_fma():
    try:
        with open("/proc/cpuinfo") as f:
            return " fma " in f.read()
    except OSError:
        return False


@pytest.mark.skipif(not _has_fma(), reason="needs a CPU with FMA")
def test_int8_same_bits_where_gcc_would_fuse(tmp_path):
    """-std=gnu11 -march=native on an FMA CPU: GCC would fuse a * b + c
    there but for the file's pragma; the bits stay clstm's."""
    m, seqs = make_model(5, True, 3, True, False, 0.5, "embedding", 4)
    q = clstm.quantize(m)
    assert_matches(q, *export_and_run(tmp_path, q, seqs, "fma",
                                      ["-std=gnu11", "-O2", "-march=native"]))


@pytest.mark.skipif(shutil.which("clang") is None, reason="needs clang")
@pytest.mark.parametrize("quantized", [False, True])
@pytest.mark.parametrize("head", [0, 4])
def test_clang_compiles_cleanly(tmp_path, quantized, head):
    m, _ = make_model(3, False, 0, False, False, None, "onehot", head)
    m = clstm.quantize(m) if quantized else m
    E.export_c(m, tmp_path, name="cl")
    r = subprocess.run(["clang", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-pedantic",
                        "-c", str(tmp_path / "cl.c"), "-o", str(tmp_path / "cl.o")],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


@pytest.mark.parametrize("quantized", [False, True])
def test_non_finite_inputs_as_clstm(tmp_path, quantized):
    """NaN and Inf inputs follow IEEE arithmetic as in clstm (NaN compared
    as NaN: its sign and payload are not promised)."""
    m, _ = make_model(7, False, 3, True, False, None, None, 4)
    m = clstm.quantize(m) if quantized else m
    x = np.random.default_rng(2).standard_normal((5, 3)).astype(np.float32)
    x[1, 0], x[3, 2] = np.inf, -np.inf
    y = x.copy()
    y[2, 1] = np.nan
    got, ref = export_and_run(tmp_path, m, [x, y], "nf")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    ok = ~np.isnan(ref)
    np.testing.assert_allclose(got[ok], ref[ok], rtol=1e-5, atol=1e-5 * np.abs(ref[ok]).max())


def test_clip_beyond_float32_is_no_clip(tmp_path):
    """clip=1e39 is inf in float32: the library's gates clip nothing, and
    the exported file says no clip (it once wrote `inff`)."""
    m, seqs = make_model(11, False, 0, False, False, 1e39, "onehot", 4)
    got, ref = export_and_run(tmp_path, m, seqs, "bigclip")
    assert_matches(m, got, ref)
    assert "gate clip" not in (tmp_path / "bigclip.h").read_text()


# ------------------------------------------------------- what is refused
def test_refusals():
    m = clstm.Model(input_size=2, hidden_size=3, seed=1)
    with pytest.raises(TypeError, match="model: expected a clstm.LSTM"):
        E.export_c(object(), "unused")
    with pytest.raises(ValueError, match="name: expected a C identifier"):
        E.export_c(m, "unused", name="2fast")
    with pytest.raises(ValueError, match="name: expected a C identifier"):
        E.export_c(m, "unused", name="int")
    with pytest.raises(ValueError, match="exported file's own"):
        E.export_c(m, "unused", name="CX")
    m64 = clstm.Model(input_size=2, hidden_size=3, seed=1, dtype=np.float64)
    with pytest.raises(ValueError, match="float64"):
        E.export_c(m64, "unused")
    m.named_parameters()["bias_ih_l0"][0] = np.nan
    with pytest.raises(ValueError, match="bias_ih_l0 holds NaN"):
        E.export_c(m, "unused")
    s2s = clstm.Seq2Seq(5, 6, embedding=4, hidden_size=4, seed=1)
    with pytest.raises(ValueError, match="encoder-decoder"):
        E.export_c(s2s, "unused")
    assert not os.path.exists("unused")


def test_name_from_path():
    assert E.name_from_path("/x/my-model.v2.safetensors") == "my_model_v2"
    assert E.name_from_path("3d.safetensors") == "m3d"
    assert E.name_from_path("int.safetensors") == "model"
    assert E.name_from_path("cx_net.safetensors") == "mcx_net"


def test_existing_directory_keeps_other_files(tmp_path):
    m = clstm.Model(input_size=2, hidden_size=3, seed=1)
    (tmp_path / "main.c").write_text("mine")
    (tmp_path / "net.h").write_text("old")
    E.export_c(m, tmp_path, name="net")
    assert (tmp_path / "main.c").read_text() == "mine"
    assert "net_forward" in (tmp_path / "net.h").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["main.c", "net.c", "net.h"]


# ------------------------------------------------------------------ CLI
def cli(*args):
    return subprocess.run([sys.executable, "-m", "clstm"] + list(args), capture_output=True,
                          text=True)


def test_cli_export(tmp_path):
    m = clstm.Model(vocab="ab\n", hidden_size=4, output_size=3, softmax=True, seed=1)
    path = str(tmp_path / "char-model.safetensors")
    clstm.save(clstm.quantize(m), path)
    r = cli("export", path, "--c", str(tmp_path / "out"))
    assert r.returncode == 0, r.stderr
    assert "prefix char_model_" in r.stdout
    text = (tmp_path / "out" / "char_model.h").read_text()
    assert "#define CHAR_MODEL_INT8 1" in text and "char_model_step" in text
    assert "from char-model.safetensors" in text
    r = cli("export", path, "--c", str(tmp_path / "out2"), "--name", "net")
    assert r.returncode == 0 and (tmp_path / "out2" / "net.c").exists()


@pytest.mark.parametrize("case", ["not_a_model", "seq2seq", "bad_name", "name_onnx",
                                  "missing"])
def test_cli_refusals_leave_nothing(tmp_path, case):
    out = tmp_path / "out"
    path = tmp_path / "m.safetensors"
    args = [str(path), "--c", str(out)]
    if case == "not_a_model":
        path.write_bytes(b"not a model at all")
    elif case == "seq2seq":
        clstm.save(clstm.Seq2Seq(5, 6, embedding=4, hidden_size=4, seed=1), str(path))
    else:
        clstm.save(clstm.Model(input_size=2, hidden_size=3, seed=1), str(path))
    if case == "bad_name":
        args += ["--name", "no-dashes"]
    elif case == "name_onnx":
        args = [str(path), "--onnx", str(tmp_path / "m.onnx"), "--name", "x"]
    elif case == "missing":
        args = [str(tmp_path / "absent.safetensors"), "--c", str(out)]
    r = cli("export", *args)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]
