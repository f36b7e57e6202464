"""Run under mpirun by tests/test_mpi.py: `clstm train ARGS` in which rank 1
fails while fetching its batch for step STEP, either by raising an
exception (`raise`) or by dying on the spot without a word to MPI (`exit`,
like a crash or a kill).

    mpirun -np 2 python dying_rank.py raise|exit STEP ARGS...
"""
import os
import sys

from clstm import cli
from clstm import train as TR

how, step, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rank = int(os.environ.get("OMPI_COMM_WORLD_RANK", os.environ.get("PMI_RANK", "0")))
calls = []
real_batch = TR.LanguageModelTask.batch


def batch(self, k, order):
    calls.append(k)
    if rank == 1 and len(calls) == step:
        if how == "exit":
            os._exit(3)
        raise RuntimeError("simulated failure of rank 1 at step %d" % step)
    return real_batch(self, k, order)


TR.LanguageModelTask.batch = batch
sys.exit(cli.main(argv))
