"""Sequence labelling with CTC in the trainer (clstm.tasks.LabellingTask),
text-line data (clstm.ocr) and the OCR commands (clstm train --lines,
clstm recognize, clstm evaluate --lines)."""
import json
import os

import numpy as np
import pytest

import clstm
from clstm import cli, ocr
from clstm.data import DataError, LabelledSequences
from clstm.tasks import LabellingTask, edit_distance
from clstm.trainer import Trainer


try:
    from PIL import Image, ImageDraw, ImageFont
except ImportError:  # most tests here need no Pillow
    Image = None
needs_pillow = pytest.mark.skipif(Image is None, reason="needs Pillow: pip install "
                                  "'pyclstm[ocr]'")


def segments(n, rng, K=4, D=6):
    """Sequences whose label k shows as a few steps of feature k, with gaps:
    learnable only through an alignment the data does not give."""
    xs, ys = [], []
    for _ in range(n):
        y = rng.integers(1, K + 1, rng.integers(1, 6))
        cols = []
        for k in y:
            cols += [np.zeros(D)] * int(rng.integers(1, 3))
            seg = np.zeros(D)
            seg[k] = 1
            cols += [seg] * int(rng.integers(2, 4))
        cols += [np.zeros(D)] * int(rng.integers(1, 3))
        xs.append((np.array(cols) + 0.1 * rng.standard_normal((len(cols), D))).astype(np.float32))
        ys.append(y)
    return LabelledSequences(xs, ys)


def test_edit_distance():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance("", "abc") == 3 and edit_distance("abc", "") == 3
    assert edit_distance([1, 2, 3], [1, 2, 3]) == 0
    assert edit_distance("ab", "ba") == 2


def test_labelling_task_learns_an_unaligned_task():
    rng = np.random.default_rng(0)
    train, val = segments(600, rng), segments(100, rng)
    task = LabellingTask(train, val, 16)
    model = clstm.Model(6, 32, 1, bidirectional=True, output_size=5, seed=1)
    before = task.evaluate(model)
    history = Trainer(model, task, epochs=6, lr=1e-2, progress=False).fit()
    after = history[-1]
    assert before["val_cer"] > 0.5
    assert after["val_cer"] < 0.02 and after["val_seq_accuracy"] > 0.95
    assert after["val_loss"] < before["val_loss"] / 10
    assert model.metadata["task"] == "ctc" and model.metadata["blank"] == "0"
    # the beam agrees with the best path on a model this sure
    assert task.error_rates(model, val, width=4)[0] < 0.02


def test_too_short_sequences_count_zero_not_inf():
    rng = np.random.default_rng(1)
    seqs = segments(8, rng)
    seqs.ys[0] = np.arange(1, 5).repeat(20) % 4 + 1  # far longer than its input
    task = LabellingTask(seqs, None, 8)
    model = clstm.Model(6, 8, 1, output_size=5, seed=2)
    X, targets, lens = task.batch(0, np.arange(8))
    loss, dz = task.loss(model.forward(X, lengths=lens, train=True)[0], targets, lens)
    assert np.isfinite(loss) and np.isfinite(dz).all() and not dz[:, 0].any()


def test_frames_stack_neighbouring_columns_and_pad_with_paper():
    x = np.arange(1, 5 * 3 + 1, dtype=np.float32).reshape(5, 3)
    f = ocr.frames(x, 2)
    assert f.shape == (3, 6) and f.dtype == np.float32
    np.testing.assert_array_equal(f[0], np.r_[x[0], x[1]])
    np.testing.assert_array_equal(f[2], np.r_[x[4], 0, 0, 0])  # paper after the last column
    np.testing.assert_array_equal(f.reshape(-1, 3)[:5], x)
    assert ocr.frames(x, 1) is not None and ocr.frames(x, 1).shape == x.shape
    np.testing.assert_array_equal(ocr.frames(x, 5), x.reshape(1, 15))
    with pytest.raises(ValueError, match="per_step"):
        ocr.frames(x, 0)


