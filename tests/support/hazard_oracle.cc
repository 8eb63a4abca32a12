// HazardOracle: one seed's world of threads, streams, kernels, graphs and the allocator, and the
// random steps the threads take in it (see hazard_oracle.h).
#include "tests/support/hazard_oracle.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <random>
#include <shared_mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "allocator/core/caching_allocator.h"
#include "allocator/device/sim_device.h"
#include "gtest/gtest.h"
#include "tests/support/graph_capture_filter.h"
#include "tests/support/recording_device.h"

namespace vramcache {
namespace {

constexpr std::size_t kTagBytes = 16;

bool Skipped(absl::string_view op) {
  // Unset: every operation runs, graph replays included.
  const char* value = std::getenv("VRAMCACHE_ORACLE_SKIP");
  if (value == nullptr) return false;
  for (absl::string_view name : absl::StrSplit(value, ',')) {
    if (name == op) return true;
  }
  return false;
}

struct Allocation {
  void* ptr = nullptr;
  std::size_t size = 0;
  StreamHandle stream = 0;
  std::uint64_t owner = 0;
};

// Bytes every allocation carries at its start, middle and end, derived from its owner id.
std::array<unsigned char, kTagBytes> TagOf(std::uint64_t owner, std::size_t where) {
  std::array<unsigned char, kTagBytes> tag;
  for (std::size_t i = 0; i < tag.size(); ++i) {
    tag[i] = static_cast<unsigned char>((owner * 131 + where * 7 + i * 29) & 0xff);
  }
  return tag;
}

std::vector<std::size_t> TagOffsets(std::size_t size) {
  if (size < 3 * kTagBytes) return {0};  // the three tags must not overlap
  return {0, (size - kTagBytes) / 2, size - kTagBytes};
}

}  // namespace

// One seed's world: the device, the allocator, the streams the threads share.
class HazardOracle::World {
 public:
  World(std::uint64_t seed, bool vmm, DeviceCallLog* calls, bool check_bytes)
      : seed_(seed), check_bytes_(check_bytes), rng_(seed) {
    SimDeviceOptions options;
    const std::size_t capacities[] = {64u << 20, 128u << 20, 256u << 20};
    options.capacity = capacities[rng_() % 3];
    options.granularity = 2u << 20;
    options.accounting_only = !check_bytes;
    options.completion = SimCompletion::kRandom;
    options.seed = seed;
    options.max_work_duration = static_cast<int>(rng_() % 17);
    device_ = std::make_unique<SimDevice>(options);

    AllocatorConfig config;
    config.check_invariants = false;  // checked at quiescent points; every op is too slow here
    config.vmm = vmm ? VmmMode::kOn : VmmMode::kOff;
    const CrossStreamPolicy policies[] = {CrossStreamPolicy::kNone, CrossStreamPolicy::kQuery,
                                          CrossStreamPolicy::kWait};
    config.cross_stream = policies[rng_() % 3];
    const bool debug = rng_() % 4 == 0;
    config.poison_on_free = debug && rng_() % 2 == 0;
    config.zero_on_alloc = debug && rng_() % 2 == 0;
    config.canaries = debug && rng_() % 2 == 0;
    if (rng_() % 4 == 0) config.reuse_cache_bytes = 0;
    if (rng_() % 4 == 0) config.max_split_size = 8u << 20;
    config_ = config;
    // The allocator sees the device through the recorder when asked; the oracle's own kernels,
    // copies and streams go to the device directly and are not the allocator's calls.
    Device* allocator_device = device_.get();
    if (calls != nullptr) {
      recorder_ = std::make_unique<RecordingDevice>(device_.get(), calls);
      allocator_device = recorder_.get();
    }
    allocator_ = std::make_unique<CachingAllocator>(allocator_device, config, &clock_);

    threads_ = 1 + static_cast<int>(rng_() % 8);
    const int streams = 2 + static_cast<int>(rng_() % 5);
    for (int i = 0; i < streams; ++i) streams_.push_back(device_->CreateStream());
    if (threads_ > 1) {
      // A device synchronization keeps its caller a while, as a GPU's does, while the other
      // threads go on: what they free meanwhile is not covered by it. Returning at once left
      // that window nearly empty (defect b went unseen in 9,200 seeds on the code before the
      // fixes; with this and a concurrent EmptyCache, 5 of 1,600 segment seeds found it).
      if (absl::Status s = device_->SetSynchronizeLatency(kSynchronizeLatency); !s.ok()) {
        Fail("SetSynchronizeLatency: ", s);
      }
    }
    description_ = absl::StrFormat(
        "seed %d, vmm %s, %d threads, %d streams, capacity %d MiB, max duration %d, cross_stream "
        "%d, poison %d zero %d canaries %d",
        seed, vmm ? "on" : "off", threads_, streams, options.capacity >> 20,
        options.max_work_duration, static_cast<int>(config.cross_stream), config.poison_on_free,
        config.zero_on_alloc, config.canaries);
    if (threads_ > 1) {
      absl::StrAppend(&description_, ", synchronize latency ",
                      absl::FormatDuration(kSynchronizeLatency));
    }
  }

