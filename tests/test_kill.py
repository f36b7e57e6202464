"""A process killed with SIGKILL in the middle of a save leaves the previous
file loadable: the model file (clstm.save, written by the C library) and the
trainer's checkpoint (written from Python). A child process rewrites one
file in a loop, generation after generation, and is killed at a random
moment; the file must then load and hold one complete generation.

The kills must really land inside saves for this to prove anything: the
child spends nearly all its time writing (a 34 MB model), and the test
requires that some kills left a temporary file behind, which only a save
cut short does."""
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import clstm
from clstm import train as TR

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

KILLS = 12

CHILD = r'''
import sys
import numpy as np
import clstm
from clstm import data as D, train as TR

kind, path = sys.argv[1], sys.argv[2]
model = clstm.LSTM(1024, 1024)  # 8.4M float32 parameters: 34 MB
if kind == "checkpoint":
    stream = D.TextStream("abcdefgh" * 64)
    model = clstm.Model(hidden_size=1024, vocab=stream.vocab, output_size=len(stream.vocab),
                        softmax=True, seed=0)
    trainer = TR.Trainer(model, TR.LanguageModelTask(stream, 2, 8), progress=False,
                         checkpoint=path)
gen = 0
while True:
    model.flat_parameters[:] = gen
    if kind == "model":
        clstm.save(model, path)
    else:
        trainer.step = gen
        trainer.save_checkpoint()
    if gen == 0:
        print("ready", flush=True)
    gen += 1
'''


def _loaded_generation(kind, path):
    """The generation the file holds; fails if it is not one whole one."""
    if kind == "model":
        params, step = clstm.load(path).flat_parameters, None
    else:
        model, _, meta = TR.load_checkpoint(path)
        params, step = model.flat_parameters, meta["step"]
    gen = params[0]
    assert np.all(params == gen), "a mixture of generations"
    assert step is None or step == gen, "the checkpoint's step and parameters disagree"
    return int(gen)


@pytest.mark.parametrize("kind", ["model", "checkpoint"])
def test_sigkill_during_save_leaves_the_previous_file_loadable(kind, tmp_path):
    path = str(tmp_path / ("m.safetensors" if kind == "model" else "run.ckpt.npz"))
    rng = np.random.default_rng(7)
    cut_short, last = 0, -1
    for _ in range(KILLS):
        before = set(os.listdir(tmp_path))
        child = subprocess.Popen([sys.executable, "-c", CHILD, kind, path],
                                 stdout=subprocess.PIPE, env=dict(os.environ,
                                                                  OMP_NUM_THREADS="1"))
        try:
            assert child.stdout.readline().strip() == b"ready"
            time.sleep(float(rng.uniform(0.02, 0.4)))
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()
        gen = _loaded_generation(kind, path)
        assert gen >= 0
        left = set(os.listdir(tmp_path)) - before - {os.path.basename(path)}
        cut_short += bool(left)
        for name in left:  # a save in progress when the kill came
            assert ".tmp" in name, "a stray file %s" % name
            os.unlink(tmp_path / name)
        last = gen
    assert last >= 0
    # the test's power: at least a few kills interrupted a write
    assert cut_short >= 2, "only %d of %d kills landed inside a save" % (cut_short, KILLS)
