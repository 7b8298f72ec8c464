/* synth_cohort.c - generate the synthetic cohort on disk: DICOM files, truth
 * masks, manifest.csv and the contact sheet.
 *
 * Images are rendered in parallel (OpenMP, one image per task); each image's
 * randomness comes from its own seed, so the bytes written do not depend on
 * the thread count. The manifest starts with the standard columns of
 * data/manifest.h, filled with exactly what `freeair scan` reads back from the
 * files, followed by the truth columns (synth_truth_columns).
 */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/fa_progress.h"
#include "data/csv.h"
#include "data/dicom.h"
#include "data/manifest.h"
#include "data/synth.h"

const char *const synth_truth_columns[] = {
    "image_id",        "label",            "free_air_side", "free_air_size_mm", "postoperative",
    "confounders",     "unit",             "hospital",      "hospital_type",    "vendor",
    "difficulty",      "cohort_difficulty", "preset",       "free_air_bbox",    "free_air_polygon",
    "free_air_mask",   "dome_right",       "dome_left"};
const int synth_n_truth_columns = (int)(sizeof synth_truth_columns / sizeof synth_truth_columns[0]);

#define SYNTH_SOP_DX "1.2.840.10008.5.1.4.1.1.1.1" /* Digital X-Ray Image Storage - For Presentation */
#define SYNTH_SOP_CR "1.2.840.10008.5.1.4.1.1.1"   /* Computed Radiography Image Storage */
#define SYNTH_IMPL_VERSION "FREEAIR_SYNTH01"

static const char *side_name(synth_side s) {
    switch (s) {
    case SYNTH_SIDE_RIGHT: return "right";
    case SYNTH_SIDE_LEFT: return "left";
    case SYNTH_SIDE_BOTH: return "both";
    default: return "none";
    }
}

/* Per-image difficulty: how hard this image should be to read. */
static const char *case_difficulty(const synth_case *c) {
    if (c->label) return c->free_air_mm < 5 ? "subtle" : c->free_air_mm < 15 ? "moderate" : "large";
    if (c->confounders & (SYNTH_CF_GASTRIC_BUBBLE_LARGE | SYNTH_CF_BASAL_LUCENCY | SYNTH_CF_CHILAIDITI)) return "mimic";
    return c->confounders ? "other" : "clean";
}

static int syntax_of(const synth_case *c, int force) {
    return force >= 0 ? force : (int)synth_machines[c->machine].syntax;
}

static void rel_path(const synth_case *c, char *out, size_t cap) {
    const synth_machine *m = &synth_machines[c->machine];
    snprintf(out, cap, "%s/%s/%s.dcm", synth_hospitals[m->hospital].code, c->patient_id, c->image_id);
}

static char *dupstr(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- growing string for polylines ---- */
typedef struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, double x, double y) {
    char tmp[64];
    int k = snprintf(tmp, sizeof tmp, fmt, x, y);
    if (k < 0 || b->oom) return;
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        while (nc < b->n + (size_t)k + 1) nc *= 2;
        char *np = realloc(b->p, nc);
        if (!np) {
            b->oom = 1;
            return;
        }
        b->p = np, b->cap = nc;
    }
    memcpy(b->p + b->n, tmp, (size_t)k + 1);
    b->n += (size_t)k;
}

static char *sb_take(sbuf *b) {
    if (b->oom) {
        free(b->p);
        return NULL;
    }
    return b->p ? b->p : dupstr("");
}

