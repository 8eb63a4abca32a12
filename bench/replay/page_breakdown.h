// vramcache-replay's --page-breakdown: where the pages go at the moment a virtual-memory replay
// has the most 2 MiB pages in use. Replays a trace (every pass of --repeat) with a snapshot of
// the heap after every allocation; at the snapshot with the most pages touched by blocks that
// hold pages (allocated, cached for reuse, awaiting their stream), those pages less the
// requested bytes live split exactly into blocks larger than their request (rounding), free
// bytes inside in-use pages of each pool (the holes whose end pages a neighbour uses) and
// blocks held but not allocated. Peak reserved less those pages is the chunks held on free
// pages. A diagnostic: slow (one snapshot per allocation), never part of a measurement.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "allocator/trace/trace.h"
#include "bench/replay/replay.h"

namespace vramcache {

struct PageBreakdownHole {
  std::size_t size = 0;          // the free block's bytes (clipped to the mapped run)
  std::size_t in_use_bytes = 0;  // of those, bytes inside pages a block in use touches
  bool small = false;            // small pool
  // The free block continues into pages holding no chunk, or reaches an end of its range: the free
  // edge around a block left alone in free space, rather than a gap between two blocks in use.
  bool edge = false;
  // The neighbours' sizes (blocks holding pages; 0: none in the same mapped run).
  std::size_t left_block = 0;
  std::size_t right_block = 0;
};

struct PageBreakdown {
  std::string trace;
  std::size_t granularity = 0;
  std::uint64_t peak_requested_bytes = 0;
  std::uint64_t peak_reserved_bytes = 0;
  std::size_t most_pages = 0;  // the most pages in use at once
  int pass = 0;                // when (1-based pass, event of the pass)
  std::size_t event = 0;
  std::uint64_t requested_live = 0;      // at that moment
  std::uint64_t rounding = 0;            // allocated blocks' bytes above their request
  std::uint64_t small_rounding = 0;      // of which in the small pool
  std::uint64_t held_not_allocated = 0;  // cached / pending-free / parked blocks
  std::uint64_t large_hole_bytes = 0;    // free bytes in in-use pages, large pool
  std::size_t large_holes = 0;
  // Of large_hole_bytes, those in free blocks that continue into pages holding no chunk (or
  // reach an end of the range): the free edges around blocks left alone in free space, as opposed
  // to gaps between two blocks that both hold the pages around them.
  std::uint64_t large_edge_bytes = 0;
  std::uint64_t small_hole_bytes = 0;
  std::size_t small_holes = 0;
  std::size_t small_pages = 0;  // of most_pages, in the small pool
  // The holes with in-use bytes, most in-use bytes first.
  std::vector<PageBreakdownHole> holes;
};

// `options.config` must run in virtual-memory mode; options.capacity and repeat are honoured.
absl::StatusOr<PageBreakdown> MeasurePageBreakdown(const Trace& trace,
                                                   const ReplayOptions& options);

// One table row per trace (MiB), then each trace's largest holes.
std::string FormatPageBreakdowns(const std::vector<PageBreakdown>& breakdowns, int holes_listed);

}  // namespace vramcache
