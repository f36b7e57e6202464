"""Exported models on emulated microcontrollers: cross-compiled for a
Cortex-M4F (QEMU's mps2-an386) and a Cortex-M55 (mps3-an547) with
arm-none-eabi-gcc, run under qemu-system-arm with semihosting, and compared
with clstm's outputs on the host: int8 the same bits, float32 within 1e-5.
Skipped without the toolchain (.ci/run installs Debian's
gcc-arm-none-eabi, libnewlib-arm-none-eabi and qemu-system-arm)."""
import os
import shutil
import subprocess

import pytest

import clstm
from clstm import export_c as E

from test_export_c import assert_matches, make_model, reference

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mcu")
pytestmark = pytest.mark.skipif(
    not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
    reason="needs arm-none-eabi-gcc and qemu-system-arm")

# board: (compiler flags, {region: (origin, length)}) for code, constants, data
BOARDS = {
    "mps2-an386": (["-mcpu=cortex-m4", "-mfpu=fpv4-sp-d16", "-mfloat-abi=hard"],
                   # ZBT SSRAM1 (code and weights), SSRAM2/3 (data)
                   {"FLASH": ("0x00000000", "1M"), "CONST": ("0x00100000", "3M"),
                    "RAM": ("0x20000000", "4M")}),
    "mps3-an547": (["-mcpu=cortex-m55", "-mfloat-abi=hard"],
                   # ITCM (code), the FPGA's SRAM (weights), DTCM (data)
                   {"FLASH": ("0x00000000", "512K"), "CONST": ("0x01000000", "2M"),
                    "RAM": ("0x20000000", "512K")}),
}
CFLAGS = ["-mthumb", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-ffunction-sections",
          "-fdata-sections"]
# (bidirectional, proj_size, peepholes, input_forget, clip, encoding, head): each
# feature at least once, on both sides of each flag
CASES = [(False, 0, True, False, None, "onehot", 4), (True, 3, False, False, 0.5, None, 4),
         (False, 3, False, True, None, "embedding", 0), (True, 0, True, True, None,
                                                         "embedding", 4),
         (False, 0, False, False, 0.5, None, 0)]


def board_script(d, board):
    with open(os.path.join(HERE, "board.ld.in")) as f:
        text = f.read()
    for region, (origin, length) in BOARDS[board][1].items():
        text = text.replace("@%s_ORIGIN@" % region, origin)
        text = text.replace("@%s_LENGTH@" % region, length)
    path = os.path.join(d, board + ".ld")
    with open(path, "w") as f:
        f.write(text)
    return path


def build_and_run(d, board, names, std="c99"):
    """Link startup, main and the named models' code and checks for the
    board; run it under QEMU; what it wrote through semihosting."""
    srcs = [os.path.join(HERE, "startup.c"), os.path.join(HERE, "main.c")]
    srcs += [os.path.join(d, n + s) for n in names for s in (".c", "_check.c")]
    elf = os.path.join(d, "%s_%s.elf" % (board, std))
    r = subprocess.run(["arm-none-eabi-gcc"] + CFLAGS + ["-std=" + std] + BOARDS[board][0] + [
        "-DCHECKS=" + " ".join("X(%s)" % n for n in names), "-I", d, "-nostartfiles",
        "-T", board_script(d, board), "-Wl,--gc-sections", "--specs=nano.specs",
        "--specs=nosys.specs", "-o", elf] + srcs, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    out = elf[:-4] + ".out"
    r = subprocess.run(["qemu-system-arm", "-M", board, "-display", "none", "-monitor", "none",
                        "-serial", "none", "-chardev", "file,id=sh,path=" + out,
                        "-semihosting-config", "enable=on,target=native,chardev=sh",
                        "-kernel", elf], capture_output=True, text=True, timeout=120)
    with open(out) as f:
        text = f.read()
    assert r.returncode == 0, (r.stderr, text[-300:])
    return text


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("mcu"))
    cases = []
    for i, feat in enumerate(CASES):
        m, seqs = make_model(100 + i, *feat)
        for name, model in (("f%d" % i, m), ("q%d" % i, clstm.quantize(m))):
            E.export_c(model, d, name=name)
            with open(os.path.join(d, name + "_check.c"), "w") as f:
                f.write(E.check_program(model, seqs, name, main=False))
            cases.append((name, model, reference(model, seqs)))
    return d, cases


@pytest.mark.parametrize("board", sorted(BOARDS))
@pytest.mark.parametrize("std", ["c99", "gnu11"])  # gnu11: GCC would fuse but for the pragma
def test_exported_models_on_emulated_cortex_m(exported, board, std):
    d, cases = exported
    text = build_and_run(d, board, [n for n, _, _ in cases], std)
    for name, model, ref in cases:
        got, text = E.parse_check_output(text, model.out_size)
        assert_matches(model, got, ref, "%s %s" % (board, name))
