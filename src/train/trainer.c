/* trainer.c - the training loop (see trainer.h): epochs of micro-batched SGD
 * steps fed by the threaded loader, validation, checkpoints and logs. */
#include "train/trainer.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/digest.h"
#include "core/fa_progress.h"
#include "engine/exec.h"
#include "engine/optim.h"
#include "engine/weights.h"
#include "eval/stats.h"
#include "models/model.h"
#include "train/augment.h"
#include "train/ckpt.h"
#include "train/dataset.h"
#include "train/dist.h"
#include "train/loader.h"
#include "train/lrsched.h"
#include "train/trainstep.h"

#define PATH_CAP 4096
/* BatchNorm momentum of every torchvision model (the graph does not expose
 * it); used to compose the ranks' running-statistics updates (dist.h). */
#define TRAINER_BN_MOMENTUM 0.1

fa_status trainer_resume_config(const train_config *stored, const train_config *user, const int *given,
                                const char *ckpt_path, train_config *out, fa_error *err) {
    *out = *stored;
    char a[TRAINCONF_PATH_MAX + 16], b[TRAINCONF_PATH_MAX + 16];
    for (int i = 0; i < trainconf_key_count(); i++) {
        if (!given[i]) continue;
        const char *key = trainconf_key_name(i);
        trainconf_get(user, key, a, sizeof a);
        trainconf_get(stored, key, b, sizeof b);
        if (!strcmp(a, b)) continue;
        if (!trainconf_key_resume_mutable(key))
            return fa_error_set(err, FA_ERR_ARG,
                                "%s: key '%s' is '%s' in the checkpoint, '%s' requested; --resume continues the same "
                                "run (only epochs, threads, loader_threads, ram_cache_mb, val_batch, out, patience, "
                                "checkpoint_steps, max_steps may change)",
                                ckpt_path, key, b, a);
        fa_status st = trainconf_set(out, key, a, "command line", err);
        if (st != FA_OK) return st;
    }
    return FA_OK;
}

/* mkdir -p */
static fa_status make_dirs(const char *path, fa_error *err) {
    char buf[PATH_CAP];
    if (strlen(path) >= sizeof buf) return fa_error_set(err, FA_ERR_ARG, "%s: path too long", path);
    strcpy(buf, path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, 0777) != 0 && errno != EEXIST) return fa_error_set(err, FA_ERR_IO, "%s: %s", buf, strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    struct stat sb;
    if (stat(path, &sb) != 0 || !S_ISDIR(sb.st_mode))
        return fa_error_set(err, FA_ERR_IO, "%s: not a directory", path);
    return FA_OK;
}

static int graph_params_finite(fa_graph *g) {
    for (int i = 0; i < graph_param_count(g); i++) {
        graph_param *p = graph_param_at(g, i);
        if (!p->data) continue;
        for (int64_t k = 0; k < p->numel; k++)
            if (!isfinite(p->data[k])) return 0;
    }
    return 1;
}

static double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }

/* Threshold of the configured operating point on validation probabilities;
 * NaN when "none" or undefined (a class missing). */
static fa_status lock_threshold(const char *rule, const double *prob, const unsigned char *label, size_t n,
                                double *thr, fa_error *err) {
    *thr = NAN;
    if (!strcmp(rule, "none")) return FA_OK;
    stats_roc roc;
    fa_status st = stats_roc_build(prob, label, n, &roc, err);
    if (st != FA_OK) return st;
    size_t k = SIZE_MAX;
    if (!strcmp(rule, "youden")) k = stats_roc_youden(&roc);
    else if (!strncmp(rule, "sens:", 5)) k = stats_roc_min_sensitivity(&roc, strtod(rule + 5, NULL));
    else if (!strncmp(rule, "spec:", 5)) k = stats_roc_min_specificity(&roc, strtod(rule + 5, NULL));
    if (k != SIZE_MAX) *thr = stats_roc_cut_threshold(&roc, k);
    stats_roc_free(&roc);
    return FA_OK;
}

typedef struct trainer {
    const train_config *c;
    char out[TRAINCONF_PATH_MAX];
    char last_path[PATH_CAP], best_path[PATH_CAP], best_auc_path[PATH_CAP];
    char manifest_sha[65];
    int image_size;
    float pos_weight;
    int micro, infer_batch;
    dataset train, val;
    dataset_source *src;
    fa_graph *g;
    optim_sgd *opt;
    trainstep *ts;
    loader *ltrain, *lval;
    fa_jsonl log;
    ckpt_state s;
    int *order, *units, *batch_first_unit;
    double *val_prob;
    unsigned char *val_label;
    fa_progress prog;
    char prog_label[256];
    /* data parallelism (dist.h): this rank's share of each global batch */
    dist *d;
    int rank, nranks;
    int *rorder, *rpos; /* this rank's samples of the epoch and their global positions */
    int n_rank;         /* entries of rorder */
    int *rank_units;    /* micro-batches of each rank in the current step */
    int sync_bn;        /* synchronised BatchNorm across the ranks (sync_bn, > 1 rank) */
} trainer;

