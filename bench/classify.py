"""Sequence classification with `clstm train --npz`: test accuracy over
seeds on public multivariate time-series sets, against a 1-nearest-neighbour
classifier with dynamic time warping computed here.

The data sets are UEA archive sets that sktime ships inside its wheel (.ts
files under sktime/datasets/data; nothing is downloaded at run time): pip
install 'pyclstm[bench]'. Only the files are read, by the small .ts parser
below; sktime itself is never imported (aeon's wheel holds the same files
and serves as well).

    python bench/classify.py [--sets BasicMotions JapaneseVowels] [--seeds 5]
                             [--threads 1] [--markdown FILE]
    python bench/classify.py --holdout 0.3 --recipe NAME=FLAGS ...

Each set's TRAIN file is converted to clstm's .npz (X (N, T_max, D),
lengths, y) and trained on with the command line's defaults, and with the
recipe of clstm 0.1's defaults (OLD below) for comparison, one run per seed
(--seed s); each model is scored by `clstm evaluate` on the TEST file. The
baseline is 1-NN DTW_D on the raw data: dependent multivariate DTW (one
warping path for all dimensions), full window, squared Euclidean local cost
(the sum over the D dimensions), the distance the path's summed cost.

--holdout F: the model selection mode used to choose the defaults. The TEST
files are not read; a stratified share F of each TRAIN file (its own seed)
is held out and scored instead, for each --recipe NAME=FLAGS (the flags of
`clstm train`, e.g. "epochs40=--epochs 40"), so no choice sees a test set.
"""
import argparse
import contextlib
import importlib.util
import io
import os
import re
import shlex
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from machine import cpu_model  # noqa: E402

import clstm  # noqa: E402
from clstm import cli  # noqa: E402

# clstm 0.1's defaults for --npz, spelled out: 10 epochs, H = 64, one
# direction, the features as given, no early stopping
OLD = "--epochs 10 --hidden 64 --no-bidirectional --no-standardize"
SETS = ("BasicMotions", "JapaneseVowels")


def data_folder():
    """The folder of .ts files inside an installed sktime (or aeon)."""
    for package in ("sktime", "aeon"):
        spec = importlib.util.find_spec(package)  # finds, does not import
        if spec is not None and spec.submodule_search_locations:
            folder = os.path.join(list(spec.submodule_search_locations)[0], "datasets", "data")
            if os.path.isdir(folder):
                return folder
    return None


def read_ts(path):
    """A classification .ts file: X (N, T_max, D) float64 padded with 0,
    lengths (N,), labels (N,) str, and the class labels its header lists
    (in order). Each case is one line of D dimensions separated by ':',
    each dimension comma-separated values of one length, and the label
    last."""
    classes, rows, in_data = None, [], False
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if not in_data:
                key = line.split()[0].lower()
                if key == "@classlabel":
                    words = line.split()
                    if words[1].lower() != "true":
                        raise ValueError("%s: not a classification set" % path)
                    classes = words[2:]
                elif key == "@data":
                    in_data = True
                continue
            *dims, label = line.split(":")
            series = [np.array(d.split(","), dtype=np.float64) for d in dims]
            if len({len(s) for s in series}) != 1:
                raise ValueError("%s: a case whose dimensions differ in length" % path)
            rows.append((np.stack(series, axis=1), label.strip()))
    if not rows or classes is None:
        raise ValueError("%s: no @classLabel header or no cases" % path)
    lengths = np.array([len(x) for x, _ in rows], np.int64)
    X = np.zeros((len(rows), lengths.max(), rows[0][0].shape[1]))
    for i, (x, _) in enumerate(rows):
        X[i, :len(x)] = x
    if not np.all(np.isfinite(X)):
        raise ValueError("%s: missing values" % path)
    return X, lengths, np.array([label for _, label in rows]), classes


def load_set(folder, name):
    """{"train": (X, lengths, y), "test": ...} with y class ids in the
    header's order."""
    out = {}
    for part in ("train", "test"):
        X, lengths, labels, classes = read_ts(os.path.join(folder, name, "%s_%s.ts"
                                                           % (name, part.upper())))
        index = {c: i for i, c in enumerate(classes)}
        out[part] = (X, lengths, np.array([index[c] for c in labels], np.int64))
    return out


