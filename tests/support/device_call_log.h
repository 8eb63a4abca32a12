// The device calls one run made, in order, as normalized text lines ("Malloc 2097152 -> m0"):
// a count per call name, a 64-bit FNV-1a hash of the whole sequence (a short identifier for a
// summary), and, when asked, the lines (all, or all but the calls named as not kept, to keep a
// stored sequence small).
//
// The allocator releases some things by walking hash containers, whose order differs from
// process to process (Abseil seeds its hashes per process): a run of consecutive calls of one
// releasing kind (ReleaseChunk, Unmap, ReleaseAddress, Free, DestroyEvent) is recorded sorted,
// as a set, so the log is the same on every run. Call Finish() before reading.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace vramcache {

class DeviceCallLog {
 public:
  // Keeps no lines: counts and hash only.
  DeviceCallLog() = default;
  // Keeps the lines of every call but those named in `not_kept` (which are still counted and
  // hashed).
  explicit DeviceCallLog(std::set<std::string> not_kept)
      : keep_lines_(true), not_kept_(std::move(not_kept)) {}

  // `line` starts with the call's name, then a space or the end.
  void Add(const std::string& line);
  // Records the pending run of releasing calls; Add may follow.
  void Finish();

  std::uint64_t calls() const { return calls_; }
  std::uint64_t hash() const { return hash_; }
  // Call name -> how many times, sorted by name.
  const std::map<std::string, std::uint64_t>& counts() const { return counts_; }
  // The kept lines, in order; empty when constructed without a set of calls not kept.
  const std::vector<std::string>& lines() const { return lines_; }

 private:
  void Record(const std::string& name, const std::string& line);

  bool keep_lines_ = false;
  std::set<std::string> not_kept_;
  std::string pending_name_;  // the releasing kind of `pending_`
  std::vector<std::string> pending_;
  std::uint64_t calls_ = 0;
  std::uint64_t hash_ = 14695981039346656037ull;  // FNV-1a's offset basis
  std::map<std::string, std::uint64_t> counts_;
  std::vector<std::string> lines_;
};

}  // namespace vramcache
