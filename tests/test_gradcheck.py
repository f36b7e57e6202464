"""Central finite differences in float64, through the Python API, over every
element of the parameters, x, h0 and c0, against backward's gradients.

loss = sum(y*Wy) + sum(hT*Wh) + sum(cT*Wc) with fixed random W's, so the
upstream gradients are exactly (Wy, (Wh, Wc)).

The error of a central difference with step s is about A*s^2 (truncation)
+ R/s (rounding of the loss). Measured on the reference for these shapes:
A <= 1.1 and R <= 1.1e-15 (a few ulps of the loss); the per-step bound
below allows 10x on each, and the best step must reach 1e-9.
"""

import numpy as np
import pytest
import reference as ref
from conftest import BACKENDS, Case, make_problem

STEPS = (1e-2, 1e-3, 1e-4, 1e-5, 1e-6)
BEST_ERR = 1e-9


def step_bound(s):
    return 10.0 * s * s + 1e-14 / s


FD_CASES = (
    Case(2, 2, 3, 2, 2),
    Case(3, 2, 2, 3, 1, "btd"),
    Case(2, 1, 2, 1, 3, "td"),
    # bidirectional + projection + lengths (NaN padding, a 0 length)
    Case(4, 3, 2, 3, 2, N=2, P=2, lengths=(4, 1, 2)),
    Case(3, 3, 2, 3, 2, "btd", N=2, P=1, lengths=(3, 0, 2)),
    Case(3, 1, 2, 3, 2, "td", N=2, lengths=(2,)),
    # dropout, with a fixed dropout_seed for every training forward
    Case(3, 1, 2, 3, 2, "td", dropout=0.5),
    Case(3, 3, 2, 3, 2, "btd", N=2, P=2, lengths=(3, 1, 2), dropout=0.3),
    # reverse-only, with projection, lengths and dropout
    Case(4, 3, 2, 3, 2, P=2, lengths=(4, 1, 0), rev=True),
    Case(3, 2, 2, 3, 2, "btd", lengths=(3, 2), dropout=0.3, rev=True),
)
DROPOUT_SEED = 12345
# Hard sigmoid gates (gate_alpha, gate_beta): piecewise linear, with kinks
# where alpha*z + beta is 0 or 1. A central difference across a kink is
# wrong by O(alpha), so these run only the small steps, and each checks
# first (hard_sigmoid_margin) that every gate pre-activation of the
# unperturbed model lies at least KINK_MARGIN from a kink: 10 times the
# largest step, more than one step of one element moves a pre-activation
# in these small models (|x| < 4, weights < 1). (Were a kink crossed, the
# difference would be off by O(alpha) and fail the bounds loudly.)
HARD_FD_CASES = (
    Case(3, 2, 2, 3, 2, hard=(2.0, 0.5)),
    Case(4, 3, 2, 3, 2, N=2, P=2, lengths=(4, 1, 2), hard=(1.5, 0.3)),
    Case(3, 1, 2, 3, 2, "td", rev=True, hard=(1.0, 0.5)),
)
HARD_STEPS = (1e-5, 1e-6)


def hard_step_bound(s):
    """step_bound with a larger truncation constant: steep gates (alpha 2)
    make the loss curve more; measured A <= 26 on these cases."""
    return 100.0 * s * s + 1e-14 / s


KINK_MARGIN = 10 * max(HARD_STEPS)


def run_kwargs(case):
    """forward()'s keywords for the loss: training with a fixed dropout
    seed when the case has dropout (the masks are then fixed), else
    inference."""
    if case.dropout:
        return {**case.run_kwargs(), "train": True, "dropout_seed": DROPOUT_SEED}
    return {**case.run_kwargs(), "train": False}


def fd_errors(loss_fn, arr, grad, steps=STEPS):
    """|central difference - grad| for every element of `arr` (perturbed in
    place through a flat view) and every step: shape (len(steps), arr.size)."""
    flat = arr.reshape(-1)
    assert np.shares_memory(flat, arr), "FD needs to write through a view"
    g = np.asarray(grad, dtype=np.float64).reshape(-1)
    assert g.size == flat.size
    errs = np.empty((len(steps), flat.size))
    for i in range(flat.size):
        old = flat[i]
        for j, s in enumerate(steps):
            flat[i] = old + s
            up = loss_fn()
            flat[i] = old - s
            down = loss_fn()
            flat[i] = old
            errs[j, i] = abs((up - down) / (2 * s) - g[i])
    return errs


