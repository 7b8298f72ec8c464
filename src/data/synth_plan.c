/* synth_plan.c - who is in the synthetic cohort: hospitals, imaging systems,
 * the study's Table 1 composition, patients, demographics and truth draws.
 *
 * The paper preset reproduces Table 1 of the study exactly. Two cells of its
 * negative column contradict the table's own totals (AP 304 + PA 429 and
 * female 303 do not add up to the 653 negatives); they are resolved from the
 * totals that do agree: negatives AP = 554 - 251 = 303, PA = 733 - 383 = 350,
 * female = 590 - 290 = 300. The joint table of label x group below is the one
 * the study's split protocol implies: train/val (420+/465-) come only from
 * fixed Philips units of the academic hospital, and the test set (402:
 * 214+/188-) holds every portable image (318) and 84 fixed images, which must
 * be community images since all academic fixed images are in the pool.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/synth.h"

const char *const synth_vendor_names[SYNTH_N_VENDORS] = {"philips", "fujifilm", "siemens", "kodak", "konica"};

const char *const synth_confounder_names[SYNTH_N_CF] = {
    "gastric_bubble_large", "basal_lucency", "chilaiditi", "effusion", "consolidation", "cardiomegaly",
    "old_surgical_clips"};

const synth_hospital synth_hospitals[] = {
    {"H01", "SYNTH Academic Medical Center", 1},  {"H02", "SYNTH Community Hospital 02", 0},
    {"H03", "SYNTH Community Hospital 03", 0},    {"H04", "SYNTH Community Hospital 04", 0},
    {"H05", "SYNTH Community Hospital 05", 0},    {"H06", "SYNTH Community Hospital 06", 0},
    {"H07", "SYNTH Community Hospital 07", 0},    {"H08", "SYNTH Community Hospital 08", 0},
    {"H09", "SYNTH Community Hospital 09", 0},    {"H10", "SYNTH Community Hospital 10", 0},
    {"H11", "SYNTH Community Hospital 11", 0},    {"H12", "SYNTH Community Hospital 12", 0},
    {"H13", "SYNTH Community Hospital 13", 0},
};
const int synth_n_hospitals = (int)(sizeof synth_hospitals / sizeof synth_hospitals[0]);

#define PH "Philips Medical Systems"
#define FU "FUJIFILM Corporation"
#define SI "SIEMENS"
#define KO "KODAK"
#define KM "KONICA MINOLTA"
#define V_PH SYNTH_VENDOR_PHILIPS
#define V_FU SYNTH_VENDOR_FUJIFILM
#define V_SI SYNTH_VENDOR_SIEMENS
#define V_KO SYNTH_VENDOR_KODAK
#define V_KM SYNTH_VENDOR_KONICA
#define T_LE SYNTH_TS_EXPLICIT_LE
#define T_RLE SYNTH_TS_RLE
#define T_JL SYNTH_TS_JPEG_LOSSLESS
#define T_LS SYNTH_TS_JPEG_LS

/* The academic hospital's five Philips units cover all four transfer syntaxes,
 * so even the tiny preset exercises every encoder. Field sizes and pitches
 * span the study's range: 1728x1645 (Konica CR, 0.2 mm) to 4280x3520 (Fuji
 * CR, 0.1 mm). */
