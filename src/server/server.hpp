// Protocol servers bound to sockets: coroutines that drive the pure protocol machines over
// Asio streams and call the store/keys services. Phase 1 runs everything in one process.
#pragma once

#include "base/clock.hpp"
#include "base/error.hpp"
#include "crypto/crypto.hpp"
#include "imap/imap.hpp"
#include "mailauth/mailauth.hpp"
#include "smtp/smtp.hpp"
#include "store/store.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace boost::asio::ssl {
class context;
}
namespace postern::queue {
class Queue;
}
namespace postern::dns {
class Resolver;
}

namespace postern::server {

enum class Errc { shutting_down = 1, no_mailbox };
const std::error_category& category();
inline std::error_code make_error_code(Errc e) {
  return {static_cast<int>(e), category()};
}

// A message ready to commit: encrypted, its blob written (the committer makes it durable).
struct PreparedMessage {
  store::NewMessage record;
  store::PendingBlob blob;
};

// One message received over SMTP, with the accounts its recipients resolved to.
struct DeliveryRequest {
  smtp::Envelope envelope;
  std::string message;
  std::map<std::string, int64_t> accounts;  // recipient lookup key -> account id
  std::string client_ip;
  std::string tls_cipher;  // empty without TLS
  std::string queue_id;
  std::string hostname;
  std::string authentication_results;  // the field to add after Received; may be empty
  bool junk = false;                   // DMARC quarantine: into the Junk mailbox
};

struct Services;
// Encrypts the message once per recipient account (Return-Path, Delivered-To and Received
// added) and writes each blob; nothing is durable or visible until the Committer commits it.
Result<std::vector<PreparedMessage>> prepare_delivery(const Services& svc,
                                                      const DeliveryRequest& request);
// Encrypts one message to an account's storage key and writes its blob: the record is complete
// except for mailbox, flags and date. Used by delivery and by IMAP APPEND.
Result<PreparedMessage> seal_message_for(const Services& svc, std::string_view storage_public,
                                         std::string_view content);
// The SMTP reply for a failed delivery: always 4xx, so the client keeps the message.
smtp::Reply delivery_failure_reply(const Error& e);

// Group commit: many sessions' messages become durable with one directory fsync and one
// database commit. `done` runs on the committer thread; 250 is sent only after it reports
// success.
class Committer {
 public:
  // Delivery digests older than `dedupe_window` are forgotten (checked every few commits).
  Committer(store::Store& store, store::BlobStore& blobs, std::size_t max_batch,
            const base::Clock& clock, std::chrono::seconds dedupe_window);
  ~Committer();
  Committer(const Committer&) = delete;
  Committer& operator=(const Committer&) = delete;
  // `assigned`, when given, receives each message's uid before `done` runs; it must stay
  // valid until then.
  void submit(std::vector<PreparedMessage> messages, std::function<void(Result<void>)> done,
              std::vector<store::Assigned>* assigned = nullptr);
  void stop();               // finishes what was submitted, then refuses new work
  uint64_t commits() const;  // number of batches committed (tests check grouping)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

struct SmtpSettings {
  smtp::Options protocol;
  std::chrono::seconds command_timeout{300};
  std::chrono::seconds data_timeout{600};
  std::size_t max_connections = 1000;
  std::size_t max_connections_per_ip = 20;
  std::string postmaster;       // account address for postmaster@<local domain>
  crypto::Argon2Params argon2;  // cost a failed AUTH for an unknown user must match
  // Submission: DKIM-sign with the From domain's newest keys (Ed25519 and RSA).
  bool dkim_sign = true;
  // MX: SPF, DKIM and DMARC on every message (needs the resolver), enforced as configured.
  bool authenticate = true;
  mailauth::InboundOptions authentication;
  std::vector<std::string> authenticate_skip;  // client networks left unchecked (loopback)
};

// Tells sessions that an account's mail changed (a delivery, another session's STORE), so IDLE
// can report it at once. Callbacks run on the notifying thread and must only post work.
class ChangeBus {
 public:
  using Callback = std::function<void()>;
  // The subscription lasts as long as the returned handle.
  std::shared_ptr<Callback> subscribe(int64_t account_id, Callback cb);
  void notify(int64_t account_id);

