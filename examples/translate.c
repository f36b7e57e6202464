/* translate: translate lines read on stdin with an encoder-decoder trained
 * by `clstm train --pairs FILE.tsv`, from C, printing one target per line.
 *
 *     translate MODEL.safetensors [--beam K] [--alpha A] < sources.txt
 *
 * A source line is split as the model's "source_split" metadata says: into
 * its UTF-8 characters ("char") or at spaces ("space"). Each token is
 * looked up in the model's "source_tokens" metadata (the tokens one per
 * line, token id i on line i; a token not there reads as <unk>, id 0), the
 * lines go through clstm_seq2seq_beam_search 64 at a time (width K,
 * default 5; 1 is greedy decoding; length normalization log p / len^A,
 * default A = 1; at most twice the longest target seen in training plus
 * 10 tokens, its "max_target_length" metadata), and the best target's ids
 * are written with the
 * "target_tokens" metadata, joined as "target_split" says. An empty line
 * gives an empty line. The output equals `clstm translate MODEL --beam K`:
 * the same batches of 64 lines, their empty lines left out of the search.
 *
 * Exit status: 0 on success; 1 on a model error, a failed call, or a line
 * that is not UTF-8 or holds U+0000 (after the lines before it are
 * printed); 2 on a usage error. Messages go to stderr. */
#include <clstm.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE "usage: translate MODEL.safetensors [--beam K] [--alpha A] < sources.txt"
#define BATCH 64

static int usage(const char *problem, const char *arg) {
    if (problem) fprintf(stderr, "translate: %s%s%s%s\n", problem, arg ? " '" : "", arg ? arg : "",
                         arg ? "'" : "");
    fprintf(stderr, "%s\n", USAGE);
    return 2;
}

static int fail(const char *what, const char *detail) {
    fprintf(stderr, "translate: %s: %s\n", what, detail);
    return 1;
}

/* ----------------------------------------------------------- vocabularies */

/* A vocabulary: the metadata string split at line breaks, in place. */
typedef struct {
    char *text;    /* owned copy of the metadata value */
    char **tokens; /* n pointers into text */
    long n;
} vocabulary;

static void vocabulary_free(vocabulary *v) {
    free(v->tokens);
    free(v->text);
}

/* Split the metadata value s into v's tokens; 0 on success, -1 (and
 * nothing owned) when memory runs out or a token is empty. */
static int vocabulary_read(const char *s, vocabulary *v) {
    v->n = 1;
    for (const char *p = s; *p; p++) v->n += *p == '\n';
    v->text = malloc(strlen(s) + 1);
    v->tokens = malloc((size_t)v->n * sizeof *v->tokens);
    if (!v->text || !v->tokens) return vocabulary_free(v), v->text = NULL, v->tokens = NULL, -1;
    strcpy(v->text, s);
    char *p = v->text;
    for (long i = 0; i < v->n; i++) {
        v->tokens[i] = p;
        char *end = strchr(p, '\n');
        if (end) *end = '\0';
        if (!*p) return vocabulary_free(v), v->text = NULL, v->tokens = NULL, -1;
        p = end ? end + 1 : p + strlen(p);
    }
    return 0;
}

/* The id of the token of `len` bytes at s, or 0 (<unk>) when it is not in
 * v. A linear search: vocabularies of characters or phonemes are small. */
static int32_t vocabulary_id(const vocabulary *v, const char *s, size_t len) {
    for (long i = 1; i < v->n; i++)
        if (strlen(v->tokens[i]) == len && memcmp(v->tokens[i], s, len) == 0) return (int32_t)i;
    return 0;
}

/* The bytes of the UTF-8 character that starts s (valid UTF-8: see
 * utf8_valid). */
static size_t utf8_length(const char *s) {
    const unsigned char c = (unsigned char)s[0];
    return c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
}

