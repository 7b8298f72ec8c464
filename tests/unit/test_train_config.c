/* test_train_config.c - the training config parser (file syntax, errors that
 * name file, line and key, canonical round trip), the learning-rate
 * schedules against PyTorch's closed forms, and resume reconciliation. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/fa_test.h"
#include "train/lrsched.h"
#include "train/trainconf.h"
#include "train/trainer.h"

FA_TEST_MAIN_STATE

static char tmpdir[256];

static const char *write_file(const char *name, const char *text) {
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    if (!f) {
        perror(path);
        exit(1);
    }
    fputs(text, f);
    fclose(f);
    return path;
}

/* Parse text as a config file; returns status and leaves the message. */
static fa_status load_text(train_config *c, const char *text, fa_error *err) {
    trainconf_defaults(c);
    return trainconf_load_file(c, write_file("t.conf", text), NULL, err);
}

static void test_defaults_and_parse(void) {
    train_config c;
    trainconf_defaults(&c);
    CHECK(!strcmp(c.arch, "resnet50"));
    CHECK(c.epochs == 100);
    CHECK_CLOSE(c.momentum, 0.9, 0, 0);
    CHECK(c.schedule == TRAINCONF_SCHED_STEP && c.step_size == 25);
    CHECK_CLOSE(c.gamma, 0.1, 0, 0);
    CHECK_CLOSE(c.rotation, 15, 0, 0);
    CHECK(c.batch_size == 256);
    CHECK(c.seed == 1);

    fa_error err = {0};
    fa_status st = load_text(&c,
                             "# the study\n"
                             "arch = densenet161   # trailing comment\n"
                             "  lr=0.01\n"
                             "\n"
                             "milestones = 10, 20,30\n"
                             "out = \"/tmp/with # hash\"\n"
                             "nesterov = yes\r\n"
                             "pos_weight = auto\n"
                             "schedule = multistep\n"
                             "precision = bf16\n"
                             "seed = 18446744073709551615\n"
                             "operating_point = spec:0.9\n",
                             &err);
    CHECK_MSG(st == FA_OK, "%s", err.msg);
    CHECK(!strcmp(c.arch, "densenet161"));
    CHECK_CLOSE(c.lr, 0.01, 0, 0);
    CHECK(c.n_milestones == 3 && c.milestones[0] == 10 && c.milestones[2] == 30);
    CHECK(!strcmp(c.out, "/tmp/with # hash"));
    CHECK(c.nesterov == 1);
    CHECK(c.pos_weight < 0);
    CHECK(c.schedule == TRAINCONF_SCHED_MULTISTEP);
    CHECK(c.precision == TRAINCONF_BF16);
    CHECK(c.seed == UINT64_MAX);
    CHECK(!strcmp(c.operating_point, "spec:0.9"));

    /* canonical text parses back to the same config, key by key */
    char *text = trainconf_format(&c);
    CHECK(text != NULL);
    train_config d;
    trainconf_defaults(&d);
    st = trainconf_parse_text(&d, "roundtrip", text, NULL, &err);
    CHECK_MSG(st == FA_OK, "%s", err.msg);
    char a[2048], b[2048];
    for (int i = 0; i < trainconf_key_count(); i++) {
        trainconf_get(&c, trainconf_key_name(i), a, sizeof a);
        trainconf_get(&d, trainconf_key_name(i), b, sizeof b);
        CHECK_MSG(!strcmp(a, b), "key %s: '%s' vs '%s'", trainconf_key_name(i), a, b);
    }
    char *text2 = trainconf_format(&d);
    CHECK(text2 && !strcmp(text, text2));
    free(text);
    free(text2);

    /* given[] marks exactly the keys a file sets */
    int given[128] = {0};
    CHECK(trainconf_key_count() <= 128);
    trainconf_defaults(&c);
    st = trainconf_load_file(&c, write_file("g.conf", "lr = 0.5\nepochs = 3\n"), given, &err);
    CHECK(st == FA_OK);
    int n_given = 0;
    for (int i = 0; i < trainconf_key_count(); i++) n_given += given[i];
    CHECK(n_given == 2 && given[trainconf_key_index("lr")] && given[trainconf_key_index("epochs")]);
}

