"""Sequence-to-sequence data (clstm.pairs): reading source<TAB>target
files, vocabularies with <unk>, teacher forcing's padded batches, and the
error rates."""
import os

import numpy as np
import pytest

from clstm import pairs as P
from clstm.data import DataError


def write(tmp_path, text, name="p.tsv", mode="w"):
    path = str(tmp_path / name)
    with open(path, mode) as f:
        f.write(text)
    return path


def test_read_pairs_splits_characters_and_spaces(tmp_path):
    path = write(tmp_path, "'course\tK AO R S\n\nab\tAH  B\r\nab\tEY B IY\n")
    p = P.read_pairs(path, "char", "space")
    assert len(p) == 3  # the blank line is skipped; both pronunciations kept
    assert p.sources[0] == ["'", "c", "o", "u", "r", "s", "e"]
    assert p.targets[0] == ["K", "AO", "R", "S"]
    assert p.targets[1] == ["AH", "B"]  # a run of spaces is one separator; CRLF ends a line
    assert p.where[2] == "p.tsv:4"
    chars = P.read_pairs(path)  # char on both sides: the spaces are tokens
    assert chars.targets[0] == list("K AO R S")


@pytest.mark.parametrize("text, needle", [
    ("abc\n", "p.tsv:1: expected source<TAB>target, got no tab"),
    ("a\tb\tc\n", "p.tsv:1: expected source<TAB>target, got 2 tabs"),
    ("ok\tOK\n\tX\n", "p.tsv:2: empty source"),
    ("ok\tOK\nx\t  \n", "p.tsv:2: empty target"),
    ("\n\n", "no pairs"),
])
def test_bad_pairs_name_the_line(tmp_path, text, needle):
    path = write(tmp_path, text)
    with pytest.raises(DataError) as e:
        P.read_pairs(path)
    assert needle in str(e.value).replace(str(tmp_path) + os.sep, "")


def test_bad_files_and_settings(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        P.read_pairs(str(tmp_path / "none.tsv"))
    with pytest.raises(DataError, match="empty"):
        P.read_pairs(write(tmp_path, ""))
    with pytest.raises(DataError, match=":2: not UTF-8"):
        P.read_pairs(write(tmp_path, b"a\tb\n\xff\tc\n", "bad.tsv", "wb"))
    with pytest.raises(ValueError, match="target_tokens"):
        P.read_pairs(write(tmp_path, "a\tb\n"), target_tokens="word")
    with pytest.raises(DataError, match="reserved token <s>"):
        P.Pairs([["a"]], [["<s>"]]).vocabularies()


def test_vocabularies_put_specials_first_and_map_unknowns():
    p = P.Pairs([list("ba"), list("ca")], [["B", "AH"], ["K", "AH"]])
    sv, tv = p.vocabularies()
    assert sv.tokens == ["<unk>", "a", "b", "c"]
    assert tv.tokens == ["<s>", "</s>", "<unk>", "AH", "B", "K"]
    assert (tv.index["<s>"], tv.index["</s>"], tv.index["<unk>"]) == (P.BOS, P.EOS, P.UNK)
    ids, unknown = sv.encode(list("abz"))
    assert ids.tolist() == [1, 2, 0] and unknown == 1
    assert tv.decode([P.BOS, 4, P.UNK, 3, P.EOS]) == ["B", "<unk>", "AH"]


def test_batch_is_teacher_forcing_time_first_and_padded():
    p = P.Pairs([list("ab"), list("abca")], [["X"], ["Y", "X", "Y"]])
    sv, tv = p.vocabularies()  # a b c -> 1 2 3; X Y -> 3 4
    src, src_lens, tgt_in, tgt_out, tgt_lens, unknown = p.batch([1, 0], sv, tv)
    np.testing.assert_array_equal(src, [[1, 1], [2, 2], [3, 0], [1, 0]])
    assert src.dtype == np.int32 and src_lens.tolist() == [4, 2]
    np.testing.assert_array_equal(tgt_in, [[0, 0], [4, 3], [3, 0], [4, 0]])
    np.testing.assert_array_equal(tgt_out, [[4, 3], [3, 1], [4, 0], [1, 0]])
    assert tgt_lens.tolist() == [4, 2] and unknown == 0
    q = P.Pairs([list("az")], [["Q"]])
    assert q.batch([0], sv, tv)[-1] == 2  # z and Q became <unk>


def test_split_keeps_pairs_together():
    p = P.Pairs([[str(i)] for i in range(20)], [[str(i)] for i in range(20)])
    train, val = p.split(0.25, np.random.default_rng(0))
    assert len(train) == 15 and len(val) == 5
    assert all(s == t for s, t in zip(train.sources + val.sources, train.targets + val.targets))
    assert sorted(int(s[0]) for s in train.sources + val.sources) == list(range(20))


def test_error_rates():
    ref = [["K", "AO", "R", "S"], ["AH", "M"]]
    assert P.token_error_rate(ref, ref) == 0 and P.sequence_error_rate(ref, ref) == 0
    pred = [["K", "AO", "S"], ["AH", "M", "Z"]]  # a deletion, an insertion
    assert P.token_error_rate(pred, ref) == pytest.approx(2 / 6)
    assert P.sequence_error_rate(pred, ref) == 1.0
    assert P.sequence_error_rate([ref[0], []], ref) == 0.5
    with pytest.raises(ValueError, match="predictions: expected 2"):
        P.token_error_rate([ref[0]], ref)


def test_tokenize_round_trips():
    for how, text in (("char", "a b'c"), ("space", "K AO R S")):
        assert P.detokenize(P.tokenize(text, how), how) == text
    with pytest.raises(ValueError, match="tokens"):
        P.tokenize("x", "bpe")


G2P = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "g2p", "dev.tsv")


@pytest.mark.skipif(not os.path.exists(G2P), reason="../shared/data/g2p is absent")
def test_reads_the_g2p_split():
    p = P.read_pairs(G2P, "char", "space")
    assert len(p) == 5691  # lines (pronunciations), as its README says
    sv, tv = p.vocabularies()
    assert len(tv) - len(P.TARGET_SPECIALS) <= 39  # the stressless phonemes
    assert set(sv.tokens[1:]) <= set("abcdefghijklmnopqrstuvwxyz'")
