"""Sampling from a trained model: text from a character model."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from clstm import losses

if TYPE_CHECKING:
    from clstm.model import Model

__all__ = ["generate_text"]


def generate_text(model: Model, prime: str = "", length: int = 200, temperature: float = 1.0,
                  seed: Any = 0) -> str:
    """Text from a character model: the prime is fed through the model, then
    `length` characters are drawn one step at a time from softmax(logits /
    temperature) (temperature 0: the most likely one, ties to the lowest
    id) with a NumPy generator seeded by `seed`. Returns prime + the new
    text. An empty prime starts from the zero state and the vocabulary's
    first character."""
    vocab = model.vocab
    if vocab is None or not model.softmax:
        raise ValueError("model: expected a character model (a vocabulary and a softmax head)")
    temperature = float(temperature)
    if not (temperature >= 0 and math.isfinite(temperature)):
        raise ValueError("temperature: expected a finite number >= 0, got %r" % temperature)
    length = int(length)
    if length < 0:
        raise ValueError("length: expected >= 0, got %d" % length)
    rng = np.random.default_rng(seed)
    ids = model.encode(prime) if prime else np.zeros(1, np.int32)
    state = model.initial_state(1)
    out, state = model.forward(ids[:, None], state, train=False)
    logits = out[-1, 0]
    new = []
    for _ in range(length):
        if temperature == 0:
            nxt = int(np.argmax(logits))
        else:
            p = losses.softmax(logits.astype(np.float64), temperature)
            nxt = int(rng.choice(len(p), p=p / p.sum()))
        new.append(nxt)
        logits, state = model.step(np.array([nxt], np.int32), state)
        logits = logits[0]
    return (prime if prime else vocab[0]) + model.decode(new)
