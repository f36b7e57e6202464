"""Models as files: clstm.save / clstm.load in the safetensors format.

The C library reads and writes the file itself (include/clstm.h,
clstm_save / clstm_load): the tensors are torch.nn.LSTM's names and shapes
(so ``safetensors.torch.load_file`` + ``torch.nn.LSTM.load_state_dict``
reads a clstm file, for torch's features), and ``__metadata__`` holds the
configuration. A file written by ``safetensors.torch.save_file`` from a
torch.nn.LSTM state_dict loads too; missing settings take their defaults
(sizes are read off the tensor shapes).
"""
import os

from clstm import _core
from clstm.lstm import LSTM
from clstm.model import Model

__all__ = ["save", "load"]


def _fspath(path):
    try:
        return os.fspath(path)
    except TypeError:
        raise TypeError("path: expected a str or os.PathLike, got %s"
                        % type(path).__name__) from None


def save(model, path):
    """Write ``model`` (a clstm.LSTM or clstm.Model) to ``path`` (str or os.PathLike).

    The write is atomic: a temporary file in the same directory is written,
    synced and renamed over ``path``, so a failed save leaves any previous
    file untouched. Raises FileNotFoundError when the directory does not
    exist, OSError for any other failure to write."""
    if not isinstance(model, LSTM):
        raise TypeError("model: expected a clstm.LSTM, got %s" % type(model).__name__)
    path = _fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise FileNotFoundError(2, "cannot save the model: no such directory %r"
                                % directory, path)
    model._m.save(path)


def load(path, *, batch_first=False):
    """The model saved at ``path`` (str or os.PathLike): a clstm.LSTM for a
    bare LSTM, a clstm.Model when the file has an input encoding or a head
    (and then its vocabulary), with every setting of the saved model (sizes,
    bidirectional, proj_size, dropout, peepholes, input_forget, clip, dtype)
    and the default backend.

    Raises FileNotFoundError for a missing file, IsADirectoryError for a
    directory, OSError when it cannot be read, and ValueError naming the
    problem when the file is not a valid clstm model."""
    path = _fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(2, "no such model file", path)
    if os.path.isdir(path):
        raise IsADirectoryError(21, "expected a model file, got a directory", path)
    core = _core.load(path)
    c = core.config()
    bare = c["encoding"] == 0 and c["output_size"] == 0
    return (LSTM if bare else Model)._from_core(core, batch_first=batch_first)
