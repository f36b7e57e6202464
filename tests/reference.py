"""A NumPy float64 reference of the LSTM that clstm implements.

Written from the equations in include/clstm.h (which are torch.nn.LSTM's),
independently of the library: it is the tests' oracle. tests/test_reference.py
checks it against torch.nn.LSTM in float64.

Dimension letters: T time, B batch, D input, H hidden, L layers, G = 4H,
P projection size (0: none), R = P if P else H (the size of h), N = 2 for a
bidirectional model else 1. Gates are stacked in PyTorch's order i, f, g, o
along the G axis.

    a   = x_t @ W_ih.T + b_ih + h_{t-1} @ W_hh.T + b_hh        (B, G)
    i   = sigmoid(a[:, 0:H])      f = sigmoid(a[:, H:2H])
    g   = tanh(a[:, 2H:3H])       o = sigmoid(a[:, 3H:4H])
    c_t = f * c_{t-1} + i * g
    m_t = o * tanh(c_t)
    h_t = m_t @ W_hr.T  with a projection (P > 0), else m_t

Layer 0 reads x, layer k > 0 reads the h of layer k - 1 (both directions
concatenated, [forward, reverse]), multiplied by a dropout mask when one is
given; y is h of the top layer. The reverse direction runs t = T-1 .. 0.

lengths (B,) gives each sequence's valid steps (torch's packed sequences):
a step t >= lengths[b] is skipped for row b (its input ignored, its output 0,
its state carried through unchanged), so the forward direction's final state
is the one at the last valid step and the reverse direction starts there.

gate: None for the sigmoid gates above, or (alpha, beta) for hard sigmoid
gates: sigmoid is replaced (for i, f and o only) by
max(0, min(1, alpha*z + beta)), whose derivative is alpha where
0 < alpha*z + beta < 1 and 0 elsewhere (here: where the gate's value lies
strictly between 0 and 1, which is the same set).

Everything here works on the canonical layout: x (T, B, D), states
(N*L, B, R) for h and (N*L, B, H) for c, index layer*N + direction.
"""

import re

import numpy as np

TENSOR_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
DIRECTIONS = ("", "_reverse")


def param_shapes(D, H, L, N=1, P=0):
    """Names and shapes in the order of clstm's flat block (the header's)."""
    R = P or H
    shapes = {}
    for k in range(L):
        d_k = D if k == 0 else N * R
        for sfx in DIRECTIONS[:N]:
            shapes[f"weight_ih_l{k}{sfx}"] = (4 * H, d_k)
            shapes[f"weight_hh_l{k}{sfx}"] = (4 * H, R)
            shapes[f"bias_ih_l{k}{sfx}"] = (4 * H,)
            shapes[f"bias_hh_l{k}{sfx}"] = (4 * H,)
            if P:
                shapes[f"weight_hr_l{k}{sfx}"] = (P, H)
    return shapes


def num_params(D, H, L, N=1, P=0):
    return sum(int(np.prod(s)) for s in param_shapes(D, H, L, N, P).values())


def sigmoid(z):
    # 1/(1+exp(-z)) written without overflow for large |z|.
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def gate_fn(gate):
    """The gate activation for `gate` (None or (alpha, beta)), and its
    derivative as a function of the pre-activation z."""
    if gate is None:
        return sigmoid, lambda z: sigmoid(z) * (1.0 - sigmoid(z))
    alpha, beta = gate
    return (lambda z: np.clip(alpha * z + beta, 0.0, 1.0),
            lambda z: np.where((alpha * z + beta > 0) & (alpha * z + beta < 1), alpha, 0.0))


def sizes(params):
    """(L, N, H, P, R) of a parameter dict."""
    L = sum(1 for name in params if re.fullmatch(r"weight_ih_l\d+", name))
    N = 2 if "weight_ih_l0_reverse" in params else 1
    H = np.shape(params["weight_hh_l0"])[0] // 4
    P = np.shape(params["weight_hr_l0"])[0] if "weight_hr_l0" in params else 0
    return L, N, H, P, P or H


def _names(k, d):
    """The tensor names of layer k, direction d, in TENSOR_KINDS order, then
    weight_hr (present or not)."""
    sfx = DIRECTIONS[d]
    return [f"{kind}_l{k}{sfx}" for kind in TENSOR_KINDS] + [f"weight_hr_l{k}{sfx}"]


def _direction_params(params, k, d):
    """(w_ih, w_hh, b_ih, b_hh, w_hr or None) as float64."""
    return tuple(
        np.asarray(params[n], dtype=np.float64) if n in params else None for n in _names(k, d)
    )


