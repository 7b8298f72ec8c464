/* synth_detector.c - from attenuation line integrals to a vendor's stored
 * "For Presentation" pixel values.
 *
 * Physics first: primary transmission exp(-L) with the anode heel effect,
 * scatter (a blurred copy of the primary, large without a grid on portable
 * units), quantum noise in the exposure domain (so dense regions are noisier),
 * detector blur (MTF; CR plates blur more than flat panels), a stationary
 * grid's line pattern on CR. Then each vendor's image processing: log,
 * dynamic-range compression of the low frequencies, mid- and high-frequency
 * enhancement, a tone curve, bits stored, and MONOCHROME1 inversion. These
 * differences are the domain shift a model trained on one vendor must face;
 * `difficulty` scales how far the other vendors sit from the Philips-like one.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "data/synth.h"

typedef struct vendor_proc {
    double drc, g_mid, g_fine; /* low-frequency compression, mid and fine gains */
    int curve;                 /* 0 S-curve(k), 1 gamma(k), 2 three-segment LUT */
    double k;
    double q;                  /* photon efficiency relative to Philips DR */
    double mtf_mm;             /* detector blur sigma, mm */
    double blur_px;            /* sharpness at the preset's pixel size */
    double lo_pct, hi_pct;     /* exposure recognition percentiles */
} vendor_proc;

static const vendor_proc vendors[SYNTH_N_VENDORS] = {
    /* Philips-like: moderate multi-frequency processing, mild S-curve */
    {0.40, 0.10, 0.35, 0, 2.0, 1.00, 0.10, 0.35, 0.010, 0.998},
    /* Fujifilm-like: strong mid-frequency boost, steep S-curve */
    {0.30, 0.50, 0.15, 0, 3.4, 0.85, 0.12, 0.55, 0.020, 0.995},
    /* Siemens-like: strong compression and edge enhancement, gamma < 1 */
    {0.55, 0.05, 0.90, 1, 0.80, 1.10, 0.08, 0.25, 0.005, 0.998},
    /* Kodak-like: little processing, dark gamma */
    {0.18, 0.00, 0.10, 1, 1.35, 0.80, 0.13, 0.60, 0.015, 0.997},
    /* Konica-like: piecewise LUT, strong mid boost */
    {0.50, 0.45, 0.50, 2, 0.0, 0.95, 0.11, 0.45, 0.008, 0.996},
};

static double clampd(double x, double lo, double hi) { return x < lo ? lo : x > hi ? hi : x; }

static double tone(const vendor_proc *vp, double v) {
    switch (vp->curve) {
    case 0: return 0.5 + 0.5 * tanh(vp->k * (v - 0.5)) / tanh(0.5 * vp->k);
    case 1: return pow(v, vp->k);
    default:
        if (v < 0.3) return v * 0.7;
        if (v < 0.8) return 0.21 + (v - 0.3) * 1.3;
        return 0.86 + (v - 0.8) * 0.7;
    }
}

/* ---- Gaussian low-pass ---- */
static void blur_direct(float *img, int w, int h, double sigma, float *tmp) {
    int r = (int)ceil(3 * sigma);
    if (r < 1) r = 1;
    if (r > 64) r = 64;
    double kern[129], ks = 0;
    for (int i = -r; i <= r; i++) ks += kern[i + r] = exp(-0.5 * i * i / (sigma * sigma));
    for (int i = 0; i <= 2 * r; i++) kern[i] /= ks;
    for (int y = 0; y < h; y++) {
        float *row = img + (size_t)y * w;
        for (int x = 0; x < w; x++) {
            double s = 0;
            for (int i = -r; i <= r; i++) {
                int xx = x + i;
                xx = xx < 0 ? 0 : xx >= w ? w - 1 : xx;
                s += kern[i + r] * row[xx];
            }
            tmp[(size_t)y * w + x] = (float)s;
        }
    }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double s = 0;
            for (int i = -r; i <= r; i++) {
                int yy = y + i;
                yy = yy < 0 ? 0 : yy >= h ? h - 1 : yy;
                s += kern[i + r] * tmp[(size_t)yy * w + x];
            }
            img[(size_t)y * w + x] = (float)s;
        }
}

