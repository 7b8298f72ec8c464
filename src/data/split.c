/* split.c - patient-grouped, stratified, seeded splits and k-fold (split.h). */
#include "data/split.h"

#include <ctype.h>
#include <fnmatch.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fa_progress.h"
#include "data/manifest.h"

/* ---- seeded generator (splitmix64) --------------------------------------- */

static uint64_t rng_next(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [0, n) without modulo bias. */
static uint64_t rng_below(uint64_t *s, uint64_t n) {
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = rng_next(s);
    while (x >= limit);
    return x % n;
}

static void shuffle(int *a, int n, uint64_t *s) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)rng_below(s, (uint64_t)i + 1);
        int t = a[i];
        a[i] = a[j];
        a[j] = t;
    }
}

/* ---- parsing -------------------------------------------------------------- */

static void trim_copy(const char *s, size_t len, char *out, size_t cap) {
    while (len > 0 && isspace((unsigned char)*s)) s++, len--;
    while (len > 0 && isspace((unsigned char)s[len - 1])) len--;
    if (len >= cap) len = cap - 1;
    memcpy(out, s, len);
    out[len] = '\0';
}

int split_parse_label(const char *s) {
    char t[32];
    trim_copy(s ? s : "", strlen(s ? s : ""), t, sizeof t);
    if (!t[0]) return -1;
    static const char *const pos[] = {"1", "true", "yes", "pos", "positive", NULL};
    static const char *const neg[] = {"0", "false", "no", "neg", "negative", NULL};
    for (int i = 0; pos[i]; i++)
        if (!strcasecmp(t, pos[i])) return 1;
    for (int i = 0; neg[i]; i++)
        if (!strcasecmp(t, neg[i])) return 0;
    return -2;
}

fa_status split_parse_fractions(const char *s, double out[3], fa_error *err) {
    const char *p = s;
    double sum = 0;
    for (int k = 0; k < 3; k++) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || !isfinite(v) || v < 0 || v > 1)
            return fa_error_set(err, FA_ERR_ARG, "--fractions %s: expected three numbers in [0,1] like 0.7,0.15,0.15", s);
        out[k] = v;
        sum += v;
        p = end;
        if (k < 2) {
            if (*p != ',') return fa_error_set(err, FA_ERR_ARG, "--fractions %s: expected three comma-separated numbers", s);
            p++;
        }
    }
    if (*p) return fa_error_set(err, FA_ERR_ARG, "--fractions %s: trailing text '%s'", s, p);
    if (fabs(sum - 1.0) > 1e-6) return fa_error_set(err, FA_ERR_ARG, "--fractions %s: they sum to %g, not 1", s, sum);
    return FA_OK;
}

fa_status split_parse_pool(const char *spec, split_pool *pool, fa_error *err) {
    memset(pool, 0, sizeof *pool);
    const char *p = spec;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        char cond[512];
        trim_copy(p, len, cond, sizeof cond);
        if (len >= sizeof cond) return fa_error_set(err, FA_ERR_ARG, "--pool: condition too long");
        if (pool->n == SPLIT_POOL_MAX)
            return fa_error_set(err, FA_ERR_ARG, "--pool: more than %d conditions", SPLIT_POOL_MAX);
        split_cond *c = &pool->cond[pool->n];
        char *eq = strchr(cond, '=');
        if (!eq) return fa_error_set(err, FA_ERR_ARG, "--pool: '%s' is not column=pattern or column!=pattern", cond);
        c->negate = eq > cond && eq[-1] == '!';
        const char *col_end = c->negate ? eq - 1 : eq;
        trim_copy(cond, (size_t)(col_end - cond), c->column, sizeof c->column);
        if (!c->column[0] || (size_t)(col_end - cond) >= sizeof c->column)
            return fa_error_set(err, FA_ERR_ARG, "--pool: '%s' has no (or too long a) column name", cond);
        trim_copy(eq + 1, strlen(eq + 1), c->pattern, sizeof c->pattern);
        pool->n++;
        if (!end) break;
        p = end + 1;
    }
    if (pool->n == 0) return fa_error_set(err, FA_ERR_ARG, "--pool: empty specification");
    return FA_OK;
}

static int pattern_match(const char *pattern, const char *value) {
    char v[512], alt[256];
    trim_copy(value, strlen(value), v, sizeof v);
    const char *p = pattern;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t len = bar ? (size_t)(bar - p) : strlen(p);
        trim_copy(p, len, alt, sizeof alt);
        if (fnmatch(alt, v, FNM_CASEFOLD) == 0) return 1;
        if (!bar) return 0;
        p = bar + 1;
    }
}

