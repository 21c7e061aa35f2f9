// Internal to server/: the IMAP session's commands, run synchronously on the blocking pool
// (they touch the store, run Argon2id and decrypt). imap_in.cpp drives it over a socket; the
// conversation tests drive it directly against a real store.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "server/password_check.hpp"

#include "imap/imap.hpp"
#include "keys/keys.hpp"
#include "server/password_check.hpp"
#include "server/server.hpp"

namespace postern::server {

// Unwrapped account keys shared by the concurrent sessions of one account. A session holds a
// reference from login to logout; when the last reference goes, the keys are wiped (sodium
// memory) and forgotten.
class KeyRegistry {
 public:
  std::shared_ptr<const keys::UnlockedKeys> share(int64_t account_id, keys::UnlockedKeys fresh);
  // Accounts whose keys are unwrapped in memory right now (the zero-access tests read it).
  std::size_t live() const;

 private:
  mutable std::mutex mu_;
  std::unordered_map<int64_t, std::weak_ptr<const keys::UnlockedKeys>> keys_;
};

struct ImapContext {
  ImapSettings settings;
  Services services;
  KeyRegistry keys;
  PasswordCheck passwords{settings.argon2};
  // Called on every failed login (client address, user name tried): the ban module's hook.
  std::function<void(const std::string& ip, const std::string& user)> on_login_failure;
};

class ImapSession {
 public:
  ImapSession(ImapContext& ctx, std::string client_ip, bool tls_active);
  ~ImapSession();
  ImapSession(const ImapSession&) = delete;
  ImapSession& operator=(const ImapSession&) = delete;

  std::string greeting() const;

  struct Outcome {
    bool close = false;      // after writing the output
    bool start_tls = false;  // write the output, then handshake, then tls_started()
    bool idle = false;       // in IDLE: wait for "DONE" or changes
    bool more = false;       // a long FETCH: write the output, then call resume()
  };
  // Runs one complete command (as CommandReader returns it); responses are appended to out.
  Outcome execute(std::string_view command, std::string& out);
  Outcome resume(std::string& out);
  void tls_started();
  // The command reader's verdicts that end or refuse a command before it is parsed.
  std::string bad_line(const std::string& tag, std::string_view text) const;

  // IDLE: changes since the last report (false: the session must end, its mailbox is gone),
  // then the end of IDLE (`line` should be "DONE").
  bool idle_updates(std::string& out);
  void idle_done(std::string_view line, std::string& out);

  bool authenticated() const { return account_ != nullptr; }
  int64_t account_id() const;
  // Login failures so far (the ban module's hook will read them per address).
  unsigned failed_logins() const { return failed_logins_; }
  const imap::Limits& limits() const { return ctx_.settings.limits; }

  struct Selected;
  struct Fetch;

 private:
  using Handler = Outcome (ImapSession::*)(const imap::Command&, std::string&);
  static const std::map<std::string, Handler, std::less<>>& handlers();
  bool allowed(const std::string& name) const;

  Outcome capability(const imap::Command&, std::string&);
  Outcome noop(const imap::Command&, std::string&);
  Outcome logout(const imap::Command&, std::string&);
  Outcome starttls(const imap::Command&, std::string&);
  Outcome id(const imap::Command&, std::string&);
  Outcome enable(const imap::Command&, std::string&);
  Outcome login(const imap::Command&, std::string&);
  Outcome authenticate(const imap::Command&, std::string&);
  Outcome namespace_(const imap::Command&, std::string&);
  Outcome list(const imap::Command&, std::string&);
  Outcome lsub(const imap::Command&, std::string&);
  Outcome create(const imap::Command&, std::string&);
  Outcome delete_(const imap::Command&, std::string&);
  Outcome rename(const imap::Command&, std::string&);
  Outcome subscribe(const imap::Command&, std::string&);
  Outcome status(const imap::Command&, std::string&);
  Outcome select(const imap::Command&, std::string&);
  Outcome append(const imap::Command&, std::string&);
  Outcome check(const imap::Command&, std::string&);
  Outcome close(const imap::Command&, std::string&);
  Outcome expunge(const imap::Command&, std::string&);
  Outcome search(const imap::Command&, std::string&);
  Outcome fetch(const imap::Command&, std::string&);
  Outcome store(const imap::Command&, std::string&);
  Outcome copy(const imap::Command&, std::string&);
  Outcome idle(const imap::Command&, std::string&);
  Outcome getquota(const imap::Command&, std::string&);

  Outcome finish_login(const imap::Command& c, const std::string& user, const std::string& password,
                       std::string& out);
  Outcome plain(const imap::Command& c, std::string_view b64, std::string& out);
  Outcome authenticate_response(std::string_view line, std::string& out);
  void release();
  // The tagged completion, appended after any unsolicited updates.
  void done(const imap::Command& c, std::string_view status, std::string_view text);
  void store_failure(const imap::Command& c, const Error& e);
  void notify_changes();
  std::string fetch_flags_line(const store::MessageMeta& m) const;
  Result<std::vector<uint32_t>> deleted_among(const std::vector<uint32_t>& uids);
  struct Opened {
    mime::Summary summary;
    std::string content;
    bool has_content = false;
  };
  Result<Opened> open_message(const store::MessageRecord& rec, bool content);
  // Saves the content keys open_message re-wrapped (first reads of delivered messages).
  void save_rewrapped_keys();
  Result<std::string> mailbox_arg(const imap::Token& t) const;
  std::string wire_name(const std::string& name) const;
  Result<std::vector<uint32_t>> resolve_set(const imap::Token& t, bool uid) const;
  void status_items(const store::Mailbox& box, const std::vector<imap::Token>& items,
                    std::string& line);
  // Unsolicited EXISTS/EXPUNGE/FETCH for changes made elsewhere.
  Result<void> refresh(std::string& out, bool allow_expunge);
  // refresh(), and BYE when the selected mailbox no longer exists (returns false then).
  bool refresh_or_bye(std::string& out, bool allow_expunge);
  void forget_uids(const std::vector<uint32_t>& uids, std::string& out);
  Outcome fetch_batch(std::string& out);
  void remove_blobs(const std::vector<std::string>& ids);
  bool over_quota(uint64_t adding);

  ImapContext& ctx_;
  std::string ip_;
  bool tls_;
  std::shared_ptr<const keys::UnlockedKeys> keys_;
  std::unique_ptr<store::Account> account_;
  std::unique_ptr<Selected> selected_;
  std::unique_ptr<Fetch> fetch_;
  std::string idle_tag_;
  std::string tagged_;
  std::string pending_auth_tag_;  // AUTHENTICATE waiting for the client's response
  std::vector<std::pair<uint32_t, std::string>> rewrapped_;  // of the selected mailbox
  bool condstore_ = false, qresync_ = false, utf8_ = false, rev2_ = false;
  unsigned failed_logins_ = 0;
};

}  // namespace postern::server
