"""Losses and softmax over a model's outputs, computed in C (clstm_loss_xent,
clstm_loss_mse, clstm_ctc_loss, clstm_softmax), masked by sequence lengths.

Each loss returns (loss, dout): the mean over the counted steps (a Python
float, accumulated in double) and its gradient with respect to `out`, ready
for Model.backward. Counted steps: every valid step (t < length), or with
last_only=True only each sequence's last valid step (length - 1).
"""
from __future__ import annotations

from typing import Any, Literal, Optional, overload

import numpy as np
import numpy.typing as npt

from clstm import _core, checks, layout
from clstm._typing import FloatArray
from clstm.checks import to_numpy

__all__ = ["cross_entropy", "mse", "ctc", "softmax"]

REDUCTIONS = {"none": 0, "sum": 1, "mean": 2}  # clstm_reduction


def _out3(out: npt.ArrayLike, batch_first: bool, name: str = "out", last: str = "O"
          ) -> tuple[npt.NDArray[Any], str]:
    """out as a C-contiguous float (T, B, last) array, and its layout."""
    a = to_numpy(out)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError("%s: expected a float32 or float64 array, got dtype %s"
                        % (name, a.dtype))
    a3, lay = layout.split(a, batch_first, name, (last,))
    if 0 in a.shape:
        raise ValueError("%s: expected T, B, %s >= 1, got shape %s" % (name, last, a.shape))
    return checks.contiguous(a3, name, a.shape), lay


def _per_step(targets: npt.NDArray[Any], name: str, T: int, B: int, tail: tuple[int, ...],
              lay: str, last_only: bool, lens: Optional[npt.NDArray[np.int64]],
              dtype: npt.DTypeLike) -> npt.NDArray[Any]:
    """targets as the (T, B) + tail array the C loss reads: per step in the
    out's layout, or with last_only (B,) + tail placed at each last step."""
    a = to_numpy(targets)
    if last_only:
        want = (B,) + tail if lay != layout.UNBATCHED else tail
        if a.shape != want:
            raise ValueError("%s: with last_only expected shape %s (one per sequence), got %s"
                             % (name, want, a.shape))
        full = np.zeros((T, B) + tail, dtype)
        ends = (lens if lens is not None else np.full(B, T)) - 1
        for b in range(B):
            if ends[b] >= 0:
                full[ends[b], b] = a.reshape((B,) + tail)[b]
        return full
    want = layout.shape(lay, T, B, tail)
    if a.shape != want:
        raise ValueError("%s: expected shape %s, got %s" % (name, want, a.shape))
    return np.ascontiguousarray(layout.to_time_first(a, lay), dtype=dtype)


def _loss(is_mse: bool, out: npt.ArrayLike, targets: npt.ArrayLike,
          lengths: Optional[npt.ArrayLike], last_only: bool, batch_first: bool, grad: bool,
          smoothing: float = 0.0) -> tuple[float, Optional[FloatArray]]:
    o3, lay = _out3(out, batch_first)
    T, B, O = o3.shape
    lens = checks.lengths(lengths, T, B)
    if is_mse:
        t = to_numpy(targets)
        if t.dtype.kind not in "fiu":
            raise TypeError("targets: expected real numbers, got dtype %s" % t.dtype)
        t = _per_step(t, "targets", T, B, (O,), lay, last_only, lens, o3.dtype)
    else:
        t = to_numpy(targets)
        if t.dtype.kind not in "iu":
            raise TypeError("targets: expected integer class ids, got dtype %s" % t.dtype)
        # uint64 stays uint64: ids beyond int64 are reported as given, not wrapped
        full = _per_step(t, "targets", T, B, (), lay, last_only, lens,
                         np.uint64 if t.dtype == np.uint64 else np.int64)
        L = np.full(B, T) if lens is None else lens
        steps = np.arange(T)[:, None]
        counted = full[steps == L[None, :] - 1] if last_only else full[steps < L[None, :]]
        if counted.size and (counted.min() < 0 or counted.max() >= O):
            raise ValueError("targets: expected class ids in [0, %d), got values in [%d, %d]"
                             % (O, counted.min(), counted.max()))
        t = full.astype(np.int32)
    dout = np.empty_like(o3) if grad else None
    loss = _core.loss(is_mse, T, B, O, o3.reshape(-1), t.reshape(-1), lens, bool(last_only),
                      None if dout is None else dout.reshape(-1), smoothing)
    return loss, (None if dout is None else layout.from_time_first(dout, lay))


