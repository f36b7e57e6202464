"""The Trainer: a thin loop over C calls (forward, loss, backward, optimizer
step), with truncated BPTT, validation, early stopping, checkpoints that
resume exactly, a progress bar and a metrics log.

    task = LanguageModelTask(TextStream(text), batch_size=32, bptt=64)
    model = Model(vocab=task.vocab, hidden_size=256, output_size=len(task.vocab),
                  softmax=True, seed=0)
    Trainer(model, task, epochs=2, out="char.safetensors").fit()

Reproducibility: the model's initialisation, the data order and the dropout
masks all come from `seed`; with the same seed and thread count two runs
give the same loss curve, and a run resumed from a checkpoint ends with the
same parameters as one that was never interrupted.

Split by job: the tasks (batches, loss, validation, model metadata) are in
clstm.tasks, the checkpoint file in clstm.checkpoints, text sampling in
clstm.sampling; the loop, its MPI data parallelism and its settings are here.
"""
from __future__ import annotations

import json
import math
import os
import signal
import time
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

import numpy as np

from clstm import checkpoints, optim
from clstm.data import DataError
from clstm.io import atomic_write, save
from clstm.sampling import generate_text

__all__ = ["Trainer", "TrainingStopped", "NonFiniteLoss", "Interrupted"]

if TYPE_CHECKING:
    from clstm.distributed import DataParallel
    from clstm.model import LSTM


class TrainingStopped(Exception):
    """Training stopped before its end; the message says why and what was kept."""


class NonFiniteLoss(TrainingStopped):
    """The loss or the gradient norm became NaN or infinite."""


class Interrupted(TrainingStopped):
    """Ctrl-C: a checkpoint of the last completed step was written."""


def _rng_state(gen):
    return gen.bit_generator.state


def _set_rng_state(gen, state):
    gen.bit_generator.state = state


