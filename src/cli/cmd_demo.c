/* cmd_demo.c - `freeair demo`: the whole study on a synthetic cohort with one
 * command (issue 8). synth -> scan (+ truth merge) -> split with the study's
 * protocol -> preprocessing cache -> train each architecture -> score
 * validation and test -> eval (CIs, locked operating points, subgroups) ->
 * Grad-CAM gallery -> report.html + report.json, then a short summary.
 *
 * The stages are the other subcommands, called in-process through their
 * cmd_* entry points with argv arrays built here, so the demo exercises
 * exactly what a user would type. Each stage checks what it produced and
 * stamps it (demo.h); a re-run skips stages that are up to date and resumes
 * an interrupted training run from its last checkpoint.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/demo.h"
#include "data/csv.h"
#include "data/synth.h"
#include "engine/exec.h"
#include "eval/jsonv.h"
#include "models/model.h"
#include "train/ckpt.h"

/* Subcommands that may be missing from a build (main.c declares them weak
 * too): a missing one is reported by the stage that needs it. */
#pragma weak cmd_synth
#pragma weak cmd_scan
#pragma weak cmd_split
#pragma weak cmd_cache
#pragma weak cmd_train
#pragma weak cmd_eval
#pragma weak cmd_cam
#pragma weak cmd_report

#define DEMO_MAX_ARCHS 8
#define DEMO_POOL "manufacturer=Philips*,unit=fixed,hospital_type=academic"
#define DEMO_PRIMARY_RULE "youden"

static const char *const full_archs = "resnet50,resnet101,resnext101_32x8d,densenet161,inception_v3";
static const char *const fast_archs = "resnet50,densenet161";

typedef struct demo_opts {
    const char *out;
    const char *preset;       /* small | tiny | paper (--full) */
    const char *archs;        /* comma-separated */
    const char *pretrained_dir;
    const char *difficulty;   /* passed to synth */
    int full;
    int epochs;               /* 0 = the mode's default */
    int size;                 /* input pixels; 0 = the mode's default */
    int precision;            /* -1 auto, 0 fp32, 1 bf16 */
    double lr;                /* 0 = the mode's default */
    int threads;
    unsigned long long seed;
    int force, quiet;
} demo_opts;

typedef struct demo_run {
    demo_ctx ctx;
    demo_opts o;
    int n_arch;
    char arch[DEMO_MAX_ARCHS][64];
    int bf16;                 /* see demo_bf16 */
    int stage, n_stages;
    double stage_t0;
    char cohort[DEMO_PATH_MAX], work[DEMO_PATH_MAX], logs[DEMO_PATH_MAX], study[DEMO_PATH_MAX];
    char truth[DEMO_PATH_MAX], manifest[DEMO_PATH_MAX], split[DEMO_PATH_MAX], split_json[DEMO_PATH_MAX];
    char cache[DEMO_PATH_MAX], scores[DEMO_PATH_MAX], models_csv[DEMO_PATH_MAX];
    char html[DEMO_PATH_MAX], json[DEMO_PATH_MAX];
    char train_dir[DEMO_MAX_ARCHS][DEMO_PATH_MAX], conf[DEMO_MAX_ARCHS][DEMO_PATH_MAX];
    char argbuf[16][64];      /* numbers formatted for argv arrays */
    char failed_stage[96];
} demo_run;

static void demo_usage(FILE *f) {
    fprintf(f,
            "usage: freeair demo [--out DIR] [--preset small|tiny] [--epochs N] [--archs a,b]\n"
            "                    [--size PX] [--precision fp32|bf16] [--lr X] [--threads N]\n"
            "                    [--seed N] [--difficulty D] [--force] [--quiet]\n"
            "       freeair demo --full [--pretrained-dir DIR] [--out DIR] [--epochs N] [--archs ...]\n"
            "\n"
            "Runs the whole study on a synthetic cohort: generate it (freeair synth) -> scan\n"
            "it with the chest gate and merge the generator's truth -> split with the\n"
            "study's protocol (train and validation only from fixed Philips units at the\n"
            "academic hospital, exact scaled counts; everything else is test) -> build the\n"
            "preprocessing cache -> train each architecture -> score validation and test ->\n"
            "freeair eval (95%% CIs, operating points locked on validation, subgroups) ->\n"
            "Grad-CAM gallery -> freeair report. Writes DIR/report.html and DIR/report.json\n"
            "and prints a summary; DIR/demo.jsonl logs every stage.\n"
            "\n"
            "Fast configuration (default): preset small (360 images), %s,\n"
            "128 px (tiny: 64 px), 6 epochs (tiny: 1), batch 16, SGD lr 0.001 momentum 0.9\n"
            "(1 warm-up epoch) divided by 10 after 3/4 of the epochs, weight decay 1e-4,\n"
            "flips + rotation 15, bf16 where the CPU has it, random initialisation.\n"
            "docs/demo.md compares it with the study.\n"
            "\n"
            "  --out DIR          output folder (default freeair-demo)\n"
            "  --preset P         small (default) or tiny (CI)\n"
            "  --epochs N         training epochs per architecture\n"
            "  --archs LIST       architectures (%s)\n"
            "  --size PX          square input size\n"
            "  --precision P      fp32 or bf16 (default: bf16 when the CPU runs it natively)\n"
            "  --lr X             base learning rate\n"
            "  --threads N        threads for every stage (default: all cores)\n"
            "  --seed N           seed of the cohort, split, training and bootstrap (default 1)\n"
            "  --difficulty D     the cohort's difficulty (freeair synth): easy, default, hard\n"
            "                     or a number 0.25..3\n"
            "  --force            run every stage even when its outputs are up to date\n"
            "  --quiet            no progress lines from the stages\n"
            "  --full             the study's protocol: paper preset (1,287 images), %s,\n"
            "                     224 px (299 inception_v3), 100 epochs, batch 256 by micro-\n"
            "                     batches, lr 0.001 /10 every 25 epochs, flips + rotation 15.\n"
            "                     About a day on an idle 2-core machine: see docs/demo.md\n"
            "  --pretrained-dir D start each architecture from D/<arch>.safetensors (ImageNet\n"
            "                     weights; the 1000-class head is replaced)\n"
            "\n"
            "Stages whose outputs are up to date are skipped, so a re-run resumes; an\n"
            "interrupted training run continues from its last checkpoint.\n",
            fast_archs, model_arch_list(), full_archs);
}

/* ------------------------------------------------------------------------ */
/* Stage bookkeeping                                                         */

