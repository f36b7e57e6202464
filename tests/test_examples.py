"""The C example programs against the Python package. Models are built (and
trained) in Python, saved, and run by the programs of examples/ (built by
`make`, which README's test command runs first):
  stream    bare LSTMs and whole real-valued models: the Python outputs;
  generate  character models: the text of a greedy (and of a seeded sampled)
            continuation computed in Python;
  finetune  character and regression models: the losses and parameters of
            the same truncated-BPTT training done in Python;
  quantize  character, token and real-valued models: its report (sizes, the
            largest deviation of the int8 outputs) against the Python
            package's, and the file it writes, which is clstm.quantize's
            model byte for byte and which generate runs;
  recognize text-line recognizers: the text `clstm recognize` reads from
            the same PGM images (best path and beam).
Bad usage and unsupported models: an exit status, a message on stderr and
nothing on stdout."""
import json
import pathlib
import re
import subprocess

import numpy as np
import pytest

import clstm
import clstm.optim  # not imported by `import clstm`
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
@pytest.mark.parametrize("kind", ["float32", "float64", "int8"])
def test_stream_example_gives_the_bits_of_python_step(tmp_path, kind):
    """The C library (Makefile) and the extension (setup.py) compile the
    same source with the same floating-point flags (-ffp-contract=fast in
    both), so one T=1 step from C and one LSTM.step from Python agree to
    the bit."""
    dtype = np.float64 if kind == "float64" else np.float32
    m = clstm.LSTM(12, 40, num_layers=2, dtype=dtype, seed=3)
    if kind == "int8":
        m = clstm.quantize(m)
    path = tmp_path / "model.safetensors"
    clstm.save(m, path)
    x = 3 * np.random.default_rng(1).standard_normal((30, 12)).astype(dtype)
    out = run_stream(path, x)
    assert out.returncode == 0, out.stderr
    y_c = parse_rows(out.stdout)
    state, ys = m.initial_state(1), []
    for t in range(len(x)):
        y, state = m.step(x[t:t + 1], state)
        ys.append(np.asarray(y, np.float64).reshape(-1))
    np.testing.assert_array_equal(y_c, np.array(ys))


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


# ------------------------------------------------- whole models in stream
EXAMPLES = STREAM.parent
GENERATE = EXAMPLES / "generate"
FINETUNE = EXAMPLES / "finetune"
needs_generate = pytest.mark.skipif(not GENERATE.exists(),
                                    reason="run `make` to build the examples")
needs_finetune = pytest.mark.skipif(not FINETUNE.exists(),
                                    reason="run `make` to build the examples")


def run(program, *args, stdin=""):
    return subprocess.run([str(program), *map(str, args)], input=stdin, capture_output=True,
                          text=True, timeout=120)


def parse_rows(stdout):
    return np.array([[float(v) for v in line.split()] for line in stdout.splitlines()])


@needs_stream
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cfg", [dict(output_size=3),
                                 dict(output_size=5, softmax=True),
                                 dict(num_layers=2, proj_size=3, output_size=4),
                                 dict(num_layers=2, proj_size=2, output_size=6, softmax=True)],
                         ids=["head", "softmax", "L2-proj-head", "L2-proj-softmax"])
def test_stream_whole_model_matches_python(tmp_path, dtype, cfg):
    m = clstm.Model(4, 6, dtype=dtype, seed=7, **cfg)
    path = tmp_path / "model.safetensors"
    clstm.save(m, path)
    x = np.random.default_rng(1).standard_normal((30, 4)).astype(dtype)
    out = run_stream(path, x)
    assert out.returncode == 0, out.stderr
    z_c = parse_rows(out.stdout)
    z_py, _ = m.forward(x, train=False)
    assert z_py.shape == (30, cfg["output_size"])
    assert z_c.shape == z_py.shape
    assert_close(z_c, z_py, dtype, "logits")
    text = "\n".join(" ".join(repr(float(v)) for v in row) for row in x) + "\n"
    probs = run(STREAM, path, "--probs", stdin=text)
    if cfg.get("softmax"):
        assert probs.returncode == 0, probs.stderr
        p_c = parse_rows(probs.stdout)
        assert_close(p_c, clstm.losses.softmax(z_py), dtype, "probs")
        np.testing.assert_allclose(p_c.sum(axis=1), 1.0, rtol=1e-5)
    else:  # --probs needs a softmax head
        assert probs.returncode == 2 and "--probs" in probs.stderr and probs.stdout == ""


@needs_stream
@pytest.mark.parametrize("encoding", ["onehot", "embedding"])
def test_stream_refuses_token_model(tmp_path, encoding):
    m = clstm.Model(3 if encoding == "embedding" else None, 4, encoding=encoding, vocab="ab",
                    output_size=2, softmax=True)
    path = tmp_path / "chars.safetensors"
    clstm.save(m, path)
    out = run_stream(path, [[1.0, 2.0]])
    assert out.returncode == 1 and out.stdout == ""
    assert "token" in out.stderr and "generate" in out.stderr


