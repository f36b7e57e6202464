"""clstm.Seq2Seq, TranslationTask and the commands around them (issue 18):
the Python class against the PyTorch oracle, masking, files, bad
arguments, training that learns, exact resume, `clstm train --pairs`,
`clstm translate`, `clstm evaluate --pairs`, and examples/translate.c
against `clstm translate`."""
import contextlib
import pathlib
import subprocess

import numpy as np
import pytest

import clstm
from clstm import cli, losses, pairs
from clstm.tasks import TranslationTask, edit_distance
from clstm.trainer import Trainer

ROOT = pathlib.Path(__file__).resolve().parents[1]
TRANSLATE = ROOT / "build" / "examples" / "translate"


def vocabularies(source="abcdef", target="ABCDEF"):
    return (pairs.Vocabulary(list(source), pairs.SOURCE_SPECIALS),
            pairs.Vocabulary(list(target), pairs.TARGET_SPECIALS))


def small(dtype=np.float64, **kwargs):
    sv, tv = vocabularies()
    settings = dict(embedding=5, hidden_size=6, decoder_hidden=7, attentional_size=4,
                    dtype=dtype, seed=3)
    settings.update(kwargs)
    return clstm.Seq2Seq(sv, tv, **settings)


def sharpened(model, scale=6.0, eos_bias=0.4):
    """Weights whose distributions are sharp enough that searches of
    different widths disagree and some end early."""
    p = model.named_parameters()
    p["decoder.out.weight"][...] *= scale
    p["decoder.out.bias"][1] += eos_bias
    return model


def test_the_class_is_the_pytorch_oracle():
    torch = pytest.importorskip("torch")
    from seq2seq_torch import TorchSeq2Seq, torch_name
    m = small(num_layers=2, decoder_layers=2)
    oracle = TorchSeq2Seq(m.vocab_size, m.target_vocab, embedding=5, hidden=6, layers=2,
                          decoder_hidden=7, decoder_layers=2, attention="general",
                          attentional=4, dtype=torch.float64)
    params = dict(oracle.named_parameters())
    m.load_state_dict({name: params[torch_name(name)].detach().numpy()
                       for name in m.named_parameters().keys()})
    sharpened(m)
    with torch.no_grad():
        oracle.out.weight.copy_(torch.as_tensor(m.named_parameters()["decoder.out.weight"]))
        oracle.out.bias.copy_(torch.as_tensor(m.named_parameters()["decoder.out.bias"]))
    rng = np.random.default_rng(0)
    Ts, Tt, B = 5, 4, 3
    src = rng.integers(0, m.vocab_size, (Ts, B))
    tgt_in = rng.integers(0, m.target_vocab, (Tt, B))
    tgt_out = rng.integers(1, m.target_vocab, (Tt, B))
    sl, tl = np.array([5, 2, 1]), np.array([4, 1, 3])  # the oracle needs lengths >= 1
    T = torch.as_tensor
    loss_t = oracle.loss(T(src), sl, T(tgt_in), T(tgt_out), tl)
    loss_t.backward()
    logits = m.forward(src, tgt_in, src_lengths=sl, tgt_lengths=tl)
    loss, dz = losses.cross_entropy(logits, tgt_out, tl)
    assert loss == pytest.approx(float(loss_t.detach()), rel=1e-10)
    m.zero_grad()
    m.backward(dz)
    grads = m.named_grads()
    for name, g in grads.items():
        np.testing.assert_allclose(g, params[torch_name(name)].grad.numpy(), rtol=1e-8,
                                   atol=1e-12, err_msg=name)
    tokens, lengths, scores = m.beam_search(src, sl, width=3, max_len=6, nbest=2)
    want = oracle.beam(T(src), sl, 3, 6, 1.0, 2)
    for b in range(B):
        assert [tokens[b, k, :lengths[b, k]].tolist() for k in range(2)] == [t for t, _ in want[b]]
        np.testing.assert_allclose(scores[b], [s for _, s in want[b]], rtol=1e-9)


