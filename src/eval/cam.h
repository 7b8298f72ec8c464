/* cam.h - Grad-CAM and Grad-CAM++ explanations of a checkpoint's logit, colour
 * overlays at the radiograph's own geometry, and localisation against known
 * free-air regions (issue 7; `freeair cam`, docs/gradcam.md).
 *
 * Layers of this module, one prefix (cam_):
 *   math    (cam_math.c)   activations A (C x H x W) and gradients dY/dA of
 *                          the positive-class logit Y -> one map, as pure
 *                          functions with no engine in sight;
 *   image   (cam_image.c)  map resizing, colormaps, overlays, PNG / .npy
 *                          writers;
 *   region  (cam_region.c) truth regions (mask PNG, polygons, boxes) and the
 *                          pointing game / mass-inside metrics;
 *   model   (cam_model.c)  checkpoint -> graph -> executor with
 *                          keep_for_backward, one image -> map;
 *   batch   (cam_batch.c)  choosing TP/FP/FN/TN cases from an evaluated
 *                          predictions.csv for the report's gallery.
 *
 * Definitions (the same as the pytorch-grad-cam package, which the tests'
 * PyTorch reference reproduces):
 *   Grad-CAM    alpha_k = mean_ij dY/dA_kij
 *   Grad-CAM++  g = dY/dA, a_kij = g^2 / (2 g^2 + (sum_ij A_kij) g^3 + 1e-6)
 *               (0 where g == 0), alpha_k = sum_ij relu(g_kij) a_kij
 *   map = relu(sum_k alpha_k A_k), then divided by its maximum, so the map
 *   lies in [0, 1] with its peak at exactly 1; the maximum is kept as the
 *   map's `scale`. A map that is zero everywhere stays zero (scale 0).
 * Sums are accumulated in double, so the result does not depend on the order
 * of channels beyond rounding of the fp32 inputs.
 */
#ifndef FA_CAM_H
#define FA_CAM_H

#include <stddef.h>
#include <stdint.h>

#include "core/fa_status.h"
#include "data/csv.h"
#include "data/image.h"
#include "engine/graph.h"

typedef enum cam_method { CAM_METHOD_GRADCAM, CAM_METHOD_GRADCAM_PP } cam_method;

/* "gradcam" / "gradcam++" (also "gradcampp"); 0 when s is neither. */
int cam_method_parse(const char *s, cam_method *out);
const char *cam_method_name(cam_method m);

/* ------------------------------------------------------------------------ */
/* Math (cam_math.c)                                                          */

/* Channel weights alpha[c] of `method` from one image's activations and
 * gradients (both c x h x w fp32, borrowed). FA_ERR_ARG for sizes < 1,
 * FA_ERR_NUMERIC when an input value is not finite. */
fa_status cam_channel_weights(cam_method method, int c, int h, int w, const float *act, const float *grad,
                              double *alpha, fa_error *err);

/* The normalised map (h*w floats, caller-owned) and its scale (the maximum of
 * relu(sum_k alpha_k A_k) before normalisation; 0 for an all-zero map). Same
 * errors as cam_channel_weights, plus FA_ERR_NOMEM. */
fa_status cam_compute(cam_method method, int c, int h, int w, const float *act, const float *grad, float *map,
                      double *scale, fa_error *err);

/* ------------------------------------------------------------------------ */
/* Images (cam_image.c)                                                       */

/* Resize a map (w x h) to ow x oh with bilinear interpolation on pixel
 * centres (PyTorch's F.interpolate(mode="bilinear", align_corners=False),
 * i.e. no antialiasing): every map cell covers an equal share of the output,
 * which undoes preprocessing's whole-image square resize. dst is caller-owned
 * (ow*oh floats). FA_ERR_ARG for sizes < 1. */
fa_status cam_resize_map(const float *src, int w, int h, float *dst, int ow, int oh, fa_error *err);

/* Dimensions that keep w:h and make the longer side at most max_side
 * (rounded to nearest, at least 1); max_side <= 0 or an image already small
 * enough keeps w x h. */
void cam_fit_dims(int w, int h, int max_side, int *ow, int *oh);

typedef enum cam_colormap { CAM_COLORMAP_JET, CAM_COLORMAP_TURBO } cam_colormap;

/* "jet" / "turbo"; 0 otherwise. */
int cam_colormap_parse(const char *s, cam_colormap *out);
const char *cam_colormap_name(cam_colormap cm);

/* Colour of v in [0, 1] (clamped; NaN counts as 0). Jet is OpenCV's
 * COLORMAP_JET shape (blue -> cyan -> yellow -> red, piecewise linear:
 * 255 * clamp(1.5 - |4v - c|) for c = 3, 2, 1, rounded half up); turbo is
 * Google's polynomial approximation of Turbo. */
void cam_colormap_rgb(cam_colormap cm, float v, uint8_t rgb[3]);

