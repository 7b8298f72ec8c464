/* synth_render.c - attenuation line integrals of a synthetic chest radiograph.
 *
 * The image is a projection: at each detector point the log attenuation is
 * L = sum_k mu_k * t_k, the thickness t_k of each material along the ray.
 * Soft tissue is the background material; lungs and gas are "negative"
 * tissue (they replace tissue with air), bone and metal add to it. Smooth
 * organs (body, lungs, heart, mediastinum, breasts, spine, gas) are analytic
 * ellipsoid-like profiles evaluated per pixel; curved thin structures (ribs,
 * clavicles, vessels, airways, tubes, wires) are tubes swept along polylines.
 *
 * Resolution: small presets are rendered at twice the matrix and box-averaged
 * (no aliasing of vessels and rib edges); the paper preset is rendered at
 * about 0.3 mm and interpolated up, which is about the sharpness of a real
 * chest radiograph, and costs a quarter of the time. The free-air mask is
 * evaluated analytically at every final pixel centre.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/synth.h"

/* Linear attenuation in 1/mm (relative units; a ~60 keV effective beam). */
#define MU_S 0.020      /* soft tissue, blood, fluid */
#define MU_LUNG 0.004   /* aerated lung */
#define MU_CORTEX 0.065 /* cortical bone in excess of tissue */
#define MU_CANCEL 0.016 /* cancellous bone in excess of tissue */
#define MU_METAL 0.60   /* steel clips, lead marker, ECG snaps */

typedef struct rctx {
    const synth_case *c;
    const synth_geom *g;
    double d;               /* difficulty */
    int w, h;               /* render grid */
    double f;               /* render px per final px */
    double rsp;             /* render pixel size, mm */
    double k;               /* mm per body unit */
    float *L, *lf, *V;      /* attenuation, lung fraction, vessels */
    uint32_t nseed;
    synth_rng rng;
    int oom;                /* a tube's scratch allocation failed */
} rctx;

static double sq(double x) { return x * x; }
static double clampd(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }
static double smooth01(double t) {
    t = clampd(t, 0, 1);
    return t * t * (3 - 2 * t);
}

static void body_to_render(const rctx *R, double u, double v, double *x, double *y) {
    synth_geom_to_pixel(R->g, R->c, u, v, x, y);
    *x *= R->f;
    *y *= R->f;
}

/* ---- value noise (hash lattice, bilinear with smoothstep) ---- */
static float hnoise(uint32_t seed, int ix, int iy) {
    uint32_t h = seed ^ ((uint32_t)ix * 0x8da6b343u) ^ ((uint32_t)iy * 0xd8163841u);
    h ^= h >> 16;
    h *= 0x7feb352du;
    h ^= h >> 15;
    h *= 0x846ca68bu;
    h ^= h >> 16;
    return (float)(h >> 8) * (1.0f / 8388608.0f) - 1.0f;
}

static double value_noise(uint32_t seed, double x, double y) {
    double fx = floor(x), fy = floor(y);
    int ix = (int)fx, iy = (int)fy;
    double tx = x - fx, ty = y - fy;
    tx = tx * tx * (3 - 2 * tx);
    ty = ty * ty * (3 - 2 * ty);
    double a = hnoise(seed, ix, iy), b = hnoise(seed, ix + 1, iy);
    double c = hnoise(seed, ix, iy + 1), d = hnoise(seed, ix + 1, iy + 1);
    return (a + (b - a) * tx) + ((c + (d - c) * tx) - (a + (b - a) * tx)) * ty;
}

/* ---- tubes ---- */
typedef enum { TUBE_SOLID, TUBE_SHELL } tube_kind;

typedef struct tube {
    tube_kind kind;
    double amp;      /* per mm of chord (SOLID) or of cortex (SHELL) */
    double amp_in;   /* SHELL: per mm of the inner (marrow) chord */
    double shell_mm; /* SHELL: cortex thickness */
    double flat;     /* depth / width of the cross-section (1 = round) */
    float *buf;
} tube;

/* One segment, radius r0 -> r1 (render px), flat ends unless capped, so that
 * consecutive segments of a polyline do not count their joints twice. */
static void tube_seg(const rctx *R, const tube *T, double x0, double y0, double x1, double y1, double r0, double r1,
                     int cap0, int cap1) {
    double rmax = r0 > r1 ? r0 : r1;
    if (rmax < 0.05) return;
    int bx0 = (int)floor((x0 < x1 ? x0 : x1) - rmax - 1), bx1 = (int)ceil((x0 > x1 ? x0 : x1) + rmax + 1);
    int by0 = (int)floor((y0 < y1 ? y0 : y1) - rmax - 1), by1 = (int)ceil((y0 > y1 ? y0 : y1) + rmax + 1);
    if (bx0 < 0) bx0 = 0;
    if (by0 < 0) by0 = 0;
    if (bx1 > R->w - 1) bx1 = R->w - 1;
    if (by1 > R->h - 1) by1 = R->h - 1;
    if (bx0 > bx1 || by0 > by1) return;
    double dx = x1 - x0, dy = y1 - y0, len2 = dx * dx + dy * dy;
    double sh = T->shell_mm / R->rsp;
    for (int y = by0; y <= by1; y++) {
        float *row = T->buf + (size_t)y * R->w;
        double py = y + 0.5;
        for (int x = bx0; x <= bx1; x++) {
            double px = x + 0.5;
            double t = len2 > 0 ? ((px - x0) * dx + (py - y0) * dy) / len2 : 0;
            if (t < 0) {
                if (!cap0) continue;
                t = 0;
            } else if (t >= 1) {
                if (!cap1) continue;
                t = 1;
            }
            double r = r0 + (r1 - r0) * t;
            double d2 = sq(px - (x0 + t * dx)) + sq(py - (y0 + t * dy));
            if (d2 >= r * r) continue;
            double chord = 2 * sqrt(r * r - d2) * R->rsp * T->flat;
            double val;
            if (T->kind == TUBE_SOLID) {
                val = T->amp * chord;
            } else {
                double ri = r - sh, inner = 0;
                if (ri > 0 && d2 < ri * ri) inner = 2 * sqrt(ri * ri - d2) * R->rsp * T->flat;
                val = T->amp * (chord - inner) + T->amp_in * inner;
            }
            row[x] += (float)val;
        }
    }
}

