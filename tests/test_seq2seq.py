"""The encoder-decoder computed in C (clstm_seq2seq_*, through the binding)
against the independent PyTorch implementation in tests/seq2seq_torch.py,
with the weights copied across by name: logits, loss and every
parameter's gradient, in float64 and float32."""
import numpy as np
import pytest

from clstm import _core, losses

torch = pytest.importorskip("torch")
from seq2seq_torch import TorchSeq2Seq, torch_name  # noqa: E402

VS, VT, E, H, HD, A = 9, 8, 5, 6, 7, 4


def pair(attention, layers, decoder_layers, dtype):
    torch.manual_seed(3)
    hd = 2 * H if attention == "dot" else HD
    oracle = TorchSeq2Seq(VS, VT, embedding=E, hidden=H, layers=layers, decoder_hidden=hd,
                          decoder_layers=decoder_layers, attention=attention, attentional=A,
                          dtype=torch.float64)
    settings = dict(input_size=E, hidden_size=H, num_layers=layers, bidirectional=1,
                    dtype=_core.DTYPES[np.dtype(dtype).name], encoding=_core.ENCODINGS["embedding"],
                    vocab_size=VS, target_vocab=VT, target_embedding=E, decoder_hidden=hd,
                    decoder_layers=decoder_layers, attention=int(attention == "dot"),
                    attentional_size=A)
    core = _core.Model(settings, 1, "default")
    block = np.frombuffer(core.params_block(), dtype)
    params = dict(oracle.named_parameters())
    names = []
    for name, offset, shape in core.tensors():
        w = params[torch_name(name)].detach().numpy()
        assert w.shape == tuple(shape), name
        block[offset:offset + w.size] = w.ravel()
        names.append(name)
    assert sorted(torch_name(n) for n in names) == sorted(params)  # every tensor, once
    return oracle, core


def batch(rng):
    src_lens = np.array([6, 3, 1, 5], np.int64)
    tgt_lens = np.array([4, 5, 1, 2], np.int64)
    Ts, Tt, B = 6, 5, 4
    src = rng.integers(0, VS, (Ts, B)).astype(np.int32)
    tgt_in = rng.integers(0, VT, (Tt, B)).astype(np.int32)
    tgt_out = rng.integers(1, VT, (Tt, B)).astype(np.int32)
    return src, src_lens, tgt_in, tgt_out, tgt_lens


@pytest.mark.parametrize("attention", ["general", "dot"])
@pytest.mark.parametrize("layers, decoder_layers", [(1, 1), (2, 2)])
@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 2e-4)])
def test_loss_logits_and_gradients_match_pytorch(attention, layers, decoder_layers, dtype, rtol):
    oracle, core = pair(attention, layers, decoder_layers, dtype)
    src, src_lens, tgt_in, tgt_out, tgt_lens = batch(np.random.default_rng(0))
    Ts, B = src.shape
    Tt = tgt_in.shape[0]
    T = torch.as_tensor
    loss_t = oracle.loss(T(src).long(), src_lens, T(tgt_in).long(), T(tgt_out).long(), tgt_lens)
    loss_t.backward()
    with torch.no_grad():
        logits_t = oracle(T(src).long(), src_lens, T(tgt_in).long()).numpy()

    ws = np.zeros(core.seq2seq_workspace_size(Ts, Tt, B, True), np.uint8)
    logits = np.zeros((Tt, B, VT), dtype)
    core.seq2seq_forward(Ts, Tt, B, logits.reshape(-1), src.reshape(-1), src_lens,
                         tgt_in.reshape(-1), tgt_lens, True, ws)
    valid = np.arange(Tt)[:, None] < tgt_lens[None, :]
    np.testing.assert_allclose(logits[valid], logits_t[valid], rtol=rtol, atol=rtol)
    assert not logits[~valid].any()  # 0 past each target's length
    loss, dz = losses.cross_entropy(logits, tgt_out, tgt_lens)
    assert loss == pytest.approx(float(loss_t.detach()), rel=rtol)
    core.zero_grad()
    core.seq2seq_backward(Ts, Tt, B, np.ascontiguousarray(dz, dtype).reshape(-1), ws)
    grads = np.frombuffer(core.grads_block(), dtype)
    params = dict(oracle.named_parameters())
    for name, offset, shape in core.tensors():
        want = params[torch_name(name)].grad.numpy()
        got = grads[offset:offset + want.size].reshape(want.shape)
        scale = max(np.abs(want).max(), 1e-3)
        np.testing.assert_allclose(got, want, rtol=0, atol=rtol * scale, err_msg=name)


