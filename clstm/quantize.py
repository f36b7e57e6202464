"""clstm.quantize: an int8 copy of a trained model, for inference.

The numerics (which tensors, how, and the error to expect) are
include/clstm.h's "Quantized models"; the C library does the work
(clstm_quantize), so a C program and Python make the same model."""
from __future__ import annotations

from typing import TypeVar

import numpy as np

from clstm.model import LSTM

_M = TypeVar("_M", bound=LSTM)

__all__ = ["quantize", "int8_kernel"]


def quantize(model: _M) -> _M:
    """A quantized copy of `model` (an LSTM or Model, float32 or float64):
    weight matrices int8 with one scale per row, activations quantized per
    row as they are used, gates and cell state in float32. Inference only;
    saved files are about a quarter of the float32 ones. The model itself
    is unchanged.

    ValueError for a model that is already quantized or holds NaN or Inf,
    and for a matrix with over 65536 columns."""
    if not isinstance(model, LSTM):
        raise TypeError("model: expected a clstm.LSTM or clstm.Model, got %s"
                        % type(model).__name__)
    if model.quantized:
        raise ValueError("model: already quantized; quantize its float original")
    for name, value in model.named_parameters().items():
        if not np.all(np.abs(value) <= np.finfo(np.float32).max):
            raise ValueError("model: %s holds NaN, Inf or values beyond float32's range; a "
                             "quantized model needs finite float32 weights" % name)
        if value.ndim == 2 and value.shape[1] > 65536:
            raise ValueError("model: %s has %d columns; int8 products support at most "
                             "65536 (their int32 sums must not overflow)"
                             % (name, value.shape[1]))
    return type(model)._from_core(model._m.quantize(), batch_first=model.batch_first)


def int8_kernel() -> str:
    """The int8 kernel in use: "avx512-vnni", "avx-vnni", "avx2" or "portable"."""
    from clstm import _core
    return _core.int8_kernel()