def holdout_split(data, share, seed=0):
    """A stratified split of data["train"]: {"train": the rest, "test": share
    of each class}."""
    X, lengths, y = data["train"]
    rng = np.random.default_rng([seed, 0x401D])
    held = np.concatenate([rng.permutation(np.flatnonzero(y == c))[:int(round(share * np.sum(
        y == c)))] for c in np.unique(y)])
    keep = np.setdiff1d(np.arange(len(y)), held)
    return {"train": (X[keep], lengths[keep], y[keep]), "test": (X[held], lengths[held], y[held])}


# ------------------------------------------------------------ 1-NN DTW_D
def dtw_distances(A, la, B, lb, chunk=32):
    """DTW_D distances (len(A), len(B)) between sequences A (Na, Ta, D) and
    B (Nb, Tb, D) of lengths la, lb: full window, local cost the squared
    Euclidean distance between two steps' D-vectors. The dynamic program
    runs over every pair of a chunk of A and all of B at once (NumPy),
    row by row and cell by cell; a pair's distance is its cell (la - 1,
    lb - 1) (cells past the lengths depend on padding and are never read)."""
    Na, Nb, Tb = len(A), len(B), B.shape[1]
    out = np.empty((Na, Nb))
    for s in range(0, Na, chunk):
        a, n = A[s:s + chunk], la[s:s + chunk]
        prev = None  # the table's previous row, (len(a), Nb, Tb)
        for i in range(int(n.max())):
            cost = ((a[:, i, None, None, :] - B[None, :, :, :]) ** 2).sum(-1)
            if prev is None:  # the first row: from the left only
                row = np.cumsum(cost, axis=2)
            else:
                row = np.empty_like(cost)
                row[:, :, 0] = cost[:, :, 0] + prev[:, :, 0]
                above = np.minimum(prev[:, :, 1:], prev[:, :, :-1])  # up, diagonal
                for j in range(1, Tb):
                    row[:, :, j] = cost[:, :, j] + np.minimum(above[:, :, j - 1],
                                                              row[:, :, j - 1])
            done = np.flatnonzero(n - 1 == i)  # sequences of A that end on this row
            out[s + done] = row[done[:, None], np.arange(Nb)[None, :], lb[None, :] - 1]
            prev = row
    return out


def dtw_naive(x, y):
    """DTW_D of two (T, D) sequences by the textbook loops (the check)."""
    D = np.full((len(x) + 1, len(y) + 1), np.inf)
    D[0, 0] = 0.0
    for i in range(1, len(x) + 1):
        for j in range(1, len(y) + 1):
            D[i, j] = np.sum((x[i - 1] - y[j - 1]) ** 2) + min(D[i - 1, j], D[i, j - 1],
                                                               D[i - 1, j - 1])
    return D[-1, -1]


