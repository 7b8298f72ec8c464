/* manifest.h - the dataset manifest: one row per image file, the chest gate,
 * and the merge of user columns.
 *
 * This module is the one place that knows the manifest columns. `freeair scan`
 * writes them in the order of manifest_columns[] below; the synthetic cohort
 * generator writes the same columns followed by its truth columns; split and
 * cache read them by name. Any column after the standard ones is a user column
 * (label, unit, hospital, split, fold, any stratum) and is carried unchanged.
 *
 * In memory a manifest is a csv_table (data/csv.h) whose first
 * MANIFEST_N_COLS columns are the standard ones in this order.
 *
 * Column values (all text; empty when unknown):
 *   path                file path as found (inputs joined with the entries of
 *                       a directory walk; relative inputs give relative paths)
 *   status              "ok", "excluded" (refused by the chest gate) or "error"
 *                       (unreadable, no pixel data, fails to decode)
 *   reason              empty when ok; otherwise "; "-separated items
 *                       "<code>: <detail>", errors first, with code one of
 *                       unreadable, no_pixel_data, decode_failed (errors) and
 *                       not_radiograph, not_chest, lateral_view, unknown_view,
 *                       for_processing (exclusions)
 *   patient_id .. sop_uid  DICOM identifiers
 *   modality            Modality (0008,0060), e.g. CR, DX
 *   body_part           BodyPartExamined (0018,0015) as stored
 *   view                AP or PA when frontal; otherwise the stated value,
 *                       upper-case (LL, RL, LATERAL, XX, ...); see manifest_view
 *   manufacturer, model, station, institution   as stored
 *   sex                 PatientSex as stored (M/F/O)
 *   age                 age in years (decimal for infants, e.g. "0.5"), from
 *                       PatientAge or from birth and acquisition dates
 *   acquisition_date    YYYYMMDD (AcquisitionDate, else StudyDate)
 *   rows, columns       pixel matrix size
 *   pixel_spacing       "row\col" in mm (PixelSpacing, else ImagerPixelSpacing)
 *   bits_stored         8..16
 *   photometric         MONOCHROME1, MONOCHROME2, RGB, ...
 *   transfer_syntax     UID (empty for PNG/JPEG)
 *   presentation_intent "FOR PRESENTATION" / "FOR PROCESSING" (also derived
 *                       from a For-Processing SOP class)
 *
 * Chest gate (manifest_gate), applied to the cell values so that merged user
 * overrides are honoured (all comparisons case-insensitive, trimmed):
 *   - modality stated and not CR, DX or DR -> excluded, not_radiograph
 *     (an empty modality passes: PNG/JPEG carry none unless merged)
 *   - body part stated and not chest -> excluded, not_chest. Chest means the
 *     value, split into words at non-alphanumerics, contains one of CHEST,
 *     THORAX, THORACIC (not with SPINE), LUNG, LUNGS, CXR, TORAX, TORACE,
 *     TORACO, POITRINE, THORAKS, and none of RIB, RIBS, RIBCAGE, SPINE,
 *     TSPINE, STERNUM, CLAVICLE, SHOULDER, BREAST, HEART (so "CHEST",
 *     "Thorax", "CHEST_PA", "PORTABLE CHEST" pass; "RIBCAGE", "TSPINE" do not)
 *   - view lateral (LL, RL, LAT, LATERAL, LLD, RLD, or any word starting LAT)
 *     -> excluded, lateral_view
 *   - view stated and neither AP/PA nor lateral (e.g. "XX", "LAO") ->
 *     excluded, unknown_view. An empty view passes (view unknown).
 *   - presentation intent containing PROCESSING -> excluded, for_processing
 * Files that cannot be used at all are status "error" whatever the gate says:
 *   unreadable (the reader's message), no_pixel_data, decode_failed (only with
 *   verification, which decodes the pixels).
 *
 * Merge (manifest_merge): a user CSV is joined on `path` or `sop_uid`. Every
 * user column is added after the standard ones; a user column with the same
 * name as a standard column OVERRIDES the header value for that row when the
 * user cell is non-empty (empty user cells never erase header values). path,
 * status and reason cannot be overridden. After the merge the gate runs again
 * on the overridden values (rows in "error" stay errors).
 */
