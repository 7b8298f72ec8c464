/* dicom.c - the DICOM grey-scale pipeline in plain C, on the stored values
 * and attributes that the DCMTK shim (dicom_dcmtk.cpp) extracts.
 *
 * Order (PS3.3 C.11, engineering notes section 4):
 *   stored value -> Modality LUT (Modality LUT Sequence if present, else
 *   rescale slope/intercept) -> VOI (first window centre/width with its
 *   VOI LUT Function; else the VOI LUT Sequence; else an automatic window on
 *   the 0.5-99.5 percentiles of the modality values) -> presentation
 *   (inverted when MONOCHROME1 or Presentation LUT Shape INVERSE, so bone is
 *   bright).
 * The window wins over a VOI LUT Sequence when a file has both: it is what
 * the modality marked as the default view, and it is what DCMTK's dcmj2pnm
 * applies with +Wi 1.
 * The pipeline is a pure function of the stored value (the auto window
 * only needs a histogram), so it is evaluated once per possible stored value
 * (at most 65536) into a table; the output is computed in double precision
 * and rounded once, to 16 bits.
 */
#include "data/dicom.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/dicom_shim.h"

/* Stored-value range of the raw data. */
static void stored_range(const dicom_raw *raw, int32_t *smin, int32_t *smax) {
    if (raw->pixel_rep) {
        *smin = -(1 << (raw->bits_stored - 1));
        *smax = (1 << (raw->bits_stored - 1)) - 1;
    } else {
        *smin = 0;
        *smax = (int32_t)((1u << raw->bits_stored) - 1u);
    }
}

static double lut_lookup(const dicom_lut *lut, double x) {
    double i = floor(x + 0.5) - lut->first;
    if (i < 0) i = 0;
    if (i > lut->n - 1) i = lut->n - 1;
    return lut->data[(size_t)i];
}

static double modality_value(const dicom_raw *raw, int32_t s) {
    if (raw->modality_lut.n > 0) return lut_lookup(&raw->modality_lut, s);
    return raw->slope * s + raw->intercept;
}

/* Smallest modality output the stored range can produce (the offset of the
 * MODALITY stage): 0 for a LUT (unsigned entries), else the rescale of the
 * end of the stored range that maps lowest. */
static double modality_min(const dicom_raw *raw) {
    if (raw->modality_lut.n > 0) return 0.0;
    int32_t smin, smax;
    stored_range(raw, &smin, &smax);
    double a = raw->slope * smin + raw->intercept, b = raw->slope * smax + raw->intercept;
    return a < b ? a : b;
}

static double clamp16(double y) {
    if (!(y > 0.0)) return 0.0; /* also catches NaN */
    if (y > 65535.0) return 65535.0;
    return floor(y + 0.5);
}

/* PS3.3 C.11.2.1.2 with output range 0..65535. */
static double window_value(dicom_voi_function f, double c, double w, double x) {
    const double ymax = 65535.0;
    switch (f) {
    case DICOM_VOI_LINEAR_EXACT:
        if (x <= c - w / 2) return 0.0;
        if (x > c + w / 2) return ymax;
        return ((x - c) / w + 0.5) * ymax;
    case DICOM_VOI_SIGMOID: return ymax / (1.0 + exp(-4.0 * (x - c) / w));
    case DICOM_VOI_LINEAR:
    default:
        if (x <= c - 0.5 - (w - 1) / 2) return 0.0;
        if (x > c - 0.5 + (w - 1) / 2) return ymax;
        return ((x - (c - 0.5)) / (w - 1) + 0.5) * ymax;
    }
}

typedef struct mod_count {
    double value;
    size_t count;
} mod_count;

static int cmp_mod(const void *a, const void *b) {
    double x = ((const mod_count *)a)->value, y = ((const mod_count *)b)->value;
    return (x > y) - (x < y);
}

