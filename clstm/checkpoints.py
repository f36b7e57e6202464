"""Checkpoints: a training run's complete state in one file, written
atomically and read back with every problem named.

The file is an .npz archive (no pickle) of:
    "model"   uint8: the model's safetensors file, byte for byte (clstm.save_bytes)
    "meta"    uint8: UTF-8 JSON, {"format": "clstm-checkpoint-1", ...the run's
              position, settings, RNG states and history (the Trainer's)}
    others    the run's arrays (the optimizer's "opt.*" buffers, the epoch's
              batch "order", the carried "state_h"/"state_c")
"""
from __future__ import annotations

import json
import os
from typing import Any, Mapping

import numpy as np

from clstm.data import DataError, file_kind
from clstm.io import PathLike, atomic_write, load_bytes, save_bytes
from clstm.model import LSTM

__all__ = ["CHECKPOINT_FORMAT", "save_checkpoint", "load_checkpoint"]

CHECKPOINT_FORMAT = "clstm-checkpoint-1"


def save_checkpoint(path: PathLike, model: LSTM, arrays: Mapping[str, np.ndarray[Any, Any]],
                    meta: Mapping[str, Any]) -> None:
    """Write `model`, the run's `arrays` (name -> ndarray) and `meta` (a
    JSON-able dict) to path, atomically: a failed write leaves a previous
    checkpoint as it was."""
    arrays = dict(arrays, model=np.frombuffer(save_bytes(model), np.uint8))
    meta = dict(format=CHECKPOINT_FORMAT, **meta)
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8)
    # (mypy takes **arrays for savez's allow_pickle= too; the names are the run's arrays)
    atomic_write(path, lambda f: np.savez(f, **arrays))  # type: ignore[arg-type]


# what Trainer.resume reads of a checkpoint's meta (besides format)
META_KEYS = ("step", "epoch", "k", "n_batches", "best_val", "bad_evals", "history", "rng",
             "dropout_rng", "opt_scalars", "window", "settings")


def load_checkpoint(path: PathLike
                    ) -> tuple[LSTM, dict[str, np.ndarray[Any, Any]], dict[str, Any]]:
    """(model, arrays, meta) from a checkpoint written by Trainer; DataError
    naming the problem for anything that is not one."""
    if not os.path.isfile(path):
        raise DataError("%s: no such checkpoint file" % path)
    kind = file_kind(path)
    if kind == "safetensors":
        raise DataError("%s: is a model file, not a checkpoint (a checkpoint is the .ckpt.npz "
                        "file that training writes beside the model)" % path)
    if kind != "npz":
        raise DataError("%s: not a clstm checkpoint (%s)" % (
            path, "the file is empty" if os.path.getsize(path) == 0 else "not an .npz archive"))
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise DataError("%s: not a clstm checkpoint (it holds Python objects that need "
                            "pickle; refusing to load it)" % path) from None
        raise DataError("%s: a truncated or corrupted checkpoint (%s)" % (path, e)) from None
    except Exception as e:  # any other damage to the archive: one message
        raise DataError("%s: a truncated or corrupted checkpoint (%s)" % (path, e)) from None
    try:
        meta = json.loads(bytes(arrays.pop("meta")).decode("utf-8"))
        if not isinstance(meta, dict):
            raise ValueError("its meta is a JSON %s, not an object" % type(meta).__name__)
        if meta.get("format") != CHECKPOINT_FORMAT:
            raise ValueError("format %r" % meta.get("format"))
        missing = [k for k in META_KEYS if k not in meta]
        if missing:
            raise ValueError("its meta lacks %s" % ", ".join(missing))
        blob = arrays.pop("model")
    except (KeyError, ValueError) as e:
        raise DataError("%s: not a clstm checkpoint (%s)" % (path, e)) from None
    try:
        model = load_bytes(blob)
    except ValueError as e:
        raise DataError("%s: the checkpoint's model is invalid (%s)" % (path, e)) from None
    return model, arrays, meta