static void trainer_cleanup(trainer *t) {
    loader_free(t->ltrain);
    loader_free(t->lval);
    trainstep_free(t->ts);
    optim_sgd_free(t->opt);
    graph_free(t->g);
    dataset_source_close(t->src);
    dataset_free(&t->train);
    dataset_free(&t->val);
    fa_jsonl_close(&t->log);
    free(t->order);
    free(t->units);
    free(t->batch_first_unit);
    free(t->val_prob);
    free(t->val_label);
    free(t->rorder);
    free(t->rpos);
    free(t->rank_units);
}

/* Rank 0 writes; every rank learns whether it worked (collective). */
static fa_status save_ckpt(trainer *t, const char *path, const char *kind, fa_error *err) {
    if (t->rank != 0) return dist_agree(t->d, FA_OK, "checkpoint writing", err);
    fa_status st = ckpt_save(path, t->g, t->opt, t->c, &t->s, kind, aug_preprocessing_desc(), t->manifest_sha, err);
    if (st == FA_OK) {
        fa_jsonl_begin(&t->log, "checkpoint");
        fa_jsonl_str(&t->log, "kind", kind);
        fa_jsonl_str(&t->log, "path", path);
        fa_jsonl_int(&t->log, "epoch", t->s.epoch);
        fa_jsonl_int(&t->log, "epoch_step", t->s.epoch_step);
        fa_jsonl_int(&t->log, "global_step", t->s.global_step);
        fa_jsonl_end(&t->log);
    }
    return dist_agree(t->d, st, "checkpoint writing", err);
}

/* Stop on a non-finite value: log it and leave the last checkpoint alone. */
static fa_status numeric_stop(trainer *t, int epoch, int step, double lr, const char *what, fa_error *err) {
    struct stat sb;
    char last[PATH_CAP + 64];
    if (stat(t->last_path, &sb) == 0) snprintf(last, sizeof last, "last good checkpoint %s", t->last_path);
    else snprintf(last, sizeof last, "no checkpoint was written yet");
    fa_jsonl_begin(&t->log, "error");
    fa_jsonl_str(&t->log, "reason", "non-finite");
    fa_jsonl_str(&t->log, "what", what);
    fa_jsonl_int(&t->log, "epoch", epoch + 1);
    fa_jsonl_int(&t->log, "step", step + 1);
    fa_jsonl_num(&t->log, "lr", lr);
    fa_jsonl_end(&t->log);
    return fa_error_set(err, FA_ERR_NUMERIC, "%s: %s is NaN or Inf at epoch %d step %d (lr %g); training stopped, %s",
                        t->out, what, epoch + 1, step + 1, lr, last);
}

/* Rank r's contiguous slice [*off, *off + *len) of a global batch of bn
 * images: sizes differ by at most one, the larger ones first. */
static void rank_slice(int bn, int nranks, int r, int *off, int *len) {
    int q = bn / nranks, rem = bn % nranks;
    *len = q + (r < rem);
    *off = r * q + (r < rem ? r : rem);
}

/* Plan the units (micro-batches) of an epoch: returns the number of
 * optimiser steps, fills t->units and t->batch_first_unit (nb + 1 entries)
 * for this rank's slices and, when order is given, t->rorder/t->rpos/t->n_rank.
 * With one rank the slice is the whole batch. */
static int plan_epoch(trainer *t, int n, const int *order, int *n_used, int *n_units) {
    const int B = t->c->batch_size;
    int nb = t->c->drop_last ? n / B : (n + B - 1) / B;
    int k = 0, p = 0;
    for (int b = 0; b < nb; b++) {
        int bn = n - b * B < B ? n - b * B : B;
        int off, len;
        rank_slice(bn, t->nranks, t->rank, &off, &len);
        t->batch_first_unit[b] = k;
        k += trainstep_split(len, t->micro, t->units + k);
        for (int i = 0; order && i < len; i++, p++) {
            t->rpos[p] = b * B + off + i;
            t->rorder[p] = order[b * B + off + i];
        }
    }
    if (order) t->n_rank = p;
    t->batch_first_unit[nb] = k;
    *n_units = k;
    *n_used = t->c->drop_last ? nb * B : n;
    return nb;
}

/* Each rank scores a contiguous share of the validation images; the logits
 * are gathered so that every rank computes the same loss, AUC and threshold. */
