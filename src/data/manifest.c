/* manifest.c - scan image files into a manifest, the chest gate, and the
 * merge of user columns (see manifest.h for the columns and the rules). */
#include "data/manifest.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fa_progress.h"
#include "data/image.h"

const char *const manifest_columns[MANIFEST_N_COLS] = {
    "path",         "status",       "reason",       "patient_id",       "study_uid",
    "series_uid",   "sop_uid",      "modality",     "body_part",        "view",
    "manufacturer", "model",        "station",      "institution",      "sex",
    "age",          "acquisition_date", "rows",     "columns",          "pixel_spacing",
    "bits_stored",  "photometric",  "transfer_syntax", "presentation_intent",
};

int manifest_column_index(const char *name) {
    for (int c = 0; c < MANIFEST_N_COLS; c++)
        if (!strcmp(manifest_columns[c], name)) return c;
    return -1;
}

/* ---- small string helpers ---------------------------------------------- */

static void copy_str(char *dst, size_t cap, const char *src) {
    if (!cap) return;
    snprintf(dst, cap, "%s", src ? src : "");
}

/* Split s into upper-case words at every non-alphanumeric byte. Returns the
 * number of words (at most max); words point into buf. */
#define MAX_WORDS 16
static int split_words(const char *s, char *buf, size_t cap, char **words, int max) {
    copy_str(buf, cap, s);
    int n = 0;
    char *p = buf;
    while (*p) {
        while (*p && !isalnum((unsigned char)*p)) p++;
        if (!*p) break;
        char *start = p;
        while (*p && isalnum((unsigned char)*p)) {
            *p = (char)toupper((unsigned char)*p);
            p++;
        }
        if (*p) *p++ = '\0';
        if (n < max) words[n++] = start;
    }
    return n;
}

static int word_in(const char *w, const char *const *list) {
    for (; *list; list++)
        if (!strcmp(w, *list)) return 1;
    return 0;
}

/* Upper-cased copy with leading/trailing white space removed. */
static void upper_trim(const char *s, char *out, size_t cap) {
    if (!cap) return;
    if (!s) s = "";
    while (*s && isspace((unsigned char)*s)) s++;
    size_t n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1])) n--;
    if (n >= cap) n = cap - 1;
    for (size_t i = 0; i < n; i++) out[i] = (char)toupper((unsigned char)s[i]);
    out[n] = '\0';
}

/* ---- chest gate ---------------------------------------------------------- */

int manifest_is_radiograph_modality(const char *modality) {
    char m[32];
    upper_trim(modality, m, sizeof m);
    return !strcmp(m, "CR") || !strcmp(m, "DX") || !strcmp(m, "DR");
}

int manifest_is_chest_body_part(const char *body_part) {
    static const char *const chest[] = {"CHEST",   "THORAX", "THORACIC", "LUNG",     "LUNGS", "CXR",
                                        "TORAX",   "TORACE", "TORACO",   "POITRINE", "THORAKS", NULL};
    static const char *const not_chest[] = {"RIB",      "RIBS",     "RIBCAGE", "SPINE", "TSPINE", "STERNUM",
                                            "CLAVICLE", "SHOULDER", "BREAST",  "HEART", NULL};
    char buf[DICOM_STR];
    char *w[MAX_WORDS];
    int n = split_words(body_part, buf, sizeof buf, w, MAX_WORDS);
    int chest_word = 0;
    for (int i = 0; i < n; i++) {
        if (word_in(w[i], not_chest)) return 0;
        /* Vendors glue the view on: "CHESTPA", "THORAXAP". */
        if (word_in(w[i], chest) || !strncmp(w[i], "CHEST", 5) || !strncmp(w[i], "THORAX", 6)) chest_word = 1;
    }
    return chest_word;
}

static int is_lateral_word(const char *w) {
    static const char *const lat[] = {"LL", "RL", "LLD", "RLD", "LLAT", "RLAT", NULL};
    return word_in(w, lat) || !strncmp(w, "LAT", 3);
}

int manifest_view_kind(const char *view) {
    char buf[DICOM_STR];
    char *w[MAX_WORDS];
    int n = split_words(view, buf, sizeof buf, w, MAX_WORDS);
    if (n == 0) return 0;
    int frontal = 0;
    for (int i = 0; i < n; i++) {
        if (is_lateral_word(w[i])) return 2;
        if (!strcmp(w[i], "AP") || !strcmp(w[i], "PA")) frontal = 1;
    }
    return frontal ? 1 : -1;
}

static void reason_add(char *reason, size_t cap, int *count, const char *fmt, const char *detail) {
    size_t used = strlen(reason);
    if (used + 3 >= cap) return;
    if (*count > 0) {
        memcpy(reason + used, "; ", 3);
        used += 2;
    }
    snprintf(reason + used, cap - used, fmt, detail);
    (*count)++;
}

int manifest_gate(const char *const *cells, char *reason, size_t cap) {
    int n = 0;
    if (cap) reason[0] = '\0';
    const char *modality = cells[MANIFEST_COL_MODALITY] ? cells[MANIFEST_COL_MODALITY] : "";
    const char *body = cells[MANIFEST_COL_BODY_PART] ? cells[MANIFEST_COL_BODY_PART] : "";
    const char *view = cells[MANIFEST_COL_VIEW] ? cells[MANIFEST_COL_VIEW] : "";
    const char *intent = cells[MANIFEST_COL_PRESENTATION_INTENT] ? cells[MANIFEST_COL_PRESENTATION_INTENT] : "";
    char t[DICOM_STR];
    upper_trim(modality, t, sizeof t);
    if (t[0] && !manifest_is_radiograph_modality(t))
        reason_add(reason, cap, &n, "not_radiograph: modality %s is not CR, DX or DR", t);
    upper_trim(body, t, sizeof t);
    if (t[0] && !manifest_is_chest_body_part(t)) reason_add(reason, cap, &n, "not_chest: body part %s", t);
    upper_trim(view, t, sizeof t);
    int kind = manifest_view_kind(t);
    if (kind == 2) reason_add(reason, cap, &n, "lateral_view: view %s", t);
    if (kind == -1) reason_add(reason, cap, &n, "unknown_view: view %s is not AP or PA", t);
    upper_trim(intent, t, sizeof t);
    if (strstr(t, "PROCESSING")) reason_add(reason, cap, &n, "for_processing: presentation intent %s", t);
    return n;
}

