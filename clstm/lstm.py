"""clstm.LSTM: the user-facing class over the C core.

All argument checking and layout handling (batch_first, unbatched input) is
here; the math is in C (src/), reached through clstm._core.
"""
import contextlib
import operator
import secrets
import threading
import warnings
from collections.abc import MutableMapping

import numpy as np

from clstm import _core

__all__ = ["LSTM", "LSTMState", "Metadata", "set_num_threads", "get_num_threads",
           "set_min_thread_work", "get_min_thread_work", "has_blas"]

# the config's keys in a model file's __metadata__ (include/clstm.h)
_RESERVED_METADATA = frozenset((
    "format", "format_version", "input_size", "hidden_size", "num_layers", "proj_size",
    "bidirectional", "dropout", "peepholes", "input_forget", "clip", "dtype", "encoding",
    "vocab_size", "output_size", "softmax", "vocab"))
_MAX_METADATA, _MAX_KEY_BYTES, _MAX_VALUE_BYTES = 48, 256, 65536

_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_MAX_THREADS = 1024


def set_num_threads(n):
    """Set the number of threads clstm uses (process-wide, 1..1024).

    clstm runs its own OpenMP team and keeps BLAS single-threaded inside it,
    so this one number controls all of its compute."""
    n = _positive_int(n, "n")
    if n > _MAX_THREADS:
        raise ValueError("n: expected at most %d threads, got %d" % (_MAX_THREADS, n))
    _core.set_num_threads(n)


def get_num_threads():
    """The number of threads clstm uses."""
    return _core.get_num_threads()


def set_min_thread_work(macs):
    """Tuning: the recurrent multiply-adds per time step (4*B*H*H) each
    thread must get, or fewer threads are used (default 65536; 0: use every
    thread whenever hidden_size allows). Process-wide. Small steps on many
    threads lose more to the per-step barrier than they gain, and suffer
    most when another process competes for the cores."""
    macs = _as_int(macs, "macs")
    if not 0 <= macs < 2**63:
        raise ValueError("macs: expected an int in [0, 2**63), got %d" % macs)
    _core.set_min_thread_work(macs)


def get_min_thread_work():
    """See set_min_thread_work."""
    return _core.get_min_thread_work()


def has_blas():
    """True when the C core was built with BLAS (it always is for the wheel)."""
    return _core.has_blas()


def _as_int(v, name, what="an int"):
    """v as a Python int (numpy integers too, never bools), else TypeError."""
    if isinstance(v, (bool, np.bool_)):
        raise TypeError("%s: expected %s, got bool" % (name, what))
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError("%s: expected %s, got %s" % (name, what, type(v).__name__)) from None


def _positive_int(v, name):
    v = _as_int(v, name)
    if not 1 <= v < 2**63:
        raise ValueError("%s: expected an int in [1, 2**63), got %d" % (name, v))
    return v


