// Host-memory backing of the simulated device. Physical chunks are slices of one memfd, so
// mapping a chunk at a new address shows the same bytes (MAP_SHARED) and releasing it punches
// a hole that gives the RAM back. Reserved ranges are PROT_NONE anonymous mappings that mapped
// slices replace and unmapping restores; nothing costs RAM until it is written.
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/str_format.h"
#include "allocator/device/sim_backing.h"

namespace vramcache {

namespace {

std::size_t PageSize() {
  static const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

std::size_t RoundUp(std::size_t value, std::size_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

long MaxMapCount() {
  std::ifstream in("/proc/sys/vm/max_map_count");
  long count = -1;
  in >> count;
  return in ? count : -1;
}

constexpr int kReservedFlags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;

// mmap `total` bytes and trim them to `bytes` starting at an `alignment` boundary.
absl::StatusOr<DevicePtr> MapAligned(std::size_t bytes, std::size_t alignment, int prot,
                                     absl::string_view what) {
  const std::size_t length = RoundUp(bytes, PageSize());
  const std::size_t total = length + alignment;
  if (total < length)
    return absl::ResourceExhaustedError(absl::StrFormat("%s: size overflows", what));
  void* raw = mmap(nullptr, total, prot, kReservedFlags, -1, 0);
  if (raw == MAP_FAILED) return HostMappingError(what, errno);
  const auto start = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t aligned = RoundUp(start, alignment);
  if (aligned > start) munmap(raw, aligned - start);
  const std::uintptr_t end = start + total;
  if (end > aligned + length)
    munmap(reinterpret_cast<void*>(aligned + length), end - aligned - length);
  return aligned;
}

class HostMemoryBacking final : public SimBacking {
 public:
  explicit HostMemoryBacking(std::size_t capacity) : initial_file_bytes_(capacity) {}
  ~HostMemoryBacking() override {
    if (memfd_ >= 0) close(memfd_);
  }

  bool has_memory() const override { return true; }

  absl::StatusOr<DevicePtr> AllocateBlock(std::size_t bytes, std::size_t alignment) override {
    return MapAligned(bytes, std::max(alignment, PageSize()), PROT_READ | PROT_WRITE,
                      "anonymous mmap for the allocation");
  }

  absl::Status FreeBlock(DevicePtr base, std::size_t bytes) override {
    return Unmap(base, bytes, "munmap of the allocation");
  }

  absl::StatusOr<DevicePtr> ReserveRange(std::size_t bytes, std::size_t alignment) override {
    return MapAligned(bytes, std::max(alignment, PageSize()), PROT_NONE,
                      "PROT_NONE mmap for the reservation");
  }

  absl::Status ReleaseRange(DevicePtr base, std::size_t bytes) override {
    return Unmap(base, bytes, "munmap of the reservation");
  }

  absl::StatusOr<std::uint64_t> CreateStorage(std::size_t bytes) override {
    if (absl::Status s = OpenFile(); !s.ok()) return s;
    auto best = free_by_size_.lower_bound({bytes, 0});
    if (best != free_by_size_.end()) {
      const auto [size, offset] = *best;
      free_by_size_.erase(best);
      free_by_offset_.erase(offset);
      if (size > bytes) AddFree(offset + bytes, size - bytes);
      return offset;
    }
    // No free slice fits: take it from the end, growing the (sparse) file if needed.
    const std::uint64_t offset = end_;
    if (offset + bytes > file_bytes_) {
      if (ftruncate(memfd_, static_cast<off_t>(offset + bytes)) != 0) {
        return absl::InternalError(absl::StrFormat("ftruncate of the chunk memfd to %d bytes: %s",
                                                   offset + bytes, std::strerror(errno)));
      }
      file_bytes_ = offset + bytes;
    }
    end_ = offset + bytes;
    return offset;
  }

  absl::Status ReleaseStorage(std::uint64_t location, std::size_t bytes) override {
    if (fallocate(memfd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(location),
                  static_cast<off_t>(bytes)) != 0) {
      return absl::InternalError(absl::StrFormat(
          "fallocate(PUNCH_HOLE) of the chunk's %d bytes: %s", bytes, std::strerror(errno)));
    }
    std::uint64_t offset = location;
    std::size_t size = bytes;
    // Coalesce with the neighbours so large chunks fit again after small ones go.
    if (auto next = free_by_offset_.find(offset + size); next != free_by_offset_.end()) {
      size += next->second;
      RemoveFree(next->first);
    }
    if (auto prev = free_by_offset_.lower_bound(offset); prev != free_by_offset_.begin()) {
      --prev;
      if (prev->first + prev->second == offset) {
        offset = prev->first;
        size += prev->second;
        RemoveFree(offset);
      }
    }
    if (offset + size == end_) {
      end_ = offset;
    } else {
      AddFree(offset, size);
    }
    return absl::OkStatus();
  }

  absl::Status MapStorage(DevicePtr va, std::size_t bytes, std::uint64_t location) override {
    void* at = reinterpret_cast<void*>(va);
    void* got = mmap(at, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, memfd_,
                     static_cast<off_t>(location));
    if (got == MAP_FAILED) {
      const int error = errno;
      // A failed MAP_FIXED may have removed the reservation underneath: put it back.
      mmap(at, bytes, PROT_NONE, kReservedFlags | MAP_FIXED, -1, 0);
      return HostMappingError("mmap(MAP_FIXED|MAP_SHARED) of the chunk", error);
    }
    return absl::OkStatus();
  }

  absl::Status UnmapRange(DevicePtr va, std::size_t bytes) override {
    // Never munmap: that would give up the reservation, and another mmap could take the hole.
    if (mmap(reinterpret_cast<void*>(va), bytes, PROT_NONE, kReservedFlags | MAP_FIXED, -1, 0) ==
        MAP_FAILED) {
      return HostMappingError("mmap(PROT_NONE) over the unmapped range", errno);
    }
    return absl::OkStatus();
  }

 private:
  absl::Status OpenFile() {
    if (memfd_ >= 0) return absl::OkStatus();
    const int fd = memfd_create("vramcache-sim-chunks", MFD_CLOEXEC);
    if (fd < 0) {
      return absl::InternalError(
          absl::StrFormat("memfd_create for the chunk memory: %s", std::strerror(errno)));
    }
    // Sparse: pages cost nothing until written.
    if (ftruncate(fd, static_cast<off_t>(initial_file_bytes_)) != 0) {
      const int error = errno;
      close(fd);
      return absl::InternalError(absl::StrFormat("ftruncate of the chunk memfd to %d bytes: %s",
                                                 initial_file_bytes_, std::strerror(error)));
    }
    memfd_ = fd;
    file_bytes_ = initial_file_bytes_;
    return absl::OkStatus();
  }

  static absl::Status Unmap(DevicePtr base, std::size_t bytes, absl::string_view what) {
    if (munmap(reinterpret_cast<void*>(base), RoundUp(bytes, PageSize())) != 0) {
      return HostMappingError(what, errno);
    }
    return absl::OkStatus();
  }

  void AddFree(std::uint64_t offset, std::size_t size) {
    free_by_offset_.emplace(offset, size);
    free_by_size_.emplace(size, offset);
  }
  void RemoveFree(std::uint64_t offset) {
    auto it = free_by_offset_.find(offset);
    free_by_size_.erase({it->second, offset});
    free_by_offset_.erase(it);
  }

  const std::size_t initial_file_bytes_;
  int memfd_ = -1;
  std::uint64_t file_bytes_ = 0;
  std::uint64_t end_ = 0;  // slices at or past this offset were never handed out or came back
  std::map<std::uint64_t, std::size_t> free_by_offset_;
  std::set<std::pair<std::size_t, std::uint64_t>> free_by_size_;  // best fit
};

}  // namespace

std::unique_ptr<SimBacking> MakeHostMemoryBacking(std::size_t capacity) {
  return std::make_unique<HostMemoryBacking>(capacity);
}

absl::Status HostMappingError(absl::string_view what, int error_number) {
  if (error_number == ENOMEM) {
    const long limit = MaxMapCount();
    return absl::ResourceExhaustedError(absl::StrFormat(
        "%s failed: %s. The process has likely hit Linux's limit on memory mappings "
        "(vm.max_map_count = %s; each mapped chunk can cost two, so about %s chunks can be "
        "mapped at once; see `sysctl vm.max_map_count`), or run out of address space",
        what, std::strerror(error_number), limit < 0 ? "unknown" : absl::StrCat(limit),
        limit < 0 ? "half that many" : absl::StrCat(limit / 2)));
  }
  return absl::InternalError(absl::StrFormat("%s failed: %s", what, std::strerror(error_number)));
}

}  // namespace vramcache
