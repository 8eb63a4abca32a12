// Formatting of replay results for people (text, table) and programs (JSON).
#include "bench/replay/replay_report.h"

#include <algorithm>
#include <cstdint>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"

namespace vramcache {
namespace {

constexpr double kBytesPerMiB = 1024.0 * 1024.0;

double ToMiB(std::uint64_t bytes) { return static_cast<double>(bytes) / kBytesPerMiB; }

std::string FormatBytes(std::uint64_t bytes) {
  return absl::StrCat(FormatWithCommas(bytes), " B (", FormatMiB(bytes), ")");
}

std::string FormatSimCalls(const PassDeviceCalls& calls) {
  std::vector<std::string> parts;
  for (const auto& [name, count] : calls.sim_calls) {
    parts.push_back(absl::StrCat(JsonQuote(name), ":", count));
  }
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
}

std::string FormatPassJson(const PassDeviceCalls& calls) {
  std::string json = absl::StrFormat(
      "{\"device_alloc_calls\":%d,\"device_free_calls\":%d,\"device_map_calls\":%d,"
      "\"device_unmap_calls\":%d,\"map_calls\":%d,\"unmap_calls\":%d,\"stitches\":%d,"
      "\"device_calls\":%d",
      calls.device_alloc_calls, calls.device_free_calls, calls.map_calls, calls.unmap_calls,
      calls.map_calls, calls.unmap_calls, calls.stitches, calls.total());
  if (!calls.sim_calls.empty())
    absl::StrAppend(&json, ",\"sim_device_calls\":", FormatSimCalls(calls));
  absl::StrAppend(&json, "}");
  return json;
}

// A double as JSON: fixed precision so equal results print equal text.
std::string JsonNumber(double value) { return absl::StrFormat("%.6f", value); }

double MinCapacityRatio(const ReplayReport& report) {
  const std::uint64_t peak = report.result.peak_requested_bytes;
  return peak == 0 ? 0.0
                   : static_cast<double>(report.min_capacity->min_capacity_bytes) /
                         static_cast<double>(peak);
}

std::string CapacityText(const ReplayReport& report) {
  if (report.capacity.has_value()) return FormatBytes(*report.capacity);
  return absl::StrCat(FormatBytes(report.result.device_total_bytes), " (the whole device)");
}

}  // namespace

double ReplayReport::events_per_second() const {
  return wall_seconds > 0 ? static_cast<double>(result.events) / wall_seconds : 0.0;
}

double ReplayReport::replay_events_per_second() const {
  return result.replay_seconds > 0 ? static_cast<double>(result.events) / result.replay_seconds
                                   : 0.0;
}

std::string FormatMiB(std::uint64_t bytes) { return absl::StrFormat("%.1f MiB", ToMiB(bytes)); }

std::string FormatWithCommas(std::uint64_t value) {
  std::string digits = absl::StrCat(value);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string JsonQuote(absl::string_view text) {
  std::string out = "\"";
  for (const char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          absl::StrAppendFormat(&out, "\\u%04x", static_cast<unsigned char>(c));
        } else {
          out.push_back(c);
        }
    }
  }
  out += "\"";
  return out;
}

std::string FormatReportJson(const ReplayReport& report) {
  const ReplayResult& r = report.result;
  const DeviceStats& s = r.stats;
  std::string json = absl::StrCat(
      "{\"trace\":", JsonQuote(report.trace), ",\"conf\":", JsonQuote(report.conf),
      ",\"config\":", JsonQuote(report.config), ",\"device\":", JsonQuote(report.device),
      ",\"device_name\":", JsonQuote(r.device_name),
      ",\"mode\":", JsonQuote(ReplayModeName(r.mode)),
      ",\"mode_requested\":", JsonQuote(report.mode_requested));
  absl::StrAppendFormat(
      &json,
      ",\"capacity_bytes\":%u,\"granularity_bytes\":%u,\"repeat\":%d,\"events\":%u,"
      "\"allocations\":%u,\"frees\":%u,\"failed_allocations\":%u,"
      "\"trace_allocate_failures_skipped\":%u,\"peak_requested_bytes\":%u,"
      "\"peak_allocated_bytes\":%u,\"peak_reserved_bytes\":%u,\"utilization\":%s,"
      "\"device_alloc_calls\":%d,\"device_free_calls\":%d,\"device_map_calls\":%d,"
      "\"device_unmap_calls\":%d,\"num_cache_hits\":%d,\"num_alloc_retries\":%d,"
      "\"num_ooms\":%d,\"num_cross_stream_reuse\":%d,\"num_cache_releases\":%d,"
      "\"num_stitches\":%d,\"map_calls\":%d,\"unmap_calls\":%d,\"stitches\":%d,"
      "\"device_calls\":%d",
      report.capacity.value_or(r.device_total_bytes), r.granularity, report.repeat, r.events,
      r.allocations, r.frees, r.failed_allocations, report.trace_allocate_failures_skipped,
      r.peak_requested_bytes, r.peak_allocated_bytes(), r.peak_reserved_bytes(),
      JsonNumber(r.utilization()), s.num_device_alloc, s.num_device_free, s.num_map_calls,
      s.num_unmap_calls, s.num_cache_hits, s.num_alloc_retries, s.num_ooms,
      s.num_cross_stream_reuse, s.num_cache_releases, s.num_stitches, s.num_map_calls,
      s.num_unmap_calls, s.num_stitches,
      s.num_device_alloc + s.num_device_free + s.num_map_calls + s.num_unmap_calls);
  std::vector<std::string> passes;
  for (const PassDeviceCalls& pass : r.per_pass) passes.push_back(FormatPassJson(pass));
  absl::StrAppend(&json, ",\"per_pass\":[", absl::StrJoin(passes, ","), "]");
  if (report.min_capacity.has_value()) {
    absl::StrAppendFormat(&json,
                          ",\"min_capacity_bytes\":%u,\"min_capacity_to_peak_requested\":%s,"
                          "\"min_capacity_replays\":%d",
                          report.min_capacity->min_capacity_bytes,
                          JsonNumber(MinCapacityRatio(report)), report.min_capacity->replays);
  }
  if (!report.plot_file.empty())
    absl::StrAppend(&json, ",\"plot_file\":", JsonQuote(report.plot_file));
  absl::StrAppend(&json, ",\"stats\":", s.ToJson());
  // The only fields that vary from run to run come last, events_per_second the very last.
  absl::StrAppend(
      &json, ",\"wall_seconds\":", JsonNumber(report.wall_seconds),
      ",\"read_seconds\":", JsonNumber(report.read_seconds),
      ",\"replay_seconds\":", JsonNumber(r.replay_seconds),
      ",\"replay_events_per_second\":", absl::StrFormat("%.0f", report.replay_events_per_second()),
      ",\"events_per_second\":", absl::StrFormat("%.0f", report.events_per_second()), "}");
  return json;
}

