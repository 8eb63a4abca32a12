// Parses byte sizes as users type them on the command line: "3221225472", "3GiB", "1.5GiB",
// "512MiB", "64k". Units are binary whatever their spelling (K, KB and KiB are all 1024 bytes),
// because device memory is counted in powers of two.
#pragma once

#include <cstddef>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace vramcache {

// InvalidArgument naming the text for anything else: no number, an unknown unit, a negative or
// fractional byte count, a size past 2^63.
absl::StatusOr<std::size_t> ParseByteSize(absl::string_view text);

}  // namespace vramcache
