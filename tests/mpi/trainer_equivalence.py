"""Run under mpirun by tests/test_mpi.py: a data-parallel Trainer (float64)
ends with the parameters and losses of a single-process Trainer on the same
global batches, to within the rounding of the summation order.

Cases: a character model (stateful truncated BPTT, 5 rows: shards of 2 and
3, so an unweighted average is wrong), shuffled variable-length
classification whose last batch has one sequence (rank 0's shard is empty),
regression, CTC labelling with augmentation, and an encoder-decoder
(TranslationTask: the loss's mean is over target tokens, so the shards
weigh by their tokens); clipping is active (the norm exceeds the bound) in
each.
Rank 0 also runs the single-process Trainer and prints one line per case,
"case NAME rel_diff X max_norm N clip C"; exits non-zero on any failure."""
import sys

import numpy as np

import clstm
from clstm import data as D
from clstm import optim
from clstm import train as TR
from clstm.distributed import DataParallel

TOL = 1e-12
TEXT = ("It was the best of times, it was the worst of times, it was the age of wisdom, "
        "it was the age of foolishness. ") * 6


def charlm():
    stream = D.TextStream(TEXT)
    task = TR.LanguageModelTask(stream, batch_size=5, bptt=8)
    model = clstm.Model(hidden_size=7, vocab=stream.vocab, output_size=len(stream.vocab),
                        softmax=True, seed=4, dtype=np.float64)
    return task, model, dict(optimizer="adam", lr=0.01, clip=0.2, epochs=1)


def sequences(kind):
    rng = np.random.default_rng(5)
    N, T, Dm = 25 + 8, 9, 3  # 25 train: batches of 8, 8, 8, 1
    X = rng.standard_normal((N, T, Dm))
    lengths = rng.integers(1, T + 1, N)
    if kind == "classify":
        y, out = (X[np.arange(N), lengths - 1, 0] > 0).astype(np.int64), 2
    else:
        y, out = X[np.arange(N), lengths - 1, :2] * 3.0, 2
    train, val = D.Sequences(X, lengths, y).split(8 / N, np.random.default_rng(1))
    task = TR.SequenceTask(train, val, batch_size=8, kind=kind)
    model = clstm.Model(Dm, 6, 2, output_size=out, softmax=kind == "classify", seed=2,
                        dtype=np.float64)
    return task, model, dict(optimizer="sgd", lr=0.1, momentum=0.9, clip=0.3, epochs=3)


def labelling():
    """CTC on unaligned label sequences (LabellingTask), augmented: 25
    training sequences in batches of 8, 8, 8, 1, one too short for its
    labels (zero_infinity)."""
    rng = np.random.default_rng(6)
    xs = [rng.standard_normal((int(rng.integers(4, 12)), 3)) for _ in range(33)]
    ys = [rng.integers(1, 4, int(rng.integers(0, 4))) for _ in range(33)]
    ys[0] = np.array([1, 1, 1, 1, 1, 1, 1])
    train, val = D.LabelledSequences(xs, ys).split(8 / 33, np.random.default_rng(1))

    def augment(x, rng):
        return x + 0.1 * rng.standard_normal(x.shape)
    task = TR.LabellingTask(train, val, 8, augment=augment, seed=3)
    model = clstm.Model(3, 5, 1, bidirectional=True, output_size=4, seed=2, dtype=np.float64)
    return task, model, dict(optimizer="adam", lr=0.02, clip=0.3, epochs=3)


def translation():
    """Reversed words: 25 training pairs in batches of 8, 8, 8, 1."""
    from clstm import pairs
    from clstm.tasks import TranslationTask
    rng = np.random.default_rng(7)
    words = [list(rng.choice(list("abcd"), int(rng.integers(1, 6)))) for _ in range(33)]
    data = pairs.Pairs(words, [[c.upper() for c in reversed(w)] for w in words])
    train, val = data.subset(range(25)), data.subset(range(25, 33))
    sv, tv = train.vocabularies()
    task = TranslationTask(train, val, 8, source_vocab=sv, target_vocab=tv)
    model = clstm.Seq2Seq(sv, tv, embedding=4, hidden_size=5, decoder_hidden=6, seed=2,
                          dtype=np.float64)
    return task, model, dict(optimizer="adam", lr=0.02, clip=0.3, epochs=3)


CASES = {"charlm": charlm, "classify": lambda: sequences("classify"),
         "regress": lambda: sequences("regress"), "ctc": labelling, "seq2seq": translation}

norms = []
_clip = optim.clip_grad_norm


def recording_clip(grads, max_norm):
    norms.append(_clip(grads, max_norm))
    return norms[-1]


optim.clip_grad_norm = recording_clip


def train(make, dp):
    task, model, settings = make()
    t = TR.Trainer(model, task, progress=False, eval_every=3, distributed=dp, **settings)
    history = t.fit()
    return t, [r.get(k) for r in history for k in ("train_loss", "val_loss")]


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(b)), 1e-300))


dp = DataParallel()
ok = True
for name, make in CASES.items():
    t, curve = train(make, dp)
    dp.check_equal(t.model.flat_parameters, "parameters after training")
    if dp.rank == 0:
        norms.clear()
        ref, ref_curve = train(make, None)
        d = max(rel(t.model.flat_parameters, ref.model.flat_parameters), rel(curve, ref_curve))
        clip = ref.clip
        print("case %s rel_diff %.3g max_norm %.3g clip %g steps %d"
              % (name, d, max(norms), clip, ref.step), flush=True)
        ok &= d <= TOL and max(norms) > clip and t.step == ref.step
sys.exit(0 if dp.comm.allreduce(int(ok), op=__import__("mpi4py").MPI.MIN) else 1)
