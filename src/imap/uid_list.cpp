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

void UidList::erase_all(const std::vector<uint32_t>& sorted) {
  if (sorted.empty()) return;
  std::vector<Run> out;
  out.reserve(runs_.size() + sorted.size());
  std::size_t k = 0;
  uint32_t seq = 0;
  auto add = [&](uint32_t first, uint32_t count) {
    if (count == 0) return;
    out.push_back({first, count, seq});
    seq += count;
  };
  for (const Run& r : runs_) {
    uint32_t first = r.first;
    uint32_t end = r.first + r.count;  // one past the run
    while (k < sorted.size() && sorted[k] < first) ++k;
    while (k < sorted.size() && sorted[k] < end) {
      add(first, sorted[k] - first);
      first = sorted[k] + 1;
      ++k;
    }
    add(first, end - first);
  }
  runs_ = std::move(out);
  size_ = seq;
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
