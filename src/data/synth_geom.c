/* synth_geom.c - the anatomy of one synthetic radiograph, drawn from the
 * image's own random stream, and the truth geometry in pixel coordinates.
 *
 * Coordinates: pixel centres (x, y) of the final image -> detector mm from the
 * image centre -> normalised body frame (u, v): u to the image's right (the
 * patient's left), v downwards, one unit = S*mag mm where S is about half the
 * chest's inner width. Per side, a = |u| measured from the midline; side index
 * 0 is the patient's right (u < 0), 1 the left.
 *
 * Everything the manifest needs (diaphragm curves, free-air polygon and box)
 * comes from here, so `--manifest-only` gives the same truth as a full run.
 */
#include <math.h>
#include <string.h>

#include "data/synth.h"

static double clampd(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

void synth_geom_to_body(const synth_geom *g, const synth_case *c, double x, double y, double *u, double *v) {
    double X = (x - 0.5 * c->cols) * c->spacing_mm - g->cx_mm;
    double Y = (y - 0.5 * c->rows) * c->spacing_mm - g->cy_mm;
    double ct = cos(g->tilt), st = sin(g->tilt);
    double k = g->S * g->mag;
    *u = (ct * X + st * Y) / k;
    *v = (-st * X + ct * Y) / k;
}

void synth_geom_to_pixel(const synth_geom *g, const synth_case *c, double u, double v, double *x, double *y) {
    double k = g->S * g->mag;
    double xr = u * k, yr = v * k;
    double ct = cos(g->tilt), st = sin(g->tilt);
    double X = ct * xr - st * yr + g->cx_mm;
    double Y = st * xr + ct * yr + g->cy_mm;
    *x = X / c->spacing_mm + 0.5 * c->cols;
    *y = Y / c->spacing_mm + 0.5 * c->rows;
}

double synth_dome_v(const synth_geom *g, int s, double a) {
    if (a >= g->dome_a[s]) {
        double t = (a - g->dome_a[s]) / (g->dome_lat[s] - g->dome_a[s]);
        return g->dome_v[s] + g->dome_drop[s] * t * t * sqrt(sqrt(t));
    }
    double t = (g->dome_a[s] - a) / (g->dome_a[s] - g->dome_med[s]);
    return g->dome_v[s] + g->dome_meddrop[s] * t * t;
}

/* Height (mm) of a crescent at |u| = a; 0 outside its extent. */
static double crescent_h(const synth_crescent *cr, double a) {
    if (a <= cr->a0 || a >= cr->a1) return 0;
    double mid = 0.5 * (cr->a0 + cr->a1), hl = 0.5 * (cr->a1 - cr->a0);
    double q = (a - mid) / hl;
    double w = 1 - q * q;
    return w > 0 ? cr->height_mm * pow(w, 0.6) : 0;
}

static void make_crescent(synth_geom *g, synth_crescent *cr, int s, double height_mm, double depth_mm,
                          double gap_mm, double center, double half) {
    cr->present = 1;
    cr->side = s == 0 ? -1 : 1;
    cr->height_mm = height_mm;
    cr->depth_mm = depth_mm;
    cr->gap_mm = gap_mm;
    double lo = g->dome_med[s] + 0.05, hi = g->dome_lat[s] - 0.015;
    cr->a0 = clampd(center - half, lo, hi - 0.06);
    cr->a1 = clampd(center + half, cr->a0 + 0.06, hi);
}

static void add_gas(synth_geom *g, double u, double v, double ru, double rv, double rot, double depth, double level,
                    int haustra) {
    if (g->n_gas >= SYNTH_MAX_GAS) return;
    synth_blob *b = &g->gas[g->n_gas++];
    b->u = u, b->v = v, b->ru = ru, b->rv = rv, b->rot = rot;
    b->depth_mm = depth, b->level_v = level, b->haustra = haustra;
}

void synth_geom_make(const synth_case *c, double difficulty, synth_geom *g) {
    memset(g, 0, sizeof *g);
    const synth_machine *m = &synth_machines[c->machine];
    synth_rng r;
    synth_rng_seed(&r, synth_hash64(c->seed, 1, 0x47454F4Dull));
    double d = difficulty;
    int female = c->sex == 'F';
    int ap = c->view_ap;
    int port = m->portable;

    /* body habitus: sex, age and a random build */
    double build = clampd(synth_rng_normal(&r), -2.2, 2.2);
    g->S = (female ? 136.0 : 149.0) + 7.0 * build + synth_rng_normal(&r) * 4.0;
    g->mag = ap ? (port ? synth_rng_range(&r, 1.10, 1.16) : synth_rng_range(&r, 1.07, 1.11))
                : synth_rng_range(&r, 1.03, 1.06);
    double fat = clampd(0.18 + 0.08 * build + 0.05 * synth_rng_normal(&r), 0.08, 0.45);
    g->wall = fat;
    g->body_depth_mm = (female ? 205.0 : 225.0) + 22.0 * build + 10.0 * synth_rng_normal(&r);
    g->tilt = (port ? 3.0 : 1.2) * synth_rng_normal(&r) * 3.14159265 / 180.0;
    g->rot_u = (port ? 0.045 : 0.018) * synth_rng_normal(&r);
    g->spine_u = g->rot_u;

    /* inspiration: domes lower (larger v) in a deep erect inspiration */
    double insp = ap && port ? synth_rng_range(&r, 0.40, 0.66) : ap ? synth_rng_range(&r, 0.52, 0.74)
                                                                     : synth_rng_range(&r, 0.60, 0.84);
    double lw = synth_rng_range(&r, 0.93, 1.02);
    g->lung_w[0] = lw * (1 - 0.6 * g->rot_u);
    g->lung_w[1] = lw * 0.97 * (1 + 0.6 * g->rot_u);
    for (int s = 0; s < 2; s++) {
        g->lung_top[s] = -1.12 + 0.03 * synth_rng_normal(&r);
        g->lung_cu[s] = 0.5 * (0.06 + g->lung_w[s]);
    }
    g->lung_depth_mm = g->body_depth_mm * synth_rng_range(&r, 0.60, 0.68);
    g->body_w = lw + fat;
    g->neck_w = synth_rng_range(&r, 0.30, 0.38) + 0.3 * fat;
    g->shoulder_w = g->body_w + synth_rng_range(&r, 0.22, 0.34);
    g->abd_w = g->body_w * synth_rng_range(&r, 0.92, 1.02);

    /* diaphragm: right dome higher than the left by 1-2.5 cm */
    g->dome_v[0] = insp;
    g->dome_v[1] = insp + synth_rng_range(&r, 0.06, 0.15);
    for (int s = 0; s < 2; s++) {
        g->dome_a[s] = synth_rng_range(&r, 0.40, 0.52);
        g->dome_lat[s] = 0.96 * g->lung_w[s];
        g->dome_med[s] = synth_rng_range(&r, 0.08, 0.14);
        g->dome_drop[s] = synth_rng_range(&r, 0.20, 0.34);
        g->dome_meddrop[s] = synth_rng_range(&r, 0.06, 0.14);
    }

    /* heart on the diaphragm, magnified in AP; cardiomegaly enlarges it */
    double hs = (c->confounders & SYNTH_CF_CARDIOMEGALY) ? synth_rng_range(&r, 1.22, 1.40) : 1.0;
    if (ap) hs *= port ? synth_rng_range(&r, 1.08, 1.15) : 1.05;
    g->heart_ru = synth_rng_range(&r, 0.50, 0.56) * hs;
    g->heart_rv = synth_rng_range(&r, 0.36, 0.42) * hs;
    g->heart_u = g->spine_u + synth_rng_range(&r, 0.10, 0.16) + 0.08 * (hs - 1);
    g->heart_v = g->dome_v[0] - g->heart_rv * 0.35;
    g->heart_rot = synth_rng_range(&r, 0.30, 0.60); /* long axis from base (upper right) to apex (lower left) */
    g->heart_depth_mm = g->body_depth_mm * synth_rng_range(&r, 0.62, 0.70);
    g->med_w = synth_rng_range(&r, 0.21, 0.26) + (c->age > 65 ? 0.02 : 0);
    g->knob_u = g->spine_u + synth_rng_range(&r, 0.13, 0.18);
    g->knob_v = -0.62 + 0.04 * synth_rng_normal(&r);
    g->knob_r = synth_rng_range(&r, 0.09, 0.12) * (c->age > 60 ? 1.15 : 1.0);
    g->hilum_v = -0.28 + 0.04 * synth_rng_normal(&r);

    /* bones: density falls with age, more in women */
    g->bone_density = clampd(1.0 - (c->age > 45 ? (c->age - 45) * (female ? 0.008 : 0.004) : 0) +
                                 0.08 * synth_rng_normal(&r),
                             0.55, 1.2);
    g->clav_v = (ap ? -1.16 : -0.98) + 0.04 * synth_rng_normal(&r);
    g->scap_overlap = ap ? synth_rng_range(&r, 0.6, 1.0) : synth_rng_range(&r, 0.0, 0.25);
    g->rib_top = -1.16 + 0.03 * synth_rng_normal(&r);
    g->rib_spacing = 0.17 + 0.06 * (insp - 0.4) + 0.006 * synth_rng_normal(&r);
    g->breast = female ? synth_rng_range(&r, 0.6, 1.3) * (1 + 0.3 * build) : 0;

    /* placement in the field: apices 4-8 cm below the top edge */
    double k = g->S * g->mag;
    double apex_margin = port ? synth_rng_range(&r, 15, 75) : synth_rng_range(&r, 35, 70);
    g->cy_mm = -0.5 * m->field_h_mm + apex_margin + 1.15 * k;
    g->cx_mm = (port ? 14.0 : 6.0) * synth_rng_normal(&r);

    /* stomach bubble under the left dome: gas above an erect air-fluid level */
    int big = (c->confounders & SYNTH_CF_GASTRIC_BUBBLE_LARGE) != 0;
    double sa = synth_rng_range(&r, 0.42, 0.62);
    double sru = big ? synth_rng_range(&r, 0.20, 0.30) : synth_rng_range(&r, 0.09, 0.18);
    double srv = big ? synth_rng_range(&r, 0.13, 0.20) : synth_rng_range(&r, 0.06, 0.12);
    double sgap = big ? synth_rng_range(&r, 2.5, 5.5) / pow(d, 0.3) : synth_rng_range(&r, 8.0, 20.0);
    int left_fa = c->side == SYNTH_SIDE_LEFT || c->side == SYNTH_SIDE_BOTH;
    if (left_fa) sgap += c->free_air_mm * (c->side == SYNTH_SIDE_BOTH ? 0.7 : 1.0) + 4.0;
    int has_stomach = big || synth_rng_uniform(&r) < 0.88;
    if (has_stomach) {
        g->stomach.u = g->spine_u + sa;
        g->stomach.v = synth_dome_v(g, 1, sa) + sgap / k + srv;
        g->stomach.ru = sru;
        g->stomach.rv = srv;
        g->stomach.rot = 0.15 * synth_rng_normal(&r);
        g->stomach.depth_mm = big ? synth_rng_range(&r, 55, 95) : synth_rng_range(&r, 25, 70);
        g->stomach.level_v = g->stomach.v + srv * synth_rng_range(&r, -0.1, 0.5);
    }

    /* bowel gas: flexures, transverse colon, small-bowel loops */
    int n_loops = 2 + synth_rng_int(&r, 6);
    add_gas(g, -synth_rng_range(&r, 0.45, 0.75), g->dome_v[0] + synth_rng_range(&r, 0.40, 0.60),
            synth_rng_range(&r, 0.10, 0.18), synth_rng_range(&r, 0.06, 0.10), 0.3 * synth_rng_normal(&r),
            synth_rng_range(&r, 15, 40), 1e9, 1);
    add_gas(g, synth_rng_range(&r, 0.60, 0.85), g->dome_v[1] + synth_rng_range(&r, 0.28, 0.45),
            synth_rng_range(&r, 0.08, 0.14), synth_rng_range(&r, 0.06, 0.11), 0.4 * synth_rng_normal(&r),
            synth_rng_range(&r, 15, 40), 1e9, 1);
    for (int i = 0; i < n_loops; i++) {
        double gu = synth_rng_range(&r, -0.8, 0.8), gv = g->dome_v[1] + synth_rng_range(&r, 0.45, 1.1);
        add_gas(g, gu, gv, synth_rng_range(&r, 0.07, 0.18), synth_rng_range(&r, 0.03, 0.06),
                synth_rng_range(&r, -1.5, 1.5), synth_rng_range(&r, 10, 35), 1e9, synth_rng_uniform(&r) < 0.4);
    }

    /* free air: a crescent under one or both domes, between the diaphragm and
     * liver (right) or stomach/spleen (left) */
    if (c->label) {
        int sides[2] = {c->side == SYNTH_SIDE_RIGHT || c->side == SYNTH_SIDE_BOTH, left_fa};
        for (int s = 0; s < 2; s++) {
            if (!sides[s]) continue;
            double H = c->free_air_mm;
            if (c->side == SYNTH_SIDE_BOTH && s == 1) H = floor(H * synth_rng_range(&r, 0.35, 1.0) * 10 + 0.5) / 10;
            if (H < 1.0) H = 1.0;
            double half = clampd(0.12 + 0.011 * H, 0.12, 0.42);
            double center = g->dome_a[s] + synth_rng_range(&r, -0.05, 0.20);
            double depth = (12.0 + 4.5 * H) * synth_rng_range(&r, 0.7, 1.2) / pow(d, 0.35);
            if (depth > 200) depth = 200;
            make_crescent(g, &g->free_air[s], s, H, depth, synth_rng_range(&r, 2.5, 4.5), center, half);
        }
    }
    if (c->confounders & SYNTH_CF_CHILAIDITI) {
        double H = synth_rng_range(&r, 14, 32);
        make_crescent(g, &g->chilaiditi, 0, H, synth_rng_range(&r, 40, 80),
                      synth_rng_range(&r, 2.5, 5.0), g->dome_a[0] + synth_rng_range(&r, 0.05, 0.2),
                      synth_rng_range(&r, 0.2, 0.32));
        g->chilaiditi.haustra = 1;
        g->chilaiditi.haustra_mm = synth_rng_range(&r, 9, 15);
    }

    /* confounder shapes */
    if (c->confounders & SYNTH_CF_EFFUSION) {
        double u = synth_rng_uniform(&r);
        int which = u < 0.5 ? 1 : u < 0.8 ? 2 : 3;
        for (int s = 0; s < 2; s++)
            if (which & (1 << s)) g->eff_h[s] = synth_rng_range(&r, 0.10, 0.40);
    }
    if (c->confounders & SYNTH_CF_CONSOLIDATION) {
        double s = synth_rng_uniform(&r) < 0.5 ? -1 : 1;
        g->cons_u = s * synth_rng_range(&r, 0.35, 0.75);
        g->cons_v = synth_rng_range(&r, -0.6, g->dome_v[0] - 0.15);
        g->cons_r = synth_rng_range(&r, 0.14, 0.30);
        g->cons_k = synth_rng_range(&r, 0.45, 0.85);
    }
    if (c->confounders & SYNTH_CF_BASAL_LUCENCY) {
        int s = synth_rng_uniform(&r) < 0.5 ? 0 : 1;
        double a = g->dome_a[s] + synth_rng_range(&r, -0.05, 0.25);
        g->bulla_ru = synth_rng_range(&r, 0.10, 0.22);
        g->bulla_rv = synth_rng_range(&r, 0.05, 0.11);
        g->bulla_u = (s ? 1 : -1) * a;
        g->bulla_v = synth_dome_v(g, s, a) - g->bulla_rv * synth_rng_range(&r, 0.85, 1.15) -
                     synth_rng_range(&r, 1.0, 4.0) / k;
    }

    /* devices: portable patients are sicker; some fixed ones have leads too */
    g->ett = port && synth_rng_uniform(&r) < 0.55;
    g->ngt = synth_rng_uniform(&r) < (port ? 0.40 : 0.04);
    g->cvc = synth_rng_uniform(&r) < (port ? 0.45 : 0.05);
    g->ecg = synth_rng_uniform(&r) < (port ? 0.80 : 0.06);
    g->pacer = synth_rng_uniform(&r) < (c->age > 65 ? 0.06 : 0.01);
    g->staples = c->postop && synth_rng_uniform(&r) < 0.8;
    g->drain = c->postop && synth_rng_uniform(&r) < 0.4;
    g->clips = (c->postop && synth_rng_uniform(&r) < 0.5) || (c->confounders & SYNTH_CF_OLD_CLIPS);
    if (g->clips) {
        g->n_clips = 3 + synth_rng_int(&r, 8);
        int ruq = synth_rng_uniform(&r) < 0.7;
        double bu = ruq ? -synth_rng_range(&r, 0.25, 0.5) : g->spine_u + synth_rng_range(&r, -0.15, 0.15);
        double bv = g->dome_v[0] + synth_rng_range(&r, 0.18, 0.45);
        for (int i = 0; i < g->n_clips; i++) {
            g->clip_u[i] = bu + 0.07 * synth_rng_normal(&r);
            g->clip_v[i] = bv + 0.06 * synth_rng_normal(&r);
            g->clip_rot[i] = synth_rng_range(&r, 0, 3.14159265);
        }
    }
    if (g->ecg) {
        static const double eu[5] = {-0.85, 0.85, -0.75, 0.75, 0.15};
        static const double ev[5] = {-1.15, -1.15, 0.55, 0.55, 0.25};
        for (int i = 0; i < 5; i++) {
            g->ecg_u[i] = eu[i] + 0.08 * synth_rng_normal(&r);
            g->ecg_v[i] = ev[i] + 0.08 * synth_rng_normal(&r);
        }
    }
    g->marker_left = synth_rng_uniform(&r) < 0.5;

    /* collimation: always visible on portables, sometimes on fixed units */
    if (port || synth_rng_uniform(&r) < 0.4) {
        double mx = port ? 35 : 14;
        g->coll_l = synth_rng_range(&r, 0, mx);
        g->coll_r = synth_rng_range(&r, 0, mx);
        g->coll_t = synth_rng_range(&r, 0, mx);
        g->coll_b = synth_rng_range(&r, 0, mx);
    }

    /* truth outputs in pixels */
    for (int s = 0; s < 2; s++) {
        double sg = s ? 1 : -1;
        for (int i = 0; i < SYNTH_DOME_POINTS; i++) {
            double a = g->dome_med[s] + (g->dome_lat[s] - g->dome_med[s]) * i / (SYNTH_DOME_POINTS - 1);
            synth_geom_to_pixel(g, c, sg * a, synth_dome_v(g, s, a), &g->dome_px[s][i][0], &g->dome_px[s][i][1]);
        }
    }
    g->fa_bbox[0] = g->fa_bbox[1] = g->fa_bbox[2] = g->fa_bbox[3] = -1;
    double bx0 = 1e9, by0 = 1e9, bx1 = -1e9, by1 = -1e9;
    for (int s = 0; s < 2; s++) {
        const synth_crescent *cr = &g->free_air[s];
        g->fa_n[s] = 0;
        if (!cr->present) continue;
        double sg = cr->side;
        int n = SYNTH_FA_POINTS;
        for (int i = 0; i < n; i++) {
            double a = cr->a0 + (cr->a1 - cr->a0) * i / (n - 1);
            double vt = synth_dome_v(g, s, a) + cr->gap_mm / k;
            double vb = vt + crescent_h(cr, a) / k;
            synth_geom_to_pixel(g, c, sg * a, vt, &g->fa_poly[s][i][0], &g->fa_poly[s][i][1]);
            synth_geom_to_pixel(g, c, sg * a, vb, &g->fa_poly[s][2 * n - 1 - i][0], &g->fa_poly[s][2 * n - 1 - i][1]);
        }
        g->fa_n[s] = 2 * n;
        for (int i = 0; i < 2 * n; i++) {
            double x = g->fa_poly[s][i][0], y = g->fa_poly[s][i][1];
            if (x < bx0) bx0 = x;
            if (x > bx1) bx1 = x;
            if (y < by0) by0 = y;
            if (y > by1) by1 = y;
        }
    }
    if (bx1 >= bx0 && bx1 >= 0 && by1 >= 0 && bx0 <= c->cols && by0 <= c->rows) {
        /* the exact box of the mask pixels inside the polygon's box */
        int x0 = (int)clampd(floor(bx0) - 1, 0, c->cols - 1), x1 = (int)clampd(ceil(bx1) + 1, 0, c->cols - 1);
        int y0 = (int)clampd(floor(by0) - 1, 0, c->rows - 1), y1 = (int)clampd(ceil(by1) + 1, 0, c->rows - 1);
        int mx0 = c->cols, my0 = c->rows, mx1 = -1, my1 = -1;
        for (int y = y0; y <= y1; y++)
            for (int x = x0; x <= x1; x++)
                if (synth_mask_pixel(g, c, x, y)) {
                    if (x < mx0) mx0 = x;
                    if (x > mx1) mx1 = x;
                    if (y < my0) my0 = y;
                    if (y > my1) my1 = y;
                }
        if (mx1 >= 0) g->fa_bbox[0] = mx0, g->fa_bbox[1] = my0, g->fa_bbox[2] = mx1, g->fa_bbox[3] = my1;
    }
}

int synth_mask_pixel(const synth_geom *g, const synth_case *c, int x, int y) {
    /* 4x4 samples: a pixel belongs to the mask when the crescent touches it,
     * so even a 1-2 mm crescent on a 2.7 mm tiny-preset pixel has a mask */
    for (int j = 0; j < 4; j++)
        for (int i = 0; i < 4; i++) {
            double u, v;
            synth_geom_to_body(g, c, x + (i + 0.5) / 4, y + (j + 0.5) / 4, &u, &v);
            for (int s = 0; s < 2; s++) {
                int in = 0;
                if (g->free_air[s].present) synth_crescent_at(g, &g->free_air[s], u, v, &in);
                if (in) return 1;
            }
        }
    return 0;
}

double synth_crescent_at(const synth_geom *g, const synth_crescent *cr, double u, double v, int *inside) {
    if (inside) *inside = 0;
    if (!cr->present) return 0;
    double a = cr->side * u;
    if (a <= cr->a0 || a >= cr->a1) return 0;
    int s = cr->side < 0 ? 0 : 1;
    double k = g->S * g->mag;
    double h = crescent_h(cr, a);
    if (h <= 0) return 0;
    double t = (v - synth_dome_v(g, s, a)) * k - cr->gap_mm;
    if (t < 0 || t >= h) return 0;
    if (inside) *inside = 1;
    /* gas depth: largest against the diaphragm, thinning towards the organ
     * below, and with the crescent's height along the dome */
    double q = t / h;
    return sqrt(1 - q * q) * sqrt(h / cr->height_mm);
}