def active_steps(lengths, T, B):
    """(T, B) booleans: step t of sequence b is valid (t < lengths[b])."""
    if lengths is None:
        return np.ones((T, B), dtype=bool)
    lengths = np.asarray(lengths)
    assert lengths.shape == (B,) and lengths.dtype.kind in "iu", lengths
    assert np.all((lengths >= 0) & (lengths <= T)), lengths
    return np.arange(T)[:, None] < lengths[None, :]


def _time_order(T, reverse):
    return range(T - 1, -1, -1) if reverse else range(T)


def _direction_forward(p, inp, h, c, active, reverse, gate=None):
    """One direction of one layer. inp: (T, B, D_k); h: (B, R); c: (B, H).
    Returns out (T, B, R), the final h and c, and per-step caches."""
    sig = gate_fn(gate)[0]
    w_ih, w_hh, b_ih, b_hh, w_hr = p
    T, B, _ = inp.shape
    H = w_hh.shape[0] // 4
    out = np.zeros((T, B, h.shape[1]))
    steps = [None] * T
    for t in _time_order(T, reverse):
        act = active[t][:, None]
        x_t = np.where(act, inp[t], 0.0)  # padding (even NaN) never enters
        a = x_t @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        i = sig(a[:, 0:H])
        f = sig(a[:, H : 2 * H])
        g = np.tanh(a[:, 2 * H : 3 * H])
        o = sig(a[:, 3 * H : 4 * H])
        c_new = f * c + i * g
        tanh_c = np.tanh(c_new)
        m = o * tanh_c
        h_new = m if w_hr is None else m @ w_hr.T
        steps[t] = {"act": act, "x": x_t, "h_prev": h, "c_prev": c, "m": m, "tanh_c": tanh_c}
        steps[t].update(i=i, f=f, g=g, o=o, a=a)
        out[t] = np.where(act, h_new, 0.0)
        h = np.where(act, h_new, h)
        c = np.where(act, c_new, c)
    return out, h, c, steps


def forward(params, x, h0=None, c0=None, lengths=None, masks=None, reverse=False, gate=None):
    """Run the LSTM in float64.

    params: dict name -> array (PyTorch names; bidirectional and projection
    are read from the names and shapes); x: (T, B, D); h0: (N*L, B, R) and
    c0: (N*L, B, H), or None for zeros; lengths: None (all T) or (B,) ints in
    0..T; masks: None or L-1 arrays (T, B, N*R), masks[k-1] multiplying the
    input of layer k (dropout: 0 or 1/(1-p)); reverse: a reverse-only model
    (its one direction runs as a bidirectional model's reverse one); gate:
    None (sigmoid gates) or (alpha, beta) for hard sigmoid gates.
    Returns y (T, B, N*R), hT (N*L, B, R), cT (N*L, B, H) and a cache for
    backward.
    """
    x = np.asarray(x, dtype=np.float64)
    T, B, _ = x.shape
    L, N, H, _, R = sizes(params)
    h0 = np.zeros((N * L, B, R)) if h0 is None else np.asarray(h0, dtype=np.float64)
    c0 = np.zeros((N * L, B, H)) if c0 is None else np.asarray(c0, dtype=np.float64)
    assert h0.shape == (N * L, B, R) and c0.shape == (N * L, B, H)
    masks = _check_masks(masks, L, (T, B, N * R))
    active = active_steps(lengths, T, B)
    hT = np.empty((N * L, B, R))
    cT = np.empty((N * L, B, H))
    layer_in = x
    layers = []
    for k in range(L):
        if k > 0 and masks is not None:
            layer_in = layer_in * masks[k - 1]
        outs, caches = [], []
        for d in range(N):
            j = k * N + d
            out, hT[j], cT[j], steps = _direction_forward(
                _direction_params(params, k, d), layer_in, h0[j], c0[j], active, d == 1 or reverse,
                gate,
            )
            outs.append(out)
            caches.append(steps)
        layers.append((layer_in, caches))
        layer_in = np.concatenate(outs, axis=2)
    return layer_in, hT, cT, {"layers": layers, "masks": masks, "reverse": reverse,
                              "gate": gate}


def _check_masks(masks, L, shape):
    if masks is None:
        return None
    masks = [np.asarray(m, dtype=np.float64) for m in masks]
    assert len(masks) == L - 1 and all(m.shape == shape for m in masks), "masks: L-1 x " + str(
        shape
    )
    return masks


