"""CTC (clstm.losses.ctc, clstm.decode; computed in C) against independent
references: every alignment enumerated in float64 NumPy (loss, labelling
probabilities, best labellings), float64 finite differences, and
torch.nn.functional.ctc_loss (loss and gradient, float32 and float64)."""
import itertools

import numpy as np
import pytest

import clstm
from clstm import decode, losses


def log_softmax(z):
    z = np.asarray(z, np.float64)
    m = z.max(axis=-1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=-1, keepdims=True))


def collapse(path, blank):
    out, prev = [], None
    for k in path:
        if k != prev and k != blank:
            out.append(int(k))
        prev = k
    return tuple(out)


def labelling_probs(z, blank):
    """{labelling: p(labelling | z)} for one (T, C) sequence, every one of
    the C^T paths summed in float64."""
    lp = log_softmax(z)
    T, C = lp.shape
    probs = {}
    for path in itertools.product(range(C), repeat=T):
        p = np.exp(sum(lp[t, k] for t, k in enumerate(path)))
        lab = collapse(path, blank)
        probs[lab] = probs.get(lab, 0.0) + p
    return probs


def random_case(rng, T, B, C, blank, max_len=None):
    z = 2 * rng.standard_normal((T, B, C))
    labels = [k for k in range(C) if k != blank]
    il = rng.integers(0, T + 1, B)
    tg = []
    for b in range(B):
        n = rng.integers(0, (max_len if max_len is not None else T) + 1)
        # repeated labels on purpose: draw from a small pool
        tg.append(list(rng.choice(labels[:2], n)) if n else [])
    return z, tg, il


# ------------------------------------------------------------ the loss

@pytest.mark.parametrize("blank", [0, 2])
@pytest.mark.parametrize("seed", range(6))
def test_loss_equals_the_sum_over_every_alignment(seed, blank):
    rng = np.random.default_rng(seed)
    T, B, C = 5, 4, 3
    z, tg, il = random_case(rng, T, B, C, blank, max_len=4)
    got, _ = losses.ctc(z, tg, il, blank=blank, reduction="none")
    for b in range(B):
        probs = labelling_probs(z[:il[b], b], blank) if il[b] else {(): 1.0}
        p = probs.get(tuple(tg[b]), 0.0)
        want = -np.log(p) if p > 0 else np.inf
        np.testing.assert_allclose(got[b], want, rtol=1e-12, err_msg="b=%d" % b)


def test_reductions_follow_pytorchs_definitions():
    rng = np.random.default_rng(1)
    z, tg, il = random_case(rng, 8, 5, 4, 0, max_len=3)
    il[:] = 8
    each, _ = losses.ctc(z, tg, il, reduction="none")
    total, _ = losses.ctc(z, tg, il, reduction="sum")
    mean, _ = losses.ctc(z, tg, il, reduction="mean")
    lens = np.array([max(1, len(t)) for t in tg])
    assert np.isclose(total, each.sum(), rtol=1e-14)
    assert np.isclose(mean, (each / lens).mean(), rtol=1e-14)


def test_gradient_matches_finite_differences():
    rng = np.random.default_rng(2)
    T, B, C = 7, 3, 5
    z = rng.standard_normal((T, B, C))
    tg = [[1, 1, 2], [4], []]
    il = np.array([7, 5, 3])
    for red in ("mean", "sum", "none"):
        def f(x):
            v, _ = losses.ctc(x, tg, il, reduction=red, grad=False)
            return float(np.sum(v))
        _, g = losses.ctc(z, tg, il, reduction=red)
        num = np.zeros_like(z)
        eps = 1e-6
        for i in np.ndindex(z.shape):
            zp, zm = z.copy(), z.copy()
            zp[i] += eps
            zm[i] -= eps
            num[i] = (f(zp) - f(zm)) / (2 * eps)
        np.testing.assert_allclose(g, num, rtol=1e-6, atol=1e-8, err_msg=red)
        assert not g[il[2]:, 2].any() and not g[il[1]:, 1].any()  # past a length: 0


