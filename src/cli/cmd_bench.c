/* cmd_bench.c - `freeair bench`: engine throughput and memory for one
 * architecture, mode, batch size, image size and precision.
 *
 * Builds the model with torchvision's random initialisation, runs warm-up
 * iterations (primitive creation and first-touch page faults are not
 * measured), then times --iters iterations: inference = forward; training =
 * forward + BCE-with-logits + backward + SGD step, as in `freeair train`.
 * Prints a human summary and one JSON line on stdout.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "cli/cli.h"
#include "core/fa_progress.h"
#include "engine/exec.h"
#include "engine/optim.h"
#include "models/model.h"

static void bench_usage(FILE *f) {
    fprintf(f,
            "usage: freeair bench --arch ARCH [--mode infer|train] [--batch N] [--size S]\n"
            "                     [--precision fp32|bf16] [--iters K] [--warmup W] [--threads T]\n"
            "                     [--weight-cache on|off]\n"
            "\n"
            "Times the engine on a randomly initialised model and prints images/s and peak\n"
            "memory (executor buffers and process peak RSS), then one JSON line.\n"
            "  --arch       %s\n"
            "  --mode       infer (forward only, default) or train (forward, BCE, backward, SGD)\n"
            "  --batch      images per iteration (default 16)\n"
            "  --size       square input size (default: the architecture's, 224 or 299)\n"
            "  --precision  fp32 (default) or bf16 (fp32 master weights)\n"
            "  --iters      timed iterations (default 5); --warmup untimed ones (default 1)\n"
            "  --threads    OpenMP threads for oneDNN (default: OMP_NUM_THREADS or all cores)\n"
            "  --weight-cache  keep converted weights between forwards (default: on for\n"
            "               infer; training converts after every SGD step anyway)\n",
            model_arch_list());
}

static int bench_int(const char *s, int lo, int hi, int *out) {
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = (int)v;
    return 1;
}

static double bench_peak_rss_mib(void) {
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0) return 0;
    return (double)ru.ru_maxrss / 1024.0; /* Linux: KiB */
}

typedef struct bench_run {
    fa_graph *g;
    fa_exec *e;
    optim_sgd *sgd;
    float *input, *targets, *logits, *dlogits, *aux, *daux;
    int batch, train, has_aux, outputs;
} bench_run;

/* One iteration; returns FA_OK or the first error. */
static fa_status bench_step(bench_run *r, fa_error *err) {
    fa_status st = exec_forward(r->e, r->input, err);
    if (st != FA_OK) return st;
    st = exec_read_output(r->e, "logits", r->logits, err);
    if (st != FA_OK || !r->train) return st;
    double loss;
    graph_zero_grad(r->g);
    st = optim_bce_with_logits(r->logits, r->targets, r->batch * r->outputs, 1.0f, &loss, r->dlogits, err);
    if (st != FA_OK) return st;
    const char *names[2] = {"logits", "aux_logits"};
    const float *grads[2] = {r->dlogits, r->daux};
    if (r->has_aux) {
        /* torchvision's Inception recipe: loss + 0.4 * aux loss */
        st = exec_read_output(r->e, "aux_logits", r->aux, err);
        if (st == FA_OK)
            st = optim_bce_with_logits(r->aux, r->targets, r->batch * r->outputs, 1.0f, &loss, r->daux, err);
        if (st != FA_OK) return st;
        for (int i = 0; i < r->batch * r->outputs; i++) r->daux[i] *= 0.4f;
    }
    st = exec_backward(r->e, r->has_aux ? 2 : 1, names, grads, err);
    if (st != FA_OK) return st;
    optim_sgd_step(r->sgd, 1e-3f);
    exec_params_changed(r->e); /* only matters with --weight-cache on */
    return FA_OK;
}

