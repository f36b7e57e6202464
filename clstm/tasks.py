"""Training tasks: what the Trainer trains on, each owning its batches, its
loss, its validation and the metadata its model files carry.

    LanguageModelTask  next-token prediction over a text (truncated BPTT);
                       metadata task "char"
    SequenceTask       one prediction per sequence: classification (metadata
                       task "classify", classes) or regression; with
                       standardize=True, input_mean and input_std (and a
                       regression's output_mean, output_std): see
                       Standardization; pooling "mean" where the outputs
                       are averaged over the steps (model_pooling)
    ForecastTask       a real series as windows -> the next values; metadata
                       task "forecast", window, horizon, column, and the
                       series' standardization as input_* and output_*:
                       what `clstm forecast` reads (ForecastTask.settings)
    LabellingTask      sequences -> unaligned label sequences with CTC (text
                       lines, utterances); metadata task "ctc", blank and,
                       given one, the alphabet (JSON)
    TranslationTask    source -> target token sequences (clstm.Seq2Seq,
                       teacher forcing); metadata task "seq2seq" and the
                       longest source and target seen in training

The Trainer writes a task's metadata into the model it trains, so a model
trained in Python and one trained by `clstm train` are the same kind of file.
"""
import collections
import json
import math

import numpy as np

from clstm import checks, decode, losses
from clstm.data import stream_chunks, windows

__all__ = ["LanguageModelTask", "SequenceTask", "ForecastTask", "ForecastSettings",
           "LabellingTask", "TranslationTask", "Standardization", "model_scaling",
           "model_pooling", "predict_sequences", "edit_distance"]