def test_impossible_alignments_are_inf_or_zero():
    z = np.zeros((3, 2, 3))
    tg = [[1, 1, 2], [1, 2]]  # 1 1 2 needs 4 steps (a blank between the 1s)
    each, g = losses.ctc(z, tg, reduction="none")
    assert each[0] == np.inf and np.isfinite(each[1])
    assert np.isnan(g[:, 0]).all() and np.isfinite(g[:, 1]).all()
    each, g = losses.ctc(z, tg, reduction="none", zero_infinity=True)
    assert each[0] == 0 and not g[:, 0].any() and np.isfinite(g).all()
    mean, _ = losses.ctc(z, tg, zero_infinity=True)
    assert np.isclose(mean, each[1] / 2 / 2)


def test_targets_as_long_as_the_input_allows():
    rng = np.random.default_rng(3)
    z = rng.standard_normal((5, 1, 3))
    for tg, possible in (([1, 1, 1], True), ([1, 2, 1, 2, 1], True), ([1, 1, 1, 1], False)):
        v, _ = losses.ctc(z, [tg], reduction="sum")
        assert np.isfinite(v) == possible, tg


def test_target_forms_and_layouts_agree():
    rng = np.random.default_rng(4)
    z = rng.standard_normal((6, 3, 4)).astype(np.float32)
    seqs = [[1, 2], [3], [2, 2, 1]]
    lens = np.array([2, 1, 3])
    pad = np.array([[1, 2, 0], [3, 0, 0], [2, 2, 1]])
    cat = np.array([1, 2, 3, 2, 2, 1])
    a = losses.ctc(z, seqs, reduction="none")
    for other in (losses.ctc(z, pad, None, lens, reduction="none"),
                  losses.ctc(z, cat, None, lens, reduction="none"),
                  losses.ctc(z.swapaxes(0, 1), seqs, reduction="none", batch_first=True)):
        np.testing.assert_array_equal(a[0], other[0])
    np.testing.assert_array_equal(a[1], losses.ctc(z, pad, None, lens, reduction="none")[1])
    bf = losses.ctc(z.swapaxes(0, 1), seqs, reduction="none", batch_first=True)[1]
    np.testing.assert_array_equal(a[1], bf.swapaxes(0, 1))
    one, g1 = losses.ctc(z[:, 1], [3], reduction="none")
    assert isinstance(one, float) and one == a[0][1]
    np.testing.assert_array_equal(g1, a[1][:, 1])


def test_results_do_not_depend_on_the_thread_count():
    rng = np.random.default_rng(5)
    z, tg, il = random_case(rng, 60, 48, 12, 0, max_len=20)
    old = clstm.get_num_threads()
    try:
        clstm.set_num_threads(1)
        one = losses.ctc(z, tg, il, reduction="none")
        beams1 = decode.beam_search(z, il, width=4, nbest=2)
        clstm.set_num_threads(2)
        two = losses.ctc(z, tg, il, reduction="none")
        beams2 = decode.beam_search(z, il, width=4, nbest=2)
    finally:
        clstm.set_num_threads(old)
    np.testing.assert_array_equal(one[0], two[0])
    np.testing.assert_array_equal(one[1], two[1])
    assert beams1 == beams2


def test_nan_logits_give_nan():
    z = np.zeros((4, 1, 3))
    z[2, 0, 1] = np.nan
    v, g = losses.ctc(z, [[1]], reduction="sum")
    assert np.isnan(v) and np.isnan(g[:3]).any()


