"""Models as files: clstm.save / clstm.load in the safetensors format, and
as bytes in memory: clstm.save_bytes / clstm.load_bytes (the same file's
bytes, with no file system involved; checkpoints hold a model this way).

The C library reads and writes the file itself (include/clstm.h,
clstm_save / clstm_load): the tensors are torch.nn.LSTM's names and shapes
(so ``safetensors.torch.load_file`` + ``torch.nn.LSTM.load_state_dict``
reads a clstm file, for torch's features), and ``__metadata__`` holds the
configuration. A file written by ``safetensors.torch.save_file`` from a
torch.nn.LSTM state_dict loads too; missing settings take their defaults
(sizes are read off the tensor shapes).

atomic_write is the one atomic file write of the Python package (the C
library has its own for model files): checkpoints, logs and ONNX files use it.
"""
from __future__ import annotations

import os
import tempfile
from typing import IO, Any, Callable, Optional, Union

from clstm import _core
from clstm.model import LSTM, Model

__all__ = ["save", "load", "save_bytes", "load_bytes", "atomic_write"]

# what a path argument may be (os.fspath takes it)
PathLike = Union[str, "os.PathLike[str]"]


def _fspath(path: PathLike) -> str:
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError("path: expected a str or os.PathLike, got %s"
                        % type(path).__name__) from None


def _check_model(model: object) -> None:
    if not isinstance(model, LSTM):
        raise TypeError("model: expected a clstm.LSTM, got %s" % type(model).__name__)


def save(model: LSTM, path: PathLike) -> None:
    """Write ``model`` (a clstm.LSTM or clstm.Model) to ``path`` (str or os.PathLike).

    The write is atomic: a temporary file in the same directory is written,
    synced and renamed over ``path``, so a failed save leaves any previous
    file untouched. Raises FileNotFoundError when the directory does not
    exist, OSError for any other failure to write."""
    _check_model(model)
    path = _fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(2, "cannot save the model: no such directory %r"
                                % directory, path)
    model._m.save(path)


def load(path: PathLike, *, batch_first: bool = False) -> LSTM:
    """The model saved at ``path`` (str or os.PathLike): a clstm.LSTM for a
    bare LSTM, a clstm.Model when the file has an input encoding or a head
    (and then its vocabulary), with every setting of the saved model (sizes,
    bidirectional, reverse, proj_size, dropout, peepholes, input_forget, clip,
    gate_activation, gate_alpha, gate_beta, dtype)
    and the default backend.

    Raises FileNotFoundError for a missing file, IsADirectoryError for a
    directory, OSError when it cannot be read, and ValueError naming the
    problem when the file is not a valid clstm model."""
    path = _fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(2, "no such model file", path)
    if os.path.isdir(path):
        raise IsADirectoryError(21, "expected a model file, got a directory", path)
    return _wrap(_core.load(path), batch_first)


def _wrap(core: _core.Model, batch_first: bool) -> LSTM:

    """The user-facing class for a loaded _core.Model: LSTM when bare,
    Seq2Seq for an encoder-decoder, else Model."""
    c = core.config()
    if c["target_vocab"]:
        from clstm.seq2seq import Seq2Seq
        return Seq2Seq._from_core(core, batch_first=batch_first)
    bare = c["encoding"] == 0 and c["output_size"] == 0
    return (LSTM if bare else Model)._from_core(core, batch_first=batch_first)


def save_bytes(model: LSTM) -> bytes:
    """The bytes of ``model``'s file: exactly what clstm.save writes."""
    _check_model(model)
    return model._m.save_bytes()


def load_bytes(data: Any, *, batch_first: bool = False) -> LSTM:
    """The model held in ``data`` (bytes, bytearray, memoryview or a uint8
    array: a model file's contents), as clstm.load returns it. Raises
    TypeError when data is not a contiguous buffer, ValueError naming the
    problem when its bytes are not a valid clstm model."""
    try:
        view = memoryview(data)
    except TypeError:
        raise TypeError("data: expected bytes (a model file's contents), got %s"
                        % type(data).__name__) from None
    if not view.c_contiguous:
        raise ValueError("data: expected a contiguous buffer")
    return _wrap(_core.load_bytes(view.cast("B")), batch_first)


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], Any], mode: Optional[int] = None
                 ) -> None:
    """Call write(f) on a binary file that replaces ``path`` only once it is
    whole: a temporary file beside path is written, synced and renamed over
    it, then the directory is synced (best effort). On any failure the
    temporary file is removed and a previous file at path is untouched.
    mode: the new file's permission bits (None: the temporary file's own,
    0o600)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=os.path.basename(path) + ".", suffix=".tmp",
                               dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
