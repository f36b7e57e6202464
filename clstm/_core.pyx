# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Thin binding over the C library: arrays in, C call without the GIL,
status to exception. Argument checking and reshaping live in clstm/checks.py
and clstm/layout.py; this module trusts its caller to pass C-contiguous
arrays of the right shapes and checks only what C cannot see: the element
counts of the buffers, so a mistake raises instead of corrupting memory."""
import os

import numpy as np

from libc.stdint cimport int8_t, int32_t, int64_t, uint64_t
from cpython.buffer cimport PyBUF_FORMAT
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize
from clstm._clstm cimport *

ctypedef fused real:
    float
    double

# the C enums' values, by their names in Python
BACKENDS = {"default": CLSTM_BACKEND_DEFAULT, "blas": CLSTM_BACKEND_BLAS,
            "naive": CLSTM_BACKEND_NAIVE}
DTYPES = {"float32": CLSTM_FLOAT32, "float64": CLSTM_FLOAT64}
ENCODINGS = {None: CLSTM_ENCODING_NONE, "onehot": CLSTM_ENCODING_ONEHOT,
             "embedding": CLSTM_ENCODING_EMBEDDING}

if clstm_version_number() != CLSTM_VERSION_NUMBER:
    raise ImportError("clstm: C library version %s does not match the binding's header"
                      % clstm_version_string().decode())

__version__ = clstm_version_string().decode()


cdef int check(clstm_status st, str what) except -1:
    if st == CLSTM_OK:
        return 0
    msg = "%s: %s" % (what, clstm_status_string(st).decode())
    if st == CLSTM_ERR_NOMEM:
        raise MemoryError(msg)
    if st == CLSTM_ERR_DTYPE:
        raise TypeError(msg)
    raise ValueError(msg)


def int8_kernel():
    """The int8 kernel in use (clstm_int8_kernel)."""
    return clstm_int8_kernel().decode()


def int8_kernel_limit(str name):
    """Use no int8 kernel above `name` (clstm_int8_kernel_limit)."""
    cdef bytes b = name.encode()
    check(clstm_int8_kernel_limit(b), "int8_kernel_limit(%r)" % name)


def has_blas():
    """True when the library was built with a BLAS backend."""
    return bool(clstm_has_blas())


def set_num_threads(int n):
    check(clstm_set_num_threads(n), "set_num_threads")


def get_num_threads():
    return clstm_get_num_threads()


def set_min_thread_work(int64_t macs):
    check(clstm_set_min_thread_work(macs), "set_min_thread_work")


def get_min_thread_work():
    return clstm_get_min_thread_work()


cdef class _Block:
    """Exposes one of a model's blocks through the buffer protocol, keeping
    the model alive for as long as any NumPy view of it exists."""
    cdef Model owner
    cdef void *data
    cdef Py_ssize_t shape[1]
    cdef Py_ssize_t strides[1]
    cdef bint f64

    def __getbuffer__(self, Py_buffer *buf, int flags):
        cdef Py_ssize_t item = 8 if self.f64 else 4
        buf.buf = self.data
        buf.obj = self
        buf.len = self.shape[0] * item
        buf.readonly = 0
        buf.itemsize = item
        buf.format = NULL
        if flags & PyBUF_FORMAT:
            buf.format = <char *>(b"d" if self.f64 else b"f")
        buf.ndim = 1
        buf.shape = self.shape
        buf.strides = self.strides
        buf.suboffsets = NULL
        buf.internal = NULL

    def __releasebuffer__(self, Py_buffer *buf):
        pass


cdef class Model:
    """Owns one clstm_model."""
    cdef clstm_model *m
    cdef readonly bint float64
    cdef readonly int64_t D, H, L, R, N, V, O
    cdef readonly int encoding
    cdef readonly bint quantized

    def __cinit__(self, *args, **kwargs):
        self.m = NULL

    def __init__(self, dict settings, uint64_t seed, str backend):
        """settings: {clstm_config field: value} (clstm.config.core_settings);
        the fields left out keep clstm_config_default()'s values."""
        if self.m != NULL:
            raise RuntimeError("Model is already initialised")
        cdef clstm_config cfg = clstm_config_default()
        cdef dict fields = cfg
        unknown = settings.keys() - fields.keys()
        if unknown:
            raise KeyError("settings: not fields of clstm_config: %s" % sorted(unknown))
        fields.update(settings, backend=BACKENDS[backend])
        cfg = fields
        cdef clstm_status st
        with nogil:
            st = clstm_create(&cfg, seed, &self.m)
        check(st, "LSTM")
        self._read_sizes()

    cdef _read_sizes(self):
        cdef clstm_config cfg = clstm_config_default()
        check(clstm_get_config(self.m, &cfg), "config")
        self.float64 = cfg.dtype == CLSTM_FLOAT64
        self.D, self.H, self.L = cfg.input_size, cfg.hidden_size, cfg.num_layers
        self.R = cfg.proj_size if cfg.proj_size > 0 else cfg.hidden_size
        self.N = 2 if cfg.bidirectional else 1
        self.encoding, self.V, self.O = cfg.encoding, cfg.vocab_size, cfg.output_size
        self.quantized = clstm_is_quantized(self.m)

    def quantize(self):
        """A quantized copy (clstm_quantize)."""
        cdef clstm_model *q = NULL
        cdef clstm_status st
        with nogil:
            st = clstm_quantize(self.m, &q)
        check(st, "quantize")
        return Model._adopt(q)

    def tensor_int8(self, int64_t index):
        """Copies of tensor `index`'s int8 weights (rows*cols) and scales (rows)."""
        cdef const int8_t *q = NULL
        cdef const float *s = NULL
        cdef clstm_tensor_info info
        check(clstm_tensor_int8(self.m, index, &q, &s), "tensor_int8")
        check(clstm_tensor_info_get(self.m, index, &info), "tensor_int8")
        rows, cols = info.shape[0], info.shape[1]
        return (bytes((<const char *>q)[:rows * cols]),
                bytes((<const char *>s)[:rows * sizeof(float)]))

    @staticmethod
    cdef Model _adopt(clstm_model *m):
        """A Model owning m (from clstm_load)."""
        cdef Model self = Model.__new__(Model)
        self.m = m
        self._read_sizes()
        return self

    def config(self):
        """The C config as a dict (the backend left out)."""
        cdef clstm_config c = clstm_config_default()
        check(clstm_get_config(self.m, &c), "config")
        return dict(input_size=c.input_size, hidden_size=c.hidden_size,
                    num_layers=c.num_layers, float64=c.dtype == CLSTM_FLOAT64,
                    proj_size=c.proj_size, bidirectional=bool(c.bidirectional),
                    dropout=c.dropout, peepholes=bool(c.peepholes),
                    input_forget=bool(c.input_forget), clip=c.clip,
                    encoding=int(c.encoding), vocab_size=c.vocab_size,
                    output_size=c.output_size, softmax=bool(c.softmax), vocab=self.vocab(),
                    target_vocab=c.target_vocab, target_embedding=c.target_embedding,
                    decoder_hidden=c.decoder_hidden, decoder_layers=c.decoder_layers,
                    attention=int(c.attention), attentional_size=c.attentional_size,
                    reverse=bool(c.reverse), gate_activation=int(c.gate_activation),
                    gate_alpha=c.gate_alpha, gate_beta=c.gate_beta)

    def vocab(self):
        """The vocabulary as a str, or None."""
        cdef const char *s = NULL
        cdef size_t n = 0
        check(clstm_get_vocab(self.m, &s, &n), "vocab")
        return None if s == NULL else s[:n].decode("utf-8")

    def metadata_items(self):
        """[(key, value)] of the user metadata, in order."""
        cdef int64_t n, i
        cdef const char *k
        cdef const char *v
        check(clstm_metadata_count(self.m, &n), "metadata")
        out = []
        for i in range(n):
            check(clstm_metadata_at(self.m, i, &k, &v), "metadata")
            out.append((k.decode("utf-8"), v.decode("utf-8")))
        return out

    def set_metadata(self, str key, value):
        """Set (value a str) or remove (value None) one user metadata key."""
        cdef bytes kb = key.encode("utf-8")
        cdef bytes vb
        cdef const char *pv = NULL
        if value is not None:
            vb = (<str>value).encode("utf-8")
            pv = vb
        check(clstm_set_metadata(self.m, kb, pv), "metadata[%r]" % key)

    def set_vocab(self, str vocab):
        cdef bytes b = vocab.encode("utf-8")
        check(clstm_set_vocab(self.m, b, len(b)), "vocab")

    def save(self, path):
        """Write the model to path (str or os.PathLike) atomically."""
        cdef bytes p = os.fsencode(path)
        cdef const char *cp = p
        cdef const char *why = NULL
        cdef clstm_status st
        with nogil:
            st = clstm_save_ex(self.m, cp, &why)
        if st == CLSTM_ERR_IO:
            raise OSError("cannot save the model to %r: %s" % (os.fsdecode(p), why.decode()))
        check(st, "save")

    def save_bytes(self):
        """The model's file as bytes: what save writes, byte for byte."""
        cdef size_t n = 0, written = 0
        cdef clstm_status st
        check(clstm_save_buffer_size(self.m, &n), "save_bytes")
        out = PyBytes_FromStringAndSize(NULL, <Py_ssize_t>n)
        cdef char *p = PyBytes_AS_STRING(out)
        with nogil:
            st = clstm_save_buffer(self.m, p, n, &written)
        check(st, "save_bytes")
        return out

    def __dealloc__(self):
        clstm_free(self.m)

    cdef _Block _block(self, bint grads):
        cdef void *data
        cdef size_t n
        if grads:
            check(clstm_grads(self.m, &data, &n), "grads")
        else:
            check(clstm_params(self.m, &data, &n), "params")
        cdef _Block b = _Block.__new__(_Block)
        b.owner = self
        b.data = data
        b.f64 = self.float64
        b.shape[0] = <Py_ssize_t>n
        b.strides[0] = 8 if self.float64 else 4
        return b

    def params_block(self):
        return self._block(False)

    def grads_block(self):
        """The gradient block (empty for a quantized model, which has none)."""
        if self.quantized:
            return np.zeros(0, np.float32)
        return self._block(True)

    def tensors(self):
        """[(name, offset, shape)] in block order."""
        cdef int64_t n, i
        cdef clstm_tensor_info info
        check(clstm_num_tensors(self.m, &n), "tensors")
        out = []
        for i in range(n):
            check(clstm_tensor_info_get(self.m, i, &info), "tensors")
            shape = (info.shape[0], info.shape[1])[:info.ndim]
            out.append((info.name.decode(), info.offset, shape))
        return out

    def zero_grad(self):
        check(clstm_zero_grad(self.m), "zero_grad")

    # One pipeline for every model (a bare LSTM is a model with encoding NONE
    # and output_size 0: out is then y): clstm_model_workspace_size,
    # clstm_model_forward (step: its T = 1 case) and clstm_model_backward.
    def workspace_size(self, int64_t T, int64_t B, bint train):
        cdef size_t n
        check(clstm_model_workspace_size(self.m, T, B, train, &n), "workspace")
        return n

    def forward(self, int64_t T, int64_t B, real[::1] out not None, const real[::1] x,
                const int32_t[::1] ids, const real[::1] h0, const real[::1] c0,
                real[::1] hT not None, real[::1] cT not None, bint train,
                unsigned char[::1] ws not None,
                const int64_t[::1] lengths=None, uint64_t dropout_seed=0):
        """Flat C-contiguous arrays. Exactly one of x (raw input) and ids
        (token models) is given; h0, c0, lengths may be None. out comes
        first: Cython picks the fused type from the first argument, which
        must therefore never be None."""
        cdef clstm_status st
        cdef const void *px = NULL if x is None else <const void *>&x[0]
        cdef const int32_t *pids = NULL if ids is None else &ids[0]
        cdef const void *ph0 = NULL if h0 is None else <const void *>&h0[0]
        cdef const void *pc0 = NULL if c0 is None else <const void *>&c0[0]
        cdef clstm_run_options opt = clstm_run_options_default()
        _check_dtype(self.float64, sizeof(real))
        self._check_sizes(T, B, out, x, ids, h0, c0, hT, cT, ("out", "h0", "c0", "hT", "cT"))
        _check_size(lengths, B, "lengths")
        if lengths is not None:
            opt.lengths = &lengths[0]
        opt.train = train
        opt.dropout_seed = dropout_seed
        with nogil:
            st = clstm_model_forward(self.m, T, B, px, pids, ph0, pc0, &out[0], &hT[0],
                                     &cT[0], &opt, &ws[0], ws.shape[0])
        check(st, "forward")

    def step(self, int64_t B, real[::1] h not None, real[::1] c not None, const real[::1] x,
             real[::1] out not None, unsigned char[::1] ws not None,
             const int32_t[::1] ids=None):
        """One inference step of B streams, the state advanced in place:
        forward with T = 1 and h, c both the initial and the final state (all
        flat; x None for a token model, which passes ids). The streaming
        path: fewer arguments to convert than forward's."""
        cdef clstm_status st
        cdef const void *px = NULL if x is None else <const void *>&x[0]
        cdef const int32_t *pids = NULL if ids is None else &ids[0]
        cdef clstm_run_options opt = clstm_run_options_default()
        _check_dtype(self.float64, sizeof(real))
        self._check_sizes(1, B, out, x, ids, h, c, None, None, ("out", "h0", "c0", "", ""))
        with nogil:
            st = clstm_model_forward(self.m, 1, B, px, pids, &h[0], &c[0], &out[0], &h[0],
                                     &c[0], &opt, &ws[0], ws.shape[0])
        check(st, "step")

    def backward(self, int64_t T, int64_t B, real[::1] dh0 not None, real[::1] dc0 not None,
                 real[::1] dx, const real[::1] dout, const real[::1] dhT, const real[::1] dcT,
                 unsigned char[::1] ws not None):
        """Backward through the whole model; dx, dout, dhT, dcT may be None.
        dh0 comes first: see forward."""
        cdef clstm_status st
        cdef void *pdx = NULL if dx is None else <void *>&dx[0]
        cdef const void *pdo = NULL if dout is None else <const void *>&dout[0]
        cdef const void *pdh = NULL if dhT is None else <const void *>&dhT[0]
        cdef const void *pdc = NULL if dcT is None else <const void *>&dcT[0]
        _check_dtype(self.float64, sizeof(real))
        self._check_sizes(T, B, dout, dx, None, dh0, dc0, dhT, dcT,
                          ("dout", "dh0", "dc0", "dhT", "dcT"))
        with nogil:
            st = clstm_model_backward(self.m, T, B, pdo, pdh, pdc, pdx, &dh0[0], &dc0[0],
                                      &ws[0], ws.shape[0])
        check(st, "backward")

    # Encoder-decoders (clstm_seq2seq_*): the caller (clstm.Seq2Seq) checks
    # shapes; here only the flat sizes C cannot see.
    def seq2seq_workspace_size(self, int64_t Ts, int64_t Tt, int64_t B, bint train):
        cdef size_t n
        check(clstm_seq2seq_workspace_size(self.m, Ts, Tt, B, train, &n), "workspace")
        return n

    def seq2seq_forward(self, int64_t Ts, int64_t Tt, int64_t B, real[::1] logits not None,
                        const int32_t[::1] src not None, const int64_t[::1] src_lens not None,
                        const int32_t[::1] tgt_in not None,
                        const int64_t[::1] tgt_lens not None, bint train,
                        unsigned char[::1] ws not None, uint64_t dropout_seed=0):
        """Teacher forcing: logits (Tt*B*Vt) from flat time-first arrays."""
        cdef clstm_status st
        cdef clstm_config c = clstm_config_default()
        check(clstm_get_config(self.m, &c), "config")
        _check_dtype(self.float64, sizeof(real))
        for name, arr, n in (("logits", logits, Tt * B * c.target_vocab), ("src", src, Ts * B),
                             ("src_lens", src_lens, B), ("tgt_in", tgt_in, Tt * B),
                             ("tgt_lens", tgt_lens, B)):
            _check_size(arr, n, name)
        with nogil:
            st = clstm_seq2seq_forward(self.m, Ts, Tt, B, &src[0], &src_lens[0], &tgt_in[0],
                                       &tgt_lens[0], &logits[0], train, dropout_seed, &ws[0],
                                       ws.shape[0])
        check(st, "seq2seq forward")

    def seq2seq_backward(self, int64_t Ts, int64_t Tt, int64_t B, const real[::1] dlogits not None,
                         unsigned char[::1] ws not None):
        cdef clstm_status st
        cdef clstm_config c = clstm_config_default()
        check(clstm_get_config(self.m, &c), "config")
        _check_dtype(self.float64, sizeof(real))
        _check_size(dlogits, Tt * B * c.target_vocab, "dlogits")
        with nogil:
            st = clstm_seq2seq_backward(self.m, Ts, Tt, B, &dlogits[0], &ws[0], ws.shape[0])
        check(st, "seq2seq backward")

    def seq2seq_beam_search(self, int64_t Ts, int64_t B, const int32_t[::1] src not None,
                            const int64_t[::1] src_lens not None, int64_t width,
                            int64_t max_len, double alpha, int64_t nbest):
        """(tokens (B, nbest, max_len) int32, lengths (B, nbest), scores (B, nbest))."""
        cdef size_t n
        cdef clstm_status st
        check(clstm_seq2seq_decode_workspace_size(self.m, Ts, B, width, max_len, &n),
              "workspace")
        _check_size(src, Ts * B, "src")
        _check_size(src_lens, B, "src_lens")
        cdef unsigned char[::1] ws = np.zeros(n, np.uint8)
        tokens = np.zeros((B, nbest, max_len), np.int32)
        lengths = np.zeros((B, nbest), np.int64)
        scores = np.zeros((B, nbest), np.float64)
        cdef int32_t[:, :, ::1] tv = tokens
        cdef int64_t[:, ::1] lv = lengths
        cdef double[:, ::1] sv = scores
        with nogil:
            st = clstm_seq2seq_beam_search(self.m, Ts, B, &src[0], &src_lens[0], width, max_len,
                                           alpha, nbest, &tv[0, 0, 0], &lv[0, 0], &sv[0, 0],
                                           &ws[0], ws.shape[0])
        check(st, "beam search")
        return tokens, lengths, scores

    cdef int _check_sizes(self, int64_t T, int64_t B, out, x, ids, h0, c0, hT, cT,
                          tuple names) except -1:
        """Element counts of the flat buffers (C cannot see them): out (T,B,O)
        (O = N*R without a head), x (T,B,D), ids (T,B), h-like (N*L,B,R),
        c-like (N*L,B,H); None entries are arguments left out."""
        cdef int64_t hs = self.N * self.L * B * self.R, cs = self.N * self.L * B * self.H
        _check_size(out, T * B * (self.O if self.O > 0 else self.N * self.R), names[0])
        _check_size(x, T * B * self.D, "x")
        _check_size(ids, T * B, "ids")
        _check_size(h0, hs, names[1])
        _check_size(c0, cs, names[2])
        _check_size(hT, hs, names[3])
        _check_size(cT, cs, names[4])
        return 0

    def state_reset(self, int64_t B, real[::1] h, real[::1] c, int64_t b):
        """Zero stream b of the flat states h (L*B*R) and c (L*B*H)."""
        _check_dtype(self.float64, sizeof(real))
        _check_size(h, self.N * self.L * B * self.R, "h")
        _check_size(c, self.N * self.L * B * self.H, "c")
        check(clstm_state_reset(self.m, B, &h[0], &c[0], b), "reset")


