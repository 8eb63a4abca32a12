// The reuse cache's lists (reuse_cache.h; Push and Pop are inline there): singly linked through
// Block::cache_next, one list per key, so push and pop touch one hash slot and one block.
#include "allocator/core/reuse_cache.h"

#include <algorithm>

namespace vramcache {

ReuseList& ReuseCache::ListOfSlow(const ReuseKey& key) {
  auto [it, inserted] = lists_.try_emplace(key);
  // An insert may have moved every slot: the one remembered now is the only one known valid.
  last_key_ = key;
  last_list_ = &it->second;
  return it->second;
}

void ReuseCache::TakeList(ReuseList& list) {
  for (Block* b = list.head; b != nullptr; b = b->cache_next) {
    taken_.push_back(b);
    bytes_ -= b->size;
  }
  list.head = nullptr;
  list.listed = false;
}

const std::vector<Block*>& ReuseCache::FinishTake() {
  if (taken_.size() > 1) {
    std::sort(taken_.begin(), taken_.end(),
              [](const Block* a, const Block* b) { return a->addr < b->addr; });
  }
  for (Block* block : taken_) block->cache_next = nullptr;
  return taken_;
}

void ReuseCache::TrimKeptLists() {
  if (lists_.size() <= kMaxKeptLists) return;
  absl::erase_if(lists_, [](const auto& entry) {
    return entry.second.head == nullptr && !entry.second.listed;
  });
  ForgetLastList();
}

const std::vector<Block*>& ReuseCache::TakeAllByAddress() {
  taken_.clear();
  // A slow-path allocation's flush usually takes the one block its free just pushed: no loops,
  // no sort (they cost mixed_sizes 2% of its instructions, callgrind, issue #18).
  if (listed_.size() == 1 && last_list_ != nullptr && listed_.front() == last_key_ &&
      last_list_->head != nullptr && last_list_->head->cache_next == nullptr) {
    Block* block = last_list_->head;
    last_list_->head = nullptr;
    last_list_->listed = false;
    listed_.clear();
    bytes_ -= block->size;
    taken_.push_back(block);
    TrimKeptLists();
    return taken_;
  }
  for (const ReuseKey& key : listed_) {
    // The list a slow-path allocation's flush takes is usually the one its free just pushed to.
    if (last_list_ != nullptr && key == last_key_) {
      TakeList(*last_list_);
    } else {
      TakeList(lists_.find(key)->second);
    }
  }
  listed_.clear();
  TrimKeptLists();
  return FinishTake();
}

const std::vector<Block*>& ReuseCache::TakeStreamByAddress(StreamHandle stream) {
  if (one_stream_ || bytes_ == 0) {
    if (bytes_ != 0 && stream == only_stream_) return TakeAllByAddress();
    taken_.clear();  // nothing of `stream` is listed
    return taken_;
  }
  taken_.clear();
  std::size_t kept = 0;
  for (const ReuseKey& key : listed_) {
    if (key.stream != stream) {
      listed_[kept++] = key;
      continue;
    }
    TakeList(lists_.find(key)->second);
  }
  listed_.resize(kept);
  TrimKeptLists();
  return FinishTake();
}

std::size_t ReuseCache::LargestBlock() const {
  std::size_t largest = 0;
  for (const auto& [key, list] : lists_) {
    for (const Block* b = list.head; b != nullptr; b = b->cache_next)
      largest = std::max(largest, b->size);
  }
  return largest;
}

}  // namespace vramcache