int split_pool_match(const csv_table *t, int row, const split_pool *pool) {
    for (int i = 0; i < pool->n; i++) {
        const split_cond *c = &pool->cond[i];
        int m = pattern_match(c->pattern, csv_cell(t, row, csv_column(t, c->column)));
        if (m == c->negate) return 0;
    }
    return 1;
}

/* ---- groups ----------------------------------------------------------------- */

typedef struct group {
    int n_img, n_pos, n_neg, n_unl, n_pool;
    int cls;  /* 0 positive, 1 negative, 2 unlabelled */
    int part; /* index into the part names, -1 none */
} group;

typedef struct row_ref {
    const char *key;
    int row;
} row_ref;

static int cmp_row_ref(const void *a, const void *b) {
    const row_ref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->row > y->row) - (x->row < y->row);
}

enum { PART_TRAIN, PART_VAL, PART_TEST, PART_UNUSED };
static const char *const split_names[4] = {"train", "val", "test", "unused"};

/* Deal the groups of one stratum (ids, already shuffled) to train/val/test in
 * fractions of groups, rounding by largest remainder. */
static void deal_fractions(group *g, const int *ids, int n, const double f[3]) {
    int count[3], sum = 0;
    double frac[3];
    for (int k = 0; k < 3; k++) {
        double want = f[k] * n;
        count[k] = (int)floor(want + 1e-9);
        frac[k] = want - count[k];
        sum += count[k];
    }
    while (sum < n) {
        int best = 0;
        for (int k = 1; k < 3; k++)
            if (frac[k] > frac[best] + 1e-12) best = k;
        count[best]++;
        frac[best] = -1;
        sum++;
    }
    int at = 0;
    for (int k = 0; k < 3; k++)
        for (int i = 0; i < count[k] && at < n; i++) g[ids[at++]].part = k;
}

typedef struct kf_item {
    int id, n_img, order;
} kf_item;

static int cmp_kf_item(const void *a, const void *b) {
    const kf_item *x = a, *y = b;
    if (x->n_img != y->n_img) return y->n_img - x->n_img;
    return x->order - y->order;
}

int split_check(const csv_table *t, const char *group_col, const char *part_col, fa_error *err) {
    int gc = csv_column(t, group_col), pc = csv_column(t, part_col);
    if (gc < 0 || pc < 0) return 0;
    row_ref *refs = fa_malloc_array((size_t)t->n_rows + 1, sizeof *refs);
    if (!refs) {
        fa_error_set(err, FA_ERR_NOMEM, "split check: out of memory");
        return -1;
    }
    int n = 0;
    for (int r = 0; r < t->n_rows; r++)
        if (t->rows[r][gc][0] && t->rows[r][pc][0]) refs[n++] = (row_ref){t->rows[r][gc], r};
    qsort(refs, (size_t)n, sizeof *refs, cmp_row_ref);
    int bad = 0;
    for (int i = 0; i < n;) {
        int j = i + 1, mixed = 0;
        while (j < n && !strcmp(refs[j].key, refs[i].key)) {
            if (strcmp(t->rows[refs[j].row][pc], t->rows[refs[i].row][pc])) mixed = 1;
            j++;
        }
        if (mixed) {
            if (!bad)
                fa_error_set(err, FA_ERR_INTERNAL, "%s %s has rows in %s '%s' and another partition", group_col,
                             refs[i].key, part_col, t->rows[refs[i].row][pc]);
            bad++;
        }
        i = j;
    }
    free(refs);
    return bad;
}

