"""The old home of clstm.LSTM, kept so that ``from clstm.lstm import ...``
works. The code is split by job:

    clstm/model.py      LSTM and Model: the one model class, workspaces, guards
    clstm/streaming.py  LSTMState
    clstm/config.py     the settings' names, the C config, Metadata
    clstm/checks.py     argument coercion and validation
    clstm/layout.py     time-first, batch-first and unbatched sequences
    clstm/interop.py    torch, Keras and ONNX interchange
    clstm/threads.py    set_num_threads and the other process-wide settings
"""
from clstm.config import Metadata
from clstm.model import LSTM
from clstm.streaming import LSTMState
from clstm.threads import (get_min_thread_work, get_num_threads, has_blas,
                           set_min_thread_work, set_num_threads)

__all__ = ["LSTM", "LSTMState", "Metadata", "set_num_threads", "get_num_threads",
           "set_min_thread_work", "get_min_thread_work", "has_blas"]