/* Each bad input gives one line naming the file, the line and the key. */
static void expect_error(const char *text, const char *must_contain1, const char *must_contain2) {
    train_config c;
    fa_error err = {0};
    fa_status st = load_text(&c, text, &err);
    CHECK_MSG(st != FA_OK, "accepted: %s", text);
    CHECK_MSG(strstr(err.msg, must_contain1) != NULL, "'%s' lacks '%s'", err.msg, must_contain1);
    if (must_contain2) CHECK_MSG(strstr(err.msg, must_contain2) != NULL, "'%s' lacks '%s'", err.msg, must_contain2);
    CHECK_MSG(strchr(err.msg, '\n') == NULL, "multi-line message: %s", err.msg);
    CHECK_MSG(strstr(err.msg, "t.conf") != NULL, "message does not name the file: %s", err.msg);
}

static void test_errors(void) {
    expect_error("lr = 0.1\nlearning_rate = 0.1\n", "t.conf:2", "unknown key 'learning_rate'");
    expect_error("epochs = ten\n", "t.conf:1", "key 'epochs'");
    expect_error("epochs = 0\n", "t.conf:1", "outside");
    expect_error("lr = 1e-3x\n", "t.conf:1", "key 'lr'");
    expect_error("lr = nan\n", "t.conf:1", "key 'lr'");
    expect_error("\n\nlr 0.1\n", "t.conf:3", "key = value");
    expect_error("schedule = linear\n", "t.conf:1", "constant|step|multistep|cosine");
    expect_error("lr = 0.1\nlr = 0.2\n", "t.conf:2", "set twice");
    expect_error("out = \"abc\n", "t.conf:1", "unterminated");
    expect_error("milestones = 30,20\n", "t.conf:1", "increase");
    expect_error("nesterov = maybe\n", "t.conf:1", "key 'nesterov'");
    expect_error("pos_weight = -2\n", "t.conf:1", "key 'pos_weight'");
    expect_error("operating_point = spec:1.5\n", "t.conf:1", "key 'operating_point'");
    expect_error("hflip = 2\n", "t.conf:1", "key 'hflip'");
    expect_error("seed = -1\n", "t.conf:1", "key 'seed'");
    expect_error("= 3\n", "t.conf:1", "missing key");

    /* binary garbage and a missing file */
    train_config c;
    trainconf_defaults(&c);
    fa_error err = {0};
    char path[512];
    snprintf(path, sizeof path, "%s/bin.conf", tmpdir);
    FILE *f = fopen(path, "wb");
    fwrite("lr = 1\n\0\x01\x02", 1, 10, f);
    fclose(f);
    CHECK(trainconf_load_file(&c, path, NULL, &err) == FA_ERR_FORMAT);
    CHECK(strstr(err.msg, "bin.conf:2") != NULL);
    snprintf(path, sizeof path, "%s/missing.conf", tmpdir);
    CHECK(trainconf_load_file(&c, path, NULL, &err) == FA_ERR_IO);
    CHECK(strstr(err.msg, "missing.conf") != NULL);

    /* command-line overrides go through the same setter */
    CHECK(trainconf_set(&c, "lr", "0.5", "command line", &err) == FA_OK && c.lr == 0.5);
    CHECK(trainconf_set(&c, "lrr", "0.5", "command line", &err) == FA_ERR_ARG);
    CHECK(strstr(err.msg, "command line: unknown key 'lrr'") != NULL);

    /* cross-key validation */
    trainconf_defaults(&c);
    CHECK(trainconf_validate(&c, "x.conf", &err) == FA_ERR_ARG && strstr(err.msg, "manifest"));
    strcpy(c.manifest, "m.csv");
    strcpy(c.out, "o");
    CHECK(trainconf_validate(&c, "x.conf", &err) == FA_OK);
    c.micro_batch = 512;
    CHECK(trainconf_validate(&c, "x.conf", &err) == FA_ERR_ARG && strstr(err.msg, "micro_batch"));
    c.micro_batch = 0;
    c.schedule = TRAINCONF_SCHED_MULTISTEP;
    CHECK(trainconf_validate(&c, "x.conf", &err) == FA_ERR_ARG && strstr(err.msg, "milestones"));
}

