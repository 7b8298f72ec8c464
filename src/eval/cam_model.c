/* cam_model.c - the engine side of Grad-CAM: load a training checkpoint, pick
 * the layer, run one image forward in eval mode and back from its logit, and
 * hand the layer's activations and gradients to cam_compute (see cam.h).
 *
 * The executor is fp32, batch 1, training = 0 (batch norm uses running
 * statistics, dropout is identity: the network that scored the image) with
 * keep_for_backward = 1, so the backward pass is the exact gradient of the
 * logit the model reported. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/exec.h"
#include "eval/cam.h"
#include "models/model.h"
#include "train/augment.h"
#include "train/ckpt.h"

struct cam_model {
    fa_graph *g;
    fa_exec *e;
    char arch[64];
    char path[4096];
    char layer[GRAPH_NAME_MAX];
    graph_value v;
    int size, c, h, w;
    float *input, *act, *grad;
};

static int is_spatial(const fa_graph *g, graph_value v) {
    int c, h, w;
    graph_value_shape(g, v, &c, &h, &w);
    return (long)h * (long)w > 1;
}

int cam_layer_list(const fa_graph *g, char *buf, size_t cap) {
    int n = 0, nv = graph_value_count(g);
    size_t len = 0;
    if (cap) buf[0] = 0;
    for (graph_value v = 0; v < nv; v++) {
        const char *name = graph_value_name(g, v);
        if (!name || !name[0] || !is_spatial(g, v)) continue;
        n++;
        if (!cap) continue;
        size_t k = strlen(name) + (len ? 2 : 0);
        if (len + k + 4 >= cap) {
            if (len + 4 < cap && !strstr(buf, "...")) {
                memcpy(buf + len, "...", 4);
                len += 3;
            }
            continue;
        }
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", name);
    }
    return n;
}

fa_status cam_find_layer(const fa_graph *g, const char *name, const char *what, graph_value *out, fa_error *err) {
    char list[2048];
    int n = cam_layer_list(g, list, sizeof list);
    if (!n)
        return fa_error_set(err, FA_ERR_UNSUPPORTED,
                            "%s: no layer with a spatial size above 1x1 (the input is too small for Grad-CAM)", what);
    graph_value v = graph_find(g, name);
    if (v < 0) return fa_error_set(err, FA_ERR_NOT_FOUND, "%s: layer '%s' not found (valid: %s)", what, name, list);
    if (!is_spatial(g, v)) {
        int c, h, w;
        graph_value_shape(g, v, &c, &h, &w);
        return fa_error_set(err, FA_ERR_UNSUPPORTED,
                            "%s: layer '%s' is %dx%d: Grad-CAM needs a spatial layer (valid: %s)", what, name, h, w,
                            list);
    }
    *out = v;
    return FA_OK;
}

void cam_model_close(cam_model *m) {
    if (!m) return;
    exec_free(m->e);
    graph_free(m->g);
    free(m->input);
    free(m->act);
    free(m->grad);
    free(m);
}

fa_status cam_model_from_graph(cam_model **out, fa_graph *g, const char *arch, int image_size, const char *layer,
                               fa_error *err) {
    *out = NULL;
    cam_model *m = calloc(1, sizeof *m);
    if (!m) {
        graph_free(g);
        return fa_error_set(err, FA_ERR_NOMEM, "grad-cam: out of memory");
    }
    m->g = g;
    snprintf(m->arch, sizeof m->arch, "%s", arch ? arch : "model");
    m->size = image_size;
    const char *what = m->path[0] ? m->path : m->arch;
    if (!layer || !layer[0]) layer = model_default_cam_layer(m->arch);
    fa_status st = FA_OK;
    if (!layer) st = fa_error_set(err, FA_ERR_ARG, "%s: no default Grad-CAM layer for '%s'; give --layer", what, m->arch);
    int gc = 0, gh = 0, gw = 0;
    if (st == FA_OK) {
        graph_value_shape(g, graph_input(g), &gc, &gh, &gw);
        if (gc != 3 || gh != image_size || gw != image_size)
            st = fa_error_set(err, FA_ERR_SHAPE, "%s: graph input is %dx%dx%d, expected 3x%dx%d", what, gc, gh, gw,
                              image_size, image_size);
    }
    if (st == FA_OK) st = cam_find_layer(g, layer, m->arch, &m->v, err);
    if (st == FA_OK) {
        snprintf(m->layer, sizeof m->layer, "%s", layer);
        graph_value_shape(g, m->v, &m->c, &m->h, &m->w);
        exec_options eo = {1, FA_PRECISION_FP32, 0, 1, 0};
        st = exec_create(&m->e, g, &eo, err);
        /* the weights are fixed once loaded: convert them once */
        if (st == FA_OK) st = exec_set_weight_cache(m->e, 1, err);
    }
    if (st == FA_OK) st = exec_keep_value(m->e, m->v, err);
    if (st == FA_OK) st = exec_keep_value_grad(m->e, m->v, err);
    size_t nin = 0, nl = 0;
    if (st == FA_OK && (!fa_size_mul4(3, (size_t)image_size, (size_t)image_size, 1, &nin) ||
                        !fa_size_mul4((size_t)m->c, (size_t)m->h, (size_t)m->w, 1, &nl)))
        st = fa_error_set(err, FA_ERR_NOMEM, "%s: sizes overflow", what);
    if (st == FA_OK) {
        m->input = fa_malloc_array(nin, sizeof(float));
        m->act = fa_malloc_array(nl, sizeof(float));
        m->grad = fa_malloc_array(nl, sizeof(float));
        if (!m->input || !m->act || !m->grad) st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", what);
    }
    if (st != FA_OK) {
        cam_model_close(m);
        return st;
    }
    *out = m;
    return FA_OK;
}

