/* A small strict JSON pull parser over a bounded byte range (the safetensors
 * header). The caller drives the structure (object, array, string or integer,
 * as its schema expects next), so there is no recursion here at all, and
 * nesting never goes deeper than the caller's schema (safetensors.c: 3
 * levels, header object > tensor entry > shape list); a value of any other
 * kind or depth fails where it starts. The cursor never moves
 * past `end`; decoded strings go to a caller-supplied arena of at least
 * (end - begin + 1) bytes, which always suffices, so nothing is allocated. */
#ifndef CLSTM_JSON_H
#define CLSTM_JSON_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    const unsigned char *p, *end; /* cursor and one past the last byte */
    char *arena;                  /* decoded, NUL-terminated strings */
    size_t used, cap;
} clstm_json;

void clstm_json_init(clstm_json *j, const void *data, size_t n, char *arena, size_t cap);
/* Skip white space; 1 if the input is exhausted. */
int clstm_json_at_end(clstm_json *j);
/* Skip white space, then consume `c` if it is next: 1 if consumed. */
int clstm_json_accept(clstm_json *j, char c);
/* A string: escapes (\uXXXX with surrogate pairs) decoded to UTF-8, raw bytes
 * checked to be valid UTF-8, control characters and \u0000 rejected. *out
 * points into the arena and is NUL-terminated. 0 on success, -1 on error. */
int clstm_json_string(clstm_json *j, const char **out);
/* A non-negative integer without sign, fraction, exponent or leading zeros,
 * at most UINT64_MAX. 0 on success, -1 on error. */
int clstm_json_uint(clstm_json *j, uint64_t *out);

#endif
