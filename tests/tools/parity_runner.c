/* parity_runner.c - compare the engine with PyTorch on one architecture, from
 * the files tests/ref/torch_parity.py wrote (weights.safetensors,
 * data.safetensors in DIR). Exits 1 on any mismatch, 2 on usage errors.
 *
 * usage: parity_runner DIR [--eval] [--bf16] [--train] [--traj] [--eval-grad]
 *
 * Checks (issue 2):
 *  --eval   fp32 inference logits within max(1e-4, 1.5 x e32) of the logit
 *           scale of the exact (fp64) logits, e32 being PyTorch fp32's own
 *           distance to them
 *  --bf16   bf16 inference logits within max(2e-2, 1.5 x e16) of the exact
 *           logits, e16 being PyTorch bf16's (torch.autocast) distance
 *  --train  one training step: loss and logits within max(1e-3, 5 x noise); every
 *           parameter gradient and updated running statistic within
 *           max(1e-3, 5 x the fp32 noise level measured by torch_parity.py,
 *           the effect of ReLU decisions within rounding of zero) (a 2%
 *           share of outliers allowed, see stats_add), all gradients
 *           together within max(1e-3, 3 x noise) in L2;
 *           counters exact
 *  --traj   the loss before each SGD step within max(1e-3, 5 x noise) of
 *           torch's trajectory, noise being the largest deviation of torch's
 *           channels_last trajectory
 *  --eval-grad  every parameter gradient of the loss with BN in eval mode
 *           (running statistics, as Grad-CAM and frozen-BN fine-tuning use)
 *           within 1e-3 of the exact (fp64) gradient or of PyTorch fp32's,
 *           every tensor, no noise or flip allowance. Both references are
 *           valid; fp32 ReLU decisions within rounding of zero can put a
 *           correct fp32 result 1e-2 away from one of them at full size,
 *           so this strict check runs at small sizes (test_parity_small)
 * "Relative" means relative to the largest magnitude of the reference tensor,
 * so near-zero elements do not dominate and a wrong tensor cannot hide.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/exec.h"
#include "engine/graph.h"
#include "engine/optim.h"
#include "engine/weights.h"
#include "models/model.h"

#define TOL_EVAL_FP32 1e-4
#define TOL_EVAL_BF16 2e-2
#define TOL_TRAIN 1e-3
/* Trajectory: each step's loss relative to torch's loss at that step. The
 * reference uses a learning rate at which the trajectory is not chaotic, so
 * differences stay at the size of the single-step ones. */
#define TOL_TRAJ 1e-3
/* Training-mode gradients of deep BN networks at random init amplify fp32
 * rounding (PyTorch's own fp32 gradients of resnext50 at 224 differ from
 * fp64 by over 10% in places). torch_parity.py measures, per tensor, how far
 * a second valid fp32 run (channels_last) lands from the reference; a
 * tensor passes within max(1e-3, NOISE_FACTOR x that distance). Per tensor,
 * fp64 itself was seen up to 3.4x that far, hence 5. */
#define NOISE_FACTOR 5.0
/* A ReLU whose input is within rounding of zero may go either way in two
 * correct implementations and moves the gradients below it by a lot (one
 * element of one channel at 7x7). torch_parity.py measures, per tensor, the
 * change when every such input (|x| < 1e-4 std) goes the other way at once
 * (flip.grad.*), an upper bound for any subset; a tensor also passes within
 * FLIP_FACTOR x that. */
#define FLIP_FACTOR 1.0
/* FAIL lines printed per run before the rest are only counted. */
#define MAX_FAIL_LINES 15
static int fail_lines;

static int failures;

typedef struct parity_ctx {
    const char *dir;
    weights_file *wf, *df;
    const char *arch;
    int size, batch, aux, transform_input, steps, nesterov;
    float lr, momentum, weight_decay;
    fa_graph *g;
} parity_ctx;

static void die(const char *what, const fa_error *err) {
    fprintf(stderr, "parity_runner: %s: %s\n", what, err->msg);
    exit(1);
}

static const char *meta(parity_ctx *c, const char *key) {
    const char *v = weights_metadata(c->df, key);
    if (!v) {
        fprintf(stderr, "parity_runner: %s/data.safetensors lacks metadata '%s'\n", c->dir, key);
        exit(1);
    }
    return v;
}