#ifndef FA_MANIFEST_H
#define FA_MANIFEST_H

#include <stddef.h>

#include "core/fa_status.h"
#include "data/csv.h"
#include "data/dicom.h"

/* Indices of the standard columns. */
typedef enum manifest_col {
    MANIFEST_COL_PATH,
    MANIFEST_COL_STATUS,
    MANIFEST_COL_REASON,
    MANIFEST_COL_PATIENT_ID,
    MANIFEST_COL_STUDY_UID,
    MANIFEST_COL_SERIES_UID,
    MANIFEST_COL_SOP_UID,
    MANIFEST_COL_MODALITY,
    MANIFEST_COL_BODY_PART,
    MANIFEST_COL_VIEW,
    MANIFEST_COL_MANUFACTURER,
    MANIFEST_COL_MODEL,
    MANIFEST_COL_STATION,
    MANIFEST_COL_INSTITUTION,
    MANIFEST_COL_SEX,
    MANIFEST_COL_AGE,
    MANIFEST_COL_ACQUISITION_DATE,
    MANIFEST_COL_ROWS,
    MANIFEST_COL_COLUMNS,
    MANIFEST_COL_PIXEL_SPACING,
    MANIFEST_COL_BITS_STORED,
    MANIFEST_COL_PHOTOMETRIC,
    MANIFEST_COL_TRANSFER_SYNTAX,
    MANIFEST_COL_PRESENTATION_INTENT,
    MANIFEST_N_COLS
} manifest_col;

/* Names of the standard columns, indexed by manifest_col:
 * path, status, reason, patient_id, study_uid, series_uid, sop_uid, modality,
 * body_part, view, manufacturer, model, station, institution, sex, age,
 * acquisition_date, rows, columns, pixel_spacing, bits_stored, photometric,
 * transfer_syntax, presentation_intent. */
extern const char *const manifest_columns[MANIFEST_N_COLS];

/* Conventional user columns (not written by scan; split/eval read them). */
#define MANIFEST_USER_LABEL "label"       /* 1/0 (also true/false, yes/no, pos/neg) */
#define MANIFEST_USER_UNIT "unit"         /* portable / fixed */
#define MANIFEST_USER_HOSPITAL "hospital"
#define MANIFEST_USER_SPLIT "split"       /* train / val / test / unused */
#define MANIFEST_USER_FOLD "fold"         /* 0..K-1 */

/* Status values. */
#define MANIFEST_STATUS_OK "ok"
#define MANIFEST_STATUS_EXCLUDED "excluded"
#define MANIFEST_STATUS_ERROR "error"

/* Index of a standard column by name, or -1. */
int manifest_column_index(const char *name);

/* Create an empty manifest (header = the standard columns, no rows).
 * Free with csv_free. */
fa_status manifest_init(csv_table *m, fa_error *err);

/* Check that t starts with the standard columns (by name, in order) -
 * what split and cache require of an input manifest. The error names `name`
 * and the first mismatching column. */
fa_status manifest_check_columns(const csv_table *t, const char *name, fa_error *err);

/* Frontal/lateral view from the header: ViewPosition, else PatientPosition
 * unless it is a patient-position code (HFS, FFP, ERECT, ...), else the
 * series, then the study description when exactly one of AP/PA ("p.a." and
 * "a.p." count) or only lateral words appear in it. Writes "AP", "PA", the stated value upper-cased, or "".
 * out must hold DICOM_STR bytes. */
void manifest_view(const dicom_header *h, char *out, size_t cap);

/* Normalise a DICOM age string ("061Y", "006M", "003W", "010D", or a bare
 * number meaning years) to years: "61", "0.5", "0.06", "0.03". Writes "" for
 * anything unparseable. When age is empty, birth_date and study_date
 * (YYYYMMDD, either may be NULL) give whole years. */
void manifest_age_years(const char *age, const char *birth_date, const char *study_date, char *out,
                        size_t cap);

/* Run the chest gate on the cells of one row (cells indexed by manifest_col;
 * only modality, body_part, view, presentation_intent are read). Returns the
 * number of exclusion reasons and writes them ("code: detail; ...") to
 * reason (cap bytes), "" when it passes. */
int manifest_gate(const char *const *cells, char *reason, size_t cap);