  const std::string& description() const { return description_; }

  void Run() {
    for (int phase = 0; phase < 2 && !failed_; ++phase) {
      std::vector<std::thread> workers;
      for (int t = 0; t < threads_; ++t) {
        const std::uint64_t thread_seed = seed_ * 1000003u + phase * 101u + t;
        workers.emplace_back([this, t, thread_seed] { Worker(t, thread_seed); });
      }
      for (std::thread& worker : workers) worker.join();
      // Quiescent: no thread is inside the allocator.
      if (absl::Status s = allocator_->CheckInvariants(); !s.ok()) Fail("invariants: ", s);
    }
    Finish();
  }

 private:
  struct ThreadState {
    std::mt19937_64 rng;
    std::mt19937_64 jitter_rng;  // VRAMCACHE_ORACLE_JITTER_US's pauses only
    std::vector<Allocation> live;
  };

  // Streams every argument (statuses included) into one failure that names the seed.
  template <typename... Args>
  void Fail(const Args&... args) {
    failed_ = true;
    std::ostringstream message;
    (message << ... << args);
    ADD_FAILURE() << description_ << ": " << message.str();
  }

  std::uint64_t NewOwner() { return next_owner_.fetch_add(1) + 1; }

  // VRAMCACHE_ORACLE_TRACE=1: every step that touches the allocator or the device's streams, in
  // the order the threads took them, for triage of a failing seed (off: one branch a step).
  template <typename... Args>
  void Trace(const Args&... args) {
    if (!tracing_) return;
    std::string line = absl::StrCat("t", current_thread_, " ", args...);
    std::lock_guard<std::mutex> lock(trace_mu_);
    trace_.push_back(std::move(line));
  }
  // Cheap to build (no string) where the trace is off: Trace formats only when it is on.
  static absl::Hex Hex(std::uint64_t v) { return absl::Hex(v); }

  // VRAMCACHE_ORACLE_JITTER_US=<n>: a pause of up to n microseconds between choosing a stream
  // and using it, and between a capture's steps, to widen the windows where rare interleavings
  // hide (off: one branch). It draws from its own generator, so the seed's steps are the same.
  void Jitter(ThreadState& me) {
    if (jitter_us_ <= 0) return;
    std::this_thread::sleep_for(std::chrono::microseconds(me.jitter_rng() % (jitter_us_ + 1)));
  }

  // A stream this thread may use now: never one another thread is capturing.
  // A stream this thread may use now, or kNoStream: never a destroyed one, nor one another
  // thread is capturing.
  StreamHandle PickStream(ThreadState& me, int thread) {
    for (int tries = 0; tries < 16; ++tries) {
      const StreamHandle s = streams_[me.rng() % streams_.size()];
      if (s == kNoStream) continue;
      if (s != capture_stream_.load() || capture_thread_.load() == thread) return s;
    }
    return kNoStream;
  }
  bool Usable(const Allocation& a, int thread) const {
    if (dead_index_ >= 0 && a.stream == dead_stream_) return false;
    return a.stream != capture_stream_.load() || capture_thread_.load() == thread;
  }

  std::size_t RandomSize(std::mt19937_64& rng) {
    std::uniform_real_distribution<double> exponent(0.0, rng() % 8 == 0 ? 24.6 : 23.0);
    return static_cast<std::size_t>(std::exp2(exponent(rng))) + rng() % 7;
  }

