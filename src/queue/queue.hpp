// The outbound queue: messages accepted for delivery elsewhere (or bounces for local senders),
// durable from the moment the client gets its 250 until every recipient is delivered or
// reported back to the sender. Rows live in store/ (queue_messages, queue_recipients); the
// content is a blob encrypted under the instance queue key. This module decides what happens
// after each delivery attempt: retry schedule, expiry, delay warnings and RFC 3464 bounces.
// server/ does the delivering.
//
// Security: the content is encrypted at rest (XChaCha20-Poly1305 under a 32-byte instance key,
// the message id as associated data, so one queued message cannot be swapped for another),
// in the queue row (up to 256 KiB) or in a blob file. The key
// sits in the database, so this protects blob files on their own (a copied blob directory, a
// backup of it), not a copy of the whole data directory. docs/crypto.md says so.
#pragma once

#include "base/clock.hpp"
#include "base/error.hpp"
#include "crypto/crypto.hpp"
#include "smtp/smtp.hpp"
#include "store/store.hpp"

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

namespace postern::queue {

struct Policy {
  std::chrono::seconds lifetime{5 * 24 * 3600};  // then bounce (RFC 5321 4.5.4.1: 4-5 days)
  std::chrono::seconds warn_after{4 * 3600};     // one delay notification after this long
  std::chrono::seconds first_retry{300};         // doubling after each attempt ...
  std::chrono::seconds max_retry{4 * 3600};      // ... up to this
  std::size_t max_hops = 50;                     // Received fields before a loop is declared
};

// When a recipient that failed `attempts` times (>= 1) is tried next.
int64_t next_attempt(const Policy& policy, int64_t now, int64_t attempts);

struct NewMessage {
  std::string sender;  // "" for <>
  std::vector<std::string> recipients;
  std::string content;  // CRLF line ends
  bool smtputf8 = false, eight_bit = false, requiretls = false;
};

// The result of trying one recipient.
struct Attempt {
  int64_t recipient_id = 0;
  smtp::Reply reply;       // 2xx delivered, 4xx retry, 5xx failed
  std::string remote_mta;  // host that answered ("" for local delivery or no connection)
};

class Queue {
 public:
  // Encrypted content up to this size is stored in the queue row, larger in a blob file.
  static constexpr std::size_t inline_limit = std::size_t{256} * 1024;
  Queue(store::Store& store, store::BlobStore& blobs, crypto::SecretBytes key,
        const base::Clock& clock, Policy policy, std::string hostname);
  // Durable when it returns: the blob is synced before the rows commit.
  Result<std::string> enqueue(const NewMessage& message);
  Result<std::string> content(const store::QueuedMessage& message) const;
  Result<std::vector<store::QueuedMessage>> due(std::size_t limit) const;

  // Records the attempts on `message`'s recipients, sends the bounce or delay notification
  // they call for (itself queued, to the sender), and removes the message once no recipient is
  // pending. Returns the recipients still pending.
  Result<std::size_t> record(store::QueuedMessage message, const std::vector<Attempt>& attempts);

  // Administration (`postern queue ...`).
  Result<void> hold(std::string_view id, bool on);
  Result<void> retry_now(std::string_view id);
  // Removes the message without a bounce.
  Result<bool> remove(std::string_view id);
  // Bounces the pending recipients of a message (`postern queue bounce`, and expiry).
  const Policy& policy() const { return policy_; }
  const base::Clock& clock() const { return clock_; }

 private:
  Result<void> notify_sender(const store::QueuedMessage& message,
                             const std::vector<smtp::DsnRecipient>& recipients);
  store::Store& store_;
  store::BlobStore& blobs_;
  crypto::SecretBytes key_;
  const base::Clock& clock_;
  Policy policy_;
  std::string hostname_;
};

// The lowercased domain of an address ("" when it has none).
std::string address_domain(std::string_view address);
// Received fields in a header section (the hop count of RFC 5321 6.3).
std::size_t hop_count(std::string_view message);

}  // namespace postern::queue