# -------------------------------------------------------- against PyTorch

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("blank", [0, 5])
@pytest.mark.parametrize("seed", range(4))
def test_loss_and_gradient_match_pytorch(seed, blank, dtype):
    rng = np.random.default_rng(10 + seed)
    T, B, C = 20, 6, 6
    z, tg, il = random_case(rng, T, B, C, blank, max_len=12)
    tg[0], il[0] = [], T                              # empty target
    labels = [k for k in range(C) if k != blank]
    tg[1], il[1] = [labels[0]] * 10, 19               # as long as possible: 10 + 9 blanks
    tg[2], il[2] = [labels[1]] * 10, 18               # one step too short
    z = z.astype(dtype)
    tl = torch.tensor([len(t) for t in tg])
    flat = torch.tensor(sum(tg, []), dtype=torch.long)
    for red in ("mean", "sum", "none"):
        for zi in (False, True):
            got, g = losses.ctc(z, tg, il, blank=blank, reduction=red, zero_infinity=zi)
            zt = torch.tensor(z, requires_grad=True)
            want = torch.nn.functional.ctc_loss(zt.log_softmax(2), flat, torch.tensor(il), tl,
                                                blank=blank, reduction=red, zero_infinity=zi)
            want.sum().backward()
            w, wg = want.detach().numpy(), zt.grad.numpy()
            tol = dict(rtol=1e-12, atol=1e-12) if dtype == np.float64 else dict(rtol=2e-5,
                                                                                  atol=2e-6)
            np.testing.assert_allclose(np.asarray(got), w, **tol, err_msg="%s %s" % (red, zi))
            np.testing.assert_allclose(g, wg, **tol, err_msg="grad %s %s" % (red, zi))
            assert g.dtype == dtype


# -------------------------------------------------------------- decoding

def test_greedy_is_the_best_path_collapsed():
    rng = np.random.default_rng(6)
    z = rng.standard_normal((30, 5, 4))
    il = np.array([30, 0, 7, 15, 1])
    for blank in (0, 3):
        got = decode.greedy(z, il, blank=blank)
        for b in range(5):
            assert got[b] == list(collapse(z[:il[b], b].argmax(axis=1), blank))


def test_beam_search_finds_what_the_best_path_misses():
    # two steps of p(blank) = .6, p(a) = .4: the best path is blank blank
    # (""; .36), but "a" has .64 over three paths
    z = np.log(np.array([[.6, .4], [.6, .4]]))
    assert decode.greedy(z) == []
    (best, lp), (second, lp2) = decode.beam_search(z, width=4, nbest=2)
    assert best == [1] and np.isclose(lp, np.log(.64))
    assert second == [] and np.isclose(lp2, np.log(.36))


@pytest.mark.parametrize("seed", range(5))
def test_wide_beam_equals_every_alignment_enumerated(seed):
    rng = np.random.default_rng(20 + seed)
    T, C, blank = 5, 3, 1
    z = 1.5 * rng.standard_normal((T, C))
    probs = labelling_probs(z, blank)
    ranked = sorted(probs.items(), key=lambda kv: -kv[1])
    got = decode.beam_search(z, width=64, nbest=5, blank=blank)
    for (lab, lp), (want, p) in zip(got, ranked[:5]):
        assert tuple(lab) == want
        np.testing.assert_allclose(lp, np.log(p), rtol=1e-12)
    assert len(got) == 5


def test_beam_search_short_input_and_lengths():
    z = np.random.default_rng(7).standard_normal((4, 2, 3))
    out = decode.beam_search(z, [0, 1], width=5, nbest=5)
    assert out[0] == [([], 0.0)]                      # nothing emitted: certain
    assert len(out[1]) == 3                           # "", "1", "2" after one step
    assert sorted(tuple(lab) for lab, _ in out[1]) == [(), (1,), (2,)]
    np.testing.assert_allclose(sum(np.exp(lp) for _, lp in out[1]), 1.0, rtol=1e-12)


# ------------------------------------------------------------- bad input

@pytest.mark.parametrize("call, match", [
    (lambda z: losses.ctc(z, [[1], [2]], blank=3), "blank"),
    (lambda z: losses.ctc(z, [[0], [2]]), "targets"),            # the blank
    (lambda z: losses.ctc(z, [[1], [3]]), "targets"),            # past C
    (lambda z: losses.ctc(z, [[1]]), "targets"),                 # B sequences
    (lambda z: losses.ctc(z, [[1], [2]], [5, 1]), "input_lengths"),
    (lambda z: losses.ctc(z, np.array([[1, 2], [2, 1]]), None, [3, 1]), "target_lengths"),
    (lambda z: losses.ctc(z, np.array([1, 2]), None, [1, 2]), "target_lengths"),
    (lambda z: losses.ctc(z, np.array([1, 2])), "target_lengths"),
    (lambda z: losses.ctc(z, [[1], [2]], reduction="avg"), "reduction"),
    (lambda z: losses.ctc(z.astype(int), [[1], [2]]), "logits"),
    (lambda z: losses.ctc(z[:, :, :, None], [[1], [2]]), "logits"),
    (lambda z: losses.ctc(z, [[1.5], [2]]), "targets"),
    (lambda z: decode.greedy(z, blank=-1), "blank"),
    (lambda z: decode.beam_search(z, width=0), "width"),
    (lambda z: decode.beam_search(z, width=2, nbest=3), "nbest"),
    (lambda z: decode.beam_search(z, [1, 2, 3]), "input_lengths"),
])
def test_bad_arguments_are_named(call, match):
    z = np.zeros((4, 2, 3))
    with pytest.raises((ValueError, TypeError), match=match):
        call(z)