const synth_machine synth_machines[] = {
    /* hosp vendor port manufacturer model station serial cr bits mono1 ts  w    h    pitch */
    {0, V_PH, 0, PH, "DigitalDiagnost", "AMC-DR1", "PH10021", 0, 12, 0, T_LE, 430, 430, 0.143},
    {0, V_PH, 0, PH, "DigitalDiagnost", "AMC-DR2", "PH10022", 0, 12, 0, T_LS, 430, 430, 0.143},
    {0, V_PH, 0, PH, "DigitalDiagnost C90", "AMC-DR3", "PH20107", 0, 14, 0, T_JL, 430, 430, 0.148},
    {0, V_PH, 1, PH, "MobileDiagnost wDR", "AMC-MOB1", "PH30301", 0, 12, 0, T_RLE, 350, 430, 0.148},
    {0, V_PH, 1, PH, "MobileDiagnost wDR", "AMC-MOB2", "PH30302", 0, 12, 0, T_LS, 350, 430, 0.148},
    {1, V_PH, 0, PH, "DigitalDiagnost", "CH02-DR", "PH10140", 0, 12, 0, T_LE, 430, 430, 0.143},
    {1, V_PH, 1, PH, "PCR Eleva S", "CH02-CR", "PH40011", 1, 14, 1, T_JL, 350, 430, 0.150},
    {2, V_PH, 0, PH, "DigitalDiagnost", "CH03-DR", "PH10177", 0, 12, 0, T_LS, 430, 430, 0.143},
    {2, V_FU, 1, FU, "FCR Carbon XL", "CH03-CR", "FU55012", 1, 10, 1, T_JL, 352, 428, 0.100},
    {3, V_FU, 0, FU, "FCR Capsula XLII", "CH04-CR", "FU56120", 1, 10, 1, T_JL, 352, 428, 0.100},
    {3, V_PH, 1, PH, "MobileDiagnost wDR", "CH04-MOB", "PH30355", 0, 12, 0, T_RLE, 350, 430, 0.148},
    {4, V_SI, 0, SI, "Ysio Max", "CH05-DR", "SI70310", 0, 16, 0, T_RLE, 430, 430, 0.148},
    {4, V_SI, 1, SI, "Mobilett Mira Max", "CH05-MOB", "SI71022", 0, 16, 0, T_LE, 350, 430, 0.148},
    {5, V_KO, 0, KO, "DirectView CR 975", "CH06-CR", "KO97501", 1, 12, 1, T_LS, 350, 430, 0.168},
    {5, V_KO, 1, KO, "DRX-Revolution", "CH06-MOB", "KO88014", 0, 12, 0, T_LS, 350, 430, 0.139},
    {6, V_KM, 0, KM, "REGIUS 190", "CH07-CR", "KM19003", 1, 12, 1, T_JL, 345.6, 329, 0.200},
    {6, V_KM, 1, KM, "AeroDR", "CH07-MOB", "KM60201", 0, 16, 1, T_LS, 348, 425, 0.175},
    {7, V_FU, 0, FU, "FCR Velocity U", "CH08-CR", "FU57001", 1, 10, 1, T_RLE, 430, 430, 0.150},
    {7, V_FU, 1, FU, "FDR Go", "CH08-MOB", "FU60133", 0, 12, 0, T_JL, 350, 430, 0.150},
    {8, V_SI, 0, SI, "Ysio", "CH09-DR", "SI70044", 0, 16, 0, T_LS, 430, 430, 0.148},
    {8, V_PH, 1, PH, "MobileDiagnost wDR", "CH09-MOB", "PH30377", 0, 12, 0, T_LE, 350, 430, 0.148},
    {9, V_KO, 0, KO, "DirectView DR 7500", "CH10-DR", "KO75002", 0, 12, 0, T_RLE, 430, 430, 0.139},
    {9, V_KM, 1, KM, "AeroDR", "CH10-MOB", "KM60288", 0, 16, 1, T_JL, 348, 425, 0.175},
    {10, V_KM, 0, KM, "AeroDR", "CH11-DR", "KM61010", 0, 16, 1, T_RLE, 430, 430, 0.175},
    {10, V_SI, 1, SI, "Mobilett XP", "CH11-MOB", "SI71190", 0, 16, 0, T_LS, 350, 430, 0.148},
    {11, V_PH, 0, PH, "DigitalDiagnost", "CH12-DR", "PH10203", 0, 12, 0, T_RLE, 430, 430, 0.143},
    {11, V_KO, 1, KO, "DRX-Revolution", "CH12-MOB", "KO88102", 0, 12, 0, T_JL, 350, 430, 0.139},
    {12, V_FU, 0, FU, "FCR Capsula XLII", "CH13-CR", "FU56211", 1, 10, 1, T_LS, 352, 428, 0.100},
    {12, V_SI, 1, SI, "Mobilett Mira", "CH13-MOB", "SI71240", 0, 16, 0, T_RLE, 350, 430, 0.148},
};
const int synth_n_machines = (int)(sizeof synth_machines / sizeof synth_machines[0]);

