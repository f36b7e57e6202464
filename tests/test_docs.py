"""The Python code in README.md and the user guide (docs/) runs as shown:
each page's ```python blocks are executed in order in one namespace, after
a setup that makes what the page takes as given (a text, a torch module, a
file of pairs). A renamed argument or a changed return value fails here
before a reader meets it. (mkdocs build --strict, in .ci/run, checks the
site's links; the C snippets are compiled by hand, not here.)"""
import os
import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# page -> the setup its blocks assume, and the extras it needs
PAGES = {
    "README.md": ("", ()),
    "docs/cli.md": ("""
pathlib.Path("prices.csv").write_text("close\\n" + "".join("%.3f\\n" % (100 + np.sin(i / 5))
                                                          for i in range(300)))
""", ()),
    "docs/guide/classification.md": ("""
rng = np.random.default_rng(0)
X_new = rng.standard_normal((60, 12, 3)) * 5 + 10                    # unscaled features
lengths_new = rng.integers(6, 13, 60)
np.savez("train.npz", X=X_new, lengths=lengths_new,
         y=(X_new[:, :, 0].mean(axis=1) > 10).astype(np.int64))
""", ()),  # fit() bounded to 3 steps below
    "docs/guide/lstm.md": ("""
import torch
torch_lstm = torch.nn.LSTM(64, 128, num_layers=2, bidirectional=True, proj_size=32)
kernel = np.random.randn(64, 512).astype(np.float32)          # a Keras LSTM's get_weights()
recurrent_kernel = np.random.randn(128, 512).astype(np.float32)
bias = np.zeros(512, np.float32)
""", ("torch",)),
    "docs/guide/models.md": ("""
import clstm.optim
from clstm.data import builtin_text
text = builtin_text()[:3000]
x = np.random.randn(12, 2, 4).astype(np.float32)              # CTC: (T, B, 4) features
lengths = [12, 9]
""", ()),
    "docs/guide/files.md": ("lstm = clstm.LSTM(3, 4)\n", ()),
    "docs/guide/quantization.md": ("""
model = clstm.Model(vocab="abc ", hidden_size=8, output_size=4, softmax=True)
ids = model.encode("abc cab")
""", ()),
    "docs/guide/seq2seq.md": ("""
pathlib.Path("train.tsv").write_text("cat\\tK AE T\\nphoneme\\tF OW N IY M\\n" * 40)
""", ()),
    "docs/guide/torch-differences.md": ("lstm = clstm.LSTM(3, 4)\n", ()),
    "docs/guide/training.md": ("", ()),  # fit() bounded to 3 steps below
    "docs/interchange.md": ("", ("torch", "onnx", "onnxruntime", "keras")),
}


def python_blocks(text):
    """The ```python blocks of a Markdown text, list indentation removed."""
    blocks = []
    for indent, body in re.findall(r"^( *)```python\n(.*?)^\1```", text, re.S | re.M):
        blocks.append("\n".join(line[len(indent):] for line in body.splitlines()))
    return blocks


def test_python_blocks_finds_indented_blocks():
    text = "a\n```python\nx = 1\n```\n- item\n\n  ```python\n  y = 2\n  ```\n"
    assert python_blocks(text) == ["x = 1", "y = 2"]


@pytest.mark.parametrize("page", sorted(PAGES))
def test_page_code_runs(page, tmp_path, monkeypatch):
    setup, needs = PAGES[page]
    # Keras 3 on the torch backend (the test extra's); set before keras is imported
    monkeypatch.setenv("KERAS_BACKEND", os.environ.get("KERAS_BACKEND", "torch"))
    for module in needs:
        pytest.importorskip(module)
    blocks = python_blocks((ROOT / page).read_text(encoding="utf-8"))
    assert blocks, "%s has no Python block: remove it from PAGES" % page
    monkeypatch.chdir(tmp_path)  # the blocks write model files
    # a block may run the clstm command: the one beside this Python
    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep
                       + os.environ.get("PATH", ""))
    if page in ("docs/guide/training.md", "docs/guide/classification.md"):
        # their examples train for minutes: the API, briefly
        from clstm.trainer import Trainer
        fit = Trainer.fit
        monkeypatch.setattr(Trainer, "fit", lambda self, **kw: fit(self, max_steps=3))
    ns = {}
    exec("import pathlib\nimport numpy as np\nimport clstm\n" + setup, ns)
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, "%s, block %d" % (page, i + 1), "exec"), ns)
        except Exception as e:
            pytest.fail("%s, Python block %d: %s: %s" % (page, i + 1, type(e).__name__, e))


def test_every_page_with_python_is_run():
    """A new page with Python blocks is added to PAGES (and so tested)."""
    pages = [ROOT / "README.md"] + sorted((ROOT / "docs").rglob("*.md"))
    with_code = {str(p.relative_to(ROOT)) for p in pages
                 if python_blocks(p.read_text(encoding="utf-8"))}
    untested = with_code - set(PAGES)
    assert not untested, "add these pages to PAGES: %s" % sorted(untested)


def test_readme_links_resolve():
    """README's relative links (to docs/ pages, the header, bench/RESULTS.md)
    name files that exist; mkdocs build --strict checks the pages' own."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    targets = [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", text)
               if "://" not in t]
    assert len(targets) >= 10
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert not missing, missing