/* 1 when the n bytes at s are valid UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF) without U+0000: what Python decodes. */
static int utf8_valid(const unsigned char *s, size_t n) {
    for (size_t i = 0; i < n;) {
        const unsigned char c = s[i];
        size_t len;
        unsigned long u, least;
        if (c == 0) return 0;
        if (c < 0x80) len = 1, u = c, least = 0;
        else if (c >= 0xC2 && c < 0xE0) len = 2, u = c & 0x1F, least = 0x80;
        else if (c >= 0xE0 && c < 0xF0) len = 3, u = c & 0x0F, least = 0x800;
        else if (c >= 0xF0 && c < 0xF5) len = 4, u = c & 0x07, least = 0x10000;
        else return 0;
        if (i + len > n) return 0;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) return 0;
            u = u << 6 | (s[i + k] & 0x3F);
        }
        if (u < least || u > 0x10FFFF || (u >= 0xD800 && u < 0xE000)) return 0;
        i += len;
    }
    return 1;
}

/* Tokenize line into ids (room for strlen(line) of them); their count. */
static int64_t encode(const vocabulary *v, int by_space, const char *line, int32_t *ids) {
    int64_t n = 0;
    while (*line) {
        if (by_space && *line == ' ') {
            line++;
            continue;
        }
        size_t len = by_space ? strcspn(line, " ") : utf8_length(line);
        ids[n++] = vocabulary_id(v, line, len);
        line += len;
    }
    return n;
}

/* ----------------------------------------------------------------- lines */

/* The next line of f without its line end, in *buf (grown as needed);
 * -1 at the end of input or when memory runs out (*oom set). */
static long read_line(FILE *f, char **buf, size_t *room, int *oom) {
    size_t n = 0;
    int c;
    while ((c = fgetc(f)) != EOF && c != '\n') {
        if (n + 2 > *room) {
            size_t grow = *room ? 2 * *room : 256;
            char *b = realloc(*buf, grow);
            if (!b) return *oom = 1, -1;
            *buf = b, *room = grow;
        }
        (*buf)[n++] = (char)c;
    }
    if (c == EOF && n == 0) return -1;
    if (!*buf && !(*buf = malloc(*room = 1))) return *oom = 1, -1;
    if (n && (*buf)[n - 1] == '\r') n--;
    (*buf)[n] = '\0';
    return (long)n;
}

/* The best target of each of the B lines: *out (B, *max_len) ids and
 * *out_lens (B), both malloc'ed (the caller frees them, also on error). */
static clstm_status decode(const clstm_model *m, int64_t B, char **lines, const vocabulary *src,
                           int src_space, int64_t width, double alpha, long longest_target,
                           int32_t **out_ids, int64_t **out_lengths, int64_t *max_len_out) {
    /* the lines' token counts first: the longest sets Ts and the length bound */
    size_t longest_bytes = 1;
    for (int64_t b = 0; b < B; b++) {
        const size_t n = strlen(lines[b]);
        if (n > longest_bytes) longest_bytes = n;
    }
    int32_t *row = malloc(longest_bytes * sizeof *row);
    int64_t *lens = malloc((size_t)B * sizeof *lens), *out_lens = malloc((size_t)B * sizeof *lens);
    double *scores = malloc((size_t)B * sizeof *scores);
    int32_t *ids = NULL, *out = NULL;
    *out_lengths = out_lens;
    void *ws = NULL;
    size_t bytes = 0;
    int64_t Ts = 1;
    clstm_status st = row && lens && out_lens && scores ? CLSTM_OK : CLSTM_ERR_NOMEM;
    for (int64_t b = 0; st == CLSTM_OK && b < B; b++) {
        lens[b] = encode(src, src_space, lines[b], row);
        if (lens[b] > Ts) Ts = lens[b];
    }
    const int64_t max_len = longest_target > 0 ? 2 * longest_target + 10 : 2 * Ts + 10;
    if (st == CLSTM_OK) {
        ids = calloc((size_t)(Ts * B), sizeof *ids);
        out = malloc((size_t)(B * max_len) * sizeof *out);
        *out_ids = out;
        *max_len_out = max_len;
        if (!ids || !out) st = CLSTM_ERR_NOMEM;
    }
    for (int64_t b = 0; st == CLSTM_OK && b < B; b++) { /* time-first: ids[t * B + b] */
        encode(src, src_space, lines[b], row);
        for (int64_t t = 0; t < lens[b]; t++) ids[t * B + b] = row[t];
    }
    if (st == CLSTM_OK) st = clstm_seq2seq_decode_workspace_size(m, Ts, B, width, max_len, &bytes);
    if (st == CLSTM_OK && !(ws = malloc(bytes))) st = CLSTM_ERR_NOMEM;
    if (st == CLSTM_OK)
        st = clstm_seq2seq_beam_search(m, Ts, B, ids, lens, width, max_len, alpha, 1, out,
                                       out_lens, scores, ws, bytes);
    free(ws);
    free(scores);
    free(lens);
    free(row);
    free(ids);
    return st;
}

