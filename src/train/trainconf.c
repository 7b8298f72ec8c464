/* trainconf.c - key table, parser and canonical formatter of the training
 * configuration (see trainconf.h for the syntax). One table drives the file
 * parser, the command-line flags, --help and the checkpoint metadata, so a key
 * cannot exist in one and be missing from another. */
#include "train/trainconf.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

typedef enum key_kind { K_INT, K_REAL, K_BOOL, K_STR, K_ENUM, K_MILESTONES, K_U64, K_POSW, K_OPPOINT } key_kind;

typedef struct key_def {
    const char *name;
    key_kind kind;
    size_t off;
    size_t size;         /* K_STR: buffer size */
    double lo, hi;       /* K_INT/K_REAL: inclusive range */
    const char *choices; /* K_ENUM: "a|b|c", index stored as int */
    const char *def;
    int resume_mutable;
    const char *help;
} key_def;

#define OFF(f) offsetof(train_config, f)
#define STR(f) K_STR, OFF(f), sizeof(((train_config *)0)->f), 0, 0, NULL

static const key_def keys[] = {
    {"arch", STR(arch), "resnet50", 0, "architecture (resnet18, resnet50, resnet101, resnext50_32x4d, resnext101_32x8d, densenet121, densenet161, inception_v3)"},
    {"image_size", K_INT, OFF(image_size), 0, 0, 4096, NULL, "0", 0, "square input size in pixels; 0 = the architecture's default (224, inception_v3 299)"},
    {"pretrained", STR(pretrained), "", 0, "ImageNet safetensors to start from (its 1000-class head is dropped and re-initialised); empty = torchvision's random initialisation"},
    {"epochs", K_INT, OFF(epochs), 0, 1, 100000, NULL, "100", 1, "number of epochs"},
    {"lr", K_REAL, OFF(lr), 0, 0, 1e6, NULL, "0.001", 0, "base learning rate"},
    {"momentum", K_REAL, OFF(momentum), 0, 0, 1, NULL, "0.9", 0, "SGD momentum"},
    {"weight_decay", K_REAL, OFF(weight_decay), 0, 0, 1, NULL, "0", 0, "SGD weight decay (L2, PyTorch semantics)"},
    {"nesterov", K_BOOL, OFF(nesterov), 0, 0, 1, NULL, "false", 0, "Nesterov momentum"},
    {"schedule", K_ENUM, OFF(schedule), 0, 0, 0, "constant|step|multistep|cosine", "step", 0, "learning-rate schedule, applied per epoch after warm-up"},
    {"step_size", K_INT, OFF(step_size), 0, 1, 100000, NULL, "25", 0, "schedule=step: multiply lr by gamma every step_size epochs"},
    {"gamma", K_REAL, OFF(gamma), 0, 0, 1, NULL, "0.1", 0, "schedule=step/multistep: lr factor"},
    {"milestones", K_MILESTONES, OFF(milestones), 0, 1, 100000, NULL, "", 0, "schedule=multistep: comma-separated increasing epochs at which lr is multiplied by gamma"},
    {"warmup_epochs", K_INT, OFF(warmup_epochs), 0, 0, 100000, NULL, "0", 0, "linear warm-up over this many epochs (per step), from warmup_factor*lr to lr"},
    {"warmup_factor", K_REAL, OFF(warmup_factor), 0, 0, 1, NULL, "0.1", 0, "lr multiplier at the first warm-up step"},
    {"min_lr", K_REAL, OFF(min_lr), 0, 0, 1e6, NULL, "0", 0, "schedule=cosine: final learning rate (eta_min)"},
    {"batch_size", K_INT, OFF(batch_size), 0, 1, 1 << 20, NULL, "256", 0, "images per optimiser step"},
    {"micro_batch", K_INT, OFF(micro_batch), 0, 0, 1 << 20, NULL, "0", 0, "images per forward/backward pass; gradients of batch_size/micro_batch passes are accumulated (BatchNorm statistics are per micro-batch); 0 = batch_size"},
    {"val_batch", K_INT, OFF(val_batch), 0, 0, 1 << 20, NULL, "0", 1, "images per validation pass; 0 = micro_batch"},
    {"drop_last", K_BOOL, OFF(drop_last), 0, 0, 1, NULL, "false", 0, "drop the last incomplete batch of each epoch"},
    {"hflip", K_REAL, OFF(hflip), 0, 0, 1, NULL, "0.5", 0, "probability of a horizontal flip"},
    {"vflip", K_REAL, OFF(vflip), 0, 0, 1, NULL, "0.5", 0, "probability of a vertical flip"},
    {"rotation", K_REAL, OFF(rotation), 0, 0, 180, NULL, "15", 0, "rotation uniform in [-rotation, rotation] degrees (bilinear, fill 0)"},
    {"scale", K_REAL, OFF(scale), 0, 0, 0.9, NULL, "0", 0, "zoom uniform in [1-scale, 1+scale]; 0 = off"},
    {"translate", K_REAL, OFF(translate), 0, 0, 0.5, NULL, "0", 0, "shift uniform in [-translate, translate] x width/height; 0 = off"},
    {"brightness", K_REAL, OFF(brightness), 0, 0, 1, NULL, "0", 0, "intensity factor uniform in [1-brightness, 1+brightness]; 0 = off"},
    {"contrast", K_REAL, OFF(contrast), 0, 0, 1, NULL, "0", 0, "contrast factor uniform in [1-contrast, 1+contrast] around the image mean; 0 = off"},
    {"pos_weight", K_POSW, OFF(pos_weight), 0, 0, 1e6, NULL, "1", 0, "BCE weight of positive examples; auto = n_negative/n_positive of the training split"},
    {"sampler", K_ENUM, OFF(sampler), 0, 0, 0, "shuffle|balanced", "shuffle", 0, "shuffle: each training image once per epoch; balanced: draw with replacement, both classes equally likely"},
    {"precision", K_ENUM, OFF(precision), 0, 0, 0, "fp32|bf16", "fp32", 0, "compute precision (bf16 keeps fp32 master weights)"},
    {"threads", K_INT, OFF(threads), 0, 0, 4096, NULL, "0", 1, "oneDNN/OpenMP threads; 0 = OMP_NUM_THREADS or all cores (bit-exact resume needs the same value)"},
    {"loader_threads", K_INT, OFF(loader_threads), 0, 1, 64, NULL, "1", 1, "augmentation worker threads preparing the next batches"},
    {"ram_cache_mb", K_INT, OFF(ram_cache_mb), 0, 0, 1 << 24, NULL, "2048", 1, "MiB of decoded source images kept in memory between epochs"},
    {"seed", K_U64, OFF(seed), 0, 0, 0, NULL, "1", 0, "seed of initialisation, shuffling, sampling and augmentation"},
    {"manifest", STR(manifest), "", 0, "manifest CSV with path, label and split columns (from `freeair split`); relative paths are resolved against its folder"},
    {"cache", STR(cache), "", 0, "preprocessing cache folder (from `freeair cache`); empty = decode every file with the image loader"},
    {"path_column", STR(path_column), "path", 0, "manifest column with the image path"},
    {"label_column", STR(label_column), "label", 0, "manifest column with the label (1/0, true/false, positive/negative, yes/no)"},
    {"split_column", STR(split_column), "split", 0, "manifest column with the split"},
    {"train_split", STR(train_split), "train", 0, "split value of training images"},
    {"val_split", STR(val_split), "val", 0, "split value of validation images"},
    {"out", STR(out), "", 1, "output folder: last/best checkpoints and train.jsonl"},
    {"keep_best_auc", K_BOOL, OFF(keep_best_auc), 0, 0, 1, NULL, "false", 0, "also keep best_auc.safetensors (maximum validation AUC)"},
    {"patience", K_INT, OFF(patience), 0, 0, 100000, NULL, "0", 1, "stop after this many epochs without a lower validation loss; 0 = off"},
    {"checkpoint_steps", K_INT, OFF(checkpoint_steps), 0, 0, 1 << 30, NULL, "0", 1, "also write last.safetensors every N optimiser steps inside an epoch; 0 = at epoch ends only"},
    {"operating_point", K_OPPOINT, OFF(operating_point), sizeof(((train_config *)0)->operating_point), 0, 0, NULL, "none", 0, "threshold locked on the validation set of each kept checkpoint: none, youden, sens:X (sensitivity >= X), spec:X (specificity >= X)"},
    {"max_steps", K_INT, OFF(max_steps), 0, 0, 1 << 30, NULL, "0", 1, "stop after this many optimiser steps in total (smoke tests); 0 = no limit"},
    {"sync_bn", K_BOOL, OFF(sync_bn), 0, 0, 1, NULL, "false", 0, "under mpirun: normalise with batch statistics all-reduced across ranks (every rank must get the same number of micro-batches per step; see docs/distributed.md)"},
};

