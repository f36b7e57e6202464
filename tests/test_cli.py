"""The `clstm` command line (clstm/cli.py, with clstm/train.py and
clstm/data.py behind it).

Most commands run in-process through clstm.cli.main (fast: no interpreter
start-up per case); the things only a real process can show run as
subprocesses: the console script and `python -m clstm`, the one-line stderr
of a handful of bad inputs, an npz whose unpickling would leave a marker
file, and Ctrl-C (SIGINT) during training followed by --resume.

Bad input must give exit status 2, exactly one stderr line starting with
"clstm COMMAND:", no traceback, no model/checkpoint/log file in the output
directory and no temporary file anywhere.
"""
import contextlib
import csv
import dataclasses
import io
import json
import os
import pickle
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

import clstm
from clstm import cli
from clstm import train as TR

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130

# A small character model, fast to train: every train command below adds these.
SMALL_CHAR = ["--hidden", "16", "--batch", "8", "--bptt", "16", "--sample-every", "0",
              "--threads", "1", "--no-progress"]


# ------------------------------------------------------------------ running
@dataclasses.dataclass
class Result:
    rc: int
    out: str
    err: str


def run_main(args, cwd):
    """clstm.cli.main(args) in-process with `cwd` as the working directory;
    stdout, stderr and the thread count are captured and restored. An
    uncaught exception propagates (and fails the test, as a traceback
    would)."""
    out, err = io.StringIO(), io.StringIO()
    old_cwd, old_threads = os.getcwd(), clstm.get_num_threads()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = cli.main([str(a) for a in args])
            except SystemExit as e:  # argparse: --help, --version, usage errors
                rc = e.code
    finally:
        os.chdir(old_cwd)
        if clstm.get_num_threads() != old_threads:
            clstm.set_num_threads(old_threads)
    return Result(rc, out.getvalue(), err.getvalue())


def run_proc(args, cwd, *, module=True, env=None, timeout=120):
    """The command line as a real process: `python -m clstm ARGS` (module)
    or the `clstm` console script."""
    exe = [sys.executable, "-m", "clstm"] if module else [shutil.which("clstm")]
    assert exe[0], "the clstm console script is not installed"
    p = subprocess.run(exe + [str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                       env=env, timeout=timeout)
    return Result(p.returncode, p.stdout, p.stderr)


def assert_ok(r):
    assert r.rc == 0, "exit %r\nstdout:\n%s\nstderr:\n%s" % (r.rc, r.out, r.err)
    assert "Traceback" not in r.out + r.err


def assert_refused(r, command, *needles):
    """Exit 2 and exactly one stderr line 'clstm COMMAND: ...' naming every
    needle (case-insensitive), no traceback."""
    detail = "exit %r\nstdout:\n%s\nstderr:\n%s" % (r.rc, r.out, r.err)
    assert r.rc == EXIT_BAD_INPUT, detail
    assert "Traceback" not in r.out + r.err, detail
    lines = r.err.splitlines()
    assert len(lines) == 1 and r.err.endswith("\n"), "stderr is not one line:\n" + detail
    assert lines[0].startswith("clstm %s: " % command), detail
    for n in needles:
        assert n.lower() in lines[0].lower(), "%r not in %r" % (n, lines[0])
    return lines[0]


def tmp_files(*roots):
    """Temporary files (names with .tmp) left under roots."""
    found = []
    for root in roots:
        for d, _, files in os.walk(root):
            found += [os.path.join(d, f) for f in files if ".tmp" in f]
    return found


def params(path):
    return np.asarray(clstm.load(str(path)).flat_parameters).copy()


# ------------------------------------------------------------------ data
def write_words(path, n_words, seed):
    rng = np.random.default_rng(seed)
    words = ("the quick brown fox jumps over the lazy dog and then runs away into "
             "the forest while birds sing").split()
    path.write_text(" ".join(words[i] for i in rng.integers(0, len(words), n_words)) + "\n",
                    encoding="utf-8")
    return path


def toy_classification(seed, n=300, t_max=12, d=2, pad=0.0):
    """Label = the sign of the first feature at the last valid step:
    learnable, deterministic; `pad` fills the steps past each length."""
    rng = np.random.default_rng(seed)
    lengths = rng.integers(3, t_max + 1, n)
    X = rng.standard_normal((n, t_max, d))
    X[np.arange(t_max)[None, :] >= lengths[:, None]] = pad
    y = (X[np.arange(n), lengths - 1, 0] > 0).astype(np.int64)
    return X, lengths, y


def series_values(n=200):
    t = np.arange(n)
    return np.sin(0.2 * t) + 0.1 * np.cos(0.05 * t)


@dataclasses.dataclass
class World:
    """Input files and trained models shared by the module's tests."""
    data: object
    text: object
    csv: object
    npz: object
    npz_test: object
    char: object
    forecaster: object
    classifier: object
    bare: object


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    data = root / "data"
    data.mkdir()
    text = write_words(data / "text.txt", 3000, seed=0)
    csv_path = data / "series.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["t", "y"])
        for i, v in enumerate(series_values()):
            w.writerow([i, "%.9f" % v])
    npz = data / "cls.npz"
    np.savez(npz, **dict(zip(("X", "lengths", "y"), toy_classification(0))))
    npz_test = data / "cls_test.npz"
    np.savez(npz_test, **dict(zip(("X", "lengths", "y"), toy_classification(1))))
    models = root / "models"
    models.mkdir()
    char, fc, cls = models / "char.safetensors", models / "fc.safetensors", models / "cls.safetensors"
    assert_ok(run_main(["train", "--text", text, "--out", char, "--epochs", "1"] + SMALL_CHAR,
                       root))
    assert_ok(run_main(["train", "--csv", csv_path, "--column", "y", "--window", "10",
                        "--horizon", "2", "--hidden", "8", "--epochs", "3", "--threads", "1",
                        "--no-progress", "--out", fc], root))
    assert_ok(run_main(["train", "--npz", npz, "--hidden", "16", "--lr", "0.02", "--epochs",
                        "10", "--seed", "0", "--threads", "1", "--no-progress", "--out", cls],
                       root))
    bare = models / "bare.safetensors"
    clstm.save(clstm.LSTM(3, 4, 1, seed=0), str(bare))
    return World(data, text, csv_path, npz, npz_test, char, fc, cls, bare)


# ------------------------------------------------------------ entry points
def test_python_dash_m_help(tmp_path):
    r = run_proc(["--help"], tmp_path, module=True)
    assert_ok(r)
    for command in ("train", "sample", "info", "export", "forecast", "evaluate"):
        assert command in r.out


def test_console_script_version(tmp_path):
    r = run_proc(["--version"], tmp_path, module=False)
    assert_ok(r)
    assert r.out.strip() == "clstm " + clstm.__version__


def _options_with_defaults(command):
    parser = cli.build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]
    opts = {}
    for a in sub._actions:
        if not a.option_strings or a.dest == "help":
            continue
        # the long spelling (--bidirectional of --bidirectional/--no-bidirectional)
        opts[next(o for o in a.option_strings if o.startswith("--"))] = a.default
    return opts


COMMANDS = ("train", "sample", "info", "export", "forecast", "evaluate")


def _help_entries(text):
    """{option: its help text, whitespace collapsed} from argparse --help."""
    entries, current = {}, None
    for line in text.splitlines():
        m = re.match(r"^  (-[-\w]+)", line)
        if m:
            current = m.group(1)
            entries[current] = line
        elif current and line.startswith("   "):
            entries[current] += " " + line.strip()
        else:
            current = None
    return {k: " ".join(v.split()) for k, v in entries.items()}


@pytest.mark.parametrize("command", COMMANDS)
def test_subcommand_help_documents_defaults(command, tmp_path):
    r = run_main([command, "--help"], tmp_path)
    assert_ok(r)
    entries = _help_entries(r.out)
    for opt, default in _options_with_defaults(command).items():
        assert opt in entries, "%s --help lacks %s" % (command, opt)
        if default is not None:
            assert "default" in entries[opt], "%s --help: %s has no default: %r" % (
                command, opt, entries[opt])


def test_common_options_one_spelling():
    train = _options_with_defaults("train")
    for opt in ("--out", "--epochs", "--hidden", "--layers", "--seed", "--threads"):
        assert opt in train
    assert "--seed" in _options_with_defaults("sample")
    # no near-miss spellings of the common options anywhere
    for command in COMMANDS:
        for opt in _options_with_defaults(command):
            assert opt not in ("--output", "--epoch", "--hidden-size", "--num-layers",
                               "--random-seed", "--num-threads", "--nthreads"), (command, opt)


