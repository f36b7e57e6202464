"""Optimizers over flat parameter vectors, computed in C (src/optim.c) with
torch.optim's formulas: SGD (momentum, dampening, Nesterov, weight decay),
Adam and AdamW.

An optimizer takes a clstm.LSTM (its flat parameter and gradient blocks) or
a list of (params, grads) pairs of 1-D C-contiguous float arrays of one
dtype, and updates the parameters in place on step()."""
import numpy as np

from clstm import _core

__all__ = ["SGD", "Adam", "AdamW"]


def _pairs(target):
    if hasattr(target, "flat_parameters") and hasattr(target, "flat_grads"):
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


def _nonneg(v, name):
    v = float(v)
    if not 0.0 <= v < float("inf"):
        raise ValueError("%s: expected a finite number >= 0, got %r" % (name, v))
    return v


def _unit(v, name):
    v = float(v)
    if not 0.0 <= v < 1.0:
        raise ValueError("%s: expected a number in [0, 1), got %r" % (name, v))
    return v


class SGD:
    """torch.optim.SGD's update: d = g + weight_decay * p; with momentum,
    buf = momentum * buf + (1 - dampening) * d (buf = d on the first step)
    and d = buf (or d + momentum * buf with nesterov); p -= lr * d."""

    def __init__(self, params, lr=0.01, momentum=0.0, dampening=0.0, weight_decay=0.0,
                 nesterov=False):
        self.pairs = _pairs(params)
        self.lr = _nonneg(lr, "lr")
        self.momentum = _nonneg(momentum, "momentum")
        self.dampening = _unit(dampening, "dampening")
        self.weight_decay = _nonneg(weight_decay, "weight_decay")
        self.nesterov = bool(nesterov)
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov: needs momentum > 0")
        self.velocity = [np.zeros_like(p) if self.momentum else None for p, _ in self.pairs]
        self.steps = 0

    def step(self):
        for (p, g), buf in zip(self.pairs, self.velocity):
            _core.sgd_step(p, g, buf, self.steps == 0, self.lr, self.momentum, self.dampening,
                           self.weight_decay, self.nesterov)
        self.steps += 1


class Adam:
    """torch.optim.Adam's update (AdamW's with decoupled=True): bias-corrected
    first and second moments; weight decay added to the gradient (Adam) or
    shrinking the parameters by lr * weight_decay (AdamW)."""

    decoupled = False

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0):
        self.pairs = _pairs(params)
        self.lr = _nonneg(lr, "lr")
        self.betas = (_unit(betas[0], "betas[0]"), _unit(betas[1], "betas[1]"))
        self.eps = float(eps)
        if not 0.0 < self.eps < float("inf"):
            raise ValueError("eps: expected a finite number > 0, got %r" % self.eps)
        self.weight_decay = _nonneg(weight_decay, "weight_decay")
        self.m = [np.zeros_like(p) for p, _ in self.pairs]
        self.v = [np.zeros_like(p) for p, _ in self.pairs]
        self.steps = 0

    def step(self):
        self.steps += 1
        for (p, g), m, v in zip(self.pairs, self.m, self.v):
            _core.adam_step(p, g, m, v, self.steps, self.lr, self.betas[0], self.betas[1],
                            self.eps, self.weight_decay, self.decoupled)


class AdamW(Adam):
    """Adam with decoupled weight decay (torch.optim.AdamW; its default
    weight_decay is 0.01)."""

    decoupled = True

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
        super().__init__(params, lr, betas, eps, weight_decay)
