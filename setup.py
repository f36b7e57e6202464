"""Builds the clstm._core extension: the Cython binding compiled together
with the C library's sources (src/*.c), linked to OpenBLAS from the
scipy-openblas64 package. Everything else is in pyproject.toml.

The extension finds libscipy_openblas64_.so at run time because
clstm/__init__.py imports scipy_openblas64 first (which loads it), and, for
normal installs, through an $ORIGIN-relative rpath into the installed
scipy_openblas64 package. No LD_LIBRARY_PATH is needed."""
import glob
import os
import shutil

import scipy_openblas64
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py


class BuildPy(build_py):
    """Also ships src/fastmath.h in the package: clstm.export_c compiles
    the library's own exp, sigmoid and tanh into exported models (one
    copy of that code; a checkout reads it from src/ directly)."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install imports clstm/ from the checkout, beside src/
        target = os.path.join(self.build_lib, "clstm")
        os.makedirs(target, exist_ok=True)
        shutil.copy(os.path.join("src", "fastmath.h"), os.path.join(target, "fastmath.h"))

ext = Extension(
    "clstm._core",
    sources=["clstm/_core.pyx"] + sorted(glob.glob("src/*.c")),
    # headers and templates too: build_ext rebuilds only on changes it is told of
    # (an edit to src/lstm_kernels.inc alone once left a stale extension)
    depends=sorted(glob.glob("src/*.h") + glob.glob("src/*.inc")) + ["include/clstm.h"],
    include_dirs=["include", "src", scipy_openblas64.get_include_dir()],
    define_macros=[
        ("CLSTM_USE_CBLAS", None),
        ("CLSTM_OPENBLAS", None),
        ("BLAS_SYMBOL_PREFIX", "scipy_"),
        ("BLAS_SYMBOL_SUFFIX", "64_"),
        ("HAVE_BLAS_ILP64", None),
    ],
    library_dirs=[scipy_openblas64.get_lib_dir()],
    libraries=[scipy_openblas64.get_library()],
    # -fno-trapping-math, -ffp-contract=fast: see the Makefile (vectorised
    # activations; the same bits as the C library).
    extra_compile_args=["-O2", "-fopenmp", "-fno-trapping-math", "-ffp-contract=fast",
                        "-fvisibility=hidden"],
    extra_link_args=["-fopenmp", "-Wl,-rpath,$ORIGIN/../scipy_openblas64/lib"],
)

setup(ext_modules=cythonize([ext], language_level=3), cmdclass={"build_py": BuildPy})