  void WriteTags(const Allocation& a) {
    if (!check_bytes_) return;
    for (std::size_t offset : TagOffsets(a.size)) {
      const auto tag = TagOf(a.owner, offset);
      const std::size_t n = std::min(kTagBytes, a.size - offset);
      if (absl::Status s =
              device_->CopyFromHost(reinterpret_cast<DevicePtr>(a.ptr) + offset, tag.data(), n);
          !s.ok()) {
        Fail("writing allocation ", a.owner, "'s tag: ", s.ToString());
      }
    }
  }

  void CheckTags(const Allocation& a) {
    if (!check_bytes_) return;
    for (std::size_t offset : TagOffsets(a.size)) {
      const auto tag = TagOf(a.owner, offset);
      std::array<unsigned char, kTagBytes> found{};
      const std::size_t n = std::min(kTagBytes, a.size - offset);
      if (absl::Status s =
              device_->CopyToHost(reinterpret_cast<DevicePtr>(a.ptr) + offset, found.data(), n);
          !s.ok()) {
        Fail("reading allocation ", a.owner, "'s tag: ", s.ToString());
        return;
      }
      if (std::memcmp(found.data(), tag.data(), n) != 0) {
        Fail(absl::StrFormat("allocation %d (%p, %d bytes, stream %#x) corrupted at offset %d",
                             a.owner, a.ptr, a.size, a.stream, offset));
        return;
      }
    }
  }

  void Launch(StreamHandle stream, std::vector<SimAccess> accesses, absl::string_view label) {
    if (tracing_) {
      std::string owners;
      for (const SimAccess& access : accesses) absl::StrAppend(&owners, " #", access.owner);
      Trace("launch '", label, "' stream ", Hex(stream), owners);
    }
    absl::StatusOr<std::uint64_t> ticket = device_->LaunchWork(stream, std::move(accesses), label);
    if (!ticket.ok()) Fail("LaunchWork: ", ticket.status().ToString());
  }

  void LaunchOn(const Allocation& a, StreamHandle stream) {
    Launch(stream, {SimAccess{reinterpret_cast<DevicePtr>(a.ptr), a.size, a.owner}},
           absl::StrCat("kernel of allocation ", a.owner));
  }

  // Allocates and starts using the allocation; false when out of memory even after a retry.
  bool Allocate(ThreadState& me, int thread, StreamHandle stream, std::vector<Allocation>* into) {
    const std::size_t size = RandomSize(me.rng);
    absl::StatusOr<void*> p = allocator_->Allocate(size, stream);
    if (!p.ok() && absl::IsResourceExhausted(p.status()) && !me.live.empty()) {
      // Out of memory: give something back and retry, as a framework would.
      FreeOne(me, thread);
      p = allocator_->Allocate(size, stream);
    }
    if (!p.ok()) {
      if (!absl::IsResourceExhausted(p.status())) Fail("Allocate: ", p.status().ToString());
      return false;
    }
    Allocation a{*p, size, stream, NewOwner()};
    Trace("alloc #", a.owner, " ", Hex(reinterpret_cast<DevicePtr>(a.ptr)), "+", Hex(size),
          " stream ", Hex(stream), " capture_stream ", Hex(capture_stream_.load()));
    if (into == &me.live) CheckOutsideLiveGraph(a);
    WriteTags(a);
    LaunchOn(a, stream);
    into->push_back(a);
    return true;
  }

  // An allocation outside a capture must get none of a live graph's memory: its replays use it
  // (the device sees it only when such a kernel overlaps a running replay; this sees it always).
  void CheckOutsideLiveGraph(const Allocation& a) {
    const auto begin = reinterpret_cast<DevicePtr>(a.ptr);
    std::lock_guard<std::mutex> lock(graph_mu_);
    for (const SimAccess& g : live_graph_) {
      if (begin < g.ptr + g.bytes && g.ptr < begin + a.size) {
        Fail(absl::StrFormat(
            "allocation %d [%#x, +%#x) on stream %#x overlaps allocation %d [%#x, +%#x), made "
            "by a graph capture whose pool is not released",
            a.owner, begin, a.size, a.stream, g.owner, g.ptr, g.bytes));
        return;
      }
    }
  }

  void Free(const Allocation& a) {
    CheckTags(a);
    Trace("free #", a.owner, " ", Hex(reinterpret_cast<DevicePtr>(a.ptr)), " stream ",
          Hex(a.stream));
    if (absl::Status s = allocator_->Free(a.ptr); !s.ok()) Fail("Free: ", s.ToString());
  }