def load(path):
    """A new Model read from path (str or os.PathLike). OSError when the file
    cannot be read, ValueError naming the problem when it is malformed."""
    cdef bytes p = os.fsencode(path)
    cdef const char *cp = p
    cdef const char *why = NULL
    cdef clstm_model *m = NULL
    cdef clstm_status st
    with nogil:
        st = clstm_load_ex(cp, &m, &why)
    if st == CLSTM_OK:
        return Model._adopt(m)
    reason = clstm_status_string(st).decode() if why == NULL else why.decode()
    if st == CLSTM_ERR_IO:
        raise OSError("cannot read %r: %s" % (os.fsdecode(p), reason))
    if st == CLSTM_ERR_FORMAT:
        raise ValueError("%r is not a valid clstm model file: %s" % (os.fsdecode(p), reason))
    check(st, "load %r" % os.fsdecode(p))


def load_bytes(const unsigned char[::1] data):
    """A new Model read from a model file's bytes (any contiguous buffer).
    ValueError naming the problem when they are not a valid model."""
    cdef const char *why = NULL
    cdef clstm_model *m = NULL
    cdef clstm_status st
    cdef const void *p = NULL if data.shape[0] == 0 else <const void *>&data[0]
    cdef unsigned char empty = 0
    if p == NULL:
        p = &empty
    with nogil:
        st = clstm_load_buffer_ex(p, <size_t>data.shape[0], &m, &why)
    if st == CLSTM_OK:
        return Model._adopt(m)
    reason = clstm_status_string(st).decode() if why == NULL else why.decode()
    if st == CLSTM_ERR_FORMAT:
        raise ValueError("not a valid clstm model file: %s" % reason)
    check(st, "load_bytes")


