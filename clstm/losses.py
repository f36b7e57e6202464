"""Losses and softmax over a model's outputs, computed in C (clstm_loss_xent,
clstm_loss_mse, clstm_softmax), masked by sequence lengths.

Each loss returns (loss, dout): the mean over the counted steps (a Python
float, accumulated in double) and its gradient with respect to `out`, ready
for Model.backward. Counted steps: every valid step (t < length), or with
last_only=True only each sequence's last valid step (length - 1).
"""
import numpy as np

from clstm import _core, checks, layout
from clstm.checks import to_numpy

__all__ = ["cross_entropy", "mse", "softmax"]


def _out3(out, batch_first):
    """out as a C-contiguous float (T, B, O) array, and its layout."""
    a = to_numpy(out)
    if a.dtype not in (np.float32, np.float64):
        raise TypeError("out: expected a float32 or float64 array, got dtype %s" % a.dtype)
    a3, lay = layout.split(a, batch_first, "out", ("O",))
    if 0 in a.shape:
        raise ValueError("out: expected T, B, O >= 1, got shape %s" % (a.shape,))
    return checks.contiguous(a3, "out", a.shape), lay


def _per_step(targets, name, T, B, tail, lay, last_only, lens, dtype):
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


def _loss(is_mse, out, targets, lengths, last_only, batch_first, grad):
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
                      None if dout is None else dout.reshape(-1))
    return loss, (None if dout is None else layout.from_time_first(dout, lay))


def cross_entropy(out, targets, lengths=None, *, last_only=False, batch_first=False,
                  grad=True):
    """Softmax cross-entropy of logits `out` (T, B, O) ((B, T, O) with
    batch_first, (T, O) unbatched) against integer class ids `targets`:
    (T, B) per step, or (B,) with last_only (one label per sequence, at its
    last valid step). Targets at steps that do not count (past a length)
    are never read, so padding may hold anything (e.g. -100). Returns
    (mean loss in nats, d loss / d out or None)."""
    return _loss(False, out, targets, lengths, last_only, batch_first, grad)


def mse(out, targets, lengths=None, *, last_only=False, batch_first=False, grad=True):
    """Mean squared error of `out` (T, B, O) against real `targets` of the
    same shape, or (B, O) with last_only. The mean is over counted steps
    and the O outputs. Returns (loss, d loss / d out or None)."""
    return _loss(True, out, targets, lengths, last_only, batch_first, grad)


def softmax(z, temperature=1.0):
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
