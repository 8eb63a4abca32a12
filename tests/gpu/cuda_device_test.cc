// CudaDevice on a real GPU: plain and virtual memory, remapping that keeps data, events and
// stream ordering, graph capture, the fill kernel against a host model, and error mapping. On a
// machine without a driver or GPU the device tests skip; the tests of "no GPU" handling run.
#include "allocator/device/cuda_device.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_format.h"
#include "allocator/device/cuda_status.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/fill.h"

namespace vramcache {
namespace {

using ::testing::HasSubstr;

// --- Without a GPU (these run everywhere) -------------------------------------------------

TEST(CudaDeviceCountTest, NeverAbortsAndOpenAgreesWithIt) {
  const int count = CudaDeviceCount();
  ASSERT_GE(count, 0);
  absl::StatusOr<std::unique_ptr<CudaDevice>> device = CudaDevice::Open(0);
  if (count == 0) {
    ASSERT_FALSE(device.ok());
    EXPECT_EQ(device.status().code(), absl::StatusCode::kFailedPrecondition);
    EXPECT_THAT(device.status().message(), HasSubstr("no CUDA device: "));
  } else {
    ASSERT_TRUE(device.ok()) << device.status();
    EXPECT_EQ((*device)->Capabilities().ordinal, 0);
  }
}

TEST(CudaDeviceOpenTest, RejectsOrdinalsOutOfRange) {
  absl::StatusOr<std::unique_ptr<CudaDevice>> negative = CudaDevice::Open(-1);
  ASSERT_FALSE(negative.ok());
  EXPECT_EQ(negative.status().code(), absl::StatusCode::kInvalidArgument);

  const int count = CudaDeviceCount();
  absl::StatusOr<std::unique_ptr<CudaDevice>> past_end = CudaDevice::Open(count);
  ASSERT_FALSE(past_end.ok());
  EXPECT_EQ(past_end.status().code(), count == 0 ? absl::StatusCode::kFailedPrecondition
                                                 : absl::StatusCode::kInvalidArgument);
}

TEST(CudaStatusTest, NamesTheCallTheErrorAndMapsOutOfMemory) {
  const absl::Status oom = CudaRuntimeStatus(cudaErrorMemoryAllocation, "cudaMalloc(1 bytes)");
  EXPECT_EQ(oom.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(oom.message(), HasSubstr("cudaMalloc(1 bytes) failed: cudaErrorMemoryAllocation"));
  EXPECT_TRUE(CudaRuntimeStatus(cudaSuccess, "anything").ok());
  EXPECT_EQ(CudaRuntimeStatus(cudaErrorInvalidValue, "x").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(CudaRuntimeStatus(cudaErrorLaunchFailure, "x").code(), absl::StatusCode::kInternal);

  // Without the driver table the message still names the call and the numeric code.
  const absl::Status driver_oom =
      CudaDriverStatus(nullptr, CUDA_ERROR_OUT_OF_MEMORY, "cuMemCreate");
  EXPECT_EQ(driver_oom.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(driver_oom.message(), HasSubstr("cuMemCreate failed: CUresult 2"));
  EXPECT_TRUE(CudaDriverStatus(nullptr, CUDA_SUCCESS, "cuMemMap").ok());
}

TEST(FillKernelApiTest, RejectsNullAndAcceptsEmptyWithoutLaunching) {
  // Neither touches the GPU, so both answer the same with or without one.
  EXPECT_EQ(kernels::LaunchFillPattern32(nullptr, 0, 0xdeadbeef, 0), cudaSuccess);
  EXPECT_EQ(kernels::LaunchFillPattern32(nullptr, 16, 0xdeadbeef, 0), cudaErrorInvalidValue);
  EXPECT_EQ(kernels::LaunchZeroFill(nullptr, 1, 0), cudaErrorInvalidValue);
}

TEST(FillKernelApiTest, PatternBytesRepeatLittleEndianFromTheStart) {
  constexpr std::uint32_t kPattern = 0x44332211;
  EXPECT_EQ(kernels::FillPatternByte(kPattern, 0), 0x11);
  EXPECT_EQ(kernels::FillPatternByte(kPattern, 1), 0x22);
  EXPECT_EQ(kernels::FillPatternByte(kPattern, 3), 0x44);
  EXPECT_EQ(kernels::FillPatternByte(kPattern, 6), 0x33);
}

// --- On a GPU ---------------------------------------------------------------------------------

std::vector<std::uint8_t> CopyToHost(DevicePtr ptr, std::size_t bytes) {
  std::vector<std::uint8_t> host(bytes);
  EXPECT_EQ(cudaMemcpy(host.data(), reinterpret_cast<void*>(ptr), bytes, cudaMemcpyDeviceToHost),
            cudaSuccess);
  return host;
}

// Whether every byte of `bytes` equals `value`; reports the first that does not.
::testing::AssertionResult AllBytesAre(const std::vector<std::uint8_t>& bytes, std::uint8_t value) {
  for (std::size_t i = 0; i < bytes.size(); ++i) {
    if (bytes[i] != value) {
      return ::testing::AssertionFailure()
             << absl::StrFormat("byte %u is 0x%02x, expected 0x%02x", i, bytes[i], value);
    }
  }
  return ::testing::AssertionSuccess();
}

class CudaDeviceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (CudaDeviceCount() == 0) GTEST_SKIP() << "no CUDA device";
    absl::StatusOr<std::unique_ptr<CudaDevice>> device = CudaDevice::Open(0);
    ASSERT_TRUE(device.ok()) << device.status();
    device_ = std::move(*device);
    ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
    ASSERT_EQ(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), cudaSuccess);
  }
  void TearDown() override {
    if (stream_ != nullptr) {
      EXPECT_EQ(cudaStreamDestroy(stream_), cudaSuccess);
    }
  }

  StreamHandle stream() const { return reinterpret_cast<StreamHandle>(stream_); }
  std::size_t granularity() const { return device_->Capabilities().granularity; }

  std::unique_ptr<CudaDevice> device_;
  cudaStream_t stream_ = nullptr;
};

TEST_F(CudaDeviceTest, ReportsCapabilitiesAndMemInfo) {
  const DeviceCapabilities& caps = device_->Capabilities();
  EXPECT_FALSE(caps.name.empty());
  EXPECT_GT(caps.total_bytes, std::size_t{1} << 30);
  EXPECT_TRUE(caps.vmm_supported) << "every GPU this project targets supports VMM";
  EXPECT_GT(caps.granularity, 0u);
  EXPECT_EQ(caps.granularity & (caps.granularity - 1), 0u) << "granularity is a power of two";

  absl::StatusOr<DeviceMemInfo> info = device_->MemInfo();
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->total_bytes, caps.total_bytes);
  EXPECT_GT(info->free_bytes, 0u);
  EXPECT_LE(info->free_bytes, info->total_bytes);
}

TEST_F(CudaDeviceTest, MallocWriteReadFree) {
  constexpr std::size_t kBytes = std::size_t{3} << 20;
  absl::StatusOr<DevicePtr> ptr = device_->Malloc(kBytes);
  ASSERT_TRUE(ptr.ok()) << ptr.status();
  ASSERT_EQ(cudaMemset(reinterpret_cast<void*>(*ptr), 0x7e, kBytes), cudaSuccess);
  EXPECT_TRUE(AllBytesAre(CopyToHost(*ptr, kBytes), 0x7e));
  EXPECT_TRUE(device_->Free(*ptr).ok());
  EXPECT_TRUE(device_->Free(0).ok()) << "Free(0) is a no-op like cudaFree(nullptr)";
}

TEST_F(CudaDeviceTest, MallocErrorsAreStatusesAndLeaveTheDeviceUsable) {
  EXPECT_EQ(device_->Malloc(0).status().code(), absl::StatusCode::kInvalidArgument);

  const absl::StatusOr<DevicePtr> too_big =
      device_->Malloc(device_->Capabilities().total_bytes * 4);
  ASSERT_FALSE(too_big.ok());
  EXPECT_EQ(too_big.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(too_big.status().message(), HasSubstr("cudaMalloc("));
  EXPECT_THAT(too_big.status().message(), HasSubstr("cudaErrorMemoryAllocation"));

  // A pointer cudaMalloc never returned: an error, not a crash.
  const absl::Status bogus_free = device_->Free(0x1234);
  ASSERT_FALSE(bogus_free.ok());
  EXPECT_THAT(bogus_free.message(), HasSubstr("cudaFree(0x1234) failed: cudaError"));

  // The errors were not left behind for the next call to trip on.
  EXPECT_EQ(cudaGetLastError(), cudaSuccess);
  absl::StatusOr<DevicePtr> ptr = device_->Malloc(4096);
  ASSERT_TRUE(ptr.ok()) << ptr.status();
  EXPECT_TRUE(device_->Free(*ptr).ok());
}

TEST_F(CudaDeviceTest, VirtualMemoryRemapKeepsTheData) {
  const std::size_t g = granularity();
  absl::StatusOr<DevicePtr> range = device_->ReserveAddress(4 * g);
  ASSERT_TRUE(range.ok()) << range.status();
  absl::StatusOr<ChunkHandle> first = device_->CreateChunk(g);
  absl::StatusOr<ChunkHandle> second = device_->CreateChunk(g);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();

  ASSERT_TRUE(device_->Map(*range, g, *first).ok());
  ASSERT_TRUE(device_->Map(*range + g, g, *second).ok());
  ASSERT_EQ(cudaMemset(reinterpret_cast<void*>(*range), 0xab, g), cudaSuccess);
  ASSERT_TRUE(device_->Fill({*range + g, g, 0xcdcdcdcd}, stream()).ok());
  ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
  EXPECT_TRUE(AllBytesAre(CopyToHost(*range, g), 0xab));
  EXPECT_TRUE(AllBytesAre(CopyToHost(*range + g, g), 0xcd));

  // Swap the two chunks' places: what was written stays with the physical memory.
  ASSERT_TRUE(device_->Unmap(*range, 2 * g).ok()) << "one call may unmap several chunks";
  ASSERT_TRUE(device_->Map(*range + 3 * g, g, *first).ok());
  ASSERT_TRUE(device_->Map(*range, g, *second).ok());
  EXPECT_TRUE(AllBytesAre(CopyToHost(*range + 3 * g, g), 0xab));
  EXPECT_TRUE(AllBytesAre(CopyToHost(*range, g), 0xcd));
  EXPECT_TRUE(device_->GrantPeerAccess(*range, g, 0).ok()) << "granting the device itself";

  ASSERT_TRUE(device_->Unmap(*range, g).ok());
  ASSERT_TRUE(device_->Unmap(*range + 3 * g, g).ok());
  EXPECT_TRUE(device_->ReleaseChunk(*first).ok());
  EXPECT_TRUE(device_->ReleaseChunk(*second).ok());
  EXPECT_TRUE(device_->ReleaseAddress(*range, 4 * g).ok());
}

// The allocator's aliases: one chunk mapped at two addresses at once, both reading and writing
// the same bytes, each unmapped on its own (the chunk pool relies on this on every stitch).
TEST_F(CudaDeviceTest, AChunkMappedAtTwoAddressesSharesItsBytes) {
  const std::size_t g = granularity();
  absl::StatusOr<DevicePtr> first = device_->ReserveAddress(2 * g);
  absl::StatusOr<DevicePtr> second = device_->ReserveAddress(2 * g);
  absl::StatusOr<ChunkHandle> chunk = device_->CreateChunk(g);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_TRUE(chunk.ok()) << chunk.status();
  ASSERT_TRUE(device_->Map(*first, g, *chunk).ok());
  const absl::Status alias = device_->Map(*second + g, g, *chunk);
  ASSERT_TRUE(alias.ok()) << alias;

  ASSERT_TRUE(device_->Fill({*first, g, 0x5a5a5a5a}, stream()).ok());
  ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
  EXPECT_TRUE(AllBytesAre(CopyToHost(*second + g, g), 0x5a)) << "written at one, read at other";
  ASSERT_TRUE(device_->Fill({*second + g, g, 0x3c3c3c3c}, stream()).ok());
  ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
  EXPECT_TRUE(AllBytesAre(CopyToHost(*first, g), 0x3c));

  ASSERT_TRUE(device_->Unmap(*first, g).ok());
  EXPECT_TRUE(AllBytesAre(CopyToHost(*second + g, g), 0x3c)) << "the other mapping stays";
  ASSERT_TRUE(device_->Unmap(*second + g, g).ok());
  EXPECT_TRUE(device_->ReleaseChunk(*chunk).ok());
  EXPECT_TRUE(device_->ReleaseAddress(*first, 2 * g).ok());
  EXPECT_TRUE(device_->ReleaseAddress(*second, 2 * g).ok());
}

TEST_F(CudaDeviceTest, VirtualMemoryRejectsBadArgumentsAndReportsDriverErrors) {
  const std::size_t g = granularity();
  EXPECT_EQ(device_->ReserveAddress(g + 1).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(device_->ReserveAddress(0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(device_->CreateChunk(g / 2).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(device_->ReleaseChunk(0).code(), absl::StatusCode::kInvalidArgument);

  absl::StatusOr<DevicePtr> range = device_->ReserveAddress(2 * g);
  ASSERT_TRUE(range.ok()) << range.status();
  absl::StatusOr<ChunkHandle> chunk = device_->CreateChunk(g);
  ASSERT_TRUE(chunk.ok()) << chunk.status();
  EXPECT_EQ(device_->Map(*range + 1, g, *chunk).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(device_->Map(*range, g, 0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(device_->GrantPeerAccess(*range, g, -1).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(device_->GrantPeerAccess(*range, g, CudaDeviceCount()).code(),
            absl::StatusCode::kInvalidArgument);

  // Errors the driver finds come back named, and change nothing: the first mapping still works.
  ASSERT_TRUE(device_->Map(*range, g, *chunk).ok());
  const absl::Status mapped_twice = device_->Map(*range, g, *chunk);
  ASSERT_FALSE(mapped_twice.ok());
  EXPECT_THAT(mapped_twice.message(), HasSubstr("cuMemMap("));
  EXPECT_THAT(mapped_twice.message(), HasSubstr("CUDA_ERROR_"));
  ASSERT_EQ(cudaMemset(reinterpret_cast<void*>(*range), 0x3c, g), cudaSuccess);
  EXPECT_TRUE(AllBytesAre(CopyToHost(*range, g), 0x3c));

  const absl::StatusOr<ChunkHandle> huge =
      device_->CreateChunk((device_->Capabilities().total_bytes / g + 1) * g * 2);
  ASSERT_FALSE(huge.ok());
  EXPECT_EQ(huge.status().code(), absl::StatusCode::kResourceExhausted) << huge.status();
  EXPECT_THAT(huge.status().message(), HasSubstr("CUDA_ERROR_OUT_OF_MEMORY"));

  ASSERT_TRUE(device_->Unmap(*range, g).ok());
  EXPECT_TRUE(device_->ReleaseChunk(*chunk).ok());
  EXPECT_TRUE(device_->ReleaseAddress(*range, 2 * g).ok());
}

// Holds a stream at a host function until Release(), so the test knows work is pending.
class StreamGate {
 public:
  explicit StreamGate(cudaStream_t stream) {
    launched_ = cudaLaunchHostFunc(stream, &StreamGate::Wait, this) == cudaSuccess;
    EXPECT_TRUE(launched_);
  }
  // Waits for the host function, which reads this object, to be done with it.
  ~StreamGate() {
    Release();
    while (launched_ && !finished_.load()) std::this_thread::yield();
  }
  void Release() { open_.store(true); }

 private:
  static void Wait(void* self) {
    StreamGate* gate = static_cast<StreamGate*>(self);
    // Bounded, so a failing test cannot hang the suite.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!gate->open_.load() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    gate->finished_.store(true);
  }
  bool launched_ = false;
  std::atomic<bool> open_{false};
  std::atomic<bool> finished_{false};
};

TEST_F(CudaDeviceTest, EventsAndStreamWaitsOrderWorkAcrossStreams) {
  cudaStream_t consumer = nullptr;
  ASSERT_EQ(cudaStreamCreateWithFlags(&consumer, cudaStreamNonBlocking), cudaSuccess);
  constexpr std::size_t kBytes = std::size_t{8} << 20;
  absl::StatusOr<DevicePtr> buffer = device_->Malloc(kBytes);
  ASSERT_TRUE(buffer.ok()) << buffer.status();
  // Pinned, so the copy below is truly asynchronous: a copy to pageable memory would block
  // this thread until the gated stream ran.
  void* pinned = nullptr;
  ASSERT_EQ(cudaMallocHost(&pinned, kBytes), cudaSuccess);
  std::uint8_t* host = static_cast<std::uint8_t*>(pinned);
  std::fill(host, host + kBytes, 0);
  absl::StatusOr<EventHandle> produced = device_->CreateEvent();
  absl::StatusOr<EventHandle> consumed = device_->CreateEvent();
  ASSERT_TRUE(produced.ok() && consumed.ok());

  {
    StreamGate gate(stream_);
    ASSERT_TRUE(device_->Fill({*buffer, kBytes, 0x5a5a5a5a}, stream()).ok());
    ASSERT_TRUE(device_->RecordEvent(*produced, stream()).ok());
    ASSERT_TRUE(device_->StreamWaitEvent(reinterpret_cast<StreamHandle>(consumer), *produced).ok());
    ASSERT_EQ(cudaMemcpyAsync(host, reinterpret_cast<void*>(*buffer), kBytes,
                              cudaMemcpyDeviceToHost, consumer),
              cudaSuccess);
    ASSERT_TRUE(device_->RecordEvent(*consumed, reinterpret_cast<StreamHandle>(consumer)).ok());

    absl::StatusOr<bool> done = device_->QueryEvent(*produced);
    ASSERT_TRUE(done.ok()) << done.status();
    EXPECT_FALSE(*done) << "the producer is held at the gate";
    done = device_->QueryEvent(*consumed);
    ASSERT_TRUE(done.ok()) << done.status();
    EXPECT_FALSE(*done) << "the consumer waits for the producer";
    EXPECT_EQ(cudaGetLastError(), cudaSuccess) << "not-ready is not left as an error";
    gate.Release();
    ASSERT_TRUE(device_->SynchronizeEvent(*consumed).ok());
  }
  absl::StatusOr<bool> done = device_->QueryEvent(*produced);
  ASSERT_TRUE(done.ok());
  EXPECT_TRUE(*done);
  EXPECT_TRUE(AllBytesAre(std::vector<std::uint8_t>(host, host + kBytes), 0x5a))
      << "the copy ran after the fill it waited for";
  EXPECT_EQ(cudaFreeHost(host), cudaSuccess);

  EXPECT_TRUE(device_->SynchronizeDevice().ok());
  EXPECT_TRUE(device_->DestroyEvent(*produced).ok());
  EXPECT_TRUE(device_->DestroyEvent(*consumed).ok());
  EXPECT_EQ(device_->DestroyEvent(0).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(device_->QueryEvent(0).status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(device_->Free(*buffer).ok());
  EXPECT_EQ(cudaStreamDestroy(consumer), cudaSuccess);
}

TEST_F(CudaDeviceTest, IsCapturingFollowsGraphCapture) {
  absl::StatusOr<bool> capturing = device_->IsCapturing(stream());
  ASSERT_TRUE(capturing.ok()) << capturing.status();
  EXPECT_FALSE(*capturing);
  capturing = device_->IsCapturing(0);
  ASSERT_TRUE(capturing.ok()) << capturing.status();
  EXPECT_FALSE(*capturing);

  absl::StatusOr<DevicePtr> buffer = device_->Malloc(4096);
  ASSERT_TRUE(buffer.ok());
  ASSERT_EQ(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal), cudaSuccess);
  capturing = device_->IsCapturing(stream());
  ASSERT_TRUE(capturing.ok()) << capturing.status();
  EXPECT_TRUE(*capturing);
  EXPECT_TRUE(device_->Fill({*buffer, 4096, 0x01020304}, stream()).ok()) << "fills are capturable";
  cudaGraph_t graph = nullptr;
  ASSERT_EQ(cudaStreamEndCapture(stream_, &graph), cudaSuccess);
  capturing = device_->IsCapturing(stream());
  ASSERT_TRUE(capturing.ok());
  EXPECT_FALSE(*capturing);

  // The captured fill runs when the graph does.
  ASSERT_EQ(cudaMemset(reinterpret_cast<void*>(*buffer), 0, 4096), cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  ASSERT_EQ(cudaGraphInstantiate(&exec, graph, 0), cudaSuccess);
  ASSERT_EQ(cudaGraphLaunch(exec, stream_), cudaSuccess);
  ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
  const std::vector<std::uint8_t> host = CopyToHost(*buffer, 4096);
  EXPECT_EQ(host[0], 0x04);
  EXPECT_EQ(host[4095], 0x01);
  EXPECT_EQ(cudaGraphExecDestroy(exec), cudaSuccess);
  EXPECT_EQ(cudaGraphDestroy(graph), cudaSuccess);
  EXPECT_TRUE(device_->Free(*buffer).ok());
}

TEST_F(CudaDeviceTest, FillMatchesTheHostModelAtAnyOffsetAndLength) {
  constexpr std::size_t kBuffer = std::size_t{1} << 20;
  constexpr std::size_t kGuard = 64;  // bytes checked untouched on each side
  constexpr std::uint8_t kSentinel = 0xee;
  absl::StatusOr<DevicePtr> buffer = device_->Malloc(kBuffer);
  ASSERT_TRUE(buffer.ok()) << buffer.status();
  std::mt19937_64 rng(20240611);
  std::vector<std::size_t> lengths = {0, 1, 2, 3, 4, 5, 15, 16, 17, 31, 32, 33, 47, 64, 4095, 4096};
  for (int i = 0; i < 150; ++i) {
    lengths.push_back(std::uniform_int_distribution<std::size_t>(0, 5000)(rng));
    lengths.push_back(std::uniform_int_distribution<std::size_t>(0, kBuffer - 4 * kGuard)(rng));
  }
  for (std::size_t length : lengths) {
    const std::size_t offset = kGuard + std::uniform_int_distribution<std::size_t>(0, 47)(rng);
    const std::uint32_t pattern = static_cast<std::uint32_t>(rng());
    const bool zero = length % 7 == 0;
    SCOPED_TRACE(absl::StrFormat("offset %u length %u pattern 0x%08x zero %d", offset, length,
                                 pattern, zero));
    const std::size_t window = offset + length + kGuard;
    ASSERT_EQ(cudaMemsetAsync(reinterpret_cast<void*>(*buffer), kSentinel, window, stream_),
              cudaSuccess);
    if (zero) {
      ASSERT_EQ(
          kernels::LaunchZeroFill(reinterpret_cast<void*>(*buffer + offset), length, stream()),
          cudaSuccess);
    } else {
      ASSERT_TRUE(device_->Fill({*buffer + offset, length, pattern}, stream()).ok());
    }
    std::vector<std::uint8_t> actual(window);
    ASSERT_EQ(cudaMemcpyAsync(actual.data(), reinterpret_cast<void*>(*buffer), window,
                              cudaMemcpyDeviceToHost, stream_),
              cudaSuccess);
    ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
    std::vector<std::uint8_t> expected(window, kSentinel);
    for (std::size_t j = 0; j < length; ++j) {
      expected[offset + j] = zero ? 0 : kernels::FillPatternByte(pattern, j);
    }
    ASSERT_EQ(actual, expected);
  }
  EXPECT_TRUE(device_->Free(*buffer).ok());
}

TEST_F(CudaDeviceTest, FillRejectsRangesThatAreNotDeviceMemory) {
  EXPECT_TRUE(device_->Fill({0, 0, 1}, stream()).ok()) << "an empty fill is a no-op";
  EXPECT_EQ(device_->Fill({0, 16, 1}, stream()).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(device_->Fill({~DevicePtr{0} - 4, 16, 1}, stream()).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CudaDeviceTest, RestoresTheCallersCurrentDevice) {
  // With one GPU the device never changes; what must hold is that calls leave it as it was.
  int before = -1;
  ASSERT_EQ(cudaGetDevice(&before), cudaSuccess);
  absl::StatusOr<DevicePtr> ptr = device_->Malloc(1 << 20);
  ASSERT_TRUE(ptr.ok());
  ASSERT_TRUE(device_->Free(*ptr).ok());
  int after = -1;
  ASSERT_EQ(cudaGetDevice(&after), cudaSuccess);
  EXPECT_EQ(before, after);
  if (CudaDeviceCount() < 2) return;
  ASSERT_EQ(cudaSetDevice(1), cudaSuccess);
  ptr = device_->Malloc(1 << 20);
  ASSERT_TRUE(ptr.ok());
  cudaPointerAttributes attributes = {};
  ASSERT_EQ(cudaPointerGetAttributes(&attributes, reinterpret_cast<void*>(*ptr)), cudaSuccess);
  EXPECT_EQ(attributes.device, 0) << "allocated on the CudaDevice's GPU, not the current one";
  ASSERT_TRUE(device_->Free(*ptr).ok());
  ASSERT_EQ(cudaGetDevice(&after), cudaSuccess);
  EXPECT_EQ(after, 1);
  ASSERT_EQ(cudaSetDevice(0), cudaSuccess);
}

}  // namespace
}  // namespace vramcache