#define N_KEYS ((int)(sizeof keys / sizeof keys[0]))

static const key_def *find_key(const char *name) {
    for (int i = 0; i < N_KEYS; i++)
        if (!strcmp(keys[i].name, name)) return &keys[i];
    return NULL;
}

int trainconf_is_key(const char *key) { return find_key(key) != NULL; }

int trainconf_key_index(const char *key) {
    const key_def *k = find_key(key);
    return k ? (int)(k - keys) : -1;
}
int trainconf_key_count(void) { return N_KEYS; }
const char *trainconf_key_name(int i) { return i >= 0 && i < N_KEYS ? keys[i].name : NULL; }
const char *trainconf_key_help(int i) { return i >= 0 && i < N_KEYS ? keys[i].help : NULL; }
const char *trainconf_key_default(int i) { return i >= 0 && i < N_KEYS ? keys[i].def : NULL; }

int trainconf_key_resume_mutable(const char *key) {
    const key_def *k = find_key(key);
    return k ? k->resume_mutable : 0;
}

/* Choice `i` of "a|b|c" into buf. */
static int enum_choice(const char *choices, int i, char *buf, size_t cap) {
    const char *p = choices;
    for (int n = 0; n < i; n++) {
        p = strchr(p, '|');
        if (!p) return 0;
        p++;
    }
    size_t len = strcspn(p, "|");
    if (len + 1 > cap) return 0;
    memcpy(buf, p, len);
    buf[len] = '\0';
    return 1;
}

