/* fuzz_file.h - hand a libFuzzer input to readers that take a path: the
 * bytes go to one per-process file in /dev/shm (or $TMPDIR), rewritten each
 * iteration and removed at exit. Header-only, for tests/fuzz/fuzz_*.c. */
#ifndef FA_FUZZ_FILE_H
#define FA_FUZZ_FILE_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static char fuzz_path[256];

static void fuzz_file_cleanup(void) {
    if (fuzz_path[0]) unlink(fuzz_path);
}

/* Returns the path holding exactly `data`, or NULL if it cannot be written. */
static const char *fuzz_file_write(const uint8_t *data, size_t size, const char *suffix) {
    if (!fuzz_path[0]) {
        const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : (getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        snprintf(fuzz_path, sizeof fuzz_path, "%s/freeair-fuzz-%ld%s", dir, (long)getpid(), suffix);
        atexit(fuzz_file_cleanup);
    }
    FILE *f = fopen(fuzz_path, "wb");
    if (!f) return NULL;
    size_t n = size ? fwrite(data, 1, size, f) : 0;
    if (fclose(f) != 0 || n != size) return NULL;
    return fuzz_path;
}

#endif