def backward(params, cache, dy=None, dhT=None, dcT=None):
    """Hand-written BPTT for `forward` (same lengths and masks, from the cache).

    dy: (T, B, N*R), dhT: (N*L, B, R), dcT: (N*L, B, H), each None for zeros.
    Returns dx (T, B, D), dh0 (N*L, B, R), dc0 (N*L, B, H) and a dict of
    parameter gradients with the same names and shapes as params. dx is 0 at
    padding; the gradient of a skipped step's state passes through unchanged.
    """
    L, N, H, _, R = sizes(params)
    layers, masks = cache["layers"], cache["masks"]
    x = layers[0][0]
    T, B, _ = x.shape
    d_out = np.zeros((T, B, N * R)) if dy is None else np.array(dy, dtype=np.float64)
    dhT = np.zeros((N * L, B, R)) if dhT is None else np.asarray(dhT, dtype=np.float64)
    dcT = np.zeros((N * L, B, H)) if dcT is None else np.asarray(dcT, dtype=np.float64)
    grads = {name: np.zeros(np.shape(p)) for name, p in params.items()}
    dsig = gate_fn(cache["gate"])[1]  # of the pre-activations
    dh0 = np.empty((N * L, B, R))
    dc0 = np.empty((N * L, B, H))
    for k in reversed(range(L)):
        layer_in, caches = layers[k]
        d_in = np.zeros_like(layer_in)
        for d in range(N):
            j = k * N + d
            w_ih, w_hh, _, _, w_hr = _direction_params(params, k, d)
            n_ih, n_hh, n_bih, n_bhh, n_hr = _names(k, d)
            d_own = d_out[:, :, d * R : (d + 1) * R]
            dh, dc = dhT[j].copy(), dcT[j].copy()
            for t in reversed(_time_order(T, d == 1 or cache["reverse"])):
                s = caches[d][t]
                act = s["act"]
                # A skipped step: nothing flows into it, dh and dc pass through.
                dh_t = np.where(act, dh + d_own[t], 0.0)
                dm = dh_t
                if w_hr is not None:
                    grads[n_hr] += dh_t.T @ s["m"]
                    dm = dh_t @ w_hr
                dc_t = np.where(act, dc, 0.0) + dm * s["o"] * (1.0 - s["tanh_c"] ** 2)
                da = np.concatenate(
                    [
                        dc_t * s["g"] * dsig(s["a"][:, 0:H]),
                        dc_t * s["c_prev"] * dsig(s["a"][:, H : 2 * H]),
                        dc_t * s["i"] * (1.0 - s["g"] ** 2),
                        dm * s["tanh_c"] * dsig(s["a"][:, 3 * H :]),
                    ],
                    axis=1,
                )
                grads[n_ih] += da.T @ s["x"]
                grads[n_hh] += da.T @ s["h_prev"]
                grads[n_bih] += da.sum(axis=0)
                grads[n_bhh] += da.sum(axis=0)
                d_in[t] += da @ w_ih
                dh = np.where(act, da @ w_hh, dh)
                dc = np.where(act, dc_t * s["f"], dc)
            dh0[j], dc0[j] = dh, dc
        if k > 0 and masks is not None:
            d_in = d_in * masks[k - 1]
        d_out = d_in
    return d_out, dh0, dc0, grads


def loss(y, hT, cT, wy, wh, wc):
    """The scalar test loss sum(y*Wy) + sum(h*Wh) + sum(c*Wc).

    Its gradient with respect to (y, hT, cT) is (Wy, Wh, Wc)."""
    return float(np.sum(y * wy) + np.sum(hT * wh) + np.sum(cT * wc))


# ------------------------------------------------------------------ layouts
# The Python API takes x as (T, B, D) ("tbd"), (B, T, D) with batch_first
# ("btd"), or unbatched (T, D) ("td", states then (N*L, R) and (N*L, H)). These convert
# between the API layout and the canonical one used above.


def x_to_api(x, layout):
    """Canonical (T, B, D) -> the API layout."""
    if layout == "tbd":
        return x
    if layout == "btd":
        return np.swapaxes(x, 0, 1)
    if layout == "td":
        assert x.shape[1] == 1
        return x[:, 0, :]
    raise ValueError(layout)


def x_from_api(x, layout):
    """The API layout -> canonical (T, B, D)."""
    if layout == "td":
        return x[:, None, :]
    return x_to_api(x, layout)  # identity or a swap: its own inverse


def state_to_api(s, layout):
    """Canonical (N*L, B, .) -> the API's: unchanged, or (N*L, .) unbatched."""
    if s is None or layout != "td":
        return s
    assert s.shape[1] == 1
    return s[:, 0, :]


def state_from_api(s, layout):
    if s is None or layout != "td":
        return s
    return s[:, None, :]
