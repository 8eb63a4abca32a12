// "Did you mean": the known name closest to a mistyped one, for the unknown-key error.
#pragma once

#include <cstddef>
#include <optional>
#include <span>
#include <string_view>

namespace vramcache {

// Edits (insert, delete, substitute, or swap two adjacent characters) from `a` to `b`: the
// optimal string alignment distance, so a transposition counts as one typo.
std::size_t EditDistance(std::string_view a, std::string_view b);

// The candidate closest to `typed` (compared in lower case), when it is close enough to be a
// typo: at most a third of `typed`'s length in edits, clamped to 1..3. On a tie, the earlier
// candidate.
std::optional<std::string_view> ClosestName(std::string_view typed,
                                            std::span<const std::string_view> candidates);

}  // namespace vramcache
