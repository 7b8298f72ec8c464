/* svg.h - minimal inline-SVG charts for the HTML report: a plot frame with
 * axes, ticks and grid, polylines, markers, bars and a legend. Output is
 * plain SVG text (no scripts, no external references), so the report stays
 * one self-contained file. */
#ifndef FA_SVG_H
#define FA_SVG_H

#include <stddef.h>
#include <stdio.h>

typedef struct svg_plot {
    FILE *f;        /* borrowed */
    int w, h;       /* pixels */
    int ml, mr, mt, mb; /* margins */
    double x0, x1, y0, y1; /* data ranges */
} svg_plot;

/* Colour-blind-safe palette (Okabe-Ito), cycled by index. */
const char *svg_color(size_t i);

/* Open an <svg> of w x h pixels mapping [x0,x1] x [y0,y1]; title (may be
 * NULL) is drawn above and used as the accessible name. */
void svg_begin(svg_plot *p, FILE *f, int w, int h, double x0, double x1, double y0, double y1,
               const char *title);
/* Grid, ticks (n_x/n_y intervals), tick labels with `decimals` and axis
 * labels. */
void svg_axes(svg_plot *p, int n_x, int n_y, int decimals_x, int decimals_y, const char *xlabel,
              const char *ylabel);
double svg_px(const svg_plot *p, double x);
double svg_py(const svg_plot *p, double y);
/* Polyline through finite points (NaN points split the line). dash may be
 * NULL or an SVG dash array such as "4 3". */
void svg_line(svg_plot *p, const double *x, const double *y, size_t n, const char *color,
              double width, const char *dash);
/* Straight segment in data coordinates. */
void svg_segment(svg_plot *p, double xa, double ya, double xb, double yb, const char *color,
                 double width, const char *dash);
/* Circle (shape 0) or square (1) marker with a tooltip (may be NULL). */
void svg_marker(svg_plot *p, double x, double y, const char *color, int shape, const char *tooltip);
/* Vertical bar from y = 0 to y over [xa, xb], with opacity. */
void svg_bar(svg_plot *p, double xa, double xb, double y, const char *color, double opacity,
             const char *tooltip);
/* Legend box in the lower right (corner 0), upper left (1) or upper right (2). */
void svg_legend(svg_plot *p, const char *const *label, const char *const *color,
                const char *const *dash, size_t n, int corner);
void svg_end(svg_plot *p);

/* Write s with <, >, &, " and ' escaped (for HTML and SVG text). */
void svg_escape(FILE *f, const char *s);

#endif
