"""The trainer: reproducible runs, checkpoints that resume exactly (also
after Ctrl-C), non-finite losses stopping cleanly, atomic checkpoint
writes. Small models and data, so these run in seconds."""
import json
import os
import signal

import numpy as np
import pytest

import clstm
from clstm import data as D
from clstm import train as TR

TEXT = ("It was the best of times, it was the worst of times, it was the age of wisdom, "
        "it was the age of foolishness, it was the epoch of belief. ") * 12


def lm(seed=3, dropout=0.0):
    stream = D.TextStream(TEXT)
    task = TR.LanguageModelTask(stream, batch_size=4, bptt=16)
    layers = 2 if dropout else 1
    model = clstm.Model(hidden_size=12, num_layers=layers, vocab=stream.vocab,
                        output_size=len(stream.vocab), softmax=True, seed=seed,
                        dropout=dropout)
    return task, model


def classifier(seed=1):
    rng = np.random.default_rng(0)
    N, T, Dm = 40, 9, 3
    X = rng.standard_normal((N, T, Dm))
    lengths = rng.integers(2, T + 1, N)
    y = (X[np.arange(N), lengths - 1, 0] > 0).astype(np.int64)
    train, val = D.Sequences(X, lengths, y).split(0.25, np.random.default_rng(1))
    task = TR.SequenceTask(train, val, batch_size=8, kind="classify")
    model = clstm.Model(Dm, 6, 2, output_size=2, softmax=True, dropout=0.3, seed=seed,
                        dtype=np.float64)
    return task, model


def run(make, tmp_path, name, max_steps=None, **kw):
    task, model = make()
    settings = dict(epochs=3, eval_every=7, progress=False, out=str(tmp_path / (name + ".st")),
                    checkpoint=str(tmp_path / (name + ".ckpt")),
                    log=str(tmp_path / (name + ".jsonl")), checkpoint_every=5)
    settings.update(kw)
    t = TR.Trainer(model, task, **settings)
    history = t.fit(max_steps=max_steps)
    return t, history


def strip_time(history):
    return [{k: v for k, v in r.items() if k != "time"} for r in history]


@pytest.mark.parametrize("make", [lm, lambda: lm(dropout=0.4), classifier],
                         ids=["charlm", "charlm-dropout", "classify-shuffled-dropout"])