/* Groups of Table 1's joint composition. */
enum { G_POOL, G_AH_PORT, G_CH_FIX_PH, G_CH_FIX_OT, G_CH_PORT_PH, G_CH_PORT_OT, N_GROUPS };
static const int paper_cells[2][N_GROUPS] = {
    /* negatives */ {465, 51, 20, 33, 33, 51},
    /* positives */ {420, 125, 12, 19, 19, 39},
};
/* Paper totals used for scaling the marginal assignments. */
#define P_N 1287
#define P_POS 634
#define P_NEG 653
#define P_PATIENTS 1124
#define P_POS_MALE 344
#define P_NEG_MALE 353
#define P_POS_FIXED 451
#define P_NEG_FIXED 518
#define P_POS_FIXED_AP 68  /* AP 251 - portable 183 */
#define P_NEG_FIXED_AP 168 /* AP 303 - portable 135 */
#define P_POSTOP 182

static const double age_mean[2][2] = {{61.82, 58.98}, {61.06, 65.09}}; /* [label][female] */
static const double age_sd[2][2] = {{17.79, 19.89}, {17.44, 16.09}};

static int preset_size(synth_preset p) {
    switch (p) {
    case SYNTH_PRESET_PAPER: return P_N;
    case SYNTH_PRESET_SMALL: return 360;
    default: return 40;
    }
}

static int group_matches(int g, const synth_machine *m) {
    int academic = synth_hospitals[m->hospital].academic;
    int ph = m->vendor == SYNTH_VENDOR_PHILIPS;
    switch (g) {
    case G_POOL: return academic && !m->portable;
    case G_AH_PORT: return academic && m->portable;
    case G_CH_FIX_PH: return !academic && !m->portable && ph;
    case G_CH_FIX_OT: return !academic && !m->portable && !ph;
    case G_CH_PORT_PH: return !academic && m->portable && ph;
    default: return !academic && m->portable && !ph;
    }
}

/* Largest-remainder rounding of weights w[0..n) (n <= 256) to integers
 * summing to total. */
#define LR_MAX 256
static void largest_remainder(const double *w, int n, int total, int *out) {
    double sum = 0;
    for (int i = 0; i < n; i++) sum += w[i];
    int given = 0;
    double rem[LR_MAX];
    if (n > LR_MAX) n = LR_MAX;
    for (int i = 0; i < n; i++) {
        double x = sum > 0 ? w[i] * total / sum : 0;
        out[i] = (int)floor(x);
        rem[i] = x - out[i];
        given += out[i];
    }
    while (given < total) {
        int best = 0;
        for (int i = 1; i < n; i++)
            if (rem[i] > rem[best]) best = i;
        out[best]++;
        rem[best] = -1;
        given++;
    }
}

static int scaled(int paper_count, int paper_total, int total) {
    return (int)floor((double)paper_count * total / paper_total + 0.5);
}

static void scaled_cells(synth_preset p, int cells[2][N_GROUPS]) {
    double w[2 * N_GROUPS];
    int out[2 * N_GROUPS];
    for (int l = 0; l < 2; l++)
        for (int g = 0; g < N_GROUPS; g++) w[l * N_GROUPS + g] = paper_cells[l][g];
    largest_remainder(w, 2 * N_GROUPS, preset_size(p), out);
    for (int l = 0; l < 2; l++)
        for (int g = 0; g < N_GROUPS; g++) cells[l][g] = out[l * N_GROUPS + g];
}

