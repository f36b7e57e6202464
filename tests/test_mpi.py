"""Data-parallel training over MPI (clstm.distributed, the Trainer's
distributed=, `clstm train` under mpirun): 2 ranks on one machine over
loopback. Skips cleanly without mpi4py or mpirun."""
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import clstm
from clstm import distributed

HERE = os.path.dirname(os.path.abspath(__file__))


def mpirun():
    exe = shutil.which("mpirun") or shutil.which("mpirun", path=os.path.dirname(sys.executable))
    if not distributed.mpi_available() or exe is None:
        pytest.skip("needs mpi4py and mpirun (pip install 'pyclstm[mpi]')")
    return exe


def run_mpi(argv, cwd=None, timeout=60):
    """mpirun ARGV in its own session; on a timeout (a hung job) the whole
    process group is killed before the test fails, so no rank lingers."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1")
    p = subprocess.Popen([mpirun(), "--oversubscribe"] + [str(a) for a in argv], cwd=cwd,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail("mpirun %s hung (killed after %d s)\n%s\n%s" % (argv, timeout, out, err))
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def run_ranks(n, script, *args, timeout=60):
    return run_mpi(["-np", n, sys.executable, os.path.join(HERE, "mpi", script), *args],
                   timeout=timeout)


def test_two_ranks_give_the_single_process_gradient():
    r = run_ranks(2, "equivalence.py")
    assert r.returncode == 0, r.stdout + r.stderr
    line = [s for s in r.stdout.splitlines() if s.startswith("max_abs_diff")]
    assert len(line) == 1, r.stdout  # rank 0 alone reports
    assert float(line[0].split()[1]) <= 1e-13 * max(float(line[0].split()[3]), 1.0)


def test_two_ranks_train_like_one_process_on_the_global_batch():
    """Whole Trainer runs in float64: a character model (shards of 2 and 3
    rows), shuffled classification with an empty shard on rank 0, and
    regression, each with clipping active; parameters and loss curves agree
    to the rounding of the summation order."""
    r = run_ranks(2, "trainer_equivalence.py")
    assert r.returncode == 0, r.stdout + r.stderr
    cases = re.findall(r"^case (\w+) rel_diff (\S+) max_norm (\S+) clip (\S+)", r.stdout, re.M)
    assert [c[0] for c in cases] == ["charlm", "classify", "regress"], r.stdout
    for name, diff, norm, clip in cases:
        assert float(diff) <= 1e-12, name
        assert float(norm) > float(clip), "%s: clipping never acted" % name


def test_one_process_without_mpirun():
    """A singleton run (no mpirun): rank 0 of 1, the whole batch, averaging
    is the identity."""
    if not distributed.mpi_available():
        pytest.skip("needs mpi4py")
    dp = distributed.DataParallel()
    assert (dp.rank, dp.size) == (0, 1) and dp.shard(5) == slice(0, 5)
    g = np.arange(4.0)
    dp.average_(g)
    np.testing.assert_array_equal(g, np.arange(4.0))
    with pytest.raises(TypeError, match="buf"):
        dp.average_(np.arange(4))
    dp.check_equal(clstm.LSTM(2, 3, seed=1).flat_parameters)


def test_without_mpi4py_a_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py -> ImportError
    assert not distributed.mpi_available()
    with pytest.raises(RuntimeError, match=r"pip install 'pyclstm\[mpi\]'"):
        distributed.DataParallel()