def test_resume_ends_where_an_uninterrupted_run_ends(tmp_path, make):
    clstm.set_num_threads(2)
    full, h_full = run(make, tmp_path, "full")
    part, _ = run(make, tmp_path, "part", max_steps=full.step // 2 + 1)
    assert part.step == full.step // 2 + 1 < full.step
    task, _ = make()
    resumed = TR.Trainer.resume(str(tmp_path / "part.ckpt"), task, progress=False)
    h_res = resumed.fit()
    assert resumed.step == full.step
    np.testing.assert_array_equal(resumed.model.flat_parameters, full.model.flat_parameters)
    assert strip_time(h_res) == strip_time(h_full)
    assert len(full.losses) == full.step and resumed.losses == full.losses  # every step's
    for k in ("m_0", "v_0"):
        np.testing.assert_array_equal(resumed.opt.state_dict()[k], full.opt.state_dict()[k])


def test_same_seed_same_curve_other_seed_another(tmp_path):
    _, h1 = run(lm, tmp_path, "a")
    _, h2 = run(lm, tmp_path, "b")
    _, h3 = run(lambda: lm(seed=4), tmp_path, "c")
    assert strip_time(h1) == strip_time(h2)
    assert strip_time(h1) != strip_time(h3)


def test_training_lowers_the_validation_loss(tmp_path):
    t, h = run(lm, tmp_path, "a", epochs=6, lr=0.01)
    assert h[-1]["val_loss"] < h[0]["val_loss"] - 0.3
    # the best model went to `out`, and it is the best validation loss seen
    best = clstm.load(t.out)
    assert isinstance(best, clstm.Model) and best.vocab == t.model.vocab
    assert t.best_val == min(r["val_loss"] for r in h)


def test_early_stopping_keeps_the_best_model_and_stays_stopped(tmp_path):
    """patience=1: the second evaluation in a row without a new best stops
    the run; `out` holds the parameters of the best evaluation, and a resume
    of the stopped run trains no further."""
    task, model = lm()
    losses = iter([3.0, 2.0, 2.5, 2.6, 1.0, 1.0])  # best at the 2nd; stop after the 4th
    seen = []

    def evaluate(m):
        seen.append(m.flat_parameters.copy())
        return {"val_loss": next(losses)}

    task.evaluate = evaluate
    t = TR.Trainer(model, task, epochs=50, eval_every=7, patience=1, progress=False,
                   out=str(tmp_path / "a.st"), checkpoint=str(tmp_path / "a.ckpt"))
    h = t.fit()
    assert [r["val_loss"] for r in h] == [3.0, 2.0, 2.5, 2.6]
    assert t.step == h[-1]["step"] < 50 * task.n_batches and t.best_val == 2.0
    np.testing.assert_array_equal(clstm.load(t.out).flat_parameters, seen[1])
    task2, _ = lm()
    task2.evaluate = evaluate
    resumed = TR.Trainer.resume(t.checkpoint, task2, progress=False)
    resumed.fit()
    assert resumed.step == t.step and len(seen) == 4


def test_ctrl_c_checkpoints_and_resumes_exactly(tmp_path, monkeypatch):
    full, _ = run(lm, tmp_path, "full")
    task, model = lm()
    t = TR.Trainer(model, task, epochs=3, eval_every=7, progress=False,
                   out=str(tmp_path / "i.st"), checkpoint=str(tmp_path / "i.ckpt"),
                   log=str(tmp_path / "i.jsonl"), checkpoint_every=5)
    real_batch = task.batch
    calls = []

    def batch(k, order):  # a Ctrl-C arriving in the middle of step 11
        calls.append(k)
        if len(calls) == 11:
            signal.raise_signal(signal.SIGINT)
        return real_batch(k, order)

    monkeypatch.setattr(task, "batch", batch)
    with pytest.raises(TR.Interrupted, match="interrupted at step 11"):
        t.fit()
    monkeypatch.undo()
    task2, _ = lm()
    resumed = TR.Trainer.resume(str(tmp_path / "i.ckpt"), task2, progress=False)
    assert resumed.step == 11
    resumed.fit()
    np.testing.assert_array_equal(resumed.model.flat_parameters, full.model.flat_parameters)
    assert resumed.losses == full.losses


def test_losses_are_every_step_and_their_means_are_the_logs(tmp_path):
    """Trainer.losses: one training loss per step; each evaluation record's
    train_loss is the mean of the steps' losses since the one before."""
    t, h = run(lm, tmp_path, "a")
    assert len(t.losses) == t.step == h[-1]["step"] and np.isfinite(t.losses).all()
    log = [json.loads(line) for line in open(t.log)]
    assert [r["step"] for r in log] == [r["step"] for r in h]
    before = 0
    for r in log:
        np.testing.assert_allclose(np.mean(t.losses[before:r["step"]]), r["train_loss"],
                                   rtol=1e-12)
        before = r["step"]


def test_a_checkpoint_without_the_losses_still_resumes(tmp_path):
    """A checkpoint written before the per-step losses were kept (no "losses"
    array) resumes to the same end; the steps before it are NaN."""
    full, _ = run(lm, tmp_path, "full")
    part, _ = run(lm, tmp_path, "part", max_steps=10)
    ckpt = str(tmp_path / "part.ckpt")
    with np.load(ckpt) as z:
        arrays = {k: z[k] for k in z.files}
    assert arrays.pop("losses").tolist() == full.losses[:10]
    with open(ckpt, "wb") as f:  # the old format: the same file less that array
        np.savez(f, **arrays)
    task, _ = lm()
    resumed = TR.Trainer.resume(ckpt, task, progress=False)
    assert resumed.step == 10 and len(resumed.losses) == 10 and np.isnan(resumed.losses).all()
    resumed.fit()
    np.testing.assert_array_equal(resumed.model.flat_parameters, full.model.flat_parameters)
    assert resumed.losses[10:] == full.losses[10:] and len(resumed.losses) == full.step


def test_verbose_and_on_evaluation(tmp_path, capsys):
    """verbose=False: nothing printed (the samples neither); on_evaluation
    gets each record, the history's."""
    got = []
    t, h = run(lm, tmp_path, "q", verbose=False, on_evaluation=got.append, sample_every=5)
    assert capsys.readouterr() == ("", "")
    assert got == h and len(h) >= 2
    run(lm, tmp_path, "v", sample_every=5)
    out = capsys.readouterr().out
    assert "--- sample at step 5" in out and "step %d  epoch" % h[0]["step"] in out


def test_non_finite_loss_stops_and_keeps_the_last_checkpoint(tmp_path):
    task, model = lm()
    ckpt = str(tmp_path / "n.ckpt")
    t = TR.Trainer(model, task, epochs=1, progress=False, checkpoint=ckpt,
                   out=str(tmp_path / "n.st"), checkpoint_every=3, eval_every=0)
    t.fit(max_steps=3)
    before = open(ckpt, "rb").read()
    model.flat_parameters[:] = np.nan  # what a diverged run looks like
    with pytest.raises(TR.NonFiniteLoss, match="training loss became nan at step 4"):
        t.fit()
    assert open(ckpt, "rb").read() == before
    m, _, meta = TR.load_checkpoint(ckpt)
    assert meta["step"] == 3 and np.isfinite(m.flat_parameters).all()


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    task, model = lm()
    ckpt = tmp_path / "a.ckpt"
    t = TR.Trainer(model, task, epochs=1, progress=False, checkpoint=str(ckpt))
    t.save_checkpoint()
    before = ckpt.read_bytes()

    def broken(f, **arrays):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="No space"):
        t.save_checkpoint()
    assert ckpt.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["a.ckpt"]  # no temporary file left