fa_status split_assign(csv_table *t, const char *name, const split_opts *o, split_summary *sum, fa_error *err) {
    memset(sum, 0, sizeof *sum);
    const char *group_col = o->group_col && o->group_col[0] ? o->group_col : "patient_id";
    const char *label_col = o->label_col && o->label_col[0] ? o->label_col : NULL;
    const char *out_col = o->out_col && o->out_col[0] ? o->out_col : o->mode == SPLIT_KFOLD ? "fold" : "split";
    int sc = csv_column(t, "status"), gc = csv_column(t, group_col), lc = label_col ? csv_column(t, label_col) : -1;
    if (sc < 0) return fa_error_set(err, FA_ERR_FORMAT, "%s: no 'status' column (is it a freeair manifest?)", name);
    if (gc < 0) return fa_error_set(err, FA_ERR_FORMAT, "%s: no group column '%s'", name, group_col);
    if (label_col && lc < 0) return fa_error_set(err, FA_ERR_FORMAT, "%s: no label column '%s'", name, label_col);
    if (!strcmp(out_col, group_col) || (label_col && !strcmp(out_col, label_col)) || !strcmp(out_col, "status"))
        return fa_error_set(err, FA_ERR_ARG, "%s: output column '%s' would overwrite an input column", name, out_col);
    const split_pool *pool = o->pool && o->pool->n ? o->pool : NULL;
    if (o->mode == SPLIT_PROTOCOL && !pool)
        return fa_error_set(err, FA_ERR_ARG, "%s: the protocol split needs --pool", name);
    if (o->mode == SPLIT_PROTOCOL && !label_col)
        return fa_error_set(err, FA_ERR_ARG, "%s: the protocol split needs a label column", name);
    if (o->mode == SPLIT_FRACTIONS && pool)
        return fa_error_set(err, FA_ERR_ARG, "%s: --pool needs exact counts (--train-pos ...) or --kfold", name);
    if (o->mode == SPLIT_PROTOCOL &&
        (o->train_pos < 0 || o->train_neg < 0 || o->val_pos < 0 || o->val_neg < 0))
        return fa_error_set(err, FA_ERR_ARG, "%s: image counts must not be negative", name);
    if (o->mode == SPLIT_KFOLD && (o->kfold < 2 || o->kfold > SPLIT_MAX_PARTS))
        return fa_error_set(err, FA_ERR_ARG, "%s: --kfold must be 2..%d", name, SPLIT_MAX_PARTS);
    if (pool)
        for (int i = 0; i < pool->n; i++)
            if (csv_column(t, pool->cond[i].column) < 0)
                return fa_error_set(err, FA_ERR_FORMAT, "%s: pool column '%s' is not in the manifest", name,
                                    pool->cond[i].column);

    int *row_group = fa_malloc_array((size_t)t->n_rows + 1, sizeof *row_group);
    row_ref *refs = fa_malloc_array((size_t)t->n_rows + 1, sizeof *refs);
    group *g = fa_calloc_array((size_t)t->n_rows + 1, sizeof *g);
    int *ids = fa_malloc_array((size_t)t->n_rows + 1, sizeof *ids);
    kf_item *items = fa_malloc_array((size_t)t->n_rows + 1, sizeof *items);
    fa_status st = FA_OK;
    if (!row_group || !refs || !g || !ids || !items) {
        st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", name);
        goto out;
    }
    sum->n_rows = t->n_rows;
    int n_ok = 0;
    for (int r = 0; r < t->n_rows; r++) {
        row_group[r] = -1;
        if (strcmp(t->rows[r][sc], "ok")) {
            sum->n_not_ok++;
            continue;
        }
        if (lc >= 0 && split_parse_label(t->rows[r][lc]) == -2) {
            st = fa_error_set(err, FA_ERR_FORMAT, "%s: data row %d: label '%s' is not 1/0 (true/false, yes/no, pos/neg)",
                              name, r + 1, t->rows[r][lc]);
            goto out;
        }
        refs[n_ok++] = (row_ref){t->rows[r][gc], r};
    }
    sum->n_ok = n_ok;
    /* Groups in key order (empty keys: one group per row). */
    qsort(refs, (size_t)n_ok, sizeof *refs, cmp_row_ref);
    int n_groups = 0;
    for (int i = 0; i < n_ok; i++) {
        int r = refs[i].row;
        if (!refs[i].key[0]) sum->n_empty_group++;
        if (i == 0 || !refs[i].key[0] || strcmp(refs[i].key, refs[i - 1].key)) n_groups++;
        int id = n_groups - 1;
        row_group[r] = id;
        group *gr = &g[id];
        gr->part = -1;
        gr->n_img++;
        int lab = lc >= 0 ? split_parse_label(t->rows[r][lc]) : -1;
        if (lab == 1) gr->n_pos++;
        else if (lab == 0) gr->n_neg++;
        else gr->n_unl++;
        if (pool && split_pool_match(t, r, pool)) {
            gr->n_pool++;
            sum->n_pool_images++;
        }
    }
    sum->n_groups = n_groups;
    for (int i = 0; i < n_groups; i++) g[i].cls = g[i].n_pos ? 0 : g[i].n_neg ? 1 : 2;
    uint64_t rng = o->seed;

    if (o->mode == SPLIT_FRACTIONS) {
        for (int cls = 0; cls < 3; cls++) {
            int n = 0;
            for (int i = 0; i < n_groups; i++)
                if (g[i].cls == cls) ids[n++] = i;
            shuffle(ids, n, &rng);
            deal_fractions(g, ids, n, o->fractions);
        }
    } else if (o->mode == SPLIT_PROTOCOL) {
        long have_pos = 0, have_neg = 0;
        int n = 0;
        for (int i = 0; i < n_groups; i++) {
            if (g[i].n_pool > 0 && g[i].n_pool < g[i].n_img) sum->n_pool_split++;
            if (g[i].n_pool != g[i].n_img) continue;
            if (g[i].n_unl) {
                sum->n_pool_unlabelled++;
                continue;
            }
            ids[n++] = i;
            have_pos += g[i].n_pos;
            have_neg += g[i].n_neg;
        }
        sum->n_pool_patients = n;
        long need_pos = (long)o->train_pos + o->val_pos, need_neg = (long)o->train_neg + o->val_neg;
        if (have_pos < need_pos || have_neg < need_neg) {
            st = fa_error_set(err, FA_ERR_ARG,
                              "%s: impossible counts: train+val need %ld positive and %ld negative images but the pool "
                              "has %ld and %ld (%d eligible patients)",
                              name, need_pos, need_neg, have_pos, have_neg, n);
            goto out;
        }
        const int want[2][2] = {{o->train_pos, o->train_neg}, {o->val_pos, o->val_neg}};
        int done = 0, attempt;
        for (attempt = 1; attempt <= 1000 && !done; attempt++) {
            shuffle(ids, n, &rng);
            for (int i = 0; i < n; i++) g[ids[i]].part = -1;
            done = 1;
            for (int p = 0; p < 2 && done; p++) {
                int np = want[p][0], nn = want[p][1];
                for (int i = 0; i < n && (np || nn); i++) {
                    group *gr = &g[ids[i]];
                    if (gr->part >= 0 || gr->n_pos > np || gr->n_neg > nn) continue;
                    gr->part = p;
                    np -= gr->n_pos;
                    nn -= gr->n_neg;
                }
                if (np || nn) done = 0;
            }
        }
        sum->attempts = attempt - 1;
        if (!done) {
            st = fa_error_set(err, FA_ERR_ARG,
                              "%s: cannot reach the exact counts with whole patients after 1000 shuffles (patients with "
                              "several images); relax the counts",
                              name);
            goto out;
        }
        for (int i = 0; i < n_groups; i++) {
            if (g[i].part >= 0) continue;
            int leftover = g[i].n_pool == g[i].n_img && !g[i].n_unl;
            g[i].part = leftover && o->leftover_unused ? PART_UNUSED : PART_TEST;
        }
    } else {
        int K = o->kfold;
        long strat[3][SPLIT_MAX_PARTS] = {{0}}, total[SPLIT_MAX_PARTS] = {0};
        int n_part = 0;
        for (int i = 0; i < n_groups; i++)
            if (!pool || g[i].n_pool == g[i].n_img) n_part++;
        if (n_part < K) {
            st = fa_error_set(err, FA_ERR_ARG, "%s: %d patients cannot fill %d folds", name, n_part, K);
            goto out;
        }
        sum->n_pool_patients = pool ? n_part : 0;
        /* One greedy pass, largest patients first (ties in shuffled order):
         * each goes to the fold that holds the fewest images of the label
         * classes it brings, i.e. minimising sum_c count[f][c] * brings[c],
         * which keeps positives and negatives balanced at once (mixed-label
         * patients included); then fewest images, then lowest index. */
        int n = 0;
        for (int i = 0; i < n_groups; i++)
            if (!pool || g[i].n_pool == g[i].n_img) ids[n++] = i;
        shuffle(ids, n, &rng);
        for (int i = 0; i < n; i++) items[i] = (kf_item){ids[i], g[ids[i]].n_img, i};
        qsort(items, (size_t)n, sizeof *items, cmp_kf_item);
        for (int i = 0; i < n; i++) {
            const group *gr = &g[items[i].id];
            const long brings[3] = {gr->n_pos, gr->n_neg, gr->n_unl};
            int best = 0;
            long best_cost = -1;
            for (int f = 0; f < K; f++) {
                long cost = 0;
                for (int c = 0; c < 3; c++) cost += strat[c][f] * brings[c];
                if (best_cost < 0 || cost < best_cost || (cost == best_cost && total[f] < total[best])) {
                    best = f;
                    best_cost = cost;
                }
            }
            g[items[i].id].part = best;
            for (int c = 0; c < 3; c++) strat[c][best] += brings[c];
            total[best] += gr->n_img;
        }
    }

    /* Write the column and count. */
    int oc;
    st = manifest_add_column(t, out_col, &oc, err);
    if (st != FA_OK) goto out;
    int n_parts = o->mode == SPLIT_KFOLD ? o->kfold : 4;
    sum->n_parts = n_parts;
    for (int p = 0; p < n_parts; p++) {
        if (o->mode == SPLIT_KFOLD) snprintf(sum->part_name[p], sizeof sum->part_name[p], "%d", p);
        else snprintf(sum->part_name[p], sizeof sum->part_name[p], "%s", split_names[p]);
    }
    for (int i = 0; i < n_groups; i++)
        if (g[i].part >= 0) sum->patients[g[i].part]++;
    for (int r = 0; r < t->n_rows; r++) {
        int id = row_group[r];
        int p = id >= 0 ? g[id].part : -1;
        char *v = strdup(p >= 0 ? sum->part_name[p] : "");
        if (!v) {
            st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", name);
            goto out;
        }
        free(t->rows[r][oc]);
        t->rows[r][oc] = v;
        if (p < 0) continue;
        sum->images[p]++;
        int lab = lc >= 0 ? split_parse_label(t->rows[r][lc]) : -1;
        if (lab == 1) sum->pos[p]++;
        else if (lab == 0) sum->neg[p]++;
        else sum->unlabelled[p]++;
    }
    /* The invariant, checked on the written column rather than assumed. */
    fa_error cerr = {0};
    sum->overlap_groups = split_check(t, group_col, out_col, &cerr);
    if (sum->overlap_groups != 0)
        st = fa_error_set(err, FA_ERR_INTERNAL, "%s: %d patients span two partitions (bug): %s", name,
                          sum->overlap_groups, cerr.msg);
out:
    free(row_group);
    free(refs);
    free(g);
    free(ids);
    free(items);
    return st;
}

