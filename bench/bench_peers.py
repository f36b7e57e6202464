"""clstm against its peers, torch.nn.LSTM and ONNX Runtime's LSTM operator,
on the CPU in float32, with the BLAS limit measured in the same run.

One entry point does everything; --only picks sections:

  configs     inference and a training step (forward + backward of sum(y*dy)
              with dx + a plain SGD update) on five configs: large, deep,
              small, bidir, varlen (right-padded batch). ORT: inference only.
              For each config the peers are first checked to agree with clstm
              (same weights and inputs; the max abs diff is printed) and the
              run aborts (exit 1) if they do not. The BLAS limit is measured
              beside it: scipy_openblas64's sgemm at the config's shapes.
  streaming   B=1, D=H=256: one step at a time from Python (clstm LSTM.step,
              torch nn.LSTM and nn.LSTMCell per step, ORT session.run per
              step with state inputs), from C (examples/bench_step.c,
              clstm_forward_ex with T=1 in place), and the per-step cost
              inside one whole-sequence call (time / T) for all of them.
  memory      peak RSS of inference and a training step, clstm against torch,
              each in a fresh subprocess (ru_maxrss after the workload minus
              ru_maxrss after imports and data); clstm inference at T and 10T.
  scaling     time against T, B and H, one at a time from a base config.
  threads     1 thread against 2 (clstm and torch).
  contention  slowdown with one busy-loop process beside the benchmark.

Timing: time.perf_counter around each call, warm-ups first, median over
repeats, the peers interleaved within every repeat (their order rotated) so
machine noise hits them alike, with a 5 ms pause between calls so one
library's spinning worker threads do not eat into the next one's time.

    python bench/bench_peers.py                         # everything (~10 min on 2 idle cores, estimated)
    python bench/bench_peers.py --quick                 # smoke run, ~3 min
    python bench/bench_peers.py --only configs,streaming --configs small,varlen
    python bench/bench_peers.py --json out.json --results bench/RESULTS.md

Writes --results (default bench/RESULTS.md), a chart next to it
(RESULTS.png, when matplotlib is installed) and, with --json, every number.
"""
import argparse
import ctypes
import datetime
import gc
import json
import os
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
from collections import namedtuple

import numpy as np

import clstm

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SECTIONS = ("configs", "streaming", "memory", "scaling", "threads", "contention")
PAUSE = 0.005  # seconds between two timed calls (outside the timed region)
TOL = 1e-4  # max |peer - clstm| / max |clstm| allowed, per output (float32)
LR = 1e-3  # the SGD step's learning rate
SPIN_ORT = False  # --ort-spin: leave ONNX Runtime's spin-waiting on (its default)

# bidir: bidirectional; varlen: per-sequence lengths uniform in [T/2, T]
Config = namedtuple("Config", "name T B D H L bidir varlen", defaults=(False, False))
CONFIGS = {c.name: c for c in (Config("large", 100, 64, 512, 512, 1),
                               Config("deep", 100, 32, 256, 256, 2),
                               Config("small", 200, 16, 128, 128, 1),
                               Config("bidir", 100, 32, 256, 256, 2, bidir=True),
                               Config("varlen", 200, 16, 128, 128, 1, varlen=True),
                               # one whole sequence per call (issue 16's B = 1 targets)
                               Config("b1-256", 200, 1, 256, 256, 1),
                               Config("b1-512", 200, 1, 512, 512, 1))}
TRAIN_FLOP_FACTOR = 3  # forward + backward (dgates -> dx, dh; dW) ~ 3x forward

torch = ort = None  # imported by load_peers(), so memory children can do without


def load_peers():
    global torch, ort
    import torch as _torch
    import onnxruntime as _ort
    torch, ort = _torch, _ort


# ------------------------------------------------------------------ machine
def cpuinfo():
    """(model name, max 'cpu MHz' over cores or None, flags) from /proc/cpuinfo."""
    model, mhz, flags = platform.processor() or "unknown", [], set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, val = line.partition(":")
                key = key.strip()
                if key == "model name":
                    model = val.strip()
                elif key == "cpu MHz":
                    mhz.append(float(val))
                elif key == "flags":
                    flags = set(val.split())
    except OSError:
        pass
    return model, (max(mhz) if mhz else None), flags


class OpenBLAS:
    """scipy_openblas64's library through ctypes: the very library clstm's C
    core calls (ILP64, prefixed names)."""

    def __init__(self):
        import scipy_openblas64
        path = os.path.join(scipy_openblas64.get_lib_dir(), "libscipy_openblas64_.so")
        self.path = path
        lib = ctypes.CDLL(path)
        lib.scipy_openblas_get_config64_.restype = ctypes.c_char_p
        lib.scipy_openblas_get_corename64_.restype = ctypes.c_char_p
        lib.scipy_openblas_get_num_threads64_.restype = ctypes.c_int
        lib.scipy_openblas_set_num_threads64_.argtypes = [ctypes.c_int]
        i64, f32, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
        lib.scipy_cblas_sgemm64_.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int,
                                             i64, i64, i64, f32, ptr, i64, ptr, i64,
                                             f32, ptr, i64]
        lib.scipy_cblas_sgemm64_.restype = None
        lib.scipy_cblas_sgemv64_.argtypes = [ctypes.c_int, ctypes.c_int, i64, i64, f32, ptr,
                                             i64, ptr, i64, f32, ptr, i64]
        lib.scipy_cblas_sgemv64_.restype = None
        self.lib = lib
        self.config = lib.scipy_openblas_get_config64_().decode()
        self.corename = lib.scipy_openblas_get_corename64_().decode()

    def sgemm_gflops(self, M, K, N, threads, min_time):
        """GFLOP/s of C (M, N) = A (M, K) @ W (N, K)^T, row-major, as clstm
        computes x W^T: the median of 5 batches of calls, each batch at
        least min_time / 5 seconds."""
        rng = np.random.default_rng(0)
        A = rng.standard_normal((M, K), dtype=np.float32)
        W = rng.standard_normal((N, K), dtype=np.float32)
        C = np.empty((M, N), np.float32)
        args = (101, 111, 112, M, N, K, 1.0, A.ctypes.data, K, W.ctypes.data, K, 0.0,
                C.ctypes.data, N)
        gemm = self.lib.scipy_cblas_sgemm64_
        old = self.lib.scipy_openblas_get_num_threads64_()
        self.lib.scipy_openblas_set_num_threads64_(threads)
        try:
            gemm(*args)
            t0 = time.perf_counter()
            gemm(*args)
            one = max(time.perf_counter() - t0, 1e-7)
            n = max(1, int(min_time / 5 / one))
            rates = []
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(n):
                    gemm(*args)
                rates.append(2.0 * M * N * K * n / (time.perf_counter() - t0) / 1e9)
        finally:
            self.lib.scipy_openblas_set_num_threads64_(old)
        return statistics.median(rates)


    def one_thread_us(self, kind, K, N, min_time):
        """Microseconds per call, one thread, of y (N) = W (N, K) x (K) as
        sgemm with M = 1 (kind "sgemm") or as sgemv (kind "sgemv")."""
        rng = np.random.default_rng(0)
        W = rng.standard_normal((N, K), dtype=np.float32)
        x = rng.standard_normal(K, dtype=np.float32)
        y = np.empty(N, np.float32)
        if kind == "sgemm":
            fn, args = self.lib.scipy_cblas_sgemm64_, (101, 111, 112, 1, N, K, 1.0,
                                                         x.ctypes.data, K, W.ctypes.data, K,
                                                         0.0, y.ctypes.data, N)
        else:
            fn, args = self.lib.scipy_cblas_sgemv64_, (101, 111, N, K, 1.0, W.ctypes.data, K,
                                                         x.ctypes.data, 1, 0.0, y.ctypes.data, 1)
        old = self.lib.scipy_openblas_get_num_threads64_()
        self.lib.scipy_openblas_set_num_threads64_(1)
        try:
            fn(*args)
            t0 = time.perf_counter()
            fn(*args)
            n = max(1, int(min_time / 5 / max(time.perf_counter() - t0, 1e-7)))
            per = []
            for _ in range(5):
                t0 = time.perf_counter()
                for _ in range(n):
                    fn(*args)
                per.append((time.perf_counter() - t0) / n * 1e6)
        finally:
            self.lib.scipy_openblas_set_num_threads64_(old)
        return statistics.median(per)


