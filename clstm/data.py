"""Training data for the trainer: text streams for character models, and
batches of variable-length sequences for classification and regression.

Loaders validate their input and raise DataError (a ValueError) with a
one-line message that names the file and what is wrong; the command line
prints it and exits with status 2.
"""
from __future__ import annotations

import csv
import os
from typing import Any, Optional, Union

import numpy as np
import numpy.typing as npt

# what a path argument may be
PathLike = Union[str, "os.PathLike[str]"]

__all__ = ["DataError", "builtin_text", "file_kind", "read_text", "read_csv_column",
           "read_npz", "TextStream", "Sequences", "LabelledSequences", "windows"]


MAX_CLASSES = 65536  # labels of a classifier: 0..K-1, K at most this


class DataError(ValueError):
    """Input data that cannot be used, with a message a person can act on."""


def file_kind(path: PathLike) -> Optional[str]:
    """What a file holds, judged by its first bytes: "safetensors" (a model
    file: an 8-byte little-endian header length, then a JSON header), "npz"
    (a zip archive: checkpoints and .npz data), "npy", or None (anything
    else, or unreadable). Only the first bytes are read."""
    try:
        with open(path, "rb") as f:
            head = f.read(9)
        size = os.path.getsize(path)
    except OSError:
        return None
    if head.startswith(b"PK\x03\x04"):
        return "npz"
    if head.startswith(b"\x93NUMPY"):
        return "npy"
    if len(head) == 9 and head[8:] == b"{" and 0 < int.from_bytes(head[:8], "little") <= size - 8:
        return "safetensors"
    return None


def builtin_text() -> str:
    """A real English text that every Python has, with no download: the
    topics of the Python reference manual shipped in the standard library
    (pydoc_data.topics, ~460 kB, ~100 distinct characters). Some
    distributions strip pydoc_data; then the docstrings of a fixed list of
    standard modules are used instead (smaller)."""
    try:
        from pydoc_data.topics import topics
        return "\n".join(topics[k] for k in sorted(topics))
    except ImportError:  # pragma: no cover - depends on the distribution
        import importlib
        names = ["os", "re", "json", "argparse", "collections", "functools", "itertools",
                 "subprocess", "threading", "logging", "pathlib", "typing", "unittest",
                 "email", "http.client", "urllib.request", "datetime", "decimal", "random"]
        docs = []
        for n in names:
            try:
                docs.append(importlib.import_module(n).__doc__ or "")
            except ImportError:
                pass
        return "\n".join(d for d in docs if d)


def _check_file(path, what):
    if not os.path.exists(path):
        raise DataError("%s: no such file" % path)
    if os.path.isdir(path):
        raise DataError("%s: is a directory, expected a %s file" % (path, what))
    if os.path.getsize(path) == 0:
        raise DataError("%s: the file is empty" % path)


def read_text(path: PathLike) -> str:
    """The UTF-8 text of `path`; DataError for a missing, empty or non-UTF-8
    file (naming the byte offset of the first bad byte)."""
    _check_file(path, "text")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError("%s: not UTF-8 text (invalid byte 0x%02x at offset %d)"
                        % (path, raw[e.start], e.start)) from None
    if "\0" in text:
        raise DataError("%s: contains NUL characters (a binary file?)" % path)
    if len(text) < 2:
        raise DataError("%s: expected at least 2 characters of text" % path)
    return text