 private:
  std::mutex mu_;
  std::map<int64_t, std::vector<std::weak_ptr<Callback>>> subs_;
};

struct ImapSettings {
  std::string hostname;
  imap::Limits limits;
  std::chrono::seconds login_timeout{60};   // to authenticate
  std::chrono::seconds idle_timeout{1800};  // RFC 9051 5.4: at least 30 minutes
  std::size_t max_connections = 10000;
  std::size_t max_connections_per_ip = 50;
  crypto::Argon2Params argon2;  // of new keyrings: the cost a failed login must match
};

// Outbound delivery of the queue (server/outbound.cpp).
struct OutboundSettings {
  std::string hostname;       // EHLO name
  uint16_t remote_port = 25;  // tests point it elsewhere
  std::size_t max_connections = 100;
  std::size_t max_per_domain = 10;  // parallel connections to one destination domain
  std::size_t max_mx_hosts = 5;     // MX hosts tried per attempt
  bool ipv6 = true;
  std::chrono::seconds connect_timeout{30};
  std::chrono::seconds command_timeout{300};  // RFC 5321 4.5.3.2: 5 minutes per reply ...
  std::chrono::seconds data_timeout{600};     // ... 10 for the final one
  std::chrono::milliseconds scan_interval{1000};
  std::string postmaster;  // as SmtpSettings::postmaster, for local delivery from the queue
};

// DMARC aggregate reports we send (server/dmarc_reports.cpp).
struct DmarcReportSettings {
  bool enabled = true;
  std::string org_name;     // <org_name> of our reports, and the receiver part of file names
  std::string report_from;  // From and envelope sender; its domain's DKIM keys sign
  std::chrono::seconds check_interval{3600};  // how often the server looks for a finished day
};

struct Services {
  store::Store* store = nullptr;
  store::BlobStore* blobs = nullptr;
  Committer* committer = nullptr;
  const base::Clock* clock = nullptr;
  std::shared_ptr<boost::asio::ssl::context> tls;  // null: no STARTTLS
  // 32-byte instance secret for delivery digests (null: no dedupe); owned by the caller.
  const crypto::SecretBytes* dedupe_key = nullptr;
  ChangeBus* changes = nullptr;       // null: no live notifications
  queue::Queue* queue = nullptr;      // null: no submission, no outbound delivery
  dns::Resolver* resolver = nullptr;  // for outbound delivery
  std::shared_ptr<boost::asio::ssl::context> client_tls;  // outbound STARTTLS
  // 32-byte instance key sealing DMARC report events (null: none recorded).
  const crypto::SecretBytes* report_key = nullptr;
};

struct ServerOptions {
  std::vector<std::string> smtp_listen;
  SmtpSettings smtp;
  // Submission (RFC 6409 / RFC 8314): STARTTLS on `submission_listen` (587), implicit TLS on
  // `submissions_listen` (465); AUTH required. Uses smtp's limits and timeouts.
  std::vector<std::string> submission_listen;
  std::vector<std::string> submissions_listen;
  OutboundSettings outbound;
  DmarcReportSettings dmarc_reports;
  std::vector<std::string> imap_listen;   // STARTTLS
  std::vector<std::string> imaps_listen;  // implicit TLS
  ImapSettings imap;
  std::size_t io_threads = 2;
  std::size_t blocking_threads = 4;
  std::string run_as_user;
  // On SIGTERM: sessions waiting for a command get 421 at once; one in the middle of a message
  // may finish it for this long before the process stops.
  std::chrono::seconds shutdown_grace{10};
};

// The order follows Postfix's: bind() binds every listener as root and drops privileges; only
// then does the caller open the store and blobs (so every file is created by the unprivileged
// user), and run() serves them.
class Server {
 public:
  explicit Server(ServerOptions options);
  ~Server();
  // Binds every listener (errors name the address), then drops privileges if configured.
  Result<void> bind();
  // Runs until SIGINT/SIGTERM or stop().
  Result<void> run(Services services);
  void stop();
  // Bound addresses ("127.0.0.1:2525"), after bind().
  std::vector<std::string> bound() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace postern::server

template <>
struct std::is_error_code_enum<postern::server::Errc> : std::true_type {};
