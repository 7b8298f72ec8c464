/* ckpt.c - checkpoint writing, reading and the predict-side loader (see
 * ckpt.h for the metadata keys). Numbers are stored with 17 significant
 * digits so that a resumed run compares "best so far" values exactly as the
 * uninterrupted run did. */
#include "train/ckpt.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/cli.h"
#include "models/model.h"
#include "train/augment.h"

#define CKPT_FORMAT "freeair-checkpoint"
#define CKPT_FORMAT_VERSION "1"
#define CKPT_MOMENTUM_PREFIX "optim.momentum."

model_options ckpt_model_options(const char *arch, int size, const char *transform_input) {
    model_options mo = model_default_options();
    mo.num_classes = 1;
    mo.image_size = size;
    if (!strcmp(arch, "inception_v3")) {
        mo.aux_logits = size >= 299;
        mo.transform_input = transform_input && !strcmp(transform_input, "1") ? 1 : -1;
    }
    return mo;
}

void ckpt_state_init(ckpt_state *s) {
    memset(s, 0, sizeof *s);
    s->best_val_loss = INFINITY;
    s->best_val_auc = NAN;
    s->train_loss = s->val_loss = s->val_auc = s->lr = NAN;
    s->threshold = NAN;
}

static fa_status meta_set(weights_writer *w, const char *key, const char *value, fa_error *err) {
    return weights_writer_set_metadata(w, key, value, err);
}

static fa_status meta_num(weights_writer *w, const char *key, double v, fa_error *err) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", v);
    return meta_set(w, key, buf, err);
}

static fa_status meta_int(weights_writer *w, const char *key, int64_t v, fa_error *err) {
    char buf[32];
    snprintf(buf, sizeof buf, "%" PRId64, v);
    return meta_set(w, key, buf, err);
}

/* JSON number or null. */
static void json_num(char *buf, size_t cap, double v) {
    if (isfinite(v)) snprintf(buf, cap, "%.17g", v);
    else snprintf(buf, cap, "null");
}

