"""The `clstm` command line (also `python -m clstm`).

Subcommands:
  demo    train a small LSTM to predict the next value of noisy sine waves,
          printing a falling loss (no data, no download).
"""
import argparse
import sys
import time

import numpy as np

import clstm


def _sine_batch(rng, T, B):
    """B sine waves of random frequency and phase, T+1 samples each:
    inputs are the first T, targets the next value of each."""
    freq = rng.uniform(0.05, 0.3, size=(1, B))
    phase = rng.uniform(0, 2 * np.pi, size=(1, B))
    t = np.arange(T + 1)[:, None]
    s = np.sin(freq * t + phase) + 0.02 * rng.standard_normal((T + 1, B))
    return s[:-1, :, None].astype(np.float32), s[1:, :].astype(np.float32)


class _Adam:
    """Adam over one flat parameter vector and its gradient (updated in place)."""

    def __init__(self, params, lr, b1=0.9, b2=0.999, eps=1e-8):
        self.p, self.lr, self.b1, self.b2, self.eps = params, lr, b1, b2, eps
        self.m = np.zeros_like(params)
        self.v = np.zeros_like(params)
        self.t = 0

    def step(self, grad):
        self.t += 1
        self.m += (1 - self.b1) * (grad - self.m)
        self.v += (1 - self.b2) * (grad * grad - self.v)
        mhat = self.m / (1 - self.b1 ** self.t)
        vhat = self.v / (1 - self.b2 ** self.t)
        self.p -= self.lr * mhat / (np.sqrt(vhat) + self.eps)


def demo(args):
    """LSTM + linear head, MSE loss, Adam. The LSTM's forward and backward run
    in the C core; the head and the optimizer are a few NumPy lines until the
    C ones exist."""
    if args.threads:
        clstm.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    H = args.hidden
    lstm = clstm.LSTM(1, H, args.layers, seed=args.seed)
    head = np.concatenate([rng.uniform(-1, 1, H) / np.sqrt(H), [0.0]]).astype(np.float32)
    head_grad = np.zeros_like(head)
    opt_lstm = _Adam(lstm.flat_parameters, args.lr)
    opt_head = _Adam(head, args.lr)
    print("clstm %s demo: predict the next value of noisy sine waves "
          "(LSTM H=%d L=%d, T=%d, B=%d, %d steps, %d threads)"
          % (clstm.__version__, H, args.layers, args.seq, args.batch, args.steps,
             clstm.get_num_threads()))
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        x, target = _sine_batch(rng, args.seq, args.batch)
        y, _ = lstm.forward(x)
        pred = y @ head[:H] + head[H]
        err = pred - target
        loss = float(np.mean(err * err))
        dpred = (2.0 / err.size) * err
        head_grad[:H] = np.einsum("tb,tbh->h", dpred, y)
        head_grad[H] = dpred.sum()
        lstm.zero_grad()
        lstm.backward(dpred[:, :, None] * head[:H])
        opt_lstm.step(lstm.flat_grads)
        opt_head.step(head_grad)
        if step == 1 or step % args.print_every == 0 or step == args.steps:
            print("step %4d  mse %.5f" % (step, loss), flush=True)
    print("done in %.1f s" % (time.perf_counter() - start))
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="clstm", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--version", action="version", version="clstm " + clstm.__version__)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="train on synthetic sine waves and print the loss",
                       formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    d.add_argument("--steps", type=int, default=300, help="training steps")
    d.add_argument("--hidden", type=int, default=32, help="hidden size H")
    d.add_argument("--layers", type=int, default=1, help="LSTM layers L")
    d.add_argument("--seq", type=int, default=50, help="sequence length T")
    d.add_argument("--batch", type=int, default=32, help="batch size B")
    d.add_argument("--lr", type=float, default=0.01, help="Adam learning rate")
    d.add_argument("--seed", type=int, default=0, help="random seed")
    d.add_argument("--threads", type=int, default=0, help="threads (0: clstm's default)")
    d.add_argument("--print-every", type=int, default=25, help="print the loss every N steps")
    d.set_defaults(func=demo)
    args = p.parse_args(argv)
    for name in ("steps", "hidden", "layers", "seq", "batch", "print_every"):
        if getattr(args, name) < 1:
            p.error("--%s must be >= 1" % name.replace("_", "-"))
    if not args.lr > 0:
        p.error("--lr must be > 0")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
