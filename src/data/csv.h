/* csv.h - RFC 4180 CSV reading and writing (manifests, predictions, tables).
 *
 * Reading: fields may be quoted; quotes inside are doubled; quoted fields may
 * contain commas and line breaks; CRLF and LF line ends are both accepted; a
 * UTF-8 byte-order mark at the start is skipped. Malformed input (a quote in
 * an unquoted field, an unterminated quote, a row longer than the limits)
 * gives FA_ERR_FORMAT naming the file and line.
 */
#ifndef FA_CSV_H
#define FA_CSV_H

#include <stddef.h>
#include <stdio.h>

#include "core/fa_status.h"

/* A whole CSV file in memory: a header row and data rows of strings. */
typedef struct csv_table {
    int n_cols;
    int n_rows;           /* data rows, header excluded */
    char **header;        /* n_cols names */
    char ***rows;         /* rows[r][c]; every row padded to n_cols ("" cells) */
} csv_table;

/* Parse a CSV file. Rows with more cells than the header are an error; rows
 * with fewer are padded with "". Blank lines are skipped. */
fa_status csv_read_file(const char *path, csv_table *out, fa_error *err);
/* Same for an in-memory buffer (name is used in messages; fuzzing entry). */
fa_status csv_parse(const char *name, const char *data, size_t len, csv_table *out, fa_error *err);
void csv_free(csv_table *t);

/* Column index by exact name, or -1. */
int csv_column(const csv_table *t, const char *name);
/* Cell text ("" when col < 0). */
const char *csv_cell(const csv_table *t, int row, int col);

/* Write one field, quoted when it contains a comma, quote, CR or LF or starts
 * or ends with a space. */
void csv_write_field(FILE *f, const char *s);
/* Write n fields and a "\n" (RFC 4180 allows LF; freeair writes LF). A row
 * of one empty field is written as "" so that readers do not skip it. */
void csv_write_row(FILE *f, int n, const char *const *fields);

#endif
