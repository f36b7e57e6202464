"""Feature standardization of sequence models (clstm.tasks.Standardization):
fitted on the training split alone, kept in the model's metadata
(input_mean, input_std; a regression's output_mean, output_std) and applied
by whatever runs the model: predict_sequences, `clstm evaluate`, `clstm
forecast` (and examples/stream.c: tests/test_examples.py). Also mean
pooling (the "pooling" metadata) and the classifier's --bidirectional,
--standardize and --pooling options. The references are NumPy computations
over the valid steps, written out here, and finite differences."""
import json

import numpy as np
import pytest

import clstm
from clstm import data as D
from clstm.tasks import SequenceTask, Standardization, model_scaling, predict_sequences
from test_cli import assert_ok, assert_refused, run_main, toy_classification

CONSTANT = 7.25  # the value of the constant feature
PAD = 1e6  # past each length: a fit that read it would be far off


def far_from_unit(seed, n=200):
    """toy_classification's task (the sign of feature 0 at the last step)
    with features far from mean 0 and std 1, a constant third feature, and
    PAD past each length."""
    X, lengths, y = toy_classification(seed, n=n, d=2)
    X = np.concatenate([X * [30.0, 0.01] + [500.0, -3.0], np.full(X.shape[:2] + (1,), CONSTANT)],
                       axis=2)
    X[np.arange(X.shape[1])[None, :] >= lengths[:, None]] = PAD
    return X, lengths, y


def valid_steps(X, lengths):
    return np.concatenate([x[:n] for x, n in zip(X, lengths)])


def save_npz(path, X, lengths, y):
    np.savez(path, X=X, lengths=lengths, y=y)
    return path


