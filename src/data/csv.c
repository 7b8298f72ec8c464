/* csv.c - RFC 4180 CSV parser and writer. */
#include "data/csv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define CSV_MAX_COLS 4096
#define CSV_MAX_FILE_BYTES ((size_t)1 << 31)

typedef struct csv_buf {
    char *data;
    size_t len, cap;
} csv_buf;

static int buf_push(csv_buf *b, char c) {
    if (b->len + 1 >= b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        char *d = realloc(b->data, cap);
        if (!d) return 0;
        b->data = d;
        b->cap = cap;
    }
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
    return 1;
}

typedef struct csv_row {
    char **cells;
    int n, cap;
} csv_row;

/* 1 ok, 0 out of memory, -1 more than CSV_MAX_COLS fields. */
static int row_push(csv_row *r, csv_buf *field) {
    if (r->n >= CSV_MAX_COLS) return -1;
    if (r->n == r->cap) {
        int cap = r->cap ? r->cap * 2 : 16;
        char **c = realloc(r->cells, (size_t)cap * sizeof *c);
        if (!c) return 0;
        r->cells = c;
        r->cap = cap;
    }
    char *s = field->data ? field->data : strdup("");
    if (!s) return 0;
    r->cells[r->n++] = s;
    field->data = NULL;
    field->len = field->cap = 0;
    return 1;
}

static void row_free(csv_row *r) {
    for (int i = 0; i < r->n; i++) free(r->cells[i]);
    free(r->cells);
    memset(r, 0, sizeof *r);
}

void csv_free(csv_table *t) {
    if (!t) return;
    if (t->header) {
        for (int c = 0; c < t->n_cols; c++) free(t->header[c]);
        free(t->header);
    }
    for (int r = 0; r < t->n_rows; r++) {
        for (int c = 0; c < t->n_cols; c++) free(t->rows[r][c]);
        free(t->rows[r]);
    }
    free(t->rows);
    memset(t, 0, sizeof *t);
}

/* Append a completed row to the table; the first row becomes the header. */
static fa_status table_add_row(csv_table *t, csv_row *row, int *rows_cap, const char *name, int line,
                               fa_error *err) {
    if (!t->header) {
        t->header = row->cells;
        t->n_cols = row->n;
        memset(row, 0, sizeof *row);
        return FA_OK;
    }
    if (row->n > t->n_cols) {
        fa_status st = fa_error_set(err, FA_ERR_FORMAT, "%s: line %d: %d fields but the header has %d", name,
                                    line, row->n, t->n_cols);
        row_free(row);
        return st;
    }
    char **cells = realloc(row->cells, (size_t)t->n_cols * sizeof *cells);
    if (!cells) {
        row_free(row);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", name);
    }
    row->cells = cells;
    for (int c = row->n; c < t->n_cols; c++) {
        cells[c] = strdup("");
        if (!cells[c]) {
            row->n = c;
            row_free(row);
            return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", name);
        }
    }
    if (t->n_rows == *rows_cap) {
        if (*rows_cap > (1 << 29)) {
            row->n = t->n_cols;
            row_free(row);
            return fa_error_set(err, FA_ERR_FORMAT, "%s: line %d: more than 2^30 rows", name, line);
        }
        int cap = *rows_cap ? *rows_cap * 2 : 64;
        char ***rows = realloc(t->rows, (size_t)cap * sizeof *rows);
        if (!rows) {
            row->n = t->n_cols;
            row_free(row);
            return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", name);
        }
        t->rows = rows;
        *rows_cap = cap;
    }
    t->rows[t->n_rows++] = cells;
    memset(row, 0, sizeof *row);
    return FA_OK;
}

