"""clstm.Model: the whole model -- input encoding, LSTM stack, Linear head.

    e_t = x_t                       encoding=None         (raw features)
    e_t = onehot(ids_t)             encoding="onehot"     (token ids)
    e_t = embedding.weight[ids_t]   encoding="embedding"  (token ids)
    y_t = LSTM(e)_t
    out_t = head.weight y_t + head.bias   (when output_size > 0)

The math is in C (clstm_model_forward / clstm_model_backward); a C program
loads the same file and runs the same model (examples/). Losses and softmax
are in clstm.losses.
"""
import numpy as np

from clstm.lstm import LSTM, LSTMState, _as_int, _empty, _positive_int, _to_numpy

__all__ = ["Model"]

_ENCODINGS = {None: 0, "onehot": 1, "embedding": 2}
_ENCODING_NAMES = {v: k for k, v in _ENCODINGS.items()}


def _check_vocab(vocab):
    if not isinstance(vocab, str):
        raise TypeError("vocab: expected a str of distinct characters, got %s"
                        % type(vocab).__name__)
    if not vocab:
        raise ValueError("vocab: expected at least one character, got ''")
    if len(set(vocab)) != len(vocab):
        dup = sorted({ch for ch in vocab if vocab.count(ch) > 1})[:5]
        raise ValueError("vocab: characters must be distinct; repeated: %r" % dup)
    if "\0" in vocab:
        raise ValueError("vocab: the character U+0000 is not allowed")
    try:
        vocab.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("vocab: contains lone surrogates (not encodable as UTF-8)") from None
    return vocab