/* Profile of a tube at squared distance d2 (render px^2) from its axis. */
static double tube_profile(const rctx *R, const tube *T, double r, double d2) {
    double chord = 2 * sqrt(r * r - d2) * R->rsp * T->flat;
    if (T->kind == TUBE_SOLID) return T->amp * chord;
    double ri = r - T->shell_mm / R->rsp, inner = 0;
    if (ri > 0 && d2 < ri * ri) inner = 2 * sqrt(ri * ri - d2) * R->rsp * T->flat;
    return T->amp * (chord - inner) + T->amp_in * inner;
}

/* Polyline in body coordinates, radius (patient mm, magnified onto the
 * detector) tapering from r0 to r1. Each pixel takes the profile of its
 * nearest point on the whole polyline (relative to the local radius), so
 * joints between segments neither overlap nor leave gaps; the two ends are
 * flat unless capped. */
static void tube_poly(rctx *R, const tube *T, const double (*p)[2], int n, double r0_mm, double r1_mm, int caps) {
    if (n < 2) return;
    double px[64][2], rad[64];
    if (n > 64) n = 64;
    double bx0 = 1e30, by0 = 1e30, bx1 = -1e30, by1 = -1e30, rmax = 0;
    for (int i = 0; i < n; i++) {
        body_to_render(R, p[i][0], p[i][1], &px[i][0], &px[i][1]);
        rad[i] = (r0_mm + (r1_mm - r0_mm) * i / (n - 1)) * R->g->mag / R->rsp;
        if (rad[i] > rmax) rmax = rad[i];
        if (px[i][0] < bx0) bx0 = px[i][0];
        if (px[i][0] > bx1) bx1 = px[i][0];
        if (px[i][1] < by0) by0 = px[i][1];
        if (px[i][1] > by1) by1 = px[i][1];
    }
    if (rmax < 0.05) return;
    int x0 = (int)floor(bx0 - rmax - 1), x1 = (int)ceil(bx1 + rmax + 1);
    int y0 = (int)floor(by0 - rmax - 1), y1 = (int)ceil(by1 + rmax + 1);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > R->w - 1) x1 = R->w - 1;
    if (y1 > R->h - 1) y1 = R->h - 1;
    if (x0 > x1 || y0 > y1) return;
    int bw = x1 - x0 + 1, bh = y1 - y0 + 1;
    float *q = fa_malloc_array((size_t)bw * bh, sizeof *q);  /* (d/r)^2 of the nearest point */
    float *rq = fa_malloc_array((size_t)bw * bh, sizeof *rq); /* radius there */
    if (!q || !rq) {
        free(q), free(rq);
        R->oom = 1;
        return;
    }
    for (size_t i = 0; i < (size_t)bw * bh; i++) q[i] = 2.0f;
    for (int i = 0; i + 1 < n; i++) {
        double ax = px[i][0], ay = px[i][1], dx = px[i + 1][0] - ax, dy = px[i + 1][1] - ay;
        double ra = rad[i], rb = rad[i + 1], rm = ra > rb ? ra : rb;
        double len2 = dx * dx + dy * dy;
        int sx0 = (int)floor((dx < 0 ? ax + dx : ax) - rm - 1), sx1 = (int)ceil((dx < 0 ? ax : ax + dx) + rm + 1);
        int sy0 = (int)floor((dy < 0 ? ay + dy : ay) - rm - 1), sy1 = (int)ceil((dy < 0 ? ay : ay + dy) + rm + 1);
        if (sx0 < x0) sx0 = x0;
        if (sy0 < y0) sy0 = y0;
        if (sx1 > x1) sx1 = x1;
        if (sy1 > y1) sy1 = y1;
        for (int y = sy0; y <= sy1; y++)
            for (int x = sx0; x <= sx1; x++) {
                double cx = x + 0.5 - ax, cy = y + 0.5 - ay;
                double t = len2 > 0 ? (cx * dx + cy * dy) / len2 : 0;
                if (t < 0) {
                    if (i == 0 && !caps) continue;
                    t = 0;
                } else if (t > 1) {
                    if (i + 2 == n && !caps) continue;
                    t = 1;
                }
                double r = ra + (rb - ra) * t;
                double d2 = (cx - t * dx) * (cx - t * dx) + (cy - t * dy) * (cy - t * dy);
                double qq = d2 / (r * r);
                size_t k = (size_t)(y - y0) * bw + (x - x0);
                if (qq < q[k]) q[k] = (float)qq, rq[k] = (float)r;
            }
    }
    for (int y = y0; y <= y1; y++) {
        float *row = T->buf + (size_t)y * R->w;
        for (int x = x0; x <= x1; x++) {
            size_t k = (size_t)(y - y0) * bw + (x - x0);
            if (q[k] >= 1.0f) continue;
            double r = rq[k];
            row[x] += (float)tube_profile(R, T, r, q[k] * r * r);
        }
    }
    free(q), free(rq);
}