static fa_status validate(trainer *t, double *loss, double *auc, double *thr, fa_error *err) {
    const int n = t->val.n, N = t->nranks;
    int n_units = 0;
    const int lo = (int)((int64_t)n * t->rank / N), hi = (int)((int64_t)n * (t->rank + 1) / N), nm = hi - lo;
    int *sizes = fa_malloc_array((size_t)n / (size_t)t->infer_batch + 2, sizeof *sizes);
    int *ord = fa_malloc_array((size_t)n, sizeof *ord), *counts = fa_malloc_array((size_t)N, sizeof *counts);
    float *logits = fa_malloc_array((size_t)n, sizeof *logits), *targets = fa_malloc_array((size_t)n, sizeof *targets);
    float *ml = fa_malloc_array((size_t)nm + 1, sizeof *ml), *mt = fa_malloc_array((size_t)nm + 1, sizeof *mt);
    fa_status st = FA_OK;
    if (!sizes || !ord || !counts || !logits || !targets || !ml || !mt)
        st = fa_error_set(err, FA_ERR_NOMEM, "validation: out of memory");
    if (st == FA_OK) {
        for (int i = 0; i < nm; i++) ord[i] = lo + i;
        for (int r = 0; r < N; r++) counts[r] = (int)((int64_t)n * (r + 1) / N - (int64_t)n * r / N);
        n_units = trainstep_split(nm, t->infer_batch, sizes);
        st = loader_begin(t->lval, ord, nm, sizes, n_units, 0, 0, 0, err);
    }
    for (int u = 0; st == FA_OK && u < n_units; u++) {
        const loader_unit *lu;
        st = loader_next(t->lval, &lu, err);
        if (st == FA_OK) st = trainstep_infer(t->ts, lu->x, lu->n, ml + lu->position, err);
        if (st == FA_OK)
            for (int i = 0; i < lu->n; i++) mt[lu->position + i] = lu->y[i];
        loader_release(t->lval);
    }
    loader_end(t->lval);
    if (N > 1) st = dist_agree(t->d, st, "validation", err);
    if (st == FA_OK) st = dist_allgather_floats(t->d, ml, nm, counts, logits, err);
    if (st == FA_OK) st = dist_allgather_floats(t->d, mt, nm, counts, targets, err);
    if (st == FA_OK) st = optim_bce_with_logits(logits, targets, n, t->pos_weight, loss, NULL, err);
    if (st == FA_OK) {
        for (int i = 0; i < n; i++) {
            t->val_prob[i] = sigmoid(logits[i]);
            t->val_label[i] = targets[i] > 0.5f;
        }
        st = stats_auc(t->val_prob, t->val_label, (size_t)n, auc, err);
    }
    if (st == FA_OK) st = lock_threshold(t->c->operating_point, t->val_prob, t->val_label, (size_t)n, thr, err);
    free(sizes);
    free(ord);
    free(counts);
    free(logits);
    free(targets);
    free(ml);
    free(mt);
    return st;
}

/* Synchronised BatchNorm pairs the ranks' k-th micro-batches (each BatchNorm
 * is a collective), so every rank must run the same number of micro-batches,
 * at least one, in every step: the full batches and the last, shorter one. */
static fa_status sync_bn_check(trainer *t, fa_error *err) {
    const int B = t->c->batch_size, n = t->train.n;
    int sizes[2] = {n < B ? n : B, t->c->drop_last ? 0 : n % B};
    for (int k = 0; k < 2; k++) {
        if (sizes[k] == 0) continue;
        int off, len0, len;
        rank_slice(sizes[k], t->nranks, 0, &off, &len0);
        for (int r = 1; r < t->nranks; r++) {
            rank_slice(sizes[k], t->nranks, r, &off, &len);
            int u0 = (len0 + t->micro - 1) / t->micro, u = (len + t->micro - 1) / t->micro;
            if (len == 0 || u != u0)
                return fa_error_set(err, FA_ERR_ARG,
                                    "key 'sync_bn': a batch of %d images over %d ranks gives rank %d %d images "
                                    "(%d micro-batches of at most %d) and rank 0 %d (%d); synchronised BatchNorm needs "
                                    "the same number of micro-batches on every rank: choose batch_size, micro_batch "
                                    "and drop_last so that every batch splits evenly",
                                    sizes[k], t->nranks, r, len, u, t->micro, len0, u0);
        }
    }
    return FA_OK;
}

