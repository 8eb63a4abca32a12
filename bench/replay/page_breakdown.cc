// --page-breakdown (page_breakdown.h): a replay with a heap snapshot after every allocation.
#include "bench/replay/page_breakdown.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "allocator/core/caching_allocator.h"
#include "allocator/core/clock.h"

namespace vramcache {
namespace {

constexpr double kBytesPerMiB = 1024.0 * 1024.0;

struct Moment {
  std::size_t pages = 0;
  std::size_t small_pages = 0;
  std::vector<std::uint64_t> in_use;  // page numbers (address / granularity), sorted
};

// The pages touched by blocks that hold pages (everything but free blocks).
Moment PagesInUse(const std::vector<SegmentInfo>& snapshot, std::size_t granularity) {
  Moment moment;
  for (const SegmentInfo& segment : snapshot) {
    std::uint64_t last = UINT64_MAX;
    for (const BlockInfo& block : segment.blocks) {
      if (block.state == BlockState::kFree || block.size == 0) continue;
      std::uint64_t first = block.addr / granularity;
      const std::uint64_t end = (block.addr + block.size - 1) / granularity;
      if (first == last) ++first;  // shared with the previous block in use
      for (std::uint64_t page = first; page <= end; ++page) {
        moment.in_use.push_back(page);
        if (segment.small) ++moment.small_pages;
      }
      last = end;
    }
  }
  std::sort(moment.in_use.begin(), moment.in_use.end());
  moment.in_use.erase(std::unique(moment.in_use.begin(), moment.in_use.end()), moment.in_use.end());
  moment.pages = moment.in_use.size();
  return moment;
}

bool InUse(const Moment& moment, std::uint64_t page) {
  return std::binary_search(moment.in_use.begin(), moment.in_use.end(), page);
}

void Describe(const std::vector<SegmentInfo>& snapshot, const Moment& moment,
              std::size_t granularity, PageBreakdown* out) {
  out->rounding = 0;
  out->small_rounding = 0;
  out->held_not_allocated = 0;
  out->large_hole_bytes = out->small_hole_bytes = 0;
  out->large_holes = out->small_holes = 0;
  out->large_edge_bytes = 0;
  out->holes.clear();
  for (const SegmentInfo& segment : snapshot) {
    for (std::size_t i = 0; i < segment.blocks.size(); ++i) {
      const BlockInfo& block = segment.blocks[i];
      if (block.state == BlockState::kAllocated) {
        out->rounding += block.size - block.requested;
        if (segment.small) out->small_rounding += block.size - block.requested;
        continue;
      }
      if (block.state != BlockState::kFree) {
        out->held_not_allocated += block.size;
        continue;
      }
      if (block.size == 0) continue;
      // Only a free block's end pages can be in use (its inner pages touch nothing else).
      const DevicePtr end = block.addr + block.size;
      const std::uint64_t first_page = block.addr / granularity;
      const std::uint64_t last_page = (end - 1) / granularity;
      std::size_t in_use = 0;
      if (InUse(moment, first_page)) {
        in_use += std::min<DevicePtr>(end, (first_page + 1) * granularity) - block.addr;
      }
      if (last_page != first_page && InUse(moment, last_page)) {
        in_use += end - last_page * granularity;
      }
      if (in_use == 0) continue;
      PageBreakdownHole hole;
      hole.size = block.size;
      hole.in_use_bytes = in_use;
      hole.small = segment.small;
      hole.edge = block.addr == segment.base || end == segment.base + segment.size;
      if (!segment.small && hole.edge) out->large_edge_bytes += in_use;
      if (i > 0 && segment.blocks[i - 1].state != BlockState::kFree) {
        hole.left_block = segment.blocks[i - 1].size;
      }
      if (i + 1 < segment.blocks.size() && segment.blocks[i + 1].state != BlockState::kFree) {
        hole.right_block = segment.blocks[i + 1].size;
      }
      (segment.small ? out->small_hole_bytes : out->large_hole_bytes) += in_use;
      ++(segment.small ? out->small_holes : out->large_holes);
      out->holes.push_back(hole);
    }
  }
  std::sort(out->holes.begin(), out->holes.end(),
            [](const PageBreakdownHole& a, const PageBreakdownHole& b) {
              return a.in_use_bytes > b.in_use_bytes;
            });
}

}  // namespace

absl::StatusOr<PageBreakdown> MeasurePageBreakdown(const Trace& trace,
                                                   const ReplayOptions& options) {
  absl::StatusOr<std::unique_ptr<Device>> device =
      options.open_device(options.config, options.capacity);
  if (!device.ok()) return device.status();
  TickClock clock;
  CachingAllocator allocator(device->get(), options.config, &clock);
  PageBreakdown result;
  result.trace = trace.source;
  result.granularity = (*device)->Capabilities().granularity;
  const std::size_t granularity = result.granularity;
  std::vector<void*> live(trace.pointer_values.size(), nullptr);
  std::vector<std::uint64_t> live_size(trace.pointer_values.size(), 0);
  std::uint64_t requested = 0;
  for (int pass = 0; pass < options.repeat; ++pass) {
    for (std::size_t i = 0; i < trace.events.size(); ++i) {
      const TraceEvent& event = trace.events[i];
      if (event.kind != TraceEventKind::kAllocate) {
        requested -= live_size[event.pointer_id];
        if (live[event.pointer_id] != nullptr) {
          if (absl::Status s = allocator.Free(live[event.pointer_id]); !s.ok()) return s;
        }
        live[event.pointer_id] = nullptr;
        live_size[event.pointer_id] = 0;
        continue;
      }
      absl::StatusOr<void*> ptr = allocator.Allocate(event.size, event.stream);
      if (!ptr.ok()) {
        if (absl::IsResourceExhausted(ptr.status())) continue;
        return ptr.status();
      }
      live[event.pointer_id] = *ptr;
      live_size[event.pointer_id] = event.size;
      requested += event.size;
      result.peak_requested_bytes = std::max(result.peak_requested_bytes, requested);
      const std::vector<SegmentInfo> snapshot = allocator.Snapshot();
      Moment moment = PagesInUse(snapshot, granularity);
      if (moment.pages > result.most_pages) {
        result.most_pages = moment.pages;
        result.small_pages = moment.small_pages;
        result.pass = pass + 1;
        result.event = i + 1;
        result.requested_live = requested;
        Describe(snapshot, moment, granularity, &result);
      }
    }
    if (pass + 1 < options.repeat) {
      for (std::size_t id = 0; id < live.size(); ++id) {
        if (live[id] != nullptr) {
          if (absl::Status s = allocator.Free(live[id]); !s.ok()) return s;
        }
        live[id] = nullptr;
        live_size[id] = 0;
      }
      requested = 0;
    }
  }
  result.peak_reserved_bytes =
      static_cast<std::uint64_t>(allocator.GetStats().reserved_bytes.all().peak);
  for (void* ptr : live) {
    if (ptr != nullptr) allocator.Free(ptr).IgnoreError();
  }
  if (absl::Status s = allocator.Shutdown(); !s.ok()) return s;
  return result;
}

std::string FormatPageBreakdowns(const std::vector<PageBreakdown>& breakdowns, int holes_listed) {
  std::string out =
      "| trace | peak requested | pages at the most (when: pass, event) | live then | "
      "rounding (small pool) | held, not allocated | large pool holes (count; at free edges) | "
      "small pool holes "
      "(count) | "
      "small pool pages, MiB | reserved above those pages | pages / peak requested | "
      "peak reserved / peak requested |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|---|\n";
  for (const PageBreakdown& b : breakdowns) {
    const double pages_bytes = static_cast<double>(b.most_pages) * b.granularity;
    const double requested = static_cast<double>(b.peak_requested_bytes);
    absl::StrAppendFormat(
        &out,
        "| %s | %.1f | %.0f (%d, %d) | %.1f | %.1f (%.1f) | %.1f | %.1f (%d; %.1f) | "
        "%.1f (%d) | %.0f | %.0f | "
        "%.4f | %.4f |\n",
        b.trace, requested / kBytesPerMiB, pages_bytes / kBytesPerMiB, b.pass, b.event,
        static_cast<double>(b.requested_live) / kBytesPerMiB,
        static_cast<double>(b.rounding) / kBytesPerMiB,
        static_cast<double>(b.small_rounding) / kBytesPerMiB,
        static_cast<double>(b.held_not_allocated) / kBytesPerMiB,
        static_cast<double>(b.large_hole_bytes) / kBytesPerMiB, b.large_holes,
        static_cast<double>(b.large_edge_bytes) / kBytesPerMiB,
        static_cast<double>(b.small_hole_bytes) / kBytesPerMiB, b.small_holes,
        static_cast<double>(b.small_pages) * b.granularity / kBytesPerMiB,
        (static_cast<double>(b.peak_reserved_bytes) - pages_bytes) / kBytesPerMiB,
        pages_bytes / requested, static_cast<double>(b.peak_reserved_bytes) / requested);
  }
  for (const PageBreakdown& b : breakdowns) {
    if (holes_listed <= 0 || b.holes.empty()) continue;
    absl::StrAppendFormat(&out,
                          "\n%s: largest holes in in-use pages (MiB: in use of hole; "
                          "pool, edge when at a free edge; neighbours in use left / right)\n",
                          b.trace);
    for (std::size_t i = 0; i < b.holes.size() && static_cast<int>(i) < holes_listed; ++i) {
      const PageBreakdownHole& h = b.holes[i];
      absl::StrAppendFormat(&out, "  %.3f of %.3f; %s%s; %.3f / %.3f\n",
                            h.in_use_bytes / kBytesPerMiB, h.size / kBytesPerMiB,
                            h.small ? "small" : "large", h.edge ? ", edge" : "",
                            h.left_block / kBytesPerMiB, h.right_block / kBytesPerMiB);
    }
  }
  return out;
}

}  // namespace vramcache