# ------------------------------ stream: standardization and whole sequences
def standardized_model(dtype, bidirectional=False, regression=False, pooling="last"):
    """A model whose metadata holds the standardization SequenceTask fits
    (standardize=True) on data far from mean 0 and std 1 with a constant
    third feature, and that data: (model, X (N, T, 3), lengths)."""
    from clstm import data as D
    from clstm.tasks import SequenceTask
    rng = np.random.default_rng(4)
    X = rng.standard_normal((12, 9, 3)) * [50.0, 0.02, 0.0] + [300.0, -2.0, 4.5]
    lengths = rng.integers(1, 10, 12)
    y = (X[:, 0, :2] * [1.0, 100.0] + 7.0 if regression
         else (X[:, 0, 0] > 300).astype(np.int64))
    task = SequenceTask(D.Sequences(X, lengths, y), None, 4,
                        kind="regress" if regression else "classify", standardize=True,
                        pooling=pooling)
    m = clstm.Model(3, 5, bidirectional=bidirectional, output_size=2,
                    softmax=not regression, dtype=dtype, seed=2)
    m.metadata.update(task.model_metadata(m))
    return m, X, lengths


def metadata_array(m, key):
    return np.array(json.loads(m.metadata[key]))


def sequences_text(X, lengths):
    """Each sequence's valid steps, one per line, an empty line after each
    (two after the first: empty lines between sequences are skipped)."""
    blocks = ["\n".join(" ".join(repr(float(v)) for v in row) for row in x[:n])
              for x, n in zip(X, lengths)]
    return blocks[0] + "\n\n\n" + "\n\n".join(blocks[1:]) + "\n"


@needs_stream
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("regression", [False, True], ids=["classifier", "regression"])
def test_stream_applies_the_models_standardization(tmp_path, dtype, regression):
    m, X, _ = standardized_model(dtype, regression=regression)
    path = tmp_path / "model.safetensors"
    clstm.save(m, path)
    x = X[:3].reshape(-1, 3)  # one stream of 27 steps on the data's scale
    out = run_stream(path, x)
    assert out.returncode == 0, out.stderr
    # the reference: NumPy's scaling of the inputs (and of a regression's outputs)
    z, _ = m.forward(((x - metadata_array(m, "input_mean")) / metadata_array(m, "input_std"))
                     [:, None, :].astype(dtype), train=False)
    z = z[:, 0].astype(np.float64)
    if regression:
        z = z * metadata_array(m, "output_std") + metadata_array(m, "output_mean")
    assert_close(parse_rows(out.stdout), z, dtype, "outputs")


@needs_stream
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", ["bidirectional", "unidirectional", "regression",
                                  "bidirectional-mean", "regression-mean"])
def test_stream_sequences_match_predict_sequences(tmp_path, dtype, kind):
    from clstm.tasks import predict_sequences
    m, X, lengths = standardized_model(dtype, bidirectional=kind.startswith("bidirectional"),
                                       regression=kind.startswith("regression"),
                                       pooling="mean" if kind.endswith("mean") else "last")
    assert m.metadata.get("pooling") == ("mean" if kind.endswith("mean") else None)
    path = tmp_path / "model.safetensors"
    clstm.save(m, path)
    text = sequences_text(X, lengths)
    out = run(STREAM, path, "--sequences", stdin=text)
    assert out.returncode == 0, out.stderr
    expected = predict_sequences(m, X, lengths)
    assert_close(parse_rows(out.stdout), expected, dtype, "last-step outputs")
    if not kind.startswith("regression"):
        probs = run(STREAM, path, "--sequences", "--probs", stdin=text)
        assert probs.returncode == 0, probs.stderr
        assert_close(parse_rows(probs.stdout), clstm.losses.softmax(expected), dtype, "probs")
    # with no trailing empty line, and nothing at all
    assert run(STREAM, path, "--sequences", stdin=text.rstrip("\n")).stdout == out.stdout
    empty = run(STREAM, path, "--sequences", stdin="")
    assert empty.returncode == 0 and empty.stdout == ""


@needs_stream
def test_stream_reads_a_forecaster_from_before_the_standardization_keys(tmp_path):
    from clstm.tasks import predict_sequences
    m = clstm.Model(1, 4, output_size=2, dtype=np.float64, seed=6)
    m.metadata.update(task="forecast", window="6", horizon="2", mean="50.5", std="8.25")
    path = tmp_path / "old.safetensors"
    clstm.save(m, path)
    x = 50 + 10 * np.sin(np.arange(6.0))[:, None]
    out = run_stream(path, x)
    assert out.returncode == 0, out.stderr
    z, _ = m.forward(((x - 50.5) / 8.25)[:, None, :], train=False)
    assert_close(parse_rows(out.stdout), z[:, 0] * 8.25 + 50.5, np.float64, "forecasts")
    assert_close(parse_rows(out.stdout)[-1], predict_sequences(m, x[None])[0], np.float64,
                 "Python's forecast")


@needs_stream
@pytest.mark.parametrize("key,value", [("input_std", None), ("input_mean", "[1, 2]"),
                                       ("input_std", "[1, 0, 1]"), ("input_mean", "[1, 2, x]"),
                                       ("output_std", "[1, nan]"), ("pooling", "max")])
def test_stream_refuses_malformed_standardization(tmp_path, key, value):
    m, X, _ = standardized_model(np.float32, regression=True)
    if value is None:
        del m.metadata[key]
    else:
        m.metadata[key] = value
    path = tmp_path / "bad.safetensors"
    clstm.save(m, path)
    out = run_stream(path, X[0])
    assert out.returncode == 1 and out.stdout == ""
    assert ("pooling" if key == "pooling" else "standardization") in out.stderr
    assert "bad.safetensors" in out.stderr


