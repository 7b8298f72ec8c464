/* synth.h - synthetic multi-site chest radiograph cohort with pneumoperitoneum,
 * written as real DICOM (issue 4).
 *
 * No patient data ships with freeair, so the study runs on a cohort whose
 * truth is known: chest radiographs rendered as projection images (sums of
 * line integrals through body, lungs, heart, bones, abdominal gas and free
 * air), passed through vendor-specific detector models and written as DICOM
 * by the DCMTK shim (data/dicom.h, dicom_write.cpp).
 *
 * Pipeline, one module prefix (synth_), four stages:
 *   plan      (synth_plan.c)     who is in the cohort: counts per cell of the
 *                                study's Table 1, patients, demographics,
 *                                machines, truth draws. Cheap, single-threaded.
 *   geometry  (synth_geom.c)     per image: the anatomy parameters drawn from
 *                                the image's own RNG, the diaphragm curves and
 *                                the free-air polygon in pixel coordinates.
 *   render    (synth_render.c,   per image: attenuation line integrals ->
 *              synth_detector.c) detector (scatter, MTF, quantum noise) ->
 *                                vendor processing and tone curve -> stored
 *                                values, plus the free-air mask.
 *   cohort    (synth_cohort.c)   parallel rendering, DICOM + mask files,
 *                                manifest.csv, contact sheet (synth_sheet.c).
 *
 * Determinism: every random choice comes from a counter-based RNG seeded by
 * (cohort seed, image index, stream), so output does not depend on the number
 * of threads; UIDs are 2.25.<128-bit hash> derived from the same inputs;
 * DICOM dates and implementation UID/version are set by us, never by DCMTK.
 */
#ifndef FA_SYNTH_H
#define FA_SYNTH_H

#include <stddef.h>
#include <stdint.h>

#include "core/fa_status.h"

/* ------------------------------------------------------------------------ */
/* Random numbers (synth_rng.c)                                              */

/* xoshiro256** state; seeded through splitmix64 so any 64-bit seed works. */
typedef struct synth_rng {
    uint64_t s[4];
} synth_rng;

/* Mix several 64-bit words into one (splitmix64 finaliser chain). */
uint64_t synth_hash64(uint64_t a, uint64_t b, uint64_t c);
void synth_rng_seed(synth_rng *r, uint64_t seed);
uint64_t synth_rng_u64(synth_rng *r);
double synth_rng_uniform(synth_rng *r);                  /* [0,1) */
double synth_rng_range(synth_rng *r, double lo, double hi); /* [lo,hi) */
double synth_rng_normal(synth_rng *r);                   /* N(0,1), Box-Muller */
int synth_rng_int(synth_rng *r, int n);                  /* 0..n-1, n >= 1 */
/* Fisher-Yates shuffle of n ints. */
void synth_rng_shuffle(synth_rng *r, int *v, int n);

/* A DICOM UID "2.25.<decimal>" made from a 128-bit hash of (seed, kind, a, b)
 * with the RFC 9562 version-8 and variant bits set, so it is a valid
 * UUID-derived UID. out must hold 64 bytes. */
void synth_uid(char out[64], uint64_t seed, uint64_t kind, uint64_t a, uint64_t b);

/* ------------------------------------------------------------------------ */
/* Cohort plan (synth_plan.c)                                                */

typedef enum synth_preset { SYNTH_PRESET_TINY, SYNTH_PRESET_SMALL, SYNTH_PRESET_PAPER } synth_preset;

typedef enum synth_vendor {
    SYNTH_VENDOR_PHILIPS,
    SYNTH_VENDOR_FUJIFILM,
    SYNTH_VENDOR_SIEMENS,
    SYNTH_VENDOR_KODAK,
    SYNTH_VENDOR_KONICA,
    SYNTH_N_VENDORS
} synth_vendor;

typedef enum synth_side { SYNTH_SIDE_NONE, SYNTH_SIDE_RIGHT, SYNTH_SIDE_LEFT, SYNTH_SIDE_BOTH } synth_side;