static int enum_index(const char *choices, const char *v) {
    char buf[64];
    for (int i = 0; enum_choice(choices, i, buf, sizeof buf); i++)
        if (!strcmp(buf, v)) return i;
    return -1;
}

const char *trainconf_schedule_name(int s) {
    static const char *names[] = {"constant", "step", "multistep", "cosine"};
    return s >= 0 && s < 4 ? names[s] : "?";
}

const char *trainconf_precision_name(int p) { return p == TRAINCONF_BF16 ? "bf16" : "fp32"; }

static int parse_long(const char *v, long long *out) {
    if (!*v) return 0;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (errno || *end) return 0;
    *out = x;
    return 1;
}

static int parse_double(const char *v, double *out) {
    if (!*v) return 0;
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || *end || !isfinite(x)) return 0;
    *out = x;
    return 1;
}

static int parse_bool(const char *v, int *out) {
    static const char *t[] = {"1", "true", "yes", "on"}, *f[] = {"0", "false", "no", "off"};
    for (int i = 0; i < 4; i++) {
        if (!strcmp(v, t[i])) return *out = 1, 1;
        if (!strcmp(v, f[i])) return *out = 0, 1;
    }
    return 0;
}

/* "none", "youden", "sens:X", "spec:X" with 0 < X < 1. */
static int valid_operating_point(const char *v) {
    if (!strcmp(v, "none") || !strcmp(v, "youden")) return 1;
    if (strncmp(v, "sens:", 5) && strncmp(v, "spec:", 5)) return 0;
    double x;
    return parse_double(v + 5, &x) && x > 0 && x < 1;
}

