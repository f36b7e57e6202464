"""Optimizers over flat parameter vectors, computed in C (src/optim.c) with
torch.optim's formulas: SGD (momentum, dampening, Nesterov, weight decay),
Adam and AdamW.

An optimizer takes a clstm.LSTM (its flat parameter and gradient blocks) or
a list of (params, grads) pairs of 1-D C-contiguous float arrays of one
dtype, and updates the parameters in place on step()."""
from __future__ import annotations

import contextlib
from typing import (TYPE_CHECKING, Any, Callable, ContextManager, Iterable, Mapping, Optional,
                    Sequence, Union)


import numpy as np
import numpy.typing as npt


from clstm import _core
from clstm._typing import FloatArray

__all__ = ["SGD", "Adam", "AdamW", "clip_grad_norm", "LRSchedule", "create"]

if TYPE_CHECKING:
    from clstm.model import LSTM

# what an optimizer updates: a model, or (params, grads) pairs of 1-D arrays
Params = Union["LSTM", "Iterable[tuple[FloatArray, FloatArray]]"]


def _pairs(target: Params) -> list[tuple[FloatArray, FloatArray]]:
    if hasattr(target, "flat_parameters") and hasattr(target, "flat_grads"):
        if getattr(target, "quantized", False):
            raise ValueError("params: the model is quantized (int8) and runs inference only; "
                             "optimize its float32 original, then quantize it again")
        return [(target.flat_parameters, target.flat_grads)]
    pairs = list(target)
    for i, pair in enumerate(pairs):
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise TypeError("params[%d]: expected a (params, grads) pair of arrays" % i)
        p, g = pair
        for a, what in ((p, "params"), (g, "grads")):
            if (not isinstance(a, np.ndarray) or a.ndim != 1 or not a.flags.c_contiguous
                    or a.dtype not in (np.float32, np.float64)):
                raise TypeError("params[%d]: %s must be a 1-D C-contiguous float32 or "
                                "float64 array" % (i, what))
        if not p.flags.writeable:
            raise ValueError("params[%d]: the parameter array is read-only" % i)
        if p.shape != g.shape or p.dtype != g.dtype:
            raise ValueError("params[%d]: params %s %s and grads %s %s differ"
                             % (i, p.shape, p.dtype, g.shape, g.dtype))
    if not pairs:
        raise ValueError("params: expected at least one (params, grads) pair")
    return pairs


def _writes(target: Params) -> Callable[[], ContextManager[Any]]:
    """The guard of a step's parameter write: a model's (RuntimeError while
    another thread computes with it), or none for bare (params, grads)."""
    if hasattr(target, "_writing"):
        return lambda: target._writing("optimizer step")
    return contextlib.nullcontext


def _nonneg(v: float, name: str) -> float:
    v = float(v)
    if not 0.0 <= v < float("inf"):
        raise ValueError("%s: expected a finite number >= 0, got %r" % (name, v))
    return v


def _unit(v: float, name: str) -> float:
    v = float(v)
    if not 0.0 <= v < 1.0:
        raise ValueError("%s: expected a number in [0, 1), got %r" % (name, v))
    return v


class SGD:
    """torch.optim.SGD's update: d = g + weight_decay * p; with momentum,
    buf = momentum * buf + (1 - dampening) * d (buf = d on the first step)
    and d = buf (or d + momentum * buf with nesterov); p -= lr * d."""

    def __init__(self, params: Params, lr: float = 0.01, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0,
                 nesterov: bool = False) -> None:
        self.pairs, self._guard = _pairs(params), _writes(params)
        self.lr = _nonneg(lr, "lr")
        self.momentum = _nonneg(momentum, "momentum")
        self.dampening = _unit(dampening, "dampening")
        self.weight_decay = _nonneg(weight_decay, "weight_decay")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov: needs momentum > 0")
        self.velocity = [np.zeros_like(p) if self.momentum else None for p, _ in self.pairs]
        self.steps = 0

    def state_dict(self) -> dict[str, Any]:
        """{name: array or number}: everything step() depends on besides
        the parameters (copies)."""
        d = {"steps": self.steps, "lr": self.lr}
        for i, buf in enumerate(self.velocity):
            if buf is not None:
                d["velocity_%d" % i] = buf.copy()
        return d

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        _load_buffers(self, d, [("velocity", self.velocity)])

    def step(self) -> None:
        with self._guard():
            for (p, g), buf in zip(self.pairs, self.velocity):
                _core.sgd_step(p, g, buf, self.steps == 0, self.lr, self.momentum,
                               self.dampening, self.weight_decay, self.nesterov)
        self.steps += 1