def measured_fma_peak(threads):
    """bench/fma_peak.c built with the system's cc and run: the FMA ceiling
    at the clock the cores really run (turbo included, which /proc/cpuinfo's
    nominal MHz misses, and one FMA a cycle where AVX-512 runs as two
    halves, which the lanes x units formula misses). None if it cannot be
    built or run (then the formula stands in)."""
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        exe = os.path.join(d, "fma_peak")
        cc = os.environ.get("CC", "cc")
        try:
            b = subprocess.run([cc, "-O2", "-fopenmp", os.path.join(ROOT, "bench", "fma_peak.c"),
                                "-o", exe], capture_output=True, text=True, timeout=120)
            if b.returncode != 0:
                return None
            r = subprocess.run([exe, str(threads)], capture_output=True, text=True, timeout=120)
            return json.loads(r.stdout) if r.returncode == 0 else None
        except (OSError, subprocess.SubprocessError, ValueError):
            return None


def machine_info(args):
    model, mhz, flags = cpuinfo()
    cores = os.cpu_count() or 1
    fma_units, lanes = 2, (16 if "avx512f" in flags else 8 if "avx2" in flags else 4)
    peak = cores * fma_units * lanes * 2 * mhz / 1e3 if mhz and "fma" in flags else None
    fma = measured_fma_peak(args.threads)
    peak_how = "formula"
    if fma is not None:
        peak, peak_how = fma["gflops_all"], "measured"
    import onnxruntime
    import torch as _t
    blas = OpenBLAS()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": model, "cores": cores, "mhz": mhz, "simd_lanes_f32": lanes,
        "fma_peak_gflops": peak, "fma_peak_how": peak_how, "fma_peak_measured": fma,
        "blas_config": blas.config, "blas_corename": blas.corename, "blas_path": blas.path,
        "versions": {"clstm": clstm.__version__, "torch": _t.__version__,
                     "onnxruntime": onnxruntime.__version__, "numpy": np.__version__,
                     "python": platform.python_version()},
        "loadavg_start": os.getloadavg(),
        "threads": args.threads, "quick": args.quick, "command": " ".join(sys.argv),
    }