  void FreeOne(ThreadState& me, int thread) {
    for (int tries = 0; tries < 4 && !me.live.empty(); ++tries) {
      const std::size_t i = me.rng() % me.live.size();
      if (!Usable(me.live[i], thread)) continue;
      const Allocation a = me.live[i];
      me.live[i] = me.live.back();
      me.live.pop_back();
      Free(a);
      return;
    }
  }

  // The user's way to use an allocation on another stream: order that stream after the
  // allocating one, use it there, and tell the allocator (record_stream).
  void UseOnOtherStream(ThreadState& me, int thread) {
    if (me.live.empty()) return;
    Allocation& a = me.live[me.rng() % me.live.size()];
    const StreamHandle other = PickStream(me, thread);
    if (!Usable(a, thread) || other == a.stream || other == kNoStream) return;
    absl::StatusOr<EventHandle> event = device_->CreateEvent();
    if (!event.ok()) return Fail("CreateEvent: ", event.status().ToString());
    {
      // An event recorded inside a capture may not be waited on by a stream outside it (the
      // simulated device has no cross-stream captures): the user's fork is left out then, and
      // a capture does not begin or end between the check, the record and the wait.
      std::lock_guard<std::mutex> fork(fork_mu_);
      if (a.stream == capture_stream_.load() || other == capture_stream_.load()) {
        if (absl::Status s = device_->DestroyEvent(*event); !s.ok()) Fail("DestroyEvent: ", s);
        return;
      }
      if (absl::Status s = device_->RecordEvent(*event, a.stream); !s.ok()) Fail("Record: ", s);
      if (absl::Status s = device_->StreamWaitEvent(other, *event); !s.ok()) Fail("Wait: ", s);
    }
    LaunchOn(a, other);
    Trace("record_stream #", a.owner, " from ", Hex(a.stream), " to ", Hex(other));
    if (absl::Status s = allocator_->RecordStream(a.ptr, other); !s.ok()) Fail("RecordStream: ", s);
    if (absl::Status s = device_->DestroyEvent(*event); !s.ok()) Fail("DestroyEvent: ", s);
  }