def test_resume_refuses_other_data(tmp_path):
    t, _ = run(lm, tmp_path, "a", max_steps=4)
    stream = D.TextStream(TEXT * 2)
    with pytest.raises(D.DataError, match="data differ"):
        TR.Trainer.resume(t.checkpoint, TR.LanguageModelTask(stream, 4, 16))


@pytest.mark.parametrize("content,why", [
    (b"", "not a clstm checkpoint .the file is empty"),
    (b"not a zip", "not a clstm checkpoint .not an .npz archive"),
    (b"PK\x03\x04garbage", "a truncated or corrupted checkpoint"),
    (b"\x10\0\0\0\0\0\0\0{}" + b" " * 14, "is a model file, not a checkpoint")])
def test_bad_checkpoint_is_a_clear_error(tmp_path, content, why):
    p = tmp_path / "bad.ckpt"
    p.write_bytes(content)
    with pytest.raises(D.DataError, match=why):
        TR.load_checkpoint(str(p))


@pytest.mark.parametrize("meta,why", [
    ([1], "its meta is a JSON list, not an object"),
    ({"format": None}, "format None"),
    ("lacks", "its meta lacks step, epoch")])
def test_checkpoint_with_bad_meta_is_a_clear_error(tmp_path, meta, why):
    import json
    from clstm import checkpoints
    if meta == "lacks":
        meta = {"format": checkpoints.CHECKPOINT_FORMAT}
    p = tmp_path / "bad.ckpt.npz"
    np.savez(p, model=np.frombuffer(clstm.save_bytes(clstm.LSTM(2, 3, seed=0)), np.uint8),
             meta=np.frombuffer(json.dumps(meta).encode("utf-8"), np.uint8))
    with pytest.raises(D.DataError, match=why):
        TR.load_checkpoint(str(p))


def test_lr_schedules():
    s = clstm.optim.LRSchedule(1.0, "cosine", total_steps=110, warmup=10)
    assert s(1) == pytest.approx(0.1) and s(10) == pytest.approx(1.0)
    assert s(60) == pytest.approx(0.5) and s(110) == pytest.approx(0.0, abs=1e-12)
    st = clstm.optim.LRSchedule(1.0, "step", step_size=10, gamma=0.5)
    assert [st(i) for i in (1, 10, 11, 21)] == [1.0, 1.0, 0.5, 0.25]
    assert clstm.optim.LRSchedule(0.3)(1000) == 0.3
    with pytest.raises(ValueError, match="kind"):
        clstm.optim.LRSchedule(1.0, "linear")


def test_cosine_follows_the_further_of_steps_and_clock():
    s = clstm.optim.LRSchedule(1.0, "cosine", total_steps=100)
    cos = lambda f: 0.5 * (1 + np.cos(np.pi * f))  # noqa: E731
    assert s(10, progress=0.5) == pytest.approx(cos(0.5))  # the clock is ahead
    assert s(60, progress=0.5) == pytest.approx(cos(0.6))  # the steps are
    assert s(10, progress=2.0) == pytest.approx(0.0, abs=1e-12)
    assert clstm.optim.LRSchedule(0.3)(5, progress=0.9) == 0.3  # constant: no anneal
    st = clstm.optim.LRSchedule(1.0, "step", step_size=10, gamma=0.5)
    assert st(11, progress=0.99) == 0.5  # step decay counts steps only