static fa_status trainer_setup(trainer *t, const trainer_opts *o, fa_error *err) {
    const train_config *c = t->c;
    fa_status st;
    snprintf(t->out, sizeof t->out, "%s", c->out);
    snprintf(t->last_path, sizeof t->last_path, "%s/last.safetensors", t->out);
    snprintf(t->best_path, sizeof t->best_path, "%s/best.safetensors", t->out);
    snprintf(t->best_auc_path, sizeof t->best_auc_path, "%s/best_auc.safetensors", t->out);
    if (!model_is_known(c->arch))
        return fa_error_set(err, FA_ERR_ARG, "key 'arch': unknown architecture '%s' (known: %s)", c->arch,
                            model_arch_list());
    t->sync_bn = c->sync_bn && t->nranks > 1;
    if (c->threads > 0) exec_set_threads(c->threads);
    if ((st = dataset_load(c, &t->train, &t->val, NULL, err)) != FA_OK) return st;
    if ((st = digest_sha256_file(c->manifest, t->manifest_sha, err)) != FA_OK) return st;
    if (c->pos_weight > 0) t->pos_weight = (float)c->pos_weight;
    else if (t->train.n_pos == 0)
        return fa_error_set(err, FA_ERR_ARG, "%s: pos_weight=auto but split '%s' has no positive image", c->manifest,
                            c->train_split);
    else t->pos_weight = (float)t->train.n_neg / (float)t->train.n_pos;
    if (c->drop_last && t->train.n < c->batch_size)
        return fa_error_set(err, FA_ERR_ARG, "%s: drop_last with batch_size %d leaves no batch of the %d training images",
                            c->manifest, c->batch_size, t->train.n);
    t->image_size = c->image_size ? c->image_size : model_default_size(c->arch);
    t->micro = c->micro_batch ? c->micro_batch : c->batch_size;
    t->infer_batch = c->val_batch ? c->val_batch : t->micro;
    if (t->sync_bn && (st = sync_bn_check(t, err)) != FA_OK) return st;
    if ((st = make_dirs(t->out, err)) != FA_OK) return st;

    ckpt_state_init(&t->s);
    weights_file *f = NULL; /* the checkpoint to resume or the pretrained weights */
    char resolved[PATH_CAP];
    if (o->resume) {
        if ((st = ckpt_open(&f, o->resume, resolved, sizeof resolved, err)) != FA_OK) return st;
    } else if (c->pretrained[0]) {
        if ((st = weights_open(&f, c->pretrained, err)) != FA_OK) return st;
    }
    /* inception_v3: torchvision's pretrained weights expect transform_input */
    const char *ti = f ? weights_metadata(f, "transform_input") : NULL;
    t->s.transform_input = ti && !strcmp(ti, "1");
    model_options mo = ckpt_model_options(c->arch, t->image_size, ti);
    st = model_build(&t->g, c->arch, &mo, err);
    optim_sgd_opts so = {(float)c->momentum, 0.0f, (float)c->weight_decay, c->nesterov};
    if (st == FA_OK) st = optim_sgd_create(&t->opt, t->g, &so, err);
    if (st != FA_OK) {
        weights_close(f);
        return st;
    }
    if (o->resume) {
        train_config stored;
        st = ckpt_read_state(f, &stored, &t->s, err);
        if (st == FA_OK && strcmp(stored.arch, c->arch))
            st = fa_error_set(err, FA_ERR_ARG, "%s: checkpoint of architecture '%s', run configured for '%s'", resolved,
                              stored.arch, c->arch);
        const char *sha = weights_metadata(f, "manifest_sha256");
        if (st == FA_OK && sha && strcmp(sha, t->manifest_sha))
            st = fa_error_set(err, FA_ERR_ARG,
                              "%s: manifest %s changed since the checkpoint was written (sha256 differs); resume needs "
                              "the same data",
                              resolved, c->manifest);
        if (st == FA_OK) st = ckpt_restore(f, t->g, t->opt, err);
        weights_close(f);
        if (st != FA_OK) return st;
    } else {
        st = model_init_weights(t->g, c->arch, c->seed, err);
        if (st == FA_OK && f) {
            weights_load_opts lo = {model_head_prefix(c->arch), 1};
            int dropped = 0;
            st = weights_load_graph(t->g, f, &lo, &dropped, err);
            if (st != FA_OK) fa_error_prefix(err, "pretrained %s", c->pretrained);
            else if (dropped) st = model_init_head(t->g, c->arch, c->seed, err);
        }
        weights_close(f);
        if (st != FA_OK) return st;
    }
    trainstep_opts to = {t->micro, t->infer_batch, c->precision == TRAINCONF_BF16 ? FA_PRECISION_BF16 : FA_PRECISION_FP32,
                         aug_hash4(c->seed, AUG_STREAM_INIT, 0, 0), !strcmp(c->arch, "inception_v3") ? 0.4f : 0.0f};
    if ((st = trainstep_create(&t->ts, t->g, &to, err)) != FA_OK) return st;
    if (t->nranks > 1) {
        exec_hooks h;
        dist_exec_hooks(t->d, t->sync_bn, &h);
        if ((st = trainstep_set_hooks(t->ts, &h, err)) != FA_OK) return st;
    }
    if ((st = dataset_source_open(&t->src, c, err)) != FA_OK) return st;
    size_t ram = (size_t)c->ram_cache_mb << 20;
    loader_opts lt = {c, t->image_size, t->micro, c->loader_threads, c->loader_threads + 1, ram};
    if ((st = loader_create(&t->ltrain, &t->train, t->src, &lt, err)) != FA_OK) return st;
    loader_opts lv = {c, t->image_size, t->infer_batch, 1, 2, ram};
    if ((st = loader_create(&t->lval, &t->val, t->src, &lv, err)) != FA_OK) return st;
    int n = t->train.n;
    t->order = fa_malloc_array((size_t)n, sizeof *t->order);
    t->units = fa_malloc_array((size_t)n + 1, sizeof *t->units);
    t->batch_first_unit = fa_malloc_array((size_t)n + 2, sizeof *t->batch_first_unit);
    t->val_prob = fa_malloc_array((size_t)t->val.n, sizeof *t->val_prob);
    t->val_label = fa_malloc_array((size_t)t->val.n, 1);
    t->rorder = fa_malloc_array((size_t)n + 1, sizeof *t->rorder);
    t->rpos = fa_malloc_array((size_t)n + 1, sizeof *t->rpos);
    t->rank_units = fa_malloc_array((size_t)t->nranks, sizeof *t->rank_units);
    if (!t->order || !t->units || !t->batch_first_unit || !t->val_prob || !t->val_label || !t->rorder || !t->rpos ||
        !t->rank_units)
        return fa_error_set(err, FA_ERR_NOMEM, "training: out of memory");

    /* rank 0 logs; other ranks only when FREEAIR_DIST_RANK_LOGS=1, to
     * train.rank<R>.jsonl */
    char logpath[PATH_CAP + 32];
    const char *rank_logs = getenv("FREEAIR_DIST_RANK_LOGS");
    if (t->rank == 0) snprintf(logpath, sizeof logpath, "%s/train.jsonl", t->out);
    else if (rank_logs && !strcmp(rank_logs, "1")) snprintf(logpath, sizeof logpath, "%s/train.rank%d.jsonl", t->out, t->rank);
    else logpath[0] = '\0';
    if (fa_jsonl_open(&t->log, logpath) != 0) return fa_error_set(err, FA_ERR_IO, "%s: %s", logpath, strerror(errno));
    char confpath[PATH_CAP + 16];
    snprintf(confpath, sizeof confpath, "%s/config.conf", t->out);
    char *text = t->rank == 0 ? trainconf_format(c) : NULL;
    FILE *cf = text ? fopen(confpath, "w") : NULL;
    if (cf) {
        fprintf(cf, "# effective configuration of the run in this folder (written by freeair train)\n%s", text);
        fclose(cf);
    }
    free(text);
    fa_jsonl_begin(&t->log, o->resume ? "resume" : "start");
    fa_jsonl_str(&t->log, "arch", c->arch);
    fa_jsonl_int(&t->log, "image_size", t->image_size);
    fa_jsonl_int(&t->log, "train_images", t->train.n);
    fa_jsonl_int(&t->log, "train_positive", t->train.n_pos);
    fa_jsonl_int(&t->log, "val_images", t->val.n);
    fa_jsonl_int(&t->log, "val_positive", t->val.n_pos);
    fa_jsonl_num(&t->log, "pos_weight", t->pos_weight);
    fa_jsonl_int(&t->log, "epoch", t->s.epoch);
    fa_jsonl_int(&t->log, "epoch_step", t->s.epoch_step);
    fa_jsonl_int(&t->log, "global_step", t->s.global_step);
    fa_jsonl_str(&t->log, "manifest_sha256", t->manifest_sha);
    if (t->nranks > 1) {
        fa_jsonl_int(&t->log, "ranks", t->nranks);
        fa_jsonl_int(&t->log, "rank", t->rank);
        fa_jsonl_int(&t->log, "pid", (int64_t)getpid());
    }
    if (o->resume) fa_jsonl_str(&t->log, "checkpoint", o->resume);
    fa_jsonl_end(&t->log);
    return FA_OK;
}

