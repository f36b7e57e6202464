"""Accuracy of clstm's int8 models (clstm.quantize) against float32 on real
tasks: each float32 model is trained here, quantized, and both are scored
by the same evaluation code on the same held-out data (issue 16's targets).

  builtin      the character model `clstm train` makes (the Python manual's
               text, H = 256, one-hot input, softmax head), trained by the
               CLI itself for --builtin-epochs: validation nats/char, float32
               against int8 (target: within 1%)
  shakespeare  the same with --text ../shared/data/tinyshakespeare.txt for
               --shakespeare-epochs (bench/shakespeare.py trains longer and
               wider); skipped when the file is absent
  digits       scikit-learn's handwritten digits as sequences: the 8 rows of
               each 8x8 image are 8 steps of 8 features; H = 64, a fixed 30%
               test split, --seeds seeds: test accuracy (target: within 0.5
               points); skipped without scikit-learn (no multivariate
               time-series classification set ships inside the packages
               this benchmark otherwise needs)
  sunspots     bench/sunspots.py's one-step forecaster of yearly sunspot
               numbers (statsmodels' data, its split, window and settings,
               but float32), --seeds seeds: test RMSE (target: within 2%);
               skipped without statsmodels

For every trained model, the deviation from float32 of its LSTM (the same
tensors in a bare clstm.LSTM; inputs: one-hot rows of the validation text,
or the test sequences' features): clstm's int8 against ONNX Runtime's
(quantize_dynamic, QInt8 -> DynamicQuantizeLSTM, as bench/bench_peers.py),
max and mean |y - y_float32| (target: clstm's max at or below ORT's).
Skipped without onnxruntime. The whole model's outputs are compared as
well ("out max|d|", clstm only: logits, or sunspot numbers).

    python bench/quantized.py [--threads 1] [--quick] [--json PATH] [--markdown]

About 9 minutes at one thread with the defaults (most of it training the
two character models), --quick about 1. Prints the CPU and the int8 kernel.
Needs pip install 'pyclstm[bench]' scikit-learn for every task.
"""
import argparse
import contextlib
import io
import json
import os
import re
import sys
import tempfile
import time

import numpy as np

import clstm
from clstm import cli
from clstm import data as D
from clstm import train as TR

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench_peers  # noqa: E402  ort_int8_model, ort_session, cpuinfo
import shakespeare  # noqa: E402  the Tiny Shakespeare path
import sunspots  # noqa: E402  load_series, rmse

NATS_PCT, ACC_POINTS, RMSE_PCT = 1.0, 0.5, 2.0  # issue 16's targets


# ------------------------------------------------------------------ deviation
class Deviation:
    """A trained model's LSTM run three ways on the same inputs: float32
    clstm, clstm.quantize and ONNX Runtime's int8 (None without it)."""

    def __init__(self, threads):
        self.threads = threads
        try:
            bench_peers.load_peers()
        except ImportError:
            self.ort = False
            return
        self.ort = True
        bench_peers.torch.set_num_threads(threads)  # imported beside ORT; not used

    @staticmethod
    def bare_lstm(model):
        """A clstm.LSTM holding `model`'s LSTM tensors (no encoding, no head)."""
        lstm = clstm.LSTM(model.input_size, model.hidden_size, model.num_layers,
                          dtype=np.float32, seed=0)
        own = lstm.named_parameters()
        lstm.load_state_dict({k: v for k, v in model.state_dict().items() if k in own})
        return lstm

    def __call__(self, model, x):
        """{clstm: {max, mean}, ort: {max, mean} or None} of |y - y_float32|
        over x (T, B, D) float32."""
        from clstm.onnx import lstm_to_onnx
        lstm = self.bare_lstm(model)
        ref, _ = lstm.forward(x, train=False)
        got = {"clstm": clstm.quantize(lstm).forward(x, train=False)[0], "ort": None}
        if self.ort:
            sess = bench_peers.ort_session(bench_peers.ort_int8_model(lstm_to_onnx(lstm)),
                                           self.threads)
            got["ort"] = sess.run(None, {"X": x})[0]
        return {k: None if y is None else abs_dev(ref, y) for k, y in got.items()}


