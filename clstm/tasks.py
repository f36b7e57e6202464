"""Training tasks: what the Trainer trains on, each owning its batches, its
loss, its validation and the metadata its model files carry.

    LanguageModelTask  next-token prediction over a text (truncated BPTT);
                       metadata task "char"
    SequenceTask       one prediction per sequence: classification (metadata
                       task "classify", classes) or regression
    ForecastTask       a real series as windows -> the next values; metadata
                       task "forecast", window, horizon, mean, std, column:
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
           "LabellingTask", "TranslationTask", "edit_distance"]


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
    Mini-batches of variable-length sequences, reshuffled every epoch."""

    stateful = False
    last_only = True
    unit = "seq"

    def __init__(self, train, val=None, batch_size=32, kind="classify"):
        if kind not in ("classify", "regress"):
            raise ValueError("kind: expected 'classify' or 'regress', got %r" % (kind,))
        self.train, self.val, self.kind = train, val, kind
        self.batch_size = batch_size

    def batch(self, k, order):
        X, lens, y = self.train.batch(order[k * self.batch_size:(k + 1) * self.batch_size])
        return X.astype(self.dtype, copy=False), y, lens

    dtype = np.float64  # set by the Trainer to the model's

    def model_metadata(self, model):
        """The model file's metadata for this task: a classifier's task and
        class count (what `clstm evaluate` checks); none for a regression."""
        if self.kind == "classify":
            return {"task": "classify", "classes": str(model.output_size)}
        return {}

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
        return f(out, targets, lengths, last_only=True, grad=grad)

    def predict(self, model, seqs):
        """The model's output at each sequence's last valid step, (N, O)."""
        outs = []
        for i in range(0, len(seqs), 256):
            idx = np.arange(i, min(i + 256, len(seqs)))
            X, lens, _ = seqs.batch(idx)
            out, _ = model.forward(X, lengths=lens, train=False)
            outs.append(out[lens - 1, np.arange(len(idx))])
        return np.concatenate(outs)

    def evaluate(self, model, seqs=None):
        seqs = self.val if seqs is None else seqs
        if seqs is None:
            return None
        pred = self.predict(model, seqs)
        if self.kind == "classify":
            loss, _ = losses.cross_entropy(pred[None], seqs.y[None].astype(np.int32), grad=False)
            return {"val_loss": loss, "val_accuracy": float(np.mean(pred.argmax(1) == seqs.y))}
        loss, _ = losses.mse(pred[None], seqs.y[None].astype(pred.dtype), grad=False)
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
(ints), mean and std (floats: the normalisation), column (str or None)."""


def _count(v, name):
    """An int >= 1 (never a bool)."""
    v = checks.as_int(v, name)
    if v < 1:
        raise ValueError("%s: expected >= 1, got %d" % (name, v))
    return v


class ForecastTask(SequenceTask):
    """Forecasting a real series: each window of `window` consecutive values
    predicts the `horizon` values after it (mean squared error). The series
    is normalised by its mean and standard deviation (kept in the model's
    metadata, with window, horizon and column, so `clstm forecast` can use
    the model); the last val_fraction of the windows are held out for
    validation (no look-ahead). DataError when the series is too short."""

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
        self.mean, self.std = float(series.mean()), float(series.std()) or 1.0
        self.column = column
        seqs = windows((series - self.mean) / self.std, self.window, self.horizon)
        n_val = int(len(seqs) * val_fraction)  # the last windows: no look-ahead
        train = seqs.subset(np.arange(len(seqs) - n_val))
        val = seqs.subset(np.arange(len(seqs) - n_val, len(seqs))) if n_val else None
        super().__init__(train, val, batch_size, kind="regress")

    def model_metadata(self, model=None):
        md = dict(task="forecast", window=str(self.window), horizon=str(self.horizon),
                  mean=repr(self.mean), std=repr(self.std))
        if self.column is not None:
            md["column"] = self.column
        return md

    @staticmethod
    def settings(model):
        """The ForecastSettings in a forecaster's metadata; ValueError naming
        what is missing or malformed (e.g. not a forecaster)."""
        md = model.metadata
        if md.get("task") != "forecast":
            raise ValueError("model: not a forecasting model (its task is %s)"
                             % (md.get("task") or "unknown"))
        values = []
        valid = {"window": lambda v: v >= 1, "horizon": lambda v: v >= 1,
                 "mean": math.isfinite, "std": lambda v: math.isfinite(v) and v > 0}
        for key, kind in (("window", int), ("horizon", int), ("mean", float), ("std", float)):
            try:
                values.append(kind(md[key]))
            except (KeyError, ValueError):
                raise ValueError("model: its forecasting metadata %r is %s" % (
                    key, "missing" if key not in md else "not a number: %r" % md[key])) from None
            if not valid[key](values[-1]):
                raise ValueError("model: its forecasting metadata %r is out of range: %r"
                                 % (key, md[key]))
        return ForecastSettings(*values, md.get("column"))

    @staticmethod
    def forecast(model, series, settings):
        """The `horizon` values after the last of `series` (the model's last
        window of it, on the series' own scale)."""
        s = settings
        z = (np.asarray(series, dtype=np.float64) - s.mean) / s.std
        if z.ndim != 1 or len(z) < s.window:
            raise ValueError("series: expected at least the window's %d values, got shape %s"
                             % (s.window, z.shape))
        x = z[-s.window:].reshape(s.window, 1, 1)
        out, _ = model.forward(x.astype(model.dtype), train=False)
        return out[-1, 0] * s.std + s.mean

    @staticmethod
    def one_step_errors(model, series, settings):
        """(windows, the model's one-step MSE, persistence's) over every window
        of series, or None when it holds fewer than two."""
        s = settings
        series = np.asarray(series, dtype=np.float64)
        if len(series) < s.window + s.horizon + 1:
            return None
        seqs = windows((series - s.mean) / s.std, s.window, s.horizon)
        p = SequenceTask(seqs, None, 256, kind="regress").predict(model, seqs)[:, 0]
        p = p * s.std + s.mean
        actual = seqs.y[:, 0] * s.std + s.mean
        persist = seqs.X[:, -1, 0] * s.std + s.mean
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
