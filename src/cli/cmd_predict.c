/* cmd_predict.c - `freeair predict`: score images with a model, CSV out.
 *
 * Prints "path,probability" (a header row, then one row per image, in the
 * order given) where probability is the sigmoid of the model's single logit.
 * The pipeline is split so later input kinds slot in: predict_load_model()
 * builds the graph and loads the weights, predict_load_image() turns a path
 * into the normalised tensor (PNG only for now; DICOM goes through
 * image_load later), and the batch loop only sees tensors. A bad image is
 * reported on stderr and skipped; the others are still scored and the exit
 * status is 1 at the end.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/predict_model.h"
#include "core/fa_progress.h"
#include "data/csv.h"
#include "data/image.h"
#include "engine/exec.h"
#include "engine/graph.h"
#include "engine/weights.h"
#include "models/model.h"
#include "models/preprocess.h"

#define PREDICT_DEFAULT_BATCH 8
#define PREDICT_MAX_BATCH 1024

typedef struct predict_args {
    const char *arch;
    const char *weights;
    int size;
    int batch;
    int threads;
    fa_precision precision;
    int first_image; /* index into argv */
} predict_args;

static void usage(FILE *f) {
    fprintf(f,
            "usage: freeair predict --arch ARCH --weights FILE.safetensors [--size N]\n"
            "                       [--precision fp32|bf16] [--batch B] [--threads T] IMAGE...\n"
            "       freeair predict --model CHECKPOINT [options] INPUT...   (see --model x --help)\n"
            "\n"
            "Scores grey-scale PNG images (8 or 16 bit, already N x N pixels) with a\n"
            "one-output model and prints CSV \"path,probability\" on stdout.\n"
            "  --arch       %s\n"
            "  --weights    safetensors file with torchvision state_dict names and a\n"
            "               1-output head (metadata transform_input=1 enables Inception's\n"
            "               input transform)\n"
            "  --size       input side in pixels (default 224; 299 for inception_v3)\n"
            "  --precision  fp32 (default) or bf16\n"
            "  --batch      images per forward pass (default %d)\n"
            "  --threads    oneDNN threads (default: OpenMP's)\n",
            model_arch_list(), PREDICT_DEFAULT_BATCH);
}

/* 0 ok, 2 usage error (message printed). */
static int parse_args(int argc, char **argv, predict_args *a) {
    memset(a, 0, sizeof *a);
    a->batch = PREDICT_DEFAULT_BATCH;
    a->precision = FA_PRECISION_FP32;
    int i = 1;
    for (; i < argc; i++) {
        const char *o = argv[i];
        if (!strcmp(o, "--")) {
            i++;
            break;
        }
        if (strncmp(o, "--", 2)) break;
        if (!strcmp(o, "--help") || !strcmp(o, "-h")) {
            usage(stdout);
            return -1;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "freeair predict: %s needs a value\n", o);
            return 2;
        }
        const char *v = argv[++i];
        if (!strcmp(o, "--arch")) {
            a->arch = v;
        } else if (!strcmp(o, "--weights")) {
            a->weights = v;
        } else if (!strcmp(o, "--size")) {
            if (!cli_parse_int(v, 1, 65535, &a->size)) {
                fprintf(stderr, "freeair predict: --size %s: expected a positive integer\n", v);
                return 2;
            }
        } else if (!strcmp(o, "--batch")) {
            if (!cli_parse_int(v, 1, PREDICT_MAX_BATCH, &a->batch)) {
                fprintf(stderr, "freeair predict: --batch %s: expected 1..%d\n", v, PREDICT_MAX_BATCH);
                return 2;
            }
        } else if (!strcmp(o, "--threads")) {
            if (!cli_parse_int(v, 1, 1024, &a->threads)) {
                fprintf(stderr, "freeair predict: --threads %s: expected 1..1024\n", v);
                return 2;
            }
        } else if (!strcmp(o, "--precision")) {
            if (!strcmp(v, "fp32")) a->precision = FA_PRECISION_FP32;
            else if (!strcmp(v, "bf16")) a->precision = FA_PRECISION_BF16;
            else {
                fprintf(stderr, "freeair predict: --precision %s: expected fp32 or bf16\n", v);
                return 2;
            }
        } else {
            fprintf(stderr, "freeair predict: unknown option %s (see --help)\n", o);
            return 2;
        }
    }
    a->first_image = i;
    if (!a->arch || !a->weights) {
        fprintf(stderr, "freeair predict: --arch and --weights are required (see --help)\n");
        return 2;
    }
    if (!model_is_known(a->arch)) {
        fprintf(stderr, "freeair predict: unknown architecture '%s' (valid: %s)\n", a->arch, model_arch_list());
        return 2;
    }
    if (a->first_image >= argc) {
        fprintf(stderr, "freeair predict: no images given (see --help)\n");
        return 2;
    }
    if (!a->size) a->size = model_default_size(a->arch);
    return 0;
}

/* Build the graph for arch at size and load the weights file into it. The
 * head must have one output: this command prints one probability. */