# ------------------------------------------------------------- generate
TEXT = "the quick brown fox jumps over the lazy dog.\n" * 4


def char_model(encoding, dtype, steps=40, seed=3, layers=1, proj=0):
    """A small character model trained for a few Adam steps on TEXT, so its
    greedy continuation is not a constant."""
    vocab = "".join(sorted(set(TEXT))) + "Q"  # Q: in the vocab, never in the text
    kw = dict(input_size=5) if encoding == "embedding" else {}
    if proj:
        kw["proj_size"] = proj
    m = clstm.Model(hidden_size=12, num_layers=layers, encoding=encoding, vocab=vocab,
                    output_size=len(vocab), softmax=True, dtype=dtype, seed=seed, **kw)
    ids = m.encode(TEXT)
    opt = clstm.optim.Adam(m, lr=0.03)
    for _ in range(steps):
        m.zero_grad()
        out, _ = m.forward(ids[:-1], train=True)
        _, dout = clstm.losses.cross_entropy(out, ids[1:])
        m.backward(dout)
        opt.step()
    return m


def python_generate(m, prime, length, temperature=0.0, seed=0):
    """What examples/generate.c does, in Python: the prime in one forward,
    then one step per character; greedy (lowest id on ties) at temperature 0,
    else splitmix64 draws against the cumulative softmax."""
    mask = (1 << 64) - 1
    rng = seed

    def uniform():
        nonlocal rng
        rng = (rng + 0x9E3779B97F4A7C15) & mask
        z = rng
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        z ^= z >> 31
        return (z >> 11) * 2.0 ** -53

    state = m.initial_state(1)
    out, state = m.forward(m.encode(prime)[:, None], state, train=False)
    logits = out[-1, 0]
    text = ""
    for n in range(length):
        if temperature == 0:
            nxt = int(np.argmax(logits))  # the first maximum: lowest id
        else:
            p = clstm.losses.softmax(logits, temperature)
            u, cum, nxt = uniform(), 0.0, None
            for i, pi in enumerate(p.tolist()):
                cum += pi
                if pi > 0:
                    last = i
                if u < cum and pi > 0:
                    nxt = i
                    break
            nxt = last if nxt is None else nxt
        text += m.vocab[nxt]
        if n + 1 < length:
            out, state = m.step(np.array([nxt]), state)
            logits = out[0]
    return text


@needs_generate
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("encoding", ["onehot", "embedding"])
def test_generate_greedy_matches_python(tmp_path, encoding, dtype):
    m = char_model(encoding, dtype)
    path = tmp_path / "chars.safetensors"
    clstm.save(m, path)
    prime = "the qu"
    expected = python_generate(m, prime, 60)
    assert len(set(expected)) > 3, "the test model is too weak to test anything"
    out = run(GENERATE, path, "--prime", prime, "--length", 60, "--temperature", 0)
    assert out.returncode == 0, out.stderr
    assert out.stdout == prime + expected
    assert out.stderr == ""


@needs_generate
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_generate_greedy_ties_go_to_the_lowest_id(tmp_path, dtype):
    # head.weight = 0: every step's logits are head.bias, whose maximum is
    # shared by ids 2 and 4 (and NaN-free): greedy must always pick 2.
    m = clstm.Model(hidden_size=4, vocab="abcde", output_size=5, softmax=True, dtype=dtype)
    sd = m.state_dict()
    sd["head.weight"][:] = 0
    sd["head.bias"][:] = [0.5, -1.0, 2.0, 1.0, 2.0]
    m.load_state_dict(sd)
    path = tmp_path / "ties.safetensors"
    clstm.save(m, path)
    out = run(GENERATE, path, "--prime", "ab", "--length", 10, "--temperature", 0)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ab" + "c" * 10


@needs_generate
def test_generate_greedy_two_layers_with_projection(tmp_path):
    m = char_model("embedding", np.float64, layers=2, proj=4)
    path = tmp_path / "chars.safetensors"
    clstm.save(m, path)
    out = run(GENERATE, path, "--prime", "over the", "--length", 40, "--temperature", 0)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "over the" + python_generate(m, "over the", 40)


@needs_generate
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_generate_sampling_matches_python(tmp_path, dtype):
    m = char_model("onehot", dtype, steps=10)
    path = tmp_path / "chars.safetensors"
    clstm.save(m, path)
    texts = set()
    for seed, temperature in [(0, 1.0), (1, 1.0), (12345678901234567890, 0.7), (5, 2.5)]:
        out = run(GENERATE, path, "--prime", "fox", "--length", 50, "--temperature",
                  temperature, "--seed", seed)
        assert out.returncode == 0, out.stderr
        assert out.stdout == "fox" + python_generate(m, "fox", 50, temperature, seed)
        again = run(GENERATE, path, "--prime", "fox", "--length", 50, "--temperature",
                    temperature, "--seed", seed)
        assert again.stdout == out.stdout  # a seed fixes the text
        texts.add(out.stdout)
    assert len(texts) == 4


