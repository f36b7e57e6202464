"""Decoders of CTC logits (computed in C: clstm_ctc_greedy and
clstm_ctc_beam_search): from per-step class scores to label sequences.

Both take unnormalised `logits` (T, B, C) ((B, T, C) with batch_first,
(T, C) unbatched), as a model's head outputs them for clstm.losses.ctc,
optional input_lengths (B,) and the blank class. A labelling is read off a
path by merging repeated classes, then dropping blanks.
"""
import numpy as np

from clstm import _core, checks, layout
from clstm.losses import _out3

__all__ = ["greedy", "beam_search"]


def _args(logits, input_lengths, blank, batch_first):
    z, lay = _out3(logits, batch_first, "logits", "C")
    T, B, C = z.shape
    b = checks.as_int(blank, "blank")
    if not 0 <= b < C:
        raise ValueError("blank: expected a class in [0, %d), got %d" % (C, b))
    if lay == layout.UNBATCHED and input_lengths is not None:
        input_lengths = [checks.as_int(input_lengths, "input_lengths")]
    return z, lay, b, checks.lengths(input_lengths, T, B, "input_lengths")


def greedy(logits, input_lengths=None, *, blank=0, batch_first=False):
    """Best-path decoding: each step's most likely class (the first of equal
    ones), repeats merged, blanks dropped. Returns a list of B label lists
    (unbatched: one list)."""
    z, lay, b, ilens = _args(logits, input_lengths, blank, batch_first)
    T, B, C = z.shape
    labels = np.empty((B, T), np.int32)
    lens = np.empty(B, np.int64)
    _core.ctc_greedy(T, B, C, z.reshape(-1), ilens, b, labels.reshape(-1), lens)
    out = [labels[i, :lens[i]].tolist() for i in range(B)]
    return out[0] if lay == layout.UNBATCHED else out


def beam_search(logits, input_lengths=None, *, blank=0, width=10, nbest=1,
                batch_first=False):
    """Prefix beam search: the `width` most probable labellings are kept at
    every step, each labelling's probability summed over its paths (CTC's
    definition), so it finds labellings best-path decoding misses. Returns,
    per sequence, the nbest (1..width) best as (labels, log probability)
    pairs, most probable first; a list of B such lists (unbatched: one).
    The log probability is exact where the beam pruned no path of the
    labelling (a wide enough beam). A beam that holds fewer labellings than
    nbest (short inputs) gives fewer pairs."""
    z, lay, b, ilens = _args(logits, input_lengths, blank, batch_first)
    T, B, C = z.shape
    w = checks.as_int(width, "width")
    if not 1 <= w <= _core.CTC_MAX_WIDTH:
        raise ValueError("width: expected 1..%d, got %d" % (_core.CTC_MAX_WIDTH, w))
    n = checks.as_int(nbest, "nbest")
    if not 1 <= n <= w:
        raise ValueError("nbest: expected 1..width (%d), got %d" % (w, n))
    labels = np.empty((B, n, T), np.int32)
    lens = np.empty((B, n), np.int64)
    scores = np.empty((B, n))
    _core.ctc_beam_search(T, B, C, z.reshape(-1), ilens, b, w, n, labels.reshape(-1),
                          lens.reshape(-1), scores.reshape(-1))
    out = [[(labels[i, r, :lens[i, r]].tolist(), float(scores[i, r]))
            for r in range(n) if scores[i, r] > -np.inf]
           for i in range(B)]
    return out[0] if lay == layout.UNBATCHED else out
