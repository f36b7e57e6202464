"""clstm.export_c: a trained model as one dependency-free C file and its
header, for microcontrollers and any C99 compiler.

``export_c(model, dir, name=...)`` writes ``dir/NAME.c`` and ``dir/NAME.h``.
The weights are ``const`` arrays (so a linker puts them in flash): float32,
or int8 with one float32 scale per row for a quantized model
(clstm.quantize). The code has no heap, no BLAS, no OpenMP and no libm
(clstm's own exp, sigmoid and tanh are compiled in; defining NAME_LIBM
uses libm's expf and tanhf instead). Every public symbol starts with
``NAME_``, so several exported models link into one program. The header
documents each of them.

A model trained with standardized features (clstm.tasks.Standardization:
`clstm train --npz` and `--csv` models) takes its inputs on the data's own
scale: the code applies the model's input_mean and input_std, and maps a
regression's outputs back by output_mean and output_std, in double, as
clstm does.

Numbers: compiled with a C99 compiler that rounds each float operation
to float (FLT_EVAL_METHOD 0; no -ffast-math, and no -ffp-contract=fast
with clang; the file turns FMA contraction off itself for GCC and, short
of that flag, clang), a float32 model's outputs match clstm's to float32
rounding (different summation orders), and a quantized model's are the
same bits as clstm's int8 path.
"""
import os
import re
import shutil
import tempfile
from importlib import resources

import numpy as np

from clstm import io
from clstm.model import LSTM

__all__ = ["export_c", "check_program"]

_C_KEYWORDS = set("""auto break case char const continue default do double else enum extern
float for goto if inline int long register restrict return short signed sizeof static struct
switch typedef union unsigned void volatile while _Bool _Complex _Imaginary""".split())
_MAX_ELEMENTS = 2**31 - 1  # the code indexes with int32_t sizes and size_t offsets


def _runtime_text(filename):
    """A C source shipped with the package (or beside it in a checkout)."""
    try:
        return resources.files("clstm").joinpath(filename).read_text(encoding="utf-8")
    except (FileNotFoundError, OSError):
        pass
    here = os.path.dirname(os.path.abspath(__file__))
    with open(os.path.join(here, "..", "src", filename), encoding="utf-8") as f:
        return f.read()


def c_name(name, what="name"):
    """`name` if it is a usable C prefix, else ValueError naming `what`."""
    if not isinstance(name, str):
        raise TypeError("%s: expected a str, got %s" % (what, type(name).__name__))
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]{0,39}", name) or name in _C_KEYWORDS:
        raise ValueError("%s: expected a C identifier of at most 40 characters that starts "
                         "with a letter (it prefixes every exported symbol), got %r"
                         % (what, name))
    if name.lower() == "cx" or name.lower().startswith("cx_"):
        raise ValueError("%s: names starting with 'cx_' are the exported file's own" % what)
    return name


def name_from_path(path):
    """A C prefix from a model file's stem: characters other than letters,
    digits and _ become _, and an "m" goes before a leading digit or _ (and
    before "cx_", the exported file's own prefix)."""
    stem = os.path.splitext(os.path.basename(os.fspath(path)))[0]
    name = re.sub(r"[^A-Za-z0-9_]", "_", stem)[:40] or "model"
    if not name[0].isalpha() or name.lower() == "cx" or name.lower().startswith("cx_"):
        name = ("m" + name)[:40]
    return "model" if name in _C_KEYWORDS else name


def _check_model(model):
    from clstm.seq2seq import Seq2Seq
    if isinstance(model, Seq2Seq):
        raise ValueError("model: an encoder-decoder does not export to C (its beam search "
                         "needs memory that grows with the output); export an LSTM or Model")
    if not isinstance(model, LSTM):
        raise TypeError("model: expected a clstm.LSTM or clstm.Model, got %s"
                        % type(model).__name__)
    if model.dtype != np.float32:
        raise ValueError("model: float64; exported code computes in float32 (or int8): "
                         "convert the model to float32 first")
    for name, value in model.named_parameters().items():
        if value.size > _MAX_ELEMENTS:
            raise ValueError("model: %s has %d elements; exported arrays hold at most 2^31 - 1"
                             % (name, value.size))
        if not np.all(np.isfinite(value)):
            raise ValueError("model: %s holds NaN or Inf; an exported model needs finite "
                             "weights" % name)