cdef inline int _check_size(a, int64_t n, str name) except -1:
    """a (a 1-D memoryview, or None for an argument left out) has n elements."""
    if a is not None and len(a) != n:
        raise ValueError("%s: expected %d elements, got %d" % (name, n, len(a)))
    return 0


cdef int _check_dtype(bint float64, size_t item) except -1:
    if item != (8 if float64 else 4):
        raise TypeError("array dtype does not match the model's dtype")
    return 0


cdef inline clstm_dtype _dtype_of(size_t item) noexcept nogil:
    return CLSTM_FLOAT64 if item == 8 else CLSTM_FLOAT32


def sgd_step(real[::1] params, const real[::1] grads, real[::1] velocity, bint first,
             double lr, double momentum, double dampening, double weight_decay, bint nesterov):
    """One SGD step in place; all arrays the same length (velocity may be None
    without momentum)."""
    cdef clstm_sgd_config c = clstm_sgd_config_default()
    c.lr, c.momentum, c.dampening = lr, momentum, dampening
    c.weight_decay, c.nesterov = weight_decay, nesterov
    cdef size_t n = params.shape[0]
    if grads.shape[0] != n or (velocity is not None and velocity.shape[0] != n):
        raise ValueError("sgd_step: arrays of different lengths")
    cdef void *pv = NULL if velocity is None else <void *>&velocity[0]
    cdef clstm_status st
    with nogil:
        st = clstm_sgd_step(_dtype_of(sizeof(real)), n, &params[0], &grads[0], pv, first, &c)
    check(st, "SGD step")