static int stage_enter(demo_run *r, const char *name, const char *what, const char *params,
                       const char *const *outputs, const char *const *deps) {
    r->stage++;
    int fresh = demo_stage_fresh(&r->ctx, name, params, outputs, deps);
    fprintf(stderr, "demo [%d/%d] %s: %s%s\n", r->stage, r->n_stages, name, what,
            fresh ? " - up to date, skipped" : "");
    fa_jsonl_begin(&r->ctx.log, fresh ? "stage_skip" : "stage_start");
    fa_jsonl_str(&r->ctx.log, "stage", name);
    fa_jsonl_int(&r->ctx.log, "index", r->stage);
    fa_jsonl_int(&r->ctx.log, "of", r->n_stages);
    fa_jsonl_str(&r->ctx.log, "what", what);
    fa_jsonl_end(&r->ctx.log);
    if (fresh) return 0;
    demo_stage_forget(&r->ctx, name);
    r->stage_t0 = fa_now_seconds();
    return 1;
}

static fa_status stage_leave(demo_run *r, const char *name, const char *params, fa_error *err) {
    fa_status st = demo_stage_done(&r->ctx, name, params, err);
    if (st != FA_OK) return st;
    double dt = fa_now_seconds() - r->stage_t0;
    fa_jsonl_begin(&r->ctx.log, "stage_done");
    fa_jsonl_str(&r->ctx.log, "stage", name);
    fa_jsonl_num(&r->ctx.log, "seconds", dt);
    fa_jsonl_end(&r->ctx.log);
    fprintf(stderr, "demo [%d/%d] %s: done in %.1f s\n", r->stage, r->n_stages, name, dt);
    return FA_OK;
}

/* Run a subcommand in-process. argv[0] is the command name; argv ends with
 * NULL. The command prints its own one-line error; ours names the stage. */
static fa_status run_cmd(demo_run *r, int (*fn)(int, char **), const char *const *argv, fa_error *err) {
    int argc = 0;
    while (argv[argc]) argc++;
    fa_jsonl_begin(&r->ctx.log, "command");
    char line[2048] = "freeair";
    for (int i = 0; i < argc; i++) {
        size_t n = strlen(line);
        snprintf(line + n, sizeof line - n, " %s", argv[i]);
    }
    fa_jsonl_str(&r->ctx.log, "command", line);
    fa_jsonl_end(&r->ctx.log);
    if (!fn) return fa_error_set(err, FA_ERR_UNSUPPORTED, "freeair %s is not available in this build", argv[0]);
    /* The stages' own reports (split tables, training summaries) go to
     * stderr with the progress lines, so that stdout carries only the
     * demo's summary. */
    fflush(stdout);
    int saved = dup(STDOUT_FILENO);
    if (saved >= 0) dup2(STDERR_FILENO, STDOUT_FILENO);
    int rc = fn(argc, (char **)argv);
    fflush(stdout);
    if (saved >= 0) {
        dup2(saved, STDOUT_FILENO);
        close(saved);
    }
    if (rc != 0)
        return fa_error_set(err, FA_ERR_BACKEND, "freeair %s failed (exit status %d, message above)", argv[0], rc);
    return FA_OK;
}

static const char *num(demo_run *r, int slot, long long v) {
    snprintf(r->argbuf[slot], sizeof r->argbuf[slot], "%lld", v);
    return r->argbuf[slot];
}

static fa_status need_file(const char *path, fa_error *err) {
    if (!demo_exists(path)) return fa_error_set(err, FA_ERR_NOT_FOUND, "%s: expected output is missing", path);
    return FA_OK;
}

/* ------------------------------------------------------------------------ */
/* Stages                                                                    */

static fa_status stage_synth(demo_run *r, fa_error *err) {
    char params[256], logp[DEMO_PATH_MAX], sheet[DEMO_PATH_MAX];
    snprintf(params, sizeof params, "synth preset=%s seed=%llu difficulty=%s freeair=%s\n", r->o.preset, r->o.seed,
             r->o.difficulty, FREEAIR_VERSION);
    static const char *const outs[] = {"cohort/manifest.csv", NULL};
    char what[128];
    snprintf(what, sizeof what, "generate the synthetic '%s' cohort as DICOM", r->o.preset);
    if (!stage_enter(r, "synth", what, params, outs, NULL)) return FA_OK;
    fa_status st = demo_join(logp, sizeof logp, r->logs, "synth.jsonl", err);
    if (st == FA_OK) st = demo_join(sheet, sizeof sheet, r->cohort, "contact-sheet.png", err);
    if (st != FA_OK) return st;
    const char *argv[20] = {"synth", "--out", r->cohort, "--preset", r->o.preset,
                            "--seed", num(r, 0, (long long)r->o.seed),
                            "--difficulty", r->o.difficulty, "--log", logp};
    int k = 11;
    /* the paper preset's contact sheet decodes 1,287 large images: skip it */
    if (strcmp(r->o.preset, "paper")) argv[k++] = "--contact-sheet", argv[k++] = sheet;
    if (r->o.threads > 0) argv[k++] = "--threads", argv[k++] = num(r, 1, r->o.threads);
    if (r->o.quiet) argv[k++] = "--quiet";
    argv[k] = NULL;
    if ((st = run_cmd(r, cmd_synth, argv, err)) != FA_OK) return st;
    char m[DEMO_PATH_MAX];
    if ((st = demo_join(m, sizeof m, r->cohort, "manifest.csv", err)) != FA_OK || (st = need_file(m, err)) != FA_OK)
        return st;
    return stage_leave(r, "synth", params, err);
}

/* Scan the hospital folders (not masks/, whose PNGs are not radiographs) so
 * that the header reader and the chest gate run on every file, then merge
 * the generator's truth columns by path. */
static fa_status stage_scan(demo_run *r, fa_error *err) {
    static const char *const outs[] = {"work/manifest.csv", NULL};
    static const char *const deps[] = {"synth", NULL};
    const char *params = "scan merge=truth key=path\n";
    if (!stage_enter(r, "scan", "read every header (chest gate) and merge the truth columns", params, outs, deps))
        return FA_OK;
    fa_status st = demo_write_truth(r->cohort, r->truth, err);
    if (st != FA_OK) return st;
    char logp[DEMO_PATH_MAX];
    if ((st = demo_join(logp, sizeof logp, r->logs, "scan.jsonl", err)) != FA_OK) return st;
    /* hospital folders are H01..H13 (synth.h): safe names */
    char dirs[13][DEMO_PATH_MAX];
    const char *argv[40] = {"scan"};
    int k = 1, nd = 0;
    for (int h = 1; h <= 13; h++) {
        char name[16];
        snprintf(name, sizeof name, "H%02d", h);
        if ((st = demo_join(dirs[nd], sizeof dirs[nd], r->cohort, name, err)) != FA_OK) return st;
        if (demo_is_dir(dirs[nd])) argv[k++] = dirs[nd++];
    }
    if (nd == 0) return fa_error_set(err, FA_ERR_NOT_FOUND, "%s: no hospital folders H01..H13", r->cohort);
    argv[k++] = "--merge";
    argv[k++] = r->truth;
    argv[k++] = "--key";
    argv[k++] = "path";
    argv[k++] = "-o";
    argv[k++] = r->manifest;
    argv[k++] = "--log";
    argv[k++] = logp;
    if (r->o.threads > 0) argv[k++] = "--threads", argv[k++] = num(r, 0, r->o.threads);
    if (r->o.quiet) argv[k++] = "--quiet";
    argv[k] = NULL;
    if ((st = run_cmd(r, cmd_scan, argv, err)) != FA_OK) return st;
    int n_ok, n_ex;
    if ((st = demo_check_manifest(r->manifest, &n_ok, &n_ex, err)) != FA_OK) return st;
    fprintf(stderr, "demo: %d images passed the chest gate, %d excluded\n", n_ok, n_ex);
    return stage_leave(r, "scan", params, err);
}

