"""Exported models on emulated microcontrollers (issue 19): flash, RAM and
executed instructions per step on a Cortex-M4F (QEMU mps2-an386) and a
Cortex-M55 (mps3-an547), float32 and int8, for a character model and a
small classifier; and the same models run by clstm's library build on the
host.

    python bench/mcu.py

Needs what tests/test_export_mcu.py needs (arm-none-eabi-gcc,
libnewlib-arm-none-eabi, qemu-system-arm), plus valgrind and `make`'s
build/examples for the host columns.

Instructions are counted exactly: QEMU runs with -singlestep (each
translation block is one guest instruction) and -d exec,nochain (every
block executed is logged), and the count is the number of log lines.
(Debian's QEMU ships no plugin API header or example plugins, so a TCG
plugin would have to be built from QEMU's sources; the log gives the same
count.) QEMU models no cycle timing: these are instructions, not cycles.
Per step = (count over 9 steps - count over 1 step) / 8, so start-up is
left out; the check program's printing of each step's outputs (8 hex
digits each, through semihosting) is in, under 1% of a step. On the host, valgrind's callgrind counts the same
way (Ir), the library inside clstm_model_forward (one T = 1 call per
step, B = 1, 1 thread; valgrind hides AVX-512, so the AVX2 paths run).

The weights are random (seeded): sizes and instruction counts do not
depend on their values.
"""
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
import clstm  # noqa: E402
from clstm import export_c as E  # noqa: E402
from machine import cpu_model  # noqa: E402
from test_export_mcu import BOARDS, CFLAGS, HERE as MCU, board_script  # noqa: E402

VOCAB = "".join(chr(c) for c in range(32, 97))  # 65 characters


def models():
    char = clstm.Model(vocab=VOCAB, hidden_size=128, num_layers=2, output_size=len(VOCAB),
                       softmax=True, seed=1)
    clf = clstm.Model(input_size=9, hidden_size=32, output_size=6, seed=2)
    return [("character model (V=65, 2x128, softmax head)", "char", char),
            ("classifier (9 features, 1x32, 6 classes)", "clf", clf)]


def inputs(model, T):
    rng = np.random.default_rng(T)
    if model.encoding:
        return [rng.integers(0, model.vocab_size, T).astype(np.int32)]
    return [rng.standard_normal((T, model.input_size)).astype(np.float32)]