def test_python_loads_an_encoder_decoder_written_by_the_core(tmp_path):
    import clstm
    _, core = pair("general", 1, 1, np.float64)
    path = str(tmp_path / "s2s.safetensors")
    core.save(path)
    m = clstm.load(path)
    assert isinstance(m, clstm.Seq2Seq) and m.source_vocabulary is None
    np.testing.assert_array_equal(m.flat_parameters, np.frombuffer(core.params_block()))
    with pytest.raises(ValueError, match="no token vocabularies"):
        m.translate(["ab"])


def test_a_plain_model_keeps_user_metadata_named_like_decoder_keys(tmp_path):
    """A file without a decoder (format version 1) reads "attention" and the
    like as user metadata, as it did before encoder-decoders existed."""
    import clstm
    m = clstm.Model(vocab="ab", hidden_size=3, output_size=2, seed=0)
    m.metadata.update(attention="luong", target_vocab="5", decoder_layers="x")
    path = str(tmp_path / "m.safetensors")
    clstm.save(m, path)
    back = clstm.load(path)
    assert dict(back.metadata) == dict(m.metadata)
    np.testing.assert_array_equal(back.flat_parameters, m.flat_parameters)


def _rewrite_header(path, edit):
    import json
    import struct
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    edit(header["__metadata__"])
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    open(path, "wb").write(struct.pack("<Q", len(text)) + text + raw[8 + n:])


@pytest.mark.parametrize("edit, needle", [
    (lambda m: m.update(quantized="int8"), "cannot be quantized"),
    (lambda m: m.pop("target_vocab"), "without target_vocab"),
    (lambda m: m.update(format_version="1"), "data size"),  # the decoder's tensors are extra
    (lambda m: m.update(attention="bahdanau"), "attention is not"),
])
def test_encoder_decoder_files_are_checked(tmp_path, edit, needle):
    _, core = pair("general", 1, 1, np.float64)
    path = str(tmp_path / "s2s.safetensors")
    core.save(path)
    assert _core.load(path).config()["target_vocab"] == VT  # as saved: it loads
    _rewrite_header(path, edit)
    with pytest.raises(ValueError, match=needle):
        _core.load(path)


def decode_pair(attention, scale, eos_bias):
    """The oracle and clstm with the same weights, the output layer scaled
    and </s> favoured by eos_bias: sharper distributions than the initial
    weights give, so that some searches end early and widths disagree."""
    oracle, core = pair(attention, 2, 2, np.float64)
    with torch.no_grad():
        oracle.out.weight.mul_(scale)
        oracle.out.bias[1] += eos_bias
    block = np.frombuffer(core.params_block(), np.float64)
    params = dict(oracle.named_parameters())
    for name, offset, shape in core.tensors():
        w = params[torch_name(name)].detach().numpy()
        block[offset:offset + w.size] = w.ravel()
    return oracle, core