/* Quadratic Bezier sampled into n points. */
static int bezier(double (*out)[2], int n, double ax, double ay, double bx, double by, double cx, double cy) {
    for (int i = 0; i < n; i++) {
        double t = (double)i / (n - 1), s = 1 - t;
        out[i][0] = s * s * ax + 2 * s * t * bx + t * t * cx;
        out[i][1] = s * s * ay + 2 * s * t * by + t * t * cy;
    }
    return n;
}

/* Disc (sphere projection) of radius r_mm at body point, solid. */
static void disc(const rctx *R, float *buf, double u, double v, double r_mm, double amp) {
    double x, y;
    body_to_render(R, u, v, &x, &y);
    tube T = {TUBE_SOLID, amp, 0, 0, 1, buf};
    double r = r_mm * R->g->mag / R->rsp;
    tube_seg(R, &T, x, y, x, y, r, r, 1, 1);
}

/* ---- bones ---- */
static void render_ribs(rctx *R) {
    const synth_geom *g = R->g;
    double bd = g->bone_density;
    tube post = {TUBE_SHELL, MU_CORTEX * bd, MU_CANCEL * bd, 1.1, 0.7, R->L};
    /* anterior ribs lie far from the detector: fainter, without sharp cortex */
    tube ant = {TUBE_SOLID, MU_CANCEL * bd * 1.6, 0, 0, 0.6, R->L};
    for (int s = 0; s < 2; s++) {
        double sg = s ? 1 : -1;
        double mid = g->spine_u;
        for (int i = 0; i < 11; i++) {
            double vi = g->rib_top + i * g->rib_spacing + 0.01 * synth_rng_normal(&R->rng);
            /* posterior rib: elliptic arc from the costovertebral joint, up and
             * out, then down along the lateral chest wall */
            double ra = (i == 0 ? 0.30 : 0.40 + 0.03 * (i < 5 ? i : 5)) + 0.015 * synth_rng_normal(&R->rng);
            double rb = (i == 0 ? 0.16 : 0.22 + 0.015 * i) * (1 + 0.05 * synth_rng_normal(&R->rng));
            double th0 = 200 * M_PI / 180, th1 = (380 + 3 * i) * M_PI / 180;
            double ac = 0.10 - ra * cos(th0);
            double vc = vi - rb * sin(th0);
            double pts[20][2];
            for (int j = 0; j < 20; j++) {
                double th = th0 + (th1 - th0) * j / 19;
                double a = ac + ra * cos(th), v = vc + rb * sin(th);
                pts[j][0] = mid + sg * a;
                pts[j][1] = v;
            }
            double rr = (4.2 + 0.25 * (i < 6 ? i : 6)) * (g->S / 150.0);
            tube pr = post; /* ribs differ in density and width */
            double vary = synth_rng_range(&R->rng, 0.8, 1.1);
            pr.amp *= vary, pr.amp_in *= vary;
            tube_poly(R, &pr, (const double(*)[2])pts, 20, rr * 0.8, rr * synth_rng_range(&R->rng, 0.9, 1.1), 0);
            /* anterior rib: from the lateral wall medially downwards, fading
             * into invisible costal cartilage */
            if (i < 8) {
                double a0 = ac + ra * cos(th1 - 0.2), v0 = vc + rb * sin(th1 - 0.2);
                double bz[16][2];
                bezier(bz, 16, a0, v0, a0 - 0.12, v0 + 0.30 + 0.01 * i, 0.28 + 0.02 * i, v0 + 0.42 + 0.015 * i);
                for (int j = 0; j < 16; j++) bz[j][0] = mid + sg * bz[j][0];
                tube_poly(R, &ant, (const double(*)[2])bz, 13, rr * 0.95, rr * 0.8, 0);
            }
        }
        /* clavicle: gentle S from the sternal end out to the acromion */
        double cl[16][2];
        double cv = g->clav_v;
        bezier(cl, 16, 0.10, cv + 0.04, 0.55, cv + 0.08, 1.05, cv - 0.12);
        for (int j = 0; j < 16; j++) cl[j][0] = mid * 0.5 + sg * cl[j][0];
        tube clav = {TUBE_SHELL, MU_CORTEX * bd, MU_CANCEL * bd, 1.6, 0.9, R->L};
        tube_poly(R, &clav, (const double(*)[2])cl, 16, 7.5 * g->S / 150, 6.0 * g->S / 150, 0);
        /* scapula lateral border and humerus */
        double sh = 0.35 * (1 - g->scap_overlap);
        double sb[8][2];
        bezier(sb, 8, 1.08 + sh, -1.15, 0.98 + sh, -0.75, 0.80 + sh, -0.42);
        for (int j = 0; j < 8; j++) sb[j][0] = sg * sb[j][0];
        tube_poly(R, &post, (const double(*)[2])sb, 8, 5.0, 3.5, 0);
        double hu = sg * (g->shoulder_w - 0.06 + 0.05 * g->scap_overlap);
        tube hum = {TUBE_SHELL, MU_CORTEX * bd, MU_CANCEL * bd, 3.0, 1.0, R->L};
        /* humeral shaft: alongside the chest on AP views, abducted out of the
         * field on PA views */
        double hpts[2][2] = {{hu, -1.22}, {hu + sg * (R->c->view_ap ? 0.10 : 0.45), R->c->view_ap ? 0.2 : -1.05}};
        tube_poly(R, &hum, (const double(*)[2])hpts, 2, 14.0, 11.0, 0);
        double hr = 0.155 * g->S * g->mag / R->rsp;
        double hx, hy;
        body_to_render(R, hu, -1.22, &hx, &hy);
        tube_seg(R, &hum, hx, hy, hx, hy, hr, hr, 1, 1);
    }
}

