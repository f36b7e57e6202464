"""The model: clstm.LSTM and clstm.Model, one class and its constructor for
whole models, over one C pipeline (clstm_model_forward / _backward):

    e_t = x_t                       encoding=None         (raw features)
    e_t = onehot(ids_t)             encoding="onehot"     (token ids)
    e_t = embedding.weight[ids_t]   encoding="embedding"  (token ids)
    y_t = LSTM(e)_t
    out_t = head.weight y_t + head.bias   (when output_size > 0)

clstm.LSTM is the model with no encoding and no head (out is y); it holds
the checks, the layouts, the workspace pool and the thread-safety guards.
clstm.Model is a subclass that adds the encoding, the head and a
vocabulary to its constructor. A C program loads the same file and runs the
same model (examples/). Losses and softmax are in clstm.losses.
"""
from __future__ import annotations

import contextlib
import secrets
import threading
import warnings
from typing import (TYPE_CHECKING, Any, ItemsView, Iterator, KeysView, Mapping, Optional,
                    ValuesView, overload)

import numpy as np
import numpy.typing as npt

from clstm import _core, checks, layout
from clstm._typing import FloatArray, State
from clstm.checks import as_int, positive_int
from clstm.config import ENCODINGS, GATES, Metadata, core_settings, settings_of
from clstm.interop import Interchange
from clstm.streaming import LSTMState

if TYPE_CHECKING:
    from typing_extensions import Self

# forward's and backward's state arguments: (h, c), either may be None
_StateIn = Optional["tuple[Optional[npt.ArrayLike], Optional[npt.ArrayLike]]"]

__all__ = ["LSTM", "Model", "NamedArrays"]


def _flat(a: Optional[npt.NDArray[Any]]) -> Optional[npt.NDArray[Any]]:
    return None if a is None else a.reshape(-1)


class NamedArrays:
    """Named arrays, as named_parameters() and named_grads() return them.

    Iterated, it yields (name, array) pairs, as
    torch.nn.Module.named_parameters() does, so ``for name, p in
    m.named_parameters():`` and ``dict(m.named_parameters())`` work as in
    PyTorch. Unlike a dict, iterating gives pairs, not names: use keys()
    for the names. Looked up by name it gives the array, and keys(),
    values(), items(), get(), len() and ``name in`` behave as a dict's."""
    __slots__ = ("_arrays",)

    def __init__(self, arrays: dict[str, FloatArray]) -> None:
        self._arrays = arrays

    def __iter__(self) -> Iterator[tuple[str, FloatArray]]:
        return iter(self._arrays.items())

    def __getitem__(self, name: str) -> FloatArray:
        return self._arrays[name]

    def __contains__(self, name: object) -> bool:
        return name in self._arrays

    def __len__(self) -> int:
        return len(self._arrays)

    def keys(self) -> KeysView[str]:
        return self._arrays.keys()

    def values(self) -> ValuesView[FloatArray]:
        return self._arrays.values()

    def items(self) -> ItemsView[str, FloatArray]:
        return self._arrays.items()

    def get(self, name: str, default: Optional[FloatArray] = None) -> Optional[FloatArray]:
        return self._arrays.get(name, default)

    def __repr__(self) -> str:
        return "NamedArrays(%s)" % ", ".join("%s=%s%s" % (k, v.dtype, list(v.shape))
                                             for k, v in self._arrays.items())


def _gate(activation, alpha, beta):
    """The checked gate activation settings (see LSTM)."""
    if activation not in GATES:
        raise ValueError("gate_activation: expected 'sigmoid' or 'hard_sigmoid', got %r"
                         % (activation,))
    alpha, beta = checks.real(alpha, "gate_alpha"), checks.real(beta, "gate_beta")
    if not alpha > 0:
        raise ValueError("gate_alpha: expected a finite float > 0, got %r" % alpha)
    if activation == "sigmoid" and (alpha, beta) != (0.2, 0.5):
        raise ValueError("gate_alpha, gate_beta: apply to gate_activation='hard_sigmoid' "
                         "only; the sigmoid takes the defaults 0.2 and 0.5, got %r and %r"
                         % (alpha, beta))
    return activation, alpha, beta