/* ---- view and age ---------------------------------------------------------- */

/* Normalise a stated view: "AP"/"PA" for frontal values ("AP SUPINE" too),
 * else the value upper-cased and trimmed. */
static void view_normalise(const char *v, char *out, size_t cap) {
    char t[DICOM_STR];
    upper_trim(v, t, sizeof t);
    if (manifest_view_kind(t) == 1) {
        char buf[DICOM_STR];
        char *w[MAX_WORDS];
        int n = split_words(t, buf, sizeof buf, w, MAX_WORDS);
        for (int i = 0; i < n; i++)
            if (!strcmp(w[i], "AP") || !strcmp(w[i], "PA")) {
                copy_str(out, cap, w[i]);
                return;
            }
    }
    copy_str(out, cap, t);
}

/* Patient-position codes and patient-orientation words that say nothing about
 * the beam direction; PatientPosition holding one of them is not a view. */
static int is_patient_position_code(const char *v) {
    static const char *const codes[] = {"HFS",  "HFP",  "FFS",     "FFP",    "HFDR",   "HFDL",      "FFDR",
                                        "FFDL", "HFI",  "FFI",     "LFP",    "LFS",    "RFP",       "RFS",
                                        "AFDR", "AFDL", "PFDR",    "PFDL",   "ERECT",  "STANDING",  "SUPINE",
                                        "PRONE", "SITTING", "RECUMBENT", "UPRIGHT", "SEMI", "SEMIERECT", NULL};
    char t[DICOM_STR];
    upper_trim(v, t, sizeof t);
    return word_in(t, codes);
}

/* View from a free-text description: AP or PA when exactly one of them
 * appears and no lateral word; LATERAL when only lateral words; else 0. */
static int view_from_description(const char *desc, char *out, size_t cap) {
    /* "p.a." and "a.p." are common in descriptions: join them before
     * splitting into words. */
    char joined[DICOM_STR];
    size_t j = 0, n_in = strlen(desc);
    for (size_t i = 0; i < n_in && j + 1 < sizeof joined; i++) {
        char a = (char)toupper((unsigned char)desc[i]);
        int start = i == 0 || !isalnum((unsigned char)desc[i - 1]);
        if (start && i + 2 < n_in && (a == 'A' || a == 'P') && desc[i + 1] == '.') {
            char b = (char)toupper((unsigned char)desc[i + 2]);
            int end = i + 3 >= n_in || !isalnum((unsigned char)desc[i + 3]);
            if (end && b == (a == 'A' ? 'P' : 'A')) {
                joined[j++] = a;
                if (j + 1 < sizeof joined) joined[j++] = b;
                i += 2;
                continue;
            }
        }
        joined[j++] = desc[i];
    }
    joined[j] = '\0';
    char buf[DICOM_STR];
    char *w[MAX_WORDS];
    int n = split_words(joined, buf, sizeof buf, w, MAX_WORDS);
    int ap = 0, pa = 0, lat = 0;
    for (int i = 0; i < n; i++) {
        if (!strcmp(w[i], "AP")) ap = 1;
        else if (!strcmp(w[i], "PA")) pa = 1;
        else if (is_lateral_word(w[i])) lat = 1;
    }
    if (ap + pa == 1 && !lat) {
        copy_str(out, cap, ap ? "AP" : "PA");
        return 1;
    }
    if (!ap && !pa && lat) {
        copy_str(out, cap, "LATERAL");
        return 1;
    }
    return 0;
}

void manifest_view(const dicom_header *h, char *out, size_t cap) {
    char t[DICOM_STR];
    upper_trim(h->view_position, t, sizeof t);
    if (t[0]) {
        view_normalise(t, out, cap);
        return;
    }
    upper_trim(h->patient_position, t, sizeof t);
    if (t[0] && !is_patient_position_code(t)) {
        view_normalise(t, out, cap);
        return;
    }
    if (view_from_description(h->series_description, out, cap)) return;
    if (view_from_description(h->study_description, out, cap)) return;
    copy_str(out, cap, "");
}

static int parse_date(const char *s, int *y, int *m, int *d) {
    if (!s || strlen(s) < 8) return 0;
    for (int i = 0; i < 8; i++)
        if (!isdigit((unsigned char)s[i])) return 0;
    *y = (s[0] - '0') * 1000 + (s[1] - '0') * 100 + (s[2] - '0') * 10 + (s[3] - '0');
    *m = (s[4] - '0') * 10 + (s[5] - '0');
    *d = (s[6] - '0') * 10 + (s[7] - '0');
    return *m >= 1 && *m <= 12 && *d >= 1 && *d <= 31;
}

