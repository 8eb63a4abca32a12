// On a real GPU: memory freed while another stream still works on it must not be handed to
// anyone who could overwrite it. Stream-ordered device operations (cudaMemsetAsync,
// cudaMemcpyAsync) write a pattern into a block and copy it back after a long delay; meanwhile
// the block is freed and the allocator serves new requests that immediately overwrite what they
// get. With record_stream (a block used on a side stream) and without it (a block borrowed by
// another stream), the copied-back pattern must be intact, over many iterations. Skips without
// a GPU.
#include <cuda_runtime_api.h>

#include <cstring>
#include <memory>
#include <vector>

#include "allocator/core/caching_allocator.h"
#include "allocator/device/cuda_device.h"
#include "gtest/gtest.h"

namespace vramcache {
namespace {

constexpr std::size_t kBlock = 4u << 20;
constexpr std::size_t kDelayBytes = 256u << 20;  // a memset this large keeps a stream busy

class CrossStreamReuseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
    absl::StatusOr<std::unique_ptr<CudaDevice>> device = CudaDevice::Open(0);
    ASSERT_TRUE(device.ok()) << device.status();
    device_ = std::move(*device);
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
    ASSERT_EQ(cudaStreamCreateWithFlags(&s1_, cudaStreamNonBlocking), cudaSuccess);
    ASSERT_EQ(cudaStreamCreateWithFlags(&s2_, cudaStreamNonBlocking), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&delay_, kDelayBytes), cudaSuccess);
    ASSERT_EQ(cudaMallocHost(&host_, kBlock), cudaSuccess);
  }
  void TearDown() override {
    if (device_ == nullptr) return;
    cudaDeviceSynchronize();
    if (allocator_ != nullptr) {
      EXPECT_TRUE(allocator_->Shutdown().ok());
    }
    cudaFree(delay_);
    cudaFreeHost(host_);
    cudaStreamDestroy(s1_);
    cudaStreamDestroy(s2_);
  }
  void Make(CrossStreamPolicy policy) {
    AllocatorConfig config;
    config.cross_stream = policy;
    allocator_ = std::make_unique<CachingAllocator>(device_.get(), config, &clock_);
  }
  static StreamHandle H(cudaStream_t s) { return reinterpret_cast<StreamHandle>(s); }

  // Writes `pattern` into `block` on `user`, delays that stream, then copies the block back to
  // host on it: the copy sees whatever is in the block when it finally runs.
  void UseThenCopyBack(void* block, cudaStream_t user, int pattern) {
    ASSERT_EQ(cudaMemsetAsync(block, pattern, kBlock, user), cudaSuccess);
    for (int i = 0; i < 4; ++i) {
      ASSERT_EQ(cudaMemsetAsync(delay_, i, kDelayBytes, user), cudaSuccess);
    }
    ASSERT_EQ(cudaMemcpyAsync(host_, block, kBlock, cudaMemcpyDeviceToHost, user), cudaSuccess);
  }

  void ExpectIntact(int pattern, int iteration) {
    ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
    const auto* bytes = static_cast<const unsigned char*>(host_);
    for (std::size_t i = 0; i < kBlock; i += 4093) {
      ASSERT_EQ(bytes[i], static_cast<unsigned char>(pattern))
          << "iteration " << iteration << ": byte " << i << " overwritten by a reuse";
    }
  }

  TickClock clock_;
  std::unique_ptr<CudaDevice> device_;
  std::unique_ptr<CachingAllocator> allocator_;
  cudaStream_t s1_ = nullptr, s2_ = nullptr;
  void* delay_ = nullptr;
  void* host_ = nullptr;
};

TEST_F(CrossStreamReuseTest, RecordStreamKeepsASideStreamsBlockUntilItsWorkIsDone) {
  Make(CrossStreamPolicy::kWait);
  for (int iteration = 0; iteration < 300; ++iteration) {
    absl::StatusOr<void*> a = allocator_->Allocate(kBlock, H(s1_));
    ASSERT_TRUE(a.ok()) << a.status();
    const int pattern = 1 + iteration % 200;
    UseThenCopyBack(*a, s2_, pattern);  // used on the side stream
    ASSERT_TRUE(allocator_->RecordStream(*a, H(s2_)).ok());
    ASSERT_TRUE(allocator_->Free(*a).ok());
    // The allocating stream asks again at once and overwrites what it gets.
    absl::StatusOr<void*> b = allocator_->Allocate(kBlock, H(s1_));
    ASSERT_TRUE(b.ok()) << b.status();
    ASSERT_EQ(cudaMemsetAsync(*b, 0, kBlock, s1_), cudaSuccess);
    ExpectIntact(pattern, iteration);
    ASSERT_TRUE(allocator_->Free(*b).ok());
  }
}

TEST_F(CrossStreamReuseTest, BorrowedBlocksWaitForTheirOwnersWork) {
  for (CrossStreamPolicy policy : {CrossStreamPolicy::kWait, CrossStreamPolicy::kQuery}) {
    if (allocator_ != nullptr) {
      ASSERT_TRUE(allocator_->Shutdown().ok());
    }
    Make(policy);
    for (int iteration = 0; iteration < 300; ++iteration) {
      absl::StatusOr<void*> a = allocator_->Allocate(kBlock, H(s1_));
      ASSERT_TRUE(a.ok()) << a.status();
      const int pattern = 1 + iteration % 200;
      UseThenCopyBack(*a, s1_, pattern);  // only its own stream uses it: no record_stream
      ASSERT_TRUE(allocator_->Free(*a).ok());
      // Another stream finds nothing of its own and may borrow the block.
      absl::StatusOr<void*> b = allocator_->Allocate(kBlock, H(s2_));
      ASSERT_TRUE(b.ok()) << b.status();
      ASSERT_EQ(cudaMemsetAsync(*b, 0, kBlock, s2_), cudaSuccess);
      ExpectIntact(pattern, iteration);
      ASSERT_TRUE(allocator_->Free(*b).ok());
    }
    if (policy == CrossStreamPolicy::kWait) {
      // (kQuery borrows only blocks whose owner is idle, which this schedule never offers.)
      EXPECT_GT(allocator_->GetStats().num_cross_stream_reuse, 0)
          << "the test never exercised borrowing";
    }
  }
}

}  // namespace
}  // namespace vramcache
