"""The `clstm` command line (also `python -m clstm`).

  clstm train                      a character model of a built-in text (no download)
  clstm train --text FILE          a character model of any UTF-8 text
  clstm train --csv FILE --column NAME     forecast a real-valued series
  clstm train --npz FILE           classify sequences (X, lengths, y)
  clstm train --lines DIR          recognize text lines (name.png + name.gt.txt), CTC
  clstm train --pairs FILE.tsv     translate: source<TAB>target lines (an encoder-decoder)
  clstm sample MODEL               generate text from a character model
  clstm forecast MODEL --csv FILE --column NAME
  clstm recognize MODEL IMAGE...   one line of text per line image
  clstm translate MODEL            one target per source line read on stdin
  clstm evaluate MODEL --npz FILE  accuracy and confusion matrix
  clstm evaluate MODEL --lines DIR character error rate and line accuracy
  clstm evaluate MODEL --pairs FILE.tsv    token and sequence error rates
  clstm info MODEL                 what a model file holds
  clstm quantize MODEL OUT         an int8 copy for inference (about 4x smaller)
  clstm export MODEL --onnx OUT    a bare LSTM as ONNX

Bad input gives a one-line message and exit status 2; Ctrl-C during
training writes a checkpoint (resume with --resume) and exits with 130;
a training loss that becomes NaN or infinite exits with 3 (all the exit
statuses are listed below).
For scripts: --json (machine-readable output) and --quiet (nothing but
results and errors) on the commands that say so in their --help.

  mpirun -np N clstm train ...     data-parallel over MPI (see --mpi)
"""
import argparse
import contextlib
import functools
import json
import os
import sys
import textwrap
import time

import numpy as np

import clstm
from clstm import data as D
from clstm import distributed, ocr
from clstm import pairs as P
from clstm.config import SETTINGS
from clstm.seq2seq import DECODER_SETTINGS, _metadata_int
from clstm.sampling import generate_text
from clstm.tasks import (ForecastTask, LabellingTask, LanguageModelTask, SequenceTask,
                         TranslationTask, POOLINGS, model_pooling, model_scaling)
from clstm.trainer import Interrupted, NonFiniteLoss, Trainer

# The exit statuses, all of them (`clstm --help` lists EXIT_CODES).
EXIT_OK = 0
EXIT_INTERNAL = 1  # Python's own status for an uncaught exception: a bug in clstm
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as the shell reports a program Ctrl-C stopped
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a C program's shell status when its reader left
EXIT_CODES = (
    (EXIT_OK, "success (also a training run that --max-steps, --max-minutes or --patience "
              "ended; it is checkpointed)"),
    (EXIT_INTERNAL, "an internal error: a bug in clstm (Python prints a traceback); please "
                    "report it"),
    (EXIT_BAD_INPUT, "bad input: an unknown option or a bad value, or an unreadable, "
                     "malformed or mismatched file; a one-line message on stderr (after the "
                     "usage line for a bad option), nothing written"),
    (EXIT_DIVERGED, "train: the loss or gradient became NaN or infinite; the last checkpoint "
                    "and model file are kept (try a lower --lr or --clip)"),
    (EXIT_INTERRUPTED, "interrupted (Ctrl-C); train writes a checkpoint first (continue with "
                       "--resume)"),
    (EXIT_BROKEN_PIPE, "stdout was closed by its reader (clstm ... | head): a quiet end"),
)


def _exit_codes_epilog():
    return "exit status:\n" + "\n".join(
        textwrap.fill(text, 79, initial_indent="  %-4d " % code, subsequent_indent=" " * 7)
        for code, text in EXIT_CODES)


# --npz's default epochs: at least this many steps (chosen from 300, 600 and
# 1200 on held-out shares of two UEA training sets: bench/RESULTS.md)
NPZ_MIN_STEPS = 600


class UsageError(Exception):
    """A one-line message for the user; exit status 2."""
    status = EXIT_BAD_INPUT


class Diverged(UsageError):
    """Training's loss became non-finite: a one-line message, exit status 3."""
    status = EXIT_DIVERGED


def _add_output(p, quiet=None, json=None):
    """--quiet and --json on a command, each with what it means there (None:
    the command does not take it)."""
    g = p.add_argument_group("output (for scripts)")
    if quiet is not None:
        g.add_argument("--quiet", action="store_true",
                       help="print nothing but errors%s" % quiet)
    if json is not None:
        g.add_argument("--json", action="store_true",
                       help="print JSON on stdout instead of text: %s (errors stay one line "
                            "on stderr)" % json)


def _note(args, text):
    """A message for a person (not the command's result): on stdout, on
    stderr with --json (stdout holds JSON only), nowhere with --quiet."""
    if getattr(args, "quiet", False):
        return
    print(text, file=sys.stderr if getattr(args, "json", False) else sys.stdout, flush=True)


def _plain(obj):
    """obj with NumPy scalars and arrays made Python's, and NaN and
    infinities made None (null), so that any JSON parser reads it."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, np.ndarray)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (np.integer, np.bool_)):
        return obj.item()
    if isinstance(obj, (float, np.floating)):
        return float(obj) if np.isfinite(obj) else None
    return obj


def _json_line(obj):
    """obj as one line of JSON (UTF-8 text, not \\u escapes)."""
    return json.dumps(_plain(obj), ensure_ascii=False, allow_nan=False) + "\n"


def _emit(obj):
    """One JSON object on one line of stdout."""
    _write_utf8(_json_line(obj))


def _positive(kind):
    def parse(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError("expected a %s, got %r" % (kind.__name__, s))
        if not v > 0:
            raise argparse.ArgumentTypeError("expected a value > 0, got %r" % s)
        return v
    parse.__name__ = kind.__name__
    return parse


def _nonneg(kind):
    def parse(s):
        try:
            v = kind(s)
        except ValueError:
            raise argparse.ArgumentTypeError("expected a %s, got %r" % (kind.__name__, s))
        if not v >= 0:
            raise argparse.ArgumentTypeError("expected a value >= 0, got %r" % s)
        return v
    parse.__name__ = kind.__name__
    return parse


def _width(s):
    """A beam width: 1 to clstm's most."""
    v = _positive(int)(s)
    if v > clstm._core.SEQ2SEQ_MAX_WIDTH:
        raise argparse.ArgumentTypeError("expected at most %d, got %r"
                                         % (clstm._core.SEQ2SEQ_MAX_WIDTH, s))
    return v


def _finite_nonneg(s):
    v = _nonneg(float)(s)
    if not np.isfinite(v):
        raise argparse.ArgumentTypeError("expected a finite number, got %r" % s)
    return v


def _fraction(s):
    try:
        v = float(s)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number, got %r" % s)
    if not 0 <= v < 1:
        raise argparse.ArgumentTypeError("expected a number in [0, 1), got %r" % s)
    return v


