"""Text-line images for the OCR benchmark (issue 17): real English text
rendered in fonts from Debian packages, in the Tesseract/ocropy layout
(name.png beside name.gt.txt).

    python bench/ocr_lines.py OUT [--train N] [--test N] [--seed S]

writes
    OUT/train         N lines of Python's reference manual (pydoc_data, the
                      text `clstm train` uses), half of them as written and
                      half its words shuffled (--shuffled), in the training
                      fonts, mildly degraded
    OUT/test-seen     lines of the licence texts in /usr/share/common-licenses
                      (no sentence of which is in the manual), training fonts
    OUT/test-unseen   the same kind of lines in fonts never used in training
    OUT/test-poor     poor scans of the test text in the training fonts: low
                      resolution, heavy blur and noise, low contrast, skew
                      and speckles

Fonts (Debian: fonts-dejavu-core, fonts-liberation2, fonts-freefont-ttf):
training DejaVu Sans, DejaVu Serif, Liberation Sans, Liberation Serif,
FreeSans, DejaVu Sans Mono (the test's seen fonts), and for training only
18 other styles of those families (bold, italic, condensed, extra-light);
unseen FreeSerif, Liberation Mono, FreeMono, no style of whose families is
used in training.
Lines are 20 to 45 characters of word-wrapped text; test lines keep only
characters the training lines have (the model cannot know the others).
Each line is rendered at a random size near 22 px on a canvas 1.5 times as
high, left-aligned with a small margin. Needs Pillow and NumPy.
"""
import argparse
import glob
import os
import re
import sys

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from clstm.data import builtin_text  # noqa: E402

FONT_DIR = "/usr/share/fonts/truetype"
SEEN = ["dejavu/DejaVuSans.ttf", "dejavu/DejaVuSerif.ttf",
        "liberation2/LiberationSans-Regular.ttf", "liberation2/LiberationSerif-Regular.ttf",
        "freefont/FreeSans.ttf", "dejavu/DejaVuSansMono.ttf"]
# every style of the seen families, for training only (no file of an unseen
# family: FreeSerif*, LiberationMono*, FreeMono*)
STYLES = ["dejavu/DejaVuSans-Bold.ttf", "dejavu/DejaVuSans-Oblique.ttf",
          "dejavu/DejaVuSans-ExtraLight.ttf", "dejavu/DejaVuSansCondensed.ttf",
          "dejavu/DejaVuSansCondensed-Bold.ttf", "dejavu/DejaVuSerif-Bold.ttf",
          "dejavu/DejaVuSerif-Italic.ttf", "dejavu/DejaVuSerifCondensed.ttf",
          "dejavu/DejaVuSerifCondensed-Italic.ttf", "dejavu/DejaVuSansMono-Bold.ttf",
          "dejavu/DejaVuSansMono-Oblique.ttf", "liberation2/LiberationSans-Bold.ttf",
          "liberation2/LiberationSans-Italic.ttf", "liberation2/LiberationSerif-Bold.ttf",
          "liberation2/LiberationSerif-Italic.ttf", "liberation2/LiberationSerif-BoldItalic.ttf",
          "freefont/FreeSansBold.ttf", "freefont/FreeSansOblique.ttf"]
UNSEEN = ["freefont/FreeSerif.ttf", "liberation2/LiberationMono-Regular.ttf",
          "freefont/FreeMono.ttf"]
LICENCES = "/usr/share/common-licenses"


def fonts(names):
    paths = [os.path.join(FONT_DIR, n) for n in names]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        sys.exit("ocr_lines: missing fonts %s (apt-get install fonts-dejavu-core "
                 "fonts-liberation2 fonts-freefont-ttf)" % ", ".join(missing))
    return paths


def lines_of(text, rng, keep=None):
    """Word-wrapped lines of 20..45 printable ASCII characters."""
    words = re.sub(r"[^ -~]", " ", text).split()
    out, cur, want = [], [], rng.integers(20, 46)
    for w in words:
        if len(w) > 40:
            continue
        if cur and len(" ".join(cur + [w])) > want:
            line = " ".join(cur)
            if len(line) >= 20 and (keep is None or set(line) <= keep):
                out.append(line)
            cur, want = [], rng.integers(20, 46)
        cur.append(w)
    return out


def shuffled_words(lines, n, rng):
    """n lines of the manual's words in random order, some capitalized,
    some in capitals, some numbers among them: text whose next character
    the model cannot guess from the manual's phrases, so that it learns to
    read letters rather than the manual."""
    words = " ".join(lines).split()
    out = []
    while len(out) < n:
        want, cur = rng.integers(20, 46), []
        while len(" ".join(cur)) < want:
            u = rng.random()
            if u < 0.08:
                w = str(int(rng.integers(0, 10 ** int(rng.integers(1, 6)))))
            else:
                w = words[int(rng.integers(len(words)))]
                w = w.capitalize() if u < 0.25 else w.upper() if u < 0.3 else w
            cur.append(w)
        line = " ".join(cur)[:45].rstrip()
        if len(line) >= 20:
            out.append(line)
    return out