  void Capture(ThreadState& me, int thread, bool announced) {
    const StreamHandle stream = PickStream(me, thread);
    if (stream == kNoStream) return;
    const PoolId pool = next_pool_.fetch_add(1) + 1;
    Trace(announced ? "announced" : "unannounced", " capture of pool ", pool, " on ", Hex(stream));
    if (announced) {
      // As PyTorch announces it: before the capture begins, with a filter that takes the stream
      // only while it captures. Another thread's allocation on it just before or after the
      // capture is the shared pool's, never a block the graph freed and its replays still use.
      allocator_->BeginAllocateToPool(pool, GraphCaptureFilter(device_.get(), stream));
    }
    {
      // The capture begins only between other threads' steps. A step picks a stream that does
      // not capture, then allocates or launches on it: if the capture began in between, its
      // allocation would come from the graph's pool (as PyTorch's would: the filter takes the
      // stream) and be used outside the graph, unordered with the replays. That is a user's
      // error (work from another thread on a capturing stream), not the allocator's, and it is
      // what VMM seed 11072 (and, by its signature, seed 293) reported before this gate.
      std::unique_lock<std::shared_mutex> steps(step_gate_, std::defer_lock);
      if (announced) steps.lock();  // an unannounced capture runs alone already
      std::lock_guard<std::mutex> fork(fork_mu_);
      capture_stream_ = stream;
      capture_thread_ = thread;
      device_->SetCapturing(stream, true);
    }
    std::vector<Allocation> captured;
    std::vector<SimAccess> graph;  // everything the graph's kernels touch
    const int steps = 1 + static_cast<int>(me.rng() % 6);
    for (int i = 0; i < steps && !failed_; ++i) {
      Jitter(me);
      if (captured.empty() || me.rng() % 3 != 0) {
        if (Allocate(me, thread, stream, &captured)) {
          const Allocation& a = captured.back();
          graph.push_back({reinterpret_cast<DevicePtr>(a.ptr), a.size, a.owner});
          if (announced) {
            std::lock_guard<std::mutex> lock(graph_mu_);
            live_graph_.push_back(graph.back());
          }
        }
      } else {
        // Freed inside the capture: its memory stays the graph's.
        const std::size_t j = me.rng() % captured.size();
        Free(captured[j]);
        captured[j] = captured.back();
        captured.pop_back();
      }
    }
    {
      std::lock_guard<std::mutex> fork(fork_mu_);
      device_->SetCapturing(stream, false);
      capture_stream_ = kNoStream;
      capture_thread_ = -1;
    }
    Trace("capture of pool ", pool, " on ", Hex(stream), " ended");
    if (!announced) {
      for (const Allocation& a : captured) me.live.push_back(a);
      return;
    }
    if (absl::Status s = allocator_->EndAllocateToPool(pool); !s.ok()) Fail("EndAllocate: ", s);
    // Replays on another stream, then the graph goes away with its pool. The simulated device
    // ran the captured kernels as ordinary work; a real graph runs them only in the replays, so
    // the replay stream is ordered after them (as a user's first replay follows the capture).
    const int replays = skip_replay_ ? 0 : static_cast<int>(me.rng() % 3);
    const StreamHandle replay_stream = PickStream(me, thread);
    if (replays > 0 && replay_stream != stream && replay_stream != kNoStream) {
      absl::StatusOr<EventHandle> captured_work = device_->CreateEvent();
      if (!captured_work.ok()) return Fail("CreateEvent: ", captured_work.status());
      if (absl::Status s = device_->RecordEvent(*captured_work, stream); !s.ok()) {
        Fail("RecordEvent: ", s);
      }
      if (absl::Status s = device_->StreamWaitEvent(replay_stream, *captured_work); !s.ok()) {
        Fail("StreamWaitEvent: ", s);
      }
      if (absl::Status s = device_->DestroyEvent(*captured_work); !s.ok())
        Fail("DestroyEvent: ", s);
    }
    for (int r = 0; r < replays && !graph.empty() && replay_stream != kNoStream; ++r) {
      Launch(replay_stream, graph, "replay");
    }
    for (const Allocation& a : captured) Free(a);
    Trace("release pool ", pool);
    {
      // Forgotten before the release: after it the device's checks alone decide.
      std::lock_guard<std::mutex> lock(graph_mu_);
      live_graph_.clear();
    }
    if (absl::Status s = allocator_->ReleasePool(pool); !s.ok()) Fail("ReleasePool: ", s);
  }

  // Destroys a stream and leaves it dead while the others run on (the allocator may still hold
  // blocks cached for it); the next call creates a stream again, usually with the same handle.
  void DestroyOrRecreateStream(ThreadState& me) {
    if (dead_index_ >= 0) {
      const StreamHandle fresh = device_->CreateStream();  // often the same value
      Trace("stream ", Hex(fresh), " created in place of ", Hex(dead_stream_));
      streams_[dead_index_] = fresh;
      // The dead stream's allocations carry on here, after what it ran (fills included), as a
      // careful user orders them.
      if (absl::Status s = device_->StreamWaitEvent(fresh, dead_work_); !s.ok()) Fail("Wait: ", s);
      if (absl::Status s = device_->DestroyEvent(dead_work_); !s.ok()) Fail("DestroyEvent: ", s);
      // Every thread waits outside its step: their allocations move to the new stream.
      for (ThreadState* state : states_) {
        for (Allocation& a : state->live) {
          if (a.stream == dead_stream_) a.stream = fresh;
        }
      }
      dead_index_ = -1;
      return;
    }
    if (streams_.size() < 3) return;  // keep two live streams for the others
    const std::size_t index = me.rng() % streams_.size();
    const StreamHandle old = streams_[index];
    absl::StatusOr<EventHandle> last_work = device_->CreateEvent();
    if (!last_work.ok()) return Fail("CreateEvent: ", last_work.status());
    dead_work_ = *last_work;
    if (absl::Status s = device_->RecordEvent(dead_work_, old); !s.ok()) Fail("RecordEvent: ", s);
    Trace("stream ", Hex(old), " destroyed");
    if (absl::Status s = allocator_->StreamDestroyed(old); !s.ok()) Fail("StreamDestroyed: ", s);
    if (absl::Status s = device_->DestroyStream(old); !s.ok()) Fail("DestroyStream: ", s);
    streams_[index] = kNoStream;
    dead_index_ = static_cast<int>(index);
    dead_stream_ = old;
  }