def test_padding_never_changes_a_result():
    m = sharpened(small())
    rng = np.random.default_rng(1)
    Ts, Tt, B = 6, 5, 4
    sl, tl = np.array([6, 3, 1, 0]), np.array([5, 2, 1, 3])
    src = rng.integers(0, m.vocab_size, (Ts, B))
    tgt = rng.integers(0, m.target_vocab, (Tt, B))
    z = m.forward(src, tgt, src_lengths=sl, tgt_lengths=tl, train=False)
    src2, tgt2 = src.copy(), tgt.copy()
    src2[np.arange(Ts)[:, None] >= sl] = rng.integers(0, m.vocab_size, ((np.arange(Ts)[:, None] >= sl).sum()))
    tgt2[np.arange(Tt)[:, None] >= tl] = -7  # never read
    wide = np.concatenate([src2, rng.integers(0, m.vocab_size, (3, B))])  # longer padding
    z2 = m.forward(wide, tgt2, src_lengths=sl, tgt_lengths=tl, train=False)
    np.testing.assert_array_equal(z, z2)
    assert not z[np.arange(Tt)[:, None] >= tl].any()
    # each row alone, without the others' padding: the same logits and the same search
    full = m.beam_search(src, sl, width=3, max_len=7)
    for b in range(B):
        n, k = max(int(sl[b]), 1), int(tl[b])
        zb = m.forward(src[:n, b:b + 1], tgt[:max(k, 1), b:b + 1], src_lengths=sl[b:b + 1],
                       tgt_lengths=tl[b:b + 1], train=False)
        np.testing.assert_allclose(zb[:k, 0], z[:k, b], rtol=1e-12, atol=1e-14)
        alone = m.beam_search(src[:n, b:b + 1], sl[b:b + 1], width=3, max_len=7)
        assert alone[0][0].tolist() == full[0][b].tolist()
        np.testing.assert_allclose(alone[2][0], full[2][b], rtol=1e-12)


def test_width_one_is_greedy_and_translate_reads_text():
    m = sharpened(small(target_split="space"))
    src, lens, unknown = m.encode_sources(["abc", "fed", "a", "xyz", ""])
    assert unknown == 3 and lens.tolist() == [3, 3, 1, 3, 0]
    assert src[:, 3].tolist() == [0, 0, 0]  # <unk> is source id 0
    tokens, lengths = m.greedy(src, lens, max_len=9)
    beam = m.beam_search(src, lens, width=1, max_len=9)
    assert tokens.tolist() == beam[0][:, 0].tolist()
    text = m.translate(["abc", "fed", "a", "xyz", ""], beam=1, max_len=9)
    tv = m.target_vocabulary
    assert text == [" ".join(tv.decode(tokens[b, :lengths[b]].tolist())) for b in range(5)]
    nbest = m.translate(["abc"], beam=4, nbest=3)
    assert len(nbest[0]) == 3 and [s for _, s in nbest[0]] == sorted(
        [s for _, s in nbest[0]], reverse=True)


def test_files_keep_the_vocabularies_and_splits(tmp_path):
    m = sharpened(small(dtype=np.float32, source_split="space", num_layers=2, dropout=0.25,
                        attention="dot", decoder_hidden=12, attentional_size=5))
    path = tmp_path / "s2s.safetensors"
    clstm.save(m, path)
    back = clstm.load(path)
    assert isinstance(back, clstm.Seq2Seq) and repr(back) == repr(m)
    assert back.source_split == "space" and back.target_split == "char"
    assert back.source_vocabulary.tokens == m.source_vocabulary.tokens
    assert back.target_vocabulary.tokens == m.target_vocabulary.tokens
    np.testing.assert_array_equal(back.flat_parameters, m.flat_parameters)
    assert back.translate(["a b c", "f"]) == m.translate(["a b c", "f"])
    assert clstm.load_bytes(clstm.save_bytes(m)).translate(["d e"]) == m.translate(["d e"])


def test_a_file_whose_token_lists_do_not_fit_is_refused(tmp_path):
    m = small()
    m.metadata["target_tokens"] = "<s>\n</s>\n<unk>\nA"  # 4 tokens for 9 ids
    path = tmp_path / "bad.safetensors"
    clstm.save(m, path)
    with pytest.raises(ValueError, match="target_tokens"):
        clstm.load(path)