def test_train_help_states_one_real_default(tmp_path):
    entries = _help_entries(run_main(["train", "--help"], tmp_path).out)
    doubled = [k for k, v in entries.items() if v.count("default") > 1]
    assert doubled == []
    assert "default: None" not in entries["--layers"]


# ------------------------------------------------------- the built-in text
@pytest.fixture(scope="module")
def builtin_run(tmp_path_factory):
    d = tmp_path_factory.mktemp("builtin")
    r = run_main(["train", "--max-steps", "3", "--hidden", "8", "--batch", "4", "--bptt", "8",
                  "--no-progress", "--threads", "1"], d)
    return d, r


def test_builtin_default_trains(builtin_run):
    d, r = builtin_run
    assert_ok(r)
    assert "pydoc_data" in r.out.splitlines()[0]
    assert "done: 3 steps" in r.out
    assert (d / "model.ckpt.npz").is_file()
    assert TR.load_checkpoint(str(d / "model.ckpt.npz"))[2]["step"] == 3
    assert "sample:" in r.out
    assert tmp_files(d) == []


def test_builtin_default_writes_model_and_log(builtin_run):
    d, r = builtin_run
    assert "model written to model.safetensors" in r.out
    assert (d / "model.safetensors").is_file()
    assert (d / "model.log.jsonl").is_file()


# ----------------------------------------------------------- character models
def test_train_text_writes_model_checkpoint_log(world, tmp_path):
    out = tmp_path / "m.safetensors"
    r = run_main(["train", "--text", world.text, "--out", out, "--epochs", "1", "--seed", "5"]
                 + SMALL_CHAR, tmp_path)
    assert_ok(r)
    assert "training a character model" in r.out and str(world.text) in r.out
    assert sorted(os.listdir(tmp_path)) == ["m.ckpt.npz", "m.log.jsonl", "m.safetensors"]
    model = clstm.load(str(out))
    assert model.metadata["task"] == "char" and model.hidden_size == 16
    assert set(model.vocab) == set(world.text.read_text(encoding="utf-8"))
    records = [json.loads(line) for line in (tmp_path / "m.log.jsonl").read_text().splitlines()]
    assert len(records) >= 2
    steps = [rec["step"] for rec in records]
    assert steps == sorted(steps) and steps[-1] == TR.load_checkpoint(
        str(tmp_path / "m.ckpt.npz"))[2]["step"]
    for rec in records:
        assert np.isfinite(rec["train_loss"]) and np.isfinite(rec["val_loss"])
    assert records[-1]["val_loss"] < records[0]["val_loss"]


def test_train_is_deterministic_with_seed(world, tmp_path):
    a, b, c = (tmp_path / n for n in ("a.safetensors", "b.safetensors", "c.safetensors"))
    for out, seed in ((a, 7), (b, 7), (c, 8)):
        assert_ok(run_main(["train", "--text", world.text, "--out", out, "--max-steps", "20",
                            "--eval-every", "10", "--seed", seed] + SMALL_CHAR, tmp_path))
    np.testing.assert_array_equal(params(a), params(b))
    assert not np.array_equal(params(a), params(c))


RESUME_TASKS = {
    "char": lambda w: ["--text", w.text, "--epochs", "1"] + SMALL_CHAR,
    "char_dropout_embedding": lambda w: ["--text", w.text, "--epochs", "1", "--layers", "2",
                                         "--dropout", "0.3", "--embedding", "5"] + SMALL_CHAR,
    "forecast": lambda w: ["--csv", w.csv, "--column", "y", "--window", "10", "--hidden", "8",
                           "--epochs", "3", "--batch", "16", "--threads", "1", "--no-progress"],
    "classify": lambda w: ["--npz", w.npz, "--hidden", "8", "--epochs", "3", "--batch", "16",
                           "--threads", "1", "--no-progress"],
}


@pytest.mark.parametrize("task", sorted(RESUME_TASKS))
def test_max_steps_then_resume_equals_uninterrupted(task, world, tmp_path):
    """--max-steps stops with a checkpoint; --resume goes on to the end of
    the run, with the parameters of a run never stopped."""
    args = ["train", "--eval-every", "10", "--seed", "2"] + RESUME_TASKS[task](world)
    full, part = tmp_path / "full", tmp_path / "part"
    full.mkdir()
    part.mkdir()
    assert_ok(run_main(args + ["--out", full / "m.safetensors"], tmp_path))
    total = TR.load_checkpoint(str(full / "m.ckpt.npz"))[2]["step"]
    stop = total // 2 + 3  # not at an evaluation, not at an epoch's end
    r = run_main(args + ["--out", part / "m.safetensors", "--max-steps", stop], tmp_path)
    assert_ok(r)
    ckpt = part / "m.ckpt.npz"
    assert TR.load_checkpoint(str(ckpt))[2]["step"] == stop
    r = run_main(args + ["--out", part / "m.safetensors", "--resume", ckpt], tmp_path)
    assert_ok(r)
    assert "resuming %s at step %d of %d" % (ckpt, stop, total) in r.out
    np.testing.assert_array_equal(params(part / "m.safetensors"), params(full / "m.safetensors"))
    end_full = TR.load_checkpoint(str(full / "m.ckpt.npz"))[0].flat_parameters
    end_part = TR.load_checkpoint(str(ckpt))[0].flat_parameters
    np.testing.assert_array_equal(end_part, end_full)
    # every step's training loss (what --plot draws) survives the resume
    np.testing.assert_array_equal(TR.load_checkpoint(str(ckpt))[1]["losses"],
                                  TR.load_checkpoint(str(full / "m.ckpt.npz"))[1]["losses"])
    assert tmp_files(tmp_path) == []


def test_log_csv_has_header(world, tmp_path):
    log = tmp_path / "metrics.csv"
    assert_ok(run_main(["train", "--text", world.text, "--out", tmp_path / "m.safetensors",
                        "--log", log, "--max-steps", "30", "--eval-every", "10"] + SMALL_CHAR,
                       tmp_path))
    rows = list(csv.reader(log.read_text().splitlines()))
    header = rows[0]
    assert header[0] == "step" and {"train_loss", "val_loss", "lr"} <= set(header)
    assert [int(r[0]) for r in rows[1:]] == [10, 20, 30]
    for r in rows[1:]:
        assert len(r) == len(header)
        assert np.isfinite(float(r[header.index("val_loss")]))
    assert not (tmp_path / "m.log.jsonl").exists()


def _matplotlib():
    try:
        import matplotlib  # noqa: F401
        return True
    except ImportError:
        return False


def png_size(path):
    """(width, height) of a PNG file, after checking its signature and header."""
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", "not a PNG"
    assert data.endswith(b"IEND\xaeB`\x82"), "a truncated PNG"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