def assert_fd(name, errs, steps=STEPS, bound=step_bound):
    for j, s in enumerate(steps):
        worst = int(np.argmax(errs[j]))
        assert errs[j, worst] <= bound(s), (
            f"{name}[{worst}]: FD error {errs[j, worst]:.3g} at step {s:g}"
            f" exceeds {bound(s):.3g}"
        )
    best = errs.min(axis=0)
    worst = int(np.argmax(best))
    assert best[worst] <= BEST_ERR, (
        f"{name}[{worst}]: best FD error {best[worst]:.3g} over steps {steps}"
    )


def hard_sigmoid_margin(lstm, x, h0, c0, case):
    """The distance of the nearest gate pre-activation (i, f, o; valid steps
    only) from a kink of the hard sigmoid, and the share of gates saturated
    at 0 or 1, by the reference at these arrays."""
    alpha, beta = case.hard
    lens = None if case.lengths is None else np.array(case.lengths)
    s = lambda a: ref.state_from_api(a, case.layout)  # noqa: E731
    _, _, _, cache = ref.forward(dict(lstm.named_parameters()), ref.x_from_api(x, case.layout),
                                 s(h0), s(c0), lens, None, case.rev, case.hard)
    z = [st["a"][st["act"][:, 0]] for _, caches in cache["layers"] for steps in caches
         for st in steps]
    z = np.concatenate(z)
    H = case.H
    z = np.concatenate([z[:, :2 * H], z[:, 3 * H:]], axis=1)
    kinks = np.array([-beta / alpha, (1 - beta) / alpha])
    margin = np.abs(z[..., None] - kinks).min()
    return margin, np.mean((z <= kinks[0]) | (z >= kinks[1]))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", FD_CASES + HARD_FD_CASES, ids=str)
def test_finite_differences(case, backend):
    lstm = case.model(np.float64, backend, seed=21)
    prob = make_problem(case, seed=22)
    x = np.ascontiguousarray(prob.api(prob.x))
    h0 = np.ascontiguousarray(prob.api(prob.h0, kind="state"))
    c0 = np.ascontiguousarray(prob.api(prob.c0, kind="state"))
    wy, wh, wc = prob.api(prob.wy), prob.api(prob.wh, kind="state"), prob.api(prob.wc, kind="state")

    run = run_kwargs(case)
    steps, bound = STEPS, step_bound
    if case.hard:
        steps, bound = HARD_STEPS, hard_step_bound
        margin, saturated = hard_sigmoid_margin(lstm, x, h0, c0, case)
        assert margin >= KINK_MARGIN, "a gate pre-activation %.3g from a kink" % margin
        assert saturated > 0.1, "too few saturated gates (%.2f) to test their 0 gradient" % (
            saturated)

    def loss_fn():
        y, (h, c) = lstm.forward(x, (h0, c0), **run)
        return ref.loss(y, h, c, wy, wh, wc)

    lstm.zero_grad()
    lstm.forward(x, (h0, c0), **{**run, "train": True})
    dx, (dh0, dc0) = lstm.backward(wy, (wh, wc))
    analytic = {
        "x": (x, dx),
        "h0": (h0, dh0),
        "c0": (c0, dc0),
        "params": (lstm.flat_parameters, lstm.flat_grads.copy()),
    }
    start = lstm.flat_parameters.copy()
    for name, (arr, grad) in analytic.items():
        assert_fd(name, fd_errors(loss_fn, arr, grad, steps), steps, bound)
    np.testing.assert_array_equal(lstm.flat_parameters, start)


def test_fd_check_catches_a_wrong_gradient():
    """The checker itself fails on a gradient off by 1e-7 in one element."""
    case = FD_CASES[0]
    lstm = case.model(np.float64, seed=23)
    prob = make_problem(case, seed=24)
    x = np.ascontiguousarray(prob.x)

    def loss_fn():
        y, (h, c) = lstm.forward(x, train=False)
        return ref.loss(y, h, c, prob.wy, prob.wh, prob.wc)

    lstm.forward(x, train=True)
    dx, _ = lstm.backward(prob.wy, (prob.wh, prob.wc))
    dx = dx.copy()
    dx.reshape(-1)[3] += 1e-7
    with pytest.raises(AssertionError, match=r"x\[3\]"):
        assert_fd("x", fd_errors(loss_fn, x, dx))
