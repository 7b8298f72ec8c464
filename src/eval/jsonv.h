/* jsonv.h - a small JSON reader (RFC 8259) into a tree of values.
 *
 * The report reads metrics.json and cohort.json with it. Input is untrusted:
 * nesting is limited to JSONV_MAX_DEPTH, sizes are overflow-checked, and a
 * malformed document gives FA_ERR_FORMAT naming the file, line and reason.
 */
#ifndef FA_JSONV_H
#define FA_JSONV_H

#include <stddef.h>
#include <stdio.h>

#include "core/fa_status.h"

#define JSONV_MAX_DEPTH 128

typedef enum jsonv_type {
    JSONV_NULL,
    JSONV_BOOL,
    JSONV_NUM,
    JSONV_STR,
    JSONV_ARR,
    JSONV_OBJ
} jsonv_type;

typedef struct jsonv {
    jsonv_type type;
    int b;              /* JSONV_BOOL */
    double num;         /* JSONV_NUM */
    char *str;          /* JSONV_STR (UTF-8, NUL-terminated; may hold \0 escapes cut short) */
    size_t n;           /* JSONV_ARR / JSONV_OBJ: number of members */
    struct jsonv *item; /* members */
    char **key;         /* JSONV_OBJ: member names */
} jsonv;

/* Parse text[0..len) into *out (caller frees with jsonv_free). name is used
 * in messages. */
fa_status jsonv_parse(const char *name, const char *text, size_t len, jsonv *out, fa_error *err);
/* Read and parse a file (at most 512 MiB). */
fa_status jsonv_read_file(const char *path, jsonv *out, fa_error *err);
void jsonv_free(jsonv *v);

/* Lookups that tolerate missing data: NULL when v is NULL, not an object or
 * has no such member / index. */
const jsonv *jsonv_get(const jsonv *v, const char *key);
const jsonv *jsonv_at(const jsonv *v, size_t i);
/* Path lookup with '.'-separated member names, e.g. "auc.delong_ci". */
const jsonv *jsonv_path(const jsonv *v, const char *path);
size_t jsonv_len(const jsonv *v); /* members of an array/object, else 0 */
/* Number (NaN when v is absent, null or not a number). */
double jsonv_number(const jsonv *v);
/* String, or dflt when v is absent or not a string. */
const char *jsonv_string(const jsonv *v, const char *dflt);
int jsonv_is_true(const jsonv *v);

/* Write v as JSON (indent > 0: pretty, that many spaces per level). */
void jsonv_write(FILE *f, const jsonv *v, int indent);

#endif