void synth_preset_targets(synth_preset p, synth_targets *t) {
    memset(t, 0, sizeof *t);
    int cells[2][N_GROUPS];
    scaled_cells(p, cells);
    int n = preset_size(p);
    t->n = n;
    int nl[2] = {0, 0}, fixed_l[2] = {0, 0};
    for (int l = 0; l < 2; l++)
        for (int g = 0; g < N_GROUPS; g++) {
            int k = cells[l][g];
            nl[l] += k;
            if (g == G_POOL || g == G_CH_FIX_PH || g == G_CH_FIX_OT) t->fixed += k, fixed_l[l] += k;
            else t->portable += k;
            if (g != G_CH_FIX_OT && g != G_CH_PORT_OT) t->philips += k;
            if (g == G_POOL || g == G_AH_PORT) t->academic += k;
        }
    t->n_pos = nl[1];
    t->pool_pos = cells[1][G_POOL];
    t->pool_neg = cells[0][G_POOL];
    t->pos_male = scaled(P_POS_MALE, P_POS, nl[1]);
    t->neg_male = scaled(P_NEG_MALE, P_NEG, nl[0]);
    t->male = t->pos_male + t->neg_male;
    t->ap = t->portable + scaled(P_POS_FIXED_AP, P_POS_FIXED, fixed_l[1]) +
            scaled(P_NEG_FIXED_AP, P_NEG_FIXED, fixed_l[0]);
    t->postop = scaled(P_POSTOP, P_POS, nl[1]);
    t->n_patients = n - scaled(P_N - P_PATIENTS, P_N, n);
    memcpy(t->age_mean, age_mean, sizeof age_mean);
    memcpy(t->age_sd, age_sd, sizeof age_sd);
}