@needs_generate
def test_generate_defaults_and_edge_lengths(tmp_path):
    m = char_model("onehot", np.float32, steps=5)
    path = tmp_path / "chars.safetensors"
    clstm.save(m, path)
    first = m.vocab[0]
    out = run(GENERATE, path)  # no prime: the vocabulary's first character; 200 samples
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(first) and len(out.stdout) == 201
    assert out.stdout == first + python_generate(m, first, 200, 1.0, 0)
    assert set(out.stdout) <= set(m.vocab)
    zero = run(GENERATE, path, "--prime", "dog", "--length", 0)
    assert zero.returncode == 0 and zero.stdout == "dog"
    one = run(GENERATE, path, "--prime", "", "--length", 1, "--temperature", 0)
    assert one.returncode == 0 and one.stdout == first + python_generate(m, first, 1)


@needs_generate
def test_generate_utf8_vocabulary(tmp_path):
    vocab = "aé€𝄞 "
    m = clstm.Model(hidden_size=8, vocab=vocab, output_size=len(vocab), softmax=True, seed=2)
    path = tmp_path / "chars.safetensors"
    clstm.save(m, path)
    out = subprocess.run([str(GENERATE), str(path), "--prime", "é€𝄞", "--length", "20",
                          "--temperature", "0"], capture_output=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode("utf-8") == "é€𝄞" + python_generate(m, "é€𝄞", 20)
    bad = subprocess.run([str(GENERATE), str(path), "--prime", "aü"], capture_output=True,
                         timeout=60)
    assert bad.returncode == 2 and bad.stdout == b""
    assert "'ü'" in bad.stderr.decode("utf-8")


@needs_generate
def test_generate_bad_usage(tmp_path):
    m = char_model("onehot", np.float32, steps=0)
    path = tmp_path / "chars.safetensors"
    clstm.save(m, path)
    cases = [
        ([tmp_path / "nope.safetensors"], 1, "nope.safetensors"),
        ([], 2, "usage"),
        ([path, "--bogus"], 2, "--bogus"),
        ([path, "--length"], 2, "--length"),
        ([path, "--length", "abc"], 2, "--length"),
        ([path, "--length", "-1"], 2, "--length"),
        ([path, "--length", "12x"], 2, "--length"),
        ([path, "--temperature", "-0.5"], 2, "--temperature"),
        ([path, "--temperature", "nan"], 2, "--temperature"),
        ([path, "--temperature", "inf"], 2, "--temperature"),
        ([path, "--temperature", ""], 2, "--temperature"),
        ([path, "--seed", "-1"], 2, "--seed"),
        ([path, "--seed", "99999999999999999999999"], 2, "--seed"),
        ([path, path], 2, "usage"),
        ([path, "--prime", "the fox!"], 2, "'!'"),  # '!' is not in the vocabulary
    ]
    for args, rc, needle in cases:
        out = run(GENERATE, *args)
        assert out.returncode == rc, (args, out.returncode, out.stderr)
        assert needle in out.stderr, (args, out.stderr)
        assert out.stdout == "", args
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{}")
    out = run(GENERATE, garbage)
    assert out.returncode == 1 and out.stdout == "" and "garbage.safetensors" in out.stderr


@needs_generate
@pytest.mark.parametrize("model", [
    lambda: clstm.Model(3, 4, output_size=3, softmax=True),  # real-valued input
    lambda: clstm.LSTM(3, 4),                                # bare LSTM
    lambda: clstm.Model(hidden_size=4, vocab_size=3, output_size=3, softmax=True),  # no vocab
    lambda: clstm.Model(hidden_size=4, vocab="abc", output_size=2, softmax=True),   # O != V
    lambda: clstm.Model(hidden_size=4, vocab="abc", output_size=3),                 # no softmax
    lambda: clstm.Model(hidden_size=4, vocab="abc", output_size=3, softmax=True,
                        bidirectional=True),
], ids=["real", "bare", "no-vocab", "O-not-V", "no-softmax", "bidirectional"])
def test_generate_refuses_non_character_models(tmp_path, model):
    path = tmp_path / "m.safetensors"
    clstm.save(model(), path)
    out = run(GENERATE, path, "--prime", "a")
    assert out.returncode == 1 and out.stdout == ""
    assert "m.safetensors" in out.stderr and ("character model" in out.stderr
                                              or "bidirectional" in out.stderr)


# ------------------------------------------------------------- finetune
EPOCH_LINE = r"epoch (\d+) loss ([0-9.]+)"


def epoch_losses(stderr):
    lines = stderr.splitlines()
    found = [re.fullmatch(EPOCH_LINE, line) for line in lines]
    assert all(found), stderr
    assert [int(f.group(1)) for f in found] == list(range(1, len(found) + 1))
    return [float(f.group(2)) for f in found]


@needs_finetune
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("encoding", ["onehot", "embedding"])
def test_finetune_character_model(tmp_path, encoding, dtype):
    m = char_model(encoding, dtype, steps=0)
    src, dst = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    clstm.save(m, src)
    before = src.read_bytes()
    text = TEXT * 3  # 540 characters: 9 chunks of 64 steps
    out = run(FINETUNE, src, dst, "--epochs", 3, "--lr", 0.01, stdin=text)
    assert out.returncode == 0, out.stderr
    assert out.stdout == ""
    losses = epoch_losses(out.stderr)
    assert len(losses) == 3
    assert losses[0] > losses[1] > losses[2], losses
    # the untrained model starts near uniform: log(V)
    assert abs(losses[0] - np.log(m.vocab_size)) < 0.5
    assert src.read_bytes() == before  # the input file is untouched
    tuned = clstm.load(dst)
    assert isinstance(tuned, clstm.Model)
    assert (tuned.vocab, tuned.encoding, tuned.dtype) == (m.vocab, m.encoding, m.dtype)
    assert tuned.flat_parameters.shape == m.flat_parameters.shape
    assert np.all(np.isfinite(tuned.flat_parameters))
    changed = tuned.flat_parameters != m.flat_parameters
    assert changed.mean() > 0.5
    # every tensor took part in training (embedding, LSTM, head)
    for name, value in tuned.state_dict().items():
        assert np.any(value != m.state_dict()[name]), name
    # the tuned model fits the text better than the original
    ids = m.encode(text)
    before_loss, _ = clstm.losses.cross_entropy(m.forward(ids[:-1], train=False)[0], ids[1:],
                                                grad=False)
    after_loss, _ = clstm.losses.cross_entropy(tuned.forward(ids[:-1], train=False)[0],
                                               ids[1:], grad=False)
    assert after_loss < before_loss - 0.3


def python_finetune(m, inputs, targets, loss, epochs, lr, sequences, chunk=64):
    """What examples/finetune.c does, in Python: truncated BPTT over chunks
    of `chunk` steps (state carried, no gradient between chunks, zero state
    at each sequence start), B = 1, one Adam step per chunk. Returns the
    per-epoch mean losses; trains m in place."""
    opt = clstm.optim.Adam(m, lr=lr)
    T = min(chunk, max(n for _, n in sequences))
    total = sum(n for _, n in sequences)
    losses = []
    for _ in range(epochs):
        acc = 0.0
        for start, n_seq in sequences:
            state = None
            for t0 in range(start, start + n_seq, T):
                n = min(T, start + n_seq - t0)
                m.zero_grad()
                out, state = m.forward(inputs[t0:t0 + n][:, None], state, train=True)
                value, dout = loss(out, targets[t0:t0 + n][:, None])
                m.backward(dout)
                opt.step()
                acc += value * n
        losses.append(acc / total)
    return losses


@needs_finetune
def test_finetune_matches_python_character_model(tmp_path):
    m = char_model("embedding", np.float64, steps=0, layers=2, proj=5)
    src, dst = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    clstm.save(m, src)
    text = TEXT * 2  # 360 characters: 5 full chunks and one of 39 steps
    out = run(FINETUNE, src, dst, "--epochs", 2, "--lr", 0.01, stdin=text)
    assert out.returncode == 0, out.stderr
    ids = m.encode(text)
    expected = python_finetune(m, ids[:-1], ids[1:], clstm.losses.cross_entropy, 2, 0.01,
                               [(0, len(ids) - 1)])
    np.testing.assert_allclose(epoch_losses(out.stderr), expected, atol=2e-6)
    assert_close(clstm.load(dst).flat_parameters, m.flat_parameters, np.float64, "params")


@needs_finetune
def test_finetune_matches_python_regression_model(tmp_path):
    m = clstm.Model(2, 5, output_size=3, dtype=np.float64, seed=8)
    src, dst = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    clstm.save(m, src)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((150, 2))
    y = rng.standard_normal((150, 3))
    rows = [" ".join(repr(float(v)) for v in row) for row in np.hstack([x, y])]
    # sequences of 70 steps (a 64 + 6 split) and 80 steps, a blank line between
    stdin = "\n".join(rows[:70]) + "\n\n \n" + "\n".join(rows[70:]) + "\n"
    out = run(FINETUNE, src, dst, "--epochs", 3, "--lr", 0.005, stdin=stdin)
    assert out.returncode == 0, out.stderr
    expected = python_finetune(m, x, y, clstm.losses.mse, 3, 0.005, [(0, 70), (70, 80)])
    np.testing.assert_allclose(epoch_losses(out.stderr), expected, atol=2e-6)
    assert_close(clstm.load(dst).flat_parameters, m.flat_parameters, np.float64, "params")


@needs_finetune
def test_finetune_is_deterministic_and_seeded(tmp_path):
    m = char_model("embedding", np.float64, steps=0, layers=2)
    src = tmp_path / "in.safetensors"
    clstm.save(m, src)
    a, b = tmp_path / "a.safetensors", tmp_path / "b.safetensors"
    ra = run(FINETUNE, src, a, "--seed", 4, stdin=TEXT)
    rb = run(FINETUNE, src, b, "--seed", 4, stdin=TEXT)
    assert ra.returncode == 0 and rb.returncode == 0, ra.stderr + rb.stderr
    assert len(epoch_losses(ra.stderr)) == 1  # default: one epoch
    assert ra.stderr == rb.stderr
    np.testing.assert_array_equal(clstm.load(a).flat_parameters, clstm.load(b).flat_parameters)


@needs_finetune
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_finetune_regression_model(tmp_path, dtype):
    m = clstm.Model(3, 8, output_size=2, dtype=dtype, seed=4)
    src, dst = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    clstm.save(m, src)
    rng = np.random.default_rng(0)
    lines = []
    for _ in range(3):  # three sequences of 80 steps, separated by blank lines
        x = rng.standard_normal((80, 3))
        y = np.stack([0.5 * x[:, 0], x[:, 1] - x[:, 2]], axis=1)
        lines += [" ".join(repr(float(v)) for v in row) for row in np.hstack([x, y])] + [""]
    out = run(FINETUNE, src, dst, "--epochs", 4, "--lr", 0.02, stdin="\n".join(lines))
    assert out.returncode == 0, out.stderr
    losses = epoch_losses(out.stderr)
    assert len(losses) == 4 and all(a > b for a, b in zip(losses, losses[1:])), losses
    tuned = clstm.load(dst)
    assert np.any(tuned.flat_parameters != m.flat_parameters)
    bad = run(FINETUNE, src, dst, stdin="1 2 3 4\n")  # D + O = 5 numbers expected
    assert bad.returncode == 1 and "line 1" in bad.stderr


@needs_finetune
def test_finetune_bad_usage(tmp_path):
    m = char_model("onehot", np.float32, steps=0)
    src, dst = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    clstm.save(m, src)
    cases = [
        ([tmp_path / "nope.safetensors", dst], TEXT, 1, "nope.safetensors"),
        ([src], TEXT, 2, "usage"),
        ([src, dst, "--bogus"], TEXT, 2, "--bogus"),
        ([src, dst, "--epochs", "0"], TEXT, 2, "--epochs"),
        ([src, dst, "--epochs", "two"], TEXT, 2, "--epochs"),
        ([src, dst, "--lr", "0"], TEXT, 2, "--lr"),
        ([src, dst, "--lr", "-1e-3"], TEXT, 2, "--lr"),
        ([src, dst, "--lr", "nan"], TEXT, 2, "--lr"),
        ([src, dst, "--seed", "x"], TEXT, 2, "--seed"),
        ([src, dst], "the fox!", 1, "'!'"),  # not in the vocabulary
        ([src, dst], "t", 1, "2 characters"),
        ([src, tmp_path / "no-such-dir" / "out.safetensors"], TEXT, 1, "no-such-dir"),
    ]
    for args, stdin, rc, needle in cases:
        out = run(FINETUNE, *args, stdin=stdin)
        assert out.returncode == rc, (args, out.returncode, out.stderr)
        assert needle in out.stderr, (args, out.stderr)
        assert out.stdout == ""
        assert not dst.exists(), args


@needs_finetune
@pytest.mark.parametrize("model,needle", [
    (lambda: clstm.LSTM(3, 4), "no head"),
    (lambda: clstm.Model(3, 4, output_size=2, clip=1.0), "clip"),
    (lambda: clstm.Model(3, 4, output_size=2, bidirectional=True), "bidirectional"),
    (lambda: clstm.Model(3, 4, output_size=2, softmax=True), "classifier"),
    (lambda: clstm.Model(hidden_size=4, vocab_size=3, output_size=3, softmax=True),
     "character model"),
], ids=["bare", "clip", "bidirectional", "real-softmax", "no-vocab"])
def test_finetune_refuses_untrainable_models(tmp_path, model, needle):
    src, dst = tmp_path / "in.safetensors", tmp_path / "out.safetensors"
    clstm.save(model(), src)
    out = run(FINETUNE, src, dst, stdin="1 2 3 4 5\n")
    assert out.returncode == 1 and needle in out.stderr and "cannot train" in out.stderr
    assert not dst.exists()


# ------------------------------------------------------------- quantize
QUANTIZE = EXAMPLES / "quantize"
needs_quantize = pytest.mark.skipif(not QUANTIZE.exists(),
                                    reason="run `make` to build the examples")
REPORT = [r"int8 kernel: (?P<kernel>\S+)",
          r"file size: (?P<float_bytes>\d+) bytes float, (?P<int8_bytes>\d+) bytes int8 "
          r"\((?P<ratio>[0-9.]+)x smaller\)",
          r"max \|int8 - float\| of the (?P<what>outputs|LSTM outputs) over (?P<steps>\d+) "
          r"steps \((?P<input>the text|random ids|random features)\): (?P<dev>\S+)",
          r"wrote (?P<path>.+)"]


def quantize_report(stdout):
    lines = stdout.splitlines()
    assert len(lines) == len(REPORT), stdout
    report = {}
    for line, pattern in zip(lines, REPORT):
        found = re.fullmatch(pattern, line)
        assert found, (line, pattern)
        report.update(found.groupdict())
    return report


def splitmix64(n):
    """The example's pseudo-random stream: n 64-bit values from seed 0."""
    mask, state, out = (1 << 64) - 1, 0, []
    for _ in range(n):
        state = (state + 0x9E3779B97F4A7C15) & mask
        z = state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
        out.append(z ^ (z >> 31))
    return out


def check_quantize_run(m, src, dst, inputs, what, args=()):
    """Run the example on m (saved at src) and check its report against m
    and clstm.quantize(m) on `inputs`, and the file it wrote."""
    out = run(QUANTIZE, src, dst, *args)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    report = quantize_report(out.stdout)
    q = clstm.quantize(m)
    assert report["kernel"] == clstm.int8_kernel()
    assert int(report["float_bytes"]) == len(clstm.save_bytes(m)) == src.stat().st_size
    assert int(report["int8_bytes"]) == len(clstm.save_bytes(q))
    assert report["path"] == str(dst) and report["input"] == what
    assert report["what"] == ("outputs" if m.output_size else "LSTM outputs")
    yq, yf = q.forward(inputs, train=False)[0], m.forward(inputs, train=False)[0]
    dev = np.max(np.abs(yq.astype(np.float64) - yf))
    assert int(report["steps"]) == len(inputs)
    # printed to 9 digits; a float32 model's outputs may differ by float32
    # rounding between the example's call and this one (thread splits)
    rounding = (2.0 ** -20 if m.dtype == np.float32 else 1e-12) * float(np.max(np.abs(yf)))
    assert float(report["dev"]) == pytest.approx(dev, rel=1e-8, abs=rounding)
    # each product's error is about 2^-8 of its largest term per int8 factor
    # (clstm.h): under 2% of the largest output (the trained character
    # models' logits reach 8, their deviations 0.07)
    assert 0 < dev < 0.02 * np.max(np.abs(yf))
    # the file is clstm.quantize's model, byte for byte, and runs as it does
    assert dst.read_bytes() == clstm.save_bytes(q)
    back = clstm.load(dst)
    assert back.quantized
    assert back.forward(inputs, train=False)[0].tobytes() == yq.tobytes()
    return q


@needs_quantize
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("encoding", ["onehot", "embedding"])
def test_quantize_character_model(tmp_path, encoding, dtype):
    m = char_model(encoding, dtype)
    src, dst = tmp_path / "chars.safetensors", tmp_path / "int8.safetensors"
    clstm.save(m, src)
    text = "the lazy dog jumps over the quick brown fox"
    check_quantize_run(m, src, dst, m.encode(text), "the text", [text])
    dst.unlink()
    default = "the quick brown fox jumps over the lazy dog.\n"  # the example's
    check_quantize_run(m, src, dst, m.encode(default), "the text")


@needs_quantize
@pytest.mark.parametrize("make", [
    lambda: clstm.Model(4, 8, 2, proj_size=3, output_size=3, seed=1),
    lambda: clstm.LSTM(3, 6, 2, bidirectional=True, peepholes=True, dtype=np.float64, seed=2),
    lambda: clstm.Model(hidden_size=6, vocab_size=5, output_size=5, seed=3),  # no vocabulary
], ids=["head", "bare-bidirectional-f64", "ids-without-vocab"])
def test_quantize_other_models(tmp_path, make):
    m = make()
    src, dst = tmp_path / "m.safetensors", tmp_path / "int8.safetensors"
    clstm.save(m, src)
    if m.encoding:
        inputs, what = np.array([v % m.vocab_size for v in splitmix64(64)]), "random ids"
    else:
        u = np.array(splitmix64(64 * m.input_size), dtype=np.uint64) >> np.uint64(11)
        inputs = (u.astype(np.float64) * 2.0 ** -52 - 1.0).reshape(64, m.input_size)
        what = "random features"
    check_quantize_run(m, src, dst, inputs.astype(m.dtype) if not m.encoding else inputs, what)


@needs_quantize
def test_quantize_errors(tmp_path):
    m = char_model("onehot", np.float32, steps=0)
    good, dst = tmp_path / "chars.safetensors", tmp_path / "int8.safetensors"
    clstm.save(m, good)
    done = tmp_path / "done.safetensors"
    clstm.save(clstm.quantize(m), done)
    nan = tmp_path / "nan.safetensors"
    sd = m.state_dict()
    sd["head.weight"][0, 0] = np.nan
    bad = clstm.Model(hidden_size=m.hidden_size, vocab=m.vocab, output_size=m.output_size,
                      softmax=True)
    bad.load_state_dict(sd)
    clstm.save(bad, nan)
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{}")
    cases = [
        ([], 2, "usage"),
        ([good], 2, "usage"),
        ([good, dst, "text", "extra"], 2, "usage"),
        ([tmp_path / "nope.safetensors", dst], 1, "nope.safetensors"),
        ([garbage, dst], 1, "garbage.safetensors"),
        ([done, dst], 1, "already quantized"),
        ([nan, dst], 1, "NaN or Inf"),
        ([good, dst, "the fox!"], 2, "'!'"),  # not in the vocabulary
        ([good, dst, ""], 2, "empty"),
        ([good, tmp_path / "no" / "such" / "dir.safetensors"], 1, "dir.safetensors"),
    ]
    for args, rc, needle in cases:
        out = run(QUANTIZE, *args)
        assert out.returncode == rc, (args, out.returncode, out.stderr)
        assert needle in out.stderr and len(out.stderr.splitlines()) == 1, (args, out.stderr)
        assert out.stdout == "", args
        assert not dst.exists(), args
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "chars.safetensors", "done.safetensors", "garbage.safetensors", "nan.safetensors"]