# ------------------------------------------------------ shallow fusion

def lm_logprob(lm, text, start="\n"):
    """sum over text of log p_LM(char | the chars before, after start), the
    model stepped in Python; a character the model lacks scores as the
    least likely token there and does not advance the model."""
    vocab = lm.vocab
    logits, state = lm.forward(np.array([vocab.index(start)]), None, train=False)
    total = 0.0
    for ch in text:
        lp = log_softmax(logits[-1])
        if ch not in vocab:
            total += lp.min()
            continue
        total += lp[vocab.index(ch)]
        logits, state = lm.forward(np.array([vocab.index(ch)]), state, train=False)
    return total


@pytest.mark.parametrize("seed", range(3))
def test_fused_beam_equals_every_labelling_scored(seed):
    rng = np.random.default_rng(40 + seed)
    T, alphabet = 5, "abc"                     # classes: blank, a, b, c
    z = 1.5 * rng.standard_normal((T, 4))
    lm = clstm.Model(hidden_size=6, vocab="\nabx", output_size=4, softmax=True,
                     seed=seed, dtype=np.float64)   # no "c": it scores as the least likely
    weight, bonus = 0.7, 0.3
    fused = {lab: np.log(p) + weight * lm_logprob(lm, "".join(alphabet[k - 1] for k in lab))
             + bonus * len(lab) for lab, p in labelling_probs(z, 0).items()}
    ranked = sorted(fused.items(), key=lambda kv: -kv[1])
    got = decode.beam_search(z, width=400, nbest=5, lm=lm, alphabet=alphabet,
                             lm_weight=weight, lm_bonus=bonus)
    for (lab, score), (want, s) in zip(got, ranked):
        assert tuple(lab) == want
        np.testing.assert_allclose(score, s, rtol=1e-10)


def test_fusion_with_weight_zero_is_the_plain_search():
    rng = np.random.default_rng(7)
    z = rng.standard_normal((30, 3, 6))
    lm = clstm.Model(hidden_size=8, vocab="\nabcde", output_size=6, softmax=True, seed=1)
    plain = decode.beam_search(z, width=6, nbest=3)
    fused = decode.beam_search(z, width=6, nbest=3, lm=lm, alphabet="abcde", lm_weight=0.0,
                               lm_bonus=0.0)
    assert [[lab for lab, _ in r] for r in plain] == [[lab for lab, _ in r] for r in fused]
    np.testing.assert_allclose([[s for _, s in r] for r in plain],
                               [[s for _, s in r] for r in fused], rtol=1e-12)


def test_fusion_refuses_bad_arguments():
    z = np.zeros((4, 1, 3))
    lm = clstm.Model(hidden_size=4, vocab="\nab", output_size=3, softmax=True, seed=0)
    bare = clstm.Model(3, 4, 1, output_size=3, seed=0)
    with pytest.raises(ValueError, match="alphabet"):
        decode.beam_search(z, lm=lm)
    with pytest.raises(ValueError, match="alphabet"):
        decode.beam_search(z, lm=lm, alphabet="abc")
    with pytest.raises(ValueError, match="lm"):
        decode.beam_search(z, lm=bare, alphabet="ab")
    with pytest.raises(ValueError, match="lm_weight"):
        decode.beam_search(z, lm=lm, alphabet="ab", lm_weight=float("nan"))