/* Read tensor name from the data file into a new buffer (owned by caller). */
static float *data_tensor(parity_ctx *c, const char *name, int64_t *numel) {
    const weights_tensor *t = weights_find(c->df, name);
    if (!t) {
        fprintf(stderr, "parity_runner: data.safetensors lacks '%s'\n", name);
        exit(1);
    }
    int64_t n = weights_numel(t);
    float *buf = malloc((size_t)(n ? n : 1) * sizeof(float));
    fa_error err = {0};
    if (!buf || weights_read_f32(c->df, t, buf, &err)) die(name, &err);
    if (numel) *numel = n;
    return buf;
}

/* max |a-b| / max(max|ref|, floor); prints and counts a failure above tol. */
static double compare(const char *what, const float *got, const float *ref, int64_t n, double tol, double floor_,
                      int verbose) {
    double scale = floor_, diff = 0;
    int64_t worst = 0;
    for (int64_t i = 0; i < n; i++) {
        if (fabs(ref[i]) > scale) scale = fabs(ref[i]);
        double d = fabs((double)got[i] - (double)ref[i]);
        if (!(d <= diff)) { /* also catches NaN */
            diff = isnan(d) ? INFINITY : d;
            worst = i;
        }
    }
    double rel = diff / scale;
    int bad = !(rel <= tol);
    if (bad && ++fail_lines > MAX_FAIL_LINES) {
        failures++;
        return rel;
    }
    if (bad || verbose)
        printf("%s %s: max diff %.3g (scale %.3g, relative %.3g, tol %.2g)\n", bad ? "FAIL" : "ok  ", what, diff,
               scale, rel, tol);
    if (bad) {
        printf("     worst element %lld: got %.9g want %.9g\n", (long long)worst, got[worst], ref[worst]);
        failures++;
    }
    return rel;
}

/* Per-kind summary of tensor comparisons. A tensor beyond its own noise
 * allowance is an outlier: a ReLU or max-pool decision that flips between
 * two implementations moves a few gradient elements by a lot, and one
 * alternative run does not always sample such flips, and a ratio of two
 * noisy distances has a tail. A few outliers (at most OUTLIER_SHARE of the
 * tensors, at least 2) are accepted while they stay within max(1e-3,
 * 10 x their own noise, 5 x the all-gradients L2 noise); a wrong kernel shows
 * up in every tensor of its op type instead, and in a well-conditioned model
 * (noise ~1e-5) every bound is 1e-3. */
#define OUTLIER_SHARE 0.02
typedef struct tensor_stats {
    int n, strict, noisy, outliers, bad;
    double worst_ratio; /* relative error / own tolerance */
    double worst_rel, worst_noise;
    const char *worst_name;
} tensor_stats;

static void stats_add(tensor_stats *s, const char *name, double rel, double noise, double tol, double outlier_tol) {
    s->n++;
    if (rel <= TOL_TRAIN) {
        s->strict++;
    } else if (rel <= tol) {
        s->noisy++;
    } else {
        int outlier = rel <= outlier_tol;
        if (outlier) s->outliers++;
        else s->bad++;
        if (++fail_lines <= MAX_FAIL_LINES)
            printf("%s %s: relative %.3g, noise/flip allowance %.3g (tol %.2g)%s\n", outlier ? "note" : "FAIL", name, rel, noise,
                   tol, outlier ? ", outlier" : "");
    }
    if (!(rel / tol <= s->worst_ratio)) {
        s->worst_ratio = rel / tol;
        s->worst_rel = rel;
        s->worst_noise = noise;
        s->worst_name = name;
    }
}

/* Prints the summary; returns 1 if the tensors fail the rule above. */
static int stats_print(const char *what, const tensor_stats *s) {
    int allowed = (int)(OUTLIER_SHARE * s->n);
    if (allowed < 2) allowed = 2;
    int bad = s->bad > 0 || s->outliers > allowed;
    printf("%s %d %s: %d within %.0e, %d within their fp32 noise or ReLU-flip allowance, %d outliers (%d "
           "allowed), %d beyond; worst %.3g (allowance %.3g) in %s\n",
           bad ? "FAIL" : "ok  ", s->n, what, s->strict, TOL_TRAIN, s->noisy, s->outliers, allowed, s->bad,
           s->worst_rel, s->worst_noise, s->worst_name ? s->worst_name : "-");
    return bad;
}