std::string FormatReportText(const ReplayReport& report) {
  const ReplayResult& r = report.result;
  const DeviceStats& s = r.stats;
  std::string text;
  const auto line = [&text](absl::string_view label, absl::string_view value) {
    absl::StrAppendFormat(&text, "%-22s %s\n", label, value);
  };
  line("trace", report.trace);
  line("device", absl::StrCat(report.device, " (", r.device_name, "), capacity ",
                              CapacityText(report), ", granularity ", FormatMiB(r.granularity)));
  line("conf", report.conf.empty() ? "(none: defaults)" : report.conf);
  std::string mode = ReplayModeName(r.mode);
  if (report.mode_requested == "auto") {
    absl::StrAppend(&mode, " (vmm:auto)");
  } else if (report.mode_requested != mode) {
    absl::StrAppend(&mode, " (", report.mode_requested,
                    " was asked for; the allocator ran without it)");
  }
  line("mode", mode);
  if (report.repeat > 1) line("passes", absl::StrCat(report.repeat));
  line("events", absl::StrFormat("%s (%s allocations, %s frees)", FormatWithCommas(r.events),
                                 FormatWithCommas(r.allocations), FormatWithCommas(r.frees)));
  std::string failed = FormatWithCommas(r.failed_allocations);
  if (r.failed_allocations > 0) absl::StrAppend(&failed, " (out of memory; replay went on)");
  line("failed allocations", failed);
  if (report.trace_allocate_failures_skipped > 0) {
    line("skipped from the log",
         absl::StrCat(FormatWithCommas(report.trace_allocate_failures_skipped),
                      " \"allocate failure\" lines"));
  }
  // With failed allocations the peak counts only those that succeeded, so it is not what the
  // trace needs (the failed requests were never live).
  line("peak requested", absl::StrCat(FormatBytes(r.peak_requested_bytes),
                                      r.failed_allocations == 0
                                          ? "  the least any allocator needs"
                                          : absl::StrCat("  of the allocations that succeeded (",
                                                         FormatWithCommas(r.failed_allocations),
                                                         " failed and are not counted)")));
  line("peak allocated",
       absl::StrCat(FormatBytes(r.peak_allocated_bytes()), "  requests after rounding"));
  line("peak reserved",
       absl::StrCat(FormatBytes(r.peak_reserved_bytes()), "  taken from the device"));
  line("utilization",
       absl::StrFormat("%.1f %%  (peak requested / peak reserved)", 100.0 * r.utilization()));
  if (static_cast<std::int64_t>(r.peak_requested_bytes) != s.requested_bytes.all().peak) {
    line("WARNING", absl::StrCat("the allocator's requested_bytes peak is ",
                                 FormatWithCommas(s.requested_bytes.all().peak),
                                 " B, not what the trace sums to"));
  }
  std::string calls = absl::StrFormat("%s alloc, %s free", FormatWithCommas(s.num_device_alloc),
                                      FormatWithCommas(s.num_device_free));
  if (s.num_map_calls > 0 || s.num_unmap_calls > 0 || r.mode == ReplayMode::kVmm) {
    absl::StrAppend(&calls, ", ", FormatWithCommas(s.num_map_calls), " map, ",
                    FormatWithCommas(s.num_unmap_calls), " unmap, ",
                    FormatWithCommas(s.num_stitches), " stitches");
  }
  line("device calls", calls);
  if (r.per_pass.size() > 1) {
    std::vector<std::string> passes;
    // Every kind of device call, so that a steady state (all zero after the first pass) shows.
    for (const PassDeviceCalls& pass : r.per_pass) {
      passes.push_back(absl::StrCat(pass.device_alloc_calls, "/", pass.device_free_calls, "/",
                                    pass.map_calls, "/", pass.unmap_calls));
    }
    line("  per pass (alloc/free/map/unmap)", absl::StrJoin(passes, "  "));
  }
  line("cache hits", FormatWithCommas(s.num_cache_hits));
  if (s.num_alloc_retries > 0 || s.num_ooms > 0) {
    line("retries / OOMs",
         absl::StrCat(FormatWithCommas(s.num_alloc_retries), " / ", FormatWithCommas(s.num_ooms)));
  }
  if (report.min_capacity.has_value()) {
    line("min capacity", absl::StrFormat("%s = %.3f x peak requested (%d replays)",
                                         FormatBytes(report.min_capacity->min_capacity_bytes),
                                         MinCapacityRatio(report), report.min_capacity->replays));
  }
  line("wall time", absl::StrFormat("%.4f s (reading the trace %.4f s, replaying it %.4f s)",
                                    report.wall_seconds, report.read_seconds, r.replay_seconds));
  line("throughput",
       absl::StrFormat("%.2f million events/s end to end, %.2f million replaying alone",
                       report.events_per_second() / 1e6, report.replay_events_per_second() / 1e6));
  if (!report.plot_file.empty()) line("plot", report.plot_file);
  return text;
}