fa_status dicom_auto_window(const dicom_raw *raw, double *lo, double *hi, fa_error *err) {
    *lo = *hi = 0.0;
    int32_t smin, smax;
    stored_range(raw, &smin, &smax);
    size_t range = (size_t)(smax - smin) + 1;
    size_t *hist = fa_calloc_array(range, sizeof *hist);
    mod_count *mc = fa_malloc_array(range, sizeof *mc);
    if (!hist || !mc) {
        free(hist);
        free(mc);
        return fa_error_set(err, FA_ERR_NOMEM, "auto window: out of memory");
    }
    size_t npix = (size_t)raw->rows * (size_t)raw->cols, total = 0;
    for (size_t i = 0; i < npix; i++) {
        int32_t s = raw->values[i];
        if (raw->has_padding && s == raw->padding_value) continue;
        hist[s - smin]++;
        total++;
    }
    if (total == 0) { /* all padding: fall back to every pixel */
        for (size_t i = 0; i < npix; i++) hist[raw->values[i] - smin]++;
        total = npix;
    }
    size_t m = 0;
    for (size_t k = 0; k < range; k++)
        if (hist[k]) mc[m].value = modality_value(raw, (int32_t)k + smin), mc[m++].count = hist[k];
    qsort(mc, m, sizeof *mc, cmp_mod);
    size_t rank_lo = (size_t)floor(0.005 * (double)(total - 1));
    size_t rank_hi = (size_t)ceil(0.995 * (double)(total - 1));
    size_t cum = 0;
    int got_lo = 0;
    for (size_t k = 0; k < m; k++) {
        cum += mc[k].count; /* ranks [cum - count, cum) hold this value */
        if (!got_lo && rank_lo < cum) *lo = mc[k].value, got_lo = 1;
        if (rank_hi < cum) {
            *hi = mc[k].value;
            break;
        }
    }
    free(hist);
    free(mc);
    return FA_OK;
}

fa_status dicom_pipeline(const dicom_raw *raw, dicom_stage stage, const char *name, fa_image *out, fa_error *err) {
    memset(out, 0, sizeof *out);
    if (!raw->values || raw->bits_stored < 1 || raw->bits_stored > 16)
        return fa_error_set(err, FA_ERR_ARG, "%s: no stored values to render", name);
    int32_t smin, smax;
    stored_range(raw, &smin, &smax);
    size_t range = (size_t)(smax - smin) + 1;
    uint16_t *table = fa_malloc_array(range, sizeof *table);
    if (!table) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", name);

    if (stage == DICOM_STAGE_RAW) {
        for (size_t k = 0; k < range; k++) table[k] = (uint16_t)k; /* s - smin */
    } else if (stage == DICOM_STAGE_MODALITY) {
        double off = modality_min(raw);
        for (size_t k = 0; k < range; k++) table[k] = (uint16_t)clamp16(modality_value(raw, (int32_t)k + smin) - off);
    } else {
        /* VOI choice, in order of precedence. */
        int use_window = raw->has_window, use_lut = !use_window && raw->voi_lut.n > 0;
        double lo = 0, hi = 0;
        if (raw->from_colour) {
            lo = smin, hi = smax; /* colour: no VOI, full range */
        } else if (!use_window && !use_lut) {
            fa_status rc = dicom_auto_window(raw, &lo, &hi, err);
            if (rc != FA_OK) {
                free(table);
                return fa_error_prefix(err, "%s", name);
            }
        }
        if (hi <= lo) hi = lo + 1;
        double lut_scale = raw->voi_lut.n > 0 ? 65535.0 / (double)((1u << raw->voi_lut.bits) - 1u) : 1.0;
        int invert = raw->monochrome1 || raw->presentation_inverse;
        for (size_t k = 0; k < range; k++) {
            double x = modality_value(raw, (int32_t)k + smin), y;
            if (raw->from_colour)
                y = (x - lo) / (hi - lo) * 65535.0;
            else if (use_window)
                y = window_value(raw->voi_function, raw->window_center, raw->window_width, x);
            else if (use_lut)
                y = lut_lookup(&raw->voi_lut, x) * lut_scale;
            else
                y = (x - lo) / (hi - lo) * 65535.0;
            y = clamp16(y);
            table[k] = (uint16_t)(invert ? 65535.0 - y : y);
        }
    }
    fa_status rc = image_alloc(out, raw->cols, raw->rows, err);
    if (rc != FA_OK) {
        free(table);
        return fa_error_prefix(err, "%s", name);
    }
    size_t npix = (size_t)raw->rows * (size_t)raw->cols;
    for (size_t i = 0; i < npix; i++) {
        int32_t s = raw->values[i];
        if (s < smin) s = smin; /* values are masked by the shim; guard anyway */
        if (s > smax) s = smax;
        out->pixels[i] = table[s - smin];
    }
    out->spacing_row_mm = raw->spacing_row_mm;
    out->spacing_col_mm = raw->spacing_col_mm;
    free(table);
    return FA_OK;
}

fa_status dicom_decode(const char *path, dicom_stage stage, fa_image *out, char *warning, size_t warning_cap,
                       fa_error *err) {
    memset(out, 0, sizeof *out);
    dicom_raw raw;
    fa_status rc = dicom_shim_load(path, &raw, warning, warning_cap, err);
    if (rc != FA_OK) return rc;
    rc = dicom_pipeline(&raw, stage, path, out, err);
    dicom_raw_free(&raw);
    return rc;
}
