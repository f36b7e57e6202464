"""Data-parallel training over MPI, through mpi4py (an optional extra:
``pip install 'pyclstm[mpi]'`` brings mpi4py and Open MPI's wheel).

Every rank holds the same model (same seed; `check_equal` verifies it) and
takes its shard of each global batch (`shard`). After the backward pass the
flat gradient block is combined with ONE in-place allreduce (`average_`):
no per-tensor messages, since all of clstm's gradients live in one buffer.
Every rank then applies the same optimizer step to the same numbers, so the
parameters stay equal without being sent.

    dp = DataParallel()                       # under mpirun -np N
    Trainer(model, task, distributed=dp, ...).fit()

The trainer (clstm.train) does the rest: the same global batch order on
every rank, gradients weighted by each shard's share of the loss's count,
clipping after the allreduce, the global loss, collective stop decisions,
and rank 0 alone writing files. `clstm train` uses it under mpirun.

Without mpi4py, `DataParallel()` raises a RuntimeError that says how to
install it; nothing else in clstm imports mpi4py.
"""
import os
import sys
import time
import traceback
import zlib

import numpy as np

__all__ = ["DataParallel", "mpi_available", "launched"]

INSTALL_HINT = "pip install 'pyclstm[mpi]'"


def mpi_available():
    """Whether mpi4py (and an MPI library under it) can be imported."""
    try:
        from mpi4py import MPI  # noqa: F401
    except ImportError:
        return False
    return True


def launched(environ=None):
    """(rank, size) of this process among those an MPI launcher started
    (Open MPI's mpirun, MPICH's Hydra), read from the launcher's environment
    without initialising MPI; (0, 1) when not under a launcher."""
    env = os.environ if environ is None else environ
    for rank, size in (("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
                       ("PMI_RANK", "PMI_SIZE")):
        try:
            return max(0, int(env.get(rank, 0))), max(1, int(env[size]))
        except (KeyError, ValueError):
            pass
    return 0, 1


class DataParallel:
    """One process's part in a data-parallel job (comm: an mpi4py
    communicator, default COMM_WORLD). `comm_seconds` accumulates the time
    spent in the step's allreduces (waiting for the other ranks included)."""

    def __init__(self, comm=None):
        try:
            from mpi4py import MPI
        except ImportError as e:
            raise RuntimeError("data-parallel training needs mpi4py and an MPI library: "
                               "%s (%s)" % (INSTALL_HINT, e)) from None
        self._MPI = MPI
        self.comm = MPI.COMM_WORLD if comm is None else comm
        self.rank, self.size = self.comm.Get_rank(), self.comm.Get_size()
        self.comm_seconds = 0.0

    @property
    def local_size(self):
        """How many ranks of this job share this host (MPI-3 shared-memory
        split): a thread budget is the host's cores divided by it."""
        node = self.comm.Split_type(self._MPI.COMM_TYPE_SHARED)
        try:
            return node.Get_size()
        finally:
            node.Free()

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
        t = time.perf_counter()
        self.comm.Allreduce(self._MPI.IN_PLACE, buf, op=self._MPI.SUM)
        self.comm_seconds += time.perf_counter() - t
        buf /= buf.dtype.type(total)
        return buf

    def sum(self, values):
        """The elementwise sum over ranks of a few float64 numbers (one
        allreduce; the trainer's loss sum and stop flags)."""
        a = np.array(values, dtype=np.float64)
        t = time.perf_counter()
        self.comm.Allreduce(self._MPI.IN_PLACE, a, op=self._MPI.SUM)
        self.comm_seconds += time.perf_counter() - t
        return a

    def broadcast(self, obj):
        """Rank 0's obj on every rank (a small picklable object)."""
        return self.comm.bcast(obj, root=0)

    def gather_rows(self, a):
        """On rank 0: the ranks' arrays concatenated along axis 1 in rank
        order (the batch axis of an (L, B, H) state; None contributes
        nothing; None when all are); None on the other ranks."""
        parts = self.comm.gather(a, root=0)
        parts = [p for p in parts or () if p is not None]
        return np.concatenate(parts, axis=1) if parts else None

    def agree(self, error):
        """Collective: every rank passes its set-up error (an exception or
        None); every rank gets the first failing rank's exception (rank 0's
        own when it failed) or None, so all ranks stop together or go on."""
        errors = self.comm.allgather(None if error is None else (type(error), str(error)))
        for e in errors:
            if e is not None:
                return error if error is not None and self.rank == 0 else e[0](e[1])
        return None

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

    def abort(self, what, exc=None, code=1):
        """End the whole job: write what happened (and exc's traceback) to
        this process's real stderr, then MPI_Abort, which makes the launcher
        kill every rank. A rank that merely raised would otherwise leave the
        others waiting in their next collective for ever."""
        lines = ["clstm: rank %d of %d: %s" % (self.rank, self.size, what)]
        if exc is not None:
            lines.append("".join(traceback.format_exception(type(exc), exc,
                                                            exc.__traceback__)).rstrip())
        lines.append("clstm: rank %d: aborting the MPI job" % self.rank)
        try:
            sys.__stderr__.write("\n".join(lines) + "\n")
            sys.__stderr__.flush()
        finally:
            self.comm.Abort(code)