@pytest.mark.parametrize("call, error, needle", [
    (lambda m: m.forward(np.zeros((2, 3), np.float32), np.zeros((2, 3), int)), TypeError, "src"),
    (lambda m: m.forward(np.zeros((2, 3), int), np.zeros((2, 4), int)), ValueError,
     r"tgt_in: expected shape \(Tt, 3\)"),
    (lambda m: m.forward(np.full((2, 1), 7), np.zeros((2, 1), int)), ValueError,
     r"src: expected token ids in \[0, 7\)"),
    (lambda m: m.forward(np.zeros((2, 1), int), np.full((2, 1), 9)), ValueError,
     r"tgt_in: expected token ids in \[0, 9\)"),
    (lambda m: m.forward(np.zeros((2, 1), int), np.zeros((2, 1), int), src_lengths=[3]),
     ValueError, "src_lengths"),
    (lambda m: m.forward(np.zeros(4, int), np.zeros((2, 1), int)), ValueError,
     r"src: expected shape \(T, B\)"),
    (lambda m: m.backward(np.zeros((2, 1, 9))), ValueError, "needs a preceding forward"),
    (lambda m: m.beam_search(np.zeros((2, 1), int), width=0), ValueError, "width"),
    (lambda m: m.beam_search(np.zeros((2, 1), int), width=2, nbest=3), ValueError, "nbest"),
    (lambda m: m.beam_search(np.zeros((2, 1), int), alpha=float("nan")), ValueError, "alpha"),
    (lambda m: m.beam_search(np.zeros((2, 1), int), max_len=0), ValueError, "max_len"),
    (lambda m: m.translate("abc"), TypeError, "sources"),
    (lambda m: m.step(None, None), NotImplementedError, "encoder-decoder"),
    (lambda m: clstm.Seq2Seq(5, 3), ValueError, "target_vocab: expected at least 4"),
    (lambda m: clstm.Seq2Seq(5, 5, embedding=0), ValueError, "embedding"),
    (lambda m: clstm.Seq2Seq(5, 5, proj_size="x"), TypeError, "proj_size"),
    (lambda m: clstm.Seq2Seq(["a\0"], 5), ValueError, "U\\+0000"),
    (lambda m: clstm.Seq2Seq(5, 5, decoder_hidden=2**40), ValueError, "decoder_hidden=1099511627776"),
    (lambda m: m.beam_search(np.zeros((2, 1), int), alpha="x"), TypeError, "alpha"),
    (lambda m: m.translate(["ab"], batch_size=0), ValueError, "batch_size"),
    (lambda m: TranslationTask(reversal(3, np.random.default_rng(0)), source_vocab=None,
                               target_vocab=None, label_smoothing=2), ValueError, "label_smoothing"),
    (lambda m: clstm.Seq2Seq.from_torch({}), NotImplementedError, "from_torch"),
    (lambda m: m.to_keras(), NotImplementedError, "to_keras"),
    (lambda m: m.keras_model(), NotImplementedError, "keras_model"),
    (lambda m: clstm.Seq2Seq(5, 5, attention="bahdanau"), ValueError, "attention"),
    (lambda m: clstm.Seq2Seq(5, 5, attention="dot", decoder_hidden=3), ValueError,
     "decoder_hidden"),
    (lambda m: clstm.Seq2Seq(5, 5, source_split="word"), ValueError, "source_split"),
    (lambda m: clstm.Seq2Seq(["a", "a"], 5), ValueError, "distinct"),
    (lambda m: clstm.Seq2Seq(["a\nb"], 5), ValueError, "line break"),
])
def test_bad_arguments_are_named(call, error, needle):
    with pytest.raises(error, match=needle):
        call(small())


def test_backward_checks_its_gradient_shape():
    m = small()
    m.forward(np.zeros((2, 1), int), np.zeros((3, 1), int))
    with pytest.raises(ValueError, match=r"dlogits: expected shape \(3, 1, 9\)"):
        m.backward(np.zeros((2, 1, 9)))
    m.backward(np.zeros((3, 1, 9)))  # the forward is still pending after a refusal
    with pytest.raises(ValueError, match="preceding forward"):
        m.backward(np.zeros((3, 1, 9)))


