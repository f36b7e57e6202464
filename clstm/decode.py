"""Decoders of CTC logits (computed in C: clstm_ctc_greedy and
clstm_ctc_beam_search): from per-step class scores to label sequences.

Both take unnormalised `logits` (T, B, C) ((B, T, C) with batch_first,
(T, C) unbatched), as a model's head outputs them for clstm.losses.ctc,
optional input_lengths (B,) and the blank class. A labelling is read off a
path by merging repeated classes, then dropping blanks.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional, Sequence

import numpy as np
import numpy.typing as npt

from clstm import _core, checks, layout
from clstm.losses import _out3

__all__ = ["greedy", "beam_search", "lm_tokens"]

if TYPE_CHECKING:
    from clstm.model import Model


def _args(logits: npt.ArrayLike, input_lengths: Optional[npt.ArrayLike], blank: int,
          batch_first: bool) -> tuple[npt.NDArray[Any], str, int, Optional[npt.NDArray[np.int64]]]:

    z, lay = _out3(logits, batch_first, "logits", "C")
    T, B, C = z.shape
    b = checks.as_int(blank, "blank")
    if not 0 <= b < C:
        raise ValueError("blank: expected a class in [0, %d), got %d" % (C, b))
    if lay == layout.UNBATCHED and input_lengths is not None:
        input_lengths = [checks.as_int(input_lengths, "input_lengths")]
    return z, lay, b, checks.lengths(input_lengths, T, B, "input_lengths")


def greedy(logits: npt.ArrayLike, input_lengths: Optional[npt.ArrayLike] = None, *,
           blank: int = 0, batch_first: bool = False) -> list[Any]:
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


def lm_tokens(lm: Model, alphabet: str, C: int, blank: int = 0) -> npt.NDArray[np.int32]:
    """The (C,) int32 token ids of a language model `lm` (a clstm.Model
    with a vocabulary) for the C classes: class k, other than the blank, is
    the character alphabet[k - (k > blank)]; -1 where lm has no such token
    (and for the blank)."""
    vocab = getattr(lm, "vocab", None)
    if vocab is None:
        raise ValueError("lm: expected a token model with a vocabulary (a character model)")
    if len(alphabet) != C - 1:
        raise ValueError("alphabet: expected %d characters (C - 1, the blank excluded), got %d"
                         % (C - 1, len(alphabet)))
    ids = {t: i for i, t in enumerate(vocab)}
    out = np.full(C, -1, np.int32)
    for k in range(C):
        if k != blank:
            out[k] = ids.get(alphabet[k - (k > blank)], -1)
    return out


def beam_search(logits: npt.ArrayLike, input_lengths: Optional[npt.ArrayLike] = None, *,
                blank: int = 0, width: int = 10, nbest: int = 1, batch_first: bool = False,
                lm: Optional[Model] = None, alphabet: Optional[str] = None,
                lm_weight: float = 0.3, lm_bonus: float = 1.0, lm_start: Optional[str] = "\n"
                ) -> list[Any]:
    """Prefix beam search: the `width` most probable labellings are kept at
    every step, each labelling's probability summed over its paths (CTC's
    definition), so it finds labellings best-path decoding misses. Returns,
    per sequence, the nbest (1..width) best as (labels, log probability)
    pairs, most probable first; a list of B such lists (unbatched: one).
    The log probability is exact where the beam pruned no path of the
    labelling (a wide enough beam). A beam that holds fewer labellings than
    nbest (short inputs) gives fewer pairs.

    Shallow fusion (lm: a character model, alphabet: the classes'
    characters, as lm_tokens takes them): labellings rank by log p_CTC +
    lm_weight * log p_LM + lm_bonus * length, p_LM the model's probability
    of the labelling's text after lm_start (None: after nothing, its
    first character scored as uniform); the returned scores are that
    sum. In C: clstm_ctc_beam_search_lm."""
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
    fuse: dict[str, Any] = {}
    if lm is not None:
        if alphabet is None:
            raise ValueError("alphabet: required with lm (the characters of the classes)")
        for name, v in (("lm_weight", lm_weight), ("lm_bonus", lm_bonus)):
            if not isinstance(v, (int, float, np.floating, np.integer)) or not np.isfinite(v):
                raise ValueError("%s: expected a finite number, got %r" % (name, v))
        start = -1
        if lm_start is not None:
            vocab: Sequence[str] = lm.vocab or []
            start = vocab.index(lm_start) if lm_start in vocab else -1
        fuse = dict(lm=lm._m, lm_tokens=lm_tokens(lm, alphabet, C, b), lm_start=start,
                    lm_weight=float(lm_weight), lm_bonus=float(lm_bonus))
    _core.ctc_beam_search(T, B, C, z.reshape(-1), ilens, b, w, n, labels.reshape(-1),
                          lens.reshape(-1), scores.reshape(-1), **fuse)
    out = [[(labels[i, r, :lens[i, r]].tolist(), float(scores[i, r]))
            for r in range(n) if scores[i, r] > -np.inf]
           for i in range(B)]
    return out[0] if lay == layout.UNBATCHED else out
