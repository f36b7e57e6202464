"""The package's type information is right: the stub of the Cython extension
(clstm/_core.pyi) matches the compiled module, and the Python code of README.md
and the user guide (the pages tests/test_docs.py runs) type-checks under
`mypy --strict` against the package's hints. Skipped where mypy is absent.

Against the clstm under test: the source tree, or an installed wheel (.ci/wheel),
whose py.typed and _core.pyi mypy then finds in site-packages. Nothing is written
into the tree: mypy's cache goes into pytest's (or a temporary directory)."""
import os
import pathlib
import re
import subprocess
import sys

import pytest

import clstm
from test_docs import PAGES, ROOT, python_blocks

pytest.importorskip("mypy")

CONFIG = str(ROOT / "pyproject.toml")


def _mypy(args, cwd):
    """python -m args in cwd (not the root: -m puts cwd first on sys.path)."""
    env = dict(os.environ)
    env.pop("MYPYPATH", None)
    if pathlib.Path(clstm.__file__).resolve().parent.parent == ROOT:  # the source tree
        env["PYTHONPATH"] = env["MYPYPATH"] = str(ROOT)
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env,
                          capture_output=True, text=True)


@pytest.fixture
def mypy_cache(request, tmp_path_factory):
    cache = getattr(request.config, "cache", None)  # absent with -p no:cacheprovider
    return cache.mkdir("mypy") if cache is not None else tmp_path_factory.mktemp("mypy")


def test_stub_matches_extension(tmp_path):
    r = _mypy(["mypy.stubtest", "--allowlist", str(ROOT / "tests/stubtest_allowlist.txt"),
               "clstm._core"], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


def _module_name(page):
    return "page_" + re.sub(r"\W", "_", page[:-len(".md")])


# Calls into functions whose hints come with other branches of issue 20 (the
# constructors' signature lines, clstm.interop, clstm.tasks): accepted here while
# untyped, and each must still occur, so an entry goes once its function is typed.
PENDING = ['"LSTM"', '"Model"', '"Seq2Seq"', '"from_torch" of "Interchange"',
           '"from_keras" of "Interchange"', '"from_onnx" of "Interchange"',
           '"LanguageModelTask"', '"Sequences"', '"split"', '"SequenceTask"',
           '"predict_sequences"']


def test_docs_examples_typecheck(tmp_path, mypy_cache):
    """Each page becomes one module (its setup, then its blocks in order, as
    test_docs runs them); one mypy run checks them all. --strict, so a call
    into an unannotated clstm function fails here (disallow-untyped-calls);
    the clstm modules they import are followed silently (their own check is
    test_package_typechecks, with the repository's settings)."""
    files = {}
    for page, (setup, _) in sorted(PAGES.items()):
        blocks = python_blocks((ROOT / page).read_text(encoding="utf-8"))
        path = tmp_path / (_module_name(page) + ".py")
        path.write_text("import pathlib\nimport numpy as np\nimport clstm\n" + setup + "\n"
                        + "\n".join(blocks) + "\n", encoding="utf-8")
        files[path.name] = page
    # the repository's [tool.mypy] (python_version, the overrides for torch and the
    # untyped libraries)
    r = _mypy(["mypy", "--strict", "--follow-imports=silent", "--config-file", CONFIG,
               "--cache-dir", str(mypy_cache / "docs"), "--no-error-summary",
               *sorted(files)], tmp_path)
    assert r.returncode in (0, 1) and not r.stderr.strip(), r.stdout + r.stderr
    lines = r.stdout.splitlines()
    assert all(line.split(":")[0] in files for line in lines), r.stdout
    pending = {p: 0 for p in PENDING}
    errors = []
    for line in lines:
        if ": error:" not in line:
            continue
        m = re.search(r"Call to untyped function (.*) in typed context", line)
        if m and m.group(1) in pending:
            pending[m.group(1)] += 1
        else:
            errors.append("%s (%s)" % (line, files[line.split(":")[0]]))
    assert not errors, "\n".join(errors)
    typed_now = [p for p, n in pending.items() if n == 0]
    assert not typed_now, "now typed: remove from PENDING: %s" % typed_now


def test_package_typechecks(tmp_path, mypy_cache):
    """`mypy` as a developer runs it from the root: the source tree's package
    with pyproject.toml's [tool.mypy] settings."""
    r = _mypy(["mypy", "--config-file", CONFIG, "--cache-dir", str(mypy_cache / "package"),
               str(ROOT / "clstm")], tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
