// Randomized multi-stream schedules against an oracle that knows, for every freed range, which
// work items (stream, ticket) may still use it. Whenever the allocator hands out a block, the
// new owner's first kernel is submitted and completed on the simulated device, which completes
// exactly what that kernel is ordered after (its stream's earlier work and every event it
// waits on). If any old use of the range is still incomplete then, the block was handed out
// while a use was in flight, and the test fails. Operations: allocate, use, record_stream,
// free, complete work, destroy (and recreate) streams, begin/end graph capture.
#include <map>
#include <random>
#include <vector>

#include "allocator/core/caching_allocator.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"
#include "tests/support/allocator_fixture.h"

namespace vramcache {
namespace {

struct Use {
  StreamHandle stream;
  std::uint64_t ticket;
};

struct LiveAllocation {
  void* ptr;
  std::size_t size;
  StreamHandle stream;
  std::vector<Use> uses;
};

struct Retired {
  std::uintptr_t start;
  std::size_t size;
  std::vector<Use> uses;
};

class StreamOracle : private AllocatorFixture {
 public:
  explicit StreamOracle(std::uint64_t seed, CrossStreamPolicy policy) : rng_(seed) {
    AllocatorSetup setup;
    setup.device.capacity = 256u << 20;  // small: cross-stream borrowing and the ladder get used
    setup.device.completion = SimCompletion::kManual;
    setup.check_invariants = false;
    setup.config.cross_stream = policy;
    Make(setup);
    for (int i = 0; i < 4; ++i) streams_.push_back(device->CreateStream());
  }

  void Run(int steps) {
    for (int step = 0; step < steps; ++step) {
      step_ = step;
      const int op = static_cast<int>(rng_() % 100);
      if (op < 35 || live_.empty()) {
        Allocate();
      } else if (op < 45) {
        UseAgain();
      } else if (op < 55) {
        RecordOnOtherStream();
      } else if (op < 80) {
        Free();
      } else if (op < 92) {
        CompleteSomething();
      } else if (op < 95) {
        DestroyAndRecreateStream();
      } else {
        ToggleCapture();
      }
      if (HasFatalFailure()) return;
      absl::Status invariants = allocator->CheckInvariants();
      ASSERT_TRUE(invariants.ok()) << Where() << invariants;
    }
    if (capturing_) ToggleCapture();
    device->CompleteAll();
    for (const LiveAllocation& a : live_) ASSERT_TRUE(allocator->Free(a.ptr).ok());
    ASSERT_TRUE(allocator->EmptyCache().ok());
    ASSERT_TRUE(Teardown()) << "the leak-checked teardown failed";
  }

 private:
  static bool HasFatalFailure() { return ::testing::Test::HasFatalFailure(); }
  std::string Where() const { return "step " + std::to_string(step_) + ": "; }
  StreamHandle RandomStream() { return streams_[rng_() % streams_.size()]; }

  void Allocate() {
    const StreamHandle stream = RandomStream();
    const std::size_t size = 1 + rng_() % (rng_() % 4 == 0 ? (24u << 20) : (256u << 10));
    absl::StatusOr<void*> p = allocator->Allocate(size, stream);
    if (!p.ok()) {
      ASSERT_TRUE(absl::IsResourceExhausted(p.status())) << Where() << p.status();
      return;
    }
    absl::StatusOr<std::size_t> block = allocator->AllocationSize(*p);
    ASSERT_TRUE(block.ok());
    // The new owner's first kernel: complete it and what it is ordered after.
    const std::uint64_t first_use = device->SubmitWork(stream);
    ASSERT_TRUE(device->CompleteWork(stream, first_use).ok());
    const auto start = reinterpret_cast<std::uintptr_t>(*p);
    for (const Retired& r : retired_) {
      if (r.start >= start + *block || start >= r.start + r.size) continue;
      for (const Use& use : r.uses) {
        ASSERT_TRUE(device->IsWorkComplete(use.ticket))
            << Where() << "block " << *p << " (" << *block << " bytes) handed to stream " << stream
            << " while work " << use.ticket << " on stream " << use.stream << " may still use it";
      }
    }
    live_.push_back({*p, size, stream, {{stream, first_use}}});
  }