class Model(LSTM):
    """An input encoding, an LSTM stack and a Linear head, in one parameter
    block (so optimizers, save/load and the C library see one model).

    Parameters
    ----------
    input_size : int or None
        Raw input: D, the features per step. "embedding": the embedding
        width D. "onehot": may be left out (it is the vocabulary size).
    hidden_size, num_layers : int
        As clstm.LSTM; every other LSTM option (bidirectional, proj_size,
        dropout, peepholes, input_forget, clip, dtype, seed, batch_first,
        backend) is accepted too.
    encoding : None, "onehot" or "embedding"
        None: the input is real features (T, B, D). Otherwise the input is
        integer token ids (T, B) in [0, vocab_size). Defaults to "onehot"
        when a vocabulary is given, else None.
    vocab : str or None
        The characters of a character model, token i being vocab[i]; saved
        with the model. Sets vocab_size.
    vocab_size : int or None
        V, for token models without a character vocabulary.
    output_size : int
        O: 0 for no head (the output is the LSTM's y), else a Linear head
        with O outputs at every step.
    softmax : bool
        The head's outputs are logits of a categorical distribution; forward
        still returns logits (clstm.losses.softmax gives probabilities).

    Tensors, after the LSTM's (torch names): embedding.weight (V, D),
    head.weight (O, N*R), head.bias (O). Initialisation follows torch:
    N(0, 1) for the embedding, U(+-1/sqrt(N*R)) for the head.
    """

    def __init__(self, input_size=None, hidden_size=None, num_layers=1, *, encoding="auto",
                 vocab=None, vocab_size=None, output_size=0, softmax=False, **lstm_kwargs):
        if hidden_size is None:
            raise TypeError("hidden_size: required (an int >= 1)")
        if vocab is not None:
            vocab = _check_vocab(vocab)
            if vocab_size is not None and _as_int(vocab_size, "vocab_size") != len(vocab):
                raise ValueError("vocab_size: %d differs from len(vocab) = %d"
                                 % (vocab_size, len(vocab)))
            vocab_size = len(vocab)
        if encoding == "auto":
            encoding = "onehot" if vocab_size is not None else None
        if encoding not in _ENCODINGS:
            raise ValueError("encoding: expected None, 'onehot' or 'embedding', got %r"
                             % (encoding,))
        if encoding is None:
            if vocab_size is not None:
                raise ValueError("vocab_size: a vocabulary needs encoding='onehot' or "
                                 "'embedding'")
            if input_size is None:
                raise TypeError("input_size: required for real-valued input (encoding=None)")
            vocab_size = 0
        else:
            if vocab_size is None:
                raise TypeError("vocab_size: required for encoding=%r (or give vocab)"
                                % encoding)
            vocab_size = _positive_int(vocab_size, "vocab_size")
            if encoding == "onehot":
                if input_size is not None and _as_int(input_size, "input_size") != vocab_size:
                    raise ValueError("input_size: with encoding='onehot' it is vocab_size "
                                     "(%d), got %d" % (vocab_size, input_size))
                input_size = vocab_size
            elif input_size is None:
                raise TypeError("input_size: required for encoding='embedding' (the "
                                "embedding width)")
        output_size = _as_int(output_size, "output_size")
        if output_size < 0:
            raise ValueError("output_size: expected 0 (no head) or a positive int, got %d"
                             % output_size)
        if not isinstance(softmax, (bool, np.bool_)):
            raise TypeError("softmax: expected a bool, got %s" % type(softmax).__name__)
        if softmax and output_size == 0:
            raise ValueError("softmax: needs a head (output_size > 0)")
        self.encoding, self.vocab_size = encoding, vocab_size
        self.output_size, self.softmax = output_size, bool(softmax)
        super().__init__(input_size, hidden_size, num_layers, **lstm_kwargs)
        if vocab is not None:
            self._m.set_vocab(vocab)

    def _core_kwargs(self):
        return dict(encoding=_ENCODINGS[self.encoding], vocab_size=self.vocab_size,
                    output_size=self.output_size, softmax=self.softmax)

    @classmethod
    def _from_core(cls, core, *, batch_first=False):
        c = core.config()
        self = super()._from_core(core, batch_first=batch_first)
        self.encoding = _ENCODING_NAMES[c["encoding"]]
        self.vocab_size, self.output_size = int(c["vocab_size"]), int(c["output_size"])
        self.softmax = c["softmax"]
        return self

    @property
    def vocab(self):
        """The character vocabulary (str), or None."""
        return self._m.vocab()

    @property
    def is_bare_lstm(self):
        """True when the model is an LSTM alone (no encoding, no head)."""
        return self.encoding is None and self.output_size == 0

    @property
    def out_size(self):
        """Width of forward's output: output_size, or N*R without a head."""
        return self.output_size or self.num_directions * self._R

    def __repr__(self):
        extras = ""
        if self.encoding:
            extras += ", encoding=%r, vocab_size=%d" % (self.encoding, self.vocab_size)
        if self.output_size:
            extras += ", output_size=%d" % self.output_size
        if self.softmax:
            extras += ", softmax=True"
        return "Model(%s%s)" % (LSTM.__repr__(self)[len("LSTM("):-1], extras)

    # ------------------------------------------------------------- tokens
    def encode(self, text):
        """Token ids (int32 array) of the characters of `text`; ValueError
        naming the first character not in the vocabulary."""
        vocab = self.vocab
        if vocab is None:
            raise ValueError("encode: this model has no character vocabulary")
        if not isinstance(text, str):
            raise TypeError("text: expected a str, got %s" % type(text).__name__)
        index = {ch: i for i, ch in enumerate(vocab)}
        try:
            return np.array([index[ch] for ch in text], dtype=np.int32)
        except KeyError as e:
            raise ValueError("text: character %r is not in the model's vocabulary"
                             % e.args[0]) from None

    def decode(self, ids):
        """The text of a sequence of token ids."""
        vocab = self.vocab
        if vocab is None:
            raise ValueError("decode: this model has no character vocabulary")
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= len(vocab)):
            raise ValueError("ids: expected values in [0, %d)" % len(vocab))
        return "".join(vocab[i] for i in ids.tolist())

    # ------------------------------------------------------------ compute
    def _tokens(self, ids):
        """ids as a C-contiguous (T, B) integer array (its own dtype), and its layout."""
        a = _to_numpy(ids)
        if a.dtype.kind not in "iu":
            raise TypeError("ids: expected an integer array of token ids, got dtype %s"
                            % a.dtype)
        if a.ndim == 1:
            layout, a2 = "unbatched", a[:, None]
        elif a.ndim == 2:
            layout = "batch_first" if self.batch_first else "time_first"
            a2 = a.T if self.batch_first else a
        else:
            raise ValueError("ids: expected shape %s or (T,), got %s"
                             % ("(B, T)" if self.batch_first else "(T, B)", a.shape))
        if a2.shape[0] < 1 or a2.shape[1] < 1:
            raise ValueError("ids: expected T, B >= 1, got shape %s" % (a.shape,))
        try:  # in their own dtype: _check_ids reports the values as given
            return np.ascontiguousarray(a2), layout
        except MemoryError:  # e.g. a zero-stride view of petabytes
            raise MemoryError("ids: cannot allocate a contiguous copy of shape %s"
                              % (a.shape,)) from None

    def _check_ids(self, ids, lens):
        """Every id at a valid step (t < length) in [0, V); padding past a
        length is never read and may hold anything."""
        valid = ids if lens is None else ids[np.arange(ids.shape[0])[:, None] < lens[None, :]]
        bad = valid[(valid < 0) | (valid >= self.vocab_size)]
        if bad.size:
            raise ValueError("ids: expected token ids in [0, %d), got %d"
                             % (self.vocab_size, int(bad.flat[0])))

    def forward(self, inputs, state=None, *, lengths=None, train=True, dropout_seed=None):
        """Run the whole model; returns out, (h, c) (or out, state for an
        LSTMState, advanced in place).

        inputs: token ids (T, B) ((B, T) with batch_first, (T,) unbatched)
        for a token model, else reals (T, B, D) as LSTM.forward. out is
        (T, B, O) (logits when softmax), or y (T, B, N*R) without a head, in
        the input's layout; 0 past each length. state, lengths, train and
        dropout_seed are as in LSTM.forward."""
        if self.encoding is None:
            x3, layout = self._input(inputs)
            ids, (T, B) = None, x3.shape[:2]
        else:
            ids, layout = self._tokens(inputs)
            x3, (T, B) = None, ids.shape
        stream, h0, c0, hT, cT = self._states(state, B, layout)
        lens = self._lengths(lengths, T, B)
        if ids is not None:
            self._check_ids(ids, lens)
            if ids.dtype != np.int32:  # out-of-range ids are padding now: never read
                ids = np.where((ids >= 0) & (ids < self.vocab_size), ids, -1).astype(np.int32)
        dseed = self._dropout_seed(dropout_seed, train)
        out = _empty((T, B, self.out_size), self.dtype, "out, the output for %s of T=%d steps "
                     "and B=%d rows (output_size=%d)" % ("x" if ids is None else "ids", T, B,
                                                         self.out_size))
        if stream and not train:
            ws = state._ws
        else:
            ws = self._workspace(self._m.workspace_size(T, B, bool(train)))
        with self._computing(state if stream else None):
            self._m.forward(T, B, out.reshape(-1), self._flat(x3),
                                  None if ids is None else ids.reshape(-1), self._flat(h0),
                                  self._flat(c0), hT.reshape(-1), cT.reshape(-1), bool(train),
                                  ws, lens, dseed)
        return self._finish_forward(out, state if stream else None, hT, cT, ws, train, layout)

    __call__ = forward

    def step(self, inputs_t, state):
        """One step for every stream: ids (B,) or x (B, D) -> out (B, O);
        state (an LSTMState) is advanced in place: ``out, state =
        model.step(ids_t, state)``. Inference only."""
        if not isinstance(state, LSTMState):
            raise TypeError("state: expected an LSTMState from initial_state(), got %s"
                            % type(state).__name__)
        if self.encoding is None:
            x = self._array(inputs_t, "x_t")
            if x.ndim != 2 or x.shape[1] != self.input_size:
                raise ValueError("x_t: expected shape (B, %d), got %s"
                                 % (self.input_size, x.shape))
            seq = x[:, None] if self.batch_first else x[None]
        else:
            ids = _to_numpy(inputs_t)
            if ids.ndim != 1:
                raise ValueError("ids_t: expected shape (B,), got %s" % (ids.shape,))
            seq = ids[:, None] if self.batch_first else ids[None]
        out, state = self.forward(seq, state, train=False)
        return (out[:, 0] if self.batch_first else out[0]), state

    def backward(self, dout, dstate=None):
        """Backpropagate through the last forward(train=True).

        dout: gradient w.r.t. out (out's shape) or None; dstate: None or
        (dh, dc). Returns dx (None for a token model: ids have no gradient),
        (dh0, dc0), and ADDS every parameter gradient (head, LSTM,
        embedding) into flat_grads."""
        return self._backward(
            dout, "dout", "out", self.out_size, dstate, self.encoding is None,
            lambda T, B, ws, d, dhT, dcT, dx, dh0, dc0: self._m.backward(
                T, B, dh0, dc0, dx, d, dhT, dcT, ws))

    def to_onnx(self, path=None, **kwargs):
        if not self.is_bare_lstm:
            raise NotImplementedError("to_onnx: only a bare LSTM (no encoding, no head) "
                                      "exports to ONNX so far")
        return super().to_onnx(path, **kwargs)