fa_status synth_truth_cells(const synth_plan *plan, const synth_case *c, const synth_geom *g, char **cells,
                            fa_error *err) {
    const synth_machine *m = &synth_machines[c->machine];
    const synth_hospital *h = &synth_hospitals[m->hospital];
    char v[18][128];
    int k = 0;
    snprintf(v[k++], 128, "%s", c->image_id);
    snprintf(v[k++], 128, "%d", c->label);
    snprintf(v[k++], 128, "%s", side_name(c->side));
    snprintf(v[k++], 128, "%.1f", c->free_air_mm);
    snprintf(v[k++], 128, "%d", c->postop);
    v[k][0] = 0;
    for (int i = 0; i < SYNTH_N_CF; i++)
        if (c->confounders & (1u << i)) {
            size_t l = strlen(v[k]);
            snprintf(v[k] + l, 128 - l, "%s%s", l ? ";" : "", synth_confounder_names[i]);
        }
    k++;
    snprintf(v[k++], 128, "%s", m->portable ? "portable" : "fixed");
    snprintf(v[k++], 128, "%s", h->code);
    snprintf(v[k++], 128, "%s", h->academic ? "academic" : "community");
    snprintf(v[k++], 128, "%s", synth_vendor_names[m->vendor]);
    snprintf(v[k++], 128, "%s", case_difficulty(c));
    snprintf(v[k++], 128, "%.2f", plan->difficulty);
    snprintf(v[k++], 128, "%s", synth_preset_name(plan->preset));
    if (g->fa_bbox[0] >= 0)
        snprintf(v[k++], 128, "%d %d %d %d", (int)g->fa_bbox[0], (int)g->fa_bbox[1], (int)g->fa_bbox[2],
                 (int)g->fa_bbox[3]);
    else
        v[k++][0] = 0;
    int nfix = k;
    for (int i = 0; i < nfix; i++) {
        cells[i] = dupstr(v[i]);
        if (!cells[i]) goto oom;
    }
    /* polygon(s): "x:y;x:y;..." per crescent, crescents separated by '|' */
    sbuf b = {0};
    for (int s = 0; s < 2; s++) {
        if (!g->fa_n[s]) continue;
        if (b.n) sb_printf(&b, "|", 0, 0);
        for (int i = 0; i < g->fa_n[s]; i++)
            sb_printf(&b, i ? ";%.1f:%.1f" : "%.1f:%.1f", g->fa_poly[s][i][0], g->fa_poly[s][i][1]);
    }
    if (!(cells[k++] = sb_take(&b))) goto oom;
    char mask[64] = "";
    if (c->label) snprintf(mask, sizeof mask, "masks/%s.png", c->image_id);
    if (!(cells[k++] = dupstr(mask))) goto oom;
    for (int s = 0; s < 2; s++) {
        sbuf d = {0};
        for (int i = 0; i < SYNTH_DOME_POINTS; i++)
            sb_printf(&d, i ? ";%.1f:%.1f" : "%.1f:%.1f", g->dome_px[s][i][0], g->dome_px[s][i][1]);
        if (!(cells[k++] = sb_take(&d))) goto oom;
    }
    return FA_OK;
oom:
    for (int i = 0; i < synth_n_truth_columns; i++) {
        free(cells[i]);
        cells[i] = NULL;
    }
    return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory for the manifest row", c->image_id);
}

/* Standard manifest cells: what `freeair scan` reads back from the file. */
static fa_status standard_cells(const synth_plan *plan, const synth_case *c, int force, char **cells, fa_error *err) {
    const synth_machine *m = &synth_machines[c->machine];
    char v[MANIFEST_N_COLS][128];
    memset(v, 0, sizeof v);
    char uid[64];
    rel_path(c, v[MANIFEST_COL_PATH], 128);
    snprintf(v[MANIFEST_COL_STATUS], 128, "%s", MANIFEST_STATUS_OK);
    snprintf(v[MANIFEST_COL_PATIENT_ID], 128, "%s", c->patient_id);
    uint64_t variant = (uint64_t)plan->preset * 1000003ull + (uint64_t)llround(plan->difficulty * 1000);
    synth_uid(uid, plan->seed ^ variant, 1, (uint64_t)c->index, 0);
    snprintf(v[MANIFEST_COL_STUDY_UID], 128, "%s", uid);
    synth_uid(uid, plan->seed ^ variant, 2, (uint64_t)c->index, 0);
    snprintf(v[MANIFEST_COL_SERIES_UID], 128, "%s", uid);
    synth_uid(uid, plan->seed ^ variant, 3, (uint64_t)c->index, 0);
    snprintf(v[MANIFEST_COL_SOP_UID], 128, "%s", uid);
    snprintf(v[MANIFEST_COL_MODALITY], 128, "%s", m->is_cr ? "CR" : "DX");
    snprintf(v[MANIFEST_COL_BODY_PART], 128, "CHEST");
    snprintf(v[MANIFEST_COL_VIEW], 128, "%s", c->view_ap ? "AP" : "PA");
    snprintf(v[MANIFEST_COL_MANUFACTURER], 128, "%s", m->manufacturer);
    snprintf(v[MANIFEST_COL_MODEL], 128, "%s", m->model);
    snprintf(v[MANIFEST_COL_STATION], 128, "%s", m->station);
    snprintf(v[MANIFEST_COL_INSTITUTION], 128, "%s", synth_hospitals[m->hospital].name);
    snprintf(v[MANIFEST_COL_SEX], 128, "%c", c->sex);
    snprintf(v[MANIFEST_COL_AGE], 128, "%d", c->age);
    snprintf(v[MANIFEST_COL_ACQUISITION_DATE], 128, "%08d", c->study_date);
    snprintf(v[MANIFEST_COL_ROWS], 128, "%d", c->rows);
    snprintf(v[MANIFEST_COL_COLUMNS], 128, "%d", c->cols);
    snprintf(v[MANIFEST_COL_PIXEL_SPACING], 128, "%.6g\\%.6g", c->spacing_mm, c->spacing_mm);
    snprintf(v[MANIFEST_COL_BITS_STORED], 128, "%d", m->bits_stored);
    snprintf(v[MANIFEST_COL_PHOTOMETRIC], 128, "%s", m->mono1 ? "MONOCHROME1" : "MONOCHROME2");
    snprintf(v[MANIFEST_COL_TRANSFER_SYNTAX], 128, "%s",
             dicom_write_syntax_uid((dicom_write_syntax)syntax_of(c, force)));
    snprintf(v[MANIFEST_COL_PRESENTATION_INTENT], 128, "%s", m->is_cr ? "" : "FOR PRESENTATION");
    for (int i = 0; i < MANIFEST_N_COLS; i++) {
        cells[i] = dupstr(v[i]);
        if (!cells[i]) {
            for (int j = 0; j < i; j++) free(cells[j]), cells[j] = NULL;
            return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory for the manifest row", c->image_id);
        }
    }
    return FA_OK;
}

