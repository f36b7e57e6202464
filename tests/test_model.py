"""clstm.Model (input encoding -> LSTM stack -> Linear head) against torch
(nn.Embedding or F.one_hot -> nn.LSTM -> nn.Linear, same weights): forward,
losses and every gradient; streaming; vocabularies; files; bad arguments;
a training smoke test."""

import re

import numpy as np
import pytest
import reference as ref
from conftest import DTYPES, assert_close, assert_message

import clstm
from clstm.losses import cross_entropy, mse

torch = pytest.importorskip("torch")
F = torch.nn.functional
TORCH_DTYPE = {np.dtype(np.float32): torch.float32, np.dtype(np.float64): torch.float64}

V, D, O = 6, 4, 3  # vocabulary, embedding width / raw features, head outputs
ENCODINGS = (None, "onehot", "embedding")
HEADS = (0, O)
# name -> (H, L, bidirectional, proj_size)
ARCHS = {"L1": (5, 1, False, 0), "L2bi": (5, 2, True, 0), "L2proj": (5, 2, False, 3)}
LAYOUTS = ("tbd", "btd", "td")


@pytest.fixture(autouse=True, scope="module")
def _torch_one_thread():
    """torch's OpenMP team and clstm's contend for the cores when both are
    multithreaded (idle threads spin): torch runs single-threaded here."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _enc_id(e):
    return "raw" if e is None else e


# ------------------------------------------------------------------ builders
def make_pair(encoding, output_size, arch, dtype, layout="tbd", seed=0):
    """A torch oracle and a clstm.Model holding the same weights (copied from
    torch, LSTM tensors under torch's names)."""
    H, L, bi, P = ARCHS[arch]
    torch.manual_seed(seed)
    tdt = TORCH_DTYPE[np.dtype(dtype)]
    t = torch.nn.Module()
    t.embedding = torch.nn.Embedding(V, D).to(tdt) if encoding == "embedding" else None
    t.lstm = torch.nn.LSTM(V if encoding == "onehot" else D, H, L, bidirectional=bi,
                           proj_size=P).to(tdt)
    t.head = torch.nn.Linear((2 if bi else 1) * (P or H), output_size).to(tdt) \
        if output_size else None
    kw = dict(input_size=None if encoding == "onehot" else D, hidden_size=H, num_layers=L,
              encoding=encoding, vocab_size=None if encoding is None else V,
              output_size=output_size, bidirectional=bi, proj_size=P, dtype=dtype,
              batch_first=layout == "btd", seed=seed + 100)
    m = clstm.Model(**kw)
    sd = {re.sub(r"^lstm\.", "", k): v for k, v in t.state_dict().items()}
    assert set(sd) == set(m.named_parameters().keys())
    m.load_state_dict(sd)
    return t, m


def torch_seq(t, encoding, inp, state):
    """The oracle on ONE sequence: inp (T,) ids or (T, D) reals, state None or
    (h0 (N*L, R), c0 (N*L, H)). Returns out (T, O or N*R), (h, c)."""
    if encoding == "embedding":
        e = t.embedding(inp)
    elif encoding == "onehot":
        e = F.one_hot(inp, V).to(t.lstm.weight_ih_l0.dtype)
    else:
        e = inp
    y, (h, c) = t.lstm(e, state)
    return (t.head(y) if t.head is not None else y), (h, c)


def ids_to_api(ids, layout):
    """Canonical (T, B) ids -> the API layout."""
    return {"tbd": ids, "btd": ids.T, "td": ids[:, 0] if ids.ndim == 2 else ids}[layout]


def seq_to_api(a, layout):
    """Canonical (T, B, K) -> API layout."""
    return ref.x_to_api(a, layout)


def make_inputs(encoding, T, B, dtype, rng, lengths=None):
    """Canonical inputs: ids (T, B) int64 or x (T, B, D); with lengths,
    x is NaN past each length (padding must never be read) and ids random."""
    if encoding is None:
        x = rng.standard_normal((T, B, D))
        if lengths is not None:
            x[~ref.active_steps(np.asarray(lengths), T, B)] = np.nan
        return x.astype(dtype)
    return rng.integers(0, V, (T, B))


def states(m, B, rng, dtype):
    NL, R, H = m.num_directions * m.num_layers, m.proj_size or m.hidden_size, m.hidden_size
    return (rng.standard_normal((NL, B, R)).astype(dtype),
            rng.standard_normal((NL, B, H)).astype(dtype))


def _lengths_for(T, B):
    return np.array([T, max(1, T // 2 + 1), 1, T - 1][:B])


class Run:
    """torch's result for sequence b: out (T_b, K), h, c, and the gradients
    of its input and initial state once backward has run."""

    def __init__(self, out, h, c, x, st, index):
        self.out, self.h, self.c = out, h, c
        self._x, self._st, self._i = x, st, index

    def dx(self):
        return self._x.grad[self._i].numpy()

    def dstate(self):
        return tuple(s.grad[(slice(None),) + self._i[1:]].numpy() for s in self._st)


def oracle(t, encoding, inp, state, lengths, dtype, grad=False):
    """torch on canonical inputs: without lengths one batched run, with
    lengths one run per sequence truncated to its length. Returns a Run per
    sequence."""
    B = inp.shape[1]
    tdt = TORCH_DTYPE[np.dtype(dtype)]

    def leaves(a, st):
        x = torch.tensor(a, dtype=tdt, requires_grad=grad) if encoding is None else \
            torch.tensor(a, dtype=torch.long)
        if st is not None:
            st = tuple(torch.tensor(s, dtype=tdt, requires_grad=grad) for s in st)
        return x, st

    if lengths is None:
        x, st = leaves(inp, state)
        out, (h, c) = torch_seq(t, encoding, x, st)
        return [Run(out[:, b], h[:, b], c[:, b], x, st, (slice(None), b)) for b in range(B)]
    runs = []
    for b in range(B):
        n = int(lengths[b])
        x, st = leaves(inp[:n, b], None if state is None else tuple(s[:, b] for s in state))
        out, (h, c) = torch_seq(t, encoding, x, st)
        runs.append(Run(out, h, c, x, st, (slice(None),)))
    return runs


def torch_grads(t):
    """{clstm name: gradient}; a parameter the loss does not reach: zeros."""
    return {re.sub(r"^lstm\.", "", k): (torch.zeros_like(p) if p.grad is None else p.grad).numpy()
            for k, p in t.named_parameters()}


# ------------------------------------------------------------------ forward
@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("head", HEADS, ids=["nohead", "head"])
@pytest.mark.parametrize("encoding", ENCODINGS, ids=_enc_id)
def test_forward_matches_torch(encoding, head, arch, layout, dtype):
    """T = 70 crosses the 32-step inference chunk; train=True and False; with
    no state and lengths, then a given state and unsorted lengths (compared
    with torch on each sequence truncated to its length; 0 past it)."""
    T, B = 70, (1 if layout == "td" else 3)
    t, m = make_pair(encoding, head, arch, dtype, layout)
    rng = np.random.default_rng(5)
    for with_extra in (False, True):
        lengths = _lengths_for(T, B) if with_extra else None
        if layout == "td" and with_extra:
            lengths = np.array([T - 3])
        inp = make_inputs(encoding, T, B, dtype, rng, lengths)
        state = states(m, B, rng, dtype) if with_extra else None
        with torch.no_grad():
            runs = oracle(t, encoding, inp, state, lengths, dtype)
        api_in = seq_to_api(inp, layout) if encoding is None else ids_to_api(inp, layout)
        api_state = None if state is None else tuple(ref.state_to_api(s, layout) for s in state)
        kw = {} if lengths is None else {"lengths": lengths}
        for train in (True, False):
            out, (h, c) = m.forward(api_in, api_state, train=train, **kw)
            assert out.dtype == np.dtype(dtype) and h.dtype == np.dtype(dtype)
            out3 = ref.x_from_api(out, layout)
            h3, c3 = ref.state_from_api(h, layout), ref.state_from_api(c, layout)
            assert out3.shape == (T, B, m.out_size)
            assert m.out_size == (head or m.num_directions * (m.proj_size or m.hidden_size))
            for b, r in enumerate(runs):
                n = r.out.shape[0]
                what = f"train={train} b={b}"
                assert_close(out3[:n, b], r.out.numpy(), dtype, "out " + what)
                assert np.all(out3[n:, b] == 0), "out past the length " + what
                assert_close(h3[:, b], r.h.numpy(), dtype, "h " + what)
                assert_close(c3[:, b], r.c.numpy(), dtype, "c " + what)


# ------------------------------------------------------------------ backward
LOSSES = ("xent", "xent_last", "mse")
# every layout with two losses, every loss with two layouts (the full
# product adds little and costs time)
LAYOUT_LOSSES = [("tbd", "xent"), ("tbd", "mse"), ("btd", "xent"), ("btd", "xent_last"),
                 ("td", "xent_last"), ("td", "mse")]
assert {k for _, k in LAYOUT_LOSSES} == set(LOSSES) and {la for la, _ in LAYOUT_LOSSES} == set(
    LAYOUTS)


def _clstm_loss(kind, out, targets, lengths, layout):
    kw = dict(batch_first=layout == "btd")
    if lengths is not None:
        kw["lengths"] = lengths
    if kind == "mse":
        return mse(out, targets, **kw)
    return cross_entropy(out, targets, last_only=kind == "xent_last", **kw)


def _targets(kind, T, B, K, rng, lengths):
    """Canonical targets: (T, B) ids, (B,) ids, or (T, B, K) reals (NaN past
    each length: mse must not read them)."""
    if kind == "xent":
        return rng.integers(0, K, (T, B))
    if kind == "xent_last":
        return rng.integers(0, K, B)
    y = rng.standard_normal((T, B, K))
    if lengths is not None:
        y[~ref.active_steps(np.asarray(lengths), T, B)] = np.nan
    return y


def _targets_to_api(kind, tg, layout, dtype):
    if kind == "xent":
        return ids_to_api(tg, layout)
    if kind == "xent_last":
        return tg[0] if layout == "td" else tg
    return seq_to_api(tg.astype(dtype), layout)


def _torch_loss(kind, runs, tg, dtype):
    """The mean loss over the counted steps of every sequence."""
    if kind == "xent":
        logits = torch.cat([r.out for r in runs])
        labels = torch.cat([torch.as_tensor(tg[: r.out.shape[0], b]) for b, r in enumerate(runs)])
        return F.cross_entropy(logits, labels)
    if kind == "xent_last":
        logits = torch.stack([r.out[-1] for r in runs])
        return F.cross_entropy(logits, torch.as_tensor(tg))
    tdt = TORCH_DTYPE[np.dtype(dtype)]
    outs = torch.cat([r.out for r in runs])
    want = torch.cat([torch.tensor(tg[: r.out.shape[0], b], dtype=tdt)
                      for b, r in enumerate(runs)])
    return F.mse_loss(outs, want)


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")
@pytest.mark.parametrize("layout, kind", LAYOUT_LOSSES, ids=[f"{a}-{b}" for a, b in LAYOUT_LOSSES])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("head", HEADS, ids=["nohead", "head"])
@pytest.mark.parametrize("encoding", ENCODINGS, ids=_enc_id)
def test_backward_matches_torch(encoding, head, arch, layout, dtype, kind):
    """The loss (clstm.losses, mean over counted steps) and every gradient
    -- embedding.weight, the LSTM's tensors, head.weight, head.bias, dx for
    raw input, dh0/dc0 for a given state -- against torch autograd; first
    with no lengths and no state, then with unsorted lengths and a state."""
    T, B = 6, (1 if layout == "td" else 3)
    t, m = make_pair(encoding, head, arch, dtype, layout, seed=3)
    rng = np.random.default_rng(11)
    for with_extra in (False, True):
        lengths = None
        if with_extra:
            lengths = np.array([T - 2]) if layout == "td" else np.array([2, T, 1])
        inp = make_inputs(encoding, T, B, dtype, rng, lengths)
        state = states(m, B, rng, dtype) if with_extra else None
        tg = _targets(kind, T, B, m.out_size, rng, lengths)
        runs = oracle(t, encoding, inp, state, lengths, dtype, grad=True)
        t.zero_grad()
        t_loss = _torch_loss(kind, runs, tg, dtype)
        t_loss.backward()

        m.zero_grad()
        api_in = seq_to_api(inp, layout) if encoding is None else ids_to_api(inp, layout)
        api_state = None if state is None else tuple(ref.state_to_api(s, layout) for s in state)
        kw = {} if lengths is None else {"lengths": lengths}
        out, _ = m.forward(api_in, api_state, train=True, **kw)
        loss, dout = _clstm_loss(kind, out, _targets_to_api(kind, tg, layout, dtype), lengths,
                                 layout)
        assert isinstance(loss, float)
        assert dout.shape == out.shape and dout.dtype == out.dtype
        assert_close(loss, t_loss.item(), dtype, "loss")
        dx, (dh0, dc0) = m.backward(dout)

        grads = m.named_grads()
        want = torch_grads(t)
        assert set(grads.keys()) == set(want)
        for name, g in want.items():
            assert_close(grads[name], g, dtype, name)
        if encoding is None:
            dx3 = ref.x_from_api(dx, layout)
            assert dx3.shape == (T, B, D) and dx.dtype == np.dtype(dtype)
            for b, r in enumerate(runs):
                n = r.out.shape[0]
                assert_close(dx3[:n, b], r.dx(), dtype, f"dx b={b}")
                assert np.all(dx3[n:, b] == 0), "dx past the length"
        else:
            assert dx is None
        if state is not None:
            dh3, dc3 = ref.state_from_api(dh0, layout), ref.state_from_api(dc0, layout)
            for b, r in enumerate(runs):
                dh_t, dc_t = r.dstate()
                assert_close(dh3[:, b], dh_t, dtype, f"dh0 b={b}")
                assert_close(dc3[:, b], dc_t, dtype, f"dc0 b={b}")


def test_backward_adds_and_touches_only_seen_embedding_rows():
    """Gradients accumulate across backward calls; embedding rows of ids
    never seen get no gradient."""
    m = clstm.Model(3, 4, encoding="embedding", vocab_size=V, output_size=2,
                    dtype=np.float64, seed=0)
    ids = np.array([[0, 2], [2, 0], [0, 0]])
    out, _ = m.forward(ids)
    m.backward(np.ones_like(out))
    once = m.flat_grads.copy()
    assert once.any()
    emb = m.named_grads()["embedding.weight"]
    assert not emb[[1, 3, 4, 5]].any() and emb[[0, 2]].all()
    out, _ = m.forward(ids)
    m.backward(np.ones_like(out))
    np.testing.assert_allclose(m.flat_grads, 2 * once, rtol=1e-14, atol=0)


def test_backward_dstate_only():
    """dout=None and a dstate: gradients flow from the final states alone
    (torch: loss = sum(h * wh) + sum(c * wc))."""
    t, m = make_pair("embedding", O, "L2bi", np.float64, seed=4)
    rng = np.random.default_rng(2)
    ids = rng.integers(0, V, (5, 2))
    wh, wc = states(m, 2, rng, np.float64)
    runs = oracle(t, "embedding", ids, None, None, np.float64, grad=True)
    t.zero_grad()
    sum(((r.h * torch.tensor(wh[:, b])).sum() + (r.c * torch.tensor(wc[:, b])).sum())
        for b, r in enumerate(runs)).backward()
    m.zero_grad()
    m.forward(ids)
    m.backward(None, (wh, wc))
    want = torch_grads(t)
    assert not want["head.weight"].any()
    for name, g in want.items():
        assert_close(m.named_grads()[name], g, np.float64, name)


# ------------------------------------------------------------------ streaming
@pytest.mark.parametrize("batch_first", [False, True], ids=["tbd", "btd"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("encoding", ENCODINGS, ids=_enc_id)
def test_step_equals_forward(encoding, dtype, batch_first):
    """initial_state + step over T = 40 steps equals one forward(train=False),
    outputs and final state."""
    T, B = 40, 3
    _, m = make_pair(encoding, O, "L2proj", dtype, "btd" if batch_first else "tbd", seed=6)
    inp = make_inputs(encoding, T, B, dtype, np.random.default_rng(1))
    api = (ref.x_to_api(inp, "btd") if encoding is None else inp.T) if batch_first else inp
    out, (h, c) = m.forward(api, train=False)
    st = m.initial_state(B)
    assert isinstance(st, clstm.LSTMState)
    steps = []
    for k in range(T):
        o, st2 = m.step(inp[k], st)
        assert st2 is st and o.shape == (B, O) and o.dtype == np.dtype(dtype)
        steps.append(o)
    got = np.stack(steps, axis=1 if batch_first else 0)
    assert_close(got, out, dtype, "out")
    assert_close(st.h, h, dtype, "h")
    assert_close(st.c, c, dtype, "c")


@pytest.mark.parametrize("encoding", ENCODINGS, ids=_enc_id)
def test_state_reset_zeroes_one_stream(encoding):
    """After reset(1), stream 1 continues like a fresh sequence; streams 0
    and 2 are untouched."""
    T1, T2, B, dtype = 5, 7, 3, np.float64
    _, m = make_pair(encoding, O, "L1", dtype, seed=8)
    inp = make_inputs(encoding, T1 + T2, B, dtype, np.random.default_rng(4))
    st = m.initial_state(B)
    for k in range(T1):
        m.step(inp[k], st)
    h_before, c_before = st.h.copy(), st.c.copy()
    st.reset(1)
    assert not st.h[:, 1].any() and not st.c[:, 1].any()
    np.testing.assert_array_equal(st.h[:, [0, 2]], h_before[:, [0, 2]])
    np.testing.assert_array_equal(st.c[:, [0, 2]], c_before[:, [0, 2]])
    outs = np.stack([m.step(inp[k], st)[0] for k in range(T1, T1 + T2)])
    whole, _ = m.forward(inp, train=False)
    fresh, _ = m.forward(inp[T1:], train=False)
    assert_close(outs[:, [0, 2]], whole[T1:, [0, 2]], dtype, "untouched streams")
    assert_close(outs[:, 1], fresh[:, 1], dtype, "reset stream")


def test_step_errors():
    m = clstm.Model(hidden_size=3, vocab="abc", seed=0)
    with pytest.raises(TypeError, match="state: expected an LSTMState"):
        m.step(np.array([0]), None)
    with pytest.raises(ValueError, match=r"ids_t: expected shape \(B,\)"):
        m.step(np.array([[0]]), m.initial_state(1))
    raw = clstm.Model(2, 3, seed=0)
    with pytest.raises(ValueError, match=r"x_t: expected shape \(B, 2\)"):
        raw.step(np.zeros((1, 3)), raw.initial_state(1))


# ------------------------------------------------------------------ vocab
AWKWARD = ['ab"\\\n', "é😀x", '"', "\\", "\n", "😀", 'a"b\\c\nd\té😀\u2028\x7f ']


@pytest.mark.parametrize("vocab", AWKWARD, ids=repr)
@pytest.mark.parametrize("encoding", ["onehot", "embedding"])
def test_encode_decode_round_trip(vocab, encoding):
    m = clstm.Model(2 if encoding == "embedding" else None, 3, encoding=encoding, vocab=vocab,
                    seed=0)
    assert m.vocab == vocab and m.vocab_size == len(vocab) and m.encoding == encoding
    text = (vocab * 3)[::-1] + vocab[:1]
    ids = m.encode(text)
    assert ids.dtype == np.int32 and ids.shape == (len(text),)
    np.testing.assert_array_equal(ids, [vocab.index(ch) for ch in text])
    assert m.decode(ids) == text
    assert m.decode(ids.tolist()) == text
    assert m.encode("").shape == (0,) and m.decode([]) == ""
    out, _ = m.forward(ids, train=False)  # the ids are valid tokens
    assert out.shape == (len(text), 3)


@pytest.mark.parametrize("bad", ["z", "é", "😀", "\n", "\0"], ids=repr)
def test_encode_unknown_character(bad):
    m = clstm.Model(hidden_size=3, vocab='ab"\\', seed=0)
    with pytest.raises(ValueError, match=re.escape(repr(bad)) + ".*not in the model's vocab"):
        m.encode("ab" + bad + "a")


def test_decode_errors_and_no_vocab():
    m = clstm.Model(hidden_size=3, vocab="abc", seed=0)
    for ids in ([3], [-1], [0, 1, 7]):
        with pytest.raises(ValueError, match=re.escape("ids: expected values in [0, 3)")):
            m.decode(ids)
    with pytest.raises(TypeError, match="text: expected a str"):
        m.encode(b"abc")
    nov = clstm.Model(hidden_size=3, vocab_size=4, seed=0)
    assert nov.vocab is None and nov.encoding == "onehot"
    with pytest.raises(ValueError, match="encode: this model has no character vocabulary"):
        nov.encode("a")
    with pytest.raises(ValueError, match="decode: this model has no character vocabulary"):
        nov.decode([0])


@pytest.mark.parametrize(
    "vocab, exc, match",
    [
        ("abca", ValueError, r"vocab: characters must be distinct; repeated: \['a'\]"),
        ("", ValueError, "vocab: expected at least one character"),
        ("a\0b", ValueError, "vocab: the character U\\+0000 is not allowed"),
        ("a\ud800", ValueError, "vocab: contains lone surrogates"),
        (["a", "b"], TypeError, "vocab: expected a str of distinct characters, got list"),
        (b"ab", TypeError, "vocab: expected a str"),
    ],
    ids=["duplicate", "empty", "nul", "surrogate", "list", "bytes"],
)
def test_bad_vocab(vocab, exc, match):
    with pytest.raises(exc, match=match):
        clstm.Model(hidden_size=3, vocab=vocab)


# ------------------------------------------------------------------ files
MODEL_ATTRS = ("input_size", "hidden_size", "num_layers", "bidirectional", "proj_size",
               "dtype", "encoding", "vocab_size", "output_size", "softmax", "vocab")
FILE_CASES = [
    # (encoding, vocab) -- vocab only for token models
    (None, None), ("onehot", None), ("onehot", 'ab"\\\né😀'), ("embedding", None),
    ("embedding", 'x"\\\né😀'),
]


def _attrs(m):
    return {k: getattr(m, k) for k in MODEL_ATTRS}


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("head", [0, 3, "softmax"], ids=str)
@pytest.mark.parametrize("encoding, vocab", FILE_CASES,
                         ids=[f"{_enc_id(e)}{'-vocab' if v else ''}" for e, v in FILE_CASES])
def test_save_load_round_trip(tmp_path, encoding, vocab, head, dtype):
    pytest.importorskip("safetensors")
    import safetensors
    from safetensors.numpy import load_file

    kw = dict(output_size=0 if head == 0 else 3, softmax=head == "softmax")
    if encoding is not None:
        kw.update(encoding=encoding, vocab=vocab, vocab_size=None if vocab else 5)
    m = clstm.Model(None if encoding == "onehot" else 4, 5, 2, bidirectional=True, proj_size=2,
                    dtype=dtype, seed=9, **kw)
    path = tmp_path / "m.safetensors"
    clstm.save(m, path)
    r = clstm.load(path)
    bare = encoding is None and head == 0
    assert type(r) is (clstm.LSTM if bare else clstm.Model)
    lstm_attrs = MODEL_ATTRS[:6]
    assert {k: getattr(r, k) for k in lstm_attrs} == {k: getattr(m, k) for k in lstm_attrs}
    if not bare:
        assert _attrs(r) == _attrs(m)
    assert r.flat_parameters.tobytes() == m.flat_parameters.tobytes()
    assert list(r.named_parameters().keys()) == list(m.named_parameters().keys())
    # the same outputs
    rng = np.random.default_rng(0)
    inp = rng.integers(0, m.vocab_size, (4, 2)) if encoding else \
        rng.standard_normal((4, 2, 4)).astype(dtype)
    np.testing.assert_array_equal(r.forward(inp, train=False)[0], m.forward(inp, train=False)[0])

    # the file is plain safetensors
    tensors = load_file(str(path))
    assert sorted(tensors) == sorted(m.named_parameters().keys())
    for k, v in m.named_parameters().items():
        assert tensors[k].dtype == v.dtype
        np.testing.assert_array_equal(tensors[k], v)
    with safetensors.safe_open(str(path), framework="numpy") as f:
        meta = f.metadata()
    assert meta["encoding"] == (encoding or "none")
    assert meta["vocab_size"] == str(m.vocab_size)
    assert meta["output_size"] == str(m.output_size)
    assert meta["softmax"] == ("1" if head == "softmax" else "0")
    assert meta.get("vocab") == vocab


def test_bare_model_loads_as_lstm(tmp_path):
    m = clstm.Model(3, 4, seed=0)
    assert m.is_bare_lstm
    clstm.save(m, tmp_path / "m")
    r = clstm.load(tmp_path / "m")
    assert type(r) is clstm.LSTM
    np.testing.assert_array_equal(r.flat_parameters, m.flat_parameters)
    clstm.save(clstm.LSTM(3, 4, seed=0), tmp_path / "l")
    assert (tmp_path / "l").read_bytes() == (tmp_path / "m").read_bytes()


def test_load_batch_first_model(tmp_path):
    m = clstm.Model(hidden_size=3, vocab="abcd", output_size=2, seed=0)
    clstm.save(m, tmp_path / "m")
    r = clstm.load(tmp_path / "m", batch_first=True)
    assert type(r) is clstm.Model and r.batch_first
    ids = np.array([[0, 1, 2], [3, 2, 1]])  # (B, T)
    np.testing.assert_array_equal(r.forward(ids, train=False)[0],
                                  m.forward(ids.T, train=False)[0].transpose(1, 0, 2))


@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported")
@pytest.mark.parametrize("parts", ["embedding+head", "embedding", "head"])
@pytest.mark.parametrize("double", [False, True])
def test_torch_written_file_without_metadata(tmp_path, parts, double):
    """safetensors.torch.save_file of {**lstm.state_dict(), embedding, head}
    with NO metadata: the sizes and the encoding are read off the tensors,
    and the model gives torch's outputs."""
    pytest.importorskip("safetensors")
    from safetensors.torch import save_file

    dtype = np.float64 if double else np.float32
    encoding = "embedding" if "embedding" in parts else None
    t, _ = make_pair(encoding, O if "head" in parts else 0, "L2bi", dtype, seed=12)
    # bidirectional is not inferred without metadata: use a unidirectional LSTM
    t.lstm = torch.nn.LSTM(D, 5, 2).to(TORCH_DTYPE[np.dtype(dtype)])
    if t.head is not None:
        t.head = torch.nn.Linear(5, O).to(TORCH_DTYPE[np.dtype(dtype)])
    sd = dict(t.lstm.state_dict())
    if t.embedding is not None:
        sd["embedding.weight"] = t.embedding.weight.detach()
    if t.head is not None:
        sd["head.weight"], sd["head.bias"] = t.head.weight.detach(), t.head.bias.detach()
    save_file(sd, str(tmp_path / "t"))
    m = clstm.load(tmp_path / "t")
    assert type(m) is clstm.Model
    assert (m.encoding, m.vocab_size, m.vocab) == (encoding, V if encoding else 0, None)
    assert (m.input_size, m.hidden_size, m.num_layers) == (D, 5, 2)
    assert (m.output_size, m.softmax, m.dtype) == (O if t.head is not None else 0, False,
                                                   np.dtype(dtype))
    rng = np.random.default_rng(3)
    inp = make_inputs(encoding, 7, 2, dtype, rng)
    out, (h, c) = m.forward(inp, train=False)
    with torch.no_grad():
        runs = oracle(t, encoding, inp, None, None, dtype)
    for b, r in enumerate(runs):
        assert_close(out[:, b], r.out.numpy(), dtype, "out")
        assert_close(h[:, b], r.h.numpy(), dtype, "h")
        assert_close(c[:, b], r.c.numpy(), dtype, "c")


@pytest.mark.parametrize(
    "bad_vocab, why",
    [("aab\"\\", "vocab"), ("ab", "vocab"), ("abcdef", "vocab"),
     # an escaped NUL is refused by the JSON reader before the vocab check
     # (its message says "a __metadata__ value is not a valid JSON string")
     ("abc\0d", "__metadata__")],
    ids=["duplicate", "short", "long", "nul"])
def test_load_corrupted_vocab(tmp_path, bad_vocab, why):
    """A metadata vocab that is not vocab_size distinct characters: a
    ValueError naming the file and the vocab."""
    pytest.importorskip("safetensors")
    import safetensors
    from safetensors.numpy import load_file, save_file

    m = clstm.Model(hidden_size=3, vocab='ab"\\c', output_size=2, seed=0)
    clstm.save(m, tmp_path / "good")
    with safetensors.safe_open(str(tmp_path / "good"), framework="numpy") as f:
        meta = f.metadata()
    save_file(load_file(str(tmp_path / "good")), str(tmp_path / "rewritten"), metadata=meta)
    assert clstm.load(tmp_path / "rewritten").vocab == 'ab"\\c'  # the rewrite itself is fine
    meta["vocab"] = bad_vocab
    save_file(load_file(str(tmp_path / "good")), str(tmp_path / "bad"), metadata=meta)
    with pytest.raises(ValueError, match=r"bad.*not a valid clstm model file.*" + why):
        clstm.load(tmp_path / "bad")


def test_load_vocab_on_raw_model_rejected(tmp_path):
    pytest.importorskip("safetensors")
    import safetensors
    from safetensors.numpy import load_file, save_file

    m = clstm.Model(2, 3, output_size=2, seed=0)
    clstm.save(m, tmp_path / "good")
    with safetensors.safe_open(str(tmp_path / "good"), framework="numpy") as f:
        meta = f.metadata()
    meta["vocab"] = "ab"
    save_file(load_file(str(tmp_path / "good")), str(tmp_path / "bad"), metadata=meta)
    with pytest.raises(ValueError, match="not a valid clstm model file.*vocab"):
        clstm.load(tmp_path / "bad")


# ------------------------------------------------------------------ constructor
@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(input_size=3), TypeError, r"^hidden_size: required"),
        (dict(hidden_size=3, vocab="abc", input_size=4), ValueError,
         r"^input_size: with encoding='onehot' it is vocab_size \(3\), got 4"),
        (dict(hidden_size=3, vocab_size=5, encoding="onehot", input_size=2), ValueError,
         r"^input_size: with encoding='onehot' it is vocab_size \(5\), got 2"),
        (dict(hidden_size=3, vocab="abb"), ValueError, r"^vocab: characters must be distinct"),
        (dict(input_size=2, hidden_size=3, vocab_size=4, encoding=None), ValueError,
         r"^vocab_size: a vocabulary needs encoding='onehot' or 'embedding'"),
        (dict(hidden_size=3, vocab="ab", encoding=None), ValueError, r"^vocab_size: "),
        (dict(hidden_size=3, vocab_size=4, encoding="embedding"), TypeError,
         r"^input_size: required for encoding='embedding'"),
        (dict(input_size=2, hidden_size=3, softmax=True), ValueError,
         r"^softmax: needs a head \(output_size > 0\)"),
        (dict(input_size=2, hidden_size=3, output_size=-1), ValueError,
         r"^output_size: expected 0 \(no head\) or a positive int, got -1"),
        (dict(input_size=2, hidden_size=3, output_size=2.0), TypeError, r"^output_size: "),
        (dict(input_size=2, hidden_size=3, encoding="one-hot"), ValueError,
         r"^encoding: expected None, 'onehot' or 'embedding', got 'one-hot'"),
        (dict(input_size=2, hidden_size=3, encoding="Embedding"), ValueError, r"^encoding: "),
        (dict(hidden_size=3), TypeError, r"^input_size: required for real-valued input"),
        (dict(hidden_size=3, encoding="onehot"), TypeError,
         r"^vocab_size: required for encoding='onehot'"),
        (dict(hidden_size=3, vocab_size=0, encoding="onehot"), ValueError, r"^vocab_size: "),
        (dict(hidden_size=3, vocab_size=-2, encoding="embedding", input_size=2), ValueError,
         r"^vocab_size: "),
        (dict(hidden_size=3, vocab_size=2.0), TypeError, r"^vocab_size: "),
        (dict(hidden_size=3, vocab="abc", vocab_size=4), ValueError,
         r"^vocab_size: 4 differs from len\(vocab\) = 3"),
        (dict(input_size=2, hidden_size=3, output_size=2, softmax=1), TypeError,
         r"^softmax: expected a bool"),
        (dict(input_size=0, hidden_size=3, encoding="embedding", vocab_size=3), ValueError,
         r"^input_size: "),
    ],
    ids=lambda v: v.__name__ if isinstance(v, type) else None,
)
def test_constructor_errors(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        clstm.Model(**kwargs)


def test_constructor_defaults():
    m = clstm.Model(hidden_size=3, vocab="abcd")
    assert (m.encoding, m.input_size, m.vocab_size, m.output_size, m.softmax) == \
        ("onehot", 4, 4, 0, False)
    m = clstm.Model(2, 3)
    assert (m.encoding, m.vocab_size, m.vocab, m.is_bare_lstm, m.out_size) == \
        (None, 0, None, True, 3)
    m = clstm.Model(2, 3, encoding="embedding", vocab_size=7, output_size=4, softmax=True)
    assert not m.is_bare_lstm and m.out_size == 4 and m.input_size == 2
    assert m.named_parameters()["embedding.weight"].shape == (7, 2)
    assert m.named_parameters()["head.weight"].shape == (4, 3)
    assert "encoding='embedding', vocab_size=7, output_size=4, softmax=True" in repr(m)


def test_init_ranges():
    """torch's init: N(0, 1) embedding, U(+-1/sqrt(N*R)) head."""
    m = clstm.Model(8, 10, encoding="embedding", vocab_size=200, output_size=50,
                    bidirectional=True, proj_size=4, seed=1, dtype=np.float64)
    p = m.named_parameters()
    emb = p["embedding.weight"]
    assert abs(emb.mean()) < 0.1 and 0.9 < emb.std() < 1.1
    bound = 1 / np.sqrt(8)
    for name in ("head.weight", "head.bias"):
        assert np.abs(p[name]).max() <= bound and np.abs(p[name]).max() > 0.8 * bound, name


# ------------------------------------------------------------------ compute errors
@pytest.fixture
def token_model():
    return clstm.Model(hidden_size=3, vocab="abcd", output_size=2, seed=0)


@pytest.mark.parametrize("ids, bad", [([[0], [4]], 4), ([[-1], [0]], -1),
                                      ([[0, 1], [2, 99]], 99)], ids=str)
def test_forward_ids_out_of_range(token_model, ids, bad):
    with pytest.raises(ValueError, match=re.escape(f"ids: expected token ids in [0, 4), got {bad}")):
        token_model.forward(np.array(ids))


def test_forward_ids_past_length_are_never_read(token_model):
    """Padding past a length may hold anything (e.g. -100, as torch's
    ignore_index); ids at valid steps are still checked."""
    lens = np.array([1, 2])
    out_pad, _ = token_model.forward(np.array([[0, 1], [-100, 1]]), lengths=lens, train=False)
    out_ok, _ = token_model.forward(np.array([[0, 1], [3, 1]]), lengths=lens, train=False)
    np.testing.assert_array_equal(out_pad, out_ok)
    with pytest.raises(ValueError, match=r"ids: expected token ids in \[0, 4\), got 9"):
        token_model.forward(np.array([[0, 1], [9, 9]]), lengths=lens)


def test_cross_entropy_targets_past_length_are_never_read():
    rng = np.random.default_rng(0)
    out = rng.standard_normal((3, 2, 4))
    lens = np.array([1, 3])
    a = clstm.losses.cross_entropy(out, np.array([[1, 2], [-100, 0], [-100, 3]]), lens)
    b = clstm.losses.cross_entropy(out, np.array([[1, 2], [0, 0], [0, 3]]), lens)
    assert a[0] == b[0]
    np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(ValueError, match=r"targets: expected class ids in \[0, 4\), got "
                                         r"values in \[-100, 3\]"):
        clstm.losses.cross_entropy(out, np.array([[1, 2], [0, -100], [0, 3]]), lens)


@pytest.mark.parametrize("ids", [np.array([[0.0], [1.0]]), np.array([True, False]),
                                 np.array(["a", "b"])], ids=["float", "bool", "str"])
def test_forward_non_integer_ids(token_model, ids):
    with pytest.raises(TypeError, match="ids: expected an integer array of token ids"):
        token_model.forward(ids)


def test_forward_raw_x_to_token_model(token_model):
    with pytest.raises(TypeError, match="ids: expected an integer array"):
        token_model.forward(np.zeros((3, 2, 4), np.float32))
    with pytest.raises(ValueError, match=r"ids: expected shape \(T, B\) or \(T,\)"):
        token_model.forward(np.zeros((3, 2, 4), np.int64))


def test_forward_ids_to_raw_model():
    m = clstm.Model(2, 3, output_size=2, seed=0)
    with pytest.raises(TypeError, match="x: expected a floating-point array"):
        m.forward(np.zeros((3, 2, 2), np.int64))


@pytest.mark.parametrize("ids", [np.zeros((0, 2), np.int64), np.zeros((2, 0), np.int64),
                                 np.zeros(0, np.int64)], ids=str)
def test_forward_empty_ids(token_model, ids):
    with pytest.raises(ValueError, match="ids: expected T, B >= 1"):
        token_model.forward(ids)


def test_forward_ids_dtypes(token_model):
    """Any integer dtype, any strides, read-only: the same result."""
    ids = np.array([[0, 3, 1], [2, 2, 0]])
    want = token_model.forward(ids, train=False)[0]
    for variant in (ids.astype(np.uint8), ids.astype(np.int16), np.asfortranarray(ids),
                    np.repeat(ids, 2, axis=1)[:, ::2], torch.tensor(ids)):
        np.testing.assert_array_equal(token_model.forward(variant, train=False)[0], want)
    ro = ids.copy()
    ro.setflags(write=False)
    np.testing.assert_array_equal(token_model.forward(ro, train=False)[0], want)


def test_backward_without_forward(token_model):
    with pytest.raises(ValueError, match=r"backward\(\) needs a preceding forward"):
        token_model.backward(None)
    token_model.forward(np.array([0, 1]), train=False)
    with pytest.raises(ValueError, match=r"backward\(\) needs a preceding forward"):
        token_model.backward(None)
    out, _ = token_model.forward(np.array([0, 1]))
    dx, _ = token_model.backward(np.ones_like(out))
    assert dx is None
    with pytest.raises(ValueError, match=r"backward\(\) needs a preceding forward"):
        token_model.backward(np.ones_like(out))


def test_backward_dout_shape(token_model):
    out, _ = token_model.forward(np.array([[0, 1, 2]]))
    with pytest.raises(ValueError, match=re.escape("dout: expected shape (1, 3, 2) (the shape "
                                                   "of out), got (1, 3, 3)")):
        token_model.backward(np.zeros((1, 3, 3)))
    with pytest.raises(TypeError, match="dout: expected a floating-point array"):
        token_model.backward(np.zeros((1, 3, 2), np.int64))
    # refused calls do not use up the forward
    assert token_model.backward(np.ones_like(out))[0] is None


def test_to_onnx_with_head_or_encoding():
    for m in (clstm.Model(2, 3, output_size=2), clstm.Model(hidden_size=3, vocab="ab")):
        with pytest.raises(NotImplementedError, match="to_onnx: only a bare LSTM"):
            m.to_onnx()


def test_clip_model_backward_not_implemented():
    m = clstm.Model(hidden_size=3, vocab="ab", output_size=2, clip=1.0)
    out, _ = m.forward(np.array([0, 1]))
    with pytest.raises(NotImplementedError, match="backward: not available for a model with clip"):
        m.backward(np.ones_like(out))


def test_error_names_argument():
    with pytest.raises(TypeError) as e:
        clstm.Model(2, 3, output_size="2")
    assert_message(e, ["output_size"])


# ------------------------------------------------------------------ training
def test_adam_trains_a_character_model():
    """The full training path: encode -> forward -> cross_entropy -> backward
    -> Adam on the flat blocks. Next-character prediction of a repeated
    pattern: the loss drops well below the untrained model's."""
    from clstm.optim import Adam

    m = clstm.Model(hidden_size=16, vocab="abcd", encoding="embedding", input_size=8,
                    output_size=4, softmax=True, dtype=np.float64, seed=0)
    text = "abcdcba" * 6
    ids = m.encode(text)
    other = np.roll(ids, 3)  # a second stream, at another phase
    x, y = np.stack([ids[:-1], other[:-1]], 1), np.stack([ids[1:], other[1:]], 1)
    opt = Adam(m, lr=0.03)
    losses = []
    for _ in range(50):
        m.zero_grad()
        out, _ = m.forward(x)
        loss, dout = cross_entropy(out, y)
        m.backward(dout)
        opt.step()
        losses.append(loss)
    assert losses[0] > 1.2  # about ln 4 = 1.39 untrained
    assert losses[-1] < 0.05, losses[-1]
    # the trained model predicts the next character of the pattern
    probs = clstm.losses.softmax(m.forward(m.encode("abcdcb"), train=False)[0])
    assert m.decode(probs.argmax(-1)) == "bcdcba"


def test_train_and_eval_modes():
    """train()/eval() set what forward() does by default, as torch's module
    modes: training keeps what backward needs, eval() runs inference (and
    an explicit train= still decides); a quantized model only evaluates."""
    m = clstm.LSTM(3, 4, num_layers=2, dropout=0.5, seed=1)
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    assert m.training is True
    y_train, _ = m.forward(x)
    m.backward(np.ones_like(y_train))  # the default forward was a training one
    assert m.eval() is m and m.training is False
    y1, _ = m.forward(x)
    y2, _ = m.forward(x, train=False)
    np.testing.assert_array_equal(y1, y2)  # no dropout, deterministic
    assert not np.array_equal(y1, y_train)  # (the training forward dropped units)
    with pytest.raises(ValueError, match="needs a preceding forward"):
        m.backward(np.ones_like(y1))  # an inference forward keeps nothing for it
    m.forward(x, train=True)
    m.backward(np.ones_like(y1))  # an explicit train=True still trains
    assert m.train() is m and m.training is True
    q = clstm.quantize(clstm.LSTM(3, 4, seed=1))
    assert q.training is False and q.eval() is q
    with pytest.raises(ValueError, match="quantized"):
        q.train()
    s2s = clstm.Seq2Seq(5, 6, embedding=4, hidden_size=4, seed=1)
    assert s2s.training and s2s.eval() is s2s and not s2s.training


@pytest.mark.parametrize("kw", [{}, dict(num_layers=2), dict(bidirectional=True, proj_size=2),
                                dict(dropout=0.5, num_layers=3, batch_first=True)])
def test_repr_as_torch_shows_it(kw):
    torch = pytest.importorskip("torch")
    assert repr(clstm.LSTM(3, 4, **kw)) == repr(torch.nn.LSTM(3, 4, **kw))


def test_repr_adds_clstms_own_settings():
    m = clstm.Model(encoding="onehot", vocab_size=5, hidden_size=4, peepholes=True, clip=2.0,
                    output_size=5, softmax=True, dtype=np.float64, seed=1)
    assert repr(m) == ("Model(5, 4, peepholes=True, clip=2.0, dtype=float64, "
                       "encoding='onehot', vocab_size=5, output_size=5, softmax=True)")
