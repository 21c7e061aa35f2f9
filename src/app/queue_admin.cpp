// `postern queue list|show|retry|delete|hold|release`: the operator's view of the outbound
// queue. Safe while the server runs: each change is one database transaction, and the server
// picks it up at its next scan. Message content is never shown (it is the users' mail).
#include <ostream>

#include "app/app.hpp"
#include "app/services.hpp"
#include "base/clock.hpp"

namespace postern::app {
namespace {

const char* state_name(store::RecipientState s) {
  switch (s) {
    case store::RecipientState::pending:
      return "pending";
    case store::RecipientState::delivered:
      return "delivered";
    case store::RecipientState::failed:
      return "failed";
  }
  return "?";
}

std::string date(int64_t t) {
  return base::rfc5322_date(std::chrono::system_clock::time_point(std::chrono::seconds(t)));
}

}  // namespace

int queue_command(const std::string& config_path, const std::string& action, const std::string& id,
                  std::ostream& out, std::ostream& err) {
  auto cfg = load_config(config_path);
  if (!cfg) {
    err << "postern: " << cfg.error().detail() << " (" << cfg.error().code().message() << ")\n";
    return exit_usage;
  }
  crypto::init();
  auto store = open_store(*cfg);
  if (!store) {
    err << "postern: database: " << store.error().describe() << "\n";
    return exit_failure;
  }
  store::BlobStore blobs(cfg->blob_dir());
  base::SystemClock clock;
  // The content key is not needed for any of these: a null key is never used to open a blob.
  queue::Queue q(**store, blobs, crypto::SecretBytes(32), clock, queue_policy(*cfg), cfg->hostname);
  auto fail = [&](const Error& e) {
    err << "postern: " << e.describe() << "\n";
    return e.code() == store::Errc::not_found ? exit_not_found : exit_failure;
  };
  if (action == "list") {
    auto all = (*store)->queue_all();
    if (!all) return fail(all.error());
    for (const auto& m : *all) {
      std::size_t pending = 0;
      int64_t next = 0;
      for (const auto& r : m.recipients)
        if (r.state == store::RecipientState::pending) {
          ++pending;
          next = next == 0 ? r.next_attempt : std::min(next, r.next_attempt);
        }
      out << m.id << "  " << m.size << " bytes  <" << m.sender << ">  " << pending << "/"
          << m.recipients.size() << " pending" << (m.held ? "  HELD" : "");
      if (pending > 0) out << "  next " << date(next);
      out << "\n";
    }
    out << all->size() << " message(s)\n";
    return exit_ok;
  }
  if (action == "show") {
    auto m = (*store)->queued(id);
    if (!m) return fail(m.error());
    if (!*m) return fail(Error(store::Errc::not_found, "queue id " + id));
    const auto& qm = **m;
    out << "id: " << qm.id << "\nsender: <" << qm.sender << ">\nqueued: " << date(qm.created)
        << "\nsize: " << qm.size << "\nheld: " << (qm.held ? "yes" : "no")
        << "\nrequiretls: " << (qm.requiretls ? "yes" : "no") << "\n";
    for (const auto& r : qm.recipients) {
      out << "recipient: <" << r.address << "> " << state_name(r.state) << " attempts "
          << r.attempts;
      if (r.state == store::RecipientState::pending) out << " next " << date(r.next_attempt);
      if (!r.last_reply.empty()) out << " last \"" << r.last_reply << "\"";
      if (!r.remote_mta.empty()) out << " via " << r.remote_mta;
      out << "\n";
    }
    return exit_ok;
  }
  Result<void> r;
  if (action == "retry")
    r = q.retry_now(id);
  else if (action == "hold" || action == "release")
    r = q.hold(id, action == "hold");
  else if (action == "delete") {
    auto removed = q.remove(id);
    if (!removed) return fail(removed.error());
    if (!*removed) return fail(Error(store::Errc::not_found, "queue id " + id));
  } else {
    err << "postern queue: unknown action " << action << "\n";
    return exit_usage;
  }
  if (!r) return fail(r.error());
  out << id << ": " << action << " done\n";
  return exit_ok;
}

}  // namespace postern::app
