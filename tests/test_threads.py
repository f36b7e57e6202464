"""Python threads sharing one model, clstm's own thread count, and the GIL."""

import threading
import time

import numpy as np
import pytest
from conftest import BACKENDS, DTYPES, Case, forward_backward, make_problem

import clstm

BIG = Case(T=4, B=48, D=24, H=40, L=2)
N_PY_THREADS = 4
CALLS_PER_THREAD = 5


def run_in_threads(fn, n=N_PY_THREADS):
    """Run fn(i) for i in range(n) in n threads started together; return
    the results in order, re-raising any thread's exception."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def body(i):
        try:
            barrier.wait()
            results[i] = fn(i)
        except BaseException as e:  # reported in the main thread
            errors.append(e)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def inference_jobs(case, dtype):
    """Distinct inputs (x, state) for every (thread, call)."""
    probs = [make_problem(case, seed=100 + k) for k in range(N_PY_THREADS * CALLS_PER_THREAD)]
    return [(p.x.astype(dtype), (p.h0.astype(dtype), p.c0.astype(dtype))) for p in probs]


def flatten(out):
    y, (h, c) = out
    return [y, h, c]


@pytest.mark.parametrize("num_threads", [1, 2], indirect=True)
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_shared_model_inference_from_python_threads(dtype, backend, num_threads):
    lstm = BIG.model(dtype, backend)
    jobs = inference_jobs(BIG, dtype)
    serial = [flatten(lstm.forward(x, s, train=False)) for x, s in jobs]

    def work(i):
        mine = range(i, len(jobs), N_PY_THREADS)
        return {k: flatten(lstm.forward(*jobs[k], train=False)) for k in mine}

    for got in run_in_threads(work):
        for k, arrays in got.items():
            for a, b in zip(arrays, serial[k]):
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("num_threads", [1], indirect=True)
@pytest.mark.parametrize("backend", BACKENDS)
def test_shared_bidirectional_model_inference_from_python_threads(backend, num_threads):
    """Bidirectional inference (whole sequences, a workspace growing with T)
    with a projection and lengths, from several Python threads."""
    case = Case(T=5, B=48, D=24, H=40, L=2, N=2, P=16, lengths=tuple(b % 6 for b in range(48)))
    lstm = case.model(np.float64, backend)
    jobs = inference_jobs(case, np.float64)
    run = case.run_kwargs()
    serial = [flatten(lstm.forward(x, s, train=False, **run)) for x, s in jobs]

    def work(i):
        mine = range(i, len(jobs), N_PY_THREADS)
        return {k: flatten(lstm.forward(*jobs[k], train=False, **run)) for k in mine}

    for got in run_in_threads(work):
        for k, arrays in got.items():
            for a, b in zip(arrays, serial[k]):
                np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dtype", DTYPES)
def test_separate_models_train_in_python_threads(dtype):
    """Training forward + backward on per-thread models: no shared state."""
    models = [BIG.model(dtype, seed=s) for s in range(N_PY_THREADS)]
    probs = [make_problem(BIG, seed=200 + s) for s in range(N_PY_THREADS)]

    def train(i):
        return forward_backward(models[i], probs[i])

    serial = [train(i) for i in range(N_PY_THREADS)]
    for got, want in zip(run_in_threads(train), serial):
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_one_and_two_clstm_threads_agree(dtype, backend):
    """Only the order of rounding may change with the thread count."""
    lstm = BIG.model(dtype, backend)
    prob = make_problem(BIG, seed=300)
    results = {}
    for n in (1, 2):
        clstm.set_num_threads(n)
        results[n] = forward_backward(lstm, prob)
    rtol = 1e-13 if dtype == np.float64 else 2e-6
    names = ("y", "hT", "cT", "dx", "dh0", "dc0", "grads")
    for name, a, b in zip(names, results[1], results[2]):
        np.testing.assert_allclose(
            a, b, rtol=rtol, atol=rtol * max(1.0, np.abs(a).max()), err_msg=name
        )


# ------------------------------------------------------------ the GIL
def gil_case(T):
    return Case(T=T, B=8, D=64, H=64, L=1)


def make_op(kind, lstm, x):
    """(prepare, call): prepare runs before the timed call (a training
    forward for backward)."""
    if kind == "inference":
        return (lambda: None), (lambda: lstm.forward(x, train=False))
    if kind == "training":
        return (lambda: None), (lambda: lstm.forward(x, train=True))
    dy = np.ones(x.shape[:2] + (lstm.hidden_size,))
    return (lambda: lstm.forward(x, train=True)), (lambda: lstm.backward(dy))


def timed_op(kind, min_seconds=0.2):
    """An op on the naive backend lasting at least min_seconds (T grows in
    proportion to the shortfall until it does); returns prepare, call and
    the measured duration."""
    T = 16
    while True:
        case = gil_case(T)
        lstm = case.model(np.float64, "naive")
        prepare, call = make_op(kind, lstm, make_problem(case, seed=1).x)
        prepare()
        t0 = time.perf_counter()
        call()
        duration = time.perf_counter() - t0
        if duration >= min_seconds or T >= 1 << 16:
            return prepare, call, duration
        T = min(1 << 16, max(2 * T, int(1.5 * T * min_seconds / max(duration, 1e-6))))


def longest_stall(prepare, call):
    """Run prepare() then call() in a worker thread while this thread spins
    in Python. Returns (duration of call, the longest stretch of that call
    during which this thread made no progress). If call held the GIL, the
    stall would be the whole call. (Stalls are measured against the call's
    own window, so one spent waiting before the loop starts still counts.)"""
    window, gaps = [], []

    def worker():
        prepare()
        window.append(time.perf_counter())
        call()
        window.append(time.perf_counter())

    t = threading.Thread(target=worker)
    last = time.perf_counter()
    t.start()
    while t.is_alive():
        now = time.perf_counter()
        if now - last > 1e-3:
            gaps.append((last, now))
        last = now
    t.join()
    start, end = window
    return end - start, max((min(e, end) - max(s, start) for s, e in gaps), default=0.0)


@pytest.mark.parametrize("kind", ["inference", "training", "backward"])
def test_gil_released_during_compute(kind):
    """While one thread computes, another keeps running Python: its longest
    stall is far below the compute time."""
    clstm.set_num_threads(1)
    prepare, call, _ = timed_op(kind)
    duration, stall = longest_stall(prepare, call)
    assert stall < duration / 2, f"main thread stalled {stall:.3f}s in a {duration:.3f}s compute"


def test_stall_measure_detects_a_held_gil():
    """The measure itself: a C call that holds the GIL (sorting floats)
    stalls the spinning thread for most of its duration."""
    data = np.random.default_rng(0).random(1_000_000).tolist()
    duration, stall = longest_stall(lambda: None, lambda: sorted(data))
    assert stall > duration / 2


# ------------------------------------------- what must not be shared raises
class InAnotherThread:
    """Run call() in a worker thread; the with-block runs once the worker is
    inside the C computation (the model counts it as a reader, or the state
    it advances is held), and the worker's result is kept."""

    def __init__(self, call, inside):
        self.call, self.inside, self.result, self.error = call, inside, None, None

    def __enter__(self):
        def body():
            try:
                self.result = self.call()
            except BaseException as e:
                self.error = e
        self.thread = threading.Thread(target=body)
        self.thread.start()
        deadline = time.perf_counter() + 10
        while not self.inside() and self.thread.is_alive():
            assert time.perf_counter() < deadline, "the worker never started computing"
        assert self.thread.is_alive(), "the call ended before the check: make it longer"
        return self

    def __exit__(self, *exc):
        self.thread.join()
        if self.error is not None:
            raise self.error
        return False