/* Transfer syntaxes the generator writes (same order as dicom_write_syntax). */
typedef enum synth_syntax {
    SYNTH_TS_EXPLICIT_LE,
    SYNTH_TS_RLE,
    SYNTH_TS_JPEG_LOSSLESS,
    SYNTH_TS_JPEG_LS,
    SYNTH_N_TS
} synth_syntax;

/* Confounders (bit mask); names in synth_confounder_names. */
enum {
    SYNTH_CF_GASTRIC_BUBBLE_LARGE = 1u << 0, /* big, high stomach bubble: the classic mimic */
    SYNTH_CF_BASAL_LUCENCY = 1u << 1,        /* lucent lung base / bulla above a dome */
    SYNTH_CF_CHILAIDITI = 1u << 2,           /* colon between liver and right dome */
    SYNTH_CF_EFFUSION = 1u << 3,
    SYNTH_CF_CONSOLIDATION = 1u << 4,
    SYNTH_CF_CARDIOMEGALY = 1u << 5,
    SYNTH_CF_OLD_CLIPS = 1u << 6,            /* old surgical clips without free air */
    SYNTH_N_CF = 7
};
extern const char *const synth_confounder_names[SYNTH_N_CF];

/* One imaging system: a unit at a hospital. */
typedef struct synth_machine {
    int hospital;             /* index into synth_hospitals */
    synth_vendor vendor;
    int portable;
    const char *manufacturer, *model, *station, *serial;
    int is_cr;                /* 1: CR Image Storage; 0: DX For Presentation */
    int bits_stored;          /* 10, 12, 14 or 16 */
    int mono1;                /* MONOCHROME1 */
    synth_syntax syntax;
    double field_w_mm, field_h_mm; /* exposed detector area */
    double spacing_mm;        /* paper-preset pixel spacing */
} synth_machine;

typedef struct synth_hospital {
    const char *code;         /* "H01" .. "H13": safe as a directory name */
    const char *name;         /* InstitutionName */
    int academic;
} synth_hospital;

extern const synth_machine synth_machines[];
extern const int synth_n_machines;
extern const synth_hospital synth_hospitals[];
extern const int synth_n_hospitals;
extern const char *const synth_vendor_names[SYNTH_N_VENDORS]; /* "philips", ... */

/* Everything decided about one image before rendering. */
typedef struct synth_case {
    int index;                /* 0-based position in the cohort */
    char image_id[16];        /* "img00001" */
    int patient;              /* 0-based patient number */
    char patient_id[16];      /* "P000001" */
    int visit;                /* 0 for a patient's first image, 1, 2, ... */
    int machine;              /* index into synth_machines */
    int label;                /* 1 free air present */
    int view_ap;              /* 1 AP, 0 PA */
    char sex;                 /* 'M' or 'F' */
    int age;                  /* years at the study */
    int postop;               /* post-operative pneumoperitoneum */
    synth_side side;
    double free_air_mm;       /* largest crescent height in mm; 0 when negative */
    unsigned confounders;     /* SYNTH_CF_* */
    int study_date;           /* YYYYMMDD */
    int study_time;           /* HHMMSS */
    int birth_date;           /* YYYYMMDD */
    int rows, cols;
    double spacing_mm;
    uint64_t seed;            /* per-image seed for geometry and noise */
} synth_case;

typedef struct synth_options {
    synth_preset preset;
    uint64_t seed;
    double difficulty;        /* 0.25..3; 0.5 easy, 1 default, 1.5 hard */
    int threads;              /* 0: OpenMP default */
    int manifest_only;        /* plan + manifest, no pixels */
    int force_syntax;         /* -1: each machine's own; else synth_syntax */
    int limit;                /* >0: only the first `limit` images (debugging) */
    int quiet;                /* no progress line */
    int masks;                /* write free-air mask PNGs (default 1) */
    const char *out_dir;
    const char *contact_sheet;/* PNG path or NULL */
    const char *log_path;     /* JSON-lines log or NULL */
} synth_options;

