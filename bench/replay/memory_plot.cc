// The SVG memory timeline: fixed 960x540 canvas, axes with round-number ticks, three polylines
// and a legend.
#include "bench/replay/memory_plot.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace vramcache {
namespace {

constexpr double kWidth = 960;
constexpr double kHeight = 540;
constexpr double kLeft = 80;  // room for the y tick labels and the axis title
constexpr double kRight = 30;
constexpr double kTop = 72;     // the title and the legend
constexpr double kBottom = 60;  // x tick labels and the axis title
constexpr double kPlotWidth = kWidth - kLeft - kRight;
constexpr double kPlotHeight = kHeight - kTop - kBottom;
constexpr double kBytesPerGiB = 1024.0 * 1024.0 * 1024.0;

struct Series {
  const char* name;
  const char* color;
  const std::vector<std::uint64_t>* values;
};

std::string EscapeXml(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
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
        // Control characters are not allowed in XML 1.0 text.
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t' || c == '\n') out.push_back(c);
    }
  }
  return out;
}

// A round tick spacing (1, 2 or 5 times a power of ten) giving about `ticks` intervals.
double NiceStep(double range, int ticks) {
  if (!(range > 0)) return 1;
  const double raw = range / ticks;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  const double normalized = raw / magnitude;
  const double nice = normalized <= 1 ? 1 : normalized <= 2 ? 2 : normalized <= 5 ? 5 : 10;
  return nice * magnitude;
}

// "0", "0.5", "20k", "1.5M": tick labels short enough to sit side by side.
std::string TickLabel(double value, bool compact) {
  if (compact && value >= 1e6) return absl::StrFormat("%gM", value / 1e6);
  if (compact && value >= 1e3) return absl::StrFormat("%gk", value / 1e3);
  return absl::StrFormat("%g", value);
}

}  // namespace

std::string RenderMemoryPlotSvg(const MemoryTimeline& timeline, absl::string_view title) {
  const std::array<Series, 3> series = {{
      {"requested", "#1f77b4", &timeline.requested},
      {"allocated", "#2ca02c", &timeline.allocated},
      {"reserved", "#d62728", &timeline.reserved},
  }};
  std::uint64_t max_bytes = 0;
  for (const Series& s : series) {
    for (const std::uint64_t v : *s.values) max_bytes = std::max(max_bytes, v);
  }
  const double max_gib = static_cast<double>(max_bytes) / kBytesPerGiB;
  // 3% headroom, so a line at the peak never hides under the frame.
  const double y_step = NiceStep(max_gib > 0 ? max_gib : 1, 6);
  const double y_max = std::max(y_step, std::ceil(max_gib * 1.03 / y_step) * y_step);
  const double x_max = static_cast<double>(std::max<std::size_t>(timeline.events, 1));
  const double x_step = NiceStep(x_max, 8);

  const auto px = [&](double events) { return kLeft + events / x_max * kPlotWidth; };
  const auto py = [&](double gib) { return kTop + kPlotHeight - gib / y_max * kPlotHeight; };

  std::string svg = absl::StrFormat(
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" viewBox=\"0 0 %g %g\" "
      "font-family=\"sans-serif\" font-size=\"12\">\n",
      kWidth, kHeight, kWidth, kHeight);
  absl::StrAppend(&svg, "<title>", EscapeXml(title), "</title>\n");
  absl::StrAppendFormat(&svg, "<rect width=\"%g\" height=\"%g\" fill=\"white\"/>\n", kWidth,
                        kHeight);
  absl::StrAppendFormat(
      &svg, "<text x=\"%g\" y=\"26\" text-anchor=\"middle\" font-size=\"15\">%s</text>\n",
      kWidth / 2, EscapeXml(title));

  // Grid and ticks.
  absl::StrAppend(&svg, "<g class=\"y-axis\" stroke=\"#ddd\">\n");
  for (int i = 0;; ++i) {
    const double value = i * y_step;
    if (value > y_max * (1 + 1e-9)) break;
    const double y = py(value);
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>"
                          "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"end\" stroke=\"none\" "
                          "fill=\"black\">%s</text>\n",
                          kLeft, y, kLeft + kPlotWidth, y, kLeft - 6, y + 4,
                          TickLabel(value, false));
  }
  absl::StrAppend(&svg, "</g>\n<g class=\"x-axis\" stroke=\"#ddd\">\n");
  for (int i = 0;; ++i) {
    const double value = i * x_step;
    if (value > x_max * (1 + 1e-9)) break;
    const double x = px(value);
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\"/>"
                          "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\" stroke=\"none\" "
                          "fill=\"black\">%s</text>\n",
                          x, kTop, x, kTop + kPlotHeight, x, kTop + kPlotHeight + 18,
                          TickLabel(value, true));
  }
  absl::StrAppend(&svg, "</g>\n");
  absl::StrAppendFormat(&svg,
                        "<text x=\"%.2f\" y=\"%.2f\" text-anchor=\"middle\">event index</text>\n",
                        kLeft + kPlotWidth / 2, kHeight - 14);
  absl::StrAppendFormat(&svg,
                        "<text x=\"18\" y=\"%.2f\" text-anchor=\"middle\" "
                        "transform=\"rotate(-90 18 %.2f)\">GiB</text>\n",
                        kTop + kPlotHeight / 2, kTop + kPlotHeight / 2);
  absl::StrAppendFormat(&svg,
                        "<rect class=\"frame\" x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" "
                        "fill=\"none\" stroke=\"black\" data-y-max-gib=\"%.17g\" "
                        "data-x-max-events=\"%.17g\"/>\n",
                        kLeft, kTop, kPlotWidth, kPlotHeight, y_max, x_max);

  // Reserved first, requested last: the lowest line is drawn on top.
  const double bucket = static_cast<double>(timeline.events_per_bucket);
  for (auto it = series.rbegin(); it != series.rend(); ++it) {
    absl::StrAppendFormat(&svg,
                          "<polyline data-series=\"%s\" fill=\"none\" stroke=\"%s\" "
                          "stroke-width=\"1.5\" stroke-linejoin=\"round\" points=\"",
                          it->name, it->color);
    const std::vector<std::uint64_t>& values = *it->values;
    for (std::size_t i = 0; i < values.size(); ++i) {
      absl::StrAppendFormat(&svg, "%s%.2f,%.2f", i == 0 ? "" : " ",
                            px(static_cast<double>(i) * bucket),
                            py(static_cast<double>(values[i]) / kBytesPerGiB));
    }
    absl::StrAppend(&svg, "\"/>\n");
  }

  // Legend: one row between the title and the plot, centred.
  constexpr double kLegendItem = 110;
  const double legend_x = kWidth / 2 - kLegendItem * static_cast<double>(series.size()) / 2;
  constexpr double kLegendY = 52;
  absl::StrAppend(&svg, "<g class=\"legend\">\n");
  for (std::size_t i = 0; i < series.size(); ++i) {
    const double x = legend_x + kLegendItem * static_cast<double>(i);
    absl::StrAppendFormat(&svg,
                          "<line x1=\"%.2f\" y1=\"%.2f\" x2=\"%.2f\" y2=\"%.2f\" stroke=\"%s\" "
                          "stroke-width=\"3\"/><text x=\"%.2f\" y=\"%.2f\">%s</text>\n",
                          x, kLegendY - 4, x + 24, kLegendY - 4, series[i].color, x + 30, kLegendY,
                          series[i].name);
  }
  absl::StrAppend(&svg, "</g>\n</svg>\n");
  return svg;
}

}  // namespace vramcache
