/* tpredict.c - checkpoint-based scoring (see tpredict.h). */
#include "train/tpredict.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/image.h"
#include "train/augment.h"

struct tpredict_model {
    fa_graph *g;
    fa_exec *e;
    ckpt_info info;
    char path[4096];
    int batch;
    size_t sample;
    float *input, *logits;
};

fa_status tpredict_open(tpredict_model **out, const char *checkpoint, int batch, fa_precision precision,
                        fa_error *err) {
    *out = NULL;
    if (batch < 1) return fa_error_set(err, FA_ERR_ARG, "predict: batch %d must be >= 1", batch);
    tpredict_model *m = calloc(1, sizeof *m);
    if (!m) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", checkpoint);
    struct stat sb;
    snprintf(m->path, sizeof m->path, "%s", checkpoint);
    if (stat(checkpoint, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        /* a run folder: the model the study's rule selected */
        snprintf(m->path, sizeof m->path, "%s/best.safetensors", checkpoint);
        if (stat(m->path, &sb) != 0) snprintf(m->path, sizeof m->path, "%s/last.safetensors", checkpoint);
    }
    fa_status st = train_load_checkpoint(m->path, &m->g, &m->info, err);
    if (st == FA_OK) {
        exec_options eo = {batch, precision, 0, 0, 0};
        st = exec_create(&m->e, m->g, &eo, err);
        /* The weights never change after loading: convert them to oneDNN's
         * layout once, not at every forward (the triage service's batch-1
         * latency is dominated by that conversion otherwise). */
        if (st == FA_OK) st = exec_set_weight_cache(m->e, 1, err);
    }
    m->batch = batch;
    m->sample = (size_t)3 * (size_t)m->info.image_size * (size_t)m->info.image_size;
    size_t n;
    if (st == FA_OK && !fa_size_mul((size_t)batch, m->sample, &n))
        st = fa_error_set(err, FA_ERR_NOMEM, "%s: batch too large", m->path);
    if (st == FA_OK) {
        m->input = fa_calloc_array(n, sizeof(float));
        m->logits = fa_calloc_array((size_t)batch, sizeof(float));
        if (!m->input || !m->logits) st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory for a batch of %d", m->path, batch);
    }
    if (st != FA_OK) {
        tpredict_close(m);
        return st;
    }
    *out = m;
    return FA_OK;
}

void tpredict_close(tpredict_model *m) {
    if (!m) return;
    exec_free(m->e);
    graph_free(m->g);
    free(m->input);
    free(m->logits);
    free(m);
}

const ckpt_info *tpredict_info(const tpredict_model *m) { return &m->info; }
const char *tpredict_path(const tpredict_model *m) { return m->path; }
int tpredict_batch_size(const tpredict_model *m) { return m->batch; }

fa_status tpredict_load(tpredict_model *m, const char *path, int slot, fa_error *err) {
    if (slot < 0 || slot >= m->batch) return fa_error_set(err, FA_ERR_ARG, "%s: batch slot %d out of range", path, slot);
    fa_image im;
    memset(&im, 0, sizeof im);
    char warning[256] = "";
    fa_status st = image_load(path, &im, warning, sizeof warning, err);
    if (st != FA_OK) return st;
    st = aug_to_tensor(&im, m->info.image_size, m->input + (size_t)slot * m->sample, err);
    image_free(&im);
    if (st != FA_OK) fa_error_prefix(err, "%s", path);
    return st;
}

fa_status tpredict_run(tpredict_model *m, int n, double *prob, fa_error *err) {
    if (n < 1 || n > m->batch) return fa_error_set(err, FA_ERR_ARG, "predict: %d images for a batch of %d", n, m->batch);
    /* padding slots: in inference every image is independent */
    memset(m->input + (size_t)n * m->sample, 0, (size_t)(m->batch - n) * m->sample * sizeof(float));
    fa_status st = exec_forward(m->e, m->input, err);
    if (st == FA_OK) st = exec_read_output(m->e, "logits", m->logits, err);
    if (st != FA_OK) return st;
    for (int i = 0; i < n; i++) {
        double z = m->logits[i];
        prob[i] = !isfinite(z) ? NAN : z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
    }
    return FA_OK;
}

int tpredict_decide(const tpredict_model *m, double prob) {
    if (!isfinite(m->info.threshold) || isnan(prob)) return -1;
    return prob >= m->info.threshold;
}