fa_status cam_model_open(cam_model **out, const char *checkpoint, const char *layer, fa_error *err) {
    *out = NULL;
    char path[4096];
    struct stat sb;
    snprintf(path, sizeof path, "%s", checkpoint);
    if (stat(checkpoint, &sb) == 0 && S_ISDIR(sb.st_mode)) {
        /* a run folder: the model the study's selection rule kept, as predict does */
        snprintf(path, sizeof path, "%s/best.safetensors", checkpoint);
        if (stat(path, &sb) != 0) snprintf(path, sizeof path, "%s/last.safetensors", checkpoint);
    }
    fa_graph *g = NULL;
    ckpt_info info;
    fa_status st = train_load_checkpoint(path, &g, &info, err);
    if (st != FA_OK) return st;
    /* Messages about layers name the checkpoint and its architecture. */
    char what[4200];
    snprintf(what, sizeof what, "%s (%s)", path, info.arch);
    if (!layer || !layer[0]) layer = model_default_cam_layer(info.arch);
    graph_value v;
    if (!layer) {
        graph_free(g);
        return fa_error_set(err, FA_ERR_ARG, "%s: no default Grad-CAM layer; give --layer", what);
    }
    if ((st = cam_find_layer(g, layer, what, &v, err)) != FA_OK) {
        graph_free(g);
        return st;
    }
    st = cam_model_from_graph(out, g, info.arch, info.image_size, layer, err);
    if (st != FA_OK) {
        fa_error_prefix(err, "%s", path);
        return st;
    }
    snprintf((*out)->path, sizeof (*out)->path, "%s", path);
    return FA_OK;
}

const char *cam_model_arch(const cam_model *m) { return m->arch; }
const char *cam_model_path(const cam_model *m) { return m->path; }
const char *cam_model_layer(const cam_model *m) { return m->layer; }
int cam_model_image_size(const cam_model *m) { return m->size; }
void cam_model_layer_shape(const cam_model *m, int *c, int *h, int *w) {
    *c = m->c, *h = m->h, *w = m->w;
}
const float *cam_model_last_activations(const cam_model *m) { return m->act; }
const float *cam_model_last_gradients(const cam_model *m) { return m->grad; }

void cam_result_free(cam_result *r) {
    if (!r) return;
    free(r->map);
    memset(r, 0, sizeof *r);
}

fa_status cam_model_explain_tensor(cam_model *m, const float *input, cam_method method, cam_result *res,
                                   fa_error *err) {
    memset(res, 0, sizeof *res);
    const char *what = m->path[0] ? m->path : m->arch;
    float logit = 0;
    fa_status st = exec_forward(m->e, input, err);
    if (st == FA_OK) st = exec_read_output(m->e, "logits", &logit, err);
    if (st == FA_OK && !isfinite(logit))
        st = fa_error_set(err, FA_ERR_NUMERIC, "%s: the logit is not finite", what);
    if (st == FA_OK) st = exec_read_value(m->e, m->v, m->act, err);
    if (st == FA_OK) {
        /* d(logit)/d(logit) = 1: the target is the single positive-class
         * logit, not the probability (as Grad-CAM and pytorch-grad-cam). */
        const char *names[1] = {"logits"};
        const float one = 1.0f;
        const float *grads[1] = {&one};
        graph_zero_grad(m->g); /* parameter gradients are a by-product; keep them bounded */
        st = exec_backward(m->e, 1, names, grads, err);
    }
    if (st == FA_OK) st = exec_read_value_grad(m->e, m->v, m->grad, err);
    if (st == FA_OK) {
        res->map = fa_malloc_array((size_t)m->h * (size_t)m->w, sizeof(float));
        if (!res->map) st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", what);
    }
    if (st == FA_OK) st = cam_compute(method, m->c, m->h, m->w, m->act, m->grad, res->map, &res->scale, err);
    if (st != FA_OK) {
        cam_result_free(res);
        return st;
    }
    res->logit = logit;
    double z = logit;
    res->prob = z >= 0 ? 1.0 / (1.0 + exp(-z)) : exp(z) / (1.0 + exp(z));
    res->c = m->c, res->h = m->h, res->w = m->w;
    return FA_OK;
}

fa_status cam_model_explain(cam_model *m, const fa_image *im, cam_method method, cam_result *res, fa_error *err) {
    memset(res, 0, sizeof *res);
    fa_status st = aug_to_tensor(im, m->size, m->input, err);
    if (st != FA_OK) return st;
    return cam_model_explain_tensor(m, m->input, method, res, err);
}