class LSTM(Interchange):
    """A multi-layer LSTM with torch.nn.LSTM's equations and parameter layout.

    Parameters
    ----------
    input_size, hidden_size, num_layers : int >= 1
        D, H and L.
    bidirectional : bool
        Run a reverse direction too; outputs are [forward, reverse] along the
        last axis, states are indexed layer * 2 + direction.
    reverse : bool
        A reverse-only LSTM (not in torch.nn.LSTM; ONNX's
        direction="reverse", Keras's go_backwards=True): the one direction
        runs each sequence from its last valid step back to its first, as
        the reverse half of a bidirectional LSTM does. y[t] is h after
        reading x[len-1] down to x[t] (Keras's go_backwards output is this
        flipped in time); the final state is the one after x[0]. Equal to
        torch.nn.LSTM run on each sequence's valid steps reversed, its
        output reversed back. Cannot stream; excludes bidirectional.
    proj_size : int
        P: 0 (none) or 1 <= P < H. h = W_hr (o * tanh(c)), so h and y have P
        features while c keeps H (torch.nn.LSTM's proj_size).
    dropout : float in [0, 1)
        Dropout on the inputs of layers 1..L-1 in training forwards, as
        torch.nn.LSTM (no effect, and a warning, when num_layers == 1).
    peepholes, input_forget, clip :
        ONNX's LSTM options, off by default (torch.nn.LSTM has none of them).
        peepholes: i and f also see ``p_i*c_{t-1}``, ``p_f*c_{t-1}``, o sees ``p_o*c_t``
        (tensor ``peephole_l{k}``, (3H,) ordered i, f, o). input_forget: f =
        1 - i. clip: every gate pre-activation is clipped to [-clip, clip]
        (inference only: backward() raises NotImplementedError).
    gate_activation, gate_alpha, gate_beta :
        The activation of the gates i, f and o (ONNX's activations[0]; the
        cell and output activations stay tanh): "sigmoid" (the default) or
        "hard_sigmoid", max(0, min(1, gate_alpha * z + gate_beta)), the
        default recurrent activation of Keras 2 (gate_alpha 0.2, gate_beta
        0.5, the defaults: ONNX's too; Keras 3's is 1/6 and 0.5). Its
        gradient is gate_alpha where the gate lies strictly between 0 and
        1, else 0. gate_alpha > 0 and gate_beta are finite, and keep their
        defaults with "sigmoid". Not in torch.nn.LSTM; not for Seq2Seq.
    dtype : numpy.float32 (default) or numpy.float64
    seed : int in [0, 2**64) or None
        Seeds the initialisation U(-1/sqrt(H), 1/sqrt(H)); None draws a fresh
        seed from the OS (kept in ``self.seed``).
    batch_first : bool
        Input and output are (B, T, .) instead of (T, B, .). States stay
        (L, B, H), as in PyTorch.
    backend : "default", "blas" or "naive"
        "naive" runs plain C loops (slow; the tests' oracle).

    Notes
    -----
    Shapes, with N = 2 if bidirectional else 1 and R = P or H: x (T, B, D)
    -> y ``(T, B, N*R)``, h ``(N*L, B, R)``, c ``(N*L, B, H)``. An unbatched x of
    shape (T, D) gives y ``(T, N*R)`` and states ``(N*L, R)``, ``(N*L, H)``.

    Threads: forward may run from many Python threads on one model at once
    (the GIL is released). RuntimeError, instead of a corrupted result, for
    load_state_dict or an optimizer step while another thread computes with
    the model, a step on an LSTMState another thread is advancing, and a
    backward() whose training forward another thread replaced. Writes made
    directly through flat_parameters views are not guarded.
    """
    # The stages an LSTM leaves out of the pipeline (clstm.Model sets them).
    encoding: Optional[str]
    encoding, vocab_size, output_size, softmax = None, 0, 0, False
    _OUT = "y"  # what forward returns, as its messages name it ("d" + _OUT: backward's)
    _MORE_SIZES: tuple[str, ...] = ()  # a subclass's sizes a refused config's message names

    def __init__(self, input_size, hidden_size, num_layers=1, *, bidirectional=False,
                 proj_size=0, dropout=0.0, dtype=np.float32, seed=None, batch_first=False,
                 backend="default", peepholes=False, input_forget=False, clip=None,
                 reverse=False, gate_activation="sigmoid", gate_alpha=0.2, gate_beta=0.5):
        self.input_size = positive_int(input_size, "input_size")
        self.hidden_size = positive_int(hidden_size, "hidden_size")
        self.num_layers = positive_int(num_layers, "num_layers")
        self.bidirectional = checks.flag(bidirectional, "bidirectional")
        self.num_directions = 2 if self.bidirectional else 1
        self.reverse = checks.flag(reverse, "reverse")
        if self.reverse and self.bidirectional:
            raise ValueError("reverse: a bidirectional LSTM already has a reverse direction; "
                             "expected reverse=False with bidirectional=True")
        if isinstance(proj_size, (bool, np.bool_)) or not isinstance(proj_size,
                                                                     (int, np.integer)):
            raise TypeError("proj_size: expected an int, got %s" % type(proj_size).__name__)
        if proj_size != 0:
            proj_size = positive_int(proj_size, "proj_size")
            if proj_size >= self.hidden_size:
                raise ValueError("proj_size: expected 0 or 1 <= proj_size < hidden_size (%d), "
                                 "got %d" % (self.hidden_size, proj_size))
        self.proj_size = int(proj_size)
        self.dropout = checks.probability(dropout, "dropout")
        self.peepholes = checks.flag(peepholes, "peepholes")
        self.input_forget = checks.flag(input_forget, "input_forget")
        if clip is not None:
            if isinstance(clip, (bool, np.bool_)) or not isinstance(
                    clip, (int, float, np.integer, np.floating)):
                raise TypeError("clip: expected None or a positive float, got %s"
                                % type(clip).__name__)
            if not float(clip) > 0:
                raise ValueError("clip: expected None or a positive float, got %r" % (clip,))
        self.clip = None if clip is None else float(clip)
        self.gate_activation, self.gate_alpha, self.gate_beta = _gate(
            gate_activation, gate_alpha, gate_beta)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn("dropout=%g has no effect with num_layers=1: dropout applies "
                          "between layers" % self.dropout, UserWarning, stacklevel=2)
        self.dtype = checks.float_dtype(dtype)
        if backend not in _core.BACKENDS:
            raise ValueError("backend: expected 'default', 'blas' or 'naive', got %r"
                             % (backend,))
        if backend == "blas" and not _core.has_blas():
            raise ValueError("backend: 'blas' requested but this build has no BLAS")
        if seed is None:
            seed = secrets.randbits(64)
        else:
            seed = as_int(seed, "seed", "an int or None")
            if not 0 <= seed < 2**64:
                raise ValueError("seed: expected 0 <= seed < 2**64, got %d" % seed)
        self.seed = seed
        self.batch_first = bool(batch_first)
        self.backend = backend
        settings = self._core_settings()
        try:
            core = _core.Model(settings, seed, backend)
        except (ValueError, MemoryError) as e:
            # the C status names no argument: name the sizes (e.g. hidden_size=2**40)
            sizes = ("input_size", "hidden_size", "num_layers", "proj_size", "vocab_size",
                     "output_size") + self._MORE_SIZES
            raise type(e)("%s (%s)" % (e, ", ".join("%s=%d" % (k, settings[k]) for k in sizes
                                                     if settings[k]))) from None
        self._attach(core)

    def _core_settings(self) -> dict[str, Any]:
        """{clstm_config field: value} of this model (subclasses add theirs)."""
        return core_settings(self)

    def _attach(self, core: _core.Model) -> None:
        """Take `core` (a _core.Model) as this model's C model."""
        self._m = core
        # forward's default (torch's module mode): training, except for a
        # quantized model, which runs inference only
        self.training = not core.quantized
        # dropout masks: one 64-bit seed per training forward, from this stream
        self._dropout_rng = np.random.default_rng([self.seed, 0xD0])
        self._params = np.asarray(self._m.params_block())
        self._grads = np.asarray(self._m.grads_block())
        if core.quantized:  # int8 weights: the float block is a dequantized copy to read
            self._params.flags.writeable = self._grads.flags.writeable = False
        self._tensors = self._m.tensors()
        self._width = self.output_size or self.num_directions * self._R  # out's last axis
        self._lock = threading.Lock()
        # (ws, (T, B), layout, thread) of the last training forward (Seq2Seq: (Ts, Tt, B))
        self._pending: Optional[tuple[Any, tuple[int, ...], Any, threading.Thread]] = None

        self._readers = 0  # calls computing with the parameters now (any thread)
        self._writer: Optional[str] = None  # what is writing the parameters now, or None
        # the workspace the last call released, for reuse
        self._spare_ws: Optional[npt.NDArray[np.uint8]] = None

    @classmethod
    def _from_core(cls, core: _core.Model, *, batch_first: bool = False) -> Self:
        """A model around an existing _core.Model (e.g. from _core.load), its
        settings read from the C config; the backend is the default one and
        ``seed`` (used for dropout masks only) a fresh one."""
        self = cls.__new__(cls)
        vars(self).update(settings_of(core, batch_first=batch_first))
        self._attach(core)
        return self

    def __repr__(self) -> str:
        """As torch.nn.LSTM shows itself (the sizes, then only the settings
        that differ from their defaults, in torch's order), followed by
        clstm's own settings: LSTM(3, 4, num_layers=2, bidirectional=True)."""
        args = ["%d" % self.input_size, "%d" % self.hidden_size]
        for k, default in (("proj_size", 0), ("num_layers", 1), ("batch_first", False),
                           ("dropout", 0.0), ("bidirectional", False), ("peepholes", False),
                           ("input_forget", False), ("clip", None), ("reverse", False),
                           ("gate_activation", "sigmoid"), ("gate_alpha", 0.2),
                           ("gate_beta", 0.5)):
            if getattr(self, k) != default:
                args.append("%s=%r" % (k, getattr(self, k)))
        if self.dtype != np.float32:
            args.append("dtype=%s" % self.dtype.name)
        if self.encoding:
            args.append("encoding=%r, vocab_size=%d" % (self.encoding, self.vocab_size))
        if self.output_size:
            args.append("output_size=%d" % self.output_size)
        if self.softmax:
            args.append("softmax=True")
        return "%s(%s)" % (type(self).__name__, ", ".join(args))

    @property
    def metadata(self) -> Metadata:
        """User metadata (str -> str), saved with the model; see Metadata."""
        return Metadata(self._m)

    @property
    def quantized(self) -> bool:
        """True for a quantized (int8) model: inference only (clstm.quantize)."""
        return bool(self._m.quantized)

    def _refuse_quantized(self, what: str) -> None:
        if self._m.quantized:
            raise ValueError("%s: the model is quantized (int8) and runs inference only; "
                             "train or change its float32 original, then quantize again"
                             % what)

    def int8_tensors(self) -> dict[str, tuple[npt.NDArray[np.int8], npt.NDArray[np.float32]]]:
        """{name: (q, scale)} of a quantized model: q the int8 weights (the
        tensor's shape), scale their rows' float32 scales (w = q * scale
        row by row). Copies."""
        if not self._m.quantized:
            raise ValueError("int8_tensors: the model is not quantized (clstm.quantize)")
        out = {}
        for i, (name, _, shape) in enumerate(self._tensors):
            if len(shape) == 2 and not name.startswith(("bias", "peephole", "head.bias")):
                q, s = self._m.tensor_int8(i)
                out[name] = (np.frombuffer(q, np.int8).reshape(shape).copy(),
                             np.frombuffer(s, np.float32).copy())
        return out

    @property
    def is_bare_lstm(self) -> bool:
        """True when the model is an LSTM alone (no encoding, no head)."""
        return self.encoding is None and self.output_size == 0

    @property
    def out_size(self) -> int:
        """Width of forward's output: output_size, or N*R without a head."""
        return self._width

    @property
    def _R(self) -> int:
        """The width of h: proj_size, or hidden_size without projection."""
        return self.proj_size or self.hidden_size

    # ------------------------------------------------------------ parameters
    @property
    def flat_parameters(self) -> FloatArray:
        """1-D view of the whole parameter block (torch's order); writable,
        except for a quantized model (its dequantized weights, to read)."""
        return self._params

    @property
    def flat_grads(self) -> FloatArray:
        """1-D writable view of the whole gradient block (empty for a
        quantized model, which has none)."""
        return self._grads

    def _views(self, block: FloatArray) -> dict[str, FloatArray]:
        return {name: block[off:off + int(np.prod(shape))].reshape(shape)
                for name, off, shape in self._tensors}

    def named_parameters(self) -> NamedArrays:
        """The parameters as views with torch.nn.LSTM's names and shapes
        (writable, except for a quantized model), in torch's order.
        Iterating gives (name, view) pairs as torch does (``for name, p in
        m.named_parameters():``, ``dict(m.named_parameters())``); a name
        looks one up (``m.named_parameters()["weight_ih_l0"]``), and
        keys(), values(), items(), get(), len() and ``in`` work as on a
        dict (NamedArrays)."""
        return NamedArrays(self._views(self._params))

    def train(self, mode: bool = True) -> Self:
        """Set the mode forward() defaults to (torch.nn.Module.train):
        training (keep what backward needs; dropout between layers) or,
        with mode=False, inference. Returns the model. An explicit
        forward(train=...) still decides for its own call. ValueError for
        training mode on a quantized model."""
        if mode:
            self._refuse_quantized("train()")
        self.training = bool(mode)
        return self

    def eval(self) -> Self:
        """Inference mode for forward()'s default: train(False)."""
        return self.train(False)

    def parameters(self) -> Iterator[FloatArray]:
        """An iterator over the parameter views, in named_parameters' order
        (torch.nn.Module.parameters)."""
        return iter(self._views(self._params).values())

    def named_grads(self) -> NamedArrays:
        """The gradients' views, named and ordered as named_parameters (a
        NamedArrays: (name, view) pairs when iterated)."""
        self._refuse_quantized("named_grads")
        return NamedArrays(self._views(self._grads))

    def state_dict(self) -> dict[str, FloatArray]:
        """{name: copy} of every parameter, loadable by torch.nn.LSTM."""
        return {k: v.copy() for k, v in self.named_parameters().items()}

    def load_state_dict(self, state_dict: Mapping[str, npt.ArrayLike] | NamedArrays,
                        strict: bool = True) -> None:
        """Copy parameters in from a dict of arrays or torch tensors.

        Every value is checked before anything is written: on error the model
        is unchanged. strict=True requires exactly this model's names."""
        self._refuse_quantized("load_state_dict")
        if not (hasattr(state_dict, "items") and hasattr(state_dict, "keys")):
            raise TypeError("state_dict: expected a mapping of name -> array, got %s"
                            % type(state_dict).__name__)
        views = self._views(self._params)
        given = set(state_dict.keys())  # (a NamedArrays iterates as pairs)
        missing = sorted(set(views) - given)
        unexpected = sorted(given - set(views))
        if strict and (missing or unexpected):
            raise KeyError("state_dict: missing keys %s, unexpected keys %s"
                           % (missing, unexpected))
        staged = {}
        for name, view in views.items():
            if name not in state_dict:
                continue
            arr = checks.to_numpy(state_dict[name])
            if arr.dtype.kind not in "fiu":
                raise TypeError("state_dict[%r]: expected real numbers, got dtype %s"
                                % (name, arr.dtype))
            if arr.shape != view.shape:
                raise ValueError("state_dict[%r]: expected shape %s, got %s"
                                 % (name, view.shape, arr.shape))
            staged[name] = arr
        with self._writing("load_state_dict"):
            for name, arr in staged.items():
                views[name][...] = arr

    def zero_grad(self) -> None:
        """Set every gradient to zero."""
        with self._lock:
            self._m.zero_grad()

    # ------------------------------------------------- workspaces and guards
    def _workspace(self, nbytes: int) -> npt.NDArray[np.uint8]:
        """A workspace of at least nbytes: the one the last inference or
        backward released, if big enough, else a new one. (A new one per call
        made the kernel zero the pages of every training step's ~100 MB at
        T=100 B=64 H=512: 7% of the step.) Each call takes it alone, so
        threads sharing the model never share a workspace."""
        with self._lock:
            ws, self._spare_ws = self._spare_ws, None
        if ws is None or ws.nbytes < nbytes:
            ws = checks.empty(nbytes, np.uint8, "the call's workspace (a training forward "
                              "keeps every step's activations: fewer steps T or rows B need "
                              "less)")
        return ws

    def _release_workspace(self, ws: npt.NDArray[np.uint8]) -> None:
        """Keep ws for the next call (the larger, if one is kept already)."""
        with self._lock:
            if self._spare_ws is None or self._spare_ws.nbytes < ws.nbytes:
                self._spare_ws = ws

    @contextlib.contextmanager
    def _writing(self, what: str) -> Iterator[None]:
        """`what` (e.g. "load_state_dict") writes the parameters: alone.
        RuntimeError if another thread computes with them or writes them."""
        with self._lock:
            if self._readers or self._writer is not None:
                raise RuntimeError(
                    "%s: the model is in use by %s in another thread; changing its "
                    "parameters now would corrupt that result" % (
                        what, "%d call(s)" % self._readers if self._readers else self._writer))
            self._writer = what
        try:
            yield
        finally:
            with self._lock:
                self._writer = None

    # ------------------------------------------------------------- arguments
    def _input(self, x: npt.ArrayLike) -> tuple[npt.NDArray[Any], str]:
        """x as a C-contiguous (T, B, D) array of the model's dtype, and its layout."""
        a = checks.floats(x, "x")
        x3, lay = layout.split(a, self.batch_first, "x", ("D",))
        T, B, D = x3.shape
        if D != self.input_size or T < 1 or B < 1:
            raise ValueError("x: expected shape %s with T, B >= 1, got %s"
                             % (layout.shape_text(lay, (str(self.input_size),)), a.shape))
        return checks.contiguous(x3, "x", a.shape, self.dtype), lay

    def _tokens(self, ids: npt.ArrayLike, name: str) -> tuple[npt.NDArray[Any], str]:
        """ids as a C-contiguous (T, B) integer array (its own dtype), and its layout."""
        a = checks.integers(ids, name, "an integer array of token ids")
        a2, lay = layout.split(a, self.batch_first, name, ())
        if a2.shape[0] < 1 or a2.shape[1] < 1:
            raise ValueError("%s: expected T, B >= 1, got shape %s" % (name, a.shape))
        # in their own dtype: checks.token_ids reports the values as given
        return checks.contiguous(a2, name, a.shape), lay

    def _state(self, v: Optional[npt.ArrayLike], name: str, B: int, width: int, lay: str
               ) -> Optional[npt.NDArray[Any]]:
        """An (N*L, B, width) state from the caller's layout; None stays."""
        if v is None:
            return None
        a = checks.floats(v, name)
        NL = self.num_directions * self.num_layers
        want = layout.state_shape(lay, NL, B, width)
        if a.shape != want:
            raise ValueError("%s: expected shape %s, got %s" % (name, want, a.shape))
        return np.ascontiguousarray(a.reshape(NL, B, width), dtype=self.dtype)

    def _pair(self, v: _StateIn, name: str, B: int, lay: str
              ) -> tuple[Optional[npt.NDArray[Any]], Optional[npt.NDArray[Any]]]:
        """(h, c) states: h is R wide, c is H wide."""
        if v is None:
            return None, None
        if not isinstance(v, (tuple, list)) or len(v) != 2:
            raise TypeError("%s: expected None or a pair (h, c), got %s"
                            % (name, type(v).__name__))
        return (self._state(v[0], name + "[0]", B, self._R, lay),
                self._state(v[1], name + "[1]", B, self.hidden_size, lay))

    def _dropout_seed(self, dropout_seed: Optional[int], train: bool) -> int:
        if dropout_seed is None:
            if not (train and self.dropout > 0):
                return 0
            return int(self._dropout_rng.integers(0, 2**64, dtype=np.uint64))
        v = as_int(dropout_seed, "dropout_seed", "an int or None")
        if not 0 <= v < 2**64:
            raise ValueError("dropout_seed: expected 0 <= dropout_seed < 2**64, got %d" % v)
        return v

    # --------------------------------------------------------------- compute
    @overload
    def forward(self, x: npt.ArrayLike, state: LSTMState, *,
                lengths: Optional[npt.ArrayLike] = None, train: Optional[bool] = None,
                dropout_seed: Optional[int] = None) -> tuple[FloatArray, LSTMState]: ...
    @overload
    def forward(self, x: npt.ArrayLike, state: _StateIn = None, *,
                lengths: Optional[npt.ArrayLike] = None, train: Optional[bool] = None,
                dropout_seed: Optional[int] = None) -> tuple[FloatArray, State]: ...
    def forward(self, x: npt.ArrayLike, state: _StateIn | LSTMState = None, *,
                lengths: Optional[npt.ArrayLike] = None, train: Optional[bool] = None,
                dropout_seed: Optional[int] = None) -> tuple[FloatArray, State | LSTMState]:
        """Run the LSTM over x; returns y, (h, c).

        x: (T, B, D), (B, T, D) with batch_first, or (T, D) unbatched. Floating
        arrays of another precision are converted; any strides are accepted.
        state: None (zeros) or (h0, c0), ``(N*L, B, R)`` and ``(N*L, B, H)``
        (``(N*L, R)`` and ``(N*L, H)`` unbatched), either None; or an LSTMState (see
        initial_state), which is advanced in place and returned instead of
        (h, c). lengths: None or (B,) integers, 0 <= length <= T, any order,
        for right-padded batches: inputs past a length are ignored, outputs
        there are 0, final states are taken at each sequence's last valid step
        (the initial state for length 0), and the reverse direction starts
        there. train=True keeps what backward() needs (memory grows with T);
        train=False needs memory independent of T (unidirectional models);
        None (the default) follows the model's mode (``training``, set by
        train() and eval()): True for a float model until eval(), always
        False for a quantized one, which runs inference only.
        dropout_seed: the masks of this training forward (None: the next seed
        of a stream seeded by the model's seed)."""
        if train is None:
            train = self.training
        elif train:
            self._refuse_quantized("forward(train=True)")
        x3: Optional[npt.NDArray[Any]]
        ids: Optional[npt.NDArray[Any]]
        if self.encoding is None:
            x3, lay = self._input(x)
            ids, (T, B) = None, x3.shape[:2]
        else:
            ids, lay = self._tokens(x, "ids")
            x3, (T, B) = None, ids.shape
        stream = isinstance(state, LSTMState)
        NL = self.num_directions * self.num_layers
        h0: Optional[npt.NDArray[Any]]
        c0: Optional[npt.NDArray[Any]]
        if isinstance(state, LSTMState):  # (stream, as mypy narrows it)
            state._check(self, B)
            h0, c0 = hT, cT = state.h, state.c
        else:
            h0, c0 = self._pair(state, "state", B, lay)
            hT = np.empty((NL, B, self._R), self.dtype)
            cT = np.empty((NL, B, self.hidden_size), self.dtype)
        lens = checks.lengths(lengths, T, B)
        if ids is not None:
            ids = checks.token_ids(ids, lens, self.vocab_size, "ids")
        dseed = self._dropout_seed(dropout_seed, train)
        out = checks.empty((T, B, self._width), self.dtype, "%s, the output for %s of T=%d "
                           "steps and B=%d rows (width %d)" % (
                               self._OUT, "x" if ids is None else "ids", T, B, self._width))
        if isinstance(state, LSTMState) and not train:
            ws = state._ws
        else:
            ws = self._workspace(self._m.workspace_size(T, B, bool(train)))
        with _Guard(self, state if isinstance(state, LSTMState) else None):

            self._m.forward(T, B, out.reshape(-1), _flat(x3), _flat(ids), _flat(h0), _flat(c0),
                            hT.reshape(-1), cT.reshape(-1), bool(train), ws, lens, dseed)
        if train:
            with self._lock:
                self._pending = (ws, (T, B), lay, threading.current_thread())
        elif not stream:
            self._release_workspace(ws)
        out = layout.from_time_first(out, lay)
        if isinstance(state, LSTMState):
            return out, state
        return out, (layout.state_out(hT, lay), layout.state_out(cT, lay))

    __call__ = forward

    def initial_state(self, batch_size: int) -> LSTMState:
        """A zero LSTMState for batch_size independent streams (unidirectional
        forward models only: a reverse direction needs the end of a sequence)."""
        if self.bidirectional or self.reverse:
            raise ValueError("initial_state: a %s LSTM cannot stream; run whole sequences "
                             "with forward()" % ("bidirectional" if self.bidirectional
                                                 else "reverse"))
        batch_size = positive_int(batch_size, "batch_size")
        try:
            return LSTMState(self, batch_size)
        except (MemoryError, ValueError) as e:  # NumPy's or the C's message names no argument
            raise MemoryError("batch_size: cannot allocate the state of %d streams (%s)"
                              % (batch_size, e)) from None

    def step(self, x_t: npt.ArrayLike, state: LSTMState) -> tuple[FloatArray, LSTMState]:
        """One time step for every stream: x_t (B, D) -> y_t (B, R) (token
        models: ids (B,) -> out (B, O)).

        state is an LSTMState from initial_state(B); it is advanced in place
        and returned: ``y_t, state = lstm.step(x_t, state)``. Inference only."""
        if not isinstance(state, LSTMState):
            raise TypeError("state: expected an LSTMState from initial_state(), got %s"
                            % type(state).__name__)
        if self.encoding is None:
            x = checks.floats(x_t, "x_t")
            if x.ndim != 2 or x.shape[1] != self.input_size:
                raise ValueError("x_t: expected shape (B, %d), got %s"
                                 % (self.input_size, x.shape))
            B = x.shape[0]
            state._check(self, B)
            x, ids = np.ascontiguousarray(x, dtype=self.dtype).reshape(-1), None
        else:
            a = checks.to_numpy(x_t)
            if a.ndim != 1:
                raise ValueError("ids_t: expected shape (B,), got %s" % (a.shape,))
            a = checks.integers(a, "ids_t", "an integer array of token ids")
            B = a.shape[0]
            state._check(self, B)
            x, ids = None, np.ascontiguousarray(
                checks.token_ids(a[None], None, self.vocab_size, "ids_t")).reshape(-1)
        y = np.empty((B, self._width), self.dtype)
        with _Guard(self, state):  # forward's T = 1 case, with less on the way
            self._m.step(B, state.h.reshape(-1), state.c.reshape(-1), x, y.reshape(-1),
                         state._ws, ids)
        return y, state

    def backward(self, dy: Optional[npt.ArrayLike], dstate: _StateIn = None
                 ) -> tuple[Optional[FloatArray], State]:
        """Backpropagate through the last forward(train=True).

        dy: gradient w.r.t. y, y's shape (or None for zeros); dstate: None or
        (dh, dc) w.r.t. the final states (either may be None). Returns
        dx, (dh0, dc0) in the forward's layout (dx None for a token model:
        ids have no gradient) and ADDS the parameter gradients into flat_grads
        (see zero_grad). Each training forward allows one backward."""
        self._refuse_quantized("backward")
        if self.clip is not None:
            raise NotImplementedError("backward: not available for a model with clip (the "
                                      "gradient of a clipped gate is not implemented)")
        name = "d" + self._OUT
        with self._lock:
            if self._pending is None:
                raise ValueError("backward() needs a preceding forward(..., train=True) "
                                 "not yet used by a backward()")
            ws, (T, B), lay, owner = self._pending
            if owner is not threading.current_thread():
                raise RuntimeError("backward(): the pending training forward was run by "
                                   "another thread; training one model from several threads "
                                   "at once is not supported (give each thread its own model)")
            d3 = None
            if dy is not None:
                d = checks.floats(dy, name)
                want = layout.shape(lay, T, B, (self._width,))
                if d.shape != want:
                    raise ValueError("%s: expected shape %s (the shape of %s), got %s"
                                     % (name, want, self._OUT, d.shape))
                d3 = np.ascontiguousarray(layout.to_time_first(d, lay), dtype=self.dtype)
            dhT, dcT = self._pair(dstate, "dstate", B, lay)
            NL = self.num_directions * self.num_layers
            dx = np.empty((T, B, self.input_size), self.dtype) if self.encoding is None else None
            dh0 = np.empty((NL, B, self._R), self.dtype)
            dc0 = np.empty((NL, B, self.hidden_size), self.dtype)
            # the lock is held through the call: a parameter write waits for it
            if self._writer is not None:
                raise RuntimeError("backward(): %s is writing the parameters in another "
                                   "thread; wait for it before computing" % self._writer)
            self._m.backward(T, B, dh0.reshape(-1), dc0.reshape(-1), _flat(dx), _flat(d3),
                             _flat(dhT), _flat(dcT), ws)
            self._pending = None
        self._release_workspace(ws)
        return (None if dx is None else layout.from_time_first(dx, lay),
                (layout.state_out(dh0, lay), layout.state_out(dc0, lay)))

    # ---- what the trainer and the CLI need, as public API
    @property
    def config(self) -> dict[str, Any]:
        """The C model's settings as a new dict (a copy: editing it changes
        nothing): input_size, hidden_size, num_layers, float64, proj_size,
        bidirectional, dropout, peepholes, input_forget, clip, encoding (0
        none, 1 one-hot, 2 embedding), vocab_size, output_size, softmax, vocab,
        reverse, gate_activation (0 sigmoid, 1 hard sigmoid), gate_alpha,
        gate_beta (and an encoder-decoder's decoder settings)."""
        return self._m.config()

    def next_dropout_seed(self) -> int:
        """The dropout seed the next training forward would draw, drawn now
        from the model's stream (0, drawing nothing, without dropout); pass
        it as forward(..., dropout_seed=) to use it."""
        return self._dropout_seed(None, True)

    @property
    def dropout_rng_state(self) -> Mapping[str, Any]:
        """The state of the model's stream of dropout seeds (a JSON-able
        dict); set it to continue a stream, e.g. from a checkpoint."""
        return self._dropout_rng.bit_generator.state

    @dropout_rng_state.setter
    def dropout_rng_state(self, state: Mapping[str, Any]) -> None:
        try:
            self._dropout_rng.bit_generator.state = state
        except (TypeError, ValueError, KeyError) as e:
            raise ValueError("dropout_rng_state: expected a state read from "
                             "dropout_rng_state (%s: %s)" % (type(e).__name__, e)) from None


