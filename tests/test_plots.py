"""clstm.plots: the data each picture shows (against closed forms written
here), and that the drawings are written as PNG files in the odd cases (a
run with no steps, a run resumed from a checkpoint without the per-step
losses, a forecast of a short series)."""
import math

import numpy as np
import pytest

from clstm import plots


def weighted_means(values, span):
    """The smoothing as its closed form: at step t, the mean of all the
    values weighted (1 - alpha)^distance, NaN values left out (distance:
    how many known values lie between, counting the other end)."""
    alpha = 2.0 / (span + 1)
    known = [x for x in values if not math.isnan(x)]
    out, j = [], 0
    for v in values:
        if math.isnan(v):
            out.append(math.nan)
            continue
        w = [(1 - alpha) ** abs(i - j) for i in range(len(known))]
        out.append(sum(wi * x for wi, x in zip(w, known)) / sum(w))
        j += 1
    return out


@pytest.mark.parametrize("span", [1, 2, 7, 100])
def test_smooth_is_the_weighted_mean_of_the_values_around(span):
    rng = np.random.default_rng(span)
    values = list(rng.standard_normal(60) + 3)
    values[0:3] = [math.nan] * 3  # a resumed run's unknown first steps
    values[20] = math.nan
    got = plots.smooth(values, span)
    want = weighted_means(values, span)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    assert np.isnan(got[[0, 1, 2, 20]]).all() and np.isfinite(np.delete(got, [0, 1, 2, 20])).all()
    if span == 1:
        np.testing.assert_array_equal(got, values)  # no smoothing


def test_smoothing_span():
    assert [plots.smoothing_span(n) for n in (0, 1, 39, 40, 150, 1310, 2000, 10 ** 6)] == [
        1, 1, 1, 5, 5, 33, 50, 50]


def records(val_losses, **metrics):
    recs = []
    for i, v in enumerate(val_losses):
        r = dict(step=10 * (i + 1), epoch=i + 1.0, train_loss=1.0, lr=0.1, time=0.0,
                 val_loss=v)
        r.update({k: vs[i] for k, vs in metrics.items()})
        recs.append(r)
    return recs


def test_training_curves():
    losses = np.linspace(3, 1, 30)  # too few steps to smooth
    c = plots.training_curves(losses, records([2.5, None, 1.2], val_accuracy=[0.5, 0.7, 0.9],
                                               val_cer=[None, 0.25, 0.125]))
    assert c["steps"].tolist() == list(range(1, 31)) and c["loss"].tolist() == losses.tolist()
    assert c["span"] == 1 and c["smoothed"].tolist() == losses.tolist()
    assert c["val_steps"].tolist() == [10, 30] and c["val_loss"].tolist() == [2.5, 1.2]
    assert list(c["metrics"]) == ["accuracy", "character error rate"]
    steps, pct = c["metrics"]["accuracy"]
    assert steps.tolist() == [10, 20, 30] and np.allclose(pct, [50, 70, 90])
    steps, pct = c["metrics"]["character error rate"]
    assert steps.tolist() == [20, 30] and pct.tolist() == [25.0, 12.5]
    assert not c["log_scale"]  # 3 to 1: a linear scale


@pytest.mark.parametrize("low, log", [(0.2, False), (0.05, True), (0.0, False), (-1.0, False)])
def test_log_scale_where_the_losses_span_decades(low, log):
    """A log scale where what is drawn spans more than 30x, never for a loss
    at or below 0."""
    losses = np.geomspace(2.0, max(low, 1e-3), 50) if low > 0 else np.linspace(2.0, low, 50)
    c = plots.training_curves(losses, records([2.0, max(low, 0.0) + 0.01]))
    assert c["log_scale"] is log


def test_training_curves_of_no_steps_and_unknown_steps():
    c = plots.training_curves([], [])
    assert len(c["steps"]) == len(c["loss"]) == 0 and c["metrics"] == {}
    c = plots.training_curves([math.nan] * 5 + [2.0, 1.0], records([1.5]))
    assert np.isnan(c["smoothed"][:5]).all() and c["smoothed"][5:].tolist() == [2.0, 1.0]


def test_forecast_curves():
    series = np.arange(500, dtype=float) ** 0.5
    c = plots.forecast_curves(series, [30.0, 31.0, 29.5], window=20)
    assert c["t"].tolist() == list(range(500)) and c["series"].tolist() == series.tolist()
    assert c["future_t"].tolist() == [500, 501, 502]
    assert c["forecast"].tolist() == [30.0, 31.0, 29.5]
    assert c["persistence"].tolist() == [series[-1]] * 3
    assert c["window_start"] == 480
    assert c["zoom_start"] == 500 - 60  # max(3 x 20, 10 x 3, 60) values close up
    short = plots.forecast_curves(series[:80], [1.0], window=20)
    assert short["zoom_start"] == 0 and short["window_start"] == 60  # all of it, no close-up
    long_window = plots.forecast_curves(series, [1.0], window=100)
    assert long_window["zoom_start"] == 200


def _png(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data.endswith(b"IEND\xaeB`\x82")
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.parametrize("case", ["empty", "one_step", "resumed_old", "classifier"])
def test_draw_training_writes_a_png(case, tmp_path):
    pytest.importorskip("matplotlib")
    losses, history = {
        "empty": ([], []),
        "one_step": ([2.0], records([1.9])[:1]),
        "resumed_old": ([math.nan] * 20 + list(np.linspace(2, 1, 20)), records([2, 1.5, 1.2])),
        "classifier": (list(np.linspace(0.7, 0.1, 40)), records([0.6, 0.4, 0.2],
                                                               val_accuracy=[0.6, 0.8, 0.9])),
    }[case]
    path = tmp_path / "loss.png"
    plots.draw_training(str(path), plots.training_curves(losses, history), title="t",
                        loss_label="loss")
    w, h = _png(path)
    assert w > 300 and h > 200
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loss.png"]  # no temporary file


@pytest.mark.parametrize("n", [25, 500])
def test_draw_forecast_writes_a_png(n, tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "f.png"
    series = np.sin(np.arange(n) / 5.0)
    plots.draw_forecast(str(path), plots.forecast_curves(series, [0.1, 0.2], 20), column="y")
    w, h = _png(path)
    assert w > 300 and h > 200