void manifest_age_years(const char *age, const char *birth_date, const char *study_date, char *out,
                        size_t cap) {
    copy_str(out, cap, "");
    char t[32];
    upper_trim(age, t, sizeof t);
    if (t[0]) {
        const char *p = t;
        long n = 0;
        int digits = 0;
        while (isdigit((unsigned char)*p) && digits < 6) {
            n = n * 10 + (*p - '0');
            p++;
            digits++;
        }
        if (!digits) return;
        char unit = 'Y';
        if (*p && strchr("YMWD", *p)) unit = *p++;
        while (*p == ' ') p++;
        if (*p) return;
        if (unit == 'Y') {
            if (n > 150) return; /* not a plausible age in years */
            snprintf(out, cap, "%ld", n);
            return;
        }
        double years = unit == 'M' ? n / 12.0 : unit == 'W' ? n * 7.0 / 365.25 : n / 365.25;
        if (years > 150) return;
        snprintf(out, cap, "%.3g", years);
        return;
    }
    int by, bm, bd, sy, sm, sd;
    if (!parse_date(birth_date, &by, &bm, &bd) || !parse_date(study_date, &sy, &sm, &sd)) return;
    int years = sy - by - ((sm * 100 + sd) < (bm * 100 + bd));
    if (years < 0 || years > 150) return;
    snprintf(out, cap, "%d", years);
}

/* ---- one file -------------------------------------------------------------- */

static int put(char **cells, int col, const char *value) {
    char *s = strdup(value ? value : "");
    if (!s) return 0;
    free(cells[col]);
    cells[col] = s;
    return 1;
}

static int put_int(char **cells, int col, int v) {
    char b[32] = "";
    if (v > 0) snprintf(b, sizeof b, "%d", v);
    return put(cells, col, b);
}

/* Width, height, bit depth and colour of a PNG or JPEG from its header. */
typedef struct raster_info {
    int width, height, bits, channels;
} raster_info;

static int read_png_info(FILE *f, raster_info *ri) {
    unsigned char b[26];
    if (fread(b, 1, sizeof b, f) != sizeof b) return 0;
    if (memcmp(b, "\x89PNG\r\n\x1a\n", 8) || memcmp(b + 12, "IHDR", 4)) return 0;
    ri->width = (int)(((unsigned)b[16] << 24 | (unsigned)b[17] << 16 | (unsigned)b[18] << 8 | b[19]) & 0x7fffffff);
    ri->height = (int)(((unsigned)b[20] << 24 | (unsigned)b[21] << 16 | (unsigned)b[22] << 8 | b[23]) & 0x7fffffff);
    ri->bits = b[24];
    static const int channels[7] = {1, 0, 3, 3, 2, 0, 4};
    ri->channels = b[25] < 7 ? channels[b[25]] : 0;
    if (b[25] == 3) ri->channels = -3; /* palette */
    return ri->width > 0 && ri->height > 0 && ri->channels != 0;
}

static int read_jpeg_info(FILE *f, raster_info *ri) {
    unsigned char b[8];
    if (fread(b, 1, 2, f) != 2 || b[0] != 0xFF || b[1] != 0xD8) return 0;
    for (int guard = 0; guard < 4096; guard++) {
        int c = fgetc(f);
        if (c != 0xFF) return 0;
        do c = fgetc(f);
        while (c == 0xFF);
        if (c == EOF) return 0;
        if (c == 0xD8 || c == 0x01 || (c >= 0xD0 && c <= 0xD7)) continue; /* no length */
        if (c == 0xD9 || c == 0xDA) return 0;                            /* no frame header */
        if (fread(b, 1, 2, f) != 2) return 0;
        int len = b[0] << 8 | b[1];
        if (len < 2) return 0;
        if (c >= 0xC0 && c <= 0xCF && c != 0xC4 && c != 0xC8 && c != 0xCC) {
            if (len < 8 || fread(b, 1, 6, f) != 6) return 0;
            ri->bits = b[0];
            ri->height = b[1] << 8 | b[2];
            ri->width = b[3] << 8 | b[4];
            ri->channels = b[5];
            return ri->width > 0 && ri->height > 0 && ri->channels > 0;
        }
        if (fseek(f, len - 2, SEEK_CUR) != 0) return 0;
    }
    return 0;
}

static const char *raster_photometric(int channels) {
    switch (channels) {
    case 1:
    case 2: return "MONOCHROME2";
    case -3: return "PALETTE COLOR";
    default: return "RGB";
    }
}

/* The readers' messages start with the path; the row already names it. */
static const char *without_path(const char *msg, const char *path) {
    size_t n = strlen(path);
    return !strncmp(msg, path, n) && msg[n] == ':' && msg[n + 1] == ' ' ? msg + n + 2 : msg;
}

static void error_cells(char **cells, const char *reason, int *ok) {
    *ok &= put(cells, MANIFEST_COL_STATUS, MANIFEST_STATUS_ERROR);
    *ok &= put(cells, MANIFEST_COL_REASON, reason);
}

/* Fill cells; *format_known is set to 0 when the content is not an image
 * format freeair knows (the walk may then skip the file). */