/* ---- vessels: branching trees from the hila ---- */
typedef struct vstack {
    double u, v, th, len, r;
    int depth;
} vstack;

static int in_lung(const synth_geom *g, double u, double v) {
    int s = u > 0;
    double a = fabs(u);
    double rx = 0.5 * (g->lung_w[s] - 0.06), ac = g->lung_cu[s];
    double vc = g->lung_top[s] + 1.05;
    double dv = (v - vc) / (v < vc ? 1.05 : 1.5);
    double F = sq((a - ac) / rx) + (v < vc ? dv * dv : dv * dv * dv * dv);
    return F < 0.92 && v < synth_dome_v(g, s, a) + 0.08;
}

static void render_vessels(rctx *R) {
    const synth_geom *g = R->g;
    /* vessels plus their bronchial walls and interstitium */
    tube T = {TUBE_SOLID, 1.5 * (MU_S - MU_LUNG), 0, 0, 1, R->V};
    double rmin = R->rsp * 0.6 > 0.35 ? R->rsp * 0.6 : 0.35;
    vstack st[512];
    int budget = 2600;
    for (int s = 0; s < 2; s++) {
        double sg = s ? 1 : -1;
        double hu = g->spine_u + sg * (0.20 + 0.03 * synth_rng_uniform(&R->rng));
        double hv = g->hilum_v + (s ? -0.04 : 0.02);
        int n = 0;
        int trunks = 9;
        for (int i = 0; i < trunks && n < 512; i++) {
            double ang = (-105 + 225.0 * i / (trunks - 1) + 8 * synth_rng_normal(&R->rng)) * M_PI / 180;
            st[n].u = hu, st[n].v = hv;
            st[n].th = ang;
            st[n].len = synth_rng_range(&R->rng, 0.14, 0.22);
            st[n].r = synth_rng_range(&R->rng, 3.0, 4.2);
            st[n].depth = 0;
            n++;
        }
        while (n > 0 && budget > 0) {
            vstack b = st[--n];
            double pts[4][2];
            pts[0][0] = b.u, pts[0][1] = b.v;
            double th = b.th;
            for (int j = 1; j < 4; j++) {
                th += 0.12 * synth_rng_normal(&R->rng);
                /* th is measured on the patient's side: cos points laterally */
                pts[j][0] = pts[j - 1][0] + sg * cos(th) * b.len / 3;
                pts[j][1] = pts[j - 1][1] + sin(th) * b.len / 3;
            }
            tube_poly(R, &T, (const double(*)[2])pts, 4, b.r, b.r * 0.85, 0);
            budget--;
            double eu = pts[3][0], ev = pts[3][1];
            if (b.r * 0.72 < rmin || b.depth >= 7 || !in_lung(g, eu, ev)) continue;
            int kids = synth_rng_uniform(&R->rng) < 0.25 ? 3 : 2;
            for (int q = 0; q < kids && n < 512; q++) {
                double spread = synth_rng_range(&R->rng, 0.25, 0.55);
                st[n].u = eu, st[n].v = ev;
                st[n].th = th + (q == 0 ? -spread : q == 1 ? spread : 0.3 * synth_rng_normal(&R->rng));
                st[n].len = b.len * synth_rng_range(&R->rng, 0.68, 0.88);
                st[n].r = b.r * synth_rng_range(&R->rng, 0.62, 0.78);
                st[n].depth = b.depth + 1;
                n++;
            }
        }
    }
}

/* ---- airways and devices ---- */
static void render_airways(rctx *R) {
    const synth_geom *g = R->g;
    tube air = {TUBE_SOLID, -MU_S, 0, 0, 1, R->L};
    double tu = g->spine_u - 0.02, carina = g->hilum_v - 0.16;
    double tr[3][2] = {{tu, -2.2}, {tu + 0.005, -1.2}, {tu + 0.02, carina}};
    tube_poly(R, &air, (const double(*)[2])tr, 3, 9.0, 8.5, 0);
    double rb[3][2] = {{tu + 0.02, carina}, {tu - 0.10, carina + 0.10}, {tu - 0.20, carina + 0.17}};
    double lb[3][2] = {{tu + 0.02, carina}, {tu + 0.14, carina + 0.13}, {tu + 0.25, carina + 0.22}};
    tube_poly(R, &air, (const double(*)[2])rb, 3, 6.5, 4.5, 0);
    tube_poly(R, &air, (const double(*)[2])lb, 3, 5.5, 4.0, 0);
}

