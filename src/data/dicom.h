/* dicom.h - DICOM reading: header metadata and the grey-scale pixel pipeline.
 *
 * Every DCMTK call lives behind this header in one C++ shim (dicom_dcmtk.cpp);
 * JPEG 2000 goes through OpenJPEG. Callers see plain C structs.
 *
 * Grey pipeline: stored values -> Modality LUT (rescale slope/intercept or
 * Modality LUT Sequence) -> VOI LUT (window centre/width with its function,
 * VOI LUT Sequence, or a robust automatic window) -> Presentation LUT /
 * MONOCHROME1 inversion, so bone is bright in the display stage.
 */
#ifndef FA_DICOM_H
#define FA_DICOM_H

#include <stdint.h>

#include "core/fa_status.h"
#include "data/image.h"

#define DICOM_STR 128

/* Header fields used by the manifest; empty string when absent. */
typedef struct dicom_header {
    char patient_id[DICOM_STR];
    char study_uid[DICOM_STR];
    char series_uid[DICOM_STR];
    char sop_uid[DICOM_STR];
    char sop_class_uid[DICOM_STR];
    char modality[DICOM_STR];
    char body_part[DICOM_STR];
    char view_position[DICOM_STR];    /* ViewPosition (0018,5101) */
    char patient_position[DICOM_STR]; /* PatientPosition (0018,5100) */
    char series_description[DICOM_STR];
    char study_description[DICOM_STR];
    char manufacturer[DICOM_STR];
    char model[DICOM_STR];
    char station[DICOM_STR];
    char institution[DICOM_STR];
    char sex[DICOM_STR];
    char age[DICOM_STR];              /* PatientAge as stored, e.g. "061Y" */
    char birth_date[DICOM_STR];
    char acquisition_date[DICOM_STR]; /* AcquisitionDate, else StudyDate */
    char photometric[DICOM_STR];
    char transfer_syntax[DICOM_STR];  /* UID */
    char presentation_intent[DICOM_STR]; /* "FOR PRESENTATION" / "FOR PROCESSING" */
    char image_type[DICOM_STR];
    int rows, columns;
    int bits_allocated, bits_stored, high_bit;
    int pixel_representation; /* 0 unsigned, 1 signed */
    int samples_per_pixel;
    int number_of_frames;
    double pixel_spacing_row, pixel_spacing_col; /* mm; 0 if absent (ImagerPixelSpacing as fallback) */
    int has_pixel_data;
} dicom_header;

/* Read the header only (pixel data is not decoded or loaded). */
fa_status dicom_read_header(const char *path, dicom_header *out, fa_error *err);

typedef enum dicom_stage {
    DICOM_STAGE_RAW,      /* stored values (signed values offset by 2^(bits-1)... see dicom_decode) */
    DICOM_STAGE_MODALITY, /* after the Modality LUT, shifted/clamped to 0..65535 */
    DICOM_STAGE_DISPLAY   /* after VOI LUT and presentation, bone bright, 0..65535 */
} dicom_stage;

/* Decode the first frame at the given stage into a 16-bit image.
 * RAW: unsigned stored values as-is; signed stored values + 2^(bits_stored-1).
 * MODALITY: the Modality LUT output minus its minimum possible value, clamped.
 * DISPLAY: full pipeline scaled to 0..65535. */
fa_status dicom_decode(const char *path, dicom_stage stage, fa_image *out, char *warning, size_t warning_cap,
                       fa_error *err);

#endif