/* Defaults: tiny preset, seed 1, difficulty 1, own syntaxes, masks on. */
void synth_options_default(synth_options *o);

/* Parse "paper"/"small"/"tiny"; FA_ERR_ARG naming the value otherwise. */
fa_status synth_parse_preset(const char *s, synth_preset *out, fa_error *err);
/* Parse "easy" (0.5), "default" (1), "hard" (1.5) or a number in [0.25, 3]. */
fa_status synth_parse_difficulty(const char *s, double *out, fa_error *err);
/* Parse "native", "explicit", "rle", "jpeg-lossless", "jpeg-ls". native -> -1. */
fa_status synth_parse_syntax(const char *s, int *out, fa_error *err);
const char *synth_preset_name(synth_preset p);
const char *synth_syntax_name(synth_syntax s);

typedef struct synth_plan {
    int n;                    /* images */
    int n_patients;
    synth_case *cases;        /* n cases, owned */
    synth_preset preset;
    uint64_t seed;
    double difficulty;
} synth_plan;

/* The composition a preset must reproduce (paper = Table 1 of the study,
 * with its two inconsistent negative-class cells resolved from the totals;
 * small and tiny = the same cells scaled by largest remainders). */
typedef struct synth_targets {
    int n, n_pos, n_patients;
    int fixed, portable, philips, academic, ap, male;
    int pos_male, neg_male, postop;
    int pool_pos, pool_neg;   /* fixed Philips academic images (train/val pool) */
    double age_mean[2][2], age_sd[2][2]; /* [label][female] */
} synth_targets;
void synth_preset_targets(synth_preset p, synth_targets *t);

/* Plan the cohort. Deterministic in (preset, seed, difficulty). The caller
 * owns plan->cases (free with synth_plan_free). Errors: FA_ERR_NOMEM. */
fa_status synth_plan_make(synth_preset preset, uint64_t seed, double difficulty, synth_plan *plan,
                          fa_error *err);
void synth_plan_free(synth_plan *plan);

/* ------------------------------------------------------------------------ */
/* Geometry (synth_geom.c)                                                   */

#define SYNTH_DOME_POINTS 24
#define SYNTH_FA_POINTS 32
#define SYNTH_MAX_GAS 24
#define SYNTH_MAX_CLIPS 24

/* A gas or tissue blob in normalised body coordinates. */
typedef struct synth_blob {
    double u, v, ru, rv, rot; /* centre, radii, rotation (rad) */
    double depth_mm;          /* gas depth along the beam at the centre */
    double level_v;           /* erect air-fluid level (gas only above it); 1e9 none */
    int haustra;              /* colon: dense folds across the loop */
} synth_blob;

/* A crescent of gas (free air, or Chilaiditi colon) following one dome. */
typedef struct synth_crescent {
    int present;
    int side;                 /* -1 right (image left), +1 left */
    double a0, a1;            /* extent along |u| */
    double gap_mm;            /* diaphragm (and wall) thickness above the gas */
    double height_mm;         /* largest height */
    double depth_mm;          /* gas depth along the beam */
    int haustra;              /* Chilaiditi: haustral folds */
    double haustra_mm;        /* fold spacing */
} synth_crescent;

