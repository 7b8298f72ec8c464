/* digest.h - SHA-256 of buffers and files, for the provenance of results
 * (every metrics.json names the exact inputs it was computed from). */
#ifndef FA_DIGEST_H
#define FA_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#include "core/fa_status.h"

typedef struct digest_sha256 {
    uint32_t h[8];
    uint64_t bytes;
    unsigned char block[64];
    size_t used;
} digest_sha256;

void digest_sha256_init(digest_sha256 *d);
void digest_sha256_update(digest_sha256 *d, const void *data, size_t len);
void digest_sha256_final(digest_sha256 *d, unsigned char out[32]);

/* Lower-case hex digest of a whole file into hex[65]. FA_ERR_IO/NOT_FOUND
 * naming the file on failure. */
fa_status digest_sha256_file(const char *path, char hex[65], fa_error *err);
/* Lower-case hex of a buffer's digest into hex[65]. */
void digest_sha256_hex(const void *data, size_t len, char hex[65]);

#endif