def _scaling(model):
    """(input, output): the Standardizations the exported code applies (the
    model's metadata, clstm.tasks.model_scaling; the input's only for real
    features, the output's only with a head); None where there is none.
    ValueError for malformed metadata."""
    from clstm.tasks import model_scaling
    inputs, outputs = model_scaling(model)
    return (inputs if model.encoding is None else None,
            outputs if model.output_size else None)


def _doubles(values):
    """C double literals that round-trip float64 (17 significant digits)."""
    out = []
    for v in np.asarray(values, np.float64).ravel().tolist():
        s = "%.17g" % v
        out.append(s if any(ch in s for ch in ".en") else s + ".0")
    return out


def _floats(values, nonfinite=False):
    """C float literals: 9 significant digits round-trip every float32.
    NaN and Inf are <math.h>'s NAN and INFINITY with nonfinite, else a
    ValueError."""
    out = []
    for v in np.asarray(values, np.float32).ravel().astype(np.float64).tolist():
        if not np.isfinite(v):
            if not nonfinite:
                raise ValueError("a non-finite value (%r) where C needs a finite constant" % v)
            out.append("NAN" if v != v else "INFINITY" if v > 0 else "-INFINITY")
            continue
        s = "%.9g" % v
        if not any(ch in s for ch in ".en"):
            s += ".0"
        out.append(s + "f")
    return out


def _array(ctype, name, items, comment):
    lines = ["/* %s */" % comment,
             "static const %s %s[%d] = {" % (ctype, name, max(len(items), 1))]
    per = 8 if ctype == "float" else 4 if ctype == "double" else 20
    for i in range(0, len(items), per):
        lines.append("    " + ", ".join(items[i:i + per]) + ",")
    if not items:
        lines.append("    0,")
    lines.append("};")
    return "\n".join(lines)


class _Arrays:
    """The const arrays of the weights, and the C names they got."""

    def __init__(self, model):
        self.params = model.named_parameters()
        self.int8 = model.int8_tensors() if model.quantized else {}
        self.chunks = []

    def weight(self, tensor, cname):
        """Emit `tensor` (int8 + scales where quantized); returns the C names
        (values, scales or None)."""
        shape = self.params[tensor].shape
        if tensor in self.int8:
            q, s = self.int8[tensor]
            self.chunks.append(_array("int8_t", cname + "_q", [str(int(v)) for v in q.ravel()],
                                      "%s %s, int8" % (tensor, shape)))
            self.chunks.append(_array("float", cname + "_s", _floats(s),
                                      "%s: its rows' scales (w = q * s)" % tensor))
            return cname + "_q", cname + "_s"
        self.chunks.append(_array("float", cname, _floats(self.params[tensor]),
                                  "%s %s" % (tensor, shape)))
        return cname, None


def _units(model, arrays):
    """The unit table: one entry per layer and direction."""
    entries = []
    q = model.quantized
    for layer in range(model.num_layers):
        for d in range(model.num_directions):
            sfx = "_l%d%s" % (layer, "_reverse" if d else "")
            fields = {}
            for kind in ("ih", "hh", "hr"):
                t = "weight_%s%s" % (kind, sfx)
                if t in arrays.params:
                    fields[kind] = arrays.weight(t, "cx_w%s%s" % (kind, sfx))
                else:
                    fields[kind] = ("0", "0")
            bih = arrays.weight("bias_ih" + sfx, "cx_bih" + sfx)[0]
            bhh = arrays.weight("bias_hh" + sfx, "cx_bhh" + sfx)[0]
            peep = (arrays.weight("peephole" + sfx, "cx_peep" + sfx)[0]
                    if "peephole" + sfx in arrays.params else "0")
            din = arrays.params["weight_ih" + sfx].shape[1]
            if q:
                w = "%s, %s, %s, %s, %s, %s" % (fields["ih"][0], fields["hh"][0],
                                                fields["hr"][0], fields["ih"][1],
                                                fields["hh"][1], fields["hr"][1])
            else:
                w = "%s, %s, %s" % (fields["ih"][0], fields["hh"][0], fields["hr"][0])
            entries.append("    {%d, %s, %s, %s, %s}," % (din, w, bih, bhh, peep))
    return "static const unit_t cx_units[%d] = {\n%s\n};" % (len(entries), "\n".join(entries))