/* Decode the non-empty lines of lines[0..n) as one batch (as clstm
 * translate does) and print one line each; an empty line prints empty. */
static clstm_status translate_lines(const clstm_model *m, int64_t n, char **lines,
                                    const vocabulary *src, const vocabulary *tgt, int src_space,
                                    int tgt_space, int64_t width, double alpha,
                                    long longest_target) {
    char *texts[BATCH];
    int64_t B = 0;
    for (int64_t i = 0; i < n; i++)
        if (lines[i][0]) texts[B++] = lines[i];
    int32_t *out = NULL;
    int64_t *out_lens = NULL, max_len = 0;
    clstm_status st = B ? decode(m, B, texts, src, src_space, width, alpha, longest_target,
                                 &out, &out_lens, &max_len)
                        : CLSTM_OK;
    for (int64_t i = 0, b = 0; st == CLSTM_OK && i < n; i++) {
        if (lines[i][0]) { /* an empty line stays empty */
            int first = 1;
            for (int64_t k = 0; k < out_lens[b]; k++) {
                const int32_t id = out[b * max_len + k];
                if (id < 3 && id != 2) continue; /* <s>, </s>: never shown */
                if (tgt_space && !first) putchar(' ');
                fputs(id < tgt->n ? tgt->tokens[id] : "<unk>", stdout);
                first = 0;
            }
            b++;
        }
        putchar('\n');
    }
    free(out);
    free(out_lens);
    return st;
}

/* ----------------------------------------------------------------- main */