class Trainer:
    """Train `model` on `task` (clstm.tasks: LanguageModelTask, SequenceTask,
    ForecastTask, LabellingTask or TranslationTask). A task with a
    forward(model, inputs, targets, lengths, dropout_seed) method runs the
    model itself (an encoder-decoder's two inputs); a task's `selects`
    names the validation metric, lower being better, that chooses the model
    file and early stopping (default "val_loss"; a tuple of names compares
    in order, the later ones breaking ties).

    optimizer "adam" (default), "adamw" or "sgd" (momentum, nesterov),
    with weight_decay; clip: the global gradient-norm bound (0: none);
    schedule: "constant", "step" (gamma every step_size steps) or "cosine"
    (to 0 at the end), each with `warmup` linear warm-up steps.
    Validation every eval_every steps and at each epoch's end; patience: stop
    after that many evaluations without a better validation score (None:
    never). out: the model file, written (atomically) whenever the
    validation score (the task's `selects`, below) improves, or at the end
    without validation data.
    checkpoint: a file rewritten (atomically) every checkpoint_every steps,
    at each epoch's end, on Ctrl-C and at the end; resume with
    Trainer.resume. log: a .jsonl or .csv file of metrics, one record per
    evaluation. sample_every: print a generated sample every that many steps
    (character models). verbose: print a line per evaluation and the samples
    (False: neither; the progress bar is `progress`'s). on_evaluation: a
    function called with each evaluation record (rank 0), after the line is
    printed (e.g. `clstm train --json` prints the record). Neither is kept
    in the checkpoint: pass them to Trainer.resume again. config: a
    JSON-able dict kept in the checkpoint (the command line stores its
    arguments there to rebuild the task).

    The task's model_metadata(model), when it has one, is written into
    model.metadata at the start (e.g. a ForecastTask's window, horizon and
    normalisation), so the model files are those `clstm train` writes and
    `clstm forecast` / `clstm evaluate` / `clstm sample` accept them.

    losses: the training loss of every step, losses[i] that of step i + 1
    (the global batch's mean loss), kept in the checkpoint; a run resumed
    from a checkpoint written before they were kept has NaN for the steps
    before it. history: one record per evaluation (the log's records).

    distributed: a clstm.distributed.DataParallel to train data-parallel
    over MPI (None, or one of 1 rank: the single-process loop). Every rank
    runs the same Trainer on the same data and seed; each step, each rank
    computes the gradient of its shard of the global batch, one in-place
    allreduce of model.flat_grads, weighted by each shard's count of loss
    terms, makes it the global batch's mean-loss gradient, and clipping and
    the optimizer step follow on every rank alike. The reported loss is the
    global batch's. Rank 0 alone evaluates (the record is broadcast, so
    early stopping is decided once), writes the model, checkpoints and log,
    and shows the progress bar and samples. A checkpoint holds only global
    state, so any number of ranks resumes it. An exception in one rank
    aborts the whole MPI job (MPI_Abort) with a message naming the rank.
    """

    def __init__(self, model: LSTM, task: Any, *, optimizer: str = "adam", lr: float = 2e-3,
                 weight_decay: float = 0.0, momentum: float = 0.9, nesterov: bool = False,
                 clip: float = 5.0, schedule: str = "constant", warmup: int = 0,
                 step_size: int = 1000, gamma: float = 0.5, epochs: int = 1, seed: int = 0,
                 patience: Optional[int] = None, eval_every: int = 0, out: Optional[str] = None,
                 checkpoint: Optional[str] = None, checkpoint_every: int = 0,
                 log: Optional[str] = None, progress: bool = True, sample_every: int = 0,
                 sample_length: int = 200, sample_prime: str = "",
                 config: Optional[Mapping[str, Any]] = None,
                 distributed: Optional[DataParallel] = None, verbose: bool = True,
                 on_evaluation: Optional[Callable[[dict[str, Any]], Any]] = None) -> None:
        if getattr(model, "quantized", False):
            raise ValueError("model: a quantized (int8) model runs inference only; train its "
                             "float32 original, then quantize it (clstm.quantize)")
        self.model, self.task = model, task
        self.dp = distributed if distributed is not None and distributed.size > 1 else None
        self.is_root = self.dp is None or self.dp.rank == 0
        task.dtype = model.dtype
        metadata = getattr(task, "model_metadata", None)
        if metadata is not None:  # the task's metadata goes into the model's files
            model.metadata.update(metadata(model))
        self.epochs = int(epochs)
        if self.epochs < 1:
            raise ValueError("epochs: expected >= 1, got %d" % self.epochs)
        self.total_steps = self.epochs * task.n_batches
        self.opt_settings = dict(optimizer=optimizer, lr=lr, weight_decay=weight_decay,
                                 momentum=momentum, nesterov=nesterov)
        self.opt = optim.create(optimizer, model, lr=lr, weight_decay=weight_decay,
                                momentum=momentum, nesterov=nesterov)
        self.schedule = optim.LRSchedule(lr, schedule, self.total_steps, warmup, step_size,
                                         gamma)
        self.clip = float(clip)
        self.patience = patience
        self.eval_every, self.checkpoint_every = int(eval_every), int(checkpoint_every)
        self.out, self.checkpoint, self.log = out, checkpoint, log
        self.progress = progress and self.is_root
        self.verbose, self.on_evaluation = verbose, on_evaluation
        self.sample_every, self.sample_length = int(sample_every), int(sample_length)
        self.sample_prime = sample_prime
        self.config = dict(config or {})
        self.seed = seed
        self.rng = np.random.default_rng([seed, 0x7A11])
        # the position in the run
        self.step, self.epoch, self.k = 0, 0, 0
        self.order: Optional[np.ndarray[Any, Any]] = None
        self.state: Optional[tuple[Any, ...]] = None
        self.best_val: Any = None  # the best validation score (a list: several, in order)
        self.bad_evals = 0
        self.history: list[dict[str, Any]] = []
        self.losses: list[float] = []  # every step's training loss (losses[i]: step i + 1)
        self._stop = False
        self._window: list[float] = []  # recent training losses, for the log and the bar
        self._interrupted: list[bool] = []  # Ctrl-C seen by this process
        self._deadline: Optional[float] = None  # fit's max_seconds
        self._time_up_all = False
        # the share of the schedule the clock has used (fit's max_seconds; it
        # carries over a resume, so the rate never climbs back)
        self._progress = 0.0
        # (start, seconds, progress at the start) in fit
        self._budget: Optional[tuple[float, float, float]] = None
        self._eval_seconds = 0.0  # how long the last evaluation took
        self._step_seconds = 0.0  # ... and the last training step
        self._interrupt_all = False  # ... by any rank, agreed in a step's allreduce
        self._saved_step: Optional[int] = None  # the step of the last checkpoint written


    # ------------------------------------------------------------ resuming
    @classmethod
    def resume(cls, path: str, task: Any, **overrides: Any) -> Trainer:
        """A Trainer continuing the checkpoint at `path` on `task` (the same
        data); the settings are the checkpoint's, `overrides` (e.g. progress)
        aside."""
        model, arrays, meta = checkpoints.load_checkpoint(path)
        settings = dict(meta["settings"])
        settings.update(overrides)
        self = cls(model, task, config=meta.get("config"), **settings)
        if self.task.n_batches != meta["n_batches"]:
            raise DataError("%s: the data differ from the checkpointed run's (%d batches per "
                            "epoch, the checkpoint has %d)"
                            % (path, self.task.n_batches, meta["n_batches"]))
        self.opt.load_state_dict({k[4:]: v for k, v in arrays.items() if k.startswith("opt.")}
                                 | meta["opt_scalars"])
        self.step, self.epoch, self.k = meta["step"], meta["epoch"], meta["k"]
        self._saved_step = self.step
        self.order = arrays.get("order")
        if "state_h" in arrays:
            rows = slice(None) if self.dp is None else self.dp.shard(arrays["state_h"].shape[1])
            self.state = tuple(np.ascontiguousarray(arrays[k][:, rows], dtype=model.dtype)
                               for k in ("state_h", "state_c"))
        self.best_val, self.bad_evals = meta["best_val"], meta["bad_evals"]
        self._stop = self.patience is not None and self.bad_evals > self.patience
        self.history, self._window = meta["history"], meta["window"]
        # a checkpoint written before the per-step losses were kept: NaN for them
        kept = [float(v) for v in arrays.get("losses", ())][:self.step]
        self.losses = [math.nan] * (self.step - len(kept)) + kept
        self._progress = float(meta.get("time_progress", 0.0))
        _set_rng_state(self.rng, meta["rng"])
        model.dropout_rng_state = meta["dropout_rng"]
        return self

    def save_checkpoint(self, path: Optional[str] = None) -> None:
        """Write the run's complete state (atomically) to path or
        self.checkpoint. Data-parallel: collective (the ranks' rows of the
        carried state are gathered, and the parameters checked equal);
        rank 0 writes."""
        path = path or self.checkpoint
        if not path:
            return
        state = self.state
        if self.dp is not None:
            self.dp.check_equal(self.model.flat_parameters)
            h, c = (None, None) if state is None else state
            state = self.dp.gather_rows(h), self.dp.gather_rows(c)
            state = None if state[0] is None else state
            if not self.is_root:
                self._saved_step = self.step
                return
        opt_state = self.opt.state_dict()
        arrays = {"opt." + k: v for k, v in opt_state.items() if isinstance(v, np.ndarray)}
        scalars = {k: v for k, v in opt_state.items() if not isinstance(v, np.ndarray)}
        if self.order is not None:
            arrays["order"] = self.order
        if state is not None:
            arrays["state_h"], arrays["state_c"] = state
        arrays["losses"] = np.asarray(self.losses, dtype=np.float64)
        settings = dict(self.opt_settings, clip=self.clip, schedule=self.schedule.kind,
                        warmup=self.schedule.warmup, step_size=self.schedule.step_size,
                        gamma=self.schedule.gamma, epochs=self.epochs, seed=self.seed,
                        patience=self.patience, eval_every=self.eval_every, out=self.out,
                        checkpoint=self.checkpoint, checkpoint_every=self.checkpoint_every,
                        log=self.log, sample_every=self.sample_every,
                        sample_length=self.sample_length, sample_prime=self.sample_prime)
        meta = dict(step=self.step, epoch=self.epoch, k=self.k,
                    n_batches=self.task.n_batches, best_val=self.best_val,
                    bad_evals=self.bad_evals, history=self.history, rng=_rng_state(self.rng),
                    dropout_rng=self.model.dropout_rng_state, opt_scalars=scalars,
                    window=self._window, time_progress=self._progress,
                    ranks=1 if self.dp is None else self.dp.size,
                    settings=settings, config=self.config)
        checkpoints.save_checkpoint(path, self.model, arrays, meta)
        self._saved_step = self.step

    # ------------------------------------------------------------- the loop
    def _train_step(self, inputs, targets, lengths):
        model, task, dp = self.model, self.task, self.dp
        dseed = None  # single process: the model's own stream of dropout seeds
        if dp is not None:
            n_all = task.count(targets, lengths)
            inputs, targets, lengths = task.rows(inputs, targets, lengths,
                                                 dp.shard(inputs.shape[1]))
            n = task.count(targets, lengths)
            dseed = self._dropout_seed()
        out, dout, loss = None, None, 0.0
        if inputs.shape[1]:  # a rank whose shard is empty still joins the allreduces
            if hasattr(task, "forward"):  # the task runs the model (an encoder-decoder)
                out, state = task.forward(model, inputs, targets, lengths, dseed), None
            else:
                out, state = model.forward(inputs, self.state if task.stateful else None,
                                           lengths=lengths, train=True, dropout_seed=dseed)
            loss, dout = task.loss(out, targets, lengths)
        if dp is not None:
            # one small float64 allreduce: the loss sum (the gradient block
            # has the model's dtype and cannot grow) and the Ctrl-C flag
            total, stop, late, elapsed = dp.sum([loss * n if n else 0.0,
                                                 float(bool(self._interrupted)),
                                                 float(self._time_up()), self._elapsed()])
            loss, self._interrupt_all = total / max(n_all, 1), stop > 0
            self._time_up_all = late > 0
            elapsed /= dp.size  # the ranks' mean: the same schedule on every rank
        else:
            elapsed = self._elapsed()
        if not math.isfinite(loss):  # the global loss: every rank stops here together
            raise NonFiniteLoss("the training loss became %r at step %d" % (loss, self.step + 1))
        model.zero_grad()
        if dout is not None:
            model.backward(dout)
        if dp is not None:
            dp.average_(model.flat_grads, weight=n, total=max(n_all, 1))
        if self.clip > 0:  # after the allreduce: the same norm and scale on every rank
            norm = optim.clip_grad_norm(model, self.clip)
            if not math.isfinite(norm):
                raise NonFiniteLoss("the gradient norm became %r at step %d"
                                    % (norm, self.step + 1))
        if self._budget is not None:
            _, seconds, p0 = self._budget
            self._progress = max(self._progress, p0 + (1 - p0) * min(1.0, elapsed / seconds))
        self.opt.lr = self.schedule(self.step + 1, self._progress)
        self.opt.step()
        if task.stateful and out is not None:
            self.state = state
        return loss

    def _elapsed(self):
        """Seconds since fit began, where it has max_seconds (else 0)."""
        return 0.0 if self._budget is None else time.perf_counter() - self._budget[0]

    def _time_up(self):
        """fit's max_seconds have passed (on this rank's clock), less room for
        one more step and the evaluation that ends the run (the last ones'
        times, the evaluation's with a quarter to spare)."""
        reserve = 1.25 * self._eval_seconds + self._step_seconds
        return self._deadline is not None and time.perf_counter() + reserve >= self._deadline

    def _dropout_seed(self):
        """Data-parallel: this step's dropout seed, drawn from the model's
        stream on every rank alike (rank 0 uses it as it is, so one rank
        is the single-process run) and mixed with the rank on the others,
        so that shards do not repeat each other's masks."""
        seed = self.model.next_dropout_seed()
        if seed and self.dp.rank:
            mixed = np.random.SeedSequence([seed, self.dp.rank]).generate_state(1, np.uint64)
            seed = int(mixed[0])
        return seed

    def _evaluate(self, elapsed):
        t0 = time.perf_counter()
        metrics = self.task.evaluate(self.model) if self.is_root else None
        if self.dp is not None:  # rank 0's record decides for every rank
            metrics, elapsed = self.dp.broadcast((metrics, elapsed))
        self._eval_seconds = time.perf_counter() - t0
        train_loss = float(np.mean(self._window)) if self._window else None
        rec = dict(step=self.step, epoch=self.step / self.task.n_batches,
                   train_loss=train_loss, lr=self.opt.lr, time=round(elapsed, 3))
        rec.update(metrics or {})
        self._window = []
        self.history.append(rec)
        self._write_log()
        sel = getattr(self.task, "selects", "val_loss")  # lower is better; a tuple: in order
        vals = [rec.get(k) for k in ((sel,) if isinstance(sel, str) else sel)]
        val = vals[0] if len(vals) == 1 else [float(v) for v in vals if v is not None]
        if any(v is None for v in vals):
            return rec
        if isinstance(self.best_val, list) != isinstance(val, list):
            self.best_val = None  # a checkpoint written when the task selected otherwise
        if self.best_val is None or val < self.best_val:
            self.best_val, self.bad_evals = val, 0
            if self.out and self.is_root:
                save(self.model, self.out)
        else:
            self.bad_evals += 1
            if self.patience is not None and self.bad_evals > self.patience:
                self._stop = True
        return rec

    def _write_log(self):
        if not (self.log and self.is_root):
            return
        keys = []
        for r in self.history:
            keys += [k for k in r if k not in keys]

        def write(f):
            if self.log.endswith(".csv") and keys:
                f.write((",".join(keys) + "\n").encode())
                for r in self.history:
                    f.write((",".join("" if r.get(k) is None else repr(r[k]) for k in keys)
                             + "\n").encode())
            else:
                for r in self.history:
                    f.write((json.dumps(r) + "\n").encode())
        atomic_write(self.log, write)

    def _sample(self):
        if not (self.is_root and self.sample_every and self.model.vocab is not None
                and self.model.softmax):
            return None
        return generate_text(self.model, self.sample_prime, self.sample_length, 0.8,
                             seed=[self.seed, self.step])

    def fit(self, max_steps: Optional[int] = None, max_seconds: Optional[float] = None
            ) -> list[dict[str, Any]]:
        """Train until the last epoch ends, early stopping triggers, max_steps
        total steps are done, or max_seconds of wall time have passed in this
        call (for the last two a checkpoint is written, so resume continues;
        data-parallel ranks stop together, at rank 0's clock or any rank's).
        With max_seconds, a cosine schedule anneals by the clock as well as
        by the steps, whichever is further (the ranks' mean clock), so a run
        the clock cuts short still ends at the final rate; a resumed run
        spends the part of the schedule that is left over its own
        max_seconds. Where the steps are ahead of the clock, nothing changes.
        A run the clock stops is evaluated once more before it stops (the
        time of the last evaluation is kept back for it), so the model file
        holds its final weights where they validate best.
        Returns the history (one record per evaluation).
        Raises Interrupted on Ctrl-C (after a checkpoint) and NonFiniteLoss
        (the last checkpoint and model file are left as they were)."""
        from tqdm import tqdm
        task = self.task
        if self.dp is not None:  # the same start on every rank (seed or checkpoint)
            self.dp.check_equal(self.model.flat_parameters)
            self.dp.check_equal(np.array([self.step, self.epoch, self.k, self.opt.steps]),
                                "positions in the run (step, epoch, batch, optimizer steps)")
        previous = signal.getsignal(signal.SIGINT)
        self._interrupted, self._interrupt_all = [], False

        def on_sigint(signum, frame):
            self._interrupted.append(True)

        in_main = True
        try:
            signal.signal(signal.SIGINT, on_sigint)
        except ValueError:  # not the main thread: no Ctrl-C handling
            in_main = False
        bar = tqdm(total=self.total_steps, initial=self.step, disable=not self.progress,
                   unit="step", dynamic_ncols=True, leave=True)
        start = time.perf_counter()
        self._deadline = None if max_seconds is None else start + max_seconds
        self._budget = None if max_seconds is None else (start, max(float(max_seconds), 1e-9),
                                                         self._progress)
        self._time_up_all = False
        units, t_units = 0, time.perf_counter()
        try:
            while self.epoch < self.epochs and not self._stop:
                if self.order is None:
                    self.order = task.epoch_order(self.rng)
                    self.k = 0
                    self.state = None
                while self.k < task.n_batches:
                    if self._interrupt_all if self.dp is not None else self._interrupted:
                        self._save_progress()
                        raise Interrupted("interrupted at step %d; checkpoint %s"
                                          % (self.step, self.checkpoint or "(none: no "
                                             "--checkpoint path)"))
                    late = self._time_up_all if self.dp is not None else self._time_up()
                    if (max_steps is not None and self.step >= max_steps) or late:
                        if late and self.step and not (self.history
                                                        and self.history[-1]["step"] == self.step):
                            # the clock ends the run: its last (annealed) weights are
                            # evaluated, and kept where they are the best
                            self._report(bar, self._evaluate(time.perf_counter() - start))
                        self._save_progress()
                        return self.history
                    t_step = time.perf_counter()
                    inputs, targets, lengths = task.batch(self.k, self.order)
                    loss = self._train_step(inputs, targets, lengths)
                    self._step_seconds = time.perf_counter() - t_step
                    self.step += 1
                    self.k += 1
                    self._window.append(loss)
                    self.losses.append(float(loss))
                    units += task.units(inputs)
                    now = time.perf_counter()
                    rate = units / max(now - t_units, 1e-9)
                    bar.set_postfix_str("loss %.3f, %.0f %s/s" % (loss, rate, task.unit),
                                        refresh=False)
                    bar.update(1)
                    if now - t_units > 10:
                        units, t_units = 0, now
                    if self.eval_every and self.step % self.eval_every == 0:
                        self._report(bar, self._evaluate(time.perf_counter() - start))
                        if self._stop:
                            break
                    if self.verbose and self.sample_every and self.step % self.sample_every == 0:
                        s = self._sample()
                        if s is not None:
                            bar.write("--- sample at step %d:\n%s\n---" % (self.step, s))
                    if self.checkpoint_every and self.step % self.checkpoint_every == 0:
                        self.save_checkpoint()
                if self.k >= task.n_batches:
                    self.epoch += 1
                    self.order = None
                    if not (self.eval_every and self.step % self.eval_every == 0):
                        self._report(bar, self._evaluate(time.perf_counter() - start))
                    self.save_checkpoint()
            if self.out and self.best_val is None and self.is_root:  # no validation: the last
                save(self.model, self.out)
            self.save_checkpoint()
        except TrainingStopped:  # raised on every rank alike: nobody is left waiting
            raise
        except BaseException as e:
            if self.dp is not None:
                kept = ("no checkpoint was written" if self._saved_step is None else
                        "the last checkpoint (%s, step %d) stays intact"
                        % (self.checkpoint, self._saved_step))
                self.dp.abort("training failed at step %d (%s: %s); %s"
                              % (self.step + 1, type(e).__name__, e, kept), e)
            raise
        finally:
            bar.close()
            if in_main:
                signal.signal(signal.SIGINT, previous)
        return self.history

    def _save_progress(self):
        """An early stop (max_steps, Ctrl-C): the checkpoint, the log so far,
        and the model file when no validation has chosen one yet."""
        if self.out and self.is_root and (self.best_val is None or not os.path.exists(self.out)):
            save(self.model, self.out)
        self._write_log()
        self.save_checkpoint()

    def _report(self, bar, rec):
        if not self.is_root:
            return
        if self.verbose:
            self._print_record(bar, rec)
        if self.on_evaluation is not None:
            with bar.external_write_mode():  # the bar steps aside, as for bar.write
                self.on_evaluation(rec)

    @staticmethod
    def _print_record(bar, rec):
        parts = ["step %d" % rec["step"], "epoch %.2f" % rec["epoch"]]
        for k in ("train_loss", "val_loss", "val_accuracy", "val_cer", "val_ter", "val_ser"):
            if rec.get(k) is not None:
                parts.append("%s %.4f" % (k, rec[k]))
        bar.write("  ".join(parts))