# ------------------------------------------------------------- training

def reversal(n, rng, letters="abcdef"):
    """Pairs that reverse a word and upper-case it: a task attention learns."""
    src, tgt = [], []
    for _ in range(n):
        w = list(rng.choice(list(letters), rng.integers(1, 6)))
        src.append(w)
        tgt.append([c.upper() for c in reversed(w)])
    return pairs.Pairs(src, tgt)


def test_training_learns_to_reverse_words():
    rng = np.random.default_rng(0)
    train, val = reversal(2000, rng), reversal(200, rng)
    sv, tv = train.vocabularies()
    m = clstm.Seq2Seq(sv, tv, embedding=16, hidden_size=32, seed=0)
    task = TranslationTask(train, val, 32, source_vocab=sv, target_vocab=tv)
    before = task.evaluate(m)
    Trainer(m, task, lr=5e-3, epochs=8, schedule="cosine", progress=False).fit()
    after = task.evaluate(m)
    assert before["val_ser"] > 0.95
    assert after["val_ser"] < 0.1 and after["val_ter"] < 0.03, after


def test_label_smoothing_is_the_training_loss_only():
    rng = np.random.default_rng(5)
    data = reversal(40, rng)
    sv, tv = data.vocabularies()
    m = clstm.Seq2Seq(sv, tv, embedding=4, hidden_size=5, seed=0)
    plain = TranslationTask(data, data, 8, source_vocab=sv, target_vocab=tv)
    smooth = TranslationTask(data, data, 8, source_vocab=sv, target_vocab=tv,
                             label_smoothing=0.2)
    src, targets, sl = smooth.batch(0, np.arange(40))
    z = smooth.forward(m, src, targets, sl, 0)
    loss, dz = smooth.loss(z, targets, sl)
    want, dwant = losses.cross_entropy(z, targets[1], targets[2], label_smoothing=0.2)
    assert loss == want and np.array_equal(dz, dwant)
    assert loss != plain.loss(z, targets, sl)[0]
    assert smooth.evaluate(m) == plain.evaluate(m)


def test_error_rates_score_a_source_against_its_closest_reference():
    m = sharpened(small())
    data = pairs.Pairs([list("ab"), list("ab"), list("c")], [list("AB"), list("B"), list("C")])
    task = TranslationTask(data, None, 4, source_vocab=m.source_vocabulary,
                           target_vocab=m.target_vocabulary)
    pred = task.predict(m, [list("ab"), list("c")])
    d_ab = min((edit_distance(pred[0], r), -len(r)) for r in (list("AB"), list("B")))
    d_c = edit_distance(pred[1], list("C"))
    ter, ser, n = task.error_rates(m, data)
    assert n == 2
    assert ter == pytest.approx((d_ab[0] + d_c) / (-d_ab[1] + 1))
    assert ser == ((d_ab[0] > 0) + (d_c > 0)) / 2


def test_batches_are_a_permutation_of_similar_lengths():
    rng = np.random.default_rng(2)
    data = reversal(1000, rng)
    sv, tv = data.vocabularies()
    task = TranslationTask(data, None, 16, source_vocab=sv, target_vocab=tv)
    order = task.epoch_order(np.random.default_rng(0))
    assert sorted(order.tolist()) == list(range(1000))
    spans = []
    for k in range(task.n_batches):
        src, (tgt_in, tgt_out, tl), sl = task.batch(k, order)
        idx = order[k * 16:(k + 1) * 16]
        assert sl.tolist() == [len(data.sources[i]) for i in idx]
        assert tl.tolist() == [len(data.targets[i]) + 1 for i in idx]
        spans.append(int(sl.max() - sl.min()))
    assert np.mean(spans) < 1.5  # lengths 1..5 mixed at random would span about 4