fa_status synth_lowpass(float *img, int w, int h, double sigma, fa_error *err) {
    if (sigma < 0.3) return FA_OK;
    int f = sigma > 6 ? (int)floor(sigma / 3) : 1;
    if (f > 1 && (w / f < 4 || h / f < 4)) f = 1;
    int sw = (w + f - 1) / f, sh = (h + f - 1) / f;
    float *small = f > 1 ? fa_calloc_array((size_t)sw * sh, sizeof(float)) : img;
    float *tmp = fa_malloc_array((size_t)sw * sh, sizeof(float));
    if (!small || !tmp) {
        if (f > 1) free(small);
        free(tmp);
        return fa_error_set(err, FA_ERR_NOMEM, "low-pass of %dx%d: out of memory", w, h);
    }
    if (f > 1) {
        for (int y = 0; y < sh; y++)
            for (int x = 0; x < sw; x++) {
                double s = 0;
                int n = 0;
                for (int j = 0; j < f && y * f + j < h; j++)
                    for (int i = 0; i < f && x * f + i < w; i++, n++) s += img[(size_t)(y * f + j) * w + x * f + i];
                small[(size_t)y * sw + x] = (float)(s / n);
            }
    }
    blur_direct(small, sw, sh, f > 1 ? sigma / f : sigma, tmp);
    if (f > 1) {
        for (int y = 0; y < h; y++) {
            double fy = (y + 0.5) / f - 0.5;
            int y0 = (int)floor(fy);
            double ty = fy - y0;
            int ya = y0 < 0 ? 0 : y0 >= sh ? sh - 1 : y0, yb = y0 + 1 >= sh ? sh - 1 : y0 + 1 < 0 ? 0 : y0 + 1;
            for (int x = 0; x < w; x++) {
                double fx = (x + 0.5) / f - 0.5;
                int x0 = (int)floor(fx);
                double tx = fx - x0;
                int xa = x0 < 0 ? 0 : x0 >= sw ? sw - 1 : x0, xb = x0 + 1 >= sw ? sw - 1 : x0 + 1 < 0 ? 0 : x0 + 1;
                double a = small[(size_t)ya * sw + xa], b = small[(size_t)ya * sw + xb];
                double c = small[(size_t)yb * sw + xa], d = small[(size_t)yb * sw + xb];
                img[(size_t)y * w + x] = (float)((a + (b - a) * tx) * (1 - ty) + (c + (d - c) * tx) * ty);
            }
        }
        free(small);
    }
    free(tmp);
    return FA_OK;
}

/* Approximately normal deviate from one 64-bit draw (Irwin-Hall of four
 * 16-bit uniforms): cheap enough for every pixel, and deterministic. */
static double fast_normal(synth_rng *r) {
    uint64_t x = synth_rng_u64(r);
    double s = (double)(x & 0xFFFF) + (double)((x >> 16) & 0xFFFF) + (double)((x >> 32) & 0xFFFF) + (double)(x >> 48);
    return (s / 65536.0 - 2.0) * 1.7320508075688772;
}

/* Percentiles of img over pixels where sel is set: a 65536-bin histogram
 * between the selected minimum and maximum, linear inside the bin (exact
 * enough for a display window, and O(n) with no sort). */
static fa_status percentiles(const float *img, const uint8_t *sel, size_t n, const double *p, double *out, int np,
                             fa_error *err) {
    float lo = 0, hi = 0;
    size_t cnt = 0;
    for (size_t i = 0; i < n; i++) {
        if (!sel[i]) continue;
        if (!cnt || img[i] < lo) lo = img[i];
        if (!cnt || img[i] > hi) hi = img[i];
        cnt++;
    }
    if (cnt == 0 || hi <= lo) {
        for (int i = 0; i < np; i++) out[i] = lo;
        return FA_OK;
    }
    enum { NB = 65536 };
    uint32_t *h = fa_calloc_array(NB, sizeof *h);
    if (!h) return fa_error_set(err, FA_ERR_NOMEM, "percentiles: out of memory");
    double scale = (NB - 1) / ((double)hi - lo);
    for (size_t i = 0; i < n; i++)
        if (sel[i]) h[(size_t)(((double)img[i] - lo) * scale)]++;
    for (int k = 0; k < np; k++) {
        double target = p[k] * (double)(cnt - 1);
        size_t acc = 0;
        int b = 0;
        while (b < NB - 1 && (double)(acc + h[b]) <= target) acc += h[b++];
        double frac = h[b] ? (target - (double)acc) / h[b] : 0;
        out[k] = lo + ((double)b + frac) / scale;
    }
    free(h);
    return FA_OK;
}