static fa_status stage_split(demo_run *r, fa_error *err) {
    static const char *const outs[] = {"work/split.csv", "work/split.json", NULL};
    static const char *const deps[] = {"scan", NULL};
    char params[512];
    snprintf(params, sizeof params, "split pool=%s seed=%llu\n", DEMO_POOL, r->o.seed);
    if (!stage_enter(r, "split", "the study's protocol: train/val from fixed Philips units at the academic hospital",
                     params, outs, deps))
        return FA_OK;
    demo_split_counts c;
    fa_status st = demo_split_counts_compute(r->manifest, DEMO_POOL, &c, err);
    if (st != FA_OK) return st;
    fprintf(stderr,
            "demo: pool %d+/%d- images; train %d+/%d-, validation %d+/%d- (the study's 375+/375-, 45+/90- "
            "of 420+/465-, scaled); the rest is test\n",
            c.pool_pos, c.pool_neg, c.train_pos, c.train_neg, c.val_pos, c.val_neg);
    const char *argv[] = {"split", "--manifest", r->manifest, "-o", r->split, "--seed", num(r, 0, (long long)r->o.seed),
                          "--json", r->split_json, "--pool", DEMO_POOL, "--train-pos", num(r, 1, c.train_pos),
                          "--train-neg", num(r, 2, c.train_neg), "--val-pos", num(r, 3, c.val_pos), "--val-neg",
                          num(r, 4, c.val_neg), NULL};
    if ((st = run_cmd(r, cmd_split, argv, err)) != FA_OK) return st;
    if ((st = need_file(r->split_json, err)) != FA_OK || (st = demo_check_split(r->split, err)) != FA_OK) return st;
    return stage_leave(r, "split", params, err);
}

static int cache_side(const demo_run *r) { return r->o.full ? 320 : r->o.size; }

static fa_status stage_cache(demo_run *r, fa_error *err) {
    static const char *const outs[] = {"work/cache/index.csv", NULL};
    static const char *const deps[] = {"split", NULL};
    char params[128], what[128], logp[DEMO_PATH_MAX], index[DEMO_PATH_MAX];
    snprintf(params, sizeof params, "cache short_side=%d\n", cache_side(r));
    snprintf(what, sizeof what, "decode every image once, short side %d px", cache_side(r));
    if (!stage_enter(r, "cache", what, params, outs, deps)) return FA_OK;
    fa_status st = demo_join(logp, sizeof logp, r->logs, "cache.jsonl", err);
    if (st != FA_OK) return st;
    const char *argv[16] = {"cache", "--manifest", r->split, "--out", r->cache,
                            "--short-side", num(r, 0, cache_side(r)), "--log", logp};
    int k = 9;
    if (r->o.threads > 0) argv[k++] = "--threads", argv[k++] = num(r, 1, r->o.threads);
    if (r->o.quiet) argv[k++] = "--quiet";
    argv[k] = NULL;
    if ((st = run_cmd(r, cmd_cache, argv, err)) != FA_OK) return st;
    if ((st = demo_join(index, sizeof index, r->cache, "index.csv", err)) != FA_OK ||
        (st = need_file(index, err)) != FA_OK)
        return st;
    return stage_leave(r, "cache", params, err);
}

/* The training configuration of one architecture, in `freeair train`'s
 * config syntax. `epochs` is written on its own line, last, so that the rest
 * (the identity of the run) can be compared without it. */
/* Epochs between learning-rate drops: the study's 25, or 3/4 of a fast run. */
static int fast_step_size(const demo_run *r) {
    if (r->o.full) return 25;
    int step = (r->o.epochs * 3 + 3) / 4;
    return step < 1 ? 1 : step;
}

static void train_config_text(const demo_run *r, int a, char *dst, size_t cap, size_t *identity_len) {
    const char *arch = r->arch[a];
    int big = !strcmp(arch, "resnet101") || !strncmp(arch, "resnext", 7) || !strcmp(arch, "inception_v3");
    int epochs = r->o.epochs;
    char pretrained[DEMO_PATH_MAX] = "";
    if (r->o.pretrained_dir)
        snprintf(pretrained, sizeof pretrained, "pretrained = \"%s/%s.safetensors\"\n", r->o.pretrained_dir, arch);
    /* the study: lr /10 every 25 of 100 epochs. The fast run keeps one drop,
     * after 3/4 of the epochs, so that its few epochs are spent learning,
     * and warms up over the first epoch: from random weights a full
     * learning rate at once sends the loss up. */
    int step = fast_step_size(r);
    int warmup = !r->o.full && epochs > 1 ? 1 : 0;
    int n = snprintf(dst, cap,
                     "# freeair demo: %s, %s configuration\n"
                     "arch = %s\n"
                     "image_size = %d\n"
                     "%s"
                     "lr = %g\n"
                     "momentum = 0.9\n"
                     "weight_decay = %g\n"
                     "schedule = step\n"
                     "step_size = %d\n"
                     "gamma = 0.1\n"
                     "warmup_epochs = %d\n"
                     "batch_size = %d\n"
                     "micro_batch = %d\n"
                     "hflip = 0.5\n"
                     "vflip = 0.5\n"
                     "rotation = 15\n"
                     "precision = %s\n"
                     "seed = %llu\n"
                     "manifest = \"%s\"\n"
                     "cache = \"%s\"\n"
                     "out = \"%s\"\n"
                     "operating_point = youden\n",
                     arch, r->o.full ? "the study's full" : "fast demo", arch, r->o.full ? 0 : r->o.size, pretrained,
                     r->o.lr, r->o.full ? 0.0 : 1e-4, step, warmup, r->o.full ? 256 : 16,
                     r->o.full ? (big ? 8 : 16) : 16, r->bf16 ? "bf16" : "fp32",
                     r->o.seed, r->split, r->cache, r->train_dir[a]);
    if (n < 0 || (size_t)n >= cap) n = (int)cap - 1;
    *identity_len = (size_t)n;
    snprintf(dst + n, cap - (size_t)n, "epochs = %d\n", epochs);
}