fa_status ckpt_save(const char *path, fa_graph *g, optim_sgd *opt, const train_config *c, const ckpt_state *s,
                    const char *kind, const char *preprocessing, const char *manifest_sha256, fa_error *err) {
    weights_writer *w = weights_writer_create();
    if (!w) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
    fa_status st = weights_writer_add_graph(w, g, err);
    int started = opt && optim_sgd_has_momentum(opt);
    for (int i = 0; st == FA_OK && started && i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (p->kind != GRAPH_PARAM_TRAINABLE) continue;
        const float *m = optim_sgd_momentum(opt, i);
        if (!m) continue;
        char name[GRAPH_NAME_MAX + 32];
        snprintf(name, sizeof name, CKPT_MOMENTUM_PREFIX "%s", p->name);
        st = weights_writer_add_f32(w, name, p->ndim, p->shape, m, err);
    }
    char *config = trainconf_format(c);
    if (!config && st == FA_OK) st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
    char buf[1024], a[40], b[40], d[40], e[40];
    if (st == FA_OK) st = meta_set(w, "format", CKPT_FORMAT, err);
    if (st == FA_OK) st = meta_set(w, "format_version", CKPT_FORMAT_VERSION, err);
    if (st == FA_OK) st = meta_set(w, "freeair_version", FREEAIR_VERSION, err);
    if (st == FA_OK) st = meta_set(w, "kind", kind, err);
    if (st == FA_OK) st = meta_set(w, "arch", c->arch, err);
    int size = c->image_size ? c->image_size : model_default_size(c->arch);
    if (st == FA_OK) st = meta_int(w, "image_size", size, err);
    if (st == FA_OK) st = meta_set(w, "preprocessing", preprocessing, err);
    if (st == FA_OK) st = meta_set(w, "config", config, err);
    if (st == FA_OK) st = meta_int(w, "epoch", s->epoch, err);
    if (st == FA_OK) st = meta_int(w, "epoch_step", s->epoch_step, err);
    if (st == FA_OK) st = meta_int(w, "global_step", s->global_step, err);
    if (st == FA_OK) st = meta_num(w, "epoch_loss_sum", s->epoch_loss_sum, err);
    if (st == FA_OK) st = meta_int(w, "epoch_loss_count", s->epoch_loss_count, err);
    if (st == FA_OK) st = meta_num(w, "best_val_loss", s->best_val_loss, err);
    if (st == FA_OK) st = meta_int(w, "best_epoch", s->best_epoch, err);
    if (st == FA_OK) st = meta_num(w, "best_val_auc", s->best_val_auc, err);
    if (st == FA_OK) st = meta_int(w, "best_auc_epoch", s->best_auc_epoch, err);
    if (st == FA_OK) st = meta_int(w, "bad_epochs", s->bad_epochs, err);
    if (st == FA_OK) st = meta_num(w, "train_loss", s->train_loss, err);
    if (st == FA_OK) st = meta_num(w, "val_loss", s->val_loss, err);
    if (st == FA_OK) st = meta_num(w, "val_auc", s->val_auc, err);
    if (st == FA_OK) st = meta_num(w, "lr", s->lr, err);
    if (st == FA_OK) {
        json_num(a, sizeof a, s->train_loss);
        json_num(b, sizeof b, s->val_loss);
        json_num(d, sizeof d, s->val_auc);
        json_num(e, sizeof e, s->lr);
        snprintf(buf, sizeof buf, "{\"epoch\":%d,\"train_loss\":%s,\"val_loss\":%s,\"val_auc\":%s,\"lr\":%s}",
                 s->epoch, a, b, d, e);
        st = meta_set(w, "metrics", buf, err);
    }
    if (st == FA_OK) {
        snprintf(buf, sizeof buf, "counter-based xoshiro256**: seed=%" PRIu64 " epoch=%d position=%d", c->seed,
                 s->epoch, s->epoch_step);
        st = meta_set(w, "rng", buf, err);
    }
    if (st == FA_OK) {
        snprintf(buf, sizeof buf, "%s epoch=%d step=%d",
                 c->sampler == TRAINCONF_SAMPLER_BALANCED ? "balanced" : "shuffle", s->epoch, s->epoch_step);
        st = meta_set(w, "sampler", buf, err);
    }
    if (st == FA_OK) {
        snprintf(buf, sizeof buf, "%s epoch=%d step=%d global_step=%" PRId64, trainconf_schedule_name(c->schedule),
                 s->epoch, s->epoch_step, s->global_step);
        st = meta_set(w, "schedule", buf, err);
    }
    if (st == FA_OK && manifest_sha256) st = meta_set(w, "manifest_sha256", manifest_sha256, err);
    if (st == FA_OK) st = meta_int(w, "momentum_started", started, err);
    if (st == FA_OK && s->transform_input) st = meta_set(w, "transform_input", "1", err);
    if (st == FA_OK && isfinite(s->threshold)) {
        st = meta_num(w, "threshold", s->threshold, err);
        if (st == FA_OK) st = meta_set(w, "threshold_rule", s->threshold_rule, err);
    }
    free(config);
    if (st == FA_OK) st = weights_writer_save(w, path, err);
    weights_writer_free(w);
    return st;
}

fa_status ckpt_open(weights_file **out, const char *path, char *resolved, size_t cap, fa_error *err) {
    *out = NULL;
    struct stat sb;
    if (stat(path, &sb) != 0) return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    if (S_ISDIR(sb.st_mode)) snprintf(resolved, cap, "%s/last.safetensors", path);
    else snprintf(resolved, cap, "%s", path);
    weights_file *f;
    fa_status st = weights_open(&f, resolved, err);
    if (st != FA_OK) return st;
    const char *fmt = weights_metadata(f, "format");
    if (!fmt || strcmp(fmt, CKPT_FORMAT)) {
        weights_close(f);
        return fa_error_set(err, FA_ERR_FORMAT, "%s: not a freeair checkpoint (no format=%s metadata)", resolved,
                            CKPT_FORMAT);
    }
    const char *ver = weights_metadata(f, "format_version");
    if (!ver || strcmp(ver, CKPT_FORMAT_VERSION)) {
        weights_close(f);
        return fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: checkpoint format version %s (this build reads %s)", resolved,
                            ver ? ver : "missing", CKPT_FORMAT_VERSION);
    }
    *out = f;
    return FA_OK;
}