fa_status trainconf_set(train_config *c, const char *key, const char *value, const char *where, fa_error *err) {
    const key_def *k = find_key(key);
    if (!k) return fa_error_set(err, FA_ERR_ARG, "%s: unknown key '%s' (see `freeair train --help`)", where, key);
    char *base = (char *)c + k->off;
    long long li;
    double d;
    int b;
    switch (k->kind) {
    case K_INT:
        if (!parse_long(value, &li))
            return fa_error_set(err, FA_ERR_ARG, "%s: key '%s': '%s' is not an integer", where, key, value);
        if ((double)li < k->lo || (double)li > k->hi)
            return fa_error_set(err, FA_ERR_ARG, "%s: key '%s': %lld is outside %.0f..%.0f", where, key, li, k->lo,
                                k->hi);
        *(int *)base = (int)li;
        return FA_OK;
    case K_U64: {
        char *end;
        errno = 0;
        if (!*value || *value == '-') goto bad_u64;
        unsigned long long u = strtoull(value, &end, 0);
        if (errno || *end) goto bad_u64;
        *(uint64_t *)base = (uint64_t)u;
        return FA_OK;
    bad_u64:
        return fa_error_set(err, FA_ERR_ARG, "%s: key '%s': '%s' is not a non-negative integer", where, key, value);
    }
    case K_REAL:
        if (!parse_double(value, &d))
            return fa_error_set(err, FA_ERR_ARG, "%s: key '%s': '%s' is not a finite number", where, key, value);
        if (d < k->lo || d > k->hi)
            return fa_error_set(err, FA_ERR_ARG, "%s: key '%s': %s is outside %g..%g", where, key, value, k->lo,
                                k->hi);
        *(double *)base = d;
        return FA_OK;
    case K_POSW:
        if (!strcmp(value, "auto")) {
            *(double *)base = -1;
            return FA_OK;
        }
        if (!parse_double(value, &d) || d <= 0 || d > k->hi)
            return fa_error_set(err, FA_ERR_ARG, "%s: key '%s': '%s' is neither 'auto' nor a number in (0, %g]",
                                where, key, value, k->hi);
        *(double *)base = d;
        return FA_OK;
    case K_BOOL:
        if (!parse_bool(value, &b))
            return fa_error_set(err, FA_ERR_ARG, "%s: key '%s': '%s' is not a boolean (true/false, 1/0)", where, key,
                                value);
        *(int *)base = b;
        return FA_OK;
    case K_STR:
        if (strlen(value) >= k->size)
            return fa_error_set(err, FA_ERR_ARG, "%s: key '%s': value longer than %zu characters", where, key,
                                k->size - 1);
        memcpy(base, value, strlen(value) + 1);
        return FA_OK;
    case K_OPPOINT:
        if (!valid_operating_point(value))
            return fa_error_set(err, FA_ERR_ARG,
                                "%s: key '%s': '%s' is not none, youden, sens:X or spec:X with 0 < X < 1", where, key,
                                value);
        if (strlen(value) >= k->size)
            return fa_error_set(err, FA_ERR_ARG, "%s: key '%s': value too long", where, key);
        memcpy(base, value, strlen(value) + 1);
        return FA_OK;
    case K_ENUM: {
        int i = enum_index(k->choices, value);
        if (i < 0) return fa_error_set(err, FA_ERR_ARG, "%s: key '%s': '%s' is not one of %s", where, key, value, k->choices);
        *(int *)base = i;
        return FA_OK;
    }
    case K_MILESTONES: {
        int n = 0, prev = 0;
        const char *p = value;
        while (*p) {
            while (*p == ' ' || *p == ',') p++;
            if (!*p) break;
            char *end;
            errno = 0;
            long x = strtol(p, &end, 10);
            if (end == p || errno || x < 1 || x > (long)k->hi)
                return fa_error_set(err, FA_ERR_ARG, "%s: key '%s': '%s' is not a list of positive epochs", where, key,
                                    value);
            if (x <= prev)
                return fa_error_set(err, FA_ERR_ARG, "%s: key '%s': milestones must increase ('%s')", where, key, value);
            if (n == TRAINCONF_MAX_MILESTONES)
                return fa_error_set(err, FA_ERR_ARG, "%s: key '%s': more than %d milestones", where, key,
                                    TRAINCONF_MAX_MILESTONES);
            c->milestones[n++] = (int)x;
            prev = (int)x;
            p = end;
            while (*p == ' ') p++;
            if (*p && *p != ',')
                return fa_error_set(err, FA_ERR_ARG, "%s: key '%s': '%s' is not a comma-separated list", where, key,
                                    value);
        }
        c->n_milestones = n;
        return FA_OK;
    }
    }
    return fa_error_set(err, FA_ERR_INTERNAL, "%s: key '%s': unhandled kind", where, key);
}

void trainconf_defaults(train_config *c) {
    memset(c, 0, sizeof *c);
    for (int i = 0; i < N_KEYS; i++) {
        fa_status st = trainconf_set(c, keys[i].name, keys[i].def, "defaults", NULL);
        (void)st;
    }
}

/* Shortest "%g" text that reads back to the same double. */
static void format_double(double d, char *buf, size_t cap) {
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, d);
        if (strtod(buf, NULL) == d) return;
    }
}