def _hard(model):
    """Whether the model's gates are hard sigmoids."""
    return getattr(model, "gate_activation", "sigmoid") == "hard_sigmoid"


def _clip(model):
    """The gate clip as float32, or None: none, or one beyond float32's
    range (the library's gates then clip nothing either)."""
    if model.clip is None:
        return None
    with np.errstate(over="ignore"):
        clip = np.float32(model.clip)
    return float(clip) if np.isfinite(clip) else None


def _sizes(model):
    N, L, H = model.num_directions, model.num_layers, model.hidden_size
    R = model.proj_size or H
    enc = {None: 0, "onehot": 1, "embedding": 2}[model.encoding]
    D = model.input_size
    O = model.output_size
    qmax = max(D, N * R, H, R)
    reverse = bool(getattr(model, "reverse", False))
    # WHOLE: a direction runs backwards, so there is no step, only whole sequences
    return dict(N=N, L=L, H=H, R=R, P=model.proj_size, D=D, V=model.vocab_size, O=O,
                NR=N * R, OUT=O or N * R, ENC=enc, QMAX=qmax, REVERSE=reverse,
                WHOLE=N == 2 or reverse)


def _header(model, name, z, source):
    up = name.upper()
    n = name
    token = z["ENC"] != 0
    what = []
    what.append("%d-layer %sLSTM, hidden %d%s" % (
        z["L"], "bidirectional " if z["N"] == 2 else "reverse " if z["REVERSE"] else "",
        z["H"],
        ", projection %d" % z["P"] if z["P"] else ""))
    for flag, text in ((model.peepholes, "peepholes"), (model.input_forget,
                                                         "coupled input/forget gates"),
                       (_clip(model), "gate clip %g" % (_clip(model) or 0)),
                       (_hard(model), "hard sigmoid gates (alpha %r, beta %r)" % (
                           getattr(model, "gate_alpha", 0), getattr(model, "gate_beta", 0)))):
        if flag:
            what.append(text)
    what.append({0: "%d real features per step" % z["D"],
                 1: "one-hot tokens (%d)" % z["V"],
                 2: "embedded tokens (%d, width %d)" % (z["V"], z["D"])}[z["ENC"]])
    what.append("a linear head of %d%s" % (z["O"], " (logits)" if model.softmax else "")
                if z["O"] else "no head (the output is the top layer's h)")
    what.append("int8 weights (one scale per row)" if model.quantized else "float32 weights")
    inputs, outputs = _scaling(model)
    if inputs is not None:
        what.append("inputs on the data's scale: each feature is standardized as in\n"
                    " * training, (x - mean) / std in double (mean, std: the model's\n"
                    " * input_mean and input_std, compiled in)")
    if outputs is not None:
        what.append("outputs on the data's scale: z * std + mean in double (its\n"
                    " * output_mean and output_std)")
    if model.metadata.get("pooling") == "mean":
        what.append("trained with mean pooling: a sequence's output is the mean of\n"
                    " * its steps' outputs (as clstm's predict_sequences), which the\n"
                    " * caller computes")
    in_one = "int32_t token" if token else "const float *x"
    in_seq = "const int32_t *tokens" if token else "const float *x"
    in_doc = ("a token id in [0, %s_VOCAB_SIZE)" % up if token else
              "%s_INPUT_SIZE floats" % up)
    seq_doc = ("T token ids, each in [0, %s_VOCAB_SIZE)" % up if token else
               "T * %s_INPUT_SIZE floats, step after step" % up)
    lines = ["""/* %(n)s.h: a trained LSTM exported by clstm %(ver)s from %(src)s.
 *
 * The model: %(what)s.
 *
 * Use: compile %(n)s.c with any C99 compiler (no heap, no BLAS, no
 * OpenMP; from the C library only memcpy and memset; no libm unless
 * %(U)s_LIBM is defined, which makes the activations libm's expf and
 * tanhf instead of clstm's own). Keep one
 * %(n)s_state per independent sequence (static or on the stack; its size
 * is fixed: sizeof(%(n)s_state)). Not thread-safe on one state; different
 * states may run concurrently. %(U)s_LIBM's expf and tanhf give other
 * bits than clstm's own: a quantized model is then no longer bit-exact.
 * Needs FLT_EVAL_METHOD 0 (each float operation rounded to float; an
 * #error says so otherwise), and must not be built with -ffast-math or
 * with clang's -ffp-contract=fast (GCC obeys the file's own pragma
 * against fused multiply-adds): either changes the rounding.
 *
 *     static %(n)s_state s;
 *     float out[%(U)s_OUTPUT_SIZE];
 *     %(n)s_init(&s);
 *     ... for each step:  %(n)s_step(&s, input, out);
 *
 * Functions return %(U)s_OK (0) or %(U)s_ERR_ARG (a NULL pointer, a
 * negative length, or a token out of range); on error nothing is
 * written. Non-finite inputs follow IEEE arithmetic, as in clstm. */
#ifndef %(U)s_H_INCLUDED
#define %(U)s_H_INCLUDED

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
""" % dict(n=n, U=up, ver=_version(), src=source, what=";\n * ".join(what))]
    defs = [("OK", 0, "success"), ("ERR_ARG", 1, "a bad argument; nothing was written")]
    if token:
        defs.append(("VOCAB_SIZE", z["V"], "tokens are ids in [0, VOCAB_SIZE)"))
    else:
        defs.append(("INPUT_SIZE", z["D"], "floats per input step"))
    defs += [("OUTPUT_SIZE", z["OUT"], "floats per output step: the head's outputs, "
              "or the top layer's h ([forward, reverse] when bidirectional)"),
             ("LAYERS", z["L"], "stacked LSTM layers"),
             ("DIRECTIONS", z["N"], "1, or 2 when bidirectional"),
             ("HIDDEN", z["H"], "cell state width"),
             ("STATE", z["R"], "hidden state width (the projection's, if any)"),
             ("INT8", int(model.quantized), "1: int8 weights with float32 scales")]
    for k, v, doc in defs:
        lines.append("#define %s_%s %d /* %s */" % (up, k, v, doc))
    work = ("((size_t)(T) * %du)" % (2 * z["NR"])) if z["WHOLE"] else "0"
    lines.append("/* Floats of the work area %s_forward needs for T steps (0: none). */"
                 % n)
    lines.append("#define %s_WORK_FLOATS(T) %s" % (up, work))
    lines.append("""
/* The recurrent state (h, c of every layer and direction; index layer *
 * %(U)s_DIRECTIONS + direction) and the step's scratch space. */
typedef struct {
    float h[%(units)d][%(R)d];
    float c[%(units)d][%(H)d];
    /* scratch: not state */
    float a_[%(G)d], r_[%(G)d], m_[%(H)d], x_[%(D)d];
    int8_t q_[%(Q)d];
} %(n)s_state;

/* Zero the whole state: a fresh sequence. */
void %(n)s_init(%(n)s_state *s);

/* Set the recurrent state: h (%(U)s_LAYERS * %(U)s_DIRECTIONS *
 * %(U)s_STATE floats) and c (... * %(U)s_HIDDEN floats), each NULL for
 * zeros (clstm's h0 and c0, layer-major). */
int %(n)s_reset(%(n)s_state *s, const float *h, const float *c);
""" % dict(U=up, n=n, units=z["N"] * z["L"], R=z["R"], H=z["H"], G=4 * z["H"],
           D=z["D"] if z["ENC"] == 2 or inputs is not None else 1,
           Q=z["QMAX"] if model.quantized else 1))
    if not z["WHOLE"]:
        lines.append("""/* One step: %(ind)s in, %(U)s_OUTPUT_SIZE floats out;
 * the state advances. Streaming: call it once per sample. */
int %(n)s_step(%(n)s_state *s, %(one)s, float *out);
""" % dict(n=n, U=up, ind=in_doc, one=in_one))
    else:
        lines.append("""/* (A %(kind)s model has no %(n)s_step: its reverse direction needs
 * the whole sequence. Use %(n)s_forward.) */
""" % dict(n=n, kind="bidirectional" if z["N"] == 2 else "reverse"))
    lines.append("""/* A whole sequence of T >= 0 steps: %(seq)s in, T *
 * %(U)s_OUTPUT_SIZE floats out. %(fwd)s
 * work: %(U)s_WORK_FLOATS(T) floats (NULL when that is 0). */
int %(n)s_forward(%(n)s_state *s, int32_t T, %(inseq)s, float *out, float *work);
""" % dict(n=n, U=up, seq=seq_doc, inseq=in_seq, fwd=(
        "Starts from the state in s and leaves the\n * final one there: the same as T "
        "calls of %s_step." % n if not z["WHOLE"] else
        "Each direction starts from the state in s\n * and leaves its final one there "
        "(a reverse direction's after step 0).")))
    if z["O"]:
        lines.append("""/* The index of the largest of the %(U)s_OUTPUT_SIZE outputs (the first
 * of equals; NaN skipped), or -1 when out is NULL or all NaN. */
int32_t %(n)s_argmax(const float *out);
""" % dict(n=n, U=up))
    if _vocab(model) is not None:
        lines.append("""/* The model's character vocabulary: token id <-> Unicode code point.
 * %(n)s_token gives -1 for a character outside it, %(n)s_codepoint 0 for
 * an id outside [0, %(V)d). */
int32_t %(n)s_token(uint32_t codepoint);
uint32_t %(n)s_codepoint(int32_t token);
""" % dict(n=n, V=len(_vocab(model))))
    if z["O"] and model.softmax:
        lines.append("""/* p = softmax(logits / temperature), in float32 (max subtracted);
 * %(U)s_ERR_ARG for NULL or a temperature that is not > 0. */
int %(n)s_softmax(const float *logits, float temperature, float *p);

/* Draw an output index from softmax(logits / temperature) (temperature >
 * 0), p receiving the probabilities (%(U)s_OUTPUT_SIZE floats). *rng is the
 * state of a xorshift32 generator (any value; 0 is replaced), advanced by
 * one draw. -1 for NULL arguments, a temperature <= 0 or NaN logits. */
int32_t %(n)s_sample(const float *logits, float temperature, uint32_t *rng, float *p);
""" % dict(n=n, U=up))
    lines.append("""#ifdef __cplusplus
}
#endif

#endif
""")
    return "\n".join(lines)