static fa_status get_str(const weights_file *f, const char *key, const char **out, fa_error *err) {
    *out = weights_metadata(f, key);
    if (!*out)
        return fa_error_set(err, FA_ERR_FORMAT, "%s: checkpoint metadata lacks '%s'", weights_path(f), key);
    return FA_OK;
}

static fa_status get_num(const weights_file *f, const char *key, double *out, fa_error *err) {
    const char *v;
    fa_status st = get_str(f, key, &v, err);
    if (st != FA_OK) return st;
    char *end;
    *out = strtod(v, &end);
    if (end == v || *end)
        return fa_error_set(err, FA_ERR_FORMAT, "%s: checkpoint metadata '%s' is not a number ('%s')",
                            weights_path(f), key, v);
    return FA_OK;
}

static fa_status get_int(const weights_file *f, const char *key, int64_t lo, int64_t hi, int64_t *out,
                         fa_error *err) {
    const char *v;
    fa_status st = get_str(f, key, &v, err);
    if (st != FA_OK) return st;
    char *end;
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (end == v || *end || errno || x < lo || x > hi)
        return fa_error_set(err, FA_ERR_FORMAT, "%s: checkpoint metadata '%s' is not an integer in %" PRId64
                            "..%" PRId64 " ('%s')", weights_path(f), key, lo, hi, v);
    *out = x;
    return FA_OK;
}

fa_status ckpt_read_state(const weights_file *f, train_config *c, ckpt_state *s, fa_error *err) {
    ckpt_state_init(s);
    const char *config;
    fa_status st = get_str(f, "config", &config, err);
    if (st != FA_OK) return st;
    trainconf_defaults(c);
    char name[TRAINCONF_PATH_MAX + 32];
    snprintf(name, sizeof name, "%s (stored config)", weights_path(f));
    st = trainconf_parse_text(c, name, config, NULL, err);
    if (st != FA_OK) return st;
    int64_t v;
    double d;
    if ((st = get_int(f, "epoch", 0, 100000000, &v, err)) != FA_OK) return st;
    s->epoch = (int)v;
    if ((st = get_int(f, "epoch_step", 0, INT32_MAX, &v, err)) != FA_OK) return st;
    s->epoch_step = (int)v;
    if ((st = get_int(f, "global_step", 0, INT64_MAX, &s->global_step, err)) != FA_OK) return st;
    if ((st = get_num(f, "epoch_loss_sum", &s->epoch_loss_sum, err)) != FA_OK) return st;
    if ((st = get_int(f, "epoch_loss_count", 0, INT64_MAX, &s->epoch_loss_count, err)) != FA_OK) return st;
    if ((st = get_num(f, "best_val_loss", &s->best_val_loss, err)) != FA_OK) return st;
    if ((st = get_int(f, "best_epoch", 0, 100000000, &v, err)) != FA_OK) return st;
    s->best_epoch = (int)v;
    if ((st = get_num(f, "best_val_auc", &s->best_val_auc, err)) != FA_OK) return st;
    if ((st = get_int(f, "best_auc_epoch", 0, 100000000, &v, err)) != FA_OK) return st;
    s->best_auc_epoch = (int)v;
    if ((st = get_int(f, "bad_epochs", 0, 100000000, &v, err)) != FA_OK) return st;
    s->bad_epochs = (int)v;
    if ((st = get_num(f, "train_loss", &s->train_loss, err)) != FA_OK) return st;
    if ((st = get_num(f, "val_loss", &s->val_loss, err)) != FA_OK) return st;
    if ((st = get_num(f, "val_auc", &s->val_auc, err)) != FA_OK) return st;
    if ((st = get_num(f, "lr", &s->lr, err)) != FA_OK) return st;
    const char *ti = weights_metadata(f, "transform_input");
    s->transform_input = ti && !strcmp(ti, "1");
    if (weights_metadata(f, "threshold")) {
        if ((st = get_num(f, "threshold", &d, err)) != FA_OK) return st;
        s->threshold = d;
        const char *rule = weights_metadata(f, "threshold_rule");
        snprintf(s->threshold_rule, sizeof s->threshold_rule, "%s", rule ? rule : "");
    }
    return FA_OK;
}