static void render_devices(rctx *R) {
    const synth_geom *g = R->g;
    const synth_case *c = R->c;
    tube stripe = {TUBE_SOLID, 0.35, 0, 0, 1, R->L};
    tube plastic = {TUBE_SHELL, 0.004, 0.0, 1.0, 1, R->L};
    tube wire = {TUBE_SOLID, 0.25, 0, 0, 1, R->L};
    tube metal = {TUBE_SOLID, MU_METAL, 0, 0, 1, R->L};
    double carina = g->hilum_v - 0.16, tu = g->spine_u - 0.015;
    if (g->ett) {
        double tip = carina - synth_rng_range(&R->rng, 0.18, 0.40);
        double p[3][2] = {{tu + 0.03, -2.3}, {tu + 0.01, -1.3}, {tu, tip}};
        tube_poly(R, &plastic, (const double(*)[2])p, 3, 5.0, 5.0, 0);
        tube_poly(R, &stripe, (const double(*)[2])p, 3, 0.9, 0.9, 0);
    }
    if (g->ngt) {
        double su = g->stomach.ru > 0 ? g->stomach.u : g->spine_u + 0.5;
        double sv = g->stomach.ru > 0 ? g->stomach.v + 0.05 : g->dome_v[1] + 0.2;
        double p[6][2] = {{tu + 0.05, -2.3}, {tu + 0.04, -0.8}, {g->spine_u + 0.06, 0.1},
                          {g->spine_u + 0.15, g->dome_v[1] + 0.05}, {su - 0.05, sv + 0.05}, {su + 0.08, sv - 0.02}};
        tube_poly(R, &stripe, (const double(*)[2])p, 6, 1.4, 1.4, 1);
    }
    if (g->cvc) {
        double sg = synth_rng_uniform(&R->rng) < 0.6 ? -1 : 1;
        double p[5][2] = {{sg * 1.05, -1.25}, {sg * 0.55, -1.12}, {sg * 0.22, -1.0}, {g->spine_u - 0.10, -0.8},
                          {g->spine_u - 0.12, -0.45 + 0.1 * synth_rng_normal(&R->rng)}};
        tube_poly(R, &wire, (const double(*)[2])p, 5, 1.1, 1.1, 1);
    }
    if (g->ecg) {
        for (int i = 0; i < 5; i++) {
            if (i == 4 && c->view_ap == 0) break;
            disc(R, R->L, g->ecg_u[i], g->ecg_v[i], 12.0, 0.006);
            disc(R, R->L, g->ecg_u[i], g->ecg_v[i], 2.6, MU_METAL * 0.8);
            double ex = g->ecg_u[i] < 0 ? -1.8 : 1.8;
            double bz[10][2];
            bezier(bz, 10, g->ecg_u[i], g->ecg_v[i], 0.5 * (g->ecg_u[i] + ex), g->ecg_v[i] + 0.35 * synth_rng_normal(&R->rng),
                   ex, g->ecg_v[i] + synth_rng_range(&R->rng, -0.6, 0.6));
            tube_poly(R, &wire, (const double(*)[2])bz, 10, 0.8, 0.8, 0);
        }
    }
    if (g->pacer) {
        for (int dy = -2; dy <= 2; dy++)
            for (int dx = -2; dx <= 2; dx++) disc(R, R->L, 0.72 + dx * 0.035, -1.0 + dy * 0.03, 6.0, MU_METAL * 0.5);
        double p[5][2] = {{0.72, -1.0}, {0.3, -1.1}, {g->spine_u - 0.05, -0.7}, {g->spine_u - 0.15, g->heart_v - 0.1},
                          {g->heart_u + 0.1, g->heart_v + 0.15}};
        tube_poly(R, &wire, (const double(*)[2])p, 5, 1.2, 1.2, 1);
    }
    if (g->clips) {
        for (int i = 0; i < g->n_clips; i++) {
            double ca = cos(g->clip_rot[i]), sa = sin(g->clip_rot[i]);
            double l = 3.5 / R->k, o = 0.8 / R->k;
            for (int side = -1; side <= 1; side += 2) {
                double p[2][2] = {{g->clip_u[i] - ca * l - sa * o * side, g->clip_v[i] - sa * l + ca * o * side},
                                  {g->clip_u[i] + ca * l - sa * o * side, g->clip_v[i] + sa * l + ca * o * side}};
                tube_poly(R, &metal, (const double(*)[2])p, 2, 0.45, 0.45, 1);
            }
        }
    }
    if (g->staples) {
        double v0 = g->dome_v[0] + 0.12, v1 = g->dome_v[0] + 1.6;
        double sp = 11.0 / R->k, hw = 3.5 / R->k;
        for (double v = v0; v < v1; v += sp) {
            double u = g->spine_u + 0.015 * sin(v * 7);
            double p[4][2] = {{u - hw, v + 0.6 / R->k}, {u - hw, v}, {u + hw, v}, {u + hw, v + 0.6 / R->k}};
            tube_poly(R, &metal, (const double(*)[2])p, 4, 0.4, 0.4, 1);
        }
    }
    if (g->drain) {
        double sg = synth_rng_uniform(&R->rng) < 0.6 ? -1 : 1;
        double p[4][2] = {{sg * 1.2, g->dome_v[0] + 1.4}, {sg * 0.85, g->dome_v[0] + 0.9},
                          {sg * 0.55, g->dome_v[0] + 0.45}, {sg * 0.35, g->dome_v[0] + 0.30}};
        tube_poly(R, &plastic, (const double(*)[2])p, 4, 4.0, 4.0, 0);
        tube_poly(R, &stripe, (const double(*)[2])p, 4, 0.8, 0.8, 0);
    }
}

/* Lead side marker ("R" or "L") in an upper corner inside the collimation. */
static void render_marker(rctx *R) {
    const synth_geom *g = R->g;
    const synth_case *c = R->c;
    char ch = g->marker_left ? 'L' : 'R';
    const uint8_t *gl = synth_font_glyph(ch);
    double cell = 2.0; /* mm per font pixel */
    double W = c->cols * c->spacing_mm;
    double x0 = g->marker_left ? W - g->coll_r - 18 - 5 * cell : g->coll_l + 18;
    double y0 = g->coll_t + 18;
    for (int gy = 0; gy < 7; gy++)
        for (int gx = 0; gx < 5; gx++) {
            if (!(gl[gy] & (0x10 >> gx))) continue;
            int px0 = (int)floor((x0 + gx * cell) / R->rsp), px1 = (int)floor((x0 + (gx + 1) * cell) / R->rsp);
            int py0 = (int)floor((y0 + gy * cell) / R->rsp), py1 = (int)floor((y0 + (gy + 1) * cell) / R->rsp);
            for (int y = py0; y < py1; y++)
                for (int x = px0; x < px1; x++)
                    if (x >= 0 && y >= 0 && x < R->w && y < R->h) R->L[(size_t)y * R->w + x] += 2.5f;
        }
}

