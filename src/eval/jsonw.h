/* jsonw.h - streaming JSON writer for metrics.json and report.json.
 *
 * Keeps the bookkeeping of commas and indentation so that writers read like
 * the document they produce. Non-finite numbers are written as null (JSON
 * has no NaN); numbers use the shortest of %.15g/%.17g that reads back
 * exactly, so files stay readable and lossless.
 */
#ifndef FA_JSONW_H
#define FA_JSONW_H

#include <stdio.h>

#define JSONW_MAX_DEPTH 64

typedef struct jsonw {
    FILE *f;                       /* borrowed */
    int depth;
    int count[JSONW_MAX_DEPTH];    /* members written at each level */
    int inline_[JSONW_MAX_DEPTH];  /* 1: keep this container on one line */
    char close[JSONW_MAX_DEPTH];   /* '}' or ']' */
    int error;                     /* set when nesting is exceeded or misused */
} jsonw;

/* Start writing to f (borrowed; the caller closes it). */
void jsonw_init(jsonw *w, FILE *f);

/* Every value writer takes a key: pass the member name inside an object and
 * NULL inside an array or for the top-level value. */
void jsonw_object(jsonw *w, const char *key);
void jsonw_array(jsonw *w, const char *key);
/* Like jsonw_array but the whole array stays on one line (number lists). */
void jsonw_array_inline(jsonw *w, const char *key);
void jsonw_end(jsonw *w); /* closes the innermost object or array */

void jsonw_num(jsonw *w, const char *key, double v);  /* NaN/inf -> null */
void jsonw_int(jsonw *w, const char *key, long long v);
void jsonw_str(jsonw *w, const char *key, const char *s); /* NULL -> null */
void jsonw_bool(jsonw *w, const char *key, int v);
void jsonw_null(jsonw *w, const char *key);
/* Emit the separator and key of a member whose value the caller writes
 * itself (e.g. an embedded document), as one value. */
void jsonw_raw(jsonw *w, const char *key);
/* [lo, hi] as an inline array, or null when either end is NaN. */
void jsonw_pair(jsonw *w, const char *key, double lo, double hi);

/* Shortest "%.15g"/"%.17g" text of a finite double (buffer >= 32 bytes). */
void jsonw_format_double(char *buf, size_t size, double v);

#endif