def _vocab(model):
    """The model's character vocabulary (str), or None."""
    return getattr(model, "vocab", None) or None


def _version():
    from clstm import __version__
    return __version__


def _source(model, name, z, source):
    up = name.upper()
    arrays = _Arrays(model)
    units = _units(model, arrays)
    if z["ENC"] == 2:
        arrays.weight("embedding.weight", "cx_emb")  # cx_emb, or cx_emb_q and cx_emb_s
    if z["O"]:
        arrays.weight("head.weight", "cx_head")  # cx_head, or cx_head_q and cx_head_s
        arrays.weight("head.bias", "cx_head_b")
    inputs, outputs = _scaling(model)
    for prefix, scaling in (("in", inputs), ("out", outputs)):
        if scaling is not None:
            for key in ("mean", "std"):
                arrays.chunks.append(_array("double", "cx_%s_%s" % (prefix, key),
                                            _doubles(getattr(scaling, key)),
                                            "the model's %sput_%s" % (prefix, key)))
    vocab = _vocab(model)
    if vocab is not None:
        arrays.chunks.append(_array("uint32_t", "cx_vocab", [str(ord(ch)) for ch in vocab],
                                    "the vocabulary's code points, by token id"))
    fast = _runtime_text("fastmath.h").replace("clstm_", "cx_").replace("CLSTM_", "CX_")
    runtime = (_runtime_text("export_runtime.c").replace("@FASTMATH@", fast)
               .replace("@UNITS@", units).replace("NAME_LIBM", up + "_LIBM")
               .replace("NAME_OK", up + "_OK").replace("NAME_ERR_ARG", up + "_ERR_ARG")
               .replace("NAME_", name + "_"))
    consts = dict(CX_INT8=int(model.quantized), CX_ENCODING=z["ENC"], CX_L=z["L"], CX_H=z["H"],
                  CX_R=z["R"], CX_P=z["P"], CX_D=z["D"], CX_V=z["V"], CX_O=z["O"],
                  CX_NR=z["NR"], CX_OUT=z["OUT"], CX_N=z["N"], CX_WHOLE=int(z["WHOLE"]),
                  CX_REVERSE=int(z["REVERSE"]),
                  CX_PEEPHOLES=int(model.peepholes), CX_INPUT_FORGET=int(model.input_forget),
                  CX_CLIP=int(_clip(model) is not None), CX_SOFTMAX=int(bool(model.softmax)),
                  CX_VOCAB=len(vocab or ""), CX_SCALE_IN=int(inputs is not None),
                  CX_SCALE_OUT=int(outputs is not None), CX_HARD_SIGMOID=int(_hard(model)))
    head = ["/* %s.c: generated by clstm %s from %s; see %s.h. */" % (name, _version(), source,
                                                                     name),
            "/* FMA contraction would round a * b + c once where clstm rounds twice. */",
            "#if defined(__clang__)",
            "#pragma STDC FP_CONTRACT OFF",
            "#elif defined(__GNUC__)",
            '#pragma GCC optimize("fp-contract=off")',
            "#endif",
            "",
            '#include "%s.h"' % name,
            "",
            "#include <float.h>",
            "#include <stddef.h>",
            "#include <stdint.h>",
            "#include <string.h>",
            "",
            "/* 0, or 16 (ISO/IEC TS 18661-3: only _Float16 widens, to float; GCC's",
            " * value for Helium Cortex-M in GNU mode) */",
            "#if !defined(FLT_EVAL_METHOD) || (FLT_EVAL_METHOD != 0 && FLT_EVAL_METHOD != 16)",
            '#error "needs each float operation rounded to float (FLT_EVAL_METHOD 0)"',
            "#endif",
            ""]
    head += ["#define %s %d" % kv for kv in consts.items()]
    if _clip(model) is not None:
        head.append("#define CX_CLIP_VALUE %s" % _floats([_clip(model)])[0])
    if _hard(model):  # float32, as clstm's float32 gates use them
        head += ["#define CX_GATE_%s %s" % (k, _floats([np.float32(v)])[0])
                 for k, v in (("ALPHA", model.gate_alpha), ("BETA", model.gate_beta))]
    head.append("#define CX_INPUT_ONE %s" % ("int32_t" if z["ENC"] else "const float *"))
    return "\n".join(head + [""] + arrays.chunks + ["", runtime])


