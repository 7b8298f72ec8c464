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

/* Read the header only (pixel data is not decoded or loaded: values over
 * 4 KiB stay on disk). Thread-safe. Errors: FA_ERR_IO (missing, directory),
 * FA_ERR_FORMAT (empty, not DICOM, truncated inside the header). A file
 * without Pixel Data reads fine with has_pixel_data = 0. */
fa_status dicom_read_header(const char *path, dicom_header *out, fa_error *err);

typedef enum dicom_stage {
    DICOM_STAGE_RAW,      /* stored values (signed values offset by 2^(bits-1)... see dicom_decode) */
    DICOM_STAGE_MODALITY, /* after the Modality LUT, shifted/clamped to 0..65535 */
    DICOM_STAGE_DISPLAY   /* after VOI LUT and presentation, bone bright, 0..65535 */
} dicom_stage;

/* Decode the first frame at the given stage into a 16-bit image.
 * RAW: unsigned stored values as-is; signed stored values + 2^(bits_stored-1).
 * MODALITY: the Modality LUT output minus its minimum possible value, clamped.
 * DISPLAY: full pipeline scaled to 0..65535 (rules in dicom.c: the first
 * window wins over a VOI LUT Sequence; without either, the 0.5-99.5 percentile
 * window; inverted for MONOCHROME1 or Presentation LUT Shape INVERSE).
 * Colour images are converted to grey (BT.601, PIL's weights) with a warning.
 * `out` is caller-owned (image_free); `warning` may be NULL. Thread-safe.
 * Errors name the file: FA_ERR_IO, FA_ERR_FORMAT (no Pixel Data, truncated,
 * less pixel data than declared, broken codestream, inconsistent bits),
 * FA_ERR_UNSUPPORTED (Bits Allocated not 8/16, palette colour, > pixel cap,
 * a transfer syntax without decoder), FA_ERR_NOMEM. */
fa_status dicom_decode(const char *path, dicom_stage stage, fa_image *out, char *warning, size_t warning_cap,
                       fa_error *err);

/* ---- writing (dicom_write.cpp) ---- */
/* Grey single-frame images written through DCMTK's encoders. Owned by the
 * synthetic cohort (synth_*); any module may use it. */

/* Transfer syntaxes the writer produces (all lossless). */
typedef enum dicom_write_syntax {
    DICOM_WRITE_EXPLICIT_LE,    /* 1.2.840.10008.1.2.1 */
    DICOM_WRITE_RLE,            /* 1.2.840.10008.1.2.5 */
    DICOM_WRITE_JPEG_LOSSLESS,  /* 1.2.840.10008.1.2.4.70, process 14 SV1 */
    DICOM_WRITE_JPEG_LS,        /* 1.2.840.10008.1.2.4.80, lossless */
    DICOM_WRITE_N_SYNTAXES
} dicom_write_syntax;

/* One attribute: `path` in DCMTK path syntax, a keyword ("Manufacturer"), a
 * tag ("(0008,0070)") or a sequence path ("ViewCodeSequence[0].CodeValue");
 * `value` as text (multiple values separated by '\\', numbers as text; ""
 * writes an empty type-2 attribute). */
typedef struct dicom_write_elem {
    const char *path;
    const char *value;
} dicom_write_elem;

typedef struct dicom_write_spec {
    const dicom_write_elem *elems; /* everything except the pixel module */
    int n_elems;
    int rows, columns;             /* 1..65535 */
    int bits_stored;               /* 1..16; 16 bits allocated, unsigned */
    const char *photometric;       /* "MONOCHROME1" / "MONOCHROME2" */
    dicom_write_syntax syntax;
    /* File meta information: NULL keeps DCMTK's own values. Set them for
     * byte-identical output across DCMTK versions. */
    const char *implementation_class_uid;
    const char *implementation_version;
} dicom_write_spec;

/* UID of a writer syntax ("" for an invalid value). */
const char *dicom_write_syntax_uid(dicom_write_syntax s);

/* Write rows*columns unsigned stored values (each < 2^bits_stored) as a DICOM
 * Part-10 file at path (written to path.tmp, then renamed). The SOP class and
 * instance UIDs come from the elements (SOPClassUID, SOPInstanceUID) and are
 * required. Errors: FA_ERR_ARG (bad spec or a value out of range, naming the
 * element), FA_ERR_BACKEND (DCMTK refused an element or the encoder failed),
 * FA_ERR_IO (file). Thread-safe: codecs are registered once. */
fa_status dicom_write_image(const char *path, const dicom_write_spec *spec, const uint16_t *pixels,
                            fa_error *err);

/* ---- networking (dicom_net.cpp) ---- */
/* DICOM upper-layer services for the triage node (src/serve): a C-STORE /
 * C-ECHO SCP with allow-list hooks and durable-acknowledge callback, a
 * C-STORE SCU, and the two result objects (Comprehensive SR, RGB secondary
 * capture). Owned by serve; everything DCMTK stays in dicom_net.cpp. */

#define DICOM_NET_AE_MAX 16

/* Who is asking (filled from the A-ASSOCIATE-RQ; host is the numeric peer
 * address, never resolved through DNS). */
typedef struct dicom_net_peer {
    char calling_ae[DICOM_NET_AE_MAX + 1];
    char called_ae[DICOM_NET_AE_MAX + 1];
    char host[64];
} dicom_net_peer;

/* What the association hook decides. */
typedef enum dicom_net_verdict {
    DICOM_NET_ACCEPT,
    DICOM_NET_REJECT_CALLING_AE, /* permanent, service user, 0x03 calling AE not recognised */
    DICOM_NET_REJECT_CALLED_AE,  /* permanent, service user, 0x07 called AE not recognised */
    DICOM_NET_REJECT_HOST        /* permanent, service user, 0x01 no reason given */
} dicom_net_verdict;