@needs_quantize
@needs_generate
@pytest.mark.parametrize("encoding", ["onehot", "embedding"])
def test_generate_runs_the_quantized_file(tmp_path, encoding):
    # examples/quantize.c's file, run by examples/generate.c unchanged: the
    # text of the quantized model in Python, greedy and sampled
    m = char_model(encoding, np.float32)
    src, dst = tmp_path / "chars.safetensors", tmp_path / "int8.safetensors"
    clstm.save(m, src)
    assert run(QUANTIZE, src, dst).returncode == 0
    q = clstm.load(dst)
    greedy = python_generate(q, "the qu", 60)
    assert len(set(greedy)) > 3, "the test model is too weak to test anything"
    out = run(GENERATE, dst, "--prime", "the qu", "--length", 60, "--temperature", 0)
    assert out.returncode == 0 and out.stderr == "", out.stderr
    assert out.stdout == "the qu" + greedy
    out = run(GENERATE, dst, "--prime", "fox", "--length", 50, "--seed", 7)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "fox" + python_generate(q, "fox", 50, 1.0, 7)


# ------------------------------------------------------------- recognize

RECOGNIZE = EXAMPLES / "recognize"
needs_recognize = pytest.mark.skipif(not RECOGNIZE.exists(),
                                     reason="run `make` to build the examples")


