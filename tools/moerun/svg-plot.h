// Minimal inline-SVG charts for the HTML reports: a line plot with axes, ticks, legend and
// optional dashed series, and a heat map of a row-major matrix. Text is escaped here.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace moerun::cli::svg {

struct Series {
    std::string name, color;
    bool dashed = false;
    std::vector<double> x, y;
};

struct LinePlot {
    std::string title, x_label, y_label;
    std::vector<Series> series;
    std::vector<double> x_ticks;  // empty: the x values of the first series
    double y_min = 0, y_max = 1;  // y axis range; ticks every y_step
    double y_step = 0.1;
    bool y_percent = true;
    int width = 560, height = 340;
};

std::string line_plot(const LinePlot &p);

struct HeatMap {
    std::string title, row_label, col_label, value_label;
    size_t rows = 0, cols = 0;
    std::vector<double> values;  // [rows][cols], >= 0; colour scaled to the largest
    int cell_w = 14, cell_h = 16;
};

std::string heat_map(const HeatMap &h);

// &, <, >, " escaped for HTML text and attributes.
std::string escape(std::string_view s);

}  // namespace moerun::cli::svg
