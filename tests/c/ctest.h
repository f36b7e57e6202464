/*
 * ctest.h -- a tiny header-only test helper for the clstm C tests.
 *
 * Each test program is one translation unit that includes this header once:
 *
 *     CHECK(cond, "printf-style message", ...);   counts a pass or a failure
 *     CHECK_EQ(a, b);                             integers, prints both values
 *     return ctest_finish();                      at the end of main()
 *
 * A failing check prints "file:line: FAILED: cond: message" on stderr; both
 * macros evaluate to 1 when the check passed and 0 when it failed, so a test
 * can stop early:  if (!CHECK(m != NULL, "create")) return;
 *
 * ctest_finish() prints exactly one line, "N passed, N failed", on stdout and
 * returns the process exit code: 0 when no check failed and at least one
 * check ran, 1 otherwise (a test that checked nothing has not passed).
 */
#ifndef CLSTM_CTEST_H
#define CLSTM_CTEST_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/* One test program per translation unit, so file-static counters suffice. */
static long ctest_passed_ = 0;
static long ctest_failed_ = 0;

#if defined(__GNUC__)
__attribute__((format(printf, 5, 6)))
#endif
static inline int ctest_check_(int ok, const char *file, int line,
                               const char *cond, const char *fmt, ...)
{
    va_list ap;
    if (ok) {
        ctest_passed_++;
        return 1;
    }
    ctest_failed_++;
    fprintf(stderr, "%s:%d: FAILED: %s: ", file, line, cond);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    fflush(stderr);
    return 0;
}

static inline int ctest_check_eq_(long long a, long long b, const char *file,
                                  int line, const char *as, const char *bs)
{
    return ctest_check_(a == b, file, line, "equality", "%s == %lld, expected %s == %lld",
                        as, a, bs, b);
}

#define CHECK(cond, ...) ctest_check_(!!(cond), __FILE__, __LINE__, #cond, __VA_ARGS__)

#define CHECK_EQ(a, b) \
    ctest_check_eq_((long long)(a), (long long)(b), __FILE__, __LINE__, #a, #b)

static inline int ctest_finish(void)
{
    printf("%ld passed, %ld failed\n", ctest_passed_, ctest_failed_);
    fflush(stdout);
    return (ctest_failed_ == 0 && ctest_passed_ > 0) ? 0 : 1;
}

/* CHECK_STATUS(call, status): the call returned that clstm_status (needs
 * clstm.h included before this header). */
#ifdef CLSTM_H
static inline int check_status_(clstm_status got, clstm_status want, const char *expr,
                                const char *file, int line)
{
    return ctest_check_(got == want, file, line, "status", "%s returned %d (%s), expected %d (%s)",
                        expr, (int)got, clstm_status_string(got), (int)want,
                        clstm_status_string(want));
}
#define CHECK_STATUS(expr, want) check_status_((expr), (want), #expr, __FILE__, __LINE__)
#endif

/* calloc that never returns NULL (a test cannot go on without memory):
 * exits with status 2, which is a failure, never a pass. */
static inline void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "out of memory in a test\n");
        exit(2);
    }
    return p;
}

/* A whole file, NUL-terminated (*size excludes the NUL); NULL if unreadable.
 * Free with free(). */
static inline unsigned char *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    *size = 0;
    if (!f) return NULL;
    unsigned char *buf = NULL;
    long n = -1;
    if (fseek(f, 0, SEEK_END) == 0) n = ftell(f);
    if (n >= 0 && fseek(f, 0, SEEK_SET) == 0) {
        buf = (unsigned char *)xcalloc((size_t)n + 1, 1);
        if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
            free(buf);
            buf = NULL;
        }
    }
    fclose(f);
    *size = buf ? (size_t)n : 0;
    return buf;
}

/* Write n bytes to path: 1 on success. */
static inline int write_all(const char *path, const unsigned char *buf, size_t n)
{
    FILE *f = fopen(path, "wb");
    if (!f) return 0;
    int ok = fwrite(buf, 1, n, f) == n;
    return fclose(f) == 0 && ok;
}

#endif /* CLSTM_CTEST_H */
