/* report.h - the study report: `freeair report RUN_DIR -o report.html`.
 *
 * Reads what an evaluation run directory holds and writes ONE
 * self-contained HTML file (inline CSS and SVG, images as data: URIs, a
 * Content-Security-Policy that forbids every network load, no scripts) and
 * a JSON file with the same numbers. Inputs, all in RUN_DIR:
 *   metrics.json       required (written by `freeair eval`)
 *   cohort.json        optional {"synthetic": true, "generator": "...",
 *                      "description": "...", "name": "..."}; a synthetic
 *                      cohort is announced at the top of the report
 *   manifest.csv       optional: cohort flow (status "" / "ok" = included;
 *                      other rows counted by status and the first code of
 *                      the "reason" column, as `freeair scan` writes them)
 *                      and split composition (split, patient_id, label)
 *   misclassified.csv  optional: highest-confidence errors
 *   cam/NAME.png       optional Grad-CAM gallery (cam/index.csv with file,
 *                      caption columns, if present, gives the captions)
 *   cam/localisation.json  optional `freeair cam` localisation summary
 *                      (freeair.cam.localisation/1): pointing game with
 *                      Wilson CIs and CAM mass inside the truth region by
 *                      model and subgroup, tabled under the gallery and
 *                      copied into report.json; another schema is an error
 *   config*.{json,txt,ini,toml,cfg,yaml}  optional, shown verbatim
 * Whatever is absent is said to be absent; nothing else fails.
 * docs/metrics.md documents the inputs and report.json.
 */
#ifndef FA_REPORT_H
#define FA_REPORT_H

#include "core/fa_status.h"

typedef struct report_options {
    const char *run_dir;   /* directory with metrics.json */
    const char *version;   /* freeair version, for provenance */
    const char *command;   /* the report command line, for provenance */
    const char *created;   /* UTC ISO 8601 time of this report */
    const char *manifest;  /* manifest.csv elsewhere (NULL: RUN_DIR/manifest.csv) */
    const char *cohort;    /* cohort.json elsewhere (NULL: RUN_DIR/cohort.json) */
    const char *cam_dir;   /* Grad-CAM PNG folder (NULL: RUN_DIR/cam) */
    int max_cam;           /* at most this many gallery images (48) */
    int max_errors;        /* misclassified rows shown per model (12) */
} report_options;

void report_options_default(report_options *o);

/* Write the HTML report to html_path and its numbers to json_path (either
 * may be NULL to skip it). Files are written under a temporary name and
 * renamed, so a reader never sees half a report. Errors name the file and
 * the reason: a missing or malformed metrics.json, a malformed cohort.json
 * or manifest.csv, an unwritable output. */
fa_status report_build(const report_options *o, const char *html_path, const char *json_path,
                       fa_error *err);

#endif