# ------------------------------------------------------------------ helpers
def t_of(cfg, quick):
    """The T a run uses: cfg.T, a quarter of it (at least 10) with --quick."""
    return max(10, cfg.T // 4) if quick else cfg.T


def directions(cfg):
    return 2 if cfg.bidir else 1


def gemm_shapes(cfg):
    """[(K_in, count)] per layer and direction: the input projection is
    (T*B, K_in) @ (K_in, 4H) and the recurrence (B, H) @ (H, 4H), T times."""
    N = directions(cfg)
    return [(cfg.D if k == 0 else N * cfg.H) for k in range(cfg.L) for _ in range(N)]


def forward_flops(cfg, tokens):
    """Gate GEMM flops of one forward: 2*tokens*(D_k + H)*4H per layer and
    direction (tokens = valid (t, b) positions)."""
    return sum(2 * tokens * (k_in + cfg.H) * 4 * cfg.H for k_in in gemm_shapes(cfg))


def draw_lengths(cfg, seed):
    if not cfg.varlen:
        return None
    rng = np.random.default_rng([seed, 1])
    return rng.integers(cfg.T // 2, cfg.T, size=cfg.B, endpoint=True, dtype=np.int64)


def interleaved(fns, repeats, warmup, reset=None, pause_after=None):
    """{name: [seconds]} for each fn in {name: fn}, the calls interleaved and
    their order rotated every repeat; reset(name) runs before each call,
    outside the timed region; pause_after {name: seconds} lengthens the pause
    after that fn's calls."""
    names = list(fns)
    times = {n: [] for n in names}
    last = None
    for i in range(warmup + repeats):
        k = i % len(names)
        for name in names[k:] + names[:k]:
            if reset:
                reset(name)
            time.sleep((pause_after or {}).get(last, PAUSE))
            last = name
            t0 = time.perf_counter()
            fns[name]()
            dt = time.perf_counter() - t0
            if i >= warmup:
                times[name].append(dt)
    return times


def med_ms(ts):
    return 1e3 * statistics.median(ts)


def spread(ts):
    """(p75 - p25) / median, in percent: the noise of a timing."""
    if len(ts) < 4:
        return float("nan")
    q = statistics.quantiles(ts, n=4)
    return 100.0 * (q[2] - q[0]) / statistics.median(ts)


def compare(ref, got):
    """(max abs diff, max relative diff) over the arrays both dicts name;
    relative to each reference array's max |value|."""
    abs_d = rel_d = 0.0
    for k, r in ref.items():
        if k not in got:
            continue
        r, g = np.asarray(r, np.float64), np.asarray(got[k], np.float64)
        if r.shape != g.shape:
            raise SystemExit("FAIL: %s has shape %s, expected %s" % (k, g.shape, r.shape))
        d = float(np.max(np.abs(r - g))) if r.size else 0.0
        if not d == d:  # NaN
            return float("nan"), float("nan")
        abs_d = max(abs_d, d)
        rel_d = max(rel_d, d / (float(np.max(np.abs(r))) or 1.0))
    return abs_d, rel_d


def check(label, ref, got, tol):
    a, r = compare(ref, got)
    if not r <= tol:
        raise SystemExit("FAIL %s: outputs disagree with clstm: max abs diff %.3g, "
                         "relative %.3g > %g" % (label, a, r, tol))
    return a


def ort_session(model, threads):
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if not SPIN_ORT:
        # ORT's idle workers otherwise spin after each run, and on 2 cores
        # that starves the next peer's OpenMP team (torch measured 80x slower)
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def ort_int8_model(model):
    """ONNX Runtime's int8 LSTM of the same weights: quantize_dynamic turns
    the LSTM node into DynamicQuantizeLSTM (int8 weights with per-tensor
    scales, activations quantized per call, integer products). The target
    of clstm's own int8 inference."""
    import logging
    import tempfile
    from onnxruntime.quantization import QuantType, quantize_dynamic
    logging.getLogger().setLevel(logging.ERROR)  # its advice to pre-process, per call
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "fp32.onnx"), os.path.join(d, "int8.onnx")
        with open(src, "wb") as f:
            f.write(model.SerializeToString())
        quantize_dynamic(src, dst, weight_type=QuantType.QInt8)
        import onnx
        return onnx.load(dst)


# ------------------------------------------------------------------ peers
class Peers:
    """clstm.LSTM, torch.nn.LSTM and an ONNX Runtime session of the same
    weights (torch's init, copied), with one input x, one dy and lengths."""

    def __init__(self, cfg, threads, seed=0, ort_too=True):
        from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
        from clstm.onnx import lstm_to_onnx
        self._pack, self._pad = pack_padded_sequence, pad_packed_sequence
        self.cfg = cfg
        torch.manual_seed(seed)
        self.tm = torch.nn.LSTM(cfg.D, cfg.H, cfg.L, bidirectional=cfg.bidir)
        self.cm = clstm.LSTM(cfg.D, cfg.H, cfg.L, bidirectional=cfg.bidir, dtype=np.float32,
                             seed=seed)
        self.cm.load_state_dict(self.tm.state_dict())
        self.cq = clstm.quantize(self.cm)  # clstm's int8 model of the same weights
        self.copt = clstm.optim.SGD(self.cm, lr=LR)
        self.topt = torch.optim.SGD(self.tm.parameters(), lr=LR)
        rng = np.random.default_rng(seed)
        self.x = rng.standard_normal((cfg.T, cfg.B, cfg.D), dtype=np.float32)
        self.dy = rng.standard_normal((cfg.T, cfg.B, directions(cfg) * cfg.H), dtype=np.float32)
        self.lengths = draw_lengths(cfg, seed)
        self.tokens = cfg.T * cfg.B
        self.tlengths = None
        if self.lengths is not None:
            self.tokens = int(self.lengths.sum())
            self.tlengths = torch.from_numpy(self.lengths)
            self.dy[np.arange(cfg.T)[:, None] >= self.lengths] = 0
        self.tx = torch.from_numpy(self.x).requires_grad_(True)
        self.tdy = torch.from_numpy(self.dy)
        self.sess = None
        self.sess8 = None
        if ort_too:
            model = lstm_to_onnx(self.cm, lengths=self.lengths is not None)
            self.sess = ort_session(model, threads)
            self.int8_onnx = ort_int8_model(model)
            self.sess8 = ort_session(self.int8_onnx, threads)
            self.fp32_onnx_bytes = model.ByteSize()
            self.feeds = {"X": self.x}
            if self.lengths is not None:
                self.feeds["sequence_lens"] = self.lengths.astype(np.int32)

    def torch_forward(self):
        if self.tlengths is None:
            return self.tm(self.tx)
        packed = self._pack(self.tx, self.tlengths, enforce_sorted=False)
        y, state = self.tm(packed)
        return self._pad(y, total_length=self.cfg.T)[0], state

    # inference
    def clstm_infer(self):
        y, (h, c) = self.cm.forward(self.x, lengths=self.lengths, train=False)
        return {"y": y, "hT": h, "cT": c}

    def clstm_int8_infer(self):
        y, (h, c) = self.cq.forward(self.x, lengths=self.lengths, train=False)
        return {"y": y, "hT": h, "cT": c}

    def torch_infer(self):
        with torch.no_grad():
            y, (h, c) = self.torch_forward()
        return {"y": y.numpy(), "hT": h.numpy(), "cT": c.numpy()}

    def ort_infer(self):
        y, h, c = self.sess.run(None, self.feeds)
        return {"y": y, "hT": h, "cT": c}

    def ort_int8_infer(self):
        y, h, c = self.sess8.run(None, self.feeds)
        return {"y": y, "hT": h, "cT": c}

    # training step: zero grads, forward, backward (with dx), SGD update
    def clstm_train(self):
        self.cm.zero_grad()
        y, (h, c) = self.cm.forward(self.x, lengths=self.lengths, train=True)
        dx, _ = self.cm.backward(self.dy)
        self.copt.step()
        return {"y": y, "hT": h, "cT": c, "dx": dx}

    def torch_train(self):
        self.topt.zero_grad()
        self.tx.grad = None
        y, (h, c) = self.torch_forward()
        (y * self.tdy).sum().backward()
        self.topt.step()
        return {k: v.detach().numpy() for k, v in
                (("y", y), ("hT", h), ("cT", c), ("dx", self.tx.grad))}

    def clstm_after_step(self):
        """Gradients and updated parameters, by torch's names."""
        out = {"grad." + k: v.copy() for k, v in self.cm.named_grads().items()}
        out.update({"param." + k: v.copy() for k, v in self.cm.named_parameters().items()})
        return out

    def torch_after_step(self):
        out = {"grad." + k: p.grad.numpy().copy() for k, p in self.tm.named_parameters()}
        out.update({"param." + k: p.detach().numpy().copy() for k, p in self.tm.named_parameters()})
        return out

    def infer_fns(self):
        fns = {"clstm": self.clstm_infer, "torch": self.torch_infer,
               "clstm_int8": self.clstm_int8_infer}
        if self.sess is not None:
            fns["ort"] = self.ort_infer
            fns["ort_int8"] = self.ort_int8_infer
        return fns

    def train_fns(self):
        return {"clstm": self.clstm_train, "torch": self.torch_train}


# ------------------------------------------------------------------ the BLAS limit
class Limit:
    """sgemm GFLOP/s of scipy_openblas64 at an LSTM's shapes, cached per
    (M, K, N), at 1 thread and at `threads`; the limit is the better one."""

    def __init__(self, threads, quick):
        self.blas = OpenBLAS()
        self.threads = threads
        self.min_time = 0.1 if quick else 0.4
        self.cache = {}

    def rate(self, M, K, N):
        key = (M, K, N)
        if key not in self.cache:
            r1 = self.blas.sgemm_gflops(M, K, N, 1, self.min_time)
            rn = (self.blas.sgemm_gflops(M, K, N, self.threads, self.min_time)
                  if self.threads > 1 else r1)
            self.cache[key] = {"M": M, "K": K, "N": N, "gflops_1t": r1,
                               "gflops_nt": rn, "best": max(r1, rn)}
        return self.cache[key]

    def for_config(self, cfg):
        """The sgemm-bound time of a forward over all T*B positions (each layer
        and direction: one input-projection gemm + T recurrent gemms at the
        measured best rates), the rate that implies, and the shapes' rates."""
        G = 4 * cfg.H
        seconds, shapes = 0.0, []
        for k_in in gemm_shapes(cfg):
            proj = self.rate(cfg.T * cfg.B, k_in, G)
            rec = self.rate(cfg.B, cfg.H, G)
            seconds += 2.0 * cfg.T * cfg.B * k_in * G / (proj["best"] * 1e9)
            seconds += cfg.T * 2.0 * cfg.B * cfg.H * G / (rec["best"] * 1e9)
            shapes += [proj, rec]
        flops = forward_flops(cfg, cfg.T * cfg.B)
        uniq = list({(s["M"], s["K"], s["N"]): s for s in shapes}.values())
        return {"seconds": seconds, "gflops": flops / seconds / 1e9, "shapes": uniq}

    def runner(self, cfg):
        """A function that runs exactly the gate GEMMs of one forward over all
        T*B positions (per layer and direction the input projection, then T
        recurrent products), each at its better thread count: the sgemm-bound
        forward, timed beside the peers so that it shares their noise."""
        G, lib = 4 * cfg.H, self.blas.lib
        gemm, setn = lib.scipy_cblas_sgemm64_, lib.scipy_openblas_set_num_threads64_
        rng = np.random.default_rng(0)
        keep, calls = [], []
        for k_in in gemm_shapes(cfg):
            X = rng.standard_normal((cfg.T * cfg.B, k_in), dtype=np.float32)
            W = rng.standard_normal((G, k_in), dtype=np.float32)
            R = rng.standard_normal((G, cfg.H), dtype=np.float32)
            A = np.empty((cfg.T * cfg.B, G), np.float32)
            h = rng.standard_normal((cfg.B, cfg.H), dtype=np.float32)
            keep += [X, W, R, A, h]
            proj, rec = self.rate(cfg.T * cfg.B, k_in, G), self.rate(cfg.B, cfg.H, G)
            calls.append((1 if proj["gflops_1t"] >= proj["gflops_nt"] else self.threads,
                          (101, 111, 112, cfg.T * cfg.B, G, k_in, 1.0, X.ctypes.data, k_in,
                           W.ctypes.data, k_in, 0.0, A.ctypes.data, G)))
            for t in range(cfg.T):  # a_t += h R^T, into each step's rows of A
                calls.append((1 if rec["gflops_1t"] >= rec["gflops_nt"] else self.threads,
                              (101, 111, 112, cfg.B, G, cfg.H, 1.0, h.ctypes.data, cfg.H,
                               R.ctypes.data, cfg.H, 1.0, A[t * cfg.B:].ctypes.data, G)))

        def run():
            cur = None
            for n, args in calls:
                if n != cur:
                    setn(n)
                    cur = n
                gemm(*args)
            setn(1)
            return keep
        return run


# ------------------------------------------------------------------ sections
def section_configs(args, info, limit):
    rows = []
    for cfg0 in args.configs:
        cfg = cfg0._replace(T=t_of(cfg0, args.quick))
        p = Peers(cfg, args.threads, args.seed)
        lim = limit.for_config(cfg)
        # inference: everyone against clstm, then timing
        ref = p.clstm_infer()
        diffs = {"torch": check(cfg.name + " infer torch", ref, p.torch_infer(), args.tol),
                 "ort": check(cfg.name + " infer ort", ref, p.ort_infer(), args.tol),
                 # int8 is not held to --tol: its deviation from float32 is the result
                 "ort_int8": compare({"y": ref["y"]}, {"y": p.ort_int8_infer()["y"]})[0],
                 "clstm_int8": compare({"y": ref["y"]}, {"y": p.clstm_int8_infer()["y"]})[0]}
        fns = p.infer_fns()
        fns["sgemm"] = limit.runner(cfg)
        # OpenBLAS's woken worker threads busy-wait for a while after a
        # multithreaded call (its THREAD_TIMEOUT, ~0.1 s): let them sleep
        # before the next peer is timed
        t_inf = interleaved(fns, args.repeats, args.warmup, pause_after={"sgemm": 0.3})
        t_gemm = t_inf.pop("sgemm")
        # training step: outputs, dx, gradients and updated parameters
        ref = p.clstm_train()
        ref.update(p.clstm_after_step())
        got = p.torch_train()
        got.update(p.torch_after_step())
        tdiff = check(cfg.name + " train torch", ref, got, args.tol)
        t_tr = interleaved(p.train_fns(), args.repeats, args.warmup)
        fl = forward_flops(cfg, p.tokens)
        for work, ts, dd, factor in (("infer", t_inf, diffs, 1),
                                     ("train", t_tr, {"torch": tdiff}, TRAIN_FLOP_FACTOR)):
            ms = {k: med_ms(v) for k, v in ts.items()}
            gf = fl * factor / (ms["clstm"] * 1e6)
            # the sgemm-bound time of this workload, and the rate it implies
            bound_ms = 1e3 * min(t_gemm) * factor  # a limit: the BLAS's best showing
            lim_gf = forward_flops(cfg, cfg.T * cfg.B) * factor / (bound_ms * 1e6)
            row = {"config": cfg._asdict(), "tokens": p.tokens, "work": work,
                   "ms": ms, "spread_pct": {k: spread(v) for k, v in ts.items()},
                   "ratio": {k: ms[k] / ms["clstm"] for k in ms if k != "clstm"},
                   "clstm_gflops": gf,
                   "pct_sgemm_limit": 100.0 * gf / lim_gf,
                   "pct_fma_peak": (100.0 * gf / info["fma_peak_gflops"]
                                    if info["fma_peak_gflops"] else None),
                   "sgemm_bound_ms": bound_ms, "sgemm_limit_gflops": lim_gf,
                   "sgemm_limit_from_rates_gflops": lim["gflops"], "max_abs_diff": dd,
                   "limit_shapes": lim["shapes"]}
            if work == "infer":
                row["int8"] = int8_summary(p, ms, dd)
            rows.append(row)
            print("  %-7s %-5s clstm %8.2f ms  torch %8.2f ms (x%.2f)%s  clstm %.1f GFLOP/s "
                  "= %.0f%% of sgemm limit  diff %s" % (
                      cfg.name, work, ms["clstm"], ms["torch"], row["ratio"]["torch"],
                      "  ort %8.2f ms (x%.2f)  ort-int8 %8.2f ms (x%.2f)" % (
                          ms["ort"], row["ratio"]["ort"], ms["ort_int8"],
                          row["ratio"]["ort_int8"]) if "ort" in ms else "",
                      gf, row["pct_sgemm_limit"],
                      " ".join("%s %.1e" % kv for kv in dd.items())), flush=True)
            if work == "infer":
                i8 = row["int8"]
                print("  %-7s int8  clstm %8.2f ms  ort-int8 %8.2f ms (x%.2f)  deviation from "
                      "float32: clstm %.1e, ort %.1e  bytes: fp32 %d, clstm-int8 %d, ort-int8 "
                      "%d" % (cfg.name, i8["clstm_ms"], i8["ort_ms"], i8["ort_over_clstm"],
                              i8["deviation"]["clstm"], i8["deviation"]["ort"],
                              i8["bytes"]["fp32"], i8["bytes"]["clstm_int8"],
                              i8["bytes"]["ort_int8"]), flush=True)
        del p
        gc.collect()
    return rows


def int8_summary(p, ms, deviation):
    """clstm's int8 model against ONNX Runtime's (DynamicQuantizeLSTM) on
    the same weights: times, the ratio, the deviations from float32 and the
    model sizes (clstm's safetensors files; ORT's serialized ONNX)."""
    return {"clstm_ms": ms["clstm_int8"], "ort_ms": ms.get("ort_int8"),
            "ort_over_clstm": (ms["ort_int8"] / ms["clstm_int8"] if "ort_int8" in ms
                               else None),
            "kernel": clstm.int8_kernel(),
            "deviation": {"clstm": deviation["clstm_int8"], "ort": deviation.get("ort_int8")},
            "bytes": {"fp32": len(clstm.save_bytes(p.cm)),
                      "clstm_int8": len(clstm.save_bytes(p.cq)),
                      "ort_fp32": getattr(p, "fp32_onnx_bytes", None),
                      "ort_int8": p.int8_onnx.ByteSize() if p.sess8 is not None else None}}


def section_streaming(args):
    D = H = 256
    T = 50 if args.quick else 200
    steps = 300 if args.quick else 3000
    chunk = 100
    cfg = Config("stream", T, 1, D, H, 1)
    p = Peers(cfg, args.threads, args.seed, ort_too=False)
    from clstm.onnx import lstm_to_onnx
    sess_step = ort_session(lstm_to_onnx(p.cm, initial_state=True), args.threads)
    sess_step8 = ort_session(ort_int8_model(lstm_to_onnx(p.cm, initial_state=True)),
                             args.threads)
    sess_seq = ort_session(lstm_to_onnx(p.cm), args.threads)
    cell = torch.nn.LSTMCell(D, H)
    with torch.no_grad():
        for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, n).copy_(getattr(p.tm, n + "_l0"))
    xs = p.x[:, 0, :]  # (T, D)
    txs = torch.from_numpy(p.x)  # (T, 1, D)
    def ort_zero():
        return {"initial_h": np.zeros((1, 1, H), np.float32),
                "initial_c": np.zeros((1, 1, H), np.float32)}

    st = {"clstm": p.cm.initial_state(1), "clstm_int8": p.cq.initial_state(1),
          "torch_lstm": None, "torch_cell": None, "ort": ort_zero(), "ort_int8": ort_zero()}
    pos = {k: 0 for k in st}

    def reset_all():
        st["clstm"].reset()
        st["clstm_int8"].reset()
        st["torch_lstm"] = st["torch_cell"] = None
        st["ort"], st["ort_int8"] = ort_zero(), ort_zero()
        for k in pos:
            pos[k] = 0

    def step_clstm(t):
        y, st["clstm"] = p.cm.step(xs[t:t + 1], st["clstm"])
        return y

    def step_clstm_int8(t):
        y, st["clstm_int8"] = p.cq.step(xs[t:t + 1], st["clstm_int8"])
        return y

    def step_torch_lstm(t):
        with torch.no_grad():
            y, st["torch_lstm"] = p.tm(txs[t:t + 1], st["torch_lstm"])
        return y[0].numpy()

    def step_torch_cell(t):
        with torch.no_grad():
            h, c = cell(txs[t], st["torch_cell"])
        st["torch_cell"] = (h, c)
        return h.numpy()

    def ort_stepper(name, sess):
        def step(t):
            y, h, c = sess.run(None, {"X": p.x[t:t + 1], **st[name]})
            st[name] = {"initial_h": h, "initial_c": c}
            return y[0]
        return step

    steppers = {"clstm": step_clstm, "torch_lstm": step_torch_lstm,
                "torch_cell": step_torch_cell, "ort": ort_stepper("ort", sess_step),
                "clstm_int8": step_clstm_int8, "ort_int8": ort_stepper("ort_int8", sess_step8)}
    # check: T steps of each against clstm's whole-sequence forward (int8:
    # clstm's stream against its own whole call, bit for bit; ORT's int8
    # deviation from float32 is recorded, not checked)
    ref_y = p.clstm_infer()["y"][:, 0, :]
    ref = {"clstm_int8": p.clstm_int8_infer()["y"][:, 0, :]}
    reset_all()
    diffs = {}
    for name, fn in steppers.items():
        ys = np.stack([np.asarray(fn(t)).reshape(H) for t in range(T)])
        if name == "ort_int8":
            diffs[name] = compare({"y": ref_y}, {"y": ys})[0]
        else:
            diffs[name] = check("streaming " + name, {"y": ref.get(name, ref_y)}, {"y": ys},
                                0.0 if name in ref else args.tol)
    reset_all()
    # timing: rounds of `chunk` steps per peer, peers rotated, every step timed
    per = {k: [] for k in steppers}
    names = list(steppers)
    rounds = max(1, steps // chunk)
    for r in range(rounds + 1):  # round 0 is a warm-up
        k = r % len(names)
        for name in names[k:] + names[:k]:
            fn = steppers[name]
            time.sleep(PAUSE)
            for _ in range(chunk):
                t = pos[name]
                t0 = time.perf_counter()
                fn(t)
                dt = time.perf_counter() - t0
                if r:
                    per[name].append(dt)
                pos[name] = (t + 1) % T
    step_us = {k: 1e6 * statistics.median(v) for k, v in per.items()}
    # whole sequence of T steps in one call, / T
    seq_fns = {"clstm": p.clstm_infer, "torch_lstm": p.torch_infer,
               "ort": lambda: sess_seq.run(None, {"X": p.x}), "clstm_int8": p.clstm_int8_infer}
    ts = interleaved(seq_fns, 3 if args.quick else 15, 2)
    seq_us = {k: 1e6 * statistics.median(v) / T for k, v in ts.items()}
    c_res = run_c_stream(args, D, H, T, steps, args.threads)
    c_one = run_c_stream(args, D, H, T, steps, 1) if args.threads > 1 else None
    c_int8 = run_c_stream(args, D, H, T, steps, args.threads, int8=True)
    blas = OpenBLAS()
    mt = 0.1 if args.quick else 0.4
    bound = {"sgemm_m1_us": blas.one_thread_us("sgemm", H, 4 * H, mt),
             "sgemv_us": blas.one_thread_us("sgemv", H, 4 * H, mt)}
    print("  one (1 x %d) @ (%d x %d) product, 1 thread: sgemm %.1f us, sgemv %.1f us"
          % (H, H, 4 * H, bound["sgemm_m1_us"], bound["sgemv_us"]))
    out = {"blas_one_product": bound, "D": D, "H": H, "B": 1, "T": T, "steps": rounds * chunk, "step_us": step_us,
           "step_p90_us": {k: 1e6 * statistics.quantiles(v, n=10)[8] for k, v in per.items()},
           "seq_per_step_us": seq_us, "max_abs_diff": diffs, "c": c_res,
           "c_1thread": c_one, "c_int8": c_int8, "int8_kernel": clstm.int8_kernel()}
    print("  per step (us, median): " + "  ".join("%s %.1f" % kv for kv in step_us.items()))
    print("  inside one T=%d call (us/step): " % T
          + "  ".join("%s %.1f" % kv for kv in seq_us.items()))
    for c in (c_res, c_one, c_int8):
        if c and c.get("step_ns_median"):
            print("  C clstm_forward_ex T=1, %s, %d thread(s): %.1f us/step; whole call / T: "
                  "%.1f us/step" % ("int8 (%s)" % c["kernel"] if c["int8"] else "float32",
                                    c["threads"], c["step_ns_median"] / 1e3,
                                    c["seq_per_step_ns"] / 1e3))
        elif c:
            print("  C: " + c.get("note", "?"))
    return out


def run_c_stream(args, D, H, T, steps, threads, int8=False):
    """Build (make) and run examples/bench_step; its JSON, or a note."""
    exe = os.path.join(ROOT, "build", "examples", "bench_step")
    mk = subprocess.run(["make", "-s", "build/examples/bench_step"], cwd=ROOT,
                        capture_output=True, text=True)
    if mk.returncode != 0 or not os.path.exists(exe):
        return {"note": "could not build examples/bench_step (make): "
                + (mk.stderr.strip().splitlines() or ["?"])[-1]}
    cmd = [exe, "--input", str(D), "--hidden", str(H), "--threads", str(threads),
           "--steps", str(max(steps, T)), "--seq", str(T)] + (["--int8"] if int8 else [])
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        return {"note": "bench_step failed: " + r.stderr.strip()}
    res = json.loads(r.stdout)
    res["command"] = " ".join(cmd[1:])
    return res


# memory: each measurement in a fresh interpreter
def peak_rss_kb():
    """VmHWM from /proc/self/status in kB, else ru_maxrss (kB on Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def mem_child(spec):
    """Run in a subprocess: spec = {lib, work, T, B, D, H, threads}. Prints
    {baseline_kb, peak_kb, out_bytes, ws_bytes} as JSON."""
    lib, work = spec["lib"], spec["work"]
    T, B, D, H = spec["T"], spec["B"], spec["D"], spec["H"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((T, B, D), dtype=np.float32)
    dy = rng.standard_normal((T, B, H), dtype=np.float32)
    ws = None
    if lib == "clstm":
        clstm.set_num_threads(spec["threads"])
        m = clstm.LSTM(D, H, 1, dtype=np.float32, seed=0)
        opt = clstm.optim.SGD(m, lr=LR)
        ws = m._m.workspace_size(T, B, work == "train")

        def run():
            if work == "infer":
                return [m.forward(x, train=False)]
            m.zero_grad()
            out = m.forward(x, train=True)
            dx = m.backward(dy)
            opt.step()
            return [out, dx]
    else:
        import torch as t
        t.set_num_threads(spec["threads"])
        m = t.nn.LSTM(D, H, 1)
        opt = t.optim.SGD(m.parameters(), lr=LR)
        tx, tdy = t.from_numpy(x), t.from_numpy(dy)

        def run():
            if work == "infer":
                with t.no_grad():
                    return [m(tx)]
            opt.zero_grad()
            txg = tx.detach().requires_grad_(True)
            y, _ = m(txg)
            (y * tdy).sum().backward()
            opt.step()
            return [y, txg.grad]
    gc.collect()
    # The peak RSS of this process: VmHWM (what ru_maxrss reports, less the
    # parent's RSS that ru_maxrss inherits across fork + exec). Imports may
    # have pushed it above the current RSS; writing 5 to clear_refs resets it
    # to the current RSS, so the baseline is the RSS now.
    reset = False
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        reset = True
    except OSError:
        pass
    base = peak_rss_kb()
    out = run()
    del out
    out = run()  # a second step: what stays allocated between steps counts too
    peak = peak_rss_kb()
    del out
    out_bytes = T * B * H * 4 * (1 if work == "infer" else 2)  # y (+ dx, D = H)
    print(json.dumps({"baseline_kb": base, "peak_kb": peak, "out_bytes": out_bytes,
                      "ws_bytes": ws, "hwm_reset": reset}))


def section_memory(args):
    B, DH = (16, 256) if args.quick else (64, 512)
    T1 = 25 if args.quick else 100
    cases = [(lib, work, T1) for lib in ("clstm", "torch") for work in ("infer", "train")]
    cases += [(lib, "infer", 10 * T1) for lib in ("clstm", "torch")]
    rows = []
    for lib, work, T in cases:
        spec = {"lib": lib, "work": work, "T": T, "B": B, "D": DH, "H": DH,
                "threads": args.threads}
        r = subprocess.run([sys.executable, os.path.abspath(__file__), "--_mem", json.dumps(spec)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise SystemExit("memory child failed: %s\n%s" % (spec, r.stderr))
        res = json.loads(r.stdout.strip().splitlines()[-1])
        res.update(spec)
        res["delta_mb"] = (res["peak_kb"] - res["baseline_kb"]) / 1024
        res["beyond_outputs_mb"] = res["delta_mb"] - res["out_bytes"] / 2**20
        rows.append(res)
        print("  %-5s %-5s T=%-5d B=%d D=H=%d: +%.1f MB peak RSS (%.1f MB beyond y%s)%s"
              % (lib, work, T, B, DH, res["delta_mb"], res["beyond_outputs_mb"],
                 "" if work == "infer" else " and dx",
                 "; workspace %.1f MB" % (res["ws_bytes"] / 2**20) if res["ws_bytes"] else ""),
              flush=True)
    return rows


def time_pair(cfg, args, repeats, warmup, works=("infer", "train")):
    """{work: {peer: [seconds]}} for clstm and torch on cfg."""
    p = Peers(cfg, args.threads, args.seed, ort_too=False)
    out = {}
    for work in works:
        fns = p.infer_fns() if work == "infer" else p.train_fns()
        out[work] = interleaved(fns, repeats, warmup)
    return out


def section_scaling(args):
    base = Config("base", 100, 32, 256, 256, 1)
    if args.quick:
        base = base._replace(T=25)
    Ts = [base.T // 2, base.T, base.T * 2]
    points = [("T", base._replace(T=t)) for t in Ts]
    points += [("B", base._replace(B=b)) for b in (16, 64)]
    points += [("H", base._replace(D=h, H=h)) for h in (128, 512)]
    rows = []
    reps = 3 if args.quick else 7
    for var, cfg in points:
        ts = time_pair(cfg, args, reps, 1)
        for work, t in ts.items():
            ms = {k: med_ms(v) for k, v in t.items()}
            rows.append({"vary": var, "config": cfg._asdict(), "work": work, "ms": ms,
                         "ratio": ms["torch"] / ms["clstm"]})
            print("  %s T=%-4d B=%-3d H=%-4d %-5s clstm %8.2f ms  torch %8.2f ms  (x%.2f)"
                  % (var, cfg.T, cfg.B, cfg.H, work, ms["clstm"], ms["torch"],
                     ms["torch"] / ms["clstm"]), flush=True)
    return rows


def section_threads(args):
    rows = []
    for name in ("large", "small"):
        cfg = CONFIGS[name]
        cfg = cfg._replace(T=t_of(cfg, args.quick))
        p = Peers(cfg, args.threads, args.seed, ort_too=False)
        for work in ("infer", "train"):
            base = p.infer_fns() if work == "infer" else p.train_fns()
            fns, setters = {}, {}
            for lib, fn in base.items():
                for n in sorted({1, args.threads}):
                    fns["%s@%d" % (lib, n)] = fn
                    setters["%s@%d" % (lib, n)] = n

            def reset(key):
                n = setters[key]
                clstm.set_num_threads(n)
                torch.set_num_threads(n)
            t = interleaved(fns, max(3, args.repeats // 2), 1, reset)
            ms = {k: med_ms(v) for k, v in t.items()}
            row = {"config": cfg._asdict(), "work": work, "ms": ms}
            for lib in base:
                row[lib + "_speedup"] = ms["%s@1" % lib] / ms["%s@%d" % (lib, args.threads)]
            rows.append(row)
            print("  %-6s %-5s " % (name, work) + "  ".join("%s %.2f ms" % kv for kv in ms.items())
                  + "  speedup clstm x%.2f torch x%.2f" % (row["clstm_speedup"],
                                                          row["torch_speedup"]), flush=True)
        clstm.set_num_threads(args.threads)
        torch.set_num_threads(args.threads)
    return rows


def section_contention(args):
    """Each repeat times clstm and torch with the busy loop stopped
    (SIGSTOP) and running (SIGCONT), so both states share the machine's
    other noise."""
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    rows = []
    try:
        os.kill(busy.pid, signal.SIGSTOP)
        for name in ("small", "large"):
            cfg = CONFIGS[name]
            cfg = cfg._replace(T=t_of(cfg, args.quick))
            p = Peers(cfg, args.threads, args.seed, ort_too=False)
            for work in ("infer", "train"):
                base = p.infer_fns() if work == "infer" else p.train_fns()
                fns, state = {}, {}
                for lib, fn in base.items():
                    for mode in ("quiet", "busy"):
                        fns[lib + "/" + mode] = fn
                        state[lib + "/" + mode] = mode

                def reset(key):
                    os.kill(busy.pid, signal.SIGCONT if state[key] == "busy" else signal.SIGSTOP)
                    time.sleep(0.05)  # let the scheduler see the change
                t = interleaved(fns, max(3, args.repeats // 2), 1, reset)
                os.kill(busy.pid, signal.SIGSTOP)
                ms = {k: med_ms(v) for k, v in t.items()}
                row = {"config": cfg._asdict(), "work": work, "ms": ms}
                for lib in base:
                    row[lib + "_slowdown"] = ms[lib + "/busy"] / ms[lib + "/quiet"]
                rows.append(row)
                print("  %-6s %-5s clstm %.2f -> %.2f ms (x%.2f)  torch %.2f -> %.2f ms (x%.2f)"
                      % (name, work, ms["clstm/quiet"], ms["clstm/busy"], row["clstm_slowdown"],
                         ms["torch/quiet"], ms["torch/busy"], row["torch_slowdown"]),
                      flush=True)
    finally:
        busy.kill()
        busy.wait()
    return rows


# ------------------------------------------------------------------ report
def md_table(head, rows):
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return lines


def cfg_label(c):
    s = "%s T=%d B=%d D=%d H=%d" % (c["name"], c["T"], c["B"], c["D"], c["H"])
    if c["L"] > 1:
        s += " L=%d" % c["L"]
    if c["bidir"]:
        s += " bidir"
    if c["varlen"]:
        s += " varlen"
    return s


def f2(v, fmt="%.2f"):
    return "-" if v is None else fmt % v


def report(res, args):
    info = res["machine"]
    L = ["# clstm against torch.nn.LSTM and ONNX Runtime", ""]
    if args.quick:
        L += ["**QUICK smoke run (`--quick`: T cut to a quarter, few repeats): for checking "
              "the script, not for quoting.**", ""]
    la = info["loadavg_start"]
    L += ["- date: %s" % info["date"],
          "- CPU: %s, %d logical cores; clock %s MHz (from /proc/cpuinfo: nominal, not "
          "measured)" % (info["cpu"], info["cores"], f2(info["mhz"], "%.0f")),
          ("- FMA ceiling: %s GFLOP/s with %d threads, %s GFLOP/s with 1, measured "
           "(bench/fma_peak.c: 12 independent chains of %d-lane FMAs per thread, best of 5; "
           "at the clock the cores really run)" % (
               f2(info["fma_peak_gflops"], "%.1f"), info["fma_peak_measured"]["threads"],
               f2(info["fma_peak_measured"]["gflops_1"], "%.1f"),
               info["fma_peak_measured"]["lanes"])
           if info.get("fma_peak_how") == "measured" else
           "- FMA ceiling: %s GFLOP/s = %d cores x 2 FMA units x %d float32 lanes x 2 flops x "
           "clock (assumed 2 FMA units per core; bench/fma_peak.c could not be built)"
           % (f2(info["fma_peak_gflops"], "%.1f"), info["cores"], info["simd_lanes_f32"])),
          "- BLAS: scipy_openblas64 (the library clstm links), kernel `%s`; config `%s`"
          % (info["blas_corename"], info["blas_config"]),
          "- versions: " + ", ".join("%s %s" % kv for kv in info["versions"].items()),
          "- threads: %d (clstm.set_num_threads, torch.set_num_threads; ORT "
          "intra_op_num_threads, inter_op 1, sequential)" % info["threads"],
          "- load average at start: %.2f %.2f %.2f (other processes skew timings)" % tuple(la),
          "- command: `%s`" % info["command"], ""]
    if "configs" in res:
        rows = res["configs"]
        L += ["## Configs: inference and training step", "",
              "Median ms over %d repeats (+%d warm-up), peers interleaved. Training step = "
              "zero_grad + forward + backward of sum(y*dy) (dx included) + SGD update "
              "(lr %g); ONNX Runtime has no training. x/clstm = peer ms / clstm ms (> 1: "
              "clstm faster). GFLOP/s counts the gate GEMMs over valid positions (train = "
              "%dx forward). sgemm-bound ms: scipy_openblas64's sgemm running the same "
              "GEMMs at the same shapes and nothing else (per layer and direction one "
              "(T*B x D_k) @ (D_k x 4H) and T (B x H) @ (H x 4H), each at the better of 1 "
              "and %d BLAS threads), timed interleaved with the peers, the fastest repeat (a "
              "limit: the BLAS's best showing); training = 3x that. "
              "%% sgemm limit = clstm's GFLOP/s as a share of that sgemm rate (for varlen "
              "clstm's flops count valid positions only, sgemm's all T*B). diff = max abs difference from clstm (checked before "
              "timing: relative to the largest value <= %g for every output, gradient and "
              "updated parameter; ort_int8, ONNX Runtime's DynamicQuantizeLSTM from "
              "quantize_dynamic on the same weights, is not held to it: its diff is y's "
              "deviation from float32)."
              % (args.repeats, args.warmup, LR, TRAIN_FLOP_FACTOR, args.threads, args.tol), ""]
        body = []
        for r in rows:
            ms, ra = r["ms"], r["ratio"]
            body.append((cfg_label(r["config"]), r["work"], "%.2f" % ms["clstm"],
                         "%.2f" % ms["torch"], f2(ms.get("ort")), f2(ms.get("ort_int8")),
                         "%.2f" % ra["torch"], f2(ra.get("ort")), f2(ra.get("ort_int8")),
                         "%.1f" % r["clstm_gflops"],
                         "%.0f%%" % r["pct_sgemm_limit"], f2(r["pct_fma_peak"], "%.0f%%"),
                         "%.1f" % r["sgemm_bound_ms"],
                         " ".join("%s %.1e" % kv for kv in r["max_abs_diff"].items()),
                         "/".join("-" if v != v else "%.0f" % v for v in
                                  (r["spread_pct"]["clstm"], r["spread_pct"]["torch"]))))
        L += md_table(("config", "work", "clstm ms", "torch ms", "ORT ms", "ORT int8 ms",
                       "torch/clstm", "ORT/clstm", "ORT int8/clstm", "clstm GFLOP/s", "% sgemm limit", "% FMA peak",
                       "sgemm-bound ms", "diff", "IQR % c/t"), body)
        i8 = [r for r in rows if r.get("int8")]
        if i8:
            L += ["", "### int8 inference", "",
                  "clstm's quantized model (clstm.quantize: int8 weights, one scale per row; "
                  "activations quantized per row; int8 kernel `%s`) against ONNX Runtime's "
                  "DynamicQuantizeLSTM (onnxruntime.quantization.quantize_dynamic, QInt8) on "
                  "the same weights, timed in the same interleaved runs as the table above. "
                  "ORT/clstm > 1: clstm faster. deviation = max |y_int8 - y_float32|. bytes: "
                  "clstm's safetensors files; ORT's serialized ONNX models."
                  % i8[0]["int8"]["kernel"], ""]
            L += md_table(("config", "clstm int8 ms", "ORT int8 ms", "ORT int8/clstm int8",
                           "clstm fp32 ms", "deviation clstm", "deviation ORT",
                           "bytes fp32", "bytes clstm int8", "bytes ORT int8"),
                          [(cfg_label(r["config"]), "%.2f" % r["int8"]["clstm_ms"],
                            f2(r["int8"]["ort_ms"]), f2(r["int8"]["ort_over_clstm"]),
                            "%.2f" % r["ms"]["clstm"],
                            "%.1e" % r["int8"]["deviation"]["clstm"],
                            f2(r["int8"]["deviation"]["ort"], "%.1e"),
                            "%d" % r["int8"]["bytes"]["fp32"],
                            "%d" % r["int8"]["bytes"]["clstm_int8"],
                            f2(r["int8"]["bytes"]["ort_int8"], "%d")) for r in i8])
        shapes = {}
        for r in rows:
            for s in r["limit_shapes"]:
                shapes[(s["M"], s["K"], s["N"])] = s
        L += ["", "sgemm rates measured in this run, each shape alone (scipy_cblas_sgemm64_ "
              "via ctypes, C = A W^T as clstm calls it; used to pick the thread count of "
              "each GEMM in the sgemm-bound run):", ""]
        L += md_table(("M x K @ K x N", "GFLOP/s 1 thread", "GFLOP/s %d threads" % args.threads),
                      [("%d x %d @ %d x %d" % (s["M"], s["K"], s["K"], s["N"]),
                        "%.1f" % s["gflops_1t"], "%.1f" % s["gflops_nt"])
                       for s in sorted(shapes.values(), key=lambda s: (s["N"], -s["M"]))])
        if res.get("chart"):
            L += ["", "![time per config](%s)" % os.path.basename(res["chart"])]
        elif res.get("chart_note"):
            L += ["", res["chart_note"]]
        L += [""]
    if "streaming" in res:
        s = res["streaming"]
        L += ["## Streaming latency, B=1, D=H=%d" % s["H"], "",
              "One step at a time: median (p90) over %d steps per peer, each step timed "
              "alone, peers rotated in chunks of 100. Whole-sequence: one call over T=%d "
              "steps, median time / T. Checked first: T steps of each stepper against "
              "clstm's whole-sequence output (clstm int8: its own whole-sequence output, "
              "bit for bit; ORT int8: its diff is its deviation from float32)."
              % (s["steps"], s["T"]), ""]
        names = {"clstm": "clstm LSTM.step (LSTMState)", "torch_lstm": "torch nn.LSTM, T=1",
                 "torch_cell": "torch nn.LSTMCell", "ort": "ORT session.run, T=1 + state",
                 "clstm_int8": "clstm int8 (clstm.quantize) LSTM.step",
                 "ort_int8": "ORT int8 (DynamicQuantizeLSTM) session.run, T=1 + state"}
        body = [(names[k], "%.1f (%.1f)" % (v, s["step_p90_us"][k]),
                 f2(s["seq_per_step_us"].get(k), "%.1f"), "%.1e" % s["max_abs_diff"][k])
                for k, v in s["step_us"].items()]
        cs = [c for c in (s["c"], s.get("c_1thread"), s.get("c_int8"))
              if c and c.get("step_ns_median")]
        for c in cs:
            body.append(("C: clstm_forward_ex T=1 in place, %s, %d thread(s) "
                         "(examples/bench_step)"
                         % ("int8 (%s)" % c["kernel"] if c.get("int8") else "float32",
                            c["threads"]),
                         "%.1f (%.1f)" % (c["step_ns_median"] / 1e3, c["step_ns_p90"] / 1e3),
                         "%.1f" % (c["seq_per_step_ns"] / 1e3),
                         "%.1e" % c["stream_vs_seq_max_abs_diff"]))
        L += md_table(("peer", "us per step from Python/C", "us per step inside one call",
                       "diff"), body)
        b = s["blas_one_product"]
        L += ["", "A step needs two (1 x %d) @ (%d x %d) products (input and recurrent; "
              "inside one call the input ones are batched over T). The same BLAS, one "
              "thread, per product: sgemm with M=1 %.1f us, sgemv %.1f us."
              % (s["H"], s["H"], 4 * s["H"], b["sgemm_m1_us"], b["sgemv_us"])]
        if not cs:
            L += ["", "C benchmark skipped: " + s["c"].get("note", "?")]
        for c in cs:
            L += ["", "C: `build/examples/bench_step %s` (%d steps)." % (c["command"],
                                                                           c["steps"])]
        L += [""]
    if "memory" in res:
        rows = res["memory"]
        L += ["## Peak memory (RSS)", "",
              "Each row a fresh interpreter: peak RSS after two steps of the workload minus "
              "the RSS after imports, model and data (x, dy). Peak RSS is VmHWM from "
              "/proc/self/status, the number ru_maxrss reports but without the parent's RSS "
              "that ru_maxrss inherits across fork + exec; it is reset after the imports "
              "(writing 5 to /proc/self/clear_refs; %s). Beyond outputs: minus the "
              "arrays the call returns (y; and dx in training), which any library must "
              "allocate. clstm's workspace: clstm_workspace_size."
              % ("done" if all(r["hwm_reset"] for r in rows) else
                 "NOT possible here, so deltas may be underestimates"), ""]
        L += md_table(("lib", "work", "T", "B", "D=H", "peak RSS delta MB", "beyond outputs MB",
                       "clstm workspace MB", "baseline MB"),
                      [(r["lib"], r["work"], r["T"], r["B"], r["D"], "%.1f" % r["delta_mb"],
                        "%.1f" % r["beyond_outputs_mb"],
                        f2(r["ws_bytes"] / 2**20 if r["ws_bytes"] else None, "%.2f"),
                        "%.0f" % (r["baseline_kb"] / 1024)) for r in rows])
        L += [""]
    if "scaling" in res:
        L += ["## Scaling with T, B, H (one at a time from T=%d B=32 D=H=256 L=1)"
              % (25 if args.quick else 100), ""]
        L += md_table(("vary", "T", "B", "D=H", "work", "clstm ms", "torch ms", "torch/clstm"),
                      [(r["vary"], r["config"]["T"], r["config"]["B"], r["config"]["H"],
                        r["work"], "%.2f" % r["ms"]["clstm"], "%.2f" % r["ms"]["torch"],
                        "%.2f" % r["ratio"]) for r in res["scaling"]])
        L += [""]
    if "threads" in res:
        n = args.threads
        L += ["## 1 thread against %d" % n, ""]
        L += md_table(("config", "work", "clstm 1t ms", "clstm %dt ms" % n, "clstm speedup",
                       "torch 1t ms", "torch %dt ms" % n, "torch speedup"),
                      [(cfg_label(r["config"]), r["work"], "%.2f" % r["ms"]["clstm@1"],
                        "%.2f" % r["ms"]["clstm@%d" % n], "%.2f" % r["clstm_speedup"],
                        "%.2f" % r["ms"]["torch@1"], "%.2f" % r["ms"]["torch@%d" % n],
                        "%.2f" % r["torch_speedup"]) for r in res["threads"]])
        L += [""]
    if "contention" in res:
        L += ["## Contention: one busy-loop process beside the benchmark", "",
              "A `python -c \"while True: pass\"` process, stopped (SIGSTOP) or running "
              "(SIGCONT) call by call, interleaved within each repeat.", ""]
        L += md_table(("config", "work", "clstm quiet ms", "clstm busy ms", "clstm slowdown",
                       "torch quiet ms", "torch busy ms", "torch slowdown"),
                      [(cfg_label(r["config"]), r["work"], "%.2f" % r["ms"]["clstm/quiet"],
                        "%.2f" % r["ms"]["clstm/busy"], "%.2f" % r["clstm_slowdown"],
                        "%.2f" % r["ms"]["torch/quiet"], "%.2f" % r["ms"]["torch/busy"],
                        "%.2f" % r["torch_slowdown"]) for r in res["contention"]])
        L += [""]
    return "\n".join(L) + "\n"


def chart(rows, path):
    """Grouped bars of ms per config, inference and training; the file's
    path, or (None, a note) without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None, ("(No chart: matplotlib is not installed; `pip install matplotlib` "
                      "and rerun for RESULTS.png.)")
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, work, peers in ((axes[0], "infer", ("clstm", "torch", "ort")),
                            (axes[1], "train", ("clstm", "torch"))):
        rs = [r for r in rows if r["work"] == work]
        names = [r["config"]["name"] for r in rs]
        w = 0.8 / len(peers)
        for i, peer in enumerate(peers):
            xs = [j + (i - (len(peers) - 1) / 2) * w for j in range(len(rs))]
            ax.bar(xs, [r["ms"].get(peer, 0) for r in rs], w,
                   label={"ort": "ONNX Runtime"}.get(peer, peer))
        ax.set_xticks(range(len(rs)))
        ax.set_xticklabels(names)
        ax.set_yscale("log")
        ax.set_ylabel("ms (median, log scale)")
        ax.set_title("inference" if work == "infer" else "training step (fwd+bwd+SGD)")
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path, None


# ------------------------------------------------------------------ main
def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke run: T cut to a quarter, few repeats and steps")
    p.add_argument("--only", default=",".join(SECTIONS),
                   help="comma-separated sections of %s" % ",".join(SECTIONS))
    p.add_argument("--configs", default="all",
                   help="comma-separated subset of %s for the configs section"
                   % ",".join(CONFIGS))
    p.add_argument("--repeats", type=int, help="timed repeats (default 10; 3 with --quick)")
    p.add_argument("--warmup", type=int, help="untimed repeats first (default 2; 1 quick)")
    p.add_argument("--threads", type=int, default=2, help="threads for every peer")
    p.add_argument("--tol", type=float, default=TOL,
                   help="max |peer - clstm| / max |clstm| per output")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", metavar="PATH", help="also write every number here")
    p.add_argument("--results", default=os.path.join(HERE, "RESULTS.md"),
                   help="Markdown report (the chart goes beside it); '' for none")
    p.add_argument("--ort-spin", action="store_true",
                   help="leave ONNX Runtime's idle-thread spinning on (its default; off here "
                   "because on few cores it starves the peer timed next)")
    p.add_argument("--_mem", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._mem:
        return args
    args.only = [s for s in args.only.split(",") if s]
    bad = [s for s in args.only if s not in SECTIONS]
    if bad:
        p.error("unknown section(s) %s; choose from %s" % (bad, ",".join(SECTIONS)))
    names = list(CONFIGS) if args.configs == "all" else args.configs.split(",")
    bad = [n for n in names if n not in CONFIGS]
    if bad:
        p.error("unknown config(s) %s; choose from %s" % (bad, ",".join(CONFIGS)))
    args.configs = [CONFIGS[n] for n in names]
    if args.repeats is None:
        args.repeats = 3 if args.quick else 10
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.repeats < 1 or args.warmup < 0 or args.threads < 1:
        p.error("need --repeats >= 1, --warmup >= 0, --threads >= 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args._mem:
        mem_child(json.loads(args._mem))
        return 0
    global SPIN_ORT
    SPIN_ORT = args.ort_spin
    load_peers()
    clstm.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    info = machine_info(args)
    print("%s, %d cores, %s MHz nominal; BLAS %s; FMA ceiling %s GFLOP/s; load %.2f"
          % (info["cpu"], info["cores"], f2(info["mhz"], "%.0f"), info["blas_corename"],
             f2(info["fma_peak_gflops"], "%.0f"), info["loadavg_start"][0]))
    print("versions: " + ", ".join("%s %s" % kv for kv in info["versions"].items()))
    res = {"machine": info, "repeats": args.repeats, "warmup": args.warmup,
           "tol": args.tol, "sections": args.only}
    limit = Limit(args.threads, args.quick)
    for sec in SECTIONS:
        if sec not in args.only:
            continue
        t0 = time.perf_counter()
        print("== %s" % sec, flush=True)
        if sec == "configs":
            res[sec] = section_configs(args, info, limit)
        else:
            res[sec] = globals()["section_" + sec](args)
        print("   (%.0f s)" % (time.perf_counter() - t0), flush=True)
    res["machine"]["loadavg_end"] = os.getloadavg()
    if args.results:
        if "configs" in res:
            png = os.path.splitext(args.results)[0] + ".png"
            res["chart"], res["chart_note"] = chart(res["configs"], png)
        with open(args.results, "w") as f:
            f.write(report(res, args))
        print("wrote %s%s" % (args.results, " and " + res["chart"] if res.get("chart") else ""))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1, default=float)
    return 0


if __name__ == "__main__":
    sys.exit(main())