class FakeClock:
    """time for clstm.trainer: one second per training batch, nothing else."""
    def __init__(self):
        self.t = 0.0

    def perf_counter(self):
        return self.t


def clocked(task, clock, lrs, trainer):
    real = task.batch

    def batch(k, order):
        if trainer:
            lrs.append(trainer[0].opt.lr)  # the rate the previous step used
        clock.t += 1.0
        return real(k, order)
    task.batch = batch


def test_max_seconds_anneals_by_the_clock_and_evaluates_the_end(tmp_path, monkeypatch):
    import types
    from clstm import trainer as trainer_module
    clock = FakeClock()
    monkeypatch.setattr(trainer_module, "time", types.SimpleNamespace(
        perf_counter=clock.perf_counter))
    task, model = lm()
    lrs, holder = [], []
    clocked(task, clock, lrs, holder)
    t = TR.Trainer(model, task, epochs=3, eval_every=1000, schedule="cosine", lr=0.01,
                   progress=False, out=str(tmp_path / "c.st"),
                   checkpoint=str(tmp_path / "c.ckpt"), log=str(tmp_path / "c.jsonl"))
    holder.append(t)
    assert t.total_steps > 40
    t.fit(max_seconds=20)
    assert t.step == 19  # a 20th step (1 s, as the last) would end past the budget
    lrs.append(t.opt.lr)
    # step n ran at elapsed n seconds: the cosine at n / 20 of the run, far
    # ahead of the steps' n / total
    want = [0.005 * (1 + np.cos(np.pi * n / 20)) for n in range(1, 20)]
    np.testing.assert_allclose(lrs[1:], want, rtol=1e-12, atol=1e-15)
    assert t.history[-1]["step"] == 19  # the annealed end was evaluated
    assert os.path.exists(str(tmp_path / "c.st"))
    # a resume spends what is left of the schedule: none here, so the rate
    # stays at its end and never climbs back
    task2, _ = lm()
    resumed = TR.Trainer.resume(str(tmp_path / "c.ckpt"), task2, progress=False)
    assert resumed._progress == pytest.approx(19 / 20)
    resumed.fit(max_steps=22)  # no clock: the steps are far behind 19 / 20
    assert resumed.opt.lr == pytest.approx(0.005 * (1 + np.cos(np.pi * 19 / 20)))


def test_a_budget_that_never_binds_changes_nothing(tmp_path):
    a, _ = run(lm, tmp_path, "a", schedule="cosine")
    task, model = lm()
    b = TR.Trainer(model, task, epochs=3, eval_every=7, progress=False, schedule="cosine",
                   out=str(tmp_path / "b.st"), checkpoint=str(tmp_path / "b.ckpt"),
                   log=str(tmp_path / "b.jsonl"), checkpoint_every=5)
    b.fit(max_seconds=1e6)
    np.testing.assert_array_equal(a.model.flat_parameters, b.model.flat_parameters)


def test_clip_grad_norm_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    g = [rng.standard_normal(7), rng.standard_normal(5)]
    tg = [torch.tensor(a, requires_grad=True) for a in g]
    for t, a in zip(tg, g):
        t.grad = torch.tensor(a.copy())
    n_t = torch.nn.utils.clip_grad_norm_(tg, 1.5)
    n = clstm.optim.clip_grad_norm(g, 1.5)
    assert n == pytest.approx(float(n_t))
    for t, a in zip(tg, g):
        np.testing.assert_allclose(a, t.grad.numpy(), rtol=1e-12)
    assert np.isnan(clstm.optim.clip_grad_norm([np.array([np.nan, 1.0])], 1.0))


def test_generate_text_is_seeded_and_greedy_is_argmax():
    task, model = lm()
    a = TR.generate_text(model, "it was", 30, 1.0, seed=5)
    assert a == TR.generate_text(model, "it was", 30, 1.0, seed=5)
    assert a.startswith("it was") and len(a) == 36
    g = TR.generate_text(model, "it", 5, 0.0)
    state = model.initial_state(1)
    out, state = model.forward(model.encode("it")[:, None], state, train=False)
    text, logits = "it", out[-1, 0]
    for _ in range(5):
        i = int(np.argmax(logits))
        text += model.vocab[i]
        logits, state = model.step(np.array([i]), state)
        logits = logits[0]
    assert g == text
    with pytest.raises(ValueError, match="not in the model's vocabulary"):
        TR.generate_text(model, "itZ", 5)


