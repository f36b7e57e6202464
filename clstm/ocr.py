"""Text-line recognition (OCR) data: line images as sequences of pixel
columns, their transcripts as label sequences, and on-the-fly degradation.

Conventions (Tesseract's and ocropy's): a directory of line images
`name.png` (or .jpg, .jpeg, .tif, .tiff, .bmp, .pgm, .pnm), each beside
its transcript `name.gt.txt` (UTF-8, one line). An image is converted to
grayscale, scaled to `height` pixels with its aspect kept, and read as
columns: x[t] is column t, `height` values in [0, 1] with ink 1 (dark on
light). Label ids: 0 is CTC's blank, i + 1 is alphabet[i].

Reading images needs Pillow (pip install 'pyclstm[ocr]'); the rest is
NumPy.
"""
import os

import numpy as np

from clstm import checks
from clstm.data import DataError, LabelledSequences

__all__ = ["IMAGE_SUFFIXES", "read_image", "line_images", "read_lines", "encode",
           "decode_labels", "augment", "min_width"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".pnm")


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading line images needs Pillow: pip install 'pyclstm[ocr]'") \
            from None
    return Image


def read_image(path, height):
    """A line image as (W, height) float32 columns in [0, 1], ink 1."""
    if checks.as_int(height, "height") < 1:
        raise ValueError("height: expected pixels >= 1, got %d" % height)
    Image = _pil()
    try:
        with Image.open(path) as im:
            im.load()
            g = im.convert("L")
    except (OSError, ValueError, SyntaxError) as e:  # missing, truncated, not an image
        raise DataError("%s: cannot read the image (%s)" % (path, e)) from None
    w, h = g.size
    if w < 1 or h < 1:
        raise DataError("%s: empty image (%dx%d)" % (path, w, h))
    width = max(1, int(round(w * height / h)))
    g = g.resize((width, height), Image.BILINEAR)
    a = np.asarray(g, dtype=np.float32) / 255.0
    return np.ascontiguousarray((1.0 - a).T)


def line_images(directory):
    """The sorted image paths of a lines directory (DataError: none)."""
    if not os.path.isdir(directory):
        raise DataError("%s: not a directory" % directory)
    paths = sorted(os.path.join(directory, f) for f in os.listdir(directory)
                   if f.lower().endswith(IMAGE_SUFFIXES) and not f.startswith("."))
    if not paths:
        raise DataError("%s: no line images (%s) found" % (directory, ", ".join(IMAGE_SUFFIXES)))
    return paths


def transcript_path(image_path):
    return os.path.splitext(image_path)[0] + ".gt.txt"


def read_transcript(image_path):
    """The line's text from name.gt.txt, stripped of its line end (DataError:
    missing, not UTF-8, empty or several lines)."""
    gt = transcript_path(image_path)
    try:
        with open(gt, encoding="utf-8") as f:
            text = f.read()
    except FileNotFoundError:
        raise DataError("%s: no transcript %s beside it" % (image_path, gt)) from None
    except UnicodeDecodeError as e:
        raise DataError("%s: not UTF-8 (%s)" % (gt, e)) from None
    except OSError as e:
        raise DataError("%s: %s" % (gt, e)) from None
    text = text.rstrip("\r\n")
    if not text.strip():
        raise DataError("%s: empty transcript" % gt)
    if "\n" in text or "\r" in text:
        raise DataError("%s: expected one line of text, got %d" % (gt, text.count("\n") + 1))
    return text


def min_width(labels):
    """The fewest columns CTC can align these labels to: one each, and a
    blank between equal neighbours."""
    labels = list(labels)
    return len(labels) + sum(a == b for a, b in zip(labels, labels[1:]))


def encode(text, alphabet):
    """Label ids of text (1 + its characters' places in alphabet)."""
    index = {c: i + 1 for i, c in enumerate(alphabet)}
    return np.array([index[c] for c in text], np.int64)


def decode_labels(labels, alphabet):
    """The text of label ids (blank 0 never appears in a decoding)."""
    return "".join(alphabet[k - 1] for k in labels)


def read_lines(directory, height, alphabet=None):
    """A lines directory as (LabelledSequences, alphabet). Without an
    alphabet it is every character of the transcripts, sorted; with one (a
    trained model's), a character outside it is an error naming the file.
    A line narrower (after scaling) than its transcript needs is an error
    too: CTC cannot align it."""
    paths = line_images(directory)
    texts = [read_transcript(p) for p in paths]
    if alphabet is None:
        alphabet = "".join(sorted(set("".join(texts))))
    known = set(alphabet)
    xs, ys = [], []
    for path, text in zip(paths, texts):
        bad = sorted(set(text) - known)
        if bad:
            raise DataError("%s: characters not in the model's alphabet: %s"
                            % (transcript_path(path), "".join(bad)))
        x = read_image(path, height)
        y = encode(text, alphabet)
        if len(x) < min_width(y):
            raise DataError("%s: %d columns at height %d, but its transcript (%d characters) "
                            "needs at least %d" % (path, len(x), height, len(y), min_width(y)))
        xs.append(x)
        ys.append(y)
    return LabelledSequences(xs, ys, paths), alphabet


def augment(x, rng, strength=1.0):
    """A degraded copy of a line's columns x (W, H) in [0, 1], each effect
    drawn at random: loss of resolution (down- and up-sampling), blur,
    skew (rows shifted in proportion to their height), lower contrast,
    and noise. strength scales every effect (0: none)."""
    x = np.array(x, dtype=np.float32)
    W, H = x.shape
    if rng.random() < 0.3 * strength and W > 4:  # resolution: every 2nd or 3rd column
        f = int(rng.integers(2, 4))
        small = x[::f]
        idx = np.minimum(np.arange(W) / f, len(small) - 1)
        lo = np.floor(idx).astype(int)
        hi = np.minimum(lo + 1, len(small) - 1)
        w = (idx - lo)[:, None]
        x = (1 - w) * small[lo] + w * small[hi]
    if rng.random() < 0.5 * strength:  # blur: a small separable kernel
        s = rng.uniform(0.3, 1.2) * strength
        r = np.arange(-2, 3)
        k = np.exp(-r ** 2 / (2 * s * s))
        k /= k.sum()
        pad = np.pad(x, 2, mode="edge")
        x = sum(k[i] * pad[i:i + W, 2:2 + H] for i in range(5))
        pad = np.pad(x, 2, mode="edge")
        x = sum(k[i] * pad[2:2 + W, i:i + H] for i in range(5))
    if rng.random() < 0.3 * strength:  # skew: row r moves by slope * (r - H / 2)
        slope = rng.uniform(-0.1, 0.1) * strength
        cols = np.arange(W)[:, None] + slope * (np.arange(H)[None, :] - H / 2)
        lo = np.clip(np.floor(cols).astype(int), 0, W - 1)
        hi = np.clip(lo + 1, 0, W - 1)
        w = np.clip(cols - np.floor(cols), 0, 1)
        rows = np.arange(H)[None, :]
        x = (1 - w) * x[lo, rows] + w * x[hi, rows]
    if rng.random() < 0.5 * strength:  # contrast: ink fainter, paper darker
        ink, paper = rng.uniform(0.6, 1.0), rng.uniform(0.0, 0.25 * strength)
        x = paper + (ink - paper) * x
    if rng.random() < 0.5 * strength:  # noise
        x = x + rng.normal(0, rng.uniform(0.02, 0.12) * strength, x.shape)
    return np.clip(x, 0, 1).astype(np.float32)