def adam_step(real[::1] params, const real[::1] grads, real[::1] m, real[::1] v, int64_t step,
              double lr, double beta1, double beta2, double eps, double weight_decay,
              bint decoupled):
    """One Adam/AdamW step in place; all arrays the same length."""
    cdef clstm_adam_config c = clstm_adam_config_default()
    c.lr, c.beta1, c.beta2, c.eps = lr, beta1, beta2, eps
    c.weight_decay, c.decoupled = weight_decay, decoupled
    cdef size_t n = params.shape[0]
    if grads.shape[0] != n or m.shape[0] != n or v.shape[0] != n:
        raise ValueError("adam_step: arrays of different lengths")
    cdef clstm_status st
    with nogil:
        st = clstm_adam_step(_dtype_of(sizeof(real)), n, &params[0], &grads[0], &m[0], &v[0],
                             step, &c)
    check(st, "Adam step")


def sum_squares(const real[::1] a):
    """sum(a**2), accumulated in double (gradient norms)."""
    cdef double total = 0.0
    cdef Py_ssize_t i
    with nogil:
        for i in range(a.shape[0]):
            total += <double>a[i] * <double>a[i]
    return total


def softmax(int64_t n, int64_t k, const real[::1] z, double temperature, real[::1] p):
    """p = softmax(z / temperature) row-wise over n rows of k; flat arrays."""
    if z.shape[0] != n * k or p.shape[0] != n * k:
        raise ValueError("softmax: arrays of %d elements expected" % (n * k))
    check(clstm_softmax(_dtype_of(sizeof(real)), n, k, &z[0], temperature, &p[0]), "softmax")