typedef struct synth_geom {
    /* placement: pixel -> mm -> body frame */
    double S;                 /* body scale, mm per normalised unit */
    double cx_mm, cy_mm;      /* body origin in detector mm from the image centre */
    double tilt;              /* in-plane rotation (rad) */
    double rot_u;             /* axial rotation: mediastinum shift (units) */
    double mag;               /* geometric magnification (AP > PA) */
    /* body */
    double body_w, body_depth_mm, wall, neck_w, shoulder_w, abd_w;
    double breast;            /* 0 none; else breast size */
    /* lungs, per side [0] right (u<0), [1] left */
    double lung_w[2], lung_top[2], lung_cu[2];
    double lung_depth_mm;
    /* diaphragm domes: apex (a, v), drop to the lateral angle, lateral end */
    double dome_a[2], dome_v[2], dome_drop[2], dome_lat[2], dome_med[2], dome_meddrop[2];
    /* heart and mediastinum */
    double heart_u, heart_v, heart_ru, heart_rv, heart_rot, heart_depth_mm;
    double med_w, knob_u, knob_v, knob_r;
    double hilum_v;
    /* bones */
    double bone_density;
    double spine_u;
    double clav_v;            /* clavicle height */
    double scap_overlap;      /* scapulae over the lungs (AP) */
    double rib_spacing, rib_top;
    /* abdomen */
    synth_blob stomach;       /* gastric bubble (depth 0 when absent) */
    synth_blob gas[SYNTH_MAX_GAS];
    int n_gas;
    /* truth */
    synth_crescent free_air[2];
    synth_crescent chilaiditi;
    /* confounder shapes */
    double eff_h[2];          /* effusion height at the lateral wall (units), 0 none */
    double cons_u, cons_v, cons_r, cons_k; /* consolidation */
    double bulla_u, bulla_v, bulla_ru, bulla_rv; /* basal lucency, 0 radius none */
    /* devices */
    int ett, ngt, cvc, ecg, pacer, clips, staples, drain, marker_left;
    double clip_u[SYNTH_MAX_CLIPS], clip_v[SYNTH_MAX_CLIPS], clip_rot[SYNTH_MAX_CLIPS];
    int n_clips;
    double ecg_u[5], ecg_v[5];
    /* collimation (portable): insets in mm from each edge */
    double coll_l, coll_r, coll_t, coll_b;
    /* outputs in pixel coordinates of the final image */
    double dome_px[2][SYNTH_DOME_POINTS][2];   /* [side][i][x,y], medial -> lateral */
    double fa_poly[2][2 * SYNTH_FA_POINTS][2]; /* closed polygon per free-air crescent */
    int fa_n[2];
    double fa_bbox[4];                         /* x0,y0,x1,y1 (inclusive), -1 none */
} synth_geom;

/* Draw the geometry of one image from its case (deterministic in c->seed). */
void synth_geom_make(const synth_case *c, double difficulty, synth_geom *g);

/* Pixel centre (x, y) of the final image -> normalised body coordinates. */
void synth_geom_to_body(const synth_geom *g, const synth_case *c, double x, double y, double *u, double *v);
/* Normalised body coordinates -> pixel coordinates of the final image. */
void synth_geom_to_pixel(const synth_geom *g, const synth_case *c, double u, double v, double *x, double *y);
/* 1 when final-image pixel (x, y) belongs to the free-air truth mask: the
 * crescent covers part of it (4x4 sub-samples). fa_bbox is the exact box of
 * these pixels. */
int synth_mask_pixel(const synth_geom *g, const synth_case *c, int x, int y);
/* Dome height v at |u| = a for side index (0 right, 1 left). */
double synth_dome_v(const synth_geom *g, int side, double a);
/* Gas of a crescent at body point (u, v): returns the fraction (0..1) of the
 * crescent's full gas depth there and sets *inside (may be NULL) to 1 when the
 * point lies in the crescent's region (the truth mask). */
double synth_crescent_at(const synth_geom *g, const synth_crescent *cr, double u, double v, int *inside);

/* ------------------------------------------------------------------------ */
/* Rendering (synth_render.c, synth_detector.c)                             */

typedef struct synth_image {
    int rows, cols;
    uint16_t *stored;         /* rows*cols stored values (< 2^bits_stored), owned */
    uint8_t *mask;            /* rows*cols, 1 where free air; owned; NULL-able */
    double window_center, window_width;
    int bits_stored, mono1;
} synth_image;

void synth_image_free(synth_image *im);

