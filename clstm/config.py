"""A model's settings: the one list of their names, their translation to
and from the C config (include/clstm.h, clstm_config), and the user
metadata that a model file keeps beside them."""
import secrets
from collections.abc import MutableMapping

import numpy as np

from clstm import _core

__all__ = ["SETTINGS", "RESERVED_METADATA", "ENCODINGS", "GATES", "settings_of", "core_settings",
           "Metadata"]

# A model's settings: clstm_config's fields (bar the backend, a run-time
# choice) and the config keys of a model file's __metadata__.
SETTINGS = ("input_size", "hidden_size", "num_layers", "proj_size", "bidirectional",
            "dropout", "peepholes", "input_forget", "clip", "dtype", "encoding",
            "vocab_size", "output_size", "softmax", "reverse", "gate_activation",
            "gate_alpha", "gate_beta")
# what else a model file's __metadata__ holds: user metadata may not use these keys
RESERVED_METADATA = frozenset(SETTINGS + ("format", "format_version", "vocab"))
_MAX_METADATA, _MAX_KEY_BYTES, _MAX_VALUE_BYTES = 48, 256, 65536

# gate activations, indexed by clstm_config.gate_activation (CLSTM_GATE_*)
GATES = ("sigmoid", "hard_sigmoid")
ENCODINGS = dict(_core.ENCODINGS)  # None, "onehot", "embedding" -> clstm_encoding
_ENCODING_NAMES = {v: k for k, v in ENCODINGS.items()}


def core_settings(model):
    """{setting: value} of `model` (an object with the SETTINGS as
    attributes) as clstm_config holds them."""
    s = {k: getattr(model, k) for k in SETTINGS}
    s.update(dtype=_core.DTYPES[s["dtype"].name], encoding=ENCODINGS[s["encoding"]],
             clip=s["clip"] or 0.0, gate_activation=GATES.index(s["gate_activation"]))
    return s


def settings_of(core, *, batch_first=False):
    """The attributes of a model around `core` (a _core.Model, e.g. from
    _core.load), read from its C config: SETTINGS, num_directions, the
    default backend and a fresh ``seed`` (used for dropout masks only)."""
    c = core.config()
    s = {k: c[k] for k in SETTINGS if k in c}
    s.update(dtype=np.dtype(np.float64 if c["float64"] else np.float32),
             clip=c["clip"] if c["clip"] > 0 else None,
             encoding=_ENCODING_NAMES[c["encoding"]],
             gate_activation=GATES[c["gate_activation"]],
             num_directions=2 if c["bidirectional"] else 1, seed=secrets.randbits(64),
             batch_first=bool(batch_first), backend="default")
    return s


class Metadata(MutableMapping):
    """A model's user metadata: str -> str pairs stored in the C model, saved
    with it and restored by clstm.load (at most 48; keys 1..256 bytes of
    UTF-8 and not a config key; values up to 64 KiB; no NUL characters)."""

    def __init__(self, core):
        self._core = core

    def __getitem__(self, key):
        for k, v in self._core.metadata_items():
            if k == key:
                return v
        raise KeyError(key)

    def __setitem__(self, key, value):
        if not isinstance(key, str) or not isinstance(value, str):
            raise TypeError("metadata: keys and values must be str, got %s -> %s"
                            % (type(key).__name__, type(value).__name__))
        kb, vb = key.encode("utf-8", "strict"), value.encode("utf-8", "strict")
        if not 1 <= len(kb) <= _MAX_KEY_BYTES or "\0" in key:
            raise ValueError("metadata: key %r must be 1..%d bytes of UTF-8 without NUL"
                             % (key, _MAX_KEY_BYTES))
        if key in RESERVED_METADATA:
            raise ValueError("metadata: %r is a config key of the model file, not user "
                             "metadata" % key)
        if len(vb) > _MAX_VALUE_BYTES or "\0" in value:
            raise ValueError("metadata[%r]: value must be at most %d bytes without NUL"
                             % (key, _MAX_VALUE_BYTES))
        if key not in self and len(self) >= _MAX_METADATA:
            raise ValueError("metadata: at most %d entries" % _MAX_METADATA)
        self._core.set_metadata(key, value)

    def __delitem__(self, key):
        if key not in self:
            raise KeyError(key)
        self._core.set_metadata(key, None)

    def __iter__(self):
        return iter([k for k, _ in self._core.metadata_items()])

    def __len__(self):
        return len(self._core.metadata_items())

    def __repr__(self):
        return "Metadata(%r)" % dict(self._core.metadata_items())
