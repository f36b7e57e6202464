"""Text-line recognition (OCR) data: line images as sequences of pixel
columns, their transcripts as label sequences, and on-the-fly degradation.

Conventions (Tesseract's and ocropy's): a directory of line images
`name.png` (or .jpg, .jpeg, .tif, .tiff, .bmp, .pgm, .pnm), each beside
its transcript `name.gt.txt` (UTF-8, one line). An image is converted to
grayscale, scaled to `height` pixels with its aspect kept, and read as
columns: x[t] is column t, `height` values in [0, 1] with ink 1 (dark on
light). A model may read several neighbouring columns as one time step
(frames(); `clstm train --columns-per-step`), which shortens the sequence
the LSTM and CTC run over. Label ids: 0 is CTC's blank, i + 1 is alphabet[i].

Reading images needs Pillow (pip install 'pyclstm[ocr]'); the rest is
NumPy.
"""
import os

import numpy as np

from clstm import checks
from clstm.data import DataError, LabelledSequences

__all__ = ["IMAGE_SUFFIXES", "read_image", "line_images", "read_lines", "encode",
           "decode_labels", "augment", "frames", "min_width"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".pgm", ".pnm")


def _pil():
    try:
        from PIL import Image
    except ImportError:
        raise DataError("reading line images needs Pillow: pip install 'pyclstm[ocr]'") \
            from None
    return Image


def read_image(path, height, per_step=1):
    """A line image as (W, height) float32 columns in [0, 1], ink 1; with
    per_step > 1, as frames(columns, per_step)."""
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
    return frames(np.ascontiguousarray((1.0 - a).T), per_step)


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


