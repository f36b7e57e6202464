/* Strict JSON primitives for the safetensors header (see json.h). */
#include "json.h"

void clstm_json_init(clstm_json *j, const void *data, size_t n, char *arena, size_t cap) {
    j->p = (const unsigned char *)data;
    j->end = j->p + n;
    j->arena = arena;
    j->used = 0;
    j->cap = cap;
}

static void skip_ws(clstm_json *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

int clstm_json_at_end(clstm_json *j) {
    skip_ws(j);
    return j->p == j->end;
}

int clstm_json_accept(clstm_json *j, char c) {
    skip_ws(j);
    if (j->p < j->end && *j->p == (unsigned char)c) {
        j->p++;
        return 1;
    }
    return 0;
}

static int put(clstm_json *j, unsigned c) {
    if (j->used >= j->cap) return -1;
    j->arena[j->used++] = (char)c;
    return 0;
}

/* Encode code point u (1..0x10FFFF, not a surrogate) as UTF-8. */
static int put_utf8(clstm_json *j, uint32_t u) {
    if (u < 0x80) return put(j, u);
    if (u < 0x800) return put(j, 0xC0 | (u >> 6)) || put(j, 0x80 | (u & 0x3F));
    if (u < 0x10000)
        return put(j, 0xE0 | (u >> 12)) || put(j, 0x80 | ((u >> 6) & 0x3F)) ||
               put(j, 0x80 | (u & 0x3F));
    return put(j, 0xF0 | (u >> 18)) || put(j, 0x80 | ((u >> 12) & 0x3F)) ||
           put(j, 0x80 | ((u >> 6) & 0x3F)) || put(j, 0x80 | (u & 0x3F));
}

static int hex4(clstm_json *j, uint32_t *out) {
    uint32_t v = 0;
    if (j->end - j->p < 4) return -1;
    for (int i = 0; i < 4; i++) {
        unsigned c = *j->p++;
        v <<= 4;
        if (c >= '0' && c <= '9') v |= c - '0';
        else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
        else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
        else return -1;
    }
    *out = v;
    return 0;
}

/* After a backslash. */
static int escape(clstm_json *j) {
    if (j->p == j->end) return -1;
    unsigned c = *j->p++;
    uint32_t u, lo;
    switch (c) {
    case '"': case '\\': case '/': return put(j, c);
    case 'b': return put(j, '\b');
    case 'f': return put(j, '\f');
    case 'n': return put(j, '\n');
    case 'r': return put(j, '\r');
    case 't': return put(j, '\t');
    case 'u':
        if (hex4(j, &u) || u == 0 || (u >= 0xDC00 && u <= 0xDFFF)) return -1;
        if (u >= 0xD800 && u <= 0xDBFF) { /* high surrogate: a low one must follow */
            if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u') return -1;
            j->p += 2;
            if (hex4(j, &lo) || lo < 0xDC00 || lo > 0xDFFF) return -1;
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
        }
        return put_utf8(j, u);
    default: return -1;
    }
}

/* One raw UTF-8 sequence starting with lead byte c >= 0x80 (already consumed):
 * no overlongs, no surrogates, nothing above U+10FFFF. */
static int raw_utf8(clstm_json *j, unsigned c) {
    int n;
    uint32_t u, min;
    if (c >= 0xC2 && c <= 0xDF) n = 1, u = c & 0x1F, min = 0x80;
    else if (c >= 0xE0 && c <= 0xEF) n = 2, u = c & 0x0F, min = 0x800;
    else if (c >= 0xF0 && c <= 0xF4) n = 3, u = c & 0x07, min = 0x10000;
    else return -1;
    if (put(j, c)) return -1;
    for (int i = 0; i < n; i++) {
        if (j->p == j->end || (*j->p & 0xC0) != 0x80) return -1;
        u = (u << 6) | (*j->p & 0x3F);
        if (put(j, *j->p++)) return -1;
    }
    if (u < min || u > 0x10FFFF || (u >= 0xD800 && u <= 0xDFFF)) return -1;
    return 0;
}

int clstm_json_string(clstm_json *j, const char **out) {
    if (!clstm_json_accept(j, '"')) return -1;
    size_t start = j->used;
    for (;;) {
        if (j->p == j->end) return -1;
        unsigned c = *j->p++;
        int bad;
        if (c == '"') break;
        if (c < 0x20) return -1;
        if (c == '\\') bad = escape(j);
        else if (c >= 0x80) bad = raw_utf8(j, c);
        else bad = put(j, c);
        if (bad) return -1;
    }
    if (put(j, 0)) return -1;
    *out = j->arena + start;
    return 0;
}

int clstm_json_uint(clstm_json *j, uint64_t *out) {
    skip_ws(j);
    if (j->p == j->end || *j->p < '0' || *j->p > '9') return -1;
    if (*j->p == '0' && j->end - j->p > 1 && j->p[1] >= '0' && j->p[1] <= '9') return -1;
    uint64_t v = 0;
    while (j->p < j->end && *j->p >= '0' && *j->p <= '9') {
        if (__builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, *j->p - '0', &v))
            return -1;
        j->p++;
    }
    if (j->p < j->end && (*j->p == '.' || *j->p == 'e' || *j->p == 'E')) return -1;
    *out = v;
    return 0;
}