class _Guard:
    """The guards of one forward or step: the parameters are read by any
    number of calls at once, but never while a write (load_state_dict, an
    optimizer step) is under way in another thread, and an LSTMState is
    advanced by one caller at a time; RuntimeError before anything is
    computed otherwise. (A training forward may replace another thread's
    pending one: that thread's backward then raises.) A class rather than
    a contextlib generator, which cost 3 us of a 25 us streaming step."""
    __slots__ = ("lstm", "state")

    def __init__(self, lstm: LSTM, state: Optional[LSTMState]) -> None:
        self.lstm, self.state = lstm, state

    def __enter__(self) -> None:
        lstm, state = self.lstm, self.state
        if state is not None and not state._busy.acquire(blocking=False):
            raise RuntimeError("state: this LSTMState is being advanced by another thread; a "
                               "state belongs to one thread at a time (give each thread its "
                               "own initial_state())")
        with lstm._lock:
            if lstm._writer is not None:
                if state is not None:
                    state._busy.release()
                raise RuntimeError("model: %s is writing the parameters in another thread; "
                                   "wait for it before computing" % lstm._writer)
            lstm._readers += 1

    def __exit__(self, *exc: object) -> None:
        with self.lstm._lock:
            self.lstm._readers -= 1
        if self.state is not None:
            self.state._busy.release()


