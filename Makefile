# Builds the C library, the C tests and the examples; no Python needed
# unless BLAS=scipy (the default), which asks Python where the
# scipy-openblas64 package keeps its header and library.
#
#   make                  build/libclstm.a, build/libclstm.so, examples
#   make test             build and run the C tests (exit non-zero on failure)
#   make test-sanitize    the C tests under ASan + UBSan (naive and BLAS paths)
#   make check            everything README's test command runs: the C tests
#                         with BLAS and with BLAS=none, then pytest
#   make install PREFIX=/usr/local   header, static and shared library
#                         (with a SONAME), and pkg-config's clstm.pc
#   make test-install     install into a temporary prefix and build and run
#                         a program against it with pkg-config
#   make BLAS=openblas    link Debian's libopenblas-dev (plain LP64 names)
#   make BLAS=none        no BLAS at all: the naive gemm everywhere
#
# Outputs go to $(BUILD): build/ for the default BLAS, build-<BLAS> otherwise,
# build-san/ for the sanitizers.

BLAS ?= scipy
# one build folder per BLAS choice, so switching BLAS never reuses stale objects
BUILD ?= $(if $(filter scipy,$(BLAS)),build,build-$(BLAS))
PYTHON ?= python3
CC ?= cc

CFLAGS ?= -O2 -g
WARN = -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
# -fno-trapping-math lets gcc turn the activations' clamps and selects into
# vector blends (we never read FP exception flags); NaN and inf semantics are
# unchanged. Never -ffast-math: it reorders and drops the NaN and Inf handling the
# tests check (it broke a backward pass in llm.c). -ffp-contract=fast: a * b + c
# may be one FMA, as in setup.py's build (gcc's default outside ISO mode, and
# -std=c11 turns it off), so the library and the Python extension compute the
# same bits; the int8 products round no sum of products (q8.h).
BASE_CFLAGS = -std=c11 -ffp-contract=fast -fPIC -fopenmp -fno-trapping-math -fvisibility=hidden -Iinclude -Isrc $(WARN)
LDLIBS_BASE = -lm -fopenmp

ifeq ($(BLAS),scipy)
  SCIPY_OPENBLAS_INC := $(shell $(PYTHON) -c "import scipy_openblas64 as s; print(s.get_include_dir())" 2>/dev/null)
  SCIPY_OPENBLAS_LIB := $(shell $(PYTHON) -c "import scipy_openblas64 as s; print(s.get_lib_dir())" 2>/dev/null)
  ifeq ($(SCIPY_OPENBLAS_INC),)
    $(error BLAS=scipy needs 'pip install scipy-openblas64' (or use BLAS=openblas or BLAS=none))
  endif
  BLAS_CFLAGS = -DCLSTM_USE_CBLAS -DCLSTM_OPENBLAS -DBLAS_SYMBOL_PREFIX=scipy_ \
                -DBLAS_SYMBOL_SUFFIX=64_ -DHAVE_BLAS_ILP64 -I$(SCIPY_OPENBLAS_INC)
  BLAS_LIBS = -L$(SCIPY_OPENBLAS_LIB) -lscipy_openblas64_ -Wl,-rpath,$(SCIPY_OPENBLAS_LIB)
else ifeq ($(BLAS),openblas)
  BLAS_CFLAGS = -DCLSTM_USE_CBLAS -DCLSTM_OPENBLAS $(shell pkg-config --cflags openblas 2>/dev/null)
  BLAS_LIBS = $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
else ifeq ($(BLAS),none)
  BLAS_CFLAGS =
  BLAS_LIBS =
else
  $(error BLAS must be scipy, openblas or none)
endif

ALL_CFLAGS = $(BASE_CFLAGS) $(BLAS_CFLAGS) $(CFLAGS)
LIBS = $(BLAS_LIBS) $(LDLIBS_BASE)

