// vramcache_shutdown racing allocation, frees and statistics on other threads through the C
// ABI: no crash, no hang, and every call that fails says why. Run under tsan as well.
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "allocator/api/vramcache.h"
#include "gtest/gtest.h"

namespace {

constexpr char kConf[] = "device:sim,sim_capacity:1GiB,check_invariants:false";

class CApiShutdownTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // After each shutdown the next call starts afresh from the environment: the same device.
    ASSERT_EQ(setenv("VRAMCACHE_CONF", kConf, 1), 0);
    ASSERT_EQ(vramcache_shutdown(), 0);
  }
  void TearDown() override {
    EXPECT_EQ(vramcache_shutdown(), 0);
    unsetenv("VRAMCACHE_CONF");
  }
};

// What one worker saw: calls made, and failures that came without a reason.
struct WorkerLog {
  int calls = 0;
  int failures = 0;
  std::vector<std::string> silent_failures;
};

void Worker(int seed, const std::atomic<bool>& stop, WorkerLog* log) {
  unsigned state = static_cast<unsigned>(seed) * 2654435761u + 1;
  const auto note_failure = [log](const char* call) {
    ++log->failures;
    if (std::string(vramcache_last_error()).empty()) log->silent_failures.push_back(call);
  };
  while (!stop.load(std::memory_order_relaxed)) {
    state = state * 1103515245u + 12345u;
    const std::size_t size = 1 + (state >> 8) % (4u << 20);
    void* p = vramcache_try_malloc(size, 0, nullptr);
    ++log->calls;
    if (p == nullptr) {
      note_failure("vramcache_try_malloc");
      continue;
    }
    vramcache_stats s{};
    s.struct_size = sizeof(s);
    ++log->calls;
    if (vramcache_get_stats(0, &s) != 0) note_failure("vramcache_get_stats");
    ++log->calls;
    if (vramcache_stats_json(0) == nullptr) note_failure("vramcache_stats_json");
    vramcache_free(p, size, 0, nullptr);
    ++log->calls;
    if (vramcache_last_error_kind() != VRAMCACHE_OK) note_failure("vramcache_free");
  }
}

TEST_F(CApiShutdownTest, ShutdownWhileOtherThreadsAllocate) {
  std::atomic<bool> stop{false};
  std::vector<WorkerLog> logs(4);
  std::vector<std::thread> workers;
  for (int i = 0; i < 4; ++i) workers.emplace_back(Worker, i, std::cref(stop), &logs[i]);
  int shutdowns = 0;
  for (int round = 0; round < 40; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    EXPECT_EQ(vramcache_shutdown(), 0) << vramcache_last_error();
    ++shutdowns;
  }
  stop = true;
  for (std::thread& worker : workers) worker.join();
  int calls = 0;
  for (const WorkerLog& log : logs) {
    calls += log.calls;
    EXPECT_TRUE(log.silent_failures.empty())
        << log.silent_failures.size() << " failures without a reason, first "
        << log.silent_failures.front();
  }
  EXPECT_GT(calls, shutdowns) << "the workers barely ran";
  // The library is usable afterwards.
  void* p = vramcache_try_malloc(4096, 0, nullptr);
  ASSERT_NE(p, nullptr) << vramcache_last_error();
  vramcache_free(p, 4096, 0, nullptr);
  EXPECT_STREQ(vramcache_last_error(), "");
}

// A pointer from before a shutdown is unknown afterwards: its free says so, and frees nothing.
TEST_F(CApiShutdownTest, FreeAfterShutdownIsAClearError) {
  void* p = vramcache_try_malloc(4096, 0, nullptr);
  ASSERT_NE(p, nullptr) << vramcache_last_error();
  ASSERT_EQ(vramcache_shutdown(), 0);
  vramcache_free(p, 4096, 0, nullptr);
  EXPECT_EQ(vramcache_last_error_kind(), VRAMCACHE_ERROR_INVALID);
  EXPECT_NE(std::string(vramcache_last_error()).find("vramcache_shutdown"), std::string::npos)
      << vramcache_last_error();
}

}  // namespace