def render(text, font_path, rng, size):
    font = ImageFont.truetype(font_path, size)
    left, top, right, bottom = font.getbbox(text)
    h = int(round(size * 1.5))
    w = right + int(rng.integers(6, 14))
    im = Image.new("L", (w, h), 255)
    y = (h - (bottom + top)) // 2
    ImageDraw.Draw(im).text((int(rng.integers(3, 8)), y), text, fill=0, font=font)
    return im


def mild(im, rng):
    if rng.random() < 0.5:
        im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.2, 0.6)))
    a = np.asarray(im, np.float32) + rng.normal(0, rng.uniform(0, 5), (im.height, im.width))
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def poor(im, rng):
    """A bad scan: resolution loss, blur, skew, low contrast, noise, speckles
    (calibrated so that Tesseract reads about a quarter of the characters
    wrong, as on the issue's poor scans)."""
    w, h = im.size
    f = rng.uniform(1.4, 2.0)
    im = im.resize((max(1, int(w / f)), max(1, int(h / f))), Image.BILINEAR).resize((w, h),
                                                                               Image.BILINEAR)
    im = im.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 0.9)))
    im = im.rotate(rng.uniform(-1.5, 1.5), resample=Image.BILINEAR, expand=True, fillcolor=255)
    a = np.asarray(im, np.float32) / 255
    ink, paper = rng.uniform(40, 100), rng.uniform(170, 230)
    a = ink + (paper - ink) * a
    a += rng.normal(0, rng.uniform(8, 15), a.shape)
    for _ in range(int(rng.integers(5, 25))):  # speckles
        y, x = rng.integers(0, a.shape[0]), rng.integers(0, a.shape[1])
        a[max(0, y - 1):y + 1, max(0, x - 1):x + 1] = ink
    return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))


def write_set(out, lines, font_paths, rng, degrade, font_weights=None):
    os.makedirs(out, exist_ok=True)
    for i, text in enumerate(lines):
        font = (font_paths[i % len(font_paths)] if font_weights is None else
                font_paths[rng.choice(len(font_paths), p=font_weights)])
        im = degrade(render(text, font, rng, int(rng.integers(19, 26))), rng)
        name = os.path.join(out, "%05d" % i)
        im.save(name + ".png")
        with open(name + ".gt.txt", "w", encoding="utf-8") as f:
            f.write(text + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out")
    p.add_argument("--train", type=int, default=20000, help="training lines")
    p.add_argument("--test", type=int, default=400, help="lines in each test set")
    p.add_argument("--shuffled", type=float, default=0.5,
                   help="share of training lines made of the manual's words in random order")
    p.add_argument("--seed", type=int, default=1)
    a = p.parse_args(argv)
    rng = np.random.default_rng(a.seed)
    rng_test = np.random.default_rng([a.seed, 2])  # test sets independent of training's
    seen, unseen, styles = fonts(SEEN), fonts(UNSEEN), fonts(STYLES)
    manual = lines_of(builtin_text(), rng)
    rng.shuffle(manual)
    n_shuffled = int(round(a.train * a.shuffled))
    train = manual[:a.train - n_shuffled] + shuffled_words(manual, n_shuffled, rng)
    rng.shuffle(train)
    alphabet = set("".join(train))
    licences = sorted(glob.glob(os.path.join(LICENCES, "*")))
    if not licences:
        sys.exit("ocr_lines: no licence texts in %s" % LICENCES)
    test_text = " ".join(open(f, encoding="utf-8", errors="replace").read()
                         for f in licences if os.path.isfile(f))
    test = lines_of(test_text, rng_test, keep=alphabet)
    known = set(train)
    test = [t for t in test if t not in known]
    rng_test.shuffle(test)
    if len(test) < 3 * a.test:
        sys.exit("ocr_lines: only %d test lines" % len(test))
    # half the training lines in the six regular faces, half in the other styles
    weights = np.r_[np.full(len(seen), 0.5 / len(seen)), np.full(len(styles), 0.5 / len(styles))]
    write_set(os.path.join(a.out, "train"), train, seen + styles, rng, mild, weights)
    for name, lines, faces, degrade in (("test-seen", test[:a.test], seen, mild),
                                        ("test-unseen", test[a.test:2 * a.test], unseen, mild),
                                        ("test-poor", test[2 * a.test:3 * a.test], seen, poor)):
        write_set(os.path.join(a.out, name), lines, faces, rng_test, degrade)
    print("ocr_lines: %d training lines (%d characters in the alphabet), 3 x %d test lines "
          "in %s" % (len(train), len(alphabet), a.test, a.out))


if __name__ == "__main__":
    main()