def test_plot(world, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    r = run_main(["train", "--text", world.text, "--out", out / "m.safetensors", "--plot",
                  out / "loss.png", "--max-steps", "20", "--eval-every", "10"] + SMALL_CHAR,
                 tmp_path)
    if _matplotlib():
        assert_ok(r)
        w, h = png_size(out / "loss.png")
        assert w > 300 and h > 200
        assert os.stat(out / "loss.png").st_mode & 0o644 == 0o644
    else:
        assert_refused(r, "train", "matplotlib")
        assert os.listdir(out) == []
    assert tmp_files(tmp_path) == []


def test_sample_seed_and_temperature(world, tmp_path):
    def sample(*extra):
        r = run_main(["sample", world.char, "--prime", "the ", "--length", "60"]
                     + list(extra), tmp_path)
        assert_ok(r)
        return r.out

    a, b, c = sample("--seed", "1"), sample("--seed", "1"), sample("--seed", "2")
    assert a == b
    assert a != c
    vocab = set(clstm.load(str(world.char)).vocab)
    for s in (a, c):
        assert s.endswith("\n") and s.startswith("the ")
        text = s[:-1]
        assert len(text) == 4 + 60 and set(text) <= vocab
    g1 = sample("--temperature", "0", "--seed", "1")
    g2 = sample("--temperature", "0", "--seed", "99")
    assert g1 == g2
    assert g1[:-1] == TR.generate_text(clstm.load(str(world.char)), "the ", 60, 0.0)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------- forecasting
def test_forecast(world, tmp_path):
    model = clstm.load(str(world.forecaster))
    assert model.metadata["task"] == "forecast" and model.metadata["column"] == "y"
    r = run_main(["forecast", world.forecaster, "--csv", world.csv], tmp_path)
    assert_ok(r)
    lines = r.out.splitlines()
    values = series_values()
    n = len(values)
    assert lines[0] == "forecast of the next 2 values after the last of %d:" % n
    preds = []
    for i, line in enumerate(lines[1:3], 1):
        m = re.fullmatch(r"t\+%d: (\S+)" % i, line)
        assert m, line
        preds.append(float(m.group(1)))
    assert np.all(np.isfinite(preds))
    m = re.fullmatch(r"one-step MSE over (\d+) windows: model (\S+), persistence (\S+)", lines[3])
    assert m, lines[3]
    window, horizon = 10, 2
    assert int(m.group(1)) == n - window - horizon + 1
    z = values[:n - horizon + 1]
    persistence = np.mean((z[window:] - z[window - 1:-1]) ** 2)
    assert float(m.group(3)) == pytest.approx(persistence, rel=1e-4)
    assert np.isfinite(float(m.group(2)))
    # the same with the column named explicitly
    assert run_main(["forecast", world.forecaster, "--csv", world.csv, "--column", "y"],
                    tmp_path).out == r.out


def test_forecaster_trained_in_python_is_accepted(world, tmp_path):
    """A forecaster trained with the Python API (ForecastTask + Trainer, no
    command line) is the same kind of file as `clstm train --csv`'s: the same
    metadata, and `clstm forecast` and `clstm info` accept it."""
    from clstm import data as D
    from clstm.tasks import ForecastTask
    from clstm.trainer import Trainer
    series = D.read_csv_column(str(world.csv), "y")
    out = tmp_path / "py_fc.safetensors"
    model = clstm.Model(1, 8, output_size=2, seed=0)
    Trainer(model, ForecastTask(series, window=10, horizon=2, column="y"), epochs=2,
            progress=False, out=str(out)).fit()
    assert dict(clstm.load(str(out)).metadata) == dict(clstm.load(str(world.forecaster)).metadata)
    n = len(series) - 10 - 2 + 1  # windows; the last 10% validate
    seen = series[:n - int(0.1 * n) + 10 + 2 - 1]  # the values the training windows hold
    mean, std = json.dumps([float(np.mean(seen))]), json.dumps([float(np.std(seen))])
    md = dict(clstm.load(str(out)).metadata)
    assert md.keys() == {"task", "window", "horizon", "column", "input_mean", "input_std",
                         "output_mean", "output_std"}
    assert md["task"] == "forecast" and md["window"] == "10" and md["horizon"] == "2"
    assert md["column"] == "y"
    assert np.allclose(json.loads(md["input_mean"]), json.loads(mean), rtol=1e-12)
    assert np.allclose(json.loads(md["input_std"]), json.loads(std), rtol=1e-12)
    assert json.loads(md["output_mean"]) == 2 * json.loads(md["input_mean"])
    assert json.loads(md["output_std"]) == 2 * json.loads(md["input_std"])
    r = run_main(["forecast", out, "--csv", world.csv], tmp_path)
    assert_ok(r)
    lines = r.out.splitlines()
    assert lines[0] == "forecast of the next 2 values after the last of %d:" % len(series)
    assert re.fullmatch(r"one-step MSE over %d windows: model \S+, persistence \S+"
                        % (len(series) - 11), lines[3]), lines[3]
    assert_ok(run_main(["info", out], tmp_path))
    # without a column name in the model: --column names it, or a one-line refusal
    nameless = tmp_path / "nameless.safetensors"
    model = clstm.Model(1, 8, output_size=2, seed=0)
    Trainer(model, ForecastTask(series, window=10, horizon=2), epochs=1, progress=False,
            out=str(nameless)).fit()
    assert_refused(run_main(["forecast", nameless, "--csv", world.csv], tmp_path), "forecast",
                   "--column")
    assert_ok(run_main(["forecast", nameless, "--csv", world.csv, "--column", "y"], tmp_path))


def test_forecaster_with_broken_metadata_is_refused(world, tmp_path):
    for key, value, needle in (("input_std", None, "has 'input_mean' but not 'input_std'"),
                               ("input_mean", "[1, 2]", "'input_mean' has 2 numbers"),
                               ("output_std", "[1, 0]", "a std <= 0"),
                               ("input_mean", "x", "not a JSON array of numbers")):
        model = clstm.load(str(world.forecaster))
        if value is None:
            del model.metadata[key]
        else:
            model.metadata[key] = value
        clstm.save(model, tmp_path / "m.safetensors")
        assert_refused(run_main(["forecast", tmp_path / "m.safetensors", "--csv", world.csv],
                                tmp_path), "forecast", needle)
    legacy = _legacy_forecaster(world, tmp_path)
    del legacy.metadata["std"]
    clstm.save(legacy, tmp_path / "m.safetensors")
    assert_refused(run_main(["forecast", tmp_path / "m.safetensors", "--csv", world.csv],
                            tmp_path), "forecast", "'std' is missing")


def _legacy_forecaster(world, tmp_path):
    """world's forecaster as a file written before the input_*/output_* keys:
    one "mean" and "std" for the series."""
    model = clstm.load(str(world.forecaster))
    mean, std = json.loads(model.metadata["input_mean"]), json.loads(model.metadata["input_std"])
    for key in ("input_mean", "input_std", "output_mean", "output_std"):
        del model.metadata[key]
    model.metadata.update(mean=repr(mean[0]), std=repr(std[0]))
    return model


def test_forecaster_from_before_the_standardization_keys_forecasts_the_same(world, tmp_path):
    clstm.save(_legacy_forecaster(world, tmp_path), tmp_path / "old.safetensors")
    old = run_main(["forecast", tmp_path / "old.safetensors", "--csv", world.csv], tmp_path)
    new = run_main(["forecast", world.forecaster, "--csv", world.csv], tmp_path)
    assert_ok(old)
    assert old.out == new.out


def test_classifier_trained_in_python_is_accepted(world, tmp_path):
    """A classifier trained with SequenceTask + Trainer: `clstm evaluate`
    accepts it, and its metadata is `clstm train --npz`'s."""
    from clstm import data as D
    from clstm.tasks import SequenceTask
    from clstm.trainer import Trainer
    X, lengths, y = D.read_npz(str(world.npz))
    # the split `clstm train --seed 0` makes, so the standardization is the same
    train, val = D.Sequences(X, lengths, y).split(0.1, np.random.default_rng([0, 0xDA7A]))
    out = tmp_path / "py_cls.safetensors"
    model = clstm.Model(2, 16, output_size=2, softmax=True, seed=0)
    Trainer(model, SequenceTask(train, val, 32, kind="classify", standardize=True), lr=0.02,
            epochs=3, progress=False, out=str(out)).fit()
    md = dict(clstm.load(str(out)).metadata)
    assert md == dict(clstm.load(str(world.classifier)).metadata)
    assert md.keys() == {"task", "classes", "input_mean", "input_std"}
    assert (md["task"], md["classes"]) == ("classify", "2")
    steps = np.concatenate([x[:n] for x, n in zip(train.X, train.lengths)])  # train split only
    assert np.allclose(json.loads(md["input_mean"]), steps.mean(0), rtol=1e-12, atol=1e-15)
    assert np.allclose(json.loads(md["input_std"]), steps.std(0), rtol=1e-12)
    r = run_main(["evaluate", out, "--npz", world.npz_test], tmp_path)
    assert_ok(r)
    assert ACCURACY.search(r.out) and _confusion(r.out, 2).sum() == 300


# ---------------------------------------------------------- classification
ACCURACY = re.compile(r"^accuracy: (\d\.\d{3})$", re.M)


def _confusion(out, k):
    lines = out.splitlines()
    i = lines.index("confusion matrix (rows: true class, columns: predicted):")
    assert lines[i + 1].split() == [str(j) for j in range(k)]
    rows = [list(map(int, line.split())) for line in lines[i + 2:i + 2 + k]]
    assert [r[0] for r in rows] == list(range(k))
    return np.array([r[1:] for r in rows])


def test_evaluate_accuracy_well_above_chance(world, tmp_path):
    model = clstm.load(str(world.classifier))
    assert model.metadata["task"] == "classify" and model.output_size == 2
    for npz, floor in ((world.npz, 0.9), (world.npz_test, 0.85)):
        r = run_main(["evaluate", world.classifier, "--npz", npz], tmp_path)
        assert_ok(r)
        m = ACCURACY.search(r.out)
        assert m and r.out.splitlines()[0] == m.group(0), r.out
        acc = float(m.group(1))
        assert acc >= floor, r.out
        cm = _confusion(r.out, 2)
        y = np.load(npz)["y"]
        assert cm.sum() == len(y)
        np.testing.assert_array_equal(cm.sum(1), np.bincount(y, minlength=2))
        assert np.trace(cm) / cm.sum() == pytest.approx(acc, abs=5e-4)


def test_npz_nan_in_padding_is_fine(tmp_path):
    npz = tmp_path / "pad.npz"
    np.savez(npz, **dict(zip(("X", "lengths", "y"), toy_classification(3, n=64, pad=np.nan))))
    out = tmp_path / "m.safetensors"
    assert_ok(run_main(["train", "--npz", npz, "--hidden", "4", "--epochs", "1", "--threads",
                        "1", "--no-progress", "--out", out], tmp_path))
    r = run_main(["evaluate", out, "--npz", npz], tmp_path)
    assert_ok(r)
    assert ACCURACY.search(r.out)


# ------------------------------------------------------------ info, export
def test_info(world, tmp_path):
    r = run_main(["info", world.char], tmp_path)
    assert_ok(r)
    assert "kind: a character model" in r.out
    assert "hidden_size: 16" in r.out
    assert "metadata task: char" in r.out
    assert re.search(r"^vocab: ", r.out, re.M)
    r = run_main(["info", world.bare], tmp_path)
    assert_ok(r)
    assert "kind: a bare LSTM" in r.out
    assert "input_size: 3" in r.out and "hidden_size: 4" in r.out
    assert "parameters: %d" % clstm.load(str(world.bare)).flat_parameters.size in r.out
    r = run_main(["info", world.forecaster], tmp_path)
    assert_ok(r)
    assert "metadata window: 10" in r.out and "metadata horizon: 2" in r.out


# --------------------------------------------------------------- quantize
@pytest.mark.parametrize("which", ["char", "forecaster", "classifier", "bare"])
def test_quantize_then_every_command(which, world, tmp_path):
    """`clstm quantize` writes an int8 copy equal to clstm.quantize's, about
    4x smaller where the weights dominate, and sample, forecast, evaluate
    and info run on it."""
    src = getattr(world, which)
    out = tmp_path / "q.safetensors"
    r = run_main(["quantize", src, out], tmp_path)
    assert_ok(r)
    assert r.out.startswith("wrote %s: int8, %d bytes" % (out, os.path.getsize(out)))
    q, f = clstm.load(str(out)), clstm.load(str(src))
    assert q.quantized and dict(q.metadata) == dict(f.metadata)
    expect = clstm.quantize(f)
    for k, (w, s) in expect.int8_tensors().items():
        np.testing.assert_array_equal(q.int8_tensors()[k][0], w)
        np.testing.assert_array_equal(q.int8_tensors()[k][1], s)
    r = run_main(["info", out], tmp_path)
    assert_ok(r)
    assert re.search(r"^quantized: int8 \(kernel [a-z0-9-]+\)$", r.out, re.M)
    assert "quantized: no" in run_main(["info", src], tmp_path).out
    if which == "char":
        r = run_main(["sample", out, "--prime", "the ", "--length", "40", "--temperature",
                      "0"], tmp_path)
        assert_ok(r)
        assert r.out[:-1] == TR.generate_text(q, "the ", 40, 0.0)
    if which == "forecaster":
        r = run_main(["forecast", out, "--csv", world.csv], tmp_path)
        assert_ok(r)
        assert r.out.startswith("forecast of the next 2 values")
    if which == "classifier":
        r = run_main(["evaluate", out, "--npz", world.npz], tmp_path)
        assert_ok(r)
        full = ACCURACY.search(run_main(["evaluate", src, "--npz", world.npz], tmp_path).out)
        acc = float(ACCURACY.search(r.out).group(1))
        assert abs(acc - float(full.group(1))) <= 0.02, (acc, full.group(0))


def test_quantize_refusals(world, tmp_path):
    q = tmp_path / "q.safetensors"
    assert_ok(run_main(["quantize", world.char, q], tmp_path))
    assert_refused(run_main(["quantize", q, tmp_path / "q2.safetensors"], tmp_path),
                   "quantize", "already quantized")
    assert not (tmp_path / "q2.safetensors").exists()
    assert_refused(run_main(["quantize", world.char, tmp_path], tmp_path), "quantize",
                   "directory")
    assert_refused(run_main(["quantize", q, q], tmp_path), "quantize", "already quantized")
    src = tmp_path / "src.safetensors"
    shutil.copy(world.char, src)
    before = src.read_bytes()
    assert_refused(run_main(["quantize", src, src], tmp_path), "quantize", "input model")
    assert src.read_bytes() == before
    assert_refused(run_main(["quantize", world.char, tmp_path / "no" / "q.safetensors"],
                            tmp_path), "quantize", "q.safetensors")
    assert tmp_files(tmp_path) == []


def test_export_bare_lstm(world, tmp_path):
    onnx = pytest.importorskip("onnx")
    out = tmp_path / "bare.onnx"
    r = run_main(["export", world.bare, "--onnx", out], tmp_path)
    assert_ok(r)
    assert r.out.strip() == "wrote %s" % out
    onnx.checker.check_model(onnx.load(str(out)))
    assert tmp_files(tmp_path) == []


@pytest.mark.parametrize("which", ["char", "classifier", "forecaster"])
def test_export_model_with_head_refused(world, tmp_path, which):
    out = tmp_path / "m.onnx"
    r = run_main(["export", getattr(world, which), "--onnx", out], tmp_path)
    assert_refused(r, "export", "bare LSTM")
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- bad input
def _write_bad_inputs(d):
    """Bad input files in directory d; returns {name: path}."""
    f = {}
    f["empty"] = d / "empty.txt"
    f["empty"].write_bytes(b"")
    f["adir"] = d / "adir"
    f["adir"].mkdir()
    f["latin1"] = d / "latin1.txt"
    f["latin1"].write_bytes("caf\u00e9 au lait, cr\u00e8me br\u00fbl\u00e9e\n".encode("latin-1") * 5)
    f["bad_cell"] = d / "bad_cell.csv"
    f["bad_cell"].write_text("t,y\n0,1.0\n1,2.0\n2,abc\n3,4.0\n4,5.0\n")  # row 4
    f["nan_csv"] = d / "nan.csv"
    f["nan_csv"].write_text("t,y\n0,1.0\n1,nan\n2,3.0\n3,4.0\n")  # row 3
    f["short_csv"] = d / "short.csv"
    f["short_csv"].write_text("t,y\n" + "".join("%d,%d\n" % (i, i) for i in range(5)))
    X, lengths, y = toy_classification(4, n=8)
    Xn = X.copy()
    Xn[2, lengths[2] - 1, 1] = np.nan
    f["nan_npz"] = d / "nan.npz"
    np.savez(f["nan_npz"], X=Xn, lengths=lengths, y=y)
    f["no_y"] = d / "no_y.npz"
    np.savez(f["no_y"], X=X, lengths=lengths)
    f["len0"] = d / "len0.npz"
    np.savez(f["len0"], X=X, lengths=np.where(np.arange(8) == 3, 0, lengths), y=y)
    f["len_big"] = d / "len_big.npz"
    np.savez(f["len_big"], X=X, lengths=np.where(np.arange(8) == 5, X.shape[1] + 1, lengths),
             y=y)
    f["d3"] = d / "d3.npz"
    np.savez(f["d3"], X=np.zeros((4, 5, 3)), lengths=np.full(4, 5), y=np.zeros(4, np.int64))
    f["label5"] = d / "label5.npz"
    np.savez(f["label5"], X=X, lengths=lengths, y=np.where(np.arange(8) == 0, 5, y))
    f["random"] = d / "random.bin"
    f["random"].write_bytes(np.random.default_rng(0).integers(0, 256, 400, np.uint8).tobytes())
    return f


@pytest.fixture(scope="module")
def bad(tmp_path_factory, world):
    f = _write_bad_inputs(tmp_path_factory.mktemp("bad"))
    # the character model's checkpoint cut short, as an interrupted copy leaves it
    whole = open(str(world.char).replace(".safetensors", ".ckpt.npz"), "rb").read()
    f["cut_ckpt"] = f["adir"].parent / "cut.ckpt.npz"
    f["cut_ckpt"].write_bytes(whole[: len(whole) // 2])
    return f


# (command, argv after the command with {placeholders}, needles for the message)
BAD_CASES = {
    "text_missing": ("train", ["--text", "{data}/nope.txt"], ["nope.txt", "no such file"]),
    "text_empty": ("train", ["--text", "{empty}"], ["empty"]),
    "text_directory": ("train", ["--text", "{adir}"], ["directory"]),
    "text_not_utf8": ("train", ["--text", "{latin1}"], ["UTF-8"]),
    "csv_missing": ("train", ["--csv", "{data}/nope.csv", "--column", "y"], ["no such file"]),
    "csv_empty": ("train", ["--csv", "{empty}", "--column", "y"], ["empty"]),
    "csv_bad_column": ("train", ["--csv", "{csv}", "--column", "price"],
                       ["price", "'t'", "'y'"]),
    "csv_not_a_number": ("train", ["--csv", "{bad_cell}", "--column", "y"], ["row 4", "abc"]),
    "csv_nan": ("train", ["--csv", "{nan_csv}", "--column", "y"], ["row 3"]),
    "npz_missing": ("train", ["--npz", "{data}/nope.npz"], ["no such file"]),
    "npz_directory": ("train", ["--npz", "{adir}"], ["directory"]),
    "npz_not_npz": ("train", ["--npz", "{random}"], ["random.bin"]),
    "npz_nan_valid_step": ("train", ["--npz", "{nan_npz}"], ["NaN"]),
    "npz_no_y": ("train", ["--npz", "{no_y}"], ["missing", "y"]),
    "npz_length_0": ("train", ["--npz", "{len0}"], ["lengths"]),
    "npz_length_over_T": ("train", ["--npz", "{len_big}"], ["lengths"]),
    "two_sources": ("train", ["--text", "{text}", "--csv", "{csv}", "--column", "y"],
                    ["--text", "--csv"]),
    "text_and_npz": ("train", ["--text", "{text}", "--npz", "{npz}"], ["--npz"]),
    "column_without_csv": ("train", ["--text", "{text}", "--column", "y"], ["--column"]),
    "csv_without_column": ("train", ["--csv", "{csv}"], ["--column"]),
    "dropout_one_layer": ("train", ["--text", "{text}", "--dropout", "0.2"], ["--layers"]),
    "out_dir_missing": ("train", ["--text", "{text}", "--out", "{out}/no/m.safetensors"],
                        ["does not exist"]),
    "plot_dir_missing": ("train", ["--text", "{text}", "--plot", "{out}/no/loss.png"],
                         ["--plot", "does not exist"]),
    "plot_is_a_directory": ("train", ["--text", "{text}", "--plot", "{adir}"],
                            ["--plot", "directory"]),
    "forecast_plot_dir_missing": ("forecast", ["{forecaster}", "--csv", "{csv}", "--plot",
                                               "{out}/no/f.png"], ["--plot", "does not exist"]),
    "resume_missing": ("train", ["--text", "{text}", "--resume", "{data}/nope.ckpt.npz"],
                       ["nope.ckpt.npz"]),
    "resume_other_data": ("train", ["--csv", "{csv}", "--column", "y", "--resume",
                                    "{char_ckpt}"], ["differ"]),
    "resume_truncated": ("train", ["--text", "{text}", "--resume", "{cut_ckpt}"],
                         ["cut.ckpt.npz", "truncated or corrupted"]),
    "resume_model_file": ("train", ["--text", "{text}", "--resume", "{char}"],
                          ["char.safetensors", "model file, not a checkpoint"]),
    "resume_empty": ("train", ["--text", "{text}", "--resume", "{empty}"],
                     ["empty.txt", "empty"]),
    "sample_forecaster": ("sample", ["{forecaster}"], ["not a character model"]),
    "sample_classifier": ("sample", ["{classifier}"], ["not a character model"]),
    "sample_bare": ("sample", ["{bare}"], ["not a character model"]),
    "sample_random_bytes": ("sample", ["{random}"], ["random.bin"]),
    "sample_missing_model": ("sample", ["{data}/nope.safetensors"], ["nope.safetensors"]),
    "sample_prime_outside_vocab": ("sample", ["{char}", "--prime", "XYZ"], ["X"]),
    "forecast_char_model": ("forecast", ["{char}", "--csv", "{csv}"], ["not a forecasting"]),
    "forecast_classifier": ("forecast", ["{classifier}", "--csv", "{csv}"],
                            ["not a forecasting"]),
    "forecast_bad_column": ("forecast", ["{forecaster}", "--csv", "{csv}", "--column", "z"],
                            ["'z'", "'t'", "'y'"]),
    "forecast_short_series": ("forecast", ["{forecaster}", "--csv", "{short_csv}", "--column",
                                           "y"], ["window"]),
    "forecast_missing_model": ("forecast", ["{data}/nope.safetensors", "--csv", "{csv}"],
                               ["nope.safetensors"]),
    "evaluate_char_model": ("evaluate", ["{char}", "--npz", "{npz}"],
                            ["not a classification"]),
    "evaluate_forecaster": ("evaluate", ["{forecaster}", "--npz", "{npz}"],
                            ["not a classification"]),
    "evaluate_random_bytes": ("evaluate", ["{random}", "--npz", "{npz}"], ["random.bin"]),
    "evaluate_wrong_D": ("evaluate", ["{classifier}", "--npz", "{d3}"], ["D = 3"]),
    "evaluate_label_out_of_range": ("evaluate", ["{classifier}", "--npz", "{label5}"],
                                    ["label 5"]),
    "evaluate_nan_npz": ("evaluate", ["{classifier}", "--npz", "{nan_npz}"], ["NaN"]),
    "info_random_bytes": ("info", ["{random}"], ["random.bin"]),
    "info_missing": ("info", ["{data}/nope.safetensors"], ["nope.safetensors"]),
    "info_directory": ("info", ["{adir}"], ["directory"]),
    "info_empty": ("info", ["{empty}"], ["empty.txt"]),
    "export_missing": ("export", ["{data}/nope.safetensors", "--onnx", "{out}/x.onnx"],
                       ["nope.safetensors"]),
}


def _fill(argv, world, bad, out):
    names = dict(data=world.data, text=world.text, csv=world.csv, npz=world.npz,
                 char=world.char, forecaster=world.forecaster, classifier=world.classifier,
                 bare=world.bare, char_ckpt=str(world.char).replace(".safetensors", ".ckpt.npz"),
                 out=out, **bad)
    return [a.format(**{k: str(v) for k, v in names.items()}) for a in argv]


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_refused(case, world, bad, tmp_path):
    command, argv, needles = BAD_CASES[case]
    out = tmp_path / "out"
    out.mkdir()
    argv = _fill(argv, world, bad, out)
    if command == "train":
        argv += [] if "--out" in argv else ["--out", str(out / "m.safetensors")]
        argv += ["--threads", "1", "--no-progress", "--hidden", "8"]
    r = run_main([command] + argv, out)
    assert_refused(r, command, *needles)
    assert os.listdir(out) == [], "written despite the error: %s" % os.listdir(out)
    assert tmp_files(tmp_path, world.data, bad["adir"].parent,
                     os.path.dirname(world.char)) == []


@pytest.mark.parametrize("case", ["text_not_utf8", "csv_bad_column", "sample_random_bytes",
                                  "evaluate_char_model", "dropout_one_layer"])
def test_bad_input_refused_by_the_real_process(case, world, bad, tmp_path):
    """The same, through the console script: one stderr line, no traceback."""
    command, argv, needles = BAD_CASES[case]
    out = tmp_path / "out"
    out.mkdir()
    argv = _fill(argv, world, bad, out)
    if command == "train":
        argv += ["--out", str(out / "m.safetensors"), "--threads", "1", "--no-progress"]
    r = run_proc([command] + argv, out, module=False)
    assert_refused(r, command, *needles)
    assert os.listdir(out) == []


MARKER_MODULE = '''
import os
import pickle


def touch(path):
    with open(path, "w") as f:
        f.write("unpickled")
    return 0.0


class Payload:
    """Unpickling this calls touch(path): a marker that pickle ran."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (touch, (self.path,))
'''


def test_npz_needing_pickle_is_never_unpickled(world, tmp_path):
    helper = tmp_path / "helper"
    helper.mkdir()
    (helper / "clstm_cli_test_payload.py").write_text(textwrap.dedent(MARKER_MODULE))
    marker = tmp_path / "UNPICKLED"
    sys.path.insert(0, str(helper))
    try:
        import clstm_cli_test_payload as payload
        X = np.empty((2, 3, 1), dtype=object)
        for i in np.ndindex(X.shape):
            X[i] = payload.Payload(str(marker))
        evil = tmp_path / "evil.npz"
        np.savez(evil, X=X, lengths=np.array([3, 3]), y=np.array([0, 1]))
    finally:
        sys.path.remove(str(helper))
        sys.modules.pop("clstm_cli_test_payload", None)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(helper)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]))
    # the control: loading it with pickle allowed does create the marker
    load = "import numpy as np, sys; np.load(sys.argv[1], allow_pickle=True)['X']"
    subprocess.run([sys.executable, "-c", load, str(evil)],
                   check=True, env=env, cwd=tmp_path, timeout=60)
    assert marker.exists(), "the payload is inert: the test proves nothing"
    marker.unlink()
    out = tmp_path / "out"
    out.mkdir()
    r = run_proc(["train", "--npz", evil, "--out", out / "m.safetensors", "--threads", "1",
                  "--no-progress"], out, env=env)
    assert_refused(r, "train", "pickle")
    assert not marker.exists(), "clstm train unpickled the npz"
    r = run_proc(["evaluate", world.classifier, "--npz", evil], out, env=env)
    assert_refused(r, "evaluate", "pickle")
    assert not marker.exists(), "clstm evaluate unpickled the npz"
    # a checkpoint to --resume is an npz too
    r = run_proc(["train", "--text", world.text, "--out", out / "m.safetensors", "--resume",
                  evil, "--threads", "1", "--no-progress"], out, env=env)
    assert_refused(r, "train", "evil.npz")
    assert not marker.exists(), "clstm train --resume unpickled the checkpoint"
    # a bare pickle (not a zip at all) named .npz
    raw = tmp_path / "raw.npz"
    sys.path.insert(0, str(helper))
    try:
        import clstm_cli_test_payload as payload
        raw.write_bytes(pickle.dumps([payload.Payload(str(marker))]))
    finally:
        sys.path.remove(str(helper))
        sys.modules.pop("clstm_cli_test_payload", None)
    r = run_proc(["train", "--npz", raw, "--out", out / "m.safetensors", "--threads", "1",
                  "--no-progress"], out, env=env)
    assert_refused(r, "train", "raw.npz")
    assert not marker.exists(), "clstm train unpickled a bare pickle"
    assert os.listdir(out) == []
    assert tmp_files(tmp_path) == []


