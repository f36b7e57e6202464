"""A NumPy reference of a quantized (int8) clstm model's forward, written
from include/clstm.h's "Quantized models" section, independently of the
library's code: the tests' oracle for clstm.quantize.

Weights: int8 q with one float32 scale per row (w = q * s). Every product's
input rows are quantized per row, in float32 as the header states:
s = max|row| / 127, q = rint(row * (127 / max|row|)), and the product is
float32(exact integer sum) * float32(s_x * s_w). Everything else (gates,
sigmoid or hard sigmoid, cell state, biases, peepholes, clip) is float64 here (float32 in C), so the
two agree to float32 rounding of the gates, except where that rounding
moves an activation across a quantization step (then by one step).
"""
import numpy as np


def quantize_rows(x):
    """(q as int64, s as float32) of the rows of x (..., K), per the header."""
    x = np.asarray(x, np.float32)
    amax = np.max(np.abs(x), axis=-1, keepdims=True)
    bad = ~np.all(np.isfinite(x), axis=-1, keepdims=True)
    safe = np.where((amax > 0) & ~bad, amax, np.float32(1))
    with np.errstate(over="ignore"):
        inv = np.float32(127) / safe
    # where 127 / max overflows float32 (max < 127 / FLT_MAX), the ratio in double
    q32 = np.rint(np.where(bad, 0, x) * np.where(np.isfinite(inv), inv, 0))
    q64 = np.rint(np.where(bad, 0, x).astype(np.float64) * (127.0 / safe.astype(np.float64)))
    q = np.clip(np.where(np.isfinite(inv), q32, q64), -127, 127).astype(np.int64)
    q = np.where(amax > 0, q, 0)
    s = np.where(bad, np.float32(np.nan), np.where(amax > 0, amax / np.float32(127), 0))
    return q, s.astype(np.float32)


def product(x, q_w, s_w):
    """x (..., K) times the int8 weight (N, K) with row scales (N,):
    float32(sum) * (s_x * s_w), returned as float64."""
    qx, sx = quantize_rows(x)
    acc = qx @ q_w.astype(np.int64).T
    return (acc.astype(np.float32) * (sx * s_w.astype(np.float32))).astype(np.float64)


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _gate(cfg):
    """The gate activation of cfg: the sigmoid, or (gate_activation 1) the
    hard sigmoid max(0, min(1, alpha*z + beta))."""
    if cfg.get("gate_activation", 0) == 0:
        return _sigmoid
    alpha, beta = cfg["gate_alpha"], cfg["gate_beta"]
    return lambda z: np.clip(alpha * z + beta, 0.0, 1.0)


def _unit(t8, p, cfg, k, sfx, inp, h, c, lengths, reverse):
    """One direction of layer k over inp (T, B, D_k); returns y (T, B, R), h, c."""
    H = cfg["hidden_size"]
    sig = _gate(cfg)
    T, B, _ = inp.shape
    name = "_l%d%s" % (k, sfx)
    b = p["bias_ih" + name].astype(np.float64) + p["bias_hh" + name]
    ph = p.get("peephole" + name)
    clip = cfg.get("clip", 0) or np.inf
    y = np.zeros((T, B, h.shape[1]))
    pre_x = product(inp, *t8["weight_ih" + name]) + b  # (T, B, 4H)
    for s in range(T):
        for bb in range(B):
            if s >= lengths[bb]:
                continue
            t = lengths[bb] - 1 - s if reverse else s
            z = pre_x[t, bb] + product(h[bb], *t8["weight_hh" + name])
            cp = c[bb]
            zi, zf, zg, zo = z[:H], z[H:2 * H], z[2 * H:3 * H], z[3 * H:]
            if ph is not None:
                zi = zi + ph[:H] * cp
                zf = zf + ph[H:2 * H] * cp
            i = sig(np.clip(zi, -clip, clip))
            f = 1 - i if cfg.get("input_forget") else sig(np.clip(zf, -clip, clip))
            g = np.tanh(np.clip(zg, -clip, clip))
            cn = f * cp + i * g
            if ph is not None:
                zo = zo + ph[2 * H:] * cn
            o = sig(np.clip(zo, -clip, clip))
            m = o * np.tanh(cn)
            hn = product(m, *t8["weight_hr" + name]) if "weight_hr" + name in t8 else m
            c[bb], h[bb], y[t, bb] = cn, hn, hn
    return y, h, c


def forward(model, x=None, ids=None, lengths=None):
    """out (T, B, O or N*R) of a quantized clstm model (its int8 tensors and
    float parameters read from it), for raw x (T, B, D) or token ids (T, B)."""
    cfg = model.config
    t8 = model.int8_tensors()
    p = {k: v.astype(np.float64) for k, v in model.named_parameters().items()}
    T, B = (ids if x is None else x).shape[:2]
    lengths = np.full(B, T) if lengths is None else np.asarray(lengths)
    if cfg["encoding"] == 2:  # embedding
        q_e, s_e = t8["embedding.weight"]
        inp = (q_e.astype(np.float32) * s_e[:, None])[ids].astype(np.float64)
    elif cfg["encoding"] == 1:  # one-hot
        inp = np.eye(cfg["vocab_size"])[ids]
    else:
        inp = np.asarray(x, np.float64)
    inp = np.where((np.arange(T)[:, None] < lengths)[:, :, None], inp, 0.0)
    N = 2 if cfg["bidirectional"] else 1
    R = cfg["proj_size"] or cfg["hidden_size"]
    for k in range(cfg["num_layers"]):
        outs = []
        for d in range(N):
            h = np.zeros((B, R))
            c = np.zeros((B, cfg["hidden_size"]))
            y, _, _ = _unit(t8, p, cfg, k, "_reverse" if d else "", inp, h, c, lengths,
                            d == 1 or cfg["reverse"])
            outs.append(y)
        inp = np.concatenate(outs, axis=-1)
    if cfg["output_size"]:
        out = product(inp, *t8["head.weight"]) + p["head.bias"]
        return np.where((np.arange(T)[:, None] < lengths)[:, :, None], out, 0.0)
    return inp
