// vramcache-replay --plot: a replay's MemoryTimeline drawn as a standalone SVG (requested,
// allocated and reserved GiB against the event index), written by hand: no plotting library.
#pragma once

#include <string>

#include "absl/strings/string_view.h"
#include "bench/replay/replay.h"

namespace vramcache {

// The whole document, starting with "<svg". The plot area is the <rect class="frame"> whose
// data-y-max-gib / data-x-max-events attributes give the values at its top and right edges
// (bottom and left are 0); each line is a <polyline data-series="requested|allocated|reserved">
// in those pixel coordinates. `title` is plain text (escaped here).
std::string RenderMemoryPlotSvg(const MemoryTimeline& timeline, absl::string_view title);

}  // namespace vramcache