/* One received object handed to the store hook. path is a complete Part-10
 * file written by DCMTK, closed but NOT fsynced; the hook may rename it away
 * (it then owns it) - whatever is left at path is deleted afterwards. */
typedef struct dicom_net_object {
    const char *path;
    const char *sop_class_uid;    /* from the C-STORE-RQ command (unvalidated) */
    const char *sop_instance_uid; /* from the C-STORE-RQ command (unvalidated) */
    long long bytes;              /* dataset bytes received */
    const dicom_net_peer *peer;
} dicom_net_object;

/* Hooks run on SCP threads (one thread per association), concurrently. */
typedef dicom_net_verdict (*dicom_net_accept_fn)(void *user, const dicom_net_peer *peer);
/* Returns the DIMSE status of the C-STORE-RSP (0x0000 success); comment (cap
 * bytes) becomes the response's Error Comment for failures. The response is
 * sent only after this returns: make the object durable first. */
typedef unsigned (*dicom_net_store_fn)(void *user, const dicom_net_object *obj, char *comment, size_t cap);
/* One event line ("assoc_rejected", "assoc_aborted", "store_refused", ...). */
typedef void (*dicom_net_log_fn)(void *user, const char *event, const dicom_net_peer *peer, const char *detail);

typedef struct dicom_net_scp_opts {
    const char *bind_addr;    /* numeric IPv4 address, e.g. "127.0.0.1" */
    int port;                 /* 1..65535 */
    int max_associations;     /* concurrent; more are rejected transiently (local limit exceeded) */
    unsigned max_pdu;         /* largest P-DATA PDU we accept (4096..131072 recommended) */
    long long max_object_bytes; /* larger objects are refused 0xA700 once received (spooled to disk, never held in memory) */
    int acse_timeout_s, dimse_timeout_s;
    const char *const *sop_classes; /* storage SOP classes negotiated (borrowed) */
    int n_sop_classes;
    const char *spool_dir;    /* existing folder for partial files (same file system as the store) */
    /* TLS (DCMTK dcmtls, BCP 195 profile) with required client certificates
     * signed by tls_ca: all three PEM files set, or all NULL for plain TCP.
     * The private key must not be encrypted. */
    const char *tls_key, *tls_cert, *tls_ca;
    dicom_net_accept_fn on_accept;
    dicom_net_store_fn on_store;
    dicom_net_log_fn on_log;  /* may be NULL */
    void *user;
} dicom_net_scp_opts;

typedef struct dicom_net_scp dicom_net_scp;

/* Open the listening socket bound to o->bind_addr:o->port (DCMTK 3.6.7 binds
 * the wildcard address; the socket is re-bound here before any association
 * is accepted). o and what it points to must outlive the SCP. Errors:
 * FA_ERR_ARG (bad options), FA_ERR_IO (address in use, bind failure). */
fa_status dicom_net_scp_open(dicom_net_scp **out, const dicom_net_scp_opts *o, fa_error *err);
/* Serve associations until *stop becomes non-zero (polled every 200 ms),
 * then wait for running associations to end (bounded by the DIMSE timeout). */
fa_status dicom_net_scp_run(dicom_net_scp *scp, volatile int *stop, fa_error *err);
void dicom_net_scp_close(dicom_net_scp *scp);
/* Associations running now. */
int dicom_net_scp_active(const dicom_net_scp *scp);

typedef struct dicom_net_scu_opts {
    const char *host; /* numeric address or name */
    int port;
    const char *calling_ae, *called_ae;
    int timeout_s;
    unsigned max_pdu;
} dicom_net_scu_opts;

/* Send one Part-10 file by C-STORE on a new association. *status gets the
 * DIMSE status of the response (0xFFFF when none came). Errors name the file
 * or the peer: FA_ERR_IO (unreadable file, connection refused, association
 * rejected, timeout), FA_ERR_BACKEND (no accepted presentation context, a
 * failure status). A warning status (0xB000 family) counts as sent. */
fa_status dicom_net_send_file(const dicom_net_scu_opts *o, const char *path, unsigned *status, fa_error *err);

/* Triage result of one source image, as the SR and secondary capture carry it. */
typedef struct dicom_net_result {
    double score;          /* probability of pneumoperitoneum, 0..1 */
    int decision;          /* 1 suspected, 0 not suspected, -1 no operating point */
    double threshold;      /* locked operating point (NaN when none) */
    const char *threshold_rule;
    const char *model_name;    /* e.g. "resnet18 best.safetensors" */
    const char *model_version; /* e.g. checkpoint sha256 prefix + freeair version */
    const char *device_ae;     /* our AE title (author observer / station) */
} dicom_net_result;

/* Write a Comprehensive SR (template documented in docs/serve.md) for the
 * image at source_path into sr_path, atomically (temp, fsync, rename). The SR
 * joins the source's study (patient and study attributes copied) in a new
 * series and lists the source in its evidence. sop_uid_out (65 bytes) gets
 * the new SOP Instance UID. Errors name the file. */
fa_status dicom_net_write_sr(const char *source_path, const dicom_net_result *r, const char *sr_path,
                             char *sop_uid_out, fa_error *err);

/* Write an RGB secondary capture image (w x h, 3*w*h bytes, row-major RGB)
 * derived from the source (same study, new series, Source Image Sequence)
 * into sc_path, atomically. Errors name the file. */
fa_status dicom_net_write_sc(const char *source_path, const dicom_net_result *r, const uint8_t *rgb, int w, int h,
                             const char *sc_path, char *sop_uid_out, fa_error *err);

#endif
