/* cache.c - build, open and query the preprocessing cache (layout and
 * crash-safety rules in cache.h). */
#include "data/cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fa_progress.h"
#include "data/csv.h"
#include "data/image.h"
#include "data/manifest.h"

#define CACHE_MAGIC "FREEAIR-CACHE-1\n"
#define CACHE_HEADER_BYTES 64
#define CACHE_ALIGN 64
#define CACHE_BYTE_ORDER 0x01020304u

static const char *const index_columns[] = {"path",   "size",   "mtime_ns",  "options_hash", "short_side", "filter",
                                            "status", "reason", "data_file", "offset",       "width",      "height"};
enum { IX_PATH, IX_SIZE, IX_MTIME, IX_HASH, IX_SHORT, IX_FILTER, IX_STATUS, IX_REASON, IX_DATA, IX_OFFSET, IX_W, IX_H, IX_N };

typedef struct centry {
    char *path;
    int64_t size, mtime_ns;
    uint64_t hash;
    int short_side;
    resize_filter filter;
    int ok;
    char *reason;
    uint64_t offset;
    int width, height;
} centry;

struct cache {
    char data_file[256];
    void *map;
    size_t map_size;
    centry *e;
    int n;
    int short_side;
};

uint64_t cache_options_hash(int short_side, resize_filter filter) {
    char s[256];
    snprintf(s, sizeof s, "%s;short_side=%d;filter=%s", CACHE_VERSION, short_side, resize_filter_name(filter));
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    return h;
}

static void centry_free(centry *e) {
    free(e->path);
    free(e->reason);
    memset(e, 0, sizeof *e);
}

static int cmp_centry(const void *a, const void *b) { return strcmp(((const centry *)a)->path, ((const centry *)b)->path); }

void cache_close(cache *c) {
    if (!c) return;
    if (c->map) munmap(c->map, c->map_size);
    for (int i = 0; i < c->n; i++) centry_free(&c->e[i]);
    free(c->e);
    free(c);
}

static int parse_i64(const char *s, int64_t *out) {
    if (!s[0]) return 0;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return 0;
    *out = v;
    return 1;
}

static int data_file_name_ok(const char *s) {
    return s[0] && s[0] != '.' && !strchr(s, '/') && strlen(s) < 200;
}