# ------------------------------------------- bugs found by these tests, fixed
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_npy_file_given_as_npz_refused(command, world, tmp_path):
    npy = tmp_path / "x.npy"
    np.save(npy, toy_classification(0, n=8)[0])
    out = tmp_path / "out"
    out.mkdir()
    argv = (["train", "--npz", npy, "--out", out / "m.safetensors", "--threads", "1",
             "--no-progress"] if command == "train"
            else ["evaluate", world.classifier, "--npz", npy])
    r = run_main(argv, out)  # today: TypeError escapes main()
    assert_refused(r, command, "x.npy")
    assert os.listdir(out) == []


@pytest.mark.parametrize("option", ["--out", "--checkpoint", "--log"])
def test_output_path_that_is_a_directory_refused(option, world, tmp_path):
    target = tmp_path / "adir"
    target.mkdir()
    argv = ["train", "--text", world.text, "--max-steps", "12", "--eval-every", "10"]
    argv += SMALL_CHAR
    argv += [option, target] if option == "--out" else [
        "--out", tmp_path / "m.safetensors", option, target]
    r = run_main(argv, tmp_path)  # today: the OSError escapes main()
    assert_refused(r, "train", "directory")
    assert sorted(os.listdir(tmp_path)) == ["adir"] and os.listdir(target) == []