static fa_status scan_one(const char *path, int verify, char **cells, int *format_known, fa_error *err) {
    int ok = 1;
    for (int c = 0; c < MANIFEST_N_COLS; c++) {
        cells[c] = strdup("");
        ok &= cells[c] != NULL;
    }
    ok &= put(cells, MANIFEST_COL_PATH, path);
    *format_known = 1;
    char reason[FA_ERROR_MSG_MAX + 1024] = "";
    int n_err = 0;

    struct stat st;
    errno = 0;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(reason, sizeof reason, "unreadable: %s", errno ? strerror(errno) : "not a regular file");
        error_cells(cells, reason, &ok);
        goto done;
    }
    image_format fmt = image_detect_format(path);
    dicom_header *h = NULL;
    if (fmt == IMAGE_FORMAT_UNKNOWN) {
        *format_known = 0;
        error_cells(cells, "unreadable: not a DICOM, PNG or JPEG file", &ok);
        goto done;
    }
    if (fmt == IMAGE_FORMAT_DICOM) {
        h = calloc(1, sizeof *h);
        if (!h) {
            ok = 0;
            goto done;
        }
        fa_error herr = {0};
        fa_status hs = dicom_read_header(path, h, &herr);
        if (hs != FA_OK) {
            free(h);
            snprintf(reason, sizeof reason, "unreadable: %s",
                     herr.msg[0] ? without_path(herr.msg, path) : "cannot read DICOM header");
            error_cells(cells, reason, &ok);
            goto done;
        }
        char view[DICOM_STR], age[32], spacing[80] = "";
        manifest_view(h, view, sizeof view);
        manifest_age_years(h->age, h->birth_date, h->acquisition_date, age, sizeof age);
        if (h->pixel_spacing_row > 0 && h->pixel_spacing_col > 0)
            snprintf(spacing, sizeof spacing, "%.6g\\%.6g", h->pixel_spacing_row, h->pixel_spacing_col);
        const char *intent = h->presentation_intent;
        /* The DX, MG and IO "For Processing" SOP classes end in .1.1. */
        if (!intent[0] && (!strcmp(h->sop_class_uid, "1.2.840.10008.5.1.4.1.1.1.1.1") ||
                           !strcmp(h->sop_class_uid, "1.2.840.10008.5.1.4.1.1.1.2.1") ||
                           !strcmp(h->sop_class_uid, "1.2.840.10008.5.1.4.1.1.1.3.1")))
            intent = "FOR PROCESSING";
        ok &= put(cells, MANIFEST_COL_PATIENT_ID, h->patient_id);
        ok &= put(cells, MANIFEST_COL_STUDY_UID, h->study_uid);
        ok &= put(cells, MANIFEST_COL_SERIES_UID, h->series_uid);
        ok &= put(cells, MANIFEST_COL_SOP_UID, h->sop_uid);
        ok &= put(cells, MANIFEST_COL_MODALITY, h->modality);
        ok &= put(cells, MANIFEST_COL_BODY_PART, h->body_part);
        ok &= put(cells, MANIFEST_COL_VIEW, view);
        ok &= put(cells, MANIFEST_COL_MANUFACTURER, h->manufacturer);
        ok &= put(cells, MANIFEST_COL_MODEL, h->model);
        ok &= put(cells, MANIFEST_COL_STATION, h->station);
        ok &= put(cells, MANIFEST_COL_INSTITUTION, h->institution);
        ok &= put(cells, MANIFEST_COL_SEX, h->sex);
        ok &= put(cells, MANIFEST_COL_AGE, age);
        ok &= put(cells, MANIFEST_COL_ACQUISITION_DATE, h->acquisition_date);
        ok &= put_int(cells, MANIFEST_COL_ROWS, h->rows);
        ok &= put_int(cells, MANIFEST_COL_COLUMNS, h->columns);
        ok &= put(cells, MANIFEST_COL_PIXEL_SPACING, spacing);
        ok &= put_int(cells, MANIFEST_COL_BITS_STORED, h->bits_stored);
        ok &= put(cells, MANIFEST_COL_PHOTOMETRIC, h->photometric);
        ok &= put(cells, MANIFEST_COL_TRANSFER_SYNTAX, h->transfer_syntax);
        ok &= put(cells, MANIFEST_COL_PRESENTATION_INTENT, intent);
        if (!h->has_pixel_data) reason_add(reason, sizeof reason, &n_err, "%s", "no_pixel_data: the file has no Pixel Data");
        free(h);
    } else {
        FILE *f = fopen(path, "rb");
        raster_info ri = {0};
        int got = f && (fmt == IMAGE_FORMAT_PNG ? read_png_info(f, &ri) : read_jpeg_info(f, &ri));
        if (f) fclose(f);
        if (!got) {
            snprintf(reason, sizeof reason, "unreadable: truncated or malformed %s header",
                     fmt == IMAGE_FORMAT_PNG ? "PNG" : "JPEG");
            error_cells(cells, reason, &ok);
            goto done;
        }
        ok &= put_int(cells, MANIFEST_COL_ROWS, ri.height);
        ok &= put_int(cells, MANIFEST_COL_COLUMNS, ri.width);
        ok &= put_int(cells, MANIFEST_COL_BITS_STORED, ri.bits);
        ok &= put(cells, MANIFEST_COL_PHOTOMETRIC, raster_photometric(ri.channels));
    }
    {
        /* Errors first, then every gate reason, so one pass shows all. Only
         * images that pass the gate are worth a (slow) verifying decode. */
        char gate[1024];
        int n_gate = manifest_gate((const char *const *)cells, gate, sizeof gate);
        if (verify && n_err == 0 && n_gate == 0) {
            fa_image im = {0};
            fa_error derr = {0};
            char warn[256] = "";
            if (image_load(path, &im, warn, sizeof warn, &derr) != FA_OK)
                reason_add(reason, sizeof reason, &n_err, "decode_failed: %s",
                           derr.msg[0] ? without_path(derr.msg, path) : "decode failed");
            image_free(&im);
        }
        int n_hard = n_err;
        if (n_gate) reason_add(reason, sizeof reason, &n_err, "%s", gate);
        ok &= put(cells, MANIFEST_COL_STATUS,
                  n_hard ? MANIFEST_STATUS_ERROR : n_gate ? MANIFEST_STATUS_EXCLUDED : MANIFEST_STATUS_OK);
        ok &= put(cells, MANIFEST_COL_REASON, reason);
    }
done:
    if (!ok) {
        for (int c = 0; c < MANIFEST_N_COLS; c++) {
            free(cells[c]);
            cells[c] = NULL;
        }
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
    }
    return FA_OK;
}

fa_status manifest_scan_file(const char *path, int verify, char **cells, fa_error *err) {
    int known;
    return scan_one(path, verify, cells, &known, err);
}

/* ---- table helpers ---------------------------------------------------------- */