static void build_graph(parity_ctx *c) {
    model_options o = model_default_options();
    o.num_classes = 1;
    o.image_size = c->size;
    o.aux_logits = c->aux;
    o.transform_input = c->transform_input ? 1 : -1;
    o.dropout = 0.0f;
    fa_error err = {0};
    if (model_build(&c->g, c->arch, &o, &err)) die("model_build", &err);
}

static void load_weights(parity_ctx *c) {
    fa_error err = {0};
    if (weights_load_graph(c->g, c->wf, NULL, NULL, &err)) die("loading weights", &err);
}

static void run_eval(parity_ctx *c, fa_precision prec) {
    load_weights(c);
    exec_options eo = {c->batch, prec, 0, 0, 0};
    fa_exec *e = NULL;
    fa_error err = {0};
    if (exec_create(&e, c->g, &eo, &err)) die("exec_create (eval)", &err);
    float *x = data_tensor(c, "input", NULL);
    float *ref = data_tensor(c, "eval_logits", NULL);
    float *got = calloc((size_t)c->batch, sizeof(float));
    if (exec_forward(e, x, &err) || exec_read_output(e, "logits", got, &err)) die("eval forward", &err);
    /* Against the exact (fp64) logits: within the tolerance, or no
     * further than 1.5 x PyTorch's own error at this precision where that is
     * larger (deep random networks amplify rounding; for bf16 PyTorch's
     * autocast is often several 1e-2 off). Distances to PyTorch's result at
     * the same precision are shown for information. */
    float *exact = data_tensor(c, "eval_logits_fp64", NULL);
    float *torch_same = prec == FA_PRECISION_FP32 ? ref : data_tensor(c, "eval_logits_bf16", NULL);
    const char *pname = prec == FA_PRECISION_FP32 ? "fp32" : "bf16";
    char what[96];
    snprintf(what, sizeof what, "eval logits %s vs torch %s (information)", pname, pname);
    compare(what, got, torch_same, c->batch, INFINITY, 1e-3, 1);
    snprintf(what, sizeof what, "torch %s vs exact (information)", pname);
    double torch_err = compare(what, torch_same, exact, c->batch, INFINITY, 1e-3, 1);
    double base = prec == FA_PRECISION_FP32 ? TOL_EVAL_FP32 : TOL_EVAL_BF16;
    snprintf(what, sizeof what, "eval logits %s vs exact", pname);
    compare(what, got, exact, c->batch, fmax(base, 1.5 * torch_err), 1e-3, 1);
    for (int i = 0; i < c->batch; i++)
        printf("     logit[%d] %.7g torch %s %.7g exact %.7g\n", i, got[i], pname, torch_same[i], exact[i]);
    if (torch_same != ref) free(torch_same);
    free(exact);
    free(x);
    free(ref);
    free(got);
    exec_free(e);
}

/* Gradients with BN in eval mode against the exact ones and PyTorch fp32's:
 * forward and backward of an inference executor that keeps what backward
 * needs. */