def export_c(model, directory, name=None, source=None):
    """Write DIRECTORY/NAME.c and DIRECTORY/NAME.h for `model` (a clstm.LSTM
    or Model, float32 or quantized, or the path of a model file); returns
    their paths. NAME prefixes every public symbol: by default the model
    file's stem (letters, digits and _), or "model" for a model object.

    The files are written whole or not at all: a new directory is made
    under a temporary name and renamed; in an existing directory each file
    is replaced by a rename (both written and synced first). ValueError for
    what the export cannot do (an encoder-decoder, float64, non-finite
    weights) and for a bad name. source: what the files say they were made
    from (default: the file's name, or "a model object")."""
    if isinstance(model, (str, os.PathLike)):
        source = source or os.path.basename(os.fspath(model))
        if name is None:
            name = name_from_path(model)
        model = io.load(model)
    source = source or "a model object"
    name = c_name("model" if name is None else name)
    _check_model(model)
    z = _sizes(model)
    texts = {name + ".h": _header(model, name, z, source),
             name + ".c": _source(model, name, z, source)}
    directory = os.fspath(directory)
    if os.path.isdir(directory):
        _write_synced(directory, texts)
    else:
        parent = os.path.dirname(os.path.abspath(directory))
        tmp = tempfile.mkdtemp(prefix=os.path.basename(directory) + ".", suffix=".tmp",
                               dir=parent)
        try:
            _write_synced(tmp, texts)
            os.chmod(tmp, 0o755)
            os.rename(tmp, directory)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return tuple(os.path.join(directory, fname) for fname in (name + ".c", name + ".h"))