/* ---- calendar (proleptic Gregorian; days since 1970-01-01) ---- */
static long days_from_civil(int y, int m, int d) {
    y -= m <= 2;
    long era = (y >= 0 ? y : y - 399) / 400;
    long yoe = y - era * 400;
    long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int civil_from_days(long z) {
    z += 719468;
    long era = (z >= 0 ? z : z - 146096) / 146097;
    long doe = z - era * 146097;
    long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long y = yoe + era * 400;
    long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long mp = (5 * doy + 2) / 153;
    long d = doy - (153 * mp + 2) / 5 + 1;
    long m = mp < 10 ? mp + 3 : mp - 9;
    return (int)((y + (m <= 2)) * 10000 + m * 100 + d);
}

void synth_options_default(synth_options *o) {
    memset(o, 0, sizeof *o);
    o->preset = SYNTH_PRESET_TINY;
    o->seed = 1;
    o->difficulty = 1.0;
    o->force_syntax = -1;
    o->masks = 1;
}

fa_status synth_parse_preset(const char *s, synth_preset *out, fa_error *err) {
    if (!strcmp(s, "paper")) *out = SYNTH_PRESET_PAPER;
    else if (!strcmp(s, "small")) *out = SYNTH_PRESET_SMALL;
    else if (!strcmp(s, "tiny")) *out = SYNTH_PRESET_TINY;
    else return fa_error_set(err, FA_ERR_ARG, "--preset %s: expected paper, small or tiny", s);
    return FA_OK;
}

fa_status synth_parse_difficulty(const char *s, double *out, fa_error *err) {
    if (!strcmp(s, "easy")) *out = 0.5;
    else if (!strcmp(s, "default")) *out = 1.0;
    else if (!strcmp(s, "hard")) *out = 1.5;
    else {
        char *end;
        double d = strtod(s, &end);
        if (end == s || *end || !(d >= 0.25 && d <= 3.0))
            return fa_error_set(err, FA_ERR_ARG, "--difficulty %s: expected easy, default, hard or a number in 0.25..3",
                                s);
        *out = d;
    }
    return FA_OK;
}

static const char *const syntax_names[SYNTH_N_TS] = {"explicit", "rle", "jpeg-lossless", "jpeg-ls"};

fa_status synth_parse_syntax(const char *s, int *out, fa_error *err) {
    if (!strcmp(s, "native")) {
        *out = -1;
        return FA_OK;
    }
    for (int i = 0; i < SYNTH_N_TS; i++)
        if (!strcmp(s, syntax_names[i])) {
            *out = i;
            return FA_OK;
        }
    return fa_error_set(err, FA_ERR_ARG, "--syntax %s: expected native, explicit, rle, jpeg-lossless or jpeg-ls", s);
}

const char *synth_preset_name(synth_preset p) {
    return p == SYNTH_PRESET_PAPER ? "paper" : p == SYNTH_PRESET_SMALL ? "small" : "tiny";
}

const char *synth_syntax_name(synth_syntax s) { return (unsigned)s < SYNTH_N_TS ? syntax_names[s] : "?"; }

/* Matrix size for a machine in a preset: the paper preset uses the machine's
 * pitch; small and tiny map the paper's 1645..4280 px range of the longer side
 * linearly onto 256..512 and 128..192 px. */
static void machine_matrix(const synth_machine *m, synth_preset p, int *rows, int *cols, double *spacing) {
    double sp = m->spacing_mm;
    double fmax = m->field_w_mm > m->field_h_mm ? m->field_w_mm : m->field_h_mm;
    if (p != SYNTH_PRESET_PAPER) {
        double lo = p == SYNTH_PRESET_SMALL ? 256 : 128, hi = p == SYNTH_PRESET_SMALL ? 512 : 192;
        double dmax = fmax / m->spacing_mm;
        double target = lo + (hi - lo) * (dmax - 1645.0) / (4280.0 - 1645.0);
        sp = fmax / target;
    }
    /* the spacing written to DICOM (6 significant digits) is the one used */
    char buf[32];
    snprintf(buf, sizeof buf, "%.6g", sp);
    sp = strtod(buf, NULL);
    *rows = (int)floor(m->field_h_mm / sp + 0.5);
    *cols = (int)floor(m->field_w_mm / sp + 0.5);
    *spacing = sp;
}

typedef struct plan_img {
    int label, group, female, ap, postop, machine, patient, stratum;
} plan_img;

/* Set exactly k of the n flags in idx (indices into imgs) via a shuffle. */
static void pick_k(synth_rng *r, int *idx, int n, int k, plan_img *imgs, int which) {
    synth_rng_shuffle(r, idx, n);
    for (int i = 0; i < n; i++) {
        int on = i < k;
        if (which == 0) imgs[idx[i]].female = !on; /* k = males */
        else if (which == 1) imgs[idx[i]].ap = on;
        else imgs[idx[i]].postop = on;
    }
}

fa_status synth_plan_make(synth_preset preset, uint64_t seed, double difficulty, synth_plan *plan,
                          fa_error *err) {
    memset(plan, 0, sizeof *plan);
    int cells[2][N_GROUPS];
    scaled_cells(preset, cells);
    int n = preset_size(preset);
    synth_targets tg;
    synth_preset_targets(preset, &tg);

    plan_img *imgs = fa_calloc_array((size_t)n, sizeof *imgs);
    int *idx = fa_malloc_array((size_t)n, sizeof *idx);
    int *pat_of = fa_malloc_array((size_t)n, sizeof *pat_of);
    double *pat_age = fa_calloc_array((size_t)n, sizeof *pat_age);
    int *order = fa_malloc_array((size_t)n, sizeof *order);
    synth_case *cases = fa_calloc_array((size_t)n, sizeof *cases);
    if (!imgs || !idx || !pat_of || !pat_age || !order || !cases) {
        free(imgs), free(idx), free(pat_of), free(pat_age), free(order), free(cases);
        return fa_error_set(err, FA_ERR_NOMEM, "synth plan: out of memory for %d images", n);
    }
    synth_rng r;
    synth_rng_seed(&r, synth_hash64(seed, 0x504C414Eull, (uint64_t)preset));

    /* 1. cells */
    int k = 0;
    for (int l = 0; l < 2; l++)
        for (int g = 0; g < N_GROUPS; g++)
            for (int i = 0; i < cells[l][g]; i++, k++) imgs[k].label = l, imgs[k].group = g;

    /* 2. marginals within each label: sex, AP among fixed, post-operative */
    for (int l = 0; l < 2; l++) {
        int m = 0;
        for (int i = 0; i < n; i++)
            if (imgs[i].label == l) idx[m++] = i;
        pick_k(&r, idx, m, l ? tg.pos_male : tg.neg_male, imgs, 0);
        int mf = 0, nfixed_l = 0;
        for (int i = 0; i < n; i++) {
            int g = imgs[i].group;
            int fixed = g == G_POOL || g == G_CH_FIX_PH || g == G_CH_FIX_OT;
            if (imgs[i].label == l && fixed) idx[mf++] = i, nfixed_l++;
            if (imgs[i].label == l && !fixed) imgs[i].ap = 1;
        }
        int ap_fixed = l ? scaled(P_POS_FIXED_AP, P_POS_FIXED, nfixed_l) : scaled(P_NEG_FIXED_AP, P_NEG_FIXED, nfixed_l);
        pick_k(&r, idx, mf, ap_fixed, imgs, 1);
        if (l == 1) {
            m = 0;
            for (int i = 0; i < n; i++)
                if (imgs[i].label == 1) idx[m++] = i;
            pick_k(&r, idx, m, tg.postop, imgs, 2);
        }
    }

    /* 3. machines: balanced round-robin over the units that fit each group */
    for (int g = 0; g < N_GROUPS; g++) {
        int cand[64], nc = 0;
        for (int mi = 0; mi < synth_n_machines; mi++)
            if (group_matches(g, &synth_machines[mi])) cand[nc++] = mi;
        synth_rng_shuffle(&r, cand, nc);
        int m = 0;
        for (int i = 0; i < n; i++)
            if (imgs[i].group == g) idx[m++] = i;
        synth_rng_shuffle(&r, idx, m);
        for (int i = 0; i < m; i++) imgs[idx[i]].machine = cand[i % nc];
    }

    /* 4. patients: repeat images share a patient within one stratum (label,
     * sex, hospital, pool/not pool), so a patient-grouped split never has to
     * tear a patient between the train/val pool and the test set. */
    int repeats = n - tg.n_patients;
    int n_strata = 2 * 2 * synth_n_hospitals * 2;
    int *ssize = calloc((size_t)n_strata, sizeof *ssize);
    int *srep = calloc((size_t)n_strata, sizeof *srep);
    double *sw = calloc((size_t)n_strata, sizeof *sw);
    if (!ssize || !srep || !sw) {
        free(ssize), free(srep), free(sw);
        free(imgs), free(idx), free(pat_of), free(pat_age), free(order), free(cases);
        return fa_error_set(err, FA_ERR_NOMEM, "synth plan: out of memory");
    }
    for (int i = 0; i < n; i++) {
        const synth_machine *m = &synth_machines[imgs[i].machine];
        int s = ((imgs[i].label * 2 + imgs[i].female) * synth_n_hospitals + m->hospital) * 2 +
                (imgs[i].group == G_POOL);
        imgs[i].stratum = s;
        ssize[s]++;
    }
    for (int s = 0; s < n_strata; s++) sw[s] = ssize[s] > 1 ? ssize[s] : 0;
    largest_remainder(sw, n_strata, repeats, srep);
    /* Cap at size-1 and hand any excess to the largest strata with room. */
    int excess = 0;
    for (int s = 0; s < n_strata; s++)
        if (srep[s] > ssize[s] - 1 && ssize[s] > 0) excess += srep[s] - (ssize[s] - 1), srep[s] = ssize[s] - 1;
    while (excess > 0) {
        int best = -1;
        for (int s = 0; s < n_strata; s++)
            if (srep[s] < ssize[s] - 1 && (best < 0 || ssize[s] - srep[s] > ssize[best] - srep[best])) best = s;
        if (best < 0) break;
        srep[best]++, excess--;
    }
    int n_pat = 0;
    for (int s = 0; s < n_strata; s++) {
        if (!ssize[s]) continue;
        int m = 0;
        for (int i = 0; i < n; i++)
            if (imgs[i].stratum == s) idx[m++] = i;
        synth_rng_shuffle(&r, idx, m);
        int first = m - srep[s];
        for (int i = 0; i < first; i++) imgs[idx[i]].patient = n_pat + i;
        for (int i = first; i < m; i++) imgs[idx[i]].patient = imgs[idx[synth_rng_int(&r, first)]].patient;
        n_pat += first;
    }
    free(ssize), free(srep), free(sw);

    /* 5. ages per patient, standardised per (label, sex) over images so that
     * the image-level mean and SD match Table 1 */
    for (int p = 0; p < n_pat; p++) pat_age[p] = synth_rng_normal(&r);
    for (int l = 0; l < 2; l++)
        for (int f = 0; f < 2; f++) {
            double a_lo = 18, a_hi = 99;
            double shift = 0, scale = 1;
            /* z -> mean + sd*(z*scale + shift): iterate to absorb clipping and rounding. */
            for (int it = 0; it < 8; it++) {
                double s1 = 0, s2 = 0;
                int cnt = 0;
                for (int i = 0; i < n; i++) {
                    if (imgs[i].label != l || imgs[i].female != f) continue;
                    double a = age_mean[l][f] + age_sd[l][f] * (pat_age[imgs[i].patient] * scale + shift);
                    a = floor((a < a_lo ? a_lo : a > a_hi ? a_hi : a) + 0.5);
                    s1 += a, s2 += a * a, cnt++;
                }
                if (cnt < 2) break;
                double mean = s1 / cnt, sd = sqrt((s2 - s1 * s1 / cnt) / (cnt - 1));
                if (sd > 0) scale *= age_sd[l][f] / sd;
                shift += (age_mean[l][f] - mean) / age_sd[l][f];
            }
            for (int i = 0; i < n; i++) {
                if (imgs[i].label != l || imgs[i].female != f) continue;
                double a = age_mean[l][f] + age_sd[l][f] * (pat_age[imgs[i].patient] * scale + shift);
                a = floor((a < a_lo ? a_lo : a > a_hi ? a_hi : a) + 0.5);
                pat_of[i] = (int)a; /* image age (same for every image of a patient) */
            }
        }

    /* 6. final order: shuffled, patients numbered by first appearance */
    for (int i = 0; i < n; i++) order[i] = i;
    synth_rng_shuffle(&r, order, n);
    int *pat_num = malloc((size_t)n_pat * sizeof *pat_num);
    int *pat_visits = calloc((size_t)n_pat, sizeof *pat_visits);
    long *pat_day = malloc((size_t)n_pat * sizeof *pat_day);
    int *pat_bday_off = malloc((size_t)n_pat * sizeof *pat_bday_off);
    if (!pat_num || !pat_visits || !pat_day || !pat_bday_off) {
        free(pat_num), free(pat_visits), free(pat_day), free(pat_bday_off);
        free(imgs), free(idx), free(pat_of), free(pat_age), free(order), free(cases);
        return fa_error_set(err, FA_ERR_NOMEM, "synth plan: out of memory");
    }
    long d0 = days_from_civil(2011, 3, 1), d1 = days_from_civil(2019, 9, 30) - 90;
    for (int p = 0; p < n_pat; p++) {
        pat_num[p] = -1;
        pat_day[p] = d0 + synth_rng_int(&r, (int)(d1 - d0));
        pat_bday_off[p] = 70 + synth_rng_int(&r, 220);
    }
    int next = 0;
    for (int k2 = 0; k2 < n; k2++) {
        plan_img *im = &imgs[order[k2]];
        if (pat_num[im->patient] < 0) pat_num[im->patient] = next++;
    }

    uint64_t variant = (uint64_t)preset * 1000003ull + (uint64_t)llround(difficulty * 1000);
    for (int k2 = 0; k2 < n; k2++) {
        const plan_img *im = &imgs[order[k2]];
        synth_case *c = &cases[k2];
        const synth_machine *m = &synth_machines[im->machine];
        c->index = k2;
        snprintf(c->image_id, sizeof c->image_id, "img%05d", k2 + 1);
        c->patient = pat_num[im->patient];
        snprintf(c->patient_id, sizeof c->patient_id, "P%06d", c->patient + 1);
        c->visit = pat_visits[im->patient]++;
        c->machine = im->machine;
        c->label = im->label;
        c->view_ap = im->ap;
        c->sex = im->female ? 'F' : 'M';
        c->age = pat_of[order[k2]];
        c->postop = im->postop;
        c->seed = synth_hash64(seed ^ variant, (uint64_t)k2, 0x494D4147ull);
        machine_matrix(m, preset, &c->rows, &c->cols, &c->spacing_mm);

        /* dates: repeat visits 1..20 days apart; the birthday lies 70..289
         * days before the first visit so the age is the same on every visit */
        long day = pat_day[im->patient] + 11L * c->visit + synth_rng_int(&r, 10) * (c->visit > 0);
        c->study_date = civil_from_days(day);
        c->study_time = (7 + synth_rng_int(&r, 15)) * 10000 + synth_rng_int(&r, 60) * 100 + synth_rng_int(&r, 60);
        if (m->portable) c->study_time = synth_rng_int(&r, 24) * 10000 + (c->study_time % 10000);
        int first = civil_from_days(pat_day[im->patient]);
        int by = first / 10000 - c->age, bm = first / 100 % 100, bd = first % 100;
        if (bm == 2 && bd == 29) bd = 28;
        c->birth_date = civil_from_days(days_from_civil(by, bm, bd) - pat_bday_off[im->patient]);

        /* truth draws */
        double d = difficulty;
        double mimic = d < 2 ? d : 2;
        if (c->label) {
            double u = synth_rng_uniform(&r);
            c->side = u < 0.55 ? SYNTH_SIDE_RIGHT : u < 0.73 ? SYNTH_SIDE_LEFT : SYNTH_SIDE_BOTH;
            /* log-uniform size: default 2..35 mm, harder -> smaller */
            double hmin = 2.0 * pow(1.0 / d, 1.3), hmax = 35.0 * pow(1.0 / d, 0.5);
            if (hmin < 1.2) hmin = 1.2;
            if (hmin > 12) hmin = 12;
            if (hmax < 10) hmax = 10;
            if (hmax > 60) hmax = 60;
            double h = exp(synth_rng_range(&r, log(hmin), log(hmax)));
            if (c->postop) h *= synth_rng_range(&r, 1.0, 1.5);
            c->free_air_mm = floor(h * 10 + 0.5) / 10;
        } else {
            c->side = SYNTH_SIDE_NONE;
            c->free_air_mm = 0;
        }
        static const double p_neg[SYNTH_N_CF] = {0.20, 0.12, 0.05, 0.10, 0.10, 0.12, 0.06};
        static const double p_pos[SYNTH_N_CF] = {0.07, 0.05, 0.01, 0.12, 0.10, 0.10, 0.0};
        static const int is_mimic[SYNTH_N_CF] = {1, 1, 1, 0, 0, 0, 0};
        c->confounders = 0;
        for (int cf = 0; cf < SYNTH_N_CF; cf++) {
            double p = (c->label ? p_pos : p_neg)[cf];
            if (is_mimic[cf]) p *= mimic;
            if (m->portable && (cf == 3 || cf == 4)) p *= 1.5;
            if (synth_rng_uniform(&r) < p) c->confounders |= 1u << cf;
        }
        /* A right-side free-air crescent and a Chilaiditi colon cannot share the
         * space under the right dome. */
        if ((c->confounders & SYNTH_CF_CHILAIDITI) && (c->side == SYNTH_SIDE_RIGHT || c->side == SYNTH_SIDE_BOTH))
            c->confounders &= ~(unsigned)SYNTH_CF_CHILAIDITI;
    }
    free(pat_num), free(pat_visits), free(pat_day), free(pat_bday_off);
    free(imgs), free(idx), free(pat_of), free(pat_age), free(order);

    plan->n = n;
    plan->n_patients = n_pat;
    plan->cases = cases;
    plan->preset = preset;
    plan->seed = seed;
    plan->difficulty = difficulty;
    return FA_OK;
}

void synth_plan_free(synth_plan *plan) {
    free(plan->cases);
    memset(plan, 0, sizeof *plan);
}
