/* recognize: read the text of line images with a text-line recognizer
 * trained by `clstm train --lines DIR`, from C, printing one line of text
 * per image.
 *
 *     recognize MODEL.safetensors IMAGE.pgm... [--beam K]
 *
 * Images are PGM (P5, binary, or P2, text; maxval up to 65535), exactly
 * the model's line height (its "line_height" metadata) in pixels: scale
 * them first (Python's `clstm recognize` scales any image with Pillow).
 * Each image is read as the model reads it in Python: pixel values
 * 1 - v / maxval (ink 1) in float32, column by column, and each time step
 * is `columns_per_step` neighbouring columns (its metadata; 1 where absent)
 * of `height` values each, the last step padded with paper (0). The model's
 * per-step logits go through best-path decoding (clstm_ctc_greedy), or
 * with --beam K a prefix beam search of width K (clstm_ctc_beam_search),
 * and label k > 0 is the k-th character of the model's "alphabet" metadata
 * (a JSON string). For 8-bit images the text equals `clstm recognize`'s.
 *
 * Exit status: 0 on success; 1 on a file, model or image error (the image
 * is named, and the images after it are not read); 2 on a usage error.
 * Messages go to stderr. */
#include <clstm.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define USAGE "usage: recognize MODEL.safetensors IMAGE.pgm... [--beam K]"

static int usage(const char *problem, const char *arg) {
    if (problem) fprintf(stderr, "recognize: %s%s%s%s\n", problem, arg ? " '" : "", arg ? arg : "",
                         arg ? "'" : "");
    fprintf(stderr, "%s\n", USAGE);
    return 2;
}

static int fail(const char *what, const char *detail) {
    fprintf(stderr, "recognize: %s: %s\n", what, detail);
    return 1;
}

/* ------------------------------------------------------------------ PGM */

/* The next header number of a PGM (blanks and # comments skipped); -1 on
 * a malformed header. */
static long pgm_number(FILE *f) {
    int c = fgetc(f);
    for (;;) {
        while (c == ' ' || c == '\t' || c == '\n' || c == '\r') c = fgetc(f);
        if (c != '#') break;
        while (c != '\n' && c != EOF) c = fgetc(f);
    }
    if (c < '0' || c > '9') return -1;
    long v = 0;
    while (c >= '0' && c <= '9') {
        if (v > 100000000) return -1;
        v = v * 10 + (c - '0');
        c = fgetc(f);
    }
    if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != EOF) return -1;
    return v;
}

/* The image as columns x (w, h) float32, 1 - v / maxval; NULL with *why
 * set on any error. */
static float *read_pgm(const char *path, long *w_out, long *h_out, const char **why) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        *why = strerror(errno);
        return NULL;
    }
    float *x = NULL;
    char magic[2];
    long w, h, maxval;
    *why = "not a PGM image (P5 or P2)";
    if (fread(magic, 1, 2, f) != 2 || magic[0] != 'P' || (magic[1] != '5' && magic[1] != '2'))
        goto done;
    w = pgm_number(f);
    h = pgm_number(f);
    maxval = pgm_number(f);
    *why = "a malformed PGM header";
    if (w < 1 || h < 1 || maxval < 1 || maxval > 65535 || w > 1000000 || h > 65536) goto done;
    *why = "out of memory";
    if (!(x = malloc((size_t)w * (size_t)h * sizeof *x))) goto done;
    *why = "truncated or malformed pixel data";
    for (long r = 0; r < h; r++)
        for (long c = 0; c < w; c++) {
            long v;
            if (magic[1] == '2') {
                v = pgm_number(f);
            } else if (maxval < 256) {
                const int b = fgetc(f);
                v = b == EOF ? -1 : b;
            } else {
                const int hi = fgetc(f), lo = fgetc(f);
                v = hi == EOF || lo == EOF ? -1 : hi * 256 + lo;
            }
            if (v < 0 || v > maxval) {
                free(x);
                x = NULL;
                goto done;
            }
            /* as NumPy computes it in float32: 1 - (v / maxval) */
            x[c * h + r] = 1.0f - (float)v / (float)maxval;
        }
    *w_out = w;
    *h_out = h;
    *why = NULL;
done:
    fclose(f);
    return x;
}

/* ------------------------------------------------------------- alphabet */