static void run_eval_grad(parity_ctx *c) {
    load_weights(c);
    exec_options eo = {c->batch, FA_PRECISION_FP32, 0, 1, 0};
    fa_exec *e = NULL;
    fa_error err = {0};
    if (exec_create(&e, c->g, &eo, &err)) die("exec_create (eval, backward)", &err);
    float *x = data_tensor(c, "input", NULL);
    float *target = data_tensor(c, "target", NULL);
    float *logits = calloc((size_t)c->batch, sizeof(float));
    float *dl = calloc((size_t)c->batch, sizeof(float));
    double loss = 0;
    graph_zero_grad(c->g);
    if (exec_forward(e, x, &err) || exec_read_output(e, "logits", logits, &err)) die("eval forward", &err);
    if (optim_bce_with_logits(logits, target, c->batch, 1.0f, &loss, dl, &err)) die("loss", &err);
    const char *names[1] = {"logits"};
    const float *grads[1] = {dl};
    if (exec_backward(e, 1, names, grads, &err)) die("eval backward", &err);
    int n = 0, bad = 0;
    double worst = 0, worst_torch = 0;
    const char *worst_name = "-";
    for (int i = 0; i < graph_param_count(c->g); i++) {
        graph_param *p = graph_param_at(c->g, i);
        if (p->kind != GRAPH_PARAM_TRAINABLE) continue;
        char name[GRAPH_NAME_MAX + 16], tname[GRAPH_NAME_MAX + 32];
        snprintf(name, sizeof name, "egrad.%s", p->name);
        snprintf(tname, sizeof tname, "egrad_torch.%s", p->name);
        int64_t numel;
        float *ref = data_tensor(c, name, &numel);
        float *torch_rel = data_tensor(c, tname, NULL);
        if (numel != p->numel) {
            printf("FAIL %s: %lld elements, torch has %lld\n", name, (long long)p->numel, (long long)numel);
            failures++;
        } else {
            /* an all-zero exact gradient (Inception's aux head in eval mode)
             * must be zero here too: floor 1e-12 */
            char n32[GRAPH_NAME_MAX + 16];
            snprintf(n32, sizeof n32, "egrad32.%s", p->name);
            float *ref32 = data_tensor(c, n32, NULL);
            double r = fmin(compare(name, p->grad, ref, numel, INFINITY, 1e-12, 0),
                            compare(n32, p->grad, ref32, numel, INFINITY, 1e-12, 0));
            free(ref32);
            if (!(r <= TOL_TRAIN)) {
                bad++;
                if (++fail_lines <= MAX_FAIL_LINES)
                    printf("FAIL %s: relative %.3g to the nearer reference (torch fp32 vs exact %.3g)\n", p->name,
                           r, torch_rel[0]);
            }
            if (!(r <= worst)) worst = r, worst_name = p->name;
            worst_torch = fmax(worst_torch, torch_rel[0]);
        }
        n++;
        free(ref);
        free(torch_rel);
    }
    printf("%s %d gradients with BN in eval mode: worst relative %.3g in %s (tol %.0e, every tensor; torch fp32 vs "
           "exact worst %.3g); loss %.7f\n",
           bad ? "FAIL" : "ok  ", n, worst, worst_name, TOL_TRAIN, worst_torch, loss);
    failures += bad;
    free(x);
    free(target);
    free(logits);
    free(dl);
    exec_free(e);
}

/* max(1e-3, NOISE_FACTOR x the scalar noise level stored under name). */
static double noise_tol(parity_ctx *c, const char *name) {
    float *v = data_tensor(c, name, NULL);
    double tol = fmax(TOL_TRAIN, NOISE_FACTOR * v[0]);
    free(v);
    return tol;
}

/* One forward+backward in training mode; returns the loss. */
static double train_forward_backward(parity_ctx *c, fa_exec *e, const float *x, const float *target, float *logits,
                                     float *aux_logits) {
    fa_error err = {0};
    graph_zero_grad(c->g);
    if (exec_forward(e, x, &err) || exec_read_output(e, "logits", logits, &err)) die("train forward", &err);
    double loss = 0, loss_aux = 0;
    float *dl = calloc((size_t)c->batch, sizeof(float));
    float *da = calloc((size_t)c->batch, sizeof(float));
    if (optim_bce_with_logits(logits, target, c->batch, 1.0f, &loss, dl, &err)) die("loss", &err);
    const char *names[2] = {"logits", "aux_logits"};
    const float *grads[2] = {dl, da};
    int n_out = 1;
    if (c->aux) {
        if (exec_read_output(e, "aux_logits", aux_logits, &err)) die("aux forward", &err);
        if (optim_bce_with_logits(aux_logits, target, c->batch, 1.0f, &loss_aux, da, &err)) die("aux loss", &err);
        for (int i = 0; i < c->batch; i++) da[i] *= 0.4f;
        n_out = 2;
    }
    if (exec_backward(e, n_out, names, grads, &err)) die("backward", &err);
    free(dl);
    free(da);
    return loss + 0.4 * loss_aux;
}

