"""The pictures `clstm train --plot` and `clstm forecast --plot` write (PNG,
needs matplotlib: pip install 'pyclstm[plot]').

Each picture has two halves: a function that returns the data it shows
(training_curves, forecast_curves: plain NumPy, tested against the log and
the forecast) and one that draws that data (draw_training, draw_forecast:
matplotlib's Agg backend, written atomically).
"""
import math
import textwrap

import numpy as np

from clstm.io import atomic_write

__all__ = ["smooth", "smoothing_span", "training_curves", "forecast_curves", "draw_training",
           "draw_forecast"]

# validation metrics drawn in the second panel, in percent: (record key, label)
METRICS = (("val_accuracy", "accuracy"), ("val_cer", "character error rate"),
           ("val_ter", "token error rate"), ("val_ser", "sequence error rate"))


def smoothing_span(n):
    """The smoothing's span for a run of n steps: none (1) under 40 steps,
    else about n / 40 steps, 5 to 50."""
    return 1 if n < 40 else int(min(50, max(5, round(n / 40))))


def smooth(values, span):
    """values smoothed by an exponential kernel on both sides: each point is
    the mean of all the values weighted (1 - alpha)^distance, alpha = 2 /
    (span + 1), distance in steps either way. Unlike a moving average that
    looks back only (TensorBoard's), it does not lag behind a falling loss;
    near the ends it leans on the side it has. NaN values are left out as if
    absent (their points are NaN; they add no distance). O(n): a forward and
    a backward pass."""
    values = np.asarray(values, dtype=np.float64)
    known = ~np.isnan(values)
    x = values[known]
    decay = 1.0 - 2.0 / (span + 1)

    def running(seq):  # sum over i <= t of decay^(t - i) seq[i], for every t
        out, acc = np.empty(len(seq)), 0.0
        for i, v in enumerate(seq):
            acc = decay * acc + v
            out[i] = acc
        return out

    ones = np.ones(len(x))
    total = running(x) + running(x[::-1])[::-1] - x
    weight = running(ones) + running(ones[::-1])[::-1] - ones
    out = np.full(values.shape, np.nan)
    out[known] = total / weight
    return out


def training_curves(losses, history):
    """What `clstm train --plot` draws, from a Trainer's losses (every step's
    training loss, NaN where unknown) and history (its evaluation records):
    a dict of
        steps      1..n, the steps of `losses`
        loss       every step's training loss
        span, smoothed   its smoothed curve (smooth) and the smoothing's span
        val_steps, val_loss   the evaluations that have a validation loss
        metrics    {label: (steps, percent)} for the validation metrics the
                   records hold (accuracy, error rates), in percent
        log_scale  True where the losses drawn (each step's, their average and
                   the validation losses) span more than 30x and are all > 0
    """
    loss = np.asarray(losses, dtype=np.float64).reshape(-1)
    span = smoothing_span(len(loss))
    smoothed = smooth(loss, span)
    val = [(r["step"], r["val_loss"]) for r in history if r.get("val_loss") is not None]
    val_steps = np.array([s for s, _ in val], dtype=np.int64)
    val_loss = np.array([v for _, v in val], dtype=np.float64)
    metrics = {}
    for key, label in METRICS:
        pts = [(r["step"], 100.0 * r[key]) for r in history if r.get(key) is not None]
        if pts:
            metrics[label] = (np.array([s for s, _ in pts], dtype=np.int64),
                              np.array([v for _, v in pts], dtype=np.float64))
    drawn = np.concatenate([loss, smoothed, val_loss])
    drawn = drawn[np.isfinite(drawn)]
    log_scale = bool(drawn.size and drawn.min() > 0 and drawn.max() / drawn.min() > 30)
    return dict(steps=np.arange(1, len(loss) + 1), loss=loss, span=span, smoothed=smoothed,
                val_steps=val_steps, val_loss=val_loss, metrics=metrics, log_scale=log_scale)


def forecast_curves(series, forecast, window):
    """What `clstm forecast --plot` draws: a dict of
        t, series          the observed values and their positions 0..n-1
        future_t, forecast the model's forecast, at n..n+h-1
        persistence        the baseline: the last observed value carried forward
        window_start       where the model's input window (its last `window`
                           values) begins
        zoom_start         where the close-up panel begins (0: no close-up, the
                           whole series is shown at once): the last
                           max(3 x window, 10 x horizon, 60) values"""
    series = np.asarray(series, dtype=np.float64).reshape(-1)
    forecast = np.asarray(forecast, dtype=np.float64).reshape(-1)
    n, h = len(series), len(forecast)
    context = max(3 * window, 10 * h, 60)
    return dict(t=np.arange(n), series=series, future_t=np.arange(n, n + h), forecast=forecast,
                persistence=np.full(h, series[-1]), window_start=max(0, n - window),
                zoom_start=max(0, n - context) if n > context + context // 2 else 0)


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _integer_ticks(ax):
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10]))


def _legend(fig, axes):
    """One legend for the lines of these axes, below them (never over the data)."""
    handles, labels = [], []
    for ax in axes.flat:
        h, lab = ax.get_legend_handles_labels()
        handles += h
        labels += lab
    fig.legend(handles, labels, loc="outside lower center", ncol=2, fontsize="small",
               frameon=False)


def _save(fig, path):
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110), mode=0o644)


