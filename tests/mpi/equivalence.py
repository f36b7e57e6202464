"""Run under mpirun by tests/test_mpi.py: 2-rank data-parallel gradients on
a global batch equal single-process gradients on the same batch (float64),
and parameters built from one seed are equal on every rank. Prints one line
"max_abs_diff <x>" on rank 0; exits non-zero on any failure."""
import sys

import numpy as np

import clstm
from clstm.distributed import DataParallel

dp = DataParallel()
rng = np.random.default_rng(11)  # same data on every rank
T, B, D, O = 7, 10, 3, 2
x = rng.standard_normal((T, B, D))
targets = rng.standard_normal((T, B, O))
lengths = rng.integers(1, T + 1, B)
model = clstm.Model(D, 5, 2, output_size=O, dtype=np.float64, seed=3)
dp.check_equal(model.flat_parameters)


def grads(rows):
    model.zero_grad()
    out, _ = model.forward(x[:, rows], lengths=lengths[rows], train=True)
    _, dout = clstm.losses.mse(out, targets[:, rows], lengths[rows])
    model.backward(dout)
    return model.flat_grads.copy()


mine = dp.shard(B)
g = grads(mine)
# mse is a mean over counted steps: weight this rank's by its count
dp.average_(g, weight=float(lengths[mine].sum()), total=float(lengths.sum()))
if dp.rank == 0:
    full = grads(slice(0, B))
    diff = float(np.max(np.abs(g - full)))
    scale = float(np.max(np.abs(full)))
    print("max_abs_diff %.3g scale %.3g" % (diff, scale), flush=True)
    ok = diff <= 1e-13 * max(scale, 1.0)
else:
    ok = True
dp.check_equal(g, "averaged gradients")
sys.exit(0 if dp.comm.allreduce(int(ok), op=__import__("mpi4py").MPI.MIN) else 1)
