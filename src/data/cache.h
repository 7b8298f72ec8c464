/* cache.h - the preprocessing cache: every ok image of a manifest decoded
 * once (image_load, display stage), resized to a working resolution and kept
 * at 16 bits in one memory-mappable file, so training epochs read pixels
 * instead of decoding DICOM.
 *
 * Layout of a cache directory:
 *   pixels.<gen>.bin  data file: a 64-byte header ("FREEAIR-CACHE-1\n",
 *                     then the uint32 0x01020304 in the writer's byte order,
 *                     little endian on every machine freeair supports),
 *                     then the images, each uint16 row-major, starting at a
 *                     64-byte aligned offset.
 *   index.csv         one row per image of the manifest (sorted by path):
 *                     path (as written in the manifest), size, mtime_ns (of
 *                     the source file), options_hash (16 hex digits),
 *                     short_side, filter, status (ok/error), reason,
 *                     data_file, offset, width, height.
 *   lock              flock()ed while a build runs.
 *
 * Key of an entry: path + file size + mtime (ns) + options hash (pipeline
 * version, short side, filter). A build reuses every entry whose key is
 * unchanged (also failures: an unchanged file that failed is not retried) and
 * decodes only the rest; a change of options changes every key, so all are
 * rebuilt. Nothing changed -> nothing is written.
 *
 * Crash safety: a build never modifies the data file the current index names.
 * It writes pixels.<gen+1>.bin (copying reused images from the old one),
 * fsyncs it, writes index.csv.tmp, fsyncs, renames it over index.csv (the
 * commit point), fsyncs the directory, and only then deletes old data files.
 * A crash at any point leaves the old or the new cache whole.
 *
 * Resizing: resize.h (Pillow's algorithm, Lanczos by default); the short side
 * becomes short_side, images already smaller keep their size.
 */
#ifndef FA_CACHE_H
#define FA_CACHE_H

#include <stdint.h>

#include "core/fa_status.h"
#include "data/resize.h"

#define CACHE_VERSION "freeair-cache-1;display-stage"

typedef struct cache_opts {
    int short_side;       /* default 320 when 0 */
    resize_filter filter; /* RESIZE_LANCZOS by default */
    int threads;          /* 0 = OpenMP default */
    int quiet;            /* no progress line */
    const char *log_path; /* JSON lines: one "cache_decode" per decoded image */
} cache_opts;

typedef struct cache_build_stats {
    int n_images;    /* distinct ok paths in the manifest */
    int n_decoded;   /* decoded in this build (new or changed) */
    int n_reused;    /* taken from the previous cache */
    int n_failed;    /* entries in error (decoded now or kept from before) */
    int n_dropped;   /* entries of the old index no longer in the manifest */
    int rewritten;   /* 1 when a new data file and index were committed */
    char first_failure[512]; /* "path: reason" of the first failed entry */
} cache_build_stats;

/* Hash of the options that determine the pixels (FNV-1a 64 over the version
 * string, short side and filter). */
uint64_t cache_options_hash(int short_side, resize_filter filter);

/* Build or update the cache in dir (created if missing) from the ok rows of
 * manifest_path (relative paths are resolved as manifest_resolve_path does).
 * A file that fails to decode is recorded as an error entry, not a failure
 * of the build; FA_ERR_* for unusable manifests, I/O errors, or another build
 * running in the same directory. */
fa_status cache_build(const char *manifest_path, const char *dir, const cache_opts *opts, cache_build_stats *stats,
                      fa_error *err);

/* An open cache (read-only mmap of the data file). */
typedef struct cache cache;

/* Open dir's cache. FA_ERR_NOT_FOUND when there is no index; FA_ERR_FORMAT
 * when the index or data file is malformed (every offset and size is checked
 * against the data file). Close with cache_close. */
fa_status cache_open(const char *dir, cache **out, fa_error *err);
void cache_close(cache *c);

/* Pixels of path (the manifest's path string, exactly). The pointer stays
 * valid until cache_close. FA_ERR_NOT_FOUND when absent; FA_ERR_FORMAT with
 * the recorded reason when the entry failed to decode. */
fa_status cache_lookup(const cache *c, const char *path, int *width, int *height, const uint16_t **pixels,
                       fa_error *err);

/* Number of entries (ok and error) and the i-th (sorted by path); any output
 * pointer may be NULL. *pixels is NULL for error entries. */
int cache_count(const cache *c);
const char *cache_entry(const cache *c, int i, int *width, int *height, const uint16_t **pixels);

/* Options the cache was built with (from its index). */
int cache_short_side(const cache *c);

#endif