fa_status cache_open(const char *dir, cache **out, fa_error *err) {
    *out = NULL;
    char ipath[PATH_MAX];
    if (snprintf(ipath, sizeof ipath, "%s/index.csv", dir) >= (int)sizeof ipath)
        return fa_error_set(err, FA_ERR_ARG, "%s: path too long", dir);
    if (access(ipath, F_OK) != 0) return fa_error_set(err, FA_ERR_NOT_FOUND, "%s: no cache index", ipath);
    csv_table t;
    fa_status st = csv_read_file(ipath, &t, err);
    if (st != FA_OK) return st;
    cache *c = calloc(1, sizeof *c);
    int col[IX_N];
    if (!c) {
        csv_free(&t);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", ipath);
    }
    for (int k = 0; k < IX_N; k++)
        if ((col[k] = csv_column(&t, index_columns[k])) < 0) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: no '%s' column", ipath, index_columns[k]);
            goto fail;
        }
    c->e = fa_calloc_array((size_t)t.n_rows + 1, sizeof *c->e);
    if (!c->e) {
        st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", ipath);
        goto fail;
    }
    for (int r = 0; r < t.n_rows; r++) {
        centry *e = &c->e[c->n];
        int64_t ss = 0, off = 0, w = 0, h = 0;
        const char *hash = csv_cell(&t, r, col[IX_HASH]);
        char *hend;
        e->hash = strtoull(hash, &hend, 16);
        int good = parse_i64(csv_cell(&t, r, col[IX_SIZE]), &e->size) &&
                   parse_i64(csv_cell(&t, r, col[IX_MTIME]), &e->mtime_ns) && hash[0] && !*hend &&
                   parse_i64(csv_cell(&t, r, col[IX_SHORT]), &ss) && ss >= 0 && ss <= 65535 &&
                   resize_filter_parse(csv_cell(&t, r, col[IX_FILTER]), &e->filter) &&
                   csv_cell(&t, r, col[IX_PATH])[0];
        const char *status = csv_cell(&t, r, col[IX_STATUS]);
        e->ok = !strcmp(status, "ok");
        if (good && e->ok) {
            const char *df = csv_cell(&t, r, col[IX_DATA]);
            good = parse_i64(csv_cell(&t, r, col[IX_OFFSET]), &off) && parse_i64(csv_cell(&t, r, col[IX_W]), &w) &&
                   parse_i64(csv_cell(&t, r, col[IX_H]), &h) && off >= CACHE_HEADER_BYTES && off % 2 == 0 && w >= 1 &&
                   w <= 65535 && h >= 1 && h <= 65535 && data_file_name_ok(df);
            if (good && !c->data_file[0]) snprintf(c->data_file, sizeof c->data_file, "%s", df);
            if (good && strcmp(c->data_file, df)) {
                st = fa_error_set(err, FA_ERR_FORMAT, "%s: data row %d names a second data file %s", ipath, r + 1, df);
                goto fail;
            }
            e->offset = (uint64_t)off;
            e->width = (int)w;
            e->height = (int)h;
        } else if (good && strcmp(status, "error")) {
            good = 0;
        }
        if (!good) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: data row %d is malformed", ipath, r + 1);
            goto fail;
        }
        e->short_side = (int)ss;
        e->path = strdup(csv_cell(&t, r, col[IX_PATH]));
        e->reason = strdup(csv_cell(&t, r, col[IX_REASON]));
        c->n++;
        if (!e->path || !e->reason) {
            st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", ipath);
            goto fail;
        }
        c->short_side = e->short_side;
    }
    qsort(c->e, (size_t)c->n, sizeof *c->e, cmp_centry);
    for (int i = 1; i < c->n; i++)
        if (!strcmp(c->e[i].path, c->e[i - 1].path)) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: %s is listed twice", ipath, c->e[i].path);
            goto fail;
        }
    if (c->data_file[0]) {
        char dpath[PATH_MAX];
        snprintf(dpath, sizeof dpath, "%s/%s", dir, c->data_file);
        int fd = open(dpath, O_RDONLY | O_CLOEXEC);
        struct stat sb;
        if (fd < 0 || fstat(fd, &sb) != 0) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: %s", dpath, strerror(errno));
            if (fd >= 0) close(fd);
            goto fail;
        }
        if (sb.st_size < CACHE_HEADER_BYTES) {
            close(fd);
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: truncated data file", dpath);
            goto fail;
        }
        c->map_size = (size_t)sb.st_size;
        c->map = mmap(NULL, c->map_size, PROT_READ, MAP_SHARED, fd, 0);
        close(fd);
        if (c->map == MAP_FAILED) {
            c->map = NULL;
            st = fa_error_set(err, FA_ERR_IO, "%s: mmap: %s", dpath, strerror(errno));
            goto fail;
        }
        uint32_t order;
        memcpy(&order, (const char *)c->map + 16, sizeof order);
        if (memcmp(c->map, CACHE_MAGIC, 16) || order != CACHE_BYTE_ORDER) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: not a freeair cache data file (or other byte order)", dpath);
            goto fail;
        }
        for (int i = 0; i < c->n; i++) {
            const centry *e = &c->e[i];
            size_t bytes, end;
            if (!e->ok) continue;
            if (!fa_size_mul4((size_t)e->width, (size_t)e->height, 2, 1, &bytes) ||
                !fa_size_add((size_t)e->offset, bytes, &end) || end > c->map_size) {
                st = fa_error_set(err, FA_ERR_FORMAT, "%s: entry %s lies outside the data file", ipath, e->path);
                goto fail;
            }
        }
    }
    csv_free(&t);
    *out = c;
    return FA_OK;
fail:
    csv_free(&t);
    cache_close(c);
    return st;
}

static const centry *find_entry(const cache *c, const char *path) {
    centry key = {.path = (char *)path};
    return bsearch(&key, c->e, (size_t)c->n, sizeof *c->e, cmp_centry);
}