def test_a_split_keeps_each_sources_pairs_together():
    data = pairs.Pairs([list("ab"), list("ab"), list("c"), list("d"), list("ab")],
                       [list("X"), list("Y"), list("Z"), list("W"), list("V")])
    for seed in range(8):
        train, val = data.split(0.34, np.random.default_rng(seed))
        assert len(train) + len(val) == 5
        assert not {tuple(s) for s in train.sources} & {tuple(s) for s in val.sources}


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(tmp_path):
    rng = np.random.default_rng(3)
    train, val = reversal(300, rng), reversal(40, rng)
    sv, tv = train.vocabularies()

    def run(steps, resume=None):
        m = clstm.Seq2Seq(sv, tv, embedding=8, hidden_size=8, num_layers=2, dropout=0.3, seed=1)
        task = TranslationTask(train, val, 16, source_vocab=sv, target_vocab=tv)
        if resume:
            t = Trainer.resume(resume, task, progress=False)
        else:
            t = Trainer(m, task, epochs=2, eval_every=7, progress=False,
                        checkpoint=str(tmp_path / "run.ckpt.npz"))
        t.fit(max_steps=steps)
        return t.model

    whole = run(38)
    run(15)
    resumed = run(38, resume=str(tmp_path / "run.ckpt.npz"))
    assert isinstance(resumed, clstm.Seq2Seq)
    np.testing.assert_array_equal(resumed.flat_parameters, whole.flat_parameters)


# ---------------------------------------------------------- command line