fa_status csv_parse(const char *name, const char *data, size_t len, csv_table *out, fa_error *err) {
    memset(out, 0, sizeof *out);
    size_t i = 0;
    if (len >= 3 && (unsigned char)data[0] == 0xEF && (unsigned char)data[1] == 0xBB &&
        (unsigned char)data[2] == 0xBF)
        i = 3;
    csv_buf field = {0};
    csv_row row = {0};
    int rows_cap = 0, line = 1, row_line = 1;
    int in_quotes = 0, was_quoted = 0, row_has_content = 0;
    fa_status st = FA_OK;
    for (; i <= len; i++) {
        int at_end = (i == len);
        char ch = at_end ? '\n' : data[i];
        if (in_quotes) {
            if (at_end) {
                st = fa_error_set(err, FA_ERR_FORMAT, "%s: line %d: unterminated quoted field", name, row_line);
                goto fail;
            }
            if (ch == '"') {
                if (i + 1 < len && data[i + 1] == '"') {
                    if (!buf_push(&field, '"')) goto oom;
                    i++;
                } else {
                    in_quotes = 0;
                }
            } else {
                if (ch == '\n') line++;
                if (!buf_push(&field, ch)) goto oom;
            }
            continue;
        }
        if (ch == '"') {
            if (field.len > 0 || was_quoted) {
                st = fa_error_set(err, FA_ERR_FORMAT, "%s: line %d: quote inside an unquoted field", name, line);
                goto fail;
            }
            in_quotes = 1;
            was_quoted = 1;
            row_has_content = 1;
        } else if (ch == ',') {
            int pr = row_push(&row, &field);
            if (pr < 0) goto toolong;
            if (pr == 0) goto oom;
            was_quoted = 0;
            row_has_content = 1;
        } else if (ch == '\r' || ch == '\n') {
            if (ch == '\r' && i + 1 < len && data[i + 1] == '\n') i++;
            if (row_has_content || field.len > 0) {
                int pr = row_push(&row, &field);
                if (pr < 0) goto toolong;
                if (pr == 0) goto oom;
                st = table_add_row(out, &row, &rows_cap, name, row_line, err);
                if (st != FA_OK) goto fail;
            }
            was_quoted = 0;
            row_has_content = 0;
            line++;
            row_line = line;
        } else {
            if (was_quoted) {
                st = fa_error_set(err, FA_ERR_FORMAT, "%s: line %d: text after a closing quote", name, line);
                goto fail;
            }
            if (!buf_push(&field, ch)) goto oom;
            row_has_content = 1;
        }
    }
    free(field.data);
    if (!out->header) {
        csv_free(out);
        return fa_error_set(err, FA_ERR_FORMAT, "%s: empty CSV (no header row)", name);
    }
    return FA_OK;
toolong:
    st = fa_error_set(err, FA_ERR_FORMAT, "%s: line %d: more than %d fields", name, line, CSV_MAX_COLS);
    goto fail;
oom:
    st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", name);
fail:
    free(field.data);
    row_free(&row);
    csv_free(out);
    return st;
}

fa_status csv_read_file(const char *path, csv_table *out, fa_error *err) {
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    if (fseek(f, 0, SEEK_END) != 0) {
        fclose(f);
        return fa_error_set(err, FA_ERR_IO, "%s: cannot seek", path);
    }
    long size = ftell(f);
    if (size < 0 || (size_t)size > CSV_MAX_FILE_BYTES) {
        fclose(f);
        return fa_error_set(err, FA_ERR_FORMAT, "%s: unreadable or larger than 2 GiB", path);
    }
    rewind(f);
    char *data = malloc((size_t)size + 1);
    if (!data) {
        fclose(f);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t got = fread(data, 1, (size_t)size, f);
    fclose(f);
    if (got != (size_t)size) {
        free(data);
        return fa_error_set(err, FA_ERR_IO, "%s: short read", path);
    }
    data[got] = '\0';
    fa_status st = csv_parse(path, data, got, out, err);
    free(data);
    return st;
}

int csv_column(const csv_table *t, const char *name) {
    for (int c = 0; c < t->n_cols; c++)
        if (!strcmp(t->header[c], name)) return c;
    return -1;
}

const char *csv_cell(const csv_table *t, int row, int col) {
    if (col < 0 || col >= t->n_cols || row < 0 || row >= t->n_rows) return "";
    return t->rows[row][col];
}

void csv_write_field(FILE *f, const char *s) {
    if (!s) s = "";
    size_t n = strlen(s);
    /* A leading UTF-8 byte-order mark is quoted so that a reader, which
     * strips one BOM at the start of a file, keeps it as data. */
    int quote = n > 0 && (s[0] == ' ' || s[n - 1] == ' ' ||
                          (n >= 3 && (unsigned char)s[0] == 0xEF &&
                           (unsigned char)s[1] == 0xBB && (unsigned char)s[2] == 0xBF));
    for (const char *p = s; *p && !quote; p++)
        if (*p == ',' || *p == '"' || *p == '\r' || *p == '\n') quote = 1;
    if (!quote) {
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

void csv_write_row(FILE *f, int n, const char *const *fields) {
    /* A lone empty field would be a blank line, which readers skip: quote it. */
    if (n == 1 && (!fields[0] || !fields[0][0])) {
        fputs("\"\"\n", f);
        return;
    }
    for (int i = 0; i < n; i++) {
        if (i) fputc(',', f);
        csv_write_field(f, fields[i]);
    }
    fputc('\n', f);
}
