// Accounting-only backing of the simulated device: addresses with no memory behind them, for
// trace replays far larger than the host's RAM. Addresses come from one process-wide bump
// counter in [2^60, 2^63), a range no x86-64 or AArch64 user pointer can hold, so they are
// never dereferenced by accident, never reused, and never collide between devices.
#include <atomic>

#include "absl/strings/str_format.h"
#include "allocator/device/sim_backing.h"

namespace vramcache {

namespace {

constexpr std::uint64_t kFirstAddress = std::uint64_t{1} << 60;
constexpr std::uint64_t kAddressLimit = std::uint64_t{1} << 63;

std::atomic<std::uint64_t>& NextAddress() {
  static std::atomic<std::uint64_t> next{kFirstAddress};
  return next;
}

class AccountingBacking final : public SimBacking {
 public:
  bool has_memory() const override { return false; }

  absl::StatusOr<DevicePtr> AllocateBlock(std::size_t bytes, std::size_t alignment) override {
    return TakeAddresses(bytes, alignment);
  }
  absl::Status FreeBlock(DevicePtr, std::size_t) override { return absl::OkStatus(); }
  absl::StatusOr<DevicePtr> ReserveRange(std::size_t bytes, std::size_t alignment) override {
    return TakeAddresses(bytes, alignment);
  }
  absl::Status ReleaseRange(DevicePtr, std::size_t) override { return absl::OkStatus(); }
  absl::StatusOr<std::uint64_t> CreateStorage(std::size_t) override { return 0; }
  absl::Status ReleaseStorage(std::uint64_t, std::size_t) override { return absl::OkStatus(); }
  absl::Status MapStorage(DevicePtr, std::size_t, std::uint64_t) override {
    return absl::OkStatus();
  }
  absl::Status UnmapRange(DevicePtr, std::size_t) override { return absl::OkStatus(); }

 private:
  // Each range is followed by an unused gap of `alignment` bytes, so an address just past one
  // allocation never falls inside the next.
  static absl::StatusOr<DevicePtr> TakeAddresses(std::size_t bytes, std::size_t alignment) {
    const std::uint64_t span = (bytes + alignment - 1) / alignment * alignment + alignment;
    std::uint64_t current = NextAddress().load(std::memory_order_relaxed);
    for (;;) {
      const std::uint64_t base = (current + alignment - 1) / alignment * alignment;
      if (span < bytes || base >= kAddressLimit || kAddressLimit - base < span) {
        return absl::ResourceExhaustedError(absl::StrFormat(
            "the accounting device's address space is exhausted (%d bytes requested)", bytes));
      }
      if (NextAddress().compare_exchange_weak(current, base + span, std::memory_order_relaxed)) {
        return base;
      }
    }
  }
};

}  // namespace

std::unique_ptr<SimBacking> MakeAccountingBacking() {
  return std::make_unique<AccountingBacking>();
}

}  // namespace vramcache