def test_fit_reads_the_valid_steps_only_and_a_constant_feature_is_centred():
    X, lengths, _ = far_from_unit(0)
    s = Standardization.fit(X, lengths)
    steps = valid_steps(X, lengths)
    np.testing.assert_allclose(s.mean[:2], steps[:, :2].mean(0), rtol=1e-12)
    np.testing.assert_allclose(s.std[:2], steps[:, :2].std(0), rtol=1e-12)
    assert (s.mean[2], s.std[2]) == (CONSTANT, 1.0)
    z = s.apply(steps)
    assert np.all(np.isfinite(z)) and np.all(z[:, 2] == 0)
    np.testing.assert_allclose(z[:, :2].mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(z[:, :2].std(0), 1, rtol=1e-9)
    np.testing.assert_allclose(s.invert(z), steps, rtol=1e-12)
    # a constant up to rounding (0.1 is not a binary fraction), and rows (N, F)
    r = Standardization.fit(np.full((1000, 1), 0.1))
    assert r.std[0] == 1.0 and r.mean[0] == pytest.approx(0.1, rel=1e-15)


def test_metadata_round_trips_float64_exactly():
    rng = np.random.default_rng(3)
    s = Standardization(rng.standard_normal(5) * 1e5, rng.uniform(1e-7, 1e3, 5))
    md = s.metadata("input")
    assert md.keys() == {"input_mean", "input_std"}
    assert json.loads(md["input_mean"]) == s.mean.tolist()
    back = Standardization.from_metadata(md, "input", 5)
    assert np.array_equal(back.mean, s.mean) and np.array_equal(back.std, s.std)
    assert Standardization.from_metadata({}, "input", 5) is None


@pytest.mark.parametrize("md,match", [
    ({"input_mean": "[0, 1]"}, "has 'input_mean' but not 'input_std'"),
    ({"input_std": "[1, 1]"}, "has 'input_std' but not 'input_mean'"),
    ({"input_mean": "[0, 1, 2]", "input_std": "[1, 1]"}, "'input_mean' has 3 numbers"),
    ({"input_mean": "[0, 1]", "input_std": "[1, 0]"}, "std <= 0"),
    ({"input_mean": "[0, NaN]", "input_std": "[1, 1]"}, "non-finite"),
    ({"input_mean": "[0, true]", "input_std": "[1, 1]"}, "not a JSON array of numbers"),
    ({"input_mean": "{}", "input_std": "[1, 1]"}, "not a JSON array of numbers"),
    ({"input_mean": "0 1", "input_std": "[1, 1]"}, "not a JSON array of numbers")])
def test_malformed_metadata_is_named(md, match):
    with pytest.raises(ValueError, match=match):
        Standardization.from_metadata(md, "input", 2)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A classifier trained by `clstm train --npz` on far_from_unit data
    (bidirectional), its data files, and the same trained unscaled."""
    d = tmp_path_factory.mktemp("standardize")
    npz = save_npz(d / "train.npz", *far_from_unit(0))
    test = save_npz(d / "test.npz", *far_from_unit(1, n=100))
    common = ["--hidden", "8", "--epochs", "4", "--lr", "0.02", "--threads", "1",
              "--no-progress", "--seed", "3"]
    assert_ok(run_main(["train", "--npz", npz, "--bidirectional", "--out", d / "m.safetensors"]
                       + common, d))
    assert_ok(run_main(["train", "--npz", npz, "--no-standardize", "--no-bidirectional",
                        "--out", d / "raw.safetensors"] + common, d))
    return d, npz, test


def test_train_fits_on_the_training_split_only(trained):
    d, npz, _ = trained
    model = clstm.load(str(d / "m.safetensors"))
    mean = np.array(json.loads(model.metadata["input_mean"]))
    std = np.array(json.loads(model.metadata["input_std"]))
    X, lengths, y = far_from_unit(0)
    # the split `clstm train --seed 3 --val-fraction 0.1` makes
    order = np.random.default_rng([3, 0xDA7A]).permutation(len(y))
    train = order[int(round(0.1 * len(y))):]
    steps = valid_steps(X[train], lengths[train])
    np.testing.assert_allclose(mean[:2], steps[:, :2].mean(0), rtol=1e-12)
    np.testing.assert_allclose(std[:2], steps[:, :2].std(0), rtol=1e-12)
    assert (mean[2], std[2]) == (CONSTANT, 1.0)
    every = valid_steps(X, lengths)  # the validation sequences are left out
    assert np.all(np.abs(mean[:2] - every[:, :2].mean(0)) > 1e-9 * np.abs(mean[:2]))


def test_evaluate_applies_the_stored_scaling(trained, tmp_path):
    d, _, test = trained
    model = clstm.load(str(d / "m.safetensors"))
    assert model.bidirectional and model.metadata["task"] == "classify"
    mean = np.array(json.loads(model.metadata["input_mean"]))
    std = np.array(json.loads(model.metadata["input_std"]))
    # the same model without the keys, given data scaled here by NumPy
    stripped = clstm.load(str(d / "m.safetensors"))
    del stripped.metadata["input_mean"], stripped.metadata["input_std"]
    clstm.save(stripped, tmp_path / "stripped.safetensors")
    X, lengths, y = far_from_unit(1, n=100)
    scaled = save_npz(tmp_path / "scaled.npz", (X - mean) / std, lengths, y)
    raw = run_main(["evaluate", d / "m.safetensors", "--npz", test], tmp_path)
    pre = run_main(["evaluate", tmp_path / "stripped.safetensors", "--npz", scaled], tmp_path)
    assert_ok(raw)
    assert raw.out == pre.out
    accuracy = float(raw.out.splitlines()[0].split()[1])
    assert accuracy >= 0.8  # learnable only where the scaling works (feature 0 is ~500)
    # predict_sequences: the model's forward on NumPy-scaled inputs, at the last steps
    p = predict_sequences(model, X, lengths)
    z, _ = stripped.forward(((X - mean) / std).transpose(1, 0, 2).astype(np.float32),
                            lengths=lengths, train=False)
    np.testing.assert_array_equal(p, z[lengths - 1, np.arange(len(y))])
    assert np.all(np.isfinite(p))
    # a constant feature that varies at test time: centred, finite
    X2 = X.copy()
    X2[:, :, 2] = np.random.default_rng(0).standard_normal(X.shape[:2])
    assert np.all(np.isfinite(predict_sequences(model, X2, lengths)))


def test_a_model_without_the_keys_reads_its_data_as_it_is(trained, tmp_path):
    d, _, test = trained
    model = clstm.load(str(d / "raw.safetensors"))
    assert not model.bidirectional
    assert set(model.metadata) == {"task", "classes"}
    assert model_scaling(model) == (None, None)
    X, lengths, y = far_from_unit(1, n=100)
    z, _ = model.forward(X.transpose(1, 0, 2).astype(np.float32), lengths=lengths, train=False)
    np.testing.assert_array_equal(predict_sequences(model, X, lengths),
                                  z[lengths - 1, np.arange(len(y))])
    assert_ok(run_main(["evaluate", d / "raw.safetensors", "--npz", test], tmp_path))


def test_python_api_standardizes_as_the_command_line(trained):
    X, lengths, y = far_from_unit(0)
    train, val = D.Sequences(X, lengths, y).split(0.1, np.random.default_rng([3, 0xDA7A]))
    task = SequenceTask(train, val, 32, standardize=True)
    cli_model = clstm.load(str(trained[0] / "m.safetensors"))
    model = clstm.Model(3, 8, output_size=2, softmax=True, seed=0)
    assert task.model_metadata(model) == dict(cli_model.metadata)
    assert SequenceTask(train, val, 32).model_metadata(model) == {"task": "classify",
                                                                  "classes": "2"}
    # the batches are scaled
    inputs, _, lens = task.batch(0, np.arange(len(train)))
    idx = np.arange(32)
    steps = valid_steps(train.X[idx], train.lengths[idx])
    got = np.concatenate([inputs[:n, b] for b, n in enumerate(lens)])
    np.testing.assert_allclose(got, (steps - task.input_scaling.mean) / task.input_scaling.std,
                               rtol=1e-12)
    with pytest.raises(TypeError, match="standardize: expected a bool"):
        SequenceTask(train, val, 32, standardize=1)


def test_regression_targets_are_standardized_and_mapped_back():
    rng = np.random.default_rng(5)
    X = rng.standard_normal((60, 5, 2)) * 4 + 10
    y = np.stack([X[:, -1, 0] * 100 + 1000, X[:, -1, 1] * 0.01], axis=1)
    seqs = D.Sequences(X, np.full(60, 5), y)
    task = SequenceTask(seqs, seqs, 16, kind="regress", standardize=True)
    np.testing.assert_allclose(task.output_scaling.mean, y.mean(0), rtol=1e-12)
    np.testing.assert_allclose(task.output_scaling.std, y.std(0), rtol=1e-12)
    model = clstm.Model(2, 6, output_size=2, dtype=np.float64, seed=1)
    clstm.trainer.Trainer(model, task, epochs=1, progress=False)  # writes the metadata
    assert set(model.metadata) == {"input_mean", "input_std", "output_mean", "output_std"}
    z, _ = model.forward(task.input_scaling.apply(X).transpose(1, 0, 2), train=False)
    np.testing.assert_allclose(predict_sequences(model, X),
                               z[-1] * y.std(0) + y.mean(0), rtol=1e-12)


def test_predict_sequences_refuses_bad_arguments():
    model = clstm.Model(3, 4, output_size=2, seed=0)
    with pytest.raises(ValueError, match="X: expected a real .N, T_max, D. array"):
        predict_sequences(model, np.zeros((4, 3)))
    with pytest.raises(ValueError, match="X: expected D = 3 features"):
        predict_sequences(model, np.zeros((4, 5, 2)))
    with pytest.raises(ValueError, match="lengths: expected 1 <= length"):
        predict_sequences(model, np.zeros((2, 5, 3)), np.array([0, 5]))
    with pytest.raises(ValueError, match="lengths"):
        predict_sequences(model, np.zeros((2, 5, 3)), np.array([6, 5]))


def test_flags_are_stored_in_the_model(trained, tmp_path):
    d, npz, _ = trained
    common = ["--hidden", "6", "--epochs", "1", "--threads", "1", "--no-progress"]
    bi = clstm.load(str(d / "m.safetensors"))
    assert bi.bidirectional and bi.hidden_size == 8
    # the head reads both directions: (O, 2H)
    assert dict(bi.named_parameters())["head.weight"].shape == (2, 16)
    assert_ok(run_main(["train", "--npz", npz, "--layers", "2", "--dropout", "0.3",
                        "--bidirectional", "--out", tmp_path / "l2.safetensors"] + common,
                       tmp_path))
    l2 = clstm.load(str(tmp_path / "l2.safetensors"))
    assert (l2.num_layers, l2.dropout, l2.bidirectional) == (2, 0.3, True)
    assert "bidirectional" in run_main(["info", tmp_path / "l2.safetensors"], tmp_path).out


@pytest.mark.parametrize("argv,needle", [
    (["--bidirectional"], "--bidirectional goes with --npz FILE or --csv FILE"),
    (["--no-bidirectional"], "--bidirectional goes with"),
    (["--standardize"], "--standardize goes with --npz FILE"),
    (["--csv", "{csv}", "--column", "y", "--no-standardize"], "--standardize goes with"),
])
def test_flags_refused_where_they_do_not_apply(argv, needle, tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text("y\n" + "\n".join(str(np.sin(i / 3)) for i in range(60)) + "\n")
    text = tmp_path / "t.txt"
    text.write_text("some text to learn from, " * 20)
    argv = [a.format(csv=csv) for a in argv]
    argv = argv if "--csv" in argv else ["--text", str(text)] + argv
    r = run_main(["train"] + argv + ["--out", tmp_path / "m.safetensors", "--threads", "1",
                                     "--no-progress"], tmp_path)
    assert_refused(r, "train", needle)
    assert not (tmp_path / "m.safetensors").exists()


def test_evaluate_refuses_malformed_scaling(trained, tmp_path):
    d, _, test = trained
    model = clstm.load(str(d / "m.safetensors"))
    model.metadata["input_std"] = "[1, 2]"
    clstm.save(model, tmp_path / "bad.safetensors")
    assert_refused(run_main(["evaluate", tmp_path / "bad.safetensors", "--npz", test],
                            tmp_path), "evaluate", "bad.safetensors", "'input_std' has 2 numbers")


def test_bidirectional_forecaster(tmp_path):
    csv = tmp_path / "s.csv"
    csv.write_text("y\n" + "\n".join(repr(50 + 10 * float(np.sin(i / 4))) for i in range(120)) + "\n")
    out = tmp_path / "fc.safetensors"
    assert_ok(run_main(["train", "--csv", csv, "--column", "y", "--window", "12",
                        "--bidirectional", "--hidden", "6", "--epochs", "2", "--threads", "1",
                        "--no-progress", "--out", out], tmp_path))
    assert clstm.load(str(out)).bidirectional
    r = run_main(["forecast", out, "--csv", csv], tmp_path)
    assert_ok(r)
    assert r.out.startswith("forecast of the next 1 value after the last of 120:")


@pytest.mark.parametrize("kind", ["classify", "regress"])
def test_mean_pooling_loss_and_gradient(kind):
    """The pooled loss is the plain loss of the mean over the valid steps,
    and its gradient matches central differences (float64)."""
    rng = np.random.default_rng(8)
    T, B, O = 5, 4, 3
    out = rng.standard_normal((T, B, O))
    lengths = np.array([5, 1, 3, 4])
    y = (rng.integers(0, O, B) if kind == "classify" else rng.standard_normal((B, O)))
    task = SequenceTask(None, kind=kind, pooling="mean")
    loss, dout = task.loss(out, y, lengths)
    mean = np.stack([out[:n, b].mean(0) for b, n in enumerate(lengths)])  # (B, O)
    if kind == "classify":
        logp = mean - np.log(np.exp(mean).sum(1, keepdims=True))
        ref = -np.mean(logp[np.arange(B), y])
    else:
        ref = np.mean((mean - y) ** 2)
    assert loss == pytest.approx(ref, rel=1e-12)
    assert np.all(dout[np.arange(T)[:, None] >= lengths[None, :]] == 0)
    h = 1e-6
    for idx in np.ndindex(out.shape):
        plus, minus = out.copy(), out.copy()
        plus[idx] += h
        minus[idx] -= h
        num = (task.loss(plus, y, lengths, grad=False)[0]
               - task.loss(minus, y, lengths, grad=False)[0]) / (2 * h)
        assert dout[idx] == pytest.approx(num, rel=1e-6, abs=1e-9), idx
    with pytest.raises(ValueError, match="pooling: expected 'last' or 'mean'"):
        SequenceTask(None, pooling="max")


def test_predict_sequences_mean_pooling():
    X, lengths, _ = far_from_unit(2, n=20)
    model = clstm.Model(3, 5, bidirectional=True, output_size=2, softmax=True,
                        dtype=np.float64, seed=4)
    scaling = Standardization.fit(X, lengths)
    model.metadata.update(scaling.metadata("input"), pooling="mean")
    z, _ = model.forward(((X - scaling.mean) / scaling.std).transpose(1, 0, 2), lengths=lengths,
                         train=False)
    ref = np.stack([z[:n, b].mean(0) for b, n in enumerate(lengths)])
    np.testing.assert_allclose(predict_sequences(model, X, lengths), ref, rtol=1e-12)
    model.metadata["pooling"] = "max"
    with pytest.raises(ValueError, match="'pooling' is 'max'"):
        predict_sequences(model, X, lengths)


def test_pooling_flag(trained, tmp_path):
    d, npz, test = trained
    out = tmp_path / "mean.safetensors"
    assert_ok(run_main(["train", "--npz", npz, "--pooling", "mean", "--bidirectional",
                        "--hidden", "8", "--epochs", "4", "--lr", "0.02", "--threads", "1",
                        "--no-progress", "--seed", "3", "--out", out], tmp_path))
    model = clstm.load(str(out))
    assert model.metadata["pooling"] == "mean"
    r = run_main(["evaluate", out, "--npz", test], tmp_path)
    assert_ok(r)
    X, lengths, y = far_from_unit(1, n=100)
    accuracy = np.mean(predict_sequences(model, X, lengths).argmax(1) == y)
    assert r.out.splitlines()[0] == "accuracy: %.3f" % accuracy
    model.metadata["pooling"] = "sum"
    clstm.save(model, tmp_path / "bad.safetensors")
    assert_refused(run_main(["evaluate", tmp_path / "bad.safetensors", "--npz", test],
                            tmp_path), "evaluate", "'pooling' is 'sum'")
    text = tmp_path / "t.txt"
    text.write_text("some text to learn from, " * 20)
    assert_refused(run_main(["train", "--text", text, "--pooling", "mean", "--out",
                             tmp_path / "m.safetensors"], tmp_path),
                   "train", "--pooling goes with --npz FILE")


@pytest.mark.parametrize("n", [20, 2000])
def test_npz_default_epochs_give_small_sets_enough_steps(n, tmp_path):
    """No --epochs: 10 passes, or as many as NPZ_MIN_STEPS (600) steps take
    on a small set; the header states the total before training starts."""
    X, lengths, y = toy_classification(0, n=n, t_max=4)
    npz = save_npz(tmp_path / "d.npz", X, lengths, y)
    r = run_main(["train", "--npz", npz, "--hidden", "4", "--max-steps", "2", "--threads", "1",
                  "--no-progress", "--out", tmp_path / "m.safetensors"], tmp_path)
    assert_ok(r)
    batches = -(-(n - int(round(0.1 * n))) // 32)  # after the 10% validation split
    epochs = max(10, -(-600 // batches))
    assert "%d steps of batch 32" % (epochs * batches) in r.out.splitlines()[0]
    assert epochs == (600 if n == 20 else 11)