/* Blend the colour of map onto the grey image (both w x h): per pixel
 * out = round((1 - alpha) * grey8 + alpha * colour(level)), grey8 =
 * round(grey / 257), level = round(map * 255) (the map is quantised to a
 * 256-colour table). rgb is caller-owned, 3*w*h bytes, row-major RGB. */
void cam_overlay_rgb(const uint16_t *grey, const float *map, int w, int h, cam_colormap cm, float alpha,
                     uint8_t *rgb);

/* 8-bit RGB PNG (w x h). Errors name the path. */
fa_status cam_write_png_rgb(const char *path, const uint8_t *rgb, int w, int h, fa_error *err);
/* 16-bit grey PNG of a [0, 1] map: round(clamp(v) * 65535). */
fa_status cam_write_map_png16(const char *path, const float *map, int w, int h, fa_error *err);
/* NumPy .npy (format 1.0, '<f4', C order, shape (h, w)). */
fa_status cam_write_npy(const char *path, const float *data, int h, int w, fa_error *err);

/* ------------------------------------------------------------------------ */
/* Truth regions and localisation (cam_region.c)                             */

/* A binary region at the radiograph's geometry. */
typedef struct cam_region {
    int width, height;
    uint8_t *inside; /* width*height, 1 inside; owned */
    size_t n_inside;
    char source[16]; /* "mask", "polygon", "box" */
} cam_region;

void cam_region_free(cam_region *r);

/* A mask PNG (any bit depth, grey or colour; non-zero = inside) that must be
 * width x height. Errors name the file: unreadable, wrong size, empty. */
fa_status cam_region_from_mask(const char *path, int width, int height, cam_region *out, fa_error *err);
/* Polygons "x:y;x:y;...|x:y;..." in pixel coordinates (pixel centres at
 * integers, as the synthetic cohort writes them); pixels whose centre lies
 * inside any polygon (even-odd rule) are inside. */
fa_status cam_region_from_polygons(const char *text, int width, int height, cam_region *out, fa_error *err);
/* A box "x0 y0 x1 y1" (spaces or commas; inclusive pixel bounds, clipped to
 * the image). */
fa_status cam_region_from_box(const char *text, int width, int height, cam_region *out, fa_error *err);

typedef struct cam_localisation {
    int hit;            /* pointing game: peak within tolerance of the region */
    int peak_x, peak_y; /* first maximum of the map in raster order */
    double peak_distance; /* pixels from the peak to the nearest inside pixel (0 inside) */
    double mass_inside; /* sum of the map inside / sum overall; NaN for a zero map */
} cam_localisation;

/* Score a map (w x h, same geometry as r) against r. tolerance_px >= 0.
 * FA_ERR_SHAPE when the sizes differ, FA_ERR_ARG for an empty region. */
fa_status cam_localise(const float *map, int w, int h, const cam_region *r, double tolerance_px,
                       cam_localisation *out, fa_error *err);

/* ------------------------------------------------------------------------ */
/* Model (cam_model.c)                                                        */

typedef struct cam_model cam_model;

/* Names of the graph's layers Grad-CAM can use (named values with a spatial
 * size above 1x1), ", "-separated, into buf (truncated with "..."). Returns
 * how many there are. */
int cam_layer_list(const fa_graph *g, char *buf, size_t cap);

/* Resolve a layer name. Errors: FA_ERR_NOT_FOUND "layer 'x' not found (valid:
 * ...)", FA_ERR_UNSUPPORTED for a named value whose spatial size is 1x1 (a
 * pooled or fully connected output) or for a graph without any spatial
 * layer. `what` names the model in messages. */
fa_status cam_find_layer(const fa_graph *g, const char *name, const char *what, graph_value *out,
                         fa_error *err);

/* Open a checkpoint (a file, or a run folder: best.safetensors if present,
 * else last.safetensors) and prepare an fp32 batch-1 executor in eval mode
 * that keeps what backward needs. layer NULL or "" = the architecture's
 * model_default_cam_layer. Errors name the checkpoint or the layer. */
fa_status cam_model_open(cam_model **out, const char *checkpoint, const char *layer, fa_error *err);

/* Same from a graph already built and loaded (ownership of g passes to the
 * model, also on failure); used by tests and by callers that built it. The
 * executor keeps converted weights (exec_set_weight_cache): the graph's
 * parameters must not change afterwards. */
fa_status cam_model_from_graph(cam_model **out, fa_graph *g, const char *arch, int image_size, const char *layer,
                               fa_error *err);
void cam_model_close(cam_model *m);

const char *cam_model_arch(const cam_model *m);
const char *cam_model_path(const cam_model *m); /* checkpoint file ("" from a graph) */
const char *cam_model_layer(const cam_model *m);
int cam_model_image_size(const cam_model *m);
/* Shape of the layer (without batch). */
void cam_model_layer_shape(const cam_model *m, int *c, int *h, int *w);

typedef struct cam_result {
    double logit, prob; /* the positive-class logit and its sigmoid */
    int c, h, w;        /* layer shape */
    float *map;         /* h*w normalised map, owned (cam_result_free) */
    double scale;       /* maximum before normalisation */
} cam_result;

