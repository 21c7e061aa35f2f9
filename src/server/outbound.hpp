// Internal to server/: delivery of the outbound queue, and the recipient lookup it shares with
// the inbound session.
#pragma once

#include <optional>

#include "server/asio_util.hpp"
#include "server/server.hpp"

namespace postern::server {

// A recipient's fate: an account id, or the rejection to send. Store failures are errors
// (451 4.3.0), never a permanent "unknown user".
struct RecipientVerdict {
  std::optional<smtp::Reply> rejection;
  int64_t account_id = 0;
};
Result<RecipientVerdict> lookup_recipient(store::Store& store, const mime::Mailbox& mb,
                                          const std::string& postmaster);

// Runs the queue: every scan_interval (or at once after kick()) it takes the due messages,
// delivers local recipients through the committer and remote ones over SMTP, and records the
// outcome. All its state lives on one strand.
class DnsPump;

class Outbound {
 public:
  Outbound(asio::io_context& io, asio::thread_pool& pool, Services services,
           OutboundSettings settings, DnsPump* dns);
  ~Outbound();
  void start();
  void kick();  // from any thread: a message was queued
  void stop();
  std::size_t active() const;  // messages being delivered (shutdown waits for them)

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace postern::server
