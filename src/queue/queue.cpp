// Enqueueing, reading and administering queued messages.
#include "queue/queue.hpp"

#include <algorithm>
#include <cctype>

#include "base/random.hpp"
#include "base/text.hpp"

namespace postern::queue {
namespace {
std::string associated_data(std::string_view id) {
  return "postern-queue-v1:" + std::string(id);
}
}  // namespace

int64_t next_attempt(const Policy& p, int64_t now, int64_t attempts) {
  int64_t delay = p.first_retry.count();
  for (int64_t i = 1; i < attempts && delay < p.max_retry.count(); ++i) delay *= 2;
  return now + std::min<int64_t>(delay, p.max_retry.count());
}

std::string address_domain(std::string_view address) {
  auto at = address.rfind('@');
  if (at == std::string_view::npos) return {};
  return base::ascii_lower(address.substr(at + 1));
}

std::size_t hop_count(std::string_view message) {
  auto hs = mime::parse_header_section(message, mime::HeaderLimits{});
  if (!hs) return 0;
  std::size_t n = 0;
  for (const auto& h : hs->headers)
    if (base::iequals(h.name, "Received")) ++n;
  return n;
}

Queue::Queue(store::Store& store, store::BlobStore& blobs, crypto::SecretBytes key,
             const base::Clock& clock, Policy policy, std::string hostname)
    : store_(store),
      blobs_(blobs),
      key_(std::move(key)),
      clock_(clock),
      policy_(policy),
      hostname_(std::move(hostname)) {}

Result<std::string> Queue::enqueue(const NewMessage& m) {
  std::string id = base::system_random().token(10);
  std::string sealed = crypto::seal_random_nonce(key_.view(), associated_data(id), m.content);
  // Small messages (most mail) live in the row: one database commit makes them durable. Big
  // ones go to a blob file, synced before the row commits.
  std::string blob_id;
  if (sealed.size() > inline_limit) {
    auto blob = blobs_.write(sealed);
    if (!blob) return blob.error();
    blob_id = blob->id;
    if (auto r = blobs_.make_durable(std::span(&*blob, 1)); !r) {
      (void)blobs_.remove(blob_id);
      return r.error();
    }
    sealed.clear();
  }
  int64_t now = clock_.unix_seconds();
  store::QueuedMessage q;
  q.id = id;
  q.sender = m.sender;
  q.created = now;
  q.blob_id = blob_id;
  q.size = m.content.size();
  q.smtputf8 = m.smtputf8;
  q.eight_bit = m.eight_bit;
  q.requiretls = m.requiretls;
  for (const auto& r : m.recipients) {
    store::QueuedRecipient qr;
    qr.address = r;
    qr.domain = address_domain(r);
    qr.next_attempt = now;
    q.recipients.push_back(std::move(qr));
  }
  if (auto r = store_.enqueue(q, sealed); !r) {
    if (!blob_id.empty()) (void)blobs_.remove(blob_id);
    return r.error();
  }
  return id;
}

Result<std::string> Queue::content(const store::QueuedMessage& m) const {
  auto sealed = m.blob_id.empty() ? store_.queue_content(m.id) : blobs_.get(m.blob_id);
  if (!sealed) return sealed.error();
  return crypto::open_random_nonce(key_.view(), associated_data(m.id), *sealed);
}

Result<std::vector<store::QueuedMessage>> Queue::due(std::size_t limit) const {
  return store_.queue_due(clock_.unix_seconds(), limit);
}

Result<void> Queue::hold(std::string_view id, bool on) {
  auto m = store_.queued(id);
  if (!m) return m.error();
  if (!*m) return Error(store::Errc::not_found, "queue id " + std::string(id));
  return store_.set_queue_held(id, on);
}

Result<void> Queue::retry_now(std::string_view id) {
  auto m = store_.queued(id);
  if (!m) return m.error();
  if (!*m) return Error(store::Errc::not_found, "queue id " + std::string(id));
  return store_.queue_retry_now(id, clock_.unix_seconds());
}

Result<bool> Queue::remove(std::string_view id) {
  auto blob = store_.dequeue(id);
  if (!blob) return blob.error();
  if (!*blob) return false;
  // An orphan left by a failure here is swept at start-up.
  if (!(*blob)->empty()) (void)blobs_.remove(**blob);
  return true;
}

}  // namespace postern::queue