void cam_result_free(cam_result *r);

/* Explain one network input (3 x size x size fp32 CHW, as aug_to_tensor
 * makes it). res is filled (res->map allocated here). */
fa_status cam_model_explain_tensor(cam_model *m, const float *input, cam_method method, cam_result *res,
                                   fa_error *err);
/* Explain one radiograph: the checkpoint's preprocessing (square resize,
 * normalisation) then cam_model_explain_tensor. */
fa_status cam_model_explain(cam_model *m, const fa_image *im, cam_method method, cam_result *res, fa_error *err);

/* Optional: activations and gradients of the layer from the last explain
 * (c*h*w floats each; borrowed, valid until the next explain). */
const float *cam_model_last_activations(const cam_model *m);
const float *cam_model_last_gradients(const cam_model *m);

/* ------------------------------------------------------------------------ */
/* Choosing cases for the gallery (cam_batch.c)                              */

/* Outcome categories in gallery order (the study showed TP then FP). */
typedef enum cam_category { CAM_CAT_TP, CAM_CAT_FP, CAM_CAT_FN, CAM_CAT_TN, CAM_N_CAT } cam_category;
const char *cam_category_name(cam_category c); /* "TP", "FP", "FN", "TN" */

typedef struct cam_pick {
    int row;               /* data row of the predictions table */
    cam_category category;
    int rank;              /* 1-based within its category */
    double score, threshold;
    int label;
} cam_pick;

typedef struct cam_select_opts {
    const char *model;     /* rows of this `model` value; NULL = the only model */
    const char *split;     /* rows of this `split` value when the column exists; NULL = all */
    int per_category;      /* >= 0 */
    double threshold;      /* used when the table has no outcome; NaN = none */
    int all_positives;     /* 1: also every other positive (category TP/FN, rank 0) */
} cam_select_opts;

/* Pick up to per_category rows of each outcome from an evaluated
 * predictions table (`freeair eval`'s predictions.csv: label, score,
 * outcome_primary or threshold_primary, optional model and split). Most
 * confident first: TP and FP by decreasing score, FN and TN by increasing
 * score (the highest-confidence errors lead); ties by row order. *picks is
 * allocated (caller frees), in gallery order TP, FP, FN, TN, then the extra
 * positives. Errors name `name` (the file) and the row. */
fa_status cam_select(const char *name, const csv_table *table, const cam_select_opts *o, cam_pick **picks, int *n,
                     fa_error *err);

/* ------------------------------------------------------------------------ */
/* Output files (cam_output.c)                                                */

typedef struct cam_output_opts {
    const char *dir;      /* output folder (exists); maps go to dir/maps (created) */
    cam_colormap colormap;
    float alpha;          /* colour weight of the overlay, 0..1 */
    int max_side;         /* longer side of overlay and 16-bit map; <= 0: the image's own size */
    int write_overlay;    /* 0: only the raw maps (localisation-only cases) */
} cam_output_opts;

/* Names (relative to dir) of what cam_write_outputs wrote. */
typedef struct cam_files {
    char overlay[512];  /* "<stem>.png" or "" */
    char map_npy[512];  /* "maps/<stem>.npy": h x w float32 at the layer's resolution */
    char map_png[512];  /* "maps/<stem>.png": 16-bit map at the overlay's geometry */
    char map_json[512]; /* "maps/<stem>.json": sidecar (shape, scale, provenance) */
    int width, height;  /* geometry of overlay and 16-bit map */
} cam_files;

/* Write the overlay (the map resized to the radiograph's own geometry and
 * blended on it), the raw maps and their JSON sidecar for one explained image.
 * stem must be a safe file name (no '/'); source is the input's path for the
 * sidecar. Errors name the file being written. */
fa_status cam_write_outputs(const cam_output_opts *o, const char *stem, const char *source, const fa_image *im,
                            const cam_model *m, cam_method method, const cam_result *res, cam_files *files,
                            fa_error *err);

/* One explained image as the localisation summary sees it (all borrowed). */
typedef struct cam_record {
    const char *id;       /* image identifier (path or id) */
    const char *overlay;  /* overlay file relative to the output folder, or "" */
    const char *category; /* "TP", "FP", "FN", "TN" or "" */
    double score;         /* NaN when unknown */
    int has_region;
    const char *region;   /* "mask", "polygon", "box" */
    cam_localisation loc;
    const char *const *groups; /* values of the group-by columns ("" = unknown) */
} cam_record;

/* Write localisation.json (schema "freeair.cam.localisation/1"): the
 * pointing-game rate with its 95% Wilson interval and the mean/median mass
 * inside, overall and per value of each group-by column (plus the outcome
 * category when records have one), and one entry per image. Written
 * atomically. */
fa_status cam_write_localisation_json(const char *path, const char *model_name, const cam_model *m,
                                      cam_method method, double tolerance_fraction, int n_groups,
                                      const char *const *group_cols, const cam_record *recs, int n, fa_error *err);

#endif