def test_forecast_series_of_window_plus_horizon(world, tmp_path):
    short = tmp_path / "s12.csv"
    short.write_text("y\n" + "".join("%.6f\n" % v for v in series_values(12)))
    r = run_main(["forecast", world.forecaster, "--csv", short], tmp_path)  # window 10, h 2
    assert_ok(r)
    assert r.err == ""
    assert r.out.splitlines()[0] == "forecast of the next 2 values after the last of 12:"


def test_csv_with_utf8_bom(tmp_path):
    bom = tmp_path / "bom.csv"
    bom.write_bytes(b"\xef\xbb\xbft,y\n" + b"".join(b"%d,%d\n" % (i, i % 3) for i in range(40)))
    r = run_main(["train", "--csv", bom, "--column", "t", "--window", "5", "--hidden", "4",
                  "--epochs", "1", "--threads", "1", "--no-progress", "--out",
                  tmp_path / "m.safetensors"], tmp_path)
    assert_ok(r)


def _limit_memory():
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def test_npz_huge_label_refused(tmp_path):
    X, lengths, y = toy_classification(0, n=8)
    y[0] = 10 ** 9
    npz = tmp_path / "huge.npz"
    np.savez(npz, X=X, lengths=lengths, y=y)
    out = tmp_path / "out"
    out.mkdir()
    # a subprocess under a 3 GiB address-space limit: never exhausts the machine
    p = subprocess.run([sys.executable, "-m", "clstm", "train", "--npz", str(npz), "--out",
                        str(out / "m.safetensors"), "--hidden", "4", "--threads", "1",
                        "--no-progress"], cwd=out, capture_output=True, text=True,
                       timeout=60, preexec_fn=_limit_memory)
    assert_refused(Result(p.returncode, p.stdout, p.stderr), "train", "label")
    assert os.listdir(out) == []