  void Step(ThreadState& me, int thread) {
    const int op = static_cast<int>(me.rng() % 1000);
    if (op < 40) {
      // Exclusive: no other thread is mid-step while a stream dies or an unannounced capture
      // runs (in global capture mode nobody else may query events meanwhile, and the allocator
      // cannot know of other threads' requests).
      std::unique_lock<std::shared_mutex> lock(world_);
      if (op < 25) {
        if (!skip_destroy_) DestroyOrRecreateStream(me);
      } else if (!skip_unannounced_) {
        Capture(me, thread, /*announced=*/false);
      }
      return;
    }
    std::shared_lock<std::shared_mutex> lock(world_);
    // Every other step holds the gate an announced capture's start waits for (see Capture).
    std::shared_lock<std::shared_mutex> gate(step_gate_, std::defer_lock);
    if (op < 900 || op >= 940) gate.lock();
    if (op < 60) {
      // While the other threads go on, as torch.cuda.empty_cache() from a second thread would:
      // its device synchronization runs without the allocator's lock, and what the others free
      // meanwhile (record_stream'ed blocks whose other stream is still at work) is not covered
      // by it. Run alone, as it was until the sixth session, it never met defect b.
      if (skip_empty_cache_) return;
      Trace("empty cache");
      if (absl::Status s = allocator_->EmptyCache(); !s.ok()) Fail("EmptyCache: ", s);
    } else if (op < 380) {
      const StreamHandle stream = PickStream(me, thread);
      Jitter(me);
      if (me.live.size() < 12 && stream != kNoStream) Allocate(me, thread, stream, &me.live);
    } else if (op < 560) {
      // A kernel over one to three of this thread's allocations of one stream.
      if (me.live.empty()) return;
      const Allocation& first = me.live[me.rng() % me.live.size()];
      if (!Usable(first, thread)) return;
      std::vector<SimAccess> accesses;
      for (const Allocation& a : me.live) {
        if (a.stream == first.stream && accesses.size() < 3 && me.rng() % 2 == 0) {
          accesses.push_back({reinterpret_cast<DevicePtr>(a.ptr), a.size, a.owner});
        }
      }
      if (accesses.empty()) {
        accesses.push_back({reinterpret_cast<DevicePtr>(first.ptr), first.size, first.owner});
      }
      Launch(first.stream, std::move(accesses), "kernel");
    } else if (op < 800) {
      FreeOne(me, thread);
    } else if (op < 900) {
      if (!skip_record_stream_) UseOnOtherStream(me, thread);
    } else if (op < 940) {
      if (skip_announced_) return;
      bool expected = false;
      if (capturing_.compare_exchange_strong(expected, true)) {
        Capture(me, thread, /*announced=*/true);
        capturing_ = false;
      }
    } else if (op < 980) {
      if (skip_budget_) return;
      // From any thread, while others allocate: a hard cap, or none.
      const std::size_t capacity = device_->Capabilities().total_bytes;
      const std::size_t budget = me.rng() % 3 == 0 ? 0 : capacity / 4 + me.rng() % capacity;
      Trace("budget ", budget);
      allocator_->SetBudget(budget);
    } else if (op < 990) {
      if (absl::Status s = allocator_->EnablePeerAccess(1); !s.ok()) Fail("EnablePeerAccess: ", s);
    } else {
      (void)allocator_->GetStats();
    }
  }

  void Worker(int thread, std::uint64_t thread_seed) {
    current_thread_ = thread;
    ThreadState& me = *states_by_thread_[thread];
    me.rng.seed(thread_seed);
    me.jitter_rng.seed(thread_seed ^ 0x9e3779b97f4a7c15u);
    const int steps = 40 + static_cast<int>(me.rng() % 80);
    for (int i = 0; i < steps && !failed_; ++i) Step(me, thread);
  }

  void Finish() {
    for (ThreadState* state : states_) {
      for (const Allocation& a : state->live) Free(a);
      state->live.clear();
    }
    if (absl::Status s = allocator_->EmptyCache(); !s.ok()) Fail("EmptyCache: ", s);
    if (absl::Status s = allocator_->CheckInvariants(); !s.ok()) Fail("invariants: ", s);
    if (absl::Status s = allocator_->Shutdown(); !s.ok()) Fail("Shutdown: ", s);
    if (absl::Status s = device_->SynchronizeDevice(); !s.ok()) Fail("SynchronizeDevice: ", s);
  }

