/* test_csv_python.c - the CSV parser against Python's csv module (strict
 * mode, tests/ref/csv_reference.py run with $REF_PYTHON) on 200 random valid
 * files: fields with commas, quotes, CR, LF, CRLF, spaces and UTF-8, fields
 * quoted when needed or at random, LF or CRLF line ends, with and without a
 * BOM and a final line break. Each file must give byte-identical cells. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fa_test.h"
#include "data/csv.h"

FA_TEST_MAIN_STATE

#define N_FILES 200

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static unsigned rnd(unsigned n) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)((rng >> 16) % n);
}

static void random_field(char *out, size_t cap) {
    static const char *const atoms[] = {"a", "b", "Z", "1", ",", "\"", "\n", "\r\n", " ", "\xC3\xA9", "\xE8\x83\xB8",
                                        "x y", ";", "\t"};
    size_t len = 0;
    int n = (int)rnd(6);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        const char *a = atoms[rnd(sizeof atoms / sizeof atoms[0])];
        size_t al = strlen(a);
        if (len + al + 1 >= cap) break;
        memcpy(out + len, a, al + 1);
        len += al;
    }
}

static void write_field(FILE *f, const char *s) {
    int need = strpbrk(s, ",\"\r\n") != NULL;
    if (!need && rnd(4) != 0) { /* quote a quarter of the plain fields too */
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (const char *p = s; *p; p++) {
        if (*p == '"') fputc('"', f);
        fputc(*p, f);
    }
    fputc('"', f);
}

static void canonical(const csv_table *t, char **buf, size_t *len) {
    FILE *f = open_memstream(buf, len);
    for (int r = -1; r < t->n_rows; r++) {
        char **row = r < 0 ? t->header : t->rows[r];
        for (int c = 0; c < t->n_cols; c++) {
            if (c) fputc(0x1f, f);
            fputs(row[c], f);
        }
        fputc(0x1e, f);
    }
    fclose(f);
}

static char *slurp(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0;
    *len = 0;
    for (;;) {
        if (*len + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
        }
        size_t got = fread(buf + *len, 1, cap - *len, f);
        *len += got;
        if (got == 0) break;
    }
    fclose(f);
    return buf;
}

int main(void) {
    char dir[] = "/tmp/freeair_csvpy_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    size_t cmd_cap = 64 + N_FILES * 2 * (sizeof dir + 32) + 512;
    char *cmd = malloc(cmd_cap);
    const char *py = getenv("REF_PYTHON"), *root = getenv("FREEAIR_ROOT");
    int pos = snprintf(cmd, cmd_cap, "'%s' '%s/tests/ref/csv_reference.py'", py && *py ? py : "/usr/bin/python3",
                       root && *root ? root : ".");
    for (int k = 0; k < N_FILES; k++) {
        char path[256];
        snprintf(path, sizeof path, "%s/%d.csv", dir, k);
        FILE *f = fopen(path, "wb");
        if (!f) return 1;
        if (rnd(4) == 0) fputs("\xEF\xBB\xBF", f);
        int cols = 1 + (int)rnd(5), rows = 1 + (int)rnd(8);
        const char *eol = rnd(2) ? "\r\n" : "\n";
        for (int r = 0; r < rows; r++) {
            char fields[5][128];
            for (int c = 0; c < cols; c++) {
                random_field(fields[c], sizeof fields[c]);
                /* The header names must be non-empty to be a usable header,
                 * and a one-column row must not be empty (blank line). */
                if ((r == 0 || cols == 1) && !fields[c][0]) strcpy(fields[c], "h");
            }
            for (int c = 0; c < cols; c++) {
                if (c) fputc(',', f);
                write_field(f, fields[c]);
            }
            if (r + 1 < rows || rnd(2)) fputs(eol, f);
        }
        fclose(f);
        pos += snprintf(cmd + pos, cmd_cap - (size_t)pos, " %s %s/%d.ref", path, dir, k);
    }
    int rc = system(cmd);
    CHECK_MSG(rc == 0, "reference failed: %.200s...", cmd);
    int mismatches = 0;
    for (int k = 0; rc == 0 && k < N_FILES; k++) {
        char path[256], ref[256];
        snprintf(path, sizeof path, "%s/%d.csv", dir, k);
        snprintf(ref, sizeof ref, "%s/%d.ref", dir, k);
        csv_table t;
        fa_error err = {0};
        fa_status st = csv_read_file(path, &t, &err);
        CHECK_MSG(st == FA_OK, "%s: %s", path, err.msg);
        size_t rlen = 0, olen = 0;
        char *want = slurp(ref, &rlen), *ours = NULL;
        if (st == FA_OK) canonical(&t, &ours, &olen);
        int same = st == FA_OK && want && rlen == olen && !memcmp(want, ours, rlen);
        if (!same) {
            mismatches++;
            fprintf(stderr, "%s differs from Python's csv (kept for inspection)\n", path);
        } else {
            unlink(path);
            unlink(ref);
        }
        free(want);
        free(ours);
        if (st == FA_OK) csv_free(&t);
    }
    CHECK_MSG(mismatches == 0, "%d of %d files parse differently from Python's csv", mismatches, N_FILES);
    printf("%d random CSV files: %d differ from Python's csv module\n", N_FILES, mismatches);
    if (!mismatches) rmdir(dir);
    free(cmd);
    fflush(stdout);
    return fa_test_finish("test_csv_python");
}
