// vramcache-replay --plan-bound: step detection, greedy Dynamic Storage Allocation layouts and
// their page counts (see plan_bound.h).
#include "bench/replay/plan_bound.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <numeric>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace vramcache {
namespace {

constexpr std::size_t kNoBlock = std::numeric_limits<std::size_t>::max();

std::uint64_t AlignUp(std::uint64_t value, std::uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

double MiB(std::uint64_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

std::string DescribeHeuristic(const PlanOptions& options) {
  return absl::StrCat(PlanOrderName(options.order), options.page_align_large ? "+page-align" : "");
}

}  // namespace

const char* PlanOrderName(PlanOrder order) {
  switch (order) {
    case PlanOrder::kSizeDescending:
      return "size";
    case PlanOrder::kLifetimeDescending:
      return "lifetime";
    case PlanOrder::kAreaDescending:
      return "area";
    case PlanOrder::kAllocationOrder:
      return "alloc-order";
  }
  return "?";
}

std::vector<PlanBlock> PlanBlocksOf(const Trace& trace, std::size_t begin, std::size_t end) {
  end = std::min(end, trace.events.size());
  std::vector<PlanBlock> blocks;
  // Per pointer id: the index of its live block in `blocks`, or kNoBlock.
  std::vector<std::size_t> live(trace.pointer_values.size(), kNoBlock);
  for (std::size_t i = 0; i < end; ++i) {
    const TraceEvent& event = trace.events[i];
    if (event.pointer_id >= live.size()) live.resize(event.pointer_id + 1, kNoBlock);
    std::size_t& slot = live[event.pointer_id];
    if (event.kind == TraceEventKind::kAllocate) {
      if (event.size == 0) continue;
      slot = blocks.size();
      blocks.push_back(PlanBlock{event.size, std::max(i, begin), end, i});
    } else if (slot != kNoBlock) {
      blocks[slot].free = i;
      slot = kNoBlock;
    }
  }
  // Blocks freed before the window opened are not in it.
  std::erase_if(blocks, [&](const PlanBlock& block) { return block.free <= begin; });
  return blocks;
}

StepInfo DetectStep(const Trace& trace) {
  const std::size_t n = trace.events.size();
  std::vector<std::uint64_t> tokens(n);
  for (std::size_t i = 0; i < n; ++i) {
    tokens[i] =
        trace.events[i].size * 2 + (trace.events[i].kind == TraceEventKind::kAllocate ? 1 : 0);
  }
  StepInfo best;
  for (std::size_t p = 1; p <= n / 2; ++p) {
    // The longest run of i with tokens[i] == tokens[i + p]: events [i0, i0 + run + p) repeat
    // with period p.
    std::size_t run = 0;
    std::size_t best_run = 0;
    std::size_t best_end = 0;
    const std::uint64_t* a = tokens.data();
    const std::uint64_t* b = tokens.data() + p;
    for (std::size_t i = 0; i + p < n; ++i) {
      run = a[i] == b[i] ? run + 1 : 0;
      if (run > best_run) {
        best_run = run;
        best_end = i + 1;
      }
    }
    const std::size_t covered = best_run + p;
    if (best_run >= p && covered > best.covered) {
      best.found = true;
      best.period = p;
      best.start = best_end - best_run;
      best.copies = covered / p;
      best.covered = covered;
    }
  }
  return best;
}

std::vector<std::uint64_t> PlanFirstFit(const std::vector<PlanBlock>& blocks,
                                        const PlanOptions& options) {
  const std::size_t n = blocks.size();
  std::vector<std::size_t> order(n);
  std::iota(order.begin(), order.end(), std::size_t{0});
  const auto lifetime = [&](std::size_t i) { return blocks[i].free - blocks[i].alloc; };
  const auto by = [&](auto key) {
    std::stable_sort(order.begin(), order.end(),
                     [&](std::size_t x, std::size_t y) { return key(x) > key(y); });
  };
  switch (options.order) {
    case PlanOrder::kSizeDescending:
      by([&](std::size_t i) { return PlanSize(blocks[i].size); });
      break;
    case PlanOrder::kLifetimeDescending:
      by(lifetime);
      break;
    case PlanOrder::kAreaDescending:
      by([&](std::size_t i) {
        return static_cast<double>(PlanSize(blocks[i].size)) * static_cast<double>(lifetime(i));
      });
      break;
    case PlanOrder::kAllocationOrder:
      break;  // blocks come in allocation order
  }
  std::vector<std::uint64_t> offsets(n, 0);
  // The placed blocks, struct of arrays so the time-overlap scan stays in cache.
  std::vector<std::size_t> placed_alloc;
  std::vector<std::size_t> placed_free;
  std::vector<std::uint64_t> placed_begin;
  std::vector<std::uint64_t> placed_end;
  placed_alloc.reserve(n);
  placed_free.reserve(n);
  placed_begin.reserve(n);
  placed_end.reserve(n);
  if (options.pinned != nullptr) {
    // Pinned blocks first, at their offsets; the others keep their relative order.
    const std::vector<std::uint64_t>& pinned = *options.pinned;
    std::stable_partition(order.begin(), order.end(),
                          [&](std::size_t i) { return pinned[i] != kUnpinned; });
  }
  std::vector<std::pair<std::uint64_t, std::uint64_t>> conflicts;
  for (const std::size_t index : order) {
    const PlanBlock& block = blocks[index];
    const std::uint64_t size = PlanSize(block.size);
    const std::uint64_t alignment =
        options.page_align_large && size >= kPlanPageBytes ? kPlanPageBytes : kPlanAlignment;
    if (options.pinned != nullptr && (*options.pinned)[index] != kUnpinned) {
      offsets[index] = (*options.pinned)[index];
      placed_alloc.push_back(block.alloc);
      placed_free.push_back(block.free);
      placed_begin.push_back(offsets[index]);
      placed_end.push_back(offsets[index] + size);
      continue;
    }
    conflicts.clear();
    for (std::size_t j = 0; j < placed_alloc.size(); ++j) {
      if (placed_alloc[j] < block.free && block.alloc < placed_free[j]) {
        conflicts.emplace_back(placed_begin[j], placed_end[j]);
      }
    }
    std::sort(conflicts.begin(), conflicts.end());
    std::uint64_t offset = 0;
    for (const auto& [begin, end] : conflicts) {
      if (AlignUp(offset, alignment) + size <= begin) break;
      offset = std::max(offset, end);
    }
    offset = AlignUp(offset, alignment);
    offsets[index] = offset;
    placed_alloc.push_back(block.alloc);
    placed_free.push_back(block.free);
    placed_begin.push_back(offset);
    placed_end.push_back(offset + size);
  }
  return offsets;
}

std::uint64_t PeakPagesInUse(const std::vector<PlanBlock>& blocks,
                             const std::vector<std::uint64_t>& offsets) {
  // (time, +1 for an allocation / -1 for a free, block): frees at a time before allocations.
  struct Change {
    std::size_t time;
    int delta;
    std::size_t block;
  };
  std::vector<Change> changes;
  changes.reserve(blocks.size() * 2);
  std::uint64_t extent = 0;
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    changes.push_back(Change{blocks[i].alloc, +1, i});
    changes.push_back(Change{blocks[i].free, -1, i});
    extent = std::max(extent, offsets[i] + PlanSize(blocks[i].size));
  }
  std::sort(changes.begin(), changes.end(), [](const Change& a, const Change& b) {
    return a.time != b.time ? a.time < b.time : a.delta < b.delta;
  });
  std::vector<std::uint32_t> users(extent / kPlanPageBytes + 1, 0);
  std::uint64_t in_use = 0;
  std::uint64_t peak = 0;
  for (const Change& change : changes) {
    const std::uint64_t size = PlanSize(blocks[change.block].size);
    const std::uint64_t first = offsets[change.block] / kPlanPageBytes;
    const std::uint64_t last = (offsets[change.block] + size - 1) / kPlanPageBytes;
    for (std::uint64_t page = first; page <= last; ++page) {
      if (change.delta > 0) {
        if (users[page]++ == 0) ++in_use;
      } else {
        if (--users[page] == 0) --in_use;
      }
    }
    peak = std::max(peak, in_use);
  }
  return peak;
}

namespace {

// The most, over time, of the sum of `size_of(block)` over live blocks.
template <typename SizeOf>
std::uint64_t PeakLive(const std::vector<PlanBlock>& blocks, SizeOf size_of) {
  std::vector<std::pair<std::size_t, std::int64_t>> changes;
  changes.reserve(blocks.size() * 2);
  for (const PlanBlock& block : blocks) {
    const auto size = static_cast<std::int64_t>(size_of(block));
    changes.emplace_back(block.alloc, size);
    changes.emplace_back(block.free, -size);
  }
  // At one time, frees (negative) before allocations.
  std::sort(changes.begin(), changes.end());
  std::int64_t live = 0;
  std::int64_t peak = 0;
  for (const auto& [time, delta] : changes) {
    live += delta;
    peak = std::max(peak, live);
  }
  return static_cast<std::uint64_t>(peak);
}

}  // namespace

std::uint64_t PeakRequestedBytes(const std::vector<PlanBlock>& blocks) {
  return PeakLive(blocks, [](const PlanBlock& block) { return block.size; });
}

std::uint64_t LowerBoundPages(const std::vector<PlanBlock>& blocks) {
  const std::uint64_t bytes =
      PeakLive(blocks, [](const PlanBlock& block) { return PlanSize(block.size); });
  return (bytes + kPlanPageBytes - 1) / kPlanPageBytes;
}

absl::Status CheckPlanLayout(const std::vector<PlanBlock>& blocks,
                             const std::vector<std::uint64_t>& offsets) {
  if (offsets.size() != blocks.size()) {
    return absl::InternalError("plan: one offset per block expected");
  }
  // Sweep in time; at each allocation compare against the blocks live then.
  std::vector<std::size_t> order(blocks.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(),
            [&](std::size_t a, std::size_t b) { return blocks[a].alloc < blocks[b].alloc; });
  std::vector<std::size_t> live;
  for (const std::size_t i : order) {
    if (offsets[i] % kPlanAlignment != 0) {
      return absl::InternalError(absl::StrCat("plan: block ", i, " is not aligned"));
    }
    std::erase_if(live, [&](std::size_t j) { return blocks[j].free <= blocks[i].alloc; });
    const std::uint64_t begin = offsets[i];
    const std::uint64_t end = begin + PlanSize(blocks[i].size);
    for (const std::size_t j : live) {
      if (offsets[j] < end && begin < offsets[j] + PlanSize(blocks[j].size)) {
        return absl::InternalError(
            absl::StrCat("plan: blocks ", j, " and ", i, " overlap in time and address"));
      }
    }
    live.push_back(i);
  }
  return absl::OkStatus();
}

double WindowPlan::utilization() const {
  if (plan_pages == 0) return 0;
  return static_cast<double>(peak_requested_bytes) /
         static_cast<double>(plan_pages * kPlanPageBytes);
}

absl::StatusOr<WindowPlan> PlanWindow(const std::vector<PlanBlock>& blocks,
                                      const std::vector<std::uint64_t>* pinned) {
  WindowPlan plan;
  plan.blocks = blocks.size();
  plan.peak_requested_bytes = PeakRequestedBytes(blocks);
  plan.lower_bound_pages = LowerBoundPages(blocks);
  plan.plan_pages = std::numeric_limits<std::uint64_t>::max();
  for (const PlanOrder order : {PlanOrder::kSizeDescending, PlanOrder::kLifetimeDescending,
                                PlanOrder::kAreaDescending, PlanOrder::kAllocationOrder}) {
    for (const bool page_align : {false, true}) {
      const PlanOptions options{order, page_align, pinned};
      const std::vector<std::uint64_t> offsets = PlanFirstFit(blocks, options);
      if (absl::Status s = CheckPlanLayout(blocks, offsets); !s.ok()) return s;
      const std::uint64_t pages = PeakPagesInUse(blocks, offsets);
      if (pages < plan.plan_pages) {
        plan.plan_pages = pages;
        plan.heuristic = DescribeHeuristic(options);
      }
    }
  }
  if (blocks.empty()) plan.plan_pages = 0;
  return plan;
}

absl::StatusOr<PlanBoundReport> PlanBound(const Trace& trace) {
  const auto start = std::chrono::steady_clock::now();
  PlanBoundReport report;
  report.trace = trace.source;
  report.events = trace.events.size();
  report.step = DetectStep(trace);
  const std::vector<PlanBlock> pass_blocks = PlanBlocksOf(trace, 0, trace.events.size());
  absl::StatusOr<WindowPlan> pass = PlanWindow(pass_blocks);
  if (!pass.ok()) return pass.status();
  report.pass = *pass;
  const std::vector<std::uint64_t> online =
      PlanFirstFit(pass_blocks, {PlanOrder::kAllocationOrder, false});
  report.online_first_fit_pages = PeakPagesInUse(pass_blocks, online);
  if (report.step.found) {
    const std::size_t begin = report.step.start;
    report.before_steps_peak_requested_bytes = PeakRequestedBytes(PlanBlocksOf(trace, 0, begin));
    const std::vector<PlanBlock> blocks =
        PlanBlocksOf(trace, begin, begin + report.step.copies * report.step.period);
    absl::StatusOr<WindowPlan> steps = PlanWindow(blocks);
    if (!steps.ok()) return steps.status();
    report.steps = *steps;
    // Blocks allocated before the stretch keep the online first fit's offsets.
    std::vector<std::uint64_t> online_by_event(trace.events.size(), kUnpinned);
    for (std::size_t i = 0; i < pass_blocks.size(); ++i) {
      online_by_event[pass_blocks[i].first_event] = online[i];
    }
    std::vector<std::uint64_t> pinned(blocks.size(), kUnpinned);
    for (std::size_t i = 0; i < blocks.size(); ++i) {
      if (blocks[i].first_event < begin) pinned[i] = online_by_event[blocks[i].first_event];
    }
    absl::StatusOr<WindowPlan> steps_pinned = PlanWindow(blocks, &pinned);
    if (!steps_pinned.ok()) return steps_pinned.status();
    report.steps_pinned = *steps_pinned;
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return report;
}

std::string FormatPlanBoundTable(const std::vector<PlanBoundReport>& reports) {
  std::string out =
      "| trace | events | step: period x copies (from event) | peak requested MiB | lower "
      "bound pages | online first fit: pages (utilization) | pass plan: pages | utilization | "
      "heuristic | before the steps: peak requested MiB | steps: peak requested MiB | lower bound "
      "pages | plan pages (utilization) | "
      "carried blocks pinned: plan pages (utilization) | seconds |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  const auto utilization = [](std::uint64_t requested, std::uint64_t pages) {
    return pages == 0
               ? 0.0
               : static_cast<double>(requested) / static_cast<double>(pages * kPlanPageBytes);
  };
  for (const PlanBoundReport& r : reports) {
    std::string name = r.trace.substr(r.trace.find_last_of('/') + 1);
    if (name.ends_with(".csv")) name.resize(name.size() - 4);
    const std::string step =
        r.step.found ? absl::StrFormat("%d x %d (%d)", r.step.period, r.step.copies, r.step.start)
                     : std::string("none");
    absl::StrAppendFormat(&out, "| %s | %d | %s | %.1f | %d | %d (%.4f) | %d | %.4f | %s |", name,
                          r.events, step, MiB(r.pass.peak_requested_bytes),
                          r.pass.lower_bound_pages, r.online_first_fit_pages,
                          utilization(r.pass.peak_requested_bytes, r.online_first_fit_pages),
                          r.pass.plan_pages, r.pass.utilization(), r.pass.heuristic);
    if (r.step.found) {
      absl::StrAppendFormat(&out, " %.1f | %.1f | %d | %d (%.4f) | %d (%.4f) |",
                            MiB(r.before_steps_peak_requested_bytes),
                            MiB(r.steps.peak_requested_bytes), r.steps.lower_bound_pages,
                            r.steps.plan_pages, r.steps.utilization(), r.steps_pinned.plan_pages,
                            r.steps_pinned.utilization());
    } else {
      absl::StrAppend(&out, " - | - | - | - | - |");
    }
    absl::StrAppendFormat(&out, " %.1f |\n", r.seconds);
  }
  return out;
}

}  // namespace vramcache