def arm(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode:
        sys.exit("bench/mcu.py: %s failed:\n%s" % (cmd[0], r.stderr[-2000:]))
    return r.stdout


def count_qemu(board, elf):
    """Instructions executed by elf on the board (one TB per instruction)."""
    p = subprocess.Popen(["qemu-system-arm", "-M", board, "-display", "none", "-monitor", "none",
                          "-serial", "none", "-semihosting-config", "enable=on,target=native",
                          "-singlestep", "-d", "exec,nochain", "-D", "/dev/stdout",
                          "-kernel", elf], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    n = sum(1 for line in p.stdout if line.startswith(b"Trace"))
    if p.wait(timeout=600):
        sys.exit("bench/mcu.py: qemu failed on %s" % elf)
    return n


def build_arm(d, board, name, model, T):
    check = os.path.join(d, "%s_check_%d.c" % (name, T))
    with open(check, "w") as f:
        f.write(E.check_program(model, inputs(model, T), name, main=False))
    elf = os.path.join(d, "%s_%s_%d.elf" % (name, board, T))
    arm(["arm-none-eabi-gcc"] + CFLAGS + BOARDS[board][0] + [
        "-DCHECKS=X(%s)" % name, "-I", d, "-nostartfiles", "-T", board_script(d, board),
        "-Wl,--gc-sections", "--specs=nano.specs", "--specs=nosys.specs", "-o", elf,
        os.path.join(MCU, "startup.c"), os.path.join(MCU, "main.c"),
        os.path.join(d, name + ".c"), check])
    return elf


def sizes_arm(d, board, name):
    """(flash, state bytes) of the model's own object for the board."""
    obj = os.path.join(d, "%s_%s.o" % (name, board))
    arm(["arm-none-eabi-gcc"] + CFLAGS + BOARDS[board][0] + ["-c", os.path.join(d, name + ".c"),
                                                               "-o", obj])
    text, data, bss = map(int, arm(["arm-none-eabi-size", obj]).splitlines()[1].split()[:3])
    probe = os.path.join(d, "probe_%s.c" % name)
    with open(probe, "w") as f:
        f.write('#include "%s.h"\nconst unsigned long state_bytes = sizeof(%s_state);\n'
                % (name, name))
    pobj = probe[:-2] + ".o"
    arm(["arm-none-eabi-gcc"] + CFLAGS + BOARDS[board][0] + ["-c", probe, "-o", pobj])
    # the constant's 4 bytes, little-endian (its own section: -fdata-sections)
    dump = arm(["arm-none-eabi-objdump", "-s", "-j", ".rodata.state_bytes", pobj])
    word = re.search(r"^\s*0000 ([0-9a-f]{8})", dump, re.M).group(1)
    return text + data, int.from_bytes(bytes.fromhex(word), "little") + bss


def callgrind(cmd, toggle=None, stdin=None):
    out = tempfile.mktemp(prefix="cg.")
    args = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out]
    if toggle:
        args.append("--toggle-collect=" + toggle)
    r = subprocess.run(args + cmd, input=stdin, capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    if r.returncode:
        sys.exit("bench/mcu.py: callgrind failed: %s" % r.stderr[-1000:])
    with open(out) as f:
        total = int(re.search(r"^summary: (\d+)", f.read(), re.M).group(1))
    os.unlink(out)
    return total


def host_export(d, name, model, T):
    check = os.path.join(d, "%s_host_%d.c" % (name, T))
    with open(check, "w") as f:
        f.write(E.check_program(model, inputs(model, T), name))
    exe = check[:-2]
    subprocess.run(["gcc", "-std=c99", "-O2", "-o", exe, check, os.path.join(d, name + ".c")],
                   check=True)
    return callgrind([exe])


def host_library(d, tag, model, T):
    path = os.path.join(d, tag + ".safetensors")
    clstm.save(model, path)
    ex = os.path.join(ROOT, "build", "examples")
    if model.encoding:  # generate: one clstm_model_forward of T = 1 per character
        return callgrind([os.path.join(ex, "generate"), path, "--prime", VOCAB[-1], "--length",
                          str(T), "--seed", "1"], toggle="clstm_model_forward")
    text = "\n".join(" ".join("%r" % float(v) for v in row) for row in inputs(model, T)[0])
    return callgrind([os.path.join(ex, "stream"), path], toggle="clstm_model_forward",
                     stdin=text + "\n")


def main():
    for tool in ("arm-none-eabi-gcc", "qemu-system-arm", "valgrind"):
        if not shutil.which(tool):
            sys.exit("bench/mcu.py: %s is missing (see the docstring)" % tool)
    if not os.path.exists(os.path.join(ROOT, "build", "examples", "stream")):
        sys.exit("bench/mcu.py: run `make` first (build/examples)")
    print("# Exported models on emulated Cortex-M\n")
    print("- host CPU: %s; %s" % (cpu_model(), platform.platform()))
    print("- %s; %s" % (arm(["arm-none-eabi-gcc", "--version"]).splitlines()[0],
                        subprocess.run(["qemu-system-arm", "--version"], capture_output=True,
                                       text=True).stdout.splitlines()[0]))
    print("- flags: %s, plus the board's -mcpu/-mfpu/-mfloat-abi\n" % " ".join(CFLAGS))
    print("| model | weights | board | flash (model code + weights) | RAM (state) | "
          "instructions / step |")
    print("|---|---|---|---|---|---|")
    host = []
    with tempfile.TemporaryDirectory() as d:
        for label, tag, m in models():
            for kind, model in (("float32", m), ("int8", clstm.quantize(m))):
                name = "%s_%s" % (tag, "q" if model.quantized else "f")
                E.export_c(model, d, name=name)
                for board in sorted(BOARDS):
                    flash, ram = sizes_arm(d, board, name)
                    n1 = count_qemu(board, build_arm(d, board, name, model, 1))
                    n9 = count_qemu(board, build_arm(d, board, name, model, 9))
                    print("| %s | %s | %s (%s) | %d | %d | %d |" % (
                        label, kind, board, BOARDS[board][0][0][6:], flash, ram,
                        round((n9 - n1) / 8)))
                    sys.stdout.flush()
                e = (host_export(d, name, model, 9) - host_export(d, name, model, 1)) / 8
                lib = (host_library(d, name, model, 9) - host_library(d, name, model, 1)) / 8
                size = os.path.getsize(os.path.join(d, name + ".safetensors"))
                host.append((label, kind, e, lib, size))
    so = os.path.join(ROOT, "build", "libclstm.so")
    text = int(subprocess.run(["size", so], capture_output=True, text=True)
               .stdout.splitlines()[1].split()[0])
    print("\n## The same models on the host (x86-64), instructions per step (callgrind)\n")
    print("libclstm.so: %d bytes of code and constants (`size`), plus OpenBLAS and libgomp; "
          "the model file beside it.\n" % text)
    print("| model | weights | exported C (gcc -O2) | clstm library | model file bytes |")
    print("|---|---|---|---|---|")
    for label, kind, e, lib, size in host:
        print("| %s | %s | %d | %d | %d |" % (label, kind, e, lib, size))


if __name__ == "__main__":
    main()