def abs_dev(ref, got):
    d = np.abs(np.asarray(got, np.float64) - np.asarray(ref, np.float64))
    return {"max": float(d.max()), "mean": float(d.mean())}


# ------------------------------------------------------------------ tasks
def quietly(fn, *args):
    """(fn(*args), what it printed, seconds): training prints a line per
    evaluation."""
    log = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(log):
        result = fn(*args)
    return result, log.getvalue(), time.perf_counter() - t0


def char_model(name, text_path, epochs, a, dev, tmp):
    """Train a character model with `clstm train` (its defaults: H = 256,
    one-hot, batch 32, bptt 100, Adam 2e-3, cosine), then score it and its
    int8 copy on the validation text (the last 10%) as the trainer does."""
    out = os.path.join(tmp, name + ".safetensors")
    argv = ["train", "--out", out, "--threads", str(a.threads), "--no-progress",
            "--epochs", str(epochs)] + (["--text", text_path] if text_path else [])
    if a.quick:
        argv += ["--max-steps", str(a.quick_steps)]
    rc, log, train_s = quietly(cli.main, argv)
    if rc != 0:
        raise SystemExit("clstm %s failed (exit %d):\n%s" % (" ".join(argv), rc, log))
    done = [line for line in log.splitlines() if line.startswith("done:")]
    print("  %s: %s" % (name, done[0] if done else "trained"), flush=True)
    model = clstm.load(out)
    text = D.read_text(text_path) if text_path else D.builtin_text()
    stream = D.TextStream(text, vocab=model.vocab, val_fraction=0.1)
    task = TR.LanguageModelTask(stream, 32, 100)
    q = clstm.quantize(model)
    f32, i8 = task.evaluate(model)["val_loss"], task.evaluate(q)["val_loss"]
    counts = np.bincount(stream.train, minlength=len(stream.vocab)) + 1e-12
    p = counts / counts.sum()
    unigram = float(-np.sum(p * np.log(p)))
    ids = D.stream_chunks(stream.val, 32, a.dev_steps)[0][0]  # (T, 32) validation ids
    x = np.eye(len(stream.vocab), dtype=np.float32)[ids]
    logits = (model.forward(ids, train=False)[0], q.forward(ids, train=False)[0])
    cmd = "clstm train%s --epochs %d%s" % (
        " --text tinyshakespeare.txt" if text_path else "", epochs,
        " --max-steps %d" % a.quick_steps if a.quick else "")
    steps = re.match(r"done: (\d+) steps", done[0]) if done else None
    return dict(task=name, command=cmd, steps=int(steps.group(1)) if steps else None,
                parameters=int(model.flat_parameters.size), train_s=round(train_s, 1),
                metric="val nats/char", float32=f32, int8=i8,
                change_pct=100 * (i8 - f32) / f32, target_pct=NATS_PCT,
                holds=abs(i8 - f32) / f32 <= NATS_PCT / 100, unigram_nats=unigram,
                lstm_dev=dev(model, x), out_dev=abs_dev(*logits),
                dev_inputs="one-hot validation text, T=%d B=32" % ids.shape[0],
                done=done[0] if done else None)


def load_digits():
    try:
        from sklearn.datasets import load_digits as load
    except ImportError:
        return None
    d = load()
    X = (d.images / 16.0).astype(np.float32)  # (N, 8 rows = steps, 8 columns = features)
    return D.Sequences(X, np.full(len(X), 8, dtype=np.int64), d.target.astype(np.int64))


