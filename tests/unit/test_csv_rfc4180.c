/* test_csv_rfc4180.c - the CSV parser and writer on the RFC 4180 cases
 * (quoted commas, doubled quotes, embedded line breaks, CRLF, BOM, padding,
 * blank lines) and on malformed input, which must give FA_ERR_FORMAT with the
 * file name and the line; plus writer -> parser round trips. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fa_test.h"
#include "data/csv.h"

FA_TEST_MAIN_STATE

static int parse(const char *s, csv_table *t, fa_error *err) {
    return csv_parse("t.csv", s, strlen(s), t, err);
}

/* Table equals the expected cells: rows of n_cols strings, header first. */
static void expect_table(const char *name, const char *csv, int n_cols, int n_rows, const char *const *cells) {
    csv_table t;
    fa_error err = {0};
    fa_status st = parse(csv, &t, &err);
    CHECK_MSG(st == FA_OK, "%s: %s", name, err.msg);
    if (st != FA_OK) return;
    CHECK_MSG(t.n_cols == n_cols && t.n_rows == n_rows, "%s: got %d cols %d rows, want %d %d", name, t.n_cols,
              t.n_rows, n_cols, n_rows);
    if (t.n_cols == n_cols && t.n_rows == n_rows) {
        for (int c = 0; c < n_cols; c++)
            CHECK_MSG(!strcmp(t.header[c], cells[c]), "%s: header %d is '%s', want '%s'", name, c, t.header[c],
                      cells[c]);
        for (int r = 0; r < n_rows; r++)
            for (int c = 0; c < n_cols; c++) {
                const char *want = cells[(r + 1) * n_cols + c];
                CHECK_MSG(!strcmp(csv_cell(&t, r, c), want), "%s: cell (%d,%d) is '%s', want '%s'", name, r, c,
                          csv_cell(&t, r, c), want);
            }
    }
    csv_free(&t);
}

static void expect_error(const char *name, const char *csv, size_t len, const char *msg_part) {
    csv_table t;
    fa_error err = {0};
    fa_status st = csv_parse("t.csv", csv, len, &t, &err);
    CHECK_MSG(st == FA_ERR_FORMAT, "%s: status %d, want FA_ERR_FORMAT", name, (int)st);
    CHECK_MSG(strstr(err.msg, "t.csv") != NULL, "%s: message '%s' does not name the file", name, err.msg);
    CHECK_MSG(strstr(err.msg, msg_part) != NULL, "%s: message '%s' lacks '%s'", name, err.msg, msg_part);
    CHECK_MSG(t.header == NULL && t.rows == NULL && t.n_rows == 0, "%s: table not cleared on error", name);
}

static void test_valid(void) {
    static const char *const simple[] = {"a", "b", "1", "2", "3", "4"};
    expect_table("simple", "a,b\n1,2\n3,4\n", 2, 2, simple);
    expect_table("no final newline", "a,b\n1,2\n3,4", 2, 2, simple);
    expect_table("crlf", "a,b\r\n1,2\r\n3,4\r\n", 2, 2, simple);
    expect_table("bare cr", "a,b\r1,2\r3,4\r", 2, 2, simple);
    expect_table("bom", "\xEF\xBB\xBF" "a,b\n1,2\n3,4\n", 2, 2, simple);
    expect_table("blank lines", "\n\na,b\n\n1,2\r\n\r\n3,4\n\n", 2, 2, simple);
    expect_table("quoted everything", "\"a\",\"b\"\n\"1\",\"2\"\n\"3\",\"4\"\n", 2, 2, simple);

    static const char *const quoted[] = {"name", "note", "x,y", "he said \"hi\"", "", "\"", "a\nb", "c\r\nd"};
    expect_table("quoted commas, quotes, line breaks",
                 "name,note\n\"x,y\",\"he said \"\"hi\"\"\"\n,\"\"\"\"\n\"a\nb\",\"c\r\nd\"\n", 2, 3, quoted);

    static const char *const empty[] = {"a", "b", "c", "", "", "", "", "", ""};
    expect_table("empty fields", "a,b,c\n,,\n\"\",\"\",\"\"\n", 3, 2, empty);

    static const char *const padded[] = {"a", "b", "c", "1", "", "", "1", "2", ""};
    expect_table("short rows padded", "a,b,c\n1\n1,2\n", 3, 2, padded);

    static const char *const spaces[] = {"a", "b", " x ", "y "};
    expect_table("spaces kept", "a,b\n x ,y \n", 2, 1, spaces);

    static const char *const utf8[] = {"k\xC3\xB6rper", "v", "B\xC3\xA4" "cken", "\xE8\x83\xB8"};
    expect_table("utf-8", "k\xC3\xB6rper,v\nB\xC3\xA4" "cken,\xE8\x83\xB8\n", 2, 1, utf8);

    static const char *const one[] = {"only"};
    expect_table("header only", "only\n", 1, 0, one);

    /* A quoted empty field makes a row even in a one-column file. */
    static const char *const one_empty[] = {"h", ""};
    expect_table("one empty quoted field", "h\n\"\"\n", 1, 1, one_empty);
}