def _write_synced(directory, texts):
    """Each {file name: text} to a temporary file in directory, synced;
    then all of them renamed into place (nothing replaced unless every
    file was written)."""
    tmps = {}
    try:
        for fname, text in texts.items():
            fd, tmp = tempfile.mkstemp(prefix=fname + ".", suffix=".tmp", dir=directory)
            tmps[fname] = tmp
            with os.fdopen(fd, "wb") as f:
                f.write(text.encode("utf-8"))
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
        for fname, tmp in tmps.items():
            os.replace(tmp, os.path.join(directory, fname))
    except BaseException:
        for tmp in tmps.values():
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise


def check_program(model, inputs, name="model", main=True):
    """The text of a C file that runs the exported model NAME over `inputs`
    and prints each output's float32 bits as 8 hex digits, one step per
    line, then "done": a check of the exported code on a device against
    clstm's own outputs (read them back with parse_check_output).

    inputs: a list of sequences, each token ids (T,) or features (T, D);
    each one starts from a zero state. A bidirectional or reverse model
    runs NAME_forward, the others NAME_step. The file defines
    ``void NAME_check(void)``, which writes its lines through
    ``void clstm_check_write(const char *text)``. With main (the default)
    the file also has a main() and a clstm_check_write on stdio; without,
    the program supplies both (several models' checks may link into one
    program, and a microcontroller writes through its debug channel)."""
    z = _sizes(model)
    up = name.upper()
    body, data = [], []
    for i, seq in enumerate(inputs):
        seq = np.asarray(seq)
        T = seq.shape[0]
        if z["ENC"]:
            data.append("static const int32_t in%d[%d] = {%s};" % (
                i, max(T, 1), ", ".join(str(int(v)) for v in seq.ravel()) or "0"))
        else:
            data.append("static const float in%d[%d] = {%s};" % (
                i, max(T * z["D"], 1), ", ".join(_floats(seq, nonfinite=True)) or "0"))
        body.append("    run(%d, in%d);" % (T, i))
    intype = "const int32_t *" if z["ENC"] else "const float *"
    if z["WHOLE"]:
        run = """static float out[MAXT * %(U)s_OUTPUT_SIZE], work[%(U)s_WORK_FLOATS(MAXT) + 1];
static void run(int32_t T, %(it)sin) {
    %(n)s_init(&s);
    if (%(n)s_forward(&s, T, in, out, work) != %(U)s_OK) {
        clstm_check_write("error\\n");
        return;
    }
    for (int32_t t = 0; t < T; t++) emit(out + (size_t)t * %(U)s_OUTPUT_SIZE);
}"""
    else:
        run = """static float out[%(U)s_OUTPUT_SIZE];
static void run(int32_t T, %(it)sin) {
    %(n)s_init(&s);
    for (int32_t t = 0; t < T; t++) {
        if (%(n)s_step(&s, %(at)s, out) != %(U)s_OK) {
            clstm_check_write("error\\n");
            return;
        }
        emit(out);
    }
}"""
    run %= dict(U=up, n=name, it=intype,
                at="in[t]" if z["ENC"] else "in + (size_t)t * %s_INPUT_SIZE" % up)
    maxt = max([np.asarray(s).shape[0] for s in inputs] + [1])
    text = """/* Runs %(n)s over fixed inputs and prints the outputs' bits (clstm.export_c). */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include "%(n)s.h"

#define MAXT %(maxt)d
static %(n)s_state s;

void clstm_check_write(const char *text);

static void emit(const float *o) {
    static const char hex[] = "0123456789abcdef";
    char word[10];
    for (int32_t k = 0; k < %(U)s_OUTPUT_SIZE; k++) {
        uint32_t b;
        memcpy(&b, &o[k], sizeof b);
        for (int i = 0; i < 8; i++) word[i] = hex[(b >> (28 - 4 * i)) & 15u];
        word[8] = k + 1 < %(U)s_OUTPUT_SIZE ? ' ' : '\\n';
        word[9] = 0;
        clstm_check_write(word);
    }
}

%(run)s

%(data)s

void %(n)s_check(void);
void %(n)s_check(void) {
%(body)s
    clstm_check_write("done\\n");
}
""" % dict(n=name, U=up, maxt=maxt, run=run, data="\n".join(data), body="\n".join(body))
    if main:
        text += """
#include <stdio.h>

void clstm_check_write(const char *text) { fputs(text, stdout); }

int main(void) {
    %s_check();
    return 0;
}
""" % name
    return text


def parse_check_output(text, out_size):
    """The outputs a check program printed, as float32 (steps, out_size),
    every sequence's steps in order; the text after the first "done" is
    returned too (the next model's, when several were linked together).
    ValueError if it stopped early or printed an error."""
    rows = []
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if line == "done":
            out = np.array(rows, dtype=np.uint32).reshape(-1, out_size)
            return out.view(np.float32), "\n".join(lines[i + 1:])
        if line == "error":
            raise ValueError("the check program reported an error")
        words = line.split()
        if len(words) != out_size:
            raise ValueError("expected %d outputs on a line, got %r" % (out_size, line))
        rows.append([int(w, 16) for w in words])
    raise ValueError("the check program did not finish: %r" % text[-200:])