/* Render one image: line integrals, detector, processing, stored values and
 * the free-air mask. Errors: FA_ERR_NOMEM. */
fa_status synth_render(const synth_case *c, const synth_geom *g, double difficulty, synth_image *out,
                       fa_error *err);

/* Internal to the renderer, shared by its two files. The attenuation map
 * `L` (line integral, natural units), `lungfrac` and the free-air mask are
 * rendered at rows*cols; synth_detector turns L into stored values. */
fa_status synth_render_attenuation(const synth_case *c, const synth_geom *g, double difficulty, float *L,
                                   uint8_t *mask, uint8_t *shutter, fa_error *err);
fa_status synth_detector(const synth_case *c, const synth_geom *g, double difficulty, const float *L,
                         const uint8_t *shutter, synth_image *out, fa_error *err);

/* Separable Gaussian low-pass of a float image in place, computed on a
 * box-decimated grid for large sigmas (sigma in pixels). */
fa_status synth_lowpass(float *img, int w, int h, double sigma, fa_error *err);

/* ------------------------------------------------------------------------ */
/* Cohort output (synth_cohort.c, synth_sheet.c)                             */

/* Manifest truth columns written after the standard manifest columns. */
extern const char *const synth_truth_columns[];
extern const int synth_n_truth_columns;

typedef struct synth_stats {
    int n_images, n_written, n_positive, n_patients;
    double seconds;
} synth_stats;

/* Generate the cohort described by opts into opts->out_dir (created when
 * missing): DICOM files <hospital>/<patient>/<image>.dcm, masks/<image>.png for
 * positives, manifest.csv, and the contact sheet when asked. Errors name the
 * file and the reason (FA_ERR_IO, FA_ERR_BACKEND from DCMTK, ...). */
fa_status synth_generate(const synth_options *opts, synth_stats *stats, fa_error *err);

/* Write one row of truth cells for a case (values for synth_truth_columns,
 * caller frees each with free()). */
fa_status synth_truth_cells(const synth_plan *plan, const synth_case *c, const synth_geom *g, char **cells,
                            fa_error *err);

/* A grey 8-bit display rendering of stored values (window applied, MONOCHROME1
 * inverted), area-averaged so that the longer side is max_side (images that
 * are already smaller keep their size). Caller frees *out. */
fa_status synth_display8(const synth_image *im, int max_side, uint8_t **out, int *w, int *h, fa_error *err);
/* The matching thumbnail of a cols x rows mask (1 where any source pixel of
 * the cell is set). Caller frees *out. */
fa_status synth_thumb_mask(const uint8_t *mask, int cols, int rows, int tw, int th, uint8_t **out, fa_error *err);

/* PNG writers (libpng): 8-bit grey and 8-bit RGB. */
fa_status synth_write_png_gray(const char *path, const uint8_t *px, int w, int h, fa_error *err);
fa_status synth_write_png_rgb(const char *path, const uint8_t *rgb, int w, int h, fa_error *err);

/* Contact sheet: tiles of grey thumbnails with the free-air outline in red and
 * lines of truth text beneath each, in a grid of `cols` columns. */
typedef struct synth_tile {
    uint8_t *gray;            /* tw*th thumbnail, owned by the caller */
    uint8_t *mask;            /* tw*th free-air mask or NULL */
    int tw, th;
    char text[4][48];         /* up to four lines of truth */
} synth_tile;
fa_status synth_contact_sheet(const char *path, const synth_tile *tiles, int n, int cols, fa_error *err);

/* The built-in 5x7 font: 7 rows of 5 bits (bit 4 = leftmost) for printable
 * ASCII; lower case is drawn as upper case, unknown characters as '?'. */
const uint8_t *synth_font_glyph(char ch);
/* Draw ASCII text with the built-in 5x7 font into an RGB buffer (scale >= 1). */
void synth_draw_text(uint8_t *rgb, int w, int h, int x, int y, int scale, const char *s, const uint8_t color[3]);

#endif