/* ---- DICOM attributes of one image ---- */
static fa_status write_dicom(const synth_case *c, const synth_image *im, int force, const char *path,
                             char *const *std_cells, fa_error *err) {
    const synth_machine *m = &synth_machines[c->machine];
    const synth_hospital *h = &synth_hospitals[m->hospital];
    char b[48][80];
    int nb = 0;
#define FMT(...) (snprintf(b[nb], sizeof b[nb], __VA_ARGS__), b[nb++])
    char impl_uid[64];
    synth_uid(impl_uid, 0x46524545414952ull /* "FREEAIR" */, 0, 0, 1);
    const char *date = FMT("%08d", c->study_date);
    const char *time = FMT("%06d", c->study_time);
    const char *acq_time = FMT("%06d", (c->study_time + 100) % 240000);
    int ap = c->view_ap;
    double kvp = m->portable ? 90 : ap ? 110 : 120;
    double mas = m->portable ? 2.5 : 3.2;
    double sid = m->portable ? 1000 : ap ? 1500 : 1800;
    dicom_write_elem e[80];
    int ne = 0;
#define PUT(p, v) (e[ne].path = (p), e[ne].value = (v), ne++)
    PUT("ImageType", "ORIGINAL\\PRIMARY");
    PUT("InstanceCreationDate", date);
    PUT("InstanceCreationTime", time);
    PUT("SOPClassUID", m->is_cr ? SYNTH_SOP_CR : SYNTH_SOP_DX);
    PUT("SOPInstanceUID", std_cells[MANIFEST_COL_SOP_UID]);
    PUT("StudyDate", date);
    PUT("SeriesDate", date);
    PUT("AcquisitionDate", date);
    PUT("ContentDate", date);
    PUT("StudyTime", time);
    PUT("SeriesTime", time);
    PUT("AcquisitionTime", acq_time);
    PUT("ContentTime", acq_time);
    PUT("AccessionNumber", FMT("SYN%07d", c->index + 1));
    PUT("Modality", m->is_cr ? "CR" : "DX");
    if (!m->is_cr) PUT("PresentationIntentType", "FOR PRESENTATION");
    PUT("Manufacturer", m->manufacturer);
    PUT("InstitutionName", h->name);
    PUT("ReferringPhysicianName", "");
    PUT("StationName", m->station);
    PUT("StudyDescription", m->portable ? "XR CHEST PORTABLE 1 VIEW" : "XR CHEST 1 VIEW");
    PUT("SeriesDescription", ap ? (m->portable ? "CHEST AP PORTABLE" : "CHEST AP") : "CHEST PA");
    PUT("ManufacturerModelName", m->model);
    PUT("PatientName", FMT("SYNTH^%s", c->patient_id));
    PUT("PatientID", c->patient_id);
    PUT("PatientBirthDate", FMT("%08d", c->birth_date));
    PUT("PatientSex", c->sex == 'F' ? "F" : "M");
    PUT("PatientAge", FMT("%03dY", c->age));
    PUT("BodyPartExamined", "CHEST");
    PUT("KVP", FMT("%g", kvp));
    PUT("DeviceSerialNumber", m->serial);
    PUT("SoftwareVersions", "freeair synth 1");
    PUT("DistanceSourceToDetector", FMT("%g", sid));
    PUT("ExposureTime", FMT("%d", m->portable ? 10 : 8));
    PUT("XRayTubeCurrent", FMT("%d", (int)lround(mas * 1000 / (m->portable ? 10 : 8))));
    PUT("Exposure", FMT("%d", (int)lround(mas)));
    PUT("ImagerPixelSpacing", std_cells[MANIFEST_COL_PIXEL_SPACING]);
    PUT("ViewPosition", ap ? "AP" : "PA");
    PUT("StudyInstanceUID", std_cells[MANIFEST_COL_STUDY_UID]);
    PUT("SeriesInstanceUID", std_cells[MANIFEST_COL_SERIES_UID]);
    PUT("StudyID", FMT("%d", c->index + 1));
    PUT("SeriesNumber", "1");
    PUT("AcquisitionNumber", "1");
    PUT("InstanceNumber", "1");
    PUT("PatientOrientation", "L\\F");
    PUT("ImageComments", "SYNTHETIC IMAGE made by freeair synth; not a patient");
    PUT("PixelSpacing", std_cells[MANIFEST_COL_PIXEL_SPACING]);
    PUT("WindowCenter", FMT("%g", im->window_center));
    PUT("WindowWidth", FMT("%g", im->window_width));
    PUT("RescaleIntercept", "0");
    PUT("RescaleSlope", "1");
    PUT("RescaleType", "US");
    PUT("LossyImageCompression", "00");
    PUT("BurnedInAnnotation", "NO");
    if (!m->is_cr) {
        PUT("ImageLaterality", "U");
        PUT("PixelIntensityRelationship", "LOG");
        PUT("PixelIntensityRelationshipSign", m->mono1 ? "1" : "-1");
        PUT("PresentationLUTShape", m->mono1 ? "INVERSE" : "IDENTITY");
        PUT("DetectorType", "SCINTILLATOR");
        PUT("PositionerType", "");
        PUT("AnatomicRegionSequence[0].CodeValue", "43799004");
        PUT("AnatomicRegionSequence[0].CodingSchemeDesignator", "SCT");
        PUT("AnatomicRegionSequence[0].CodeMeaning", "Chest");
        PUT("ViewCodeSequence[0].CodeValue", ap ? "399348003" : "399182009");
        PUT("ViewCodeSequence[0].CodingSchemeDesignator", "SCT");
        PUT("ViewCodeSequence[0].CodeMeaning", ap ? "antero-posterior" : "postero-anterior");
        PUT("ViewCodeSequence[0].ViewModifierCodeSequence", "");
        PUT("AcquisitionContextSequence", "");
    }
#undef PUT
#undef FMT
    dicom_write_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.elems = e;
    spec.n_elems = ne;
    spec.rows = im->rows;
    spec.columns = im->cols;
    spec.bits_stored = im->bits_stored;
    spec.photometric = m->mono1 ? "MONOCHROME1" : "MONOCHROME2";
    spec.syntax = (dicom_write_syntax)syntax_of(c, force);
    spec.implementation_class_uid = impl_uid;
    spec.implementation_version = SYNTH_IMPL_VERSION;
    return dicom_write_image(path, &spec, im->stored, err);
}