def _check_vocab(vocab: object) -> str:

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
        As clstm.LSTM; every other LSTM option (bidirectional, reverse, proj_size,
        dropout, peepholes, input_forget, clip, gate_activation, gate_alpha,
        gate_beta, dtype, seed, batch_first,
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

    Notes
    -----
    Tensors, after the LSTM's (torch names): embedding.weight (V, D),
    head.weight ``(O, N*R)``, head.bias (O). Initialisation follows torch:
    N(0, 1) for the embedding, ``U(+-1/sqrt(N*R))`` for the head.

    Model computes with LSTM's forward, step and backward (one pipeline);
    it restates them only for their parameter names (inputs, inputs_t, dout).
    """
    _OUT = "out"

    def __init__(self, input_size=None, hidden_size=None, num_layers=1, *, encoding="auto",
                 vocab=None, vocab_size=None, output_size=0, softmax=False, **lstm_kwargs):
        if hidden_size is None:
            raise TypeError("hidden_size: required (an int >= 1)")
        if vocab is not None:
            vocab = _check_vocab(vocab)
            if vocab_size is not None and as_int(vocab_size, "vocab_size") != len(vocab):
                raise ValueError("vocab_size: %d differs from len(vocab) = %d"
                                 % (vocab_size, len(vocab)))
            vocab_size = len(vocab)
        if encoding == "auto":
            encoding = "onehot" if vocab_size is not None else None
        if encoding not in ENCODINGS:
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
            vocab_size = positive_int(vocab_size, "vocab_size")
            if encoding == "onehot":
                if input_size is not None and as_int(input_size, "input_size") != vocab_size:
                    raise ValueError("input_size: with encoding='onehot' it is vocab_size "
                                     "(%d), got %d" % (vocab_size, input_size))
                input_size = vocab_size
            elif input_size is None:
                raise TypeError("input_size: required for encoding='embedding' (the "
                                "embedding width)")
        output_size = as_int(output_size, "output_size")
        if output_size < 0:
            raise ValueError("output_size: expected 0 (no head) or a positive int, got %d"
                             % output_size)
        softmax = checks.flag(softmax, "softmax")
        if softmax and output_size == 0:
            raise ValueError("softmax: needs a head (output_size > 0)")
        self.encoding, self.vocab_size = encoding, vocab_size
        self.output_size, self.softmax = output_size, softmax
        super().__init__(input_size, hidden_size, num_layers, **lstm_kwargs)
        if vocab is not None:
            self._m.set_vocab(vocab)

    @property
    def vocab(self) -> Optional[str]:
        """The character vocabulary (str), or None."""
        return self._m.vocab()

    # ------------------------------------------------------------- tokens
    def encode(self, text: str) -> npt.NDArray[np.int32]:
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

    def decode(self, ids: npt.ArrayLike) -> str:
        """The text of a sequence of token ids."""
        vocab = self.vocab
        if vocab is None:
            raise ValueError("decode: this model has no character vocabulary")
        ids = np.asarray(ids).reshape(-1)
        if ids.size and (ids.min() < 0 or ids.max() >= len(vocab)):
            raise ValueError("ids: expected values in [0, %d)" % len(vocab))
        return "".join(vocab[i] for i in ids.tolist())

    # ------------------------------------------------------------ compute
    @overload
    def forward(self, inputs: npt.ArrayLike, state: LSTMState, *,
                lengths: Optional[npt.ArrayLike] = None, train: Optional[bool] = None,
                dropout_seed: Optional[int] = None) -> tuple[FloatArray, LSTMState]: ...
    @overload
    def forward(self, inputs: npt.ArrayLike, state: _StateIn = None, *,
                lengths: Optional[npt.ArrayLike] = None, train: Optional[bool] = None,
                dropout_seed: Optional[int] = None) -> tuple[FloatArray, State]: ...
    def forward(self, inputs: npt.ArrayLike, state: _StateIn | LSTMState = None, *,
                lengths: Optional[npt.ArrayLike] = None, train: Optional[bool] = None,
                dropout_seed: Optional[int] = None) -> tuple[FloatArray, State | LSTMState]:
        """Run the whole model; returns out, (h, c) (or out, state for an
        LSTMState, advanced in place).

        inputs: token ids (T, B) ((B, T) with batch_first, (T,) unbatched)
        for a token model, else reals (T, B, D) as LSTM.forward. out is
        (T, B, O) (logits when softmax), or y (T, B, N*R) without a head, in
        the input's layout; 0 past each length. state, lengths, train and
        dropout_seed are as in LSTM.forward."""
        return LSTM.forward(self, inputs, state, lengths=lengths, train=train,
                            dropout_seed=dropout_seed)

    # (its argument named inputs, as forward's, where LSTM's is x)
    __call__ = forward  # type: ignore[assignment]

    def step(self, inputs_t: npt.ArrayLike, state: LSTMState) -> tuple[FloatArray, LSTMState]:
        """One step for every stream: ids (B,) or x (B, D) -> out (B, O);
        state (an LSTMState) is advanced in place: ``out, state =
        model.step(ids_t, state)``. Inference only."""
        return LSTM.step(self, inputs_t, state)

    def backward(self, dout: Optional[npt.ArrayLike], dstate: _StateIn = None
                 ) -> tuple[Optional[FloatArray], State]:
        """Backpropagate through the last forward(train=True).

        dout: gradient w.r.t. out (out's shape) or None; dstate: None or
        (dh, dc). Returns dx (None for a token model: ids have no gradient),
        (dh0, dc0), and ADDS every parameter gradient (head, LSTM,
        embedding) into flat_grads."""
        return LSTM.backward(self, dout, dstate)