 public:
  void PrepareThreads() {
    for (int t = 0; t < threads_; ++t) {
      owned_states_.push_back(std::make_unique<ThreadState>());
      states_.push_back(owned_states_.back().get());
    }
    states_by_thread_ = states_;
  }
  bool failed() const { return failed_; }
  int threads() const { return threads_; }
  std::vector<std::string> trace() {
    std::lock_guard<std::mutex> lock(trace_mu_);
    return trace_;
  }
  DeviceStats stats() const { return allocator_->GetStats(); }

 private:
  static constexpr StreamHandle kNoStream = ~StreamHandle{0};
  static constexpr absl::Duration kSynchronizeLatency = absl::Microseconds(300);

  const std::uint64_t seed_;
  const bool check_bytes_;  // memory mode: tags written and checked
  const bool skip_destroy_ = Skipped("destroy");
  const bool skip_unannounced_ = Skipped("unannounced");
  const bool skip_announced_ = Skipped("announced");
  const bool skip_replay_ = Skipped("replay");
  const bool skip_record_stream_ = Skipped("record_stream");
  const bool skip_empty_cache_ = Skipped("empty_cache");
  const bool skip_budget_ = Skipped("budget");
  const int jitter_us_ = [] {
    const char* value = std::getenv("VRAMCACHE_ORACLE_JITTER_US");
    return value != nullptr ? std::atoi(value) : 0;
  }();
  const bool tracing_ = [] {
    const char* value = std::getenv("VRAMCACHE_ORACLE_TRACE");
    return value != nullptr && *value != '\0' && *value != '0';
  }();
  static thread_local int current_thread_;
  std::mutex trace_mu_;
  std::vector<std::string> trace_;  // VRAMCACHE_ORACLE_TRACE's lines, in order
  std::mt19937_64 rng_;
  TickClock clock_;
  AllocatorConfig config_;
  std::unique_ptr<SimDevice> device_;
  std::unique_ptr<RecordingDevice> recorder_;  // between the allocator and device_, when recording
  std::unique_ptr<CachingAllocator> allocator_;
  int threads_ = 1;
  std::string description_;
  // Shared by steps, held exclusively to change the streams or run alone.
  std::shared_mutex world_;
  std::vector<StreamHandle> streams_;
  std::vector<std::unique_ptr<ThreadState>> owned_states_;
  std::vector<ThreadState*> states_;
  std::vector<ThreadState*> states_by_thread_;
  int dead_index_ = -1;  // the slot of the destroyed stream, if any (exclusive to change)
  StreamHandle dead_stream_ = kNoStream;
  EventHandle dead_work_ = 0;           // recorded on the dead stream just before its destruction
  std::atomic<bool> capturing_{false};  // one announced capture at a time
  std::atomic<StreamHandle> capture_stream_{kNoStream};
  std::mutex fork_mu_;  // a user's fork to another stream vs. a capture's start and end
  std::mutex graph_mu_;
  std::vector<SimAccess> live_graph_;  // the announced capture's allocations, until its release
  // Held shared by a step (after world_), exclusively by an announced capture's start.
  std::shared_mutex step_gate_;
  std::atomic<int> capture_thread_{-1};
  std::atomic<std::uint64_t> next_owner_{0};
  std::atomic<PoolId> next_pool_{0};
  std::atomic<bool> failed_{false};
};

thread_local int HazardOracle::World::current_thread_ = -1;

HazardOracle::HazardOracle(std::uint64_t seed, bool vmm, DeviceCallLog* calls, bool check_bytes)
    : world_(std::make_unique<World>(seed, vmm, calls, check_bytes)) {}

HazardOracle::~HazardOracle() = default;

const std::string& HazardOracle::description() const { return world_->description(); }
int HazardOracle::threads() const { return world_->threads(); }
bool HazardOracle::failed() const { return world_->failed(); }
DeviceStats HazardOracle::stats() const { return world_->stats(); }
std::vector<std::string> HazardOracle::trace() const { return world_->trace(); }

void HazardOracle::Run() {
  world_->PrepareThreads();
  world_->Run();
}

}  // namespace vramcache