/* Append code point u as UTF-8 to out (4 bytes room). */
static int put_utf8(unsigned long u, char *out) {
    if (u < 0x80) return out[0] = (char)u, 1;
    if (u < 0x800) return out[0] = (char)(0xC0 | u >> 6), out[1] = (char)(0x80 | (u & 63)), 2;
    if (u < 0x10000) {
        out[0] = (char)(0xE0 | u >> 12);
        out[1] = (char)(0x80 | ((u >> 6) & 63));
        out[2] = (char)(0x80 | (u & 63));
        return 3;
    }
    out[0] = (char)(0xF0 | u >> 18);
    out[1] = (char)(0x80 | ((u >> 12) & 63));
    out[2] = (char)(0x80 | ((u >> 6) & 63));
    out[3] = (char)(0x80 | (u & 63));
    return 4;
}

static long hex4(const char *s) {
    long v = 0;
    for (int i = 0; i < 4; i++) {
        const char c = s[i];
        const int d = c >= '0' && c <= '9'   ? c - '0'
                      : c >= 'a' && c <= 'f' ? c - 'a' + 10
                      : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                             : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* The characters of the JSON string s, each as UTF-8 in chars[i] (up to
 * 4 bytes and a NUL); their count, or -1 if s is not a JSON string. */
static long parse_alphabet(const char *s, char (*chars)[5], long room) {
    long n = 0;
    if (*s++ != '"') return -1;
    while (*s != '"') {
        if (!*s || n >= room) return -1;
        unsigned long u;
        int len = 0;
        if (*s == '\\') {
            const char e = s[1];
            s += 2;
            if (e == 'u') {
                long a = hex4(s);
                if (a < 0) return -1;
                s += 4;
                if (a >= 0xD800 && a < 0xDC00) { /* a surrogate pair */
                    long b = s[0] == '\\' && s[1] == 'u' ? hex4(s + 2) : -1;
                    if (b < 0xDC00 || b >= 0xE000) return -1;
                    s += 6;
                    a = 0x10000 + ((a - 0xD800) << 10) + (b - 0xDC00);
                }
                u = (unsigned long)a;
            } else {
                const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t", *p = strchr(from, e);
                if (!e || !p) return -1;
                u = (unsigned char)to[p - from];
            }
            len = put_utf8(u, chars[n]);
        } else { /* one UTF-8 character, copied whole */
            const unsigned char c = (unsigned char)*s;
            len = c < 0x80 ? 1 : c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            for (int i = 0; i < len; i++) {
                if (!s[i]) return -1;
                chars[n][i] = s[i];
            }
            s += len;
        }
        chars[n++][len] = '\0';
    }
    return s[1] == '\0' ? n : -1;
}

/* ----------------------------------------------------------------- main */

int main(int argc, char **argv) {
    const char *path = NULL;
    long long beam = 1;
    int n_images = 0;
    char **images = calloc((size_t)argc, sizeof *images);
    if (!images) return fail("memory", "out of memory");
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--beam") == 0) {
            char *end;
            if (i + 1 >= argc) return free(images), usage("missing value after", argv[i]);
            errno = 0;
            beam = strtoll(argv[++i], &end, 10);
            if (errno || *end || beam < 1 || beam > CLSTM_CTC_MAX_WIDTH)
                return free(images), usage("--beam: expected 1 to 65536, got", argv[i]);
        } else if (argv[i][0] == '-' && argv[i][1]) {
            return free(images), usage("unknown option", argv[i]);
        } else if (!path) {
            path = argv[i];
        } else {
            images[n_images++] = argv[i];
        }
    }
    if (!path || n_images == 0) return free(images), usage("expected a model and images", NULL);

    clstm_model *m = NULL;
    const char *why = NULL;
    clstm_status st = clstm_load_ex(path, &m, &why);
    if (st != CLSTM_OK) return free(images), fail(path, why ? why : clstm_status_string(st));
    int rc = 0;
    const char *task = NULL, *alpha_json = NULL, *height_text = NULL, *per_step_text = NULL;
    clstm_config cfg = clstm_config_default(); /* its struct_size first */
    clstm_get_config(m, &cfg);
    if (clstm_get_metadata(m, "task", &task) != CLSTM_OK || !task || strcmp(task, "ctc") != 0 ||
        clstm_get_metadata(m, "alphabet", &alpha_json) != CLSTM_OK || !alpha_json ||
        clstm_get_metadata(m, "line_height", &height_text) != CLSTM_OK || !height_text) {
        rc = fail(path, "not a text-line recognizer (train one with `clstm train --lines DIR`)");
        goto out;
    }
    const long height = strtol(height_text, NULL, 10);
    /* columns per time step: absent in models trained before it existed */
    long per_step = 1;
    if (clstm_get_metadata(m, "columns_per_step", &per_step_text) == CLSTM_OK && per_step_text)
        per_step = strtol(per_step_text, NULL, 10);
    char(*alphabet)[5] = malloc((size_t)(cfg.output_size + 1) * sizeof *alphabet);
    const long n_chars = alphabet ? parse_alphabet(alpha_json, alphabet, cfg.output_size) : -1;
    if (n_chars < 0 || n_chars + 1 != cfg.output_size || height < 1 || per_step < 1 ||
        per_step > cfg.input_size || height * per_step != cfg.input_size) {
        free(alphabet);
        rc = fail(path, "its alphabet, line height or columns per step do not match its shape");
        goto out;
    }
    for (int k = 0; k < n_images && rc == 0; k++) {
        long w = 0, h = 0;
        float *x = read_pgm(images[k], &w, &h, &why);
        if (!x) {
            rc = fail(images[k], why);
            break;
        }
        if (h != height) {
            fprintf(stderr, "recognize: %s: %ld pixels high; the model reads lines of %ld: "
                            "scale it first\n", images[k], h, height);
            free(x);
            rc = 1;
            break;
        }
        /* whole time steps of per_step columns, the last padded with paper */
        const int64_t T = (w + per_step - 1) / per_step, C = cfg.output_size, width = beam;
        if (T * per_step > w) {
            float *grown = realloc(x, (size_t)(T * per_step * height) * sizeof *x);
            if (!grown) {
                free(x);
                rc = fail(images[k], clstm_status_string(CLSTM_ERR_NOMEM));
                break;
            }
            x = grown;
            memset(x + w * height, 0, (size_t)((T * per_step - w) * height) * sizeof *x);
        }
        size_t ws_bytes = 0;
        void *ws = NULL, *out = NULL;
        int32_t *labels = NULL;
        int64_t n_labels = 0;
        double score;
        st = clstm_model_workspace_size(m, T, 1, 0, &ws_bytes);
        if (st == CLSTM_OK) {
            ws = malloc(ws_bytes);
            out = malloc((size_t)(T * C) * (cfg.dtype == CLSTM_FLOAT64 ? 8 : 4));
            labels = malloc((size_t)T * sizeof *labels);
            st = ws && out && labels ? CLSTM_OK : CLSTM_ERR_NOMEM;
        }
        /* float64 models read float64 columns */
        double *x64 = NULL;
        if (st == CLSTM_OK && cfg.dtype == CLSTM_FLOAT64) {
            const int64_t n = T * cfg.input_size;
            if (!(x64 = malloc((size_t)n * sizeof *x64))) st = CLSTM_ERR_NOMEM;
            for (int64_t i = 0; x64 && i < n; i++) x64[i] = x[i];
        }
        if (st == CLSTM_OK)
            st = clstm_model_forward(m, T, 1, x64 ? (void *)x64 : (void *)x, NULL, NULL, NULL,
                                     out, NULL, NULL, NULL, ws, ws_bytes);
        if (st == CLSTM_OK && width == 1)
            st = clstm_ctc_greedy(cfg.dtype, T, 1, C, out, NULL, 0, labels, &n_labels);
        else if (st == CLSTM_OK)
            st = clstm_ctc_beam_search(cfg.dtype, T, 1, C, out, NULL, 0, width, 1, labels,
                                       &n_labels, &score);
        if (st == CLSTM_OK) {
            for (int64_t i = 0; i < n_labels; i++) fputs(alphabet[labels[i] - 1], stdout);
            putchar('\n');
        } else {
            rc = fail(images[k], clstm_status_string(st));
        }
        free(x64);
        free(labels);
        free(out);
        free(ws);
        free(x);
    }
    free(alphabet);
out:
    clstm_free(m);
    free(images);
    return rc;
}
