"""LSTMState: the carried state of B independent streams (streaming
inference, one step or one chunk at a time)."""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Optional

import numpy as np

from clstm.checks import as_int

if TYPE_CHECKING:
    from clstm.model import LSTM

__all__ = ["LSTMState"]


class LSTMState:
    """The carried (h, c) of B independent streams of one unidirectional LSTM,
    with the workspace a step needs, allocated once.

    ``h`` (L, B, R) and ``c`` (L, B, H) are plain arrays (read them, or write
    them to set a state); ``reset(i)`` zeroes stream i, ``reset()`` all.
    A state belongs to one caller at a time: a step on a state that another
    thread is advancing at that moment raises RuntimeError (each thread
    keeps its own states; the model itself may be shared)."""

    def __init__(self, lstm: LSTM, batch_size: int) -> None:
        NL = lstm.num_directions * lstm.num_layers
        self._model = lstm._m
        self.h = np.zeros((NL, batch_size, lstm._R), lstm.dtype)
        self.c = np.zeros((NL, batch_size, lstm.hidden_size), lstm.dtype)
        self._ws = np.empty(lstm._m.workspace_size(1, batch_size, False), np.uint8)
        self._busy = threading.Lock()  # held by the call advancing this state

    @property
    def batch_size(self) -> int:
        return self.h.shape[1]

    def reset(self, i: Optional[int] = None) -> None:
        """Zero stream i's state (every stream's when i is None)."""
        if i is None:
            self.h[...] = 0
            self.c[...] = 0
            return
        i = as_int(i, "i", "an int stream index")
        if not 0 <= i < self.batch_size:
            raise IndexError("i: stream %d out of range for batch_size %d"
                             % (i, self.batch_size))
        self._model.state_reset(self.batch_size, self.h.reshape(-1), self.c.reshape(-1), i)

    def _check(self, lstm: LSTM, B: int) -> None:
        """This state fits `lstm` and a batch of B."""
        want = (lstm.num_directions * lstm.num_layers, B, lstm._R)
        if (self.h.shape != want or self.c.shape != want[:2] + (lstm.hidden_size,)
                or self.h.dtype != lstm.dtype or self.c.dtype != lstm.dtype
                or not (self.h.flags.c_contiguous and self.c.flags.c_contiguous)):
            raise ValueError("state: an LSTMState of batch_size %d for a model with h %s, c %s "
                             "(%s); this one has h %s, c %s (%s)"
                             % (B, want, want[:2] + (lstm.hidden_size,), lstm.dtype,
                                self.h.shape, self.c.shape, self.h.dtype))

    def __repr__(self) -> str:
        return "LSTMState(batch_size=%d, h=%s, c=%s)" % (self.batch_size, self.h.shape,
                                                          self.c.shape)
