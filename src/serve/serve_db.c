/* serve_db.c - SQLite state of the triage node (schema in serve_db.h).
 * Every write is one transaction committed before the caller acts on it;
 * with WAL and synchronous=FULL a returned commit survives a power cut. */
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "serve/serve_db.h"

struct serve_db {
    sqlite3 *h;
    pthread_mutex_t mu;
    char path[SERVE_STR];
};

static const char *const k_schema =
    "CREATE TABLE IF NOT EXISTS instances("
    " sop_uid TEXT PRIMARY KEY, sop_class TEXT, study_uid TEXT, series_uid TEXT, patient_id TEXT,"
    " calling_ae TEXT, path TEXT, bytes INTEGER, received_at REAL, state TEXT NOT NULL,"
    " score REAL, decision INTEGER, threshold REAL, model TEXT, heatmap TEXT, score_ms REAL,"
    " scored_at REAL, reported_at REAL, error TEXT);"
    "CREATE INDEX IF NOT EXISTS instances_state ON instances(state, received_at);"
    "CREATE TABLE IF NOT EXISTS outbox("
    " id INTEGER PRIMARY KEY, sop_uid TEXT NOT NULL, kind TEXT NOT NULL, path TEXT NOT NULL,"
    " state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_try REAL NOT NULL,"
    " last_error TEXT, sent_at REAL, UNIQUE(sop_uid, kind));"
    "CREATE INDEX IF NOT EXISTS outbox_due ON outbox(state, next_try);";

double serve_db_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static fa_status db_fail(serve_db *db, fa_error *err, const char *what) {
    return fa_error_set(err, FA_ERR_IO, "%s: %s: %s", db->path, what, sqlite3_errmsg(db->h));
}

static fa_status exec_locked(serve_db *db, const char *sql, fa_error *err) {
    char *msg = NULL;
    if (sqlite3_exec(db->h, sql, NULL, NULL, &msg) != SQLITE_OK) {
        fa_status st = fa_error_set(err, FA_ERR_IO, "%s: %s", db->path, msg ? msg : "error");
        sqlite3_free(msg);
        return st;
    }
    return FA_OK;
}

fa_status serve_db_open(serve_db **out, const char *path, fa_error *err) {
    *out = NULL;
    serve_db *db = calloc(1, sizeof *db);
    if (!db) return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", path);
    snprintf(db->path, sizeof db->path, "%s", path);
    pthread_mutex_init(&db->mu, NULL);
    if (sqlite3_open_v2(path, &db->h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL) !=
        SQLITE_OK) {
        fa_status st = fa_error_set(err, FA_ERR_IO, "%s: %s", path, db->h ? sqlite3_errmsg(db->h) : "cannot open");
        serve_db_close(db);
        return st;
    }
    sqlite3_busy_timeout(db->h, 10000);
    fa_status st = exec_locked(db, "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;", err);
    if (st == FA_OK) st = exec_locked(db, k_schema, err);
    /* A crash while scoring leaves rows claimed by no one. */
    if (st == FA_OK) st = exec_locked(db, "UPDATE instances SET state='received' WHERE state='scoring';", err);
    /* ...and sends leased by a sender that died: due now. */
    if (st == FA_OK) {
        char sql[128];
        snprintf(sql, sizeof sql, "UPDATE outbox SET next_try=%.3f WHERE state='pending';", serve_db_now());
        st = exec_locked(db, sql, err);
    }
    if (st != FA_OK) {
        serve_db_close(db);
        return st;
    }
    *out = db;
    return FA_OK;
}

void serve_db_close(serve_db *db) {
    if (!db) return;
    if (db->h) sqlite3_close(db->h);
    pthread_mutex_destroy(&db->mu);
    free(db);
}

