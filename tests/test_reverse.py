"""A reverse-only LSTM (reverse=True: ONNX's direction="reverse", Keras's
go_backwards=True) against torch.nn.LSTM run on each sequence's valid steps
reversed, its output reversed back: outputs, final states and every
gradient. (Against the NumPy reference: REVERSE_CASES in test_forward,
test_backward and test_gradcheck; ONNX: test_onnx.)"""
import numpy as np
import pytest

import clstm

torch = pytest.importorskip("torch")


def torch_twin(m):
    t = torch.nn.LSTM(m.input_size, m.hidden_size, m.num_layers, proj_size=m.proj_size,
                      dtype=torch.float64)
    t.load_state_dict({k: torch.tensor(np.asarray(v, np.float64))
                       for k, v in m.state_dict().items()})
    return t


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("L,proj,batch_first", [(1, 0, False), (2, 3, False), (3, 0, True)])
def test_reverse_is_torch_on_reversed_sequences(L, proj, batch_first, dtype, tol):
    rng = np.random.default_rng(L)
    T, B, D, H = 6, 4, 3, 5
    m = clstm.LSTM(D, H, L, reverse=True, proj_size=proj, dtype=dtype, seed=L,
                   batch_first=batch_first)
    R = proj or H
    lens = np.array([6, 2, 1, 4])
    x = rng.standard_normal((T, B, D))
    h0, c0 = rng.standard_normal((L, B, R)), rng.standard_normal((L, B, H))
    dy, dh, dc = (rng.standard_normal(s) for s in ((T, B, R), (L, B, R), (L, B, H)))
    xa = x.swapaxes(0, 1) if batch_first else x
    y, (hT, cT) = m.forward(xa.astype(dtype), (h0.astype(dtype), c0.astype(dtype)),
                            lengths=lens, train=True)
    m.zero_grad()
    dx, (dh0, dc0) = m.backward(dy.swapaxes(0, 1).astype(dtype) if batch_first
                                else dy.astype(dtype), (dh.astype(dtype), dc.astype(dtype)))
    if batch_first:
        y, dx = y.swapaxes(0, 1), dx.swapaxes(0, 1)
    t = torch_twin(m)
    grads = {k: np.zeros_like(v, dtype=np.float64) for k, v in m.state_dict().items()}
    for b in range(B):
        n = lens[b]
        xb = torch.tensor(x[:n, b][::-1].copy(), requires_grad=True)
        hb = torch.tensor(h0[:, b].copy(), requires_grad=True)
        cb = torch.tensor(c0[:, b].copy(), requires_grad=True)
        t.zero_grad()
        yt, (ht, ct) = t(xb, (hb, cb))
        np.testing.assert_allclose(y[:n, b], yt.detach().numpy()[::-1], rtol=tol, atol=tol)
        np.testing.assert_allclose(hT[:, b], ht.detach().numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(cT[:, b], ct.detach().numpy(), rtol=tol, atol=tol)
        assert not y[n:, b].any()
        loss = ((yt * torch.tensor(dy[:n, b][::-1].copy())).sum()
                + (ht * torch.tensor(dh[:, b])).sum() + (ct * torch.tensor(dc[:, b])).sum())
        loss.backward()
        np.testing.assert_allclose(dx[:n, b], xb.grad.numpy()[::-1], rtol=tol, atol=tol)
        assert not dx[n:, b].any()
        np.testing.assert_allclose(dh0[:, b], hb.grad.numpy(), rtol=tol, atol=tol)
        np.testing.assert_allclose(dc0[:, b], cb.grad.numpy(), rtol=tol, atol=tol)
        for k, p in t.named_parameters():
            grads[k] += p.grad.numpy()
    for k, g in m.named_grads():
        np.testing.assert_allclose(g, grads[k], rtol=10 * tol, atol=10 * tol, err_msg=k)


def test_reverse_differs_from_forward_and_flips_to_it():
    """Reversing the input of a reverse model and flipping its output gives
    the forward model with the same weights (all lengths T)."""
    rng = np.random.default_rng(0)
    r = clstm.LSTM(3, 4, 2, reverse=True, dtype=np.float64, seed=1)
    f = clstm.LSTM(3, 4, 2, dtype=np.float64)
    f.load_state_dict(r.state_dict())
    x = rng.standard_normal((5, 2, 3))
    yr, (hr, cr) = r.forward(x, train=False)
    yf, (hf, cf) = f.forward(x[::-1].copy(), train=False)
    np.testing.assert_allclose(yr, yf[::-1], rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(hr, hf, rtol=1e-13, atol=1e-13)
    assert not np.allclose(yr, f.forward(x, train=False)[0])


def test_reverse_settings_are_kept(tmp_path):
    m = clstm.Model(input_size=3, hidden_size=4, num_layers=2, reverse=True, output_size=2,
                    seed=3)
    assert m.reverse and not m.bidirectional and m.num_directions == 1
    assert "reverse=True" in repr(m) and m.config["reverse"] is True
    assert "reverse" not in repr(clstm.LSTM(3, 4))
    path = str(tmp_path / "r.safetensors")
    clstm.save(m, path)
    back = clstm.load(path)
    assert back.reverse and type(back) is clstm.Model
    x = np.random.default_rng(0).standard_normal((5, 2, 3)).astype(np.float32)
    np.testing.assert_array_equal(back.forward(x)[0], m.forward(x)[0])
    with pytest.raises(ValueError, match="reverse"):
        m.metadata["reverse"] = "1"


def test_bad_reverse_arguments_are_named():
    with pytest.raises(ValueError, match="reverse.*bidirectional"):
        clstm.LSTM(3, 4, bidirectional=True, reverse=True)
    with pytest.raises(TypeError, match="reverse"):
        clstm.LSTM(3, 4, reverse="yes")
    with pytest.raises(ValueError, match="reverse LSTM cannot stream"):
        clstm.LSTM(3, 4, reverse=True).initial_state(2)


def test_quantized_reverse_matches_the_int8_reference():
    import q8_reference
    rng = np.random.default_rng(4)
    m = clstm.Model(input_size=6, hidden_size=8, num_layers=2, reverse=True, output_size=3,
                    seed=4)
    q = clstm.quantize(m)
    assert q.reverse
    x = rng.standard_normal((9, 3, 6)).astype(np.float32)
    lens = np.array([9, 4, 1])
    out, _ = q.forward(x, lengths=lens)
    want = q8_reference.forward(q, x=x, lengths=lens)
    d = np.abs(out - want)
    assert d.max() < 5e-3 and (d > 1e-5).mean() <= 0.02, d.max()
    # and the reverse direction matters: a forward reading is far off
    fq = np.asarray(want)[::-1]
    assert np.abs(out[:, 0] - fq[:, 0]).max() > 1e-2


def test_seq2seq_with_a_reverse_encoder_round_trips(tmp_path):
    s = clstm.Seq2Seq(list("abc"), list("xyz"), embedding=4, hidden_size=5, bidirectional=False,
                      reverse=True, seed=2)
    assert s.reverse
    path = str(tmp_path / "s.safetensors")
    clstm.save(s, path)
    back = clstm.load(path)
    assert back.reverse and type(back) is clstm.Seq2Seq
    np.testing.assert_array_equal(back.flat_parameters, s.flat_parameters)
    assert back.translate(["abc", "ca"]) == s.translate(["abc", "ca"])
