// Inline-SVG line plots and heat maps (see svg-plot.h).
#include "svg-plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace moerun::cli::svg {
namespace {

std::string num(double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", v);
    return buf;
}

std::string tick_label(double v, bool percent) {
    char buf[32];
    if (percent)
        std::snprintf(buf, sizeof buf, "%.0f%%", 100 * v);
    else
        std::snprintf(buf, sizeof buf, "%g", v);
    return buf;
}

// Viridis-like ramp, t in [0, 1].
std::string ramp(double t) {
    static constexpr double kStops[][3] = {
        {68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
    t = std::clamp(t, 0.0, 1.0) * 4;
    const int i = std::min(3, int(t));
    const double f = t - i;
    char buf[16];
    std::snprintf(buf, sizeof buf, "#%02x%02x%02x", int(kStops[i][0] + f * (kStops[i + 1][0] - kStops[i][0])),
                  int(kStops[i][1] + f * (kStops[i + 1][1] - kStops[i][1])),
                  int(kStops[i][2] + f * (kStops[i + 1][2] - kStops[i][2])));
    return buf;
}

}  // namespace

std::string escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        switch (c) {
            case '&':
                out += "&amp;";
                break;
            case '<':
                out += "&lt;";
                break;
            case '>':
                out += "&gt;";
                break;
            case '"':
                out += "&quot;";
                break;
            default:
                out += c;
        }
    }
    return out;
}