static void col_text(sqlite3_stmt *s, int i, char *dst, size_t cap) {
    const unsigned char *t = sqlite3_column_text(s, i);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

int serve_db_has(serve_db *db, const char *sop_uid, fa_error *err) {
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *s = NULL;
    int r = -1;
    if (sqlite3_prepare_v2(db->h, "SELECT 1 FROM instances WHERE sop_uid=?", -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_text(s, 1, sop_uid, -1, SQLITE_TRANSIENT);
        int rc = sqlite3_step(s);
        r = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    }
    if (r < 0) db_fail(db, err, "lookup");
    sqlite3_finalize(s);
    pthread_mutex_unlock(&db->mu);
    return r;
}

fa_status serve_db_insert(serve_db *db, const serve_instance *in, fa_error *err) {
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *s = NULL;
    fa_status st = FA_OK;
    if (sqlite3_prepare_v2(db->h,
                           "INSERT OR IGNORE INTO instances(sop_uid, sop_class, study_uid, series_uid, patient_id,"
                           " calling_ae, path, bytes, received_at, state) VALUES(?,?,?,?,?,?,?,?,?,'received')",
                           -1, &s, NULL) != SQLITE_OK) {
        st = db_fail(db, err, "insert");
    } else {
        const char *v[] = {in->sop_uid, in->sop_class, in->study_uid, in->series_uid,
                           in->patient_id, in->calling_ae, in->path};
        for (int i = 0; i < 7; i++) sqlite3_bind_text(s, i + 1, v[i], -1, SQLITE_TRANSIENT);
        sqlite3_bind_int64(s, 8, in->bytes);
        sqlite3_bind_double(s, 9, in->received_at);
        if (sqlite3_step(s) != SQLITE_DONE) st = db_fail(db, err, "insert");
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&db->mu);
    return st;
}

int serve_db_claim(serve_db *db, serve_instance *out, fa_error *err) {
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *s = NULL;
    int r = -1;
    if (sqlite3_prepare_v2(db->h,
                           "SELECT sop_uid, sop_class, study_uid, series_uid, patient_id, calling_ae, path, bytes,"
                           " received_at FROM instances WHERE state='received' ORDER BY received_at LIMIT 1",
                           -1, &s, NULL) == SQLITE_OK) {
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            memset(out, 0, sizeof *out);
            col_text(s, 0, out->sop_uid, sizeof out->sop_uid);
            col_text(s, 1, out->sop_class, sizeof out->sop_class);
            col_text(s, 2, out->study_uid, sizeof out->study_uid);
            col_text(s, 3, out->series_uid, sizeof out->series_uid);
            col_text(s, 4, out->patient_id, sizeof out->patient_id);
            col_text(s, 5, out->calling_ae, sizeof out->calling_ae);
            col_text(s, 6, out->path, sizeof out->path);
            out->bytes = sqlite3_column_int64(s, 7);
            out->received_at = sqlite3_column_double(s, 8);
            r = 1;
        } else if (rc == SQLITE_DONE) {
            r = 0;
        }
    }
    sqlite3_finalize(s);
    s = NULL;
    if (r == 1) {
        /* A claim needs no fsync of its own: losing it in a crash only means
         * the instance is scored again. */
        if (sqlite3_prepare_v2(db->h, "UPDATE instances SET state='scoring' WHERE sop_uid=?", -1, &s, NULL) !=
                SQLITE_OK ||
            sqlite3_bind_text(s, 1, out->sop_uid, -1, SQLITE_TRANSIENT) != SQLITE_OK ||
            sqlite3_step(s) != SQLITE_DONE)
            r = -1;
        sqlite3_finalize(s);
    }
    if (r < 0) db_fail(db, err, "claim");
    pthread_mutex_unlock(&db->mu);
    return r;
}

static int queue_locked(serve_db *db, const char *sop, const char *kind, const char *path, double now) {
    sqlite3_stmt *s = NULL;
    int ok = sqlite3_prepare_v2(db->h,
                                "INSERT OR REPLACE INTO outbox(sop_uid, kind, path, state, attempts, next_try)"
                                " VALUES(?,?,?,'pending',0,?)",
                                -1, &s, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(s, 1, sop, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 2, kind, -1, SQLITE_STATIC);
        sqlite3_bind_text(s, 3, path, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(s, 4, now);
        ok = sqlite3_step(s) == SQLITE_DONE;
    }
    sqlite3_finalize(s);
    return ok;
}

/* One write transaction under the connection's mutex: tx_begin locks and
 * begins (and unlocks again if BEGIN fails); tx_end commits when ok, else
 * records the SQLite error under `what` and rolls back, then unlocks. */
static fa_status tx_begin(serve_db *db, fa_error *err) {
    pthread_mutex_lock(&db->mu);
    fa_status st = exec_locked(db, "BEGIN IMMEDIATE", err);
    if (st != FA_OK) pthread_mutex_unlock(&db->mu);
    return st;
}

static fa_status tx_end(serve_db *db, int ok, const char *what, fa_error *err) {
    fa_status st;
    if (!ok) {
        st = db_fail(db, err, what);
        exec_locked(db, "ROLLBACK", NULL);
    } else {
        st = exec_locked(db, "COMMIT", err);
    }
    pthread_mutex_unlock(&db->mu);
    return st;
}

fa_status serve_db_scored(serve_db *db, const char *sop_uid, const serve_score *sc, const char *sr_path,
                          const char *sc_path, fa_error *err) {
    fa_status st = tx_begin(db, err);
    if (st != FA_OK) return st;
    double now = serve_db_now();
    sqlite3_stmt *s = NULL;
    int ok = sqlite3_prepare_v2(db->h,
                                "UPDATE instances SET state='scored', score=?, decision=?, threshold=?, model=?,"
                                " heatmap=?, score_ms=?, scored_at=?, error=NULL,"
                                " reported_at=CASE WHEN ?=0 THEN ? ELSE NULL END WHERE sop_uid=?",
                                -1, &s, NULL) == SQLITE_OK;
    int n_out = (sr_path != NULL) + (sc_path != NULL);
    if (ok) {
        sqlite3_bind_double(s, 1, sc->score);
        sqlite3_bind_int(s, 2, sc->decision);
        if (isnan(sc->threshold)) sqlite3_bind_null(s, 3);
        else sqlite3_bind_double(s, 3, sc->threshold);
        sqlite3_bind_text(s, 4, sc->model, -1, SQLITE_TRANSIENT);
        sqlite3_bind_text(s, 5, sc->heatmap, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(s, 6, sc->score_ms);
        sqlite3_bind_double(s, 7, now);
        sqlite3_bind_int(s, 8, n_out);
        sqlite3_bind_double(s, 9, now);
        sqlite3_bind_text(s, 10, sop_uid, -1, SQLITE_TRANSIENT);
        ok = sqlite3_step(s) == SQLITE_DONE;
    }
    sqlite3_finalize(s);
    if (ok && sr_path) ok = queue_locked(db, sop_uid, "sr", sr_path, now);
    if (ok && sc_path) ok = queue_locked(db, sop_uid, "sc", sc_path, now);
    return tx_end(db, ok, "record score", err);
}

fa_status serve_db_failed(serve_db *db, const char *sop_uid, const char *message, fa_error *err) {
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *s = NULL;
    fa_status st = FA_OK;
    if (sqlite3_prepare_v2(db->h, "UPDATE instances SET state='error', error=?, scored_at=? WHERE sop_uid=?", -1,
                           &s, NULL) != SQLITE_OK) {
        st = db_fail(db, err, "record error");
    } else {
        sqlite3_bind_text(s, 1, message, -1, SQLITE_TRANSIENT);
        sqlite3_bind_double(s, 2, serve_db_now());
        sqlite3_bind_text(s, 3, sop_uid, -1, SQLITE_TRANSIENT);
        if (sqlite3_step(s) != SQLITE_DONE) st = db_fail(db, err, "record error");
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&db->mu);
    return st;
}

int serve_db_next_outgoing(serve_db *db, double now, double lease_s, serve_outgoing *out, fa_error *err) {
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *s = NULL;
    int r = -1;
    if (sqlite3_prepare_v2(db->h,
                           "SELECT id, sop_uid, kind, path, attempts FROM outbox WHERE state='pending' AND"
                           " next_try<=? ORDER BY next_try, id LIMIT 1",
                           -1, &s, NULL) == SQLITE_OK) {
        sqlite3_bind_double(s, 1, now);
        int rc = sqlite3_step(s);
        if (rc == SQLITE_ROW) {
            memset(out, 0, sizeof *out);
            out->id = sqlite3_column_int64(s, 0);
            col_text(s, 1, out->sop_uid, sizeof out->sop_uid);
            col_text(s, 2, out->kind, sizeof out->kind);
            col_text(s, 3, out->path, sizeof out->path);
            out->attempts = sqlite3_column_int(s, 4);
            r = 1;
        } else if (rc == SQLITE_DONE) {
            r = 0;
        }
    }
    sqlite3_finalize(s);
    s = NULL;
    if (r == 1) {
        if (sqlite3_prepare_v2(db->h, "UPDATE outbox SET next_try=? WHERE id=?", -1, &s, NULL) != SQLITE_OK) {
            r = -1;
        } else {
            sqlite3_bind_double(s, 1, now + lease_s);
            sqlite3_bind_int64(s, 2, out->id);
            if (sqlite3_step(s) != SQLITE_DONE) r = -1;
        }
        sqlite3_finalize(s);
    }
    if (r < 0) db_fail(db, err, "outbox");
    pthread_mutex_unlock(&db->mu);
    return r;
}

fa_status serve_db_outgoing_done(serve_db *db, const serve_outgoing *o, int sent, double next_try, int give_up,
                                 const char *message, fa_error *err) {
    fa_status st = tx_begin(db, err);
    if (st != FA_OK) return st;
    double now = serve_db_now();
    sqlite3_stmt *s = NULL;
    int ok = sqlite3_prepare_v2(db->h,
                                "UPDATE outbox SET state=?, attempts=attempts+1, next_try=?, last_error=?,"
                                " sent_at=? WHERE id=?",
                                -1, &s, NULL) == SQLITE_OK;
    if (ok) {
        sqlite3_bind_text(s, 1, sent ? "sent" : give_up ? "failed" : "pending", -1, SQLITE_STATIC);
        sqlite3_bind_double(s, 2, next_try);
        sqlite3_bind_text(s, 3, message ? message : "", -1, SQLITE_TRANSIENT);
        if (sent) sqlite3_bind_double(s, 4, now);
        else sqlite3_bind_null(s, 4);
        sqlite3_bind_int64(s, 5, o->id);
        ok = sqlite3_step(s) == SQLITE_DONE;
    }
    sqlite3_finalize(s);
    s = NULL;
    if (ok && sent) {
        ok = sqlite3_prepare_v2(db->h,
                                "UPDATE instances SET reported_at=? WHERE sop_uid=? AND NOT EXISTS"
                                " (SELECT 1 FROM outbox WHERE sop_uid=? AND state!='sent')",
                                -1, &s, NULL) == SQLITE_OK;
        if (ok) {
            sqlite3_bind_double(s, 1, now);
            sqlite3_bind_text(s, 2, o->sop_uid, -1, SQLITE_TRANSIENT);
            sqlite3_bind_text(s, 3, o->sop_uid, -1, SQLITE_TRANSIENT);
            ok = sqlite3_step(s) == SQLITE_DONE;
        }
        sqlite3_finalize(s);
    }
    return tx_end(db, ok, "outbox update", err);
}

fa_status serve_db_counts(serve_db *db, serve_counts *out, fa_error *err) {
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *s = NULL;
    fa_status st = FA_OK;
    const char *sql = "SELECT 'i', state, COUNT(*) FROM instances GROUP BY state UNION ALL"
                      " SELECT 'o', state, COUNT(*) FROM outbox GROUP BY state";
    if (sqlite3_prepare_v2(db->h, sql, -1, &s, NULL) != SQLITE_OK) {
        st = db_fail(db, err, "counts");
    } else {
        while (sqlite3_step(s) == SQLITE_ROW) {
            const char *t = (const char *)sqlite3_column_text(s, 0);
            const char *k = (const char *)sqlite3_column_text(s, 1);
            long long n = sqlite3_column_int64(s, 2);
            if (!t || !k) continue;
            if (t[0] == 'i') {
                if (!strcmp(k, "received")) out->received = n;
                else if (!strcmp(k, "scoring")) out->scoring = n;
                else if (!strcmp(k, "scored")) out->scored = n;
                else if (!strcmp(k, "error")) out->error = n;
            } else {
                if (!strcmp(k, "pending")) out->pending = n;
                else if (!strcmp(k, "sent")) out->sent = n;
                else if (!strcmp(k, "failed")) out->failed = n;
            }
        }
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&db->mu);
    return st;
}

fa_status serve_db_studies(serve_db *db, serve_study **out, int *n, fa_error *err) {
    *out = NULL;
    *n = 0;
    pthread_mutex_lock(&db->mu);
    sqlite3_stmt *s = NULL;
    fa_status st = FA_OK;
    const char *sql =
        "SELECT study_uid, MAX(patient_id), COUNT(*), SUM(state='scored'), MIN(received_at), MAX(score),"
        " MAX(CASE WHEN decision=1 THEN 1 ELSE 0 END), SUM(decision IS NULL OR decision<0),"
        " (SELECT t.sop_uid FROM instances t WHERE t.study_uid=i.study_uid AND t.state='scored'"
        "  ORDER BY t.score DESC LIMIT 1),"
        " MAX(heatmap IS NOT NULL AND heatmap!=''), SUM(reported_at IS NULL)"
        " FROM instances i WHERE state IN ('received','scoring','scored') GROUP BY study_uid";
    if (sqlite3_prepare_v2(db->h, sql, -1, &s, NULL) != SQLITE_OK) {
        st = db_fail(db, err, "worklist");
    } else {
        int cap = 0;
        serve_study *v = NULL;
        int rc;
        while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
            if (*n == cap) {
                int nc = cap ? cap * 2 : 64;
                serve_study *nv = fa_malloc_array((size_t)nc, sizeof *nv);
                if (!nv) {
                    st = fa_error_set(err, FA_ERR_NOMEM, "worklist: out of memory");
                    break;
                }
                if (v) memcpy(nv, v, (size_t)*n * sizeof *v);
                free(v);
                v = nv;
                cap = nc;
            }
            serve_study *x = &v[(*n)++];
            memset(x, 0, sizeof *x);
            col_text(s, 0, x->study_uid, sizeof x->study_uid);
            col_text(s, 1, x->patient_id, sizeof x->patient_id);
            x->n_images = sqlite3_column_int(s, 2);
            x->n_scored = sqlite3_column_int(s, 3);
            x->first_received = sqlite3_column_double(s, 4);
            x->score = sqlite3_column_type(s, 5) == SQLITE_NULL ? NAN : sqlite3_column_double(s, 5);
            int any_pos = sqlite3_column_int(s, 6);
            int unknown = sqlite3_column_int(s, 7);
            x->decision = any_pos ? 1 : unknown ? -1 : 0;
            col_text(s, 8, x->top_sop, sizeof x->top_sop);
            x->has_heatmap = sqlite3_column_int(s, 9);
            x->reported = sqlite3_column_int(s, 10) == 0;
        }
        if (st == FA_OK && rc != SQLITE_DONE) st = db_fail(db, err, "worklist");
        if (st != FA_OK) {
            free(v);
            *n = 0;
        } else {
            *out = v;
        }
    }
    sqlite3_finalize(s);
    pthread_mutex_unlock(&db->mu);
    return st;
}
