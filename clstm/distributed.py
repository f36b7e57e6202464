"""Data-parallel training over MPI, through mpi4py (an optional extra:
``pip install 'pyclstm[mpi]'`` brings mpi4py and Open MPI's wheel).

Every rank holds the same model (same seed; `check_equal` verifies it) and
takes its shard of each global batch (`shard`). After the backward pass the
flat gradient block is combined with ONE in-place allreduce (`average_`):
no per-tensor messages, since all of clstm's gradients live in one buffer.
Every rank then applies the same optimizer step to the same numbers, so the
parameters stay equal without being sent.

Without mpi4py, `DataParallel()` raises a RuntimeError that says how to
install it; nothing else in clstm imports this module.

This is the first part of the MPI issue: the trainer and the CLI do not use
it yet.
"""
import zlib

import numpy as np

__all__ = ["DataParallel", "mpi_available"]


def mpi_available():
    """Whether mpi4py (and an MPI library under it) can be imported."""
    try:
        from mpi4py import MPI  # noqa: F401
    except ImportError:
        return False
    return True


class DataParallel:
    """One process's part in a data-parallel job (comm: an mpi4py
    communicator, default COMM_WORLD)."""

    def __init__(self, comm=None):
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise RuntimeError("data-parallel training needs mpi4py and an MPI library: "
                               "pip install 'pyclstm[mpi]' (%s)" % e) from None
        self._MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()

    def shard(self, n):
        """This rank's slice of a global batch of n rows: contiguous, sizes
        differing by at most one, in rank order (an empty slice when n <
        size)."""
        if not isinstance(n, (int, np.integer)) or n < 0:
            raise ValueError("n: expected a batch size >= 0, got %r" % (n,))
        return slice(self.rank * int(n) // self.size, (self.rank + 1) * int(n) // self.size)

    def average_(self, buf, weight=1.0, total=None):
        """In place, on every rank: buf = sum over ranks of weight_r * buf_r,
        divided by total (default: the number of ranks). With weight = this
        rank's share of the loss's count (e.g. its counted steps) and total
        = the global count, a per-rank mean-loss gradient becomes the
        global batch's. buf: a 1-D C-contiguous float32/float64 array (the
        flat gradient block); one MPI allreduce."""
        if (not isinstance(buf, np.ndarray) or buf.ndim != 1 or not buf.flags.c_contiguous
                or not buf.flags.writeable or buf.dtype not in (np.float32, np.float64)):
            raise TypeError("buf: expected a writable 1-D C-contiguous float32 or float64 "
                            "array (e.g. model.flat_grads)")
        total = float(self.size if total is None else total)
        if not total > 0:
            raise ValueError("total: expected a count > 0, got %r" % (total,))
        if weight != 1.0:
            buf *= buf.dtype.type(weight)
        self.comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)
        buf /= buf.dtype.type(total)
        return buf

    def check_equal(self, buf, what="parameters"):
        """RuntimeError on every rank unless buf holds the same bytes on all
        of them (compared by CRC-32 and size, gathered from every rank)."""
        a = np.ascontiguousarray(buf)
        mine = (zlib.crc32(a.view(np.uint8)), a.nbytes)
        every = self.comm.allgather(mine)
        bad = [r for r, v in enumerate(every) if v != every[0]]
        if bad:
            raise RuntimeError("%s differ across ranks: ranks %s differ from rank 0 (start "
                               "every rank from the same seed or checkpoint)" % (what, bad))