int main(int argc, char **argv) {
    const char *path = NULL;
    long long beam = 5;
    double alpha = 1.0;
    for (int i = 1; i < argc; i++) {
        char *end;
        if (strcmp(argv[i], "--beam") == 0 || strcmp(argv[i], "--alpha") == 0) {
            if (i + 1 >= argc) return usage("missing value after", argv[i]);
            errno = 0;
            if (argv[i][2] == 'b') {
                beam = strtoll(argv[++i], &end, 10);
                if (errno || *end || beam < 1 || beam > CLSTM_SEQ2SEQ_MAX_WIDTH)
                    return usage("--beam: expected 1 to 4096, got", argv[i]);
            } else {
                alpha = strtod(argv[++i], &end);
                if (errno || *end || !(alpha >= 0 && alpha < 1e300))
                    return usage("--alpha: expected a number >= 0, got", argv[i]);
            }
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return usage("unknown option", argv[i]);
        } else if (!path) {
            path = argv[i];
        } else {
            return usage("unexpected argument", argv[i]);
        }
    }
    if (!path) return usage("expected a model", NULL);

    clstm_model *m = NULL;
    const char *why = NULL;
    clstm_status st = clstm_load_ex(path, &m, &why);
    if (st != CLSTM_OK) return fail(path, why ? why : clstm_status_string(st));
    clstm_config cfg = clstm_config_default();
    clstm_get_config(m, &cfg);
    const char *src_text = NULL, *tgt_text = NULL, *src_split = NULL, *tgt_split = NULL;
    vocabulary src = {0}, tgt = {0};
    int rc = 0;
    if (cfg.target_vocab == 0 || clstm_get_metadata(m, "source_tokens", &src_text) != CLSTM_OK ||
        clstm_get_metadata(m, "target_tokens", &tgt_text) != CLSTM_OK || !src_text ||
        !tgt_text) {
        rc = fail(path, "not an encoder-decoder with token vocabularies (train one with "
                        "`clstm train --pairs FILE.tsv`)");
        clstm_free(m);
        return rc;
    }
    clstm_get_metadata(m, "source_split", &src_split);
    clstm_get_metadata(m, "target_split", &tgt_split);
    /* a target's bound, as clstm translate's: twice the longest seen + 10 */
    const char *longest_text = NULL;
    long longest_target = 0;
    if (clstm_get_metadata(m, "max_target_length", &longest_text) == CLSTM_OK && longest_text &&
        longest_text[0] && strspn(longest_text, "0123456789") == strlen(longest_text) &&
        strlen(longest_text) <= 7) {
        longest_target = strtol(longest_text, NULL, 10);
        if (longest_target < 1 || longest_target > 1000000) longest_target = 0;
    }
    const int src_space = src_split && strcmp(src_split, "space") == 0;
    const int tgt_space = tgt_split && strcmp(tgt_split, "space") == 0;
    if ((src_split && !src_space && strcmp(src_split, "char") != 0) ||
        (tgt_split && !tgt_space && strcmp(tgt_split, "char") != 0)) {
        clstm_free(m);
        return fail(path, "its source_split or target_split is neither char nor space");
    }
    if (vocabulary_read(src_text, &src) != 0) {
        clstm_free(m);
        return fail(path, "its source tokens are malformed (or out of memory)");
    }
    if (vocabulary_read(tgt_text, &tgt) != 0) {
        vocabulary_free(&src);
        clstm_free(m);
        return fail(path, "its target tokens are malformed (or out of memory)");
    }
    if (src.n != cfg.vocab_size || tgt.n != cfg.target_vocab) {
        rc = fail(path, "its token lists do not match its vocabulary sizes");
        goto out;
    }
    char *lines[BATCH] = {0};
    size_t rooms[BATCH] = {0};
    int oom = 0, done = 0;
    long line_no = 0;
    while (!done && rc == 0) {
        int64_t n = 0;
        long len;
        const char *bad = NULL;
        while (n < BATCH && (len = read_line(stdin, &lines[n], &rooms[n], &oom)) >= 0) {
            line_no++;
            if (!utf8_valid((const unsigned char *)lines[n], (size_t)len)) {
                bad = memchr(lines[n], 0, (size_t)len) ? "contains the character U+0000"
                                                        : "not UTF-8";
                break;
            }
            n++;
        }
        done = n < BATCH;
        if (oom) {
            rc = fail("stdin", clstm_status_string(CLSTM_ERR_NOMEM));
            break;
        }
        /* the lines before a bad one are translated first, as clstm translate does */
        st = translate_lines(m, n, lines, &src, &tgt, src_space, tgt_space, (int64_t)beam, alpha,
                             longest_target);
        fflush(stdout);
        if (st != CLSTM_OK) {
            rc = fail("beam search", clstm_status_string(st));
        } else if (bad) {
            fprintf(stderr, "translate: stdin:%ld: %s\n", line_no, bad);
            rc = 1;
        }
    }
    for (int i = 0; i < BATCH; i++) free(lines[i]);
out:
    vocabulary_free(&src);
    vocabulary_free(&tgt);
    clstm_free(m);
    return rc;
}