fa_status manifest_init(csv_table *m, fa_error *err) {
    memset(m, 0, sizeof *m);
    m->header = calloc(MANIFEST_N_COLS, sizeof *m->header);
    if (!m->header) return fa_error_set(err, FA_ERR_NOMEM, "manifest: out of memory");
    m->n_cols = MANIFEST_N_COLS;
    for (int c = 0; c < MANIFEST_N_COLS; c++) {
        m->header[c] = strdup(manifest_columns[c]);
        if (!m->header[c]) {
            csv_free(m);
            return fa_error_set(err, FA_ERR_NOMEM, "manifest: out of memory");
        }
    }
    return FA_OK;
}

fa_status manifest_check_columns(const csv_table *t, const char *name, fa_error *err) {
    for (int c = 0; c < MANIFEST_N_COLS; c++) {
        if (c >= t->n_cols)
            return fa_error_set(err, FA_ERR_FORMAT, "%s: not a freeair manifest: column %d should be '%s' but the file has %d columns",
                                name, c + 1, manifest_columns[c], t->n_cols);
        if (strcmp(t->header[c], manifest_columns[c]))
            return fa_error_set(err, FA_ERR_FORMAT, "%s: not a freeair manifest: column %d is '%s', expected '%s'", name,
                                c + 1, t->header[c], manifest_columns[c]);
    }
    return FA_OK;
}

fa_status manifest_add_column(csv_table *t, const char *name, int *col, fa_error *err) {
    int c = csv_column(t, name);
    if (c >= 0) {
        *col = c;
        return FA_OK;
    }
    char *hname = strdup(name);
    char **header = hname ? realloc(t->header, (size_t)(t->n_cols + 1) * sizeof *header) : NULL;
    if (!header) {
        free(hname);
        return fa_error_set(err, FA_ERR_NOMEM, "manifest: out of memory adding column %s", name);
    }
    t->header = header;
    /* Grow every row first; the column count changes only when all succeeded. */
    for (int r = 0; r < t->n_rows; r++) {
        char *cell = strdup("");
        char **row = cell ? realloc(t->rows[r], (size_t)(t->n_cols + 1) * sizeof *row) : NULL;
        if (!row) {
            free(cell);
            for (int q = 0; q < r; q++) free(t->rows[q][t->n_cols]);
            free(hname);
            return fa_error_set(err, FA_ERR_NOMEM, "manifest: out of memory adding column %s", name);
        }
        row[t->n_cols] = cell;
        t->rows[r] = row;
    }
    header[t->n_cols] = hname;
    *col = t->n_cols++;
    return FA_OK;
}

fa_status manifest_set_cell(csv_table *t, int row, int col, const char *value, fa_error *err) {
    if (row < 0 || row >= t->n_rows || col < 0 || col >= t->n_cols)
        return fa_error_set(err, FA_ERR_INTERNAL, "manifest: cell (%d, %d) out of range", row, col);
    char *s = strdup(value ? value : "");
    if (!s) return fa_error_set(err, FA_ERR_NOMEM, "manifest: out of memory");
    free(t->rows[row][col]);
    t->rows[row][col] = s;
    return FA_OK;
}

fa_status manifest_write(FILE *f, const csv_table *t, const char *name, fa_error *err) {
    csv_write_row(f, t->n_cols, (const char *const *)t->header);
    for (int r = 0; r < t->n_rows; r++) csv_write_row(f, t->n_cols, (const char *const *)t->rows[r]);
    if (fflush(f) != 0 || ferror(f)) return fa_error_set(err, FA_ERR_IO, "%s: write failed: %s", name, strerror(errno));
    return FA_OK;
}

fa_status manifest_write_file(const char *path, const csv_table *t, fa_error *err) {
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return fa_error_set(err, FA_ERR_ARG, "%s: path too long", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    fa_status st = manifest_write(f, t, path, err);
    if (st == FA_OK && fsync(fileno(f)) != 0) st = fa_error_set(err, FA_ERR_IO, "%s: fsync: %s", path, strerror(errno));
    if (fclose(f) != 0 && st == FA_OK) st = fa_error_set(err, FA_ERR_IO, "%s: %s", path, strerror(errno));
    if (st == FA_OK && rename(tmp, path) != 0) st = fa_error_set(err, FA_ERR_IO, "%s: rename: %s", path, strerror(errno));
    if (st != FA_OK) unlink(tmp);
    return st;
}

void manifest_resolve_path(const char *cell, const char *manifest_path, char *out, size_t cap) {
    copy_str(out, cap, cell);
    if (!cell[0] || cell[0] == '/' || access(cell, F_OK) == 0 || !manifest_path) return;
    const char *slash = strrchr(manifest_path, '/');
    if (!slash) return;
    char joined[PATH_MAX];
    int n = snprintf(joined, sizeof joined, "%.*s/%s", (int)(slash - manifest_path), manifest_path, cell);
    if (n > 0 && n < (int)sizeof joined && access(joined, F_OK) == 0) copy_str(out, cap, joined);
}

/* ---- scan ----------------------------------------------------------------------- */

typedef struct path_entry {
    char *path;
    int is_explicit; /* named on the command line, not found by a walk */
} path_entry;

typedef struct path_list {
    path_entry *e;
    int n, cap;
} path_list;

static int path_list_add(path_list *l, const char *p, int is_explicit) {
    if (l->n == l->cap) {
        if (l->cap > INT_MAX / 2) return 0;
        int cap = l->cap ? l->cap * 2 : 256;
        path_entry *ne = realloc(l->e, (size_t)cap * sizeof *ne);
        if (!ne) return 0;
        l->e = ne;
        l->cap = cap;
    }
    char *s = strdup(p);
    if (!s) return 0;
    l->e[l->n++] = (path_entry){s, is_explicit};
    return 1;
}

static void path_list_free(path_list *l) {
    for (int i = 0; i < l->n; i++) free(l->e[i].path);
    free(l->e);
    memset(l, 0, sizeof *l);
}

/* Recursive walk. Symbolic links to files are followed; links to directories
 * are not (no loops). Unreadable sub-directories are skipped silently only
 * when they vanish; otherwise reported. */
static fa_status walk_dir(const char *dir, path_list *l, int depth, fa_error *err) {
    if (depth > 64) return fa_error_set(err, FA_ERR_ARG, "%s: directories nested too deep", dir);
    DIR *d = opendir(dir);
    if (!d) return fa_error_set(err, FA_ERR_IO, "%s: %s", dir, strerror(errno));
    fa_status st = FA_OK;
    struct dirent *e;
    size_t dlen = strlen(dir);
    int need_slash = dlen > 0 && dir[dlen - 1] != '/';
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.') continue; /* hidden files, . and .. */
        char p[PATH_MAX];
        if (snprintf(p, sizeof p, "%s%s%s", dir, need_slash ? "/" : "", e->d_name) >= (int)sizeof p) {
            st = fa_error_set(err, FA_ERR_ARG, "%s/%s: path too long", dir, e->d_name);
            break;
        }
        struct stat ls, s;
        if (lstat(p, &ls) != 0) continue; /* vanished */
        if (S_ISDIR(ls.st_mode)) {
            st = walk_dir(p, l, depth + 1, err);
            if (st != FA_OK) break;
        } else if (S_ISREG(ls.st_mode) || (S_ISLNK(ls.st_mode) && stat(p, &s) == 0 && S_ISREG(s.st_mode))) {
            if (!path_list_add(l, p, 0)) {
                st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", dir);
                break;
            }
        }
    }
    closedir(d);
    return st;
}