@overload
def cross_entropy(out: npt.ArrayLike, targets: npt.ArrayLike,
                  lengths: Optional[npt.ArrayLike] = None, *, last_only: bool = False,
                  batch_first: bool = False, grad: Literal[True] = True,
                  label_smoothing: float = 0.0) -> tuple[float, FloatArray]: ...


@overload
def cross_entropy(out: npt.ArrayLike, targets: npt.ArrayLike,
                  lengths: Optional[npt.ArrayLike] = None, *, last_only: bool = False,
                  batch_first: bool = False, grad: Literal[False], label_smoothing: float = 0.0
                  ) -> tuple[float, None]: ...


@overload
def cross_entropy(out: npt.ArrayLike, targets: npt.ArrayLike,
                  lengths: Optional[npt.ArrayLike] = None, *, last_only: bool = False,
                  batch_first: bool = False, grad: bool, label_smoothing: float = 0.0
                  ) -> tuple[float, Optional[FloatArray]]: ...


def cross_entropy(out: npt.ArrayLike, targets: npt.ArrayLike,
                  lengths: Optional[npt.ArrayLike] = None, *, last_only: bool = False,
                  batch_first: bool = False, grad: bool = True, label_smoothing: float = 0.0
                  ) -> tuple[float, Optional[FloatArray]]:
    """Softmax cross-entropy of logits `out` (T, B, O) ((B, T, O) with
    batch_first, (T, O) unbatched) against integer class ids `targets`:
    (T, B) per step, or (B,) with last_only (one label per sequence, at its
    last valid step). Targets at steps that do not count (past a length)
    are never read, so padding may hold anything (e.g. -100).
    label_smoothing: eps in [0, 1], as torch.nn.functional.cross_entropy's:
    the target is (1 - eps) onehot + eps / O. Returns (mean loss in nats,
    d loss / d out or None)."""
    eps = float(label_smoothing)
    if not 0.0 <= eps <= 1.0:
        raise ValueError("label_smoothing: expected a number in [0, 1], got %r"
                         % (label_smoothing,))
    return _loss(False, out, targets, lengths, last_only, batch_first, grad, eps)


@overload
def mse(out: npt.ArrayLike, targets: npt.ArrayLike, lengths: Optional[npt.ArrayLike] = None,
        *, last_only: bool = False, batch_first: bool = False, grad: Literal[True] = True
        ) -> tuple[float, FloatArray]: ...


@overload
def mse(out: npt.ArrayLike, targets: npt.ArrayLike, lengths: Optional[npt.ArrayLike] = None,
        *, last_only: bool = False, batch_first: bool = False, grad: Literal[False]
        ) -> tuple[float, None]: ...


@overload
def mse(out: npt.ArrayLike, targets: npt.ArrayLike, lengths: Optional[npt.ArrayLike] = None,
        *, last_only: bool = False, batch_first: bool = False, grad: bool
        ) -> tuple[float, Optional[FloatArray]]: ...


def mse(out: npt.ArrayLike, targets: npt.ArrayLike, lengths: Optional[npt.ArrayLike] = None,
        *, last_only: bool = False, batch_first: bool = False, grad: bool = True
        ) -> tuple[float, Optional[FloatArray]]:
    """Mean squared error of `out` (T, B, O) against real `targets` of the
    same shape, or (B, O) with last_only. The mean is over counted steps
    and the O outputs. Returns (loss, d loss / d out or None)."""
    return _loss(True, out, targets, lengths, last_only, batch_first, grad)