@needs_pillow
@pytest.mark.parametrize("per_step", [1, 3])
def test_augment_is_seeded_bounded_and_off_at_strength_zero(per_step):
    cols = np.random.default_rng(2).random((40, 16)).astype(np.float32)
    x = ocr.frames(cols, per_step)
    a = ocr.augment(x, np.random.default_rng(5), per_step=per_step)
    b = ocr.augment(x, np.random.default_rng(5), per_step=per_step)
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.float32 and a.min() >= 0 and a.max() <= 1
    assert a.shape[1] == x.shape[1]  # the height is kept; the width may change
    outs = [ocr.augment(x, np.random.default_rng(s), per_step=per_step) for s in range(40)]
    assert all(o.shape[1] == x.shape[1] and 0 <= o.min() and o.max() <= 1 for o in outs)
    assert sum(not np.array_equal(o, x) for o in outs) >= 30
    assert len({o.shape[0] for o in outs}) > 1  # wider and narrower type
    np.testing.assert_array_equal(ocr.augment(x, np.random.default_rng(5), strength=0,
                                              per_step=per_step), x)
    with pytest.raises(ValueError, match="per_step"):
        ocr.augment(np.zeros((4, 7), np.float32), np.random.default_rng(0), per_step=2)


@needs_pillow
def test_augment_effects_match_what_they_say():
    """Each effect alone, at its largest: a tilt shrinks the text, a
    resolution loss blurs edges, speckles add ink to blank paper."""
    x = np.zeros((60, 32), np.float32)
    x[10:50, 12:20] = 1.0  # a bar of ink
    tilted = ocr._tilted(x, 2.0)
    assert tilted.shape[1] == 32 and tilted.shape[0] < 60  # scaled back to 32 high
    assert tilted.sum() < x.sum()
    blurred = ocr._resized(ocr._resized(x, 30, 16), 60, 32)
    assert blurred.shape == x.shape and 0 < blurred[30, 11] < 1  # the edge is soft now
    speckled = [ocr.augment(np.zeros((50, 32), np.float32), np.random.default_rng(s))
                for s in range(40)]
    assert any(o.max() > 0.4 for o in speckled)  # ink where there was none


def test_encode_decode_and_min_width():
    assert ocr.encode("aba", "ab").tolist() == [1, 2, 1]
    assert ocr.decode_labels([2, 1], "ab") == "ba"
    assert ocr.min_width([1, 1, 2]) == 4 and ocr.min_width([]) == 0


# ------------------------------------------------------------- line images

WORDS = "the quick brown fox jumps over a lazy dog".split()


def render(directory, n, seed, height=16):
    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    font = ImageFont.load_default()
    for i in range(n):
        text = " ".join(rng.choice(WORDS, rng.integers(1, 3)))
        im = Image.new("L", (int(font.getlength(text)) + 8, height), 255)
        ImageDraw.Draw(im).text((4, 2), text, fill=0, font=font)
        im.save(os.path.join(directory, "l%03d.png" % i))
        with open(os.path.join(directory, "l%03d.gt.txt" % i), "w") as f:
            f.write(text + "\n")
    return directory


@needs_pillow
def test_read_image_scales_and_inverts(tmp_path):
    im = Image.new("L", (20, 10), 255)
    im.putpixel((3, 4), 0)
    im.save(tmp_path / "a.png")
    x = ocr.read_image(str(tmp_path / "a.png"), 20)
    assert x.shape == (40, 20) and x.dtype == np.float32
    assert x.min() == 0 and x.max() > 0.5  # ink is high, paper 0
    rgb = Image.new("RGB", (20, 10), (255, 255, 255))
    rgb.save(tmp_path / "b.jpg")
    assert ocr.read_image(str(tmp_path / "b.jpg"), 10).max() < 0.05
    with pytest.raises(ValueError, match="height"):
        ocr.read_image(str(tmp_path / "a.png"), 0)
    np.testing.assert_array_equal(ocr.read_image(str(tmp_path / "a.png"), 20, 3),
                                  ocr.frames(x, 3))