  void UseAgain() {
    LiveAllocation& a = live_[rng_() % live_.size()];
    a.uses.push_back({a.stream, device->SubmitWork(a.stream)});
  }

  void RecordOnOtherStream() {
    LiveAllocation& a = live_[rng_() % live_.size()];
    const StreamHandle other = RandomStream();
    ASSERT_TRUE(allocator->RecordStream(a.ptr, other).ok());
    a.uses.push_back({other, device->SubmitWork(other)});
  }

  void Free() {
    const std::size_t index = rng_() % live_.size();
    LiveAllocation a = live_[index];
    live_[index] = live_.back();
    live_.pop_back();
    absl::StatusOr<std::size_t> block = allocator->AllocationSize(a.ptr);
    ASSERT_TRUE(block.ok());
    ASSERT_TRUE(allocator->Free(a.ptr).ok()) << Where();
    retired_.push_back({reinterpret_cast<std::uintptr_t>(a.ptr), *block, a.uses});
  }

  void CompleteSomething() {
    const int choice = static_cast<int>(rng_() % 10);
    if (choice == 0) {
      device->CompleteAll();
    } else {
      device->CompleteStream(RandomStream());
    }
    // Forget retired ranges nobody can still be using.
    std::erase_if(retired_, [&](const Retired& r) {
      for (const Use& use : r.uses) {
        if (!device->IsWorkComplete(use.ticket)) return false;
      }
      return true;
    });
  }

  void DestroyAndRecreateStream() {
    if (capturing_) return;
    const std::size_t index = rng_() % streams_.size();
    const StreamHandle old_stream = streams_[index];
    ASSERT_TRUE(allocator->StreamDestroyed(old_stream).ok());
    ASSERT_TRUE(device->DestroyStream(old_stream).ok());
    streams_[index] = device->CreateStream();  // often the same handle value
    // Live allocations of the old stream keep their uses; the test stops using them there.
    for (LiveAllocation& a : live_) {
      if (a.stream == old_stream) a.stream = streams_[index];
    }
  }

  void ToggleCapture() {
    if (!capturing_) {
      capture_stream_ = RandomStream();
      ++pool_;
      const StreamHandle captured = capture_stream_;
      allocator->BeginAllocateToPool(pool_, [captured](StreamHandle s) { return s == captured; });
      device->SetCapturing(capture_stream_, true);
      capturing_ = true;
    } else {
      device->SetCapturing(capture_stream_, false);
      ASSERT_TRUE(allocator->EndAllocateToPool(pool_).ok());
      ASSERT_TRUE(allocator->ReleasePool(pool_).ok());
      capturing_ = false;
    }
  }

  std::mt19937_64 rng_;
  std::vector<StreamHandle> streams_;
  std::vector<LiveAllocation> live_;
  std::vector<Retired> retired_;
  bool capturing_ = false;
  StreamHandle capture_stream_ = 0;
  PoolId pool_ = 0;
  int step_ = 0;
};

class StreamOracleTest : public ::testing::TestWithParam<CrossStreamPolicy> {};

TEST_P(StreamOracleTest, NoBlockIsHandedOutWhileAUseIsInFlight) {
  const int seeds = std::max(VRAMCACHE_RANDOM_SEEDS / 2, 20);
  for (int seed = 1; seed <= seeds; ++seed) {
    StreamOracle oracle(static_cast<std::uint64_t>(seed), GetParam());
    ASSERT_NO_FATAL_FAILURE(oracle.Run(200)) << "seed " << seed;
  }
}

INSTANTIATE_TEST_SUITE_P(Policies, StreamOracleTest,
                         ::testing::Values(CrossStreamPolicy::kNone, CrossStreamPolicy::kQuery,
                                           CrossStreamPolicy::kWait),
                         [](const ::testing::TestParamInfo<CrossStreamPolicy>& info) {
                           switch (info.param) {
                             case CrossStreamPolicy::kNone:
                               return std::string("none");
                             case CrossStreamPolicy::kQuery:
                               return std::string("query");
                             case CrossStreamPolicy::kWait:
                               return std::string("wait");
                           }
                           return std::string("unknown");
                         });

}  // namespace
}  // namespace vramcache