# ------------------------------------------------------------------ Ctrl-C
def test_ctrl_c_checkpoints_and_resume_matches_uninterrupted(tmp_path):
    big = write_words(tmp_path / "big.txt", 6000, seed=1)
    args = ["train", "--text", big, "--hidden", "256", "--batch", "16", "--bptt", "32",
            "--epochs", "2", "--sample-every", "0", "--checkpoint-every", "0", "--threads", "1",
            "--seed", "3", "--no-progress"]
    ref_dir, run_dir = tmp_path / "ref", tmp_path / "run"
    ref_dir.mkdir()
    run_dir.mkdir()
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    exe = [sys.executable, "-m", "clstm"]
    # the uninterrupted run, alongside (one thread each)
    ref = subprocess.Popen(exe + [str(a) for a in args + ["--out", ref_dir / "m.safetensors"]],
                           cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=env)
    try:
        p = subprocess.Popen(exe + [str(a) for a in args + ["--out", run_dir / "m.safetensors"]],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, env=env)
        try:
            banner = p.stdout.readline()
            assert "training a character model" in banner, banner
            log = run_dir / "m.log.jsonl"
            deadline = time.monotonic() + 60
            while not log.exists():  # the first evaluation: steps are being taken
                assert p.poll() is None, "training ended before the first evaluation"
                assert time.monotonic() < deadline, "no log after 60 s"
                time.sleep(0.02)
            time.sleep(0.3)
            p.send_signal(signal.SIGINT)
            out, err = p.communicate(timeout=60)
        finally:
            if p.poll() is None:
                p.kill()
                p.wait()
        assert p.returncode == EXIT_INTERRUPTED, "exit %r\n%s\n%s" % (p.returncode, out, err)
        assert "Traceback" not in out + err
        assert "--resume" in err and "clstm train:" in err
        ckpt = run_dir / "m.ckpt.npz"
        _, _, meta = TR.load_checkpoint(str(ckpt))
        total = 2 * meta["n_batches"]
        assert 0 < meta["step"] < total, "not interrupted mid-run: step %d of %d" % (
            meta["step"], total)
        assert str(ckpt) in err
        # the interrupted run's directory only: the reference run beside it
        # may be inside a save right now (its temporary file is checked below)
        assert tmp_files(run_dir) == []
        # resume to the end
        r = run_proc(args + ["--out", run_dir / "m.safetensors", "--resume", ckpt], tmp_path)
        assert_ok(r)
        assert "resuming" in r.out
        assert TR.load_checkpoint(str(ckpt))[2]["step"] == total
        _, ref_err = ref.communicate(timeout=120)
    finally:
        if ref.poll() is None:
            ref.kill()
            ref.wait()
    assert ref.returncode == 0, ref_err
    assert tmp_files(tmp_path) == []
    np.testing.assert_array_equal(params(run_dir / "m.safetensors"),
                                  params(ref_dir / "m.safetensors"))
    np.testing.assert_array_equal(
        TR.load_checkpoint(str(run_dir / "m.ckpt.npz"))[0].flat_parameters,
        TR.load_checkpoint(str(ref_dir / "m.ckpt.npz"))[0].flat_parameters)

    def losses(path):
        return [{k: v for k, v in json.loads(line).items() if k != "time"}
                for line in path.read_text().splitlines()]

    assert losses(run_dir / "m.log.jsonl") == losses(ref_dir / "m.log.jsonl")
    assert tmp_files(tmp_path) == []