def _load_model(path, want=None):
    """A model file, or UsageError naming the problem. want: 'char',
    'forecast' or 'classify' -- the task the command needs."""
    try:
        model = clstm.load(path)
    except (OSError, ValueError) as e:
        raise UsageError("%s" % e) from None
    task = (model.metadata.get("task") if isinstance(model, (clstm.Model, clstm.Seq2Seq))
            else None)
    if want == "char" and (not isinstance(model, clstm.Model) or model.vocab is None
                           or not model.softmax):
        raise UsageError("%s: not a character model (it has no vocabulary and softmax head); "
                         "train one with `clstm train --text FILE`" % path)
    if want == "seq2seq" and not (isinstance(model, clstm.Seq2Seq)
                                  and model.source_vocabulary is not None
                                  and model.target_vocabulary is not None):
        raise UsageError("%s: not an encoder-decoder with token vocabularies; train one with "
                         "`clstm train --pairs FILE.tsv`" % path)
    if want in ("forecast", "classify", "ctc") and task != want:
        raise UsageError("%s: not a %s model (its task is %s)"
                         % (path, {"forecast": "forecasting", "classify": "classification",
                                   "ctc": "text-line recognition"}[want], task or "unknown"))
    if want in ("forecast", "classify"):
        try:
            model_scaling(model)  # what evaluate and forecast apply, checked once here
            model_pooling(model)
        except ValueError as e:
            raise UsageError("%s: %s" % (path, e)) from None
    return model


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Adds "(default: X)" only where the help does not already say it and
    there is a default to show."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or any(action.default is v for v in (None, argparse.SUPPRESS)):
            return text
        return super()._get_help_string(action)


def _add_common(p, out_default):
    g = p.add_argument_group("model and run")
    g.add_argument("--out", default=out_default, help="where the trained model is written")
    g.add_argument("--epochs", type=_positive(int), default=None,
                   help="passes over the training data (default: 10 for the built-in "
                        "text, 5 for --text, 20 for --csv; for --npz 10, or as many as "
                        "%d steps take on a smaller set)" % NPZ_MIN_STEPS)
    g.add_argument("--hidden", type=_positive(int), default=None,
                   help="LSTM hidden size H (default: 256 for character models, 128 for "
                        "--lines, 64 otherwise)")
    g.add_argument("--layers", type=_positive(int), default=None,
                   help="LSTM layers L (default: 2 for --lines, 1 otherwise)")
    g.add_argument("--seed", type=_nonneg(int), default=0, help="random seed")
    g.add_argument("--threads", type=_nonneg(int), default=0,
                   help="threads (0: clstm's default, all cores)")


def _train_parser(sub):
    p = sub.add_parser(
        "train", help="train a model (default: a character model of a built-in text)",
        formatter_class=_HelpFormatter,
        description="Train a model. With no data option: a character-level language model "
                    "of the Python reference manual's text that ships with Python itself "
                    "(pydoc_data), so nothing is downloaded.")
    src = p.add_argument_group("data (at most one; none: the built-in text)")
    src.add_argument("--text", metavar="FILE", help="UTF-8 text for a character model")
    src.add_argument("--csv", metavar="FILE", help="CSV file with a real-valued series")
    src.add_argument("--column", metavar="NAME", help="the CSV column to forecast")
    src.add_argument("--window", type=_positive(int), default=50,
                     help="forecasting: input steps per example")
    src.add_argument("--horizon", type=_positive(int), default=1,
                     help="forecasting: values predicted after each window")
    src.add_argument("--npz", metavar="FILE",
                     help=".npz with X (N, T_max, D), lengths (N), y (N) class labels")
    src.add_argument("--lines", metavar="DIR",
                     help="text-line images, each name.png beside its transcript name.gt.txt "
                          "(needs Pillow: pip install 'pyclstm[ocr]')")
    src.add_argument("--line-height", type=_positive(int), default=32,
                     help="--lines: images are scaled to this many pixels high")
    src.add_argument("--columns-per-step", type=_positive(int), default=None,
                     help="--lines: neighbouring pixel columns the LSTM reads as one time "
                          "step (default 2; more: fewer, wider steps, faster; each "
                          "character needs 1-2 steps)")
    src.add_argument("--augment", action="store_true",
                     help="--lines: degrade each training line anew every epoch (type "
                          "width, stroke weight, skew, resolution loss, blur, contrast, "
                          "noise, speckles)")
    src.add_argument("--pairs", metavar="FILE",
                     help="source<TAB>target lines, one pair per line (UTF-8): an "
                          "encoder-decoder with attention learns to translate")
    src.add_argument("--source-tokens", choices=P.TOKENIZATIONS, default=None,
                     help="--pairs: a source is split into characters, or at spaces "
                          "(default: char)")
    src.add_argument("--target-tokens", choices=P.TOKENIZATIONS, default=None,
                     help="--pairs: a target is split into characters, or at spaces "
                          "(default: char)")
    src.add_argument("--val-pairs", metavar="FILE", default=None,
                     help="--pairs: validation pairs from this file instead of a share of "
                          "--pairs")
    src.add_argument("--val-fraction", type=_fraction, default=0.1,
                     help="share of the data held out for validation")
    _add_common(p, "model.safetensors")
    m = p.add_argument_group("model")
    m.add_argument("--embedding", type=_nonneg(int), default=0,
                   help="character models: embedding width (0: one-hot input)")
    m.add_argument("--dropout", type=_fraction, default=0.0,
                   help="dropout between LSTM layers")
    m.add_argument("--bidirectional", action=argparse.BooleanOptionalAction, default=None,
                   help="--npz, --csv: an LSTM that reads each sequence both ways (default: "
                        "no)")
    m.add_argument("--standardize", action=argparse.BooleanOptionalAction, default=None,
                   help="--npz: scale each input feature to mean 0, std 1 over the training "
                        "split (kept in the model, which applies it to whatever it reads; "
                        "default: yes)")
    m.add_argument("--pooling", choices=POOLINGS, default=None,
                   help="--npz: a sequence's class is read from the output at its last "
                        "step, or from the mean of its outputs over its steps (mean suits "
                        "--bidirectional; default: last)")
    m.add_argument("--decoder-hidden", type=_positive(int), default=None,
                   help="--pairs: the decoder's hidden size (default: the encoder's output "
                        "width, 2 x --hidden)")
    m.add_argument("--decoder-layers", type=_positive(int), default=1,
                   help="--pairs: decoder LSTM layers (1 to 8)")
    m.add_argument("--attention", choices=("general", "dot"), default="general",
                   help="--pairs: Luong attention score, h . W_a s (general) or h . s (dot)")
    m.add_argument("--label-smoothing", type=_fraction, default=None,
                   help="--pairs: the training loss's label smoothing eps (the target is "
                        "(1 - eps) one-hot + eps / V; default 0.1, which took G2P's test "
                        "WER from 25.8%% to 24.0%% in bench/g2p.py)")
    o = p.add_argument_group("optimisation")
    o.add_argument("--optimizer", choices=("adam", "adamw", "sgd"), default="adam",
                   help="optimizer")
    o.add_argument("--lr", type=_positive(float), default=None,
                   help="learning rate (default: 0.002 for Adam, 0.1 for SGD)")
    o.add_argument("--weight-decay", type=_nonneg(float), default=0.0, help="weight decay")
    o.add_argument("--momentum", type=_nonneg(float), default=0.9, help="SGD momentum")
    o.add_argument("--clip", type=_nonneg(float), default=5.0,
                   help="global gradient-norm bound (0: none)")
    o.add_argument("--schedule", choices=("constant", "step", "cosine"), default="cosine",
                   help="learning-rate schedule")
    o.add_argument("--warmup", type=_nonneg(int), default=50,
                   help="linear warm-up steps")
    o.add_argument("--batch", type=_positive(int), default=None,
                   help="batch size B (default: 32)")
    o.add_argument("--bptt", type=_positive(int), default=100,
                   help="character models: steps per truncated-BPTT chunk")
    o.add_argument("--patience", type=_nonneg(int), default=None,
                   help="stop after this many evaluations without a better validation "
                        "loss (default: never)")
    r = p.add_argument_group("progress, checkpoints, logs")
    r.add_argument("--eval-every", type=_nonneg(int), default=0,
                   help="evaluate every N steps (0: about 10 times per run)")
    r.add_argument("--sample-every", type=_nonneg(int), default=None,
                   help="character models: print a sample every N steps (0: never; "
                        "default: at each evaluation)")
    r.add_argument("--checkpoint", metavar="PATH", default=None,
                   help="checkpoint file (default: OUT with .ckpt.npz)")
    r.add_argument("--checkpoint-every", type=_nonneg(int), default=200,
                   help="steps between checkpoints (0: only at epoch ends)")
    r.add_argument("--resume", metavar="CKPT",
                   help="continue the run saved in this checkpoint (same data options)")
    r.add_argument("--log", metavar="PATH", default=None,
                   help="metrics log, .jsonl or .csv (default: OUT with .log.jsonl)")
    r.add_argument("--plot", metavar="PNG", default=None,
                   help="at the end, write a PNG of every step's training loss (and its "
                        "smoothed curve), the validation loss and the validation accuracy "
                        "or error rates (needs matplotlib: pip install 'pyclstm[plot]')")
    r.add_argument("--max-steps", type=_positive(int), default=None,
                   help="stop after this many steps in total (checkpointed; resumable)")
    r.add_argument("--max-minutes", type=_positive(float), default=None,
                   help="stop after this much wall time in this run, reading the data "
                        "included (checkpointed; resumable); a cosine schedule anneals by "
                        "this clock too, so the run ends at the final rate")
    r.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it is on stderr)")
    r.add_argument("--mpi", action="store_true",
                   help="train data-parallel over MPI, one rank per process: `mpirun -np N "
                        "clstm train ...` (automatic when mpirun starts more than one "
                        "process; needs mpi4py: pip install 'pyclstm[mpi]')")
    _add_output(p, quiet=": no progress bar, no lines per evaluation, no samples, no summary "
                         "(the model, checkpoint, log and plot are written as usual)",
                json="one object per evaluation, the log's record with \"event\": "
                     "\"evaluation\", as it happens, then one with \"event\": \"summary\" "
                     "(model, steps, seconds, best validation score, ...); the other "
                     "messages go to stderr (with --quiet: nowhere)")
    p.set_defaults(func=cmd_train)