void split_summary_print(FILE *f, const split_summary *s) {
    fprintf(f, "%-8s %8s %9s %7s %7s %11s\n", "part", "images", "patients", "pos", "neg", "unlabelled");
    for (int p = 0; p < s->n_parts; p++) {
        if (!s->images[p] && !strcmp(s->part_name[p], "unused")) continue; /* no "unused" line unless used */
        fprintf(f, "%-8s %8d %9d %7d %7d %11d\n", s->part_name[p], s->images[p], s->patients[p], s->pos[p], s->neg[p],
                s->unlabelled[p]);
    }
    fprintf(f, "rows %d, taking part %d (status ok), left out %d; %d patients, none in two partitions\n", s->n_rows,
            s->n_ok, s->n_not_ok, s->n_groups);
    if (s->n_empty_group)
        fprintf(f, "warning: %d ok rows have no patient ID; each is treated as its own patient\n", s->n_empty_group);
    if (s->n_pool_split)
        fprintf(f, "note: %d patients have images both inside and outside the pool; they go to test\n",
                s->n_pool_split);
    if (s->n_pool_unlabelled)
        fprintf(f, "note: %d pool patients have unlabelled images; they are not drawn for train/val\n",
                s->n_pool_unlabelled);
}

void split_summary_write_json(FILE *f, const split_summary *s, const split_opts *o) {
    static const char *const modes[] = {"fractions", "protocol", "kfold"};
    fprintf(f, "{\"mode\": \"%s\", \"seed\": %llu, \"rows\": %d, \"ok\": %d, \"left_out\": %d, \"patients\": %d, ",
            modes[o->mode], (unsigned long long)o->seed, s->n_rows, s->n_ok, s->n_not_ok, s->n_groups);
    fprintf(f, "\"patients_in_two_partitions\": %d, \"rows_without_patient_id\": %d, ", s->overlap_groups,
            s->n_empty_group);
    if (o->mode == SPLIT_PROTOCOL)
        fprintf(f, "\"pool_images\": %d, \"pool_patients\": %d, \"pool_split_patients\": %d, \"attempts\": %d, ",
                s->n_pool_images, s->n_pool_patients, s->n_pool_split, s->attempts);
    fprintf(f, "\"parts\": {");
    for (int p = 0; p < s->n_parts; p++) {
        fprintf(f, "%s", p ? ", " : "");
        fa_json_write_string(f, s->part_name[p]);
        fprintf(f, ": {\"images\": %d, \"patients\": %d, \"pos\": %d, \"neg\": %d, \"unlabelled\": %d}", s->images[p],
                s->patients[p], s->pos[p], s->neg[p], s->unlabelled[p]);
    }
    fprintf(f, "}}\n");
}
