/* demo_stage.c - stage stamps (so that `freeair demo` resumes where it
 * stopped) and the few file utilities the demo needs (see demo.h). */
#include "cli/demo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

fa_status demo_join(char *dst, size_t cap, const char *a, const char *b, fa_error *err) {
    int n = snprintf(dst, cap, "%s/%s", a, b);
    if (n < 0 || (size_t)n >= cap) return fa_error_set(err, FA_ERR_ARG, "%s/%s: path too long", a, b);
    return FA_OK;
}

fa_status demo_mkdirs(const char *dir, fa_error *err) {
    char buf[DEMO_PATH_MAX];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof buf) return fa_error_set(err, FA_ERR_ARG, "%s: bad directory name", dir);
    memcpy(buf, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0') continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return fa_error_set(err, FA_ERR_IO, "%s: %s", buf, strerror(errno));
        buf[i] = c;
    }
    if (!demo_is_dir(dir)) return fa_error_set(err, FA_ERR_IO, "%s: not a directory", dir);
    return FA_OK;
}

int demo_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0;
}

int demo_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

fa_status demo_out_open(demo_out *o, const char *path, fa_error *err) {
    o->f = NULL;
    o->path = path;
    int n = snprintf(o->tmp, sizeof o->tmp, "%s.tmp%ld", path, (long)getpid());
    if (n < 0 || (size_t)n >= sizeof o->tmp) return fa_error_set(err, FA_ERR_ARG, "%s: path too long", path);
    o->f = fopen(o->tmp, "wb");
    if (!o->f) return fa_error_set(err, FA_ERR_IO, "%s: %s", o->tmp, strerror(errno));
    return FA_OK;
}

fa_status demo_out_close(demo_out *o, fa_status st, fa_error *err) {
    if (!o->f) return st;
    errno = 0;
    int bad = ferror(o->f) != 0;
    bad |= fflush(o->f) != 0;
    bad |= fsync(fileno(o->f)) != 0;
    bad |= fclose(o->f) != 0;
    o->f = NULL;
    if (st == FA_OK && (bad || rename(o->tmp, o->path) != 0))
        st = fa_error_set(err, FA_ERR_IO, "%s: %s", o->path, errno ? strerror(errno) : "write error");
    if (st != FA_OK) remove(o->tmp);
    return st;
}

static fa_status write_atomic(const char *path, const char *data, size_t len, fa_error *err) {
    demo_out o;
    fa_status st = demo_out_open(&o, path, err);
    if (st != FA_OK) return st;
    if (len && fwrite(data, 1, len, o.f) != len) st = fa_error_set(err, FA_ERR_IO, "%s: write error", path);
    return demo_out_close(&o, st, err);
}

fa_status demo_write_text(const char *path, const char *text, fa_error *err) {
    return write_atomic(path, text, strlen(text), err);
}

/* Read up to `limit` bytes of a file; larger files are an error. */
static fa_status read_all(const char *path, size_t limit, char **out, size_t *len, fa_error *err) {
    *out = NULL;
    *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) return fa_error_set(err, errno == ENOENT ? FA_ERR_NOT_FOUND : FA_ERR_IO, "%s: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    fa_status st = FA_OK;
    while (buf) {
        if (n == cap) {
            if (cap >= limit) {
                st = fa_error_set(err, FA_ERR_FORMAT, "%s: larger than %zu bytes", path, limit);
                break;
            }
            size_t ncap = cap * 2 > limit ? limit : cap * 2;
            char *nb = realloc(buf, ncap + 1);
            if (!nb) break;
            buf = nb;
            cap = ncap;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) st = fa_error_set(err, FA_ERR_IO, "%s: read error", path);
            break;
        }
    }
    fclose(f);
    if (!buf) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
    if (st != FA_OK) {
        free(buf);
        return st;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return FA_OK;
}

fa_status demo_read_text(const char *path, char **out, fa_error *err) {
    size_t len;
    return read_all(path, (size_t)1 << 20, out, &len, err);
}

fa_status demo_copy_file(const char *src, const char *dst, fa_error *err) {
    char *buf;
    size_t len;
    /* manifests and configs only: a generous cap keeps a wrong path from
     * reading something huge into memory */
    fa_status st = read_all(src, (size_t)256 << 20, &buf, &len, err);
    if (st != FA_OK) return st;
    st = write_atomic(dst, buf, len, err);
    free(buf);
    return st;
}

static int stamp_path(const demo_ctx *ctx, const char *name, char *dst, size_t cap) {
    int n = snprintf(dst, cap, "%s/.demo/%s.stamp", ctx->out, name);
    return n >= 0 && (size_t)n < cap;
}

/* 1 when a is strictly newer than b. */
static int newer(const struct stat *a, const struct stat *b) {
    if (a->st_mtim.tv_sec != b->st_mtim.tv_sec) return a->st_mtim.tv_sec > b->st_mtim.tv_sec;
    return a->st_mtim.tv_nsec > b->st_mtim.tv_nsec;
}

int demo_stage_fresh(const demo_ctx *ctx, const char *name, const char *params, const char *const *outputs,
                     const char *const *deps) {
    if (ctx->force) return 0;
    char path[DEMO_PATH_MAX];
    struct stat own, dep;
    if (!stamp_path(ctx, name, path, sizeof path) || stat(path, &own) != 0) return 0;
    char *text = NULL;
    fa_error err;
    if (demo_read_text(path, &text, &err) != FA_OK) return 0;
    int same = strcmp(text, params) == 0;
    free(text);
    if (!same) return 0;
    for (int i = 0; outputs && outputs[i]; i++) {
        char o[DEMO_PATH_MAX];
        if (demo_join(o, sizeof o, ctx->out, outputs[i], &err) != FA_OK || !demo_exists(o)) return 0;
    }
    for (int i = 0; deps && deps[i]; i++) {
        char d[DEMO_PATH_MAX];
        if (!stamp_path(ctx, deps[i], d, sizeof d) || stat(d, &dep) != 0) return 0;
        if (newer(&dep, &own)) return 0;
    }
    return 1;
}

void demo_stage_forget(const demo_ctx *ctx, const char *name) {
    char path[DEMO_PATH_MAX];
    if (stamp_path(ctx, name, path, sizeof path)) remove(path);
}

fa_status demo_stage_done(const demo_ctx *ctx, const char *name, const char *params, fa_error *err) {
    char dir[DEMO_PATH_MAX], path[DEMO_PATH_MAX];
    fa_status st = demo_join(dir, sizeof dir, ctx->out, ".demo", err);
    if (st == FA_OK) st = demo_mkdirs(dir, err);
    if (st != FA_OK) return st;
    if (!stamp_path(ctx, name, path, sizeof path)) return fa_error_set(err, FA_ERR_ARG, "%s: path too long", dir);
    return demo_write_text(path, params, err);
}

int demo_stage_newer_than(const demo_ctx *ctx, const char *name, const char *path) {
    char stamp[DEMO_PATH_MAX];
    struct stat a, b;
    if (!stamp_path(ctx, name, stamp, sizeof stamp) || stat(stamp, &a) != 0) return 1;
    if (stat(path, &b) != 0) return 1;
    return newer(&a, &b);
}