/* Completed epochs stored in a checkpoint, or -1 when it cannot be read. */
static int checkpoint_epochs(const char *path) {
    weights_file *f = NULL;
    char resolved[DEMO_PATH_MAX];
    train_config c;
    ckpt_state s;
    fa_error err;
    int epochs = -1;
    /* epoch counts finished epochs; a mid-epoch checkpoint has fewer */
    if (ckpt_open(&f, path, resolved, sizeof resolved, &err) == FA_OK && ckpt_read_state(f, &c, &s, &err) == FA_OK)
        epochs = s.epoch;
    if (f) weights_close(f);
    return epochs;
}

static fa_status stage_train(demo_run *r, int a, fa_error *err) {
    char name[96], what[256], text[8192], idpath[DEMO_PATH_MAX], last[DEMO_PATH_MAX];
    size_t id_len;
    snprintf(name, sizeof name, "train-%s", r->arch[a]);
    train_config_text(r, a, text, sizeof text, &id_len);
    snprintf(what, sizeof what, "%s, %d epoch(s) at %d px, %s%s", r->arch[a], r->o.epochs,
             r->o.full ? model_default_size(r->arch[a]) : r->o.size, r->bf16 ? "bf16" : "fp32",
             r->o.pretrained_dir ? ", from ImageNet weights" : ", random initialisation");
    char best_rel[DEMO_PATH_MAX];
    snprintf(best_rel, sizeof best_rel, "train/%s/best.safetensors", r->arch[a]);
    const char *outs[] = {best_rel, NULL};
    static const char *const deps[] = {"cache", NULL};
    if (!stage_enter(r, name, what, text, outs, deps)) return FA_OK;
    fa_status st = demo_mkdirs(r->train_dir[a], err);
    if (st == FA_OK) st = demo_write_text(r->conf[a], text, err);
    if (st == FA_OK) st = demo_join(idpath, sizeof idpath, r->train_dir[a], "demo-identity.conf", err);
    if (st == FA_OK) st = demo_join(last, sizeof last, r->train_dir[a], "last.safetensors", err);
    if (st != FA_OK) return st;
    /* The same run (same config but perhaps fewer epochs) left a checkpoint:
     * resume it when it has epochs to go, keep it when it is complete (it
     * was killed before its stamp was written); otherwise start afresh. */
    int done_epochs = -1;
    char *prev = NULL;
    fa_error ignored;
    /* ... and only when the data did not change since (the cache stage,
     * which follows the cohort and split, ran before this run began) */
    if (!r->o.force && demo_exists(last) && !demo_stage_newer_than(&r->ctx, "cache", idpath) &&
        demo_read_text(idpath, &prev, &ignored) == FA_OK) {
        /* the identity is everything before the final "epochs = N" line */
        if (strlen(prev) > id_len && !strncmp(prev, text, id_len) && !strncmp(prev + id_len, "epochs = ", 9))
            done_epochs = checkpoint_epochs(last);
    }
    free(prev);
    int resume = done_epochs >= 0 && done_epochs < r->o.epochs;
    int complete = done_epochs == r->o.epochs;
    if (!resume && !complete) {
        static const char *const old[] = {"last.safetensors", "best.safetensors", "best_auc.safetensors",
                                          "train.jsonl"};
        for (size_t i = 0; i < sizeof old / sizeof old[0]; i++) {
            char p[DEMO_PATH_MAX];
            if (demo_join(p, sizeof p, r->train_dir[a], old[i], err) == FA_OK) remove(p);
        }
    }
    if ((st = demo_write_text(idpath, text, err)) != FA_OK) return st;
    const char *argv[16];
    int k = 0;
    argv[k++] = "train";
    if (resume) {
        fprintf(stderr, "demo: resuming %s from %s\n", r->arch[a], last);
        argv[k++] = "--resume";
        argv[k++] = r->train_dir[a];
        argv[k++] = "--epochs";
        argv[k++] = num(r, 0, r->o.epochs);
    } else {
        argv[k++] = "--config";
        argv[k++] = r->conf[a];
    }
    if (r->o.threads > 0) argv[k++] = "--threads", argv[k++] = num(r, 1, r->o.threads);
    if (r->o.quiet) argv[k++] = "--quiet";
    argv[k] = NULL;
    if (complete) fprintf(stderr, "demo: %s already holds all %d epochs\n", last, r->o.epochs);
    else if ((st = run_cmd(r, cmd_train, argv, err)) != FA_OK) return st;
    char best[DEMO_PATH_MAX];
    if ((st = demo_join(best, sizeof best, r->ctx.out, best_rel, err)) != FA_OK || (st = need_file(best, err)) != FA_OK)
        return st;
    return stage_leave(r, name, text, err);
}

static fa_status stage_score(demo_run *r, fa_error *err) {
    static const char *const outs[] = {"work/scores.csv", "work/models.csv", NULL};
    const char *deps[DEMO_MAX_ARCHS + 1];
    char dep_names[DEMO_MAX_ARCHS][96];
    char params[1024] = "score";
    for (int a = 0; a < r->n_arch; a++) {
        snprintf(dep_names[a], sizeof dep_names[a], "train-%s", r->arch[a]);
        deps[a] = dep_names[a];
        size_t n = strlen(params);
        snprintf(params + n, sizeof params - n, " %s", r->arch[a]);
    }
    deps[r->n_arch] = NULL;
    strncat(params, " precision=fp32\n", sizeof params - strlen(params) - 1);
    if (!stage_enter(r, "score", "score validation and test images with each model's best checkpoint (fp32)", params,
                     outs, deps))
        return FA_OK;
    const char *names[DEMO_MAX_ARCHS], *dirs[DEMO_MAX_ARCHS];
    double val_auc[DEMO_MAX_ARCHS];
    for (int a = 0; a < r->n_arch; a++) names[a] = r->arch[a], dirs[a] = r->train_dir[a];
    if (r->o.threads > 0) exec_set_threads(r->o.threads);
    fa_status st = demo_score(r->split, r->n_arch, names, dirs, 16, 0, r->scores, val_auc, err);
    if (st != FA_OK) return st;
    /* the validation AUCs pick the model the summary reports, without
     * looking at the test set */
    char text[4096] = "model,run_dir,val_auc\n";
    for (int a = 0; a < r->n_arch; a++) {
        size_t n = strlen(text);
        snprintf(text + n, sizeof text - n, "%s,%s,%.9g\n", r->arch[a], r->train_dir[a], val_auc[a]);
    }
    if ((st = demo_write_text(r->models_csv, text, err)) != FA_OK) return st;
    return stage_leave(r, "score", params, err);
}

