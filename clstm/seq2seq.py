"""clstm.Seq2Seq: an encoder-decoder with attention, computed in C
(include/clstm.h, "sequence to sequence"; issue 18).

    encoder   the LSTM stack over embedded source tokens (every LSTM
              option; bidirectional by default): S (Ts, B, N*R)
    decoder   x_t = [emb(y_{t-1}); f_{t-1}]  (input feeding), h_t = LSTM_dec(x_t)
    attention a_t = softmax over the source's valid steps of h_t . W_a S_j
              ("general") or h_t . S_j ("dot", Luong et al. 2015)
    output    f_t = tanh(W_c [ctx_t; h_t]),  z_t = W_o f_t + b_o  (logits)

Luong's attention rather than Bahdanau's additive one: after the keys
W_a S are computed once per source, a step costs one dot product per source
position, where the additive form needs a layer over every position at
every step, which dominates a CPU beam search.

Token ids: a source vocabulary starts with <unk>; a target vocabulary with
<s> (fed first), </s> (ends a target) and <unk> (clstm.pairs). A model
trained on pairs keeps its vocabularies and tokenizations in its metadata
("source_tokens", "target_tokens": the tokens one per line; "source_split",
"target_split": "char" or "space"), so `clstm translate`, Seq2Seq.translate
and examples/translate.c read text.
"""
from __future__ import annotations

import threading
from typing import Any, NoReturn, Optional, Sequence, Union

import numpy as np
import numpy.typing as npt

from clstm import _core, checks, pairs
from clstm._typing import FloatArray
from clstm.checks import as_int, positive_int
from clstm.config import _MAX_VALUE_BYTES
from clstm.config import core_settings, settings_of
from clstm.model import LSTM, _Guard

__all__ = ["Seq2Seq", "ATTENTIONS"]

ATTENTIONS = ("general", "dot")
DECODER_SETTINGS = ("target_vocab", "target_embedding", "decoder_hidden", "decoder_layers",
                    "attention", "attentional_size")


def _vocabulary(v: object, specials: Sequence[str], name: str) -> Optional[pairs.Vocabulary]:
    """A pairs.Vocabulary from a Vocabulary or a list of tokens (the specials
    left out; they come first); None for an int (a size alone)."""
    if isinstance(v, pairs.Vocabulary):
        if v.specials != tuple(specials):
            raise ValueError("%s: expected a vocabulary whose specials are %s, got %s"
                             % (name, list(specials), list(v.specials)))
        return v
    if isinstance(v, (list, tuple)):
        if not all(isinstance(t, str) and t for t in v):
            raise TypeError("%s: expected a list of non-empty str tokens" % name)
        if len(set(v)) != len(v):
            raise ValueError("%s: tokens must be distinct" % name)
        if any("\n" in t or "\0" in t for t in v):
            raise ValueError("%s: a token may not contain a line break or U+0000" % name)
        return pairs.Vocabulary(list(v), specials)
    return None


def _metadata_int(value: Optional[str]) -> Optional[int]:
    """A positive count written in the metadata (1 to 10**6, digits only, as
    examples/translate.c reads it), or None."""
    if value is None or not value.isascii() or not value.isdigit() or len(value) > 7:
        return None
    v = int(value)
    return v if 1 <= v <= 10**6 else None


