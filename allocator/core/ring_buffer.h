// A bounded history: keeps the newest `capacity` entries, the oldest overwritten first
// (record_history's trace, as PyTorch's RingBuffer<TraceEntry>). Storage grows only as entries
// arrive, so a large capacity costs nothing until it is used. Not thread-safe: the allocator
// calls it with its lock held.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace vramcache {

template <typename T>
class RingBuffer {
 public:
  // A capacity of 0 keeps nothing.
  explicit RingBuffer(std::size_t capacity) : capacity_(capacity) {}

  void Push(T entry) {
    if (capacity_ == 0) return;
    if (entries_.size() < capacity_) {
      entries_.push_back(std::move(entry));
      return;
    }
    // Full: the oldest entry, at `oldest_`, makes room, and the next one becomes the oldest.
    entries_[oldest_] = std::move(entry);
    oldest_ = (oldest_ + 1) % capacity_;
  }

  std::size_t size() const { return entries_.size(); }
  std::size_t capacity() const { return capacity_; }
  bool empty() const { return entries_.empty(); }

  // The `i`-th entry kept, 0 being the oldest; `i` < size().
  const T& operator[](std::size_t i) const { return entries_[(oldest_ + i) % entries_.size()]; }

  // Every entry kept, oldest first.
  std::vector<T> OldestFirst() const {
    std::vector<T> out;
    out.reserve(entries_.size());
    for (std::size_t i = 0; i < entries_.size(); ++i) out.push_back((*this)[i]);
    return out;
  }

 private:
  std::size_t capacity_;
  std::vector<T> entries_;  // in arrival order, rotated by `oldest_` once full
  std::size_t oldest_ = 0;  // index of the oldest entry in `entries_`
};

}  // namespace vramcache
