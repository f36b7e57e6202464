"""Sequence-to-sequence data (issue 18): pairs of a source and a target
token sequence, read from `source<TAB>target` lines, their vocabularies,
and padded time-first batches for teacher forcing.

Tokens: "char" splits a side into its characters (spaces included);
"space" splits it on runs of spaces (grapheme-to-phoneme targets:
`K AO R S`). Ids: a source vocabulary starts with <unk>; a target
vocabulary with <s> (fed before the first token, never predicted), </s>
(ends every target) and <unk>. A token a vocabulary lacks becomes <unk>,
and the encoders count how often that happened, so a caller can say so.
"""
from __future__ import annotations

import os
from typing import Iterable, Optional, Sequence

import numpy as np
import numpy.typing as npt

from clstm.data import DataError, PathLike, _Splittable, _check_file
from clstm.tasks import edit_distance

__all__ = ["TOKENIZATIONS", "SOURCE_SPECIALS", "TARGET_SPECIALS", "BOS", "EOS", "UNK",
           "tokenize", "detokenize", "Vocabulary", "Pairs", "read_pairs",
           "token_error_rate", "sequence_error_rate"]

TOKENIZATIONS = ("char", "space")
SOURCE_SPECIALS = ("<unk>",)
TARGET_SPECIALS = ("<s>", "</s>", "<unk>")
BOS, EOS, UNK = 0, 1, 2  # target ids; the source's <unk> is 0


def tokenize(text: str, how: str) -> list[str]:
    """text's tokens: its characters ("char") or its space-separated words
    ("space")."""
    if how == "char":
        return list(text)
    if how == "space":
        return [t for t in text.split(" ") if t]
    raise ValueError("tokens: expected one of %s, got %r" % (", ".join(TOKENIZATIONS), how))


def detokenize(tokens: Sequence[str], how: str) -> str:
    """The text of tokens, as tokenize(., how) split it."""
    if how not in TOKENIZATIONS:
        raise ValueError("tokens: expected one of %s, got %r" % (", ".join(TOKENIZATIONS), how))
    return ("" if how == "char" else " ").join(tokens)


class Vocabulary:
    """Token <-> id: the specials first, then the tokens in sorted order."""

    def __init__(self, tokens: Sequence[str], specials: Sequence[str]) -> None:
        self.specials = tuple(specials)
        clash = sorted(set(self.specials) & set(tokens))
        if clash:
            raise DataError("the data uses the reserved token%s %s"
                            % ("s" * (len(clash) > 1), ", ".join(clash)))
        self.tokens = list(self.specials) + sorted(set(tokens))
        self.index = {t: i for i, t in enumerate(self.tokens)}
        self.unk = self.index["<unk>"]

    def __len__(self) -> int:
        return len(self.tokens)

    def encode(self, tokens: Sequence[str]) -> tuple[npt.NDArray[np.int32], int]:
        """(ids int32, how many tokens became <unk>)."""
        ids = np.array([self.index.get(t, self.unk) for t in tokens], np.int32)
        return ids, int(sum(t not in self.index for t in tokens))

    def decode(self, ids: Sequence[int]) -> list[str]:
        """The tokens of ids, specials left out (an <unk> shows as "<unk>")."""
        n = len(self.specials)
        return [self.tokens[i] for i in ids if i >= n or self.tokens[i] == "<unk>"]


