"""Benchmark clstm.LSTM against torch.nn.LSTM on the CPU (float32).

For every config the two are first checked to agree (same weights, same
inputs); the benchmark aborts with exit status 1 if they do not. Then two
workloads are timed, clstm and torch alternating repeat by repeat so that
machine noise hits both alike:

  infer  forward only (clstm train=False; torch under no_grad)
  train  forward + backward of sum(y * dy), including dx (gradients are
         zeroed before every repeat, outside the timed region)

Configs: large, deep, small (unidirectional, full length); bidir
(bidirectional, 2 layers); varlen (right-padded batch with lengths drawn
uniformly from [T/2, T], fixed seed; dy is 0 past each length). For varlen,
torch runs pack_padded_sequence(enforce_sorted=False) -> LSTM ->
pad_packed_sequence(total_length=T), and its times include the pack/pad
calls, as a user pays them; clstm takes the padded batch and `lengths`.

    python bench/bench_lstm.py                    # all configs, 2 threads
    python bench/bench_lstm.py --configs small --repeats 3
    python bench/bench_lstm.py --threads 1 --json out.json
"""
import argparse
import json
import os
import re
import statistics
import sys
import time
from collections import namedtuple

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

import clstm
from machine import cpu_model

# bidir: bidirectional; varlen: per-sequence lengths uniform in [T/2, T]
Config = namedtuple("Config", "name T B D H L bidir varlen", defaults=(False, False))
CONFIGS = {c.name: c for c in (Config("large", 100, 64, 512, 512, 1),
                               Config("deep", 100, 32, 256, 256, 2),
                               Config("small", 200, 16, 128, 128, 1),
                               Config("bidir", 100, 32, 256, 256, 2, bidir=True),
                               Config("varlen", 200, 16, 128, 128, 1, varlen=True))}
WORKLOADS = ("infer", "train")
TRAIN_FLOP_FACTOR = 3  # forward + backward (dgates->dx/dh, dW) ~ 3x forward


