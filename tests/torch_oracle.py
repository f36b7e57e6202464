"""torch.nn.LSTM as an oracle: the module for a Case, and a forward and
backward of the test loss on a Problem, with lengths run as torch's packed
sequences. Import only after pytest.importorskip("torch")."""

import re

import numpy as np
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}


def torch_module(case, dtype, seed=0):
    torch.manual_seed(seed)
    m = torch.nn.LSTM(
        case.D,
        case.H,
        case.L,
        batch_first=case.batch_first,
        bidirectional=case.N == 2,
        proj_size=case.P,
    )
    return m.to(TORCH_DTYPE[np.dtype(dtype)])


def tensor(a, dtype, grad=False):
    return torch.tensor(np.asarray(a), dtype=TORCH_DTYPE[np.dtype(dtype)], requires_grad=grad)


def run_module(module, x, state, lengths):
    """module(x, state) with x in the module's layout, batched or not;
    lengths (B,) or None. With lengths, x is packed (unsorted), and y padded
    back to x's T with zeros: torch's h and c are then taken at each
    sequence's own last step."""
    if lengths is None:
        return module(x) if state is None else module(x, state)
    unbatched = x.dim() == 2
    if unbatched:  # packing needs a batch axis
        x = x.unsqueeze(0 if module.batch_first else 1)
        state = None if state is None else tuple(s.unsqueeze(1) for s in state)
    T = x.shape[1 if module.batch_first else 0]
    packed = pack_padded_sequence(
        x, torch.as_tensor(lengths), batch_first=module.batch_first, enforce_sorted=False
    )
    out, (h, c) = module(packed) if state is None else module(packed, state)
    y, _ = pad_packed_sequence(out, batch_first=module.batch_first, total_length=T)
    if unbatched:
        y, h, c = y.squeeze(0 if module.batch_first else 1), h.squeeze(1), c.squeeze(1)
    return y, (h, c)


def torch_run(module, prob, dtype, with_state, forward=None):
    """Forward and backward of the test loss in torch, with the problem's
    arrays in its case's layout; returns numpy (y, h, c, dx, dh0, dc0) and
    the parameter gradients by name. forward(x, state, lengths): run instead
    of the module (default: run_module)."""
    x = tensor(prob.api(prob.x), dtype, True)
    h0 = tensor(prob.api(prob.h0, kind="state"), dtype, True)
    c0 = tensor(prob.api(prob.c0, kind="state"), dtype, True)
    forward = forward or (lambda *a: run_module(module, *a))
    y, (h, c) = forward(x, (h0, c0) if with_state else None, prob.lengths)
    w = [
        tensor(prob.api(a, kind=k), dtype)
        for a, k in ((prob.wy, "x"), (prob.wh, "state"), (prob.wc, "state"))
    ]
    ((y * w[0]).sum() + (h * w[1]).sum() + (c * w[2]).sum()).backward()
    outs = [t.detach().numpy() for t in (y, h, c, x.grad)]
    outs += [h0.grad.numpy(), c0.grad.numpy()] if with_state else [None, None]
    return outs, {n: p.grad.numpy() for n, p in module.named_parameters()}


def layered_forward(module, masks):
    """A forward(x, state, lengths) for torch_run that runs `module` one layer
    at a time (single-layer torch LSTMs sharing its parameters) and
    multiplies the input of layer k > 0 by masks[k-1] (T, B, N*R), canonical
    layout: torch's dropout with given masks. Time-first modules only."""
    assert not module.batch_first
    N = 2 if module.bidirectional else 1
    L = module.num_layers
    layers = []
    for k in range(L):
        layer = torch.nn.LSTM(
            module.input_size if k == 0 else N * (module.proj_size or module.hidden_size),
            module.hidden_size,
            1,
            bidirectional=module.bidirectional,
            proj_size=module.proj_size,
        )
        own = {}
        for name, p in module.named_parameters():
            m = re.fullmatch(rf"(\w+)_l{k}(_reverse)?", name)
            if m:
                own[f"{m.group(1)}_l0{m.group(2) or ''}"] = p
        assert set(own) == {n for n, _ in layer.named_parameters()}
        for name, p in own.items():  # share: the gradients land in module's
            setattr(layer, name, p)
        layers.append(layer)

    def forward(x, state, lengths):
        hs, cs = [], []
        for k, layer in enumerate(layers):
            if k > 0:
                x = x * torch.as_tensor(masks[k - 1], dtype=x.dtype)
            own = None if state is None else tuple(s[k * N : (k + 1) * N] for s in state)
            x, (h, c) = run_module(layer, x, own, lengths)
            hs.append(h)
            cs.append(c)
        return x, (torch.cat(hs), torch.cat(cs))

    return forward