def write_pgm(path, pixels, maxval=255, binary=True):
    h, w = pixels.shape
    if binary:
        body = pixels.astype(">u2" if maxval > 255 else np.uint8).tobytes()
        path.write_bytes(b"P5\n# a comment\n%d %d\n%d\n" % (w, h, maxval) + body)
    else:
        path.write_text("P2\n%d %d\n%d\n%s\n" % (w, h, maxval,
                                                 "\n".join(" ".join(map(str, r)) for r in pixels)))


def recognizer(tmp_path, dtype=np.float32, height=12, per_step=None):
    """A random text-line recognizer whose alphabet needs JSON's escapes,
    reading per_step columns a time step (None: no such metadata, as in
    models made before it existed: 1)."""
    alphabet = 'ab "\\é€😀'
    m = clstm.Model(height * (per_step or 1), 10, 1, bidirectional=True,
                    output_size=len(alphabet) + 1, dtype=dtype, seed=3)
    m.metadata.update(task="ctc", blank="0", line_height=str(height),
                      alphabet=json.dumps(alphabet, ensure_ascii=False))
    if per_step is not None:
        m.metadata["columns_per_step"] = str(per_step)
    path = tmp_path / "ocr.safetensors"
    clstm.save(m, path)
    return path, height


@needs_recognize
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("beam", [1, 6])
@pytest.mark.parametrize("per_step", [None, 3])
def test_recognize_example_reads_as_python_does(tmp_path, capsys, dtype, beam, per_step):
    from clstm import cli
    pytest.importorskip("PIL")
    model, height = recognizer(tmp_path, dtype, per_step=per_step)
    rng = np.random.default_rng(0)
    images = []
    for i, w in enumerate((30, 57, 3)):
        p = tmp_path / ("l%d.pgm" % i)
        write_pgm(p, rng.integers(0, 256, (height, w)))
        images.append(p)
    out = run(RECOGNIZE, model, *images, "--beam", beam)
    assert out.returncode == 0, out.stderr
    capsys.readouterr()
    assert cli.main(["recognize", str(model)] + list(map(str, images)) + ["--beam", str(beam)]) == 0
    want = capsys.readouterr().out
    assert out.stdout == want and len(want.splitlines()) == 3
    assert any(line for line in want.splitlines())  # a random model reads something