std::string line_plot(const LinePlot &p) {
    const double left = 56, right = 118, top = 30, bottom = 46;
    const double w = p.width - left - right, h = p.height - top - bottom;
    std::vector<double> xt = p.x_ticks;
    if (xt.empty() && !p.series.empty()) xt = p.series[0].x;
    double x0 = xt.empty() ? 0 : *std::min_element(xt.begin(), xt.end());
    double x1 = xt.empty() ? 1 : *std::max_element(xt.begin(), xt.end());
    if (x1 <= x0) x1 = x0 + 1;
    const double y0 = p.y_min, y1 = p.y_max > p.y_min ? p.y_max : p.y_min + 1;
    auto X = [&](double x) { return left + (x - x0) / (x1 - x0) * w; };
    auto Y = [&](double y) { return top + (1 - (std::clamp(y, y0, y1) - y0) / (y1 - y0)) * h; };

    std::string s = std::string("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"") +
                    std::to_string(p.width) + std::string("\" height=\"") + std::to_string(p.height) +
                    "\" class=\"plot\">\n";
    s += std::string("<text x=\"") + num(left) + "\" y=\"18\" class=\"title\">" + escape(p.title) +
         "</text>\n";
    for (double y = y0; y <= y1 + 1e-9; y += p.y_step) {
        s += std::string("<line x1=\"") + num(left) + "\" x2=\"" + num(left + w) + "\" y1=\"" + num(Y(y)) +
             "\" y2=\"" + num(Y(y)) + "\" class=\"grid\"/>";
        s += std::string("<text x=\"") + num(left - 6) + "\" y=\"" + num(Y(y) + 4) + "\" class=\"ytick\">" +
             tick_label(y, p.y_percent) + "</text>\n";
    }
    for (double x : xt)
        s += std::string("<line x1=\"") + num(X(x)) + "\" x2=\"" + num(X(x)) + "\" y1=\"" + num(top + h) +
             "\" y2=\"" + num(top + h + 4) + "\" class=\"axis\"/><text x=\"" + num(X(x)) + "\" y=\"" +
             num(top + h + 17) + std::string("\" class=\"xtick\">") + tick_label(x, false) + "</text>\n";
    s += std::string("<rect x=\"") + num(left) + "\" y=\"" + num(top) + "\" width=\"" + num(w) +
         "\" height=\"" + num(h) + "\" class=\"frame\"/>\n";
    s += std::string("<text x=\"") + num(left + w / 2) + "\" y=\"" + num(p.height - 8.0) +
         "\" class=\"xlabel\">" + escape(p.x_label) + "</text>\n";
    s += std::string("<text transform=\"translate(14,") + num(top + h / 2) +
         ") rotate(-90)\" class=\"ylabel\">" + escape(p.y_label) + "</text>\n";
    for (size_t i = 0; i < p.series.size(); ++i) {
        const Series &q = p.series[i];
        std::string pts;
        for (size_t k = 0; k < q.x.size() && k < q.y.size(); ++k)
            pts += std::string(k ? " " : "") + num(X(q.x[k])) + "," + num(Y(q.y[k]));
        s += std::string("<polyline points=\"") + pts + "\" fill=\"none\" stroke=\"" + q.color +
             "\" stroke-width=\"2\"" + (q.dashed ? " stroke-dasharray=\"6,4\"" : "") + "/>\n";
        for (size_t k = 0; k < q.x.size() && k < q.y.size(); ++k)
            s += std::string("<circle cx=\"") + num(X(q.x[k])) + "\" cy=\"" + num(Y(q.y[k])) +
                 "\" r=\"2.5\" fill=\"" + q.color + "\"><title>" + escape(q.name) + " " +
                 tick_label(q.x[k], false) + ": " + tick_label(q.y[k], false) + "</title></circle>";
        const double ly = top + 8 + 18 * double(i);
        s += std::string("<line x1=\"") + num(left + w + 12) + "\" x2=\"" + num(left + w + 36) + "\" y1=\"" +
             num(ly) + std::string("\" y2=\"") + num(ly) + "\" stroke=\"" + q.color +
             "\" stroke-width=\"2\"" + (q.dashed ? " stroke-dasharray=\"6,4\"" : "") + "/><text x=\"" +
             num(left + w + 42) + "\" y=\"" + num(ly + 4) + "\" class=\"legend\">" + escape(q.name) +
             "</text>\n";
    }
    return s + "</svg>\n";
}

std::string heat_map(const HeatMap &m) {
    const int left = 56, top = 30, legend_h = 40;
    const int w = int(m.cols) * m.cell_w, h = int(m.rows) * m.cell_h;
    const int width = left + w + 20, height = top + h + 30 + legend_h;
    double hi = 0;
    for (double v : m.values) hi = std::max(hi, v);
    std::string s = std::string("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"") +
                    std::to_string(width) + std::string("\" height=\"") + std::to_string(height) +
                    "\" class=\"plot\">\n";
    s += std::string("<text x=\"") + std::to_string(left) + "\" y=\"18\" class=\"title\">" + escape(m.title) +
         "</text>\n";
    for (size_t r = 0; r < m.rows; ++r) {
        const int y = top + int(r) * m.cell_h;
        if (m.rows <= 64 || r % 8 == 0)
            s += std::string("<text x=\"") + std::to_string(left - 6) + "\" y=\"" +
                 std::to_string(y + m.cell_h - 4) + std::string("\" class=\"ytick\">") + std::to_string(r) +
                 "</text>";
        for (size_t c = 0; c < m.cols; ++c) {
            const double v = m.values[r * m.cols + c];
            s += std::string("<rect x=\"") + std::to_string(left + int(c) * m.cell_w) + "\" y=\"" +
                 std::to_string(y) + std::string("\" width=\"") + std::to_string(m.cell_w) + "\" height=\"" +
                 std::to_string(m.cell_h) + std::string("\" fill=\"") + ramp(hi > 0 ? v / hi : 0) +
                 "\"><title>" + escape(m.row_label) + " " + std::to_string(r) + ", " + escape(m.col_label) +
                 " " + std::to_string(c) + ": " + tick_label(v, true) + "</title></rect>";
        }
        s += "\n";
    }
    const size_t step = m.cols > 32 ? 8 : 4;
    for (size_t c = 0; c < m.cols; c += step)
        s += std::string("<text x=\"") + std::to_string(left + int(c) * m.cell_w + m.cell_w / 2) + "\" y=\"" +
             std::to_string(top + h + 14) + "\" class=\"xtick\">" + std::to_string(c) + "</text>";
    s += std::string("<text x=\"") + std::to_string(left + w / 2) + "\" y=\"" + std::to_string(top + h + 28) +
         std::string("\" class=\"xlabel\">") + escape(m.col_label) + "</text>";
    s += std::string("<text transform=\"translate(14,") + std::to_string(top + h / 2) +
         std::string(") rotate(-90)\" class=\"ylabel\">") + escape(m.row_label) + "</text>\n";
    const int ly = top + h + 36, lw = std::min(w, 300);
    for (int i = 0; i < 30; ++i)
        s += std::string("<rect x=\"") + std::to_string(left + i * lw / 30) + "\" y=\"" + std::to_string(ly) +
             std::string("\" width=\"") + std::to_string(lw / 30 + 1) + "\" height=\"10\" fill=\"" +
             ramp(i / 29.0) + "\"/>";
    s += std::string("<text x=\"") + std::to_string(left) + "\" y=\"" + std::to_string(ly + 24) +
         "\" class=\"legend\">0</text>";
    s += std::string("<text x=\"") + std::to_string(left + lw) + "\" y=\"" + std::to_string(ly + 24) +
         std::string("\" class=\"legend\" text-anchor=\"end\">") + tick_label(hi, true) + " " +
         escape(m.value_label) + "</text>\n";
    return s + "</svg>\n";
}

}  // namespace moerun::cli::svg