def _stem(path):
    base = path[:-len(".safetensors")] if path.endswith(".safetensors") else path
    return base


def _build_task(args):
    """(task, model, defaults) for the data options of a train command; the
    Trainer writes the task's metadata into the model."""
    sources = [s for s in ("text", "csv", "npz", "lines", "pairs") if getattr(args, s)]
    if len(sources) > 1:
        raise UsageError("give at most one of --text, --csv, --npz, --lines, --pairs (got %s)"
                         % ", ".join("--" + s for s in sources))
    for flag, given in (("--source-tokens", args.source_tokens), ("--val-pairs", args.val_pairs),
                        ("--target-tokens", args.target_tokens),
                        ("--decoder-hidden", args.decoder_hidden),
                        ("--decoder-layers", args.decoder_layers != 1),
                        ("--attention", args.attention != "general"),
                        ("--label-smoothing", args.label_smoothing is not None)):
        if given and not args.pairs:
            raise UsageError("%s goes with --pairs FILE" % flag)
    for flag, given in (("--augment", args.augment),
                        ("--columns-per-step", args.columns_per_step is not None)):
        if given and not args.lines:
            raise UsageError("%s goes with --lines DIR" % flag)
    for flag, given, kinds in (("--bidirectional", args.bidirectional is not None,
                                ("npz", "csv")),
                               ("--standardize", args.standardize is not None, ("npz",)),
                               ("--pooling", args.pooling is not None, ("npz",))):
        if given and not any(getattr(args, k) for k in kinds):
            raise UsageError("%s goes with %s" % (flag, " or ".join("--%s FILE" % k
                                                                   for k in kinds)))
    if args.csv and not args.column:
        raise UsageError("--csv needs --column NAME (the series to forecast)")
    if args.column and not args.csv:
        raise UsageError("--column goes with --csv FILE")
    seed = args.seed
    rng = np.random.default_rng([seed, 0xDA7A])
    if args.csv:
        series = D.read_csv_column(args.csv, args.column)
        task = ForecastTask(series, args.window, args.horizon, val_fraction=args.val_fraction,
                            batch_size=args.batch or 32, column=args.column)
        model = clstm.Model(1, args.hidden or 64, args.layers, output_size=args.horizon,
                            bidirectional=bool(args.bidirectional), dropout=args.dropout,
                            seed=seed)
        return task, model, dict(epochs=20)
    if args.lines:
        k = args.columns_per_step or 2
        lines, alphabet = ocr.read_lines(args.lines, args.line_height, per_step=k)
        train, val = lines.split(args.val_fraction, rng)
        augment = functools.partial(ocr.augment, per_step=k) if args.augment else None
        task = LabellingTask(train, val, args.batch or 16, blank=0, alphabet=alphabet,
                             augment=augment, seed=seed,
                             metadata={"line_height": str(args.line_height),
                                       "columns_per_step": str(k)})
        # ocropy's and the old clstm's shape: a bidirectional LSTM over the columns
        model = clstm.Model(k * args.line_height, args.hidden or 128, args.layers,
                            bidirectional=True, output_size=len(alphabet) + 1,
                            dropout=args.dropout, seed=seed)
        return task, model, dict(epochs=50)
    if args.pairs:
        return _pairs_task(args, rng)
    if args.npz:
        X, lengths, y = D.read_npz(args.npz)
        n_classes = int(y.max()) + 1
        train, val = D.Sequences(X, lengths, y).split(args.val_fraction, rng)
        task = SequenceTask(train, val, args.batch or 32, kind="classify",
                            standardize=args.standardize is not False,
                            pooling=args.pooling or "last")
        model = clstm.Model(X.shape[2], args.hidden or 64, args.layers,
                            bidirectional=bool(args.bidirectional), output_size=n_classes,
                            softmax=True, dropout=args.dropout, seed=seed)
        # small sets need more passes: at least NPZ_MIN_STEPS steps (bench/RESULTS.md)
        return task, model, dict(epochs=max(10, -(-NPZ_MIN_STEPS // task.n_batches)))
    text = D.read_text(args.text) if args.text else D.builtin_text()
    stream = D.TextStream(text, val_fraction=args.val_fraction)
    task = LanguageModelTask(stream, args.batch or 32, args.bptt)
    enc = dict(encoding="embedding", input_size=args.embedding) if args.embedding else {}
    model = clstm.Model(hidden_size=args.hidden or 256, num_layers=args.layers,
                        vocab=stream.vocab, output_size=len(stream.vocab), softmax=True,
                        dropout=args.dropout, seed=seed, **enc)
    # the built-in default: 1310 steps, about 75 s on 2 cores
    return task, model, dict(epochs=10 if not args.text else 5)


def _pairs_task(args, rng):
    """An encoder-decoder and its TranslationTask, for --pairs."""
    split = dict(source_tokens=args.source_tokens or "char",
                 target_tokens=args.target_tokens or "char")
    data = P.read_pairs(args.pairs, **split)
    if args.val_pairs:
        train, val = data, P.read_pairs(args.val_pairs, **split)
    else:
        train, val = data.split(args.val_fraction, rng)
    sv, tv = train.vocabularies()
    if args.decoder_layers > 8:
        raise UsageError("--decoder-layers: expected 1 to 8, got %d" % args.decoder_layers)
    if val is not None:
        _, _, _, _, _, unknown = val.batch(range(len(val)), sv, tv)
        if unknown:
            _note(args, "note: %d validation tokens are not in the training pairs; they read "
                        "as <unk>" % unknown)
    hidden = args.hidden or 256
    try:
        model = clstm.Seq2Seq(sv, tv, embedding=args.embedding or 64, hidden_size=hidden,
                              num_layers=args.layers, dropout=args.dropout,
                              decoder_hidden=args.decoder_hidden,
                              decoder_layers=args.decoder_layers, attention=args.attention,
                              source_split=split["source_tokens"],
                              target_split=split["target_tokens"], seed=args.seed)
    except ValueError as e:
        raise UsageError(str(e)) from None
    task = TranslationTask(train, val, args.batch or 64, source_vocab=sv, target_vocab=tv,
                           label_smoothing=0.1 if args.label_smoothing is None
                           else args.label_smoothing)
    return task, model, dict(epochs=20)


def cmd_train(args):
    """Single-process, or one rank of a data-parallel job: rank 0 speaks and
    writes; the others train silently (rank 0 reports their shared errors)."""
    dp = _data_parallel(args)
    if dp is None or dp.rank == 0:
        return _train(args, dp)
    try:
        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null), \
                contextlib.redirect_stderr(null):
            return _train(args, dp)
    except (UsageError, D.DataError) as e:
        return getattr(e, "status", EXIT_BAD_INPUT)  # rank 0's error, which it prints


def _data_parallel(args):
    """A DataParallel with --mpi or when an MPI launcher started this process
    among several; None for a plain run (mpi4py is never imported then)."""
    rank, size = distributed.launched()
    if not args.mpi and size == 1:
        return None
    try:
        return distributed.DataParallel()
    except RuntimeError:
        if rank:  # rank 0 prints the message
            raise SystemExit(EXIT_BAD_INPUT) from None
        raise UsageError("%s needs mpi4py and an MPI library: %s" % (
            "--mpi" if args.mpi else "run by mpirun as one of %d processes, training" % size,
            distributed.INSTALL_HINT)) from None


def _train(args, dp):
    if args.threads:
        clstm.set_num_threads(args.threads)
    elif dp is not None:  # the host's cores shared among its ranks
        clstm.set_num_threads(max(1, clstm.get_num_threads() // dp.local_size))
    error = None
    try:
        trainer, model = _setup_training(args, dp)
    except (UsageError, D.DataError) as e:
        error = e
    except BaseException as e:
        if dp is None:
            raise
        dp.abort("clstm train failed while setting up (%s: %s)" % (type(e).__name__, e), e)
    if dp is not None:  # every rank stops, or none does (no rank waits for ever)
        error = dp.agree(error)
    if error is not None:
        raise error
    start = time.perf_counter()
    try:
        history = trainer.fit(max_steps=args.max_steps,
                              max_seconds=None if args.max_minutes is None else
                              max(0.0, 60 * args.max_minutes
                                  - (time.perf_counter() - getattr(args, "started", start))))
    except Interrupted as e:
        print("\nclstm train: %s; continue with: clstm train ... --resume %s"
              % (e, trainer.checkpoint), file=sys.stderr)
        return EXIT_INTERRUPTED
    except NonFiniteLoss as e:
        raise Diverged("%s; the last good checkpoint (%s) and model (%s) are kept. Try a "
                       "lower --lr or --clip." % (e, trainer.checkpoint, trainer.out)) from None
    elapsed = time.perf_counter() - start
    if not trainer.is_root:
        return 0
    last = history[-1] if history else {}
    metrics = ("train_loss", "val_loss", "val_accuracy", "val_cer", "val_ter", "val_ser")
    _note(args, "done: %d steps in %.1f s; %s; model written to %s"
          % (trainer.step, elapsed, ", ".join("%s %.4f" % (k, last[k]) for k in metrics
                                               if last.get(k) is not None), trainer.out))
    if args.plot:
        _plot(trainer, args.plot)
    sample = None
    if isinstance(model, clstm.Model) and model.vocab is not None and not args.quiet:
        best = clstm.load(trainer.out) if os.path.exists(trainer.out) else trainer.model
        sample = generate_text(best, "", 300, 0.8, seed=args.seed)
        if not args.json:
            print("sample:\n" + sample)
    if args.json:
        selects = getattr(trainer.task, "selects", "val_loss")
        _emit(dict(event="summary", model=trainer.out, checkpoint=trainer.checkpoint,
                   log=trainer.log, plot=args.plot, steps=trainer.step,
                   total_steps=trainer.total_steps, epoch=trainer.step / trainer.task.n_batches,
                   seconds=round(elapsed, 3), selects=selects, best=trainer.best_val,
                   last={k: last[k] for k in metrics if last.get(k) is not None},
                   sample=sample))
    return EXIT_OK


def _setup_training(args, dp):
    """(trainer, model) for a train command, or UsageError/DataError."""
    if args.layers is None:
        args.layers = 2 if args.lines else 1
    if args.dropout and args.layers == 1:
        raise UsageError("--dropout applies between LSTM layers: it needs --layers 2 or more")
    for path, what in ((args.out, "--out"), (args.checkpoint, "--checkpoint"),
                       (args.log, "--log")):
        _check_output_path(path, what)
    if args.plot:
        _check_plot_path(args)
    task, model, defaults = _build_task(args)
    stem = _stem(args.out)
    checkpoint = args.checkpoint or stem + ".ckpt.npz"
    log = args.log or stem + ".log.jsonl"
    if args.resume:
        trainer = Trainer.resume(args.resume, task, distributed=dp, **_reporting(args))
        if isinstance(task, TranslationTask):  # the model's token ids are the data's
            m = trainer.model
            for side, mine, data in (("source", m.source_vocabulary, task.source_vocab),
                                     ("target", m.target_vocabulary, task.target_vocab)):
                if mine is None or mine.tokens != data.tokens:
                    raise UsageError("--resume %s: the %s tokens of --pairs differ from the "
                                     "checkpoint's model's; resume with the data it was "
                                     "trained on" % (args.resume, side))
        _note(args, "resuming %s at step %d of %d%s"
              % (args.resume, trainer.step, trainer.total_steps,
                 "" if dp is None else " on %d ranks" % dp.size))
        return trainer, trainer.model
    epochs = args.epochs or defaults["epochs"]
    total = epochs * task.n_batches
    eval_every = args.eval_every or max(1, total // 10)
    sample_every = eval_every if args.sample_every is None else args.sample_every
    lr = args.lr or (0.1 if args.optimizer == "sgd" else 0.002)
    trainer = Trainer(
        model, task, optimizer=args.optimizer, lr=lr, weight_decay=args.weight_decay,
        momentum=args.momentum, clip=args.clip, schedule=args.schedule,
        warmup=min(args.warmup, total // 5), epochs=epochs, seed=args.seed,
        patience=args.patience, eval_every=eval_every, out=args.out,
        checkpoint=checkpoint, checkpoint_every=args.checkpoint_every, log=log,
        sample_every=sample_every, distributed=dp, config={
            k: v for k, v in vars(args).items()
            if k not in ("func", "mpi", "started", "quiet", "json")},
        **_reporting(args))
    n_params = model.flat_parameters.size
    _note(args, "clstm %s: training %s on %s (%d parameters, %d steps of batch %d, %d threads%s)"
          % (clstm.__version__, _describe(model), _source(args), n_params, total,
             task.batch_size, clstm.get_num_threads(),
             "" if dp is None else " per rank, %d ranks" % dp.size))
    return trainer, model


def _reporting(args):
    """The Trainer's progress bar, evaluation lines and samples as --quiet,
    --json and --no-progress ask (none of them is kept in the checkpoint)."""
    on_evaluation = (lambda rec: _emit(dict(event="evaluation", **rec))) if args.json else None
    return dict(progress=not (args.no_progress or args.quiet),
                verbose=not (args.quiet or args.json), on_evaluation=on_evaluation)


def _describe(model):
    if isinstance(model, clstm.Seq2Seq):
        return ("an encoder-decoder (LSTM H=%d L=%d%s, decoder H=%d L=%d, %s attention, "
                "vocabularies %d -> %d)" % (model.hidden_size, model.num_layers,
                                            " bidirectional" if model.bidirectional else "",
                                            model.decoder_hidden, model.decoder_layers,
                                            model.attention, model.vocab_size,
                                            model.target_vocab))
    kind = {"char": "a character model", "forecast": "a forecaster",
            "classify": "a classifier", "ctc": "a text-line recognizer"}.get(
        model.metadata.get("task"), "a model")
    return "%s (LSTM H=%d L=%d%s)" % (kind, model.hidden_size, model.num_layers,
                                      ", vocabulary %d" % model.vocab_size
                                      if model.vocab_size else "")


def _source(args):
    if args.text:
        return args.text
    if args.csv:
        return "%s[%s]" % (args.csv, args.column)
    if args.npz:
        return args.npz
    if args.lines:
        return "the lines in %s" % args.lines
    if args.pairs:
        return args.pairs
    return "the built-in text (Python's reference manual, pydoc_data)"


# the training loss each task minimises, for the plot's axis
LOSS_LABELS = {"char": "cross-entropy (nats per character)",
               "classify": "cross-entropy (nats per sequence)",
               "forecast": "mean squared error (standardised series)",
               "ctc": "CTC loss", "seq2seq": "cross-entropy (nats per target token)"}


def _plot(trainer, path):
    from clstm import plots
    model = trainer.model
    task = model.metadata.get("task")
    plots.draw_training(path, plots.training_curves(trainer.losses, trainer.history),
                        title="clstm train: " + _describe(model),
                        loss_label="loss: " + LOSS_LABELS[task] if task in LOSS_LABELS
                        else "loss")


def _check_plot_path(args):
    """--plot's directory exists and matplotlib imports, or UsageError (before
    any work is done)."""
    _check_output_path(args.plot, "--plot")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plot needs matplotlib: pip install 'pyclstm[plot]'") from None


def _check_output_path(path, what):
    if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
        raise UsageError("%s %s: the directory does not exist" % (what, path))
    if path and os.path.isdir(path):
        raise UsageError("%s %s: is a directory; give a file name" % (what, path))


def cmd_sample(args):
    model = _load_model(args.model, "char")
    try:
        text = generate_text(model, args.prime, args.length, args.temperature, args.seed)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.json:
        _emit(dict(text=text))
    else:
        print(text)
    return 0


def cmd_info(args):
    model = _load_model(args.model)
    c = model.config
    described = isinstance(model, (clstm.Model, clstm.Seq2Seq))
    settings = {k: model.attention if k == "attention" else c[k]
                for k in SETTINGS + (DECODER_SETTINGS if isinstance(model, clstm.Seq2Seq) else ())
                if k != "dtype"}  # the NumPy dtype below
    if args.json:
        _emit(dict(file=args.model, bytes=os.path.getsize(args.model),
                   kind=_describe(model) if described else "a bare LSTM", **settings,
                   dtype=str(model.dtype), quantized=bool(model.quantized),
                   int8_kernel=clstm.int8_kernel() if model.quantized else None,
                   parameters=model.flat_parameters.size,
                   vocab=model.vocab if described else None,
                   metadata=dict(model.metadata) if described else {}))
        return EXIT_OK
    print("file: %s (%d bytes)" % (args.model, os.path.getsize(args.model)))
    print("kind: %s" % (_describe(model) if described else "a bare LSTM"))
    for k, v in settings.items():
        print("%s: %s" % (k, v))
    print("dtype: %s" % model.dtype)
    print("quantized: %s" % ("int8 (kernel %s)" % clstm.int8_kernel() if model.quantized
                             else "no"))
    print("parameters: %d" % model.flat_parameters.size)
    if described:
        if model.vocab is not None:
            print("vocab: %s" % json.dumps(model.vocab, ensure_ascii=False))
        for k, v in sorted(model.metadata.items()):
            if k.endswith("_tokens") and isinstance(model, clstm.Seq2Seq):
                v = json.dumps(v.split("\n"), ensure_ascii=False)  # one line
            print("metadata %s: %s" % (k, v))
    return 0


def cmd_quantize(args):
    model = _load_model(args.model)
    try:
        q = clstm.quantize(model)
    except ValueError as e:
        raise UsageError("%s: %s" % (args.model, e)) from None
    if os.path.isdir(args.out):
        raise UsageError("%s: is a directory; give a file name" % args.out)
    if os.path.exists(args.out) and os.path.samefile(args.out, args.model):
        raise UsageError("%s: is the input model; give another file name" % args.out)
    try:
        clstm.save(q, args.out)
    except (OSError, ValueError) as e:
        raise UsageError(str(e)) from None
    before, after = os.path.getsize(args.model), os.path.getsize(args.out)
    if args.json:
        _emit(dict(out=args.out, bytes=after, model=args.model, model_bytes=before,
                   int8_kernel=clstm.int8_kernel()))
    elif not args.quiet:
        print("wrote %s: int8, %d bytes (%s: %d bytes, %.1fx smaller); int8 kernel %s"
              % (args.out, after, args.model, before, before / after, clstm.int8_kernel()))
    return 0


def cmd_export(args):
    if args.name is not None and args.c is None:
        raise UsageError("--name: applies to --c only")
    model = _load_model(args.model)
    if args.c is not None:
        from clstm import export_c
        try:
            name = (export_c.c_name(args.name, "--name") if args.name is not None
                    else export_c.name_from_path(args.model))
            paths = export_c.export_c(model, args.c, name=name,
                                      source=os.path.basename(args.model))
        except ValueError as e:
            raise UsageError("%s: %s" % (args.model, e)) from None
        except OSError as e:
            raise UsageError("--c %s: %s" % (args.c, e.strerror or e)) from None
        if args.json:
            _emit(dict(files=list(paths), prefix=name))
        elif not args.quiet:
            print("wrote %s and %s (prefix %s_)" % (paths[0], paths[1], name))
        return 0
    if isinstance(model, clstm.Seq2Seq):
        raise UsageError("%s: an encoder-decoder does not export to ONNX" % args.model)
    if isinstance(model, clstm.Model) and not model.is_bare_lstm:
        raise UsageError("%s: only a bare LSTM (no encoding, no head) exports to ONNX so far"
                         % args.model)
    try:
        model.to_onnx(args.onnx)
    except ImportError as e:
        raise UsageError(str(e)) from None
    if args.json:
        _emit(dict(files=[args.onnx]))
    elif not args.quiet:
        print("wrote %s" % args.onnx)
    return 0


def cmd_forecast(args):
    if args.plot:
        _check_plot_path(args)
    model = _load_model(args.model, "forecast")
    try:
        s = ForecastTask.settings(model)
    except ValueError as e:
        raise UsageError("%s: %s" % (args.model, e)) from None
    column = args.column or s.column
    if not column:
        raise UsageError("%s: the model does not name the column it was trained on; give "
                         "--column NAME" % args.model)
    series = D.read_csv_column(args.csv, column)
    if len(series) < s.window:
        raise UsageError("%s: %d values; the model needs a window of %d"
                         % (args.csv, len(series), s.window))
    pred = ForecastTask.forecast(model, series, s)
    errors = ForecastTask.one_step_errors(model, series, s)  # 2+ windows
    if args.plot:
        from clstm import plots
        plots.draw_forecast(args.plot, plots.forecast_curves(series, pred, s.window),
                            column=column, title="clstm forecast: %s of %s" % (column, args.csv))
    if args.json:
        _emit(dict(column=column, values=len(series), window=s.window, horizon=s.horizon,
                   forecast=pred, persistence=[series[-1]] * s.horizon,
                   one_step_mse=None if errors is None else dict(zip(
                       ("windows", "model", "persistence"), errors)), plot=args.plot))
        return EXIT_OK
    _note(args, "forecast of the next %d value%s after the last of %d:"
          % (s.horizon, "s" * (s.horizon > 1), len(series)))
    for i, v in enumerate(pred, 1):
        print("t+%d: %.6g" % (i, v))
    if errors is not None:
        _note(args, "one-step MSE over %d windows: model %.6g, persistence %.6g" % errors)
    return 0


def _line_model(path):
    """A text-line recognizer: (model, alphabet, line height, columns per
    time step: 1 where the metadata does not say)."""
    model = _load_model(path, "ctc")
    try:
        alphabet = json.loads(model.metadata["alphabet"])
        height = int(model.metadata["line_height"])
        per_step = int(model.metadata.get("columns_per_step", "1"))
    except (KeyError, ValueError) as e:
        raise UsageError("%s: its metadata lacks a valid alphabet, line height or columns "
                         "per step (%s)" % (path, e)) from None
    if (model.output_size != len(alphabet) + 1 or height < 1 or per_step < 1
            or model.input_size != height * per_step):
        raise UsageError("%s: its alphabet (%d), line height (%d) or columns per step (%d) "
                         "do not match its shape" % (path, len(alphabet), height, per_step))
    return model, alphabet, height, per_step


def _fusion(args, alphabet):
    """decode.beam_search's language-model arguments from --lm, --lm-weight,
    --lm-bonus (none without --lm)."""
    if not args.lm:
        return {}
    for name, v in (("--lm-weight", args.lm_weight), ("--lm-bonus", args.lm_bonus)):
        if not np.isfinite(v):
            raise UsageError("%s: expected a finite number, got %r" % (name, v))
    lm = _load_model(args.lm, "char")
    if lm.bidirectional:
        raise UsageError("--lm %s: a bidirectional model cannot score text as it grows"
                         % args.lm)
    return dict(lm=lm, alphabet=alphabet, lm_weight=args.lm_weight, lm_bonus=args.lm_bonus)


def cmd_recognize(args):
    model, alphabet, height, per_step = _line_model(args.model)
    fusion = _fusion(args, alphabet)
    task = LabellingTask(None, blank=0)
    for path in args.images:
        x = ocr.read_image(path, height, per_step)
        seqs = D.LabelledSequences([x], [[]], [path])
        labels = task.predict(model, seqs, args.beam, **fusion)[0]
        text = ocr.decode_labels(labels, alphabet)
        if args.json:
            _emit(dict(image=path, text=text))
        else:
            print(text)
    return 0


def _evaluate_lines(args):
    model, alphabet, height, per_step = _line_model(args.model)
    lines, _ = ocr.read_lines(args.lines, height, alphabet, per_step)
    cer, exact = LabellingTask(None, blank=0).error_rates(model, lines, args.beam or 1,
                                                          **_fusion(args, alphabet))
    if args.json:
        _emit(dict(cer=cer, line_accuracy=exact, lines=len(lines)))
        return EXIT_OK
    print("CER: %.2f%%" % (100 * cer))
    print("lines exactly right: %.1f%% of %d" % (100 * exact, len(lines)))
    return 0


def _write_utf8(text):
    """text on stdout as UTF-8 whatever the locale (examples/translate.c's bytes)."""
    out = getattr(sys.stdout, "buffer", None)
    if out is None:
        sys.stdout.write(text)
    else:
        sys.stdout.flush()
        out.write(text.encode("utf-8"))
    sys.stdout.flush()


def cmd_translate(args):
    """One line out per line in: the best target (or --nbest candidates,
    tab-separated with their scores, and a blank line after each source).
    An empty line gives an empty line; a line that is not UTF-8 or holds
    U+0000 ends the command (status 2) after the lines before it."""
    model = _load_model(args.model, "seq2seq")
    if args.nbest > args.beam:
        raise UsageError("--nbest %d: at most --beam (%d)" % (args.nbest, args.beam))
    longest = _metadata_int(model.metadata.get("max_source_length"))
    counts = dict(unknown=0, long=0)

    def flush(batch):
        texts = [t for t in batch if t]
        if texts:
            src, lens, unknown = model.encode_sources(texts)
            counts["unknown"] += unknown
            if longest is not None:
                counts["long"] += int((lens > longest).sum())
            try:
                out = iter(model.translate(texts, beam=args.beam, nbest=args.nbest,
                                           alpha=args.alpha, max_len=args.max_length))
            except (ValueError, MemoryError) as e:
                raise UsageError(str(e)) from None
        lines = []
        for t in batch:
            if args.json:
                best = next(out) if t else ([] if args.nbest > 1 else "")
                lines.append(_json_line(dict(source=t, target=best) if args.nbest == 1 else
                                        dict(source=t, candidates=[dict(target=c, score=v)
                                                                   for c, v in best])))
            elif args.nbest == 1:
                lines.append((next(out) if t else "") + "\n")
            else:
                lines += ["%s\t%.4f\n" % c for c in (next(out) if t else [])] + ["\n"]
        _write_utf8("".join(lines))

    batch = []
    for n, raw in enumerate(sys.stdin.buffer, 1):  # as examples/translate.c reads lines
        raw = raw[:-1] if raw.endswith(b"\n") else raw
        raw = raw[:-1] if raw.endswith(b"\r") else raw
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            flush(batch)
            raise UsageError("stdin:%d: not UTF-8 (%s)" % (n, e.reason)) from None
        if "\0" in line:
            flush(batch)
            raise UsageError("stdin:%d: contains the character U+0000" % n)
        batch.append(line)
        if len(batch) == 64:
            flush(batch)
            batch = []
    flush(batch)
    if args.quiet:
        return EXIT_OK
    if counts["unknown"]:
        print("clstm translate: note: %d source tokens were not seen in training and read as "
              "<unk>" % counts["unknown"], file=sys.stderr)
    if counts["long"]:
        print("clstm translate: note: %d sources are longer than any seen in training (%d "
              "tokens); expect them to be translated worse" % (counts["long"], longest),
              file=sys.stderr)
    return 0


def _evaluate_pairs(args):
    model = _load_model(args.model, "seq2seq")
    data = P.read_pairs(args.pairs, model.source_split, model.target_split)
    task = TranslationTask(data, None, 64, source_vocab=model.source_vocabulary,
                           target_vocab=model.target_vocabulary)
    try:
        ter, ser, n = task.error_rates(model, data, width=args.beam or 5, alpha=args.alpha)
    except (ValueError, MemoryError) as e:
        raise UsageError(str(e)) from None
    _, _, _, _, _, unknown = data.batch(range(len(data)), model.source_vocabulary,
                                        model.target_vocabulary)
    if args.json:
        _emit(dict(token_error_rate=ter, sequence_error_rate=ser, sources=n,
                   unknown_tokens=unknown))
        return EXIT_OK
    print("token error rate: %.2f%%" % (100 * ter))
    print("sequence error rate: %.2f%% of %d sources" % (100 * ser, n))
    if unknown:
        _note(args, "note: %d tokens are not in the model's vocabularies (read as <unk>)"
              % unknown)
    return 0


def cmd_evaluate(args):
    given = [f for f in ("npz", "lines", "pairs") if getattr(args, f)]
    if len(given) != 1:
        raise UsageError("give one of --npz FILE (a classifier), --lines DIR (a text-line "
                         "recognizer) or --pairs FILE (an encoder-decoder)")
    if args.pairs:
        return _evaluate_pairs(args)
    if args.lines:
        return _evaluate_lines(args)
    model = _load_model(args.model, "classify")
    X, lengths, y = D.read_npz(args.npz)
    if X.shape[2] != model.input_size:
        raise UsageError("%s: X has D = %d features; the model expects %d"
                         % (args.npz, X.shape[2], model.input_size))
    k = model.output_size
    if y.max() >= k:
        raise UsageError("%s: label %d is outside the model's %d classes" % (args.npz, y.max(), k))
    seqs = D.Sequences(X, lengths, y)  # scaled as in training by the model's metadata
    accuracy, cm = SequenceTask(seqs, None, 256).confusion_matrix(model, seqs)
    if args.json:
        _emit(dict(accuracy=accuracy, sequences=len(seqs), classes=k, confusion_matrix=cm))
        return EXIT_OK
    print("accuracy: %.3f" % accuracy)
    print("confusion matrix (rows: true class, columns: predicted):")
    width = max(5, len(str(cm.max())) + 1)
    print(" " * 6 + "".join(("%d" % j).rjust(width) for j in range(k)))
    for i in range(k):
        print(("%d" % i).rjust(6) + "".join(("%d" % v).rjust(width) for v in cm[i]))
    return 0


def _add_fusion(p):
    g = p.add_argument_group("language model (shallow fusion in the beam search)")
    g.add_argument("--lm", metavar="MODEL", default=None,
                   help="a character model (clstm train --text) that scores the text as it "
                        "grows; use with --beam K")
    g.add_argument("--lm-weight", type=_nonneg(float), default=0.3,
                   help="its weight: log p_CTC + W log p_LM (0.3 measured better than 0.6 "
                        "on bench/ocr_benchmark.py's lines)")
    g.add_argument("--lm-bonus", type=float, default=1.0,
                   help="added per character (offsets the model's cost per character)")


def build_parser():
    p = argparse.ArgumentParser(prog="clstm", description=__doc__, epilog=_exit_codes_epilog(),
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version="clstm " + clstm.__version__)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _train_parser(sub)
    fmt = _HelpFormatter
    s = sub.add_parser("sample", help="generate text from a character model",
                       formatter_class=fmt)
    s.add_argument("model", metavar="MODEL", help="a character model file")
    s.add_argument("--prime", default="", help="text to start from")
    s.add_argument("--length", type=_nonneg(int), default=500, help="characters to generate")
    s.add_argument("--temperature", type=_nonneg(float), default=0.8,
                   help="sampling temperature (0: always the most likely character)")
    s.add_argument("--seed", type=_nonneg(int), default=0, help="random seed")
    _add_output(s, json='{"text": the prime and what follows it}')
    s.set_defaults(func=cmd_sample)
    i = sub.add_parser("info", help="describe a model file", formatter_class=fmt)
    i.add_argument("model", metavar="MODEL")
    _add_output(i, json="one object: the same facts, with the metadata as an object")
    i.set_defaults(func=cmd_info)
    q = sub.add_parser("quantize", help="an int8 copy of a model, for inference",
                       formatter_class=fmt)
    q.add_argument("model", metavar="MODEL", help="a float32 or float64 model file")
    q.add_argument("out", metavar="OUT", help="the quantized model file to write")
    _add_output(q, quiet=" (no line saying what was written)",
                json="one object: out, bytes, model, model_bytes, int8_kernel")
    q.set_defaults(func=cmd_quantize)
    e = sub.add_parser("export", help="export a model to ONNX (a bare LSTM), or as one C file "
                       "for microcontrollers", formatter_class=fmt)
    e.add_argument("model", metavar="MODEL")
    to = e.add_mutually_exclusive_group(required=True)
    to.add_argument("--onnx", metavar="OUT", help="the .onnx file to write")
    to.add_argument("--c", metavar="DIR", help="the folder to write NAME.c and NAME.h into "
                    "(made if missing): C99, no heap, no libraries")
    e.add_argument("--name", metavar="N", default=None,
                   help="--c: the prefix of every exported symbol (default: the model file's "
                        "stem)")
    _add_output(e, quiet=" (no line saying what was written)",
                json='one object: {"files": [the files written], "prefix": --c\'s prefix}')
    e.set_defaults(func=cmd_export)
    f = sub.add_parser("forecast", help="forecast a series with a trained forecaster",
                       formatter_class=fmt)
    f.add_argument("model", metavar="MODEL")
    f.add_argument("--csv", metavar="FILE", required=True, help="CSV with the series")
    f.add_argument("--column", metavar="NAME", default=None,
                   help="the column (default: the one the model was trained on)")
    f.add_argument("--plot", metavar="PNG", default=None,
                   help="write a PNG of the series, the forecast and the persistence "
                        "baseline (the last value carried forward) (needs matplotlib: pip "
                        "install 'pyclstm[plot]')")
    _add_output(f, quiet=" and the t+1, t+2, ... lines of the forecast (no heading, no "
                         "one-step MSE)",
                json="one object: column, values, window, horizon, forecast (a list), "
                     "persistence, one_step_mse (windows, model, persistence; null under "
                     "two windows), plot")
    f.set_defaults(func=cmd_forecast)
    v = sub.add_parser("evaluate", help="accuracy of a classifier on an .npz file, or the "
                       "character error rate of a text-line recognizer", formatter_class=fmt)
    v.add_argument("model", metavar="MODEL")
    v.add_argument("--npz", metavar="FILE", help="a classifier's test set: X, lengths, y")
    v.add_argument("--lines", metavar="DIR",
                   help="a recognizer's test lines: name.png beside name.gt.txt")
    v.add_argument("--pairs", metavar="FILE",
                   help="an encoder-decoder's test pairs: source<TAB>target lines; a source "
                        "on several lines is right when it matches any of its targets")
    v.add_argument("--beam", type=_width, default=None,
                   help="beam width (default: 1, best path, for --lines; 5 for --pairs)")
    v.add_argument("--alpha", type=_finite_nonneg, default=1.0,
                   help="--pairs: length normalization, log p / length^alpha")
    _add_fusion(v)
    _add_output(v, quiet=" and the metrics (no note about unknown tokens)",
                json="one object of the metrics: --npz accuracy, sequences, classes, "
                     "confusion_matrix (rows: true class); --lines cer, line_accuracy, "
                     "lines; --pairs token_error_rate, sequence_error_rate, sources, "
                     "unknown_tokens (rates are fractions, not percent)")
    v.set_defaults(func=cmd_evaluate)
    r = sub.add_parser("recognize", help="read text-line images with a recognizer",
                       formatter_class=fmt)
    r.add_argument("model", metavar="MODEL", help="a model trained with --lines")
    r.add_argument("images", metavar="IMAGE", nargs="+", help="line images")
    r.add_argument("--beam", type=_positive(int), default=1, help="beam width (1: best path)")
    _add_fusion(r)
    _add_output(r, json='one object per image: {"image": its path, "text": the text read}')
    r.set_defaults(func=cmd_recognize)
    t = sub.add_parser("translate", help="translate source lines read on stdin with an "
                       "encoder-decoder", formatter_class=fmt,
                       description="Reads one source per line on stdin and prints the best "
                                   "target per line, in the target's token form (an empty "
                                   "line gives an empty line). With --nbest N: N lines of "
                                   "target<TAB>score per source, then a blank line.")
    t.add_argument("model", metavar="MODEL", help="a model trained with --pairs")
    t.add_argument("--beam", type=_width, default=5, help="beam width (1: greedy)")
    t.add_argument("--nbest", type=_positive(int), default=1,
                   help="candidates printed per source (at most --beam)")
    t.add_argument("--alpha", type=_finite_nonneg, default=1.0,
                   help="length normalization: candidates rank by log p / length^alpha")
    t.add_argument("--max-length", type=_positive(int), default=None,
                   help="the most target tokens per source (default: 2 x the longest "
                        "target seen in training + 10)")
    _add_output(t, quiet=" and the translations (no notes on stderr about unknown or long "
                         "sources)",
                json='one object per source line: {"source", "target"}, or with --nbest '
                     '{"source", "candidates": [{"target", "score"}, ...]} (no blank lines)')
    t.set_defaults(func=cmd_translate)
    return p


def main(argv=None):
    started = time.perf_counter()  # --max-minutes counts the whole command
    args = build_parser().parse_args(argv)
    args.started = started
    try:
        return args.func(args)
    except (UsageError, D.DataError) as e:
        print("clstm %s: %s" % (args.command, e), file=sys.stderr)
        return getattr(e, "status", EXIT_BAD_INPUT)
    except KeyboardInterrupt:
        print("\nclstm %s: interrupted" % args.command, file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader of stdout has gone (`clstm ... | head`): end quietly. Point
        # stdout at /dev/null so that the interpreter's flush at exit does
        # not fail again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return EXIT_BROKEN_PIPE


if __name__ == "__main__":
    sys.exit(main())
