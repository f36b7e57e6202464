"""The process-wide thread settings of the C core, and what it was built with."""
from __future__ import annotations

from clstm import _core
from clstm.checks import as_int, positive_int

__all__ = ["set_num_threads", "get_num_threads", "set_min_thread_work",
           "get_min_thread_work", "has_blas"]

_MAX_THREADS = 1024


def set_num_threads(n: int) -> None:
    """Set the number of threads clstm uses (process-wide, 1..1024).

    clstm runs its own OpenMP team and keeps BLAS single-threaded inside it,
    so this one number controls all of its compute."""
    n = positive_int(n, "n")
    if n > _MAX_THREADS:
        raise ValueError("n: expected at most %d threads, got %d" % (_MAX_THREADS, n))
    _core.set_num_threads(n)


def get_num_threads() -> int:
    """The number of threads clstm uses."""
    return _core.get_num_threads()


def set_min_thread_work(macs: int) -> None:
    """Tuning: the recurrent multiply-adds per time step (``4*B*H*H``) each
    thread must get, or fewer threads are used (default 65536; 0: use every
    thread whenever hidden_size allows). Process-wide. Small steps on many
    threads lose more to the per-step barrier than they gain, and suffer
    most when another process competes for the cores."""
    macs = as_int(macs, "macs")
    if not 0 <= macs < 2**63:
        raise ValueError("macs: expected an int in [0, 2**63), got %d" % macs)
    _core.set_min_thread_work(macs)


def get_min_thread_work() -> int:
    """See set_min_thread_work."""
    return _core.get_min_thread_work()


def has_blas() -> bool:
    """True when the C core was built with BLAS (it always is for the wheel)."""
    return _core.has_blas()