static fa_status mkdir_p(const char *dir, fa_error *err) {
    char tmp[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof tmp) return fa_error_set(err, FA_ERR_ARG, "%s: bad directory name", dir);
    memcpy(tmp, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (tmp[i] != '/' && tmp[i] != 0) continue;
        char keep = tmp[i];
        tmp[i] = 0;
        if (mkdir(tmp, 0777) != 0 && errno != EEXIST) {
            int e = errno;
            return fa_error_set(err, FA_ERR_IO, "%s: %s", tmp, strerror(e));
        }
        struct stat sb;
        if (stat(tmp, &sb) != 0 || !S_ISDIR(sb.st_mode))
            return fa_error_set(err, FA_ERR_IO, "%s: not a directory", tmp);
        tmp[i] = keep;
    }
    return FA_OK;
}

/* Pick up to max diverse examples for the contact sheet. */
static int pick_sheet(const synth_plan *p, int n, int *out, int max) {
    int k = 0;
    char *used = calloc((size_t)n, 1);
    if (!used) return 0;
    /* wanted: label, side (-1 any), size class (-1 any), confounder bit (0 any), portable (-1 any), vendor (-1 any), postop */
    static const int want[][7] = {
        {1, SYNTH_SIDE_RIGHT, 2, 0, 0, -1, -1}, {1, SYNTH_SIDE_LEFT, -1, 0, -1, -1, -1},
        {1, SYNTH_SIDE_BOTH, -1, 0, -1, -1, -1}, {1, -1, 0, 0, -1, -1, -1},
        {1, -1, 1, 0, 1, -1, -1},               {1, -1, -1, 0, -1, -1, 1},
        {0, -1, -1, SYNTH_CF_GASTRIC_BUBBLE_LARGE, -1, -1, -1}, {0, -1, -1, SYNTH_CF_BASAL_LUCENCY, -1, -1, -1},
        {0, -1, -1, SYNTH_CF_CHILAIDITI, -1, -1, -1}, {0, -1, -1, SYNTH_CF_EFFUSION, -1, -1, -1},
        {0, -1, -1, SYNTH_CF_CONSOLIDATION, -1, -1, -1}, {0, -1, -1, SYNTH_CF_CARDIOMEGALY, -1, -1, -1},
        {0, -1, -1, 0, 1, -1, -1},              {0, -1, -1, 0, 0, SYNTH_VENDOR_PHILIPS, -1},
        {-1, -1, -1, 0, -1, SYNTH_VENDOR_FUJIFILM, -1}, {-1, -1, -1, 0, -1, SYNTH_VENDOR_SIEMENS, -1},
        {-1, -1, -1, 0, -1, SYNTH_VENDOR_KODAK, -1},    {-1, -1, -1, 0, -1, SYNTH_VENDOR_KONICA, -1},
    };
    for (size_t w = 0; w < sizeof want / sizeof want[0] && k < max; w++) {
        for (int i = 0; i < n; i++) {
            const synth_case *c = &p->cases[i];
            const synth_machine *m = &synth_machines[c->machine];
            int sz = c->free_air_mm < 5 ? 0 : c->free_air_mm < 15 ? 1 : 2;
            if (used[i]) continue;
            if (want[w][0] >= 0 && c->label != want[w][0]) continue;
            if (want[w][1] >= 0 && (int)c->side != want[w][1]) continue;
            if (want[w][2] >= 0 && sz != want[w][2]) continue;
            if (want[w][3] && !(c->confounders & (unsigned)want[w][3])) continue;
            if (want[w][4] >= 0 && m->portable != want[w][4]) continue;
            if (want[w][5] >= 0 && (int)m->vendor != want[w][5]) continue;
            if (want[w][6] >= 0 && c->postop != want[w][6]) continue;
            used[i] = 1;
            out[k++] = i;
            break;
        }
    }
    for (int i = 0; i < n && k < max; i++)
        if (!used[i]) used[i] = 1, out[k++] = i;
    free(used);
    return k;
}