int trainconf_get(const train_config *c, const char *key, char *buf, size_t cap) {
    const key_def *k = find_key(key);
    if (!k || cap == 0) return 0;
    const char *base = (const char *)c + k->off;
    buf[0] = '\0';
    switch (k->kind) {
    case K_INT: snprintf(buf, cap, "%d", *(const int *)base); break;
    case K_U64: snprintf(buf, cap, "%" PRIu64, *(const uint64_t *)base); break;
    case K_REAL: format_double(*(const double *)base, buf, cap); break;
    case K_POSW:
        if (*(const double *)base <= 0) snprintf(buf, cap, "auto");
        else format_double(*(const double *)base, buf, cap);
        break;
    case K_BOOL: snprintf(buf, cap, "%s", *(const int *)base ? "true" : "false"); break;
    case K_STR:
    case K_OPPOINT: snprintf(buf, cap, "%s", base); break;
    case K_ENUM: enum_choice(k->choices, *(const int *)base, buf, cap); break;
    case K_MILESTONES: {
        size_t used = 0;
        for (int i = 0; i < c->n_milestones && used < cap; i++)
            used += (size_t)snprintf(buf + used, cap - used, "%s%d", i ? "," : "", c->milestones[i]);
        break;
    }
    }
    return 1;
}

/* A value needs quotes when it is empty-sensitive or would be cut by the
 * parser: a '#', a leading/trailing space or a quote. */
static int needs_quotes(const char *v) {
    size_t n = strlen(v);
    return strchr(v, '#') || strchr(v, '"') || strchr(v, '\\') || (n && (isspace((unsigned char)v[0]) ||
                                                                          isspace((unsigned char)v[n - 1])));
}

char *trainconf_format(const train_config *c) {
    size_t cap = 4096, used = 0;
    char *out = malloc(cap);
    if (!out) return NULL;
    out[0] = '\0';
    char val[TRAINCONF_PATH_MAX + 16];
    for (int i = 0; i < N_KEYS; i++) {
        trainconf_get(c, keys[i].name, val, sizeof val);
        /* worst case every character escaped, plus key, quotes and newline */
        size_t need = used + strlen(keys[i].name) + 2 * strlen(val) + 16;
        if (need > cap) {
            while (cap < need) cap *= 2;
            char *n = realloc(out, cap);
            if (!n) {
                free(out);
                return NULL;
            }
            out = n;
        }
        used += (size_t)sprintf(out + used, "%s = ", keys[i].name);
        if (needs_quotes(val)) {
            out[used++] = '"';
            for (const char *p = val; *p; p++) {
                if (*p == '"' || *p == '\\') out[used++] = '\\';
                out[used++] = *p;
            }
            out[used++] = '"';
        } else {
            memcpy(out + used, val, strlen(val));
            used += strlen(val);
        }
        out[used++] = '\n';
        out[used] = '\0';
    }
    return out;
}

/* Parse one line in place: sets *key and *value (both NULL for a blank or
 * comment line). Returns 0 and a reason on a syntax error. */
static int parse_line(char *line, char **key, char **value, const char **why) {
    *key = *value = NULL;
    char *p = line;
    while (isspace((unsigned char)*p)) p++;
    if (!*p || *p == '#') return 1;
    char *eq = strchr(p, '=');
    if (!eq) return *why = "expected 'key = value'", 0;
    char *kend = eq;
    while (kend > p && isspace((unsigned char)kend[-1])) kend--;
    *kend = '\0';
    if (!*p) return *why = "missing key before '='", 0;
    for (char *q = p; *q; q++)
        if (!(isalnum((unsigned char)*q) || *q == '_')) return *why = "key has characters other than [a-z0-9_]", 0;
    *key = p;
    char *v = eq + 1;
    while (isspace((unsigned char)*v)) v++;
    if (*v == '"') {
        char *w = v, *r = v + 1;
        for (;;) {
            if (!*r) return *why = "unterminated quoted value", 0;
            if (*r == '\\' && (r[1] == '"' || r[1] == '\\')) {
                *w++ = r[1];
                r += 2;
                continue;
            }
            if (*r == '"') break;
            *w++ = *r++;
        }
        *w = '\0';
        r++;
        while (isspace((unsigned char)*r)) r++;
        if (*r && *r != '#') return *why = "text after the closing quote", 0;
        *value = v;
        return 1;
    }
    char *hash = strchr(v, '#');
    if (hash) *hash = '\0';
    char *vend = v + strlen(v);
    while (vend > v && isspace((unsigned char)vend[-1])) vend--;
    *vend = '\0';
    *value = v;
    return 1;
}