static fa_status trainer_loop(trainer *t, const trainer_opts *o, trainer_result *res, fa_error *err) {
    const train_config *c = t->c;
    fa_status st = FA_OK;
    const int n = t->train.n;
    int n_used, n_units;
    int nb = plan_epoch(t, n, NULL, &n_used, &n_units);
    const int quiet = o->quiet || t->rank != 0;
    int64_t remaining = (int64_t)(c->epochs - t->s.epoch) * n_used - (int64_t)t->s.epoch_step * c->batch_size;
    fa_progress_begin(&t->prog, t->prog_label, remaining > 0 ? remaining : 0);
    t->prog.quiet = quiet;
    snprintf(t->prog_label, sizeof t->prog_label, "train");

    for (int e = t->s.epoch; e < c->epochs; e++) {
        double t_epoch = fa_now_seconds();
        if ((st = loader_epoch_order(c, &t->train, e, t->order, err)) != FA_OK) return st;
        nb = plan_epoch(t, n, t->order, &n_used, &n_units);
        int s0 = t->s.epoch_step;
        if (s0 > nb)
            return fa_error_set(err, FA_ERR_FORMAT, "checkpoint position step %d is past the %d steps of an epoch", s0, nb);
        if (t->nranks == 1)
            st = loader_begin(t->ltrain, t->order, n_used, t->units, n_units, t->batch_first_unit[s0], 1, e, err);
        else
            st = loader_begin_mapped(t->ltrain, t->rorder, t->n_rank, t->units, n_units, t->batch_first_unit[s0], 1, e,
                                     t->rpos, err);
        if (st != FA_OK) return st;
        double lr = NAN;
        for (int s = s0; s < nb; s++) {
            double t_step = fa_now_seconds();
            int bn = n_used - s * c->batch_size < c->batch_size ? n_used - s * c->batch_size : c->batch_size;
            lr = lrsched_lr(c, e, s, nb);
            graph_zero_grad(t->g);
            double batch_loss = 0, t_compute = 0, comm_s = 0;
            int64_t comm_bytes = 0;
            if (t->nranks > 1 && !t->sync_bn && (st = dist_bn_snapshot(t->d, t->g, err)) != FA_OK) {
                loader_end(t->ltrain);
                return st;
            }
            const int u_last = t->batch_first_unit[s + 1] - 1;
            for (int u = t->batch_first_unit[s]; u <= u_last; u++) {
                const loader_unit *lu = NULL;
                double l = 0;
                int got = st == FA_OK;
                if (got) st = loader_next(t->ltrain, &lu, err);
                /* Synchronised BatchNorm: each pass is a collective, so the
                 * ranks agree before every micro-batch and a rank whose
                 * earlier pass failed keeps step until they all stop. */
                if (t->sync_bn) st = dist_agree(t->d, st, "a training step", err);
                if (st == FA_OK && u == u_last) st = dist_grads_arm(t->d, t->g, 0, err);
                if (st == FA_OK) st = trainstep_micro(t->ts, lu->x, lu->y, lu->n, bn, t->pos_weight, &l, err);
                if (got) loader_release(t->ltrain);
                if (st != FA_OK && (!t->sync_bn || dist_failed_together(t->d))) break;
                if (st == FA_OK) batch_loss += l * lu->n / bn;
            }
            int early = 0;
            double t_comm = fa_now_seconds();
            if (t->nranks > 1) {
                /* Every rank starts every bucket (in the same order) even
                 * after a failure, then learns about failures before it
                 * waits for the sums, so none is left waiting. */
                fa_error serr;
                fa_status sst = dist_grads_start(t->d, t->g, 0, &serr);
                if (sst != FA_OK) {
                    dist_abort(t->d, serr.msg);
                    loader_end(t->ltrain);
                    return fa_error_set(err, sst, "%s", serr.msg);
                }
                t_compute = t_comm - t_step;
                st = dist_agree(t->d, st, "a training step", err);
                if (st == FA_OK) st = dist_sum(t->d, &batch_loss, 1, err);
                sst = dist_grads_wait(t->d, t->g, &comm_bytes, &early, st == FA_OK ? err : &serr);
                if (st == FA_OK) st = sst;
            }
            if (st == FA_ERR_NUMERIC || (st == FA_OK && !isfinite(batch_loss))) {
                loader_end(t->ltrain);
                return numeric_stop(t, e, s, lr, "the training loss", err);
            }
            if (st != FA_OK) {
                loader_end(t->ltrain);
                return st;
            }
            if (t->nranks > 1) {
                for (int r = 0; r < t->nranks; r++) {
                    int off, len;
                    rank_slice(bn, t->nranks, r, &off, &len);
                    t->rank_units[r] = (len + t->micro - 1) / t->micro;
                }
                if (!t->sync_bn) st = dist_bn_combine(t->d, t->g, t->rank_units, TRAINER_BN_MOMENTUM, err);
                comm_s = fa_now_seconds() - t_comm;
                if (st != FA_OK) {
                    loader_end(t->ltrain);
                    return st;
                }
            }
            optim_sgd_step(t->opt, (float)lr);
            t->s.global_step++;
            t->s.epoch_step = s + 1;
            t->s.epoch_loss_sum += batch_loss * bn;
            t->s.epoch_loss_count += bn;
            double dt = fa_now_seconds() - t_step;
            fa_jsonl_begin(&t->log, "step");
            fa_jsonl_int(&t->log, "epoch", e + 1);
            fa_jsonl_int(&t->log, "step", s + 1);
            fa_jsonl_int(&t->log, "steps", nb);
            fa_jsonl_int(&t->log, "global_step", t->s.global_step);
            fa_jsonl_num(&t->log, "loss", batch_loss);
            fa_jsonl_num(&t->log, "lr", lr);
            fa_jsonl_int(&t->log, "images", bn);
            fa_jsonl_num(&t->log, "images_per_s", dt > 0 ? bn / dt : 0);
            if (t->nranks > 1) { /* for bench/mpi_bench.sh */
                fa_jsonl_num(&t->log, "compute_s", t_compute);
                fa_jsonl_num(&t->log, "allreduce_s", comm_s);
                fa_jsonl_int(&t->log, "allreduce_bytes", comm_bytes);
                fa_jsonl_int(&t->log, "allreduce_early_buckets", early);
            }
            fa_jsonl_end(&t->log);
            snprintf(t->prog_label, sizeof t->prog_label, "epoch %d/%d step %d/%d loss %.4f lr %.3g", e + 1, c->epochs,
                     s + 1, nb, batch_loss, lr);
            fa_progress_add(&t->prog, bn);
            int last_step = s + 1 == nb;
            int hit_max = c->max_steps > 0 && t->s.global_step >= c->max_steps;
            if (!last_step && ((c->checkpoint_steps > 0 && t->s.global_step % c->checkpoint_steps == 0) || hit_max)) {
                if (!graph_params_finite(t->g)) {
                    loader_end(t->ltrain);
                    return numeric_stop(t, e, s, lr, "a weight", err);
                }
                if ((st = save_ckpt(t, t->last_path, "last", err)) != FA_OK) {
                    loader_end(t->ltrain);
                    return st;
                }
            }
            if (hit_max && !last_step) {
                loader_end(t->ltrain);
                if (!quiet) fa_progress_end(&t->prog);
                res->stopped_max_steps = 1;
                fa_jsonl_begin(&t->log, "stop");
                fa_jsonl_str(&t->log, "reason", "max_steps");
                fa_jsonl_int(&t->log, "global_step", t->s.global_step);
                fa_jsonl_end(&t->log);
                return FA_OK;
            }
        }
        loader_end(t->ltrain);

        /* validation and model selection */
        double vloss = NAN, vauc = NAN, thr = NAN;
        st = validate(t, &vloss, &vauc, &thr, err);
        if (st == FA_ERR_NUMERIC) return numeric_stop(t, e, nb - 1, lr, "the validation loss", err);
        if (st != FA_OK) return st;
        if (!graph_params_finite(t->g)) return numeric_stop(t, e, nb - 1, lr, "a weight", err);
        if (t->nranks > 1) {
            char when[64];
            snprintf(when, sizeof when, "after epoch %d", e + 1);
            if ((st = dist_check_params(t->d, t->g, when, err)) != FA_OK) return st;
        }
        t->s.train_loss = t->s.epoch_loss_count ? t->s.epoch_loss_sum / (double)t->s.epoch_loss_count : NAN;
        t->s.val_loss = vloss;
        t->s.val_auc = vauc;
        t->s.lr = lr;
        t->s.epoch = e + 1;
        t->s.epoch_step = 0;
        t->s.epoch_loss_sum = 0;
        t->s.epoch_loss_count = 0;
        t->s.threshold = thr;
        snprintf(t->s.threshold_rule, sizeof t->s.threshold_rule, "%s", isfinite(thr) ? c->operating_point : "");
        int improved = vloss < t->s.best_val_loss;
        if (improved) {
            t->s.best_val_loss = vloss;
            t->s.best_epoch = e + 1;
            t->s.bad_epochs = 0;
        } else {
            t->s.bad_epochs++;
        }
        int auc_improved = isfinite(vauc) && (isnan(t->s.best_val_auc) || vauc > t->s.best_val_auc);
        if (auc_improved) {
            t->s.best_val_auc = vauc;
            t->s.best_auc_epoch = e + 1;
        }
        /* best files first: if the process dies before last.safetensors is
         * replaced, the resumed run redoes this epoch and rewrites them. */
        if (improved && (st = save_ckpt(t, t->best_path, "best", err)) != FA_OK) return st;
        if (auc_improved && c->keep_best_auc && (st = save_ckpt(t, t->best_auc_path, "best_auc", err)) != FA_OK)
            return st;
        if ((st = save_ckpt(t, t->last_path, "last", err)) != FA_OK) return st;
        fa_jsonl_begin(&t->log, "epoch");
        fa_jsonl_int(&t->log, "epoch", e + 1);
        fa_jsonl_int(&t->log, "global_step", t->s.global_step);
        fa_jsonl_num(&t->log, "train_loss", t->s.train_loss);
        fa_jsonl_num(&t->log, "val_loss", vloss);
        fa_jsonl_num(&t->log, "val_auc", vauc);
        fa_jsonl_num(&t->log, "lr", lr);
        fa_jsonl_int(&t->log, "best", improved);
        fa_jsonl_int(&t->log, "best_epoch", t->s.best_epoch);
        fa_jsonl_num(&t->log, "best_val_loss", t->s.best_val_loss);
        if (isfinite(thr)) fa_jsonl_num(&t->log, "threshold", thr);
        fa_jsonl_num(&t->log, "seconds", fa_now_seconds() - t_epoch);
        fa_jsonl_end(&t->log);
        if (!quiet) {
            if (t->prog.is_tty) fputs("\r\033[K", stderr);
            fprintf(stderr, "epoch %d/%d: train loss %.4f, val loss %.4f, val AUC %.4f%s\n", e + 1, c->epochs,
                    t->s.train_loss, vloss, vauc, improved ? " (best)" : "");
        }
        if (c->max_steps > 0 && t->s.global_step >= c->max_steps) {
            res->stopped_max_steps = 1;
            break;
        }
        if (c->patience > 0 && t->s.bad_epochs >= c->patience) {
            res->stopped_early = 1;
            fa_jsonl_begin(&t->log, "stop");
            fa_jsonl_str(&t->log, "reason", "patience");
            fa_jsonl_int(&t->log, "epoch", e + 1);
            fa_jsonl_end(&t->log);
            break;
        }
    }
    if (!quiet) fa_progress_end(&t->prog);
    return FA_OK;
}