static void test_schedules(void) {
    train_config c;
    trainconf_defaults(&c);
    c.lr = 0.01;
    /* the study: lr / 10 every 25 epochs (StepLR(step_size=25, gamma=0.1)) */
    CHECK_CLOSE(lrsched_lr(&c, 0, 0, 3), 0.01, 0, 1e-15);
    CHECK_CLOSE(lrsched_lr(&c, 24, 2, 3), 0.01, 0, 1e-15);
    CHECK_CLOSE(lrsched_lr(&c, 25, 0, 3), 0.001, 0, 1e-12);
    CHECK_CLOSE(lrsched_lr(&c, 50, 0, 3), 0.0001, 0, 1e-12);
    CHECK_CLOSE(lrsched_lr(&c, 99, 0, 3), 0.00001, 0, 1e-12);
    c.schedule = TRAINCONF_SCHED_MULTISTEP;
    c.n_milestones = 2;
    c.milestones[0] = 3;
    c.milestones[1] = 7;
    c.gamma = 0.5;
    CHECK_CLOSE(lrsched_lr(&c, 2, 0, 1), 0.01, 0, 1e-15);
    CHECK_CLOSE(lrsched_lr(&c, 3, 0, 1), 0.005, 0, 1e-15);
    CHECK_CLOSE(lrsched_lr(&c, 7, 0, 1), 0.0025, 0, 1e-15);
    c.schedule = TRAINCONF_SCHED_COSINE;
    c.epochs = 10;
    c.min_lr = 0.001;
    CHECK_CLOSE(lrsched_lr(&c, 0, 0, 1), 0.01, 0, 1e-15);
    CHECK_CLOSE(lrsched_lr(&c, 5, 0, 1), 0.001 + 0.009 * 0.5, 0, 1e-12);
    /* CosineAnnealingLR: eta_min + (base - eta_min)(1 + cos(pi t/T))/2 */
    CHECK_CLOSE(lrsched_lr(&c, 3, 0, 1), 0.001 + 0.009 * (1 + cos(M_PI * 0.3)) / 2, 0, 1e-12);
    /* warm-up: linear per step from warmup_factor * lr */
    c.schedule = TRAINCONF_SCHED_CONSTANT;
    c.warmup_epochs = 2;
    c.warmup_factor = 0.1;
    CHECK_CLOSE(lrsched_lr(&c, 0, 0, 4), 0.001, 0, 1e-12);
    CHECK_CLOSE(lrsched_lr(&c, 1, 0, 4), 0.01 * (0.1 + 0.9 * 4 / 8.0), 0, 1e-12);
    CHECK_CLOSE(lrsched_lr(&c, 2, 0, 4), 0.01, 0, 1e-15);
}

static void test_resume_config(void) {
    train_config stored, user, out;
    trainconf_defaults(&stored);
    strcpy(stored.manifest, "m.csv");
    strcpy(stored.out, "run1");
    stored.epochs = 5;
    user = stored;
    int given[128] = {0};
    fa_error err = {0};
    /* epochs and threads may change */
    user.epochs = 8;
    user.threads = 1;
    given[trainconf_key_index("epochs")] = given[trainconf_key_index("threads")] = 1;
    CHECK(trainer_resume_config(&stored, &user, given, "run1/last.safetensors", &out, &err) == FA_OK);
    CHECK(out.epochs == 8 && out.threads == 1);
    /* lr may not: exact continuation would be broken */
    user.lr = 0.5;
    given[trainconf_key_index("lr")] = 1;
    CHECK(trainer_resume_config(&stored, &user, given, "run1/last.safetensors", &out, &err) == FA_ERR_ARG);
    CHECK(strstr(err.msg, "key 'lr'") && strstr(err.msg, "run1/last.safetensors"));
    /* a given key equal to the stored value is fine */
    user.lr = stored.lr;
    CHECK(trainer_resume_config(&stored, &user, given, "run1/last.safetensors", &out, &err) == FA_OK);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/fa_test_train_config.XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_defaults_and_parse();
    test_errors();
    test_schedules();
    test_resume_config();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "warning: could not remove %s\n", tmpdir);
    return fa_test_finish("test_train_config");
}
