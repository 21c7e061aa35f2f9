// IMAP commands of the not-authenticated and authenticated states (RFC 9051 6.1–6.3), the
// dispatcher, and the unsolicited updates of the selected mailbox. The selected-state
// commands are in imap_select.cpp and imap_fetch.cpp.
//
// Security: the account's keys are unwrapped at login and held only by this session (shared
// with the account's other sessions through KeyRegistry); they are released at logout or when
// the session object goes. Passwords are wiped after use and never logged.
#include "server/imap_session.hpp"

#include <algorithm>
#include <future>

#include "base/log.hpp"
#include "base/random.hpp"
#include "server/imap_internal.hpp"

namespace postern::server {

std::shared_ptr<const keys::UnlockedKeys> KeyRegistry::share(int64_t account_id,
                                                             keys::UnlockedKeys fresh) {
  std::lock_guard lock(mu_);
  auto& slot = keys_[account_id];
  if (auto live = slot.lock()) return live;  // `fresh` is wiped when it goes out of scope
  std::shared_ptr<const keys::UnlockedKeys> made(new keys::UnlockedKeys(std::move(fresh)),
                                                 [this, account_id](const keys::UnlockedKeys* k) {
                                                   delete k;  // SecretBytes wipe themselves
                                                   std::lock_guard l(mu_);
                                                   auto it = keys_.find(account_id);
                                                   if (it != keys_.end() && it->second.expired())
                                                     keys_.erase(it);
                                                 });
  slot = made;
  return made;
}

std::size_t KeyRegistry::live() const {
  std::lock_guard lock(mu_);
  return static_cast<std::size_t>(std::count_if(
      keys_.begin(), keys_.end(), [](const auto& kv) { return !kv.second.expired(); }));
}

std::shared_ptr<ChangeBus::Callback> ChangeBus::subscribe(int64_t account_id, Callback cb) {
  auto handle = std::make_shared<Callback>(std::move(cb));
  std::lock_guard lock(mu_);
  auto& list = subs_[account_id];
  std::erase_if(list, [](const std::weak_ptr<Callback>& w) { return w.expired(); });
  list.push_back(handle);
  return handle;
}

void ChangeBus::notify(int64_t account_id) {
  std::vector<std::shared_ptr<Callback>> live;
  {
    std::lock_guard lock(mu_);
    auto it = subs_.find(account_id);
    if (it == subs_.end()) return;
    for (const auto& w : it->second)
      if (auto s = w.lock()) live.push_back(std::move(s));
  }
  for (const auto& cb : live) (*cb)();
}

namespace {

using imap::Command;
using imap::Token;
using Outcome = ImapSession::Outcome;

std::string caps_before_auth(bool tls) {
  std::string c = "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE";
  return tls ? c + " AUTH=PLAIN" : c + " STARTTLS LOGINDISABLED";
}

std::string caps_after_auth(const ImapSettings& s, bool quota) {
  return "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT UIDPLUS MOVE "
         "CHILDREN "
         "LIST-EXTENDED LIST-STATUS SPECIAL-USE CONDSTORE QRESYNC ESEARCH BINARY "
         "APPENDLIMIT=" +
         std::to_string(s.limits.max_literal) + (quota ? " QUOTA QUOTA=RES-STORAGE" : "");
}

}  // namespace

ImapSession::ImapSession(ImapContext& ctx, std::string client_ip, bool tls_active)
    : ctx_(ctx), ip_(std::move(client_ip)), tls_(tls_active) {}

ImapSession::~ImapSession() {
  if (keys_) base::log::debug("imap.keys.released", {{"account", account_->address}});
}

std::string ImapSession::greeting() const {
  return "* OK [CAPABILITY " + caps_before_auth(tls_) + "] " + ctx_.settings.hostname +
         " IMAP ready\r\n";
}

int64_t ImapSession::account_id() const {
  return account_ ? account_->id : 0;
}

void ImapSession::tls_started() {
  tls_ = true;
}

std::string ImapSession::bad_line(const std::string& tag, std::string_view text) const {
  return tag + " BAD " + std::string(text) + "\r\n";
}

const std::map<std::string, ImapSession::Handler, std::less<>>& ImapSession::handlers() {
  static const std::map<std::string, Handler, std::less<>> h = {
      {"CAPABILITY", &ImapSession::capability},
      {"NOOP", &ImapSession::noop},
      {"LOGOUT", &ImapSession::logout},
      {"STARTTLS", &ImapSession::starttls},
      {"ID", &ImapSession::id},
      {"ENABLE", &ImapSession::enable},
      {"LOGIN", &ImapSession::login},
      {"AUTHENTICATE", &ImapSession::authenticate},
      {"NAMESPACE", &ImapSession::namespace_},
      {"LIST", &ImapSession::list},
      {"LSUB", &ImapSession::lsub},
      {"CREATE", &ImapSession::create},
      {"DELETE", &ImapSession::delete_},
      {"RENAME", &ImapSession::rename},
      {"SUBSCRIBE", &ImapSession::subscribe},
      {"UNSUBSCRIBE", &ImapSession::subscribe},
      {"STATUS", &ImapSession::status},
      {"SELECT", &ImapSession::select},
      {"EXAMINE", &ImapSession::select},
      {"APPEND", &ImapSession::append},
      {"IDLE", &ImapSession::idle},
      {"CHECK", &ImapSession::check},
      {"CLOSE", &ImapSession::close},
      {"UNSELECT", &ImapSession::close},
      {"EXPUNGE", &ImapSession::expunge},
      {"UID EXPUNGE", &ImapSession::expunge},
      {"SEARCH", &ImapSession::search},
      {"UID SEARCH", &ImapSession::search},
      {"FETCH", &ImapSession::fetch},
      {"UID FETCH", &ImapSession::fetch},
      {"STORE", &ImapSession::store},
      {"UID STORE", &ImapSession::store},
      {"COPY", &ImapSession::copy},
      {"UID COPY", &ImapSession::copy},
      {"MOVE", &ImapSession::copy},
      {"GETQUOTAROOT", &ImapSession::getquota},
      {"GETQUOTA", &ImapSession::getquota},
      {"SETQUOTA", &ImapSession::getquota},
      {"UID MOVE", &ImapSession::copy},
  };
  return h;
}

bool ImapSession::allowed(const std::string& name) const {
  static const std::vector<std::string> any = {"CAPABILITY", "NOOP", "LOGOUT", "ID"};
  static const std::vector<std::string> unauth = {"STARTTLS", "LOGIN", "AUTHENTICATE"};
  static const std::vector<std::string> selected = {
      "CHECK",     "CLOSE", "UNSELECT",  "EXPUNGE", "UID EXPUNGE", "SEARCH", "UID SEARCH", "FETCH",
      "UID FETCH", "STORE", "UID STORE", "COPY",    "UID COPY",    "MOVE",   "UID MOVE"};
  auto in = [&](const std::vector<std::string>& v) {
    return std::find(v.begin(), v.end(), name) != v.end();
  };
  if (in(any)) return true;
  if (in(unauth)) return !authenticated();
  if (!authenticated()) return false;
  if (in(selected)) return selected_ != nullptr;
  return true;
}

Outcome ImapSession::execute(std::string_view text, std::string& out) {
  if (!pending_auth_tag_.empty()) return authenticate_response(text, out);
  std::string tag = "*";
  auto cmd = imap::parse_command(text, ctx_.settings.limits, &tag);
  if (!cmd) {
    out += tag + " BAD " + cmd.error().describe() + "\r\n";
    return {};
  }
  auto it = handlers().find(cmd->name);
  if (it == handlers().end()) {
    out += cmd->tag + " BAD Unknown command\r\n";
    return {};
  }
  if (!allowed(cmd->name)) {
    out += cmd->tag + " BAD Command not allowed in this state\r\n";
    return {};
  }
  tagged_.clear();
  Outcome o = (this->*(it->second))(*cmd, out);
  if (cmd->name == "LOGIN" || cmd->name == "AUTHENTICATE")
    for (auto& arg : cmd->args) crypto::wipe(arg.text);
  bool fetch = cmd->name == "FETCH" || cmd->name == "UID FETCH";  // completes itself
  if (!o.idle && !o.more && !o.close && !fetch && selected_) {
    // RFC 9051 7.5.1: no EXPUNGE during FETCH, STORE or SEARCH by sequence number.
    bool by_seq = cmd->name == "STORE" || cmd->name == "SEARCH";
    if (!refresh_or_bye(out, !by_seq)) o.close = true;
  }
  out += tagged_;
  return o;
}

bool ImapSession::refresh_or_bye(std::string& out, bool allow_expunge) {
  auto r = refresh(out, allow_expunge);
  if (r) return true;
  if (r.error().code() != store::Errc::not_found) {
    base::log::warn("imap.refresh.failed", {{"error", r.error().describe()}});
    return true;
  }
  // Another session deleted the selected mailbox: nothing we told the client holds any more.
  selected_.reset();
  out += "* BYE The selected mailbox was deleted\r\n";
  return false;
}

void ImapSession::done(const Command& c, std::string_view status, std::string_view text) {
  tagged_ = c.tag + " " + std::string(status) + " " + std::string(text) + "\r\n";
}

std::string ImapSession::wire_name(const std::string& name) const {
  return imap::quote(imap::encode_mailbox_name(name, utf8_), utf8_);
}

Result<std::string> ImapSession::mailbox_arg(const Token& t) const {
  if (t.kind == Token::Kind::list) return Error(imap::Errc::syntax, "mailbox name expected");
  return imap::decode_mailbox_name(t.text, utf8_);
}

void ImapSession::store_failure(const Command& c, const Error& e) {
  base::log::error("imap.store.failed", {{"command", c.name}, {"error", e.describe()}});
  done(c, "NO", "[UNAVAILABLE] Temporary storage failure, try again later");
}

Outcome ImapSession::capability(const Command& c, std::string& out) {
  out += "* CAPABILITY " +
         (authenticated() ? caps_after_auth(ctx_.settings, account_->quota_bytes > 0)
                          : caps_before_auth(tls_)) +
         "\r\n";
  done(c, "OK", "CAPABILITY completed");
  return {};
}

Outcome ImapSession::noop(const Command& c, std::string&) {
  done(c, "OK", c.name + " completed");
  return {};
}

Outcome ImapSession::logout(const Command& c, std::string& out) {
  out += "* BYE " + ctx_.settings.hostname + " logging out\r\n";
  done(c, "OK", "LOGOUT completed");
  release();
  return {.close = true};
}

Outcome ImapSession::starttls(const Command& c, std::string&) {
  if (tls_ || !ctx_.services.tls) {
    done(c, "BAD", "TLS is already active or not available");
    return {};
  }
  done(c, "OK", "Begin TLS negotiation now");
  return {.start_tls = true};
}

Outcome ImapSession::id(const Command& c, std::string& out) {
  // Name only: a version would help attackers pick exploits.
  out += "* ID (\"name\" \"postern\")\r\n";
  done(c, "OK", "ID completed");
  return {};
}

Outcome ImapSession::enable(const Command& c, std::string& out) {
  std::string enabled;
  for (const auto& t : c.args) {
    std::string name = upper(t.text);
    if (name == "IMAP4REV2" && !rev2_) {
      // RFC 9051: UTF-8 mailbox names, ESEARCH results, no RECENT.
      rev2_ = true;
      utf8_ = true;
      enabled += " IMAP4rev2";
    }
    if (name == "CONDSTORE" || name == "QRESYNC") {
      if (!condstore_) enabled += " CONDSTORE";
      condstore_ = true;
      if (name == "QRESYNC" && !qresync_) {
        qresync_ = true;
        enabled += " QRESYNC";
      }
    }
  }
  out += "* ENABLED" + enabled + "\r\n";
  done(c, "OK", "ENABLE completed");
  return {};
}

Outcome ImapSession::login(const Command& c, std::string& out) {
  if (!tls_) {
    done(c, "NO", "[PRIVACYREQUIRED] Use STARTTLS first");
    return {};
  }
  if (c.args.size() != 2 || c.args[0].kind == Token::Kind::list ||
      c.args[1].kind == Token::Kind::list) {
    done(c, "BAD", "LOGIN needs a user name and a password");
    return {};
  }
  std::string user = c.args[0].text;
  std::string password = c.args[1].text;
  auto o = finish_login(c, user, password, out);
  crypto::wipe(password);
  return o;
}

Outcome ImapSession::authenticate(const Command& c, std::string& out) {
  if (c.args.empty() || upper(c.args[0].text) != "PLAIN" || c.args.size() > 2) {
    done(c, "NO", "Unsupported authentication mechanism");
    return {};
  }
  if (!tls_) {
    done(c, "NO", "[PRIVACYREQUIRED] Use STARTTLS first");
    return {};
  }
  if (c.args.size() == 2) return plain(c, c.args[1].text, out);
  pending_auth_tag_ = c.tag;
  out += "+ \r\n";
  return {};
}

Outcome ImapSession::authenticate_response(std::string_view line, std::string& out) {
  Command c;
  c.tag = std::exchange(pending_auth_tag_, {});
  c.name = "AUTHENTICATE";
  std::string text(line.substr(0, line.size() >= 2 ? line.size() - 2 : 0));
  tagged_.clear();
  Outcome o;
  if (text == "*")
    done(c, "BAD", "Authentication cancelled");
  else
    o = plain(c, text, out);
  crypto::wipe(text);
  out += tagged_;
  return o;
}

// RFC 4616: [authzid] NUL authcid NUL passwd, base64.
Outcome ImapSession::plain(const Command& c, std::string_view b64, std::string& out) {
  auto raw = crypto::from_base64(b64 == "=" ? std::string_view() : b64);
  if (!raw) {
    done(c, "BAD", "Invalid base64");
    return {};
  }
  std::string& r = *raw;
  auto first = r.find('\0');
  auto second = first == std::string::npos ? first : r.find('\0', first + 1);
  if (second == std::string::npos) {
    crypto::wipe(r);
    done(c, "BAD", "Invalid PLAIN response");
    return {};
  }
  std::string authz = r.substr(0, first);
  std::string user = r.substr(first + 1, second - first - 1);
  std::string password = r.substr(second + 1);
  crypto::wipe(r);
  if (!authz.empty() && base::ascii_lower(authz) != base::ascii_lower(user)) {
    crypto::wipe(password);
    done(c, "NO", "[AUTHORIZATIONFAILED] Cannot act as another user");
    return {};
  }
  auto o = finish_login(c, user, password, out);
  crypto::wipe(password);
  return o;
}

Outcome ImapSession::finish_login(const Command& c, const std::string& user,
                                  const std::string& password, std::string& out) {
  std::string address = base::ascii_lower(user);
  auto unlocked = ctx_.passwords.verify(*ctx_.services.store, address, password);
  if (!unlocked && unlocked.error().code() != keys::Errc::wrong_password) {
    store_failure(c, unlocked.error());
    return {};
  }
  if (!unlocked) {
    ++failed_logins_;
    base::log::warn("imap.login.failed", {{"ip", ip_}, {"user", address.substr(0, 128)}});
    if (ctx_.on_login_failure) ctx_.on_login_failure(ip_, address);
    done(c, "NO", "[AUTHENTICATIONFAILED] Authentication failed");
    if (failed_logins_ >= 3) {
      out += tagged_;
      tagged_ = "* BYE Too many failed logins\r\n";
      return {.close = true};
    }
    return {};
  }
  keys_ = ctx_.keys.share(unlocked->first.id, std::move(unlocked->second));
  account_ = std::make_unique<store::Account>(std::move(unlocked->first));
  base::log::info("imap.login.ok", {{"ip", ip_}, {"user", address}});
  base::log::debug("imap.keys.live", {{"accounts", static_cast<uint64_t>(ctx_.keys.live())}});
  done(c, "OK",
       "[CAPABILITY " + caps_after_auth(ctx_.settings, account_->quota_bytes > 0) + "] Logged in");
  return {};
}

void ImapSession::release() {
  selected_.reset();
  fetch_.reset();
  keys_.reset();
  if (account_)
    base::log::debug("imap.keys.live", {{"accounts", static_cast<uint64_t>(ctx_.keys.live())}});
}

Outcome ImapSession::namespace_(const Command& c, std::string& out) {
  out += "* NAMESPACE ((\"\" \"/\")) NIL NIL\r\n";
  done(c, "OK", "NAMESPACE completed");
  return {};
}

Outcome ImapSession::idle(const Command& c, std::string& out) {
  idle_tag_ = c.tag;
  if (selected_ && !refresh_or_bye(out, true)) return {.close = true};
  out += "+ idling\r\n";
  return {.idle = true};
}

bool ImapSession::idle_updates(std::string& out) {
  if (!selected_) return true;
  return refresh_or_bye(out, true);
}

void ImapSession::idle_done(std::string_view line, std::string& out) {
  std::string tag = std::exchange(idle_tag_, {});
  if (upper(line) == "DONE\r\n")
    out += tag + " OK IDLE terminated\r\n";
  else
    out += tag + " BAD Expected DONE\r\n";
}

// RFC 9208: one quota root, "", over all the account's mailboxes; STORAGE in KiB.
Outcome ImapSession::getquota(const Command& c, std::string& out) {
  if (c.name == "SETQUOTA") {
    done(c, "NO", "[NOPERM] Quotas are set by the operator");
    return {};
  }
  if (c.args.size() != 1 || c.args[0].kind == Token::Kind::list) {
    done(c, "BAD", c.name + " needs one argument");
    return {};
  }
  std::string line;
  if (c.name == "GETQUOTAROOT") {
    auto name = mailbox_arg(c.args[0]);
    if (!name) {
      done(c, "NO", "[NONEXISTENT] " + name.error().describe());
      return {};
    }
    auto box = ctx_.services.store->find_mailbox(account_->id, *name);
    if (!box || !*box) {
      done(c, "NO", "[NONEXISTENT] No such mailbox");
      return {};
    }
    out += "* QUOTAROOT " + wire_name(*name) + (account_->quota_bytes > 0 ? " \"\"" : "") + "\r\n";
  } else if (!c.args[0].text.empty() || account_->quota_bytes == 0) {
    done(c, "NO", "[NONEXISTENT] No such quota root");
    return {};
  }
  if (account_->quota_bytes > 0) {
    auto used = ctx_.services.store->usage(account_->id);
    if (!used) {
      store_failure(c, used.error());
      return {};
    }
    out += "* QUOTA \"\" (STORAGE " + std::to_string((*used + 1023) / 1024) + " " +
           std::to_string(static_cast<uint64_t>(account_->quota_bytes) / 1024) + ")\r\n";
  }
  done(c, "OK", c.name + " completed");
  return {};
}

bool ImapSession::over_quota(uint64_t adding) {
  if (account_->quota_bytes <= 0) return false;
  auto used = ctx_.services.store->usage(account_->id);
  return used && *used + adding > static_cast<uint64_t>(account_->quota_bytes);
}

void ImapSession::remove_blobs(const std::vector<std::string>& ids) {
  for (const auto& id : ids)
    if (auto r = ctx_.services.blobs->remove(id); !r)
      base::log::warn("imap.blob.remove_failed", {{"error", r.error().describe()}});
}

void ImapSession::notify_changes() {
  if (ctx_.services.changes && account_) ctx_.services.changes->notify(account_->id);
}

}  // namespace postern::server