/* cohort.json tells the report (and a reader) that the cohort is synthetic
 * and how the whole run was made. */
static fa_status write_cohort_json(demo_run *r, fa_error *err) {
    char path[DEMO_PATH_MAX];
    fa_status st = demo_join(path, sizeof path, r->study, "cohort.json", err);
    if (st != FA_OK) return st;
    jsonv sj;
    if ((st = jsonv_read_file(r->split_json, &sj, err)) != FA_OK) return st;
    int rows = (int)jsonv_number(jsonv_get(&sj, "ok")), patients = (int)jsonv_number(jsonv_get(&sj, "patients"));
    int part[3][3];
    static const char *const parts[3] = {"train", "val", "test"};
    for (int p = 0; p < 3; p++) {
        const jsonv *pv = jsonv_get(jsonv_get(&sj, "parts"), parts[p]);
        part[p][0] = (int)jsonv_number(jsonv_get(pv, "images"));
        part[p][1] = (int)jsonv_number(jsonv_get(pv, "pos"));
        part[p][2] = (int)jsonv_number(jsonv_get(pv, "neg"));
    }
    jsonv_free(&sj);
    char archs[512] = "";
    for (int a = 0; a < r->n_arch; a++) {
        size_t n = strlen(archs);
        snprintf(archs + n, sizeof archs - n, "%s%s (%s)", a ? ", " : "", r->arch[a], r->bf16 ? "bf16" : "fp32");
    }
    demo_out o;
    if ((st = demo_out_open(&o, path, err)) != FA_OK) return st;
    char buf[2048];
    FILE *f = o.f;
    fputs("{\n  \"synthetic\": true,\n  \"name\": ", f);
    snprintf(buf, sizeof buf, "freeair demo on the synthetic '%s' cohort", r->o.preset);
    fa_json_write_string(f, buf);
    fputs(",\n  \"generator\": ", f);
    snprintf(buf, sizeof buf, "freeair synth --preset %s --seed %llu --difficulty %s (freeair %s)", r->o.preset,
             r->o.seed, r->o.difficulty, FREEAIR_VERSION);
    fa_json_write_string(f, buf);
    fputs(",\n  \"description\": ", f);
    snprintf(buf, sizeof buf,
             "Every image is synthetic: freeair's generator renders chest radiographs as projections of a "
             "parametric anatomy (body, lungs, heart, spine, ribs, diaphragm domes, stomach and bowel gas), adds "
             "free-air crescents under the diaphragm to positive cases and mimics (large gastric bubble, basal "
             "lucency, colonic interposition, effusion, ...) to negative ones, passes them through vendor-specific "
             "detector models of 13 hospitals (fixed and portable units) and writes them as DICOM. No patient data "
             "is involved. %s",
             r->o.full ? "Models were trained with the study's full protocol."
                       : "Models were trained in a fast demo configuration (reduced resolution and epochs, no ImageNet "
                         "weights), far from the study's protocol.");
    fa_json_write_string(f, buf);
    fprintf(f, ",\n  \"preset\": \"%s\",\n  \"seed\": %llu,\n  \"images_included\": %d,\n  \"patients\": %d",
            r->o.preset, r->o.seed, rows, patients);
    fputs(",\n  \"split_protocol\": ", f);
    snprintf(buf, sizeof buf,
             "train %d images (%d+/%d-) and validation %d (%d+/%d-) drawn only from fixed Philips units at the "
             "academic hospital (the study's 375+/375- and 45+/90-, scaled to the pool); test %d (%d+/%d-): "
             "portable units, other vendors and hospitals, and pool leftovers; by patient",
             part[0][0], part[0][1], part[0][2], part[1][0], part[1][1], part[1][2], part[2][0], part[2][1],
             part[2][2]);
    fa_json_write_string(f, buf);
    fputs(",\n  \"training\": ", f);
    snprintf(buf, sizeof buf, "%s; %d epoch(s); %s px; batch %d; SGD lr %g momentum 0.9, /10 every %d epochs%s; "
             "flips + rotation 15; %s; checkpoint with the lowest validation loss; bf16 keeps fp32 master weights",
             archs, r->o.epochs, r->o.full ? "224 (inception_v3 299)" : num(r, 15, r->o.size), r->o.full ? 256 : 16,
             r->o.lr, fast_step_size(r), r->o.full ? "" : ", 1 warm-up epoch, weight decay 1e-4",
             r->o.pretrained_dir ? "ImageNet initialisation" : "random initialisation");
    fa_json_write_string(f, buf);
    fprintf(f, ",\n  \"full_protocol\": %s\n}\n", r->o.full ? "true" : "false");
    return demo_out_close(&o, FA_OK, err);
}

static fa_status stage_eval(demo_run *r, fa_error *err) {
    static const char *const outs[] = {"study/metrics.json", "study/cohort.json", NULL};
    static const char *const deps[] = {"score", NULL};
    char params[512];
    snprintf(params, sizeof params, "eval group_by=%s seed=%llu rule=%s\n", demo_group_columns(), r->o.seed,
             DEMO_PRIMARY_RULE);
    if (!stage_enter(r, "eval", "metrics with 95% CIs, operating points locked on validation, subgroups", params,
                     outs, deps))
        return FA_OK;
    fa_status st = demo_mkdirs(r->study, err);
    if (st != FA_OK) return st;
    const char *argv[] = {"eval", "--predictions", r->scores, "--group-by", demo_group_columns(), "-o", r->study,
                          "--seed", num(r, 0, (long long)r->o.seed), "--primary", DEMO_PRIMARY_RULE, "--quiet", NULL};
    if ((st = run_cmd(r, cmd_eval, argv, err)) != FA_OK) return st;
    char p[DEMO_PATH_MAX];
    if ((st = demo_join(p, sizeof p, r->study, "metrics.json", err)) != FA_OK || (st = need_file(p, err)) != FA_OK)
        return st;
    /* what the report shows besides the metrics: the cohort, the flow and
     * split composition (the split manifest), the configurations */
    if ((st = write_cohort_json(r, err)) != FA_OK) return st;
    if ((st = demo_join(p, sizeof p, r->study, "manifest.csv", err)) != FA_OK ||
        (st = demo_copy_file(r->split, p, err)) != FA_OK)
        return st;
    for (int a = 0; a < r->n_arch; a++) {
        char name[128];
        snprintf(name, sizeof name, "config_train_%s.txt", r->arch[a]);
        if ((st = demo_join(p, sizeof p, r->study, name, err)) != FA_OK ||
            (st = demo_copy_file(r->conf[a], p, err)) != FA_OK)
            return st;
    }
    return stage_leave(r, "eval", params, err);
}

