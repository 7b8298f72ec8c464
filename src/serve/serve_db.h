/* serve_db.h - the triage node's durable state in SQLite (WAL journal,
 * synchronous=FULL, so a commit that returned is on disk):
 *
 *   instances(sop_uid PK, sop_class, study_uid, series_uid, patient_id,
 *             calling_ae, path, bytes, received_at, state, score, decision,
 *             threshold, model, heatmap, score_ms, scored_at, reported_at,
 *             error)
 *     state: received -> scoring -> scored | error. "scoring" left by a crash
 *     goes back to "received" when the database is opened.
 *   outbox(id PK, sop_uid, kind ('sr'|'sc'), path, state ('pending'|'sent'|
 *          'failed'), attempts, next_try, last_error, sent_at)
 *
 * Times are Unix seconds (wall clock, fractional). One connection shared by
 * all threads under a mutex: every function here is thread-safe.
 */
#ifndef FA_SERVE_DB_H
#define FA_SERVE_DB_H

#include "core/fa_status.h"
#include "serve/serve.h"

typedef struct serve_db serve_db;

fa_status serve_db_open(serve_db **out, const char *path, fa_error *err);
void serve_db_close(serve_db *db);

/* Wall-clock Unix time in seconds. */
double serve_db_now(void);

typedef struct serve_instance {
    char sop_uid[65], sop_class[65], study_uid[65], series_uid[65];
    char patient_id[65], calling_ae[17];
    char path[SERVE_STR];
    long long bytes;
    double received_at;
} serve_instance;

/* 1 when the SOP instance is already recorded (any state), 0 when not,
 * -1 on a database error (err filled). */
int serve_db_has(serve_db *db, const char *sop_uid, fa_error *err);
/* Record a received instance (state received) and commit. A row that exists
 * already is left as it is (a resend). */
fa_status serve_db_insert(serve_db *db, const serve_instance *in, fa_error *err);

/* Claim the oldest received instance for scoring (state -> scoring).
 * Returns 1 with *out filled, 0 when none waits, -1 on error. */
int serve_db_claim(serve_db *db, serve_instance *out, fa_error *err);

typedef struct serve_score {
    double score;
    int decision;        /* 1 / 0 / -1 */
    double threshold;    /* NaN = none */
    char model[256];
    char heatmap[SERVE_STR]; /* file name under heatmaps/, or "" */
    double score_ms;
} serve_score;

/* Store the score and queue the result files (sr_path / sc_path may be NULL)
 * in one transaction. */
fa_status serve_db_scored(serve_db *db, const char *sop_uid, const serve_score *s, const char *sr_path,
                          const char *sc_path, fa_error *err);
/* Mark an instance that could not be scored (state error, message kept). */
fa_status serve_db_failed(serve_db *db, const char *sop_uid, const char *message, fa_error *err);

typedef struct serve_outgoing {
    long long id;
    char sop_uid[65];
    char kind[8];
    char path[SERVE_STR];
    int attempts;
} serve_outgoing;

/* Claim the next pending outgoing object due at `now` (its next_try is moved
 * forward by `lease_s` so that other senders skip it). 1 / 0 / -1 as above. */
int serve_db_next_outgoing(serve_db *db, double now, double lease_s, serve_outgoing *out, fa_error *err);
/* Outcome of one attempt: sent (and the instance's reported_at once all its
 * objects are sent), or a retry at next_try, or failed for good. */
fa_status serve_db_outgoing_done(serve_db *db, const serve_outgoing *o, int sent, double next_try, int give_up,
                                 const char *message, fa_error *err);

/* Counts by instance state and outgoing state (for /api/health and logs). */
typedef struct serve_counts {
    long long received, scoring, scored, error, pending, sent, failed;
} serve_counts;
fa_status serve_db_counts(serve_db *db, serve_counts *out, fa_error *err);

/* One study of the worklist. */
typedef struct serve_study {
    char study_uid[65], patient_id[65];
    int n_images, n_scored;
    double first_received; /* oldest image of the study */
    double score;          /* highest score (NaN when none scored yet) */
    int decision;          /* 1 when any image is suspected, 0 when all scored negative, -1 unknown */
    char top_sop[65];      /* image with the highest score (heatmap preview) */
    int has_heatmap;
    int reported;          /* every image's results sent */
} serve_study;

/* Every study with at least one received/scored image, unordered. *out is
 * allocated (free()). */
fa_status serve_db_studies(serve_db *db, serve_study **out, int *n, fa_error *err);

#endif