def _ctc_targets(targets: Any, target_lengths: Optional[npt.ArrayLike], B: int,
                 unbatched: bool) -> tuple[npt.NDArray[Any], npt.NDArray[np.int64]]:

    """targets as the padded (B, S) int32 array C reads, and the (B,) int64
    target lengths."""
    if unbatched:
        a = to_numpy(targets)
        if a.ndim != 1 or (a.size and a.dtype.kind not in "iu"):
            raise ValueError("targets: expected a 1-D sequence of class ids for unbatched "
                             "logits (T, C), got shape %s dtype %s" % (a.shape, a.dtype))
        if target_lengths is not None:
            n = checks.as_int(target_lengths, "target_lengths")
            if not 0 <= n <= a.size:
                raise ValueError("target_lengths: expected 0..%d, got %d" % (a.size, n))
            a = a[:n]
        return a.reshape(1, -1), np.array([a.size], np.int64)
    if isinstance(targets, (list, tuple)):  # B sequences of ids
        if target_lengths is not None:
            raise ValueError("target_lengths: leave it out when targets is a list of "
                             "sequences (their lengths are the target lengths)")
        if len(targets) != B:
            raise ValueError("targets: expected %d sequences (B), got %d" % (B, len(targets)))
        rows = [to_numpy(t) for t in targets]
        for b, r in enumerate(rows):
            if r.ndim != 1 or (r.size and r.dtype.kind not in "iu"):
                raise ValueError("targets[%d]: expected a 1-D sequence of class ids, got "
                                 "shape %s dtype %s" % (b, r.shape, r.dtype))
        lens = np.array([r.size for r in rows], np.int64)
        pad = np.zeros((B, int(lens.max(initial=0))), np.int64)
        for b, r in enumerate(rows):
            pad[b, :r.size] = r
        return pad, lens
    a = to_numpy(targets)
    if a.size and a.dtype.kind not in "iu":
        raise TypeError("targets: expected integer class ids, got dtype %s" % a.dtype)
    if a.ndim == 2:  # padded (B, S)
        if a.shape[0] != B:
            raise ValueError("targets: expected (B, S) = (%d, S), got %s" % (B, a.shape))
        S = a.shape[1]
        lens = (np.full(B, S, np.int64) if target_lengths is None
                else checks.lengths(target_lengths, S, B, "target_lengths", "S"))
        return a, lens
    if a.ndim == 1:  # concatenated, PyTorch's other form
        if target_lengths is None:
            raise ValueError("target_lengths: required with concatenated 1-D targets")
        lens = checks.lengths(target_lengths, a.size, B, "target_lengths", "len(targets)")
        if int(lens.sum()) != a.size:
            raise ValueError("target_lengths: expected them to sum to len(targets) (%d), got "
                             "%d" % (a.size, int(lens.sum())))
        pad = np.zeros((B, int(lens.max(initial=0))), np.int64)
        ends = np.cumsum(lens)
        for b in range(B):
            pad[b, :lens[b]] = a[ends[b] - lens[b]:ends[b]]
        return pad, lens
    raise ValueError("targets: expected (B, S) padded ids, 1-D concatenated ids with "
                     "target_lengths, or a list of B sequences; got shape %s" % (a.shape,))


@overload
def ctc(logits: npt.ArrayLike, targets: Any, input_lengths: Optional[npt.ArrayLike] = None,
        target_lengths: Optional[npt.ArrayLike] = None, *, blank: int = 0,
        reduction: str = "mean", zero_infinity: bool = False, batch_first: bool = False,
        grad: Literal[True] = True) -> tuple[Any, FloatArray]: ...


@overload
def ctc(logits: npt.ArrayLike, targets: Any, input_lengths: Optional[npt.ArrayLike] = None,
        target_lengths: Optional[npt.ArrayLike] = None, *, blank: int = 0,
        reduction: str = "mean", zero_infinity: bool = False, batch_first: bool = False,
        grad: Literal[False]) -> tuple[Any, None]: ...


@overload
def ctc(logits: npt.ArrayLike, targets: Any, input_lengths: Optional[npt.ArrayLike] = None,
        target_lengths: Optional[npt.ArrayLike] = None, *, blank: int = 0,
        reduction: str = "mean", zero_infinity: bool = False, batch_first: bool = False,
        grad: bool) -> tuple[Any, Optional[FloatArray]]: ...