def digits(a, dev, tmp):
    seqs = load_digits()
    if seqs is None:
        return {"task": "digits", "skipped": "scikit-learn is not installed"}
    rest, test = seqs.split(0.3, np.random.default_rng(0))  # the same test set every seed
    runs = []
    for seed in range(a.seeds):
        train, val = rest.split(0.1, np.random.default_rng(seed))
        task = TR.SequenceTask(train, val, batch_size=32, kind="classify")
        model = clstm.Model(8, 64, output_size=10, softmax=True, seed=seed)
        out = os.path.join(tmp, "digits%d.safetensors" % seed)
        trainer = TR.Trainer(model, task, lr=2e-3, epochs=a.digits_epochs, patience=5,
                             progress=False, seed=seed, out=out)
        _, _, train_s = quietly(trainer.fit)
        best = clstm.load(out)
        q = clstm.quantize(best)
        f32 = 100 * task.evaluate(best, test)["val_accuracy"]
        i8 = 100 * task.evaluate(q, test)["val_accuracy"]
        x = np.ascontiguousarray(test.X.transpose(1, 0, 2))
        runs.append(dict(seed=seed, float32=f32, int8=i8, train_s=round(train_s, 1),
                         flipped=int(np.sum(task.predict(best, test).argmax(1)
                                            != task.predict(q, test).argmax(1))),
                         lstm_dev=dev(best, x),
                         out_dev=abs_dev(task.predict(best, test), task.predict(q, test))))
        print("  digits seed %d: accuracy %.2f%% float32, %.2f%% int8" % (seed, f32, i8),
              flush=True)
    worst = max(abs(r["int8"] - r["float32"]) for r in runs)
    return dict(task="digits", command="8 rows x 8 features, H=64, %d test images" % len(test),
                metric="test accuracy %", runs=runs, **summary(runs),
                change_points=float(np.mean([r["int8"] - r["float32"] for r in runs])),
                worst_points=worst, target_points=ACC_POINTS, holds=worst <= ACC_POINTS)