fa_status synth_detector(const synth_case *c, const synth_geom *g, double difficulty, const float *L,
                         const uint8_t *shutter, synth_image *out, fa_error *err) {
    const synth_machine *m = &synth_machines[c->machine];
    int W = c->cols, H = c->rows;
    size_t n = (size_t)W * H;
    double sp = c->spacing_mm;
    double d = difficulty;
    /* vendor parameters pulled towards the Philips-like ones when easy */
    double w = m->vendor == SYNTH_VENDOR_PHILIPS ? 0 : clampd(d, 0, 1.5);
    const vendor_proc *ph = &vendors[SYNTH_VENDOR_PHILIPS], *vv = &vendors[m->vendor];
#define MIX(f) (ph->f + w * (vv->f - ph->f))
    double drc = MIX(drc), g_mid = MIX(g_mid), g_fine = MIX(g_fine), qeff = MIX(q);
    double mtf_mm = MIX(mtf_mm), blur_px = MIX(blur_px), lo_pct = MIX(lo_pct), hi_pct = MIX(hi_pct);
#undef MIX
    synth_rng r;
    synth_rng_seed(&r, synth_hash64(c->seed, 4, 0x44455445ull));
    if (m->is_cr) mtf_mm += 0.05, qeff *= 0.7;
    if (m->portable) {
        qeff *= 0.45;
        blur_px += synth_rng_range(&r, 0.0, 0.5); /* patient motion on sick patients */
    }
    /* Photons per pixel without the patient. Noise is set at the preset's
     * pixel size with a square-root (not linear) area law, so the noise
     * texture of each unit survives in the small presets. */
    double q = 12000.0 * qeff * (sp / 0.15) / d;
    double spr = m->portable ? synth_rng_range(&r, 0.7, 1.1) : synth_rng_range(&r, 0.15, 0.3);
    double heel = synth_rng_range(&r, -0.08, 0.08);
    double grid = m->is_cr ? 0.012 * clampd(d, 0.5, 1.5) : 0;

    float *I = fa_malloc_array(n, sizeof(float));
    float *S = fa_malloc_array(n, sizeof(float));
    uint8_t *sel = fa_malloc_array(n, 1);
    uint16_t *stored = fa_malloc_array(n, sizeof(uint16_t));
    if (!I || !S || !sel || !stored) {
        free(I), free(S), free(sel), free(stored);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory for the detector model", c->image_id);
    }
    fa_status st = FA_OK;
    for (int y = 0; y < H; y++) {
        double i0 = 1 + heel * ((double)y / H - 0.5);
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x;
            double prim = shutter[i] ? 0 : i0 * exp(-(double)L[i]);
            I[i] = (float)prim;
            S[i] = (float)prim;
        }
    }
    if ((st = synth_lowpass(S, W, H, 40.0 / sp, err))) goto done;
    for (size_t i = 0; i < n; i++) {
        double t = I[i] + spr * S[i] * (shutter[i] ? 0.3 : 1.0);
        t += sqrt(t / q) * fast_normal(&r);
        I[i] = (float)(t > 1e-5 ? t : 1e-5);
    }
    {
        double sig = sqrt((mtf_mm / sp) * (mtf_mm / sp) + blur_px * blur_px);
        if ((st = synth_lowpass(I, W, H, sig, err))) goto done;
    }
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            size_t i = (size_t)y * W + x;
            double t = I[i];
            if (grid > 0) t *= 1 + grid * cos(2 * M_PI * x / 2.7);
            I[i] = (float)(-log(t) + 0.003 * d * fast_normal(&r));
        }
    /* vendor processing: base (40 mm), mid (~2 mm), fine */
    memcpy(S, I, n * sizeof(float));
    if ((st = synth_lowpass(S, W, H, 40.0 / sp, err))) goto done;
    {
        float *M = fa_malloc_array(n, sizeof(float));
        if (!M) {
            st = fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory for processing", c->image_id);
            goto done;
        }
        memcpy(M, I, n * sizeof(float));
        double sm = 2.0 / sp > 1.2 ? 2.0 / sp : 1.2;
        if ((st = synth_lowpass(M, W, H, sm, err))) {
            free(M);
            goto done;
        }
        for (size_t i = 0; i < n; i++) {
            double B = S[i], Mi = M[i], P = I[i];
            I[i] = (float)(B * (1 - drc) + (Mi - B) * (1 + g_mid) + (P - Mi) * (1 + g_fine));
        }
        free(M);
    }
    /* exposure recognition over the anatomy (tissue present, not shuttered) */
    for (size_t i = 0; i < n; i++) sel[i] = !shutter[i] && L[i] > 1.0f;
    double pct[2] = {lo_pct, hi_pct}, pv[2];
    if ((st = percentiles(I, sel, n, pct, pv, 2, err))) goto done;
    double lo = pv[0], hi = pv[1] > pv[0] + 1e-3 ? pv[1] : pv[0] + 1e-3;
    /* leave headroom so dense abdomen and bone stay grey, not white */
    double span = hi - lo;
    lo -= 0.04 * span;
    hi += 0.25 * span;
    int maxv = (1 << m->bits_stored) - 1;
    /* the tone curve (vendor's, pulled towards Philips by w) as a table */
    enum { NT = 4096 };
    double lut[NT + 1];
    for (int k = 0; k <= NT; k++) {
        double t = (double)k / NT;
        double tv = tone(&vendors[m->vendor], t), tp = tone(ph, t);
        lut[k] = 0.02 + 0.96 * clampd(tp + w * (tv - tp), 0, 1);
    }
    for (size_t i = 0; i < n; i++) {
        double v;
        if (shutter[i]) v = 1.0;
        else {
            double f = clampd((I[i] - lo) / (hi - lo), 0, 1) * NT;
            int k = (int)f;
            if (k >= NT) k = NT - 1;
            v = lut[k] + (f - k) * (lut[k + 1] - lut[k]);
        }
        long s = (long)floor(v * maxv + 0.5);
        if (s < 0) s = 0;
        if (s > maxv) s = maxv;
        stored[i] = (uint16_t)(m->mono1 ? maxv - s : s);
    }
    /* window from the stored values of the anatomy, as a vendor would set it */
    for (size_t i = 0; i < n; i++) S[i] = (float)stored[i];
    double wp[2] = {0.002, 0.999}, wv[2];
    if ((st = percentiles(S, sel, n, wp, wv, 2, err))) goto done;
    out->rows = H, out->cols = W;
    out->stored = stored;
    stored = NULL;
    out->bits_stored = m->bits_stored;
    out->mono1 = m->mono1;
    out->window_width = floor(wv[1] - wv[0] + 1.5);
    if (out->window_width < 2) out->window_width = 2;
    out->window_center = floor(0.5 * (wv[0] + wv[1]) + 0.5);