def write_pairs(path, data, sep=" "):
    path.write_text("".join("%s\t%s\n" % ("".join(s), sep.join(t))
                            for s, t in zip(data.sources, data.targets)), encoding="utf-8")
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small model trained by `clstm train --pairs` (space-separated targets)."""
    d = tmp_path_factory.mktemp("pairs")
    rng = np.random.default_rng(4)
    train = write_pairs(d / "train.tsv", reversal(600, rng))
    test = write_pairs(d / "test.tsv", reversal(50, rng))
    out = str(d / "model.safetensors")
    assert cli.main(["train", "--pairs", train, "--target-tokens", "space", "--hidden", "16",
                     "--embedding", "8", "--epochs", "2", "--out", out, "--no-progress"]) == 0
    return out, test


def test_train_translate_and_evaluate_from_the_command_line(trained, capsys, monkeypatch):
    import io
    out, test = trained
    capsys.readouterr()
    m = clstm.load(out)
    assert m.metadata["task"] == "seq2seq" and m.target_split == "space"
    assert int(m.metadata["max_source_length"]) == 5
    lines = ["abc", "", "fa", "zz"]
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("\n".join(lines).encode())))
    assert cli.main(["translate", out, "--beam", "3"]) == 0
    got = capsys.readouterr()
    assert got.out.split("\n")[:-1] == [m.translate([t], beam=3)[0] if t else "" for t in lines]
    assert "2 source tokens were not seen in training" in got.err
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"abcdefabcdef\nab\n")))
    assert cli.main(["translate", out, "--beam", "4", "--nbest", "2"]) == 0
    got = capsys.readouterr()
    blocks = [[line for line in b.split("\n") if line] for b in got.out.split("\n\n")]
    assert [len(b) for b in blocks] == [2, 2, 0]  # a blank line ends each source's
    want = m.translate(["abcdefabcdef", "ab"], beam=4, nbest=2)
    assert blocks[:2] == [["%s\t%.4f" % c for c in w] for w in want]
    assert "1 sources are longer than any seen in training (5 tokens)" in got.err
    assert cli.main(["evaluate", out, "--pairs", test, "--beam", "2"]) == 0
    text = capsys.readouterr().out
    data = pairs.read_pairs(test, "char", "space")
    task = TranslationTask(data, None, 64, source_vocab=m.source_vocabulary,
                           target_vocab=m.target_vocabulary)
    ter, ser, n = task.error_rates(m, data, width=2)
    assert "token error rate: %.2f%%" % (100 * ter) in text
    assert "sequence error rate: %.2f%% of %d sources" % (100 * ser, n) in text


def test_translate_and_evaluate_json_and_quiet(trained, capsys, monkeypatch):
    """--json: one object per source line (the plain command's targets, or
    its --nbest candidates and scores); evaluate's metrics as one object;
    --quiet: the translations without the notes."""
    import io
    import json
    out, test = trained
    m = clstm.load(out)
    lines = ["abc", "", "zz", "abcdefabcdef"]

    def run(*args):
        monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("\n".join(lines).encode())))
        capsys.readouterr()
        assert cli.main(["translate", out] + list(args)) == 0
        return capsys.readouterr()

    plain = run("--beam", "3")
    got = run("--beam", "3", "--json")
    assert got.err == plain.err != ""  # the notes on stderr, as without --json
    assert [json.loads(line) for line in got.out.splitlines()] == [
        {"source": s, "target": t} for s, t in zip(lines, plain.out.split("\n"))]
    got = run("--beam", "4", "--nbest", "2", "--json")
    want = m.translate([t for t in lines if t], beam=4, nbest=2)
    objs = [json.loads(line) for line in got.out.splitlines()]
    assert [o["source"] for o in objs] == lines and objs[1]["candidates"] == []
    for o, w in zip([o for o in objs if o["source"]], want):
        assert [c["target"] for c in o["candidates"]] == [t for t, _ in w]
        np.testing.assert_allclose([c["score"] for c in o["candidates"]], [v for _, v in w],
                                   rtol=1e-12)
    quiet = run("--beam", "3", "--quiet")
    assert (quiet.out, quiet.err) == (plain.out, "")
    capsys.readouterr()
    assert cli.main(["evaluate", out, "--pairs", test, "--beam", "2", "--json"]) == 0
    (obj,) = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    data = pairs.read_pairs(test, "char", "space")
    task = TranslationTask(data, None, 64, source_vocab=m.source_vocabulary,
                           target_vocab=m.target_vocabulary)
    ter, ser, n = task.error_rates(m, data, width=2)
    assert obj == {"token_error_rate": ter, "sequence_error_rate": ser, "sources": n,
                   "unknown_tokens": 0}


@pytest.mark.parametrize("args, needle", [
    (["translate", "{model}", "--beam", "0"], "expected a value > 0"),
    (["translate", "{model}", "--beam", "2", "--nbest", "3"], "at most --beam"),
    (["translate", "{other}"], "not an encoder-decoder"),
    (["evaluate", "{model}", "--pairs", "{notab}"], "notab.tsv:2: expected source<TAB>target"),
    (["evaluate", "{model}", "--pairs", "{empty}"], "empty.tsv:1: empty target"),
    (["train", "--pairs", "{notab}", "--out", "{out}"], "notab.tsv:2"),
    (["train", "--text", "{notab}", "--target-tokens", "space"], "--target-tokens goes with"),
    (["train", "--pairs", "{empty}", "--out", "{out}"], "empty target"),
    (["train", "--text", "{notab}", "--label-smoothing", "0.1"], "--label-smoothing goes with"),
    (["translate", "{model}", "--beam", "5000"], "expected at most 4096"),
    (["translate", "{model}", "--alpha", "inf"], "expected a finite number"),
    (["evaluate", "{model}", "--pairs", "{notab}", "--beam", "5000"], "expected at most 4096"),
    (["export", "{model}", "--onnx", "{out}"], "does not export to ONNX"),
])
def test_bad_input_gives_one_line_and_status_2(trained, tmp_path, capsys, args, needle):
    model, _ = trained
    other = tmp_path / "other.safetensors"
    clstm.save(clstm.Model(vocab="ab", hidden_size=3, output_size=2, softmax=True), other)
    (tmp_path / "notab.tsv").write_text("ab\tA B\nabc A B C\n")
    (tmp_path / "empty.tsv").write_text("ab\t  \n")
    names = dict(model=model, other=str(other), notab=str(tmp_path / "notab.tsv"),
                 empty=str(tmp_path / "empty.tsv"), out=str(tmp_path / "m.safetensors"))
    parse_error = needle.startswith("expected a")
    with pytest.raises(SystemExit) if parse_error else contextlib.nullcontext():
        assert cli.main([a.format(**names) for a in args]) == 2
    err = capsys.readouterr().err
    assert needle in err
    if not parse_error:
        assert len(err.strip().split("\n")) == 1


def test_info_describes_an_encoder_decoder(trained, capsys):
    model, _ = trained
    assert cli.main(["info", model]) == 0
    out = capsys.readouterr().out
    assert "an encoder-decoder" in out and "target_vocab: " in out
    assert "metadata target_split: space" in out


# ------------------------------------------------------------ the C example

needs_example = pytest.mark.skipif(not TRANSLATE.exists(),
                                   reason="build the examples first: make")


@needs_example
@pytest.mark.parametrize("beam", [1, 4])
def test_the_c_example_translates_as_the_command_does(trained, tmp_path, capsys, monkeypatch,
                                                      beam):
    import io
    model, _ = trained
    rng = np.random.default_rng(beam)
    lines = ["".join(rng.choice(list("abcdefz"), rng.integers(0, 9))) for _ in range(150)]
    text = "\n".join(lines) + "\n"
    run = subprocess.run([str(TRANSLATE), model, "--beam", str(beam)], input=text.encode(),
                         capture_output=True, timeout=120)
    assert run.returncode == 0, run.stderr
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text.encode())))
    assert cli.main(["translate", model, "--beam", str(beam)]) == 0
    assert run.stdout.decode() == capsys.readouterr().out


@needs_example
@pytest.mark.parametrize("bad, message", [(b"\xff\xfe", "not UTF-8"),
                                          (b"ed\xed\xa0\x80", "not UTF-8"),  # a surrogate
                                          (b"\xc0\xaf", "not UTF-8"),  # overlong
                                          (b"a\x00b", "contains the character U+0000")])
def test_the_c_example_stops_where_the_command_stops(trained, capsys, monkeypatch, bad, message):
    """A bad line: both print the lines before it, then stop with a message
    naming its line (status 1 from C, a usage error 2 from the command)."""
    import io
    model, _ = trained
    text = b"abc\n\nfed\n" + bad + b"\nab\n"
    run = subprocess.run([str(TRANSLATE), model], input=text, capture_output=True, timeout=60)
    assert run.returncode == 1 and ("stdin:4: " + message) in run.stderr.decode()
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(text)))
    assert cli.main(["translate", model]) == 2
    got = capsys.readouterr()
    assert ("stdin:4: " + message) in got.err
    assert run.stdout.decode() == got.out and len(got.out.split("\n")) == 4


def test_translate_writes_utf8_whatever_the_locale(tmp_path):
    rng = np.random.default_rng(6)
    data = reversal(40, rng)
    data.targets = [["\u0416" + t for t in ts] for ts in data.targets]  # Cyrillic targets
    path = write_pairs(tmp_path / "cyr.tsv", data)
    out = str(tmp_path / "cyr.safetensors")
    assert cli.main(["train", "--pairs", path, "--target-tokens", "space", "--hidden", "4",
                     "--embedding", "4", "--max-steps", "2", "--out", out, "--no-progress"]) == 0
    m = clstm.load(out)
    m.named_parameters()["decoder.out.bias"][3] = 100.0  # always the first token: Cyrillic
    clstm.save(m, out)
    import os
    import sys
    env = dict(os.environ, PYTHONIOENCODING="latin-1")
    run = subprocess.run([sys.executable, "-m", "clstm", "translate", out, "--max-length", "2"],
                         input=b"abc\n", capture_output=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr
    token = m.target_vocabulary.tokens[3]
    assert token.startswith("\u0416") and run.stdout.decode("utf-8") == token + " " + token + "\n"


@needs_example
def test_the_c_example_refuses_bad_input(trained, tmp_path):
    model, _ = trained
    other = tmp_path / "other.safetensors"
    clstm.save(clstm.Model(vocab="ab", hidden_size=3, output_size=2, softmax=True), other)
    for args, status, needle in (([model, "--beam", "0"], 2, "--beam"),
                                 ([str(other)], 1, "not an encoder-decoder"),
                                 ([str(tmp_path / "missing")], 1, "missing"),
                                 ([], 2, "expected a model")):
        run = subprocess.run([str(TRANSLATE)] + args, input=b"ab\n", capture_output=True,
                             timeout=60)
        assert run.returncode == status and needle in run.stderr.decode(), (args, run.stderr)