fa_status ckpt_restore(const weights_file *f, fa_graph *g, optim_sgd *opt, fa_error *err) {
    weights_load_opts lo = {NULL, 0};
    fa_status st = weights_load_graph(g, f, &lo, NULL, err);
    if (st != FA_OK) return st;
    if (!opt) return FA_OK;
    const char *ms = weights_metadata(f, "momentum_started");
    if (!ms || strcmp(ms, "1")) return FA_OK; /* before the first step: nothing to restore */
    optim_sgd_set_started(opt, 1);
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (p->kind != GRAPH_PARAM_TRAINABLE) continue;
        char name[GRAPH_NAME_MAX + 32];
        snprintf(name, sizeof name, CKPT_MOMENTUM_PREFIX "%s", p->name);
        const weights_tensor *t = weights_find(f, name);
        if (!t)
            return fa_error_set(err, FA_ERR_NOT_FOUND, "%s: momentum buffer '%s' missing", weights_path(f), name);
        if (weights_numel(t) != p->numel)
            return fa_error_set(err, FA_ERR_SHAPE, "%s: momentum buffer '%s' has %" PRId64 " values, parameter has %" PRId64,
                                weights_path(f), name, weights_numel(t), p->numel);
        float *m = optim_sgd_momentum(opt, i);
        if (!m) return fa_error_set(err, FA_ERR_INTERNAL, "%s: optimiser has no momentum buffer for '%s'", weights_path(f), p->name);
        st = weights_read_f32(f, t, m, err);
        if (st != FA_OK) return st;
    }
    return FA_OK;
}

fa_status train_load_checkpoint(const char *path, fa_graph **g, ckpt_info *info, fa_error *err) {
    *g = NULL;
    memset(info, 0, sizeof *info);
    info->threshold = NAN;
    char resolved[4096];
    weights_file *f;
    fa_status st = ckpt_open(&f, path, resolved, sizeof resolved, err);
    if (st != FA_OK) return st;
    const char *arch, *prep, *kind;
    int64_t size, epoch;
    if ((st = get_str(f, "arch", &arch, err)) != FA_OK) goto done;
    if ((st = get_str(f, "preprocessing", &prep, err)) != FA_OK) goto done;
    if ((st = get_int(f, "image_size", 1, 4096, &size, err)) != FA_OK) goto done;
    if ((st = get_int(f, "epoch", 0, 100000000, &epoch, err)) != FA_OK) goto done;
    kind = weights_metadata(f, "kind");
    if (!model_is_known(arch)) {
        st = fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: unknown architecture '%s' (known: %s)", resolved, arch,
                          model_arch_list());
        goto done;
    }
    if (strcmp(prep, aug_preprocessing_desc())) {
        st = fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: preprocessing '%s' is not implemented by this build", resolved,
                          prep);
        goto done;
    }
    snprintf(info->arch, sizeof info->arch, "%s", arch);
    snprintf(info->preprocessing, sizeof info->preprocessing, "%s", prep);
    snprintf(info->kind, sizeof info->kind, "%s", kind ? kind : "");
    info->image_size = (int)size;
    info->epoch = (int)epoch;
    double d;
    info->val_loss = get_num(f, "val_loss", &d, NULL) == FA_OK ? d : NAN;
    info->val_auc = get_num(f, "val_auc", &d, NULL) == FA_OK ? d : NAN;
    if (weights_metadata(f, "threshold")) {
        if ((st = get_num(f, "threshold", &info->threshold, err)) != FA_OK) goto done;
        const char *rule = weights_metadata(f, "threshold_rule");
        snprintf(info->threshold_rule, sizeof info->threshold_rule, "%s", rule ? rule : "");
    }
    model_options mo = ckpt_model_options(arch, (int)size, weights_metadata(f, "transform_input"));
    st = model_build(g, arch, &mo, err);
    if (st != FA_OK) {
        fa_error_prefix(err, "%s", resolved);
        goto done;
    }
    st = ckpt_restore(f, *g, NULL, err);
    if (st != FA_OK) {
        graph_free(*g);
        *g = NULL;
    }
done:
    weights_close(f);
    return st;
}