done:
    free(I), free(S), free(sel), free(stored);
    (void)g;
    return st;
}

void synth_image_free(synth_image *im) {
    free(im->stored);
    free(im->mask);
    memset(im, 0, sizeof *im);
}

fa_status synth_render(const synth_case *c, const synth_geom *g, double difficulty, synth_image *out,
                       fa_error *err) {
    memset(out, 0, sizeof *out);
    size_t n;
    if (!fa_size_mul((size_t)c->cols, (size_t)c->rows, &n) || c->cols < 16 || c->rows < 16)
        return fa_error_set(err, FA_ERR_ARG, "%s: bad matrix %dx%d", c->image_id, c->cols, c->rows);
    float *L = fa_malloc_array(n, sizeof(float));
    uint8_t *mask = fa_malloc_array(n, 1);
    uint8_t *shutter = fa_malloc_array(n, 1);
    if (!L || !mask || !shutter) {
        free(L), free(mask), free(shutter);
        return fa_error_set(err, FA_ERR_NOMEM, "%s: out of memory", c->image_id);
    }
    fa_status st = synth_render_attenuation(c, g, difficulty, L, mask, shutter, err);
    if (!st) st = synth_detector(c, g, difficulty, L, shutter, out, err);
    free(L), free(shutter);
    if (st) {
        free(mask);
        synth_image_free(out);
        return st;
    }
    out->mask = mask;
    return FA_OK;
}