@needs_recognize
def test_recognize_example_reads_text_and_16_bit_pgm(tmp_path):
    model, height = recognizer(tmp_path)
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (height, 20))
    write_pgm(tmp_path / "a.pgm", pixels)
    write_pgm(tmp_path / "b.pgm", pixels, binary=False)
    write_pgm(tmp_path / "c.pgm", pixels * 257, maxval=65535)
    outs = [run(RECOGNIZE, model, tmp_path / n) for n in ("a.pgm", "b.pgm", "c.pgm")]
    assert all(o.returncode == 0 for o in outs), [o.stderr for o in outs]
    assert outs[0].stdout == outs[1].stdout == outs[2].stdout


@needs_recognize
def test_recognize_example_refuses_bad_input(tmp_path):
    model, height = recognizer(tmp_path)
    write_pgm(tmp_path / "tall.pgm", np.zeros((height + 1, 9), int))
    (tmp_path / "short.pgm").write_bytes(b"P5\n10 %d\n255\n" % height + b"\0" * 7)
    (tmp_path / "junk.pgm").write_bytes(b"P6\n1 1\n255\n\0\0\0")
    other = tmp_path / "plain.safetensors"
    clstm.save(clstm.Model(height, 4, 1, output_size=3, seed=0), other)
    odd = tmp_path / "odd.safetensors"  # 12 inputs are not 5 columns of 12
    m = clstm.load(model)
    m.metadata["columns_per_step"] = "5"
    clstm.save(m, odd)
    for args, needle in (([model, tmp_path / "tall.pgm"], "scale it first"),
                         ([model, tmp_path / "short.pgm"], "truncated"),
                         ([model, tmp_path / "junk.pgm"], "not a PGM"),
                         ([model, tmp_path / "none.pgm"], "none.pgm"),
                         ([other, tmp_path / "tall.pgm"], "not a text-line recognizer"),
                         ([odd, tmp_path / "tall.pgm"], "columns per step do not match")):
        out = run(RECOGNIZE, *args)
        assert out.returncode == 1 and needle in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1 and out.stdout == ""
    for args in ([model], [model, tmp_path / "tall.pgm", "--beam", "0"], ["--x"]):
        assert run(RECOGNIZE, *args).returncode == 2