static void test_malformed(void) {
    expect_error("quote in unquoted field", "a,b\n1,x\"y\n", 10, "line 2");
    expect_error("text after closing quote", "a,b\n\"1\"x,2\n", 10, "line 2");
    expect_error("unterminated quote", "a,b\n1,\"2\n3,4\n", 12, "unterminated");
    expect_error("too many fields", "a,b\n1,2\n1,2,3\n", 14, "line 3");
    expect_error("empty file", "", 0, "empty");
    expect_error("only blank lines", "\n\r\n\n", 4, "empty");
    expect_error("only a BOM", "\xEF\xBB\xBF", 3, "empty");
    /* The line number counts the line breaks inside quoted fields. */
    expect_error("line after embedded newline", "a,b\n\"x\ny\",1\nz,\"w\"q\n", 20, "line 4");
    /* More than the 4096-column limit. */
    size_t n = 5000 * 2;
    char *wide = malloc(n + 1);
    for (size_t i = 0; i < n; i += 2) {
        wide[i] = 'x';
        wide[i + 1] = i + 2 < n ? ',' : '\n';
    }
    wide[n] = '\0';
    expect_error("too many columns", wide, n, "4096");
    free(wide);
}

/* Writer then parser gives back the same cells. */
static void test_roundtrip(void) {
    static const char *const cells[] = {
        "plain", "with,comma", "with \"quotes\"", "multi\nline", "cr\r\nlf", " lead", "trail ", "", "\"", ",",
        "\xC3\xA9t\xC3\xA9", "x",
    };
    const int n_cols = 4, n_rows = 2; /* header + 2 rows = 12 cells */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    for (int r = 0; r <= n_rows; r++) csv_write_row(f, n_cols, cells + r * n_cols);
    fclose(f);
    csv_table t;
    fa_error err = {0};
    CHECK_MSG(csv_parse("rt.csv", buf, len, &t, &err) == FA_OK, "%s", err.msg);
    CHECK(t.n_cols == n_cols && t.n_rows == n_rows);
    if (t.n_cols == n_cols && t.n_rows == n_rows) {
        for (int c = 0; c < n_cols; c++) CHECK(!strcmp(t.header[c], cells[c]));
        for (int r = 0; r < n_rows; r++)
            for (int c = 0; c < n_cols; c++)
                CHECK_MSG(!strcmp(t.rows[r][c], cells[(r + 1) * n_cols + c]), "cell %d,%d '%s'", r, c, t.rows[r][c]);
    }
    csv_free(&t);
    free(buf);

    /* One column with an empty value must not turn into a skipped blank line. */
    static const char *const col[] = {"h", "", "v", ""};
    buf = NULL;
    f = open_memstream(&buf, &len);
    for (int r = 0; r < 4; r++) csv_write_row(f, 1, col + r);
    fclose(f);
    CHECK_MSG(csv_parse("rt1.csv", buf, len, &t, &err) == FA_OK, "%s", err.msg);
    CHECK_MSG(t.n_rows == 3, "one-column round trip kept %d of 3 rows: '%s'", t.n_rows, buf);
    if (t.n_rows == 3) CHECK(!strcmp(t.rows[0][0], "") && !strcmp(t.rows[1][0], "v") && !strcmp(t.rows[2][0], ""));
    csv_free(&t);
    free(buf);

    /* A header cell that starts with a byte-order mark keeps it: the reader
     * strips one BOM at the start of a file, so the writer quotes it (found
     * by fuzz_csv). */
    static const char *const bom_col[] = {"\xEF\xBB\xBF", "x"};
    buf = NULL;
    f = open_memstream(&buf, &len);
    for (int r = 0; r < 2; r++) csv_write_row(f, 1, bom_col + r);
    fclose(f);
    CHECK_MSG(csv_parse("rt_bom.csv", buf, len, &t, &err) == FA_OK, "%s", err.msg);
    CHECK(t.n_rows == 1 && !strcmp(t.header[0], "\xEF\xBB\xBF"));
    csv_free(&t);
    free(buf);

    /* Fields that need no quotes are written bare. */
    buf = NULL;
    f = open_memstream(&buf, &len);
    const char *bare[] = {"a", "b c", "1.5"};
    csv_write_row(f, 3, bare);
    fclose(f);
    CHECK(!strcmp(buf, "a,b c,1.5\n"));
    free(buf);
}

static void test_files_and_lookup(void) {
    csv_table t;
    fa_error err = {0};
    CHECK(csv_read_file("/nonexistent/dir/x.csv", &t, &err) == FA_ERR_IO);
    CHECK(strstr(err.msg, "/nonexistent/dir/x.csv") != NULL);
    char path[] = "/tmp/freeair_csv_XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    if (fd < 0) return;
    const char *text = "path,label\r\n\"a,1.dcm\",1\r\nb.dcm,0\r\n";
    CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
    close(fd);
    CHECK_MSG(csv_read_file(path, &t, &err) == FA_OK, "%s", err.msg);
    CHECK(t.n_rows == 2 && csv_column(&t, "label") == 1 && csv_column(&t, "nope") == -1);
    CHECK(!strcmp(csv_cell(&t, 0, 0), "a,1.dcm") && !strcmp(csv_cell(&t, 1, 1), "0"));
    CHECK(!strcmp(csv_cell(&t, 5, 0), "") && !strcmp(csv_cell(&t, 0, -1), ""));
    csv_free(&t);
    /* A directory is not a CSV file: an error, not a crash. */
    CHECK(csv_read_file("/tmp", &t, &err) != FA_OK);
    unlink(path);
}

int main(void) {
    test_valid();
    test_malformed();
    test_roundtrip();
    test_files_and_lookup();
    return fa_test_finish("test_csv_rfc4180");
}
