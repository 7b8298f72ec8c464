/* fa_status.h - status codes and error messages shared by every freeair module.
 *
 * Contract (SQLite style): library functions return an fa_status and, on
 * failure, fill a caller-owned fa_error with one human-readable line that
 * names the file or object and the reason.  Library code never exits or
 * prints; the CLI decides what to do with the message.
 */
#ifndef FA_STATUS_H
#define FA_STATUS_H

#include <stddef.h>
#include <stdint.h>

typedef enum fa_status {
    FA_OK = 0,
    FA_ERR_ARG,         /* bad argument or configuration value */
    FA_ERR_IO,          /* open/read/write/fsync failed */
    FA_ERR_FORMAT,      /* malformed or truncated file */
    FA_ERR_UNSUPPORTED, /* valid input that freeair does not handle */
    FA_ERR_SHAPE,       /* tensor or image shape mismatch */
    FA_ERR_NOMEM,       /* allocation failed or size overflowed */
    FA_ERR_BACKEND,     /* oneDNN / DCMTK / other library reported failure */
    FA_ERR_NUMERIC,     /* NaN or Inf where a finite value is required */
    FA_ERR_REFUSED,     /* input deliberately refused (e.g. chest gate) */
    FA_ERR_NOT_FOUND,   /* named object (file, tensor, layer) does not exist */
    FA_ERR_INTERNAL     /* invariant violated; a bug in freeair */
} fa_status;

#define FA_ERROR_MSG_MAX 1024

typedef struct fa_error {
    fa_status code;
    char msg[FA_ERROR_MSG_MAX];
} fa_error;

/* Record an error (printf-style message) and return its code, so callers can
 * write `return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));`.
 * err may be NULL, in which case only the code is returned. */
fa_status fa_error_set(fa_error *err, fa_status code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefix an existing message with context ("loading weights: ..."). */
fa_status fa_error_prefix(fa_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

void fa_error_clear(fa_error *err);

/* Short stable name of a status ("io", "format", ...), for logs. */
const char *fa_status_name(fa_status code);

/* Overflow-checked size arithmetic (stb style): return 0 and leave *out
 * untouched when the result would not fit in size_t. */
int fa_size_mul(size_t a, size_t b, size_t *out);
int fa_size_add(size_t a, size_t b, size_t *out);
/* a*b*c*d; any zero factor gives 0. */
int fa_size_mul4(size_t a, size_t b, size_t c, size_t d, size_t *out);

/* malloc/calloc of n*size bytes with overflow check; NULL on overflow or
 * failure. The caller owns the result. */
void *fa_malloc_array(size_t n, size_t size);
void *fa_calloc_array(size_t n, size_t size);

#endif