fa_status cache_lookup(const cache *c, const char *path, int *width, int *height, const uint16_t **pixels,
                       fa_error *err) {
    const centry *e = find_entry(c, path);
    if (!e) return fa_error_set(err, FA_ERR_NOT_FOUND, "%s: not in the cache", path);
    if (!e->ok) return fa_error_set(err, FA_ERR_FORMAT, "%s: %s", path, e->reason[0] ? e->reason : "failed to decode");
    if (width) *width = e->width;
    if (height) *height = e->height;
    if (pixels) *pixels = (const uint16_t *)((const char *)c->map + e->offset);
    return FA_OK;
}

int cache_count(const cache *c) { return c->n; }

const char *cache_entry(const cache *c, int i, int *width, int *height, const uint16_t **pixels) {
    if (i < 0 || i >= c->n) return NULL;
    const centry *e = &c->e[i];
    if (width) *width = e->ok ? e->width : 0;
    if (height) *height = e->ok ? e->height : 0;
    if (pixels) *pixels = e->ok ? (const uint16_t *)((const char *)c->map + e->offset) : NULL;
    return e->path;
}

int cache_short_side(const cache *c) { return c->short_side; }

/* ---- build ------------------------------------------------------------------ */

/* Work item of a build: the new entry and, when decoded now, its pixels. */
typedef struct job {
    centry e;
    const centry *old; /* reused entry of the previous cache, or NULL */
    char resolved[PATH_MAX];
    uint16_t *pixels;  /* decoded now (owned) */
    int decode;        /* needs decoding */
} job;

static int fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

static void decode_job(job *j, int short_side, resize_filter filter) {
    fa_image im = {0}, small = {0};
    fa_error e = {0};
    char warn[256] = "";
    fa_status st = image_load(j->resolved, &im, warn, sizeof warn, &e);
    if (st == FA_OK) {
        int ow, oh;
        resize_short_side_dims(im.width, im.height, short_side, &ow, &oh);
        st = resize_image(&im, &small, ow, oh, filter, &e);
    }
    image_free(&im);
    if (st != FA_OK) {
        j->e.ok = 0;
        /* The row names the file; keep the reason without the path prefix. */
        const char *msg = e.msg[0] ? e.msg : "decode failed";
        size_t n = strlen(j->resolved);
        if (!strncmp(msg, j->resolved, n) && msg[n] == ':' && msg[n + 1] == ' ') msg += n + 2;
        j->e.reason = strdup(msg);
        return;
    }
    j->e.ok = 1;
    j->e.width = small.width;
    j->e.height = small.height;
    j->pixels = small.pixels; /* ownership moves to the job */
    j->e.reason = strdup("");
}

static int cmp_job(const void *a, const void *b) { return strcmp(((const job *)a)->e.path, ((const job *)b)->e.path); }

/* Largest generation among pixels.<gen>.bin files in dir. */
static long max_generation(const char *dir) {
    long best = 0;
    DIR *d = opendir(dir);
    if (!d) return 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        long g;
        char tail[8];
        if (sscanf(de->d_name, "pixels.%ld.%7s", &g, tail) == 2 && !strcmp(tail, "bin") && g > best) best = g;
    }
    closedir(d);
    return best;
}

static void remove_stale_data(const char *dir, const char *keep) {
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        long g;
        char tail[8];
        if (sscanf(de->d_name, "pixels.%ld.%7s", &g, tail) == 2 && !strcmp(tail, "bin") && strcmp(de->d_name, keep)) {
            char p[PATH_MAX];
            if (snprintf(p, sizeof p, "%s/%s", dir, de->d_name) < (int)sizeof p) unlink(p);
        }
    }
    closedir(d);
}

static int write_zeros(FILE *f, size_t n) {
    static const char zeros[CACHE_ALIGN];
    while (n > 0) {
        size_t k = n < sizeof zeros ? n : sizeof zeros;
        if (fwrite(zeros, 1, k, f) != k) return 0;
        n -= k;
    }
    return 1;
}

