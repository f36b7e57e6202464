"""The adding problem (modern variant), T = 100: each step carries a value
from U[0, 1] and a marker; exactly one marker in each half of the sequence;
the target is the sum of the two marked values. Always answering 1 scores
MSE 0.167; the goal is a test MSE below 0.01.

    python bench/adding.py [--T 100] [--hidden 128] [--threads 2] [--max-steps 20000]

A thin loop over the C calls: forward, clstm.losses.mse at the last step,
backward, gradient clipping, Adam. Fresh training data every step (seeded);
a fixed test set of 2000 sequences evaluated every 100 steps. Prints the
steps and wall time at which the test MSE first drops below the goal.
"""
import argparse
import json
import time

import numpy as np

import clstm


def batch(rng, T, B):
    """x (T, B, 2): values and markers; y (B, 1): the sum of the marked values."""
    vals = rng.uniform(0, 1, (T, B))
    marks = np.zeros((T, B))
    half = T // 2
    i = rng.integers(0, half, B)
    j = rng.integers(half, T, B)
    marks[i, np.arange(B)] = 1
    marks[j, np.arange(B)] = 1
    x = np.stack([vals, marks], axis=2).astype(np.float32)
    y = (vals[i, np.arange(B)] + vals[j, np.arange(B)])[:, None].astype(np.float32)
    return x, y


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--T", type=int, default=100)
    p.add_argument("--hidden", type=int, default=128)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-steps", type=int, default=20000)
    p.add_argument("--goal", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", help="write the result here")
    a = p.parse_args()
    clstm.set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)
    xt, yt = batch(np.random.default_rng(12345), a.T, 2000)
    model = clstm.Model(2, a.hidden, output_size=1, seed=a.seed)
    opt = clstm.optim.Adam(model, lr=a.lr)
    start = time.perf_counter()
    result = None
    for step in range(1, a.max_steps + 1):
        x, y = batch(rng, a.T, a.batch)
        out, _ = model.forward(x)
        loss, dout = clstm.losses.mse(out, y, last_only=True)
        model.zero_grad()
        model.backward(dout)
        clstm.optim.clip_grad_norm(model, 1.0)
        opt.step()
        if step % 100 == 0:
            pred, _ = model.forward(xt, train=False)
            test = float(np.mean((pred[-1] - yt) ** 2))
            wall = time.perf_counter() - start
            print("step %5d  train %.4f  test MSE %.5f  %.0f s" % (step, loss, test, wall),
                  flush=True)
            if test < a.goal:
                result = dict(task="adding", T=a.T, hidden=a.hidden, batch=a.batch,
                              threads=a.threads, steps=step, test_mse=test,
                              wall_s=round(wall, 1), sequences=step * a.batch)
                break
    if result is None:
        print("did not reach test MSE < %g in %d steps" % (a.goal, a.max_steps))
        return 1
    print("reached test MSE %.5f < %g after %d steps (%d sequences) in %.0f s"
          % (result["test_mse"], a.goal, result["steps"], result["sequences"], result["wall_s"]))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