class Adam:
    """torch.optim.Adam's update (AdamW's with decoupled=True): bias-corrected
    first and second moments; weight decay added to the gradient (Adam) or
    shrinking the parameters by lr * weight_decay (AdamW)."""

    decoupled = False

    def __init__(self, params: Params, lr: float = 0.001,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.0) -> None:
        self.pairs, self._guard = _pairs(params), _writes(params)
        self.lr = _nonneg(lr, "lr")
        self.betas = (_unit(betas[0], "betas[0]"), _unit(betas[1], "betas[1]"))
        self.eps = float(eps)
        if not 0.0 < self.eps < float("inf"):
            raise ValueError("eps: expected a finite number > 0, got %r" % self.eps)
        self.weight_decay = _nonneg(weight_decay, "weight_decay")
        self.m = [np.zeros_like(p) for p, _ in self.pairs]
        self.v = [np.zeros_like(p) for p, _ in self.pairs]
        self.steps = 0

    def state_dict(self) -> dict[str, Any]:
        """{name: array or number}: everything step() depends on besides
        the parameters (copies)."""
        d = {"steps": self.steps, "lr": self.lr}
        for i, (m, v) in enumerate(zip(self.m, self.v)):
            d["m_%d" % i], d["v_%d" % i] = m.copy(), v.copy()
        return d

    def load_state_dict(self, d: Mapping[str, Any]) -> None:
        _load_buffers(self, d, [("m", self.m), ("v", self.v)])

    def step(self) -> None:
        with self._guard():
            for (p, g), m, v in zip(self.pairs, self.m, self.v):
                _core.adam_step(p, g, m, v, self.steps + 1, self.lr, self.betas[0],
                                self.betas[1], self.eps, self.weight_decay, self.decoupled)
        self.steps += 1


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW; its default
    weight_decay is 0.01)."""

    decoupled = True

    def __init__(self, params: Params, lr: float = 0.001,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 0.01) -> None:
        super().__init__(params, lr, betas, eps, weight_decay)


def _load_buffers(opt: Union[SGD, Adam], d: Mapping[str, Any],
                  buffers: list[tuple[str, Sequence[Optional[FloatArray]]]]) -> None:
    """Restore steps, lr and the named per-pair buffers from a state_dict,
    checking every shape and dtype before anything is written."""
    staged = []
    for prefix, bufs in buffers:
        for i, buf in enumerate(bufs):
            if buf is None:
                continue
            key = "%s_%d" % (prefix, i)
            if key not in d:
                raise KeyError("state_dict: missing %r" % key)
            a = np.asarray(d[key])
            if a.shape != buf.shape:
                raise ValueError("state_dict[%r]: expected shape %s, got %s"
                                 % (key, buf.shape, a.shape))
            staged.append((buf, a))
    steps = int(d["steps"])
    if steps < 0:
        raise ValueError("state_dict['steps']: expected >= 0, got %d" % steps)
    lr = _nonneg(d.get("lr", opt.lr), "state_dict['lr']")
    for buf, a in staged:
        buf[...] = a
    opt.steps, opt.lr = steps, lr


def _sum_squares(a: npt.ArrayLike) -> float:
    """sum(a**2) accumulated in float64, in C (two whole float64 copies took
    8 ms of a 3.7M-parameter step)."""
    a = np.asarray(a).reshape(-1)
    if a.dtype not in (np.float32, np.float64):
        a = a.astype(np.float64)
    return _core.sum_squares(np.ascontiguousarray(a)) if a.size else 0.0


def clip_grad_norm(grads: Union[LSTM, Iterable[FloatArray]], max_norm: float) -> float:
    """Scale the gradient(s) in place so that their global L2 norm is at most
    max_norm (torch.nn.utils.clip_grad_norm_); returns the norm before
    clipping (in float64). grads: a model (its flat_grads) or a list of
    arrays. A non-finite norm is returned without scaling anything: the
    caller decides (the trainer stops)."""
    arrays = [grads.flat_grads] if hasattr(grads, "flat_grads") else list(grads)
    max_norm = float(max_norm)
    if not max_norm > 0:
        raise ValueError("max_norm: expected a number > 0, got %r" % max_norm)
    total = float(np.sqrt(sum(_sum_squares(a) for a in arrays)))
    if np.isfinite(total) and total > max_norm:
        scale = max_norm / (total + 1e-6)
        for a in arrays:
            a *= a.dtype.type(scale)
    return total


class LRSchedule:
    """The learning rate at each step (1-based) of a run of total_steps:
    kind "constant"; "step" (multiplied by gamma every step_size steps);
    "cosine" (from base_lr down to min_lr over the steps after warm-up).
    warmup > 0 ramps linearly from base_lr/warmup to base_lr over the first
    warmup steps, for every kind. progress (0..1), where given, is how much
    of the run a clock says has passed (the Trainer's max_seconds): the
    cosine goes as far as the larger of it and the steps' share, so that a
    run cut by the clock ends annealed."""

    KINDS = ("constant", "step", "cosine")

    def __init__(self, base_lr: float, kind: str = "constant", total_steps: int = 1,
                 warmup: int = 0, step_size: int = 1000, gamma: float = 0.5,
                 min_lr: float = 0.0) -> None:
        if kind not in self.KINDS:
            raise ValueError("kind: expected one of %s, got %r" % (", ".join(self.KINDS), kind))
        self.base_lr = _nonneg(base_lr, "base_lr")
        self.kind = kind
        self.total_steps = max(1, int(total_steps))
        self.warmup = int(warmup)
        if self.warmup < 0:
            raise ValueError("warmup: expected >= 0, got %d" % self.warmup)
        self.step_size = int(step_size)
        if self.step_size < 1:
            raise ValueError("step_size: expected >= 1, got %d" % self.step_size)
        self.gamma = _nonneg(gamma, "gamma")
        self.min_lr = _nonneg(min_lr, "min_lr")

    def __call__(self, step: int, progress: float = 0.0) -> float:
        step = max(1, int(step))
        if step <= self.warmup:
            return self.base_lr * step / self.warmup
        if self.kind == "constant":
            return self.base_lr
        if self.kind == "step":
            return float(self.base_lr * self.gamma ** ((step - 1) // self.step_size))
        span = max(1, self.total_steps - self.warmup)
        frac = min(1.0, max((step - self.warmup) / span, float(progress)))
        return float(self.min_lr + 0.5 * (self.base_lr - self.min_lr) * (1 + np.cos(np.pi * frac)))


def create(name: str, target: Params, *, lr: float, weight_decay: float = 0.0,
           momentum: float = 0.9, nesterov: bool = False) -> Union[SGD, Adam]:
    """The optimizer called `name` ("sgd", "adam" or "adamw") over target,
    with the settings that apply to it (momentum and nesterov: SGD only)."""
    if name == "sgd":
        return SGD(target, lr=lr, momentum=momentum, weight_decay=weight_decay,
                   nesterov=nesterov)
    if name == "adam":
        return Adam(target, lr=lr, weight_decay=weight_decay)
    if name == "adamw":
        return AdamW(target, lr=lr, weight_decay=weight_decay)
    raise ValueError("optimizer: expected 'sgd', 'adam' or 'adamw', got %r" % (name,))