/* Predicates used by the gate, exposed for tests and for the serve node. */
int manifest_is_chest_body_part(const char *body_part);
int manifest_is_radiograph_modality(const char *modality);
/* 1 frontal (AP/PA), 2 lateral, 0 empty, -1 other (unknown view). */
int manifest_view_kind(const char *view);

/* Fill the MANIFEST_N_COLS cells of one file (caller frees each with free()).
 * Never fails on a bad file: the row gets status error with the reason;
 * returns FA_ERR_NOMEM only when memory runs out. verify != 0 also decodes,
 * with image_load (slow), the pixels of files that pass the gate, and marks
 * decode failures as errors (decode_failed). */
fa_status manifest_scan_file(const char *path, int verify, char **cells, fa_error *err);

/* Options of a scan. */
typedef struct manifest_scan_opts {
    int threads;          /* 0 = OpenMP default */
    int verify;           /* decode pixels too (see manifest_scan_file) */
    int quiet;            /* no progress line */
    const char *log_path; /* JSON-lines log (one record per file), or NULL */
} manifest_scan_opts;

typedef struct manifest_scan_stats {
    int n_files;    /* rows written */
    int n_ok, n_excluded, n_error;
    int n_skipped;  /* files of unknown format skipped in directory walks */
    int n_dup_sop;  /* rows whose SOP Instance UID another row also has (a
                       copied or re-tagged image: a leak between splits) */
    char first_dup_sop[DICOM_STR];
} manifest_scan_stats;

/* Scan files and directories (recursively; hidden entries skipped; symbolic
 * links to files followed, links to directories not, so no loops) into a new
 * manifest *out (free with csv_free), rows sorted by path (bytewise).
 * In a directory walk, files that are not DICOM/PNG/JPEG by content are
 * skipped (counted in n_skipped) unless their name ends in .dcm, .dicom,
 * .dic, .ima, .png, .jpg or .jpeg, in which case they get an error row;
 * files named explicitly always get a row. A missing input is an error
 * (FA_ERR_NOT_FOUND naming it) before any scanning is done. */
fa_status manifest_scan(const char *const *inputs, int n_inputs, const manifest_scan_opts *opts,
                        csv_table *out, manifest_scan_stats *stats, fa_error *err);

/* Report of a merge. */
typedef struct manifest_merge_stats {
    int n_matched;       /* manifest rows that received user values */
    int n_unmatched;     /* manifest rows with no user row */
    int n_unknown;       /* user rows whose key matches no manifest row */
    int n_overridden;    /* header cells replaced by user values */
    char first_unknown[256]; /* the first unknown key, for the report */
} manifest_merge_stats;

/* Merge user columns into manifest m (in place). key is "path" or "sop_uid".
 * A user path matches a manifest path when equal as strings, else when both
 * resolve to the same file (realpath; a relative user path is tried against
 * the current directory and then against user_dir when non-NULL), else when
 * one is a suffix of the other at a '/' boundary and that match is unique.
 * Duplicate user keys and a missing key column are errors (FA_ERR_FORMAT);
 * unknown keys are counted, not errors. */
fa_status manifest_merge(csv_table *m, const csv_table *user, const char *user_name, const char *user_dir,
                         const char *key, manifest_merge_stats *stats, fa_error *err);

/* Add a column named name to t (cells ""), or find it when present. *col gets
 * its index. */
fa_status manifest_add_column(csv_table *t, const char *name, int *col, fa_error *err);

/* Replace one cell (copies value). */
fa_status manifest_set_cell(csv_table *t, int row, int col, const char *value, fa_error *err);

/* Write the whole table as CSV (header + rows). Returns FA_ERR_IO naming
 * name when the stream reports an error. */
fa_status manifest_write(FILE *f, const csv_table *t, const char *name, fa_error *err);

/* Write t to path atomically (temp file + rename). */
fa_status manifest_write_file(const char *path, const csv_table *t, fa_error *err);

/* Resolve a path cell of a manifest read from manifest_path: returned as-is
 * when it exists or is absolute, else joined to the manifest's directory when
 * that file exists, else as-is. Writes into out (cap bytes). */
void manifest_resolve_path(const char *cell, const char *manifest_path, char *out, size_t cap);

#endif