static void run_train(parity_ctx *c, int do_step, int do_traj) {
    load_weights(c);
    exec_options eo = {c->batch, FA_PRECISION_FP32, 1, 1, 0};
    fa_exec *e = NULL;
    fa_error err = {0};
    if (exec_create(&e, c->g, &eo, &err)) die("exec_create (train)", &err);
    float *x = data_tensor(c, "input", NULL);
    float *target = data_tensor(c, "target", NULL);
    float *logits = calloc((size_t)c->batch, sizeof(float));
    float *aux = calloc((size_t)c->batch, sizeof(float));
    if (do_step) {
        double loss = train_forward_backward(c, e, x, target, logits, aux);
        float *ref_loss = data_tensor(c, "loss", NULL);
        float lossf = (float)loss;
        compare("train loss", &lossf, ref_loss, 1, noise_tol(c, "noise.loss"), 1e-6, 1);
        float *ref_logits = data_tensor(c, "train_logits", NULL);
        compare("train logits", logits, ref_logits, c->batch, noise_tol(c, "noise.train_logits"), 1e-3, 1);
        free(ref_logits);
        if (c->aux) {
            float *ref_aux = data_tensor(c, "train_aux_logits", NULL);
            compare("train aux logits", aux, ref_aux, c->batch, noise_tol(c, "noise.train_aux_logits"), 1e-3, 1);
            free(ref_aux);
        }
        free(ref_loss);
        /* Every gradient and every buffer, each against max(1e-3, 5 x the
         * fp32 noise level torch_parity.py measured for that tensor). */
        tensor_stats gs = {0}, ss = {0};
        int n_counters = 0;
        float *noise_l2 = data_tensor(c, "noise.grad_l2", NULL);
        double outlier_tol = fmax(TOL_TRAIN, NOISE_FACTOR * noise_l2[0]);
        double l2_num = 0, l2_den = 0;
        for (int i = 0; i < graph_param_count(c->g); i++) {
            graph_param *p = graph_param_at(c->g, i);
            char name[GRAPH_NAME_MAX + 16], noise_name[GRAPH_NAME_MAX + 32];
            if (p->kind == GRAPH_PARAM_COUNTER) {
                snprintf(name, sizeof name, "state.%s", p->name);
                const weights_tensor *t = weights_find(c->df, name);
                int64_t want = -1;
                if (!t || weights_read_i64(c->df, t, &want, &err) || want != p->count) {
                    printf("FAIL %s: %lld, torch %lld\n", name, (long long)p->count, (long long)want);
                    failures++;
                }
                n_counters++;
                continue;
            }
            int grad = p->kind == GRAPH_PARAM_TRAINABLE;
            snprintf(name, sizeof name, "%s.%s", grad ? "grad" : "state", p->name);
            snprintf(noise_name, sizeof noise_name, "noise.%s", name);
            int64_t n;
            float *ref = data_tensor(c, name, &n);
            const float *got = grad ? p->grad : p->data;
            if (n != p->numel) {
                printf("FAIL %s: %lld elements, torch has %lld\n", name, (long long)p->numel, (long long)n);
                failures++;
            } else {
                float *noise = data_tensor(c, noise_name, NULL);
                double flip = 0;
                if (grad) {
                    char flip_name[GRAPH_NAME_MAX + 32];
                    snprintf(flip_name, sizeof flip_name, "flip.%s", name);
                    float *f = data_tensor(c, flip_name, NULL);
                    flip = f[0];
                    free(f);
                }
                double tol = fmax(TOL_TRAIN, fmax(NOISE_FACTOR * noise[0], FLIP_FACTOR * flip));
                double r = compare(name, got, ref, n, INFINITY, 1e-12, 0);
                stats_add(grad ? &gs : &ss, p->name, r, fmax(noise[0], flip), tol,
                          fmax(fmax(outlier_tol, 2.0 * NOISE_FACTOR * noise[0]), 2.0 * FLIP_FACTOR * flip));
                free(noise);
                if (grad)
                    for (int64_t k = 0; k < n; k++) {
                        double d = (double)got[k] - ref[k];
                        l2_num += d * d;
                        l2_den += (double)ref[k] * ref[k];
                    }
            }
            free(ref);
        }
        failures += stats_print("gradients", &gs);
        failures += stats_print("running statistics", &ss);
        double l2 = sqrt(l2_num / fmax(l2_den, 1e-300)), l2_tol = fmax(TOL_TRAIN, 3.0 * noise_l2[0]);
        printf("%s all gradients together: relative L2 error %.3g (fp32 noise %.3g, tol %.2g); %d counters exact\n",
               l2 <= l2_tol ? "ok  " : "FAIL", l2, noise_l2[0], l2_tol, n_counters);
        failures += !(l2 <= l2_tol);
        free(noise_l2);
    }
    if (do_traj && c->steps > 0) {
        load_weights(c); /* back to the start: weights, statistics, counters */
        optim_sgd_opts so = {c->momentum, 0.0f, c->weight_decay, c->nesterov};
        optim_sgd *opt = NULL;
        if (optim_sgd_create(&opt, c->g, &so, &err)) die("optim_sgd_create", &err);
        int64_t n;
        float *ref = data_tensor(c, "traj", &n);
        float *alt = data_tensor(c, "traj_alt", NULL);
        float *got = calloc((size_t)n, sizeof(float));
        for (int64_t s = 0; s < n; s++) {
            got[s] = (float)train_forward_backward(c, e, x, target, logits, aux);
            optim_sgd_step(opt, c->lr);
        }
        /* A chaotic trajectory (deep BN networks at init) drifts by chance:
         * ours must stay as close to torch's as torch's channels_last run
         * does (within NOISE_FACTOR, over the whole trajectory), or within
         * 1e-3 at every step where the trajectory is well conditioned. */
        double worst = 0, noise = 0;
        for (int64_t s = 0; s < n; s++) {
            double scale = fmax(fabs(ref[s]), 1e-6);
            noise = fmax(noise, fabs((double)alt[s] - ref[s]) / scale);
            double d = fabs((double)got[s] - ref[s]) / scale;
            if (!(d <= worst)) worst = isnan(d) ? INFINITY : d;
        }
        double tol = fmax(TOL_TRAJ, NOISE_FACTOR * noise);
        int bad = !(worst <= tol);
        printf("%s %lld SGD steps: worst relative deviation of the loss %.3g (tol %.2g; fp32 noise %.3g)\n",
               bad ? "FAIL" : "ok  ", (long long)n, worst, tol, noise);
        for (int64_t s = 0; s < n; s++)
            printf("     step %2lld loss %.7f torch %.7f (channels_last %.7f)\n", (long long)s, got[s], ref[s], alt[s]);
        failures += bad;
        free(ref);
        free(alt);
        free(got);
        optim_sgd_free(opt);
    }
    free(x);
    free(target);
    free(logits);
    free(aux);
    exec_free(e);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: parity_runner DIR [--eval] [--bf16] [--train] [--traj] [--eval-grad]\n");
        return 2;
    }
    parity_ctx c;
    memset(&c, 0, sizeof c);
    c.dir = argv[1];
    int do_eval = 0, do_bf16 = 0, do_train = 0, do_traj = 0, do_eval_grad = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--eval")) do_eval = 1;
        else if (!strcmp(argv[i], "--bf16")) do_bf16 = 1;
        else if (!strcmp(argv[i], "--train")) do_train = 1;
        else if (!strcmp(argv[i], "--traj")) do_traj = 1;
        else if (!strcmp(argv[i], "--eval-grad")) do_eval_grad = 1;
        else {
            fprintf(stderr, "parity_runner: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    char path[4096];
    fa_error err = {0};
    snprintf(path, sizeof path, "%s/weights.safetensors", c.dir);
    if (weights_open(&c.wf, path, &err)) die("weights", &err);
    snprintf(path, sizeof path, "%s/data.safetensors", c.dir);
    if (weights_open(&c.df, path, &err)) die("data", &err);
    c.arch = meta(&c, "arch");
    c.size = atoi(meta(&c, "size"));
    c.batch = atoi(meta(&c, "batch"));
    c.aux = atoi(meta(&c, "aux_logits"));
    c.transform_input = atoi(meta(&c, "transform_input"));
    c.steps = atoi(meta(&c, "steps"));
    c.nesterov = atoi(meta(&c, "nesterov"));
    c.lr = strtof(meta(&c, "lr"), NULL);
    c.momentum = strtof(meta(&c, "momentum"), NULL);
    c.weight_decay = strtof(meta(&c, "weight_decay"), NULL);
    printf("%s at %d, batch %d%s\n", c.arch, c.size, c.batch, c.aux ? ", aux head" : "");
    build_graph(&c);
    if (do_eval) run_eval(&c, FA_PRECISION_FP32);
    if (do_bf16) {
        if (!exec_bf16_supported()) printf("note: no native bf16 on this CPU; oneDNN emulates it\n");
        run_eval(&c, FA_PRECISION_BF16);
    }
    if (do_eval_grad) run_eval_grad(&c);
    if (do_train || do_traj) run_train(&c, do_train, do_traj);
    printf("%s: %s\n", c.arch, failures ? "FAILED" : "ok");
    graph_free(c.g);
    weights_close(c.wf);
    weights_close(c.df);
    return failures ? 1 : 0;
}