CTC_MAX_WIDTH = CLSTM_CTC_MAX_WIDTH
SEQ2SEQ_MAX_WIDTH = CLSTM_SEQ2SEQ_MAX_WIDTH


def ctc_loss(int64_t T, int64_t B, int64_t C, const real[::1] logits,
             const int64_t[::1] input_lengths, const int32_t[::1] targets, int64_t S,
             const int64_t[::1] target_lengths, int32_t blank, int reduction,
             bint zero_infinity, double[::1] loss, real[::1] dlogits):
    """CTC loss of logits (T*B*C) against targets (B*S, padded) into loss (B
    doubles for reduction 0, else 1); fills dlogits (may be None)."""
    cdef const int64_t *pil = NULL if input_lengths is None else &input_lengths[0]
    cdef const int32_t *pt = NULL if targets is None or S == 0 else &targets[0]
    cdef void *pd = NULL if dlogits is None else <void *>&dlogits[0]
    cdef clstm_status st
    _check_size(logits, T * B * C, "logits")
    _check_size(dlogits, T * B * C, "dlogits")
    _check_size(input_lengths, B, "input_lengths")
    _check_size(target_lengths, B, "target_lengths")
    if S > 0:
        _check_size(targets, B * S, "targets")
    _check_size(loss, B if reduction == 0 else 1, "loss")
    with nogil:
        st = clstm_ctc_loss(_dtype_of(sizeof(real)), T, B, C, &logits[0], pil, pt, S,
                            &target_lengths[0], blank, <clstm_reduction>reduction,
                            zero_infinity, &loss[0], pd)
    check(st, "ctc_loss")


