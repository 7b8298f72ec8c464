/* fuzz_csv.c - libFuzzer target for the CSV parser (data/csv.c).
 *
 * Any input must parse or fail cleanly (no crash, leak or hang under
 * ASan/UBSan). When it parses, two properties are checked and abort() on
 * violation: every row has n_cols cells, and writing the table with the CSV
 * writer and parsing it again gives the same cells (the writer quotes exactly
 * what the parser needs).
 *
 * Build (tests/fuzz/run.sh does this for every fuzz_*.c):
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Isrc \
 *     tests/fuzz/fuzz_csv.c src/data/csv.c src/core/fa_status.c
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/csv.h"

static int same_table(const csv_table *a, const csv_table *b) {
    if (a->n_cols != b->n_cols || a->n_rows != b->n_rows) return 0;
    for (int c = 0; c < a->n_cols; c++)
        if (strcmp(a->header[c], b->header[c])) return 0;
    for (int r = 0; r < a->n_rows; r++)
        for (int c = 0; c < a->n_cols; c++)
            if (strcmp(a->rows[r][c], b->rows[r][c])) return 0;
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    csv_table t;
    fa_error err = {0};
    if (csv_parse("fuzz.csv", (const char *)data, size, &t, &err) != FA_OK) {
        if (!err.msg[0]) abort(); /* every failure explains itself */
        return 0;
    }
    if (t.n_cols < 1 || !t.header) abort();
    for (int r = 0; r < t.n_rows; r++)
        for (int c = 0; c < t.n_cols; c++)
            if (!t.rows[r][c]) abort();
    /* Cells with an embedded NUL cannot round-trip as C strings: the parser
     * keeps the bytes but the cell reads up to the NUL, so compare what the
     * API exposes, which the writer reproduces. */
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) abort();
    csv_write_row(f, t.n_cols, (const char *const *)t.header);
    for (int r = 0; r < t.n_rows; r++) csv_write_row(f, t.n_cols, (const char *const *)t.rows[r]);
    fclose(f);
    csv_table u;
    if (csv_parse("roundtrip.csv", buf, len, &u, &err) != FA_OK) {
        fprintf(stderr, "round trip failed to parse: %s\n", err.msg);
        abort();
    }
    if (!same_table(&t, &u)) {
        fprintf(stderr, "round trip changed the table\n");
        abort();
    }
    csv_free(&u);
    free(buf);
    csv_free(&t);
    return 0;
}
