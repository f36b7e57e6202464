"""Dropout on the inputs of layers 1..L-1 in training forwards (torch's).

The masks clstm draws are its own, so the exact checks first read them back:
a "probe" model makes each output unit a function of one unit of the masked
input of the layer below, so each mask element is whichever of 0 and
1/(1-p) makes the reference reproduce clstm's output (unambiguously: the
two candidates' outputs differ by far more than rounding). The masks found
must then explain clstm's forward and backward with any weights (clstm.h:
masks are a pure function of the dropout seed, layer and position), and
drop about a fraction p of the units.
"""

import warnings

import numpy as np
import pytest
import reference as ref
from conftest import (
    BACKENDS,
    DTYPES,
    Case,
    assert_close,
    assert_outputs,
    expected_backward,
    expected_forward,
    forward_backward,
    make_problem,
    params64,
    tolerance,
)

import clstm

SEED = 0x5EED


def outputs(out):
    """[y, h, c] from forward's y, (h, c); or the list forward_backward gives."""
    return [out[0], *out[1]] if len(out) == 2 else out


def assert_runs_equal(a, b):
    for u, v in zip(outputs(a), outputs(b)):
        np.testing.assert_array_equal(u, v)


def runs_differ(a, b):
    return any(not np.array_equal(u, v) for u, v in zip(outputs(a), outputs(b)))


# ------------------------------------------------------------ no effect
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "case",
    [Case(4, 3, 3, 5, 2, dropout=0.5), Case(5, 3, 2, 4, 3, N=2, P=2, lengths=(5, 2, 0))],
    ids=str,
)
def test_inference_ignores_dropout(case, dtype, backend):
    """forward(train=False) is the dropout=0 model's, and so is the first
    layer's final state in training (nothing is dropped before layer 0)."""
    lstm = case.model(dtype, backend, dropout=0.5)
    plain = case.model(dtype, backend, dropout=0.0)
    plain.load_state_dict(lstm.state_dict())
    prob = make_problem(case, seed=101)
    x, state = prob.api(prob.x, dtype=dtype), prob.state("given", dtype=dtype)
    run = case.run_kwargs()
    want = plain.forward(x, state, train=False, **run)
    assert_runs_equal(lstm.forward(x, state, train=False, **run), want)
    assert_runs_equal(lstm.forward(x, state, train=False, dropout_seed=3, **run), want)
    y, (h, c) = lstm.forward(x, state, train=True, dropout_seed=3, **run)
    N = case.N
    np.testing.assert_array_equal(h[:N], want[1][0][:N])
    np.testing.assert_array_equal(c[:N], want[1][1][:N])
    assert not np.allclose(y, want[0]) and not np.allclose(h[N:], want[1][0][N:])


@pytest.mark.parametrize("dtype", DTYPES)
def test_single_layer_dropout_warns_and_does_nothing(dtype):
    case = Case(4, 3, 3, 5, 1, N=2)
    with pytest.warns(UserWarning, match="dropout"):
        lstm = case.model(dtype, dropout=0.5)
    assert lstm.dropout == 0.5
    plain = case.model(dtype)
    plain.load_state_dict(lstm.state_dict())
    prob = make_problem(case, seed=102)
    assert_runs_equal(forward_backward(lstm, prob, dropout_seed=1), forward_backward(plain, prob))
    assert_runs_equal(forward_backward(lstm, prob), forward_backward(plain, prob))


@pytest.mark.parametrize("L, p", [(1, 0.0), (1, 0), (2, 0.0), (2, 0.5), (3, 0.99)])
def test_no_warning(L, p):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        lstm = clstm.LSTM(3, 4, L, dropout=p)
    assert lstm.dropout == p and isinstance(lstm.dropout, float)