int cmd_bench(int argc, char **argv) {
    const char *arch = NULL, *mode = "infer", *prec = "fp32";
    int batch = 16, size = 0, iters = 5, warmup = 1, threads = 0, wcache = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            bench_usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "freeair bench: %s: missing value\n", a);
            bench_usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        int ok = 1;
        if (!strcmp(a, "--arch")) arch = v;
        else if (!strcmp(a, "--mode")) mode = v;
        else if (!strcmp(a, "--precision")) prec = v;
        else if (!strcmp(a, "--batch")) ok = bench_int(v, 1, 4096, &batch);
        else if (!strcmp(a, "--size")) ok = bench_int(v, 16, 4096, &size);
        else if (!strcmp(a, "--iters")) ok = bench_int(v, 1, 1000000, &iters);
        else if (!strcmp(a, "--warmup")) ok = bench_int(v, 0, 1000000, &warmup);
        else if (!strcmp(a, "--threads")) ok = bench_int(v, 1, 4096, &threads);
        else if (!strcmp(a, "--weight-cache")) ok = (wcache = !strcmp(v, "on") ? 1 : !strcmp(v, "off") ? 0 : -2) >= 0;
        else {
            fprintf(stderr, "freeair bench: unknown option '%s'\n", a);
            bench_usage(stderr);
            return 2;
        }
        if (!ok) {
            fprintf(stderr, "freeair bench: %s: invalid value '%s'\n", a, v);
            return 2;
        }
    }
    if (!arch) {
        fprintf(stderr, "freeair bench: --arch is required\n");
        bench_usage(stderr);
        return 2;
    }
    int train = !strcmp(mode, "train");
    if (!train && strcmp(mode, "infer")) {
        fprintf(stderr, "freeair bench: --mode: expected infer or train, got '%s'\n", mode);
        return 2;
    }
    fa_precision precision;
    if (!strcmp(prec, "fp32")) precision = FA_PRECISION_FP32;
    else if (!strcmp(prec, "bf16")) precision = FA_PRECISION_BF16;
    else {
        fprintf(stderr, "freeair bench: --precision: expected fp32 or bf16, got '%s'\n", prec);
        return 2;
    }
    if (threads) exec_set_threads(threads);

    fa_error err = {0};
    bench_run r = {0};
    r.batch = batch;
    r.train = train;
    int rc = 1;
    model_options mo = model_default_options();
    if (size) mo.image_size = size;
    if (model_build(&r.g, arch, &mo, &err) != FA_OK ||
        model_init_weights(r.g, arch, 1, &err) != FA_OK) {
        cli_fail("bench", &err);
        goto out;
    }
    int c, h, w;
    graph_value_shape(r.g, graph_input(r.g), &c, &h, &w);
    graph_value lv = graph_find(r.g, "logits");
    int oc = 0, oh = 0, ow = 0;
    graph_value_shape(r.g, lv, &oc, &oh, &ow);
    r.outputs = oc * oh * ow;
    r.has_aux = train && graph_find(r.g, "aux_logits") >= 0;
    exec_options eo = {.batch = batch, .precision = precision, .training = train,
                       .keep_for_backward = train, .seed = 1};
    double t0 = fa_now_seconds();
    if (exec_create(&r.e, r.g, &eo, &err) != FA_OK) {
        cli_fail("bench", &err);
        goto out;
    }
    double t_create = fa_now_seconds() - t0;
    if (wcache < 0) wcache = !train;
    if (wcache && exec_set_weight_cache(r.e, 1, &err) != FA_OK) {
        cli_fail("bench", &err);
        goto out;
    }
    if (train) {
        optim_sgd_opts so = {.momentum = 0.9f, .weight_decay = 1e-4f};
        if (optim_sgd_create(&r.sgd, r.g, &so, &err) != FA_OK) {
            cli_fail("bench", &err);
            goto out;
        }
    }
    size_t nin = (size_t)batch * c * h * w, nout = (size_t)batch * (r.outputs ? r.outputs : 1);
    r.input = malloc(nin * sizeof(float));
    r.targets = malloc(nout * sizeof(float));
    r.logits = malloc(nout * sizeof(float));
    r.dlogits = malloc(nout * sizeof(float));
    r.aux = malloc(nout * sizeof(float));
    r.daux = malloc(nout * sizeof(float));
    if (!r.input || !r.targets || !r.logits || !r.dlogits || !r.aux || !r.daux) {
        fa_error_set(&err, FA_ERR_NOMEM, "%s: out of memory for a batch of %d", arch, batch);
        cli_fail("bench", &err);
        goto out;
    }
    /* Deterministic pseudo-images roughly ImageNet-normalised. */
    uint64_t s = 0x243F6A8885A308D3ull;
    for (size_t i = 0; i < nin; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        r.input[i] = (float)((double)(s >> 11) * 0x1.0p-53 * 4.0 - 2.0);
    }
    for (size_t i = 0; i < nout; i++) r.targets[i] = (float)(i % 2);

    for (int i = 0; i < warmup; i++)
        if (bench_step(&r, &err) != FA_OK) {
            cli_fail("bench", &err);
            goto out;
        }
    fa_progress prog;
    fa_progress_begin(&prog, "bench", iters);
    t0 = fa_now_seconds();
    for (int i = 0; i < iters; i++) {
        if (bench_step(&r, &err) != FA_OK) {
            cli_fail("bench", &err);
            goto out;
        }
        fa_progress_add(&prog, 1);
    }
    double dt = fa_now_seconds() - t0;
    fa_progress_end(&prog);
    double ips = dt > 0 ? (double)iters * batch / dt : 0;
    double exec_mib = (double)exec_memory_bytes(r.e) / (1024.0 * 1024.0);
    double rss_mib = bench_peak_rss_mib();
    int nthreads = threads;
    if (!nthreads) {
        const char *env = getenv("OMP_NUM_THREADS");
        nthreads = env && atoi(env) > 0 ? atoi(env) : 0;
    }
    printf("%s %s %s: batch %d, %dx%d, %d iterations after %d warm-up\n", arch, mode, prec, batch,
           h, w, iters, warmup);
    printf("  %.2f images/s (%.1f ms/image), executor created in %.2f s\n", ips,
           ips > 0 ? 1000.0 / ips : 0.0, t_create);
    printf("  memory: executor %.1f MiB, peak RSS %.1f MiB; bf16 native: %s\n", exec_mib, rss_mib,
           exec_bf16_supported() ? "yes" : "no");
    printf("{\"event\":\"bench\",\"arch\":");
    fa_json_write_string(stdout, arch);
    printf(",\"mode\":\"%s\",\"precision\":\"%s\",\"batch\":%d,\"size\":%d,\"iters\":%d,"
           "\"warmup\":%d,\"threads\":%d,\"seconds\":%.6f,\"images_per_s\":%.4f,"
           "\"ms_per_image\":%.4f,\"exec_mib\":%.2f,\"peak_rss_mib\":%.2f,\"bf16_native\":%s,"
           "\"weight_cache\":%s}\n",
           mode, prec, batch, h, iters, warmup, nthreads, dt, ips, ips > 0 ? 1000.0 / ips : 0.0,
           exec_mib, rss_mib, exec_bf16_supported() ? "true" : "false", wcache ? "true" : "false");
    fflush(stdout);
    rc = 0;
out:
    optim_sgd_free(r.sgd);
    exec_free(r.e);
    graph_free(r.g);
    free(r.input);
    free(r.targets);
    free(r.logits);
    free(r.dlogits);
    free(r.aux);
    free(r.daux);
    return rc;
}