def test_closed_pipe_ends_quietly(tmp_path):
    """`clstm sample ... | head -c 100`: no BrokenPipeError traceback, the
    shell's SIGPIPE status (141), nothing on stderr."""
    path = str(tmp_path / "char.safetensors")
    clstm.save(clstm.Model(vocab="ab \n", hidden_size=4, output_size=4, softmax=True, seed=1),
               path)
    p = subprocess.Popen([sys.executable, "-m", "clstm", "sample", path, "--length", "200000"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    head = p.stdout.read(100)  # the output is larger than a pipe's buffer
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == cli.EXIT_BROKEN_PIPE == 141, err
    assert len(head) == 100 and err == ""


# ------------------------------------------------- scripts: --json, --quiet
def json_lines(text):
    """Every line of text parsed as JSON (a test fails on any other line)."""
    assert text.endswith("\n"), repr(text[-80:])
    return [json.loads(line) for line in text.splitlines()]


def test_train_json_is_the_log_then_a_summary(world, tmp_path):
    """train --json: stdout is one JSON object per line, the evaluations (the
    log's records) as they happen, then the summary; the messages for a
    person go to stderr."""
    r = run_main(["train", "--text", world.text, "--out", tmp_path / "m.safetensors",
                  "--max-steps", "30", "--eval-every", "10", "--json", "--sample-every", "5"]
                 + SMALL_CHAR, tmp_path)
    assert_ok(r)
    objs = json_lines(r.out)
    evals, summary = objs[:-1], objs[-1]
    log = [json.loads(line) for line in (tmp_path / "m.log.jsonl").read_text().splitlines()]
    assert [o.pop("event") for o in evals] == ["evaluation"] * 3 and evals == log
    ckpt = TR.load_checkpoint(str(tmp_path / "m.ckpt.npz"))[2]
    assert summary["event"] == "summary" and summary["steps"] == ckpt["step"] == 30
    assert summary["model"] == str(tmp_path / "m.safetensors")
    assert summary["checkpoint"] == str(tmp_path / "m.ckpt.npz")
    assert summary["log"] == str(tmp_path / "m.log.jsonl")
    assert summary["selects"] == "val_loss"
    assert summary["best"] == min(rec["val_loss"] for rec in log) == ckpt["best_val"]
    assert summary["last"] == {k: log[-1][k] for k in ("train_loss", "val_loss")}
    assert summary["seconds"] > 0 and summary["total_steps"] > 30
    assert set(summary["sample"]) <= set(clstm.load(str(tmp_path / "m.safetensors")).vocab)
    assert "training a character model" in r.err and "done: 30 steps" in r.err
    assert "sample" not in r.err  # the samples during training are a person's, and off


def test_train_json_quiet_and_quiet(world, tmp_path):
    """--json --quiet: the JSON alone; --quiet: nothing at all, the files as usual."""
    base = ["train", "--text", world.text, "--max-steps", "20", "--eval-every", "10",
            "--sample-every", "5"] + [a for a in SMALL_CHAR if a != "--no-progress"]
    r = run_main(base + ["--out", tmp_path / "a.safetensors", "--json", "--quiet"], tmp_path)
    assert_ok(r)
    assert r.err == "" and [o["event"] for o in json_lines(r.out)] == ["evaluation"] * 2 + [
        "summary"]
    assert json_lines(r.out)[-1]["sample"] is None
    r = run_main(base + ["--out", tmp_path / "b.safetensors", "--quiet"], tmp_path)
    assert_ok(r)
    assert (r.out, r.err) == ("", "")
    np.testing.assert_array_equal(params(tmp_path / "a.safetensors"),
                                  params(tmp_path / "b.safetensors"))
    assert len((tmp_path / "b.log.jsonl").read_text().splitlines()) == 2
    assert TR.load_checkpoint(str(tmp_path / "b.ckpt.npz"))[2]["step"] == 20


def test_evaluate_json(world, tmp_path):
    text = run_main(["evaluate", world.classifier, "--npz", world.npz_test], tmp_path)
    r = run_main(["evaluate", world.classifier, "--npz", world.npz_test, "--json"], tmp_path)
    assert_ok(r)
    (obj,) = json_lines(r.out)
    cm = np.array(obj["confusion_matrix"])
    np.testing.assert_array_equal(cm, _confusion(text.out, 2))
    y = np.load(world.npz_test)["y"]
    assert obj["sequences"] == cm.sum() == len(y) and obj["classes"] == 2
    np.testing.assert_array_equal(cm.sum(1), np.bincount(y, minlength=2))
    assert obj["accuracy"] == pytest.approx(np.trace(cm) / cm.sum(), abs=1e-12)
    assert "%.3f" % obj["accuracy"] == ACCURACY.search(text.out).group(1)


def _forecast_text(out):
    return [float(re.fullmatch(r"t\+\d+: (\S+)", line).group(1))
            for line in out.splitlines() if line.startswith("t+")]


def test_forecast_json_and_quiet(world, tmp_path):
    text = run_main(["forecast", world.forecaster, "--csv", world.csv], tmp_path)
    r = run_main(["forecast", world.forecaster, "--csv", world.csv, "--json"], tmp_path)
    assert_ok(r)
    (obj,) = json_lines(r.out)
    values = series_values()
    assert (obj["column"], obj["values"], obj["window"], obj["horizon"]) == ("y", len(values),
                                                                            10, 2)
    np.testing.assert_allclose(obj["forecast"], _forecast_text(text.out), rtol=1e-5)
    assert obj["persistence"] == [pytest.approx(values[-1], abs=1e-9)] * 2
    m = re.search(r"over (\d+) windows: model (\S+), persistence (\S+)", text.out)
    assert obj["one_step_mse"]["windows"] == int(m.group(1))
    assert obj["one_step_mse"]["model"] == pytest.approx(float(m.group(2)), rel=1e-5)
    assert obj["one_step_mse"]["persistence"] == pytest.approx(float(m.group(3)), rel=1e-5)
    assert obj["plot"] is None
    r = run_main(["forecast", world.forecaster, "--csv", world.csv, "--quiet"], tmp_path)
    assert_ok(r)
    assert r.err == "" and r.out == "".join(line + "\n" for line in text.out.splitlines()
                                            if line.startswith("t+"))


def test_sample_info_quantize_export_json(world, tmp_path):
    plain = run_main(["sample", world.char, "--length", "50", "--seed", "3"], tmp_path).out
    r = run_main(["sample", world.char, "--length", "50", "--seed", "3", "--json"], tmp_path)
    assert_ok(r)
    assert json_lines(r.out) == [{"text": plain[:-1]}]
    for which in ("char", "bare"):
        path = getattr(world, which)
        r = run_main(["info", path, "--json"], tmp_path)
        assert_ok(r)
        (info,) = json_lines(r.out)
        model = clstm.load(str(path))
        assert info["bytes"] == os.path.getsize(path)
        assert info["parameters"] == model.flat_parameters.size
        assert (info["hidden_size"], info["dtype"], info["quantized"]) == (
            model.hidden_size, str(model.dtype), False)
        text = run_main(["info", path], tmp_path).out
        assert "kind: %s\n" % info["kind"] in text
        if which == "char":
            assert info["metadata"] == dict(model.metadata) and info["vocab"] == model.vocab
    q = tmp_path / "q.safetensors"
    r = run_main(["quantize", world.char, q, "--json"], tmp_path)
    assert_ok(r)
    assert json_lines(r.out) == [{"out": str(q), "bytes": os.path.getsize(q),
                                  "model": str(world.char),
                                  "model_bytes": os.path.getsize(world.char),
                                  "int8_kernel": clstm.int8_kernel()}]
    r = run_main(["quantize", world.char, tmp_path / "q2.safetensors", "--quiet"], tmp_path)
    assert_ok(r)
    assert (r.out, r.err) == ("", "") and clstm.load(str(tmp_path / "q2.safetensors")).quantized
    r = run_main(["export", world.char, "--c", tmp_path / "c", "--json"], tmp_path)
    assert_ok(r)
    (obj,) = json_lines(r.out)
    name = obj["prefix"]
    assert sorted(obj["files"]) == [str(tmp_path / "c" / (name + ext)) for ext in (".c", ".h")]
    assert sorted(os.listdir(tmp_path / "c")) == [name + ".c", name + ".h"]
    text = run_main(["export", world.char, "--c", tmp_path / "c1"], tmp_path).out
    assert text.endswith("(prefix %s_)\n" % name)
    r = run_main(["export", world.char, "--c", tmp_path / "c2", "--quiet"], tmp_path)
    assert_ok(r)
    assert (r.out, r.err) == ("", "") and sorted(os.listdir(tmp_path / "c2")) == [name + ".c",
                                                                                  name + ".h"]
    r = run_main(["export", world.bare, "--onnx", tmp_path / "b.onnx", "--json"], tmp_path)
    assert_ok(r)
    assert json_lines(r.out) == [{"files": [str(tmp_path / "b.onnx")]}]


def test_recognize_json(tmp_path):
    """recognize --json: one object per image, the text the plain command reads."""
    Image = pytest.importorskip("PIL.Image")
    alphabet = 'ab "\\é'
    m = clstm.Model(12, 6, 1, bidirectional=True, output_size=len(alphabet) + 1, seed=3)
    m.metadata.update(task="ctc", blank="0", line_height="12",
                      alphabet=json.dumps(alphabet, ensure_ascii=False))
    model = tmp_path / "ocr.safetensors"
    clstm.save(m, model)
    rng = np.random.default_rng(0)
    images = []
    for i, w in enumerate((30, 57)):
        images.append(tmp_path / ("l%d.png" % i))
        Image.fromarray(rng.integers(0, 256, (12, w)).astype(np.uint8)).save(images[-1])
    plain = run_main(["recognize", model] + images, tmp_path)
    assert_ok(plain)
    r = run_main(["recognize", model] + images + ["--json"], tmp_path)
    assert_ok(r)
    assert json_lines(r.out) == [{"image": str(p), "text": t}
                                 for p, t in zip(images, plain.out.split("\n"))]


@pytest.mark.parametrize("case", ["text_missing", "sample_forecaster", "forecast_bad_column",
                                  "evaluate_wrong_D", "info_random_bytes", "export_missing",
                                  "plot_dir_missing"])
def test_errors_with_json_stay_one_line_on_stderr(case, world, bad, tmp_path):
    """--json changes stdout only: an error is still one stderr line and exit
    status 2, with nothing on stdout."""
    command, argv, needles = BAD_CASES[case]
    out = tmp_path / "out"
    out.mkdir()
    argv = _fill(argv, world, bad, out) + ["--json"]
    if command == "train":
        argv += ["--out", str(out / "m.safetensors"), "--threads", "1", "--hidden", "8"]
    r = run_main([command] + argv, out)
    assert_refused(r, command, *needles)
    assert r.out == "" and os.listdir(out) == []


# ------------------------------------------------------------ exit statuses
def test_help_lists_every_exit_status(tmp_path):
    """Each EXIT_* constant of clstm.cli is in EXIT_CODES and in `clstm --help`."""
    constants = {k: v for k, v in vars(cli).items()
                 if k.startswith("EXIT_") and k != "EXIT_CODES"}
    assert {v for v in constants.values()} == {code for code, _ in cli.EXIT_CODES}
    assert len(cli.EXIT_CODES) == len(constants) >= 6
    assert (cli.EXIT_OK, cli.EXIT_BAD_INPUT, cli.EXIT_DIVERGED, cli.EXIT_INTERRUPTED,
            cli.EXIT_BROKEN_PIPE) == (0, EXIT_BAD_INPUT, EXIT_DIVERGED, EXIT_INTERRUPTED, 141)
    r = run_main(["--help"], tmp_path)
    assert r.rc == 0
    epilog = r.out[r.out.index("exit status:"):]
    listed = [int(m) for m in re.findall(r"^  (\d+) ", epilog, re.M)]
    assert listed == [code for code, _ in cli.EXIT_CODES]


def test_bad_option_exits_2(tmp_path):
    r = run_main(["train", "--no-such-option"], tmp_path)
    assert r.rc == EXIT_BAD_INPUT and "--no-such-option" in r.err


def test_diverging_training_exits_3(world, tmp_path):
    """A loss or gradient that becomes non-finite: one stderr line, status 3
    (not 2: the input was fine), also with --json (nothing on stdout)."""
    for extra in ([], ["--json"]):
        r = run_main(["train", "--csv", world.csv, "--column", "y", "--window", "10",
                      "--hidden", "8", "--lr", "1e30", "--max-steps", "20", "--threads", "1",
                      "--quiet", "--out", tmp_path / "d.safetensors"] + extra, tmp_path)
        assert r.rc == EXIT_DIVERGED, r
        assert r.out == "" and len(r.err.splitlines()) == 1, r
        assert r.err.startswith("clstm train: the ") and "became nan" in r.err
        assert "lower --lr" in r.err


# ----------------------------------------------------------------- plots
needs_matplotlib = pytest.mark.skipif(not _matplotlib(), reason="needs matplotlib")


@needs_matplotlib
def test_train_plot_draws_every_step_and_the_log(world, tmp_path):
    """What --plot draws (plots.training_curves of the run's per-step losses
    and records) against the log: the evaluations are the log's, and each
    record's train_loss is the mean of the steps drawn since the one before."""
    from clstm import plots
    r = run_main(["train", "--npz", world.npz, "--hidden", "8", "--epochs", "30",
                  "--max-steps", "150", "--eval-every", "40", "--threads", "1", "--no-progress",
                  "--plot", tmp_path / "loss.png", "--out", tmp_path / "m.safetensors"],
                 tmp_path)
    assert_ok(r)
    assert png_size(tmp_path / "loss.png") > (0, 0)
    losses = TR.load_checkpoint(str(tmp_path / "m.ckpt.npz"))[1]["losses"]
    log = [json.loads(line) for line in (tmp_path / "m.log.jsonl").read_text().splitlines()]
    c = plots.training_curves(losses, log)
    assert len(c["loss"]) == len(c["smoothed"]) == 150
    assert c["steps"][[0, -1]].tolist() == [1, 150]
    assert np.isfinite(c["loss"]).all() and np.isfinite(c["smoothed"]).all()
    assert c["val_steps"].tolist() == [rec["step"] for rec in log]
    assert c["val_loss"].tolist() == [rec["val_loss"] for rec in log]
    before = 0
    for rec in log:
        assert np.mean(c["loss"][before:rec["step"]]) == pytest.approx(rec["train_loss"],
                                                                     rel=1e-12)
        before = rec["step"]
    steps, pct = c["metrics"]["accuracy"]  # a classifier: its accuracy, in percent
    assert steps.tolist() == c["val_steps"].tolist()
    np.testing.assert_allclose(pct, [100 * rec["val_accuracy"] for rec in log])


@needs_matplotlib
def test_forecast_plot(world, tmp_path):
    """forecast --plot: a PNG of the data plots.forecast_curves gives, which is
    the CSV's series, the forecast printed and the last value carried forward."""
    from clstm import plots
    from clstm.tasks import ForecastTask
    png = tmp_path / "f.png"
    r = run_main(["forecast", world.forecaster, "--csv", world.csv, "--plot", png, "--json"],
                 tmp_path)
    assert_ok(r)
    (obj,) = json_lines(r.out)
    assert obj["plot"] == str(png) and png_size(png) > (0, 0)
    values = series_values()
    rows = list(csv.DictReader(open(world.csv)))
    c = plots.forecast_curves([float(row["y"]) for row in rows], obj["forecast"], 10)
    np.testing.assert_allclose(c["series"], values, atol=1e-9)
    assert c["t"].tolist() == list(range(len(values)))
    assert c["future_t"].tolist() == [len(values), len(values) + 1]
    assert c["forecast"].tolist() == obj["forecast"]
    assert c["persistence"].tolist() == [float(rows[-1]["y"])] * 2
    assert c["window_start"] == len(values) - 10
    model = clstm.load(str(world.forecaster))
    np.testing.assert_allclose(obj["forecast"], ForecastTask.forecast(
        model, c["series"], ForecastTask.settings(model)), rtol=1e-6)