def long_inference(lstm, state=None):
    """A forward lasting well over the time the checks need (~0.3 s)."""
    _, _, seconds = timed_op("inference", min_seconds=0.3)
    x = make_problem(Case(T=4, B=8, D=64, H=64, L=1), seed=2).x[:1]
    T = max(16, int(16 * 0.3 / max(seconds, 1e-6)))
    xs = np.repeat(x, T * 4, axis=0)  # about 4x the calibrated call
    return lambda: lstm.forward(xs, state, train=False)


def test_parameter_writes_while_another_thread_computes_raise():
    """load_state_dict and an optimizer step during another thread's
    inference raise instead of changing the weights under it; the
    inference's result equals a serial run's."""
    lstm = gil_case(4).model(np.float64, "naive")
    run = long_inference(lstm)
    before = lstm.flat_parameters.copy()
    sd = {k: v + 1 for k, v in lstm.state_dict().items()}
    opt = clstm.optim.SGD(lstm, lr=0.1)
    lstm.flat_grads[:] = 1
    with InAnotherThread(run, lambda: lstm._readers > 0) as other:
        with pytest.raises(RuntimeError, match="load_state_dict: the model is in use by 1 call"):
            lstm.load_state_dict(sd)
        with pytest.raises(RuntimeError, match="optimizer step: the model is in use"):
            opt.step()
    np.testing.assert_array_equal(lstm.flat_parameters, before)
    serial = run()
    for a, b in zip(flatten(other.result), flatten(serial)):
        np.testing.assert_array_equal(a, b)
    opt.step()  # alone, it works
    np.testing.assert_array_equal(lstm.flat_parameters, before - 0.1)


def test_a_state_advanced_by_two_threads_at_once_raises():
    lstm = gil_case(4).model(np.float64, "naive")
    state = lstm.initial_state(8)
    run = long_inference(lstm, state)
    x_t = np.zeros((8, 64))
    with InAnotherThread(run, lambda: state._busy.locked()) as other:
        with pytest.raises(RuntimeError, match="state: this LSTMState is being advanced by "
                                               "another thread"):
            lstm.step(x_t, state)
        # another state on the same model is fine meanwhile
        lstm.step(x_t, lstm.initial_state(8))
    fresh = lstm.initial_state(8)
    run_fresh = long_inference(lstm, fresh)
    run_fresh()
    np.testing.assert_array_equal(state.h, fresh.h)  # the refused step changed nothing
    np.testing.assert_array_equal(state.c, fresh.c)
    assert other.result[1] is state


def test_backward_of_another_threads_training_forward_raises():
    """Thread B's training forward replaces thread A's pending one: A's
    backward then raises instead of using B's record; B's backward works
    and equals a serial forward + backward."""
    lstm = BIG.model(np.float64)
    prob = make_problem(BIG, seed=5)
    dy = np.ones((BIG.T, BIG.B, BIG.H))
    lstm.forward(prob.x, train=True)  # thread A (this one)
    b_forward_done, a_checked, b_result = threading.Event(), threading.Event(), []

    def thread_b():
        lstm.forward(prob.x, train=True)
        b_forward_done.set()
        a_checked.wait(10)
        lstm.zero_grad()
        b_result.append((lstm.backward(dy)[0], lstm.flat_grads.copy()))

    b = threading.Thread(target=thread_b)
    b.start()
    assert b_forward_done.wait(10)
    with pytest.raises(RuntimeError, match="run by another thread"):
        lstm.backward(dy)
    a_checked.set()
    b.join()
    lstm.forward(prob.x, train=True)
    lstm.zero_grad()
    dx = lstm.backward(dy)[0]
    np.testing.assert_array_equal(b_result[0][0], dx)
    np.testing.assert_array_equal(b_result[0][1], lstm.flat_grads)