/* ---- the analytic per-pixel part ---- */
static void render_fields(rctx *R) {
    const synth_geom *g = R->g;
    const synth_case *c = R->c;
    double k = R->k;
    double u00, v00, u10, v10, u01, v01;
    synth_geom_to_body(g, c, 0.5 / R->f, 0.5 / R->f, &u00, &v00);
    synth_geom_to_body(g, c, 1.5 / R->f, 0.5 / R->f, &u10, &v10);
    synth_geom_to_body(g, c, 0.5 / R->f, 1.5 / R->f, &u01, &v01);
    double dudx = u10 - u00, dvdx = v10 - v00, dudy = u01 - u00, dvdy = v01 - v00;
    double Dl = g->lung_depth_mm, D = g->body_depth_mm;
    double bd = g->bone_density;
    double hc = cos(g->heart_rot), hs = sin(g->heart_rot);
    double tex_amp = 0.045, tex_l1 = 7.0 / k, tex_l2 = 2.6 / k;
    uint32_t ns = R->nseed;
    int female = c->sex == 'F';
    double vert_h = 24.0 / g->S; /* about 24 mm per vertebral level */
    double chil_amp = 0.8 / sqrt(R->d);

    for (int y = 0; y < R->h; y++) {
        for (int x = 0; x < R->w; x++) {
            double u = u00 + dudx * x + dudy * y, v = v00 + dvdx * x + dvdy * y;
            double L = 0, lungf = 0;

            /* body outline: elliptic cross-section, neck -> shoulders -> chest -> abdomen */
            double bw, dep;
            if (v < -1.45) bw = g->neck_w, dep = 0.55;
            else if (v < -1.05) {
                double t = smooth01((v + 1.45) / 0.40);
                bw = g->neck_w + (g->shoulder_w - g->neck_w) * t, dep = 0.55 + 0.40 * t;
            } else if (v < -0.6) {
                double t = smooth01((v + 1.05) / 0.45);
                bw = g->shoulder_w + (g->body_w - g->shoulder_w) * t, dep = 0.95 + 0.05 * t;
            } else if (v < 1.0) bw = g->body_w + 0.03 * (v + 0.6), dep = 1.0;
            else {
                double t = smooth01((v - 1.0) / 0.5);
                bw = g->body_w + 0.048 + (g->abd_w - g->body_w - 0.048) * t, dep = 1.0 + 0.05 * t;
            }
            double q = u / bw;
            if (q * q < 1) L += MU_S * D * dep * sqrt(1 - q * q);
            /* arms beside the chest on AP views */
            if (c->view_ap && v > -1.25) {
                double au = fabs(u) - (g->shoulder_w + 0.05);
                double aq = au / 0.15;
                if (aq * aq < 1) L += MU_S * 0.15 * k * 2 * sqrt(1 - aq * aq) * smooth01((v + 1.25) / 0.15);
            }

            /* lungs */
            int s = u > 0;
            double a = fabs(u);
            double rx = 0.5 * (g->lung_w[s] - 0.06), ac = g->lung_cu[s];
            double vc = g->lung_top[s] + 1.05;
            double dv = (v - vc) / (v < vc ? 1.05 : 1.5);
            double dx = fabs(a - ac) / rx;
            double F = dx * dx * sqrt(dx) + (v < vc ? dv * dv : dv * dv * dv * dv);
            double vd = synth_dome_v(g, s, a);
            if (F < 1) {
                double prof = sqrt(1 - F);
                double above = (vd - v) * k; /* mm above the dome */
                double cut = clampd(above / 1.2 + 0.5, 0, 1);
                /* posterior recesses: a little lung still projects below the dome */
                double resid = above < 0 ? 0.22 * exp(above / (0.12 * k)) * smooth01((a - 0.35) / 0.3) : 0;
                double lung = Dl * prof * (cut + (1 - cut) * resid);
                /* mediastinum, aortic knob and heart displace lung */
                double mu = u - g->spine_u;
                /* right border (SVC) wider than the left above the aortic knob */
                double tv = smooth01((v + 1.3) / 1.0);
                double mw = g->med_w * (mu < 0 ? 0.50 + 0.50 * tv : 0.45 + 0.40 * tv);
                double md = 0;
                if (fabs(mu) < mw && v < g->heart_v) md = D * 0.68 * sqrt(1 - sq(mu / mw));
                double kq = sq((u - g->knob_u) / g->knob_r) + sq((v - g->knob_v) / g->knob_r);
                if (kq < 1) md += D * 0.45 * sqrt(1 - kq);
                double hu = u - g->heart_u, hv = v - g->heart_v;
                double hx = hc * hu + hs * hv, hy = -hs * hu + hc * hv;
                double hq = sq(hx / g->heart_ru) + sq(hy / g->heart_rv);
                if (hq < 1) md += g->heart_depth_mm * pow(1 - hq, 0.3);
                lung -= md;
                if (lung < 0) lung = 0;
                /* effusion: fluid in the costophrenic recess with a meniscus */
                if (g->eff_h[s] > 0) {
                    double t = clampd((a - g->dome_med[s]) / (g->dome_lat[s] - g->dome_med[s]), 0, 1.2);
                    double vm = synth_dome_v(g, s, g->dome_lat[s]) - g->eff_h[s] * t * sqrt(t) - 0.02;
                    double fl = smooth01((v - vm) * k / 6.0 + 0.5);
                    lung *= 1 - 0.93 * fl;
                    if (v < vm) lung *= 1 - 0.15 * exp(-(vm - v) * k / 30.0);
                }
                if (g->cons_r > 0) {
                    double cd = sqrt(sq(u - g->cons_u) + sq(v - g->cons_v)) / g->cons_r;
                    if (cd < 1.4) {
                        double nz = 0.6 * value_noise(ns ^ 0x51u, u / (14.0 / k), v / (14.0 / k)) +
                                    0.4 * value_noise(ns ^ 0x52u, u / (5.0 / k), v / (5.0 / k));
                        double w = 0.92 * smooth01((1.0 - cd) * 1.1 + 0.55 * nz);
                        lung *= 1 - g->cons_k * w;
                    }
                }
                lungf = lung / Dl;
                L -= (MU_S - MU_LUNG) * lung;
                /* parenchymal texture: two octaves of filtered noise */
                if (lungf > 0.01) {
                    double n1 = value_noise(ns, u / tex_l1, v / tex_l1);
                    double n2 = value_noise(ns ^ 0x9E37u, u / tex_l2, v / tex_l2);
                    L += tex_amp * lungf * (0.65 * n1 + 0.35 * n2);
                }
            }
            /* basal lucency: a bulla above the dome (no vessels inside, thin wall) */
            if (g->bulla_ru > 0) {
                double bq = sq((u - g->bulla_u) / g->bulla_ru) + sq((v - g->bulla_v) / g->bulla_rv);
                if (bq < 1.15) {
                    double r = sqrt(bq);
                    if (r < 1) {
                        L -= MU_LUNG * 1.6 * Dl * sqrt(1 - bq) + 0.02 * lungf;
                        lungf *= smooth01((r - 0.75) / 0.25);
                    }
                    double wall = fabs(r - 1) * g->bulla_ru * k;
                    if (wall < 0.8) L += 0.06 * (1 - wall / 0.8);
                }
            }

            /* breasts over the lower zones */
            if (female && g->breast > 0) {
                double bu = a - 0.55, bv = v - (g->dome_v[0] - 0.18);
                double bq = sq(bu / (0.38 * g->breast)) + sq(bv / (0.32 * g->breast));
                if (bq < 1) L += MU_S * 26.0 * g->breast * sqrt(1 - bq);
            }

            /* liver: a little denser than the fat and bowel around it */
            if (u < g->spine_u + 0.1 && v > synth_dome_v(g, 0, a)) {
                double lb = g->dome_v[0] + 0.62 - 0.25 * a;
                if (v < lb) L += 0.0004 * D * smooth01((lb - v) * k / 15.0) * (q * q < 1 ? sqrt(1 - q * q) : 0);
            }

            /* abdominal gas: stomach (erect air-fluid level, rugae) and bowel */
            const synth_blob *blobs[SYNTH_MAX_GAS + 1];
            int nb = 0;
            if (g->stomach.depth_mm > 0) blobs[nb++] = &g->stomach;
            for (int i = 0; i < g->n_gas; i++) blobs[nb++] = &g->gas[i];
            for (int i = 0; i < nb; i++) {
                const synth_blob *b = blobs[i];
                double du = u - b->u, dvv = v - b->v;
                if (fabs(du) > b->ru + b->rv || fabs(dvv) > b->ru + b->rv) continue;
                double cr = cos(b->rot), sr = sin(b->rot);
                double bx = cr * du + sr * dvv, by = -sr * du + cr * dvv;
                double bq = sq(bx / b->ru) + sq(by / b->rv);
                if (bq >= 1 || v > b->level_v) continue;
                double gas = b->depth_mm * sqrt(1 - bq);
                if (b == &g->stomach) gas *= 1 - 0.22 * pow(fabs(sin(bx * k / 5.5)), 6);
                if (b->haustra) gas *= 1 - 0.35 * pow(fabs(cos(bx * k * M_PI / 11.0)), 12);
                L -= MU_S * gas;
            }

            /* free air and the Chilaiditi colon, both under a dome */
            for (int sd = 0; sd < 2; sd++) {
                const synth_crescent *cr = &g->free_air[sd];
                if (cr->present) L -= MU_S * cr->depth_mm * synth_crescent_at(g, cr, u, v, NULL);
            }
            if (g->chilaiditi.present) {
                double gq = synth_crescent_at(g, &g->chilaiditi, u, v, NULL);
                if (gq > 0) {
                    double along = fabs(u) * k;
                    gq *= 1 - chil_amp * pow(fabs(cos(along * M_PI / g->chilaiditi.haustra_mm)), 14);
                    L -= MU_S * g->chilaiditi.depth_mm * gq;
                }
            }

            /* spine: vertebral bodies with end plates, pedicles */
            double su = u - g->spine_u;
            if (fabs(su) < 0.30 && v > -1.75) {
                double vw = 0.115 + 0.03 * (v + 1.5);
                double pos = (v + 1.75) / vert_h;
                double fl = pos - floor(pos);
                if (fabs(su) < vw) {
                    double cx = sqrt(1 - sq(su / vw));
                    double ey = 0.35 + 0.65 * smooth01((fl - 0.12) / 0.05) * smooth01((1.0 - fl) / 0.05);
                    double endplate = exp(-sq((fl - 0.15) / 0.025)) + exp(-sq((fl - 0.97) / 0.025));
                    L += bd * ey * cx * (MU_CANCEL * 20.0 + MU_CORTEX * 1.2 * (1 / (cx + 0.25))) +
                         bd * MU_CORTEX * 1.2 * endplate * cx;
                }
                for (int sdd = -1; sdd <= 1; sdd += 2) {
                    double pu = (su - sdd * 0.75 * vw) / 0.035, pv = (fl - 0.38) * vert_h / 0.05;
                    double pr = sqrt(pu * pu + pv * pv);
                    if (pr < 1.2) L += bd * MU_CORTEX * 2.5 * exp(-sq((pr - 0.9) / 0.2));
                }
            }
            /* scapular plate */
            {
                double sh = 0.35 * (1 - g->scap_overlap);
                double pa = a - sh;
                /* triangle superior angle (0.62,-1.25), glenoid (1.10,-1.18), inferior (0.80,-0.42) */
                double e1 = (pa - 0.62) * (-1.25 + 0.42) - (v + 1.25) * (0.62 - 0.80);
                double e2 = (pa - 0.80) * (-0.42 + 1.18) - (v + 0.42) * (0.80 - 1.10);
                double e3 = (pa - 1.10) * (-1.18 + 1.25) - (v + 1.18) * (1.10 - 0.62);
                if (e1 > 0 && e2 > 0 && e3 > 0)
                    L += bd * MU_CORTEX * 2.2 * smooth01(e1 * 30) * smooth01(e2 * 30) * smooth01(e3 * 30);
            }

            size_t idx = (size_t)y * R->w + x;
            R->L[idx] = (float)L;
            R->lf[idx] = (float)clampd(lungf, 0, 1);
        }
    }
}