def draw_lengths(cfg, seed):
    """(B,) int64 lengths uniform in [T/2, T] for varlen configs, else None."""
    if not cfg.varlen:
        return None
    rng = np.random.default_rng([seed, 1])
    return rng.integers(cfg.T // 2, cfg.T, size=cfg.B, endpoint=True, dtype=np.int64)


def directions(cfg):
    return 2 if cfg.bidir else 1


def forward_flops(cfg, tokens):
    """Gate GEMM flops of one forward: 2*tokens*(D_k + H)*4H per direction,
    summed over layers (D_k = D for layer 0, N*H above); tokens = valid
    (time, batch) positions, T*B without lengths."""
    N = directions(cfg)
    return sum(2 * tokens * N * ((cfg.D if k == 0 else N * cfg.H) + cfg.H) * 4 * cfg.H
               for k in range(cfg.L))


def blas_info():
    """One line per BLAS/OpenMP library loaded, via threadpoolctl; [] without it."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    return [f"{i.get('internal_api')} {i.get('version')} "
            f"({i.get('threading_layer', i.get('user_api'))}, {i.get('num_threads')} threads): "
            f"{i.get('filepath')}" for i in threadpool_info()]


class Pair:
    """A torch.nn.LSTM and a clstm.LSTM with the same weights, inputs and dy."""

    def __init__(self, cfg, seed=0):
        torch.manual_seed(seed)
        self.tm = torch.nn.LSTM(cfg.D, cfg.H, cfg.L, bidirectional=cfg.bidir)
        self.cm = clstm.LSTM(cfg.D, cfg.H, cfg.L, bidirectional=cfg.bidir,
                             dtype=np.float32, seed=seed)
        self.cm.load_state_dict(self.tm.state_dict())
        rng = np.random.default_rng(seed)
        self.T = cfg.T
        self.x = rng.standard_normal((cfg.T, cfg.B, cfg.D), dtype=np.float32)
        self.dy = rng.standard_normal((cfg.T, cfg.B, directions(cfg) * cfg.H),
                                      dtype=np.float32)
        self.lengths = draw_lengths(cfg, seed)
        if self.lengths is None:
            self.tokens, self.tlengths = cfg.T * cfg.B, None
        else:
            self.tokens = int(self.lengths.sum())
            self.tlengths = torch.from_numpy(self.lengths)
            self.dy[np.arange(cfg.T)[:, None] >= self.lengths] = 0  # dy is 0 past lengths
        self.tx = torch.from_numpy(self.x).requires_grad_(True)
        self.tdy = torch.from_numpy(self.dy)

    def reset(self):
        self.cm.zero_grad()
        self.tm.zero_grad()
        self.tx.grad = None

    def torch_forward(self):
        """torch.nn.LSTM on tx, through pack/pad when there are lengths."""
        if self.tlengths is None:
            return self.tm(self.tx)
        packed = pack_padded_sequence(self.tx, self.tlengths, enforce_sorted=False)
        y, state = self.tm(packed)
        return pad_packed_sequence(y, total_length=self.T)[0], state

    def clstm_infer(self):
        y, (h, c) = self.cm.forward(self.x, lengths=self.lengths, train=False)
        return {"y": y, "hT": h, "cT": c}

    def torch_infer(self):
        with torch.no_grad():
            y, (h, c) = self.torch_forward()
        return {"y": y.numpy(), "hT": h.numpy(), "cT": c.numpy()}

    def clstm_train(self):
        y, (h, c) = self.cm.forward(self.x, lengths=self.lengths, train=True)
        dx, _ = self.cm.backward(self.dy)
        return {"y": y, "hT": h, "cT": c, "dx": dx, **self.cm.named_grads()}

    def torch_train(self):
        y, (h, c) = self.torch_forward()
        (y * self.tdy).sum().backward()
        out = {"y": y, "hT": h, "cT": c, "dx": self.tx.grad}
        out.update({n: p.grad for n, p in self.tm.named_parameters()})
        return {k: v.detach().numpy() for k, v in out.items()}

    def impls(self, workload):
        return {"clstm": getattr(self, "clstm_" + workload),
                "torch": getattr(self, "torch_" + workload)}


def rel_err(got, want):
    """max |got - want| / max |want| (0 for two all-zero arrays)."""
    scale = float(np.max(np.abs(want)))
    return float(np.max(np.abs(got - want))) / (scale or 1.0)


def check(pair, workload, label, tol):
    """Run both once; return the worst relative error, exit(1) above tol."""
    pair.reset()
    outs = {name: fn() for name, fn in pair.impls(workload).items()}
    c, t = outs["clstm"], outs["torch"]
    if set(c) != set(t):
        sys.exit(f"FAIL {label}: clstm gives {sorted(c)}, torch {sorted(t)}")
    errs = {k: rel_err(c[k], t[k]) for k in t}
    bad = {k: e for k, e in errs.items() if not e <= tol}  # NaN counts as bad
    if bad:
        worst = ", ".join(f"{k}={e:.3g}" for k, e in sorted(bad.items()))
        sys.exit(f"FAIL {label}: clstm and torch disagree (rel err > {tol:g}): {worst}")
    return max(errs.values())


def median_ms(fns, reset, repeats, warmup):
    """Median wall time in ms of each fn in {name: fn}, calls interleaved;
    reset() runs before every call, outside the timed region."""
    times = {name: [] for name in fns}
    for i in range(warmup + repeats):
        for name, fn in fns.items():
            reset()
            t0 = time.perf_counter()
            fn()
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    return {name: 1e3 * statistics.median(ts) for name, ts in times.items()}


def run_config(cfg, args):
    pair = Pair(cfg, args.seed)
    rows = []
    for workload in WORKLOADS:
        err = check(pair, workload, f"{cfg.name} {workload}", args.tol)
        ms = median_ms(pair.impls(workload), pair.reset, args.repeats, args.warmup)
        flops = forward_flops(cfg, pair.tokens)
        flops *= TRAIN_FLOP_FACTOR if workload == "train" else 1
        rows.append({"config": cfg._asdict(), "workload": workload, "max_rel_err": err,
                     "lengths": None if pair.lengths is None else pair.lengths.tolist(),
                     "tokens": pair.tokens,
                     "clstm_ms": ms["clstm"], "torch_ms": ms["torch"],
                     "ratio": ms["torch"] / ms["clstm"],
                     "clstm_gflops": flops / (ms["clstm"] * 1e6),
                     "torch_gflops": flops / (ms["torch"] * 1e6)})
    return rows


def header(args):
    load = os.getloadavg()[0]
    versions = f"clstm {clstm.__version__}, torch {torch.__version__}, numpy {np.__version__}"
    lines = [f"CPU:      {cpu_model()} ({os.cpu_count()} logical CPUs)",
             f"load:     {load:.2f} (1-min average at start; other processes skew timings)",
             f"threads:  {args.threads} (clstm.set_num_threads, torch.set_num_threads)",
             f"versions: {versions}",
             f"repeats:  {args.repeats} (+{args.warmup} warm-up), median; tol {args.tol:g}"]
    blas = blas_info() or ["(threadpoolctl not installed)"]
    torch_blas = re.search(r"BLAS_INFO=(\w+)", torch.__config__.show())
    onednn = torch.backends.mkldnn.enabled and torch.backends.mkldnn.is_available()
    blas.append(f"torch built with BLAS_INFO={torch_blas.group(1) if torch_blas else '?'}; "
                f"oneDNN (mkldnn) LSTM enabled: {onednn}")
    lines += ["BLAS:     " + b for b in blas]
    return lines


COLUMNS = ("config", "work", "clstm ms", "torch ms", "t/c", "clstm GFLOP/s", "rel err")
WIDTHS = (-28, -6, 10, 10, 8, 13, 9)  # negative: left-aligned


def table_line(cells):
    return " ".join(f"{c:<{-w}}" if w < 0 else f"{c:>{w}}" for c, w in zip(cells, WIDTHS))


def row_line(r):
    c = r["config"]
    name = f"{c['name']} T{c['T']} B{c['B']} D{c['D']} H{c['H']} L{c['L']}"
    return table_line((name, r["workload"], f"{r['clstm_ms']:.2f}", f"{r['torch_ms']:.2f}",
                       f"{r['ratio']:.2f}", f"{r['clstm_gflops']:.1f}",
                       f"{r['max_rel_err']:.1e}"))


def notes(rows, args):
    """Footnotes for the table: what t/c and GFLOP/s mean, what bidir and
    varlen configs do (once per config that ran)."""
    lines = ["t/c = torch ms / clstm ms (> 1: clstm faster). GFLOP/s counts gate GEMMs "
             f"over valid positions; train = {TRAIN_FLOP_FACTOR}x forward."]
    seen = {}
    for r in rows:
        seen.setdefault(r["config"]["name"], r)
    for name, r in seen.items():
        c = r["config"]
        if c["bidir"]:
            lines.append(f"{name}: bidirectional (2 directions per layer; y is 2H wide).")
        if c["varlen"]:
            lines.append(f"{name}: right-padded batch, lengths uniform in [{c['T'] // 2}, "
                         f"{c['T']}] (seed {args.seed}; {r['tokens']} of {c['T'] * c['B']} "
                         "positions valid). torch ms INCLUDE pack_padded_sequence"
                         "(enforce_sorted=False) + pad_packed_sequence(total_length=T); "
                         "clstm takes lengths=.")
    return lines


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--configs", default="all",
                   help=f"comma-separated subset of {','.join(CONFIGS)}, or 'all'")
    p.add_argument("--repeats", type=int, default=10, help="timed repeats (median)")
    p.add_argument("--warmup", type=int, default=2, help="untimed repeats first")
    p.add_argument("--threads", type=int, default=2, help="threads for both libraries")
    p.add_argument("--tol", type=float, default=1e-4, help="max relative error allowed")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write the results here")
    args = p.parse_args(argv)
    names = list(CONFIGS) if args.configs == "all" else args.configs.split(",")
    unknown = [n for n in names if n not in CONFIGS]
    if unknown:
        p.error(f"unknown config(s) {unknown}; choose from {','.join(CONFIGS)}")
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        p.error("need --repeats >= 1, --warmup >= 0, --threads >= 1")
    args.configs = [CONFIGS[n] for n in names]
    return args


def main(argv=None):
    args = parse_args(argv)
    clstm.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    head = header(args)
    print("\n".join(head))
    print()
    print(table_line(COLUMNS))
    rows = []
    for cfg in args.configs:
        for r in run_config(cfg, args):
            print(row_line(r), flush=True)
            rows.append(r)
    foot = notes(rows, args)
    print("\n" + "\n".join(foot))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"header": head, "notes": foot, "threads": args.threads,
                       "repeats": args.repeats, "results": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