def ctc(logits: npt.ArrayLike, targets: Any, input_lengths: Optional[npt.ArrayLike] = None,
        target_lengths: Optional[npt.ArrayLike] = None, *, blank: int = 0,
        reduction: str = "mean", zero_infinity: bool = False, batch_first: bool = False,
        grad: bool = True) -> tuple[Any, Optional[FloatArray]]:
    """Connectionist temporal classification loss (in C: clstm_ctc_loss) of
    unnormalised `logits` (T, B, C) ((B, T, C) with batch_first, (T, C)
    unbatched) against label sequences shorter than the input, with no
    alignment: the value and gradient of
    torch.nn.functional.ctc_loss(log_softmax(logits), ...).

    targets: (B, S) padded class ids with target_lengths (B,) (None: all
    S), 1-D concatenated ids with target_lengths (PyTorch's forms), or a
    list of B sequences; unbatched, one 1-D sequence. Ids are in [0, C) and
    never `blank`. input_lengths: (B,) in 0..T, or None (all T).
    reduction: "mean" (each loss divided by its target length, at least 1,
    then averaged over B), "sum" or "none" (a (B,) float64 array).
    zero_infinity: a sequence too short for its targets counts 0 (loss and
    gradient), else its loss is inf and its gradient NaN, as in PyTorch.

    Returns (loss, d loss / d logits or None); for "none" the gradient is
    that of the losses' sum."""
    z, lay = _out3(logits, batch_first, "logits", "C")
    T, B, C = z.shape
    b = checks.as_int(blank, "blank")
    if not 0 <= b < C:
        raise ValueError("blank: expected a class in [0, %d), got %d" % (C, b))
    if reduction not in REDUCTIONS:
        raise ValueError("reduction: expected one of %s, got %r"
                         % (", ".join(map(repr, REDUCTIONS)), reduction))
    unbatched = lay == layout.UNBATCHED
    if unbatched and input_lengths is not None:
        n = checks.as_int(input_lengths, "input_lengths")
        input_lengths = [n]
    ilens = checks.lengths(input_lengths, T, B, "input_lengths")
    t2, tlens = _ctc_targets(targets, target_lengths, B, unbatched)
    S = t2.shape[1]
    valid = t2[np.arange(S)[None, :] < tlens[:, None]]
    if valid.size and (valid.min() < 0 or valid.max() >= C or (valid == b).any()):
        bad = valid[(valid < 0) | (valid >= C) | (valid == b)][0]
        raise ValueError("targets: expected class ids in [0, %d) other than blank (%d), got %d"
                         % (C, b, bad))
    t32 = np.ascontiguousarray(np.where(np.arange(S)[None, :] < tlens[:, None], t2, 0),
                               dtype=np.int32)
    red = REDUCTIONS[reduction]
    loss = np.zeros(B if red == 0 else 1)
    d = np.empty_like(z) if grad else None
    _core.ctc_loss(T, B, C, z.reshape(-1), ilens, t32.reshape(-1), S, tlens, b, red,
                   bool(zero_infinity), loss, None if d is None else d.reshape(-1))
    value = loss if red == 0 and not unbatched else float(loss[0])
    return value, (None if d is None else layout.from_time_first(d, lay))


def softmax(z: npt.ArrayLike, temperature: float = 1.0) -> FloatArray:
    """softmax(z / temperature) over the last axis of a float array (in C,
    max-subtracted, in double)."""
    a = to_numpy(z)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError("z: expected a float32 or float64 array, got dtype %s" % a.dtype)
    if a.ndim < 1 or a.size == 0:
        raise ValueError("z: expected a non-empty array, got shape %s" % (a.shape,))
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise TypeError("temperature: expected a finite number > 0, got %r"
                        % (temperature,)) from None
    if not (t > 0 and np.isfinite(t)):
        raise ValueError("temperature: expected a finite number > 0, got %r" % (temperature,))
    try:
        c = np.ascontiguousarray(a)
        p = np.empty_like(c)
    except MemoryError:  # e.g. a zero-stride view of petabytes
        raise MemoryError("z: cannot allocate contiguous arrays of shape %s"
                          % (a.shape,)) from None
    k = c.shape[-1]
    _core.softmax(c.size // k, k, c.reshape(-1), t, p.reshape(-1))
    return p
