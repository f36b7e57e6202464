"""Argument coercion and validation, one helper per kind of argument.

The rule (README, Design): Python checks every argument and names it in the
message; the binding (_core.pyx) checks only buffer element counts, which C
cannot see; C checks memory safety and returns a status.
"""
from __future__ import annotations

import operator
from typing import Any, Optional, Sequence, overload


import numpy as np
import numpy.typing as npt

__all__ = ["DTypeError", "as_int", "positive_int", "probability", "flag", "float_dtype",
           "to_numpy", "floats", "integers", "empty", "contiguous", "lengths", "token_ids"]

DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


class DTypeError(TypeError, ValueError):
    """An argument of the right shape with the wrong dtype. Both a TypeError
    and a ValueError: clstm.losses raised ValueError for such lengths and
    LSTM.forward TypeError, and both keep working (as NumPy's AxisError is a
    ValueError and an IndexError)."""


def as_int(v: Any, name: str, what: str = "an int") -> int:
    """v as a Python int (numpy integers too, never bools), else TypeError."""
    if isinstance(v, (bool, np.bool_)):
        raise TypeError("%s: expected %s, got bool" % (name, what))
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError("%s: expected %s, got %s" % (name, what, type(v).__name__)) from None


def positive_int(v: Any, name: str) -> int:
    v = as_int(v, name)
    if not 1 <= v < 2**63:
        raise ValueError("%s: expected an int in [1, 2**63), got %d" % (name, v))
    return v


def probability(v: Any, name: str) -> float:
    """A float in [0, 1)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer,
                                                             np.floating)):
        raise TypeError("%s: expected a float in [0, 1), got %s" % (name, type(v).__name__))
    v = float(v)
    if not 0.0 <= v < 1.0:
        raise ValueError("%s: expected a float in [0, 1), got %r" % (name, v))
    return v


def real(v: Any, name: str, what: str = "a finite float") -> float:
    """v as a finite Python float (numpy floats and ints too, never bools)."""
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer,
                                                             np.floating)):
        raise TypeError("%s: expected %s, got %s" % (name, what, type(v).__name__))
    v = float(v)
    if not np.isfinite(v):
        raise ValueError("%s: expected %s, got %r" % (name, what, v))
    return v


def flag(v: Any, name: str) -> bool:
    """A bool (numpy's too), else TypeError."""
    if not isinstance(v, (bool, np.bool_)):
        raise TypeError("%s: expected a bool, got %s" % (name, type(v).__name__))
    return bool(v)


def float_dtype(dtype: npt.DTypeLike) -> np.dtype[Any]:
    """np.dtype(dtype), float32 or float64, else TypeError."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise TypeError("dtype: expected numpy.float32 or numpy.float64, got %r"
                        % (dtype,)) from None
    if dt not in DTYPES:
        raise TypeError("dtype: expected numpy.float32 or numpy.float64, got %s" % dt)
    return dt


def to_numpy(v: Any) -> npt.NDArray[Any]:
    """A NumPy array from an array-like or a torch tensor (without importing torch)."""
    if hasattr(v, "detach") and hasattr(v, "cpu"):
        v = v.detach().cpu().numpy()
    return np.asarray(v)


def floats(v: Any, name: str) -> npt.NDArray[Any]:
    """v as an array of a floating dtype (any precision), else TypeError."""
    a = to_numpy(v)
    if a.dtype.kind != "f":
        raise TypeError("%s: expected a floating-point array, got dtype %s" % (name, a.dtype))
    return a


def integers(v: Any, name: str, what: str = "an integer array") -> npt.NDArray[Any]:
    """v as an array of an integer dtype, else TypeError."""
    a = to_numpy(v)
    if a.dtype.kind not in "iu":
        raise TypeError("%s: expected %s, got dtype %s" % (name, what, a.dtype))
    return a


def empty(shape: int | Sequence[int], dtype: npt.DTypeLike, what: str) -> npt.NDArray[Any]:
    """np.empty, with a MemoryError that names the array and its size."""
    try:
        return np.empty(shape, dtype)
    except (MemoryError, ValueError):
        dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)  # (a size)
        nbytes = float(np.prod([float(n) for n in dims])) * np.dtype(dtype).itemsize
        raise MemoryError("%s: cannot allocate an array of shape %s (%s, %.3g GiB)"
                          % (what, dims, np.dtype(dtype), nbytes / 2**30)) from None


def contiguous(a: npt.NDArray[Any], name: str, shape: Sequence[int],
               dtype: Optional[npt.DTypeLike] = None) -> npt.NDArray[Any]:
    """np.ascontiguousarray(a, dtype), with a MemoryError naming the argument
    (e.g. a zero-stride view of petabytes); shape: the caller's, for the message."""
    try:
        return np.ascontiguousarray(a, dtype=dtype)
    except MemoryError:
        raise MemoryError("%s: cannot allocate a contiguous %scopy of shape %s"
                          % (name, "" if dtype is None else "%s " % np.dtype(dtype),
                             tuple(shape))) from None


@overload
def lengths(v: None, T: int, B: int, name: str = ..., bound: str = ...) -> None: ...
@overload
def lengths(v: npt.ArrayLike, T: int, B: int, name: str = ..., bound: str = ...
            ) -> npt.NDArray[np.int64]: ...
def lengths(v: Optional[npt.ArrayLike], T: int, B: int, name: str = "lengths", bound: str = "T"
            ) -> Optional[npt.NDArray[np.int64]]:
    """Sequence lengths as a C-contiguous int64 (B,) array with
    0 <= length <= T, or None: the one check of lengths on the Python side
    (name: the argument; bound: what T is called in the message)."""
    if v is None:
        return None
    a = to_numpy(v)
    if a.shape != (B,) or a.dtype.kind not in "iu":
        raise (ValueError if a.shape != (B,) else DTypeError)(
            "%s: expected (%d,) integers, got %s %s"
            % (name, B, a.shape, a.dtype))
    if B and (a.min() < 0 or a.max() > T):
        raise ValueError("%s: expected 0 <= length <= %s (%d), got values in [%d, %d]"
                         % (name, bound, T, a.min(), a.max()))
    return np.ascontiguousarray(a, dtype=np.int64)


def token_ids(ids: npt.NDArray[Any], lens: Optional[npt.NDArray[Any]], V: int, name: str
              ) -> npt.NDArray[Any]:
    """ids (T, B) as the int32 array C reads, every id at a valid step
    (t < length) in [0, V); padding past a length is never read and may hold
    anything (it becomes -1)."""
    valid = ids if lens is None else ids[np.arange(ids.shape[0])[:, None] < lens[None, :]]
    bad = valid[(valid < 0) | (valid >= V)]
    if bad.size:
        raise ValueError("%s: expected token ids in [0, %d), got %d"
                         % (name, V, int(bad.flat[0])))
    if ids.dtype != np.int32:  # out-of-range ids are padding now: never read
        ids = np.where((ids >= 0) & (ids < V), ids, -1).astype(np.int32)
    return ids
