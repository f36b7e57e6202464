"""Sequence layouts. The C core reads and writes time-first (T, B, ...)
arrays; callers may pass batch-first (B, T, ...) ones (batch_first=True) or
unbatched (T, ...) ones, one axis fewer. States are (N*L, B, .) in every
layout but unbatched, where they are (N*L, .)."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import numpy.typing as npt

__all__ = ["TIME_FIRST", "BATCH_FIRST", "UNBATCHED", "shape_text", "split", "shape",
           "to_time_first", "from_time_first", "state_shape", "state_out"]

TIME_FIRST, BATCH_FIRST, UNBATCHED = "time_first", "batch_first", "unbatched"
_LEAD = {TIME_FIRST: ("T", "B"), BATCH_FIRST: ("B", "T"), UNBATCHED: ("T",)}


def shape_text(layout: str, tail: Sequence[str]) -> str:
    """The shape of a sequence in `layout` with feature axes `tail`, as
    text: shape_text(BATCH_FIRST, ("D",)) is "(B, T, D)"."""
    axes = _LEAD[layout] + tuple(tail)
    return "(%s,)" % axes[0] if len(axes) == 1 else "(%s)" % ", ".join(axes)


def split(a: npt.NDArray[Any], batch_first: bool, name: str, tail: Sequence[str]
          ) -> tuple[npt.NDArray[Any], str]:
    """(a as a time-first (T, B, ...) view, its layout) for a sequence array
    `a` with len(tail) feature axes (tail: their letters, for the message)."""
    n = 2 + len(tail)
    if a.ndim == n - 1:
        return a[:, None], UNBATCHED
    if a.ndim == n:
        return (a.swapaxes(0, 1), BATCH_FIRST) if batch_first else (a, TIME_FIRST)
    raise ValueError("%s: expected shape %s or %s, got %s"
                     % (name, shape_text(BATCH_FIRST if batch_first else TIME_FIRST, tail),
                        shape_text(UNBATCHED, tail), a.shape))


def shape(layout: str, T: int, B: int, tail: Sequence[int] = ()) -> tuple[int, ...]:
    """The caller's shape of a time-first (T, B) + tail array."""
    return {UNBATCHED: (T,), BATCH_FIRST: (B, T), TIME_FIRST: (T, B)}[layout] + tuple(tail)


def to_time_first(a: npt.NDArray[Any], layout: str) -> npt.NDArray[Any]:
    """A caller's array (of shape(layout, ...)) as a time-first view."""
    if layout == UNBATCHED:
        return a[:, None]
    return a.swapaxes(0, 1) if layout == BATCH_FIRST else a


def from_time_first(a: npt.NDArray[Any], layout: str) -> npt.NDArray[Any]:
    """A time-first (T, B, ...) result in the caller's layout (batch-first
    copied to C order)."""
    if layout == UNBATCHED:
        return a[:, 0]
    if layout == BATCH_FIRST:
        return np.ascontiguousarray(a.swapaxes(0, 1))
    return a


def state_shape(layout: str, NL: int, B: int, width: int) -> tuple[int, ...]:
    """The caller's shape of an (NL, B, width) state."""
    return (NL, width) if layout == UNBATCHED else (NL, B, width)


def state_out(a: npt.NDArray[Any], layout: str) -> npt.NDArray[Any]:
    """An (NL, B, width) state in the caller's layout."""
    return a[:, 0] if layout == UNBATCHED else a