def one_nn_dtw(data):
    """(test accuracy, seconds) of 1-NN DTW_D; the vectorized distances are
    checked against dtw_naive on a few pairs first."""
    (Xr, lr, yr), (Xt, lt, yt) = data["train"], data["test"]
    t0 = time.perf_counter()
    dist = dtw_distances(Xt, lt, Xr, lr)
    seconds = time.perf_counter() - t0
    for i, j in ((0, 0), (len(yt) - 1, len(yr) - 1), (len(yt) // 2, len(yr) // 3)):
        ref = dtw_naive(Xt[i, :lt[i]], Xr[j, :lr[j]])
        assert np.isclose(dist[i, j], ref, rtol=1e-10), (i, j, dist[i, j], ref)
    return float(np.mean(yr[dist.argmin(1)] == yt)), seconds


# ------------------------------------------------------------ clstm runs
def run_cli(argv):
    """`clstm ARGV` in this process: (exit status, stdout)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        rc = cli.main([str(a) for a in argv])
    return rc, out.getvalue()


def test_accuracy(model, npz):
    """`clstm evaluate`'s accuracy, exactly: the confusion matrix's trace
    over its sum."""
    rc, out = run_cli(["evaluate", model, "--npz", npz])
    if rc:
        raise RuntimeError("clstm evaluate failed (%d)" % rc)
    lines = out.splitlines()
    i = lines.index("confusion matrix (rows: true class, columns: predicted):")
    cm = np.array([[int(v) for v in line.split()[1:]] for line in lines[i + 2:]])
    return np.trace(cm) / cm.sum()


def clstm_runs(data, flags, seeds, threads, folder):
    """[(accuracy, seconds of `clstm train`, steps)] over seeds."""
    paths = {}
    for part in ("train", "test"):
        X, lengths, y = data[part]
        paths[part] = os.path.join(folder, part + ".npz")
        np.savez(paths[part], X=X, lengths=lengths, y=y)
    results = []
    for seed in range(seeds):
        model = os.path.join(folder, "model%d.safetensors" % seed)
        t0 = time.perf_counter()
        rc, out = run_cli(["train", "--npz", paths["train"], "--seed", seed, "--threads",
                           threads, "--no-progress", "--out", model] + shlex.split(flags))
        seconds = time.perf_counter() - t0
        if rc:
            raise RuntimeError("clstm train %s failed (%d)" % (flags, rc))
        steps = int(re.search(r"done: (\d+) steps", out).group(1))
        results.append((test_accuracy(model, paths["test"]), seconds, steps))
    return results


def mean_sd(values):
    v = np.asarray(values, np.float64)
    return "%.3f ± %.3f" % (v.mean(), v.std(ddof=1) if len(v) > 1 else 0.0)


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sets", nargs="+", default=list(SETS))
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--holdout", type=float, default=None,
                   help="score a stratified share of TRAIN instead of TEST (choosing defaults)")
    p.add_argument("--recipe", action="append", default=None, metavar="NAME=FLAGS",
                   help="train flags to compare (default: defaults= and old=%s)" % OLD)
    p.add_argument("--markdown", metavar="FILE", help="also write the table here")
    a = p.parse_args()
    folder = data_folder()
    if folder is None:
        print("skipped: sktime (or aeon) is not installed (pip install 'pyclstm[bench]')")
        return 0
    recipes = [r.split("=", 1) for r in a.recipe] if a.recipe else [["defaults", ""],
                                                                     ["old defaults", OLD]]
    clstm.set_num_threads(a.threads)
    lines = ["| data set | D | classes | train / test | recipe | clstm accuracy "
             "(mean ± sd, %d seeds) | per seed | steps | s per run | 1-NN DTW_D |"
             % a.seeds, "|---|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for name in a.sets:
        data = load_set(folder, name)
        if a.holdout:
            data = holdout_split(data, a.holdout)
        dtw, dtw_s = one_nn_dtw(data)
        (Xr, _, yr), (Xt, _, _) = data["train"], data["test"]
        for recipe, flags in recipes:
            with tempfile.TemporaryDirectory() as tmp:
                runs = clstm_runs(data, flags, a.seeds, a.threads, tmp)
            acc = [r[0] for r in runs]
            row = ("| %s | %d | %d | %d / %d | %s%s | %s | %s | %d | %.1f | %.3f (%.1f s) |"
                   % (name, Xr.shape[2], len(np.unique(yr)), len(Xr), len(Xt), recipe,
                      " (`%s`)" % flags if flags else "", mean_sd(acc),
                      " ".join("%.3f" % v for v in acc), np.median([r[2] for r in runs]),
                      np.mean([r[1] for r in runs]), dtw, dtw_s))
            lines.append(row)
            print(row, flush=True)
    footer = ("CPU: %s; %d thread%s; clstm %s; %s" % (
        cpu_model(), a.threads, "s" * (a.threads > 1), clstm.__version__,
        "held out: a stratified %g of each TRAIN file, TEST unread" % a.holdout
        if a.holdout else "scored on each TEST file"))
    print("\n" + footer)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write("\n".join(lines) + "\n\n" + footer + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