static fa_status predict_load_model(const predict_args *a, fa_graph **out, fa_error *err) {
    *out = NULL;
    weights_file *wf = NULL;
    fa_status st = weights_open(&wf, a->weights, err);
    if (st) return st;
    const char *meta_arch = weights_metadata(wf, "arch");
    if (meta_arch && strcmp(meta_arch, a->arch)) {
        st = fa_error_set(err, FA_ERR_ARG, "%s: weights are for %s, not %s", a->weights, meta_arch, a->arch);
        weights_close(wf);
        return st;
    }
    model_options mo = model_default_options();
    mo.num_classes = 1;
    mo.image_size = a->size;
    /* The aux head is training-only; it is built whenever the size allows
     * so that weights saved with it load unchanged. */
    mo.aux_logits = a->size >= 299;
    const char *ti = weights_metadata(wf, "transform_input");
    mo.transform_input = ti && !strcmp(ti, "1") ? 1 : -1;
    fa_graph *g = NULL;
    st = model_build(&g, a->arch, &mo, err);
    if (!st) st = weights_load_graph(g, wf, NULL, NULL, err);
    weights_close(wf);
    if (st) {
        graph_free(g);
        return st;
    }
    *out = g;
    return FA_OK;
}

/* Read path into dst (3 x size x size). Messages name the file. */
static fa_status predict_load_image(const char *path, int size, float *dst, fa_error *err) {
    image_format fmt = image_detect_format(path);
    if (fmt != IMAGE_FORMAT_PNG) {
        FILE *f = fopen(path, "rb");
        if (!f) return fa_error_set(err, FA_ERR_NOT_FOUND, "%s: cannot open", path);
        fclose(f);
        return fa_error_set(err, FA_ERR_UNSUPPORTED, "%s: not a PNG image", path);
    }
    fa_image im;
    memset(&im, 0, sizeof im);
    int depth = 0;
    fa_status st = image_read_png(path, &im, &depth, err);
    if (st) return st;
    st = preprocess_image(&im, size, size, dst, err);
    if (st) fa_error_prefix(err, "%s", path);
    image_free(&im);
    return st;
}

static double sigmoid(double z) {
    if (z >= 0) return 1.0 / (1.0 + exp(-z));
    double e = exp(z);
    return e / (1.0 + e);
}

int cmd_predict(int argc, char **argv) {
    /* A training checkpoint carries its own architecture, size and
     * preprocessing: that path lives in predict_model.c (train engineer). */
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--model")) return cmd_predict_model(argc, argv);
    predict_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc < 0) return 0;
    if (rc) return rc;
    if (a.threads) exec_set_threads(a.threads);

    fa_error err = {0};
    fa_graph *g = NULL;
    if (predict_load_model(&a, &g, &err)) return cli_fail("predict", &err);

    int n_images = argc - a.first_image;
    int batch = a.batch < n_images ? a.batch : n_images;
    exec_options eo = {batch, a.precision, 0, 0, 0};
    fa_exec *e = NULL;
    /* weights are fixed once loaded: convert them once (weight cache) */
    if (exec_create(&e, g, &eo, &err) || exec_set_weight_cache(e, 1, &err)) {
        exec_free(e);
        graph_free(g);
        return cli_fail("predict", &err);
    }
    size_t per_image = (size_t)3 * (size_t)a.size * (size_t)a.size;
    float *input = fa_calloc_array((size_t)batch, per_image * sizeof(float));
    float *logits = fa_calloc_array((size_t)batch, sizeof(float));
    const char **paths = fa_calloc_array((size_t)batch, sizeof *paths);
    if (!input || !logits || !paths) {
        free(input);
        free(logits);
        free(paths);
        exec_free(e);
        graph_free(g);
        fa_error_set(&err, FA_ERR_NOMEM, "out of memory for a batch of %d images", batch);
        return cli_fail("predict", &err);
    }

    const char *header[2] = {"path", "probability"};
    csv_write_row(stdout, 2, header);
    fa_progress prog;
    fa_progress_begin(&prog, "predict", n_images);
    /* stderr carries one line per bad image; progress only on a terminal. */
    prog.quiet = !prog.is_tty;
    int failures = 0, fatal = 0;
    int next = a.first_image;
    while (next < argc && !fatal) {
        /* Fill a batch with readable images; unreadable ones are reported
         * and skipped. Unused slots stay zero: in inference every sample is
         * independent, so padding cannot change the others' scores. */
        int filled = 0;
        while (filled < batch && next < argc) {
            const char *path = argv[next++];
            fa_error ierr = {0};
            if (predict_load_image(path, a.size, input + (size_t)filled * per_image, &ierr)) {
                cli_fail("predict", &ierr);
                failures++;
                fa_progress_add(&prog, 1);
                continue;
            }
            paths[filled++] = path;
        }
        if (!filled) break;
        for (size_t i = (size_t)filled * per_image; i < (size_t)batch * per_image; i++) input[i] = 0.0f;
        if (exec_forward(e, input, &err) || exec_read_output(e, "logits", logits, &err)) {
            cli_fail("predict", &err);
            fatal = 1;
            break;
        }
        for (int i = 0; i < filled; i++) {
            char prob[64];
            if (!isfinite(logits[i])) {
                fprintf(stderr, "freeair predict: %s: the model produced a non-finite logit\n", paths[i]);
                failures++;
                continue;
            }
            snprintf(prob, sizeof prob, "%.9g", sigmoid(logits[i]));
            const char *row[2] = {paths[i], prob};
            csv_write_row(stdout, 2, row);
        }
        fa_progress_add(&prog, filled);
        fflush(stdout);
    }
    fa_progress_end(&prog);
    free(input);
    free(logits);
    free(paths);
    exec_free(e);
    graph_free(g);
    if (fflush(stdout) != 0) {
        fprintf(stderr, "freeair predict: writing the output failed\n");
        return 1;
    }
    if (failures && !fatal && n_images > 1)
        fprintf(stderr, "freeair predict: %d of %d image(s) could not be scored\n", failures, n_images);
    return failures || fatal ? 1 : 0;
}
