"""A NumPy float64 reference of the LSTM that clstm implements.

Written from the equations in include/clstm.h (which are torch.nn.LSTM's),
independently of the library: it is the tests' oracle.

Dimension letters: T time, B batch, D input, H hidden, L layers, G = 4H.
Gates are stacked in PyTorch's order i, f, g, o along the G axis.

    a   = x_t @ W_ih.T + b_ih + h_{t-1} @ W_hh.T + b_hh        (B, G)
    i   = sigmoid(a[:, 0:H])      f = sigmoid(a[:, H:2H])
    g   = tanh(a[:, 2H:3H])       o = sigmoid(a[:, 3H:4H])
    c_t = f * c_{t-1} + i * g
    h_t = o * tanh(c_t)

Layer 0 reads x, layer k > 0 reads h of layer k - 1; y is h of the top layer.
Everything here works on the canonical layout: x (T, B, D), states (L, B, H).
"""

import numpy as np

TENSOR_KINDS = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def param_shapes(D, H, L):
    """Names and shapes in the order of clstm's flat block (the header's)."""
    shapes = {}
    for k in range(L):
        d_k = D if k == 0 else H
        shapes[f"weight_ih_l{k}"] = (4 * H, d_k)
        shapes[f"weight_hh_l{k}"] = (4 * H, H)
        shapes[f"bias_ih_l{k}"] = (4 * H,)
        shapes[f"bias_hh_l{k}"] = (4 * H,)
    return shapes


def num_params(D, H, L):
    return sum(int(np.prod(s)) for s in param_shapes(D, H, L).values())


def sigmoid(z):
    # 1/(1+exp(-z)) written without overflow for large |z|.
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _layer_params(params, k):
    return tuple(np.asarray(params[f"{kind}_l{k}"], dtype=np.float64) for kind in TENSOR_KINDS)


def _sizes(params):
    L = sum(1 for name in params if name.startswith("weight_ih_l"))
    H = np.shape(params["weight_hh_l0"])[1]
    return L, H


def forward(params, x, h0=None, c0=None):
    """Run the LSTM in float64.

    params: dict name -> array (PyTorch names); x: (T, B, D);
    h0, c0: (L, B, H) or None for zeros.
    Returns y (T, B, H), hT (L, B, H), cT (L, B, H) and a cache for backward.
    """
    x = np.asarray(x, dtype=np.float64)
    T, B, _ = x.shape
    L, H = _sizes(params)
    zeros = np.zeros((L, B, H))
    h0 = zeros if h0 is None else np.asarray(h0, dtype=np.float64)
    c0 = zeros if c0 is None else np.asarray(c0, dtype=np.float64)
    hT = np.empty((L, B, H))
    cT = np.empty((L, B, H))
    layer_in = x
    cache = []
    for k in range(L):
        w_ih, w_hh, b_ih, b_hh = _layer_params(params, k)
        h, c = h0[k], c0[k]
        out = np.empty((T, B, H))
        steps = []
        for t in range(T):
            a = layer_in[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
            i = sigmoid(a[:, 0:H])
            f = sigmoid(a[:, H : 2 * H])
            g = np.tanh(a[:, 2 * H : 3 * H])
            o = sigmoid(a[:, 3 * H : 4 * H])
            c_new = f * c + i * g
            tanh_c = np.tanh(c_new)
            steps.append(dict(h_prev=h, c_prev=c, i=i, f=f, g=g, o=o, tanh_c=tanh_c))
            h, c = o * tanh_c, c_new
            out[t] = h
        hT[k], cT[k] = h, c
        cache.append((layer_in, steps))
        layer_in = out
    return layer_in, hT, cT, cache


def backward(params, cache, dy=None, dhT=None, dcT=None):
    """Hand-written BPTT for `forward`.

    dy: (T, B, H), dhT, dcT: (L, B, H), each None for zeros.
    Returns dx (T, B, D), dh0 (L, B, H), dc0 (L, B, H) and a dict of
    parameter gradients with the same names and shapes as params.
    """
    L, H = _sizes(params)
    x = cache[0][0]
    T, B, _ = x.shape
    top = cache[-1][0]
    d_out = np.zeros((T, B, H)) if dy is None else np.array(dy, dtype=np.float64)
    dhT = np.zeros((L, B, H)) if dhT is None else np.asarray(dhT, dtype=np.float64)
    dcT = np.zeros((L, B, H)) if dcT is None else np.asarray(dcT, dtype=np.float64)
    assert top.shape[0] == T
    grads = {name: np.zeros(np.shape(p)) for name, p in params.items()}
    dh0 = np.empty((L, B, H))
    dc0 = np.empty((L, B, H))
    for k in reversed(range(L)):
        w_ih, w_hh, _, _ = _layer_params(params, k)
        layer_in, steps = cache[k]
        d_in = np.zeros_like(layer_in)
        dh, dc = dhT[k].copy(), dcT[k].copy()
        for t in reversed(range(T)):
            s = steps[t]
            dh_t = dh + d_out[t]
            dc = dc + dh_t * s["o"] * (1.0 - s["tanh_c"] ** 2)
            da = np.concatenate(
                [
                    dc * s["g"] * s["i"] * (1.0 - s["i"]),
                    dc * s["c_prev"] * s["f"] * (1.0 - s["f"]),
                    dc * s["i"] * (1.0 - s["g"] ** 2),
                    dh_t * s["tanh_c"] * s["o"] * (1.0 - s["o"]),
                ],
                axis=1,
            )
            grads[f"weight_ih_l{k}"] += da.T @ layer_in[t]
            grads[f"weight_hh_l{k}"] += da.T @ s["h_prev"]
            grads[f"bias_ih_l{k}"] += da.sum(axis=0)
            grads[f"bias_hh_l{k}"] += da.sum(axis=0)
            d_in[t] = da @ w_ih
            dh = da @ w_hh
            dc = dc * s["f"]
        dh0[k], dc0[k] = dh, dc
        d_out = d_in
    return d_out, dh0, dc0, grads


def loss(y, hT, cT, wy, wh, wc):
    """The scalar test loss sum(y*Wy) + sum(h*Wh) + sum(c*Wc).

    Its gradient with respect to (y, hT, cT) is (Wy, Wh, Wc)."""
    return float(np.sum(y * wy) + np.sum(hT * wh) + np.sum(cT * wc))


# ------------------------------------------------------------------ layouts
# The Python API takes x as (T, B, D) ("tbd"), (B, T, D) with batch_first
# ("btd"), or unbatched (T, D) ("td", states then (L, H)). These convert
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
    """Canonical (L, B, H) -> the API's: unchanged, or (L, H) unbatched."""
    if s is None or layout != "td":
        return s
    assert s.shape[1] == 1
    return s[:, 0, :]


def state_from_api(s, layout):
    if s is None or layout != "td":
        return s
    return s[:, None, :]