static fa_status write_index(const char *dir, job *jobs, int n, const char *data_file, fa_error *err) {
    char tmp[PATH_MAX], final[PATH_MAX];
    snprintf(tmp, sizeof tmp, "%s/index.csv.tmp", dir);
    snprintf(final, sizeof final, "%s/index.csv", dir);
    FILE *f = fopen(tmp, "wb");
    if (!f) return fa_error_set(err, FA_ERR_IO, "%s: %s", tmp, strerror(errno));
    csv_write_row(f, IX_N, index_columns);
    for (int i = 0; i < n; i++) {
        const centry *e = &jobs[i].e;
        char size[24], mtime[24], hash[24], ss[16], off[24], w[16], h[16];
        snprintf(size, sizeof size, "%" PRId64, e->size);
        snprintf(mtime, sizeof mtime, "%" PRId64, e->mtime_ns);
        snprintf(hash, sizeof hash, "%016" PRIx64, e->hash);
        snprintf(ss, sizeof ss, "%d", e->short_side);
        snprintf(off, sizeof off, "%" PRIu64, e->ok ? e->offset : 0);
        snprintf(w, sizeof w, "%d", e->ok ? e->width : 0);
        snprintf(h, sizeof h, "%d", e->ok ? e->height : 0);
        const char *row[IX_N] = {e->path, size, mtime, hash, ss, resize_filter_name(e->filter), e->ok ? "ok" : "error",
                                 e->reason ? e->reason : "", e->ok ? data_file : "", off, w, h};
        csv_write_row(f, IX_N, row);
    }
    int bad = fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, final) != 0) {
        fa_status st = fa_error_set(err, FA_ERR_IO, "%s: %s", final, strerror(errno));
        unlink(tmp);
        return st;
    }
    if (fsync_dir(dir) != 0) return fa_error_set(err, FA_ERR_IO, "%s: fsync: %s", dir, strerror(errno));
    return FA_OK;
}

