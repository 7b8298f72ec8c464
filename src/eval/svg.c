/* svg.c - inline-SVG chart primitives (see svg.h). */
#include "eval/svg.h"

#include <math.h>
#include <string.h>

const char *svg_color(size_t i) {
    static const char *pal[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                "#E69F00", "#56B4E9", "#000000", "#8C6D31"};
    return pal[i % (sizeof pal / sizeof pal[0])];
}

void svg_escape(FILE *f, const char *s) {
    for (; s && *s; s++) {
        switch (*s) {
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '&': fputs("&amp;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default: fputc(*s, f);
        }
    }
}

double svg_px(const svg_plot *p, double x) {
    return p->ml + (x - p->x0) / (p->x1 - p->x0) * (p->w - p->ml - p->mr);
}

double svg_py(const svg_plot *p, double y) {
    return p->h - p->mb - (y - p->y0) / (p->y1 - p->y0) * (p->h - p->mt - p->mb);
}

void svg_begin(svg_plot *p, FILE *f, int w, int h, double x0, double x1, double y0, double y1,
               const char *title) {
    p->f = f;
    p->w = w;
    p->h = h;
    p->ml = 52;
    p->mr = 14;
    p->mt = title ? 30 : 12;
    p->mb = 44;
    p->x0 = x0;
    p->x1 = x1 > x0 ? x1 : x0 + 1;
    p->y0 = y0;
    p->y1 = y1 > y0 ? y1 : y0 + 1;
    fprintf(f, "<svg class=\"chart\" viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\"", w, h, w, h);
    if (title) {
        fputs(" aria-label=\"", f);
        svg_escape(f, title);
        fputc('"', f);
    }
    fputs(">\n", f);
    if (title) {
        fprintf(f, "<text x=\"%d\" y=\"18\" class=\"ct\">", w / 2);
        svg_escape(f, title);
        fputs("</text>\n", f);
    }
}

static void fmt_tick(char *buf, size_t n, double v, int decimals) {
    snprintf(buf, n, "%.*f", decimals, fabs(v) < 1e-12 ? 0.0 : v);
}

void svg_axes(svg_plot *p, int n_x, int n_y, int decimals_x, int decimals_y, const char *xlabel,
              const char *ylabel) {
    FILE *f = p->f;
    char buf[32];
    double left = svg_px(p, p->x0), right = svg_px(p, p->x1);
    double bottom = svg_py(p, p->y0), top = svg_py(p, p->y1);
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" class=\"pa\"/>\n", left, top,
            right - left, bottom - top);
    for (int i = 0; i <= n_x; i++) {
        double v = p->x0 + (p->x1 - p->x0) * i / n_x, x = svg_px(p, v);
        fmt_tick(buf, sizeof buf, v, decimals_x);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"gr\"/>", x, top, x, bottom);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"tx\">%s</text>\n", x, bottom + 14, buf);
    }
    for (int i = 0; i <= n_y; i++) {
        double v = p->y0 + (p->y1 - p->y0) * i / n_y, y = svg_py(p, v);
        fmt_tick(buf, sizeof buf, v, decimals_y);
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" class=\"gr\"/>", left, y, right, y);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" class=\"ty\">%s</text>\n", left - 5, y + 4, buf);
    }
    if (xlabel) {
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" class=\"al\">", (left + right) / 2, p->h - 8);
        svg_escape(f, xlabel);
        fputs("</text>\n", f);
    }
    if (ylabel) {
        double cy = (top + bottom) / 2;
        fprintf(f, "<text x=\"13\" y=\"%.1f\" class=\"al\" transform=\"rotate(-90 13 %.1f)\">", cy, cy);
        svg_escape(f, ylabel);
        fputs("</text>\n", f);
    }
}

