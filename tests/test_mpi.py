"""Data-parallel training over MPI (clstm.distributed, the Trainer's
distributed=, `clstm train` under mpirun): 2 ranks on one machine over
loopback. Skips cleanly without mpi4py or mpirun."""
import os
import re
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest

import clstm
from clstm import distributed

HERE = os.path.dirname(os.path.abspath(__file__))


def mpirun():
    exe = shutil.which("mpirun") or shutil.which("mpirun", path=os.path.dirname(sys.executable))
    if not distributed.mpi_available() or exe is None:
        pytest.skip("needs mpi4py and mpirun (pip install 'pyclstm[mpi]')")
    return exe


def run_mpi(argv, cwd=None, timeout=60):
    """mpirun ARGV in its own session; on a timeout (a hung job) the whole
    process group is killed before the test fails, so no rank lingers."""
    env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               OMP_NUM_THREADS="1")
    p = subprocess.Popen([mpirun(), "--oversubscribe"] + [str(a) for a in argv], cwd=cwd,
                         env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        pytest.fail("mpirun %s hung (killed after %d s)\n%s\n%s" % (argv, timeout, out, err))
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def run_ranks(n, script, *args, timeout=60):
    return run_mpi(["-np", n, sys.executable, os.path.join(HERE, "mpi", script), *args],
                   timeout=timeout)


def test_two_ranks_give_the_single_process_gradient():
    r = run_ranks(2, "equivalence.py")
    assert r.returncode == 0, r.stdout + r.stderr
    line = [s for s in r.stdout.splitlines() if s.startswith("max_abs_diff")]
    assert len(line) == 1, r.stdout  # rank 0 alone reports
    assert float(line[0].split()[1]) <= 1e-13 * max(float(line[0].split()[3]), 1.0)


def test_two_ranks_train_like_one_process_on_the_global_batch():
    """Whole Trainer runs in float64: a character model (shards of 2 and 3
    rows), shuffled classification with an empty shard on rank 0,
    regression, CTC labelling and an encoder-decoder, each with clipping active; parameters
    and loss curves agree to the rounding of the summation order."""
    r = run_ranks(2, "trainer_equivalence.py")
    assert r.returncode == 0, r.stdout + r.stderr
    cases = re.findall(r"^case (\w+) rel_diff (\S+) max_norm (\S+) clip (\S+)", r.stdout, re.M)
    assert [c[0] for c in cases] == ["charlm", "classify", "regress", "ctc", "seq2seq"], r.stdout
    for name, diff, norm, clip in cases:
        assert float(diff) <= 1e-12, name
        assert float(norm) > float(clip), "%s: clipping never acted" % name


def test_one_process_without_mpirun():
    """A singleton run (no mpirun): rank 0 of 1, the whole batch, averaging
    is the identity."""
    if not distributed.mpi_available():
        pytest.skip("needs mpi4py")
    dp = distributed.DataParallel()
    assert (dp.rank, dp.size) == (0, 1) and dp.shard(5) == slice(0, 5)
    g = np.arange(4.0)
    dp.average_(g)
    np.testing.assert_array_equal(g, np.arange(4.0))
    with pytest.raises(TypeError, match="buf"):
        dp.average_(np.arange(4))
    dp.check_equal(clstm.LSTM(2, 3, seed=1).flat_parameters)


def test_without_mpi4py_a_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py -> ImportError
    assert not distributed.mpi_available()
    with pytest.raises(RuntimeError, match=r"pip install 'pyclstm\[mpi\]'"):
        distributed.DataParallel()


# ------------------------------------------------ resume across rank counts
def test_checkpoint_resumes_with_any_number_of_ranks(tmp_path):
    """A checkpoint holds only global state (the carried LSTM state of all
    5 rows, gathered from both ranks): a 2-rank run stopped at step 13
    resumes with 2 ranks bit-exactly as the uninterrupted 2-rank run (the
    same summation order), and with 1; a 1-process checkpoint resumes with
    2. Across rank counts the result equals the uninterrupted run to float
    rounding (the shards' partial sums are added in another order)."""
    from clstm import train as TR
    script = os.path.join(HERE, "mpi", "resume.py")

    def plain(*args):
        subprocess.run([sys.executable, script, *args], cwd=tmp_path, check=True,
                       capture_output=True, timeout=60)

    def ranks2(*args):
        r = run_mpi(["-np", 2, sys.executable, script, *args], cwd=tmp_path)
        assert r.returncode == 0, r.stdout + r.stderr

    plain("full1", "0")
    ranks2("full2", "0")
    ranks2("from2", "13")
    shutil.copy(tmp_path / "from2", tmp_path / "from2to1")
    _, arrays, meta = TR.load_checkpoint(str(tmp_path / "from2"))
    assert meta["step"] == 13 and meta["ranks"] == 2
    assert arrays["state_h"].shape[1] == arrays["state_c"].shape[1] == 5  # every row
    ranks2("from2")
    plain("from2to1")
    plain("from1", "13")
    ranks2("from1")

    def end(name):
        model, _, meta = TR.load_checkpoint(str(tmp_path / name))
        assert meta["step"] == 30, name
        return model.flat_parameters, [r["train_loss"] for r in meta["history"]]

    full1, full2 = end("full1"), end("full2")
    np.testing.assert_array_equal(end("from2")[0], full2[0])
    assert end("from2")[1] == full2[1]
    for name in ("full2", "from2to1", "from1"):
        params, curve = end(name)
        np.testing.assert_allclose(params, full1[0], rtol=0, atol=1e-12 * np.abs(full1[0]).max())
        np.testing.assert_allclose(curve, full1[1], rtol=1e-12)


# ------------------------------------------------------------ the command line
SMALL_CHAR = ["--hidden", "16", "--batch", "8", "--bptt", "16", "--sample-every", "0",
              "--no-progress", "--eval-every", "5", "--checkpoint-every", "4"]


@pytest.fixture(scope="module")
def text(tmp_path_factory):
    rng = np.random.default_rng(0)
    words = "the quick brown fox jumps over the lazy dog and then runs away".split()
    path = tmp_path_factory.mktemp("data") / "t.txt"
    path.write_text(" ".join(words[i] for i in rng.integers(0, len(words), 2000)))
    return path


def test_mpirun_clstm_train_rank_0_alone_writes_and_speaks(text, tmp_path, monkeypatch):
    """`mpirun -np 2 clstm train` (no --mpi: detected) with each rank in its
    own working directory (two app contexts) and relative output paths:
    only rank 0's directory gets files, one banner and one summary are
    printed; the model loads; a plain process resumes the 2-rank checkpoint
    to the end of the run."""
    clstm_exe = shutil.which("clstm") or os.path.join(os.path.dirname(sys.executable), "clstm")
    argv = [clstm_exe, "train", "--text", text, "--epochs", "1", "--max-steps", "6"] + SMALL_CHAR
    (tmp_path / "r0").mkdir()
    (tmp_path / "r1").mkdir()
    r = run_mpi(["-np", 1, "--wdir", tmp_path / "r0"] + argv
                + [":", "-np", 1, "--wdir", tmp_path / "r1"] + argv)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("training a character model") == 1, r.stdout
    assert "1 threads per rank, 2 ranks" in r.stdout
    assert r.stdout.count("done: 6 steps") == 1 and r.stdout.count("sample:") == 1
    assert "Traceback" not in r.stderr
    assert sorted(os.listdir(tmp_path / "r0")) == ["model.ckpt.npz", "model.log.jsonl",
                                                   "model.safetensors"]
    assert os.listdir(tmp_path / "r1") == []
    model = clstm.load(str(tmp_path / "r0" / "model.safetensors"))
    assert model.metadata["task"] == "char"
    from clstm import cli, train as TR
    _, _, meta = TR.load_checkpoint(str(tmp_path / "r0" / "model.ckpt.npz"))
    assert meta["step"] == 6 and meta["ranks"] == 2 and "mpi" not in meta["config"]
    monkeypatch.chdir(tmp_path / "r0")
    assert cli.main(["train", "--text", str(text), "--epochs", "1", "--resume",
                     "model.ckpt.npz", "--threads", "1"] + SMALL_CHAR) == 0
    end = TR.load_checkpoint(str(tmp_path / "r0" / "model.ckpt.npz"))[2]
    assert end["step"] == end["n_batches"] and end["ranks"] == 1


@pytest.mark.parametrize("how", ["raise", "exit"])
def test_a_dying_rank_ends_the_job_and_keeps_the_checkpoint(how, text, tmp_path):
    """Rank 1 raises (or exits on the spot, as a crash would) while taking
    step 7: the whole job ends with a non-zero status and a message naming
    the rank, instead of rank 0 waiting for ever in its allreduce; the
    checkpoint of step 4 is intact."""
    r = run_ranks(2, "dying_rank.py", how, 7, "train", "--text", text, "--epochs", "1",
                  "--out", tmp_path / "m.safetensors", *SMALL_CHAR)
    assert r.returncode != 0, r.stdout + r.stderr
    if how == "raise":
        assert "clstm: rank 1 of 2: training failed at step 7 (RuntimeError: simulated " \
               "failure of rank 1 at step 7); the last checkpoint (%s, step 4) stays intact" \
               % (tmp_path / "m.ckpt.npz") in r.stderr, r.stderr
        assert "MPI_ABORT was invoked on rank 1" in r.stderr
    else:
        assert "non-zero status" in r.stderr  # mpirun's own message
    from clstm import train as TR
    model, _, meta = TR.load_checkpoint(str(tmp_path / "m.ckpt.npz"))
    assert meta["step"] == 4 and np.isfinite(model.flat_parameters).all()


def _block_mpi4py(monkeypatch):
    monkeypatch.setitem(sys.modules, "mpi4py", None)  # import mpi4py -> ImportError


@pytest.mark.parametrize("how", ["--mpi", "under mpirun"])
def test_cli_without_mpi4py_one_line_and_exit_2(how, text, tmp_path, monkeypatch, capsys):
    from clstm import cli
    _block_mpi4py(monkeypatch)
    argv = ["train", "--text", str(text), "--out", str(tmp_path / "m.safetensors"),
            "--threads", "1", "--no-progress"]
    if how == "--mpi":
        argv.append("--mpi")
    else:
        monkeypatch.setenv("OMPI_COMM_WORLD_SIZE", "2")
        monkeypatch.setenv("OMPI_COMM_WORLD_RANK", "0")
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("clstm train: "), err
    assert "needs mpi4py" in err and "pip install 'pyclstm[mpi]'" in err
    assert ("--mpi" if how == "--mpi" else "one of 2 processes") in err
    assert os.listdir(tmp_path) == []


def test_plain_run_never_imports_mpi4py(text, tmp_path, monkeypatch):
    """Without mpi4py (or without mpirun), clstm train is the single-process
    trainer it always was."""
    from clstm import cli
    _block_mpi4py(monkeypatch)
    for key in ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE"):
        monkeypatch.delenv(key, raising=False)
    assert cli.main(["train", "--text", str(text), "--out", str(tmp_path / "m.safetensors"),
                     "--max-steps", "2", "--threads", "1"] + SMALL_CHAR) == 0
    assert (tmp_path / "m.safetensors").is_file()
