/* cmd_train.c - `freeair train`: read the configuration (defaults, then the
 * --config file, then --key value flags), optionally reconcile it with a
 * checkpoint to resume, and run the training loop. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "train/ckpt.h"
#include "train/trainconf.h"
#include "train/trainer.h"

static void train_usage(FILE *f) {
    fprintf(f,
            "usage: freeair train [--config FILE] [--key value ...]\n"
            "       freeair train --resume DIR_OR_CHECKPOINT [--key value ...]\n"
            "\n"
            "Fine-tunes a CNN on the train split of a manifest, validates every epoch and\n"
            "keeps last.safetensors, best.safetensors (lowest validation loss) and\n"
            "train.jsonl in --out. docs/training.md describes every key.\n"
            "\n"
            "  --config FILE       key = value file; flags given here override it\n"
            "  --resume PATH       continue a run exactly from a checkpoint (or a folder\n"
            "                      holding last.safetensors); its stored config is used\n"
            "  --quiet             no progress line\n"
            "\n"
            "Config keys (also flags --key value or --key=value):\n");
    trainconf_print_help(f);
}

typedef struct flag_kv {
    const char *key;
    const char *value;
    char keybuf[64];
} flag_kv;

int cmd_train(int argc, char **argv) {
    const char *config_path = NULL, *resume = NULL;
    int quiet = 0;
    int nk = trainconf_key_count();
    flag_kv *flags = calloc((size_t)argc + 1, sizeof *flags);
    int *given = calloc((size_t)nk, sizeof *given);
    int n_flags = 0, rc = 2;
    fa_error err = {0};
    if (!flags || !given) {
        fprintf(stderr, "freeair train: out of memory\n");
        rc = 1;
        goto out;
    }
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            train_usage(stdout);
            rc = 0;
            goto out;
        }
        if (!strcmp(a, "--quiet")) {
            quiet = 1;
            continue;
        }
        if (strncmp(a, "--", 2)) {
            fprintf(stderr, "freeair train: unexpected argument '%s' (options are --key value)\n", a);
            goto out;
        }
        flag_kv *f = &flags[n_flags];
        const char *eq = strchr(a, '=');
        size_t klen = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
        if (klen == 0 || klen >= sizeof f->keybuf) {
            fprintf(stderr, "freeair train: bad option '%s'\n", a);
            goto out;
        }
        memcpy(f->keybuf, a + 2, klen);
        f->keybuf[klen] = '\0';
        f->key = f->keybuf;
        if (eq) {
            f->value = eq + 1;
        } else {
            if (i + 1 >= argc) {
                fprintf(stderr, "freeair train: option '--%s' needs a value\n", f->key);
                goto out;
            }
            f->value = argv[++i];
        }
        if (!strcmp(f->key, "config")) {
            config_path = f->value;
            continue;
        }
        if (!strcmp(f->key, "resume")) {
            resume = f->value;
            continue;
        }
        if (!trainconf_is_key(f->key)) {
            fprintf(stderr, "freeair train: command line: unknown option '--%s' (see `freeair train --help`)\n", f->key);
            goto out;
        }
        n_flags++;
    }
    if (!config_path && !resume && n_flags == 0) {
        fprintf(stderr, "freeair train: give --config FILE, --resume PATH or --key value options (see --help)\n");
        goto out;
    }
    rc = 1;
    train_config user, c;
    trainconf_defaults(&user);
    if (config_path && trainconf_load_file(&user, config_path, given, &err) != FA_OK) {
        rc = cli_fail("train", &err);
        goto out;
    }
    for (int i = 0; i < n_flags; i++) {
        if (trainconf_set(&user, flags[i].key, flags[i].value, "command line", &err) != FA_OK) {
            rc = cli_fail("train", &err);
            goto out;
        }
        given[trainconf_key_index(flags[i].key)] = 1;
    }
    char resolved[4096] = "";
    if (resume) {
        weights_file *f;
        train_config stored;
        ckpt_state s;
        if (ckpt_open(&f, resume, resolved, sizeof resolved, &err) != FA_OK) {
            rc = cli_fail("train", &err);
            goto out;
        }
        fa_status st = ckpt_read_state(f, &stored, &s, &err);
        weights_close(f);
        if (st == FA_OK && !given[trainconf_key_index("out")]) {
            /* default: keep writing next to the checkpoint we resume from */
            char dir[sizeof resolved];
            snprintf(dir, sizeof dir, "%s", resolved);
            char *slash = strrchr(dir, '/');
            if (slash) *slash = '\0';
            else snprintf(dir, sizeof dir, ".");
            st = trainconf_set(&stored, "out", dir, "checkpoint folder", &err);
        }
        if (st == FA_OK) st = trainer_resume_config(&stored, &user, given, resolved, &c, &err);
        if (st != FA_OK) {
            rc = cli_fail("train", &err);
            goto out;
        }
        if (s.epoch >= c.epochs) {
            fprintf(stderr, "freeair train: %s: the run already finished its %d epochs (raise --epochs to continue)\n",
                    resolved, c.epochs);
            goto out;
        }
    } else {
        c = user;
    }
    if (trainconf_validate(&c, config_path ? config_path : resume ? resolved : "command line", &err) != FA_OK) {
        rc = cli_fail("train", &err);
        goto out;
    }
    trainer_opts to = {resume ? resolved : NULL, quiet};
    trainer_result res;
    if (trainer_run(&c, &to, &res, &err) != FA_OK) {
        rc = cli_fail("train", &err);
        goto out;
    }
    printf("trained %d epoch(s), %lld step(s); best val loss %.6g at epoch %d; last val AUC %.4f%s; checkpoints in %s\n",
           res.epochs_done, (long long)res.global_step, res.best_val_loss, res.best_epoch, res.last_val_auc,
           res.stopped_early ? " (early stop)" : res.stopped_max_steps ? " (max_steps reached)" : "", c.out);
    rc = 0;
out:
    free(flags);
    free(given);
    return rc;
}