fa_status trainconf_parse_text(train_config *c, const char *name, const char *text, int *given, fa_error *err) {
    int seen[N_KEYS];
    memset(seen, 0, sizeof seen);
    int lineno = 0;
    const char *p = text;
    while (*p) {
        lineno++;
        size_t len = strcspn(p, "\n");
        char *line = malloc(len + 1);
        if (!line) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", name);
        memcpy(line, p, len);
        line[len] = '\0';
        if (len && line[len - 1] == '\r') line[len - 1] = '\0';
        p += len;
        if (*p == '\n') p++;
        char where[TRAINCONF_PATH_MAX + 32];
        snprintf(where, sizeof where, "%s:%d", name, lineno);
        char *key, *value;
        const char *why = "";
        if (!parse_line(line, &key, &value, &why)) {
            free(line);
            return fa_error_set(err, FA_ERR_ARG, "%s: %s", where, why);
        }
        if (key) {
            const key_def *k = find_key(key);
            if (k && seen[k - keys]) {
                fa_error_set(err, FA_ERR_ARG, "%s: key '%s' set twice (first on line %d)", where, key, seen[k - keys]);
                free(line);
                return FA_ERR_ARG;
            }
            fa_status st = trainconf_set(c, key, value, where, err);
            if (k) seen[k - keys] = lineno;
            if (k && given) given[k - keys] = 1;
            if (st != FA_OK) {
                free(line);
                return st;
            }
        }
        free(line);
    }
    return FA_OK;
}

#define TRAINCONF_MAX_FILE (1 << 20)

fa_status trainconf_load_file(train_config *c, const char *path, int *given, fa_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    char *buf = malloc(TRAINCONF_MAX_FILE + 1);
    if (!buf) {
        fclose(f);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t n = fread(buf, 1, TRAINCONF_MAX_FILE + 1, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(buf);
        return fa_error_set(err, FA_ERR_IO, "%s: read error", path);
    }
    if (n > TRAINCONF_MAX_FILE) {
        free(buf);
        return fa_error_set(err, FA_ERR_FORMAT, "%s: larger than %d bytes; not a config file", path,
                            TRAINCONF_MAX_FILE);
    }
    buf[n] = '\0';
    /* A NUL inside means a binary file; name the line where it appears. */
    if (strlen(buf) != n) {
        int line = 1;
        for (size_t i = 0; i < strlen(buf); i++) line += buf[i] == '\n';
        free(buf);
        return fa_error_set(err, FA_ERR_FORMAT, "%s:%d: NUL byte; not a text config file", path, line);
    }
    fa_status st = trainconf_parse_text(c, path, buf, given, err);
    free(buf);
    return st;
}

fa_status trainconf_validate(const train_config *c, const char *where, fa_error *err) {
    if (!c->arch[0]) return fa_error_set(err, FA_ERR_ARG, "%s: key 'arch' is required", where);
    if (!c->manifest[0]) return fa_error_set(err, FA_ERR_ARG, "%s: key 'manifest' is required", where);
    if (!c->out[0]) return fa_error_set(err, FA_ERR_ARG, "%s: key 'out' is required", where);
    if (c->micro_batch > c->batch_size)
        return fa_error_set(err, FA_ERR_ARG, "%s: key 'micro_batch': %d is larger than batch_size %d", where,
                            c->micro_batch, c->batch_size);
    if (c->schedule == TRAINCONF_SCHED_MULTISTEP && c->n_milestones == 0)
        return fa_error_set(err, FA_ERR_ARG, "%s: key 'milestones': schedule=multistep needs at least one milestone",
                            where);
    if (c->warmup_epochs >= c->epochs && c->warmup_epochs > 0)
        return fa_error_set(err, FA_ERR_ARG, "%s: key 'warmup_epochs': %d is not below epochs %d", where,
                            c->warmup_epochs, c->epochs);
    if (c->schedule == TRAINCONF_SCHED_COSINE && c->min_lr > c->lr)
        return fa_error_set(err, FA_ERR_ARG, "%s: key 'min_lr': %g is above lr %g", where, c->min_lr, c->lr);
    if (!strcmp(c->train_split, c->val_split))
        return fa_error_set(err, FA_ERR_ARG, "%s: keys 'train_split' and 'val_split' are both '%s'", where,
                            c->train_split);
    return FA_OK;
}

void trainconf_print_help(FILE *f) {
    for (int i = 0; i < N_KEYS; i++) {
        fprintf(f, "  --%-17s %s", keys[i].name, keys[i].help);
        if (keys[i].kind == K_ENUM) fprintf(f, " [%s]", keys[i].choices);
        fprintf(f, " (default: %s)\n", keys[i].def[0] ? keys[i].def : "empty");
    }
}
