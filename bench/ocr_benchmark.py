"""The OCR benchmark (issue 17): a clstm text-line recognizer against
Tesseract on the same test lines, side by side.

    python bench/ocr_lines.py DATA                  # the lines (see there)
    clstm train --lines DATA/train --augment --max-minutes 30 --out ocr.safetensors
    python bench/ocr_benchmark.py ocr.safetensors DATA [--results FILE]

For each test set (DATA/test-seen, test-unseen, test-poor) it prints the
character error rate (edit distance / ground-truth characters) and the
share of lines read exactly right, for clstm (best path, and a prefix beam
of width 10) and for Tesseract (`tesseract --psm 7`, its LSTM engine and
Debian's English model, `apt-get install tesseract-ocr`). Both outputs and
the ground truth are compared after collapsing runs of blanks and
stripping the ends. With --lm CHAR_MODEL, also clstm's beam with shallow
fusion of that character model at each --lm-weights. Speed: milliseconds
per line on one core with the model loaded once, image reading included: clstm in this process
(clstm.set_num_threads(1)); Tesseract on a list of the images in one
process (OMP_THREAD_LIMIT=1), its wall time over the lines.
"""
import argparse
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import clstm  # noqa: E402
from clstm import ocr  # noqa: E402
from clstm.cli import _line_model  # noqa: E402
from clstm.data import LabelledSequences  # noqa: E402
from clstm.tasks import LabellingTask, edit_distance  # noqa: E402

SETS = ["test-seen", "test-unseen", "test-poor"]


def norm(s):
    return re.sub(r"\s+", " ", s).strip()


def scores(pred, truth):
    errors = sum(edit_distance(norm(p), norm(t)) for p, t in zip(pred, truth))
    chars = sum(len(norm(t)) for t in truth)
    return 100.0 * errors / chars, 100.0 * sum(norm(p) == norm(t) for p, t in zip(pred, truth)) \
        / len(truth)


def clstm_read(model, chars, height, per_step, paths, width, **fusion):
    task = LabellingTask(None, blank=0)
    out, t0 = [], time.perf_counter()
    for p in paths:
        seqs = LabelledSequences([ocr.read_image(p, height, per_step)], [[]], [p])
        out.append(ocr.decode_labels(task.predict(model, seqs, width, **fusion)[0], chars))
    return out, 1e3 * (time.perf_counter() - t0) / len(paths)


def tesseract_read(paths):
    with tempfile.TemporaryDirectory() as d:
        lst = os.path.join(d, "list.txt")
        with open(lst, "w") as f:
            f.write("\n".join(paths) + "\n")
        env = dict(os.environ, OMP_THREAD_LIMIT="1")
        t0 = time.perf_counter()
        subprocess.run(["tesseract", lst, os.path.join(d, "out"), "--psm", "7", "-l", "eng"],
                       check=True, env=env, capture_output=True)
        ms = 1e3 * (time.perf_counter() - t0) / len(paths)
        text = open(os.path.join(d, "out.txt"), encoding="utf-8").read()
    pages = text.split("\f")
    return [pg.strip() for pg in pages[:len(paths)]], ms


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model")
    p.add_argument("data")
    p.add_argument("--results", default=None, help="also write the Markdown table here")
    p.add_argument("--lm", default=None,
                   help="a character model: also the beam of width 10 with shallow fusion")
    p.add_argument("--lm-weights", default="0.3,0.6",
                   help="comma-separated fusion weights to measure")
    p.add_argument("--lm-bonus", type=float, default=1.0)
    a = p.parse_args(argv)
    clstm.set_num_threads(1)
    model, alphabet, height, per_step = _line_model(a.model)
    lm = clstm.load(a.lm) if a.lm else None
    weights = [float(w) for w in a.lm_weights.split(",")] if lm is not None else []
    version = subprocess.run(["tesseract", "--version"], capture_output=True,
                             text=True).stdout.splitlines()[0]
    cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo")
                if l.startswith("model name")), platform.processor())
    rows, fused_rows = [], []
    for name in SETS:
        paths = ocr.line_images(os.path.join(a.data, name))
        truth = [ocr.read_transcript(q) for q in paths]
        greedy, ms = clstm_read(model, alphabet, height, per_step, paths, 1)
        beam, ms_beam = clstm_read(model, alphabet, height, per_step, paths, 10)
        tess, ms_t = tesseract_read(paths)
        fused = []
        for w in weights:
            f, ms_f = clstm_read(model, alphabet, height, per_step, paths, 10, lm=lm,
                                 alphabet=alphabet, lm_weight=w, lm_bonus=a.lm_bonus)
            fused.append((w,) + scores(f, truth) + (ms_f,))
            print("%-12s beam + LM weight %g bonus %g: CER %.2f%% (%.1f%% lines), %.1f ms/line"
                  % (name, w, a.lm_bonus, fused[-1][1], fused[-1][2], ms_f))
        fused_rows.append((name, fused))
        rows.append((name, len(paths)) + scores(greedy, truth) + scores(beam, truth)
                    + scores(tess, truth) + (ms, ms_beam, ms_t))
        print("%-12s clstm %.2f%% (%.1f%% lines)  beam %.2f%%  tesseract %.2f%% (%.1f%% lines)"
              "  ms/line %.1f / %.1f / %.1f" % (name, rows[-1][2], rows[-1][3], rows[-1][4],
                                                  rows[-1][6], rows[-1][7], ms, ms_beam, ms_t))
    lines = ["model: %s (%s; %s parameters)" % (a.model, ", ".join(
                 "%s %s" % (k, model.metadata[k]) for k in ("line_height", "columns_per_step")
                 if k in model.metadata),
                 model.flat_parameters.size),
             "CPU: %s; one thread each; %s" % (cpu, version), "",
             "| set | lines | clstm CER | clstm lines right | clstm beam-10 CER | "
             "Tesseract CER | Tesseract lines right | clstm ms/line | clstm beam ms/line | "
             "Tesseract ms/line |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append("| %s | %d | %.2f%% | %.1f%% | %.2f%% | %.2f%% | %.1f%% | %.1f | %.1f | %.1f |"
                     % (r[0], r[1], r[2], r[3], r[4], r[6], r[7], r[8], r[9], r[10]))
    if weights:
        lines += ["", "Shallow fusion with %s (beam 10, bonus %g): CER (lines right, ms/line)"
                  % (a.lm, a.lm_bonus), "",
                  "| set | " + " | ".join("weight %g" % w for w in weights) + " |",
                  "|---|" + "---|" * len(weights)]
        for name, fused in fused_rows:
            lines.append("| %s | " % name + " | ".join("%.2f%% (%.1f%%, %.1f)" % (f[1], f[2], f[3])
                                                       for f in fused) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    if a.results:
        with open(a.results, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