@pytest.mark.parametrize("attention", ["general", "dot"])
def test_beam_search_is_the_oracles(attention):
    rng = np.random.default_rng(5)
    B, Ts, max_len = 6, 7, 9
    src = rng.integers(0, VS, (Ts, B)).astype(np.int32)
    src_lens = np.array([7, 3, 1, 5, 6, 2], np.int64)
    ended_early = reached_max = widths_differ = 0
    for scale, eos_bias in ((6, 0.3), (6, 0.35), (8, 0.35), (4, 0.4), (6, 0.6), (3, 0.5),
                            (3, 0.7)):
        oracle, core = decode_pair(attention, scale, eos_bias)
        src_t = torch.as_tensor(src).long()
        greedy = oracle.greedy(src_t, src_lens, max_len)
        for width, alpha, nbest in ((1, 1.0, 1), (3, 1.0, 3), (5, 0.6, 2), (4, 0.0, 4)):
            tokens, lengths, scores = core.seq2seq_beam_search(Ts, B, src.reshape(-1), src_lens,
                                                               width, max_len, alpha, nbest)
            want = oracle.beam(src_t, src_lens, width, max_len, alpha, nbest)
            for b in range(B):
                got = [(tokens[b, k, :lengths[b, k]].tolist(), scores[b, k])
                       for k in range(nbest) if lengths[b, k] >= 0]
                assert [t for t, _ in got] == [t for t, _ in want[b]], (scale, eos_bias, b)
                np.testing.assert_allclose([s for _, s in got], [s for _, s in want[b]],
                                           rtol=1e-9)
                top = got[0][0]
                ended_early += 0 < len(top) < max_len
                reached_max += len(top) == max_len
                widths_differ += top != greedy[b]
            if width == 1:  # greedy decoding is width 1
                assert [tokens[b, 0, :lengths[b, 0]].tolist() for b in range(B)] == greedy
    # the comparisons above covered early ends, cut-offs and searches that differ
    assert ended_early and reached_max and widths_differ


def test_beam_search_refuses_bad_arguments():
    _, core = pair("general", 1, 1, np.float64)
    src, lens = np.ones(4, np.int32), np.array([2, 2], np.int64)
    for width, max_len, alpha, nbest, needle in ((0, 5, 1.0, 1, "size"), (2, 0, 1.0, 1, "size"),
                                                  (2, 5, -1.0, 1, "argument"),
                                                  (2, 5, float("nan"), 1, "argument"),
                                                  (2, 5, 1.0, 3, "argument")):
        with pytest.raises(ValueError, match=needle):
            core.seq2seq_beam_search(2, 2, src, lens, width, max_len, alpha, nbest)
    with pytest.raises(ValueError, match="argument"):  # a source id past V
        core.seq2seq_beam_search(2, 2, np.full(4, VS, np.int32), lens, 2, 5, 1.0, 1)


def test_teacher_forcing_does_not_depend_on_the_thread_count():
    """Rows split over the team, weight gradients by output rows: the same
    bits from 1, 2 or 3 threads."""
    import clstm
    before = clstm.get_num_threads()
    out = []
    try:
        for nt in (1, 2, 3):
            clstm.set_num_threads(nt)
            _, core = pair("general", 2, 2, np.float32)
            src, src_lens, tgt_in, tgt_out, tgt_lens = batch(np.random.default_rng(0))
            (Ts, B), Tt = src.shape, tgt_in.shape[0]
            ws = np.zeros(core.seq2seq_workspace_size(Ts, Tt, B, True), np.uint8)
            z = np.zeros((Tt, B, VT), np.float32)
            core.seq2seq_forward(Ts, Tt, B, z.reshape(-1), src.reshape(-1), src_lens,
                                 tgt_in.reshape(-1), tgt_lens, True, ws)
            _, dz = losses.cross_entropy(z, tgt_out, tgt_lens)
            core.zero_grad()
            core.seq2seq_backward(Ts, Tt, B, np.ascontiguousarray(dz).reshape(-1), ws)
            out.append((z, np.frombuffer(core.grads_block(), np.float32).copy()))
    finally:
        clstm.set_num_threads(before)
    for z, grads in out[1:]:
        np.testing.assert_array_equal(z, out[0][0])
        np.testing.assert_array_equal(grads, out[0][1])


def test_beam_search_does_not_depend_on_the_thread_count():
    import clstm
    before = clstm.get_num_threads()
    _, core = decode_pair("general", 6, 0.35)
    rng = np.random.default_rng(7)
    src = rng.integers(0, VS, (7, 9)).astype(np.int32)
    lens = rng.integers(1, 8, 9).astype(np.int64)
    out = []
    try:
        for nt in (1, 2, 3):
            clstm.set_num_threads(nt)
            out.append(core.seq2seq_beam_search(7, 9, src.reshape(-1), lens, 4, 10, 1.0, 3))
    finally:
        clstm.set_num_threads(before)
    for got in out[1:]:
        for a, b in zip(got, out[0]):
            np.testing.assert_array_equal(a, b)