/* Read work/models.csv (model,run_dir,val_auc) and pick the model with the
 * highest validation AUC; ties go to the first. */
static fa_status best_model(demo_run *r, int *best, double *auc, fa_error *err) {
    csv_table t;
    memset(&t, 0, sizeof t);
    fa_status st = csv_read_file(r->models_csv, &t, err);
    if (st != FA_OK) return st;
    int mc = csv_column(&t, "model"), vc = csv_column(&t, "val_auc");
    *best = 0;
    *auc = NAN;
    for (int a = 0; a < r->n_arch; a++) {
        for (int row = 0; row < t.n_rows; row++) {
            if (strcmp(csv_cell(&t, row, mc), r->arch[a])) continue;
            double v = strtod(csv_cell(&t, row, vc), NULL);
            if (isfinite(v) && (!isfinite(*auc) || v > *auc)) *auc = v, *best = a;
        }
    }
    csv_free(&t);
    return FA_OK;
}

static fa_status stage_cam(demo_run *r, fa_error *err) {
    static const char *const with_cam[] = {"study/cam/index.csv", NULL};
    const char *const *outs = cmd_cam ? with_cam : NULL;
    static const char *const deps[] = {"eval", NULL};
    char params[256];
    snprintf(params, sizeof params, "cam available=%d archs=%d\n", cmd_cam != NULL, r->n_arch);
    if (!stage_enter(r, "cam", "Grad-CAM gallery of true/false positives and negatives", params, outs, deps))
        return FA_OK;
    if (!cmd_cam) {
        fprintf(stderr, "demo: freeair cam is not available in this build; the report will have no Grad-CAM gallery\n");
        return stage_leave(r, "cam", params, err);
    }
    int best;
    double auc;
    fa_status st = best_model(r, &best, &auc, err);
    if (st != FA_OK) return st;
    char camdir[DEMO_PATH_MAX], preds[DEMO_PATH_MAX];
    if ((st = demo_join(camdir, sizeof camdir, r->study, "cam", err)) != FA_OK ||
        (st = demo_join(preds, sizeof preds, r->study, "predictions.csv", err)) != FA_OK)
        return st;
    /* the model the summary reports (best validation AUC); --all-positives
     * adds every test positive to the localisation scores */
    const char *argv[20] = {"cam", "--model", r->train_dir[best], "--predictions", preds, "--manifest", r->split,
                            "--name", r->arch[best], "--max-side", "512", "--all-positives", "-o", camdir};
    int k = 14;
    if (r->o.threads > 0) argv[k++] = "--threads", argv[k++] = num(r, 0, r->o.threads);
    if (r->o.quiet) argv[k++] = "--quiet";
    argv[k] = NULL;
    if ((st = run_cmd(r, cmd_cam, argv, err)) != FA_OK) return st;
    char index[DEMO_PATH_MAX];
    if ((st = demo_join(index, sizeof index, camdir, "index.csv", err)) != FA_OK ||
        (st = need_file(index, err)) != FA_OK)
        return st;
    return stage_leave(r, "cam", params, err);
}

static fa_status stage_report(demo_run *r, fa_error *err) {
    static const char *const outs[] = {"report.html", "report.json", NULL};
    static const char *const deps[] = {"eval", "cam", NULL};
    const char *params = "report\n";
    if (!stage_enter(r, "report", "self-contained report.html and report.json", params, outs, deps)) return FA_OK;
    const char *argv[] = {"report", r->study, "-o", r->html, "--json", r->json, NULL};
    fa_status st = run_cmd(r, cmd_report, argv, err);
    if (st != FA_OK) return st;
    jsonv v;
    if ((st = need_file(r->html, err)) != FA_OK || (st = jsonv_read_file(r->json, &v, err)) != FA_OK) return st;
    jsonv_free(&v);
    return stage_leave(r, "report", params, err);
}

/* ------------------------------------------------------------------------ */
/* Summary                                                                   */

static fa_status print_summary(demo_run *r, double seconds, fa_error *err) {
    int best;
    double val_auc;
    fa_status st = best_model(r, &best, &val_auc, err);
    if (st != FA_OK) return st;
    char metrics[DEMO_PATH_MAX];
    if ((st = demo_join(metrics, sizeof metrics, r->study, "metrics.json", err)) != FA_OK) return st;
    demo_summary s;
    if ((st = demo_read_summary(metrics, r->arch[best], DEMO_PRIMARY_RULE, &s, err)) != FA_OK) return st;
    jsonv sj;
    if ((st = jsonv_read_file(r->split_json, &sj, err)) != FA_OK) return st;
    const jsonv *parts = jsonv_get(&sj, "parts");
    int n = (int)jsonv_number(jsonv_get(&sj, "ok")), pat = (int)jsonv_number(jsonv_get(&sj, "patients"));
    int ntr = (int)jsonv_number(jsonv_path(parts, "train.images"));
    int nva = (int)jsonv_number(jsonv_path(parts, "val.images"));
    int nte = (int)jsonv_number(jsonv_path(parts, "test.images"));
    int pos = (int)(jsonv_number(jsonv_path(parts, "train.pos")) + jsonv_number(jsonv_path(parts, "val.pos")) +
                    jsonv_number(jsonv_path(parts, "test.pos")));
    jsonv_free(&sj);
    printf("\nfreeair demo finished in %.0f s (%.1f min). Report: %s (numbers: %s)\n", seconds, seconds / 60, r->html,
           r->json);
    printf("cohort: SYNTHETIC '%s' preset, %d images of %d patients (%d with free air); train %d, validation %d, "
           "test %d images\n",
           r->o.preset, n, pat, pos, ntr, nva, nte);
    printf("best model by validation AUC: %s (%d epoch(s), %s): test AUC %.3f (95%% CI %.3f-%.3f, DeLong; "
           "n=%d, %d+/%d-)\n",
           s.model, r->o.epochs, r->o.full ? "full protocol" : "fast demo configuration", s.auc, s.auc_lo, s.auc_hi,
           s.n, s.n_pos, s.n_neg);
    printf("at the threshold %s on validation (%s, %.4g): sensitivity %.3f (%.3f-%.3f), specificity %.3f "
           "(%.3f-%.3f)\n",
           s.locked ? "locked" : "NOT locked", s.rule, s.threshold, s.sens, s.sens_lo, s.sens_hi, s.spec, s.spec_lo,
           s.spec_hi);
    fa_jsonl_begin(&r->ctx.log, "summary");
    fa_jsonl_str(&r->ctx.log, "report", r->html);
    fa_jsonl_str(&r->ctx.log, "best_model", s.model);
    fa_jsonl_num(&r->ctx.log, "val_auc", val_auc);
    fa_jsonl_num(&r->ctx.log, "test_auc", s.auc);
    fa_jsonl_num(&r->ctx.log, "test_auc_lo", s.auc_lo);
    fa_jsonl_num(&r->ctx.log, "test_auc_hi", s.auc_hi);
    fa_jsonl_num(&r->ctx.log, "threshold", s.threshold);
    fa_jsonl_num(&r->ctx.log, "sensitivity", s.sens);
    fa_jsonl_num(&r->ctx.log, "specificity", s.spec);
    fa_jsonl_num(&r->ctx.log, "seconds", seconds);
    fa_jsonl_end(&r->ctx.log);
    return FA_OK;
}