def ctc_greedy(int64_t T, int64_t B, int64_t C, const real[::1] logits,
               const int64_t[::1] input_lengths, int32_t blank, int32_t[::1] labels,
               int64_t[::1] lengths):
    """Best-path labellings of logits (T*B*C) into labels (B*T), lengths (B)."""
    cdef const int64_t *pil = NULL if input_lengths is None else &input_lengths[0]
    cdef clstm_status st
    _check_size(logits, T * B * C, "logits")
    _check_size(input_lengths, B, "input_lengths")
    _check_size(labels, B * T, "labels")
    _check_size(lengths, B, "lengths")
    with nogil:
        st = clstm_ctc_greedy(_dtype_of(sizeof(real)), T, B, C, &logits[0], pil, blank,
                              &labels[0], &lengths[0])
    check(st, "ctc_greedy")


def ctc_beam_search(int64_t T, int64_t B, int64_t C, const real[::1] logits,
                    const int64_t[::1] input_lengths, int32_t blank, int64_t width,
                    int64_t nbest, int32_t[::1] labels, int64_t[::1] lengths,
                    double[::1] scores, Model lm=None, const int32_t[::1] lm_tokens=None,
                    int32_t lm_start=-1, double lm_weight=0, double lm_bonus=0):
    """Prefix beam search over logits (T*B*C): labels (B*nbest*T), lengths
    and scores (B*nbest); with lm (and lm_tokens, C), shallow fusion."""
    cdef const int64_t *pil = NULL if input_lengths is None else &input_lengths[0]
    cdef clstm_status st
    cdef clstm_ctc_lm fuse
    cdef const clstm_ctc_lm *pf = NULL
    _check_size(logits, T * B * C, "logits")
    _check_size(input_lengths, B, "input_lengths")
    _check_size(labels, B * nbest * T, "labels")
    _check_size(lengths, B * nbest, "lengths")
    _check_size(scores, B * nbest, "scores")
    if lm is not None:
        _check_size(lm_tokens, C, "lm_tokens")
        fuse.model = lm.m
        fuse.tokens = &lm_tokens[0]
        fuse.start = lm_start
        fuse.weight = lm_weight
        fuse.bonus = lm_bonus
        pf = &fuse
    with nogil:
        st = clstm_ctc_beam_search_lm(_dtype_of(sizeof(real)), T, B, C, &logits[0], pil, blank,
                                      width, nbest, pf, &labels[0], &lengths[0], &scores[0])
    check(st, "ctc_beam_search")


