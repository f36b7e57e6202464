"""One-step forecasting of a real series: yearly sunspot numbers 1700-2008
(statsmodels' sunspots dataset: pip install 'pyclstm[bench]'), against
persistence (tomorrow = today) and a linear autoregressive model AR(p) fit
by least squares. The first 80% of the years train (the last 10% of those
validate for early stopping), the last 20% test; every model predicts each
test year from the true values before it. Errors are RMSE in sunspot
numbers.

    python bench/sunspots.py [--window 20] [--hidden 32] [--threads 2]
"""
import argparse
import json
import time

import numpy as np

import clstm
from clstm import data as D
from clstm import train as TR


def load_series():
    try:
        import statsmodels.api as sm
    except ImportError:
        return None
    return sm.datasets.sunspots.load_pandas().data["SUNACTIVITY"].to_numpy(np.float64)


def ar_forecast(train, series, start, p):
    """AR(p) with intercept, fit on `train`; one-step forecasts for
    series[start:]."""
    X = np.stack([train[i:len(train) - p + i] for i in range(p)], axis=1)
    A = np.hstack([X, np.ones((len(X), 1))])
    coef, *_ = np.linalg.lstsq(A, train[p:], rcond=None)
    preds = [series[t - p:t] @ coef[:-1] + coef[-1] for t in range(start, len(series))]
    return np.array(preds)


def rmse(a, b):
    return float(np.sqrt(np.mean((a - b) ** 2)))


def main():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--window", type=int, default=20)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--epochs", type=int, default=300)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seeds", type=int, default=5, help="LSTMs trained (median reported)")
    p.add_argument("--json")
    a = p.parse_args()
    series = load_series()
    if series is None:
        print("skipped: statsmodels is not installed (pip install 'pyclstm[bench]')")
        return 0
    clstm.set_num_threads(a.threads)
    n = len(series)
    start = int(n * 0.8)
    train = series[:start]
    mean, std = train.mean(), train.std()
    z = (series - mean) / std
    W = a.window
    actual = series[start:]
    persistence = series[start - 1:-1]
    results = {"persistence": rmse(persistence, actual)}
    for order in (2, 9, W):
        results["AR(%d)" % order] = rmse(ar_forecast(train, series, start, order), actual)

    seqs = D.windows(z[:start], W, 1)
    n_val = max(1, len(seqs) // 10)
    tr = seqs.subset(np.arange(len(seqs) - n_val))
    va = seqs.subset(np.arange(len(seqs) - n_val, len(seqs)))
    test = D.windows(z[start - W:], W, 1)
    lstm_rmse, walls = [], []
    for seed in range(a.seeds):
        task = TR.SequenceTask(tr, va, batch_size=32, kind="regress")
        model = clstm.Model(1, a.hidden, output_size=1, seed=seed, dtype=np.float64)
        t0 = time.perf_counter()
        trainer = TR.Trainer(model, task, lr=a.lr, epochs=a.epochs, patience=30,
                             progress=False, seed=seed, clip=1.0, out="/tmp/sunspots.st")
        trainer.fit()
        walls.append(time.perf_counter() - t0)
        best = clstm.load("/tmp/sunspots.st")
        pred = task.predict(best, test)[:, 0] * std + mean
        lstm_rmse.append(rmse(pred, actual))
    results["clstm LSTM (median of %d seeds)" % a.seeds] = float(np.median(lstm_rmse))
    print("one-step RMSE on %d test years (%d-%d), window %d:"
          % (len(actual), 1700 + start, 1700 + n - 1, W))
    for k, v in results.items():
        print("  %-32s %7.2f" % (k, v))
    print("  LSTM per seed: %s; training %.1f s each (median)"
          % (", ".join("%.2f" % v for v in lstm_rmse), np.median(walls)))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(dict(results, per_seed=lstm_rmse, train_s=float(np.median(walls))), f,
                      indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