# ------------------------------------------ the split modules and their API
def test_train_module_keeps_its_names():
    from clstm import checkpoints, sampling, tasks, trainer
    assert TR.Trainer is trainer.Trainer and TR.load_checkpoint is checkpoints.load_checkpoint
    assert TR.LanguageModelTask is tasks.LanguageModelTask
    assert TR.SequenceTask is tasks.SequenceTask and TR.generate_text is sampling.generate_text
    for name in ("TrainingStopped", "NonFiniteLoss", "Interrupted"):
        assert getattr(TR, name) is getattr(trainer, name)
    assert issubclass(TR.Interrupted, TR.TrainingStopped)


def test_checkpoint_holds_the_model_file_bytes(tmp_path):
    """The checkpoint's "model" entry is clstm.save's file, byte for byte
    (moved through memory, no temporary file), and loads back."""
    task, model = lm()
    t = TR.Trainer(model, task, epochs=1, progress=False, checkpoint=str(tmp_path / "c.ckpt"))
    t.fit(max_steps=2)
    clstm.save(model, tmp_path / "m.safetensors")
    with np.load(tmp_path / "c.ckpt") as z:
        assert z["model"].tobytes() == (tmp_path / "m.safetensors").read_bytes()
    m, _, meta = TR.load_checkpoint(str(tmp_path / "c.ckpt"))
    np.testing.assert_array_equal(m.flat_parameters, model.flat_parameters)
    assert meta["format"] == TR.CHECKPOINT_FORMAT and meta["step"] == 2
    assert sorted(os.listdir(tmp_path)) == ["c.ckpt", "m.safetensors"]


def test_checkpoint_with_a_bad_model_is_a_clear_error(tmp_path):
    task, model = lm()
    t = TR.Trainer(model, task, epochs=1, progress=False, checkpoint=str(tmp_path / "c.ckpt"))
    t.save_checkpoint()
    with np.load(tmp_path / "c.ckpt") as z:
        arrays = {k: z[k] for k in z.files}
    arrays["model"] = arrays["model"][:-4]
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(D.DataError, match="the checkpoint's model is invalid .not a valid clstm"):
        TR.load_checkpoint(str(tmp_path / "bad.npz"))


def test_trainer_writes_the_task_metadata(tmp_path):
    task, model = lm()
    TR.Trainer(model, task, progress=False)
    assert dict(model.metadata) == {"task": "char"}
    task, model = classifier()
    TR.Trainer(model, task, progress=False)
    assert dict(model.metadata) == {"task": "classify", "classes": "2"}


def forecast_task(**kw):
    t = np.arange(120)
    return TR.ForecastTask(np.sin(0.3 * t) * 3 + 5, window=8, horizon=2, **kw)


def test_forecast_task_metadata_round_trip(tmp_path):
    task = forecast_task(column="level", batch_size=16)
    assert len(task.train) + len(task.val) == 120 - 8 - 2 + 1 and len(task.val) == 11
    model = clstm.Model(1, 6, output_size=2, seed=0)
    TR.Trainer(model, task, epochs=1, progress=False, out=str(tmp_path / "f.st")).fit()
    loaded = clstm.load(tmp_path / "f.st")
    # the standardization of the values the training windows hold (not the validation's)
    seen = (np.sin(0.3 * np.arange(120)) * 3 + 5)[:len(task.train) + 8 + 2 - 1]
    mean, std = float(np.mean(seen)), float(np.std(seen))
    assert (task.mean, task.std) == pytest.approx((mean, std), rel=1e-12)
    assert dict(loaded.metadata) == {"task": "forecast", "window": "8", "horizon": "2",
                                     "input_mean": "[%r]" % task.mean,
                                     "input_std": "[%r]" % task.std,
                                     "output_mean": "[%r, %r]" % (task.mean, task.mean),
                                     "output_std": "[%r, %r]" % (task.std, task.std),
                                     "column": "level"}
    s = TR.ForecastTask.settings(loaded)
    assert s == (8, 2, task.mean, task.std, "level")
    series = np.sin(0.3 * np.arange(40)) * 3 + 5
    assert TR.ForecastTask.forecast(loaded, series, s).shape == (2,)
    n, mse, persist = TR.ForecastTask.one_step_errors(loaded, series, s)
    assert n == 40 - 8 - 2 + 1 and np.isfinite(mse) and persist > 0
    assert TR.ForecastTask.one_step_errors(loaded, series[:10], s) is None
    assert TR.ForecastTask.settings(clstm.load(tmp_path / "f.st")).column == "level"
    assert "column" not in forecast_task().model_metadata()