void svg_line(svg_plot *p, const double *x, const double *y, size_t n, const char *color,
              double width, const char *dash) {
    FILE *f = p->f;
    int open = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) {
            if (open) fputs("\"/>\n", f);
            open = 0;
            continue;
        }
        if (!open) {
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%.1f\"", color, width);
            if (dash) fprintf(f, " stroke-dasharray=\"%s\"", dash);
            fputs(" stroke-linejoin=\"round\" points=\"", f);
            open = 1;
        } else {
            fputc(' ', f);
        }
        fprintf(f, "%.1f,%.1f", svg_px(p, x[i]), svg_py(p, y[i]));
    }
    if (open) fputs("\"/>\n", f);
}

void svg_segment(svg_plot *p, double xa, double ya, double xb, double yb, const char *color,
                 double width, const char *dash) {
    fprintf(p->f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"%.1f\"",
            svg_px(p, xa), svg_py(p, ya), svg_px(p, xb), svg_py(p, yb), color, width);
    if (dash) fprintf(p->f, " stroke-dasharray=\"%s\"", dash);
    fputs("/>\n", p->f);
}

void svg_marker(svg_plot *p, double x, double y, const char *color, int shape, const char *tooltip) {
    if (!isfinite(x) || !isfinite(y)) return;
    double cx = svg_px(p, x), cy = svg_py(p, y);
    if (shape == 1)
        fprintf(p->f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"9\" height=\"9\" fill=\"%s\" stroke=\"#fff\">",
                cx - 4.5, cy - 4.5, color);
    else
        fprintf(p->f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\" stroke=\"#fff\">", cx, cy, color);
    if (tooltip) {
        fputs("<title>", p->f);
        svg_escape(p->f, tooltip);
        fputs("</title>", p->f);
    }
    fputs(shape == 1 ? "</rect>\n" : "</circle>\n", p->f);
}

void svg_bar(svg_plot *p, double xa, double xb, double y, const char *color, double opacity,
             const char *tooltip) {
    if (!isfinite(y) || y <= 0) return;
    double left = svg_px(p, xa), right = svg_px(p, xb), top = svg_py(p, y), base = svg_py(p, 0);
    fprintf(p->f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\" fill-opacity=\"%.2f\">",
            left, top, right - left > 0.5 ? right - left - 0.5 : right - left, base - top, color, opacity);
    if (tooltip) {
        fputs("<title>", p->f);
        svg_escape(p->f, tooltip);
        fputs("</title>", p->f);
    }
    fputs("</rect>\n", p->f);
}

void svg_legend(svg_plot *p, const char *const *label, const char *const *color,
                const char *const *dash, size_t n, int corner) {
    if (!n) return;
    size_t longest = 0;
    for (size_t i = 0; i < n; i++)
        if (strlen(label[i]) > longest) longest = strlen(label[i]);
    double bw = 34 + 6.3 * (double)longest, bh = 8 + 16.0 * (double)n;
    double right = svg_px(p, p->x1), bottom = svg_py(p, p->y0), left = svg_px(p, p->x0), top = svg_py(p, p->y1);
    double x = corner == 1 ? left + 6 : right - bw - 6, y = corner == 0 ? bottom - bh - 6 : top + 6;
    fprintf(p->f, "<g class=\"lg\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" rx=\"3\"/>\n", x, y,
            bw, bh);
    for (size_t i = 0; i < n; i++) {
        double ly = y + 12 + 16.0 * (double)i;
        fprintf(p->f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2.5\"",
                x + 6, ly - 4, x + 24, ly - 4, color[i]);
        if (dash && dash[i]) fprintf(p->f, " stroke-dasharray=\"%s\"", dash[i]);
        fprintf(p->f, "/><text x=\"%.1f\" y=\"%.1f\">", x + 29, ly);
        svg_escape(p->f, label[i]);
        fputs("</text>\n", p->f);
    }
    fputs("</g>\n", p->f);
}

void svg_end(svg_plot *p) { fputs("</svg>\n", p->f); }
