// The reuse cache's lists (reuse_cache.h; Push and Pop are inline there): singly linked through
// Block::cache_next, one list per key, so push and pop touch one hash slot and one block.
#include "allocator/core/reuse_cache.h"

#include <algorithm>

namespace vramcache {

Block*& ReuseCache::ListOfSlow(const ReuseKey& key) {
  auto [it, inserted] = lists_.try_emplace(key, nullptr);
  // An insert may have moved every slot: the one remembered now is the only one known valid.
  last_key_ = key;
  last_list_ = &it->second;
  return it->second;
}

const std::vector<Block*>& ReuseCache::TakeAllByAddress() {
  taken_.clear();
  for (auto& [key, head] : lists_) {
    for (Block* b = head; b != nullptr; b = b->cache_next) taken_.push_back(b);
  }
  lists_.clear();
  ForgetLastList();
  bytes_ = 0;
  std::sort(taken_.begin(), taken_.end(),
            [](const Block* a, const Block* b) { return a->addr < b->addr; });
  for (Block* block : taken_) block->cache_next = nullptr;
  return taken_;
}

const std::vector<Block*>& ReuseCache::TakeStreamByAddress(StreamHandle stream) {
  if (one_stream_ || bytes_ == 0) {
    if (bytes_ != 0 && stream == only_stream_) return TakeAllByAddress();
    taken_.clear();  // nothing of `stream` is listed
    return taken_;
  }
  taken_.clear();
  for (auto it = lists_.begin(); it != lists_.end();) {
    if (it->first.stream != stream) {
      ++it;
      continue;
    }
    for (Block* b = it->second; b != nullptr; b = b->cache_next) {
      taken_.push_back(b);
      bytes_ -= b->size;
    }
    lists_.erase(it++);
    ForgetLastList();
  }
  std::sort(taken_.begin(), taken_.end(),
            [](const Block* a, const Block* b) { return a->addr < b->addr; });
  for (Block* block : taken_) block->cache_next = nullptr;
  return taken_;
}

std::size_t ReuseCache::LargestBlock() const {
  std::size_t largest = 0;
  for (const auto& [key, head] : lists_) {
    for (const Block* b = head; b != nullptr; b = b->cache_next)
      largest = std::max(largest, b->size);
  }
  return largest;
}

}  // namespace vramcache