def sunspot(a, dev, tmp):
    series = sunspots.load_series()
    if series is None:
        return {"task": "sunspots", "skipped": "statsmodels is not installed"}
    W, n = 20, len(series)  # bench/sunspots.py's window and split
    start = int(n * 0.8)
    mean, std = series[:start].mean(), series[:start].std()
    z = (series - mean) / std
    seqs = D.windows(z[:start], W, 1)
    n_val = max(1, len(seqs) // 10)
    tr = seqs.subset(np.arange(len(seqs) - n_val))
    va = seqs.subset(np.arange(len(seqs) - n_val, len(seqs)))
    test = D.windows(z[start - W:], W, 1)
    actual = series[start:]
    runs = []
    for seed in range(a.seeds):
        task = TR.SequenceTask(tr, va, batch_size=32, kind="regress")
        model = clstm.Model(1, 32, output_size=1, seed=seed)
        out = os.path.join(tmp, "sunspots%d.safetensors" % seed)
        trainer = TR.Trainer(model, task, lr=3e-3, epochs=a.sunspots_epochs, patience=30,
                             progress=False, seed=seed, clip=1.0, out=out)
        _, _, train_s = quietly(trainer.fit)
        best = clstm.load(out)
        q = clstm.quantize(best)
        pf, pq = (task.predict(m, test)[:, 0] * std + mean for m in (best, q))
        f32, i8 = sunspots.rmse(pf, actual), sunspots.rmse(pq, actual)
        x = np.ascontiguousarray(test.X.transpose(1, 0, 2)).astype(np.float32)
        runs.append(dict(seed=seed, float32=f32, int8=i8, train_s=round(train_s, 1),
                         lstm_dev=dev(best, x), out_dev=abs_dev(pf, pq)))
        print("  sunspots seed %d: RMSE %.3f float32, %.3f int8" % (seed, f32, i8), flush=True)
    rel = [100 * (r["int8"] - r["float32"]) / r["float32"] for r in runs]
    worst = max(abs(v) for v in rel)
    return dict(task="sunspots", command="bench/sunspots.py's H=32, window 20, float32; "
                "%d test years" % len(actual), metric="test RMSE", runs=runs, **summary(runs),
                change_pct=float(np.mean(rel)), worst_pct=worst, target_pct=RMSE_PCT,
                holds=worst <= RMSE_PCT)


def summary(runs):
    """Means over the seeds; the deviations' largest max and mean of means."""
    def worst(devs):
        return {"max": max(d["max"] for d in devs),
                "mean": float(np.mean([d["mean"] for d in devs]))}
    lstm = {who: None if runs[0]["lstm_dev"][who] is None else
            worst([r["lstm_dev"][who] for r in runs]) for who in ("clstm", "ort")}
    return dict(float32=float(np.mean([r["float32"] for r in runs])),
                int8=float(np.mean([r["int8"] for r in runs])),
                lstm_dev=lstm, out_dev=worst([r["out_dev"] for r in runs]))


# ------------------------------------------------------------------ report
def dev_holds(r):
    """clstm's max deviation at or below ORT's in every run (None without ORT)."""
    runs = r.get("runs") or [r]
    if any(x["lstm_dev"]["ort"] is None for x in runs):
        return None
    return all(x["lstm_dev"]["clstm"]["max"] <= x["lstm_dev"]["ort"]["max"] for x in runs)


def change_text(r):
    """The int8 change and its target, as a cell."""
    if "change_points" in r:
        return "%+.2f points (worst seed %.2f; target <= %.1f)" % (
            r["change_points"], r["worst_points"], r["target_points"])
    if "worst_pct" in r:
        return "%+.2f%% (worst seed %.2f%%; target <= %.0f%%)" % (
            r["change_pct"], r["worst_pct"], r["target_pct"])
    return "%+.3f%% (target <= %.0f%%)" % (r["change_pct"], r["target_pct"])


def dev_text(d, key):
    c, o = d["clstm"][key], d["ort"]
    return "%.2g / %s" % (c, "-" if o is None else "%.2g" % o[key])


def yes(v):
    return "n/a" if v is None else ("yes" if v else "NO")


def fmt(v, metric):
    return "%.2f" % v if "accuracy" in metric else "%.4f" % v if "nats" in metric else "%.3f" % v


def rows(results):
    for r in results:
        if "skipped" in r:
            yield r, None
            continue
        seeds = " (mean of %d seeds)" % len(r["runs"]) if len(r.get("runs", ())) > 1 else ""
        yield r, [r["task"], r["metric"] + seeds, fmt(r["float32"], r["metric"]),
                  fmt(r["int8"], r["metric"]), change_text(r), yes(r["holds"]),
                  dev_text(r["lstm_dev"], "max"), dev_text(r["lstm_dev"], "mean"),
                  yes(dev_holds(r)), "%.2g" % r["out_dev"]["max"]]


HEAD = ["task", "metric", "float32", "int8", "int8 change", "ok", "LSTM max|dy| clstm/ORT",
        "mean|dy| clstm/ORT", "ok", "out max|d|"]


def print_table(results, info):
    print("\nCPU %s; int8 kernel %s; %d thread(s); %.0f s in all"
          % (info["cpu"], info["int8_kernel"], info["threads"], info["wall_s"]))
    table = [row for _, row in rows(results) if row]
    widths = [max(len(str(x)) for x in col) for col in zip(HEAD, *table)]
    for row in [HEAD] + table:
        print("  ".join(str(x).ljust(w) for x, w in zip(row, widths)))
    for r, row in rows(results):
        if row is None:
            print("%s: skipped (%s)" % (r["task"], r["skipped"]))


def markdown(results, info, argv):
    cmd = "python bench/quantized.py" + "".join(" " + x for x in argv)
    lines = ["`%s`: %s, %d thread(s), int8 kernel `%s`, %.0f s in all. float32 models "
             "trained here, then `clstm.quantize`; the same evaluation code scores both. "
             "Deviations: the model's LSTM (a bare `clstm.LSTM` of its tensors) against "
             "float32, clstm's int8 and ONNX Runtime's (`quantize_dynamic`, QInt8), on the "
             "same inputs." % (cmd, info["cpu"], info["threads"], info["int8_kernel"],
                               info["wall_s"]), "",
             "| task (training) | metric | float32 | int8 | int8 change (target) "
             "| LSTM max \\|Δy\\| clstm / ORT int8 | mean \\|Δy\\| clstm / ORT |",
             "| --- | --- | --- | --- | --- | --- | --- |"]
    for r, row in rows(results):
        if row is None:
            lines.append("| %s | skipped: %s | | | | | |" % (r["task"], r["skipped"]))
            continue
        what = r["command"]
        if r["task"] in ("builtin", "shakespeare"):
            what = "`%s` (%d steps, %.2f M parameters; unigram entropy %.2f)" % (
                r["command"], r["steps"] or 0, r["parameters"] / 1e6, r["unigram_nats"])
        lines.append("| %s: %s | %s | %s | %s | %s | %s | %s |" % (
            r["task"], what, row[1], row[2], row[3], row[4], row[6], row[7]))
    return "\n".join(lines)


# ------------------------------------------------------------------ main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: every task trained briefly, one seed")
    p.add_argument("--only", default="builtin,shakespeare,digits,sunspots",
                   help="comma-separated tasks")
    p.add_argument("--text", default=shakespeare.DEFAULT, help="Tiny Shakespeare")
    p.add_argument("--builtin-epochs", type=int, default=10)
    p.add_argument("--shakespeare-epochs", type=int, default=4)
    p.add_argument("--digits-epochs", type=int, default=40)
    p.add_argument("--sunspots-epochs", type=int, default=300)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--dev-steps", type=int, default=1000,
                   help="time steps of validation text in the deviation inputs (B = 32)")
    p.add_argument("--json", help="write every number here")
    p.add_argument("--keep", metavar="DIR", help="keep the trained float32 models there")
    p.add_argument("--markdown", action="store_true", help="print a README table too")
    a = p.parse_args(argv)
    if a.quick:
        a.builtin_epochs = a.shakespeare_epochs = 1
        a.quick_steps = 100
        a.seeds, a.digits_epochs, a.sunspots_epochs, a.dev_steps = 1, 5, 40, 200
    return a


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    a = parse_args(argv)
    clstm.set_num_threads(a.threads)
    dev = Deviation(a.threads)
    info = dict(cpu=bench_peers.cpuinfo()[0], int8_kernel=clstm.int8_kernel(),
                threads=a.threads, clstm=clstm.__version__, quick=a.quick,
                onnxruntime=bench_peers.ort.__version__ if dev.ort else None)
    print("CPU %s; int8 kernel %s; %d thread(s)%s" % (
        info["cpu"], info["int8_kernel"], a.threads,
        "" if dev.ort else "; onnxruntime is not installed: no ORT column"), flush=True)
    t0 = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        if a.keep:
            os.makedirs(a.keep, exist_ok=True)
            tmp = a.keep
        for name in a.only.split(","):
            t = time.perf_counter()
            if name == "builtin":
                r = char_model("builtin", None, a.builtin_epochs, a, dev, tmp)
            elif name == "shakespeare":
                r = (char_model("shakespeare", a.text, a.shakespeare_epochs, a, dev, tmp)
                     if os.path.exists(a.text) else
                     {"task": "shakespeare", "skipped": "%s not found" % a.text})
            elif name == "digits":
                r = digits(a, dev, tmp)
            elif name == "sunspots":
                r = sunspot(a, dev, tmp)
            else:
                raise SystemExit("--only: unknown task %r" % name)
            r["wall_s"] = round(time.perf_counter() - t, 1)
            results.append(r)
    info["wall_s"] = time.perf_counter() - t0
    print_table(results, info)
    if a.markdown:
        print("\n" + markdown(results, info, argv))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(info=info, argv=argv, results=results), f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