static int cmp_path_entry(const void *a, const void *b) {
    return strcmp(((const path_entry *)a)->path, ((const path_entry *)b)->path);
}

static int cmp_cstr(const void *a, const void *b) { return strcmp(*(const char *const *)a, *(const char *const *)b); }

static int has_image_extension(const char *path) {
    static const char *const ext[] = {".dcm", ".dicom", ".dic", ".ima", ".png", ".jpg", ".jpeg", NULL};
    const char *dot = strrchr(path, '.');
    const char *slash = strrchr(path, '/');
    if (!dot || (slash && dot < slash)) return 0;
    for (int i = 0; ext[i]; i++)
        if (!strcasecmp(dot, ext[i])) return 1;
    return 0;
}

fa_status manifest_scan(const char *const *inputs, int n_inputs, const manifest_scan_opts *opts, csv_table *out,
                        manifest_scan_stats *stats, fa_error *err) {
    manifest_scan_opts o = {0};
    if (opts) o = *opts;
    manifest_scan_stats s = {0};
    memset(out, 0, sizeof *out);
    path_list l = {0};
    fa_status st = FA_OK;
    for (int i = 0; i < n_inputs && st == FA_OK; i++) {
        struct stat sb;
        if (stat(inputs[i], &sb) != 0)
            st = fa_error_set(err, FA_ERR_NOT_FOUND, "%s: %s", inputs[i], strerror(errno));
        else if (S_ISDIR(sb.st_mode))
            st = walk_dir(inputs[i], &l, 0, err);
        else if (!path_list_add(&l, inputs[i], 1))
            st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", inputs[i]);
    }
    if (st != FA_OK) {
        path_list_free(&l);
        return st;
    }
    /* Sort by path, then drop duplicates (a file named twice). */
    if (l.n > 1) qsort(l.e, (size_t)l.n, sizeof *l.e, cmp_path_entry);
    int kept = 0;
    for (int i = 0; i < l.n; i++) {
        if (kept > 0 && !strcmp(l.e[kept - 1].path, l.e[i].path)) {
            l.e[kept - 1].is_explicit |= l.e[i].is_explicit;
            free(l.e[i].path);
            continue;
        }
        l.e[kept++] = l.e[i];
    }
    l.n = kept;

    st = manifest_init(out, err);
    if (st != FA_OK) {
        path_list_free(&l);
        return st;
    }
    char ***rows = fa_calloc_array((size_t)l.n + 1, sizeof *rows);
    unsigned char *skip = fa_calloc_array((size_t)l.n + 1, 1);
    if (!rows || !skip) {
        free(rows), free(skip);
        path_list_free(&l);
        csv_free(out);
        return fa_error_set(err, FA_ERR_NOMEM, "scan: out of memory");
    }
    fa_progress prog;
    fa_progress_begin(&prog, "scan", l.n);
    prog.quiet = o.quiet;
    int failed = 0;
    fa_error first_err = {0};
    int nt = o.threads > 0 ? o.threads : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(nt)
    for (int i = 0; i < l.n; i++) {
        if (failed) continue;
        char **cells = calloc(MANIFEST_N_COLS, sizeof *cells);
        fa_error e = {0};
        int known = 1;
        fa_status fs = cells ? scan_one(l.e[i].path, o.verify, cells, &known, &e)
                             : fa_error_set(&e, FA_ERR_NOMEM, "scan: out of memory");
        if (fs != FA_OK) {
            free(cells);
#pragma omp critical(manifest_scan_err)
            {
                if (!failed) first_err = e;
                failed = 1;
            }
            continue;
        }
        if (!known && !l.e[i].is_explicit && !has_image_extension(l.e[i].path)) {
            skip[i] = 1;
            for (int c = 0; c < MANIFEST_N_COLS; c++) free(cells[c]);
            free(cells);
            cells = NULL;
        }
        rows[i] = cells;
#pragma omp critical(manifest_scan_progress)
        fa_progress_add(&prog, 1);
    }
    fa_progress_end(&prog);
    if (failed) {
        for (int i = 0; i < l.n; i++) {
            if (!rows[i]) continue;
            for (int c = 0; c < MANIFEST_N_COLS; c++) free(rows[i][c]);
            free(rows[i]);
        }
        free(rows);
        free(skip);
        path_list_free(&l);
        csv_free(out);
        if (err) *err = first_err;
        return first_err.code ? first_err.code : FA_ERR_NOMEM;
    }
    fa_jsonl log;
    fa_jsonl_open(&log, o.log_path);
    int m = 0;
    for (int i = 0; i < l.n; i++) {
        if (skip[i]) {
            s.n_skipped++;
            fa_jsonl_begin(&log, "scan_skip");
            fa_jsonl_str(&log, "path", l.e[i].path);
            fa_jsonl_str(&log, "reason", "not a DICOM, PNG or JPEG file");
            fa_jsonl_end(&log);
            continue;
        }
        rows[m++] = rows[i];
        const char *status = rows[i][MANIFEST_COL_STATUS];
        if (!strcmp(status, MANIFEST_STATUS_OK)) s.n_ok++;
        else if (!strcmp(status, MANIFEST_STATUS_EXCLUDED)) s.n_excluded++;
        else s.n_error++;
        fa_jsonl_begin(&log, "scan");
        fa_jsonl_str(&log, "path", rows[i][MANIFEST_COL_PATH]);
        fa_jsonl_str(&log, "status", status);
        fa_jsonl_str(&log, "reason", rows[i][MANIFEST_COL_REASON]);
        fa_jsonl_end(&log);
    }
    s.n_files = m;
    /* Duplicate SOP UIDs: the same image twice would leak across splits. */
    {
        const char **sops = fa_malloc_array((size_t)m + 1, sizeof *sops);
        int k = 0;
        for (int i = 0; sops && i < m; i++)
            if (rows[i][MANIFEST_COL_SOP_UID][0]) sops[k++] = rows[i][MANIFEST_COL_SOP_UID];
        if (sops) qsort(sops, (size_t)k, sizeof *sops, cmp_cstr);
        for (int i = 0; sops && i < k;) {
            int j = i + 1;
            while (j < k && !strcmp(sops[j], sops[i])) j++;
            if (j - i > 1) {
                if (!s.n_dup_sop) copy_str(s.first_dup_sop, sizeof s.first_dup_sop, sops[i]);
                s.n_dup_sop += j - i;
            }
            i = j;
        }
        free(sops);
    }
    fa_jsonl_begin(&log, "scan_done");
    fa_jsonl_int(&log, "files", s.n_files);
    fa_jsonl_int(&log, "ok", s.n_ok);
    fa_jsonl_int(&log, "excluded", s.n_excluded);
    fa_jsonl_int(&log, "error", s.n_error);
    fa_jsonl_int(&log, "skipped", s.n_skipped);
    fa_jsonl_int(&log, "duplicate_sop_uid", s.n_dup_sop);
    fa_jsonl_num(&log, "seconds", fa_now_seconds() - prog.t_start);
    fa_jsonl_end(&log);
    fa_jsonl_close(&log);
    free(skip);
    path_list_free(&l);
    out->rows = rows;
    out->n_rows = m;
    if (stats) *stats = s;
    return FA_OK;
}