class LanguageModelTask:
    """Next-token prediction over a token stream (a TextStream): the stream
    is cut into batch_size parallel rows read in chunks of bptt steps, in
    order, with the LSTM state carried from chunk to chunk (truncated
    BPTT). The loss is the per-step cross-entropy in nats."""

    stateful = True
    last_only = False
    unit = "char"

    def __init__(self, stream, batch_size=32, bptt=64):
        self.stream, self.vocab = stream, stream.vocab
        self.batch_size, self.bptt = batch_size, bptt
        self.chunks = stream_chunks(stream.train, batch_size, bptt)
        self.val_chunks = (stream_chunks(stream.val, min(batch_size, max(1, (len(stream.val) - 1)
                                                                          // bptt)), bptt)
                           if len(stream.val) >= 2 else [])

    @property
    def n_batches(self):
        return len(self.chunks)

    def epoch_order(self, rng):
        return np.arange(len(self.chunks))  # in order: the state runs along the rows

    def batch(self, k, order):
        inputs, targets = self.chunks[order[k]]
        return inputs, targets, None

    @staticmethod
    def model_metadata(model):
        """The model file's metadata for this task (what the CLI checks)."""
        return {"task": "char"}

    @staticmethod
    def units(inputs):
        return inputs.size

    @staticmethod
    def count(targets, lengths):
        """The number of terms the loss's mean is over (every step)."""
        return targets.size

    @staticmethod
    def rows(inputs, targets, lengths, rows):
        """The batch's rows `rows` (a slice): a data-parallel rank's shard."""
        return inputs[:, rows], targets[:, rows], None

    @staticmethod
    def loss(out, targets, lengths, grad=True):
        return losses.cross_entropy(out, targets, lengths, grad=grad)

    def evaluate(self, model):
        """Mean validation loss per token (nats), the state carried."""
        if not self.val_chunks:
            return None
        total, count, state = 0.0, 0, None
        for inputs, targets in self.val_chunks:
            out, state = model.forward(inputs, state, train=False)
            loss, _ = losses.cross_entropy(out, targets, grad=False)
            total += loss * targets.size
            count += targets.size
        return {"val_loss": total / count}


class Standardization:
    """Per-feature standardization z = (x - mean) / std, fitted on training
    data and kept in a model's metadata so that whatever runs the model
    (`clstm evaluate`, `clstm forecast`, predict_sequences, the C examples)
    scales its inputs as training did.

    mean, std: (F,) float64; std > 0 (a feature that is constant in the
    data it was fitted on has std 1: it is centred, not scaled, so it never
    divides by 0). Metadata keys, for prefix "input" (the model's D input
    features) and "output" (a regression's O targets, whose outputs map
    back as y = z * std + mean): "<prefix>_mean" and "<prefix>_std", each a
    JSON array of F numbers (17 significant digits: float64 round-trips)."""

    def __init__(self, mean, std):
        mean = np.array(mean, dtype=np.float64).reshape(-1)
        std = np.array(std, dtype=np.float64).reshape(-1)
        if mean.shape != std.shape or mean.size < 1:
            raise ValueError("mean, std: expected two arrays of one shape (F,), F >= 1, got "
                             "%s and %s" % (mean.shape, std.shape))
        if not (np.all(np.isfinite(mean)) and np.all(np.isfinite(std)) and np.all(std > 0)):
            raise ValueError("mean, std: expected finite values and std > 0")
        self.mean, self.std = mean, std

    @classmethod
    def fit(cls, X, lengths=None):
        """The standardization of X's last axis: X (N, T, F) over each
        sequence's valid steps (t < lengths[n]; all steps when lengths is
        None), or X (N, F) over its rows. Population std (ddof 0), in
        float64; a std of 0, or below 1e-10 of |mean| (a constant feature
        up to rounding), becomes 1."""
        X = np.asarray(X, dtype=np.float64)
        if X.ndim == 3 and lengths is not None:
            rows = X[np.arange(X.shape[1])[None, :] < np.asarray(lengths)[:, None]]
        else:
            rows = X.reshape(-1, X.shape[-1])
        if len(rows) < 1:
            raise ValueError("X: no values to fit a standardization on")
        mean = rows.mean(axis=0)
        std = np.sqrt(((rows - mean) ** 2).mean(axis=0))
        std[(std == 0) | (std <= 1e-10 * np.abs(mean))] = 1.0
        return cls(mean, std)

    def __len__(self):
        return self.mean.size

    def __eq__(self, other):
        return (isinstance(other, Standardization) and np.array_equal(self.mean, other.mean)
                and np.array_equal(self.std, other.std))

    def __repr__(self):
        return "Standardization(mean=%s, std=%s)" % (self.mean.tolist(), self.std.tolist())

    def apply(self, x):
        """(x - mean) / std over x's last axis, in float64."""
        return (np.asarray(x, dtype=np.float64) - self.mean) / self.std

    def invert(self, z):
        """z * std + mean over z's last axis, in float64: apply's inverse."""
        return np.asarray(z, dtype=np.float64) * self.std + self.mean

    def metadata(self, prefix):
        """{"<prefix>_mean": JSON array, "<prefix>_std": JSON array}."""
        return {prefix + "_mean": json.dumps([float(v) for v in self.mean]),
                prefix + "_std": json.dumps([float(v) for v in self.std])}

    @classmethod
    def from_metadata(cls, metadata, prefix, size):
        """The standardization stored under prefix ("input" or "output") in a
        model's metadata, for `size` features; None when neither key is
        there (a model trained without one: the identity). ValueError
        naming the key when one is missing, malformed or of another size."""
        keys = (prefix + "_mean", prefix + "_std")
        if not any(k in metadata for k in keys):
            return None
        values = []
        for k in keys:
            if k not in metadata:
                raise ValueError("model: its metadata has %r but not %r"
                                 % (keys[1 - keys.index(k)], k))
            try:
                v = json.loads(metadata[k])
                if (not isinstance(v, list) or not all(
                        isinstance(e, (int, float)) and not isinstance(e, bool) for e in v)):
                    raise ValueError("not an array of numbers")
            except ValueError:
                raise ValueError("model: its metadata %r is not a JSON array of numbers"
                                 % k) from None
            if len(v) != size:
                raise ValueError("model: its metadata %r has %d numbers; the model has %d %s"
                                 % (k, len(v), size, "inputs" if prefix == "input"
                                    else "outputs"))
            values.append(v)
        try:
            return cls(*values)
        except ValueError:
            raise ValueError("model: its metadata %r or %r holds a non-finite number or a std "
                             "<= 0" % keys) from None


def model_scaling(model):
    """(input, output): the Standardizations in a model's metadata (None
    where it holds none: the identity); ValueError naming a malformed key.
    A forecaster written before these keys existed holds one "mean" and
    "std" for its series: they serve as both."""
    md = model.metadata
    inputs = Standardization.from_metadata(md, "input", model.input_size)
    outputs = Standardization.from_metadata(md, "output", model.out_size)
    if inputs is None and outputs is None and md.get("task") == "forecast":
        s = ForecastTask.settings(model)
        inputs = Standardization([s.mean] * model.input_size, [s.std] * model.input_size)
        outputs = Standardization([s.mean] * model.out_size, [s.std] * model.out_size)
    return inputs, outputs


POOLINGS = ("last", "mean")


def model_pooling(model):
    """How a sequence model reads one output per sequence: "last" (the
    output at its last valid step; models without the "pooling" metadata)
    or "mean" (the mean of its outputs over the valid steps: for a Linear
    head, the head of the mean LSTM output). ValueError for anything else."""
    pooling = model.metadata.get("pooling", "last")
    if pooling not in POOLINGS:
        raise ValueError("model: its metadata 'pooling' is %r; expected one of %s"
                         % (pooling, ", ".join(POOLINGS)))
    return pooling


def pool(out, lengths, pooling):
    """One row per sequence of out (T, B, O): its last valid step's
    ("last") or the mean over its valid steps ("mean", in float64)."""
    B = out.shape[1]
    if pooling == "last":
        return out[lengths - 1, np.arange(B)]
    valid = np.arange(out.shape[0])[:, None] < lengths[None, :]
    return (np.sum(out * valid[:, :, None], axis=0, dtype=np.float64)
            / np.maximum(lengths, 1)[:, None])


def predict_sequences(model, X, lengths=None, batch_size=256):
    """The model's outputs (N, O), one row per sequence, as `clstm evaluate`
    and `clstm forecast` compute them: at each sequence's last valid step,
    or their mean over its valid steps for a model trained with mean
    pooling (model_pooling). X (N, T_max, D) real, batch first (an .npz's
    X), on the data's own scale: the model's input standardization
    (model_scaling) is applied to it, and a regression's outputs are mapped
    back by its output standardization. lengths: (N,) ints in [1, T_max]
    (None: every sequence is T_max long). A classifier's outputs are its
    logits (argmax: the class)."""
    X = checks.to_numpy(X)
    if X.ndim != 3 or X.dtype.kind not in "fiu":
        raise ValueError("X: expected a real (N, T_max, D) array, got %s %s"
                         % (X.dtype, X.shape))
    N, T, D = X.shape
    if D != model.input_size:
        raise ValueError("X: expected D = %d features (the model's input size), got %d"
                         % (model.input_size, D))
    lengths = np.full(N, T, np.int64) if lengths is None else checks.lengths(lengths, T, N)
    if N and lengths.min() < 1:
        raise ValueError("lengths: expected 1 <= length <= T_max (%d), got %d"
                         % (T, lengths.min()))
    batch_size = _count(batch_size, "batch_size")
    inputs, outputs = model_scaling(model)
    pooling = model_pooling(model)
    out = np.empty((N, model.out_size), model.dtype if pooling == "last" else np.float64)
    for i in range(0, N, batch_size):
        lens = lengths[i:i + batch_size]
        x = X[i:i + batch_size, :int(lens.max())].transpose(1, 0, 2)
        x = x if inputs is None else inputs.apply(x)
        z, _ = model.forward(np.ascontiguousarray(x, dtype=model.dtype), lengths=lens,
                             train=False)
        out[i:i + batch_size] = pool(z, lens, pooling)
    return out if outputs is None else outputs.invert(out)


class _Shuffled:
    """Mini-batches of self.batch_size from self.train, reshuffled every
    epoch."""

    @property
    def n_batches(self):
        return -(-len(self.train) // self.batch_size)

    def epoch_order(self, rng):
        return rng.permutation(len(self.train))


class SequenceTask(_Shuffled):
    """One prediction per sequence at its last valid step: classification
    (kind "classify": y are class ids, cross-entropy) or regression and
    forecasting (kind "regress": y (N, O) reals, mean squared error).
    Mini-batches of variable-length sequences, reshuffled every epoch.

    standardize: fit a Standardization of the input features on `train`
    alone (never on val), and for a regression one of the targets too;
    the batches are scaled by them and the model's metadata keeps them, so
    predict_sequences (and so `clstm evaluate`) scales new data alike.
    input_scaling, output_scaling: those (None: the data as given).

    pooling: the loss reads each sequence's output at its last valid step
    ("last") or the mean of its outputs over its valid steps ("mean": every
    step's output gets 1/length of the gradient; a bidirectional LSTM's
    reverse direction has read the whole sequence only at its first step,
    so "last" hides most of it); kept in the metadata as "pooling" when
    "mean"."""

    stateful = False
    last_only = True
    unit = "seq"

    def __init__(self, train, val=None, batch_size=32, kind="classify", *, standardize=False,
                 pooling="last"):
        if kind not in ("classify", "regress"):
            raise ValueError("kind: expected 'classify' or 'regress', got %r" % (kind,))
        if pooling not in POOLINGS:
            raise ValueError("pooling: expected 'last' or 'mean', got %r" % (pooling,))
        self.train, self.val, self.kind, self.pooling = train, val, kind, pooling
        self.batch_size = batch_size
        self.input_scaling = self.output_scaling = None
        if checks.flag(standardize, "standardize"):
            self.input_scaling = Standardization.fit(train.X, train.lengths)
            if kind == "regress":
                self.output_scaling = Standardization.fit(np.reshape(train.y, (len(train), -1)))

    def batch(self, k, order):
        X, lens, y = self.train.batch(order[k * self.batch_size:(k + 1) * self.batch_size])
        if self.input_scaling is not None:
            X = self.input_scaling.apply(X)
        if self.output_scaling is not None:
            y = self.output_scaling.apply(y)
        return X.astype(self.dtype, copy=False), y, lens

    dtype = np.float64  # set by the Trainer to the model's

    def model_metadata(self, model):
        """The model file's metadata for this task: a classifier's task and
        class count (what `clstm evaluate` checks), and the
        standardizations (Standardization.metadata) where there are any."""
        md = {"task": "classify", "classes": str(model.output_size)} if (
            self.kind == "classify") else {}
        for prefix, scaling in (("input", self.input_scaling), ("output", self.output_scaling)):
            if scaling is not None:
                md.update(scaling.metadata(prefix))
        if self.pooling != "last":
            md["pooling"] = self.pooling
        return md

    @staticmethod
    def units(inputs):
        return inputs.shape[1]

    @staticmethod
    def count(targets, lengths):
        """The number of terms the loss's mean is over (the sequences with a
        last valid step)."""
        return int(np.count_nonzero(lengths))

    @staticmethod
    def rows(inputs, targets, lengths, rows):
        """The batch's rows `rows` (a slice), trimmed to their longest
        sequence: a data-parallel rank's shard."""
        lens = lengths[rows]
        return inputs[:int(lens.max(initial=0)), rows], targets[rows], lens

    def loss(self, out, targets, lengths, grad=True):
        f = losses.cross_entropy if self.kind == "classify" else losses.mse
        if self.pooling == "last":
            return f(out, targets, lengths, last_only=True, grad=grad)
        pooled = pool(out, lengths, "mean").astype(out.dtype)[None]  # (1, B, O)
        loss, dpooled = f(pooled, targets[None], grad=grad)
        if dpooled is None:
            return loss, None
        valid = np.arange(out.shape[0])[:, None] < lengths[None, :]
        share = (valid / np.maximum(lengths, 1)[None, :]).astype(out.dtype)  # (T, B)
        return loss, dpooled * share[:, :, None]

    @staticmethod
    def predict(model, seqs):
        """The model's output at each sequence's last valid step, (N, O), with
        the model's standardizations applied: predict_sequences."""
        return predict_sequences(model, seqs.X, seqs.lengths)

    def evaluate(self, model, seqs=None):
        """Validation (val_loss, and a classifier's val_accuracy) over seqs
        (default: val); a regression's loss on the model's scale (its
        targets standardized as in training)."""
        seqs = self.val if seqs is None else seqs
        if seqs is None:
            return None
        pred = self.predict(model, seqs)
        if self.kind == "classify":
            loss, _ = losses.cross_entropy(pred[None], seqs.y[None].astype(np.int32), grad=False)
            return {"val_loss": loss, "val_accuracy": float(np.mean(pred.argmax(1) == seqs.y))}
        y = seqs.y
        _, outputs = model_scaling(model)
        if outputs is not None:
            pred, y = outputs.apply(pred), outputs.apply(y)
        loss, _ = losses.mse(pred[None].astype(model.dtype), y[None].astype(model.dtype),
                             grad=False)
        return {"val_loss": loss}

    def confusion_matrix(self, model, seqs):
        """A classifier's (accuracy, confusion matrix (O, O): rows the true
        class, columns the predicted one) over seqs."""
        pred = self.predict(model, seqs).argmax(1)
        k = model.output_size
        cm = np.zeros((k, k), dtype=np.int64)
        np.add.at(cm, (seqs.y, pred), 1)
        return float(np.mean(pred == seqs.y)), cm


ForecastSettings = collections.namedtuple("ForecastSettings",
                                          "window horizon mean std column")
ForecastSettings.__doc__ = """A forecaster's metadata, parsed: window and horizon
(ints), mean and std (floats: the series' standardization), column (str or
None)."""


def _count(v, name):
    """An int >= 1 (never a bool)."""
    v = checks.as_int(v, name)
    if v < 1:
        raise ValueError("%s: expected >= 1, got %d" % (name, v))
    return v


class ForecastTask(SequenceTask):
    """Forecasting a real series: each window of `window` consecutive values
    predicts the `horizon` values after it (mean squared error). The last
    val_fraction of the windows are held out for validation (no
    look-ahead). The series is standardized by the mean and standard
    deviation (mean, std) of the values the training windows hold: one
    Standardization of its inputs (input_scaling) and, repeated `horizon`
    times, of its targets (output_scaling), kept in the model's metadata
    with window, horizon and column, so `clstm forecast` can use the
    model. DataError when the series is too short."""

    def __init__(self, series, window=50, horizon=1, *, val_fraction=0.1, batch_size=32,
                 column=None):
        self.window, self.horizon = _count(window, "window"), _count(horizon, "horizon")
        batch_size = _count(batch_size, "batch_size")
        if isinstance(val_fraction, (bool, np.bool_)) or not isinstance(
                val_fraction, (int, float, np.integer, np.floating)):
            raise TypeError("val_fraction: expected a number in [0, 1), got %s"
                            % type(val_fraction).__name__)
        if not 0 <= val_fraction < 1:
            raise ValueError("val_fraction: expected a number in [0, 1), got %r"
                             % (val_fraction,))
        if column is not None and not isinstance(column, str):
            raise TypeError("column: expected a str or None, got %s" % type(column).__name__)
        try:
            series = np.asarray(series, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise TypeError("series: expected real numbers (%s)" % e) from None
        if series.ndim != 1:
            raise ValueError("series: expected a 1-D array of values, got shape %s"
                             % (series.shape,))
        if not np.all(np.isfinite(series)):
            raise ValueError("series: expected finite values, got NaN or Inf at index %d"
                             % int(np.flatnonzero(~np.isfinite(series))[0]))
        self.column = column
        seqs = windows(series, self.window, self.horizon)
        n_val = int(len(seqs) * val_fraction)  # the last windows: no look-ahead
        train = seqs.subset(np.arange(len(seqs) - n_val))
        val = seqs.subset(np.arange(len(seqs) - n_val, len(seqs))) if n_val else None
        super().__init__(train, val, batch_size, kind="regress")
        seen = series[:len(train) + self.window + self.horizon - 1]  # the training windows'
        fitted = Standardization.fit(seen.reshape(-1, 1))
        self.mean, self.std = float(fitted.mean[0]), float(fitted.std[0])
        self.input_scaling = fitted
        self.output_scaling = Standardization([self.mean] * self.horizon,
                                              [self.std] * self.horizon)

    def model_metadata(self, model=None):
        md = dict(task="forecast", window=str(self.window), horizon=str(self.horizon))
        md.update(self.input_scaling.metadata("input"))
        md.update(self.output_scaling.metadata("output"))
        if self.column is not None:
            md["column"] = self.column
        return md

    @staticmethod
    def settings(model):
        """The ForecastSettings in a forecaster's metadata; ValueError naming
        what is missing or malformed (e.g. not a forecaster). mean and std:
        its input standardization's (a file written before those keys: its
        "mean" and "std")."""
        md = model.metadata
        if md.get("task") != "forecast":
            raise ValueError("model: not a forecasting model (its task is %s)"
                             % (md.get("task") or "unknown"))
        values = []
        valid = {"window": lambda v: v >= 1, "horizon": lambda v: v >= 1,
                 "mean": math.isfinite, "std": lambda v: math.isfinite(v) and v > 0}
        keys = (("window", int), ("horizon", int))
        inputs = Standardization.from_metadata(md, "input", model.input_size)
        if inputs is None:
            keys += (("mean", float), ("std", float))
        for key, kind in keys:
            try:
                values.append(kind(md[key]))
            except (KeyError, ValueError):
                raise ValueError("model: its forecasting metadata %r is %s" % (
                    key, "missing" if key not in md else "not a number: %r" % md[key])) from None
            if not valid[key](values[-1]):
                raise ValueError("model: its forecasting metadata %r is out of range: %r"
                                 % (key, md[key]))
        if inputs is not None:
            values += [float(inputs.mean[0]), float(inputs.std[0])]
        return ForecastSettings(*values, md.get("column"))

    @staticmethod
    def forecast(model, series, settings):
        """The `horizon` values after the last of `series` (the model's last
        window of it, on the series' own scale: predict_sequences)."""
        s = settings
        z = np.asarray(series, dtype=np.float64)
        if z.ndim != 1 or len(z) < s.window:
            raise ValueError("series: expected at least the window's %d values, got shape %s"
                             % (s.window, z.shape))
        return predict_sequences(model, z[-s.window:].reshape(1, s.window, 1))[0]

    @staticmethod
    def one_step_errors(model, series, settings):
        """(windows, the model's one-step MSE, persistence's) over every window
        of series, or None when it holds fewer than two."""
        s = settings
        series = np.asarray(series, dtype=np.float64)
        if len(series) < s.window + s.horizon + 1:
            return None
        seqs = windows(series, s.window, s.horizon)
        p = predict_sequences(model, seqs.X, seqs.lengths)[:, 0]
        actual, persist = seqs.y[:, 0], seqs.X[:, -1, 0]
        return (len(actual), float(np.mean((p - actual) ** 2)),
                float(np.mean((persist - actual) ** 2)))


def edit_distance(a, b):
    """Levenshtein distance between two sequences (insertions, deletions and
    substitutions each cost 1)."""
    a, b = list(a), list(b)
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, y in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y))
        prev = cur
    return prev[-1]


class LabellingTask(_Shuffled):
    """Sequence labelling without alignments: per-step logits (T, B, C) from
    a model whose head has C outputs, class `blank` CTC's "no label", and
    the CTC loss against each sequence's label sequence (clstm.losses.ctc,
    mean reduction). Sequences too short for their labels count 0
    (zero_infinity), so they never turn the loss into inf or NaN; the CLI
    refuses them up front. Validation: the loss, and with greedy decoding
    the label error rate (edit distance over the labels: for text, the
    character error rate) and the share of sequences exactly right.

    train, val: clstm.data.LabelledSequences. augment(x, rng) -> x, if
    given, degrades each training sequence anew every time it is drawn,
    from a generator seeded by (seed, batch, first sequence): the same on a
    resumed run. alphabet (optional): the label ids' meanings, stored in the
    model file, with the strings of `metadata`."""

    stateful = False
    last_only = False
    unit = "seq"
    dtype = np.float32  # set by the Trainer to the model's

    def __init__(self, train, val=None, batch_size=16, *, blank=0, alphabet=None,
                 augment=None, seed=0, metadata=None):
        self.train, self.val, self.batch_size = train, val, batch_size
        self.blank, self.alphabet, self.augment, self.seed = blank, alphabet, augment, seed
        self.metadata = dict(metadata or {})

    def batch(self, k, order):
        idx = order[k * self.batch_size:(k + 1) * self.batch_size]
        transform = None
        if self.augment is not None:
            rng = np.random.default_rng([self.seed, k, int(idx[0])])
            transform = lambda i, x: self.augment(x, rng)  # noqa: E731
        X, lens, targets = self.train.batch(idx, transform, self.dtype)
        return X, targets, lens

    def model_metadata(self, model):
        meta = dict(self.metadata, task="ctc", blank=str(self.blank))
        if self.alphabet is not None:
            meta["alphabet"] = json.dumps(self.alphabet, ensure_ascii=False)
        return meta

    @staticmethod
    def units(inputs):
        return inputs.shape[1]

    @staticmethod
    def count(targets, lengths):
        """The number of terms the loss's mean is over (the sequences)."""
        return len(lengths)

    @staticmethod
    def rows(inputs, targets, lengths, rows):
        """The batch's rows `rows` (a slice), trimmed to their longest
        sequence: a data-parallel rank's shard."""
        lens = lengths[rows]
        Y, tl = targets
        return inputs[:int(lens.max(initial=0)), rows], (Y[rows], tl[rows]), lens

    def loss(self, out, targets, lengths, grad=True):
        Y, tl = targets
        return losses.ctc(out, Y, lengths, tl, blank=self.blank, zero_infinity=True, grad=grad)

    def predict(self, model, seqs, width=1, **fusion):
        """Each sequence's labels: best path (width 1) or the best of a prefix
        beam search of that width; fusion: a language model's arguments of
        clstm.decode.beam_search (lm, alphabet, lm_weight, lm_bonus)."""
        out = []
        for i in range(0, len(seqs), 64):
            X, lens, _ = seqs.batch(np.arange(i, min(i + 64, len(seqs))), dtype=model.dtype)
            z, _ = model.forward(X, lengths=lens, train=False)
            if width == 1 and not fusion:
                out += decode.greedy(z, lens, blank=self.blank)
            else:
                out += [r[0][0] if r else [] for r in
                        decode.beam_search(z, lens, blank=self.blank, width=width, **fusion)]
        return out

    def error_rates(self, model, seqs, width=1, **fusion):
        """(label error rate, share of sequences exactly right) over seqs."""
        pred = self.predict(model, seqs, width, **fusion)
        errors = sum(edit_distance(p, y.tolist()) for p, y in zip(pred, seqs.ys))
        total = sum(len(y) for y in seqs.ys)
        right = sum(p == y.tolist() for p, y in zip(pred, seqs.ys))
        return errors / max(total, 1), right / max(len(seqs), 1)

    def evaluate(self, model, seqs=None):
        seqs = self.val if seqs is None else seqs
        if seqs is None:
            return None
        total = 0.0
        for i in range(0, len(seqs), 64):
            idx = np.arange(i, min(i + 64, len(seqs)))
            X, lens, (Y, tl) = seqs.batch(idx, dtype=model.dtype)
            z, _ = model.forward(X, lengths=lens, train=False)
            each, _ = losses.ctc(z, Y, lens, tl, blank=self.blank, zero_infinity=True,
                                 reduction="none", grad=False)
            total += float(np.sum(each / np.maximum(tl, 1)))  # as the training loss's mean
        cer, exact = self.error_rates(model, seqs)
        return {"val_loss": total / len(seqs), "val_cer": cer, "val_seq_accuracy": exact}


class TranslationTask(_Shuffled):
    """Sequence to sequence (clstm.Seq2Seq) by teacher forcing: each batch
    is sources (Ts, B) and targets (<s> + target, target + </s>, lengths),
    and the loss is the mean cross-entropy per target token, </s> included.

    train, val: clstm.pairs.Pairs; source_vocab, target_vocab: their
    clstm.pairs.Vocabulary (val tokens unseen in training read as <unk>).
    Batches hold pairs of similar source length (pools of 50 batches are
    sorted, then the batches shuffled), so little of a batch is padding.
    Validation: the loss, and with greedy decoding the token error rate
    and the sequence error rate, a source with several references (a word
    with several pronunciations) scored against its closest. The sequence
    error rate chooses the model file (`selects`; the loss breaks ties). label_smoothing: eps of
    the training loss (clstm.losses.cross_entropy); the validation loss is
    the plain cross-entropy either way."""

    stateful = False
    last_only = False
    unit = "pair"
    selects = ("val_ser", "val_loss")  # ties (e.g. every word wrong, early on): the loss
    dtype = np.float32  # set by the Trainer to the model's
    POOL = 50  # batches sorted together by source length

    def __init__(self, train, val=None, batch_size=64, *, source_vocab, target_vocab,
                 metadata=None, max_val=None, label_smoothing=0.0):
        self.train, self.val, self.batch_size = train, val, batch_size
        self.label_smoothing = float(label_smoothing)
        if not 0.0 <= self.label_smoothing <= 1.0:
            raise ValueError("label_smoothing: expected a number in [0, 1], got %r"
                             % (label_smoothing,))
        self.source_vocab, self.target_vocab = source_vocab, target_vocab
        self.metadata = dict(metadata or {})
        self.max_val = max_val
        self._lengths = np.array([len(s) for s in train.sources], np.int64)

    def epoch_order(self, rng):
        order = rng.permutation(len(self.train))
        pool = self.POOL * self.batch_size
        for i in range(0, len(order), pool):  # stable: equal lengths keep their shuffle
            part = order[i:i + pool]
            order[i:i + pool] = part[np.argsort(self._lengths[part], kind="stable")]
        full = len(order) // self.batch_size  # a short last batch stays last
        starts = rng.permutation(full) * self.batch_size
        return np.concatenate([order[s:s + self.batch_size] for s in starts]
                              + [order[full * self.batch_size:]])

    def batch(self, k, order):
        idx = order[k * self.batch_size:(k + 1) * self.batch_size]
        src, src_lens, tgt_in, tgt_out, tgt_lens, _ = self.train.batch(
            idx, self.source_vocab, self.target_vocab)
        return src, (tgt_in, tgt_out, tgt_lens), src_lens

    def model_metadata(self, model):
        train = self.train
        return dict(self.metadata, task="seq2seq", unknown_token="<unk>",
                    max_source_length=str(max(len(s) for s in train.sources)),
                    max_target_length=str(max(len(t) for t in train.targets)))

    @staticmethod
    def units(inputs):
        return inputs.shape[1]

    @staticmethod
    def count(targets, lengths):
        """The number of terms the loss's mean is over (the target tokens)."""
        return int(targets[2].sum())

    @staticmethod
    def rows(inputs, targets, lengths, rows):
        """The batch's rows `rows` (a slice): a data-parallel rank's shard."""
        tgt_in, tgt_out, tgt_lens = targets
        return inputs[:, rows], (tgt_in[:, rows], tgt_out[:, rows], tgt_lens[rows]), lengths[rows]

    @staticmethod
    def forward(model, inputs, targets, lengths, dropout_seed):
        return model.forward(inputs, targets[0], src_lengths=lengths, tgt_lengths=targets[2],
                             train=True, dropout_seed=dropout_seed)

    def loss(self, out, targets, lengths, grad=True):
        return losses.cross_entropy(out, targets[1], targets[2], grad=grad,
                                    label_smoothing=self.label_smoothing)

    def predict(self, model, sources, width=1, alpha=1.0, batch_size=64):
        """The best target token list for each source token list."""
        out = []
        for i in range(0, len(sources), batch_size):
            src, lens, _ = model.encode_sources(sources[i:i + batch_size])
            toks, lengths, _ = model.beam_search(src, lens, width=width, alpha=alpha)
            out += [model.target_vocabulary.decode(toks[b, 0, :lengths[b, 0]].tolist())
                    for b in range(src.shape[1])]
        return out

    def error_rates(self, model, data, width=1, alpha=1.0):
        """(token error rate, sequence error rate, sources) over data (Pairs),
        grouped by source: a source's prediction is right when it equals any
        of its references, and its token errors are those to its closest
        reference (ties: the longer), over that reference's length."""
        refs = collections.OrderedDict()
        for s, t in zip(data.sources, data.targets):
            refs.setdefault(tuple(s), []).append(list(t))
        sources = list(refs)
        pred = self.predict(model, [list(s) for s in sources], width, alpha)
        errors = total = wrong = 0
        for p, rs in zip(pred, refs.values()):
            d, n = min(((edit_distance(p, r), -len(r)) for r in rs))
            errors += d
            total -= n
            wrong += d > 0
        return errors / max(total, 1), wrong / max(len(sources), 1), len(sources)

    def evaluate(self, model, data=None):
        data = self.val if data is None else data
        if data is None:
            return None
        if self.max_val is not None and len(data) > self.max_val:
            data = data.subset(range(self.max_val))
        total = count = 0.0
        for i in range(0, len(data), 256):
            src, sl, ti, to, tl, _ = data.batch(range(i, min(i + 256, len(data))),
                                                self.source_vocab, self.target_vocab)
            z = model.forward(src, ti, src_lengths=sl, tgt_lengths=tl, train=False)
            loss, _ = losses.cross_entropy(z, to, tl, grad=False)
            total += loss * float(tl.sum())
            count += float(tl.sum())
        ter, ser, _ = self.error_rates(model, data)
        return {"val_loss": total / max(count, 1), "val_ter": ter, "val_ser": ser}