fa_status cache_build(const char *manifest_path, const char *dir, const cache_opts *opts, cache_build_stats *stats,
                      fa_error *err) {
    cache_opts o = {0};
    if (opts) o = *opts;
    if (!o.short_side) o.short_side = 320;
    if (o.short_side < 8 || o.short_side > 8192)
        return fa_error_set(err, FA_ERR_ARG, "--short-side %d: must be 8..8192", o.short_side);
    cache_build_stats s = {0};
    if (stats) *stats = s;
    fa_status st = FA_OK;
    csv_table m = {0};
    cache *old = NULL;
    job *jobs = NULL;
    int n = 0, lock_fd = -1;
    FILE *df = NULL;
    char dpath[PATH_MAX] = "", data_name[64] = "";
    fa_jsonl log = {0};

    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return fa_error_set(err, FA_ERR_IO, "%s: %s", dir, strerror(errno));
    char lpath[PATH_MAX];
    if (snprintf(lpath, sizeof lpath, "%s/lock", dir) >= (int)sizeof lpath)
        return fa_error_set(err, FA_ERR_ARG, "%s: path too long", dir);
    lock_fd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (lock_fd < 0) return fa_error_set(err, FA_ERR_IO, "%s: %s", lpath, strerror(errno));
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        close(lock_fd);
        return fa_error_set(err, FA_ERR_IO, "%s: another cache build is running in this directory", dir);
    }

    st = csv_read_file(manifest_path, &m, err);
    if (st != FA_OK) goto out;
    int pc = csv_column(&m, "path"), sc = csv_column(&m, "status");
    if (pc < 0 || sc < 0) {
        st = fa_error_set(err, FA_ERR_FORMAT, "%s: needs 'path' and 'status' columns (a freeair manifest)", manifest_path);
        goto out;
    }
    jobs = fa_calloc_array((size_t)m.n_rows + 1, sizeof *jobs);
    if (!jobs) {
        st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", manifest_path);
        goto out;
    }
    uint64_t hash = cache_options_hash(o.short_side, o.filter);
    for (int r = 0; r < m.n_rows; r++) {
        if (strcmp(m.rows[r][sc], MANIFEST_STATUS_OK) || !m.rows[r][pc][0]) continue;
        job *j = &jobs[n];
        j->e.path = strdup(m.rows[r][pc]);
        if (!j->e.path) {
            st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", manifest_path);
            goto out;
        }
        n++;
    }
    qsort(jobs, (size_t)n, sizeof *jobs, cmp_job);
    {
        int k = 0;
        for (int i = 0; i < n; i++) {
            if (k > 0 && !strcmp(jobs[k - 1].e.path, jobs[i].e.path)) {
                free(jobs[i].e.path);
                continue;
            }
            jobs[k++] = jobs[i];
        }
        n = k;
    }
    s.n_images = n;

    /* The previous cache: unusable ones are rebuilt from scratch. */
    {
        fa_error oerr = {0};
        if (cache_open(dir, &old, &oerr) != FA_OK) old = NULL;
    }
    int n_decode = 0;
    for (int i = 0; i < n; i++) {
        job *j = &jobs[i];
        j->e.hash = hash;
        j->e.short_side = o.short_side;
        j->e.filter = o.filter;
        manifest_resolve_path(j->e.path, manifest_path, j->resolved, sizeof j->resolved);
        struct stat sb;
        if (stat(j->resolved, &sb) != 0) {
            j->e.size = -1;
            j->e.mtime_ns = 0;
            char r[PATH_MAX + 128];
            snprintf(r, sizeof r, "%s: %s", j->resolved, strerror(errno));
            j->e.reason = strdup(r);
        } else {
            j->e.size = (int64_t)sb.st_size;
            j->e.mtime_ns = (int64_t)sb.st_mtim.tv_sec * 1000000000 + sb.st_mtim.tv_nsec;
        }
        const centry *oe = old ? find_entry(old, j->e.path) : NULL;
        if (oe && oe->size == j->e.size && oe->mtime_ns == j->e.mtime_ns && oe->hash == hash) {
            j->old = oe;
            j->e.ok = oe->ok;
            j->e.width = oe->width;
            j->e.height = oe->height;
            free(j->e.reason);
            j->e.reason = strdup(oe->reason);
            s.n_reused++;
        } else if (j->e.size >= 0) {
            j->decode = 1;
            n_decode++;
        } else {
            j->e.ok = 0; /* missing file, reason set above */
        }
        if (!j->e.reason && !j->decode) j->e.reason = strdup("");
    }
    if (old)
        for (int i = 0; i < old->n; i++) {
            job key = {.e = {.path = old->e[i].path}};
            if (!bsearch(&key, jobs, (size_t)n, sizeof *jobs, cmp_job)) s.n_dropped++;
        }
    fa_jsonl_open(&log, o.log_path);

    if (old && n_decode == 0 && s.n_dropped == 0 && s.n_reused == n) {
        /* Nothing changed: the committed cache stays as it is. */
        for (int i = 0; i < n; i++)
            if (!jobs[i].e.ok) {
                if (!s.n_failed)
                    snprintf(s.first_failure, sizeof s.first_failure, "%s: %s", jobs[i].e.path, jobs[i].e.reason);
                s.n_failed++;
            }
        goto summary;
    }

    /* New generation of the data file. */
    {
        long gen = max_generation(dir) + 1;
        snprintf(data_name, sizeof data_name, "pixels.%ld.bin", gen);
        snprintf(dpath, sizeof dpath, "%s/%s", dir, data_name);
    }
    df = fopen(dpath, "wb");
    if (!df) {
        st = fa_error_set(err, FA_ERR_IO, "%s: %s", dpath, strerror(errno));
        goto out;
    }
    {
        unsigned char hdr[CACHE_HEADER_BYTES] = {0};
        uint32_t order = CACHE_BYTE_ORDER;
        memcpy(hdr, CACHE_MAGIC, 16);
        memcpy(hdr + 16, &order, sizeof order);
        if (fwrite(hdr, 1, sizeof hdr, df) != sizeof hdr) goto write_error;
    }
    uint64_t offset = CACHE_HEADER_BYTES;
    fa_progress prog;
    fa_progress_begin(&prog, "cache", n_decode);
    prog.quiet = o.quiet;
    int nt = o.threads > 0 ? o.threads : omp_get_max_threads();
    /* Decode a chunk in parallel, then append it in path order, so the data
     * file is deterministic and memory holds one chunk of small images. */
    int chunk = 8 * nt;
    for (int start = 0; start < n;) {
        int end = start, tasks = 0;
        while (end < n && tasks < chunk) tasks += jobs[end++].decode;
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
        for (int i = start; i < end; i++) {
            if (!jobs[i].decode) continue;
            decode_job(&jobs[i], o.short_side, o.filter);
#pragma omp critical(cache_progress)
            fa_progress_add(&prog, 1);
        }
        for (int i = start; i < end; i++) {
            job *j = &jobs[i];
            if (!j->e.reason) {
                st = fa_error_set(err, FA_ERR_NOMEM, "cache: out of memory");
                goto out;
            }
            if (j->decode) {
                s.n_decoded++;
                fa_jsonl_begin(&log, "cache_decode");
                fa_jsonl_str(&log, "path", j->e.path);
                fa_jsonl_str(&log, "status", j->e.ok ? "ok" : "error");
                fa_jsonl_int(&log, "width", j->e.ok ? j->e.width : 0);
                fa_jsonl_int(&log, "height", j->e.ok ? j->e.height : 0);
                fa_jsonl_str(&log, "reason", j->e.reason);
                fa_jsonl_end(&log);
            }
            if (!j->e.ok) {
                if (!s.n_failed) snprintf(s.first_failure, sizeof s.first_failure, "%s: %s", j->e.path, j->e.reason);
                s.n_failed++;
                continue;
            }
            const uint16_t *px = j->pixels;
            if (!px) px = (const uint16_t *)((const char *)old->map + j->old->offset);
            size_t count = (size_t)j->e.width * (size_t)j->e.height;
            j->e.offset = offset;
            if (fwrite(px, sizeof *px, count, df) != count) goto write_error;
            offset += count * sizeof *px;
            size_t pad = (size_t)((CACHE_ALIGN - offset % CACHE_ALIGN) % CACHE_ALIGN);
            if (!write_zeros(df, pad)) goto write_error;
            offset += pad;
            free(j->pixels);
            j->pixels = NULL;
        }
        start = end;
    }
    fa_progress_end(&prog);
    if (fflush(df) != 0 || fsync(fileno(df)) != 0) goto write_error;
    if (fclose(df) != 0) {
        df = NULL;
        goto write_error;
    }
    df = NULL;
    st = write_index(dir, jobs, n, data_name, err);
    if (st != FA_OK) goto out;
    s.rewritten = 1;
    /* Committed: old generations are garbage now (readers that mapped one keep
     * their mapping after the unlink). */
    remove_stale_data(dir, data_name);
    dpath[0] = '\0';

summary:
    fa_jsonl_begin(&log, "cache_done");
    fa_jsonl_int(&log, "images", s.n_images);
    fa_jsonl_int(&log, "decoded", s.n_decoded);
    fa_jsonl_int(&log, "reused", s.n_reused);
    fa_jsonl_int(&log, "failed", s.n_failed);
    fa_jsonl_int(&log, "dropped", s.n_dropped);
    fa_jsonl_int(&log, "rewritten", s.rewritten);
    fa_jsonl_end(&log);
    goto out;

write_error:
    st = fa_error_set(err, FA_ERR_IO, "%s: write failed: %s", dpath, strerror(errno));
out:
    if (df) fclose(df);
    if (st != FA_OK && dpath[0]) unlink(dpath); /* never committed */
    fa_jsonl_close(&log);
    for (int i = 0; jobs && i < n; i++) {
        free(jobs[i].pixels);
        centry_free(&jobs[i].e);
    }
    free(jobs);
    cache_close(old);
    csv_free(&m);
    if (lock_fd >= 0) close(lock_fd);
    if (stats) *stats = s;
    return st;
}