class Seq2Seq(LSTM):
    """An attentional encoder-decoder in one parameter block and one file.

    Parameters
    ----------
    source_vocab, target_vocab : clstm.pairs.Vocabulary, list of str, or int
        The token vocabularies (a list: its tokens, the specials added first)
        or their sizes, specials included (>= 1 source, >= 3 target).
    embedding : int
        The source embedding width (the encoder's input_size).
    hidden_size, num_layers, bidirectional, proj_size, dropout, peepholes,
    input_forget, reverse :
        The encoder's LSTM options (clstm.LSTM); bidirectional by default.
        dropout applies between encoder layers.
    target_embedding : int or None
        The target embedding width (default: embedding).
    decoder_hidden, decoder_layers : int
        The decoder LSTM (default: decoder_hidden = the encoder's output
        width N*R, which "dot" attention requires).
    attention : "general" or "dot"
    attentional_size : int or None
        The width of f_t (default: decoder_hidden).
    source_split, target_split : "char" or "space"
        How text splits into tokens (translate, and the metadata).
    dtype, seed, backend : as clstm.LSTM.

    Notes
    -----
    Arrays are time-first: src (Ts, B) and tgt_in (Tt, B) int ids, logits
    (Tt, B, Vt). The encoder is the model's LSTM pipeline (embedding, no
    head); named_parameters() has its tensors (torch.nn.LSTM's names and
    ``embedding.weight``), then the decoder's (``decoder.weight_ih_l0``,
    ``decoder.embedding.weight``, ``attention.weight`` (general only),
    ``attention.combine.weight``, ``decoder.out.weight``, ``decoder.out.bias``).
    """
    _OUT = "logits"
    _MORE_SIZES = ("target_embedding", "decoder_hidden", "decoder_layers", "attentional_size")

    def __init__(self, source_vocab, target_vocab, *, embedding=64, hidden_size=256,
                 num_layers=1, bidirectional=True, target_embedding=None, decoder_hidden=None,
                 decoder_layers=1, attention="general", attentional_size=None,
                 source_split="char", target_split="char", proj_size=0, dropout=0.0,
                 peepholes=False, input_forget=False, dtype=np.float32, seed=None,
                 backend="default", reverse=False):
        self.source_vocabulary = _vocabulary(source_vocab, pairs.SOURCE_SPECIALS, "source_vocab")
        self.target_vocabulary = _vocabulary(target_vocab, pairs.TARGET_SPECIALS, "target_vocab")
        vs = (len(self.source_vocabulary) if self.source_vocabulary is not None
              else positive_int(source_vocab, "source_vocab"))
        vt = (len(self.target_vocabulary) if self.target_vocabulary is not None
              else positive_int(target_vocab, "target_vocab"))
        if vt <= len(pairs.TARGET_SPECIALS):
            raise ValueError("target_vocab: expected at least 4 target ids (<s>, </s>, <unk> "
                             "and a token), got %d" % vt)
        for name, v in (("source_split", source_split), ("target_split", target_split)):
            if v not in pairs.TOKENIZATIONS:
                raise ValueError("%s: expected one of %s, got %r"
                                 % (name, ", ".join(pairs.TOKENIZATIONS), v))
        if attention not in ATTENTIONS:
            raise ValueError("attention: expected 'general' or 'dot', got %r" % (attention,))
        hidden_size = positive_int(hidden_size, "hidden_size")
        embedding = positive_int(embedding, "embedding")
        proj = as_int(proj_size, "proj_size")
        width = (2 if bidirectional else 1) * (proj if proj > 0 else hidden_size)
        if decoder_hidden is None:
            decoder_hidden = width
        self.encoding, self.vocab_size, self.output_size = "embedding", vs, 0
        self.target_vocab = vt
        self.target_embedding = positive_int(
            embedding if target_embedding is None else target_embedding, "target_embedding")
        self.decoder_hidden = positive_int(decoder_hidden, "decoder_hidden")
        self.decoder_layers = positive_int(decoder_layers, "decoder_layers")
        if self.decoder_layers > 8:
            raise ValueError("decoder_layers: expected 1 to 8, got %d" % self.decoder_layers)
        if attention == "dot" and self.decoder_hidden != width:
            raise ValueError("decoder_hidden: 'dot' attention needs it equal to the encoder's "
                             "output width %d, got %d" % (width, self.decoder_hidden))
        self.attention = attention
        self.attentional_size = positive_int(
            self.decoder_hidden if attentional_size is None else attentional_size,
            "attentional_size")
        self.source_split, self.target_split = source_split, target_split
        super().__init__(embedding, hidden_size, num_layers, bidirectional=bidirectional,
                         proj_size=proj_size, dropout=dropout, dtype=dtype, seed=seed,
                         backend=backend, peepholes=peepholes, input_forget=input_forget,
                         reverse=reverse)
        self._store_vocabularies()

    # the C model: LSTM.__init__ creates it from core_settings (see _core_settings)
    def _core_settings(self) -> dict[str, Any]:
        s = core_settings(self)
        s.update({k: getattr(self, k) for k in DECODER_SETTINGS})
        s["attention"] = ATTENTIONS.index(self.attention)
        return s

    def _store_vocabularies(self) -> None:
        for side, vocab, split in (("source", self.source_vocabulary, self.source_split),
                                   ("target", self.target_vocabulary, self.target_split)):
            self.metadata[side + "_split"] = split
            if vocab is not None:
                text = "\n".join(vocab.tokens)
                if len(text.encode("utf-8")) > _MAX_VALUE_BYTES:
                    raise ValueError(
                        "%s_vocab: %d tokens take %d bytes; a model file keeps at most %d "
                        "(character and subword vocabularies fit; a word vocabulary of "
                        "this size does not)" % (side, len(vocab), len(text.encode("utf-8")),
                                                 _MAX_VALUE_BYTES))
                self.metadata[side + "_tokens"] = text

    @classmethod
    def _from_core(cls, core: _core.Model, *, batch_first: bool = False) -> Seq2Seq:
        """A Seq2Seq around a loaded _core.Model: settings from its config,
        vocabularies and tokenizations from its metadata (ValueError when
        they do not fit its sizes)."""
        if batch_first:
            raise ValueError("batch_first: an encoder-decoder takes time-first arrays")
        self = cls.__new__(cls)
        vars(self).update(settings_of(core))
        c = core.config()
        vars(self).update({k: c[k] for k in DECODER_SETTINGS})
        self.attention = ATTENTIONS[c["attention"]]
        meta = dict(core.metadata_items())
        for side, size, specials in (("source", c["vocab_size"], pairs.SOURCE_SPECIALS),
                                     ("target", c["target_vocab"], pairs.TARGET_SPECIALS)):
            split = meta.get(side + "_split", "char")
            if split not in pairs.TOKENIZATIONS:
                raise ValueError("%s_split: expected 'char' or 'space' in the model's "
                                 "metadata, got %r" % (side, split))
            setattr(self, side + "_split", split)
            vocab = None
            if side + "_tokens" in meta:
                tokens = meta[side + "_tokens"].split("\n")
                if len(tokens) != size or tuple(tokens[:len(specials)]) != specials:
                    raise ValueError("%s_tokens: the model's metadata lists %d tokens (first "
                                     "%s) for its %d %s ids" % (side, len(tokens),
                                                                tokens[:len(specials)], size,
                                                                side))
                vocab = pairs.Vocabulary(tokens[len(specials):], specials)
            setattr(self, side + "_vocabulary", vocab)
        self._attach(core)
        return self

    def __repr__(self) -> str:
        return ("Seq2Seq(source_vocab=%d, target_vocab=%d, embedding=%d, hidden_size=%d, "
                "num_layers=%d, bidirectional=%s, decoder_hidden=%d, decoder_layers=%d, "
                "attention=%r, attentional_size=%d, dtype=%s)"
                % (self.vocab_size, self.target_vocab, self.input_size, self.hidden_size,
                   self.num_layers, self.bidirectional, self.decoder_hidden,
                   self.decoder_layers, self.attention, self.attentional_size,
                   self.dtype.name))

    @property
    def vocab(self) -> None:
        """None: an encoder-decoder has token vocabularies, not a character
        string (see source_vocabulary, target_vocabulary)."""
        return None

    @property
    def out_size(self) -> int:
        return self.target_vocab

    # ------------------------------------------------------------ arguments
    @staticmethod
    def _ids(v: npt.ArrayLike, name: str) -> npt.NDArray[Any]:
        a = checks.integers(v, name, "an integer array of token ids")
        if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
            raise ValueError("%s: expected shape (T, B) with T, B >= 1, got %s" % (name, a.shape))
        return a

    def _checked(self, src: npt.ArrayLike, src_lengths: Optional[npt.ArrayLike],
                 tgt_in: Optional[npt.ArrayLike] = None,
                 tgt_lengths: Optional[npt.ArrayLike] = None
                 ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64], Any, Any]:
        """C's arrays: src (Ts, B) int32, src_lens (B,) int64, and the target's."""
        s = self._ids(src, "src")
        Ts, B = s.shape
        slen = checks.lengths(src_lengths, Ts, B, "src_lengths", "Ts")
        slen = np.full(B, Ts, np.int64) if slen is None else slen
        s = np.ascontiguousarray(checks.token_ids(s, slen, self.vocab_size, "src"), np.int32)
        if tgt_in is None:
            return s, slen, None, None
        t = self._ids(tgt_in, "tgt_in")
        if t.shape[1] != B:
            raise ValueError("tgt_in: expected shape (Tt, %d) (src's batch), got %s"
                             % (B, t.shape))
        tlen = checks.lengths(tgt_lengths, t.shape[0], B, "tgt_lengths", "Tt")
        tlen = np.full(B, t.shape[0], np.int64) if tlen is None else tlen
        t = np.ascontiguousarray(checks.token_ids(t, tlen, self.target_vocab, "tgt_in"), np.int32)
        return s, slen, t, tlen

    # -------------------------------------------------------------- compute
    # (an encoder-decoder's forward: its own arguments, not an LSTM's x and state)
    def forward(self, src: npt.ArrayLike, tgt_in: npt.ArrayLike, *,  # type: ignore[override]
                src_lengths: Optional[npt.ArrayLike] = None,
                tgt_lengths: Optional[npt.ArrayLike] = None, train: Optional[bool] = None,
                dropout_seed: Optional[int] = None) -> FloatArray:
        """Teacher forcing: the logits (Tt, B, Vt) of every target step.

        src (Ts, B) source ids in [0, source_vocab); tgt_in (Tt, B) target ids
        in [0, target_vocab), <s> first; src_lengths, tgt_lengths: (B,) or
        None (every row full). Ids past a length are never read; logits
        there are 0. A source of length 0 attends to nothing (context 0).
        train keeps what backward() needs (default: the model's mode, as
        set by train() and eval(); training until eval()); dropout_seed as
        LSTM.forward."""
        train = self.training if train is None else bool(train)
        s, slen, t, tlen = self._checked(src, src_lengths, tgt_in, tgt_lengths)
        (Ts, B), Tt = s.shape, t.shape[0]
        dseed = self._dropout_seed(dropout_seed, train)
        logits = checks.empty((Tt, B, self.target_vocab), self.dtype,
                              "logits for Tt=%d steps and B=%d rows" % (Tt, B))
        ws = self._workspace(self._m.seq2seq_workspace_size(Ts, Tt, B, train))
        with _Guard(self, None):
            self._m.seq2seq_forward(Ts, Tt, B, logits.reshape(-1), s.reshape(-1), slen,
                                    t.reshape(-1), tlen, train, ws, dseed)
        if train:
            with self._lock:
                self._pending = (ws, (Ts, Tt, B), None, threading.current_thread())
        else:
            self._release_workspace(ws)
        return logits

    __call__ = forward  # type: ignore[assignment]  # (as forward)

    # (returns None: the inputs are ids, which have no gradient)
    def backward(self, dlogits: npt.ArrayLike) -> None:  # type: ignore[override]
        """Backpropagate through the last forward(train=True): dlogits (Tt, B,
        Vt). ADDS every parameter's gradient (decoder, attention, encoder,
        embeddings) into flat_grads; returns None (ids have no gradient)."""
        with self._lock:
            if self._pending is None:
                raise ValueError("backward() needs a preceding forward(..., train=True) "
                                 "not yet used by a backward()")
            ws, (Ts, Tt, B), _, owner = self._pending
            if owner is not threading.current_thread():
                raise RuntimeError("backward(): the pending training forward was run by "
                                   "another thread")
            d = checks.floats(dlogits, "dlogits")
            if d.shape != (Tt, B, self.target_vocab):
                raise ValueError("dlogits: expected shape %s (the shape of logits), got %s"
                                 % ((Tt, B, self.target_vocab), d.shape))
            if self._writer is not None:
                raise RuntimeError("backward(): %s is writing the parameters in another "
                                   "thread; wait for it before computing" % self._writer)
            self._m.seq2seq_backward(Ts, Tt, B, np.ascontiguousarray(d, self.dtype).reshape(-1),
                                     ws)
            self._pending = None
        self._release_workspace(ws)

    def beam_search(self, src: npt.ArrayLike, src_lengths: Optional[npt.ArrayLike] = None, *,
                    width: int = 5, max_len: Optional[int] = None, alpha: float = 1.0,
                    nbest: int = 1
                    ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64],
                               npt.NDArray[np.float64]]:
        """Decode every source with its own beam, in C (width 1: greedy).

        Returns tokens (B, nbest, max_len) int32 (each hypothesis's target
        ids without </s>, zero-padded), lengths (B, nbest) (-1 where a
        source has fewer than nbest hypotheses) and scores (B, nbest): log p
        / len^alpha, len counting </s>, best first. max_len (default:
        default_max_len(Ts)) bounds a hypothesis; one that reaches it
        finishes as it is."""
        s, slen, _, _ = self._checked(src, src_lengths)
        Ts, B = s.shape
        width = as_int(width, "width")
        try:
            alpha = float(alpha)
        except (TypeError, ValueError):
            raise TypeError("alpha: expected a number >= 0, got %r" % (alpha,)) from None
        if not 1 <= width <= _core.SEQ2SEQ_MAX_WIDTH:
            raise ValueError("width: expected 1 <= width <= %d, got %d"
                             % (_core.SEQ2SEQ_MAX_WIDTH, width))
        nbest = as_int(nbest, "nbest")
        if not 1 <= nbest <= width:
            raise ValueError("nbest: expected 1 <= nbest <= width (%d), got %d" % (width, nbest))
        max_len = (self.default_max_len(Ts) if max_len is None
                   else positive_int(max_len, "max_len"))
        if not (np.isfinite(alpha) and alpha >= 0):
            raise ValueError("alpha: expected a finite number >= 0, got %r" % alpha)
        with _Guard(self, None):
            try:
                return self._m.seq2seq_beam_search(Ts, B, s.reshape(-1), slen, width, max_len,
                                                   alpha, nbest)
            except MemoryError:
                raise MemoryError("beam_search: cannot allocate the search of %d sources, "
                                  "width %d, max_len %d (a smaller max_len or batch needs "
                                  "less)" % (B, width, max_len)) from None

    def greedy(self, src: npt.ArrayLike, src_lengths: Optional[npt.ArrayLike] = None, *,
               max_len: Optional[int] = None
               ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64]]:
        """(tokens (B, max_len), lengths (B,)): beam_search of width 1."""
        tokens, lengths, _ = self.beam_search(src, src_lengths, width=1, max_len=max_len)
        return tokens[:, 0], lengths[:, 0]

    # ------------------------------------------------------------- text
    def _vocabularies(self) -> tuple[pairs.Vocabulary, pairs.Vocabulary]:
        if self.source_vocabulary is None or self.target_vocabulary is None:
            raise ValueError("this model has no token vocabularies (build it with "
                             "Seq2Seq(Vocabulary, Vocabulary, ...) or train it on pairs)")
        return self.source_vocabulary, self.target_vocabulary

    def encode_sources(self, sources: Sequence[Union[str, Sequence[str]]]
                       ) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.int64], int]:
        """src (Ts, B) int32, src_lengths (B,) and the count of tokens that
        became <unk>, for a list of texts (split as source_split says) or
        of token lists."""
        sv, _ = self._vocabularies()
        if isinstance(sources, str):
            raise TypeError("sources: expected a list of texts, got one str")
        ids, unknown = [], 0
        for i, s in enumerate(sources):
            tokens = pairs.tokenize(s, self.source_split) if isinstance(s, str) else list(s)
            e, u = sv.encode(tokens)
            ids.append(e)
            unknown += u
        B = len(ids)
        if B == 0:
            raise ValueError("sources: expected at least one source")
        lens = np.array([len(e) for e in ids], np.int64)
        src = np.zeros((max(1, int(lens.max())), B), np.int32)
        for b, e in enumerate(ids):
            src[:len(e), b] = e
        return src, lens, unknown

    def default_max_len(self, Ts: int) -> int:
        """translate's bound on a target's tokens: twice the longest target
        seen in training plus 10 (the "max_target_length" metadata a
        trained model has), so a source's translation does not depend on
        what else is in its batch; else twice the batch's longest source
        (Ts) plus 10."""
        longest = _metadata_int(self.metadata.get("max_target_length"))
        return 2 * Ts + 10 if longest is None else 2 * longest + 10

    def translate(self, sources: Sequence[Union[str, Sequence[str]]], *, beam: int = 5,
                  nbest: int = 1, max_len: Optional[int] = None, alpha: float = 1.0,
                  batch_size: int = 64) -> list[Any]:
        """The best target text of each source text (nbest=1), or for each a
        list of nbest (text, score) pairs, best first. Texts split and join
        as source_split and target_split say; tokens unseen in training read
        as <unk>. An empty source gives the model's output for no input. A
        source longer than any seen in training is translated like any
        other (expect it to be worse; `clstm translate` says so).
        max_len: default_max_len, which does not depend on the batch (the
        scores may differ in their last bits between batch compositions:
        BLAS takes other paths for other row counts)."""
        _, tv = self._vocabularies()
        batch_size = positive_int(batch_size, "batch_size")
        out = []
        for i in range(0, len(sources), batch_size):
            src, lens, _ = self.encode_sources(sources[i:i + batch_size])
            ml = self.default_max_len(src.shape[0]) if max_len is None else max_len
            tokens, lengths, scores = self.beam_search(src, lens, width=beam, max_len=ml,
                                                       alpha=alpha, nbest=nbest)
            for b in range(src.shape[1]):
                cands = [(pairs.detokenize(tv.decode(tokens[b, k, :lengths[b, k]].tolist()),
                                           self.target_split), float(scores[b, k]))
                         for k in range(nbest) if lengths[b, k] >= 0]
                out.append(cands[0][0] if nbest == 1 else cands)
        return out

    # ------------------------------------------------ what does not apply
    def _not_here(self, what: str) -> NoReturn:
        raise NotImplementedError("%s: not available for an encoder-decoder (clstm.Seq2Seq)"
                                  % what)

    def step(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._not_here("step (decode with beam_search or translate)")

    def initial_state(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._not_here("initial_state")

    def to_onnx(self, *args: Any, **kwargs: Any) -> NoReturn:
        self._not_here("to_onnx")

    def to_keras(self) -> NoReturn:
        self._not_here("to_keras")

    def keras_model(self, **kwargs: Any) -> NoReturn:
        self._not_here("keras_model")

    def to_torch_state_dict(self) -> NoReturn:
        self._not_here("to_torch_state_dict (state_dict() has every tensor)")

    @classmethod
    def _no_import(cls, what: str) -> NoReturn:
        raise NotImplementedError("%s: an encoder-decoder is built with clstm.Seq2Seq(...) and "
                                  "load_state_dict" % what)

    @classmethod
    def from_torch(cls, *args: Any, **kwargs: Any) -> NoReturn:
        cls._no_import("from_torch")

    @classmethod
    def from_keras(cls, *args: Any, **kwargs: Any) -> NoReturn:
        cls._no_import("from_keras")

    @classmethod
    def from_onnx(cls, *args: Any, **kwargs: Any) -> NoReturn:

        cls._no_import("from_onnx")
