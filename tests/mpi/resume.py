"""Run by tests/test_mpi.py, under mpirun (data-parallel) or as a plain
process (single-process Trainer): a float64 character model with state
carried across chunks (5 rows: shards of 2 and 3) over two epochs.

    resume.py CKPT MAX_STEPS    start a run, stop after MAX_STEPS (0: never)
    resume.py CKPT              resume the run in CKPT to its end

The checkpoint CKPT holds the final state either way."""
import sys

import numpy as np

import clstm
from clstm import data as D
from clstm import distributed
from clstm import train as TR

TEXT = ("It was the best of times, it was the worst of times, it was the age of wisdom, "
        "it was the age of foolishness. ") * 6


def task():
    return TR.LanguageModelTask(D.TextStream(TEXT), batch_size=5, bptt=8)


if __name__ == "__main__":
    ckpt = sys.argv[1]
    dp = distributed.DataParallel() if distributed.launched()[1] > 1 else None
    if len(sys.argv) > 2:
        t = task()
        model = clstm.Model(hidden_size=7, vocab=t.vocab, output_size=len(t.vocab),
                            softmax=True, seed=4, dtype=np.float64)
        trainer = TR.Trainer(model, t, lr=0.01, clip=0.2, epochs=2, eval_every=4,
                             checkpoint=ckpt, checkpoint_every=3, progress=False,
                             distributed=dp)
        trainer.fit(max_steps=int(sys.argv[2]) or None)
    else:
        TR.Trainer.resume(ckpt, task(), checkpoint=ckpt, progress=False, distributed=dp).fit()