/* ---- merge ------------------------------------------------------------------------ */

typedef struct key_ref {
    const char *key;
    int row;
} key_ref;

static int cmp_key_ref(const void *a, const void *b) {
    const key_ref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->row > y->row) - (x->row < y->row);
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

/* Index of the sorted run of refs whose key equals k, or -1. */
static int find_key(const key_ref *refs, int n, const char *k, int *count) {
    int lo = 0, hi = n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (strcmp(refs[mid].key, k) < 0) lo = mid + 1;
        else hi = mid;
    }
    int c = 0;
    while (lo + c < n && !strcmp(refs[lo + c].key, k)) c++;
    *count = c;
    return c ? lo : -1;
}

/* Is a a suffix of b (or b of a) at a path-component boundary? */
static int path_suffix_match(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > lb) {
        const char *t = a;
        a = b;
        b = t;
        size_t tl = la;
        la = lb;
        lb = tl;
    }
    while (la > 2 && a[0] == '.' && a[1] == '/') a += 2, la -= 2;
    if (la == 0 || strcmp(b + (lb - la), a)) return 0;
    return lb == la || b[lb - la - 1] == '/';
}

/* Row of the manifest that a user path refers to, -1 none, -2 ambiguous. */
static int match_path(const csv_table *m, const key_ref *by_path, const key_ref *by_base, char **real, int *real_done,
                      const char *up, const char *user_dir) {
    int cnt, at = find_key(by_path, m->n_rows, up, &cnt);
    if (at >= 0) return cnt == 1 ? by_path[at].row : -2;
    /* Same file under another spelling. */
    if (!*real_done) {
        for (int r = 0; r < m->n_rows; r++) real[r] = realpath(m->rows[r][MANIFEST_COL_PATH], NULL);
        *real_done = 1;
    }
    char cand[PATH_MAX];
    char *ur = realpath(up, NULL);
    if (!ur && user_dir && up[0] != '/' &&
        snprintf(cand, sizeof cand, "%s/%s", user_dir, up) < (int)sizeof cand)
        ur = realpath(cand, NULL);
    if (ur) {
        int hit = -1;
        for (int r = 0; r < m->n_rows; r++)
            if (real[r] && !strcmp(real[r], ur)) hit = hit == -1 ? r : -2;
        free(ur);
        if (hit != -1) return hit;
    }
    /* Unique suffix at a '/' boundary among rows with the same base name. */
    at = find_key(by_base, m->n_rows, base_name(up), &cnt);
    int hit = -1;
    for (int i = 0; at >= 0 && i < cnt; i++)
        if (path_suffix_match(up, m->rows[by_base[at + i].row][MANIFEST_COL_PATH]))
            hit = hit == -1 ? by_base[at + i].row : -2;
    return hit;
}

