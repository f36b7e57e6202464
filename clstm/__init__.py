"""clstm: a fast LSTM whose core is plain C (forward and BPTT over BLAS).

    >>> import numpy as np, clstm
    >>> lstm = clstm.LSTM(input_size=8, hidden_size=16, num_layers=2, seed=0)
    >>> y, (h, c) = lstm.forward(np.zeros((5, 3, 8), np.float32))
    >>> y.shape, h.shape
    ((5, 3, 16), (2, 3, 16))
"""
# Loads libscipy_openblas64_.so into the process before the extension needs
# it; this is what makes editable installs work without LD_LIBRARY_PATH.
import scipy_openblas64  # noqa: F401

from clstm import _core
from clstm._version import __version__
from clstm.model import LSTM, Model
from clstm.streaming import LSTMState
from clstm.threads import (get_min_thread_work, get_num_threads, has_blas,
                           set_min_thread_work, set_num_threads)
from clstm import decode, losses, optim
from clstm.io import load, load_bytes, save, save_bytes
from clstm.quantize import int8_kernel, quantize
from clstm.seq2seq import Seq2Seq

if _core.__version__ != __version__:
    raise ImportError("clstm: package version %s but C core %s: reinstall clstm"
                      % (__version__, _core.__version__))

__all__ = ["LSTM", "LSTMState", "Model", "Seq2Seq", "decode", "losses", "optim", "set_num_threads",
           "get_num_threads", "set_min_thread_work", "get_min_thread_work", "has_blas", "save",
           "load", "save_bytes", "load_bytes", "quantize", "int8_kernel", "__version__"]
