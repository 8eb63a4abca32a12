// What a planned layout could reach on a trace (issue 19 part 3): finds the repeating step of
// an allocation sequence, lays out a pass (or the repeating steps) offline as a Dynamic Storage
// Allocation problem with greedy first-fit heuristics, and counts the 2 MiB pages the layout
// keeps in use at its peak. A measurement tool behind vramcache-replay --plan-bound; the
// allocator is not involved.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "allocator/trace/trace.h"

namespace vramcache {

inline constexpr std::uint64_t kPlanPageBytes = std::uint64_t{2} << 20;  // 2 MiB
inline constexpr std::uint64_t kPlanAlignment = 512;  // every block's size and offset

// One allocation of a planning window: live over events [alloc, free) of the window (indices
// into the trace's events; free is the window's end when it is not freed inside it).
struct PlanBlock {
  std::uint64_t size = 0;  // requested bytes
  std::size_t alloc = 0;
  std::size_t free = 0;
  // The event that allocated it (before `alloc` when the window clipped it).
  std::size_t first_event = 0;
};

inline bool PlanBlocksOverlapInTime(const PlanBlock& a, const PlanBlock& b) {
  return a.alloc < b.free && b.alloc < a.free;
}

// The allocations live in events [begin, end) of `trace`, clipped to the window: one live when
// the window opens starts at `begin`, one still live at its end ends at `end`. Zero-byte
// allocations are left out (they take no memory).
std::vector<PlanBlock> PlanBlocksOf(const Trace& trace, std::size_t begin, std::size_t end);

// The repeating step of a trace's sequence of (kind, size) events: the period p whose longest
// run of events equal to the event p later covers the most events (run + p), the shortest p on
// a tie. `copies` is how many whole periods that stretch holds; found when at least 2.
struct StepInfo {
  bool found = false;
  std::size_t period = 0;  // events in one step
  std::size_t start = 0;   // first event of the first copy
  std::size_t copies = 0;
  std::size_t covered = 0;  // events in the periodic stretch (>= copies * period)
};
StepInfo DetectStep(const Trace& trace);

enum class PlanOrder {
  kSizeDescending,      // largest first, ties by earlier allocation
  kLifetimeDescending,  // longest-lived first
  kAreaDescending,      // size x lifetime, largest first
  kAllocationOrder,     // as the trace allocates them (what an online first fit sees)
};
const char* PlanOrderName(PlanOrder order);

inline constexpr std::uint64_t kUnpinned = ~std::uint64_t{0};

struct PlanOptions {
  PlanOrder order = PlanOrder::kSizeDescending;
  // Blocks of at least one page start on a page boundary.
  bool page_align_large = false;
  // When set (one entry per block): blocks whose entry is not kUnpinned keep that offset and are
  // placed before all others.
  const std::vector<std::uint64_t>* pinned = nullptr;
};

// Offsets for `blocks` (each a multiple of kPlanAlignment; sizes rounded up to it): blocks in
// the given order, each at the lowest offset where it overlaps in address no block already
// placed that overlaps it in time.
std::vector<std::uint64_t> PlanFirstFit(const std::vector<PlanBlock>& blocks,
                                        const PlanOptions& options);

// Size as laid out: rounded up to kPlanAlignment.
inline std::uint64_t PlanSize(std::uint64_t size) {
  return (size + kPlanAlignment - 1) / kPlanAlignment * kPlanAlignment;
}

// The most pages in use at once under `offsets` (a page is in use while a live block touches
// it; the block's laid-out size counts).
std::uint64_t PeakPagesInUse(const std::vector<PlanBlock>& blocks,
                             const std::vector<std::uint64_t>& offsets);

// The largest sum of requested sizes live at once.
std::uint64_t PeakRequestedBytes(const std::vector<PlanBlock>& blocks);
// A lower bound on the pages any layout keeps in use at its peak: the most, over time, of the
// laid-out bytes live at once divided by the page size, rounded up.
std::uint64_t LowerBoundPages(const std::vector<PlanBlock>& blocks);

// OK when no two blocks that overlap in time overlap in address and every offset is aligned.
absl::Status CheckPlanLayout(const std::vector<PlanBlock>& blocks,
                             const std::vector<std::uint64_t>& offsets);

// The best of the heuristics (every order, with and without page alignment) for one window.
struct WindowPlan {
  std::size_t blocks = 0;
  std::uint64_t peak_requested_bytes = 0;
  std::uint64_t lower_bound_pages = 0;
  std::uint64_t plan_pages = 0;
  std::string heuristic;       // the order and alignment that gave plan_pages
  double utilization() const;  // peak requested / (plan pages x 2 MiB)
};
absl::StatusOr<WindowPlan> PlanWindow(const std::vector<PlanBlock>& blocks,
                                      const std::vector<std::uint64_t>* pinned = nullptr);

struct PlanBoundReport {
  std::string trace;
  std::size_t events = 0;
  StepInfo step;
  WindowPlan pass;   // every event of the trace: what a plan of a whole pass reaches
  WindowPlan steps;  // the detected steps' stretch only (empty when no step was found)
  // The same stretch with the blocks live when it opens pinned where an online first fit of the
  // pass (allocation order) put them: only the steps' own blocks are planned.
  WindowPlan steps_pinned;
  // The largest sum of requested sizes live at once before the steps' stretch opens (what the
  // online placement of the first step must serve).
  std::uint64_t before_steps_peak_requested_bytes = 0;
  // The online first fit of the whole pass (allocation order, no alignment to pages).
  std::uint64_t online_first_fit_pages = 0;
  double seconds = 0;
};
absl::StatusOr<PlanBoundReport> PlanBound(const Trace& trace);

// One markdown table, a row per trace.
std::string FormatPlanBoundTable(const std::vector<PlanBoundReport>& reports);

}  // namespace vramcache