std::string FormatReportTable(const std::vector<ReplayReport>& reports) {
  const bool with_min_capacity =
      std::any_of(reports.begin(), reports.end(),
                  [](const ReplayReport& r) { return r.min_capacity.has_value(); });
  std::size_t trace_width = 5;
  for (const ReplayReport& report : reports)
    trace_width = std::max(trace_width, report.trace.size());
  std::string text = absl::StrFormat(
      "%-*s %-8s %10s %7s %12s %12s %12s %7s %9s %9s %8s", trace_width, "trace", "mode", "events",
      "failed", "req MiB", "alloc MiB", "resv MiB", "util", "dev alloc", "dev free", "Mev/s");
  if (with_min_capacity) absl::StrAppendFormat(&text, " %12s", "min cap MiB");
  text += "\n";
  for (const ReplayReport& report : reports) {
    const ReplayResult& r = report.result;
    absl::StrAppendFormat(&text, "%-*s %-8s %10u %7u %12.1f %12.1f %12.1f %6.1f%% %9d %9d %8.2f",
                          trace_width, report.trace, ReplayModeName(r.mode), r.events,
                          r.failed_allocations, ToMiB(r.peak_requested_bytes),
                          ToMiB(r.peak_allocated_bytes()), ToMiB(r.peak_reserved_bytes()),
                          100.0 * r.utilization(), r.stats.num_device_alloc,
                          r.stats.num_device_free, report.events_per_second() / 1e6);
    if (with_min_capacity) {
      if (report.min_capacity.has_value()) {
        absl::StrAppendFormat(&text, " %12.1f", ToMiB(report.min_capacity->min_capacity_bytes));
      } else {
        absl::StrAppendFormat(&text, " %12s", "-");
      }
    }
    text += "\n";
  }
  return text;
}

std::string FormatModeTable(const std::vector<ReplayReport>& reports) {
  const bool with_min_capacity =
      std::any_of(reports.begin(), reports.end(),
                  [](const ReplayReport& r) { return r.min_capacity.has_value(); });
  std::size_t trace_width = 5;
  for (const ReplayReport& report : reports) {
    trace_width = std::max(trace_width, report.trace.size());
  }
  std::string text = absl::StrFormat("%-*s %-8s %7s", trace_width, "trace", "mode", "util");
  if (with_min_capacity) absl::StrAppendFormat(&text, " %8s", "min/req");
  absl::StrAppendFormat(&text, " %8s %8s %8s %8s %8s %10s %8s\n", "alloc", "free", "map", "unmap",
                        "stitches", "replay ms", "Mev/s");
  for (const ReplayReport& report : reports) {
    const ReplayResult& r = report.result;
    const DeviceStats& s = r.stats;
    absl::StrAppendFormat(&text, "%-*s %-8s %6.1f%%", trace_width, report.trace,
                          ReplayModeName(r.mode), 100.0 * r.utilization());
    if (with_min_capacity) {
      if (report.min_capacity.has_value()) {
        absl::StrAppendFormat(&text, " %8.3f", MinCapacityRatio(report));
      } else {
        absl::StrAppendFormat(&text, " %8s", "-");
      }
    }
    absl::StrAppendFormat(&text, " %8d %8d %8d %8d %8d %10.2f %8.2f\n", s.num_device_alloc,
                          s.num_device_free, s.num_map_calls, s.num_unmap_calls, s.num_stitches,
                          1e3 * r.replay_seconds, report.replay_events_per_second() / 1e6);
  }
  return text;
}

}  // namespace vramcache