# ------------------------------------------------------------ seeds
CASE = Case(5, 4, 3, 6, 3, N=2, P=4, lengths=(5, 1, 3, 4), dropout=0.4)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_same_dropout_seed_is_bitwise_reproducible(dtype, backend):
    lstm = CASE.model(dtype, backend)
    prob = make_problem(CASE, seed=103)
    first = forward_backward(lstm, prob, dropout_seed=SEED)
    forward_backward(lstm, prob, dropout_seed=SEED + 1)
    assert_runs_equal(forward_backward(lstm, prob, dropout_seed=SEED), first)
    other = CASE.model(dtype, backend, seed=7)  # same weights, other model seed
    other.load_state_dict(lstm.state_dict())
    assert_runs_equal(forward_backward(other, prob, dropout_seed=SEED), first)


@pytest.mark.parametrize("dtype", DTYPES)
def test_different_dropout_seeds_differ(dtype):
    lstm = CASE.model(dtype)
    prob = make_problem(CASE, seed=104)
    seeds = [0, 1, 2, SEED, 2**63, 2**64 - 1]
    runs = [forward_backward(lstm, prob, dropout_seed=s) for s in seeds]
    for i in range(len(runs)):
        for j in range(i):
            assert runs_differ(runs[i], runs[j]), (seeds[i], seeds[j])


def test_dropout_seed_spellings():
    lstm = CASE.model()
    prob = make_problem(CASE, seed=105)
    want = forward_backward(lstm, prob, dropout_seed=2**64 - 1)
    for s in (np.uint64(2**64 - 1), np.array(2**64 - 1, dtype=np.uint64)[()]):
        assert_runs_equal(forward_backward(lstm, prob, dropout_seed=s), want)
    assert_runs_equal(
        forward_backward(lstm, prob, dropout_seed=np.int8(5)),
        forward_backward(lstm, prob, dropout_seed=5),
    )