static int cmp_rows_by_path(const void *a, const void *b) {
    char *const *ra = *(char **const *)a, *const *rb = *(char **const *)b;
    return strcmp(ra[0], rb[0]);
}

fa_status synth_generate(const synth_options *opts, synth_stats *stats, fa_error *err) {
    if (!opts || !opts->out_dir || !*opts->out_dir) return fa_error_set(err, FA_ERR_ARG, "synth: no output directory");
    double t0 = fa_now_seconds();
    synth_plan plan;
    fa_status st = synth_plan_make(opts->preset, opts->seed, opts->difficulty, &plan, err);
    if (st) return st;
    int n = plan.n;
    if (opts->limit > 0 && opts->limit < n) n = opts->limit;
    int ncols = MANIFEST_N_COLS + synth_n_truth_columns;
    char ***rows = calloc((size_t)n, sizeof *rows);
    int sheet_idx[24], n_sheet = 0;
    synth_tile tiles[24];
    memset(tiles, 0, sizeof tiles);
    int *sheet_slot = malloc((size_t)n * sizeof *sheet_slot);
    if (!rows || !sheet_slot) {
        free(rows), free(sheet_slot);
        synth_plan_free(&plan);
        return fa_error_set(err, FA_ERR_NOMEM, "synth: out of memory");
    }
    for (int i = 0; i < n; i++) sheet_slot[i] = -1;
    if (opts->contact_sheet && !opts->manifest_only) {
        n_sheet = pick_sheet(&plan, n, sheet_idx, 24);
        for (int i = 0; i < n_sheet; i++) sheet_slot[sheet_idx[i]] = i;
    }

    /* directories first, serially */
    char path[4096];
    if ((st = mkdir_p(opts->out_dir, err))) goto out;
    if (!opts->manifest_only) {
        for (int i = 0; i < n; i++) {
            const synth_case *c = &plan.cases[i];
            snprintf(path, sizeof path, "%s/%s/%s", opts->out_dir, synth_hospitals[synth_machines[c->machine].hospital].code,
                     c->patient_id);
            if ((st = mkdir_p(path, err))) goto out;
        }
        if (opts->masks) {
            snprintf(path, sizeof path, "%s/masks", opts->out_dir);
            if ((st = mkdir_p(path, err))) goto out;
        }
    }

    fa_progress prog;
    fa_progress_begin(&prog, opts->manifest_only ? "synth (manifest only)" : "synth", n);
    prog.quiet = opts->quiet;
    fa_jsonl log;
    if (fa_jsonl_open(&log, opts->log_path) != 0) {
        st = fa_error_set(err, FA_ERR_IO, "%s: %s", opts->log_path, strerror(errno));
        goto out;
    }
    int failed = 0, n_pos = 0;
    fa_error first_err;
    fa_error_clear(&first_err);
    int threads = opts->threads > 0 ? opts->threads : 0;

#pragma omp parallel for schedule(dynamic, 1) num_threads(threads > 0 ? threads : omp_get_max_threads())
    for (int i = 0; i < n; i++) {
        int stop;
#pragma omp atomic read
        stop = failed;
        if (stop) continue;
        const synth_case *c = &plan.cases[i];
        fa_error e;
        fa_error_clear(&e);
        fa_status s = FA_OK;
        synth_geom g;
        synth_geom_make(c, plan.difficulty, &g);
        char **cells = calloc((size_t)ncols, sizeof *cells);
        if (!cells) s = fa_error_set(&e, FA_ERR_NOMEM, "%s: out of memory", c->image_id);
        if (!s) s = standard_cells(&plan, c, opts->force_syntax, cells, &e);
        if (!s) s = synth_truth_cells(&plan, c, &g, cells + MANIFEST_N_COLS, &e);
        if (!s && opts->masks == 0) {
            free(cells[MANIFEST_N_COLS + 15]);
            cells[MANIFEST_N_COLS + 15] = dupstr("");
        }
        double ti = fa_now_seconds();
        if (!s && !opts->manifest_only) {
            synth_image im;
            s = synth_render(c, &g, plan.difficulty, &im, &e);
            char p[4096];
            if (!s) {
                snprintf(p, sizeof p, "%s/%s", opts->out_dir, cells[MANIFEST_COL_PATH]);
                s = write_dicom(c, &im, opts->force_syntax, p, cells, &e);
            }
            if (!s && c->label && opts->masks) {
                snprintf(p, sizeof p, "%s/masks/%s.png", opts->out_dir, c->image_id);
                size_t np = (size_t)im.rows * im.cols;
                for (size_t q = 0; q < np; q++) im.mask[q] = im.mask[q] ? 255 : 0;
                s = synth_write_png_gray(p, im.mask, im.cols, im.rows, &e);
                for (size_t q = 0; q < np; q++) im.mask[q] = im.mask[q] ? 1 : 0;
            }
            if (!s && sheet_slot[i] >= 0) {
                synth_tile *T = &tiles[sheet_slot[i]];
                s = synth_display8(&im, 168, &T->gray, &T->tw, &T->th, &e);
                if (!s && c->label) s = synth_thumb_mask(im.mask, im.cols, im.rows, T->tw, T->th, &T->mask, &e);
                const synth_machine *m = &synth_machines[c->machine];
                snprintf(T->text[0], 48, "%s %s", c->label ? "FREE AIR" : "NEGATIVE",
                         c->label ? side_name(c->side) : "");
                if (c->label)
                    snprintf(T->text[1], 48, "%.1fMM%s", c->free_air_mm, c->postop ? " POSTOP" : "");
                else
                    snprintf(T->text[1], 48, "%s", case_difficulty(c));
                snprintf(T->text[2], 48, "%s", cells[MANIFEST_N_COLS + 5]);
                if (strlen(T->text[2]) > 36) T->text[2][36] = 0;
                snprintf(T->text[3], 48, "%s %s %s %s", synth_vendor_names[m->vendor], m->portable ? "PORT" : "FIXED",
                         c->view_ap ? "AP" : "PA", m->mono1 ? "MONO1" : "MONO2");
            }
            synth_image_free(&im);
        }
        rows[i] = cells;
#pragma omp critical(synth_progress)
        {
            if (s) {
                if (!failed) first_err = e;
                failed = 1;
            } else {
                n_pos += c->label;
                fa_progress_add(&prog, 1);
                if (log.f) {
                    fa_jsonl_begin(&log, "synth_image");
                    fa_jsonl_str(&log, "image", c->image_id);
                    fa_jsonl_int(&log, "label", c->label);
                    fa_jsonl_num(&log, "seconds", fa_now_seconds() - ti);
                    fa_jsonl_end(&log);
                }
            }
        }
    }
    fa_progress_end(&prog);
    if (failed) {
        if (err) *err = first_err;
        st = first_err.code ? first_err.code : FA_ERR_INTERNAL;
        fa_jsonl_close(&log);
        goto out;
    }

    /* manifest.csv, rows sorted by path like `freeair scan` */
    qsort(rows, (size_t)n, sizeof *rows, cmp_rows_by_path);
    {
        char tmp[4096], final[4096];
        snprintf(final, sizeof final, "%s/manifest.csv", opts->out_dir);
        snprintf(tmp, sizeof tmp, "%s/manifest.csv.tmp", opts->out_dir);
        FILE *f = fopen(tmp, "w");
        if (!f) {
            st = fa_error_set(err, FA_ERR_IO, "%s: %s", final, strerror(errno));
            fa_jsonl_close(&log);
            goto out;
        }
        const char *hdr[MANIFEST_N_COLS + 64];
        for (int i = 0; i < MANIFEST_N_COLS; i++) hdr[i] = manifest_columns[i];
        for (int i = 0; i < synth_n_truth_columns; i++) hdr[MANIFEST_N_COLS + i] = synth_truth_columns[i];
        csv_write_row(f, ncols, hdr);
        for (int i = 0; i < n; i++) csv_write_row(f, ncols, (const char *const *)rows[i]);
        int bad = ferror(f);
        if (fclose(f) != 0) bad = 1;
        if (bad || rename(tmp, final) != 0) {
            st = fa_error_set(err, FA_ERR_IO, "%s: %s", final, strerror(errno));
            remove(tmp);
            fa_jsonl_close(&log);
            goto out;
        }
    }
    if (n_sheet > 0) st = synth_contact_sheet(opts->contact_sheet, tiles, n_sheet, 6, err);
    if (log.f) {
        fa_jsonl_begin(&log, "synth_done");
        fa_jsonl_int(&log, "images", n);
        fa_jsonl_int(&log, "positive", n_pos);
        fa_jsonl_num(&log, "seconds", fa_now_seconds() - t0);
        fa_jsonl_end(&log);
    }
    fa_jsonl_close(&log);
    if (stats) {
        stats->n_images = n;
        stats->n_written = opts->manifest_only ? 0 : n;
        stats->n_positive = n_pos;
        stats->n_patients = plan.n_patients;
        stats->seconds = fa_now_seconds() - t0;
    }
out:
    for (int i = 0; i < n; i++) {
        if (!rows[i]) continue;
        for (int j = 0; j < ncols; j++) free(rows[i][j]);
        free(rows[i]);
    }
    free(rows);
    free(sheet_slot);
    for (int i = 0; i < 24; i++) free(tiles[i].gray), free(tiles[i].mask);
    synth_plan_free(&plan);
    return st;
}