@pytest.mark.parametrize("kw,error,match", [
    (dict(window=0), ValueError, "window: expected >= 1"),
    (dict(horizon=1.5), TypeError, "horizon: expected an int"),
    (dict(val_fraction=1.0), ValueError, r"val_fraction: expected a number in \[0, 1\)"),
    (dict(column=3), TypeError, "column: expected a str"),
    (dict(series=np.zeros((5, 2))), ValueError, "series: expected a 1-D array"),
    (dict(series=np.zeros(9)), D.DataError, "too short"),
    (dict(window=True), TypeError, "window: expected an int, got bool"),
    (dict(batch_size=0), ValueError, "batch_size: expected >= 1"),
    (dict(val_fraction="x"), TypeError, r"val_fraction: expected a number in \[0, 1\)"),
    (dict(series=["a"] * 50), TypeError, "series: expected real numbers"),
    (dict(series=np.r_[np.arange(20.0), np.nan, np.arange(29.0)]), ValueError,
     "series: expected finite values, got NaN or Inf at index 20")])
def test_forecast_task_bad_arguments(kw, error, match):
    args = dict(series=np.arange(50.0), window=8, horizon=2)
    args.update(kw)
    with pytest.raises(error, match=match):
        TR.ForecastTask(args.pop("series"), **args)


def test_forecast_settings_errors():
    model = clstm.Model(1, 4, output_size=1, seed=0)
    with pytest.raises(ValueError, match="not a forecasting model .its task is unknown"):
        TR.ForecastTask.settings(model)
    model.metadata.update(task="forecast", window="8", horizon="x")
    with pytest.raises(ValueError, match="'horizon' is not a number: 'x'"):
        TR.ForecastTask.settings(model)
    model.metadata["horizon"] = "1"
    with pytest.raises(ValueError, match="'mean' is missing"):
        TR.ForecastTask.settings(model)
    model.metadata.update(mean="0.5", std="2")
    s = TR.ForecastTask.settings(model)
    with pytest.raises(ValueError, match="series: expected at least the window's 8 values"):
        TR.ForecastTask.forecast(model, np.arange(7.0), s)
    for key, bad in (("window", "0"), ("horizon", "0"), ("mean", "nan"), ("std", "0"),
                     ("std", "-1"), ("std", "inf")):
        model.metadata.update(window="8", horizon="1", mean="0.5", std="2")
        model.metadata[key] = bad
        with pytest.raises(ValueError, match="'%s' is out of range: '%s'" % (key, bad)):
            TR.ForecastTask.settings(model)


def test_model_public_api_for_the_trainer():
    """config (a copy), next_dropout_seed and dropout_rng_state: what the
    trainer and the CLI use instead of the model's privates."""
    model = clstm.Model(3, 5, 2, output_size=2, dropout=0.5, seed=4)
    c = model.config
    assert c["hidden_size"] == 5 and c["num_layers"] == 2 and c["output_size"] == 2
    c["hidden_size"] = 99
    assert model.config["hidden_size"] == 5
    state = model.dropout_rng_state
    a = [model.next_dropout_seed() for _ in range(3)]
    assert len(set(a)) == 3 and all(0 < s < 2**64 for s in a)
    model.dropout_rng_state = state
    assert [model.next_dropout_seed() for _ in range(3)] == a
    # the stream is the one forward(train=True) draws from
    model.dropout_rng_state = state
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    y1, _ = model.forward(x, train=True)
    y2, _ = model.forward(x, train=True, dropout_seed=a[0])
    np.testing.assert_array_equal(y1, y2)
    y3, _ = model.forward(x, train=True, dropout_seed=a[1])  # dropout is on: seeds matter
    assert not np.array_equal(y1, y3)
    with pytest.raises(ValueError, match="dropout_rng_state"):
        model.dropout_rng_state = {"bit_generator": "nope"}
    assert clstm.Model(3, 5, 2, seed=4).next_dropout_seed() == 0  # no dropout: no draw