fa_status synth_render_attenuation(const synth_case *c, const synth_geom *g, double difficulty, float *out,
                                   uint8_t *mask, uint8_t *shutter, fa_error *err) {
    rctx R;
    memset(&R, 0, sizeof R);
    R.c = c, R.g = g, R.d = difficulty;
    R.k = g->S * g->mag;
    double sp = c->spacing_mm;
    int os = 1, ds = 1;
    if (sp > 0.5) os = 2;
    else if (sp < 0.25) ds = (int)floor(0.3 / sp);
    if (ds < 1) ds = 1;
    if (os > 1) {
        R.w = c->cols * os, R.h = c->rows * os, R.f = os, R.rsp = sp / os;
    } else {
        R.w = (c->cols + ds - 1) / ds, R.h = (c->rows + ds - 1) / ds, R.f = 1.0 / ds, R.rsp = sp * ds;
    }
    size_t n;
    if (!fa_size_mul((size_t)R.w, (size_t)R.h, &n))
        return fa_error_set(err, FA_ERR_NOMEM, "%s: render grid %dx%d too large", c->image_id, R.w, R.h);
    R.L = fa_calloc_array(n, sizeof(float));
    R.lf = fa_calloc_array(n, sizeof(float));
    R.V = fa_calloc_array(n, sizeof(float));
    if (!R.L || !R.lf || !R.V) {
        free(R.L), free(R.lf), free(R.V);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory for a %dx%d render", c->image_id, R.w, R.h);
    }
    synth_rng_seed(&R.rng, synth_hash64(c->seed, 2, 0x52454E44ull));
    R.nseed = (uint32_t)synth_hash64(c->seed, 3, 0x4E4F4953ull);

    render_fields(&R);
    render_vessels(&R);
    for (size_t i = 0; i < n; i++) R.L[i] += R.V[i] * R.lf[i];
    render_airways(&R);
    render_ribs(&R);
    render_devices(&R);
    render_marker(&R);
    if (R.oom) {
        free(R.L), free(R.lf), free(R.V);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory while rendering", c->image_id);
    }

    /* resample to the final matrix */
    int W = c->cols, H = c->rows;
    if (os > 1) {
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double s = 0;
                for (int j = 0; j < os; j++)
                    for (int i = 0; i < os; i++) s += R.L[(size_t)(y * os + j) * R.w + (x * os + i)];
                out[(size_t)y * W + x] = (float)(s / (os * os));
            }
    } else if (ds == 1) {
        memcpy(out, R.L, (size_t)W * H * sizeof(float));
    } else {
        for (int y = 0; y < H; y++) {
            double fy = (y + 0.5) / ds - 0.5;
            int y0 = (int)floor(fy);
            double ty = fy - y0;
            int ya = y0 < 0 ? 0 : y0, yb = y0 + 1 > R.h - 1 ? R.h - 1 : y0 + 1;
            for (int x = 0; x < W; x++) {
                double fx = (x + 0.5) / ds - 0.5;
                int x0 = (int)floor(fx);
                double tx = fx - x0;
                int xa = x0 < 0 ? 0 : x0, xb = x0 + 1 > R.w - 1 ? R.w - 1 : x0 + 1;
                double a = R.L[(size_t)ya * R.w + xa], b = R.L[(size_t)ya * R.w + xb];
                double cc = R.L[(size_t)yb * R.w + xa], dd = R.L[(size_t)yb * R.w + xb];
                out[(size_t)y * W + x] = (float)((a + (b - a) * tx) * (1 - ty) + (cc + (dd - cc) * tx) * ty);
            }
        }
    }
    free(R.L), free(R.lf), free(R.V);

    /* truth mask at every final pixel centre, and the collimator shutter */
    if (mask) {
        memset(mask, 0, (size_t)W * H);
        if (g->fa_bbox[0] >= 0) {
            for (int y = (int)g->fa_bbox[1]; y <= (int)g->fa_bbox[3]; y++)
                for (int x = (int)g->fa_bbox[0]; x <= (int)g->fa_bbox[2]; x++)
                    mask[(size_t)y * W + x] = (uint8_t)synth_mask_pixel(g, c, x, y);
        }
    }
    if (shutter) {
        double Wmm = W * sp, Hmm = H * sp;
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                double X = (x + 0.5) * sp, Y = (y + 0.5) * sp;
                int out_ = X < g->coll_l || X > Wmm - g->coll_r || Y < g->coll_t || Y > Hmm - g->coll_b;
                shutter[(size_t)y * W + x] = (uint8_t)out_;
            }
    }
    return FA_OK;
}
