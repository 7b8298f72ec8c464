/* trainconf.h - the training configuration: one table of keys that is at
 * once the config-file syntax, the command-line flags of `freeair train`, the
 * --help text and the canonical text stored in every checkpoint.
 *
 * File syntax: one `key = value` per line; `#` starts a comment (outside
 * double quotes); blank lines are ignored; a value may be double-quoted to keep
 * a `#` or surrounding spaces. Every key is also a flag `--key value` (or
 * `--key=value`) that overrides the file. An unknown key, a duplicated key in
 * one file or a bad value is an error naming the file, the line and the key.
 */
#ifndef FA_TRAINCONF_H
#define FA_TRAINCONF_H

#include <stdint.h>
#include <stdio.h>

#include "core/fa_status.h"

#define TRAINCONF_PATH_MAX 1024
#define TRAINCONF_NAME_MAX 64
#define TRAINCONF_MAX_MILESTONES 32

typedef enum trainconf_schedule {
    TRAINCONF_SCHED_CONSTANT,
    TRAINCONF_SCHED_STEP,
    TRAINCONF_SCHED_MULTISTEP,
    TRAINCONF_SCHED_COSINE
} trainconf_schedule;

typedef enum trainconf_sampler { TRAINCONF_SAMPLER_SHUFFLE, TRAINCONF_SAMPLER_BALANCED } trainconf_sampler;

typedef enum trainconf_precision { TRAINCONF_FP32, TRAINCONF_BF16 } trainconf_precision;

typedef struct train_config {
    /* model */
    char arch[TRAINCONF_NAME_MAX];
    int image_size; /* 0 = the architecture's default */
    char pretrained[TRAINCONF_PATH_MAX];
    /* optimisation */
    int epochs;
    double lr, momentum, weight_decay;
    int nesterov;
    int schedule; /* trainconf_schedule */
    int step_size;
    double gamma;
    int milestones[TRAINCONF_MAX_MILESTONES];
    int n_milestones;
    int warmup_epochs;
    double warmup_factor; /* lr multiplier at the first warm-up step */
    double min_lr;        /* cosine floor (eta_min) */
    int batch_size, micro_batch, val_batch;
    int drop_last;
    /* augmentation (training only) */
    double hflip, vflip; /* probabilities */
    double rotation;     /* degrees, uniform in [-r, r] */
    double scale;        /* zoom factor uniform in [1-s, 1+s] */
    double translate;    /* shift uniform in [-t, t] x image size */
    double brightness;   /* factor uniform in [1-b, 1+b] */
    double contrast;     /* factor uniform in [1-c, 1+c] around the mean */
    /* class imbalance */
    double pos_weight;   /* BCE pos_weight; <= 0 means "auto" (n_neg / n_pos) */
    int sampler;         /* trainconf_sampler */
    /* execution */
    int precision;       /* trainconf_precision */
    int threads;         /* oneDNN/OpenMP threads, 0 = default */
    int loader_threads;  /* augmentation workers */
    int ram_cache_mb;    /* decoded source images kept in memory */
    uint64_t seed;
    /* data */
    char manifest[TRAINCONF_PATH_MAX];
    char cache[TRAINCONF_PATH_MAX];
    char path_column[TRAINCONF_NAME_MAX];
    char label_column[TRAINCONF_NAME_MAX];
    char split_column[TRAINCONF_NAME_MAX];
    char train_split[TRAINCONF_NAME_MAX];
    char val_split[TRAINCONF_NAME_MAX];
    /* output and model selection */
    char out[TRAINCONF_PATH_MAX];
    int keep_best_auc;
    int patience;         /* early stopping on val loss, 0 = off */
    int checkpoint_steps; /* also write last.safetensors every N steps, 0 = per epoch only */
    char operating_point[TRAINCONF_NAME_MAX]; /* none | youden | sens:X | spec:X */
    int max_steps;        /* stop after this many optimiser steps in total, 0 = no limit */
    /* data-parallel runs under mpirun (dist.h) */
    int sync_bn;          /* exact synchronised BatchNorm across ranks (docs/distributed.md) */
} train_config;

/* Every key set to its documented default. */
void trainconf_defaults(train_config *c);

/* Set one key from text. `where` names the source for messages
 * ("study.conf:12" or "command line"). Unknown key -> FA_ERR_ARG
 * "<where>: unknown key 'k'"; bad value -> FA_ERR_ARG naming the key. */
fa_status trainconf_set(train_config *c, const char *key, const char *value, const char *where, fa_error *err);

/* Parse a config file over c (keys not in the file keep their value). Errors
 * name path:line and the key; a missing file is FA_ERR_IO naming it. When
 * given is non-NULL (trainconf_key_count() entries), given[i] is set to 1 for
 * every key i the file sets. */
fa_status trainconf_load_file(train_config *c, const char *path, int *given, fa_error *err);

/* Parse config text (same syntax; `name` is used in messages). Used for the
 * config stored in checkpoints. */
fa_status trainconf_parse_text(train_config *c, const char *name, const char *text, int *given, fa_error *err);

/* Index of a key in the table, or -1. */
int trainconf_key_index(const char *key);

/* Cross-key checks after all sources are applied (required keys, micro_batch
 * <= batch_size, milestones increasing, ...). `where` names the source. */
fa_status trainconf_validate(const train_config *c, const char *where, fa_error *err);

/* Canonical text of every key ("key = value\n" in table order). Returns a
 * malloc'd string owned by the caller, NULL on OOM. Parsing it back with
 * trainconf_parse_text gives an identical config. */
char *trainconf_format(const train_config *c);

/* Value of one key as canonical text into buf; 0 if the key is unknown. */
int trainconf_get(const train_config *c, const char *key, char *buf, size_t cap);

/* 1 if key is a known config key. */
int trainconf_is_key(const char *key);

/* Key table introspection for --help and documentation. */
int trainconf_key_count(void);
const char *trainconf_key_name(int i);
const char *trainconf_key_help(int i);
const char *trainconf_key_default(int i);

/* Write "  --key VALUE   help (default: d)" lines for every key. */
void trainconf_print_help(FILE *f);

/* Keys that may differ between a checkpoint's config and a resumed run
 * without breaking exact continuation (epochs, threads, out, patience, ...). */
int trainconf_key_resume_mutable(const char *key);

const char *trainconf_schedule_name(int s);
const char *trainconf_precision_name(int p);

#endif