def loss(bint mse, int64_t T, int64_t B, int64_t O, const real[::1] out, targets,
         const int64_t[::1] lengths, bint last_only, real[::1] dout, double smoothing=0.0):
    """Mean loss of out (T*B*O) against targets (int32 (T*B) class ids, or
    reals (T*B*O) for mse); fills dout (may be None) with its gradient;
    smoothing: the cross-entropy's label smoothing."""
    cdef double result = 0
    cdef const int64_t *pl = NULL if lengths is None else &lengths[0]
    cdef void *pd = NULL if dout is None else <void *>&dout[0]
    cdef const int32_t[::1] ti
    cdef const real[::1] tr
    cdef clstm_status st
    _check_size(out, T * B * O, "out")
    _check_size(dout, T * B * O, "dout")
    _check_size(lengths, B, "lengths")
    if mse:
        tr = targets
        _check_size(tr, T * B * O, "targets")
        with nogil:
            st = clstm_loss_mse(_dtype_of(sizeof(real)), T, B, O, &out[0], &tr[0], pl,
                                last_only, &result, pd)
    else:
        ti = targets
        _check_size(ti, T * B, "targets")
        with nogil:
            st = clstm_loss_xent_smoothed(_dtype_of(sizeof(real)), T, B, O, &out[0], &ti[0],
                                          pl, last_only, smoothing, &result, pd)
    check(st, "loss")
    return result