def read_csv_column(path: PathLike, column: str) -> npt.NDArray[np.float64]:
    """The float64 values of one column of a CSV file with a header row.
    DataError for a missing column (listing those present), a value that is
    not a number (naming the row), NaN/inf, or fewer than 3 values."""
    _check_file(path, "CSV")
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:  # Excel's BOM too
            rows = list(csv.reader(f))
    except UnicodeDecodeError:
        raise DataError("%s: not UTF-8 text" % path) from None
    except csv.Error as e:
        raise DataError("%s: not a valid CSV file (%s)" % (path, e)) from None
    if not rows:
        raise DataError("%s: the file is empty" % path)
    header = [h.strip() for h in rows[0]]
    if column not in header:
        raise DataError("%s: no column %r; columns are %s" % (path, column, ", ".join(
            repr(h) for h in header)))
    j = header.index(column)
    values = []
    for i, row in enumerate(rows[1:], start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if j >= len(row):
            raise DataError("%s: row %d has no value in column %r" % (path, i, column))
        try:
            v = float(row[j])
        except ValueError:
            raise DataError("%s: row %d, column %r: %r is not a number"
                            % (path, i, column, row[j])) from None
        if not np.isfinite(v):
            raise DataError("%s: row %d, column %r: %r is not a finite number"
                            % (path, i, column, row[j]))
        values.append(v)
    if len(values) < 3:
        raise DataError("%s: column %r has %d values; expected at least 3"
                        % (path, column, len(values)))
    return np.array(values)


def read_npz(path: PathLike) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64],
                                      npt.NDArray[np.int64]]:
    """X (N, T_max, D) float, lengths (N,) ints in [1, T_max], y (N,) ints
    >= 0 from an .npz file. Files needing pickle are refused (never
    loaded); NaN/inf in X at valid steps are refused."""
    _check_file(path, ".npz")
    try:
        z = np.load(path, allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise DataError("%s: not an .npz archive (a single .npy array?); save X, lengths "
                            "and y with numpy.savez" % path)
        with z:
            missing = [k for k in ("X", "lengths", "y") if k not in z.files]
            if missing:
                raise DataError("%s: missing arrays %s (expected X, lengths, y; found %s)"
                                % (path, missing, z.files))
            X, lengths, y = z["X"], z["lengths"], z["y"]
    except DataError:
        raise
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise DataError("%s: holds Python objects that need pickle; refusing to load "
                            "it (save plain numeric arrays)" % path) from None
        raise DataError("%s: not a valid .npz file (%s)" % (path, e)) from None
    except (OSError, EOFError) as e:
        raise DataError("%s: not a valid .npz file (%s)" % (path, e)) from None
    if X.ndim != 3 or X.dtype.kind not in "fiu":
        raise DataError("%s: X must be a numeric (N, T_max, D) array, got %s %s"
                        % (path, X.dtype, X.shape))
    N, T_max, _ = X.shape
    if N < 2 or T_max < 1 or X.shape[2] < 1:
        raise DataError("%s: X has shape %s; expected N >= 2 sequences, T_max >= 1, D >= 1"
                        % (path, X.shape))
    if lengths.shape != (N,) or lengths.dtype.kind not in "iu":
        raise DataError("%s: lengths must be (N,) = (%d,) integers, got %s %s"
                        % (path, N, lengths.dtype, lengths.shape))
    if lengths.min() < 1 or lengths.max() > T_max:
        raise DataError("%s: lengths must lie in [1, T_max = %d], got [%d, %d]"
                        % (path, T_max, lengths.min(), lengths.max()))
    if y.shape != (N,) or y.dtype.kind not in "iu" or y.min() < 0:
        raise DataError("%s: y must be (N,) = (%d,) integer labels >= 0, got %s %s"
                        % (path, N, y.dtype, y.shape))
    if y.max() >= MAX_CLASSES:
        raise DataError("%s: label %d in y: labels must be 0..K-1 with K <= %d classes"
                        % (path, y.max(), MAX_CLASSES))
    valid = np.arange(T_max)[None, :] < lengths[:, None]
    if not np.isfinite(X[valid]).all():
        raise DataError("%s: X holds NaN or infinite values at valid steps" % path)
    return X.astype(np.float64), lengths.astype(np.int64), y.astype(np.int64)


class TextStream:
    """A character corpus as token ids, split into a training part (the
    first 1 - val_fraction) and a validation part (the rest)."""

    def __init__(self, text: str, vocab: Optional[str] = None, val_fraction: float = 0.1
                 ) -> None:
        if vocab is None:
            vocab = "".join(sorted(set(text)))
        index = {ch: i for i, ch in enumerate(vocab)}
        missing = sorted(set(text) - set(index))
        if missing:
            raise DataError("the text has characters outside the model's vocabulary: %r"
                            % "".join(missing[:20]))
        self.vocab = vocab
        ids = np.fromiter((index[ch] for ch in text), dtype=np.int32, count=len(text))
        n_val = int(len(ids) * val_fraction)
        if val_fraction > 0 and n_val < 2:
            raise DataError("the text is too short for a validation split (%d characters)"
                            % len(ids))
        self.train = ids[:len(ids) - n_val]
        self.val = ids[len(ids) - n_val:]
        if len(self.train) < 2:
            raise DataError("the text is too short to train on (%d characters)" % len(ids))


def stream_chunks(ids: npt.NDArray[Any], batch_size: int, bptt: int
                  ) -> list[tuple[npt.NDArray[Any], npt.NDArray[Any]]]:
    """The stream cut into batch_size parallel rows and then into chunks of
    at most bptt steps: [(inputs (T, B), targets (T, B))], in order. Each
    row continues where the row's previous chunk ended (carry the state)."""
    n = (len(ids) - 1) // batch_size
    if n < 1:
        raise DataError("the text (%d characters) is too short for batch size %d"
                        % (len(ids), batch_size))
    rows_in = ids[:n * batch_size].reshape(batch_size, n).T
    rows_out = ids[1:n * batch_size + 1].reshape(batch_size, n).T
    return [(np.ascontiguousarray(rows_in[t:t + bptt]), np.ascontiguousarray(rows_out[t:t + bptt]))
            for t in range(0, n, bptt)]


class _Splittable:
    """A data set of len(self) items with subset(indices)."""

    def split(self, val_fraction, rng):
        """(train, val) after a shuffle by rng."""
        order = rng.permutation(len(self))
        n_val = max(1, int(round(len(self) * val_fraction))) if val_fraction > 0 else 0
        va, tr = order[:n_val], order[n_val:]
        if len(tr) < 1:
            raise DataError("too few sequences (%d) to split off a validation set" % len(self))
        return self.subset(tr), (self.subset(va) if n_val else None)


class Sequences(_Splittable):
    """Variable-length sequences X (N, T_max, D), lengths (N,), and targets
    y: (N,) class ids (classification) or (N, O) reals (regression), all
    predicted at each sequence's last valid step."""

    def __init__(self, X, lengths, y):
        self.X, self.lengths, self.y = X, lengths, y

    def __len__(self) -> int:
        return len(self.lengths)

    def subset(self, idx):
        return Sequences(self.X[idx], self.lengths[idx], self.y[idx])

    def batch(self, idx):
        """Time-first (T, B, D) inputs trimmed to the longest sequence, the
        lengths and the targets of sequences idx."""
        lens = self.lengths[idx]
        T = int(lens.max())
        return (np.ascontiguousarray(self.X[idx, :T].transpose(1, 0, 2)), lens, self.y[idx])


class LabelledSequences(_Splittable):
    """Variable-length real sequences, each (T_i, D), with a label sequence
    each (L_i class ids, unaligned: CTC's targets), e.g. text lines' pixel
    columns and their transcripts."""

    def __init__(self, xs, ys, names=None):
        if len(xs) != len(ys):
            raise DataError("%d sequences but %d label sequences" % (len(xs), len(ys)))
        self.xs = [np.asarray(x) for x in xs]
        self.ys = [np.asarray(y, dtype=np.int64).reshape(-1) for y in ys]
        self.names = list(names) if names is not None else [str(i) for i in range(len(xs))]
        dims = {x.shape[1] for x in self.xs if x.ndim == 2}
        if any(x.ndim != 2 for x in self.xs) or len(dims) > 1:
            raise DataError("expected 2-D (T, D) sequences of one width D")
        self.D = dims.pop() if dims else 0

    def __len__(self) -> int:
        return len(self.xs)

    def subset(self, idx):
        return LabelledSequences([self.xs[i] for i in idx], [self.ys[i] for i in idx],
                                 [self.names[i] for i in idx])

    def batch(self, idx, transform=None, dtype=np.float32):
        """Time-first (T, B, D) inputs padded with zeros to the longest, their
        lengths, and the targets ((B, S) padded ids, (B,) lengths).
        transform(i, x) may replace sequence i's x (augmentation)."""
        xs = [self.xs[i] if transform is None else transform(k, self.xs[i])
              for k, i in enumerate(idx)]
        lens = np.array([len(x) for x in xs], np.int64)
        X = np.zeros((int(lens.max(initial=1)), len(xs), self.D), dtype)
        for b, x in enumerate(xs):
            X[:len(x), b] = x
        tl = np.array([len(self.ys[i]) for i in idx], np.int64)
        Y = np.zeros((len(idx), int(tl.max(initial=0))), np.int64)
        for b, i in enumerate(idx):
            Y[b, :tl[b]] = self.ys[i]
        return X, lens, (Y, tl)


def windows(series: npt.ArrayLike, window: int, horizon: int = 1) -> Sequences:
    """Forecasting as regression: every window of `window` consecutive values
    predicts the `horizon` values after it. Returns Sequences (all of
    length `window`, D = 1, y (N, horizon))."""
    series = np.asarray(series, dtype=np.float64)
    n = len(series) - window - horizon + 1
    if window < 1 or horizon < 1:
        raise DataError("window and horizon must be >= 1")
    if n < 2:
        raise DataError("the series (%d values) is too short for window %d and horizon %d"
                        % (len(series), window, horizon))
    idx = np.arange(n)[:, None]
    X = series[idx + np.arange(window)[None, :]][:, :, None]
    y = series[idx + window + np.arange(horizon)[None, :]]
    return Sequences(X, np.full(n, window, dtype=np.int64), y)