@needs_pillow
@pytest.mark.parametrize("damage, needle", [
    ("no_gt", "no transcript"),
    ("empty_gt", "empty transcript"),
    ("two_lines", "one line"),
    ("truncated", "cannot read"),
    ("not_image", "cannot read"),
    ("narrow", "needs at least"),
    ("not_utf8", "not UTF-8"),
])
def test_bad_lines_are_named(tmp_path, damage, needle):
    d = render(str(tmp_path / "lines"), 3, 0)
    victim = os.path.join(d, "l001.png")
    gt = os.path.join(d, "l001.gt.txt")
    if damage == "no_gt":
        os.remove(gt)
    elif damage == "empty_gt":
        open(gt, "w").write("\n")
    elif damage == "two_lines":
        open(gt, "w").write("a\nb\n")
    elif damage == "truncated":
        data = open(victim, "rb").read()
        open(victim, "wb").write(data[:len(data) // 2])
    elif damage == "not_image":
        open(victim, "w").write("hello")
    elif damage == "narrow":
        Image.new("L", (4, 16), 255).save(victim)
    elif damage == "not_utf8":
        open(gt, "wb").write(b"\xff\xfe bad")
    with pytest.raises(DataError, match=needle) as e:
        ocr.read_lines(d, 16)
    assert "l001" in str(e.value)


@needs_pillow
def test_characters_outside_the_alphabet_are_named(tmp_path):
    d = render(str(tmp_path / "lines"), 2, 0)
    with pytest.raises(DataError, match="not in the model's alphabet: .*"):
        ocr.read_lines(d, 16, alphabet="xyz")


@needs_pillow
def test_train_recognize_evaluate_from_the_command_line(tmp_path, capsys):
    lines = render(str(tmp_path / "lines"), 120, 1)
    test = render(str(tmp_path / "test"), 10, 2)
    out = str(tmp_path / "ocr.safetensors")
    rc = cli.main(["train", "--lines", lines, "--line-height", "16", "--epochs", "3",
                   "--hidden", "16", "--no-progress", "--out", out, "--augment"])
    assert rc == 0 and os.path.exists(out)
    model = clstm.load(out)
    assert model.metadata["task"] == "ctc" and model.metadata["line_height"] == "16"
    assert model.metadata["columns_per_step"] == "2"  # the default
    assert model.bidirectional and model.input_size == 2 * 16
    capsys.readouterr()
    images = [os.path.join(test, "l000.png"), os.path.join(test, "l001.png")]
    assert cli.main(["recognize", out] + images) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert cli.main(["evaluate", out, "--lines", test]) == 0
    text = capsys.readouterr().out
    assert text.startswith("CER: ") and "%" in text.splitlines()[0]
    assert "lines exactly right" in text


@needs_pillow
def test_max_minutes_stops_and_keeps_a_model(tmp_path, capsys):
    lines = render(str(tmp_path / "lines"), 40, 3)
    out = str(tmp_path / "m.safetensors")
    rc = cli.main(["train", "--lines", lines, "--line-height", "16", "--epochs", "1000",
                   "--hidden", "8", "--no-progress", "--out", out, "--max-minutes", "0.02"])
    assert rc == 0 and os.path.exists(out)
    assert os.path.exists(str(tmp_path / "m.ckpt.npz"))
    done = [l for l in capsys.readouterr().out.splitlines() if l.startswith("done:")]
    steps = int(done[0].split()[1])
    assert 0 < steps < 1000 * 3  # stopped long before 1000 epochs of 3 batches


@needs_pillow
@pytest.mark.parametrize("argv, needle", [
    (["recognize", "{model}", "{dir}/nothere.png"], "cannot read"),
    (["evaluate", "{model}"], "give one of"),
    (["evaluate", "{model}", "--lines", "{dir}/nothere"], "not a directory"),
    (["train", "--npz", "x.npz", "--lines", "{dir}"], "at most one"),
    (["train", "--augment"], "--augment goes with --lines"),
    (["train", "--columns-per-step", "2"], "--columns-per-step goes with --lines"),
    (["recognize", "{odd}", "{dir}/l000.png"], "do not match its shape"),
    (["recognize", "{classifier}", "{dir}/l000.png"], "not a text-line recognition model"),
])
def test_ocr_commands_refuse_bad_input(tmp_path, capsys, argv, needle):
    d = render(str(tmp_path / "lines"), 2, 4)
    model = str(tmp_path / "ocr.safetensors")
    m = clstm.Model(16, 4, 1, bidirectional=True, output_size=3, seed=0)
    m.metadata.update(task="ctc", blank="0", alphabet='"ab"', line_height="16")
    clstm.save(m, model)
    classifier = str(tmp_path / "cls.safetensors")
    c = clstm.Model(3, 4, 1, output_size=2, softmax=True, seed=0)
    c.metadata.update(task="classify", classes="2")
    clstm.save(c, classifier)
    odd = str(tmp_path / "odd.safetensors")  # 16 inputs cannot be 3 columns of 16
    m.metadata.update(columns_per_step="3")
    clstm.save(m, odd)
    args = [a.format(model=model, dir=d, classifier=classifier, odd=odd) for a in argv]
    assert cli.main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and needle in err[0], err


@needs_pillow
def test_recognize_with_a_language_model(tmp_path, capsys):
    d = render(str(tmp_path / "lines"), 2, 5)
    model = str(tmp_path / "ocr.safetensors")
    alphabet = "".join(sorted(set("".join(open(os.path.join(d, f)).read().strip()
                                          for f in os.listdir(d) if f.endswith(".txt")))))
    m = clstm.Model(16, 4, 1, bidirectional=True, output_size=len(alphabet) + 1, seed=0)
    m.metadata.update(task="ctc", blank="0", alphabet=json.dumps(alphabet), line_height="16")
    clstm.save(m, model)
    lm_path = str(tmp_path / "lm.safetensors")
    lm = clstm.Model(hidden_size=8, vocab="\n" + alphabet[:-1], output_size=len(alphabet),
                     softmax=True, seed=1)
    lm.metadata.update(task="char")
    clstm.save(lm, lm_path)
    image = os.path.join(d, "l000.png")
    assert cli.main(["recognize", model, image, "--beam", "4"]) == 0
    plain = capsys.readouterr().out
    assert cli.main(["recognize", model, image, "--beam", "4", "--lm", lm_path,
                     "--lm-weight", "0", "--lm-bonus", "0"]) == 0
    assert capsys.readouterr().out == plain  # weight 0, bonus 0: the plain beam
    assert cli.main(["recognize", model, image, "--beam", "4", "--lm", lm_path,
                     "--lm-weight", "2", "--lm-bonus", "1"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 1
    assert cli.main(["evaluate", model, "--lines", d, "--beam", "2", "--lm", lm_path]) == 0
    assert capsys.readouterr().out.startswith("CER: ")
    assert cli.main(["recognize", model, image, "--lm", model]) == 2
    assert "not a character model" in capsys.readouterr().err
    assert cli.main(["recognize", model, image, "--lm", lm_path, "--lm-bonus", "nan"]) == 2
    assert "--lm-bonus" in capsys.readouterr().err


@needs_pillow
def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path, capsys):
    lines = render(str(tmp_path / "lines"), 40, 6)
    common = ["train", "--lines", lines, "--line-height", "16", "--epochs", "2", "--hidden", "6",
              "--no-progress", "--augment", "--checkpoint-every", "3"]
    whole = str(tmp_path / "whole.safetensors")
    assert cli.main(common + ["--out", whole]) == 0
    part = str(tmp_path / "part.safetensors")
    assert cli.main(common + ["--out", part, "--max-steps", "3"]) == 0
    assert cli.main(common + ["--out", part, "--resume", str(tmp_path / "part.ckpt.npz")]) == 0
    np.testing.assert_array_equal(clstm.load(whole).flat_parameters,
                                  clstm.load(part).flat_parameters)
