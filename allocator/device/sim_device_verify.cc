// SimDevice::VerifyPatterns: the host twin of the canary verify kernel (kernels/canary.h). It
// reads ranges a Fill wrote and reports, per range, the first byte that differs from the pattern
// and how many differ, so the debug modes' checks run and are tested without a GPU.
#include <algorithm>
#include <array>
#include <cstring>

#include "absl/strings/str_format.h"
#include "allocator/device/sim_device.h"

namespace vramcache {
namespace {

// The pattern's bytes from a range's start, one tile long: a multiple of 4 so that every tile
// of a range starts in phase.
constexpr std::size_t kTileBytes = 4096;

std::array<unsigned char, kTileBytes> PatternTile(std::uint32_t pattern) {
  std::array<unsigned char, kTileBytes> tile;
  std::memcpy(tile.data(), &pattern, sizeof(pattern));
  // Doubling copies: a dozen memcpy calls instead of a loop over every byte.
  for (std::size_t filled = sizeof(pattern); filled < tile.size(); filled *= 2) {
    std::memcpy(tile.data() + filled, tile.data(), std::min(filled, tile.size() - filled));
  }
  return tile;
}

// Whole tiles are compared with memcmp; only a tile that differs is walked byte by byte, so an
// intact range costs about what a memcmp of it does.
std::optional<PatternMismatch> Compare(const PatternCheck& check) {
  const std::array<unsigned char, kTileBytes> tile = PatternTile(check.pattern);
  const auto* bytes = reinterpret_cast<const unsigned char*>(check.ptr);
  std::optional<PatternMismatch> mismatch;
  for (std::size_t done = 0; done < check.bytes;) {
    const std::size_t n = std::min(tile.size(), check.bytes - done);
    if (std::memcmp(bytes + done, tile.data(), n) != 0) {
      for (std::size_t i = 0; i < n; ++i) {
        if (bytes[done + i] == tile[i]) continue;
        if (!mismatch.has_value()) {
          mismatch = PatternMismatch{done + i, bytes[done + i], tile[i], 0};
        }
        ++mismatch->differing_bytes;
      }
    }
    done += n;
  }
  return mismatch;
}

}  // namespace

absl::StatusOr<std::vector<std::optional<PatternMismatch>>> SimDevice::VerifyPatterns(
    const std::vector<PatternCheck>& checks, StreamHandle stream) {
  MutexLock lock(&mu_);
  if (absl::Status s = Enter(SimOp::kFill); !s.ok()) return s;
  // The GPU synchronizes the stream to bring the answer back, which global capture forbids.
  CheckStream("VerifyPatterns", stream);
  if (absl::Status s = CheckNoCapture("VerifyPatterns"); !s.ok()) return s;
  for (std::size_t i = 0; i < checks.size(); ++i) {
    if (checks[i].bytes == 0) continue;
    if (absl::Status s = CheckAccessible("VerifyPatterns", checks[i].ptr, checks[i].bytes);
        !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrFormat("%s (check %d of %d)", s.message(), i, checks.size()));
    }
  }
  streams_.CompleteStream(stream);
  std::vector<std::optional<PatternMismatch>> results(checks.size());
  if (!backing_->has_memory()) return results;
  for (std::size_t i = 0; i < checks.size(); ++i) results[i] = Compare(checks[i]);
  return results;
}

}  // namespace vramcache