/* ------------------------------------------------------------------------ */
/* Options                                                                   */

static int parse_ll(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return -1;
    *out = v;
    return 0;
}

static int usage_error(const char *fmt, const char *a) {
    fprintf(stderr, "freeair demo: ");
    fprintf(stderr, fmt, a);
    fprintf(stderr, " (see freeair demo --help)\n");
    return 2;
}

/* Returns -1 when parsing succeeded, else the exit status. */
static int parse_args(int argc, char **argv, demo_opts *o) {
    memset(o, 0, sizeof *o);
    o->out = "freeair-demo";
    o->difficulty = "default";
    o->precision = -1;
    o->seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long long x;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            demo_usage(stdout);
            return 0;
        } else if (!strcmp(a, "--full")) {
            o->full = 1;
        } else if (!strcmp(a, "--force")) {
            o->force = 1;
        } else if (!strcmp(a, "--quiet")) {
            o->quiet = 1;
        } else if (!v) {
            return usage_error("%s needs a value, or is unknown", a);
        } else if (!strcmp(a, "--out") || !strcmp(a, "-o")) {
            o->out = v, i++;
        } else if (!strcmp(a, "--preset")) {
            if (strcmp(v, "small") && strcmp(v, "tiny")) return usage_error("--preset: '%s' is not small or tiny", v);
            o->preset = v, i++;
        } else if (!strcmp(a, "--archs")) {
            o->archs = v, i++;
        } else if (!strcmp(a, "--difficulty")) {
            double d;
            fa_error e;
            if (synth_parse_difficulty(v, &d, &e) != FA_OK)
                return usage_error("--difficulty: '%s' is not easy, default, hard or a number in 0.25..3", v);
            o->difficulty = v, i++;
        } else if (!strcmp(a, "--pretrained-dir")) {
            o->pretrained_dir = v, i++;
        } else if (!strcmp(a, "--epochs")) {
            if (parse_ll(v, 1, 10000, &x)) return usage_error("--epochs: '%s' is not a number in 1..10000", v);
            o->epochs = (int)x, i++;
        } else if (!strcmp(a, "--size")) {
            if (parse_ll(v, 32, 1024, &x)) return usage_error("--size: '%s' is not a number in 32..1024", v);
            o->size = (int)x, i++;
        } else if (!strcmp(a, "--threads")) {
            if (parse_ll(v, 1, 1024, &x)) return usage_error("--threads: '%s' is not a number in 1..1024", v);
            o->threads = (int)x, i++;
        } else if (!strcmp(a, "--seed")) {
            if (parse_ll(v, 0, LLONG_MAX, &x)) return usage_error("--seed: '%s' is not a non-negative number", v);
            o->seed = (unsigned long long)x, i++;
        } else if (!strcmp(a, "--precision")) {
            if (strcmp(v, "fp32") && strcmp(v, "bf16")) return usage_error("--precision: '%s' is not fp32 or bf16", v);
            o->precision = !strcmp(v, "bf16"), i++;
        } else if (!strcmp(a, "--lr")) {
            char *end;
            double d = strtod(v, &end);
            if (end == v || *end || !(d > 0 && d < 10)) return usage_error("--lr: '%s' is not a number in (0, 10)", v);
            o->lr = d, i++;
        } else {
            return usage_error("unknown option '%s'", a);
        }
    }
    if (o->full && o->preset) return usage_error("%s: --full always uses the paper preset", "--preset");
    if (o->pretrained_dir && !o->full)
        return usage_error("%s is for --full (the fast demo trains from random initialisation)", "--pretrained-dir");
    if (o->full && o->size) return usage_error("%s: --full uses each architecture's own input size", "--size");
    if (!o->preset) o->preset = o->full ? "paper" : "small";
    int tiny = !strcmp(o->preset, "tiny");
    if (!o->archs) o->archs = o->full ? full_archs : fast_archs;
    if (!o->epochs) o->epochs = o->full ? 100 : tiny ? 1 : 6;
    if (!o->size && !o->full) o->size = tiny ? 64 : 128;
    /* configs/study.conf's 0.001 for both: from random weights at batch 16,
     * 0.01 sends the training loss up within an epoch, in freeair as in
     * PyTorch (torchvision resnet50, same data and settings) */
    if (o->lr == 0) o->lr = 0.001;
    return -1;
}

/* bf16 where the CPU runs it natively, unless --precision says otherwise.
 * Every architecture trains faster in bf16 here, ResNeXt's grouped
 * convolutions included since their weight gradients use an fp32 kernel
 * (bench/run.sh engine-full, batch 16, 224 px, quiet: 274 vs 510 ms/image for
 * resnext101_32x8d; docs/performance.md). */
static int demo_bf16(const demo_opts *o) {
    if (o->precision >= 0) return o->precision;
    return exec_bf16_supported();
}

