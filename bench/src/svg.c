/* svg.c: a minimal SVG line chart (axes from 0, five ticks, a legend) so the
 * results need no plotting tool. */
#include "bench.h"

static const char *const colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd"};

/* A "nice" upper bound for an axis: 1, 2 or 5 times a power of ten. */
static double nice_max(double v) {
  if (v <= 0) return 1;
  double p = 1; /* no libm: find the power of ten by steps */
  while (p * 10 <= v)
    p *= 10;
  while (p > v)
    p /= 10;
  double m = v / p;
  return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 5 ? 5 : 10) * p;
}

void bench_svg_chart(pr_buf *out, const char *title, const char *xlabel, const char *ylabel,
                     const bench_series *s, size_t ns) {
  const double W = 720, H = 420, L = 80, R = 170, T = 40, B = 60;
  double xmax = 0, ymax = 0;
  for (size_t i = 0; i < ns; i++)
    for (size_t j = 0; j < s[i].n; j++) {
      if (s[i].x[j] > xmax) xmax = s[i].x[j];
      if (s[i].y[j] > ymax) ymax = s[i].y[j];
    }
  xmax = nice_max(xmax);
  ymax = nice_max(ymax);
  double pw = W - L - R, ph = H - T - B;
  pr_buf_printf(out,
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                "font-family=\"sans-serif\" font-size=\"12\">\n"
                "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                "<text x=\"%.0f\" y=\"24\" font-size=\"15\">%s</text>\n",
                W, H, L, title);
  pr_buf_printf(out,
                "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n"
                "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"black\"/>\n",
                L, T + ph, L + pw, T + ph, L, T, L, T + ph);
  for (int k = 0; k <= 5; k++) {
    double fx = L + pw * k / 5, fy = T + ph - ph * k / 5;
    pr_buf_printf(out,
                  "<line x1=\"%.1f\" y1=\"%.0f\" x2=\"%.1f\" y2=\"%.0f\" stroke=\"#ddd\"/>"
                  "<text x=\"%.1f\" y=\"%.0f\" text-anchor=\"middle\">%g</text>\n",
                  fx, T, fx, T + ph, fx, T + ph + 18, xmax * k / 5);
    pr_buf_printf(out,
                  "<line x1=\"%.0f\" y1=\"%.1f\" x2=\"%.0f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
                  "<text x=\"%.0f\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
                  L, fy, L + pw, fy, L - 6, fy + 4, ymax * k / 5);
  }
  pr_buf_printf(out,
                "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n"
                "<text x=\"16\" y=\"%.0f\" text-anchor=\"middle\" "
                "transform=\"rotate(-90 16 %.0f)\">%s</text>\n",
                L + pw / 2, H - 16, xlabel, T + ph / 2, T + ph / 2, ylabel);
  for (size_t i = 0; i < ns; i++) {
    const char *col = colors[i % (sizeof(colors) / sizeof(colors[0]))];
    pr_buf_printf(out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
    for (size_t j = 0; j < s[i].n; j++)
      pr_buf_printf(out, "%.1f,%.1f ", L + pw * s[i].x[j] / xmax, T + ph - ph * s[i].y[j] / ymax);
    pr_buf_puts(out, "\"/>\n");
    for (size_t j = 0; j < s[i].n; j++)
      pr_buf_printf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\"/>\n",
                    L + pw * s[i].x[j] / xmax, T + ph - ph * s[i].y[j] / ymax, col);
    double ly = T + 10 + 20 * (double)i;
    pr_buf_printf(out,
                  "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"%s\" "
                  "stroke-width=\"3\"/><text x=\"%.0f\" y=\"%.0f\">%s</text>\n",
                  L + pw + 12, ly, L + pw + 36, ly, col, L + pw + 42, ly + 4, s[i].name);
  }
  pr_buf_puts(out, "</svg>\n");
}