def draw_training(path, curves, title=None, loss_label="loss"):
    """Write a PNG of training_curves' data to path: the training loss of each
    step (faint), its smoothed curve and the validation loss (markers); the
    validation metrics in a second panel below when there are any."""
    plt = _pyplot()
    c = curves
    two = bool(c["metrics"])
    fig, axes = plt.subplots(2 if two else 1, 1, sharex=True, squeeze=False,
                             figsize=(8, 6.5 if two else 5), layout="constrained",
                             gridspec_kw=dict(height_ratios=[2, 1]) if two else None)
    ax = axes[0, 0]
    try:
        n = len(c["loss"])
        few = n <= 60  # few points: mark each, or a short run is an empty chart
        if n and c["span"] == 1:  # too few steps to smooth: the losses themselves
            ax.plot(c["steps"], c["loss"], color="C0", lw=1.5, marker="." if few else None,
                    ms=6, label="training loss, each step")
        elif n:
            ax.plot(c["steps"], c["loss"], color="C0", alpha=0.3, lw=0.8,
                    marker="." if few else None, ms=3, label="training loss, each step")
            ax.plot(c["steps"], c["smoothed"], color="C0", lw=2,
                    label="training loss, smoothed (exponential weights, span %d steps)"
                    % c["span"])
        if len(c["val_steps"]):
            ax.plot(c["val_steps"], c["val_loss"], color="C3", lw=1.2, marker="o", ms=5,
                    label="validation loss")
        if c["log_scale"]:
            ax.set_yscale("log")
        ax.set_ylabel(loss_label + (", log scale" if c["log_scale"] else ""))
        ax.grid(True, which="major", alpha=0.3)
        last = max([n] + [int(s[-1]) for s, _ in c["metrics"].values()]
                   + [int(s) for s in c["val_steps"][-1:]])
        ax.set_xlim(0, max(1, last) * 1.02)
        if title:
            ax.set_title(textwrap.fill(title, 90), fontsize="medium")
        if two:
            m = axes[1, 0]
            for i, (label, (steps, pct)) in enumerate(c["metrics"].items()):
                m.plot(steps, pct, color=("C2", "C4", "C5", "C6")[i], marker="o", ms=5, lw=1.2,
                       label="validation " + label)
            m.set_ylabel("validation %s (%%)" % next(iter(c["metrics"]))
                         if len(c["metrics"]) == 1 else "validation (%)")
            m.grid(True, alpha=0.3)
        axes[-1, 0].set_xlabel("training step")
        _integer_ticks(axes[-1, 0])
        _legend(fig, axes)
        _save(fig, path)
    finally:
        plt.close(fig)


def draw_forecast(path, curves, column=None, title=None):
    """Write a PNG of forecast_curves' data to path: the series, the model's
    input window shaded, the forecast and the persistence baseline; a long
    series gets a second panel, a close-up of its end."""
    plt = _pyplot()
    c = curves
    zoom = c["zoom_start"] > 0
    fig, axes = plt.subplots(2 if zoom else 1, 1, squeeze=False, figsize=(8, 7 if zoom else 5),
                             layout="constrained",
                             gridspec_kw=dict(height_ratios=[1, 1.6]) if zoom else None)
    n = len(c["series"])
    try:
        if zoom:
            top = axes[0, 0]
            top.plot(c["t"], c["series"], color="C0", lw=0.8, label="series")
            top.axvspan(c["zoom_start"], n - 1 + len(c["forecast"]), color="0.85")
            top.set_ylabel(column or "value")
            top.set_title(textwrap.fill(title or "the whole series (%d values)" % n, 90),
                          fontsize="medium")
            top.grid(True, alpha=0.3)
        ax = axes[-1, 0]
        lo = c["zoom_start"]
        ax.plot(c["t"][lo:], c["series"][lo:], color="C0", lw=1.2,
                marker="." if n - lo <= 80 else None, label="series (observed)")
        ax.axvspan(c["window_start"], n - 1, color="C0", alpha=0.08,
                   label="the model's input window (%d values)" % (n - c["window_start"]))
        # both lines start at the last observed value, so they read as its continuation
        t0, y0 = n - 1, c["series"][-1]
        ax.plot(np.r_[t0, c["future_t"]], np.r_[y0, c["persistence"]], color="0.4", lw=1.5,
                ls="--", marker="s", ms=5, markevery=list(range(1, len(c["forecast"]) + 1)),
                label="persistence: the last value carried forward")
        ax.plot(np.r_[t0, c["future_t"]], np.r_[y0, c["forecast"]], color="C3", lw=2,
                marker="o", ms=6, markevery=list(range(1, len(c["forecast"]) + 1)),
                label="forecast (%d step%s)" % (len(c["forecast"]),
                                                "s" * (len(c["forecast"]) > 1)))
        ax.axvline(t0, color="0.5", lw=0.8, ls=":")
        ax.set_xlabel("position in the series (row of the column)")
        ax.set_ylabel(column or "value")
        ax.grid(True, alpha=0.3)
        if not zoom and title:
            ax.set_title(textwrap.fill(title, 90), fontsize="medium")
        elif zoom:
            ax.set_title("its last %d values (shaded above) and the forecast" % (n - lo),
                         fontsize="medium")
        _legend(fig, axes[-1:])
        _save(fig, path)
    finally:
        plt.close(fig)
