"""Soak: continuous training and streaming inference for several minutes,
watching memory (RSS) and drift. A benchmark, not a CI test.

Rounds alternate: a block of training steps of a character model on the
built-in text (Trainer, with a checkpoint and the model file rewritten each
round), then a block of single-step streaming calls through a frozen copy
of the model (Model.step on one stream). After every round:
  - RSS (VmRSS of /proc/self/status) is recorded;
  - a fixed probe sequence is run through the frozen copy from a fresh
    state, and must give bit-for-bit the first round's output (no drift:
    nothing in the library accumulates across calls);
  - the checkpoint must load.
Memory is judged flat when the RSS of the second half of the run grows by
less than --max-growth-mb over its first value (the first rounds are the
warm-up: allocator pools, imports, workspaces).

  python bench/soak.py --minutes 5
Exit status 0 when memory stayed flat and nothing drifted, 1 otherwise.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

import clstm
from clstm import data as D
from clstm import train as TR


def rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError("no VmRSS in /proc/self/status")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--minutes", type=float, default=5.0)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--train-steps", type=int, default=20, help="training steps per round")
    p.add_argument("--stream-steps", type=int, default=2000, help="streaming steps per round")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-growth-mb", type=float, default=2.0)
    a = p.parse_args()
    clstm.set_num_threads(a.threads)
    text = D.builtin_text()
    stream = D.TextStream(text)
    task = TR.LanguageModelTask(stream, 32, 64)
    model = clstm.Model(hidden_size=a.hidden, vocab=stream.vocab, output_size=len(stream.vocab),
                        softmax=True, seed=0)
    d = tempfile.mkdtemp(prefix="clstm-soak-")
    out, ckpt = os.path.join(d, "model.safetensors"), os.path.join(d, "run.ckpt.npz")
    trainer = TR.Trainer(model, task, epochs=10 ** 6, progress=False, out=out, checkpoint=ckpt,
                         checkpoint_every=a.train_steps)
    clstm.save(model, out)
    frozen = clstm.load(out)
    probe = stream.train[:200, None]
    first_probe = frozen.forward(probe, train=False)[0].copy()
    state = frozen.initial_state(1)
    ids = stream.train

    rows, t_end, r = [], time.time() + 60 * a.minutes, 0
    t0 = time.time()
    drift = False
    while time.time() < t_end:
        r += 1
        ts = time.perf_counter()
        trainer.fit(max_steps=trainer.step + a.train_steps)
        t_train = time.perf_counter() - ts
        ts = time.perf_counter()
        for i in range(a.stream_steps):
            _, state = frozen.step(ids[(r * a.stream_steps + i) % len(ids):][:1], state)
        t_stream = (time.perf_counter() - ts) / a.stream_steps * 1e6
        same = np.array_equal(frozen.forward(probe, train=False)[0], first_probe)
        drift |= not same
        TR.load_checkpoint(ckpt)
        rows.append((r, time.time() - t0, rss_mb(), trainer.step, t_train, t_stream, same))
        print("round %4d  %6.1f s  RSS %7.1f MB  step %6d  train %.2f s  stream %.1f us/step"
              "  probe %s" % (rows[-1][:6] + ("same" if same else "DRIFTED",)), flush=True)
    half = rows[len(rows) // 2:]
    growth = max(x[2] for x in half) - half[0][2]
    print("rounds %d, %.1f min; RSS first %.1f MB, after warm-up %.1f MB, max %.1f MB, last "
          "%.1f MB; growth over the second half %.2f MB (limit %.1f); drift: %s"
          % (len(rows), (time.time() - t0) / 60, rows[0][2], half[0][2],
             max(x[2] for x in rows), rows[-1][2], growth, a.max_growth_mb,
             "yes" if drift else "none"))
    ok = growth < a.max_growth_mb and not drift
    for f in os.listdir(d):
        os.unlink(os.path.join(d, f))
    os.rmdir(d)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
