"""Data-parallel scaling over MPI: throughput of 1 against N ranks (1
thread each) and the share of a step spent in the allreduces, for a small
and a large character model trained by the real Trainer on the built-in
text. A benchmark, not a CI test.

    python bench/mpi_scaling.py [--ranks 2] [--repeats 5]

The driver runs this file under `mpirun -np 1` and `-np N` (OMP_NUM_THREADS=1
and clstm.set_num_threads(1)) for each model, and prints a table:
 - chars/s: global characters per second (B x T per step), the median over
   repeats of a few steps each (MODELS), after 2 warm-up steps;
 - allreduce share: the time rank 0 spends in the step's two allreduces
   (the weighted gradient block and the 2-number loss/flag one), waiting
   for the slower rank included, over the step time (median);
 - bare allreduce: the fastest of 20 allreduces of the same gradient
   block, each right after a barrier: communication alone, with both ranks
   on a core (the median adds waiting for a descheduled rank on a busy
   machine);
 - MB per step: parameter count x bytes, what each rank contributes.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np

# steps: per repeat, so that a repeat takes a second or more on one core
MODELS = {"small": dict(hidden=64, layers=1, steps=40),
          "large": dict(hidden=512, layers=2, steps=3)}


def worker(args):
    import clstm
    from clstm import data as D
    from clstm import distributed
    from clstm import train as TR
    clstm.set_num_threads(1)
    dp = distributed.DataParallel()
    stream = D.TextStream(D.builtin_text())
    task = TR.LanguageModelTask(stream, batch_size=args.batch, bptt=args.bptt)
    cfg = MODELS[args.model]
    model = clstm.Model(hidden_size=cfg["hidden"], num_layers=cfg["layers"], vocab=stream.vocab,
                        output_size=len(stream.vocab), softmax=True, seed=0)
    trainer = TR.Trainer(model, task, progress=False, distributed=dp)
    trainer.fit(max_steps=2)  # warm-up: workspaces, first allreduce
    rates, shares, steps = [], [], cfg["steps"]
    for _ in range(args.repeats):
        dp.comm.Barrier()
        c0, t0 = dp.comm_seconds, time.perf_counter()
        trainer.fit(max_steps=trainer.step + steps)
        dt = time.perf_counter() - t0
        rates.append(steps * args.batch * args.bptt / dt)
        shares.append((dp.comm_seconds - c0) / dt)
    buf = np.zeros_like(model.flat_grads)
    bare = []
    for _ in range(20):
        dp.comm.Barrier()
        t0 = time.perf_counter()
        dp.comm.Allreduce(dp._MPI.IN_PLACE, buf, op=dp._MPI.SUM)
        bare.append(time.perf_counter() - t0)
    if dp.rank == 0:
        print("RESULT " + json.dumps(dict(
            model=args.model, ranks=dp.size, params=int(model.flat_parameters.size),
            mb=model.flat_grads.nbytes / 1e6, chars_per_s=float(np.median(rates)),
            step_s=float(args.batch * args.bptt / np.median(rates)),
            allreduce_share=float(np.median(shares)), bare_allreduce_s=float(np.min(bare)))),
            flush=True)


def driver(args):
    exe = shutil.which("mpirun") or os.path.join(os.path.dirname(sys.executable), "mpirun")
    env = dict(os.environ, OMP_NUM_THREADS="1", OMPI_ALLOW_RUN_AS_ROOT="1",
               OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
    rows = []
    for model in MODELS:
        for n in (1, args.ranks):
            cmd = [exe, "--oversubscribe", "-np", str(n), sys.executable, __file__, "--worker",
                   "--model", model, "--repeats", str(args.repeats), "--batch", str(args.batch),
                   "--bptt", str(args.bptt)]
            out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
            rows.append(json.loads(out.split("RESULT ", 1)[1]))
            print(json.dumps(rows[-1]), flush=True)
    print("\n| model | parameters | MB per allreduce | ranks | chars/s | speed-up | step | "
          "allreduce share of the step | bare allreduce |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        base = next(b for b in rows if b["model"] == r["model"] and b["ranks"] == 1)
        print("| %s (H=%d, L=%d) | %d | %.2f | %d | %.0f | %.2fx | %.1f ms | %.1f%% | %s |"
              % (r["model"], MODELS[r["model"]]["hidden"], MODELS[r["model"]]["layers"],
                 r["params"], r["mb"], r["ranks"], r["chars_per_s"],
                 r["chars_per_s"] / base["chars_per_s"], 1e3 * r["step_s"],
                 100 * r["allreduce_share"],
                 "-" if r["ranks"] == 1 else "%.0f us" % (1e6 * r["bare_allreduce_s"])))


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--bptt", type=int, default=64)
    p.add_argument("--model", choices=sorted(MODELS), help=argparse.SUPPRESS)
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    worker(a) if a.worker else driver(a)
