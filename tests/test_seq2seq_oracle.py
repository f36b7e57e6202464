"""The PyTorch oracle of the encoder-decoder (tests/seq2seq_torch.py)
keeps the properties clstm's own decoder will be held to: a beam of width
1 is greedy decoding, padding a source changes nothing, and the loss
counts only the valid target steps."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
from seq2seq_torch import EOS, TorchSeq2Seq  # noqa: E402


@pytest.fixture
def model():
    torch.manual_seed(0)
    return TorchSeq2Seq(12, 9, embedding=8, hidden=10, decoder_layers=2)


def sources(rng, lens, extra=0):
    return torch.tensor(rng.integers(1, 12, (max(lens) + extra, len(lens))))


def test_width_one_is_greedy_and_padding_changes_nothing(model):
    rng = np.random.default_rng(0)
    lens = [5, 3, 7, 1]
    src = sources(rng, lens)
    greedy = model.greedy(src, lens, 12)
    assert [r[0][0] for r in model.beam(src, lens, 1, 12)] == greedy
    padded = torch.cat([src, torch.tensor(rng.integers(1, 12, (4, 4)))])
    assert model.greedy(padded, lens, 12) == greedy


def test_beam_ranks_by_normalized_score(model):
    rng = np.random.default_rng(1)
    src = sources(rng, [6])
    best = model.beam(src, [6], 4, 10, alpha=1.0, nbest=4)[0]
    scores = [s for _, s in best]
    assert scores == sorted(scores, reverse=True) and len(best) >= 2
    assert all(EOS not in toks for toks, _ in best)


def test_loss_counts_only_valid_target_steps(model):
    rng = np.random.default_rng(2)
    src = sources(rng, [4, 2])
    tin = torch.tensor(rng.integers(0, 9, (5, 2)))
    tout = torch.tensor(rng.integers(1, 9, (5, 2)))
    loss = model.loss(src, [4, 2], tin, tout, [5, 2])
    tout2 = tout.clone()
    tout2[2:, 1] = 3  # past the second target's length
    assert torch.equal(loss, model.loss(src, [4, 2], tin, tout2, [5, 2]))
    tout2[0, 1] = (int(tout[0, 1]) % 8) + 1  # a counted step
    assert not torch.equal(loss, model.loss(src, [4, 2], tin, tout2, [5, 2]))


def test_the_batched_beam_finds_what_the_per_source_beam_finds(model):
    rng = np.random.default_rng(3)
    with torch.no_grad():
        model.out.weight.mul_(4)
        model.out.bias[EOS] += 0.5
    lens = [6, 2, 5, 1, 7, 3]
    src = sources(rng, lens)
    for width, alpha in ((1, 1.0), (3, 1.0), (5, 0.5)):
        want = [r[0][0] for r in model.beam(src, lens, width, 9, alpha)]
        assert model.beam_batched(src, lens, width, 9, alpha) == want