def read_lines(directory, height, alphabet=None, per_step=1):
    """A lines directory as (LabelledSequences, alphabet), each line read by
    read_image(path, height, per_step). Without an
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
        x = read_image(path, height, per_step)
        y = encode(text, alphabet)
        if len(x) < min_width(y):
            raise DataError("%s: %d time steps at height %d (%d columns each), but its "
                            "transcript (%d characters) needs at least %d"
                            % (path, len(x), height, per_step, len(y), min_width(y)))
        xs.append(x)
        ys.append(y)
    return LabelledSequences(xs, ys, paths), alphabet


def frames(columns, per_step=1):
    """Line columns (W, H) as time steps of per_step neighbouring columns:
    (ceil(W / per_step), per_step * H), the last step padded with paper
    (0). per_step 1 returns the columns as they are."""
    k = checks.as_int(per_step, "per_step")
    if k < 1:
        raise ValueError("per_step: expected columns per time step >= 1, got %d" % k)
    x = np.asarray(columns, dtype=np.float32)
    if k == 1:
        return x
    W, H = x.shape
    pad = -W % k
    if pad:
        x = np.concatenate([x, np.zeros((pad, H), np.float32)])
    return np.ascontiguousarray(x.reshape((W + pad) // k, k * H))


def _resized(x, width, height):
    """Columns x (W, H) resampled to (width, height), bilinear with Pillow's
    antialiasing when shrinking."""
    Image = _pil()
    im = Image.fromarray(np.ascontiguousarray(x.T, dtype=np.float32), "F")
    return np.asarray(im.resize((max(1, width), max(1, height)), Image.BILINEAR)).T


def _tilted(x, degrees):
    """The line turned by `degrees` on a canvas grown to hold it, scaled back
    to the line's height: as a skewed scan looks once read_image has scaled
    it, smaller text on a slanted baseline."""
    Image = _pil()
    W, H = x.shape
    im = Image.fromarray(np.ascontiguousarray(x.T, dtype=np.float32), "F")
    im = im.rotate(degrees, Image.BILINEAR, expand=True, fillcolor=0.0)
    w, h = im.size
    return _resized(np.asarray(im).T, int(round(w * H / h)), H)


def augment(x, rng, strength=1.0, per_step=1):
    """A degraded copy of a line x in [0, 1] (columns (W, H), or
    frames(columns, per_step) of them), each effect drawn at random, in the
    order a page meets them: wider or narrower type, bolder or lighter
    strokes, a slanted baseline, italic-like shear, loss of resolution
    (shrunk by 1.3-2.2x and grown back), blur, lower contrast, noise and
    speckles. strength scales every effect's chance and size (0: none).
    The line's width may change; its height does not. Geometry needs
    Pillow, as reading images does."""
    cols = np.array(x, dtype=np.float32)
    k = checks.as_int(per_step, "per_step")
    if cols.ndim != 2 or k < 1 or cols.shape[1] % k:
        raise ValueError("x: expected (steps, per_step * height) with per_step %d, got shape %s"
                         % (k, cols.shape))
    H = cols.shape[1] // k
    x = cols.reshape(-1, H)
    if strength <= 0:
        return frames(x, k)

    def chance(p):
        return rng.random() < p * strength

    W = x.shape[0]
    if chance(0.4) and W > 4:  # type width: 0.8-1.25x
        x = _resized(x, int(round(W * np.exp(rng.uniform(-0.22, 0.22) * strength))), H)
    if chance(0.3):  # stroke weight: a blend towards the 3x3 max (bolder) or min (lighter)
        pad = np.pad(x, 1, mode="edge")
        shifted = [pad[i:i + x.shape[0], j:j + H] for i in range(3) for j in range(3)]
        bolder = rng.random() < 0.5
        target = np.max(shifted, axis=0) if bolder else np.min(shifted, axis=0)
        a = rng.uniform(0.2, 0.6 if bolder else 0.4) * min(strength, 1.0)
        x = (1 - a) * x + a * target
    if chance(0.3):  # slanted baseline, and the line scaled down with it
        x = _tilted(x, rng.uniform(-2.0, 2.0) * strength)
    W = x.shape[0]
    if chance(0.2):  # shear: row r moves by slope * (r - H / 2)
        slope = rng.uniform(-0.15, 0.15) * strength
        cols = np.arange(W)[:, None] + slope * (np.arange(H)[None, :] - H / 2)
        lo = np.clip(np.floor(cols).astype(int), 0, W - 1)
        hi = np.clip(lo + 1, 0, W - 1)
        w = np.clip(cols - np.floor(cols), 0, 1)
        rows = np.arange(H)[None, :]
        x = (1 - w) * x[lo, rows] + w * x[hi, rows]
    if chance(0.35) and W > 4:  # resolution: shrunk by 1.3-2.2x, grown back
        f = 1 + rng.uniform(0.3, 1.2) * strength
        x = _resized(_resized(x, int(W / f), int(H / f)), W, H)
    if chance(0.5):  # blur: a small separable Gaussian kernel
        s = rng.uniform(0.3, 1.3) * strength
        r = np.arange(-2, 3)
        g = np.exp(-r ** 2 / (2 * s * s))
        g /= g.sum()
        pad = np.pad(x, 2, mode="edge")
        x = sum(g[i] * pad[i:i + W, 2:2 + H] for i in range(5))
        pad = np.pad(x, 2, mode="edge")
        x = sum(g[i] * pad[2:2 + W, i:i + H] for i in range(5))
    ink, paper = 1.0, 0.0
    if chance(0.5):  # contrast: ink fainter, paper darker
        ink, paper = rng.uniform(0.5, 1.0), rng.uniform(0.0, 0.35 * strength)
        x = paper + (ink - paper) * x
    if chance(0.5):  # noise
        x = x + rng.normal(0, rng.uniform(0.02, 0.12) * strength, x.shape)
    if chance(0.3):  # speckles: dots of ink, 1-2 pixels across
        x = np.array(x, dtype=np.float32)
        for _ in range(int(rng.integers(3, 30))):
            c, r, d = rng.integers(0, W), rng.integers(0, H), rng.integers(1, 3)
            x[c:c + d, r:r + d] = ink
    return frames(np.clip(x, 0, 1).astype(np.float32), k)
