#!/usr/bin/env bash
# Build the libFuzzer target for clstm's model loader and fuzz it.
#
#   tests/fuzz/run.sh [SECONDS]     (default 60)
#
# Needs clang with libFuzzer and OpenMP; on Debian:
#   apt-get install -y clang libomp-dev
# (clang pulls in libclang-rt-14-dev, which holds libFuzzer and the
# sanitizer runtimes; libomp-dev gives clang's -fopenmp its omp.h/libomp).
# This script installs nothing.
#
# The library sources are compiled straight into the fuzzer binary with
# BLAS=none semantics (no -DCLSTM_USE_CBLAS: the naive gemm), under
# ASan + UBSan (+ LeakSanitizer, on by default with ASan). The fuzzer runs on
# a temporary copy of tests/fuzz/corpus, so new inputs it finds never land in
# git; crash/leak/timeout reproducers are written to tests/fuzz/crashes/
# (crash-*, leak-*, timeout-*, oom-*). Exit status: 0 when the run ends
# without a finding, non-zero otherwise.
#
# Environment: CC (default clang), FUZZ_BUILD (build dir, default a temp
# dir), FUZZ_ARGS (extra libFuzzer flags), KEEP_CORPUS=1 (keep and print the
# grown corpus dir).
set -euo pipefail
cd "$(dirname "$0")/../.."

SECONDS_TO_RUN="${1:-60}"
CC="${CC:-clang}"
case "$CC" in *clang*) ;; *) CC=clang ;; esac

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "tests/fuzz/run.sh: '$CC' not found; install it first (Debian: apt-get install -y clang libomp-dev)" >&2
    exit 2
fi

tmp="$(mktemp -d "${TMPDIR:-/tmp}/clstm-fuzz.XXXXXX")"
cleanup() { if [ "${KEEP_CORPUS:-0}" = 1 ]; then echo "grown corpus kept in $tmp/corpus"; else rm -rf "$tmp"; fi; }
trap cleanup EXIT

build="${FUZZ_BUILD:-$tmp/build}"
mkdir -p "$build"
bin="$build/fuzz_load"

echo "== building $bin"
if ! "$CC" -g -O1 -std=c11 -fno-trapping-math \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
        -fopenmp -Wno-pass-failed \
        -Iinclude -Isrc src/*.c tests/fuzz/fuzz_load.c -lm -o "$bin"; then
    echo "tests/fuzz/run.sh: build failed (is libomp-dev installed? clang's -fopenmp needs it)" >&2
    exit 2
fi

mkdir -p "$tmp/corpus" tests/fuzz/crashes
cp tests/fuzz/corpus/* "$tmp/corpus/"

echo "== fuzzing for ${SECONDS_TO_RUN}s"
# One OpenMP thread: the forward is tiny, and a thread team per execution
# only slows the fuzzer down.
export OMP_NUM_THREADS=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
set +e
# shellcheck disable=SC2086
"$bin" -max_total_time="$SECONDS_TO_RUN" -max_len=65536 -timeout=25 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix=tests/fuzz/crashes/ \
    ${FUZZ_ARGS:-} "$tmp/corpus" tests/fuzz/corpus
rc=$?
set -e
if [ "$rc" -ne 0 ]; then
    echo "tests/fuzz/run.sh: FAILED (libFuzzer exit $rc); reproducer in tests/fuzz/crashes/" >&2
    echo "  reproduce: $bin tests/fuzz/crashes/<file>" >&2
    exit 1
fi
echo "tests/fuzz/run.sh: OK, no crash or leak in ${SECONDS_TO_RUN}s"