fa_status trainer_run(const train_config *c, const trainer_opts *o, trainer_result *res, fa_error *err) {
    memset(res, 0, sizeof *res);
    trainer *t = calloc(1, sizeof *t);
    if (!t) return fa_error_set(err, FA_ERR_NOMEM, "training: out of memory");
    t->c = c;
    fa_status st = dist_init(&t->d, err);
    if (st != FA_OK) {
        free(t);
        return st;
    }
    t->rank = dist_rank(t->d);
    t->nranks = dist_size(t->d);
    st = trainer_setup(t, o, err);
    if (t->nranks > 1) {
        st = dist_agree(t->d, st, "setup", err);
        /* identical start on every rank, whatever each one computed */
        if (st == FA_OK) st = dist_broadcast_state(t->d, t->g, t->opt, err);
    }
    if (st == FA_OK) st = trainer_loop(t, o, res, err);
    res->epochs_done = t->s.epoch;
    res->global_step = t->s.global_step;
    res->best_val_loss = t->s.best_val_loss;
    res->best_epoch = t->s.best_epoch;
    res->best_val_auc = t->s.best_val_auc;
    res->last_val_loss = t->s.val_loss;
    res->last_val_auc = t->s.val_auc;
    if (st == FA_OK) {
        fa_jsonl_begin(&t->log, "end");
        fa_jsonl_int(&t->log, "epochs_done", t->s.epoch);
        fa_jsonl_int(&t->log, "global_step", t->s.global_step);
        fa_jsonl_num(&t->log, "best_val_loss", t->s.best_val_loss);
        fa_jsonl_int(&t->log, "best_epoch", t->s.best_epoch);
        fa_jsonl_end(&t->log);
    } else if (t->log.f && st != FA_ERR_NUMERIC) {
        fa_jsonl_begin(&t->log, "error");
        fa_jsonl_str(&t->log, "reason", fa_status_name(st));
        fa_jsonl_str(&t->log, "message", err ? err->msg : "");
        fa_jsonl_end(&t->log);
    }
    /* a failure the other ranks do not know about would leave them waiting
     * in their next collective: end the job */
    if (st != FA_OK && t->nranks > 1 && !dist_failed_together(t->d)) dist_abort(t->d, err ? err->msg : "failure");
    trainer_cleanup(t);
    dist_finalize(t->d);
    free(t);
    return st;
}