def _probability(v, name):
    """A float in [0, 1)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer,
                                                             np.floating)):
        raise TypeError("%s: expected a float in [0, 1), got %s" % (name, type(v).__name__))
    v = float(v)
    if not 0.0 <= v < 1.0:
        raise ValueError("%s: expected a float in [0, 1), got %r" % (name, v))
    return v


def _config_from_state_dict(sd):
    """LSTM sizes read off torch.nn.LSTM state_dict shapes."""
    if "weight_ih_l0" not in sd or "weight_hh_l0" not in sd:
        raise KeyError("state_dict: expected torch.nn.LSTM keys weight_ih_l0 and weight_hh_l0, "
                       "got %s" % sorted(sd)[:8])
    w_ih = _to_numpy(sd["weight_ih_l0"])
    if w_ih.ndim != 2 or w_ih.shape[0] % 4:
        raise ValueError("state_dict['weight_ih_l0']: expected shape (4H, D), got %s"
                         % (w_ih.shape,))
    layers = 1
    while "weight_ih_l%d" % layers in sd:
        layers += 1
    proj = _to_numpy(sd["weight_hr_l0"]).shape[0] if "weight_hr_l0" in sd else 0
    return dict(input_size=w_ih.shape[1], hidden_size=w_ih.shape[0] // 4, num_layers=layers,
                bidirectional="weight_ih_l0_reverse" in sd, proj_size=proj)


def _empty(shape, dtype, what):
    """np.empty, with a MemoryError that names the array and its size."""
    try:
        return np.empty(shape, dtype)
    except (MemoryError, ValueError):
        nbytes = float(np.prod([float(n) for n in shape])) * np.dtype(dtype).itemsize
        raise MemoryError("%s: cannot allocate an array of shape %s (%s, %.3g GiB)"
                          % (what, tuple(shape), np.dtype(dtype), nbytes / 2**30)) from None


def _to_numpy(v):
    """A NumPy array from an array-like or a torch tensor (without importing torch)."""
    if hasattr(v, "detach") and hasattr(v, "cpu"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


class LSTM:
    """A multi-layer LSTM with torch.nn.LSTM's equations and parameter layout.

    Parameters
    ----------
    input_size, hidden_size, num_layers : int >= 1
        D, H and L.
    bidirectional : bool
        Run a reverse direction too; outputs are [forward, reverse] along the
        last axis, states are indexed layer * 2 + direction.
    proj_size : int
        P: 0 (none) or 1 <= P < H. h = W_hr (o * tanh(c)), so h and y have P
        features while c keeps H (torch.nn.LSTM's proj_size).
    dropout : float in [0, 1)
        Dropout on the inputs of layers 1..L-1 in training forwards, as
        torch.nn.LSTM (no effect, and a warning, when num_layers == 1).
    peepholes, input_forget, clip :
        ONNX's LSTM options, off by default (torch.nn.LSTM has none of them).
        peepholes: i and f also see p_i*c_{t-1}, p_f*c_{t-1}, o sees p_o*c_t
        (tensor ``peephole_l{k}``, (3H,) ordered i, f, o). input_forget: f =
        1 - i. clip: every gate pre-activation is clipped to [-clip, clip]
        (inference only: backward() raises NotImplementedError).
    dtype : numpy.float32 (default) or numpy.float64
    seed : int in [0, 2**64) or None
        Seeds the initialisation U(-1/sqrt(H), 1/sqrt(H)); None draws a fresh
        seed from the OS (kept in ``self.seed``).
    batch_first : bool
        Input and output are (B, T, .) instead of (T, B, .). States stay
        (L, B, H), as in PyTorch.
    backend : "default", "blas" or "naive"
        "naive" runs plain C loops (slow; the tests' oracle).

    Shapes, with N = 2 if bidirectional else 1 and R = P or H: x (T, B, D)
    -> y (T, B, N*R), h (N*L, B, R), c (N*L, B, H). An unbatched x of shape
    (T, D) gives y (T, N*R) and states (N*L, R), (N*L, H).

    Threads: forward may run from many Python threads on one model at once
    (the GIL is released). RuntimeError, instead of a corrupted result, for
    load_state_dict or an optimizer step while another thread computes with
    the model, a step on an LSTMState another thread is advancing, and a
    backward() whose training forward another thread replaced. Writes made
    directly through flat_parameters views are not guarded.
    """

    def __init__(self, input_size, hidden_size, num_layers=1, *, bidirectional=False,
                 proj_size=0, dropout=0.0, dtype=np.float32, seed=None, batch_first=False,
                 backend="default", peepholes=False, input_forget=False, clip=None):
        self.input_size = _positive_int(input_size, "input_size")
        self.hidden_size = _positive_int(hidden_size, "hidden_size")
        self.num_layers = _positive_int(num_layers, "num_layers")
        if not isinstance(bidirectional, (bool, np.bool_)):
            raise TypeError("bidirectional: expected a bool, got %s"
                            % type(bidirectional).__name__)
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if self.bidirectional else 1
        if isinstance(proj_size, (bool, np.bool_)) or not isinstance(proj_size,
                                                                     (int, np.integer)):
            raise TypeError("proj_size: expected an int, got %s" % type(proj_size).__name__)
        if proj_size != 0:
            proj_size = _positive_int(proj_size, "proj_size")
            if proj_size >= self.hidden_size:
                raise ValueError("proj_size: expected 0 or 1 <= proj_size < hidden_size (%d), "
                                 "got %d" % (self.hidden_size, proj_size))
        self.proj_size = int(proj_size)
        self.dropout = _probability(dropout, "dropout")
        for name, flag in (("peepholes", peepholes), ("input_forget", input_forget)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError("%s: expected a bool, got %s" % (name, type(flag).__name__))
        self.peepholes, self.input_forget = bool(peepholes), bool(input_forget)
        if clip is not None:
            if isinstance(clip, (bool, np.bool_)) or not isinstance(
                    clip, (int, float, np.integer, np.floating)):
                raise TypeError("clip: expected None or a positive float, got %s"
                                % type(clip).__name__)
            if not float(clip) > 0:
                raise ValueError("clip: expected None or a positive float, got %r" % (clip,))
        self.clip = None if clip is None else float(clip)
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn("dropout=%g has no effect with num_layers=1: dropout applies "
                          "between layers" % self.dropout, UserWarning, stacklevel=2)
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise TypeError("dtype: expected numpy.float32 or numpy.float64, got %r"
                            % (dtype,)) from None
        if dt not in _DTYPES:
            raise TypeError("dtype: expected numpy.float32 or numpy.float64, got %s" % dt)
        if backend not in ("default", "blas", "naive"):
            raise ValueError("backend: expected 'default', 'blas' or 'naive', got %r"
                             % (backend,))
        if backend == "blas" and not _core.has_blas():
            raise ValueError("backend: 'blas' requested but this build has no BLAS")
        if seed is None:
            seed = secrets.randbits(64)
        else:
            seed = _as_int(seed, "seed", "an int or None")
            if not 0 <= seed < 2**64:
                raise ValueError("seed: expected 0 <= seed < 2**64, got %d" % seed)
        self.dtype = dt
        self.seed = seed
        self.batch_first = bool(batch_first)
        self.backend = backend
        core_kwargs = self._core_kwargs()
        settings = dict(input_size=self.input_size, hidden_size=self.hidden_size,
                        num_layers=self.num_layers, dtype=_core.DTYPES[dt.name],
                        proj_size=self.proj_size, bidirectional=self.bidirectional,
                        dropout=self.dropout, peepholes=self.peepholes,
                        input_forget=self.input_forget, clip=self.clip or 0.0, **core_kwargs)
        try:
            core = _core.Model(settings, seed, backend)
        except (ValueError, MemoryError) as e:
            # the C status names no argument: name the sizes (e.g. hidden_size=2**40)
            sizes = dict(input_size=self.input_size, hidden_size=self.hidden_size,
                         num_layers=self.num_layers, proj_size=self.proj_size,
                         vocab_size=core_kwargs.get("vocab_size", 0),
                         output_size=core_kwargs.get("output_size", 0))
            raise type(e)("%s (%s)" % (e, ", ".join("%s=%d" % kv for kv in sizes.items()
                                                     if kv[1]))) from None
        self._attach(core)

    def _core_kwargs(self):
        """Extra settings of the C model (the whole model's, in clstm.Model)."""
        return {}

    def _attach(self, core):
        """Take `core` (a _core.Model) as this LSTM's C model."""
        self._m = core
        # dropout masks: one 64-bit seed per training forward, from this stream
        self._dropout_rng = np.random.default_rng([self.seed, 0xD0])
        self._params = np.asarray(self._m.params_block())
        self._grads = np.asarray(self._m.grads_block())
        self._tensors = self._m.tensors()
        self._lock = threading.Lock()
        self._pending = None  # (ws, (T, B), layout, thread id) of the last training forward
        self._readers = 0  # calls computing with the parameters now (any thread)
        self._writer = None  # what is writing the parameters now, or None
        self._spare_ws = None  # the workspace the last call released, for reuse

    def _workspace(self, nbytes):
        """A workspace of at least nbytes: the one the last inference or
        backward released, if big enough, else a new one. (A new one per call
        made the kernel zero the pages of every training step's ~100 MB at
        T=100 B=64 H=512: 7% of the step.) Each call takes it alone, so
        threads sharing the model never share a workspace."""
        with self._lock:
            ws, self._spare_ws = self._spare_ws, None
        if ws is None or ws.nbytes < nbytes:
            ws = _empty(nbytes, np.uint8, "the call's workspace (a training forward keeps "
                        "every step's activations: fewer steps T or rows B need less)")
        return ws

    def _release_workspace(self, ws):
        """Keep ws for the next call (the larger, if one is kept already)."""
        with self._lock:
            if self._spare_ws is None or self._spare_ws.nbytes < ws.nbytes:
                self._spare_ws = ws

    def _computing(self, stream_state):
        """The guards of one forward: the parameters are read by any number
        of calls at once, but never while a write (load_state_dict, an
        optimizer step) is under way in another thread, and an LSTMState is
        advanced by one caller at a time; RuntimeError before anything is
        computed otherwise. (A training forward may replace another thread's
        pending one: that thread's backward then raises.)"""
        return _Guard(self, stream_state)

    @contextlib.contextmanager
    def _writing(self, what):
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

    @classmethod
    def _from_core(cls, core, *, batch_first=False):
        """An LSTM around an existing _core.Model (e.g. from _core.load), its
        settings read from the C config; the backend is the default one and
        ``seed`` (used for dropout masks only) a fresh one."""
        c = core.config()
        self = cls.__new__(cls)
        self.input_size, self.hidden_size = int(c["input_size"]), int(c["hidden_size"])
        self.num_layers, self.proj_size = int(c["num_layers"]), int(c["proj_size"])
        self.bidirectional = c["bidirectional"]
        self.num_directions = 2 if self.bidirectional else 1
        self.dropout = c["dropout"]
        self.peepholes, self.input_forget = c["peepholes"], c["input_forget"]
        self.clip = c["clip"] if c["clip"] > 0 else None
        self.dtype = np.dtype(np.float64 if c["float64"] else np.float32)
        self.seed = secrets.randbits(64)
        self.batch_first = bool(batch_first)
        self.backend = "default"
        self._attach(core)
        return self

    def __repr__(self):
        extras = "".join(", %s=%r" % (k, getattr(self, k))
                         for k in ("peepholes", "input_forget", "clip") if getattr(self, k))
        return ("LSTM(input_size=%d, hidden_size=%d, num_layers=%d, bidirectional=%s, "
                "proj_size=%d, dropout=%g, dtype=%s, batch_first=%s%s)"
                % (self.input_size, self.hidden_size, self.num_layers, self.bidirectional,
                   self.proj_size, self.dropout, self.dtype.name, self.batch_first, extras))

    @property
    def metadata(self):
        """User metadata (str -> str), saved with the model; see Metadata."""
        return Metadata(self._m)

    @property
    def _R(self):
        """The width of h: proj_size, or hidden_size without projection."""
        return self.proj_size or self.hidden_size

    # ------------------------------------------------------------ parameters
    @property
    def flat_parameters(self):
        """1-D writable view of the whole parameter block (torch's order)."""
        return self._params

    @property
    def flat_grads(self):
        """1-D writable view of the whole gradient block."""
        return self._grads

    def _views(self, block):
        return {name: block[off:off + int(np.prod(shape))].reshape(shape)
                for name, off, shape in self._tensors}

    def named_parameters(self):
        """{name: writable view} with torch.nn.LSTM's names and shapes."""
        return self._views(self._params)

    def named_grads(self):
        """{name: writable view} of the gradients, same names as the parameters."""
        return self._views(self._grads)

    def state_dict(self):
        """{name: copy} of every parameter, loadable by torch.nn.LSTM."""
        return {k: v.copy() for k, v in self.named_parameters().items()}

    def load_state_dict(self, state_dict, strict=True):
        """Copy parameters in from a dict of arrays or torch tensors.

        Every value is checked before anything is written: on error the model
        is unchanged. strict=True requires exactly this model's names."""
        if not hasattr(state_dict, "items"):
            raise TypeError("state_dict: expected a mapping of name -> array, got %s"
                            % type(state_dict).__name__)
        views = self.named_parameters()
        missing = sorted(set(views) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(views))
        if strict and (missing or unexpected):
            raise KeyError("state_dict: missing keys %s, unexpected keys %s"
                           % (missing, unexpected))
        staged = {}
        for name, view in views.items():
            if name not in state_dict:
                continue
            arr = _to_numpy(state_dict[name])
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

    # ------------------------------------------------------------ interchange
    @classmethod
    def from_torch(cls, module_or_state_dict, *, dtype=None, batch_first=None, **kwargs):
        """A model with the weights of a torch.nn.LSTM (a module, or its
        state_dict). From a module, every setting is copied (sizes,
        bidirectional, proj_size, dropout, batch_first; bias=False gives zero
        biases); from a state_dict, the sizes are read off the tensor shapes.
        dtype defaults to float64 for float64 weights, else float32."""
        src = module_or_state_dict
        if hasattr(src, "state_dict") and hasattr(src, "hidden_size"):
            sd = dict(src.state_dict())
            cfg = dict(input_size=src.input_size, hidden_size=src.hidden_size,
                       num_layers=src.num_layers, bidirectional=bool(src.bidirectional),
                       proj_size=int(getattr(src, "proj_size", 0)), dropout=float(src.dropout))
            if batch_first is None:
                batch_first = bool(src.batch_first)
        elif hasattr(src, "items"):
            sd = dict(src)
            cfg = _config_from_state_dict(sd)
        else:
            raise TypeError("module_or_state_dict: expected a torch.nn.LSTM or a mapping of "
                            "name -> tensor, got %s" % type(src).__name__)
        arrays = {k: _to_numpy(v) for k, v in sd.items()}
        if dtype is None:
            w = arrays.get("weight_ih_l0")
            dtype = np.float64 if w is not None and w.dtype == np.float64 else np.float32
        cfg.update(kwargs)
        if cfg.get("dropout", 0) and cfg.get("num_layers", 1) == 1:
            cfg["dropout"] = 0.0  # torch keeps it, with its warning; it has no effect
        lstm = cls(dtype=dtype, batch_first=bool(batch_first), **cfg)
        for name, view in lstm.named_parameters().items():  # bias=False: zero biases
            if name.startswith("bias_") and name not in arrays:
                arrays[name] = np.zeros(view.shape)
        lstm.load_state_dict(arrays)
        return lstm

    def to_torch_state_dict(self):
        """{name: torch.Tensor} copies, for torch.nn.LSTM(...).load_state_dict."""
        try:
            import torch
        except ImportError:
            raise ImportError("to_torch_state_dict needs PyTorch: pip install torch "
                              "(for the CPU: torch==2.13.0)") from None
        return {k: torch.from_numpy(v) for k, v in self.state_dict().items()}

    @classmethod
    def from_keras(cls, kernel, recurrent_kernel, bias=None, *, activation="tanh",
                   recurrent_activation="sigmoid", dtype=None, **kwargs):
        """A one-layer model from the arrays of a Keras LSTM layer's
        get_weights(): kernel (D, 4H), recurrent_kernel (H, 4H), bias (4H) or
        None (use_bias=False). Keras orders gates i, f, c, o, which is
        torch's i, f, g, o; its matrices are the transposes of torch's, and its
        one bias becomes bias_ih (bias_hh = 0). Only activation="tanh" and
        recurrent_activation="sigmoid" (Keras's defaults) are the LSTM clstm
        computes: anything else (e.g. old Keras's "hard_sigmoid") is refused."""
        if recurrent_activation != "sigmoid":
            raise ValueError("recurrent_activation: clstm computes sigmoid gates; a Keras LSTM "
                             "with recurrent_activation=%r gives different results and cannot "
                             "be imported" % (recurrent_activation,))
        if activation != "tanh":
            raise ValueError("activation: clstm computes tanh; a Keras LSTM with "
                             "activation=%r cannot be imported" % (activation,))
        k = _to_numpy(kernel)
        rk = _to_numpy(recurrent_kernel)
        if k.ndim != 2 or k.shape[1] % 4 or k.shape[1] == 0:
            raise ValueError("kernel: expected shape (D, 4H), got %s" % (k.shape,))
        D, H = k.shape[0], k.shape[1] // 4
        if rk.shape != (H, 4 * H):
            raise ValueError("recurrent_kernel: expected shape (%d, %d), got %s"
                             % (H, 4 * H, rk.shape))
        b = np.zeros(4 * H) if bias is None else _to_numpy(bias)
        if b.shape != (4 * H,):
            raise ValueError("bias: expected shape (%d,), got %s" % (4 * H, b.shape))
        if dtype is None:
            dtype = np.float64 if k.dtype == np.float64 else np.float32
        lstm = cls(D, H, dtype=dtype, **kwargs)
        lstm.load_state_dict({"weight_ih_l0": k.T, "weight_hh_l0": rk.T, "bias_ih_l0": b,
                              "bias_hh_l0": np.zeros(4 * H)})
        return lstm

    @classmethod
    def from_onnx(cls, model_or_path, **kwargs):
        """A model from the LSTM node(s) of an ONNX model (see clstm.onnx)."""
        from clstm.onnx import lstm_from_onnx
        return lstm_from_onnx(model_or_path, **kwargs)

    def to_onnx(self, path=None, **kwargs):
        """This model as an onnx.ModelProto, saved atomically to path if given
        (see clstm.onnx)."""
        from clstm.onnx import lstm_to_onnx
        return lstm_to_onnx(self, path, **kwargs)

    def zero_grad(self):
        """Set every gradient to zero."""
        with self._lock:
            self._m.zero_grad()

    # --------------------------------------------------------------- compute
    def _array(self, v, name):
        a = _to_numpy(v)
        if a.dtype.kind != "f":
            raise TypeError("%s: expected a floating-point array, got dtype %s"
                            % (name, a.dtype))
        return a

    def _input(self, x):
        """x as a C-contiguous (T, B, D) array of the model's dtype, and its layout."""
        x = self._array(x, "x")
        D = self.input_size
        if x.ndim == 2:
            layout, x3 = "unbatched", x[:, None, :]
        elif x.ndim == 3:
            layout = "batch_first" if self.batch_first else "time_first"
            x3 = x.transpose(1, 0, 2) if self.batch_first else x
        else:
            raise ValueError("x: expected shape %s or (T, D), got %s"
                             % ("(B, T, D)" if self.batch_first else "(T, B, D)", x.shape))
        T, B = x3.shape[0], x3.shape[1]
        if x3.shape[2] != D or T < 1 or B < 1:
            want = {"unbatched": "(T, %d)", "batch_first": "(B, T, %d)",
                    "time_first": "(T, B, %d)"}[layout] % D
            raise ValueError("x: expected shape %s with T, B >= 1, got %s" % (want, x.shape))
        try:
            return np.ascontiguousarray(x3, dtype=self.dtype), layout
        except MemoryError:  # e.g. a zero-stride view of petabytes
            raise MemoryError("x: cannot allocate a contiguous %s copy of shape %s"
                              % (self.dtype, x.shape)) from None

    def _state(self, v, name, B, width, layout):
        """An (N*L, B, width) state from (N*L, B, width), or (N*L, width) for
        unbatched input; None stays."""
        if v is None:
            return None
        a = self._array(v, name)
        NL = self.num_directions * self.num_layers
        want = (NL, width) if layout == "unbatched" else (NL, B, width)
        if a.shape != want:
            raise ValueError("%s: expected shape %s, got %s" % (name, want, a.shape))
        return np.ascontiguousarray(a.reshape(NL, B, width), dtype=self.dtype)

    def _pair(self, v, name, B, layout):
        """(h, c) states: h is R wide, c is H wide."""
        if v is None:
            return None, None
        if not isinstance(v, (tuple, list)) or len(v) != 2:
            raise TypeError("%s: expected None or a pair (h, c), got %s"
                            % (name, type(v).__name__))
        return (self._state(v[0], name + "[0]", B, self._R, layout),
                self._state(v[1], name + "[1]", B, self.hidden_size, layout))

    def _lengths(self, lengths, T, B):
        """lengths as a C-contiguous int64 (B,) array with 0 <= len <= T, or None."""
        if lengths is None:
            return None
        a = _to_numpy(lengths)
        if a.shape != (B,):
            raise ValueError("lengths: expected shape (%d,) (one per sequence), got %s"
                             % (B, a.shape))
        if a.dtype.kind not in "iu":
            raise TypeError("lengths: expected integers, got dtype %s" % a.dtype)
        if B and (a.min() < 0 or a.max() > T):
            raise ValueError("lengths: expected 0 <= length <= T (%d), got values in [%d, %d]"
                             % (T, a.min(), a.max()))
        return np.ascontiguousarray(a, dtype=np.int64)

    def _dropout_seed(self, dropout_seed, train):
        if dropout_seed is None:
            if not (train and self.dropout > 0):
                return 0
            return int(self._dropout_rng.integers(0, 2**64, dtype=np.uint64))
        v = _as_int(dropout_seed, "dropout_seed", "an int or None")
        if not 0 <= v < 2**64:
            raise ValueError("dropout_seed: expected 0 <= dropout_seed < 2**64, got %d" % v)
        return v

    @staticmethod
    def _out_seq(a, layout):
        """(T, B, .) -> the caller's layout."""
        if layout == "unbatched":
            return a[:, 0, :]
        if layout == "batch_first":
            return np.ascontiguousarray(a.transpose(1, 0, 2))
        return a

    @staticmethod
    def _out_state(a, layout):
        return a[:, 0, :] if layout == "unbatched" else a

    @staticmethod
    def _flat(a):
        return None if a is None else a.reshape(-1)

    def forward(self, x, state=None, *, lengths=None, train=True, dropout_seed=None):
        """Run the LSTM over x; returns y, (h, c).

        x: (T, B, D), (B, T, D) with batch_first, or (T, D) unbatched. Floating
        arrays of another precision are converted; any strides are accepted.
        state: None (zeros) or (h0, c0), (N*L, B, R) and (N*L, B, H) ((N*L, R)
        and (N*L, H) unbatched), either None; or an LSTMState (see
        initial_state), which is advanced in place and returned instead of
        (h, c). lengths: None or (B,) integers, 0 <= length <= T, any order,
        for right-padded batches: inputs past a length are ignored, outputs
        there are 0, final states are taken at each sequence's last valid step
        (the initial state for length 0), and the reverse direction starts
        there. train=True keeps what backward() needs (memory grows with T);
        train=False needs memory independent of T (unidirectional models).
        dropout_seed: the masks of this training forward (None: the next seed
        of a stream seeded by the model's seed)."""
        x3, layout = self._input(x)
        T, B, _ = x3.shape
        stream, h0, c0, hT, cT = self._states(state, B, layout)
        lens = self._lengths(lengths, T, B)
        dseed = self._dropout_seed(dropout_seed, train)
        y = _empty((T, B, self.num_directions * self._R), self.dtype,
                   "y, the output for x of T=%d steps and B=%d rows" % (T, B))
        if stream and not train:
            ws = state._ws
        else:
            ws = self._workspace(self._m.workspace_size(T, B, bool(train)))
        with self._computing(state if stream else None):
            self._m.forward(T, B, y.reshape(-1), x3.reshape(-1), None, self._flat(h0),
                            self._flat(c0), hT.reshape(-1), cT.reshape(-1), bool(train), ws,
                            lens, dseed)
        return self._finish_forward(y, state if stream else None, hT, cT, ws, train, layout)

    def _states(self, state, B, layout):
        """(stream, h0, c0, hT, cT) for a forward: an LSTMState advanced in
        place, or (h0, c0) (either may be None) and new final states."""
        if isinstance(state, LSTMState):
            state._check(self, B)
            return True, state.h, state.c, state.h, state.c
        NL = self.num_directions * self.num_layers
        h0, c0 = self._pair(state, "state", B, layout)
        return (False, h0, c0, np.empty((NL, B, self._R), self.dtype),
                np.empty((NL, B, self.hidden_size), self.dtype))

    def _finish_forward(self, out, stream_state, hT, cT, ws, train, layout):
        """Remember a training forward for backward; the caller's layout."""
        if train:
            with self._lock:
                self._pending = (ws, out.shape[:2], layout, threading.current_thread())
        elif stream_state is None:
            self._release_workspace(ws)
        if stream_state is not None:
            return self._out_seq(out, layout), stream_state
        return (self._out_seq(out, layout),
                (self._out_state(hT, layout), self._out_state(cT, layout)))

    # ------------------------------------------------------------- streaming
    def initial_state(self, batch_size):
        """A zero LSTMState for batch_size independent streams (unidirectional
        models only: the reverse direction needs the end of a sequence)."""
        if self.bidirectional:
            raise ValueError("initial_state: a bidirectional LSTM cannot stream; "
                             "run whole sequences with forward()")
        batch_size = _positive_int(batch_size, "batch_size")
        try:
            return LSTMState(self, batch_size)
        except (MemoryError, ValueError) as e:  # NumPy's or the C's message names no argument
            raise MemoryError("batch_size: cannot allocate the state of %d streams (%s)"
                              % (batch_size, e)) from None

    def step(self, x_t, state):
        """One time step for every stream: x_t (B, D) -> y_t (B, R).

        state is an LSTMState from initial_state(B); it is advanced in place
        and returned: ``y_t, state = lstm.step(x_t, state)``. Inference only."""
        if not isinstance(state, LSTMState):
            raise TypeError("state: expected an LSTMState from initial_state(), got %s"
                            % type(state).__name__)
        x = self._array(x_t, "x_t")
        if x.ndim != 2 or x.shape[1] != self.input_size:
            raise ValueError("x_t: expected shape (B, %d), got %s" % (self.input_size, x.shape))
        B = x.shape[0]
        state._check(self, B)
        x = np.ascontiguousarray(x, dtype=self.dtype)
        y = np.empty((B, self._R), self.dtype)
        with self._computing(state):  # forward's T = 1 case, with less on the way
            self._m.step(B, state.h.reshape(-1), state.c.reshape(-1), x.reshape(-1),
                         y.reshape(-1), state._ws)
        return y, state

    __call__ = forward

    def backward(self, dy, dstate=None):
        """Backpropagate through the last forward(train=True).

        dy: gradient w.r.t. y, y's shape (or None for zeros); dstate: None or
        (dh, dc) w.r.t. the final states (either may be None). Returns
        dx, (dh0, dc0) in the forward's layout and ADDS the parameter
        gradients into flat_grads (see zero_grad). Each training forward
        allows one backward."""
        return self._backward(dy, "dy", "y", self.num_directions * self._R, dstate, True,
                              lambda T, B, ws, d, dhT, dcT, dx, dh0, dc0: self._m.backward(
                                  T, B, dh0, dc0, dx, d, dhT, dcT, ws))

    def _backward(self, d, name, of, width, dstate, want_dx, call):
        """The shared body of backward: checks, layouts, output arrays;
        call(T, B, ws, d, dhT, dcT, dx, dh0, dc0) runs the C backward on flat
        arrays (d, dhT, dcT, dx may be None)."""
        if self.clip is not None:
            raise NotImplementedError("backward: not available for a model with clip (the "
                                      "gradient of a clipped gate is not implemented)")
        with self._lock:
            if self._pending is None:
                raise ValueError("backward() needs a preceding forward(..., train=True) "
                                 "not yet used by a backward()")
            ws, (T, B), layout, owner = self._pending
            if owner is not threading.current_thread():
                raise RuntimeError("backward(): the pending training forward was run by "
                                   "another thread; training one model from several threads "
                                   "at once is not supported (give each thread its own model)")
            d3 = None
            if d is not None:
                d = self._array(d, name)
                want = {"unbatched": (T, width), "batch_first": (B, T, width),
                        "time_first": (T, B, width)}[layout]
                if d.shape != want:
                    raise ValueError("%s: expected shape %s (the shape of %s), got %s"
                                     % (name, want, of, d.shape))
                d3 = np.ascontiguousarray(d[:, None, :] if layout == "unbatched" else
                                          d.transpose(1, 0, 2) if layout == "batch_first"
                                          else d, dtype=self.dtype)
            dhT, dcT = self._pair(dstate, "dstate", B, layout)
            NL = self.num_directions * self.num_layers
            dx = np.empty((T, B, self.input_size), self.dtype) if want_dx else None
            dh0 = np.empty((NL, B, self._R), self.dtype)
            dc0 = np.empty((NL, B, self.hidden_size), self.dtype)
            # the lock is held through the call: a parameter write waits for it
            if self._writer is not None:
                raise RuntimeError("backward(): %s is writing the parameters in another "
                                   "thread; wait for it before computing" % self._writer)
            call(T, B, ws, self._flat(d3), self._flat(dhT), self._flat(dcT), self._flat(dx),
                 dh0.reshape(-1), dc0.reshape(-1))
            self._pending = None
        self._release_workspace(ws)
        return (None if dx is None else self._out_seq(dx, layout),
                (self._out_state(dh0, layout), self._out_state(dc0, layout)))


class Metadata(MutableMapping):
    """A model's user metadata: str -> str pairs stored in the C model, saved
    with it and restored by clstm.load (at most 48; keys 1..256 bytes of
    UTF-8 and not a config key; values up to 64 KiB; no NUL characters)."""

    def __init__(self, core):
        self._core = core

    def __getitem__(self, key):
        for k, v in self._core.metadata_items():
            if k == key:
                return v
        raise KeyError(key)

    def __setitem__(self, key, value):
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("metadata: keys and values must be str, got %s -> %s"
                            % (type(key).__name__, type(value).__name__))
        kb, vb = key.encode("utf-8", "strict"), value.encode("utf-8", "strict")
        if not 1 <= len(kb) <= _MAX_KEY_BYTES or "\0" in key:
            raise ValueError("metadata: key %r must be 1..%d bytes of UTF-8 without NUL"
                             % (key, _MAX_KEY_BYTES))
        if key in _RESERVED_METADATA:
            raise ValueError("metadata: %r is a config key of the model file, not user "
                             "metadata" % key)
        if len(vb) > _MAX_VALUE_BYTES or "\0" in value:
            raise ValueError("metadata[%r]: value must be at most %d bytes without NUL"
                             % (key, _MAX_VALUE_BYTES))
        if key not in self and len(self) >= _MAX_METADATA:
            raise ValueError("metadata: at most %d entries" % _MAX_METADATA)
        self._core.set_metadata(key, value)

    def __delitem__(self, key):
        if key not in self:
            raise KeyError(key)
        self._core.set_metadata(key, None)

    def __iter__(self):
        return iter([k for k, _ in self._core.metadata_items()])

    def __len__(self):
        return len(self._core.metadata_items())

    def __repr__(self):
        return "Metadata(%r)" % dict(self._core.metadata_items())


class _Guard:
    """The context of LSTM._computing: a class rather than a contextlib
    generator, which cost 3 us of a 25 us streaming step."""
    __slots__ = ("lstm", "state")

    def __init__(self, lstm, state):
        self.lstm, self.state = lstm, state

    def __enter__(self):
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

    def __exit__(self, *exc):
        with self.lstm._lock:
            self.lstm._readers -= 1
        if self.state is not None:
            self.state._busy.release()


class LSTMState:
    """The carried (h, c) of B independent streams of one unidirectional LSTM,
    with the workspace a step needs, allocated once.

    ``h`` (L, B, R) and ``c`` (L, B, H) are plain arrays (read them, or write
    them to set a state); ``reset(i)`` zeroes stream i, ``reset()`` all.
    A state belongs to one caller at a time: a step on a state that another
    thread is advancing at that moment raises RuntimeError (each thread
    keeps its own states; the model itself may be shared)."""

    def __init__(self, lstm, batch_size):
        NL = lstm.num_directions * lstm.num_layers
        self._model = lstm._m
        self.h = np.zeros((NL, batch_size, lstm._R), lstm.dtype)
        self.c = np.zeros((NL, batch_size, lstm.hidden_size), lstm.dtype)
        self._ws = np.empty(lstm._m.workspace_size(1, batch_size, False), np.uint8)
        self._busy = threading.Lock()  # held by the call advancing this state

    @property
    def batch_size(self):
        return self.h.shape[1]

    def reset(self, i=None):
        """Zero stream i's state (every stream's when i is None)."""
        if i is None:
            self.h[...] = 0
            self.c[...] = 0
            return
        i = _as_int(i, "i", "an int stream index")
        if not 0 <= i < self.batch_size:
            raise IndexError("i: stream %d out of range for batch_size %d"
                             % (i, self.batch_size))
        self._model.state_reset(self.batch_size, self.h.reshape(-1), self.c.reshape(-1), i)

    def _check(self, lstm, B):
        """This state fits `lstm` and a batch of B."""
        want = (lstm.num_directions * lstm.num_layers, B, lstm._R)
        if (self.h.shape != want or self.c.shape != want[:2] + (lstm.hidden_size,)
                or self.h.dtype != lstm.dtype or self.c.dtype != lstm.dtype
                or not (self.h.flags.c_contiguous and self.c.flags.c_contiguous)):
            raise ValueError("state: an LSTMState of batch_size %d for a model with h %s, c %s "
                             "(%s); this one has h %s, c %s (%s)"
                             % (B, want, want[:2] + (lstm.hidden_size,), lstm.dtype,
                                self.h.shape, self.c.shape, self.h.dtype))

    def __repr__(self):
        return "LSTMState(batch_size=%d, h=%s, c=%s)" % (self.batch_size, self.h.shape,
                                                          self.c.shape)