SRC = $(wildcard src/*.c)
OBJ = $(SRC:src/%.c=$(BUILD)/obj/%.o)
HDR = include/clstm.h $(wildcard src/*.h) $(wildcard src/*.inc)
TESTS = $(patsubst tests/c/%.c,$(BUILD)/tests/%,$(wildcard tests/c/test_*.c))
EXAMPLES = $(patsubst examples/%.c,$(BUILD)/examples/%,$(wildcard examples/*.c))

.PHONY: all lib test test-sanitize test-valgrind check examples clean install test-install

all: lib examples
lib: $(BUILD)/libclstm.a $(BUILD)/libclstm.so
examples: $(EXAMPLES)

$(BUILD)/obj/%.o: src/%.c $(HDR)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(BUILD)/libclstm.a: $(OBJ)
	rm -f $@
	ar rcs $@ $^

VERSION_MAJOR := $(shell sed -n 's/^\#define CLSTM_VERSION_MAJOR //p' include/clstm.h)
VERSION := $(shell sed -n 's/^\#define CLSTM_VERSION_STRING "\(.*\)"/\1/p' include/clstm.h)

$(BUILD)/libclstm.so: $(OBJ)
	$(CC) -shared -Wl,-soname,libclstm.so.$(VERSION_MAJOR) -o $@ $^ $(LIBS)

$(BUILD)/tests/%: tests/c/%.c tests/c/ctest.h $(BUILD)/libclstm.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests/c $< $(BUILD)/libclstm.a $(LIBS) -o $@

$(BUILD)/examples/%: examples/%.c $(BUILD)/libclstm.a
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $< $(BUILD)/libclstm.a $(LIBS) -o $@

test: $(TESTS) $(EXAMPLES)
	@set -e; for t in $(TESTS); do echo "== $$t"; $$t; done
	@echo "== $(BUILD)/examples/checksum"; $(BUILD)/examples/checksum > /dev/null
	@echo "C tests: all passed"

SAN = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
test-sanitize:
	$(MAKE) BUILD=build-san CFLAGS="-O1 -g $(SAN)" LDLIBS_BASE="-lm -fopenmp $(SAN)" test

# Every C test and the checksum example under valgrind's memcheck, on the
# BLAS=none build (no third-party BLAS frames to suppress; OpenBLAS's own
# assembly and thread pool are outside what this checks). Any error or any
# definite, indirect or possible leak fails. libgomp's thread pool stays
# allocated at exit by design: "still reachable" is not reported as an error,
# and tests/c/valgrind.supp holds the glibc/libgomp frames only.
# About 90 s on 2 cores (test_gradcheck is most of it).
VALGRIND ?= valgrind
VALGRIND_FLAGS = --error-exitcode=1 --leak-check=full \
                 --errors-for-leak-kinds=definite,indirect,possible \
                 --show-leak-kinds=definite,indirect,possible \
                 --suppressions=tests/c/valgrind.supp --num-callers=30
test-valgrind:
	$(MAKE) BLAS=none tests-and-examples
	@set -e; mkdir -p build-none/valgrind; \
	for t in $(patsubst tests/c/%.c,build-none/tests/%,$(wildcard tests/c/test_*.c)) \
	    build-none/examples/checksum; do \
	    log=build-none/valgrind/$$(basename $$t).log; \
	    echo "== valgrind $$t"; \
	    OMP_NUM_THREADS=2 $(VALGRIND) $(VALGRIND_FLAGS) --log-file=$$log $$t > /dev/null \
	        || { cat $$log; exit 1; }; \
	    grep -E 'ERROR SUMMARY|definitely lost|indirectly lost|possibly lost|still reachable|All heap blocks' $$log \
	        | sed 's/^==[0-9]*== */    /'; \
	done
	@echo "valgrind: all C tests clean (0 errors, 0 leaks)"

.PHONY: tests-and-examples
tests-and-examples: $(TESTS) $(EXAMPLES)

check: test
	$(MAKE) BLAS=none test
	$(PYTHON) -m pytest -q tests

PREFIX ?= /usr/local
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include

install: lib
	install -d $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(LIBDIR)/pkgconfig
	install -m 644 include/clstm.h $(DESTDIR)$(INCLUDEDIR)/clstm.h
	install -m 644 $(BUILD)/libclstm.a $(DESTDIR)$(LIBDIR)/libclstm.a
	install -m 755 $(BUILD)/libclstm.so $(DESTDIR)$(LIBDIR)/libclstm.so.$(VERSION)
	ln -sf libclstm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libclstm.so.$(VERSION_MAJOR)
	ln -sf libclstm.so.$(VERSION_MAJOR) $(DESTDIR)$(LIBDIR)/libclstm.so
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	    -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(LIBS)|' \
	    clstm.pc.in > $(DESTDIR)$(LIBDIR)/pkgconfig/clstm.pc

# Install into a temporary prefix, then build examples/checksum.c as a user
# would (pkg-config only) against the shared library, run it, and check it
# prints what the in-tree build prints.
test-install:
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(MAKE) -s install PREFIX="$$tmp" >/dev/null; \
	flags=$$(PKG_CONFIG_PATH="$$tmp/lib/pkgconfig" pkg-config --cflags --libs clstm); \
	$(CC) examples/checksum.c $$flags -lm -Wl,-rpath,"$$tmp/lib" -o "$$tmp/checksum"; \
	readelf -d "$$tmp/checksum" | grep -q 'NEEDED.*libclstm.so.$(VERSION_MAJOR)'; \
	"$$tmp/checksum" > "$$tmp/out.installed"; \
	$(MAKE) -s $(BUILD)/examples/checksum; $(BUILD)/examples/checksum > "$$tmp/out.tree"; \
	cmp "$$tmp/out.installed" "$$tmp/out.tree"; \
	echo "installed library: pkg-config build runs and matches the tree build"

clean:
	rm -rf build build-san build-none build-openblas