class Pairs(_Splittable):
    """Source and target token lists, with where each came from ("FILE:LINE")."""

    def __init__(self, sources: Sequence[list[str]], targets: Sequence[list[str]],
                 where: Optional[Sequence[str]] = None) -> None:
        if len(sources) != len(targets):
            raise DataError("%d sources but %d targets" % (len(sources), len(targets)))
        self.sources, self.targets = list(sources), list(targets)
        self.where = list(where) if where is not None else [str(i + 1)
                                                             for i in range(len(sources))]

    def __len__(self) -> int:
        return len(self.sources)

    def subset(self, idx: Iterable[int]) -> Pairs:
        return Pairs(
[self.sources[i] for i in idx], [self.targets[i] for i in idx],
                     [self.where[i] for i in idx])

    def split(self, val_fraction: float, rng: np.random.Generator
              ) -> tuple[Pairs, Optional[Pairs]]:
        """(train, val) after a shuffle by rng, with every pair of one source
        on the same side (a word's several pronunciations all held out, or
        none)."""
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, src in enumerate(self.sources):
            groups.setdefault(tuple(src), []).append(i)
        keys = list(groups)
        order = rng.permutation(len(keys))
        n_val = max(1, int(round(len(keys) * val_fraction))) if val_fraction > 0 else 0
        if len(keys) - n_val < 1:
            raise DataError("too few distinct sources (%d) to split off a validation set"
                            % len(keys))
        pick = lambda part: sorted(i for k in part for i in groups[keys[k]])  # noqa: E731
        return (self.subset(pick(order[n_val:])),
                self.subset(pick(order[:n_val])) if n_val else None)

    def vocabularies(self) -> tuple[Vocabulary, Vocabulary]:
        """(source, target) Vocabulary of these pairs' tokens."""
        return (Vocabulary([t for s in self.sources for t in s], SOURCE_SPECIALS),
                Vocabulary([t for s in self.targets for t in s], TARGET_SPECIALS))

    def batch(self, idx: Iterable[int], source_vocab: Vocabulary, target_vocab: Vocabulary
              ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64], npt.NDArray[np.int32],
                         npt.NDArray[np.int32], npt.NDArray[np.int64], int]:
        """Teacher forcing's arrays for pairs idx, time-first and zero-padded:
        src (Ts, B) int32 and src_lens (B,); tgt_in (Tt, B) int32, <s> then
        the target; tgt_out (Tt, B) int32, the target then </s>; tgt_lens
        (B,) = target length + 1; and the count of tokens that became <unk>."""
        idx = list(idx)
        B, unknown = len(idx), 0
        src_ids, tgt_ids = [], []
        for i in idx:
            (s, a), (t, b) = source_vocab.encode(self.sources[i]), \
                target_vocab.encode(self.targets[i])
            src_ids.append(s)
            tgt_ids.append(t)
            unknown += a + b
        src_lens = np.array([len(s) for s in src_ids], np.int64)
        tgt_lens = np.array([len(t) + 1 for t in tgt_ids], np.int64)
        src = np.zeros((int(src_lens.max(initial=1)), B), np.int32)
        tgt_in = np.zeros((int(tgt_lens.max(initial=1)), B), np.int32)
        tgt_out = np.zeros_like(tgt_in)
        for b in range(B):
            src[:src_lens[b], b] = src_ids[b]
            tgt_in[0, b] = BOS
            tgt_in[1:tgt_lens[b], b] = tgt_ids[b]
            tgt_out[:tgt_lens[b] - 1, b] = tgt_ids[b]
            tgt_out[tgt_lens[b] - 1, b] = EOS
        return src, src_lens, tgt_in, tgt_out, tgt_lens, unknown


def read_pairs(path: PathLike, source_tokens: str = "char", target_tokens: str = "char"
               ) -> Pairs:
    """The pairs of a UTF-8 file of `source<TAB>target` lines (a trailing
    line end and blank lines are skipped). DataError, naming the file and
    line: no tab, more than one tab, an empty side, U+0000, or not UTF-8."""
    for name, how in (("source_tokens", source_tokens), ("target_tokens", target_tokens)):
        if how not in TOKENIZATIONS:
            raise ValueError("%s: expected one of %s, got %r"
                             % (name, ", ".join(TOKENIZATIONS), how))
    _check_file(path, "pairs (source<TAB>target)")
    sources, targets, where = [], [], []
    with open(path, "rb") as f:
        for n, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                raise DataError("%s:%d: not UTF-8 (%s)" % (path, n, e.reason)) from None
            if not line.strip():
                continue
            if "\0" in line:
                raise DataError("%s:%d: contains the character U+0000" % (path, n))
            parts = line.split("\t")
            if len(parts) != 2:
                raise DataError("%s:%d: expected source<TAB>target, got %s"
                                % (path, n, "no tab" if len(parts) == 1
                                   else "%d tabs" % (len(parts) - 1)))
            for side, text in (("source", parts[0]), ("target", parts[1])):
                if not text.strip():
                    raise DataError("%s:%d: empty %s" % (path, n, side))
            sources.append(tokenize(parts[0], source_tokens))
            targets.append(tokenize(parts[1], target_tokens))
            where.append("%s:%d" % (os.path.basename(path), n))
    if not sources:
        raise DataError("%s: no pairs (expected source<TAB>target lines)" % path)
    return Pairs(sources, targets, where)


def token_error_rate(predictions: Sequence[Sequence[str]],
                     references: Sequence[Sequence[str]]) -> float:
    """Sum of token edit distances over the sum of reference lengths."""
    if len(predictions) != len(references):
        raise ValueError("predictions: expected %d sequences (one per reference), got %d"
                         % (len(references), len(predictions)))
    errors = sum(edit_distance(list(p), list(r)) for p, r in zip(predictions, references))
    return errors / max(1, sum(len(r) for r in references))


def sequence_error_rate(predictions: Sequence[Sequence[str]],
                        references: Sequence[Sequence[str]]) -> float:
    """The share of sequences not exactly right."""
    if len(predictions) != len(references):
        raise ValueError("predictions: expected %d sequences (one per reference), got %d"
                         % (len(references), len(predictions)))
    wrong = sum(list(p) != list(r) for p, r in zip(predictions, references))
    return wrong / max(1, len(references))
