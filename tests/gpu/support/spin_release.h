// The host side of the spin kernel's release: a flag in host-mapped memory that the kernel
// polls, set by a timer thread some time after the scenario starts. The allocator may wait on
// the host for the spinning kernel (that is one of the safe answers), so the release cannot wait
// for the test's own thread; and a timer, not a cycle count, keeps the kernel running for the
// same wall time on any GPU clock, under compute-sanitizer too.
#pragma once

#include <chrono>
#include <cstdint>
#include <thread>

namespace vramcache::gpu_scenarios {

class SpinRelease {
 public:
  // Allocates the flag (cudaHostAlloc, mapped) on the current device; ok() says whether it did.
  SpinRelease();
  // Releases the kernel if nobody did, waits for the timer thread, frees the flag.
  ~SpinRelease();
  SpinRelease(const SpinRelease&) = delete;
  SpinRelease& operator=(const SpinRelease&) = delete;

  bool ok() const { return device_flag_ != nullptr; }
  // The address the kernel polls.
  const std::uint32_t* device_flag() const { return device_flag_; }
  // Sets the flag `delay` from now, on a thread of its own (once per SpinRelease).
  void ReleaseAfter(std::chrono::milliseconds delay);
  void ReleaseNow();

 private:
  std::uint32_t* host_flag_ = nullptr;  // written atomically: the timer and the destructor
  const std::uint32_t* device_flag_ = nullptr;
  std::thread timer_;
};

}  // namespace vramcache::gpu_scenarios