fa_status manifest_merge(csv_table *m, const csv_table *user, const char *user_name, const char *user_dir,
                         const char *key, manifest_merge_stats *stats, fa_error *err) {
    manifest_merge_stats s = {0};
    int by_sop = !strcmp(key, "sop_uid");
    if (!by_sop && strcmp(key, "path"))
        return fa_error_set(err, FA_ERR_ARG, "%s: merge key must be path or sop_uid, not '%s'", user_name, key);
    int mkey = by_sop ? MANIFEST_COL_SOP_UID : MANIFEST_COL_PATH;
    int ukey = csv_column(user, key);
    if (ukey < 0) return fa_error_set(err, FA_ERR_FORMAT, "%s: no '%s' column to merge on", user_name, key);
    if (m->n_cols < MANIFEST_N_COLS) return fa_error_set(err, FA_ERR_INTERNAL, "merge: manifest lacks standard columns");
    for (int c = 0; c < user->n_cols; c++)
        for (int d = 0; d < c; d++)
            if (!strcmp(user->header[c], user->header[d]))
                return fa_error_set(err, FA_ERR_FORMAT, "%s: column '%s' appears twice", user_name, user->header[c]);

    size_t n = (size_t)m->n_rows + 1;
    key_ref *by_key = fa_malloc_array(n, sizeof *by_key);
    key_ref *by_base = fa_malloc_array(n, sizeof *by_base);
    char **real = fa_calloc_array(n, sizeof *real);
    int *user_row_of = fa_malloc_array(n, sizeof *user_row_of);   /* manifest row -> user row */
    int *target = fa_malloc_array((size_t)user->n_rows + 1, sizeof *target); /* user row -> manifest row */
    int *ucol_to_m = fa_malloc_array((size_t)user->n_cols + 1, sizeof *ucol_to_m);
    fa_status st = FA_OK;
    int real_done = 0;
    if (!by_key || !by_base || !real || !user_row_of || !target || !ucol_to_m) {
        st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", user_name);
        goto out;
    }
    for (int r = 0; r < m->n_rows; r++) {
        by_key[r] = (key_ref){m->rows[r][mkey], r};
        by_base[r] = (key_ref){base_name(m->rows[r][MANIFEST_COL_PATH]), r};
        user_row_of[r] = -1;
    }
    qsort(by_key, (size_t)m->n_rows, sizeof *by_key, cmp_key_ref);
    qsort(by_base, (size_t)m->n_rows, sizeof *by_base, cmp_key_ref);

    /* Resolve every user row first so that a bad file changes nothing. */
    for (int u = 0; u < user->n_rows; u++) {
        const char *k = csv_cell(user, u, ukey);
        target[u] = -1;
        if (!k[0]) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: data row %d has an empty %s", user_name, u + 1, key);
            goto out;
        }
        int r;
        if (by_sop) {
            int cnt, at = find_key(by_key, m->n_rows, k, &cnt);
            r = at < 0 ? -1 : cnt == 1 ? by_key[at].row : -2;
        } else {
            r = match_path(m, by_key, by_base, real, &real_done, k, user_dir);
        }
        if (r == -2) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: %s '%s' matches more than one manifest row", user_name, key, k);
            goto out;
        }
        if (r < 0) {
            if (!s.n_unknown) copy_str(s.first_unknown, sizeof s.first_unknown, k);
            s.n_unknown++;
            continue;
        }
        if (user_row_of[r] >= 0) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: rows %d and %d both refer to %s", user_name,
                              user_row_of[r] + 1, u + 1, m->rows[r][MANIFEST_COL_PATH]);
            goto out;
        }
        user_row_of[r] = u;
        target[u] = r;
    }
    /* Column mapping: standard columns are overridden, others appended. */
    for (int c = 0; c < user->n_cols; c++) {
        const char *name = user->header[c];
        int std = manifest_column_index(name);
        if (c == ukey || std == MANIFEST_COL_PATH || std == MANIFEST_COL_STATUS || std == MANIFEST_COL_REASON ||
            !name[0]) {
            ucol_to_m[c] = -1;
            continue;
        }
        st = manifest_add_column(m, name, &ucol_to_m[c], err);
        if (st != FA_OK) goto out;
    }
    for (int u = 0; u < user->n_rows; u++) {
        int r = target[u];
        if (r < 0) continue;
        for (int c = 0; c < user->n_cols; c++) {
            int mc = ucol_to_m[c];
            if (mc < 0) continue;
            const char *v = csv_cell(user, u, c);
            if (mc < MANIFEST_N_COLS) {
                if (!v[0] || !strcmp(v, m->rows[r][mc])) continue;
                s.n_overridden++;
            }
            st = manifest_set_cell(m, r, mc, v, err);
            if (st != FA_OK) goto out;
        }
    }
    /* Re-run the gate on the (possibly overridden) values. */
    for (int r = 0; r < m->n_rows; r++) {
        if (user_row_of[r] >= 0) s.n_matched++;
        else s.n_unmatched++;
        if (!strcmp(m->rows[r][MANIFEST_COL_STATUS], MANIFEST_STATUS_ERROR)) continue;
        char reason[1024];
        int ng = manifest_gate((const char *const *)m->rows[r], reason, sizeof reason);
        st = manifest_set_cell(m, r, MANIFEST_COL_STATUS, ng ? MANIFEST_STATUS_EXCLUDED : MANIFEST_STATUS_OK, err);
        if (st == FA_OK) st = manifest_set_cell(m, r, MANIFEST_COL_REASON, reason, err);
        if (st != FA_OK) goto out;
    }
out:
    if (real)
        for (int r = 0; r < m->n_rows; r++) free(real[r]);
    free(real);
    free(by_key);
    free(by_base);
    free(user_row_of);
    free(target);
    free(ucol_to_m);
    if (stats) *stats = s;
    return st;
}