static fa_status setup(demo_run *r, fa_error *err) {
    /* architectures */
    const char *s = r->o.archs;
    while (*s) {
        size_t n = strcspn(s, ",");
        if (n == 0 || n >= sizeof r->arch[0])
            return fa_error_set(err, FA_ERR_ARG, "--archs: bad list '%s'", r->o.archs);
        if (r->n_arch == DEMO_MAX_ARCHS) return fa_error_set(err, FA_ERR_ARG, "--archs: at most %d", DEMO_MAX_ARCHS);
        memcpy(r->arch[r->n_arch], s, n);
        r->arch[r->n_arch][n] = '\0';
        if (!model_is_known(r->arch[r->n_arch]))
            return fa_error_set(err, FA_ERR_ARG, "--archs: unknown architecture '%s' (valid: %s)", r->arch[r->n_arch],
                                model_arch_list());
        for (int b = 0; b < r->n_arch; b++)
            if (!strcmp(r->arch[b], r->arch[r->n_arch]))
                return fa_error_set(err, FA_ERR_ARG, "--archs: '%s' is listed twice", r->arch[b]);
        r->n_arch++;
        s += n;
        if (*s == ',') s++;
    }
    if (r->n_arch == 0) return fa_error_set(err, FA_ERR_ARG, "--archs: empty list");
    if (r->o.pretrained_dir) {
        for (int a = 0; a < r->n_arch; a++) {
            char p[DEMO_PATH_MAX];
            snprintf(p, sizeof p, "%s/%s.safetensors", r->o.pretrained_dir, r->arch[a]);
            if (!demo_exists(p))
                return fa_error_set(err, FA_ERR_NOT_FOUND, "%s: no ImageNet weights for %s", p, r->arch[a]);
        }
    }
    r->bf16 = demo_bf16(&r->o);
    /* folders: absolute, so that manifests and configs work from anywhere */
    fa_status st = demo_mkdirs(r->o.out, err);
    if (st != FA_OK) return st;
    if (!realpath(r->o.out, r->ctx.out)) return fa_error_set(err, FA_ERR_IO, "%s: %s", r->o.out, strerror(errno));
    /* paths go into `key = "value"` config lines */
    if (strpbrk(r->ctx.out, "\"\n\r"))
        return fa_error_set(err, FA_ERR_ARG, "%s: the output folder's path may not hold quotes or line breaks",
                            r->ctx.out);
    r->ctx.force = r->o.force;
    const char *out = r->ctx.out;
#define J(dst, name)                                                                 \
    do {                                                                             \
        if ((st = demo_join(dst, sizeof dst, out, name, err)) != FA_OK) return st;   \
    } while (0)
    J(r->cohort, "cohort");
    J(r->work, "work");
    J(r->logs, "logs");
    J(r->study, "study");
    J(r->truth, "work/truth.csv");
    J(r->manifest, "work/manifest.csv");
    J(r->split, "work/split.csv");
    J(r->split_json, "work/split.json");
    J(r->cache, "work/cache");
    J(r->scores, "work/scores.csv");
    J(r->models_csv, "work/models.csv");
    J(r->html, "report.html");
    J(r->json, "report.json");
    for (int a = 0; a < r->n_arch; a++) {
        char rel[128];
        snprintf(rel, sizeof rel, "train/%s", r->arch[a]);
        J(r->train_dir[a], rel);
        snprintf(rel, sizeof rel, "train/%s.conf", r->arch[a]);
        J(r->conf[a], rel);
    }
#undef J
    if ((st = demo_mkdirs(r->work, err)) != FA_OK || (st = demo_mkdirs(r->logs, err)) != FA_OK) return st;
    char logp[DEMO_PATH_MAX];
    if ((st = demo_join(logp, sizeof logp, out, "demo.jsonl", err)) != FA_OK) return st;
    if (fa_jsonl_open(&r->ctx.log, logp) != 0) return fa_error_set(err, FA_ERR_IO, "%s: cannot open the log", logp);
    r->n_stages = 8 + r->n_arch;
    return FA_OK;
}

int cmd_demo(int argc, char **argv) {
    demo_run *r = calloc(1, sizeof *r);
    if (!r) {
        fprintf(stderr, "freeair demo: out of memory\n");
        return 1;
    }
    int rc = parse_args(argc, argv, &r->o);
    if (rc >= 0) {
        free(r);
        return rc;
    }
    fa_error err;
    fa_error_clear(&err);
    r->ctx.t_start = fa_now_seconds();
    fa_status st = setup(r, &err);
    if (st != FA_OK) {
        fa_jsonl_close(&r->ctx.log);
        free(r);
        cli_fail("demo", &err);
        return st == FA_ERR_ARG ? 2 : 1; /* a bad --archs list is a usage error */
    }
    fprintf(stderr, "freeair demo: %s mode, '%s' cohort, %s, %d epoch(s), output in %s\n",
            r->o.full ? "full-protocol" : "fast", r->o.preset, r->o.archs, r->o.epochs, r->ctx.out);
    fa_jsonl_begin(&r->ctx.log, "demo_start");
    fa_jsonl_str(&r->ctx.log, "out", r->ctx.out);
    fa_jsonl_str(&r->ctx.log, "mode", r->o.full ? "full" : "fast");
    fa_jsonl_str(&r->ctx.log, "preset", r->o.preset);
    fa_jsonl_str(&r->ctx.log, "archs", r->o.archs);
    fa_jsonl_int(&r->ctx.log, "epochs", r->o.epochs);
    fa_jsonl_int(&r->ctx.log, "size", r->o.full ? 0 : r->o.size);
    fa_jsonl_str(&r->ctx.log, "precision", r->o.precision < 0 ? "auto" : r->o.precision ? "bf16" : "fp32");
    fa_jsonl_int(&r->ctx.log, "threads", r->o.threads);
    fa_jsonl_int(&r->ctx.log, "seed", (int64_t)r->o.seed);
    fa_jsonl_end(&r->ctx.log);

    const char *failed = NULL;
    if (!failed && (st = stage_synth(r, &err)) != FA_OK) failed = "synth";
    if (!failed && (st = stage_scan(r, &err)) != FA_OK) failed = "scan";
    if (!failed && (st = stage_split(r, &err)) != FA_OK) failed = "split";
    if (!failed && (st = stage_cache(r, &err)) != FA_OK) failed = "cache";
    for (int a = 0; a < r->n_arch && !failed; a++) {
        if ((st = stage_train(r, a, &err)) != FA_OK) {
            snprintf(r->failed_stage, sizeof r->failed_stage, "train-%s", r->arch[a]);
            failed = r->failed_stage;
        }
    }
    if (!failed && (st = stage_score(r, &err)) != FA_OK) failed = "score";
    if (!failed && (st = stage_eval(r, &err)) != FA_OK) failed = "eval";
    if (!failed && (st = stage_cam(r, &err)) != FA_OK) failed = "cam";
    if (!failed && (st = stage_report(r, &err)) != FA_OK) failed = "report";
    double seconds = fa_now_seconds() - r->ctx.t_start;
    if (!failed && (st = print_summary(r, seconds, &err)) != FA_OK) failed = "summary";
    if (failed) {
        fa_jsonl_begin(&r->ctx.log, "demo_failed");
        fa_jsonl_str(&r->ctx.log, "stage", failed);
        fa_jsonl_str(&r->ctx.log, "error", err.msg);
        fa_jsonl_end(&r->ctx.log);
        fprintf(stderr, "freeair demo: stage %s: %s\n", failed, err.msg[0] ? err.msg : "failed");
        rc = 1;
    } else {
        fa_jsonl_begin(&r->ctx.log, "demo_done");
        fa_jsonl_num(&r->ctx.log, "seconds", seconds);
        fa_jsonl_end(&r->ctx.log);
        rc = 0;
    }
    fa_jsonl_close(&r->ctx.log);
    free(r);
    return rc;
}
