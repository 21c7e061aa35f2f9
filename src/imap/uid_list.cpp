// A selected mailbox's uids as runs of consecutive uids (see imap.hpp).
#include <algorithm>

#include "imap/imap.hpp"

namespace postern::imap {

uint32_t UidList::seq_of(uint32_t uid) const {
  auto it = std::upper_bound(runs_.begin(), runs_.end(), uid,
                             [](uint32_t u, const Run& r) { return u < r.first; });
  if (it == runs_.begin()) return 0;
  --it;
  if (uid - it->first >= it->count) return 0;
  return it->start + (uid - it->first) + 1;
}

uint32_t UidList::at(uint32_t seq) const {
  auto it = std::upper_bound(runs_.begin(), runs_.end(), seq - 1,
                             [](uint32_t s, const Run& r) { return s < r.start; });
  --it;
  return it->first + (seq - 1 - it->start);
}

void UidList::push_back(uint32_t uid) {
  if (!runs_.empty() && uid == largest() + 1) {
    ++runs_.back().count;
  } else {
    runs_.push_back({uid, 1, size_});
  }
  ++size_;
}

void UidList::erase(uint32_t uid) {
  auto it = std::upper_bound(runs_.begin(), runs_.end(), uid,
                             [](uint32_t u, const Run& r) { return u < r.first; });
  if (it == runs_.begin()) return;
  --it;
  uint32_t offset = uid - it->first;
  if (offset >= it->count) return;
  std::size_t index = static_cast<std::size_t>(it - runs_.begin());
  if (it->count == 1) {
    runs_.erase(it);
  } else if (offset == 0) {
    ++it->first;
    --it->count;
    ++index;  // this run keeps its start
  } else if (offset == it->count - 1) {
    --it->count;
    ++index;
  } else {
    Run tail{uid + 1, it->count - offset - 1, it->start + offset + 1};
    it->count = offset;
    runs_.insert(it + 1, tail);
    ++index;
  }
  for (std::size_t i = index; i < runs_.size(); ++i) --runs_[i].start;
  --size_;
  if (runs_.capacity() > 2 * runs_.size() + 8) runs_.shrink_to_fit();
}

std::vector<uint32_t> UidList::between(uint32_t lo, uint32_t hi) const {
  std::vector<uint32_t> out;
  if (lo > hi) return out;
  for (const auto& r : runs_) {
    uint32_t last = r.first + r.count - 1;
    if (last < lo) continue;
    if (r.first > hi) break;
    for (uint32_t u = std::max(lo, r.first); u <= std::min(hi, last); ++u) out.push_back(u);
  }
  return out;
}

std::vector<uint32_t> UidList::slice(uint32_t first_seq, uint32_t last_seq) const {
  std::vector<uint32_t> out;
  if (first_seq == 0 || first_seq > last_seq || last_seq > size_) return out;
  out.reserve(last_seq - first_seq + 1);
  for (uint32_t s = first_seq; s <= last_seq;) {
    auto it = std::upper_bound(runs_.begin(), runs_.end(), s - 1,
                               [](uint32_t x, const Run& r) { return x < r.start; });
    --it;
    uint32_t offset = s - 1 - it->start;
    for (uint32_t k = offset; k < it->count && s <= last_seq; ++k, ++s)
      out.push_back(it->first + k);
  }
  return out;
}

}  // namespace postern::imap