def test_seed_none_same_model_seed_same_sequence_of_masks():
    """dropout_seed=None: two fresh models of one seed give the same
    sequence of training outputs; successive forwards differ."""
    prob = make_problem(CASE, seed=106)
    a, b = CASE.model(seed=11), CASE.model(seed=11)
    runs_a = [forward_backward(a, prob) for _ in range(3)]
    runs_b = [forward_backward(b, prob) for _ in range(3)]
    for ra, rb in zip(runs_a, runs_b):
        assert_runs_equal(ra, rb)
    assert runs_differ(runs_a[0], runs_a[1]) and runs_differ(runs_a[1], runs_a[2])
    other = CASE.model(seed=12)
    other.load_state_dict(a.state_dict())
    assert runs_differ(forward_backward(other, prob), runs_a[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_masks_independent_of_thread_count(backend):
    case = Case(4, 48, 24, 40, 2, N=2, dropout=0.5)
    lstm = case.model(np.float64, backend)
    prob = make_problem(case, seed=107)
    results = []
    for n in (1, 2):
        clstm.set_num_threads(n)
        results.append(forward_backward(lstm, prob, dropout_seed=SEED))
    for a, b in zip(*results):
        np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13 * max(1.0, np.abs(a).max()))


# ------------------------------------------------------------ exact masks
PROBE_W, PROBE_B = 0.5, 1.5


def probe_params(case, seed):
    """Parameters (float64, by name) of a probe model: layer 0 keeps every
    output away from 0 (|h| > 0.5 whatever x); in a layer k > 0, unit j < R of
    direction d reads only unit d*R + j of its input, through its g gate
    (a_g = PROBE_W * input + PROBE_B, so that its output is never near 0
    either), and is output j of that direction (W_hr = [I 0])."""
    rng = np.random.default_rng(seed)
    H, R = case.H, case.R
    shapes = ref.param_shapes(case.D, H, case.L, case.N, case.P)
    params = {k: np.zeros(s) for k, s in shapes.items()}
    for k in range(case.L):
        for d, sfx in enumerate(ref.DIRECTIONS[: case.N]):
            b = params[f"bias_ih_l{k}{sfx}"]
            b[0:H] = b[3 * H :] = 2.0 if k == 0 else 1.0  # i and o well open
            if case.P:
                params[f"weight_hr_l{k}{sfx}"][:] = np.eye(case.P, H)
            if k == 0:
                for name in (f"weight_ih_l0{sfx}", f"weight_hh_l0{sfx}"):
                    params[name][:] = 0.1 * rng.standard_normal(shapes[name])
                b[2 * H : 3 * H] = 2.0 * rng.choice([-1.0, 1.0], H)
            else:
                w = params[f"weight_ih_l{k}{sfx}"]
                w[2 * H + np.arange(R), d * R + np.arange(R)] = PROBE_W
                b[2 * H : 2 * H + R] = PROBE_B
    return params


def load(lstm, params):
    lstm.load_state_dict(params)
    return params64(lstm)  # as rounded to the model's dtype


def pick(got, candidates, valid, dtype, what):
    """Index (per element) of the candidate output that equals `got`, which
    must be within rounding of exactly one of them (at valid positions)."""
    errs = np.stack([np.abs(got - c) for c in candidates])
    best = np.argmin(errs, axis=0)
    ordered = np.sort(errs, axis=0)
    rtol, _ = tolerance(dtype)
    valid = np.broadcast_to(valid, got.shape)
    worst = ordered[0][valid].max(initial=0.0)
    assert worst <= 10 * rtol, (
        f"{what}: no mask value reproduces clstm's output (off by {worst:.3g})"
    )
    gap = ordered[1][valid].min(initial=np.inf)
    assert gap > 1e-3, f"{what}: ambiguous probe ({gap:.3g})"
    return best


def infer_masks_over_time(lstm, prob, dropout_seed):
    """The mask (T, B, N*R) of layer 1's input in a training forward of an
    L = 2 probe model, found step by step: the forward direction's outputs at
    step t depend on the masks at steps <= t, the reverse direction's on
    those at steps >= t."""
    case = prob.case
    assert case.L == 2 and case.layout == "tbd"
    T, N, R = case.T, case.N, case.R
    params = load(lstm, probe_params(case, seed=111))
    x = prob.x.astype(lstm.dtype)
    y = lstm.forward(x, lengths=prob.lengths, train=True, dropout_seed=dropout_seed)[0]
    keep = 1.0 / (1.0 - lstm.dropout)
    values = np.array([0.0, keep])
    valid = ref.active_steps(prob.lengths, T, case.B)[..., None]
    mask = np.full((T, case.B, N * R), keep)
    for s in range(T):
        spots = [(s if d == 0 else T - 1 - s, slice(d * R, (d + 1) * R)) for d in range(N)]
        candidates = []
        for v in values:
            for t, cols in spots:
                mask[t, :, cols] = v
            candidates.append(ref.forward(params, x, lengths=prob.lengths, masks=[mask])[0])
        for t, cols in spots:
            best = pick(
                y[t, :, cols], [c[t, :, cols] for c in candidates], valid[t], lstm.dtype, f"t={t}"
            )
            mask[t, :, cols] = values[best]
    return mask, valid


def infer_masks_one_step(lstm, prob, dropout_seed):
    """The masks of layers 1..L-1 (each (1, B, N*R)) in a training forward of
    a T = 1 probe model: layer k's output is its final state h[k*N:(k+1)*N],
    which depends on the masks of layers 1..k only."""
    case = prob.case
    assert case.T == 1 and case.layout == "tbd" and case.lengths is None
    N, L = case.N, case.L
    params = load(lstm, probe_params(case, seed=112))
    x = prob.x.astype(lstm.dtype)
    _, (h, _) = lstm.forward(x, train=True, dropout_seed=dropout_seed)
    keep = 1.0 / (1.0 - lstm.dropout)
    values = np.array([0.0, keep])
    masks = [np.full((1, case.B, N * case.R), keep) for _ in range(L - 1)]
    for k in range(1, L):
        candidates = []
        for v in values:
            masks[k - 1][:] = v
            candidates.append(ref.forward(params, x, masks=masks)[1][k * N : (k + 1) * N])
        best = pick(h[k * N : (k + 1) * N], candidates, True, lstm.dtype, f"layer {k}")
        masks[k - 1][:] = values[best].transpose(1, 0, 2).reshape(1, case.B, -1)
    return masks, np.ones((1, case.B, 1), dtype=bool)


def assert_dropped_fraction(mask, valid, p, what):
    """Deterministic for a fixed dropout seed; 5 binomial sigmas."""
    kept = mask[np.broadcast_to(valid, mask.shape)] != 0
    n = kept.size
    assert abs((1 - kept.mean()) - p) < 5 * np.sqrt(p * (1 - p) / n), (
        f"{what}: dropped {1 - kept.mean():.3f} of {n} units, p = {p}"
    )


def assert_masks_explain_clstm(lstm, prob, masks, dropout_seed, weights_seed):
    """With any weights, clstm's training forward and backward with this
    dropout seed are the reference's with these masks."""
    case, dtype = prob.case, lstm.dtype
    lstm.load_state_dict(case.model(np.float64, seed=weights_seed).state_dict())
    y, h, c, dx, dh0, dc0, _ = forward_backward(lstm, prob, dropout_seed=dropout_seed)
    x, state = prob.api(prob.x, dtype=dtype), prob.state("given", dtype=dtype)
    *want, cache = expected_forward(lstm, x, state, case.layout, prob.lengths, masks)
    assert_outputs((y, (h, c)), want, case.layout, dtype)
    dstate = (
        prob.api(prob.wh, dtype=dtype, kind="state"),
        prob.api(prob.wc, dtype=dtype, kind="state"),
    )
    edx, edh0, edc0, egrads = expected_backward(
        lstm, cache, prob.api(prob.wy, dtype=dtype), dstate, case.layout
    )
    assert_outputs((dx, (dh0, dc0)), (edx, edh0, edc0), case.layout, dtype, ("dx", "dh0", "dc0"))
    grads = lstm.named_grads()
    for name, g in egrads.items():
        assert_close(grads[name], g, dtype, name)


OVER_TIME = (
    Case(6, 40, 3, 5, 2, dropout=0.3),
    Case(7, 24, 3, 5, 2, N=2, P=3, lengths=tuple(range(7, 1, -1)) * 4, dropout=0.5),
)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", OVER_TIME, ids=str)
def test_masks_over_time(case, dtype, backend):
    """Layer 0's output is multiplied by 0 or 1/(1-p), independently over
    time, batch and units, dropping about p of them; the same masks give
    forward and backward with any weights."""
    lstm = case.model(dtype, backend)
    prob = make_problem(case, seed=113, pad=0.0)
    mask, valid = infer_masks_over_time(lstm, prob, SEED)
    assert_dropped_fraction(mask, valid, case.dropout, "layer 1")
    assert np.mean(mask[1:] == mask[:-1]) < 0.9 and np.mean(mask[:, 1:] == mask[:, :-1]) < 0.9
    if case.N == 2:
        R = case.R
        assert np.mean(mask[..., :R] == mask[..., R:]) < 0.9
    prob = make_problem(case, seed=114)  # NaN padding now
    assert_masks_explain_clstm(lstm, prob, [mask], SEED, weights_seed=115)


ONE_STEP = (
    Case(1, 300, 2, 4, 3, dropout=0.3),
    Case(1, 200, 2, 4, 3, N=2, P=2, dropout=0.6),
)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", ONE_STEP, ids=str)
def test_masks_of_every_layer(case, dtype):
    """L = 3: the inputs of layers 1 and 2 both get masks, different ones,
    each dropping about p; together they explain forward and backward."""
    lstm = case.model(dtype)
    prob = make_problem(case, seed=116)
    masks, valid = infer_masks_one_step(lstm, prob, SEED)
    for k, m in enumerate(masks, 1):
        assert_dropped_fraction(m, valid, case.dropout, f"layer {k}")
    assert np.mean(masks[0] == masks[1]) < 0.9
    assert_masks_explain_clstm(lstm, prob, masks, SEED, weights_seed=117)
